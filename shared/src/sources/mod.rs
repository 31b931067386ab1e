//! Helpdesk sources: webhook authentication and parsing into canonical records, and the
//! helpdesk API clients used to look people up (and, for batch sync, to read pages).

pub mod generic;
pub mod gorgias;
pub mod http;
pub mod intercom;
pub mod lookup;
pub mod signature;
pub mod zendesk;
pub mod zendesk_auth;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Settings;
use crate::model::{Person, Record, Source};

pub use lookup::{HelpdeskLookup, LookupError, PersonLookup};
pub use signature::AuthError;
pub use zendesk_auth::{ZendeskAuth, ZendeskCredentials};

/// A webhook delivery the connector acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The vendor's delivery id (dedupe key): Zendesk event `id`, Intercom notification `id`,
    /// or a hash of the body when the vendor sends none.
    pub delivery_id: String,
    /// The vendor's event type or topic, for logs and metrics.
    pub topic: String,
    pub records: Vec<Record>,
}

/// What a verified webhook body turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Accepted(Delivery),
    /// A well-formed delivery of a type the connector does not act on (`ping`, unknown topics).
    Ignored {
        topic: String,
    },
}

/// A verified body that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("required field `{0}` is missing or has the wrong type")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// Deepest JSON nesting accepted in a webhook body.
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses JSON with a nesting limit, so a hostile body cannot exhaust the stack.
pub fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    // Count nesting outside strings before handing the body to serde.
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
                if max > MAX_JSON_DEPTH {
                    return Err(ParseError::TooDeep(MAX_JSON_DEPTH));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))
}

/// Checks that a request really comes from `source`'s helpdesk (signature or token).
pub fn verify_webhook(
    settings: &Settings,
    source: &Source,
    headers: &http::HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    match source {
        Source::Zendesk => signature::verify_zendesk(
            settings
                .zendesk
                .webhook_secret
                .as_deref()
                .ok_or(AuthError::NotConfigured)?,
            headers,
            body,
            now,
            settings.signature_tolerance,
        ),
        Source::Intercom => signature::verify_intercom(
            settings
                .intercom
                .client_secret
                .as_deref()
                .ok_or(AuthError::NotConfigured)?,
            headers,
            body,
        ),
        Source::Gorgias => signature::verify_bearer(
            settings
                .gorgias
                .webhook_token
                .as_deref()
                .ok_or(AuthError::NotConfigured)?,
            headers,
        ),
        Source::Generic(name) => {
            let config = settings
                .file
                .generic
                .get(name)
                .ok_or(AuthError::NotConfigured)?;
            let secret = settings
                .generic_secrets
                .get(name)
                .ok_or(AuthError::NotConfigured)?;
            config.auth.verify(secret, headers, body)
        }
    }
}

/// Parses a verified webhook body of `source` into canonical records. Generic sources are read
/// as `settings` describes them.
pub fn parse_webhook(
    settings: &Settings,
    source: &Source,
    headers: &http::HeaderMap,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let value = parse_json(body)?;
    match source {
        Source::Zendesk => zendesk::parse_webhook(&value, headers, body, received_at),
        Source::Intercom => intercom::parse_webhook(&value, received_at),
        Source::Gorgias => gorgias::parse_webhook(&value, body, received_at),
        Source::Generic(name) => match settings.file.generic.get(name) {
            Some(config) => generic::parse_webhook(name, config, &value, body, received_at),
            None => Err(ParseError::Invalid(format!(
                "generic source `{name}` is not configured"
            ))),
        },
    }
}

/// The canonical person of a helpdesk's own person object (Zendesk user, Intercom contact,
/// Gorgias customer), as returned by its API.
pub fn person_from_profile(source: &Source, profile: &Value) -> Person {
    match source {
        Source::Zendesk => zendesk::person_from_user(profile),
        Source::Intercom => intercom::person_from_contact(profile),
        Source::Gorgias => gorgias::person_from_customer(profile),
        Source::Generic(_) => Person::default(),
    }
}

/// Hex SHA-256 of a body: the delivery id of vendors that send none.
pub fn body_hash(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

// Lenient readers for helpdesk JSON, shared by the parsers of template-driven bodies (Zendesk
// triggers, Gorgias HTTP integrations), where unrendered `{{…}}` placeholders can appear.

/// A copy of a template object without empty or unrendered (`{{…}}`) string values, so the
/// mapping never writes a placeholder or an empty string into Brevo.
pub(crate) fn clean(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::String(_)) || text(Some(v)).is_some())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Text of a string (trimmed, non-empty, not an unrendered placeholder) or a number.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => {
            let s = s.trim();
            let unrendered = s.starts_with("{{") && s.ends_with("}}");
            (!s.is_empty() && !unrendered).then(|| s.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.filter(|v| text(Some(v)).is_some())
        .and_then(crate::mapping::parse_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert_eq!(
            parse_json(deep.as_bytes()),
            Err(ParseError::TooDeep(MAX_JSON_DEPTH))
        );
        let ok = "[".repeat(10) + &"]".repeat(10);
        assert!(parse_json(ok.as_bytes()).is_ok());
        // Brackets inside strings do not count.
        let s = format!("{{\"a\":\"{}\"}}", "[".repeat(200));
        assert!(parse_json(s.as_bytes()).is_ok());
        assert!(matches!(parse_json(b"{nope"), Err(ParseError::NotJson(_))));
    }
}
