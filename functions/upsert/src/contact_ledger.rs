//! The upserter's side of the per-contact ledger ([`deskbridge_shared::ledger`]).
//!
//! Before a contact is written, the record is merged into the contact's ledger (a conditional
//! write on its revision, retried on conflict), and the record is planned from the ledger as
//! stored ([`deskbridge_shared::plan`]): the newest value of every attribute (an older
//! observation never overwrites a newer one) plus the support aggregates, the satisfied or
//! dissatisfied list by the latest CSAT score, enriched resolution events. After a single
//! upsert, [`Upserter::confirm`] reads the ledger again: when another worker changed it
//! meanwhile and its view differs from what was sent, the newest view is sent again, so
//! whichever write reaches Brevo last carries the newest state.

use deskbridge_shared::brevo::{BrevoApi, ContactUpsert};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::ledger::Ledger;
use deskbridge_shared::model::{Record, Source};
use deskbridge_shared::plan::{self, BrevoWrites, Observed, SMS};
use deskbridge_shared::state::StateStore;

use crate::stats::{Retry, Stats};
use crate::upserter::Upserter;

/// Conditional writes tried before giving up on a contact for this delivery (it is retried).
const MAX_LEDGER_ATTEMPTS: usize = 8;

/// Re-sends after a concurrent change, at most.
const MAX_CONFIRMS: usize = 3;

/// Where a record of a person goes, once the person's index is read.
pub(crate) enum Settled {
    /// To the contact it maps to.
    AsMapped,
    /// Readdressed: this record and its observation instead.
    Readdressed(Box<(Record, Observed)>),
    /// Nowhere: the helpdesk deleted the person.
    Deleted,
}

/// A contact's ledger as this worker last wrote or read it.
#[derive(Debug, Clone)]
pub(crate) struct LedgerEntry {
    pub key: String,
    pub rev: u64,
    pub ledger: Ledger,
}

fn unreadable(key: &str, e: &serde_json::Error) -> Retry {
    Retry::new(format!("contact ledger {key} unreadable: {e}"))
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    pub(crate) async fn load_ledger(&self, key: &str) -> Result<(Option<u64>, Ledger), Retry> {
        let doc = self
            .state
            .load_doc(key)
            .await
            .map_err(|e| Retry::new(format!("reading contact ledger: {e}")))?;
        match doc {
            None => Ok((None, Ledger::default())),
            Some(doc) => {
                let ledger = serde_json::from_str(&doc.text).map_err(|e| unreadable(key, &e))?;
                Ok((Some(doc.rev), ledger))
            }
        }
    }

    /// The revision of the ledger under `key` (0 when there is none).
    pub(crate) async fn ledger_rev(&self, key: &str) -> Result<u64, Retry> {
        Ok(self.load_ledger(key).await?.0.unwrap_or(0))
    }

    /// Applies `change` to the ledger under `key` until a conditional write lands (or nothing
    /// changes). Returns the entry as stored and what `change` returned on the winning attempt.
    pub(crate) async fn update_ledger<T>(
        &self,
        key: &str,
        stats: &mut Stats,
        mut change: impl FnMut(&mut Ledger) -> T,
    ) -> Result<(LedgerEntry, T), Retry> {
        for _ in 0..MAX_LEDGER_ATTEMPTS {
            let (rev, mut ledger) = self.load_ledger(key).await?;
            let before = ledger.clone();
            let out = change(&mut ledger);
            if ledger == before {
                let entry = LedgerEntry {
                    key: key.to_string(),
                    rev: rev.unwrap_or(0),
                    ledger,
                };
                return Ok((entry, out));
            }
            if rev.is_none() && ledger.since.is_none() {
                // The first write of this contact's ledger, before any write of the contact.
                ledger.since = Some(self.clock.now());
            }
            let text = serde_json::to_string(&ledger).map_err(|e| unreadable(key, &e))?;
            let saved = self
                .state
                // Kept for good, like sent events: a delivery redelivered however late must
                // not overwrite newer values. A ledger written with an expiry loses it here.
                .save_doc(key, rev, &text, None)
                .await
                .map_err(|e| Retry::new(format!("writing contact ledger: {e}")))?;
            if saved {
                let entry = LedgerEntry {
                    key: key.to_string(),
                    rev: rev.map_or(1, |r| r + 1),
                    ledger,
                };
                return Ok((entry, out));
            }
            stats.ledger_conflicts += 1;
        }
        Err(Retry::new(
            "contact ledger: too many concurrent changes; retrying later",
        ))
    }

    /// Settles the record's person ([`Upserter::settle_person`]), merges `record` into its
    /// contact's ledger and plans its writes from the ledger as stored. `None` entry for a
    /// contact nothing identifies (it is then written as mapped); `None` for a record not to
    /// write (the helpdesk deleted its person).
    pub(crate) async fn reconcile(
        &self,
        source: &Source,
        record: &Record,
        observed: &Observed,
        stats: &mut Stats,
    ) -> Result<Option<(BrevoWrites, Option<LedgerEntry>)>, Retry> {
        // One person, one contact: a moved contact or a readdressed record first.
        let settled = self.settle_person(source, record, stats).await?;
        let (record, observed) = match &settled {
            Settled::Readdressed(readdressed) => (&readdressed.0, &readdressed.1),
            Settled::AsMapped => (record, observed),
            Settled::Deleted => return Ok(None),
        };
        let Some(key) = &observed.ledger_key else {
            let writes = plan::plan(&self.mapping, source, record, observed, None);
            return Ok(Some((writes, None)));
        };
        let (entry, stale) = self
            .update_ledger(key, stats, |l| observed.merge_into(l, source, record))
            .await?;
        if !stale.is_empty() {
            stats.stale_attributes += stale.len();
            tracing::info!(attributes = ?stale, observed_at = %record.observed_at,
                "upsert: newer values known for some attributes; the older observation does not overwrite them");
        }
        let writes = plan::plan(&self.mapping, source, record, observed, Some(&entry.ledger));
        Ok(Some((writes, Some(entry))))
    }

    /// After a single upsert of `sent`: when the ledger changed meanwhile and its view is not
    /// what was sent, sends the newest view (a few times at most; a later delivery of the
    /// other change does the same).
    pub(crate) async fn confirm(
        &self,
        source: &Source,
        entry: &LedgerEntry,
        sent: &ContactUpsert,
        subject: &str,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let mut rev = entry.rev;
        let mut sent = sent.clone();
        for _ in 0..MAX_CONFIRMS {
            let (now, ledger) = self.load_ledger(&entry.key).await?;
            if now.unwrap_or(0) == rev {
                return Ok(());
            }
            let mut newest = sent.clone();
            plan::view(&self.mapping, source, &ledger, &mut newest);
            if sms_dropped(&sent, &newest) {
                newest.attributes.remove(SMS);
            }
            rev = now.unwrap_or(0);
            if newest == sent {
                continue;
            }
            stats.resent_newer += 1;
            tracing::info!(contact = %subject, "upsert: contact changed by another delivery meanwhile; sending its newest state");
            self.upsert(newest.clone(), subject, stats).await?;
            sent = newest;
        }
        Ok(())
    }

    /// Notes that the placement by `rating` (the latest when the record was planned) is written,
    /// as far as the ledger still has that rating as its latest.
    pub(crate) async fn csat_placed(
        &self,
        key: &str,
        rating: &str,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        self.update_ledger(key, stats, |l| {
            if l.latest_rating().is_some_and(|r| r.id == rating) {
                l.csat_placed = Some(rating.to_string());
            }
        })
        .await?;
        Ok(())
    }

    /// Notes the state-list placements a plan wrote ([`BrevoWrites::placements`]).
    ///
    /// [`BrevoWrites::placements`]: deskbridge_shared::plan::BrevoWrites::placements
    pub(crate) async fn placed(
        &self,
        key: &str,
        placements: &[(i64, bool)],
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        if placements.is_empty() {
            return Ok(());
        }
        self.update_ledger(key, stats, |l| {
            for &(list, joined) in placements {
                l.placed.insert(list, joined);
            }
        })
        .await?;
        Ok(())
    }
}

/// Whether the first upsert went out without SMS (the number belongs to another contact).
fn sms_dropped(sent: &ContactUpsert, newest: &ContactUpsert) -> bool {
    !sent.attributes.contains_key(SMS) && newest.attributes.contains_key(SMS)
}
