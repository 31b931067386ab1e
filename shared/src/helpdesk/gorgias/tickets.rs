//! Tickets opened in Gorgias for a Brevo automation, once: `POST {base}/api/tickets` with the
//! contact as the customer (`customer: {"email": …}`), the ticket's key as its `external_id`
//! ("not used by Gorgias, feel free to set it as you wish"), the tags, and one incoming message
//! from the contact (`from_agent: false`, `via: "api"`, `sender: {"email": …}`) on the
//! configured channel: `api` (the default; Gorgias's guide to creating tickets lists the sender,
//! `channel: api`, `via: api` and `from_agent: false` as what such a ticket needs, and auto-reply
//! rules do not fire on it) or `email` (the message then names the contact as `source.from`;
//! Gorgias's incoming-email examples also give the receiving support address as `source.to`,
//! which deskbridge does not know, so `email` is the less certain of the two and `api` stays the
//! default).
//!
//! Before the create, the account's tickets with that `external_id` are listed
//! (`GET {base}/api/tickets?external_id=<key>`, a documented filter of the ticket list); a
//! ticket found there is the one opened before, and nothing is created. Trashed tickets are
//! listed too (the filter's default), so a ticket an agent trashed is not opened again.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::config::GorgiasSettings;
use crate::helpdesk::api::{LookupError, get_json, read, transport_error};

/// Tickets listed by one look-up: the key matches one ticket.
const LIMIT: u32 = 5;

/// A ticket to open.
#[derive(Debug, Clone, Copy)]
pub struct NewGorgiasTicket<'a> {
    pub external_id: &'a str,
    pub email: &'a str,
    pub subject: &'a str,
    /// The text of the first message.
    pub body: &'a str,
    pub tags: &'a [String],
}

/// The ticket with the `external_id`: opened now, or found from before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedTicket {
    /// Gorgias's ticket id.
    pub id: String,
    /// False when a ticket with the `external_id` was there already.
    pub created: bool,
}

/// Opens Gorgias tickets with the account's API key (Basic `email:api_key`).
#[derive(Debug, Clone)]
pub struct GorgiasTickets {
    base: String,
    email: String,
    api_key: String,
    /// `api` or `email`.
    channel: String,
}

impl GorgiasTickets {
    /// The tickets of `settings`' account on `channel`, when its address and key are set.
    pub fn from_settings(settings: &GorgiasSettings, channel: &str) -> Option<Self> {
        Some(GorgiasTickets {
            base: settings.base_url.clone()?,
            email: settings.email.clone()?,
            api_key: settings.api_key.clone()?,
            channel: channel.to_string(),
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(&self.email, Some(&self.api_key))
    }

    /// The ticket whose `external_id` is `ticket.external_id`, opened unless it exists.
    pub async fn open_once(
        &self,
        client: &reqwest::Client,
        ticket: &NewGorgiasTicket<'_>,
    ) -> Result<OpenedTicket, LookupError> {
        if let Some(id) = self.find(client, ticket.external_id).await? {
            return Ok(OpenedTicket { id, created: false });
        }
        let body = create_body(&self.channel, ticket);
        let response = self
            .authorized(client.post(format!("{}/api/tickets", self.base)))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let Some(created) = read(response).await? else {
            return Err(LookupError::Rejected(format!(
                "HTTP {status}: no ticket endpoint at this Gorgias address"
            )));
        };
        let id = ticket_id(&created).ok_or_else(|| {
            LookupError::Transient("Gorgias's answer to the ticket create has no id".into())
        })?;
        Ok(OpenedTicket { id, created: true })
    }

    /// The id of a ticket whose `external_id` is `external_id`, if Gorgias has one.
    async fn find(
        &self,
        client: &reqwest::Client,
        external_id: &str,
    ) -> Result<Option<String>, LookupError> {
        let key = utf8_percent_encode(external_id, NON_ALPHANUMERIC);
        let url = format!("{}/api/tickets?external_id={key}&limit={LIMIT}", self.base);
        let Some(found) = get_json(self.authorized(client.get(url))).await? else {
            return Ok(None);
        };
        let tickets = found.get("data").and_then(Value::as_array);
        Ok(tickets
            .into_iter()
            .flatten()
            .filter(|t| t.get("external_id").and_then(Value::as_str) == Some(external_id))
            .find_map(ticket_id))
    }
}

/// `POST /api/tickets`: the customer, the key, the tags and the contact's first message.
fn create_body(channel: &str, ticket: &NewGorgiasTicket<'_>) -> Value {
    let mut message = json!({
        "channel": channel,
        "via": "api",
        "from_agent": false,
        "sender": { "email": ticket.email },
        "subject": ticket.subject,
        "body_text": ticket.body,
        "body_html": html(ticket.body),
    });
    if channel == "email" {
        message["source"] = json!({ "from": { "address": ticket.email } });
    }
    let tags: Vec<Value> = ticket.tags.iter().map(|t| json!({ "name": t })).collect();
    json!({
        "customer": { "email": ticket.email },
        "external_id": ticket.external_id,
        "channel": channel,
        "via": "api",
        "from_agent": false,
        "subject": ticket.subject,
        "tags": tags,
        "messages": [message],
    })
}

/// The text as HTML: escaped, one `<br>` per line break.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A ticket's id (a number in Gorgias's answers; text is taken too).
fn ticket_id(ticket: &Value) -> Option<String> {
    match ticket.get("id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket<'a>(tags: &'a [String]) -> NewGorgiasTicket<'a> {
        NewGorgiasTicket {
            external_id: "deskbridge-0123",
            email: "jane@example.com",
            subject: "Renewal call",
            body: "Please call <Jane> back.\nToday.",
            tags,
        }
    }

    #[test]
    fn the_create_carries_the_customer_the_key_the_tags_and_an_incoming_api_message() {
        let tags = vec!["brevo_automation".to_string()];
        assert_eq!(
            create_body("api", &ticket(&tags)),
            json!({
                "customer": {"email": "jane@example.com"},
                "external_id": "deskbridge-0123",
                "channel": "api",
                "via": "api",
                "from_agent": false,
                "subject": "Renewal call",
                "tags": [{"name": "brevo_automation"}],
                "messages": [{
                    "channel": "api",
                    "via": "api",
                    "from_agent": false,
                    "sender": {"email": "jane@example.com"},
                    "subject": "Renewal call",
                    "body_text": "Please call <Jane> back.\nToday.",
                    "body_html": "Please call &lt;Jane&gt; back.<br>Today."
                }]
            })
        );
    }

    #[test]
    fn an_email_ticket_names_the_contact_as_the_message_source() {
        let body = create_body("email", &ticket(&[]));
        assert_eq!(body["channel"], "email");
        assert_eq!(body["messages"][0]["channel"], "email");
        assert_eq!(
            body["messages"][0]["source"],
            json!({"from": {"address": "jane@example.com"}})
        );
        assert_eq!(body["tags"], json!([]));
    }

    #[test]
    fn a_ticket_id_is_a_number_or_text() {
        assert_eq!(ticket_id(&json!({"id": 7781})).as_deref(), Some("7781"));
        assert_eq!(ticket_id(&json!({"id": "7781"})).as_deref(), Some("7781"));
        assert_eq!(ticket_id(&json!({"id": null})), None);
    }
}
