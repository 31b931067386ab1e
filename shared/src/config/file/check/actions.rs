//! `actions`: the ticket each helpdesk opens for `POST /actions/<helpdesk>/tickets`. Keys left
//! out keep their defaults ([`TicketTemplate::default`]); every text is a [`Template`] whose
//! placeholders are checked here, with their line. Each helpdesk takes the keys its API has a
//! place for: Zendesk a requester name and a priority, Intercom a ticket type (required),
//! Gorgias a channel.

use super::explain::push;
use super::two_way::valid_tag;
use super::{Checker, Entry, dotted};
use crate::config::file::actions::{GORGIAS_CHANNELS, PRIORITIES, Template};
use crate::config::file::yaml::{Node, line, scalar_text, shown};
use crate::config::file::{Actions, FileConfig, Said, TicketTemplate};

const BLOCK: &str = "actions";
const BLOCK_KEYS: &[&str] = &["zendesk", "intercom", "gorgias"];
const ZENDESK_KEYS: &[&str] = &[
    "enabled",
    "subject",
    "comment",
    "requester_name",
    "tags",
    "priority",
];
const INTERCOM_KEYS: &[&str] = &["enabled", "ticket_type_id", "subject", "comment"];
const GORGIAS_KEYS: &[&str] = &["enabled", "subject", "comment", "tags", "channel"];
/// Subjects longer than this are cut (Zendesk's limit, kept for every helpdesk).
const MAX_SUBJECT: usize = 150;

/// The keys `helpdesk`'s ticket template takes, and the helpdesk as the messages name it.
fn keys_of(helpdesk: &str) -> (&'static [&'static str], &'static str) {
    match helpdesk {
        "intercom" => (INTERCOM_KEYS, "Intercom"),
        "gorgias" => (GORGIAS_KEYS, "Gorgias"),
        _ => (ZENDESK_KEYS, "Zendesk"),
    }
}

impl Checker {
    pub(super) fn actions(&mut self, e: &Entry) -> Actions {
        let mut out = Actions::default();
        for h in self.entries(e.value, BLOCK) {
            match h.key.as_str() {
                "zendesk" => out.zendesk = self.ticket_template(&h, TicketTemplate::default()),
                "intercom" => {
                    // Written down, the block is on unless it says otherwise.
                    let start = TicketTemplate {
                        enabled: true,
                        ..out.intercom.clone()
                    };
                    out.intercom = self.ticket_template(&h, start);
                    if out.intercom.enabled && out.intercom.ticket_type_id.is_none() {
                        self.error(
                            h.line,
                            format!(
                                "{BLOCK}.intercom needs ticket_type_id: the Intercom ticket type \
                                 the tickets are of (Settings → Tickets → Ticket types, or \
                                 GET /ticket_types), or enabled: false"
                            ),
                        );
                    }
                }
                "gorgias" => out.gorgias = self.ticket_template(&h, TicketTemplate::default()),
                _ => self.unknown_key(&h, BLOCK, BLOCK_KEYS),
            }
        }
        out
    }

    fn ticket_template(&mut self, h: &Entry, mut t: TicketTemplate) -> TicketTemplate {
        let where_ = dotted(BLOCK, &h.key);
        let (known, vendor) = keys_of(&h.key);
        for f in self.entries(h.value, &where_) {
            if !known.contains(&f.key.as_str()) {
                self.unknown_key(&f, &where_, known);
                continue;
            }
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
                "tags" => t.tags = self.tags(&f, &where_, vendor),
                "priority" => t.priority = self.priority(&f, &where_),
                "ticket_type_id" => t.ticket_type_id = self.ticket_type(&f, &where_),
                "channel" => {
                    if let Some(c) = self.channel(&f, &where_) {
                        t.channel = c;
                    }
                }
                _ => {}
            }
        }
        t
    }

    /// An Intercom ticket type id: digits (text or a number).
    fn ticket_type(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let text = match &e.value.value {
            Node::Seq(_) | Node::Map(_) | Node::Null => None,
            other => scalar_text(other).map(|s| s.trim().to_string()),
        };
        match text {
            Some(id)
                if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(id)
            }
            _ => {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: {} is not an Intercom ticket type id; use the type's id, such as \
                         \"1234\"",
                        dotted(where_, &e.key),
                        shown(&e.value.value)
                    ),
                );
                None
            }
        }
    }

    /// A Gorgias channel for the ticket and its first message.
    fn channel(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let text = self.text(e, where_)?;
        let lower = text.to_ascii_lowercase();
        if GORGIAS_CHANNELS.contains(&lower.as_str()) {
            return Some(lower);
        }
        self.error(
            e.value_line(),
            format!(
                "{}: `{text}` is not a channel deskbridge opens Gorgias tickets on; use one of {}",
                dotted(where_, &e.key),
                GORGIAS_CHANNELS.join(", ")
            ),
        );
        None
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

    /// A list of tags (one tag alone is taken too); `~` or `[]` for none.
    fn tags(&mut self, e: &Entry, where_: &str, vendor: &str) -> Vec<String> {
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
                        "{at}: {} is not a {vendor} tag; use one word of at most 80 characters, \
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
            let (t, vendor) = match h.key.as_str() {
                "zendesk" => (&config.actions.zendesk, "Zendesk"),
                "intercom" => (&config.actions.intercom, "Intercom"),
                "gorgias" => (&config.actions.gorgias, "Gorgias"),
                _ => continue,
            };
            let helpdesk = h.key.as_str();
            let at = |key: &str| format!("{BLOCK}.{helpdesk}.{key}");
            let once = "per contact, automation and day (or per idempotency_key)";
            let says = match helpdesk {
                _ if !t.enabled => {
                    format!("POST /actions/{helpdesk}/tickets is off (answers 404)")
                }
                "intercom" => match &t.ticket_type_id {
                    Some(id) => format!(
                        "POST /actions/intercom/tickets opens one Intercom ticket of type {id} \
                         {once}, for the contact with the email (Intercom makes one when it has \
                         none)"
                    ),
                    None => "POST /actions/intercom/tickets is off until ticket_type_id is set \
                             (answers 404)"
                        .to_string(),
                },
                "gorgias" => format!(
                    "POST /actions/gorgias/tickets opens one Gorgias ticket {once} on the {} \
                     channel, the contact's email as the customer",
                    t.channel
                ),
                _ => format!(
                    "POST /actions/zendesk/tickets opens one Zendesk ticket {once}, requested by \
                     the contact's email"
                ),
            };
            push(said, &h, format!("{BLOCK}.{helpdesk}"), says);
            for f in self.entries(h.value, "") {
                let says = match (helpdesk, f.key.as_str()) {
                    ("intercom", "subject") => format!("the ticket's title: {}", t.subject),
                    ("intercom", "comment") => {
                        format!(
                            "the ticket's description (its key is added below): {}",
                            t.comment
                        )
                    }
                    ("gorgias", "comment") => {
                        format!(
                            "the ticket's first message, from the contact: {}",
                            t.comment
                        )
                    }
                    (_, "subject") => format!("the ticket's subject: {}", t.subject),
                    (_, "comment") => format!("the ticket's first comment: {}", t.comment),
                    (_, "requester_name") => format!(
                        "the name a new requester gets (else the email): {}",
                        t.requester_name
                    ),
                    (_, "tags") if t.tags.is_empty() => "the ticket gets no tags".to_string(),
                    (_, "tags") => format!("the ticket is tagged {}", t.tags.join(", ")),
                    (_, "priority") => match &t.priority {
                        Some(p) => format!("the ticket's priority is {p}"),
                        None => format!("the ticket keeps {vendor}'s default priority"),
                    },
                    (_, "ticket_type_id") => match &t.ticket_type_id {
                        Some(id) => format!("the tickets are of Intercom ticket type {id}"),
                        None => continue,
                    },
                    (_, "channel") => format!(
                        "the ticket and its first message are on Gorgias's {} channel (via api)",
                        t.channel
                    ),
                    _ => continue,
                };
                push(said, &f, at(&f.key), says);
            }
        }
    }
}
