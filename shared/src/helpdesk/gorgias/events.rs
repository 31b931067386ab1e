//! The `events` stream: Gorgias's account events feed (`GET /api/events`), read for the
//! macros agents apply and the rules that act on tickets, each put on the ticket customer's
//! Brevo timeline (`macro.applied` → SUPPORT_MACRO_APPLIED, `rule.executed` →
//! SUPPORT_RULE_EXECUTED by default).
//!
//! An event names its ticket but not the customer, so each page costs, besides the page
//! itself, one `GET /api/tickets?ticket_ids=…` for the tickets it names (and one
//! `GET /api/tickets/{id}` for any the list did not return), plus one `GET /api/macros/{id}`
//! or `/api/rules/{id}` per macro or rule whose name the event does not carry (the names are
//! kept for the life of the reader). Every call goes through the account's rate budget.
//!
//! The feed filters on `created_datetime[gt]`: an incremental run reads from the previous
//! run's start minus [`LOOKBACK`]; a first or `--full` run reads the last [`FIRST_WINDOW`]
//! (the timeline is about what happens from now on; `--since` reaches further back).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::api::{GorgiasApi, LOOKBACK, ListPage, MAX_PAGE, new_event};
use super::webhook::{clean, person_from_customer, text, time};
use crate::model::{EventKind, Record, SupportEvent};
use crate::sync::{FetchError, Page, PageRequest};

/// The event types read, and what each becomes.
pub const EVENT_TYPES: [(&str, EventKind); 2] = [
    ("macro-applied", EventKind::MacroApplied),
    ("rule-executed", EventKind::RuleExecuted),
];

/// The feed's type for a deleted customer: a deletion record for the `deletions` policy (see
/// [`crate::deletions`]).
pub const CUSTOMER_DELETED: &str = "customer-deleted";

/// How far back a first or full run reads.
pub const FIRST_WINDOW: TimeDelta = TimeDelta::days(1);

/// Macro and rule names by `(kind, id)`; `None` for one Gorgias no longer has.
pub type NameCache = Arc<Mutex<HashMap<(EventKind, String), Option<String>>>>;

/// One macro application or rule execution, as the feed gives it.
#[derive(Debug, Clone, PartialEq)]
struct Activity {
    id: String,
    kind: EventKind,
    at: DateTime<Utc>,
    ticket_id: String,
    /// The macro's or rule's id and name, when the event says.
    what_id: Option<String>,
    name: Option<String>,
    /// The agent who applied the macro (`user_id`; none for automatic actions).
    agent_id: Option<String>,
}

/// Reads one page of the feed. `previous` is where the run reads from (the previous run's
/// start, or `--since`; `None` on a first or full run).
pub(super) async fn read_page(
    reader: &GorgiasApi,
    names: &NameCache,
    previous: Option<DateTime<Utc>>,
    request: &PageRequest,
) -> Result<Page, FetchError> {
    let from = previous.map_or(request.run_started_at - FIRST_WINDOW, |p| p - LOOKBACK);
    let mut query = vec![
        ("limit", request.page_size.clamp(1, MAX_PAGE).to_string()),
        (
            "created_datetime[gt]",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ];
    for (name, _) in EVENT_TYPES {
        query.push(("types", name.to_string()));
    }
    query.push(("types", CUSTOMER_DELETED.to_string()));
    if let Some(cursor) = &request.cursor {
        query.push(("cursor", cursor.clone()));
    }
    let list: ListPage = reader.get("/api/events", &query).await?;
    let mut page = list.page(request);
    let mut activities = Vec::new();
    for event in &list.data {
        if text(event.get("type")).as_deref() == Some(CUSTOMER_DELETED) {
            match deletion(event) {
                Ok(r) if r.observed_at > from => page.records.push(r),
                Ok(_) => {}
                Err(reason) => page.skipped.push(reason),
            }
            continue;
        }
        match activity(event) {
            // The feed's own filters are trusted, but not relied on.
            Ok(Some(a)) if a.at > from => activities.push(a),
            Ok(_) => {}
            Err(reason) => page.skipped.push(reason),
        }
    }
    if activities.is_empty() {
        return Ok(page);
    }
    let tickets = tickets_by_id(reader, activities.iter().map(|a| a.ticket_id.clone())).await?;
    for mut a in activities {
        if a.name.is_none()
            && let Some(id) = a.what_id.clone()
        {
            a.name = name_of(reader, names, a.kind, &id).await?;
        }
        match tickets.get(&a.ticket_id) {
            Some(ticket) => match record(&a, ticket) {
                Ok(Some(r)) => page.records.push(r),
                Ok(None) => {}
                Err(reason) => page.skipped.push(reason),
            },
            None => page.skipped.push(format!(
                "{} event {}: ticket {} is gone",
                a.kind.key(),
                a.id,
                a.ticket_id
            )),
        }
    }
    Ok(page)
}

/// The deletion record of a `customer-deleted` event: the customer is its object (and the
/// event's data, when it carries the customer).
fn deletion(event: &Value) -> Result<Record, String> {
    let id = text(event.get("id")).ok_or("event without an id")?;
    let at = time(event.get("created_datetime"))
        .ok_or_else(|| format!("{CUSTOMER_DELETED} event {id}: no created_datetime"))?;
    let data = event.get("data").filter(|d| d.is_object()).map(clean);
    let mut person = data.as_ref().map(person_from_customer).unwrap_or_default();
    let object = (text(event.get("object_type")).as_deref() == Some("Customer"))
        .then(|| text(event.get("object_id")))
        .flatten();
    person.source_id = object
        .or(person.source_id)
        .ok_or_else(|| format!("{CUSTOMER_DELETED} event {id}: no customer"))?
        .into();
    Ok(Record::deletion(person, at))
}

/// What a feed event says, or `None` for a type this stream does not read.
fn activity(event: &Value) -> Result<Option<Activity>, String> {
    let Some(kind) = text(event.get("type")).and_then(|t| {
        EVENT_TYPES
            .iter()
            .find(|(name, _)| *name == t)
            .map(|(_, kind)| *kind)
    }) else {
        return Ok(None);
    };
    let id = text(event.get("id")).ok_or("event without an id")?;
    let at = time(event.get("created_datetime"))
        .ok_or_else(|| format!("{} event {id}: no created_datetime", kind.key()))?;
    let data = event.get("data").filter(|d| d.is_object());
    let object = |name: &str| {
        (text(event.get("object_type")).as_deref() == Some(name))
            .then(|| text(event.get("object_id")))
            .flatten()
    };
    let in_data = |key: &str, nested: &str, field: &str| {
        data.and_then(|d| {
            text(d.get(key)).or_else(|| d.get(nested).and_then(|n| text(n.get(field))))
        })
    };
    let ticket_id = object("Ticket")
        .or_else(|| in_data("ticket_id", "ticket", "id"))
        .ok_or_else(|| format!("{} event {id}: no ticket", kind.key()))?;
    let (what, object_type) = match kind {
        EventKind::MacroApplied => ("macro", "Macro"),
        _ => ("rule", "Rule"),
    };
    let what_id = object(object_type).or_else(|| in_data(&format!("{what}_id"), what, "id"));
    let name = in_data(&format!("{what}_name"), what, "name")
        .or_else(|| object(object_type).and(data.and_then(|d| text(d.get("name")))));
    Ok(Some(Activity {
        id,
        kind,
        at,
        ticket_id,
        what_id,
        name,
        agent_id: text(event.get("user_id")),
    }))
}

/// The activity as a record for the ticket's customer; `None` for spam and trashed tickets,
/// which the ticket stream does not sync either.
fn record(a: &Activity, ticket: &Value) -> Result<Option<Record>, String> {
    let trashed = ticket.get("trashed_datetime").is_some_and(|t| !t.is_null());
    if ticket.get("spam") == Some(&Value::Bool(true)) || trashed {
        return Ok(None);
    }
    let customer = ticket
        .get("customer")
        .filter(|c| c.is_object())
        .map(clean)
        .unwrap_or(Value::Null);
    let person = person_from_customer(&customer);
    if person.source_id.is_none() && person.email.is_none() {
        return Err(format!(
            "{} event {}: ticket {} has no known customer",
            a.kind.key(),
            a.id,
            a.ticket_id
        ));
    }
    let what = match a.kind {
        EventKind::MacroApplied => "macro",
        _ => "rule",
    };
    let mut properties = Map::new();
    let mut put = |key: String, value: Option<String>| {
        if let Some(v) = value {
            properties.insert(key, Value::String(v));
        }
    };
    put(format!("{what}_name"), a.name.clone());
    put(format!("{what}_id"), a.what_id.clone());
    put("agent_id".into(), a.agent_id.clone());
    let assignee = ticket.get("assignee_user");
    if a.agent_id.is_some() && assignee.and_then(|u| text(u.get("id"))) == a.agent_id {
        put(
            "agent_name".into(),
            assignee.and_then(|u| text(u.get("name"))),
        );
    }
    put("subject".into(), text(ticket.get("subject")));
    let event = SupportEvent {
        ticket_id: Some(a.ticket_id.clone()),
        channel: text(ticket.get("channel")).map(|c| c.to_ascii_lowercase()),
        properties,
        ..new_event(&format!("event:{}", a.id), a.kind, a.at)
    };
    Ok(Some(Record {
        person,
        observed_at: a.at,
        profile: Some(customer.into()),
        events: vec![event],
        ..Default::default()
    }))
}

/// The tickets named, by id: one list call filtered by `ticket_ids`, then one call for each
/// ticket the list did not return. A ticket Gorgias no longer has is left out.
async fn tickets_by_id(
    reader: &GorgiasApi,
    ids: impl Iterator<Item = String>,
) -> Result<HashMap<String, Value>, FetchError> {
    let wanted: BTreeSet<String> = ids.collect();
    let mut query = vec![("limit", MAX_PAGE.to_string())];
    for id in &wanted {
        query.push(("ticket_ids", id.clone()));
    }
    let list: ListPage = reader.get("/api/tickets", &query).await?;
    let mut found: HashMap<String, Value> = list
        .data
        .into_iter()
        .filter_map(|t| Some((text(t.get("id"))?, t)))
        .filter(|(id, _)| wanted.contains(id))
        .collect();
    for id in &wanted {
        if !found.contains_key(id)
            && let Some(ticket) = reader
                .get_found::<Value>(&format!("/api/tickets/{id}"), "/api/tickets/{id}", &[])
                .await?
        {
            found.insert(id.clone(), ticket);
        }
    }
    Ok(found)
}

/// A macro's or rule's name, read once per reader.
async fn name_of(
    reader: &GorgiasApi,
    names: &NameCache,
    kind: EventKind,
    id: &str,
) -> Result<Option<String>, FetchError> {
    let key = (kind, id.to_string());
    if let Some(known) = cached(names, &key) {
        return Ok(known);
    }
    let what = match kind {
        EventKind::MacroApplied => "macros",
        _ => "rules",
    };
    let object: Option<Value> = reader
        .get_found(
            &format!("/api/{what}/{id}"),
            &format!("/api/{what}/{{id}}"),
            &[],
        )
        .await?;
    let name = object.and_then(|o| text(o.get("name")));
    names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, name.clone());
    Ok(name)
}

fn cached(names: &NameCache, key: &(EventKind, String)) -> Option<Option<String>> {
    names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_customer_is_a_deletion_record_of_its_object() {
        let event = serde_json::json!({"id": 31, "type": "customer-deleted",
            "object_type": "Customer", "object_id": 77, "data": {"email": "Ann@Example.com"},
            "created_datetime": "2026-12-01T09:30:00"});
        let r = deletion(&event).expect("read");
        assert!(r.is_deletion());
        assert_eq!(r.person.source_id.as_deref(), Some("77"));
        assert_eq!(r.person.email.as_deref(), Some("Ann@Example.com"));
        assert_eq!(r.observed_at.to_rfc3339(), "2026-12-01T09:30:00+00:00");
        let nobody = serde_json::json!({"id": 32, "type": "customer-deleted",
            "created_datetime": "2026-12-01T09:30:00"});
        assert_eq!(
            deletion(&nobody),
            Err("customer-deleted event 32: no customer".to_string())
        );
    }

    #[test]
    fn events_without_a_ticket_or_a_time_are_named_and_others_are_not_read() {
        let no_ticket = serde_json::json!({"id": 9, "type": "rule-executed",
            "object_type": "Rule", "object_id": 3, "data": {},
            "created_datetime": "2025-01-08T10:00:00.5"});
        assert_eq!(
            activity(&no_ticket),
            Err("rule.executed event 9: no ticket".to_string())
        );
        let no_time = serde_json::json!({"id": 10, "type": "macro-applied",
            "object_type": "Ticket", "object_id": 5});
        assert_eq!(
            activity(&no_time),
            Err("macro.applied event 10: no created_datetime".to_string())
        );
        let other = serde_json::json!({"id": 11, "type": "ticket-created"});
        assert_eq!(activity(&other), Ok(None));
        // The rule's id from the object, its name from the data.
        let rule = serde_json::json!({"id": 12, "type": "rule-executed", "object_type": "Rule",
            "object_id": 3, "data": {"ticket_id": 5, "name": "Auto-close"},
            "created_datetime": "2025-01-08T10:00:00"});
        let a = activity(&rule).expect("ok").expect("read");
        assert_eq!(
            (
                a.ticket_id.as_str(),
                a.what_id.as_deref(),
                a.name.as_deref()
            ),
            ("5", Some("3"), Some("Auto-close"))
        );
        assert_eq!(a.agent_id, None);
    }
}
