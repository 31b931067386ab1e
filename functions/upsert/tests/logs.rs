//! Log lines of the upsert handler. In a test binary of its own: `tracing` caches per call site
//! whether anyone listens, and tests running beside a capturing one on other threads can make
//! that cache miss the capture.

use chrono::Utc;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryStateStore, NoLookup};
use deskbridge_shared::model::{Job, Origin, Person, Record, Source};
use deskbridge_shared::testkit::brevo::fast_client;
use deskbridge_upsert::{Message, Upserter};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The JSON log lines of a webhook job's trip to Brevo: every `brevo call` line carries the job's
/// correlation id (the webhook invocation's request id) through the message span, so one id
/// follows a delivery from the webhook to the Brevo request it caused.
#[tokio::test]
async fn every_brevo_call_line_carries_the_jobs_correlation_id() {
    let server = MockServer::start().await;
    // A first answer 500 (retried), then 201 Created.
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let upserter = Upserter::new(
        fast_client(&server),
        MemoryStateStore::new(),
        NoLookup,
        Mapping::default(),
    );
    let job = Job {
        id: "zendesk:delivery-1".into(),
        source: Source::Zendesk,
        origin: Origin::Webhook,
        received_at: Utc::now(),
        correlation_id: Some("corr-1".into()),
        records: vec![Record {
            person: Person {
                source_id: Some("901".into()),
                email: Some("Jane@Example.com".into()),
                ..Default::default()
            },
            observed_at: Utc::now(),
            ..Default::default()
        }],
    };

    let (dispatch, logs) = deskbridge_shared::telemetry::capture_json("info");
    let report = {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        upserter
            .handle(&[Message {
                message_id: "m-1".into(),
                body: serde_json::to_string(&job).expect("serialises"),
                receive_count: 1,
                retry: None,
            }])
            .await
    };
    assert!(report.failed.is_empty(), "{report:?}");

    let lines = logs.json_lines();
    let calls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "brevo call")
        .collect();
    assert_eq!(calls.len(), 2, "one line per request: {lines:#?}");
    for call in &calls {
        assert_eq!(call["path"], "/contacts");
        let spans = call["spans"].as_array().expect("the span list");
        assert!(
            spans
                .iter()
                .any(|s| s["correlation_id"] == "corr-1" && s["job_id"] == job.id),
            "{call}"
        );
        // The line names the request, never the contact.
        assert!(
            !call.to_string().to_lowercase().contains("@example.com"),
            "{call}"
        );
    }
    assert_eq!(calls[0]["status"], 500);
    assert_eq!(calls[1]["status"], 201);
}
