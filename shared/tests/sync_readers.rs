//! The sync readers against wiremock servers that speak the vendors' documented JSON and page
//! like the real APIs (Zendesk cursor exports, Intercom day-granular search, Gorgias
//! newest-first cursor lists), with thousands of generated records.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::gorgias::sync::GorgiasReader;
use deskbridge_shared::helpdesk::intercom::sync::IntercomReader;
use deskbridge_shared::helpdesk::reader_for;
use deskbridge_shared::helpdesk::zendesk::sync::ZendeskReader;
use deskbridge_shared::helpdesk::{HelpdeskLookup, PersonLookup};
use deskbridge_shared::model::{EventKind, Record, Source, SupportEvent};
use deskbridge_shared::sync::{
    FetchError, Page, PageRequest, Rate, RetryPolicy, SourceReader, sync_client,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Helpers

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("valid time")
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// 2025-01-08T00:00:00Z.
const DAY: i64 = 1_736_294_400;

/// No practical limit: the tests measure paging, not pacing.
fn unlimited() -> Rate {
    Rate::new(100_000, Duration::from_secs(1), 100_000)
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        backoff: Duration::from_millis(10),
        ..RetryPolicy::default()
    }
}

fn zendesk(server: &MockServer) -> ZendeskReader {
    ZendeskReader::new(
        sync_client().expect("client"),
        &server.uri(),
        "ops@acme.test",
        "zd-token",
    )
    .with_rates(unlimited(), unlimited())
    .with_retry(quick_retries())
}

fn intercom(server: &MockServer) -> IntercomReader {
    IntercomReader::new(
        sync_client().expect("client"),
        &server.uri(),
        "ic-token",
        "2.11",
    )
    .with_rate(unlimited())
    .with_retry(quick_retries())
}

fn gorgias(server: &MockServer) -> GorgiasReader {
    GorgiasReader::new(
        sync_client().expect("client"),
        &server.uri(),
        "ops@acme.test",
        "gg-key",
    )
    .with_rate(unlimited())
    .with_retry(quick_retries())
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A `<prefix><number>` cursor as the number.
fn position(cursor: Option<&str>, prefix: char) -> Option<usize> {
    cursor?.strip_prefix(prefix)?.parse().ok()
}

/// Every page of one run of `stream`, from the first request to the end.
async fn read_run(
    reader: &dyn SourceReader,
    stream: &str,
    bookmark: Option<&str>,
    run_started_at: DateTime<Utc>,
    page_size: u32,
) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut cursor = None;
    loop {
        let request = PageRequest {
            since: None,
            stream: stream.to_string(),
            cursor: cursor.clone(),
            bookmark: bookmark.map(str::to_string),
            full: false,
            run_started_at,
            page_size,
        };
        let page = reader.fetch_page(&request).await.expect("page");
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 1_000, "the run never ends");
    }
}

fn records(pages: &[Page]) -> Vec<&Record> {
    pages.iter().flat_map(|p| &p.records).collect()
}

fn read_count(pages: &[Page]) -> u64 {
    pages.iter().map(|p| p.read).sum()
}

/// Source ids of the records, checked to be unique.
fn unique_ids(pages: &[Page]) -> HashSet<String> {
    let all: Vec<String> = records(pages)
        .iter()
        .map(|r| r.person.source_id.clone().expect("id"))
        .collect();
    let set: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "a record came twice");
    set
}

fn last_bookmark(pages: &[Page]) -> Option<String> {
    pages.last().and_then(|p| p.bookmark.clone())
}

// ---------------------------------------------------------------------------------------------
// Zendesk: incremental cursor exports

/// The export stream in the order Zendesk serves it (oldest change first). Cursors are
/// `p<position>`; `start_time` finds the first item updated at or after it. At `hiccup`, the
/// server first answers `[]` with `end_of_stream: false` (which Zendesk documents as possible).
#[derive(Clone, Default)]
struct ZendeskStream {
    items: Arc<Mutex<Vec<Value>>>,
    users: Arc<Mutex<Vec<Value>>>,
    hiccup: Option<usize>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl ZendeskStream {
    fn respond(&self, key: &str, request: &Request) -> ResponseTemplate {
        self.arrivals.lock().expect("lock").push(Instant::now());
        let items = self.items.lock().expect("lock");
        let per_page: usize = query(request, "per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1000);
        let cursor = query(request, "cursor");
        let start = match (&cursor, query(request, "start_time")) {
            (Some(c), _) => match position(Some(c.trim_start_matches('h')), 'p') {
                Some(p) => p,
                None => return ResponseTemplate::new(400),
            },
            (None, Some(t)) => {
                let t: i64 = t.parse().expect("start_time");
                items
                    .iter()
                    .position(|i| updated(i).timestamp() >= t)
                    .unwrap_or(items.len())
            }
            (None, None) => return ResponseTemplate::new(400),
        };
        if self.hiccup == Some(start) && !cursor.as_deref().unwrap_or("").starts_with('h') {
            return ResponseTemplate::new(200).set_body_json(json!({
                key: [], "after_cursor": format!("hp{start}"), "before_cursor": null,
                "after_url": null, "before_url": null, "end_of_stream": false}));
        }
        let end = (start + per_page).min(items.len());
        let page = &items[start..end];
        let mut body = json!({
            key: page,
            "after_cursor": format!("p{end}"),
            "after_url": format!("https://acme.zendesk.com/api/v2/incremental/{key}/cursor.json?cursor=p{end}"),
            "before_cursor": format!("p{start}"),
            "before_url": null,
            "end_of_stream": end == items.len(),
        });
        if key == "tickets" && query(request, "include").is_some_and(|i| i.contains("users")) {
            let users = self.users.lock().expect("lock");
            let wanted: HashSet<String> = page
                .iter()
                .filter_map(|t| t.get("requester_id").filter(|r| !r.is_null()))
                .map(Value::to_string)
                .collect();
            body["users"] = users
                .iter()
                .filter(|u| wanted.contains(&u["id"].to_string()))
                .cloned()
                .collect();
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn updated(item: &Value) -> DateTime<Utc> {
    item["updated_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .expect("updated_at")
}

fn zendesk_user(id: u64, updated: i64) -> Value {
    json!({"id": id, "url": format!("https://acme.zendesk.com/api/v2/users/{id}.json"),
        "name": format!("User {id}"), "email": format!("user{id}@example.com"),
        "created_at": iso(at(updated - 86_400)), "updated_at": iso(at(updated)),
        "phone": null, "role": "end-user", "active": true, "tags": [], "user_fields": {}})
}

async fn mount_zendesk(server: &MockServer, resource: &'static str, stream: &ZendeskStream) {
    let s = stream.clone();
    Mock::given(method("GET"))
        .and(path(format!("/api/v2/incremental/{resource}/cursor.json")))
        .and(header(
            "authorization",
            basic("ops@acme.test/token", "zd-token"),
        ))
        .respond_with(move |r: &Request| s.respond(resource, r))
        .mount(server)
        .await;
}

#[tokio::test]
async fn zendesk_users_carry_their_organization_read_a_hundred_at_a_time() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    // 250 users in 150 organizations (and 10 without one), read in pages of 100.
    *stream.items.lock().expect("lock") = (0..260u64)
        .map(|i| {
            let mut user = zendesk_user(1_000 + i, DAY + i as i64);
            user["organization_id"] = if i < 250 {
                json!(5_000 + i % 150)
            } else {
                json!(null)
            };
            user
        })
        .collect();
    mount_zendesk(&server, "users", &stream).await;
    let asked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = asked.clone();
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/show_many.json"))
        .respond_with(move |r: &Request| {
            let ids: Vec<String> = query(r, "ids")
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect();
            seen.lock().expect("lock").push(ids.len());
            // Zendesk leaves out ids it does not know: here, 5149.
            let organizations: Vec<Value> = ids
                .iter()
                .filter(|id| id.as_str() != "5149")
                .map(|id| {
                    json!({"id": id.parse::<u64>().expect("id"), "name": format!("Org {id}"),
                    "tags": ["b2b"], "organization_fields": {"tier": "gold"}})
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"organizations": organizations,
                "next_page": null, "previous_page": null, "count": organizations.len()}))
        })
        .mount(&server)
        .await;
    let reader = zendesk(&server);
    let pages = read_run(&reader, "users", None, at(DAY + 10_000), 100).await;
    let all = records(&pages);
    assert_eq!(all.len(), 260);
    for r in &all {
        let profile = r.profile.as_ref().expect("profile");
        match profile["organization_id"].as_u64() {
            Some(5149) | None => assert!(profile.get("organization").is_none(), "{profile:?}"),
            Some(org) => {
                assert_eq!(profile["organization"]["name"], json!(format!("Org {org}")));
                assert_eq!(
                    profile["organization"]["organization_fields"]["tier"],
                    "gold"
                );
            }
        }
    }
    // Each organization asked for once, at most a hundred per call: the first page names 100,
    // the second 50 new ones, the third none new.
    assert_eq!(*asked.lock().expect("lock"), vec![100, 50]);
}

#[tokio::test]
async fn zendesk_organization_changes_reach_their_users() {
    let server = MockServer::start().await;
    let org = |id: u64, name: &str, updated: i64, deleted: bool| {
        json!({"id": id, "name": name, "tags": ["enterprise"], "organization_fields": {"plan": "gold"},
            "created_at": iso(at(DAY - 86_400)), "updated_at": iso(at(updated)),
            "deleted_at": if deleted { json!(iso(at(updated))) } else { Value::Null }})
    };
    let bookmark = DAY + 1_000;
    let exports = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = exports.clone();
    let answer = json!({
        "organizations": [org(501, "Acme Renamed", DAY + 2_000, false),
            org(502, "Gone Inc", DAY + 2_100, true), org(503, "Vanished", DAY + 2_200, false)],
        "end_time": DAY + 2_200, "end_of_stream": false, "count": 3,
        "next_page": format!("{}/api/v2/incremental/organizations.json?start_time={}", server.uri(), DAY + 2_200)});
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/organizations.json"))
        .respond_with(move |r: &Request| {
            let start = query(r, "start_time").expect("start_time");
            seen.lock().expect("lock").push(start.clone());
            if start == bookmark.to_string() {
                ResponseTemplate::new(200).set_body_json(&answer)
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"organizations": [],
                    "end_time": DAY + 2_200, "end_of_stream": true, "count": 0, "next_page": null}))
            }
        })
        .mount(&server)
        .await;
    // Organization 501 has 150 users (one of them an agent) in two pages; 503 is gone by now.
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/501/users.json"))
        .respond_with(|r: &Request| {
            let start: u64 = query(r, "page[after]").and_then(|a| a.parse().ok()).unwrap_or(0);
            let size: u64 = query(r, "page[size]").and_then(|s| s.parse().ok()).expect("size");
            let end = (start + size).min(150);
            let users: Vec<Value> = (start..end)
                .map(|i| {
                    let mut u = zendesk_user(9_000 + i, DAY - 5_000);
                    u["organization_id"] = json!(501);
                    if i == 7 {
                        u["role"] = json!("agent");
                    }
                    u
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"users": users,
                "meta": {"has_more": end < 150, "after_cursor": end.to_string(), "before_cursor": null}}))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/503/users.json"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "RecordNotFound"})))
        .mount(&server)
        .await;
    let reader = zendesk(&server);

    // A first run reads nothing: it only sets where the next one starts.
    let first = read_run(&reader, "organizations", None, at(DAY + 1_061), 100).await;
    assert_eq!(first.len(), 1);
    assert!(first[0].records.is_empty());
    assert_eq!(
        first[0].bookmark.as_deref(),
        Some(bookmark.to_string().as_str())
    );
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );

    let run = at(DAY + 5_000);
    let pages = read_run(
        &reader,
        "organizations",
        Some(&bookmark.to_string()),
        run,
        100,
    )
    .await;
    // Export page, 501's two user pages, 503's (gone), the export's last page.
    assert_eq!(pages.len(), 5, "{pages:?}");
    assert_eq!(
        *exports.lock().expect("lock"),
        vec![bookmark.to_string(), (DAY + 2_200).to_string()]
    );
    let all = records(&pages);
    assert_eq!(all.len(), 149, "the agent is left out");
    for r in &all {
        let profile = r.profile.as_ref().expect("profile");
        assert_eq!(profile["organization"]["name"], "Acme Renamed");
        assert_eq!(
            profile["organization"]["organization_fields"]["plan"],
            "gold"
        );
        // As of the organization's change, so it outdates older observations of the user.
        assert_eq!(r.observed_at, at(DAY + 2_000));
    }
    assert_eq!(
        last_bookmark(&pages),
        Some((DAY + 2_200).to_string()),
        "the next run starts where the export ended"
    );
}

#[tokio::test]
async fn zendesk_ticket_exports_read_ai_agent_tickets_unless_told_otherwise() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    mount_zendesk(&server, "tickets", &stream).await;
    let scopes = || async {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| query(r, "support_type_scope"))
            .collect::<Vec<_>>()
    };
    zendesk(&server)
        .fetch_page(&first_page("tickets"))
        .await
        .expect("page");
    assert_eq!(scopes().await, vec![Some("all".to_string())]);
    zendesk(&server)
        .with_support_type_scope("agent")
        .fetch_page(&first_page("tickets"))
        .await
        .expect("page");
    assert_eq!(scopes().await[1].as_deref(), Some("agent"));
}

#[tokio::test]
async fn zendesk_agents_and_admins_are_left_out_of_the_user_stream_unless_asked_for() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    let role = |id: u64, role: &str| {
        let mut user = zendesk_user(id, DAY + id as i64);
        user["role"] = json!(role);
        user
    };
    *stream.items.lock().expect("lock") = vec![
        role(1, "end-user"),
        role(2, "agent"),
        role(3, "admin"),
        role(4, "Agent"),
        role(5, "end-user"),
    ];
    mount_zendesk(&server, "users", &stream).await;

    let customers = read_run(&zendesk(&server), "users", None, at(DAY + 90_000), 100).await;
    let ids = unique_ids(&customers);
    assert_eq!(ids, ["1", "5"].into_iter().map(String::from).collect());
    assert_eq!(read_count(&customers), 5, "staff are read, not synced");
    assert!(customers.iter().all(|p| p.skipped.is_empty()));

    let everyone = read_run(
        &zendesk(&server).with_staff(true),
        "users",
        None,
        at(DAY + 90_000),
        100,
    )
    .await;
    assert_eq!(unique_ids(&everyone).len(), 5);
}

#[tokio::test]
async fn zendesk_users_are_read_once_each_and_the_next_run_resumes_from_after_cursor() {
    let server = MockServer::start().await;
    let stream = ZendeskStream {
        hiccup: Some(1_200),
        ..Default::default()
    };
    *stream.items.lock().expect("lock") = (0..2_500)
        .map(|i| zendesk_user(1_000 + i, DAY + i as i64))
        .collect();
    mount_zendesk(&server, "users", &stream).await;
    let reader = zendesk(&server);

    let pages = read_run(&reader, "users", None, at(DAY + 90_000), 100).await;
    // 25 pages plus the empty one that was not the end.
    assert_eq!(pages.len(), 26);
    assert!(
        pages
            .iter()
            .any(|p| p.records.is_empty() && p.next_cursor.is_some())
    );
    assert_eq!(read_count(&pages), 2_500);
    let ids = unique_ids(&pages);
    assert_eq!(ids.len(), 2_500);
    assert!(ids.contains("1000") && ids.contains("3499"));
    assert!(pages.iter().all(|p| p.bookmark_now && p.skipped.is_empty()));
    // The after_cursor is kept at end_of_stream.
    assert_eq!(last_bookmark(&pages).as_deref(), Some("p2500"));

    let jane = records(&pages)
        .into_iter()
        .find(|r| r.person.source_id.as_deref() == Some("1000"))
        .expect("user 1000");
    assert_eq!(jane.person.email.as_deref(), Some("user1000@example.com"));
    assert_eq!(jane.observed_at, at(DAY));
    assert_eq!(jane.profile.as_ref().expect("profile")["role"], "end-user");
    assert_eq!(jane.events.len(), 1);
    assert_eq!(
        jane.events[0].id,
        SupportEvent::stable_id(
            &Source::Zendesk,
            "user:1000",
            EventKind::CustomerCreated,
            at(DAY - 86_400)
        )
    );

    // Nothing new: one page, nothing read, and the bookmark stays.
    let again = read_run(&reader, "users", Some("p2500"), at(DAY + 95_000), 100).await;
    assert_eq!(again.len(), 1);
    assert_eq!(read_count(&again), 0);
    assert_eq!(last_bookmark(&again).as_deref(), Some("p2500"));

    // New changes: the next run reads exactly those.
    stream
        .items
        .lock()
        .expect("lock")
        .extend((0..150).map(|i| zendesk_user(9_000 + i, DAY + 100_000 + i as i64)));
    let next = read_run(&reader, "users", Some("p2500"), at(DAY + 200_000), 100).await;
    let ids = unique_ids(&next);
    assert_eq!(ids.len(), 150);
    assert!(ids.iter().all(|id| id.starts_with('9')));
    assert_eq!(last_bookmark(&next).as_deref(), Some("p2650"));

    // A full run starts over at start_time=0 whatever the bookmark.
    let full = PageRequest {
        since: None,
        stream: "users".into(),
        cursor: None,
        bookmark: Some("p2650".into()),
        full: true,
        run_started_at: at(DAY + 200_000),
        page_size: 100,
    };
    let first = reader.fetch_page(&full).await.expect("page");
    assert_eq!(first.records[0].person.source_id.as_deref(), Some("1000"));

    // A run from a date (`deskbridge sync --since`) starts at that time whatever the bookmark.
    let since = PageRequest {
        since: Some(at(DAY + 100_000)),
        full: false,
        ..full
    };
    let first = reader.fetch_page(&since).await.expect("page");
    let ids: Vec<&str> = first
        .records
        .iter()
        .filter_map(|r| r.person.source_id.as_deref())
        .collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.iter().all(|id| id.starts_with('9')), "{ids:?}");
}

// ---------------------------------------------------------------------------------------------
// Zendesk: OAuth client credentials

/// Zendesk's OAuth side: `POST /oauth/tokens` grants `zd-oauth-1`, `zd-oauth-2`… to the right
/// client (with `expires_in` when `lifetime` is set), and the API admits a bearer token it
/// granted while that token lives (`lifetime` from its grant) and has served fewer than
/// `uses_per_token` requests (a revocation, as an admin would do).
#[derive(Clone, Default)]
struct ZendeskOAuth {
    lifetime: Option<Duration>,
    uses_per_token: Option<usize>,
    /// Token → when it was granted, requests it served.
    granted: Arc<Mutex<std::collections::HashMap<String, (Instant, usize)>>>,
    grants: Arc<Mutex<usize>>,
    /// API requests answered 401.
    refused: Arc<Mutex<usize>>,
}

impl ZendeskOAuth {
    fn grant(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body
            != json!({"grant_type": "client_credentials", "client_id": "deskbridge",
                "client_secret": "zd-client-secret", "scope": "read"})
        {
            return ResponseTemplate::new(401).set_body_json(json!({
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client, no \
                    client authentication included, or unsupported authentication method."}));
        }
        let mut grants = self.grants.lock().expect("lock");
        *grants += 1;
        let token = format!("zd-oauth-{grants}");
        self.granted
            .lock()
            .expect("lock")
            .insert(token.clone(), (Instant::now(), 0));
        let mut answer = json!({"access_token": token, "token_type": "bearer", "scope": "read"});
        if let Some(lifetime) = self.lifetime {
            answer["expires_in"] = lifetime.as_secs().into();
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }

    /// Whether `request` carries a live token (counting the request against it).
    fn admit(&self, request: &Request) -> bool {
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut granted = self.granted.lock().expect("lock");
        let live = match token.and_then(|t| granted.get_mut(t)) {
            Some((at, uses)) => {
                let expired = self.lifetime.is_some_and(|l| at.elapsed() >= l);
                let revoked = self.uses_per_token.is_some_and(|n| *uses >= n);
                *uses += 1;
                !expired && !revoked
            }
            None => false,
        };
        if !live {
            *self.refused.lock().expect("lock") += 1;
        }
        live
    }

    fn grants(&self) -> usize {
        *self.grants.lock().expect("lock")
    }

    fn refused(&self) -> usize {
        *self.refused.lock().expect("lock")
    }

    async fn mount(&self, server: &MockServer) {
        let desk = self.clone();
        Mock::given(method("POST"))
            .and(path("/oauth/tokens"))
            .and(header("content-type", "application/json"))
            .respond_with(move |r: &Request| desk.grant(r))
            .mount(server)
            .await;
    }
}

/// The export `stream` behind `oauth`'s bearer check; every page takes `delay`.
async fn mount_zendesk_oauth(
    server: &MockServer,
    resource: &'static str,
    stream: &ZendeskStream,
    oauth: &ZendeskOAuth,
    delay: Duration,
) {
    oauth.mount(server).await;
    let (s, desk) = (stream.clone(), oauth.clone());
    Mock::given(method("GET"))
        .and(path(format!("/api/v2/incremental/{resource}/cursor.json")))
        .respond_with(move |r: &Request| {
            if desk.admit(r) {
                s.respond(resource, r).set_delay(delay)
            } else {
                ResponseTemplate::new(401)
                    .set_body_json(json!({"error": "Couldn't authenticate you"}))
            }
        })
        .mount(server)
        .await;
}

/// Settings with only the OAuth client pair for Zendesk (no API token anywhere).
fn oauth_settings(server: &MockServer) -> Settings {
    let uri = server.uri();
    Settings::from_vars(&Vars::from_pairs([
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
        ("ZENDESK_OAUTH_CLIENT_SECRET", "zd-client-secret"),
    ]))
    .expect("settings")
}

/// The reader those settings give, at unlimited rates.
fn oauth_reader(settings: &Settings) -> ZendeskReader {
    let auth = settings.zendesk.auth().expect("zendesk API configured");
    ZendeskReader::from_auth(sync_client().expect("client"), auth)
        .with_rates(unlimited(), unlimited())
        .with_retry(quick_retries())
}

#[tokio::test]
async fn an_oauth_backfill_outlives_several_short_lived_tokens() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    *stream.items.lock().expect("lock") = (0..1_200)
        .map(|i| zendesk_user(1_000 + i, DAY + i as i64))
        .collect();
    // Tokens live two seconds (deskbridge replaces them after one); pages take 300 ms: the
    // run needs several tokens.
    let oauth = ZendeskOAuth {
        lifetime: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    mount_zendesk_oauth(
        &server,
        "users",
        &stream,
        &oauth,
        Duration::from_millis(300),
    )
    .await;
    let settings = oauth_settings(&server);
    assert!(
        settings
            .zendesk
            .credentials
            .as_ref()
            .is_some_and(|c| c.method() == "OAuth client credentials")
    );
    let reader = oauth_reader(&settings);

    let pages = read_run(&reader, "users", None, at(DAY + 90_000), 100).await;
    assert_eq!(pages.len(), 12);
    assert_eq!(unique_ids(&pages).len(), 1_200);
    assert_eq!(last_bookmark(&pages).as_deref(), Some("p1200"));
    // Each token was replaced before it expired: every page request carried a live one.
    assert_eq!(oauth.refused(), 0);
    assert!(oauth.grants() >= 3, "{} tokens", oauth.grants());
    assert!(oauth.grants() <= 12, "{} tokens", oauth.grants());
}

#[tokio::test]
async fn a_revoked_oauth_token_is_replaced_once_and_the_page_retried() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    *stream.items.lock().expect("lock") = (0..1_000)
        .map(|i| zendesk_user(1_000 + i, DAY + i as i64))
        .collect();
    // Tokens without `expires_in` (kept until a 401), each revoked after three pages.
    let oauth = ZendeskOAuth {
        uses_per_token: Some(3),
        ..Default::default()
    };
    mount_zendesk_oauth(&server, "users", &stream, &oauth, Duration::ZERO).await;
    let reader = oauth_reader(&oauth_settings(&server));

    let pages = read_run(&reader, "users", None, at(DAY + 90_000), 100).await;
    assert_eq!(pages.len(), 10);
    assert_eq!(unique_ids(&pages).len(), 1_000);
    // 10 pages at 3 per token: 4 tokens, and each of the 3 revocations cost one refused try.
    assert_eq!(oauth.grants(), 4);
    assert_eq!(oauth.refused(), 3);

    // A token refused even when new (the client lost its access): one renewal, then a clear
    // refusal instead of a loop.
    let server = MockServer::start().await;
    let oauth = ZendeskOAuth {
        uses_per_token: Some(0),
        ..Default::default()
    };
    mount_zendesk_oauth(&server, "users", &stream, &oauth, Duration::ZERO).await;
    let err = oauth_reader(&oauth_settings(&server))
        .fetch_page(&first_page("users"))
        .await
        .expect_err("refused");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(
        msg.contains("401") && msg.contains("ZENDESK_OAUTH_CLIENT_ID"),
        "{msg}"
    );
    assert_eq!((oauth.grants(), oauth.refused()), (2, 2));
}

#[tokio::test]
async fn a_refused_oauth_grant_stops_the_reader_with_the_variables_to_check() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    let oauth = ZendeskOAuth::default();
    mount_zendesk_oauth(&server, "users", &stream, &oauth, Duration::ZERO).await;
    let uri = server.uri();
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
        ("ZENDESK_OAUTH_CLIENT_SECRET", "not-the-secret"),
    ]))
    .expect("settings");
    let err = oauth_reader(&settings)
        .fetch_page(&first_page("users"))
        .await
        .expect_err("refused");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(
        msg.contains("ZENDESK_OAUTH_CLIENT_ID")
            && msg.contains("ZENDESK_OAUTH_CLIENT_SECRET")
            && msg.contains("invalid_client"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-secret"), "{msg}");
    assert_eq!(
        (oauth.grants(), oauth.refused()),
        (0, 0),
        "no API call without a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pages_and_look_ups_share_one_oauth_token() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    *stream.items.lock().expect("lock") = (0..100)
        .map(|i| zendesk_user(1_000 + i, DAY + i as i64))
        .collect();
    let oauth = ZendeskOAuth {
        lifetime: Some(Duration::from_secs(7_200)),
        ..Default::default()
    };
    mount_zendesk_oauth(&server, "users", &stream, &oauth, Duration::ZERO).await;
    let desk = oauth.clone();
    Mock::given(method("GET"))
        .and(path("/api/v2/users/1000.json"))
        .respond_with(move |r: &Request| {
            if desk.admit(r) {
                ResponseTemplate::new(200).set_body_json(json!({"user": zendesk_user(1_000, DAY)}))
            } else {
                ResponseTemplate::new(401)
            }
        })
        .mount(&server)
        .await;
    let settings = oauth_settings(&server);
    // Built from the same settings, as `deskbridge serve` does: one token for both.
    let reader = Arc::new(oauth_reader(&settings));
    let lookup = Arc::new(HelpdeskLookup::new(&settings));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (reader, lookup) = (reader.clone(), lookup.clone());
        tasks.spawn(async move {
            if i % 2 == 0 {
                let page = reader.fetch_page(&first_page("users")).await.expect("page");
                assert_eq!(page.read, 100);
            } else {
                let found = lookup
                    .lookup(&Source::Zendesk, "1000")
                    .await
                    .expect("look-up");
                assert!(found.is_some());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    assert_eq!(oauth.grants(), 1);
    assert_eq!(oauth.refused(), 0);
    // So does the reader the sync function builds.
    let built = reader_for(&settings, &Source::Zendesk).expect("zendesk reader");
    built.fetch_page(&first_page("users")).await.expect("page");
    assert_eq!(oauth.grants(), 1);
}

fn zendesk_ticket(id: u64, requester: Option<u64>, status: &str, updated: i64) -> Value {
    json!({"id": id, "url": format!("https://acme.zendesk.com/api/v2/tickets/{id}.json"),
        "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": null}},
        "created_at": iso(at(updated - 3_600)), "updated_at": iso(at(updated)),
        "generated_timestamp": updated, "type": null,
        "subject": format!("Order {id}"), "raw_subject": format!("Order {id}"),
        "description": "Where is it?", "priority": "normal", "status": status,
        "requester_id": requester, "submitter_id": requester, "assignee_id": 1,
        "tags": ["vip", "shipping"], "custom_fields": []})
}

#[tokio::test]
async fn zendesk_tickets_carry_their_sideloaded_requesters() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    *stream.users.lock().expect("lock") = (0..300).map(|i| zendesk_user(1_000 + i, DAY)).collect();
    *stream.items.lock().expect("lock") = (0..1_200u64)
        .map(|i| {
            let status = match i % 50 {
                0 => "deleted",
                1..=10 => "solved",
                11..=15 => "closed",
                _ => "open",
            };
            // Ticket 7 has no requester at all: it cannot be attributed.
            let requester = (i != 7).then_some(1_000 + i % 300);
            zendesk_ticket(50_000 + i, requester, status, DAY + i as i64)
        })
        .collect();
    mount_zendesk(&server, "tickets", &stream).await;
    let reader = zendesk(&server);

    let pages = read_run(&reader, "tickets", None, at(DAY + 90_000), 250).await;
    assert_eq!(pages.len(), 5);
    assert_eq!(read_count(&pages), 1_200);
    let all = records(&pages);
    // 24 deleted tickets are read but not synced; one cannot be attributed.
    assert_eq!(all.len(), 1_200 - 24 - 1);
    let skipped: Vec<&String> = pages.iter().flat_map(|p| &p.skipped).collect();
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].contains("50007") && skipped[0].contains("requester"),
        "{skipped:?}"
    );
    let ticket_ids: HashSet<&str> = all
        .iter()
        .filter_map(|r| r.events[0].ticket_id.as_deref())
        .collect();
    assert_eq!(ticket_ids.len(), all.len(), "every ticket exactly once");
    assert!(
        all.iter().all(|r| r.person.email.is_some()),
        "requesters known without a look-up"
    );

    let solved = all
        .iter()
        .find(|r| r.events[0].ticket_id.as_deref() == Some("50001"))
        .expect("ticket 50001");
    assert_eq!(solved.person.source_id.as_deref(), Some("1001"));
    assert_eq!(solved.person.email.as_deref(), Some("user1001@example.com"));
    assert_eq!(
        solved.tags_added,
        vec!["vip".to_string(), "shipping".to_string()]
    );
    let kinds: Vec<EventKind> = solved.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::TicketCreated, EventKind::TicketClosed]
    );
    let created = &solved.events[0];
    assert_eq!(created.channel.as_deref(), Some("email"));
    assert_eq!(created.properties["subject"], "Order 50001");
    assert_eq!(created.properties["priority"], "normal");
    assert_eq!(
        created.id,
        SupportEvent::stable_id(
            &Source::Zendesk,
            "ticket:50001",
            EventKind::TicketCreated,
            created.occurred_at
        )
    );
    assert_eq!(solved.events[1].occurred_at, at(DAY + 1));
    let closed_count = all
        .iter()
        .filter(|r| r.events.iter().any(|e| e.kind == EventKind::TicketClosed))
        .count();
    // 15 solved or closed in every 50, less the unattributable ticket 7.
    assert_eq!(closed_count, 24 * 15 - 1);
}

#[tokio::test]
async fn zendesk_ratings_page_by_cursor_and_reread_the_last_week() {
    let server = MockServer::start().await;
    let ratings: Vec<Value> = (0..250u64)
        .map(|i| {
            let score = ["good", "bad", "offered", "unoffered"][(i % 4) as usize];
            json!({"id": 900 + i, "url": "https://acme.zendesk.com/api/v2/satisfaction_ratings/1.json",
                "assignee_id": 1, "group_id": 2, "requester_id": 1_000 + i, "ticket_id": 50_000 + i,
                "score": score, "comment": if score == "bad" { "Too slow" } else { "" },
                "created_at": iso(at(DAY + i as i64)), "updated_at": iso(at(DAY + 7_200 + i as i64))})
        })
        .collect();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    Mock::given(method("GET"))
        .and(path("/api/v2/satisfaction_ratings"))
        .respond_with(move |r: &Request| {
            seen.lock().expect("lock").push(query(r, "start_time"));
            let size: usize = query(r, "page[size]")
                .and_then(|s| s.parse().ok())
                .unwrap_or(100);
            let start = position(query(r, "page[after]").as_deref(), 'a').unwrap_or(0);
            let end = (start + size).min(ratings.len());
            ResponseTemplate::new(200).set_body_json(json!({
                "satisfaction_ratings": &ratings[start..end],
                "meta": {"has_more": end < ratings.len(), "after_cursor": format!("a{end}"),
                         "before_cursor": format!("a{start}")},
                "links": {"next": null, "prev": null}}))
        })
        .mount(&server)
        .await;
    let reader = zendesk(&server);
    let run_started = at(DAY + 30 * 86_400);
    let pages = read_run(
        &reader,
        "satisfaction_ratings",
        Some("1736000000"),
        run_started,
        100,
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert_eq!(read_count(&pages), 250);
    // The filter is the bookmark on every page (the cursor does not replace it).
    assert!(
        starts
            .lock()
            .expect("lock")
            .iter()
            .all(|s| s.as_deref() == Some("1736000000"))
    );
    // Unoffered ratings are nothing to sync.
    let all = records(&pages);
    assert_eq!(all.len(), 250 - 62);
    let responded = all
        .iter()
        .filter(|r| r.events[0].kind == EventKind::SurveyResponded)
        .count();
    assert_eq!(responded, 63 + 63);
    assert!(all.iter().all(|r| r.person.needs_lookup()));
    let bad = all
        .iter()
        .find(|r| r.events[0].properties.get("score") == Some(&json!("bad")))
        .expect("a bad rating");
    assert_eq!(bad.events[0].properties["remark"], "Too slow");
    // Next run re-reads the week before this one started; stored when the run completes.
    let expected = (run_started.timestamp() - 7 * 86_400).to_string();
    assert!(pages.iter().all(|p| !p.bookmark_now));
    assert_eq!(last_bookmark(&pages), Some(expected));
}

#[tokio::test]
async fn a_429_is_waited_out_for_as_long_as_retry_after_says() {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let log = Arc::clone(&arrivals);
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/users/cursor.json"))
        .respond_with(move |_: &Request| {
            let mut log = log.lock().expect("lock");
            log.push(Instant::now());
            if log.len() == 1 {
                ResponseTemplate::new(429).insert_header("Retry-After", "2")
            } else {
                ResponseTemplate::new(200).set_body_json(json!({
                    "users": [zendesk_user(1, DAY)], "after_cursor": "p1", "end_of_stream": true}))
            }
        })
        .mount(&server)
        .await;
    let reader = zendesk(&server);
    let page = read_run(&reader, "users", None, at(DAY), 100).await;
    assert_eq!(records(&page).len(), 1);
    let arrivals = arrivals.lock().expect("lock");
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(4), "retried after {gap:?}");
}

#[tokio::test]
async fn a_429_beyond_the_wait_budget_is_handed_back_without_waiting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let reader = gorgias(&server);
    let started = Instant::now();
    let err = reader
        .fetch_page(&PageRequest {
            since: None,
            stream: "customers".into(),
            cursor: None,
            bookmark: None,
            full: false,
            run_started_at: at(DAY),
            page_size: 100,
        })
        .await
        .expect_err("rate limited");
    assert_eq!(err, FetchError::RateLimited(Duration::from_secs(120)));
    assert!(started.elapsed() < Duration::from_secs(5));
    // And the account is paused for everyone until then: the next page does not even ask
    // (the mock expects exactly one request).
    assert!(reader.limiter().paused_until().is_some());
    let err = reader
        .fetch_page(&first_page("tickets"))
        .await
        .expect_err("still paused");
    assert!(
        matches!(err, FetchError::RateLimited(d) if d > Duration::from_secs(100)),
        "{err:?}"
    );
}

fn first_page(stream: &str) -> PageRequest {
    PageRequest {
        since: None,
        stream: stream.into(),
        cursor: None,
        bookmark: None,
        full: false,
        run_started_at: at(DAY),
        page_size: 100,
    }
}

#[tokio::test]
async fn refusals_name_the_likely_cause() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/users/cursor.json"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": "Couldn't authenticate you"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"type": "error.list",
            "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]})),
        )
        .mount(&server)
        .await;
    // Anything else: not found (a wrong subdomain answers 404 everywhere).
    Mock::given(method("GET"))
        .and(path("/api/customers"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let err = zendesk(&server)
        .fetch_page(&first_page("users"))
        .await
        .expect_err("401");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(
        msg.contains("401") && msg.contains("bad credentials"),
        "{msg}"
    );
    assert!(msg.contains("ZENDESK_API_TOKEN"), "{msg}");

    let err = intercom(&server)
        .fetch_page(&first_page("contacts"))
        .await
        .expect_err("401");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(msg.contains("INTERCOM_ACCESS_TOKEN"), "{msg}");

    let err = gorgias(&server)
        .fetch_page(&first_page("customers"))
        .await
        .expect_err("404");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(
        msg.contains("404") && msg.contains("GORGIAS_DOMAIN"),
        "{msg}"
    );

    assert_eq!(
        zendesk(&server).fetch_page(&first_page("groups")).await,
        Err(FetchError::UnknownStream("groups".into()))
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": 1, "email": "a@example.com", "updated_datetime": iso(at(DAY))}],
            "meta": {"next_cursor": null, "prev_cursor": null}})))
        .mount(&server)
        .await;
    let page = gorgias(&server)
        .fetch_page(&first_page("customers"))
        .await
        .expect("third try");
    assert_eq!(page.records.len(), 1);

    let down = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .expect(3)
        .mount(&down)
        .await;
    let err = gorgias(&down)
        .fetch_page(&first_page("customers"))
        .await
        .expect_err("down");
    assert!(
        matches!(err, FetchError::Transient(ref m) if m.contains("502")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Intercom: search with day-granular dates

/// The search endpoint as Intercom behaves: `>` and `=` on a date match whole (UTC) days,
/// results sorted by `updated_at` then id, `starting_after` an opaque cursor.
#[derive(Clone, Default)]
struct IntercomSearch {
    items: Arc<Mutex<Vec<Value>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

impl IntercomSearch {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().expect("json body");
        self.bodies.lock().expect("lock").push(body.clone());
        let mut matching: Vec<Value> = {
            let items = self.items.lock().expect("lock");
            let filters = body["query"]["value"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            items
                .iter()
                .filter(|item| {
                    let updated = day_of(item["updated_at"].as_i64().expect("updated_at"));
                    filters.iter().any(|f| {
                        let day = day_of(f["value"].as_i64().expect("value"));
                        match f["operator"].as_str() {
                            Some(">") => updated > day,
                            Some("=") => updated == day,
                            _ => false,
                        }
                    })
                })
                .cloned()
                .collect()
        };
        matching.sort_by_key(|i| (i["updated_at"].as_i64(), i["id"].as_str().map(String::from)));
        let per_page = body["pagination"]["per_page"].as_u64().unwrap_or(50) as usize;
        if per_page > 150 {
            return ResponseTemplate::new(400);
        }
        let start = position(body["pagination"]["starting_after"].as_str(), 'W').unwrap_or(0);
        let end = (start + per_page).min(matching.len());
        let mut pages = json!({"type": "pages", "page": start / per_page + 1,
            "per_page": per_page, "total_pages": matching.len().div_ceil(per_page)});
        if end < matching.len() {
            pages["next"] =
                json!({"page": end / per_page + 1, "starting_after": format!("W{end}")});
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": &matching[start..end], "total_count": matching.len(),
            "pages": pages}))
    }
}

fn intercom_contact(id: &str, role: &str, updated: i64) -> Value {
    let email = (role == "user").then(|| format!("{id}@example.com"));
    json!({"type": "contact", "id": id, "workspace_id": "a86dr8yl", "external_id": null,
        "role": role, "email": email, "phone": null, "name": format!("Contact {id}"),
        "created_at": updated - 1_000, "updated_at": updated, "signed_up_at": null,
        "unsubscribed_from_emails": false, "custom_attributes": {},
        "tags": {"type": "list", "data": [], "url": format!("/contacts/{id}/tags"), "total_count": 0, "has_more": false}})
}

async fn mount_intercom(server: &MockServer, resource: &str, search: &IntercomSearch) {
    let s = search.clone();
    Mock::given(method("POST"))
        .and(path(format!("/{resource}/search")))
        .and(header("authorization", "Bearer ic-token"))
        .and(header("intercom-version", "2.11"))
        .respond_with(move |r: &Request| s.respond(r))
        .mount(server)
        .await;
}

#[tokio::test]
async fn intercom_contacts_sharing_a_second_across_pages_are_all_read() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    // 3,000 contacts; 400 of them (users and leads) updated in the very same second, which
    // spans three page boundaries at 150 per page.
    *search.items.lock().expect("lock") = (0..3_000)
        .map(|i| {
            let updated = if (1_000..1_400).contains(&i) {
                DAY + 5_000
            } else {
                DAY - 50_000 + i as i64 * 20
            };
            let role = if i % 3 == 0 { "lead" } else { "user" };
            intercom_contact(&format!("c{i:05}"), role, updated)
        })
        .collect();
    mount_intercom(&server, "contacts", &search).await;
    let reader = intercom(&server);
    let run_started = at(DAY + 86_400);
    let pages = read_run(&reader, "contacts", None, run_started, 500).await;
    assert_eq!(pages.len(), 20, "per_page is capped at 150");
    let ids = unique_ids(&pages);
    assert_eq!(ids.len(), 3_000);
    assert!((1_000..1_400).all(|i| ids.contains(&format!("c{i:05}"))));
    // Leads without email are addressed by id.
    let lead = records(&pages)
        .into_iter()
        .find(|r| r.person.source_id.as_deref() == Some("c00003"))
        .expect("lead");
    assert_eq!(lead.person.email, None);
    assert_eq!(
        lead.events[0].id,
        "intercom:contact:c00003:customer.created"
    );
    assert!(pages.iter().all(|p| !p.bookmark_now));
    assert_eq!(
        last_bookmark(&pages),
        Some((run_started.timestamp() - 300).to_string())
    );
    // This Intercom lists no tags (404): asked once, not once a page.
    let tag_calls = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/tags")
        .count();
    assert_eq!(tag_calls, 1);
    // The query is the documented day-safe shape.
    let body = search.bodies.lock().expect("lock")[0].clone();
    assert_eq!(body["query"]["operator"], "OR");
    assert_eq!(
        body["sort"],
        json!({"field": "updated_at", "order": "ascending"})
    );
}

#[tokio::test]
async fn intercom_contacts_carry_their_tags_by_name() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    let tag = |id: &str| json!({"type": "tag", "id": id, "url": format!("/tags/{id}")});
    *search.items.lock().expect("lock") = (0..300)
        .map(|i| {
            let mut c = intercom_contact(&format!("c{i:03}"), "user", DAY + i as i64);
            let (data, more) = match i % 3 {
                0 => (vec![tag("1")], false),
                1 => (vec![], false),
                // More than Intercom lists inline: only additions.
                _ => (vec![tag("2")], true),
            };
            c["tags"]["data"] = json!(data);
            c["tags"]["has_more"] = json!(more);
            c
        })
        .collect();
    // The last contact has a tag created after the names were first read.
    search.items.lock().expect("lock")[299]["tags"]["data"] = json!([tag("3")]);
    search.items.lock().expect("lock")[299]["tags"]["has_more"] = json!(false);
    mount_intercom(&server, "contacts", &search).await;
    let tag_calls = Arc::new(Mutex::new(0usize));
    let calls = tag_calls.clone();
    Mock::given(method("GET"))
        .and(path("/tags"))
        .and(header("authorization", "Bearer ic-token"))
        .respond_with(move |_: &Request| {
            let mut n = calls.lock().expect("lock");
            *n += 1;
            let mut data = vec![
                json!({"type": "tag", "id": "1", "name": "VIP"}),
                json!({"type": "tag", "id": "2", "name": "churn-risk"}),
            ];
            // The new tag exists by the time the names are read a second time.
            if *n > 1 {
                data.push(json!({"type": "tag", "id": "3", "name": "beta"}));
            }
            ResponseTemplate::new(200).set_body_json(json!({"type": "list", "data": data}))
        })
        .mount(&server)
        .await;
    let pages = read_run(&intercom(&server), "contacts", None, at(DAY + 86_400), 100).await;
    let all = records(&pages);
    assert_eq!(all.len(), 300);
    let of = |id: &str| {
        all.iter()
            .find(|r| r.person.source_id.as_deref() == Some(id))
            .expect("contact")
    };
    assert_eq!(of("c000").tags_now, Some(vec!["VIP".to_string()]));
    assert_eq!(of("c001").tags_now, Some(vec![]));
    assert_eq!(of("c002").tags_now, None);
    assert_eq!(of("c002").tags_added, vec!["churn-risk".to_string()]);
    assert_eq!(of("c299").tags_now, Some(vec!["beta".to_string()]));
    assert!(
        all.iter().all(|r| r.tag_holder.is_none()),
        "the person holds them"
    );
    // Once for the first page, once more when a contact named a tag the names lacked.
    assert_eq!(*tag_calls.lock().expect("lock"), 2);
}

#[tokio::test]
async fn intercom_company_changes_reach_the_contacts_whose_company_it_is() {
    let server = MockServer::start().await;
    let company = |id: &str, name: &str, updated: i64| {
        json!({"type": "company", "id": id, "company_id": format!("ext-{id}"), "name": name,
            "plan": {"type": "plan", "id": "p1", "name": "Gold"}, "size": 40,
            "created_at": DAY - 86_400, "updated_at": updated, "custom_attributes": {}})
    };
    let scrolls = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let seen = scrolls.clone();
    let pages_of_scroll = [
        vec![
            company("c1", "Renamed Co", DAY + 2_000),
            company("c2", "Quiet Ltd", DAY - 10_000),
            company("c3", "Gone Corp", DAY + 3_000),
        ],
        vec![company("c4", "Empty LLC", DAY + 2_500)],
    ];
    Mock::given(method("GET"))
        .and(path("/companies/scroll"))
        .and(header("authorization", "Bearer ic-token"))
        .respond_with(move |r: &Request| {
            let param = query(r, "scroll_param");
            let mut seen = seen.lock().expect("lock");
            seen.push(param.clone());
            let (data, next) = match param.as_deref() {
                None => (pages_of_scroll[0].clone(), "s1"),
                // The first continuation finds the scroll expired.
                Some("s1") if seen.iter().filter(|p| p.as_deref() == Some("s1")).count() == 1 => {
                    return ResponseTemplate::new(404).set_body_json(
                        json!({"type": "error.list", "errors": [{"code": "not_found"}]}),
                    );
                }
                Some("s1") => (pages_of_scroll[1].clone(), "s2"),
                _ => (vec![], "s3"),
            };
            ResponseTemplate::new(200).set_body_json(json!({"type": "list", "data": data,
                "pages": null, "total_count": null, "scroll_param": next}))
        })
        .mount(&server)
        .await;
    // c1 has 60 contacts over two pages, one of which has another company first.
    Mock::given(method("GET"))
        .and(path("/companies/c1/contacts"))
        .respond_with(|r: &Request| {
            let page: usize = query(r, "page").and_then(|p| p.parse().ok()).expect("page");
            let per: usize = query(r, "per_page").and_then(|p| p.parse().ok()).expect("per_page");
            let data: Vec<Value> = ((page - 1) * per..(page * per).min(60))
                .map(|i| {
                    let mut c = intercom_contact(&format!("k{i:02}"), "user", DAY - 50_000);
                    let first = if i == 3 { "c9" } else { "c1" };
                    c["companies"] = json!({"type": "list", "data": [{"type": "company", "id": first}],
                        "total_count": 1, "has_more": false});
                    c
                })
                .collect();
            let next = (page * per < 60).then(|| json!(format!("/companies/c1/contacts?page={}", page + 1)));
            ResponseTemplate::new(200).set_body_json(json!({"type": "list", "data": data,
                "pages": {"type": "pages", "page": page, "per_page": per, "total_pages": 2, "next": next},
                "total_count": 60}))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/companies/c3/contacts"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/companies/c4/contacts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "list", "data": [],
            "pages": {"type": "pages", "page": 1, "per_page": 50, "total_pages": 0}, "total_count": 0})))
        .mount(&server)
        .await;
    let reader = intercom(&server);

    // A first run reads nothing.
    let first = read_run(&reader, "companies", None, at(DAY + 1_300), 150).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].bookmark, Some((DAY + 1_000).to_string()));
    assert!(scrolls.lock().expect("lock").is_empty());

    let run = at(DAY + 10_000);
    let pages = read_run(
        &reader,
        "companies",
        Some(&(DAY + 1_000).to_string()),
        run,
        150,
    )
    .await;
    // Scroll, expired, scroll again, s1, s2 (end); c1 twice, c3 (gone), c4 (no contacts).
    assert_eq!(pages.len(), 9, "{pages:#?}");
    assert_eq!(
        *scrolls.lock().expect("lock"),
        vec![
            None,
            Some("s1".into()),
            None,
            Some("s1".into()),
            Some("s2".into())
        ]
    );
    let all = records(&pages);
    assert_eq!(
        all.len(),
        59,
        "the contact whose first company is another is left alone"
    );
    for r in &all {
        let profile = r.profile.as_ref().expect("profile");
        assert_eq!(profile["company"]["name"], "Renamed Co");
        assert_eq!(profile["company"]["plan"], "Gold");
        assert_eq!(r.observed_at, at(DAY + 2_000));
    }
    assert_eq!(
        last_bookmark(&pages),
        Some((run.timestamp() - 300).to_string())
    );
}

#[tokio::test]
async fn intercom_changed_contacts_bring_their_data_events_when_switched_on() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    *search.items.lock().expect("lock") = (0..3)
        .map(|i| intercom_contact(&format!("c{i}"), "user", DAY + 5_000 + i))
        .collect();
    mount_intercom(&server, "contacts", &search).await;
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = calls.clone();
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/events"))
        .and(header("authorization", "Bearer ic-token"))
        .respond_with(move |r: &Request| {
            assert_eq!(query(r, "type").as_deref(), Some("user"));
            let contact = query(r, "intercom_user_id").expect("contact");
            let page = query(r, "page");
            seen.lock()
                .expect("lock")
                .push(format!("{contact}:{}", page.clone().unwrap_or_default()));
            let ev = |id: &str, name: &str, at: i64| {
                json!({"type": "event", "id": id,
                "event_name": name, "created_at": at, "intercom_user_id": contact.clone(),
                "metadata": {"plan": "pro"}})
            };
            let (events, next) = match (contact.as_str(), page.as_deref()) {
                ("c0", _) => (
                    vec![
                        ev("e1", "placed-order", DAY + 4_000),
                        ev("e0", "signed-up", DAY - 9_000),
                    ],
                    None,
                ),
                ("c1", None) => (
                    vec![ev("e3", "invited-teammate", DAY + 4_500)],
                    Some(format!(
                        "{base}/events?type=user&intercom_user_id=c1&per_page=50&page=2"
                    )),
                ),
                ("c1", Some("2")) => (vec![ev("e2", "placed-order", DAY + 3_000)], None),
                _ => (vec![], None),
            };
            ResponseTemplate::new(200).set_body_json(json!({"type": "event.list", "events": events,
                "pages": {"next": next}}))
        })
        .mount(&server)
        .await;
    let reader = intercom(&server).with_data_events(true);

    // The backfill reads no events.
    read_run(&reader, "contacts", None, at(DAY + 86_400), 150).await;
    assert!(calls.lock().expect("lock").is_empty());

    let watermark = (DAY + 1_000).to_string();
    let pages = read_run(&reader, "contacts", Some(&watermark), at(DAY + 86_400), 150).await;
    let all = records(&pages);
    let names = |id: &str| -> Vec<String> {
        let r = all
            .iter()
            .find(|r| r.person.source_id.as_deref() == Some(id))
            .expect("contact");
        r.events
            .iter()
            .filter(|e| e.kind == EventKind::DataEvent)
            .map(|e| {
                e.properties["event_name"]
                    .as_str()
                    .expect("name")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        names("c0"),
        vec!["placed-order"],
        "the event before the watermark is left out"
    );
    assert_eq!(names("c1"), vec!["invited-teammate", "placed-order"]);
    assert!(names("c2").is_empty());
    let mut asked = calls.lock().expect("lock").clone();
    asked.sort();
    assert_eq!(asked, vec!["c0:", "c1:", "c1:2", "c2:"]);
    let e = all
        .iter()
        .flat_map(|r| &r.events)
        .find(|e| e.kind == EventKind::DataEvent)
        .expect("an event");
    assert_eq!(e.properties["plan"], "pro");
}

#[tokio::test]
async fn intercom_next_run_gets_same_day_updates_and_nothing_older_than_the_watermark() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    let run1 = at(DAY + 36_000); // 10:00 UTC
    let watermark = run1.timestamp() - 300;
    let mut items: Vec<Value> = (0..1_000)
        .map(|i| intercom_contact(&format!("old{i:04}"), "user", DAY - 86_400 + i as i64 * 60))
        .collect();
    // Earlier the same day, before the watermark: read by run 1 already.
    items.extend(
        (0..200)
            .map(|i| intercom_contact(&format!("morning{i:03}"), "user", DAY + 3_600 + i as i64)),
    );
    // Exactly on the watermark second, and later the same day (a strict `>` on the day loses these).
    items.extend((0..40).map(|i| intercom_contact(&format!("edge{i:02}"), "user", watermark)));
    items.extend((0..300).map(|i| {
        intercom_contact(
            &format!("later{i:03}"),
            "lead",
            watermark + 1 + i as i64 * 30,
        )
    }));
    *search.items.lock().expect("lock") = items;
    mount_intercom(&server, "contacts", &search).await;
    let reader = intercom(&server);

    let bookmark = watermark.to_string();
    let pages = read_run(&reader, "contacts", Some(&bookmark), at(DAY + 72_000), 150).await;
    // The server returns the whole day (540 records); the reader keeps the exact seconds.
    assert_eq!(read_count(&pages), 540);
    let ids = unique_ids(&pages);
    assert_eq!(ids.len(), 340);
    assert!(
        ids.iter()
            .all(|id| id.starts_with("edge") || id.starts_with("later"))
    );
    let body = search.bodies.lock().expect("lock")[0].clone();
    assert_eq!(body["query"]["value"][0]["value"], json!(watermark));
    assert_eq!(body["query"]["value"][1]["operator"], "=");

    // A run from a date searches from that date, whatever the bookmark.
    let since = at(DAY + 3_600);
    let request = PageRequest {
        since: Some(since),
        ..first_page("contacts")
    };
    let request = PageRequest {
        bookmark: Some(bookmark.clone()),
        ..request
    };
    reader.fetch_page(&request).await.expect("page");
    let body = search
        .bodies
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("a search");
    assert_eq!(body["query"]["value"][0]["value"], json!(since.timestamp()));
}

#[tokio::test]
async fn intercom_conversations_become_ticket_milestones() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    *search.items.lock().expect("lock") = (0..450)
        .map(|i| {
            let id = format!("{}", 10_000 + i);
            let updated = DAY + i as i64 * 10;
            let mut c = json!({"type": "conversation", "id": id, "created_at": updated - 600,
                "updated_at": updated, "waiting_since": null, "snoozed_until": null, "open": true,
                "state": "open", "read": true, "priority": "not_priority", "title": null,
                "source": {"type": "conversation", "id": "403918320", "delivered_as": "customer_initiated",
                    "subject": "", "body": "<p>Hi</p>",
                    "author": {"type": "user", "id": format!("c{i}"), "name": "Jane", "email": format!("c{i}@example.com")}},
                "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": format!("c{i}"), "external_id": null}]},
                "statistics": {"type": "conversation_statistics", "last_close_at": null},
                "conversation_rating": null});
            if i % 3 == 0 {
                c["state"] = json!("closed");
                c["statistics"]["last_close_at"] = json!(updated - 60);
            }
            if i % 9 == 0 {
                c["conversation_rating"] = json!({"rating": 5, "remark": "Great", "created_at": updated,
                    "contact": {"type": "contact", "id": format!("c{i}")}});
            }
            if i == 100 {
                // Started by an admin to nobody we know.
                c["contacts"]["contacts"] = json!([]);
                c["source"]["author"] = json!({"type": "admin", "id": "814860"});
            }
            c
        })
        .collect();
    mount_intercom(&server, "conversations", &search).await;
    let reader = intercom(&server);
    let pages = read_run(&reader, "conversations", None, at(DAY + 86_400), 150).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(read_count(&pages), 450);
    let all = records(&pages);
    assert_eq!(all.len(), 449);
    let skipped: Vec<&String> = pages.iter().flat_map(|p| &p.skipped).collect();
    assert_eq!(
        skipped,
        vec!["conversation 10100: no contact or author to attribute it to"]
    );
    let first = all
        .iter()
        .find(|r| r.events[0].ticket_id.as_deref() == Some("10000"))
        .expect("conversation 10000");
    assert_eq!(first.person.email.as_deref(), Some("c0@example.com"));
    let kinds: Vec<EventKind> = first.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::TicketCreated,
            EventKind::TicketClosed,
            EventKind::SurveyResponded
        ]
    );
    assert_eq!(first.events[1].occurred_at, at(DAY - 60));
    assert_eq!(
        first.events[0].id,
        SupportEvent::stable_id(
            &Source::Intercom,
            "conversation:10000",
            EventKind::TicketCreated,
            at(DAY - 600)
        )
    );
    let closed = all.iter().filter(|r| r.events.len() >= 2).count();
    assert_eq!(closed, 150);
}

/// A company reference as contacts list them (`companies.data[]`).
fn company_ref(id: &str) -> Value {
    json!({"type": "list", "data": [{"type": "company", "id": id, "url": format!("/companies/{id}")}],
        "url": "/contacts/x/companies", "total_count": 1, "has_more": false})
}

#[tokio::test]
async fn intercom_contacts_carry_their_first_company_read_once_per_company() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    // 300 contacts over two pages: 200 at Acme, 50 at a company whose reads fail, 50 without.
    *search.items.lock().expect("lock") = (0..300)
        .map(|i| {
            let mut c = intercom_contact(&format!("c{i:03}"), "user", DAY + i as i64);
            match i % 6 {
                0..=3 => c["companies"] = company_ref("6762f0f21bb69f9f2193bb83"),
                4 => c["companies"] = company_ref("broken"),
                _ => {}
            }
            c
        })
        .collect();
    mount_intercom(&server, "contacts", &search).await;
    let company: Value = serde_json::from_str(include_str!("fixtures/intercom/api-company.json"))
        .expect("company fixture");
    Mock::given(method("GET"))
        .and(path("/companies/6762f0f21bb69f9f2193bb83"))
        .and(header("authorization", "Bearer ic-token"))
        .and(header("intercom-version", "2.11"))
        .respond_with(ResponseTemplate::new(200).set_body_json(company))
        // Once for both pages: later pages use the reader's cache.
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/companies/broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;

    let reader = intercom(&server);
    let pages = read_run(&reader, "contacts", None, at(DAY + 86_400), 150).await;
    assert_eq!(pages.len(), 2);
    let all = records(&pages);
    assert_eq!(all.len(), 300, "no contact is held back by its company");
    let company_of = |r: &Record| {
        r.profile
            .as_ref()
            .and_then(|p| p.get("company"))
            .map(|c| c["name"].clone())
    };
    let mapping = deskbridge_shared::mapping::Mapping::default();
    for r in &all {
        let i: usize = r.person.source_id.as_deref().expect("id")[1..]
            .parse()
            .expect("number");
        let contact = mapping.contact(&Source::Intercom, r).expect("maps");
        if i % 6 <= 3 {
            assert_eq!(company_of(r), Some(json!("Acme Logistics")), "c{i:03}");
            assert_eq!(contact.attributes["COMPANY_NAME"], json!("Acme Logistics"));
            assert_eq!(contact.attributes["COMPANY_PLAN"], json!("Pro"));
            assert_eq!(contact.attributes["COMPANY_SIZE"], json!(85));
        } else {
            assert_eq!(company_of(r), None, "c{i:03}");
            assert!(
                contact
                    .attributes
                    .keys()
                    .all(|k| !k.starts_with("COMPANY_"))
            );
            assert!(contact.email.is_some(), "written anyway: c{i:03}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gorgias: newest-first cursor lists without a date filter

/// A Gorgias list: sorted by the `order_by` field, cursors `g<offset>`, and a leaky-bucket
/// limit of `limit` requests per `window` answered with 429 when exceeded.
#[derive(Clone)]
struct GorgiasList {
    items: Arc<Mutex<Vec<Value>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    limit: usize,
    window: Duration,
    throttled: Arc<Mutex<usize>>,
}

impl GorgiasList {
    fn new(items: Vec<Value>) -> Self {
        GorgiasList {
            items: Arc::new(Mutex::new(items)),
            arrivals: Arc::default(),
            limit: usize::MAX,
            window: Duration::from_secs(20),
            throttled: Arc::default(),
        }
    }

    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let used = {
            let mut arrivals = self.arrivals.lock().expect("lock");
            arrivals.push(now);
            arrivals.iter().filter(|t| now - **t < self.window).count()
        };
        if used > self.limit {
            *self.throttled.lock().expect("lock") += 1;
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .insert_header(
                    "X-Gorgias-Account-Api-Call-Limit",
                    format!("{used}/{}", self.limit),
                );
        }
        let Some(order) = query(request, "order_by") else {
            return ResponseTemplate::new(400);
        };
        let (field, direction) = order.split_once(':').expect("field:direction");
        let mut items = self.items.lock().expect("lock").clone();
        items.sort_by(|a, b| a[field].as_str().cmp(&b[field].as_str()));
        if direction == "desc" {
            items.reverse();
        }
        let limit: usize = query(request, "limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(30);
        if limit > 100 {
            return ResponseTemplate::new(400);
        }
        let start = position(query(request, "cursor").as_deref(), 'g').unwrap_or(0);
        let end = (start + limit).min(items.len());
        let next = (end < items.len()).then(|| format!("g{end}"));
        let prev = (start > 0).then(|| format!("g{}", start.saturating_sub(limit)));
        ResponseTemplate::new(200)
            .insert_header("X-Gorgias-Account-Api-Call-Limit", format!("{used}/40"))
            .set_body_json(json!({"data": &items[start..end], "object": "list",
                "uri": request.url.path(), "meta": {"next_cursor": next, "prev_cursor": prev}}))
    }
}

async fn mount_gorgias(server: &MockServer, resource: &str, list: &GorgiasList) {
    let l = list.clone();
    Mock::given(method("GET"))
        .and(path(format!("/api/{resource}")))
        .and(header("authorization", basic("ops@acme.test", "gg-key")))
        .respond_with(move |r: &Request| l.respond(r))
        .mount(server)
        .await;
}

fn gorgias_customer(id: u64, updated: DateTime<Utc>) -> Value {
    json!({"id": id, "external_id": null, "active": true, "email": format!("g{id}@example.com"),
        "name": format!("Customer {id}"), "firstname": "Cus", "lastname": format!("{id}"),
        "language": null, "timezone": null,
        "created_datetime": format!("{}.000000+00:00", updated.format("%Y-%m-%dT%H:%M:%S")),
        "updated_datetime": format!("{}.123456+00:00", updated.format("%Y-%m-%dT%H:%M:%S")),
        "channels": [{"id": id, "type": "email", "address": format!("g{id}@example.com"), "preferred": true}],
        "data": {}, "meta": {}, "note": null})
}

#[tokio::test]
async fn gorgias_customers_are_read_to_the_end_then_only_down_to_the_bookmark() {
    let server = MockServer::start().await;
    let list = GorgiasList::new(
        (0..2_345)
            .map(|i| gorgias_customer(70_000 + i, at(DAY + i as i64 * 10)))
            .collect(),
    );
    mount_gorgias(&server, "customers", &list).await;
    let reader = gorgias(&server);
    let run1 = at(DAY + 23_000);
    let pages = read_run(&reader, "customers", None, run1, 100).await;
    assert_eq!(pages.len(), 24);
    assert_eq!(read_count(&pages), 2_345);
    let ids = unique_ids(&pages);
    assert_eq!(ids.len(), 2_345);
    let bookmark = last_bookmark(&pages).expect("bookmark");
    assert_eq!(bookmark, "2025-01-08T06:23:20Z");
    assert!(pages.iter().all(|p| !p.bookmark_now));
    let c = records(&pages)
        .into_iter()
        .find(|r| r.person.source_id.as_deref() == Some("70000"))
        .expect("customer");
    assert_eq!(c.person.email.as_deref(), Some("g70000@example.com"));
    assert_eq!(c.events[0].id, "gorgias:customer:70000:customer.created");

    // Since run 1: 250 customers changed (they move to the front).
    {
        let mut items = list.items.lock().expect("lock");
        for (n, item) in items
            .iter_mut()
            .enumerate()
            .filter(|(n, _)| n % 7 == 0)
            .take(250)
        {
            *item = gorgias_customer(70_000 + n as u64, at(DAY + 40_000 + n as i64));
        }
    }
    let requests_before = list.arrivals.lock().expect("lock").len();
    let pages = read_run(&reader, "customers", Some(&bookmark), at(DAY + 50_000), 100).await;
    let ids = unique_ids(&pages);
    // The changed ones plus those updated within the 10-minute lookback before the bookmark
    // (one every 10 s, from #2240 to #2344).
    let lookback_start = run1.timestamp() - 600;
    let expected: HashSet<String> = list
        .items
        .lock()
        .expect("lock")
        .iter()
        .filter(|c| {
            let t = DateTime::parse_from_rfc3339(c["updated_datetime"].as_str().expect("t"))
                .expect("time")
                .timestamp();
            t >= lookback_start
        })
        .map(|c| c["id"].to_string())
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(ids.len(), 250 + 105);
    // It stopped at the bookmark instead of reading the whole list again.
    let requests = list.arrivals.lock().expect("lock").len() - requests_before;
    assert_eq!(requests, pages.len());
    assert!(requests <= 4, "{requests} requests");
    assert!(
        read_count(&pages) > ids.len() as u64,
        "older records on the last page were dropped"
    );
}

fn gorgias_ticket(id: u64, customer: Value, status: &str, updated: DateTime<Utc>) -> Value {
    let stamp = |t: DateTime<Utc>| format!("{}.000000+00:00", t.format("%Y-%m-%dT%H:%M:%S"));
    json!({"id": id, "uri": format!("/api/tickets/{id}/"), "external_id": null, "language": "en",
        "status": status, "priority": "normal", "channel": "Email", "via": "helpdesk",
        "from_agent": false, "customer": customer,
        "assignee_user": {"id": 3001, "name": "Sam Agent"}, "subject": format!("Order {id}"),
        "tags": [{"id": 11, "name": "vip"}], "spam": id % 100 == 99,
        "created_datetime": stamp(updated - chrono::Duration::hours(2)),
        "updated_datetime": stamp(updated),
        "closed_datetime": (status == "closed").then(|| stamp(updated - chrono::Duration::hours(1))),
        "trashed_datetime": null, "meta": null})
}

#[tokio::test]
async fn gorgias_tickets_carry_their_customer_and_milestones() {
    let server = MockServer::start().await;
    let tickets: Vec<Value> = (0..1_000u64)
        .map(|i| {
            let customer = if i == 5 {
                json!({"id": null, "email": null, "name": "Walk-in"})
            } else {
                json!({"id": 70_000 + i % 400, "email": format!("g{}@example.com", 70_000 + i % 400),
                    "name": "Customer", "firstname": "Cus", "lastname": "Tomer"})
            };
            let status = if i % 4 == 0 { "closed" } else { "open" };
            gorgias_ticket(80_000 + i, customer, status, at(DAY + i as i64 * 60))
        })
        .collect();
    mount_gorgias(&server, "tickets", &GorgiasList::new(tickets)).await;
    let reader = gorgias(&server);
    let pages = read_run(&reader, "tickets", None, at(DAY + 86_400), 100).await;
    assert_eq!(pages.len(), 10);
    assert_eq!(read_count(&pages), 1_000);
    let all = records(&pages);
    // 10 spam tickets are not synced; ticket 80005 has no customer we can address.
    assert_eq!(all.len(), 1_000 - 10 - 1);
    let skipped: Vec<&String> = pages.iter().flat_map(|p| &p.skipped).collect();
    assert_eq!(
        skipped,
        vec!["ticket 80005: customer unknown (no id or email)"]
    );
    let ticket_ids: HashSet<&str> = all
        .iter()
        .filter_map(|r| r.events[0].ticket_id.as_deref())
        .collect();
    assert_eq!(ticket_ids.len(), all.len());
    let t = all
        .iter()
        .find(|r| r.events[0].ticket_id.as_deref() == Some("80004"))
        .expect("ticket 80004");
    assert_eq!(t.person.email.as_deref(), Some("g70004@example.com"));
    assert_eq!(t.tags_added, vec!["vip".to_string()]);
    let kinds: Vec<EventKind> = t.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::TicketCreated, EventKind::TicketClosed]
    );
    assert_eq!(t.events[0].channel.as_deref(), Some("email"));
    assert_eq!(t.events[0].properties["agent_name"], "Sam Agent");
    assert_eq!(t.events[1].occurred_at, at(DAY + 4 * 60 - 3_600));
    assert_eq!(
        t.events[1].id,
        SupportEvent::stable_id(
            &Source::Gorgias,
            "ticket:80004",
            EventKind::TicketClosed,
            t.events[1].occurred_at
        )
    );
}

/// Serves `GET /api/tickets/{id}/messages` for tickets created `created_before_update` before
/// their update: the customer's message, an internal note 5 minutes later, then a reply
/// `id % 50 + 10` minutes after the customer's message (none for ticket 80003). Counts calls by
/// ticket id.
async fn mount_gorgias_messages(server: &MockServer) -> Arc<Mutex<Vec<u64>>> {
    let calls: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = calls.clone();
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"^/api/tickets/\d+/messages$",
        ))
        .and(header("authorization", basic("ops@acme.test", "gg-key")))
        .respond_with(move |r: &Request| {
            let id: u64 = r
                .url
                .path()
                .split('/')
                .nth(3)
                .and_then(|i| i.parse().ok())
                .expect("id");
            seen.lock().expect("lock").push(id);
            if query(r, "order_by").as_deref() != Some("created_datetime:asc") {
                return ResponseTemplate::new(400);
            }
            let asked = at(DAY);
            let stamp = |t: DateTime<Utc>| format!("{}.000000", t.format("%Y-%m-%dT%H:%M:%S"));
            let mut data = vec![
                json!({"id": 1, "ticket_id": id, "from_agent": false, "public": true,
                    "created_datetime": stamp(asked), "sent_datetime": null}),
                json!({"id": 2, "ticket_id": id, "from_agent": true, "public": false,
                    "created_datetime": stamp(asked + chrono::Duration::minutes(5))}),
            ];
            if id != 80_003 {
                let minutes = (id % 50 + 10) as i64;
                data.push(
                    json!({"id": 3, "ticket_id": id, "from_agent": true, "public": true,
                    "created_datetime": stamp(asked + chrono::Duration::minutes(minutes)),
                    "sent_datetime": stamp(asked + chrono::Duration::minutes(minutes))}),
                );
            }
            ResponseTemplate::new(200).set_body_json(json!({"data": data, "object": "list",
                "meta": {"next_cursor": null, "prev_cursor": null}}))
        })
        .mount(server)
        .await;
    calls
}

#[tokio::test]
async fn gorgias_incremental_runs_read_the_first_reply_of_recent_tickets() {
    let server = MockServer::start().await;
    let customer =
        |i: u64| json!({"id": 70_000 + i, "email": format!("g{}@example.com", 70_000 + i)});
    let list = GorgiasList::new(
        (0..300u64)
            .map(|i| gorgias_ticket(80_000 + i, customer(i), "open", at(DAY + i as i64 * 60)))
            .collect(),
    );
    mount_gorgias(&server, "tickets", &list).await;
    let messages = mount_gorgias_messages(&server).await;
    let reader = gorgias(&server);

    // The backfill reads no messages.
    let run1 = at(DAY + 86_400);
    let pages = read_run(&reader, "tickets", None, run1, 100).await;
    assert_eq!(records(&pages).len(), 300 - 3, "three spam tickets");
    assert!(messages.lock().expect("lock").is_empty());
    let bookmark = last_bookmark(&pages).expect("bookmark");

    // Ten tickets change, among them 80003 (no reply yet) and two spam tickets.
    let changed = [1u64, 3, 40, 99, 120, 180, 200, 250, 251, 299];
    {
        let mut items = list.items.lock().expect("lock");
        for i in changed {
            items[i as usize] =
                gorgias_ticket(80_000 + i, customer(i), "open", at(DAY + 90_000 + i as i64));
        }
    }
    let run2 = at(DAY + 2 * 86_400);
    let pages = read_run(&reader, "tickets", Some(&bookmark), run2, 100).await;
    let read = records(&pages);
    assert_eq!(read.len(), changed.len() - 2);
    let mut asked: Vec<u64> = messages.lock().expect("lock").clone();
    asked.sort_unstable();
    let mut expected: Vec<u64> = changed
        .iter()
        .filter(|i| *i % 100 != 99)
        .map(|i| 80_000 + i)
        .collect();
    expected.sort_unstable();
    assert_eq!(asked, expected, "one call per changed live ticket");
    for r in &read {
        let id: u64 = r.events[0]
            .ticket_id
            .as_deref()
            .expect("ticket")
            .parse()
            .expect("id");
        let figure = r.events[0].properties.get("first_reply_minutes");
        if id == 80_003 {
            assert_eq!(figure, None);
        } else {
            assert_eq!(figure, Some(&json!((id % 50 + 10) as f64)), "ticket {id}");
        }
    }

    // Read again: only the ticket without a reply costs a call; the others are known.
    messages.lock().expect("lock").clear();
    let pages = read_run(
        &reader,
        "tickets",
        Some(&bookmark),
        at(DAY + 2 * 86_400 + 60),
        100,
    )
    .await;
    assert_eq!(*messages.lock().expect("lock"), vec![80_003]);
    let again = records(&pages);
    let t = again
        .iter()
        .find(|r| r.events[0].ticket_id.as_deref() == Some("80040"))
        .expect("ticket 80040");
    assert_eq!(t.events[0].properties["first_reply_minutes"], json!(50.0));

    // Tickets created more than 14 days before the run are not read.
    messages.lock().expect("lock").clear();
    let late = at(DAY + 20 * 86_400);
    read_run(&reader, "tickets", Some(&bookmark), late, 100).await;
    assert!(messages.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn gorgias_surveys_reread_a_two_week_window() {
    let server = MockServer::start().await;
    let now = at(DAY + 60 * 86_400);
    // One survey a day for 60 days; the last 20 days' not scored yet, every 5th never sent.
    let surveys: Vec<Value> = (0..60i64)
        .map(|d| {
            let created = at(DAY + d * 86_400);
            let stamp = |t: DateTime<Utc>| format!("{}.000000+00:00", t.format("%Y-%m-%dT%H:%M:%S"));
            let scored = d < 40;
            json!({"id": 7_000 + d, "ticket_id": 98_000 + d, "customer_id": 51_000 + d,
                "score": if scored { json!(1 + d % 5) } else { Value::Null },
                "body_text": if scored { json!("Thanks") } else { Value::Null },
                "created_datetime": stamp(created),
                "sent_datetime": if d % 5 == 4 { Value::Null } else { json!(stamp(created + chrono::Duration::hours(1))) },
                "scored_datetime": if scored { json!(stamp(created + chrono::Duration::days(2))) } else { Value::Null },
                "should_send_datetime": stamp(created + chrono::Duration::hours(1))})
        })
        .collect();
    let list = GorgiasList::new(surveys);
    mount_gorgias(&server, "satisfaction-surveys", &list).await;
    let reader = gorgias(&server);

    // First run: everything. Scored ones respond, sent ones were sent, unsent ones are nothing.
    let pages = read_run(&reader, "satisfaction_surveys", None, now, 100).await;
    assert_eq!(read_count(&pages), 60);
    let all = records(&pages);
    assert_eq!(all.len(), 40 + 16);
    let responded = all
        .iter()
        .filter(|r| r.events[0].kind == EventKind::SurveyResponded)
        .count();
    assert_eq!(responded, 40);
    assert_eq!(
        all.iter()
            .find(|r| r.person.source_id.as_deref() == Some("51000"))
            .expect("survey of day 0")
            .events[0]
            .id,
        format!(
            "gorgias:ticket:98000:satisfaction_survey.responded:{}",
            at(DAY + 2 * 86_400).timestamp()
        )
    );

    // A day later, with the bookmark: only surveys created in the last 14 days are read again.
    let bookmark = last_bookmark(&pages).expect("bookmark");
    let later = now + chrono::Duration::days(1);
    let pages = read_run(&reader, "satisfaction_surveys", Some(&bookmark), later, 10).await;
    let window_start = later - chrono::Duration::days(14);
    let all = records(&pages);
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|r| r.events[0].kind == EventKind::SurveySent)
    );
    let created_days: Vec<i64> = all
        .iter()
        .map(|r| {
            r.person
                .source_id
                .as_deref()
                .expect("id")
                .parse::<i64>()
                .expect("n")
                - 51_000
        })
        .collect();
    assert!(
        created_days
            .iter()
            .all(|d| at(DAY + d * 86_400) >= window_start)
    );
    // Days 47 to 59 are in the window; 49, 54 and 59 were never sent.
    assert_eq!(created_days.len(), 10, "{created_days:?}");
}

#[tokio::test]
async fn the_bucket_alone_keeps_gorgias_from_answering_429() {
    let server = MockServer::start().await;
    // A scaled-down Gorgias: 40 requests per 1 s window, enforced by the mock.
    let mut list = GorgiasList::new(
        (0..3_000)
            .map(|i| gorgias_customer(i, at(DAY + i as i64)))
            .collect(),
    );
    list.limit = 40;
    list.window = Duration::from_secs(1);
    mount_gorgias(&server, "customers", &list).await;
    let reader = gorgias(&server).with_rate(Rate::new(36, Duration::from_secs(1), 4));
    let pages = read_run(&reader, "customers", None, at(DAY + 10_000), 25).await;
    assert_eq!(pages.len(), 120);
    assert_eq!(unique_ids(&pages).len(), 3_000);
    assert_eq!(
        *list.throttled.lock().expect("lock"),
        0,
        "the helpdesk never had to say 429"
    );
}

#[tokio::test]
async fn a_further_gorgias_store_is_read_with_its_own_credentials_under_its_own_name() {
    let server = MockServer::start().await;
    let customer = json!({"id": 70_001, "email": "g70001@example.com", "name": "Customer"});
    let tickets = vec![gorgias_ticket(80_001, customer, "closed", at(DAY + 60))];
    // The store's own credentials: the mock answers only those.
    mount_gorgias(&server, "tickets", &GorgiasList::new(tickets)).await;
    let dir = std::env::temp_dir().join(format!("deskbridge-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("stores.yaml");
    std::fs::write(&file, "connectors:\n  gorgias:eu-store: {}\n").expect("config written");
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        ("GORGIAS_EU_STORE_BASE_URL", server.uri().as_str()),
        ("GORGIAS_EU_STORE_EMAIL", "ops@acme.test"),
        ("GORGIAS_EU_STORE_API_KEY", "gg-key"),
    ]))
    .expect("settings");
    let store: Source = "gorgias:eu-store".parse().expect("an account");
    assert!(
        reader_for(&settings, &Source::Gorgias).is_none(),
        "the first store has no credentials here"
    );
    let reader = reader_for(&settings, &store).expect("the store's reader");
    assert_eq!(reader.source(), store);
    let pages = read_run(reader.as_ref(), "tickets", None, at(DAY + 86_400), 100).await;
    let all = records(&pages);
    assert_eq!(all.len(), 1);
    let closed = &all[0].events[1];
    assert_eq!(closed.kind, EventKind::TicketClosed);
    assert_eq!(
        closed.id,
        SupportEvent::stable_id(
            &store,
            "ticket:80001",
            EventKind::TicketClosed,
            closed.occurred_at
        ),
        "the store's ticket is its own, not the first store's ticket 80001"
    );
    std::fs::remove_file(file).ok();
}

#[tokio::test]
async fn a_further_zendesk_account_is_read_with_its_own_credentials_under_its_own_name() {
    let server = MockServer::start().await;
    let stream = ZendeskStream::default();
    *stream.users.lock().expect("lock") = vec![zendesk_user(1_001, DAY)];
    *stream.items.lock().expect("lock") =
        vec![zendesk_ticket(50_001, Some(1_001), "solved", DAY + 60)];
    let oauth = ZendeskOAuth::default();
    mount_zendesk_oauth(&server, "tickets", &stream, &oauth, Duration::ZERO).await;
    let dir = std::env::temp_dir().join(format!("deskbridge-zd-account-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("accounts.yaml");
    std::fs::write(
        &file,
        "connectors:\n  zendesk:brand2: {}\n  zendesk:brand3: {}\n",
    )
    .expect("config written");
    let uri = server.uri();
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        // The first account and brand3 hold a client this Zendesk does not know.
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
        ("ZENDESK_OAUTH_CLIENT_SECRET", "the-first-accounts-secret"),
        ("ZENDESK_BRAND2_BASE_URL", uri.as_str()),
        ("ZENDESK_BRAND2_OAUTH_CLIENT_ID", "deskbridge"),
        ("ZENDESK_BRAND2_OAUTH_CLIENT_SECRET", "zd-client-secret"),
        ("ZENDESK_BRAND3_SUBDOMAIN", "brand3"),
        ("ZENDESK_BRAND3_BASE_URL", uri.as_str()),
        ("ZENDESK_BRAND3_OAUTH_CLIENT_ID", "deskbridge"),
        ("ZENDESK_BRAND3_OAUTH_CLIENT_SECRET", "not-the-secret"),
    ]))
    .expect("settings");
    let brand2: Source = "zendesk:brand2".parse().expect("an account");
    let brand3: Source = "zendesk:brand3".parse().expect("an account");

    // The first account's client is refused: nothing of brand2's is used for it.
    let first = reader_for(&settings, &Source::Zendesk).expect("the first account's reader");
    let err = first
        .fetch_page(&first_page("tickets"))
        .await
        .expect_err("refused");
    assert!(matches!(err, FetchError::Rejected(_)), "{err:?}");
    assert_eq!(oauth.grants(), 0);

    // brand2 reads with its own client, and its ticket is its own.
    let reader = reader_for(&settings, &brand2).expect("brand2's reader");
    assert_eq!(reader.source(), brand2);
    let pages = read_run(reader.as_ref(), "tickets", None, at(DAY + 86_400), 100).await;
    assert_eq!(oauth.grants(), 1, "brand2's own token");
    let all = records(&pages);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].person.email.as_deref(), Some("user1001@example.com"));
    let closed = &all[0].events[1];
    assert_eq!(closed.kind, EventKind::TicketClosed);
    assert_eq!(
        closed.id,
        SupportEvent::stable_id(
            &brand2,
            "ticket:50001",
            EventKind::TicketClosed,
            closed.occurred_at
        ),
        "brand2's ticket 50001 is not the first account's ticket 50001"
    );

    // A refusal of brand3 names brand3 and its own variables.
    let err = reader_for(&settings, &brand3)
        .expect("brand3's reader")
        .fetch_page(&first_page("tickets"))
        .await
        .expect_err("refused");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(
        msg.starts_with("zendesk:brand3: ")
            && msg.contains("ZENDESK_BRAND3_OAUTH_CLIENT_ID")
            && !msg.contains(" ZENDESK_OAUTH_CLIENT_ID"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_further_intercom_workspace_is_read_with_its_own_token_under_its_own_name() {
    let server = MockServer::start().await;
    let search = IntercomSearch::default();
    *search.items.lock().expect("lock") = vec![
        intercom_contact("c00001", "user", DAY - 5_000),
        intercom_contact("c00003", "lead", DAY - 4_000),
    ];
    // The workspace's own token: the mock answers only that one.
    mount_intercom(&server, "contacts", &search).await;
    let dir = std::env::temp_dir().join(format!("deskbridge-ic-account-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("workspaces.yaml");
    std::fs::write(&file, "connectors:\n  intercom:eu: {}\n  intercom:us: {}\n")
        .expect("config written");
    let uri = server.uri();
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        ("INTERCOM_BASE_URL", uri.as_str()),
        ("INTERCOM_ACCESS_TOKEN", "the-first-workspaces-token"),
        ("INTERCOM_EU_BASE_URL", uri.as_str()),
        ("INTERCOM_EU_ACCESS_TOKEN", "ic-token"),
        ("INTERCOM_US_BASE_URL", uri.as_str()),
        ("INTERCOM_US_ACCESS_TOKEN", "not-this-one"),
    ]))
    .expect("settings");
    let eu: Source = "intercom:eu".parse().expect("an account");
    let us: Source = "intercom:us".parse().expect("an account");

    let first = reader_for(&settings, &Source::Intercom).expect("the first workspace's reader");
    first
        .fetch_page(&first_page("contacts"))
        .await
        .expect_err("the first workspace's token is not this one");

    let reader = reader_for(&settings, &eu).expect("the workspace's reader");
    assert_eq!(reader.source(), eu);
    let pages = read_run(reader.as_ref(), "contacts", None, at(DAY + 86_400), 100).await;
    assert_eq!(unique_ids(&pages).len(), 2);
    let lead = records(&pages)
        .into_iter()
        .find(|r| r.person.source_id.as_deref() == Some("c00003"))
        .expect("the lead");
    assert_eq!(
        lead.events[0].id, "intercom:eu:contact:c00003:customer.created",
        "the workspace's contact is its own"
    );

    // A refusal of another workspace names it and its own variables.
    let err = reader_for(&settings, &us)
        .expect("us's reader")
        .fetch_page(&first_page("contacts"))
        .await
        .expect_err("refused");
    let FetchError::Rejected(msg) = err else {
        panic!("rejected, got {err:?}")
    };
    assert!(
        msg.starts_with("intercom:us: ") && msg.contains("INTERCOM_US_"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).ok();
}
