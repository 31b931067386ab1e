//! Step 6 of the sync path: the planned events of the written contacts, claimed one by one in
//! the state store and sent up to 200 (and 512 KB) per `/v3/events/batch` (one by one when Brevo
//! refuses a batch for one bad event); sent ones are marked, the others released (see
//! [`crate::claims`]). Items of a `207` that Brevo could take later are retried alone.

use std::collections::HashMap;

use deskbridge_shared::brevo::{BrevoApi, BrevoError, EventRequest};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::state::{self, Claim, StateError, StateStore};
use futures::StreamExt;

use super::{SyncRun, Target};
use crate::claims::{Batch, Claimed, EVENT_CLAIM_TTL, STATE_CONCURRENCY};
use crate::stats::{Retry, final_or_retry};
use crate::upserter::Upserter;

/// Events per `/v3/events/batch` call: Brevo's maximum.
pub const EVENTS_PER_BATCH: usize = 200;
/// Body bytes per `/v3/events/batch` call: Brevo takes 512 KB; the rest is room for the wrapper.
pub const EVENTS_BATCH_BYTES: usize = 500 * 1024;

/// Splits `requests` into consecutive batches of at most [`EVENTS_PER_BATCH`] events and
/// [`EVENTS_BATCH_BYTES`] of JSON each. An event larger than the byte limit alone goes in a
/// batch of its own (Brevo refuses it, and the batch falls back to single sends).
pub fn batch_ranges(requests: &[EventRequest]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, request) in requests.iter().enumerate() {
        // Items are joined by a comma; a request that cannot be measured counts as full.
        let size = serde_json::to_vec(request).map_or(EVENTS_BATCH_BYTES, |v| v.len() + 1);
        if i > start && (i - start == EVENTS_PER_BATCH || bytes + size > EVENTS_BATCH_BYTES) {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < requests.len() {
        ranges.push(start..requests.len());
    }
    ranges
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Before step 6: the repeatable milestones of the written contacts get the ids of the
    /// happenings they are ([`Upserter::identify`]); a job whose events could not be identified
    /// fails (its message is retried) and sends none of them now.
    pub(super) async fn identify_sync_events(&self, targets: &mut [Target], run: &mut SyncRun) {
        let mut jobs = Vec::new();
        let mut events = Vec::new();
        for target in targets.iter_mut() {
            if !run.ok(target.job) {
                continue;
            }
            for event in &mut target.writes.events {
                jobs.push(target.job);
                events.push(event);
            }
        }
        for (members, e) in self.identify(&mut events).await {
            for i in members {
                if let Some(&job) = jobs.get(i) {
                    run.fail(job, &format!("identifying events: {e}"));
                }
            }
        }
    }

    /// Step 6: claims the events of the written contacts, sends the new ones in batches,
    /// completes the claims of those sent and releases the others.
    pub(super) async fn send_sync_events<'a>(
        &self,
        targets: &'a [Target],
        taken: &Batch,
        run: &mut SyncRun,
    ) {
        let mut candidates: Vec<(Claimed<'a>, EventRequest)> = Vec::new();
        let mut carried = Vec::new();
        let mut carried_ids = Vec::new();
        for target in targets {
            if !run.ok(target.job) {
                continue;
            }
            for event in &target.writes.events {
                let Some(request) = &event.request else {
                    run.stats.events_unmapped += 1;
                    continue;
                };
                let request = request.clone();
                if !taken.take(&event.id) {
                    run.stats.events_skipped_duplicate += 1;
                    continue;
                }
                if taken.carried.contains(&event.id) {
                    run.stats.events_skipped_duplicate += 1;
                    carried.push(state::event_key(&event.id));
                    carried_ids.push(&event.id);
                    continue;
                }
                let claimed = Claimed {
                    job: target.job,
                    event_id: &event.id,
                    state_key: state::event_key(&event.id),
                };
                candidates.push((claimed, request));
            }
        }
        // Sent by an earlier attempt that could not mark them: mark them now, never resend.
        for (key, id) in carried.iter().zip(carried_ids) {
            self.complete_sent(key, id, taken).await;
        }
        if candidates.is_empty() {
            return;
        }
        if let Some(why) = taken.too_late_to_send() {
            for (c, _) in &candidates {
                taken.untake(c.event_id);
                run.fail(c.job, &format!("event {} not sent: {why}", c.event_id));
            }
            return;
        }

        let claims: Vec<_> = candidates
            .iter()
            .map(|(c, _)| self.state.claim(&c.state_key, EVENT_CLAIM_TTL))
            .collect();
        let claims: Vec<Result<Claim, StateError>> = futures::stream::iter(claims)
            .buffered(STATE_CONCURRENCY)
            .collect()
            .await;
        let mut claimed = Vec::new();
        let mut requests = Vec::new();
        for ((c, request), claim) in candidates.into_iter().zip(claims) {
            match claim {
                Ok(Claim::Done) => run.stats.events_skipped_duplicate += 1,
                Ok(Claim::Busy) => {
                    taken.untake(c.event_id);
                    run.fail(
                        c.job,
                        &format!(
                            "event {} is being sent by another worker; checking again later",
                            c.event_id
                        ),
                    );
                }
                Ok(claim) => {
                    if claim == Claim::Abandoned {
                        tracing::info!(event_id = %c.event_id, "upsert: event claimed before but not completed; sending it");
                    }
                    claimed.push(c);
                    requests.push(request);
                }
                Err(e) => {
                    taken.untake(c.event_id);
                    run.fail(c.job, &format!("claiming event {}: {e}", c.event_id));
                }
            }
        }

        for range in batch_ranges(&requests) {
            let (chunk, requests) = (&claimed[range.clone()], &requests[range]);
            if let Some(why) = taken.too_late_to_send() {
                self.unsent(chunk, why, taken, run).await;
                continue;
            }
            match self.brevo().send_events(requests).await {
                Ok(refused) => {
                    run.stats.event_batches += 1;
                    let refused: HashMap<usize, BrevoError> = refused.into_iter().collect();
                    let mut sent = Vec::new();
                    let mut dropped = Vec::new();
                    for (i, (c, request)) in chunk.iter().zip(requests).enumerate() {
                        match refused.get(&i) {
                            None => {
                                run.stats.events += 1;
                                sent.push(c);
                            }
                            Some(e) if e.is_worth_retrying() => {
                                // Only this item is sent again: the others are marked sent
                                // below, so the retried message skips them.
                                taken.untake(c.event_id);
                                run.fail(c.job, &format!("event {} of a batch: {e}", c.event_id));
                                dropped.push(c);
                            }
                            Some(e) => {
                                run.stats.rejected += 1;
                                tracing::warn!(event_id = %c.event_id, event_name = %request.event_name, error = %e,
                                    "upsert: Brevo refused an event of a batch; not retried");
                                let reason = format!(
                                    "Brevo refused event {} ({}): {e}",
                                    request.event_name, c.event_id
                                );
                                run.reject([c.job], &reason);
                                dropped.push(c);
                            }
                        }
                    }
                    self.complete_claims(&sent, taken).await;
                    self.release_claims(&dropped).await;
                }
                Err(e) if e.is_worth_retrying() => {
                    let reason = format!("sending a batch of {} events: {e}", requests.len());
                    for c in chunk {
                        run.fail(c.job, &reason);
                    }
                    self.release_claims(&chunk.iter().collect::<Vec<_>>()).await;
                }
                Err(e) if falls_back_to_single_events(&e) => {
                    // One bad event (or an account without the batch endpoint) must not cost
                    // the other 99: send them one by one instead.
                    tracing::warn!(events = requests.len(), error = %e,
                        "upsert: Brevo refused an events batch; sending its events one by one");
                    for (c, request) in chunk.iter().zip(requests) {
                        self.send_claimed(c, request, taken, run).await;
                    }
                }
                Err(e) => {
                    run.stats.rejected += requests.len();
                    tracing::warn!(events = requests.len(), error = %e,
                        "upsert: Brevo refused an events batch; not retried");
                    let reason = format!("Brevo refused a batch of {} events: {e}", requests.len());
                    run.reject(chunk.iter().map(|c| c.job), &reason);
                    self.release_claims(&chunk.iter().collect::<Vec<_>>()).await;
                }
            }
        }
    }

    /// One claimed event through `POST /v3/events` (fallback of a refused batch).
    pub(super) async fn send_claimed(
        &self,
        c: &Claimed<'_>,
        request: &EventRequest,
        batch: &Batch,
        run: &mut SyncRun,
    ) {
        if let Some(why) = batch.too_late_to_send() {
            self.unsent(std::slice::from_ref(c), why, batch, run).await;
            return;
        }
        match self.brevo().send_event(request).await {
            Ok(()) => {
                run.stats.events += 1;
                self.complete_claims(&[c], batch).await;
            }
            Err(e) => {
                self.release_claims(&[c]).await;
                let what = format!("sending {} ({})", request.event_name, c.event_id);
                let before = run.stats.finals.len();
                if let Err(Retry { reason, .. }) = final_or_retry(e, &what, &mut run.stats) {
                    run.fail(c.job, &reason);
                }
                run.reject_since(c.job, before);
            }
        }
    }

    /// Claimed events not sent because the deadline is near: their claims are dropped and their
    /// messages retried.
    pub(super) async fn unsent(
        &self,
        claimed: &[Claimed<'_>],
        why: &str,
        batch: &Batch,
        run: &mut SyncRun,
    ) {
        for c in claimed {
            batch.untake(c.event_id);
            run.fail(c.job, &format!("event {} not sent: {why}", c.event_id));
        }
        self.release_claims(&claimed.iter().collect::<Vec<_>>())
            .await;
    }
}

/// Whether a refused events batch is worth sending again event by event: a bad item or an
/// unknown route, not a bad key or a missing permission.
fn falls_back_to_single_events(err: &BrevoError) -> bool {
    matches!(err, BrevoError::Rejected { status, .. } if matches!(status, 400 | 404 | 405 | 413 | 422))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, padding: usize) -> EventRequest {
        serde_json::from_value(serde_json::json!({
            "event_name": name,
            "identifiers": {"email_id": "jane@example.com"},
            "event_properties": {"note": "x".repeat(padding)},
        }))
        .expect("an event request")
    }

    #[test]
    fn batches_hold_at_most_200_events() {
        let events: Vec<_> = (0..450).map(|i| event(&format!("e{i}"), 10)).collect();
        assert_eq!(batch_ranges(&events), vec![0..200, 200..400, 400..450]);
        assert!(batch_ranges(&[]).is_empty());
    }

    #[test]
    fn batches_stay_under_the_body_limit() {
        // 10 KB each: about 50 fit in 500 KB, far fewer than 200.
        let events: Vec<_> = (0..120).map(|i| event(&format!("e{i}"), 10_000)).collect();
        let ranges = batch_ranges(&events);
        assert!(ranges.len() >= 3, "{ranges:?}");
        for r in &ranges {
            let body = serde_json::to_vec(&serde_json::json!({"events": &events[r.clone()]}))
                .expect("serialisable");
            assert!(body.len() <= 512 * 1024, "{} bytes in {r:?}", body.len());
        }
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(120));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        // One event over the limit travels alone.
        let huge = [event("a", 10), event("b", 600_000), event("c", 10)];
        assert_eq!(batch_ranges(&huge), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn batch_refusals_are_told_apart() {
        let rejected = |status: u16, code: &str, message: &str| BrevoError::Rejected {
            status,
            code: code.into(),
            message: message.into(),
        };
        assert!(falls_back_to_single_events(&rejected(
            400,
            "invalid_parameter",
            "x"
        )));
        assert!(!falls_back_to_single_events(&rejected(
            401,
            "unauthorized",
            "x"
        )));
    }
}
