//! Looking people up through the helpdesk APIs, for deliveries that name a person only by id
//! (Zendesk ticket events carry just `requester_id`).
//!
//! - Zendesk: `GET {base}/api/v2/users/{id}.json` with a [`ZendeskAuth`] (OAuth bearer token,
//!   renewed once after a 401; or the legacy API token), answer `{"user":{…}}`.
//! - Intercom: `GET {base}/contacts/{id}`, Bearer token, `Intercom-Version`, answer: the contact.
//! - Gorgias: `GET {base}/api/customers/{id}`, Basic `email:api_key`, answer: the customer.
//!
//! Found people are cached for a few minutes (webhook bursts often name the same requester).
//!
//! [`PersonLookup::complete_profile`] then adds what a person object only references: an
//! Intercom contact's first company (`GET {base}/companies/{id}`, cached the same way), under
//! `company`. A company that cannot be fetched never holds the contact back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use super::intercom;
use super::zendesk::auth::{SendError, ZendeskAuth, ZendeskAuthError};
use crate::config::Settings;
use crate::http::{self as helpdesk_http, StatusClass, StatusCode};
use crate::model::{Person, Record, Source};

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

#[async_trait]
pub trait PersonLookup: Send + Sync {
    /// Fetches the person `id` of `source`; `Ok(None)` when the helpdesk has no API credentials
    /// configured or does not know the id.
    async fn lookup(
        &self,
        source: &Source,
        id: &str,
    ) -> Result<Option<(Person, Value)>, LookupError>;

    /// Adds to `record`'s profile what the helpdesk object only references (an Intercom
    /// contact's company, under `company`). Never fails: without that data the record is
    /// written as it is.
    async fn complete_profile(&self, _source: &Source, _record: &mut Record) {}
}

/// How long a found person or company is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// How long a company that could not be fetched is not asked for again: during an Intercom
/// outage contacts keep flowing, without company attributes, instead of each waiting out a
/// timeout.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);
/// Most people kept in the cache.
pub const CACHE_CAPACITY: usize = 10_000;

/// How one helpdesk is called.
#[derive(Debug, Clone)]
enum Endpoint {
    Zendesk {
        auth: ZendeskAuth,
    },
    Intercom {
        base: String,
        token: String,
        version: String,
    },
    Gorgias {
        base: String,
        email: String,
        api_key: String,
    },
}

/// [`PersonLookup`] over the helpdesk REST APIs configured in [`Settings`].
pub struct HelpdeskLookup {
    /// `Err` keeps the reason the client could not be built; every call then fails as transient.
    client: Result<reqwest::Client, String>,
    zendesk: Option<Endpoint>,
    intercom: Option<Endpoint>,
    gorgias: Option<Endpoint>,
    cache: Cache<(Source, String), Found>,
    /// Intercom companies by id; `None` for one that does not exist or could not be fetched.
    companies: Cache<String, Option<Value>>,
}

impl HelpdeskLookup {
    /// Builds the client once, with the credentials of every source whose API is configured.
    /// Zendesk look-ups share the settings' OAuth token ([`crate::config::ZendeskSettings::auth`]).
    pub fn new(settings: &Settings) -> Self {
        Self::with_cache(settings, CACHE_TTL, CACHE_CAPACITY)
    }

    /// [`HelpdeskLookup::new`] with another cache lifetime and size (0 disables the cache).
    pub fn with_cache(settings: &Settings, ttl: Duration, capacity: usize) -> Self {
        let trim = |s: &str| s.trim_end_matches('/').to_string();
        let zendesk = settings
            .zendesk
            .auth()
            .map(|auth| Endpoint::Zendesk { auth });
        let i = &settings.intercom;
        let intercom = i.access_token.as_ref().map(|token| Endpoint::Intercom {
            base: trim(&i.base_url),
            token: token.clone(),
            version: i.version.clone(),
        });
        let g = &settings.gorgias;
        let gorgias = match (&g.base_url, &g.email, &g.api_key) {
            (Some(base), Some(email), Some(key)) => Some(Endpoint::Gorgias {
                base: trim(base),
                email: email.clone(),
                api_key: key.clone(),
            }),
            _ => None,
        };
        let client = helpdesk_http::client().map_err(|e| {
            tracing::error!(error = %e, "helpdesk HTTP client unavailable; look-ups will fail");
            e.to_string()
        });
        HelpdeskLookup {
            client,
            zendesk,
            intercom,
            gorgias,
            cache: Cache::new(ttl, capacity),
            companies: Cache::new(ttl, capacity),
        }
    }

    fn endpoint(&self, source: &Source) -> Option<&Endpoint> {
        match source {
            Source::Zendesk => self.zendesk.as_ref(),
            Source::Intercom => self.intercom.as_ref(),
            Source::Gorgias => self.gorgias.as_ref(),
            Source::Generic(_) => None,
        }
    }

    /// The API path of person `id`.
    fn person_path(endpoint: &Endpoint, id: &str) -> String {
        match endpoint {
            Endpoint::Zendesk { .. } => format!("/api/v2/users/{id}.json"),
            Endpoint::Intercom { .. } => format!("/contacts/{id}"),
            Endpoint::Gorgias { .. } => format!("/api/customers/{id}"),
        }
    }

    /// `GET` of `path` (already holding a checked id) with the endpoint's credentials; `None`
    /// on 404.
    async fn fetch(&self, endpoint: &Endpoint, path: &str) -> Result<Option<Value>, LookupError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| LookupError::Transient(e.clone()))?;
        let request = match endpoint {
            Endpoint::Zendesk { auth } => {
                let url = format!("{}{path}", auth.base_url());
                let response = auth
                    .send(client, || {
                        client.get(&url).header("Accept", "application/json")
                    })
                    .await
                    .map_err(|e| match e {
                        SendError::Auth(e) => LookupError::from(e),
                        SendError::Http(e) => transport_error(e),
                    })?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    return Err(LookupError::Rejected(format!(
                        "HTTP {}: {}",
                        response.status(),
                        auth.unauthorized_hint()
                    )));
                }
                return Self::read(response).await;
            }
            Endpoint::Intercom {
                base,
                token,
                version,
            } => client
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .header("Intercom-Version", version),
            Endpoint::Gorgias {
                base,
                email,
                api_key,
            } => client
                .get(format!("{base}{path}"))
                .basic_auth(email, Some(api_key)),
        };
        let response = request
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        Self::read(response).await
    }

    /// A look-up answer: the JSON body, `None` on 404, or the error its status means.
    async fn read(response: reqwest::Response) -> Result<Option<Value>, LookupError> {
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

    /// The Intercom company `id`, from the cache or the API; `None` when Intercom has no such
    /// company, or it could not be fetched (logged, and not asked for again for a minute).
    async fn company(&self, endpoint: &Endpoint, id: &str) -> Option<Value> {
        if let Some(hit) = self.companies.get(&id.to_string()) {
            return hit;
        }
        if !valid_id(id) {
            return None;
        }
        match self.fetch(endpoint, &format!("/companies/{id}")).await {
            Ok(found) => {
                let company = found.filter(Value::is_object);
                self.companies.put(id.to_string(), company.clone());
                company
            }
            Err(e) => {
                tracing::warn!(company = %id, reason = %e,
                    "intercom company look-up failed; the contact is written without company attributes");
                self.companies.put_for(id.to_string(), None, FAILURE_TTL);
                None
            }
        }
    }
}

impl From<ZendeskAuthError> for LookupError {
    fn from(err: ZendeskAuthError) -> Self {
        match err {
            ZendeskAuthError::RateLimited(retry_after) => LookupError::RateLimited { retry_after },
            ZendeskAuthError::Unavailable(_) => LookupError::Transient(err.to_string()),
            ZendeskAuthError::Refused { .. } | ZendeskAuthError::WrongEndpoint(_) => {
                LookupError::Rejected(err.to_string())
            }
        }
    }
}

/// A transport failure as a look-up error (the URL, which holds the id, is left out).
fn transport_error(err: reqwest::Error) -> LookupError {
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

#[async_trait]
impl PersonLookup for HelpdeskLookup {
    async fn lookup(
        &self,
        source: &Source,
        id: &str,
    ) -> Result<Option<(Person, Value)>, LookupError> {
        let Some(endpoint) = self.endpoint(source) else {
            return Ok(None);
        };
        let id = id.trim();
        if !valid_id(id) {
            return Err(LookupError::Rejected(format!(
                "`{id}` is not a {source} id"
            )));
        }
        let key = (source.clone(), id.to_string());
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Some(hit));
        }
        let Some(body) = self
            .fetch(endpoint, &Self::person_path(endpoint, id))
            .await?
        else {
            return Ok(None);
        };
        // Zendesk wraps the user; Intercom and Gorgias answer with the object itself.
        let profile = match endpoint {
            Endpoint::Zendesk { .. } => body.get("user").cloned().unwrap_or(Value::Null),
            _ => body,
        };
        if !profile.is_object() {
            return Err(LookupError::Transient(format!(
                "{source} answered without a person object"
            )));
        }
        let person = super::person_from_profile(source, &profile);
        self.cache.put(key, (person.clone(), profile.clone()));
        Ok(Some((person, profile)))
    }

    async fn complete_profile(&self, source: &Source, record: &mut Record) {
        let (Source::Intercom, Some(endpoint)) = (source, self.intercom.as_ref()) else {
            return;
        };
        let Some(profile) = record
            .profile
            .as_mut()
            .filter(|p| intercom::webhook::lacks_company(p))
        else {
            return;
        };
        let Some(id) = intercom::webhook::first_company_id(profile) else {
            return;
        };
        if let Some(company) = self.company(endpoint, &id).await {
            intercom::webhook::with_company(profile, &company);
        }
    }
}

/// A found person and the helpdesk object it came from.
type Found = (Person, Value);

/// A small expiring map, shared by the look-ups here and the sync readers' caches. On overflow,
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
    use crate::config::Vars;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ZENDESK_USER: &str = include_str!("../../tests/fixtures/zendesk/api-user.json");
    const INTERCOM_CONTACT: &str = include_str!("../../tests/fixtures/intercom/api-contact.json");
    const GORGIAS_CUSTOMER: &str = include_str!("../../tests/fixtures/gorgias/api-customer.json");

    fn settings(server: &MockServer) -> Settings {
        let uri = server.uri();
        Settings::from_vars(&Vars::from_pairs([
            ("ZENDESK_BASE_URL", uri.as_str()),
            ("ZENDESK_EMAIL", "ops@example.com"),
            ("ZENDESK_API_TOKEN", "zd-token"),
            ("INTERCOM_BASE_URL", uri.as_str()),
            ("INTERCOM_ACCESS_TOKEN", "ic-token"),
            ("GORGIAS_BASE_URL", uri.as_str()),
            ("GORGIAS_EMAIL", "ops@example.com"),
            ("GORGIAS_API_KEY", "gg-key"),
        ]))
        .expect("settings")
    }

    fn json(body: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "application/json")
    }

    #[tokio::test]
    async fn zendesk_user_is_fetched_with_token_auth_and_cached() {
        let server = MockServer::start().await;
        // base64("ops@example.com/token:zd-token")
        Mock::given(method("GET"))
            .and(path("/api/v2/users/8447388090494.json"))
            .and(header(
                "authorization",
                "Basic b3BzQGV4YW1wbGUuY29tL3Rva2VuOnpkLXRva2Vu",
            ))
            .and(header("user-agent", helpdesk_http::USER_AGENT))
            .respond_with(json(ZENDESK_USER))
            .expect(1)
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        for _ in 0..2 {
            let (person, profile) = lookup
                .lookup(&Source::Zendesk, "8447388090494")
                .await
                .expect("ok")
                .expect("found");
            assert_eq!(person.source_id.as_deref(), Some("8447388090494"));
            assert_eq!(person.email.as_deref(), Some("jane.doe@example.com"));
            assert_eq!(person.phone.as_deref(), Some("+1 415 555 0123"));
            assert_eq!(profile["role"], "end-user");
        }
        // `expect(1)`: the second call came from the cache (checked when the server drops).
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn zendesk_users_are_fetched_with_one_oauth_token_renewed_after_a_401() {
        let server = MockServer::start().await;
        let grants = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = grants.clone();
        Mock::given(method("POST"))
            .and(path("/oauth/tokens"))
            .and(wiremock::matchers::body_json(serde_json::json!({
                "grant_type": "client_credentials", "client_id": "deskbridge",
                "client_secret": "zd-client-secret", "scope": "read"
            })))
            .respond_with(move |_: &wiremock::Request| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({
                        "access_token": format!("tok-{n}"), "token_type": "bearer",
                        "scope": "read", "expires_in": 172_800
                    }))
                    .set_delay(Duration::from_millis(100))
            })
            .mount(&server)
            .await;
        // User 21 is asked for after the first token was revoked.
        Mock::given(method("GET"))
            .and(path("/api/v2/users/21.json"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({"error": "Couldn't authenticate you"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/21.json"))
            .and(header("authorization", "Bearer tok-2"))
            .respond_with(json(ZENDESK_USER))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(r"^/api/v2/users/\d+\.json$"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(json(ZENDESK_USER))
            .expect(20)
            .mount(&server)
            .await;
        let uri = server.uri();
        // Only the OAuth client: no API token.
        let settings = Settings::from_vars(&Vars::from_pairs([
            ("ZENDESK_BASE_URL", uri.as_str()),
            ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
            ("ZENDESK_OAUTH_CLIENT_SECRET", "zd-client-secret"),
        ]))
        .expect("settings");
        let lookup = std::sync::Arc::new(HelpdeskLookup::new(&settings));
        let mut tasks = tokio::task::JoinSet::new();
        for id in 1..=20 {
            let lookup = lookup.clone();
            tasks.spawn(async move { lookup.lookup(&Source::Zendesk, &id.to_string()).await });
        }
        while let Some(done) = tasks.join_next().await {
            let (person, _) = done.expect("task").expect("ok").expect("found");
            assert_eq!(person.email.as_deref(), Some("jane.doe@example.com"));
        }
        assert_eq!(grants.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (person, _) = lookup
            .lookup(&Source::Zendesk, "21")
            .await
            .expect("ok after one renewal")
            .expect("found");
        assert_eq!(person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(grants.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn zendesk_oauth_failures_are_classified() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth/tokens"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "Client authentication failed."
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/1.json"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        let uri = server.uri();
        let settings = |pairs: &[(&str, &str)]| {
            let mut all = vec![("ZENDESK_BASE_URL", uri.as_str())];
            all.extend_from_slice(pairs);
            Settings::from_vars(&Vars::from_pairs(all)).expect("settings")
        };
        // The grant is refused: not retryable, and the message names the client variables.
        let lookup = HelpdeskLookup::new(&settings(&[
            ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
            ("ZENDESK_OAUTH_CLIENT_SECRET", "wrong"),
        ]));
        let err = lookup
            .lookup(&Source::Zendesk, "1")
            .await
            .expect_err("refused");
        assert!(!err.is_retryable(), "{err}");
        assert!(
            err.to_string().contains("ZENDESK_OAUTH_CLIENT_SECRET"),
            "{err}"
        );
        // A ready token that Zendesk refuses cannot be renewed: said so.
        let lookup = HelpdeskLookup::new(&settings(&[("ZENDESK_OAUTH_TOKEN", "stale")]));
        let err = lookup
            .lookup(&Source::Zendesk, "1")
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, LookupError::Rejected(m) if m.contains("401") && m.contains("ZENDESK_OAUTH_TOKEN")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn intercom_contact_is_fetched_with_version_header() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/contacts/6762f0d91bb69f9f2193bb7e"))
            .and(header("authorization", "Bearer ic-token"))
            .and(header("intercom-version", "2.11"))
            .and(header("accept", "application/json"))
            .respond_with(json(INTERCOM_CONTACT))
            .expect(1)
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        let (person, profile) = lookup
            .lookup(&Source::Intercom, "6762f0d91bb69f9f2193bb7e")
            .await
            .expect("ok")
            .expect("found");
        assert_eq!(person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(person.name.as_deref(), Some("Jane Doe"));
        assert_eq!(profile["custom_attributes"]["plan_tier"], "pro");
    }

    #[tokio::test]
    async fn gorgias_customer_is_fetched_with_basic_auth() {
        let server = MockServer::start().await;
        // base64("ops@example.com:gg-key")
        Mock::given(method("GET"))
            .and(path("/api/customers/51234567"))
            .and(header(
                "authorization",
                "Basic b3BzQGV4YW1wbGUuY29tOmdnLWtleQ==",
            ))
            .respond_with(json(GORGIAS_CUSTOMER))
            .expect(1)
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        let (person, _) = lookup
            .lookup(&Source::Gorgias, "51234567")
            .await
            .expect("ok")
            .expect("found");
        assert_eq!(person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(person.phone.as_deref(), Some("+1 415 555 0177"));
        assert_eq!(person.first_name.as_deref(), Some("Jane"));
    }

    #[tokio::test]
    async fn not_found_is_none_and_errors_are_classified() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v2/users/404.json"))
            .respond_with(
                ResponseTemplate::new(404).set_body_string(r#"{"error":"RecordNotFound"}"#),
            )
            .mount(&server)
            .await;
        Mock::given(path("/api/v2/users/429.json"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "42"))
            .mount(&server)
            .await;
        Mock::given(path("/api/v2/users/500.json"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        Mock::given(path("/api/v2/users/401.json"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        Mock::given(path("/api/v2/users/garbage.json"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        let z = |id: &'static str| lookup.lookup(&Source::Zendesk, id);
        assert_eq!(z("404").await, Ok(None));
        let limited = z("429").await.expect_err("rate limited");
        assert_eq!(
            limited,
            LookupError::RateLimited {
                retry_after: Some(Duration::from_secs(42))
            }
        );
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(42)));
        assert!(matches!(z("500").await, Err(LookupError::Transient(_))));
        let rejected = z("401").await.expect_err("rejected");
        assert!(matches!(rejected, LookupError::Rejected(_)) && !rejected.is_retryable());
        assert!(matches!(z("garbage").await, Err(LookupError::Transient(_))));
        assert!(matches!(z("../admin").await, Err(LookupError::Rejected(_))));
    }

    #[tokio::test]
    async fn timeouts_are_transient() {
        let server = MockServer::start().await;
        Mock::given(path("/contacts/slow"))
            .respond_with(json(INTERCOM_CONTACT).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let mut lookup = HelpdeskLookup::new(&settings(&server));
        lookup.client = helpdesk_http::client_with_timeout(Duration::from_millis(200))
            .map_err(|e| e.to_string());
        let err = lookup
            .lookup(&Source::Intercom, "slow")
            .await
            .expect_err("timeout");
        assert_eq!(err, LookupError::Transient("timed out".into()));
    }

    #[tokio::test]
    async fn sources_without_credentials_answer_none_without_calling() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        let uri = server.uri();
        // Base URLs point at the server, but no credentials are set.
        let settings = Settings::from_vars(&Vars::from_pairs([
            ("ZENDESK_BASE_URL", uri.as_str()),
            ("INTERCOM_BASE_URL", uri.as_str()),
            ("GORGIAS_BASE_URL", uri.as_str()),
        ]))
        .expect("settings");
        let lookup = HelpdeskLookup::new(&settings);
        for source in Source::BUILT_IN {
            assert_eq!(lookup.lookup(&source, "123").await, Ok(None));
        }
        assert_eq!(
            lookup
                .lookup(&Source::Generic("cinnox".into()), "123")
                .await,
            Ok(None)
        );
        // Nor is an Intercom contact's company fetched.
        let before = intercom_contact_record("6762f0f21bb69f9f2193bb83");
        let mut record = before.clone();
        lookup
            .complete_profile(&Source::Intercom, &mut record)
            .await;
        assert_eq!(record, before);
    }

    fn intercom_contact_record(company_id: &str) -> Record {
        let mut contact: Value = serde_json::from_str(INTERCOM_CONTACT).expect("json");
        contact["companies"]["data"] = serde_json::json!([
            {"type": "company", "id": company_id, "url": format!("/companies/{company_id}")}
        ]);
        Record {
            person: super::super::person_from_profile(&Source::Intercom, &contact),
            observed_at: Utc::now(),
            profile: Some(contact),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn intercom_companies_are_fetched_once_and_attached() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/companies/6762f0f21bb69f9f2193bb83"))
            .and(header("authorization", "Bearer ic-token"))
            .and(header("intercom-version", "2.11"))
            .respond_with(json(crate::helpdesk::intercom::webhook::tests::COMPANY))
            .expect(1)
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        for _ in 0..2 {
            let mut record = intercom_contact_record("6762f0f21bb69f9f2193bb83");
            lookup
                .complete_profile(&Source::Intercom, &mut record)
                .await;
            let profile = record.profile.expect("profile");
            assert_eq!(profile["company"]["name"], "Acme Logistics");
            assert_eq!(profile["company"]["plan"], "Pro");
            assert_eq!(profile["company"]["size"], 85);
        }
        // Other sources, and contacts without companies, are left as they are.
        let mut zendesk = intercom_contact_record("6762f0f21bb69f9f2193bb83");
        lookup
            .complete_profile(&Source::Zendesk, &mut zendesk)
            .await;
        assert!(zendesk.profile.expect("profile").get("company").is_none());
    }

    #[tokio::test]
    async fn a_failing_company_api_leaves_the_contact_as_it_is() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/companies/broken"))
            .respond_with(ResponseTemplate::new(500))
            // Asked once: the failure is remembered for a minute.
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/companies/gone"))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        for id in ["broken", "broken", "gone", "gone", "../admin"] {
            let before = intercom_contact_record(id);
            let mut record = before.clone();
            lookup
                .complete_profile(&Source::Intercom, &mut record)
                .await;
            assert_eq!(record, before, "{id}");
        }
    }

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
