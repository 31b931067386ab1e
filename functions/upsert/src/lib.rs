//! The upsert function: reads [`Job`]s from the upsert queue and writes them to Brevo.
//!
//! Per record: look the person up in the helpdesk when the delivery only named them by id,
//! upsert the contact (`POST /v3/contacts`, `updateEnabled: true`), take them off the lists of
//! removed tags, and send each mapped support event once (deduped through the state store).
//!
//! Failures are reported per message (SQS `ReportBatchItemFailures`):
//! - retryable (Brevo rate limit or outage after the client's own retries, helpdesk outage,
//!   state store unavailable): the message id goes into [`BatchReport::failed`] and SQS
//!   redelivers it. Work already done is safe to repeat: upserts are idempotent, list removals
//!   too, and sent events are remembered in the state store;
//! - final (Brevo rejected a request, a record has no identifier, the body is not a job):
//!   logged with masked identifiers, counted, and the message is not retried, since retrying
//!   cannot help. (Poison bodies will go to a DLQ later.)
//!
//! Retries of single Brevo calls (429 waits, transient backoff) live in the Brevo client, not
//! here; the only retry this handler does is the SMS-conflict one: an upsert refused because the
//! number belongs to another contact is sent again without `SMS` (never with `forceMerge`, which
//! deletes a contact).
//!
//! Jobs of the batch sync (`Origin::Sync`, up to 50 records each) take a batch path instead, so a
//! backfill of N contacts costs about N/500 Brevo calls rather than N: all sync messages of one
//! Lambda batch are written together, contacts with an email through one `/v3/contacts/import`
//! per (source, list-id set) and events through `/v3/events/batch`, 100 a call (steps in
//! `Upserter::process_sync`). Contacts an import cannot carry (no email, unsubscribed) and sources
//! without an all-contacts list (Brevo's import requires `listIds`) fall back to single upserts.
//! Webhook jobs keep the per-record path above (fast, per-contact errors, SMS-conflict retry).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{AddAssign, Range};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use deskbridge_shared::brevo::{
    BrevoApi, BrevoError, ContactKey, ContactUpsert, EventIdentifiers, EventRequest, UpsertOutcome,
    redact,
};
use deskbridge_shared::clock::{Clock, SystemClock};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::identity::mask;
use deskbridge_shared::mapping::{Mapping, SourceMapping, Transform};
use deskbridge_shared::model::{Job, Origin, Person, Record, Source, SupportEvent};
pub use deskbridge_shared::queue::{Message, messages_from_sqs};
use deskbridge_shared::queue::{Queue, Redelivery, Settled};
use deskbridge_shared::state::{self, Claim, StateError, StateStore};
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

mod contact_ledger;
pub mod health;
use contact_ledger::LedgerEntry;
use health::{Gate, Health, Pass, Watched};

/// How long a sent event is remembered, so a redelivery does not send it again.
pub const EVENT_DEDUPE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Messages of one batch processed at the same time. Brevo's limits are kept by the client's
/// rate governor whatever this is; it only overlaps the latency of independent messages.
pub const CONCURRENCY: usize = 4;

/// The SMS attribute, dropped when Brevo says the number belongs to another contact.
const SMS: &str = "SMS";

/// Contacts per `/v3/contacts/import` call at most (sync path).
pub const IMPORT_MAX_CONTACTS: usize = 10_000;

/// Serialized contacts per `/v3/contacts/import` call at most: Brevo caps `jsonBody` at 10 MB and
/// calls ~8 MB the safe limit.
pub const IMPORT_MAX_BYTES: usize = 8_000_000;

/// Events per `/v3/events/batch` call (Brevo states no maximum; this keeps bodies small).
pub const EVENTS_PER_BATCH: usize = 100;

/// State-store calls (event claims, completions, releases) in flight at once on the sync path.
const STATE_CONCURRENCY: usize = 16;

/// Attributes every Brevo account has: never created.
const BUILT_IN_ATTRIBUTES: [&str; 7] = [
    "EMAIL",
    "FIRSTNAME",
    "LASTNAME",
    "SMS",
    "WHATSAPP",
    "LANDLINE_NUMBER",
    "EXT_ID",
];

/// What a batch did, for logs, the local runner and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handled (including failed and poison ones).
    pub messages: usize,
    /// Contact upserts Brevo accepted.
    pub contacts: usize,
    /// Of those, contacts Brevo created (201) rather than updated (204).
    pub contacts_created: usize,
    /// Upserts sent again without SMS because the number belongs to another contact.
    pub sms_dropped: usize,
    /// Events sent to Brevo.
    pub events: usize,
    /// Events not sent because they were sent before (state store) or earlier in the batch.
    pub events_skipped_duplicate: usize,
    /// Events whose kind the mapping does not send.
    pub events_unmapped: usize,
    /// Contacts taken off a list.
    pub list_removals: usize,
    /// Final failures: Brevo refused a request for good, or a message was not a job.
    pub rejected: usize,
    /// Of the rejected, messages whose body is not a job.
    pub poison: usize,
    /// Records without any identifier Brevo accepts.
    pub skipped_no_identifier: usize,
    /// Helpdesk look-ups made for people named only by id.
    pub lookups: usize,
    /// Look-ups that found nobody (no credentials, unknown id): addressed by ext_id.
    pub lookups_unresolved: usize,
    /// `/v3/contacts/import` calls Brevo accepted (sync path).
    pub imports: usize,
    /// Contacts in those imports. Imports run asynchronously in Brevo: accepted, not yet written.
    pub contacts_imported: usize,
    /// `/v3/events/batch` calls Brevo answered with success (sync path).
    pub event_batches: usize,
    /// Attribute values not written because the contact's ledger holds a newer observation.
    pub stale_attributes: usize,
    /// Contact-ledger writes that lost a race with another worker (and were retried).
    pub ledger_conflicts: usize,
    /// Contacts sent again because another delivery changed them while they were written.
    pub resent_newer: usize,
    /// Messages put on the dead-letter queue with their reason (failed for good, or failing
    /// past the retry horizon).
    pub dead_lettered: usize,
    /// Of those, messages that were failing transiently for longer than the retry horizon.
    pub gave_up: usize,
    /// Messages that failed transiently and were sent back to the queue with a delay.
    pub retried_later: usize,
    /// Of those, messages not tried at all because Brevo was known to be down (outage gate).
    pub held: usize,
    /// Brevo calls refused with 401 (the API key): delivery pauses and the alarm fires.
    pub brevo_auth_failures: usize,
    /// Why things failed for good (masked), attributed to messages for their dead letters.
    pub finals: Vec<String>,
}

impl AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.messages += o.messages;
        self.contacts += o.contacts;
        self.contacts_created += o.contacts_created;
        self.sms_dropped += o.sms_dropped;
        self.events += o.events;
        self.events_skipped_duplicate += o.events_skipped_duplicate;
        self.events_unmapped += o.events_unmapped;
        self.list_removals += o.list_removals;
        self.rejected += o.rejected;
        self.poison += o.poison;
        self.skipped_no_identifier += o.skipped_no_identifier;
        self.lookups += o.lookups;
        self.lookups_unresolved += o.lookups_unresolved;
        self.imports += o.imports;
        self.contacts_imported += o.contacts_imported;
        self.event_batches += o.event_batches;
        self.stale_attributes += o.stale_attributes;
        self.ledger_conflicts += o.ledger_conflicts;
        self.resent_newer += o.resent_newer;
        self.dead_lettered += o.dead_lettered;
        self.gave_up += o.gave_up;
        self.retried_later += o.retried_later;
        self.held += o.held;
        self.brevo_auth_failures += o.brevo_auth_failures;
        self.finals.extend(o.finals);
    }
}

/// The result of [`Upserter::handle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Ids of the messages SQS must deliver again: those that could not be sent back to the
    /// queue with a delay (or every transiently failing one, without a [`Redelivery`]).
    pub failed: Vec<String>,
    pub stats: Stats,
}

/// A failure that a later delivery can get past: the message must be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Retry(String);

/// What a helpdesk look-up gave, cached per message.
type Found = Option<(Person, Value)>;

/// Writes jobs to Brevo. All dependencies are ports, so Lambda, the local runner and tests
/// inject what they have.
pub struct Upserter<B: BrevoApi, S: StateStore, L: PersonLookup> {
    pub brevo: B,
    pub state: S,
    pub lookup: L,
    pub mapping: Mapping,
    /// Brevo attributes known to exist, per container (see [`Upserter::ensure_attributes`]).
    attributes: tokio::sync::Mutex<AttributeCache>,
    /// Sources already reported as lacking an all-contacts list (logged once per container).
    no_list_noted: Mutex<HashSet<Source>>,
    /// Where failing messages go: back to the queue with a delay, or to the upsert DLQ.
    redelivery: Option<Redelivery>,
    clock: Arc<dyn Clock>,
    /// Brevo's answers to this container, and the outage gate built on them.
    health: Health,
    gate: Mutex<Gate>,
    /// How long before an invocation's deadline the last event send may start (see
    /// [`Upserter::with_send_reserve`]).
    send_reserve: Duration,
}

/// What this container learnt about the account's contact attributes.
#[derive(Debug, Default)]
struct AttributeCache {
    /// Upper-cased names listed by Brevo or created here; `None` until listed.
    known: Option<HashSet<String>>,
    /// Sources whose mapped attributes all exist.
    ready: HashSet<Source>,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    pub fn new(brevo: B, state: S, lookup: L, mapping: Mapping) -> Self {
        Upserter {
            brevo,
            state,
            lookup,
            mapping,
            attributes: tokio::sync::Mutex::new(AttributeCache::default()),
            no_list_noted: Mutex::new(HashSet::new()),
            redelivery: None,
            clock: Arc::new(SystemClock),
            health: Health::default(),
            gate: Mutex::new(Gate::default()),
            send_reserve: send_reserve_for(deskbridge_shared::brevo::REQUEST_TIMEOUT),
        }
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
    fn brevo(&self) -> Watched<'_, B> {
        Watched {
            inner: &self.brevo,
            health: &self.health,
        }
    }

    /// The time between two probes of Brevo during an outage.
    fn probe_interval(&self) -> Duration {
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

    /// Handles a batch; never fails as a whole.
    pub async fn handle(&self, messages: &[Message]) -> BatchReport {
        self.handle_until(messages, None).await
    }

    /// As [`Upserter::handle`], but gives up on messages still running at `deadline` (they are
    /// retried like any transient failure) and starts none after it. Lambda passes its own
    /// deadline minus a margin, so an invocation answers before it is killed.
    ///
    /// Sync jobs go through the batch path together; webhook jobs (and bodies that are not
    /// jobs) one by one, at the same time. While Brevo is known to be down (see [`health`]),
    /// a batch is not tried at all but sent back with its backoff, except one probe batch now
    /// and then.
    pub async fn handle_until(
        &self,
        messages: &[Message],
        deadline: Option<Instant>,
    ) -> BatchReport {
        let started = self.clock.now();
        let probe = self.probe_interval();
        let mut report = BatchReport::default();
        let all = messages;
        let pass = lock(&self.gate).pass(started, probe);
        let (messages, held) = match pass {
            Pass::Go => (all, None),
            Pass::Probe { reason, auth } => {
                let (probe, rest) = all.split_at(all.len().min(1));
                (probe, Some((rest, reason, auth)))
            }
            Pass::Hold { reason, auth } => (&all[..0], Some((all, reason, auth))),
        };
        if let Some((held, reason, auth)) = held {
            for message in held {
                report.stats.held += 1;
                let sent = message
                    .retry
                    .as_ref()
                    .map(|r| r.sent.clone())
                    .unwrap_or_default();
                self.retry_later(message, &reason, auth, sent, &mut report)
                    .await;
            }
            if !held.is_empty() {
                tracing::info!(held = held.len(), probe = messages.len(), %reason,
                    "upsert: messages held during a Brevo outage");
            }
        }
        if messages.is_empty() {
            report.stats.messages = all.len();
            return report;
        }
        let before = self.health.answers();

        let mut sync: Vec<(&Message, Job)> = Vec::new();
        let mut single: Vec<(&Message, Result<Job, serde_json::Error>)> = Vec::new();
        for message in messages {
            match serde_json::from_str::<Job>(&message.body) {
                Ok(job) if job.origin == Origin::Sync => sync.push((message, job)),
                parsed => single.push((message, parsed)),
            }
        }
        // A quarter of the invocation's time at least stays open to sends, whatever the reserve.
        let sends_until = deadline.map(|d| {
            let now = Instant::now();
            let span = d.saturating_duration_since(now);
            now + span.saturating_sub(self.send_reserve).max(span / 4)
        });
        let taken = Batch::new(messages).sending_until(sends_until);
        let (results, sync_run) = futures::join!(
            self.process_all(single, deadline, &taken),
            self.sync_before(&sync, deadline, &taken)
        );

        let mut retries = Vec::new();
        let mut finals: Vec<(&Message, Vec<String>)> = Vec::new();
        for (message, mut stats, outcome) in results {
            let reasons = std::mem::take(&mut stats.finals);
            report.stats += stats;
            match outcome {
                Err(retry) => retries.push((message, retry)),
                Ok(()) if !reasons.is_empty() => finals.push((message, reasons)),
                Ok(()) => {}
            }
        }
        let SyncRun {
            stats: mut sync_stats,
            failed: sync_failed,
            rejected: sync_rejected,
        } = sync_run;
        sync_stats.finals.clear();
        report.stats += sync_stats;
        for (((message, _), reason), reasons) in sync.iter().zip(sync_failed).zip(sync_rejected) {
            match reason {
                Some(reason) => retries.push((*message, Retry(reason))),
                None if !reasons.is_empty() => finals.push((*message, reasons)),
                None => {}
            }
        }

        let answers = self.health.answers().since(before);
        let auth = answers.auth > 0;
        if auth {
            report.stats.brevo_auth_failures += answers.auth as usize;
            tracing::error!(
                calls = answers.auth,
                "upsert: Brevo refused the API key (401); delivery is paused and retried until the key works. Check BREVO_API_KEY"
            );
        }
        match lock(&self.gate).observe(answers, self.clock.now(), probe) {
            Some(true) => tracing::warn!(probe_every = ?probe,
                "upsert: Brevo is not answering; holding messages and probing until it does"),
            Some(false) => tracing::info!("upsert: Brevo answers again; delivery resumes"),
            None => {}
        }

        // A message whose events Brevo accepted but the state store could not mark is not done:
        // it goes back to the queue carrying them, and the next attempt marks them.
        let unsettled: HashSet<&str> = retries
            .iter()
            .map(|(m, _)| m.message_id.as_str())
            .chain(finals.iter().map(|(m, _)| m.message_id.as_str()))
            .collect();
        for message in messages {
            if !unsettled.contains(message.message_id.as_str())
                && !taken.unmarked_for(message).is_empty()
            {
                retries.push((
                    message,
                    Retry("events sent to Brevo but not marked sent yet".into()),
                ));
            }
        }
        for (message, reasons) in finals {
            if let Err(retry) = self.dead_letter(message, &reasons, &mut report.stats).await {
                retries.push((message, retry));
            }
        }
        for (message, Retry(reason)) in retries {
            let sent = taken.unmarked_for(message);
            self.retry_later(message, &reason, auth, sent, &mut report)
                .await;
        }
        report.stats.finals.clear();
        report.stats.messages = all.len();
        tracing::info!(stats = ?report.stats, failed = report.failed.len(), "upsert: batch done");
        report
    }

    /// Settles a message that failed transiently: back on the queue with a delay (or, past the
    /// retry horizon, on the dead-letter queue); only when the queue cannot take it is it left
    /// for SQS to redeliver.
    async fn retry_later(
        &self,
        message: &Message,
        reason: &str,
        pause: bool,
        sent: Vec<String>,
        report: &mut BatchReport,
    ) {
        let settled = match &self.redelivery {
            Some(r) => r.retry(message, reason, pause, sent).await,
            None => Settled::Redeliver("no retry queue configured".into()),
        };
        match settled {
            Settled::Later(delay) => {
                report.stats.retried_later += 1;
                tracing::debug!(message_id = %message.message_id, ?delay,
                    attempts = message.retry.as_ref().map_or(1, |r| r.attempts + 1), %reason,
                    "upsert: message sent back to be tried again");
            }
            Settled::DeadLettered => {
                report.stats.dead_lettered += 1;
                report.stats.gave_up += 1;
                tracing::error!(message_id = %message.message_id, %reason,
                    retry = ?message.retry.as_ref().map(|r| r.to_string()),
                    "upsert: message failing past the retry horizon; moved to the dead-letter queue");
            }
            Settled::Redeliver(why) => {
                tracing::warn!(message_id = %message.message_id, receive_count = message.receive_count,
                    %reason, %why, "upsert: message left for SQS to redeliver");
                report.failed.push(message.message_id.clone());
            }
        }
    }

    /// Puts a message that failed for good on the dead-letter queue with its reasons. Without a
    /// dead-letter queue (tests, misconfiguration) it is logged and dropped. A failed send
    /// retries the message (redoing its work is safe).
    async fn dead_letter(
        &self,
        message: &Message,
        reasons: &[String],
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let reason = reasons.join("; ");
        let Some(redelivery) = self.redelivery.as_ref().filter(|r| r.has_dead_letters()) else {
            tracing::error!(message_id = %message.message_id, %reason,
                "upsert: message failed for good and no dead-letter queue is configured (UPSERT_DLQ_URL); dropped");
            return Ok(());
        };
        match redelivery.dead_letter(&message.body, &reason).await {
            Ok(()) => {
                stats.dead_lettered += 1;
                tracing::warn!(message_id = %message.message_id, %reason,
                    "upsert: message failed for good; moved to the dead-letter queue");
                Ok(())
            }
            Err(e) => Err(Retry(format!(
                "could not dead-letter a message that failed for good ({reason}): {e}"
            ))),
        }
    }

    /// The per-record path: messages side by side, at most [`CONCURRENCY`] at a time.
    async fn process_all<'m>(
        &self,
        messages: Vec<(&'m Message, Result<Job, serde_json::Error>)>,
        deadline: Option<Instant>,
        taken: &Batch,
    ) -> Vec<(&'m Message, Stats, Result<(), Retry>)> {
        // The futures are built into a Vec first: a stream `map` closure here would make the
        // returned future's `Send` proof higher-ranked, which rustc cannot do for generic callers.
        let work: Vec<_> = messages
            .into_iter()
            .map(|(message, parsed)| self.process_before(message, parsed, deadline, taken))
            .collect();
        futures::stream::iter(work)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// One message, unless `deadline` has passed; stopped (and failed) when it passes.
    async fn process_before<'m>(
        &self,
        message: &'m Message,
        parsed: Result<Job, serde_json::Error>,
        deadline: Option<Instant>,
        taken: &Batch,
    ) -> (&'m Message, Stats, Result<(), Retry>) {
        let late = |what: &str| {
            let reason = format!("{what}: invocation deadline reached");
            (Stats::default(), Err(Retry(reason)))
        };
        let (stats, outcome) = match deadline {
            None => self.process(message, parsed, taken).await,
            Some(d) if Instant::now() >= d => late("not started"),
            Some(d) => tokio::time::timeout_at(d, self.process(message, parsed, taken))
                .await
                .unwrap_or_else(|_| late("stopped")),
        };
        (message, stats, outcome)
    }

    /// One message, in its own span.
    async fn process(
        &self,
        message: &Message,
        parsed: Result<Job, serde_json::Error>,
        taken: &Batch,
    ) -> (Stats, Result<(), Retry>) {
        let span = tracing::info_span!("upsert_message",
            message_id = %message.message_id,
            receive_count = message.receive_count,
            job_id = tracing::field::Empty,
            source = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
        );
        let mut stats = Stats::default();
        let job = match parsed {
            Ok(job) => job,
            Err(e) => {
                // serde's message can quote a value of the body: mask identifiers in it.
                span.in_scope(|| {
                    tracing::error!(reason = %redact(&e.to_string()), body_bytes = message.body.len(),
                        "upsert: message is not a job; dropped, retrying cannot help")
                });
                stats.rejected += 1;
                stats.poison += 1;
                stats
                    .finals
                    .push(format!("not a job: {}", redact(&e.to_string())));
                return (stats, Ok(()));
            }
        };
        span.record("job_id", job.id.as_str());
        span.record("source", tracing::field::display(&job.source));
        if let Some(c) = &job.correlation_id {
            span.record("correlation_id", c.as_str());
        }
        let outcome = self
            .process_job(&job, taken, &mut stats)
            .instrument(span)
            .await;
        (stats, outcome)
    }

    /// Every record of a job, in order (the per-record path of webhook jobs).
    async fn process_job(&self, job: &Job, taken: &Batch, stats: &mut Stats) -> Result<(), Retry> {
        let mut found: HashMap<String, Found> = HashMap::new();
        for record in &job.records {
            let record = self
                .resolve_person(&job.source, record, &mut found, stats)
                .await?;
            self.process_record(&job.source, &record, taken, stats)
                .await?;
        }
        Ok(())
    }

    /// Fills in a person named only by id from the helpdesk API (once per id and message), and
    /// what the person's object only references (an Intercom contact's company).
    async fn resolve_person(
        &self,
        source: &Source,
        record: &Record,
        found: &mut HashMap<String, Found>,
        stats: &mut Stats,
    ) -> Result<Record, Retry> {
        let mut record = record.clone();
        let Some(id) = record
            .person
            .source_id
            .clone()
            .filter(|_| record.person.needs_lookup())
        else {
            self.lookup.complete_profile(source, &mut record).await;
            return Ok(record);
        };
        if !found.contains_key(&id) {
            stats.lookups += 1;
            let result = match self.lookup.lookup(source, &id).await {
                Ok(result) => result,
                // Outage or rate limit: a later delivery can succeed.
                Err(e) if e.is_retryable() => {
                    return Err(Retry(format!(
                        "helpdesk look-up of {}:{id} failed: {e}",
                        source.as_str()
                    )));
                }
                // Refused for good (credentials, invalid id): fall back to the ext_id.
                Err(e) => {
                    tracing::warn!(person = %format!("{}:{id}", source.as_str()), reason = %redact(&e.to_string()),
                        "upsert: helpdesk refused the look-up");
                    None
                }
            };
            if result.is_none() {
                stats.lookups_unresolved += 1;
                tracing::info!(ext_id = %format!("{}:{id}", source.as_str()),
                    "upsert: person known only by id (no helpdesk API credentials, or no such person): addressed by ext_id");
            }
            found.insert(id.clone(), result);
        }
        if let Some(Some((person, profile))) = found.get(&id) {
            merge_person(&mut record.person, person);
            if record.profile.is_none() {
                record.profile = Some(profile.clone());
            }
        }
        self.lookup.complete_profile(source, &mut record).await;
        Ok(record)
    }

    /// Contact, list removals, then events of one record.
    async fn process_record(
        &self,
        source: &Source,
        record: &Record,
        taken: &Batch,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let contact = match self.mapping.contact(source, record) {
            Ok(contact) => contact,
            Err(e) => {
                stats.skipped_no_identifier += 1;
                tracing::warn!(reason = %e, "upsert: record skipped");
                return Ok(());
            }
        };
        let key = contact.key();
        let subject = describe(key.as_ref());
        let (contact, entry) = self.reconcile(source, record, contact, stats).await?;
        // The SMS the contact ended up with: identifies a phone-only contact's events.
        let sms = self.upsert(contact.clone(), &subject, stats).await?;
        if key.is_none() && sms.is_none() {
            // A phone-only contact that could not be written: nothing addresses its events.
            return Ok(());
        }
        if let Some(entry) = &entry {
            let mut sent = contact;
            if sms.is_none() {
                sent.attributes.remove(SMS);
            }
            self.confirm(source, entry, &sent, &subject, stats).await?;
        }

        if let Some(key) = &key {
            let csat_leave = entry
                .as_ref()
                .and_then(|e| self.csat_list_to_leave(source, e));
            for list_id in self.mapping.lists_to_leave(source, record) {
                self.leave_list(list_id, key, &subject, stats).await?;
            }
            if let (Some(list_id), Some(entry)) = (csat_leave, &entry) {
                self.leave_list(list_id, key, &subject, stats).await?;
                self.csat_placed(entry, stats).await?;
            }
        }

        for event in &record.events {
            let Some(mut request) = self.event_request(source, key.as_ref(), sms.as_deref(), event)
            else {
                stats.events_unmapped += 1;
                continue;
            };
            self.enrich(source, entry.as_ref(), event, &mut request);
            self.send_once(event, &request, &subject, taken, stats)
                .await?;
        }
        Ok(())
    }

    /// Takes a contact off a list; a refusal is final, an outage retried.
    async fn leave_list(
        &self,
        list_id: i64,
        key: &ContactKey,
        subject: &str,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        match self.brevo().remove_from_list(list_id, key).await {
            Ok(()) => {
                stats.list_removals += 1;
                Ok(())
            }
            Err(e) => final_or_retry(e, &format!("removing {subject} from list {list_id}"), stats),
        }
    }

    /// Upserts the contact; on an SMS conflict, once more without SMS. Returns the SMS value
    /// Brevo accepted, if any.
    async fn upsert(
        &self,
        mut contact: ContactUpsert,
        subject: &str,
        stats: &mut Stats,
    ) -> Result<Option<String>, Retry> {
        let mut result = self.brevo().upsert_contact(&contact).await;
        if result == Err(BrevoError::DuplicateSms) {
            stats.sms_dropped += 1;
            contact.attributes.remove(SMS);
            if contact.key().is_none() {
                // The number was the only identifier, and it belongs to someone else.
                stats.rejected += 1;
                tracing::warn!(contact = %subject, "upsert: phone-only contact's SMS belongs to another Brevo contact; skipped");
                stats.finals.push(format!(
                    "{subject}: its SMS belongs to another Brevo contact and it has no other identifier"
                ));
                return Ok(None);
            }
            tracing::info!(contact = %subject, "upsert: SMS belongs to another Brevo contact; upserting without SMS");
            result = self.brevo().upsert_contact(&contact).await;
        }
        match result {
            Ok(outcome) => {
                stats.contacts += 1;
                if outcome == UpsertOutcome::Created {
                    stats.contacts_created += 1;
                }
                Ok(contact
                    .attributes
                    .get(SMS)
                    .and_then(Value::as_str)
                    .map(str::to_string))
            }
            Err(e) => {
                final_or_retry(e, &format!("upserting {subject}"), stats)?;
                Ok(None)
            }
        }
    }

    /// The Brevo event for a support event, addressed by the contact key, or by phone for a
    /// phone-only contact. `None` when the mapping does not send this kind (or nobody to address).
    fn event_request(
        &self,
        source: &Source,
        key: Option<&ContactKey>,
        sms: Option<&str>,
        event: &SupportEvent,
    ) -> Option<EventRequest> {
        match (key, sms) {
            (Some(key), _) => self.mapping.event(source, key, event),
            (None, Some(sms)) => {
                // The mapping builds names and properties; the placeholder key is replaced.
                let mut request =
                    self.mapping
                        .event(source, &ContactKey::ExtId(String::new()), event)?;
                request.identifiers = EventIdentifiers {
                    phone_id: Some(sms.to_string()),
                    ..Default::default()
                };
                Some(request)
            }
            (None, None) => None,
        }
    }

    /// Sends an event unless it was sent before: claim, send, complete (release on failure).
    async fn send_once(
        &self,
        event: &SupportEvent,
        request: &EventRequest,
        subject: &str,
        taken: &Batch,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        if !taken.take(&event.id) {
            stats.events_skipped_duplicate += 1;
            return Ok(());
        }
        let key = state::event_key(&event.id);
        if taken.carried.contains(&event.id) {
            // Sent by an earlier attempt that could not mark it: mark it now, never resend.
            stats.events_skipped_duplicate += 1;
            self.complete_sent(&key, &event.id, taken).await;
            return Ok(());
        }
        if let Some(why) = taken.too_late_to_send() {
            taken.untake(&event.id);
            return Err(Retry(format!("event {} not sent: {why}", event.id)));
        }
        let claim = self
            .state
            .claim(&key, EVENT_DEDUPE_TTL)
            .await
            .map_err(|e| {
                taken.untake(&event.id);
                Retry(format!("claiming event {}: {e}", event.id))
            })?;
        match claim {
            Claim::Done => {
                stats.events_skipped_duplicate += 1;
                return Ok(());
            }
            Claim::New => {}
            Claim::InFlight => {
                tracing::info!(event_id = %event.id, "upsert: event claimed before but not completed; sending it");
            }
            Claim::Busy => {
                taken.untake(&event.id);
                return Err(Retry(format!(
                    "event {} is being sent by another worker; checking again later",
                    event.id
                )));
            }
        }
        match self.brevo().send_event(request).await {
            Ok(()) => {
                stats.events += 1;
                self.complete_sent(&key, &event.id, taken).await;
                Ok(())
            }
            Err(err) => {
                self.release_claim(&key, &event.id).await;
                let what = format!(
                    "sending {} ({}) for {subject}",
                    request.event_name, event.id
                );
                final_or_retry(err, &what, stats)
            }
        }
    }
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Marks a sent event done, retried here a few times. If the state store still refuses,
    /// the event is noted in `batch`: its message goes back to the queue carrying the event id
    /// ([`RetryRecord::sent`]), and the next attempt marks it instead of sending it again.
    ///
    /// [`RetryRecord::sent`]: deskbridge_shared::queue::RetryRecord::sent
    async fn complete_sent(&self, key: &str, event_id: &str, batch: &Batch) {
        match with_retries(|| self.state.complete(key, EVENT_DEDUPE_TTL)).await {
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
    async fn release_claim(&self, key: &str, event_id: &str) {
        if let Err(e) = with_retries(|| self.state.release(key)).await {
            tracing::warn!(event_id, error = %e,
                "upsert: could not release the event claim; redeliveries wait for its lease");
        }
    }
}

/// Runs a state-store write up to [`COMPLETE_ATTEMPTS`] times, 50 ms, 200 ms, 800 ms apart.
async fn with_retries<F, Fut>(mut write: F) -> Result<(), StateError>
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

/// The time an event send may take from its start to its mark: Brevo's retry budget plus one
/// last attempt of `brevo_timeout`, then the mark's retries with room for their calls.
pub fn send_reserve_for(brevo_timeout: Duration) -> Duration {
    deskbridge_shared::brevo::RetryPolicy::default().budget + brevo_timeout + MARK_ALLOWANCE
}

/// The mark's share of [`send_reserve_for`]: its retries (about 1 s of waits) and calls.
const MARK_ALLOWANCE: Duration = Duration::from_secs(3);

/// What the messages of one batch share while they are handled.
struct Batch {
    /// Event ids already taken by a message of this batch: SQS may deliver the same message
    /// twice in one batch, and the two copies would otherwise both see the claim in flight.
    taken: Mutex<HashSet<String>>,
    /// Event ids the batch's messages carry as sent by an earlier attempt but not marked.
    carried: HashSet<String>,
    /// Sent events not marked in the state store (`false`), or carried ones marked now (`true`).
    marks: Mutex<HashMap<String, bool>>,
    /// No event send starts after this instant (see [`Upserter::with_send_reserve`]).
    sends_until: Option<Instant>,
}

impl Batch {
    fn new(messages: &[Message]) -> Self {
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

    fn sending_until(mut self, until: Option<Instant>) -> Self {
        self.sends_until = until;
        self
    }

    /// Whether an event send may still start: one that starts now has the time to finish and be
    /// marked before the invocation's deadline. `None` when it may, else the reason it may not.
    fn too_late_to_send(&self) -> Option<&'static str> {
        self.sends_until
            .filter(|until| Instant::now() >= *until)
            .map(|_| "too close to the invocation deadline to send and mark it")
    }

    /// Takes `event_id` for this batch; false when a message of the batch took it already.
    fn take(&self, event_id: &str) -> bool {
        lock(&self.taken).insert(event_id.to_string())
    }

    fn untake(&self, event_id: &str) {
        lock(&self.taken).remove(event_id);
    }

    fn unconfirmed(&self, event_id: &str) {
        lock(&self.marks).insert(event_id.to_string(), false);
    }

    fn confirmed(&self, event_id: &str) {
        lock(&self.marks).insert(event_id.to_string(), true);
    }

    /// The events of `message` that were sent but are not marked: those it carried and that
    /// were not marked now, and those sent now and left unmarked.
    fn unmarked_for(&self, message: &Message) -> Vec<String> {
        let carries = message.retry.as_ref().is_some_and(|r| !r.sent.is_empty());
        if !carries && lock(&self.marks).values().all(|marked| *marked) {
            return Vec::new();
        }
        let job = serde_json::from_str::<Job>(&message.body).ok();
        self.unmarked(message, job.as_ref())
    }

    fn unmarked(&self, message: &Message, job: Option<&Job>) -> Vec<String> {
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

/// What the sync path did to the messages of one batch: stats, and per message (in the order
/// given) the reason it must be retried, if any.
#[derive(Debug, Default)]
struct SyncRun {
    stats: Stats,
    failed: Vec<Option<String>>,
    /// Per message, what failed for good (for its dead letter).
    rejected: Vec<Vec<String>>,
}

impl SyncRun {
    fn new(jobs: usize) -> Self {
        SyncRun {
            stats: Stats::default(),
            failed: vec![None; jobs],
            rejected: vec![Vec::new(); jobs],
        }
    }

    /// Every message failed for `reason` (deadline), nothing done.
    fn all_failed(jobs: usize, reason: &str) -> Self {
        SyncRun {
            stats: Stats::default(),
            failed: vec![Some(reason.to_string()); jobs],
            rejected: vec![Vec::new(); jobs],
        }
    }

    /// Marks message `job` for retry; the first reason is kept.
    fn fail(&mut self, job: usize, reason: &str) {
        if let Some(slot) = self.failed.get_mut(job)
            && slot.is_none()
        {
            *slot = Some(reason.to_string());
        }
    }

    /// Gives the reasons recorded in `stats.finals` since `from` to message `job`.
    fn reject_since(&mut self, job: usize, from: usize) {
        let reasons: Vec<String> = self.stats.finals.drain(from..).collect();
        if let Some(slot) = self.rejected.get_mut(job) {
            slot.extend(reasons);
        }
    }

    /// Records a final failure of the messages `jobs`.
    fn reject(&mut self, jobs: impl IntoIterator<Item = usize>, reason: &str) {
        for job in jobs {
            if let Some(slot) = self.rejected.get_mut(job) {
                slot.push(reason.to_string());
            }
        }
    }

    /// Whether message `job` has not failed so far (later steps skip failed messages: SQS
    /// redelivers them whole, and everything done for them is safe to repeat).
    fn ok(&self, job: usize) -> bool {
        self.failed.get(job).is_some_and(Option::is_none)
    }
}

/// A record of a sync job and the contact it maps to (rebuilt from the contact's ledger).
struct Routed<'a> {
    job: usize,
    source: &'a Source,
    record: &'a Record,
    contact: ContactUpsert,
    entry: Option<LedgerEntry>,
}

/// A contact bound for `/v3/contacts/import`, merged over the records that name it.
struct ImportRow<'a> {
    contact: ContactUpsert,
    /// The record whose attributes won: the newest observation.
    newest: &'a Record,
    /// The ledger revision its contact was built from (a later one knows more).
    rev: u64,
    /// That ledger, to check after the import that nothing newer arrived meanwhile.
    entry: Option<LedgerEntry>,
    /// Messages that asked for this contact.
    jobs: Vec<usize>,
}

/// Contacts of one import call's list-id set, with the messages behind each.
#[derive(Default)]
struct ImportGroup {
    contacts: Vec<ContactUpsert>,
    entries: Vec<Option<LedgerEntry>>,
    jobs: Vec<Vec<usize>>,
}

/// The records of one sync message that take single upserts.
struct SingleUpserts<'a> {
    job: usize,
    source: &'a Source,
    contacts: Vec<Routed<'a>>,
}

/// A record whose contact was written (or at least sent): how to address its events.
struct Target<'a> {
    job: usize,
    source: &'a Source,
    record: &'a Record,
    key: Option<ContactKey>,
    sms: Option<String>,
    entry: Option<LedgerEntry>,
}

/// An event claimed in the state store, waiting to be sent.
struct Claimed<'a> {
    job: usize,
    event_id: &'a str,
    state_key: String,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// The sync path over `jobs`, unless `deadline` has passed; stopped when it passes (every
    /// sync message then fails and is redelivered).
    async fn sync_before(
        &self,
        jobs: &[(&Message, Job)],
        deadline: Option<Instant>,
        taken: &Batch,
    ) -> SyncRun {
        if jobs.is_empty() {
            return SyncRun::default();
        }
        let span = tracing::info_span!("upsert_sync", messages = jobs.len());
        let run = self.process_sync(jobs, taken).instrument(span);
        match deadline {
            None => run.await,
            Some(d) if Instant::now() >= d => {
                SyncRun::all_failed(jobs.len(), "not started: invocation deadline reached")
            }
            Some(d) => tokio::time::timeout_at(d, run).await.unwrap_or_else(|_| {
                SyncRun::all_failed(jobs.len(), "stopped: invocation deadline reached")
            }),
        }
    }

    /// The batch path for sync jobs: all messages of the batch together.
    ///
    /// 1. people named only by id are looked up (as on the per-record path);
    /// 2. each record is mapped; contacts with an email, of a source with an all-contacts list,
    ///    and not unsubscribed go to imports, the rest (ext_id or SMS only, unsubscribed — the
    ///    import call has one blocklist flag for all its contacts —, no all-contacts list) to
    ///    single upserts;
    /// 3. imports: one `/v3/contacts/import` per (source, list-id set), so tag lists are joined
    ///    in the same call (`/contacts/lists/{id}/contacts/add` would need the contacts to exist,
    ///    which an asynchronous import does not promise, and costs a call per list and 150
    ///    contacts); the source's mapped attributes are made to exist first;
    /// 4. single upserts as on the per-record path (SMS-conflict retry included);
    /// 5. list removals of removed tags, one call per contact and list as today;
    /// 6. events: claimed one by one in the state store, sent 100 per `/v3/events/batch`.
    ///
    /// A retryable failure fails the messages that contributed to the failed call; the others
    /// go on. Redelivery is safe: imports and upserts are idempotent, events deduped.
    async fn process_sync(&self, jobs: &[(&Message, Job)], taken: &Batch) -> SyncRun {
        let mut run = SyncRun::new(jobs.len());
        tracing::debug!(job_ids = ?jobs.iter().map(|(_, j)| j.id.as_str()).collect::<Vec<_>>(),
            "upsert: sync jobs");

        // 1. Look-ups, messages side by side (`buffered` keeps their order).
        let work: Vec<_> = jobs.iter().map(|(_, job)| self.resolve_job(job)).collect();
        let resolved: Vec<(Stats, Result<Vec<Record>, Retry>)> = futures::stream::iter(work)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut records: Vec<Vec<Record>> = Vec::with_capacity(jobs.len());
        for (j, (stats, result)) in resolved.into_iter().enumerate() {
            run.stats += stats;
            records.push(result.unwrap_or_else(|Retry(reason)| {
                run.fail(j, &reason);
                Vec::new()
            }));
        }

        // 2. Mapping, each contact merged into its ledger (contacts side by side), then routing.
        let mut mapped: Vec<Routed> = Vec::new();
        let mut all_contacts_lists: HashMap<&Source, Option<i64>> = HashMap::new();
        for (j, ((_, job), job_records)) in jobs.iter().zip(&records).enumerate() {
            let source = &job.source;
            let all_contacts = *all_contacts_lists
                .entry(source)
                .or_insert_with(|| self.mapping.source(source).lists.all_contacts);
            if all_contacts.is_none() && !job_records.is_empty() {
                self.note_no_list(source);
            }
            for record in job_records {
                match self.mapping.contact(source, record) {
                    Ok(contact) => mapped.push(Routed {
                        job: j,
                        source,
                        record,
                        contact,
                        entry: None,
                    }),
                    Err(e) => {
                        run.stats.skipped_no_identifier += 1;
                        tracing::warn!(reason = %e, "upsert: record skipped");
                    }
                }
            }
        }
        let mapped = self.reconcile_all(mapped, &mut run).await;

        let mut imports: Vec<Routed> = Vec::new();
        let mut singles: Vec<SingleUpserts> = Vec::new();
        for routed in mapped {
            let all_contacts = all_contacts_lists.get(routed.source).copied().flatten();
            if all_contacts.is_some()
                && routed.contact.email.is_some()
                && routed.contact.email_blacklisted != Some(true)
            {
                imports.push(routed);
                continue;
            }
            match singles.last_mut() {
                Some(last) if last.job == routed.job => last.contacts.push(routed),
                _ => singles.push(SingleUpserts {
                    job: routed.job,
                    source: routed.source,
                    contacts: vec![routed],
                }),
            }
        }

        // 3.–6.
        let mut targets = self.import_all(imports, &mut run).await;
        targets.extend(self.upsert_singles(singles, &mut run).await);
        self.leave_lists(&targets, &mut run).await;
        self.send_sync_events(&targets, taken, &mut run).await;
        run
    }

    /// Every record of a job with its person filled in; a retryable look-up failure fails it.
    async fn resolve_job(&self, job: &Job) -> (Stats, Result<Vec<Record>, Retry>) {
        let mut stats = Stats::default();
        let mut found: HashMap<String, Found> = HashMap::new();
        let mut out = Vec::with_capacity(job.records.len());
        for record in &job.records {
            match self
                .resolve_person(&job.source, record, &mut found, &mut stats)
                .await
            {
                Ok(record) => out.push(record),
                Err(retry) => return (stats, Err(retry)),
            }
        }
        (stats, Ok(out))
    }

    /// Merges every mapped record into its contact's ledger, [`STATE_CONCURRENCY`] at a time
    /// (records of one contact in one batch meet as conditional-write conflicts and are
    /// retried). A failure fails the record's message and drops the record from this run.
    async fn reconcile_all<'a>(
        &self,
        mapped: Vec<Routed<'a>>,
        run: &mut SyncRun,
    ) -> Vec<Routed<'a>> {
        let work: Vec<_> = mapped
            .into_iter()
            .map(|mut routed| async move {
                let mut stats = Stats::default();
                let contact = std::mem::take(&mut routed.contact);
                let result = self
                    .reconcile(routed.source, routed.record, contact, &mut stats)
                    .await
                    .map(|(contact, entry)| {
                        routed.contact = contact;
                        routed.entry = entry;
                    });
                (routed, stats, result)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(work)
            .buffered(STATE_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for (routed, stats, result) in results {
            run.stats += stats;
            match result {
                Ok(()) => out.push(routed),
                Err(Retry(reason)) => run.fail(routed.job, &reason),
            }
        }
        out.retain(|r| run.ok(r.job));
        out
    }

    /// Logs, once per container and source, that sync traffic falls back to single upserts.
    fn note_no_list(&self, source: &Source) {
        if lock(&self.no_list_noted).insert(source.clone()) {
            tracing::info!(
                "sync: no all_contacts list configured for {source}; using single upserts (slower)"
            );
        }
    }

    /// Step 3: the import calls. Returns the imported records as event targets.
    async fn import_all<'a>(&self, imports: Vec<Routed<'a>>, run: &mut SyncRun) -> Vec<Target<'a>> {
        let targets: Vec<Target<'a>> = imports
            .iter()
            .map(|r| Target {
                job: r.job,
                source: r.source,
                record: r.record,
                key: r.contact.key(),
                sms: None,
                entry: r.entry.clone(),
            })
            .collect();

        // One row per (source, email): a person met twice in a batch (two pages, or a message
        // delivered twice) is imported once, with the newest observation's attributes (an
        // older one never overwrites a newer one) and every list either asked for.
        let mut rows: BTreeMap<(&Source, String), ImportRow<'a>> = BTreeMap::new();
        for routed in imports {
            let Some(email) = routed.contact.email.clone() else {
                continue;
            };
            match rows.entry((routed.source, email)) {
                Entry::Vacant(slot) => {
                    slot.insert(ImportRow {
                        contact: routed.contact,
                        newest: routed.record,
                        rev: routed.entry.as_ref().map_or(0, |e| e.rev),
                        entry: routed.entry,
                        jobs: vec![routed.job],
                    });
                }
                Entry::Occupied(mut slot) => {
                    let row = slot.get_mut();
                    let mut lists = std::mem::take(&mut row.contact.list_ids);
                    lists.extend_from_slice(&routed.contact.list_ids);
                    let rev = routed.entry.as_ref().map_or(0, |e| e.rev);
                    if (rev, routed.record.observed_at) >= (row.rev, row.newest.observed_at) {
                        row.rev = rev;
                        row.contact = routed.contact;
                        row.newest = routed.record;
                        row.entry = routed.entry;
                    }
                    lists.sort_unstable();
                    lists.dedup();
                    row.contact.list_ids = lists;
                    if !row.jobs.contains(&routed.job) {
                        row.jobs.push(routed.job);
                    }
                }
            }
        }

        // Brevo's import takes one list-id set per call: group by it.
        let mut groups: BTreeMap<(&Source, Vec<i64>), ImportGroup> = BTreeMap::new();
        for ((source, _), row) in rows {
            let group = groups
                .entry((source, row.contact.list_ids.clone()))
                .or_default();
            group.contacts.push(row.contact);
            group.entries.push(row.entry);
            group.jobs.push(row.jobs);
        }

        let mut ready: HashMap<&Source, Result<(), String>> = HashMap::new();
        for ((source, list_ids), group) in groups {
            let attributes = match ready.get(source) {
                Some(result) => result.clone(),
                None => {
                    let result = self
                        .ensure_attributes(source)
                        .await
                        .map_err(|Retry(reason)| reason);
                    ready.insert(source, result.clone());
                    result
                }
            };
            if let Err(reason) = attributes {
                for job in group.jobs.iter().flatten() {
                    run.fail(*job, &reason);
                }
                continue;
            }
            let sizes = group.contacts.iter().map(|c| {
                // The contact's own JSON is a little larger than its import row: a safe bound.
                serde_json::to_vec(c).map_or(0, |v| v.len() + 1)
            });
            for range in chunk_ranges(sizes, IMPORT_MAX_CONTACTS, IMPORT_MAX_BYTES) {
                let (Some(contacts), Some(entries), Some(jobs)) = (
                    group.contacts.get(range.clone()),
                    group.entries.get(range.clone()),
                    group.jobs.get(range),
                ) else {
                    continue;
                };
                self.import_chunk(source, &list_ids, contacts, entries, jobs, run)
                    .await;
            }
        }
        targets
    }

    /// One `/v3/contacts/import` call.
    async fn import_chunk(
        &self,
        source: &Source,
        list_ids: &[i64],
        contacts: &[ContactUpsert],
        entries: &[Option<LedgerEntry>],
        jobs: &[Vec<usize>],
        run: &mut SyncRun,
    ) {
        match self.brevo().import_contacts(contacts, list_ids).await {
            Ok(process_id) => {
                run.stats.imports += 1;
                run.stats.contacts_imported += contacts.len();
                tracing::info!(%source, process_id, contacts = contacts.len(), ?list_ids,
                    "upsert: contacts import accepted by Brevo");
                self.confirm_imported(source, contacts, entries, jobs, run)
                    .await;
            }
            Err(e) if e.is_worth_retrying() => {
                let reason = format!(
                    "importing {} {source} contacts into lists {list_ids:?}: {e}",
                    contacts.len()
                );
                for job in jobs.iter().flatten() {
                    run.fail(*job, &reason);
                }
            }
            Err(e) => {
                run.stats.rejected += 1;
                tracing::warn!(%source, contacts = contacts.len(), ?list_ids, error = %e,
                    "upsert: Brevo refused a contacts import; not retried");
                let reason = format!(
                    "Brevo refused an import of {} {source} contacts into lists {list_ids:?}: {e}",
                    contacts.len()
                );
                run.reject(jobs.iter().flatten().copied(), &reason);
            }
        }
    }

    /// After an import: a contact whose ledger another worker changed since its row was built
    /// (a webhook with a newer observation, written while the import was on its way) is sent
    /// again with the ledger's newest view, so the import does not leave older values last.
    /// The revisions are read side by side; only changed contacts cost a Brevo call.
    async fn confirm_imported(
        &self,
        source: &Source,
        contacts: &[ContactUpsert],
        entries: &[Option<LedgerEntry>],
        jobs: &[Vec<usize>],
        run: &mut SyncRun,
    ) {
        let reads: Vec<_> = entries
            .iter()
            .map(|entry| async move {
                match entry {
                    Some(e) => self.ledger_rev(&e.key).await.map(|rev| rev != e.rev),
                    None => Ok(false),
                }
            })
            .collect();
        let changed: Vec<Result<bool, Retry>> = futures::stream::iter(reads)
            .buffered(STATE_CONCURRENCY)
            .collect()
            .await;
        for (i, changed) in changed.into_iter().enumerate() {
            let (Some(contact), Some(Some(entry)), Some(jobs)) =
                (contacts.get(i), entries.get(i), jobs.get(i))
            else {
                continue;
            };
            let outcome = match changed {
                Ok(false) => Ok(()),
                Ok(true) => {
                    let subject = describe(contact.key().as_ref());
                    self.confirm(source, entry, contact, &subject, &mut run.stats)
                        .await
                }
                Err(retry) => Err(retry),
            };
            if let Err(Retry(reason)) = outcome {
                for job in jobs {
                    run.fail(*job, &reason);
                }
            }
        }
    }

    /// Makes sure every attribute the mapping of `source` can write exists in Brevo, since an
    /// import silently drops unknown ones. Lists the account's attributes once per container,
    /// creates what is missing, and remembers the sources done. Any failure is retryable,
    /// except a refused creation of an attribute that exists already.
    async fn ensure_attributes(&self, source: &Source) -> Result<(), Retry> {
        let mut guard = self.attributes.lock().await;
        let cache = &mut *guard;
        if cache.ready.contains(source) {
            return Ok(());
        }
        let known = match &mut cache.known {
            Some(known) => known,
            slot @ None => {
                let listed = self
                    .brevo()
                    .list_attributes()
                    .await
                    .map_err(|e| Retry(format!("listing Brevo contact attributes: {e}")))?;
                slot.insert(
                    listed
                        .into_iter()
                        .map(|a| a.name.to_ascii_uppercase())
                        .collect(),
                )
            }
        };
        for (name, kind) in mapped_attributes(&self.mapping.source(source)) {
            let upper = name.to_ascii_uppercase();
            if known.contains(&upper) || BUILT_IN_ATTRIBUTES.contains(&upper.as_str()) {
                continue;
            }
            match self.brevo().create_attribute(&name, kind).await {
                Ok(()) => {
                    tracing::info!(attribute = %name, kind, "upsert: created Brevo contact attribute");
                }
                Err(e) if already_exists(&e) => {}
                Err(e) => {
                    return Err(Retry(format!(
                        "creating Brevo contact attribute {name} ({kind}): {e}"
                    )));
                }
            }
            known.insert(upper);
        }
        cache.ready.insert(source.clone());
        Ok(())
    }

    /// Step 4: single upserts, messages side by side, each message's records in order.
    async fn upsert_singles<'a>(
        &self,
        singles: Vec<SingleUpserts<'a>>,
        run: &mut SyncRun,
    ) -> Vec<Target<'a>> {
        let work: Vec<_> = singles
            .into_iter()
            .filter(|s| run.ok(s.job))
            .map(|s| self.upsert_job_contacts(s))
            .collect();
        let results: Vec<(usize, Stats, Result<Vec<Target<'a>>, Retry>)> =
            futures::stream::iter(work)
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let mut targets = Vec::new();
        for (job, mut stats, result) in results {
            let finals = std::mem::take(&mut stats.finals);
            if !finals.is_empty() {
                run.reject([job], &finals.join("; "));
            }
            run.stats += stats;
            match result {
                Ok(t) => targets.extend(t),
                Err(Retry(reason)) => run.fail(job, &reason),
            }
        }
        targets
    }

    /// The single upserts of one message.
    async fn upsert_job_contacts<'a>(
        &self,
        work: SingleUpserts<'a>,
    ) -> (usize, Stats, Result<Vec<Target<'a>>, Retry>) {
        let SingleUpserts {
            job,
            source,
            contacts,
        } = work;
        let mut stats = Stats::default();
        let mut targets = Vec::new();
        for Routed {
            record,
            contact,
            entry,
            ..
        } in contacts
        {
            let key = contact.key();
            let subject = describe(key.as_ref());
            let sms = match self.upsert(contact.clone(), &subject, &mut stats).await {
                // A phone-only contact that could not be written: nothing addresses its events.
                Ok(None) if key.is_none() => continue,
                Ok(sms) => sms,
                Err(retry) => return (job, stats, Err(retry)),
            };
            if let Some(entry) = &entry {
                let mut sent = contact;
                if sms.is_none() {
                    sent.attributes.remove(SMS);
                }
                if let Err(retry) = self
                    .confirm(source, entry, &sent, &subject, &mut stats)
                    .await
                {
                    return (job, stats, Err(retry));
                }
            }
            targets.push(Target {
                job,
                source,
                record,
                key,
                sms,
                entry,
            });
        }
        (job, stats, Ok(targets))
    }

    /// Step 5: contacts leave the lists of their removed tags.
    async fn leave_lists(&self, targets: &[Target<'_>], run: &mut SyncRun) {
        for target in targets {
            let Some(key) = &target.key else { continue };
            let subject = describe(Some(key));
            let csat_leave = target
                .entry
                .as_ref()
                .and_then(|e| self.csat_list_to_leave(target.source, e));
            let mut lists = self.mapping.lists_to_leave(target.source, target.record);
            lists.extend(csat_leave);
            for list_id in lists {
                if !run.ok(target.job) {
                    break;
                }
                let before = run.stats.finals.len();
                if let Err(Retry(reason)) = self
                    .leave_list(list_id, key, &subject, &mut run.stats)
                    .await
                {
                    run.fail(target.job, &reason);
                }
                run.reject_since(target.job, before);
            }
            if let (Some(_), Some(entry)) = (csat_leave, &target.entry)
                && run.ok(target.job)
                && let Err(Retry(reason)) = self.csat_placed(entry, &mut run.stats).await
            {
                run.fail(target.job, &reason);
            }
        }
    }

    /// Step 6: claims the events of the written contacts, sends the new ones in batches,
    /// completes the claims of those sent and releases the others.
    async fn send_sync_events<'a>(
        &self,
        targets: &'a [Target<'a>],
        taken: &Batch,
        run: &mut SyncRun,
    ) {
        let mut candidates: Vec<(Claimed<'a>, EventRequest)> = Vec::new();
        let mut carried = Vec::new();
        let mut carried_ids = Vec::new();
        for target in targets {
            if !run.ok(target.job) {
                continue;
            }
            for event in &target.record.events {
                let Some(mut request) = self.event_request(
                    target.source,
                    target.key.as_ref(),
                    target.sms.as_deref(),
                    event,
                ) else {
                    run.stats.events_unmapped += 1;
                    continue;
                };
                self.enrich(target.source, target.entry.as_ref(), event, &mut request);
                if !taken.take(&event.id) {
                    run.stats.events_skipped_duplicate += 1;
                    continue;
                }
                if taken.carried.contains(&event.id) {
                    run.stats.events_skipped_duplicate += 1;
                    carried.push(state::event_key(&event.id));
                    carried_ids.push(&event.id);
                    continue;
                }
                let claimed = Claimed {
                    job: target.job,
                    event_id: &event.id,
                    state_key: state::event_key(&event.id),
                };
                candidates.push((claimed, request));
            }
        }
        // Sent by an earlier attempt that could not mark them: mark them now, never resend.
        for (key, id) in carried.iter().zip(carried_ids) {
            self.complete_sent(key, id, taken).await;
        }
        if candidates.is_empty() {
            return;
        }
        if let Some(why) = taken.too_late_to_send() {
            for (c, _) in &candidates {
                taken.untake(c.event_id);
                run.fail(c.job, &format!("event {} not sent: {why}", c.event_id));
            }
            return;
        }

        let claims: Vec<_> = candidates
            .iter()
            .map(|(c, _)| self.state.claim(&c.state_key, EVENT_DEDUPE_TTL))
            .collect();
        let claims: Vec<Result<Claim, StateError>> = futures::stream::iter(claims)
            .buffered(STATE_CONCURRENCY)
            .collect()
            .await;
        let mut claimed = Vec::new();
        let mut requests = Vec::new();
        for ((c, request), claim) in candidates.into_iter().zip(claims) {
            match claim {
                Ok(Claim::Done) => run.stats.events_skipped_duplicate += 1,
                Ok(Claim::Busy) => {
                    taken.untake(c.event_id);
                    run.fail(
                        c.job,
                        &format!(
                            "event {} is being sent by another worker; checking again later",
                            c.event_id
                        ),
                    );
                }
                Ok(claim) => {
                    if claim == Claim::InFlight {
                        tracing::info!(event_id = %c.event_id, "upsert: event claimed before but not completed; sending it");
                    }
                    claimed.push(c);
                    requests.push(request);
                }
                Err(e) => {
                    taken.untake(c.event_id);
                    run.fail(c.job, &format!("claiming event {}: {e}", c.event_id));
                }
            }
        }

        for (chunk, requests) in claimed
            .chunks(EVENTS_PER_BATCH)
            .zip(requests.chunks(EVENTS_PER_BATCH))
        {
            if let Some(why) = taken.too_late_to_send() {
                self.unsent(chunk, why, taken, run).await;
                continue;
            }
            match self.brevo().send_events(requests).await {
                Ok(refused) => {
                    run.stats.event_batches += 1;
                    let refused: HashMap<usize, BrevoError> = refused.into_iter().collect();
                    let mut sent = Vec::new();
                    let mut dropped = Vec::new();
                    for (i, (c, request)) in chunk.iter().zip(requests).enumerate() {
                        match refused.get(&i) {
                            None => {
                                run.stats.events += 1;
                                sent.push(c);
                            }
                            Some(e) => {
                                run.stats.rejected += 1;
                                tracing::warn!(event_id = %c.event_id, event_name = %request.event_name, error = %e,
                                    "upsert: Brevo refused an event of a batch; not retried");
                                let reason = format!(
                                    "Brevo refused event {} ({}): {e}",
                                    request.event_name, c.event_id
                                );
                                run.reject([c.job], &reason);
                                dropped.push(c);
                            }
                        }
                    }
                    self.complete_claims(&sent, taken).await;
                    self.release_claims(&dropped).await;
                }
                Err(e) if e.is_worth_retrying() => {
                    let reason = format!("sending a batch of {} events: {e}", requests.len());
                    for c in chunk {
                        run.fail(c.job, &reason);
                    }
                    self.release_claims(&chunk.iter().collect::<Vec<_>>()).await;
                }
                Err(e) if falls_back_to_single_events(&e) => {
                    // One bad event (or an account without the batch endpoint) must not cost
                    // the other 99: send them one by one instead.
                    tracing::warn!(events = requests.len(), error = %e,
                        "upsert: Brevo refused an events batch; sending its events one by one");
                    for (c, request) in chunk.iter().zip(requests) {
                        self.send_claimed(c, request, taken, run).await;
                    }
                }
                Err(e) => {
                    run.stats.rejected += requests.len();
                    tracing::warn!(events = requests.len(), error = %e,
                        "upsert: Brevo refused an events batch; not retried");
                    let reason = format!("Brevo refused a batch of {} events: {e}", requests.len());
                    run.reject(chunk.iter().map(|c| c.job), &reason);
                    self.release_claims(&chunk.iter().collect::<Vec<_>>()).await;
                }
            }
        }
    }

    /// One claimed event through `POST /v3/events` (fallback of a refused batch).
    async fn send_claimed(
        &self,
        c: &Claimed<'_>,
        request: &EventRequest,
        batch: &Batch,
        run: &mut SyncRun,
    ) {
        if let Some(why) = batch.too_late_to_send() {
            self.unsent(std::slice::from_ref(c), why, batch, run).await;
            return;
        }
        match self.brevo().send_event(request).await {
            Ok(()) => {
                run.stats.events += 1;
                self.complete_claims(&[c], batch).await;
            }
            Err(e) => {
                self.release_claims(&[c]).await;
                let what = format!("sending {} ({})", request.event_name, c.event_id);
                let before = run.stats.finals.len();
                if let Err(Retry(reason)) = final_or_retry(e, &what, &mut run.stats) {
                    run.fail(c.job, &reason);
                }
                run.reject_since(c.job, before);
            }
        }
    }

    /// Claimed events not sent because the deadline is near: their claims are dropped and their
    /// messages retried.
    async fn unsent(&self, claimed: &[Claimed<'_>], why: &str, batch: &Batch, run: &mut SyncRun) {
        for c in claimed {
            batch.untake(c.event_id);
            run.fail(c.job, &format!("event {} not sent: {why}", c.event_id));
        }
        self.release_claims(&claimed.iter().collect::<Vec<_>>())
            .await;
    }

    /// Marks sent events done (see [`Upserter::complete_sent`]: never fails the message).
    async fn complete_claims(&self, claimed: &[&Claimed<'_>], batch: &Batch) {
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
    async fn release_claims(&self, claimed: &[&Claimed<'_>]) {
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

/// Splits items of the given serialized sizes into consecutive ranges of at most `max_items`
/// items and `max_bytes` bytes (an item larger than `max_bytes` goes alone).
fn chunk_ranges(
    sizes: impl IntoIterator<Item = usize>,
    max_items: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes, mut end) = (0, 0usize, 0);
    for size in sizes {
        if end > start && (end - start >= max_items || bytes.saturating_add(size) > max_bytes) {
            ranges.push(start..end);
            start = end;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        end += 1;
    }
    if end > start {
        ranges.push(start..end);
    }
    ranges
}

/// Every attribute the mapping of a source can write, with the Brevo type to create it with.
fn mapped_attributes(mapping: &SourceMapping) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut add = |name: String, kind: &'static str| {
        if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            out.push((name, kind));
        }
    };
    for rule in &mapping.field_mapping {
        let kind = match rule.transform {
            Transform::Date => "date",
            Transform::Number => "float",
            Transform::Boolean => "boolean",
            _ => "text",
        };
        add(rule.attribute.clone(), kind);
        if rule.transform == Transform::SplitName {
            // Where the mapping puts the last name: LASTNAME next to FIRSTNAME, else `<X>_LAST`.
            let last = if rule.attribute == "FIRSTNAME" {
                "LASTNAME".to_string()
            } else {
                format!("{}_LAST", rule.attribute)
            };
            add(last, "text");
        }
    }
    out
}

/// Whether Brevo refused to create an attribute because it exists already.
fn already_exists(err: &BrevoError) -> bool {
    match err {
        BrevoError::Rejected { code, message, .. } => {
            code == "duplicate_parameter" || message.to_ascii_lowercase().contains("already exist")
        }
        _ => false,
    }
}

/// Whether a refused events batch is worth sending again event by event: a bad item or an
/// unknown route, not a bad key or a missing permission.
fn falls_back_to_single_events(err: &BrevoError) -> bool {
    matches!(err, BrevoError::Rejected { status, .. } if matches!(status, 400 | 404 | 405 | 413 | 422))
}

/// A retryable Brevo error (or a refused key) fails the message for a later retry; a final
/// one is logged and counted.
fn final_or_retry(err: BrevoError, what: &str, stats: &mut Stats) -> Result<(), Retry> {
    if err.is_worth_retrying() {
        return Err(Retry(format!("{what}: {err}")));
    }
    stats.rejected += 1;
    // `what` names the contact masked; Brevo's messages are redacted by the client.
    tracing::warn!(error = %err, "upsert: Brevo refused {what}; not retried");
    stats.finals.push(format!("Brevo refused {what}: {err}"));
    Ok(())
}

/// Fills the fields `person` lacks from what the helpdesk returned; fields the delivery had win.
fn merge_person(person: &mut Person, found: &Person) {
    let fill = |field: &mut Option<String>, from: &Option<String>| {
        if field.is_none() {
            field.clone_from(from);
        }
    };
    fill(&mut person.source_id, &found.source_id);
    fill(&mut person.email, &found.email);
    fill(&mut person.phone, &found.phone);
    fill(&mut person.name, &found.name);
    fill(&mut person.first_name, &found.first_name);
    fill(&mut person.last_name, &found.last_name);
}

/// A contact, for logs: masked email, or the ext_id (a helpdesk id, not personal data).
fn describe(key: Option<&ContactKey>) -> String {
    match key {
        Some(ContactKey::Email(e)) => format!("contact {}", mask(e)),
        Some(ContactKey::ExtId(x)) => format!("contact {x}"),
        None => "phone-only contact".into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The partial batch response telling SQS which messages to deliver again.
pub fn sqs_response(report: &BatchReport) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in &report.failed {
        response.add_failure(id.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers spawn the handler (the local runner's worker): its future must be `Send` for any
    /// ports, which rustc checks here at compile time.
    #[allow(dead_code)]
    fn handle_is_send<B: BrevoApi, S: StateStore, L: PersonLookup>(
        upserter: &Upserter<B, S, L>,
        messages: &[Message],
    ) -> impl Future<Output = BatchReport> + Send {
        upserter.handle(messages)
    }

    #[test]
    fn sqs_records_become_messages_and_failures_become_item_failures() {
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"}},
            {"body": "no id"},
            {"messageId": "m2", "messageAttributes": {"deskbridge_retry": {
                "stringValue": "{\"first\":\"2026-12-04T10:00:00Z\",\"attempts\":7}", "dataType": "String",
                "stringListValues": [], "binaryListValues": []}}}
        ]}))
        .expect("an SQS event");
        let messages = messages_from_sqs(&event);
        let first_failed_at = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .expect("a time")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            messages,
            vec![
                Message {
                    message_id: "m1".into(),
                    body: "{}".into(),
                    receive_count: 3,
                    retry: None,
                },
                Message {
                    message_id: "m2".into(),
                    body: String::new(),
                    receive_count: 1,
                    retry: Some(deskbridge_shared::queue::RetryRecord {
                        first_failed_at,
                        attempts: 7,
                        sent: Vec::new(),
                    }),
                },
            ]
        );
        let report = BatchReport {
            failed: vec!["m2".into()],
            stats: Stats::default(),
        };
        let response = serde_json::to_value(sqs_response(&report)).expect("serialises");
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([{"itemIdentifier": "m2"}])
        );
    }

    #[test]
    fn imports_are_split_by_count_and_by_size() {
        // 25,000 small contacts: 10,000 per import at most.
        assert_eq!(
            chunk_ranges(std::iter::repeat_n(100, 25_000), 10_000, 8_000_000),
            vec![0..10_000, 10_000..20_000, 20_000..25_000]
        );
        // Big rows: cut before the byte limit would pass; an oversized row goes alone.
        assert_eq!(
            chunk_ranges([400, 400, 300, 900, 100], 10, 1000),
            vec![0..2, 2..3, 3..5]
        );
        assert_eq!(
            chunk_ranges([10, 1500, 10], 10, 1000),
            vec![0..1, 1..2, 2..3]
        );
        assert!(chunk_ranges(Vec::new(), 10, 1000).is_empty());
    }

    #[test]
    fn mapped_attributes_take_their_type_from_the_transform() {
        use deskbridge_shared::mapping::FieldRule;
        let mapping = SourceMapping {
            field_mapping: vec![
                FieldRule::new("id", "ZENDESK_ID", Transform::Text),
                FieldRule::new("name", "FIRSTNAME", Transform::SplitName),
                FieldRule::new("agent", "AGENT", Transform::SplitName),
                FieldRule::new("created_at", "SIGNUP_DATE", Transform::Date),
                FieldRule::new("score", "HEALTH", Transform::Number),
                FieldRule::new("vip", "VIP", Transform::Boolean),
                FieldRule::new("tags", "TAGS", Transform::Tags),
                FieldRule::new("other_id", "ZENDESK_ID", Transform::Auto),
            ],
            ..Default::default()
        };
        let got: Vec<(String, &str)> = mapped_attributes(&mapping);
        let want = [
            ("ZENDESK_ID", "text"),
            ("FIRSTNAME", "text"),
            ("LASTNAME", "text"),
            ("AGENT", "text"),
            ("AGENT_LAST", "text"),
            ("SIGNUP_DATE", "date"),
            ("HEALTH", "float"),
            ("VIP", "boolean"),
            ("TAGS", "text"),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(n, k)| (n.to_string(), *k))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn attribute_conflicts_and_batch_refusals_are_told_apart() {
        let rejected = |status: u16, code: &str, message: &str| BrevoError::Rejected {
            status,
            code: code.into(),
            message: message.into(),
        };
        assert!(already_exists(&rejected(400, "duplicate_parameter", "x")));
        assert!(already_exists(&rejected(
            400,
            "invalid_parameter",
            "Attribute name already exists"
        )));
        assert!(!already_exists(&rejected(
            400,
            "invalid_parameter",
            "bad name"
        )));
        assert!(!already_exists(&BrevoError::Transient("503".into())));
        assert!(falls_back_to_single_events(&rejected(
            400,
            "invalid_parameter",
            "x"
        )));
        assert!(!falls_back_to_single_events(&rejected(
            401,
            "unauthorized",
            "x"
        )));
    }

    #[test]
    fn merge_keeps_what_the_delivery_had() {
        let mut person = Person {
            source_id: Some("7".into()),
            name: Some("J. Doe".into()),
            ..Default::default()
        };
        let found = Person {
            source_id: Some("7".into()),
            email: Some("jane@example.com".into()),
            name: Some("Jane Doe".into()),
            ..Default::default()
        };
        merge_person(&mut person, &found);
        assert_eq!(person.email.as_deref(), Some("jane@example.com"));
        assert_eq!(person.name.as_deref(), Some("J. Doe"));
    }
}
