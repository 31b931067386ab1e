//! The shape of the functions' JSON log lines, as Lambda reads them. A test binary of its own:
//! tracing caches per call site whether anyone listens, and tests running beside a capturing one
//! on other threads can make that cache miss the capture.

use deskbridge_shared::metrics::Metrics;
use deskbridge_shared::telemetry::capture_json_for;
use serde_json::Value;

/// Whether `s` is an RFC 3339 timestamp in UTC, as Lambda's log-level filter needs it.
fn is_rfc3339_utc(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|t| t.offset().local_minus_utc() == 0)
}

#[test]
fn lines_carry_time_level_message_function_request_id_and_cold_start() {
    let (dispatch, logs) = capture_json_for("info", Some("stack-UpsertFunction-1"));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("source zendesk: webhooks on");
        for request_id in ["r-1", "r-2"] {
            // The runtime's span (lambda_runtime's TracingLayer), then the function's own.
            let runtime = tracing::info_span!("Lambda runtime invoke", requestId = request_id);
            let _r = runtime.enter();
            let invocation = tracing::info_span!("upsert_invocation", request_id = %request_id);
            let _i = invocation.enter();
            let message = tracing::info_span!("message", job_id = "j-1", correlation_id = "c-1");
            let _m = message.enter();
            tracing::info!(path = "/contacts", status = 201, "brevo call");
            tracing::warn!("brevo slow");
            tracing::debug!("filtered out");
        }
        tracing::error!("outside any invocation");
    });
    let lines = logs.json_lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(logs.lines().len(), 6, "every line is JSON");
    for line in &lines {
        let ts = line["timestamp"].as_str().unwrap_or_default();
        assert!(is_rfc3339_utc(ts), "timestamp {ts:?} in {line}");
        assert!(line["message"].is_string(), "{line}");
        assert!(line.get("fields").is_none(), "fields are flattened: {line}");
        assert_eq!(line["function_name"], "stack-UpsertFunction-1", "{line}");
        assert!(line["cold_start"].is_boolean(), "{line}");
    }
    let levels: Vec<&str> = lines.iter().filter_map(|l| l["level"].as_str()).collect();
    assert_eq!(levels, ["INFO", "INFO", "WARN", "INFO", "WARN", "ERROR"]);

    // Start-up: before the first invocation, part of the cold start, no request id.
    assert_eq!(lines[0]["message"], "source zendesk: webhooks on");
    assert_eq!(lines[0]["cold_start"], true);
    assert!(lines[0].get("requestId").is_none(), "{}", lines[0]);

    // The first invocation is the cold start, the second is not; each line names its request.
    for (line, request_id, cold) in [
        (&lines[1], "r-1", true),
        (&lines[2], "r-1", true),
        (&lines[3], "r-2", false),
        (&lines[4], "r-2", false),
    ] {
        assert_eq!(line["requestId"], request_id, "{line}");
        assert_eq!(line["cold_start"], cold, "{line}");
    }
    let call = &lines[3];
    assert_eq!(call["message"], "brevo call");
    assert_eq!(call["path"], "/contacts");
    assert_eq!(call["status"], 201);
    let spans = call["spans"].as_array().expect("the span list");
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        ["Lambda runtime invoke", "upsert_invocation", "message"]
    );
    assert_eq!(spans[2]["correlation_id"], "c-1");
    // The head of the line reads in a fixed order.
    let raw = &logs.lines()[3];
    assert!(raw.starts_with(r#"{"timestamp":""#), "{raw}");
    let order: Vec<usize> = [
        "\"level\"",
        "\"message\"",
        "\"function_name\"",
        "\"cold_start\"",
        "\"requestId\"",
    ]
    .iter()
    .filter_map(|k| raw.find(k))
    .collect();
    assert!(
        order.len() == 5 && order.windows(2).all(|w| w[0] < w[1]),
        "{raw}"
    );

    // After the invocations, a line outside any is not part of the cold start.
    assert_eq!(lines[5]["cold_start"], false);
    assert!(lines[5].get("requestId").is_none());
}

#[test]
fn a_span_with_only_the_functions_request_id_is_an_invocation_too() {
    // The webhook's span carries `request_id` (the local runner has no runtime span); no
    // function name outside Lambda.
    let (dispatch, logs) = capture_json_for("debug", None);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("webhook", request_id = "w-1", source = "zendesk");
        let _s = span.enter();
        tracing::debug!(status = 200, "delivery queued");
    });
    let lines = logs.json_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["requestId"], "w-1");
    assert_eq!(lines[0]["level"], "DEBUG");
    assert_eq!(lines[0]["cold_start"], true);
    assert!(lines[0].get("function_name").is_none());
}

#[test]
fn metric_lines_are_info_with_their_own_timestamp() {
    // Lambda files a JSON line without `level` as INFO and drops it under a WARN or ERROR
    // log level; the metric lines say INFO themselves, and the template allows no level above.
    let (metrics, lines) = Metrics::memory("fn");
    let mut doc = metrics.document();
    doc.count("DeliveriesAccepted", 1);
    metrics.emit(&doc);
    let docs = lines.documents();
    assert_eq!(docs.len(), 1);
    let line: &Value = &docs[0];
    assert_eq!(line["level"], "INFO");
    let ts = line["timestamp"].as_str().unwrap_or_default();
    assert!(is_rfc3339_utc(ts), "{line}");
    let ms = line["_aws"]["Timestamp"].as_i64().expect("EMF timestamp");
    let parsed = chrono::DateTime::parse_from_rfc3339(ts).expect("rfc3339");
    assert_eq!(parsed.timestamp_millis(), ms, "one instant, two spellings");
}
