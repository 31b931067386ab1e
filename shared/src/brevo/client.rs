//! The Brevo v3 HTTP client.
//!
//! Every call waits for the shared [`RateGovernor`], feeds Brevo's `x-sib-ratelimit-*` headers back
//! into it, and is retried here, inside the client, so every user of [`BrevoApi`] (the upsert
//! function, the sync function, the CLI) gets the same behaviour:
//! - 429: wait what Brevo asked (`x-sib-ratelimit-reset`, else `Retry-After`, else 1 s; the pause
//!   applies to every caller through the governor), then retry;
//! - 5xx, 408, 425, timeouts and connection failures: retry with exponential backoff and jitter
//!   (200 ms doubling up to 3.2 s);
//! - at most [`RetryPolicy::max_attempts`] attempts and never waiting past
//!   [`RetryPolicy::budget`] from the first attempt, so one call cannot eat a Lambda's timeout;
//!   after that the last error is returned (the upsert handler then lets SQS redeliver);
//! - any other 4xx is returned at once ([`BrevoError::Rejected`], or [`BrevoError::DuplicateSms`]
//!   for the SMS conflict, which the caller resolves by upserting again without `SMS`).
//!
//! Every request is counted in the governor's [`super::BrevoUsage`] (calls, 429s, errors) and
//! logged as one `brevo call` line (method, path, status, time; no body).
//!
//! Nothing here logs the API key, request bodies, or identifiers in clear: Brevo's error messages
//! go through [`redact`] before they are stored in an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

mod contacts;
mod listing;
mod webhooks;

pub use webhooks::{WebhookInfo, WebhookSpec};

use super::governor::{RateGovernor, WouldExceedDeadline};
use super::redact::redact;
use super::wire::{batch_errors, import_body, path_segment};
use super::{
    AttributeInfo, BrevoApi, BrevoError, ContactFacts, ContactKey, ContactUpsert, EventRequest,
    ListInfo, UpsertOutcome,
};

/// Whole-request timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP/TLS connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the client retries retryable failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: usize,
    /// First backoff delay for transient failures (doubled each time, plus up to 100 % jitter).
    pub min_delay: Duration,
    /// Largest backoff delay before jitter.
    pub max_delay: Duration,
    /// No wait (backoff, rate-limit pause) may end later than this after the first attempt.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(3200),
            budget: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("BREVO_API_KEY contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey,
    #[error("building the HTTP client failed: {0}")]
    Http(String),
}

/// Which of Brevo's rate buckets an endpoint spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    /// `/v3/contacts*` and `/v3/events*`: governed (10 RPS and 36,000 RPH).
    ContactsEvents,
    /// Everything else (100 RPH on the General tier): only `GET /v3/account` here, used by
    /// `deskbridge check`; its headers describe another bucket, so they are not fed back.
    Other,
}

/// A successful (2xx) answer.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Brevo's error body (`errorModel` / `contactErrorModel`).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    metadata: Option<ErrorMetadata>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorMetadata {
    #[serde(default)]
    duplicate_identifiers: Vec<String>,
}

/// Client for Brevo's REST API v3. Cheap to clone (the HTTP pool and the governor are shared).
#[derive(Debug, Clone)]
pub struct BrevoClient {
    http: reqwest::Client,
    base_url: String,
    governor: Arc<RateGovernor>,
    retry: RetryPolicy,
}

impl BrevoClient {
    /// A client for `base_url` (e.g. `https://api.brevo.com/v3`) authenticating with `api_key`,
    /// with its own [`RateGovernor`] at Brevo's default limits and [`REQUEST_TIMEOUT`].
    pub fn new(api_key: &str, base_url: &str) -> Result<Self, ClientBuildError> {
        Self::with_timeout(api_key, base_url, REQUEST_TIMEOUT)
    }

    /// As [`BrevoClient::new`], with another whole-request timeout (the connect timeout is
    /// [`CONNECT_TIMEOUT`] or `timeout`, whichever is shorter).
    pub fn with_timeout(
        api_key: &str,
        base_url: &str,
        timeout: Duration,
    ) -> Result<Self, ClientBuildError> {
        let mut key =
            HeaderValue::from_str(api_key.trim()).map_err(|_| ClientBuildError::InvalidApiKey)?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("api-key", key);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let tls = crate::http::tls().map_err(|e| ClientBuildError::Http(e.0))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .default_headers(headers)
            .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .build()
            .map_err(|e| ClientBuildError::Http(e.to_string()))?;
        Ok(BrevoClient {
            http,
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            governor: Arc::new(RateGovernor::default()),
            retry: RetryPolicy::default(),
        })
    }

    /// Shares `governor` (one per process, whatever the number of clients).
    pub fn with_governor(mut self, governor: Arc<RateGovernor>) -> Self {
        self.governor = governor;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The governor this client waits for.
    pub fn governor(&self) -> &Arc<RateGovernor> {
        &self.governor
    }

    /// Sends one request, retrying per the [`RetryPolicy`]; returns the 2xx answer or the last error.
    async fn execute(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bucket: Bucket,
    ) -> Result<Reply, BrevoError> {
        let body = match body.map(serde_json::to_vec).transpose() {
            Ok(b) => b,
            Err(e) => {
                return Err(BrevoError::Rejected {
                    status: 0,
                    code: "serialization".into(),
                    message: e.to_string(),
                });
            }
        };
        let deadline = Instant::now() + self.retry.budget;
        let mut backoff = self.retry.backoff();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if bucket == Bucket::ContactsEvents
                && let Err(WouldExceedDeadline(wait)) = self.governor.acquire(Some(deadline)).await
            {
                return Err(BrevoError::RateLimited(wait));
            }
            let err = match self.send_once(&method, path, body.as_deref(), bucket).await {
                Ok(reply) => return Ok(reply),
                Err(err) => err,
            };
            let delay = match &err {
                // The governor is already paused until Brevo's reset: the next `acquire` waits.
                BrevoError::RateLimited(_) if bucket == Bucket::ContactsEvents => Duration::ZERO,
                BrevoError::RateLimited(wait) => *wait,
                BrevoError::Transient(_) => match backoff.next() {
                    Some(d) => d,
                    None => return Err(err),
                },
                BrevoError::DuplicateSms | BrevoError::Rejected { .. } => return Err(err),
            };
            if attempt >= self.retry.max_attempts || Instant::now() + delay > deadline {
                tracing::warn!(%method, path, attempt, error = %err, "brevo call failed; giving up");
                return Err(err);
            }
            tracing::warn!(%method, path, attempt, delay_ms = delay.as_millis() as u64, error = %err,
                "brevo call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange, classified.
    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
        bucket: Bucket,
    ) -> Result<Reply, BrevoError> {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method.clone(), format!("{}{}", self.base_url, path));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.governor.usage().record_call(None);
                tracing::info!(%method, path, elapsed_ms = started.elapsed().as_millis() as u64,
                    "brevo call failed before an answer");
                return Err(transport_error(e));
            }
        };
        let status = response.status();
        self.governor.usage().record_call(Some(status.as_u16()));
        let headers = response.headers().clone();
        if bucket == Bucket::ContactsEvents {
            self.governor.observe(
                header_u64(&headers, "x-sib-ratelimit-remaining"),
                header_duration(&headers, "x-sib-ratelimit-reset"),
            );
        }
        let bytes = response.bytes().await.map_err(transport_error)?;
        // One line per request, inside the caller's span (the upsert message's job and
        // correlation ids): the trail from a webhook to the Brevo call it caused.
        tracing::info!(%method, path, status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64, "brevo call");
        if status.is_success() {
            return Ok(Reply {
                status,
                body: bytes.to_vec(),
            });
        }
        let err = classify(status, &headers, &bytes);
        if let (BrevoError::RateLimited(wait), Bucket::ContactsEvents) = (&err, bucket) {
            self.governor.pause_for(*wait);
        }
        Err(err)
    }
}

fn transport_error(e: reqwest::Error) -> BrevoError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    // The URL holds no identifiers (they travel in bodies), but drop it anyway: it is noise.
    BrevoError::Transient(format!("{kind}: {}", e.without_url()))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v >= 0.0)
        .map(|v| v as u64)
}

/// `x-sib-ratelimit-reset`: seconds until the window resets ("typically seconds" per Brevo's
/// docs; fractions accepted). A value that can only be a Unix timestamp is read as one.
fn header_duration(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let secs = header_str(headers, name)?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    if secs > 1_000_000_000.0 {
        let now = chrono::Utc::now().timestamp() as f64;
        return Some(Duration::from_secs_f64((secs - now).max(0.0)));
    }
    Some(Duration::from_secs_f64(secs))
}

/// Sorts a non-2xx answer into what the caller should do about it.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> BrevoError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = header_duration(headers, "x-sib-ratelimit-reset")
            .or_else(|| {
                crate::http::retry_after(headers, chrono::Utc::now()).filter(|d| !d.is_zero())
            })
            .unwrap_or(Duration::from_secs(1));
        return BrevoError::RateLimited(wait);
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).unwrap_or_else(|_| ErrorBody {
        message: String::from_utf8_lossy(body).chars().take(300).collect(),
        ..ErrorBody::default()
    });
    // 425 Too Early (contacts: the contact is still being processed) and 408 are worth a retry.
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status.as_u16() == 425 {
        return BrevoError::Transient(format!(
            "{} {}: {}",
            status.as_u16(),
            parsed.code,
            redact(&parsed.message)
        ));
    }
    if status == StatusCode::BAD_REQUEST && is_sms_conflict(&parsed) {
        return BrevoError::DuplicateSms;
    }
    BrevoError::Rejected {
        status: status.as_u16(),
        code: if parsed.code.is_empty() {
            "unknown".into()
        } else {
            parsed.code
        },
        message: redact(&parsed.message),
    }
}

/// Whether a 400 says the SMS number is held by another contact. Brevo answers this with
/// `duplicate_parameter` and, on updates, sometimes `invalid_parameter`, so the code is not
/// trusted: `metadata.duplicate_identifiers` or the message decide.
fn is_sms_conflict(body: &ErrorBody) -> bool {
    let by_metadata = body.metadata.as_ref().is_some_and(|m| {
        m.duplicate_identifiers
            .iter()
            .any(|i| i.eq_ignore_ascii_case("sms"))
    });
    let message = body.message.to_ascii_lowercase();
    let names_sms = message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| word == "sms");
    let says_taken = message.contains("already associated") || message.contains("already exist");
    by_metadata || (names_sms && says_taken)
}

fn unexpected(reply: &Reply, what: &str) -> BrevoError {
    BrevoError::Rejected {
        status: reply.status.as_u16(),
        code: "unexpected_response".into(),
        message: format!("Brevo answered {} without {what}", reply.status.as_u16()),
    }
}

#[async_trait]
impl BrevoApi for BrevoClient {
    async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<UpsertOutcome, BrevoError> {
        let body = serde_json::to_value(contact).map_err(|e| BrevoError::Rejected {
            status: 0,
            code: "serialization".into(),
            message: e.to_string(),
        })?;
        let reply = self
            .execute(
                Method::POST,
                "/contacts",
                Some(&body),
                Bucket::ContactsEvents,
            )
            .await?;
        Ok(if reply.status == StatusCode::CREATED {
            UpsertOutcome::Created
        } else {
            UpsertOutcome::Updated
        })
    }

    async fn remove_from_list(&self, list_id: i64, key: &ContactKey) -> Result<(), BrevoError> {
        self.leave_list(list_id, key).await
    }

    async fn contact_facts(&self, key: &ContactKey) -> Result<Option<ContactFacts>, BrevoError> {
        self.read_contact(key).await
    }

    async fn unlink_contact(
        &self,
        key: &ContactKey,
        attributes: &std::collections::BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError> {
        self.unlink(key, attributes, lists).await
    }

    async fn delete_contact(&self, key: &ContactKey) -> Result<(), BrevoError> {
        self.delete(key).await
    }

    async fn send_event(&self, event: &EventRequest) -> Result<(), BrevoError> {
        let body = json!(event);
        self.execute(Method::POST, "/events", Some(&body), Bucket::ContactsEvents)
            .await?;
        Ok(())
    }

    async fn send_events(
        &self,
        events: &[EventRequest],
    ) -> Result<Vec<(usize, BrevoError)>, BrevoError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({ "events": events });
        let reply = self
            .execute(
                Method::POST,
                "/events/batch",
                Some(&body),
                Bucket::ContactsEvents,
            )
            .await?;
        if reply.status != StatusCode::MULTI_STATUS {
            return Ok(Vec::new());
        }
        let errors = reply
            .json()
            .map(|v| batch_errors(&v, events.len()))
            .unwrap_or_default();
        if errors.is_empty() {
            tracing::warn!(
                events = events.len(),
                "brevo events/batch answered 207 without per-event detail"
            );
        }
        Ok(errors)
    }

    async fn import_contacts(
        &self,
        contacts: &[ContactUpsert],
        list_ids: &[i64],
    ) -> Result<i64, BrevoError> {
        let body = import_body(contacts, list_ids);
        let reply = self
            .execute(
                Method::POST,
                "/contacts/import",
                Some(&body),
                Bucket::ContactsEvents,
            )
            .await?;
        reply
            .json()
            .and_then(|v| v.get("processId").and_then(Value::as_i64))
            .ok_or_else(|| unexpected(&reply, "a processId"))
    }

    async fn list_attributes(&self) -> Result<Vec<AttributeInfo>, BrevoError> {
        #[derive(Deserialize)]
        struct Listing {
            #[serde(default)]
            attributes: Vec<AttributeInfo>,
        }
        let reply = self
            .execute(
                Method::GET,
                "/contacts/attributes",
                None,
                Bucket::ContactsEvents,
            )
            .await?;
        serde_json::from_slice::<Listing>(&reply.body)
            .map(|l| l.attributes)
            .map_err(|_| unexpected(&reply, "an attribute list"))
    }

    async fn update_contact(
        &self,
        key: &ContactKey,
        attributes: &std::collections::BTreeMap<String, Value>,
    ) -> Result<(), BrevoError> {
        self.unlink(key, attributes, &[]).await
    }

    async fn contact_lists(&self) -> Result<Vec<ListInfo>, BrevoError> {
        self.every_page("/contacts/lists", "lists").await
    }

    async fn contact_folders(&self) -> Result<Vec<ListInfo>, BrevoError> {
        self.every_page("/contacts/folders", "folders").await
    }

    async fn create_folder(&self, name: &str) -> Result<i64, BrevoError> {
        self.create("/contacts/folders", &json!({ "name": name }))
            .await
    }

    async fn create_list(&self, name: &str, folder_id: i64) -> Result<i64, BrevoError> {
        self.create(
            "/contacts/lists",
            &json!({ "name": name, "folderId": folder_id }),
        )
        .await
    }

    async fn delete_list(&self, list_id: i64) -> Result<(), BrevoError> {
        let path = format!("/contacts/lists/{list_id}");
        self.execute(Method::DELETE, &path, None, Bucket::ContactsEvents)
            .await?;
        Ok(())
    }

    async fn create_attribute(&self, name: &str, kind: &str) -> Result<(), BrevoError> {
        let path = format!("/contacts/attributes/normal/{}", path_segment(name));
        self.execute(
            Method::POST,
            &path,
            Some(&json!({ "type": kind })),
            Bucket::ContactsEvents,
        )
        .await?;
        Ok(())
    }

    async fn account(&self) -> Result<Value, BrevoError> {
        let reply = self
            .execute(Method::GET, "/account", None, Bucket::Other)
            .await?;
        reply
            .json()
            .ok_or_else(|| unexpected(&reply, "a JSON account"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, body: Value) -> BrevoError {
        let status = StatusCode::from_u16(status).expect("valid status");
        classify(status, &HeaderMap::new(), body.to_string().as_bytes())
    }

    #[test]
    fn sms_conflicts_are_recognised_under_both_codes() {
        let dup = json!({"code":"duplicate_parameter","message":"Unable to create contact, SMS is already associated with another Contact","metadata":{"duplicate_identifiers":["SMS"]}});
        assert_eq!(error(400, dup), BrevoError::DuplicateSms);
        let update = json!({"code":"invalid_parameter","message":"Unable to update contact, SMS or EXT_ID are already associated with another Contact"});
        assert_eq!(error(400, update), BrevoError::DuplicateSms);
        let email = json!({"code":"duplicate_parameter","message":"Unable to create contact, email is already associated with another Contact","metadata":{"duplicate_identifiers":["email"]}});
        assert!(matches!(
            error(400, email),
            BrevoError::Rejected { status: 400, .. }
        ));
    }

    #[test]
    fn statuses_are_classified_by_what_to_do() {
        assert!(matches!(error(502, json!({})), BrevoError::Transient(_)));
        assert!(matches!(
            error(425, json!({"code":"bad_request","message":"Too early"})),
            BrevoError::Transient(_)
        ));
        let bad_key = error(
            401,
            json!({"code":"unauthorized","message":"Key not found"}),
        );
        assert_eq!(
            bad_key,
            BrevoError::Rejected {
                status: 401,
                code: "unauthorized".into(),
                message: "Key not found".into()
            }
        );
        let not_json = classify(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            b"<html>nope</html>",
        );
        assert!(matches!(not_json, BrevoError::Rejected { status: 404, .. }));
    }

    #[test]
    fn rate_limit_waits_come_from_brevo_headers_then_retry_after() {
        let mut h = HeaderMap::new();
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            BrevoError::RateLimited(Duration::from_secs(1))
        );
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            BrevoError::RateLimited(Duration::from_secs(7))
        );
        h.insert("x-sib-ratelimit-reset", HeaderValue::from_static("3"));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            BrevoError::RateLimited(Duration::from_secs(3))
        );
    }

    #[test]
    fn rejected_messages_are_redacted() {
        let e = error(
            400,
            json!({"code":"invalid_parameter","message":"email jane@example.com is not valid"}),
        );
        assert!(!e.to_string().contains("jane@example.com"), "{e}");
    }
}
