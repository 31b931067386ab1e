//! Zendesk webhooks: event-subscription envelopes and trigger/automation bodies built from
//! deskbridge's JSON template, plus the Zendesk user → [`Person`] conversion.
//!
//! Zendesk offers two mutually exclusive ways to connect a webhook:
//! - **event subscriptions** send a vendor envelope
//!   `{"type":"zen:event-type:…","id":…,"time":…,"subject":…,"detail":{…},"event":{…}}`;
//! - **triggers/automations** send whatever body the trigger defines. deskbridge documents
//!   [`TRIGGER_TEMPLATE`] for that, with a `deskbridge_event` discriminator the user picks per
//!   trigger (Zendesk renders placeholders as strings, so everything there is parsed leniently).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::helpdesk::parse::{Delivery, ParseError, Parsed, body_hash};
pub(crate) use crate::helpdesk::parse::{clean, text, time};
use crate::model::{EventKind, Person, Presence, Record, Source, SupportEvent};

/// Header Zendesk sets on every webhook invocation; the dedupe key of trigger deliveries.
pub const INVOCATION_ID_HEADER: &str = "X-Zendesk-Webhook-Invocation-Id";

/// Prefix of event-subscription types (`zen:event-type:ticket.created`).
const EVENT_TYPE_PREFIX: &str = "zen:event-type:";

/// The JSON body to paste into a Zendesk trigger's "Notify webhook" action. Set
/// `deskbridge_event` per trigger to one of [`TRIGGER_EVENTS`]. Documented in
/// docs/helpdesk-setup.md; kept here so tests prove the documented template parses.
pub const TRIGGER_TEMPLATE: &str = r#"{
  "deskbridge_event": "ticket.created",
  "ticket": {
    "id": "{{ticket.id}}",
    "title": "{{ticket.title}}",
    "status": "{{ticket.status}}",
    "priority": "{{ticket.priority}}",
    "via": "{{ticket.via}}",
    "tags": "{{ticket.tags}}",
    "updated_at": "{{ticket.updated_at_with_timestamp}}",
    "assignee_name": "{{ticket.assignee.name}}",
    "satisfaction_rating": "{{satisfaction.current_rating}}",
    "satisfaction_comment": "{{satisfaction.current_comment}}"
  },
  "requester": {
    "id": "{{ticket.requester.id}}",
    "email": "{{ticket.requester.email}}",
    "name": "{{ticket.requester.name}}",
    "first_name": "{{ticket.requester.first_name}}",
    "last_name": "{{ticket.requester.last_name}}",
    "phone": "{{ticket.requester.phone}}",
    "external_id": "{{ticket.requester.external_id}}"
  }
}"#;

/// Values of `deskbridge_event` the trigger template accepts.
pub const TRIGGER_EVENTS: [&str; 5] = [
    "ticket.created",
    "ticket.solved",
    "ticket.reopened",
    "satisfaction.rated",
    "ticket.updated",
];

/// Parses a verified Zendesk webhook body (already decoded as `value`).
pub fn parse_webhook(
    value: &Value,
    headers: &http::HeaderMap,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ParseError::Invalid("Zendesk body is not a JSON object".into()))?;
    if let Some(kind) = obj.get("type").and_then(Value::as_str)
        && kind.starts_with(EVENT_TYPE_PREFIX)
    {
        return parse_event(obj, kind, received_at);
    }
    if obj.contains_key("deskbridge_event") {
        let delivery_id = headers
            .get(INVOCATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map_or_else(|| body_hash(body), str::to_string);
        return parse_trigger(obj, delivery_id, received_at);
    }
    Err(ParseError::Invalid(
        "neither a Zendesk event envelope (`type`) nor a deskbridge trigger body (`deskbridge_event`)"
            .into(),
    ))
}

/// The canonical person of a Zendesk user object (API or webhook `detail`; ids as numbers or
/// strings). Zendesk users have one `name`; first/last are left to the name split.
pub fn person_from_user(value: &Value) -> Person {
    Person {
        source_id: text(value.get("id")),
        email: text(value.get("email")),
        phone: text(value.get("phone")),
        name: text(value.get("name")),
        first_name: text(value.get("first_name")),
        last_name: text(value.get("last_name")),
        external_id: text(value.get("external_id")),
    }
}

// ---------------------------------------------------------------------------------------------
// Event subscriptions

/// What carries a ticket's tags: the ticket (see [`crate::tags`]).
fn ticket_holder(ticket: &Value) -> Option<String> {
    text(ticket.get("id")).map(|id| format!("ticket:{id}"))
}

fn parse_event(
    obj: &Map<String, Value>,
    kind: &str,
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let topic = kind.trim_start_matches(EVENT_TYPE_PREFIX);
    let delivery_id = text(obj.get("id")).ok_or(ParseError::Missing("id"))?;
    let detail = obj
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(ParseError::Missing("detail"))?;
    let event = obj.get("event");
    let at = time(obj.get("time"))
        .or_else(|| time(detail.get("updated_at")))
        .unwrap_or(received_at);

    let record = match topic {
        "ticket.created" => {
            let mut r = ticket_record(detail, at)?;
            r.tags_added = tag_list(detail.get("tags"));
            r.tags_now = Some(r.tags_added.clone());
            r.tag_holder = ticket_holder(detail);
            r.events
                .push(ticket_event(EventKind::TicketCreated, detail, at)?);
            r
        }
        "ticket.status_changed" => {
            let mut r = ticket_record(detail, at)?;
            let current = event
                .and_then(|e| status_of(e.get("current")))
                .or_else(|| status_of(detail.get("status")));
            let previous = event.and_then(|e| status_of(e.get("previous")));
            if let Some(kind) = status_transition(current.as_deref(), previous.as_deref()) {
                r.events.push(ticket_event(kind, detail, at)?);
            }
            r
        }
        "ticket.tags_changed" => {
            // The exact `event` shape of this type is not in the docs we hold: accept
            // `tags_added`/`tags_removed`, `added`/`removed`, or `current`/`previous` lists.
            let mut r = ticket_record(detail, at)?;
            let e = event.ok_or(ParseError::Missing("event"))?;
            let (mut added, mut removed) = (
                tag_list(e.get("tags_added").or_else(|| e.get("added"))),
                tag_list(e.get("tags_removed").or_else(|| e.get("removed"))),
            );
            if added.is_empty() && removed.is_empty() {
                let current = tag_list(e.get("current"));
                let previous = tag_list(e.get("previous"));
                added = current
                    .iter()
                    .filter(|t| !previous.contains(t))
                    .cloned()
                    .collect();
                removed = previous
                    .iter()
                    .filter(|t| !current.contains(t))
                    .cloned()
                    .collect();
            }
            r.tags_added = added;
            r.tags_removed = removed;
            r.tag_holder = ticket_holder(detail);
            r
        }
        // A deleted user, or one made inactive (Zendesk's soft deletion): what it does in
        // Brevo is the `deletions` policy's (see `crate::deletions`).
        "user.deleted" | "user.permanently_deleted" => user_deletion(detail, at)?,
        "user.active_changed"
            if event.and_then(|e| e.get("current")) == Some(&Value::Bool(false)) =>
        {
            user_deletion(detail, at)?
        }
        t if t.starts_with("user.") => {
            let person = person_from_user(detail);
            if person.source_id.is_none() && person.email.is_none() {
                return Err(ParseError::Missing("detail.id"));
            }
            let mut r = Record {
                person,
                observed_at: at,
                profile: Some(detail.clone().into()),
                ..Default::default()
            };
            if t == "user.active_changed" {
                // Active again: the person's records are written again after a deletion.
                r.presence = Some(Presence::Restored);
            }
            if t == "user.created" {
                let created = time(detail.get("created_at")).unwrap_or(at);
                let subject = format!("user:{}", r.person.source_id.as_deref().unwrap_or_default());
                r.events.push(SupportEvent {
                    id: SupportEvent::stable_id(
                        &Source::Zendesk,
                        &subject,
                        EventKind::CustomerCreated,
                        created,
                    ),
                    kind: EventKind::CustomerCreated,
                    occurred_at: created,
                    ticket_id: None,
                    channel: None,
                    properties: Map::new(),
                });
            }
            r
        }
        _ => {
            return Ok(Parsed::Ignored {
                topic: kind.to_string(),
            });
        }
    };
    Ok(Parsed::Accepted(Delivery {
        delivery_id,
        topic: kind.to_string(),
        records: vec![record],
    }))
}

/// The deletion record of the user a user event's `detail` describes.
fn user_deletion(detail: &Value, at: DateTime<Utc>) -> Result<Record, ParseError> {
    let person = person_from_user(detail);
    if person.source_id.is_none() {
        return Err(ParseError::Missing("detail.id"));
    }
    Ok(Record::deletion(person, at))
}

/// The record of a ticket event: the person is named only by `requester_id` and is looked up
/// through the API later.
fn ticket_record(detail: &Value, at: DateTime<Utc>) -> Result<Record, ParseError> {
    let requester =
        text(detail.get("requester_id")).ok_or(ParseError::Missing("detail.requester_id"))?;
    Ok(Record {
        person: Person {
            source_id: Some(requester),
            ..Default::default()
        },
        observed_at: at,
        ..Default::default()
    })
}

/// A timeline event from a ticket `detail` object.
pub(crate) fn ticket_event(
    kind: EventKind,
    detail: &Value,
    at: DateTime<Utc>,
) -> Result<SupportEvent, ParseError> {
    let ticket_id = text(detail.get("id")).ok_or(ParseError::Missing("detail.id"))?;
    let mut properties = Map::new();
    put(&mut properties, "subject", text(detail.get("subject")));
    put(&mut properties, "status", status_of(detail.get("status")));
    put(
        &mut properties,
        "priority",
        text(detail.get("priority")).map(|p| p.to_ascii_lowercase()),
    );
    Ok(SupportEvent {
        id: SupportEvent::stable_id(&Source::Zendesk, &format!("ticket:{ticket_id}"), kind, at),
        kind,
        occurred_at: at,
        ticket_id: Some(ticket_id),
        channel: detail
            .get("via")
            .and_then(|v| text(v.get("channel")))
            .map(|c| channel_name(&c)),
        properties,
    })
}

/// A status as lower-case text, from a string or a `{"status": …}` object.
fn status_of(v: Option<&Value>) -> Option<String> {
    let v = v?;
    text(Some(v))
        .or_else(|| text(v.get("status")))
        .map(|s| s.to_ascii_lowercase())
}

fn is_done(status: &str) -> bool {
    matches!(status, "solved" | "closed")
}

/// The milestone a status change is, if any: entering solved/closed from an open state (or from
/// an unknown one) closes the ticket; leaving solved/closed for an active state reopens it.
/// Solved → closed is the same resolution and yields nothing.
fn status_transition(current: Option<&str>, previous: Option<&str>) -> Option<EventKind> {
    let current = current?;
    let was_done = previous.is_some_and(is_done);
    if is_done(current) {
        (!was_done).then_some(EventKind::TicketClosed)
    } else if was_done && matches!(current, "new" | "open" | "pending" | "hold") {
        Some(EventKind::TicketReopened)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Trigger bodies (deskbridge template)

fn parse_trigger(
    obj: &Map<String, Value>,
    delivery_id: String,
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let topic = text(obj.get("deskbridge_event"))
        .ok_or(ParseError::Missing("deskbridge_event"))?
        .to_ascii_lowercase();
    if !TRIGGER_EVENTS.contains(&topic.as_str()) && topic != "ticket.closed" {
        return Ok(Parsed::Ignored { topic });
    }
    let ticket = obj
        .get("ticket")
        .filter(|t| t.is_object())
        .ok_or(ParseError::Missing("ticket"))?;
    let ticket_id = text(ticket.get("id")).ok_or(ParseError::Missing("ticket.id"))?;
    let requester = obj
        .get("requester")
        .filter(|r| r.is_object())
        .ok_or(ParseError::Missing("requester"))?;
    let profile = clean(requester);
    let person = person_from_user(&profile);
    if person.source_id.is_none() && person.email.is_none() {
        return Err(ParseError::Missing("requester.id"));
    }
    let at = time(ticket.get("updated_at")).unwrap_or(received_at);
    let status = text(ticket.get("status")).map(|s| s.to_ascii_lowercase());

    let mut properties = Map::new();
    put(&mut properties, "subject", text(ticket.get("title")));
    put(&mut properties, "status", status.clone());
    put(
        &mut properties,
        "priority",
        text(ticket.get("priority")).map(|p| p.to_ascii_lowercase()),
    );
    put(
        &mut properties,
        "agent_name",
        text(ticket.get("assignee_name")),
    );

    let kind = match topic.as_str() {
        "ticket.created" => Some(EventKind::TicketCreated),
        "ticket.solved" | "ticket.closed" => Some(EventKind::TicketClosed),
        "ticket.reopened" => Some(EventKind::TicketReopened),
        "satisfaction.rated" => {
            let rating = text(ticket.get("satisfaction_rating")).map(|r| r.to_ascii_lowercase());
            match rating.as_deref() {
                Some(r) if r.starts_with("good") || r.starts_with("bad") => {
                    let score = if r.starts_with("good") { "good" } else { "bad" };
                    put(&mut properties, "score", Some(score.to_string()));
                    put(
                        &mut properties,
                        "remark",
                        text(ticket.get("satisfaction_comment")),
                    );
                    Some(EventKind::SurveyResponded)
                }
                Some(r) if r.starts_with("offered") => Some(EventKind::SurveySent),
                // "unoffered" or nothing: no survey happening to report.
                _ => None,
            }
        }
        _ => None, // ticket.updated: refresh the person only.
    };

    let record = Record {
        person,
        observed_at: at,
        profile: Some(profile.into()),
        tags_added: space_tags(ticket.get("tags")),
        tags_now: Some(space_tags(ticket.get("tags"))),
        tag_holder: Some(format!("ticket:{ticket_id}")),
        events: kind
            .map(|kind| SupportEvent {
                id: SupportEvent::stable_id(
                    &Source::Zendesk,
                    &format!("ticket:{ticket_id}"),
                    kind,
                    at,
                ),
                kind,
                occurred_at: at,
                ticket_id: Some(ticket_id.clone()),
                channel: text(ticket.get("via")).map(|c| channel_name(&c)),
                properties,
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    Ok(Parsed::Accepted(Delivery {
        delivery_id,
        topic,
        records: vec![record],
    }))
}

// ---------------------------------------------------------------------------------------------
// Small lenient readers

/// Tags from a JSON list of strings.
pub(crate) fn tag_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(|t| text(Some(t))).collect(),
        _ => Vec::new(),
    }
}

/// Tags from `{{ticket.tags}}`, which Zendesk renders space-separated (a list also works).
fn space_tags(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(_)) => tag_list(v),
        _ => text(v)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

/// A channel as a lower-case token (`Web Form` → `web_form`).
fn channel_name(raw: &str) -> String {
    raw.trim()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
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
    use http::{HeaderMap, HeaderValue};

    const TICKET_CREATED: &str =
        include_str!("../../../tests/fixtures/zendesk/event-ticket-created.json");
    const STATUS_SOLVED: &str =
        include_str!("../../../tests/fixtures/zendesk/event-ticket-status-solved.json");
    const STATUS_REOPENED: &str =
        include_str!("../../../tests/fixtures/zendesk/event-ticket-status-reopened.json");
    const TAGS_CHANGED: &str =
        include_str!("../../../tests/fixtures/zendesk/event-ticket-tags-changed.json");
    const USER_CREATED: &str =
        include_str!("../../../tests/fixtures/zendesk/event-user-created.json");
    const USER_ACTIVE: &str =
        include_str!("../../../tests/fixtures/zendesk/event-user-active-changed.json");
    const ORG_CREATED: &str =
        include_str!("../../../tests/fixtures/zendesk/event-organization-created.json");
    const TRIGGER_CREATED: &str =
        include_str!("../../../tests/fixtures/zendesk/trigger-ticket-created.json");
    const TRIGGER_SOLVED: &str =
        include_str!("../../../tests/fixtures/zendesk/trigger-ticket-solved.json");
    const TRIGGER_RATED: &str =
        include_str!("../../../tests/fixtures/zendesk/trigger-satisfaction-rated.json");

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 8, 10, 15, 0)
            .single()
            .expect("time")
    }

    fn parse_with(body: &str, headers: &HeaderMap) -> Result<Parsed, ParseError> {
        let value = crate::helpdesk::parse::parse_json(body.as_bytes())?;
        parse_webhook(&value, headers, body.as_bytes(), now())
    }

    fn parse(body: &str) -> Result<Parsed, ParseError> {
        parse_with(body, &HeaderMap::new())
    }

    fn accepted(body: &str) -> Delivery {
        match parse(body) {
            Ok(Parsed::Accepted(d)) => d,
            other => panic!("expected an accepted delivery, got {other:?}"),
        }
    }

    fn only_record(d: &Delivery) -> &Record {
        assert_eq!(d.records.len(), 1);
        &d.records[0]
    }

    #[test]
    fn ticket_created_event_names_the_requester_by_id() {
        let d = accepted(TICKET_CREATED);
        assert_eq!(d.delivery_id, "8c1f4f7e-6c2b-4d52-9a4c-2f3b7f0c1a11");
        assert_eq!(d.topic, "zen:event-type:ticket.created");
        let r = only_record(&d);
        assert_eq!(r.person.source_id.as_deref(), Some("8447388090494"));
        assert!(r.person.needs_lookup());
        assert_eq!(r.profile, None);
        assert_eq!(r.tags_added, vec!["vip".to_string(), "billing".to_string()]);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketCreated);
        assert_eq!(e.ticket_id.as_deref(), Some("5158"));
        assert_eq!(e.channel.as_deref(), Some("web"));
        assert_eq!(e.properties["subject"], "Refund for order 1042");
        assert_eq!(e.properties["status"], "new");
        assert_eq!(e.properties["priority"], "normal");
        let at = Utc
            .with_ymd_and_hms(2025, 1, 8, 10, 2, 41)
            .single()
            .expect("time");
        assert_eq!(e.occurred_at, at);
        assert_eq!(r.observed_at, at);
        assert_eq!(
            e.id,
            SupportEvent::stable_id(
                &Source::Zendesk,
                "ticket:5158",
                EventKind::TicketCreated,
                at
            )
        );
    }

    #[test]
    fn status_changes_close_and_reopen() {
        let d = accepted(STATUS_SOLVED);
        let r = only_record(&d);
        assert_eq!(r.person.source_id.as_deref(), Some("8447388090494"));
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].kind, EventKind::TicketClosed);
        assert_eq!(r.events[0].properties["status"], "solved");
        let solved_at = Utc
            .with_ymd_and_hms(2025, 1, 8, 10, 12, 7)
            .single()
            .expect("time");
        // Sub-second precision of the envelope `time` is kept.
        assert_eq!(r.events[0].occurred_at.timestamp(), solved_at.timestamp());
        assert_eq!(
            r.events[0].id,
            SupportEvent::stable_id(
                &Source::Zendesk,
                "ticket:5158",
                EventKind::TicketClosed,
                solved_at
            )
        );

        let d = accepted(STATUS_REOPENED);
        assert_eq!(only_record(&d).events[0].kind, EventKind::TicketReopened);
    }

    #[test]
    fn status_transitions_are_read_case_insensitively() {
        use EventKind::*;
        let t = |c: &str, p: Option<&str>| {
            status_transition(
                Some(&c.to_ascii_lowercase()),
                p.map(str::to_ascii_lowercase).as_deref(),
            )
        };
        assert_eq!(t("SOLVED", Some("OPEN")), Some(TicketClosed));
        assert_eq!(t("Closed", Some("pending")), Some(TicketClosed));
        assert_eq!(t("CLOSED", None), Some(TicketClosed));
        assert_eq!(t("CLOSED", Some("SOLVED")), None);
        assert_eq!(t("OPEN", Some("SOLVED")), Some(TicketReopened));
        assert_eq!(t("hold", Some("closed")), Some(TicketReopened));
        assert_eq!(t("PENDING", Some("OPEN")), None);
        assert_eq!(t("OPEN", None), None);
        assert_eq!(t("DELETED", Some("SOLVED")), None);
    }

    #[test]
    fn other_status_changes_only_reference_the_person() {
        let body = STATUS_SOLVED.replace("\"current\": \"SOLVED\"", "\"current\": \"PENDING\"");
        let d = accepted(&body);
        let r = only_record(&d);
        assert!(r.events.is_empty());
        assert_eq!(r.person.source_id.as_deref(), Some("8447388090494"));
    }

    #[test]
    fn tags_changed_become_tag_deltas() {
        let d = accepted(TAGS_CHANGED);
        let r = only_record(&d);
        assert_eq!(r.tags_added, vec!["vip".to_string()]);
        assert_eq!(r.tags_removed, vec!["trial".to_string()]);
        assert!(r.events.is_empty());
        // The current/previous form gives the same delta.
        let v = serde_json::json!({"type": "zen:event-type:ticket.tags_changed", "id": "x",
            "detail": {"id": "1", "requester_id": 7},
            "event": {"current": ["vip", "billing"], "previous": ["billing", "trial"]}});
        let Ok(Parsed::Accepted(d)) = parse(&v.to_string()) else {
            panic!("accepted")
        };
        assert_eq!(d.records[0].tags_added, vec!["vip".to_string()]);
        assert_eq!(d.records[0].tags_removed, vec!["trial".to_string()]);
    }

    #[test]
    fn user_created_carries_the_profile_and_an_event() {
        let d = accepted(USER_CREATED);
        let r = only_record(&d);
        assert_eq!(r.person.source_id.as_deref(), Some("6596848315901"));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(
            r.profile.as_ref().and_then(|p| p.get("role")),
            Some(&Value::from("end-user"))
        );
        assert_eq!(r.events[0].kind, EventKind::CustomerCreated);
        let created = Utc
            .with_ymd_and_hms(2025, 1, 8, 10, 7, 58)
            .single()
            .expect("time");
        assert_eq!(r.events[0].occurred_at, created);
        let id = SupportEvent::stable_id(
            &Source::Zendesk,
            "user:6596848315901",
            EventKind::CustomerCreated,
            created,
        );
        assert_eq!(r.events[0].id, id);
    }

    #[test]
    fn deleted_and_deactivated_users_are_deletions_and_reactivated_ones_restored() {
        // The fixture makes the user inactive: Zendesk's soft deletion.
        let d = accepted(USER_ACTIVE);
        let r = only_record(&d);
        assert!(r.is_deletion());
        assert!(r.events.is_empty() && r.profile.is_none());
        assert_eq!(r.person.source_id.as_deref(), Some("6596848315901"));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        for topic in ["user.deleted", "user.permanently_deleted"] {
            let deleted = USER_ACTIVE.replace("user.active_changed", topic);
            assert!(only_record(&accepted(&deleted)).is_deletion(), "{topic}");
        }
        let active = USER_ACTIVE.replace(
            r#""current": false, "previous": true"#,
            r#""current": true, "previous": false"#,
        );
        let r = only_record(&accepted(&active)).clone();
        assert_eq!(r.presence, Some(Presence::Restored));
        assert!(r.profile.is_some());
        let nameless = USER_ACTIVE.replace(r#""id": "6596848315901","#, "");
        assert_eq!(parse(&nameless), Err(ParseError::Missing("detail.id")));
    }

    #[test]
    fn other_user_events_update_the_profile_only() {
        let changed = USER_ACTIVE.replace("user.active_changed", "user.name_changed");
        let d = accepted(&changed);
        let r = only_record(&d);
        assert!(r.events.is_empty());
        assert!(r.profile.is_some());
        assert_eq!(r.presence, None);
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
    }

    #[test]
    fn unknown_event_types_are_ignored() {
        assert_eq!(
            parse(ORG_CREATED),
            Ok(Parsed::Ignored {
                topic: "zen:event-type:organization.created".into()
            })
        );
        let comment = TICKET_CREATED.replace("ticket.created", "ticket.comment_added");
        assert!(matches!(parse(&comment), Ok(Parsed::Ignored { .. })));
    }

    #[test]
    fn trigger_ticket_created_has_a_full_person() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-zendesk-webhook-invocation-id",
            HeaderValue::from_static("inv-123"),
        );
        let Ok(Parsed::Accepted(d)) = parse_with(TRIGGER_CREATED, &headers) else {
            panic!("accepted")
        };
        assert_eq!(d.delivery_id, "inv-123");
        assert_eq!(d.topic, "ticket.created");
        let r = only_record(&d);
        assert_eq!(r.person.source_id.as_deref(), Some("8447388090494"));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(r.person.name.as_deref(), Some("Jane Doe"));
        assert_eq!(r.person.phone.as_deref(), Some("+1 415 555 0123"));
        assert!(!r.person.needs_lookup());
        let profile = r.profile.as_ref().expect("profile");
        // Empty placeholders are dropped from the profile.
        assert!(profile.get("external_id").is_none());
        assert_eq!(r.tags_added, vec!["vip".to_string(), "billing".to_string()]);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketCreated);
        assert_eq!(e.channel.as_deref(), Some("web_form"));
        assert_eq!(e.properties["agent_name"], "Sam Agent");
        assert_eq!(
            e.occurred_at,
            Utc.with_ymd_and_hms(2025, 1, 8, 10, 2, 41)
                .single()
                .expect("time")
        );
        // Without the header, the body hash is the delivery id.
        assert_eq!(
            accepted(TRIGGER_CREATED).delivery_id,
            body_hash(TRIGGER_CREATED.as_bytes())
        );
    }

    #[test]
    fn trigger_solved_and_ratings() {
        let d = accepted(TRIGGER_SOLVED);
        assert_eq!(only_record(&d).events[0].kind, EventKind::TicketClosed);

        let d = accepted(TRIGGER_RATED);
        let e = &only_record(&d).events[0];
        assert_eq!(e.kind, EventKind::SurveyResponded);
        assert_eq!(e.properties["score"], "good");
        assert_eq!(e.properties["remark"], "Quick and friendly, thanks!");

        let bad = TRIGGER_RATED.replace("\"Good\"", "\"Bad\"");
        assert_eq!(
            only_record(&accepted(&bad)).events[0].properties["score"],
            "bad"
        );
        let offered = TRIGGER_RATED.replace("\"Good\"", "\"Offered\"");
        assert_eq!(
            only_record(&accepted(&offered)).events[0].kind,
            EventKind::SurveySent
        );
        let unoffered = TRIGGER_RATED.replace("\"Good\"", "\"Unoffered\"");
        assert!(only_record(&accepted(&unoffered)).events.is_empty());
    }

    #[test]
    fn trigger_updated_refreshes_the_person_and_unknown_kinds_are_ignored() {
        let updated = TRIGGER_CREATED.replace("\"ticket.created\"", "\"ticket.updated\"");
        let d = accepted(&updated);
        assert!(only_record(&d).events.is_empty());
        assert!(only_record(&d).profile.is_some());
        let other = TRIGGER_CREATED.replace("\"ticket.created\"", "\"ticket.escalated\"");
        assert_eq!(
            parse(&other),
            Ok(Parsed::Ignored {
                topic: "ticket.escalated".into()
            })
        );
    }

    #[test]
    fn the_documented_template_parses_even_unrendered() {
        // Zendesk's "Test webhook" button sends placeholders unrendered: that is a parse error
        // (no ticket id), never a panic and never a record full of `{{…}}`.
        assert_eq!(
            parse(TRIGGER_TEMPLATE),
            Err(ParseError::Missing("ticket.id"))
        );
        let rendered = TRIGGER_TEMPLATE
            .replace("{{ticket.id}}", "42")
            .replace("{{ticket.requester.id}}", "7");
        let d = accepted(&rendered);
        let r = only_record(&d);
        assert_eq!(r.person.source_id.as_deref(), Some("7"));
        assert_eq!(r.person.email, None);
        assert_eq!(r.events[0].occurred_at, now());
        assert!(r.tags_added.is_empty());
    }

    #[test]
    fn the_setup_guide_shows_the_trigger_template() {
        // docs/helpdesk-setup.md is what users paste: it must be exactly what we parse.
        let guide = include_str!("../../../../docs/helpdesk-setup.md");
        assert!(guide.contains(TRIGGER_TEMPLATE));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for (body, err) in [
            (
                "[]",
                ParseError::Invalid("Zendesk body is not a JSON object".into()),
            ),
            (
                "\"text\"",
                ParseError::Invalid("Zendesk body is not a JSON object".into()),
            ),
            (
                r#"{"type":"zen:event-type:ticket.created","detail":{}}"#,
                ParseError::Missing("id"),
            ),
            (
                r#"{"type":"zen:event-type:ticket.created","id":"a"}"#,
                ParseError::Missing("detail"),
            ),
            (
                r#"{"type":"zen:event-type:ticket.created","id":"a","detail":[]}"#,
                ParseError::Missing("detail"),
            ),
            (
                r#"{"type":"zen:event-type:ticket.created","id":"a","detail":{"id":"1"}}"#,
                ParseError::Missing("detail.requester_id"),
            ),
            (
                r#"{"type":"zen:event-type:ticket.created","id":"a","detail":{"requester_id":{"x":1}}}"#,
                ParseError::Missing("detail.requester_id"),
            ),
            (
                r#"{"type":"zen:event-type:ticket.tags_changed","id":"a","detail":{"requester_id":1}}"#,
                ParseError::Missing("event"),
            ),
            (
                r#"{"type":"zen:event-type:user.created","id":"a","detail":{}}"#,
                ParseError::Missing("detail.id"),
            ),
            (
                r#"{"deskbridge_event":{}}"#,
                ParseError::Missing("deskbridge_event"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created"}"#,
                ParseError::Missing("ticket"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created","ticket":{"id":1}}"#,
                ParseError::Missing("requester"),
            ),
            (
                r#"{"deskbridge_event":"ticket.created","ticket":{"id":1},"requester":{"name":"x"}}"#,
                ParseError::Missing("requester.id"),
            ),
        ] {
            assert_eq!(parse(body), Err(err), "{body}");
        }
        assert!(matches!(
            parse(r#"{"hello":"world"}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(parse("{"), Err(ParseError::NotJson(_))));
    }

    #[test]
    fn users_become_people_with_numeric_or_string_ids() {
        let p = person_from_user(
            &serde_json::json!({"id": 35436, "email": "jane.doe@example.com",
            "name": "Jane Doe", "phone": "+1 415 555 0123", "role": "end-user"}),
        );
        assert_eq!(p.source_id.as_deref(), Some("35436"));
        assert_eq!(p.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(p.phone.as_deref(), Some("+1 415 555 0123"));
        assert_eq!(p.name.as_deref(), Some("Jane Doe"));
        let p = person_from_user(&serde_json::json!({"id": "35436", "phone": null, "email": ""}));
        assert_eq!(
            p,
            Person {
                source_id: Some("35436".into()),
                ..Default::default()
            }
        );
        assert_eq!(person_from_user(&Value::Null), Person::default());
        // The customer's own id, also from the trigger template (unrendered when there is none).
        let p = person_from_user(&serde_json::json!({"id": 1, "external_id": "crm-77"}));
        assert_eq!(p.external_id.as_deref(), Some("crm-77"));
        let p = person_from_user(
            &serde_json::json!({"id": 1, "external_id": "{{ticket.requester.external_id}}"}),
        );
        assert_eq!(p.external_id, None);
    }
}
