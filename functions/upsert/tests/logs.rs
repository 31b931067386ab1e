//! The JSON log lines of a webhook job's trip to Brevo: the `brevo call` line of every request
//! carries the job's correlation id (the webhook invocation's request id), through the message
//! span, so one id follows a delivery from the webhook to the Brevo request it caused.

use std::time::Duration;

use chrono::Utc;
use deskbridge_shared::brevo::{BrevoClient, RetryPolicy};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::MemoryStateStore;
use deskbridge_shared::model::{Job, Origin, Person, Record, Source};
use deskbridge_shared::sources::{LookupError, PersonLookup};
use deskbridge_shared::telemetry;
use deskbridge_upsert::{Message, Upserter};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// No helpdesk API: the record names its person itself.
struct NoLookup;

#[async_trait::async_trait]
impl PersonLookup for NoLookup {
    async fn lookup(
        &self,
        _source: &Source,
        _id: &str,
    ) -> Result<Option<(Person, Value)>, LookupError> {
        Ok(None)
    }
}

#[tokio::test]
async fn every_brevo_call_line_carries_the_jobs_correlation_id() {
    let server = MockServer::start().await;
    // A first answer 500 (retried), then Brevo's 201 Created for a new contact.
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 42})))
        .mount(&server)
        .await;
    let brevo = BrevoClient::new("xkeysib-test", &format!("{}/v3", server.uri()))
        .expect("client builds")
        .with_retry(RetryPolicy {
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        });
    let upserter = Upserter::new(brevo, MemoryStateStore::new(), NoLookup, Mapping::default());
    let job = Job {
        id: "zendesk:delivery-7".into(),
        source: Source::Zendesk,
        origin: Origin::Webhook,
        received_at: Utc::now(),
        correlation_id: Some("req-8476a536".into()),
        records: vec![Record {
            person: Person {
                source_id: Some("901".into()),
                email: Some("jane@example.com".into()),
                ..Default::default()
            },
            observed_at: Utc::now(),
            ..Default::default()
        }],
    };
    let message = Message {
        message_id: "m-1".into(),
        body: serde_json::to_string(&job).expect("job serialises"),
        receive_count: 1,
    };

    let (dispatch, logs) = telemetry::capture_json("info");
    let report = {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        upserter.handle(&[message]).await
    };
    assert!(report.failed.is_empty(), "{report:?}");

    let lines = logs.json_lines();
    let calls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "brevo call")
        .collect();
    assert_eq!(calls.len(), 2, "one line per request: {lines:#?}");
    for call in &calls {
        assert_eq!(call["fields"]["path"], "/contacts");
        let spans = call["spans"].as_array().expect("the span list");
        assert!(
            spans
                .iter()
                .any(|s| s["correlation_id"] == "req-8476a536" && s["job_id"] == job.id),
            "{call}"
        );
        // The line names the request, never the contact.
        assert!(!call.to_string().contains("jane@example.com"), "{call}");
    }
    assert_eq!(calls[0]["fields"]["status"], 500);
    assert_eq!(calls[1]["fields"]["status"], 201);
}
