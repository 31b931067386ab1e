//! Requests about one contact: read it (`GET /v3/contacts/{identifier}`), change its
//! attributes and leave lists (`PUT`, with `unlinkListIds`), take it off one list, delete it
//! (`DELETE /v3/contacts/{identifier}`) — what the `deletions` policy asks (see
//! [`crate::deletions`]) besides the updates of moved contacts. All are in the contacts bucket.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::{BrevoClient, Bucket, unexpected};
use crate::brevo::wire::{contact_path, list_body};
use crate::brevo::{BrevoError, ContactFacts, ContactKey};

impl BrevoClient {
    /// The contact's creation time and attributes; `None` when Brevo has no such contact.
    pub(super) async fn read_contact(
        &self,
        key: &ContactKey,
    ) -> Result<Option<ContactFacts>, BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        let reply = match self
            .execute(Method::GET, &path, None, Bucket::ContactsEvents)
            .await
        {
            Ok(reply) => reply,
            Err(BrevoError::Rejected { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = reply
            .json()
            .filter(Value::is_object)
            .ok_or_else(|| unexpected(&reply, "a contact"))?;
        Ok(Some(facts_of(&body)))
    }

    /// Sets `attributes` and takes the contact off `lists` in one call (with no lists, the
    /// plain attribute update).
    pub(super) async fn unlink(
        &self,
        key: &ContactKey,
        attributes: &BTreeMap<String, Value>,
        lists: &[i64],
    ) -> Result<(), BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        let mut body = json!({ "attributes": attributes });
        if !lists.is_empty()
            && let Some(map) = body.as_object_mut()
        {
            map.insert("unlinkListIds".into(), json!(lists));
        }
        self.execute(Method::PUT, &path, Some(&body), Bucket::ContactsEvents)
            .await?;
        Ok(())
    }

    /// Takes the contact off list `list_id`.
    pub(super) async fn leave_list(
        &self,
        list_id: i64,
        key: &ContactKey,
    ) -> Result<(), BrevoError> {
        let path = format!("/contacts/lists/{list_id}/contacts/remove");
        let body = list_body(key);
        self.execute(Method::POST, &path, Some(&body), Bucket::ContactsEvents)
            .await?;
        Ok(())
    }

    /// Deletes the contact; one Brevo no longer has is deleted already.
    pub(super) async fn delete(&self, key: &ContactKey) -> Result<(), BrevoError> {
        let path = format!("/contacts/{}", contact_path(key));
        match self
            .execute(Method::DELETE, &path, None, Bucket::ContactsEvents)
            .await
        {
            Ok(_) | Err(BrevoError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The facts of a `GET /v3/contacts/{identifier}` body: `createdAt` (ISO 8601 with an offset)
/// and `attributes`.
fn facts_of(body: &Value) -> ContactFacts {
    let created_at = body
        .get("createdAt")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc));
    let attributes = body
        .get("attributes")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.to_uppercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    ContactFacts {
        created_at,
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_body_gives_its_creation_time_and_attributes() {
        let body = json!({"email": "ann@example.com", "id": 42,
            "createdAt": "2026-12-01T11:00:00.000+01:00",
            "attributes": {"ZENDESK_ID": "77", "firstname": "Ann"}, "listIds": [3]});
        let facts = facts_of(&body);
        assert_eq!(
            facts.created_at.map(|t| t.to_rfc3339()),
            Some("2026-12-01T10:00:00+00:00".to_string())
        );
        assert_eq!(facts.attributes.get("ZENDESK_ID"), Some(&json!("77")));
        assert_eq!(facts.attributes.get("FIRSTNAME"), Some(&json!("Ann")));
        assert_eq!(facts_of(&json!({})), ContactFacts::default());
    }
}
