//! Brevo's marketing webhooks (`/v3/webhooks`): the listing `deskbridge check brevo` reads, and
//! the creation and update `deskbridge connect brevo` makes to register deskbridge's route.
//!
//! These endpoints are in Brevo's "other" rate bucket, not the contacts one.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{BrevoClient, Bucket, unexpected};
use crate::brevo::BrevoError;

/// A webhook as `GET /v3/webhooks` lists it (the fields deskbridge reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WebhookInfo {
    pub id: i64,
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// What a marketing webhook should be: where Brevo posts, which events, and the bearer token it
/// sends (`Authorization: Bearer <token>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub token: String,
}

impl WebhookSpec {
    fn body(&self, with_type: bool) -> Value {
        let mut body = json!({
            "url": self.url,
            "description": self.description,
            "events": self.events,
            "auth": { "type": "bearer", "token": self.token },
        });
        if with_type && let Some(map) = body.as_object_mut() {
            map.insert("type".into(), Value::from("marketing"));
        }
        body
    }
}

impl BrevoClient {
    /// The account's marketing webhooks (`GET /v3/webhooks?type=marketing`).
    pub async fn marketing_webhooks(&self) -> Result<Vec<WebhookInfo>, BrevoError> {
        let reply = self
            .execute(Method::GET, "/webhooks?type=marketing", None, Bucket::Other)
            .await?;
        let body = reply
            .json()
            .ok_or_else(|| unexpected(&reply, "a webhook listing"))?;
        match body.get("webhooks") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(items) => serde_json::from_value(items.clone())
                .map_err(|_| unexpected(&reply, "a webhook listing")),
        }
    }

    /// Creates a marketing webhook (`POST /v3/webhooks`); returns its id.
    pub async fn create_webhook(&self, spec: &WebhookSpec) -> Result<i64, BrevoError> {
        let reply = self
            .execute(
                Method::POST,
                "/webhooks",
                Some(&spec.body(true)),
                Bucket::Other,
            )
            .await?;
        reply
            .json()
            .and_then(|v| v.get("id").and_then(Value::as_i64))
            .ok_or_else(|| unexpected(&reply, "the created webhook's id"))
    }

    /// Sets webhook `id`'s URL, events, description and token (`PUT /v3/webhooks/{id}`).
    pub async fn update_webhook(&self, id: i64, spec: &WebhookSpec) -> Result<(), BrevoError> {
        self.execute(
            Method::PUT,
            &format!("/webhooks/{id}"),
            Some(&spec.body(false)),
            Bucket::Other,
        )
        .await?;
        Ok(())
    }
}
