//! The webhook function: `POST /webhooks/{source}` from a helpdesk, and
//! `POST /webhooks/generic/{name}` from a generic source of the configuration file, and
//! `POST /webhooks/{source}/{account}` from a further account of a helpdesk.
//!
//! It verifies the request over the raw body bytes, parses it into canonical records, dedupes on
//! the vendor's delivery id, and answers 2xx only once the job is stored in SQS. The same
//! [`handle`] serves Lambda (through [`lambda_handler`]) and the local runner.
//!
//! Every [`Reply`] says what became of the delivery ([`Outcome`]); [`Reply::metrics`] turns that
//! into the invocation's metric document, which the caller emits where its process sends
//! metrics (stdout in Lambda). The handler itself writes nothing.
//!
//! `POST /webhooks/brevo` takes Brevo's marketing webhooks (the two-way path back into the
//! helpdesks), in the `brevo` module; `POST /actions/{helpdesk}/tickets` takes a Brevo
//! automation's request for a ticket, in the `actions` module.

mod actions;
mod brevo;

pub use actions::action_segment;

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::{self, AuthError, Parsed, Registry};
use deskbridge_shared::metrics::Document;
use deskbridge_shared::model::{Job, Origin, Source};
use deskbridge_shared::queue::Queue;
use deskbridge_shared::state::{self, Claim, StateStore};
use deskbridge_shared::twoway;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

/// Largest body accepted (the SQS message limit leaves room for the job envelope).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a finished delivery id is remembered (vendors retry for hours, not days).
pub const DEDUPE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an unfinished claim blocks nothing: after this a retry takes over.
pub const CLAIM_TTL: Duration = Duration::from_secs(300);

/// What the webhook function needs.
pub struct Webhook<S, Q> {
    pub settings: Settings,
    /// The helpdesks served ([`Registry::built_in`] unless some are added).
    pub helpdesks: Registry,
    pub state: S,
    pub queue: Q,
    pub upsert_queue_url: String,
}

/// Why a delivery was refused, as a small fixed set (a metric dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Signature or token missing, wrong or stale (401).
    Auth,
    /// Signed, but not a body deskbridge can read (400).
    Parse,
    /// Larger than [`MAX_BODY_BYTES`] (413).
    TooLarge,
    /// A source that does not exist or is not configured, or a path or method that is not the
    /// webhook route (404, 405).
    UnknownSource,
    /// The state store or the queue failed (503, or 500); the helpdesk retries.
    Unavailable,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Auth => "auth",
            Rejection::Parse => "parse",
            Rejection::TooLarge => "too_large",
            Rejection::UnknownSource => "unknown_source",
            Rejection::Unavailable => "unavailable",
        }
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queued for Brevo.
    Accepted,
    /// Seen before: answered 200, not queued again.
    Deduplicated,
    /// A topic deskbridge does not act on: answered 200, nothing queued.
    Ignored,
    Rejected(Rejection),
}

/// An HTTP answer: status and a small JSON body, with what became of the delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub outcome: Outcome,
    /// The source the delivery was for, once known to be one deskbridge serves.
    pub source: Option<Source>,
    /// Brevo events left out because deskbridge's own writes caused them.
    pub echoes: usize,
}

impl Reply {
    fn new(status: StatusCode, body: Value, outcome: Outcome) -> Self {
        Reply {
            status,
            body,
            outcome,
            source: None,
            echoes: 0,
        }
    }

    fn error(status: StatusCode, message: impl Into<String>, why: Rejection) -> Self {
        Reply::new(
            status,
            json!({ "error": message.into() }),
            Outcome::Rejected(why),
        )
    }

    /// The metric document of this delivery: one count (`DeliveriesAccepted`,
    /// `DeliveriesDeduplicated`, `DeliveriesIgnored` or `DeliveriesRejected`) with the `Source`
    /// dimension (`unknown` for a source deskbridge does not serve, so a scan of random paths
    /// cannot create metrics), and for a rejection the `Reason` dimension too; Brevo events
    /// ignored as echoes of deskbridge's own writes count as `BrevoEchoesIgnored`. `doc` is a
    /// document of the caller's function ([`Metrics::document`](deskbridge_shared::metrics::Metrics::document)).
    pub fn metrics(&self, doc: Document) -> Document {
        let source = self
            .source
            .as_ref()
            .map_or_else(|| "unknown".to_string(), Source::to_string);
        let mut doc = doc.dimension("Source", &source);
        let name = match self.outcome {
            Outcome::Accepted => "DeliveriesAccepted",
            Outcome::Deduplicated => "DeliveriesDeduplicated",
            Outcome::Ignored => "DeliveriesIgnored",
            Outcome::Rejected(why) => {
                doc = doc
                    .dimension("Reason", why.as_str())
                    .rollup(&["Function", "Source"])
                    .rollup(&["Function", "Reason"]);
                "DeliveriesRejected"
            }
        };
        doc = doc.rollup(&["Function"]);
        doc.count(name, 1);
        if self.echoes > 0 {
            doc.count("BrevoEchoesIgnored", self.echoes as u64);
        }
        doc
    }
}

/// The source named by a webhook path (with or without a stage prefix): `zendesk` for
/// `/webhooks/zendesk`, `generic:cinnox` for `/webhooks/generic/cinnox`, `gorgias:eu-store` for
/// a further store's `/webhooks/gorgias/eu-store`. `None` for any other shape, including a
/// name outside `[a-z0-9_-]`.
pub fn source_segment(path: &str) -> Option<Cow<'_, str>> {
    let trimmed = path.trim_end_matches('/');
    let (_, rest) = trimmed.rsplit_once("/webhooks/")?;
    match rest.split_once('/') {
        None => (!rest.is_empty() && !rest.contains(':')).then_some(Cow::Borrowed(rest)),
        Some(("generic", name)) if helpdesk::generic::valid_name(name) => {
            Some(Cow::Owned(format!("generic:{name}")))
        }
        Some((vendor, account)) => {
            let account = Source::account(&vendor.parse().ok()?, account)?;
            Some(Cow::Owned(account.to_string()))
        }
    }
}

impl<S: StateStore, Q: Queue> Webhook<S, Q> {
    /// Handles one request to `/webhooks/{source_name}` (`brevo` for Brevo's webhooks).
    pub async fn handle(
        &self,
        source_name: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        if source_name == twoway::BREVO {
            return self.handle_brevo(headers, body, now, correlation_id).await;
        }
        let Some(helpdesk) = self
            .helpdesks
            .source(source_name)
            .and_then(|source| self.helpdesks.get(&source))
        else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                format!("unknown source `{source_name}`"),
                Rejection::UnknownSource,
            );
        };
        let source = helpdesk.source();
        if !helpdesk.webhook_enabled(&self.settings) {
            let mut reply = Reply::error(
                StatusCode::NOT_FOUND,
                format!("source `{source}` is not configured"),
                Rejection::UnknownSource,
            );
            // Only the listed helpdesks' names become a metric dimension; any other name (a
            // generic source that is not configured) stays `unknown`.
            let listed = !matches!(source, Source::Generic(_) | Source::Account(_));
            reply.source = listed.then_some(source);
            return reply;
        }
        let mut reply = self
            .handle_source(&source, headers, body, now, correlation_id)
            .await;
        reply.source = Some(source);
        reply
    }

    /// [`Webhook::handle`] for a configured source.
    async fn handle_source(
        &self,
        source: &Source,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        let source = source.clone();
        if body.len() > MAX_BODY_BYTES {
            return Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body is larger than 256 KiB",
                Rejection::TooLarge,
            );
        }
        if let Err(e) = self
            .helpdesks
            .verify_webhook(&self.settings, &source, headers, body, now)
        {
            warn!(%source, reason = %e, "webhook refused");
            return match e {
                AuthError::NotConfigured => Reply::error(
                    StatusCode::NOT_FOUND,
                    format!("source `{source}` is not configured"),
                    Rejection::UnknownSource,
                ),
                _ => Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "signature or token is missing, wrong or stale",
                    Rejection::Auth,
                ),
            };
        }
        let parsed = self
            .helpdesks
            .parse_webhook(&self.settings, &source, headers, body, now);
        let delivery = match parsed {
            Ok(Parsed::Accepted(d)) => d,
            Ok(Parsed::Ignored { topic }) => {
                info!(%source, %topic, "webhook ignored: not an event deskbridge acts on");
                return Reply::new(
                    StatusCode::OK,
                    json!({ "status": "ignored", "topic": topic }),
                    Outcome::Ignored,
                );
            }
            Err(e) => {
                warn!(%source, reason = %e, "webhook body rejected");
                return Reply::error(StatusCode::BAD_REQUEST, e.to_string(), Rejection::Parse);
            }
        };

        let key = state::delivery_key(&source, &delivery.delivery_id);
        let job_id = format!("{source}:{}", delivery.delivery_id);
        let records = delivery.records.len();
        let topic = delivery.topic;
        let job = || {
            let job = Job {
                id: job_id.clone(),
                source: source.clone(),
                origin: Origin::Webhook,
                received_at: now,
                correlation_id,
                records: delivery.records,
            };
            // The job holds about what the body held: one allocation instead of a doubling series.
            let mut text = Vec::with_capacity(body.len() + 1024);
            serde_json::to_writer(&mut text, &job)
                .map_err(|e| e.to_string())
                .and_then(|()| String::from_utf8(text).map_err(|e| e.to_string()))
        };
        match self.queue_once(&source, &key, job).await {
            Ok(Queued::Sent) => {}
            Ok(Queued::Duplicate) => {
                info!(%source, delivery = %delivery.delivery_id, "duplicate delivery");
                return Reply::new(
                    StatusCode::OK,
                    json!({ "status": "duplicate" }),
                    Outcome::Deduplicated,
                );
            }
            Err(reply) => return reply,
        }
        info!(%source, %topic, job = %job_id, records, "webhook queued");
        Reply::new(
            StatusCode::OK,
            json!({ "status": "queued", "job": job_id }),
            Outcome::Accepted,
        )
    }

    /// Queues a delivery once: claims its dedupe `key`, sends the body `build` makes to the
    /// upsert queue, then marks the delivery done. A delivery already done is
    /// [`Queued::Duplicate`]; a state store or queue that fails is the 503 (or 500) to answer.
    pub(crate) async fn queue_once(
        &self,
        source: &Source,
        key: &str,
        build: impl FnOnce() -> Result<String, String>,
    ) -> Result<Queued, Reply> {
        match self.state.claim(key, CLAIM_TTL).await {
            Ok(Claim::Done) => return Ok(Queued::Duplicate),
            // Abandoned: an earlier attempt never confirmed; queue again, the upsert side dedupes.
            // Busy: the same delivery is being queued by another request right now; queuing it again
            // is safe (events are deduplicated downstream) and loses nothing if that one fails.
            Ok(Claim::New | Claim::Abandoned | Claim::Busy) => {}
            Err(e) => {
                warn!(%source, reason = %e, "state store unavailable");
                return Err(Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "state store unavailable, retry later",
                    Rejection::Unavailable,
                ));
            }
        }
        let body = build().map_err(|e| {
            Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e, Rejection::Unavailable)
        })?;
        if let Err(e) = self.queue.send(&self.upsert_queue_url, &body).await {
            warn!(%source, reason = %e, "queue unavailable");
            if let Err(e) = self.state.release(key).await {
                warn!(%source, reason = %e, "could not release the delivery claim; it expires by itself");
            }
            return Err(Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue unavailable, retry later",
                Rejection::Unavailable,
            ));
        }
        if let Err(e) = self.state.complete(key, Some(DEDUPE_TTL)).await {
            // The job is queued; a retry of this delivery would be queued again and deduped downstream.
            warn!(%source, reason = %e, "could not mark the delivery done");
        }
        Ok(Queued::Sent)
    }
}

/// What [`Webhook::queue_once`] did with a delivery.
pub(crate) enum Queued {
    /// Sent to the upsert queue.
    Sent,
    /// Done before: not sent again.
    Duplicate,
}

/// Adapter for API Gateway HTTP API events through lambda_http.
pub async fn lambda_handler<S: StateStore, Q: Queue>(
    webhook: &Webhook<S, Q>,
    request: lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error> {
    Ok(to_response(&lambda_reply(webhook, request).await)?)
}

/// The [`Reply`] to an API Gateway request, in the invocation's span (`webhook` with the
/// request id, which is also the job's correlation id, and the source). The Lambda entry point
/// emits its metrics, then turns it into the response ([`to_response`]).
pub async fn lambda_reply<S: StateStore, Q: Queue>(
    webhook: &Webhook<S, Q>,
    request: lambda_http::Request,
) -> Reply {
    use lambda_http::RequestExt;
    let correlation_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|s| !s.is_empty());
    let path = request.uri().path().to_string();
    let segment = source_segment(&path);
    let span = tracing::info_span!(
        "webhook",
        request_id = correlation_id.as_deref().unwrap_or_default(),
        // The raw segment is logged only when it names a source deskbridge knows.
        source = segment
            .as_deref()
            .filter(|s| *s == twoway::BREVO || webhook.helpdesks.source(s).is_some())
            .unwrap_or("unknown"),
    );
    if request.method() != http::Method::POST {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST",
            Rejection::UnknownSource,
        );
    }
    if let Some(helpdesk) = action_segment(&path) {
        return webhook
            .handle_action(
                helpdesk,
                request.headers(),
                request.body().as_ref(),
                Utc::now(),
                correlation_id,
            )
            .instrument(span)
            .await;
    }
    match segment {
        None => Reply::error(
            StatusCode::NOT_FOUND,
            "expected /webhooks/{source}, /webhooks/generic/{name} or /webhooks/{source}/{account}",
            Rejection::UnknownSource,
        ),
        Some(name) => {
            // lambda_http has already decoded a base64 body: these are the bytes that were signed.
            webhook
                .handle(
                    &name,
                    request.headers(),
                    request.body().as_ref(),
                    Utc::now(),
                    correlation_id,
                )
                .instrument(span)
                .await
        }
    }
}

/// Turns a [`Reply`] into an HTTP response.
pub fn to_response(reply: &Reply) -> Result<lambda_http::Response<lambda_http::Body>, http::Error> {
    lambda_http::Response::builder()
        .status(reply.status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_http::Body::Text(reply.body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics_of(reply: &Reply) -> Value {
        reply.metrics(Document::new("fn-webhook")).to_json(0)
    }

    #[test]
    fn an_accepted_delivery_counts_once_per_source_and_in_the_function_total() {
        let mut reply = Reply::new(StatusCode::OK, json!({}), Outcome::Accepted);
        reply.source = Some(Source::Zendesk);
        let doc = metrics_of(&reply);
        assert_eq!(doc["DeliveriesAccepted"], 1.0);
        assert_eq!(doc["Source"], "zendesk");
        assert_eq!(doc["Function"], "fn-webhook");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Source"], ["Function"]])
        );
    }

    #[test]
    fn a_rejection_carries_its_reason_and_an_unserved_source_stays_unknown() {
        let reply = Reply::error(StatusCode::NOT_FOUND, "nope", Rejection::UnknownSource);
        let doc = metrics_of(&reply);
        assert_eq!(doc["DeliveriesRejected"], 1.0);
        assert_eq!(doc["Source"], "unknown");
        assert_eq!(doc["Reason"], "unknown_source");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([
                ["Function", "Source", "Reason"],
                ["Function", "Source"],
                ["Function", "Reason"],
                ["Function"]
            ])
        );
    }

    #[test]
    fn source_segment_reads_the_last_path_part() {
        let name = |p| source_segment(p).map(Cow::into_owned);
        assert_eq!(name("/webhooks/zendesk").as_deref(), Some("zendesk"));
        assert_eq!(
            name("/prod/webhooks/intercom/").as_deref(),
            Some("intercom")
        );
        assert_eq!(name("/webhooks/"), None);
        assert_eq!(name("/webhooks/a/b"), None);
        assert_eq!(name("/other"), None);
        // A further account of a helpdesk: `/webhooks/<helpdesk>/<account>`.
        assert_eq!(
            name("/prod/webhooks/gorgias/eu-store").as_deref(),
            Some("gorgias:eu-store")
        );
        assert_eq!(
            name("/webhooks/zendesk/brand2").as_deref(),
            Some("zendesk:brand2")
        );
        assert_eq!(
            name("/webhooks/intercom/eu-workspace/").as_deref(),
            Some("intercom:eu-workspace")
        );
        assert_eq!(name("/webhooks/gorgias/EU"), None);
        assert_eq!(name("/webhooks/gorgias/eu/x"), None);
    }

    #[test]
    fn source_segment_accepts_exactly_generic_slash_name() {
        let name = |p| source_segment(p).map(Cow::into_owned);
        assert_eq!(
            name("/webhooks/generic/cinnox").as_deref(),
            Some("generic:cinnox")
        );
        assert_eq!(
            name("/prod/webhooks/generic/help_scout-2/").as_deref(),
            Some("generic:help_scout-2")
        );
        for refused in [
            "/webhooks/generic/CINNOX",
            "/webhooks/generic/cin nox",
            "/webhooks/generic/cinnox/extra",
            "/webhooks/generic:cinnox",
            "/webhooks/other/cinnox",
            "/webhooks/gorgias/Eu Store",
        ] {
            assert_eq!(name(refused), None, "{refused}");
        }
        // `/webhooks/generic` alone names no source deskbridge knows: the handler answers 404.
        assert_eq!(name("/webhooks/generic/").as_deref(), Some("generic"));
    }
}
