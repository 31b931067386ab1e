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
    // The backfill lane: the same visibility, its dead letters in the upsert dead-letter queue.
    let backfill = resource(&t, "BackfillQueue");
    assert!(
        backfill.contains(&format!(
            "VisibilityTimeout: {}",
            infra::UPSERT_VISIBILITY_SECONDS
        )) && backfill.contains("deadLetterTargetArn: !GetAtt UpsertDeadLetterQueue.Arn")
            && backfill.contains(&format!("maxReceiveCount: {}", infra::MAX_RECEIVE_COUNT)),
        "{backfill}"
    );
    let sync = resource(&t, "SyncQueue");
    assert!(
        sync.contains(&format!(
            "VisibilityTimeout: {}",
            infra::SYNC_VISIBILITY_SECONDS
        )),
        "{sync}"
    );
    assert!(sync.contains(&format!("maxReceiveCount: {}", infra::MAX_RECEIVE_COUNT)));
    for queue in [&upsert, &backfill, &sync] {
        assert!(
            queue.contains(&format!(
                "MessageRetentionPeriod: {}",
                infra::QUEUE_RETENTION_SECONDS
            )),
            "{queue}"
        );
    }
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
    for function in ["UpsertFunction", "BackfillFunction"] {
        let upsert = resource(&t, function);
        assert!(
            upsert.contains(&format!("Timeout: {}", infra::UPSERT_TIMEOUT_SECONDS))
                && upsert.contains("Binary: deskbridge-upsert"),
            "{upsert}"
        );
    }
    let sync = resource(&t, "SyncFunction");
    assert!(
        sync.contains(&format!("Timeout: {}", infra::SYNC_TIMEOUT_SECONDS)),
        "{sync}"
    );
    // Their queues reach them through plain event source mappings with partial batch answers.
    for (mapping, queue, function) in [
        ("UpsertFunctionJobs", "UpsertQueue", "UpsertFunction"),
        ("BackfillFunctionJobs", "BackfillQueue", "BackfillFunction"),
        ("SyncFunctionPages", "SyncQueue", "SyncFunction"),
    ] {
        let text = resource(&t, mapping);
        assert!(
            text.contains("Type: AWS::Lambda::EventSourceMapping")
                && text.contains(&format!("EventSourceArn: !GetAtt {queue}.Arn"))
                && text.contains(&format!("FunctionName: !Ref {function}"))
                && text.contains("ReportBatchItemFailures"),
            "{text}"
        );
    }
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
        "DeliveriesRejected",
    ] {
        assert!(t.contains(name), "template.yaml does not read {name}");
    }
    let stalled = resource(&t, "SyncStalledAlarm");
    assert!(stalled.contains("MetricName: SyncProgress"), "{stalled}");
    assert!(stalled.contains("TreatMissingData: breaching"), "{stalled}");
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    for alarm in [
        "SyncDeadLetterAlarm",
        "UpsertDeadLetterAlarm",
        "UpsertQueueStuckAlarm",
        "WebhookApi5xxAlarm",
        "WebhookAuthRejectedAlarm",
        "WebhookErrorRateAlarm",
        "UpsertErrorRateAlarm",
        "BackfillErrorRateAlarm",
        "SyncErrorRateAlarm",
        "BrevoThrottleAlarm",
        "BrevoOutageAlarm",
        "BrevoKeyRefusedAlarm",
        "SyncStalledAlarm",
    ] {
        assert!(alarms.iter().any(|a| a == alarm), "no alarm {alarm}");
    }
    // Every alarm, these and any added later, notifies the topic when it fires and recovers.
    for alarm in &alarms {
        let text = resource(&t, alarm);
        for actions in ["AlarmActions", "OKActions"] {
            assert!(
                text.contains(&format!(
                    "{actions}: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]"
                )),
                "{alarm} does not notify the alarm topic ({actions})"
            );
        }
    }
}

#[test]
fn new_alarms_read_the_metrics_that_mean_what_they_say() {
    let t = template();
    // HTTP API metrics: `5xx` and `Count` in AWS/ApiGateway by ApiId and Stage.
    let api = resource(&t, "WebhookApi5xxAlarm");
    for needle in [
        "Namespace: AWS/ApiGateway",
        "MetricName: 5xx",
        "MetricName: Count",
        "Name: ApiId",
        "Value: !Ref WebhookApi",
        "Name: Stage",
        "Value: $default",
    ] {
        assert!(api.contains(needle), "{needle} in {api}");
    }
    // The webhook's 401s: DeliveriesRejected published under [Function, Reason] (the rollup of
    // `Reply::metrics`), Reason `auth`.
    let auth = resource(&t, "WebhookAuthRejectedAlarm");
    for needle in [
        "Namespace: deskbridge",
        "MetricName: DeliveriesRejected",
        "Name: Function",
        "Value: !Ref WebhookFunction",
        "Name: Reason",
        "Value: auth",
        "Threshold: !Ref AuthRejectedAlarmThreshold",
    ] {
        assert!(auth.contains(needle), "{needle} in {auth}");
    }
    let dimensions = auth.matches("- Name: ").count();
    assert_eq!(dimensions, 2, "exactly the rollup's dimension set: {auth}");
    // The upsert queue read by nobody.
    let stuck = resource(&t, "UpsertQueueStuckAlarm");
    for needle in [
        "Namespace: AWS/SQS",
        "MetricName: ApproximateAgeOfOldestMessage",
        "Value: !GetAtt UpsertQueue.QueueName",
        "Threshold: !Ref UpsertQueueAgeAlarmSeconds",
        "new message",
    ] {
        assert!(stuck.contains(needle), "{needle} in {stuck}");
    }
    // Its threshold can never be reached by a message waiting for its retry while the queue is
    // read: the longest retry delay plus the visibility timeout.
    let age = resource(&t, "UpsertQueueAgeAlarmSeconds");
    let min_age = number_after(&age, "MinValue: ");
    let max_delay = number_after(&resource(&t, "RetryMaxDelaySeconds"), "MaxValue: ");
    assert!(
        min_age >= max_delay + u64::from(infra::UPSERT_VISIBILITY_SECONDS),
        "{age}"
    );
}

#[test]
fn each_function_logs_to_its_own_group_with_a_retention() {
    let t = template();
    let retention = resource(&t, "LogRetentionDays");
    assert!(retention.contains("Default: 30"), "{retention}");
    for (function, group, suffix) in [
        ("WebhookFunction", "WebhookLogGroup", "webhook"),
        ("UpsertFunction", "UpsertLogGroup", "upsert"),
        ("BackfillFunction", "BackfillLogGroup", "backfill"),
        ("SyncFunction", "SyncLogGroup", "sync"),
    ] {
        let text = resource(&t, group);
        assert!(text.contains("Type: AWS::Logs::LogGroup"), "{text}");
        assert!(
            text.contains(&format!(
                "LogGroupName: !Sub /aws/lambda/${{AWS::StackName}}-{suffix}"
            )),
            "{text}"
        );
        assert!(
            text.contains("RetentionInDays: !Ref LogRetentionDays"),
            "{text}"
        );
        let f = resource(&t, function);
        assert!(
            f.contains(&format!("LoggingConfig:\n        LogGroup: !Ref {group}")),
            "{function} does not log to {group}"
        );
    }
    // The JSON format and the level stay global.
    assert!(t.contains("LogFormat: JSON") && t.contains("ApplicationLogLevel: !Ref LogLevel"));
}

#[test]
fn no_log_level_can_drop_the_metric_lines() {
    use std::str::FromStr;
    use tracing::Level;
    use tracing::level_filters::LevelFilter;

    let t = template();
    let param = resource(&t, "LogLevel");
    let allowed = param
        .lines()
        .find_map(|l| l.trim().strip_prefix("AllowedValues: "))
        .unwrap_or_else(|| panic!("LogLevel has allowed values: {param}"));
    let values: Vec<&str> = allowed
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(str::trim)
        .collect();
    assert!(!values.is_empty());
    let metric_level = Level::from_str(deskbridge_shared::metrics::LEVEL).expect("a level");
    for value in values {
        let filter = LevelFilter::from_str(value).unwrap_or_else(|_| panic!("{value}"));
        // Lambda keeps a line whose level is at or above the function's log level.
        assert!(
            filter >= metric_level,
            "LogLevel {value} would drop the metric lines ({metric_level})"
        );
    }
    assert!(param.contains("Default: INFO"), "{param}");
}

#[test]
fn roles_allow_only_what_the_code_does() {
    let t = template();
    // No state-store code updates an item.
    assert!(!t.contains("dynamodb:UpdateItem"), "UpdateItem is granted");
    let state = concat!(env!("CARGO_MANIFEST_DIR"), "/shared/src/state");
    for entry in std::fs::read_dir(state).expect("shared/src/state") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let code = std::fs::read_to_string(&path).expect("source");
            assert!(
                !code.contains("update_item"),
                "{} calls UpdateItem",
                path.display()
            );
        }
    }
    // No SAM `SQS` event: SAM would add AWSLambdaSQSQueueExecutionRole (Resource: *).
    assert!(!t.contains("Type: SQS"), "a SAM SQS event");
    assert!(
        !t.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("AWSLambdaSQSQueueExecutionRole")),
        "the SQS managed policy is attached"
    );
    // Each function has a role of its own, declared here: SAM's `Policies` would attach
    // AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess (`Resource: *`) besides.
    for function in [
        "WebhookFunction",
        "UpsertFunction",
        "BackfillFunction",
        "SyncFunction",
    ] {
        let body = resource(&t, function);
        assert!(
            body.contains(&format!("Role: !GetAtt {function}Role.Arn")),
            "{function} has its own role"
        );
        assert!(!body.contains("Policies:"), "{function} has SAM policies");
        let role = resource(&t, &format!("{function}Role"));
        assert!(role.contains("Sid: WriteLogs"), "{role}");
    }
    assert!(
        !t.contains("ManagedPolicyArns"),
        "a managed policy is attached"
    );
    // `*` only where the service has no resource-level permissions (X-Ray's write actions).
    let lines: Vec<&str> = t.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "Resource: \"*\"" {
            let statement: Vec<&str> = lines[i.saturating_sub(6)..i].to_vec();
            assert!(
                statement.iter().any(|l| l.contains("Sid: WriteTraces"))
                    && statement
                        .iter()
                        .filter(|l| l.trim_start().starts_with("- ") && l.contains(':'))
                        .filter(|l| !l.contains("Sid:"))
                        .all(|l| l.contains("xray:")),
                "a `Resource: *` grant other than X-Ray's: {statement:#?}"
            );
        }
    }
    // Each function consumes only its own queue.
    let upsert = resource(&t, "UpsertFunctionRole");
    let consume = upsert
        .split("Sid: ConsumeJobs")
        .nth(1)
        .expect("the upsert function's consume statement");
    let consume: String = consume.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(
        consume.contains("sqs:ReceiveMessage")
            && consume.contains("sqs:DeleteMessage")
            && consume.contains("sqs:GetQueueAttributes")
            && consume.contains("Resource: !GetAtt UpsertQueue.Arn"),
        "{consume}"
    );
    let backfill = resource(&t, "BackfillFunctionRole");
    let consume = backfill
        .split("Sid: ConsumeJobs")
        .nth(1)
        .expect("the backfill function's consume statement");
    let consume: String = consume.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(
        consume.contains("Resource: !GetAtt BackfillQueue.Arn"),
        "{consume}"
    );
    let sync = resource(&t, "SyncFunctionRole");
    // The stream store's batch read (the sync's start) is granted to the sync function.
    let dynamo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/shared/src/state/dynamo.rs"
    ))
    .expect("source");
    let state = sync
        .split("Sid: StreamState")
        .nth(1)
        .expect("the sync function's stream state statement");
    let state: String = state.lines().take(8).collect::<Vec<_>>().join("\n");
    assert_eq!(
        dynamo.contains("batch_get_item"),
        state.contains("dynamodb:BatchGetItem"),
        "{state}"
    );
    let pages = sync
        .split("Sid: PageJobs")
        .nth(1)
        .expect("the sync function's page statement");
    let pages: String = pages.lines().take(9).collect::<Vec<_>>().join("\n");
    assert!(
        pages.contains("sqs:ReceiveMessage") && pages.contains("Resource: !GetAtt SyncQueue.Arn"),
        "{pages}"
    );
}

#[test]
fn the_default_brevo_budget_stays_under_brevos_limit() {
    let t = template();
    let per_instance = number_after(&resource(&t, "BrevoRequestsPerSecond"), "Default: ");
    let instances = number_after(&resource(&t, "UpsertMaxConcurrency"), "Default: ")
        + number_after(&resource(&t, "BackfillMaxConcurrency"), "Default: ");
    // Brevo allows 10 requests/s on the contact and event endpoints; both lanes call it.
    assert!(
        per_instance * instances < 10,
        "{per_instance}/s × {instances} instances"
    );
    assert!(
        resource(&t, "BackfillFunction")
            .contains("ReservedConcurrentExecutions: !Ref BackfillMaxConcurrency")
    );
    // Reserved concurrency caps the instances whatever invokes the function.
    assert!(
        resource(&t, "UpsertFunction")
            .contains("ReservedConcurrentExecutions: !Ref UpsertMaxConcurrency")
    );
}

#[test]
fn outputs_name_every_queue_and_the_table() {
    let t = template();
    let outputs = t.split("\nOutputs:\n").nth(1).expect("an Outputs section");
    for (output, value) in [
        ("StateTableName", "!Ref StateTable"),
        ("UpsertQueueUrl", "!Ref UpsertQueue"),
        ("UpsertDeadLetterQueueUrl", "!Ref UpsertDeadLetterQueue"),
        ("BackfillQueueUrl", "!Ref BackfillQueue"),
        ("SyncQueueUrl", "!Ref SyncQueue"),
        ("SyncDeadLetterQueueUrl", "!Ref SyncDeadLetterQueue"),
        ("SecretArn", "!Ref Secrets"),
    ] {
        let text = resource(outputs, output);
        assert!(text.contains(&format!("Value: {value}")), "{text}");
    }
}

/// The names of the top-level resources of type `kind`.
fn resources_of_type(text: &str, kind: &str) -> Vec<String> {
    let marker = format!("    Type: {kind}");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1] == marker)
        .filter_map(|w| {
            w[0].strip_prefix("  ")
                .and_then(|l| l.strip_suffix(':'))
                .map(str::to_string)
        })
        .collect()
}

/// The whole number after `prefix` on a line of `text`.
fn number_after(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix}<number> in {text}"))
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
    let upsert = resource(&t, "UpsertFunctionRole");
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
    let sync = resource(&t, "SyncFunctionRole");
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

/// `NAME` of every `vars.get("NAME")` / `env::var("NAME")` / `const …_VAR: &str = "NAME"` in the
/// product's sources (not its tests).
fn variables_read_by_the_code() -> std::collections::BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src",
        "shared/src",
        "functions/webhook/src",
        "functions/upsert/src",
        "functions/sync/src",
    ] {
        walk(&root.join(dir), &mut files);
    }
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        // Only the code before a file's inline unit tests (`#[cfg(test)] mod tests;` naming a
        // file of its own is skipped by name: such files are called tests.rs).
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default();
        for marker in [
            ".get(\"",
            "env::var(\"",
            "env::var_os(\"",
            "_VAR: &str = \"",
        ] {
            for (at, _) in text.match_indices(marker) {
                // `.get(` reads a variable when called on the settings variables (`vars`, `env`),
                // possibly on the next line of a chain.
                let receiver = text[..at].trim_end();
                if marker == ".get(\"" && !(receiver.ends_with("vars") || receiver.ends_with("env"))
                {
                    continue;
                }
                let rest = &text[at + marker.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if rest[name.len()..].starts_with('"') && name.len() > 2 {
                    names.insert(name);
                }
            }
        }
    }
    names
}

#[test]
fn every_variable_the_code_reads_is_set_by_the_template_held_in_the_secret_or_documented() {
    let t = template();
    // Set by the template: the keys of every `Variables:` block.
    let mut set = std::collections::BTreeSet::new();
    let lines: Vec<&str> = t.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "Variables:" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        for l in lines[i + 1..]
            .iter()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .take_while(|l| l.len() - l.trim_start().len() > indent)
        {
            if let Some((k, _)) = l.trim().split_once(':') {
                set.insert(k.to_string());
            }
        }
    }
    // Held in the secret: the names the Secrets resource's comment lists.
    let secrets_at = lines
        .iter()
        .position(|l| *l == "  Secrets:")
        .expect("the Secrets resource");
    let secret_comment: String = lines[..secrets_at]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with('#'))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    // Documented (and so optional where neither sets it): the README's configuration tables.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let documented = |name: &str| {
        readme.lines().filter(|l| l.starts_with("| `")).any(|l| {
            l.split('|')
                .nth(1)
                .is_some_and(|cell| cell.contains(&format!("`{name}`")))
        })
    };
    // Set by Lambda itself in every execution environment.
    let lambda = ["AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME"];
    let read = variables_read_by_the_code();
    assert!(
        read.contains("STATE_TABLE") && read.contains("DESKBRIDGE_CONFIG"),
        "{read:?}"
    );
    // Every variable is in the README's tables (a user can look any of them up); one that the
    // template neither sets nor lists among the secret's keys must be optional, which is what
    // its row says (the deployed proof, tests/deployed.rs, fails when a needed one is missing).
    let unaccounted: Vec<String> = read
        .iter()
        .filter(|name| !lambda.contains(&name.as_str()) && !documented(name))
        .map(|name| {
            let origin = if set.contains(name) {
                "set by the template"
            } else if secret_comment.contains(name.as_str()) {
                "held in the secret"
            } else {
                "optional"
            };
            format!("{name} ({origin}): not in the README's configuration table")
        })
        .collect();
    assert!(unaccounted.is_empty(), "{unaccounted:#?}");
    // And the template sets nothing the code never reads.
    let unread: Vec<&String> = set.iter().filter(|n| !read.contains(*n)).collect();
    assert!(
        unread.is_empty(),
        "template variables no code reads: {unread:?}"
    );
}
