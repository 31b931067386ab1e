//! Intercom on wiremock, for tests (feature `testkit`).

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Intercom's contact search (`POST /contacts/search`, the contacts stream's backfill) with the
/// documented body and answer: day-granular `updated_at` matching (`> d OR = d`), ascending
/// order, `starting_after` cursors, `pages.next` while more remain. Tests change the contacts
/// it holds between runs ([`ContactSearch::set`], [`ContactSearch::update`]).
#[derive(Clone, Default)]
pub struct ContactSearch {
    contacts: Arc<Mutex<Vec<Value>>>,
}

impl ContactSearch {
    /// Mounts this search on `server` at `POST /contacts/search`.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path("/contacts/search"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// Replaces the contacts the search holds.
    pub fn set(&self, contacts: Vec<Value>) {
        *self.lock() = contacts;
    }

    /// Renames the contact at `index` (`Renamed {index}`) and moves its `updated_at`.
    pub fn update(&self, index: usize, updated_at: i64) {
        if let Some(c) = self.lock().get_mut(index) {
            c["updated_at"] = json!(updated_at);
            c["name"] = json!(format!("Renamed {index}"));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.contacts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Respond for ContactSearch {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let since = body["query"]["value"][0]["value"].as_i64().unwrap_or(0);
        let day = since.div_euclid(86_400);
        let per_page = body["pagination"]["per_page"].as_u64().unwrap_or(50) as usize;
        let start: usize = body["pagination"]["starting_after"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut matching: Vec<Value> = self
            .lock()
            .iter()
            .filter(|c| c["updated_at"].as_i64().unwrap_or(0).div_euclid(86_400) >= day)
            .cloned()
            .collect();
        matching.sort_by_key(|c| {
            (
                c["updated_at"].as_i64().unwrap_or(0),
                c["id"].as_str().unwrap_or("").to_string(),
            )
        });
        let end = (start + per_page).min(matching.len());
        let data = matching
            .get(start..end)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        let mut pages = json!({"type": "pages", "per_page": per_page});
        if end < matching.len() {
            pages["next"] = json!({"starting_after": end.to_string()});
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": data, "total_count": matching.len(), "pages": pages
        }))
    }
}
