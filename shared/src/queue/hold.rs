//! Holding the messages a worker is handling: hidden for a short time, renewed while the work
//! runs.
//!
//! A queue's visibility timeout has to outlast the longest invocation (AWS asks for six times
//! the function's timeout: 6 and 12 minutes here), so a worker that dies mid-batch (a crash, an
//! out-of-memory kill, a killed terminal) would leave its messages hidden for that long. A held
//! message is hidden for [`HOLD_SECONDS`] only, and hidden again every third of that while its
//! worker lives, so a dead worker's messages are back on the queue within [`HOLD_SECONDS`].

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;

use super::Queue;

/// How long a held message stays hidden without being renewed.
pub const HOLD_SECONDS: i32 = 30;

/// How often a held message is hidden again: a third of [`HOLD_SECONDS`], so that one failed
/// renewal still leaves time for the next.
pub fn renewal_interval() -> Duration {
    Duration::from_secs(u64::from(HOLD_SECONDS.unsigned_abs() / 3).max(1))
}

/// One received message as the hold needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub receipt_handle: String,
}

/// The receipts of a Lambda SQS event (records without an id or a handle are left out: they
/// cannot be held or settled).
pub fn receipts_from_sqs(event: &SqsEvent) -> Vec<Receipt> {
    event
        .records
        .iter()
        .filter_map(|r| {
            Some(Receipt {
                message_id: r.message_id.clone().filter(|id| !id.is_empty())?,
                receipt_handle: r.receipt_handle.clone().filter(|h| !h.is_empty())?,
            })
        })
        .collect()
}

/// Hides `receipts` for [`HOLD_SECONDS`] after `first`, then every [`renewal_interval`], for
/// as long as it is polled. A renewal that fails is logged; the message then comes back when its
/// current hold ends, which is what a crash would do.
async fn renew(
    queue: &dyn Queue,
    queue_url: &str,
    receipts: &[Receipt],
    first: Duration,
) -> Infallible {
    let handles: Vec<&str> = receipts.iter().map(|r| r.receipt_handle.as_str()).collect();
    let start = tokio::time::Instant::now() + first;
    let mut beat = tokio::time::interval_at(start, renewal_interval());
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        if let Err(e) = queue
            .set_visibility_batch(queue_url, &handles, HOLD_SECONDS)
            .await
        {
            tracing::warn!(reason = %e, queue = %queue_url, "could not hold messages; they come back when their current hold ends");
        }
    }
}

/// Runs `work` while `receipts` are held on `queue_url`. `first` is when the first hold is
/// taken: at once for messages received with the queue's own visibility timeout (Lambda), a
/// renewal interval later for messages received already hidden for [`HOLD_SECONDS`].
pub async fn while_holding<F: Future>(
    queue: &dyn Queue,
    queue_url: &str,
    receipts: &[Receipt],
    first: Duration,
    work: F,
) -> F::Output {
    if receipts.is_empty() {
        return work.await;
    }
    tokio::select! {
        done = work => done,
        never = renew(queue, queue_url, receipts, first) => match never {},
    }
}

/// After a held batch: the messages reported failed are hidden for `seconds` from now (the
/// queue's own visibility timeout, so a failure is retried no sooner than it was before holds
/// existed). Those that cannot be set come back when their hold ends.
pub async fn release_failed(
    queue: &dyn Queue,
    queue_url: &str,
    receipts: &[Receipt],
    failed: &[String],
    seconds: u32,
) {
    let seconds = i32::try_from(seconds).unwrap_or(i32::MAX);
    let handles: Vec<&str> = receipts
        .iter()
        .filter(|r| failed.contains(&r.message_id))
        .map(|r| r.receipt_handle.as_str())
        .collect();
    if handles.is_empty() {
        return;
    }
    if let Err(e) = queue
        .set_visibility_batch(queue_url, &handles, seconds)
        .await
    {
        tracing::warn!(reason = %e, queue = %queue_url, "could not delay failed messages; they come back when their hold ends");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{InMessage, QueueError, RetryRecord};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Records each visibility change with the paused clock's time.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<(Duration, Vec<String>, i32)>>,
        start: Mutex<Option<tokio::time::Instant>>,
    }

    #[async_trait]
    impl Queue for Recorder {
        async fn send(&self, _: &str, _: &str) -> Result<(), QueueError> {
            unreachable!("not sent")
        }
        async fn send_batch(&self, _: &str, _: &[String]) -> Result<(), QueueError> {
            unreachable!("not sent")
        }
        async fn receive(&self, _: &str, _: i32, _: i32) -> Result<Vec<InMessage>, QueueError> {
            unreachable!("not received")
        }
        async fn send_dead_letter(&self, _: &str, _: &str, _: &str) -> Result<(), QueueError> {
            unreachable!("not sent")
        }
        async fn send_later(
            &self,
            _: &str,
            _: &str,
            _: Duration,
            _: &RetryRecord,
        ) -> Result<(), QueueError> {
            unreachable!("not sent")
        }
        async fn delete(&self, _: &str, _: &str) -> Result<(), QueueError> {
            unreachable!("not deleted")
        }
        async fn set_visibility(&self, _: &str, handle: &str, s: i32) -> Result<(), QueueError> {
            self.set_visibility_batch("q", &[handle], s).await
        }
        async fn set_visibility_batch(
            &self,
            _: &str,
            handles: &[&str],
            seconds: i32,
        ) -> Result<(), QueueError> {
            let start = *self
                .start
                .lock()
                .expect("lock")
                .get_or_insert_with(tokio::time::Instant::now);
            self.calls.lock().expect("lock").push((
                start.elapsed(),
                handles.iter().map(|h| h.to_string()).collect(),
                seconds,
            ));
            Ok(())
        }
    }

    fn receipts() -> Vec<Receipt> {
        ["m-1", "m-2"]
            .iter()
            .map(|id| Receipt {
                message_id: id.to_string(),
                receipt_handle: format!("h-{id}"),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn work_runs_with_its_messages_held_from_the_start_and_renewed_until_it_ends() {
        let queue = Recorder::default();
        *queue.start.lock().expect("lock") = Some(tokio::time::Instant::now());
        let answer = while_holding(&queue, "q", &receipts(), Duration::ZERO, async {
            tokio::time::sleep(Duration::from_secs(25)).await;
            7
        })
        .await;
        assert_eq!(answer, 7);
        let calls = queue.calls.lock().expect("lock").clone();
        let at: Vec<u64> = calls.iter().map(|c| c.0.as_secs()).collect();
        assert_eq!(at, vec![0, 10, 20], "held at once, renewed every 10 s");
        for (_, handles, seconds) in &calls {
            assert_eq!(handles, &vec!["h-m-1".to_string(), "h-m-2".to_string()]);
            assert_eq!(*seconds, HOLD_SECONDS);
        }
        // Once the work is done, nothing renews them any more.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(queue.calls.lock().expect("lock").len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn messages_received_hidden_are_first_renewed_a_third_of_the_hold_later() {
        let queue = Recorder::default();
        *queue.start.lock().expect("lock") = Some(tokio::time::Instant::now());
        while_holding(&queue, "q", &receipts(), renewal_interval(), async {
            tokio::time::sleep(Duration::from_secs(15)).await;
        })
        .await;
        let at: Vec<u64> = queue
            .calls
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.0.as_secs())
            .collect();
        assert_eq!(at, vec![10]);
    }

    #[tokio::test]
    async fn only_the_failed_messages_are_hidden_for_the_queue_timeout() {
        let queue = Recorder::default();
        release_failed(&queue, "q", &receipts(), &["m-2".to_string()], 360).await;
        release_failed(&queue, "q", &receipts(), &[], 360).await;
        let calls = queue.calls.lock().expect("lock").clone();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1, vec!["h-m-2".to_string()]);
        assert_eq!(calls[0].2, 360);
    }

    #[test]
    fn receipts_leave_out_records_that_cannot_be_held() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "a", "receiptHandle": "ra", "body": "{}"},
            {"messageId": "b", "body": "{}"},
            {"receiptHandle": "rc", "body": "{}"}
        ]}))
        .expect("event");
        assert_eq!(
            receipts_from_sqs(&event),
            vec![Receipt {
                message_id: "a".into(),
                receipt_handle: "ra".into()
            }]
        );
    }
}
