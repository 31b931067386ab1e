//! How Brevo has been answering this container, and the outage gate built on it.
//!
//! Every Brevo call of the handler goes through [`Watched`], which counts answers by kind. A
//! batch in which Brevo answered nothing but outages (5xx, timeouts, resets, a 429 the client
//! could not wait out) or refused the API key (401) opens the gate: the next batches are not
//! tried at all, only sent back to the queue with their backoff, except one message per probe
//! interval, which goes through as the probe. The first answer from Brevo closes the gate.
//! So a long outage costs one probe every half minute instead of a Brevo call, a ledger read and
//! a claim per message, and the catch-up starts with the first probe that succeeds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deskbridge_shared::brevo::{
    AttributeInfo, BrevoApi, BrevoError, ContactFacts, ContactKey, ContactUpsert, EventRequest,
    ListInfo, UpsertOutcome,
};
use serde_json::Value;

/// Longest time between two probes while Brevo is down (shorter when the retry policy's
/// longest delay is shorter).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Brevo's answers to this container so far, by kind.
#[derive(Debug, Default)]
pub struct Health {
    ok: AtomicU64,
    unavailable: AtomicU64,
    auth: AtomicU64,
}

/// A snapshot of [`Health`], or the difference of two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    /// Calls Brevo answered (a refusal of one request counts: Brevo is up).
    pub ok: u64,
    /// Calls that met an outage: 5xx, timeout, reset, or a rate limit the client gave up on.
    pub unavailable: u64,
    /// Calls refused with 401: the API key is wrong or revoked.
    pub auth: u64,
}

impl Answers {
    pub fn since(self, earlier: Answers) -> Answers {
        Answers {
            ok: self.ok.saturating_sub(earlier.ok),
            unavailable: self.unavailable.saturating_sub(earlier.unavailable),
            auth: self.auth.saturating_sub(earlier.auth),
        }
    }
}

impl Health {
    fn note<T>(&self, result: &Result<T, BrevoError>) {
        let counter = match result {
            Err(e) if e.is_auth() => &self.auth,
            Err(e) if e.is_retryable() => &self.unavailable,
            _ => &self.ok,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn answers(&self) -> Answers {
        Answers {
            ok: self.ok.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            auth: self.auth.load(Ordering::Relaxed),
        }
    }
}

/// A Brevo client whose answers are counted in a [`Health`].
pub struct Watched<'a, B> {
    pub inner: &'a B,
    pub health: &'a Health,
}

impl<B> Watched<'_, B> {
    fn note<T>(&self, result: Result<T, BrevoError>) -> Result<T, BrevoError> {
        self.health.note(&result);
        result
    }
}

#[async_trait]
impl<B: BrevoApi> BrevoApi for Watched<'_, B> {
    async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<UpsertOutcome, BrevoError> {
        self.note(self.inner.upsert_contact(contact).await)
    }
    async fn remove_from_list(&self, list_id: i64, key: &ContactKey) -> Result<(), BrevoError> {
        self.note(self.inner.remove_from_list(list_id, key).await)
    }
    async fn contact_facts(&self, key: &ContactKey) -> Result<Option<ContactFacts>, BrevoError> {
        self.note(self.inner.contact_facts(key).await)
    }
    async fn unlink_contact(
        &self,
        key: &ContactKey,
        attributes: &std::collections::BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError> {
        self.note(self.inner.unlink_contact(key, attributes, lists).await)
    }
    async fn delete_contact(&self, key: &ContactKey) -> Result<(), BrevoError> {
        self.note(self.inner.delete_contact(key).await)
    }
    async fn send_event(&self, event: &EventRequest) -> Result<(), BrevoError> {
        self.note(self.inner.send_event(event).await)
    }
    async fn send_events(
        &self,
        events: &[EventRequest],
    ) -> Result<Vec<(usize, BrevoError)>, BrevoError> {
        self.note(self.inner.send_events(events).await)
    }
    async fn import_contacts(
        &self,
        contacts: &[ContactUpsert],
        list_ids: &[i64],
    ) -> Result<i64, BrevoError> {
        self.note(self.inner.import_contacts(contacts, list_ids).await)
    }
    async fn list_attributes(&self) -> Result<Vec<AttributeInfo>, BrevoError> {
        self.note(self.inner.list_attributes().await)
    }
    async fn create_attribute(&self, name: &str, kind: &str) -> Result<(), BrevoError> {
        self.note(self.inner.create_attribute(name, kind).await)
    }
    async fn account(&self) -> Result<Value, BrevoError> {
        self.note(self.inner.account().await)
    }
    async fn update_contact(
        &self,
        key: &ContactKey,
        attributes: &std::collections::BTreeMap<String, Value>,
    ) -> Result<(), BrevoError> {
        self.note(self.inner.update_contact(key, attributes).await)
    }
    async fn contact_lists(&self) -> Result<Vec<ListInfo>, BrevoError> {
        self.note(self.inner.contact_lists().await)
    }
    async fn contact_folders(&self) -> Result<Vec<ListInfo>, BrevoError> {
        self.note(self.inner.contact_folders().await)
    }
    async fn create_folder(&self, name: &str) -> Result<i64, BrevoError> {
        self.note(self.inner.create_folder(name).await)
    }
    async fn create_list(&self, name: &str, folder_id: i64) -> Result<i64, BrevoError> {
        self.note(self.inner.create_list(name, folder_id).await)
    }
    async fn delete_list(&self, list_id: i64) -> Result<(), BrevoError> {
        self.note(self.inner.delete_list(list_id).await)
    }
}

/// An outage seen by this container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub since: DateTime<Utc>,
    /// When the next batch goes through as a probe.
    pub next_probe: DateTime<Utc>,
    /// Brevo refused the API key (rather than being down).
    pub auth: bool,
}

/// The gate: closed, or open since an outage began.
#[derive(Debug, Default)]
pub struct Gate {
    outage: Option<Outage>,
}

/// What the gate says about a batch about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Process it: no outage.
    Go,
    /// Process one message as the probe, and hold the others (as with [`Pass::Hold`]).
    Probe { reason: String, auth: bool },
    /// Send every message back untried, for this reason; `auth` when the key was refused.
    Hold { reason: String, auth: bool },
}

impl Gate {
    pub fn outage(&self) -> Option<Outage> {
        self.outage
    }

    /// Whether a batch starting at `now` may run; during an outage, one message of the first
    /// batch after `next_probe` is the probe, and the next probe is due `probe` later.
    pub fn pass(&mut self, now: DateTime<Utc>, probe: Duration) -> Pass {
        let Some(o) = &mut self.outage else {
            return Pass::Go;
        };
        let reason = if o.auth {
            format!(
                "Brevo refused the API key (401) since {}; delivery paused until a probe succeeds",
                o.since.to_rfc3339()
            )
        } else {
            format!(
                "Brevo unavailable since {}; held until a probe succeeds",
                o.since.to_rfc3339()
            )
        };
        let auth = o.auth;
        if now >= o.next_probe {
            o.next_probe = now + probe;
            Pass::Probe { reason, auth }
        } else {
            Pass::Hold { reason, auth }
        }
    }

    /// Takes in what Brevo answered during a batch that ran at `now`. Returns what changed, for
    /// the log: `Some(true)` an outage began, `Some(false)` it ended.
    pub fn observe(
        &mut self,
        answers: Answers,
        now: DateTime<Utc>,
        probe: Duration,
    ) -> Option<bool> {
        if answers.ok > 0 {
            return self.outage.take().map(|_| false);
        }
        if answers.unavailable + answers.auth == 0 {
            return None;
        }
        let auth = answers.auth > 0;
        match &mut self.outage {
            Some(o) => {
                o.next_probe = o.next_probe.max(now + probe);
                o.auth = auth;
                None
            }
            None => {
                self.outage = Some(Outage {
                    since: now,
                    next_probe: now + probe,
                    auth,
                });
                Some(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    const PROBE: Duration = Duration::from_secs(30);
    const DOWN: Answers = Answers {
        ok: 0,
        unavailable: 2,
        auth: 0,
    };

    #[test]
    fn an_outage_holds_batches_between_probes_and_the_first_answer_ends_it() {
        let mut gate = Gate::default();
        assert_eq!(gate.pass(t(0), PROBE), Pass::Go);
        assert_eq!(gate.observe(DOWN, t(0), PROBE), Some(true));
        assert!(matches!(
            gate.pass(t(1), PROBE),
            Pass::Hold { auth: false, .. }
        ));
        assert!(matches!(gate.pass(t(29), PROBE), Pass::Hold { .. }));
        // The probe goes through; the next batch is held again while it runs.
        assert!(matches!(gate.pass(t(30), PROBE), Pass::Probe { .. }));
        assert!(matches!(gate.pass(t(31), PROBE), Pass::Hold { .. }));
        assert_eq!(gate.observe(DOWN, t(31), PROBE), None);
        assert!(matches!(gate.pass(t(60), PROBE), Pass::Hold { .. }));
        assert!(matches!(gate.pass(t(61), PROBE), Pass::Probe { .. }));
        let up = Answers {
            ok: 1,
            unavailable: 1,
            auth: 0,
        };
        assert_eq!(gate.observe(up, t(61), PROBE), Some(false));
        assert_eq!(gate.pass(t(62), PROBE), Pass::Go);
        assert_eq!(gate.outage(), None);
    }

    #[test]
    fn a_batch_without_brevo_calls_changes_nothing() {
        let mut gate = Gate::default();
        assert_eq!(gate.observe(Answers::default(), t(0), PROBE), None);
        assert_eq!(gate.outage(), None);
        gate.observe(DOWN, t(0), PROBE);
        assert_eq!(gate.observe(Answers::default(), t(5), PROBE), None);
        assert!(gate.outage().is_some());
    }

    #[test]
    fn a_refused_key_pauses_with_its_own_reason() {
        let mut gate = Gate::default();
        let refused = Answers {
            ok: 0,
            unavailable: 0,
            auth: 1,
        };
        gate.observe(refused, t(0), PROBE);
        match gate.pass(t(1), PROBE) {
            Pass::Hold { reason, auth } => {
                assert!(auth);
                assert!(reason.contains("401"), "{reason}");
            }
            other => panic!("not held: {other:?}"),
        }
    }
}
