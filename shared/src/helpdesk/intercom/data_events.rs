//! Contacts' data events in the batch sync (opt-in, `sync.events: true`).
//!
//! Intercom lists data events per contact only (`GET /events?type=user&intercom_user_id=…`,
//! newest first), so an incremental run of the contacts stream asks once for each contact it
//! reads (a contact changed since the last run) and follows `pages.next` while the events are
//! still newer than the run's watermark, up to [`MAX_PAGES`] pages. Each event goes on the
//! contact's timeline under its own name (see [`crate::data_events`]), with its metadata as
//! properties. The backfill (a first or full run) reads no events.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::fields::{event, text, time};
use super::sync::IntercomReader;
use crate::model::{EventKind, Record, SupportEvent};
use crate::sync::FetchError;

/// Pages of one contact's events read at most per run.
pub const MAX_PAGES: usize = 5;
/// Events asked for per page.
pub const PER_PAGE: u32 = 50;

/// The events of one answer at or after `since`, and whether older ones may follow on the next
/// page (the answer has one and every event here was recent enough).
pub(super) fn read(answer: &Value, since: DateTime<Utc>) -> (Vec<SupportEvent>, bool) {
    let listed = answer
        .get("events")
        .or_else(|| answer.get("data"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut events = Vec::new();
    let mut reached_older = false;
    for e in &listed {
        let (Some(id), Some(name), Some(at)) = (
            text(e.get("id")),
            text(e.get("event_name")),
            time(e.get("created_at")),
        ) else {
            continue;
        };
        if at < since {
            reached_older = true;
            continue;
        }
        let mut properties = Map::new();
        properties.insert("event_name".into(), Value::String(name));
        if let Some(meta) = e.get("metadata").and_then(Value::as_object) {
            for (key, value) in meta {
                properties.insert(key.clone(), value.clone());
            }
        }
        events.push(event(
            EventKind::DataEvent,
            &format!("data_event:{id}"),
            at,
            properties,
        ));
    }
    (events, !reached_older && next_page(answer).is_some())
}

/// The next page's address (`pages.next`, an address or `{ "starting_after": … }`).
pub(super) fn next_page(answer: &Value) -> Option<String> {
    let next = answer.get("pages")?.get("next")?;
    text(Some(next)).or_else(|| text(next.get("starting_after")))
}

impl IntercomReader {
    /// Adds each contact's data events since `since` (unix seconds) to its record
    /// (see this module). An Intercom that refuses the call (no permission to read events)
    /// leaves the page's contacts without them; one that fails makes the page wait.
    pub(super) async fn attach_data_events(
        &self,
        records: &mut [Record],
        since: i64,
    ) -> Result<(), FetchError> {
        let Some(since) = chrono::DateTime::from_timestamp(since, 0) else {
            return Ok(());
        };
        for record in records.iter_mut() {
            let Some(id) = record.person.source_id.clone() else {
                continue;
            };
            let mut query = vec![
                ("type", "user".to_string()),
                ("intercom_user_id", id),
                ("per_page", PER_PAGE.to_string()),
            ];
            let mut path = "/events".to_string();
            for _ in 0..MAX_PAGES {
                let answer = match self.find(&path, "/events", &query).await {
                    Ok(answer) => answer.unwrap_or(Value::Null),
                    Err(FetchError::Rejected(reason)) => {
                        tracing::warn!(%reason, "intercom data events not readable; contacts on this page are written without them");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let (events, more) = read(&answer, since);
                record.events.extend(events);
                let next = next_page(&answer).filter(|_| more);
                match next {
                    // A full address on this API's host: follow it as it is.
                    Some(url) if url.starts_with(&self.base) => {
                        path = url[self.base.len()..].to_string();
                        query.clear();
                    }
                    Some(cursor) if !cursor.contains('/') => {
                        query.retain(|(k, _)| *k != "starting_after");
                        query.push(("starting_after", cursor));
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recent_events_become_timeline_events_with_their_metadata() {
        let since = time(Some(&json!(1_736_300_000))).expect("time");
        let answer = json!({"type": "event.list", "events": [
            {"type": "event", "id": "e2", "event_name": "placed-order", "created_at": 1_736_300_500,
             "user_id": "u1", "intercom_user_id": "c1", "metadata": {"order_total": 42, "sku": "A1"}},
            {"type": "event", "id": "e1", "event_name": "viewed-pricing", "created_at": 1_736_299_000,
             "intercom_user_id": "c1", "metadata": {}}],
            "pages": {"next": "https://api.intercom.io/events?type=user&intercom_user_id=c1&before=1"}});
        let (events, more) = read(&answer, since);
        assert!(!more, "older events reached: no next page needed");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind, EventKind::DataEvent);
        assert_eq!(e.properties["event_name"], "placed-order");
        assert_eq!(e.properties["order_total"], 42);
        assert_eq!(e.id, "intercom:data_event:e2:data_event:1736300500");
        let recent_only =
            json!({"events": [answer["events"][0].clone()], "pages": answer["pages"].clone()});
        assert!(
            read(&recent_only, since).1,
            "all recent and a next page: read on"
        );
    }
}
