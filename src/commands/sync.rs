//! `deskbridge sync SOURCE`: queues a start request, as the schedule does, and with `--wait`
//! follows the run until it ends.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::Registry;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Queue, SqsQueue};
use deskbridge_shared::state::streams::RunStatus;
use deskbridge_sync::{SyncMessage, all_stream_states, known_streams};

use super::status::print_status;
use crate::output::Progress;

/// Queues a start request, as the schedule does; the sync function (or `deskbridge serve`)
/// runs it. With `wait`, follows the streams until they are idle.
pub async fn sync(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    source: &str,
    stream: Option<String>,
    full: bool,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let source: Source = source.parse()?;
    if let Some(s) = &stream
        && !known_streams(&source).contains(&s.as_str())
    {
        bail!(
            "{source} has no stream `{s}` (streams: {})",
            known_streams(&source).join(", ")
        );
    }
    if !settings.api_enabled(&source) {
        let missing = Registry::built_in()
            .get(&source)
            .map(|h| h.missing_api_variables(settings))
            .unwrap_or_default();
        let fix = if missing.is_empty() {
            "it only receives webhooks, or its API is not configured".to_string()
        } else {
            format!("set {}", missing.join(", "))
        };
        bail!(
            "{source}'s API is off here ({}), so a sync would read nothing: {fix}",
            api_state(settings, &source),
        );
    }
    let url = settings
        .sync_queue_url
        .as_deref()
        .context("SYNC_QUEUE_URL must be set (or name the deployed stack with --stack-name)")?;
    let message = SyncMessage::Start {
        source: Some(source.clone()),
        stream: stream.clone(),
        full,
    };
    SqsQueue::new(aws_sdk_sqs::Client::new(sdk))
        .send(url, &serde_json::to_string(&message)?)
        .await?;
    let what = stream
        .as_deref()
        .map_or_else(|| format!("{source}"), |s| format!("{source}/{s}"));
    println!(
        "sync of {what} requested{}",
        if full { " (full)" } else { "" }
    );
    let Some(wait) = wait else {
        println!("follow it with `deskbridge status`");
        return Ok(());
    };
    let store = super::state_store(sdk, settings)?;
    let started = Utc::now();
    let deadline = std::time::Instant::now() + wait;
    let mut seen_running = false;
    let progress = Progress::spinner("records");
    loop {
        let states = all_stream_states(&store).await?;
        let mine: Vec<_> = states
            .iter()
            .filter(|(id, _, _)| {
                id.source == source && stream.as_deref().is_none_or(|s| s == id.stream)
            })
            .collect();
        let running = mine
            .iter()
            .any(|(_, st, _)| st.status == RunStatus::Running);
        seen_running |= running;
        let finished_since_request = mine.iter().all(|(_, st, _)| {
            st.status == RunStatus::Idle && st.last_run_ended_at.is_some_and(|t| t >= started)
        });
        let read: u64 = mine
            .iter()
            .map(|(_, st, _)| st.run.records_read.max(st.last_run.records_read))
            .sum();
        progress.set_position(read);
        progress.set_message(format!(
            "read of {what}, {}",
            if running { "running" } else { "waiting" }
        ));
        if finished_since_request || (seen_running && !running) {
            progress.finish();
            print_status(&states, Some(&source))?;
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            progress.finish();
            bail!(
                "the sync did not finish within {wait:?} (is `deskbridge serve` or the sync function running?)"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the start-up line says of `source`'s API (e.g. `off (no API credentials)`).
fn api_state(settings: &Settings, source: &Source) -> String {
    let prefix = format!("{source}: ");
    settings
        .describe_sources()
        .into_iter()
        .filter_map(|line| line.strip_prefix(&prefix).map(str::to_string))
        .find_map(|rest| rest.split_once("API ").map(|(_, api)| api.to_string()))
        .unwrap_or_else(|| "off".into())
}
