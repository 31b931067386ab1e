//! `POST /actions/<helpdesk>/tickets`: a Brevo automation's webhook step asks for a ticket in a
//! helpdesk for the contact in the body.
//!
//! The body is what the step sends: the contact's `email` (or `contact.email`), its attributes
//! (`attributes`, or the `contact` object itself), the automation's id (`automation`,
//! `automation_id`, `workflow_id` or `scenario_id`), and whatever the user adds, such as
//! `subject`, `comment` or `idempotency_key`. [`read_ticket`] renders the configured
//! [`TicketTemplate`] with it into a [`TicketRequest`].
//!
//! One ticket per contact, automation and day, or per `idempotency_key` when the body gives
//! one: that key names the ticket ([`TicketRequest::external_id`]), so the webhook function
//! queues it once and the upsert function opens it once, even when asked again after a crash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::file::{Placeholder, TicketTemplate};
use crate::model::Source;

/// The longest `idempotency_key` accepted.
pub const MAX_KEY_CHARS: usize = 200;
/// Zendesk comments longer than this are refused; the rendered comment is cut to it.
const MAX_COMMENT_CHARS: usize = 60_000;

/// A ticket to open in a helpdesk, as the upsert queue carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRequest {
    pub helpdesk: Source,
    /// `deskbridge-<32 hex>`: derived from the ticket's key; the helpdesk's `external_id`, by
    /// which a ticket opened before is found.
    pub external_id: String,
    /// The requester's email, trimmed and lower-cased.
    pub email: String,
    /// The requester's name (the email when the template renders nothing).
    pub name: String,
    pub subject: String,
    pub comment: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// The automation that asked, when the body said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation: Option<String>,
}

/// Why a body is not a ticket request (the route answers 400 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("body is not a JSON object: {0}")]
    NotJson(String),
    #[error("body has no contact email (`email` or `contact.email`)")]
    NoEmail,
    #[error("`{0}` is not an email address")]
    BadEmail(String),
    #[error("idempotency_key must be text or a number of at most {MAX_KEY_CHARS} characters")]
    BadKey,
}

/// The fields of a body the ticket is made of.
struct Body {
    fields: Map<String, Value>,
    email: String,
    attributes: Map<String, Value>,
    automation: Option<String>,
    key: Option<String>,
}

/// Reads `body` into the ticket `template` describes for `helpdesk`; `now` is the day of a
/// ticket without an `idempotency_key`.
pub fn read_ticket(
    helpdesk: &Source,
    template: &TicketTemplate,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<TicketRequest, ActionError> {
    let body = read_body(body)?;
    let key = match &body.key {
        Some(key) => format!("key\n{key}"),
        None => format!(
            "auto\n{}\n{}\n{}",
            body.email,
            body.automation.as_deref().unwrap_or("-"),
            now.format("%Y-%m-%d")
        ),
    };
    let digest = Sha256::digest(format!("{helpdesk}\n{key}").as_bytes());
    let external_id = format!("deskbridge-{}", &hex::encode(digest)[..32]);
    let value = |p: &Placeholder| body.value(p);
    let mut subject = template.subject.render(value);
    if subject.is_empty() {
        subject = "Follow-up from a Brevo automation".to_string();
    }
    let mut comment = template.comment.render(value);
    if comment.is_empty() {
        comment = match &body.automation {
            Some(a) => format!("Opened by the Brevo automation {a} for {}.", body.email),
            None => format!("Opened by a Brevo automation for {}.", body.email),
        };
    }
    let comment: String = comment.chars().take(MAX_COMMENT_CHARS).collect();
    let mut name = template.requester_name.render(value);
    if name.is_empty() {
        name.clone_from(&body.email);
    }
    Ok(TicketRequest {
        helpdesk: helpdesk.clone(),
        external_id,
        email: body.email,
        name,
        subject: subject.chars().take(150).collect(),
        comment,
        tags: template.tags.clone(),
        priority: template.priority.clone(),
        automation: body.automation,
    })
}

fn read_body(body: &[u8]) -> Result<Body, ActionError> {
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(ActionError::NotJson("not an object".into())),
        Err(e) => return Err(ActionError::NotJson(e.to_string())),
    };
    let contact = fields.get("contact").and_then(Value::as_object);
    let email = fields
        .get("email")
        .or_else(|| contact.and_then(|c| c.get("email")))
        .and_then(Value::as_str)
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .ok_or(ActionError::NoEmail)?;
    let valid = email
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 254;
    if !valid {
        return Err(ActionError::BadEmail(email));
    }
    let attributes = fields
        .get("attributes")
        .or_else(|| contact.and_then(|c| c.get("attributes")))
        .and_then(Value::as_object)
        .or(contact)
        .cloned()
        .unwrap_or_default();
    let automation = ["automation", "automation_id", "workflow_id", "scenario_id"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(scalar));
    let key = match fields.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(v) => match scalar(v) {
            Some(k) if k.chars().count() <= MAX_KEY_CHARS => Some(k),
            _ => return Err(ActionError::BadKey),
        },
    };
    Ok(Body {
        fields,
        email,
        attributes,
        automation,
        key,
    })
}

impl Body {
    fn value(&self, p: &Placeholder) -> Option<String> {
        match p {
            Placeholder::Email => Some(self.email.clone()),
            Placeholder::Contact(name) => self
                .attributes
                .get(name)
                .or_else(|| {
                    self.attributes
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                })
                .and_then(scalar),
            Placeholder::Field(name) if name == "automation" => self.automation.clone(),
            Placeholder::Field(name) => self.fields.get(name).and_then(scalar),
        }
    }
}

/// A text, number or boolean as text; nothing for anything else or an empty text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::Template;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0)
            .single()
            .expect("a time")
    }

    fn read(body: &Value, now: DateTime<Utc>) -> Result<TicketRequest, ActionError> {
        read_ticket(
            &Source::Zendesk,
            &TicketTemplate::default(),
            body.to_string().as_bytes(),
            now,
        )
    }

    #[test]
    fn one_key_per_contact_automation_and_day_unless_the_body_names_one() {
        let body = json!({"email": " Jane@Example.com", "workflow_id": 42,
            "attributes": {"FIRSTNAME": "Jane", "LASTNAME": "Doe"},
            "subject": "Renewal call", "comment": "Please call {{back}}"});
        let first = read(&body, at(7, 9)).expect("valid");
        assert_eq!(first.email, "jane@example.com");
        assert_eq!(first.name, "Jane Doe");
        assert_eq!(first.subject, "Renewal call");
        assert_eq!(
            first.comment, "Please call {{back}}",
            "values are not templates"
        );
        assert_eq!(first.automation.as_deref(), Some("42"));
        assert_eq!(first.tags, vec!["brevo_automation"]);
        assert!(first.external_id.starts_with("deskbridge-"));
        assert_eq!(first.external_id.len(), "deskbridge-".len() + 32);
        assert_eq!(
            read(&body, at(7, 23)).expect("valid").external_id,
            first.external_id
        );
        assert_ne!(
            read(&body, at(8, 1)).expect("valid").external_id,
            first.external_id
        );
        let mut other = body.clone();
        other["workflow_id"] = json!(43);
        assert_ne!(
            read(&other, at(7, 9)).expect("valid").external_id,
            first.external_id
        );
        let mut keyed = body.clone();
        keyed["idempotency_key"] = json!("order-1001");
        let k1 = read(&keyed, at(7, 9)).expect("valid").external_id;
        assert_eq!(read(&keyed, at(9, 9)).expect("valid").external_id, k1);
        assert_ne!(k1, first.external_id);
    }

    #[test]
    fn the_template_reads_the_contact_and_the_fields_and_falls_back() {
        let template = TicketTemplate {
            subject: Template::parse("{{contact.firstname}} asked ({{automation}})").expect("ok"),
            comment: Template::parse("{{note}} / {{email}} / {{contact.PLAN}}").expect("ok"),
            priority: Some("high".into()),
            ..TicketTemplate::default()
        };
        let body = json!({"contact": {"email": "bob@example.com", "FIRSTNAME": "Bob", "PLAN": 3},
            "automation": "onboarding", "note": "hello"});
        let t = read_ticket(
            &Source::Zendesk,
            &template,
            body.to_string().as_bytes(),
            at(7, 9),
        )
        .expect("valid");
        assert_eq!(t.subject, "Bob asked (onboarding)");
        assert_eq!(t.comment, "hello / bob@example.com / 3");
        assert_eq!(t.priority.as_deref(), Some("high"));
        assert_eq!(t.name, "Bob");
        let bare = read(&json!({"email": "x@example.com"}), at(7, 9)).expect("valid");
        assert_eq!(bare.subject, "Follow-up from a Brevo automation");
        assert_eq!(
            bare.comment,
            "Opened by a Brevo automation for x@example.com."
        );
        assert_eq!(bare.name, "x@example.com");
    }

    #[test]
    fn bodies_without_a_usable_email_or_key_are_refused() {
        let now = at(7, 9);
        assert!(matches!(
            read_ticket(&Source::Zendesk, &TicketTemplate::default(), b"{nope", now),
            Err(ActionError::NotJson(_))
        ));
        assert!(matches!(
            read(&json!([1]), now),
            Err(ActionError::NotJson(_))
        ));
        assert_eq!(
            read(&json!({"subject": "x"}), now),
            Err(ActionError::NoEmail)
        );
        assert!(matches!(
            read(&json!({"email": "not an email"}), now),
            Err(ActionError::BadEmail(_))
        ));
        assert_eq!(
            read(
                &json!({"email": "a@b.co", "idempotency_key": {"a": 1}}),
                now
            ),
            Err(ActionError::BadKey)
        );
    }
}
