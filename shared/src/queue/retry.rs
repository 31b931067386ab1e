//! Transient failures are retried for a span of time, not a number of receives.
//!
//! SQS moves a message to its dead-letter queue after `maxReceiveCount` receives, whatever
//! made them fail. Counting receives turns a long outage into lost work: five receives of a
//! message that Brevo answers 503 are spent in half an hour. So a handler never leaves a
//! transiently failing message for SQS to redeliver. It sends a copy back to its own queue with
//! a delay (capped exponential backoff with jitter) and a [`RetryRecord`] in the message
//! attribute [`RETRY_ATTRIBUTE`] (when it first failed, how many attempts so far), and reports
//! the original as done. Only once a message has been failing for longer than the policy's
//! horizon (default 24 hours) does it go to the dead-letter queue, with its last reason.
//!
//! The queue's own redrive limit is then left to what the handler cannot settle itself: a
//! crashed or timed-out invocation, or a queue that refuses the copy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Message, Queue, QueueError};
use crate::clock::{Clock, SystemClock};

/// The message attribute holding a message's [`RetryRecord`].
pub const RETRY_ATTRIBUTE: &str = "deskbridge_retry";

/// Longest delay SQS gives a message (`DelaySeconds` ≤ 900).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

/// How long a message may keep failing transiently before it is dead-lettered.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(24 * 3600);
/// Delay before the first retry (before jitter).
pub const DEFAULT_FIRST_DELAY: Duration = Duration::from_secs(2);
/// Longest delay between two attempts: once an outage ends, every waiting message is tried
/// again within this time.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(300);

/// What a message carries about its earlier failed attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRecord {
    /// When the first attempt failed.
    #[serde(rename = "first")]
    pub first_failed_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Events of the message that Brevo accepted but that could not be marked sent in the
    /// state store (it was failing): the next attempt marks them instead of sending them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<String>,
}

impl RetryRecord {
    /// The attribute value (JSON).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an attribute value written by [`RetryRecord::encode`]; `None` for anything else
    /// (the message is then treated as failing for the first time).
    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_str(value).ok()
    }

    /// How long the message has been failing at `now`.
    pub fn failing_for(&self, now: DateTime<Utc>) -> Duration {
        (now - self.first_failed_at).to_std().unwrap_or_default()
    }
}

impl fmt::Display for RetryRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attempt(s) since {}",
            self.attempts,
            self.first_failed_at.to_rfc3339()
        )
    }
}

/// When to try a transiently failing message again, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up on a message failing for at least this long (`RETRY_HORIZON_SECONDS`).
    pub horizon: Duration,
    /// Delay after the first failure (doubles with each attempt).
    pub first_delay: Duration,
    /// Cap of the delay (`RETRY_MAX_DELAY_SECONDS`, at most [`MAX_QUEUE_DELAY`]).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            horizon: DEFAULT_HORIZON,
            first_delay: DEFAULT_FIRST_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

/// What [`RetryPolicy::next`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send the message again after `delay`, carrying `record`.
    Later {
        delay: Duration,
        record: RetryRecord,
    },
    /// The horizon has passed: dead-letter it.
    GiveUp { record: RetryRecord },
}

impl RetryPolicy {
    /// The decision for a message that failed again at `now`. `pause` (Brevo refused the API
    /// key) waits the longest delay straight away. `jitter` is uniform in `[0, 1)`: the delay
    /// is drawn from the upper half of the backoff step ("equal jitter"), so messages that
    /// failed together come back spread out, never all at once, yet none sooner than half
    /// the step.
    ///
    /// The step is `first_delay · 2^(attempts − 1)` capped at `max_delay`. The formula is two
    /// lines; a retry crate's iterator would have to be replayed from the first attempt for
    /// every message, since the attempt count travels with the message.
    pub fn next(
        &self,
        previous: Option<&RetryRecord>,
        now: DateTime<Utc>,
        pause: bool,
        jitter: f64,
    ) -> Next {
        let record = RetryRecord {
            first_failed_at: previous.map_or(now, |p| p.first_failed_at.min(now)),
            attempts: previous.map_or(0, |p| p.attempts).saturating_add(1),
            sent: Vec::new(),
        };
        if record.failing_for(now) >= self.horizon {
            return Next::GiveUp { record };
        }
        let cap = self.max_delay.min(MAX_QUEUE_DELAY);
        let step = if pause {
            cap
        } else {
            let doublings = record.attempts.saturating_sub(1).min(30);
            self.first_delay.saturating_mul(1 << doublings).min(cap)
        };
        let jitter = jitter.clamp(0.0, 1.0);
        let delay = step / 2 + step.mul_f64(jitter / 2.0);
        Next::Later {
            delay: delay.min(cap),
            record,
        }
    }
}

/// How a message that could not be finished was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// A copy is back on the queue and becomes visible after this delay; the original is done.
    Later(Duration),
    /// Failing past the horizon, or failed for good: it is on the dead-letter queue.
    DeadLettered,
    /// The queue could not take it: the caller must leave the original for SQS to redeliver.
    Redeliver(String),
}

/// Sends failing messages back to their queue with a delay, or to the dead-letter queue.
#[derive(Clone)]
pub struct Redelivery {
    queue: Arc<dyn Queue>,
    /// The queue the messages came from; without it, transient failures are left to SQS.
    retry_url: Option<String>,
    dead_letter_url: Option<String>,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Redelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redelivery")
            .field("retry_url", &self.retry_url)
            .field("dead_letter_url", &self.dead_letter_url)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Redelivery {
    /// Nothing configured yet: transient failures are left to SQS, final ones are dropped.
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        Redelivery {
            queue,
            retry_url: None,
            dead_letter_url: None,
            policy: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// As a function wires it from its settings: transient failures back to `queue_url` under
    /// `policy`, final ones to `dead_letter_url`; each part is left out when its URL is unset
    /// (with a warning, since that weakens delivery).
    pub fn configured(
        queue: Arc<dyn Queue>,
        queue_url: Option<&str>,
        dead_letter_url: Option<&str>,
        policy: RetryPolicy,
    ) -> Self {
        let mut redelivery = Redelivery::new(queue);
        match queue_url {
            Some(url) => redelivery = redelivery.retrying_on(url, policy),
            None => tracing::warn!(
                "no queue URL: transiently failing messages are left to the queue's redrive limit"
            ),
        }
        match dead_letter_url {
            Some(url) => redelivery = redelivery.dead_letters_to(url),
            None => tracing::warn!(
                "no dead-letter queue URL: messages that fail for good are logged and dropped"
            ),
        }
        redelivery
    }

    /// Transient failures go back to `queue_url` (the queue the messages come from).
    pub fn retrying_on(mut self, queue_url: impl Into<String>, policy: RetryPolicy) -> Self {
        self.retry_url = Some(queue_url.into());
        self.policy = policy;
        self
    }

    /// Final failures (and those past the horizon) go to `queue_url` with their reason.
    pub fn dead_letters_to(mut self, queue_url: impl Into<String>) -> Self {
        self.dead_letter_url = Some(queue_url.into());
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Whether a dead-letter queue is configured.
    pub fn has_dead_letters(&self) -> bool {
        self.dead_letter_url.is_some()
    }

    /// Settles a message that failed transiently (`reason`): back on its queue after a delay,
    /// or on the dead-letter queue once it has been failing past the horizon. `sent` lists its
    /// events that Brevo accepted but that are not marked sent yet (see [`RetryRecord::sent`]).
    /// `not_before` (a rate-limited helpdesk's `Retry-After`) is the shortest delay it may get.
    pub async fn retry(
        &self,
        message: &Message,
        reason: &str,
        pause: bool,
        not_before: Option<Duration>,
        sent: Vec<String>,
    ) -> Settled {
        let Some(url) = &self.retry_url else {
            return Settled::Redeliver("no retry queue configured".into());
        };
        let now = self.clock.now();
        match self
            .policy
            .next(message.retry.as_ref(), now, pause, fastrand::f64())
        {
            Next::Later { delay, mut record } => {
                // A helpdesk's Retry-After is honoured even when the backoff step is shorter.
                let delay = not_before.map_or(delay, |wait| delay.max(wait.min(MAX_QUEUE_DELAY)));
                record.sent = sent;
                match self
                    .queue
                    .send_later(url, &message.body, delay, &record)
                    .await
                {
                    Ok(()) => Settled::Later(delay),
                    Err(e) => Settled::Redeliver(format!("could not send it back: {e}")),
                }
            }
            Next::GiveUp { record } => {
                let failing = record.failing_for(now);
                let mut reason = format!(
                    "still failing after {} attempts over {} (retry horizon {}): {reason}",
                    record.attempts,
                    human(failing),
                    human(self.policy.horizon)
                );
                if !sent.is_empty() {
                    reason.push_str(&format!(
                        "; already sent to Brevo, drop them before a replay: {}",
                        sent.join(", ")
                    ));
                }
                match self.dead_letter(&message.body, &reason).await {
                    Ok(()) => Settled::DeadLettered,
                    Err(e) => Settled::Redeliver(format!("could not dead-letter it: {e}")),
                }
            }
        }
    }

    /// Puts a message that failed for good on the dead-letter queue with `reason`. Without a
    /// dead-letter queue it is logged and dropped.
    pub async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        match &self.dead_letter_url {
            Some(url) => self.queue.send_dead_letter(url, body, reason).await,
            None => {
                tracing::error!(%reason,
                    "a message failed for good and no dead-letter queue is configured; dropped");
                Ok(())
            }
        }
    }
}

/// `90s`, `15m`, `6h 3m`: durations in reasons people read.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap()
    }

    #[test]
    fn the_record_round_trips_and_nonsense_reads_as_none() {
        let r = RetryRecord {
            first_failed_at: t(5),
            attempts: 7,
            sent: vec!["zendesk:ticket:1:created".into()],
        };
        assert_eq!(RetryRecord::parse(&r.encode()), Some(r.clone()));
        let bare = RetryRecord {
            sent: Vec::new(),
            ..r
        };
        assert!(!bare.encode().contains("sent"), "{}", bare.encode());
        assert_eq!(RetryRecord::parse(&bare.encode()), Some(bare));
        for bad in [
            "",
            "7",
            "x;1",
            r#"{"first":"2026-01-01T00:00:00Z","attempts":-1}"#,
        ] {
            assert_eq!(RetryRecord::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_within_their_jitter_band() {
        let p = RetryPolicy::default();
        let mut previous = None;
        let mut steps = Vec::new();
        for i in 0..12 {
            let now = t(i * 10);
            let (low, high) = match (
                p.next(previous.as_ref(), now, false, 0.0),
                p.next(previous.as_ref(), now, false, 0.999_999),
            ) {
                (Next::Later { delay: low, record }, Next::Later { delay: high, .. }) => {
                    previous = Some(record);
                    (low, high)
                }
                other => panic!("gave up early: {other:?}"),
            };
            assert!(low <= high);
            steps.push(high);
        }
        assert_eq!(steps[0].as_secs(), 1, "first step: 2 s, drawn from 1..2 s");
        assert_eq!(steps[1].as_secs(), 3);
        assert_eq!(steps[2].as_secs(), 7);
        assert!(steps.iter().all(|d| *d <= p.max_delay));
        assert!(
            steps[11] >= p.max_delay / 2,
            "capped, never below half the cap"
        );
        assert_eq!(previous.as_ref().map(|r| r.attempts), Some(12));
        assert_eq!(previous.map(|r| r.first_failed_at), Some(t(0)));
    }

    #[test]
    fn it_gives_up_only_past_the_horizon_whatever_the_attempts() {
        let p = RetryPolicy::default();
        let first = RetryRecord {
            first_failed_at: t(0),
            attempts: 10_000,
            sent: Vec::new(),
        };
        let just_before = t(p.horizon.as_secs() as i64 - 1);
        assert!(matches!(
            p.next(Some(&first), just_before, false, 0.5),
            Next::Later { .. }
        ));
        let at = t(p.horizon.as_secs() as i64);
        assert_eq!(
            p.next(Some(&first), at, false, 0.5),
            Next::GiveUp {
                record: RetryRecord {
                    first_failed_at: t(0),
                    attempts: 10_001,
                    sent: Vec::new(),
                }
            }
        );
    }

    #[test]
    fn a_pause_waits_the_longest_delay_at_once() {
        let p = RetryPolicy::default();
        match p.next(None, t(0), true, 0.0) {
            Next::Later { delay, record } => {
                assert_eq!(delay, p.max_delay / 2);
                assert_eq!(record.attempts, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_delay_exceeds_what_sqs_allows() {
        let p = RetryPolicy {
            max_delay: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let r = RetryRecord {
            first_failed_at: t(0),
            attempts: 40,
            sent: Vec::new(),
        };
        match p.next(Some(&r), t(60), false, 0.999) {
            Next::Later { delay, .. } => assert!(delay <= MAX_QUEUE_DELAY),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(59)), "59s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(6 * 3600 + 180)), "6h 3m");
    }
}
