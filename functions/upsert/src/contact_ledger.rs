//! The upserter's side of the per-contact ledger ([`deskbridge_shared::ledger`]).
//!
//! Before a contact is written, the record is merged into the contact's ledger (a conditional
//! write on its revision, retried on conflict), and the contact sent to Brevo is rebuilt from
//! the ledger: the newest value of every attribute (an older observation never overwrites a
//! newer one) plus the support aggregates, and the satisfied or dissatisfied list by the latest
//! CSAT score. After a single upsert, [`Upserter::confirm`] reads the ledger again: when another
//! worker changed it meanwhile and its view differs from what was sent, the newest view is sent
//! again, so whichever write reaches Brevo last carries the newest state.

use std::collections::BTreeMap;

use deskbridge_shared::brevo::{BrevoApi, ContactKey, ContactUpsert, EventRequest};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::ledger::{LEDGER_TTL, Ledger, ledger_key};
use deskbridge_shared::model::{EventKind, Record, Source, SupportEvent};
use deskbridge_shared::state::StateStore;
use serde_json::Value;

use crate::{Retry, Stats, Upserter};

/// Conditional writes tried before giving up on a contact for this delivery (it is retried).
const MAX_LEDGER_ATTEMPTS: usize = 8;

/// Re-sends after a concurrent change, at most.
const MAX_CONFIRMS: usize = 3;

/// A contact's ledger as this worker last wrote or read it.
#[derive(Debug, Clone)]
pub(crate) struct LedgerEntry {
    pub key: String,
    pub rev: u64,
    pub ledger: Ledger,
}

/// What identifies a contact's ledger: its Brevo key, else its SMS.
fn identity(contact: &ContactUpsert) -> Option<String> {
    match contact.key() {
        Some(ContactKey::Email(e)) => Some(format!("email:{e}")),
        Some(ContactKey::ExtId(x)) => Some(format!("ext:{x}")),
        None => contact
            .attributes
            .get("SMS")
            .and_then(Value::as_str)
            .map(|s| format!("sms:{s}")),
    }
}

fn unreadable(key: &str, e: &serde_json::Error) -> Retry {
    Retry(format!("contact ledger {key} unreadable: {e}"))
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    async fn load_ledger(&self, key: &str) -> Result<(Option<u64>, Ledger), Retry> {
        let doc = self
            .state
            .load_doc(key)
            .await
            .map_err(|e| Retry(format!("reading contact ledger: {e}")))?;
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
    async fn update_ledger<T>(
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
            let text = serde_json::to_string(&ledger).map_err(|e| unreadable(key, &e))?;
            let saved = self
                .state
                .save_doc(key, rev, &text, Some(LEDGER_TTL))
                .await
                .map_err(|e| Retry(format!("writing contact ledger: {e}")))?;
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
        Err(Retry(
            "contact ledger: too many concurrent changes; retrying later".into(),
        ))
    }

    /// Merges `record` into its contact's ledger and rebuilds `contact` from it. `None` entry
    /// for a contact nothing identifies (it is then written as mapped).
    pub(crate) async fn reconcile(
        &self,
        source: &Source,
        record: &Record,
        mut contact: ContactUpsert,
        stats: &mut Stats,
    ) -> Result<(ContactUpsert, Option<LedgerEntry>), Retry> {
        let Some(id) = identity(&contact) else {
            return Ok((contact, None));
        };
        let key = ledger_key(&id);
        let attributes = contact.attributes.clone();
        let (entry, stale) = self
            .update_ledger(&key, stats, |l| l.observe(source, record, &attributes))
            .await?;
        if !stale.is_empty() {
            stats.stale_attributes += stale.len();
            tracing::info!(attributes = ?stale, observed_at = %record.observed_at,
                "upsert: newer values known for some attributes; the older observation does not overwrite them");
        }
        self.apply_view(source, &entry.ledger, &mut contact);
        Ok((contact, Some(entry)))
    }

    /// Writes the ledger's view onto `contact`: newest attributes, aggregates, CSAT list.
    fn apply_view(&self, source: &Source, ledger: &Ledger, contact: &mut ContactUpsert) {
        let aggregates = ledger.aggregates();
        let mut attributes = ledger.attribute_values();
        attributes.extend(self.mapping.aggregate_attributes(source, &aggregates));
        contact.attributes = attributes;
        if let Some((Some(join), _)) = self.mapping.csat_lists(source, &aggregates)
            && !contact.list_ids.contains(&join)
        {
            contact.list_ids.push(join);
            contact.list_ids.sort_unstable();
        }
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
            self.apply_view(source, &ledger, &mut newest);
            if sms_dropped(&sent, &newest) {
                newest.attributes.remove("SMS");
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

    /// The list a contact leaves by its latest CSAT score, when its placement is not written
    /// yet.
    pub(crate) fn csat_list_to_leave(&self, source: &Source, entry: &LedgerEntry) -> Option<i64> {
        let latest = entry.ledger.latest_rating()?;
        if entry.ledger.csat_placed.as_deref() == Some(latest.id.as_str()) {
            return None;
        }
        let (_, leave) = self
            .mapping
            .csat_lists(source, &entry.ledger.aggregates())?;
        leave
    }

    /// Notes that the placement by the latest rating is written (as far as the ledger still
    /// has that rating as its latest).
    pub(crate) async fn csat_placed(
        &self,
        entry: &LedgerEntry,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let Some(id) = entry.ledger.latest_rating().map(|r| r.id.clone()) else {
            return Ok(());
        };
        self.update_ledger(&entry.key, stats, |l| {
            if l.latest_rating().is_some_and(|r| r.id == id) {
                l.csat_placed = Some(id.clone());
            }
        })
        .await?;
        Ok(())
    }

    /// Adds what the ledger knows to a resolution event (resolution time, satisfaction).
    pub(crate) fn enrich(
        &self,
        source: &Source,
        entry: Option<&LedgerEntry>,
        event: &SupportEvent,
        request: &mut EventRequest,
    ) {
        let Some(entry) = entry else { return };
        if event.kind != EventKind::TicketClosed {
            return;
        }
        let extra: BTreeMap<&str, Value> = entry.ledger.resolution_properties(source, event);
        for (k, v) in extra {
            request.event_properties.entry(k.to_string()).or_insert(v);
        }
    }
}

/// Whether the first upsert went out without SMS (the number belongs to another contact).
fn sms_dropped(sent: &ContactUpsert, newest: &ContactUpsert) -> bool {
    !sent.attributes.contains_key("SMS") && newest.attributes.contains_key("SMS")
}
