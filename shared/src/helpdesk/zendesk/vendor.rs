//! Zendesk as a [`Helpdesk`]: signed webhooks, users looked up by id, and the batch sync.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::auth::{SendError, ZendeskAuth, ZendeskAuthError};
use super::{STREAMS, sync, webhook};
use crate::config::Settings;
use crate::helpdesk::api::{CachePolicy, LookupError, read, transport_error};
use crate::helpdesk::contract::{Helpdesk, PersonApi};
use crate::helpdesk::parse::{ParseError, Parsed};
use crate::helpdesk::signature::{self, AuthError};
use crate::http::StatusCode;
use crate::model::{Person, Source};
use crate::sync::SourceReader;
use crate::sync::limiter::Rate;

/// Zendesk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Zendesk;

impl Helpdesk for Zendesk {
    fn source(&self) -> Source {
        Source::Zendesk
    }

    fn verify_webhook(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let secret = settings
            .zendesk
            .webhook_secret
            .as_deref()
            .ok_or(AuthError::NotConfigured)?;
        signature::verify_zendesk(secret, headers, body, now, settings.signature_tolerance)
    }

    fn parse_webhook(
        &self,
        _settings: &Settings,
        value: &Value,
        headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        webhook::parse_webhook(value, headers, body, received_at)
    }

    fn person_from_profile(&self, profile: &Value) -> Person {
        webhook::person_from_user(profile)
    }

    fn api_enabled(&self, settings: &Settings) -> bool {
        settings.api_enabled(&Source::Zendesk)
    }

    fn person_api(&self, settings: &Settings, _cache: CachePolicy) -> Option<Arc<dyn PersonApi>> {
        // The settings' token cache: look-ups and readers built from the same settings share
        // the OAuth token.
        let auth = settings.zendesk.auth()?;
        Some(Arc::new(ZendeskUsers { auth }))
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
        Some(Box::new(
            sync::ZendeskReader::from_auth(client.clone(), settings.zendesk.auth()?)
                .with_rates(
                    Rate::zendesk_exports().share(share),
                    Rate::zendesk_account().share(share),
                )
                .with_staff(settings.zendesk.sync_staff),
        ))
    }
}

/// `GET {base}/api/v2/users/{id}.json` with a [`ZendeskAuth`] (OAuth bearer token, renewed once
/// after a 401; or the legacy API token); the answer wraps the user: `{"user":{…}}`.
struct ZendeskUsers {
    auth: ZendeskAuth,
}

#[async_trait]
impl PersonApi for ZendeskUsers {
    async fn person(
        &self,
        client: &reqwest::Client,
        id: &str,
    ) -> Result<Option<Value>, LookupError> {
        let url = format!("{}/api/v2/users/{id}.json", self.auth.base_url());
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
                self.auth.unauthorized_hint()
            )));
        }
        let body = read(response).await?;
        Ok(body.map(|b| b.get("user").cloned().unwrap_or(Value::Null)))
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
