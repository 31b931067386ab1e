//! Brevo write-back messages in the upsert handler: carried out in the helpdesks (Zendesk and
//! Intercom on wiremock), a helpdesk's `Retry-After` respected, a refusal dead-lettered with its
//! reason, nothing lost when no helpdesk is set up, and contact deletions counted only where
//! the configuration passes them on.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore, NoLookup};
use deskbridge_shared::queue::{Redelivery, RetryPolicy};
use deskbridge_shared::testkit::brevo::fast_client;
use deskbridge_shared::twoway::{Action, HelpdeskWriteBack, WriteBack, WriteBackJob};
use deskbridge_upsert::{Message, Upserter};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const UPSERT: &str = "http://queue.local/deskbridge-upsert";
const DLQ: &str = "http://queue.local/deskbridge-upsert-dlq";

fn message(id: &str, action: Action, email: &str) -> Message {
    let job = WriteBackJob {
        id: format!("brevo:{id}"),
        received_at: Utc::now(),
        correlation_id: None,
        write_backs: vec![WriteBack {
            id: id.into(),
            action,
            event: match action {
                Action::Unsubscribe => "unsubscribed".into(),
                Action::HardBounce => "hard_bounce".into(),
                Action::Forget => "contact_deleted".into(),
            },
            email: email.into(),
            occurred_at: None,
        }],
        tickets: Vec::new(),
    };
    Message {
        message_id: format!("m-{id}"),
        body: job.to_body().expect("a body"),
        receive_count: 1,
        retry: None,
    }
}

/// An upserter whose helpdesks are `helpdesk` (both APIs there), Brevo on `brevo` (never
/// called), with the retry queue and dead-letter queue in `queue`.
fn upserter(
    helpdesk: &MockServer,
    brevo: &MockServer,
    queue: Arc<MemoryQueue>,
) -> Upserter<BrevoClient, MemoryStateStore, NoLookup> {
    configured(helpdesk, brevo, queue, None)
}

/// [`upserter`] with the configuration file `config`, when given.
fn configured(
    helpdesk: &MockServer,
    brevo: &MockServer,
    queue: Arc<MemoryQueue>,
    config: Option<&str>,
) -> Upserter<BrevoClient, MemoryStateStore, NoLookup> {
    let uri = helpdesk.uri();
    let mut pairs = vec![
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_TOKEN", "zd-oauth"),
        ("INTERCOM_BASE_URL", uri.as_str()),
        ("INTERCOM_ACCESS_TOKEN", "ic-token"),
    ];
    if config.is_some() {
        pairs.push(("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"));
    }
    let mut vars = Vars::from_pairs(pairs);
    if let Some(text) = config {
        vars = vars.with_config_text(text);
    }
    let settings = Settings::from_vars(&vars).expect("settings");
    Upserter::new(
        fast_client(brevo),
        MemoryStateStore::new(),
        NoLookup,
        Mapping::default(),
    )
    .with_write_back(Arc::new(HelpdeskWriteBack::new(&settings)))
    .with_redelivery(Redelivery::configured(
        queue,
        Some(UPSERT),
        Some(DLQ),
        RetryPolicy::default(),
    ))
}

#[tokio::test]
async fn a_refused_write_back_is_dead_lettered_with_its_reason() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/users/search.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": [], "count": 0})))
        .mount(&helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "total_count": 1,
            "data": [{"type": "contact", "id": "6329bd9ffe4e", "email": "bob@example.com"}]
        })))
        .mount(&helpdesk)
        .await;
    // The custom attribute does not exist in this workspace.
    Mock::given(method("PUT"))
        .and(path("/contacts/6329bd9ffe4e"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "type": "error.list",
            "errors": [{"code": "parameter_invalid", "message": "Custom attribute 'brevo_hard_bounce' does not exist"}]
        })))
        .mount(&helpdesk)
        .await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter(&helpdesk, &brevo, queue.clone());

    let report = upserter
        .handle(&[message("b-1", Action::HardBounce, "bob@example.com")])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stats.rejected, 1);
    assert_eq!(report.stats.dead_lettered, 1);
    // Zendesk has nobody with that email: counted, not an error.
    assert_eq!(report.stats.write_backs_not_found, 1);
    let reasons = queue.dead_letter_reasons(DLQ);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("intercom refused the write-back of hard_bounce")
            && reasons[0].contains("HTTP 400")
            && !reasons[0].contains("bob@example.com"),
        "{reasons:?}"
    );
    assert!(queue.sent_later(UPSERT).is_empty());
    let brevo_calls = brevo.received_requests().await.unwrap_or_default();
    assert!(brevo_calls.is_empty(), "a write-back never calls Brevo");
}

#[tokio::test]
async fn a_rate_limited_helpdesk_is_asked_again_after_its_retry_after() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/users/search.json"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "40"))
        .mount(&helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "total_count": 0, "data": []
        })))
        .mount(&helpdesk)
        .await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter(&helpdesk, &brevo, queue.clone());

    let report = upserter
        .handle(&[message("u-1", Action::Unsubscribe, "ann@example.com")])
        .await;
    assert_eq!(report.stats.retried_later, 1, "{report:?}");
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
    let later = queue.sent_later(UPSERT);
    assert_eq!(later.len(), 1);
    assert!(
        later[0].0 >= Duration::from_secs(40),
        "not before Zendesk's Retry-After: {:?}",
        later[0].0
    );
}

#[tokio::test]
async fn without_a_helpdesk_to_write_to_the_message_is_done_and_counted() {
    let brevo = MockServer::start().await;
    let upserter = Upserter::new(
        fast_client(&brevo),
        MemoryStateStore::new(),
        NoLookup,
        Mapping::default(),
    );
    let report = upserter
        .handle(&[message("u-2", Action::Unsubscribe, "ann@example.com")])
        .await;
    assert!(report.failed.is_empty());
    assert_eq!(
        (report.stats.write_backs_skipped, report.stats.poison),
        (1, 0)
    );
}

#[tokio::test]
async fn a_contact_deletion_is_counted_where_it_is_passed_on_and_skipped_by_default() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/users/search.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": [
            {"id": 35436, "email": "gone@example.com", "role": "end-user"}
        ], "count": 1})))
        .mount(&helpdesk)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/v2/users/35436.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"user": {
            "id": 35436, "email": "gone@example.com", "active": false, "role": "end-user"
        }})))
        .expect(1)
        .mount(&helpdesk)
        .await;
    let queue = Arc::new(MemoryQueue::new());

    // Default configuration: nothing deletes.
    let report = upserter(&helpdesk, &brevo, queue.clone())
        .handle(&[message("d-1", Action::Forget, "gone@example.com")])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        (
            report.stats.helpdesk_deletions,
            report.stats.write_backs_skipped
        ),
        (0, 1)
    );

    // Zendesk deletes; Intercom is left to its default (ignore).
    let on = "brevo_to_helpdesk:\n  zendesk:\n    on_contact_deleted: delete\n";
    let report = configured(&helpdesk, &brevo, queue.clone(), Some(on))
        .handle(&[message("d-2", Action::Forget, "gone@example.com")])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stats.helpdesk_deletions, 1, "{report:?}");
    assert_eq!(report.stats.write_backs, 0);
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
    let asked = helpdesk.received_requests().await.unwrap_or_default();
    assert!(
        !asked.iter().any(|r| r.url.path().starts_with("/contacts")),
        "Intercom was not asked: {asked:?}"
    );
}
