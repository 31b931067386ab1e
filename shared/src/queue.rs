//! The queue port (SQS in AWS and locally through moto).

mod hold;
mod retry;
mod sqs;

pub use hold::{
    HOLD_SECONDS, Receipt, receipts_from_sqs, release_failed, renewal_interval, while_holding,
};

pub use retry::{
    DEFAULT_FIRST_DELAY, DEFAULT_HORIZON, DEFAULT_MAX_DELAY, MAX_QUEUE_DELAY, Next,
    RETRY_ATTRIBUTE, Redelivery, RetryPolicy, RetryRecord, Settled,
};
pub use sqs::SqsQueue;

use std::time::Duration;

use async_trait::async_trait;

/// The message attribute holding why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "deskbridge_reason";

/// Longest reason kept on a dead letter (characters).
pub const MAX_REASON_CHARS: usize = 2000;

/// A message as received from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// Why it was dead-lettered ([`REASON_ATTRIBUTE`]), on messages of a dead-letter queue that
    /// deskbridge put there itself.
    pub reason: Option<String>,
    /// Its earlier failed attempts ([`RETRY_ATTRIBUTE`]), on a message sent back by
    /// [`Redelivery`].
    pub retry: Option<RetryRecord>,
}

/// One message as a handler sees it, whoever received it (Lambda's SQS event, the local
/// runner's polling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub body: String,
    /// SQS `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
    /// Its earlier failed attempts, when [`Redelivery`] sent it back.
    pub retry: Option<RetryRecord>,
}

impl Message {
    /// A message received for the first time.
    pub fn new(message_id: impl Into<String>, body: impl Into<String>) -> Self {
        Message {
            message_id: message_id.into(),
            body: body.into(),
            receive_count: 1,
            retry: None,
        }
    }
}

impl From<&InMessage> for Message {
    fn from(m: &InMessage) -> Self {
        Message {
            message_id: m.message_id.clone(),
            body: m.body.clone(),
            receive_count: m.receive_count,
            retry: m.retry.clone(),
        }
    }
}

/// A failure to reach or use the queue.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// Port for SQS.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends one message; Ok only once SQS has stored it.
    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError>;
    /// Sends many messages (in SendMessageBatch calls of up to 10); Ok only once all are stored.
    async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError>;
    /// Long-polls for up to `max` messages (local runner and replay).
    async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
    ) -> Result<Vec<InMessage>, QueueError>;
    /// Sends a message that failed for good to a dead-letter queue, with the reason attached
    /// (SQS message attribute [`REASON_ATTRIBUTE`]).
    async fn send_dead_letter(
        &self,
        queue_url: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), QueueError>;
    /// Sends a message back to be tried again: visible after `delay` (at most
    /// [`MAX_QUEUE_DELAY`]), carrying `retry` in [`RETRY_ATTRIBUTE`].
    async fn send_later(
        &self,
        queue_url: &str,
        body: &str,
        delay: Duration,
        retry: &RetryRecord,
    ) -> Result<(), QueueError>;
    /// Deletes a handled message.
    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError>;
    /// Makes a received message visible again after `seconds` (local runner's retry delay).
    async fn set_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError>;
    /// Makes many received messages visible again after `seconds` (holds, see
    /// [`while_holding`]); Ok only when every one was set.
    async fn set_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<(), QueueError> {
        for handle in receipt_handles {
            self.set_visibility(queue_url, handle, seconds).await?;
        }
        Ok(())
    }
}

/// The messages of a Lambda SQS event. A record without a message id cannot be reported as
/// failed (an empty id would fail the whole batch), so it is logged and left out.
pub fn messages_from_sqs(event: &aws_lambda_events::event::sqs::SqsEvent) -> Vec<Message> {
    event
        .records
        .iter()
        .filter_map(|record| {
            let Some(message_id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
                tracing::error!(
                    "SQS record without a messageId; it cannot be reported and is skipped"
                );
                return None;
            };
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let retry = record
                .message_attributes
                .get(RETRY_ATTRIBUTE)
                .and_then(|a| a.string_value.as_deref())
                .and_then(RetryRecord::parse);
            Some(Message {
                message_id,
                body: record.body.clone().unwrap_or_default(),
                receive_count,
                retry,
            })
        })
        .collect()
}
