//! The `companies` stream (opt-in, `sync.companies: true`): a company's change reaches its
//! contacts.
//!
//! The contacts stream writes each contact with its first company as of the contact's own
//! change; when only the company changes (a new plan, a renamed company, new custom
//! attributes), no contact changes. Intercom has no changed-since filter for companies, so a run
//! of this stream scrolls over every company (`GET /companies/scroll`, the only listing that goes
//! past 10,000 companies, with read scopes) and keeps those updated since the watermark; then, for
//! each of them, reads its contacts (`GET /companies/{id}/contacts`, 50 a page) and writes those
//! whose first company it is, with the company's new attributes. Where a run stands travels in its
//! cursor ([`Progress`]).
//!
//! Cost per run: one call per page of the scroll (every company, changed or not), plus one per
//! page of each changed company's contacts. A first or `--full` run reads nothing: the contacts
//! stream already writes every contact with its company; this stream only sets its watermark.
//!
//! Intercom allows one open scroll per app, expiring after a minute unused: an expired scroll
//! (404) starts the scan again; a scroll held by something else (400) makes the page wait.

use chrono::Duration as TimeDelta;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use serde_json::Value;

use super::fields::{text, time};
use super::sync::{IntercomReader, contact_to_record};
use super::webhook::{first_company_id, with_company};
use crate::model::Record;
use crate::sync::{FetchError, Page, PageRequest};

/// Changed companies a run takes on at most; the oldest changes first, and the next run's
/// watermark stops at the last one taken, so a bigger wave of changes takes several runs.
pub const MAX_CHANGED: usize = 2_000;
/// Contacts asked for per page of a company's contacts.
pub const CONTACTS_PAGE: u32 = 50;
/// Times a run starts its scroll again after it expired before it gives up scanning.
pub const MAX_RESTARTS: u32 = 3;
/// The search-index lag the contacts stream also allows for.
pub const LAG: TimeDelta = TimeDelta::minutes(5);

/// Where a run of the stream stands, carried in its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    /// Companies updated at or after this (unix seconds) are changed.
    pub(super) since: i64,
    /// The scroll to continue; `None` before the first scroll page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scroll: Option<String>,
    /// Whether the scroll reached its end.
    #[serde(default)]
    pub(super) scanned: bool,
    /// Changed companies found so far: `(updated_at, id)`, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) changed: Vec<(i64, String)>,
    /// The page of the first changed company's contacts to read next (1-based).
    #[serde(default)]
    pub(super) contacts_page: u32,
    /// The watermark for the next run.
    pub(super) next: i64,
    /// Times the scroll expired and was started again.
    #[serde(default)]
    pub(super) restarts: u32,
}

impl Progress {
    /// Where a page stands: from its cursor, else from the watermark; `None` for a first or full
    /// run, which reads nothing.
    pub(super) fn of(request: &PageRequest) -> Result<Option<Progress>, FetchError> {
        if let Some(cursor) = &request.cursor {
            return serde_json::from_str(cursor)
                .map(Some)
                .map_err(|e| FetchError::Rejected(format!("unreadable companies cursor: {e}")));
        }
        let since = match request.since {
            Some(since) => Some(since.timestamp()),
            None => request
                .bookmark
                .as_deref()
                .filter(|_| !request.full)
                .and_then(|b| b.trim().parse::<i64>().ok()),
        };
        Ok(since.map(|since| Progress {
            since,
            next: watermark(request),
            ..Progress::default()
        }))
    }

    /// Takes in the changed companies of one scroll page (`(updated_at, id)`), keeping the
    /// [`MAX_CHANGED`] oldest; when some are left for a later run, the next watermark stops at
    /// the newest taken.
    pub(super) fn found(&mut self, companies: impl IntoIterator<Item = (i64, String)>) {
        self.changed
            .extend(companies.into_iter().filter(|(at, _)| *at >= self.since));
        self.changed.sort();
        self.changed.dedup();
        if self.changed.len() > MAX_CHANGED {
            self.changed.truncate(MAX_CHANGED);
            if let Some((at, _)) = self.changed.last() {
                self.next = self.next.min(*at);
            }
        }
    }

    /// The page for `records`: continued while the scroll or changed companies remain, with the
    /// next run's watermark as its bookmark.
    pub(super) fn page(&self, read: u64, records: Vec<Record>, skipped: Vec<String>) -> Page {
        let more = !self.scanned || !self.changed.is_empty();
        Page {
            records,
            read,
            skipped,
            next_cursor: more.then(|| serde_json::to_string(self).unwrap_or_default()),
            bookmark: Some(self.next.to_string()),
            bookmark_now: false,
        }
    }
}

/// The watermark a run started now leaves for the next one.
fn watermark(request: &PageRequest) -> i64 {
    (request.run_started_at - LAG).timestamp()
}

/// A first or full run: nothing to read, the watermark is where the next run starts.
pub(super) fn first_run(request: &PageRequest) -> Page {
    Page {
        bookmark: Some(watermark(request).to_string()),
        ..Page::default()
    }
}

impl IntercomReader {
    /// One page of the `companies` stream.
    pub(super) async fn company_changes(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let Some(mut progress) = Progress::of(request)? else {
            return Ok(first_run(request));
        };
        if !progress.scanned {
            let query: Vec<(&str, String)> = progress
                .scroll
                .iter()
                .map(|p| ("scroll_param", p.clone()))
                .collect();
            let answer = match self
                .find("/companies/scroll", "/companies/scroll", &query)
                .await
            {
                Ok(answer) => answer,
                // Another scroll of this app is open: wait for it to expire.
                Err(FetchError::Rejected(reason)) if reason.contains("400") => {
                    tracing::warn!(%reason, "intercom company scroll busy; waiting a minute");
                    return Err(FetchError::RateLimited(Duration::from_secs(60)));
                }
                Err(e) => return Err(e),
            };
            let Some(answer) = answer else {
                // The scroll expired (unused for a minute): scan again from the start, a few
                // times; then go on with the companies found so far (the rest wait for the
                // next run, whose watermark stops before them).
                progress.scroll = None;
                progress.restarts += 1;
                if progress.restarts > MAX_RESTARTS {
                    progress.scanned = true;
                    progress.next = progress.next.min(progress.since);
                }
                return Ok(progress.page(0, vec![], vec![]));
            };
            let list = answer
                .get("data")
                .or_else(|| answer.get("companies"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut found = Vec::new();
            for company in &list {
                if let (Some(id), Some(at)) =
                    (text(company.get("id")), time(company.get("updated_at")))
                {
                    if at.timestamp() >= progress.since {
                        self.companies.put(id.clone(), Some(company.clone()));
                    }
                    found.push((at.timestamp(), id));
                }
            }
            progress.found(found);
            progress.scroll = text(answer.get("scroll_param"));
            progress.scanned = list.is_empty() || progress.scroll.is_none();
            if progress.scanned {
                progress.scroll = None;
            }
            return Ok(progress.page(list.len() as u64, vec![], vec![]));
        }
        let Some((changed_at, id)) = progress.changed.first().cloned() else {
            return Ok(progress.page(0, vec![], vec![]));
        };
        let page_no = progress.contacts_page.max(1);
        let query = [
            ("per_page", CONTACTS_PAGE.to_string()),
            ("page", page_no.to_string()),
        ];
        let path = format!("/companies/{id}/contacts");
        let answer = self
            .find(&path, "/companies/{id}/contacts", &query)
            .await?
            .unwrap_or(Value::Null);
        let contacts = answer
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // The company as changed (another process may hold an older copy, or none).
        let company = match self.companies.get(&id).flatten() {
            Some(c) if time(c.get("updated_at")).is_some_and(|t| t.timestamp() >= changed_at) => {
                Some(c)
            }
            _ => {
                let read = self
                    .find(&format!("/companies/{id}"), "/companies/{id}", &[])
                    .await?;
                self.companies.put(id.clone(), read.clone());
                read
            }
        };
        let changed = company.as_ref().and_then(|c| time(c.get("updated_at")));
        let (mut records, mut skipped) = (Vec::new(), Vec::new());
        for contact in &contacts {
            // Only contacts whose (first) company this is take its attributes.
            if first_company_id(contact).as_deref() != Some(id.as_str()) {
                continue;
            }
            match contact_to_record(contact) {
                Ok(mut record) => {
                    if let (Some(profile), Some(company)) = (record.profile.as_mut(), &company) {
                        with_company(profile, company);
                    }
                    record.observed_no_earlier_than(changed);
                    records.push(record);
                }
                Err(reason) => skipped.push(reason),
            }
        }
        if self.contact_tags {
            self.attach_tags(&mut records).await;
        }
        let more = answer
            .get("pages")
            .and_then(|p| p.get("next"))
            .is_some_and(|n| !n.is_null())
            && !contacts.is_empty();
        if more {
            progress.contacts_page = page_no + 1;
        } else {
            progress.changed.remove(0);
            progress.contacts_page = 1;
        }
        Ok(progress.page(contacts.len() as u64, records, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn request(bookmark: Option<&str>, full: bool) -> PageRequest {
        PageRequest {
            stream: "companies".into(),
            cursor: None,
            bookmark: bookmark.map(str::to_string),
            full,
            since: None,
            run_started_at: Utc.timestamp_opt(1_736_300_000, 0).single().expect("time"),
            page_size: 150,
        }
    }

    #[test]
    fn a_wave_of_changes_is_taken_oldest_first_over_several_runs() {
        assert_eq!(Progress::of(&request(None, false)), Ok(None));
        assert_eq!(Progress::of(&request(Some("100"), true)), Ok(None));
        let mut p = Progress::of(&request(Some("1000"), false))
            .expect("ok")
            .expect("incremental");
        assert_eq!((p.since, p.next), (1_000, 1_736_300_000 - 300));
        p.found((0..3_000).map(|i| (990 + i, format!("c{i}"))));
        // Ten were older than the watermark; of the rest, the oldest 2,000.
        assert_eq!(p.changed.len(), MAX_CHANGED);
        assert_eq!(p.changed[0], (1_000, "c10".to_string()));
        assert_eq!(p.next, 2_999);
        let page = p.page(3_000, vec![], vec![]);
        assert_eq!(page.bookmark.as_deref(), Some("2999"));
        let cursor = page.next_cursor.expect("more");
        let again = PageRequest {
            cursor: Some(cursor),
            ..request(None, false)
        };
        assert_eq!(Progress::of(&again), Ok(Some(p)));
        assert_eq!(
            first_run(&request(None, false)).bookmark.as_deref(),
            Some("1736299700")
        );
    }
}
