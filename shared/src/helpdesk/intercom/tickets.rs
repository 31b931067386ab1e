//! Tickets opened in Intercom for a Brevo automation: `POST {base}/tickets` with the configured
//! `ticket_type_id`, the contact by email (`contacts: [{"email": …}]`; Intercom makes a contact
//! when none has the email) and the default `_default_title_` / `_default_description_` ticket
//! attributes.
//!
//! # Finding a ticket opened before
//!
//! Intercom tickets have no `external_id`. The ticket's key is written on the last line of its
//! description (`Reference: deskbridge-…`), and before a create the tickets of the configured
//! type whose description contains it are searched for (`POST {base}/tickets/search`, `description`
//! with the documented `~` "contains" operator, `AND` `ticket_type_id =`). A hit whose
//! description really holds the key is the ticket; nothing is created then.
//!
//! Limits of that look-up, which is the second layer only (the upsert function's claim of the
//! ticket in the state table is what keeps a ticket from being opened twice in normal
//! operation):
//! - Intercom's search index lags behind writes (its docs say newly created objects can take a
//!   few minutes to be searchable), so a retry within that window after a crash between the
//!   create and the claim's mark can still open a second ticket.
//! - A teammate who edits the description and removes the reference line hides the ticket from
//!   the look-up.
//! - Custom ticket attributes (`ticket_attribute.{id}`) would hold the key out of sight, but
//!   searching them needs the attribute's numeric id per workspace and is reported unreliable,
//!   so the default description is used.

use serde_json::{Value, json};

use crate::config::IntercomSettings;
use crate::helpdesk::api::{LookupError, get_json, read, transport_error};

/// Tickets listed by one search: the key matches one ticket, a few leave room for look-alikes.
const PER_PAGE: u32 = 5;

/// A ticket to open.
#[derive(Debug, Clone, Copy)]
pub struct NewIntercomTicket<'a> {
    /// The key the ticket is found again by (`deskbridge-<hex>`).
    pub external_id: &'a str,
    pub email: &'a str,
    pub title: &'a str,
    pub description: &'a str,
}

/// The ticket with the key: opened now, or found from before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedTicket {
    /// Intercom's ticket id.
    pub id: String,
    /// False when a ticket with the key was there already.
    pub created: bool,
}

/// Opens Intercom tickets of one ticket type with the workspace's access token.
#[derive(Debug, Clone)]
pub struct IntercomTickets {
    base: String,
    token: String,
    version: String,
    ticket_type_id: String,
}

impl IntercomTickets {
    /// The tickets of `settings`' workspace, of type `ticket_type_id`, when its access token is
    /// set.
    pub fn from_settings(settings: &IntercomSettings, ticket_type_id: &str) -> Option<Self> {
        Some(IntercomTickets {
            base: settings.base_url.clone(),
            token: settings.access_token.clone()?,
            version: settings.version.clone(),
            ticket_type_id: ticket_type_id.to_string(),
        })
    }

    fn post(&self, client: &reqwest::Client, path: &str, body: &Value) -> reqwest::RequestBuilder {
        client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Intercom-Version", &self.version)
            .json(body)
    }

    /// The ticket whose description holds `ticket.external_id`, opened unless it exists.
    pub async fn open_once(
        &self,
        client: &reqwest::Client,
        ticket: &NewIntercomTicket<'_>,
    ) -> Result<OpenedTicket, LookupError> {
        if let Some(id) = self.find(client, ticket.external_id).await? {
            return Ok(OpenedTicket { id, created: false });
        }
        let body = create_body(&self.ticket_type_id, ticket);
        let response = self
            .post(client, "/tickets", &body)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let Some(created) = read(response).await? else {
            return Err(LookupError::Rejected(format!(
                "HTTP {status}: Intercom has no ticket endpoint here, or no ticket type {}",
                self.ticket_type_id
            )));
        };
        let id = ticket_id(&created).ok_or_else(|| {
            LookupError::Transient("Intercom's answer to the ticket create has no id".into())
        })?;
        Ok(OpenedTicket { id, created: true })
    }

    /// The id of a ticket of the type whose description holds `external_id`.
    async fn find(
        &self,
        client: &reqwest::Client,
        external_id: &str,
    ) -> Result<Option<String>, LookupError> {
        let body = search_body(&self.ticket_type_id, external_id);
        let Some(found) = get_json(self.post(client, "/tickets/search", &body)).await? else {
            return Ok(None);
        };
        let tickets = found.get("tickets").and_then(Value::as_array);
        Ok(tickets
            .into_iter()
            .flatten()
            .filter(|t| {
                t.pointer("/ticket_attributes/_default_description_")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.contains(external_id))
            })
            .find_map(ticket_id))
    }
}

/// The line that carries the ticket's key at the end of its description.
pub fn reference_line(external_id: &str) -> String {
    format!("Reference: {external_id}")
}

/// `POST /tickets`: the ticket type, the contact by email, the title and the description with
/// the reference line.
fn create_body(ticket_type_id: &str, ticket: &NewIntercomTicket<'_>) -> Value {
    let description = format!(
        "{}\n\n{}",
        ticket.description,
        reference_line(ticket.external_id)
    );
    json!({
        "ticket_type_id": ticket_type_id,
        "contacts": [{ "email": ticket.email }],
        "ticket_attributes": {
            "_default_title_": ticket.title,
            "_default_description_": description,
        },
    })
}

/// `POST /tickets/search`: tickets of the type whose description contains the key.
fn search_body(ticket_type_id: &str, external_id: &str) -> Value {
    json!({
        "query": {
            "operator": "AND",
            "value": [
                { "field": "ticket_type_id", "operator": "=", "value": ticket_type_id },
                { "field": "description", "operator": "~", "value": external_id },
            ],
        },
        "pagination": { "per_page": PER_PAGE },
    })
}

/// A ticket's id (text in Intercom's answers; a number is taken too).
fn ticket_id(ticket: &Value) -> Option<String> {
    match ticket.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_names_the_type_the_contact_by_email_and_keeps_the_key_in_the_description() {
        let ticket = NewIntercomTicket {
            external_id: "deskbridge-0123",
            email: "jane@example.com",
            title: "Renewal call",
            description: "Please call Jane back.",
        };
        assert_eq!(
            create_body("1234", &ticket),
            json!({
                "ticket_type_id": "1234",
                "contacts": [{"email": "jane@example.com"}],
                "ticket_attributes": {
                    "_default_title_": "Renewal call",
                    "_default_description_": "Please call Jane back.\n\nReference: deskbridge-0123"
                }
            })
        );
        assert_eq!(
            search_body("1234", "deskbridge-0123"),
            json!({
                "query": {"operator": "AND", "value": [
                    {"field": "ticket_type_id", "operator": "=", "value": "1234"},
                    {"field": "description", "operator": "~", "value": "deskbridge-0123"}
                ]},
                "pagination": {"per_page": 5}
            })
        );
    }

    #[test]
    fn a_ticket_id_is_text_or_a_number() {
        assert_eq!(ticket_id(&json!({"id": "489"})).as_deref(), Some("489"));
        assert_eq!(ticket_id(&json!({"id": 489})).as_deref(), Some("489"));
        assert_eq!(ticket_id(&json!({"id": ""})), None);
        assert_eq!(ticket_id(&json!({})), None);
    }
}
