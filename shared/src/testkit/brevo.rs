//! Brevo fakes: one that accepts everything, one that keeps contacts.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The Brevo client pointed at `server`, with retries in milliseconds and a rate budget no test
/// reaches, so a test's time goes to what it checks.
pub fn fast_client(server: &MockServer) -> crate::brevo::BrevoClient {
    use crate::brevo::{BrevoClient, RateGovernor, RetryPolicy};
    match BrevoClient::new("xkeysib-test", &format!("{}/v3", server.uri())) {
        Ok(client) => client
            .with_governor(Arc::new(RateGovernor::new(1000, 1_000_000)))
            .with_retry(RetryPolicy {
                min_delay: std::time::Duration::from_millis(5),
                max_delay: std::time::Duration::from_millis(20),
                ..RetryPolicy::default()
            }),
        Err(e) => panic!("building the Brevo client: {e}"),
    }
}

/// Mounts on `server` the answers Brevo gives when it accepts a write ([`mount_writes`]) and
/// `GET /v3/contacts/attributes` listing `attributes` ([`mount_attributes`]).
pub async fn mount_accepting(server: &MockServer, attributes: &[(&str, &str)]) {
    mount_writes(server).await;
    mount_attributes(server, attributes).await;
}

/// Mounts on `server` the answers Brevo gives when it accepts a write: `POST /v3/contacts` 204
/// (updated), `POST /v3/events` and `/v3/events/batch` 204, `POST /v3/contacts/import` 202 with
/// a process id, and list removals 201. Nothing else is answered (wiremock's 404).
pub async fn mount_writes(server: &MockServer) {
    let routes: [(&str, &str, ResponseTemplate); 4] = [
        ("POST", "/v3/contacts", ResponseTemplate::new(204)),
        ("POST", "/v3/events", ResponseTemplate::new(204)),
        ("POST", "/v3/events/batch", ResponseTemplate::new(204)),
        (
            "POST",
            "/v3/contacts/import",
            ResponseTemplate::new(202).set_body_json(json!({"processId": 78})),
        ),
    ];
    mount_routes(server, routes).await;
    Mock::given(method("POST"))
        .and(path_regex("^/v3/contacts/lists/[0-9]+/contacts/remove$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"contacts": {"success": [], "failure": []}})),
        )
        .mount(server)
        .await;
}

/// Mounts on `server` `GET /v3/contacts/attributes` listing `attributes`, `(name, type)` pairs:
/// category `normal`, except type `category`, which Brevo lists in the category `category`
/// with its enumeration.
pub async fn mount_attributes(server: &MockServer, attributes: &[(&str, &str)]) {
    let listed: Vec<Value> = attributes
        .iter()
        .map(|(name, kind)| match *kind {
            "category" => json!({
                "name": name, "category": "category", "type": "category",
                "enumeration": [{"value": 1, "label": "Yes"}, {"value": 2, "label": "No"}]
            }),
            _ => json!({"name": name, "category": "normal", "type": kind}),
        })
        .collect();
    mount_routes(
        server,
        [(
            "GET",
            "/v3/contacts/attributes",
            ResponseTemplate::new(200).set_body_json(json!({ "attributes": listed })),
        )],
    )
    .await;
}

/// Mounts on `server` the answer Brevo gives when it creates an attribute:
/// `POST /v3/contacts/attributes/normal/{name}` 201.
pub async fn mount_attribute_creation(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex("^/v3/contacts/attributes/normal/[A-Za-z0-9_]+$"))
        .respond_with(ResponseTemplate::new(201))
        .mount(server)
        .await;
}

/// Mounts on `server` `GET /v3/account` for a working key (company "Acme").
pub async fn mount_account(server: &MockServer) {
    mount_routes(
        server,
        [(
            "GET",
            "/v3/account",
            ResponseTemplate::new(200)
                .set_body_json(json!({"companyName": "Acme", "email": "ops@acme.test"})),
        )],
    )
    .await;
}

/// Mounts on `server` one answer: `verb route` is answered `status` with no body.
pub async fn answer(server: &MockServer, verb: &str, route: &str, status: u16) {
    mount_routes(server, [(verb, route, ResponseTemplate::new(status))]).await;
}

/// Mounts each `(method, path, answer)` on `server`.
async fn mount_routes<const N: usize>(
    server: &MockServer,
    routes: [(&str, &str, ResponseTemplate); N],
) {
    for (verb, route, answer) in routes {
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(answer)
            .mount(server)
            .await;
    }
}

/// Mounts on `server` Brevo's list and folder routes for an account holding `lists`
/// (`(id, name)`) and no folder: `GET /v3/contacts/lists` and `/v3/contacts/folders` list them,
/// `POST /v3/contacts/folders` answers 201 `{"id": 1}`, `POST /v3/contacts/lists` 201
/// `{"id": created}`, and `DELETE /v3/contacts/lists/{id}` 204.
pub async fn mount_lists(server: &MockServer, lists: &[(i64, &str)], created: i64) {
    let listed: Vec<Value> = lists
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name, "folderId": 1}))
        .collect();
    let routes: [(&str, &str, ResponseTemplate); 4] = [
        (
            "GET",
            "/v3/contacts/lists",
            ResponseTemplate::new(200)
                .set_body_json(json!({"lists": listed, "count": listed.len()})),
        ),
        (
            "GET",
            "/v3/contacts/folders",
            ResponseTemplate::new(200).set_body_json(json!({"folders": [], "count": 0})),
        ),
        (
            "POST",
            "/v3/contacts/folders",
            ResponseTemplate::new(201).set_body_json(json!({"id": 1})),
        ),
        (
            "POST",
            "/v3/contacts/lists",
            ResponseTemplate::new(201).set_body_json(json!({"id": created})),
        ),
    ];
    mount_routes(server, routes).await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/v3/contacts/lists/[0-9]+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(server)
        .await;
}

/// A Brevo that accepts every write ([`mount_accepting`]) and lists `attributes`.
pub async fn accepting(attributes: &[(&str, &str)]) -> MockServer {
    let server = MockServer::start().await;
    mount_accepting(&server, attributes).await;
    server
}

/// The JSON bodies of the requests to `route`, in order.
pub fn requests_to(all: &[Request], route: &str) -> Vec<Value> {
    all.iter()
        .filter(|r| r.url.path() == route)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

/// The JSON bodies of the requests `server` received on `route`, in order; panics on a body
/// that is not JSON (deskbridge sends none).
pub async fn bodies(server: &MockServer, route: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == route)
        .map(|r| match r.body_json::<Value>() {
            Ok(body) => body,
            Err(e) => panic!("{route}: a body that is not JSON: {e}"),
        })
        .collect()
}

/// Every event `server` received, one by one or in batches, in order.
pub async fn events(server: &MockServer) -> Vec<Value> {
    let all = server.received_requests().await.unwrap_or_default();
    let mut out = Vec::new();
    for r in &all {
        let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
            continue;
        };
        match r.url.path() {
            "/v3/events" => out.push(body),
            "/v3/events/batch" => out.extend(
                body.get("events")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => {}
        }
    }
    out
}

/// The `event_name` of every event `server` received ([`events`]), sorted.
pub async fn event_names(server: &MockServer) -> Vec<String> {
    let mut names: Vec<String> = events(server)
        .await
        .iter()
        .filter_map(|e| e.get("event_name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// One contact as [`BrevoModel`] keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    pub email: Option<String>,
    pub ext_id: Option<String>,
    pub attributes: Map<String, Value>,
    /// The `event_name`s of the events on its timeline, in order.
    pub events: Vec<String>,
    /// Its `createdAt` (set when the model creates it).
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The lists it is in (`listIds` joined, `unlinkListIds` left).
    pub lists: std::collections::BTreeSet<i64>,
}

/// A Brevo that keeps contacts the way Brevo does, as far as deskbridge's requests shape them:
/// `POST /v3/contacts` updates the contact with the email, else the one with the ext_id, else
/// creates one (201); `PUT /v3/contacts/{id}?identifierType=email_id|ext_id` changes one (404
/// when there is none; 400 `duplicate_parameter` when its new EMAIL is another contact's;
/// `listIds` and `unlinkListIds` join and leave lists); `GET` and `DELETE` of
/// `/v3/contacts/{id}` read (`createdAt`, `attributes`, `listIds`) and delete one; events land
/// on the contact their identifiers name (one is made for an unknown identifier, as Brevo
/// does). Mount it with [`BrevoModel::start`].
#[derive(Clone, Default)]
pub struct BrevoModel(Arc<Mutex<Vec<Contact>>>);

impl BrevoModel {
    /// A wiremock server answering every request from a new, empty model.
    pub async fn start() -> (BrevoModel, MockServer) {
        let model = BrevoModel::default();
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(model.clone())
            .mount(&server)
            .await;
        (model, server)
    }

    /// The contacts as they stand.
    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().clone()
    }

    /// Adds a contact made outside deskbridge (a signup form, an import).
    pub fn insert(&self, contact: Contact) {
        self.lock().push(contact);
    }

    /// The contact with `email`, if there is one.
    pub fn by_email(&self, email: &str) -> Option<Contact> {
        let contacts = self.lock();
        Self::find(&contacts, Some(email), None).map(|at| contacts[at].clone())
    }

    /// Where the contact a `/v3/contacts/{identifier}` request names is.
    fn addressed(contacts: &[Contact], request: &Request) -> Option<usize> {
        let raw = request
            .url
            .path()
            .strip_prefix("/v3/contacts/")
            .unwrap_or_default();
        let id = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        let by_ext = request
            .url
            .query_pairs()
            .any(|(k, v)| k == "identifierType" && v == "ext_id");
        if by_ext {
            Self::find(contacts, None, Some(&id))
        } else {
            Self::find(contacts, Some(&id), None)
        }
    }

    fn not_found() -> ResponseTemplate {
        ResponseTemplate::new(404).set_body_json(
            json!({"code": "document_not_found", "message": "Contact does not exist"}),
        )
    }

    /// `GET /v3/contacts/{identifier}`.
    fn read(contacts: &[Contact], request: &Request) -> ResponseTemplate {
        let Some(at) = Self::addressed(contacts, request) else {
            return Self::not_found();
        };
        let c = &contacts[at];
        let created = c
            .created_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false));
        ResponseTemplate::new(200).set_body_json(json!({
            "id": at + 1, "email": c.email, "ext_id": c.ext_id, "createdAt": created,
            "attributes": c.attributes, "listIds": c.lists,
        }))
    }

    /// `DELETE /v3/contacts/{identifier}`.
    fn delete(contacts: &mut Vec<Contact>, request: &Request) -> ResponseTemplate {
        match Self::addressed(contacts, request) {
            Some(at) => {
                contacts.remove(at);
                ResponseTemplate::new(204)
            }
            None => Self::not_found(),
        }
    }

    fn list_ids(body: &Value, key: &str) -> Vec<i64> {
        body[key]
            .as_array()
            .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Contact>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn find(contacts: &[Contact], email: Option<&str>, ext_id: Option<&str>) -> Option<usize> {
        email
            .and_then(|e| contacts.iter().position(|c| c.email.as_deref() == Some(e)))
            .or_else(|| {
                ext_id.and_then(|x| contacts.iter().position(|c| c.ext_id.as_deref() == Some(x)))
            })
    }

    fn event(contacts: &mut Vec<Contact>, event: &Value) {
        let ids = &event["identifiers"];
        let email = ids["email_id"].as_str();
        let ext_id = ids["ext_id"].as_str();
        let at = match Self::find(contacts, email, ext_id) {
            Some(at) => at,
            None => {
                contacts.push(Contact {
                    email: email.map(str::to_string),
                    ext_id: ext_id.map(str::to_string),
                    created_at: Some(chrono::Utc::now()),
                    ..Default::default()
                });
                contacts.len() - 1
            }
        };
        let name = event["event_name"].as_str().unwrap_or("?").to_string();
        contacts[at].events.push(name);
    }

    fn upsert(contacts: &mut Vec<Contact>, body: &Value) -> ResponseTemplate {
        let email = body["email"].as_str();
        let ext_id = body["ext_id"].as_str();
        let attributes = body["attributes"].as_object().cloned().unwrap_or_default();
        let lists = Self::list_ids(body, "listIds");
        match Self::find(contacts, email, ext_id) {
            Some(at) => {
                let c = &mut contacts[at];
                c.attributes.extend(attributes);
                c.lists.extend(lists);
                if c.email.is_none() {
                    c.email = email.map(str::to_string);
                }
                if c.ext_id.is_none() {
                    c.ext_id = ext_id.map(str::to_string);
                }
                ResponseTemplate::new(204)
            }
            None => {
                contacts.push(Contact {
                    email: email.map(str::to_string),
                    ext_id: ext_id.map(str::to_string),
                    attributes,
                    events: Vec::new(),
                    created_at: Some(chrono::Utc::now()),
                    lists: lists.into_iter().collect(),
                });
                ResponseTemplate::new(201).set_body_json(json!({ "id": contacts.len() }))
            }
        }
    }

    fn update(contacts: &mut [Contact], request: &Request, body: &Value) -> ResponseTemplate {
        let Some(at) = Self::addressed(contacts, request) else {
            return Self::not_found();
        };
        for list in Self::list_ids(body, "unlinkListIds") {
            contacts[at].lists.remove(&list);
        }
        contacts[at].lists.extend(Self::list_ids(body, "listIds"));
        let mut attributes = body["attributes"].as_object().cloned().unwrap_or_default();
        if let Some(new) = attributes
            .remove("EMAIL")
            .and_then(|v| v.as_str().map(str::to_string))
        {
            let taken = contacts
                .iter()
                .enumerate()
                .any(|(i, c)| i != at && c.email.as_deref() == Some(new.as_str()));
            if taken {
                return ResponseTemplate::new(400).set_body_json(json!({
                    "code": "duplicate_parameter",
                    "message": "Unable to update contact, email is already associated with another Contact"
                }));
            }
            contacts[at].email = Some(new);
        }
        contacts[at].attributes.extend(attributes);
        ResponseTemplate::new(204)
    }
}

impl Respond for BrevoModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut contacts = self.lock();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), request.url.path()) {
            ("GET", "/v3/contacts/attributes") => {
                ResponseTemplate::new(200).set_body_json(json!({"attributes": []}))
            }
            ("POST", "/v3/contacts") => Self::upsert(&mut contacts, &body),
            ("PUT", p) if p.starts_with("/v3/contacts/") => {
                Self::update(&mut contacts, request, &body)
            }
            ("GET", p)
                if p.starts_with("/v3/contacts/") && !p.starts_with("/v3/contacts/lists") =>
            {
                Self::read(&contacts, request)
            }
            ("DELETE", p) if p.starts_with("/v3/contacts/") => Self::delete(&mut contacts, request),
            ("POST", "/v3/events") => {
                Self::event(&mut contacts, &body);
                ResponseTemplate::new(204)
            }
            ("POST", "/v3/events/batch") => {
                for event in body["events"].as_array().cloned().unwrap_or_default() {
                    Self::event(&mut contacts, &event);
                }
                ResponseTemplate::new(204)
            }
            _ => ResponseTemplate::new(404)
                .set_body_json(json!({"code": "not_found", "message": "no such route"})),
        }
    }
}
