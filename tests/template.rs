//! template.yaml and `deskbridge bootstrap` create the same resources with the same settings.

use deskbridge_shared::infra;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("template.yaml")
}

/// The lines of the top-level resource `name` (its header and everything indented under it).
fn resource(text: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = text.lines().skip_while(|l| *l != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("resource {name} in template.yaml"));
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    format!("{first}\n{}", body.join("\n"))
}

#[test]
fn queues_match_the_bootstrap_definitions() {
    let t = template();
    let upsert = resource(&t, "UpsertQueue");
    assert!(
        upsert.contains(&format!(
            "VisibilityTimeout: {}",
            infra::UPSERT_VISIBILITY_SECONDS
        )),
        "{upsert}"
    );
    assert!(upsert.contains(&format!("maxReceiveCount: {}", infra::MAX_RECEIVE_COUNT)));
    let sync = resource(&t, "SyncQueue");
    assert!(
        sync.contains(&format!(
            "VisibilityTimeout: {}",
            infra::SYNC_VISIBILITY_SECONDS
        )),
        "{sync}"
    );
    assert!(sync.contains(&format!("maxReceiveCount: {}", infra::MAX_RECEIVE_COUNT)));
    for dlq in ["UpsertDeadLetterQueue", "SyncDeadLetterQueue"] {
        assert!(resource(&t, dlq).contains(&format!(
            "MessageRetentionPeriod: {}",
            infra::DLQ_RETENTION_SECONDS
        )));
    }
}

#[test]
fn functions_time_out_within_their_queue_visibility() {
    let t = template();
    let upsert = resource(&t, "UpsertFunction");
    assert!(
        upsert.contains(&format!("Timeout: {}", infra::UPSERT_TIMEOUT_SECONDS)),
        "{upsert}"
    );
    assert!(upsert.contains("ReportBatchItemFailures"));
    let sync = resource(&t, "SyncFunction");
    assert!(
        sync.contains(&format!("Timeout: {}", infra::SYNC_TIMEOUT_SECONDS)),
        "{sync}"
    );
    assert!(sync.contains("ReportBatchItemFailures"));
}

#[test]
fn table_matches_the_state_store() {
    let t = template();
    let table = resource(&t, "StateTable");
    assert!(table.contains(&format!(
        "AttributeName: {}",
        deskbridge_shared::state::dynamo::PK
    )));
    assert!(table.contains(&format!(
        "AttributeName: {}",
        deskbridge_shared::state::dynamo::TTL_ATTRIBUTE
    )));
    assert!(table.contains("PAY_PER_REQUEST"));
}

#[test]
fn alarms_and_dashboard_read_the_metrics_the_functions_emit() {
    let t = template();
    assert!(t.contains(&format!(
        "Namespace: {}",
        deskbridge_shared::metrics::NAMESPACE
    )));
    // Names the functions write (webhook lib.rs, upsert main.rs, sync lib.rs) and the template
    // reads; a rename on either side breaks a graph or an alarm without any other test noticing.
    for name in [
        "DeliveriesAccepted",
        "DeliveriesDeduplicated",
        "DeliveriesIgnored",
        "DeliveriesRejected",
        "BrevoCalls",
        "BrevoThrottled",
        "BrevoErrors",
        "BrevoWaitTime",
        "UpsertBatchDuration",
        "UpsertContacts",
        "SyncRecordsRead",
        "SyncRecordsWritten",
        "SyncLag",
        "SyncProgress",
        "UpsertMessagesDelayed",
        "UpsertMessagesHeld",
        "UpsertDeadLettered",
        "BrevoAuthFailures",
    ] {
        assert!(t.contains(name), "template.yaml does not read {name}");
    }
    let stalled = resource(&t, "SyncStalledAlarm");
    assert!(stalled.contains("MetricName: SyncProgress"), "{stalled}");
    assert!(stalled.contains("TreatMissingData: breaching"), "{stalled}");
    for alarm in [
        "SyncDeadLetterAlarm",
        "UpsertDeadLetterAlarm",
        "WebhookErrorRateAlarm",
        "UpsertErrorRateAlarm",
        "SyncErrorRateAlarm",
        "BrevoThrottleAlarm",
        "BrevoOutageAlarm",
        "BrevoKeyRefusedAlarm",
        "SyncStalledAlarm",
    ] {
        let text = resource(&t, alarm);
        assert!(
            text.contains("AlarmActions: !If [HasAlarmEmail, [!Ref AlarmTopic]"),
            "{alarm} does not notify the alarm topic"
        );
    }
}

#[test]
fn functions_retry_on_their_own_queue_and_dead_letter_past_the_horizon() {
    let t = template();
    // Every function gets the retry policy and both dead-letter queues.
    for var in [
        "SYNC_DLQ_URL: !Ref SyncDeadLetterQueue",
        "UPSERT_DLQ_URL: !Ref UpsertDeadLetterQueue",
        "RETRY_HORIZON_SECONDS: !Ref RetryHorizonSeconds",
        "RETRY_MAX_DELAY_SECONDS: !Ref RetryMaxDelaySeconds",
    ] {
        assert!(t.contains(var), "template.yaml does not set {var}");
    }
    // The upsert function sends failing messages back to its own queue, or to its DLQ.
    let upsert = resource(&t, "UpsertFunction");
    let retry = upsert
        .split("Sid: RetryLaterOrDeadLetter")
        .nth(1)
        .expect("the upsert function's retry statement");
    let retry: String = retry.lines().take(6).collect::<Vec<_>>().join("\n");
    assert!(
        retry.contains("sqs:SendMessage")
            && retry.contains("UpsertQueue.Arn")
            && retry.contains("UpsertDeadLetterQueue.Arn"),
        "{retry}"
    );
    let sync = resource(&t, "SyncFunction");
    assert!(sync.contains("SyncDeadLetterQueue.Arn"), "{sync}");
    // The defaults are the code's.
    let policy = deskbridge_shared::queue::RetryPolicy::default();
    let horizon = resource(&t, "RetryHorizonSeconds");
    assert!(
        horizon.contains(&format!("Default: {}", policy.horizon.as_secs())),
        "{horizon}"
    );
    let delay = resource(&t, "RetryMaxDelaySeconds");
    assert!(
        delay.contains(&format!("Default: {}", policy.max_delay.as_secs())),
        "{delay}"
    );
}
