//! Loading settings the way the functions do.

use anyhow::Context;
use deskbridge_shared::aws;
use deskbridge_shared::config::{Settings, Vars};

use crate::stack;

/// SDK configuration and settings (environment over the optional Secrets Manager secret).
pub async fn load() -> anyhow::Result<(aws_config::SdkConfig, Settings)> {
    let sdk = aws::sdk_config().await;
    let vars = aws::load_vars(&sdk).await?;
    let settings = Settings::from_vars(&vars).context("reading settings")?;
    Ok((sdk, settings))
}

/// As [`load`], and with `stack` (`--stack-name` / `DESKBRIDGE_STACK`) the stack's outputs under
/// the environment: a variable set in the environment wins over the output. Fails, naming the
/// stack and the output, when the stack does not exist or provides none of a variable in
/// `needed` by `command`. Also returns the variables, for lookups beyond [`Settings`].
pub async fn load_for(
    stack: Option<&str>,
    command: &str,
    needed: &[&str],
) -> anyhow::Result<(aws_config::SdkConfig, Settings, Vars)> {
    let sdk = aws::sdk_config().await;
    let mut vars = Vars::from_env();
    if let Some(stack) = stack.map(str::trim).filter(|s| !s.is_empty()) {
        let from_stack = stack::variables(&sdk, stack).await?;
        stack::require(stack, command, &from_stack, |name| vars.get(name), needed)?;
        for (variable, value) in &from_stack {
            if let Some(set) = vars.get(variable)
                && set != *value
            {
                eprintln!(
                    "{variable} is set in the environment; it wins over stack `{stack}`'s output {}",
                    stack::output_for(variable).unwrap_or("?")
                );
            }
        }
        vars = vars.with_fallback(from_stack);
    }
    let vars = aws::load_vars_over(&sdk, vars).await?;
    let settings = Settings::from_vars(&vars).context("reading settings")?;
    Ok((sdk, settings, vars))
}
