//! Generic pull sources: a helpdesk's REST API read by the batch sync as the configuration
//! file's `connectors.generic:<name>.pull` block describes it — the API's base URL and
//! credentials, its rate limit, and up to two resources (`contacts`, `tickets`), each with its
//! path, where the items are in the answer, how it pages, how it filters by change time, and
//! the same `fields` / `events` a generic webhook uses to read one item.
//!
//! The reader ([`super::PullReader`]) goes through the same sync function as the built-in
//! streams: leases, cursors, pacing, `Retry-After`, crash resume.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::GenericFields;
use crate::model::EventKind;
use crate::sync::Rate;

/// The streams a pull source can have, in the order a run starts them: people first, so that
/// a ticket's requester is a contact before their ticket events.
pub const STREAMS: [&str; 2] = ["contacts", "tickets"];

/// A pull source as the file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    /// The API root (`https://acme.freshdesk.com/api/v2`); resource paths are appended.
    pub base_url: String,
    pub auth: PullAuth,
    /// The account's request rate, shared by every stream of the source.
    pub rate: Rate,
    /// By stream name (one of [`STREAMS`]).
    pub resources: BTreeMap<String, PullResource>,
}

impl PullSource {
    /// The streams this source has, in [`STREAMS`] order.
    pub fn streams(&self) -> &'static [&'static str] {
        match (
            self.resources.contains_key(STREAMS[0]),
            self.resources.contains_key(STREAMS[1]),
        ) {
            (true, true) => &STREAMS,
            (true, false) => &STREAMS[..1],
            (false, true) => &STREAMS[1..],
            (false, false) => &[],
        }
    }
}

/// How requests to the API authenticate. Only the name of the variable holding the secret is
/// configured; [`crate::config::Settings`] resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullAuth {
    /// `Authorization: Bearer <token>`.
    Bearer { token_env: String },
    /// `Authorization: Basic base64(<user:password>)` (Freshdesk: `<api key>:X`).
    Basic { credentials_env: String },
    /// The secret as the value of a header of the API's choosing (`X-Api-Key`).
    Header { name: String, value_env: String },
}

impl PullAuth {
    /// The variable (or secret key) holding the token, credentials or header value.
    pub fn secret_var(&self) -> &str {
        match self {
            PullAuth::Bearer { token_env } => token_env,
            PullAuth::Basic { credentials_env } => credentials_env,
            PullAuth::Header { value_env, .. } => value_env,
        }
    }
}

/// One listed resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResource {
    /// Appended to the base URL (`/contacts`).
    pub path: String,
    /// Fixed query parameters sent with every first page (`include: requester`).
    pub query: BTreeMap<String, String>,
    /// JSON pointer to the array of items in an answer; `""` when the answer is the array.
    pub items: String,
    pub pagination: Pagination,
    /// The query parameter that asks for items changed since a time, when the API has one.
    pub updated_since: Option<UpdatedSince>,
    /// JSON pointer to an item's change time: items changed before the run's starting point
    /// are skipped (what an API without `updated_since` needs), and the time a ticket event
    /// falls back to.
    pub updated_at: Option<String>,
    /// How one item is read: the same pointers as a generic webhook's `fields`.
    pub fields: GenericFields,
    /// The item's `fields.event_type` value -> canonical event, as for webhooks.
    pub events: BTreeMap<String, Option<EventKind>>,
    /// Per canonical event, the pointer to its own time (a ticket's resolution time for
    /// `ticket.closed`), before `fields.event_time` and `updated_at`.
    pub event_times: BTreeMap<EventKind, String>,
}

/// How a resource pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// `?<param>=1,2,3…` (from `first`); the run ends at a page shorter than `size`.
    Page {
        param: String,
        first: u64,
        size_param: Option<String>,
        size: u32,
    },
    /// `?<param>=0,size,2·size…`; the run ends at a page shorter than `size`.
    Offset {
        param: String,
        size_param: Option<String>,
        size: u32,
    },
    /// The answer holds the next page's URL at a pointer (HAL `/_links/next/href`); the run
    /// ends when it has none. The URL must stay on the base URL's origin.
    NextLink {
        next: String,
        size_param: Option<String>,
        size: u32,
    },
    /// The answer holds an opaque cursor at a pointer, sent back as `?<param>=`; the run ends
    /// when it has none.
    Cursor {
        param: String,
        next: String,
        size_param: Option<String>,
        size: u32,
    },
}

impl Pagination {
    /// The page size asked for (and the query parameter naming it, if the API takes one).
    pub fn size(&self) -> (Option<&str>, u32) {
        match self {
            Pagination::Page {
                size_param, size, ..
            }
            | Pagination::Offset {
                size_param, size, ..
            }
            | Pagination::NextLink {
                size_param, size, ..
            }
            | Pagination::Cursor {
                size_param, size, ..
            } => (size_param.as_deref(), *size),
        }
    }
}

/// The query parameter filtering by change time, and how it writes the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatedSince {
    pub param: String,
    pub format: TimeFormat,
    /// How far before the previous run's start the next run asks from (clock skew between the
    /// API's servers and ours; items read twice are written once downstream).
    pub overlap: Duration,
}

/// How a time is written in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2025-01-08T10:00:00Z`.
    Rfc3339,
    /// Unix seconds.
    Unix,
    /// Unix milliseconds.
    UnixMs,
    /// `2025-01-08` (APIs that filter by day; the day is read whole again).
    Date,
}

impl TimeFormat {
    /// The names a file may use.
    pub const NAMES: [&'static str; 4] = ["rfc3339", "unix", "unix_ms", "date"];

    pub fn from_name(name: &str) -> Option<TimeFormat> {
        match name {
            "rfc3339" => Some(TimeFormat::Rfc3339),
            "unix" => Some(TimeFormat::Unix),
            "unix_ms" => Some(TimeFormat::UnixMs),
            "date" => Some(TimeFormat::Date),
            _ => None,
        }
    }

    /// `at` as this format writes it.
    pub fn write(self, at: DateTime<Utc>) -> String {
        match self {
            TimeFormat::Rfc3339 => at.to_rfc3339_opts(SecondsFormat::Secs, true),
            TimeFormat::Unix => at.timestamp().to_string(),
            TimeFormat::UnixMs => at.timestamp_millis().to_string(),
            TimeFormat::Date => at.format("%Y-%m-%d").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_written_as_the_api_reads_them() {
        let at = Utc
            .with_ymd_and_hms(2025, 1, 8, 10, 0, 0)
            .single()
            .expect("a time");
        let written: Vec<String> = TimeFormat::NAMES
            .iter()
            .map(|n| TimeFormat::from_name(n).expect("a format").write(at))
            .collect();
        assert_eq!(
            written,
            [
                "2025-01-08T10:00:00Z",
                "1736330400",
                "1736330400000",
                "2025-01-08"
            ]
        );
        assert_eq!(TimeFormat::from_name("iso"), None);
    }
}
