//! [`Queue`] on SQS.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};

use std::time::Duration;

use super::{
    InMessage, MAX_QUEUE_DELAY, MAX_REASON_CHARS, Queue, QueueError, REASON_ATTRIBUTE,
    RETRY_ATTRIBUTE, RetryRecord,
};

/// Most entries SQS takes in one SendMessageBatch call.
pub const MAX_BATCH: usize = 10;
/// Attempts at entries SQS reports as failed inside a batch.
const BATCH_ATTEMPTS: usize = 3;

/// SQS queues reached with one client.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> QueueError {
    QueueError(DisplayErrorContext(&e).to_string())
}

impl SqsQueue {
    pub fn new(client: Client) -> Self {
        SqsQueue { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Receives up to `max` messages, hidden from other consumers for `visibility` seconds
    /// instead of the queue's visibility timeout when it is given.
    pub async fn receive_hidden(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
        visibility: Option<i32>,
    ) -> Result<Vec<InMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .set_visibility_timeout(visibility.map(|v| v.clamp(0, 43_200)))
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(REASON_ATTRIBUTE)
            .message_attribute_names(RETRY_ATTRIBUTE)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Some(InMessage {
                    message_id: m.message_id()?.to_string(),
                    receipt_handle: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count,
                    reason: m
                        .message_attributes()
                        .and_then(|a| a.get(REASON_ATTRIBUTE))
                        .and_then(|v| v.string_value())
                        .map(str::to_string),
                    retry: m
                        .message_attributes()
                        .and_then(|a| a.get(RETRY_ATTRIBUTE))
                        .and_then(|v| v.string_value())
                        .and_then(RetryRecord::parse),
                })
            })
            .collect())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn send_dead_letter(
        &self,
        queue_url: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(if reason.is_empty() {
                "unknown".into()
            } else {
                reason
            })
            .build()
            .map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn send_later(
        &self,
        queue_url: &str,
        body: &str,
        delay: Duration,
        retry: &RetryRecord,
    ) -> Result<(), QueueError> {
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(retry.encode())
            .build()
            .map_err(|e| QueueError(e.to_string()))?;
        let seconds = delay.min(MAX_QUEUE_DELAY).as_secs_f64().round() as i32;
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .delay_seconds(seconds)
            .message_attributes(RETRY_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError> {
        for chunk in bodies.chunks(MAX_BATCH) {
            let mut pending: Vec<(usize, &String)> = chunk.iter().enumerate().collect();
            for attempt in 1..=BATCH_ATTEMPTS {
                let entries = pending
                    .iter()
                    .map(|(i, body)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("m{i}"))
                            .message_body(body.as_str())
                            .build()
                            .map_err(|e| QueueError(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(unavailable)?;
                let failed: Vec<String> = out.failed().iter().map(|f| f.id().to_string()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == BATCH_ATTEMPTS {
                    return Err(QueueError(format!(
                        "{} of {} messages were not stored after {BATCH_ATTEMPTS} attempts",
                        failed.len(),
                        chunk.len()
                    )));
                }
                pending.retain(|(i, _)| failed.iter().any(|f| *f == format!("m{i}")));
            }
        }
        Ok(())
    }

    async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
    ) -> Result<Vec<InMessage>, QueueError> {
        self.receive_hidden(queue_url, max, wait_seconds, None)
            .await
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn set_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.clamp(0, 43_200))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn set_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry as Entry;
        for chunk in receipt_handles.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    Entry::builder()
                        .id(i.to_string())
                        .receipt_handle(*handle)
                        .visibility_timeout(seconds.clamp(0, 43_200))
                        .build()
                        .map_err(|e| QueueError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(failed) = out.failed().first() {
                return Err(QueueError(format!(
                    "{} of {} visibility changes refused: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}
