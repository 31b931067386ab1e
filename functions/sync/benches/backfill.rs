//! Backfill throughput: how close a batch sync gets to each helpdesk's rate limit, and how few
//! Brevo calls it makes per contact. A benchmark that prints figures, not a test.
//!
//! For each source, a wiremock helpdesk serves N records (every one with an email) the way the
//! real API pages, and enforces the vendor's limit the way the vendor does (Zendesk: a sliding
//! window; Intercom: fixed 10-second windows with `X-RateLimit-*` headers; Gorgias: a leaky
//! bucket with `X-Gorgias-Account-Api-Call-Limit`), answering 429 with `Retry-After` beyond it.
//! The run is driven as production drives it: `Syncer::start`, then every sync-queue message in
//! order (the sync Lambda has batch size 1), while an upsert consumer takes the upsert queue in
//! batches like the upsert Lambda's event source (up to 10 messages, gathered for at most the
//! batching window) and hands them to an `Upserter` whose real `BrevoClient` talks to a wiremock
//! Brevo.
//!
//! Real limits would make this take many minutes (Zendesk exports: 10 requests a minute), so the
//! Zendesk and Gorgias windows are divided by [`SCALE`], identically in the reader's `Rate`, in
//! the mock's enforcement and in the Lambda batching window; Intercom runs at its real limit.
//! The ratio achieved/bound does not depend on the scale as long as the per-page work stays well
//! under the scaled request interval.
//!
//! One more line runs Intercom at a small plan's limit (10 requests per 10 s) with the reader
//! left at its default rate, as a new user on that plan would have it: the pace then comes from
//! the `X-RateLimit-*` headers alone.
//!
//! Brevo is set up as a new user's is: no list configured, so the first import creates the
//! default list "deskbridge — <source>".
//!
//! A last line, `peer`, compares deskbridge with a peer connector on the same fake API: Singer's
//! `tap-intercom` (PyPI) reading the same 3,000 Intercom contacts at the same small-plan limit
//! (10 requests per 10 s) from a fresh instance of the same fake, run as a subprocess through
//! `benches/tap_intercom_at.py` (the tap hard-codes `https://api.intercom.io`; the wrapper points
//! its client at the fake and runs the tap's own `main()`). The tap only reads: it writes a
//! Singer stream to stdout, whose `RECORD` messages the bench counts. deskbridge reads and also
//! writes every contact to the Brevo fake. So the ratio deskbridge ÷ tap-intercom compares the
//! tap's time until its last record was printed with deskbridge's time until every contact was
//! in Brevo; deskbridge's read side (until its last page job was handled) is shown next to it.
//! Fixed windows are aligned on the clock and 3,000 contacts take only 20 to 21 requests, so the
//! time depends on where in a window a run starts: each side runs once from each of
//! [`PEER_PHASES`], and the ratio is over the sum. Both sides' 429s and early requests (sent
//! after a 429 before the retry time it announced) are counted by the fake.
//!
//! The tap is looked up at `$DESKBRIDGE_PEER_TAP_INTERCOM` (the `tap-intercom` executable of a
//! virtualenv; the wrapper runs with that virtualenv's `python3`), then in `.venv-peer/bin/` and
//! `.venv/bin/` of the workspace; without it the line says how to install it and is skipped.
//!
//! Run: `cargo bench -p deskbridge-sync --bench backfill`. Arguments after `--` select lines
//! whose label contains one of them, e.g. `-- peer` or `-- intercom`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::gorgias::sync::GorgiasReader;
use deskbridge_shared::helpdesk::intercom::sync::IntercomReader;
use deskbridge_shared::helpdesk::zendesk::sync::ZendeskReader;
use deskbridge_shared::helpdesk::{LookupError, PersonLookup};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore, MemoryStreamStore};
use deskbridge_shared::model::{Person, Source};
use deskbridge_shared::queue::Queue;
use deskbridge_shared::state::budget::StoredBudget;
use deskbridge_shared::state::streams::{StreamId, StreamState, StreamStore};
use deskbridge_shared::sync::{Rate, SourceReader, sync_client};
use deskbridge_sync::Syncer;
use deskbridge_upsert::{Message, Stats, Upserter};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SYNC: &str = "memory://sync";
const UPSERT: &str = "memory://upsert";
/// The id the Brevo fake gives the default list deskbridge creates on first use.
const DEFAULT_LIST: i64 = 91;
/// Zendesk's and Gorgias's windows are divided by this (Intercom's limit is fast enough as is).
const SCALE: u32 = 10;
/// The upsert Lambda's event source (template.yaml): `BatchSize: 10`,
/// `MaximumBatchingWindowInSeconds: 1`.
const LAMBDA_BATCH: usize = 10;
const LAMBDA_WINDOW: Duration = Duration::from_secs(1);
/// Records are dated from here on (2024-06-01), long before the run: a backfill.
const EPOCH: i64 = 1_717_200_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn iso(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .map_or_else(String::new, |t: DateTime<Utc>| {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A `<prefix><offset>` cursor as the offset.
fn offset(cursor: Option<&str>, prefix: char) -> Option<usize> {
    cursor?.strip_prefix(prefix)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The vendors' limits, enforced by the mocks

/// How a mock helpdesk counts requests.
#[derive(Debug, Clone, Copy)]
enum Policy {
    /// At most `limit` requests in any `window` (Zendesk's per-minute limits).
    Sliding { limit: usize, window: Duration },
    /// At most `limit` requests per window of `window` aligned on the unix clock, announced in
    /// `X-RateLimit-Limit`/`-Remaining`/`-Reset` (Intercom).
    Fixed { limit: usize, window: Duration },
    /// A bucket of `capacity` requests draining `capacity` per `window`, announced in
    /// `X-Gorgias-Account-Api-Call-Limit: used/capacity` (Gorgias).
    Leaky { capacity: usize, window: Duration },
}

impl Policy {
    fn describe(&self) -> String {
        match self {
            Policy::Sliding { limit, window } => format!("sliding window {limit} / {window:?}"),
            Policy::Fixed { limit, window } => format!("fixed windows {limit} / {window:?}"),
            Policy::Leaky { capacity, window } => {
                format!("leaky bucket {capacity}, draining {capacity} / {window:?}")
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// Arrival times of the requests answered (not 429).
    accepted: Vec<Instant>,
    throttled: usize,
    /// Fixed windows: the current window's index and its count.
    fixed: (u64, usize),
    /// Fixed windows: requests admitted per window index.
    per_window: BTreeMap<u64, usize>,
    /// Leaky bucket: level and when it was last drained.
    level: f64,
    drained_at: Option<Instant>,
    /// When the last 429 said the client could retry (`Retry-After`, or for fixed windows
    /// `X-RateLimit-Reset`), and the requests that came before that time after it.
    retry_at: Option<SystemTime>,
    early: usize,
}

/// Admits or throttles each request of one helpdesk account.
#[derive(Debug)]
struct Enforcer {
    policy: Policy,
    counters: Mutex<Counters>,
}

/// Response headers.
type Headers = Vec<(&'static str, String)>;

/// Whole seconds for `Retry-After`, at least 1.
fn retry_after(wait: Duration) -> String {
    wait.as_secs_f64().ceil().max(1.0).to_string()
}

/// The wait `Retry-After` announces for `wait`.
fn whole_seconds(wait: Duration) -> Duration {
    Duration::from_secs_f64(wait.as_secs_f64().ceil().max(1.0))
}

impl Enforcer {
    fn new(policy: Policy) -> Arc<Enforcer> {
        Arc::new(Enforcer {
            policy,
            counters: Mutex::default(),
        })
    }

    /// The headers of an admitted request (`Ok`) or of its 429 answer (`Err`).
    fn admit(&self) -> Result<Headers, Headers> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut c = lock(&self.counters);
        if c.retry_at.is_some_and(|at| wall < at) {
            c.early += 1;
        }
        let verdict = match self.policy {
            Policy::Sliding { limit, window } => {
                let recent: Vec<Instant> = c
                    .accepted
                    .iter()
                    .rev()
                    .take_while(|t| now.duration_since(**t) < window)
                    .copied()
                    .collect();
                match recent.last() {
                    Some(oldest) if recent.len() >= limit => {
                        let wait = window - now.duration_since(*oldest);
                        c.retry_at = Some(wall + whole_seconds(wait));
                        Err(vec![("Retry-After", retry_after(wait))])
                    }
                    _ => Ok(Vec::new()),
                }
            }
            Policy::Fixed { limit, window } => {
                let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
                let index = (since_epoch.as_nanos() / window.as_nanos().max(1)) as u64;
                if c.fixed.0 != index {
                    c.fixed = (index, 0);
                }
                let reset = (index + 1) * window.as_secs().max(1);
                let used = c.fixed.1;
                let headers = |remaining: usize| {
                    vec![
                        ("X-RateLimit-Limit", limit.to_string()),
                        ("X-RateLimit-Remaining", remaining.to_string()),
                        ("X-RateLimit-Reset", reset.to_string()),
                    ]
                };
                if used >= limit {
                    c.retry_at = Some(UNIX_EPOCH + Duration::from_secs(reset));
                    Err(headers(0))
                } else {
                    c.fixed.1 += 1;
                    *c.per_window.entry(index).or_default() += 1;
                    Ok(headers(limit - used - 1))
                }
            }
            Policy::Leaky { capacity, window } => {
                let per_second = capacity as f64 / window.as_secs_f64();
                if let Some(at) = c.drained_at {
                    c.level =
                        (c.level - now.duration_since(at).as_secs_f64() * per_second).max(0.0);
                }
                c.drained_at = Some(now);
                let header = |level: f64| {
                    (
                        "X-Gorgias-Account-Api-Call-Limit",
                        format!("{}/{capacity}", level.ceil()),
                    )
                };
                if c.level + 1.0 > capacity as f64 {
                    let wait =
                        Duration::from_secs_f64((c.level + 1.0 - capacity as f64) / per_second);
                    c.retry_at = Some(wall + whole_seconds(wait));
                    Err(vec![("Retry-After", retry_after(wait)), header(c.level)])
                } else {
                    c.level += 1.0;
                    Ok(vec![header(c.level)])
                }
            }
        };
        match verdict {
            Ok(_) => c.accepted.push(now),
            Err(_) => c.throttled += 1,
        }
        verdict
    }

    fn throttled(&self) -> usize {
        lock(&self.counters).throttled
    }

    /// Requests sent after a 429 and before the retry time it announced.
    fn early(&self) -> usize {
        lock(&self.counters).early
    }

    /// Fixed windows: the requests admitted in each window from the first to the last.
    fn windows(&self) -> Vec<usize> {
        let c = lock(&self.counters);
        let (Some(first), Some(last)) = (c.per_window.keys().next(), c.per_window.keys().last())
        else {
            return Vec::new();
        };
        (*first..=*last)
            .map(|w| c.per_window.get(&w).copied().unwrap_or(0))
            .collect()
    }

    fn arrivals(&self) -> Vec<Instant> {
        lock(&self.counters).accepted.clone()
    }

    /// Fixed windows: the requests admitted in each window the run spanned from start to end
    /// (its first and last windows, which it only partly spanned, left out).
    fn full_windows(&self) -> Vec<usize> {
        let c = lock(&self.counters);
        let (Some(first), Some(last)) = (c.per_window.keys().next(), c.per_window.keys().last())
        else {
            return Vec::new();
        };
        (first + 1..*last)
            .map(|w| c.per_window.get(&w).copied().unwrap_or(0))
            .collect()
    }
}

/// `body` with `headers`, as JSON.
fn json_answer(headers: Headers, body: &Value) -> ResponseTemplate {
    with_headers(ResponseTemplate::new(200).set_body_json(body), headers)
}

/// A 429 with `headers`.
fn throttled(headers: Headers) -> ResponseTemplate {
    with_headers(ResponseTemplate::new(429), headers)
}

fn with_headers(mut answer: ResponseTemplate, headers: Headers) -> ResponseTemplate {
    for (k, v) in headers {
        answer = answer.insert_header(k, v);
    }
    answer
}

// ---------------------------------------------------------------------------------------------
// Mock helpdesks: records are generated from their position, oldest change first

fn zendesk_user(i: usize) -> Value {
    let id = 1_000_000 + i;
    let updated = EPOCH + i as i64;
    json!({"id": id, "url": format!("https://acme.zendesk.com/api/v2/users/{id}.json"),
        "name": format!("User {i}"), "email": format!("zd{i}@example.com"),
        "created_at": iso(updated - 86_400), "updated_at": iso(updated),
        "phone": null, "role": "end-user", "active": true, "locale": "en-US",
        "time_zone": "Europe/Paris", "tags": ["bench"], "user_fields": {"plan": "pro"}})
}

fn zendesk_ticket(i: usize) -> Value {
    let id = 500_000 + i;
    let updated = EPOCH + i as i64;
    json!({"id": id, "url": format!("https://acme.zendesk.com/api/v2/tickets/{id}.json"),
        "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": null}},
        "created_at": iso(updated - 3_600), "updated_at": iso(updated),
        "generated_timestamp": updated, "type": null,
        "subject": format!("Order {id}"), "raw_subject": format!("Order {id}"),
        "description": "Where is my parcel?", "priority": "normal", "status": "open",
        "requester_id": 1_000_000 + i, "submitter_id": 1_000_000 + i, "assignee_id": 1,
        "tags": ["vip", "shipping"], "custom_fields": []})
}

/// `GET /api/v2/incremental/{users,tickets}/cursor.json`: cursors `p<offset>`, `start_time=0`
/// starts at the beginning; tickets sideload their requesters with `include=users`.
fn zendesk_export(resource: &'static str, total: usize, request: &Request) -> Value {
    let per_page: usize = query(request, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000);
    let start = offset(query(request, "cursor").as_deref(), 'p').unwrap_or(0);
    let end = (start + per_page).min(total);
    let mut body = json!({
        "after_cursor": format!("p{end}"),
        "after_url": format!("https://acme.zendesk.com/api/v2/incremental/{resource}/cursor.json?cursor=p{end}"),
        "before_cursor": format!("p{start}"), "before_url": null,
        "end_of_stream": end == total,
    });
    if resource == "tickets" {
        body["tickets"] = (start..end).map(zendesk_ticket).collect();
        if query(request, "include").is_some_and(|i| i.contains("users")) {
            body["users"] = (start..end).map(zendesk_user).collect();
        }
    } else {
        body["users"] = (start..end).map(zendesk_user).collect();
    }
    body
}

fn intercom_contact(i: usize) -> Value {
    let id = format!("6650{i:08}");
    let updated = EPOCH + i as i64;
    json!({"type": "contact", "id": id, "workspace_id": "a86dr8yl", "external_id": null,
        "role": "user", "email": format!("ic{i}@example.com"), "phone": null,
        "name": format!("Contact {i}"), "created_at": updated - 1_000, "updated_at": updated,
        "signed_up_at": null, "last_seen_at": null, "unsubscribed_from_emails": false,
        "custom_attributes": {"plan": "pro"}, "location": {"country": "France", "city": "Paris"},
        "tags": {"type": "list", "data": [], "url": format!("/contacts/{id}/tags"),
            "total_count": 0, "has_more": false},
        "notes": {"type": "list", "data": [], "url": format!("/contacts/{id}/notes"),
            "total_count": 0, "has_more": false},
        "companies": {"type": "list", "data": [], "url": format!("/contacts/{id}/companies"),
            "total_count": 0, "has_more": false}})
}

/// `POST /contacts/search`: every contact matches the backfill's watermark (0); cursors
/// `W<offset>`; `pages.next` until the last page.
fn intercom_search(total: usize, request: &Request) -> Option<Value> {
    let body: Value = request.body_json().ok()?;
    let per_page = body["pagination"]["per_page"].as_u64().unwrap_or(50) as usize;
    let start = offset(body["pagination"]["starting_after"].as_str(), 'W').unwrap_or(0);
    let end = (start + per_page).min(total);
    let mut pages = json!({"type": "pages", "page": start / per_page.max(1) + 1,
        "per_page": per_page, "total_pages": total.div_ceil(per_page.max(1))});
    if end < total {
        pages["next"] =
            json!({"page": end / per_page.max(1) + 1, "starting_after": format!("W{end}")});
    }
    Some(
        json!({"type": "list", "data": (start..end).map(intercom_contact).collect::<Vec<_>>(),
        "total_count": total, "pages": pages}),
    )
}

/// Customer `i` of `total`, listed newest first: position 0 is the most recently updated.
fn gorgias_customer(i: usize, total: usize) -> Value {
    let id = 70_000_000 + i;
    let updated = iso(EPOCH + (total - i) as i64);
    let updated = updated.trim_end_matches('Z');
    json!({"id": id, "external_id": null, "active": true, "email": format!("gg{i}@example.com"),
        "name": format!("Customer {i}"), "firstname": "Cus", "lastname": format!("{i}"),
        "language": "fr", "timezone": "Europe/Paris",
        "created_datetime": format!("{updated}.000000+00:00"),
        "updated_datetime": format!("{updated}.123456+00:00"),
        "channels": [{"id": id, "type": "email", "address": format!("gg{i}@example.com"),
            "preferred": true}],
        "data": {"plan": "pro"}, "meta": {}, "note": null})
}

/// `GET /api/customers?order_by=updated_datetime:desc&limit=…&cursor=g<offset>`.
fn gorgias_list(total: usize, request: &Request) -> Value {
    let limit: usize = query(request, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(30);
    let start = offset(query(request, "cursor").as_deref(), 'g').unwrap_or(0);
    let end = (start + limit).min(total);
    let next = (end < total).then(|| format!("g{end}"));
    let prev = (start > 0).then(|| format!("g{}", start.saturating_sub(limit)));
    json!({"object": "list", "uri": request.url.path(),
        "data": (start..end).map(|i| gorgias_customer(i, total)).collect::<Vec<_>>(),
        "meta": {"next_cursor": next, "prev_cursor": prev}})
}

// ---------------------------------------------------------------------------------------------
// Mock Brevo

async fn mount_brevo(server: &MockServer) {
    use deskbridge_shared::testkit::brevo::{
        mount_accepting, mount_attribute_creation, mount_lists,
    };
    // An account with no list yet: the default list is created on the first import.
    mount_lists(server, &[], DEFAULT_LIST).await;
    mount_accepting(
        server,
        &[("FIRSTNAME", "text"), ("LASTNAME", "text"), ("SMS", "text")],
    )
    .await;
    mount_attribute_creation(server).await;
}

/// A helpdesk look-up that finds nobody (every record here has an email anyway).
struct Nobody;

#[async_trait]
impl PersonLookup for Nobody {
    async fn lookup(
        &self,
        _source: &Source,
        _id: &str,
    ) -> Result<Option<(Person, Value)>, LookupError> {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// One backfill

/// One source/stream to backfill.
struct Case {
    label: &'static str,
    source: Source,
    stream: &'static str,
    records: usize,
    /// Records per request at the API's maximum.
    page: usize,
    /// The limit the mock enforces, scaled; the reader paces itself to it too unless
    /// `reader_rate` says otherwise.
    rate: Rate,
    /// The reader's own rate when it differs from the account's limit (a small plan read with
    /// the default preset): the headers then set the pace, and the ratio is measured per window.
    reader_rate: Option<Rate>,
    /// How many times faster than real time the limit runs.
    scale: u32,
    policy: Policy,
    /// The stream was set up before its records happened (an incremental run of a connector
    /// already in use): their timeline events go to Brevo, through `/v3/events/batch`.
    events: bool,
}

/// A preset with its window divided by `scale`.
fn scaled(rate: Rate, scale: u32) -> Rate {
    Rate::new(rate.limit(), rate.window() / scale.max(1), rate.burst())
}

async fn mount_helpdesk(case: &Case, server: &MockServer, enforcer: &Arc<Enforcer>) {
    let total = case.records;
    if matches!(case.source, Source::Intercom) {
        // `GET /tags`, which tap-intercom calls once to check its token; it counts against the
        // limit like any request.
        let enforcer = Arc::clone(enforcer);
        Mock::given(method("GET"))
            .and(path("/tags"))
            .respond_with(move |_: &Request| match enforcer.admit() {
                Ok(headers) => json_answer(headers, &json!({"type": "list", "data": []})),
                Err(headers) => throttled(headers),
            })
            .mount(server)
            .await;
    }
    let enforcer = Arc::clone(enforcer);
    let mock = match case.source {
        Source::Zendesk => {
            let resource = case.stream;
            Mock::given(method("GET"))
                .and(path(format!("/api/v2/incremental/{resource}/cursor.json")))
                .respond_with(move |r: &Request| match enforcer.admit() {
                    Ok(headers) => json_answer(headers, &zendesk_export(resource, total, r)),
                    Err(headers) => throttled(headers),
                })
        }
        Source::Intercom => Mock::given(method("POST"))
            .and(path("/contacts/search"))
            .respond_with(move |r: &Request| match enforcer.admit() {
                Ok(headers) => match intercom_search(total, r) {
                    Some(body) => json_answer(headers, &body),
                    None => ResponseTemplate::new(400),
                },
                Err(headers) => throttled(headers),
            }),
        _ => Mock::given(method("GET"))
            .and(path("/api/customers"))
            .respond_with(move |r: &Request| match enforcer.admit() {
                Ok(headers) => json_answer(headers, &gorgias_list(total, r)),
                Err(headers) => throttled(headers),
            }),
    };
    mock.mount(server).await;
}

fn reader(case: &Case, base: &str) -> Arc<dyn SourceReader> {
    let client = sync_client().expect("HTTP client builds");
    let reader_rate = case.reader_rate.unwrap_or(case.rate);
    match case.source {
        Source::Zendesk => Arc::new(
            ZendeskReader::new(client, base, "ops@acme.test", "zd-token")
                .with_rates(reader_rate, scaled(Rate::zendesk_account(), case.scale)),
        ),
        Source::Intercom => {
            Arc::new(IntercomReader::new(client, base, "ic-token", "2.11").with_rate(reader_rate))
        }
        _ => Arc::new(
            GorgiasReader::new(client, base, "ops@acme.test", "gg-key").with_rate(reader_rate),
        ),
    }
}

/// What the upsert consumer did.
#[derive(Default)]
struct Consumed {
    stats: Stats,
    batches: usize,
    failed: usize,
}

/// The upsert Lambda's event source: waits for a message, gathers up to [`LAMBDA_BATCH`] for at
/// most the (scaled) batching window, hands the batch to the upserter; stops once the sync is
/// `done` and the queue is empty.
async fn consume(
    queue: Arc<Syncer<MemoryStreamStore, MemoryQueue>>,
    upserter: Upserter<BrevoClient, MemoryStateStore, Nobody>,
    done: Arc<AtomicBool>,
    window: Duration,
) -> Consumed {
    let receive = |max: usize| {
        let queue = Arc::clone(&queue);
        async move {
            queue
                .queue
                .receive(UPSERT, i32::try_from(max).unwrap_or(10), 0)
                .await
                .expect("memory queue receives")
        }
    };
    let poll = Duration::from_millis(1);
    let mut out = Consumed::default();
    loop {
        // Read `done` before looking: everything sent before it was set is then visible.
        let finished = done.load(Ordering::Acquire);
        let mut batch = receive(LAMBDA_BATCH).await;
        if batch.is_empty() {
            if finished {
                return out;
            }
            tokio::time::sleep(poll).await;
            continue;
        }
        let window_end = Instant::now() + window;
        while batch.len() < LAMBDA_BATCH && Instant::now() < window_end {
            let more = receive(LAMBDA_BATCH - batch.len()).await;
            if more.is_empty() {
                tokio::time::sleep(poll).await;
            }
            batch.extend(more);
        }
        let messages: Vec<Message> = batch
            .into_iter()
            .enumerate()
            .map(|(i, m)| Message {
                message_id: format!("u{}-{i}", out.batches),
                body: m.body,
                receive_count: 1,
                retry: None,
            })
            .collect();
        let report = upserter.handle(&messages).await;
        out.stats += report.stats;
        out.failed += report.failed.len();
        out.batches += 1;
    }
}

/// A fresh helpdesk fake for `case`, with its enforcer.
async fn helpdesk_fake(case: &Case) -> (MockServer, Arc<Enforcer>) {
    let helpdesk = MockServer::start().await;
    let enforcer = Enforcer::new(case.policy);
    mount_helpdesk(case, &helpdesk, &enforcer).await;
    (helpdesk, enforcer)
}

/// What one backfill did.
struct Run {
    started: Instant,
    /// When the last page job was handled: everything read.
    synced: Instant,
    /// When the last upsert batch was handled: everything in Brevo.
    in_brevo: Instant,
    consumed: Consumed,
    failures: usize,
    enforcer: Arc<Enforcer>,
    /// Brevo requests by `METHOD path`.
    calls: BTreeMap<String, usize>,
    /// Timeline events Brevo received, batched or single.
    events: usize,
}

async fn backfill(case: &Case) {
    let run = run_backfill(case, None).await;
    report(case, &run);
}

/// Runs `case` against fresh fakes, starting at `start_at` if given.
async fn run_backfill(case: &Case, start_at: Option<SystemTime>) -> Run {
    let (helpdesk, enforcer) = helpdesk_fake(case).await;
    let brevo = MockServer::start().await;
    mount_brevo(&brevo).await;

    let streams = MemoryStreamStore::new();
    if case.events {
        // Set up a day before the first record: every record's happenings are new to Brevo.
        let since = Utc.timestamp_opt(EPOCH - 86_400, 0).single();
        let state = StreamState {
            events_since: since,
            ..StreamState::default()
        };
        let id = StreamId::new(case.source.clone(), case.stream);
        streams
            .save(&id, None, &state)
            .await
            .expect("memory stream store saves");
    }
    // As deployed, the reader also draws from the account's shared budget (here in memory, at
    // the reader's rate, so that it never allows more than the reader's own limiter).
    let reader = reader(case, &helpdesk.uri());
    if let Some(limiter) = reader.account_limiter() {
        limiter.attach(Arc::new(StoredBudget::new(
            Arc::new(MemoryStateStore::new()),
            &case.source,
            limiter.rate(),
        )));
    }
    let syncer = Arc::new(Syncer::new(
        vec![reader],
        streams,
        MemoryQueue::new(),
        SYNC.into(),
        UPSERT.into(),
    ));
    // A new user's configuration: the seed mapping, no list configured, the defaults of the
    // settings (default lists on, so the first import creates "deskbridge — <source>").
    let settings = Settings::from_vars(&Vars::from_pairs([("BREVO_API_KEY", "xkeysib-bench")]))
        .expect("default settings");
    let client = BrevoClient::new("xkeysib-bench", &format!("{}/v3", brevo.uri()))
        .expect("Brevo client builds");
    let upserter = Upserter::new(client, MemoryStateStore::new(), Nobody, Mapping::default())
        .with_default_lists(settings.brevo.uses_default_lists());
    let done = Arc::new(AtomicBool::new(false));
    let consumer = tokio::spawn(consume(
        Arc::clone(&syncer),
        upserter,
        Arc::clone(&done),
        LAMBDA_WINDOW / case.scale.max(1),
    ));

    if let Some(at) = start_at {
        wait_until(at).await;
    }
    let started = Instant::now();
    syncer
        .start(Some(&case.source), Some(case.stream), false, Utc::now())
        .await
        .expect("run starts");
    // The sync Lambda: one page job at a time. A failed job goes back on the queue, as SQS
    // would redeliver it.
    let mut failures = 0usize;
    loop {
        let jobs = syncer
            .queue
            .receive(SYNC, 1, 0)
            .await
            .expect("memory queue receives");
        let Some(job) = jobs.into_iter().next() else {
            break;
        };
        if let Err(e) = syncer.handle_body(&job.body, Utc::now()).await {
            failures += 1;
            eprintln!("{}: page job failed ({e}); redelivered", case.label);
            assert!(failures < 20, "{}: too many failed page jobs", case.label);
            syncer
                .queue
                .send(SYNC, &job.body)
                .await
                .expect("memory queue sends");
        }
    }
    let synced = Instant::now();
    done.store(true, Ordering::Release);
    let consumed = consumer.await.expect("upsert consumer finishes");
    let in_brevo = Instant::now();

    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    let mut events = 0;
    for r in brevo.received_requests().await.unwrap_or_default() {
        match r.url.path() {
            "/v3/events" => events += 1,
            "/v3/events/batch" => {
                events += serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|b| b.get("events").and_then(Value::as_array).map(Vec::len))
                    .unwrap_or(0);
            }
            _ => {}
        }
        *calls
            .entry(format!("{} {}", r.method, r.url.path()))
            .or_default() += 1;
    }
    Run {
        started,
        synced,
        in_brevo,
        consumed,
        failures,
        enforcer,
        calls,
        events,
    }
}

/// Prints a backfill's line.
fn report(case: &Case, run: &Run) {
    let Run {
        started,
        synced,
        in_brevo,
        consumed,
        failures,
        enforcer,
        calls,
        events,
    } = run;
    let (started, synced, in_brevo, failures) = (*started, *synced, *in_brevo, *failures);

    // Throughput: the whole run, and sustained once the limiter's free burst is spent (from
    // the arrival of the burst's last request to the end of the run).
    let records = case.records as f64;
    let elapsed = synced.duration_since(started).as_secs_f64();
    let burst = case.rate.burst() as usize;
    let arrivals = enforcer.arrivals();
    let pages = case.records.div_ceil(case.page);
    let sustained = arrivals.get(burst - 1).filter(|_| pages > burst).map(|t| {
        (case.records - burst * case.page) as f64 / synced.duration_since(*t).as_secs_f64()
    });
    let bound = f64::from(case.rate.limit()) / case.rate.window().as_secs_f64() * case.page as f64;
    let full_windows = enforcer.full_windows();
    let per_window = (case.reader_rate.is_some() && !full_windows.is_empty()).then(|| {
        full_windows.iter().sum::<usize>() as f64
            / full_windows.len() as f64
            / f64::from(case.rate.limit())
    });
    let ratio = per_window.unwrap_or_else(|| sustained.unwrap_or(records / elapsed) / bound);

    let total_calls: usize = calls.values().sum();
    let contact_writes = calls.get("POST /v3/contacts/import").copied().unwrap_or(0)
        + calls.get("POST /v3/contacts").copied().unwrap_or(0);
    let breakdown: Vec<String> = calls
        .iter()
        .map(|(call, n)| format!("{n} {call}"))
        .collect();

    println!(
        "backfill {}: {} records in {:.1} s = {:.1} rec/s; sustained after the {}-request burst \
         {}; bound {:.1} rec/s ({} req / {:?} × {}); ratio {:.2}; 429s {}; in Brevo after {:.1} s; \
         Brevo calls {} = {:.2} per 1000 contacts, of which contact writes {:.2} per 1000 ({}; {} \
         upsert batches)",
        case.label,
        case.records,
        elapsed,
        records / elapsed,
        burst,
        sustained.map_or_else(|| "n/a".to_string(), |s| format!("{s:.1} rec/s")),
        bound,
        case.rate.limit(),
        case.rate.window(),
        case.page,
        ratio,
        enforcer.throttled(),
        in_brevo.duration_since(started).as_secs_f64(),
        total_calls,
        total_calls as f64 * 1000.0 / records,
        contact_writes as f64 * 1000.0 / records,
        breakdown.join(", "),
        consumed.batches,
    );
    if case.events {
        let event_calls = calls.get("POST /v3/events/batch").copied().unwrap_or(0)
            + calls.get("POST /v3/events").copied().unwrap_or(0);
        println!(
            "  events {}: {events} timeline events in {event_calls} event calls = {:.2} calls per \
             1000 events",
            case.label,
            event_calls as f64 * 1000.0 / (*events).max(1) as f64,
        );
    }
    let imported = consumed.stats.contacts_imported;
    if imported != case.records || consumed.failed > 0 || failures > 0 {
        println!(
            "  warning: {imported} contacts imported of {}, {} upsert messages failed, {failures} \
             page jobs failed",
            case.records, consumed.failed
        );
    }
    println!(
        "  pages {pages} of {}; mock limit: {}; time scale ×{}",
        case.page,
        case.policy.describe(),
        case.scale
    );
    if let (Some(reader), Some(per_window)) = (case.reader_rate, per_window) {
        println!(
            "  reader at its default {} req / {:?}, paced by the headers; ratio = requests per \
             full window ÷ {}: {:.2} over {} full windows {:?}",
            reader.limit(),
            reader.window(),
            case.rate.limit(),
            per_window,
            full_windows.len(),
            full_windows
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A peer connector on the same fake: Singer's tap-intercom

/// Where in a fixed 10-second window each side of the peer line starts, in seconds.
const PEER_PHASES: [f64; 4] = [0.0, 2.5, 5.0, 7.5];
/// Contacts the peer line reads (20 pages of 150).
const PEER_RECORDS: usize = 3_000;
/// The tap is killed if it has not finished by then.
const PEER_DEADLINE: Duration = Duration::from_secs(300);
const PEER_LABEL: &str = "peer: intercom/contacts vs Singer tap-intercom (small plan)";
const PEER_ENV: &str = "DESKBRIDGE_PEER_TAP_INTERCOM";
const PEER_INSTALL: &str = "python3 -m venv .venv-peer && .venv-peer/bin/pip install -r \
                            scripts/requirements-peer.txt";

/// The next time, at least 100 ms away, that is `phase` into a fixed window of `window`
/// aligned on the unix clock (as the Intercom fake aligns its windows).
fn next_phase(window: Duration, phase: Duration) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let window_ns = window.as_nanos().max(1);
    let start = now.as_nanos() / window_ns * window_ns + phase.as_nanos();
    let soon = now.as_nanos() + Duration::from_millis(100).as_nanos();
    let at = if start >= soon {
        start
    } else {
        start + window_ns
    };
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX))
}

async fn wait_until(at: SystemTime) {
    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait).await;
}

/// An installed tap-intercom: its executable, the Python of its virtualenv and the wrapper that
/// points it at the fake.
#[derive(Clone)]
struct Tap {
    exe: PathBuf,
    python: PathBuf,
    wrapper: PathBuf,
}

fn find_tap() -> Result<Tap, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let exe = match std::env::var_os(PEER_ENV).filter(|v| !v.is_empty()) {
        Some(exe) => {
            let exe = PathBuf::from(exe);
            if !exe.is_file() {
                return Err(format!("{PEER_ENV}={} is not a file", exe.display()));
            }
            exe
        }
        None => [".venv-peer/bin/tap-intercom", ".venv/bin/tap-intercom"]
            .iter()
            .map(|p| root.join(p))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "tap-intercom not installed (${PEER_ENV} unset; none in .venv-peer/bin/ or \
                     .venv/bin/)"
                )
            })?,
    };
    // A virtualenv's console script sits next to its interpreter.
    let python = ["python3", "python"]
        .iter()
        .filter_map(|name| Some(exe.parent()?.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no python3 next to {}", exe.display()))?;
    Ok(Tap {
        exe,
        python,
        wrapper: manifest.join("benches/tap_intercom_at.py"),
    })
}

impl Tap {
    /// The wrapper with `args`, its client pointed at `base`.
    fn command(&self, base: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.python);
        command
            .arg(&self.wrapper)
            .args(args)
            .env("TAP_INTERCOM_BASE_URL", base)
            .stdin(Stdio::null());
        command
    }

    fn version(&self) -> String {
        Command::new(&self.python)
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('tap-intercom'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    }

    /// Writes the tap's config and a catalog with only `contacts` selected into `dir`.
    fn prepare(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // `start_date` is the bookmark of a first run: contacts updated from then on are read
        // (the records here date from 2024-06-01).
        let config = json!({"access_token": "ic-token", "start_date": "2024-01-01T00:00:00Z",
            "user_agent": "deskbridge-bench", "request_timeout": 60});
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
        let config_arg = config_path.to_string_lossy().into_owned();
        let discovered = self
            .command(
                "http://127.0.0.1:9",
                &["--config", &config_arg, "--discover"],
            )
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", self.python.display()))?;
        if !discovered.status.success() {
            return Err(format!("--discover failed ({})", discovered.status));
        }
        let catalog: Value = serde_json::from_slice(&discovered.stdout)
            .map_err(|e| format!("--discover printed no catalog: {e}"))?;
        let mut contacts = catalog["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["tap_stream_id"] == "contacts"))
            .cloned()
            .ok_or("the catalog has no contacts stream")?;
        let Some(metadata) = contacts["metadata"].as_array_mut() else {
            return Err("the contacts stream has no metadata".into());
        };
        for entry in metadata {
            if entry["breadcrumb"].as_array().is_some_and(Vec::is_empty) {
                entry["metadata"]["selected"] = json!(true);
            }
        }
        std::fs::write(
            dir.join("catalog.json"),
            json!({"streams": [contacts]}).to_string(),
        )
        .map_err(|e| e.to_string())
    }

    /// Runs the tap against `base` until it exits (or [`PEER_DEADLINE`]), counting the
    /// `contacts` RECORD messages on its stdout.
    fn sync(&self, dir: &Path, base: &str, expected: usize) -> Result<TapRun, String> {
        let config = dir.join("config.json").to_string_lossy().into_owned();
        let catalog = dir.join("catalog.json").to_string_lossy().into_owned();
        let started = Instant::now();
        let mut child: Child = self
            .command(base, &["--config", &config, "--catalog", &catalog])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let records = std::thread::spawn(move || {
            let mut count = 0usize;
            let mut all_read = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if message["type"] == "RECORD" && message["stream"] == "contacts" {
                    count += 1;
                    if count == expected {
                        all_read = Some(Instant::now());
                    }
                }
            }
            (count, all_read)
        });
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < PEER_DEADLINE => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let exited = Instant::now();
        let (records, all_read) = records.join().map_err(|_| "stdout reader panicked")?;
        let log = log.join().map_err(|_| "stderr reader panicked")?;
        // The tap logs each retry: "Backing off request(...) for 3.0s (…429…)".
        let backoffs = log
            .lines()
            .filter_map(|l| l.split("Backing off request(...) for ").nth(1))
            .filter_map(|rest| rest.split("s ").next()?.parse::<f64>().ok())
            .collect();
        let tail = log.lines().rev().take(15).collect::<Vec<_>>();
        Ok(TapRun {
            all_read: all_read.map(|t| t.duration_since(started)),
            exited: exited.duration_since(started),
            records,
            status,
            backoffs,
            log_tail: tail.into_iter().rev().map(str::to_string).collect(),
        })
    }
}

/// What one tap-intercom run did.
struct TapRun {
    /// Until the last expected record was printed.
    all_read: Option<Duration>,
    exited: Duration,
    records: usize,
    /// `None`: killed at the deadline.
    status: Option<ExitStatus>,
    /// The retry waits the tap logged, in seconds.
    backoffs: Vec<f64>,
    log_tail: Vec<String>,
}

/// Totals of one side of the peer line.
#[derive(Default)]
struct Side {
    records: usize,
    /// Until everything was read (the tap; deskbridge's read side).
    read: f64,
    /// deskbridge: until everything was in Brevo.
    written: f64,
    requests: usize,
    throttled: usize,
    early: usize,
}

impl Side {
    fn add(&mut self, records: usize, read: f64, written: f64, enforcer: &Enforcer) {
        self.records += records;
        self.read += read;
        self.written += written;
        self.requests += enforcer.arrivals().len();
        self.throttled += enforcer.throttled();
        self.early += enforcer.early();
    }
}

fn windows(enforcer: &Enforcer) -> String {
    let w: Vec<String> = enforcer.windows().iter().map(usize::to_string).collect();
    w.join("+")
}

/// The peer line: deskbridge and tap-intercom, each from every start phase.
async fn peer(case: &Case) {
    let tap = match find_tap() {
        Ok(tap) => tap,
        Err(reason) => {
            println!("{PEER_LABEL}: skipped: {reason}; install with `{PEER_INSTALL}`");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("deskbridge-bench-peer-{}", std::process::id()));
    let prepared = {
        let (tap, dir) = (tap.clone(), dir.clone());
        tokio::task::spawn_blocking(move || tap.prepare(&dir).map(|()| tap.version()))
            .await
            .expect("tap set-up finishes")
    };
    let version = match prepared {
        Ok(version) => version,
        Err(reason) => {
            println!(
                "{PEER_LABEL}: skipped: {} does not run ({reason})",
                tap.exe.display()
            );
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let window = match case.policy {
        Policy::Fixed { window, .. } => window,
        _ => Duration::from_secs(10),
    };
    println!(
        "{PEER_LABEL}: {} contacts, {} req / {:?} (fixed windows on the clock), each side from a \
         fresh fake at {} s into a window; tap-intercom {version} at {}",
        case.records,
        case.rate.limit(),
        window,
        PEER_PHASES.map(|p| p.to_string()).join(", "),
        tap.exe.display()
    );
    let (mut ours, mut theirs) = (Side::default(), Side::default());
    let mut incomplete = 0usize;
    for phase in PEER_PHASES {
        let phase_at = Duration::from_secs_f64(phase);
        let run = run_backfill(case, Some(next_phase(window, phase_at))).await;
        let imported = run.consumed.stats.contacts_imported;
        let read = run.synced.duration_since(run.started).as_secs_f64();
        let written = run.in_brevo.duration_since(run.started).as_secs_f64();

        let (fake, enforcer) = helpdesk_fake(case).await;
        wait_until(next_phase(window, phase_at)).await;
        let outcome = {
            let (tap, dir, base, expected) = (tap.clone(), dir.clone(), fake.uri(), case.records);
            tokio::task::spawn_blocking(move || tap.sync(&dir, &base, expected))
                .await
                .expect("tap run finishes")
        };
        let tap_run = match outcome {
            Ok(tap_run) => tap_run,
            Err(reason) => {
                println!("  phase {phase} s: tap-intercom did not run ({reason})");
                incomplete += 1;
                continue;
            }
        };
        let tap_read = tap_run.all_read.map(|d| d.as_secs_f64());
        let backoffs: Vec<String> = tap_run.backoffs.iter().map(|b| format!("{b}")).collect();
        println!(
            "  phase {phase} s: deskbridge read {read:.1} s, in Brevo {written:.1} s ({imported} \
             imported), requests per window {}, 429s {}, early {} | tap-intercom {} records, all \
             read {}, exit {:.1} s ({}), requests per window {}, 429s {}, early {}, backoffs [{}] s",
            windows(&run.enforcer),
            run.enforcer.throttled(),
            run.enforcer.early(),
            tap_run.records,
            tap_read.map_or_else(|| "never".to_string(), |t| format!("{t:.1} s")),
            tap_run.exited.as_secs_f64(),
            tap_run
                .status
                .map_or_else(|| "killed at the deadline".to_string(), |s| s.to_string()),
            windows(&enforcer),
            enforcer.throttled(),
            enforcer.early(),
            backoffs.join(", "),
        );
        let complete = imported == case.records && run.consumed.failed == 0 && run.failures == 0;
        match tap_read.filter(|_| complete) {
            Some(tap_read) => {
                ours.add(case.records, read, written, &run.enforcer);
                theirs.add(case.records, tap_read, tap_read, &enforcer);
            }
            None => {
                incomplete += 1;
                println!("  phase {phase} s left out: a side did not get every record");
                if tap_read.is_none() {
                    for line in &tap_run.log_tail {
                        println!("    tap: {line}");
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if ours.records == 0 {
        println!("  no complete phase: no ratio");
        return;
    }
    let rate = |records: usize, secs: f64| records as f64 / secs.max(f64::EPSILON);
    let (ours_written, ours_read) = (
        rate(ours.records, ours.written),
        rate(ours.records, ours.read),
    );
    let tap_rate = rate(theirs.records, theirs.read);
    println!(
        "  over {} phases: deskbridge {:.1} rec/s into Brevo ({:.1} s per run; read side {:.1} \
         rec/s, {:.1} s), tap-intercom {:.1} rec/s read ({:.1} s per run); ratio deskbridge ÷ \
         tap-intercom {:.2} (read side {:.2}); 429s {} vs {}; early requests {} vs {}; requests \
         {} vs {}{}",
        PEER_PHASES.len() - incomplete,
        ours_written,
        ours.written / (PEER_PHASES.len() - incomplete) as f64,
        ours_read,
        ours.read / (PEER_PHASES.len() - incomplete) as f64,
        tap_rate,
        theirs.read / (PEER_PHASES.len() - incomplete) as f64,
        ours_written / tap_rate,
        ours_read / tap_rate,
        ours.throttled,
        theirs.throttled,
        ours.early,
        theirs.early,
        ours.requests,
        theirs.requests,
        if incomplete > 0 {
            format!(" ({incomplete} phases left out)")
        } else {
            String::new()
        },
    );
    println!(
        "  note: tap-intercom only reads (a Singer stream on stdout, no target), timed from its \
         start until its last contacts RECORD; deskbridge reads AND writes every contact to the \
         Brevo fake, timed from Syncer::start until the last upsert batch (\"read side\": until \
         its last page job). Early = requests sent after a 429 before the X-RateLimit-Reset it \
         announced."
    );
}

/// Intercom at a small plan's limit, the reader left at its default preset.
fn small_plan_case(small_plan: Rate, intercom: Rate) -> Case {
    Case {
        label: "intercom/contacts (small plan)",
        source: Source::Intercom,
        stream: "contacts",
        records: 9_000,
        page: 150,
        rate: small_plan,
        reader_rate: Some(intercom),
        scale: 1,
        policy: Policy::Fixed {
            limit: small_plan.limit() as usize,
            window: small_plan.window(),
        },
        events: false,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let zendesk = scaled(Rate::zendesk_exports(), SCALE);
    let gorgias = scaled(Rate::gorgias(), SCALE);
    let intercom = Rate::intercom();
    // A small Intercom plan: 10 requests per 10-second window (the reader is not told).
    let small_plan = Rate::new(10, Duration::from_secs(10), 10);
    let cases = [
        Case {
            label: "zendesk/tickets",
            source: Source::Zendesk,
            stream: "tickets",
            records: 24_000,
            page: 1000,
            rate: zendesk,
            reader_rate: None,
            scale: SCALE,
            policy: Policy::Sliding {
                limit: zendesk.limit() as usize,
                window: zendesk.window(),
            },
            events: false,
        },
        Case {
            label: "zendesk/users",
            source: Source::Zendesk,
            stream: "users",
            records: 12_000,
            page: 1000,
            rate: zendesk,
            reader_rate: None,
            scale: SCALE,
            policy: Policy::Sliding {
                limit: zendesk.limit() as usize,
                window: zendesk.window(),
            },
            events: false,
        },
        Case {
            label: "intercom/contacts",
            source: Source::Intercom,
            stream: "contacts",
            records: 30_000,
            page: 150,
            rate: intercom,
            reader_rate: None,
            scale: 1,
            policy: Policy::Fixed {
                limit: intercom.limit() as usize,
                window: intercom.window(),
            },
            events: false,
        },
        Case {
            label: "gorgias/customers",
            source: Source::Gorgias,
            stream: "customers",
            records: 20_000,
            page: 100,
            rate: gorgias,
            reader_rate: None,
            scale: SCALE,
            policy: Policy::Leaky {
                capacity: gorgias.limit() as usize,
                window: gorgias.window(),
            },
            events: false,
        },
        small_plan_case(small_plan, intercom),
        // The incremental runs of a connector in use: the same pages, every record new since
        // the stream was set up, so each brings its timeline events.
        Case {
            label: "zendesk/tickets (incremental, events)",
            source: Source::Zendesk,
            stream: "tickets",
            records: 6_000,
            page: 1000,
            rate: zendesk,
            reader_rate: None,
            scale: SCALE,
            policy: Policy::Sliding {
                limit: zendesk.limit() as usize,
                window: zendesk.window(),
            },
            events: true,
        },
        Case {
            label: "intercom/contacts (incremental, events)",
            source: Source::Intercom,
            stream: "contacts",
            records: 6_000,
            page: 150,
            rate: intercom,
            reader_rate: None,
            scale: 1,
            policy: Policy::Fixed {
                limit: intercom.limit() as usize,
                window: intercom.window(),
            },
            events: true,
        },
    ];
    println!(
        "batch sync backfill: Zendesk and Gorgias limits at {SCALE}× speed (windows ÷{SCALE}), \
         Intercom at its real limit; upsert batches of {LAMBDA_BATCH} gathered for at most \
         {LAMBDA_WINDOW:?} ÷ scale"
    );
    // `cargo bench` passes `--bench`; other arguments select lines by label.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected = |label: &str| filters.is_empty() || filters.iter().any(|f| label.contains(f));
    for case in cases.iter().filter(|c| selected(c.label)) {
        backfill(case).await;
    }
    if selected(PEER_LABEL) {
        peer(&Case {
            label: PEER_LABEL,
            records: PEER_RECORDS,
            ..small_plan_case(small_plan, intercom)
        })
        .await;
    }
}
