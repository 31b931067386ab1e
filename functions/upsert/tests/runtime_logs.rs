//! Log lines under the Lambda runtime's own invocation span: the span lambda_runtime opens around
//! every invocation gives each line its request id, whatever the handler's spans are. In a test
//! binary of its own (tracing's per-call-site cache, see `logs.rs`).

use lambda_runtime::Context;
use lambda_runtime::layers::trace::request_span;

#[test]
fn every_line_of_an_invocation_names_its_request_and_only_the_first_is_cold() {
    let (dispatch, logs) =
        deskbridge_shared::telemetry::capture_json_for("info", Some("stack-UpsertFunction-1"));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("start-up");
        for request_id in ["7a1f-first", "9c2e-second"] {
            let mut ctx = Context::default();
            ctx.request_id = request_id.to_string();
            let span = request_span(&ctx);
            let _s = span.enter();
            // No span of the handler's own: the line still names the invocation.
            tracing::info!(messages = 3, "batch done");
        }
    });
    let lines = logs.json_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].get("requestId").is_none());
    assert_eq!(lines[0]["cold_start"], true);
    assert_eq!(lines[1]["requestId"], "7a1f-first");
    assert_eq!(lines[1]["cold_start"], true);
    assert_eq!(lines[2]["requestId"], "9c2e-second");
    assert_eq!(lines[2]["cold_start"], false);
    for line in &lines {
        assert_eq!(line["function_name"], "stack-UpsertFunction-1");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].is_string());
    }
    assert_eq!(lines[2]["message"], "batch done");
    assert_eq!(lines[2]["messages"], 3);
}
