//! Hours of outage in a minute: a clock that runs `factor` times faster than the wall clock,
//! and a queue adapter that shortens every retry delay by the same factor. The handlers decide
//! by the fast clock (how long a message has been failing, when to probe Brevo), and SQS (moto)
//! holds the messages for the shortened delays, so a run keeps the proportions of the real
//! thing: a 6-hour outage with retries up to 5 minutes apart becomes 90 s with retries up to
//! 1.25 s apart at a factor of 240.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deskbridge_shared::clock::Clock;
use deskbridge_shared::queue::{InMessage, Queue, QueueError, RetryRecord};

/// Wall-clock time sped up by `factor` from the moment it was made.
#[derive(Debug)]
pub struct FastClock {
    started: Instant,
    at: DateTime<Utc>,
    factor: f64,
}

impl FastClock {
    pub fn new(factor: f64) -> Arc<FastClock> {
        Arc::new(FastClock {
            started: Instant::now(),
            at: Utc::now(),
            factor,
        })
    }

    /// Fast time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed().mul_f64(self.factor)
    }

    /// The wall-clock time that `fast` of this clock takes.
    pub fn real(&self, fast: Duration) -> Duration {
        fast.div_f64(self.factor)
    }

    /// Waits until this clock reads `fast` past its start.
    pub async fn sleep_until(&self, fast: Duration) {
        let target = self.started + self.real(fast);
        tokio::time::sleep_until(target.into()).await;
    }
}

impl Clock for FastClock {
    fn now(&self) -> DateTime<Utc> {
        self.at + chrono::Duration::from_std(self.elapsed()).unwrap_or_default()
    }
}

/// A queue whose retry delays pass at the fast clock's pace; everything else goes to `inner`
/// unchanged.
pub struct FastQueue<Q> {
    pub inner: Q,
    pub clock: Arc<FastClock>,
}

#[async_trait]
impl<Q: Queue> Queue for FastQueue<Q> {
    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError> {
        self.inner.send(queue_url, body).await
    }
    async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError> {
        self.inner.send_batch(queue_url, bodies).await
    }
    async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
    ) -> Result<Vec<InMessage>, QueueError> {
        self.inner.receive(queue_url, max, wait_seconds).await
    }
    async fn send_dead_letter(
        &self,
        queue_url: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.inner.send_dead_letter(queue_url, body, reason).await
    }
    async fn send_later(
        &self,
        queue_url: &str,
        body: &str,
        delay: Duration,
        retry: &RetryRecord,
    ) -> Result<(), QueueError> {
        let delay = self.clock.real(delay);
        self.inner.send_later(queue_url, body, delay, retry).await
    }
    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        self.inner.delete(queue_url, receipt_handle).await
    }
    async fn set_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.inner
            .set_visibility(queue_url, receipt_handle, seconds)
            .await
    }
    async fn set_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.inner
            .set_visibility_batch(queue_url, receipt_handles, seconds)
            .await
    }
}
