//! Intercom's and Gorgias's tickets as their APIs hold them, for the tests of the tickets Brevo
//! automations ask for (`/actions/<helpdesk>/tickets`).
//!
//! - [`IntercomTickets`]: `POST /tickets` adds a ticket (200, the ticket object),
//!   `POST /tickets/search` finds the tickets of a type whose description contains a text
//!   (`{"query": {"operator": "AND", "value": [{"field": "ticket_type_id", …}, {"field":
//!   "description", "operator": "~", …}]}}`), answered as a `ticket.list`.
//! - [`GorgiasTickets`]: `POST /api/tickets` adds a ticket (201, the ticket object with a
//!   number id), `GET /api/tickets?external_id=` lists those with that `external_id`.
//!
//! Both answer 401 without the expected credentials and 400 for a body their API refuses.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::pull::query;

/// An Intercom workspace's tickets.
#[derive(Clone)]
pub struct IntercomTickets {
    /// The expected `Authorization` header.
    pub authorization: String,
    pub tickets: Arc<Mutex<Vec<Value>>>,
}

impl IntercomTickets {
    /// The tickets of a workspace whose access token is `token`.
    pub fn new(token: &str) -> Self {
        IntercomTickets {
            authorization: format!("Bearer {token}"),
            tickets: Arc::default(),
        }
    }

    /// Serves `/tickets` and `/tickets/search` on `server`.
    pub async fn mount(&self, server: &MockServer) {
        for p in ["/tickets", "/tickets/search"] {
            Mock::given(path(p))
                .respond_with(self.clone())
                .mount(server)
                .await;
        }
    }

    /// The tickets held.
    pub fn held(&self) -> Vec<Value> {
        self.tickets.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Respond for IntercomTickets {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(self.authorization.as_str());
        if !authorized {
            return ResponseTemplate::new(401).set_body_json(json!({"type": "error.list",
                "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]}));
        }
        let (Ok(body), Ok(mut tickets)) = (
            serde_json::from_slice::<Value>(&request.body),
            self.tickets.lock(),
        ) else {
            return ResponseTemplate::new(400);
        };
        if request.url.path() == "/tickets/search" {
            let filters = body.pointer("/query/value").and_then(Value::as_array);
            let wanted = |field: &str| {
                filters
                    .into_iter()
                    .flatten()
                    .find(|f| f["field"] == field)
                    .and_then(|f| f["value"].as_str())
                    .map(str::to_string)
            };
            let (kind, text) = (wanted("ticket_type_id"), wanted("description"));
            let found: Vec<Value> = tickets
                .iter()
                .filter(|t| kind.is_none() || t["ticket_type"]["id"].as_str() == kind.as_deref())
                .filter(|t| {
                    let d = t["ticket_attributes"]["_default_description_"].as_str();
                    text.as_deref()
                        .is_some_and(|text| d.is_some_and(|d| d.contains(text)))
                })
                .cloned()
                .collect();
            let count = found.len();
            return ResponseTemplate::new(200).set_body_json(json!({
                "type": "ticket.list", "tickets": found, "total_count": count,
                "pages": {"type": "pages", "page": 1, "per_page": 5, "total_pages": 1}
            }));
        }
        let email = body.pointer("/contacts/0/email").and_then(Value::as_str);
        let (Some(kind), Some(email)) = (body["ticket_type_id"].as_str(), email) else {
            return ResponseTemplate::new(400).set_body_json(json!({"type": "error.list",
                "errors": [{"code": "parameter_invalid", "message": "Ticket type or contact missing"}]}));
        };
        let id = (489 + tickets.len()).to_string();
        let ticket = json!({
            "type": "ticket", "id": id, "ticket_id": (48 + tickets.len()).to_string(),
            "ticket_attributes": body["ticket_attributes"].clone(),
            "ticket_state": "submitted",
            "ticket_type": {"type": "ticket_type", "id": kind, "name": "Follow-up"},
            "contacts": {"type": "contact.list",
                "contacts": [{"type": "contact", "id": "667d61b78a68186f43bafe8d", "email": email}]},
            "open": true, "category": "Customer"
        });
        tickets.push(ticket.clone());
        ResponseTemplate::new(200).set_body_json(ticket)
    }
}

/// A Gorgias account's tickets.
#[derive(Clone)]
pub struct GorgiasTickets {
    /// The expected `Authorization` header (Basic).
    pub authorization: String,
    pub tickets: Arc<Mutex<Vec<Value>>>,
}

impl GorgiasTickets {
    /// The tickets of an account whose user `email` has the API key `api_key`.
    pub fn new(email: &str, api_key: &str) -> Self {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{api_key}"));
        GorgiasTickets {
            authorization: format!("Basic {pair}"),
            tickets: Arc::default(),
        }
    }

    /// Serves `/api/tickets` on `server`.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(path("/api/tickets"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// The tickets held.
    pub fn held(&self) -> Vec<Value> {
        self.tickets.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Respond for GorgiasTickets {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(self.authorization.as_str());
        let Ok(mut tickets) = self.tickets.lock() else {
            return ResponseTemplate::new(500);
        };
        if !authorized {
            return ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"msg": "Unauthorized"}}));
        }
        if request.method.as_str() == "GET" {
            let wanted = query(request, "external_id");
            let found: Vec<Value> = tickets
                .iter()
                .filter(|t| wanted.is_none() || t["external_id"].as_str() == wanted.as_deref())
                .cloned()
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({
                "data": found, "object": "list", "uri": "/api/tickets",
                "meta": {"prev_cursor": null, "next_cursor": null}
            }));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        let messages = body["messages"].as_array().map_or(0, Vec::len);
        let message_ok = body["messages"][0]["channel"].is_string()
            && body["messages"][0]["via"].is_string()
            && body["messages"][0]["from_agent"].is_boolean();
        if messages == 0 || !message_ok || !body["via"].is_string() {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "msg": "Invalid request", "data": {"messages": ["Missing data for required field."]}}}));
        }
        let id = 7781 + tickets.len() as u64;
        let mut ticket = body.clone();
        ticket["id"] = json!(id);
        ticket["uri"] = json!(format!("/api/tickets/{id}/"));
        ticket["status"] = json!("open");
        ticket["customer"]["id"] = json!(1302);
        ticket["messages"] = json!([]);
        tickets.push(ticket.clone());
        ResponseTemplate::new(201).set_body_json(ticket)
    }
}
