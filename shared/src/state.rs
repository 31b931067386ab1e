//! The state store port: dedupe claims now; cursors, leases and per-contact state build on it.

pub mod dynamo;
pub mod streams;

pub use dynamo::DynamoStateStore;

use std::time::Duration;

use async_trait::async_trait;

/// Result of trying to claim a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody had claimed it: the caller owns the work.
    New,
    /// Claimed before but never completed (a crash, or a concurrent delivery): the caller may
    /// redo the work, which must be idempotent downstream.
    InFlight,
    /// The work was done already: skip it.
    Done,
}

/// A failure of the state store itself (unavailable, throttled, misconfigured).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("state store unavailable: {0}")]
pub struct StateError(pub String);

/// Port for deskbridge's DynamoDB table.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Claims `key` (e.g. `delivery#zendesk#<id>`) for `ttl`; see [`Claim`].
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StateError>;
    /// Marks a claimed key done, to be remembered for `ttl`.
    async fn complete(&self, key: &str, ttl: Duration) -> Result<(), StateError>;
    /// Drops a claim whose work failed, so a retry starts fresh.
    async fn release(&self, key: &str) -> Result<(), StateError>;
}

/// Key of a webhook delivery's dedupe record.
pub fn delivery_key(source: &crate::model::Source, delivery_id: &str) -> String {
    format!("delivery#{source}#{delivery_id}")
}

/// Key of a timeline event's dedupe record.
pub fn event_key(event_id: &str) -> String {
    format!("event#{event_id}")
}
