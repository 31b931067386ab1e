//! User tags written back into Zendesk (Brevo → helpdesk): the users with an email are found
//! with `GET {base}/api/v2/users/search.json?query=email:<email>`, then each gets the tag with
//! `PUT {base}/api/v2/users/{id}/tags.json` and `{"tags":[…]}`. `PUT` adds to the user's tags
//! (`POST` would replace them), so writing a tag twice changes nothing.
//!
//! A Brevo contact deletion that the configuration passes on deletes the end-users with the
//! email ([`ZendeskUserDeletes`], `DELETE {base}/api/v2/users/{id}`; Zendesk keeps a deleted
//! user among its deleted users until it is permanently deleted). Agents and admins are never
//! deleted: only users whose `role` is `end-user`.

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
        let Some(found) = search(&self.auth, client, email).await? else {
            return Ok(0);
        };
        let mut tagged = 0;
        for (id, _) in users(&found, email) {
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

/// Deletes the Zendesk end-users found by email, with the account's [`ZendeskAuth`].
#[derive(Debug, Clone)]
pub struct ZendeskUserDeletes {
    auth: ZendeskAuth,
}

/// What [`ZendeskUserDeletes::delete_end_users`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deleted {
    /// End-users deleted.
    pub deleted: usize,
    /// Agents and admins with the email, left alone.
    pub staff_kept: usize,
}

impl ZendeskUserDeletes {
    pub fn new(auth: ZendeskAuth) -> Self {
        ZendeskUserDeletes { auth }
    }

    /// Deletes every end-user whose email is `email` (compared without case); agents, admins
    /// and users whose role the answer does not give are kept and counted.
    pub async fn delete_end_users(
        &self,
        client: &reqwest::Client,
        email: &str,
    ) -> Result<Deleted, LookupError> {
        let Some(found) = search(&self.auth, client, email).await? else {
            return Ok(Deleted::default());
        };
        let mut done = Deleted::default();
        for (id, role) in users(&found, email) {
            if role.as_deref() != Some(END_USER) {
                done.staff_kept += 1;
                continue;
            }
            let url = format!("{}/api/v2/users/{id}.json", self.auth.base_url());
            let response = send(&self.auth, client, || {
                client.delete(&url).header("Accept", "application/json")
            })
            .await?;
            // A user deleted already answers 404: nothing left to delete.
            if written(&response)? {
                done.deleted += 1;
            }
        }
        Ok(done)
    }
}

/// The role of the users deskbridge may delete.
const END_USER: &str = "end-user";

/// Zendesk's answer to a user search by `email`; `None` on 404.
async fn search(
    auth: &ZendeskAuth,
    client: &reqwest::Client,
    email: &str,
) -> Result<Option<Value>, LookupError> {
    let query = utf8_percent_encode(&format!("email:{email}"), NON_ALPHANUMERIC).to_string();
    let url = format!("{}/api/v2/users/search.json?query={query}", auth.base_url());
    let response = send(auth, client, || {
        client.get(&url).header("Accept", "application/json")
    })
    .await?;
    read(response).await
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

/// The ids and roles of the users of a search answer (`{"users":[…]}`) whose email is `email`.
/// Ids are numbers in Zendesk's answers; one that could not be put in a URL path is left out.
fn users(found: &Value, email: &str) -> Vec<(String, Option<String>)> {
    let users = found.get("users").and_then(Value::as_array);
    users
        .into_iter()
        .flatten()
        .filter(|u| {
            u.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
        })
        .filter_map(|u| {
            let id = match u.get("id")? {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            let role = u.get("role").and_then(Value::as_str).map(str::to_string);
            valid_id(&id).then_some((id, role))
        })
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
        let ids = |found: &Value| -> Vec<String> {
            users(found, "jane@example.com")
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(ids(&found), vec!["35436"]);
        assert!(ids(&json!({"users": []})).is_empty());
        assert!(ids(&json!({})).is_empty());
        let roles = json!({"users": [
            {"id": 1, "email": "jane@example.com", "role": "end-user"},
            {"id": 2, "email": "jane@example.com", "role": "agent"},
            {"id": 3, "email": "jane@example.com"}
        ]});
        assert_eq!(
            users(&roles, "jane@example.com"),
            vec![
                ("1".to_string(), Some("end-user".to_string())),
                ("2".to_string(), Some("agent".to_string())),
                ("3".to_string(), None),
            ]
        );
    }
}
