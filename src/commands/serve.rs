//! `deskbridge serve`: the webhook handler over HTTP on loopback and a worker that polls the
//! upsert queue and calls the upsert handler with Lambda's batch semantics (failed messages are
//! left for redelivery, after a growing delay; SQS moves them to the DLQ after the redrive limit).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use deskbridge_shared::brevo;
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::{CachePolicy, HelpdeskLookup, Registry, attach_budgets};
use deskbridge_shared::metrics::Metrics;
use deskbridge_shared::queue::{
    HOLD_SECONDS, Queue, Receipt, Redelivery, SqsQueue, renewal_interval, while_holding,
};
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::twoway::HelpdeskWriteBack;
use deskbridge_sync::Syncer;
use deskbridge_upsert::{Message, Upserter};
use deskbridge_webhook::Webhook;
use tokio::sync::watch;
use tracing::{Instrument, info, warn};

/// The webhook handler as the local runner wires it.
pub type LocalWebhook = Webhook<DynamoStateStore, SqsQueue>;

/// What the webhook route needs: the handler and where its metrics go.
struct WebhookState {
    webhook: LocalWebhook,
    metrics: Metrics,
}

/// Serves both webhook routes: the source is read from the path by the same rule Lambda uses.
async fn webhook_route(
    State(state): State<Arc<WebhookState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(source) = deskbridge_webhook::source_segment(uri.path()) else {
        return (StatusCode::NOT_FOUND, NOT_A_WEBHOOK).into_response();
    };
    let correlation_id = uuid_like();
    let span = tracing::info_span!("webhook", request_id = %correlation_id);
    let reply = state
        .webhook
        .handle(
            &source,
            &headers,
            &body,
            chrono::Utc::now(),
            Some(correlation_id),
        )
        .instrument(span)
        .await;
    answer(&state, &reply)
}

/// Serves `/actions/{helpdesk}/tickets` (a Brevo automation's webhook step) as Lambda does.
async fn action_route(
    State(state): State<Arc<WebhookState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(helpdesk) = deskbridge_webhook::action_segment(uri.path()) else {
        return (StatusCode::NOT_FOUND, NOT_A_WEBHOOK).into_response();
    };
    let correlation_id = uuid_like();
    let span = tracing::info_span!("action", request_id = %correlation_id);
    let reply = state
        .webhook
        .handle_action(
            helpdesk,
            &headers,
            &body,
            chrono::Utc::now(),
            Some(correlation_id),
        )
        .instrument(span)
        .await;
    answer(&state, &reply)
}

/// The reply as the HTTP answer, with its metrics emitted as the Lambda adapter does.
fn answer(state: &WebhookState, reply: &deskbridge_webhook::Reply) -> Response {
    state.metrics.emit(&reply.metrics(state.metrics.document()));
    (
        reply.status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        reply.body.to_string(),
    )
        .into_response()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "local-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

const NOT_A_WEBHOOK: &str = "expected POST /webhooks/{source}, /webhooks/generic/{name}, \
                             /webhooks/{source}/{account} or /actions/{helpdesk}/tickets";

/// The HTTP routes of the local runner.
pub fn router(webhook: LocalWebhook, metrics: Metrics) -> Router {
    let state = Arc::new(WebhookState { webhook, metrics });
    Router::new()
        .route("/webhooks/{source}", post(webhook_route))
        .route("/webhooks/generic/{name}", post(webhook_route))
        .route("/webhooks/{source}/{account}", post(webhook_route))
        .route("/actions/{helpdesk}/tickets", post(action_route))
        .fallback(|| async { (StatusCode::NOT_FOUND, NOT_A_WEBHOOK) })
        // The handler answers 413 itself; let bodies a little over the limit reach it.
        .layer(axum::extract::DefaultBodyLimit::max(
            deskbridge_webhook::MAX_BODY_BYTES + 1024,
        ))
        .with_state(state)
}

/// Delay before a failed message is tried again: 2, 4, 8 … seconds, at most a minute.
pub fn retry_delay(receive_count: u32) -> i32 {
    let exp = receive_count.clamp(1, 6);
    (1i32 << exp).min(60)
}

/// Polls `queue_url` and hands each batch to `handler` until `stop` turns true.
pub async fn worker<U>(queue: SqsQueue, queue_url: String, handler: U, stop: watch::Receiver<bool>)
where
    U: BatchHandler,
{
    loop {
        if *stop.borrow() {
            return;
        }
        // The poll is never abandoned half-way: a dropped long poll can still take messages
        // off the queue, which would then stay invisible until their visibility timeout.
        let received = queue
            .receive_hidden(&queue_url, 10, 1, Some(HOLD_SECONDS))
            .await;
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                warn!(reason = %e, queue = %queue_url, "queue unavailable; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let batch: Vec<Message> = messages.iter().map(Message::from).collect();
        let receipts: Vec<Receipt> = messages
            .iter()
            .map(|m| Receipt {
                message_id: m.message_id.clone(),
                receipt_handle: m.receipt_handle.clone(),
            })
            .collect();
        // Received hidden for HOLD_SECONDS: a runner that dies hands them back within that
        // time, not after the queue's visibility timeout.
        let failed = while_holding(
            &queue,
            &queue_url,
            &receipts,
            renewal_interval(),
            handler.handle_batch(&batch),
        )
        .await;
        for m in &messages {
            let outcome = if failed.contains(&m.message_id) {
                queue
                    .set_visibility(&queue_url, &m.receipt_handle, retry_delay(m.receive_count))
                    .await
            } else {
                queue.delete(&queue_url, &m.receipt_handle).await
            };
            if let Err(e) = outcome {
                warn!(reason = %e, "could not settle a message; it will be redelivered");
            }
        }
    }
}

/// What a queue worker hands its batches to: the upsert handler or the sync handler.
pub trait BatchHandler: Send + Sync {
    /// Handles a batch; returns the ids of the messages to retry.
    fn handle_batch(&self, messages: &[Message]) -> impl Future<Output = Vec<String>> + Send;
}

impl<B, S, L> BatchHandler for Upserter<B, S, L>
where
    B: brevo::BrevoApi,
    S: deskbridge_shared::state::StateStore,
    L: deskbridge_shared::helpdesk::PersonLookup,
{
    async fn handle_batch(&self, messages: &[Message]) -> Vec<String> {
        self.handle(messages).await.failed
    }
}

impl<S, Q> BatchHandler for Syncer<S, Q>
where
    S: deskbridge_shared::state::streams::StreamStore,
    Q: Queue,
{
    async fn handle_batch(&self, messages: &[Message]) -> Vec<String> {
        deskbridge_sync::handle_batch(self, messages, chrono::Utc::now()).await
    }
}

/// Runs the local runner until `shutdown` completes.
pub async fn run(
    sdk: &aws_config::SdkConfig,
    settings: Settings,
    port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    serve_on(listener, sdk, settings, shutdown).await
}

/// The upsert handler as the local runner wires it.
pub type LocalUpserter = Upserter<brevo::AnyBrevo, DynamoStateStore, HelpdeskLookup>;
/// The sync handler as the local runner wires it.
pub type LocalSyncer = Syncer<DynamoStateStore, SqsQueue>;

/// The webhook handler of the local runner (needs `STATE_TABLE` and `UPSERT_QUEUE_URL`).
pub fn local_webhook(
    sdk: &aws_config::SdkConfig,
    settings: Settings,
) -> anyhow::Result<LocalWebhook> {
    local_webhook_for(sdk, settings, Registry::built_in())
}

/// [`local_webhook`] serving the helpdesks of `helpdesks`.
pub fn local_webhook_for(
    sdk: &aws_config::SdkConfig,
    settings: Settings,
    helpdesks: Registry,
) -> anyhow::Result<LocalWebhook> {
    let table = settings.require_state_table()?.to_string();
    let upsert_queue_url = settings.require_upsert_queue()?.to_string();
    Ok(Webhook {
        settings,
        helpdesks,
        state: DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), table),
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk)),
        upsert_queue_url,
    })
}

/// The upsert handler of the local runner: the Brevo client of the settings (dry-run without a
/// key), the state table and the helpdesk look-ups. A fresh one starts with empty caches, like a
/// new Lambda instance.
pub fn local_upserter(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
) -> anyhow::Result<LocalUpserter> {
    local_upserter_for(sdk, settings, &Registry::built_in())
}

/// [`local_upserter`] looking people up through the helpdesks of `helpdesks`.
pub fn local_upserter_for(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    helpdesks: &Registry,
) -> anyhow::Result<LocalUpserter> {
    let table = settings.require_state_table()?.to_string();
    let state = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), table);
    // Look-ups spend the same budget per helpdesk account as the sync's readers.
    let lookup = HelpdeskLookup::from_registry(settings, helpdesks, CachePolicy::default())
        .with_budgets(helpdesks.shared_budgets(settings, &state));
    let upserter = Upserter::new(
        brevo::from_settings(&settings.brevo)?,
        state,
        lookup,
        settings.mapping.clone(),
    )
    .with_default_lists(settings.brevo.uses_default_lists())
    .with_write_back(Arc::new(HelpdeskWriteBack::new(settings)));
    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk)));
    Ok(upserter.with_redelivery(Redelivery::configured(
        queue,
        settings.upsert_queue_url.as_deref(),
        settings.upsert_dlq_url.as_deref(),
        settings.retry,
    )))
}

/// The upsert handler of the backfill lane and its queue, when `BACKFILL_QUEUE_URL` is set: the
/// upsert handler wired as the deployed backfill instances are, with the backfill queue as its
/// own queue (failing messages go back to it, not to the webhook jobs' queue).
pub fn local_backfill_upserter_for(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    helpdesks: &Registry,
) -> anyhow::Result<Option<(String, LocalUpserter)>> {
    let Some(url) = settings.backfill_queue_url.clone() else {
        return Ok(None);
    };
    let mut lane = settings.clone();
    lane.upsert_queue_url = Some(url.clone());
    lane.brevo.requests_per_second = lane_rates(settings).1;
    Ok(Some((url, local_upserter_for(sdk, &lane, helpdesks)?)))
}

/// `BREVO_REQUESTS_PER_SECOND` split between the webhook lane and the backfill lane of one local
/// runner (the backfill's share is half, rounded down, at least 1), so that together they stay
/// within it. Deployed, each function's instances have their own rate in the template.
pub fn lane_rates(settings: &Settings) -> (u32, u32) {
    let total = settings.brevo.requests_per_second;
    if settings.backfill_queue_url.is_none() {
        return (total, 0);
    }
    let backfill = (total / 2).max(1);
    (total.saturating_sub(backfill).max(1), backfill)
}

/// The sync handler of the local runner and its queue, when `SYNC_QUEUE_URL` is set.
pub fn local_syncer(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
) -> anyhow::Result<Option<(String, LocalSyncer)>> {
    local_syncer_for(sdk, settings, &Registry::built_in())
}

/// [`local_syncer`] with the readers of the helpdesks of `helpdesks`.
pub fn local_syncer_for(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    helpdesks: &Registry,
) -> anyhow::Result<Option<(String, LocalSyncer)>> {
    let Some(sync_url) = settings.sync_queue_url.clone() else {
        return Ok(None);
    };
    let table = settings.require_state_table()?.to_string();
    let state = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), table);
    let readers: Vec<Arc<_>> = helpdesks
        .readers(settings)
        .into_iter()
        .map(Arc::from)
        .collect();
    attach_budgets(&readers, &helpdesks.shared_budgets(settings, &state));
    let mut syncer = Syncer::from_settings(
        readers,
        state,
        SqsQueue::new(aws_sdk_sqs::Client::new(sdk)),
        settings,
    )?;
    syncer.metrics = Metrics::from_env("deskbridge-sync");
    syncer.redelivery = Some(Redelivery::configured(
        Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk))),
        Some(&sync_url),
        settings.sync_dlq_url.as_deref(),
        settings.retry,
    ));
    Ok(Some((sync_url, syncer)))
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    sdk: &aws_config::SdkConfig,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, sdk, settings, Registry::built_in(), shutdown).await
}

/// [`serve_on`] for the helpdesks of `helpdesks` (the built-in ones and any added).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    sdk: &aws_config::SdkConfig,
    settings: Settings,
    helpdesks: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let upsert_queue_url = settings.require_upsert_queue()?.to_string();
    for line in settings.describe_sources() {
        info!("{line}");
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut webhook_lane = settings.clone();
    webhook_lane.brevo.requests_per_second = lane_rates(&settings).0;
    let upserter = local_upserter_for(sdk, &webhook_lane, &helpdesks)?;
    let backfill = local_backfill_upserter_for(sdk, &settings, &helpdesks)?;
    let syncer = local_syncer_for(sdk, &settings, &helpdesks)?;
    let names: Vec<String> = helpdesks.listed().map(|h| h.source().to_string()).collect();
    let webhook = local_webhook_for(sdk, settings, helpdesks)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = vec![tokio::spawn(worker(
        SqsQueue::new(sqs.clone()),
        upsert_queue_url,
        upserter,
        stop_rx.clone(),
    ))];
    if let Some((backfill_url, backfill)) = backfill {
        info!("backfill lane on: records read by the sync drain here, beside the webhook jobs");
        workers.push(tokio::spawn(worker(
            SqsQueue::new(sqs.clone()),
            backfill_url,
            backfill,
            stop_rx.clone(),
        )));
    }
    if let Some((sync_url, syncer)) = syncer {
        info!(
            streams = syncer.streams(None, None).len(),
            "sync worker on: `deskbridge sync <source>` runs here"
        );
        workers.push(tokio::spawn(worker(
            SqsQueue::new(sqs),
            sync_url,
            syncer,
            stop_rx,
        )));
    }
    let addr = listener.local_addr()?;
    info!(
        "deskbridge serve: POST http://{addr}/webhooks/{{{}}} or /webhooks/generic/{{name}}; \
         Brevo automations: /actions/{{zendesk|intercom|gorgias}}/tickets",
        names.join("|")
    );
    // Metric lines go to the log at debug level here (`DESKBRIDGE_METRICS` changes that).
    let webhook_metrics = Metrics::from_env("deskbridge-webhook");
    axum::serve(listener, router(webhook, webhook_metrics))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    for w in workers {
        w.await.context("worker task")?;
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), 2);
        assert_eq!(retry_delay(2), 4);
        assert_eq!(retry_delay(5), 32);
        assert_eq!(retry_delay(50), 60);
    }
}
