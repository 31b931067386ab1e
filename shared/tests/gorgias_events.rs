//! The Gorgias `events` stream against a wiremock server that speaks Gorgias's documented
//! shapes: the account events feed (`GET /api/events`, filtered by `created_datetime[gt]` and
//! `types`, cursor pages), tickets by id, and macros by id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use deskbridge_shared::helpdesk::gorgias::sync::GorgiasReader;
use deskbridge_shared::model::EventKind;
use deskbridge_shared::sync::{Page, PageRequest, Rate, RetryPolicy, SourceReader, sync_client};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// 2025-01-08T00:00:00Z.
const DAY: i64 = 1_736_294_400;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("valid time")
}

/// Gorgias's own datetime format: no offset, microseconds.
fn stamp(t: DateTime<Utc>) -> String {
    format!("{}.123456", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn queries(request: &Request, name: &str) -> Vec<String> {
    request
        .url
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The account: its events, tickets and macros, and what was asked of it.
#[derive(Clone, Default)]
struct Account {
    events: Arc<Vec<Value>>,
    tickets: Arc<HashMap<String, Value>>,
    /// Whether `GET /api/tickets` honours `ticket_ids` (else it lists tickets as if unfiltered).
    filters_tickets: bool,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Account {
    fn note(&self, request: &Request) {
        self.calls
            .lock()
            .expect("lock")
            .push(request.url.path().to_string());
    }

    fn calls_to(&self, path: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    fn events(&self, request: &Request) -> ResponseTemplate {
        self.note(request);
        let Some(after) = queries(request, "created_datetime[gt]").pop() else {
            return ResponseTemplate::new(400);
        };
        let Ok(after) = DateTime::parse_from_rfc3339(&after) else {
            return ResponseTemplate::new(400);
        };
        let types = queries(request, "types");
        let limit: usize = queries(request, "limit")
            .pop()
            .and_then(|l| l.parse().ok())
            .unwrap_or(30);
        let items: Vec<&Value> = self
            .events
            .iter()
            .filter(|e| {
                let created = e["created_datetime"].as_str().expect("created");
                let created = NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S%.f")
                    .expect("time")
                    .and_utc();
                created > after
            })
            .filter(|e| types.is_empty() || types.iter().any(|t| e["type"] == t.as_str()))
            .collect();
        let start: usize = queries(request, "cursor")
            .pop()
            .and_then(|c| c.strip_prefix('e')?.parse().ok())
            .unwrap_or(0);
        let end = (start + limit).min(items.len());
        let next = (end < items.len()).then(|| format!("e{end}"));
        ResponseTemplate::new(200).set_body_json(json!({
            "data": &items[start..end], "object": "list", "uri": "/api/events",
            "meta": {"next_cursor": next, "prev_cursor": null}
        }))
    }

    fn ticket_list(&self, request: &Request) -> ResponseTemplate {
        self.note(request);
        let ids = queries(request, "ticket_ids");
        let mut data: Vec<&Value> = if self.filters_tickets {
            ids.iter().filter_map(|id| self.tickets.get(id)).collect()
        } else {
            // The newest tickets, whatever was asked.
            let mut all: Vec<&Value> = self.tickets.values().collect();
            all.sort_by_key(|t| std::cmp::Reverse(t["id"].as_u64()));
            all.into_iter().take(2).collect()
        };
        data.sort_by_key(|t| t["id"].as_u64());
        ResponseTemplate::new(200).set_body_json(json!({
            "data": data, "object": "list", "uri": "/api/tickets",
            "meta": {"next_cursor": null, "prev_cursor": null}
        }))
    }

    fn ticket(&self, request: &Request) -> ResponseTemplate {
        self.note(request);
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        match self.tickets.get(id) {
            Some(t) => ResponseTemplate::new(200).set_body_json(t),
            None => {
                ResponseTemplate::new(404).set_body_json(json!({"error": {"msg": "Not found"}}))
            }
        }
    }

    fn macro_(&self, request: &Request) -> ResponseTemplate {
        self.note(request);
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        match id {
            "12" => ResponseTemplate::new(200)
                .set_body_json(json!({"id": 12, "name": "Where is my order", "actions": []})),
            _ => ResponseTemplate::new(404),
        }
    }

    async fn serve(self) -> MockServer {
        let server = MockServer::start().await;
        let a = self.clone();
        Mock::given(method("GET"))
            .and(path("/api/events"))
            .respond_with(move |r: &Request| a.events(r))
            .mount(&server)
            .await;
        let a = self.clone();
        Mock::given(method("GET"))
            .and(path("/api/tickets"))
            .respond_with(move |r: &Request| a.ticket_list(r))
            .mount(&server)
            .await;
        let a = self.clone();
        Mock::given(method("GET"))
            .and(path_regex(r"^/api/tickets/\d+$"))
            .respond_with(move |r: &Request| a.ticket(r))
            .mount(&server)
            .await;
        let a = self.clone();
        Mock::given(method("GET"))
            .and(path_regex(r"^/api/macros/\d+$"))
            .respond_with(move |r: &Request| a.macro_(r))
            .mount(&server)
            .await;
        server
    }
}

fn ticket(id: u64, customer: u64, assignee: Option<(u64, &str)>) -> Value {
    json!({"id": id, "status": "open", "channel": "Email", "subject": format!("Order #{id}"),
        "spam": false, "trashed_datetime": null,
        "created_datetime": stamp(at(DAY)), "updated_datetime": stamp(at(DAY + 3_000)),
        "assignee_user": assignee.map(|(id, name)| json!({"id": id, "name": name})),
        "customer": {"id": customer, "email": format!("c{customer}@example.com"),
            "name": format!("Customer {customer}"), "firstname": "Cus", "lastname": "Tomer"}})
}

fn event(
    id: u64,
    kind: &str,
    object: (&str, u64),
    user: Option<u64>,
    data: Value,
    t: i64,
) -> Value {
    json!({"id": id, "type": kind, "object_type": object.0, "object_id": object.1,
        "user_id": user, "context": "dd4ff312-69df-494a-be96-1a58b3d8b8e0", "data": data,
        "created_datetime": stamp(at(t))})
}

fn account(filters_tickets: bool) -> Account {
    let events = vec![
        // Before the bookmark's lookback: not read.
        event(
            1,
            "macro-applied",
            ("Ticket", 501),
            Some(7),
            json!({}),
            DAY + 100,
        ),
        // The name in the event.
        event(
            2,
            "macro-applied",
            ("Ticket", 501),
            Some(7),
            json!({"macro": {"id": 11, "name": "Refund sent"}}),
            DAY + 2_000,
        ),
        // Only the macro's id: its name is read once.
        event(
            3,
            "macro-applied",
            ("Macro", 12),
            Some(8),
            json!({"ticket_id": 502}),
            DAY + 2_100,
        ),
        event(
            4,
            "macro-applied",
            ("Macro", 12),
            Some(7),
            json!({"ticket_id": 501}),
            DAY + 2_200,
        ),
        // An automatic rule (no user).
        event(
            5,
            "rule-executed",
            ("Ticket", 502),
            None,
            json!({"rule": {"id": 3, "name": "Auto-tag VIP"}}),
            DAY + 2_300,
        ),
        // Another type: not this stream's.
        event(
            6,
            "ticket-updated",
            ("Ticket", 502),
            Some(7),
            json!({}),
            DAY + 2_400,
        ),
        // A ticket deleted since.
        event(
            7,
            "rule-executed",
            ("Ticket", 999),
            None,
            json!({"rule": {"id": 3, "name": "Auto-tag VIP"}}),
            DAY + 2_500,
        ),
    ];
    let tickets = [
        ticket(501, 41, Some((7, "Ana Agent"))),
        ticket(502, 42, Some((9, "Bo Agent"))),
        ticket(503, 43, None),
        ticket(504, 44, None),
    ]
    .into_iter()
    .map(|t| (t["id"].to_string(), t))
    .collect();
    Account {
        events: Arc::new(events),
        tickets: Arc::new(tickets),
        filters_tickets,
        calls: Arc::default(),
    }
}

fn reader(server: &MockServer) -> GorgiasReader {
    GorgiasReader::new(
        sync_client().expect("client"),
        &server.uri(),
        "ops@acme.test",
        "gg-key",
    )
    .with_rate(Rate::new(100_000, Duration::from_secs(1), 100_000))
    .with_retry(RetryPolicy {
        backoff: Duration::from_millis(10),
        ..RetryPolicy::default()
    })
}

async fn read_run(
    reader: &GorgiasReader,
    bookmark: Option<&str>,
    started: DateTime<Utc>,
    size: u32,
) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let request = PageRequest {
            stream: "events".into(),
            cursor: cursor.clone(),
            bookmark: bookmark.map(str::to_string),
            full: false,
            since: None,
            run_started_at: started,
            page_size: size,
        };
        let page = reader.fetch_page(&request).await.expect("page");
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
    }
}

async fn macros_and_rules_reach_the_ticket_customers_timeline(filters_tickets: bool) {
    let account = account(filters_tickets);
    let server = account.clone().serve().await;
    let reader = reader(&server);
    // The previous run started at DAY + 1,000 s; it reads from 10 minutes before that.
    let bookmark = at(DAY + 1_000).to_rfc3339_opts(SecondsFormat::Secs, true);
    let pages = read_run(&reader, Some(&bookmark), at(DAY + 5_000), 100).await;
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    // The feed filtered out #1 (too old) and #6 (another type).
    assert_eq!(page.read, 5);
    assert_eq!(
        page.skipped,
        vec!["rule.executed event 7: ticket 999 is gone".to_string()]
    );
    assert_eq!(page.bookmark.as_deref(), Some("2025-01-08T01:23:20Z"));
    let seen: Vec<(String, String, EventKind, Value)> = page
        .records
        .iter()
        .map(|r| {
            let e = &r.events[0];
            (
                r.person.email.clone().expect("email"),
                e.id.clone(),
                e.kind,
                Value::Object(e.properties.clone()),
            )
        })
        .collect();
    let order = "Order #";
    assert_eq!(
        seen,
        vec![
            (
                "c41@example.com".into(),
                "gorgias:event:2:macro.applied:1736296400".into(),
                EventKind::MacroApplied,
                json!({"macro_name": "Refund sent", "macro_id": "11", "agent_id": "7",
                    "agent_name": "Ana Agent", "subject": format!("{order}501")}),
            ),
            (
                "c42@example.com".into(),
                "gorgias:event:3:macro.applied:1736296500".into(),
                EventKind::MacroApplied,
                // Agent 8 is not the assignee: the event names only their id.
                json!({"macro_name": "Where is my order", "macro_id": "12", "agent_id": "8",
                    "subject": format!("{order}502")}),
            ),
            (
                "c41@example.com".into(),
                "gorgias:event:4:macro.applied:1736296600".into(),
                EventKind::MacroApplied,
                json!({"macro_name": "Where is my order", "macro_id": "12", "agent_id": "7",
                    "agent_name": "Ana Agent", "subject": format!("{order}501")}),
            ),
            (
                "c42@example.com".into(),
                "gorgias:event:5:rule.executed:1736296700".into(),
                EventKind::RuleExecuted,
                json!({"rule_name": "Auto-tag VIP", "rule_id": "3", "subject": format!("{order}502")}),
            ),
        ]
    );
    let first = &page.records[0];
    assert_eq!(first.events[0].ticket_id.as_deref(), Some("501"));
    assert_eq!(first.events[0].channel.as_deref(), Some("email"));
    assert_eq!(first.person.source_id.as_deref(), Some("41"));
    assert_eq!(first.observed_at.timestamp(), DAY + 2_000);
    // Calls: the feed once, the tickets once, the macro's name once however often it is
    // applied; each ticket the list did not give, once.
    assert_eq!(account.calls_to("/api/events"), 1);
    assert_eq!(account.calls_to("/api/tickets"), 1);
    assert_eq!(account.calls_to("/api/macros/12"), 1);
    assert_eq!(account.calls_to("/api/tickets/999"), 1);
    let singles = if filters_tickets { 0 } else { 2 };
    assert_eq!(
        account.calls_to("/api/tickets/501") + account.calls_to("/api/tickets/502"),
        singles
    );

    // Again in pages of two: the same records, and the macro's name is not read again.
    let pages = read_run(&reader, Some(&bookmark), at(DAY + 5_000), 2).await;
    assert_eq!(pages.len(), 3);
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.events[0].id.as_str())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(account.calls_to("/api/macros/12"), 1);
}

#[tokio::test]
async fn gorgias_macros_and_rules_reach_the_ticket_customers_timeline() {
    macros_and_rules_reach_the_ticket_customers_timeline(true).await;
}

#[tokio::test]
async fn gorgias_events_find_their_tickets_one_by_one_when_the_list_ignores_the_ids() {
    macros_and_rules_reach_the_ticket_customers_timeline(false).await;
}
