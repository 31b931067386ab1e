//! Who carries a helpdesk tag, per contact.
//!
//! A tag reaches a contact from several holders: the person's own tags (Intercom contact tags)
//! and the tags of each of their tickets and conversations. A `tag_lists` entry puts the contact
//! in a Brevo list while *anything* of theirs carries the tag, so removing a tag from one holder
//! takes the contact off the list only when no other holder still carries it.
//!
//! The contact's ledger keeps, for each tag a `tag_lists` entry maps (only those: the ledger item
//! stays small), every holder with the source time of its last change and whether it carries the
//! tag. Like the rest of the ledger the merge does not depend on the order of observations: a
//! change older than the one known is ignored, and a holder's complete set of tags (a synced
//! ticket's tags, a synced contact's tags) also outdates older additions it does not include.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Record;

/// The holder of a record's tags when the record names none: the person.
pub const PERSON: &str = "contact";
/// Holders no longer carrying a tag that are remembered per tag (the newest are kept).
pub const MAX_DROPPED: usize = 50;
/// Holders whose complete set of tags is remembered (the newest are kept).
pub const MAX_SETS: usize = 1000;

/// What one record says of its holder's tags, reduced to the tags that map to a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    /// `contact`, `ticket:<id>`, `conversation:<id>`.
    pub holder: String,
    pub at: DateTime<Utc>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The holder's complete set, when the record gives it: what it carried before and does
    /// not carry now is removed.
    pub now: Option<Vec<String>>,
}

impl TagChange {
    /// The change `record` makes to the tags `mapped` accepts; `None` when it makes none.
    pub fn of(record: &Record, mapped: impl Fn(&str) -> bool) -> Option<TagChange> {
        let keep = |tags: &[String]| -> Vec<String> {
            let set: BTreeSet<String> = tags
                .iter()
                .filter(|t| mapped(t))
                .map(|t| normal(t))
                .collect();
            set.into_iter().collect()
        };
        let change = TagChange {
            holder: record
                .tag_holder
                .clone()
                .unwrap_or_else(|| PERSON.to_string()),
            at: record.observed_at,
            added: keep(&record.tags_added),
            removed: keep(&record.tags_removed),
            now: record.tags_now.as_deref().map(keep),
        };
        let empty = change.added.is_empty() && change.removed.is_empty() && change.now.is_none();
        (!empty).then_some(change)
    }
}

/// The tag as kept: trimmed and lowercase (`tag_lists` matches tags without regard to case).
fn normal(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// The holders of each tag, and when each holder's complete set was last seen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TagHolders {
    /// Tag → holder → (time of its last change, whether it carries the tag).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, BTreeMap<String, (DateTime<Utc>, bool)>>,
    /// Holder → time of its newest complete set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sets: BTreeMap<String, DateTime<Utc>>,
}

impl TagHolders {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.sets.is_empty()
    }

    /// Takes in one record's change.
    pub fn observe(&mut self, change: &TagChange) {
        let holder = change.holder.as_str();
        let at = change.at;
        if let Some(now) = &change.now {
            self.newer_set(holder, at);
            for tag in now {
                self.set(tag, holder, at, true);
            }
        }
        for tag in &change.added {
            self.set(tag, holder, at, true);
        }
        for tag in &change.removed {
            self.set(tag, holder, at, false);
        }
        self.prune();
    }

    /// Takes in what another ledger of the same person knows (its contact moved to this one).
    pub fn absorb(&mut self, other: &TagHolders) {
        for (holder, at) in &other.sets {
            self.newer_set(holder, *at);
        }
        for (tag, holders) in &other.tags {
            self.tags.entry(tag.clone()).or_default();
            for (holder, (at, carries)) in holders {
                self.set(tag, holder, *at, *carries);
            }
        }
        self.prune();
    }

    /// Whether anything is known of `tag` (so its list can follow it).
    pub fn knows(&self, tag: &str) -> bool {
        self.tags.contains_key(&normal(tag))
    }

    /// Whether some holder carries `tag`.
    pub fn carried(&self, tag: &str) -> bool {
        self.tags
            .get(&normal(tag))
            .is_some_and(|holders| holders.values().any(|(_, carries)| *carries))
    }

    /// A complete set of `holder`'s tags seen at `at`: when it is the newest, what the holder
    /// was known to carry or not before it is forgotten (the set says it all).
    fn newer_set(&mut self, holder: &str, at: DateTime<Utc>) {
        if self.sets.get(holder).is_some_and(|newest| *newest >= at) {
            return;
        }
        self.sets.insert(holder.to_string(), at);
        for holders in self.tags.values_mut() {
            if holders.get(holder).is_some_and(|(t, _)| *t < at) {
                holders.remove(holder);
            }
        }
    }

    /// Records the holder's state of `tag` at `at`, unless a newer one (or a newer complete
    /// set) is known; at the same time, carrying wins, whatever the order. The tag is known
    /// from then on either way.
    fn set(&mut self, tag: &str, holder: &str, at: DateTime<Utc>, carries: bool) {
        let outdated = self.sets.get(holder).is_some_and(|newest| at < *newest);
        let holders = self.tags.entry(normal(tag)).or_default();
        if outdated {
            return;
        }
        let state = holders.entry(holder.to_string()).or_insert((at, carries));
        if (at, carries) > *state {
            *state = (at, carries);
        }
    }

    /// Forgets the oldest holders that no longer carry a tag, and the oldest complete sets.
    fn prune(&mut self) {
        for holders in self.tags.values_mut() {
            let mut dropped: Vec<(DateTime<Utc>, String)> = holders
                .iter()
                .filter(|(_, (_, carries))| !carries)
                .map(|(h, (at, _))| (*at, h.clone()))
                .collect();
            if dropped.len() > MAX_DROPPED {
                dropped.sort();
                for (_, holder) in dropped.iter().take(dropped.len() - MAX_DROPPED) {
                    holders.remove(holder);
                }
            }
        }
        if self.sets.len() > MAX_SETS {
            let mut by_age: Vec<(DateTime<Utc>, String)> =
                self.sets.iter().map(|(h, at)| (*at, h.clone())).collect();
            by_age.sort();
            for (_, holder) in by_age.iter().take(by_age.len() - MAX_SETS) {
                self.sets.remove(holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_736_294_400 + s, 0)
            .single()
            .expect("time")
    }

    fn change(holder: &str, at: i64, added: &[&str], removed: &[&str]) -> TagChange {
        TagChange {
            holder: holder.into(),
            at: t(at),
            added: added.iter().map(|s| s.to_string()).collect(),
            removed: removed.iter().map(|s| s.to_string()).collect(),
            now: None,
        }
    }

    fn set(holder: &str, at: i64, now: &[&str]) -> TagChange {
        TagChange {
            now: Some(now.iter().map(|s| s.to_string()).collect()),
            ..change(holder, at, &[], &[])
        }
    }

    #[test]
    fn a_tag_stays_while_any_holder_carries_it() {
        let mut h = TagHolders::default();
        h.observe(&change(PERSON, 1, &["vip"], &[]));
        h.observe(&set("conversation:7", 2, &["vip", "billing"]));
        assert!(h.carried("VIP") && h.carried("billing"));
        // The contact's own tag goes; the conversation still carries it.
        h.observe(&change(PERSON, 3, &[], &["vip"]));
        assert!(h.carried("vip"));
        // The conversation's tags are read again without it: nothing carries it now.
        h.observe(&set("conversation:7", 4, &["billing"]));
        assert!(!h.carried("vip") && h.knows("vip"));
        assert!(h.carried("billing"));
        assert!(!h.knows("churn"));
    }

    #[test]
    fn older_observations_do_not_undo_newer_ones_in_any_order() {
        let changes = [
            change(PERSON, 1, &["vip"], &[]),
            change(PERSON, 5, &[], &["vip"]),
            set("ticket:1", 3, &["vip"]),
            set("ticket:1", 6, &[]),
            // An addition the later complete set does not include.
            change("ticket:1", 4, &["churn"], &[]),
            change("ticket:2", 2, &["churn"], &[]),
        ];
        let mut orders = vec![changes.to_vec()];
        let mut reversed = changes.to_vec();
        reversed.reverse();
        orders.push(reversed);
        orders.push(vec![
            changes[3].clone(),
            changes[0].clone(),
            changes[4].clone(),
            changes[2].clone(),
            changes[5].clone(),
            changes[1].clone(),
        ]);
        let results: Vec<TagHolders> = orders
            .iter()
            .map(|order| {
                let mut h = TagHolders::default();
                for c in order {
                    h.observe(c);
                }
                h
            })
            .collect();
        for h in &results {
            assert!(!h.carried("vip"), "{h:?}");
            assert!(h.carried("churn"), "ticket 2 carries it: {h:?}");
            assert_eq!(h, &results[0]);
        }
    }

    #[test]
    fn only_mapped_tags_are_kept_and_dropped_holders_are_bounded() {
        let record = Record {
            tags_added: vec!["VIP ".into(), "other".into()],
            tags_now: Some(vec!["billing".into(), "noise".into()]),
            tag_holder: Some("ticket:9".into()),
            ..Default::default()
        };
        let c = TagChange::of(&record, |t| {
            ["vip", "billing"].contains(&t.trim().to_lowercase().as_str())
        })
        .expect("a change");
        assert_eq!(c.holder, "ticket:9");
        assert_eq!(c.added, vec!["vip".to_string()]);
        assert_eq!(c.now, Some(vec!["billing".to_string()]));
        assert_eq!(TagChange::of(&Record::default(), |_| true), None);

        // A complete set without the tag forgets the holder; the tag stays known.
        let mut h = TagHolders::default();
        h.observe(&set("ticket:1", 1, &["vip"]));
        h.observe(&set("ticket:1", 2, &[]));
        assert!(h.tags["vip"].is_empty() && h.knows("vip") && !h.carried("vip"));
        // Removals are remembered for the newest holders only.
        for n in 0..(MAX_DROPPED as i64 + 20) {
            h.observe(&change(&format!("ticket:{n}"), n + 10, &["vip"], &[]));
            h.observe(&change(&format!("ticket:{n}"), n + 11, &[], &["vip"]));
        }
        assert_eq!(h.tags["vip"].len(), MAX_DROPPED);
        assert!(!h.carried("vip"));
    }
}
