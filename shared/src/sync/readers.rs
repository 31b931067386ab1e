//! The HTTP core every sync reader shares: one
//! request within the account's rate limit, with 429s waited out (never sooner than the helpdesk
//! asked), 5xx and timeouts retried with back-off, and refusals turned into operator-readable
//! [`FetchError::Rejected`] messages.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use serde::de::DeserializeOwned;

use super::FetchError;
use super::limiter::Limiter;
use crate::http::{self as helpdesk_http, ClientBuildError, StatusClass, StatusCode, retry_after};
use crate::model::Source;

/// Whole-request timeout of a sync page request (pages are bigger than look-ups: Zendesk
/// exports can hold 1,000 tickets with their sideloaded users).
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client for sync readers: [`helpdesk_http::client_with_timeout`] with
/// [`SYNC_REQUEST_TIMEOUT`]. Build it once and give it to every reader.
pub fn sync_client() -> Result<reqwest::Client, ClientBuildError> {
    helpdesk_http::client_with_timeout(SYNC_REQUEST_TIMEOUT)
}

/// How hard one `fetch_page` tries before giving the failure back to the sync function (which
/// retries the page later: nothing is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// 429 answers waited out per page; one more returns [`FetchError::RateLimited`].
    pub rate_limited_retries: u32,
    /// Most time spent waiting out 429s per page; a longer `Retry-After` is returned as
    /// [`FetchError::RateLimited`] at once.
    pub rate_limited_budget: Duration,
    /// Retries of 5xx answers, timeouts and connection failures per page.
    pub transient_retries: u32,
    /// First back-off delay of those retries (then doubling, with jitter).
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rate_limited_retries: 3,
            rate_limited_budget: Duration::from_secs(60),
            transient_retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
}

/// `base` + `path` with the query `params` (encoded), or a rejection naming the bad base URL.
pub(crate) fn url_with_query(
    source: &Source,
    base: &str,
    path: &str,
    params: &[(&str, String)],
) -> Result<reqwest::Url, FetchError> {
    reqwest::Url::parse_with_params(&format!("{base}{path}"), params).map_err(|e| {
        FetchError::Rejected(format!(
            "{source} base URL `{base}` is not a valid URL: {e}"
        ))
    })
}

/// How [`Api::send`] failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// HTTP 401: the credentials were refused. A caller that can renew them may try once more.
    Unauthorized,
    /// HTTP 404: the object is not there (deleted, or never was).
    NotFound,
    Failed(FetchError),
}

/// One helpdesk account's HTTP access: client, account limiter, retry policy.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub(crate) source: Source,
    pub(crate) client: reqwest::Client,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) retry: RetryPolicy,
}

impl Api {
    pub(crate) fn new(source: Source, client: reqwest::Client, limiter: Limiter) -> Api {
        Api {
            source,
            client,
            limiter: Arc::new(limiter),
            retry: RetryPolicy::default(),
        }
    }

    /// Sends the request `build` makes (again on every attempt) and decodes the JSON answer.
    /// Each attempt first takes a slot from `lane` (an endpoint-specific limit such as Zendesk's
    /// exports), then from the account limiter. `path` names the endpoint in errors and logs
    /// (no query string: cursors and ids stay out of messages).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        lane: Option<&Limiter>,
        path: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, FetchError> {
        self.send(lane, path, build).await.map_err(|e| match e {
            CallError::Unauthorized => {
                FetchError::Rejected(rejection(&self.source, StatusCode::UNAUTHORIZED, path))
            }
            CallError::NotFound => {
                FetchError::Rejected(rejection(&self.source, StatusCode::NOT_FOUND, path))
            }
            CallError::Failed(e) => e,
        })
    }

    /// [`Api::call`] for one object by id: `None` when the helpdesk answers 404 (deleted since
    /// something referred to it), so the caller can go on without it.
    pub(crate) async fn call_found<T: DeserializeOwned>(
        &self,
        path: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Option<T>, FetchError> {
        match self.send(None, path, build).await {
            Ok(value) => Ok(Some(value)),
            Err(CallError::NotFound) => Ok(None),
            Err(CallError::Unauthorized) => Err(FetchError::Rejected(rejection(
                &self.source,
                StatusCode::UNAUTHORIZED,
                path,
            ))),
            Err(CallError::Failed(e)) => Err(e),
        }
    }

    /// [`Api::call`], with a 401 handed back as [`CallError::Unauthorized`] for a caller that
    /// can renew its credentials.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        lane: Option<&Limiter>,
        path: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.backoff)
            .with_max_times(usize::try_from(self.retry.transient_retries).unwrap_or(usize::MAX))
            .with_jitter()
            .build();
        let mut rate_limited = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            // A pause longer than what is left of the budget (a long `Retry-After` seen by an
            // earlier call) is handed back rather than slept through: the sync function
            // retries the page later instead of holding a Lambda invocation.
            if let Some(until) = self.limiter.paused_until() {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if left > self.retry.rate_limited_budget.saturating_sub(waited) {
                    return Err(CallError::Failed(FetchError::RateLimited(left)));
                }
            }
            if let Some(lane) = lane {
                lane.acquire().await;
            }
            // The shared budget may hold everyone back (another process saw a 429): a wait
            // longer than what is left of the budget is handed back too.
            let patience = self.retry.rate_limited_budget.saturating_sub(waited);
            if let Err(left) = self.limiter.acquire_within(patience).await {
                return Err(CallError::Failed(FetchError::RateLimited(left)));
            }
            // Why this attempt failed in a way worth retrying, and how long the helpdesk asked
            // us to wait before the next one (a 503 may carry `Retry-After`).
            let (failure, asked_wait) = match build(&self.client).send().await {
                Err(err) if helpdesk_http::is_transient_error(&err) => {
                    (transport_failure(err), None)
                }
                Err(err) => {
                    return Err(CallError::Failed(FetchError::Rejected(format!(
                        "{} request to {path} could not be sent: {}",
                        self.source,
                        err.without_url()
                    ))));
                }
                Ok(response) => {
                    let now = Utc::now();
                    let status = response.status();
                    let headers = response.headers().clone();
                    self.limiter.observe(&headers, now);
                    match helpdesk_http::classify(status, &headers, now) {
                        StatusClass::Success => match self.decode(path, response).await {
                            Ok(Some(value)) => return Ok(value),
                            Ok(None) => ("truncated or malformed JSON body".to_string(), None),
                            Err(err) => return Err(CallError::Failed(err)),
                        },
                        StatusClass::RateLimited(asked) => {
                            // Without `Retry-After`, wait a whole window of the modelled limit.
                            let wait = asked.unwrap_or_else(|| self.limiter.rate().window());
                            // Nobody sharing the account calls before the wait is over, in
                            // this process or any other.
                            self.limiter.pause_everyone(wait).await;
                            rate_limited += 1;
                            if rate_limited > self.retry.rate_limited_retries
                                || waited + wait > self.retry.rate_limited_budget
                            {
                                return Err(CallError::Failed(FetchError::RateLimited(wait)));
                            }
                            waited += wait;
                            tracing::warn!(
                                source = %self.source,
                                path,
                                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                "helpdesk answered 429; waiting before retrying"
                            );
                            continue;
                        }
                        StatusClass::Transient => {
                            (format!("HTTP {status}"), retry_after(&headers, now))
                        }
                        StatusClass::Rejected if status == StatusCode::UNAUTHORIZED => {
                            return Err(CallError::Unauthorized);
                        }
                        StatusClass::NotFound => return Err(CallError::NotFound),
                        StatusClass::Rejected => {
                            return Err(CallError::Failed(FetchError::Rejected(rejection(
                                &self.source,
                                status,
                                path,
                            ))));
                        }
                    }
                }
            };
            let Some(delay) = backoff.next() else {
                return Err(CallError::Failed(FetchError::Transient(format!(
                    "{} {path}: {failure}",
                    self.source
                ))));
            };
            let delay = asked_wait.map_or(delay, |asked| asked.max(delay));
            tracing::warn!(
                source = %self.source,
                path,
                failure = %failure,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "helpdesk request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Decodes a 2xx body. `Ok(None)`: the body was cut short or is not valid JSON (worth
    /// retrying); `Err`: a body that will never decode (HTML from a wrong base URL, a JSON
    /// shape we do not understand).
    async fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        response: reqwest::Response,
    ) -> Result<Option<T>, FetchError> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if let Some(ct) = content_type.filter(|ct| !ct.contains("json")) {
            return Err(FetchError::Rejected(format!(
                "{} answered `{ct}` instead of JSON to {path}: check the base URL / subdomain",
                self.source
            )));
        }
        let Ok(body) = response.bytes().await else {
            return Ok(None);
        };
        match serde_json::from_slice::<T>(&body) {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.classify() == serde_json::error::Category::Data => {
                Err(FetchError::Rejected(format!(
                    "{} answered {path} with an unexpected JSON shape ({err}): check the API version",
                    self.source
                )))
            }
            Err(_) => Ok(None),
        }
    }
}

/// A transport failure in a few words (the URL, which holds cursors, is left out).
fn transport_failure(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        err.without_url().to_string()
    }
}

/// An operator-readable reason for a refused request, naming the likely cause.
pub(crate) fn rejection(source: &Source, status: StatusCode, path: &str) -> String {
    let cause = match (source, status.as_u16()) {
        (Source::Zendesk, 401) => {
            "bad credentials: check ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET (or \
             ZENDESK_OAUTH_TOKEN, or the legacy ZENDESK_EMAIL and ZENDESK_API_TOKEN)"
        }
        (Source::Zendesk, 403) => {
            "forbidden: incremental exports and satisfaction ratings need admin access (an \
             OAuth client created by an admin, or an admin's API token) and the `read` scope \
             (ZENDESK_OAUTH_SCOPE)"
        }
        (Source::Zendesk, 404) => {
            "not found: wrong subdomain? check ZENDESK_SUBDOMAIN or ZENDESK_BASE_URL"
        }
        (Source::Intercom, 401) => "bad credentials: check INTERCOM_ACCESS_TOKEN",
        (Source::Intercom, 403) => {
            "forbidden: the access token lacks the permission to read contacts/conversations"
        }
        (Source::Intercom, 404) => {
            "not found: check INTERCOM_BASE_URL (api.intercom.io, api.eu.intercom.io or \
             api.au.intercom.io) and INTERCOM_VERSION"
        }
        (Source::Gorgias, 401) => "bad credentials: check GORGIAS_EMAIL and GORGIAS_API_KEY",
        (Source::Gorgias, 403) => "forbidden: the API key's user cannot read this resource",
        (Source::Gorgias, 404) => {
            "not found: wrong domain? check GORGIAS_DOMAIN or GORGIAS_BASE_URL"
        }
        _ => "the request was refused and retrying it will not help",
    };
    format!("{source} answered HTTP {status} to {path}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_name_the_likely_cause() {
        let msg = rejection(&Source::Zendesk, StatusCode::UNAUTHORIZED, "/api/v2/x");
        assert!(
            msg.contains("ZENDESK_API_TOKEN") && msg.contains("401"),
            "{msg}"
        );
        let msg = rejection(&Source::Gorgias, StatusCode::NOT_FOUND, "/api/customers");
        assert!(msg.contains("GORGIAS_DOMAIN"), "{msg}");
        let msg = rejection(
            &Source::Intercom,
            StatusCode::BAD_REQUEST,
            "/contacts/search",
        );
        assert!(msg.contains("400"), "{msg}");
    }
}
