//! Brevo write-backs: the unsubscribes, spam complaints, hard bounces and (when a helpdesk's
//! `on_contact_deleted` is `delete`) contact deletions the webhook function queued from
//! `/webhooks/brevo`, and the tickets Brevo automations asked for at
//! `/actions/<helpdesk>/tickets` ([`WriteBackJob`]), carried out in the helpdesks through the
//! [`WriteBackApi`] port.
//!
//! A ticket is opened once: its claim in the state table keeps two messages of it apart and
//! marks it opened, and the helpdesk is asked for a ticket with the request's `external_id`
//! before the create, so a retry after a crash between the create and the mark finds the
//! ticket instead of opening another. A ticket no helpdesk here
//! can open (no API credentials, or `actions` switches it off) is dead-lettered with the reason.
//!
//! - A helpdesk outage or rate limit retries the message later (not before the helpdesk's
//!   `Retry-After`), never drops it. The retry repeats the helpdesks that were already written,
//!   which changes nothing there (a tag added twice, a field set to the value it has).
//! - A person the helpdesk does not know is logged (masked) and counted: nothing to write.
//! - A refusal (bad credentials, an attribute Intercom does not have) is final: the message
//!   goes to the dead-letter queue with the reason, for `deskbridge replay` after a fix.
//!
//! While the outage gate holds a batch because Brevo is down, its write-backs wait with it.

use std::time::Duration;

use deskbridge_shared::brevo::BrevoApi;
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::identity::mask;
use deskbridge_shared::queue::Message;
use deskbridge_shared::state::{CLAIM_LEASE, Claim, StateStore};
use deskbridge_shared::twoway::{TicketOpened, TicketRequest, WriteBackApi, WriteBackJob, Written};
use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::stats::{Retry, Stats};
use crate::upserter::{CONCURRENCY, Upserter};

/// How long an opened ticket's mark is kept (the helpdesk's `external_id` outlives it).
const TICKET_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a message waits while another message opens the same ticket.
const BUSY_WAIT: Duration = Duration::from_secs(30);

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// The write-back messages of a batch, side by side, at most [`CONCURRENCY`] at a time.
    pub(crate) async fn write_back_all<'m>(
        &self,
        jobs: Vec<(&'m Message, WriteBackJob)>,
        deadline: Option<Instant>,
    ) -> Vec<(&'m Message, Stats, Result<(), Retry>)> {
        let work: Vec<_> = jobs
            .into_iter()
            .map(|(message, job)| self.write_back_before(message, job, deadline))
            .collect();
        futures::stream::iter(work)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// One write-back message, unless `deadline` has passed; stopped (and retried) when it
    /// passes.
    async fn write_back_before<'m>(
        &self,
        message: &'m Message,
        job: WriteBackJob,
        deadline: Option<Instant>,
    ) -> (&'m Message, Stats, Result<(), Retry>) {
        let span = tracing::info_span!("upsert_message",
            message_id = %message.message_id,
            receive_count = message.receive_count,
            job_id = %job.id,
            source = "brevo",
            correlation_id = job.correlation_id.as_deref().unwrap_or_default(),
        );
        let mut stats = Stats::default();
        let late = |what: &str| Err(Retry::new(format!("{what}: invocation deadline reached")));
        let outcome = {
            let work = self.write_back(&job, &mut stats).instrument(span);
            match deadline {
                None => work.await,
                Some(d) if Instant::now() >= d => late("not started"),
                Some(d) => tokio::time::timeout_at(d, work)
                    .await
                    .unwrap_or_else(|_| late("stopped")),
            }
        };
        (message, stats, outcome)
    }

    /// Every write-back of a job, in every helpdesk configured for it.
    async fn write_back(&self, job: &WriteBackJob, stats: &mut Stats) -> Result<(), Retry> {
        let Some(api) = self.write_back.as_ref() else {
            stats.write_backs_skipped += job.write_backs.len();
            for ticket in &job.tickets {
                cannot_open(ticket, stats);
            }
            tracing::warn!(
                write_backs = job.write_backs.len(),
                "upsert: Brevo write-backs received but no helpdesk is set up to write them to"
            );
            return Ok(());
        };
        // The longest wait a rate-limited helpdesk asked for; set once anything must be retried.
        let mut retry: Option<(String, Option<Duration>)> = None;
        for item in &job.write_backs {
            let person = mask(&item.email);
            let outcomes = api.apply(item).await;
            if outcomes.is_empty() {
                stats.write_backs_skipped += 1;
                tracing::info!(event = %item.event, %person,
                    "upsert: no helpdesk is configured for this Brevo event; nothing written");
            }
            for outcome in outcomes {
                let helpdesk = outcome.helpdesk;
                match outcome.result {
                    Ok(Written::Updated(updated)) => {
                        stats.write_backs += updated;
                        tracing::info!(%helpdesk, event = %item.event, %person, updated,
                            "upsert: Brevo event written back");
                    }
                    Ok(Written::Deleted(deleted)) => {
                        stats.helpdesk_deletions += deleted;
                        tracing::info!(%helpdesk, event = %item.event, %person, deleted,
                            "upsert: Brevo contact deletion passed on; the helpdesk deleted the person");
                    }
                    Ok(Written::NotFound) => {
                        stats.write_backs_not_found += 1;
                        tracing::info!(%helpdesk, event = %item.event, %person,
                            "upsert: nobody with this email in the helpdesk; nothing to write");
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(%helpdesk, event = %item.event, %person, error = %e,
                            "upsert: write-back failed; the message is tried again later");
                        let wait = e.retry_after();
                        let reason = format!("write-back of {} to {helpdesk}: {e}", item.event);
                        retry = Some(match retry {
                            Some((first, before)) => (first, before.max(wait)),
                            None => (reason, wait),
                        });
                    }
                    Err(e) => {
                        stats.rejected += 1;
                        tracing::warn!(%helpdesk, event = %item.event, %person, error = %e,
                            "upsert: the helpdesk refused the write-back; not retried");
                        stats.finals.push(format!(
                            "{helpdesk} refused the write-back of {} for {person}: {e}",
                            item.event
                        ));
                    }
                }
            }
        }
        for ticket in &job.tickets {
            if let Some((reason, wait)) = self.open_ticket(api.as_ref(), ticket, stats).await {
                retry = Some(match retry {
                    Some((first, before)) => (first, before.max(wait)),
                    None => (reason, wait),
                });
            }
        }
        match retry {
            Some((reason, wait)) => Err(Retry::new(reason).not_before(wait)),
            None => Ok(()),
        }
    }
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Opens one ticket unless it was opened before; the reason and wait to retry the message
    /// with, when it must be. The ticket's claim (`ticket#<external_id>`) keeps two messages of
    /// the same ticket from listing and creating side by side: the second waits, then finds it.
    async fn open_ticket(
        &self,
        api: &dyn WriteBackApi,
        ticket: &TicketRequest,
        stats: &mut Stats,
    ) -> Option<(String, Option<Duration>)> {
        let person = mask(&ticket.email);
        let helpdesk = &ticket.helpdesk;
        let external_id = &ticket.external_id;
        let key = format!("ticket#{helpdesk}#{external_id}");
        match self.state.claim(&key, CLAIM_LEASE).await {
            Ok(Claim::Done) => {
                tracing::info!(%helpdesk, %external_id, %person,
                    "upsert: the automation's ticket was opened before; not opened again");
                return None;
            }
            Ok(Claim::Busy) => {
                let reason =
                    format!("ticket {external_id} in {helpdesk}: being opened by another message");
                return Some((reason, Some(BUSY_WAIT)));
            }
            Ok(Claim::New | Claim::Abandoned) => {}
            Err(e) => return Some((format!("ticket {external_id} in {helpdesk}: {e}"), None)),
        }
        let retry = match api.open_ticket(ticket).await {
            None => {
                cannot_open(ticket, stats);
                None
            }
            Some(Ok(opened)) => {
                let (id, created) = match opened {
                    TicketOpened::Created(id) => (id, true),
                    TicketOpened::Existing(id) => (id, false),
                };
                if created {
                    stats.write_backs += 1;
                    tracing::info!(%helpdesk, ticket = %id, %external_id, %person,
                        "upsert: ticket opened for a Brevo automation");
                } else {
                    tracing::info!(%helpdesk, ticket = %id, %external_id, %person,
                        "upsert: the automation's ticket was opened before; not opened again");
                }
                if let Err(e) = self.state.complete(&key, Some(TICKET_MEMORY)).await {
                    // The helpdesk's external_id still stops a second ticket.
                    tracing::warn!(%external_id, error = %e, "upsert: could not mark the ticket opened");
                }
                return None;
            }
            Some(Err(e)) if e.is_retryable() => {
                tracing::warn!(%helpdesk, %external_id, %person, error = %e,
                    "upsert: ticket not opened; the message is tried again later");
                Some((
                    format!("ticket {external_id} in {helpdesk}: {e}"),
                    e.retry_after(),
                ))
            }
            Some(Err(e)) => {
                stats.rejected += 1;
                tracing::warn!(%helpdesk, %external_id, %person, error = %e,
                    "upsert: the helpdesk refused the ticket; not retried");
                stats.finals.push(format!(
                    "{helpdesk} refused ticket {external_id} for {person}: {e}"
                ));
                None
            }
        };
        if let Err(e) = self.state.release(&key).await {
            tracing::warn!(%external_id, error = %e, "upsert: could not release the ticket's claim; it expires by itself");
        }
        retry
    }
}

/// A ticket no helpdesk here can open: final, with the reason, so that `deskbridge replay`
/// can open it once the helpdesk's API is set up.
fn cannot_open(ticket: &TicketRequest, stats: &mut Stats) {
    let helpdesk = &ticket.helpdesk;
    stats.rejected += 1;
    tracing::warn!(%helpdesk, external_id = %ticket.external_id,
        "upsert: a Brevo automation asked for a ticket that no helpdesk here can open");
    let intercom_type = if *helpdesk == deskbridge_shared::model::Source::Intercom {
        ", or actions.intercom has no ticket_type_id"
    } else {
        ""
    };
    stats.finals.push(format!(
        "ticket {} for {}: {helpdesk} cannot open tickets here (its API credentials are not \
         set, or actions.{helpdesk}.enabled is false{intercom_type})",
        ticket.external_id,
        mask(&ticket.email)
    ));
}
