//! Lambda entry point of the sync function. It takes two kinds of events: the EventBridge
//! schedule (start a run for every enabled stream) and SQS batches of page jobs.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deskbridge_shared::config::Vars;
use deskbridge_shared::helpdesk::{attach_budgets, readers_from_settings, shared_budgets};
use deskbridge_shared::metrics::Metrics;
use deskbridge_shared::queue::{self, Redelivery, SqsQueue, messages_from_sqs};
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::{aws, config, infra, telemetry};
use deskbridge_sync::{Syncer, handle_batch};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(true);
    let sdk = aws::sdk_config().await;
    let clients = (
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    );
    // Built again when a secret (credentials or configuration) has a new version.
    let live = aws::Live::start(&sdk, Vars::from_env(), move |vars| {
        let settings = config::Settings::from_vars(vars)?;
        for line in settings.describe_sources() {
            tracing::info!("{line}");
        }
        let readers: Vec<Arc<_>> = readers_from_settings(&settings)
            .into_iter()
            .map(Arc::from)
            .collect();
        let state = DynamoStateStore::new(clients.0.clone(), settings.require_state_table()?);
        // Every invocation, and the look-ups of the upsert functions, spend one budget per
        // helpdesk account.
        attach_budgets(&readers, &shared_budgets(&settings, &state));
        let mut syncer =
            Syncer::from_settings(readers, state, SqsQueue::new(clients.1.clone()), &settings)?;
        syncer.metrics = Metrics::from_env("deskbridge-sync");
        syncer.redelivery = Some(Redelivery::configured(
            Arc::new(SqsQueue::new(clients.1.clone())),
            settings.sync_queue_url.as_deref(),
            settings.sync_dlq_url.as_deref(),
            settings.retry,
        ));
        Ok(syncer)
    })
    .await?;
    let live = &live;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let syncer = live.get().await;
        let span = tracing::info_span!("sync_invocation", request_id = %event.context.request_id);
        handle(&syncer, event.payload).instrument(span).await
    }))
    .await
}

/// One invocation: an SQS batch of page jobs, or the schedule.
async fn handle(
    syncer: &Syncer<DynamoStateStore, SqsQueue>,
    payload: Value,
) -> Result<Value, Error> {
    let now = chrono::Utc::now();
    if payload.get("Records").is_some_and(Value::is_array) {
        let sqs: SqsEvent = serde_json::from_value(payload)?;
        let messages = messages_from_sqs(&sqs);
        let work = handle_batch(syncer, &messages, now);
        // Held while it runs, so that a crash hands the page job back within HOLD_SECONDS.
        let (q, url) = (&syncer.queue, syncer.sync_queue_url.as_str());
        let receipts = queue::receipts_from_sqs(&sqs);
        let failed = queue::while_holding(q, url, &receipts, Duration::ZERO, work).await;
        // A failure is retried after the queue's own visibility timeout, as before.
        let hidden = infra::SYNC_VISIBILITY_SECONDS;
        queue::release_failed(q, url, &receipts, &failed, hidden).await;
        let mut response = SqsBatchResponse::default();
        for id in failed {
            response.add_failure(id);
        }
        Ok(serde_json::to_value(response)?)
    } else {
        // EventBridge schedule: start every enabled stream.
        let reports = syncer.start(None, None, false, now).await?;
        tracing::info!(streams = reports.len(), "scheduled sync started");
        Ok(Value::Null)
    }
}
