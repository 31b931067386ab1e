//! The upserter's side of one person = one contact ([`deskbridge_shared::people`]): before a
//! record is merged into its contact's ledger, the person's index decides whether its contact
//! moves to a new email first, or whether an email-less record goes to the email contact the
//! person already has.

use std::collections::BTreeMap;

use deskbridge_shared::brevo::{BrevoApi, BrevoError, ContactKey};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::identity::mask;
use deskbridge_shared::ledger::Ledger;
use deskbridge_shared::model::{Record, Source};
use deskbridge_shared::people::{self, Gate, PersonIndex, Settle};
use deskbridge_shared::plan;
use deskbridge_shared::state::StateStore;
use serde_json::Value;

use crate::contact_ledger::Settled;
use crate::execute::describe;
use crate::stats::{Retry, Stats};
use crate::upserter::Upserter;

/// Conditional writes of a person's index tried before the record is retried later.
const MAX_INDEX_ATTEMPTS: usize = 8;

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Settles which contact `record`'s person is written to: as mapped, readdressed (the
    /// record and its observation to plan with instead), or not at all (the helpdesk deleted
    /// the person).
    pub(crate) async fn settle_person(
        &self,
        source: &Source,
        record: &Record,
        stats: &mut Stats,
    ) -> Result<Settled, Retry> {
        let Some(id) = record.person.helpdesk_id() else {
            return Ok(Settled::AsMapped);
        };
        let Some(key) = self.mapping.contact_key(source, &record.person) else {
            return Ok(Settled::AsMapped);
        };
        let index_key = people::person_key(source, id);
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let (rev, index) = self.load_person_index(&index_key).await?;
            let mut live = index.clone();
            match people::gate(&index, record.observed_at, record.presence) {
                Gate::Pass => {}
                Gate::Drop => {
                    stats.deleted_people_skipped += 1;
                    tracing::debug!(%source, person = %mask(id),
                        "upsert: record of a person the helpdesk deleted; not written");
                    return Ok(Settled::Deleted);
                }
                Gate::Restore => live.deleted_at = None,
            }
            let (what, after) = people::settle(&live, &key);
            let readdressed = match what {
                Settle::Keep => Settled::AsMapped,
                Settle::Address(email) => {
                    let mut record = record.clone();
                    record.person.email = Some(email);
                    match plan::observe(&self.mapping, source, &record) {
                        Ok(observed) => Settled::Readdressed(Box::new((record, observed))),
                        Err(_) => Settled::AsMapped,
                    }
                }
                // The move is made before the index says so: a failure after it finds the
                // contact already moved (404) and goes on.
                Settle::Move { from, to } => {
                    self.move_contact(&from, &to, stats).await?;
                    Settled::AsMapped
                }
            };
            if after == index {
                return Ok(readdressed);
            }
            if self.save_index(&index_key, rev, &after).await? {
                if index.deleted_at.is_some() && after.deleted_at.is_none() {
                    stats.people_restored += 1;
                    tracing::info!(%source, person = %mask(id),
                        "upsert: the helpdesk brought back a person it deleted; their records are written again");
                }
                return Ok(readdressed);
            }
            stats.ledger_conflicts += 1;
        }
        Err(Retry::new(format!(
            "{index_key}: too many concurrent changes; retrying later"
        )))
    }

    /// Sets the EMAIL of the contact `from` addresses to `to`, then merges that contact's
    /// ledger into the ledger of `to`, so the aggregates carry on. When `to` already has a
    /// contact, the move is refused: the person's records go to that contact from now on, and
    /// the one left behind is logged.
    async fn move_contact(
        &self,
        from: &ContactKey,
        to: &str,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let subject = describe(Some(from));
        let target = describe(Some(&ContactKey::Email(to.to_string())));
        let attributes = BTreeMap::from([("EMAIL".to_string(), Value::String(to.to_string()))]);
        match self.brevo().update_contact(from, &attributes).await {
            Ok(()) => {
                stats.contacts_moved += 1;
                tracing::info!(from = %subject, to = %target, "upsert: contact moved to the person's new email");
            }
            // Nothing to move: deleted in Brevo, or moved by an earlier attempt.
            Err(BrevoError::Rejected { status: 404, .. }) => {}
            Err(e) if email_taken(&e) => {
                stats.contacts_merged += 1;
                tracing::warn!(from = %subject, to = %target,
                    "upsert: the person's new email already has a Brevo contact; deskbridge's attributes and lists go to it, the old contact stays as it is");
            }
            Err(e) if e.is_worth_retrying() => {
                return Err(Retry::new(format!("moving {subject} to {target}: {e}")));
            }
            Err(e) => {
                tracing::warn!(from = %subject, to = %target, reason = %e,
                    "upsert: Brevo refused to move the contact; the person's records go to the new email");
            }
        }
        let (_, old) = self.load_ledger(&plan::ledger_key_of(from)).await?;
        if old != Ledger::default() {
            let new_key = plan::ledger_key_of(&ContactKey::Email(to.to_string()));
            self.update_ledger(&new_key, stats, |l| l.absorb(&old))
                .await?;
        }
        Ok(())
    }
}

/// Whether Brevo refused an update because the email belongs to another contact.
fn email_taken(e: &BrevoError) -> bool {
    match e {
        BrevoError::Rejected {
            status: 400,
            code,
            message,
        } => code == "duplicate_parameter" || message.to_ascii_lowercase().contains("already"),
        _ => false,
    }
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// The person index at `index_key` with its revision (`None` and an empty index when the
    /// person has none yet).
    pub(crate) async fn load_person_index(
        &self,
        index_key: &str,
    ) -> Result<(Option<u64>, PersonIndex), Retry> {
        let doc = self
            .state
            .load_doc(index_key)
            .await
            .map_err(|e| Retry::new(format!("reading {index_key}: {e}")))?;
        match doc {
            None => Ok((None, PersonIndex::default())),
            Some(doc) => {
                let index = serde_json::from_str(&doc.text)
                    .map_err(|e| Retry::new(format!("{index_key} unreadable: {e}")))?;
                Ok((Some(doc.rev), index))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_email_is_told_from_other_refusals() {
        let taken = BrevoError::Rejected {
            status: 400,
            code: "duplicate_parameter".into(),
            message: "Unable to update contact, email is already associated with another Contact"
                .into(),
        };
        assert!(email_taken(&taken));
        let invalid = BrevoError::Rejected {
            status: 400,
            code: "invalid_parameter".into(),
            message: "Invalid email address".into(),
        };
        assert!(!email_taken(&invalid));
        assert!(!email_taken(&BrevoError::Transient("502".into())));
    }
}
