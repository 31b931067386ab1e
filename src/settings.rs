//! Loading settings the way the functions do.

use anyhow::Context;
use deskbridge_shared::aws;
use deskbridge_shared::config::Settings;

/// SDK configuration and settings (environment over the optional Secrets Manager secret).
pub async fn load() -> anyhow::Result<(aws_config::SdkConfig, Settings)> {
    let sdk = aws::sdk_config().await;
    let vars = aws::load_vars(&sdk).await?;
    let settings = Settings::from_vars(&vars).context("reading settings")?;
    Ok((sdk, settings))
}
