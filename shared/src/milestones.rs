//! Which happening a repeatable milestone is: the record of a ticket's (or conversation's)
//! solves, reopens and ratings, kept in the state table, that gives one happening one event id
//! whichever path reports it.
//!
//! Milestone ids are keyed by the instant the helpdesk gives (see
//! [`SupportEvent::stable_id`]). The webhook and the sync can name one solve a second or two
//! apart (the webhook's event time and the ticket's `solved_at`), so the first id registered
//! for a ticket's solve stands for every report of that solve: a later report of the same kind
//! within [`MATCH_WINDOW`] of a registered one, with no opposite milestone (a reopen between
//! two solves) registered between them, is that same happening. Anything else is a new
//! happening: a second solve after a reopen, a solve on another day.
//!
//! Events sent by earlier versions carry day-keyed ids ([`SupportEvent::day_id`]); a report
//! that matches nothing registered reuses the day id when an event under it was sent and the
//! thread registered nothing that day that could be it, so upgrading sends nothing twice.
//!
//! One small document per thread under `milestones#<thread>`, kept for good like the sent
//! events, written with a revision check (two workers never lose each other's entries).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{EventKind, SupportEvent};
use crate::state::{self, StateError, StateStore};

/// How far apart two reports of one happening can be.
pub const MATCH_WINDOW: Duration = Duration::from_secs(120);

/// Entries kept per thread, newest by instant; older happenings are past any report.
pub const KEPT: usize = 200;

/// Rounds of load, decide and conditional save before a thread that keeps changing fails.
const ATTEMPTS: usize = 5;

/// Key of a thread's milestone record.
pub fn key(thread: &str) -> String {
    format!("milestones#{thread}")
}

/// One registered happening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    kind: EventKind,
    /// Epoch seconds.
    at: i64,
    id: String,
}

/// A thread's registered milestones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    seen: Vec<Seen>,
}

/// What a report is, against what a thread registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// A happening registered before, under this id.
    As(String),
    /// Not registered.
    New,
}

impl Thread {
    /// The registered happening a report of `kind` at `at` is, if any: the nearest of that
    /// kind within [`MATCH_WINDOW`] with no opposite milestone registered between them.
    pub fn find(&self, kind: EventKind, at: DateTime<Utc>) -> Known {
        let at = at.timestamp();
        let window = i64::try_from(MATCH_WINDOW.as_secs()).unwrap_or(i64::MAX);
        self.seen
            .iter()
            .filter(|s| s.kind == kind && s.at.abs_diff(at) <= window.unsigned_abs())
            .filter(|s| !self.opposite_between(kind, s.at, at))
            .min_by_key(|s| s.at.abs_diff(at))
            .map_or(Known::New, |s| Known::As(s.id.clone()))
    }

    /// Whether an opposite of `kind` is registered strictly between `a` and `b`.
    fn opposite_between(&self, kind: EventKind, a: i64, b: i64) -> bool {
        let Some(opposite) = kind.opposite() else {
            return false;
        };
        let (low, high) = (a.min(b), a.max(b));
        self.seen
            .iter()
            .any(|s| s.kind == opposite && s.at > low && s.at < high)
    }

    /// Whether a day-keyed id of an earlier version can stand for a report of `kind` at `at`:
    /// no entry uses it yet, and no opposite milestone was registered earlier that day (the
    /// day's event could then be the one before it).
    fn may_be_legacy(&self, legacy: &str, kind: EventKind, at: DateTime<Utc>) -> bool {
        let day = at.date_naive();
        let opposite = kind.opposite();
        !self.seen.iter().any(|s| {
            s.id == legacy
                || (Some(s.kind) == opposite
                    && s.at < at.timestamp()
                    && DateTime::from_timestamp(s.at, 0).is_some_and(|t| t.date_naive() == day))
        })
    }

    /// Registers a happening; keeps the newest [`KEPT`].
    pub fn register(&mut self, kind: EventKind, at: DateTime<Utc>, id: &str) {
        self.seen.push(Seen {
            kind,
            at: at.timestamp(),
            id: id.to_string(),
        });
        self.seen.sort_by_key(|s| s.at);
        let excess = self.seen.len().saturating_sub(KEPT);
        self.seen.drain(..excess);
    }

    /// How many happenings are registered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// One report to identify: its kind and the id its path gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: EventKind,
    pub id: String,
}

/// Groups reports by thread, for [`identify_thread`]: `(thread, indexes into reports)`, in
/// order of first appearance. Reports that are not instant-keyed milestones (creations,
/// day-keyed ids, ids a helpdesk made up) are in no group: their id stands as it is.
pub fn threads(reports: &[Report]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        let Some((thread, _)) = SupportEvent::milestone_of(&report.id, report.kind) else {
            continue;
        };
        match groups.iter_mut().find(|(t, _)| t == thread) {
            Some((_, members)) => members.push(i),
            None => groups.push((thread.to_string(), vec![i])),
        }
    }
    groups
}

/// The ids of one thread's reports, in order: each a registered happening's id, or its own
/// (now registered). One load and at most one conditional save per round.
pub async fn identify_thread<S: StateStore + ?Sized>(
    store: &S,
    thread: &str,
    reports: &[Report],
) -> Result<Vec<String>, StateError> {
    let key = key(thread);
    for _ in 0..ATTEMPTS {
        let stored = store.load_doc(&key).await?;
        let mut log: Thread = match &stored {
            Some(doc) => serde_json::from_str(&doc.text)
                .map_err(|e| StateError(format!("{key}: unreadable milestone record: {e}")))?,
            None => Thread::default(),
        };
        let mut ids = Vec::with_capacity(reports.len());
        let mut changed = false;
        for report in reports {
            let Some((_, at)) = SupportEvent::milestone_of(&report.id, report.kind) else {
                ids.push(report.id.clone());
                continue;
            };
            if let Known::As(id) = log.find(report.kind, at) {
                ids.push(id);
                continue;
            }
            let legacy = SupportEvent::day_id(thread, report.kind, at);
            let id = if log.may_be_legacy(&legacy, report.kind, at)
                && store.is_done(&state::event_key(&legacy)).await?
            {
                legacy
            } else {
                report.id.clone()
            };
            log.register(report.kind, at, &id);
            changed = true;
            ids.push(id);
        }
        if !changed {
            return Ok(ids);
        }
        let text = serde_json::to_string(&log)
            .map_err(|e| StateError(format!("{key}: writing the milestone record: {e}")))?;
        if store
            .save_doc(&key, stored.map(|d| d.rev), &text, None)
            .await?
        {
            return Ok(ids);
        }
    }
    Err(StateError(format!(
        "{key}: changed by other workers {ATTEMPTS} times in a row"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStateStore;
    use crate::model::Source;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s)
            .single()
            .expect("a time")
    }

    fn report(kind: EventKind, t: DateTime<Utc>) -> Report {
        Report {
            kind,
            id: SupportEvent::stable_id(&Source::Zendesk, "ticket:7", kind, t),
        }
    }

    async fn ids(store: &MemoryStateStore, reports: &[Report]) -> Vec<String> {
        let mut out = vec![String::new(); reports.len()];
        for (thread, members) in threads(reports) {
            let these: Vec<Report> = members.iter().map(|&i| reports[i].clone()).collect();
            let got = identify_thread(store, &thread, &these)
                .await
                .expect("identified");
            for (i, id) in members.into_iter().zip(got) {
                out[i] = id;
            }
        }
        for (i, r) in reports.iter().enumerate() {
            if out[i].is_empty() {
                out[i] = r.id.clone();
            }
        }
        out
    }

    #[tokio::test]
    async fn one_solve_seen_across_midnight_is_one_happening() {
        let store = MemoryStateStore::new();
        let webhook = report(
            EventKind::TicketClosed,
            Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 59)
                .single()
                .expect("a time"),
        );
        let sync = report(EventKind::TicketClosed, at(0, 0, 1));
        let first = ids(&store, std::slice::from_ref(&webhook)).await;
        let second = ids(&store, std::slice::from_ref(&sync)).await;
        assert_eq!(first, vec![webhook.id.clone()]);
        assert_eq!(second, vec![webhook.id]);
    }

    #[tokio::test]
    async fn solve_reopen_solve_on_one_day_are_three_happenings() {
        let store = MemoryStateStore::new();
        let reports = [
            report(EventKind::TicketClosed, at(9, 0, 0)),
            report(EventKind::TicketReopened, at(9, 0, 30)),
            report(EventKind::TicketClosed, at(9, 1, 0)),
        ];
        let got = ids(&store, &reports).await;
        let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), 3, "{got:?}");
        // The sync, later, sees the last solve (a second off): the second solve's id.
        let again = ids(&store, &[report(EventKind::TicketClosed, at(9, 1, 1))]).await;
        assert_eq!(again, vec![got[2].clone()]);
        // Reported again, in any order: the same three ids.
        let mut reversed = reports.to_vec();
        reversed.reverse();
        let mut expected = got.clone();
        expected.reverse();
        assert_eq!(ids(&store, &reversed).await, expected);
    }

    #[tokio::test]
    async fn an_event_sent_under_a_day_id_is_not_sent_again() {
        let store = MemoryStateStore::new();
        let solve = report(EventKind::TicketClosed, at(15, 0, 0));
        let legacy =
            SupportEvent::day_id("zendesk:ticket:7", EventKind::TicketClosed, at(15, 0, 0));
        store
            .complete(&state::event_key(&legacy), None)
            .await
            .expect("stored");
        assert_eq!(
            ids(&store, std::slice::from_ref(&solve)).await,
            vec![legacy.clone()]
        );
        // A reopen, then a second solve that day: a new happening, under its own id.
        let reopen = report(EventKind::TicketReopened, at(16, 0, 0));
        let resolve = report(EventKind::TicketClosed, at(17, 0, 0));
        let got = ids(&store, &[reopen.clone(), resolve.clone()]).await;
        assert_eq!(got, vec![reopen.id, resolve.id]);
        // Creations are not milestones: their id stands.
        let created = report(EventKind::TicketCreated, at(8, 0, 0));
        assert!(threads(std::slice::from_ref(&created)).is_empty());
    }

    #[test]
    fn a_thread_keeps_its_newest_entries() {
        let mut log = Thread::default();
        for i in 0..(KEPT + 5) {
            let t = at(0, 0, 0) + chrono::Duration::hours(i as i64);
            log.register(EventKind::SurveyResponded, t, &format!("r{i}"));
        }
        assert_eq!(log.len(), KEPT);
        assert_eq!(
            log.find(EventKind::SurveyResponded, at(0, 0, 0)),
            Known::New
        );
        let last = at(0, 0, 0) + chrono::Duration::hours((KEPT + 4) as i64);
        assert_eq!(
            log.find(EventKind::SurveyResponded, last),
            Known::As(format!("r{}", KEPT + 4))
        );
    }
}
