//! [`BrevoClient`] against a wiremock server answering with Brevo's documented shapes
//! (API-BREVO.md). Real time is used here: tokio's paused clock would fire reqwest's timeouts
//! while the mock server works. The governor's arithmetic is tested under a paused clock in
//! `governor.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::*;

const KEY: &str = "xkeysib-test-key";

async fn server() -> (MockServer, BrevoClient) {
    let server = MockServer::start().await;
    let client = BrevoClient::new(KEY, &format!("{}/v3", server.uri())).expect("client builds");
    (server, client)
}

/// Answers with `responses` in turn (the last one repeats) and records when each request came.
#[derive(Clone)]
struct Sequence {
    responses: Vec<ResponseTemplate>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Sequence {
    fn new(responses: Vec<ResponseTemplate>) -> Self {
        Sequence {
            responses,
            seen: Arc::default(),
        }
    }
    fn times(&self) -> Vec<Instant> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().expect("not poisoned");
        seen.push(Instant::now());
        let i = (seen.len() - 1).min(self.responses.len() - 1);
        self.responses[i].clone()
    }
}

fn contact() -> ContactUpsert {
    let mut c = ContactUpsert::new(&ContactKey::Email("jane@example.com".into()));
    c.attributes.insert("FIRSTNAME".into(), json!("Jane"));
    c.attributes.insert("SMS".into(), json!("+14155552671"));
    c.list_ids = vec![7];
    c
}

fn event() -> EventRequest {
    EventRequest {
        event_name: "SUPPORT_TICKET_OPENED".into(),
        identifiers: EventIdentifiers {
            email_id: Some("jane@example.com".into()),
            ..Default::default()
        },
        event_date: Some("2025-01-08T10:12:07Z".into()),
        event_properties: serde_json::Map::new(),
    }
}

#[tokio::test]
async fn upsert_sends_the_documented_body_and_reads_201_and_204() {
    let (server, client) = server().await;
    let expected = json!({
        "email": "jane@example.com",
        "attributes": {"FIRSTNAME": "Jane", "SMS": "+14155552671"},
        "listIds": [7],
        "updateEnabled": true
    });
    let answers = Sequence::new(vec![
        ResponseTemplate::new(201).set_body_json(json!({"id": 21})),
        ResponseTemplate::new(204),
    ]);
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .and(header("api-key", KEY))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .and(header(
            "user-agent",
            concat!("deskbridge/", env!("CARGO_PKG_VERSION")),
        ))
        .and(body_json(&expected))
        .respond_with(answers.clone())
        .expect(2)
        .mount(&server)
        .await;

    assert_eq!(
        client.upsert_contact(&contact()).await,
        Ok(UpsertOutcome::Created)
    );
    assert_eq!(
        client.upsert_contact(&contact()).await,
        Ok(UpsertOutcome::Updated)
    );
}

#[tokio::test]
async fn a_429_waits_for_the_reset_before_retrying() {
    let (server, client) = server().await;
    let answers = Sequence::new(vec![
        ResponseTemplate::new(429)
            .insert_header("x-sib-ratelimit-limit", "10")
            .insert_header("x-sib-ratelimit-remaining", "0")
            .insert_header("x-sib-ratelimit-reset", "1")
            .set_body_json(json!({"code": "too_many_requests", "message": "Too many requests"})),
        ResponseTemplate::new(204),
    ]);
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(answers.clone())
        .mount(&server)
        .await;

    assert_eq!(client.send_event(&event()).await, Ok(()));
    let times = answers.times();
    assert_eq!(times.len(), 2, "retried once");
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retry came {:?} after the 429",
        times[1] - times[0]
    );
    let usage = client.governor().usage().take();
    assert_eq!((usage.calls, usage.throttled, usage.errors), (2, 1, 0));
    assert!(usage.waited >= Duration::from_millis(900), "{usage:?}");
}

#[tokio::test]
async fn remaining_zero_pauses_the_next_call_until_the_reset() {
    let (server, client) = server().await;
    let answers = Sequence::new(vec![
        ResponseTemplate::new(204)
            .insert_header("x-sib-ratelimit-remaining", "0")
            .insert_header("x-sib-ratelimit-reset", "1"),
        ResponseTemplate::new(204).insert_header("x-sib-ratelimit-remaining", "9"),
    ]);
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(answers.clone())
        .mount(&server)
        .await;

    client.send_event(&event()).await.expect("first call");
    client.send_event(&event()).await.expect("second call");
    let times = answers.times();
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "second call came {:?} after",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn a_500_is_retried_until_brevo_recovers() {
    let (server, client) = server().await;
    let answers = Sequence::new(vec![
        ResponseTemplate::new(500)
            .set_body_json(json!({"code": "internal_error", "message": "oops"})),
        ResponseTemplate::new(204),
    ]);
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(answers.clone())
        .mount(&server)
        .await;

    assert_eq!(
        client.upsert_contact(&contact()).await,
        Ok(UpsertOutcome::Updated)
    );
    let times = answers.times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(200),
        "backed off before retrying"
    );
    let usage = client.governor().usage().take();
    assert_eq!((usage.calls, usage.throttled, usage.errors), (2, 0, 1));
}

#[tokio::test]
async fn transient_failures_give_up_after_the_attempt_limit() {
    let (server, client) = server().await;
    let client = client.with_retry(RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    });
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    assert!(matches!(
        client.send_event(&event()).await,
        Err(BrevoError::Transient(_))
    ));
}

#[tokio::test]
async fn an_unreachable_brevo_is_transient() {
    // Nothing listens on port 9 of loopback (discard service is not run in test containers).
    let client = BrevoClient::new(KEY, "http://127.0.0.1:9/v3")
        .expect("builds")
        .with_retry(RetryPolicy::none());
    assert!(matches!(
        client.send_event(&event()).await,
        Err(BrevoError::Transient(_))
    ));
    let usage = client.governor().usage().take();
    assert_eq!((usage.calls, usage.throttled, usage.errors), (1, 0, 1));
}

#[tokio::test]
async fn the_sms_conflict_is_duplicate_sms_and_not_retried() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "duplicate_parameter",
            "message": "Unable to create contact, SMS is already associated with another Contact",
            "metadata": {"duplicate_identifiers": ["SMS"]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client.upsert_contact(&contact()).await,
        Err(BrevoError::DuplicateSms)
    );
}

#[tokio::test]
async fn an_invalid_email_is_rejected_and_not_retried() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": "invalid_parameter", "message": "Invalid email address"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client.upsert_contact(&contact()).await,
        Err(BrevoError::Rejected {
            status: 400,
            code: "invalid_parameter".into(),
            message: "Invalid email address".into()
        })
    );
}

#[tokio::test]
async fn events_batch_wraps_events_and_reads_a_207() {
    let (server, client) = server().await;
    let mut bad = event();
    bad.event_name = "ticket.created".into();
    let events = vec![event(), bad, event()];
    Mock::given(method("POST"))
        .and(path("/v3/events/batch"))
        .and(body_json(json!({ "events": events })))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "message": "Batch partially accepted",
            "count": 2,
            "errors": [{"index": 1, "code": "invalid_parameter", "message": "event_name: only alphanumerics, - and _"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let errors = client.send_events(&events).await.expect("partial success");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 1);
    assert!(
        matches!(&errors[0].1, BrevoError::Rejected { code, .. } if code == "invalid_parameter")
    );

    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/v3/events/batch"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"message": "Batch accepted.", "count": 3})),
        )
        .mount(&server)
        .await;
    assert_eq!(client.send_events(&events).await, Ok(Vec::new()));
}

#[tokio::test]
async fn list_removal_import_and_attributes_use_the_documented_shapes() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/lists/12/contacts/remove"))
        .and(body_json(json!({"emails": ["jane@example.com"]})))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(
                json!({"contacts": {"success": ["jane@example.com"], "failure": []}}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/lists/12/contacts/remove"))
        .and(body_json(json!({"extIds": ["zendesk:42"]})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"contacts": {"success": [], "failure": ["zendesk:42"]}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut by_id = ContactUpsert::new(&ContactKey::ExtId("zendesk:42".into()));
    by_id.attributes.insert("ZENDESK_ID".into(), json!("42"));
    Mock::given(method("POST"))
        .and(path("/v3/contacts/import"))
        .and(body_json(json!({
            "jsonBody": [
                {"email": "jane@example.com", "attributes": {"FIRSTNAME": "Jane", "SMS": "+14155552671"}},
                {"ext_id": "zendesk:42", "attributes": {"ZENDESK_ID": "42"}}
            ],
            "listIds": [7],
            "updateExistingContacts": true,
            "emptyContactsAttributes": false
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"processId": 78})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/contacts/attributes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"attributes": [
            {"name": "FIRSTNAME", "category": "normal", "type": "text"},
            {"name": "INTERESTS", "category": "normal", "type": "multiple-choice", "multiCategoryOptions": ["a"]},
            {"name": "GENDER", "category": "category", "enumeration": [{"value": 1, "label": "x"}]}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/attributes/normal/ZENDESK_ID"))
        .and(body_json(json!({"type": "text"})))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/account"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"email": "ops@yourco.com", "companyName": "Yourco"})),
        )
        .mount(&server)
        .await;

    client
        .remove_from_list(12, &ContactKey::Email("jane@example.com".into()))
        .await
        .expect("removed");
    client
        .remove_from_list(12, &ContactKey::ExtId("zendesk:42".into()))
        .await
        .expect("not in list is fine");
    assert_eq!(
        client.import_contacts(&[contact(), by_id], &[7]).await,
        Ok(78)
    );
    let attributes = client.list_attributes().await.expect("listed");
    assert_eq!(attributes.len(), 3);
    assert_eq!(attributes[1].kind.as_deref(), Some("multiple-choice"));
    assert_eq!(attributes[2].kind, None);
    client
        .create_attribute("ZENDESK_ID", "text")
        .await
        .expect("created");
    let account: Value = client.account().await.expect("account");
    assert_eq!(account["companyName"], json!("Yourco"));
}

#[tokio::test]
async fn one_governor_paces_several_clients() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let governor = Arc::new(RateGovernor::new(5, 36_000));
    let a = client.clone().with_governor(governor.clone());
    let b = client.with_governor(governor);
    let ev = event();
    let start = Instant::now();
    for _ in 0..4 {
        let (ra, rb) = tokio::join!(a.send_event(&ev), b.send_event(&ev));
        assert!(ra.is_ok() && rb.is_ok());
    }
    // 8 calls at 5/s: a burst of 5, then 3 more at 200 ms spacing.
    assert!(start.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn lists_and_folders_are_paged_created_and_deleted_with_the_documented_shapes() {
    use wiremock::matchers::query_param;
    let (server, client) = server().await;
    // 60 lists: a full first page of 50, then 10.
    let page = |from: i64, to: i64| {
        let lists: Vec<Value> = (from..to)
            .map(|id| json!({"id": id, "name": format!("list {id}"), "folderId": 1}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"lists": lists, "count": 60}))
    };
    Mock::given(method("GET"))
        .and(path("/v3/contacts/lists"))
        .and(query_param("offset", "0"))
        .and(query_param("limit", "50"))
        .respond_with(page(1, 51))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/contacts/lists"))
        .and(query_param("offset", "50"))
        .respond_with(page(51, 61))
        .mount(&server)
        .await;
    // An account without folders answers without the key.
    Mock::given(method("GET"))
        .and(path("/v3/contacts/folders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 0})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/folders"))
        .and(body_json(json!({"name": "deskbridge"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 3})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/lists"))
        .and(body_json(
            json!({"name": "deskbridge — gorgias", "folderId": 3}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 61})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v3/contacts/lists/61"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    let lists = client.contact_lists().await.expect("lists");
    assert_eq!(lists.len(), 60);
    assert_eq!(lists[59].name, "list 60");
    assert!(client.contact_folders().await.expect("folders").is_empty());
    let folder = client.create_folder("deskbridge").await.expect("folder");
    assert_eq!(folder, 3);
    let list = client
        .create_list("deskbridge — gorgias", folder)
        .await
        .expect("list");
    assert_eq!(list, 61);
    client.delete_list(61).await.expect("deleted");
    // A creation answered without an id is an error, not id 0.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/folders"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .mount(&server)
        .await;
    assert!(matches!(
        client.create_folder("deskbridge").await,
        Err(BrevoError::Rejected { status: 201, .. })
    ));
}
