//! Operator commands against a deployment (or the local moto): `sync` and `status`.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use deskbridge_shared::config::Settings;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Queue, SqsQueue};
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::state::streams::{RunStatus, StreamState};
use deskbridge_sync::{SyncMessage, all_stream_states, known_streams};

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
        bail!(
            "{source}'s API is off here ({}), so a sync would read nothing: {}",
            api_state(settings, &source),
            match source {
                Source::Zendesk =>
                    "set ZENDESK_SUBDOMAIN and ZENDESK_OAUTH_CLIENT_ID/ZENDESK_OAUTH_CLIENT_SECRET (or ZENDESK_OAUTH_TOKEN)",
                Source::Intercom => "set INTERCOM_ACCESS_TOKEN",
                Source::Gorgias => "set GORGIAS_DOMAIN, GORGIAS_EMAIL and GORGIAS_API_KEY",
                Source::Generic(_) => "generic sources only receive webhooks",
            }
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
    let store = store(sdk, settings)?;
    let started = Utc::now();
    let deadline = std::time::Instant::now() + wait;
    let mut seen_running = false;
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
        eprint!(
            "\r{what}: {} · {read} records read   ",
            if running { "running" } else { "waiting" }
        );
        if finished_since_request || (seen_running && !running) {
            eprintln!();
            print_status(&states, Some(&source));
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            eprintln!();
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

fn store(sdk: &aws_config::SdkConfig, settings: &Settings) -> anyhow::Result<DynamoStateStore> {
    Ok(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        settings.require_state_table()?,
    ))
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn short(s: Option<&str>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.chars().count() > 24 => format!("{}…", s.chars().take(23).collect::<String>()),
        Some(s) => s.to_string(),
    }
}

/// Prints one block per stream.
pub fn print_status(
    states: &[(
        deskbridge_shared::state::streams::StreamId,
        StreamState,
        bool,
    )],
    only: Option<&Source>,
) {
    println!(
        "{:<32} {:<8} {:<25} {:<19} {:<19} {:>8} {:>8} {:>7} {:>7} {:>6}",
        "stream",
        "state",
        "cursor",
        "last run start",
        "last run end",
        "read",
        "contacts",
        "events",
        "skipped",
        "failed"
    );
    for (id, st, stored) in states {
        if only.is_some_and(|s| &id.source != s) {
            continue;
        }
        if !stored {
            println!("{:<32} never run", id.to_string());
            continue;
        }
        let (state, figures, start, end) = match st.status {
            RunStatus::Running => ("running", st.run, st.run_started_at, None),
            RunStatus::Idle => (
                "idle",
                st.last_run,
                st.last_run_started_at,
                st.last_run_ended_at,
            ),
        };
        println!(
            "{:<32} {:<8} {:<25} {:<19} {:<19} {:>8} {:>8} {:>7} {:>7} {:>6}",
            id.to_string(),
            state,
            short(st.cursor.as_deref().or(st.bookmark.as_deref())),
            when(start),
            when(end),
            figures.records_read,
            figures.contacts,
            figures.events,
            figures.skipped,
            figures.failed,
        );
        if let Some(e) = &st.last_error {
            println!("{:<32} last error: {e}", "");
        }
    }
}

/// `deskbridge status`.
pub async fn status(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    watch: bool,
) -> anyhow::Result<()> {
    let store = store(sdk, settings)?;
    loop {
        let states = all_stream_states(&store).await?;
        if watch {
            print!("\x1b[2J\x1b[H");
        }
        print_status(&states, None);
        if !watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
