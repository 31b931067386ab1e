//! Looking people up through the helpdesk APIs. (Stub: being implemented.)
use async_trait::async_trait;
use serde_json::Value;
use crate::config::Settings;
use crate::model::{Person, Source};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LookupError {
    #[error("helpdesk API unavailable: {0}")]
    Transient(String),
    #[error("helpdesk API refused the request: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait PersonLookup: Send + Sync {
    /// Fetches the person `id` of `source`; `Ok(None)` when the helpdesk has no API credentials
    /// configured or does not know the id.
    async fn lookup(&self, source: &Source, id: &str) -> Result<Option<(Person, Value)>, LookupError>;
}

pub struct HelpdeskLookup;
impl HelpdeskLookup { pub fn new(_settings: &Settings) -> Self { HelpdeskLookup } }
#[async_trait]
impl PersonLookup for HelpdeskLookup {
    async fn lookup(&self, _source: &Source, _id: &str) -> Result<Option<(Person, Value)>, LookupError> { Ok(None) }
}
