//! A [`BrevoApi`] that sends nothing: used when `BREVO_API_KEY` is not set.
//!
//! Each request it would have sent is printed as one line,
//! `brevo dry-run: POST /v3/contacts {json}`, logged (identifiers masked), remembered for
//! [`DryRunBrevo::requests`], and answered with success.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::redact::redact;
use super::wire::{contact_path, import_body, list_body};
use super::{
    AttributeInfo, BrevoApi, BrevoError, ContactFacts, ContactKey, ContactUpsert, EventRequest,
    ListInfo, UpsertOutcome,
};
use crate::identity::mask;

/// Path prefix shown in dry-run lines (the `/v3` of Brevo's base URL).
const PREFIX: &str = "/v3";
/// The id the dry run gives a folder or list it "creates" (nothing exists to number it).
const DRY_RUN_ID: i64 = 0;

/// Where the one-line-per-request output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunOutput {
    /// stdout, with emails and phones in clear: the user's own terminal (CLI, local runner).
    Clear,
    /// stdout, identifiers masked: where stdout is a log (a Lambda without an API key).
    Masked,
    /// Nothing printed (tests); requests are still recorded and logged.
    Silent,
}

/// One request the dry-run client would have sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunRequest {
    pub method: &'static str,
    /// Full path, e.g. `/v3/contacts`.
    pub path: String,
    pub body: Option<Value>,
}

impl DryRunRequest {
    /// `brevo dry-run: POST /v3/contacts {json}`.
    pub fn line(&self) -> String {
        match &self.body {
            Some(body) => format!("brevo dry-run: {} {} {body}", self.method, self.path),
            None => format!("brevo dry-run: {} {}", self.method, self.path),
        }
    }
}

/// The dry-run Brevo client.
#[derive(Debug)]
pub struct DryRunBrevo {
    output: DryRunOutput,
    requests: Mutex<Vec<DryRunRequest>>,
    attributes: Mutex<Vec<AttributeInfo>>,
    next_process_id: AtomicI64,
}

impl Default for DryRunBrevo {
    fn default() -> Self {
        DryRunBrevo::new()
    }
}

impl DryRunBrevo {
    /// Prints each request in clear to stdout.
    pub fn new() -> Self {
        DryRunBrevo::with_output(DryRunOutput::Clear)
    }

    pub fn with_output(output: DryRunOutput) -> Self {
        DryRunBrevo {
            output,
            requests: Mutex::new(Vec::new()),
            attributes: Mutex::new(Vec::new()),
            next_process_id: AtomicI64::new(1),
        }
    }

    /// Attributes `list_attributes` reports as existing (besides those created through this client).
    pub fn with_attributes(self, attributes: impl IntoIterator<Item = AttributeInfo>) -> Self {
        lock(&self.attributes).extend(attributes);
        self
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<DryRunRequest> {
        lock(&self.requests).clone()
    }

    /// Returns and forgets the requests so far.
    pub fn take_requests(&self) -> Vec<DryRunRequest> {
        std::mem::take(&mut *lock(&self.requests))
    }

    /// Records, prints and logs one request. `subject` is what the request is about, already
    /// masked, for the log line.
    fn record(&self, method: &'static str, path: &str, body: Option<Value>, subject: &str) {
        let request = DryRunRequest {
            method,
            path: format!("{PREFIX}{path}"),
            body,
        };
        match self.output {
            DryRunOutput::Clear => println!("{}", request.line()),
            DryRunOutput::Masked => println!("{}", redact(&request.line())),
            DryRunOutput::Silent => {}
        }
        tracing::info!(method, path = %request.path, subject, "brevo dry-run: request not sent");
        lock(&self.requests).push(request);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn masked_key(key: Option<ContactKey>) -> String {
    match key {
        Some(ContactKey::Email(e)) => format!("email {}", mask(&e)),
        Some(ContactKey::ExtId(x)) => format!("ext_id {x}"),
        None => "sms-only contact".into(),
    }
}

#[async_trait]
impl BrevoApi for DryRunBrevo {
    async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<UpsertOutcome, BrevoError> {
        self.record(
            "POST",
            "/contacts",
            Some(json!(contact)),
            &masked_key(contact.key()),
        );
        Ok(UpsertOutcome::Created)
    }

    async fn remove_from_list(&self, list_id: i64, key: &ContactKey) -> Result<(), BrevoError> {
        let path = format!("/contacts/lists/{list_id}/contacts/remove");
        self.record(
            "POST",
            &path,
            Some(list_body(key)),
            &masked_key(Some(key.clone())),
        );
        Ok(())
    }

    /// A dry run knows no contact: a deletion under `delete` unlinks.
    async fn contact_facts(&self, key: &ContactKey) -> Result<Option<ContactFacts>, BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        self.record("GET", &path, None, &masked_key(Some(key.clone())));
        Ok(None)
    }

    async fn unlink_contact(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        let body = json!({ "attributes": attributes, "unlinkListIds": lists });
        self.record("PUT", &path, Some(body), &masked_key(Some(key.clone())));
        Ok(())
    }

    async fn delete_contact(&self, key: &ContactKey) -> Result<(), BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        self.record("DELETE", &path, None, &masked_key(Some(key.clone())));
        Ok(())
    }

    async fn send_event(&self, event: &EventRequest) -> Result<(), BrevoError> {
        let subject = format!("event {}", event.event_name);
        self.record("POST", "/events", Some(json!(event)), &subject);
        Ok(())
    }

    async fn send_events(
        &self,
        events: &[EventRequest],
    ) -> Result<Vec<(usize, BrevoError)>, BrevoError> {
        let subject = format!("{} events", events.len());
        self.record(
            "POST",
            "/events/batch",
            Some(json!({ "events": events })),
            &subject,
        );
        Ok(Vec::new())
    }

    async fn import_contacts(
        &self,
        contacts: &[ContactUpsert],
        list_ids: &[i64],
    ) -> Result<i64, BrevoError> {
        let subject = format!("{} contacts", contacts.len());
        self.record(
            "POST",
            "/contacts/import",
            Some(import_body(contacts, list_ids)),
            &subject,
        );
        Ok(self.next_process_id.fetch_add(1, Ordering::Relaxed))
    }

    async fn list_attributes(&self) -> Result<Vec<AttributeInfo>, BrevoError> {
        self.record("GET", "/contacts/attributes", None, "attributes");
        Ok(lock(&self.attributes).clone())
    }

    async fn create_attribute(&self, name: &str, kind: &str) -> Result<(), BrevoError> {
        let path = format!("/contacts/attributes/normal/{name}");
        self.record("POST", &path, Some(json!({ "type": kind })), name);
        let mut attributes = lock(&self.attributes);
        if !attributes.iter().any(|a| a.name == name) {
            attributes.push(AttributeInfo {
                name: name.into(),
                category: "normal".into(),
                kind: Some(kind.into()),
            });
        }
        Ok(())
    }

    async fn update_contact(
        &self,
        key: &ContactKey,
        attributes: &std::collections::BTreeMap<String, Value>,
    ) -> Result<(), BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        self.record(
            "PUT",
            &path,
            Some(json!({ "attributes": attributes })),
            &masked_key(Some(key.clone())),
        );
        Ok(())
    }

    async fn contact_lists(&self) -> Result<Vec<ListInfo>, BrevoError> {
        self.record("GET", "/contacts/lists", None, "lists");
        Ok(Vec::new())
    }

    async fn contact_folders(&self) -> Result<Vec<ListInfo>, BrevoError> {
        self.record("GET", "/contacts/folders", None, "folders");
        Ok(Vec::new())
    }

    async fn create_folder(&self, name: &str) -> Result<i64, BrevoError> {
        self.record(
            "POST",
            "/contacts/folders",
            Some(json!({ "name": name })),
            name,
        );
        Ok(DRY_RUN_ID)
    }

    async fn create_list(&self, name: &str, folder_id: i64) -> Result<i64, BrevoError> {
        let body = json!({ "name": name, "folderId": folder_id });
        self.record("POST", "/contacts/lists", Some(body), name);
        Ok(DRY_RUN_ID)
    }

    async fn delete_list(&self, list_id: i64) -> Result<(), BrevoError> {
        self.record(
            "DELETE",
            &format!("/contacts/lists/{list_id}"),
            None,
            "list",
        );
        Ok(())
    }

    async fn account(&self) -> Result<Value, BrevoError> {
        self.record("GET", "/account", None, "account");
        Ok(
            json!({ "email": "dry-run", "companyName": "deskbridge dry-run (BREVO_API_KEY not set)", "plan": [] }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_recorded_and_answered_with_success() {
        let brevo = DryRunBrevo::with_output(DryRunOutput::Silent);
        let mut c = ContactUpsert::new(&ContactKey::Email("jane@example.com".into()));
        c.attributes.insert("SMS".into(), json!("+14155552671"));
        assert_eq!(brevo.upsert_contact(&c).await, Ok(UpsertOutcome::Created));
        brevo
            .create_attribute("ZENDESK_ID", "text")
            .await
            .expect("dry-run");
        let attrs = brevo.list_attributes().await.expect("dry-run");
        assert_eq!(
            attrs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["ZENDESK_ID"]
        );
        assert_eq!(brevo.import_contacts(&[c.clone()], &[3]).await, Ok(1));

        let requests = brevo.requests();
        assert_eq!(requests.len(), 4);
        assert_eq!(
            requests[0].line(),
            r#"brevo dry-run: POST /v3/contacts {"attributes":{"SMS":"+14155552671"},"email":"jane@example.com","updateEnabled":true}"#
        );
        assert_eq!(
            requests[2].line(),
            "brevo dry-run: GET /v3/contacts/attributes"
        );
        assert_eq!(
            requests[3].body.as_ref().and_then(|b| b.get("listIds")),
            Some(&json!([3]))
        );
        assert!(!redact(&requests[0].line()).contains("jane@example.com"));
    }
}
