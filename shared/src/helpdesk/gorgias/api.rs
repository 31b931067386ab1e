//! Access to one Gorgias account's REST API, shared by the sync streams: credentials, the
//! account's limiter and retries, and the list envelope.

use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::webhook::text;
use crate::model::{EventKind, Source, SupportEvent};
use crate::sync::readers::{Api, url_with_query};
use crate::sync::{FetchError, Page, PageRequest};

/// Largest `limit` of the list endpoints.
pub const MAX_PAGE: u32 = 100;
/// How far before the bookmark an incremental run still reads (clock skew, slow writes).
pub const LOOKBACK: TimeDelta = TimeDelta::minutes(10);

/// The account's base URL and credentials (Basic `email:api_key`), over its [`Api`].
#[derive(Debug, Clone)]
pub(super) struct GorgiasApi {
    pub(super) api: Api,
    pub(super) base: String,
    pub(super) email: String,
    pub(super) api_key: String,
}

impl GorgiasApi {
    /// `GET {base}{path}?{query}`, decoded.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, FetchError> {
        let url = url_with_query(&Source::Gorgias, &self.base, path, query)?;
        self.api
            .call(None, path, |client| {
                self.authorized(client.get(url.clone()))
            })
            .await
    }

    /// `GET {base}{path}` of one object; `None` when Gorgias answers 404. `shown` names the
    /// endpoint in errors and logs (no ids).
    pub(super) async fn get_found<T: DeserializeOwned>(
        &self,
        path: &str,
        shown: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, FetchError> {
        let url = url_with_query(&Source::Gorgias, &self.base, path, query)?;
        self.api
            .call_found(shown, |client| self.authorized(client.get(url.clone())))
            .await
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .basic_auth(&self.email, Some(&self.api_key))
            .header(reqwest::header::ACCEPT, "application/json")
    }
}

/// A list answer: `data` and `meta.next_cursor`.
#[derive(Debug, Deserialize)]
pub(super) struct ListPage {
    #[serde(default)]
    pub(super) data: Vec<Value>,
    #[serde(default)]
    meta: Value,
}

impl ListPage {
    pub(super) fn next_cursor(&self) -> Option<String> {
        text(self.meta.get("next_cursor"))
    }

    /// The sync page this list answer starts: what was read, the next cursor, and the run's
    /// start as the bookmark (RFC 3339 UTC), stored when the run completes.
    pub(super) fn page(&self, request: &PageRequest) -> Page {
        Page {
            read: self.data.len() as u64,
            next_cursor: self.next_cursor(),
            bookmark: Some(
                request
                    .run_started_at
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
            ..Page::default()
        }
    }
}

/// A Gorgias happening about `subject` (`ticket:<id>`, `customer:<id>`, `event:<id>`).
pub(super) fn new_event(subject: &str, kind: EventKind, at: DateTime<Utc>) -> SupportEvent {
    SupportEvent {
        id: SupportEvent::stable_id(&Source::Gorgias, subject, kind, at),
        kind,
        occurred_at: at,
        ticket_id: None,
        channel: None,
        properties: Map::new(),
    }
}
