//! Intercom conversations and tickets as milestones of their contact, with what an AI agent
//! (Fin) did in them. The webhook parser and the batch sync read them the same way, so both give
//! a happening the same stable id.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::fields::{event, person_from_contact, put, text, time};
use crate::helpdesk::parse::ParseError;
use crate::model::{EventKind, Person, Record, SupportEvent};

/// A conversation milestone, with what the conversation says of its AI agent's outcome.
pub(super) fn with_ai(
    item: &Value,
    kind: EventKind,
    sent_at: DateTime<Utc>,
) -> Result<Record, ParseError> {
    let mut record = conversation_record(item, kind, sent_at)?;
    record.events.extend(ai_events(item, sent_at));
    Ok(record)
}

/// What an AI agent (Intercom Fin) did in a conversation, from its `ai_agent` object: resolved
/// it (`confirmed_resolution`, or `assumed_resolution` when the customer went quiet) or handed
/// it to a team (`routed_to_team`). Each is one event per conversation.
pub(crate) fn ai_events(item: &Value, sent_at: DateTime<Utc>) -> Vec<SupportEvent> {
    let Some(agent) = item.get("ai_agent").filter(|a| a.is_object()) else {
        return Vec::new();
    };
    if item.get("ai_agent_participated") == Some(&Value::Bool(false)) {
        return Vec::new();
    }
    let state = text(agent.get("resolution_state"));
    let kind = match state.as_deref() {
        Some("assumed_resolution" | "confirmed_resolution") => EventKind::AiResolved,
        Some("routed_to_team") => EventKind::AiEscalated,
        _ => return Vec::new(),
    };
    let Some(id) = text(item.get("id")) else {
        return Vec::new();
    };
    let mut properties = Map::new();
    put(&mut properties, "resolution_state", state);
    put(
        &mut properties,
        "source_title",
        text(agent.get("source_title")),
    );
    put(
        &mut properties,
        "last_answer_type",
        text(agent.get("last_answer_type")),
    );
    if let Some(rating) = agent
        .get("rating")
        .and_then(Value::as_i64)
        .filter(|r| (1..=5).contains(r))
    {
        properties.insert("rating".into(), Value::from(rating));
    }
    put(
        &mut properties,
        "rating_remark",
        text(agent.get("rating_remark")),
    );
    let at = time(item.get("updated_at")).unwrap_or(sent_at);
    let mut e = event(kind, &format!("conversation:{id}"), at, properties);
    e.ticket_id = Some(id);
    vec![e]
}

/// The ticket of a ticket notification: the item, or from API 2.15 on (`ticket.closed`) the
/// ticket nested under it.
pub(super) fn ticket_of(item: &Value) -> &Value {
    item.get("ticket").filter(|t| t.is_object()).unwrap_or(item)
}

/// A ticket's state: a name before API 2.14 (`submitted`, `in_progress`,
/// `waiting_on_customer`, `resolved`), an object with that name as `category` since.
pub(super) fn ticket_state(ticket: &Value) -> Option<String> {
    let state = ticket.get("ticket_state")?;
    text(Some(state)).or_else(|| text(state.get("category")))
}

/// What a `ticket.state.updated` notification is: a closing when the ticket is now resolved; a
/// reopen when it left `resolved` — told by the ticket's latest state-changing part
/// (`previous_ticket_state` → `ticket_state`, API 2.10 on), dated by that part; otherwise (a
/// move between open states, or a ticket sent without its parts) nothing.
pub(super) fn state_change(ticket: &Value) -> Option<(EventKind, Option<DateTime<Utc>>)> {
    let now = ticket_state(ticket)?;
    if now == "resolved" {
        return Some((EventKind::TicketClosed, None));
    }
    let state_of = |part: &Value, key: &str| {
        let state = part.get(key)?;
        text(Some(state)).or_else(|| text(state.get("category")))
    };
    let part = ticket
        .get("ticket_parts")?
        .get("ticket_parts")?
        .as_array()?
        .iter()
        .rev()
        .find(|p| {
            let previous = state_of(p, "previous_ticket_state");
            previous.is_some() && previous != state_of(p, "ticket_state")
        })?;
    (state_of(part, "previous_ticket_state").as_deref() == Some("resolved")
        && state_of(part, "ticket_state").as_deref() == Some(now.as_str()))
    .then(|| (EventKind::TicketReopened, time(part.get("created_at"))))
}

/// An Intercom Tickets milestone for the ticket's contact. A ticket is a conversation in
/// Intercom, with the conversation's id, so its events share the conversation's stable ids and
/// the ledger counts it once.
pub(super) fn ticket_record(
    item: &Value,
    kind: EventKind,
    sent_at: DateTime<Utc>,
) -> Result<Record, ParseError> {
    let ticket = ticket_of(item);
    let id = text(ticket.get("id")).ok_or(ParseError::Missing("data.item.id"))?;
    let person = conversation_person(ticket).ok_or(ParseError::Missing("data.item.contacts"))?;
    let mut properties = Map::new();
    let title = ticket
        .get("ticket_attributes")
        .and_then(|a| text(a.get("_default_title_")))
        .or_else(|| text(ticket.get("title")));
    put(&mut properties, "subject", title);
    put(&mut properties, "status", ticket_state(ticket));
    put(
        &mut properties,
        "ticket_type",
        ticket.get("ticket_type").and_then(|t| text(t.get("name"))),
    );
    put(
        &mut properties,
        "ticket_number",
        text(ticket.get("ticket_id")),
    );
    if kind == EventKind::TicketSnoozed {
        put(
            &mut properties,
            "snoozed_until",
            time(ticket.get("snoozed_until")).map(crate::mapping::iso_time),
        );
    }
    let updated = time(ticket.get("updated_at"));
    let at = match kind {
        EventKind::TicketCreated => time(ticket.get("created_at")),
        EventKind::TicketReopened => state_change(ticket).and_then(|(_, at)| at).or(updated),
        _ => updated,
    }
    .unwrap_or(sent_at);
    let mut e = event(kind, &format!("conversation:{id}"), at, properties);
    e.ticket_id = Some(id);
    Ok(Record {
        person,
        observed_at: updated.unwrap_or(at),
        events: vec![e],
        ..Default::default()
    })
}

/// A conversation milestone for the conversation's contact.
pub(crate) fn conversation_record(
    item: &Value,
    kind: EventKind,
    sent_at: DateTime<Utc>,
) -> Result<Record, ParseError> {
    let conversation_id = text(item.get("id")).ok_or(ParseError::Missing("data.item.id"))?;
    let person = conversation_person(item).ok_or(ParseError::Missing("data.item.contacts"))?;
    let source = item.get("source");
    let mut properties = Map::new();
    let subject = source
        .and_then(|s| text(s.get("subject")))
        .or_else(|| text(item.get("title")));
    put(&mut properties, "subject", subject);
    put(&mut properties, "status", text(item.get("state")));
    // Intercom's statistics are in seconds; the support aggregates work in minutes.
    if let Some(stats) = item.get("statistics").filter(|s| s.is_object()) {
        let minutes = |key: &str| {
            stats
                .get(key)
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Value::from((s / 6.0).round() / 10.0))
        };
        if let Some(m) = minutes("time_to_admin_reply") {
            properties.insert("first_reply_minutes".into(), m);
        }
        if kind == EventKind::TicketClosed
            && let Some(m) = minutes("time_to_last_close")
        {
            properties.insert("resolution_time".into(), m);
        }
    }

    let occurred_at = match kind {
        EventKind::TicketCreated => time(item.get("created_at")),
        EventKind::TicketSnoozed | EventKind::TicketUnsnoozed => {
            if kind == EventKind::TicketSnoozed {
                put(
                    &mut properties,
                    "snoozed_until",
                    time(item.get("snoozed_until")).map(crate::mapping::iso_time),
                );
            }
            time(item.get("updated_at"))
        }
        EventKind::TicketClosed | EventKind::TicketReopened => {
            let part_type = if kind == EventKind::TicketClosed {
                "close"
            } else {
                "open"
            };
            let part = last_part(item, part_type);
            put(
                &mut properties,
                "agent_name",
                part.and_then(|p| p.get("author"))
                    .and_then(|a| text(a.get("name"))),
            );
            part.and_then(|p| time(p.get("created_at"))).or_else(|| {
                (kind == EventKind::TicketClosed)
                    .then(|| {
                        item.get("statistics")
                            .and_then(|s| time(s.get("last_close_at")))
                    })
                    .flatten()
            })
        }
        _ => {
            let rating = item
                .get("conversation_rating")
                .filter(|r| r.is_object())
                .ok_or(ParseError::Missing("data.item.conversation_rating"))?;
            let score = rating
                .get("rating")
                .and_then(|r| {
                    r.as_i64()
                        .or_else(|| text(Some(r)).and_then(|t| t.parse().ok()))
                })
                .filter(|r| (1..=5).contains(r))
                .ok_or(ParseError::Missing("data.item.conversation_rating.rating"))?;
            properties.insert("score".into(), Value::from(score));
            put(&mut properties, "remark", text(rating.get("remark")));
            time(rating.get("created_at"))
        }
    }
    .unwrap_or(sent_at);

    let mut e = event(
        kind,
        &format!("conversation:{conversation_id}"),
        occurred_at,
        properties,
    );
    e.ticket_id = Some(conversation_id);
    // `source.type` is the channel (`conversation` for Messenger, `email`, `facebook`, …);
    // `delivered_as` (who started it) is only a fallback.
    e.channel = source.and_then(|s| text(s.get("type")).or_else(|| text(s.get("delivered_as"))));
    let mut record = Record {
        person,
        observed_at: time(item.get("updated_at")).unwrap_or(occurred_at),
        events: vec![e],
        ..Default::default()
    };
    carry_tags(&mut record, item);
    Ok(record)
}

/// Puts the conversation's tags (`tags.tags[].name`), when the object lists them, on `record` as
/// the conversation's whole set (see [`crate::tags`]).
pub(super) fn carry_tags(record: &mut Record, item: &Value) {
    let (Some(id), Some(tags)) = (
        text(item.get("id")),
        item.get("tags")
            .and_then(|t| t.get("tags"))
            .and_then(Value::as_array),
    ) else {
        return;
    };
    let names: Vec<String> = tags.iter().filter_map(|t| text(t.get("name"))).collect();
    record.tags_added = names.clone();
    record.tags_now = Some(names);
    record.tag_holder = Some(format!("conversation:{id}"));
}

/// The contact a conversation is about: the first listed contact, with the email and name of
/// the source author when the author is that contact (never an admin).
pub(super) fn conversation_person(item: &Value) -> Option<Person> {
    let listed = item
        .get("contacts")
        .and_then(|c| c.get("contacts"))
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .map(person_from_contact)
        .filter(|p| p.source_id.is_some() || p.email.is_some());
    let author = item
        .get("source")
        .and_then(|s| s.get("author"))
        .filter(|a| {
            !matches!(
                text(a.get("type")).as_deref(),
                Some("admin" | "bot" | "team")
            )
        })
        .map(person_from_contact);
    match (listed, author) {
        (Some(mut p), Some(a)) if a.source_id.is_none() || a.source_id == p.source_id => {
            p.email = p.email.or(a.email);
            p.name = p.name.or(a.name);
            Some(p)
        }
        (Some(p), _) => Some(p),
        (None, a) => a.filter(|a| a.source_id.is_some() || a.email.is_some()),
    }
}

/// The last conversation part of `part_type` (`close`, `open`), if the item lists its parts.
fn last_part<'a>(item: &'a Value, part_type: &str) -> Option<&'a Value> {
    item.get("conversation_parts")?
        .get("conversation_parts")?
        .as_array()?
        .iter()
        .rev()
        .find(|p| text(p.get("part_type")).as_deref() == Some(part_type))
}
