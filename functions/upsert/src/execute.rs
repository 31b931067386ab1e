//! The per-record path of webhook jobs: each record is planned ([`deskbridge_shared::plan`])
//! from its contact's ledger, then the plan is carried out against Brevo and the state store:
//! the contact upsert (with the SMS-conflict retry), list removals, then each event sent once
//! (claimed, sent, marked; see [`crate::claims`]).

use std::collections::HashMap;

use deskbridge_shared::brevo::{
    BrevoApi, BrevoError, ContactKey, ContactUpsert, EventRequest, UpsertOutcome,
};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::identity::mask;
use deskbridge_shared::model::{Job, Record, Source};
use deskbridge_shared::plan::{self, BrevoWrites, EventWrite, SMS};
use deskbridge_shared::state::{self, Claim, StateStore};
use serde_json::Value;

use crate::claims::{Batch, EVENT_CLAIM_TTL};
use crate::contact_ledger::LedgerEntry;
use crate::resolve::Found;
use crate::stats::{Retry, Stats, final_or_retry};
use crate::upserter::Upserter;

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Every record of a job, in order (the per-record path of webhook jobs).
    pub(crate) async fn process_job(
        &self,
        job: &Job,
        taken: &Batch,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let mut found: HashMap<String, Found> = HashMap::new();
        for record in &job.records {
            if record.is_deletion() {
                self.forget(&job.source, record, stats).await?;
                continue;
            }
            let record = self
                .resolve_person(&job.source, job.origin, record, &mut found, stats)
                .await?;
            self.process_record(&job.source, &record, taken, stats)
                .await?;
        }
        Ok(())
    }

    /// One record: looked up if need be, merged into its contact's ledger and planned
    /// ([`plan`]), then its plan carried out.
    pub(crate) async fn process_record(
        &self,
        source: &Source,
        record: &Record,
        taken: &Batch,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let observed = match plan::observe(&self.mapping, source, record) {
            Ok(observed) => observed,
            Err(e) => {
                stats.skipped_no_identifier += 1;
                tracing::warn!(reason = %e, "upsert: record skipped");
                return Ok(());
            }
        };
        let Some((mut writes, entry)) = self.reconcile(source, record, &observed, stats).await?
        else {
            return Ok(());
        };
        self.join_default_list(source, &mut writes).await;
        self.execute(source, &writes, entry.as_ref(), taken, stats)
            .await
    }

    /// Carries out a record's plan, in order: the contact upsert (checked against its ledger
    /// afterwards), the lists it leaves, then each event, sent once.
    async fn execute(
        &self,
        source: &Source,
        writes: &BrevoWrites,
        entry: Option<&LedgerEntry>,
        taken: &Batch,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        let subject = describe(writes.key.as_ref());
        // The SMS the contact ended up with: identifies a phone-only contact's events.
        let sms = self.upsert(writes.contact.clone(), &subject, stats).await?;
        if writes.key.is_none() && sms.is_none() {
            // A phone-only contact that could not be written: nothing addresses its events.
            return Ok(());
        }
        if let Some(entry) = entry {
            let mut sent = writes.contact.clone();
            if sms.is_none() {
                sent.attributes.remove(SMS);
            }
            self.confirm(source, entry, &sent, &subject, stats).await?;
        }

        if let Some(key) = &writes.key {
            for list_id in &writes.lists_leave {
                self.leave_list(*list_id, key, &subject, stats).await?;
            }
            if let (Some(rating), Some(entry)) = (&writes.csat_placed, entry) {
                self.csat_placed(&entry.key, rating, stats).await?;
            }
            if let Some(entry) = entry {
                self.placed(&entry.key, &writes.placements, stats).await?;
            }
        }

        let mut events = writes.events.clone();
        let mut refs: Vec<&mut EventWrite> = events.iter_mut().collect();
        if let Some((_, e)) = self.identify(&mut refs).await.into_iter().next() {
            return Err(Retry::new(format!(
                "identifying the events of {subject}: {e}"
            )));
        }
        for event in &events {
            let Some(request) = &event.request else {
                stats.events_unmapped += 1;
                continue;
            };
            self.send_once(&event.id, request, &subject, taken, stats)
                .await?;
        }
        Ok(())
    }

    /// Takes a contact off a list; a refusal is final, an outage retried.
    pub(crate) async fn leave_list(
        &self,
        list_id: i64,
        key: &ContactKey,
        subject: &str,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        match self.brevo().remove_from_list(list_id, key).await {
            Ok(()) => {
                stats.list_removals += 1;
                Ok(())
            }
            Err(e) => final_or_retry(e, &format!("removing {subject} from list {list_id}"), stats),
        }
    }

    /// Upserts the contact; on an SMS conflict, once more without SMS. Returns the SMS value
    /// Brevo accepted, if any.
    pub(crate) async fn upsert(
        &self,
        mut contact: ContactUpsert,
        subject: &str,
        stats: &mut Stats,
    ) -> Result<Option<String>, Retry> {
        let mut result = self.brevo().upsert_contact(&contact).await;
        if result == Err(BrevoError::DuplicateSms) {
            stats.sms_dropped += 1;
            contact.attributes.remove(SMS);
            if contact.key().is_none() {
                // The number was the only identifier, and it belongs to someone else.
                stats.rejected += 1;
                tracing::warn!(contact = %subject, "upsert: phone-only contact's SMS belongs to another Brevo contact; skipped");
                stats.finals.push(format!(
                    "{subject}: its SMS belongs to another Brevo contact and it has no other identifier"
                ));
                return Ok(None);
            }
            tracing::info!(contact = %subject, "upsert: SMS belongs to another Brevo contact; upserting without SMS");
            result = self.brevo().upsert_contact(&contact).await;
        }
        match result {
            Ok(outcome) => {
                stats.contacts += 1;
                if outcome == UpsertOutcome::Created {
                    stats.contacts_created += 1;
                }
                Ok(contact
                    .attributes
                    .get(SMS)
                    .and_then(Value::as_str)
                    .map(str::to_string))
            }
            Err(e) => {
                final_or_retry(e, &format!("upserting {subject}"), stats)?;
                Ok(None)
            }
        }
    }

    /// Sends an event unless it was sent before: claim, send, complete (release on failure).
    pub(crate) async fn send_once(
        &self,
        event_id: &str,
        request: &EventRequest,
        subject: &str,
        taken: &Batch,
        stats: &mut Stats,
    ) -> Result<(), Retry> {
        if !taken.take(event_id) {
            stats.events_skipped_duplicate += 1;
            return Ok(());
        }
        let key = state::event_key(event_id);
        if taken.carried.contains(event_id) {
            // Sent by an earlier attempt that could not mark it: mark it now, never resend.
            stats.events_skipped_duplicate += 1;
            self.complete_sent(&key, event_id, taken).await;
            return Ok(());
        }
        if let Some(why) = taken.too_late_to_send() {
            taken.untake(event_id);
            return Err(Retry::new(format!("event {} not sent: {why}", event_id)));
        }
        let claim = self.state.claim(&key, EVENT_CLAIM_TTL).await.map_err(|e| {
            taken.untake(event_id);
            Retry::new(format!("claiming event {}: {e}", event_id))
        })?;
        match claim {
            Claim::Done => {
                stats.events_skipped_duplicate += 1;
                return Ok(());
            }
            Claim::New => {}
            Claim::Abandoned => {
                tracing::info!(event_id = %event_id, "upsert: event claimed before but not completed; sending it");
            }
            Claim::Busy => {
                taken.untake(event_id);
                return Err(Retry::new(format!(
                    "event {} is being sent by another worker; checking again later",
                    event_id
                )));
            }
        }
        match self.brevo().send_event(request).await {
            Ok(()) => {
                stats.events += 1;
                self.complete_sent(&key, event_id, taken).await;
                Ok(())
            }
            Err(err) => {
                self.release_claim(&key, event_id).await;
                let what = format!(
                    "sending {} ({}) for {subject}",
                    request.event_name, event_id
                );
                final_or_retry(err, &what, stats)
            }
        }
    }
}

/// A contact, for logs: masked email, or the ext_id (a helpdesk id, not personal data).
pub(crate) fn describe(key: Option<&ContactKey>) -> String {
    match key {
        Some(ContactKey::Email(e)) => format!("contact {}", mask(e)),
        Some(ContactKey::ExtId(x)) => format!("contact {x}"),
        None => "phone-only contact".into(),
    }
}
