//! What a helpdesk provides to the rest of deskbridge: the [`Helpdesk`] trait, and
//! [`PersonApi`] for the helpdesks whose API can look a person up.
//!
//! Each vendor folder implements [`Helpdesk`] once; the [`Registry`](super::registry::Registry)
//! lists the implementations. Nothing here names a vendor, so every vendor folder (and a
//! helpdesk defined outside this crate) can depend on it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::api::{CachePolicy, LookupError};
use super::check::{CheckApi, CheckStreams};
use super::parse::{ParseError, Parsed, parse_json};
use super::signature::AuthError;
use crate::config::Settings;
use crate::model::{Person, Record, Source};
use crate::sync::{Rate, SourceReader};

/// One helpdesk: how its webhooks are authenticated and read, how its person objects become
/// canonical people, and, when it has an API deskbridge calls, how people are looked up and
/// how its batch sync reads.
///
/// Everything takes the [`Settings`], so one value serves every configuration; a helpdesk that
/// keeps its own secrets (one defined in a test, say) may ignore them.
pub trait Helpdesk: Send + Sync {
    /// The source this helpdesk feeds: its name in URLs (`/webhooks/<name>`), state keys,
    /// job ids and event ids.
    fn source(&self) -> Source;

    /// Whether its webhooks are accepted: the source is enabled and its secret or token is set.
    /// The built-in helpdesks keep theirs in [`Settings`]; an added one whose secret lives
    /// elsewhere says so by overriding this.
    fn webhook_enabled(&self, settings: &Settings) -> bool {
        settings.webhook_enabled(&self.source())
    }

    /// Checks that a request really comes from this helpdesk (signature or token) over the raw
    /// body bytes. [`AuthError::NotConfigured`] when the secret is missing.
    fn verify_webhook(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError>;

    /// Reads a verified delivery (`value` is `body` as JSON, read with the nesting limit) into
    /// canonical records. It takes `value` whole, so that parts of it can become records
    /// without being copied.
    fn parse_webhook(
        &self,
        settings: &Settings,
        value: Value,
        headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError>;

    /// Reads a verified delivery from its bytes: what the webhook function calls. By default
    /// `body` is read as JSON with the nesting limit and handed to
    /// [`parse_webhook`](Helpdesk::parse_webhook); a helpdesk may instead cut parts of the body
    /// out as text, so that they reach the job without being built as a tree. Both must give
    /// the same records.
    fn parse_webhook_body(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        let value = parse_json(body)?;
        self.parse_webhook(settings, value, headers, body, received_at)
    }

    /// The canonical person of one of its person objects, as its API returns them. Nothing for
    /// a helpdesk without person objects.
    fn person_from_profile(&self, _profile: &Value) -> Person {
        Person::default()
    }

    /// Whether its API can be called (look-ups, batch sync): the source is enabled and its API
    /// credentials are set. Never for a helpdesk without an API.
    fn api_enabled(&self, _settings: &Settings) -> bool {
        false
    }

    /// Its person look-up, when its API credentials are set.
    fn person_api(&self, _settings: &Settings, _cache: CachePolicy) -> Option<Arc<dyn PersonApi>> {
        None
    }

    /// The request rate of one account of its API (the whole account's, which its sync readers
    /// and look-ups share); none for a helpdesk without an API.
    fn account_rate(&self) -> Option<Rate> {
        None
    }

    /// The names of its batch sync streams, in the order a run starts them (none without a
    /// sync).
    fn streams(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its batch sync reader over `client`, when its API credentials are set. Each of the
    /// `settings.sync_instances` that may run at once takes that share of the account's rate
    /// limits.
    fn reader(
        &self,
        _settings: &Settings,
        _client: &reqwest::Client,
    ) -> Option<Box<dyn SourceReader>> {
        None
    }

    /// The variables its API access lacks here, as an operator would set them (empty when the
    /// API is configured, and for a helpdesk without an API).
    fn missing_api_variables(&self, _settings: &Settings) -> Vec<String> {
        Vec::new()
    }

    /// The streams `deskbridge check` reads one item of; `None` for a helpdesk without an API.
    fn check_streams(&self) -> Option<CheckStreams> {
        None
    }

    /// What `deskbridge check` calls besides the streams, when its API credentials are set.
    fn check_api(&self, _settings: &Settings) -> Option<Arc<dyn CheckApi>> {
        None
    }
}

/// A helpdesk API that can fetch one person by id.
#[async_trait]
pub trait PersonApi: Send + Sync {
    /// The person object `id` (already checked to be safe in a URL path), as
    /// [`Helpdesk::person_from_profile`] reads it; `Ok(None)` when the helpdesk does not know
    /// the id.
    async fn person(
        &self,
        client: &reqwest::Client,
        id: &str,
    ) -> Result<Option<Value>, LookupError>;

    /// Whether [`PersonApi::complete_profile`] would call the helpdesk for `record` (so that
    /// the call is counted against the account's budget only when it is made).
    fn needs_completion(&self, _record: &Record) -> bool {
        false
    }

    /// Adds to `record`'s profile what the person object only references (an Intercom
    /// contact's company). Never fails: without that data the record is written as it is.
    async fn complete_profile(&self, _client: &reqwest::Client, _record: &mut Record) {}
}
