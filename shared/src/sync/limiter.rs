//! Client-side rate limiting of one helpdesk account.
//!
//! A [`Limiter`] combines two things:
//! - a token bucket (the `governor` crate's GCRA) sized so that it can never send more than the
//!   documented number of requests in any window of the documented length ([`Rate`]), so the
//!   bucket alone keeps us under the limit ("hitting a 429 is a planning failure");
//! - feedback from the helpdesk: a 429's `Retry-After`, and the rate headers of every response
//!   (Zendesk `ratelimit-*`/`X-Rate-Limit-*`, Intercom `X-RateLimit-*`, Gorgias
//!   `X-Gorgias-Account-Api-Call-Limit`), which cover the requests we cannot see (webhook
//!   look-ups and other processes spending the same account's budget). Feedback pauses *every*
//!   caller sharing the limiter until the pause ends.
//!
//! Processes that spend one account side by side (the sync's invocations, the look-ups of the
//! upsert and backfill functions) also draw from one [`SharedBudget`] once it is attached
//! ([`Limiter::attach`]): each takes blocks of up to a burst from it and spends them through its
//! own bucket, and a 429 seen by one of them pauses all of them ([`Limiter::pause_everyone`]).
//!
//! All waiting runs on tokio's clock, so tests can use a paused clock.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use chrono::{DateTime, Utc};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::http::{HeaderMap, MAX_RETRY_AFTER};

/// "At most `limit` requests in any window of `window`", with up to `burst` sent back to back.
///
/// A GCRA bucket of burst `b` emitting one cell every `t` lets through at most
/// `b + ceil(w / t) - 1` cells in any window `w`. [`Limiter`] therefore spaces requests
/// `window / (limit - burst + 1)` apart: a bigger burst costs sustained throughput, and a burst
/// of 1 paces requests evenly at exactly `limit` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    limit: NonZeroU32,
    window: Duration,
    burst: NonZeroU32,
}

impl Rate {
    /// `limit` requests per `window`, bursts of up to `burst` (0 is read as 1; the burst is
    /// capped at the limit; a zero window is read as one millisecond).
    pub fn new(limit: u32, window: Duration, burst: u32) -> Rate {
        let limit = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.min(limit.get())).unwrap_or(NonZeroU32::MIN);
        let window = window.max(Duration::from_millis(1));
        Rate {
            limit,
            window,
            burst,
        }
    }

    /// Zendesk incremental exports: "up to 10 requests per minute", evenly paced.
    pub fn zendesk_exports() -> Rate {
        Rate::new(10, Duration::from_secs(60), 1)
    }

    /// Zendesk account limit of the smallest plan (Suite Team, 200 per minute).
    pub fn zendesk_account() -> Rate {
        Rate::new(200, Duration::from_secs(60), 10)
    }

    /// Intercom private apps: 10,000 per minute, enforced in 10-second windows (~166 each).
    /// A burst of 4 keeps the sustained pace at 157 of the 160 per window (0.98).
    pub fn intercom() -> Rate {
        Rate::new(160, Duration::from_secs(10), 4)
    }

    /// Gorgias API-key integrations: a leaky bucket of 40 draining 40 per 20 s. A burst of 2
    /// keeps the sustained pace at 39 of the 40 (0.975).
    pub fn gorgias() -> Rate {
        Rate::new(40, Duration::from_secs(20), 2)
    }

    /// This rate divided among `instances` processes that share one account, so that together
    /// they stay within it (each keeps at least one request per window).
    pub fn share(self, instances: u32) -> Rate {
        let n = instances.max(1);
        Rate::new(
            (self.limit.get() / n).max(1),
            self.window,
            (self.burst.get() / n).max(1),
        )
    }

    pub fn limit(&self) -> u32 {
        self.limit.get()
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// Time between two requests once the burst is spent.
    pub fn interval(&self) -> Duration {
        // burst <= limit, so the divisor is at least 1.
        self.window / (self.limit.get() - self.burst.get() + 1)
    }

    fn quota(&self) -> Quota {
        let interval = self.interval().max(Duration::from_nanos(1));
        Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.burst)
    }
}

/// A `governor` clock reading tokio's (pausable) clock as the time elapsed since `origin`.
#[derive(Debug, Clone, Copy)]
struct TokioElapsed {
    origin: Instant,
}

impl Clock for TokioElapsed {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioElapsed, NoOpMiddleware<Duration>>;

/// What a response's rate headers say about the account's remaining budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    /// A fixed window (Zendesk, Intercom): `remaining` calls until `reset`.
    Window {
        remaining: u64,
        limit: Option<u64>,
        reset: Option<Duration>,
    },
    /// A leaky bucket (Gorgias): `used` of `limit` slots taken.
    Leaky { used: u64, limit: u64 },
}

/// What a [`SharedBudget`] answers a request for requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// This many may be sent (at least one).
    Granted(u32),
    /// None now: ask again after this long.
    Wait(Duration),
}

/// One helpdesk account's budget, shared with every other process that spends it
/// ([`crate::state::budget::StoredBudget`] keeps it in the state table).
#[async_trait]
pub trait SharedBudget: Send + Sync + std::fmt::Debug {
    /// Takes `want` requests' worth (at most a burst of the account's rate), or says how long
    /// to wait for them.
    async fn take(&self, want: u32) -> Result<Grant, String>;
    /// Grants nothing to anyone before `until` (a 429's `Retry-After`); never shortens a pause.
    async fn pause(&self, until: DateTime<Utc>) -> Result<(), String>;
    /// The budget of a lane of the same account with a limit of its own (Zendesk's incremental
    /// exports: 10 a minute besides the account's limit), at `rate`, shared the same way; none
    /// when this kind of budget has no lanes.
    fn lane(&self, _name: &str, _rate: Rate) -> Option<Arc<dyn SharedBudget>> {
        None
    }
}

/// How long a process paces by itself alone after the shared budget could not be read, before
/// it asks again: a state-table outage costs one failed read (and one log line) per spell, not
/// one per request.
pub const UNREADABLE_BACKOFF: Duration = Duration::from_secs(30);

/// When the shared budget was last found unreadable ([`UNREADABLE_BACKOFF`]).
#[derive(Debug, Default)]
pub struct Unreadable(Mutex<Option<Instant>>);

impl Unreadable {
    /// Whether the budget failed less than [`UNREADABLE_BACKOFF`] ago: do not ask it now.
    pub fn active(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|since| since.elapsed() < UNREADABLE_BACKOFF)
    }

    /// Notes a failure to read it.
    pub fn note(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }
}

/// What the shared budget said to one request.
enum Draw {
    /// Take it: the shared budget granted it.
    Granted,
    /// No shared budget to ask (none attached, or unreadable): pace by this process's share.
    Alone,
    /// Nothing left before this wait.
    Wait(Duration),
}

/// The rate limiter of one helpdesk account. Share it (in an `Arc`) between every caller that
/// spends the same account's budget.
#[derive(Debug)]
pub struct Limiter {
    name: String,
    rate: Rate,
    clock: TokioElapsed,
    bucket: Bucket,
    /// This process's share of the rate ([`Limiter::alone_share`]), kept to when no shared
    /// budget paces every process together: none is attached, or it cannot be read.
    alone: Option<Bucket>,
    /// No request may start before this instant (set by a 429 or by the rate headers).
    paused_until: Mutex<Option<Instant>>,
    /// The budget shared with other processes, once attached.
    shared: OnceLock<Arc<dyn SharedBudget>>,
    /// Requests taken from `shared` and not sent yet. Held while taking more, so that the
    /// callers of one process ask the shared budget one at a time.
    taken: tokio::sync::Mutex<u32>,
    /// When `shared` last could not be read.
    unreadable: Unreadable,
}

impl Limiter {
    /// A limiter named `name` (for logs, e.g. `zendesk`) allowing `rate`.
    pub fn new(name: impl Into<String>, rate: Rate) -> Limiter {
        let clock = TokioElapsed {
            origin: Instant::now(),
        };
        Limiter {
            name: name.into(),
            rate,
            clock,
            bucket: RateLimiter::direct_with_clock(rate.quota(), clock),
            alone: None,
            paused_until: Mutex::new(None),
            shared: OnceLock::new(),
            taken: tokio::sync::Mutex::new(0),
            unreadable: Unreadable::default(),
        }
    }

    /// One of `instances` processes that spend the same account. While the shared budget paces
    /// them together, this one may use the whole rate (alone, it gets all of it); without the
    /// budget (none attached, or the state table unreadable) it keeps to its share,
    /// [`Rate::share`], so that together they still stay within the limit.
    pub fn alone_share(mut self, instances: u32) -> Limiter {
        self.alone = (instances > 1).then(|| {
            RateLimiter::direct_with_clock(self.rate.share(instances).quota(), self.clock)
        });
        self
    }

    /// Draws every request from `budget` too, from now on: the account's budget shared with
    /// other processes. Only the first budget attached counts.
    pub fn attach(&self, budget: Arc<dyn SharedBudget>) {
        if self.shared.set(budget).is_err() {
            tracing::debug!(limiter = %self.name, "a shared budget was attached already");
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Waits until a request may be sent: past any pause, with a token from the bucket and,
    /// when one is attached, from the shared budget.
    pub async fn acquire(&self) {
        // Without a limit on the wait there is no error.
        let _ = self.acquire_within(Duration::MAX).await;
    }

    /// [`Limiter::acquire`], unless a pause of more than `patience` stands in the way: then
    /// nothing is taken and the time left of the pause comes back.
    pub async fn acquire_within(&self, patience: Duration) -> Result<(), Duration> {
        // The shared budget is drawn from before the local bucket, so that waiting for it never
        // costs a token of the local bucket (both refill at the same pace: a token lost to
        // one is throughput lost for good).
        let mut drawn = false;
        // Whether this process paces by its share alone, and has its token of that share.
        let (mut alone, mut shared_out) = (false, false);
        loop {
            if let Some(until) = self.paused_until() {
                let left = until.saturating_duration_since(Instant::now());
                if left > patience {
                    return Err(left);
                }
                tokio::time::sleep_until(until).await;
                continue;
            }
            if !drawn {
                match self.draw().await {
                    Draw::Granted => drawn = true,
                    Draw::Alone => (drawn, alone) = (true, true),
                    // Nobody here sends before the shared budget has something again.
                    Draw::Wait(wait) => {
                        self.pause_for(wait);
                        continue;
                    }
                }
            }
            if let (true, false, Some(share)) = (alone, shared_out, &self.alone) {
                match share.check() {
                    Ok(()) => shared_out = true,
                    Err(not_until) => {
                        tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
                        continue;
                    }
                }
            }
            match self.bucket.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
                }
            }
        }
    }

    /// One request from the shared budget. Without one attached, or when it cannot be read,
    /// this process paces by its own share ([`Limiter::alone_share`]; it says so when the
    /// budget fails).
    async fn draw(&self) -> Draw {
        let Some(shared) = self.shared.get() else {
            return Draw::Alone;
        };
        if self.unreadable.active() {
            return Draw::Alone;
        }
        let mut taken = self.taken.lock().await;
        if *taken > 0 {
            *taken -= 1;
            return Draw::Granted;
        }
        match shared.take(self.rate.burst()).await {
            Ok(Grant::Granted(n)) => {
                *taken = n.saturating_sub(1);
                Draw::Granted
            }
            Ok(Grant::Wait(wait)) => Draw::Wait(wait),
            Err(e) => {
                self.unreadable.note();
                tracing::warn!(limiter = %self.name, error = %e,
                    backoff_s = UNREADABLE_BACKOFF.as_secs(),
                    "shared helpdesk budget unavailable; pacing by this process's share alone");
                Draw::Alone
            }
        }
    }

    /// [`Limiter::pause_for`], and the same pause for every process sharing the budget.
    pub async fn pause_everyone(&self, wait: Duration) {
        self.pause_for(wait);
        if let Some(shared) = self.shared.get() {
            let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            if let Err(e) = shared.pause(until).await {
                tracing::warn!(limiter = %self.name, error = %e,
                    "could not share the helpdesk's pause with other processes");
            }
        }
    }

    /// Blocks every caller for `wait` from now. Never shortens a running pause.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
            tracing::debug!(
                limiter = %self.name,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "helpdesk rate limit: pausing requests"
            );
        }
    }

    /// The end of the running pause, if any.
    pub fn paused_until(&self) -> Option<Instant> {
        let paused = *self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        paused.filter(|until| *until > Instant::now())
    }

    /// Reads the rate headers of a response (any status) and slows down before the account's
    /// budget runs out: with nothing left, everyone waits for the reset; with little left, the
    /// remaining calls are spread over the time to the reset. `now` is the wall clock, for
    /// Intercom's reset given as a unix time.
    pub fn observe(&self, headers: &HeaderMap, now: DateTime<Utc>) {
        let Some(budget) = read_budget(headers, now) else {
            return;
        };
        if let Some(wait) = self.slowdown(budget) {
            self.pause_for(wait);
        }
    }

    /// How long to hold everyone back given `budget`, if at all.
    fn slowdown(&self, budget: Budget) -> Option<Duration> {
        match budget {
            Budget::Window {
                remaining,
                limit,
                reset,
            } => {
                // Spread the last 5% of the window (at least the last call) over the reset.
                let low_water = limit.map_or(1, |l| (l / 20).max(1));
                if remaining == 0 {
                    // Unknown reset: wait a whole window of the limit we model.
                    Some(reset.unwrap_or(self.rate.window))
                } else if remaining < low_water {
                    let reset = reset?;
                    Some(reset / u32::try_from(remaining + 1).unwrap_or(u32::MAX))
                } else {
                    None
                }
            }
            Budget::Leaky { used, limit } => {
                // Keep a tenth of the bucket free: wait for enough slots to leak out. The bucket
                // drains `limit` slots per window of the limit we model.
                let limit = limit.max(1);
                let headroom = limit.saturating_sub(used);
                let keep = (limit / 10).max(2);
                (headroom < keep).then(|| {
                    let leak = self.rate.window / u32::try_from(limit).unwrap_or(u32::MAX);
                    leak * u32::try_from(keep - headroom).unwrap_or(u32::MAX)
                })
            }
        }
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The budget a response announces, from whichever vendor's headers it carries.
fn read_budget(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Budget> {
    // Gorgias: `X-Gorgias-Account-Api-Call-Limit: used/limit`.
    if let Some(raw) = headers
        .get("x-gorgias-account-api-call-limit")
        .and_then(|v| v.to_str().ok())
        && let Some((used, limit)) = raw.split_once('/')
        && let (Ok(used), Ok(limit)) = (used.trim().parse(), limit.trim().parse())
    {
        return Some(Budget::Leaky { used, limit });
    }
    // Intercom: `X-RateLimit-Remaining`, `X-RateLimit-Limit`, `X-RateLimit-Reset` (unix seconds).
    // The wait is measured to the millisecond: counted from the whole second, it would waste up
    // to a second of every 10-second window of a small plan.
    if let Some(remaining) = header_u64(headers, "x-ratelimit-remaining") {
        let reset = header_u64(headers, "x-ratelimit-reset")
            .and_then(|at| i64::try_from(at).ok())
            .map(|at| {
                let millis = at.saturating_mul(1000) - now.timestamp_millis();
                Duration::from_millis(u64::try_from(millis).unwrap_or(0))
            })
            .map(|reset| reset.min(MAX_RETRY_AFTER));
        return Some(Budget::Window {
            remaining,
            limit: header_u64(headers, "x-ratelimit-limit"),
            reset,
        });
    }
    // Zendesk: `ratelimit-remaining`/`ratelimit-limit`/`ratelimit-reset` (seconds to the reset)
    // on ticketing APIs, `X-Rate-Limit-Remaining`/`X-Rate-Limit` elsewhere.
    let remaining = header_u64(headers, "ratelimit-remaining")
        .or_else(|| header_u64(headers, "x-rate-limit-remaining"))?;
    Some(Budget::Window {
        remaining,
        limit: header_u64(headers, "ratelimit-limit")
            .or_else(|| header_u64(headers, "x-rate-limit")),
        reset: header_u64(headers, "ratelimit-reset")
            .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::HeaderValue;
    use std::sync::Arc;

    /// Most requests seen in any `window`-long span of `times` (sorted).
    pub(crate) fn max_in_window(times: &[Instant], window: Duration) -> usize {
        let mut best = 0;
        let mut start = 0;
        for (end, t) in times.iter().enumerate() {
            while *t - times[start] >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    async fn acquire_times(limiter: &Limiter, n: usize) -> Vec<Instant> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            limiter.acquire().await;
            times.push(Instant::now());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn gorgias_never_exceeds_40_requests_in_any_20_seconds() {
        let limiter = Limiter::new("gorgias", Rate::gorgias());
        let start = Instant::now();
        let times = acquire_times(&limiter, 200).await;
        assert!(max_in_window(&times, Duration::from_secs(20)) <= 40);
        // …while using the budget: the burst, then one request every 20/37 s.
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(110), "{elapsed:?}");
        assert!(elapsed > Duration::from_secs(100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn every_preset_stays_under_its_limit_even_with_concurrent_callers() {
        for rate in [
            Rate::zendesk_exports(),
            Rate::zendesk_account(),
            Rate::intercom(),
            Rate::gorgias(),
            Rate::new(5, Duration::from_secs(1), 5),
        ] {
            let limiter = Arc::new(Limiter::new("test", rate));
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let limiter = Arc::clone(&limiter);
                let n = usize::try_from(rate.limit()).expect("small") / 2 + 5;
                tasks.push(tokio::spawn(
                    async move { acquire_times(&limiter, n).await },
                ));
            }
            let mut times = Vec::new();
            for t in tasks {
                times.extend(t.await.expect("task"));
            }
            times.sort();
            let seen = max_in_window(&times, rate.window());
            assert!(seen <= rate.limit() as usize, "{rate:?}: {seen}");
        }
    }

    /// A shared budget that grants whatever is asked, or cannot be read.
    #[derive(Debug)]
    struct Budget {
        readable: bool,
    }

    #[async_trait]
    impl SharedBudget for Budget {
        async fn take(&self, want: u32) -> Result<Grant, String> {
            if self.readable {
                Ok(Grant::Granted(want))
            } else {
                Err("state table unreadable".into())
            }
        }
        async fn pause(&self, _until: DateTime<Utc>) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_of_two_processes_uses_the_whole_rate_only_while_the_shared_budget_paces_them() {
        let window = Duration::from_secs(20);
        let sent_in_a_minute = |limiter: Limiter| async move {
            let start = Instant::now();
            let mut times = Vec::new();
            while start.elapsed() < Duration::from_secs(60) {
                limiter.acquire().await;
                times.push(Instant::now());
            }
            max_in_window(&times, window)
        };
        // No budget attached, or one that cannot be read: this process keeps to half.
        let alone = Limiter::new("gorgias", Rate::gorgias()).alone_share(2);
        assert!(sent_in_a_minute(alone).await <= 20);
        let unreadable = Limiter::new("gorgias", Rate::gorgias()).alone_share(2);
        unreadable.attach(Arc::new(Budget { readable: false }));
        assert!(sent_in_a_minute(unreadable).await <= 20);
        // The budget paces both processes: this one, alone at work, gets the whole rate.
        let paced = Limiter::new("gorgias", Rate::gorgias()).alone_share(2);
        paced.attach(Arc::new(Budget { readable: true }));
        let most = sent_in_a_minute(paced).await;
        assert!((38..=40).contains(&most), "{most} in 20 s");
    }

    /// A shared budget that cannot be read, counting the attempts.
    #[derive(Debug, Default)]
    struct Down {
        asked: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl SharedBudget for Down {
        async fn take(&self, _want: u32) -> Result<Grant, String> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err("state table unreadable".into())
        }
        async fn pause(&self, _until: DateTime<Utc>) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_budget_is_asked_once_per_backoff_not_once_per_request() {
        let down = Arc::new(Down::default());
        let limiter = Limiter::new("intercom", Rate::intercom()).alone_share(2);
        limiter.attach(down.clone());
        let asked = || down.asked.load(std::sync::atomic::Ordering::SeqCst);
        let start = Instant::now();
        while start.elapsed() < UNREADABLE_BACKOFF - Duration::from_secs(1) {
            limiter.acquire().await;
        }
        assert_eq!(asked(), 1, "one read for a spell of requests");
        while start.elapsed() < UNREADABLE_BACKOFF + Duration::from_secs(1) {
            limiter.acquire().await;
        }
        assert_eq!(asked(), 2, "asked again once the backoff passed");
    }

    #[tokio::test(start_paused = true)]
    async fn zendesk_exports_are_paced_six_seconds_apart() {
        let limiter = Limiter::new("zendesk-exports", Rate::zendesk_exports());
        let times = acquire_times(&limiter, 11).await;
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_secs(6));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_blocks_every_caller_and_is_never_shortened() {
        let limiter = Arc::new(Limiter::new(
            "x",
            Rate::new(100, Duration::from_secs(1), 100),
        ));
        let start = Instant::now();
        limiter.pause_for(Duration::from_secs(5));
        limiter.pause_for(Duration::from_secs(2));
        let a = tokio::spawn({
            let l = Arc::clone(&limiter);
            async move {
                l.acquire().await;
                Instant::now()
            }
        });
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(5));
        assert!(a.await.expect("task") - start >= Duration::from_secs(5));
        assert_eq!(limiter.paused_until(), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn pause_after(limiter: &Limiter, pairs: &[(&'static str, &'static str)]) -> Duration {
        let now = DateTime::from_timestamp(1_736_330_000, 0).expect("time");
        limiter.observe(&headers(pairs), now);
        limiter
            .paused_until()
            .map_or(Duration::ZERO, |u| u - Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn rate_headers_slow_us_down_before_the_limit() {
        let z = Limiter::new("zendesk", Rate::zendesk_account());
        assert_eq!(
            pause_after(
                &z,
                &[("ratelimit-remaining", "150"), ("ratelimit-reset", "30")]
            ),
            Duration::ZERO
        );
        assert_eq!(
            pause_after(
                &z,
                &[("ratelimit-remaining", "0"), ("ratelimit-reset", "30")]
            ),
            Duration::from_secs(30)
        );
        let z = Limiter::new("zendesk", Rate::zendesk_account());
        // 3 left of 200 with 40 s to go: one call every 10 s.
        assert_eq!(
            pause_after(
                &z,
                &[
                    ("x-rate-limit", "200"),
                    ("x-rate-limit-remaining", "3"),
                    ("ratelimit-reset", "40")
                ]
            ),
            Duration::from_secs(10)
        );

        let i = Limiter::new("intercom", Rate::intercom());
        assert_eq!(
            pause_after(
                &i,
                &[
                    ("x-ratelimit-limit", "167"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1736330007")
                ]
            ),
            Duration::from_secs(7)
        );

        let g = Limiter::new("gorgias", Rate::gorgias());
        assert_eq!(
            pause_after(&g, &[("x-gorgias-account-api-call-limit", "10/40")]),
            Duration::ZERO
        );
        // Full bucket: wait for 4 slots to leak (0.5 s each).
        assert_eq!(
            pause_after(&g, &[("x-gorgias-account-api-call-limit", "40/40")]),
            Duration::from_secs(2)
        );
        let g = Limiter::new("gorgias", Rate::gorgias());
        assert_eq!(
            pause_after(&g, &[("x-gorgias-account-api-call-limit", "nonsense")]),
            Duration::ZERO
        );
    }

    #[test]
    fn rates_are_clamped() {
        let r = Rate::new(0, Duration::ZERO, 9);
        assert_eq!((r.limit(), r.burst()), (1, 1));
        assert_eq!(r.window(), Duration::from_millis(1));
        assert_eq!(
            Rate::new(10, Duration::from_secs(60), 1).interval(),
            Duration::from_secs(6)
        );
        assert_eq!(Rate::new(4, Duration::from_secs(1), 50).burst(), 4);
    }
}
