//! The upserter's side of the `deletions` policy ([`deskbridge_shared::deletions`]): a person
//! the helpdesk deleted, and the records of a person it deleted before.
//!
//! A deletion is kept in the person's index first (so records of the person that arrive
//! meanwhile are dropped), then carried out in Brevo: the contact is unlinked (the helpdesk's
//! id attribute emptied, its all-contacts list left, in one call) or deleted, as the policy
//! and what deskbridge knows of the contact say. Last, the index forgets the contact's email
//! and ext_id: nothing of the person stays in the state table but the fact and time of the
//! deletion. Every step is safe to repeat, so a failure anywhere retries the whole deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deskbridge_shared::brevo::{BrevoApi, BrevoError, ContactKey};
use deskbridge_shared::deletions::{self, Deletions, Outcome};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::identity::mask;
use deskbridge_shared::ledger::Ledger;
use deskbridge_shared::model::{Record, Source};
use deskbridge_shared::people::{self, PersonIndex};
use deskbridge_shared::plan;
use deskbridge_shared::state::StateStore;
use serde_json::Value;

use crate::execute::describe;
use crate::stats::{Retry, Stats, final_or_retry};
use crate::upserter::Upserter;

/// Conditional writes of a person's index tried before the deletion is retried later.
const MAX_INDEX_ATTEMPTS: usize = 8;

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Carries out the deletion `record` reports, as the `deletions` policy says.
    pub(crate) async fn forget(
        &self,
        source: &Source,
        record: &Record,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let Some(id) = record.person.helpdesk_id() else {
            stats.skipped_no_identifier += 1;
            tracing::warn!(%source, "upsert: a deletion names no helpdesk id; skipped");
            return Ok(());
        };
        let person = format!("{source} person {}", mask(id));
        let policy = self.mapping.deletions;
        if policy == Deletions::Ignore {
            stats.deletions_ignored += 1;
            tracing::info!(%person, %policy, "upsert: the helpdesk deleted a person; Brevo left as it is");
            return Ok(());
        }
        let index_key = people::person_key(source, id);
        let known = self
            .note_deletion(&index_key, record.observed_at, stats)
            .await?;
        let key = match (&known.email, &known.ext_id) {
            (Some(email), _) => Some(ContactKey::Email(email.clone())),
            (None, Some(ext_id)) => Some(ContactKey::ExtId(ext_id.clone())),
            (None, None) => self.mapping.contact_key(source, &record.person),
        };
        match key {
            Some(key) => {
                self.forget_contact(source, record.observed_at, &key, &person, policy, stats)
                    .await?
            }
            None => {
                stats.deletions_without_contact += 1;
                tracing::info!(%person, %policy, "upsert: the helpdesk deleted a person deskbridge never wrote");
            }
        }
        self.forget_index(&index_key).await
    }

    /// Unlinks or deletes the contact `key` addresses, as `policy` and what is known of the
    /// contact say.
    async fn forget_contact(
        &self,
        source: &Source,
        at: DateTime<Utc>,
        key: &ContactKey,
        person: &str,
        policy: Deletions,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let subject = describe(Some(key));
        let ledger_key = plan::ledger_key_of(key);
        let (_, ledger) = self.load_ledger(&ledger_key).await?;
        let outcome = match policy {
            Deletions::Delete => match self.brevo().contact_facts(key).await {
                Ok(Some(facts)) => deletions::decide(&self.mapping, source, &ledger, &facts),
                Ok(None) => {
                    stats.deletions_without_contact += 1;
                    tracing::info!(%person, contact = %subject, %policy,
                        "upsert: the helpdesk deleted a person Brevo has no contact for");
                    return Ok(());
                }
                Err(e) => {
                    return final_or_retry(e, &format!("reading {subject} to delete it"), stats);
                }
            },
            _ => Outcome::Unlink(None),
        };
        match outcome {
            Outcome::Delete => {
                if let Err(e) = self.brevo().delete_contact(key).await {
                    return final_or_retry(e, &format!("deleting {subject}"), stats);
                }
                // The contact's ledger goes with it (what a new contact of the same address
                // starts from is nothing).
                self.update_ledger(&ledger_key, stats, |l| *l = Ledger::default())
                    .await?;
                stats.contacts_deleted += 1;
                tracing::info!(%person, contact = %subject, %policy,
                    "upsert: the helpdesk deleted a person; their Brevo contact is deleted");
            }
            Outcome::Unlink(why) => {
                self.unlink(source, at, key, &ledger_key, stats).await?;
                match why {
                    Some(why) => {
                        tracing::info!(%person, contact = %subject, %policy, reason = %why,
                        "upsert: the helpdesk deleted a person; their Brevo contact is kept and unlinked")
                    }
                    None => tracing::info!(%person, contact = %subject, %policy,
                        "upsert: the helpdesk deleted a person; their Brevo contact is unlinked"),
                }
            }
        }
        Ok(())
    }

    /// Empties `source`'s id attribute on the contact and takes it off the source's
    /// all-contacts list; the ledger keeps the emptied value, so no older observation writes
    /// the id again.
    async fn unlink(
        &self,
        source: &Source,
        at: DateTime<Utc>,
        key: &ContactKey,
        ledger_key: &str,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let subject = describe(Some(key));
        let attribute = deletions::id_attribute(&self.mapping, source);
        let emptied = BTreeMap::from([(attribute, Value::String(String::new()))]);
        let lists = match self.all_contacts_list(source).await {
            Ok(list) => list.into_iter().collect::<Vec<_>>(),
            Err(e) => {
                return Err(Retry::new(format!(
                    "the all-contacts list of {source} is unavailable ({e}); unlinking {subject} later"
                )));
            }
        };
        match self.brevo().unlink_contact(key, &emptied, &lists).await {
            Ok(()) => {}
            // Nobody to unlink: deleted in Brevo meanwhile.
            Err(BrevoError::Rejected { status: 404, .. }) => {
                stats.deletions_without_contact += 1;
                return Ok(());
            }
            Err(e) => return final_or_retry(e, &format!("unlinking {subject}"), stats),
        }
        self.update_ledger(ledger_key, stats, |l| {
            l.observe_attributes(at, &emptied);
        })
        .await?;
        stats.contacts_unlinked += 1;
        Ok(())
    }

    /// Keeps the deletion at `at` in the person's index (the newest deletion wins); returns the
    /// index as it was, for the contact it names.
    async fn note_deletion(
        &self,
        index_key: &str,
        at: DateTime<Utc>,
        stats: &mut Stats,
    ) -> Result<PersonIndex, Retry> {
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let (rev, index) = self.load_person_index(index_key).await?;
            let after = PersonIndex {
                deleted_at: Some(index.deleted_at.map_or(at, |d| d.max(at))),
                ..index.clone()
            };
            if after == index || self.save_index(index_key, rev, &after).await? {
                return Ok(index);
            }
            stats.ledger_conflicts += 1;
        }
        Err(Retry::new(format!(
            "{index_key}: too many concurrent changes; retrying the deletion later"
        )))
    }

    /// Drops the email and ext_id from the person's index once their contact is dealt with;
    /// the deletion stays.
    async fn forget_index(&self, index_key: &str) -> Result<(), Retry> {
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let (rev, index) = self.load_person_index(index_key).await?;
            let after = PersonIndex {
                email: None,
                ext_id: None,
                deleted_at: index.deleted_at,
            };
            if after == index || self.save_index(index_key, rev, &after).await? {
                return Ok(());
            }
        }
        Err(Retry::new(format!(
            "{index_key}: too many concurrent changes; retrying the deletion later"
        )))
    }

    /// Writes a person's index if its revision is still `rev`.
    pub(crate) async fn save_index(
        &self,
        index_key: &str,
        rev: Option<u64>,
        index: &PersonIndex,
    ) -> Result<bool, Retry> {
        let text = serde_json::to_string(index)
            .map_err(|e| Retry::new(format!("writing {index_key}: {e}")))?;
        self.state
            .save_doc(index_key, rev, &text, None)
            .await
            .map_err(|e| Retry::new(format!("writing {index_key}: {e}")))
    }
}
