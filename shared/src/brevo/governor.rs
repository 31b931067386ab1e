//! One rate governor for every Brevo call of the process.
//!
//! Brevo limits the contact and event endpoints to 10 requests per second **and** 36,000 per hour
//! (General tier, both at once; API-BREVO.md §6). The governor keeps two token buckets (the
//! `governor` crate's GCRA) and, on top of them, listens to Brevo itself: when a response says
//! `x-sib-ratelimit-remaining: 0`, or Brevo answers 429, every caller pauses until the reset time
//! has passed. The buckets keep us under the limit we know about; the feedback covers what we
//! cannot see (other processes and Lambda instances spending the same account's budget).
//!
//! All waiting uses tokio's clock (the buckets run on a clock built on `tokio::time::Instant`),
//! so tests can run the governor under a paused clock and count refill periods exactly.
//! When nothing is limited, [`RateGovernor::acquire`] is two atomic loads and two bucket checks.
//!
//! The governor also keeps the process's Brevo figures ([`BrevoUsage`]): every client that shares
//! it counts its calls, 429s and errors there, and the governor adds the time callers spent
//! waiting for a slot. The upsert function reads and resets them once per batch for its metrics.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// Brevo's General-tier limits for `/v3/contacts*` and `/v3/events`.
pub const DEFAULT_PER_SECOND: u32 = 10;
pub const DEFAULT_PER_HOUR: u32 = 36_000;

/// A `governor` clock reading tokio's (pausable) time, as nanoseconds since the governor's origin.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    fn nanos_at(&self, at: Instant) -> Nanos {
        Nanos::from(at.saturating_duration_since(self.origin))
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        self.nanos_at(Instant::now())
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// The caller would have to wait past its deadline; it should give up and retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Brevo rate limit: next slot in {0:?}, past the caller's deadline")]
pub struct WouldExceedDeadline(pub Duration);

/// Counters of the Brevo calls made through one governor (plain atomics: a few nanoseconds per
/// call). [`BrevoUsage::take`] reads and resets them.
#[derive(Debug, Default)]
pub struct BrevoUsage {
    calls: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    waited_nanos: AtomicU64,
}

/// What [`BrevoUsage::take`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageFigures {
    /// HTTP requests sent to Brevo, retries included.
    pub calls: u64,
    /// Of those, answers 429 Too Many Requests.
    pub throttled: u64,
    /// Of those, failures other than 429: 5xx and other non-2xx answers, timeouts, connection
    /// failures.
    pub errors: u64,
    /// Time callers spent waiting for a slot (the buckets or a pause Brevo asked for).
    pub waited: Duration,
}

impl BrevoUsage {
    /// Counts one request; `status` is the HTTP status, `None` when no answer came.
    pub fn record_call(&self, status: Option<u16>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match status {
            Some(429) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
            }
            Some(s) if (200..300).contains(&s) => {}
            _ => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn record_wait(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.waited_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The figures since the last call, and resets them to zero.
    pub fn take(&self) -> UsageFigures {
        UsageFigures {
            calls: self.calls.swap(0, Ordering::Relaxed),
            throttled: self.throttled.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            waited: Duration::from_nanos(self.waited_nanos.swap(0, Ordering::Relaxed)),
        }
    }
}

/// Token buckets for Brevo's per-second and per-hour limits plus a shared "blocked until" set from
/// Brevo's own rate-limit headers. Share one instance (in an `Arc`) between all clients.
#[derive(Debug)]
pub struct RateGovernor {
    clock: TokioClock,
    per_second: Bucket,
    per_hour: Bucket,
    /// Nanoseconds since `clock.origin` before which nobody may call Brevo; 0 = not blocked.
    blocked_until: AtomicU64,
    usage: BrevoUsage,
}

impl Default for RateGovernor {
    fn default() -> Self {
        RateGovernor::new(DEFAULT_PER_SECOND, DEFAULT_PER_HOUR)
    }
}

impl RateGovernor {
    /// A governor allowing `per_second` requests per second and `per_hour` per hour (0 is read as 1).
    /// Each bucket allows a burst of its whole quota and refills evenly (`per_second` spaced
    /// `1/per_second` apart), so the per-second bucket is what paces steady traffic.
    pub fn new(per_second: u32, per_hour: u32) -> Self {
        let one = NonZeroU32::MIN;
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let second_quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(one));
        let hour_quota = Quota::per_hour(NonZeroU32::new(per_hour).unwrap_or(one));
        RateGovernor {
            clock,
            per_second: RateLimiter::direct_with_clock(second_quota, clock),
            per_hour: RateLimiter::direct_with_clock(hour_quota, clock),
            blocked_until: AtomicU64::new(0),
            usage: BrevoUsage::default(),
        }
    }

    /// The Brevo figures of every client sharing this governor.
    pub fn usage(&self) -> &BrevoUsage {
        &self.usage
    }

    /// Waits for a slot, however long that takes.
    pub async fn until_ready(&self) {
        // Without a deadline `acquire` never gives up.
        let _ = self.acquire(None).await;
    }

    /// Waits for a slot unless the wait would run past `deadline`; then returns how long the
    /// caller would have had to wait (from now), without taking a slot.
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<(), WouldExceedDeadline> {
        loop {
            let now = Instant::now();
            // 1. A pause requested by Brevo applies to everyone.
            if let Some(until) = self.blocked_until() {
                let wait = until.saturating_duration_since(now);
                if !wait.is_zero() {
                    if deadline.is_some_and(|d| until > d) {
                        return Err(WouldExceedDeadline(wait));
                    }
                    tracing::debug!(
                        wait_ms = wait.as_millis() as u64,
                        "brevo paused: waiting for the rate-limit reset"
                    );
                    tokio::time::sleep_until(until).await;
                    self.usage.record_wait(wait);
                    continue;
                }
            }
            // 2. The buckets. The per-second one is checked first because it binds most often; a
            // refused per-hour check then wastes one per-second slot, which only slows us while
            // the hourly budget is exhausted anyway.
            let refused = match self.per_second.check() {
                Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
                Ok(()) => match self.per_hour.check() {
                    Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
                    Ok(()) => None,
                },
            };
            let Some(wait) = refused else {
                return Ok(());
            };
            if deadline.is_some_and(|d| now + wait > d) {
                return Err(WouldExceedDeadline(wait));
            }
            tokio::time::sleep(wait).await;
            self.usage.record_wait(wait);
        }
    }

    /// Pauses every caller for `wait` from now (never shortens an existing pause).
    pub fn pause_for(&self, wait: Duration) {
        let until = self.clock.nanos_at(Instant::now() + wait).as_u64();
        let previous = self.blocked_until.fetch_max(until, Ordering::AcqRel);
        if until > previous {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "brevo rate limit: pausing all calls"
            );
        }
    }

    /// Feeds back `x-sib-ratelimit-remaining` / `x-sib-ratelimit-reset` of a response: when no
    /// request is left in Brevo's window, pause everyone until the reset (1 s when not given).
    pub fn observe(&self, remaining: Option<u64>, reset: Option<Duration>) {
        if remaining == Some(0) {
            self.pause_for(reset.unwrap_or(Duration::from_secs(1)));
        }
    }

    /// The end of the current pause, if one is running.
    pub fn blocked_until(&self) -> Option<Instant> {
        let nanos = self.blocked_until.load(Ordering::Acquire);
        if nanos == 0 {
            return None;
        }
        let until = self.clock.origin + Duration::from_nanos(nanos);
        (until > Instant::now()).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn n_calls_take_the_expected_number_of_refill_periods() {
        let governor = RateGovernor::new(5, 36_000);
        let start = Instant::now();
        for _ in 0..15 {
            governor.until_ready().await;
        }
        // A burst of 5, then one slot every 200 ms: the 10 others need 10 refill periods.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(2000), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2200), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_hourly_budget_binds_too() {
        let governor = RateGovernor::new(100, 3);
        let start = Instant::now();
        for _ in 0..4 {
            governor.until_ready().await;
        }
        // 3 per hour: the 4th call waits one refill period of the hourly bucket (20 minutes).
        assert!(start.elapsed() >= Duration::from_secs(20 * 60));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_buckets() {
        let governor = std::sync::Arc::new(RateGovernor::new(10, 36_000));
        let start = Instant::now();
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let g = governor.clone();
                tokio::spawn(async move { g.until_ready().await })
            })
            .collect();
        for t in tasks {
            t.await.expect("task ran");
        }
        // 10 at once, then 20 more at 100 ms spacing.
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reported_reset_pauses_everyone_and_never_shortens() {
        let governor = RateGovernor::default();
        governor.observe(Some(3), Some(Duration::from_secs(30)));
        assert_eq!(governor.blocked_until(), None, "requests left: no pause");
        let start = Instant::now();
        governor.observe(Some(0), Some(Duration::from_secs(2)));
        governor.pause_for(Duration::from_secs(1)); // shorter: ignored
        governor.until_ready().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert_eq!(governor.blocked_until(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_are_counted_and_taken_once() {
        let governor = RateGovernor::new(1, 36_000);
        governor.until_ready().await;
        governor.until_ready().await; // waits one refill period: 1 s
        let usage = governor.usage();
        usage.record_call(Some(204));
        usage.record_call(Some(429));
        usage.record_call(Some(502));
        usage.record_call(None);
        let figures = usage.take();
        assert_eq!(
            (figures.calls, figures.throttled, figures.errors),
            (4, 1, 2)
        );
        assert!(figures.waited >= Duration::from_millis(990), "{figures:?}");
        assert_eq!(usage.take(), UsageFigures::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_refused_without_sleeping() {
        let governor = RateGovernor::default();
        governor.pause_for(Duration::from_secs(3600));
        let start = Instant::now();
        let refused = governor
            .acquire(Some(start + Duration::from_secs(10)))
            .await;
        assert!(matches!(refused, Err(WouldExceedDeadline(w)) if w >= Duration::from_secs(3599)));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
