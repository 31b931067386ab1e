//! User tags written back into Zendesk (Brevo → helpdesk): the users with an email are found
//! with `GET {base}/api/v2/users/search.json?query=email:<email>`, then each gets the tag with
//! `PUT {base}/api/v2/users/{id}/tags.json` and `{"tags":[…]}`. `PUT` adds to the user's tags
//! (`POST` would replace them), so writing a tag twice changes nothing.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::auth::{SendError, ZendeskAuth};
use crate::helpdesk::api::{LookupError, read, transport_error, valid_id, written};
use crate::http::StatusCode;

/// Adds tags to Zendesk users found by email, with the account's [`ZendeskAuth`] (OAuth bearer
/// token, renewed once after a 401; or the legacy API token).
#[derive(Debug, Clone)]
pub struct ZendeskUserTags {
    auth: ZendeskAuth,
}

impl ZendeskUserTags {
    pub fn new(auth: ZendeskAuth) -> Self {
        ZendeskUserTags { auth }
    }

    /// Adds `tag` to every user whose email is `email` (compared without case); the number of
    /// users tagged, 0 when Zendesk has nobody with that email.
    pub async fn tag_users(
        &self,
        client: &reqwest::Client,
        email: &str,
        tag: &str,
    ) -> Result<usize, LookupError> {
        let query = utf8_percent_encode(&format!("email:{email}"), NON_ALPHANUMERIC).to_string();
        let url = format!(
            "{}/api/v2/users/search.json?query={query}",
            self.auth.base_url()
        );
        let response = self
            .send(client, || {
                client.get(&url).header("Accept", "application/json")
            })
            .await?;
        let Some(found) = read(response).await? else {
            return Ok(0);
        };
        let mut tagged = 0;
        for id in user_ids(&found, email) {
            let url = format!("{}/api/v2/users/{id}/tags.json", self.auth.base_url());
            let body = json!({ "tags": [tag] });
            let response = self
                .send(client, || {
                    client
                        .put(&url)
                        .header("Accept", "application/json")
                        .json(&body)
                })
                .await?;
            // A user deleted between the search and the write has nothing left to tag.
            if written(&response)? {
                tagged += 1;
            }
        }
        Ok(tagged)
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LookupError> {
        send(&self.auth, client, build).await
    }
}

/// Sends the request `build` makes with `auth`'s authorization; a 401 that renewing the token
/// did not cure is refused with what to check.
pub(super) async fn send(
    auth: &ZendeskAuth,
    client: &reqwest::Client,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, LookupError> {
    let response = auth.send(client, build).await.map_err(|e| match e {
        SendError::Auth(e) => LookupError::from(e),
        SendError::Http(e) => transport_error(e),
    })?;
    if response.status() == StatusCode::UNAUTHORIZED {
        return Err(LookupError::Rejected(format!(
            "HTTP {}: {}",
            response.status(),
            auth.unauthorized_hint()
        )));
    }
    Ok(response)
}

/// The ids of the users of a search answer (`{"users":[…]}`) whose email is `email`. Ids are
/// numbers in Zendesk's answers; one that could not be put in a URL path is left out.
fn user_ids(found: &Value, email: &str) -> Vec<String> {
    let users = found.get("users").and_then(Value::as_array);
    users
        .into_iter()
        .flatten()
        .filter(|u| {
            u.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
        })
        .filter_map(|u| match u.get("id")? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .filter(|id| valid_id(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_users_with_the_exact_email_and_a_usable_id_are_tagged() {
        let found = json!({"users": [
            {"id": 35436, "email": "Jane@Example.com"},
            {"id": 35437, "email": "jane.doe@example.com"},
            {"id": "../x", "email": "jane@example.com"},
            {"email": "jane@example.com"},
            {"id": 35438}
        ], "count": 5});
        assert_eq!(user_ids(&found, "jane@example.com"), vec!["35436"]);
        assert!(user_ids(&json!({"users": []}), "jane@example.com").is_empty());
        assert!(user_ids(&json!({}), "jane@example.com").is_empty());
    }
}
