//! Every row of the seeds' mappings end to end: a helpdesk payload in (the webhook parsers), the
//! seed's YAML as configuration, the Brevo requests out (wiremock Brevo).
//!
//! The Intercom seed's `company.*` rows need a company look-up through the Intercom API; they
//! are covered with the look-up's own tests.

use chrono::{TimeZone, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::config::file as config_file;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::{Parsed, parse_webhook};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryStateStore, NoLookup};
use deskbridge_shared::model::{Job, Origin, Source};
use deskbridge_shared::testkit::brevo::{accepting, bodies, fast_client};
use deskbridge_upsert::{Message, Upserter};
use serde_json::{Value, json};
use wiremock::MockServer;

/// The Gorgias seed's configuration, as the seed document gives it.
const GORGIAS_SEED: &str = r#"
connectors:
  gorgias:
    enabled: true
    domain: "yourstore.gorgias.com"
    sync: { customers: true, tickets: true, satisfaction_surveys: true, tags: true }
    lists: { all_support_contacts: 35, satisfied_customers: 36, dissatisfied_customers: 37 }
field_mapping:
  id: GORGIAS_ID
  email: email
  name: FIRSTNAME
  phone: SMS
  nb_tickets: TICKET_COUNT
  last_ticket_date: LAST_SUPPORT_DATE
  last_ticket_channel: LAST_SUPPORT_CHANNEL
  avg_response_time: AVG_RESPONSE_TIME
  last_satisfaction_score: CSAT_SCORE
  satisfaction_count: CSAT_RESPONSES
  customer_type: CUSTOMER_TYPE
  vip_status: VIP_STATUS
event_mapping:
  ticket.created: SUPPORT_TICKET_OPENED
  ticket.closed: SUPPORT_TICKET_RESOLVED
  ticket.reopened: SUPPORT_TICKET_REOPENED
  satisfaction_survey.created: CSAT_SURVEY_SENT
  satisfaction_survey.responded: CSAT_SUBMITTED
  customer.created: SUPPORT_CUSTOMER_CREATED
"#;

/// The Intercom seed's field mapping (its company rows need the company look-up).
const INTERCOM_SEED: &str = r#"
connectors:
  intercom:
    lists: { all_users: 38 }
field_mapping:
  email: email
  name: FULLNAME
  phone: SMS
  signed_up_at: SIGNUP_DATE
  last_seen_at: LAST_ACTIVE
  session_count: SESSION_COUNT
  unsubscribed_from_emails: UNSUBSCRIBED
  custom_attributes.plan_tier: PLAN_TIER
  custom_attributes.feature_usage: FEATURE_USAGE
"#;

fn fixture(path: &str) -> String {
    let full = format!(
        "{}/../../shared/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

async fn brevo() -> MockServer {
    accepting(&[]).await
}

fn upserter(
    server: &MockServer,
    mapping: Mapping,
) -> Upserter<BrevoClient, MemoryStateStore, NoLookup> {
    let brevo = fast_client(server);
    Upserter::new(brevo, MemoryStateStore::new(), NoLookup, mapping)
}

/// Parses a webhook body as the webhook function does and hands the job to the upserter.
async fn deliver(
    upserter: &Upserter<BrevoClient, MemoryStateStore, NoLookup>,
    source: Source,
    body: &str,
) {
    let now = Utc
        .with_ymd_and_hms(2025, 1, 9, 0, 0, 0)
        .single()
        .expect("time");
    let settings =
        Settings::from_vars(&Vars::from_pairs(Vec::<(String, String)>::new())).expect("settings");
    let parsed = parse_webhook(
        &settings,
        &source,
        &http::HeaderMap::new(),
        body.as_bytes(),
        now,
    )
    .unwrap_or_else(|e| panic!("{source} body parses: {e}"));
    let Parsed::Accepted(delivery) = parsed else {
        panic!("{source} body was ignored");
    };
    let job = Job {
        id: format!("{source}:{}", delivery.delivery_id),
        source,
        origin: Origin::Webhook,
        received_at: now,
        correlation_id: None,
        records: delivery.records,
    };
    let message = Message {
        message_id: job.id.clone(),
        body: serde_json::to_string(&job).expect("serialises"),
        receive_count: 1,
        retry: None,
    };
    let report = upserter.handle(&[message]).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stats.rejected, 0, "{report:?}");
}

/// A Gorgias HTTP-integration body (the documented template) for customer 51234567, with the
/// customer fields the seed maps added to the template's `customer` object.
fn gorgias_body(event: &str, status: &str, score: &str) -> String {
    let mut body: Value =
        serde_json::from_str(&fixture("gorgias/http-ticket-closed.json")).expect("fixture");
    body["deskbridge_event"] = json!(event);
    body["ticket"]["status"] = json!(status);
    if status == "open" {
        body["ticket"]["closed_datetime"] = json!("");
    }
    body["ticket"]["satisfaction_survey"] = json!({"score": score, "body_text": "",
        "scored_datetime": if score.is_empty() { "" } else { "2025-01-08T12:00:00+00:00" }});
    let customer = &mut body["ticket"]["customer"];
    customer["phone"] = json!("+1 415 555 0123");
    customer["customer_type"] = json!("retail");
    customer["vip_status"] = json!(true);
    body.to_string()
}

#[tokio::test]
async fn the_gorgias_seed_rows_reach_brevo() {
    let config = config_file::parse("gorgias-seed.yaml", GORGIAS_SEED).expect("the seed loads");
    let server = brevo().await;
    let upserter = upserter(&server, config.mapping);

    deliver(
        &upserter,
        Source::Gorgias,
        &gorgias_body("ticket.created", "open", ""),
    )
    .await;
    deliver(
        &upserter,
        Source::Gorgias,
        &gorgias_body("ticket.updated", "closed", "5"),
    )
    .await;

    let contacts = bodies(&server, "/v3/contacts").await;
    let last = contacts.last().expect("contact written");
    assert_eq!(last["email"], json!("jane.doe@example.com"), "email: email");
    let a = &last["attributes"];
    assert_eq!(a["GORGIAS_ID"], json!("51234567"), "id: GORGIAS_ID");
    assert_eq!(a["FIRSTNAME"], json!("Jane"), "name: FIRSTNAME");
    assert_eq!(
        a["LASTNAME"],
        json!("Doe"),
        "name: FIRSTNAME fills LASTNAME"
    );
    assert_eq!(a["SMS"], json!("+14155550123"), "phone: SMS");
    assert_eq!(a["TICKET_COUNT"], json!(1), "nb_tickets: TICKET_COUNT");
    assert_eq!(
        a["LAST_SUPPORT_DATE"],
        json!("2025-01-08"),
        "last_ticket_date"
    );
    assert_eq!(
        a["LAST_SUPPORT_CHANNEL"],
        json!("email"),
        "last_ticket_channel"
    );
    assert_eq!(
        a["CSAT_SCORE"],
        json!(5.0),
        "last_satisfaction_score: CSAT_SCORE"
    );
    assert_eq!(
        a["CSAT_RESPONSES"],
        json!(1),
        "satisfaction_count: CSAT_RESPONSES"
    );
    assert_eq!(a["CUSTOMER_TYPE"], json!("retail"), "customer_type");
    assert_eq!(a["VIP_STATUS"], json!(true), "vip_status");
    // Gorgias reports no reply times: AVG_RESPONSE_TIME stays unset rather than 0.
    assert!(a.get("AVG_RESPONSE_TIME").is_none(), "{a}");
    // Lists: all support contacts, and satisfied by the score of 5.
    assert_eq!(last["listIds"], json!([35, 36]));

    let names: Vec<String> = bodies(&server, "/v3/events")
        .await
        .iter()
        .filter_map(|e| e["event_name"].as_str().map(str::to_string))
        .collect();
    for name in [
        "SUPPORT_TICKET_OPENED",
        "SUPPORT_TICKET_RESOLVED",
        "CSAT_SUBMITTED",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
}

#[tokio::test]
async fn the_seed_event_names_reach_brevo_from_every_helpdesk() {
    let config = config_file::parse("gorgias-seed.yaml", GORGIAS_SEED).expect("the seed loads");
    let server = brevo().await;
    let upserter = upserter(&server, config.mapping);

    let offered =
        fixture("zendesk/trigger-satisfaction-rated.json").replace("\"Good\"", "\"Offered\"");
    for (source, body) in [
        (
            Source::Zendesk,
            fixture("zendesk/trigger-ticket-created.json"),
        ),
        (
            Source::Zendesk,
            fixture("zendesk/trigger-ticket-solved.json"),
        ),
        (
            Source::Zendesk,
            fixture("zendesk/event-ticket-status-reopened.json"),
        ),
        (Source::Zendesk, offered),
        (
            Source::Zendesk,
            fixture("zendesk/trigger-satisfaction-rated.json"),
        ),
        (
            Source::Intercom,
            fixture("intercom/contact-user-created.json"),
        ),
    ] {
        deliver(&upserter, source, &body).await;
    }

    let mut names: Vec<String> = bodies(&server, "/v3/events")
        .await
        .iter()
        .filter_map(|e| e["event_name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        [
            "CSAT_SUBMITTED",
            "CSAT_SURVEY_SENT",
            "SUPPORT_CUSTOMER_CREATED",
            "SUPPORT_TICKET_OPENED",
            "SUPPORT_TICKET_REOPENED",
            "SUPPORT_TICKET_RESOLVED",
        ]
    );
}

#[tokio::test]
async fn the_intercom_seed_rows_reach_brevo() {
    let config = config_file::parse("intercom-seed.yaml", INTERCOM_SEED).expect("the seed loads");
    let server = brevo().await;
    let upserter = upserter(&server, config.mapping);

    let mut body: Value =
        serde_json::from_str(&fixture("intercom/contact-user-created.json")).expect("fixture");
    let item = &mut body["data"]["item"];
    item["last_seen_at"] = json!(1736400000);
    item["unsubscribed_from_emails"] = json!(true);
    item["session_count"] = json!(12);
    item["custom_attributes"]["feature_usage"] = json!("reports, exports");
    deliver(&upserter, Source::Intercom, &body.to_string()).await;

    let contacts = bodies(&server, "/v3/contacts").await;
    let c = contacts.last().expect("contact written");
    assert_eq!(c["email"], json!("jane.doe@example.com"), "email: email");
    let a = &c["attributes"];
    assert_eq!(a["FULLNAME"], json!("Jane Doe"), "name: FULLNAME");
    assert_eq!(a["SMS"], json!("+14155550123"), "phone: SMS");
    assert_eq!(
        a["SIGNUP_DATE"],
        json!("2025-01-08"),
        "signed_up_at: SIGNUP_DATE"
    );
    assert_eq!(
        a["LAST_ACTIVE"],
        json!("2025-01-09"),
        "last_seen_at: LAST_ACTIVE"
    );
    assert_eq!(
        a["SESSION_COUNT"],
        json!(12),
        "session_count: SESSION_COUNT"
    );
    assert_eq!(
        a["UNSUBSCRIBED"],
        json!(true),
        "unsubscribed_from_emails: UNSUBSCRIBED"
    );
    assert_eq!(
        a["PLAN_TIER"],
        json!("pro"),
        "custom_attributes.plan_tier: PLAN_TIER"
    );
    assert_eq!(
        a["FEATURE_USAGE"],
        json!("reports, exports"),
        "custom_attributes.feature_usage: FEATURE_USAGE"
    );
    assert_eq!(c["listIds"], json!([38]));
}
