//! A deployed stack as the CLI sees it: a CloudFormation stack in moto whose outputs name
//! bootstrapped resources, and the `deskbridge` binary run against it.

use serde_json::json;

/// Creates, in moto, a stand-in for a deployed stack: a queue of its own (CloudFormation needs
/// one resource) and the template's outputs, carrying the names and URLs of `res` as literals,
/// and `extra` outputs (such as `SecretArn`). `without` outputs are left out.
pub async fn create_stack(
    sdk: &aws_config::SdkConfig,
    res: &deskbridge_shared::infra::Bootstrapped,
    extra: &[(&str, &str)],
    without: &[&str],
) -> String {
    let name = super::unique_prefix("stack");
    let mut outputs = serde_json::Map::new();
    let mut values = vec![
        ("StateTableName", res.table.as_str()),
        ("UpsertQueueUrl", res.upsert_queue_url.as_str()),
        ("UpsertDeadLetterQueueUrl", res.upsert_dlq_url.as_str()),
        ("SyncQueueUrl", res.sync_queue_url.as_str()),
        ("SyncDeadLetterQueueUrl", res.sync_dlq_url.as_str()),
        (
            "WebhookBaseUrl",
            "https://example.execute-api.us-east-1.amazonaws.com",
        ),
    ];
    values.extend(extra.iter().copied());
    for (key, value) in values {
        if !without.contains(&key) {
            outputs.insert(key.into(), json!({ "Value": value }));
        }
    }
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Marker": {
                "Type": "AWS::SQS::Queue",
                "Properties": { "QueueName": format!("{name}-marker") }
            }
        },
        "Outputs": outputs,
    });
    aws_sdk_cloudformation::Client::new(sdk)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .expect("stack created in moto");
    name
}

/// Runs the `deskbridge` binary against moto with only the AWS variables and `env` set (no
/// STATE_TABLE, no queue URLs).
pub async fn deskbridge_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_deskbridge"));
    command
        .args(args)
        .env_clear()
        .env("AWS_ENDPOINT_URL", super::moto_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("running deskbridge")
}
