//! Generic webhook sources (`POST /webhooks/generic/{name}`): helpdesks without a parser of their
//! own (CINNOX through Zapier, Freshdesk, Help Scout…), described entirely by the configuration
//! file's `connectors.generic:<name>` block.
//!
//! The block says how deliveries authenticate ([`GenericAuth`]: an HMAC-SHA256 of the body in a
//! named header, or a bearer token; the secret itself comes from the environment or the secret,
//! never from the file), where the person and the happening are in the JSON body (RFC 6901 JSON
//! pointers, [`GenericFields`]), and which values of the body's event type become which
//! canonical events (`events`). The whole body is the record's profile, so the source's own
//! `field_mapping` reads any other field by its dotted path.

pub mod pull;
mod pull_reader;
pub mod vendor;

pub use pull_reader::PullReader;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::signature::{self, AuthError, HmacSha256Scheme};
use crate::helpdesk::parse::{Delivery, ParseError, Parsed, body_hash, clean, text};
use crate::model::{EventKind, Person, Record, Source, SupportEvent};

/// How a generic source's deliveries prove where they come from. Only the name of the variable
/// holding the secret is configured; [`crate::config::Settings`] resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenericAuth {
    /// HMAC-SHA256 of the raw body, in a header.
    HmacSha256 {
        scheme: HmacSha256Scheme,
        secret_env: String,
    },
    /// HMAC-SHA1 of the raw body, in a header (older senders).
    HmacSha1 {
        scheme: HmacSha256Scheme,
        secret_env: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { token_env: String },
    /// `Authorization: Basic …` of the `user:password` the variable holds.
    Basic { credentials_env: String },
}

impl GenericAuth {
    /// The variable (or secret key) holding the signing secret or the token.
    pub fn secret_var(&self) -> &str {
        match self {
            GenericAuth::HmacSha256 { secret_env, .. }
            | GenericAuth::HmacSha1 { secret_env, .. } => secret_env,
            GenericAuth::Bearer { token_env } => token_env,
            GenericAuth::Basic { credentials_env } => credentials_env,
        }
    }

    /// Checks a request against `secret` (the resolved value of [`GenericAuth::secret_var`]);
    /// a signed timestamp is checked against `now`.
    pub fn verify(
        &self,
        secret: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        match self {
            GenericAuth::HmacSha256 { scheme, .. } => scheme.verify(secret, headers, body, now),
            GenericAuth::HmacSha1 { scheme, .. } => scheme.verify_sha1(secret, headers, body, now),
            GenericAuth::Bearer { .. } => signature::verify_bearer(secret, headers),
            GenericAuth::Basic { .. } => signature::verify_basic(secret, headers),
        }
    }

    /// The headers (lower-case names) a sender authenticating this way sends with `body` at
    /// `now`: what tests and the local demo sign samples with.
    pub fn request_headers(
        &self,
        secret: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        match self {
            GenericAuth::HmacSha256 { scheme, .. } => {
                scheme.signed_headers(secret, body, now, false)
            }
            GenericAuth::HmacSha1 { scheme, .. } => scheme.signed_headers(secret, body, now, true),
            GenericAuth::Bearer { .. } => {
                vec![("authorization".into(), format!("Bearer {secret}"))]
            }
            GenericAuth::Basic { .. } => {
                vec![("authorization".into(), signature::basic_header(secret))]
            }
        }
    }
}

/// JSON pointers (RFC 6901: `/contact/email`, `""` for the whole body) into a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GenericFields {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// A full name; `first_name`/`last_name`, when given, win over its split.
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The helpdesk's own id of the person (`<NAME>_ID`, and `ext_id` `<name>:<id>` without email).
    pub external_id: Option<String>,
    /// The value looked up in `events`; without it every delivery updates the contact only.
    pub event_type: Option<String>,
    /// When it happened (unix seconds or milliseconds, or ISO-8601); the time of receipt otherwise.
    pub event_time: Option<String>,
    /// The sender's delivery id (dedupe key); a hash of the body otherwise.
    pub delivery_id: Option<String>,
    /// The ticket or enquiry the happening is about: the ticket id of events, and their stable id.
    pub subject: Option<String>,
    /// The channel the ticket came in through (email, whatsapp, …).
    pub channel: Option<String>,
    /// The tags the ticket (or, without `subject`, the person) carries now: an array of names
    /// (or of objects with a `name`), or names separated by commas. Drives `tag_lists`.
    pub tags: Option<String>,
    /// A satisfaction score (a number of 5, or `good`/`bad`) put on the delivery's event as
    /// its `score`: a `satisfaction_survey.responded` event with one feeds the CSAT figures.
    pub score: Option<String>,
    /// Event property name -> pointer: put on the delivery's event when the body has a value.
    pub properties: BTreeMap<String, String>,
}

impl GenericFields {
    /// The field names and pointers that are set, in documentation order.
    pub fn pointers(&self) -> Vec<(&'static str, &str)> {
        [
            ("email", &self.email),
            ("phone", &self.phone),
            ("name", &self.name),
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("external_id", &self.external_id),
            ("event_type", &self.event_type),
            ("event_time", &self.event_time),
            ("delivery_id", &self.delivery_id),
            ("subject", &self.subject),
            ("channel", &self.channel),
            ("tags", &self.tags),
            ("score", &self.score),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_deref().map(|p| (name, p)))
        .collect()
    }
}

/// The field names a `fields` block accepts.
pub const FIELD_NAMES: [&str; 14] = [
    "email",
    "phone",
    "name",
    "first_name",
    "last_name",
    "external_id",
    "event_type",
    "event_time",
    "delivery_id",
    "subject",
    "channel",
    "tags",
    "score",
    "properties",
];

/// One generic source, as the configuration file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericSource {
    pub auth: GenericAuth,
    pub fields: GenericFields,
    /// The body's event-type value -> canonical event; `None` updates the contact without a
    /// timeline event. Values not listed are acknowledged and ignored.
    pub events: BTreeMap<String, Option<EventKind>>,
    /// The body's event-type values that report the person deleted (`person.deleted` in
    /// `events`): a deletion record for the `deletions` policy ([`crate::deletions`]).
    pub deletions: BTreeSet<String>,
}

/// Whether `name` can name a generic source: it appears in the webhook URL
/// (`/webhooks/generic/<name>`), so lower-case letters, digits, `-` and `_` only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `pointer` is an RFC 6901 JSON pointer: empty, or `/`-separated tokens in which `~` is
/// only ever followed by `0` or `1`.
pub fn valid_pointer(pointer: &str) -> bool {
    (pointer.is_empty() || pointer.starts_with('/'))
        && pointer
            .split('~')
            .skip(1)
            .all(|rest| rest.starts_with('0') || rest.starts_with('1'))
}

/// Unix milliseconds are told from seconds by size: this many seconds is in the year 5138.
const MILLISECONDS_FROM: i64 = 100_000_000_000;

/// A time as senders write it: unix seconds or milliseconds (number or digits), or ISO-8601.
pub(crate) fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let v = v.filter(|v| text(Some(v)).is_some())?;
    let whole = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse::<i64>().ok()));
    match whole {
        Some(ms) if ms.abs() >= MILLISECONDS_FROM => Utc.timestamp_millis_opt(ms).single(),
        _ => crate::mapping::parse_time(v),
    }
}

/// Parses a verified delivery of the generic source `name` (already decoded as `value`).
pub fn parse_webhook(
    name: &str,
    config: &GenericSource,
    value: &Value,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let reading = Reading {
        fields: &config.fields,
        events: &config.events,
        deletions: &config.deletions,
        event_times: &BTreeMap::new(),
    };
    read_object(name, &reading, value, body, received_at)
}

/// How one JSON object of a generic source (a delivery, or an item a pull resource lists) is
/// read.
pub(crate) struct Reading<'a> {
    pub(crate) fields: &'a GenericFields,
    pub(crate) events: &'a BTreeMap<String, Option<EventKind>>,
    /// Event-type values that report the person deleted.
    pub(crate) deletions: &'a BTreeSet<String>,
    /// Per canonical event, the pointer to its own time (a ticket's `resolved_at` for its
    /// closing), before `fields.event_time`.
    pub(crate) event_times: &'a BTreeMap<EventKind, String>,
}

/// Reads one object of the generic source `name` into a record (see [`parse_webhook`]);
/// `body` is its text, hashed into the delivery id when `fields.delivery_id` finds nothing.
pub(crate) fn read_object(
    name: &str,
    reading: &Reading<'_>,
    value: &Value,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let source = Source::Generic(name.to_string());
    let fields = reading.fields;
    let at = |pointer: &Option<String>| pointer.as_deref().and_then(|p| value.pointer(p));

    // What happened: a canonical event, a contact update, or something to acknowledge and skip.
    let (topic, kind) = match &fields.event_type {
        None => ("contact.updated".to_string(), None),
        Some(pointer) => {
            let topic = text(value.pointer(pointer)).ok_or_else(|| {
                ParseError::Invalid(format!(
                    "the event type (`{pointer}`) is missing or not text"
                ))
            })?;
            match reading.events.get(&topic) {
                Some(kind) => (topic, *kind),
                None if reading.deletions.contains(&topic) => (topic, None),
                None => return Ok(Parsed::Ignored { topic }),
            }
        }
    };

    let person = Person {
        source_id: text(at(&fields.external_id)),
        email: text(at(&fields.email)),
        phone: text(at(&fields.phone)),
        name: text(at(&fields.name)),
        first_name: text(at(&fields.first_name)),
        last_name: text(at(&fields.last_name)),
        // A generic source's `external_id` is its own id of the person (`source_id`).
        external_id: None,
    };
    let Some(who) = person
        .source_id
        .clone()
        .or_else(|| person.email.clone())
        .or_else(|| person.phone.clone())
    else {
        let looked = [
            ("email", &fields.email),
            ("phone", &fields.phone),
            ("external_id", &fields.external_id),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.as_deref().map(|p| format!("{n} `{p}`")))
        .collect::<Vec<_>>()
        .join(", ");
        return Err(ParseError::Invalid(format!(
            "the delivery names nobody: no value at {looked}"
        )));
    };

    let own_time = kind
        .and_then(|k| reading.event_times.get(&k))
        .and_then(|p| time(value.pointer(p)));
    let observed_at = own_time
        .or_else(|| time(at(&fields.event_time)))
        .unwrap_or(received_at);
    let delivery_id = text(at(&fields.delivery_id)).unwrap_or_else(|| body_hash(body));
    if reading.deletions.contains(&topic) {
        if person.source_id.is_none() {
            return Err(ParseError::Invalid(format!(
                "a deletion (`{topic}`) must name the person's id (fields.external_id)"
            )));
        }
        return Ok(Parsed::Accepted(Delivery {
            delivery_id,
            topic,
            records: vec![Record::deletion(person, observed_at)],
        }));
    }
    let mut events = Vec::new();
    if let Some(kind) = kind {
        let ticket = text(at(&fields.subject));
        let subject = match (kind, &ticket) {
            (EventKind::CustomerCreated, _) => format!("contact:{who}"),
            (_, Some(ticket)) => format!("ticket:{ticket}"),
            (_, None) => format!("delivery:{delivery_id}"),
        };
        let mut properties = Map::new();
        for (name, pointer) in &fields.properties {
            if let Some(v) = value.pointer(pointer).filter(|v| !v.is_null()) {
                properties.insert(name.clone(), v.clone());
            }
        }
        if let Some(score) = at(&fields.score).filter(|v| !v.is_null()) {
            properties.insert("score".into(), score.clone());
        }
        // A sender's own event keeps its name (see `crate::data_events`).
        if kind == EventKind::DataEvent {
            properties.insert("event_name".into(), Value::String(topic.clone()));
        }
        events.push(SupportEvent {
            id: SupportEvent::stable_id(&source, &subject, kind, observed_at),
            kind,
            occurred_at: observed_at,
            ticket_id: ticket.filter(|_| kind != EventKind::CustomerCreated),
            channel: text(at(&fields.channel)).map(|c| c.to_lowercase()),
            properties,
        });
    }

    let mut record = Record {
        person,
        observed_at,
        profile: Some(clean(value).into()),
        events,
        ..Default::default()
    };
    // The tags as a whole set, of the ticket when the delivery names one.
    if let Some(tags) = fields.tags.as_ref().map(|p| tag_names(value.pointer(p))) {
        record.tag_holder = text(at(&fields.subject)).map(|t| format!("ticket:{t}"));
        record.tags_added = tags.clone();
        record.tags_now = Some(tags);
    }
    Ok(Parsed::Accepted(Delivery {
        delivery_id,
        topic,
        records: vec![record],
    }))
}

/// Tag names from an array of names (or of objects with a `name`), or from names separated by
/// commas; nothing (no value) is no tags.
fn tag_names(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| text(Some(t)).or_else(|| text(t.get("name"))))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpdesk::signature::SignatureEncoding;

    /// A CINNOX enquiry as a Zapier "Webhooks by Zapier" POST action sends it (JSON payload,
    /// `contact__email`-style keys unflattened into objects).
    const ENQUIRY_NEW: &str = r#"{
  "event": "enquiry.new",
  "occurred_at": "2025-01-08T10:12:07Z",
  "zap_run": "01JH2ZAPRUN0001",
  "enquiry": {"id": "ENQ-20250108-0042", "case_number": "42", "status": "open",
              "channel": "WhatsApp", "type": "sales"},
  "contact": {"id": "c-7781", "name": "Mei Lin Tan", "email": "Mei.Lin@Example.com",
              "phone": "+65 8123 4567", "company": "Tan Trading", "owner": ""}
}"#;

    fn cinnox() -> GenericSource {
        let p = |s: &str| Some(s.to_string());
        GenericSource {
            auth: GenericAuth::HmacSha256 {
                scheme: HmacSha256Scheme {
                    header: "X-Signature".into(),
                    encoding: SignatureEncoding::Hex,
                    prefix: p("sha256="),
                    timestamp: None,
                },
                secret_env: "CINNOX_WEBHOOK_SECRET".into(),
            },
            fields: GenericFields {
                email: p("/contact/email"),
                phone: p("/contact/phone"),
                name: p("/contact/name"),
                external_id: p("/contact/id"),
                event_type: p("/event"),
                event_time: p("/occurred_at"),
                delivery_id: p("/zap_run"),
                subject: p("/enquiry/id"),
                channel: p("/enquiry/channel"),
                ..Default::default()
            },
            events: BTreeMap::from([
                ("enquiry.new".into(), Some(EventKind::TicketCreated)),
                ("enquiry.closed".into(), Some(EventKind::TicketClosed)),
                ("contact.created".into(), Some(EventKind::CustomerCreated)),
                ("contact.edited".into(), None),
            ]),
            deletions: BTreeSet::from(["contact.deleted".to_string()]),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 8, 12, 0, 0)
            .single()
            .expect("time")
    }

    fn parse_with(config: &GenericSource, body: &str) -> Result<Parsed, ParseError> {
        let value = crate::helpdesk::parse::parse_json(body.as_bytes())?;
        parse_webhook("cinnox", config, &value, body.as_bytes(), now())
    }

    fn record(config: &GenericSource, body: &str) -> (Delivery, Record) {
        match parse_with(config, body) {
            Ok(Parsed::Accepted(mut d)) => {
                assert_eq!(d.records.len(), 1);
                let r = d.records.remove(0);
                (d, r)
            }
            other => panic!("expected an accepted delivery, got {other:?}"),
        }
    }

    #[test]
    fn tags_scores_and_properties_come_from_the_body_by_pointer() {
        let mut config = cinnox();
        config.fields.tags = Some("/enquiry/tags".into());
        config.fields.score = Some("/enquiry/csat".into());
        config.fields.properties = BTreeMap::from([
            ("case".into(), "/enquiry/case_number".into()),
            ("missing".into(), "/enquiry/nothing".into()),
        ]);
        config
            .events
            .insert("enquiry.rated".into(), Some(EventKind::SurveyResponded));
        let body = ENQUIRY_NEW
            .replace("\"enquiry.new\"", "\"enquiry.rated\"")
            .replace(
                "\"type\": \"sales\"",
                "\"type\": \"sales\", \"tags\": [\"VIP\", {\"name\": \"urgent\"}], \"csat\": 4",
            );
        let (_, r) = record(&config, &body);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::SurveyResponded);
        assert_eq!(e.properties["score"], 4);
        assert_eq!(e.properties["case"], "42");
        assert!(e.properties.get("missing").is_none());
        // The enquiry carries the tags, as a whole set.
        assert_eq!(r.tag_holder.as_deref(), Some("ticket:ENQ-20250108-0042"));
        assert_eq!(
            r.tags_now,
            Some(vec!["VIP".to_string(), "urgent".to_string()])
        );
        assert_eq!(
            tag_names(Some(&serde_json::json!("a, b,,c"))),
            vec!["a", "b", "c"]
        );
        assert!(tag_names(None).is_empty());
    }

    #[test]
    fn any_event_a_sender_names_can_reach_the_timeline_under_its_name() {
        let mut config = cinnox();
        config
            .events
            .insert("enquiry.missed".into(), Some(EventKind::DataEvent));
        let body = ENQUIRY_NEW.replace("\"enquiry.new\"", "\"enquiry.missed\"");
        let (d, r) = record(&config, &body);
        assert_eq!(d.topic, "enquiry.missed");
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::DataEvent);
        assert_eq!(e.properties["event_name"], "enquiry.missed");
        // Its Brevo name: its own, made Brevo-safe, unless `data_event.<name>` renames it.
        let mut mapping = crate::mapping::Mapping::default();
        let key = crate::brevo::ContactKey::Email("mei.lin@example.com".into());
        let source = Source::Generic("cinnox".into());
        let sent = mapping.event(&source, &key, e).expect("sent");
        assert_eq!(sent.event_name, "enquiry_missed");
        mapping.event_mapping.insert(
            crate::data_events::key("enquiry.missed"),
            "CINNOX_ENQUIRY_MISSED".into(),
        );
        let sent = mapping.event(&source, &key, e).expect("sent");
        assert_eq!(sent.event_name, "CINNOX_ENQUIRY_MISSED");
        assert_eq!(sent.event_properties["ticket_id"], "ENQ-20250108-0042");
    }

    #[test]
    fn an_enquiry_becomes_a_ticket_created_event_for_its_contact() {
        let (d, r) = record(&cinnox(), ENQUIRY_NEW);
        assert_eq!(d.delivery_id, "01JH2ZAPRUN0001");
        assert_eq!(d.topic, "enquiry.new");
        assert_eq!(
            r.person,
            Person {
                source_id: Some("c-7781".into()),
                email: Some("Mei.Lin@Example.com".into()),
                phone: Some("+65 8123 4567".into()),
                name: Some("Mei Lin Tan".into()),
                ..Default::default()
            }
        );
        let at = Utc
            .with_ymd_and_hms(2025, 1, 8, 10, 12, 7)
            .single()
            .expect("time");
        assert_eq!(r.observed_at, at);
        assert_eq!(r.events.len(), 1);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketCreated);
        assert_eq!(
            e.id,
            "generic:cinnox:ticket:ENQ-20250108-0042:ticket.created"
        );
        assert_eq!(e.ticket_id.as_deref(), Some("ENQ-20250108-0042"));
        assert_eq!(e.channel.as_deref(), Some("whatsapp"));
        assert_eq!(e.occurred_at, at);
        // The body is the profile, without empty values, so field_mapping paths read it.
        let profile = r.profile.as_ref().expect("profile");
        assert_eq!(profile["contact"]["company"], "Tan Trading");
        assert!(profile["contact"].get("owner").is_none());
    }

    #[test]
    fn each_configured_event_value_maps_as_configured() {
        let closed = ENQUIRY_NEW
            .replace("enquiry.new", "enquiry.closed")
            .replace("10:12:07", "16:40:00");
        let (_, r) = record(&cinnox(), &closed);
        assert_eq!(r.events[0].kind, EventKind::TicketClosed);
        assert_eq!(
            r.events[0].id,
            "generic:cinnox:ticket:ENQ-20250108-0042:ticket.closed:1736354400"
        );

        let created = ENQUIRY_NEW.replace("enquiry.new", "contact.created");
        let (_, r) = record(&cinnox(), &created);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::CustomerCreated);
        assert_eq!(e.id, "generic:cinnox:contact:c-7781:customer.created");
        assert_eq!(e.ticket_id, None);

        // `contact.edited: ~` updates the contact with no timeline event.
        let edited = ENQUIRY_NEW.replace("enquiry.new", "contact.edited");
        let (d, r) = record(&cinnox(), &edited);
        assert_eq!(d.topic, "contact.edited");
        assert!(r.events.is_empty());
        assert_eq!(r.person.source_id.as_deref(), Some("c-7781"));

        // Anything else is acknowledged and ignored, like the built-in sources do.
        let other = ENQUIRY_NEW.replace("enquiry.new", "enquiry.missed");
        assert_eq!(
            parse_with(&cinnox(), &other),
            Ok(Parsed::Ignored {
                topic: "enquiry.missed".into()
            })
        );
    }

    #[test]
    fn event_ids_are_stable_across_retries_and_without_a_delivery_id() {
        let mut config = cinnox();
        config.fields.delivery_id = None;
        let (d1, r1) = record(&config, ENQUIRY_NEW);
        assert_eq!(d1.delivery_id, body_hash(ENQUIRY_NEW.as_bytes()));
        // Zapier replays the step with another run id: same happening, same event id.
        let replay = ENQUIRY_NEW.replace("01JH2ZAPRUN0001", "01JH2ZAPRUN0002");
        let (d2, r2) = record(&config, &replay);
        assert_ne!(d1.delivery_id, d2.delivery_id);
        assert_eq!(r1.events[0].id, r2.events[0].id);

        // Without a subject the delivery stands in for the ticket.
        config.fields.subject = None;
        let (d, r) = record(&config, ENQUIRY_NEW);
        assert_eq!(
            r.events[0].id,
            format!("generic:cinnox:delivery:{}:ticket.created", d.delivery_id)
        );
        assert_eq!(r.events[0].ticket_id, None);
    }

    #[test]
    fn times_in_seconds_milliseconds_or_missing() {
        let at = |v: &str| {
            let body = ENQUIRY_NEW.replace("\"2025-01-08T10:12:07Z\"", v);
            record(&cinnox(), &body).1.observed_at
        };
        let expected = Utc
            .with_ymd_and_hms(2025, 1, 8, 10, 12, 7)
            .single()
            .expect("time");
        assert_eq!(at("1736331127"), expected);
        assert_eq!(at("\"1736331127\""), expected);
        assert_eq!(at("1736331127000"), expected);
        assert_eq!(at("\"2025-01-08T18:12:07+08:00\""), expected);
        assert_eq!(at("\"\""), now());
        assert_eq!(at("\"next tuesday\""), now());
    }

    #[test]
    fn first_and_last_names_and_sources_without_event_types() {
        let mut config = cinnox();
        config.fields.name = None;
        config.fields.first_name = Some("/contact/first".into());
        config.fields.last_name = Some("/contact/last".into());
        config.fields.event_type = None;
        config.events.clear();
        let body = r#"{"contact": {"first": "Mei Lin", "last": "Tan", "phone": 6581234567}}"#;
        let (d, r) = record(&config, body);
        assert_eq!(d.topic, "contact.updated");
        assert!(r.events.is_empty());
        assert_eq!(r.person.first_name.as_deref(), Some("Mei Lin"));
        assert_eq!(r.person.last_name.as_deref(), Some("Tan"));
        assert_eq!(r.person.phone.as_deref(), Some("6581234567"));
        assert_eq!(r.observed_at, now());
    }

    #[test]
    fn an_event_mapped_to_person_deleted_is_a_deletion_of_the_named_person() {
        let body = r#"{"event": "contact.deleted", "occurred_at": "2025-01-08T11:00:00Z",
            "zap_run": "run-9", "contact": {"id": "c-7781", "email": "Mei.Lin@Example.com"}}"#;
        let (d, r) = record(&cinnox(), body);
        assert_eq!(
            (d.delivery_id.as_str(), d.topic.as_str()),
            ("run-9", "contact.deleted")
        );
        assert!(r.is_deletion());
        assert_eq!(r.person.source_id.as_deref(), Some("c-7781"));
        assert_eq!(r.person.email.as_deref(), Some("Mei.Lin@Example.com"));
        assert!(r.events.is_empty() && r.profile.is_none());
        assert_eq!(r.observed_at.to_rfc3339(), "2025-01-08T11:00:00+00:00");
        let by_email = r#"{"event": "contact.deleted", "contact": {"email": "a@b.co"}}"#;
        assert!(matches!(
            parse_with(&cinnox(), by_email),
            Err(ParseError::Invalid(why)) if why.contains("fields.external_id")
        ));
    }

    #[test]
    fn deliveries_without_a_person_or_event_type_are_refused() {
        let nobody = r#"{"event": "enquiry.new", "contact": {"name": "Anonymous"}}"#;
        assert_eq!(
            parse_with(&cinnox(), nobody),
            Err(ParseError::Invalid(
                "the delivery names nobody: no value at email `/contact/email`, phone \
                 `/contact/phone`, external_id `/contact/id`"
                    .into()
            ))
        );
        let untyped = r#"{"contact": {"email": "a@b.co"}}"#;
        assert_eq!(
            parse_with(&cinnox(), untyped),
            Err(ParseError::Invalid(
                "the event type (`/event`) is missing or not text".into()
            ))
        );
        // Not an object at all: the pointers find nothing.
        assert!(matches!(
            parse_with(&cinnox(), "[1, 2]"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        for ok in ["", "/", "/a", "/a/0", "/a~1b", "/m~0n", "/contact/e-mail"] {
            assert!(valid_pointer(ok), "{ok}");
        }
        for bad in ["a", "contact.email", "/a~", "/a~2", "#/a"] {
            assert!(!valid_pointer(bad), "{bad}");
        }
        let v: Value = serde_json::json!({"a/b": 1, "m~n": 2});
        assert_eq!(v.pointer("/a~1b"), Some(&Value::from(1)));
        assert_eq!(v.pointer("/m~0n"), Some(&Value::from(2)));
    }

    #[test]
    fn auth_checks_the_configured_scheme() {
        let body = ENQUIRY_NEW.as_bytes();
        let secret = "deskbridge-test-cinnox-secret";
        let auth = cinnox().auth;
        assert_eq!(auth.secret_var(), "CINNOX_WEBHOOK_SECRET");
        let GenericAuth::HmacSha256 { scheme, .. } = &auth else {
            panic!("hmac");
        };
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-signature",
            http::HeaderValue::from_str(&scheme.sign(secret, body)).expect("value"),
        );
        assert_eq!(auth.verify(secret, &h, body, Utc::now()), Ok(()));
        assert_eq!(
            auth.verify(secret, &h, b"{}", Utc::now()),
            Err(AuthError::BadSignature)
        );

        let bearer = GenericAuth::Bearer {
            token_env: "CINNOX_WEBHOOK_TOKEN".into(),
        };
        assert_eq!(bearer.secret_var(), "CINNOX_WEBHOOK_TOKEN");
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer zap-token"),
        );
        assert_eq!(bearer.verify("zap-token", &h, body, Utc::now()), Ok(()));
        assert_eq!(
            bearer.verify("other", &h, body, Utc::now()),
            Err(AuthError::BadSignature)
        );

        // HMAC-SHA1, as older senders sign; an SHA-256 signature does not pass for it.
        let sha1 = GenericAuth::HmacSha1 {
            scheme: scheme.clone(),
            secret_env: "DESK_SECRET".into(),
        };
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-signature",
            http::HeaderValue::from_str(&scheme.sign_sha1(secret, body)).expect("value"),
        );
        assert_eq!(sha1.verify(secret, &h, body, Utc::now()), Ok(()));
        assert_eq!(
            auth.verify(secret, &h, body, Utc::now()),
            Err(AuthError::BadSignature)
        );
        assert!(scheme.sign_sha1(secret, body).len() < scheme.sign(secret, body).len());

        // Basic: the variable holds `user:password`.
        let basic = GenericAuth::Basic {
            credentials_env: "DESK_BASIC".into(),
        };
        assert_eq!(basic.secret_var(), "DESK_BASIC");
        let mut h = http::HeaderMap::new();
        let value = signature::basic_header("zapier:s3cret");
        assert_eq!(value, "Basic emFwaWVyOnMzY3JldA==");
        h.insert(
            "authorization",
            http::HeaderValue::from_str(&value).expect("value"),
        );
        assert_eq!(basic.verify("zapier:s3cret", &h, body, Utc::now()), Ok(()));
        for wrong in ["zapier:other", "", "zapier"] {
            assert_eq!(
                basic.verify(wrong, &h, body, Utc::now()),
                Err(AuthError::BadSignature),
                "{wrong}"
            );
        }
        let mut h = http::HeaderMap::new();
        h.insert("authorization", http::HeaderValue::from_static("Basic !!"));
        assert_eq!(
            basic.verify("zapier:s3cret", &h, body, Utc::now()),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            basic.verify("zapier:s3cret", &http::HeaderMap::new(), body, Utc::now()),
            Err(AuthError::Missing("Authorization".into()))
        );
    }
}
