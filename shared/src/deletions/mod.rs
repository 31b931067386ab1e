//! What a person deleted in a helpdesk does to their Brevo contact: the `deletions` policy of
//! the configuration file, and the decision it makes for one contact.
//!
//! A helpdesk reports a deletion (Zendesk `user.deleted` / `user.active_changed` to inactive,
//! Intercom `contact.deleted` / `contact.archived`, the Gorgias events feed's
//! `customer-deleted`, a generic source's event mapped to `person.deleted`) as a deletion
//! record ([`crate::model::Presence::Deleted`]). The upsert function then, by the policy:
//!
//! - `ignore`: leaves Brevo as it is (counted and logged, nothing written);
//! - `unlink` (the default): clears the helpdesk's id attribute on the contact and takes it off
//!   the source's all-contacts list, in one `PUT /v3/contacts/{identifier}`; the contact, its
//!   other attributes and its timeline stay;
//! - `delete`: deletes the contact (`DELETE /v3/contacts/{identifier}`) and deskbridge's ledger
//!   of it, but only when deskbridge created the contact (Brevo's `createdAt` is no earlier than
//!   deskbridge's first write of it) and no other helpdesk still knows the person (no other
//!   source's id attribute holds a value); otherwise it unlinks, and says why.
//!
//! In every case the person's index in the state table keeps the deletion: later records of the
//! person (a sync page read before the deletion, a ticket of theirs updated afterwards) are
//! dropped, so nothing brings the contact back — until the helpdesk reports the person active
//! again ([`crate::model::Presence::Restored`]) after the deletion.

use chrono::Duration as TimeDelta;
use serde_json::Value;

pub mod policy;

pub use crate::brevo::ContactFacts;
use crate::ledger::Ledger;
use crate::mapping::Mapping;
use crate::model::Source;
pub use policy::Deletions;

/// How far Brevo's clock may be behind deskbridge's when a contact's creation time is compared
/// with deskbridge's first write of it.
pub const CLOCK_ALLOWANCE: TimeDelta = TimeDelta::seconds(2);

/// What one deletion does to the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delete the contact.
    Delete,
    /// Unlink it; with `Some(reason)` when the policy asked to delete and could not.
    Unlink(Option<String>),
}

/// The id attribute of `source`: the attribute its `id` field rule writes, else its default
/// (`ZENDESK_ID`, `CINNOX_ID`).
pub fn id_attribute(mapping: &Mapping, source: &Source) -> String {
    mapping
        .source(source)
        .field_mapping
        .iter()
        .find(|rule| rule.path == "id")
        .map(|rule| rule.attribute.clone())
        .unwrap_or_else(|| source.id_attribute())
}

/// The id attributes of every source the mapping knows but `source`.
fn other_id_attributes(mapping: &Mapping, source: &Source) -> Vec<String> {
    let own = id_attribute(mapping, source);
    let mut out: Vec<String> = mapping
        .sources
        .keys()
        .filter_map(|name| name.parse::<Source>().ok())
        .filter(|s| s != source)
        .map(|s| id_attribute(mapping, &s))
        .filter(|a| *a != own)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn holds_value(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// Whether Brevo's contact was created by deskbridge: created no earlier than deskbridge's first
/// write of its ledger (less [`CLOCK_ALLOWANCE`]). Unknown either way is "no".
pub fn created_by_deskbridge(ledger: &Ledger, facts: &ContactFacts) -> bool {
    match (ledger.since, facts.created_at) {
        (Some(since), Some(created)) => created + CLOCK_ALLOWANCE >= since,
        _ => false,
    }
}

/// Under `delete`, what a deletion of `source`'s person does to the contact deskbridge knows as
/// `ledger` and Brevo as `facts` (`None`: Brevo has no such contact).
pub fn decide(
    mapping: &Mapping,
    source: &Source,
    ledger: &Ledger,
    facts: &ContactFacts,
) -> Outcome {
    if !created_by_deskbridge(ledger, facts) {
        return Outcome::Unlink(Some(
            "the contact was not created by deskbridge (it existed before, or its creation time \
             is unknown)"
                .into(),
        ));
    }
    let others: Vec<String> = other_id_attributes(mapping, source)
        .into_iter()
        .filter(|a| {
            holds_value(facts.attributes.get(a))
                || holds_value(ledger.attributes.get(a).map(|s| &s.value))
        })
        .collect();
    if others.is_empty() {
        Outcome::Delete
    } else {
        Outcome::Unlink(Some(format!(
            "another helpdesk still knows the person ({})",
            others.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ledger::Stamped;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    fn ledger_since(since: &str) -> Ledger {
        Ledger {
            since: Some(at(since)),
            ..Ledger::default()
        }
    }

    #[test]
    fn policies_parse_and_default_to_unlink() {
        assert_eq!(Deletions::default(), Deletions::Unlink);
        assert_eq!(Deletions::parse(" Delete "), Some(Deletions::Delete));
        assert_eq!(Deletions::parse("ignore"), Some(Deletions::Ignore));
        assert_eq!(Deletions::parse("erase"), None);
        for name in Deletions::NAMES {
            assert_eq!(
                Deletions::parse(name).map(|p| p.to_string()),
                Some(name.into())
            );
        }
    }

    #[test]
    fn only_a_contact_created_after_deskbridges_first_write_counts_as_its_own() {
        let ledger = ledger_since("2026-12-01T10:00:00Z");
        let created = |t: &str| ContactFacts {
            created_at: Some(at(t)),
            ..ContactFacts::default()
        };
        assert!(created_by_deskbridge(
            &ledger,
            &created("2026-12-01T10:00:01Z")
        ));
        assert!(created_by_deskbridge(
            &ledger,
            &created("2026-12-01T09:59:59Z")
        ));
        assert!(!created_by_deskbridge(
            &ledger,
            &created("2026-11-30T08:00:00Z")
        ));
        assert!(!created_by_deskbridge(
            &Ledger::default(),
            &created("2026-12-01T10:00:01Z")
        ));
        assert!(!created_by_deskbridge(&ledger, &ContactFacts::default()));
    }

    #[test]
    fn a_contact_another_helpdesk_knows_is_unlinked_not_deleted() {
        let mapping = Mapping::default();
        let ledger = ledger_since("2026-12-01T10:00:00Z");
        let mut facts = ContactFacts {
            created_at: Some(at("2026-12-01T10:00:01Z")),
            attributes: BTreeMap::from([("ZENDESK_ID".to_string(), Value::from("42"))]),
        };
        assert_eq!(
            decide(&mapping, &Source::Zendesk, &ledger, &facts),
            Outcome::Delete
        );

        facts
            .attributes
            .insert("INTERCOM_ID".into(), Value::from("abc"));
        match decide(&mapping, &Source::Zendesk, &ledger, &facts) {
            Outcome::Unlink(Some(why)) => assert!(why.contains("INTERCOM_ID"), "{why}"),
            other => panic!("expected an unlink, got {other:?}"),
        }

        // Known through deskbridge's own ledger, though Brevo's copy is blank.
        facts
            .attributes
            .insert("INTERCOM_ID".into(), Value::from(""));
        let mut known = ledger.clone();
        known.attributes.insert(
            "GORGIAS_ID".into(),
            Stamped {
                at: at("2026-12-01T11:00:00Z"),
                value: Value::from(7),
            },
        );
        assert!(matches!(
            decide(&mapping, &Source::Zendesk, &known, &facts),
            Outcome::Unlink(Some(_))
        ));
        assert_eq!(
            decide(&mapping, &Source::Zendesk, &ledger, &facts),
            Outcome::Delete
        );
    }

    #[test]
    fn a_contact_that_existed_before_is_unlinked() {
        let facts = ContactFacts {
            created_at: Some(at("2025-01-01T00:00:00Z")),
            ..ContactFacts::default()
        };
        let ledger = ledger_since("2026-12-01T10:00:00Z");
        assert!(matches!(
            decide(&Mapping::default(), &Source::Intercom, &ledger, &facts),
            Outcome::Unlink(Some(_))
        ));
    }
}
