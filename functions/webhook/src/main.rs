//! Lambda entry point of the webhook function: read settings, build clients once, serve.

use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::Registry;
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
    let clients = (
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    );
    // Built again when a secret (credentials or configuration) has a new version.
    let live = aws::Live::start(&sdk, Vars::from_env(), move |vars| {
        let settings = Settings::from_vars(vars)?;
        for line in settings.describe_sources() {
            tracing::info!("{line}");
        }
        let table = settings.require_state_table()?.to_string();
        let upsert_queue_url = settings.require_upsert_queue()?.to_string();
        Ok(Webhook {
            settings,
            helpdesks: Registry::built_in(),
            state: DynamoStateStore::new(clients.0.clone(), table),
            queue: SqsQueue::new(clients.1.clone()),
            upsert_queue_url,
        })
    })
    .await?;
    let (live, metrics) = (&live, &metrics);
    lambda_http::run(service_fn(move |request| async move {
        let webhook = live.get().await;
        let reply = lambda_reply(&webhook, request).await;
        metrics.emit(&reply.metrics(metrics.document()));
        Ok::<_, Error>(to_response(&reply)?)
    }))
    .await
}
