//! One helpdesk account's request budget, kept in the state table so that every process that
//! spends it draws from the same bucket: the sync's readers in any number of invocations, and
//! the look-ups of the upsert and backfill functions.
//!
//! The item `budget#<source>` holds a token bucket as a revisioned document
//! ([`StateStore::load_doc`]/[`StateStore::save_doc`]): `tokens` left at `at_ms` (epoch
//! milliseconds), refilled one token per [`Rate::interval`] up to [`Rate::burst`], the same
//! shape as each process's own [`Limiter`](crate::sync::limiter::Limiter), so that all of them
//! together still send at most the rate's limit in any window. A process takes a block of up to
//! a burst at once and spends it through its own limiter: one read and one conditional write per
//! block, not per request.
//!
//! A 429 seen by any process is written into the item as `paused_until_ms`; until then no
//! process is granted anything, so nobody sends before the helpdesk's `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StateStore;
use crate::clock::{Clock, SystemClock};
use crate::model::Source;
use crate::sync::limiter::{Grant, Rate, SharedBudget};

/// How long an idle budget item is kept: a day after its last write.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Attempts at a conditional write before answering "wait one interval" (another process
/// wrote first every time).
const ATTEMPTS: usize = 4;

/// The key of `source`'s budget item.
pub fn budget_key(source: &Source) -> String {
    format!("budget#{source}")
}

/// The stored bucket.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
    #[serde(default)]
    paused_until_ms: i64,
}

/// A helpdesk account's budget in the state table ([`SharedBudget`]).
#[derive(Debug)]
pub struct StoredBudget<S> {
    store: S,
    key: String,
    rate: Rate,
    clock: Arc<dyn Clock>,
}

impl<S: StateStore> StoredBudget<S> {
    /// The budget of `source` at `rate` (the account's whole rate, not a share of it), in
    /// `store`.
    pub fn new(store: S, source: &Source, rate: Rate) -> Self {
        StoredBudget {
            store,
            key: budget_key(source),
            rate,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same, reading the time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn interval_ms(&self) -> f64 {
        (self.rate.interval().as_secs_f64() * 1000.0).max(1.0)
    }

    fn capacity(&self) -> f64 {
        f64::from(self.rate.burst())
    }

    /// The stored bucket and its revision, refilled up to `now_ms`; a full bucket when none is
    /// stored (or it cannot be read: it is then written anew).
    async fn load(&self, now_ms: i64) -> Result<(Option<u64>, Bucket), String> {
        let doc = self
            .store
            .load_doc(&self.key)
            .await
            .map_err(|e| e.to_string())?;
        let full = Bucket {
            tokens: self.capacity(),
            at_ms: now_ms,
            paused_until_ms: 0,
        };
        let Some(doc) = doc else {
            return Ok((None, full));
        };
        let stored: Bucket = serde_json::from_str(&doc.text).unwrap_or(full);
        // Clocks of different processes disagree a little: time never runs backwards here.
        let elapsed = now_ms.saturating_sub(stored.at_ms).max(0);
        let tokens =
            (stored.tokens + elapsed as f64 / self.interval_ms()).clamp(0.0, self.capacity());
        Ok((
            Some(doc.rev),
            Bucket {
                tokens,
                at_ms: now_ms.max(stored.at_ms),
                paused_until_ms: stored.paused_until_ms,
            },
        ))
    }

    async fn save(&self, rev: Option<u64>, bucket: &Bucket) -> Result<bool, String> {
        let text = serde_json::to_string(bucket).map_err(|e| e.to_string())?;
        self.store
            .save_doc(&self.key, rev, &text, Some(KEEP))
            .await
            .map_err(|e| e.to_string())
    }
}

fn millis(wait_ms: f64) -> Duration {
    Duration::from_millis(wait_ms.ceil().max(1.0) as u64)
}

#[async_trait]
impl<S: StateStore + Clone + std::fmt::Debug + 'static> SharedBudget for StoredBudget<S> {
    fn lane(&self, name: &str, rate: Rate) -> Option<Arc<dyn SharedBudget>> {
        Some(Arc::new(StoredBudget {
            store: self.store.clone(),
            key: format!("{}/{name}", self.key),
            rate,
            clock: self.clock.clone(),
        }))
    }

    async fn take(&self, want: u32) -> Result<Grant, String> {
        let want = f64::from(want.clamp(1, self.rate.burst()));
        for _ in 0..ATTEMPTS {
            let now_ms = self.clock.now().timestamp_millis();
            let (rev, mut bucket) = self.load(now_ms).await?;
            if bucket.paused_until_ms > now_ms {
                return Ok(Grant::Wait(millis(
                    (bucket.paused_until_ms - now_ms) as f64,
                )));
            }
            if bucket.tokens + 1e-9 < want {
                return Ok(Grant::Wait(millis(
                    (want - bucket.tokens) * self.interval_ms(),
                )));
            }
            bucket.tokens = (bucket.tokens - want).max(0.0);
            if self.save(rev, &bucket).await? {
                return Ok(Grant::Granted(want as u32));
            }
        }
        Ok(Grant::Wait(millis(self.interval_ms())))
    }

    async fn pause(&self, until: DateTime<Utc>) -> Result<(), String> {
        let until_ms = until.timestamp_millis();
        for _ in 0..ATTEMPTS {
            let now_ms = self.clock.now().timestamp_millis();
            let (rev, mut bucket) = self.load(now_ms).await?;
            if bucket.paused_until_ms >= until_ms {
                return Ok(());
            }
            bucket.paused_until_ms = until_ms;
            if self.save(rev, &bucket).await? {
                return Ok(());
            }
        }
        Err(format!("{}: the pause could not be stored", self.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::memory::MemoryStateStore;

    fn budget(
        store: Arc<MemoryStateStore>,
        clock: &Arc<ManualClock>,
    ) -> StoredBudget<Arc<MemoryStateStore>> {
        // Intercom's preset: 160 per 10 s, bursts of 4: one token every 10 s / 157.
        StoredBudget::new(store, &Source::Intercom, Rate::intercom()).with_clock(clock.clone())
    }

    fn start() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-12-07T03:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        ))
    }

    #[tokio::test]
    async fn two_processes_together_are_granted_no_more_than_the_rate() {
        let store = Arc::new(MemoryStateStore::new());
        let clock = start();
        let (a, b) = (budget(store.clone(), &clock), budget(store.clone(), &clock));
        let mut granted = 0u32;
        // 60 s of both asking for a burst every 10 ms, and a look-up asking for one.
        for _ in 0..6_000 {
            for (p, want) in [(&a, 4), (&b, 4), (&a, 1)] {
                if let Ok(Grant::Granted(n)) = p.take(want).await {
                    granted += n;
                }
            }
            clock.advance(Duration::from_millis(10));
        }
        // The bucket starts full (4) and refills 157 per 10 s: at most 4 + 6 × 157 in 60 s.
        assert!(granted <= 4 + 6 * 157, "granted {granted}");
        assert!(
            granted >= 6 * 157 - 4,
            "the budget is spent, not wasted: {granted}"
        );
    }

    #[tokio::test]
    async fn an_empty_bucket_says_how_long_to_wait_for_the_block_asked() {
        let store = Arc::new(MemoryStateStore::new());
        let clock = start();
        let a = budget(store, &clock);
        assert_eq!(a.take(4).await, Ok(Grant::Granted(4)));
        let Ok(Grant::Wait(wait)) = a.take(4).await else {
            panic!("an empty bucket grants nothing");
        };
        // Four tokens at 10 s / 157 each: 255 ms.
        assert!(
            (Duration::from_millis(250)..=Duration::from_millis(256)).contains(&wait),
            "{wait:?}"
        );
        clock.advance(wait);
        assert_eq!(a.take(4).await, Ok(Grant::Granted(4)));
        // A burst is the most ever granted at once.
        clock.advance(Duration::from_secs(60));
        assert_eq!(a.take(50).await, Ok(Grant::Granted(4)));
    }

    /// The wall clock as tokio's (pausable) clock moves it.
    #[derive(Debug)]
    struct TokioClock {
        start: DateTime<Utc>,
        origin: tokio::time::Instant,
    }

    impl Clock for TokioClock {
        fn now(&self) -> DateTime<Utc> {
            self.start + chrono::Duration::from_std(self.origin.elapsed()).unwrap_or_default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiters_of_two_processes_together_stay_within_the_account_rate() {
        use crate::sync::limiter::Limiter;
        use crate::sync::limiter::tests::max_in_window;
        let store = Arc::new(MemoryStateStore::new());
        let clock: Arc<dyn Clock> = Arc::new(TokioClock {
            start: start().now(),
            origin: tokio::time::Instant::now(),
        });
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut tasks = Vec::new();
        // Two processes, each with its own limiter at the whole account rate and three callers.
        for _ in 0..2 {
            let limiter = Arc::new(Limiter::new("intercom", Rate::intercom()));
            limiter.attach(Arc::new(
                StoredBudget::new(store.clone(), &Source::Intercom, Rate::intercom())
                    .with_clock(clock.clone()),
            ));
            for _ in 0..3 {
                let (limiter, sent) = (limiter.clone(), sent.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        limiter.acquire().await;
                        let now = tokio::time::Instant::now();
                        if now >= end {
                            return;
                        }
                        sent.lock().unwrap_or_else(|e| e.into_inner()).push(now);
                    }
                }));
            }
        }
        for task in tasks {
            task.await.expect("caller task");
        }
        let mut times = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
        times.sort();
        // Alone, each limiter would send 157 per 10 s: together they would send twice the limit.
        let most = max_in_window(&times, Duration::from_secs(10));
        assert!(most <= 160, "{most} requests in one 10 s window");
        assert!(
            times.len() >= 3 * 157 - 10,
            "the account's budget is spent: {} in 30 s",
            times.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_cannot_wait_out_another_process_pause_is_told_how_long_it_is() {
        use crate::sync::limiter::Limiter;
        let store = Arc::new(MemoryStateStore::new());
        let clock = start();
        let limiter = Limiter::new("intercom", Rate::intercom());
        limiter.attach(Arc::new(budget(store.clone(), &clock)));
        // Another process saw a 429 with Retry-After: 30.
        budget(store, &clock)
            .pause(clock.now() + chrono::Duration::seconds(30))
            .await
            .expect("pause stored");
        let left = limiter
            .acquire_within(Duration::from_secs(5))
            .await
            .expect_err("a 30 s pause is longer than 5 s");
        assert!(left > Duration::from_secs(29), "{left:?}");
    }

    #[tokio::test]
    async fn a_pause_written_by_one_process_holds_every_other_until_it_ends() {
        let store = Arc::new(MemoryStateStore::new());
        let clock = start();
        let (a, b) = (budget(store.clone(), &clock), budget(store.clone(), &clock));
        let until = clock.now() + chrono::Duration::seconds(30);
        a.pause(until).await.expect("pause stored");
        assert_eq!(b.take(1).await, Ok(Grant::Wait(Duration::from_secs(30))));
        // A shorter pause never shortens it.
        a.pause(clock.now() + chrono::Duration::seconds(5))
            .await
            .expect("pause stored");
        clock.advance(Duration::from_secs(29));
        assert_eq!(b.take(1).await, Ok(Grant::Wait(Duration::from_secs(1))));
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.take(1).await, Ok(Grant::Granted(1)));
    }
}
