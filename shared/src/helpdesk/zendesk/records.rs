//! Zendesk API objects (users, tickets with their sideloads, satisfaction ratings) as records,
//! with the ids the webhook parser gives the same happenings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::helpdesk::parse::ParseError;
use crate::helpdesk::zendesk::webhook::{person_from_user, tag_list, text, ticket_event, time};
use crate::model::{EventKind, Person, Profile, Record, Source, SupportEvent};

/// A user as a record: the whole user as profile, and the `user.created` event the webhook
/// parser would have produced. A deleted user (`active: false`, which the export lists too) is
/// a deletion record, so the sync repairs a deletion webhook that was missed.
pub(super) fn user_record(user: &Value) -> Result<Record, String> {
    let person = person_from_user(user);
    let Some(id) = person.source_id.clone() else {
        return Err("user without an id".to_string());
    };
    let updated = time(user.get("updated_at"));
    let created = time(user.get("created_at"));
    let observed_at = updated
        .or(created)
        .ok_or_else(|| format!("user {id}: no updated_at"))?;
    if user.get("active") == Some(&Value::Bool(false)) {
        return Ok(Record::deletion(person, observed_at));
    }
    let events = created
        .map(|at| SupportEvent {
            id: SupportEvent::stable_id(
                &Source::Zendesk,
                &format!("user:{id}"),
                EventKind::CustomerCreated,
                at,
            ),
            kind: EventKind::CustomerCreated,
            occurred_at: at,
            ticket_id: None,
            channel: None,
            properties: Map::new(),
        })
        .into_iter()
        .collect();
    Ok(Record {
        person,
        observed_at,
        profile: Some(user.clone().into()),
        events,
        ..Default::default()
    })
}

/// What a ticket's metric set tells: the solve time, minutes to the first reply and to full
/// resolution (calendar minutes).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct TicketMetrics {
    solved_at: Option<DateTime<Utc>>,
    first_reply_minutes: Option<Value>,
    resolution_minutes: Option<Value>,
}

impl TicketMetrics {
    pub(super) fn of(metric_set: &Value) -> Self {
        let calendar = |key: &str| {
            metric_set
                .get(key)
                .and_then(|m| m.get("calendar"))
                .filter(|v| v.is_number())
                .cloned()
        };
        TicketMetrics {
            solved_at: time(metric_set.get("solved_at")),
            first_reply_minutes: calendar("reply_time_in_minutes"),
            resolution_minutes: calendar("full_resolution_time_in_minutes"),
        }
    }
}

/// A ticket as a record for its requester (`Ok(None)`: a deleted ticket, not synced).
pub(super) fn ticket_record(
    ticket: &Value,
    users: &HashMap<String, &Value>,
    metrics: &HashMap<String, TicketMetrics>,
) -> Result<Option<Record>, String> {
    let status = text(ticket.get("status")).map(|s| s.to_ascii_lowercase());
    if status.as_deref() == Some("deleted") {
        return Ok(None);
    }
    let id = text(ticket.get("id")).ok_or("ticket without an id")?;
    let requester_id = text(ticket.get("requester_id"));
    let user = requester_id.as_ref().and_then(|r| users.get(r).copied());
    let person = user.map(person_from_user).unwrap_or(Person {
        source_id: requester_id,
        ..Default::default()
    });
    if person.source_id.is_none() && person.email.is_none() {
        return Err(format!("ticket {id}: requester unknown (no requester_id)"));
    }
    let created = time(ticket.get("created_at"));
    let updated = time(ticket.get("updated_at"));
    let Some(ticket_at) = updated.or(created) else {
        return Err(format!("ticket {id}: no created_at/updated_at"));
    };
    let invalid = |e: ParseError| format!("ticket {id}: {e}");
    let metric = metrics.get(&id).cloned().unwrap_or_default();
    let mut events = Vec::new();
    if let Some(at) = created {
        let mut event = ticket_event(EventKind::TicketCreated, ticket, at).map_err(invalid)?;
        if let Some(m) = metric.first_reply_minutes.clone() {
            event.properties.insert("first_reply_minutes".into(), m);
        }
        events.push(event);
    }
    if matches!(status.as_deref(), Some("solved" | "closed")) {
        // The solve time (metric set) rather than updated_at, which moves again when a solved
        // ticket is closed automatically days later.
        let at = metric.solved_at.unwrap_or(ticket_at);
        let mut event = ticket_event(EventKind::TicketClosed, ticket, at).map_err(invalid)?;
        if let Some(m) = metric.resolution_minutes.clone() {
            event.properties.insert("resolution_time".into(), m);
        }
        events.push(event);
    }
    if let Some(fields) = custom_fields(ticket) {
        for event in &mut events {
            event
                .properties
                .insert("custom_fields".into(), fields.clone());
        }
    }
    // The sideloaded user is as recent as its own updated_at, whatever the ticket's.
    let user_at = user.and_then(|u| time(u.get("updated_at")));
    Ok(Some(Record {
        person,
        observed_at: user_at.map_or(ticket_at, |u| u.max(ticket_at)),
        profile: user.cloned().map(Profile::from),
        tags_added: tag_list(ticket.get("tags")),
        tags_now: Some(tag_list(ticket.get("tags"))),
        tag_holder: text(ticket.get("id")).map(|id| format!("ticket:{id}")),
        events,
        ..Default::default()
    }))
}

/// Longest custom field value (as JSON) an event carries: Brevo takes 50 KB of properties per
/// event, and a long text field is rarely what an automation reads.
pub const MAX_CUSTOM_FIELD: usize = 1_000;

/// A ticket's custom fields with a value (`custom_fields: [{id, value}]`) as one object of
/// `"<field id>": value`, for its events' properties; `None` when it has none.
pub(super) fn custom_fields(ticket: &Value) -> Option<Value> {
    let fields: Map<String, Value> = ticket
        .get("custom_fields")?
        .as_array()?
        .iter()
        .filter_map(|f| {
            let value = f.get("value").filter(|v| !v.is_null())?;
            let short = value.to_string().len() <= MAX_CUSTOM_FIELD;
            Some((text(f.get("id"))?, value.clone())).filter(|_| short)
        })
        .collect();
    (!fields.is_empty()).then_some(Value::Object(fields))
}

/// A satisfaction rating as a record for its requester (known by id only). `good`/`bad` (and
/// the legacy `…_with_comment`) are responses, `offered` a sent survey; `unoffered` is nothing.
pub(super) fn rating_record(rating: &Value) -> Result<Option<Record>, String> {
    let id = text(rating.get("id")).unwrap_or_else(|| "?".to_string());
    let score = text(rating.get("score"))
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let created = time(rating.get("created_at"));
    let updated = time(rating.get("updated_at")).or(created);
    let (kind, at, score) = if score.starts_with("good") || score.starts_with("bad") {
        let score = if score.starts_with("good") {
            "good"
        } else {
            "bad"
        };
        (EventKind::SurveyResponded, updated, Some(score))
    } else if score == "offered" {
        (EventKind::SurveySent, created, None)
    } else {
        return Ok(None);
    };
    let Some(requester) = text(rating.get("requester_id")) else {
        return Err(format!("satisfaction rating {id}: no requester_id"));
    };
    let Some(at) = at else {
        return Err(format!(
            "satisfaction rating {id}: no created_at/updated_at"
        ));
    };
    let ticket_id = text(rating.get("ticket_id"));
    // The webhook's `satisfaction.rated` names the ticket: same subject, same id.
    let subject = ticket_id.as_ref().map_or_else(
        || format!("satisfaction_rating:{id}"),
        |t| format!("ticket:{t}"),
    );
    let mut properties = Map::new();
    if let Some(score) = score {
        properties.insert("score".into(), Value::from(score));
        if let Some(comment) = text(rating.get("comment")) {
            properties.insert("remark".into(), Value::from(comment));
        }
    }
    Ok(Some(Record {
        person: Person {
            source_id: Some(requester),
            ..Default::default()
        },
        observed_at: at,
        events: vec![SupportEvent {
            id: SupportEvent::stable_id(&Source::Zendesk, &subject, kind, at),
            kind,
            occurred_at: at,
            ticket_id,
            channel: None,
            properties,
        }],
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ticket_events_carry_the_custom_fields_that_have_a_value() {
        let ticket = json!({"id": 5158, "requester_id": 7, "status": "solved",
            "created_at": "2025-01-08T10:00:00Z", "updated_at": "2025-01-08T11:00:00Z",
            "custom_fields": [{"id": 360001, "value": "refund"}, {"id": 360002, "value": null},
                {"id": 360003, "value": ["a", "b"]}, {"id": 360004, "value": "x".repeat(2_000)}]});
        let record = ticket_record(&ticket, &HashMap::new(), &HashMap::new())
            .expect("valid")
            .expect("a record");
        assert_eq!(record.events.len(), 2);
        for event in &record.events {
            assert_eq!(
                event.properties["custom_fields"],
                json!({"360001": "refund", "360003": ["a", "b"]})
            );
        }
        let plain = json!({"id": 5159, "requester_id": 7, "created_at": "2025-01-08T10:00:00Z"});
        let record = ticket_record(&plain, &HashMap::new(), &HashMap::new())
            .expect("valid")
            .expect("a record");
        assert!(record.events[0].properties.get("custom_fields").is_none());
    }

    #[test]
    fn a_deleted_user_of_the_export_is_a_deletion() {
        let user = serde_json::json!({"id": 8, "email": "gone@example.com", "active": false,
            "role": "end-user", "updated_at": "2026-12-01T10:00:00Z"});
        let record = user_record(&user).expect("a record");
        assert!(record.is_deletion());
        assert_eq!(record.person.source_id.as_deref(), Some("8"));
        assert!(record.profile.is_none() && record.events.is_empty());
        let active =
            serde_json::json!({"id": 9, "active": true, "updated_at": "2026-12-01T10:00:00Z"});
        assert!(!user_record(&active).expect("a record").is_deletion());
    }

    #[test]
    fn user_fields_are_mappable_by_their_path() {
        let user = json!({"id": 7, "email": "jane@example.com", "name": "Jane Doe",
            "updated_at": "2025-01-08T10:00:00Z", "user_fields": {"plan_tier": "gold", "seats": 12}});
        let record = user_record(&user).expect("a record");
        let mut mapping = crate::mapping::Mapping::default();
        let rules = &mut mapping
            .sources
            .get_mut("zendesk")
            .expect("zendesk")
            .field_mapping;
        rules.push(crate::mapping::FieldRule::new(
            "user_fields.plan_tier",
            "PLAN_TIER",
            crate::mapping::Transform::Text,
        ));
        rules.push(crate::mapping::FieldRule::new(
            "user_fields.seats",
            "SEATS",
            crate::mapping::Transform::Number,
        ));
        let contact = mapping.contact(&Source::Zendesk, &record).expect("maps");
        assert_eq!(contact.attributes["PLAN_TIER"], "gold");
        assert_eq!(contact.attributes["SEATS"], 12);
    }
}
