//! End-to-end latency on the local runner: a signed Intercom webhook posted to `deskbridge serve`
//! (moto for DynamoDB and SQS, a wiremock Brevo) until Brevo receives the contact upsert.
//!
//! `cargo bench --bench e2e_latency` (starts its own moto from `.venv`, like the tests; set
//! `DESKBRIDGE_E2E_DELIVERIES` to change the count, default 200). Deliveries are sent one at a
//! time, each after the previous one reached Brevo, so the figure is the latency of an idle
//! connector, not of a backlog. Prints p50, p95, p99 and max.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskbridge::commands::serve;
use deskbridge_shared::helpdesk::signature;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Records when each contact upsert arrives, by email.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(String, Instant)>>>);

impl Respond for Arrivals {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Ok(body) = request.body_json::<Value>()
            && let Some(email) = body["email"].as_str()
            && let Ok(mut seen) = self.0.lock()
        {
            seen.push((email.to_string(), Instant::now()));
        }
        ResponseTemplate::new(204)
    }
}

impl Arrivals {
    fn when(&self, email: &str) -> Option<Instant> {
        self.0
            .lock()
            .ok()?
            .iter()
            .find(|(e, _)| e == email)
            .map(|(_, t)| *t)
    }
}

fn contact_created(n: usize) -> String {
    json!({
        "type": "notification_event",
        "topic": "contact.user.created",
        "id": format!("notif_e2e_{n}_{}", std::process::id()),
        "app_id": "e2e",
        "created_at": chrono::Utc::now().timestamp(),
        "first_sent_at": chrono::Utc::now().timestamp(),
        "data": {"type": "notification_event_data", "item": {
            "type": "contact", "id": format!("e2e-{n}"), "role": "user",
            "email": format!("bench{n}@example.com"), "name": format!("Bench User{n}"),
            "created_at": chrono::Utc::now().timestamp(),
            "updated_at": chrono::Utc::now().timestamp(),
            "custom_attributes": {}
        }}
    })
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let deliveries: usize = std::env::var("DESKBRIDGE_E2E_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sdk = common::sdk().await;
    let resources = common::bootstrap(&sdk, "e2e").await;
    let brevo = MockServer::start().await;
    let arrivals = Arrivals::default();
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(arrivals.clone())
        .mount(&brevo)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&brevo)
        .await;
    let settings = common::settings(&resources, Some(&brevo.uri()), &[]);
    let secret = settings.intercom.client_secret.clone().unwrap_or_default();

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
    let mut latencies = Vec::with_capacity(deliveries);
    for n in 0..deliveries {
        let body = contact_created(n);
        let email = format!("bench{n}@example.com");
        let started = Instant::now();
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
        assert_eq!(answer.ok(), Some(200), "delivery {n} accepted");
        let arrived =
            common::eventually(Duration::from_secs(30), || async { arrivals.when(&email) })
                .await
                .unwrap_or_else(|| panic!("delivery {n} reached Brevo within 30 s"));
        latencies.push(arrived.saturating_duration_since(started));
    }
    let _ = stop.send(());
    let _ = runner.await;

    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "e2e webhook -> Brevo upsert, {deliveries} deliveries one at a time: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}
