//! Generic pull sources against wiremock servers shaped like two real APIs: a Freshdesk-style
//! one (page numbers and `per_page`, an `updated_since` filter, Basic auth with the API key)
//! and a Help Scout-style one (HAL: items under `_embedded`, the next page's URL under
//! `_links.next.href`, a `modifiedSince` filter, a bearer token). Each is backfilled, then read
//! incrementally from the bookmark the backfill left.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::reader_for;
use deskbridge_shared::model::{EventKind, Record, Source};
use deskbridge_shared::sync::{FetchError, Page, PageRequest, SourceReader};
use deskbridge_shared::testkit::pull::{
    FRESHDESK_CREDENTIALS, Freshdesk, HELPSCOUT_TOKEN, HelpScout, query,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("valid time")
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// 2025-01-08T00:00:00Z.
const DAY: i64 = 1_736_294_400;

/// Settings whose configuration file is `yaml`, with the pull sources' variables set.
fn settings(name: &str, yaml: &str) -> Settings {
    let dir = std::env::temp_dir().join(format!("deskbridge-pull-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("deskbridge.yaml");
    std::fs::write(&file, yaml).expect("config written");
    Settings::from_vars(&Vars::from_pairs([
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        ("FRESHDESK_API_CREDENTIALS", FRESHDESK_CREDENTIALS),
        ("HELPSCOUT_TOKEN", HELPSCOUT_TOKEN),
    ]))
    .expect("settings")
}

/// The README's example file with `base` in place of the vendors' URLs and a rate the tests
/// do not wait on.
fn example(base: &str) -> String {
    include_str!("../../examples/generic-pull.yaml")
        .replace("https://acme.freshdesk.com", base)
        .replace("https://api.helpscout.net", base)
        .replace(
            "requests: 100, per_seconds: 60",
            "requests: 100000, per_seconds: 1",
        )
        .replace(
            "requests: 200, per_seconds: 60",
            "requests: 100000, per_seconds: 1",
        )
}

fn reader(settings: &Settings, name: &str) -> Box<dyn SourceReader> {
    reader_for(settings, &Source::Generic(name.into())).expect("the pull source has a reader")
}

/// The first page of a first run of `stream` started at `started`.
fn first_page(stream: &str, started: DateTime<Utc>) -> PageRequest {
    PageRequest {
        stream: stream.into(),
        cursor: None,
        bookmark: None,
        full: false,
        since: None,
        run_started_at: started,
        page_size: 1_000,
    }
}

/// Every page of one run of `stream`.
async fn run(
    reader: &dyn SourceReader,
    stream: &str,
    bookmark: Option<&str>,
    started: DateTime<Utc>,
) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let request = PageRequest {
            cursor: cursor.clone(),
            bookmark: bookmark.map(str::to_string),
            ..first_page(stream, started)
        };
        let page = reader.fetch_page(&request).await.expect("page");
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 1_000, "the run ends");
    }
}

fn records(pages: &[Page]) -> Vec<&Record> {
    pages.iter().flat_map(|p| &p.records).collect()
}

// ---------------------------------------------------------------------------------------------
// A Freshdesk-style API

#[tokio::test]
async fn a_freshdesk_style_api_is_backfilled_then_read_from_the_bookmark() {
    let server = MockServer::start().await;
    let fd = Freshdesk::default();
    *fd.contacts.lock().expect("data") = (0..250)
        .map(|i| Freshdesk::contact(i, at(DAY + i)))
        .collect();
    let requester = |i: i64| json!({"id": 9_000 + i, "name": format!("Client {i}"), "email": format!("client{i}@example.com")});
    *fd.tickets.lock().expect("data") = vec![
        json!({"id": 501, "status": 2, "subject": "Login loop", "priority": 1, "tags": ["vip"],
               "requester_id": 9_001, "requester": requester(1), "created_at": iso(at(DAY + 10)),
               "updated_at": iso(at(DAY + 10)), "stats": {"resolved_at": null}}),
        json!({"id": 502, "status": 4, "subject": "Refund", "priority": 2, "tags": [],
               "requester_id": 9_002, "requester": requester(2), "created_at": iso(at(DAY + 20)),
               "updated_at": iso(at(DAY + 900)), "stats": {"resolved_at": iso(at(DAY + 800))}}),
        json!({"id": 503, "status": 3, "subject": "Waiting", "priority": 1, "tags": [],
               "requester_id": 9_003, "requester": requester(3), "created_at": iso(at(DAY + 30)),
               "updated_at": iso(at(DAY + 30)), "stats": {"resolved_at": null}}),
    ];
    fd.mount(&server).await;
    let settings = settings("freshdesk", &example(&server.uri()));
    let reader = reader(&settings, "freshdesk");
    assert_eq!(reader.source(), Source::Generic("freshdesk".into()));
    assert_eq!(reader.streams(), ["contacts", "tickets"]);

    // The backfill: three pages of 100, 100 and 50, every contact once.
    let first_run = at(DAY + 3_600);
    let pages = run(reader.as_ref(), "contacts", None, first_run).await;
    assert_eq!(pages.len(), 3);
    let people = records(&pages);
    assert_eq!(people.len(), 250);
    let ids: std::collections::BTreeSet<_> = people
        .iter()
        .filter_map(|r| r.person.source_id.clone())
        .collect();
    assert_eq!(ids.len(), 250, "no contact twice");
    assert_eq!(
        people[7].person.email.as_deref(),
        Some("client7@example.com")
    );
    assert_eq!(people[7].person.name.as_deref(), Some("Client 7"));
    assert_eq!(
        people[7].observed_at,
        at(DAY + 7),
        "observed as of its change"
    );
    // The bookmark is the run's start less the overlap.
    let bookmark = pages[2].bookmark.clone().expect("a bookmark");
    assert_eq!(bookmark, iso(first_run - chrono::Duration::seconds(60)));

    // Two contacts change; the next run asks from the bookmark and reads only those.
    {
        let mut data = fd.contacts.lock().expect("data");
        data[3] = Freshdesk::contact(3, at(DAY + 7_200));
        data[200] = Freshdesk::contact(200, at(DAY + 7_300));
    }
    let pages = run(
        reader.as_ref(),
        "contacts",
        Some(&bookmark),
        at(DAY + 9_000),
    )
    .await;
    let moved: Vec<_> = records(&pages)
        .iter()
        .filter_map(|r| r.person.source_id.clone())
        .collect();
    assert_eq!(moved, ["9003", "9200"]);
    let asked = server.received_requests().await.unwrap_or_default();
    let last = asked.last().expect("a request");
    assert_eq!(
        query(last, "_updated_since").as_deref(),
        Some(bookmark.as_str())
    );
    assert_eq!(query(last, "per_page").as_deref(), Some("100"));

    // Tickets: the requester is the person, the status the event, the ticket the subject;
    // an unmapped status (3, pending) is left out.
    let pages = run(reader.as_ref(), "tickets", None, first_run).await;
    let tickets = records(&pages);
    assert_eq!(pages[0].read, 3);
    assert_eq!(tickets.len(), 2);
    let opened = &tickets[0];
    assert_eq!(opened.person.email.as_deref(), Some("client1@example.com"));
    assert_eq!(opened.person.source_id.as_deref(), Some("9001"));
    assert_eq!(opened.events[0].kind, EventKind::TicketCreated);
    assert_eq!(opened.events[0].ticket_id.as_deref(), Some("501"));
    assert_eq!(opened.events[0].properties["subject"], "Login loop");
    assert_eq!(opened.tags_now.as_deref(), Some(&["vip".to_string()][..]));
    let resolved = &tickets[1];
    assert_eq!(resolved.events[0].kind, EventKind::TicketClosed);
    assert_eq!(
        resolved.events[0].occurred_at,
        at(DAY + 800),
        "a closing is dated by its own time, so every run gives it the same id"
    );
    let again = run(reader.as_ref(), "tickets", None, at(DAY + 20_000)).await;
    assert_eq!(records(&again)[1].events[0].id, resolved.events[0].id);
    assert_eq!(
        query(asked.last().expect("a request"), "include"),
        None,
        "contacts carry no include"
    );
    let ticket_request = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        query(ticket_request.last().expect("a request"), "include").as_deref(),
        Some("requester,stats")
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_refusals_name_the_source() {
    let server = MockServer::start().await;
    let settings = settings("limits", &example(&server.uri()));
    let reader = reader(&settings, "freshdesk");
    // One 429 with Retry-After: 1, then the page.
    Mock::given(method("GET"))
        .and(path("/api/v2/contacts"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/contacts"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([Freshdesk::contact(1, at(DAY))])),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let pages = run(reader.as_ref(), "contacts", None, at(DAY)).await;
    assert_eq!(records(&pages).len(), 1);
    let times: Vec<_> = server.received_requests().await.unwrap_or_default();
    assert_eq!(times.len(), 2, "asked again once the wait was over");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "never before Retry-After"
    );

    // Bad credentials: a refusal that names the source, not a retry loop.
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&other)
        .await;
    let refused = self::settings("refused", &example(&other.uri()));
    let reader = self::reader(&refused, "helpscout");
    let request = first_page("contacts", at(DAY));
    match reader.fetch_page(&request).await {
        Err(FetchError::Rejected(why)) => {
            assert!(why.contains("generic:helpscout answered HTTP 401"), "{why}");
        }
        other => panic!("a refusal, not {other:?}"),
    }
    assert_eq!(other.received_requests().await.unwrap_or_default().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// A Help Scout-style API

#[tokio::test]
async fn a_help_scout_style_api_is_followed_by_its_next_links() {
    let server = MockServer::start().await;
    let hs = HelpScout::default();
    *hs.customers.lock().expect("data") = (0..120)
        .map(|i| HelpScout::customer(i, at(DAY + i)))
        .collect();
    hs.mount(&server).await;
    let settings = settings("helpscout", &example(&server.uri()));
    let reader = reader(&settings, "helpscout");
    assert_eq!(reader.streams(), ["contacts"]);

    let first_run = at(DAY + 3_600);
    let pages = run(reader.as_ref(), "contacts", None, first_run).await;
    assert_eq!(pages.len(), 3, "50, 50 and 20 customers");
    let people = records(&pages);
    assert_eq!(people.len(), 120);
    assert_eq!(people[42].person.email.as_deref(), Some("hs42@example.com"));
    assert_eq!(people[42].person.last_name.as_deref(), Some("Scout42"));
    assert_eq!(people[42].person.source_id.as_deref(), Some("700042"));
    let asked = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        query(&asked[1], "page").as_deref(),
        Some("2"),
        "the next link was followed"
    );

    // Incremental: from the bookmark, one changed customer.
    hs.customers.lock().expect("data")[99] = HelpScout::customer(99, at(DAY + 8_000));
    let bookmark = pages[2].bookmark.clone().expect("a bookmark");
    let pages = run(
        reader.as_ref(),
        "contacts",
        Some(&bookmark),
        at(DAY + 9_000),
    )
    .await;
    let moved: Vec<_> = records(&pages)
        .iter()
        .filter_map(|r| r.person.email.clone())
        .collect();
    assert_eq!(moved, ["hs99@example.com"]);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused_before_the_credentials_go_there() {
    let server = MockServer::start().await;
    let hs = HelpScout {
        next_origin: Some("https://elsewhere.example".into()),
        ..HelpScout::default()
    };
    *hs.customers.lock().expect("data") = (0..60)
        .map(|i| HelpScout::customer(i, at(DAY + i)))
        .collect();
    hs.mount(&server).await;
    let settings = settings("origin", &example(&server.uri()));
    let reader = reader(&settings, "helpscout");
    let request = first_page("contacts", at(DAY));
    match reader.fetch_page(&request).await {
        Err(FetchError::Rejected(why)) => {
            assert!(why.contains("refusing to send the credentials"), "{why}");
        }
        other => panic!("a refusal, not {other:?}"),
    }
}
