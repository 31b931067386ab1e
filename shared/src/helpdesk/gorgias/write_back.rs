//! Customers written back into Gorgias (Brevo → helpdesk): the customers with an email are
//! found with `GET {base}/api/customers?email=<email>` (cursor pages, `meta.next_cursor`), then
//! each gets a line added to its `note` (the Customer object's "note associated with the
//! customer", shown to agents beside the customer's tickets) with `PUT {base}/api/customers/{id}`
//! and `{"note": …}`; or, for a Brevo contact deletion that the configuration passes on, is
//! deleted with `DELETE {base}/api/customers/{id}`.
//!
//! The note keeps what it held: the line is appended, and only when no line of the note is
//! already that text, so writing twice changes nothing. Gorgias has no partial update of the
//! note, so the note is read first (from the list answer, or `GET /api/customers/{id}` when the
//! answer leaves it out) and written whole.
//!
//! Authentication is the account's HTTP Basic (`GORGIAS_EMAIL`, `GORGIAS_API_KEY`), as the sync
//! uses.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::config::GorgiasSettings;
use crate::helpdesk::api::{LookupError, read, transport_error, valid_id, written};

/// Customers asked for per page (Gorgias's largest `limit`).
const PER_PAGE: u32 = 100;
/// Pages read at most: one email has a handful of customers, never thousands.
const MAX_PAGES: usize = 5;

/// Updates and deletes Gorgias customers found by email, with the account's credentials.
#[derive(Debug, Clone)]
pub struct GorgiasCustomerWrites {
    base: String,
    email: String,
    api_key: String,
}

/// One customer of a list answer: its id and its note, when the answer gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    id: String,
    /// `None` when the answer has no `note` key (read it before writing); `Some("")` for none.
    note: Option<String>,
}

impl GorgiasCustomerWrites {
    /// The writes of `settings`' account, when its base URL, email and API key are all set.
    pub fn from_settings(settings: &GorgiasSettings) -> Option<Self> {
        Some(GorgiasCustomerWrites {
            base: settings.base_url.clone()?,
            email: settings.email.clone()?,
            api_key: settings.api_key.clone()?,
        })
    }

    /// Adds `line` to the note of every customer whose email is `email`, unless the note has
    /// it; the number of customers whose note has the line now, 0 when Gorgias has nobody with
    /// that email.
    pub async fn add_note_line(
        &self,
        client: &reqwest::Client,
        email: &str,
        line: &str,
    ) -> Result<usize, LookupError> {
        let mut noted = 0;
        for customer in self.find(client, email).await? {
            let note = match customer.note {
                Some(note) => note,
                None => match self.note_of(client, &customer.id).await? {
                    Some(note) => note,
                    // Deleted between the search and now: nothing left to note.
                    None => continue,
                },
            };
            let Some(note) = with_line(&note, line) else {
                noted += 1;
                continue;
            };
            let response = self
                .authorized(client.put(self.customer_url(&customer.id)))
                .json(&json!({ "note": note }))
                .send()
                .await
                .map_err(transport_error)?;
            if written(&response)? {
                noted += 1;
            }
        }
        Ok(noted)
    }

    /// Deletes every customer whose email is `email`; the number deleted, 0 when Gorgias has
    /// nobody with that email (or they were deleted already).
    pub async fn delete_by_email(
        &self,
        client: &reqwest::Client,
        email: &str,
    ) -> Result<usize, LookupError> {
        let mut deleted = 0;
        for customer in self.find(client, email).await? {
            let response = self
                .authorized(client.delete(self.customer_url(&customer.id)))
                .send()
                .await
                .map_err(transport_error)?;
            if written(&response)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// The customers whose email is `email`, every page of the answer (at most [`MAX_PAGES`]).
    async fn find(&self, client: &reqwest::Client, email: &str) -> Result<Vec<Found>, LookupError> {
        let encoded = utf8_percent_encode(email, NON_ALPHANUMERIC).to_string();
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = format!(
                "{}/api/customers?email={encoded}&limit={PER_PAGE}",
                self.base
            );
            if let Some(c) = &cursor {
                url.push_str("&cursor=");
                url.push_str(&utf8_percent_encode(c, NON_ALPHANUMERIC).to_string());
            }
            let response = self
                .authorized(client.get(&url))
                .send()
                .await
                .map_err(transport_error)?;
            let Some(page) = read(response).await? else {
                break;
            };
            found.extend(customers(&page, email));
            cursor = page
                .pointer("/meta/next_cursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// The note of customer `id` (`""` when it has none); `None` when Gorgias answers 404.
    async fn note_of(
        &self,
        client: &reqwest::Client,
        id: &str,
    ) -> Result<Option<String>, LookupError> {
        let response = self
            .authorized(client.get(self.customer_url(id)))
            .send()
            .await
            .map_err(transport_error)?;
        Ok(read(response).await?.map(|customer| {
            customer
                .get("note")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        }))
    }

    fn customer_url(&self, id: &str) -> String {
        format!("{}/api/customers/{id}", self.base)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .basic_auth(&self.email, Some(&self.api_key))
            .header(reqwest::header::ACCEPT, "application/json")
    }
}

/// The customers of a list answer (`{"data":[…],"meta":{…}}`) whose email is `email` (compared
/// without case). Ids are numbers in Gorgias's answers; one that could not be put in a URL path
/// is left out.
fn customers(page: &Value, email: &str) -> Vec<Found> {
    let data = page.get("data").and_then(Value::as_array);
    data.into_iter()
        .flatten()
        .filter(|c| {
            c.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
        })
        .filter_map(|c| {
            let id = match c.get("id")? {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            let note = c
                .get("note")
                .map(|n| n.as_str().unwrap_or_default().to_string());
            valid_id(&id).then_some(Found { id, note })
        })
        .collect()
}

/// `note` with `line` appended on a line of its own; `None` when a line of `note` is `line`
/// already (nothing to write).
fn with_line(note: &str, line: &str) -> Option<String> {
    if note.lines().any(|l| l.trim() == line.trim()) {
        return None;
    }
    let kept = note.trim_end();
    Some(if kept.is_empty() {
        line.to_string()
    } else {
        format!("{kept}\n{line}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{basic_auth, body_json, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[test]
    fn a_line_is_added_once_and_the_note_keeps_what_it_held() {
        assert_eq!(with_line("", "Brevo: x").as_deref(), Some("Brevo: x"));
        assert_eq!(
            with_line("VIP, call first\n", "Brevo: x").as_deref(),
            Some("VIP, call first\nBrevo: x")
        );
        assert_eq!(with_line("VIP\n Brevo: x \nmore", "Brevo: x"), None);
    }

    #[test]
    fn only_customers_with_the_exact_email_and_a_usable_id_are_written() {
        let page = json!({"object": "list", "uri": "/api/customers", "data": [
            {"id": 3924, "email": "Jane@Example.com", "note": "VIP"},
            {"id": 3925, "email": "jane@example.com", "note": null},
            {"id": 3926, "email": "jane@example.com"},
            {"id": 3927, "email": "jane.doe@example.com", "note": ""},
            {"id": "../x", "email": "jane@example.com"},
            {"email": "jane@example.com"}
        ], "meta": {"next_cursor": null, "prev_cursor": null}});
        assert_eq!(
            customers(&page, "jane@example.com"),
            vec![
                Found {
                    id: "3924".into(),
                    note: Some("VIP".into())
                },
                Found {
                    id: "3925".into(),
                    note: Some(String::new())
                },
                Found {
                    id: "3926".into(),
                    note: None
                },
            ]
        );
    }

    fn writes(server: &MockServer) -> GorgiasCustomerWrites {
        GorgiasCustomerWrites::from_settings(&GorgiasSettings {
            base_url: Some(server.uri()),
            email: Some("agent@shop.example".into()),
            api_key: Some("gorgias-key".into()),
            webhook_token: None,
        })
        .expect("complete settings")
    }

    #[tokio::test]
    async fn every_page_is_read_and_a_note_missing_from_the_list_is_read_before_the_write() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/customers"))
            .and(query_param("email", "jane@example.com"))
            .and(basic_auth("agent@shop.example", "gorgias-key"))
            .and(wiremock::matchers::query_param_is_missing("cursor"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "uri": "/api/customers",
                "data": [{"id": 3924, "email": "jane@example.com", "note": "VIP"}],
                "meta": {"prev_cursor": null, "next_cursor": "c2Vjb25k"}
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/customers"))
            .and(query_param("cursor", "c2Vjb25k"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "uri": "/api/customers",
                "data": [{"id": 3925, "email": "jane@example.com"}],
                "meta": {"prev_cursor": "c2Vjb25k", "next_cursor": null}
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/customers/3925"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 3925, "email": "jane@example.com",
                "note": "Brevo: unsubscribed from marketing emails"
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/api/customers/3924"))
            .and(body_json(
                json!({"note": "VIP\nBrevo: unsubscribed from marketing emails"}),
            ))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 3924, "note": "…"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let noted = writes(&server)
            .add_note_line(
                &reqwest::Client::new(),
                "jane@example.com",
                "Brevo: unsubscribed from marketing emails",
            )
            .await;
        // 3925 had the line already: counted, not written again.
        assert_eq!(noted, Ok(2));
    }

    #[tokio::test]
    async fn a_rate_limit_is_worth_retrying_and_a_customer_gone_is_not_counted() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/customers"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "20"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/customers"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "uri": "/api/customers",
                "data": [{"id": 3924, "email": "jane@example.com"}],
                "meta": {"prev_cursor": null, "next_cursor": null}
            })))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/api/customers/3924"))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        let writes = writes(&server);
        let client = reqwest::Client::new();
        let limited = writes.delete_by_email(&client, "jane@example.com").await;
        assert_eq!(
            limited.as_ref().err().and_then(LookupError::retry_after),
            Some(std::time::Duration::from_secs(20))
        );
        assert_eq!(
            writes.delete_by_email(&client, "jane@example.com").await,
            Ok(0)
        );
    }

    #[test]
    fn without_every_credential_there_is_nothing_to_write_with() {
        let mut settings = GorgiasSettings {
            base_url: Some("https://shop.gorgias.com".into()),
            email: Some("agent@shop.example".into()),
            api_key: None,
            webhook_token: None,
        };
        assert!(GorgiasCustomerWrites::from_settings(&settings).is_none());
        settings.api_key = Some("k".into());
        assert!(GorgiasCustomerWrites::from_settings(&settings).is_some());
    }
}
