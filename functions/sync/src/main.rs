//! Lambda entry point of the sync function. It takes two kinds of events: the EventBridge
//! schedule (start a run for every enabled stream) and SQS batches of page jobs.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deskbridge_shared::queue::SqsQueue;
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::sync::readers::readers_from_settings;
use deskbridge_shared::{aws, config, telemetry};
use deskbridge_sync::{Syncer, handle_batch};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(true);
    let sdk = aws::sdk_config().await;
    let settings = config::Settings::from_vars(&aws::load_vars(&sdk).await?)?;
    for line in settings.describe_sources() {
        tracing::info!("{line}");
    }
    let readers: Vec<Arc<_>> = readers_from_settings(&settings)
        .into_iter()
        .map(Arc::from)
        .collect();
    let syncer = Syncer::from_settings(
        readers,
        DynamoStateStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.require_state_table()?,
        ),
        SqsQueue::new(aws_sdk_sqs::Client::new(&sdk)),
        &settings,
    )?;
    let syncer = &syncer;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let now = chrono::Utc::now();
        let is_sqs = event.payload.get("Records").is_some_and(Value::is_array);
        if is_sqs {
            let sqs: SqsEvent = serde_json::from_value(event.payload)?;
            let messages: Vec<(String, String)> = sqs
                .records
                .iter()
                .filter_map(|r| Some((r.message_id.clone()?, r.body.clone().unwrap_or_default())))
                .collect();
            let mut response = SqsBatchResponse::default();
            for id in handle_batch(syncer, &messages, now).await {
                response.add_failure(id);
            }
            Ok::<Value, Error>(serde_json::to_value(response)?)
        } else {
            // EventBridge schedule: start every enabled stream.
            let reports = syncer.start(None, None, false, now).await?;
            tracing::info!(streams = reports.len(), "scheduled sync started");
            Ok(Value::Null)
        }
    }))
    .await
}
