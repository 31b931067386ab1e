//! What a batch did ([`Stats`]), and how a failure is told apart: [`Retry`] for what a later
//! delivery can get past, a final refusal counted and kept as a reason for the dead letter.

use std::ops::AddAssign;
use std::time::Duration;

use deskbridge_shared::brevo::BrevoError;

/// What a batch did, for logs, the local runner and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handled (including failed and poison ones).
    pub messages: usize,
    /// Contact upserts Brevo accepted.
    pub contacts: usize,
    /// Of those, contacts Brevo created (201) rather than updated (204).
    pub contacts_created: usize,
    /// Upserts sent again without SMS because the number belongs to another contact.
    pub sms_dropped: usize,
    /// Events sent to Brevo.
    pub events: usize,
    /// Events not sent because they were sent before (state store) or earlier in the batch.
    pub events_skipped_duplicate: usize,
    /// Events whose kind the mapping does not send.
    pub events_unmapped: usize,
    /// Contacts taken off a list.
    pub list_removals: usize,
    /// Final failures: Brevo refused a request for good, or a message was not a job.
    pub rejected: usize,
    /// Of the rejected, messages whose body is not a job.
    pub poison: usize,
    /// Records without any identifier Brevo accepts.
    pub skipped_no_identifier: usize,
    /// Helpdesk look-ups made for people named only by id.
    pub lookups: usize,
    /// Look-ups that found nobody (no credentials, unknown id): addressed by ext_id.
    pub lookups_unresolved: usize,
    /// Sync records of people named only by id whose email the person index already held, so
    /// no helpdesk look-up was made.
    pub lookups_spared: usize,
    /// `/v3/contacts/import` calls Brevo accepted (sync path).
    pub imports: usize,
    /// Contacts in those imports. Imports run asynchronously in Brevo: accepted, not yet written.
    pub contacts_imported: usize,
    /// `/v3/events/batch` calls Brevo answered with success (sync path).
    pub event_batches: usize,
    /// Attribute values not written because the contact's ledger holds a newer observation.
    /// Contacts moved to a new email (an ext_id contact whose person gave an email, or a
    /// changed email).
    pub contacts_moved: usize,
    /// Moves refused because the new email already had a contact: the person's records go to
    /// that contact, the old one stays.
    pub contacts_merged: usize,
    pub stale_attributes: usize,
    /// Contact-ledger writes that lost a race with another worker (and were retried).
    pub ledger_conflicts: usize,
    /// Contacts sent again because another delivery changed them while they were written.
    pub resent_newer: usize,
    /// Messages put on the dead-letter queue with their reason (failed for good, or failing
    /// past the retry horizon).
    pub dead_lettered: usize,
    /// Of those, messages that were failing transiently for longer than the retry horizon.
    pub gave_up: usize,
    /// Messages that failed transiently and were sent back to the queue with a delay.
    pub retried_later: usize,
    /// Of those, messages not tried at all because Brevo was known to be down (outage gate).
    pub held: usize,
    /// Brevo calls refused with 401 (the API key): delivery pauses and the alarm fires.
    pub brevo_auth_failures: usize,
    /// Helpdesk people (Zendesk users, Intercom contacts) updated by Brevo write-backs.
    pub write_backs: usize,
    /// Write-backs a helpdesk had nobody for (one per helpdesk and event): nothing to write.
    pub write_backs_not_found: usize,
    /// Write-backs no helpdesk is configured for (no API credentials, or switched off).
    pub write_backs_skipped: usize,
    /// People deleted in a helpdesk while the `deletions` policy is `ignore`.
    pub deletions_ignored: usize,
    /// Contacts unlinked from a helpdesk that deleted the person (`unlink`, or `delete` when
    /// the contact could not be deleted).
    pub contacts_unlinked: usize,
    /// Contacts deleted because the helpdesk deleted the person (`delete`).
    pub contacts_deleted: usize,
    /// Deletions of people Brevo has no contact for.
    pub deletions_without_contact: usize,
    /// Records not written because the helpdesk deleted their person.
    pub deleted_people_skipped: usize,
    /// People the helpdesk brought back after deleting them.
    pub people_restored: usize,
    /// Helpdesk people deleted because their Brevo contact was deleted (`on_contact_deleted:
    /// delete`).
    pub helpdesk_deletions: usize,
    /// Why things failed for good (masked), attributed to messages for their dead letters.
    pub finals: Vec<String>,
}

impl Stats {
    /// The counters by name, in declaration order.
    fn counters(&self) -> [(&'static str, usize); 38] {
        [
            ("messages", self.messages),
            ("contacts", self.contacts),
            ("contacts_created", self.contacts_created),
            ("sms_dropped", self.sms_dropped),
            ("events", self.events),
            ("events_skipped_duplicate", self.events_skipped_duplicate),
            ("events_unmapped", self.events_unmapped),
            ("list_removals", self.list_removals),
            ("rejected", self.rejected),
            ("poison", self.poison),
            ("skipped_no_identifier", self.skipped_no_identifier),
            ("lookups", self.lookups),
            ("lookups_unresolved", self.lookups_unresolved),
            ("lookups_spared", self.lookups_spared),
            ("imports", self.imports),
            ("contacts_imported", self.contacts_imported),
            ("event_batches", self.event_batches),
            ("contacts_moved", self.contacts_moved),
            ("contacts_merged", self.contacts_merged),
            ("stale_attributes", self.stale_attributes),
            ("ledger_conflicts", self.ledger_conflicts),
            ("resent_newer", self.resent_newer),
            ("dead_lettered", self.dead_lettered),
            ("gave_up", self.gave_up),
            ("retried_later", self.retried_later),
            ("held", self.held),
            ("brevo_auth_failures", self.brevo_auth_failures),
            ("write_backs", self.write_backs),
            ("write_backs_not_found", self.write_backs_not_found),
            ("write_backs_skipped", self.write_backs_skipped),
            ("deletions_ignored", self.deletions_ignored),
            ("contacts_unlinked", self.contacts_unlinked),
            ("contacts_deleted", self.contacts_deleted),
            ("deletions_without_contact", self.deletions_without_contact),
            ("deleted_people_skipped", self.deleted_people_skipped),
            ("people_restored", self.people_restored),
            ("helpdesk_deletions", self.helpdesk_deletions),
            ("finals", self.finals.len()),
        ]
    }
}

/// The counters that are not zero, as `name=value` pairs (`messages=10 contacts=10 events=4`);
/// the reasons in [`Stats::finals`] are logged where they happen, not here.
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, value) in self.counters().into_iter().filter(|(_, v)| *v > 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
            first = false;
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

impl AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.messages += o.messages;
        self.contacts += o.contacts;
        self.contacts_created += o.contacts_created;
        self.sms_dropped += o.sms_dropped;
        self.events += o.events;
        self.events_skipped_duplicate += o.events_skipped_duplicate;
        self.events_unmapped += o.events_unmapped;
        self.list_removals += o.list_removals;
        self.rejected += o.rejected;
        self.poison += o.poison;
        self.skipped_no_identifier += o.skipped_no_identifier;
        self.lookups += o.lookups;
        self.lookups_unresolved += o.lookups_unresolved;
        self.lookups_spared += o.lookups_spared;
        self.imports += o.imports;
        self.contacts_imported += o.contacts_imported;
        self.event_batches += o.event_batches;
        self.contacts_moved += o.contacts_moved;
        self.contacts_merged += o.contacts_merged;
        self.stale_attributes += o.stale_attributes;
        self.ledger_conflicts += o.ledger_conflicts;
        self.resent_newer += o.resent_newer;
        self.dead_lettered += o.dead_lettered;
        self.gave_up += o.gave_up;
        self.retried_later += o.retried_later;
        self.held += o.held;
        self.brevo_auth_failures += o.brevo_auth_failures;
        self.write_backs += o.write_backs;
        self.write_backs_not_found += o.write_backs_not_found;
        self.write_backs_skipped += o.write_backs_skipped;
        self.deletions_ignored += o.deletions_ignored;
        self.contacts_unlinked += o.contacts_unlinked;
        self.contacts_deleted += o.contacts_deleted;
        self.deletions_without_contact += o.deletions_without_contact;
        self.deleted_people_skipped += o.deleted_people_skipped;
        self.people_restored += o.people_restored;
        self.helpdesk_deletions += o.helpdesk_deletions;
        self.finals.extend(o.finals);
    }
}

/// A failure that a later delivery can get past: the message must be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct Retry {
    pub(crate) reason: String,
    /// How long the helpdesk asked us to wait (`Retry-After` of a rate-limited look-up): the
    /// message is not tried again sooner.
    pub(crate) not_before: Option<Duration>,
}

impl Retry {
    pub(crate) fn new(reason: impl Into<String>) -> Retry {
        Retry {
            reason: reason.into(),
            not_before: None,
        }
    }

    /// A retry that waits at least `wait`, when there is one.
    pub(crate) fn not_before(mut self, wait: Option<Duration>) -> Retry {
        self.not_before = wait;
        self
    }
}

/// A retryable Brevo error (or a refused key) fails the message for a later retry; a final
/// one is logged and counted.
pub(crate) fn final_or_retry(err: BrevoError, what: &str, stats: &mut Stats) -> Result<(), Retry> {
    if err.is_worth_retrying() {
        return Err(Retry::new(format!("{what}: {err}")));
    }
    stats.rejected += 1;
    // `what` names the contact masked; Brevo's messages are redacted by the client.
    tracing::warn!(error = %err, "upsert: Brevo refused {what}; not retried");
    stats.finals.push(format!("Brevo refused {what}: {err}"));
    Ok(())
}

#[cfg(test)]
mod display_tests {
    use super::Stats;

    #[test]
    fn stats_read_as_the_counters_that_moved() {
        assert_eq!(Stats::default().to_string(), "nothing");
        let stats = Stats {
            messages: 10,
            contacts: 9,
            events_skipped_duplicate: 2,
            finals: vec!["Brevo refused contact j***@example.com: invalid email".into()],
            ..Stats::default()
        };
        assert_eq!(
            stats.to_string(),
            "messages=10 contacts=9 events_skipped_duplicate=2 finals=1"
        );
    }
}
