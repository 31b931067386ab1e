//! AWS SDK set-up shared by the functions and the CLI.

use std::collections::HashMap;

use aws_config::BehaviorVersion;

use crate::config::{ConfigError, Vars};

/// Loads the SDK configuration from the standard variables (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// credentials chain). Local runs point `AWS_ENDPOINT_URL` at a moto server.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads the JSON object of `DESKBRIDGE_SECRET_ARN` (when set) and lays the environment over it.
pub async fn load_vars(sdk: &aws_config::SdkConfig) -> Result<Vars, ConfigError> {
    load_vars_over(sdk, Vars::from_env()).await
}

/// As [`load_vars`], with `vars` in place of the environment (the CLI adds a stack's outputs
/// under it).
pub async fn load_vars_over(sdk: &aws_config::SdkConfig, vars: Vars) -> Result<Vars, ConfigError> {
    let Some(arn) = vars.get("DESKBRIDGE_SECRET_ARN") else {
        return Ok(vars);
    };
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let out = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            arn: arn.clone(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    let text = out.secret_string().unwrap_or_default();
    let parsed: HashMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| ConfigError::Secret {
            arn: arn.clone(),
            reason: format!("not a JSON object: {e}"),
        })?;
    let secret = parsed
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect();
    Ok(vars.with_fallback(secret))
}
