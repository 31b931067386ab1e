//! The Brevo names of a helpdesk's own events (Intercom data events, `data_event`).
//!
//! A data event keeps its own name on the Brevo timeline unless `event_mapping` says otherwise:
//! `data_event.<name>: OTHER_NAME` renames one (`""` leaves it out), and `data_event: NAME` puts
//! every data event under one name (`""` leaves them all out). The event's own name is always in
//! its `event_name` property.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{EventKind, SupportEvent};

/// The `event_mapping` key that renames the data event `name`.
pub fn key(name: &str) -> String {
    format!("{}.{name}", EventKind::DataEvent.key())
}

/// The Brevo name of a data event, given the source's and the top-level `event_mapping`; `None`
/// when the mapping leaves it out.
pub fn brevo_name(
    source_mapping: &BTreeMap<String, String>,
    top: &BTreeMap<String, String>,
    event: &SupportEvent,
) -> Option<String> {
    let own = event.properties.get("event_name").and_then(Value::as_str)?;
    let mapped = |key: &str| source_mapping.get(key).or_else(|| top.get(key));
    let name = match mapped(&key(own)).or_else(|| mapped(EventKind::DataEvent.key())) {
        Some(name) => name.clone(),
        None => sanitized(own),
    };
    (!name.is_empty()).then_some(name)
}

/// `name` as Brevo takes event names: letters, digits, `_` and `-`, at most 255 characters.
fn sanitized(name: &str) -> String {
    brevo_safe(name.trim()).chars().take(255).collect()
}

/// `name` with every character other than letters, digits, `_` and `-` made `_` (what Brevo
/// takes in event names and property keys).
pub fn brevo_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn event(name: &str) -> SupportEvent {
        let mut properties = serde_json::Map::new();
        properties.insert("event_name".into(), Value::from(name));
        SupportEvent {
            id: "intercom:data_event:1".into(),
            kind: EventKind::DataEvent,
            occurred_at: Utc::now(),
            ticket_id: None,
            channel: None,
            properties,
        }
    }

    #[test]
    fn data_events_keep_their_names_unless_mapped() {
        let none = BTreeMap::new();
        assert_eq!(
            brevo_name(&none, &none, &event("placed order!")).as_deref(),
            Some("placed_order_")
        );
        let source: BTreeMap<String, String> = [
            (key("placed-order"), "ORDER_PLACED".to_string()),
            (key("viewed-page"), String::new()),
        ]
        .into();
        assert_eq!(
            brevo_name(&source, &none, &event("placed-order")).as_deref(),
            Some("ORDER_PLACED")
        );
        assert_eq!(brevo_name(&source, &none, &event("viewed-page")), None);
        let all_off: BTreeMap<String, String> = [("data_event".to_string(), String::new())].into();
        assert_eq!(brevo_name(&none, &all_off, &event("anything")), None);
        // A rename of one wins over the name of all.
        assert_eq!(
            brevo_name(&source, &all_off, &event("placed-order")).as_deref(),
            Some("ORDER_PLACED")
        );
    }
}
