//! [`StateStore`] on DynamoDB: one table, string partition key `pk`, TTL attribute `expires_at`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Claim, Doc, StateError, StateStore};
use crate::clock::{Clock, SystemClock};

/// Name of the partition key attribute.
pub const PK: &str = "pk";
/// Name of the TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The state table.
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    client: Client,
    table: String,
    /// What expiries and claim leases are reckoned from (the system clock but in tests).
    clock: Arc<dyn Clock>,
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StateError {
    StateError(DisplayErrorContext(&e).to_string())
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStateStore {
            client,
            table: table.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same store reckoning expiries and leases from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn epoch_after(&self, ttl: Duration) -> i64 {
        self.now()
            .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Rounds of put, read and take-over before a claim that keeps changing counts as busy.
const CLAIM_ATTEMPTS: usize = 3;

fn is_condition_failure<R>(e: &SdkError<PutItemError, R>) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.is_conditional_check_failed_exception())
}

impl DynamoStateStore {
    /// The item under `key`, read consistently.
    async fn read(
        &self,
        key: &str,
    ) -> Result<aws_sdk_dynamodb::operation::get_item::GetItemOutput, StateError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)
    }

    /// Makes every sent-event record of the table permanent: drops the 30-day expiry that
    /// records written by earlier versions carry (see [`super::is_permanent`]). One paged scan
    /// for done `event#` records with an `expires_at`, one conditional update each; safe to run
    /// while the stack runs, and again (it finds nothing the second time). Returns how many
    /// records it changed.
    pub async fn keep_sent_events(&self) -> Result<u64, StateError> {
        let mut changed = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(
                    "begins_with(#pk, :event) AND #status = :done AND attribute_exists(#exp)",
                )
                .projection_expression("#pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_values(":event", AttributeValue::S("event#".into()))
                .expression_attribute_values(":done", AttributeValue::S("done".into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                if let Some(Ok(key)) = item.get(PK).map(|v| v.as_s()) {
                    self.remove_expiry(key)
                        .await
                        .map_err(|e| StateError(format!("{key}: {}", DisplayErrorContext(&e))))?;
                    changed += 1;
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(changed);
            }
        }
    }

    /// Drops the expiry of the done record under `key`: an event record written before event
    /// records were permanent still carries the 30-day expiry of the time. Best effort: the
    /// next read tries again.
    async fn keep(&self, key: &str) {
        if let Err(e) = self.remove_expiry(key).await {
            tracing::warn!(key, error = %DisplayErrorContext(&e), "state: could not make a sent event's record permanent; trying again when it is next read");
        }
    }

    /// Writes the done record under `key` again without its expiry, if it is still done. A done
    /// record holds only its key and status, so the put is the record minus `expires_at`; a put
    /// rather than an `UpdateItem` keeps the functions' roles to the writes they already have.
    async fn remove_expiry(&self, key: &str) -> Result<(), SdkError<PutItemError>> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(key.to_string()))
            .item("status", AttributeValue::S("done".into()))
            .condition_expression("#status = :done")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", AttributeValue::S("done".into()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // No longer done (released and claimed again meanwhile): nothing to keep.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A put of a pending claim on `key` taken at `now`, without its condition.
    fn pending(
        &self,
        key: &str,
        ttl: Duration,
        now: i64,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(key.to_string()))
            .item("status", AttributeValue::S("pending".into()))
            .item("claimed_at", AttributeValue::N(now.to_string()))
            .item(
                TTL_ATTRIBUTE,
                AttributeValue::N(self.epoch_after(ttl).to_string()),
            )
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StateError> {
        // A claim is only ever taken by a conditional write: a fresh one where none is (or the
        // stored one expired), or a take-over of the very pending claim that was read and found
        // past its lease. Whoever sends holds the claim, so two workers never both send.
        for _ in 0..CLAIM_ATTEMPTS {
            let now = self.now();
            let put = self
                .pending(key, ttl, now)
                // TTL deletion is lazy: an expired record counts as absent.
                .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(Claim::New),
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
            let got = self.read(key).await?;
            let item = got.item();
            let status = item
                .and_then(|i| i.get("status"))
                .and_then(|v| v.as_s().ok())
                .map(String::as_str);
            let claimed_at = item
                .and_then(|i| i.get("claimed_at"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok());
            let lease = i64::try_from(super::CLAIM_LEASE.as_secs()).unwrap_or(i64::MAX);
            match (status, claimed_at) {
                (Some("done"), _) => {
                    if item.is_some_and(|i| i.contains_key(TTL_ATTRIBUTE))
                        && super::is_permanent(key)
                    {
                        self.keep(key).await;
                    }
                    return Ok(Claim::Done);
                }
                (Some("pending"), Some(at)) if now.saturating_sub(at) < lease => {
                    return Ok(Claim::Busy);
                }
                // Pending past its lease (its worker died or could not release it): take it
                // over, as long as it is still that same claim.
                (Some("pending"), Some(at)) => {
                    let takeover = self
                        .pending(key, ttl, now)
                        .condition_expression("#status = :pending AND #at = :at")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_names("#at", "claimed_at")
                        .expression_attribute_values(
                            ":pending",
                            AttributeValue::S("pending".into()),
                        )
                        .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
                        .send()
                        .await;
                    match takeover {
                        Ok(_) => return Ok(Claim::Abandoned),
                        Err(e) if is_condition_failure(&e) => {}
                        Err(e) => return Err(unavailable(e)),
                    }
                }
                // Gone between the two calls (released), or unreadable: try again from the top.
                _ => {}
            }
        }
        // Changing under our feet every time: another worker is at it.
        Ok(Claim::Busy)
    }

    async fn complete(&self, key: &str, ttl: Option<Duration>) -> Result<(), StateError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(key.to_string()))
            .item("status", AttributeValue::S("done".into()));
        if let Some(ttl) = ttl {
            put = put.item(
                TTL_ATTRIBUTE,
                AttributeValue::N(self.epoch_after(ttl).to_string()),
            );
        }
        put.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StateError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.to_string()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn is_done(&self, key: &str) -> Result<bool, StateError> {
        let got = self.read(key).await?;
        let Some(item) = got.item() else {
            return Ok(false);
        };
        let done = item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some("done");
        // TTL deletion is lazy: an expired record counts as absent, as in `claim`.
        let expired = item
            .get(TTL_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|at| at < self.now());
        Ok(done && !expired)
    }

    async fn load_doc(&self, key: &str) -> Result<Option<Doc>, StateError> {
        let got = self.read(key).await?;
        let Some(item) = got.item() else {
            return Ok(None);
        };
        doc_of(key, item).map(Some)
    }

    async fn save_doc(
        &self,
        key: &str,
        rev: Option<u64>,
        text: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        let new_rev = rev.map_or(1, |r| r + 1);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(key.to_string()))
            .item("rev", AttributeValue::N(new_rev.to_string()))
            .item("doc", AttributeValue::S(text.to_string()));
        if let Some(ttl) = ttl {
            put = put.item(
                TTL_ATTRIBUTE,
                AttributeValue::N(self.epoch_after(ttl).to_string()),
            );
        }
        put = match rev {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(r) => put
                .condition_expression("#rev = :rev")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":rev", AttributeValue::N(r.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// The revision and document of a stored item.
fn doc_of(
    key: &str,
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<Doc, StateError> {
    let rev = item
        .get("rev")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| StateError(format!("{key}: stored item has no revision")))?;
    let text = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StateError(format!("{key}: stored item has no document")))?;
    Ok(Doc {
        rev,
        text: text.clone(),
    })
}

/// A stream's state from its stored document.
fn stored_of(
    id: &super::streams::StreamId,
    doc: Doc,
) -> Result<super::streams::Stored, StateError> {
    let state = serde_json::from_str(&doc.text)
        .map_err(|e| StateError(format!("stream {id}: unreadable stored state: {e}")))?;
    Ok(super::streams::Stored {
        state,
        rev: Some(doc.rev),
    })
}

#[async_trait]
impl super::streams::StreamStore for DynamoStateStore {
    async fn load(
        &self,
        id: &super::streams::StreamId,
    ) -> Result<super::streams::Stored, StateError> {
        let Some(doc) = self.load_doc(&id.key()).await? else {
            return Ok(super::streams::Stored::default());
        };
        stored_of(id, doc)
    }

    /// One consistent `BatchGetItem` per 100 streams; keys DynamoDB leaves unprocessed (under
    /// throttling) are read one by one.
    async fn load_many(
        &self,
        ids: &[super::streams::StreamId],
    ) -> Result<Vec<super::streams::Stored>, StateError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        use std::collections::HashMap;
        let keys: Vec<String> = ids.iter().map(super::streams::StreamId::key).collect();
        let mut docs: HashMap<String, Doc> = HashMap::new();
        let mut unread: Vec<String> = Vec::new();
        for chunk in keys.chunks(100) {
            let mut wanted = KeysAndAttributes::builder().consistent_read(true);
            for key in chunk {
                wanted = wanted.keys(HashMap::from([(
                    PK.to_string(),
                    AttributeValue::S(key.clone()),
                )]));
            }
            let wanted = wanted.build().map_err(|e| StateError(e.to_string()))?;
            let got = self
                .client
                .batch_get_item()
                .request_items(&self.table, wanted)
                .send()
                .await
                .map_err(unavailable)?;
            for item in got
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let Some(key) = item.get(PK).and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                docs.insert(key.clone(), doc_of(key, item)?);
            }
            if let Some(left) = got.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                unread.extend(
                    left.keys()
                        .iter()
                        .filter_map(|k| k.get(PK).and_then(|v| v.as_s().ok()).cloned()),
                );
            }
        }
        for key in unread {
            if let Some(doc) = self.load_doc(&key).await? {
                docs.insert(key, doc);
            }
        }
        ids.iter()
            .map(|id| {
                let Some(doc) = docs.remove(&id.key()) else {
                    return Ok(super::streams::Stored::default());
                };
                stored_of(id, doc)
            })
            .collect()
    }

    async fn save(
        &self,
        id: &super::streams::StreamId,
        rev: Option<u64>,
        next: &super::streams::StreamState,
    ) -> Result<super::streams::Write, StateError> {
        let text = serde_json::to_string(next).map_err(|e| StateError(e.to_string()))?;
        Ok(if self.save_doc(&id.key(), rev, &text, None).await? {
            super::streams::Write::Done(Box::new(super::streams::Stored {
                state: next.clone(),
                rev: Some(super::streams::next_rev(rev)),
            }))
        } else {
            super::streams::Write::Conflict
        })
    }
}
