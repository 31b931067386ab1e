//! One helpdesk person, one Brevo contact: which contact a person's records go to when the
//! identifier they carry changes.
//!
//! A person known without an email (an Intercom lead, a Zendesk requester that could not be
//! looked up) is written to a contact addressed by an `ext_id`: its `external_id` when the
//! helpdesk has one, else `<source>:<id>`. The state table keeps, per helpdesk person
//! (`person#<source>:<id>`), the email its contact was last written with, or its ext_id. From that, a
//! record of the person is [`settle`]d before it is planned:
//! - it brings an email while the person's contact is the ext_id one (the lead gave an email,
//!   the requester became known): that contact is moved, its EMAIL set, so the attributes and
//!   the timeline written so far stay on the one contact;
//! - it brings another email than the contact has (Intercom `contact.email.updated`): the
//!   contact is moved to the new email the same way;
//! - it brings no email while the person's contact has one (a ticket whose requester look-up
//!   failed this time): it is addressed to that email instead of an ext_id contact.
//!
//! When the new email already belongs to another Brevo contact, the move is refused; the record
//! is then written to that contact with everything deskbridge knows of the person (the moved
//! contact's ledger is merged into it), and the contact left behind is logged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::brevo::ContactKey;
use crate::model::{Presence, Source};

/// State-table key of what is known of one helpdesk person's contact.
pub fn person_key(source: &Source, id: &str) -> String {
    format!("person#{}:{}", source.as_str(), id.trim())
}

/// What the state table remembers of one helpdesk person's Brevo contact.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PersonIndex {
    /// The (normalised) email its contact was last written with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The ext_id of the contact written for the person while it had no email (none once that
    /// contact moved to an email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_id: Option<String>,
    /// When the helpdesk deleted the person (see [`crate::deletions`]): their records are
    /// dropped from then on, until one reports them restored after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Whether a record of the person is written, by what the person's index says of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No deletion known: written.
    Pass,
    /// The person was deleted and the record does not bring them back: dropped.
    Drop,
    /// The record reports the person active again after their deletion: the deletion is
    /// forgotten and the record written.
    Restore,
}

/// What `index` lets a record of the person observed `at` do; `restored` when the record
/// reports the person active again ([`Presence::Restored`]).
pub fn gate(index: &PersonIndex, at: DateTime<Utc>, presence: Option<Presence>) -> Gate {
    match index.deleted_at {
        None => Gate::Pass,
        Some(deleted) if presence == Some(Presence::Restored) && at > deleted => Gate::Restore,
        Some(_) => Gate::Drop,
    }
}

/// What to do with a record before it is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Write it as mapped.
    Keep,
    /// It has no email, but the person's contact has this one: address it there.
    Address(String),
    /// The person's contact is addressed by `from`: set its EMAIL to `to` first.
    Move { from: ContactKey, to: String },
}

/// Decides, from what `index` says of the person and the key the record maps to (`Email` when
/// it has an email, else its `ExtId`), what to do, and what the index says afterwards.
pub fn settle(index: &PersonIndex, key: &ContactKey) -> (Settle, PersonIndex) {
    match key {
        ContactKey::Email(email) => {
            if index.email.as_ref() == Some(email) {
                return (Settle::Keep, index.clone());
            }
            let after = PersonIndex {
                email: Some(email.clone()),
                ext_id: None,
                deleted_at: index.deleted_at,
            };
            let from = match (&index.email, &index.ext_id) {
                (Some(known), _) => Some(ContactKey::Email(known.clone())),
                (None, Some(ext_id)) => Some(ContactKey::ExtId(ext_id.clone())),
                (None, None) => None,
            };
            match from {
                Some(from) => (
                    Settle::Move {
                        from,
                        to: email.clone(),
                    },
                    after,
                ),
                None => (Settle::Keep, after),
            }
        }
        ContactKey::ExtId(ext_id) => match &index.email {
            Some(email) => (Settle::Address(email.clone()), index.clone()),
            None => (
                Settle::Keep,
                PersonIndex {
                    email: None,
                    ext_id: Some(ext_id.clone()),
                    deleted_at: index.deleted_at,
                },
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXT: &str = "intercom:6762";

    fn email(e: &str) -> ContactKey {
        ContactKey::Email(e.into())
    }

    fn ext() -> ContactKey {
        ContactKey::ExtId(EXT.into())
    }

    #[test]
    fn a_first_record_is_written_as_mapped_and_remembered() {
        let (what, after) = settle(&PersonIndex::default(), &email("a@x.co"));
        assert_eq!(what, Settle::Keep);
        assert_eq!(after.email.as_deref(), Some("a@x.co"));
        let (what, after) = settle(&PersonIndex::default(), &ext());
        assert_eq!(what, Settle::Keep);
        assert_eq!(after.ext_id.as_deref(), Some(EXT));
    }

    #[test]
    fn an_email_that_appears_moves_the_ext_id_contact() {
        let lead = PersonIndex {
            email: None,
            ext_id: Some(EXT.into()),
            deleted_at: None,
        };
        let (what, after) = settle(&lead, &email("a@x.co"));
        assert_eq!(
            what,
            Settle::Move {
                from: ext(),
                to: "a@x.co".into()
            }
        );
        assert_eq!(
            after,
            PersonIndex {
                email: Some("a@x.co".into()),
                ext_id: None,
                deleted_at: None,
            }
        );
        // Seen again: nothing more to move.
        assert_eq!(settle(&after, &email("a@x.co")).0, Settle::Keep);
    }

    #[test]
    fn a_changed_email_moves_the_contact_and_an_email_less_record_follows_it() {
        let known = PersonIndex {
            email: Some("old@x.co".into()),
            ext_id: None,
            deleted_at: None,
        };
        let (what, after) = settle(&known, &email("new@x.co"));
        assert_eq!(
            what,
            Settle::Move {
                from: email("old@x.co"),
                to: "new@x.co".into()
            }
        );
        let (what, unchanged) = settle(&after, &ext());
        assert_eq!(what, Settle::Address("new@x.co".into()));
        assert_eq!(unchanged, after);
    }

    #[test]
    fn a_deleted_person_stays_deleted_until_restored_after_the_deletion() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().expect("a time");
        let alive = PersonIndex::default();
        assert_eq!(gate(&alive, at("2026-12-01T00:00:00Z"), None), Gate::Pass);
        let deleted = PersonIndex {
            deleted_at: Some(at("2026-12-01T00:00:00Z")),
            ..PersonIndex::default()
        };
        // Older or newer, an ordinary record of a deleted person is dropped.
        assert_eq!(gate(&deleted, at("2026-11-01T00:00:00Z"), None), Gate::Drop);
        assert_eq!(gate(&deleted, at("2026-12-05T00:00:00Z"), None), Gate::Drop);
        // A reactivation from before the deletion does not undo it; one after it does.
        let restored = Some(Presence::Restored);
        assert_eq!(
            gate(&deleted, at("2026-11-30T00:00:00Z"), restored),
            Gate::Drop
        );
        assert_eq!(
            gate(&deleted, at("2026-12-02T00:00:00Z"), restored),
            Gate::Restore
        );
        // A second deletion is no restoration either.
        let again = Some(Presence::Deleted);
        assert_eq!(
            gate(&deleted, at("2026-12-02T00:00:00Z"), again),
            Gate::Drop
        );
        // Settling keeps the deletion in the index.
        let (_, after) = settle(&deleted, &email("a@x.co"));
        assert_eq!(after.deleted_at, deleted.deleted_at);
    }
}
