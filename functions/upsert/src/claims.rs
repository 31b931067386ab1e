//! Sending each event once. An event is claimed in the state store, sent, then marked sent;
//! a failed send releases the claim so a redelivery sends it. [`Batch`] is what the messages
//! of one batch share meanwhile: the event ids taken (SQS can deliver a message twice in one
//! batch), the events carried as sent but not marked by an earlier attempt
//! ([`RetryRecord::sent`]), the marks that failed, and the instant after which no send starts.
//!
//! [`RetryRecord::sent`]: deskbridge_shared::queue::RetryRecord::sent

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use deskbridge_shared::brevo::BrevoApi;
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::milestones::{self, Report};
use deskbridge_shared::model::Job;
use deskbridge_shared::plan::EventWrite;
use deskbridge_shared::queue::Message;
use deskbridge_shared::state::{StateError, StateStore};
use futures::StreamExt;
use tokio::time::Instant;

use crate::upserter::{Upserter, lock};

/// How long the record of an event claim is kept while the event is being sent (a claim left
/// pending by a worker that died expires then). Once the event is sent its record is kept for
/// good ([`state::is_permanent`]): a path that reports it again, however much later, never
/// sends it twice.
///
/// [`state::is_permanent`]: deskbridge_shared::state::is_permanent
pub const EVENT_CLAIM_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// State-store calls (event claims, completions, releases) in flight at once on the sync path.
pub(crate) const STATE_CONCURRENCY: usize = 16;

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Gives each repeatable milestone among `events` (solves, reopens, ratings) the id of the
    /// happening it is, registering new happenings ([`milestones`]): the webhook and the sync
    /// name one solve the same way, and two solves stay two. Threads are done concurrently, the
    /// events of one thread together. Returns the threads that could not be identified (the
    /// state store failed), as the indexes of their events with the error; those events keep
    /// their ids and must not be sent now.
    pub(crate) async fn identify(
        &self,
        events: &mut [&mut EventWrite],
    ) -> Vec<(Vec<usize>, StateError)> {
        let reports: Vec<Report> = events
            .iter()
            .map(|e| Report {
                kind: e.kind,
                id: e.id.clone(),
            })
            .collect();
        let groups = milestones::threads(&reports);
        if groups.is_empty() {
            return Vec::new();
        }
        let work = groups.into_iter().map(|(thread, members)| {
            let these: Vec<Report> = members.iter().map(|&i| reports[i].clone()).collect();
            async move {
                let ids = milestones::identify_thread(&self.state, &thread, &these).await;
                (members, ids)
            }
        });
        let done: Vec<_> = futures::stream::iter(work)
            .buffer_unordered(STATE_CONCURRENCY)
            .collect()
            .await;
        let mut failed = Vec::new();
        for (members, ids) in done {
            match ids {
                Ok(ids) => {
                    for (i, id) in members.into_iter().zip(ids) {
                        if let Some(event) = events.get_mut(i) {
                            event.id = id;
                        }
                    }
                }
                Err(e) => failed.push((members, e)),
            }
        }
        failed
    }

    /// Marks a sent event done, retried here a few times. If the state store still refuses,
    /// the event is noted in `batch`: its message goes back to the queue carrying the event id
    /// ([`RetryRecord::sent`]), and the next attempt marks it instead of sending it again.
    ///
    /// [`RetryRecord::sent`]: deskbridge_shared::queue::RetryRecord::sent
    pub(crate) async fn complete_sent(&self, key: &str, event_id: &str, batch: &Batch) {
        match with_retries(|| self.state.complete(key, None)).await {
            Ok(()) => batch.confirmed(event_id),
            Err(e) => {
                tracing::warn!(event_id, error = %e,
                    "upsert: event sent but not marked done; its message carries it to the next attempt");
                batch.unconfirmed(event_id);
            }
        }
    }

    /// Drops the claim of an event that was not sent, so a redelivery sends it. Retried in place:
    /// a claim left pending makes redeliveries wait for [`state::CLAIM_LEASE`].
    pub(crate) async fn release_claim(&self, key: &str, event_id: &str) {
        if let Err(e) = with_retries(|| self.state.release(key)).await {
            tracing::warn!(event_id, error = %e,
                "upsert: could not release the event claim; redeliveries wait for its lease");
        }
    }

    /// Marks sent events done (see [`Upserter::complete_sent`]: never fails the message).
    pub(crate) async fn complete_claims(&self, claimed: &[&Claimed<'_>], batch: &Batch) {
        let work: Vec<_> = claimed
            .iter()
            .map(|c| self.complete_sent(&c.state_key, c.event_id, batch))
            .collect();
        futures::stream::iter(work)
            .buffered(STATE_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    /// Drops the claims of events not sent, so a redelivery sends them.
    pub(crate) async fn release_claims(&self, claimed: &[&Claimed<'_>]) {
        let work: Vec<_> = claimed
            .iter()
            .map(|c| self.release_claim(&c.state_key, c.event_id))
            .collect();
        futures::stream::iter(work)
            .buffered(STATE_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Runs a state-store write up to [`COMPLETE_ATTEMPTS`] times, 50 ms, 200 ms, 800 ms apart.
pub(crate) async fn with_retries<F, Fut>(mut write: F) -> Result<(), StateError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StateError>>,
{
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match write().await {
            Err(_) if attempt < COMPLETE_ATTEMPTS => {
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Tries at marking a sent event done before giving up (50 ms, 200 ms, 800 ms apart).
const COMPLETE_ATTEMPTS: u32 = 4;

/// What the messages of one batch share while they are handled.
pub(crate) struct Batch {
    /// Event ids already taken by a message of this batch: SQS may deliver the same message
    /// twice in one batch, and the two copies would otherwise both see the claim in flight.
    pub(crate) taken: Mutex<HashSet<String>>,
    /// Event ids the batch's messages carry as sent by an earlier attempt but not marked.
    pub(crate) carried: HashSet<String>,
    /// Sent events not marked in the state store (`false`), or carried ones marked now (`true`).
    pub(crate) marks: Mutex<HashMap<String, bool>>,
    /// No event send starts after this instant (see [`Upserter::with_send_reserve`]).
    pub(crate) sends_until: Option<Instant>,
}

impl Batch {
    pub(crate) fn new(messages: &[Message]) -> Self {
        Batch {
            taken: Mutex::new(HashSet::new()),
            carried: messages
                .iter()
                .filter_map(|m| m.retry.as_ref())
                .flat_map(|r| r.sent.iter().cloned())
                .collect(),
            marks: Mutex::new(HashMap::new()),
            sends_until: None,
        }
    }

    pub(crate) fn sending_until(mut self, until: Option<Instant>) -> Self {
        self.sends_until = until;
        self
    }

    /// Whether an event send may still start: one that starts now has the time to finish and be
    /// marked before the invocation's deadline. `None` when it may, else the reason it may not.
    pub(crate) fn too_late_to_send(&self) -> Option<&'static str> {
        self.sends_until
            .filter(|until| Instant::now() >= *until)
            .map(|_| "too close to the invocation deadline to send and mark it")
    }

    /// Takes `event_id` for this batch; false when a message of the batch took it already.
    pub(crate) fn take(&self, event_id: &str) -> bool {
        lock(&self.taken).insert(event_id.to_string())
    }

    pub(crate) fn untake(&self, event_id: &str) {
        lock(&self.taken).remove(event_id);
    }

    pub(crate) fn unconfirmed(&self, event_id: &str) {
        lock(&self.marks).insert(event_id.to_string(), false);
    }

    pub(crate) fn confirmed(&self, event_id: &str) {
        lock(&self.marks).insert(event_id.to_string(), true);
    }

    /// The events of `message` that were sent but are not marked: those it carried and that
    /// were not marked now, and those sent now and left unmarked.
    pub(crate) fn unmarked_for(&self, message: &Message) -> Vec<String> {
        let carries = message.retry.as_ref().is_some_and(|r| !r.sent.is_empty());
        if !carries && lock(&self.marks).values().all(|marked| *marked) {
            return Vec::new();
        }
        let job = serde_json::from_str::<Job>(&message.body).ok();
        self.unmarked(message, job.as_ref())
    }

    pub(crate) fn unmarked(&self, message: &Message, job: Option<&Job>) -> Vec<String> {
        let marks = lock(&self.marks);
        let mut out: Vec<String> = message
            .retry
            .iter()
            .flat_map(|r| r.sent.iter())
            .filter(|id| marks.get(*id) != Some(&true))
            .cloned()
            .collect();
        for record in job.iter().flat_map(|j| j.records.iter()) {
            for event in &record.events {
                if marks.get(&event.id) == Some(&false) && !out.contains(&event.id) {
                    out.push(event.id.clone());
                }
            }
        }
        out
    }
}

/// An event claimed in the state store, waiting to be sent.
pub(crate) struct Claimed<'a> {
    pub(crate) job: usize,
    pub(crate) event_id: &'a str,
    pub(crate) state_key: String,
}
