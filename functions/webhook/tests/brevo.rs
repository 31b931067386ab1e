//! `POST /webhooks/brevo` without AWS: in-memory state and queue, Brevo's marketing webhook
//! payloads, the bearer token Brevo is given.

use chrono::Utc;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::Registry;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore};
use deskbridge_shared::metrics::Metrics;
use deskbridge_shared::twoway::{Action, WriteBackJob};
use deskbridge_webhook::{Outcome, Rejection, Reply, Webhook, lambda_handler};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "deskbridge-test-brevo-token";
const KEY_NAME: &str = "deskbridge-production";
const QUEUE: &str = "memory://upsert";

fn webhook_with(pairs: &[(&str, &str)]) -> Webhook<MemoryStateStore, MemoryQueue> {
    let settings = Settings::from_vars(&Vars::from_pairs(pairs.iter().copied())).expect("settings");
    Webhook {
        settings,
        helpdesks: Registry::built_in(),
        state: MemoryStateStore::new(),
        queue: MemoryQueue::new(),
        upsert_queue_url: QUEUE.into(),
    }
}

fn webhook() -> Webhook<MemoryStateStore, MemoryQueue> {
    webhook_with(&[
        ("BREVO_WEBHOOK_TOKEN", TOKEN),
        ("BREVO_API_KEY_NAME", KEY_NAME),
    ])
}

fn authorization(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(value).expect("header"),
    );
    h
}

fn unsubscribed(email: &str, ts: i64) -> Value {
    json!({"id": 1_234_567, "camp_id": 12, "email": email, "campaign name": "December newsletter",
        "date_sent": "2026-12-07 09:00:00", "date_event": "2026-12-07 10:12:07",
        "event": "unsubscribed", "tag": "", "ts_sent": ts - 4327, "ts_event": ts,
        "list_id": [3, 42], "ts": ts})
}

async fn post(
    w: &Webhook<MemoryStateStore, MemoryQueue>,
    headers: &HeaderMap,
    body: &Value,
) -> Reply {
    w.handle(
        "brevo",
        headers,
        body.to_string().as_bytes(),
        Utc::now(),
        Some("req-1".into()),
    )
    .await
}

fn queued_jobs(w: &Webhook<MemoryStateStore, MemoryQueue>) -> Vec<WriteBackJob> {
    w.queue
        .messages(QUEUE)
        .iter()
        .map(|body| WriteBackJob::from_body(body).expect("a write-back job"))
        .collect()
}

#[tokio::test]
async fn an_unsubscribe_is_queued_once_as_a_write_back() {
    let w = webhook();
    let bearer = authorization(&format!("Bearer {TOKEN}"));
    let body = unsubscribed("Jane.Doe@Example.com", 1_796_638_327);
    let first = post(&w, &bearer, &body).await;
    assert_eq!(
        (first.status, first.body["status"].as_str()),
        (StatusCode::OK, Some("queued")),
        "{}",
        first.body
    );
    assert_eq!(first.outcome, Outcome::Accepted);
    assert_eq!(
        first.source.map(|s| s.to_string()).as_deref(),
        Some("brevo")
    );

    // Brevo delivers it again: acknowledged, not queued twice.
    let again = post(&w, &bearer, &body).await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(again.outcome, Outcome::Deduplicated);

    let jobs = queued_jobs(&w);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(first.body["job"], job.id.as_str());
    assert!(job.id.starts_with("brevo:unsubscribed:"), "{}", job.id);
    assert_eq!(job.correlation_id.as_deref(), Some("req-1"));
    let [item] = job.write_backs.as_slice() else {
        panic!("one write-back: {job:?}")
    };
    assert_eq!(item.action, Action::Unsubscribe);
    assert_eq!(item.email, "jane.doe@example.com");
    assert_eq!(item.occurred_at.map(|t| t.timestamp()), Some(1_796_638_327));

    // Another unsubscribe of the same person (a later campaign) is another delivery.
    let later = post(
        &w,
        &bearer,
        &unsubscribed("jane.doe@example.com", 1_796_700_000),
    )
    .await;
    assert_eq!(later.body["status"], "queued");
    assert_eq!(w.queue.len(), 2);
}

#[tokio::test]
async fn forged_or_missing_tokens_are_refused_and_nothing_is_queued() {
    let w = webhook();
    let body = unsubscribed("jane.doe@example.com", 1_796_638_327);
    for headers in [
        HeaderMap::new(),
        authorization("Bearer not-the-token"),
        authorization(&format!("Bearer {TOKEN}x")),
        authorization(&format!("Basic {TOKEN}")),
        authorization(TOKEN),
    ] {
        let r = post(&w, &headers, &body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(r.outcome, Outcome::Rejected(Rejection::Auth));
    }
    assert!(w.queue.is_empty());
    // The scheme is case-insensitive, as for the other bearer tokens.
    let ok = post(&w, &authorization(&format!("bearer {TOKEN}")), &body).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn deskbridges_own_writes_and_events_not_acted_on_are_acknowledged_and_ignored() {
    let w = webhook();
    let bearer = authorization(&format!("Bearer {TOKEN}"));
    let (metrics, lines) = Metrics::memory("fn-webhook");
    let echo = json!({"id": 99, "email": "jane.doe@example.com", "event": "contact_updated",
        "key": "a1b2", "content": [{"FIRSTNAME": "Jane"}], "date": "2026-12-07 11:00:00",
        "ts": 1_796_641_200, "api_key_name": KEY_NAME});
    let r = post(&w, &bearer, &echo).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert_eq!((r.outcome, r.echoes), (Outcome::Ignored, 1));
    metrics.emit(&r.metrics(metrics.document()));
    let doc: Value = serde_json::from_str(&lines.lines()[0]).expect("a metric line");
    assert_eq!(doc["BrevoEchoesIgnored"], 1.0);
    assert_eq!(doc["DeliveriesIgnored"], 1.0);
    assert_eq!(doc["Source"], "brevo");

    // Not an echo, but not acted on in this version: a clear reason, nothing queued.
    for event in [
        "contactUpdated",
        "list_addition",
        "contact_deleted",
        "opened",
    ] {
        let body = json!({"email": "someone@example.com", "event": event, "ts": 1,
            "api_key_name": "zapier"});
        let r = post(&w, &bearer, &body).await;
        assert_eq!(r.body["status"], "ignored", "{event}");
        assert_eq!(r.echoes, 0);
        assert!(
            r.body["ignored"][0]["reason"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{}",
            r.body
        );
    }
    // An unsubscribe deskbridge itself caused is an echo too.
    let mut ours = unsubscribed("jane.doe@example.com", 1_796_638_327);
    ours["api_key_name"] = json!(KEY_NAME);
    assert_eq!(post(&w, &bearer, &ours).await.body["status"], "ignored");
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn an_array_of_events_is_one_job_and_bad_bodies_get_clear_answers() {
    let w = webhook();
    let bearer = authorization(&format!("Bearer {TOKEN}"));
    let batch = json!([
        {"event": "hard_bounce", "email": "a@example.com", "ts_event": 1_796_638_000, "camp_id": 3,
         "reason": "550 mailbox unavailable"},
        {"event": "spam", "email": "b@example.com", "ts_event": 1_796_638_001},
        {"event": "contact_updated", "email": "b@example.com", "api_key_name": KEY_NAME}
    ]);
    let r = post(&w, &bearer, &batch).await;
    assert_eq!(r.body["status"], "queued", "{}", r.body);
    assert_eq!((r.body["write_backs"].as_u64(), r.echoes), (Some(2), 1));
    let jobs = queued_jobs(&w);
    let actions: Vec<(Action, &str)> = jobs[0]
        .write_backs
        .iter()
        .map(|i| (i.action, i.email.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (Action::HardBounce, "a@example.com"),
            (Action::Unsubscribe, "b@example.com")
        ]
    );

    let not_json = w.handle("brevo", &bearer, b"{nope", Utc::now(), None).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    let no_email = post(&w, &bearer, &json!({"event": "unsubscribed"})).await;
    assert_eq!(no_email.status, StatusCode::BAD_REQUEST);
    let big = vec![b' '; 300 * 1024];
    let too_large = w.handle("brevo", &bearer, &big, Utc::now(), None).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(w.queue.len(), 1);
}

#[tokio::test]
async fn without_a_token_the_route_is_not_configured_and_outages_answer_503() {
    let off = webhook_with(&[]);
    let r = post(
        &off,
        &authorization(&format!("Bearer {TOKEN}")),
        &unsubscribed("jane.doe@example.com", 1),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::UnknownSource));

    let w = webhook();
    let bearer = authorization(&format!("Bearer {TOKEN}"));
    let body = unsubscribed("jane.doe@example.com", 1_796_638_327);
    w.state.set_failing(true);
    assert_eq!(
        post(&w, &bearer, &body).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    w.state.set_failing(false);
    w.queue.set_failing(true);
    assert_eq!(
        post(&w, &bearer, &body).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    w.queue.set_failing(false);
    // Brevo's retry goes through: the failed attempt left no claim behind.
    assert_eq!(post(&w, &bearer, &body).await.body["status"], "queued");
    assert_eq!(w.queue.len(), 1);
}

#[tokio::test]
async fn the_api_gateway_sample_is_queued_through_the_lambda_adapter() {
    let text = include_str!("../../../events/brevo-webhook-unsubscribed.json");
    let request = lambda_http::request::from_str(text).expect("an API Gateway v2 request");
    let w = webhook();
    let response = lambda_handler(&w, request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let jobs = queued_jobs(&w);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].write_backs[0].email, "jane.doe@example.com");
}
