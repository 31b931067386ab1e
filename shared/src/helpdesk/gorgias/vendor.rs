//! Gorgias as a [`Helpdesk`]: HTTP-integration webhooks with a bearer token, customers looked
//! up by id, and the batch sync.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{STREAMS, sync, webhook};
use crate::config::{GorgiasSettings, Settings};
use crate::helpdesk::account;
use crate::helpdesk::api::{CachePolicy, LookupError, get_json};
use crate::helpdesk::check::{self, CheckApi, CheckStreams};
use crate::helpdesk::contract::{Helpdesk, PersonApi};
use crate::helpdesk::parse::{ParseError, Parsed};
use crate::helpdesk::signature::{self, AuthError};
use crate::model::{Person, Source};
use crate::sync::SourceReader;
use crate::sync::limiter::{Limiter, Rate};

/// Gorgias: the store of the `GORGIAS_*` variables, or a further store the configuration file
/// names (`gorgias:<account>`, with its own variables).
#[derive(Debug, Clone)]
pub struct Gorgias {
    source: Source,
}

impl Default for Gorgias {
    fn default() -> Self {
        Gorgias {
            source: Source::Gorgias,
        }
    }
}

impl Gorgias {
    /// The further store `source` (a `gorgias:<account>` source); `None` for another source.
    pub fn account(source: &Source) -> Option<Gorgias> {
        source.is_account_of(&Source::Gorgias).then(|| Gorgias {
            source: source.clone(),
        })
    }

    fn settings<'s>(&self, settings: &'s Settings) -> Option<&'s GorgiasSettings> {
        settings.gorgias_of(&self.source)
    }
}

impl Helpdesk for Gorgias {
    fn source(&self) -> Source {
        self.source.clone()
    }

    fn verify_webhook(
        &self,
        settings: &Settings,
        headers: &http::HeaderMap,
        _body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let token = self
            .settings(settings)
            .and_then(|g| g.webhook_token.as_deref())
            .ok_or(AuthError::NotConfigured)?;
        signature::verify_bearer(token, headers)
    }

    fn parse_webhook(
        &self,
        _settings: &Settings,
        value: Value,
        _headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        let mut parsed = webhook::parse_webhook(&value, body, received_at)?;
        if let Parsed::Accepted(delivery) = &mut parsed {
            account::rekey(&self.source, &mut delivery.records);
        }
        Ok(parsed)
    }

    fn person_from_profile(&self, profile: &Value) -> Person {
        webhook::person_from_customer(profile)
    }

    fn api_enabled(&self, settings: &Settings) -> bool {
        settings.api_enabled(&self.source)
    }

    fn person_api(&self, settings: &Settings, _cache: CachePolicy) -> Option<Arc<dyn PersonApi>> {
        Some(Arc::new(GorgiasCustomers::from_settings(
            self.settings(settings)?,
        )?))
    }

    fn account_rate(&self) -> Option<Rate> {
        Some(Rate::gorgias())
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    fn reader(
        &self,
        settings: &Settings,
        client: &reqwest::Client,
    ) -> Option<Box<dyn SourceReader>> {
        let g = self.settings(settings)?;
        let reader = sync::GorgiasReader::new(
            client.clone(),
            g.base_url.as_deref()?,
            g.email.as_deref()?,
            g.api_key.as_deref()?,
        )
        .with_ticket_tags(settings.file.stream_enabled(&self.source, "tags"))
        .with_limiter(Arc::new(
            Limiter::new(self.source.to_string(), Rate::gorgias())
                .alone_share(settings.sync_instances),
        ));
        if self.source == Source::Gorgias {
            return Some(Box::new(reader));
        }
        Some(Box::new(account::AccountReader {
            inner: Box::new(reader),
            source: self.source.clone(),
        }))
    }

    fn missing_api_variables(&self, settings: &Settings) -> Vec<String> {
        let p = self.source.variable_prefix();
        let Some(g) = self.settings(settings) else {
            return vec![format!(
                "{p}DOMAIN, {p}EMAIL and {p}API_KEY (and connectors.{} in the configuration \
                 file)",
                self.source
            )];
        };
        let mut missing = Vec::new();
        if g.base_url.is_none() {
            missing.push(format!("{p}DOMAIN (or {p}BASE_URL)"));
        }
        if g.email.is_none() {
            missing.push(format!("{p}EMAIL"));
        }
        if g.api_key.is_none() {
            missing.push(format!("{p}API_KEY"));
        }
        missing
    }

    fn check_streams(&self) -> Option<CheckStreams> {
        Some(CheckStreams {
            people: "customers",
            tickets: "tickets",
            csat: Some("satisfaction_surveys"),
        })
    }

    fn check_api(&self, settings: &Settings) -> Option<Arc<dyn CheckApi>> {
        Some(Arc::new(GorgiasCustomers::from_settings(
            self.settings(settings)?,
        )?))
    }
}

impl GorgiasCustomers {
    fn from_settings(g: &GorgiasSettings) -> Option<Self> {
        Some(GorgiasCustomers {
            base: g.base_url.as_deref()?.trim_end_matches('/').to_string(),
            email: g.email.clone()?,
            api_key: g.api_key.clone()?,
        })
    }
}

/// `GET {base}/api/tags?limit=1`.
#[async_trait]
impl CheckApi for GorgiasCustomers {
    async fn count_tags(&self, client: &reqwest::Client) -> Result<usize, String> {
        check::count_tags_with(
            client
                .get(format!("{}/api/tags?limit=1", self.base))
                .basic_auth(&self.email, Some(&self.api_key)),
        )
        .await
    }

    /// `GET {base}/api/tags?limit=100`, following `meta.next_cursor`.
    async fn tag_names(&self, client: &reqwest::Client) -> Result<Option<Vec<String>>, String> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..check::MAX_TAG_PAGES {
            let mut params = vec![("limit", "100".to_string())];
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            let url = reqwest::Url::parse_with_params(&format!("{}/api/tags", self.base), &params)
                .map_err(|e| format!("the base URL is not valid: {e}"))?;
            let request = client.get(url).basic_auth(&self.email, Some(&self.api_key));
            let (page, body) = check::names_on_page(request).await?;
            names.extend(page);
            cursor = body
                .get("meta")
                .and_then(|m| m.get("next_cursor"))
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cursor.is_none() {
                return Ok(Some(names));
            }
        }
        Err(format!("more than {} pages of tags", check::MAX_TAG_PAGES))
    }
}

/// `GET {base}/api/customers/{id}`, Basic `email:api_key`; the answer is the customer.
struct GorgiasCustomers {
    base: String,
    email: String,
    api_key: String,
}

#[async_trait]
impl PersonApi for GorgiasCustomers {
    async fn person(
        &self,
        client: &reqwest::Client,
        id: &str,
    ) -> Result<Option<Value>, LookupError> {
        get_json(
            client
                .get(format!("{}/api/customers/{id}", self.base))
                .basic_auth(&self.email, Some(&self.api_key)),
        )
        .await
    }
}
