//! `deskbridge status`: per stream, its state, cursor, last run and counters, as plain lines,
//! a table or one JSON document.

use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deskbridge_shared::config::Settings;
use deskbridge_shared::model::Source;
use deskbridge_shared::state::streams::{RunStatus, StreamState};
use deskbridge_sync::all_stream_states;
use serde::Serialize;

use crate::output::{self, Format};

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

/// One stream as `deskbridge status` shows it (and `--json` prints it): the running run's
/// figures while one runs, else the last run's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStatus {
    /// `zendesk/tickets`.
    pub stream: String,
    pub source: String,
    /// `never_run`, `idle` or `running`.
    pub state: &'static str,
    /// Where the running run continues, else where the next run starts.
    pub cursor: Option<String>,
    pub run_started_at: Option<DateTime<Utc>>,
    /// `None` while the run goes on.
    pub run_ended_at: Option<DateTime<Utc>>,
    pub records_read: u64,
    pub contacts: u64,
    pub events: u64,
    pub skipped: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// What `status` says of one helpdesk as a whole (the seed's connection summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    pub source: String,
    /// Its API is configured here and no stream's latest run ended in an error.
    pub connected: bool,
    /// When its latest completed run ended.
    pub last_sync: Option<DateTime<Utc>>,
    /// People read by the sync, over every run (customers, users, contacts).
    pub customers: u64,
    /// Tickets or conversations read, over every run.
    pub tickets_tracked: u64,
    /// Satisfaction responses read, over every run; `None` where they come with the tickets.
    pub csat_responses: Option<u64>,
}

/// The summary of every helpdesk (further accounts included) whose API is configured here or that
/// has synced before.
pub fn source_statuses(
    settings: &Settings,
    states: &[(
        deskbridge_shared::state::streams::StreamId,
        StreamState,
        bool,
    )],
) -> Vec<SourceStatus> {
    let registry = deskbridge_shared::helpdesk::Registry::built_in();
    // The built-in helpdesks, then the further accounts the file names.
    let sources: Vec<Source> = Source::BUILT_IN
        .iter()
        .cloned()
        .chain(settings.account_sources())
        .collect();
    sources
        .iter()
        .filter_map(|source| {
            let mine: Vec<&(_, StreamState, bool)> = states
                .iter()
                .filter(|(id, _, stored)| &id.source == source && *stored)
                .collect();
            let configured = settings.api_enabled(source);
            if !configured && mine.is_empty() {
                return None;
            }
            let roles = registry.get(source).and_then(|h| h.check_streams());
            // Completed runs, plus the one going on.
            let read = |stream: &str| -> u64 {
                mine.iter()
                    .filter(|(id, _, _)| id.stream == stream)
                    .map(|(_, st, _)| {
                        let running = st.status == RunStatus::Running;
                        st.total.records_read + if running { st.run.records_read } else { 0 }
                    })
                    .sum()
            };
            Some(SourceStatus {
                source: source.to_string(),
                connected: configured && mine.iter().all(|(_, st, _)| st.last_error.is_none()),
                last_sync: mine
                    .iter()
                    .filter_map(|(_, st, _)| st.last_run_ended_at)
                    .max(),
                customers: roles.as_ref().map_or(0, |r| read(r.people)),
                tickets_tracked: roles.as_ref().map_or(0, |r| read(r.tickets)),
                csat_responses: roles.as_ref().and_then(|r| r.csat).map(read),
            })
        })
        .collect()
}

/// The streams of `states` (those of `only` when given), as `status` shows them.
pub fn stream_statuses(
    states: &[(
        deskbridge_shared::state::streams::StreamId,
        StreamState,
        bool,
    )],
    only: Option<&Source>,
) -> Vec<StreamStatus> {
    states
        .iter()
        .filter(|(id, _, _)| only.is_none_or(|s| &id.source == s))
        .map(|(id, st, stored)| {
            let (state, figures, start, end) = match (stored, st.status) {
                (false, _) => ("never_run", Default::default(), None, None),
                (true, RunStatus::Running) => ("running", st.run, st.run_started_at, None),
                (true, RunStatus::Idle) => (
                    "idle",
                    st.last_run,
                    st.last_run_started_at,
                    st.last_run_ended_at,
                ),
            };
            let figures: deskbridge_shared::state::streams::RunStats = figures;
            StreamStatus {
                stream: id.to_string(),
                source: id.source.to_string(),
                state,
                cursor: if *stored {
                    st.cursor.clone().or_else(|| st.bookmark.clone())
                } else {
                    None
                },
                run_started_at: start,
                run_ended_at: end,
                records_read: figures.records_read,
                contacts: figures.contacts,
                events: figures.events,
                skipped: figures.skipped,
                failed: figures.failed,
                last_error: if *stored { st.last_error.clone() } else { None },
            }
        })
        .collect()
}

const STATUS_HEADER: [&str; 10] = [
    "stream",
    "state",
    "cursor",
    "last run start",
    "last run end",
    "read",
    "contacts",
    "events",
    "skipped",
    "failed",
];

/// One helpdesk's summary line: `gorgias: connected, last sync …, customers …`.
fn source_line(s: &SourceStatus) -> String {
    let csat = s
        .csat_responses
        .map_or_else(|| "with the tickets".to_string(), |n| n.to_string());
    format!(
        "{}: {}, last sync {}, customers {}, tickets tracked {}, CSAT responses {csat}",
        s.source,
        if s.connected {
            "connected"
        } else {
            "not connected"
        },
        s.last_sync
            .map_or_else(|| "never".to_string(), |t| when(Some(t))),
        s.customers,
        s.tickets_tracked,
    )
}

/// Writes `streams` and then `sources` in `format`: plain lines (one per stream, aligned, and a
/// `last error:` line under a stream that has one; then one summary line per helpdesk), tables,
/// or `{"streams": […], "sources": […]}`.
pub fn write_status(
    streams: &[StreamStatus],
    sources: &[SourceStatus],
    format: Format,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return output::write_json(
            out,
            &serde_json::json!({ "streams": streams, "sources": sources }),
        );
    }
    write_streams(streams, format, out)?;
    if sources.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    for s in sources {
        writeln!(out, "{}", source_line(s))?;
    }
    Ok(())
}

fn write_streams(
    streams: &[StreamStatus],
    format: Format,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match format {
        Format::Json => output::write_json(out, &serde_json::json!({ "streams": streams })),
        Format::Table => {
            let with_errors = streams.iter().any(|s| s.last_error.is_some());
            let mut header = STATUS_HEADER.to_vec();
            if with_errors {
                header.push("last error");
            }
            let mut table = output::table(&header);
            for s in streams {
                let mut row = if s.state == "never_run" {
                    let mut row = vec![s.stream.clone(), "never run".to_string()];
                    row.extend(std::iter::repeat_n("-".to_string(), 8));
                    row
                } else {
                    vec![
                        s.stream.clone(),
                        s.state.to_string(),
                        short(s.cursor.as_deref()),
                        when(s.run_started_at),
                        when(s.run_ended_at),
                        s.records_read.to_string(),
                        s.contacts.to_string(),
                        s.events.to_string(),
                        s.skipped.to_string(),
                        s.failed.to_string(),
                    ]
                };
                if with_errors {
                    row.push(s.last_error.clone().unwrap_or_default());
                }
                table.add_row(row);
            }
            output::align_right(&mut table, &[5, 6, 7, 8, 9]);
            writeln!(out, "{table}")?;
            Ok(())
        }
        Format::Plain => {
            let [a, b, c, d, e, f, g, h, i, j] = STATUS_HEADER;
            writeln!(
                out,
                "{a:<32} {b:<8} {c:<25} {d:<19} {e:<19} {f:>8} {g:>8} {h:>7} {i:>7} {j:>6}"
            )?;
            for s in streams {
                if s.state == "never_run" {
                    writeln!(out, "{:<32} never run", s.stream)?;
                    continue;
                }
                writeln!(
                    out,
                    "{:<32} {:<8} {:<25} {:<19} {:<19} {:>8} {:>8} {:>7} {:>7} {:>6}",
                    s.stream,
                    s.state,
                    short(s.cursor.as_deref()),
                    when(s.run_started_at),
                    when(s.run_ended_at),
                    s.records_read,
                    s.contacts,
                    s.events,
                    s.skipped,
                    s.failed,
                )?;
                if let Some(e) = &s.last_error {
                    writeln!(out, "{:<32} last error: {e}", "")?;
                }
            }
            Ok(())
        }
    }
}

/// Prints the streams (of `only` when given) on stdout: a table on a terminal, else lines.
pub fn print_status(
    states: &[(
        deskbridge_shared::state::streams::StreamId,
        StreamState,
        bool,
    )],
    only: Option<&Source>,
) -> anyhow::Result<()> {
    let format = output::FormatArgs::default().resolve();
    write_status(
        &stream_statuses(states, only),
        &[],
        format,
        &mut std::io::stdout().lock(),
    )
}

/// `deskbridge status`: once, or every 2 seconds with `watch` (clearing a terminal first).
pub async fn status(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    watch: bool,
    format: Format,
) -> anyhow::Result<()> {
    let store = super::state_store(sdk, settings)?;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let mut states = all_stream_states(&store, settings).await?;
        // A stream switched off (or not opted in to) is shown only once it has run.
        states.retain(|(id, _, stored)| {
            *stored || settings.file.stream_enabled(&id.source, &id.stream)
        });
        if watch {
            if terminal {
                print!("\x1b[2J\x1b[H");
            } else {
                println!();
            }
        }
        write_status(
            &stream_statuses(&states, None),
            &source_statuses(settings, &states),
            format,
            &mut std::io::stdout().lock(),
        )?;
        if !watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
