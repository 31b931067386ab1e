//! Lambda entry point of the webhook function: read settings, build clients once, serve.

use deskbridge_shared::config::Settings;
use deskbridge_shared::metrics::Metrics;
use deskbridge_shared::queue::SqsQueue;
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::{aws, telemetry};
use deskbridge_webhook::{Webhook, lambda_reply, to_response};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(true);
    let metrics = Metrics::from_env("deskbridge-webhook");
    let sdk = aws::sdk_config().await;
    let settings = Settings::from_vars(&aws::load_vars(&sdk).await?)?;
    for line in settings.describe_sources() {
        tracing::info!("{line}");
    }
    let table = settings.require_state_table()?.to_string();
    let upsert_queue_url = settings.require_upsert_queue()?.to_string();
    let webhook = Webhook {
        settings,
        state: DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk)),
        upsert_queue_url,
    };
    let (webhook, metrics) = (&webhook, &metrics);
    lambda_http::run(service_fn(move |request| async move {
        let reply = lambda_reply(webhook, request).await;
        metrics.emit(&reply.metrics(metrics.document()));
        Ok::<_, Error>(to_response(&reply)?)
    }))
    .await
}
