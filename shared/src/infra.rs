//! The AWS resources deskbridge needs, defined once. `deskbridge bootstrap` creates them from
//! these definitions (locally against moto, or in an account without the SAM stack), and a test
//! checks that template.yaml declares the same settings.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::state::dynamo::{PK, TTL_ATTRIBUTE};

/// Timeout of the upsert function, seconds.
pub const UPSERT_TIMEOUT_SECONDS: u32 = 60;
/// Timeout of the sync function, seconds.
pub const SYNC_TIMEOUT_SECONDS: u32 = 120;
/// SQS visibility timeouts: six times the consumer's timeout, as AWS recommends.
pub const UPSERT_VISIBILITY_SECONDS: u32 = 6 * UPSERT_TIMEOUT_SECONDS;
pub const SYNC_VISIBILITY_SECONDS: u32 = 6 * SYNC_TIMEOUT_SECONDS;
/// Receives before SQS moves a message to its dead-letter queue. Transient failures do not
/// spend them (the functions send such messages back with a delay, see `queue::Redelivery`):
/// only crashed or timed-out invocations and copies SQS refused do.
pub const MAX_RECEIVE_COUNT: u32 = 10;
/// Dead letters are kept for the SQS maximum, 14 days.
pub const DLQ_RETENTION_SECONDS: u32 = 1_209_600;
/// Work queues keep their messages for the SQS maximum too (the default is 4 days): a backlog
/// that waits longer (a paused event source mapping, a function failing its init over a long
/// weekend) is delayed, not dropped.
pub const QUEUE_RETENTION_SECONDS: u32 = 1_209_600;

/// Names of the resources for one deployment `prefix` (default `deskbridge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub table: String,
    pub upsert_queue: String,
    pub upsert_dlq: String,
    pub backfill_queue: String,
    pub sync_queue: String,
    pub sync_dlq: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Names {
            table: format!("{prefix}-state"),
            upsert_queue: format!("{prefix}-upsert"),
            upsert_dlq: format!("{prefix}-upsert-dlq"),
            backfill_queue: format!("{prefix}-backfill"),
            sync_queue: format!("{prefix}-sync"),
            sync_dlq: format!("{prefix}-sync-dlq"),
        }
    }
}

/// What bootstrap created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrapped {
    pub table: String,
    pub upsert_queue_url: String,
    pub upsert_dlq_url: String,
    /// The backfill lane; its dead letters go to the upsert dead-letter queue.
    pub backfill_queue_url: String,
    pub sync_queue_url: String,
    pub sync_dlq_url: String,
}

impl Bootstrapped {
    /// `NAME=value` lines a shell can `eval`.
    pub fn env_lines(&self) -> Vec<String> {
        vec![
            format!("STATE_TABLE={}", self.table),
            format!("UPSERT_QUEUE_URL={}", self.upsert_queue_url),
            format!("UPSERT_DLQ_URL={}", self.upsert_dlq_url),
            format!("BACKFILL_QUEUE_URL={}", self.backfill_queue_url),
            format!("SYNC_QUEUE_URL={}", self.sync_queue_url),
            format!("SYNC_DLQ_URL={}", self.sync_dlq_url),
        ]
    }
}

/// A failure creating resources.
#[derive(Debug, thiserror::Error)]
#[error("bootstrap failed creating {what}: {reason}")]
pub struct BootstrapError {
    pub what: String,
    pub reason: String,
}

fn err(what: &str, e: impl std::fmt::Display) -> BootstrapError {
    BootstrapError {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Creates the state table (on-demand, TTL on `expires_at`) unless it exists.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), BootstrapError> {
    use aws_sdk_dynamodb::error::DisplayErrorContext;
    let exists = client.describe_table().table_name(table).send().await;
    match exists {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(err(table, DisplayErrorContext(&e))),
    }
    let attr = AttributeDefinition::builder()
        .attribute_name(PK)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| err(table, e))?;
    let key = KeySchemaElement::builder()
        .attribute_name(PK)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| err(table, e))?;
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr)
        .key_schema(key)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    if let Err(e) = created
        && !e
            .as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception())
    {
        return Err(err(table, DisplayErrorContext(&e)));
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(|e| err(table, e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| err(table, DisplayErrorContext(&e)))?;
    Ok(())
}

/// Creates a queue (idempotent: SQS returns the existing URL for the same attributes).
async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String, BootstrapError> {
    use aws_sdk_sqs::error::DisplayErrorContext;
    if let Ok(found) = client.get_queue_url().queue_name(name).send().await
        && let Some(url) = found.queue_url()
    {
        // Bring an existing queue's settings in line with the definitions.
        let mut set = client.set_queue_attributes().queue_url(url);
        for (k, v) in &attributes {
            set = set.attributes(k.clone(), v.clone());
        }
        set.send()
            .await
            .map_err(|e| err(name, DisplayErrorContext(&e)))?;
        return Ok(url.to_string());
    }
    let mut req = client.create_queue().queue_name(name);
    for (k, v) in attributes {
        req = req.attributes(k, v);
    }
    let out = req
        .send()
        .await
        .map_err(|e| err(name, DisplayErrorContext(&e)))?;
    out.queue_url()
        .map(str::to_string)
        .ok_or_else(|| err(name, "no queue URL returned"))
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, BootstrapError> {
    use aws_sdk_sqs::error::DisplayErrorContext;
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err(url, DisplayErrorContext(&e)))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| err(url, "queue has no ARN"))
}

/// A work queue and its dead-letter queue.
async fn ensure_queue_pair(
    client: &aws_sdk_sqs::Client,
    name: &str,
    dlq_name: &str,
    visibility: u32,
) -> Result<(String, String), BootstrapError> {
    let dlq_url = ensure_queue(
        client,
        dlq_name,
        vec![(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECONDS.to_string(),
        )],
    )
    .await?;
    let url = ensure_queue_into(client, name, &dlq_url, visibility).await?;
    Ok((url, dlq_url))
}

/// A work queue whose dead letters go to the existing queue `dlq_url`.
async fn ensure_queue_into(
    client: &aws_sdk_sqs::Client,
    name: &str,
    dlq_url: &str,
    visibility: u32,
) -> Result<String, BootstrapError> {
    let dlq_arn = queue_arn(client, dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    })
    .to_string();
    ensure_queue(
        client,
        name,
        vec![
            (
                QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                QUEUE_RETENTION_SECONDS.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await
}

/// Creates everything for `names` where it does not exist yet.
pub async fn bootstrap(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    names: &Names,
) -> Result<Bootstrapped, BootstrapError> {
    ensure_table(dynamo, &names.table).await?;
    let (upsert_queue_url, upsert_dlq_url) = ensure_queue_pair(
        sqs,
        &names.upsert_queue,
        &names.upsert_dlq,
        UPSERT_VISIBILITY_SECONDS,
    )
    .await?;
    let backfill_queue_url = ensure_queue_into(
        sqs,
        &names.backfill_queue,
        &upsert_dlq_url,
        UPSERT_VISIBILITY_SECONDS,
    )
    .await?;
    let (sync_queue_url, sync_dlq_url) = ensure_queue_pair(
        sqs,
        &names.sync_queue,
        &names.sync_dlq,
        SYNC_VISIBILITY_SECONDS,
    )
    .await?;
    Ok(Bootstrapped {
        table: names.table.clone(),
        upsert_queue_url,
        upsert_dlq_url,
        backfill_queue_url,
        sync_queue_url,
        sync_dlq_url,
    })
}
