//! First response times of Gorgias tickets, for AVG_RESPONSE_TIME.
//!
//! Gorgias's ticket object has no reply metric, so the time is read from the ticket's messages
//! (`GET /api/tickets/{id}/messages`, oldest first): from the customer's first message to the
//! first public message sent by the company after it (an agent's, or a rule's unless its `via`
//! is `rule`; internal notes are not replies). It becomes `first_reply_minutes` on the ticket's
//! events, which the contact's ledger averages like the other helpdesks' figures.
//!
//! Cost, stated in the README: one call per ticket that an incremental run reads, was created in
//! the last [`WINDOW`] and was opened by the customer (not an outbound ticket), and whose first
//! reply this process has not seen yet (known ones are kept, up to [`MAX_KNOWN`]). A first or
//! full run (the backfill) reads no messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration as TimeDelta, Utc};
use serde_json::Value;

use super::api::{GorgiasApi, ListPage};
use super::webhook::{text, time};
use crate::sync::{FetchError, Page};

/// How old a ticket may be and still have its messages read.
pub const WINDOW: TimeDelta = TimeDelta::days(14);
/// Messages asked for per ticket: the first reply comes early in a ticket.
pub const MESSAGES_PER_CALL: u32 = 30;
/// First replies kept per process, after which the memory starts over.
pub const MAX_KNOWN: usize = 50_000;

/// First replies already read, in minutes, by ticket id.
pub type ReplyCache = Arc<Mutex<HashMap<String, f64>>>;

/// The ticket's id when its messages are worth reading: a live ticket the customer opened,
/// created at or after `since`.
pub(super) fn worth_reading(ticket: &Value, since: DateTime<Utc>) -> Option<String> {
    let trashed = ticket.get("trashed_datetime").is_some_and(|t| !t.is_null());
    let outbound = ticket.get("from_agent") == Some(&Value::Bool(true));
    if trashed || outbound || ticket.get("spam") == Some(&Value::Bool(true)) {
        return None;
    }
    let created = time(ticket.get("created_datetime"))?;
    (created >= since).then(|| text(ticket.get("id"))).flatten()
}

/// Adds `first_reply_minutes` to the events of each ticket in `tickets` that has a reply.
pub(super) async fn add_first_replies(
    api: &GorgiasApi,
    known: &ReplyCache,
    page: &mut Page,
    tickets: Vec<String>,
) -> Result<(), FetchError> {
    for id in tickets {
        let cached = known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied();
        let minutes = match cached {
            Some(m) => Some(m),
            None => {
                let m = read(api, &id).await?;
                if let Some(m) = m {
                    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
                    if known.len() >= MAX_KNOWN {
                        known.clear();
                    }
                    known.insert(id.clone(), m);
                }
                m
            }
        };
        let Some(minutes) = minutes else { continue };
        for event in page.records.iter_mut().flat_map(|r| r.events.iter_mut()) {
            if event.ticket_id.as_deref() == Some(id.as_str()) {
                event
                    .properties
                    .insert("first_reply_minutes".into(), Value::from(minutes));
            }
        }
    }
    Ok(())
}

/// The ticket's first reply in minutes; `None` before any reply, or for a ticket gone since.
async fn read(api: &GorgiasApi, ticket: &str) -> Result<Option<f64>, FetchError> {
    let query = [
        ("limit", MESSAGES_PER_CALL.to_string()),
        ("order_by", "created_datetime:asc".to_string()),
    ];
    let list: Option<ListPage> = api
        .get_found(
            &format!("/api/tickets/{ticket}/messages"),
            "/api/tickets/{id}/messages",
            &query,
        )
        .await?;
    Ok(list.and_then(|l| first_reply_minutes(&l.data)))
}

/// Minutes (one decimal) from the customer's first message to the company's first public
/// message after it, whatever order `messages` come in.
pub(super) fn first_reply_minutes(messages: &[Value]) -> Option<f64> {
    let mut read: Vec<(DateTime<Utc>, bool, &Value)> = messages
        .iter()
        .filter_map(|m| {
            let from_agent = m.get("from_agent").and_then(Value::as_bool)?;
            Some((time(m.get("created_datetime"))?, from_agent, m))
        })
        .collect();
    read.sort_by_key(|(at, _, _)| *at);
    let asked = read.iter().find(|(_, agent, _)| !agent)?.0;
    let (at, _, reply) = read.iter().find(|(at, agent, m)| {
        *agent
            && *at >= asked
            && m.get("public").and_then(Value::as_bool) != Some(false)
            && text(m.get("via")).as_deref() != Some("rule")
    })?;
    let replied = time(reply.get("sent_datetime")).unwrap_or(*at).max(asked);
    let minutes = (replied - asked).num_seconds() as f64 / 60.0;
    Some((minutes * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(id: u64, from_agent: bool, created: &str, extra: Value) -> Value {
        let mut m = json!({"id": id, "ticket_id": 1, "from_agent": from_agent, "public": true,
            "channel": "email", "via": "email", "created_datetime": created,
            "sent_datetime": null});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        m
    }

    #[test]
    fn the_first_public_company_message_after_the_customers_counts() {
        let messages = vec![
            // Out of order on purpose.
            message(
                4,
                true,
                "2025-01-08T11:00:00",
                json!({"sent_datetime": "2025-01-08T11:00:30"}),
            ),
            message(1, false, "2025-01-08T10:00:00", json!({})),
            // An internal note is not a reply, nor is a rule's auto-reply.
            message(2, true, "2025-01-08T10:05:00", json!({"public": false})),
            message(3, true, "2025-01-08T10:06:00", json!({"via": "rule"})),
            message(5, false, "2025-01-08T12:00:00", json!({})),
        ];
        assert_eq!(first_reply_minutes(&messages), Some(60.5));
        // No reply yet; nothing from the customer; no messages.
        assert_eq!(first_reply_minutes(&messages[1..2]), None);
        assert_eq!(first_reply_minutes(&messages[..1]), None);
        assert_eq!(first_reply_minutes(&[]), None);
    }

    #[test]
    fn only_recent_live_inbound_tickets_are_worth_a_call() {
        let since = time(Some(&json!("2025-01-01T00:00:00Z"))).expect("time");
        let ticket = json!({"id": 7, "spam": false, "from_agent": false, "trashed_datetime": null,
            "created_datetime": "2025-01-08T10:00:00.000000+00:00"});
        assert_eq!(worth_reading(&ticket, since), Some("7".to_string()));
        for (key, value) in [
            ("spam", json!(true)),
            ("from_agent", json!(true)),
            ("trashed_datetime", json!("2025-01-09T00:00:00")),
            ("created_datetime", json!("2024-12-01T00:00:00")),
        ] {
            let mut t = ticket.clone();
            t[key] = value;
            assert_eq!(worth_reading(&t, since), None, "{key}");
        }
    }
}
