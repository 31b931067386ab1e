//! The webhook function: `POST /webhooks/{source}` from a helpdesk, and
//! `POST /webhooks/generic/{name}` from a generic source of the configuration file.
//!
//! It verifies the request over the raw body bytes, parses it into canonical records, dedupes on
//! the vendor's delivery id, and answers 2xx only once the job is stored in SQS. The same
//! [`handle`] serves Lambda (through [`lambda_handler`]) and the local runner.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deskbridge_shared::config::Settings;
use deskbridge_shared::model::{Job, Origin, Source};
use deskbridge_shared::queue::Queue;
use deskbridge_shared::sources::{self, AuthError, Parsed};
use deskbridge_shared::state::{self, Claim, StateStore};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tracing::{info, warn};

/// Largest body accepted (the SQS message limit leaves room for the job envelope).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a finished delivery id is remembered (vendors retry for hours, not days).
pub const DEDUPE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an unfinished claim blocks nothing: after this a retry takes over.
pub const CLAIM_TTL: Duration = Duration::from_secs(300);

/// What the webhook function needs.
pub struct Webhook<S, Q> {
    pub settings: Settings,
    pub state: S,
    pub queue: Q,
    pub upsert_queue_url: String,
}

/// An HTTP answer: status and a small JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    fn new(status: StatusCode, body: Value) -> Self {
        Reply { status, body }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Reply::new(status, json!({ "error": message.into() }))
    }
}

/// The source named by a webhook path (with or without a stage prefix): `zendesk` for
/// `/webhooks/zendesk`, `generic:cinnox` for `/webhooks/generic/cinnox`. `None` for any other
/// shape, including a generic name outside `[a-z0-9_-]`.
pub fn source_segment(path: &str) -> Option<Cow<'_, str>> {
    let trimmed = path.trim_end_matches('/');
    let (_, rest) = trimmed.rsplit_once("/webhooks/")?;
    match rest.split_once('/') {
        None => (!rest.is_empty() && !rest.contains(':')).then_some(Cow::Borrowed(rest)),
        Some(("generic", name)) if sources::generic::valid_name(name) => {
            Some(Cow::Owned(format!("generic:{name}")))
        }
        Some(_) => None,
    }
}

impl<S: StateStore, Q: Queue> Webhook<S, Q> {
    /// Handles one request to `/webhooks/{source_name}`.
    pub async fn handle(
        &self,
        source_name: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        let Ok(source) = source_name.parse::<Source>() else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                format!("unknown source `{source_name}`"),
            );
        };
        if !self.settings.webhook_enabled(&source) {
            return Reply::error(
                StatusCode::NOT_FOUND,
                format!("source `{source}` is not configured"),
            );
        }
        if body.len() > MAX_BODY_BYTES {
            return Reply::error(StatusCode::PAYLOAD_TOO_LARGE, "body is larger than 256 KiB");
        }
        if let Err(e) = sources::verify_webhook(&self.settings, &source, headers, body, now) {
            warn!(%source, reason = %e, "webhook refused");
            return match e {
                AuthError::NotConfigured => Reply::error(
                    StatusCode::NOT_FOUND,
                    format!("source `{source}` is not configured"),
                ),
                _ => Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "signature or token is missing, wrong or stale",
                ),
            };
        }
        let delivery = match sources::parse_webhook(&self.settings, &source, headers, body, now) {
            Ok(Parsed::Accepted(d)) => d,
            Ok(Parsed::Ignored { topic }) => {
                info!(%source, %topic, "webhook ignored: not an event deskbridge acts on");
                return Reply::new(
                    StatusCode::OK,
                    json!({ "status": "ignored", "topic": topic }),
                );
            }
            Err(e) => {
                warn!(%source, reason = %e, "webhook body rejected");
                return Reply::error(StatusCode::BAD_REQUEST, e.to_string());
            }
        };

        let key = state::delivery_key(&source, &delivery.delivery_id);
        match self.state.claim(&key, CLAIM_TTL).await {
            Ok(Claim::Done) => {
                info!(%source, delivery = %delivery.delivery_id, "duplicate delivery");
                return Reply::new(StatusCode::OK, json!({ "status": "duplicate" }));
            }
            // InFlight: an earlier attempt never confirmed; queue again, the upsert side dedupes.
            Ok(Claim::New | Claim::InFlight) => {}
            Err(e) => {
                warn!(%source, reason = %e, "state store unavailable");
                return Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "state store unavailable, retry later",
                );
            }
        }

        let job = Job {
            id: format!("{source}:{}", delivery.delivery_id),
            source: source.clone(),
            origin: Origin::Webhook,
            received_at: now,
            correlation_id,
            records: delivery.records,
        };
        let body = match serde_json::to_string(&job) {
            Ok(b) => b,
            Err(e) => return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        if let Err(e) = self.queue.send(&self.upsert_queue_url, &body).await {
            warn!(%source, reason = %e, "queue unavailable");
            if let Err(e) = self.state.release(&key).await {
                warn!(%source, reason = %e, "could not release the delivery claim; it expires by itself");
            }
            return Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue unavailable, retry later",
            );
        }
        if let Err(e) = self.state.complete(&key, DEDUPE_TTL).await {
            // The job is queued; a retry of this delivery would be queued again and deduped downstream.
            warn!(%source, reason = %e, "could not mark the delivery done");
        }
        info!(%source, topic = %delivery.topic, job = %job.id, records = job.records.len(), "webhook queued");
        Reply::new(StatusCode::OK, json!({ "status": "queued", "job": job.id }))
    }
}

/// Adapter for API Gateway HTTP API events through lambda_http.
pub async fn lambda_handler<S: StateStore, Q: Queue>(
    webhook: &Webhook<S, Q>,
    request: lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error> {
    use lambda_http::RequestExt;
    let correlation_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|s| !s.is_empty());
    let reply = if request.method() != http::Method::POST {
        Reply::error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
    } else {
        let path = request.uri().path().to_string();
        match source_segment(&path) {
            None => Reply::error(
                StatusCode::NOT_FOUND,
                "expected /webhooks/{source} or /webhooks/generic/{name}",
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
                    .await
            }
        }
    };
    Ok(to_response(&reply)?)
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
        ] {
            assert_eq!(name(refused), None, "{refused}");
        }
        // `/webhooks/generic` alone names no source deskbridge knows: the handler answers 404.
        assert_eq!(name("/webhooks/generic/").as_deref(), Some("generic"));
    }
}
