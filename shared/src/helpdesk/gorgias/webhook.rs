//! Gorgias webhooks and the Gorgias customer → [`Person`] conversion.
//!
//! Gorgias has no vendor webhook format: an "HTTP integration" posts whatever body the user
//! defines, rendering `{{ticket.…}}` variables into it. deskbridge documents
//! [`HTTP_TEMPLATE`], which mirrors the field names of a Gorgias ticket object (so the same code
//! reads it and a whole ticket, as sent by a `{{context}}`-style body) plus a `deskbridge_event`
//! discriminator:
//!
//! - `ticket.created` (integration triggered on ticket-created) → a ticket-opened event;
//! - `ticket.updated` (ticket-updated / ticket-message-created), or no discriminator → milestones
//!   derived from the ticket's state: `closed` → ticket closed (at `closed_datetime`), a
//!   satisfaction score → survey responded (at `scored_datetime`). Because those times do not
//!   change on later updates, the derived events keep the same stable id however often the
//!   ticket is re-sent, and the timeline dedupes them;
//! - `ticket.reopened` / `ticket.closed` can also be set explicitly.
//!
//! Gorgias sends no delivery id: the body hash is the dedupe key.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::helpdesk::parse::{Delivery, ParseError, Parsed, body_hash};
pub(crate) use crate::helpdesk::parse::{clean, text, time};
use crate::model::{EventKind, Person, Record, Source, SupportEvent};

/// The JSON body to paste into a Gorgias HTTP integration. Use one integration per
/// `deskbridge_event` value (`ticket.created` on the ticket-created trigger, `ticket.updated` on
/// ticket-updated). Documented in docs/helpdesk-setup.md; tests prove it parses.
pub const HTTP_TEMPLATE: &str = r#"{
  "deskbridge_event": "ticket.created",
  "ticket": {
    "id": "{{ticket.id}}",
    "subject": "{{ticket.subject}}",
    "status": "{{ticket.status}}",
    "channel": "{{ticket.channel}}",
    "via": "{{ticket.via}}",
    "tags": "{{ticket.tags}}",
    "created_datetime": "{{ticket.created_datetime}}",
    "updated_datetime": "{{ticket.updated_datetime}}",
    "closed_datetime": "{{ticket.closed_datetime}}",
    "assignee_user": {"name": "{{ticket.assignee_user.name}}"},
    "satisfaction_survey": {
      "score": "{{ticket.satisfaction_survey.score}}",
      "body_text": "{{ticket.satisfaction_survey.body_text}}",
      "scored_datetime": "{{ticket.satisfaction_survey.scored_datetime}}"
    },
    "customer": {
      "id": "{{ticket.customer.id}}",
      "email": "{{ticket.customer.email}}",
      "name": "{{ticket.customer.name}}",
      "firstname": "{{ticket.customer.firstname}}",
      "lastname": "{{ticket.customer.lastname}}"
    }
  }
}"#;

/// Parses a verified Gorgias HTTP-integration body (already decoded as `value`).
pub fn parse_webhook(
    value: &Value,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ParseError::Invalid("Gorgias body is not a JSON object".into()))?;
    let topic = match obj.get("deskbridge_event") {
        None => "ticket.updated".to_string(),
        Some(v) => text(Some(v))
            .ok_or(ParseError::Missing("deskbridge_event"))?
            .to_ascii_lowercase(),
    };
    let kinds: &[EventKind] = match topic.as_str() {
        "ticket.created" => &[EventKind::TicketCreated],
        "ticket.updated" => &[],
        "ticket.closed" => &[EventKind::TicketClosed],
        "ticket.reopened" => &[EventKind::TicketReopened],
        _ => return Ok(Parsed::Ignored { topic }),
    };
    // Our template nests the ticket under `ticket`; a bare ticket object is read as it is.
    let ticket = match obj.get("ticket") {
        Some(t) if t.is_object() => t,
        Some(_) => return Err(ParseError::Missing("ticket")),
        None if obj.contains_key("customer") => value,
        None => return Err(ParseError::Missing("ticket")),
    };
    let ticket_id = text(ticket.get("id")).ok_or(ParseError::Missing("ticket.id"))?;
    let customer = ticket
        .get("customer")
        .filter(|c| c.is_object())
        .map(clean)
        .ok_or(ParseError::Missing("ticket.customer"))?;
    let person = person_from_customer(&customer);
    if person.source_id.is_none() && person.email.is_none() {
        return Err(ParseError::Missing("ticket.customer.id"));
    }

    let updated = time(ticket.get("updated_datetime")).unwrap_or(received_at);
    let status = text(ticket.get("status")).map(|s| s.to_ascii_lowercase());
    let mut base = Map::new();
    put(&mut base, "subject", text(ticket.get("subject")));
    put(&mut base, "status", status.clone());
    put(
        &mut base,
        "agent_name",
        ticket
            .get("assignee_user")
            .and_then(|a| text(a.get("name"))),
    );
    let channel = text(ticket.get("channel")).map(|c| c.to_ascii_lowercase());
    let new_event =
        |kind: EventKind, at: DateTime<Utc>, properties: Map<String, Value>| SupportEvent {
            id: SupportEvent::stable_id(&Source::Gorgias, &format!("ticket:{ticket_id}"), kind, at),
            kind,
            occurred_at: at,
            ticket_id: Some(ticket_id.clone()),
            channel: channel.clone(),
            properties,
        };

    let mut events = Vec::new();
    for &kind in kinds {
        let at = match kind {
            EventKind::TicketCreated => time(ticket.get("created_datetime")).unwrap_or(updated),
            EventKind::TicketClosed => time(ticket.get("closed_datetime")).unwrap_or(updated),
            _ => updated,
        };
        events.push(new_event(kind, at, base.clone()));
    }
    if topic == "ticket.updated" {
        if status.as_deref() == Some("closed") {
            let at = time(ticket.get("closed_datetime")).unwrap_or(updated);
            events.push(new_event(EventKind::TicketClosed, at, base.clone()));
        }
        if let Some(survey) = ticket.get("satisfaction_survey").filter(|s| s.is_object())
            && let Some(score) = survey_score(survey.get("score"))
        {
            let at = time(survey.get("scored_datetime")).unwrap_or(updated);
            let mut props = base.clone();
            props.insert("score".into(), Value::from(score));
            put(&mut props, "remark", text(survey.get("body_text")));
            events.push(new_event(EventKind::SurveyResponded, at, props));
        }
    }

    let record = Record {
        person,
        observed_at: updated,
        profile: Some(customer.into()),
        tags_added: tags(ticket.get("tags")),
        tags_now: Some(tags(ticket.get("tags"))),
        tag_holder: Some(format!("ticket:{ticket_id}")),
        events,
        ..Default::default()
    };
    Ok(Parsed::Accepted(Delivery {
        delivery_id: body_hash(body),
        topic,
        records: vec![record],
    }))
}

/// The canonical person of a Gorgias customer object. Gorgias keeps phone numbers (and
/// sometimes the email) only in `channels[{type, address}]`.
pub fn person_from_customer(value: &Value) -> Person {
    let channel = |kind: &str| {
        value
            .get("channels")
            .and_then(Value::as_array)
            .and_then(|channels| {
                channels
                    .iter()
                    .filter(|c| text(c.get("type")).as_deref() == Some(kind))
                    .find_map(|c| text(c.get("address")))
            })
    };
    Person {
        source_id: text(value.get("id")),
        email: text(value.get("email")).or_else(|| channel("email")),
        phone: text(value.get("phone")).or_else(|| channel("phone")),
        name: text(value.get("name")),
        first_name: text(value.get("firstname")),
        last_name: text(value.get("lastname")),
        external_id: None,
    }
}

/// A 1–5 satisfaction score from a number or a rendered string.
pub(crate) fn survey_score(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .or_else(|| text(Some(v)).and_then(|t| t.parse::<i64>().ok()))
        .filter(|s| (1..=5).contains(s))
}

/// Tags from a list of strings or `{name}` objects, a JSON list rendered into a string, or a
/// comma-separated string (how a template variable renders a list is not documented).
pub(crate) fn tags(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| text(Some(t)).or_else(|| text(t.get("name"))))
            .collect(),
        Some(Value::String(_)) => match text(v) {
            Some(s) if s.starts_with('[') => match serde_json::from_str::<Value>(&s) {
                Ok(list @ Value::Array(_)) => tags(Some(&list)),
                _ => Vec::new(),
            },
            Some(s) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn put(props: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(v) = value {
        props.insert(key.to_string(), Value::String(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const CREATED: &str = include_str!("../../../tests/fixtures/gorgias/http-ticket-created.json");
    const CLOSED: &str = include_str!("../../../tests/fixtures/gorgias/http-ticket-closed.json");
    const SURVEYED: &str =
        include_str!("../../../tests/fixtures/gorgias/http-ticket-survey-scored.json");
    const WHOLE_TICKET: &str = include_str!("../../../tests/fixtures/gorgias/ticket-object.json");

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 8, 12, 0, 0)
            .single()
            .expect("time")
    }

    fn parse(body: &str) -> Result<Parsed, ParseError> {
        let value = crate::helpdesk::parse::parse_json(body.as_bytes())?;
        parse_webhook(&value, body.as_bytes(), now())
    }

    fn record(body: &str) -> (Delivery, Record) {
        match parse(body) {
            Ok(Parsed::Accepted(mut d)) => {
                assert_eq!(d.records.len(), 1);
                let r = d.records.remove(0);
                (d, r)
            }
            other => panic!("expected an accepted delivery, got {other:?}"),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn ticket_created_from_the_template() {
        let (d, r) = record(CREATED);
        assert_eq!(d.delivery_id, body_hash(CREATED.as_bytes()));
        assert_eq!(d.topic, "ticket.created");
        assert_eq!(r.person.source_id.as_deref(), Some("51234567"));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(r.person.first_name.as_deref(), Some("Jane"));
        assert_eq!(r.person.last_name.as_deref(), Some("Doe"));
        assert_eq!(
            r.tags_added,
            vec!["vip".to_string(), "shipping".to_string()]
        );
        assert_eq!(r.events.len(), 1);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketCreated);
        assert_eq!(e.ticket_id.as_deref(), Some("98765"));
        assert_eq!(e.channel.as_deref(), Some("email"));
        assert_eq!(e.occurred_at, utc("2025-01-08T09:14:02.123456+00:00"));
        assert_eq!(e.properties["subject"], "Where is my order #1042?");
        assert_eq!(e.properties["status"], "open");
        assert!(!e.properties.contains_key("agent_name"));
        // Unrendered or empty template values never reach the profile.
        let profile = r.profile.as_ref().expect("profile");
        assert!(profile.get("lastname").is_some());
        assert_eq!(
            e.id,
            SupportEvent::stable_id(
                &Source::Gorgias,
                "ticket:98765",
                EventKind::TicketCreated,
                e.occurred_at
            )
        );
    }

    #[test]
    fn closed_ticket_update_derives_a_stable_close_event() {
        let (d, r) = record(CLOSED);
        assert_eq!(d.topic, "ticket.updated");
        assert_eq!(r.events.len(), 1);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketClosed);
        assert_eq!(e.occurred_at, utc("2025-01-08T11:30:00+00:00"));
        assert_eq!(e.properties["agent_name"], "Sam Agent");
        // A later update of the same closed ticket yields the same event id.
        let later = CLOSED.replace("2025-01-08T11:31:10", "2025-01-08T15:00:00");
        assert_eq!(record(&later).1.events[0].id, e.id);
    }

    #[test]
    fn survey_scores_become_responses() {
        let (_, r) = record(SURVEYED);
        let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::TicketClosed, EventKind::SurveyResponded]
        );
        let survey = &r.events[1];
        assert_eq!(survey.properties["score"], 4);
        assert_eq!(survey.properties["remark"], "Fast answer");
        assert_eq!(survey.occurred_at, utc("2025-01-09T08:00:00+00:00"));
        let out_of_range = SURVEYED.replace("\"score\": \"4\"", "\"score\": \"7\"");
        assert_eq!(record(&out_of_range).1.events.len(), 1);
    }

    #[test]
    fn a_whole_ticket_object_is_accepted() {
        let (d, r) = record(WHOLE_TICKET);
        assert_eq!(d.topic, "ticket.updated");
        assert_eq!(r.person.source_id.as_deref(), Some("51234567"));
        assert_eq!(r.person.phone.as_deref(), Some("+1 415 555 0177"));
        assert_eq!(
            r.tags_added,
            vec!["vip".to_string(), "shipping".to_string()]
        );
        let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::TicketClosed, EventKind::SurveyResponded]
        );
        assert_eq!(r.events[1].properties["score"], 5);
    }

    #[test]
    fn explicit_and_unknown_discriminators() {
        let reopened = CREATED.replace("\"ticket.created\"", "\"ticket.reopened\"");
        assert_eq!(
            record(&reopened).1.events[0].kind,
            EventKind::TicketReopened
        );
        let other = CREATED.replace("\"ticket.created\"", "\"ticket.snoozed\"");
        assert_eq!(
            parse(&other),
            Ok(Parsed::Ignored {
                topic: "ticket.snoozed".into()
            })
        );
    }

    #[test]
    fn the_documented_template_parses_even_unrendered() {
        assert_eq!(parse(HTTP_TEMPLATE), Err(ParseError::Missing("ticket.id")));
        let rendered = HTTP_TEMPLATE
            .replace("{{ticket.id}}", "1")
            .replace("{{ticket.customer.id}}", "2");
        let (_, r) = record(&rendered);
        assert_eq!(
            r.person,
            Person {
                source_id: Some("2".into()),
                ..Default::default()
            }
        );
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].occurred_at, now());
        assert!(r.tags_added.is_empty());
    }

    #[test]
    fn the_setup_guide_shows_the_http_template() {
        // docs/helpdesk-setup.md is what users paste: it must be exactly what we parse.
        let guide = include_str!("../../../../docs/helpdesk-setup.md");
        assert!(guide.contains(HTTP_TEMPLATE));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for (body, err) in [
            (
                "[]",
                ParseError::Invalid("Gorgias body is not a JSON object".into()),
            ),
            (
                r#"{"deskbridge_event":null}"#,
                ParseError::Missing("deskbridge_event"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created"}"#,
                ParseError::Missing("ticket"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created","ticket":"5"}"#,
                ParseError::Missing("ticket"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created","ticket":{"customer":{}}}"#,
                ParseError::Missing("ticket.id"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created","ticket":{"id":5}}"#,
                ParseError::Missing("ticket.customer"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created","ticket":{"id":5,"customer":{"name":"x"}}}"#,
                ParseError::Missing("ticket.customer.id"),
            ),
            (r#"{"hello":"world"}"#, ParseError::Missing("ticket")),
        ] {
            assert_eq!(parse(body), Err(err), "{body}");
        }
    }

    #[test]
    fn tags_render_leniently() {
        let s = |v: Value| tags(Some(&v));
        assert_eq!(
            s(serde_json::json!("vip, shipping")),
            vec!["vip", "shipping"]
        );
        assert_eq!(
            s(serde_json::json!(r#"["vip","shipping"]"#)),
            vec!["vip", "shipping"]
        );
        assert_eq!(
            s(serde_json::json!([{"name": "vip"}, "shipping", 3])),
            vec!["vip", "shipping", "3"]
        );
        assert!(s(serde_json::json!("[not json")).is_empty());
        assert!(s(serde_json::json!({"a": 1})).is_empty());
    }

    #[test]
    fn customers_take_phone_and_email_from_channels() {
        let p = person_from_customer(&serde_json::json!({"id": 51234567, "name": "Jane Doe",
            "firstname": "Jane", "lastname": "Doe", "email": null,
            "channels": [{"type": "phone", "address": "+1 415 555 0177"},
                         {"type": "email", "address": "jane.doe@example.com"}]}));
        assert_eq!(p.source_id.as_deref(), Some("51234567"));
        assert_eq!(p.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(p.phone.as_deref(), Some("+1 415 555 0177"));
        assert_eq!(p.first_name.as_deref(), Some("Jane"));
        assert_eq!(
            person_from_customer(&serde_json::json!({"channels": "x"})),
            Person::default()
        );
    }
}
