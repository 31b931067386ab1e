//! What every helpdesk's webhook parser shares: the parsed delivery, its errors, a JSON reader
//! with a nesting limit, and lenient readers for template-driven bodies. Depends on no helpdesk
//! and on no settings, so every vendor folder (and the configuration's generic sources) can use it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::Record;

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
    check_depth(body)?;
    serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))
}

/// Counts nesting outside strings before the body reaches serde. Inside a string it jumps from
/// one quote or backslash to the next (most of a body is string contents).
pub(crate) fn check_depth(body: &[u8]) -> Result<(), ParseError> {
    let (mut depth, mut i) = (0usize, 0usize);
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // Past the string's end: the closing quote that is not escaped.
                match memchr::memchr2(b'"', b'\\', body.get(i..).unwrap_or_default()) {
                    Some(at) if body[i + at] == b'\\' => i += at + 2,
                    Some(at) => {
                        i += at + 1;
                        break;
                    }
                    None => return Ok(()),
                }
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ParseError::TooDeep(MAX_JSON_DEPTH));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
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
