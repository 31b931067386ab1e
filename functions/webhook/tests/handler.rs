//! The webhook handler without AWS: in-memory state and queue, real signatures and parsers.

use chrono::Utc;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::Registry;
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore};
use deskbridge_shared::model::Job;
use deskbridge_webhook::{Reply, Webhook, lambda_handler};
use http::{HeaderMap, HeaderValue, StatusCode};

const INTERCOM_SECRET: &str = "deskbridge-test-intercom-secret";
const CINNOX_TOKEN: &str = "deskbridge-test-cinnox-token";
const QUEUE: &str = "memory://upsert";
/// The README's CINNOX-via-Zapier configuration: `generic:cinnox` with a bearer token.
const CINNOX_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/cinnox-zapier.yaml"
);

fn webhook() -> Webhook<MemoryStateStore, MemoryQueue> {
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("INTERCOM_CLIENT_SECRET", INTERCOM_SECRET),
        ("GORGIAS_WEBHOOK_TOKEN", "deskbridge-test-gorgias-token"),
        (
            "ZENDESK_WEBHOOK_SECRET",
            "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
        ),
        // Fixtures in events/ carry old Zendesk timestamps; accept them here.
        ("DESKBRIDGE_SIGNATURE_TOLERANCE_SECONDS", "3153600000"),
        ("DESKBRIDGE_CONFIG", CINNOX_CONFIG),
        ("CINNOX_WEBHOOK_TOKEN", CINNOX_TOKEN),
    ]))
    .expect("settings");
    Webhook {
        settings,
        helpdesks: Registry::built_in(),
        state: MemoryStateStore::new(),
        queue: MemoryQueue::new(),
        upsert_queue_url: QUEUE.into(),
    }
}

fn contact_created(id: &str) -> String {
    serde_json::json!({
        "type": "notification_event", "id": id, "topic": "contact.user.created",
        "created_at": 1_736_331_127, "app_id": "a86dr8yl",
        "data": {"item": {"type": "contact", "id": "c-1", "role": "user", "email": "New.User@Example.com",
                          "name": "New User", "created_at": 1_736_331_127, "updated_at": 1_736_331_127}}
    })
    .to_string()
}

fn signed(body: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let sig = signature::sign_intercom(INTERCOM_SECRET, body.as_bytes());
    h.insert(
        "x-hub-signature",
        HeaderValue::from_str(&sig).expect("header"),
    );
    h
}

/// A delivery to `generic:cinnox` with the configured token.
async fn post_cinnox(w: &Webhook<MemoryStateStore, MemoryQueue>, body: &str) -> Reply {
    w.handle(
        "generic:cinnox",
        &bearer(CINNOX_TOKEN),
        body.as_bytes(),
        Utc::now(),
        None,
    )
    .await
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

#[tokio::test]
async fn a_generic_delivery_is_queued_once_and_unknown_event_types_are_ignored() {
    let w = webhook();
    let body = serde_json::json!({
        "event": "contact.created", "contact_id": "c-9", "email": "New@Example.com",
        "name": "New Person", "occurred_at": 1_736_331_127
    })
    .to_string();
    let first = post_cinnox(&w, &body).await;
    assert_eq!(
        (first.status, first.body["status"].as_str()),
        (StatusCode::OK, Some("queued")),
        "{}",
        first.body
    );
    let again = post_cinnox(&w, &body).await;
    assert_eq!(again.body["status"], "duplicate");

    // A trigger the configuration does not list (CINNOX's account tags): acknowledged, ignored.
    let tag = r#"{"event": "tag.created", "name": "VIP"}"#;
    let ignored = post_cinnox(&w, tag).await;
    assert_eq!(
        (ignored.status, ignored.body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert_eq!(ignored.body["topic"], "tag.created");

    let queued = w.queue.messages(QUEUE);
    assert_eq!(queued.len(), 1);
    let job: Job = serde_json::from_str(&queued[0]).expect("a Job");
    assert_eq!(job.source.to_string(), "generic:cinnox");
    assert!(job.id.starts_with("generic:cinnox:"), "{}", job.id);
    let record = &job.records[0];
    assert_eq!(record.person.source_id.as_deref(), Some("c-9"));
    assert_eq!(
        record.events[0].id,
        "generic:cinnox:contact:c-9:customer.created"
    );
}

#[tokio::test]
async fn a_valid_delivery_is_queued_as_a_canonical_job_once() {
    let w = webhook();
    let body = contact_created("notif_1");
    let first = w
        .handle(
            "intercom",
            &signed(&body),
            body.as_bytes(),
            Utc::now(),
            None,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["status"], "queued");
    let again = w
        .handle(
            "intercom",
            &signed(&body),
            body.as_bytes(),
            Utc::now(),
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    let queued = w.queue.messages(QUEUE);
    assert_eq!(queued.len(), 1);
    let job: Job = serde_json::from_str(&queued[0]).expect("a Job");
    assert_eq!(job.id, "intercom:notif_1");
    assert_eq!(job.records.len(), 1);
    assert_eq!(job.records[0].person.source_id.as_deref(), Some("c-1"));
}

#[tokio::test]
async fn failures_of_state_or_queue_answer_503_and_a_retry_succeeds() {
    let w = webhook();
    let body = contact_created("notif_2");
    w.state.set_failing(true);
    let r = w
        .handle(
            "intercom",
            &signed(&body),
            body.as_bytes(),
            Utc::now(),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    w.state.set_failing(false);
    w.queue.set_failing(true);
    let r = w
        .handle(
            "intercom",
            &signed(&body),
            body.as_bytes(),
            Utc::now(),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(w.queue.is_empty());
    w.queue.set_failing(false);
    let r = w
        .handle(
            "intercom",
            &signed(&body),
            body.as_bytes(),
            Utc::now(),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("queued"))
    );
    assert_eq!(w.queue.len(), 1);
}

#[tokio::test]
async fn refusals_queue_nothing() {
    let w = webhook();
    let body = contact_created("notif_3");
    let cases = [
        (
            "intercom",
            HeaderMap::new(),
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "intercom",
            signed("{}"),
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "intercom",
            signed("{oops"),
            "{oops".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "nowhere",
            signed(&body),
            body.clone(),
            StatusCode::NOT_FOUND,
        ),
        (
            "generic:freshdesk",
            signed(&body),
            body.clone(),
            StatusCode::NOT_FOUND,
        ),
        (
            "generic:cinnox",
            signed(&body),
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "generic:cinnox",
            bearer("not-the-token"),
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "generic:cinnox",
            bearer(CINNOX_TOKEN),
            "{oops".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "generic:cinnox",
            bearer(CINNOX_TOKEN),
            r#"{"event": "enquiry.new", "name": "Nobody"}"#.to_string(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (source, headers, body, expected) in cases {
        let r = w
            .handle(source, &headers, body.as_bytes(), Utc::now(), None)
            .await;
        assert_eq!(r.status, expected, "{source}: {}", r.body);
    }
    let huge = "x".repeat(deskbridge_webhook::MAX_BODY_BYTES + 1);
    let r = w
        .handle(
            "intercom",
            &signed(&huge),
            huge.as_bytes(),
            Utc::now(),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn the_lambda_adapter_serves_the_api_gateway_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("events/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("webhook-"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let w = webhook();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("fixture");
        let request = lambda_http::request::from_str(&text).expect("an API Gateway v2 request");
        let response = lambda_handler(&w, request).await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK, "{}", file.display());
    }
    assert_eq!(w.queue.len(), files.len(), "each fixture queued one job");
}

#[tokio::test]
async fn every_reply_names_its_outcome_for_the_delivery_metrics() {
    use deskbridge_shared::metrics::Metrics;
    use deskbridge_webhook::{Outcome, Rejection};
    let w = webhook();
    let (metrics, lines) = Metrics::memory("fn-webhook");
    let body = contact_created("notif_m");
    let mut outcomes = Vec::new();
    let mut send = async |source: &str, headers: HeaderMap, body: &[u8]| {
        let reply = w.handle(source, &headers, body, Utc::now(), None).await;
        metrics.emit(&reply.metrics(metrics.document()));
        outcomes.push(reply.outcome);
    };
    send("intercom", signed(&body), body.as_bytes()).await;
    send("intercom", signed(&body), body.as_bytes()).await;
    send("intercom", HeaderMap::new(), body.as_bytes()).await;
    send("intercom", signed("{"), b"{").await;
    send("gorgias", HeaderMap::new(), &vec![b' '; 300 * 1024]).await;
    send("wordpress", HeaderMap::new(), b"{}").await;
    assert_eq!(
        outcomes,
        [
            Outcome::Accepted,
            Outcome::Deduplicated,
            Outcome::Rejected(Rejection::Auth),
            Outcome::Rejected(Rejection::Parse),
            Outcome::Rejected(Rejection::TooLarge),
            Outcome::Rejected(Rejection::UnknownSource),
        ]
    );
    let docs = lines.documents();
    let seen: Vec<(String, String, String)> = docs
        .iter()
        .map(|d| {
            let metric = d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"].to_string();
            let source = d["Source"].as_str().unwrap_or_default().to_string();
            let reason = d["Reason"].as_str().unwrap_or("-").to_string();
            (metric.trim_matches('"').to_string(), source, reason)
        })
        .collect();
    let expect = |m: &str, s: &str, r: &str| (m.to_string(), s.to_string(), r.to_string());
    assert_eq!(
        seen,
        [
            expect("DeliveriesAccepted", "intercom", "-"),
            expect("DeliveriesDeduplicated", "intercom", "-"),
            expect("DeliveriesRejected", "intercom", "auth"),
            expect("DeliveriesRejected", "intercom", "parse"),
            expect("DeliveriesRejected", "gorgias", "too_large"),
            // A name deskbridge does not serve never becomes a dimension value.
            expect("DeliveriesRejected", "unknown", "unknown_source"),
        ]
    );
}
