//! The `organizations` stream: an organization's change reaches its users.
//!
//! The users stream writes each user's organization as of the user's own change. When only the
//! organization changes (renamed, new tags or fields), no user changes, so this stream follows
//! the organizations: the time-based incremental export
//! (`GET /api/v2/incremental/organizations.json?start_time=`, within the 10-a-minute export
//! limit) gives the organizations changed since the bookmark, and for each one its users are read
//! (`GET /api/v2/organizations/{id}/users.json`, cursor pages of 100) and written with the new
//! organization. One page of the stream is one export page or one page of one organization's
//! users; where it stands travels in the run's cursor ([`Progress`]).
//!
//! A first or `--full` run reads nothing: the users stream already writes every user with its
//! organization, so this stream only sets its bookmark (the run's start) and follows changes
//! from then on. `--since` reads the organizations changed since that time.

use chrono::Duration as TimeDelta;
use serde::{Deserialize, Serialize};

use crate::model::Record;
use crate::sync::{FetchError, Page, PageRequest};

/// Zendesk's time-based exports leave out the last minute; a start time must be older than that.
pub const EXPORT_DELAY: TimeDelta = TimeDelta::seconds(61);

/// Where a run of the stream stands, carried in its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    /// `start_time` of the next export page (unix seconds); the bookmark once the run is done.
    pub(super) start: i64,
    /// Changed organizations whose users are still to be written, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) orgs: Vec<String>,
    /// The users page to read next of the first of `orgs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) users: Option<String>,
    /// Whether the export said `end_of_stream`.
    #[serde(default)]
    pub(super) exported: bool,
}

impl Progress {
    /// Where a page stands: from its cursor, else from where the run starts; `None` for a first
    /// or full run, which reads nothing.
    pub(super) fn of(request: &PageRequest) -> Result<Option<Progress>, FetchError> {
        if let Some(cursor) = &request.cursor {
            return serde_json::from_str(cursor).map(Some).map_err(|e| {
                FetchError::Rejected(format!("unreadable organizations cursor: {e}"))
            });
        }
        let start = match request.since {
            Some(since) => Some(since.timestamp()),
            None => request
                .bookmark
                .as_deref()
                .filter(|_| !request.full)
                .and_then(|b| b.trim().parse::<i64>().ok()),
        };
        Ok(start.map(|start| Progress {
            start: start.clamp(0, (request.run_started_at - EXPORT_DELAY).timestamp()),
            ..Progress::default()
        }))
    }

    /// The page for `records`: continued while organizations or export pages remain, with this
    /// progress as its bookmark.
    pub(super) fn page(&self, read: u64, records: Vec<Record>, skipped: Vec<String>) -> Page {
        let more = !self.orgs.is_empty() || !self.exported;
        Page {
            records,
            read,
            skipped,
            next_cursor: more.then(|| serde_json::to_string(self).unwrap_or_default()),
            bookmark: Some(self.start.to_string()),
            bookmark_now: false,
        }
    }
}

/// A first or full run: nothing to read, the bookmark is where the next run starts.
pub(super) fn first_run(request: &PageRequest) -> Page {
    Page {
        bookmark: Some(
            (request.run_started_at - EXPORT_DELAY)
                .timestamp()
                .to_string(),
        ),
        ..Page::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn request(cursor: Option<&str>, bookmark: Option<&str>, full: bool) -> PageRequest {
        PageRequest {
            stream: "organizations".into(),
            cursor: cursor.map(str::to_string),
            bookmark: bookmark.map(str::to_string),
            full,
            since: None,
            run_started_at: Utc.timestamp_opt(1_736_300_000, 0).single().expect("time"),
            page_size: 100,
        }
    }

    #[test]
    fn progress_travels_in_the_cursor_and_first_runs_read_nothing() {
        assert_eq!(Progress::of(&request(None, None, false)), Ok(None));
        assert_eq!(
            Progress::of(&request(None, Some("1736200000"), true)),
            Ok(None)
        );
        let p = Progress::of(&request(None, Some("1736200000"), false))
            .expect("ok")
            .expect("incremental");
        assert_eq!(p.start, 1_736_200_000);
        // A bookmark in the last minute is moved back: the export refuses recent start times.
        let recent = Progress::of(&request(None, Some("1736299990"), false))
            .expect("ok")
            .expect("incremental");
        assert_eq!(recent.start, 1_736_300_000 - 61);
        let going = Progress {
            start: 1_736_250_000,
            orgs: vec!["1".into(), "2".into()],
            users: Some("abc".into()),
            exported: true,
        };
        let page = going.page(3, vec![], vec![]);
        let cursor = page.next_cursor.expect("more to read");
        assert_eq!(
            Progress::of(&request(Some(&cursor), None, false)),
            Ok(Some(going))
        );
        assert_eq!(page.bookmark.as_deref(), Some("1736250000"));
        let done = Progress {
            start: 1_736_260_000,
            exported: true,
            ..Progress::default()
        };
        assert_eq!(done.page(0, vec![], vec![]).next_cursor, None);
        assert!(Progress::of(&request(Some("{not json"), None, false)).is_err());
        assert_eq!(
            first_run(&request(None, None, false)).bookmark.as_deref(),
            Some("1736299939")
        );
    }
}
