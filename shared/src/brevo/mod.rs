//! Brevo v3: request types, the [`BrevoApi`] port, the HTTP client and the dry-run client.

mod any;
mod client;
#[cfg(test)]
mod client_tests;
pub mod default_list;
mod dry_run;
mod governor;
mod redact;
mod wire;

pub use any::{AnyBrevo, from_settings, from_settings_with};
pub use client::{
    BrevoClient, CONNECT_TIMEOUT, ClientBuildError, REQUEST_TIMEOUT, RetryPolicy, WebhookInfo,
    WebhookSpec,
};
pub use dry_run::{DryRunBrevo, DryRunOutput, DryRunRequest};
pub use governor::{
    BrevoUsage, DEFAULT_PER_HOUR, DEFAULT_PER_SECOND, RateGovernor, UsageFigures,
    WouldExceedDeadline,
};
pub use redact::redact;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a contact is addressed in Brevo: by email when the helpdesk has one, otherwise by the
/// `ext_id` `<source>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKey {
    Email(String),
    ExtId(String),
}

/// Body of `POST /v3/contacts` (create or update; `updateEnabled` is always true).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContactUpsert {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_id: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
    #[serde(rename = "listIds", skip_serializing_if = "Vec::is_empty")]
    pub list_ids: Vec<i64>,
    #[serde(rename = "emailBlacklisted", skip_serializing_if = "Option::is_none")]
    pub email_blacklisted: Option<bool>,
    #[serde(rename = "updateEnabled")]
    pub update_enabled: bool,
}

impl ContactUpsert {
    /// A new upsert addressed by `key`, with `updateEnabled: true`.
    pub fn new(key: &ContactKey) -> Self {
        let mut c = ContactUpsert {
            update_enabled: true,
            ..Default::default()
        };
        match key {
            ContactKey::Email(e) => c.email = Some(e.clone()),
            ContactKey::ExtId(x) => c.ext_id = Some(x.clone()),
        }
        c
    }

    /// The key this upsert addresses.
    pub fn key(&self) -> Option<ContactKey> {
        match (&self.email, &self.ext_id) {
            (Some(e), _) => Some(ContactKey::Email(e.clone())),
            (None, Some(x)) => Some(ContactKey::ExtId(x.clone())),
            _ => None,
        }
    }
}

/// Identifiers of a Brevo event (`POST /v3/events`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventIdentifiers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_id: Option<String>,
}

impl From<&ContactKey> for EventIdentifiers {
    fn from(key: &ContactKey) -> Self {
        match key {
            ContactKey::Email(e) => EventIdentifiers {
                email_id: Some(e.clone()),
                ..Default::default()
            },
            ContactKey::ExtId(x) => EventIdentifiers {
                ext_id: Some(x.clone()),
                ..Default::default()
            },
        }
    }
}

/// Body of `POST /v3/events`, and one item of `POST /v3/events/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRequest {
    pub event_name: String,
    pub identifiers: EventIdentifiers,
    /// ISO-8601 time of the happening.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_date: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty", default)]
    pub event_properties: Map<String, Value>,
}

/// A Brevo contact attribute as listed by `GET /v3/contacts/attributes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeInfo {
    pub name: String,
    #[serde(default)]
    pub category: String,
    /// `text`, `date`, `float`, `boolean`, … (absent for some categories).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A Brevo contact list (or folder) as listed by `GET /v3/contacts/lists` (`…/folders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    pub id: i64,
    #[serde(default)]
    pub name: String,
}

/// What went wrong talking to Brevo, classified by what the caller should do.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum BrevoError {
    /// 429: wait at least this long, then try again.
    #[error("Brevo rate limit reached; retry after {0:?}")]
    RateLimited(Duration),
    /// 5xx, timeout, connection failure: try again later.
    #[error("Brevo unavailable: {0}")]
    Transient(String),
    /// The SMS value is already held by another contact (retry without SMS, never force-merge).
    #[error("SMS number already belongs to another Brevo contact")]
    DuplicateSms,
    /// A 4xx that will not succeed on retry (invalid email, unknown list, bad key, …).
    #[error("Brevo rejected the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
}

impl BrevoError {
    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BrevoError::RateLimited(_) | BrevoError::Transient(_))
    }

    /// Whether Brevo refused the API key (401: wrong, revoked, or an IP not authorised). No
    /// request succeeds until someone fixes the key, so work waits instead of failing for good.
    pub fn is_auth(&self) -> bool {
        matches!(self, BrevoError::Rejected { status: 401, .. })
    }

    /// Whether the same request can succeed later: retryable, or waiting for a fixed key.
    pub fn is_worth_retrying(&self) -> bool {
        self.is_retryable() || self.is_auth()
    }
}

/// Outcome of a contact upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Created,
    Updated,
}

/// What Brevo says of a contact (`GET /v3/contacts/{identifier}`): what the `deletions` policy
/// reads before it deletes one (see [`crate::deletions`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactFacts {
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attribute names upper-cased.
    pub attributes: BTreeMap<String, Value>,
}

/// Port for everything deskbridge asks of Brevo.
#[async_trait]
pub trait BrevoApi: Send + Sync {
    /// `POST /v3/contacts` with `updateEnabled: true`.
    async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<UpsertOutcome, BrevoError>;
    /// `PUT /v3/contacts/{identifier}?identifierType=email_id|ext_id` with `{"attributes": …}`:
    /// changes an existing contact, its EMAIL among them (404 when there is none; 400
    /// `duplicate_parameter` when the new email belongs to another contact).
    async fn update_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
    ) -> Result<(), BrevoError>;
    /// `POST /v3/contacts/lists/{list_id}/contacts/remove` for one contact.
    async fn remove_from_list(&self, list_id: i64, key: &ContactKey) -> Result<(), BrevoError>;
    /// `GET /v3/contacts/{identifier}`: the contact's creation time and attributes; `None`
    /// when there is no such contact.
    async fn contact_facts(&self, key: &ContactKey) -> Result<Option<ContactFacts>, BrevoError>;
    /// `PUT /v3/contacts/{identifier}` with `{"attributes": …, "unlinkListIds": …}`: sets
    /// attributes (`""` empties one) and takes the contact off lists in one call.
    async fn unlink_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError>;
    /// `DELETE /v3/contacts/{identifier}`; a contact Brevo no longer has is no error.
    async fn delete_contact(&self, key: &ContactKey) -> Result<(), BrevoError>;
    /// `POST /v3/events`.
    async fn send_event(&self, event: &EventRequest) -> Result<(), BrevoError>;
    /// `POST /v3/events/batch`. Returns, per input index, the error of each event Brevo refused.
    async fn send_events(
        &self,
        events: &[EventRequest],
    ) -> Result<Vec<(usize, BrevoError)>, BrevoError>;
    /// `POST /v3/contacts/import` (jsonBody). Returns Brevo's process id.
    async fn import_contacts(
        &self,
        contacts: &[ContactUpsert],
        list_ids: &[i64],
    ) -> Result<i64, BrevoError>;
    /// `GET /v3/contacts/attributes`.
    async fn list_attributes(&self) -> Result<Vec<AttributeInfo>, BrevoError>;
    /// `POST /v3/contacts/attributes/normal/{name}` with `{"type": kind}`.
    async fn create_attribute(&self, name: &str, kind: &str) -> Result<(), BrevoError>;
    /// `GET /v3/account` — used by `deskbridge check brevo`.
    async fn account(&self) -> Result<Value, BrevoError>;
    /// Every contact list of the account: `GET /v3/contacts/lists`, page by page (at most
    /// 10,000 lists) — used by `deskbridge plan`.
    async fn contact_lists(&self) -> Result<Vec<ListInfo>, BrevoError>;
    /// Every contact folder of the account: `GET /v3/contacts/folders`, page by page.
    async fn contact_folders(&self) -> Result<Vec<ListInfo>, BrevoError>;
    /// `POST /v3/contacts/folders` with `{"name"}`; returns the new folder's id.
    async fn create_folder(&self, name: &str) -> Result<i64, BrevoError>;
    /// `POST /v3/contacts/lists` with `{"name", "folderId"}`; returns the new list's id.
    async fn create_list(&self, name: &str, folder_id: i64) -> Result<i64, BrevoError>;
    /// `DELETE /v3/contacts/lists/{id}` (its contacts stay in the account).
    async fn delete_list(&self, list_id: i64) -> Result<(), BrevoError>;
}
