//! Looking people up through the helpdesk APIs, for deliveries that name a person only by id
//! (Zendesk ticket events carry just `requester_id`).
//!
//! Each helpdesk with an API says how in its folder ([`PersonApi`]): Zendesk
//! `GET {base}/api/v2/users/{id}.json`, Intercom `GET {base}/contacts/{id}`, Gorgias
//! `GET {base}/api/customers/{id}`. [`HelpdeskLookup`] calls them for every helpdesk of a
//! [`Registry`] whose credentials are set.
//!
//! Found people are cached for a few minutes (webhook bursts often name the same requester).
//!
//! A helpdesk that answers 429 is not asked again before its `Retry-After` has passed (10 s when
//! it names none): look-ups of that helpdesk fail at once as rate limited, with the time left,
//! and the message that needed them waits at least that long before it is tried again.
//!
//! With shared budgets attached ([`HelpdeskLookup::with_budgets`]), every call draws from the
//! helpdesk account's budget that the sync's readers spend too, and a 429 holds back every
//! process; a look-up that would wait more than [`LOOKUP_PATIENCE`] for the budget fails as
//! rate limited instead, and its message waits.
//!
//! [`PersonLookup::complete_profile`] then adds what a person object only references (an
//! Intercom contact's first company, cached the same way). A company that cannot be fetched
//! never holds the contact back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use super::contract::{Helpdesk, PersonApi};
use super::registry::{Registry, SharedBudgets};
use crate::config::Settings;
use crate::http as helpdesk_http;
use crate::model::{Person, Record, Source};
use crate::sync::limiter::{Grant, UNREADABLE_BACKOFF, Unreadable};

pub use super::api::{CACHE_CAPACITY, CACHE_TTL, CachePolicy, FAILURE_TTL, LookupError};
use super::api::{Cache, valid_id};

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

/// One helpdesk whose API answers look-ups.
struct Api {
    helpdesk: Arc<dyn Helpdesk>,
    people: Arc<dyn PersonApi>,
}

/// How long a helpdesk that answered 429 without `Retry-After` is left alone.
pub const PAUSE_WITHOUT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The longest a look-up waits for the shared budget before it fails as rate limited.
pub const LOOKUP_PATIENCE: Duration = Duration::from_secs(2);

/// [`PersonLookup`] over the helpdesk REST APIs configured in [`Settings`].
pub struct HelpdeskLookup {
    /// `Err` keeps the reason the client could not be built; every call then fails as transient.
    client: Result<reqwest::Client, String>,
    apis: HashMap<Source, Api>,
    cache: Cache<(Source, String), Found>,
    /// Per helpdesk, no request before this instant (its last 429's `Retry-After`).
    paused: Mutex<HashMap<Source, Instant>>,
    /// Per helpdesk, the account's budget shared with other processes.
    budgets: SharedBudgets,
    /// When the budgets (one state table) last could not be read.
    budget_unreadable: Unreadable,
}

impl HelpdeskLookup {
    /// Builds the client once, with the credentials of every built-in helpdesk whose API is
    /// configured. Zendesk look-ups share the settings' OAuth token
    /// ([`crate::config::ZendeskSettings::auth`]).
    pub fn new(settings: &Settings) -> Self {
        Self::with_cache(settings, CACHE_TTL, CACHE_CAPACITY)
    }

    /// [`HelpdeskLookup::new`] with another cache lifetime and size (0 disables the cache).
    pub fn with_cache(settings: &Settings, ttl: Duration, capacity: usize) -> Self {
        Self::from_registry(
            settings,
            &Registry::built_in(),
            CachePolicy { ttl, capacity },
        )
    }

    /// Look-ups through every helpdesk of `registry` whose API credentials are set.
    pub fn from_registry(settings: &Settings, registry: &Registry, cache: CachePolicy) -> Self {
        let apis = registry
            .listed()
            .filter_map(|helpdesk| {
                let people = helpdesk.person_api(settings, cache)?;
                let api = Api {
                    helpdesk: helpdesk.clone(),
                    people,
                };
                Some((helpdesk.source(), api))
            })
            .collect();
        let client = helpdesk_http::client().map_err(|e| {
            tracing::error!(error = %e, "helpdesk HTTP client unavailable; look-ups will fail");
            e.to_string()
        });
        HelpdeskLookup {
            client,
            apis,
            cache: Cache::new(cache.ttl, cache.capacity),
            paused: Mutex::new(HashMap::new()),
            budgets: SharedBudgets::new(),
            budget_unreadable: Unreadable::default(),
        }
    }

    /// Draws every call from these shared budgets ([`Registry::shared_budgets`]).
    pub fn with_budgets(mut self, budgets: SharedBudgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// One call's worth of `source`'s shared budget, waited for up to [`LOOKUP_PATIENCE`].
    /// Without a budget, or when it cannot be read, the call goes ahead.
    async fn spend(&self, source: &Source) -> Result<(), LookupError> {
        let Some(budget) = self.budgets.get(source) else {
            return Ok(());
        };
        if self.budget_unreadable.active() {
            return Ok(());
        }
        let mut waited = Duration::ZERO;
        loop {
            match budget.take(1).await {
                Ok(Grant::Granted(_)) => return Ok(()),
                Ok(Grant::Wait(wait)) if waited + wait <= LOOKUP_PATIENCE => {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                Ok(Grant::Wait(wait)) => {
                    return Err(LookupError::RateLimited {
                        retry_after: Some(wait),
                    });
                }
                Err(e) => {
                    self.budget_unreadable.note();
                    tracing::warn!(%source, error = %e,
                        backoff_s = UNREADABLE_BACKOFF.as_secs(),
                        "shared helpdesk budget unavailable; looking up regardless");
                    return Ok(());
                }
            }
        }
    }

    /// Holds back every process sharing `source`'s budget for `wait`.
    async fn pause_everyone(&self, source: &Source, wait: Duration) {
        self.pause(source, wait);
        if let Some(budget) = self.budgets.get(source) {
            let until = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            if let Err(e) = budget.pause(until).await {
                tracing::warn!(%source, error = %e,
                    "could not share the helpdesk's pause with other processes");
            }
        }
    }

    /// What is left of `source`'s pause, if it is paused.
    fn pause_left(&self, source: &Source) -> Option<Duration> {
        let paused = self
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = paused.get(source)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    /// Leaves `source` alone for `wait`; never shortens a running pause.
    fn pause(&self, source: &Source, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = paused.entry(source.clone()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }
}

#[async_trait]
impl PersonLookup for HelpdeskLookup {
    async fn lookup(
        &self,
        source: &Source,
        id: &str,
    ) -> Result<Option<(Person, Value)>, LookupError> {
        let Some(api) = self.apis.get(source) else {
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
        if let Some(left) = self.pause_left(source) {
            return Err(LookupError::RateLimited {
                retry_after: Some(left),
            });
        }
        let client = self
            .client
            .as_ref()
            .map_err(|e| LookupError::Transient(e.clone()))?;
        self.spend(source).await?;
        let answer = match api.people.person(client, id).await {
            Err(LookupError::RateLimited { retry_after }) => {
                let wait = retry_after.unwrap_or(PAUSE_WITHOUT_RETRY_AFTER);
                self.pause_everyone(source, wait).await;
                return Err(LookupError::RateLimited {
                    retry_after: Some(wait),
                });
            }
            answer => answer?,
        };
        let Some(profile) = answer else {
            return Ok(None);
        };
        if !profile.is_object() {
            return Err(LookupError::Transient(format!(
                "{source} answered without a person object"
            )));
        }
        let person = api.helpdesk.person_from_profile(&profile);
        self.cache.put(key, (person.clone(), profile.clone()));
        Ok(Some((person, profile)))
    }

    async fn complete_profile(&self, source: &Source, record: &mut Record) {
        let (Some(api), Ok(client)) = (self.apis.get(source), self.client.as_ref()) else {
            return;
        };
        // A paused helpdesk is not asked for companies either; the contact goes without them.
        if self.pause_left(source).is_some() || !api.people.needs_completion(record) {
            return;
        }
        if self.spend(source).await.is_err() {
            return;
        }
        api.people.complete_profile(client, record).await;
    }
}

/// A found person and the helpdesk object it came from.
type Found = (Person, Value);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;
    use chrono::Utc;
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

    /// Answers every request to `route` on `server` with `answer`.
    async fn mount(server: &MockServer, route: &str, answer: ResponseTemplate) {
        Mock::given(path(route))
            .respond_with(answer)
            .mount(server)
            .await;
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
        assert!(matches!(z("500").await, Err(LookupError::Transient(_))));
        let rejected = z("401").await.expect_err("rejected");
        assert!(matches!(rejected, LookupError::Rejected(_)) && !rejected.is_retryable());
        assert!(matches!(z("garbage").await, Err(LookupError::Transient(_))));
        assert!(matches!(z("../admin").await, Err(LookupError::Rejected(_))));
        let limited = z("429").await.expect_err("rate limited");
        assert_eq!(
            limited,
            LookupError::RateLimited {
                retry_after: Some(Duration::from_secs(42))
            }
        );
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(42)));
    }

    /// Every request the server received, as paths.
    async fn paths(server: &MockServer) -> Vec<String> {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| r.url.path().to_string())
            .collect()
    }

    #[tokio::test]
    async fn look_ups_draw_from_the_budget_the_sync_spends_and_share_its_pauses() {
        use crate::memory::MemoryStateStore;
        let server = MockServer::start().await;
        mount(
            &server,
            "/api/v2/users/1.json",
            ResponseTemplate::new(429).insert_header("Retry-After", "42"),
        )
        .await;
        mount(&server, "/contacts/4", json(INTERCOM_CONTACT)).await;
        let settings = settings(&server);
        let store = Arc::new(MemoryStateStore::new());
        // This process's look-ups, and the budgets "another process" (the sync) sees.
        let lookup = HelpdeskLookup::new(&settings)
            .with_budgets(Registry::built_in().shared_budgets(&settings, &store));
        let sync = Registry::built_in().shared_budgets(&settings, &store);
        assert_eq!(sync.len(), 3, "one budget per helpdesk with an API");

        // A 429 to a look-up holds back the sync too, for the whole Retry-After.
        lookup.lookup(&Source::Zendesk, "1").await.expect_err("429");
        let Ok(Grant::Wait(wait)) = sync[&Source::Zendesk].take(1).await else {
            panic!("the sync is held back");
        };
        assert!(wait > Duration::from_secs(40), "{wait:?}");

        // The sync paused Intercom for a minute: the look-up sends nothing and says how long.
        sync[&Source::Intercom]
            .pause(chrono::Utc::now() + chrono::Duration::seconds(60))
            .await
            .expect("pause stored");
        let held = lookup
            .lookup(&Source::Intercom, "4")
            .await
            .expect_err("held back");
        let left = held.retry_after().expect("time left");
        assert!(left > Duration::from_secs(55), "{left:?}");
        assert_eq!(paths(&server).await, ["/api/v2/users/1.json"]);

        // Gorgias: the sync spent the whole burst; the look-up waits for the next token (well
        // within its patience) and goes ahead.
        assert_eq!(sync[&Source::Gorgias].take(2).await, Ok(Grant::Granted(2)));
        mount(&server, "/api/customers/5", json(GORGIAS_CUSTOMER)).await;
        assert!(lookup.lookup(&Source::Gorgias, "5").await.is_ok());
    }

    #[tokio::test]
    async fn a_rate_limited_helpdesk_is_not_asked_again_before_retry_after() {
        let server = MockServer::start().await;
        mount(
            &server,
            "/api/v2/users/1.json",
            ResponseTemplate::new(429).insert_header("Retry-After", "42"),
        )
        .await;
        mount(&server, "/api/v2/users/2.json", json(ZENDESK_USER)).await;
        mount(&server, "/contacts/3", ResponseTemplate::new(429)).await;
        mount(&server, "/contacts/4", json(INTERCOM_CONTACT)).await;
        mount(&server, "/api/customers/5", json(GORGIAS_CUSTOMER)).await;
        let lookup = HelpdeskLookup::new(&settings(&server));

        lookup.lookup(&Source::Zendesk, "1").await.expect_err("429");
        // Another person of the same helpdesk: no request, and the time left to wait.
        let paused = lookup
            .lookup(&Source::Zendesk, "2")
            .await
            .expect_err("paused");
        let left = paused.retry_after().expect("time left");
        assert!(
            left <= Duration::from_secs(42) && left > Duration::from_secs(40),
            "{left:?}"
        );
        // A 429 without Retry-After pauses for the default.
        let limited = lookup
            .lookup(&Source::Intercom, "3")
            .await
            .expect_err("429");
        assert_eq!(limited.retry_after(), Some(PAUSE_WITHOUT_RETRY_AFTER));
        assert!(lookup.lookup(&Source::Intercom, "4").await.is_err());
        // Other helpdesks are not held back.
        assert!(lookup.lookup(&Source::Gorgias, "5").await.is_ok());
        assert_eq!(
            paths(&server).await,
            ["/api/v2/users/1.json", "/contacts/3", "/api/customers/5"]
        );
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
            profile: Some(contact.into()),
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
    async fn zendesk_organizations_are_fetched_once_and_attached() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/organizations/360012345678.json"))
            .respond_with(json(
                r#"{"organization": {"id": 360012345678, "name": "Acme Logistics",
                "tags": ["enterprise"], "organization_fields": {"plan": "gold"},
                "url": "https://acme.zendesk.com/api/v2/organizations/360012345678.json"}}"#,
            ))
            .expect(1)
            .mount(&server)
            .await;
        let lookup = HelpdeskLookup::new(&settings(&server));
        let mut user: Value = serde_json::from_str(ZENDESK_USER).expect("json");
        let user = user["user"].take();
        let mut with_org = user.clone();
        with_org["organization_id"] = serde_json::json!(360012345678u64);
        for _ in 0..2 {
            let mut record = Record {
                person: super::super::person_from_profile(&Source::Zendesk, &with_org),
                observed_at: Utc::now(),
                profile: Some(with_org.clone().into()),
                ..Default::default()
            };
            lookup.complete_profile(&Source::Zendesk, &mut record).await;
            let profile = record.profile.as_ref().expect("profile");
            assert_eq!(profile["organization"]["name"], "Acme Logistics");
            assert_eq!(
                profile["organization"]["organization_fields"]["plan"],
                "gold"
            );
            // The default rules write its name as COMPANY_NAME.
            let contact = crate::mapping::Mapping::default()
                .contact(&Source::Zendesk, &record)
                .expect("maps");
            assert_eq!(contact.attributes["COMPANY_NAME"], "Acme Logistics");
        }
        // A user without an organization asks for nothing.
        let mut record = Record {
            person: super::super::person_from_profile(&Source::Zendesk, &user),
            observed_at: Utc::now(),
            profile: Some(user.clone().into()),
            ..Default::default()
        };
        lookup.complete_profile(&Source::Zendesk, &mut record).await;
        assert!(
            record
                .profile
                .expect("profile")
                .get("organization")
                .is_none()
        );
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
}
