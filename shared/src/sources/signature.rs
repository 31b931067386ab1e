//! Webhook authentication. (Stub: being implemented.)
use std::time::Duration;
use chrono::{DateTime, Utc};

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("source is not configured")]
    NotConfigured,
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("signature timestamp is outside the accepted window")]
    Stale,
}

pub fn verify_zendesk(_secret: &str, _headers: &http::HeaderMap, _body: &[u8], _now: DateTime<Utc>, _tolerance: Duration) -> Result<(), AuthError> { Err(AuthError::BadSignature) }
pub fn verify_intercom(_secret: &str, _headers: &http::HeaderMap, _body: &[u8]) -> Result<(), AuthError> { Err(AuthError::BadSignature) }
pub fn verify_bearer(_token: &str, _headers: &http::HeaderMap) -> Result<(), AuthError> { Err(AuthError::BadSignature) }
