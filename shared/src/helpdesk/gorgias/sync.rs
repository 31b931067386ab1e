//! Gorgias batch sync.
//!
//! Gorgias lists have no date filter, only cursor pagination (`cursor`, `limit` ≤ 100,
//! `meta.next_cursor`) and an order. So:
//! - `customers` and `tickets` are read `updated_datetime:desc`, newest first, and a run stops at
//!   the first record updated before the bookmark minus [`LOOKBACK`] (records older than that on
//!   the last page are dropped; they still count as read). A first or full run reads to the end.
//! - `satisfaction_surveys` can only be ordered by `created_datetime`, and scores arrive after
//!   the survey is created, so every run re-reads the surveys created in the last
//!   [`SURVEY_WINDOW`] (or since the previous run, if that is longer ago).
//!
//! The bookmark of every stream is the time the run started, as RFC 3339 UTC
//! (`2025-01-08T10:00:00Z`), stored when the run completes: records updated while the run was
//! paging (which jump to the front of the list) are read by the next run.

use async_trait::async_trait;
use chrono::{DateTime, Duration as TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::helpdesk::gorgias::webhook::{
    clean, person_from_customer, survey_score, tags, text, time,
};
use crate::model::{EventKind, Person, Record, Source, SupportEvent};
use crate::sync::limiter::{Limiter, Rate};
use crate::sync::readers::{Api, RetryPolicy};
use crate::sync::{FetchError, Page, PageRequest, SourceReader};

use super::STREAMS;
use super::api::{GorgiasApi, ListPage, new_event};
pub use super::api::{LOOKBACK, MAX_PAGE};
use super::events::{self, NameCache};
use super::responses::{self, ReplyCache};
/// How far back every run re-reads satisfaction surveys for late scores.
pub const SURVEY_WINDOW: TimeDelta = TimeDelta::days(14);

/// Reads a Gorgias account. Auth: Basic `email:api_key`.
#[derive(Debug, Clone)]
pub struct GorgiasReader {
    http: GorgiasApi,
    /// Macro and rule names by `(kind, id)`, for events that carry only the id.
    names: NameCache,
    /// First replies already read, by ticket id.
    replies: ReplyCache,
    /// Whether tickets' tags are read (`sync.tags`, on unless switched off).
    ticket_tags: bool,
}

impl GorgiasReader {
    /// A reader of the account at `base_url` (`https://acme.gorgias.com`), at [`Rate::gorgias`]
    /// with the default [`RetryPolicy`].
    pub fn new(client: reqwest::Client, base_url: &str, email: &str, api_key: &str) -> Self {
        GorgiasReader {
            http: GorgiasApi {
                api: Api::new(
                    Source::Gorgias,
                    client,
                    Limiter::new("gorgias", Rate::gorgias()),
                ),
                base: base_url.trim_end_matches('/').to_string(),
                email: email.to_string(),
                api_key: api_key.to_string(),
            },
            names: NameCache::default(),
            replies: ReplyCache::default(),
            ticket_tags: true,
        }
    }

    /// Whether tickets' tags are read (`sync.tags`).
    pub fn with_ticket_tags(mut self, on: bool) -> Self {
        self.ticket_tags = on;
        self
    }

    /// Another rate (tests, benchmarks, OAuth apps and Enterprise accounts).
    pub fn with_rate(self, rate: Rate) -> Self {
        self.with_limiter(std::sync::Arc::new(Limiter::new("gorgias", rate)))
    }

    /// Shares the limiter with other users of the same account.
    pub fn with_limiter(mut self, limiter: std::sync::Arc<Limiter>) -> Self {
        self.http.api.limiter = limiter;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.http.api.retry = retry;
        self
    }

    pub fn limiter(&self) -> &std::sync::Arc<Limiter> {
        &self.http.api.limiter
    }

    async fn list(
        &self,
        path: &str,
        order_by: &str,
        request: &PageRequest,
    ) -> Result<ListPage, FetchError> {
        let mut query = vec![
            ("limit", request.page_size.clamp(1, MAX_PAGE).to_string()),
            ("order_by", order_by.to_string()),
        ];
        if let Some(cursor) = &request.cursor {
            query.push(("cursor", cursor.clone()));
        }
        self.http.get(path, &query).await
    }

    /// Reads one page newest first, keeping records whose `field` is at or after `stop_before`
    /// and ending the run at the first older one.
    async fn read_desc(
        &self,
        path: &str,
        field: &str,
        stop_before: Option<DateTime<Utc>>,
        request: &PageRequest,
        mut to_record: impl FnMut(&Value) -> Result<Option<Record>, String>,
    ) -> Result<Page, FetchError> {
        let list = self.list(path, &format!("{field}:desc"), request).await?;
        let mut page = list.page(request);
        for item in &list.data {
            if let (Some(stop), Some(at)) = (stop_before, time(item.get(field)))
                && at < stop
            {
                // Everything after this one is older still.
                page.next_cursor = None;
                continue;
            }
            match to_record(item) {
                Ok(Some(record)) => page.records.push(record),
                Ok(None) => {}
                Err(reason) => page.skipped.push(reason),
            }
        }
        Ok(page)
    }
}

#[async_trait]
impl SourceReader for GorgiasReader {
    fn account_limiter(&self) -> Option<&std::sync::Arc<Limiter>> {
        Some(&self.http.api.limiter)
    }

    fn source(&self) -> Source {
        Source::Gorgias
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let previous = previous_run(request);
        match request.stream.as_str() {
            "customers" => {
                let stop = previous.map(|b| b - LOOKBACK);
                self.read_desc(
                    "/api/customers",
                    "updated_datetime",
                    stop,
                    request,
                    customer_record,
                )
                .await
            }
            "tickets" => {
                let stop = previous.map(|b| b - LOOKBACK);
                // Incremental runs read the first reply of recent tickets (see `responses`).
                let recent = previous.map(|_| request.run_started_at - responses::WINDOW);
                let mut replies = Vec::new();
                let mut page = self
                    .read_desc("/api/tickets", "updated_datetime", stop, request, |t| {
                        if let Some(id) =
                            recent.and_then(|since| responses::worth_reading(t, since))
                        {
                            replies.push(id);
                        }
                        ticket_record(t)
                    })
                    .await?;
                responses::add_first_replies(&self.http, &self.replies, &mut page, replies).await?;
                if !self.ticket_tags {
                    for r in &mut page.records {
                        (r.tags_added, r.tags_now, r.tag_holder) = (Vec::new(), None, None);
                    }
                }
                Ok(page)
            }
            "satisfaction_surveys" => {
                // The survey window, or further back if the previous run is older than that.
                let stop =
                    previous.map(|b| (b - LOOKBACK).min(request.run_started_at - SURVEY_WINDOW));
                self.read_desc(
                    "/api/satisfaction-surveys",
                    "created_datetime",
                    stop,
                    request,
                    survey_record,
                )
                .await
            }
            "events" => events::read_page(&self.http, &self.names, previous, request).await,
            other => Err(FetchError::UnknownStream(other.to_string())),
        }
    }
}

/// Where this run reads from: the run's `since`, else when the previous completed run started;
/// `None` on a first or full run, or when the bookmark cannot be read (then everything is read
/// again, which is safe).
fn previous_run(request: &PageRequest) -> Option<DateTime<Utc>> {
    if request.since.is_some() {
        return request.since;
    }
    let bookmark = request.bookmark.as_deref().filter(|_| !request.full)?;
    let parsed = crate::mapping::parse_time(&Value::from(bookmark));
    if parsed.is_none() {
        tracing::warn!(bookmark, "unreadable Gorgias bookmark; reading everything");
    }
    parsed
}

/// A customer with its profile and a `customer.created` event.
fn customer_record(customer: &Value) -> Result<Option<Record>, String> {
    let profile = clean(customer);
    let person = person_from_customer(&profile);
    let Some(id) = person.source_id.clone() else {
        return Err("customer without an id".to_string());
    };
    let created = time(customer.get("created_datetime"));
    let Some(observed_at) = time(customer.get("updated_datetime")).or(created) else {
        return Err(format!("customer {id}: no updated_datetime"));
    };
    let events = created
        .map(|at| new_event(&format!("customer:{id}"), EventKind::CustomerCreated, at))
        .into_iter()
        .collect();
    Ok(Some(Record {
        person,
        observed_at,
        profile: Some(profile.into()),
        events,
        ..Default::default()
    }))
}

/// A ticket as a record for its customer: created, and closed when closed (stable ids of the
/// webhook parser: `ticket:<id>`). Spam and trashed tickets are not synced.
fn ticket_record(ticket: &Value) -> Result<Option<Record>, String> {
    let trashed = ticket.get("trashed_datetime").is_some_and(|t| !t.is_null());
    if ticket.get("spam") == Some(&Value::Bool(true)) || trashed {
        return Ok(None);
    }
    let id = text(ticket.get("id")).ok_or("ticket without an id")?;
    let customer = ticket
        .get("customer")
        .filter(|c| c.is_object())
        .map(clean)
        .unwrap_or(Value::Null);
    let person = person_from_customer(&customer);
    if person.source_id.is_none() && person.email.is_none() {
        return Err(format!("ticket {id}: customer unknown (no id or email)"));
    }
    let created = time(ticket.get("created_datetime"));
    let Some(updated) = time(ticket.get("updated_datetime")).or(created) else {
        return Err(format!("ticket {id}: no updated_datetime"));
    };
    let status = text(ticket.get("status")).map(|s| s.to_ascii_lowercase());
    let mut properties = Map::new();
    for (key, value) in [
        ("subject", text(ticket.get("subject"))),
        ("status", status.clone()),
        (
            "agent_name",
            ticket
                .get("assignee_user")
                .and_then(|a| text(a.get("name"))),
        ),
    ] {
        if let Some(v) = value {
            properties.insert(key.into(), Value::String(v));
        }
    }
    let channel = text(ticket.get("channel")).map(|c| c.to_ascii_lowercase());
    let subject = format!("ticket:{id}");
    let ticket_event = |kind, at| SupportEvent {
        ticket_id: Some(id.clone()),
        channel: channel.clone(),
        properties: properties.clone(),
        ..new_event(&subject, kind, at)
    };
    let mut events = Vec::new();
    if let Some(at) = created {
        events.push(ticket_event(EventKind::TicketCreated, at));
    }
    if status.as_deref() == Some("closed") {
        let at = time(ticket.get("closed_datetime")).unwrap_or(updated);
        events.push(ticket_event(EventKind::TicketClosed, at));
    }
    Ok(Some(Record {
        person,
        observed_at: updated,
        profile: Some(customer.into()),
        tags_added: tags(ticket.get("tags")),
        tags_now: Some(tags(ticket.get("tags"))),
        tag_holder: Some(subject.clone()),
        events,
        ..Default::default()
    }))
}

/// A survey as a record for its customer (by id): a response once scored, else a sent survey
/// once sent; nothing before it is sent.
fn survey_record(survey: &Value) -> Result<Option<Record>, String> {
    let id = text(survey.get("id")).unwrap_or_else(|| "?".to_string());
    let created = time(survey.get("created_datetime"));
    let score = survey_score(survey.get("score"));
    let (kind, at) = match (score, time(survey.get("sent_datetime"))) {
        (Some(_), _) => (
            EventKind::SurveyResponded,
            time(survey.get("scored_datetime")).or(created),
        ),
        (None, Some(sent)) => (EventKind::SurveySent, Some(sent)),
        (None, None) => return Ok(None),
    };
    let Some(customer) = text(survey.get("customer_id")) else {
        return Err(format!("satisfaction survey {id}: no customer_id"));
    };
    let Some(at) = at else {
        return Err(format!("satisfaction survey {id}: no scored_datetime"));
    };
    let ticket_id = text(survey.get("ticket_id"));
    // The webhook reads the survey off its ticket: same subject, same id.
    let subject = ticket_id.as_ref().map_or_else(
        || format!("satisfaction_survey:{id}"),
        |t| format!("ticket:{t}"),
    );
    let mut event = new_event(&subject, kind, at);
    event.ticket_id = ticket_id;
    if let Some(score) = score {
        event.properties.insert("score".into(), Value::from(score));
        if let Some(remark) = text(survey.get("body_text")) {
            event
                .properties
                .insert("remark".into(), Value::from(remark));
        }
    }
    Ok(Some(Record {
        person: Person {
            source_id: Some(customer),
            ..Default::default()
        },
        observed_at: at,
        events: vec![event],
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str = include_str!("../../../tests/fixtures/gorgias/ticket-object.json");

    #[test]
    fn a_run_from_a_date_reads_from_it_whatever_the_bookmark() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        let mut request = PageRequest {
            stream: "tickets".into(),
            cursor: None,
            bookmark: Some("2026-12-01T00:00:00Z".into()),
            full: false,
            since: None,
            run_started_at: at("2026-12-07T00:00:00Z"),
            page_size: 100,
        };
        assert_eq!(previous_run(&request), Some(at("2026-12-01T00:00:00Z")));
        request.since = Some(at("2026-11-01T00:00:00Z"));
        assert_eq!(previous_run(&request), Some(at("2026-11-01T00:00:00Z")));
        request.since = None;
        request.full = true;
        assert_eq!(previous_run(&request), None);
    }

    #[test]
    fn an_api_ticket_matches_the_webhook_ids() {
        let ticket: Value = serde_json::from_str(TICKET).expect("fixture");
        let r = ticket_record(&ticket).expect("ok").expect("record");
        assert_eq!(r.person.source_id.as_deref(), Some("51234567"));
        assert_eq!(r.person.phone.as_deref(), Some("+1 415 555 0177"));
        assert_eq!(
            r.tags_added,
            vec!["vip".to_string(), "shipping".to_string()]
        );
        let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::TicketCreated, EventKind::TicketClosed]
        );
        // What the webhook parser makes of the same ticket.
        let body = serde_json::to_vec(&ticket).expect("json");
        let crate::helpdesk::parse::Parsed::Accepted(delivery) =
            crate::helpdesk::gorgias::webhook::parse_webhook(&ticket, &body, Utc::now())
                .expect("parsed")
        else {
            panic!("accepted")
        };
        let webhook_closed = &delivery.records[0].events[0];
        assert_eq!(webhook_closed.kind, EventKind::TicketClosed);
        assert_eq!(r.events[1].id, webhook_closed.id);
        assert_eq!(r.events[1].channel, webhook_closed.channel);
        assert_eq!(r.events[1].properties, webhook_closed.properties);

        let spam = serde_json::json!({"id": 1, "spam": true, "customer": {"id": 2}});
        assert_eq!(ticket_record(&spam), Ok(None));
        let anonymous = serde_json::json!({"id": 1, "customer": {"name": "?"}});
        assert_eq!(
            ticket_record(&anonymous),
            Err("ticket 1: customer unknown (no id or email)".to_string())
        );
    }

    #[test]
    fn surveys_become_responses_or_sent_surveys() {
        let scored = serde_json::json!({"id": 7001, "ticket_id": 98765, "customer_id": 51234567,
            "score": 5, "body_text": "Great", "created_datetime": "2025-01-08T11:30:05+00:00",
            "sent_datetime": "2025-01-08T12:30:00+00:00", "scored_datetime": "2025-01-09T08:00:00+00:00"});
        let r = survey_record(&scored).expect("ok").expect("record");
        assert!(r.person.needs_lookup());
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::SurveyResponded);
        assert_eq!(e.properties["score"], 5);
        assert_eq!(
            e.id,
            "gorgias:ticket:98765:satisfaction_survey.responded:1736409600"
        );

        let sent = serde_json::json!({"id": 7002, "ticket_id": 1, "customer_id": 2, "score": null,
            "created_datetime": "2025-01-08T11:30:05+00:00", "sent_datetime": "2025-01-08T12:30:00+00:00"});
        let r = survey_record(&sent).expect("ok").expect("record");
        assert_eq!(r.events[0].kind, EventKind::SurveySent);

        let pending = serde_json::json!({"id": 7003, "customer_id": 2, "score": null,
            "created_datetime": "2025-01-08T11:30:05+00:00", "sent_datetime": null});
        assert_eq!(survey_record(&pending), Ok(None));
        let nobody = serde_json::json!({"id": 7004, "score": 3,
            "scored_datetime": "2025-01-08T11:30:05+00:00"});
        assert!(survey_record(&nobody).is_err());
    }
}
