//! Lambda entry point of the upsert function: reads settings once, builds the clients once,
//! then hands every SQS batch to [`Upserter`]. Everything else lives in `lib.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deskbridge_shared::brevo::{self, DryRunOutput};
use deskbridge_shared::queue::SqsQueue;
use deskbridge_shared::sources::HelpdeskLookup;
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::{aws, config, telemetry};
use deskbridge_upsert::{Upserter, messages_from_sqs, sqs_response};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::Instrument;

/// Time kept back from the invocation deadline to report the batch (messages still running by
/// then are reported failed and redelivered).
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(true);
    let sdk = aws::sdk_config().await;
    let vars = aws::load_vars(&sdk).await?;
    let settings = config::Settings::from_vars(&vars)?;
    // Without BREVO_API_KEY: dry-run, lines masked because stdout is CloudWatch here.
    let brevo = brevo::from_settings_with(&settings.brevo, DryRunOutput::Masked)?;
    let state = DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        settings.require_state_table()?,
    );
    let lookup = HelpdeskLookup::new(&settings);
    for line in settings.describe_sources() {
        tracing::info!("{line}");
    }
    let mut upserter = Upserter::new(brevo, state, lookup, settings.mapping.clone());
    match &settings.upsert_dlq_url {
        Some(url) => {
            let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk));
            upserter = upserter.with_dead_letters(Arc::new(queue), url.clone());
        }
        None => tracing::warn!(
            "UPSERT_DLQ_URL is not set: messages that fail for good are logged and dropped"
        ),
    }
    let upserter = &upserter;

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let remaining = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + remaining.saturating_sub(DEADLINE_MARGIN);
        let span = tracing::info_span!("upsert_invocation", request_id = %event.context.request_id);
        let messages = messages_from_sqs(&event.payload);
        let report = upserter
            .handle_until(&messages, Some(deadline))
            .instrument(span)
            .await;
        Ok::<SqsBatchResponse, Error>(sqs_response(&report))
    }))
    .await
}
