//! `deskbridge bootstrap`: the state table and the queues with their dead-letter queues, where
//! missing, for a local run (moto) or a first try against an account.

use deskbridge_shared::infra;

/// Creates what is missing under `prefix` and prints the `NAME=value` lines to eval.
pub async fn run(sdk: &aws_config::SdkConfig, prefix: &str) -> anyhow::Result<()> {
    let created = infra::bootstrap(
        &aws_sdk_dynamodb::Client::new(sdk),
        &aws_sdk_sqs::Client::new(sdk),
        &infra::Names::new(prefix),
    )
    .await?;
    for line in created.env_lines() {
        println!("{line}");
    }
    Ok(())
}
