//! One module per `deskbridge` command. Each command's core takes its inputs (settings,
//! clients, an output writer) so the tests call it directly; `main.rs` parses the arguments,
//! loads the settings and picks stdout.

pub mod bootstrap;
pub mod check;
pub mod config;
pub mod connect;
pub mod demo;
pub mod migrate;
pub mod needs;
pub mod plan;
pub mod preview;
pub mod replay;
pub mod serve;
pub mod status;
pub mod sync;

use deskbridge_shared::brevo::{BrevoClient, RetryPolicy};
use deskbridge_shared::config::Settings;
use deskbridge_shared::state::DynamoStateStore;

/// `1 message`, `2 messages`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The live Brevo client for `plan` and `check` (no retries: an operator is waiting and a
/// failure is the answer), or `None` without BREVO_API_KEY.
pub fn brevo_client(settings: &Settings) -> anyhow::Result<Option<BrevoClient>> {
    let Some(key) = settings.brevo.api_key.as_deref() else {
        return Ok(None);
    };
    Ok(Some(
        BrevoClient::new(key, &settings.brevo.base_url)?.with_retry(RetryPolicy::none()),
    ))
}

/// The state table named by STATE_TABLE (or the stack's output).
pub fn state_store(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
) -> anyhow::Result<DynamoStateStore> {
    Ok(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        settings.require_state_table()?,
    ))
}
