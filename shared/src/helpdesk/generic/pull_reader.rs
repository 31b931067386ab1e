//! The batch sync reader of a generic pull source ([`super::pull`]): one page of one resource
//! per call, within the source's rate limit, with 429s waited out and 5xx retried by the
//! shared HTTP core.
//!
//! Where a run starts: a `--since` time, else (unless `--full`) the bookmark — the start of
//! the previous completed run, less the resource's overlap — sent as `updated_since` when the
//! API has such a filter, and used to skip items whose `updated_at` is older either way. A
//! first or full run reads everything. The cursor of a page is the page number, the offset,
//! the next link or the API's cursor; everything else about the request is rebuilt from the
//! run's fixed settings, so a resumed run asks exactly what the crashed one would have.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::pull::{Pagination, PullAuth, PullResource, PullSource};
use super::{Reading, read_object, time};
use crate::helpdesk::parse::{Parsed, text};
use crate::helpdesk::signature::basic_header;
use crate::model::Source;
use crate::sync::limiter::Limiter;
use crate::sync::readers::{Api, RetryPolicy};
use crate::sync::{FetchError, Page, PageRequest, SourceReader};

/// Reads one generic pull source.
#[derive(Debug, Clone)]
pub struct PullReader {
    name: String,
    config: PullSource,
    /// The resolved value of the auth's variable.
    secret: String,
    api: Api,
}

impl PullReader {
    /// A reader of the generic source `name` described by `config`, authenticating with
    /// `secret`, at the source's configured rate (its share when `instances` run at once).
    pub fn new(
        client: reqwest::Client,
        name: &str,
        config: PullSource,
        secret: String,
        instances: u32,
    ) -> Self {
        let source = Source::Generic(name.to_string());
        let limiter = Limiter::new(source.to_string(), config.rate).alone_share(instances);
        PullReader {
            name: name.to_string(),
            api: Api::new(source, client, limiter),
            config,
            secret,
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api.retry = retry;
        self
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.auth {
            PullAuth::Bearer { .. } => request.bearer_auth(&self.secret),
            PullAuth::Basic { .. } => request.header("Authorization", basic_header(&self.secret)),
            PullAuth::Header { name, .. } => request.header(name.as_str(), &self.secret),
        }
    }

    fn invalid(&self, why: String) -> FetchError {
        FetchError::Rejected(format!("{}: {why}", self.api.source))
    }

    /// The URL of the page `cursor` names (the run's first page when `None`).
    fn url(
        &self,
        resource: &PullResource,
        request: &PageRequest,
        from: Option<DateTime<Utc>>,
    ) -> Result<reqwest::Url, FetchError> {
        let base = self.config.base_url.trim_end_matches('/');
        if let (Pagination::NextLink { .. }, Some(next)) = (&resource.pagination, &request.cursor) {
            return self.same_origin(next);
        }
        let (size_param, size) = resource.pagination.size();
        let size = size.min(request.page_size).max(1);
        let mut params: Vec<(String, String)> = resource
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let (Some(filter), Some(from)) = (&resource.updated_since, from) {
            params.push((filter.param.clone(), filter.format.write(from)));
        }
        if let Some(p) = size_param {
            params.push((p.to_string(), size.to_string()));
        }
        match (&resource.pagination, &request.cursor) {
            (Pagination::Page { param, first, .. }, cursor) => {
                let page = cursor.as_deref().unwrap_or_default();
                let page = page.parse::<u64>().unwrap_or(*first);
                params.push((param.clone(), page.to_string()));
            }
            (Pagination::Offset { param, .. }, cursor) => {
                let offset = cursor.as_deref().unwrap_or_default();
                params.push((
                    param.clone(),
                    offset.parse::<u64>().unwrap_or(0).to_string(),
                ));
            }
            (Pagination::Cursor { param, .. }, Some(cursor)) => {
                params.push((param.clone(), cursor.clone()));
            }
            (Pagination::Cursor { .. } | Pagination::NextLink { .. }, _) => {}
        }
        reqwest::Url::parse_with_params(&format!("{base}{}", resource.path), &params)
            .map_err(|e| self.invalid(format!("`{base}{}` is not a valid URL: {e}", resource.path)))
    }

    /// A next link, absolute or relative to the base URL, refused unless it stays on the base
    /// URL's origin (the credentials go with it).
    fn same_origin(&self, link: &str) -> Result<reqwest::Url, FetchError> {
        let base = reqwest::Url::parse(&self.config.base_url)
            .map_err(|e| self.invalid(format!("base_url is not a valid URL: {e}")))?;
        let url = base
            .join(link)
            .map_err(|e| self.invalid(format!("next link is not a URL: {e}")))?;
        if url.origin() != base.origin() {
            return Err(self.invalid(format!(
                "a next link leaves {} for {}; refusing to send the credentials there",
                base.origin().ascii_serialization(),
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// The cursor of the page after this one, if there is one.
    fn next_cursor(
        &self,
        resource: &PullResource,
        request: &PageRequest,
        answer: &Value,
        items: usize,
    ) -> Result<Option<String>, FetchError> {
        let size = resource.pagination.size().1.min(request.page_size).max(1);
        let full = u32::try_from(items).is_ok_and(|n| n >= size);
        let current = request
            .cursor
            .as_deref()
            .and_then(|c| c.parse::<u64>().ok());
        Ok(match &resource.pagination {
            Pagination::Page { first, .. } => {
                full.then(|| (current.unwrap_or(*first) + 1).to_string())
            }
            Pagination::Offset { .. } => {
                full.then(|| (current.unwrap_or(0) + u64::from(size)).to_string())
            }
            Pagination::NextLink { next, .. } => match text(answer.pointer(next)) {
                // Checked now, so that a bad link fails this page rather than the next.
                Some(link) => Some(self.same_origin(&link)?.to_string()),
                None => None,
            },
            Pagination::Cursor { next, .. } => text(answer.pointer(next)),
        })
    }
}

#[async_trait]
impl SourceReader for PullReader {
    fn source(&self) -> Source {
        self.api.source.clone()
    }

    fn streams(&self) -> &'static [&'static str] {
        self.config.streams()
    }

    fn account_limiter(&self) -> Option<&Arc<Limiter>> {
        Some(&self.api.limiter)
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let resource = self
            .config
            .resources
            .get(&request.stream)
            .ok_or_else(|| FetchError::UnknownStream(request.stream.clone()))?;
        let from = request.since.or_else(|| {
            request
                .bookmark
                .as_deref()
                .filter(|_| !request.full)
                .and_then(|b| DateTime::parse_from_rfc3339(b).ok())
                .map(|t| t.with_timezone(&Utc))
        });
        let url = self.url(resource, request, from)?;
        let answer: Value = self
            .api
            .call(None, &resource.path, |c| self.authorize(c.get(url.clone())))
            .await?;
        let items: &[Value] = match answer.pointer(&resource.items) {
            Some(Value::Array(items)) => items,
            // An empty HAL page may leave `_embedded` out.
            None | Some(Value::Null) => &[],
            Some(_) => {
                return Err(self.invalid(format!(
                    "{} answered without an array at `{}`: check `items`",
                    resource.path, resource.items
                )));
            }
        };
        let overlap = resource
            .updated_since
            .as_ref()
            .and_then(|f| chrono::Duration::from_std(f.overlap).ok())
            .unwrap_or_default();
        let mut page = Page {
            read: items.len() as u64,
            next_cursor: self.next_cursor(resource, request, &answer, items.len())?,
            bookmark: Some(
                (request.run_started_at - overlap).to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
            ..Page::default()
        };
        let reading = Reading {
            fields: &resource.fields,
            events: &resource.events,
            deletions: &BTreeSet::new(),
            event_times: &resource.event_times,
        };
        for item in items {
            let updated = resource
                .updated_at
                .as_deref()
                .and_then(|p| time(item.pointer(p)));
            if let (Some(from), Some(updated)) = (from, updated)
                && updated < from
            {
                continue;
            }
            let body = serde_json::to_vec(item).unwrap_or_default();
            let read_at = updated.unwrap_or(request.run_started_at);
            match read_object(&self.name, &reading, item, &body, read_at) {
                Ok(Parsed::Accepted(delivery)) => page.records.extend(delivery.records),
                Ok(Parsed::Ignored { .. }) => {}
                Err(e) => page.skipped.push(format!("{}: {e}", resource.path)),
            }
        }
        Ok(page)
    }
}
