//! The Intercom readers every Intercom module shares: lenient text and time fields, event
//! properties, stable event ids, and the canonical person of a contact object.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::mapping::parse_time;
use crate::model::{EventKind, Person, Source, SupportEvent};

/// The canonical person of an Intercom contact object (API or webhook item).
pub fn person_from_contact(value: &Value) -> Person {
    person_with(|key| value.get(key))
}

/// The canonical person of a contact whose top-level fields `field` reads.
pub(super) fn person_with<'a>(field: impl Fn(&str) -> Option<&'a Value>) -> Person {
    Person {
        source_id: text(field("id")),
        email: text(field("email")),
        phone: text(field("phone")),
        name: text(field("name")),
        external_id: text(field("external_id")),
        ..Default::default()
    }
}

/// A milestone of `subject` (`conversation:<id>`, `contact:<id>`) with its stable id.
pub(crate) fn event(
    kind: EventKind,
    subject: &str,
    at: DateTime<Utc>,
    properties: Map<String, Value>,
) -> SupportEvent {
    SupportEvent {
        id: SupportEvent::stable_id(&Source::Intercom, subject, kind, at),
        kind,
        occurred_at: at,
        ticket_id: None,
        channel: None,
        properties,
    }
}

/// Text of a non-empty string or a number.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(parse_time)
}

pub(super) fn put(props: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(v) = value {
        props.insert(key.to_string(), Value::String(v));
    }
}
