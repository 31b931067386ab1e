//! The canonical, source-independent model that travels on the upsert queue.
//!
//! A webhook delivery or a sync page becomes one [`Job`]; a job holds [`Record`]s, one per person,
//! each with what was observed about that person (profile fields, tags, timeline events) and the
//! source time of the observation. Mapping to Brevo happens later, in the upsert function, so the
//! same configuration applies to real-time and batch traffic alike.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A helpdesk that feeds deskbridge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Source {
    Zendesk,
    Intercom,
    Gorgias,
    /// A generic webhook source, configured by name.
    Generic(String),
    /// A helpdesk added to the registry beside the built-in ones, by its name (lower-case
    /// letters, digits, `-` and `_`; never a built-in name). It is written as the bare name,
    /// like the built-in ones: `/webhooks/<name>`, `<name>:<delivery id>`.
    Added(String),
    /// A further account of a built-in helpdesk (a second Gorgias store), written
    /// `<helpdesk>:<account>` (`gorgias:eu-store`): its webhooks at `/webhooks/gorgias/eu-store`,
    /// its own credentials, cursors, ids and mapping. Made by [`Source::account`].
    Account(String),
}

impl Source {
    /// The three built-in helpdesks.
    pub const BUILT_IN: [Source; 3] = [Source::Zendesk, Source::Intercom, Source::Gorgias];

    /// Lower-case name as used in URLs, ext_ids and state keys (`zendesk`, `generic:cinnox`).
    pub fn as_str(&self) -> &str {
        match self {
            Source::Zendesk => "zendesk",
            Source::Intercom => "intercom",
            Source::Gorgias => "gorgias",
            Source::Generic(name) | Source::Added(name) | Source::Account(name) => name,
        }
    }

    /// The account `name` of the built-in helpdesk `vendor`, when `name` is a valid account
    /// name (lower-case letters, digits, `-` and `_`, at most 64).
    pub fn account(vendor: &Source, name: &str) -> Option<Source> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        (valid && Source::BUILT_IN.contains(vendor))
            .then(|| Source::Account(format!("{vendor}:{name}")))
    }

    /// The built-in helpdesk whose API and webhooks this source speaks: itself, or an
    /// account's helpdesk.
    pub fn vendor(&self) -> Source {
        match self {
            Source::Account(full) => full
                .split_once(':')
                .and_then(|(vendor, _)| vendor.parse().ok())
                .unwrap_or_else(|| self.clone()),
            other => other.clone(),
        }
    }

    /// An account's own name (`eu-store` of `gorgias:eu-store`).
    pub fn account_name(&self) -> Option<&str> {
        match self {
            Source::Account(full) => full.split_once(':').map(|(_, name)| name),
            _ => None,
        }
    }

    /// Whether this is a further account of `vendor` (`gorgias:eu-store` of Gorgias).
    pub fn is_account_of(&self, vendor: &Source) -> bool {
        self.account_name().is_some() && self.vendor() == *vendor
    }

    /// The prefix of an account's environment variables (`GORGIAS_EU_STORE_` for
    /// `gorgias:eu-store`: `GORGIAS_EU_STORE_API_KEY`, …); the helpdesk's own (`GORGIAS_`) for
    /// the helpdesk itself.
    pub fn variable_prefix(&self) -> String {
        let id = self.id_attribute();
        format!("{}_", id.strip_suffix("_ID").unwrap_or(&id))
    }

    /// The source an added helpdesk called `name` is known by, when `name` is a valid name for
    /// one: lower-case letters, digits, `-` and `_`, and neither a built-in name nor `generic`.
    pub fn added(name: &str) -> Option<Source> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        let reserved = name == "generic" || name.parse::<Source>().is_ok();
        (valid && !reserved).then(|| Source::Added(name.to_string()))
    }

    /// Brevo attribute that holds the helpdesk's own id of the person.
    pub fn id_attribute(&self) -> String {
        match self {
            Source::Zendesk => "ZENDESK_ID".into(),
            Source::Intercom => "INTERCOM_ID".into(),
            Source::Gorgias => "GORGIAS_ID".into(),
            Source::Generic(name) | Source::Added(name) | Source::Account(name) => format!(
                "{}_ID",
                name.to_ascii_uppercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            ),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Generic(name) => write!(f, "generic:{name}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Error for an unknown source name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown source `{0}` (expected zendesk, intercom, gorgias, <helpdesk>:<account> or \
     generic:<name>)"
)]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zendesk" => Ok(Source::Zendesk),
            "intercom" => Ok(Source::Intercom),
            "gorgias" => Ok(Source::Gorgias),
            other => match other.split_once(':') {
                Some(("generic", name))
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    Ok(Source::Generic(name.to_string()))
                }
                Some((vendor @ ("zendesk" | "intercom" | "gorgias"), name)) => vendor
                    .parse()
                    .ok()
                    .and_then(|v| Source::account(&v, name))
                    .ok_or_else(|| UnknownSource(other.to_string())),
                _ => Err(UnknownSource(other.to_string())),
            },
        }
    }
}

/// Reading a source back from a job or a state record: the names [`Source::from_str`] knows,
/// and any other valid helpdesk name as an added helpdesk (whether one is registered under it
/// is the registry's business, not the wire format's).
impl TryFrom<String> for Source {
    type Error = UnknownSource;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse().or_else(|e| Source::added(&value).ok_or(e))
    }
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        s.to_string()
    }
}

/// Where a job came from. Real-time traffic is favoured, and only real-time and recent
/// happenings fire timeline events (a backfill must not start automations for the past).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Webhook,
    Sync,
}

/// One message on the upsert queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Stable id: `<source>:<delivery id>` for webhooks, `<stream>:<page>` for sync pages.
    pub id: String,
    pub source: Source,
    pub origin: Origin,
    pub received_at: DateTime<Utc>,
    /// Correlation id carried from the webhook request to the Brevo call (for logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub records: Vec<Record>,
}

/// Everything one delivery or sync row says about one person.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Record {
    pub person: Person,
    /// Source time of the observation (the record's `updated_at`, the event's time). Newer
    /// observations win; an older one never overwrites a newer one.
    pub observed_at: DateTime<Utc>,
    /// The helpdesk's own person object, for field mapping by dotted path. `None` when the
    /// delivery named the person only by id and nothing has been looked up yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_added: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_removed: Vec<String>,
    /// Every tag the holder carries now, when the record gives the whole set (a synced ticket
    /// or contact): a tag it carried before and not now is removed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_now: Option<Vec<String>>,
    /// What carries the record's tags: `ticket:<id>`, `conversation:<id>`, or the person when
    /// `None` (see [`crate::tags`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_holder: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SupportEvent>,
    /// Happenings from before the sync stream's first run: they count in the support aggregates
    /// (ticket count, CSAT…) but are not put on the timeline, so a backfill does not start
    /// automations for the past.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_events: Vec<SupportEvent>,
    /// `Some(true)` when the helpdesk reports the person unsubscribed from email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribed: Option<bool>,
    /// The helpdesk deleted (or archived) the person, or brought them back. A deletion record
    /// carries only `person` (the helpdesk id, and the email when the helpdesk said) and
    /// `observed_at`; what it does in Brevo is the `deletions` policy's
    /// ([`crate::mapping::Deletions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
}

/// What a record says of the person's existence in the helpdesk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Deleted, permanently deleted or archived.
    Deleted,
    /// Active again after a deletion the helpdesk can undo (Zendesk reactivation, Intercom
    /// unarchive): the person's records are written again.
    Restored,
}

impl Record {
    /// A deletion record of `person` at `at`.
    pub fn deletion(person: Person, at: DateTime<Utc>) -> Record {
        Record {
            person,
            observed_at: at,
            presence: Some(Presence::Deleted),
            ..Default::default()
        }
    }

    /// Whether the record says the helpdesk deleted the person.
    pub fn is_deletion(&self) -> bool {
        self.presence == Some(Presence::Deleted)
    }
}

impl Record {
    /// Marks the record as observed no earlier than `changed` (a change of something its profile
    /// carries, such as the person's organization or company), so its values outdate older
    /// observations.
    pub fn observed_no_earlier_than(&mut self, changed: Option<DateTime<Utc>>) {
        if let Some(at) = changed {
            self.observed_at = self.observed_at.max(at);
        }
    }
}

/// A helpdesk's own person object, read as a [`Value`] (it dereferences to one).
///
/// A profile cut straight out of a webhook body is kept as that body's JSON text
/// ([`Profile::from_text`]): the webhook copies it into the job as bytes instead of building it
/// as a tree and writing it out again. It is read as a tree only when something looks into it,
/// and a profile that is changed ([`DerefMut`]) is a tree from then on. A deserialised profile
/// is a tree.
#[derive(Clone)]
pub struct Profile(ProfileRepr);

#[derive(Clone)]
enum ProfileRepr {
    Text {
        text: Box<RawValue>,
        tree: OnceLock<Value>,
    },
    Tree(Value),
}

impl Profile {
    /// A profile kept as JSON text (already validated as JSON by its parser).
    pub fn from_text(text: Box<RawValue>) -> Self {
        Profile(ProfileRepr::Text {
            text,
            tree: OnceLock::new(),
        })
    }

    /// The profile as a tree, taken out.
    pub fn into_value(self) -> Value {
        match self.0 {
            ProfileRepr::Tree(value) => value,
            ProfileRepr::Text { text, tree } => tree.into_inner().unwrap_or_else(|| parse(&text)),
        }
    }
}

/// The tree of a profile's text. The text is JSON its parser has read, within the webhook
/// nesting limit, so this does not fail; if it ever did, the profile reads as `null`.
fn parse(text: &RawValue) -> Value {
    serde_json::from_str(text.get()).unwrap_or(Value::Null)
}

impl From<Value> for Profile {
    fn from(value: Value) -> Self {
        Profile(ProfileRepr::Tree(value))
    }
}

impl Deref for Profile {
    type Target = Value;

    fn deref(&self) -> &Value {
        match &self.0 {
            ProfileRepr::Tree(value) => value,
            ProfileRepr::Text { text, tree } => tree.get_or_init(|| parse(text)),
        }
    }
}

impl DerefMut for Profile {
    fn deref_mut(&mut self) -> &mut Value {
        if let ProfileRepr::Text { text, tree } = &mut self.0 {
            let value = tree.take().unwrap_or_else(|| parse(text));
            self.0 = ProfileRepr::Tree(value);
        }
        match &mut self.0 {
            ProfileRepr::Tree(value) => value,
            ProfileRepr::Text { .. } => unreachable!("a changed profile is a tree"),
        }
    }
}

impl PartialEq for Profile {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            ProfileRepr::Tree(value) => value.serialize(serializer),
            ProfileRepr::Text { text, .. } => text.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Profile::from)
    }
}

/// Who a record is about, as far as the source told us.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Person {
    /// The helpdesk's id of the person (Zendesk user id, Intercom contact id, Gorgias customer id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The person's id in the customer's own systems, as the helpdesk holds it (Zendesk and
    /// Intercom `external_id`): without an email, the Brevo contact's ext_id, so the same
    /// customer in two helpdesks is one contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl Person {
    /// The helpdesk's id of the person, trimmed; `None` when it is missing or blank.
    pub fn helpdesk_id(&self) -> Option<&str> {
        self.source_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
    }

    /// True when the person is known only by the helpdesk id and must be looked up.
    pub fn needs_lookup(&self) -> bool {
        self.email.is_none() && self.phone.is_none() && self.source_id.is_some()
    }
}

/// The support happenings deskbridge knows. The key (`ticket.created`, …) is what the
/// `event_mapping` of the configuration maps to a Brevo event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    TicketCreated,
    TicketClosed,
    TicketReopened,
    SurveySent,
    SurveyResponded,
    CustomerCreated,
    /// A ticket or conversation set aside until later (Intercom snooze).
    TicketSnoozed,
    /// A snoozed ticket or conversation back (by an agent, a reply or its timer).
    TicketUnsnoozed,
    /// An AI agent (Intercom Fin) resolved the conversation, by the customer's confirmation
    /// or assumed from their silence.
    AiResolved,
    /// An AI agent handed the conversation to a human team.
    AiEscalated,
    /// An agent applied a macro (a saved reply and actions) to a ticket (Gorgias events feed).
    MacroApplied,
    /// An automation rule acted on a ticket (Gorgias events feed).
    RuleExecuted,
    /// One of the helpdesk's own events about the person (an Intercom data event); its name is
    /// the `event_name` property (see [`crate::data_events`]).
    DataEvent,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::TicketCreated,
        EventKind::TicketClosed,
        EventKind::TicketReopened,
        EventKind::SurveySent,
        EventKind::SurveyResponded,
        EventKind::CustomerCreated,
        EventKind::TicketSnoozed,
        EventKind::TicketUnsnoozed,
        EventKind::AiResolved,
        EventKind::AiEscalated,
        EventKind::MacroApplied,
        EventKind::RuleExecuted,
        EventKind::DataEvent,
    ];

    /// The mapping key, as in the seeds' `event_mapping`.
    pub fn key(self) -> &'static str {
        match self {
            EventKind::TicketCreated => "ticket.created",
            EventKind::TicketClosed => "ticket.closed",
            EventKind::TicketReopened => "ticket.reopened",
            EventKind::SurveySent => "satisfaction_survey.created",
            EventKind::SurveyResponded => "satisfaction_survey.responded",
            EventKind::CustomerCreated => "customer.created",
            EventKind::TicketSnoozed => "ticket.snoozed",
            EventKind::TicketUnsnoozed => "ticket.unsnoozed",
            EventKind::AiResolved => "ai_agent.resolved",
            EventKind::AiEscalated => "ai_agent.escalated",
            EventKind::MacroApplied => "macro.applied",
            EventKind::RuleExecuted => "rule.executed",
            EventKind::DataEvent => "data_event",
        }
    }

    pub fn from_key(key: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// Whether the kind happens once per subject (a ticket or a customer is created once, an
    /// AI agent's outcome is reported once per conversation, however many notifications carry
    /// it); the others can happen again (a second solve, a new rating).
    pub fn is_once(self) -> bool {
        matches!(
            self,
            EventKind::TicketCreated
                | EventKind::CustomerCreated
                | EventKind::AiResolved
                | EventKind::AiEscalated
        )
    }

    /// The milestone that undoes this one: a reopen between two solves makes them two.
    pub fn opposite(self) -> Option<EventKind> {
        match self {
            EventKind::TicketClosed => Some(EventKind::TicketReopened),
            EventKind::TicketReopened => Some(EventKind::TicketClosed),
            _ => None,
        }
    }
}

/// A ticket or conversation milestone for the person's Brevo timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupportEvent {
    /// Stable id of the happening, the same however often or by whichever path it is delivered
    /// (e.g. `zendesk:ticket:5158:ticket.closed:1736331127`). Dedupe key for the timeline.
    pub id: String,
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Extra properties for the Brevo event (subject, status, score, agent_name, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

impl SupportEvent {
    /// Builds the stable id of a happening about `subject` (e.g. `ticket:5158`).
    ///
    /// Creations are keyed by subject alone (a ticket or a customer is created once). Other
    /// milestones are keyed by subject, kind and the instant the helpdesk gives for them (the
    /// solve's `solved_at`, the close part's `created_at`, `closed_datetime`, …), in epoch
    /// seconds, so two solves of one ticket are two events at any hour and in any time zone.
    /// The webhook and the sync can see one happening a second or two apart: the upsert
    /// function matches such ids to the one it registered first (see
    /// [`crate::milestones`]).
    pub fn stable_id(
        source: &Source,
        subject: &str,
        kind: EventKind,
        occurred_at: DateTime<Utc>,
    ) -> String {
        let thread = format!("{source}:{subject}");
        if kind.is_once() {
            format!("{thread}:{}", kind.key())
        } else {
            format!("{thread}:{}:{}", kind.key(), occurred_at.timestamp())
        }
    }

    /// The id earlier versions gave a milestone: keyed by UTC day (`…:ticket.closed:2025-01-08`).
    /// Sent events keep these ids in the ledger; [`crate::milestones`] reuses them.
    pub fn day_id(thread: &str, kind: EventKind, occurred_at: DateTime<Utc>) -> String {
        format!("{thread}:{}:{}", kind.key(), occurred_at.format("%Y-%m-%d"))
    }

    /// Splits an instant-keyed [`stable_id`](Self::stable_id) of a repeatable `kind` into its
    /// thread (`zendesk:ticket:5158`) and instant; `None` for creations and any other id
    /// (a day-keyed id of an earlier version, an id a helpdesk integration made up).
    pub fn milestone_of(id: &str, kind: EventKind) -> Option<(&str, DateTime<Utc>)> {
        if kind.is_once() {
            return None;
        }
        let (head, seconds) = id.rsplit_once(':')?;
        let thread = head.strip_suffix(kind.key())?.strip_suffix(':')?;
        if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let at = DateTime::from_timestamp(seconds.parse().ok()?, 0)?;
        (!thread.is_empty()).then_some((thread, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_kept_as_text_is_written_as_that_text_and_read_as_a_tree() {
        let text = r#"{"id": "c1",  "custom_attributes": {"plan": "pro"}}"#;
        let raw = RawValue::from_string(text.to_string()).expect("json");
        let mut profile = Profile::from_text(raw);
        // Written byte for byte, spacing included: it was never rebuilt.
        assert_eq!(serde_json::to_string(&profile).expect("write"), text);
        assert_eq!(profile["custom_attributes"]["plan"], "pro");
        assert_eq!(
            profile,
            Profile::from(serde_json::json!({"id": "c1", "custom_attributes": {"plan": "pro"}}))
        );
        // Changed, it is a tree and written as one.
        profile["company"] = serde_json::json!({"name": "Acme"});
        let written = serde_json::to_string(&profile).expect("write");
        let back: Profile = serde_json::from_str(&written).expect("read");
        assert_eq!(back["company"]["name"], "Acme");
        assert_eq!(back["id"], "c1");
        assert_eq!(back.clone().into_value(), *back);
    }

    #[test]
    fn source_round_trips_through_strings() {
        for s in ["zendesk", "intercom", "gorgias", "generic:cinnox"] {
            let parsed: Source = s.parse().expect("known source");
            assert_eq!(parsed.to_string(), s);
        }
        assert!("generic:".parse::<Source>().is_err());
        assert!("freshdesk".parse::<Source>().is_err());
        // Only the wire format reads other names, as added helpdesks.
        let added = Source::try_from("acme".to_string()).expect("added");
        assert_eq!(added, Source::Added("acme".into()));
        assert_eq!(added.to_string(), "acme");
        assert_eq!(added.id_attribute(), "ACME_ID");
        // A further account of a built-in helpdesk.
        let store: Source = "gorgias:eu-store".parse().expect("an account");
        assert_eq!(
            store,
            Source::account(&Source::Gorgias, "eu-store").expect("valid")
        );
        assert_eq!(store.to_string(), "gorgias:eu-store");
        assert_eq!(store.vendor(), Source::Gorgias);
        assert_eq!(store.account_name(), Some("eu-store"));
        assert_eq!(store.id_attribute(), "GORGIAS_EU_STORE_ID");
        assert_eq!(store.variable_prefix(), "GORGIAS_EU_STORE_");
        assert_eq!(Source::Gorgias.variable_prefix(), "GORGIAS_");
        assert_eq!(Source::try_from(store.to_string()), Ok(store));
        assert!("gorgias:EU".parse::<Source>().is_err());
        assert!("gorgias:".parse::<Source>().is_err());
        assert_eq!(Source::account(&Source::Generic("x".into()), "a"), None);
        assert_eq!(Source::added("zendesk"), None);
        assert_eq!(Source::added("generic"), None);
        assert_eq!(Source::added("Acme"), None);
        assert!(Source::try_from("generic:".to_string()).is_err());
        assert_eq!(
            Source::Generic("cin-nox".into()).id_attribute(),
            "CIN_NOX_ID"
        );
    }

    #[test]
    fn stable_ids_are_keyed_by_the_instant_and_parse_back() {
        use chrono::TimeZone;
        let a = Utc
            .with_ymd_and_hms(2025, 1, 8, 23, 59, 59)
            .single()
            .expect("time");
        let b = Utc
            .with_ymd_and_hms(2025, 1, 9, 0, 0, 1)
            .single()
            .expect("time");
        let z = Source::Zendesk;
        let closed = |t| SupportEvent::stable_id(&z, "ticket:1", EventKind::TicketClosed, t);
        assert_eq!(closed(a), "zendesk:ticket:1:ticket.closed:1736380799");
        assert_ne!(closed(a), closed(b));
        assert_eq!(
            SupportEvent::milestone_of(&closed(a), EventKind::TicketClosed),
            Some(("zendesk:ticket:1", a))
        );
        // Not the kind named, a creation, a day-keyed id: no milestone.
        assert_eq!(
            SupportEvent::milestone_of(&closed(a), EventKind::TicketReopened),
            None
        );
        let created = |t| SupportEvent::stable_id(&z, "ticket:1", EventKind::TicketCreated, t);
        assert_eq!(created(a), created(b));
        assert_eq!(created(a), "zendesk:ticket:1:ticket.created");
        assert_eq!(
            SupportEvent::milestone_of(&created(a), EventKind::TicketCreated),
            None
        );
        let day = SupportEvent::day_id("zendesk:ticket:1", EventKind::TicketClosed, a);
        assert_eq!(day, "zendesk:ticket:1:ticket.closed:2025-01-08");
        assert_eq!(
            SupportEvent::milestone_of(&day, EventKind::TicketClosed),
            None
        );
        // A source with a colon in its name.
        let g = Source::Generic("cinnox".into());
        let id = SupportEvent::stable_id(&g, "ticket:E-1", EventKind::SurveyResponded, a);
        assert_eq!(
            SupportEvent::milestone_of(&id, EventKind::SurveyResponded),
            Some(("generic:cinnox:ticket:E-1", a))
        );
    }

    #[test]
    fn event_keys_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_key(k.key()), Some(k));
        }
    }
}
