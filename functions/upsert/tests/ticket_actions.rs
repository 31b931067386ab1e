//! Tickets Brevo automations asked for (`/actions/<helpdesk>/tickets`) in the upsert handler:
//! opened once in Zendesk, Intercom and Gorgias (on wiremock) even when the message comes again
//! after the create, an outage or rate limit retried and never dead-lettered, and a ticket no
//! helpdesk here can open dead-lettered with its reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore, NoLookup};
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Redelivery, RetryPolicy};
use deskbridge_shared::state::StateStore;
use deskbridge_shared::testkit::brevo::fast_client;
use deskbridge_shared::testkit::tickets::{GorgiasTickets, IntercomTickets};
use deskbridge_shared::twoway::{HelpdeskWriteBack, TicketRequest, WriteBackJob};
use deskbridge_upsert::{Message, Upserter};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const UPSERT: &str = "http://queue.local/deskbridge-upsert";
const DLQ: &str = "http://queue.local/deskbridge-upsert-dlq";
const EXTERNAL_ID: &str = "deskbridge-0123456789abcdef0123456789abcdef";

fn message(id: &str) -> Message {
    message_to(Source::Zendesk, id)
}

fn message_to(helpdesk: Source, id: &str) -> Message {
    let job = WriteBackJob {
        id: format!("brevo:ticket:{helpdesk}:{EXTERNAL_ID}"),
        received_at: Utc::now(),
        correlation_id: None,
        write_backs: Vec::new(),
        tickets: vec![TicketRequest {
            helpdesk,
            external_id: EXTERNAL_ID.into(),
            email: "jane@example.com".into(),
            name: "Jane Doe".into(),
            subject: "Renewal call".into(),
            comment: "Please call Jane back.".into(),
            tags: vec!["brevo_automation".into()],
            priority: None,
            automation: Some("117".into()),
        }],
    };
    Message {
        message_id: format!("m-{id}"),
        body: job.to_body().expect("a body"),
        receive_count: 1,
        retry: None,
    }
}

fn upserter(
    pairs: &[(&str, &str)],
    brevo: &MockServer,
    queue: Arc<MemoryQueue>,
) -> Upserter<BrevoClient, MemoryStateStore, NoLookup> {
    let settings = Settings::from_vars(&Vars::from_pairs(pairs.iter().copied())).expect("settings");
    upserter_with(&settings, brevo, queue)
}

fn upserter_with(
    settings: &Settings,
    brevo: &MockServer,
    queue: Arc<MemoryQueue>,
) -> Upserter<BrevoClient, MemoryStateStore, NoLookup> {
    Upserter::new(
        fast_client(brevo),
        MemoryStateStore::new(),
        NoLookup,
        Mapping::default(),
    )
    .with_write_back(Arc::new(HelpdeskWriteBack::new(settings)))
    .with_redelivery(Redelivery::configured(
        queue,
        Some(UPSERT),
        Some(DLQ),
        RetryPolicy::default(),
    ))
}

fn zendesk(server: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("ZENDESK_BASE_URL", server.uri()),
        ("ZENDESK_OAUTH_TOKEN", "zd-oauth".to_string()),
    ]
}

fn claim_key() -> String {
    format!("ticket#zendesk#{EXTERNAL_ID}")
}

/// How many `verb` requests Zendesk's ticket list endpoint received.
async fn ticket_calls(server: &MockServer, verb: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == "/api/v2/tickets.json")
        .count()
}

async fn lookups(server: &MockServer) -> usize {
    ticket_calls(server, "GET").await
}

async fn creates(server: &MockServer) -> usize {
    ticket_calls(server, "POST").await
}

#[tokio::test]
async fn the_message_coming_again_after_the_create_finds_the_ticket_instead_of_opening_another() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    // Before the create Zendesk has no such ticket; after it, the list finds it.
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(query_param("external_id", EXTERNAL_ID))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"tickets": [], "next_page": null, "previous_page": null, "count": 0}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(query_param("external_id", EXTERNAL_ID))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tickets": [{"id": 35436, "external_id": EXTERNAL_ID, "status": "new"}],
            "next_page": null, "previous_page": null, "count": 1
        })))
        .with_priority(2)
        .mount(&helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets.json"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"ticket": {"id": 35436, "external_id": EXTERNAL_ID, "status": "new"}}),
        ))
        .mount(&helpdesk)
        .await;
    let queue = Arc::new(MemoryQueue::new());
    let pairs = zendesk(&helpdesk);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upserter = upserter(&pairs, &brevo, queue.clone());

    let first = upserter.handle(&[message("1")]).await;
    assert!(first.failed.is_empty(), "{first:?}");
    assert_eq!(first.stats.write_backs, 1, "one ticket opened");
    // The same message again: the ticket's mark says it was opened; nothing is asked.
    let again = upserter.handle(&[message("1")]).await;
    assert!(again.failed.is_empty(), "{again:?}");
    assert_eq!(again.stats.write_backs, 0);
    assert_eq!(lookups(&helpdesk).await, 1);
    // And once more after a crash between the create and the mark (the mark never written):
    // Zendesk's list by external_id finds the ticket, no second one is opened.
    upserter
        .state
        .release(&claim_key())
        .await
        .expect("released");
    let after_crash = upserter.handle(&[message("1")]).await;
    assert!(after_crash.failed.is_empty(), "{after_crash:?}");
    assert_eq!(after_crash.stats.write_backs, 0);
    assert_eq!(lookups(&helpdesk).await, 2);
    assert_eq!(creates(&helpdesk).await, 1);
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
    assert!(queue.sent_later(UPSERT).is_empty());
}

#[tokio::test]
async fn a_zendesk_outage_or_rate_limit_is_retried_and_never_dead_lettered() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tickets": [], "count": 0})))
        .with_priority(2)
        .mount(&helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets.json"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "45"))
        .mount(&helpdesk)
        .await;
    let queue = Arc::new(MemoryQueue::new());
    let pairs = zendesk(&helpdesk);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upserter = upserter(&pairs, &brevo, queue.clone());

    let down = upserter.handle(&[message("2")]).await;
    assert_eq!(down.stats.retried_later, 1, "{down:?}");
    let limited = upserter.handle(&[message("2")]).await;
    assert_eq!(limited.stats.retried_later, 1, "{limited:?}");
    let later = queue.sent_later(UPSERT);
    assert_eq!(later.len(), 2);
    assert!(
        later[1].0 >= Duration::from_secs(45),
        "not before Zendesk's Retry-After: {:?}",
        later[1].0
    );
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
}

#[tokio::test]
async fn a_ticket_no_helpdesk_here_can_open_is_dead_lettered_with_the_reason() {
    let brevo = MockServer::start().await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter(&[], &brevo, queue.clone());
    let report = upserter.handle(&[message("3")]).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stats.dead_lettered, 1);
    let reasons = queue.dead_letter_reasons(DLQ);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("zendesk cannot open tickets here")
            && reasons[0].contains(EXTERNAL_ID)
            && !reasons[0].contains("jane@example.com"),
        "{reasons:?}"
    );
}

/// Settings whose Intercom and Gorgias APIs are `server`, with the configuration `config`.
fn intercom_and_gorgias(server: &MockServer, config: &str) -> Settings {
    let uri = server.uri();
    Settings::from_vars(
        &Vars::from_pairs([
            ("INTERCOM_BASE_URL", uri.as_str()),
            ("INTERCOM_ACCESS_TOKEN", "ic-token"),
            ("GORGIAS_BASE_URL", uri.as_str()),
            ("GORGIAS_EMAIL", "api@shop.example"),
            ("GORGIAS_API_KEY", "gg-key"),
            ("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"),
        ])
        .with_config_text(config),
    )
    .expect("settings")
}

const TICKET_TYPE: &str = "actions:\n  intercom:\n    ticket_type_id: \"1234\"\n";

/// How many `verb path` requests `server` received.
async fn received(server: &MockServer, verb: &str, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == p)
        .count()
}

#[tokio::test]
async fn an_intercom_ticket_is_opened_once_and_found_by_its_key_after_a_crash() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    let intercom = IntercomTickets::new("ic-token");
    intercom.mount(&helpdesk).await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter_with(
        &intercom_and_gorgias(&helpdesk, TICKET_TYPE),
        &brevo,
        queue.clone(),
    );

    let first = upserter.handle(&[message_to(Source::Intercom, "1")]).await;
    assert!(first.failed.is_empty(), "{first:?}");
    assert_eq!(first.stats.write_backs, 1, "one ticket opened");
    let again = upserter.handle(&[message_to(Source::Intercom, "1")]).await;
    assert_eq!(again.stats.write_backs, 0);
    upserter
        .state
        .release(&format!("ticket#intercom#{EXTERNAL_ID}"))
        .await
        .expect("released");
    let after_crash = upserter.handle(&[message_to(Source::Intercom, "1")]).await;
    assert!(after_crash.failed.is_empty(), "{after_crash:?}");
    assert_eq!(after_crash.stats.write_backs, 0, "found, not opened again");
    assert_eq!(received(&helpdesk, "POST", "/tickets/search").await, 2);
    assert_eq!(received(&helpdesk, "POST", "/tickets").await, 1);
    let held = intercom.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["ticket_type"]["id"], "1234");
    assert_eq!(
        held[0]["contacts"]["contacts"][0]["email"],
        "jane@example.com"
    );
    assert_eq!(
        held[0]["ticket_attributes"],
        json!({"_default_title_": "Renewal call",
            "_default_description_": format!("Please call Jane back.\n\nReference: {EXTERNAL_ID}")})
    );
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
}

#[tokio::test]
async fn a_gorgias_ticket_is_opened_once_and_found_by_external_id_after_a_crash() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    let gorgias = GorgiasTickets::new("api@shop.example", "gg-key");
    gorgias.mount(&helpdesk).await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter_with(
        &intercom_and_gorgias(&helpdesk, "actions:\n  gorgias:\n    channel: email\n"),
        &brevo,
        queue.clone(),
    );

    let first = upserter.handle(&[message_to(Source::Gorgias, "1")]).await;
    assert!(first.failed.is_empty(), "{first:?}");
    assert_eq!(first.stats.write_backs, 1, "one ticket opened");
    upserter
        .state
        .release(&format!("ticket#gorgias#{EXTERNAL_ID}"))
        .await
        .expect("released");
    let after_crash = upserter.handle(&[message_to(Source::Gorgias, "1")]).await;
    assert_eq!(after_crash.stats.write_backs, 0, "found, not opened again");
    assert_eq!(received(&helpdesk, "GET", "/api/tickets").await, 2);
    assert_eq!(received(&helpdesk, "POST", "/api/tickets").await, 1);
    let held = gorgias.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["external_id"], EXTERNAL_ID);
    assert_eq!(held[0]["customer"]["email"], "jane@example.com");
    assert_eq!(held[0]["channel"], "email");
    assert_eq!(held[0]["tags"], json!([{"name": "brevo_automation"}]));
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
}

#[tokio::test]
async fn an_intercom_or_gorgias_rate_limit_is_retried_and_never_dead_lettered() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tickets/search"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "20"))
        .mount(&helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/tickets"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&helpdesk)
        .await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter_with(
        &intercom_and_gorgias(&helpdesk, TICKET_TYPE),
        &brevo,
        queue.clone(),
    );
    let limited = upserter.handle(&[message_to(Source::Intercom, "4")]).await;
    assert_eq!(limited.stats.retried_later, 1, "{limited:?}");
    let down = upserter.handle(&[message_to(Source::Gorgias, "5")]).await;
    assert_eq!(down.stats.retried_later, 1, "{down:?}");
    let later = queue.sent_later(UPSERT);
    assert_eq!(later.len(), 2);
    assert!(
        later[0].0 >= Duration::from_secs(20),
        "not before Intercom's Retry-After: {:?}",
        later[0].0
    );
    assert!(queue.dead_letter_reasons(DLQ).is_empty());
    assert_eq!(received(&helpdesk, "POST", "/tickets").await, 0);
    assert_eq!(received(&helpdesk, "POST", "/api/tickets").await, 0);
}

#[tokio::test]
async fn an_intercom_ticket_without_a_ticket_type_is_dead_lettered_with_the_reason() {
    let helpdesk = MockServer::start().await;
    let brevo = MockServer::start().await;
    let queue = Arc::new(MemoryQueue::new());
    let upserter = upserter_with(&intercom_and_gorgias(&helpdesk, ""), &brevo, queue.clone());
    let report = upserter.handle(&[message_to(Source::Intercom, "6")]).await;
    assert_eq!(report.stats.dead_lettered, 1, "{report:?}");
    let reasons = queue.dead_letter_reasons(DLQ);
    assert!(
        reasons[0].contains("intercom cannot open tickets here")
            && reasons[0].contains("no ticket_type_id"),
        "{reasons:?}"
    );
    assert!(
        helpdesk
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}
