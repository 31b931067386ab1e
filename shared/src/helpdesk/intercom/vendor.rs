//! Intercom as a [`Helpdesk`]: signed webhooks, contacts looked up by id (with their first
//! company), and the batch sync.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{STREAMS, sync, webhook};
use crate::config::{IntercomSettings, Settings};
use crate::helpdesk::account;
use crate::helpdesk::api::{Cache, CachePolicy, FAILURE_TTL, LookupError, get_json, valid_id};
use crate::helpdesk::check::{self, CheckApi, CheckStreams};
use crate::helpdesk::contract::{Helpdesk, PersonApi};
use crate::helpdesk::parse::{ParseError, Parsed};
use crate::helpdesk::signature::{self, AuthError};
use crate::model::{Person, Record, Source};
use crate::sync::SourceReader;
use crate::sync::limiter::{Limiter, Rate};

/// Intercom: the workspace of the `INTERCOM_*` variables, or a further workspace the
/// configuration file names (`intercom:<account>`, with its own variables).
#[derive(Debug, Clone)]
pub struct Intercom {
    source: Source,
}

impl Default for Intercom {
    fn default() -> Self {
        Intercom {
            source: Source::Intercom,
        }
    }
}

impl Intercom {
    /// The further workspace `source` (an `intercom:<account>` source); `None` for another
    /// source.
    pub fn account(source: &Source) -> Option<Intercom> {
        source.is_account_of(&Source::Intercom).then(|| Intercom {
            source: source.clone(),
        })
    }

    fn settings<'s>(&self, settings: &'s Settings) -> Option<&'s IntercomSettings> {
        settings.intercom_of(&self.source)
    }

    /// A parsed delivery with its events put under this workspace's name.
    fn rekeyed(&self, parsed: Result<Parsed, ParseError>) -> Result<Parsed, ParseError> {
        let mut parsed = parsed?;
        if let Parsed::Accepted(delivery) = &mut parsed {
            account::rekey(&self.source, &mut delivery.records);
        }
        Ok(parsed)
    }
}

impl Helpdesk for Intercom {
    fn source(&self) -> Source {
        self.source.clone()
    }

    fn verify_webhook(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let secret = self
            .settings(settings)
            .and_then(|i| i.client_secret.as_deref())
            .ok_or(AuthError::NotConfigured)?;
        signature::verify_intercom(secret, headers, body)
    }

    fn parse_webhook(
        &self,
        _settings: &Settings,
        value: Value,
        _headers: &http::HeaderMap,
        _body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        self.rekeyed(webhook::parse_webhook(value, received_at))
    }

    fn parse_webhook_body(
        &self,
        _settings: &Settings,
        _headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        self.rekeyed(webhook::parse_webhook_body(body, received_at))
    }

    fn person_from_profile(&self, profile: &Value) -> Person {
        webhook::person_from_contact(profile)
    }

    fn api_enabled(&self, settings: &Settings) -> bool {
        settings.api_enabled(&self.source)
    }

    fn person_api(&self, settings: &Settings, cache: CachePolicy) -> Option<Arc<dyn PersonApi>> {
        Some(Arc::new(IntercomContacts::from_settings(
            self.settings(settings)?,
            cache,
        )?))
    }

    fn account_rate(&self) -> Option<Rate> {
        Some(Rate::intercom())
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    fn reader(
        &self,
        settings: &Settings,
        client: &reqwest::Client,
    ) -> Option<Box<dyn SourceReader>> {
        let i = self.settings(settings)?;
        let reader = sync::IntercomReader::new(
            client.clone(),
            &i.base_url,
            i.access_token.as_deref()?,
            &i.version,
        )
        .with_contact_tags(settings.file.stream_enabled(&self.source, "tags"))
        .with_data_events(settings.file.stream_enabled(&self.source, "events"))
        .with_limiter(Arc::new(
            Limiter::new(self.source.to_string(), Rate::intercom())
                .alone_share(settings.sync_instances),
        ));
        if self.source == Source::Intercom {
            return Some(Box::new(reader));
        }
        Some(Box::new(account::AccountReader {
            inner: Box::new(reader),
            source: self.source.clone(),
        }))
    }

    fn missing_api_variables(&self, settings: &Settings) -> Vec<String> {
        let token = settings
            .file
            .sources
            .get(&self.source.to_string())
            .and_then(|s| s.token_var.clone())
            .unwrap_or_else(|| format!("{}ACCESS_TOKEN", self.source.variable_prefix()));
        match self.settings(settings) {
            Some(i) if i.access_token.is_some() => Vec::new(),
            Some(_) => vec![token],
            None => vec![format!(
                "{token} (and connectors.{} in the configuration file)",
                self.source
            )],
        }
    }

    fn check_streams(&self) -> Option<CheckStreams> {
        // Intercom has no ratings endpoint: `conversation_rating` comes on each conversation.
        Some(CheckStreams {
            people: "contacts",
            tickets: "conversations",
            csat: None,
        })
    }

    fn check_api(&self, settings: &Settings) -> Option<Arc<dyn CheckApi>> {
        Some(Arc::new(IntercomContacts::from_settings(
            self.settings(settings)?,
            CachePolicy::default(),
        )?))
    }
}

impl IntercomContacts {
    fn from_settings(i: &IntercomSettings, cache: CachePolicy) -> Option<Self> {
        Some(IntercomContacts {
            base: i.base_url.trim_end_matches('/').to_string(),
            token: i.access_token.clone()?,
            version: i.version.clone(),
            companies: Cache::new(cache.ttl, cache.capacity),
        })
    }
}

/// `GET {base}/tags`: Intercom lists every tag in one answer (`data`).
#[async_trait]
impl CheckApi for IntercomContacts {
    async fn count_tags(&self, client: &reqwest::Client) -> Result<usize, String> {
        check::count_tags_with(
            client
                .get(format!("{}/tags", self.base))
                .bearer_auth(&self.token)
                .header("Intercom-Version", &self.version),
        )
        .await
    }

    /// `GET {base}/tags`: every tag of the workspace in one answer.
    async fn tag_names(&self, client: &reqwest::Client) -> Result<Option<Vec<String>>, String> {
        let request = client
            .get(format!("{}/tags", self.base))
            .bearer_auth(&self.token)
            .header("Intercom-Version", &self.version);
        check::names_on_page(request)
            .await
            .map(|(names, _)| Some(names))
    }
}

/// `GET {base}/contacts/{id}` (the answer is the contact) and `GET {base}/companies/{id}`,
/// Bearer token and `Intercom-Version`.
struct IntercomContacts {
    base: String,
    token: String,
    version: String,
    /// Companies by id; `None` for one that does not exist or could not be fetched.
    companies: Cache<String, Option<Value>>,
}

impl IntercomContacts {
    async fn get(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> Result<Option<Value>, LookupError> {
        get_json(
            client
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("Intercom-Version", &self.version),
        )
        .await
    }

    /// The company `id`, from the cache or the API; `None` when Intercom has no such company,
    /// or it could not be fetched (logged, and not asked for again for a minute).
    async fn company(&self, client: &reqwest::Client, id: &str) -> Option<Value> {
        if let Some(hit) = self.companies.get(&id.to_string()) {
            return hit;
        }
        if !valid_id(id) {
            return None;
        }
        match self.get(client, &format!("/companies/{id}")).await {
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

#[async_trait]
impl PersonApi for IntercomContacts {
    async fn person(
        &self,
        client: &reqwest::Client,
        id: &str,
    ) -> Result<Option<Value>, LookupError> {
        self.get(client, &format!("/contacts/{id}")).await
    }

    fn needs_completion(&self, record: &Record) -> bool {
        record
            .profile
            .as_ref()
            .is_some_and(|p| webhook::lacks_company(p))
    }

    async fn complete_profile(&self, client: &reqwest::Client, record: &mut Record) {
        let Some(profile) = record
            .profile
            .as_mut()
            .filter(|p| webhook::lacks_company(p))
        else {
            return;
        };
        let Some(id) = webhook::first_company_id(profile) else {
            return;
        };
        if let Some(company) = self.company(client, &id).await {
            webhook::with_company(profile, &company);
        }
    }
}
