//! Contact fields written back into Intercom (Brevo → helpdesk): the contacts with an email are
//! found with `POST {base}/contacts/search` and
//! `{"query":{"field":"email","operator":"=","value":…}}`, then each is updated with
//! `PUT {base}/contacts/{id}` (for example `{"unsubscribed_from_emails": true}`). Setting a
//! field to the value it has changes nothing, so a write can be repeated.
//!
//! A Brevo contact deletion that the configuration passes on deletes the contacts (users and
//! leads) with the email: `DELETE {base}/contacts/{id}`. Intercom keeps a deleted contact
//! recoverable for 7 days, then destroys it. Archiving (`POST /contacts/{id}/archive`) is not
//! used: an archived contact can no longer be found by email, so it could never be deleted
//! later, and the person asked to be forgotten.

use serde_json::{Value, json};

use crate::config::IntercomSettings;
use crate::helpdesk::api::{LookupError, get_json, transport_error, valid_id, written};

/// Contacts in a search answer: Intercom's default page holds 50, far more than one email has.
const PER_PAGE: u32 = 50;

/// Updates Intercom contacts found by email, with the workspace's access token.
#[derive(Debug, Clone)]
pub struct IntercomContactWrites {
    base: String,
    token: String,
    version: String,
}

impl IntercomContactWrites {
    /// The writes of `settings`' workspace, when its access token is set.
    pub fn from_settings(settings: &IntercomSettings) -> Option<Self> {
        Some(IntercomContactWrites {
            base: settings.base_url.clone(),
            token: settings.access_token.clone()?,
            version: settings.version.clone(),
        })
    }

    /// Applies `fields` (a contact update body) to every contact whose email is `email`; the
    /// number of contacts updated, 0 when Intercom has nobody with that email.
    pub async fn update_by_email(
        &self,
        client: &reqwest::Client,
        email: &str,
        fields: &Value,
    ) -> Result<usize, LookupError> {
        let mut updated = 0;
        for id in self.find(client, email, false).await? {
            let response = client
                .put(format!("{}/contacts/{id}", self.base))
                .bearer_auth(&self.token)
                .header("Intercom-Version", &self.version)
                .header("Accept", "application/json")
                .json(fields)
                .send()
                .await
                .map_err(transport_error)?;
            // A contact deleted between the search and the write has nothing left to update.
            if written(&response)? {
                updated += 1;
            }
        }
        Ok(updated)
    }

    /// Deletes every contact whose email is `email`; the number deleted, 0 when Intercom has
    /// nobody with that email (or they were deleted already).
    pub async fn delete_by_email(
        &self,
        client: &reqwest::Client,
        email: &str,
    ) -> Result<usize, LookupError> {
        let mut deleted = 0;
        // Only contacts that show the email: a deletion is never made on the search's word alone.
        for id in self.find(client, email, true).await? {
            let response = client
                .delete(format!("{}/contacts/{id}", self.base))
                .bearer_auth(&self.token)
                .header("Intercom-Version", &self.version)
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(transport_error)?;
            if written(&response)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// The ids of the contacts whose email is `email` (`POST /contacts/search`); with `exact`,
    /// only contacts whose answer shows that email.
    async fn find(
        &self,
        client: &reqwest::Client,
        email: &str,
        exact: bool,
    ) -> Result<Vec<String>, LookupError> {
        let search = json!({
            "query": {"field": "email", "operator": "=", "value": email},
            "pagination": {"per_page": PER_PAGE}
        });
        let found = get_json(
            client
                .post(format!("{}/contacts/search", self.base))
                .bearer_auth(&self.token)
                .header("Intercom-Version", &self.version)
                .json(&search),
        )
        .await?;
        Ok(found.map_or_else(Vec::new, |found| contact_ids(&found, email, exact)))
    }
}

/// The ids of the contacts of a search answer (`{"type":"list","data":[…]}`) whose email is
/// `email` (compared without case; the search already matched it, so a contact the answer
/// shows without an email counts too, unless `exact`).
fn contact_ids(found: &Value, email: &str, exact: bool) -> Vec<String> {
    let contacts = found.get("data").and_then(Value::as_array);
    contacts
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("email")
                .and_then(Value::as_str)
                .map_or(!exact, |e| e.trim().eq_ignore_ascii_case(email))
        })
        .filter_map(|c| c.get("id").and_then(Value::as_str))
        .filter(|id| valid_id(id))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_of_the_answer_with_that_email_are_updated() {
        let found = json!({"type": "list", "total_count": 4, "data": [
            {"type": "contact", "id": "6329bd9ffe4e", "email": "Jane@Example.com", "role": "user"},
            {"type": "contact", "id": "6329bd9ffe4f", "email": "jane@example.com", "role": "lead"},
            {"type": "contact", "id": "6329bd9ffe50", "email": "other@example.com"},
            {"type": "contact", "id": "a/b", "email": "jane@example.com"}
        ]});
        assert_eq!(
            contact_ids(&found, "jane@example.com", false),
            vec!["6329bd9ffe4e", "6329bd9ffe4f"]
        );
        assert!(
            contact_ids(
                &json!({"type": "list", "data": []}),
                "jane@example.com",
                false
            )
            .is_empty()
        );
        let unshown = json!({"type": "list", "data": [{"type": "contact", "id": "6329bd9ffe51"}]});
        assert_eq!(
            contact_ids(&unshown, "jane@example.com", false),
            vec!["6329bd9ffe51"]
        );
        assert!(contact_ids(&unshown, "jane@example.com", true).is_empty());
    }

    #[test]
    fn without_an_access_token_there_is_nothing_to_write_with() {
        let mut settings = IntercomSettings {
            base_url: "https://api.intercom.io".into(),
            access_token: None,
            client_secret: None,
            version: "2.11".into(),
        };
        assert!(IntercomContactWrites::from_settings(&settings).is_none());
        settings.access_token = Some("tok".into());
        assert!(IntercomContactWrites::from_settings(&settings).is_some());
    }
}
