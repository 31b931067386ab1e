//! A generic source of the configuration file as a [`Helpdesk`]: deliveries authenticated and
//! read as its `connectors.generic:<name>` block says, and, when the block has a `pull`
//! section, its API read by the batch sync ([`PullReader`]).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::parse_webhook;
use super::pull::{PullSource, STREAMS};
use super::pull_reader::PullReader;
use crate::config::Settings;
use crate::helpdesk::contract::Helpdesk;
use crate::helpdesk::parse::{ParseError, Parsed};
use crate::helpdesk::signature::AuthError;
use crate::model::Source;
use crate::sync::SourceReader;

/// The generic source `name` (`generic:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generic {
    pub name: String,
}

impl Generic {
    /// The source's `pull` block, if the file gives it one.
    pub fn pull<'s>(&self, settings: &'s Settings) -> Option<&'s PullSource> {
        settings.file.pulls.get(&self.name)
    }
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

    fn api_enabled(&self, settings: &Settings) -> bool {
        settings.api_enabled(&self.source())
    }

    /// Every stream a pull source can have; its reader lists those its file configures.
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    fn reader(
        &self,
        settings: &Settings,
        client: &reqwest::Client,
    ) -> Option<Box<dyn SourceReader>> {
        let config = self.pull(settings)?;
        let secret = settings.pull_secrets.get(&self.name)?;
        Some(Box::new(PullReader::new(
            client.clone(),
            &self.name,
            config.clone(),
            secret.clone(),
            settings.sync_instances,
        )))
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
