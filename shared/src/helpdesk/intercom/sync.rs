//! Intercom batch sync through the search endpoints.
//!
//! Streams: `contacts` (`POST /contacts/search`) and `conversations`
//! (`POST /conversations/search`), both sorted by `updated_at` ascending and paged with
//! `pagination.starting_after` until the answer has no `pages.next`; and the opt-in `companies`
//! (see [`super::companies`]).
//!
//! Intercom compares dates **by day** in search (`>` starts on the next day), so the query is
//! `updated_at > W OR updated_at = W` (the whole watermark day and later) and records are
//! filtered here on the exact second (`updated_at >= W`: same-second records are kept, the
//! upserts are idempotent). The bookmark is the watermark W for the next run, in unix seconds:
//! the run's start minus five minutes, because new and changed records take a few minutes to
//! become searchable. It is stored when the run completes.
//!
//! Contacts name their companies only by reference. The first company of each contact on a page
//! is read with `GET /companies/{id}` (within the same rate limit) and put into the profile
//! under `company`; companies are cached for [`COMPANY_TTL`] by this reader, so one is read once
//! however many contacts (and pages, and runs of this container) name it. Listing every company
//! up front is not used for this: the list endpoint stops at 10,000 companies and the scroll
//! endpoint allows one open scroll per app (the companies stream uses it). A company that cannot be read never holds its contacts back:
//! they are written without company attributes, and the rest of the page's companies wait for a
//! later page once Intercom fails.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Duration as TimeDelta;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::conversation::{ai_events, conversation_record};
use super::fields::{event, text, time};
use super::tags;
use crate::helpdesk::api::{Cache, valid_id};
use crate::helpdesk::intercom::webhook::{
    contact_record, first_company_id, lacks_company, with_company,
};
use crate::http::StatusCode;
use crate::model::{EventKind, Record, Source};
use crate::sync::limiter::{Limiter, Rate};
use crate::sync::readers::{Api, RetryPolicy, rejection, url_with_query};
use crate::sync::{FetchError, Page, PageRequest, SourceReader};

use super::STREAMS;
/// Largest `per_page` of the search endpoints.
pub const MAX_PAGE: u32 = 150;
/// Search-index lag: the next run re-reads from this long before this run started.
pub const INDEX_LAG: TimeDelta = TimeDelta::minutes(5);
/// How long a company read for one page is reused by later pages and runs.
pub const COMPANY_TTL: Duration = Duration::from_secs(15 * 60);
/// Most companies kept.
const COMPANY_CACHE_CAPACITY: usize = 20_000;

/// Reads an Intercom workspace. Auth: Bearer access token, with `Intercom-Version`.
#[derive(Debug, Clone)]
pub struct IntercomReader {
    api: Api,
    pub(super) base: String,
    token: String,
    version: String,
    /// Companies by id; `None` for one Intercom does not have (or refuses to show).
    pub(super) companies: Arc<Cache<String, Option<Value>>>,
    /// The workspace's tag names by id (one entry), for contact tags; `None` while Intercom
    /// refused to list them (not asked again before the entry expires).
    tag_names: Arc<Cache<(), Option<tags::Names>>>,
    /// Whether contacts' tags are read (`sync.tags`, on unless switched off).
    pub(super) contact_tags: bool,
    /// Whether changed contacts' data events are read (`sync.events`, opt-in).
    data_events: bool,
}

impl IntercomReader {
    /// A reader of the API at `base_url` (`https://api.intercom.io`, or the EU/AU hosts) with
    /// API `version` (`2.11`), at [`Rate::intercom`] with the default [`RetryPolicy`].
    pub fn new(client: reqwest::Client, base_url: &str, access_token: &str, version: &str) -> Self {
        IntercomReader {
            api: Api::new(
                Source::Intercom,
                client,
                Limiter::new("intercom", Rate::intercom()),
            ),
            base: base_url.trim_end_matches('/').to_string(),
            token: access_token.to_string(),
            version: version.to_string(),
            companies: Arc::new(Cache::new(COMPANY_TTL, COMPANY_CACHE_CAPACITY)),
            tag_names: Arc::new(Cache::new(tags::NAMES_TTL, 1)),
            contact_tags: true,
            data_events: false,
        }
    }

    /// Whether changed contacts' data events are read (`sync.events`).
    pub fn with_data_events(mut self, on: bool) -> Self {
        self.data_events = on;
        self
    }

    /// Whether contacts' tags are read (`sync.tags`).
    pub fn with_contact_tags(mut self, on: bool) -> Self {
        self.contact_tags = on;
        self
    }

    /// Another rate (tests, benchmarks).
    pub fn with_rate(self, rate: Rate) -> Self {
        self.with_limiter(std::sync::Arc::new(Limiter::new("intercom", rate)))
    }

    /// Shares the limiter with other users of the same app.
    pub fn with_limiter(mut self, limiter: std::sync::Arc<Limiter>) -> Self {
        self.api.limiter = limiter;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api.retry = retry;
        self
    }

    pub fn limiter(&self) -> &std::sync::Arc<Limiter> {
        &self.api.limiter
    }

    /// One search page of `resource` (`contacts`, `conversations`) from watermark `since`.
    async fn search(
        &self,
        resource: &str,
        since: i64,
        request: &PageRequest,
    ) -> Result<SearchPage, FetchError> {
        let mut pagination = Map::new();
        pagination.insert(
            "per_page".into(),
            Value::from(request.page_size.clamp(1, MAX_PAGE)),
        );
        if let Some(cursor) = &request.cursor {
            pagination.insert("starting_after".into(), Value::from(cursor.as_str()));
        }
        let body = json!({
            "query": {
                "operator": "OR",
                "value": [
                    {"field": "updated_at", "operator": ">", "value": since},
                    {"field": "updated_at", "operator": "=", "value": since},
                ],
            },
            "pagination": pagination,
            "sort": {"field": "updated_at", "order": "ascending"},
        });
        let path = format!("/{resource}/search");
        let url = format!("{}{path}", self.base);
        self.api
            .call(None, &path, |client| {
                client
                    .post(&url)
                    .bearer_auth(&self.token)
                    .header("Intercom-Version", &self.version)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(&body)
            })
            .await
    }

    /// `GET /companies/{id}`.
    async fn company(&self, id: &str) -> Result<Value, FetchError> {
        self.get(&format!("/companies/{id}"), "/companies/{id}")
            .await
    }

    /// `GET {path}` (named `path` in errors and logs).
    async fn get_json(&self, path: &str) -> Result<Value, FetchError> {
        self.get(path, path).await
    }

    async fn get(&self, path: &str, shown: &str) -> Result<Value, FetchError> {
        self.find(path, shown, &[]).await?.ok_or_else(|| {
            FetchError::Rejected(rejection(&Source::Intercom, StatusCode::NOT_FOUND, shown))
        })
    }

    /// `GET {path}?{query}`; `None` when Intercom answers 404.
    pub(super) async fn find(
        &self,
        path: &str,
        shown: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>, FetchError> {
        let url = url_with_query(&Source::Intercom, &self.base, path, query)?;
        self.api
            .call_found(shown, |client| {
                client
                    .get(url.clone())
                    .bearer_auth(&self.token)
                    .header("Intercom-Version", &self.version)
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await
    }

    /// Puts each contact's tags on its record ([`tags`]), reading the workspace's tag names
    /// when they are not held or lack one a contact lists. Without names (Intercom failing),
    /// the contacts go on without tags.
    pub(super) async fn attach_tags(&self, records: &mut [Record]) {
        let held = self.tag_names.get(&());
        let names = match held {
            // Refused a moment ago: not asked again until the entry expires.
            Some(None) => return,
            Some(Some(names)) if !tags::lacks_any(records, &names) => names,
            _ => match self.get_json("/tags").await {
                Ok(answer) => {
                    let names = Arc::new(tags::names(&answer));
                    self.tag_names.put((), Some(names.clone()));
                    names
                }
                Err(e) => {
                    tracing::warn!(error = %e, "intercom tags unavailable; contacts are written without their tags for a while");
                    match held.flatten() {
                        Some(names) => names,
                        None => {
                            if matches!(e, FetchError::Rejected(_)) {
                                self.tag_names.put((), None);
                            }
                            return;
                        }
                    }
                }
            },
        };
        tags::apply(records, &names);
    }

    /// Puts each contact's first company into its profile under `company`, reading the
    /// companies not cached yet. Contacts whose company cannot be read keep their profile.
    async fn attach_companies(&self, records: &mut [Record]) {
        let wanted: BTreeSet<String> = records
            .iter()
            .filter_map(|r| r.profile.as_ref().filter(|p| lacks_company(p)))
            .filter_map(|p| first_company_id(p))
            .filter(|id| valid_id(id) && self.companies.get(id).is_none())
            .collect();
        let mut unread = 0usize;
        let mut outage = None;
        for id in wanted {
            if outage.is_some() {
                unread += 1;
                continue;
            }
            match self.company(&id).await {
                Ok(company) => self
                    .companies
                    .put(id, Some(company).filter(Value::is_object)),
                // Deleted since (404), or not shown to this token: remembered as none.
                Err(FetchError::Rejected(reason)) => {
                    tracing::info!(company = %id, %reason, "intercom company not readable; its contacts sync without it");
                    self.companies.put(id, None);
                }
                Err(e) => {
                    unread += 1;
                    outage = Some(e);
                }
            }
        }
        if let Some(e) = outage {
            tracing::warn!(error = %e, companies_not_read = unread,
                "intercom companies unavailable; contacts on this page are written without company attributes");
        }
        for record in records {
            if let Some(profile) = record.profile.as_mut().filter(|p| lacks_company(p))
                && let Some(id) = first_company_id(profile)
                && let Some(Some(company)) = self.companies.get(&id)
            {
                with_company(profile, &company);
            }
        }
    }

    async fn read(
        &self,
        resource: &str,
        request: &PageRequest,
        to_record: fn(&Value) -> Result<Record, String>,
    ) -> Result<Page, FetchError> {
        let since = watermark(request);
        let search = self.search(resource, since, request).await?;
        let mut page = Page {
            read: search.data.len() as u64,
            next_cursor: search.next_cursor(),
            bookmark: Some((request.run_started_at - INDEX_LAG).timestamp().to_string()),
            bookmark_now: false,
            ..Default::default()
        };
        for item in &search.data {
            // The server matched whole days; keep what changed at or after the exact second.
            let updated = time(item.get("updated_at"));
            if updated.is_some_and(|u| u.timestamp() < since) {
                continue;
            }
            match to_record(item) {
                Ok(record) => page.records.push(record),
                Err(reason) => page.skipped.push(reason),
            }
        }
        Ok(page)
    }
}

#[async_trait]
impl SourceReader for IntercomReader {
    fn account_limiter(&self) -> Option<&std::sync::Arc<Limiter>> {
        Some(&self.api.limiter)
    }

    fn source(&self) -> Source {
        Source::Intercom
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, FetchError> {
        match request.stream.as_str() {
            "contacts" => {
                let mut page = self.read("contacts", request, contact_to_record).await?;
                self.attach_companies(&mut page.records).await;
                if self.contact_tags {
                    self.attach_tags(&mut page.records).await;
                }
                let since = watermark(request);
                if self.data_events && since > 0 {
                    self.attach_data_events(&mut page.records, since).await?;
                }
                Ok(page)
            }
            "conversations" => {
                self.read("conversations", request, conversation_to_record)
                    .await
            }
            "companies" => self.company_changes(request).await,
            other => Err(FetchError::UnknownStream(other.to_string())),
        }
    }
}

/// The watermark of this run in unix seconds: the run's `since`, else the bookmark, or 0 on a
/// first or full run.
fn watermark(request: &PageRequest) -> i64 {
    if let Some(since) = request.since {
        return since.timestamp().max(0);
    }
    request
        .bookmark
        .as_deref()
        .filter(|_| !request.full)
        .and_then(|b| b.trim().parse::<i64>().ok())
        .unwrap_or(0)
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    data: Vec<Value>,
    /// `{"next": {"starting_after": "…"}, …}`; read leniently (older versions differ).
    #[serde(default)]
    pages: Value,
}

impl SearchPage {
    fn next_cursor(&self) -> Option<String> {
        self.pages
            .get("next")
            .and_then(|next| text(next.get("starting_after")))
    }
}

/// A contact (user or lead) with its profile and the `contact.*.created` event. Leads without
/// an email are addressed by id.
pub(super) fn contact_to_record(contact: &Value) -> Result<Record, String> {
    let updated = time(contact.get("updated_at"));
    let created = time(contact.get("created_at"));
    let Some(at) = updated.or(created) else {
        return Err("contact without updated_at".to_string());
    };
    let mut record =
        contact_record(contact.clone(), at).map_err(|_| "contact without an id".to_string())?;
    if let (Some(created), Some(id)) = (created, record.person.source_id.as_deref()) {
        let subject = format!("contact:{id}");
        record.events.push(event(
            EventKind::CustomerCreated,
            &subject,
            created,
            Map::new(),
        ));
    }
    // Only ever report an unsubscribe: a `false` here must not re-subscribe anyone.
    if contact.get("unsubscribed_from_emails") == Some(&Value::Bool(true)) {
        record.unsubscribed = Some(true);
    }
    Ok(record)
}

/// A conversation as a record for its contact: opened, closed (when closed) and rated (when
/// rated), with the webhook parser's stable ids (`conversation:<id>`).
fn conversation_to_record(conversation: &Value) -> Result<Record, String> {
    let id = text(conversation.get("id")).unwrap_or_else(|| "?".to_string());
    let Some(updated) =
        time(conversation.get("updated_at")).or(time(conversation.get("created_at")))
    else {
        return Err(format!("conversation {id}: no updated_at"));
    };
    let unattributed = |_| format!("conversation {id}: no contact or author to attribute it to");
    let mut record = conversation_record(conversation, EventKind::TicketCreated, updated)
        .map_err(unattributed)?;
    if text(conversation.get("state")).as_deref() == Some("closed") {
        // Closed at the last close part or `statistics.last_close_at`, else updated_at.
        let closed = conversation_record(conversation, EventKind::TicketClosed, updated)
            .map_err(unattributed)?;
        record.events.extend(closed.events);
    }
    let rated = conversation
        .get("conversation_rating")
        .and_then(|r| r.get("rating"))
        .is_some_and(|r| !r.is_null());
    if rated {
        match conversation_record(conversation, EventKind::SurveyResponded, updated) {
            Ok(r) => record.events.extend(r.events),
            // A rating outside 1–5: the conversation still syncs, without the response.
            Err(e) => tracing::debug!(conversation = %id, error = %e, "unreadable rating"),
        }
    }
    record.events.extend(ai_events(conversation, updated));
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SupportEvent;

    #[test]
    fn a_conversation_fin_resolved_carries_the_outcome_once() {
        let conversation = json!({"type": "conversation", "id": "148", "created_at": 1736330561,
            "updated_at": 1736337600, "state": "closed", "ai_agent_participated": true,
            "ai_agent": {"resolution_state": "confirmed_resolution", "rating": 5,
                "source_title": "Billing FAQ", "last_answer_type": "ai_answer"},
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": "c1"}]}});
        let r = conversation_to_record(&conversation).expect("record");
        let ai: Vec<&SupportEvent> = r
            .events
            .iter()
            .filter(|e| e.kind == EventKind::AiResolved)
            .collect();
        assert_eq!(ai.len(), 1);
        assert_eq!(ai[0].id, "intercom:conversation:148:ai_agent.resolved");
        assert_eq!(ai[0].properties["rating"], json!(5));
        assert_eq!(ai[0].properties["source_title"], json!("Billing FAQ"));
    }

    #[test]
    fn a_rated_closed_conversation_has_three_milestones() {
        let conversation = json!({"type": "conversation", "id": "147", "created_at": 1736330561,
            "updated_at": 1736337600, "state": "closed",
            "source": {"type": "email", "subject": "Invoice", "author":
                {"type": "user", "id": "c1", "email": "jane@example.com", "name": "Jane"}},
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": "c1"}]},
            "statistics": {"last_close_at": 1736334000},
            "conversation_rating": {"rating": 4, "remark": "ok", "created_at": 1736337600}});
        let r = conversation_to_record(&conversation).expect("record");
        assert_eq!(r.person.source_id.as_deref(), Some("c1"));
        assert_eq!(r.person.email.as_deref(), Some("jane@example.com"));
        let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::TicketCreated,
                EventKind::TicketClosed,
                EventKind::SurveyResponded
            ]
        );
        let closed = &r.events[1];
        assert_eq!(closed.occurred_at.timestamp(), 1736334000);
        assert_eq!(
            closed.id,
            SupportEvent::stable_id(
                &Source::Intercom,
                "conversation:147",
                EventKind::TicketClosed,
                closed.occurred_at
            )
        );
        assert_eq!(r.events[2].properties["score"], 4);

        let orphan = json!({"id": "9", "updated_at": 1736337600, "contacts": {"contacts": []}});
        assert_eq!(
            conversation_to_record(&orphan),
            Err("conversation 9: no contact or author to attribute it to".to_string())
        );
    }

    #[test]
    fn leads_without_email_sync_by_id_and_unsubscribes_are_kept() {
        let lead = json!({"type": "contact", "id": "l1", "role": "lead", "email": null,
            "created_at": 1736330000, "updated_at": 1736340000, "unsubscribed_from_emails": true});
        let r = contact_to_record(&lead).expect("record");
        assert_eq!(r.person.source_id.as_deref(), Some("l1"));
        assert_eq!(r.person.email, None);
        assert_eq!(r.unsubscribed, Some(true));
        assert_eq!(r.events[0].id, "intercom:contact:l1:customer.created");
        assert_eq!(r.observed_at.timestamp(), 1736340000);
    }
}
