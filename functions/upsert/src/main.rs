//! Lambda entry point of the upsert function: reads settings once, builds the clients once,
//! then hands every SQS batch to [`Upserter`] and emits the batch's metrics. Everything else
//! lives in `lib.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deskbridge_shared::brevo::{self, DryRunOutput, UsageFigures};
use deskbridge_shared::helpdesk::{self, HelpdeskLookup};
use deskbridge_shared::metrics::{Document, Metrics};
use deskbridge_shared::queue::{self, Queue, Redelivery, SqsQueue};
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::twoway::HelpdeskWriteBack;
use deskbridge_shared::{aws, config, infra, telemetry};
use deskbridge_upsert::{BatchReport, Upserter, messages_from_sqs, sqs_response};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::Instrument;

/// Time kept back from the invocation deadline to report the batch (messages still running by
/// then are reported failed and redelivered).
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// What the upsert function builds from its settings.
struct Worker<U> {
    upserter: U,
    governor: Option<Arc<brevo::RateGovernor>>,
    /// The queue this function consumes (the upsert or the backfill lane), where the messages
    /// of an invocation are held while it runs.
    queue: Arc<dyn Queue>,
    queue_url: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(true);
    let metrics = Metrics::from_env("deskbridge-upsert");
    let sdk = aws::sdk_config().await;
    let clients = (
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    );
    // Built again when a secret (credentials or configuration) has a new version.
    let live = aws::Live::start(&sdk, config::Vars::from_env(), move |vars| {
        let settings = config::Settings::from_vars(vars)?;
        // Without BREVO_API_KEY: dry-run, lines masked because stdout is CloudWatch here.
        let brevo = brevo::from_settings_with(&settings.brevo, DryRunOutput::Masked)?;
        let governor = brevo.governor().cloned();
        let state = DynamoStateStore::new(clients.0.clone(), settings.require_state_table()?);
        // Look-ups spend the same budget per helpdesk account as the sync's readers.
        let lookup = HelpdeskLookup::new(&settings)
            .with_budgets(helpdesk::shared_budgets(&settings, &state));
        for line in settings.describe_sources() {
            tracing::info!("{line}");
        }
        // Brevo's unsubscribes, spam complaints and hard bounces, written back (`/webhooks/brevo`).
        let write_back = HelpdeskWriteBack::new(&settings);
        let helpdesks: Vec<String> = write_back
            .helpdesks()
            .iter()
            .map(|s| s.to_string())
            .collect();
        if helpdesks.is_empty() {
            tracing::info!("Brevo write-backs: no helpdesk API is configured to write to");
        } else {
            tracing::info!(helpdesks = %helpdesks.join(","), "Brevo write-backs go to these helpdesks");
        }
        let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(clients.1.clone()));
        let queue_url = settings.upsert_queue_url.clone();
        let upserter = Upserter::new(brevo, state, lookup, settings.mapping.clone())
            .with_send_reserve(deskbridge_upsert::send_reserve_for(settings.brevo.timeout))
            .with_default_lists(settings.brevo.uses_default_lists())
            .with_write_back(Arc::new(write_back))
            .with_redelivery(Redelivery::configured(
                queue.clone(),
                settings.upsert_queue_url.as_deref(),
                settings.upsert_dlq_url.as_deref(),
                settings.retry,
            ));
        Ok(Worker {
            upserter,
            governor,
            queue,
            queue_url,
        })
    })
    .await?;
    let (live, metrics) = (&live, &metrics);

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let started = Instant::now();
        let worker = live.get().await;
        let remaining = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + remaining.saturating_sub(DEADLINE_MARGIN);
        let span = tracing::info_span!("upsert_invocation", request_id = %event.context.request_id);
        let messages = messages_from_sqs(&event.payload);
        let work = worker
            .upserter
            .handle_until(&messages, Some(deadline))
            .instrument(span);
        // Held while they are handled, so that a crash hands them back within HOLD_SECONDS.
        let report = match worker.queue_url.as_deref() {
            Some(url) => {
                let receipts = queue::receipts_from_sqs(&event.payload);
                let q = worker.queue.as_ref();
                let report = queue::while_holding(q, url, &receipts, Duration::ZERO, work).await;
                // A failure is retried after the queue's own visibility timeout, as before.
                let hidden = infra::UPSERT_VISIBILITY_SECONDS;
                queue::release_failed(q, url, &receipts, &report.failed, hidden).await;
                report
            }
            None => work.await,
        };
        let usage = worker
            .governor
            .as_ref()
            .map(|g| g.usage().take())
            .unwrap_or_default();
        metrics.emit(&batch_metrics(
            metrics.document(),
            &report,
            usage,
            started.elapsed(),
        ));
        Ok::<SqsBatchResponse, Error>(sqs_response(&report))
    }))
    .await
}

/// The metric document of one batch: Brevo's figures (`BrevoCalls`, `BrevoThrottled`,
/// `BrevoErrors`, `BrevoWaitTime`), the batch's time (`UpsertBatchDuration`) and what it did.
fn batch_metrics(
    mut doc: Document,
    report: &BatchReport,
    usage: UsageFigures,
    elapsed: Duration,
) -> Document {
    let stats = &report.stats;
    doc.count("BrevoCalls", usage.calls)
        .count("BrevoThrottled", usage.throttled)
        .count("BrevoErrors", usage.errors)
        .millis("BrevoWaitTime", usage.waited)
        .millis("UpsertBatchDuration", elapsed)
        .count("UpsertMessages", stats.messages as u64)
        .count("UpsertMessagesRetried", report.failed.len() as u64)
        .count("UpsertMessagesDelayed", stats.retried_later as u64)
        .count("UpsertMessagesHeld", stats.held as u64)
        .count("UpsertDeadLettered", stats.dead_lettered as u64)
        .count("BrevoAuthFailures", stats.brevo_auth_failures as u64)
        .count(
            "UpsertContacts",
            (stats.contacts + stats.contacts_imported) as u64,
        )
        .count("UpsertEvents", stats.events as u64)
        .count("UpsertRejected", stats.rejected as u64)
        .count("HelpdeskWriteBacks", stats.write_backs as u64)
        .count(
            "HelpdeskWriteBacksNotFound",
            stats.write_backs_not_found as u64,
        )
        .count(
            "DeletionsFromHelpdesks",
            (stats.deletions_ignored
                + stats.contacts_unlinked
                + stats.contacts_deleted
                + stats.deletions_without_contact) as u64,
        )
        .count("ContactsUnlinked", stats.contacts_unlinked as u64)
        .count("ContactsDeleted", stats.contacts_deleted as u64)
        .count("HelpdeskDeletions", stats.helpdesk_deletions as u64);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_document_carries_brevo_figures_and_the_batch_time() {
        let mut report = BatchReport::default();
        report.stats.messages = 3;
        report.stats.contacts = 2;
        report.stats.events = 1;
        report.failed.push("m-3".into());
        let usage = UsageFigures {
            calls: 4,
            throttled: 1,
            errors: 0,
            waited: Duration::from_millis(250),
        };
        let doc = batch_metrics(
            Document::new("fn-upsert"),
            &report,
            usage,
            Duration::from_millis(42),
        );
        let json = doc.to_json(0);
        assert_eq!(json["Function"], "fn-upsert");
        assert_eq!(json["BrevoCalls"], 4.0);
        assert_eq!(json["BrevoThrottled"], 1.0);
        assert_eq!(json["BrevoWaitTime"], 250.0);
        assert_eq!(json["UpsertBatchDuration"], 42.0);
        assert_eq!(json["UpsertMessages"], 3.0);
        assert_eq!(json["UpsertMessagesRetried"], 1.0);
        assert_eq!(json["UpsertContacts"], 2.0);
        assert_eq!(
            json["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Function"
        );
    }
}
