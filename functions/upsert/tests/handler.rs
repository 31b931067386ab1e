//! The upsert handler against a wiremock Brevo (the real `BrevoClient` pointed at it), the
//! in-memory state store, and a fixed-answer helpdesk look-up.

use deskbridge_shared::testkit::brevo::{answer, bodies, fast_client};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use deskbridge_shared::brevo::{BrevoClient, DryRunBrevo, DryRunOutput};
use deskbridge_shared::helpdesk::{LookupError, PersonLookup};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::MemoryStateStore;
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_upsert::{Message, Upserter};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A helpdesk look-up that always gives the same answer and counts its calls.
struct FixedLookup {
    answer: Result<Option<(Person, Value)>, LookupError>,
    calls: AtomicUsize,
}

impl FixedLookup {
    fn new(answer: Result<Option<(Person, Value)>, LookupError>) -> Self {
        FixedLookup {
            answer,
            calls: AtomicUsize::new(0),
        }
    }
    fn nobody() -> Self {
        FixedLookup::new(Ok(None))
    }
}

#[async_trait]
impl PersonLookup for FixedLookup {
    async fn lookup(
        &self,
        _source: &Source,
        _id: &str,
    ) -> Result<Option<(Person, Value)>, LookupError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

type TestUpserter = Upserter<BrevoClient, MemoryStateStore, FixedLookup>;

fn upserter(server: &MockServer, lookup: FixedLookup) -> TestUpserter {
    let brevo = fast_client(server);
    Upserter::new(brevo, MemoryStateStore::new(), lookup, Mapping::default())
}

fn ticket_created(ticket: &str) -> SupportEvent {
    let at = Utc
        .timestamp_opt(1_736_331_127, 0)
        .single()
        .expect("valid time");
    SupportEvent {
        id: SupportEvent::stable_id(
            &Source::Zendesk,
            &format!("ticket:{ticket}"),
            EventKind::TicketCreated,
            at,
        ),
        kind: EventKind::TicketCreated,
        occurred_at: at,
        ticket_id: Some(ticket.into()),
        channel: Some("email".into()),
        properties: serde_json::Map::new(),
    }
}

fn jane() -> Person {
    Person {
        source_id: Some("901".into()),
        email: Some("Jane@Example.com".into()),
        phone: Some("+1 415 555 2671".into()),
        name: Some("Jane Doe".into()),
        ..Default::default()
    }
}

fn job(records: Vec<Record>) -> Job {
    Job {
        id: "zendesk:delivery-1".into(),
        source: Source::Zendesk,
        origin: Origin::Webhook,
        received_at: Utc::now(),
        correlation_id: Some("corr-1".into()),
        records,
    }
}

fn record(person: Person, events: Vec<SupportEvent>) -> Record {
    Record {
        person,
        observed_at: Utc::now(),
        events,
        ..Default::default()
    }
}

fn message(id: &str, job: &Job) -> Message {
    Message {
        message_id: id.into(),
        body: serde_json::to_string(job).expect("job serialises"),
        receive_count: 1,
        retry: None,
    }
}

#[tokio::test]
async fn a_contact_and_a_ticket_event_become_one_upsert_and_one_event() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    answer(&server, "POST", "/v3/events", 204).await;
    let upserter = upserter(&server, FixedLookup::nobody());

    let report = upserter
        .handle(&[message(
            "m1",
            &job(vec![record(jane(), vec![ticket_created("5158")])]),
        )])
        .await;

    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        (
            report.stats.contacts,
            report.stats.contacts_created,
            report.stats.events
        ),
        (1, 1, 1)
    );
    assert_eq!(
        bodies(&server, "/v3/contacts").await,
        vec![json!({
            "email": "jane@example.com",
            "attributes": {"ZENDESK_ID": "901", "FIRSTNAME": "Jane", "LASTNAME": "Doe", "SMS": "+14155552671",
                // The support aggregates of her ledger: one open ticket by email.
                "TICKET_COUNT": 1, "OPEN_TICKETS": 1, "LAST_SUPPORT_DATE": "2025-01-08",
                "LAST_SUPPORT_CHANNEL": "email", "CSAT_RESPONSES": 0},
            "updateEnabled": true
        })]
    );
    assert_eq!(
        bodies(&server, "/v3/events").await,
        vec![json!({
            "event_name": "SUPPORT_TICKET_OPENED",
            "identifiers": {"email_id": "jane@example.com"},
            "event_date": "2025-01-08T10:12:07Z",
            "event_properties": {"source": "zendesk", "ticket_id": "5158", "channel": "email"}
        })]
    );
    assert_eq!(
        upserter.lookup.calls.load(Ordering::SeqCst),
        0,
        "the delivery had an email: no look-up"
    );
}

#[tokio::test]
async fn a_redelivered_message_sends_its_event_once() {
    let server = MockServer::start().await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    answer(&server, "POST", "/v3/events", 204).await;
    let upserter = upserter(&server, FixedLookup::nobody());
    let the_job = job(vec![record(jane(), vec![ticket_created("5158")])]);

    // Twice in one batch (SQS at-least-once), then again in a later batch.
    let first = upserter
        .handle(&[message("m1", &the_job), message("m1-dup", &the_job)])
        .await;
    let later = upserter.handle(&[message("m2", &the_job)]).await;

    assert!(first.failed.is_empty() && later.failed.is_empty());
    assert_eq!(bodies(&server, "/v3/events").await.len(), 1);
    assert_eq!(
        first.stats.events_skipped_duplicate + later.stats.events_skipped_duplicate,
        2
    );
    // Contact upserts are idempotent and simply repeated.
    assert_eq!(bodies(&server, "/v3/contacts").await.len(), 3);
}

#[tokio::test]
async fn a_brevo_outage_fails_the_message_and_the_redelivery_sends_the_event() {
    let server = MockServer::start().await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    answer(&server, "POST", "/v3/events", 500).await;
    let upserter = upserter(&server, FixedLookup::nobody());
    let msg = message(
        "m1",
        &job(vec![record(jane(), vec![ticket_created("5158")])]),
    );

    let during = upserter.handle(std::slice::from_ref(&msg)).await;
    assert_eq!(during.failed, vec!["m1".to_string()]);
    assert_eq!(during.stats.events, 0);
    assert_eq!(
        bodies(&server, "/v3/events").await.len(),
        4,
        "the client retried before giving up"
    );

    // Brevo recovers; SQS delivers the message again.
    server.reset().await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    answer(&server, "POST", "/v3/events", 204).await;
    let after = upserter
        .handle(&[Message {
            receive_count: 2,
            retry: None,
            ..msg
        }])
        .await;
    assert!(after.failed.is_empty(), "{after:?}");
    assert_eq!(after.stats.events, 1);
    assert_eq!(bodies(&server, "/v3/events").await.len(), 1);
}

#[tokio::test]
async fn an_sms_held_by_another_contact_is_retried_without_sms() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "duplicate_parameter",
            "message": "Unable to create contact, SMS is already associated with another Contact",
            "metadata": {"duplicate_identifiers": ["SMS"]}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    let upserter = upserter(&server, FixedLookup::nobody());

    let report = upserter
        .handle(&[message("m1", &job(vec![record(jane(), vec![])]))])
        .await;

    assert!(report.failed.is_empty());
    assert_eq!(
        (
            report.stats.contacts,
            report.stats.sms_dropped,
            report.stats.rejected
        ),
        (1, 1, 0)
    );
    let sent = bodies(&server, "/v3/contacts").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["attributes"]["SMS"], json!("+14155552671"));
    assert_eq!(sent[1]["attributes"].get("SMS"), None);
    assert_eq!(sent[1]["attributes"]["FIRSTNAME"], json!("Jane"));
    assert!(sent.iter().all(|b| b.get("forceMerge").is_none()));
}

#[tokio::test]
async fn a_body_that_is_not_a_job_is_counted_rejected_and_not_retried() {
    let server = MockServer::start().await;
    let upserter = upserter(&server, FixedLookup::nobody());
    let messages = [
        Message {
            message_id: "bad1".into(),
            body: "this is not json".into(),
            receive_count: 1,
            retry: None,
        },
        Message {
            message_id: "bad2".into(),
            body: r#"{"email":"jane@example.com"}"#.into(),
            receive_count: 4,
            retry: None,
        },
    ];

    let report = upserter.handle(&messages).await;

    assert!(report.failed.is_empty());
    assert_eq!(
        (
            report.stats.rejected,
            report.stats.poison,
            report.stats.messages
        ),
        (2, 2, 2)
    );
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn a_person_known_only_by_id_is_looked_up_and_upserted_by_email() {
    let server = MockServer::start().await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    answer(&server, "POST", "/v3/events", 204).await;
    let found = Person {
        source_id: Some("901".into()),
        email: Some("jane@example.com".into()),
        name: Some("Jane Doe".into()),
        ..Default::default()
    };
    let profile = json!({"id": 901, "email": "jane@example.com", "name": "Jane Doe"});
    let upserter = upserter(&server, FixedLookup::new(Ok(Some((found, profile)))));
    let by_id = Person {
        source_id: Some("901".into()),
        ..Default::default()
    };
    // Two records about the same person: one look-up.
    let the_job = job(vec![
        record(by_id.clone(), vec![ticket_created("1")]),
        record(by_id, vec![]),
    ]);

    let report = upserter.handle(&[message("m1", &the_job)]).await;

    assert!(report.failed.is_empty());
    assert_eq!(
        (report.stats.lookups, report.stats.lookups_unresolved),
        (1, 0)
    );
    assert_eq!(upserter.lookup.calls.load(Ordering::SeqCst), 1);
    let sent = bodies(&server, "/v3/contacts").await;
    assert_eq!(sent[0]["email"], json!("jane@example.com"));
    assert_eq!(sent[0].get("ext_id"), None);
    assert_eq!(sent[0]["attributes"]["FIRSTNAME"], json!("Jane"));
    assert_eq!(
        bodies(&server, "/v3/events").await[0]["identifiers"],
        json!({"email_id": "jane@example.com"})
    );
}

#[tokio::test]
async fn without_a_lookup_result_the_contact_is_addressed_by_ext_id() {
    let server = MockServer::start().await;
    answer(&server, "POST", "/v3/contacts", 201).await;
    answer(&server, "POST", "/v3/events", 204).await;
    let upserter = upserter(&server, FixedLookup::nobody());
    let by_id = Person {
        source_id: Some("901".into()),
        ..Default::default()
    };

    let report = upserter
        .handle(&[message(
            "m1",
            &job(vec![record(by_id, vec![ticket_created("1")])]),
        )])
        .await;

    assert!(report.failed.is_empty());
    assert_eq!(
        (report.stats.lookups, report.stats.lookups_unresolved),
        (1, 1)
    );
    assert_eq!(
        bodies(&server, "/v3/contacts").await,
        vec![
            json!({"ext_id": "zendesk:901", "attributes": {"ZENDESK_ID": "901", "TICKET_COUNT": 1,
                "OPEN_TICKETS": 1, "LAST_SUPPORT_DATE": "2025-01-08", "LAST_SUPPORT_CHANNEL": "email",
                "CSAT_RESPONSES": 0}, "updateEnabled": true})
        ]
    );
    assert_eq!(
        bodies(&server, "/v3/events").await[0]["identifiers"],
        json!({"ext_id": "zendesk:901"})
    );
}

#[tokio::test]
async fn a_helpdesk_outage_during_lookup_fails_the_message() {
    let server = MockServer::start().await;
    let upserter = upserter(
        &server,
        FixedLookup::new(Err(LookupError::Transient("503".into()))),
    );
    let by_id = Person {
        source_id: Some("901".into()),
        ..Default::default()
    };

    let report = upserter
        .handle(&[message("m1", &job(vec![record(by_id, vec![])]))])
        .await;

    assert_eq!(report.failed, vec!["m1".to_string()]);
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn a_rejected_event_is_counted_and_not_retried() {
    let server = MockServer::start().await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": "invalid_parameter", "message": "event_name is invalid"}),
        ))
        .mount(&server)
        .await;
    let upserter = upserter(&server, FixedLookup::nobody());

    let report = upserter
        .handle(&[message(
            "m1",
            &job(vec![record(jane(), vec![ticket_created("1")])]),
        )])
        .await;

    assert!(report.failed.is_empty());
    assert_eq!((report.stats.rejected, report.stats.events), (1, 0));
    assert_eq!(bodies(&server, "/v3/events").await.len(), 1);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_call_budget_fails_the_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(429).insert_header("x-sib-ratelimit-reset", "3600"))
        .mount(&server)
        .await;
    let upserter = upserter(&server, FixedLookup::nobody());

    let started = std::time::Instant::now();
    let report = upserter
        .handle(&[message("m1", &job(vec![record(jane(), vec![])]))])
        .await;

    assert_eq!(report.failed, vec!["m1".to_string()]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not sit out the hour"
    );
    assert_eq!(bodies(&server, "/v3/contacts").await.len(), 1);
}

#[tokio::test]
async fn removed_tags_take_the_contact_off_their_lists() {
    let server = MockServer::start().await;
    answer(&server, "POST", "/v3/contacts", 204).await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/lists/12/contacts/remove"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"contacts": {"success": [], "failure": []}})),
        )
        .mount(&server)
        .await;
    let mut upserter = upserter(&server, FixedLookup::nobody());
    let zendesk = upserter
        .mapping
        .sources
        .get_mut("zendesk")
        .expect("seed mapping");
    zendesk.tag_lists.insert("vip".into(), 12);
    let mut r = record(jane(), vec![]);
    r.tags_removed = vec!["VIP".into()];

    let report = upserter.handle(&[message("m1", &job(vec![r]))]).await;

    assert!(report.failed.is_empty());
    assert_eq!(report.stats.list_removals, 1);
    assert_eq!(
        bodies(&server, "/v3/contacts/lists/12/contacts/remove").await,
        vec![json!({"emails": ["jane@example.com"]})]
    );
}

#[tokio::test]
async fn messages_left_at_the_deadline_are_reported_failed() {
    let server = MockServer::start().await;
    let upserter = upserter(&server, FixedLookup::nobody());
    let the_job = job(vec![record(jane(), vec![])]);

    let report = upserter
        .handle_until(
            &[message("m1", &the_job)],
            Some(tokio::time::Instant::now()),
        )
        .await;

    assert_eq!(report.failed, vec!["m1".to_string()]);
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn in_dry_run_the_requests_are_recorded_not_sent() {
    let upserter = Upserter::new(
        DryRunBrevo::with_output(DryRunOutput::Silent),
        MemoryStateStore::new(),
        FixedLookup::nobody(),
        Mapping::default(),
    );
    let report = upserter
        .handle(&[message(
            "m1",
            &job(vec![record(jane(), vec![ticket_created("1")])]),
        )])
        .await;

    assert!(report.failed.is_empty());
    let lines: Vec<String> = upserter
        .brevo
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(lines, ["POST /v3/contacts", "POST /v3/events"]);
}

#[tokio::test]
async fn a_phone_only_contact_gets_its_events_by_phone() {
    let upserter = Upserter::new(
        DryRunBrevo::with_output(DryRunOutput::Silent),
        MemoryStateStore::new(),
        FixedLookup::nobody(),
        Mapping::default(),
    );
    let phone_only = Person {
        phone: Some("+44 20 7946 0958".into()),
        ..Default::default()
    };
    let report = upserter
        .handle(&[message(
            "m1",
            &job(vec![record(phone_only, vec![ticket_created("1")])]),
        )])
        .await;

    assert!(report.failed.is_empty());
    let requests = upserter.brevo.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0]
            .body
            .as_ref()
            .map(|b| b["attributes"]["SMS"].clone()),
        Some(json!("+442079460958"))
    );
    assert_eq!(
        requests[1].body.as_ref().map(|b| b["identifiers"].clone()),
        Some(json!({"phone_id": "+442079460958"}))
    );
}
