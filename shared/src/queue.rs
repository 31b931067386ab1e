//! The queue port (SQS in AWS and locally through moto).

mod sqs;

pub use sqs::SqsQueue;

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
    /// Deletes a handled message.
    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError>;
    /// Makes a received message visible again after `seconds` (local runner's retry delay).
    async fn set_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError>;
}
