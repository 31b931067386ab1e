//! A helpdesk that deskbridge does not ship, defined here only, plugs in through the registry:
//! its signed webhooks go through the local runner (HTTP, DynamoDB and SQS in moto, the upsert
//! worker) to a wiremock Brevo, and a forged one is refused. Nothing else in the code base
//! names it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deskbridge::commands::serve;
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::signature::AuthError;
use deskbridge_shared::helpdesk::{Delivery, Helpdesk, ParseError, Parsed, Registry};
use deskbridge_shared::model::{EventKind, Person, Record, Source, SupportEvent};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ACME_SECRET: &str = "acme-test-signing-secret";
const SIGNATURE_HEADER: &str = "x-acme-signature";

/// "Acme Desk": deliveries carry `x-acme-signature: sha256=<hex HMAC-SHA256 of the body>`, and
/// bodies look like `{"kind": "ticket.opened", "delivery": …, "at": …, "customer": {…},
/// "ticket": …}`.
struct Acme {
    secret: String,
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Helpdesk for Acme {
    fn source(&self) -> Source {
        Source::added("acme").expect("a valid helpdesk name")
    }

    fn webhook_enabled(&self, _settings: &Settings) -> bool {
        !self.secret.is_empty()
    }

    fn verify_webhook(
        &self,
        _settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let given = headers
            .get(SIGNATURE_HEADER)
            .ok_or_else(|| AuthError::Missing(SIGNATURE_HEADER.into()))?
            .to_str()
            .map_err(|_| AuthError::BadSignature)?;
        let hex_mac = given
            .strip_prefix("sha256=")
            .ok_or(AuthError::BadSignature)?;
        let given = hex::decode(hex_mac).map_err(|_| AuthError::BadSignature)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.secret.as_bytes())
            .map_err(|_| AuthError::NotConfigured)?;
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| AuthError::BadSignature)
    }

    fn parse_webhook(
        &self,
        _settings: &Settings,
        value: Value,
        _headers: &http::HeaderMap,
        _body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
        let kind = text("/kind").ok_or(ParseError::Missing("kind"))?;
        if kind != "ticket.opened" {
            return Ok(Parsed::Ignored { topic: kind.into() });
        }
        let delivery_id = text("/delivery").ok_or(ParseError::Missing("delivery"))?;
        let ticket = text("/ticket").ok_or(ParseError::Missing("ticket"))?;
        let at = text("/at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(received_at, |t| t.with_timezone(&Utc));
        let customer = value
            .get("customer")
            .filter(|c| c.is_object())
            .ok_or(ParseError::Missing("customer"))?;
        let person = self.person_from_profile(customer);
        let source = self.source();
        let event = SupportEvent {
            id: SupportEvent::stable_id(
                &source,
                &format!("ticket:{ticket}"),
                EventKind::TicketCreated,
                at,
            ),
            kind: EventKind::TicketCreated,
            occurred_at: at,
            ticket_id: Some(ticket.into()),
            channel: text("/channel").map(str::to_string),
            properties: Default::default(),
        };
        Ok(Parsed::Accepted(Delivery {
            delivery_id: delivery_id.into(),
            topic: kind.into(),
            records: vec![Record {
                person,
                observed_at: at,
                profile: Some(customer.clone().into()),
                events: vec![event],
                ..Default::default()
            }],
        }))
    }

    fn person_from_profile(&self, profile: &Value) -> Person {
        let text = |key: &str| profile.get(key).and_then(Value::as_str).map(str::to_string);
        Person {
            source_id: text("id"),
            email: text("mail"),
            name: text("name"),
            ..Default::default()
        }
    }
}

fn acme_body(delivery: &str, email: &str) -> String {
    json!({
        "kind": "ticket.opened",
        "delivery": delivery,
        "at": "2025-01-08T10:12:07Z",
        "ticket": "T-9",
        "channel": "chat",
        "customer": {"id": "a-42", "mail": email, "name": "Ada Lovelace"}
    })
    .to_string()
}

async fn post(base: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/webhooks/acme"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req
        .body(body.to_string())
        .send()
        .await
        .expect("runner answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn requests_to(all: &[Request], p: &str) -> Vec<Value> {
    all.iter()
        .filter(|r| r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

async fn queue_depth(sdk: &aws_config::SdkConfig, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(&aws_sdk_sqs::Client::new(sdk), url)
        .await
        .expect("queue attributes")
}

#[test]
fn an_added_helpdesk_is_found_by_its_name_and_built_in_ones_stay_as_they_were() {
    let registry = Registry::built_in().with(Arc::new(Acme {
        secret: ACME_SECRET.into(),
    }));
    let acme = registry.source("acme").expect("registered");
    assert_eq!(acme.to_string(), "acme");
    assert_eq!(acme.id_attribute(), "ACME_ID");
    assert_eq!(registry.source("zendesk"), Some(Source::Zendesk));
    assert_eq!(
        registry.source("generic:cinnox"),
        Some(Source::Generic("cinnox".into()))
    );
    assert_eq!(registry.source("freshdesk"), None);
    assert_eq!(Registry::built_in().source("acme"), None);
    let names: Vec<String> = registry.listed().map(|h| h.source().to_string()).collect();
    assert_eq!(names, ["zendesk", "intercom", "gorgias", "acme"]);
    // A job of the added helpdesk reads back from the queue as it was written.
    let job = serde_json::to_string(&acme).expect("json");
    assert_eq!(job, "\"acme\"");
    assert_eq!(serde_json::from_str::<Source>(&job).expect("source"), acme);
}

#[tokio::test]
async fn a_helpdesk_defined_in_a_test_plugs_in_through_the_registry_and_reaches_brevo() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "plugin").await;
    let brevo = MockServer::start().await;
    for p in ["/v3/contacts", "/v3/events", "/v3/events/batch"] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(204))
            .mount(&brevo)
            .await;
    }
    let settings = common::settings(&res, Some(&brevo.uri()), &[]);
    let helpdesks = Registry::built_in().with(Arc::new(Acme {
        secret: ACME_SECRET.into(),
    }));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let runner_sdk = sdk.clone();
    let runner = tokio::spawn(async move {
        serve::serve_with(listener, &runner_sdk, settings, helpdesks, async {
            let _ = stopped.await;
        })
        .await
    });

    let body = acme_body("d-1", "Ada@Example.com");
    // Forged, tampered and unsigned deliveries: 401, nothing queued.
    let tampered = acme_body("d-1", "attacker@example.com");
    let forged = [
        ("unsigned", vec![], body.clone()),
        (
            "wrong secret",
            vec![(SIGNATURE_HEADER, sign("guess", body.as_bytes()))],
            body.clone(),
        ),
        (
            "tampered body",
            vec![(SIGNATURE_HEADER, sign(ACME_SECRET, body.as_bytes()))],
            tampered,
        ),
    ];
    for (name, headers, b) in forged {
        let (status, _) = post(&base, &headers, &b).await;
        assert_eq!(status, 401, "{name} is refused");
    }
    assert_eq!(queue_depth(&sdk, &res.upsert_queue_url).await, 0);

    let signed = vec![(SIGNATURE_HEADER, sign(ACME_SECRET, body.as_bytes()))];
    let (status, reply) = post(&base, &signed, &body).await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("queued")));
    assert_eq!(reply["job"], "acme:d-1");
    let (status, reply) = post(&base, &signed, &body).await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("duplicate")));

    let all = common::eventually(Duration::from_secs(30), || async {
        let all = brevo.received_requests().await.unwrap_or_default();
        (!requests_to(&all, "/v3/events").is_empty()
            && queue_depth(&sdk, &res.upsert_queue_url).await == 0)
            .then_some(all)
    })
    .await
    .expect("the delivery reached Brevo");
    assert!(
        all.iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("attacker")),
        "nothing of a forged delivery reached Brevo"
    );
    let contacts = requests_to(&all, "/v3/contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["email"], "ada@example.com");
    assert_eq!(contacts[0]["updateEnabled"], true);
    let events = requests_to(&all, "/v3/events");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["event_name"], "SUPPORT_TICKET_OPENED");
    assert_eq!(e["identifiers"]["email_id"], "ada@example.com");
    assert_eq!(e["event_date"], "2025-01-08T10:12:07Z");
    assert_eq!(e["event_properties"]["source"], "acme");
    assert_eq!(e["event_properties"]["ticket_id"], "T-9");

    let _ = stop.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(15), runner).await;
    assert!(
        matches!(outcome, Ok(Ok(Ok(())))),
        "runner stopped cleanly: {outcome:?}"
    );
}
