//! Transient failures are retried for a span of time, not a number of receives: the handler
//! sends a failing message back to its queue with a delay and a retry record, holds batches
//! while Brevo is down, pauses on a refused key, dead-letters only past the horizon (or at once
//! for a request Brevo refuses for good), and never sends an event twice when the state store
//! could not mark it sent.

use deskbridge_shared::testkit::brevo::{answer, fast_client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use deskbridge_shared::clock::ManualClock;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore, NoLookup};
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_shared::queue::{Message, Redelivery, RetryPolicy, RetryRecord};
use deskbridge_shared::state::{Claim, Doc, StateError, StateStore};
use deskbridge_upsert::{Upserter, health::PROBE_INTERVAL};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const QUEUE: &str = "https://sqs.test/upsert";
const DLQ: &str = "https://sqs.test/upsert-dlq";

/// The in-memory state store, whose `complete` can be made to fail.
#[derive(Default)]
struct Store {
    inner: MemoryStateStore,
    refuse_complete: AtomicBool,
}

#[async_trait]
impl StateStore for Store {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StateError> {
        self.inner.claim(key, ttl).await
    }
    async fn complete(&self, key: &str, ttl: Option<Duration>) -> Result<(), StateError> {
        if self.refuse_complete.load(Ordering::SeqCst) {
            return Err(StateError("ThrottlingException (injected)".into()));
        }
        self.inner.complete(key, ttl).await
    }
    async fn release(&self, key: &str) -> Result<(), StateError> {
        self.inner.release(key).await
    }
    async fn is_done(&self, key: &str) -> Result<bool, StateError> {
        self.inner.is_done(key).await
    }
    async fn load_doc(&self, key: &str) -> Result<Option<Doc>, StateError> {
        self.inner.load_doc(key).await
    }
    async fn save_doc(
        &self,
        key: &str,
        rev: Option<u64>,
        text: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        self.inner.save_doc(key, rev, text, ttl).await
    }
}

struct Rig {
    upserter: Upserter<deskbridge_shared::brevo::BrevoClient, Store, NoLookup>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
}

fn rig(server: &MockServer) -> Rig {
    let queue = Arc::new(MemoryQueue::new());
    let clock = Arc::new(ManualClock::new(
        Utc.timestamp_opt(1_800_000_000, 0)
            .single()
            .expect("a time"),
    ));
    let redelivery = Redelivery::new(queue.clone())
        .retrying_on(QUEUE, RetryPolicy::default())
        .dead_letters_to(DLQ)
        .with_clock(clock.clone());
    let upserter = Upserter::new(
        fast_client(server),
        Store::default(),
        NoLookup,
        Mapping::default(),
    )
    .with_redelivery(redelivery);
    Rig {
        upserter,
        queue,
        clock,
    }
}

async fn brevo(server: &MockServer, route: &str, status: u16) {
    server.reset().await;
    answer(server, "POST", route, status).await;
}

fn delivery(id: &str, events: bool) -> Message {
    let at = Utc
        .timestamp_opt(1_799_990_000, 0)
        .single()
        .expect("a time");
    let events = if events {
        vec![SupportEvent {
            id: SupportEvent::stable_id(&Source::Zendesk, "ticket:7", EventKind::TicketCreated, at),
            kind: EventKind::TicketCreated,
            occurred_at: at,
            ticket_id: Some("7".into()),
            channel: Some("email".into()),
            properties: serde_json::Map::new(),
        }]
    } else {
        Vec::new()
    };
    let job = Job {
        id: format!("zendesk:{id}"),
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
            events,
            ..Default::default()
        }],
    };
    Message::new(id, serde_json::to_string(&job).expect("serialises"))
}

/// What the queue holds for `url`, as the next receive would give it (with its record).
fn requeued(queue: &MemoryQueue, url: &str) -> Vec<(Duration, RetryRecord)> {
    queue.sent_later(url)
}

fn count(requests: &[wiremock::Request], route: &str) -> usize {
    requests.iter().filter(|r| r.url.path() == route).count()
}

#[tokio::test]
async fn an_outage_sends_the_message_back_with_a_growing_delay_never_to_the_dead_letter_queue() {
    let server = MockServer::start().await;
    brevo(&server, "/v3/contacts", 503).await;
    let Rig {
        upserter,
        queue,
        clock,
    } = rig(&server);
    let policy = RetryPolicy::default();

    let mut message = delivery("d1", false);
    // Far more attempts than any redrive limit, over 23 hours of outage.
    for attempt in 1..=40u32 {
        let report = upserter.handle(std::slice::from_ref(&message)).await;
        assert!(report.failed.is_empty(), "never left for SQS: {report:?}");
        assert_eq!(report.stats.dead_lettered, 0);
        let (delay, record) = requeued(&queue, QUEUE).pop().expect("sent back");
        assert_eq!(record.attempts, attempt);
        assert!(delay <= policy.max_delay, "{delay:?}");
        assert_eq!(
            record.first_failed_at,
            Utc.timestamp_opt(1_800_000_000, 0)
                .single()
                .expect("a time")
        );
        message = Message {
            retry: Some(record),
            ..message
        };
        clock.advance(Duration::from_secs(35 * 60));
    }
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
    let delays: Vec<Duration> = requeued(&queue, QUEUE).iter().map(|(d, _)| *d).collect();
    assert!(delays[0] <= Duration::from_secs(2), "{delays:?}");
    assert!(delays[39] >= policy.max_delay / 2, "{delays:?}");

    // Past the 24-hour horizon: dead-lettered with the reason, not sent back.
    clock.advance(Duration::from_secs(3600));
    let report = upserter.handle(std::slice::from_ref(&message)).await;
    assert_eq!((report.stats.dead_lettered, report.stats.gave_up), (1, 1));
    let reasons = queue.dead_letter_reasons(DLQ);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("still failing after 41 attempts") && reasons[0].contains("503"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn batches_are_held_untried_between_probes_and_delivery_resumes_with_the_first_answer() {
    let server = MockServer::start().await;
    brevo(&server, "/v3/contacts", 503).await;
    let Rig {
        upserter,
        queue,
        clock,
    } = rig(&server);

    let first = upserter.handle(&[delivery("d1", false)]).await;
    assert_eq!(first.stats.retried_later, 1);
    let tried = server.received_requests().await.unwrap_or_default().len();
    assert!(tried > 0);

    // The gate is open: nothing is tried, every message goes back with its backoff.
    let batch: Vec<Message> = (2..=6).map(|i| delivery(&format!("d{i}"), false)).collect();
    let held = upserter.handle(&batch).await;
    assert_eq!((held.stats.held, held.stats.retried_later), (5, 5));
    assert!(held.failed.is_empty());
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        tried,
        "no Brevo call while held"
    );

    // The probe is one message of the first batch after the interval; Brevo is still down.
    clock.advance(PROBE_INTERVAL);
    let probe = upserter.handle(&batch).await;
    assert_eq!((probe.stats.held, probe.stats.retried_later), (4, 5));
    assert!(server.received_requests().await.unwrap_or_default().len() > tried);

    // Brevo is back; the next probe goes through and closes the gate.
    brevo(&server, "/v3/contacts", 201).await;
    clock.advance(PROBE_INTERVAL);
    let probe = upserter.handle(&batch).await;
    assert_eq!((probe.stats.contacts, probe.stats.held), (1, 4));
    let after = upserter.handle(&batch).await;
    assert_eq!((after.stats.contacts, after.stats.held), (5, 0));
    assert_eq!(requeued(&queue, QUEUE).len(), 1 + 5 + 5 + 4);
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
}

#[tokio::test]
async fn a_refused_key_pauses_delivery_at_the_longest_delay_and_loses_nothing() {
    let server = MockServer::start().await;
    brevo(&server, "/v3/contacts", 401).await;
    let Rig {
        upserter, queue, ..
    } = rig(&server);

    let report = upserter.handle(&[delivery("d1", true)]).await;

    assert_eq!(report.stats.brevo_auth_failures, 1);
    assert_eq!((report.stats.rejected, report.stats.dead_lettered), (0, 0));
    let (delay, record) = requeued(&queue, QUEUE).pop().expect("sent back");
    assert_eq!(record.attempts, 1);
    assert!(
        delay >= RetryPolicy::default().max_delay / 2,
        "paused, not a short backoff: {delay:?}"
    );
    // While paused, the next batch is held with the same long delay.
    let held = upserter.handle(&[delivery("d2", true)]).await;
    assert_eq!(held.stats.held, 1);
    let (delay, _) = requeued(&queue, QUEUE).pop().expect("sent back");
    assert!(delay >= RetryPolicy::default().max_delay / 2, "{delay:?}");
}

#[tokio::test]
async fn a_request_brevo_refuses_for_good_is_dead_lettered_at_once_with_its_reason() {
    let server = MockServer::start().await;
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"code": "invalid_parameter", "message": "Invalid email address"}),
        ))
        .mount(&server)
        .await;
    let Rig {
        upserter, queue, ..
    } = rig(&server);

    let report = upserter.handle(&[delivery("d1", false)]).await;

    assert_eq!((report.stats.dead_lettered, report.stats.gave_up), (1, 0));
    assert!(requeued(&queue, QUEUE).is_empty(), "not retried");
    let reasons = queue.dead_letter_reasons(DLQ);
    assert!(
        reasons.len() == 1 && reasons[0].contains("400"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn an_event_sent_but_not_marked_travels_with_its_message_and_is_never_sent_again() {
    let server = MockServer::start().await;
    server.reset().await;
    for route in ["/v3/contacts", "/v3/events"] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
    }
    let Rig {
        upserter, queue, ..
    } = rig(&server);
    upserter.state.refuse_complete.store(true, Ordering::SeqCst);

    // Brevo took the event, the state store would not mark it: the message is not done.
    let message = delivery("d1", true);
    let first = upserter.handle(std::slice::from_ref(&message)).await;
    assert_eq!(first.stats.events, 1);
    assert!(first.failed.is_empty());
    let (_, record) = requeued(&queue, QUEUE).pop().expect("sent back");
    assert_eq!(record.sent.len(), 1, "{record:?}");

    // Still refused: carried again, not sent again.
    let again = Message {
        retry: Some(record),
        ..message.clone()
    };
    let second = upserter.handle(std::slice::from_ref(&again)).await;
    assert_eq!(second.stats.events, 0);
    let (_, record) = requeued(&queue, QUEUE).pop().expect("sent back");
    assert_eq!(record.sent.len(), 1);

    // The store works again: the event is marked, and the message is done.
    upserter
        .state
        .refuse_complete
        .store(false, Ordering::SeqCst);
    let third = upserter
        .handle(&[Message {
            retry: Some(record),
            ..message.clone()
        }])
        .await;
    assert_eq!(third.stats.events, 0);
    assert_eq!(third.stats.retried_later, 0);
    assert_eq!(requeued(&queue, QUEUE).len(), 2);
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        count(&sent, "/v3/events"),
        1,
        "the event reached Brevo once"
    );

    // A later delivery of the same event finds it done.
    let fourth = upserter.handle(&[delivery("d2", true)]).await;
    assert_eq!(fourth.stats.events_skipped_duplicate, 1);
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(count(&sent, "/v3/events"), 1);
}

/// Brevo answering contacts after `contacts` and events after `events`.
async fn slow_brevo(server: &MockServer, contacts: Duration, events: Duration) {
    server.reset().await;
    for (route, delay) in [("/v3/contacts", contacts), ("/v3/events", events)] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(204).set_delay(delay))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn an_event_send_that_starts_before_the_deadline_is_marked_and_none_starts_too_close_to_it() {
    let server = MockServer::start().await;
    let Rig {
        upserter, queue, ..
    } = rig(&server);
    let upserter = upserter.with_send_reserve(Duration::from_secs(1));
    let message = delivery("d1", true);
    let Some(event_id) = serde_json::from_str::<Job>(&message.body)
        .ok()
        .and_then(|j| j.records.first()?.events.first().map(|e| e.id.clone()))
    else {
        panic!("the delivery carries an event");
    };
    let key = deskbridge_shared::state::event_key(&event_id);

    // The contact is slow to answer: by the time the event could go, fewer than the reserve's
    // 1 s are left before the deadline. The event is not started, its claim is not left behind,
    // and the message comes back later.
    slow_brevo(&server, Duration::from_millis(700), Duration::ZERO).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let report = upserter
        .handle_until(std::slice::from_ref(&message), Some(deadline))
        .await;
    assert_eq!(report.stats.events, 0, "{report:?}");
    assert_eq!(report.stats.retried_later, 1, "{report:?}");
    assert_eq!(requeued(&queue, QUEUE).len(), 1);
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(count(&sent, "/v3/events"), 0);
    assert_eq!(
        upserter.state.claim(&key, Duration::from_secs(60)).await,
        Ok(Claim::New),
        "no claim left pending"
    );
    upserter.state.release(&key).await.expect("release");

    // The event goes at once and Brevo takes 600 ms to answer, past the moment the last send
    // may start: the send that started finishes and is marked before the deadline.
    slow_brevo(&server, Duration::ZERO, Duration::from_millis(600)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let report = upserter
        .handle_until(std::slice::from_ref(&message), Some(deadline))
        .await;
    assert_eq!(report.stats.events, 1, "{report:?}");
    assert_eq!(report.stats.retried_later, 0, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        upserter.state.claim(&key, Duration::from_secs(60)).await,
        Ok(Claim::Done),
        "marked sent"
    );
}
