//! The sync (batch) path of the upsert handler against a wiremock Brevo answering with the
//! documented shapes (import → 202 `{"processId": 78}`, events/batch → 204, attribute list,
//! attribute creation → 201), the in-memory state store and a helpdesk look-up that finds nobody.

use deskbridge_shared::testkit::brevo::{
    bodies, fast_client, mount_accepting, mount_attribute_creation,
};
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::clock::ManualClock;
use deskbridge_shared::mapping::{FieldRule, Mapping, Transform};
use deskbridge_shared::memory::{MemoryStateStore, NoLookup};
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_shared::testkit::calls;
use deskbridge_upsert::{BatchReport, Message, Upserter};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The all-contacts list of the Zendesk source in these tests.
const ALL_CONTACTS: i64 = 35;

type TestUpserter = Upserter<BrevoClient, MemoryStateStore, NoLookup>;

fn upserter(server: &MockServer, mapping: Mapping) -> TestUpserter {
    let brevo = fast_client(server);
    Upserter::new(brevo, MemoryStateStore::new(), NoLookup, mapping)
}

/// The seed mapping with Zendesk contacts joining list 35.
fn with_all_contacts_list() -> Mapping {
    let mut mapping = Mapping::default();
    zendesk(&mut mapping).lists.all_contacts = Some(ALL_CONTACTS);
    mapping
}

fn zendesk(mapping: &mut Mapping) -> &mut deskbridge_shared::mapping::SourceMapping {
    mapping
        .sources
        .get_mut("zendesk")
        .expect("seed mapping has zendesk")
}

/// Brevo with every route the handler may use answering success, its account holding the
/// built-in attributes, a custom one, the support aggregates (as `deskbridge plan --apply`
/// creates them) and a category attribute.
async fn brevo_ok(server: &MockServer) {
    mount_accepting(
        server,
        &[
            ("FIRSTNAME", "text"),
            ("LASTNAME", "text"),
            ("SMS", "text"),
            ("PLAN_TIER", "text"),
            ("TICKET_COUNT", "float"),
            ("OPEN_TICKETS", "float"),
            ("LAST_SUPPORT_DATE", "date"),
            ("LAST_SUPPORT_CHANNEL", "text"),
            ("AVG_RESPONSE_TIME", "float"),
            ("CSAT_SCORE", "float"),
            ("CSAT_RESPONSES", "float"),
            ("DOUBLE_OPT-IN", "category"),
        ],
    )
    .await;
    mount_attribute_creation(server).await;
}

/// Mounts, ahead of [`brevo_ok`], an events batch answered 207 with `errors`, `times` times.
async fn mount_events_207(server: &MockServer, errors: Value, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v3/events/batch"))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({ "errors": errors })))
        .up_to_n_times(times)
        .mount(server)
        .await;
}

fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| *c == call).count()
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

/// Customer `n`, with an email, a helpdesk id and a name.
fn customer(n: usize) -> Person {
    Person {
        source_id: Some(n.to_string()),
        email: Some(format!("Customer{n}@Example.com")),
        name: Some(format!("Customer Number{n}")),
        ..Default::default()
    }
}

fn record(person: Person, events: Vec<SupportEvent>) -> Record {
    Record {
        person,
        observed_at: Utc::now(),
        profile: Some(json!({"created_at": "2024-01-02T03:04:05Z", "plan": "pro"}).into()),
        events,
        ..Default::default()
    }
}

fn job(id: &str, origin: Origin, records: Vec<Record>) -> Job {
    Job {
        id: id.into(),
        source: Source::Zendesk,
        origin,
        received_at: Utc::now(),
        correlation_id: None,
        records,
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

/// A Lambda batch of `messages` sync pages of `per_page` customers each, numbered from `first`;
/// each customer with one ticket event when `events` is set. Message ids carry `tag`.
fn sync_batch(
    tag: &str,
    first: usize,
    messages: usize,
    per_page: usize,
    events: bool,
) -> Vec<Message> {
    (0..messages)
        .map(|m| {
            let records = (0..per_page)
                .map(|r| {
                    let n = first + m * per_page + r;
                    let events = if events {
                        vec![ticket_created(&n.to_string())]
                    } else {
                        Vec::new()
                    };
                    record(customer(n), events)
                })
                .collect();
            let page = job(&format!("zendesk:users:page-{m}"), Origin::Sync, records);
            message(&format!("{tag}-{m}"), &page)
        })
        .collect()
}

fn assert_no_failures(report: &BatchReport) {
    assert!(report.failed.is_empty(), "{report:?}");
}

#[tokio::test]
async fn ten_sync_messages_of_fifty_contacts_are_one_import() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    let mut mapping = with_all_contacts_list();
    let rules = &mut zendesk(&mut mapping).field_mapping;
    rules.push(FieldRule::new("created_at", "SIGNUP_DATE", Transform::Date));
    rules.push(FieldRule::new("plan", "PLAN_TIER", Transform::Text));
    rules.push(FieldRule::new("score", "HEALTH", Transform::Number));
    let upserter = upserter(&server, mapping);

    let report = upserter.handle(&sync_batch("a", 0, 10, 50, true)).await;

    assert_no_failures(&report);
    let seen = calls(&server).await;
    assert_eq!(count(&seen, "POST /v3/contacts/import"), 1, "{seen:?}");
    assert_eq!(count(&seen, "POST /v3/contacts"), 0);
    assert_eq!(count(&seen, "POST /v3/events"), 0);
    let imports = bodies(&server, "/v3/contacts/import").await;
    let import = &imports[0];
    assert_eq!(import["listIds"], json!([ALL_CONTACTS]));
    assert_eq!(import["updateExistingContacts"], json!(true));
    let rows = import["jsonBody"].as_array().expect("jsonBody array");
    assert_eq!(rows.len(), 500);
    let first = rows
        .iter()
        .find(|r| r["email"] == json!("customer0@example.com"))
        .expect("customer 0 imported, email normalised");
    assert_eq!(
        first["attributes"],
        json!({"ZENDESK_ID": "0", "FIRSTNAME": "Customer", "LASTNAME": "Number0",
            "SIGNUP_DATE": "2024-01-02", "PLAN_TIER": "pro",
            // From the contact's ledger: its one ticket, open, by email.
            "TICKET_COUNT": 1, "OPEN_TICKETS": 1, "LAST_SUPPORT_DATE": "2025-01-08",
            "LAST_SUPPORT_CHANNEL": "email", "CSAT_RESPONSES": 0})
    );

    // Attributes: listed once, the missing custom ones created with their types; built-ins
    // and those Brevo listed are left alone.
    assert_eq!(count(&seen, "GET /v3/contacts/attributes"), 1);
    let mut created: BTreeMap<String, Value> = BTreeMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        if let Some(name) = r.url.path().strip_prefix("/v3/contacts/attributes/normal/") {
            created.insert(name.to_string(), r.body_json().expect("JSON body"));
        }
    }
    assert_eq!(
        created,
        BTreeMap::from([
            // The default Zendesk rules' organization name.
            ("COMPANY_NAME".to_string(), json!({"type": "text"})),
            ("HEALTH".to_string(), json!({"type": "float"})),
            ("SIGNUP_DATE".to_string(), json!({"type": "date"})),
            ("ZENDESK_ID".to_string(), json!({"type": "text"})),
        ])
    );
    // The attributes exist before the import is sent.
    let import_at = seen
        .iter()
        .position(|c| c == "POST /v3/contacts/import")
        .expect("import sent");
    assert!(
        seen[..import_at]
            .iter()
            .filter(|c| c.contains("/attributes"))
            .count()
            == 5
    );

    let batches = bodies(&server, "/v3/events/batch").await;
    assert_eq!(batches.len(), 3, "500 events, 200 a call");
    let sent: Vec<&Value> = batches
        .iter()
        .flat_map(|b| b["events"].as_array().expect("events array"))
        .collect();
    assert_eq!(sent.len(), 500);
    assert!(
        sent.iter()
            .all(|e| e["event_name"] == json!("SUPPORT_TICKET_OPENED")
                && e["identifiers"]["email_id"].is_string())
    );
    let s = report.stats;
    assert_eq!(
        (
            s.messages,
            s.imports,
            s.contacts_imported,
            s.event_batches,
            s.events
        ),
        (10, 1, 500, 3, 500)
    );

    // The same pages again (a re-run): one more import, no attribute calls (cached in the
    // container), no event sent twice.
    let again = upserter.handle(&sync_batch("b", 0, 10, 50, true)).await;
    assert_no_failures(&again);
    let seen = calls(&server).await;
    assert_eq!(count(&seen, "POST /v3/contacts/import"), 2);
    assert_eq!(
        seen.iter()
            .filter(|c| c.contains("/contacts/attributes"))
            .count(),
        5,
        "no attribute calls the second time: {seen:?}"
    );
    assert_eq!(count(&seen, "POST /v3/events/batch"), 3);
    assert_eq!(
        (again.stats.events, again.stats.events_skipped_duplicate),
        (0, 500)
    );
}

#[tokio::test]
async fn a_thousand_contacts_cost_at_most_five_brevo_calls() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());

    // 1,000 contacts: two Lambda batches of 10 messages × 50 records.
    let first = upserter.handle(&sync_batch("a", 0, 10, 50, false)).await;
    let second = upserter.handle(&sync_batch("b", 500, 10, 50, false)).await;

    assert_no_failures(&first);
    assert_no_failures(&second);
    let seen = calls(&server).await;
    assert!(seen.len() <= 5, "{} Brevo calls: {seen:?}", seen.len());
    assert_eq!(count(&seen, "POST /v3/contacts/import"), 2);
    assert_eq!(
        first.stats.contacts_imported + second.stats.contacts_imported,
        1000
    );
}

#[tokio::test]
async fn records_without_email_or_unsubscribed_go_through_single_upserts() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());
    let by_id = Person {
        source_id: Some("77".into()),
        ..Default::default()
    };
    let mut unsubscribed = record(customer(3), vec![]);
    unsubscribed.unsubscribed = Some(true);
    let page = job(
        "zendesk:users:page-0",
        Origin::Sync,
        vec![
            record(customer(1), vec![ticket_created("1")]),
            record(by_id, vec![ticket_created("77")]),
            record(customer(2), vec![]),
            unsubscribed,
        ],
    );

    let report = upserter.handle(&[message("m1", &page)]).await;

    assert_no_failures(&report);
    let imports = bodies(&server, "/v3/contacts/import").await;
    assert_eq!(imports.len(), 1);
    let emails: Vec<&Value> = imports[0]["jsonBody"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| &r["email"])
        .collect();
    assert_eq!(
        emails,
        [
            &json!("customer1@example.com"),
            &json!("customer2@example.com")
        ]
    );
    let singles = bodies(&server, "/v3/contacts").await;
    assert_eq!(singles.len(), 2, "{singles:?}");
    assert!(singles.contains(&json!({
        "ext_id": "zendesk:77",
        "attributes": {"ZENDESK_ID": "77", "TICKET_COUNT": 1, "OPEN_TICKETS": 1,
            "LAST_SUPPORT_DATE": "2025-01-08", "LAST_SUPPORT_CHANNEL": "email",
            "CSAT_RESPONSES": 0},
        "listIds": [ALL_CONTACTS],
        "updateEnabled": true
    })));
    assert!(
        singles
            .iter()
            .any(|b| b["email"] == json!("customer3@example.com")
                && b["emailBlacklisted"] == json!(true))
    );
    let batches = bodies(&server, "/v3/events/batch").await;
    assert_eq!(batches.len(), 1);
    let identifiers: Vec<&Value> = batches[0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["identifiers"])
        .collect();
    assert_eq!(
        identifiers,
        [
            &json!({"email_id": "customer1@example.com"}),
            &json!({"ext_id": "zendesk:77"})
        ]
    );
    let s = report.stats;
    assert_eq!(
        (
            s.contacts,
            s.contacts_imported,
            s.imports,
            s.events,
            s.lookups
        ),
        // The users page held user 77's object (its profile), so no helpdesk look-up is made
        // for it: the API would not know an email the page did not carry.
        (2, 2, 1, 2, 0)
    );
}

#[tokio::test]
async fn without_an_all_contacts_list_sync_contacts_are_upserted_one_by_one() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, Mapping::default());

    let report = upserter.handle(&sync_batch("a", 0, 2, 3, true)).await;

    assert_no_failures(&report);
    let seen = calls(&server).await;
    assert_eq!(count(&seen, "POST /v3/contacts"), 6);
    assert_eq!(count(&seen, "POST /v3/contacts/import"), 0);
    assert!(
        !seen.iter().any(|c| c.contains("/attributes")),
        "no import, no attribute check: {seen:?}"
    );
    // The events still travel in one batch call.
    assert_eq!(count(&seen, "POST /v3/events/batch"), 1);
    assert_eq!(count(&seen, "POST /v3/events"), 0);
    assert_eq!((report.stats.contacts, report.stats.events), (6, 6));
}

#[tokio::test]
async fn an_events_batch_outage_fails_the_messages_with_events_and_redelivery_sends_them_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/events/batch"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());
    let with_events = job(
        "zendesk:tickets:page-0",
        Origin::Sync,
        vec![
            record(customer(1), vec![ticket_created("1")]),
            record(customer(2), vec![ticket_created("2")]),
        ],
    );
    let without_events = job(
        "zendesk:users:page-0",
        Origin::Sync,
        vec![record(customer(3), vec![])],
    );
    let m1 = message("m1", &with_events);

    let during = upserter
        .handle(&[m1.clone(), message("m2", &without_events)])
        .await;

    assert_eq!(during.failed, vec!["m1".to_string()]);
    assert_eq!(during.stats.events, 0);
    assert_eq!(during.stats.contacts_imported, 3);
    assert_eq!(
        bodies(&server, "/v3/events/batch").await.len(),
        4,
        "the client retried before giving up"
    );

    // Brevo recovers; SQS delivers m1 again, then once more.
    server.reset().await;
    brevo_ok(&server).await;
    let redelivered = Message {
        receive_count: 2,
        retry: None,
        ..m1.clone()
    };
    let after = upserter.handle(std::slice::from_ref(&redelivered)).await;
    assert_no_failures(&after);
    assert_eq!(after.stats.events, 2);
    let batches = bodies(&server, "/v3/events/batch").await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0]["events"].as_array().map(Vec::len), Some(2));

    let third = upserter
        .handle(&[Message {
            receive_count: 3,
            retry: None,
            ..m1
        }])
        .await;
    assert_no_failures(&third);
    assert_eq!(third.stats.events_skipped_duplicate, 2);
    assert_eq!(bodies(&server, "/v3/events/batch").await.len(), 1);
    assert!(
        !calls(&server)
            .await
            .iter()
            .any(|c| c.contains("/attributes")),
        "attributes were ensured during the outage already"
    );
}

#[tokio::test]
async fn webhook_jobs_in_the_same_batch_keep_single_upserts() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());
    let webhook = job(
        "zendesk:delivery-1",
        Origin::Webhook,
        vec![record(customer(1), vec![ticket_created("1")])],
    );
    let page = job(
        "zendesk:users:page-0",
        Origin::Sync,
        vec![record(customer(2), vec![ticket_created("2")])],
    );

    let report = upserter
        .handle(&[message("w1", &webhook), message("s1", &page)])
        .await;

    assert_no_failures(&report);
    let singles = bodies(&server, "/v3/contacts").await;
    assert_eq!(singles.len(), 1);
    assert_eq!(singles[0]["email"], json!("customer1@example.com"));
    assert_eq!(singles[0]["listIds"], json!([ALL_CONTACTS]));
    let events = bodies(&server, "/v3/events").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["identifiers"],
        json!({"email_id": "customer1@example.com"})
    );
    let imports = bodies(&server, "/v3/contacts/import").await;
    assert_eq!(imports.len(), 1);
    assert_eq!(
        imports[0]["jsonBody"][0]["email"],
        json!("customer2@example.com")
    );
    let batches = bodies(&server, "/v3/events/batch").await;
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0]["events"][0]["identifiers"],
        json!({"email_id": "customer2@example.com"})
    );
    assert_eq!(report.stats.messages, 2);
}

#[tokio::test]
async fn tag_lists_are_joined_by_grouping_imports_by_list_set() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/lists/13/contacts/remove"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"contacts": {"success": [], "failure": []}})),
        )
        .mount(&server)
        .await;
    let mut mapping = with_all_contacts_list();
    let tags = &mut zendesk(&mut mapping).tag_lists;
    tags.insert("vip".into(), 12);
    tags.insert("churned".into(), 13);
    let upserter = upserter(&server, mapping);
    let mut vip = record(customer(2), vec![]);
    vip.tags_added = vec!["VIP".into()];
    vip.tags_removed = vec!["churned".into()];
    let page = job(
        "zendesk:users:page-0",
        Origin::Sync,
        vec![
            record(customer(1), vec![]),
            vip,
            record(customer(3), vec![]),
        ],
    );

    let report = upserter.handle(&[message("m1", &page)]).await;

    assert_no_failures(&report);
    let mut imports: Vec<(Value, usize)> = bodies(&server, "/v3/contacts/import")
        .await
        .iter()
        .map(|b| {
            (
                b["listIds"].clone(),
                b["jsonBody"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    imports.sort_by_key(|(_, n)| *n);
    assert_eq!(
        imports,
        vec![(json!([12, ALL_CONTACTS]), 1), (json!([ALL_CONTACTS]), 2)]
    );
    assert_eq!(
        bodies(&server, "/v3/contacts/lists/13/contacts/remove").await,
        vec![json!({"emails": ["customer2@example.com"]})]
    );
    assert_eq!((report.stats.imports, report.stats.list_removals), (2, 1));
}

#[tokio::test]
async fn a_person_in_two_pages_is_imported_once_with_the_newest_observation() {
    let server = MockServer::start().await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());
    let older = Record {
        observed_at: Utc::now() - chrono::Duration::hours(1),
        ..record(
            Person {
                name: Some("Old Name".into()),
                ..customer(1)
            },
            vec![],
        )
    };
    let newer = record(customer(1), vec![]);
    let pages = [
        message("m1", &job("p1", Origin::Sync, vec![newer])),
        message("m2", &job("p2", Origin::Sync, vec![older])),
    ];

    let report = upserter.handle(&pages).await;

    assert_no_failures(&report);
    let imports = bodies(&server, "/v3/contacts/import").await;
    assert_eq!(imports.len(), 1);
    let rows = imports[0]["jsonBody"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["attributes"]["FIRSTNAME"], json!("Customer"));
}

#[tokio::test]
async fn an_attribute_listing_failure_fails_the_messages_and_sends_no_import() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/contacts/attributes"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    brevo_ok(&server).await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let upserter = upserter(&server, with_all_contacts_list()).with_clock(clock.clone());
    let batch = sync_batch("a", 0, 2, 2, true);

    let during = upserter.handle(&batch).await;

    let mut failed = during.failed.clone();
    failed.sort();
    assert_eq!(failed, vec!["a-0".to_string(), "a-1".to_string()]);
    let seen = calls(&server).await;
    assert_eq!(count(&seen, "POST /v3/contacts/import"), 0);
    assert_eq!(
        count(&seen, "POST /v3/events/batch"),
        0,
        "no events for contacts not written"
    );

    // Brevo is down as far as this container knows: the next batch is held untried until the
    // probe is due.
    server.reset().await;
    brevo_ok(&server).await;
    let held = upserter.handle(&batch).await;
    assert_eq!(held.stats.held, 2);
    assert_eq!(calls(&server).await.len(), 0, "nothing tried while held");

    // The probe (the batch's first message) finds Brevo back, and the gate opens.
    clock.advance(deskbridge_upsert::health::PROBE_INTERVAL);
    let probe = upserter.handle(&batch).await;
    assert_eq!(probe.stats.held, 1);
    let after = upserter.handle(&batch).await;
    assert_no_failures(&after);
    let seen = calls(&server).await;
    assert_eq!(count(&seen, "GET /v3/contacts/attributes"), 1);
    assert_eq!(
        count(&seen, "POST /v3/contacts/import"),
        2,
        "the probe's, then the rest's"
    );
    assert_eq!(probe.stats.events + after.stats.events, 4);
}

#[tokio::test]
async fn an_attribute_that_exists_already_does_not_stop_the_import() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/attributes/normal/ZENDESK_ID"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": "duplicate_parameter", "message": "Attribute name already exists"}),
        ))
        .mount(&server)
        .await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());

    let report = upserter.handle(&sync_batch("a", 0, 1, 3, false)).await;

    assert_no_failures(&report);
    assert_eq!((report.stats.imports, report.stats.rejected), (1, 0));
}

#[tokio::test]
async fn an_event_refused_inside_a_batch_is_counted_not_retried() {
    let server = MockServer::start().await;
    mount_events_207(
        &server,
        json!([{"index": 0, "code": "invalid_parameter", "message": "event_date is invalid"}]),
        u64::MAX,
    )
    .await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());
    let batch = sync_batch("a", 0, 1, 3, true);

    let report = upserter.handle(&batch).await;

    assert_no_failures(&report);
    let s = report.stats;
    assert_eq!((s.events, s.rejected, s.event_batches), (2, 1, 1));
    // The refused event's claim was released, the others completed: a re-run offers only it.
    let again = upserter.handle(&sync_batch("b", 0, 1, 3, true)).await;
    assert_eq!(again.stats.events_skipped_duplicate, 2);
    let batches = bodies(&server, "/v3/events/batch").await;
    assert_eq!(batches[1]["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_event_a_batch_could_not_take_yet_is_retried_alone() {
    let server = MockServer::start().await;
    mount_events_207(
        &server,
        json!([{"index": 1, "code": "too_many_requests", "message": "slow down"}]),
        1,
    )
    .await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());
    let batch = sync_batch("a", 0, 1, 3, true);

    let report = upserter.handle(&batch).await;

    // The message comes back (the event can still be sent); the other two are done.
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let s = &report.stats;
    assert_eq!((s.events, s.rejected, s.event_batches), (2, 0, 1));
    let retried = upserter.handle(&batch).await;
    assert_no_failures(&retried);
    assert_eq!(
        (retried.stats.events, retried.stats.events_skipped_duplicate),
        (1, 2)
    );
    let batches = bodies(&server, "/v3/events/batch").await;
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1]["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(batches[1]["events"][0], batches[0]["events"][1]);
}

#[tokio::test]
async fn a_refused_events_batch_falls_back_to_single_events() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/events/batch"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": "invalid_parameter", "message": "events[1].event_name is invalid"}),
        ))
        .mount(&server)
        .await;
    brevo_ok(&server).await;
    let upserter = upserter(&server, with_all_contacts_list());

    let report = upserter.handle(&sync_batch("a", 0, 1, 3, true)).await;

    assert_no_failures(&report);
    assert_eq!(bodies(&server, "/v3/events").await.len(), 3);
    assert_eq!((report.stats.events, report.stats.event_batches), (3, 0));
}
