//! Tickets opened in Zendesk for a Brevo automation, once: the ticket carries an `external_id`
//! derived from its key, and before opening one the account's tickets with that `external_id`
//! are listed (`GET {base}/api/v2/tickets.json?external_id=<id>`). Only when none is there is it
//! created (`POST {base}/api/v2/tickets.json` with `{"ticket": {…}}`, the requester by email and
//! name, so Zendesk makes the user when it has none). A retry after a crash between the create
//! and its acknowledgement finds the ticket instead of opening a second one.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::auth::ZendeskAuth;
use super::write_back::send;
use crate::helpdesk::api::{LookupError, read};

/// A ticket to open.
#[derive(Debug, Clone, Copy)]
pub struct NewTicket<'a> {
    pub external_id: &'a str,
    pub requester_email: &'a str,
    pub requester_name: &'a str,
    pub subject: &'a str,
    pub comment: &'a str,
    pub tags: &'a [String],
    /// `low`, `normal`, `high` or `urgent`; `None` leaves Zendesk's default.
    pub priority: Option<&'a str>,
}

/// The ticket with the `external_id`: opened now, or found from before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Zendesk's ticket id.
    pub id: String,
    /// False when a ticket with the `external_id` was there already.
    pub created: bool,
}

/// Opens Zendesk tickets with the account's [`ZendeskAuth`] (OAuth bearer token, renewed once
/// after a 401; or the legacy API token).
#[derive(Debug, Clone)]
pub struct ZendeskTickets {
    auth: ZendeskAuth,
}

impl ZendeskTickets {
    pub fn new(auth: ZendeskAuth) -> Self {
        ZendeskTickets { auth }
    }

    /// The ticket whose `external_id` is `ticket.external_id`, opened unless it exists.
    pub async fn open_once(
        &self,
        client: &reqwest::Client,
        ticket: &NewTicket<'_>,
    ) -> Result<Opened, LookupError> {
        if let Some(id) = self.find(client, ticket.external_id).await? {
            return Ok(Opened { id, created: false });
        }
        let url = format!("{}/api/v2/tickets.json", self.auth.base_url());
        let mut fields = json!({
            "subject": ticket.subject,
            "comment": { "body": ticket.comment },
            "requester": { "email": ticket.requester_email, "name": ticket.requester_name },
            "external_id": ticket.external_id,
            "tags": ticket.tags,
        });
        if let Some(priority) = ticket.priority {
            fields["priority"] = json!(priority);
        }
        let body = json!({ "ticket": fields });
        let response = send(&self.auth, client, || {
            client
                .post(&url)
                .header("Accept", "application/json")
                .json(&body)
        })
        .await?;
        let status = response.status();
        let Some(created) = read(response).await? else {
            return Err(LookupError::Rejected(format!(
                "HTTP {status}: no ticket endpoint at this Zendesk address"
            )));
        };
        let id = ticket_id(created.get("ticket")).ok_or_else(|| {
            LookupError::Transient("Zendesk's answer to the ticket create has no id".into())
        })?;
        Ok(Opened { id, created: true })
    }

    /// The id of a ticket whose `external_id` is `external_id`, if Zendesk has one.
    async fn find(
        &self,
        client: &reqwest::Client,
        external_id: &str,
    ) -> Result<Option<String>, LookupError> {
        let id = utf8_percent_encode(external_id, NON_ALPHANUMERIC).to_string();
        let url = format!(
            "{}/api/v2/tickets.json?external_id={id}",
            self.auth.base_url()
        );
        let response = send(&self.auth, client, || {
            client.get(&url).header("Accept", "application/json")
        })
        .await?;
        let Some(found) = read(response).await? else {
            return Ok(None);
        };
        let tickets = found.get("tickets").and_then(Value::as_array);
        Ok(tickets
            .into_iter()
            .flatten()
            .filter(|t| t.get("external_id").and_then(Value::as_str) == Some(external_id))
            .find_map(|t| ticket_id(Some(t))))
    }
}

/// A ticket's id (a number in Zendesk's answers; text is taken too).
fn ticket_id(ticket: Option<&Value>) -> Option<String> {
    match ticket?.get("id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_id_is_a_number_or_text() {
        assert_eq!(
            ticket_id(Some(&json!({"id": 35436}))).as_deref(),
            Some("35436")
        );
        assert_eq!(
            ticket_id(Some(&json!({"id": "35436"}))).as_deref(),
            Some("35436")
        );
        assert_eq!(ticket_id(Some(&json!({"id": null}))), None);
        assert_eq!(ticket_id(None), None);
    }
}
