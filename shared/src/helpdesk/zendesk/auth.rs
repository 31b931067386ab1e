//! Zendesk API authentication, one component for the sync reader, the person look-ups and
//! `deskbridge check`.
//!
//! Three sets of credentials, in order of preference:
//! 1. an OAuth client (`ZENDESK_OAUTH_CLIENT_ID`, `ZENDESK_OAUTH_CLIENT_SECRET`, scope
//!    `ZENDESK_OAUTH_SCOPE`, default `read`): bearer tokens from the client-credentials grant,
//!    `POST {base}/oauth/tokens` with the JSON body
//!    `{"grant_type":"client_credentials","client_id":…,"client_secret":…,"scope":…}`;
//! 2. a ready OAuth access token (`ZENDESK_OAUTH_TOKEN`), sent as it is: it cannot be renewed;
//! 3. the legacy API token (`ZENDESK_EMAIL`, `ZENDESK_API_TOKEN`), Basic
//!    `{email}/token:{api_token}`. Zendesk issues no new API tokens since 2026-10-27 and stops
//!    accepting them on 2027-04-30; using one logs a warning once per process.
//!
//! A granted token is reused until [`REFRESH_MARGIN`] before its `expires_in` runs out (halfway
//! through lifetimes shorter than twice the margin). One granted without `expires_in` is kept
//! until an API call answers 401. Every clone of a [`ZendeskAuth`], and every one built from the
//! same [`TokenCache`], shares the token: one task asks for a new token while the others wait
//! for it, a 401 renews it once for all the requests that were sent with it, and a refused grant
//! is the answer of every task that waited for it.
//!
//! Secrets and tokens are never logged; the `Debug` output of these types leaves them out.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{self as helpdesk_http, HeaderValue, StatusClass, StatusCode};

pub use super::credentials::{API_TOKEN_END, CredentialVars, DEFAULT_SCOPE, ZendeskCredentials};
use super::credentials::{bearer, sensitive};

/// Path of the token endpoint, under the account's base URL.
pub const TOKEN_PATH: &str = "/oauth/tokens";
/// How long before its expiry a granted token is replaced.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Why no token could be obtained.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ZendeskAuthError {
    /// The token endpoint refused the client credentials (400, 401, 403…): an operator must act.
    #[error(
        "Zendesk refused the OAuth token request (HTTP {status}{}): check \
         ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET (a confidential OAuth client \
         of this account, Admin Center > Apps and integrations > APIs > OAuth clients) and \
         ZENDESK_OAUTH_SCOPE",
        reason.as_deref().map(|r| format!(", {r}")).unwrap_or_default()
    )]
    Refused {
        status: StatusCode,
        /// Zendesk's `error` and `error_description`, when it gave them.
        reason: Option<String>,
    },
    /// 404, or an answer that holds no token: the base URL is not a Zendesk account.
    #[error("the Zendesk OAuth token endpoint {0}: check ZENDESK_SUBDOMAIN or ZENDESK_BASE_URL")]
    WrongEndpoint(String),
    /// 5xx, timeout, connection failure: try again later.
    #[error("the Zendesk OAuth token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// 429 from the token endpoint.
    #[error("the Zendesk OAuth token endpoint rate limit was reached; retry after {0:?}")]
    RateLimited(Option<Duration>),
}

impl ZendeskAuthError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ZendeskAuthError::Unavailable(_) | ZendeskAuthError::RateLimited(_)
        )
    }
}

/// A request could not be sent: no token, or the HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Auth(#[from] ZendeskAuthError),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// The `Authorization` header of a request, and which token it holds.
#[derive(Clone)]
pub struct Authorization {
    value: HeaderValue,
    /// The grant it came from (0 for credentials that are not granted).
    serial: u64,
}

impl Authorization {
    /// `request` with this `Authorization` header.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(reqwest::header::AUTHORIZATION, self.value.clone())
    }

    /// `Basic …` or `Bearer …`, without the credentials.
    pub fn scheme(&self) -> &'static str {
        if self.value.as_bytes().starts_with(b"Basic ") {
            "Basic"
        } else {
            "Bearer"
        }
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authorization({} <redacted>)", self.scheme())
    }
}

/// What a successful grant said, for `deskbridge check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The scope Zendesk granted (its `scope`), when it said.
    pub scope: Option<String>,
    /// The token's lifetime (`expires_in`); `None`: valid until revoked.
    pub expires_in: Option<Duration>,
}

/// A granted token.
struct Token {
    value: HeaderValue,
    serial: u64,
    /// When to ask for a new one; `None`: only after a 401.
    renew_at: Option<Instant>,
}

impl Token {
    fn fresh(&self, now: Instant) -> bool {
        self.renew_at.is_none_or(|at| now < at)
    }

    fn authorization(&self) -> Authorization {
        Authorization {
            value: self.value.clone(),
            serial: self.serial,
        }
    }
}

#[derive(Default)]
struct TokenState {
    token: Option<Token>,
    /// The last grant, when it failed: its number and error.
    failure: Option<(u64, ZendeskAuthError)>,
}

#[derive(Default)]
struct TokenShared {
    state: tokio::sync::Mutex<TokenState>,
    /// Grants finished so far (read before waiting for `state`, to tell whether a grant
    /// finished while this task waited).
    grants: AtomicU64,
}

/// Where the granted token of one Zendesk account is kept; clones share it. [`Settings`]
/// holds one, so that every client a process builds from its settings uses the same token.
///
/// [`Settings`]: crate::config::Settings
#[derive(Clone, Default)]
pub struct TokenCache(Arc<TokenShared>);

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCache")
    }
}

/// The clock token lifetimes are measured with.
type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Whether the legacy API-token warning was logged in this process.
static API_TOKEN_WARNED: AtomicBool = AtomicBool::new(false);

/// Logs the API-token deprecation warning, unless `warned` says it was already.
fn warn_api_token_once(warned: &AtomicBool) {
    if !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "Zendesk API-token authentication (ZENDESK_EMAIL, ZENDESK_API_TOKEN) is deprecated: \
             Zendesk stops accepting API tokens on {API_TOKEN_END}. Create an OAuth client \
             (Admin Center > Apps and integrations > APIs > OAuth clients) and set \
             ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET"
        );
    }
}

/// Authenticates requests to one Zendesk account. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct ZendeskAuth {
    base: String,
    credentials: ZendeskCredentials,
    tokens: TokenCache,
    clock: Clock,
}

impl fmt::Debug for ZendeskAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZendeskAuth")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The client-credentials grant request.
#[derive(Serialize)]
struct GrantRequest<'a> {
    grant_type: &'static str,
    client_id: &'a str,
    client_secret: &'a str,
    scope: &'a str,
}

/// The token endpoint's answer (`token_type` is `bearer`; refresh tokens are not used).
#[derive(Deserialize)]
struct GrantResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// Zendesk's OAuth error answer.
#[derive(Deserialize)]
struct GrantErrorResponse {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    error_description: Option<Value>,
}

impl ZendeskAuth {
    /// Authentication for the account at `base_url` (`https://acme.zendesk.com`), with a token
    /// cache of its own.
    pub fn new(base_url: &str, credentials: ZendeskCredentials) -> Self {
        Self::with_tokens(base_url, credentials, TokenCache::default())
    }

    /// [`ZendeskAuth::new`] keeping the token in `tokens` (shared with other users of it).
    pub fn with_tokens(
        base_url: &str,
        credentials: ZendeskCredentials,
        tokens: TokenCache,
    ) -> Self {
        ZendeskAuth {
            base: base_url.trim_end_matches('/').to_string(),
            credentials,
            tokens,
            clock: Arc::new(Instant::now),
        }
    }

    /// Measures token lifetimes with `clock` instead of [`Instant::now`] (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The account's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn credentials(&self) -> &ZendeskCredentials {
        &self.credentials
    }

    /// Whether a refused token can be replaced (an OAuth client).
    pub fn can_renew(&self) -> bool {
        matches!(self.credentials, ZendeskCredentials::OAuthClient { .. })
    }

    /// See [`ZendeskCredentials::unauthorized_hint`].
    pub fn unauthorized_hint(&self) -> String {
        self.credentials.unauthorized_hint()
    }

    /// The `Authorization` header for the next request: the cached token while it is fresh,
    /// else a new one (one task asks, the others wait for its answer).
    pub async fn authorization(
        &self,
        client: &reqwest::Client,
    ) -> Result<Authorization, ZendeskAuthError> {
        let (client_id, client_secret, scope) = match &self.credentials {
            ZendeskCredentials::OAuthClient {
                client_id,
                client_secret,
                scope,
            } => (client_id, client_secret, scope),
            ZendeskCredentials::OAuthToken(token) => return Ok(self.fixed(bearer(token))),
            ZendeskCredentials::ApiToken { email, api_token } => {
                warn_api_token_once(&API_TOKEN_WARNED);
                let basic = BASE64.encode(format!("{email}/token:{api_token}"));
                return Ok(self.fixed(sensitive(&format!("Basic {basic}"))));
            }
        };
        let shared = &self.tokens.0;
        let seen = shared.grants.load(Ordering::Acquire);
        let mut state = shared.state.lock().await;
        if let Some(token) = state.token.as_ref().filter(|t| t.fresh((self.clock)())) {
            return Ok(token.authorization());
        }
        // A grant that finished while this task waited, and failed: its answer is ours too.
        if let Some((n, err)) = &state.failure
            && *n > seen
        {
            return Err(err.clone());
        }
        self.grant_into(&mut state, client, client_id, client_secret, scope)
            .await
            .map(|(token, _)| token)
    }

    /// After an API call sent with `used` answered 401: a new `Authorization` to retry it with,
    /// or `None` when the credentials cannot be renewed (a ready token, an API token). When
    /// another task already replaced that token, its replacement is returned without a grant.
    pub async fn renew(
        &self,
        client: &reqwest::Client,
        used: &Authorization,
    ) -> Result<Option<Authorization>, ZendeskAuthError> {
        let ZendeskCredentials::OAuthClient {
            client_id,
            client_secret,
            scope,
        } = &self.credentials
        else {
            return Ok(None);
        };
        let shared = &self.tokens.0;
        let seen = shared.grants.load(Ordering::Acquire);
        let mut state = shared.state.lock().await;
        if let Some(token) = state
            .token
            .as_ref()
            .filter(|t| t.serial != used.serial && t.fresh((self.clock)()))
        {
            return Ok(Some(token.authorization()));
        }
        if let Some((n, err)) = &state.failure
            && *n > seen
        {
            return Err(err.clone());
        }
        // The refused token is not used again, whatever the grant answers.
        state.token = None;
        tracing::info!("zendesk refused the OAuth token; asking for a new one");
        self.grant_into(&mut state, client, client_id, client_secret, scope)
            .await
            .map(|(token, _)| Some(token))
    }

    /// Asks for a new token now and keeps it (`deskbridge check`). `None` for credentials that
    /// are not granted.
    pub async fn grant_now(
        &self,
        client: &reqwest::Client,
    ) -> Result<Option<Grant>, ZendeskAuthError> {
        let ZendeskCredentials::OAuthClient {
            client_id,
            client_secret,
            scope,
        } = &self.credentials
        else {
            return Ok(None);
        };
        let mut state = self.tokens.0.state.lock().await;
        self.grant_into(&mut state, client, client_id, client_secret, scope)
            .await
            .map(|(_, grant)| Some(grant))
    }

    /// Sends the request `build` makes with the `Authorization` header; after a 401, renews the
    /// token once (when the credentials allow) and sends the request again. The last response
    /// is returned whatever its status, a 401 included.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let used = self.authorization(client).await?;
        let response = used.apply(build()).send().await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        match self.renew(client, &used).await? {
            Some(renewed) => Ok(renewed.apply(build()).send().await?),
            None => Ok(response),
        }
    }

    fn fixed(&self, value: Option<HeaderValue>) -> Authorization {
        // Settings check that a ready token fits in a header; a token built by hand that does
        // not is sent as an empty header and refused by Zendesk like any bad token.
        Authorization {
            value: value.unwrap_or_else(|| HeaderValue::from_static("")),
            serial: 0,
        }
    }

    /// Runs the client-credentials grant and stores its outcome in `state` (held locked, so
    /// that concurrent callers wait for this answer instead of asking again).
    async fn grant_into(
        &self,
        state: &mut TokenState,
        client: &reqwest::Client,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> Result<(Authorization, Grant), ZendeskAuthError> {
        let outcome = self.grant(client, client_id, client_secret, scope).await;
        let shared = &self.tokens.0;
        let serial = shared.grants.fetch_add(1, Ordering::AcqRel) + 1;
        match outcome {
            Ok((value, grant)) => {
                let renew_at = grant.expires_in.map(|life| {
                    let margin = REFRESH_MARGIN.min(life / 2);
                    (self.clock)() + life.saturating_sub(margin)
                });
                let token = Token {
                    value,
                    serial,
                    renew_at,
                };
                let authorization = token.authorization();
                state.token = Some(token);
                state.failure = None;
                tracing::debug!(
                    expires_in_s = grant.expires_in.map(|d| d.as_secs()),
                    "zendesk OAuth token granted"
                );
                Ok((authorization, grant))
            }
            Err(err) => {
                tracing::warn!(reason = %err, "zendesk OAuth token request failed");
                state.failure = Some((serial, err.clone()));
                Err(err)
            }
        }
    }

    /// `POST {base}/oauth/tokens`: the token as a header value, and what Zendesk said of it.
    async fn grant(
        &self,
        client: &reqwest::Client,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> Result<(HeaderValue, Grant), ZendeskAuthError> {
        let response = client
            .post(format!("{}{TOKEN_PATH}", self.base))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&GrantRequest {
                grant_type: "client_credentials",
                client_id,
                client_secret,
                scope,
            })
            .send()
            .await
            .map_err(|e| ZendeskAuthError::Unavailable(transport_failure(e)))?;
        let status = response.status();
        match helpdesk_http::classify(status, response.headers(), Utc::now()) {
            StatusClass::Success => {}
            StatusClass::RateLimited(wait) => return Err(ZendeskAuthError::RateLimited(wait)),
            StatusClass::Transient => {
                return Err(ZendeskAuthError::Unavailable(format!("HTTP {status}")));
            }
            StatusClass::NotFound => {
                return Err(ZendeskAuthError::WrongEndpoint(format!(
                    "answered HTTP {status}"
                )));
            }
            StatusClass::Rejected => {
                let body = response.bytes().await.unwrap_or_default();
                return Err(ZendeskAuthError::Refused {
                    status,
                    reason: grant_error(&body),
                });
            }
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| ZendeskAuthError::Unavailable(transport_failure(e)))?;
        let answer: GrantResponse = serde_json::from_slice(&body).map_err(|_| {
            ZendeskAuthError::WrongEndpoint("answered with something other than JSON".into())
        })?;
        let value = answer
            .access_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .and_then(bearer)
            .ok_or_else(|| {
                ZendeskAuthError::WrongEndpoint("answered without a usable access_token".into())
            })?;
        Ok((
            value,
            Grant {
                scope: answer.scope,
                expires_in: answer.expires_in.as_ref().and_then(lifetime),
            },
        ))
    }
}

/// `expires_in` as a duration (a number of seconds, also given as text); at least a second.
fn lifetime(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .map(|d| d.max(Duration::from_secs(1)))
}

/// Zendesk's `error` and `error_description`, shortened, from a refused grant's body.
fn grant_error(body: &[u8]) -> Option<String> {
    let parsed: GrantErrorResponse = serde_json::from_slice(body).ok()?;
    let text = |v: Option<Value>| match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        _ => None,
    };
    let reason = match (text(parsed.error), text(parsed.error_description)) {
        (Some(code), Some(description)) => format!("{code}: {description}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => return None,
    };
    Some(reason.chars().take(200).collect())
}

/// A transport failure in a few words (the URL is left out).
fn transport_failure(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        err.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vars::Vars;
    use std::sync::atomic::AtomicUsize;
    use tokio::task::JoinSet;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    fn client() -> reqwest::Client {
        helpdesk_http::client().expect("client")
    }

    fn oauth_client(scope: &str) -> ZendeskCredentials {
        ZendeskCredentials::OAuthClient {
            client_id: "deskbridge".into(),
            client_secret: "zd-client-secret".into(),
            scope: scope.into(),
        }
    }

    /// The token endpoint as Zendesk documents it: `tok-1`, `tok-2`… with `expires_in` when
    /// given, after `delay`.
    fn token_endpoint(
        expires_in: Option<u64>,
        delay: Duration,
    ) -> (Arc<AtomicUsize>, impl Fn(&Request) -> ResponseTemplate) {
        let grants = Arc::new(AtomicUsize::new(0));
        let counter = grants.clone();
        let respond = move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = serde_json::json!({
                "access_token": format!("tok-{n}"), "token_type": "bearer", "scope": "read"
            });
            if let Some(secs) = expires_in {
                body["expires_in"] = secs.into();
            }
            ResponseTemplate::new(200)
                .set_body_json(body)
                .set_delay(delay)
        };
        (grants, respond)
    }

    async fn mount_tokens(
        server: &MockServer,
        expires_in: Option<u64>,
        delay: Duration,
    ) -> Arc<AtomicUsize> {
        let (grants, respond) = token_endpoint(expires_in, delay);
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .and(header("content-type", "application/json"))
            .and(body_json(serde_json::json!({
                "grant_type": "client_credentials", "client_id": "deskbridge",
                "client_secret": "zd-client-secret", "scope": "read"
            })))
            .respond_with(respond)
            .mount(server)
            .await;
        grants
    }

    fn header_of(a: &Authorization) -> &str {
        a.value.to_str().expect("ascii header")
    }

    /// A clock that tests move forward by hand.
    fn manual_clock() -> (Arc<AtomicU64>, impl Fn() -> Instant + Send + Sync + 'static) {
        let start = Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let read = offset.clone();
        (offset, move || {
            start + Duration::from_secs(read.load(Ordering::SeqCst))
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_grant_serves_many_concurrent_requests() {
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, Some(7200), Duration::from_millis(200)).await;
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read"));
        let mut tasks = JoinSet::new();
        for _ in 0..20 {
            let auth = auth.clone();
            tasks.spawn(async move { auth.authorization(&client()).await });
        }
        while let Some(done) = tasks.join_next().await {
            let authorization = done.expect("task").expect("token");
            assert_eq!(header_of(&authorization), "Bearer tok-1");
            assert_eq!(authorization.scheme(), "Bearer");
        }
        assert_eq!(grants.load(Ordering::SeqCst), 1);
        // Later requests reuse it too.
        auth.authorization(&client()).await.expect("token");
        assert_eq!(grants.load(Ordering::SeqCst), 1);
        // Nothing secret in debug output.
        let debug = format!("{auth:?} {:?}", auth.authorization(&client()).await);
        assert!(
            !debug.contains("zd-client-secret") && !debug.contains("tok-1"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn a_token_is_replaced_shortly_before_it_expires() {
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, Some(300), Duration::ZERO).await;
        let (now, clock) = manual_clock();
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read")).with_clock(clock);
        let token = |a: Authorization| header_of(&a).to_string();
        assert_eq!(
            token(auth.authorization(&client()).await.expect("t")),
            "Bearer tok-1"
        );
        now.store(200, Ordering::SeqCst);
        assert_eq!(
            token(auth.authorization(&client()).await.expect("t")),
            "Bearer tok-1"
        );
        // 60 s before the 300 s are up, a new one is asked for.
        now.store(241, Ordering::SeqCst);
        assert_eq!(
            token(auth.authorization(&client()).await.expect("t")),
            "Bearer tok-2"
        );
        now.store(400, Ordering::SeqCst);
        assert_eq!(
            token(auth.authorization(&client()).await.expect("t")),
            "Bearer tok-2"
        );
        assert_eq!(grants.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lifetimes_are_renewed_halfway_and_tokens_without_one_are_kept() {
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, Some(2), Duration::ZERO).await;
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read"));
        let first = auth.authorization(&client()).await.expect("token");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = auth.authorization(&client()).await.expect("token");
        assert_eq!(
            (header_of(&first), header_of(&second)),
            ("Bearer tok-1", "Bearer tok-2")
        );
        assert_eq!(grants.load(Ordering::SeqCst), 2);

        // Without `expires_in`: kept however long, until a 401.
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, None, Duration::ZERO).await;
        let (now, clock) = manual_clock();
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read")).with_clock(clock);
        auth.authorization(&client()).await.expect("token");
        now.store(30 * 86_400, Ordering::SeqCst);
        let still = auth.authorization(&client()).await.expect("token");
        assert_eq!(header_of(&still), "Bearer tok-1");
        assert_eq!(grants.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_401_renews_the_token_once_and_retries() {
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, None, Duration::ZERO).await;
        // The first token has been revoked; the second works.
        Mock::given(method("GET"))
            .and(path("/api/v2/users/1.json"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({"error": "Couldn't authenticate you"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/1.json"))
            .and(header("authorization", "Bearer tok-2"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"user": {"id": 1}})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read"));
        let c = client();
        let url = format!("{}/api/v2/users/1.json", server.uri());
        for _ in 0..2 {
            let response = auth.send(&c, || c.get(&url)).await.expect("sent");
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(grants.load(Ordering::SeqCst), 2);

        // Refused whatever the token: one renewal, one retry, and the 401 is handed back.
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, None, Duration::ZERO).await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/1.json"))
            .respond_with(ResponseTemplate::new(401))
            .expect(2)
            .mount(&server)
            .await;
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read"));
        let url = format!("{}/api/v2/users/1.json", server.uri());
        let response = auth.send(&c, || c.get(&url)).await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(grants.load(Ordering::SeqCst), 2);
        assert!(auth.unauthorized_hint().contains("ZENDESK_OAUTH_CLIENT_ID"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn requests_refused_together_share_one_renewal() {
        let server = MockServer::start().await;
        let grants = mount_tokens(&server, None, Duration::from_millis(100)).await;
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read"));
        let old = auth.authorization(&client()).await.expect("token");
        let mut tasks = JoinSet::new();
        for _ in 0..20 {
            let (auth, old) = (auth.clone(), old.clone());
            tasks.spawn(async move { auth.renew(&client(), &old).await });
        }
        while let Some(done) = tasks.join_next().await {
            let renewed = done.expect("task").expect("granted").expect("renewable");
            assert_eq!(header_of(&renewed), "Bearer tok-2");
        }
        assert_eq!(grants.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_refused_grant_names_the_client_variables() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({
                        "error": "invalid_client",
                        "error_description": "Client authentication failed due to unknown client, \
                            no client authentication included, or unsupported authentication method."
                    }))
                    .set_delay(Duration::from_millis(200)),
            )
            .expect(2)
            .mount(&server)
            .await;
        let auth = ZendeskAuth::new(&server.uri(), oauth_client("read"));
        // Callers waiting for the same grant share its answer: one request for all of them.
        let mut tasks = JoinSet::new();
        for _ in 0..10 {
            let auth = auth.clone();
            tasks.spawn(async move { auth.authorization(&client()).await });
        }
        while let Some(done) = tasks.join_next().await {
            let err = done.expect("task").expect_err("refused");
            assert!(matches!(err, ZendeskAuthError::Refused { .. }) && !err.is_retryable());
            let msg = err.to_string();
            assert!(
                msg.contains("ZENDESK_OAUTH_CLIENT_ID")
                    && msg.contains("ZENDESK_OAUTH_CLIENT_SECRET")
                    && msg.contains("HTTP 401")
                    && msg.contains("invalid_client"),
                "{msg}"
            );
            assert!(!msg.contains("zd-client-secret"), "{msg}");
        }
        // A later call asks again (the second of the two expected requests).
        auth.authorization(&client()).await.expect_err("refused");

        // 400 (an unknown scope, a malformed request) is refused the same way.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_scope",
                "error_description": "The requested scope is invalid, unknown, or malformed."
            })))
            .mount(&server)
            .await;
        let err = ZendeskAuth::new(&server.uri(), oauth_client("read"))
            .authorization(&client())
            .await
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("HTTP 400")
                && msg.contains("invalid_scope")
                && msg.contains("ZENDESK_OAUTH_CLIENT_SECRET"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn other_grant_failures_are_classified() {
        let server = MockServer::start().await;
        let grant = |status: u16| {
            let uri = server.uri();
            async move {
                let base = format!("{uri}/{status}");
                ZendeskAuth::new(&base, oauth_client("read"))
                    .authorization(&client())
                    .await
                    .expect_err("fails")
            }
        };
        for (status, response) in [
            (503, ResponseTemplate::new(503)),
            (
                429,
                ResponseTemplate::new(429).insert_header("Retry-After", "30"),
            ),
            (404, ResponseTemplate::new(404)),
            (
                200,
                ResponseTemplate::new(200).set_body_string("<html>Help Center</html>"),
            ),
        ] {
            Mock::given(method("POST"))
                .and(path(format!("/{status}{TOKEN_PATH}")))
                .respond_with(response)
                .mount(&server)
                .await;
        }
        assert!(matches!(grant(503).await, ZendeskAuthError::Unavailable(_)));
        assert_eq!(
            grant(429).await,
            ZendeskAuthError::RateLimited(Some(Duration::from_secs(30)))
        );
        for status in [404, 200] {
            let err = grant(status).await;
            assert!(matches!(err, ZendeskAuthError::WrongEndpoint(_)), "{err}");
            assert!(err.to_string().contains("ZENDESK_SUBDOMAIN"), "{err}");
        }
        // Nobody listening.
        let err = ZendeskAuth::new("http://127.0.0.1:9", oauth_client("read"))
            .authorization(&client())
            .await
            .expect_err("fails");
        assert!(err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn a_ready_token_is_sent_as_it_is_and_never_renewed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/1.json"))
            .and(header("authorization", "Bearer ready-token"))
            .respond_with(ResponseTemplate::new(401))
            .expect(1)
            .mount(&server)
            .await;
        let auth = ZendeskAuth::new(
            &server.uri(),
            ZendeskCredentials::OAuthToken("ready-token".into()),
        );
        assert!(!auth.can_renew());
        let c = client();
        let url = format!("{}/api/v2/users/1.json", server.uri());
        let response = auth.send(&c, || c.get(&url)).await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let hint = auth.unauthorized_hint();
        assert!(
            hint.contains("ZENDESK_OAUTH_TOKEN") && hint.contains("cannot be renewed"),
            "{hint}"
        );
        assert_eq!(auth.grant_now(&c).await, Ok(None));
    }

    #[tokio::test]
    async fn the_legacy_api_token_still_works() {
        let server = MockServer::start().await;
        // base64("ops@example.com/token:zd-token")
        Mock::given(method("GET"))
            .and(path("/api/v2/users/1.json"))
            .and(header(
                "authorization",
                "Basic b3BzQGV4YW1wbGUuY29tL3Rva2VuOnpkLXRva2Vu",
            ))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let auth = ZendeskAuth::new(
            &server.uri(),
            ZendeskCredentials::ApiToken {
                email: "ops@example.com".into(),
                api_token: "zd-token".into(),
            },
        );
        let c = client();
        let url = format!("{}/api/v2/users/1.json", server.uri());
        let response = auth.send(&c, || c.get(&url)).await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(API_TOKEN_WARNED.load(Ordering::Relaxed), "warned");
        assert!(auth.unauthorized_hint().contains(API_TOKEN_END));
    }

    #[test]
    fn the_api_token_warning_is_logged_once_and_names_the_cut_off() {
        let (dispatch, logs) = crate::telemetry::capture_json("warn");
        let warned = AtomicBool::new(false);
        tracing::dispatcher::with_default(&dispatch, || {
            warn_api_token_once(&warned);
            warn_api_token_once(&warned);
        });
        let lines = logs.json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["level"], "WARN");
        let message = lines[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("2027-04-30") && message.contains("ZENDESK_OAUTH_CLIENT_ID"),
            "{message}"
        );
    }

    #[test]
    fn credentials_are_read_in_order_of_preference() {
        let read = |pairs: &[(&str, &str)]| {
            ZendeskCredentials::from_vars(&Vars::from_pairs(pairs.iter().copied()), "ZENDESK_")
        };
        let client = [
            ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
            ("ZENDESK_OAUTH_CLIENT_SECRET", "zd-client-secret"),
        ];
        let ready = [("ZENDESK_OAUTH_TOKEN", "ready-token")];
        let legacy = [
            ("ZENDESK_EMAIL", "ops@example.com"),
            ("ZENDESK_API_TOKEN", "zd-token"),
        ];
        let all: Vec<_> = [&client[..], &ready, &legacy].concat();
        let found = read(&all).expect("valid");
        assert_eq!(found.credentials, Some(oauth_client("read")));
        assert_eq!(found.incomplete_client, None);
        let found = read(&[&ready[..], &legacy].concat()).expect("valid");
        assert_eq!(
            found.credentials,
            Some(ZendeskCredentials::OAuthToken("ready-token".into()))
        );
        let found = read(&legacy).expect("valid");
        assert_eq!(
            found.credentials.map(|c| c.method()),
            Some("legacy API token")
        );
        assert_eq!(read(&[]).expect("valid"), CredentialVars::default());

        // Half a client pair is named, and the next set is used.
        let found = read(&[&client[..1], &legacy].concat()).expect("valid");
        assert_eq!(
            found.incomplete_client.as_deref(),
            Some("ZENDESK_OAUTH_CLIENT_SECRET")
        );
        assert_eq!(
            found.credentials.map(|c| c.method()),
            Some("legacy API token")
        );
        let found = read(&client[1..]).expect("valid");
        assert_eq!(
            found.incomplete_client.as_deref(),
            Some("ZENDESK_OAUTH_CLIENT_ID")
        );
        assert_eq!(found.credentials, None);

        // The scope: whitespace normalised, validated.
        let scoped = read(
            &[
                &client[..],
                &[("ZENDESK_OAUTH_SCOPE", " tickets:read   users:read ")],
            ]
            .concat(),
        )
        .expect("valid");
        assert_eq!(
            scoped.credentials,
            Some(oauth_client("tickets:read users:read"))
        );
        let err = read(&[&client[..], &[("ZENDESK_OAUTH_SCOPE", "read,write")]].concat())
            .expect_err("invalid");
        assert!(err.to_string().contains("ZENDESK_OAUTH_SCOPE"), "{err}");
        let err = read(&[("ZENDESK_OAUTH_TOKEN", "bad\u{7f}token")]).expect_err("invalid");
        assert!(err.to_string().contains("ZENDESK_OAUTH_TOKEN"), "{err}");

        // A further account's credentials are read under its own prefix only.
        let account = |pairs: &[(&str, &str)]| {
            ZendeskCredentials::from_vars(
                &Vars::from_pairs(pairs.iter().copied()),
                "ZENDESK_BRAND2_",
            )
        };
        assert_eq!(account(&all).expect("valid"), CredentialVars::default());
        let found = account(&[
            ("ZENDESK_BRAND2_OAUTH_CLIENT_ID", "deskbridge"),
            ("ZENDESK_BRAND2_OAUTH_CLIENT_SECRET", "zd-client-secret"),
        ])
        .expect("valid");
        assert_eq!(found.credentials, Some(oauth_client("read")));
        let found = account(&[("ZENDESK_BRAND2_OAUTH_CLIENT_ID", "x")]).expect("valid");
        assert_eq!(
            found.incomplete_client.as_deref(),
            Some("ZENDESK_BRAND2_OAUTH_CLIENT_SECRET")
        );
        let err =
            account(&[("ZENDESK_BRAND2_OAUTH_TOKEN", "bad\u{7f}token")]).expect_err("invalid");
        assert!(
            err.to_string().contains("ZENDESK_BRAND2_OAUTH_TOKEN"),
            "{err}"
        );

        // Debug output holds no secret.
        let debug = format!("{:?}", read(&all).expect("valid"));
        assert!(
            debug.contains("deskbridge") && !debug.contains("zd-client-secret"),
            "{debug}"
        );
        for credentials in [
            ZendeskCredentials::OAuthToken("ready-token".into()),
            ZendeskCredentials::ApiToken {
                email: "ops@example.com".into(),
                api_token: "zd-token".into(),
            },
        ] {
            let debug = format!("{credentials:?}");
            assert!(
                !debug.contains("ready-token") && !debug.contains("zd-token"),
                "{debug}"
            );
        }
    }

    #[test]
    fn lifetimes_are_read_leniently() {
        assert_eq!(
            lifetime(&serde_json::json!(172800)),
            Some(Duration::from_secs(172_800))
        );
        assert_eq!(
            lifetime(&serde_json::json!("300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            lifetime(&serde_json::json!(0)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(lifetime(&serde_json::json!(-5)), None);
        assert_eq!(lifetime(&serde_json::json!(null)), None);
        assert_eq!(grant_error(b"<html>"), None);
        assert_eq!(
            grant_error(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
    }
}
