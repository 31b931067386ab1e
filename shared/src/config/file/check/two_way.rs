//! `brevo_to_helpdesk`: what Brevo's marketing webhooks write back into each helpdesk. Keys left
//! out keep their defaults ([`BrevoToHelpdesk::default`]); `~` or `""` for a tag, attribute
//! name or note line turns that write off.

use super::{Checker, Entry, dotted};
use crate::config::file::yaml::{Node, shown};
use crate::config::file::{BrevoToHelpdesk, OnContactDeleted};

const BLOCK: &str = "brevo_to_helpdesk";
const BLOCK_KEYS: &[&str] = &["zendesk", "intercom", "gorgias"];
const ZENDESK_KEYS: &[&str] = &[
    "enabled",
    "unsubscribed_tag",
    "hard_bounce_tag",
    "on_contact_deleted",
];
const INTERCOM_KEYS: &[&str] = &[
    "enabled",
    "unsubscribe",
    "hard_bounce_attribute",
    "on_contact_deleted",
];
const GORGIAS_KEYS: &[&str] = &[
    "enabled",
    "unsubscribed_note",
    "hard_bounce_note",
    "on_contact_deleted",
];

/// A Gorgias note line is at most this long (a line agents read at a glance).
const MAX_NOTE_LINE: usize = 200;

/// Zendesk tags are at most this long (longer ones are cut by Zendesk).
const MAX_TAG: usize = 80;
/// Intercom data attribute names are at most this long.
const MAX_ATTRIBUTE: usize = 190;

/// Whether `tag` is a Zendesk tag: one word of at most [`MAX_TAG`] characters.
pub(super) fn valid_tag(tag: &str) -> bool {
    tag.chars().count() <= MAX_TAG && !tag.chars().any(char::is_whitespace)
}

impl Checker {
    pub(super) fn brevo_to_helpdesk(&mut self, e: &Entry) -> BrevoToHelpdesk {
        let mut out = BrevoToHelpdesk::default();
        for h in self.entries(e.value, BLOCK) {
            let where_ = dotted(BLOCK, &h.key);
            match h.key.as_str() {
                "zendesk" => {
                    let z = &mut out.zendesk;
                    for f in self.entries(h.value, &where_) {
                        match f.key.as_str() {
                            "enabled" => z.enabled = self.boolean(&f, &where_).unwrap_or(z.enabled),
                            "unsubscribed_tag" => z.unsubscribed_tag = self.tag(&f, &where_),
                            "hard_bounce_tag" => z.hard_bounce_tag = self.tag(&f, &where_),
                            "on_contact_deleted" => {
                                z.on_contact_deleted = self
                                    .on_contact_deleted(&f, &where_)
                                    .unwrap_or(z.on_contact_deleted);
                            }
                            _ => self.unknown_key(&f, &where_, ZENDESK_KEYS),
                        }
                    }
                }
                "intercom" => {
                    let i = &mut out.intercom;
                    for f in self.entries(h.value, &where_) {
                        match f.key.as_str() {
                            "enabled" => i.enabled = self.boolean(&f, &where_).unwrap_or(i.enabled),
                            "unsubscribe" => {
                                i.unsubscribe = self.boolean(&f, &where_).unwrap_or(i.unsubscribe);
                            }
                            "hard_bounce_attribute" => {
                                i.hard_bounce_attribute = self.attribute(&f, &where_);
                            }
                            "on_contact_deleted" => {
                                i.on_contact_deleted = self
                                    .on_contact_deleted(&f, &where_)
                                    .unwrap_or(i.on_contact_deleted);
                            }
                            _ => self.unknown_key(&f, &where_, INTERCOM_KEYS),
                        }
                    }
                }
                "gorgias" => {
                    let g = &mut out.gorgias;
                    for f in self.entries(h.value, &where_) {
                        match f.key.as_str() {
                            "enabled" => g.enabled = self.boolean(&f, &where_).unwrap_or(g.enabled),
                            "unsubscribed_note" => g.unsubscribed_note = self.note(&f, &where_),
                            "hard_bounce_note" => g.hard_bounce_note = self.note(&f, &where_),
                            "on_contact_deleted" => {
                                g.on_contact_deleted = self
                                    .on_contact_deleted(&f, &where_)
                                    .unwrap_or(g.on_contact_deleted);
                            }
                            _ => self.unknown_key(&f, &where_, GORGIAS_KEYS),
                        }
                    }
                }
                _ => self.unknown_key(&h, BLOCK, BLOCK_KEYS),
            }
        }
        out
    }

    /// A Zendesk tag: one word (Zendesk splits tags at spaces), at most [`MAX_TAG`] characters.
    fn tag(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let tag = self.text(e, where_)?;
        if !valid_tag(&tag) {
            self.error(
                e.value_line(),
                format!(
                    "{}: `{tag}` is not a Zendesk tag; use one word of at most {MAX_TAG} \
                     characters, such as brevo_unsubscribed",
                    dotted(where_, &e.key)
                ),
            );
            return None;
        }
        Some(tag)
    }

    /// `ignore` or `delete`.
    fn on_contact_deleted(&mut self, e: &Entry, where_: &str) -> Option<OnContactDeleted> {
        let value = match &e.value.value {
            Node::Str(s) => s.trim().to_ascii_lowercase(),
            other => shown(other).into_owned(),
        };
        match value.as_str() {
            "ignore" => Some(OnContactDeleted::Ignore),
            "delete" => Some(OnContactDeleted::Delete),
            _ => {
                self.error(
                    e.value_line(),
                    format!(
                        "{} must be ignore or delete, not {value}",
                        dotted(where_, &e.key)
                    ),
                );
                None
            }
        }
    }

    /// A Gorgias note line: one line of at most [`MAX_NOTE_LINE`] characters.
    fn note(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let note = self.text(e, where_)?;
        if note.contains(['\n', '\r']) || note.chars().count() > MAX_NOTE_LINE {
            self.error(
                e.value_line(),
                format!(
                    "{}: a note line is one line of at most {MAX_NOTE_LINE} characters",
                    dotted(where_, &e.key)
                ),
            );
            return None;
        }
        Some(note)
    }

    /// An Intercom custom data attribute name, at most [`MAX_ATTRIBUTE`] characters, without
    /// the `.` and `$` Intercom keeps for its own paths.
    fn attribute(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let name = self.text(e, where_)?;
        let valid = name.chars().count() <= MAX_ATTRIBUTE && !name.contains(['.', '$']);
        if !valid {
            self.error(
                e.value_line(),
                format!(
                    "{}: `{name}` is not an Intercom attribute name (at most {MAX_ATTRIBUTE} \
                     characters, no `.` or `$`)",
                    dotted(where_, &e.key)
                ),
            );
            return None;
        }
        Some(name)
    }
}
