//! A generic source of the configuration file as a [`Helpdesk`]: deliveries authenticated and
//! read as its `connectors.generic:<name>` block says. Generic sources have no API.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::parse_webhook;
use crate::config::Settings;
use crate::helpdesk::contract::Helpdesk;
use crate::helpdesk::parse::{ParseError, Parsed};
use crate::helpdesk::signature::AuthError;
use crate::model::Source;

/// The generic source `name` (`generic:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generic {
    pub name: String,
}

impl Helpdesk for Generic {
    fn source(&self) -> Source {
        Source::Generic(self.name.clone())
    }

    fn verify_webhook(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let config = settings
            .file
            .generic
            .get(&self.name)
            .ok_or(AuthError::NotConfigured)?;
        let secret = settings
            .generic_secrets
            .get(&self.name)
            .ok_or(AuthError::NotConfigured)?;
        config.auth.verify(secret, headers, body, now)
    }

    fn parse_webhook(
        &self,
        settings: &Settings,
        value: Value,
        _headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        match settings.file.generic.get(&self.name) {
            Some(config) => parse_webhook(&self.name, config, &value, body, received_at),
            None => Err(ParseError::Invalid(format!(
                "generic source `{}` is not configured",
                self.name
            ))),
        }
    }
}
