//! `--stack-name` / `DESKBRIDGE_STACK`: the deployed stack's CloudFormation outputs as the
//! settings variables, so the operator commands reach its resources without exported variables.
//!
//! A variable set in the environment wins over the stack's output (as it wins over the secret);
//! the CLI says so on stderr when the two differ.

use std::collections::HashMap;

use anyhow::bail;
use deskbridge_shared::config::file::{CONFIG_VAR, SECRET_PREFIX};

/// Stack output → settings variable (template.yaml `Outputs:`).
pub const OUTPUT_VARIABLES: &[(&str, &str)] = &[
    ("StateTableName", "STATE_TABLE"),
    ("UpsertQueueUrl", "UPSERT_QUEUE_URL"),
    ("UpsertDeadLetterQueueUrl", "UPSERT_DLQ_URL"),
    ("BackfillQueueUrl", "BACKFILL_QUEUE_URL"),
    ("SyncQueueUrl", "SYNC_QUEUE_URL"),
    ("SyncDeadLetterQueueUrl", "SYNC_DLQ_URL"),
    ("SecretArn", "DESKBRIDGE_SECRET_ARN"),
    // The value becomes `secretsmanager:<ARN>`: the functions' own DESKBRIDGE_CONFIG.
    ("ConfigSecretArn", "DESKBRIDGE_CONFIG"),
    // `deskbridge connect brevo` registers {WebhookBaseUrl}/webhooks/brevo.
    ("WebhookBaseUrl", "DESKBRIDGE_WEBHOOK_BASE_URL"),
];

/// The stack output that carries `variable`, if any.
pub fn output_for(variable: &str) -> Option<&'static str> {
    OUTPUT_VARIABLES
        .iter()
        .find(|(_, v)| *v == variable)
        .map(|(o, _)| *o)
}

/// The settings variables the stack's `outputs` (key, value) provide. Outputs the CLI does not
/// use are ignored, and so are empty values.
pub fn variables_from_outputs<'a>(
    outputs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, String> {
    outputs
        .into_iter()
        .filter_map(|(key, value)| {
            let value = value.trim();
            let (_, variable) = OUTPUT_VARIABLES.iter().find(|(o, _)| *o == key)?;
            if value.is_empty() {
                return None;
            }
            let value = if *variable == CONFIG_VAR {
                format!("{SECRET_PREFIX}{value}")
            } else {
                value.to_string()
            };
            Some(((*variable).to_string(), value))
        })
        .collect()
}

/// Fails, naming the stack and the output, when neither the stack nor the environment (`env`)
/// provides one of the variables `needed` by `command`.
pub fn require(
    stack: &str,
    command: &str,
    from_stack: &HashMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
    needed: &[&str],
) -> anyhow::Result<()> {
    for variable in needed {
        if from_stack.contains_key(*variable) || env(variable).is_some() {
            continue;
        }
        match output_for(variable) {
            Some(output) => bail!(
                "stack `{stack}` has no output `{output}` ({variable}), which `deskbridge {command}` needs"
            ),
            None => bail!(
                "`deskbridge {command}` needs {variable}, which stack `{stack}` does not provide"
            ),
        }
    }
    Ok(())
}

/// The outputs of `stack` (`DescribeStacks`), as (key, value) pairs.
pub async fn outputs(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            let detail = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
            if detail.contains("does not exist") {
                anyhow::anyhow!("stack `{stack}` does not exist (in this account and region)")
            } else {
                anyhow::anyhow!("reading the outputs of stack `{stack}`: {detail}")
            }
        })?;
    let Some(found) = described.stacks().first() else {
        bail!("stack `{stack}` does not exist (in this account and region)");
    };
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect())
}

/// The settings variables of `stack`, read through the SDK configuration `sdk`.
pub async fn variables(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let outputs = outputs(&aws_sdk_cloudformation::Client::new(sdk), stack).await?;
    Ok(variables_from_outputs(
        outputs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_the_cli_uses_becomes_its_variable() {
        let outputs = [
            (
                "WebhookBaseUrl",
                "https://abc.execute-api.eu-west-1.amazonaws.com",
            ),
            (
                "SecretArn",
                "arn:aws:secretsmanager:eu-west-1:1:secret:deskbridge",
            ),
            ("StateTableName", "deskbridge-state"),
            ("UpsertQueueUrl", "https://sqs/1/upsert"),
            ("UpsertDeadLetterQueueUrl", "https://sqs/1/upsert-dlq"),
            ("SyncQueueUrl", "https://sqs/1/sync"),
            ("SyncDeadLetterQueueUrl", "https://sqs/1/sync-dlq"),
            (
                "ConfigSecretArn",
                "arn:aws:secretsmanager:eu-west-1:1:secret:config",
            ),
            ("DashboardUrl", "https://console"),
        ];
        let vars = variables_from_outputs(outputs);
        let expected: HashMap<String, String> = [
            (
                "DESKBRIDGE_WEBHOOK_BASE_URL",
                "https://abc.execute-api.eu-west-1.amazonaws.com",
            ),
            (
                "DESKBRIDGE_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:deskbridge",
            ),
            ("STATE_TABLE", "deskbridge-state"),
            ("UPSERT_QUEUE_URL", "https://sqs/1/upsert"),
            ("UPSERT_DLQ_URL", "https://sqs/1/upsert-dlq"),
            ("SYNC_QUEUE_URL", "https://sqs/1/sync"),
            ("SYNC_DLQ_URL", "https://sqs/1/sync-dlq"),
            (
                "DESKBRIDGE_CONFIG",
                "secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:config",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, expected);
    }

    #[test]
    fn empty_and_unknown_outputs_are_left_out() {
        let vars = variables_from_outputs([
            ("StateTableName", "  "),
            ("ConfigSecretArn", ""),
            ("Other", "x"),
        ]);
        assert!(vars.is_empty(), "{vars:?}");
    }

    #[test]
    fn a_missing_output_is_named_with_the_stack() {
        let from_stack = variables_from_outputs([("StateTableName", "t")]);
        let err = require("prod", "sync", &from_stack, |_| None, &["SYNC_QUEUE_URL"])
            .expect_err("no sync queue");
        let msg = err.to_string();
        assert!(msg.contains("`prod`"), "{msg}");
        assert!(msg.contains("SyncQueueUrl"), "{msg}");
        assert!(msg.contains("deskbridge sync"), "{msg}");

        // The environment may fill the gap; present outputs need nothing more.
        require(
            "prod",
            "sync",
            &from_stack,
            |name| (name == "SYNC_QUEUE_URL").then(|| "https://sqs/1/sync".to_string()),
            &["SYNC_QUEUE_URL", "STATE_TABLE"],
        )
        .expect("all there");
    }

    #[test]
    fn every_output_maps_to_a_distinct_variable() {
        for (output, variable) in OUTPUT_VARIABLES {
            assert_eq!(output_for(variable), Some(*output));
        }
    }
}
