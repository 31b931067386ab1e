//! Messages that fail for good go to the dead-letter queue with their reason; nothing is dropped
//! silently, and a dead-letter queue that cannot be reached makes the message retry.

use deskbridge_shared::testkit::brevo::fast_client;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore, NoLookup};
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_upsert::{Message, Upserter};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DLQ: &str = "http://queue.local/deskbridge-upsert-dlq";

async fn brevo_refusing_events() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": "invalid_parameter", "message": "event_name is not valid"}),
        ))
        .mount(&server)
        .await;
    server
}

fn upserter(
    server: &MockServer,
    dlq: Arc<MemoryQueue>,
) -> Upserter<BrevoClient, MemoryStateStore, NoLookup> {
    let brevo = fast_client(server);
    Upserter::new(brevo, MemoryStateStore::new(), NoLookup, Mapping::default())
        .with_dead_letters(dlq, DLQ)
}

fn webhook_job() -> Job {
    let at = Utc.timestamp_opt(1_736_331_127, 0).single().expect("time");
    Job {
        id: "zendesk:delivery-9".into(),
        source: Source::Zendesk,
        origin: Origin::Webhook,
        received_at: at,
        correlation_id: None,
        records: vec![Record {
            person: Person {
                source_id: Some("901".into()),
                email: Some("jane@example.com".into()),
                ..Default::default()
            },
            observed_at: at,
            events: vec![SupportEvent {
                id: SupportEvent::stable_id(
                    &Source::Zendesk,
                    "ticket:1",
                    EventKind::TicketCreated,
                    at,
                ),
                kind: EventKind::TicketCreated,
                occurred_at: at,
                ticket_id: Some("1".into()),
                channel: None,
                properties: Default::default(),
            }],
            ..Default::default()
        }],
    }
}

fn message(id: &str, body: String) -> Message {
    Message {
        message_id: id.into(),
        body,
        receive_count: 1,
        retry: None,
    }
}

#[tokio::test]
async fn poison_bodies_and_refused_requests_are_dead_lettered_with_their_reason() {
    let server = brevo_refusing_events().await;
    let dlq = Arc::new(MemoryQueue::new());
    let upserter = upserter(&server, dlq.clone());
    let job_body = serde_json::to_string(&webhook_job()).expect("serialises");

    let report = upserter
        .handle(&[
            message("poison", "{\"not\": \"a job\"}".into()),
            message("refused", job_body.clone()),
        ])
        .await;

    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stats.dead_lettered, 2);
    let bodies = dlq.messages(DLQ);
    assert_eq!(bodies.len(), 2);
    assert!(bodies.contains(&job_body), "the message is kept whole");
    let reasons = dlq.dead_letter_reasons(DLQ);
    assert!(
        reasons.iter().any(|r| r.starts_with("not a job:")),
        "{reasons:?}"
    );
    let refused = reasons
        .iter()
        .find(|r| r.contains("SUPPORT_TICKET_OPENED"))
        .expect("the refused event is named");
    assert!(refused.contains("event_name is not valid"), "{refused}");
    assert!(
        !reasons.iter().any(|r| r.contains("jane@example.com")),
        "reasons are masked: {reasons:?}"
    );
}

#[tokio::test]
async fn an_unreachable_dead_letter_queue_makes_the_message_retry() {
    let server = brevo_refusing_events().await;
    let dlq = Arc::new(MemoryQueue::new());
    dlq.set_failing(true);
    let upserter = upserter(&server, dlq.clone());

    let report = upserter.handle(&[message("poison", "[]".into())]).await;

    assert_eq!(report.failed, vec!["poison".to_string()]);
    assert_eq!(report.stats.dead_lettered, 0);
}
