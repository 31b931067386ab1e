//! Batch sync: reading helpdesk APIs one page at a time.
//!
//! A [`SourceReader`] knows a helpdesk's streams (`tickets`, `users`, …) and fetches exactly one
//! page per call, within the helpdesk's rate limit. It is stateless between calls: where to start
//! comes in the [`PageRequest`] (the stream state kept in DynamoDB by the sync function), and where
//! to go next goes out in the [`Page`].

pub mod limiter;
pub mod readers;

pub use limiter::{Limiter, Rate};
pub use readers::{RetryPolicy, sync_client};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{Record, Source};

/// What the sync function asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub stream: String,
    /// The API's cursor for the next page of this run; `None` on the run's first page.
    pub cursor: Option<String>,
    /// Where the previous completed run left off (reader-defined: an API cursor or a watermark).
    /// `None` on the first run, and on a `--full` run.
    pub bookmark: Option<String>,
    /// Read everything, ignoring the bookmark.
    pub full: bool,
    /// Read from this time instead of the bookmark (a run started with `--since`); wins over
    /// `full`.
    pub since: Option<DateTime<Utc>>,
    /// When this run started (watermark for the next run of time-filtered streams).
    pub run_started_at: DateTime<Utc>,
    /// Records per page to ask for (the reader caps it at the API's maximum).
    pub page_size: u32,
}

/// One page read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// Canonical records, one per person observation (a ticket's requester, a customer, …).
    pub records: Vec<Record>,
    /// Source records read from the API on this page (before filtering).
    pub read: u64,
    /// Records that could not be synced, with the reason (no identifier Brevo accepts, …).
    pub skipped: Vec<String>,
    /// Cursor of the next page; `None` when this run is complete.
    pub next_cursor: Option<String>,
    /// The bookmark for the next run.
    pub bookmark: Option<String>,
    /// Store the bookmark with this page already (API cursors that stay valid, like Zendesk's
    /// after_cursor) rather than only when the run completes (time watermarks).
    pub bookmark_now: bool,
}

/// A failure reading a page. Nothing is lost: the page is read again later.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The helpdesk asked to wait (429 with Retry-After, or its rate headers say so).
    #[error("helpdesk rate limit: retry after {0:?}")]
    RateLimited(Duration),
    #[error("helpdesk API unavailable: {0}")]
    Transient(String),
    /// Bad credentials, missing scope, unknown subdomain: an operator must act.
    #[error("helpdesk API refused the request: {0}")]
    Rejected(String),
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
}

/// Reads one helpdesk's API.
#[async_trait]
pub trait SourceReader: Send + Sync {
    fn source(&self) -> Source;
    /// The streams this reader offers, in the order a run should start them.
    fn streams(&self) -> &'static [&'static str];
    /// Fetches one page.
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, FetchError>;
    /// The limiter of the helpdesk account it reads, which a shared budget can be attached to
    /// ([`Limiter::attach`]); none for a reader without one.
    fn account_limiter(&self) -> Option<&std::sync::Arc<Limiter>> {
        None
    }
    /// Limiters of lanes with a limit of their own besides the account's, by lane name, which
    /// a lane of the shared budget can be attached to ([`SharedBudget::lane`]).
    fn lane_limiters(&self) -> Vec<(&'static str, &std::sync::Arc<Limiter>)> {
        Vec::new()
    }
}
