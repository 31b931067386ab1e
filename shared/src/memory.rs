//! In-process implementations of the ports, for handler unit tests and benchmarks. Integration
//! tests and the local runner use the real SQS and DynamoDB APIs (moto) instead.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::queue::{InMessage, Queue, QueueError, RetryRecord};
use crate::state::{Claim, Doc, StateError, StateStore};

/// A queue held in memory; can be told to fail, to exercise error paths.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    messages: Mutex<HashMap<String, VecDeque<String>>>,
    /// `(queue url, reason)` of every dead letter sent, in order.
    reasons: Mutex<Vec<(String, String)>>,
    /// `(queue url, delay, record)` of every message sent back for a retry, in order.
    later: Mutex<Vec<(String, Duration, RetryRecord)>>,
    failing: AtomicBool,
}

impl MemoryQueue {
    /// The reasons of the dead letters sent to `queue_url`, in order.
    pub fn dead_letter_reasons(&self, queue_url: &str) -> Vec<String> {
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(q, _)| q == queue_url)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The delays and records of the messages sent back to `queue_url` for a retry, in order.
    pub fn sent_later(&self, queue_url: &str) -> Vec<(Duration, RetryRecord)> {
        self.later
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(q, _, _)| q == queue_url)
            .map(|(_, d, r)| (*d, r.clone()))
            .collect()
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail (true) or succeed (false).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Messages currently held for `queue_url`.
    pub fn messages(&self, queue_url: &str) -> Vec<String> {
        self.lock()
            .get(queue_url)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of messages held across all queues.
    pub fn len(&self) -> usize {
        self.lock().values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every held message.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<String>>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(QueueError("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError> {
        self.check()?;
        self.lock()
            .entry(queue_url.to_string())
            .or_default()
            .push_back(body.to_string());
        Ok(())
    }

    async fn send_dead_letter(
        &self,
        queue_url: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.send(queue_url, body).await?;
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((queue_url.to_string(), reason.to_string()));
        Ok(())
    }

    async fn send_later(
        &self,
        queue_url: &str,
        body: &str,
        delay: Duration,
        retry: &RetryRecord,
    ) -> Result<(), QueueError> {
        self.send(queue_url, body).await?;
        self.later.lock().unwrap_or_else(|e| e.into_inner()).push((
            queue_url.to_string(),
            delay,
            retry.clone(),
        ));
        Ok(())
    }

    async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError> {
        self.check()?;
        self.lock()
            .entry(queue_url.to_string())
            .or_default()
            .extend(bodies.iter().cloned());
        Ok(())
    }

    async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        _wait: i32,
    ) -> Result<Vec<InMessage>, QueueError> {
        self.check()?;
        let mut all = self.lock();
        let q = all.entry(queue_url.to_string()).or_default();
        let n = usize::try_from(max.max(0)).unwrap_or(0).min(q.len());
        Ok(q.drain(..n)
            .enumerate()
            .map(|(i, body)| InMessage {
                reason: None,
                retry: None,
                message_id: format!("m{i}"),
                receipt_handle: format!("r{i}"),
                body,
                receive_count: 1,
            })
            .collect())
    }

    async fn delete(&self, _queue_url: &str, _receipt_handle: &str) -> Result<(), QueueError> {
        self.check()
    }

    async fn set_visibility(
        &self,
        _queue_url: &str,
        _receipt_handle: &str,
        _seconds: i32,
    ) -> Result<(), QueueError> {
        self.check()
    }
}

/// A state store held in memory (TTL is not enforced).
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    claims: Mutex<HashMap<String, bool>>,
    docs: Mutex<HashMap<String, Doc>>,
    failing: AtomicBool,
}

impl MemoryStateStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail (true) or succeed (false).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StateError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StateError("injected failure".into()))
        } else {
            Ok(())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn claim(&self, key: &str, _ttl: Duration) -> Result<Claim, StateError> {
        self.check()?;
        let mut claims = self.lock();
        Ok(match claims.get(key) {
            None => {
                claims.insert(key.to_string(), false);
                Claim::New
            }
            Some(false) => Claim::Abandoned,
            Some(true) => Claim::Done,
        })
    }

    async fn complete(&self, key: &str, _ttl: Option<Duration>) -> Result<(), StateError> {
        self.check()?;
        self.lock().insert(key.to_string(), true);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StateError> {
        self.check()?;
        self.lock().remove(key);
        Ok(())
    }

    async fn is_done(&self, key: &str) -> Result<bool, StateError> {
        self.check()?;
        Ok(self.lock().get(key) == Some(&true))
    }

    async fn load_doc(&self, key: &str) -> Result<Option<Doc>, StateError> {
        self.check()?;
        let docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(docs.get(key).cloned())
    }

    async fn save_doc(
        &self,
        key: &str,
        rev: Option<u64>,
        text: &str,
        _ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        self.check()?;
        let mut docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        if docs.get(key).map(|d| d.rev) != rev {
            return Ok(false);
        }
        let doc = Doc {
            rev: rev.map_or(1, |r| r + 1),
            text: text.to_string(),
        };
        docs.insert(key.to_string(), doc);
        Ok(true)
    }
}

/// Stream states held in memory, with the same conditional-write rules as DynamoDB.
#[derive(Debug, Default)]
pub struct MemoryStreamStore {
    streams: Mutex<HashMap<String, (u64, crate::state::streams::StreamState)>>,
}

impl MemoryStreamStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl crate::state::streams::StreamStore for MemoryStreamStore {
    async fn load(
        &self,
        id: &crate::state::streams::StreamId,
    ) -> Result<crate::state::streams::Stored, StateError> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match streams.get(&id.key()) {
            Some((rev, state)) => crate::state::streams::Stored {
                state: state.clone(),
                rev: Some(*rev),
            },
            None => crate::state::streams::Stored::default(),
        })
    }

    async fn save(
        &self,
        id: &crate::state::streams::StreamId,
        rev: Option<u64>,
        next: &crate::state::streams::StreamState,
    ) -> Result<crate::state::streams::Write, StateError> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let current = streams.get(&id.key()).map(|(r, _)| *r);
        if current != rev {
            return Ok(crate::state::streams::Write::Conflict);
        }
        let rev = crate::state::streams::next_rev(rev);
        streams.insert(id.key(), (rev, next.clone()));
        Ok(crate::state::streams::Write::Done(Box::new(
            crate::state::streams::Stored {
                state: next.clone(),
                rev: Some(rev),
            },
        )))
    }
}

/// A helpdesk look-up that never finds anyone (as without helpdesk API credentials).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLookup;

#[async_trait]
impl crate::helpdesk::PersonLookup for NoLookup {
    async fn lookup(
        &self,
        _source: &crate::model::Source,
        _id: &str,
    ) -> Result<Option<(crate::model::Person, serde_json::Value)>, crate::helpdesk::LookupError>
    {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::streams::{
        RunOptions, Start, Stored, StreamId, StreamState, StreamStore, Write, mark_queued,
        next_rev, start_run,
    };
    use async_trait::async_trait;
    use chrono::Utc;
    use std::time::Duration;

    /// Counts the reads of the store it wraps.
    #[derive(Default)]
    struct Counted {
        inner: MemoryStreamStore,
        loads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl StreamStore for Counted {
        async fn load(&self, id: &StreamId) -> Result<Stored, StateError> {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.load(id).await
        }
        async fn save(
            &self,
            id: &StreamId,
            rev: Option<u64>,
            next: &StreamState,
        ) -> Result<Write, StateError> {
            self.inner.save(id, rev, next).await
        }
    }

    #[tokio::test]
    async fn a_start_notes_its_page_job_queued_without_reading_the_stream_again() {
        let store = Counted::default();
        let id = StreamId::new(crate::model::Source::Intercom, "contacts");
        let now = Utc::now();
        let lease = Duration::from_secs(900);
        let Start::Started {
            version, written, ..
        } = start_run(&store, &id, "run-1", &RunOptions::default(), now, lease)
            .await
            .expect("start")
        else {
            panic!("a fresh stream starts");
        };
        assert_eq!(written.rev, Some(next_rev(None)));
        let loads = store.loads.load(std::sync::atomic::Ordering::SeqCst);
        let noted = mark_queued(&store, &id, version, Some(&written))
            .await
            .expect("noted");
        assert!(matches!(noted, Write::Done(_)));
        assert_eq!(
            store.loads.load(std::sync::atomic::Ordering::SeqCst),
            loads,
            "no read"
        );
        assert!(store.inner.load(&id).await.expect("load").state.next_queued);

        // A state that changed since it was written is not overwritten: the note is dropped.
        let again = mark_queued(&store, &id, version, Some(&written))
            .await
            .expect("answered");
        assert_eq!(again, Write::Conflict);
    }
}
