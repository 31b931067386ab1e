//! The [`Upserter`] itself: its ports, settings and what a container remembers between batches.
//! What it does is in the modules beside this one: [`crate::message`] (a batch of SQS messages),
//! [`crate::execute`] (one record's writes), [`crate::import`] (sync jobs together) and
//! [`crate::claims`] (sending each event once).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskbridge_shared::brevo::BrevoApi;
use deskbridge_shared::clock::{Clock, SystemClock};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Queue, Redelivery};
use deskbridge_shared::state::StateStore;
use deskbridge_shared::twoway::WriteBackApi;

use crate::health::{self, Gate, Health, Watched};

/// Messages of one batch processed at the same time. Brevo's limits are kept by the client's
/// rate governor whatever this is; it only overlaps the latency of independent messages.
pub const CONCURRENCY: usize = 4;

/// Writes jobs to Brevo. All dependencies are ports, so Lambda, the local runner and tests
/// inject what they have.
pub struct Upserter<B: BrevoApi, S: StateStore, L: PersonLookup> {
    pub brevo: B,
    pub state: S,
    pub lookup: L,
    pub mapping: Mapping,
    /// Brevo attributes known to exist, per container (see [`Upserter::ensure_attributes`]).
    pub(crate) attributes: tokio::sync::Mutex<AttributeCache>,
    /// The default all-contacts lists (see [`Upserter::with_default_lists`]).
    pub(crate) default_lists: DefaultLists,
    /// Sources already reported as lacking an all-contacts list (logged once per container).
    pub(crate) no_list_noted: Mutex<HashSet<Source>>,
    /// Where failing messages go: back to the queue with a delay, or to the upsert DLQ.
    pub(crate) redelivery: Option<Redelivery>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Brevo's answers to this container, and the outage gate built on them.
    pub(crate) health: Health,
    pub(crate) gate: Mutex<Gate>,
    /// How long before an invocation's deadline the last event send may start (see
    /// [`Upserter::with_send_reserve`]).
    pub(crate) send_reserve: Duration,
    /// Where Brevo's events are written back into the helpdesks (see
    /// [`Upserter::with_write_back`]).
    pub(crate) write_back: Option<Arc<dyn WriteBackApi>>,
}

/// What a container knows of the default lists.
#[derive(Debug, Default)]
pub(crate) struct DefaultLists {
    /// Whether sources without a configured all-contacts list get one.
    pub(crate) on: bool,
    /// Ids found so far, per source.
    pub(crate) known: Mutex<std::collections::HashMap<Source, i64>>,
}

/// What this container learnt about the account's contact attributes.
#[derive(Debug, Default)]
pub(crate) struct AttributeCache {
    /// Upper-cased names listed by Brevo or created here; `None` until listed.
    pub(crate) known: Option<HashSet<String>>,
    /// Sources whose mapped attributes all exist.
    pub(crate) ready: HashSet<Source>,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    pub fn new(brevo: B, state: S, lookup: L, mapping: Mapping) -> Self {
        Upserter {
            brevo,
            state,
            lookup,
            mapping,
            attributes: tokio::sync::Mutex::new(AttributeCache::default()),
            default_lists: DefaultLists::default(),
            no_list_noted: Mutex::new(HashSet::new()),
            redelivery: None,
            clock: Arc::new(SystemClock),
            health: Health::default(),
            gate: Mutex::new(Gate::default()),
            send_reserve: send_reserve_for(deskbridge_shared::brevo::REQUEST_TIMEOUT),
            write_back: None,
        }
    }

    /// Carries the Brevo write-backs queued by the webhook function out through `write_back`.
    /// Without one, a write-back message is done at once and counted as written nowhere.
    pub fn with_write_back(mut self, write_back: Arc<dyn WriteBackApi>) -> Self {
        self.write_back = Some(write_back);
        self
    }

    /// No event send starts later than `reserve` before an invocation's deadline, so that every
    /// send that starts has the time to get Brevo's answer and be marked sent before the
    /// deadline stops the batch. A send cut between Brevo accepting the event and the mark
    /// would leave it in doubt, and a redelivery would send it a second time. Defaults to
    /// [`send_reserve_for`] the default Brevo request timeout.
    pub fn with_send_reserve(mut self, reserve: Duration) -> Self {
        self.send_reserve = reserve;
        self
    }

    /// Transiently failing messages go back to their queue with a delay until the policy's
    /// horizon, then (like messages that fail for good) to the dead-letter queue of
    /// `redelivery`. The handler reads the time from the redelivery's clock.
    pub fn with_redelivery(mut self, redelivery: Redelivery) -> Self {
        self.clock = redelivery.clock();
        self.redelivery = Some(redelivery);
        self
    }

    /// Reads the time from `clock` (the redelivery's clock is used otherwise).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Brevo, as the handler calls it: every answer is counted for the outage gate.
    pub(crate) fn brevo(&self) -> Watched<'_, B> {
        Watched {
            inner: &self.brevo,
            health: &self.health,
        }
    }

    /// The time between two probes of Brevo during an outage.
    pub(crate) fn probe_interval(&self) -> Duration {
        let longest = self
            .redelivery
            .as_ref()
            .map_or(health::PROBE_INTERVAL, |r| r.policy().max_delay);
        health::PROBE_INTERVAL.min(longest)
    }

    /// Sends messages that failed for good (a body that is not a job, a request Brevo refused)
    /// to `queue_url` with the reason attached, so nothing is dropped silently and
    /// `deskbridge replay` can bring them back after a fix.
    /// (Transient failures are then left to SQS: see [`Upserter::with_redelivery`].)
    pub fn with_dead_letters(self, queue: Arc<dyn Queue>, queue_url: impl Into<String>) -> Self {
        self.with_redelivery(Redelivery::new(queue).dead_letters_to(queue_url))
    }
}

/// The time an event send may take from its start to its mark: Brevo's retry budget plus one
/// last attempt of `brevo_timeout`, then the mark's retries with room for their calls.
pub fn send_reserve_for(brevo_timeout: Duration) -> Duration {
    deskbridge_shared::brevo::RetryPolicy::default().budget + brevo_timeout + MARK_ALLOWANCE
}

/// The mark's share of [`send_reserve_for`]: its retries (about 1 s of waits) and calls.
const MARK_ALLOWANCE: Duration = Duration::from_secs(3);

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
