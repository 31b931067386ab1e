//! Two-way end to end through the local runner: Brevo's marketing webhooks over HTTP, DynamoDB
//! and SQS in moto, the upsert worker, and Zendesk, Intercom and Gorgias on wiremock speaking
//! their documented shapes (user search, user tags and user deletion; contact search and
//! contact update; customer list by email and customer update).

mod common;

use common::runner::Runner;
use std::time::Duration;

use deskbridge_shared::config::Settings;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "deskbridge-test-brevo-token";
const KEY_NAME: &str = "deskbridge-production";
const ZENDESK_TOKEN: &str = "zd-oauth-token";
const INTERCOM_TOKEN: &str = "ic-access-token";

/// Posts `body` to `/webhooks/brevo` with `authorization` (none when `None`).
async fn post(runner: &Runner, authorization: Option<&str>, body: &Value) -> (u16, Value) {
    let headers: Vec<(&str, String)> = authorization
        .map(|value| ("authorization", value.to_string()))
        .into_iter()
        .collect();
    runner
        .post("/webhooks/brevo", &headers, body.to_string())
        .await
}

fn bearer() -> Option<&'static str> {
    Some("Bearer deskbridge-test-brevo-token")
}

/// Settings of a local run whose Zendesk and Intercom APIs are `helpdesk`, with Brevo's webhook
/// token and API key name set.
fn settings(res: &deskbridge_shared::infra::Bootstrapped, helpdesk: &MockServer) -> Settings {
    let uri = helpdesk.uri();
    common::settings(
        res,
        None,
        &[
            ("BREVO_WEBHOOK_TOKEN", TOKEN),
            ("BREVO_API_KEY_NAME", KEY_NAME),
            ("ZENDESK_BASE_URL", &uri),
            ("ZENDESK_OAUTH_TOKEN", ZENDESK_TOKEN),
            ("INTERCOM_BASE_URL", &uri),
            ("INTERCOM_ACCESS_TOKEN", INTERCOM_TOKEN),
            // Retried messages come back within a second or two.
            ("RETRY_MAX_DELAY_SECONDS", "1"),
        ],
    )
}

/// Zendesk's user search answering `users` for `email`.
async fn zendesk_search(helpdesk: &MockServer, email: &str, users: Value) {
    Mock::given(method("GET"))
        .and(path("/api/v2/users/search.json"))
        .and(query_param("query", format!("email:{email}")))
        .and(header("authorization", format!("Bearer {ZENDESK_TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "users": users, "next_page": null, "previous_page": null, "count": 1
        })))
        .mount(helpdesk)
        .await;
}

/// Zendesk adding tags to any user (`PUT …/tags.json` answers the user's tags).
async fn zendesk_tags_accepted(helpdesk: &MockServer) {
    Mock::given(method("PUT"))
        .and(wiremock::matchers::path_regex(
            r"^/api/v2/users/\d+/tags\.json$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tags": ["vip"]})))
        .mount(helpdesk)
        .await;
}

/// Intercom's contact search answering `contacts`, and contact updates accepted.
async fn intercom(helpdesk: &MockServer, email: &str, contacts: Value) {
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .and(header("authorization", format!("Bearer {INTERCOM_TOKEN}")))
        .and(wiremock::matchers::body_partial_json(json!({
            "query": {"field": "email", "operator": "=", "value": email}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": contacts, "total_count": 1,
            "pages": {"type": "pages", "page": 1, "per_page": 50, "total_pages": 1}
        })))
        .mount(helpdesk)
        .await;
    Mock::given(method("PUT"))
        .and(wiremock::matchers::path_regex(r"^/contacts/[0-9a-f]+$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"type": "contact", "id": "x"})),
        )
        .mount(helpdesk)
        .await;
}

fn unsubscribed(email: &str, ts: i64) -> Value {
    json!({"id": 1_234_567, "camp_id": 12, "email": email, "campaign name": "December newsletter",
        "date_sent": "2026-12-07 09:00:00", "date_event": "2026-12-07 10:12:07",
        "event": "unsubscribed", "tag": "", "ts_sent": ts - 4327, "ts_event": ts,
        "list_id": [3, 42], "ts": ts})
}

async fn queue_depth(sdk: &aws_config::SdkConfig, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(&aws_sdk_sqs::Client::new(sdk), url)
        .await
        .expect("queue attributes")
}

/// The requests `helpdesk` received with `method` on paths starting with `prefix`.
async fn calls(helpdesk: &MockServer, method: &str, prefix: &str) -> Vec<Request> {
    helpdesk
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == method && r.url.path().starts_with(prefix))
        .collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).expect("a JSON body")
}

#[tokio::test]
async fn an_unsubscribe_reaches_intercom_and_zendesk_once_and_echoes_and_forgeries_do_not() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "two-way").await;
    let helpdesk = MockServer::start().await;
    zendesk_search(
        &helpdesk,
        "jane.doe@example.com",
        json!([{"id": 35436, "email": "jane.doe@example.com", "role": "end-user",
                "tags": ["vip"]}]),
    )
    .await;
    zendesk_tags_accepted(&helpdesk).await;
    intercom(
        &helpdesk,
        "jane.doe@example.com",
        json!([{"type": "contact", "id": "6329bd9ffe4e", "role": "user",
                "email": "jane.doe@example.com", "unsubscribed_from_emails": false}]),
    )
    .await;
    let runner = Runner::start(&sdk, settings(&res, &helpdesk)).await;

    // Forged: a wrong token, another scheme, no token at all. Refused, nothing queued.
    let body_of = unsubscribed("Jane.Doe@Example.com", 1_796_638_327);
    for forged in [Some("Bearer guessed"), Some("Basic ZGVza2JyaWRnZQ=="), None] {
        let (status, _) = post(&runner, forged, &body_of).await;
        assert_eq!(status, 401, "{forged:?}");
    }
    assert_eq!(queue_depth(&sdk, &res.upsert_queue_url).await, 0);

    // Echoes of deskbridge's own writes: acknowledged, ignored.
    let echoes = json!([
        {"event": "contact_updated", "email": "echo@example.com", "key": "k", "ts": 1_796_638_000,
         "content": [{"FIRSTNAME": "Echo"}], "api_key_name": KEY_NAME},
        {"event": "unsubscribed", "email": "echo@example.com", "ts_event": 1_796_638_001,
         "api_key_name": KEY_NAME}
    ]);
    let (status, answer) = post(&runner, bearer(), &echoes).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    assert_eq!(answer["echoes"], 2);

    // The unsubscribe, delivered twice: queued once.
    let (s1, first) = post(&runner, bearer(), &body_of).await;
    let (s2, second) = post(&runner, bearer(), &body_of).await;
    assert_eq!(
        (s1, first["status"].as_str()),
        (200, Some("queued")),
        "{first}"
    );
    assert_eq!((s2, second["status"].as_str()), (200, Some("duplicate")));

    common::eventually(Duration::from_secs(30), || async {
        let tagged = !calls(&helpdesk, "PUT", "/api/v2/users/").await.is_empty();
        let unsubscribed = !calls(&helpdesk, "PUT", "/contacts/").await.is_empty();
        (tagged && unsubscribed && queue_depth(&sdk, &res.upsert_queue_url).await == 0)
            .then_some(())
    })
    .await
    .expect("the unsubscribe reached both helpdesks");
    // Give a second delivery, had one been queued, the time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let tags = calls(&helpdesk, "PUT", "/api/v2/users/").await;
    assert_eq!(tags.len(), 1, "one tag write: {tags:?}");
    assert_eq!(tags[0].url.path(), "/api/v2/users/35436/tags.json");
    assert_eq!(body(&tags[0]), json!({"tags": ["brevo_unsubscribed"]}));
    assert_eq!(
        tags[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer zd-oauth-token")
    );
    let updates = calls(&helpdesk, "PUT", "/contacts/").await;
    assert_eq!(updates.len(), 1, "one contact update: {updates:?}");
    assert_eq!(updates[0].url.path(), "/contacts/6329bd9ffe4e");
    assert_eq!(body(&updates[0]), json!({"unsubscribed_from_emails": true}));
    // Nothing was asked about the echoes' person.
    let searched_echo = helpdesk
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .any(|r| {
            String::from_utf8_lossy(&r.body).contains("echo@example.com")
                || r.url.as_str().contains("echo%40example.com")
        });
    assert!(!searched_echo);
    runner.stop().await;
}

#[tokio::test]
async fn a_zendesk_outage_delays_a_hard_bounce_write_back_but_loses_nothing() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "two-way-outage").await;
    let helpdesk = MockServer::start().await;
    // Zendesk is down for the first two searches, then answers.
    Mock::given(method("GET"))
        .and(path("/api/v2/users/search.json"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&helpdesk)
        .await;
    zendesk_search(
        &helpdesk,
        "bounced@example.com",
        json!([{"id": 901, "email": "bounced@example.com", "role": "end-user"}]),
    )
    .await;
    Mock::given(method("PUT"))
        .and(path("/api/v2/users/901/tags.json"))
        .and(body_json(json!({"tags": ["brevo_hard_bounce"]})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"tags": ["brevo_hard_bounce"]})),
        )
        .mount(&helpdesk)
        .await;
    // Intercom has nobody with that email: a no-op, not an error.
    intercom(&helpdesk, "bounced@example.com", json!([])).await;
    let runner = Runner::start(&sdk, settings(&res, &helpdesk)).await;

    let bounce = json!({"id": 1_234_567, "camp_id": 12, "email": "bounced@example.com",
        "campaign name": "December newsletter", "date_sent": "2026-12-07 09:00:00",
        "date_event": "2026-12-07 09:00:04", "event": "hard_bounce", "tag": "",
        "ts_sent": 1_796_634_000, "ts_event": 1_796_634_004, "ts": 1_796_634_004,
        "reason": "550 5.1.1 mailbox does not exist", "sending_ip": "185.41.28.109"});
    let (status, answer) = post(&runner, bearer(), &bounce).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("queued")));

    common::eventually(Duration::from_secs(60), || async {
        let tagged = !calls(&helpdesk, "PUT", "/api/v2/users/901/")
            .await
            .is_empty();
        (tagged && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("the tag was written once Zendesk answered");
    let searches = calls(&helpdesk, "GET", "/api/v2/users/search.json").await;
    assert_eq!(
        searches.len(),
        3,
        "two refused searches, then the one that answered"
    );
    assert_eq!(calls(&helpdesk, "PUT", "/api/v2/users/").await.len(), 1);
    assert!(
        calls(&helpdesk, "PUT", "/contacts/").await.is_empty(),
        "nobody to update in Intercom"
    );
    // Nothing was dead-lettered.
    assert_eq!(queue_depth(&sdk, &res.upsert_dlq_url).await, 0);
    runner.stop().await;
}

/// Settings of a local run with Brevo's webhook token and API key name, the helpdesk variables
/// `extra`, and the configuration file `config` (written to a file of its own), when given.
fn settings_with(
    res: &deskbridge_shared::infra::Bootstrapped,
    extra: &[(&str, &str)],
    config: Option<(&str, &str)>,
) -> Settings {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("BREVO_WEBHOOK_TOKEN", TOKEN),
        ("BREVO_API_KEY_NAME", KEY_NAME),
        ("RETRY_MAX_DELAY_SECONDS", "1"),
    ];
    pairs.extend_from_slice(extra);
    let path;
    if let Some((name, text)) = config {
        path = std::env::temp_dir()
            .join(format!("deskbridge-{name}-{}.yaml", std::process::id()))
            .to_string_lossy()
            .into_owned();
        std::fs::write(&path, text).expect("config file written");
        pairs.push(("DESKBRIDGE_CONFIG", path.as_str()));
    }
    common::settings(res, None, &pairs)
}

fn contact_deleted(email: &str, ts: i64) -> Value {
    json!({"id": 1_234_567, "email": email, "event": "contact_deleted", "key": "brevo-key-id",
        "list_id": [35], "date": "2026-12-07 11:02:31", "ts": ts})
}

#[tokio::test]
async fn an_unsubscribe_adds_a_line_to_the_gorgias_customers_note_and_keeps_the_note() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "two-way-gorgias").await;
    let helpdesk = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/customers"))
        .and(query_param("email", "ann.lee@example.com"))
        .and(wiremock::matchers::basic_auth(
            "agent@shop.example",
            "gorgias-api-key",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "uri": "/api/customers?email=ann.lee%40example.com",
            "data": [{"id": 3924, "email": "ann.lee@example.com", "name": "Ann Lee",
                      "external_id": "customer-84203241", "language": "en",
                      "note": "VIP: call before refunds",
                      "created_datetime": "2026-04-13T03:27:56.973873",
                      "updated_datetime": "2026-12-01T10:00:00.000000"}],
            "meta": {"prev_cursor": null, "next_cursor": null}
        })))
        .mount(&helpdesk)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/customers/3924"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 3924, "email": "ann.lee@example.com",
            "note": "VIP: call before refunds\nBrevo: unsubscribed from marketing emails"
        })))
        .mount(&helpdesk)
        .await;
    let uri = helpdesk.uri();
    let gorgias = [
        ("GORGIAS_BASE_URL", uri.as_str()),
        ("GORGIAS_EMAIL", "agent@shop.example"),
        ("GORGIAS_API_KEY", "gorgias-api-key"),
    ];
    let runner = Runner::start(&sdk, settings_with(&res, &gorgias, None)).await;

    let (status, answer) = post(
        &runner,
        bearer(),
        &unsubscribed("Ann.Lee@Example.com", 1_796_640_000),
    )
    .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("queued")),
        "{answer}"
    );
    common::eventually(Duration::from_secs(30), || async {
        let written = !calls(&helpdesk, "PUT", "/api/customers/").await.is_empty();
        (written && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("the note reached Gorgias");

    let updates = calls(&helpdesk, "PUT", "/api/customers/").await;
    assert_eq!(updates.len(), 1, "one customer update: {updates:?}");
    assert_eq!(updates[0].url.path(), "/api/customers/3924");
    assert_eq!(
        body(&updates[0]),
        json!({"note": "VIP: call before refunds\nBrevo: unsubscribed from marketing emails"}),
        "the agents' note is kept and the line added"
    );
    assert!(
        updates[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Basic ")),
        "Basic authentication, as the sync"
    );
    assert!(
        calls(&helpdesk, "DELETE", "/").await.is_empty(),
        "nothing deleted"
    );
    assert_eq!(queue_depth(&sdk, &res.upsert_dlq_url).await, 0);
    runner.stop().await;
}

/// Zendesk's user search answering an end-user and an agent with the same email, and user
/// deletions accepted (`DELETE /api/v2/users/{id}.json` answers the user, now inactive).
async fn zendesk_end_user_and_agent(helpdesk: &MockServer, email: &str) {
    zendesk_search(
        helpdesk,
        email,
        json!([
            {"id": 35436, "email": email, "role": "end-user", "active": true},
            {"id": 35437, "email": email, "role": "agent", "active": true}
        ]),
    )
    .await;
    Mock::given(method("DELETE"))
        .and(wiremock::matchers::path_regex(r"^/api/v2/users/\d+\.json$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "user": {"id": 35436, "email": email, "role": "end-user", "active": false}
        })))
        .mount(helpdesk)
        .await;
}

#[tokio::test]
async fn a_contact_deletion_deletes_the_zendesk_end_user_but_not_the_agent_when_asked_to() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "two-way-forget").await;
    let helpdesk = MockServer::start().await;
    zendesk_end_user_and_agent(&helpdesk, "gone@example.com").await;
    let uri = helpdesk.uri();
    let zendesk = [
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_TOKEN", ZENDESK_TOKEN),
    ];
    let config = "brevo_to_helpdesk:\n  zendesk:\n    on_contact_deleted: delete\n";
    let runner = Runner::start(
        &sdk,
        settings_with(&res, &zendesk, Some(("forget-on", config))),
    )
    .await;

    // Deskbridge's own deletion coming back is an echo: nothing queued.
    let mut echo = contact_deleted("gone@example.com", 1_796_641_000);
    echo["api_key_name"] = json!(KEY_NAME);
    let (status, answer) = post(&runner, bearer(), &echo).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));

    let deletion = contact_deleted("Gone@Example.com", 1_796_641_351);
    let (status, answer) = post(&runner, bearer(), &deletion).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("queued")),
        "{answer}"
    );
    common::eventually(Duration::from_secs(30), || async {
        let deleted = !calls(&helpdesk, "DELETE", "/api/v2/users/")
            .await
            .is_empty();
        (deleted && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("the deletion reached Zendesk");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let deletions = calls(&helpdesk, "DELETE", "/api/v2/users/").await;
    assert_eq!(deletions.len(), 1, "the end-user only: {deletions:?}");
    assert_eq!(deletions[0].url.path(), "/api/v2/users/35436.json");
    assert_eq!(
        deletions[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer zd-oauth-token")
    );
    assert!(
        calls(&helpdesk, "PUT", "/").await.is_empty(),
        "a deletion tags nobody"
    );
    assert_eq!(queue_depth(&sdk, &res.upsert_dlq_url).await, 0);
    runner.stop().await;
}

#[tokio::test]
async fn a_contact_deletion_deletes_nothing_with_the_default_configuration() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "two-way-forget-off").await;
    let helpdesk = MockServer::start().await;
    zendesk_end_user_and_agent(&helpdesk, "kept@example.com").await;
    let uri = helpdesk.uri();
    let zendesk = [
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_TOKEN", ZENDESK_TOKEN),
    ];
    let runner = Runner::start(&sdk, settings_with(&res, &zendesk, None)).await;

    let (status, answer) = post(
        &runner,
        bearer(),
        &contact_deleted("kept@example.com", 1_796_642_000),
    )
    .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    assert_eq!(answer["ignored"][0]["event"], "contact_deleted");
    // Give a queued message, had there been one, the time to be carried out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(queue_depth(&sdk, &res.upsert_queue_url).await, 0);
    let asked = calls(&helpdesk, "GET", "/api/v2/users/").await;
    assert!(asked.is_empty(), "Zendesk was not even asked: {asked:?}");
    assert!(calls(&helpdesk, "DELETE", "/").await.is_empty());
    runner.stop().await;
}
