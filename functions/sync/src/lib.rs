//! The sync function: scheduled, resumable batch sync of the helpdesk APIs.
//!
//! A run is a chain of one-page jobs on the sync queue. The schedule (or `deskbridge sync`)
//! starts a run per enabled stream: it takes the stream's lease in DynamoDB and queues the first
//! page job. Each page job reads exactly one page, sends its records to the upsert queue, then
//! advances the stream's cursor with a conditional write on the version the job was issued for,
//! then queues the next page job. A duplicate or stale job fails the conditional write and stops;
//! a crash replays at most one page (idempotent downstream); a run whose worker died is taken over
//! when its lease passes.
//!
//! Metrics (through the [`Syncer::metrics`] emitter, off unless the caller sets one): per page,
//! with the `Source` and `Stream` dimensions and a per-function rollup,
//! - `SyncRecordsRead`: records the helpdesk API returned;
//! - `SyncRecordsWritten`: records sent to the upsert queue;
//! - `SyncProgress`: 1, the stream's heartbeat (the stalled-sync alarm watches its sum);
//! - `SyncLag` (seconds): now minus the start of the stream's last completed run, the time up to
//!   which every change has been read (absent until a first run completes);
//! - `SyncFetchErrors`: 1 when the page could not be read.
//!
//! A scheduled start with no stream enabled (webhooks only, no API credentials) counts one
//! `SyncProgress` for the function, so that set-up does not look stalled.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deskbridge_shared::helpdesk::Registry;
use deskbridge_shared::metrics::{Document, FUNCTION, Metrics};
use deskbridge_shared::model::{Job, Origin, Record, Source};
use deskbridge_shared::queue::{Message, Queue, Redelivery, Settled};
use deskbridge_shared::state::StateError;
use deskbridge_shared::state::streams::{
    self, PageProgress, RunOptions, RunStats, Start, Stored, StreamId, StreamState, StreamStore,
    Write,
};
use deskbridge_shared::sync::{FetchError, PageRequest, SourceReader};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// How long a run may go without progress before another start takes it over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15 * 60);
/// Records asked for per page; each reader caps it at its API's maximum (Zendesk exports 1,000,
/// Intercom 150, Gorgias 100), so every request carries as much as the API allows.
pub const DEFAULT_PAGE_SIZE: u32 = 1_000;
/// Records per upsert-queue message.
pub const RECORDS_PER_JOB: usize = 50;
/// Upper bound of one upsert-queue message body (SQS allows 256 KiB).
pub const MAX_JOB_BYTES: usize = 200 * 1024;
/// Streams started at once by [`Syncer::start`]: every stream of the three helpdesks (11, with
/// the opt-in ones), so a scheduled start takes about one stream's round trips, not the sum of
/// all of them.
pub const START_CONCURRENCY: usize = 11;

/// The streams of each built-in helpdesk, in the order a run starts them.
pub fn known_streams(source: &Source) -> &'static [&'static str] {
    Registry::built_in().streams(source)
}

/// The stored state of every known stream — the built-in helpdesks', then those of the
/// generic pull sources and the further accounts `settings` describes (never-run streams
/// included, as defaults).
pub async fn all_stream_states(
    store: &impl StreamStore,
    settings: &deskbridge_shared::config::Settings,
) -> Result<Vec<(StreamId, StreamState, bool)>, StateError> {
    let built_in = Registry::built_in()
        .listed()
        .flat_map(|h| {
            h.streams()
                .iter()
                .map(move |s| StreamId::new(h.source(), *s))
        })
        .collect::<Vec<_>>();
    let pulled = settings.file.pulls.iter().flat_map(|(name, pull)| {
        pull.streams()
            .iter()
            .map(move |s| StreamId::new(Source::Generic(name.clone()), *s))
    });
    let accounts = settings.account_sources().flat_map(|source| {
        Registry::built_in()
            .streams(&source)
            .iter()
            .map(move |s| StreamId::new(source.clone(), *s))
    });
    let mut out = Vec::new();
    for id in built_in.into_iter().chain(pulled).chain(accounts) {
        let stored = store.load(&id).await?;
        out.push((id, stored.state, stored.rev.is_some()));
    }
    Ok(out)
}

/// A message on the sync queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncMessage {
    /// Start runs (what the schedule does), for one source/stream or all.
    Start {
        #[serde(default)]
        source: Option<Source>,
        #[serde(default)]
        stream: Option<String>,
        #[serde(default)]
        full: bool,
        /// Read from this time instead of the bookmark.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<DateTime<Utc>>,
        /// Records per page to ask the helpdesk for (capped at its API's maximum).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_size: Option<u32>,
    },
    /// Read the page of `version` of a run.
    Page(PageJob),
}

/// One page of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageJob {
    pub run_id: String,
    pub source: Source,
    pub stream: String,
    pub version: u64,
}

/// A failure that leaves the job for SQS to redeliver.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("queue: {0}")]
    Queue(String),
    #[error("reading {stream}: {error}")]
    Fetch { stream: StreamId, error: FetchError },
    #[error("no reader for {0} (API credentials not configured)")]
    NoReader(Source),
}

/// What happened to a start request for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    pub stream: StreamId,
    pub outcome: Start,
}

/// A stream whose start needs a first page job queued.
struct FirstPage<'a> {
    id: &'a StreamId,
    run_id: &'a str,
    version: u64,
    /// The stream as the start wrote it (`None` for a run found without its job).
    written: Option<&'a Stored>,
}

impl<'a> FirstPage<'a> {
    fn of(report: &'a StartReport) -> Option<Self> {
        match &report.outcome {
            Start::Started {
                run_id,
                version,
                written,
                ..
            } => Some(FirstPage {
                id: &report.stream,
                run_id,
                version: *version,
                written: Some(written),
            }),
            Start::Busy {
                run_id: Some(run_id),
                unqueued: Some(version),
                ..
            } => Some(FirstPage {
                id: &report.stream,
                run_id,
                version: *version,
                written: None,
            }),
            Start::Busy { .. } => None,
        }
    }
}

/// What a page job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageOutcome {
    /// Read and recorded; the run goes on (`done` false) or is complete.
    Advanced { stats: RunStats, done: bool },
    /// A duplicate or stale job: nothing to do.
    Stale,
    /// The page was done but its follow-up job had not been queued; queued now.
    Requeued,
}

/// The sync function's dependencies and settings.
pub struct Syncer<S, Q> {
    pub readers: Vec<Arc<dyn SourceReader>>,
    pub store: S,
    pub queue: Q,
    pub sync_queue_url: String,
    /// Where the records of a page go: the backfill lane (`BACKFILL_QUEUE_URL`) when there is
    /// one, else the upsert queue.
    pub upsert_queue_url: String,
    pub lease: Duration,
    pub page_size: u32,
    /// Send timeline events for happenings before the stream's first run (with their real
    /// dates). Off by default: a backfill must not fire automations for the past.
    pub historical_events: bool,
    /// Streams switched off in the configuration file (`sync: { tickets: false }`).
    pub disabled: Vec<StreamId>,
    /// Where page metrics go ([`Metrics::off`] unless the caller sets one).
    pub metrics: Metrics,
    /// Where failing messages go: back to the sync queue with a delay while the helpdesk is
    /// down (the chain pauses, the cursor stays), to the sync DLQ past the retry horizon.
    /// Without it, failures are left to SQS's redrive limit.
    pub redelivery: Option<Redelivery>,
}

impl<S: StreamStore, Q: Queue> Syncer<S, Q> {
    /// A syncer with default lease, page size and event policy.
    pub fn new(
        readers: Vec<Arc<dyn SourceReader>>,
        store: S,
        queue: Q,
        sync_queue_url: String,
        upsert_queue_url: String,
    ) -> Self {
        Syncer {
            readers,
            store,
            queue,
            sync_queue_url,
            upsert_queue_url,
            lease: DEFAULT_LEASE,
            page_size: DEFAULT_PAGE_SIZE,
            historical_events: false,
            disabled: Vec::new(),
            metrics: Metrics::off(),
            redelivery: None,
        }
    }

    /// A syncer configured from settings: the configuration file's stream switches and event
    /// policy, and the queues of the deployment.
    pub fn from_settings(
        readers: Vec<Arc<dyn SourceReader>>,
        store: S,
        queue: Q,
        settings: &deskbridge_shared::config::Settings,
    ) -> Result<Self, deskbridge_shared::config::ConfigError> {
        use deskbridge_shared::config::ConfigError;
        let sync_url = settings
            .sync_queue_url
            .clone()
            .ok_or(ConfigError::Missing("SYNC_QUEUE_URL"))?;
        // Records read by the sync take the backfill lane when the deployment has one.
        let upsert_url = settings.require_backfill_queue()?.to_string();
        let mut syncer = Syncer::new(readers, store, queue, sync_url, upsert_url);
        syncer.historical_events = settings.file.historical_events;
        syncer.disabled = syncer
            .streams(None, None)
            .into_iter()
            .filter(|id| !settings.file.stream_enabled(&id.source, &id.stream))
            .collect();
        Ok(syncer)
    }

    fn reader(&self, source: &Source) -> Option<&Arc<dyn SourceReader>> {
        self.readers.iter().find(|r| &r.source() == source)
    }

    /// Every stream of the enabled readers, optionally narrowed to one source and stream.
    pub fn streams(&self, source: Option<&Source>, stream: Option<&str>) -> Vec<StreamId> {
        self.readers
            .iter()
            .filter(|r| source.is_none_or(|s| &r.source() == s))
            .flat_map(|r| {
                r.streams()
                    .iter()
                    .filter(|s| stream.is_none_or(|want| want == **s))
                    .map(|s| StreamId::new(r.source(), *s))
                    .collect::<Vec<_>>()
            })
            .filter(|id| !self.disabled.contains(id))
            .collect()
    }

    /// Starts runs, as the schedule does. Streams already running keep going (`Busy`).
    ///
    /// The streams' states are read at once ([`StreamStore::load_many`]: one `BatchGetItem`
    /// deployed), their leases taken side by side (at most [`START_CONCURRENCY`] at once), and
    /// their first page jobs sent together (`SendMessageBatch`, 10 a call); the reports come back
    /// in stream order. When one fails, the others still start and the first error is returned
    /// (the caller retries; streams already started then answer `Busy`, and a page job that never
    /// reached the queue is queued then).
    pub async fn start(
        &self,
        source: Option<&Source>,
        stream: Option<&str>,
        full: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<StartReport>, SyncError> {
        self.start_with(source, stream, &RunOptions::full(full), now)
            .await
    }

    /// [`start`](Self::start) with every option of a run: from a time instead of the
    /// bookmark, and a page size.
    pub async fn start_with(
        &self,
        source: Option<&Source>,
        stream: Option<&str>,
        options: &RunOptions,
        now: DateTime<Utc>,
    ) -> Result<Vec<StartReport>, SyncError> {
        use futures::StreamExt;
        if let Some(s) = source
            && self.reader(s).is_none()
        {
            return Err(SyncError::NoReader(s.clone()));
        }
        let ids = self.streams(source, stream);
        if ids.is_empty() && source.is_none() && stream.is_none() {
            info!("no stream to sync: no helpdesk API credentials, or every stream switched off");
            let mut doc = self.metrics.document();
            doc.count("SyncProgress", 1);
            self.metrics.emit(&doc);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let loaded = self.store.load_many(&ids).await?;
        // The futures are built into a Vec first (see `futures::stream::iter` in the upsert
        // function): a `map` closure would make the `Send` proof higher-ranked.
        let starts: Vec<_> = ids
            .into_iter()
            .zip(loaded)
            .map(|(id, stored)| self.start_stream(id, stored, options, now))
            .collect();
        let results: Vec<Result<StartReport, SyncError>> = futures::stream::iter(starts)
            .buffered(START_CONCURRENCY)
            .collect()
            .await;
        let pages: Vec<FirstPage<'_>> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter_map(FirstPage::of)
            .collect();
        let queued = self.queue_first_pages(&pages).await;
        let reports: Result<Vec<StartReport>, SyncError> = results.into_iter().collect();
        let reports = reports?;
        queued?;
        Ok(reports)
    }

    /// Takes the lease of one stream, from its state as just read.
    async fn start_stream(
        &self,
        id: StreamId,
        stored: Stored,
        options: &RunOptions,
        now: DateTime<Utc>,
    ) -> Result<StartReport, SyncError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let full = options.full;
        let outcome = streams::start_run_from(
            &self.store,
            &id,
            Some(stored),
            &run_id,
            options,
            now,
            self.lease,
        )
        .await?;
        match &outcome {
            Start::Started {
                run_id, resumed, ..
            } => info!(stream = %id, %run_id, resumed, full, "sync run started"),
            Start::Busy {
                run_id: Some(run_id),
                unqueued: Some(version),
                ..
            } => {
                // The run holds the lease but its page job never reached the queue (the send
                // failed, and this start is the retry): queue it, or the run stalls until the
                // lease passes.
                info!(stream = %id, %run_id, version, "sync run going without a queued page; queued again");
            }
            Start::Busy { .. } => info!(stream = %id, "sync run already going; left to finish"),
        }
        Ok(StartReport {
            stream: id,
            outcome,
        })
    }

    /// Sends the first page jobs of the streams just started (10 a call) and notes each as
    /// queued. The notes are best effort, as in [`queue_page`](Self::queue_page).
    async fn queue_first_pages(&self, pages: &[FirstPage<'_>]) -> Result<(), SyncError> {
        use futures::StreamExt;
        if pages.is_empty() {
            return Ok(());
        }
        let bodies = pages
            .iter()
            .map(|p| {
                serde_json::to_string(&SyncMessage::Page(PageJob {
                    run_id: p.run_id.to_string(),
                    source: p.id.source.clone(),
                    stream: p.id.stream.clone(),
                    version: p.version,
                }))
            })
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| SyncError::Queue(e.to_string()))?;
        self.queue
            .send_batch(&self.sync_queue_url, &bodies)
            .await
            .map_err(|e| SyncError::Queue(e.to_string()))?;
        let notes: Vec<_> = pages
            .iter()
            .map(|p| async move {
                if let Err(e) = streams::mark_queued(&self.store, p.id, p.version, p.written).await
                {
                    warn!(stream = %p.id, reason = %e, "could not note the queued page job");
                }
            })
            .collect();
        futures::stream::iter(notes)
            .buffer_unordered(START_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        Ok(())
    }

    /// A metric document of one stream, also rolled up per function.
    fn stream_document(&self, id: &StreamId) -> Document {
        self.metrics
            .document()
            .dimension("Source", &id.source.to_string())
            .dimension("Stream", &id.stream)
            .rollup(&[FUNCTION])
    }

    /// Queues the page job of `version` and notes it as queued; `written` is the stream as this
    /// process just wrote it, when it has it (the note then needs no read).
    async fn queue_page(
        &self,
        id: &StreamId,
        run_id: &str,
        version: u64,
        written: Option<&Stored>,
    ) -> Result<(), SyncError> {
        let job = SyncMessage::Page(PageJob {
            run_id: run_id.to_string(),
            source: id.source.clone(),
            stream: id.stream.clone(),
            version,
        });
        let body = serde_json::to_string(&job).map_err(|e| SyncError::Queue(e.to_string()))?;
        self.queue
            .send(&self.sync_queue_url, &body)
            .await
            .map_err(|e| SyncError::Queue(e.to_string()))?;
        // Best effort: if this note is lost, a redelivered older job queues the page again,
        // and the version check makes the copy harmless.
        if let Err(e) = streams::mark_queued(&self.store, id, version, written).await {
            warn!(stream = %id, reason = %e, "could not note the queued page job");
        }
        Ok(())
    }

    /// Handles one page job.
    pub async fn handle_page(
        &self,
        job: &PageJob,
        now: DateTime<Utc>,
    ) -> Result<PageOutcome, SyncError> {
        let id = StreamId::new(job.source.clone(), job.stream.clone());
        let stored = self.store.load(&id).await?;
        let state = stored.state;
        if state.run_id.as_deref() != Some(job.run_id.as_str()) || stored.rev.is_none() {
            return Ok(PageOutcome::Stale);
        }
        if job.version + 1 == state.version
            && !state.next_queued
            && state.status == streams::RunStatus::Running
        {
            // This job's page was recorded, but the job for the next one never made it to the queue.
            self.queue_page(&id, &job.run_id, state.version, None)
                .await?;
            return Ok(PageOutcome::Requeued);
        }
        if job.version != state.version || state.status != streams::RunStatus::Running {
            return Ok(PageOutcome::Stale);
        }
        let reader = self
            .reader(&job.source)
            .ok_or_else(|| SyncError::NoReader(job.source.clone()))?;
        let request = PageRequest {
            stream: job.stream.clone(),
            cursor: state.cursor.clone(),
            bookmark: if state.full {
                None
            } else {
                state.bookmark.clone()
            },
            full: state.full,
            since: state.since,
            run_started_at: state.run_started_at.unwrap_or(now),
            page_size: state.page_size.unwrap_or(self.page_size),
        };
        let page = match reader.fetch_page(&request).await {
            Ok(p) => p,
            Err(error) => {
                let _ = streams::note_error(&self.store, &id, &error.to_string()).await;
                let mut doc = self.stream_document(&id);
                doc.count("SyncFetchErrors", 1);
                self.metrics.emit(&doc);
                return Err(SyncError::Fetch { stream: id, error });
            }
        };
        for reason in &page.skipped {
            info!(stream = %id, %reason, "record skipped");
        }
        let records = self.filter_events(page.records, &state);
        let stats = RunStats {
            pages: 1,
            records_read: page.read,
            contacts: records.len() as u64,
            events: records.iter().map(|r| r.events.len() as u64).sum(),
            skipped: page.skipped.len() as u64,
            failed: 0,
        };
        self.send_records(&id, job, records, now).await?;
        let progress = PageProgress {
            stats,
            next_cursor: page.next_cursor,
            bookmark: page.bookmark,
            bookmark_now: page.bookmark_now,
        };
        match streams::advance(
            &self.store,
            &id,
            &job.run_id,
            job.version,
            &progress,
            now,
            self.lease,
        )
        .await?
        {
            Write::Conflict => Ok(PageOutcome::Stale),
            Write::Done(written) => {
                let next = &written.state;
                let mut doc = self.stream_document(&id);
                doc.count("SyncRecordsRead", stats.records_read)
                    .count("SyncRecordsWritten", stats.contacts)
                    .count("SyncProgress", 1);
                if let Some(since) = next.last_run_started_at {
                    let lag = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
                    doc.seconds("SyncLag", lag);
                }
                self.metrics.emit(&doc);
                let done = next.status == streams::RunStatus::Idle;
                if done {
                    info!(stream = %id, run_id = %job.run_id, stats = %next.run, "sync run complete");
                } else {
                    self.queue_page(&id, &job.run_id, next.version, Some(&written))
                        .await?;
                }
                Ok(PageOutcome::Advanced { stats, done })
            }
        }
    }

    /// Moves timeline events older than the stream's horizon to `past_events` unless historical
    /// events are on: they still count in the support aggregates, and the records still update
    /// attributes and list membership, but they are not put on the timeline.
    fn filter_events(&self, mut records: Vec<Record>, state: &StreamState) -> Vec<Record> {
        if self.historical_events {
            return records;
        }
        if let Some(since) = state.events_since {
            for r in &mut records {
                let (recent, past) = std::mem::take(&mut r.events)
                    .into_iter()
                    .partition(|e| e.occurred_at >= since);
                r.events = recent;
                r.past_events = past;
            }
        }
        records
    }

    /// Sends records to the upsert queue as jobs of bounded size and count.
    async fn send_records(
        &self,
        id: &StreamId,
        job: &PageJob,
        records: Vec<Record>,
        now: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let mut bodies = Vec::new();
        let mut chunk: Vec<Record> = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut n = 0usize;
        let make = |records: Vec<Record>, n: usize| -> Result<String, SyncError> {
            let job = Job {
                id: format!("sync:{id}:{}:{}:{n}", job.run_id, job.version),
                source: id.source.clone(),
                origin: Origin::Sync,
                received_at: now,
                correlation_id: Some(job.run_id.clone()),
                records,
            };
            serde_json::to_string(&job).map_err(|e| SyncError::Queue(e.to_string()))
        };
        for record in records {
            let size = serde_json::to_vec(&record).map(|v| v.len()).unwrap_or(0);
            if !chunk.is_empty()
                && (chunk.len() >= RECORDS_PER_JOB || chunk_bytes + size > MAX_JOB_BYTES)
            {
                bodies.push(make(std::mem::take(&mut chunk), n)?);
                n += 1;
                chunk_bytes = 0;
            }
            chunk_bytes += size;
            chunk.push(record);
        }
        if !chunk.is_empty() {
            bodies.push(make(chunk, n)?);
        }
        if bodies.is_empty() {
            return Ok(());
        }
        self.queue
            .send_batch(&self.upsert_queue_url, &bodies)
            .await
            .map_err(|e| SyncError::Queue(e.to_string()))
    }

    /// Handles one sync-queue message body.
    pub async fn handle_body(&self, body: &str, now: DateTime<Utc>) -> Result<(), SyncError> {
        match serde_json::from_str::<SyncMessage>(body) {
            Ok(SyncMessage::Start {
                source,
                stream,
                full,
                since,
                page_size,
            }) => {
                let options = RunOptions {
                    full,
                    since,
                    page_size,
                };
                self.start_with(source.as_ref(), stream.as_deref(), &options, now)
                    .await
                    .map(|_| ())
            }
            Ok(SyncMessage::Page(job)) => self.handle_page(&job, now).await.map(|_| ()),
            Err(e) => {
                // Not retryable: log and drop rather than loop.
                warn!(reason = %e, "sync message is not a sync job; dropped");
                Ok(())
            }
        }
    }

    /// The state of every enabled stream.
    pub async fn status(&self) -> Result<Vec<(StreamId, StreamState)>, SyncError> {
        let mut out = Vec::new();
        for id in self.streams(None, None) {
            let stored = self.store.load(&id).await?;
            out.push((id, stored.state));
        }
        Ok(out)
    }
}

/// Handles a batch of sync-queue messages; returns the ids of those SQS must redeliver.
///
/// A page that cannot be read (helpdesk outage, rate limit beyond the reader's waits, state
/// store or queue trouble) is sent back to the sync queue with a delay by the syncer's
/// [`Redelivery`]: the stream's cursor has not moved, so the chain resumes where it stopped once
/// the page can be read, however long that takes within the retry horizon.
pub async fn handle_batch<S: StreamStore, Q: Queue>(
    syncer: &Syncer<S, Q>,
    messages: &[Message],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for message in messages {
        let Err(e) = syncer.handle_body(&message.body, now).await else {
            continue;
        };
        let reason = e.to_string();
        let settled = match &syncer.redelivery {
            Some(r) => r.retry(message, &reason, false, None, Vec::new()).await,
            None => Settled::Redeliver("no retry queue configured".into()),
        };
        match settled {
            Settled::Later(delay) => {
                warn!(message_id = %message.message_id, %reason, ?delay,
                    attempts = message.retry.as_ref().map_or(1, |r| r.attempts + 1),
                    "sync job failed; it is tried again after the delay");
            }
            Settled::DeadLettered => {
                tracing::error!(message_id = %message.message_id, %reason,
                    "sync job failing past the retry horizon; moved to the dead-letter queue");
            }
            Settled::Redeliver(why) => {
                warn!(message_id = %message.message_id, %reason, %why,
                    "sync job failed; left for SQS to redeliver");
                failed.push(message.message_id.clone());
            }
        }
    }
    failed
}
