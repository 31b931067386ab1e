//! A sync page is not looked up again: the upsert's helpdesk look-ups (the real
//! `HelpdeskLookup` against a wiremock Intercom) are made only for people the page named by id
//! and the person index does not know yet. Brevo is the testkit's accepting fake. A look-up the
//! helpdesk rate limits delays its message past `Retry-After`, and nothing is sent sooner.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::HelpdeskLookup;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore};
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_shared::queue::{Redelivery, RetryPolicy};
use deskbridge_shared::testkit::brevo::{fast_client, mount_accepting, requests_to};
use deskbridge_shared::testkit::calls;
use deskbridge_upsert::{Message, Upserter};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INTERCOM_CONTACT: &str =
    include_str!("../../../shared/tests/fixtures/intercom/api-contact.json");

type TestUpserter =
    Upserter<deskbridge_shared::brevo::BrevoClient, Arc<MemoryStateStore>, HelpdeskLookup>;

/// Intercom answering `GET /contacts/{id}` with the documented contact (the fixture, its id
/// replaced) and `GET /companies/{id}` with a company; every call is recorded by the server.
async fn intercom() -> MockServer {
    let server = MockServer::start().await;
    let contact: Value = serde_json::from_str(INTERCOM_CONTACT).expect("fixture is JSON");
    Mock::given(method("GET"))
        .and(path_regex("^/contacts/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/companies/[^/]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "company", "id": "co1", "name": "Acme"})),
        )
        .mount(&server)
        .await;
    server
}

fn upserter(
    brevo: &MockServer,
    intercom: &MockServer,
    state: Arc<MemoryStateStore>,
) -> TestUpserter {
    let uri = intercom.uri();
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("INTERCOM_BASE_URL", uri.as_str()),
        ("INTERCOM_ACCESS_TOKEN", "ic-token"),
    ]))
    .expect("settings");
    let lookup = HelpdeskLookup::with_cache(&settings, std::time::Duration::ZERO, 0);
    Upserter::new(fast_client(brevo), state, lookup, Mapping::default())
}

fn at() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_736_331_127, 0)
        .single()
        .expect("valid time")
}

/// A contact as an Intercom contacts page holds it: the whole object, with a company named
/// by reference only.
fn contact(id: &str, email: Option<&str>) -> Record {
    let profile = json!({
        "type": "contact", "id": id, "role": if email.is_some() { "user" } else { "lead" },
        "email": email, "name": format!("Person {id}"),
        "companies": {"type": "list", "data": [{"type": "company", "id": "co1"}]},
        "updated_at": 1_736_331_127
    });
    Record {
        person: Person {
            source_id: Some(id.into()),
            email: email.map(str::to_string),
            name: Some(format!("Person {id}")),
            ..Default::default()
        },
        observed_at: at(),
        profile: Some(profile.into()),
        ..Default::default()
    }
}

/// A conversation opened by contact `id`, which the conversations page names only by id.
fn conversation(n: u32, id: &str) -> Record {
    Record {
        person: Person {
            source_id: Some(id.into()),
            ..Default::default()
        },
        observed_at: at(),
        events: vec![SupportEvent {
            id: SupportEvent::stable_id(
                &Source::Intercom,
                &format!("conversation:{n}"),
                EventKind::TicketCreated,
                at(),
            ),
            kind: EventKind::TicketCreated,
            occurred_at: at(),
            ticket_id: Some(n.to_string()),
            channel: Some("chat".into()),
            properties: serde_json::Map::new(),
        }],
        ..Default::default()
    }
}

fn page(id: &str, records: Vec<Record>) -> Message {
    let job = Job {
        id: id.into(),
        source: Source::Intercom,
        origin: Origin::Sync,
        received_at: at(),
        correlation_id: None,
        records,
    };
    Message::new(id, serde_json::to_string(&job).expect("job serialises"))
}

async fn sent(brevo: &MockServer, route: &str) -> Vec<Value> {
    requests_to(&brevo.received_requests().await.unwrap_or_default(), route)
}

#[tokio::test]
async fn a_contacts_page_is_not_looked_up_again_even_for_leads_without_an_email() {
    let (brevo, intercom) = (MockServer::start().await, intercom().await);
    mount_accepting(&brevo, &[]).await;
    let upserter = upserter(&brevo, &intercom, Arc::new(MemoryStateStore::new()));

    let report = upserter
        .handle(&[page(
            "intercom:contacts:page-0",
            vec![
                contact("u1", Some("one@example.com")),
                contact("l1", None),
                contact("l2", None),
            ],
        )])
        .await;

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(calls(&intercom).await, Vec::<String>::new());
    assert_eq!((report.stats.lookups, report.stats.contacts), (0, 3));
    let ext_ids: Vec<Value> = sent(&brevo, "/v3/contacts")
        .await
        .iter()
        .filter_map(|b| b.get("ext_id").cloned())
        .collect();
    assert_eq!(ext_ids, [json!("intercom:l1"), json!("intercom:l2")]);
}

#[tokio::test]
async fn a_conversation_page_takes_the_email_the_person_index_holds() {
    let (brevo, intercom) = (MockServer::start().await, intercom().await);
    mount_accepting(&brevo, &[]).await;
    let state = Arc::new(MemoryStateStore::new());
    let upserter = upserter(&brevo, &intercom, state);
    let contacts = upserter
        .handle(&[page(
            "intercom:contacts:page-0",
            vec![contact("u1", Some("one@example.com"))],
        )])
        .await;
    assert!(contacts.failed.is_empty(), "{:?}", contacts.failed);

    // Two conversations of the known contact, one of a contact no page has shown yet.
    let report = upserter
        .handle(&[page(
            "intercom:conversations:page-0",
            vec![
                conversation(1, "u1"),
                conversation(2, "u1"),
                conversation(3, "u9"),
            ],
        )])
        .await;

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        calls(&intercom).await,
        ["GET /contacts/u9".to_string()],
        "only the person the index does not know is looked up"
    );
    assert_eq!((report.stats.lookups, report.stats.lookups_spared), (1, 2));
    let identifiers: Vec<Value> = sent(&brevo, "/v3/events/batch")
        .await
        .iter()
        .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
        .map(|e| e["identifiers"].clone())
        .collect();
    assert_eq!(
        identifiers,
        [
            json!({"email_id": "one@example.com"}),
            json!({"email_id": "one@example.com"}),
            json!({"email_id": "jane.doe@example.com"}),
        ]
    );
}

#[tokio::test]
async fn a_webhook_naming_a_person_by_id_is_still_looked_up() {
    let (brevo, intercom) = (MockServer::start().await, intercom().await);
    mount_accepting(&brevo, &[]).await;
    let upserter = upserter(&brevo, &intercom, Arc::new(MemoryStateStore::new()));
    let job = Job {
        id: "intercom:notif_1".into(),
        source: Source::Intercom,
        origin: Origin::Webhook,
        received_at: at(),
        correlation_id: None,
        records: vec![conversation(4, "u7")],
    };
    let message = Message::new("m1", serde_json::to_string(&job).expect("job serialises"));

    let report = upserter.handle(&[message]).await;

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(calls(&intercom).await, ["GET /contacts/u7".to_string()]);
    assert_eq!(
        sent(&brevo, "/v3/events").await[0]["identifiers"],
        json!({"email_id": "jane.doe@example.com"})
    );
}

fn webhook(id: &str, n: u32, person: &str) -> Message {
    let job = Job {
        id: format!("intercom:{id}"),
        source: Source::Intercom,
        origin: Origin::Webhook,
        received_at: at(),
        correlation_id: None,
        records: vec![conversation(n, person)],
    };
    Message::new(id, serde_json::to_string(&job).expect("job serialises"))
}

/// The queue failing messages are sent back to.
const RETRY_QUEUE: &str = "https://sqs.test/upsert";

/// Brevo accepting everything, an Intercom answering every contact look-up 429 with
/// `Retry-After`, and an upserter sending failing messages back to an in-memory queue.
struct Limited {
    brevo: MockServer,
    intercom: MockServer,
    queue: Arc<MemoryQueue>,
    upserter: TestUpserter,
}

async fn rate_limited(retry_after: &str) -> Limited {
    let brevo = MockServer::start().await;
    mount_accepting(&brevo, &[]).await;
    let intercom = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/contacts/[^/]+$"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", retry_after))
        .mount(&intercom)
        .await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter(&brevo, &intercom, Arc::new(MemoryStateStore::new())).with_redelivery(
        Redelivery::new(queue.clone()).retrying_on(RETRY_QUEUE, RetryPolicy::default()),
    );
    Limited {
        brevo,
        intercom,
        queue,
        upserter,
    }
}

#[tokio::test]
async fn a_rate_limited_look_up_delays_its_message_past_retry_after_and_sends_nothing_sooner() {
    let Limited {
        brevo,
        intercom,
        queue,
        upserter,
    } = rate_limited("120").await;

    let first = upserter.handle(&[webhook("m1", 5, "u5")]).await;
    // Another message naming another person of the same helpdesk, inside the wait.
    let second = upserter.handle(&[webhook("m2", 6, "u6")]).await;

    for report in [&first, &second] {
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(
            (report.stats.retried_later, report.stats.dead_lettered),
            (1, 0)
        );
    }
    assert_eq!(
        calls(&intercom).await,
        ["GET /contacts/u5".to_string()],
        "nothing is sent to the helpdesk before its Retry-After"
    );
    let delays: Vec<std::time::Duration> = queue
        .sent_later(RETRY_QUEUE)
        .iter()
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(delays.len(), 2);
    assert!(
        delays[0] >= std::time::Duration::from_secs(120),
        "the first waits the whole Retry-After: {delays:?}"
    );
    assert!(
        delays[1] > std::time::Duration::from_secs(110),
        "the second waits what is left of it: {delays:?}"
    );
    assert!(sent(&brevo, "/v3/events").await.is_empty());
}

#[tokio::test]
async fn a_sync_page_whose_look_up_is_rate_limited_waits_out_retry_after_too() {
    let Limited {
        brevo: _brevo,
        intercom: _intercom,
        queue,
        upserter,
    } = rate_limited("90").await;

    let report = upserter
        .handle(&[page(
            "intercom:conversations:page-0",
            vec![conversation(7, "u7")],
        )])
        .await;

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        (report.stats.retried_later, report.stats.dead_lettered),
        (1, 0)
    );
    let delays: Vec<std::time::Duration> = queue
        .sent_later(RETRY_QUEUE)
        .iter()
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(delays.len(), 1);
    assert!(
        delays[0] >= std::time::Duration::from_secs(90),
        "{delays:?}"
    );
}
