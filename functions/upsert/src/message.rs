//! SQS glue: a batch of messages in, a [`BatchReport`] out. Parses each body, holds the batch
//! while Brevo is down (the outage gate of [`crate::health`]), runs webhook jobs one by one
//! ([`crate::execute`]), Brevo write-backs into the helpdesks ([`crate::write_back`]) and sync
//! jobs together ([`crate::import`]) before the invocation's deadline, then settles every
//! message: done, back on the queue with a delay and its retry record (carrying events sent but
//! not marked), or on the dead-letter queue with its reasons.

use std::collections::HashSet;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use deskbridge_shared::brevo::{BrevoApi, redact};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::model::{Job, Origin};
use deskbridge_shared::queue::{Message, Settled};
use deskbridge_shared::state::StateStore;
use deskbridge_shared::twoway::WriteBackJob;
use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::claims::Batch;
use crate::health::Pass;
use crate::import::SyncRun;
use crate::stats::{Retry, Stats};
use crate::upserter::{CONCURRENCY, Upserter, lock};

/// The result of [`Upserter::handle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Ids of the messages SQS must deliver again: those that could not be sent back to the
    /// queue with a delay (or every transiently failing one, without a [`Redelivery`]).
    pub failed: Vec<String>,
    pub stats: Stats,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
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
            let retry = Retry::new(reason.clone());
            for message in held {
                report.stats.held += 1;
                let sent = message
                    .retry
                    .as_ref()
                    .map(|r| r.sent.clone())
                    .unwrap_or_default();
                self.retry_later(message, &retry, auth, sent, &mut report)
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
        let mut write_backs: Vec<(&Message, WriteBackJob)> = Vec::new();
        for message in messages {
            match serde_json::from_str::<Job>(&message.body) {
                Ok(job) if job.origin == Origin::Sync => sync.push((message, job)),
                Err(e) => match WriteBackJob::from_body(&message.body) {
                    Some(job) => write_backs.push((message, job)),
                    None => single.push((message, Err(e))),
                },
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
        let (mut results, sync_run, written) = futures::join!(
            self.process_all(single, deadline, &taken),
            self.sync_before(&sync, deadline, &taken),
            self.write_back_all(write_backs, deadline)
        );
        results.extend(written);

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
        for (((message, _), retry), reasons) in sync.iter().zip(sync_failed).zip(sync_rejected) {
            match retry {
                Some(retry) => retries.push((*message, retry)),
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
                    Retry::new("events sent to Brevo but not marked sent yet"),
                ));
            }
        }
        for (message, reasons) in finals {
            if let Err(retry) = self.dead_letter(message, &reasons, &mut report.stats).await {
                retries.push((message, retry));
            }
        }
        for (message, retry) in retries {
            let sent = taken.unmarked_for(message);
            self.retry_later(message, &retry, auth, sent, &mut report)
                .await;
        }
        report.stats.finals.clear();
        report.stats.messages = all.len();
        tracing::info!(stats = %report.stats, failed = report.failed.len(), "upsert: batch done");
        report
    }

    /// Settles a message that failed transiently: back on the queue with a delay (or, past the
    /// retry horizon, on the dead-letter queue); only when the queue cannot take it is it left
    /// for SQS to redeliver.
    pub(crate) async fn retry_later(
        &self,
        message: &Message,
        retry: &Retry,
        pause: bool,
        sent: Vec<String>,
        report: &mut BatchReport,
    ) {
        let reason = &retry.reason;
        let settled = match &self.redelivery {
            Some(r) => {
                r.retry(message, reason, pause, retry.not_before, sent)
                    .await
            }
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
    pub(crate) async fn dead_letter(
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
            Err(e) => Err(Retry::new(format!(
                "could not dead-letter a message that failed for good ({reason}): {e}"
            ))),
        }
    }

    /// The per-record path: messages side by side, at most [`CONCURRENCY`] at a time.
    pub(crate) async fn process_all<'m>(
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
    pub(crate) async fn process_before<'m>(
        &self,
        message: &'m Message,
        parsed: Result<Job, serde_json::Error>,
        deadline: Option<Instant>,
        taken: &Batch,
    ) -> (&'m Message, Stats, Result<(), Retry>) {
        let late = |what: &str| {
            let reason = format!("{what}: invocation deadline reached");
            (Stats::default(), Err(Retry::new(reason)))
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
    pub(crate) async fn process(
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
    use deskbridge_shared::queue::messages_from_sqs;

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
}
