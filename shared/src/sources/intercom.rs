//! intercom webhooks and API. (Stub: being implemented.)
use chrono::{DateTime, Utc};
use serde_json::Value;
use crate::model::Person;
use super::{Parsed, ParseError};

#[allow(unused_variables)]
pub fn parse_webhook(value: &Value, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> { Err(ParseError::Invalid("not implemented".into())) }

#[allow(unused_variables)]
pub fn person_from_contact(value: &Value) -> Person { Person::default() }
