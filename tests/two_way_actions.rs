//! Brevo automation → helpdesk ticket end to end through the local runner: the automation's
//! webhook step over HTTP (`POST /actions/<helpdesk>/tickets`), DynamoDB and SQS in moto, the
//! upsert worker, and the helpdesks on wiremock speaking their documented shapes: Zendesk
//! (tickets listed by `external_id`, created with `POST /api/v2/tickets.json`), Intercom
//! (`POST /tickets/search`, `POST /tickets`) and Gorgias (`GET /api/tickets?external_id=`,
//! `POST /api/tickets`).

mod common;

use common::runner::Runner;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskbridge_shared::config::Settings;
use deskbridge_shared::state::{self, DynamoStateStore, StateStore};
use deskbridge_shared::testkit::tickets::{GorgiasTickets, IntercomTickets};
use deskbridge_shared::twoway;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "deskbridge-test-actions-token";
const ZENDESK_TOKEN: &str = "zd-oauth-token";

/// Posts `body` to `/actions/<helpdesk>/tickets` with `authorization` (none when `None`).
async fn post(
    runner: &Runner,
    helpdesk: &str,
    authorization: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let headers: Vec<(&str, String)> = authorization
        .map(|value| ("authorization", value.to_string()))
        .into_iter()
        .collect();
    runner
        .post(&format!("/actions/{helpdesk}/tickets"), &headers, body)
        .await
}

fn bearer() -> Option<&'static str> {
    Some("Bearer deskbridge-test-actions-token")
}

/// A local run whose Zendesk API is `helpdesk`, with the actions token and the configuration
/// file `config` (written beside the test's other temporary files).
fn settings(
    res: &deskbridge_shared::infra::Bootstrapped,
    helpdesk: &MockServer,
    config: Option<&str>,
) -> Settings {
    let api = vec![
        ("ZENDESK_BASE_URL", helpdesk.uri()),
        ("ZENDESK_OAUTH_TOKEN", ZENDESK_TOKEN.to_string()),
    ];
    settings_with(res, api, config)
}

/// A local run with the actions token, the helpdesk variables `api` and the configuration file
/// `config`.
fn settings_with(
    res: &deskbridge_shared::infra::Bootstrapped,
    api: Vec<(&'static str, String)>,
    config: Option<&str>,
) -> Settings {
    let mut extra = vec![
        ("DESKBRIDGE_ACTIONS_TOKEN", TOKEN.to_string()),
        // Retried messages come back within a second or two.
        ("RETRY_MAX_DELAY_SECONDS", "1".to_string()),
    ];
    extra.extend(api);
    if let Some(text) = config {
        let file = std::env::temp_dir().join(format!("{}.yaml", res.table));
        std::fs::write(&file, text).expect("config written");
        extra.push((
            "DESKBRIDGE_CONFIG",
            file.to_str().expect("utf-8").to_string(),
        ));
    }
    let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings = common::settings(res, None, &pairs);
    // The settings hold the file's content now.
    if let Some((_, file)) = extra.iter().find(|(k, _)| *k == "DESKBRIDGE_CONFIG") {
        std::fs::remove_file(file).ok();
    }
    settings
}

/// Zendesk's tickets, held like Zendesk holds them: `GET /api/v2/tickets.json?external_id=…`
/// lists the ones with that `external_id`, `POST /api/v2/tickets.json` adds one (201).
#[derive(Clone, Default)]
struct ZendeskTickets {
    tickets: Arc<Mutex<Vec<Value>>>,
}

impl Respond for ZendeskTickets {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(mut tickets) = self.tickets.lock() else {
            return ResponseTemplate::new(500);
        };
        if request.method.as_str() == "GET" {
            let wanted = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "external_id")
                .map(|(_, v)| v.into_owned());
            let found: Vec<Value> = tickets
                .iter()
                .filter(|t| t["external_id"].as_str() == wanted.as_deref())
                .cloned()
                .collect();
            let count = found.len();
            return ResponseTemplate::new(200).set_body_json(json!({
                "tickets": found, "next_page": null, "previous_page": null, "count": count
            }));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        let mut ticket = body["ticket"].clone();
        let id = 35_436 + tickets.len() as u64;
        ticket["id"] = json!(id);
        ticket["status"] = json!("new");
        ticket["requester_id"] = json!(20_978_392);
        tickets.push(ticket.clone());
        ResponseTemplate::new(201)
            .set_body_json(json!({"ticket": ticket, "audit": {"id": id * 10, "events": []}}))
    }
}

async fn mount_zendesk(helpdesk: &MockServer) -> ZendeskTickets {
    let tickets = ZendeskTickets::default();
    Mock::given(path("/api/v2/tickets.json"))
        .and(header("authorization", format!("Bearer {ZENDESK_TOKEN}")))
        .respond_with(tickets.clone())
        .mount(helpdesk)
        .await;
    tickets
}

async fn queue_depth(sdk: &aws_config::SdkConfig, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(&aws_sdk_sqs::Client::new(sdk), url)
        .await
        .expect("queue attributes")
}

async fn creates(helpdesk: &MockServer) -> Vec<Request> {
    helpdesk
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/api/v2/tickets.json")
        .collect()
}

/// The body of the sample `events/brevo-automation-ticket.json`.
fn sample_body() -> String {
    let text = include_str!("../events/brevo-automation-ticket.json");
    let event: Value = serde_json::from_str(text).expect("the sample is JSON");
    event["body"].as_str().expect("a body").to_string()
}

const CONFIG: &str = "actions:\n  zendesk:\n    subject: \"{{subject}}\"\n    \
                      comment: \"{{comment}}\\n\\nPlan: {{contact.PLAN}}\"\n    \
                      tags: [brevo_automation, renewal]\n    priority: high\n";

#[tokio::test]
async fn an_automation_call_delivered_three_times_opens_one_zendesk_ticket() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "actions").await;
    let helpdesk = MockServer::start().await;
    let zendesk = mount_zendesk(&helpdesk).await;
    let runner = Runner::start(&sdk, settings(&res, &helpdesk, Some(CONFIG))).await;
    let body = sample_body();

    // Forged or missing tokens: refused, nothing queued. Malformed bodies: 400.
    for forged in [Some("Bearer guessed"), Some("Basic ZGVza2JyaWRnZQ=="), None] {
        let (status, _) = post(&runner, "zendesk", forged, &body).await;
        assert_eq!(status, 401, "{forged:?}");
    }
    let (status, _) = post(&runner, "zendesk", bearer(), "{\"subject\": \"no email\"}").await;
    assert_eq!(status, 400);
    let (status, _) = post(&runner, "intercom", bearer(), &body).await;
    assert_eq!(
        status, 404,
        "Intercom's tickets are off without a ticket type"
    );
    assert_eq!(queue_depth(&sdk, &res.upsert_queue_url).await, 0);

    // The first delivery is queued and opens the ticket.
    let (s1, first) = post(&runner, "zendesk", bearer(), &body).await;
    assert_eq!(
        (s1, first["status"].as_str()),
        (202, Some("queued")),
        "{first}"
    );
    let external_id = first["external_id"]
        .as_str()
        .expect("an external_id")
        .to_string();
    common::eventually(Duration::from_secs(30), || async {
        (creates(&helpdesk).await.len() == 1 && queue_depth(&sdk, &res.upsert_queue_url).await == 0)
            .then_some(())
    })
    .await
    .expect("the ticket was opened");

    // The second delivery: the route's dedupe answers, nothing is queued.
    let (s2, second) = post(&runner, "zendesk", bearer(), &body).await;
    assert_eq!((s2, second["status"].as_str()), (200, Some("duplicate")));

    // The third comes after both of deskbridge's records are gone: the route's dedupe record
    // (expired, or lost in a crash before it was marked) and the upsert's mark of the opened
    // ticket (a crash between Zendesk's create and the mark). It is queued again, and the
    // upsert finds the ticket by its external_id instead of opening a second one.
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), res.table.clone());
    let key = state::delivery_key(
        &twoway::brevo_source(),
        &format!("ticket:zendesk:{external_id}"),
    );
    store
        .release(&key)
        .await
        .expect("the dedupe record released");
    store
        .release(&format!("ticket#zendesk#{external_id}"))
        .await
        .expect("the ticket's mark released");
    let (s3, third) = post(&runner, "zendesk", bearer(), &body).await;
    assert_eq!(
        (s3, third["status"].as_str()),
        (202, Some("queued")),
        "{third}"
    );
    assert_eq!(third["external_id"], external_id.as_str());
    common::eventually(Duration::from_secs(30), || async {
        let looked_up = helpdesk
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.method.as_str() == "GET")
            .count();
        (looked_up >= 2 && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("the third delivery was carried out");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let created = creates(&helpdesk).await;
    assert_eq!(created.len(), 1, "one ticket: {created:?}");
    let sent: Value = serde_json::from_slice(&created[0].body).expect("JSON");
    assert_eq!(
        sent,
        json!({"ticket": {
            "subject": "Renewal call for Jane",
            "comment": {"body": "Jane's plan renews in 14 days and she has not opened the renewal \
                                 emails. Please call her.\n\nPlan: Pro"},
            "requester": {"email": "jane.doe@example.com", "name": "Jane Doe"},
            "external_id": external_id,
            "tags": ["brevo_automation", "renewal"],
            "priority": "high"
        }})
    );
    assert_eq!(zendesk.tickets.lock().map(|t| t.len()).unwrap_or(0), 1);
    assert_eq!(queue_depth(&sdk, &res.upsert_dlq_url).await, 0);
    runner.stop().await;
}

#[tokio::test]
async fn without_the_token_the_route_is_404() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "actions-off").await;
    let helpdesk = MockServer::start().await;
    let uri = helpdesk.uri();
    let settings = common::settings(
        &res,
        None,
        &[
            ("ZENDESK_BASE_URL", &uri),
            ("ZENDESK_OAUTH_TOKEN", ZENDESK_TOKEN),
        ],
    );
    let runner = Runner::start(&sdk, settings).await;
    let (status, answer) = post(&runner, "zendesk", bearer(), &sample_body()).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(queue_depth(&sdk, &res.upsert_queue_url).await, 0);
    runner.stop().await;
}

#[tokio::test]
async fn a_zendesk_outage_delays_the_ticket_but_does_not_lose_it() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "actions-outage").await;
    let helpdesk = MockServer::start().await;
    // Zendesk is down for the first two look-ups, then answers.
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&helpdesk)
        .await;
    let zendesk = mount_zendesk(&helpdesk).await;
    let runner = Runner::start(&sdk, settings(&res, &helpdesk, None)).await;

    let body = json!({"email": "bob@example.com", "workflow_id": 9,
        "attributes": {"FIRSTNAME": "Bob"}, "comment": "Bob asked for a call."});
    let (status, answer) = post(&runner, "zendesk", bearer(), &body.to_string()).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("queued")));

    common::eventually(Duration::from_secs(60), || async {
        (creates(&helpdesk).await.len() == 1 && queue_depth(&sdk, &res.upsert_queue_url).await == 0)
            .then_some(())
    })
    .await
    .expect("the ticket was opened once Zendesk answered");
    let lookups = helpdesk
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(
        lookups, 3,
        "two refused look-ups, then the one that answered"
    );
    let tickets = zendesk
        .tickets
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    assert_eq!(tickets.len(), 1);
    assert_eq!(
        tickets[0]["requester"],
        json!({"email": "bob@example.com", "name": "Bob"})
    );
    assert_eq!(tickets[0]["subject"], "Follow-up from a Brevo automation");
    assert_eq!(tickets[0]["comment"]["body"], "Bob asked for a call.");
    assert_eq!(
        queue_depth(&sdk, &res.upsert_dlq_url).await,
        0,
        "nothing dead-lettered"
    );
    runner.stop().await;
}

/// Posts the same automation call to `/actions/<helpdesk>/tickets` three times: the first
/// opens the ticket, the second is a duplicate, the third comes after the route's dedupe record
/// and the upsert's mark are both gone. `opened` counts the helpdesk's tickets.
async fn three_deliveries<F, Fut>(
    runner: &Runner,
    sdk: &aws_config::SdkConfig,
    res: &deskbridge_shared::infra::Bootstrapped,
    helpdesk: &str,
    body: &str,
    looked_up: F,
) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let (s1, first) = post(runner, helpdesk, bearer(), body).await;
    assert_eq!(
        (s1, first["status"].as_str()),
        (202, Some("queued")),
        "{first}"
    );
    let external_id = first["external_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    common::eventually(Duration::from_secs(30), || async {
        (looked_up().await == 1 && queue_depth(sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("the first delivery was carried out");
    let (s2, second) = post(runner, helpdesk, bearer(), body).await;
    assert_eq!((s2, second["status"].as_str()), (200, Some("duplicate")));
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), res.table.clone());
    let key = state::delivery_key(
        &twoway::brevo_source(),
        &format!("ticket:{helpdesk}:{external_id}"),
    );
    store
        .release(&key)
        .await
        .expect("the dedupe record released");
    store
        .release(&format!("ticket#{helpdesk}#{external_id}"))
        .await
        .expect("the ticket's mark released");
    let (s3, third) = post(runner, helpdesk, bearer(), body).await;
    assert_eq!(
        (s3, third["status"].as_str()),
        (202, Some("queued")),
        "{third}"
    );
    common::eventually(Duration::from_secs(30), || async {
        (looked_up().await >= 2 && queue_depth(sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("the third delivery was carried out");
    external_id
}

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

const INTERCOM_AND_GORGIAS: &str = "actions:\n  intercom:\n    ticket_type_id: \"1234\"\n    \
                                    comment: \"{{comment}} (plan {{contact.PLAN}})\"\n  \
                                    gorgias:\n    tags: [brevo_automation, billing]\n";

#[tokio::test]
async fn an_automation_call_delivered_three_times_opens_one_intercom_and_one_gorgias_ticket() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "actions-ic-gg").await;
    let helpdesk = MockServer::start().await;
    let intercom = IntercomTickets::new("ic-token");
    intercom.mount(&helpdesk).await;
    let gorgias = GorgiasTickets::new("api@shop.example", "gg-key");
    gorgias.mount(&helpdesk).await;
    let uri = helpdesk.uri();
    let api = vec![
        ("INTERCOM_BASE_URL", uri.clone()),
        ("INTERCOM_ACCESS_TOKEN", "ic-token".to_string()),
        ("GORGIAS_BASE_URL", uri),
        ("GORGIAS_EMAIL", "api@shop.example".to_string()),
        ("GORGIAS_API_KEY", "gg-key".to_string()),
    ];
    let runner = Runner::start(&sdk, settings_with(&res, api, Some(INTERCOM_AND_GORGIAS))).await;
    let text = include_str!("../events/brevo-automation-ticket-intercom.json");
    let event: Value = serde_json::from_str(text).expect("the sample is JSON");
    let body = event["body"].as_str().expect("a body").to_string();

    let (status, _) = post(&runner, "intercom", Some("Bearer guessed"), &body).await;
    assert_eq!(status, 401);

    let ic_key = three_deliveries(&runner, &sdk, &res, "intercom", &body, || {
        received(&helpdesk, "POST", "/tickets/search")
    })
    .await;
    let gg_key = three_deliveries(&runner, &sdk, &res, "gorgias", &body, || {
        received(&helpdesk, "GET", "/api/tickets")
    })
    .await;
    assert_ne!(ic_key, gg_key);
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(
        received(&helpdesk, "POST", "/tickets").await,
        1,
        "one Intercom ticket"
    );
    assert_eq!(
        received(&helpdesk, "POST", "/api/tickets").await,
        1,
        "one Gorgias ticket"
    );
    let ic = intercom.held();
    assert_eq!(ic.len(), 1);
    assert_eq!(ic[0]["ticket_type"]["id"], "1234");
    assert_eq!(
        ic[0]["contacts"]["contacts"][0]["email"],
        "jane.doe@example.com"
    );
    assert_eq!(
        ic[0]["ticket_attributes"]["_default_title_"],
        "Jane asked about her invoice"
    );
    assert_eq!(
        ic[0]["ticket_attributes"]["_default_description_"],
        format!(
            "Jane clicked \"I need help with my invoice\" in the December billing email. \
             Please reach out. (plan Pro)\n\nReference: {ic_key}"
        )
    );
    let gg = gorgias.held();
    assert_eq!(gg.len(), 1);
    assert_eq!(gg[0]["external_id"], gg_key.as_str());
    assert_eq!(
        gg[0]["customer"],
        json!({"email": "jane.doe@example.com", "id": 1302})
    );
    assert_eq!(gg[0]["channel"], "api");
    assert_eq!(
        gg[0]["tags"],
        json!([{"name": "brevo_automation"}, {"name": "billing"}])
    );
    let created: Vec<Value> = helpdesk
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/api/tickets")
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect();
    assert_eq!(
        created[0]["messages"][0],
        json!({
            "channel": "api", "via": "api", "from_agent": false,
            "sender": {"email": "jane.doe@example.com"},
            "subject": "Jane asked about her invoice",
            "body_text": "Jane clicked \"I need help with my invoice\" in the December billing email. Please reach out.",
            "body_html": "Jane clicked &quot;I need help with my invoice&quot; in the December billing email. Please reach out."
        })
    );
    runner.stop().await;
}
