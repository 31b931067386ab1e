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

use std::collections::{HashMap, HashSet};
use std::ops::AddAssign;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deskbridge_shared::brevo::{
    BrevoApi, BrevoError, ContactKey, ContactUpsert, EventIdentifiers, EventRequest, UpsertOutcome,
    redact,
};
use deskbridge_shared::identity::mask;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::model::{Job, Person, Record, Source, SupportEvent};
use deskbridge_shared::sources::PersonLookup;
use deskbridge_shared::state::{self, Claim, StateStore};
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

/// How long a sent event is remembered, so a redelivery does not send it again.
pub const EVENT_DEDUPE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Messages of one batch processed at the same time. Brevo's limits are kept by the client's
/// rate governor whatever this is; it only overlaps the latency of independent messages.
pub const CONCURRENCY: usize = 4;

/// The SMS attribute, dropped when Brevo says the number belongs to another contact.
const SMS: &str = "SMS";

/// One queue message, independent of where it came from (Lambda's SQS event, the local runner's
/// polling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub body: String,
    /// SQS `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
}

/// What a batch did, for logs, the local runner and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    }
}

/// The result of [`Upserter::handle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Ids of the messages SQS must deliver again.
    pub failed: Vec<String>,
    pub stats: Stats,
}

/// A failure that a later delivery can get past: the message must be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct Retry(String);

/// What a helpdesk look-up gave, cached per message.
type Found = Option<(Person, Value)>;

/// Writes jobs to Brevo. All dependencies are ports, so Lambda, the local runner and tests
/// inject what they have.
pub struct Upserter<B: BrevoApi, S: StateStore, L: PersonLookup> {
    pub brevo: B,
    pub state: S,
    pub lookup: L,
    pub mapping: Mapping,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    pub fn new(brevo: B, state: S, lookup: L, mapping: Mapping) -> Self {
        Upserter {
            brevo,
            state,
            lookup,
            mapping,
        }
    }

    /// Handles a batch; never fails as a whole.
    pub async fn handle(&self, messages: &[Message]) -> BatchReport {
        self.handle_until(messages, None).await
    }

    /// As [`Upserter::handle`], but gives up on messages still running at `deadline` (they are
    /// reported failed, so SQS redelivers them) and starts none after it. Lambda passes its own
    /// deadline minus a margin, so an invocation answers before it is killed.
    pub async fn handle_until(
        &self,
        messages: &[Message],
        deadline: Option<Instant>,
    ) -> BatchReport {
        // Event ids already taken by a message of this batch: SQS may deliver the same message
        // twice in one batch, and the two copies would otherwise both see the claim in flight.
        let taken = Mutex::new(HashSet::new());
        // The futures are built into a Vec first: a stream `map` closure here would make the
        // returned future's `Send` proof higher-ranked, which rustc cannot do for generic callers.
        let work: Vec<_> = messages
            .iter()
            .map(|message| self.process_before(message, deadline, &taken))
            .collect();
        let results: Vec<(&Message, Stats, Result<(), Retry>)> = futures::stream::iter(work)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;

        let mut report = BatchReport::default();
        for (message, stats, outcome) in results {
            report.stats += stats;
            if let Err(Retry(reason)) = outcome {
                tracing::warn!(message_id = %message.message_id, receive_count = message.receive_count,
                    %reason, "upsert: message will be retried");
                report.failed.push(message.message_id.clone());
            }
        }
        report.stats.messages = messages.len();
        tracing::info!(stats = ?report.stats, failed = report.failed.len(), "upsert: batch done");
        report
    }

    /// One message, unless `deadline` has passed; stopped (and failed) when it passes.
    async fn process_before<'m>(
        &self,
        message: &'m Message,
        deadline: Option<Instant>,
        taken: &Mutex<HashSet<String>>,
    ) -> (&'m Message, Stats, Result<(), Retry>) {
        let late = |what: &str| {
            let reason = format!("{what}: invocation deadline reached");
            (Stats::default(), Err(Retry(reason)))
        };
        let (stats, outcome) = match deadline {
            None => self.process(message, taken).await,
            Some(d) if Instant::now() >= d => late("not started"),
            Some(d) => tokio::time::timeout_at(d, self.process(message, taken))
                .await
                .unwrap_or_else(|_| late("stopped")),
        };
        (message, stats, outcome)
    }

    /// One message, in its own span.
    async fn process(
        &self,
        message: &Message,
        taken: &Mutex<HashSet<String>>,
    ) -> (Stats, Result<(), Retry>) {
        let span = tracing::info_span!("upsert_message",
            message_id = %message.message_id,
            receive_count = message.receive_count,
            job_id = tracing::field::Empty,
            source = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
        );
        let mut stats = Stats::default();
        let job = match serde_json::from_str::<Job>(&message.body) {
            Ok(job) => job,
            Err(e) => {
                // serde's message can quote a value of the body: mask identifiers in it.
                span.in_scope(|| {
                    tracing::error!(reason = %redact(&e.to_string()), body_bytes = message.body.len(),
                        "upsert: message is not a job; dropped, retrying cannot help")
                });
                stats.rejected += 1;
                stats.poison += 1;
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

    /// Every record of a job, in order. (A batch path for sync pages, `/contacts/import` plus
    /// `/events/batch`, would branch here on `job.origin`.)
    async fn process_job(
        &self,
        job: &Job,
        taken: &Mutex<HashSet<String>>,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
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

    /// Fills in a person named only by id from the helpdesk API (once per id and message).
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
        Ok(record)
    }

    /// Contact, list removals, then events of one record.
    async fn process_record(
        &self,
        source: &Source,
        record: &Record,
        taken: &Mutex<HashSet<String>>,
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
        // The SMS the contact ended up with: identifies a phone-only contact's events.
        let sms = self.upsert(contact, &subject, stats).await?;
        if key.is_none() && sms.is_none() {
            // A phone-only contact that could not be written: nothing addresses its events.
            return Ok(());
        }

        if let Some(key) = &key {
            for list_id in self.mapping.lists_to_leave(source, record) {
                match self.brevo.remove_from_list(list_id, key).await {
                    Ok(()) => stats.list_removals += 1,
                    Err(e) => final_or_retry(
                        e,
                        &format!("removing {subject} from list {list_id}"),
                        stats,
                    )?,
                }
            }
        }

        for event in &record.events {
            let Some(request) = self.event_request(source, key.as_ref(), sms.as_deref(), event)
            else {
                stats.events_unmapped += 1;
                continue;
            };
            self.send_once(event, &request, &subject, taken, stats)
                .await?;
        }
        Ok(())
    }

    /// Upserts the contact; on an SMS conflict, once more without SMS. Returns the SMS value
    /// Brevo accepted, if any.
    async fn upsert(
        &self,
        mut contact: ContactUpsert,
        subject: &str,
        stats: &mut Stats,
    ) -> Result<Option<String>, Retry> {
        let mut result = self.brevo.upsert_contact(&contact).await;
        if result == Err(BrevoError::DuplicateSms) {
            stats.sms_dropped += 1;
            contact.attributes.remove(SMS);
            if contact.key().is_none() {
                // The number was the only identifier, and it belongs to someone else.
                stats.rejected += 1;
                tracing::warn!(contact = %subject, "upsert: phone-only contact's SMS belongs to another Brevo contact; skipped");
                return Ok(None);
            }
            tracing::info!(contact = %subject, "upsert: SMS belongs to another Brevo contact; upserting without SMS");
            result = self.brevo.upsert_contact(&contact).await;
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
        taken: &Mutex<HashSet<String>>,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        if !lock(taken).insert(event.id.clone()) {
            stats.events_skipped_duplicate += 1;
            return Ok(());
        }
        let key = state::event_key(&event.id);
        let claim = self
            .state
            .claim(&key, EVENT_DEDUPE_TTL)
            .await
            .map_err(|e| {
                lock(taken).remove(&event.id);
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
        }
        match self.brevo.send_event(request).await {
            Ok(()) => {
                stats.events += 1;
                self.state
                    .complete(&key, EVENT_DEDUPE_TTL)
                    .await
                    .map_err(|e| Retry(format!("completing event {}: {e}", event.id)))
            }
            Err(err) => {
                if let Err(e) = self.state.release(&key).await {
                    // The claim stays in flight; a redelivery may still send the event.
                    tracing::warn!(event_id = %event.id, error = %e, "upsert: could not release the event claim");
                }
                let what = format!(
                    "sending {} ({}) for {subject}",
                    request.event_name, event.id
                );
                final_or_retry(err, &what, stats)
            }
        }
    }
}

/// A retryable Brevo error fails the message; a final one is logged and counted.
fn final_or_retry(err: BrevoError, what: &str, stats: &mut Stats) -> Result<(), Retry> {
    if err.is_retryable() {
        return Err(Retry(format!("{what}: {err}")));
    }
    stats.rejected += 1;
    // `what` names the contact masked; Brevo's messages are redacted by the client.
    tracing::warn!(error = %err, "upsert: Brevo refused {what}; not retried");
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

/// The messages of a Lambda SQS event. A record without a message id cannot be reported as
/// failed (an empty id would fail the whole batch), so it is logged and left out.
pub fn messages_from_sqs(event: &SqsEvent) -> Vec<Message> {
    event
        .records
        .iter()
        .filter_map(|record| {
            let Some(message_id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
                tracing::error!(
                    "upsert: SQS record without a messageId; it cannot be reported and is skipped"
                );
                return None;
            };
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            Some(Message {
                message_id,
                body: record.body.clone().unwrap_or_default(),
                receive_count,
            })
        })
        .collect()
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
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"}},
            {"body": "no id"},
            {"messageId": "m2"}
        ]}))
        .expect("an SQS event");
        let messages = messages_from_sqs(&event);
        assert_eq!(
            messages,
            vec![
                Message {
                    message_id: "m1".into(),
                    body: "{}".into(),
                    receive_count: 3
                },
                Message {
                    message_id: "m2".into(),
                    body: String::new(),
                    receive_count: 1
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
