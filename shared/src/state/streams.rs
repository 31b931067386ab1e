//! Per-stream batch-sync state: the lease that keeps two runs of a stream apart, the cursor
//! the next page starts from, the durable bookmark the next run starts from, and run figures.
//!
//! Every change is an optimistic, conditional write on `version`: a page job carries the version
//! it was issued for, so a redelivered or duplicated job can neither advance the cursor twice nor
//! move it backwards.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StateError;
use crate::model::Source;

/// Whether a run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    #[default]
    Idle,
    Running,
}

/// Figures of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunStats {
    pub pages: u64,
    pub records_read: u64,
    pub contacts: u64,
    pub events: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// `pages=10 records_read=1500 contacts=1500 events=0 skipped=0 failed=0`, for log lines.
impl std::fmt::Display for RunStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pages={} records_read={} contacts={} events={} skipped={} failed={}",
            self.pages, self.records_read, self.contacts, self.events, self.skipped, self.failed
        )
    }
}

impl RunStats {
    pub fn add(&mut self, other: &RunStats) {
        self.pages += other.pages;
        self.records_read += other.records_read;
        self.contacts += other.contacts;
        self.events += other.events;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

/// The stored state of one stream (`zendesk/tickets`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamState {
    pub status: RunStatus,
    /// Bumped by every change; page jobs name the version they continue from.
    pub version: u64,
    pub run_id: Option<String>,
    /// A running stream whose lease has passed is taken over by the next start.
    pub lease_until: Option<DateTime<Utc>>,
    /// Whether the current run reads everything (`--full`) rather than since the bookmark.
    pub full: bool,
    /// The time the current run reads from instead of the bookmark (`--since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Records per page the current run asks for (`--batch-size`); the default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Where the next page of the current run starts (the API's own cursor).
    pub cursor: Option<String>,
    /// Where the next run starts (Zendesk's after_cursor, or a time watermark).
    pub bookmark: Option<String>,
    /// Whether the job for the current version has been queued (so a redelivered older job
    /// does not queue it again).
    pub next_queued: bool,
    pub run_started_at: Option<DateTime<Utc>>,
    /// Timeline events of happenings before this time are not sent by the sync (a backfill must
    /// not start automations for the past); set when the stream first runs.
    pub events_since: Option<DateTime<Utc>>,
    pub last_run_started_at: Option<DateTime<Utc>>,
    pub last_run_ended_at: Option<DateTime<Utc>>,
    pub last_progress_at: Option<DateTime<Utc>>,
    pub run: RunStats,
    pub last_run: RunStats,
    /// Every completed run's figures added up (`deskbridge status`: customers synced, tickets
    /// tracked, CSAT responses).
    #[serde(default)]
    pub total: RunStats,
    pub last_error: Option<String>,
}

impl StreamState {
    /// Whether a run holds a live lease at `now`.
    pub fn is_leased(&self, now: DateTime<Utc>) -> bool {
        self.status == RunStatus::Running && self.lease_until.is_some_and(|t| t > now)
    }
}

/// Names a stream: `zendesk` + `tickets`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub source: Source,
    pub stream: String,
}

impl StreamId {
    pub fn new(source: Source, stream: impl Into<String>) -> Self {
        StreamId {
            source,
            stream: stream.into(),
        }
    }

    /// Key in the state table.
    pub fn key(&self) -> String {
        format!("stream#{}#{}", self.source, self.stream)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.source, self.stream)
    }
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Written; the new state with the revision it now has.
    Done(Box<Stored>),
    /// Someone else changed the stream first (a duplicate job, a concurrent start).
    Conflict,
}

/// A stream state as stored, with its revision (`None`: never stored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    pub state: StreamState,
    pub rev: Option<u64>,
}

/// Storage of stream states with conditional writes on a revision number that every write bumps.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// The state of a stream (default state when never run).
    async fn load(&self, id: &StreamId) -> Result<Stored, StateError>;
    /// The states of several streams, in the order of `ids`. One read each unless the store can
    /// do better (DynamoDB: one `BatchGetItem` for up to 100).
    async fn load_many(&self, ids: &[StreamId]) -> Result<Vec<Stored>, StateError> {
        let mut all = Vec::with_capacity(ids.len());
        for id in ids {
            all.push(self.load(id).await?);
        }
        Ok(all)
    }
    /// Writes `next` if the stored revision is still `rev` (`None`: only if nothing is stored);
    /// the written state then has revision [`next_rev`]`(rev)`.
    async fn save(
        &self,
        id: &StreamId,
        rev: Option<u64>,
        next: &StreamState,
    ) -> Result<Write, StateError>;
}

/// The revision a successful [`StreamStore::save`] on revision `rev` leaves.
pub fn next_rev(rev: Option<u64>) -> u64 {
    rev.map_or(1, |r| r + 1)
}

/// Result of asking to start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A new run (or a takeover of a run whose lease passed); queue a page job for `version`.
    Started {
        run_id: String,
        version: u64,
        resumed: bool,
        /// The stream as the start wrote it: noting its page job as queued needs no new read.
        written: Box<Stored>,
    },
    /// A run holds the lease.
    Busy {
        run_id: Option<String>,
        lease_until: Option<DateTime<Utc>>,
        /// The version whose page job was never noted as queued (a send that failed after the
        /// lease was taken): the caller queues it again. A copy of a job that did reach the
        /// queue is harmless, because only one job can record a version.
        unqueued: Option<u64>,
    },
}

/// How a run reads: everything (`full`), or from a time (`since`) instead of the bookmark, and
/// how many records per page (`page_size`, the function's default when `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    #[serde(default)]
    pub full: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

impl RunOptions {
    /// A run that reads everything, or continues from the bookmark.
    pub fn full(full: bool) -> Self {
        RunOptions {
            full,
            ..Default::default()
        }
    }
}

/// Takes the lease of a stream for a new run. A run whose lease passed (a crashed worker) is
/// taken over: its cursor and figures are kept, so it continues where it stopped.
pub async fn start_run(
    store: &impl StreamStore,
    id: &StreamId,
    run_id: &str,
    options: &RunOptions,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Start, StateError> {
    start_run_from(store, id, None, run_id, options, now, lease).await
}

/// [`start_run`] from a state already read (`loaded`, e.g. by [`StreamStore::load_many`]): the
/// first attempt needs no read of its own; a conflicting write reads again.
pub async fn start_run_from(
    store: &impl StreamStore,
    id: &StreamId,
    mut loaded: Option<Stored>,
    run_id: &str,
    options: &RunOptions,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Start, StateError> {
    let full = options.full;
    for _ in 0..3 {
        let Stored { state, rev } = match loaded.take() {
            Some(stored) => stored,
            None => store.load(id).await?,
        };
        if state.is_leased(now) {
            let unqueued =
                (state.status == RunStatus::Running && !state.next_queued).then_some(state.version);
            return Ok(Start::Busy {
                run_id: state.run_id,
                lease_until: state.lease_until,
                unqueued,
            });
        }
        let mut next = state.clone();
        // A crashed run is continued, unless a full run is asked for and the crashed one was not,
        // or a run from another time.
        let resumed = state.status == RunStatus::Running
            && (!full || state.full)
            && (options.since.is_none() || options.since == state.since);
        if !resumed {
            next.cursor = None;
            next.run = RunStats::default();
            next.run_started_at = Some(now);
            next.full = full;
            next.since = options.since;
            next.page_size = options.page_size;
            next.last_error = None;
            if full {
                next.bookmark = None;
            }
        }
        if next.events_since.is_none() {
            next.events_since = Some(now);
        }
        next.status = RunStatus::Running;
        next.run_id = Some(run_id.to_string());
        next.version = state.version + 1;
        next.lease_until = Some(now + chrono::Duration::from_std(lease).unwrap_or_default());
        next.next_queued = false;
        next.last_progress_at = Some(now);
        match store.save(id, rev, &next).await? {
            Write::Done(saved) => {
                return Ok(Start::Started {
                    run_id: run_id.to_string(),
                    version: saved.state.version,
                    resumed,
                    written: saved,
                });
            }
            Write::Conflict => continue,
        }
    }
    Err(StateError(format!(
        "stream {id} kept changing while starting a run"
    )))
}

/// Figures and positions after one page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageProgress {
    pub stats: RunStats,
    /// Cursor of the next page; `None` when the run reached the end.
    pub next_cursor: Option<String>,
    /// A new durable bookmark, stored now (Zendesk) or when the run ends (watermarks).
    pub bookmark: Option<String>,
    /// Store the bookmark with this page rather than at the end of the run.
    pub bookmark_now: bool,
}

/// Records a page: moves the cursor from `version` to `version + 1`, or ends the run.
/// `Conflict` means the job was a duplicate or stale; its output was idempotent and it stops here.
pub async fn advance(
    store: &impl StreamStore,
    id: &StreamId,
    run_id: &str,
    version: u64,
    progress: &PageProgress,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Write, StateError> {
    let Stored { state, rev } = store.load(id).await?;
    if rev.is_none()
        || state.version != version
        || state.run_id.as_deref() != Some(run_id)
        || state.status != RunStatus::Running
    {
        return Ok(Write::Conflict);
    }
    let mut next = state.clone();
    next.version = version + 1;
    next.run.add(&progress.stats);
    next.last_progress_at = Some(now);
    next.next_queued = false;
    let ends = progress.next_cursor.is_none();
    if progress.bookmark.is_some() && (progress.bookmark_now || ends) {
        next.bookmark = progress.bookmark.clone();
    }
    if ends {
        next.status = RunStatus::Idle;
        next.cursor = None;
        next.lease_until = None;
        next.last_run = next.run;
        next.total.add(&next.run);
        next.last_run_started_at = next.run_started_at;
        next.last_run_ended_at = Some(now);
        next.full = false;
        next.since = None;
        next.page_size = None;
    } else {
        next.cursor = progress.next_cursor.clone();
        next.lease_until = Some(now + chrono::Duration::from_std(lease).unwrap_or_default());
    }
    store.save(id, rev, &next).await
}

/// Notes that the job for `version` is queued.
pub async fn mark_queued(
    store: &impl StreamStore,
    id: &StreamId,
    version: u64,
    written: Option<&Stored>,
) -> Result<Write, StateError> {
    // The state this process just wrote, when it has it: the conditional write below fails
    // anyway if anything changed since.
    let Stored { state, rev } = match written {
        Some(w) => w.clone(),
        None => store.load(id).await?,
    };
    if rev.is_none() || state.version != version {
        return Ok(Write::Conflict);
    }
    let mut next = state;
    next.next_queued = true;
    store.save(id, rev, &next).await
}

/// Records a failed page without moving the cursor (the job is retried by SQS).
pub async fn note_error(
    store: &impl StreamStore,
    id: &StreamId,
    message: &str,
) -> Result<(), StateError> {
    let Stored { state, rev } = store.load(id).await?;
    if rev.is_none() {
        return Ok(());
    }
    let mut next = state;
    next.last_error = Some(message.chars().take(500).collect());
    // A conflict means the stream moved on; the note is stale then and can be dropped.
    let _ = store.save(id, rev, &next).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_stats_print_as_name_value_pairs() {
        let stats = RunStats {
            pages: 10,
            records_read: 1500,
            contacts: 1500,
            ..Default::default()
        };
        assert_eq!(
            stats.to_string(),
            "pages=10 records_read=1500 contacts=1500 events=0 skipped=0 failed=0"
        );
    }
}
