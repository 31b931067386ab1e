//! Real time ahead of backfill, measured: webhook → Brevo latency on the local runner while a
//! 20,000-record backfill drains, against the same figure with nothing else to do.
//!
//! `cargo bench --bench lanes` (starts its own moto from `.venv`, like the tests). Settings are
//! a new user's (`BREVO_REQUESTS_PER_SECOND` unset: 10 per second for the runner, split between
//! its two lanes); Brevo answers every call after 50 ms. Three runs, each on fresh resources:
//!
//! - `idle`: 60 Intercom webhooks, one a second, nothing else queued;
//! - `backfill, two lanes`: the same while 20,000 contacts read by the sync (200 pages of 100,
//!   queued as the sync function queues them) drain through the backfill lane;
//! - `backfill, one lane`: the same with `BACKFILL_QUEUE_URL` unset, the backfill in the upsert
//!   queue ahead of the webhooks — how deskbridge behaved before the lanes.
//!
//! Each prints p50, p95 and max of the time from the webhook's answer to Brevo receiving its
//! contact, and how many arrived within the wait (2 minutes after the last webhook).
//! `DESKBRIDGE_LANES_RECORDS` and `DESKBRIDGE_LANES_WEBHOOKS` change the sizes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use deskbridge::commands::serve;
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::model::{Job, Origin, Person, Record, Source};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Brevo after 50 ms: contacts (first arrival noted by email), imports, events, attributes.
#[derive(Clone, Default)]
struct Brevo {
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    backfilled: Arc<Mutex<usize>>,
}

const LATENCY: Duration = Duration::from_millis(50);

impl Respond for Brevo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let ok = |status: u16| ResponseTemplate::new(status).set_delay(LATENCY);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), request.url.path()) {
            ("POST", "/v3/contacts") => {
                if let Some(email) = body["email"].as_str() {
                    if email.starts_with("backfill") {
                        *self.backfilled.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    }
                    self.arrivals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(email.to_string())
                        .or_insert_with(Instant::now);
                }
                ok(204)
            }
            ("POST", "/v3/contacts/import") => {
                let rows = body["jsonBody"].as_array().map(Vec::len).unwrap_or(0);
                *self.backfilled.lock().unwrap_or_else(|e| e.into_inner()) += rows;
                ok(202).set_body_json(json!({"processId": 1}))
            }
            ("GET", "/v3/contacts/attributes") => ok(200).set_body_json(json!({"attributes": [
                {"name": "EMAIL", "category": "normal", "type": "text"},
                {"name": "FIRSTNAME", "category": "normal", "type": "text"},
                {"name": "LASTNAME", "category": "normal", "type": "text"},
            ]})),
            ("POST", p) if p.starts_with("/v3/contacts/attributes/") => ok(201),
            ("POST", "/v3/events" | "/v3/events/batch") => ok(204),
            _ => ok(204),
        }
    }
}

impl Brevo {
    fn arrived(&self, email: &str) -> Option<Instant> {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(email)
            .copied()
    }

    fn backfilled(&self) -> usize {
        *self.backfilled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn webhook(run: &str, n: usize) -> (String, String) {
    let now = Utc::now().timestamp();
    let email = format!("bench-{run}-{n}@example.com");
    let body = json!({
        "type": "notification_event",
        "topic": "contact.user.created",
        "id": format!("notif_lanes_{run}_{n}_{}", std::process::id()),
        "app_id": "lanes",
        "created_at": now,
        "first_sent_at": now,
        "data": {"type": "notification_event_data", "item": {
            "type": "contact", "id": format!("lanes-{run}-{n}"), "role": "user",
            "email": email, "name": format!("Bench User{n}"),
            "created_at": now, "updated_at": now, "custom_attributes": {}
        }}
    })
    .to_string();
    (email, body)
}

/// One page of the Intercom contacts stream as the sync function queues it.
fn page(run: &str, page: usize, size: usize) -> String {
    let now = Utc::now();
    let records = (0..size)
        .map(|i| {
            let n = page * size + i;
            let email = format!("backfill-{run}-{n}@example.com");
            Record {
                person: Person {
                    source_id: Some(format!("bf-{n}")),
                    email: Some(email.clone()),
                    name: Some(format!("Backfill Customer{n}")),
                    ..Person::default()
                },
                observed_at: now,
                profile: Some(
                    json!({
                        "type": "contact", "id": format!("bf-{n}"), "role": "user",
                        "email": email, "name": format!("Backfill Customer{n}"),
                    })
                    .into(),
                ),
                ..Record::default()
            }
        })
        .collect();
    let job = Job {
        id: format!("intercom:contacts:{run}:{page}"),
        source: Source::Intercom,
        origin: Origin::Sync,
        received_at: now,
        correlation_id: None,
        records,
    };
    serde_json::to_string(&job).unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn run(name: &str, label: &str, records: usize, webhooks: usize, lanes: bool) {
    let sdk = common::sdk().await;
    let resources = common::bootstrap(&sdk, name).await;
    let server = MockServer::start().await;
    let brevo = Brevo::default();
    Mock::given(any())
        .respond_with(brevo.clone())
        .mount(&server)
        .await;
    let mut settings = common::settings(&resources, Some(&server.uri()), &[]);
    if !lanes {
        settings.backfill_queue_url = None;
    }
    let secret = settings.intercom.client_secret.clone().unwrap_or_default();

    // The backfill, queued before the first webhook, where the sync function would put it.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let lane = settings
        .backfill_queue_url
        .clone()
        .unwrap_or_else(|| resources.upsert_queue_url.clone());
    const PAGE: usize = 100;
    for p in 0..records.div_ceil(PAGE) {
        sqs.send_message()
            .queue_url(&lane)
            .message_body(page(name, p, PAGE.min(records - p * PAGE)))
            .send()
            .await
            .expect("queue a backfill page");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let runner_sdk = sdk.clone();
    let runner = tokio::spawn(async move {
        serve::serve_on(listener, &runner_sdk, settings, async {
            let _ = stopped.await;
        })
        .await
    });

    let client = reqwest::Client::new();
    let mut sent = Vec::with_capacity(webhooks);
    for n in 0..webhooks {
        let (email, body) = webhook(name, n);
        let answer = client
            .post(format!("{base}/webhooks/intercom"))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature",
                signature::sign_intercom(&secret, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(answer.ok(), Some(200), "webhook {n} accepted");
        sent.push((email, Instant::now()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let wait = Duration::from_secs(120);
    let _ = common::eventually(wait, || async {
        sent.iter()
            .all(|(email, _)| brevo.arrived(email).is_some())
            .then_some(())
    })
    .await;
    let backfilled = brevo.backfilled();
    let _ = stop.send(());
    let _ = runner.await;

    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(email, at)| Some(brevo.arrived(email)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "lanes: {label}: {} of {webhooks} webhooks reached Brevo within {} s of the last; \
         p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; {backfilled} of {records} backfill contacts written meanwhile",
        latencies.len(),
        wait.as_secs(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let records = env("DESKBRIDGE_LANES_RECORDS", 20_000);
    let webhooks = env("DESKBRIDGE_LANES_WEBHOOKS", 60);
    run("lanes-idle", "idle", 0, webhooks, true).await;
    run("lanes-two", "backfill, two lanes", records, webhooks, true).await;
    run("lanes-one", "backfill, one lane", records, webhooks, false).await;
}
