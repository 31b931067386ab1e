//! The API Gateway request events in `events/webhook-*.json` (used by `sam local invoke` and
//! the local demo) must stay valid: each is signed with the documented test secret and its
//! body parses to an accepted delivery (the generic sample as examples/cinnox-zapier.yaml
//! configures it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::{self, Parsed, signature};
use deskbridge_shared::model::Source;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

const ZENDESK_TEST_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";
const INTERCOM_TEST_SECRET: &str = "deskbridge-test-intercom-secret";
const GORGIAS_TEST_TOKEN: &str = "deskbridge-test-gorgias-token";
const CINNOX_TEST_TOKEN: &str = "deskbridge-test-cinnox-token";
/// Fixture timestamps are old on purpose; replaying them needs a wide window.
const REPLAY_TOLERANCE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The test secrets, a replay window that accepts the old Zendesk timestamps, and the CINNOX
/// example configuration.
fn settings() -> Settings {
    let cinnox = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cinnox-zapier.yaml");
    Settings::from_vars(&Vars::from_pairs([
        ("ZENDESK_WEBHOOK_SECRET", ZENDESK_TEST_SECRET.to_string()),
        ("INTERCOM_CLIENT_SECRET", INTERCOM_TEST_SECRET.to_string()),
        ("GORGIAS_WEBHOOK_TOKEN", GORGIAS_TEST_TOKEN.to_string()),
        ("CINNOX_WEBHOOK_TOKEN", CINNOX_TEST_TOKEN.to_string()),
        (
            "DESKBRIDGE_SIGNATURE_TOLERANCE_SECONDS",
            REPLAY_TOLERANCE.as_secs().to_string(),
        ),
        ("DESKBRIDGE_CONFIG", cinnox.to_string_lossy().into_owned()),
    ]))
    .expect("test settings")
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("events")
}

fn webhook_events() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("webhook-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

fn headers_of(event: &Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in event["headers"].as_object().expect("headers object") {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value.as_str().expect("header value is text"))
                .expect("header value"),
        );
    }
    headers
}

#[test]
fn every_webhook_event_is_signed_and_parses() {
    let files = webhook_events();
    assert!(
        files.len() >= 7,
        "expected the webhook fixtures of the three helpdesks and CINNOX, found {files:?}"
    );
    let settings = settings();
    let mut generic = 0;
    for file in files {
        let name = file.display().to_string();
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("readable"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event["version"], "2.0", "{name}");
        assert_eq!(event["requestContext"]["http"]["method"], "POST", "{name}");
        assert_eq!(event["isBase64Encoded"], false, "{name}");
        // The two routes of template.yaml.
        let source: Source = match event["pathParameters"]["name"].as_str() {
            Some(generic_name) => {
                assert_eq!(event["routeKey"], "POST /webhooks/generic/{name}", "{name}");
                Source::Generic(generic_name.to_string())
            }
            None => {
                assert_eq!(event["routeKey"], "POST /webhooks/{source}", "{name}");
                event["pathParameters"]["source"]
                    .as_str()
                    .expect("source")
                    .parse()
                    .expect("known source")
            }
        };
        let expected_path = match &source {
            Source::Generic(n) => format!("/webhooks/generic/{n}"),
            other => format!("/webhooks/{}", other.as_str()),
        };
        assert_eq!(event["rawPath"], expected_path, "{name}");
        assert_eq!(
            event["requestContext"]["routeKey"], event["routeKey"],
            "{name}"
        );
        assert_eq!(
            event["requestContext"]["http"]["path"], event["rawPath"],
            "{name}"
        );

        let headers = headers_of(&event);
        assert!(
            headers
                .keys()
                .all(|k| k.as_str() == k.as_str().to_ascii_lowercase()),
            "{name}: API Gateway v2 lower-cases header names"
        );
        let body = event["body"].as_str().expect("body").as_bytes();
        if matches!(source, Source::Generic(_)) {
            generic += 1;
        }
        assert!(settings.webhook_enabled(&source), "{name}");
        assert_eq!(
            helpdesk::verify_webhook(&settings, &source, &headers, body, Utc::now()),
            Ok(()),
            "{name}"
        );

        match helpdesk::parse_webhook(&settings, &source, &headers, body, Utc::now()) {
            Ok(Parsed::Accepted(delivery)) => {
                assert!(!delivery.records.is_empty(), "{name}");
                assert!(
                    delivery.records.iter().all(|r| !r.events.is_empty()),
                    "{name}: every demo fixture carries a timeline event"
                );
            }
            other => panic!("{name}: expected an accepted delivery, got {other:?}"),
        }
    }
    assert_eq!(generic, 1, "one generic (CINNOX) sample");
}

#[test]
fn the_zendesk_fixture_signatures_use_timestamp_then_body() {
    for file in webhook_events()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("zendesk"))
    {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("readable")).expect("json");
        let headers = headers_of(&event);
        let ts = headers["x-zendesk-webhook-signature-timestamp"]
            .to_str()
            .expect("ts");
        let body = event["body"].as_str().expect("body").as_bytes();
        assert_eq!(
            headers["x-zendesk-webhook-signature"]
                .to_str()
                .expect("sig"),
            signature::sign_zendesk(ZENDESK_TEST_SECRET, ts, body)
        );
        // With the normal five-minute window the old fixture is refused as stale.
        assert_eq!(
            signature::verify_zendesk(
                ZENDESK_TEST_SECRET,
                &headers,
                body,
                Utc::now(),
                Duration::from_secs(300)
            ),
            Err(signature::AuthError::Stale)
        );
    }
}
