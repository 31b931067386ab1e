//! CPU per webhook delivery: `Webhook::handle` = verify the signature or token over the raw
//! body, parse and map it into canonical records, claim the delivery id, serialise the job and
//! enqueue it. The state store and the queue are the in-memory ones, so no I/O is measured.
//!
//! Each body is a real delivery shape (the fixtures in `events/`) padded with realistic fields to
//! exactly 2 KiB. Every iteration gets a fresh `MemoryStateStore` and `MemoryQueue` (built and
//! dropped outside the timing): the store dedupes delivery ids, so reusing one would measure
//! the "duplicate" path after the first iteration, and one shared queue would grow for the
//! whole run. No tracing subscriber is installed, so the `info!` per delivery costs only a
//! disabled-callsite check.
//!
//! ```sh
//! cargo bench -p deskbridge-webhook --bench handler
//! ```
//!
//! The `apigw` group adds what the Lambda adapter does on top: read the API Gateway v2 event JSON
//! into a request (`lambda_http::request::from_str`) and turn the reply into a response.

// The `json!` bodies below are deeper than the default limit allows.
#![recursion_limit = "256"]

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::{Registry, signature};
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore};
use deskbridge_webhook::{Webhook, lambda_handler};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

const BODY_BYTES: usize = 2048;
const QUEUE: &str = "memory://upsert";
const INTERCOM_SECRET: &str = "deskbridge-test-intercom-secret";
const GORGIAS_TOKEN: &str = "deskbridge-test-gorgias-token";
const ZENDESK_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";
const ZENDESK_SIGNED_AT: &str = "2025-01-08T10:02:42Z";

/// Text used to grow one free-text field of a body until the body is exactly [`BODY_BYTES`].
const FILLER: &str = "I have attached the two bank statements showing both charges. \
Please let me know if you need anything else from me to process the refund. ";

fn settings() -> Settings {
    Settings::from_vars(&Vars::from_pairs([
        ("INTERCOM_CLIENT_SECRET", INTERCOM_SECRET),
        ("GORGIAS_WEBHOOK_TOKEN", GORGIAS_TOKEN),
        ("ZENDESK_WEBHOOK_SECRET", ZENDESK_SECRET),
        // Only the `apigw` group needs this: `lambda_handler` verifies against the clock, and the
        // Zendesk timestamp is fixed. `handle` is given a `now` one second after it.
        ("DESKBRIDGE_SIGNATURE_TOLERANCE_SECONDS", "3153600000"),
    ]))
    .expect("settings")
}

/// Serialises `value` after growing the string at `pointer` so the body is exactly `BODY_BYTES`.
fn padded(mut value: Value, pointer: &str) -> String {
    let base = value.to_string().len();
    assert!(base <= BODY_BYTES, "{pointer}: {base} bytes before padding");
    let need = BODY_BYTES - base;
    let field = value.pointer_mut(pointer).expect("padding field");
    let mut text = field.as_str().expect("a string field").to_string();
    text.extend(FILLER.chars().cycle().take(need));
    *field = Value::String(text);
    let body = value.to_string();
    assert_eq!(body.len(), BODY_BYTES, "{pointer}");
    body
}

/// A Zendesk event-subscription delivery (`zen:event-type:ticket.created`), as in
/// `events/webhook-zendesk-ticket-created.json`, with a longer first comment and more tags.
fn zendesk() -> (String, HeaderMap) {
    let body = padded(
        json!({
            "type": "zen:event-type:ticket.created",
            "account_id": 12_514_403,
            "id": "8c1f4f7e-6c2b-4d52-9a4c-2f3b7f0c1a11",
            "time": "2025-01-08T10:02:41Z",
            "zendesk_event_version": "2022-11-06",
            "subject": "zen:ticket:5158",
            "detail": {
                "actor_id": "8447388090494",
                "assignee_id": null,
                "brand_id": "360001234567",
                "created_at": "2025-01-08T10:02:41Z",
                "custom_status": "17544485236110",
                "description": "Hi, I was charged twice for order 1042 on 6 January, once at \
                    09:14 and again at 09:16, both for $129.00 to the card ending 4242. The order \
                    page only shows one payment and I only received one confirmation email. \
                    Can you refund one of them? ",
                "external_id": null,
                "form_id": "360000123456",
                "group_id": "360009876543",
                "id": "5158",
                "is_public": true,
                "organization_id": "360012345678",
                "priority": "NORMAL",
                "requester_id": "8447388090494",
                "status": "NEW",
                "subject": "Refund for order 1042 (charged twice)",
                "submitter_id": "8447388090494",
                "tags": ["vip", "billing", "refund", "double_charge", "web_form", "en"],
                "type": "QUESTION",
                "updated_at": "2025-01-08T10:02:41Z",
                "via": {"channel": "web"}
            },
            "event": {"meta": {"sequence": {
                "id": "d1b6b2c4-3a9e-4c59-8a36-1d2f0c9b7e10",
                "position": 1,
                "total": 1
            }}}
        }),
        "/detail/description",
    );
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "x-zendesk-webhook-invocation-id",
        HeaderValue::from_static("8447391024753"),
    );
    h.insert(
        "x-zendesk-webhook-signature-timestamp",
        HeaderValue::from_static(ZENDESK_SIGNED_AT),
    );
    let sig = signature::sign_zendesk(ZENDESK_SECRET, ZENDESK_SIGNED_AT, body.as_bytes());
    h.insert(
        "x-zendesk-webhook-signature",
        HeaderValue::from_str(&sig).expect("header"),
    );
    (body, h)
}

/// An Intercom `contact.user.created` notification, as in
/// `events/webhook-intercom-contact-created.json`, with more custom attributes and a tag.
fn intercom() -> (String, HeaderMap) {
    let contact = "6762f0d91bb69f9f2193bb7e";
    let list = |what: &str| {
        json!({"type": "list", "data": [], "url": format!("/contacts/{contact}/{what}"),
            "total_count": 0, "has_more": false})
    };
    let mut item = json!({
        "type": "contact", "id": contact, "workspace_id": "a86dr8yl",
        "external_id": "cust-1042", "role": "user", "email": "jane.doe@example.com",
        "phone": "+14155550123", "name": "Jane Doe", "avatar": null, "owner_id": null,
        "social_profiles": {"type": "list", "data": []},
        "has_hard_bounced": false, "marked_email_as_spam": false,
        "unsubscribed_from_emails": false,
        "created_at": 1_736_330_000, "updated_at": 1_736_330_000,
        "signed_up_at": 1_736_329_990, "last_seen_at": null, "last_replied_at": null,
        "last_contacted_at": null, "last_email_opened_at": null,
        "last_email_clicked_at": null, "language_override": null, "browser": null,
        "browser_version": null, "browser_language": null, "os": null,
        "location": {"type": "location", "country": "United States",
            "region": "California", "city": "San Francisco", "country_code": "USA",
            "continent_code": "NA"},
        "android_app_name": null, "ios_app_name": null,
        "custom_attributes": {"plan_tier": "pro", "mrr": 49, "seats": 5, "signup_source": ""},
        "utm_campaign": null, "utm_content": null, "utm_medium": null,
        "utm_source": null, "utm_term": null, "referrer": null
    });
    for (key, what) in [
        ("tags", "tags"),
        ("notes", "notes"),
        ("companies", "companies"),
        ("opted_out_subscription_types", "subscriptions"),
        ("opted_in_subscription_types", "subscriptions"),
    ] {
        item[key] = list(what);
    }
    let body = padded(
        json!({
            "type": "notification_event",
            "app_id": "a86dr8yl",
            "data": {"type": "notification_event_data", "item": item},
            "links": {},
            "id": "notif_8d0c7e2a-bd3f-4a51-9c5e-2f1b0a9c8d7e",
            "topic": "contact.user.created",
            "delivery_status": "pending",
            "delivery_attempts": 1,
            "delivered_at": 0,
            "first_sent_at": 1_736_330_001,
            "created_at": 1_736_330_001,
            "self": null
        }),
        "/data/item/custom_attributes/signup_source",
    );
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let sig = signature::sign_intercom(INTERCOM_SECRET, body.as_bytes());
    h.insert(
        "x-hub-signature",
        HeaderValue::from_str(&sig).expect("header"),
    );
    (body, h)
}

/// A Gorgias `ticket.created` delivery of the deskbridge HTTP-integration template, as in
/// `events/webhook-gorgias-ticket-created.json`, with the customer's channels, Shopify data and
/// the first message.
fn gorgias() -> (String, HeaderMap) {
    let body = padded(
        json!({
            "deskbridge_event": "ticket.created",
            "ticket": {
                "id": "98765",
                "subject": "Where is my order #1042?",
                "status": "open",
                "channel": "email",
                "via": "email",
                "language": "en",
                "priority": "normal",
                "spam": false,
                "messages_count": 1,
                "tags": "vip, shipping, order-status",
                "created_datetime": "2025-01-08T09:14:02.123456+00:00",
                "updated_datetime": "2025-01-08T09:14:03.000000+00:00",
                "closed_datetime": "",
                "assignee_user": {"name": ""},
                "assignee_team": {"name": "Tier 1"},
                "satisfaction_survey": {"score": "", "body_text": "", "scored_datetime": ""},
                "first_message": {
                    "from_agent": false,
                    "sender": {"email": "jane.doe@example.com", "name": "Jane Doe"},
                    "subject": "Where is my order #1042?",
                    "body_text": "Hello, I ordered a pair of trail shoes (order #1042) on \
                        2 January with express shipping and the tracking page has not moved \
                        since 4 January. Could you check with the carrier? "
                },
                "customer": {
                    "id": "51234567",
                    "email": "jane.doe@example.com",
                    "name": "Jane Doe",
                    "firstname": "Jane",
                    "lastname": "Doe",
                    "language": "en",
                    "timezone": "America/Los_Angeles",
                    "external_id": "7390112233445",
                    "channels": [
                        {"type": "email", "address": "jane.doe@example.com", "preferred": true},
                        {"type": "phone", "address": "+14155550123", "preferred": false}
                    ],
                    "integrations": {"shopify": {"customer": {
                        "id": 7_390_112_233_445_u64,
                        "orders_count": 4,
                        "total_spent": "412.60",
                        "currency": "USD",
                        "tags": "vip, newsletter",
                        "default_address": {"city": "San Francisco", "province_code": "CA",
                            "country_code": "US", "zip": "94107"}
                    }}}
                }
            }
        }),
        "/ticket/first_message/body_text",
    );
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {GORGIAS_TOKEN}")).expect("header"),
    );
    (body, h)
}

/// Just after the Zendesk signature timestamp, so the freshness check passes without a wide
/// tolerance being what makes it pass.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ZENDESK_SIGNED_AT)
        .expect("timestamp")
        .with_timezone(&Utc)
        + chrono::Duration::seconds(1)
}

fn fresh(settings: &Settings) -> Webhook<MemoryStateStore, MemoryQueue> {
    Webhook {
        settings: settings.clone(),
        helpdesks: Registry::built_in(),
        state: MemoryStateStore::new(),
        queue: MemoryQueue::new(),
        upsert_queue_url: QUEUE.into(),
    }
}

/// An API Gateway v2 request event carrying `body` to `/webhooks/{source}` with `headers`.
fn apigw_event(source: &str, headers: &HeaderMap, body: &str) -> String {
    let mut h: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().expect("ascii"))))
        .collect();
    for (k, v) in [
        ("content-length", body.len().to_string()),
        (
            "host",
            "abcdef1234.execute-api.us-east-1.amazonaws.com".into(),
        ),
        (
            "x-amzn-trace-id",
            "Root=1-677e4f42-5c6d7e8f9a0b1c2d3e4f5a6b".into(),
        ),
        ("x-forwarded-for", "203.0.113.30".into()),
        ("x-forwarded-port", "443".into()),
        ("x-forwarded-proto", "https".into()),
    ] {
        h.insert(k.into(), json!(v));
    }
    let path = format!("/webhooks/{source}");
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.30", "userAgent": ""},
            "requestId": "Gx3eEfGhIAMEXef=", "routeKey": "POST /webhooks/{source}",
            "stage": "$default", "time": "08/Jan/2025:09:14:04 +0000",
            "timeEpoch": 1_736_327_644_000_u64
        },
        "pathParameters": {"source": source},
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let settings = settings();
    let cases = [
        ("zendesk", zendesk()),
        ("intercom", intercom()),
        ("gorgias", gorgias()),
    ];

    // Every case must take the full path: verified, parsed, queued.
    for (source, (body, headers)) in &cases {
        let w = fresh(&settings);
        let reply = rt.block_on(w.handle(source, headers, body.as_bytes(), now(), None));
        assert_eq!(
            (reply.status, reply.body["status"].as_str()),
            (StatusCode::OK, Some("queued")),
            "{source}: {}",
            reply.body
        );
        assert_eq!(w.queue.len(), 1, "{source}");
    }

    let mut group = c.benchmark_group("webhook_handle");
    group.throughput(Throughput::Bytes(BODY_BYTES as u64));
    group.measurement_time(Duration::from_secs(5));
    for (source, (body, headers)) in &cases {
        group.bench_function(*source, |b| {
            b.to_async(&rt).iter_batched(
                || fresh(&settings),
                |w| async move {
                    let reply = w
                        .handle(
                            black_box(source),
                            black_box(headers),
                            black_box(body.as_bytes()),
                            now(),
                            Some("bench".into()),
                        )
                        .await;
                    // Returned, so the store, the queued job and the reply drop outside the timing.
                    (reply, w)
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("apigw");
    group.throughput(Throughput::Bytes(BODY_BYTES as u64));
    group.measurement_time(Duration::from_secs(5));
    for (source, (body, headers)) in &cases {
        let event = apigw_event(source, headers, body);
        {
            let w = fresh(&settings);
            let request = lambda_http::request::from_str(&event).expect("an API Gateway v2 event");
            let response = rt
                .block_on(lambda_handler(&w, request))
                .expect("a response");
            assert_eq!(response.status(), StatusCode::OK, "{source}");
            assert_eq!(w.queue.len(), 1, "{source}");
        }
        group.bench_function(*source, |b| {
            b.to_async(&rt).iter_batched(
                || fresh(&settings),
                |w| {
                    let event = &event;
                    async move {
                        let request = lambda_http::request::from_str(black_box(event))
                            .expect("an API Gateway v2 event");
                        let response = lambda_handler(&w, request).await;
                        (response, w)
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
