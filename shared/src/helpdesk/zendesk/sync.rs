//! Zendesk batch sync: the cursor-based incremental exports of users and tickets, and the
//! satisfaction ratings list.
//!
//! Streams and their bookmarks:
//! - `users`, `tickets`: `GET /api/v2/incremental/{users,tickets}/cursor.json`, `start_time=0`
//!   on a first or full run, else `cursor=`. The bookmark is Zendesk's own `after_cursor`,
//!   stored with every page (`bookmark_now`) and kept at `end_of_stream` too: the next run
//!   resumes from it. It is never derived from the clock (Airbyte #28173 lost records that way).
//!   `[]` with `end_of_stream: false` is not the end.
//! - `satisfaction_ratings`: `GET /api/v2/satisfaction_ratings` with cursor pagination
//!   (`page[size]`, `page[after]`, `meta.has_more`/`meta.after_cursor`) and `start_time`.
//!   Scores arrive after the survey is offered, so the bookmark is a watermark a week before the
//!   run started (unix seconds, stored when the run completes): every run re-reads the last 7
//!   days.
//!
//! Exports are limited to 10 requests per minute on top of the account limit: export requests
//! take a slot from both limiters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Duration as TimeDelta;
use serde::Deserialize;
use serde_json::Value;

use super::org_changes::{self, Progress};
use super::records::{TicketMetrics, rating_record, ticket_record, user_record};
use crate::helpdesk::api::{CACHE_CAPACITY, CACHE_TTL, Cache};
use crate::helpdesk::zendesk::auth::{ZendeskAuth, ZendeskAuthError, ZendeskCredentials};
use crate::helpdesk::zendesk::organizations::{self, SHOW_MANY};
use crate::helpdesk::zendesk::webhook::text;
use crate::http::StatusCode;
use crate::model::{Record, Source};
use crate::sync::limiter::{Limiter, Rate};
use crate::sync::readers::{Api, CallError, RetryPolicy, rejection, url_with_query};
use crate::sync::{FetchError, Page, PageRequest, SourceReader};

use super::STREAMS;

/// Largest `per_page` asked of the exports (Zendesk documents no maximum; 1,000 is what other
/// connectors allow).
pub const MAX_EXPORT_PAGE: u32 = 1000;
/// Largest `page[size]` of cursor-paginated lists.
pub const MAX_LIST_PAGE: u32 = 100;
/// How far back every satisfaction-ratings run re-reads.
pub const RATINGS_LOOKBACK: TimeDelta = TimeDelta::days(7);

/// Reads a Zendesk account, authenticated by a [`ZendeskAuth`]: an OAuth bearer token (renewed
/// when it expires, and once after a 401), or the legacy Basic `{email}/token:{api_token}`.
#[derive(Debug, Clone)]
pub struct ZendeskReader {
    api: Api,
    /// The incremental-export limit (10 per minute), taken before the account limit.
    exports: Arc<Limiter>,
    auth: ZendeskAuth,
    /// Whether agents and admins are synced with the end users (`ZENDESK_SYNC_STAFF`).
    staff: bool,
    /// Organizations by id, as read (`None`: none such).
    organizations: Arc<Cache<String, Option<Value>>>,
    /// The ticket export's `support_type_scope` (`all`, `agent`, `ai_agent`).
    scope: String,
}

/// The Zendesk roles of the people who answer tickets rather than raise them.
const STAFF_ROLES: [&str; 2] = ["agent", "admin"];

/// Whether a Zendesk user is an agent or an admin (`role`), not a customer.
pub fn is_staff(user: &Value) -> bool {
    text(user.get("role")).is_some_and(|r| STAFF_ROLES.contains(&r.to_ascii_lowercase().as_str()))
}

impl ZendeskReader {
    /// A reader of the account at `base_url` (`https://acme.zendesk.com`) with the legacy
    /// email + API token; [`ZendeskReader::from_auth`] takes any credentials.
    pub fn new(client: reqwest::Client, base_url: &str, email: &str, api_token: &str) -> Self {
        let credentials = ZendeskCredentials::ApiToken {
            email: email.to_string(),
            api_token: api_token.to_string(),
        };
        Self::from_auth(client, ZendeskAuth::new(base_url, credentials))
    }

    /// A reader of the account `auth` is for, with the default rates
    /// ([`Rate::zendesk_exports`], [`Rate::zendesk_account`]) and [`RetryPolicy`].
    pub fn from_auth(client: reqwest::Client, auth: ZendeskAuth) -> Self {
        ZendeskReader {
            api: Api::new(
                Source::Zendesk,
                client,
                Limiter::new("zendesk", Rate::zendesk_account()),
            ),
            exports: Arc::new(Limiter::new("zendesk-exports", Rate::zendesk_exports())),
            auth,
            staff: false,
            organizations: Arc::new(Cache::new(CACHE_TTL, CACHE_CAPACITY)),
            scope: "all".into(),
        }
    }

    /// Which tickets the export reads: `all` (by default, AI agents' tickets too), `agent` or
    /// `ai_agent` (Zendesk's `support_type_scope`).
    pub fn with_support_type_scope(mut self, scope: &str) -> Self {
        self.scope = scope.to_string();
        self
    }

    /// Also syncs agents and admins as contacts (by default only end users are: the people
    /// who answer tickets are not the customers marketing writes to).
    pub fn with_staff(mut self, staff: bool) -> Self {
        self.staff = staff;
        self
    }

    /// Other rates (tests, benchmarks, plans with higher limits).
    pub fn with_rates(self, exports: Rate, account: Rate) -> Self {
        self.with_limiters(
            Arc::new(Limiter::new("zendesk-exports", exports)),
            Arc::new(Limiter::new("zendesk", account)),
        )
    }

    /// Shares limiters with other users of the same account.
    pub fn with_limiters(mut self, exports: Arc<Limiter>, account: Arc<Limiter>) -> Self {
        self.exports = exports;
        self.api.limiter = account;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api.retry = retry;
        self
    }

    /// The account limiter.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.api.limiter
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        export: bool,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, FetchError> {
        self.fetch(export, path, path, query).await?.ok_or_else(|| {
            FetchError::Rejected(rejection(&Source::Zendesk, StatusCode::NOT_FOUND, path))
        })
    }

    /// [`Self::get`] of one object: `None` when Zendesk answers 404. `shown` names the endpoint
    /// in errors and logs (no ids).
    async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        export: bool,
        path: &str,
        shown: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, FetchError> {
        let path_shown = shown;
        let url = url_with_query(&Source::Zendesk, self.auth.base_url(), path, query)?;
        let lane = export.then_some(self.exports.as_ref());
        let mut authorization = self.auth.authorization(&self.api.client).await?;
        let mut renewed = false;
        loop {
            let answer = self
                .api
                .send(lane, path_shown, |client| {
                    authorization
                        .apply(client.get(url.clone()))
                        .header(reqwest::header::ACCEPT, "application/json")
                })
                .await;
            match answer {
                Ok(value) => return Ok(Some(value)),
                Err(CallError::Failed(err)) => return Err(err),
                Err(CallError::NotFound) => return Ok(None),
                Err(CallError::Unauthorized) => {
                    // An expired or revoked OAuth token: one new token, one more try.
                    if !renewed
                        && let Some(next) =
                            self.auth.renew(&self.api.client, &authorization).await?
                    {
                        authorization = next;
                        renewed = true;
                        continue;
                    }
                    return Err(FetchError::Rejected(format!(
                        "{} answered HTTP {} to {path_shown}: {}",
                        Source::Zendesk,
                        StatusCode::UNAUTHORIZED,
                        self.auth.unauthorized_hint()
                    )));
                }
            }
        }
    }

    /// One page of an incremental cursor export.
    async fn export_page(
        &self,
        resource: &str,
        request: &PageRequest,
        include: Option<&str>,
    ) -> Result<(ExportPage, Option<String>), FetchError> {
        // This run's cursor, else the previous run's after_cursor, else the run's `since` or
        // the very beginning.
        let resume = request.cursor.clone().or_else(|| {
            request
                .bookmark
                .clone()
                .filter(|_| !request.full && request.since.is_none())
        });
        let mut query = vec![(
            "per_page",
            request.page_size.clamp(1, MAX_EXPORT_PAGE).to_string(),
        )];
        match &resume {
            Some(cursor) => query.push(("cursor", cursor.clone())),
            None => {
                let start = request.since.map_or(0, |t| t.timestamp().max(0));
                query.push(("start_time", start.to_string()));
            }
        }
        if let Some(include) = include {
            query.push(("include", include.to_string()));
        }
        if resource == "tickets" {
            query.push(("support_type_scope", self.scope.clone()));
        }
        let path = format!("/api/v2/incremental/{resource}/cursor.json");
        let page = self.get(true, &path, &query).await?;
        Ok((page, resume))
    }

    async fn users(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let (export, resume) = self.export_page("users", request, None).await?;
        let mut page = export.paging(resume);
        page.read = export.users.len() as u64;
        for user in &export.users {
            if !self.staff && is_staff(user) {
                continue;
            }
            match user_record(user) {
                Ok(record) => page.records.push(record),
                Err(reason) => page.skipped.push(reason),
            }
        }
        self.attach_organizations(&mut page.records).await;
        Ok(page)
    }

    /// Puts each user's organization into its profile, reading those not cached yet with
    /// `show_many`, a hundred per call. When they cannot be read, the page's users are written
    /// without them (logged), as a look-up would.
    async fn attach_organizations(&self, records: &mut [Record]) {
        let wanted = organizations::wanted(records, &self.organizations);
        for ids in wanted.chunks(SHOW_MANY) {
            let query = [("ids", ids.join(","))];
            let path = "/api/v2/organizations/show_many.json";
            match self.get::<OrganizationsPage>(false, path, &query).await {
                Ok(found) => organizations::keep(ids, found.organizations, &self.organizations),
                Err(e) => {
                    tracing::warn!(error = %e, organizations = wanted.len(),
                        "zendesk organizations unavailable; users on this page are written without them");
                    break;
                }
            }
        }
        organizations::attach(records, &self.organizations);
    }

    async fn tickets(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let (export, resume) = self
            .export_page("tickets", request, Some("users,metric_sets"))
            .await?;
        let mut page = export.paging(resume);
        page.read = export.tickets.len() as u64;
        let users: HashMap<String, &Value> = export
            .users
            .iter()
            .filter_map(|u| Some((text(u.get("id"))?, u)))
            .collect();
        let metrics: HashMap<String, TicketMetrics> = export
            .metric_sets
            .iter()
            .filter_map(|m| Some((text(m.get("ticket_id"))?, TicketMetrics::of(m))))
            .collect();
        for ticket in &export.tickets {
            match ticket_record(ticket, &users, &metrics) {
                Ok(Some(record)) => page.records.push(record),
                Ok(None) => {}
                Err(reason) => page.skipped.push(reason),
            }
        }
        self.attach_organizations(&mut page.records).await;
        Ok(page)
    }

    /// One page of the `organizations` stream ([`org_changes`]).
    async fn organization_changes(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let Some(mut progress) = Progress::of(request)? else {
            return Ok(org_changes::first_run(request));
        };
        if progress.orgs.is_empty() {
            // The next export page: its organizations, fresh, replace what the cache holds.
            let query = [("start_time", progress.start.to_string())];
            let path = "/api/v2/incremental/organizations.json";
            let export: OrganizationExport = self.get(true, path, &query).await?;
            for org in &export.organizations {
                if let Some(id) = text(org.get("id")) {
                    let live = org.get("deleted_at").is_none_or(Value::is_null);
                    self.organizations
                        .put(id.clone(), Some(org.clone()).filter(|_| live));
                    if live {
                        progress.orgs.push(id);
                    }
                }
            }
            let next = export.end_time.unwrap_or(progress.start);
            // An export that does not move on (no `end_time`, or the same one) ends the run
            // rather than asking for the same page again; the next run starts there.
            progress.exported = export.end_of_stream || next <= progress.start;
            progress.start = next.max(progress.start);
            return Ok(progress.page(export.organizations.len() as u64, vec![], vec![]));
        }
        // The next page of the first organization's users.
        let org = progress.orgs[0].clone();
        let mut query = vec![("page[size]", MAX_LIST_PAGE.to_string())];
        if let Some(after) = &progress.users {
            query.push(("page[after]", after.clone()));
        }
        let path = format!("/api/v2/organizations/{org}/users.json");
        let shown = "/api/v2/organizations/{id}/users.json";
        let users: Option<UsersPage> = self.fetch(false, &path, shown, &query).await?;
        let users = users.unwrap_or_default();
        let (mut records, mut skipped) = (Vec::new(), Vec::new());
        for user in users.users.iter().filter(|u| self.staff || !is_staff(u)) {
            match user_record(user) {
                Ok(record) => records.push(record),
                Err(reason) => skipped.push(reason),
            }
        }
        self.attach_organizations(&mut records).await;
        let changed = self
            .organizations
            .get(&org)
            .flatten()
            .and_then(|o| crate::mapping::parse_time(o.get("updated_at")?));
        for record in &mut records {
            record.observed_no_earlier_than(changed);
        }
        match users
            .meta
            .after_cursor
            .filter(|c| users.meta.has_more && !c.is_empty())
        {
            Some(after) => progress.users = Some(after),
            None => {
                progress.orgs.remove(0);
                progress.users = None;
            }
        }
        Ok(progress.page(users.users.len() as u64, records, skipped))
    }

    async fn satisfaction_ratings(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let start_time = match request.since {
            Some(since) => since.timestamp().max(0),
            None => request
                .bookmark
                .as_deref()
                .filter(|_| !request.full)
                .and_then(|b| b.trim().parse::<i64>().ok())
                .unwrap_or(0),
        };
        let mut query = vec![
            (
                "page[size]",
                request.page_size.clamp(1, MAX_LIST_PAGE).to_string(),
            ),
            ("start_time", start_time.to_string()),
        ];
        if let Some(cursor) = &request.cursor {
            query.push(("page[after]", cursor.clone()));
        }
        let list: RatingsPage = self
            .get(false, "/api/v2/satisfaction_ratings", &query)
            .await?;
        let mut page = Page {
            read: list.satisfaction_ratings.len() as u64,
            next_cursor: list
                .meta
                .after_cursor
                .filter(|_| list.meta.has_more)
                .filter(|c| !c.is_empty()),
            bookmark: Some(
                (request.run_started_at - RATINGS_LOOKBACK)
                    .timestamp()
                    .to_string(),
            ),
            bookmark_now: false,
            ..Default::default()
        };
        for rating in &list.satisfaction_ratings {
            match rating_record(rating) {
                Ok(Some(record)) => page.records.push(record),
                Ok(None) => {}
                Err(reason) => page.skipped.push(reason),
            }
        }
        Ok(page)
    }
}

#[async_trait]
impl SourceReader for ZendeskReader {
    fn account_limiter(&self) -> Option<&std::sync::Arc<Limiter>> {
        Some(&self.api.limiter)
    }

    fn lane_limiters(&self) -> Vec<(&'static str, &std::sync::Arc<Limiter>)> {
        vec![("exports", &self.exports)]
    }

    fn source(&self) -> Source {
        Source::Zendesk
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, FetchError> {
        match request.stream.as_str() {
            "users" => self.users(request).await,
            "tickets" => self.tickets(request).await,
            "satisfaction_ratings" => self.satisfaction_ratings(request).await,
            "organizations" => self.organization_changes(request).await,
            other => Err(FetchError::UnknownStream(other.to_string())),
        }
    }
}

/// An incremental export page (`users` only, or `tickets` with sideloads).
#[derive(Debug, Deserialize)]
struct ExportPage {
    #[serde(default)]
    users: Vec<Value>,
    #[serde(default)]
    tickets: Vec<Value>,
    #[serde(default)]
    metric_sets: Vec<Value>,
    #[serde(default)]
    after_cursor: Option<String>,
    #[serde(default)]
    end_of_stream: bool,
}

impl ExportPage {
    /// Next cursor and bookmark. `resume` is the cursor this page was read from.
    fn paging(&self, resume: Option<String>) -> Page {
        let after = self.after_cursor.clone().filter(|c| !c.is_empty());
        if after.is_none() && !self.end_of_stream {
            // Nothing to continue from: stop this run; the next one resumes where this began.
            tracing::warn!("Zendesk export page without after_cursor before end_of_stream");
        }
        Page {
            next_cursor: after.clone().filter(|_| !self.end_of_stream),
            // The after_cursor stays valid at end_of_stream: it is where the next run resumes.
            bookmark: after.or(resume),
            bookmark_now: true,
            ..Default::default()
        }
    }
}

/// A page of the time-based organization export.
#[derive(Debug, Deserialize)]
struct OrganizationExport {
    #[serde(default)]
    organizations: Vec<Value>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    end_of_stream: bool,
}

/// A cursor page of an organization's users.
#[derive(Debug, Default, Deserialize)]
struct UsersPage {
    #[serde(default)]
    users: Vec<Value>,
    #[serde(default)]
    meta: ListMeta,
}

/// `show_many` of organizations.
#[derive(Debug, Deserialize)]
struct OrganizationsPage {
    #[serde(default)]
    organizations: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct RatingsPage {
    #[serde(default)]
    satisfaction_ratings: Vec<Value>,
    #[serde(default)]
    meta: ListMeta,
}

#[derive(Debug, Default, Deserialize)]
struct ListMeta {
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    after_cursor: Option<String>,
}

impl From<ZendeskAuthError> for FetchError {
    fn from(err: ZendeskAuthError) -> Self {
        match err {
            ZendeskAuthError::RateLimited(wait) => {
                FetchError::RateLimited(wait.unwrap_or(Duration::from_secs(60)))
            }
            ZendeskAuthError::Unavailable(_) => FetchError::Transient(err.to_string()),
            ZendeskAuthError::Refused { .. } | ZendeskAuthError::WrongEndpoint(_) => {
                FetchError::Rejected(err.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpdesk::zendesk::webhook::time;
    use crate::model::{EventKind, SupportEvent};
    use serde_json::json;

    #[test]
    fn closed_tickets_close_at_the_solve_time() {
        let ticket = json!({"id": 5158, "status": "closed", "requester_id": 7,
            "created_at": "2025-01-08T10:02:41Z", "updated_at": "2025-01-12T10:00:00Z",
            "subject": "Refund", "priority": "low", "via": {"channel": "web"}, "tags": ["vip"]});
        let metric_set = json!({"ticket_id": 5158, "solved_at": "2025-01-08T11:00:00Z",
            "reply_time_in_minutes": {"calendar": 12, "business": 10},
            "full_resolution_time_in_minutes": {"calendar": 58, "business": 40}});
        let solved = time(Some(&json!("2025-01-08T11:00:00Z"))).expect("time");
        let metrics = HashMap::from([("5158".to_string(), TicketMetrics::of(&metric_set))]);
        let record = ticket_record(&ticket, &HashMap::new(), &metrics)
            .expect("ok")
            .expect("record");
        assert!(record.person.needs_lookup());
        assert_eq!(record.tags_added, vec!["vip".to_string()]);
        assert_eq!(record.events[0].properties["first_reply_minutes"], 12);
        let closed = &record.events[1];
        assert_eq!(closed.kind, EventKind::TicketClosed);
        assert_eq!(closed.occurred_at, solved);
        assert_eq!(closed.properties["resolution_time"], 58);
        assert_eq!(closed.channel.as_deref(), Some("web"));
        assert_eq!(
            closed.id,
            SupportEvent::stable_id(
                &Source::Zendesk,
                "ticket:5158",
                EventKind::TicketClosed,
                solved
            )
        );
        // Without the metric set, updated_at is the best we know.
        let record = ticket_record(&ticket, &HashMap::new(), &HashMap::new())
            .expect("ok")
            .expect("record");
        assert_eq!(
            record.events[1].occurred_at.to_rfc3339(),
            "2025-01-12T10:00:00+00:00"
        );
    }

    #[test]
    fn ratings_become_survey_events() {
        let rating = json!({"id": 35436, "score": "good", "comment": "Thanks!", "ticket_id": 42,
            "requester_id": 7, "created_at": "2025-01-08T10:00:00Z",
            "updated_at": "2025-01-09T10:00:00Z"});
        let r = rating_record(&rating).expect("ok").expect("record");
        assert_eq!(r.person.source_id.as_deref(), Some("7"));
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::SurveyResponded);
        assert_eq!(e.properties["score"], "good");
        assert_eq!(e.properties["remark"], "Thanks!");
        assert_eq!(e.ticket_id.as_deref(), Some("42"));
        assert_eq!(
            e.id,
            "zendesk:ticket:42:satisfaction_survey.responded:1736416800"
        );

        let offered = json!({"id": 1, "score": "offered", "ticket_id": 42, "requester_id": 7,
            "created_at": "2025-01-08T10:00:00Z", "updated_at": "2025-01-08T10:00:00Z"});
        let r = rating_record(&offered).expect("ok").expect("record");
        assert_eq!(r.events[0].kind, EventKind::SurveySent);
        assert!(r.events[0].properties.is_empty());

        let unoffered = json!({"id": 2, "score": "unoffered", "requester_id": 7});
        assert_eq!(rating_record(&unoffered), Ok(None));
        let nobody = json!({"id": 3, "score": "bad", "created_at": "2025-01-08T10:00:00Z"});
        assert_eq!(
            rating_record(&nobody),
            Err("satisfaction rating 3: no requester_id".to_string())
        );
    }
}
