//! `deskbridge migrate`: brings the state table up to this version's layout.

use anyhow::Context;
use deskbridge_shared::config::Settings;

/// `deskbridge migrate`: makes the sent-event records of earlier versions permanent.
pub async fn migrate(sdk: &aws_config::SdkConfig, settings: &Settings) -> anyhow::Result<()> {
    let store = super::state_store(sdk, settings)?;
    let kept = store
        .keep_sent_events()
        .await
        .context("making sent-event records permanent")?;
    println!(
        "{kept} sent-event record(s) in {} made permanent",
        store.table()
    );
    Ok(())
}
