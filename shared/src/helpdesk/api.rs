//! What every helpdesk's API calls share: the look-up error, the reading of an answer by its
//! status, the checks on ids put into URL paths, and a small expiring cache. Depends on no
//! helpdesk, so every vendor folder can use it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use crate::http::{self as helpdesk_http, StatusClass};

/// Why a look-up failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// 5xx, timeout, connection failure: try again later.
    #[error("helpdesk API unavailable: {0}")]
    Transient(String),
    /// 429: try again after `retry_after` (when the helpdesk said).
    #[error("helpdesk API rate limit reached; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// A 4xx other than 404/429 (bad credentials, forbidden, invalid id): retrying won't help.
    #[error("helpdesk API refused the request: {0}")]
    Rejected(String),
}

impl LookupError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LookupError::Transient(_) | LookupError::RateLimited { .. }
        )
    }

    /// How long the helpdesk asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LookupError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// How long a found person or company is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// How long a company that could not be fetched is not asked for again: during an Intercom
/// outage contacts keep flowing, without company attributes, instead of each waiting out a
/// timeout.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);
/// Most people kept in the cache.
pub const CACHE_CAPACITY: usize = 10_000;

/// How long look-up answers are kept, and how many (a capacity of 0 disables the caches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl: Duration,
    pub capacity: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            ttl: CACHE_TTL,
            capacity: CACHE_CAPACITY,
        }
    }
}

/// A look-up answer: the JSON body, `None` on 404, or the error its status means.
pub(crate) async fn read(response: reqwest::Response) -> Result<Option<Value>, LookupError> {
    let status = response.status();
    match helpdesk_http::classify(status, response.headers(), Utc::now()) {
        StatusClass::Success => {}
        StatusClass::NotFound => return Ok(None),
        StatusClass::RateLimited(retry_after) => {
            return Err(LookupError::RateLimited { retry_after });
        }
        StatusClass::Transient => return Err(LookupError::Transient(format!("HTTP {status}"))),
        StatusClass::Rejected => return Err(LookupError::Rejected(format!("HTTP {status}"))),
    }
    let body: Value = response.json().await.map_err(transport_error)?;
    Ok(Some(body))
}

/// A write's answer by its status alone: `true` on success, `false` on 404 (the thing is gone),
/// or the error its status means. The body is not read (a write may answer without one).
pub(crate) fn written(response: &reqwest::Response) -> Result<bool, LookupError> {
    let status = response.status();
    match helpdesk_http::classify(status, response.headers(), Utc::now()) {
        StatusClass::Success => Ok(true),
        StatusClass::NotFound => Ok(false),
        StatusClass::RateLimited(retry_after) => Err(LookupError::RateLimited { retry_after }),
        StatusClass::Transient => Err(LookupError::Transient(format!("HTTP {status}"))),
        StatusClass::Rejected => Err(LookupError::Rejected(format!("HTTP {status}"))),
    }
}

/// Sends `request` asking for JSON and reads the answer as [`read`] does.
pub(crate) async fn get_json(
    request: reqwest::RequestBuilder,
) -> Result<Option<Value>, LookupError> {
    let response = request
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(transport_error)?;
    read(response).await
}

/// A transport failure as a look-up error (the URL, which holds the id, is left out).
pub(crate) fn transport_error(err: reqwest::Error) -> LookupError {
    let transient = helpdesk_http::is_transient_error(&err);
    let what = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else if err.is_decode() {
        "unreadable response body".to_string()
    } else {
        err.without_url().to_string()
    };
    if transient {
        LookupError::Transient(what)
    } else {
        LookupError::Rejected(what)
    }
}

/// Helpdesk ids are digits, letters, `-` and `_`; anything else could escape the URL path.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A small expiring map, shared by the person look-ups and the sync readers' caches. On overflow,
/// expired entries go first, then the one closest to expiry.
#[derive(Debug)]
pub(crate) struct Cache<K, V> {
    ttl: Duration,
    capacity: usize,
    /// Each value with the instant it expires.
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + std::hash::Hash + Clone, V: Clone> Cache<K, V> {
    /// Entries live `ttl`; at most `capacity` are kept (0 disables the cache).
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Cache {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match entries.get(key) {
            Some((expires, hit)) if Instant::now() < *expires => Some(hit.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for the cache's lifetime.
    pub(crate) fn put(&self, key: K, value: V) {
        self.put_for(key, value, self.ttl);
    }

    /// Keeps `value` for `ttl` (never longer than the cache's lifetime).
    pub(crate) fn put_for(&self, key: K, value: V, ttl: Duration) {
        let ttl = ttl.min(self.ttl);
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires, _)| now < *expires);
        }
        if entries.len() >= self.capacity
            && let Some(soonest) = entries
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&soonest);
        }
        entries.insert(key, (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Person, Source};

    #[test]
    fn the_cache_expires_and_stays_bounded() {
        let key = |s: Source, id: &str| (s, id.to_string());
        let c = Cache::new(Duration::from_secs(60), 2);
        let v = (Person::default(), Value::Null);
        c.put(key(Source::Zendesk, "1"), v.clone());
        c.put(key(Source::Zendesk, "2"), v.clone());
        c.put(key(Source::Zendesk, "3"), v.clone());
        assert_eq!(c.entries.lock().expect("lock").len(), 2);
        assert!(
            c.get(&key(Source::Zendesk, "1")).is_none(),
            "oldest evicted"
        );
        assert!(c.get(&key(Source::Zendesk, "3")).is_some());
        assert!(
            c.get(&key(Source::Intercom, "3")).is_none(),
            "keyed by source too"
        );

        let expired = Cache::new(Duration::from_millis(1), 10);
        expired.put(key(Source::Zendesk, "1"), v.clone());
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get(&key(Source::Zendesk, "1")).is_none());

        // A shorter life for one entry (failures), never a longer one.
        let c = Cache::new(Duration::from_secs(60), 10);
        c.put_for(
            key(Source::Zendesk, "short"),
            v.clone(),
            Duration::from_millis(1),
        );
        c.put_for(key(Source::Zendesk, "long"), v, Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get(&key(Source::Zendesk, "short")).is_none());
        assert!(c.get(&key(Source::Zendesk, "long")).is_some());
    }
}
