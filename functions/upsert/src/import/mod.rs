//! The batch path of sync jobs (`Origin::Sync`, up to 50 records each): all sync messages of
//! one Lambda batch are written together, so a backfill of N contacts costs about N/500 Brevo
//! calls rather than N. Each record is planned like on the per-record path
//! ([`deskbridge_shared::plan`]); contacts with an email go through `/v3/contacts/import`
//! ([`contacts`]), the others through single upserts, and events through `/v3/events/batch`
//! ([`events`]). Steps in [`Upserter::process_sync`].

mod contacts;
mod events;

use std::collections::HashMap;

use deskbridge_shared::brevo::BrevoApi;
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::model::{Job, Record, Source};
use deskbridge_shared::plan::{self, BrevoWrites, Observed, SMS};
use deskbridge_shared::queue::Message;
use deskbridge_shared::state::StateStore;
use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::claims::{Batch, STATE_CONCURRENCY};
use crate::contact_ledger::LedgerEntry;
use crate::execute::describe;
use crate::resolve::Found;
use crate::stats::{Retry, Stats};
use crate::upserter::{CONCURRENCY, Upserter, lock};

pub use contacts::{IMPORT_MAX_BYTES, IMPORT_MAX_CONTACTS};
pub use events::EVENTS_PER_BATCH;

/// What the sync path did to the messages of one batch: stats, and per message (in the order
/// given) the reason it must be retried, if any.
#[derive(Debug, Default)]
pub(crate) struct SyncRun {
    pub(crate) stats: Stats,
    pub(crate) failed: Vec<Option<Retry>>,
    /// Per message, what failed for good (for its dead letter).
    pub(crate) rejected: Vec<Vec<String>>,
}

impl SyncRun {
    pub(crate) fn new(jobs: usize) -> Self {
        SyncRun {
            stats: Stats::default(),
            failed: vec![None; jobs],
            rejected: vec![Vec::new(); jobs],
        }
    }

    /// Every message failed for `reason` (deadline), nothing done.
    pub(crate) fn all_failed(jobs: usize, reason: &str) -> Self {
        SyncRun {
            stats: Stats::default(),
            failed: vec![Some(Retry::new(reason)); jobs],
            rejected: vec![Vec::new(); jobs],
        }
    }

    /// Marks message `job` for retry; the first reason is kept.
    pub(crate) fn fail(&mut self, job: usize, reason: &str) {
        self.fail_with(job, Retry::new(reason));
    }

    /// [`SyncRun::fail`] keeping what `retry` says beyond its reason (a helpdesk's
    /// `Retry-After`).
    pub(crate) fn fail_with(&mut self, job: usize, retry: Retry) {
        if let Some(slot) = self.failed.get_mut(job)
            && slot.is_none()
        {
            *slot = Some(retry);
        }
    }

    /// Gives the reasons recorded in `stats.finals` since `from` to message `job`.
    pub(crate) fn reject_since(&mut self, job: usize, from: usize) {
        let reasons: Vec<String> = self.stats.finals.drain(from..).collect();
        if let Some(slot) = self.rejected.get_mut(job) {
            slot.extend(reasons);
        }
    }

    /// Records a final failure of the messages `jobs`.
    pub(crate) fn reject(&mut self, jobs: impl IntoIterator<Item = usize>, reason: &str) {
        for job in jobs {
            if let Some(slot) = self.rejected.get_mut(job) {
                slot.push(reason.to_string());
            }
        }
    }

    /// Whether message `job` has not failed so far (later steps skip failed messages: SQS
    /// redelivers them whole, and everything done for them is safe to repeat).
    pub(crate) fn ok(&self, job: usize) -> bool {
        self.failed.get(job).is_some_and(Option::is_none)
    }
}

/// A record of a sync job and the contact it maps to, before its ledger is read.
struct Mapped<'a> {
    job: usize,
    source: &'a Source,
    record: &'a Record,
    observed: Observed,
}

/// A record of a sync job and its planned writes (built from the contact's ledger).
struct Routed<'a> {
    job: usize,
    source: &'a Source,
    record: &'a Record,
    writes: BrevoWrites,
    entry: Option<LedgerEntry>,
}

/// The records of one sync message that take single upserts.
struct SingleUpserts<'a> {
    job: usize,
    source: &'a Source,
    contacts: Vec<Routed<'a>>,
}

/// A record whose contact was written (or at least sent): its list removals and events remain.
struct Target {
    job: usize,
    writes: BrevoWrites,
    entry: Option<LedgerEntry>,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// The sync path over `jobs`, unless `deadline` has passed; stopped when it passes (every
    /// sync message then fails and is redelivered).
    pub(crate) async fn sync_before(
        &self,
        jobs: &[(&Message, Job)],
        deadline: Option<Instant>,
        taken: &Batch,
    ) -> SyncRun {
        if jobs.is_empty() {
            return SyncRun::default();
        }
        let span = tracing::info_span!("upsert_sync", messages = jobs.len());
        let run = self.process_sync(jobs, taken).instrument(span);
        match deadline {
            None => run.await,
            Some(d) if Instant::now() >= d => {
                SyncRun::all_failed(jobs.len(), "not started: invocation deadline reached")
            }
            Some(d) => tokio::time::timeout_at(d, run).await.unwrap_or_else(|_| {
                SyncRun::all_failed(jobs.len(), "stopped: invocation deadline reached")
            }),
        }
    }

    /// The batch path for sync jobs: all messages of the batch together.
    ///
    /// 1. people named only by id are looked up (as on the per-record path);
    /// 2. each record is mapped, merged into its contact's ledger and planned, and joins its
    ///    source's all-contacts list (configured, or the default one: `crate::lists`); contacts
    ///    with an email and not unsubscribed go to imports, the rest (ext_id or SMS only,
    ///    unsubscribed — the import call has one blocklist flag for all its contacts —, no list
    ///    because default lists are off or unavailable) to single upserts;
    /// 3. imports: one `/v3/contacts/import` per (source, list-id set), so tag lists are joined
    ///    in the same call (`/contacts/lists/{id}/contacts/add` would need the contacts to exist,
    ///    which an asynchronous import does not promise, and costs a call per list and 150
    ///    contacts); the source's mapped attributes are made to exist first;
    /// 4. single upserts as on the per-record path (SMS-conflict retry included);
    /// 5. list removals of removed tags, one call per contact and list as today;
    /// 6. events: claimed one by one in the state store, sent up to 200 per `/v3/events/batch`.
    ///
    /// A retryable failure fails the messages that contributed to the failed call; the others
    /// go on. Redelivery is safe: imports and upserts are idempotent, events deduped.
    async fn process_sync(&self, jobs: &[(&Message, Job)], taken: &Batch) -> SyncRun {
        let mut run = SyncRun::new(jobs.len());
        tracing::debug!(job_ids = ?jobs.iter().map(|(_, j)| j.id.as_str()).collect::<Vec<_>>(),
            "upsert: sync jobs");

        // 1. Look-ups, messages side by side (`buffered` keeps their order).
        let work: Vec<_> = jobs.iter().map(|(_, job)| self.resolve_job(job)).collect();
        let resolved: Vec<(Stats, Result<Vec<Record>, Retry>)> = futures::stream::iter(work)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut records: Vec<Vec<Record>> = Vec::with_capacity(jobs.len());
        for (j, (stats, result)) in resolved.into_iter().enumerate() {
            run.stats += stats;
            records.push(result.unwrap_or_else(|retry| {
                run.fail_with(j, retry);
                Vec::new()
            }));
        }

        // 2. Mapping, each record merged into its contact's ledger and planned (contacts side by
        //    side), then routing.
        let mut mapped: Vec<Mapped> = Vec::new();
        let mut all_contacts_lists: HashMap<&Source, Option<i64>> = HashMap::new();
        for (j, ((_, job), job_records)) in jobs.iter().zip(&records).enumerate() {
            let source = &job.source;
            if job_records.is_empty() {
                continue;
            }
            if !all_contacts_lists.contains_key(source) {
                let list = self.import_list(source).await;
                all_contacts_lists.insert(source, list);
            }
            for record in job_records {
                match plan::observe(&self.mapping, source, record) {
                    Ok(observed) => mapped.push(Mapped {
                        job: j,
                        source,
                        record,
                        observed,
                    }),
                    Err(e) => {
                        run.stats.skipped_no_identifier += 1;
                        tracing::warn!(reason = %e, "upsert: record skipped");
                    }
                }
            }
        }
        let mapped = self.reconcile_all(mapped, &mut run).await;

        let mut imports: Vec<Routed> = Vec::new();
        let mut singles: Vec<SingleUpserts> = Vec::new();
        for mut routed in mapped {
            let all_contacts = all_contacts_lists.get(routed.source).copied().flatten();
            if let Some(list) = all_contacts {
                routed.writes.join(list);
            }
            if all_contacts.is_some()
                && routed.writes.contact.email.is_some()
                && routed.writes.contact.email_blacklisted != Some(true)
            {
                imports.push(routed);
                continue;
            }
            match singles.last_mut() {
                Some(last) if last.job == routed.job => last.contacts.push(routed),
                _ => singles.push(SingleUpserts {
                    job: routed.job,
                    source: routed.source,
                    contacts: vec![routed],
                }),
            }
        }

        // 3.–6.
        let mut targets = self.import_all(imports, &mut run).await;
        targets.extend(self.upsert_singles(singles, &mut run).await);
        self.leave_lists(&targets, &mut run).await;
        self.identify_sync_events(&mut targets, &mut run).await;
        self.send_sync_events(&targets, taken, &mut run).await;
        run
    }

    /// Every record of a job with its person filled in; a retryable look-up failure fails it.
    async fn resolve_job(&self, job: &Job) -> (Stats, Result<Vec<Record>, Retry>) {
        let mut stats = Stats::default();
        let mut found: HashMap<String, Found> = HashMap::new();
        let mut out = Vec::with_capacity(job.records.len());
        for record in &job.records {
            if record.is_deletion() {
                match self.forget(&job.source, record, &mut stats).await {
                    Ok(()) => continue,
                    Err(retry) => return (stats, Err(retry)),
                }
            }
            match self
                .resolve_person(&job.source, job.origin, record, &mut found, &mut stats)
                .await
            {
                Ok(record) => out.push(record),
                Err(retry) => return (stats, Err(retry)),
            }
        }
        (stats, Ok(out))
    }

    /// Merges every mapped record into its contact's ledger and plans it, [`STATE_CONCURRENCY`] at a time
    /// (records of one contact in one batch meet as conditional-write conflicts and are
    /// retried). A failure fails the record's message and drops the record from this run.
    async fn reconcile_all<'a>(
        &self,
        mapped: Vec<Mapped<'a>>,
        run: &mut SyncRun,
    ) -> Vec<Routed<'a>> {
        let work: Vec<_> = mapped
            .into_iter()
            .map(|m| async move {
                let mut stats = Stats::default();
                let result = self
                    .reconcile(m.source, m.record, &m.observed, &mut stats)
                    .await
                    .map(|planned| {
                        planned.map(|(writes, entry)| Routed {
                            job: m.job,
                            source: m.source,
                            record: m.record,
                            writes,
                            entry,
                        })
                    });
                (m.job, stats, result)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(work)
            .buffered(STATE_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for (job, stats, result) in results {
            run.stats += stats;
            match result {
                Ok(Some(routed)) => out.push(routed),
                Ok(None) => {}
                Err(Retry { reason, .. }) => run.fail(job, &reason),
            }
        }
        out.retain(|r| run.ok(r.job));
        out
    }

    /// The list `source`'s contacts are imported into ([`Upserter::all_contacts_list`]); `None`
    /// (single upserts, slower) when there is none, logged once per container and source.
    async fn import_list(&self, source: &Source) -> Option<i64> {
        let (list, why) = match self.all_contacts_list(source).await {
            Ok(Some(list)) => return Some(list),
            Ok(None) => (
                None,
                "no all_contacts list configured and default lists switched off".to_string(),
            ),
            Err(e) => (None, format!("the default list is unavailable ({e})")),
        };
        if lock(&self.no_list_noted).insert(source.clone()) {
            tracing::info!("sync: {why} for {source}; using single upserts (slower)");
        }
        list
    }

    /// Step 4: single upserts, messages side by side, each message's records in order.
    async fn upsert_singles<'a>(
        &self,
        singles: Vec<SingleUpserts<'a>>,
        run: &mut SyncRun,
    ) -> Vec<Target> {
        let work: Vec<_> = singles
            .into_iter()
            .filter(|s| run.ok(s.job))
            .map(|s| self.upsert_job_contacts(s))
            .collect();
        let results: Vec<(usize, Stats, Result<Vec<Target>, Retry>)> = futures::stream::iter(work)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut targets = Vec::new();
        for (job, mut stats, result) in results {
            let finals = std::mem::take(&mut stats.finals);
            if !finals.is_empty() {
                run.reject([job], &finals.join("; "));
            }
            run.stats += stats;
            match result {
                Ok(t) => targets.extend(t),
                Err(Retry { reason, .. }) => run.fail(job, &reason),
            }
        }
        targets
    }

    /// The single upserts of one message.
    async fn upsert_job_contacts<'a>(
        &self,
        work: SingleUpserts<'a>,
    ) -> (usize, Stats, Result<Vec<Target>, Retry>) {
        let SingleUpserts {
            job,
            source,
            contacts,
        } = work;
        let mut stats = Stats::default();
        let mut targets = Vec::new();
        for Routed { writes, entry, .. } in contacts {
            let subject = describe(writes.key.as_ref());
            let sms = match self
                .upsert(writes.contact.clone(), &subject, &mut stats)
                .await
            {
                // A phone-only contact that could not be written: nothing addresses its events.
                Ok(None) if writes.key.is_none() => continue,
                Ok(sms) => sms,
                Err(retry) => return (job, stats, Err(retry)),
            };
            if let Some(entry) = &entry {
                let mut sent = writes.contact.clone();
                if sms.is_none() {
                    sent.attributes.remove(SMS);
                }
                if let Err(retry) = self
                    .confirm(source, entry, &sent, &subject, &mut stats)
                    .await
                {
                    return (job, stats, Err(retry));
                }
            }
            targets.push(Target { job, writes, entry });
        }
        (job, stats, Ok(targets))
    }

    /// Step 5: contacts leave the lists of their removed tags.
    async fn leave_lists(&self, targets: &[Target], run: &mut SyncRun) {
        for target in targets {
            let Some(key) = &target.writes.key else {
                continue;
            };
            let subject = describe(Some(key));
            for &list_id in &target.writes.lists_leave {
                if !run.ok(target.job) {
                    break;
                }
                let before = run.stats.finals.len();
                if let Err(Retry { reason, .. }) = self
                    .leave_list(list_id, key, &subject, &mut run.stats)
                    .await
                {
                    run.fail(target.job, &reason);
                }
                run.reject_since(target.job, before);
            }
            if let (Some(rating), Some(entry)) = (&target.writes.csat_placed, &target.entry)
                && run.ok(target.job)
                && let Err(Retry { reason, .. }) =
                    self.csat_placed(&entry.key, rating, &mut run.stats).await
            {
                run.fail(target.job, &reason);
            }
            if let Some(entry) = &target.entry
                && run.ok(target.job)
                && let Err(Retry { reason, .. }) = self
                    .placed(&entry.key, &target.writes.placements, &mut run.stats)
                    .await
            {
                run.fail(target.job, &reason);
            }
        }
    }
}
