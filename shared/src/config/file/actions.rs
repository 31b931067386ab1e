//! The `actions` block: what `POST /actions/<helpdesk>/tickets` (a Brevo automation's webhook
//! step) opens in each helpdesk. Each helpdesk has a ticket template whose texts take
//! placeholders from the call's body ([`Template`]).
//!
//! ```yaml
//! actions:
//!   zendesk:
//!     enabled: true
//!     subject: "{{subject}}"
//!     comment: "{{comment}}"
//!     requester_name: "{{contact.FIRSTNAME}} {{contact.LASTNAME}}"
//!     tags: [brevo_automation]
//!     priority: normal              # low | normal | high | urgent; none: Zendesk's default
//!   intercom:                       # off until it names a ticket type
//!     ticket_type_id: "1234"        # required: the Intercom ticket type the tickets are of
//!     subject: "{{subject}}"        # the ticket's title
//!     comment: "{{comment}}"        # the ticket's description
//!   gorgias:
//!     subject: "{{subject}}"
//!     comment: "{{comment}}"        # the text of the ticket's first message
//!     tags: [brevo_automation]
//!     channel: api                  # api | email: the channel of the ticket and its message
//! ```

use std::fmt;

use crate::model::Source;

/// The `actions` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    /// The ticket `POST /actions/zendesk/tickets` opens.
    pub zendesk: TicketTemplate,
    /// The ticket `POST /actions/intercom/tickets` opens: off until the block names its
    /// `ticket_type_id`.
    pub intercom: TicketTemplate,
    /// The ticket `POST /actions/gorgias/tickets` opens.
    pub gorgias: TicketTemplate,
}

impl Default for Actions {
    fn default() -> Self {
        Actions {
            zendesk: TicketTemplate::default(),
            intercom: TicketTemplate {
                enabled: false,
                tags: Vec::new(),
                ..TicketTemplate::default()
            },
            gorgias: TicketTemplate::default(),
        }
    }
}

impl Actions {
    /// The template of `helpdesk`'s tickets when that helpdesk opens them: switched on, and
    /// (Intercom) with a ticket type.
    pub fn template(&self, helpdesk: &Source) -> Option<&TicketTemplate> {
        let template = match helpdesk {
            Source::Zendesk => &self.zendesk,
            Source::Intercom if self.intercom.ticket_type_id.is_none() => return None,
            Source::Intercom => &self.intercom,
            Source::Gorgias => &self.gorgias,
            _ => return None,
        };
        template.enabled.then_some(template)
    }

    /// The helpdesks whose tickets are on, by name.
    pub fn helpdesks(&self) -> Vec<&'static str> {
        [
            (Source::Zendesk, "zendesk"),
            (Source::Intercom, "intercom"),
            (Source::Gorgias, "gorgias"),
        ]
        .into_iter()
        .filter(|(h, _)| self.template(h).is_some())
        .map(|(_, name)| name)
        .collect()
    }
}

/// One helpdesk's ticket: each text is rendered from the call's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTemplate {
    /// Default true; false answers the route 404.
    pub enabled: bool,
    pub subject: Template,
    /// The ticket's first comment (its description).
    pub comment: Template,
    /// The requester's name, used when the helpdesk makes a new user for the email.
    pub requester_name: Template,
    pub tags: Vec<String>,
    /// `low`, `normal`, `high` or `urgent`; `None` leaves the helpdesk's default (Zendesk).
    pub priority: Option<String>,
    /// The Intercom ticket type of the tickets (required for Intercom).
    pub ticket_type_id: Option<String>,
    /// The channel of a Gorgias ticket and its first message: `api` or `email`.
    pub channel: String,
}

/// The default tag of the tickets an automation opens.
pub const DEFAULT_ACTION_TAG: &str = "brevo_automation";
/// The priorities a Zendesk ticket can have.
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
/// The channels a Gorgias ticket opened through its API can have here; `api` is the default.
pub const GORGIAS_CHANNELS: &[&str] = &["api", "email"];

impl Default for TicketTemplate {
    fn default() -> Self {
        let fixed = |text: &str| Template::parse(text).unwrap_or_else(|_| Template::text(text));
        TicketTemplate {
            enabled: true,
            subject: fixed("{{subject}}"),
            comment: fixed("{{comment}}"),
            requester_name: fixed("{{contact.FIRSTNAME}} {{contact.LASTNAME}}"),
            tags: vec![DEFAULT_ACTION_TAG.to_string()],
            priority: None,
            ticket_type_id: None,
            channel: GORGIAS_CHANNELS[0].to_string(),
        }
    }
}

/// A value a template asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{email}}`: the contact's email.
    Email,
    /// `{{contact.NAME}}`: one of the contact's attributes.
    Contact(String),
    /// `{{name}}`: a top-level field of the body (`subject`, `comment`, `automation`, …).
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// A text with `{{…}}` placeholders (spaces inside the braces are allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` at character {0} is never closed with `}}}}`")]
    Unclosed(usize),
    #[error(
        "`{{{{{0}}}}}` is not a placeholder; use {{{{email}}}}, {{{{contact.ATTRIBUTE}}}} or \
         {{{{field}}}} with letters, digits and _"
    )]
    Invalid(String),
}

impl Template {
    /// A template without placeholders.
    pub fn text(text: &str) -> Self {
        Template {
            source: text.to_string(),
            parts: vec![Part::Text(text.to_string())],
        }
    }

    /// Reads `text`'s placeholders.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                let at = text.len() - rest.len() + open;
                return Err(TemplateError::Unclosed(text[..at].chars().count() + 1));
            };
            let name = after[..close].trim();
            parts.push(Part::Value(placeholder(name)?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
        })
    }

    /// The text with each placeholder replaced by what `value` gives (nothing when it gives
    /// nothing), trimmed.
    pub fn render(&self, value: impl Fn(&Placeholder) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(p) => out.push_str(&value(p).unwrap_or_default()),
            }
        }
        out.trim().to_string()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn placeholder(name: &str) -> Result<Placeholder, TemplateError> {
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match name.split_once('.') {
        None if name == "email" => Ok(Placeholder::Email),
        None if word(name) => Ok(Placeholder::Field(name.to_string())),
        Some(("contact", attribute)) if word(attribute) => {
            Ok(Placeholder::Contact(attribute.to_string()))
        }
        _ => Err(TemplateError::Invalid(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_read_and_rendered() {
        let t = Template::parse("Hi {{ contact.FIRSTNAME }} <{{email}}> about {{subject}}!")
            .expect("valid");
        let out = t.render(|p| match p {
            Placeholder::Email => Some("jane@example.com".into()),
            Placeholder::Contact(a) if a == "FIRSTNAME" => Some("Jane".into()),
            _ => None,
        });
        assert_eq!(out, "Hi Jane <jane@example.com> about !");
        assert_eq!(
            t.to_string(),
            "Hi {{ contact.FIRSTNAME }} <{{email}}> about {{subject}}!"
        );
    }

    #[test]
    fn bad_placeholders_are_refused() {
        assert_eq!(
            Template::parse("ab {{email"),
            Err(TemplateError::Unclosed(4))
        );
        for bad in ["{{}}", "{{contact.}}", "{{ticket.id}}", "{{first name}}"] {
            assert!(
                matches!(Template::parse(bad), Err(TemplateError::Invalid(_))),
                "{bad}"
            );
        }
        let e = Template::parse("{{a-b}}").expect_err("invalid");
        assert!(
            e.to_string().contains("`{{a-b}}` is not a placeholder"),
            "{e}"
        );
    }
}
