//! Brevo and the helpdesk APIs on wiremock, answering in the vendors' documented shapes and
//! injecting their failures. Brevo keeps, in order, every state-changing request it accepted
//! (answered 2xx): that log is Brevo's state.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::world::World;
use super::{Faults, Plan, SharedRng};
use deskbridge_shared::helpdesk::intercom::fake::ContactSearch;

/// A request Brevo answered with 2xx.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub path: String,
    pub body: Value,
    pub at: std::time::Instant,
    /// The `api-key` the request came with.
    pub key: String,
}

/// Brevo v3: contacts, imports, events, attributes, list removals.
#[derive(Clone)]
pub struct BrevoSim(Arc<BrevoInner>);

struct BrevoInner {
    plan: Plan,
    faults: Arc<Faults>,
    rng: SharedRng,
    accepted: Mutex<Vec<Accepted>>,
    contacts: Mutex<HashSet<String>>,
    requests: AtomicU64,
    ids: AtomicU64,
    /// An outage: every request is answered 503 while set.
    down: std::sync::atomic::AtomicBool,
    /// Requests made with this API key are held: never applied, never answered in time.
    hold: Mutex<Option<String>>,
    held: AtomicU64,
}

fn api_key(request: &Request) -> &str {
    request
        .headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BrevoSim {
    pub async fn start(plan: Plan, faults: Arc<Faults>, rng: SharedRng) -> (MockServer, BrevoSim) {
        let sim = BrevoSim(Arc::new(BrevoInner {
            plan,
            faults,
            rng,
            accepted: Mutex::new(Vec::new()),
            contacts: Mutex::new(HashSet::new()),
            requests: AtomicU64::new(0),
            ids: AtomicU64::new(1),
            down: std::sync::atomic::AtomicBool::new(false),
            hold: Mutex::new(None),
            held: AtomicU64::new(0),
        }));
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(sim.clone())
            .mount(&server)
            .await;
        (server, sim)
    }

    /// Starts (true) or ends (false) an outage: every request answered 503.
    pub fn set_down(&self, down: bool) {
        self.0.down.store(down, Ordering::SeqCst);
    }

    /// From now on, every request made with API key `key` is held on the wire: Brevo never
    /// applies it and answers only after minutes, like a request whose sender died before
    /// Brevo read it.
    pub fn hold_requests_of(&self, key: &str) {
        *lock(&self.0.hold) = Some(key.to_string());
    }

    /// Ends [`BrevoSim::hold_requests_of`] (requests held so far stay unanswered).
    pub fn stop_holding(&self) {
        *lock(&self.0.hold) = None;
    }

    /// Requests held so far (see [`BrevoSim::hold_requests_of`]).
    pub fn held(&self) -> u64 {
        self.0.held.load(Ordering::SeqCst)
    }

    /// Requests received (accepted or not).
    pub fn requests(&self) -> u64 {
        self.0.requests.load(Ordering::Relaxed)
    }

    /// How many state-changing requests Brevo accepted so far.
    pub fn accepted_count(&self) -> usize {
        lock(&self.0.accepted).len()
    }

    /// The state-changing requests accepted, in the order Brevo applied them.
    pub fn accepted(&self) -> Vec<Accepted> {
        lock(&self.0.accepted).clone()
    }

    fn next_id(&self) -> u64 {
        self.0.ids.fetch_add(1, Ordering::Relaxed)
    }

    fn accept(&self, request: &Request, body: Value) {
        lock(&self.0.accepted).push(Accepted {
            path: request.url.path().to_string(),
            body,
            at: std::time::Instant::now(),
            key: api_key(request).to_string(),
        });
    }

    fn ok(status: u16) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .insert_header("x-sib-ratelimit-limit", "1000")
            .insert_header("x-sib-ratelimit-remaining", "999")
            .insert_header("x-sib-ratelimit-reset", "1")
    }

    fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({"code": code, "message": message}))
    }

    fn success(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path().to_string();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), path.as_str()) {
            ("POST", "/v3/contacts") => {
                let key = body["email"]
                    .as_str()
                    .or(body["ext_id"].as_str())
                    .or(body["attributes"]["SMS"].as_str())
                    .unwrap_or_default()
                    .to_lowercase();
                let created = lock(&self.0.contacts).insert(key);
                self.accept(request, body);
                if created {
                    Self::ok(201).set_body_json(json!({"id": self.next_id()}))
                } else {
                    Self::ok(204)
                }
            }
            ("POST", "/v3/contacts/import") => {
                self.accept(request, body);
                Self::ok(202).set_body_json(json!({"processId": self.next_id()}))
            }
            ("POST", "/v3/events" | "/v3/events/batch") => {
                self.accept(request, body);
                Self::ok(204)
            }
            ("GET", "/v3/contacts/attributes") => Self::ok(200).set_body_json(json!({
                "attributes": [
                    {"name": "EMAIL", "category": "normal", "type": "text"},
                    {"name": "FIRSTNAME", "category": "normal", "type": "text"},
                    {"name": "LASTNAME", "category": "normal", "type": "text"},
                    {"name": "SMS", "category": "normal", "type": "text"},
                ]
            })),
            ("POST", p) if p.starts_with("/v3/contacts/attributes/normal/") => Self::ok(201),
            ("POST", p) if p.starts_with("/v3/contacts/lists/") && p.ends_with("/remove") => {
                Self::ok(201).set_body_json(json!({"contacts": {"success": [], "failure": []}}))
            }
            _ => Self::error(404, "document_not_found", "Unknown route"),
        }
    }
}

impl Respond for BrevoSim {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        if lock(&self.0.hold).as_deref() == Some(api_key(request)) {
            self.0.held.fetch_add(1, Ordering::SeqCst);
            return Self::error(504, "gateway_timeout", "Gateway timeout")
                .set_delay(Duration::from_secs(600));
        }
        let (plan, faults) = (&self.0.plan, &self.0.faults);
        faults.op("brevo");
        if self.0.down.load(Ordering::SeqCst) {
            faults.inject("brevo outage 503");
            return Self::error(
                503,
                "service_unavailable",
                "Service temporarily unavailable",
            );
        }
        let roll = self.0.rng.unit();
        let mut edge = plan.brevo_429;
        if roll < edge {
            faults.inject("brevo 429");
            // Brevo's headers; the reset is short so the whole run is not paused for seconds.
            let reset = format!("{:.1}", 0.1 + self.0.rng.below(3) as f64 / 10.0);
            return Self::error(429, "too_many_requests", "Too many requests")
                .insert_header("x-sib-ratelimit-limit", "10")
                .insert_header("x-sib-ratelimit-remaining", "0")
                .insert_header("x-sib-ratelimit-reset", reset.as_str())
                .insert_header("retry-after", "1");
        }
        edge += plan.brevo_5xx;
        if roll < edge {
            let status = [500, 502, 503][self.0.rng.below(3) as usize];
            faults.inject(&format!("brevo {status}"));
            return match status {
                502 => ResponseTemplate::new(502)
                    .set_body_raw("<html><body>502 Bad Gateway</body></html>", "text/html"),
                503 => Self::error(
                    503,
                    "service_unavailable",
                    "Service temporarily unavailable",
                ),
                _ => Self::error(500, "internal_error", "Internal server error"),
            };
        }
        edge += plan.brevo_slow;
        if roll < edge {
            // Answered after the client gave up; the gateway's timeout, never applied.
            faults.inject("brevo answer slower than the client timeout");
            return Self::error(504, "gateway_timeout", "Gateway timeout")
                .set_delay(plan.brevo_timeout + Duration::from_millis(600));
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if request.url.path() == "/v3/contacts" {
            edge += plan.brevo_rejected;
            if roll < edge {
                faults.inject("brevo 400 refusal quoting the contact");
                let who = body["email"].as_str().unwrap_or("unknown");
                return Self::error(
                    400,
                    "invalid_parameter",
                    &format!("Invalid email address {who}"),
                );
            }
            edge += plan.brevo_sms_conflict;
            if let Some(sms) = body["attributes"]["SMS"].as_str()
                && roll < edge
            {
                faults.inject("brevo 400 SMS conflict");
                return ResponseTemplate::new(400).set_body_json(json!({
                    "code": "duplicate_parameter",
                    "message": format!("Unable to update contact, SMS {sms} is already associated with another Contact"),
                    "metadata": {"duplicate_identifiers": ["SMS"]},
                }));
            }
        }
        self.success(request)
    }
}

/// The helpdesk APIs deskbridge calls: Zendesk user look-ups and Intercom's contact search (the
/// backfill) and contact look-ups. Serves the customers' current versions, and the backfill
/// versions to the search.
#[derive(Clone)]
pub struct HelpdeskSim(Arc<HelpdeskInner>);

struct HelpdeskInner {
    plan: Plan,
    faults: Arc<Faults>,
    rng: SharedRng,
    zendesk_users: HashMap<String, Value>,
    intercom_contacts: HashMap<String, Value>,
    search: ContactSearch,
}

impl HelpdeskSim {
    pub async fn start(
        world: &World,
        plan: Plan,
        faults: Arc<Faults>,
        rng: SharedRng,
    ) -> MockServer {
        let mut zendesk_users = HashMap::new();
        let mut intercom_contacts = HashMap::new();
        let mut backfill = Vec::new();
        for c in &world.customers {
            match c.source {
                deskbridge_shared::model::Source::Zendesk => {
                    zendesk_users.insert(c.id.clone(), c.zendesk_user(c.current()));
                }
                deskbridge_shared::model::Source::Intercom => {
                    intercom_contacts.insert(c.id.clone(), c.intercom_contact(c.current()));
                    if let Some(v) = c.backfill.and_then(|i| c.versions.get(i)) {
                        backfill.push(c.intercom_contact(v));
                    }
                }
                _ => {}
            }
        }
        let search = ContactSearch::default();
        search.set(backfill);
        let sim = HelpdeskSim(Arc::new(HelpdeskInner {
            plan,
            faults,
            rng,
            zendesk_users,
            intercom_contacts,
            search,
        }));
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(sim).mount(&server).await;
        server
    }
}

impl Respond for HelpdeskSim {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let s = &self.0;
        s.faults.op("helpdesk");
        let roll = s.rng.unit();
        if roll < s.plan.helpdesk_429 {
            s.faults.inject("helpdesk 429");
            return ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": "APIRateLimitExceeded"}));
        }
        if roll < s.plan.helpdesk_429 + s.plan.helpdesk_5xx {
            s.faults.inject("helpdesk 500");
            return ResponseTemplate::new(500).set_body_json(json!({"error": "InternalError"}));
        }
        let path = request.url.path();
        let not_found = || ResponseTemplate::new(404).set_body_json(json!({"error": "NotFound"}));
        if let Some(id) = path
            .strip_prefix("/api/v2/users/")
            .and_then(|p| p.strip_suffix(".json"))
        {
            return match s.zendesk_users.get(id) {
                Some(user) => ResponseTemplate::new(200).set_body_json(json!({"user": user})),
                None => not_found(),
            };
        }
        if path == "/contacts/search" {
            return s.search.respond(request);
        }
        if let Some(id) = path.strip_prefix("/contacts/") {
            return match s.intercom_contacts.get(id) {
                Some(contact) => ResponseTemplate::new(200).set_body_json(contact),
                None => not_found(),
            };
        }
        not_found()
    }
}
