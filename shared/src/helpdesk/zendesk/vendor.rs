//! Zendesk as a [`Helpdesk`]: signed webhooks, users looked up by id, and the batch sync.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::auth::{API_TOKEN_END, SendError, ZendeskAuth, ZendeskAuthError, ZendeskCredentials};
use super::{STREAMS, organizations, sync, webhook};
use crate::config::{Settings, ZendeskSettings};
use crate::helpdesk::account;
use crate::helpdesk::api::{
    Cache, CachePolicy, FAILURE_TTL, LookupError, read, transport_error, valid_id,
};
use crate::helpdesk::check::{self, CheckApi, CheckStreams, Finding};
use crate::helpdesk::contract::{Helpdesk, PersonApi};
use crate::helpdesk::parse::{ParseError, Parsed};
use crate::helpdesk::signature::{self, AuthError};
use crate::http::StatusCode;
use crate::model::{Person, Record, Source};
use crate::sync::SourceReader;
use crate::sync::limiter::{Limiter, Rate};

/// Zendesk: the account of the `ZENDESK_*` variables, or a further account the configuration
/// file names (`zendesk:<account>`, with its own variables).
#[derive(Debug, Clone)]
pub struct Zendesk {
    source: Source,
}

impl Default for Zendesk {
    fn default() -> Self {
        Zendesk {
            source: Source::Zendesk,
        }
    }
}

impl Zendesk {
    /// The further account `source` (a `zendesk:<account>` source); `None` for another source.
    pub fn account(source: &Source) -> Option<Zendesk> {
        source.is_account_of(&Source::Zendesk).then(|| Zendesk {
            source: source.clone(),
        })
    }

    fn settings<'s>(&self, settings: &'s Settings) -> Option<&'s ZendeskSettings> {
        settings.zendesk_of(&self.source)
    }
}

impl Helpdesk for Zendesk {
    fn source(&self) -> Source {
        self.source.clone()
    }

    fn verify_webhook(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let secret = self
            .settings(settings)
            .and_then(|z| z.webhook_secret.as_deref())
            .ok_or(AuthError::NotConfigured)?;
        signature::verify_zendesk(secret, headers, body, now, settings.signature_tolerance)
    }

    fn parse_webhook(
        &self,
        _settings: &Settings,
        value: Value,
        headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        let mut parsed = webhook::parse_webhook(&value, headers, body, received_at)?;
        if let Parsed::Accepted(delivery) = &mut parsed {
            account::rekey(&self.source, &mut delivery.records);
        }
        Ok(parsed)
    }

    fn person_from_profile(&self, profile: &Value) -> Person {
        webhook::person_from_user(profile)
    }

    fn api_enabled(&self, settings: &Settings) -> bool {
        settings.api_enabled(&self.source)
    }

    fn person_api(&self, settings: &Settings, cache: CachePolicy) -> Option<Arc<dyn PersonApi>> {
        // The settings' token cache: look-ups and readers built from the same settings share
        // the OAuth token.
        let auth = self.settings(settings)?.auth()?;
        Some(Arc::new(ZendeskUsers {
            auth,
            organizations: Cache::new(cache.ttl, cache.capacity),
            prefix: self.source.variable_prefix(),
        }))
    }

    fn account_rate(&self) -> Option<Rate> {
        Some(Rate::zendesk_account())
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    fn reader(
        &self,
        settings: &Settings,
        client: &reqwest::Client,
    ) -> Option<Box<dyn SourceReader>> {
        let share = settings.sync_instances;
        let z = self.settings(settings)?;
        let name = self.source.to_string();
        let reader = sync::ZendeskReader::from_auth(client.clone(), z.auth()?)
            .with_limiters(
                Arc::new(
                    Limiter::new(format!("{name}-exports"), Rate::zendesk_exports())
                        .alone_share(share),
                ),
                Arc::new(Limiter::new(name, Rate::zendesk_account()).alone_share(share)),
            )
            .with_staff(z.sync_staff)
            .with_support_type_scope(settings.file.support_type_scope_of(&self.source));
        if self.source == Source::Zendesk {
            return Some(Box::new(reader));
        }
        Some(Box::new(account::AccountReader {
            inner: Box::new(reader),
            source: self.source.clone(),
        }))
    }

    fn missing_api_variables(&self, settings: &Settings) -> Vec<String> {
        let p = self.source.variable_prefix();
        let Some(z) = self.settings(settings) else {
            return vec![format!(
                "{p}SUBDOMAIN and {p}OAUTH_CLIENT_ID and {p}OAUTH_CLIENT_SECRET (and \
                 connectors.{} in the configuration file)",
                self.source
            )];
        };
        let mut missing = Vec::new();
        if z.base_url.is_none() {
            missing.push(format!("{p}SUBDOMAIN (or {p}BASE_URL)"));
        }
        match (&z.credentials, &z.incomplete_oauth_client) {
            (Some(_), _) => {}
            (None, Some(half)) => missing.push(half.clone()),
            (None, None) => missing.push(format!(
                "{p}OAUTH_CLIENT_ID and {p}OAUTH_CLIENT_SECRET (or {p}OAUTH_TOKEN, or the \
                 legacy {p}EMAIL and {p}API_TOKEN)"
            )),
        }
        missing
    }

    fn check_streams(&self) -> Option<CheckStreams> {
        Some(CheckStreams {
            people: "users",
            tickets: "tickets",
            csat: Some("satisfaction_ratings"),
        })
    }

    fn check_api(&self, settings: &Settings) -> Option<Arc<dyn CheckApi>> {
        let z = self.settings(settings)?;
        Some(Arc::new(ZendeskCheck {
            auth: z.auth()?,
            incomplete_oauth_client: z.incomplete_oauth_client.clone(),
            prefix: self.source.variable_prefix(),
        }))
    }
}

/// What `deskbridge check zendesk` asks beyond the streams: which authentication is in use
/// (and, for an OAuth client, whether the token grant works), and the tag listing.
struct ZendeskCheck {
    auth: ZendeskAuth,
    incomplete_oauth_client: Option<String>,
    /// The account's variable prefix (`ZENDESK_`, `ZENDESK_BRAND2_`): the findings name its
    /// variables.
    prefix: String,
}

impl ZendeskCheck {
    /// A finding of the credentials' words, which name the first account's variables, naming
    /// this account's.
    fn own(&self, finding: Finding) -> Finding {
        let own = |what: String| what.replace("ZENDESK_", &self.prefix);
        match finding {
            Finding::Note(what) => Finding::Note(own(what)),
            Finding::Pass(what) => Finding::Pass(own(what)),
            Finding::Fail(what) => Finding::Fail(own(what)),
        }
    }
}

#[async_trait]
impl CheckApi for ZendeskCheck {
    async fn authentication(&self, client: &reqwest::Client) -> Vec<Finding> {
        let credentials = self.auth.credentials();
        let advice = match credentials {
            ZendeskCredentials::OAuthClient { scope, .. } => format!(", scope `{scope}`"),
            ZendeskCredentials::OAuthToken(_) => "; it cannot be renewed, an OAuth client \
                (ZENDESK_OAUTH_CLIENT_ID, ZENDESK_OAUTH_CLIENT_SECRET) can"
                .to_string(),
            ZendeskCredentials::ApiToken { .. } => format!(
                "; Zendesk stops accepting API tokens on {API_TOKEN_END}: create an OAuth client \
                 and set ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET"
            ),
        };
        let mut found = vec![self.own(Finding::Note(format!(
            "authentication method: {} ({}){advice}",
            credentials.method(),
            credentials.variables()
        )))];
        // Named already as this account's.
        if let Some(missing) = &self.incomplete_oauth_client {
            found.push(Finding::Note(format!(
                "{missing} is not set, so the OAuth client is not used"
            )));
        }
        if !self.auth.can_renew() {
            return found;
        }
        found.push(match self.auth.grant_now(client).await {
            Ok(grant) => {
                let scope = grant
                    .as_ref()
                    .and_then(|g| g.scope.as_deref())
                    .map(|scope| format!("scope `{scope}`, "))
                    .unwrap_or_default();
                let lifetime = grant
                    .and_then(|g| g.expires_in)
                    .map_or("no expiry given".to_string(), |d| {
                        format!("valid for {}", duration_words(d))
                    });
                Finding::Pass(format!("OAuth token grant ({scope}{lifetime})"))
            }
            Err(e) => self.own(Finding::Fail(format!("OAuth token grant — {e}"))),
        });
        found
    }

    async fn count_tags(&self, client: &reqwest::Client) -> Result<usize, String> {
        // `page[size]=1`: the first tag is enough.
        let url = format!("{}/api/v2/tags.json?page%5Bsize%5D=1", self.auth.base_url());
        let response = self
            .auth
            .send(client, || {
                client.get(&url).header("Accept", "application/json")
            })
            .await
            .map_err(|e| match e {
                SendError::Auth(e) => e.to_string(),
                SendError::Http(e) => check::transport_failure(e),
            })?;
        check::tags_on_page(response).await
    }
}

/// `48 h`, `5 min`, `40 s`.
fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 7200 {
        format!("{} h", secs / 3600)
    } else if secs >= 120 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// `GET {base}/api/v2/users/{id}.json` with a [`ZendeskAuth`] (OAuth bearer token, renewed once
/// after a 401; or the legacy API token); the answer wraps the user: `{"user":{…}}`. The user's
/// organization comes from `GET {base}/api/v2/organizations/{id}.json`.
struct ZendeskUsers {
    auth: ZendeskAuth,
    /// Organizations by id; `None` for one that does not exist or could not be fetched.
    organizations: Cache<String, Option<Value>>,
    /// The account's variable prefix (`ZENDESK_`, `ZENDESK_BRAND2_`), for the 401 hint.
    prefix: String,
}

impl ZendeskUsers {
    /// `GET {base}{path}` with the account's authorization; the JSON answer, `None` on 404.
    async fn get(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> Result<Option<Value>, LookupError> {
        let url = format!("{}{path}", self.auth.base_url());
        let response = self
            .auth
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
                self.auth
                    .unauthorized_hint()
                    .replace("ZENDESK_", &self.prefix)
            )));
        }
        read(response).await
    }

    /// The organization `id`, from the cache or the API; `None` when Zendesk has none such, or
    /// it could not be fetched (logged, and not asked for again for a minute).
    async fn organization(&self, client: &reqwest::Client, id: &str) -> Option<Value> {
        if let Some(hit) = self.organizations.get(&id.to_string()) {
            return hit;
        }
        if !valid_id(id) {
            return None;
        }
        match self
            .get(client, &format!("/api/v2/organizations/{id}.json"))
            .await
        {
            Ok(found) => {
                let org = found
                    .and_then(|b| b.get("organization").cloned())
                    .filter(Value::is_object);
                self.organizations.put(id.to_string(), org.clone());
                org
            }
            Err(e) => {
                tracing::warn!(organization = %id, reason = %e,
                    "zendesk organization look-up failed; the user is written without organization attributes");
                self.organizations
                    .put_for(id.to_string(), None, FAILURE_TTL);
                None
            }
        }
    }
}

#[async_trait]
impl PersonApi for ZendeskUsers {
    async fn person(
        &self,
        client: &reqwest::Client,
        id: &str,
    ) -> Result<Option<Value>, LookupError> {
        let body = self
            .get(client, &format!("/api/v2/users/{id}.json"))
            .await?;
        Ok(body.map(|b| b.get("user").cloned().unwrap_or(Value::Null)))
    }

    fn needs_completion(&self, record: &Record) -> bool {
        record
            .profile
            .as_ref()
            .is_some_and(|p| organizations::lacks_organization(p))
    }

    async fn complete_profile(&self, client: &reqwest::Client, record: &mut Record) {
        let Some(profile) = record
            .profile
            .as_mut()
            .filter(|p| organizations::lacks_organization(p))
        else {
            return;
        };
        let Some(id) = organizations::organization_id(profile) else {
            return;
        };
        if let Some(org) = self.organization(client, &id).await {
            organizations::with_organization(profile, &org);
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
