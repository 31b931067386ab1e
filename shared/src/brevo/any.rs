//! Picking the real client or the dry-run one from the settings, behind one type.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::client::{BrevoClient, ClientBuildError};
use super::dry_run::{DryRunBrevo, DryRunOutput, DryRunRequest};
use super::{
    AttributeInfo, BrevoApi, BrevoError, ContactFacts, ContactKey, ContactUpsert, EventRequest,
    ListInfo, UpsertOutcome,
};
use crate::config::BrevoSettings;

/// The Brevo client a process uses: the real one, or the dry-run one when no API key is set.
#[derive(Debug)]
pub enum AnyBrevo {
    Live(BrevoClient),
    DryRun(DryRunBrevo),
}

impl AnyBrevo {
    pub fn is_dry_run(&self) -> bool {
        matches!(self, AnyBrevo::DryRun(_))
    }

    /// The rate governor of the real client (and with it the process's Brevo figures);
    /// `None` in dry-run, which sends nothing.
    pub fn governor(&self) -> Option<&Arc<super::RateGovernor>> {
        match self {
            AnyBrevo::Live(c) => Some(c.governor()),
            AnyBrevo::DryRun(_) => None,
        }
    }

    /// The requests the dry-run client would have sent; `None` for the real client.
    pub fn dry_run_requests(&self) -> Option<Vec<DryRunRequest>> {
        match self {
            AnyBrevo::DryRun(d) => Some(d.requests()),
            AnyBrevo::Live(_) => None,
        }
    }
}

/// [`BrevoClient`] when `BREVO_API_KEY` is set, else a [`DryRunBrevo`] printing each request in
/// clear (the CLI and the local runner: the user's own terminal). Says once which it picked.
pub fn from_settings(settings: &BrevoSettings) -> Result<AnyBrevo, ClientBuildError> {
    from_settings_with(settings, DryRunOutput::Clear)
}

/// As [`from_settings`], choosing where dry-run lines go (Lambda: [`DryRunOutput::Masked`], since
/// its stdout is a log).
pub fn from_settings_with(
    settings: &BrevoSettings,
    output: DryRunOutput,
) -> Result<AnyBrevo, ClientBuildError> {
    match &settings.api_key {
        Some(key) => {
            tracing::info!(base_url = %settings.base_url, "brevo: sending to the API");
            let governor = std::sync::Arc::new(super::RateGovernor::new(
                settings.requests_per_second,
                super::DEFAULT_PER_HOUR,
            ));
            Ok(AnyBrevo::Live(
                BrevoClient::with_timeout(key, &settings.base_url, settings.timeout)?
                    .with_governor(governor),
            ))
        }
        None => {
            tracing::warn!("BREVO_API_KEY not set: dry-run, nothing is sent to Brevo");
            Ok(AnyBrevo::DryRun(DryRunBrevo::with_output(output)))
        }
    }
}

/// Forwards every call to the chosen client.
macro_rules! forward {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            AnyBrevo::Live($c) => $call.await,
            AnyBrevo::DryRun($c) => $call.await,
        }
    };
}

#[async_trait]
impl BrevoApi for AnyBrevo {
    async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<UpsertOutcome, BrevoError> {
        forward!(self, c => c.upsert_contact(contact))
    }
    async fn remove_from_list(&self, list_id: i64, key: &ContactKey) -> Result<(), BrevoError> {
        forward!(self, c => c.remove_from_list(list_id, key))
    }
    async fn contact_facts(&self, key: &ContactKey) -> Result<Option<ContactFacts>, BrevoError> {
        forward!(self, c => c.contact_facts(key))
    }
    async fn unlink_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError> {
        forward!(self, c => c.unlink_contact(key, attributes, lists))
    }
    async fn delete_contact(&self, key: &ContactKey) -> Result<(), BrevoError> {
        forward!(self, c => c.delete_contact(key))
    }
    async fn send_event(&self, event: &EventRequest) -> Result<(), BrevoError> {
        forward!(self, c => c.send_event(event))
    }
    async fn send_events(
        &self,
        events: &[EventRequest],
    ) -> Result<Vec<(usize, BrevoError)>, BrevoError> {
        forward!(self, c => c.send_events(events))
    }
    async fn import_contacts(
        &self,
        contacts: &[ContactUpsert],
        list_ids: &[i64],
    ) -> Result<i64, BrevoError> {
        forward!(self, c => c.import_contacts(contacts, list_ids))
    }
    async fn list_attributes(&self) -> Result<Vec<AttributeInfo>, BrevoError> {
        forward!(self, c => c.list_attributes())
    }
    async fn create_attribute(&self, name: &str, kind: &str) -> Result<(), BrevoError> {
        forward!(self, c => c.create_attribute(name, kind))
    }
    async fn account(&self) -> Result<Value, BrevoError> {
        forward!(self, c => c.account())
    }
    async fn update_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
    ) -> Result<(), BrevoError> {
        forward!(self, c => c.update_contact(key, attributes))
    }
    async fn contact_lists(&self) -> Result<Vec<ListInfo>, BrevoError> {
        forward!(self, c => c.contact_lists())
    }
    async fn contact_folders(&self) -> Result<Vec<ListInfo>, BrevoError> {
        forward!(self, c => c.contact_folders())
    }
    async fn create_folder(&self, name: &str) -> Result<i64, BrevoError> {
        forward!(self, c => c.create_folder(name))
    }
    async fn create_list(&self, name: &str, folder_id: i64) -> Result<i64, BrevoError> {
        forward!(self, c => c.create_list(name, folder_id))
    }
    async fn delete_list(&self, list_id: i64) -> Result<(), BrevoError> {
        forward!(self, c => c.delete_list(list_id))
    }
}

/// Lets one client be shared (`Arc<AnyBrevo>`, `Arc<DryRunBrevo>`) between handlers.
#[async_trait]
impl<T: BrevoApi + ?Sized> BrevoApi for Arc<T> {
    async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<UpsertOutcome, BrevoError> {
        (**self).upsert_contact(contact).await
    }
    async fn remove_from_list(&self, list_id: i64, key: &ContactKey) -> Result<(), BrevoError> {
        (**self).remove_from_list(list_id, key).await
    }
    async fn contact_facts(&self, key: &ContactKey) -> Result<Option<ContactFacts>, BrevoError> {
        (**self).contact_facts(key).await
    }
    async fn unlink_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError> {
        (**self).unlink_contact(key, attributes, lists).await
    }
    async fn delete_contact(&self, key: &ContactKey) -> Result<(), BrevoError> {
        (**self).delete_contact(key).await
    }
    async fn send_event(&self, event: &EventRequest) -> Result<(), BrevoError> {
        (**self).send_event(event).await
    }
    async fn send_events(
        &self,
        events: &[EventRequest],
    ) -> Result<Vec<(usize, BrevoError)>, BrevoError> {
        (**self).send_events(events).await
    }
    async fn import_contacts(
        &self,
        contacts: &[ContactUpsert],
        list_ids: &[i64],
    ) -> Result<i64, BrevoError> {
        (**self).import_contacts(contacts, list_ids).await
    }
    async fn list_attributes(&self) -> Result<Vec<AttributeInfo>, BrevoError> {
        (**self).list_attributes().await
    }
    async fn create_attribute(&self, name: &str, kind: &str) -> Result<(), BrevoError> {
        (**self).create_attribute(name, kind).await
    }
    async fn account(&self) -> Result<Value, BrevoError> {
        (**self).account().await
    }
    async fn update_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
    ) -> Result<(), BrevoError> {
        (**self).update_contact(key, attributes).await
    }
    async fn contact_lists(&self) -> Result<Vec<ListInfo>, BrevoError> {
        (**self).contact_lists().await
    }
    async fn contact_folders(&self) -> Result<Vec<ListInfo>, BrevoError> {
        (**self).contact_folders().await
    }
    async fn create_folder(&self, name: &str) -> Result<i64, BrevoError> {
        (**self).create_folder(name).await
    }
    async fn create_list(&self, name: &str, folder_id: i64) -> Result<i64, BrevoError> {
        (**self).create_list(name, folder_id).await
    }
    async fn delete_list(&self, list_id: i64) -> Result<(), BrevoError> {
        (**self).delete_list(list_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_api_key_means_dry_run() {
        let settings = BrevoSettings {
            api_key: None,
            base_url: "https://api.brevo.com/v3".into(),
            requests_per_second: 10,
            timeout: crate::config::DEFAULT_BREVO_TIMEOUT,
            default_lists: true,
        };
        let brevo = from_settings_with(&settings, DryRunOutput::Silent).expect("builds");
        assert!(brevo.is_dry_run());
        assert_eq!(brevo.dry_run_requests(), Some(Vec::new()));
        let live = BrevoSettings {
            api_key: Some("xkeysib-123".into()),
            ..settings
        };
        let brevo = from_settings(&live).expect("builds");
        assert!(!brevo.is_dry_run());
        assert_eq!(brevo.dry_run_requests(), None);
    }
}
