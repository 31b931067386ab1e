//! The run/page/cursor protocol without AWS: in-memory stream store and queue, and a test
//! reader serving pages of a fixed data set (a double of the helpdesk port).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use deskbridge_shared::memory::{MemoryQueue, MemoryStreamStore};
use deskbridge_shared::model::{EventKind, Job, Person, Record, Source, SupportEvent};
use deskbridge_shared::state::streams::{RunStatus, Start, StreamId, StreamStore};
use deskbridge_shared::sync::{FetchError, Page, PageRequest, SourceReader};
use deskbridge_sync::{PageOutcome, SyncMessage, Syncer};

const SYNC: &str = "memory://sync";
const UPSERT: &str = "memory://upsert";

/// Serves `total` customers, `per_page` at a time; the cursor is the next offset and the
/// bookmark is the offset reached (like an API cursor that stays valid).
struct TestReader {
    total: usize,
    per_page: usize,
    calls: AtomicUsize,
    fail_next: AtomicUsize,
    /// The `since` and page size of every page asked for.
    asked: std::sync::Mutex<Vec<(Option<DateTime<Utc>>, u32)>>,
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid time")
}

#[async_trait]
impl SourceReader for TestReader {
    fn source(&self) -> Source {
        Source::Gorgias
    }
    fn streams(&self) -> &'static [&'static str] {
        &["customers"]
    }
    async fn fetch_page(&self, req: &PageRequest) -> Result<Page, FetchError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked
            .lock()
            .expect("lock")
            .push((req.since, req.page_size));
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(FetchError::Transient("injected".into()));
        }
        let start: usize = match (&req.cursor, &req.bookmark) {
            (Some(c), _) => c.parse().unwrap_or(0),
            (None, Some(b)) => b.parse().unwrap_or(0),
            (None, None) => 0,
        };
        let end = (start + self.per_page).min(self.total);
        let records = (start..end)
            .map(|i| {
                let created = at(i as i64);
                Record {
                    person: Person {
                        source_id: Some(i.to_string()),
                        email: Some(format!("c{i}@example.com")),
                        ..Default::default()
                    },
                    observed_at: created,
                    events: vec![SupportEvent {
                        id: SupportEvent::stable_id(
                            &Source::Gorgias,
                            &format!("customer:{i}"),
                            EventKind::CustomerCreated,
                            created,
                        ),
                        kind: EventKind::CustomerCreated,
                        occurred_at: created,
                        ticket_id: None,
                        channel: None,
                        properties: Default::default(),
                    }],
                    ..Default::default()
                }
            })
            .collect::<Vec<_>>();
        Ok(Page {
            read: records.len() as u64,
            records,
            skipped: vec![],
            next_cursor: (end < self.total).then(|| end.to_string()),
            bookmark: Some(end.to_string()),
            bookmark_now: true,
        })
    }
}

fn syncer(
    total: usize,
    per_page: usize,
) -> (Syncer<MemoryStreamStore, MemoryQueue>, Arc<TestReader>) {
    let reader = Arc::new(TestReader {
        total,
        per_page,
        calls: AtomicUsize::new(0),
        fail_next: AtomicUsize::new(0),
        asked: Default::default(),
    });
    let mut s = Syncer::new(
        vec![reader.clone()],
        MemoryStreamStore::new(),
        MemoryQueue::new(),
        SYNC.into(),
        UPSERT.into(),
    );
    s.historical_events = true;
    (s, reader)
}

/// Runs sync-queue messages until the queue is empty; returns how many were handled.
async fn drain(s: &Syncer<MemoryStreamStore, MemoryQueue>, now: DateTime<Utc>) -> usize {
    let mut handled = 0;
    loop {
        let batch = s.queue.messages(SYNC);
        if batch.is_empty() {
            return handled;
        }
        // Take them off the queue like a consumer would.
        let taken = deskbridge_shared::queue::Queue::receive(&s.queue, SYNC, 10, 0)
            .await
            .expect("receive");
        for m in taken {
            s.handle_body(&m.body, now).await.expect("page handled");
            handled += 1;
        }
    }
}

fn upserted_ids(q: &MemoryQueue) -> Vec<String> {
    q.messages(UPSERT)
        .iter()
        .flat_map(|b| serde_json::from_str::<Job>(b).expect("job").records)
        .filter_map(|r| r.person.source_id)
        .collect()
}

#[tokio::test]
async fn a_run_reads_every_page_once_and_keeps_the_bookmark() {
    let (s, reader) = syncer(1_234, 100);
    let now = at(10_000);
    let reports = s.start(None, None, false, now).await.expect("start");
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].outcome, Start::Started { .. }));
    let pages = drain(&s, now).await;
    assert_eq!(pages, 13);
    assert_eq!(reader.calls.load(Ordering::SeqCst), 13);
    let mut ids = upserted_ids(&s.queue);
    assert_eq!(ids.len(), 1_234);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1_234, "every record exactly once");
    let state = s
        .store
        .load(&StreamId::new(Source::Gorgias, "customers"))
        .await
        .expect("load")
        .state;
    assert_eq!(state.status, RunStatus::Idle);
    assert_eq!(state.bookmark.as_deref(), Some("1234"));
    assert_eq!(state.last_run.records_read, 1_234);
    assert_eq!(state.last_run.pages, 13);

    assert_eq!(state.total.records_read, 1_234);

    // The next run starts from the bookmark: nothing new, one page, no records.
    s.queue.clear();
    s.start(None, None, false, at(20_000)).await.expect("start");
    drain(&s, at(20_000)).await;
    assert!(upserted_ids(&s.queue).is_empty());
    // A full run reads everything again; the total counts every completed run.
    s.start(None, None, true, at(30_000)).await.expect("start");
    drain(&s, at(30_000)).await;
    let state = s
        .store
        .load(&StreamId::new(Source::Gorgias, "customers"))
        .await
        .expect("load")
        .state;
    assert_eq!(state.total.records_read, 2 * 1_234);
    assert_eq!(state.total.pages, 13 + 1 + 13);
}

#[tokio::test]
async fn duplicate_and_stale_jobs_do_nothing() {
    let (s, _) = syncer(300, 100);
    let now = at(10_000);
    s.start(None, None, false, now).await.expect("start");
    let first = s.queue.messages(SYNC).remove(0);
    let SyncMessage::Page(job) = serde_json::from_str(&first).expect("page job") else {
        panic!("page job")
    };
    s.queue.clear();
    assert!(matches!(
        s.handle_page(&job, now).await.expect("page"),
        PageOutcome::Advanced { done: false, .. }
    ));
    // The same job again (SQS at-least-once): nothing read, nothing sent, cursor not moved twice.
    let upserts_before = s.queue.messages(UPSERT).len();
    assert_eq!(
        s.handle_page(&job, now).await.expect("dup"),
        PageOutcome::Stale
    );
    assert_eq!(s.queue.messages(UPSERT).len(), upserts_before);
    let state = s
        .store
        .load(&StreamId::new(Source::Gorgias, "customers"))
        .await
        .expect("load")
        .state;
    assert_eq!(state.cursor.as_deref(), Some("100"));
}

#[tokio::test]
async fn a_lost_next_job_is_queued_again_by_the_redelivered_one() {
    let (s, _) = syncer(300, 100);
    let now = at(10_000);
    s.start(None, None, false, now).await.expect("start");
    let job_text = s.queue.messages(SYNC).remove(0);
    s.queue.clear();
    let SyncMessage::Page(job) = serde_json::from_str(&job_text).expect("job") else {
        panic!("page job")
    };
    // The page's records are stored but queueing the next page job fails.
    s.queue.set_failing(false);
    let id = StreamId::new(Source::Gorgias, "customers");
    // Simulate: records sent and cursor advanced, then a crash before the next job was queued.
    assert!(matches!(
        s.handle_page(&job, now).await.expect("page"),
        PageOutcome::Advanced { .. }
    ));
    s.queue.clear();
    let mut st = s.store.load(&id).await.expect("load");
    st.state.next_queued = false;
    s.store.save(&id, st.rev, &st.state).await.expect("save");
    // SQS redelivers the first job: it notices and queues the missing one.
    assert_eq!(
        s.handle_page(&job, now).await.expect("again"),
        PageOutcome::Requeued
    );
    assert_eq!(s.queue.messages(SYNC).len(), 1);
    // And once queued, further copies do nothing.
    assert_eq!(
        s.handle_page(&job, now).await.expect("again"),
        PageOutcome::Stale
    );
    drain(&s, now).await;
    let mut ids = upserted_ids(&s.queue);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "the two remaining pages, once each");
}

#[tokio::test]
async fn a_fetch_failure_keeps_the_cursor_and_the_retry_continues() {
    let (s, reader) = syncer(250, 100);
    let now = at(10_000);
    s.start(None, None, false, now).await.expect("start");
    reader.fail_next.store(1, Ordering::SeqCst);
    let job = s.queue.messages(SYNC).remove(0);
    assert!(
        s.handle_body(&job, now).await.is_err(),
        "the message fails and SQS redelivers it"
    );
    let state = s
        .store
        .load(&StreamId::new(Source::Gorgias, "customers"))
        .await
        .expect("load")
        .state;
    assert_eq!(state.cursor, None);
    assert!(state.last_error.is_some_and(|e| e.contains("injected")));
    drain(&s, now).await;
    assert_eq!(upserted_ids(&s.queue).len(), 250);
}

#[tokio::test]
async fn a_running_stream_is_not_started_twice_until_its_lease_passes() {
    let (s, _) = syncer(500, 100);
    let now = at(10_000);
    s.start(None, None, false, now).await.expect("start");
    // One page done, then the worker dies (its next job is lost).
    let job = s.queue.messages(SYNC).remove(0);
    s.queue.clear();
    s.handle_body(&job, now).await.expect("page");
    s.queue.clear();
    let busy = s
        .start(None, None, false, now + chrono::Duration::minutes(5))
        .await
        .expect("start");
    assert!(matches!(busy[0].outcome, Start::Busy { .. }));
    assert!(s.queue.messages(SYNC).is_empty());
    // After the lease, the next start takes the run over and continues from its cursor.
    let later =
        now + chrono::Duration::from_std(s.lease + Duration::from_secs(1)).expect("duration");
    let took = s.start(None, None, false, later).await.expect("start");
    assert!(matches!(
        took[0].outcome,
        Start::Started { resumed: true, .. }
    ));
    drain(&s, later).await;
    let mut ids = upserted_ids(&s.queue);
    ids.sort();
    assert_eq!(ids.len(), 400, "pages 2..5 once each after the takeover");
}

#[tokio::test]
async fn a_start_whose_first_page_job_was_not_sent_queues_it_when_retried() {
    let (s, _) = syncer(250, 100);
    let now = at(10_000);
    // The lease is taken, then the send of the first page job fails: the start message fails
    // and SQS delivers it again while the run still holds its lease.
    s.queue.set_failing(true);
    assert!(s.start(None, None, false, now).await.is_err());
    s.queue.set_failing(false);
    assert!(s.queue.messages(SYNC).is_empty());
    let retried = s
        .start(None, None, false, now + chrono::Duration::seconds(30))
        .await
        .expect("start");
    assert!(matches!(
        retried[0].outcome,
        Start::Busy {
            unqueued: Some(_),
            ..
        }
    ));
    assert_eq!(
        s.queue.messages(SYNC).len(),
        1,
        "the first page job, queued now"
    );
    // A further copy of the start queues nothing more: the job is noted as queued.
    s.start(None, None, false, now + chrono::Duration::seconds(40))
        .await
        .expect("start");
    assert_eq!(s.queue.messages(SYNC).len(), 1);
    drain(&s, now + chrono::Duration::seconds(60)).await;
    let mut ids = upserted_ids(&s.queue);
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        250,
        "the run finished without waiting for its lease to pass"
    );
    let state = s
        .store
        .load(&StreamId::new(Source::Gorgias, "customers"))
        .await
        .expect("load")
        .state;
    assert_eq!(state.status, RunStatus::Idle);
}

#[tokio::test]
async fn a_backfill_sends_no_timeline_events_for_the_past() {
    let (mut s, _) = syncer(120, 100);
    s.historical_events = false;
    // The stream's first run is "now": every happening in the data set is older.
    let now = at(50_000);
    s.start(None, None, false, now).await.expect("start");
    drain(&s, now).await;
    let jobs: Vec<Job> = s
        .queue
        .messages(UPSERT)
        .iter()
        .map(|b| serde_json::from_str(b).expect("job"))
        .collect();
    let records: Vec<&Record> = jobs.iter().flat_map(|j| &j.records).collect();
    assert_eq!(records.len(), 120, "attributes still sync");
    assert!(
        records.iter().all(|r| r.events.is_empty()),
        "no automations fired for the past"
    );
}

fn values(doc: &serde_json::Value, name: &str) -> Option<f64> {
    doc.get(name).and_then(serde_json::Value::as_f64)
}

#[tokio::test]
async fn every_page_emits_records_a_heartbeat_and_the_lag_once_a_run_completed() {
    let (mut s, reader) = syncer(250, 100);
    let (metrics, lines) = deskbridge_shared::metrics::Metrics::memory("fn-sync");
    s.metrics = metrics;
    s.start(None, None, false, at(10_000)).await.expect("start");
    drain(&s, at(10_060)).await;
    let docs = lines.documents();
    assert_eq!(docs.len(), 3, "one document per page: {docs:#?}");
    for doc in &docs {
        assert_eq!(doc["Function"], "fn-sync");
        assert_eq!(doc["Source"], "gorgias");
        assert_eq!(doc["Stream"], "customers");
        assert_eq!(values(doc, "SyncProgress"), Some(1.0));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Function", "Source", "Stream"], ["Function"]])
        );
    }
    let read: Vec<Option<f64>> = docs.iter().map(|d| values(d, "SyncRecordsRead")).collect();
    assert_eq!(read, [Some(100.0), Some(100.0), Some(50.0)]);
    let written: Vec<Option<f64>> = docs
        .iter()
        .map(|d| values(d, "SyncRecordsWritten"))
        .collect();
    assert_eq!(written, read);
    // No lag before the first run completes; then now minus the completed run's start.
    assert_eq!(values(&docs[0], "SyncLag"), None);
    assert_eq!(values(&docs[2], "SyncLag"), Some(60.0));

    // A fetch failure counts as an error, not as progress.
    reader.fail_next.store(1, Ordering::SeqCst);
    s.start(None, None, false, at(20_000)).await.expect("start");
    let job = s.queue.messages(SYNC).pop().expect("a page job");
    assert!(s.handle_body(&job, at(20_030)).await.is_err());
    let failed = lines.documents().pop().expect("a document");
    assert_eq!(values(&failed, "SyncFetchErrors"), Some(1.0));
    assert_eq!(values(&failed, "SyncProgress"), None);
    // The retry completes the run: the lag is now minus the start of this run.
    s.handle_body(&job, at(20_030)).await.expect("retry");
    let retried = lines.documents().pop().expect("a document");
    assert_eq!(values(&retried, "SyncLag"), Some(30.0));
}

#[tokio::test]
async fn a_schedule_with_no_stream_is_a_heartbeat_not_a_stall() {
    let (metrics, lines) = deskbridge_shared::metrics::Metrics::memory("fn-sync");
    let mut s: Syncer<MemoryStreamStore, MemoryQueue> = Syncer::new(
        vec![],
        MemoryStreamStore::new(),
        MemoryQueue::new(),
        SYNC.into(),
        UPSERT.into(),
    );
    s.metrics = metrics;
    assert!(
        s.start(None, None, false, at(0))
            .await
            .expect("start")
            .is_empty()
    );
    let docs = lines.documents();
    assert_eq!(docs.len(), 1);
    assert_eq!(values(&docs[0], "SyncProgress"), Some(1.0));
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Function"]])
    );
}

/// Several streams of one helpdesk, for the start's concurrency.
struct ManyStreams;

#[async_trait]
impl SourceReader for ManyStreams {
    fn source(&self) -> Source {
        Source::Zendesk
    }
    fn streams(&self) -> &'static [&'static str] {
        &["users", "tickets", "satisfaction_ratings", "organizations"]
    }
    async fn fetch_page(&self, _req: &PageRequest) -> Result<Page, FetchError> {
        Ok(Page::default())
    }
}

/// A stream store whose every call takes 20 ms, and which records how many ran at once.
#[derive(Default)]
struct SlowStore {
    inner: MemoryStreamStore,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl SlowStore {
    async fn timed<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let out = call.await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

#[async_trait]
impl StreamStore for SlowStore {
    async fn load(
        &self,
        id: &StreamId,
    ) -> Result<deskbridge_shared::state::streams::Stored, deskbridge_shared::state::StateError>
    {
        self.timed(self.inner.load(id)).await
    }
    async fn save(
        &self,
        id: &StreamId,
        rev: Option<u64>,
        next: &deskbridge_shared::state::streams::StreamState,
    ) -> Result<deskbridge_shared::state::streams::Write, deskbridge_shared::state::StateError>
    {
        self.timed(self.inner.save(id, rev, next)).await
    }
}

#[tokio::test]
async fn streams_start_side_by_side_and_report_in_order() {
    let s = Syncer::new(
        vec![Arc::new(ManyStreams)],
        SlowStore::default(),
        MemoryQueue::new(),
        SYNC.into(),
        UPSERT.into(),
    );
    let started = std::time::Instant::now();
    let reports = s.start(None, None, false, at(0)).await.expect("start");
    let elapsed = started.elapsed();
    let names: Vec<&str> = reports.iter().map(|r| r.stream.stream.as_str()).collect();
    assert_eq!(
        names,
        ["users", "tickets", "satisfaction_ratings", "organizations"]
    );
    assert!(
        reports
            .iter()
            .all(|r| matches!(r.outcome, Start::Started { .. }))
    );
    assert_eq!(s.queue.messages(SYNC).len(), 4, "one first page job each");
    assert_eq!(s.store.most.load(Ordering::SeqCst), 4, "all four at once");
    // Each start is 4 store calls of 20 ms (the lease's load and save, then the same for the
    // queued-job note): 80 ms. One after the other, the four would take 320 ms.
    assert!(elapsed < Duration::from_millis(240), "{elapsed:?}");
}

#[tokio::test]
async fn a_helpdesk_outage_pauses_the_chain_keeps_the_cursor_and_resumes() {
    use deskbridge_shared::clock::ManualClock;
    use deskbridge_shared::queue::{Message, Queue, Redelivery, RetryPolicy};

    let (mut s, reader) = syncer(450, 100);
    let clock = Arc::new(ManualClock::new(at(10_000)));
    let policy = RetryPolicy::default();
    // Retries go back to the sync queue (the syncer's own queue, a separate handle here since
    // the syncer owns it), final failures to the DLQ.
    let retries = Arc::new(MemoryQueue::new());
    s.redelivery = Some(
        Redelivery::new(retries.clone())
            .retrying_on(SYNC, policy)
            .dead_letters_to("memory://sync-dlq")
            .with_clock(clock.clone()),
    );
    s.start(None, None, false, at(10_000)).await.expect("start");
    // Two pages go through, then the helpdesk is down for 60 attempts (hours of backoff).
    for _ in 0..2 {
        let m = s
            .queue
            .receive(SYNC, 1, 0)
            .await
            .expect("receive")
            .remove(0);
        let failed = deskbridge_sync::handle_batch(&s, &[Message::from(&m)], at(10_000)).await;
        assert!(failed.is_empty());
    }
    let id = StreamId::new(Source::Gorgias, "customers");
    let cursor = s.store.load(&id).await.expect("load").state.cursor;
    assert_eq!(cursor.as_deref(), Some("200"));

    reader.fail_next.store(60, Ordering::SeqCst);
    let mut message = Message::from(&s.queue.receive(SYNC, 1, 0).await.expect("receive")[0]);
    for attempt in 1..=60u32 {
        let failed =
            deskbridge_sync::handle_batch(&s, std::slice::from_ref(&message), at(10_000)).await;
        assert!(failed.is_empty(), "never left for SQS to count");
        let body = retries.messages(SYNC).pop().expect("sent back");
        let (_, record) = retries.sent_later(SYNC).pop().expect("with a record");
        assert_eq!(record.attempts, attempt);
        message = Message {
            body,
            retry: Some(record),
            ..message
        };
        clock.advance(Duration::from_secs(300));
        let state = s.store.load(&id).await.expect("load").state;
        assert_eq!(state.cursor.as_deref(), Some("200"), "the cursor stays");
    }
    assert!(retries.dead_letter_reasons("memory://sync-dlq").is_empty());

    // The helpdesk is back: the waiting page job goes on, and the chain runs to the end.
    let failed = deskbridge_sync::handle_batch(&s, &[message], at(10_000)).await;
    assert!(failed.is_empty());
    drain(&s, at(10_000)).await;
    let state = s.store.load(&id).await.expect("load").state;
    assert_eq!(state.status, RunStatus::Idle);
    assert_eq!(state.bookmark.as_deref(), Some("450"));
    let mut ids = upserted_ids(&s.queue);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 450, "every record, none skipped");
}

#[tokio::test]
async fn a_run_from_a_date_carries_its_date_and_page_size_to_every_page() {
    let (s, reader) = syncer(25, 10);
    let since = at(-86_400);
    let start = serde_json::json!({"kind": "start", "source": "gorgias", "since": since,
        "page_size": 10});
    s.handle_body(&start.to_string(), at(0))
        .await
        .expect("started");
    drain(&s, at(1)).await;
    let asked = reader.asked.lock().expect("lock").clone();
    assert_eq!(asked, vec![(Some(since), 10); 3]);
    // The next run is an ordinary one again: no date, the default page size.
    s.start(None, None, false, at(100)).await.expect("start");
    drain(&s, at(101)).await;
    let asked = reader.asked.lock().expect("lock").clone();
    assert_eq!(asked.last().map(|a| a.0), Some(None));
    assert_ne!(asked.last().map(|a| a.1), Some(10));
}
