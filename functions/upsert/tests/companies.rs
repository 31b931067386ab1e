//! Intercom companies on the real-time path: a contact notification that lists a company by
//! reference, the upsert handler with the real helpdesk look-up against a wiremock Intercom
//! (`GET /companies/{id}` as documented), and a wiremock Brevo.

use chrono::Utc;
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::{self, HelpdeskLookup, Parsed};
use deskbridge_shared::memory::MemoryStateStore;
use deskbridge_shared::model::{Job, Origin, Source};
use deskbridge_shared::testkit::brevo::{accepting, fast_client};
use deskbridge_upsert::{Message, Upserter};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CONTACT_CREATED: &str =
    include_str!("../../../shared/tests/fixtures/intercom/contact-user-created.json");
const COMPANY: &str = include_str!("../../../shared/tests/fixtures/intercom/api-company.json");
const COMPANY_ID: &str = "6762f0f21bb69f9f2193bb83";

/// The fixture notification, its contact now listing one company by reference.
fn notification_with_company() -> String {
    let mut body: Value = serde_json::from_str(CONTACT_CREATED).expect("fixture");
    body["data"]["item"]["companies"] = json!({"type": "list",
        "data": [{"type": "company", "id": COMPANY_ID, "url": format!("/companies/{COMPANY_ID}")}],
        "url": "/contacts/6762f0d91bb69f9f2193bb7e/companies", "total_count": 1, "has_more": false});
    body.to_string()
}

/// The queue message the webhook function makes of `body`.
fn message(settings: &Settings, body: &str) -> Message {
    let parsed = helpdesk::parse_webhook(
        settings,
        &Source::Intercom,
        &http::HeaderMap::new(),
        body.as_bytes(),
        Utc::now(),
    );
    let Ok(Parsed::Accepted(delivery)) = parsed else {
        panic!("an accepted delivery: {parsed:?}");
    };
    let job = Job {
        id: format!("intercom:{}", delivery.delivery_id),
        source: Source::Intercom,
        origin: Origin::Webhook,
        received_at: Utc::now(),
        correlation_id: None,
        records: delivery.records,
    };
    Message {
        message_id: "m-1".into(),
        body: serde_json::to_string(&job).expect("job"),
        receive_count: 1,
        retry: None,
    }
}

async fn brevo() -> MockServer {
    accepting(&[]).await
}

fn upserter(
    brevo: &MockServer,
    settings: &Settings,
) -> Upserter<BrevoClient, MemoryStateStore, HelpdeskLookup> {
    Upserter::new(
        fast_client(brevo),
        MemoryStateStore::new(),
        HelpdeskLookup::new(settings),
        settings.mapping.clone(),
    )
}

fn intercom_settings(intercom: &MockServer) -> Settings {
    Settings::from_vars(&Vars::from_pairs([
        ("INTERCOM_BASE_URL", intercom.uri().as_str()),
        ("INTERCOM_ACCESS_TOKEN", "ic-token"),
    ]))
    .expect("settings")
}

/// Runs the notification through the upsert handler, with Intercom at `intercom`; the contact
/// upserts Brevo received. The message must succeed (never be retried) whatever Intercom says.
async fn upsert_the_notification(intercom: &MockServer) -> Vec<Value> {
    let brevo = brevo().await;
    let settings = intercom_settings(intercom);
    let report = upserter(&brevo, &settings)
        .handle(&[message(&settings, &notification_with_company())])
        .await;
    assert!(report.failed.is_empty(), "not retried: {report:?}");
    let sent: Vec<Value> = brevo
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v3/contacts")
        .map(|r| r.body_json::<Value>().expect("JSON body"))
        .collect();
    assert_eq!(sent.len(), 1, "one contact upsert");
    sent
}

#[tokio::test]
async fn a_contact_with_a_company_reaches_brevo_with_company_attributes() {
    let intercom = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/companies/{COMPANY_ID}")))
        .and(header("authorization", "Bearer ic-token"))
        .and(header("intercom-version", "2.11"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(COMPANY, "application/json"))
        .expect(1)
        .mount(&intercom)
        .await;
    let sent = upsert_the_notification(&intercom).await;
    assert_eq!(sent[0]["email"], "jane.doe@example.com");
    let attributes = &sent[0]["attributes"];
    assert_eq!(attributes["COMPANY_NAME"], "Acme Logistics");
    assert_eq!(attributes["COMPANY_PLAN"], "Pro");
    assert_eq!(attributes["COMPANY_SIZE"], 85);
    assert_eq!(attributes["INTERCOM_ID"], "6762f0d91bb69f9f2193bb7e");
}

#[tokio::test]
async fn a_failing_company_api_does_not_hold_the_contact_back() {
    let intercom = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/companies/{COMPANY_ID}")))
        .respond_with(ResponseTemplate::new(500))
        .mount(&intercom)
        .await;
    let sent = upsert_the_notification(&intercom).await;
    let attributes = sent[0]["attributes"].as_object().expect("attributes");
    assert_eq!(attributes["INTERCOM_ID"], "6762f0d91bb69f9f2193bb7e");
    assert_eq!(attributes["FIRSTNAME"], "Jane");
    assert!(
        attributes.keys().all(|k| !k.starts_with("COMPANY_")),
        "{attributes:?}"
    );
}
