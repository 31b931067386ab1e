//! `brevo_to_helpdesk`: what Brevo's marketing webhooks write back into each helpdesk. Keys left
//! out keep their defaults ([`BrevoToHelpdesk::default`]); `~` or `""` for a tag or attribute
//! name turns that write off.

use super::{Checker, Entry, dotted};
use crate::config::file::BrevoToHelpdesk;

const BLOCK: &str = "brevo_to_helpdesk";
const BLOCK_KEYS: &[&str] = &["zendesk", "intercom"];
const ZENDESK_KEYS: &[&str] = &["enabled", "unsubscribed_tag", "hard_bounce_tag"];
const INTERCOM_KEYS: &[&str] = &["enabled", "unsubscribe", "hard_bounce_attribute"];

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
                            _ => self.unknown_key(&f, &where_, INTERCOM_KEYS),
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
