//! The batch sync end to end: the local runner's sync and upsert workers against moto, a
//! wiremock Intercom that pages its contact search like the real API, and a wiremock Brevo.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deskbridge::commands::serve;
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::intercom::fake::ContactSearch;
use deskbridge_shared::infra::Bootstrapped;
use deskbridge_shared::model::Source;
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::state::streams::{RunStatus, StreamId, StreamStore};
use deskbridge_shared::testkit::brevo::accepting;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const PER_PAGE: usize = 150;

fn contact(i: usize, created_at: i64, updated_at: i64) -> Value {
    json!({
        "type": "contact", "id": format!("c{i:05}"), "role": "user",
        "email": format!("User{i}@Example.com"), "name": format!("User {i}"),
        "created_at": created_at, "updated_at": updated_at, "signed_up_at": created_at
    })
}

async fn brevo() -> MockServer {
    let brevo = accepting(&[("FIRSTNAME", "text"), ("LASTNAME", "text"), ("SMS", "text")]).await;
    // Any other write (attributes created before the first import) is accepted too.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&brevo)
        .await;
    brevo
}

/// A local runner on its own runtime, so that it can be stopped cleanly or killed outright.
struct Runner {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Runner {
    fn start(sdk: &aws_config::SdkConfig, settings: Settings) -> Runner {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sdk = sdk.clone();
        let done = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            serve::serve_on(listener, &sdk, settings, async {
                let _ = rx.await;
            })
            .await
        });
        Runner {
            runtime: Some(runtime),
            stop: Some(tx),
            done: Some(done),
        }
    }

    /// Stops the runner like a crash: every task dies where it is.
    fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let (Some(done), Some(rt)) = (self.done.take(), self.runtime.take()) {
            let joined = tokio::time::timeout(Duration::from_secs(20), done).await;
            assert!(
                matches!(joined, Ok(Ok(Ok(())))),
                "runner stopped cleanly: {joined:?}"
            );
            rt.shutdown_background();
        }
    }
}

fn settings(res: &Bootstrapped, brevo: &MockServer, intercom: &MockServer) -> Settings {
    let mut s = common::settings(
        res,
        Some(&brevo.uri()),
        &[
            ("INTERCOM_ACCESS_TOKEN", "test-intercom-token"),
            ("INTERCOM_BASE_URL", &intercom.uri()),
            ("BREVO_REQUESTS_PER_SECOND", "200"),
        ],
    );
    if let Some(m) = s.mapping.sources.get_mut("intercom") {
        m.lists.all_contacts = Some(35);
    }
    s
}

/// Waits until the contacts stream has finished a run that started at or after `after`, and
/// the upsert queue is empty.
async fn wait_idle(
    sdk: &aws_config::SdkConfig,
    res: &Bootstrapped,
    after: chrono::DateTime<chrono::Utc>,
) {
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), res.table.clone());
    let id = StreamId::new(Source::Intercom, "contacts");
    common::eventually(Duration::from_secs(120), || async {
        let st = store.load(&id).await.ok()?.state;
        let finished =
            st.status == RunStatus::Idle && st.last_run_started_at.is_some_and(|t| t >= after);
        (finished
            && queue_depth(sdk, &res.upsert_queue_url).await == 0
            && queue_depth(sdk, &res.backfill_queue_url).await == 0)
            .then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the sync run finished and its records were written; stream state: {:?}",
            futures_state(&store, &id)
        )
    });
}

fn futures_state(store: &DynamoStateStore, id: &StreamId) -> String {
    let handle = tokio::runtime::Handle::current();
    let store = store.clone();
    let id = id.clone();
    std::thread::spawn(move || {
        handle.block_on(async move { format!("{:?}", store.load(&id).await) })
    })
    .join()
    .unwrap_or_default()
}

async fn queue_depth(sdk: &aws_config::SdkConfig, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(&aws_sdk_sqs::Client::new(sdk), url)
        .await
        .expect("queue attributes")
}

/// Emails imported into Brevo, with how often each was imported.
async fn imported(brevo: &MockServer) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in brevo.received_requests().await.unwrap_or_default() {
        if r.url.path() == "/v3/contacts/import" {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            assert_eq!(body["listIds"], json!([35]));
            for c in body["jsonBody"].as_array().cloned().unwrap_or_default() {
                *seen
                    .entry(c["email"].as_str().unwrap_or_default().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    seen
}

/// Timeline events sent to Brevo, by (event name, contact).
async fn events(brevo: &MockServer) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in brevo.received_requests().await.unwrap_or_default() {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let items = match r.url.path() {
            "/v3/events/batch" => body["events"].as_array().cloned().unwrap_or_default(),
            "/v3/events" => vec![body],
            _ => continue,
        };
        for e in items {
            out.push((
                e["event_name"].as_str().unwrap_or_default().to_string(),
                e["identifiers"].to_string(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_lands_every_contact_once_and_the_next_run_moves_only_changes() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "backfill").await;
    deskbridge_shared::telemetry::init(false);
    let brevo = brevo().await;
    let intercom = MockServer::start().await;
    let data = ContactSearch::default();
    // 1,500 contacts from last year; 400 of them share one second across page boundaries.
    let base = 1_700_000_000;
    data.set(
        (0..1_500)
            .map(|i| {
                contact(
                    i,
                    base,
                    if (300..700).contains(&i) {
                        base + 300
                    } else {
                        base + i as i64
                    },
                )
            })
            .collect(),
    );
    data.mount(&intercom).await;
    let runner = Runner::start(&sdk, settings(&res, &brevo, &intercom));

    let first = chrono::Utc::now();
    common::request_intercom_sync(&sdk, &res, false).await;
    wait_idle(&sdk, &res, first).await;
    let seen = imported(&brevo).await;
    assert_eq!(seen.len(), 1_500, "every contact reached Brevo");
    assert!(seen.values().all(|n| *n == 1), "each exactly once");
    assert!(
        seen.keys().all(|e| *e == e.to_lowercase()),
        "emails lower-cased"
    );
    assert!(
        events(&brevo).await.is_empty(),
        "no automations fired for last year's sign-ups"
    );

    // Seven contacts change; the next (incremental) run moves those and no others.
    let now = chrono::Utc::now().timestamp();
    for i in [3, 150, 151, 299, 300, 1_000, 1_499] {
        data.update(i, now);
    }
    runner.stop().await;
    let brevo2 = self::brevo().await;
    let runner = Runner::start(&sdk, settings(&res, &brevo2, &intercom));
    let second = chrono::Utc::now();
    common::request_intercom_sync(&sdk, &res, false).await;
    wait_idle(&sdk, &res, second).await;
    let moved = imported(&brevo2).await;
    let expected: BTreeSet<String> = [3, 150, 151, 299, 300, 1_000, 1_499]
        .iter()
        .map(|i| format!("user{i}@example.com"))
        .collect();
    assert_eq!(
        moved.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "only the changed contacts moved"
    );
    runner.stop().await;
}

async fn interrupted_run(graceful: bool, name: &str) -> Vec<(String, String)> {
    let sdk = common::sdk().await;
    // The queues keep the visibility timeouts bootstrap gives them (6 minutes and more): the
    // messages a stopped runner held come back because the runner hides them only for
    // `queue::HOLD_SECONDS` at a time.
    let res = common::bootstrap(&sdk, name).await;
    let brevo = brevo().await;
    let intercom = MockServer::start().await;
    let data = ContactSearch::default();
    // Contacts created after the stream's first run: each brings a timeline event.
    let future = chrono::Utc::now().timestamp() + 3_600;
    data.set(
        (0..1_200)
            .map(|i| contact(i, future, future + i as i64))
            .collect(),
    );
    data.mount(&intercom).await;

    let runner = Runner::start(&sdk, settings(&res, &brevo, &intercom));
    let started = chrono::Utc::now();
    common::request_intercom_sync(&sdk, &res, false).await;
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), res.table.clone());
    let id = StreamId::new(Source::Intercom, "contacts");
    common::eventually(Duration::from_secs(60), || async {
        let st = store.load(&id).await.ok()?.state;
        (st.run.records_read >= 3 * PER_PAGE as u64).then_some(())
    })
    .await
    .expect("the run got going");
    if graceful {
        runner.stop().await;
    } else {
        runner.kill();
    }

    let runner = Runner::start(&sdk, settings(&res, &brevo, &intercom));
    let restarted = std::time::Instant::now();
    // Within 2 minutes of the restart (`wait_idle`'s limit) the run is complete.
    wait_idle(&sdk, &res, started).await;
    println!(
        "{name}: 1,200 contacts complete {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    let seen = imported(&brevo).await;
    assert_eq!(seen.len(), 1_200, "no contact missing after the restart");
    let sent = events(&brevo).await;
    let unique: BTreeSet<_> = sent.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        1_200,
        "every contact's SUPPORT_CUSTOMER_CREATED reached Brevo"
    );
    assert!(
        sent.iter()
            .all(|(name, _)| name == "SUPPORT_CUSTOMER_CREATED")
    );
    runner.stop().await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_midway_and_started_again_has_no_gaps_and_no_double_events() {
    let sent = interrupted_run(true, "stopped").await;
    assert_eq!(sent.len(), 1_200, "no event twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_batch_loses_nothing() {
    // A kill between Brevo's answer and the record that an event was sent leaves that event
    // ambiguous; it is sent again rather than risk losing it (at least once), so only the
    // absence of gaps is asserted here.
    let sent = interrupted_run(false, "killed").await;
    assert!(sent.len() >= 1_200);
}

#[tokio::test]
async fn a_sync_without_api_credentials_says_why_and_queues_nothing() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "nocreds").await;
    // Webhook secrets only: no helpdesk API credentials.
    let settings = common::settings(&res, None, &[]);
    let request = deskbridge::commands::sync::SyncRequest {
        full: true,
        ..Default::default()
    };
    let err = deskbridge::commands::sync::sync(&sdk, &settings, "intercom", &request, None)
        .await
        .expect_err("nothing to sync");
    let message = err.to_string();
    assert!(
        message.contains("API is off") && message.contains("INTERCOM_ACCESS_TOKEN"),
        "{message}"
    );
    assert_eq!(queue_depth(&sdk, &res.sync_queue_url).await, 0);
}

/// The sync's start reads every stream's state in one `BatchGetItem` (100 keys a call): in the
/// order asked, a never-run stream as the default state, and a stored one with its revision.
#[tokio::test]
async fn stream_states_are_read_together_in_the_order_asked() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "loadmany").await;
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), res.table.clone());
    let ids: Vec<StreamId> = (0..130)
        .map(|i| StreamId::new(Source::Zendesk, format!("stream{i}")))
        .collect();
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let state = deskbridge_shared::state::streams::StreamState {
            cursor: Some(format!("cursor-{i}")),
            ..Default::default()
        };
        store.save(id, None, &state).await.expect("saved");
    }
    let loaded = store.load_many(&ids).await.expect("read");
    assert_eq!(loaded.len(), ids.len());
    for (i, (id, stored)) in ids.iter().zip(&loaded).enumerate() {
        if i % 3 == 0 {
            assert_eq!(stored.rev, Some(1), "{id}");
            assert_eq!(
                stored.state.cursor.as_deref(),
                Some(format!("cursor-{i}").as_str())
            );
        } else {
            assert_eq!(stored.rev, None, "{id}");
            assert_eq!(stored.state.cursor, None, "{id}");
        }
        // The batch read agrees with the single read.
        assert_eq!(*stored, store.load(id).await.expect("read"), "{id}");
    }
}

/// The configuration of examples/generic-pull.yaml with both APIs at `base`, at a rate the
/// test does not wait on, written to a file of its own.
fn pull_config(name: &str, base: &str) -> std::path::PathBuf {
    let text = include_str!("../examples/generic-pull.yaml")
        .replace("https://acme.freshdesk.com", base)
        .replace("https://api.helpscout.net", base)
        .replace(
            "requests: 100, per_seconds: 60",
            "requests: 1000, per_seconds: 1",
        )
        .replace(
            "requests: 200, per_seconds: 60",
            "requests: 1000, per_seconds: 1",
        );
    let dir = std::env::temp_dir().join(format!("deskbridge-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("deskbridge.yaml");
    std::fs::write(&file, text).expect("config written");
    file
}

/// Every email in the contact writes `brevo` received from request `from` on.
async fn written_emails(brevo: &MockServer, from: usize) -> BTreeMap<String, usize> {
    fn collect(v: &Value, out: &mut BTreeMap<String, usize>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("email", Some(email)) => *out.entry(email.to_string()).or_insert(0) += 1,
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for r in brevo
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .skip(from)
    {
        if r.url.path().starts_with("/v3/contacts") && r.method.as_str() != "GET" {
            collect(
                &serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                &mut out,
            );
        }
    }
    out
}

/// Waits until every stream of `streams` finished a run started at or after `after` and the
/// record queues are empty.
async fn wait_streams_idle(
    sdk: &aws_config::SdkConfig,
    res: &Bootstrapped,
    streams: &[StreamId],
    after: chrono::DateTime<chrono::Utc>,
) {
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), res.table.clone());
    let done = common::eventually(Duration::from_secs(120), || async {
        for id in streams {
            let st = store.load(id).await.ok()?.state;
            if st.status != RunStatus::Idle || st.last_run_started_at.is_none_or(|t| t < after) {
                return None;
            }
        }
        (queue_depth(sdk, &res.upsert_queue_url).await == 0
            && queue_depth(sdk, &res.backfill_queue_url).await == 0)
            .then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "the runs of {streams:?} finished and their records were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_pull_sources_are_backfilled_then_synced_incrementally_by_the_sync_function() {
    use deskbridge_shared::testkit::brevo::BrevoModel;
    use deskbridge_shared::testkit::pull::{
        FRESHDESK_CREDENTIALS, Freshdesk, HELPSCOUT_TOKEN, HelpScout, query,
    };
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "pull").await;
    let (model, brevo) = BrevoModel::start().await;
    let api = MockServer::start().await;
    let year_ago = chrono::Utc::now() - chrono::Duration::days(365);
    let fd = Freshdesk::default();
    *fd.contacts.lock().expect("data") = (0..230)
        .map(|i| Freshdesk::contact(i, year_ago + chrono::Duration::seconds(i)))
        .collect();
    *fd.tickets.lock().expect("data") =
        vec![Freshdesk::ticket(800, 1, 4, year_ago, Some(year_ago))];
    fd.mount(&api).await;
    let hs = HelpScout::default();
    *hs.customers.lock().expect("data") = (0..120)
        .map(|i| HelpScout::customer(i, year_ago + chrono::Duration::seconds(i)))
        .collect();
    hs.mount(&api).await;
    let config = pull_config("pull", &api.uri());
    let settings = common::settings(
        &res,
        Some(&brevo.uri()),
        &[
            ("DESKBRIDGE_CONFIG", config.to_str().expect("utf-8 path")),
            ("FRESHDESK_API_CREDENTIALS", FRESHDESK_CREDENTIALS),
            ("HELPSCOUT_TOKEN", HELPSCOUT_TOKEN),
            ("BREVO_REQUESTS_PER_SECOND", "200"),
        ],
    );
    let freshdesk = Source::Generic("freshdesk".into());
    let helpscout = Source::Generic("helpscout".into());
    let streams = [
        StreamId::new(freshdesk.clone(), "contacts"),
        StreamId::new(freshdesk.clone(), "tickets"),
        StreamId::new(helpscout.clone(), "contacts"),
    ];
    let runner = Runner::start(&sdk, settings.clone());

    // The backfill, asked for as a user would (`deskbridge sync generic:<name>`).
    let first = chrono::Utc::now();
    for source in ["generic:freshdesk", "generic:helpscout"] {
        deskbridge::commands::sync::sync(&sdk, &settings, source, &Default::default(), None)
            .await
            .expect("sync requested");
    }
    wait_streams_idle(&sdk, &res, &streams, first).await;
    let contacts = model.contacts();
    let emails: BTreeSet<String> = contacts.iter().filter_map(|c| c.email.clone()).collect();
    assert_eq!(
        emails.len(),
        350,
        "230 Freshdesk contacts and 120 Help Scout customers"
    );
    assert!(emails.contains("client229@example.com") && emails.contains("hs119@example.com"));
    let client7 = contacts
        .iter()
        .find(|c| c.email.as_deref() == Some("client7@example.com"))
        .expect("client 7");
    assert_eq!(client7.attributes.get("FRESHDESK_ID"), Some(&json!("9007")));
    assert_eq!(client7.attributes.get("FIRSTNAME"), Some(&json!("Client")));
    assert!(
        model.contacts().iter().all(|c| c.events.is_empty()),
        "no automations fired for last year's tickets"
    );
    let api_calls = api.received_requests().await.unwrap_or_default().len();
    let brevo_mark = brevo.received_requests().await.unwrap_or_default().len();

    // Changes: one Freshdesk contact, one Help Scout customer, a ticket resolved just now.
    let now = chrono::Utc::now();
    Freshdesk::put(&fd.contacts, Freshdesk::contact(5, now));
    Freshdesk::put(&fd.tickets, Freshdesk::ticket(801, 12, 4, now, Some(now)));
    hs.customers.lock().expect("data")[7] = HelpScout::customer(7, now);
    let second = chrono::Utc::now();
    for source in ["generic:freshdesk", "generic:helpscout"] {
        deskbridge::commands::sync::sync(&sdk, &settings, source, &Default::default(), None)
            .await
            .expect("sync requested");
    }
    wait_streams_idle(&sdk, &res, &streams, second).await;
    let moved: BTreeSet<String> = written_emails(&brevo, brevo_mark)
        .await
        .into_keys()
        .collect();
    let expected: BTreeSet<String> = [
        "client5@example.com",
        "client12@example.com",
        "hs7@example.com",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(
        moved, expected,
        "the incremental runs moved only what changed"
    );
    // Each incremental request asked from the bookmark the backfill left.
    let asked = api.received_requests().await.unwrap_or_default();
    for r in &asked[api_calls..] {
        let filter = match r.url.path() {
            "/api/v2/contacts" => "_updated_since",
            "/api/v2/tickets" => "updated_since",
            _ => "modifiedSince",
        };
        let from = query(r, filter)
            .and_then(|f| chrono::DateTime::parse_from_rfc3339(&f).ok())
            .unwrap_or_else(|| panic!("{} without a time in {filter}", r.url));
        // The backfill's start, less the minute of overlap.
        let window = (first - chrono::Duration::seconds(61))..second;
        assert!(
            window.contains(&from.to_utc()),
            "{} asks from {from}",
            r.url
        );
    }
    let client12 = model
        .contacts()
        .into_iter()
        .find(|c| c.email.as_deref() == Some("client12@example.com"))
        .expect("client 12");
    assert_eq!(
        client12.events,
        ["SUPPORT_TICKET_RESOLVED"],
        "the ticket resolved since the backfill reached the timeline"
    );
    runner.stop().await;
}
