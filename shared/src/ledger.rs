//! The per-contact ledger: what deskbridge knows of one Brevo contact, kept in the state table.
//!
//! Two jobs, one record per contact:
//!
//! - **Stale-write guard.** Every mapped attribute is stored with the source time of the
//!   observation that set it (a last-writer-wins map keyed by attribute). An observation older
//!   than the stored one (a sync page read before a newer webhook was applied, a vendor retry
//!   arriving late) never replaces it; the contact written to Brevo is always built from the
//!   ledger, so it carries the newest value known for every attribute.
//! - **Support aggregates.** Tickets and CSAT ratings are kept by their own ids with the times
//!   the helpdesk gave, and merged so that the order and number of deliveries do not matter:
//!   creation times take the earliest, statuses the latest, first replies the smallest, ratings
//!   the latest per ticket. TICKET_COUNT, OPEN_TICKETS, LAST_SUPPORT_DATE/CHANNEL,
//!   AVG_RESPONSE_TIME, CSAT_SCORE and CSAT_RESPONSES are computed from that state, so webhook
//!   and batch sync feed them without double counting, and a late or replayed event never makes
//!   them go back.
//!
//! Every merge here is idempotent, commutative and associative (a join), which is what makes a
//! shuffled, duplicated stream of events end in the same ledger as the ordered stream (tested
//! below). The store writes a ledger with a conditional put on its revision, so two workers
//! updating one contact at once both land.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::{EventKind, Record, Source, SupportEvent};
use crate::tags::TagHolders;

/// Tickets (and ratings) kept one by one per contact; older ones are folded into a count so the
/// item stays far below DynamoDB's 400 KB limit. A folded ticket delivered again would be counted
/// again, which needs a redelivery of a ticket older than the contact's newest thousand.
pub const MAX_TICKETS: usize = 1000;

/// A score at or above this (of 5) is a satisfied customer; Zendesk's `good` counts as 5 and
/// `bad` as 1.
pub const SATISFIED_FROM: f64 = 4.0;

/// The aggregate fields a `field_mapping` can name, with their default attribute.
pub const AGGREGATE_FIELDS: [(&str, &str); 7] = [
    ("nb_tickets", "TICKET_COUNT"),
    ("open_tickets", "OPEN_TICKETS"),
    ("last_ticket_date", "LAST_SUPPORT_DATE"),
    ("last_ticket_channel", "LAST_SUPPORT_CHANNEL"),
    ("avg_response_time", "AVG_RESPONSE_TIME"),
    ("last_satisfaction_score", "CSAT_SCORE"),
    ("satisfaction_count", "CSAT_RESPONSES"),
];

/// Aggregate fields a `field_mapping` can name that are not in the default rules, with the
/// attribute the documentation suggests: `in_support_conversation` is true while the contact has
/// an open ticket or conversation (for automations that pause marketing mail meanwhile);
/// `ai_resolutions` counts the conversations an AI agent (Intercom Fin) resolved, and
/// `last_ai_outcome` is `resolved` or `escalated` by its latest outcome.
pub const OPTIONAL_AGGREGATE_FIELDS: [(&str, &str); 3] = [
    ("in_support_conversation", "IN_SUPPORT_CONVERSATION"),
    ("ai_resolutions", "AI_RESOLUTIONS"),
    ("last_ai_outcome", "LAST_AI_OUTCOME"),
];

/// Whether a field path names an aggregate rather than a helpdesk field.
pub fn is_aggregate(path: &str) -> bool {
    AGGREGATE_FIELDS
        .iter()
        .chain(&OPTIONAL_AGGREGATE_FIELDS)
        .any(|(p, _)| *p == path)
}

/// State-table key of a contact's ledger. The contact key is hashed, so the key itself holds no
/// email address or phone number.
pub fn ledger_key(contact: &str) -> String {
    format!(
        "contact#{}",
        hex::encode(Sha256::digest(contact.as_bytes()))
    )
}

/// An attribute value and the source time of the observation that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub at: DateTime<Utc>,
    pub value: Value,
}

/// What is known of one ticket (or conversation).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ticket {
    /// When it was created (the earliest report wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Its channel, from the earliest report that named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<(DateTime<Utc>, String)>,
    /// Latest status: its time and whether the ticket is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<(DateTime<Utc>, bool)>,
    /// Minutes to the first agent reply (the smallest reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reply_minutes: Option<f64>,
    /// Minutes from creation to resolution, as the helpdesk reported with the latest resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<(DateTime<Utc>, f64)>,
    /// Time of its latest milestone (creation, resolution, reopening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
    /// What an AI agent last did in it: resolved it (`true`) or handed it to a team, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_outcome: Option<(DateTime<Utc>, bool)>,
}

/// A CSAT response: the latest rating given for one ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub at: DateTime<Utc>,
    /// Of 5.
    pub score: f64,
    /// The event id, to order ratings of the same second.
    pub id: String,
}

/// The ledger of one contact.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Mapped attributes, last writer (by source time) wins per attribute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Stamped>,
    /// Tickets by `<source>:<ticket id>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tickets: BTreeMap<String, Ticket>,
    /// Tickets folded away by [`MAX_TICKETS`], still counted.
    #[serde(default)]
    pub folded_tickets: u64,
    /// Ratings by `<source>:<ticket id>` (or the event id of a rating without a ticket).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ratings: BTreeMap<String, Rating>,
    /// Ratings folded away by [`MAX_TICKETS`], still counted.
    #[serde(default)]
    pub folded_ratings: u64,
    /// The rating whose satisfied/dissatisfied list placement was written to Brevo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat_placed: Option<String>,
    /// The person's latest role in the helpdesk (Intercom `user` or `lead`) and when it was
    /// observed: what the leads list follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<(DateTime<Utc>, String)>,
    /// Lists whose membership follows the contact's state ([`Mapping::state_lists`]), by list
    /// id: whether the contact was last written into the list (`true`) or taken off it. The
    /// contact is taken off only a list it was written into, so a contact that never belonged
    /// costs no call.
    ///
    /// [`Mapping::state_lists`]: crate::mapping::Mapping::state_lists
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placed: BTreeMap<i64, bool>,
    /// What carries each tag a `tag_lists` entry maps (the tag lists follow it).
    #[serde(default, skip_serializing_if = "TagHolders::is_empty")]
    pub tags: TagHolders,
    /// When deskbridge first wrote this ledger, which is before its first write of the contact:
    /// a Brevo contact created no earlier was created by deskbridge (see
    /// [`crate::deletions`]). `None` for ledgers written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

/// The support figures of a contact, computed from its ledger.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aggregates {
    pub ticket_count: u64,
    pub open_tickets: u64,
    /// Time and channel of the latest ticket milestone.
    pub last_support: Option<(DateTime<Utc>, Option<String>)>,
    /// Mean minutes to the first agent reply over tickets that have one.
    pub avg_response_minutes: Option<f64>,
    /// The latest rating's score (of 5).
    pub csat_score: Option<f64>,
    pub csat_responses: u64,
    /// Tickets and conversations an AI agent resolved (by its latest outcome in each).
    pub ai_resolved: u64,
    /// The latest AI agent outcome: its time and whether it was a resolution.
    pub last_ai_outcome: Option<(DateTime<Utc>, bool)>,
}

impl Aggregates {
    /// The value of an aggregate field path (see [`AGGREGATE_FIELDS`]); `None` when unknown yet.
    pub fn value(&self, path: &str) -> Option<Value> {
        match path {
            "nb_tickets" => Some(Value::from(self.ticket_count)),
            "open_tickets" => Some(Value::from(self.open_tickets)),
            "last_ticket_date" => self
                .last_support
                .as_ref()
                .map(|(at, _)| Value::String(at.to_rfc3339())),
            "last_ticket_channel" => self
                .last_support
                .as_ref()
                .and_then(|(_, c)| c.clone())
                .map(Value::String),
            "avg_response_time" => self.avg_response_minutes.and_then(rounded),
            "last_satisfaction_score" => self.csat_score.and_then(rounded),
            "satisfaction_count" => Some(Value::from(self.csat_responses)),
            "in_support_conversation" => Some(Value::Bool(self.open_tickets > 0)),
            "ai_resolutions" => Some(Value::from(self.ai_resolved)),
            "last_ai_outcome" => self
                .last_ai_outcome
                .map(|(_, resolved)| Value::from(if resolved { "resolved" } else { "escalated" })),
            _ => None,
        }
    }

    /// Whether the latest rating is a satisfied one (`None`: no rating yet).
    pub fn satisfied(&self) -> Option<bool> {
        self.csat_score.map(|s| s >= SATISFIED_FROM)
    }
}

/// A number with one decimal, as a JSON number.
fn rounded(x: f64) -> Option<Value> {
    serde_json::Number::from_f64((x * 10.0).round() / 10.0).map(Value::Number)
}

/// Later of two stamped values; at the same time, the larger value (so the merge does not
/// depend on the order).
fn later(a: &Stamped, b: &Stamped) -> bool {
    (b.at, b.value.to_string()) > (a.at, a.value.to_string())
}

fn min_opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt<T: PartialOrd + Clone>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y > x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A CSAT score of 5 from an event's `score` property: 1–5 as is, Zendesk's `good`/`bad` as 5/1.
pub fn csat_score(value: &Value) -> Option<f64> {
    let score = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "good" => 5.0,
            "bad" => 1.0,
            other => other.parse().ok()?,
        },
        _ => return None,
    };
    (score.is_finite() && (0.0..=5.0).contains(&score)).then_some(score)
}

/// Minutes from an event property, when it holds a non-negative number.
fn minutes(event: &SupportEvent, key: &str) -> Option<f64> {
    let v = event.properties.get(key)?;
    let m = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (m.is_finite() && m >= 0.0).then_some(m)
}

impl Ticket {
    fn join(&mut self, other: &Ticket) {
        self.created_at = min_opt(self.created_at, other.created_at);
        self.channel = min_opt(self.channel.take(), other.channel.clone());
        self.status = max_opt(self.status, other.status);
        self.first_reply_minutes = min_opt(self.first_reply_minutes, other.first_reply_minutes);
        self.resolution = max_opt(self.resolution, other.resolution);
        self.last_at = max_opt(self.last_at, other.last_at);
        self.ai_outcome = max_opt(self.ai_outcome, other.ai_outcome);
    }

    /// Whether the ticket is open by its latest status (a ticket never reported closed is open).
    fn is_open(&self) -> bool {
        self.status.is_none_or(|(_, open)| open)
    }
}

/// Removes the oldest entries of `map` beyond [`MAX_TICKETS`] (by `age`); returns how many.
fn fold_oldest<T>(map: &mut BTreeMap<String, T>, age: impl Fn(&T) -> Option<DateTime<Utc>>) -> u64 {
    let Some(excess) = map.len().checked_sub(MAX_TICKETS).filter(|e| *e > 0) else {
        return 0;
    };
    let mut by_age: Vec<(Option<DateTime<Utc>>, String)> =
        map.iter().map(|(k, v)| (age(v), k.clone())).collect();
    by_age.sort();
    for (_, key) in by_age.into_iter().take(excess) {
        map.remove(&key);
    }
    excess as u64
}

/// The ticket key of an event: `<source>:<ticket id>`.
fn ticket_key(source: &Source, event: &SupportEvent) -> Option<String> {
    event
        .ticket_id
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| format!("{source}:{t}"))
}

impl Ledger {
    /// Records attributes observed at `at`; returns the names whose stored value is newer (and
    /// so were not taken).
    pub fn observe_attributes(
        &mut self,
        at: DateTime<Utc>,
        attributes: &BTreeMap<String, Value>,
    ) -> Vec<String> {
        let mut stale = Vec::new();
        for (name, value) in attributes {
            let new = Stamped {
                at,
                value: value.clone(),
            };
            match self.attributes.get_mut(name) {
                Some(old) if later(old, &new) => *old = new,
                Some(old) if old.at > at && old.value != new.value => stale.push(name.clone()),
                Some(_) => {}
                None => {
                    self.attributes.insert(name.clone(), new);
                }
            }
        }
        stale
    }

    /// Records the support facts of `events` from `source`.
    pub fn observe_events<'e>(
        &mut self,
        source: &Source,
        events: impl IntoIterator<Item = &'e SupportEvent>,
    ) {
        for event in events {
            self.observe_event(source, event);
        }
        self.fold();
    }

    fn observe_event(&mut self, source: &Source, event: &SupportEvent) {
        let at = event.occurred_at;
        let Some(key) = ticket_key(source, event) else {
            // A rating without a ticket still counts as a response, under its own id.
            if event.kind == EventKind::SurveyResponded {
                self.rate(event.id.clone(), event);
            }
            return;
        };
        let mut fact = Ticket {
            channel: event.channel.clone().map(|c| (at, c)),
            first_reply_minutes: minutes(event, "first_reply_minutes"),
            ..Ticket::default()
        };
        match event.kind {
            EventKind::TicketCreated => {
                fact.created_at = Some(at);
                fact.status = Some((at, true));
                fact.last_at = Some(at);
            }
            EventKind::TicketClosed => {
                fact.status = Some((at, false));
                fact.last_at = Some(at);
                fact.resolution = minutes(event, "resolution_time").map(|m| (at, m));
            }
            EventKind::TicketReopened => {
                fact.status = Some((at, true));
                fact.last_at = Some(at);
            }
            EventKind::SurveyResponded => self.rate(key.clone(), event),
            EventKind::AiResolved => fact.ai_outcome = Some((at, true)),
            EventKind::AiEscalated => fact.ai_outcome = Some((at, false)),
            EventKind::SurveySent
            | EventKind::CustomerCreated
            | EventKind::TicketSnoozed
            | EventKind::TicketUnsnoozed
            | EventKind::MacroApplied
            | EventKind::RuleExecuted
            | EventKind::DataEvent => {}
        }
        self.tickets.entry(key).or_default().join(&fact);
    }

    fn rate(&mut self, key: String, event: &SupportEvent) {
        let Some(score) = event.properties.get("score").and_then(csat_score) else {
            return;
        };
        let new = Rating {
            at: event.occurred_at,
            score,
            id: event.id.clone(),
        };
        match self.ratings.get_mut(&key) {
            Some(old) if (new.at, &new.id) > (old.at, &old.id) => *old = new,
            Some(_) => {}
            None => {
                self.ratings.insert(key, new);
            }
        }
    }

    /// Folds the oldest tickets and ratings beyond [`MAX_TICKETS`] into counts.
    fn fold(&mut self) {
        self.folded_tickets += fold_oldest(&mut self.tickets, |t| t.last_at.or(t.created_at));
        self.folded_ratings += fold_oldest(&mut self.ratings, |r| Some(r.at));
    }

    /// Takes in what another ledger of the same person knows, when that person's contact moved
    /// to this one (an email that appeared or changed): per attribute the newer value, every
    /// ticket and rating this one lacks (of one both know, the one with the later milestone),
    /// the folded counts, the newer role and what carries each tag. The list placements stay this
    /// contact's.
    pub fn absorb(&mut self, other: &Ledger) {
        for (name, theirs) in &other.attributes {
            if self
                .attributes
                .get(name)
                .is_none_or(|mine| mine.at < theirs.at)
            {
                self.attributes.insert(name.clone(), theirs.clone());
            }
        }
        let milestone = |t: &Ticket| t.last_at.or(t.created_at);
        for (id, theirs) in &other.tickets {
            if self
                .tickets
                .get(id)
                .is_none_or(|mine| milestone(mine) < milestone(theirs))
            {
                self.tickets.insert(id.clone(), theirs.clone());
            }
        }
        for (id, theirs) in &other.ratings {
            if self.ratings.get(id).is_none_or(|mine| mine.at < theirs.at) {
                self.ratings.insert(id.clone(), theirs.clone());
            }
        }
        self.folded_tickets += other.folded_tickets;
        self.folded_ratings += other.folded_ratings;
        self.tags.absorb(&other.tags);
        if let Some((at, role)) = &other.role {
            self.observe_role(*at, role);
        }
        self.fold();
    }

    /// Keeps `role` if it is newer than the one known (at the same time, the larger, so that
    /// the order of observations does not matter).
    fn observe_role(&mut self, at: DateTime<Utc>, role: &str) {
        if self
            .role
            .as_ref()
            .is_none_or(|(t, r)| (at, role) > (*t, r.as_str()))
        {
            self.role = Some((at, role.to_string()));
        }
    }

    /// Records everything a record says: its mapped attributes (at its observation time) and
    /// its events, past ones included. Returns the attributes it held that were stale.
    pub fn observe(
        &mut self,
        source: &Source,
        record: &Record,
        attributes: &BTreeMap<String, Value>,
    ) -> Vec<String> {
        let stale = self.observe_attributes(record.observed_at, attributes);
        self.observe_events(source, record.events.iter().chain(&record.past_events));
        if let Some(role) = record
            .profile
            .as_ref()
            .and_then(|p| p.get("role"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            self.observe_role(record.observed_at, role);
        }
        stale
    }

    /// The newest value of every attribute.
    pub fn attribute_values(&self) -> BTreeMap<String, Value> {
        self.attributes
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect()
    }

    /// The support figures.
    pub fn aggregates(&self) -> Aggregates {
        let mut agg = self.aggregates_where(|_| true);
        agg.ticket_count += self.folded_tickets;
        agg.csat_responses += self.folded_ratings;
        agg
    }

    /// The support figures of the tickets and ratings whose keys (`<source>:<ticket>`) `keep`
    /// takes; folded counts are left out.
    pub(crate) fn aggregates_where(&self, keep: impl Fn(&str) -> bool) -> Aggregates {
        let tickets: Vec<&Ticket> = self
            .tickets
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(_, t)| t)
            .collect();
        let mut agg = Aggregates {
            ticket_count: tickets.len() as u64,
            csat_responses: self.ratings.keys().filter(|k| keep(k)).count() as u64,
            ..Aggregates::default()
        };
        let mut replies = Vec::new();
        for ticket in tickets {
            if ticket.is_open() && ticket.status.is_some() {
                agg.open_tickets += 1;
            }
            if let Some(m) = ticket.first_reply_minutes {
                replies.push(m);
            }
            if let Some(outcome) = ticket.ai_outcome {
                agg.ai_resolved += u64::from(outcome.1);
                agg.last_ai_outcome = max_opt(agg.last_ai_outcome, Some(outcome));
            }
            if let Some(at) = ticket.last_at {
                let channel = ticket.channel.as_ref().map(|(_, c)| c.clone());
                let newer = match &agg.last_support {
                    None => true,
                    Some((t, c)) => (at, &channel) > (*t, c),
                };
                if newer {
                    agg.last_support = Some((at, channel));
                }
            }
        }
        if !replies.is_empty() {
            agg.avg_response_minutes = Some(replies.iter().sum::<f64>() / replies.len() as f64);
        }
        agg.csat_score = self
            .ratings
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(_, r)| r)
            .max_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)))
            .map(|r| r.score);
        agg
    }

    /// The id of the latest rating (what the CSAT list placement follows).
    pub fn latest_rating(&self) -> Option<&Rating> {
        self.ratings
            .values()
            .max_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)))
    }

    /// Properties a ticket's resolution event gains from the ledger: `resolution_time` (minutes
    /// from creation, when the helpdesk did not say) and `satisfaction` (the ticket's rating, or
    /// the contact's latest score).
    pub fn resolution_properties(
        &self,
        source: &Source,
        event: &SupportEvent,
    ) -> BTreeMap<&'static str, Value> {
        let mut out = BTreeMap::new();
        let ticket_key = ticket_key(source, event);
        if !event.properties.contains_key("resolution_time")
            && let Some(created) = ticket_key
                .as_ref()
                .and_then(|k| self.tickets.get(k))
                .and_then(|t| t.created_at)
            && event.occurred_at >= created
        {
            let minutes = (event.occurred_at - created).num_seconds() as f64 / 60.0;
            if let Some(v) = rounded(minutes) {
                out.insert("resolution_time", v);
            }
        }
        if !event.properties.contains_key("satisfaction") {
            let score = ticket_key
                .as_ref()
                .and_then(|k| self.ratings.get(k))
                .map(|r| r.score)
                .or(self.aggregates().csat_score);
            if let Some(v) = score.and_then(rounded) {
                out.insert("satisfaction", v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::{Map, json};

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::minutes(i64::from(minute))
    }

    fn event(kind: EventKind, ticket: &str, at: DateTime<Utc>, props: Value) -> SupportEvent {
        let properties: Map<String, Value> = props.as_object().cloned().unwrap_or_default();
        SupportEvent {
            id: SupportEvent::stable_id(&Source::Zendesk, &format!("ticket:{ticket}"), kind, at),
            kind,
            occurred_at: at,
            ticket_id: Some(ticket.to_string()),
            channel: Some("email".into()),
            properties,
        }
    }

    /// A realistic stream: three tickets with replies, a resolution, a reopening, two ratings
    /// of one ticket (the later one counts) and a rating of another.
    fn stream() -> Vec<SupportEvent> {
        use EventKind::*;
        vec![
            event(TicketCreated, "1", t(0), json!({"first_reply_minutes": 30})),
            event(TicketCreated, "2", t(10), json!({})),
            event(TicketClosed, "1", t(60), json!({"first_reply_minutes": 30})),
            event(SurveyResponded, "1", t(70), json!({"score": 2})),
            event(TicketReopened, "1", t(80), json!({})),
            event(TicketClosed, "1", t(24 * 60 + 5), json!({})),
            event(
                SurveyResponded,
                "1",
                t(24 * 60 + 30),
                json!({"score": "good"}),
            ),
            event(
                TicketCreated,
                "3",
                t(2000),
                json!({"first_reply_minutes": 90}),
            ),
            event(SurveyResponded, "2", t(2100), json!({"score": 4})),
            event(
                TicketClosed,
                "2",
                t(2050),
                json!({"first_reply_minutes": 12}),
            ),
            // An AI agent resolved ticket 2 and handed ticket 3 to a team.
            event(AiResolved, "2", t(20), json!({})),
            event(AiEscalated, "3", t(2010), json!({})),
        ]
    }

    fn ledger_of(events: &[SupportEvent]) -> Ledger {
        let mut l = Ledger::default();
        l.observe_events(&Source::Zendesk, events);
        l
    }

    #[test]
    fn aggregates_of_an_ordered_stream() {
        let agg = ledger_of(&stream()).aggregates();
        assert_eq!(agg.ticket_count, 3);
        assert_eq!(agg.open_tickets, 1, "ticket 3 is open, 1 and 2 closed");
        assert_eq!(agg.last_support, Some((t(2050), Some("email".into()))));
        assert_eq!(agg.avg_response_minutes, Some((30.0 + 12.0 + 90.0) / 3.0));
        assert_eq!(
            agg.csat_score,
            Some(4.0),
            "the latest rating is ticket 2's 4"
        );
        assert_eq!(
            agg.csat_responses, 2,
            "ticket 1 rated twice counts as one response"
        );
        assert_eq!(agg.satisfied(), Some(true));
        assert_eq!(agg.ai_resolved, 1);
        assert_eq!(agg.value("ai_resolutions"), Some(json!(1)));
        assert_eq!(agg.value("last_ai_outcome"), Some(json!("escalated")));
        assert_eq!(agg.value("in_support_conversation"), Some(json!(true)));
    }

    /// A small deterministic shuffle (no randomness crate needed for a test).
    fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
        let mut out = items.to_vec();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        for i in (1..out.len()).rev() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = (s >> 33) as usize % (i + 1);
            out.swap(i, j);
        }
        out
    }

    #[test]
    fn a_shuffled_duplicated_stream_ends_where_the_ordered_one_does() {
        let ordered = stream();
        let want = ledger_of(&ordered);
        for seed in 0..500u64 {
            // Every event once, a third of them again, in a random order, delivered in random
            // groups (one record may carry several events).
            let mut deliveries = ordered.clone();
            deliveries.extend(shuffled(&ordered, seed ^ 0xfeed).into_iter().take(4));
            let deliveries = shuffled(&deliveries, seed);
            let mut got = Ledger::default();
            for chunk in deliveries.chunks(1 + (seed as usize % 3)) {
                // Through serde, as the store does between deliveries.
                let text = serde_json::to_string(&got).expect("serializes");
                got = serde_json::from_str(&text).expect("parses");
                got.observe_events(&Source::Zendesk, chunk);
            }
            assert_eq!(got, want, "seed {seed}");
            assert_eq!(got.aggregates(), want.aggregates(), "seed {seed}");
        }
    }

    #[test]
    fn an_older_attribute_never_overwrites_a_newer_one() {
        let mut l = Ledger::default();
        let attrs = |name: &str| BTreeMap::from([("FIRSTNAME".to_string(), json!(name))]);
        assert!(l.observe_attributes(t(10), &attrs("New")).is_empty());
        assert_eq!(
            l.observe_attributes(t(5), &attrs("Old")),
            vec!["FIRSTNAME".to_string()]
        );
        assert_eq!(l.attribute_values()["FIRSTNAME"], "New");
        l.observe_attributes(t(10), &attrs("New"));
        assert_eq!(l.attribute_values()["FIRSTNAME"], "New");
        l.observe_attributes(t(11), &attrs("Newer"));
        assert_eq!(l.attribute_values()["FIRSTNAME"], "Newer");
        // Same time, different values: the same winner whatever the order.
        let mut a = Ledger::default();
        a.observe_attributes(t(1), &attrs("x"));
        a.observe_attributes(t(1), &attrs("y"));
        let mut b = Ledger::default();
        b.observe_attributes(t(1), &attrs("y"));
        b.observe_attributes(t(1), &attrs("x"));
        assert_eq!(a, b);
    }

    #[test]
    fn a_newer_rating_moves_the_score_and_an_older_one_does_not() {
        use EventKind::*;
        let mut l = ledger_of(&[event(SurveyResponded, "9", t(100), json!({"score": 5}))]);
        assert_eq!(l.aggregates().satisfied(), Some(true));
        l.observe_events(
            &Source::Zendesk,
            &[event(SurveyResponded, "9", t(50), json!({"score": 1}))],
        );
        assert_eq!(l.aggregates().csat_score, Some(5.0), "older rating ignored");
        l.observe_events(
            &Source::Zendesk,
            &[event(SurveyResponded, "9", t(200), json!({"score": "bad"}))],
        );
        assert_eq!(l.aggregates().satisfied(), Some(false));
        assert_eq!(l.aggregates().csat_responses, 1);
    }

    #[test]
    fn resolution_events_gain_resolution_time_and_satisfaction() {
        use EventKind::*;
        let l = ledger_of(&[
            event(TicketCreated, "5", t(0), json!({})),
            event(SurveyResponded, "4", t(1), json!({"score": 4})),
        ]);
        let closed = event(TicketClosed, "5", t(95), json!({}));
        let props = l.resolution_properties(&Source::Zendesk, &closed);
        assert_eq!(props["resolution_time"], json!(95.0));
        assert_eq!(props["satisfaction"], json!(4.0));
        let told = event(TicketClosed, "5", t(95), json!({"resolution_time": 7}));
        assert!(
            !l.resolution_properties(&Source::Zendesk, &told)
                .contains_key("resolution_time")
        );
    }

    #[test]
    fn aggregate_values_have_brevo_shapes() {
        let agg = ledger_of(&stream()).aggregates();
        assert_eq!(agg.value("nb_tickets"), Some(json!(3)));
        assert_eq!(agg.value("open_tickets"), Some(json!(1)));
        assert_eq!(agg.value("last_ticket_channel"), Some(json!("email")));
        assert_eq!(agg.value("avg_response_time"), Some(json!(44.0)));
        assert_eq!(agg.value("last_satisfaction_score"), Some(json!(4.0)));
        assert_eq!(agg.value("satisfaction_count"), Some(json!(2)));
        assert!(
            agg.value("last_ticket_date")
                .and_then(|v| v.as_str().map(str::to_string))
                .is_some_and(|d| d.starts_with("2025-03-02"))
        );
        assert_eq!(Aggregates::default().value("last_ticket_date"), None);
    }

    #[test]
    fn scores_are_read_leniently_and_bounded() {
        assert_eq!(csat_score(&json!(4)), Some(4.0));
        assert_eq!(csat_score(&json!("GOOD")), Some(5.0));
        assert_eq!(csat_score(&json!("bad")), Some(1.0));
        assert_eq!(csat_score(&json!("3")), Some(3.0));
        assert_eq!(csat_score(&json!(9)), None);
        assert_eq!(csat_score(&json!("offered")), None);
        assert_eq!(csat_score(&json!(null)), None);
    }

    #[test]
    fn many_tickets_fold_into_a_count() {
        let events: Vec<SupportEvent> = (0..(MAX_TICKETS as u32 + 25))
            .map(|i| event(EventKind::TicketCreated, &i.to_string(), t(i), json!({})))
            .collect();
        let l = ledger_of(&events);
        assert_eq!(l.tickets.len(), MAX_TICKETS);
        assert_eq!(l.aggregates().ticket_count, MAX_TICKETS as u64 + 25);
        assert!(!l.tickets.contains_key("zendesk:0"), "oldest folded first");
    }

    #[test]
    fn ledger_keys_hide_the_contact() {
        let k = ledger_key("email:jane@example.com");
        assert!(k.starts_with("contact#"));
        assert!(!k.contains("jane"));
        assert_eq!(k, ledger_key("email:jane@example.com"));
    }

    #[test]
    fn a_moved_contacts_ledger_is_absorbed_newest_first() {
        let t = |s: i64| chrono::DateTime::<Utc>::from_timestamp(s, 0).expect("time");
        let stamped = |at: i64, v: &str| Stamped {
            at: t(at),
            value: Value::String(v.into()),
        };
        let mut mine = Ledger::default();
        mine.attributes.insert("PLAN".into(), stamped(200, "pro"));
        mine.attributes
            .insert("FIRSTNAME".into(), stamped(100, "J"));
        mine.tickets.insert(
            "intercom:1".into(),
            Ticket {
                last_at: Some(t(50)),
                ..Default::default()
            },
        );
        let mut theirs = Ledger::default();
        theirs
            .attributes
            .insert("PLAN".into(), stamped(150, "free"));
        theirs
            .attributes
            .insert("FIRSTNAME".into(), stamped(120, "Jane"));
        theirs
            .attributes
            .insert("INTERCOM_ROLE".into(), stamped(10, "lead"));
        theirs.tickets.insert(
            "intercom:1".into(),
            Ticket {
                last_at: Some(t(80)),
                status: Some((t(80), false)),
                ..Default::default()
            },
        );
        theirs
            .tickets
            .insert("intercom:2".into(), Ticket::default());
        theirs.folded_tickets = 3;
        mine.absorb(&theirs);
        assert_eq!(mine.attributes["PLAN"].value, "pro");
        assert_eq!(mine.attributes["FIRSTNAME"].value, "Jane");
        assert_eq!(mine.attributes["INTERCOM_ROLE"].value, "lead");
        assert_eq!(mine.tickets.len(), 2);
        assert_eq!(mine.tickets["intercom:1"].status, Some((t(80), false)));
        assert_eq!(mine.folded_tickets, 3);
    }
}
