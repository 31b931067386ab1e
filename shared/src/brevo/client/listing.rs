//! Brevo's paged listings (lists, folders) and the creations answering `201 {"id"}`.

use reqwest::Method;
use serde_json::Value;

use super::{BrevoClient, Bucket, Reply, unexpected};
use crate::brevo::{BrevoError, ListInfo};

impl BrevoClient {
    /// Every item of a paged listing (`GET {path}?limit=50&offset=…` answering
    /// `{"<key>": [{id, name}], "count": n}`), at most 10,000.
    pub(super) async fn every_page(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Vec<ListInfo>, BrevoError> {
        const PAGE: usize = 50;
        // 200 pages = 10,000 items: a bound against a server that never stops paging.
        const MAX_PAGES: usize = 200;
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let url = format!("{path}?limit={PAGE}&offset={}", page * PAGE);
            let reply = self
                .execute(Method::GET, &url, None, Bucket::ContactsEvents)
                .await?;
            let body = serde_json::from_slice::<Value>(&reply.body)
                .map_err(|_| unexpected(&reply, "a page of the listing"))?;
            // An account with nothing to list answers without the key (or with null).
            let items: Vec<ListInfo> = match body.get(key) {
                None | Some(Value::Null) => Vec::new(),
                Some(items) => serde_json::from_value(items.clone())
                    .map_err(|_| unexpected(&reply, "a page of the listing"))?,
            };
            let got = items.len();
            all.extend(items);
            let total = body
                .get("count")
                .and_then(Value::as_u64)
                .and_then(|c| usize::try_from(c).ok());
            if got < PAGE || total.is_some_and(|t| all.len() >= t) {
                break;
            }
        }
        Ok(all)
    }

    /// `POST {path}` with `body`, answered `201 {"id": …}`: the id of what was created.
    pub(super) async fn create(&self, path: &str, body: &Value) -> Result<i64, BrevoError> {
        let reply = self
            .execute(Method::POST, path, Some(body), Bucket::ContactsEvents)
            .await?;
        created_id(&reply)
    }
}

/// The `id` of a `201 {"id": …}` answer (a created list or folder).
fn created_id(reply: &Reply) -> Result<i64, BrevoError> {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_i64))
        .ok_or_else(|| unexpected(reply, "the id of what it created"))
}
