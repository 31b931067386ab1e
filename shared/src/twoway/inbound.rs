//! Reading Brevo's marketing webhooks: one event object, or an array of them (Brevo batches some
//! webhook types), each with `event` and, for the events acted on, `email`.
//!
//! Event names are read in both of Brevo's spellings (`hardBounce` when subscribing,
//! `hard_bounce` in payloads; `contactDeleted` / `contact_deleted`, …).
//!
//! `contactDeleted` is read into an [`Action::Forget`] (its `email` a string, or an array of
//! them: one write-back each); whether any helpdesk acts on it is the configuration's
//! (`on_contact_deleted`), and the webhook function sets it aside
//! ([`Inbound::set_aside_forgets`]) when none does.
//!
//! # Stable ids
//!
//! Brevo's payloads carry no delivery id (`id` is the webhook's own id, the same on every
//! call). Each acted-on event gets one from its fields:
//! `<event>:<masked email>:<camp_id or ->:<instant>`, where the instant is the first present of
//! `ts_event` (epoch seconds, UTC), `ts`, `date_event` and `date`, or, when none is, the SHA-256
//! of the event object. A delivery's id is its one event's id, or the SHA-256 of its events' ids
//! when it holds several. The email enters the id masked ([`crate::identity::mask`]), since ids
//! are logged.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Action, WriteBack};
use crate::helpdesk::{ParseError, body_hash, parse_json};
use crate::identity::{mask, normalize_email};

/// A Brevo delivery, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inbound {
    /// The write-backs to queue, in body order.
    pub write_backs: Vec<WriteBack>,
    /// Events deskbridge caused itself (their `api_key_name` is `BREVO_API_KEY_NAME`).
    pub echoes: usize,
    /// Events not acted on, and why.
    pub ignored: Vec<Ignored>,
}

/// An event not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The event as Brevo named it.
    pub event: String,
    pub reason: &'static str,
}

/// Why a contact deletion is not queued when no helpdesk deletes.
pub const FORGET_OFF: &str =
    "contact deletions are not passed on (no helpdesk has on_contact_deleted: delete)";

impl Inbound {
    /// Moves the contact deletions ([`Action::Forget`]) from the write-backs to the ignored
    /// events, for a configuration in which no helpdesk deletes anyone; how many were moved.
    pub fn set_aside_forgets(&mut self) -> usize {
        let before = self.write_backs.len();
        let (forgets, kept): (Vec<WriteBack>, Vec<WriteBack>) =
            std::mem::take(&mut self.write_backs)
                .into_iter()
                .partition(|w| w.action == Action::Forget);
        self.write_backs = kept;
        self.ignored.extend(forgets.into_iter().map(|_| Ignored {
            event: FORGET_EVENT.to_string(),
            reason: FORGET_OFF,
        }));
        before - self.write_backs.len()
    }

    /// The delivery's id, from its write-backs' ids (see the module's notes); `None` when it
    /// has none.
    pub fn delivery_id(&self) -> Option<String> {
        match self.write_backs.as_slice() {
            [] => None,
            [one] => Some(one.id.clone()),
            many => {
                let ids: Vec<&str> = many.iter().map(|w| w.id.as_str()).collect();
                Some(hex::encode(Sha256::digest(ids.join("\n").as_bytes())))
            }
        }
    }
}

/// A contact deletion as deskbridge names it.
const FORGET_EVENT: &str = "contact_deleted";

/// What deskbridge makes of one event name.
enum Kind {
    Act(Action, &'static str),
    Ignore(&'static str),
}

fn kind(event: &str) -> Kind {
    let folded: String = event
        .chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    match folded.as_str() {
        "unsubscribed" => Kind::Act(Action::Unsubscribe, "unsubscribed"),
        "spam" => Kind::Act(Action::Unsubscribe, "spam"),
        "hardbounce" => Kind::Act(Action::HardBounce, "hard_bounce"),
        "contactdeleted" => Kind::Act(Action::Forget, FORGET_EVENT),
        "contactupdated" => Kind::Ignore("contact updates are not written back yet"),
        "listaddition" => Kind::Ignore("list additions are not written back"),
        _ => Kind::Ignore("not an event deskbridge acts on"),
    }
}

/// Reads a Brevo webhook body. `api_key_name` is `BREVO_API_KEY_NAME`: events whose
/// `api_key_name` equals it are counted as echoes and left out.
pub fn parse_webhook(body: &[u8], api_key_name: Option<&str>) -> Result<Inbound, ParseError> {
    let value = parse_json(body)?;
    let items = match value {
        Value::Object(one) => vec![one],
        Value::Array(many) => many
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => Ok(o),
                _ => Err(ParseError::Invalid(
                    "a Brevo webhook array holds event objects only".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ParseError::Invalid(
                "a Brevo webhook body is an event object or an array of them".into(),
            ));
        }
    };
    let ours = api_key_name.map(str::trim).filter(|n| !n.is_empty());
    let mut inbound = Inbound::default();
    for item in &items {
        let event = item
            .get("event")
            .and_then(Value::as_str)
            .ok_or(ParseError::Missing("event"))?;
        let echo = item
            .get("api_key_name")
            .and_then(Value::as_str)
            .map(str::trim);
        if ours.is_some() && echo == ours {
            inbound.echoes += 1;
            continue;
        }
        match kind(event) {
            Kind::Ignore(reason) => inbound.ignored.push(Ignored {
                event: event.to_string(),
                reason,
            }),
            Kind::Act(Action::Forget, name) => {
                for email in emails(item)? {
                    inbound
                        .write_backs
                        .push(write_back(item, Action::Forget, name, email)?);
                }
            }
            Kind::Act(action, name) => {
                let email = item
                    .get("email")
                    .and_then(Value::as_str)
                    .and_then(normalize_email)
                    .ok_or(ParseError::Missing("email"))?;
                inbound
                    .write_backs
                    .push(write_back(item, action, name, email)?);
            }
        }
    }
    Ok(inbound)
}

/// The emails of a contact deletion: `email` as one address or an array of them (every one
/// must be an address).
fn emails(item: &Map<String, Value>) -> Result<Vec<String>, ParseError> {
    let one = |v: &Value| v.as_str().and_then(normalize_email);
    let emails = match item.get("email") {
        Some(Value::Array(many)) if !many.is_empty() => many.iter().map(one).collect(),
        Some(v) => one(v).map(|e| vec![e]),
        None => None,
    };
    emails.ok_or(ParseError::Missing("email"))
}

/// The write-back of one acted-on event about `email` (normalised).
fn write_back(
    item: &Map<String, Value>,
    action: Action,
    event: &str,
    email: String,
) -> Result<WriteBack, ParseError> {
    let seconds = |key: &str| {
        let v = item.get(key)?;
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    };
    let occurred_at = ["ts_event", "ts"]
        .into_iter()
        .find_map(seconds)
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    let instant = occurred_at
        .map(|t| t.timestamp().to_string())
        .or_else(|| {
            ["date_event", "date"].into_iter().find_map(|k| {
                item.get(k)
                    .and_then(Value::as_str)
                    .map(|d| d.trim().replace(' ', "T"))
                    .filter(|d| !d.is_empty())
            })
        })
        .unwrap_or_else(|| {
            let text = serde_json::to_string(item).unwrap_or_default();
            body_hash(text.as_bytes())
        });
    let campaign = item.get("camp_id").filter(|c| !c.is_null()).map_or_else(
        || "-".to_string(),
        |c| c.to_string().trim_matches('"').to_string(),
    );
    Ok(WriteBack {
        id: format!("{event}:{}:{campaign}:{instant}", mask(&email)),
        action,
        event: event.to_string(),
        email,
        occurred_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value, ours: Option<&str>) -> Result<Inbound, ParseError> {
        parse_webhook(v.to_string().as_bytes(), ours)
    }

    fn unsubscribed() -> Value {
        json!({"id": 1_234_567, "camp_id": 12, "email": " Jane.Doe@Example.com ",
            "campaign name": "December news", "date_sent": "2026-12-07 09:00:00",
            "date_event": "2026-12-07 10:12:07", "event": "unsubscribed", "tag": "",
            "ts_sent": 1_796_634_000, "ts_event": 1_796_638_327, "list_id": [3, 42],
            "ts": 1_796_638_327})
    }

    #[test]
    fn an_unsubscribe_becomes_a_write_back_with_a_stable_id() {
        let inbound = parse(unsubscribed(), Some("deskbridge")).expect("reads");
        let [w] = inbound.write_backs.as_slice() else {
            panic!("one write-back: {inbound:?}")
        };
        assert_eq!(w.action, Action::Unsubscribe);
        assert_eq!(w.email, "jane.doe@example.com");
        assert_eq!(w.occurred_at.map(|t| t.timestamp()), Some(1_796_638_327));
        assert_eq!(
            w.id,
            format!(
                "unsubscribed:{}:12:1796638327",
                mask("jane.doe@example.com")
            )
        );
        assert!(!w.id.contains("example.com"), "the email is masked in ids");
        assert_eq!(inbound.delivery_id().as_deref(), Some(w.id.as_str()));
        // Delivered again: the same id.
        let again = parse(unsubscribed(), None).expect("reads");
        assert_eq!(again.delivery_id(), inbound.delivery_id());
    }

    #[test]
    fn both_spellings_arrays_and_ignored_events_are_read() {
        let body = json!([
            {"event": "hardBounce", "email": "a@example.com", "ts_event": 1},
            {"event": "hard_bounce", "email": "b@example.com", "date_event": "2026-12-07 10:00:00"},
            {"event": "spam", "email": "c@example.com"},
            {"event": "contact_deleted", "email": "d@example.com", "ts": 5},
            {"event": "contactUpdated", "email": "e@example.com", "api_key_name": "zapier"},
            {"event": "list_addition", "email": ["f@example.com"], "list_id": [3]},
            {"event": "opened", "email": "g@example.com"}
        ]);
        let inbound = parse(body, Some("deskbridge")).expect("reads");
        let seen: Vec<(Action, &str)> = inbound
            .write_backs
            .iter()
            .map(|w| (w.action, w.event.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (Action::HardBounce, "hard_bounce"),
                (Action::HardBounce, "hard_bounce"),
                (Action::Unsubscribe, "spam"),
                (Action::Forget, "contact_deleted"),
            ]
        );
        assert!(
            inbound.write_backs[1]
                .id
                .ends_with(":-:2026-12-07T10:00:00")
        );
        // Without any time field, the event object's digest keeps the id stable.
        let spam_id = &inbound.write_backs[2].id;
        assert_eq!(spam_id.rsplit(':').next().map(str::len), Some(64));
        let ignored: Vec<&str> = inbound.ignored.iter().map(|i| i.event.as_str()).collect();
        assert_eq!(ignored, vec!["contactUpdated", "list_addition", "opened"]);
        assert_eq!(inbound.echoes, 0);
        let id = inbound.delivery_id().expect("an id");
        assert_eq!(id.len(), 64);
    }

    #[test]
    fn a_contact_deletion_is_a_forget_and_set_aside_when_no_helpdesk_deletes() {
        let deleted = json!({"id": 1_234_567, "email": "Gone@Example.com", "event": "contact_deleted",
            "key": "k", "list_id": [35], "date": "2026-12-07 10:12:07", "ts": 1_796_638_327});
        let inbound = parse(deleted.clone(), Some("deskbridge")).expect("reads");
        let [w] = inbound.write_backs.as_slice() else {
            panic!("one write-back: {inbound:?}")
        };
        assert_eq!(
            (w.action, w.event.as_str()),
            (Action::Forget, "contact_deleted")
        );
        assert_eq!(w.email, "gone@example.com");
        assert_eq!(
            w.id,
            format!("contact_deleted:{}:-:1796638327", mask("gone@example.com"))
        );
        // Both spellings, and several emails in one event.
        let many = json!({"event": "contactDeleted", "email": ["a@example.com", "b@example.com"],
            "ts": 5});
        let read = parse(many, None).expect("reads");
        let emails: Vec<&str> = read.write_backs.iter().map(|w| w.email.as_str()).collect();
        assert_eq!(emails, vec!["a@example.com", "b@example.com"]);
        assert_eq!(
            parse(
                json!({"event": "contact_deleted", "email": ["a@example.com", 3]}),
                None
            ),
            Err(ParseError::Missing("email"))
        );
        // No helpdesk deletes: acknowledged and ignored, with the reason; nothing to queue.
        let mut off = parse(json!([deleted, unsubscribed()]), None).expect("reads");
        assert_eq!(off.set_aside_forgets(), 1);
        assert_eq!(off.write_backs.len(), 1);
        assert_eq!(off.write_backs[0].action, Action::Unsubscribe);
        assert_eq!(
            off.ignored,
            vec![Ignored {
                event: "contact_deleted".into(),
                reason: FORGET_OFF
            }]
        );
        // Deskbridge's own deletion coming back is an echo, never a forget.
        let echo = json!({"event": "contact_deleted", "email": "gone@example.com",
            "api_key_name": "deskbridge", "ts": 1});
        let read = parse(echo, Some("deskbridge")).expect("reads");
        assert_eq!((read.echoes, read.write_backs.len()), (1, 0));
    }

    #[test]
    fn deskbridges_own_writes_are_echoes() {
        let body = json!([
            {"event": "contact_updated", "email": "a@example.com", "api_key_name": "deskbridge "},
            {"event": "unsubscribed", "email": "a@example.com", "api_key_name": "deskbridge", "ts": 9}
        ]);
        let inbound = parse(body.clone(), Some("deskbridge")).expect("reads");
        assert_eq!(inbound.echoes, 2);
        assert!(inbound.write_backs.is_empty() && inbound.ignored.is_empty());
        assert_eq!(inbound.delivery_id(), None);
        // Without BREVO_API_KEY_NAME nothing is an echo; an empty key name never is.
        let inbound = parse(body, None).expect("reads");
        assert_eq!((inbound.echoes, inbound.write_backs.len()), (0, 1));
        let blank = json!({"event": "unsubscribed", "email": "a@example.com", "api_key_name": ""});
        assert_eq!(parse(blank, Some(" ")).expect("reads").echoes, 0);
    }

    #[test]
    fn unreadable_bodies_are_refused() {
        assert!(matches!(
            parse_webhook(b"not json", None),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse(json!("x"), None),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse(json!([1]), None),
            Err(ParseError::Invalid(_))
        ));
        assert_eq!(
            parse(json!({"email": "a@example.com"}), None),
            Err(ParseError::Missing("event"))
        );
        assert_eq!(
            parse(
                json!({"event": "unsubscribed", "email": "not an email"}),
                None
            ),
            Err(ParseError::Missing("email"))
        );
    }
}
