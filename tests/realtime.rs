//! The real-time path end to end through the local runner: signed webhooks over HTTP, DynamoDB
//! and SQS in moto, the upsert worker, and a wiremock Brevo.

mod common;

use common::runner::Runner;
use std::path::PathBuf;
use std::time::Duration;

use deskbridge::commands::demo;
use deskbridge_shared::helpdesk::generic::GenericAuth;
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::testkit::brevo::{mount_accepting, requests_to};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn sample_files() -> Vec<PathBuf> {
    samples_named("webhook-")
}

/// The files of `events/` whose names start with `prefix`, in name order.
fn samples_named(prefix: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("events/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

async fn brevo_ok() -> MockServer {
    let brevo = MockServer::start().await;
    mount_ok(&brevo).await;
    brevo
}

/// Brevo accepting contacts, events and event batches.
async fn mount_ok(brevo: &MockServer) {
    mount_accepting(brevo, &[]).await;
}

async fn received(brevo: &MockServer) -> Vec<Request> {
    brevo.received_requests().await.unwrap_or_default()
}

async fn queue_depth(sdk: &aws_config::SdkConfig, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(&aws_sdk_sqs::Client::new(sdk), url)
        .await
        .expect("queue attributes")
}

fn intercom_rating_body(notification_id: &str) -> String {
    json!({
        "type": "notification_event",
        "app_id": "a86dr8yl",
        "id": notification_id,
        "topic": "conversation.rating.added",
        "created_at": 1_736_331_127,
        "first_sent_at": 1_736_331_127,
        "delivery_attempts": 1,
        "data": {"item": {
            "type": "conversation",
            "id": "1911149811",
            "created_at": 1_736_300_000,
            "updated_at": 1_736_331_127,
            "source": {"type": "conversation", "delivered_as": "customer_initiated",
                       "author": {"type": "user", "id": "6329bd9ffe4e", "email": "rated@example.com", "name": "Rae Ted"}},
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": "6329bd9ffe4e"}]},
            "conversation_rating": {"rating": 5, "remark": "Great help", "created_at": 1_736_331_127,
                                    "contact": {"type": "contact", "id": "6329bd9ffe4e"}}
        }}
    })
    .to_string()
}

#[tokio::test]
async fn samples_from_all_three_helpdesks_and_cinnox_reach_brevo() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "samples").await;
    let brevo = brevo_ok().await;
    let settings = common::settings(
        &res,
        Some(&brevo.uri()),
        &[
            ("DESKBRIDGE_CONFIG", common::CINNOX_CONFIG),
            ("CINNOX_WEBHOOK_TOKEN", common::CINNOX_TOKEN),
        ],
    );
    let runner = Runner::start(&sdk, settings.clone()).await;

    let files = sample_files();
    assert!(
        files.len() >= 7,
        "events/ holds samples for all three helpdesks and CINNOX"
    );
    let mut sources_sent = std::collections::BTreeSet::new();
    for file in &files {
        let req = demo::signed_request(file, &settings).expect("sample signs");
        let headers: Vec<(&str, String)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let (status, body) = runner.post(&req.path, &headers, req.body.clone()).await;
        assert_eq!(status, 200, "{} accepted: {body}", file.display());
        assert_eq!(
            body["status"],
            "queued",
            "{} queued: {body}",
            file.display()
        );
        sources_sent.insert(req.path.clone());
    }
    assert_eq!(
        sources_sent.len(),
        4,
        "samples cover zendesk, intercom, gorgias and generic:cinnox"
    );

    let done = common::eventually(Duration::from_secs(30), || async {
        let all = received(&brevo).await;
        let events = requests_to(&all, "/v3/events");
        let sources: std::collections::BTreeSet<String> = events
            .iter()
            .filter_map(|e| e["event_properties"]["source"].as_str().map(str::to_string))
            .collect();
        (sources.len() == 4 && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(all)
    })
    .await
    .expect("events from all three helpdesks and CINNOX reached Brevo");

    let contacts = requests_to(&done, "/v3/contacts");
    assert!(!contacts.is_empty());
    // The CINNOX sample reaches Brevo as the README's "Generic webhooks" example says.
    let cinnox = contacts
        .iter()
        .find(|c| c["email"] == "mei.lin@example.com")
        .expect("the CINNOX contact");
    assert_eq!(
        cinnox,
        &json!({"email": "mei.lin@example.com", "updateEnabled": true,
            "attributes": {"CINNOX_ID": "c-7781", "COMPANY_NAME": "Tan Trading",
                "FIRSTNAME": "Mei Lin", "LASTNAME": "Tan", "SMS": "+6581234567"}})
    );
    let enquiry = requests_to(&done, "/v3/events")
        .into_iter()
        .find(|e| e["event_properties"]["source"] == "generic:cinnox")
        .expect("the CINNOX event");
    assert_eq!(
        enquiry,
        json!({"event_name": "SUPPORT_TICKET_OPENED",
            "identifiers": {"email_id": "mei.lin@example.com"},
            "event_date": "2025-01-08T10:12:07Z",
            "event_properties": {"source": "generic:cinnox", "ticket_id": "ENQ-20250108-0042",
                "channel": "whatsapp", "case_number": "42", "status": "open"}})
    );
    for c in &contacts {
        assert_eq!(c["updateEnabled"], json!(true), "every upsert updates: {c}");
        assert!(
            c.get("email").is_some()
                || c.get("ext_id").is_some()
                || c["attributes"].get("SMS").is_some()
        );
        if let Some(e) = c["email"].as_str() {
            assert_eq!(e, e.trim().to_lowercase(), "emails are normalised");
        }
    }
    let allowed = [
        "SUPPORT_TICKET_OPENED",
        "SUPPORT_TICKET_RESOLVED",
        "SUPPORT_TICKET_REOPENED",
        "CSAT_SURVEY_SENT",
        "CSAT_SUBMITTED",
        "SUPPORT_CUSTOMER_CREATED",
        "SUPPORT_TICKET_SNOOZED",
        "SUPPORT_AI_RESOLVED",
    ];
    for e in requests_to(&done, "/v3/events") {
        let name = e["event_name"].as_str().unwrap_or_default();
        assert!(allowed.contains(&name), "default event name: {name}");
        assert!(e["identifiers"].as_object().is_some_and(|m| !m.is_empty()));
        assert!(e["event_date"].as_str().is_some());
    }
    for r in &done {
        assert_eq!(
            r.headers.get("api-key").and_then(|v| v.to_str().ok()),
            Some("test-brevo-key")
        );
    }
    runner.stop().await;
}

#[tokio::test]
async fn every_cinnox_trigger_sample_reaches_brevo_as_the_example_configures() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "cinnox-triggers").await;
    let brevo = brevo_ok().await;
    let settings = common::settings(
        &res,
        Some(&brevo.uri()),
        &[
            ("DESKBRIDGE_CONFIG", common::CINNOX_CONFIG),
            ("CINNOX_WEBHOOK_TOKEN", common::CINNOX_TOKEN),
        ],
    );
    let runner = Runner::start(&sdk, settings).await;
    let samples = samples_named("cinnox-");
    // Every trigger of CINNOX's Zapier app has a sample.
    assert_eq!(samples.len(), 13, "{samples:?}");
    let auth = vec![("authorization", format!("Bearer {}", common::CINNOX_TOKEN))];
    let mut answers = std::collections::BTreeMap::new();
    for file in &samples {
        let body = std::fs::read(file).expect("sample");
        let (status, answer) = runner.post("/webhooks/generic/cinnox", &auth, body).await;
        assert_eq!(status, 200, "{}: {answer}", file.display());
        let name = file
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        answers.insert(
            name,
            answer["status"].as_str().unwrap_or_default().to_string(),
        );
    }
    // Deletions and the account's tag triggers are acknowledged and left alone.
    for ignored in [
        "cinnox-contact-deleted",
        "cinnox-tag-created",
        "cinnox-tag-edited",
        "cinnox-tag-deleted",
    ] {
        assert_eq!(answers[ignored], "ignored", "{answers:?}");
    }
    assert_eq!(
        answers.values().filter(|a| *a == "queued").count(),
        9,
        "{answers:?}"
    );

    let expected: std::collections::BTreeSet<&str> = [
        "SUPPORT_TICKET_OPENED",
        "CINNOX_ENQUIRY_HANDLED",
        "SUPPORT_TICKET_RESOLVED",
        "CINNOX_ENQUIRY_MISSED",
        "SUPPORT_CUSTOMER_CREATED",
        "CINNOX_OWNER_TRANSFERRED",
        "CINNOX_SMS_STATUS",
    ]
    .into();
    let events = common::eventually(Duration::from_secs(30), || async {
        let events = requests_to(&received(&brevo).await, "/v3/events");
        let names: std::collections::BTreeSet<String> = events
            .iter()
            .filter_map(|e| e["event_name"].as_str().map(str::to_string))
            .collect();
        (names.len() == expected.len()).then_some(events)
    })
    .await
    .expect("every trigger's event reached Brevo");
    let names: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    assert_eq!(names, expected);
    let missed = events
        .iter()
        .find(|e| e["event_name"] == "CINNOX_ENQUIRY_MISSED")
        .expect("missed");
    assert_eq!(
        missed["identifiers"],
        json!({"email_id": "mei.lin@example.com"})
    );
    assert_eq!(missed["event_properties"]["ticket_id"], "ENQ-20250108-0051");
    assert_eq!(missed["event_properties"]["event_name"], "enquiry.missed");
    assert_eq!(missed["event_properties"]["case_number"], "51");
    let transfer = events
        .iter()
        .find(|e| e["event_name"] == "CINNOX_OWNER_TRANSFERRED")
        .expect("transfer");
    assert_eq!(transfer["event_properties"]["to_owner_id"], "staff-31");
    // The SMS status names only a phone number: its event is addressed by it.
    let sms = events
        .iter()
        .find(|e| e["event_name"] == "CINNOX_SMS_STATUS")
        .expect("sms");
    assert_eq!(sms["identifiers"], json!({"phone_id": "+6581234567"}));
    assert_eq!(sms["event_properties"]["status"], "delivered");
    runner.stop().await;
}

/// A CINNOX delivery as the Zapier POST action of the README sends it (the body of the sample in
/// events/), here signed: the source below uses `hmac_sha256`.
fn cinnox_sample_body() -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events/webhook-generic-cinnox-enquiry-new.json");
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("sample")).expect("json");
    event["body"].as_str().expect("body").to_string()
}

const CINNOX_SIGNED_YAML: &str = r#"
connectors:
  generic:cinnox:
    auth:
      type: hmac_sha256
      header: X-Signature
      secret_env: CINNOX_WEBHOOK_SECRET
      encoding: hex
      prefix: "sha256="
    fields:
      event_type: /event
      event_time: /occurred_at
      external_id: /contact_id
      email: /email
      phone: /phone
      name: /name
      subject: /enquiry_id
      channel: /channel
    events:
      enquiry.new: ticket.created
      enquiry.closed: ticket.closed
      contact.created: customer.created
      contact.edited: ~
    field_mapping:
      id: CINNOX_ID
      name: FIRSTNAME
      phone: SMS
      company: COMPANY_NAME
    event_mapping:
      ticket.created: CINNOX_ENQUIRY_NEW
"#;

#[tokio::test]
async fn a_generic_source_configured_only_by_yaml_reaches_brevo_and_refuses_forgeries() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "generic").await;
    let brevo = brevo_ok().await;
    let dir = std::env::temp_dir().join(common::unique_prefix("generic-config"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("deskbridge.yaml");
    std::fs::write(&config, CINNOX_SIGNED_YAML).expect("write config");
    let secret = "deskbridge-test-cinnox-secret";
    let settings = common::settings(
        &res,
        Some(&brevo.uri()),
        &[
            ("DESKBRIDGE_CONFIG", config.to_string_lossy().as_ref()),
            ("CINNOX_WEBHOOK_SECRET", secret),
        ],
    );
    let scheme = match &settings.file.generic["cinnox"].auth {
        GenericAuth::HmacSha256 { scheme, .. } => scheme.clone(),
        other => panic!("expected hmac_sha256, got {other:?}"),
    };
    let runner = Runner::start(&sdk, settings).await;
    let url = "/webhooks/generic/cinnox";
    let body = cinnox_sample_body();
    let good = scheme.sign(secret, body.as_bytes());

    // Forged, tampered and unsigned deliveries: 401, nothing queued, nothing sent.
    let tampered = body.replace("mei.lin@example.com", "attacker@example.com");
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, String);
    let cases: Vec<Case> = vec![
        ("unsigned", vec![], body.clone()),
        (
            "wrong secret",
            vec![("x-signature", scheme.sign("guess", body.as_bytes()))],
            body.clone(),
        ),
        (
            "tampered body",
            vec![("x-signature", good.clone())],
            tampered,
        ),
        (
            "bearer instead of a signature",
            vec![("authorization", format!("Bearer {secret}"))],
            body.clone(),
        ),
    ];
    for (name, headers, b) in cases {
        let (status, _) = runner.post(url, &headers, b).await;
        assert_eq!(status, 401, "{name} is refused");
    }
    assert_eq!(queue_depth(&sdk, &res.upsert_queue_url).await, 0);
    // Generic names the file does not describe, or cannot describe, are not found.
    for other in ["/webhooks/generic/freshdesk", "/webhooks/generic/CINNOX"] {
        let (status, _) = runner
            .post(other, &[("x-signature", good.clone())], body.clone())
            .await;
        assert_eq!(status, 404, "{other}");
    }

    let (status, reply) = runner
        .post(url, &[("x-signature", good.clone())], body.clone())
        .await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("queued")));
    let (status, reply) = runner
        .post(url, &[("x-signature", good)], body.clone())
        .await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("duplicate")));

    let all = common::eventually(Duration::from_secs(30), || async {
        let all = received(&brevo).await;
        (!requests_to(&all, "/v3/events").is_empty()
            && queue_depth(&sdk, &res.upsert_queue_url).await == 0)
            .then_some(all)
    })
    .await
    .expect("the enquiry reached Brevo");
    assert!(
        all.iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("attacker")),
        "nothing of a forged delivery reached Brevo"
    );

    let contacts = requests_to(&all, "/v3/contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert_eq!(c["email"], "mei.lin@example.com");
    assert_eq!(c["updateEnabled"], true);
    assert_eq!(
        c["attributes"],
        json!({
            "CINNOX_ID": "c-7781",
            "FIRSTNAME": "Mei Lin",
            "LASTNAME": "Tan",
            "SMS": "+6581234567",
            "COMPANY_NAME": "Tan Trading"
        })
    );
    let events = requests_to(&all, "/v3/events");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["event_name"], "CINNOX_ENQUIRY_NEW");
    assert_eq!(e["identifiers"]["email_id"], "mei.lin@example.com");
    assert_eq!(e["event_date"], "2025-01-08T10:12:07Z");
    assert_eq!(e["event_properties"]["source"], "generic:cinnox");
    assert_eq!(e["event_properties"]["ticket_id"], "ENQ-20250108-0042");
    assert_eq!(e["event_properties"]["channel"], "whatsapp");

    runner.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn forged_tampered_unsigned_and_stale_requests_get_401_and_queue_nothing() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "forged").await;
    let brevo = brevo_ok().await;
    let runner = Runner::start(&sdk, common::settings(&res, Some(&brevo.uri()), &[])).await;

    let body = intercom_rating_body("notif_forged");
    let good = signature::sign_intercom(common::INTERCOM_SECRET, body.as_bytes());
    let wrong_secret = signature::sign_intercom("not-the-secret", body.as_bytes());
    let tampered = body.replace("rated@example.com", "attacker@example.com");
    let now = chrono::Utc::now();
    let fresh = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let stale = (now - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let zd_body = r#"{"type":"zen:event-type:user.created","id":"evt-forged","time":"2025-01-08T10:12:07Z","subject":"zen:user:1","detail":{"id":"1","email":"z@example.com","name":"Zed"},"event":{}}"#;

    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, String);
    let cases: Vec<Case> = vec![
        (
            "intercom unsigned",
            "/webhooks/intercom",
            vec![],
            body.clone(),
        ),
        (
            "intercom wrong secret",
            "/webhooks/intercom",
            vec![("x-hub-signature", wrong_secret)],
            body.clone(),
        ),
        (
            "intercom tampered body",
            "/webhooks/intercom",
            vec![("x-hub-signature", good.clone())],
            tampered,
        ),
        (
            "intercom garbage header",
            "/webhooks/intercom",
            vec![("x-hub-signature", "sha1=zz".into())],
            body.clone(),
        ),
        (
            "zendesk stale",
            "/webhooks/zendesk",
            vec![
                (
                    "x-zendesk-webhook-signature",
                    signature::sign_zendesk(common::ZENDESK_SECRET, &stale, zd_body.as_bytes()),
                ),
                ("x-zendesk-webhook-signature-timestamp", stale.clone()),
            ],
            zd_body.to_string(),
        ),
        (
            "zendesk signature for another timestamp",
            "/webhooks/zendesk",
            vec![
                (
                    "x-zendesk-webhook-signature",
                    signature::sign_zendesk(common::ZENDESK_SECRET, &stale, zd_body.as_bytes()),
                ),
                ("x-zendesk-webhook-signature-timestamp", fresh.clone()),
            ],
            zd_body.to_string(),
        ),
        (
            "gorgias no token",
            "/webhooks/gorgias",
            vec![],
            r#"{"ticket":{"id":1}}"#.into(),
        ),
        (
            "gorgias wrong token",
            "/webhooks/gorgias",
            vec![("authorization", "Bearer guess".into())],
            r#"{"ticket":{"id":1}}"#.into(),
        ),
    ];
    for (name, p, headers, body) in cases {
        let (status, _) = runner.post(p, &headers, body).await;
        assert_eq!(status, 401, "{name} is refused");
    }
    // The genuine request still passes, so the refusals above were about the signatures.
    let (status, _) = runner
        .post("/webhooks/intercom", &[("x-hub-signature", good)], body)
        .await;
    assert_eq!(status, 200);
    common::eventually(Duration::from_secs(20), || async {
        (queue_depth(&sdk, &res.upsert_queue_url).await == 0
            && !requests_to(&received(&brevo).await, "/v3/events").is_empty())
        .then_some(())
    })
    .await
    .expect("the genuine delivery was handled");
    let all = received(&brevo).await;
    assert_eq!(
        requests_to(&all, "/v3/events").len(),
        1,
        "only the genuine delivery reached Brevo"
    );
    assert!(
        !String::from_utf8_lossy(&all.iter().flat_map(|r| r.body.clone()).collect::<Vec<u8>>())
            .contains("attacker")
    );
    runner.stop().await;
}

#[tokio::test]
async fn a_duplicate_delivery_yields_one_brevo_event() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "dup").await;
    let brevo = brevo_ok().await;
    let runner = Runner::start(&sdk, common::settings(&res, Some(&brevo.uri()), &[])).await;

    let body = intercom_rating_body("notif_dup_1");
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, body.as_bytes());
    let (s1, b1) = runner
        .post(
            "/webhooks/intercom",
            &[("x-hub-signature", sig.clone())],
            body.clone(),
        )
        .await;
    let (s2, b2) = runner
        .post(
            "/webhooks/intercom",
            &[("x-hub-signature", sig.clone())],
            body.clone(),
        )
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1["status"], "queued");
    assert_eq!(b2["status"], "duplicate");

    // The same happening under a new notification id (a vendor re-send) is queued again but
    // reaches the timeline once: the event id is the same.
    let again = intercom_rating_body("notif_dup_2");
    let sig2 = signature::sign_intercom(common::INTERCOM_SECRET, again.as_bytes());
    let (s3, b3) = runner
        .post("/webhooks/intercom", &[("x-hub-signature", sig2)], again)
        .await;
    assert_eq!((s3, b3["status"].as_str()), (200, Some("queued")));

    common::eventually(Duration::from_secs(20), || async {
        (queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(())
    })
    .await
    .expect("queue drained");
    let events = requests_to(&received(&brevo).await, "/v3/events");
    assert_eq!(
        events.len(),
        1,
        "one CSAT event on the timeline: {events:?}"
    );
    assert_eq!(events[0]["event_name"], "CSAT_SUBMITTED");
    assert_eq!(events[0]["event_properties"]["score"], json!(5));
    runner.stop().await;
}

#[tokio::test]
async fn brevo_429_and_5xx_delay_delivery_but_lose_nothing() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "outage").await;
    let brevo = MockServer::start().await;
    // Brevo is down for the first requests of each kind, then recovers.
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(429).insert_header("x-sib-ratelimit-reset", "1"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&brevo)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(8)
        .with_priority(1)
        .mount(&brevo)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&brevo)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&brevo)
        .await;
    let runner = Runner::start(&sdk, common::settings(&res, Some(&brevo.uri()), &[])).await;

    let body = intercom_rating_body("notif_outage");
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, body.as_bytes());
    let (status, _) = runner
        .post("/webhooks/intercom", &[("x-hub-signature", sig)], body)
        .await;
    assert_eq!(status, 200);

    let all = common::eventually(Duration::from_secs(60), || async {
        let all = received(&brevo).await;
        let delivered = all.iter().filter(|r| r.url.path() == "/v3/events").count() > 8;
        (delivered && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(all)
    })
    .await
    .expect("the event reached Brevo once Brevo recovered");
    assert!(
        requests_to(&all, "/v3/contacts").len() >= 3,
        "contact upsert retried after the 429s"
    );
    assert_eq!(
        requests_to(&all, "/v3/events").len(),
        9,
        "8 refused attempts, then exactly one accepted"
    );
    runner.stop().await;
}

#[tokio::test]
async fn malformed_oversized_and_unknown_requests_get_clear_answers() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "malformed").await;
    let brevo = brevo_ok().await;
    // Gorgias left unconfigured: its route answers 404.
    let mut settings = common::settings(&res, Some(&brevo.uri()), &[]);
    settings.gorgias.webhook_token = None;
    let runner = Runner::start(&sdk, settings).await;

    for garbage in ["{not json", "[]", "\"text\"", "{\"topic\": 7}"] {
        let sig = signature::sign_intercom(common::INTERCOM_SECRET, garbage.as_bytes());
        let (status, body) = runner
            .post("/webhooks/intercom", &[("x-hub-signature", sig)], garbage)
            .await;
        assert_eq!(status, 400, "signed but unparseable `{garbage}`: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "the answer says why"
        );
    }
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, big.as_bytes());
    assert_eq!(
        runner
            .post("/webhooks/intercom", &[("x-hub-signature", sig)], big)
            .await
            .0,
        413
    );
    assert_eq!(runner.post("/webhooks/freshdesk", &[], "{}").await.0, 404);
    assert_eq!(
        runner
            .post(
                "/webhooks/gorgias",
                &[("authorization", format!("Bearer {}", common::GORGIAS_TOKEN))],
                "{}"
            )
            .await
            .0,
        404
    );
    let ping = json!({"type":"notification_event","id":"notif_ping","topic":"ping","created_at":1,"data":{"item":{"type":"ping","message":"hi"}}}).to_string();
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, ping.as_bytes());
    let (status, body) = runner
        .post("/webhooks/intercom", &[("x-hub-signature", sig)], ping)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    // Still serving after all of that.
    let ok = intercom_rating_body("notif_after_garbage");
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, ok.as_bytes());
    assert_eq!(
        runner
            .post("/webhooks/intercom", &[("x-hub-signature", sig)], ok)
            .await
            .0,
        200
    );
    assert!(queue_depth(&sdk, &res.upsert_queue_url).await <= 1);
    runner.stop().await;
}

#[tokio::test]
async fn an_unavailable_queue_or_table_answers_503_so_the_vendor_retries() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "down").await;
    let body = intercom_rating_body("notif_down");
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, body.as_bytes());

    let mut no_table = common::settings(&res, None, &[]);
    no_table.state_table = Some("table-that-does-not-exist".into());
    let runner = Runner::start(&sdk, no_table).await;
    let (status, _) = runner
        .post(
            "/webhooks/intercom",
            &[("x-hub-signature", sig.clone())],
            body.clone(),
        )
        .await;
    assert_eq!(status, 503, "state store down");
    runner.stop().await;

    let mut no_queue = common::settings(&res, None, &[]);
    no_queue.upsert_queue_url = Some(format!(
        "{}/000000000000/queue-that-does-not-exist",
        common::moto_url()
    ));
    let runner = Runner::start(&sdk, no_queue).await;
    let (status, _) = runner
        .post(
            "/webhooks/intercom",
            &[("x-hub-signature", sig.clone())],
            body.clone(),
        )
        .await;
    assert_eq!(status, 503, "queue down");
    runner.stop().await;

    // Once the queue is back, the vendor's retry of the same delivery is accepted, not taken for a duplicate.
    let runner = Runner::start(&sdk, common::settings(&res, None, &[])).await;
    let (status, reply) = runner
        .post("/webhooks/intercom", &[("x-hub-signature", sig)], body)
        .await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("queued")));
    runner.stop().await;
}

#[tokio::test]
async fn a_refusal_no_retry_can_fix_is_dead_lettered_at_once_and_replay_after_the_fix_delivers_it()
{
    use deskbridge::commands::replay::{ReplayOptions, ReplayTarget, replay};
    use deskbridge_shared::queue::SqsQueue;

    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "refused").await;
    let brevo = MockServer::start().await;
    // The account lacks something the request needs: Brevo refuses it for good.
    Mock::given(method("POST"))
        .and(path("/v3/events"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "invalid_parameter",
            "message": "event_name is not enabled for this account"
        })))
        .mount(&brevo)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&brevo)
        .await;
    let runner = Runner::start(&sdk, common::settings(&res, Some(&brevo.uri()), &[])).await;
    let body = intercom_rating_body("notif_refused");
    let sig = signature::sign_intercom(common::INTERCOM_SECRET, body.as_bytes());
    let (status, _) = runner
        .post("/webhooks/intercom", &[("x-hub-signature", sig)], body)
        .await;
    assert_eq!(status, 200);

    // At once (one attempt, no backoff): in the dead-letter queue, with the reason.
    common::eventually(Duration::from_secs(20), || async {
        (queue_depth(&sdk, &res.upsert_dlq_url).await == 1).then_some(())
    })
    .await
    .expect("dead-lettered");
    let refused = requests_to(&received(&brevo).await, "/v3/events");
    assert_eq!(refused.len(), 1, "not retried: {refused:?}");
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk));
    let targets = vec![ReplayTarget {
        name: "upsert",
        dlq_url: res.upsert_dlq_url.clone(),
        queue_url: res.upsert_queue_url.clone(),
        backfill_url: None,
    }];
    let mut out = Vec::new();
    let dry = ReplayOptions {
        dry_run: true,
        wait_seconds: 1,
    };
    replay(&queue, &targets, &dry, &mut out)
        .await
        .expect("dry run");
    let printed = String::from_utf8(out).expect("utf-8");
    assert!(
        printed.contains("invalid_parameter") && printed.contains("CSAT_SUBMITTED"),
        "{printed}"
    );

    // The fix (here: Brevo accepts the event now), then the replay delivers it once.
    brevo.reset().await;
    mount_ok(&brevo).await;
    let mut out = Vec::new();
    let moved = replay(
        &queue,
        &targets,
        &ReplayOptions {
            dry_run: false,
            wait_seconds: 1,
        },
        &mut out,
    )
    .await
    .expect("replay");
    assert_eq!(moved[0].messages, 1);
    let events = common::eventually(Duration::from_secs(20), || async {
        let events = requests_to(&received(&brevo).await, "/v3/events");
        (!events.is_empty() && queue_depth(&sdk, &res.upsert_queue_url).await == 0)
            .then_some(events)
    })
    .await
    .expect("delivered after the replay");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_name"], "CSAT_SUBMITTED");
    assert_eq!(queue_depth(&sdk, &res.upsert_dlq_url).await, 0);
    runner.stop().await;
}

/// A Gorgias HTTP-integration body (the deskbridge template) of ticket `ticket` of customer
/// `customer`, who writes their email as `email`.
fn gorgias_ticket(ticket: &str, customer: &str, email: &str) -> String {
    json!({"deskbridge_event": "ticket.created", "ticket": {
        "id": ticket, "subject": "Where is my order?", "status": "open", "channel": "email",
        "via": "email", "tags": "", "created_datetime": "2026-12-01T09:14:02+00:00",
        "updated_datetime": "2026-12-01T09:14:03+00:00", "closed_datetime": "",
        "assignee_user": {"name": ""},
        "satisfaction_survey": {"score": "", "body_text": "", "scored_datetime": ""},
        "customer": {"id": customer, "email": email, "name": "Jane Doe", "firstname": "Jane",
                     "lastname": "Doe"}}})
    .to_string()
}

#[tokio::test]
async fn two_gorgias_stores_sharing_a_customer_make_one_contact_with_counts_summed_or_apart() {
    use deskbridge_shared::testkit::brevo::BrevoModel;
    const EU_TOKEN: &str = "deskbridge-test-eu-store-token";
    for apart in [false, true] {
        let sdk = common::sdk().await;
        let res = common::bootstrap(
            &sdk,
            if apart {
                "stores-apart"
            } else {
                "stores-summed"
            },
        )
        .await;
        let (model, brevo) = BrevoModel::start().await;
        // Each store keeps its own id attribute; kept apart, each counts its own tickets
        // under its own attribute.
        let config = if apart {
            "connectors:\n  gorgias:\n    aggregates: own\n  gorgias:eu-store:\n    aggregates: own\n    field_mapping:\n      id: GORGIAS_EU_ID\n      nb_tickets: EU_TICKET_COUNT\n"
        } else {
            "connectors:\n  gorgias:eu-store: {}\n"
        };
        let file = std::env::temp_dir().join(format!(
            "deskbridge-stores-{apart}-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&file, config).expect("config written");
        let settings = common::settings(
            &res,
            Some(&brevo.uri()),
            &[
                ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
                ("GORGIAS_EU_STORE_WEBHOOK_TOKEN", EU_TOKEN),
            ],
        );
        let runner = Runner::start(&sdk, settings).await;
        let main = [("authorization", format!("Bearer {}", common::GORGIAS_TOKEN))];
        let eu = [("authorization", format!("Bearer {EU_TOKEN}"))];

        // The second store's URL takes its own token only.
        let (status, _) = runner
            .post(
                "/webhooks/gorgias/eu-store",
                &main,
                gorgias_ticket("98765", "777", "jane.doe@example.com"),
            )
            .await;
        assert_eq!(
            status, 401,
            "the first store's token is refused at the second's URL"
        );
        let (status, _) = runner
            .post(
                "/webhooks/gorgias/other",
                &eu,
                gorgias_ticket("1", "1", "x@example.com"),
            )
            .await;
        assert_eq!(status, 404, "a store the file does not name");

        // One customer, one ticket in the first store and two in the second — one of them
        // with the same ticket number as the first store's.
        for (path, headers, ticket, customer, email) in [
            (
                "/webhooks/gorgias",
                &main,
                "98765",
                "51234567",
                "jane.doe@example.com",
            ),
            (
                "/webhooks/gorgias/eu-store",
                &eu,
                "98765",
                "777",
                "Jane.Doe@Example.com",
            ),
            (
                "/webhooks/gorgias/eu-store",
                &eu,
                "98766",
                "777",
                "jane.doe@example.com",
            ),
        ] {
            let (status, body) = runner
                .post(path, headers, gorgias_ticket(ticket, customer, email))
                .await;
            assert_eq!(
                (status, &body["status"]),
                (200, &json!("queued")),
                "{path}: {body}"
            );
        }
        let want = |c: &deskbridge_shared::testkit::brevo::Contact| {
            if apart {
                c.attributes.get("TICKET_COUNT") == Some(&json!(1))
                    && c.attributes.get("EU_TICKET_COUNT") == Some(&json!(2))
            } else {
                c.attributes.get("TICKET_COUNT") == Some(&json!(3))
            }
        };
        let contacts = common::eventually(Duration::from_secs(30), || async {
            let contacts = model.contacts();
            let opened = |c: &deskbridge_shared::testkit::brevo::Contact| {
                c.events
                    .iter()
                    .filter(|e| *e == "SUPPORT_TICKET_OPENED")
                    .count()
                    == 3
            };
            contacts
                .iter()
                .any(|c| want(c) && opened(c))
                .then_some(contacts)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the counts arrived (apart: {apart}): {:?}",
                model.contacts()
            )
        });
        assert_eq!(contacts.len(), 1, "one person, one contact: {contacts:?}");
        let jane = &contacts[0];
        assert_eq!(jane.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(jane.attributes.get("GORGIAS_ID"), Some(&json!("51234567")));
        let eu_id = if apart {
            "GORGIAS_EU_ID"
        } else {
            "GORGIAS_EU_STORE_ID"
        };
        assert_eq!(jane.attributes.get(eu_id), Some(&json!("777")), "{jane:?}");
        let opened = jane
            .events
            .iter()
            .filter(|e| *e == "SUPPORT_TICKET_OPENED")
            .count();
        assert_eq!(
            opened, 3,
            "ticket 98765 of each store is its own ticket: {jane:?}"
        );
        runner.stop().await;
        std::fs::remove_file(file).ok();
    }
}

/// The body of a sample event file, as the helpdesk sent it.
fn sample_body(name: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("sample read")).expect("JSON");
    event["body"].as_str().expect("a body").to_string()
}

#[tokio::test]
async fn a_further_zendesk_account_and_intercom_workspace_take_only_their_own_signatures() {
    const BRAND2_SECRET: &str = "YnJhbmQyX3NpZ25pbmdfc2VjcmV0X2Zvcl90ZXN0aW5n";
    const EU_SECRET: &str = "deskbridge-test-eu-workspace-secret";
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "accounts").await;
    let brevo = brevo_ok().await;
    let file =
        std::env::temp_dir().join(format!("deskbridge-accounts-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "connectors:\n  zendesk:brand2: {}\n  intercom:eu-workspace: {}\n",
    )
    .expect("config written");
    let settings = common::settings(
        &res,
        Some(&brevo.uri()),
        &[
            ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
            ("ZENDESK_BRAND2_WEBHOOK_SECRET", BRAND2_SECRET),
            ("INTERCOM_EU_WORKSPACE_CLIENT_SECRET", EU_SECRET),
        ],
    );
    let runner = Runner::start(&sdk, settings).await;

    let ticket = sample_body("webhook-zendesk-ticket-created.json");
    let zendesk = |secret: &str| {
        let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        vec![
            (
                "x-zendesk-webhook-signature",
                signature::sign_zendesk(secret, &ts, ticket.as_bytes()),
            ),
            ("x-zendesk-webhook-signature-timestamp", ts),
            (
                "x-zendesk-webhook-invocation-id",
                "8447391024753".to_string(),
            ),
        ]
    };
    let rating = intercom_rating_body("notif_eu_workspace");
    let intercom = |secret: &str| {
        vec![(
            "x-hub-signature",
            signature::sign_intercom(secret, rating.as_bytes()),
        )]
    };

    // Each account's URL takes its own secret only, and the first account's URL its own.
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, &'a str, u16);
    let refused: Vec<Case> = vec![
        (
            "the first account's secret at brand2's URL",
            "/webhooks/zendesk/brand2",
            zendesk(common::ZENDESK_SECRET),
            ticket.as_str(),
            401,
        ),
        (
            "brand2's secret at the first account's URL",
            "/webhooks/zendesk",
            zendesk(BRAND2_SECRET),
            ticket.as_str(),
            401,
        ),
        (
            "the first workspace's secret at the second's URL",
            "/webhooks/intercom/eu-workspace",
            intercom(common::INTERCOM_SECRET),
            rating.as_str(),
            401,
        ),
        (
            "the second workspace's secret at the first's URL",
            "/webhooks/intercom",
            intercom(EU_SECRET),
            rating.as_str(),
            401,
        ),
        (
            "an account the file does not name",
            "/webhooks/zendesk/brand3",
            zendesk(BRAND2_SECRET),
            ticket.as_str(),
            404,
        ),
    ];
    for (name, p, headers, body, want) in refused {
        let (status, answer) = runner.post(p, &headers, body.to_string()).await;
        assert_eq!(status, want, "{name}: {answer}");
    }

    // Signed with their own secrets, both are queued as their account's deliveries; the same
    // delivery to the first workspace is that workspace's own, not a duplicate.
    for (p, headers, body, job) in [
        (
            "/webhooks/zendesk/brand2",
            zendesk(BRAND2_SECRET),
            &ticket,
            "zendesk:brand2:",
        ),
        (
            "/webhooks/intercom/eu-workspace",
            intercom(EU_SECRET),
            &rating,
            "intercom:eu-workspace:",
        ),
        (
            "/webhooks/intercom",
            intercom(common::INTERCOM_SECRET),
            &rating,
            "intercom:notif",
        ),
    ] {
        let (status, answer) = runner.post(p, &headers, body.to_string()).await;
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!("queued")),
            "{p}: {answer}"
        );
        assert!(
            answer["job"].as_str().is_some_and(|j| j.starts_with(job)),
            "{p}: {answer}"
        );
    }

    let done = common::eventually(Duration::from_secs(30), || async {
        let all = received(&brevo).await;
        let sources: std::collections::BTreeSet<String> = requests_to(&all, "/v3/events")
            .iter()
            .filter_map(|e| e["event_properties"]["source"].as_str().map(str::to_string))
            .collect();
        (sources.len() == 3 && queue_depth(&sdk, &res.upsert_queue_url).await == 0).then_some(all)
    })
    .await
    .unwrap_or_else(|| panic!("every account's events arrived"));
    let events = requests_to(&done, "/v3/events");
    let sources: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["event_properties"]["source"].as_str())
        .collect();
    assert_eq!(
        sources,
        ["intercom", "intercom:eu-workspace", "zendesk:brand2"].into(),
        "{events:?}"
    );
    let contacts = requests_to(&done, "/v3/contacts");
    // brand2's requester, known by id only, is keyed under brand2: its own ext_id prefix and id
    // attribute.
    let opened = events
        .iter()
        .find(|e| e["event_properties"]["source"] == "zendesk:brand2")
        .expect("brand2's event");
    assert_eq!(opened["event_name"], "SUPPORT_TICKET_OPENED");
    assert_eq!(
        opened["identifiers"],
        json!({"ext_id": "zendesk:brand2:8447388090494"})
    );
    assert!(
        contacts
            .iter()
            .any(|c| c["ext_id"] == "zendesk:brand2:8447388090494"
                && c["attributes"]["ZENDESK_BRAND2_ID"] == "8447388090494"
                && c["attributes"].get("ZENDESK_ID").is_none()),
        "{contacts:?}"
    );
    // The rating of each workspace is its own: the person's contact carries both workspaces' ids
    // and counts both responses.
    assert!(
        contacts.iter().any(|c| c["email"] == "rated@example.com"
            && c["attributes"]["INTERCOM_EU_WORKSPACE_ID"] == "6329bd9ffe4e"
            && c["attributes"]["INTERCOM_ID"] == "6329bd9ffe4e"
            && c["attributes"]["CSAT_RESPONSES"] == 2),
        "{contacts:?}"
    );
    assert_eq!(queue_depth(&sdk, &res.upsert_dlq_url).await, 0);
    runner.stop().await;
    std::fs::remove_file(file).ok();
}
