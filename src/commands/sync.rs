//! `deskbridge sync SOURCE`: queues a start request, as the schedule does, and with `--wait`
//! follows the run until it ends.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::Registry;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Queue, SqsQueue};
use deskbridge_shared::state::streams::RunStatus;
use deskbridge_sync::{SyncMessage, all_stream_states, known_streams};

use super::status::print_status;
use crate::output::Progress;

/// What `deskbridge sync` asks of a run besides its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// Only these streams (all of the source's when empty).
    pub streams: Vec<String>,
    /// Read everything again.
    pub full: bool,
    /// Read from this time instead of the bookmark.
    pub since: Option<DateTime<Utc>>,
    /// Records per page.
    pub batch_size: Option<u32>,
}

/// Reads `--since`: a day (`2026-11-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{text}` is not a date: write 2026-11-01 or 2026-11-01T09:30:00Z"))
}

/// The start messages of a request: one per named stream, or one for the whole source.
pub fn start_messages(source: &Source, request: &SyncRequest) -> Vec<SyncMessage> {
    let streams: Vec<Option<String>> = if request.streams.is_empty() {
        vec![None]
    } else {
        request.streams.iter().cloned().map(Some).collect()
    };
    streams
        .into_iter()
        .map(|stream| SyncMessage::Start {
            source: Some(source.clone()),
            stream,
            full: request.full,
            since: request.since,
            page_size: request.batch_size,
        })
        .collect()
}

/// Queues a start request, as the schedule does; the sync function (or `deskbridge serve`)
/// runs it. With `wait`, follows the streams until they are idle.
pub async fn sync(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    source: &str,
    request: &SyncRequest,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let source: Source = source.parse()?;
    for s in &request.streams {
        if !known_streams(&source).contains(&s.as_str()) {
            bail!(
                "{source} has no stream `{s}` (streams: {})",
                known_streams(&source).join(", ")
            );
        }
        if !settings.file.stream_enabled(&source, s) {
            bail!(
                "{source}/{s} is switched off in the configuration file, so the sync function \
                 would not run it: set `connectors.{source}.sync.{s}: true` (and deploy it)"
            );
        }
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
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk));
    for message in start_messages(&source, request) {
        queue.send(url, &serde_json::to_string(&message)?).await?;
    }
    let what = if request.streams.is_empty() {
        format!("{source}")
    } else {
        request
            .streams
            .iter()
            .map(|s| format!("{source}/{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut how = Vec::new();
    if request.full {
        how.push("full".to_string());
    }
    if let Some(since) = request.since {
        how.push(format!("from {}", since.to_rfc3339()));
    }
    if let Some(n) = request.batch_size {
        how.push(format!("{n} per page"));
    }
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" ({})", how.join(", "))
    };
    println!("sync of {what} requested{how}");
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
        let states = all_stream_states(&store, settings).await?;
        let mine: Vec<_> = states
            .iter()
            .filter(|(id, _, _)| {
                id.source == source
                    && (request.streams.is_empty() || request.streams.contains(&id.stream))
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
