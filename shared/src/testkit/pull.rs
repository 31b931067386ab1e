//! Two REST APIs the generic pull sources read in tests, each speaking the shape of a real
//! helpdesk API: [`Freshdesk`] (a JSON array per page, `page` from 1 and `per_page` up to 100,
//! a change-time filter, Basic auth with `<api key>:X`, oldest change first) and [`HelpScout`]
//! (HAL: 50 customers a page under `_embedded.customers`, the next page's absolute URL under
//! `_links.next.href`, a `modifiedSince` filter, a bearer token).

use std::sync::{Arc, Mutex};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The credentials [`Freshdesk`] accepts (`FRESHDESK_API_CREDENTIALS` of the example).
pub const FRESHDESK_CREDENTIALS: &str = "fd-key:X";
/// The token [`HelpScout`] accepts (`HELPSCOUT_TOKEN` of the example).
pub const HELPSCOUT_TOKEN: &str = "hs-token";

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The value of the query parameter `name`.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn since(req: &Request, name: &str) -> Option<String> {
    query(req, name)
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| iso(t.with_timezone(&Utc)))
}

/// Freshdesk-style `GET /api/v2/contacts` (filter `_updated_since`) and `GET /api/v2/tickets`
/// (filter `updated_since`); items are kept as given and filtered on their `updated_at`.
#[derive(Clone, Default)]
pub struct Freshdesk {
    pub contacts: Arc<Mutex<Vec<Value>>>,
    pub tickets: Arc<Mutex<Vec<Value>>>,
}

impl Freshdesk {
    /// Contact `9000 + i`, `client<i>@example.com`, changed at `updated`.
    pub fn contact(i: i64, updated: DateTime<Utc>) -> Value {
        json!({"id": 9_000 + i, "name": format!("Client {i}"), "email": format!("client{i}@example.com"),
               "phone": null, "updated_at": iso(updated)})
    }

    /// A ticket of contact `9000 + requester` with its requester included, in `status`, created
    /// and changed at `updated`, resolved at `resolved`.
    pub fn ticket(
        id: i64,
        requester: i64,
        status: u8,
        updated: DateTime<Utc>,
        resolved: Option<DateTime<Utc>>,
    ) -> Value {
        json!({"id": id, "status": status, "subject": format!("Ticket {id}"), "priority": 1, "tags": [],
               "requester_id": 9_000 + requester,
               "requester": {"id": 9_000 + requester, "name": format!("Client {requester}"),
                             "email": format!("client{requester}@example.com")},
               "created_at": iso(updated), "updated_at": iso(updated),
               "stats": {"resolved_at": resolved.map(iso)}})
    }

    /// Replaces the item whose `id` matches, or adds it.
    pub fn put(list: &Mutex<Vec<Value>>, item: Value) {
        if let Ok(mut items) = list.lock() {
            match items.iter_mut().find(|i| i["id"] == item["id"]) {
                Some(slot) => *slot = item,
                None => items.push(item),
            }
        }
    }

    pub async fn mount(&self, server: &MockServer) {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(FRESHDESK_CREDENTIALS)
        );
        for (route, filter, data) in [
            ("/api/v2/contacts", "_updated_since", self.contacts.clone()),
            ("/api/v2/tickets", "updated_since", self.tickets.clone()),
        ] {
            let auth = auth.clone();
            Mock::given(method("GET"))
                .and(path(route))
                .respond_with(move |req: &Request| {
                    let given = req
                        .headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    if given != Some(auth.as_str()) {
                        return ResponseTemplate::new(401)
                            .set_body_json(json!({"code": "invalid_credentials"}));
                    }
                    let page: usize = query(req, "page")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(1)
                        .max(1);
                    let per_page: usize = query(req, "per_page")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(30)
                        .min(100);
                    let from = since(req, filter);
                    let mut items: Vec<Value> = data
                        .lock()
                        .map(|d| d.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|c| {
                            let updated = c["updated_at"].as_str().unwrap_or_default();
                            from.as_deref().is_none_or(|f| updated >= f)
                        })
                        .collect();
                    items.sort_by(|a, b| {
                        (a["updated_at"].as_str(), a["id"].as_i64())
                            .cmp(&(b["updated_at"].as_str(), b["id"].as_i64()))
                    });
                    let body: Vec<Value> = items
                        .into_iter()
                        .skip((page - 1) * per_page)
                        .take(per_page)
                        .collect();
                    ResponseTemplate::new(200).set_body_json(body)
                })
                .mount(server)
                .await;
        }
    }
}

/// Help Scout-style `GET /v2/customers?page=N&modifiedSince=`.
#[derive(Clone, Default)]
pub struct HelpScout {
    pub customers: Arc<Mutex<Vec<Value>>>,
    /// Where next links point, when not to the server itself (a test of the origin check).
    pub next_origin: Option<String>,
}

impl HelpScout {
    /// Customer `700000 + i`, `hs<i>@example.com`, changed at `updated`.
    pub fn customer(i: i64, updated: DateTime<Utc>) -> Value {
        json!({"id": 700_000 + i, "firstName": "Hel", "lastName": format!("Scout{i}"),
               "updatedAt": iso(updated),
               "_embedded": {"emails": [{"id": i, "value": format!("hs{i}@example.com"), "type": "work"}]}})
    }

    pub async fn mount(&self, server: &MockServer) {
        let base = self.next_origin.clone().unwrap_or_else(|| server.uri());
        let customers = self.customers.clone();
        Mock::given(method("GET"))
            .and(path("/v2/customers"))
            .respond_with(move |req: &Request| {
                let expected = format!("Bearer {HELPSCOUT_TOKEN}");
                let given = req
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                if given != Some(expected.as_str()) {
                    return ResponseTemplate::new(401);
                }
                let page: usize = query(req, "page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1)
                    .max(1);
                let from = since(req, "modifiedSince");
                let all: Vec<Value> = customers
                    .lock()
                    .map(|c| c.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| {
                        let updated = c["updatedAt"].as_str().unwrap_or_default();
                        from.as_deref().is_none_or(|f| updated >= f)
                    })
                    .collect();
                let pages = all.len().div_ceil(50).max(1);
                let items: Vec<Value> = all.into_iter().skip((page - 1) * 50).take(50).collect();
                let mut body = json!({
                    "_embedded": {"customers": items},
                    "page": {"size": 50, "number": page, "totalPages": pages}
                });
                if page < pages {
                    let mut next = format!("{base}/v2/customers?page={}", page + 1);
                    if let Some(f) = query(req, "modifiedSince") {
                        next.push_str(&format!("&modifiedSince={f}"));
                    }
                    body["_links"] =
                        json!({"next": {"href": next}, "self": {"href": req.url.to_string()}});
                }
                ResponseTemplate::new(200).set_body_json(body)
            })
            .mount(server)
            .await;
    }
}
