//! The state store port: dedupe claims, revisioned documents (per-contact ledgers); cursors and
//! leases build on the same table.

pub mod budget;
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
    /// Claimed before but never completed, longer ago than [`CLAIM_LEASE`] (its worker
    /// crashed or was stopped): the caller may redo the work, which must be idempotent
    /// downstream.
    Abandoned,
    /// Claimed less than [`CLAIM_LEASE`] ago and not completed: another worker is doing the work
    /// right now. The caller should retry later rather than do it too.
    Busy,
    /// The work was done already: skip it.
    Done,
}

/// How long a claim is held by the worker that took it. A worker never holds one longer than
/// the upsert function's timeout (Lambda stops it then), so an older pending claim is abandoned.
pub const CLAIM_LEASE: Duration = Duration::from_secs(crate::infra::UPSERT_TIMEOUT_SECONDS as u64);

/// A failure of the state store itself (unavailable, throttled, misconfigured).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("state store unavailable: {0}")]
pub struct StateError(pub String);

/// Port for deskbridge's DynamoDB table.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Claims `key` (e.g. `delivery#zendesk#<id>`) for `ttl`; see [`Claim`].
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StateError>;
    /// Marks a claimed key done, to be remembered for `ttl`; `None`: for good (see
    /// [`is_permanent`]).
    async fn complete(&self, key: &str, ttl: Option<Duration>) -> Result<(), StateError>;
    /// Drops a claim whose work failed, so a retry starts fresh.
    async fn release(&self, key: &str) -> Result<(), StateError>;
    /// Whether `key` is claimed and done (and not expired): a read, no claim taken.
    async fn is_done(&self, key: &str) -> Result<bool, StateError>;
    /// A JSON document stored under `key` (a contact's ledger), with its revision.
    async fn load_doc(&self, key: &str) -> Result<Option<Doc>, StateError>;
    /// Stores `text` under `key` if the stored revision is still `rev` (`None`: only if nothing
    /// is stored), kept for `ttl` after this write. `Ok(false)`: someone else wrote first; load
    /// again and retry.
    async fn save_doc(
        &self,
        key: &str,
        rev: Option<u64>,
        text: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError>;
}

/// Lets one store be shared (`Arc<MemoryStateStore>`) between handlers, or with a test.
#[async_trait]
impl<T: StateStore + ?Sized> StateStore for std::sync::Arc<T> {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StateError> {
        (**self).claim(key, ttl).await
    }
    async fn complete(&self, key: &str, ttl: Option<Duration>) -> Result<(), StateError> {
        (**self).complete(key, ttl).await
    }
    async fn release(&self, key: &str) -> Result<(), StateError> {
        (**self).release(key).await
    }
    async fn is_done(&self, key: &str) -> Result<bool, StateError> {
        (**self).is_done(key).await
    }
    async fn load_doc(&self, key: &str) -> Result<Option<Doc>, StateError> {
        (**self).load_doc(key).await
    }
    async fn save_doc(
        &self,
        key: &str,
        rev: Option<u64>,
        text: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        (**self).save_doc(key, rev, text, ttl).await
    }
}

/// A stored document and its revision (every write bumps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub rev: u64,
    pub text: String,
}

/// Key of a webhook delivery's dedupe record.
pub fn delivery_key(source: &crate::model::Source, delivery_id: &str) -> String {
    format!("delivery#{source}#{delivery_id}")
}

/// Key of a timeline event's dedupe record.
pub fn event_key(event_id: &str) -> String {
    format!("{EVENT_PREFIX}{event_id}")
}

const EVENT_PREFIX: &str = "event#";

/// Whether the done record under `key` is kept for good: a timeline event that reached Brevo
/// is never sent again, however long after a path reports it again. Records written before
/// (with the 30-day expiry of the time) lose their expiry when next read.
pub fn is_permanent(key: &str) -> bool {
    key.starts_with(EVENT_PREFIX)
}
