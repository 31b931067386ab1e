//! HTTP plumbing shared by the helpdesk API clients (person look-ups now, batch sync later):
//! one client builder with timeouts and a user agent, `Retry-After` parsing, and the
//! classification of response statuses into what the caller should do.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

// The `http` crate's types, re-exported: inside `sources`, this module's name shadows the
// crate's, so `http::HeaderMap` there must keep meaning the crate's type.
pub use ::http::{HeaderMap, HeaderValue, StatusCode};

/// `User-Agent` of every helpdesk request.
pub const USER_AGENT: &str = concat!("deskbridge/", env!("CARGO_PKG_VERSION"));
/// Whole-request timeout of a helpdesk call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection set-up timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait a `Retry-After` may ask for before we treat it as "try much later".
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The HTTP client could not be built (TLS back-end initialisation).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("building the HTTP client: {0}")]
pub struct ClientBuildError(pub String);

/// Builds the client used for helpdesk APIs: rustls, 10 s request timeout, 5 s connect
/// timeout, `deskbridge/<version>` user agent. Build it once and share it.
pub fn client() -> Result<reqwest::Client, ClientBuildError> {
    client_with_timeout(REQUEST_TIMEOUT)
}

/// [`client`] with another request timeout.
pub fn client_with_timeout(timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls()?)
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .build()
        .map_err(|e| ClientBuildError(e.to_string()))
}

/// The TLS configuration of every HTTP client of the process (helpdesks and Brevo): the
/// platform's root certificates, verified as reqwest verifies them by default
/// (`rustls-platform-verifier`), on aws-lc, TLS 1.2 and 1.3, HTTP/1.1. Built once: reqwest
/// would otherwise read and parse the whole certificate store for each client it builds, which
/// is most of a function's init on hosts that keep one file per certificate.
pub fn tls() -> Result<rustls::ClientConfig, ClientBuildError> {
    static TLS: OnceLock<Result<rustls::ClientConfig, ClientBuildError>> = OnceLock::new();
    TLS.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| ClientBuildError(format!("platform root certificates: {e}")))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientBuildError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    })
    .clone()
}

/// Reads `Retry-After` as delay-seconds (`120`, also a decimal `1.5`) or an HTTP date, capped
/// at [`MAX_RETRY_AFTER`]. `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    let wait = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = raw.parse::<f64>() {
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What a response status means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 404 (and 410): the thing does not exist.
    NotFound,
    /// 429: wait `Retry-After` (when given), then try again.
    RateLimited(Option<Duration>),
    /// 5xx, 408, 409, 423, 425: try again later.
    Transient,
    /// Any other status (401, 403, 400, 3xx…): retrying the same request will not help.
    Rejected,
}

impl StatusClass {
    /// Whether trying again later can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, StatusClass::RateLimited(_) | StatusClass::Transient)
    }
}

/// Classifies a response status, reading `Retry-After` on 429.
pub fn classify(status: StatusCode, headers: &HeaderMap, now: DateTime<Utc>) -> StatusClass {
    match status.as_u16() {
        200..=299 => StatusClass::Success,
        404 | 410 => StatusClass::NotFound,
        429 => StatusClass::RateLimited(retry_after(headers, now)),
        408 | 409 | 423 | 425 | 500..=599 => StatusClass::Transient,
        _ => StatusClass::Rejected,
    }
}

/// Whether a transport error (no HTTP status) is worth retrying: timeouts and connection
/// failures are; a request we could not even build is not.
pub fn is_transient_error(err: &reqwest::Error) -> bool {
    err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() || err.is_decode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 8, 10, 0, 0)
            .single()
            .expect("time")
    }

    fn with_retry_after(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Retry-After", HeaderValue::from_static(v));
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&with_retry_after("120"), now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&with_retry_after(" 1.5 "), now()),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&with_retry_after("Wed, 08 Jan 2025 10:00:30 GMT"), now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&with_retry_after("Wed, 08 Jan 2025 09:00:00 GMT"), now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&with_retry_after("999999"), now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after(&with_retry_after("-3"), now()), None);
        assert_eq!(retry_after(&with_retry_after("soon"), now()), None);
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn statuses_are_classified() {
        let h = with_retry_after("7");
        let c = |code: u16| classify(StatusCode::from_u16(code).expect("status"), &h, now());
        assert_eq!(c(200), StatusClass::Success);
        assert_eq!(c(204), StatusClass::Success);
        assert_eq!(c(404), StatusClass::NotFound);
        assert_eq!(
            c(429),
            StatusClass::RateLimited(Some(Duration::from_secs(7)))
        );
        assert_eq!(c(503), StatusClass::Transient);
        assert_eq!(c(408), StatusClass::Transient);
        assert_eq!(c(401), StatusClass::Rejected);
        assert_eq!(c(403), StatusClass::Rejected);
        assert_eq!(c(301), StatusClass::Rejected);
        assert!(c(429).is_retryable() && c(500).is_retryable() && !c(400).is_retryable());
    }

    #[test]
    fn the_client_builds_with_our_user_agent() {
        assert!(USER_AGENT.starts_with("deskbridge/"));
        assert!(client().is_ok());
    }
}
