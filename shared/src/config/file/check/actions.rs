//! `actions`: the ticket each helpdesk opens for `POST /actions/<helpdesk>/tickets`. Keys left
//! out keep their defaults ([`TicketTemplate::default`]); every text is a [`Template`] whose
//! placeholders are checked here, with their line.

use super::explain::push;
use super::two_way::valid_tag;
use super::{Checker, Entry, dotted};
use crate::config::file::actions::{PRIORITIES, Template};
use crate::config::file::yaml::{Node, line, scalar_text, shown};
use crate::config::file::{Actions, FileConfig, Said, TicketTemplate};

const BLOCK: &str = "actions";
/// Only Zendesk tickets can be opened so far.
const BLOCK_KEYS: &[&str] = &["zendesk"];
const TICKET_KEYS: &[&str] = &[
    "enabled",
    "subject",
    "comment",
    "requester_name",
    "tags",
    "priority",
];
/// Zendesk subjects longer than this are cut.
const MAX_SUBJECT: usize = 150;

impl Checker {
    pub(super) fn actions(&mut self, e: &Entry) -> Actions {
        let mut out = Actions::default();
        for h in self.entries(e.value, BLOCK) {
            match h.key.as_str() {
                "zendesk" => out.zendesk = self.ticket_template(&h),
                "intercom" | "gorgias" => self.error(
                    h.line,
                    format!(
                        "{BLOCK}.{}: deskbridge opens tickets in Zendesk only so far; \
                         known keys: {}",
                        h.key,
                        BLOCK_KEYS.join(", ")
                    ),
                ),
                _ => self.unknown_key(&h, BLOCK, BLOCK_KEYS),
            }
        }
        out
    }

    fn ticket_template(&mut self, h: &Entry) -> TicketTemplate {
        let where_ = dotted(BLOCK, &h.key);
        let mut t = TicketTemplate::default();
        for f in self.entries(h.value, &where_) {
            match f.key.as_str() {
                "enabled" => t.enabled = self.boolean(&f, &where_).unwrap_or(t.enabled),
                "subject" => {
                    if let Some(s) = self.template(&f, &where_, Some(MAX_SUBJECT)) {
                        t.subject = s;
                    }
                }
                "comment" => {
                    if let Some(s) = self.template(&f, &where_, None) {
                        t.comment = s;
                    }
                }
                "requester_name" => {
                    if let Some(s) = self.template(&f, &where_, None) {
                        t.requester_name = s;
                    }
                }
                "tags" => t.tags = self.tags(&f, &where_),
                "priority" => t.priority = self.priority(&f, &where_),
                _ => self.unknown_key(&f, &where_, TICKET_KEYS),
            }
        }
        t
    }

    /// A text with placeholders; nothing (the default stays) for an empty value.
    fn template(&mut self, e: &Entry, where_: &str, max: Option<usize>) -> Option<Template> {
        let text = self.text(e, where_)?;
        let at = dotted(where_, &e.key);
        if let Some(max) = max.filter(|m| text.chars().count() > *m) {
            self.error(
                e.value_line(),
                format!("{at} is longer than {max} characters"),
            );
            return None;
        }
        match Template::parse(&text) {
            Ok(t) => Some(t),
            Err(err) => {
                self.error(e.value_line(), format!("{at}: {err}"));
                None
            }
        }
    }

    /// A list of Zendesk tags (one tag alone is taken too); `~` or `[]` for none.
    fn tags(&mut self, e: &Entry, where_: &str) -> Vec<String> {
        let at = dotted(where_, &e.key);
        let items: Vec<_> = match &e.value.value {
            Node::Null => return Vec::new(),
            Node::Seq(items) => items.iter().collect(),
            _ => vec![e.value],
        };
        let mut tags = Vec::new();
        for item in items {
            let tag = match &item.value {
                Node::Seq(_) | Node::Map(_) | Node::Null => None,
                other => scalar_text(other).map(|s| s.trim().to_string()),
            };
            match tag {
                Some(tag) if !tag.is_empty() && valid_tag(&tag) => {
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                _ => self.error(
                    line(item).or(e.line),
                    format!(
                        "{at}: {} is not a Zendesk tag; use one word of at most 80 characters, \
                         such as brevo_automation",
                        shown(&item.value)
                    ),
                ),
            }
        }
        tags
    }

    fn priority(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let text = self.text(e, where_)?;
        let lower = text.to_ascii_lowercase();
        if PRIORITIES.contains(&lower.as_str()) {
            return Some(lower);
        }
        self.error(
            e.value_line(),
            format!(
                "{}: `{text}` is not a Zendesk priority; use one of {}",
                dotted(where_, &e.key),
                PRIORITIES.join(", ")
            ),
        );
        None
    }
}

impl Checker {
    /// What each key of the `actions` block does (`deskbridge plan`).
    pub(super) fn action_lines(&mut self, e: &Entry, config: &FileConfig, said: &mut Vec<Said>) {
        for h in self.entries(e.value, "") {
            if h.key != "zendesk" {
                continue;
            }
            let t = &config.actions.zendesk;
            let at = |key: &str| format!("{BLOCK}.zendesk.{key}");
            let says = if t.enabled {
                "POST /actions/zendesk/tickets opens one Zendesk ticket per contact, automation \
                 and day (or per idempotency_key), requested by the contact's email"
                    .to_string()
            } else {
                "POST /actions/zendesk/tickets is off (answers 404)".to_string()
            };
            push(said, &h, format!("{BLOCK}.zendesk"), says);
            for f in self.entries(h.value, "") {
                let says = match f.key.as_str() {
                    "subject" => format!("the ticket's subject: {}", t.subject),
                    "comment" => format!("the ticket's first comment: {}", t.comment),
                    "requester_name" => format!(
                        "the name a new requester gets (else the email): {}",
                        t.requester_name
                    ),
                    "tags" if t.tags.is_empty() => "the ticket gets no tags".to_string(),
                    "tags" => format!("the ticket is tagged {}", t.tags.join(", ")),
                    "priority" => match &t.priority {
                        Some(p) => format!("the ticket's priority is {p}"),
                        None => "the ticket keeps Zendesk's default priority".to_string(),
                    },
                    _ => continue,
                };
                push(said, &f, at(&f.key), says);
            }
        }
    }
}
