//! Intercom webhooks (API 2.x notification envelopes) and the Intercom contact → [`Person`]
//! conversion.
//!
//! Every notification is `{"type":"notification_event","topic":…,"id":"notif_…",
//! "created_at":…,"data":{"item":{…}}}`; the item's own `type` says what it is (`contact`,
//! `contact_tag`, `conversation`, …). The notification `id` is the dedupe key.
//!
//! Contacts list their companies only as references (`companies.data[{type, id, url}]`); the
//! company itself (`GET /companies/{id}`) is fetched by the look-up and the sync reader and put
//! into the profile under `company` ([`with_company`]), where the default rules read
//! `company.name`, `company.plan` and `company.size`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::conversation::{
    ai_events, carry_tags, conversation_person, conversation_record, state_change, ticket_of,
    ticket_record, with_ai,
};
pub use super::fields::person_from_contact;
use super::fields::{event, person_with, text, time};
use crate::helpdesk::parse::{Delivery, ParseError, Parsed, check_depth, parse_json};
use crate::model::{EventKind, Person, Presence, Profile, Record};

/// Parses a verified Intercom notification (already decoded as `value`). A contact item is
/// moved, not copied, into its record's profile.
pub fn parse_webhook(mut value: Value, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ParseError::Invalid("Intercom body is not a JSON object".into()))?;
    let topic = text(obj.get("topic")).ok_or(ParseError::Missing("topic"))?;
    if topic == "ping" {
        return Ok(Parsed::Ignored { topic });
    }
    let delivery_id = text(obj.get("id")).ok_or(ParseError::Missing("id"))?;
    let sent_at = time(obj.get("created_at"))
        .or_else(|| time(obj.get("first_sent_at")))
        .unwrap_or(received_at);
    let item = value
        .get_mut("data")
        .and_then(|d| d.get_mut("item"))
        .filter(|i| i.is_object())
        .map(Value::take)
        .ok_or(ParseError::Missing("data.item"))?;
    parse_item(topic, delivery_id, sent_at, item)
}

/// Parses a verified Intercom notification from its bytes, as [`parse_webhook`] does, with the
/// nesting limit. A contact item is cut out of the body as JSON text and becomes its record's
/// profile without being built as a tree: only the few fields the record needs are read from
/// it. Every other item is read as a tree.
pub fn parse_webhook_body(body: &[u8], received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    check_depth(body)?;
    // A body of any other shape (not an object, a `data` that is not one, a repeated key) is
    // read whole as a tree, where it gets the answer it always got.
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return parse_webhook(parse_json(body)?, received_at);
    };
    let topic = text(envelope.topic.as_ref()).ok_or(ParseError::Missing("topic"))?;
    if topic == "ping" {
        return Ok(Parsed::Ignored { topic });
    }
    let delivery_id = text(envelope.id.as_ref()).ok_or(ParseError::Missing("id"))?;
    let sent_at = time(envelope.created_at.as_ref())
        .or_else(|| time(envelope.first_sent_at.as_ref()))
        .unwrap_or(received_at);
    let item = envelope
        .data
        .and_then(|d| d.item)
        .filter(|i| i.get().starts_with('{'))
        .ok_or(ParseError::Missing("data.item"))?;
    if is_contact_topic(&topic)
        && let Ok(head) = serde_json::from_str::<ContactHead>(item.get())
    {
        let person = person_with(|key| head.field(key));
        let record = contact_topic_record(
            &topic,
            person,
            time(head.created_at.as_ref()),
            time(head.updated_at.as_ref()),
            Profile::from_text(item.to_owned()),
            sent_at,
        )?;
        return Ok(accepted(delivery_id, topic, record));
    }
    let item = serde_json::from_str(item.get()).map_err(|e| ParseError::NotJson(e.to_string()))?;
    parse_item(topic, delivery_id, sent_at, item)
}

/// The notification envelope, with its item left as text.
#[derive(Deserialize)]
struct Envelope<'a> {
    topic: Option<Value>,
    id: Option<Value>,
    created_at: Option<Value>,
    first_sent_at: Option<Value>,
    #[serde(borrow)]
    data: Option<EnvelopeData<'a>>,
}

#[derive(Deserialize)]
struct EnvelopeData<'a> {
    #[serde(borrow)]
    item: Option<&'a RawValue>,
}

/// What a contact record reads from a contact item; every other field is skipped unbuilt.
#[derive(Deserialize)]
struct ContactHead {
    id: Option<Value>,
    email: Option<Value>,
    phone: Option<Value>,
    name: Option<Value>,
    external_id: Option<Value>,
    created_at: Option<Value>,
    updated_at: Option<Value>,
}

impl ContactHead {
    fn field(&self, key: &str) -> Option<&Value> {
        match key {
            "id" => self.id.as_ref(),
            "email" => self.email.as_ref(),
            "phone" => self.phone.as_ref(),
            "name" => self.name.as_ref(),
            "external_id" => self.external_id.as_ref(),
            _ => None,
        }
    }
}

/// Topics whose item is a whole contact, carried as the record's profile.
fn is_contact_topic(topic: &str) -> bool {
    matches!(
        topic,
        "contact.user.created"
            | "contact.lead.created"
            | "contact.user.updated"
            | "contact.lead.updated"
            | "contact.lead.signed_up"
            | "contact.lead.added_email"
            | "contact.email.updated"
    )
}

fn accepted(delivery_id: String, topic: String, record: Record) -> Parsed {
    Parsed::Accepted(Delivery {
        delivery_id,
        topic,
        records: vec![record],
    })
}

/// The record of a contact topic: the contact as its profile, and for a new contact the
/// customer-created milestone at the contact's creation time.
fn contact_topic_record(
    topic: &str,
    person: Person,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    profile: Profile,
    sent_at: DateTime<Utc>,
) -> Result<Record, ParseError> {
    if person.source_id.is_none() {
        return Err(ParseError::Missing("data.item.id"));
    }
    let subject = format!(
        "contact:{}",
        person.source_id.as_deref().unwrap_or_default()
    );
    let mut record = Record {
        person,
        observed_at: updated_at.unwrap_or(sent_at),
        profile: Some(profile),
        ..Default::default()
    };
    if topic.ends_with(".created") {
        record.events.push(event(
            EventKind::CustomerCreated,
            &subject,
            created_at.unwrap_or(sent_at),
            Map::new(),
        ));
    }
    Ok(record)
}

/// The records of one notification's item.
fn parse_item(
    topic: String,
    delivery_id: String,
    sent_at: DateTime<Utc>,
    item: Value,
) -> Result<Parsed, ParseError> {
    let record = match topic.as_str() {
        t if is_contact_topic(t) => {
            let (created_at, updated_at) =
                (time(item.get("created_at")), time(item.get("updated_at")));
            let person = person_from_contact(&item);
            contact_topic_record(t, person, created_at, updated_at, item.into(), sent_at)?
        }
        // Deleted or archived: what it does in Brevo is the `deletions` policy's (see
        // `crate::deletions`). An unarchived contact is written again.
        "contact.deleted" | "contact.archived" => {
            let person = person_from_contact(&item);
            if person.source_id.is_none() {
                return Err(ParseError::Missing("data.item.id"));
            }
            Record::deletion(person, sent_at)
        }
        "contact.unarchived" | "contact.unarchive" => {
            let updated_at = time(item.get("updated_at"));
            let person = person_from_contact(&item);
            let mut r =
                contact_topic_record(&topic, person, None, updated_at, item.into(), sent_at)?;
            r.observed_at = r.observed_at.max(sent_at);
            r.presence = Some(Presence::Restored);
            r
        }
        "contact.user.tag.created"
        | "contact.lead.tag.created"
        | "contact.user.tag.deleted"
        | "contact.lead.tag.deleted" => {
            let tag = item
                .get("tag")
                .and_then(|t| text(t.get("name")))
                .ok_or(ParseError::Missing("data.item.tag.name"))?;
            let contact = item
                .get("contact")
                .filter(|c| c.is_object())
                .ok_or(ParseError::Missing("data.item.contact"))?;
            let at = time(item.get("created_at")).unwrap_or(sent_at);
            let mut r = reference_record(contact, at)?;
            if topic.ends_with(".deleted") {
                r.tags_removed.push(tag);
            } else {
                r.tags_added.push(tag);
            }
            r
        }
        "contact.unsubscribed" => {
            // The item is a contact, or a subscription object that points at one (never take
            // a subscription's own `id` for the person's).
            let is_contact = matches!(text(item.get("type")).as_deref(), None | Some("contact"));
            let mut r = match item.get("contact").filter(|c| c.is_object()) {
                _ if is_contact => reference_record(&item, sent_at)?,
                Some(contact) => reference_record(contact, sent_at)?,
                None => {
                    let id = text(item.get("contact_id"))
                        .ok_or(ParseError::Missing("data.item.contact"))?;
                    let person = Person {
                        source_id: Some(id),
                        ..Default::default()
                    };
                    Record {
                        person,
                        observed_at: sent_at,
                        ..Default::default()
                    }
                }
            };
            r.unsubscribed = Some(true);
            r
        }
        "conversation.user.created" => with_ai(&item, EventKind::TicketCreated, sent_at)?,
        "conversation.admin.closed" => with_ai(&item, EventKind::TicketClosed, sent_at)?,
        "conversation.admin.opened" => with_ai(&item, EventKind::TicketReopened, sent_at)?,
        "conversation.rating.added" => with_ai(&item, EventKind::SurveyResponded, sent_at)?,
        "conversation.admin.snoozed" => with_ai(&item, EventKind::TicketSnoozed, sent_at)?,
        "conversation.admin.unsnoozed" => with_ai(&item, EventKind::TicketUnsnoozed, sent_at)?,
        // Replies matter only for what they say of the AI agent's outcome. A bot's reply
        // arrives on both admin.replied and operator.replied; the outcome is one event per
        // conversation whichever carries it, and however often.
        "conversation.admin.replied"
        | "conversation.operator.replied"
        | "conversation.user.replied"
        | "conversation.admin.assigned" => {
            let events = ai_events(&item, sent_at);
            if events.is_empty() {
                return Ok(Parsed::Ignored { topic });
            }
            let person =
                conversation_person(&item).ok_or(ParseError::Missing("data.item.contacts"))?;
            let mut r = Record {
                person,
                observed_at: time(item.get("updated_at")).unwrap_or(sent_at),
                events,
                ..Default::default()
            };
            carry_tags(&mut r, &item);
            r
        }
        // Intercom Tickets (API 2.x): the same milestones as conversations.
        "ticket.created" => ticket_record(&item, EventKind::TicketCreated, sent_at)?,
        "ticket.closed" | "ticket.resolved" => {
            ticket_record(&item, EventKind::TicketClosed, sent_at)?
        }
        "ticket.state.updated" => match state_change(ticket_of(&item)) {
            Some((kind, _)) => ticket_record(&item, kind, sent_at)?,
            None => return Ok(Parsed::Ignored { topic }),
        },
        // Intercom documents the topic but not its payload: a rating it carries the way
        // conversations do is a survey response; anything else is ignored, not refused.
        "ticket.rating.provided" => {
            let ticket = ticket_of(&item);
            if !ticket
                .get("conversation_rating")
                .is_some_and(Value::is_object)
            {
                return Ok(Parsed::Ignored { topic });
            }
            conversation_record(ticket, EventKind::SurveyResponded, sent_at)?
        }
        "ticket.admin.snoozed" => ticket_record(&item, EventKind::TicketSnoozed, sent_at)?,
        "ticket.admin.unsnoozed" => ticket_record(&item, EventKind::TicketUnsnoozed, sent_at)?,
        // Everything else is a topic we do not act on.
        _ => return Ok(Parsed::Ignored { topic }),
    };
    Ok(accepted(delivery_id, topic, record))
}

/// The Intercom id of the contact's first listed company. API 2.x lists references under
/// `companies.data`; 1.x objects listed them under `companies.companies`.
pub fn first_company_id(contact: &Value) -> Option<String> {
    let companies = contact.get("companies")?;
    let first = companies
        .get("data")
        .or_else(|| companies.get("companies"))
        .and_then(Value::as_array)?
        .first()?;
    text(first.get("id"))
}

/// Whether `profile` is a contact that names a company but does not carry it yet.
pub fn lacks_company(profile: &Value) -> bool {
    profile.get("company").is_none() && first_company_id(profile).is_some()
}

/// `profile` with `company` (an Intercom company object) under `company`, its `plan` object
/// replaced by the plan's name so that `company.plan` is text (the id stays as `plan_id`). A
/// profile that is not an object, or already has a `company`, is left alone.
pub fn with_company(profile: &mut Value, company: &Value) {
    let Some(contact) = profile.as_object_mut() else {
        return;
    };
    if contact.contains_key("company") || !company.is_object() {
        return;
    }
    let mut company = company.clone();
    if let Some(c) = company.as_object_mut()
        && let Some(plan) = c.get("plan").filter(|p| p.is_object()).cloned()
    {
        match text(plan.get("name")) {
            Some(name) => c.insert("plan".into(), Value::String(name)),
            None => c.remove("plan"),
        };
        if let Some(id) = text(plan.get("id")) {
            c.insert("plan_id".into(), Value::String(id));
        }
    }
    contact.insert("company".into(), company);
}

/// A record carrying a whole contact as its profile.
pub(crate) fn contact_record(item: Value, sent_at: DateTime<Utc>) -> Result<Record, ParseError> {
    let person = person_from_contact(&item);
    if person.source_id.is_none() {
        return Err(ParseError::Missing("data.item.id"));
    }
    Ok(Record {
        person,
        observed_at: time(item.get("updated_at")).unwrap_or(sent_at),
        profile: Some(item.into()),
        ..Default::default()
    })
}

/// A record naming a contact that may be only a reference (`{"type":"contact","id":…}`); its
/// profile is kept only when it carries more than identifiers.
fn reference_record(contact: &Value, at: DateTime<Utc>) -> Result<Record, ParseError> {
    let person = person_from_contact(contact);
    if person.source_id.is_none() && person.email.is_none() {
        return Err(ParseError::Missing("data.item.contact.id"));
    }
    let rich = contact.as_object().is_some_and(|c| {
        c.keys()
            .any(|k| !matches!(k.as_str(), "type" | "id" | "external_id" | "email"))
    });
    Ok(Record {
        person,
        observed_at: at,
        profile: rich.then(|| contact.clone().into()),
        ..Default::default()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Source, SupportEvent};
    use chrono::TimeZone;
    use serde_json::json;

    const USER_CREATED: &str =
        include_str!("../../../tests/fixtures/intercom/contact-user-created.json");
    const LEAD_UPDATED: &str =
        include_str!("../../../tests/fixtures/intercom/contact-lead-updated.json");
    const TAG_CREATED: &str =
        include_str!("../../../tests/fixtures/intercom/contact-user-tag-created.json");
    const UNSUBSCRIBED: &str =
        include_str!("../../../tests/fixtures/intercom/contact-unsubscribed.json");
    const DELETED: &str = include_str!("../../../tests/fixtures/intercom/contact-deleted.json");
    const CONV_CREATED: &str =
        include_str!("../../../tests/fixtures/intercom/conversation-user-created.json");
    const CONV_CLOSED: &str =
        include_str!("../../../tests/fixtures/intercom/conversation-admin-closed.json");
    const CONV_RATED: &str =
        include_str!("../../../tests/fixtures/intercom/conversation-rating-added.json");
    const PING: &str = include_str!("../../../tests/fixtures/intercom/ping.json");

    const CONTACT_ID: &str = "6762f0d91bb69f9f2193bb7e";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 8, 12, 0, 0)
            .single()
            .expect("time")
    }

    /// Parses `body` both ways, from its bytes (as the webhook function does) and from its tree
    /// (as `deskbridge preview` does), and checks that they agree.
    fn parse(body: &str) -> Result<Parsed, ParseError> {
        let from_bytes = parse_webhook_body(body.as_bytes(), now());
        let from_tree = crate::helpdesk::parse::parse_json(body.as_bytes())
            .and_then(|value| parse_webhook(value, now()));
        assert_eq!(from_bytes, from_tree, "{body}");
        from_bytes
    }

    #[test]
    fn a_contact_reaches_the_job_as_the_bodys_own_text() {
        let body = r#"{"type": "notification_event", "topic": "contact.user.updated", "id": "notif_9",
            "created_at": 1700000000, "data": {"item": {"type": "contact", "id": "c9",
            "email": "ada@example.com",   "custom_attributes": {"tier": "gold", "n": 1.50}}}}"#;
        let (_, r) = record(body);
        let written = serde_json::to_string(&r).expect("write");
        // Written as it came, spacing and number spelling included: never rebuilt as a tree.
        assert!(
            written.contains(
                r#""email": "ada@example.com",   "custom_attributes": {"tier": "gold", "n": 1.50}"#
            ),
            "{written}"
        );
        assert_eq!(r.person.email.as_deref(), Some("ada@example.com"));
        let back: Record = serde_json::from_str(&written).expect("read");
        assert_eq!(back, r);
        assert_eq!(
            back.profile
                .as_deref()
                .and_then(|p| p.pointer("/custom_attributes/tier")),
            Some(&json!("gold"))
        );
    }

    #[test]
    fn bodies_of_other_shapes_get_the_answers_the_tree_gives() {
        for body in [
            r#"[]"#,
            r#"{"topic": "contact.user.created", "id": "n1", "data": 5}"#,
            r#"{"topic": "contact.user.created", "id": "n1", "data": {"item": []}}"#,
            r#"{"topic": "contact.user.created", "id": "n1", "data": {"item": {"email": "a@b.co"}}}"#,
            r#"{"topic": "contact.user.created", "topic": "ping", "id": "n1", "data": {"item": {"id": "c1"}}}"#,
            r#"{"topic": "contact.user.created", "id": "n1", "data": {"item": {"id": "c1", "id": "c2"}}}"#,
            r#"{"topic": "contact.user.created", "id": "n1", "data": {"item": {"id": ["c1"]}}}"#,
            r#"{"topic": 7, "id": {"x": 1}, "data": {"item": {"id": "c1"}}}"#,
            r#"{"id": "n1"}"#,
        ] {
            parse(body).ok();
        }
        for fixture in [
            "webhook-intercom-contact-created.json",
            "webhook-intercom-conversation-rating.json",
        ] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/");
            let text = std::fs::read_to_string(format!("{path}{fixture}")).expect("fixture");
            let event: Value = serde_json::from_str(&text).expect("json");
            let body = event
                .get("body")
                .and_then(Value::as_str)
                .map_or(text.clone(), str::to_string);
            assert!(matches!(parse(&body), Ok(Parsed::Accepted(_))), "{fixture}");
        }
    }

    fn record(body: &str) -> (Delivery, Record) {
        match parse(body) {
            Ok(Parsed::Accepted(mut d)) => {
                assert_eq!(d.records.len(), 1);
                let r = d.records.remove(0);
                (d, r)
            }
            other => panic!("expected an accepted delivery, got {other:?}"),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("time")
    }

    #[test]
    fn contact_created_carries_profile_and_event() {
        let (d, r) = record(USER_CREATED);
        assert_eq!(d.delivery_id, "notif_8d0c7e2a-bd3f-4a51-9c5e-2f1b0a9c8d7e");
        assert_eq!(d.topic, "contact.user.created");
        assert_eq!(r.person.source_id.as_deref(), Some(CONTACT_ID));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(r.person.phone.as_deref(), Some("+14155550123"));
        assert_eq!(r.person.name.as_deref(), Some("Jane Doe"));
        let profile = r.profile.as_ref().expect("profile");
        assert_eq!(profile["custom_attributes"]["plan_tier"], "pro");
        assert_eq!(r.observed_at, at(1_736_330_000));
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].kind, EventKind::CustomerCreated);
        assert_eq!(r.events[0].occurred_at, at(1_736_330_000));
        let id = SupportEvent::stable_id(
            &Source::Intercom,
            &format!("contact:{CONTACT_ID}"),
            EventKind::CustomerCreated,
            at(1_736_330_000),
        );
        assert_eq!(r.events[0].id, id);

        let lead = USER_CREATED.replace("contact.user.created", "contact.lead.created");
        assert_eq!(record(&lead).1.events[0].kind, EventKind::CustomerCreated);
    }

    #[test]
    fn lead_update_without_email_is_addressed_by_id() {
        let (_, r) = record(LEAD_UPDATED);
        assert_eq!(
            r.person.source_id.as_deref(),
            Some("6762f11a2c3d4e5f60718293")
        );
        assert_eq!(r.person.email, None);
        assert!(r.events.is_empty());
        assert_eq!(
            r.profile.as_ref().and_then(|p| p.get("role")),
            Some(&Value::from("lead"))
        );
    }

    #[test]
    fn tag_notifications_become_tag_deltas() {
        let (_, r) = record(TAG_CREATED);
        assert_eq!(r.tags_added, vec!["vip".to_string()]);
        assert!(r.tags_removed.is_empty());
        assert_eq!(r.person.source_id.as_deref(), Some(CONTACT_ID));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        let deleted = TAG_CREATED.replace("contact.user.tag.created", "contact.lead.tag.deleted");
        let (_, r) = record(&deleted);
        assert_eq!(r.tags_removed, vec!["vip".to_string()]);
        assert!(r.tags_added.is_empty());
    }

    #[test]
    fn unsubscribes_mark_the_person() {
        let (_, r) = record(UNSUBSCRIBED);
        assert_eq!(r.unsubscribed, Some(true));
        assert_eq!(r.person.source_id.as_deref(), Some(CONTACT_ID));
        // A subscription-shaped item that points at the contact.
        for item in [
            serde_json::json!({"type": "subscription", "contact": {"type": "contact", "id": CONTACT_ID}}),
            serde_json::json!({"type": "subscription", "contact_id": CONTACT_ID}),
        ] {
            let v = serde_json::json!({"type": "notification_event", "topic": "contact.unsubscribed",
                "id": "notif_1", "created_at": 1_736_330_000, "data": {"item": item}});
            let (_, r) = record(&v.to_string());
            assert_eq!(r.unsubscribed, Some(true));
            assert_eq!(r.person.source_id.as_deref(), Some(CONTACT_ID));
        }
        let v = serde_json::json!({"type": "notification_event", "topic": "contact.unsubscribed",
            "id": "notif_1", "data": {"item": {"type": "subscription"}}});
        assert_eq!(
            parse(&v.to_string()),
            Err(ParseError::Missing("data.item.contact"))
        );
    }

    #[test]
    fn deleted_and_archived_contacts_are_deletions_and_unarchived_ones_restored() {
        let (_, r) = record(DELETED);
        assert!(r.is_deletion());
        assert_eq!(
            r.person.source_id.as_deref(),
            Some("6762f0d91bb69f9f2193bb7e")
        );
        assert_eq!(r.person.external_id.as_deref(), Some("cust-1042"));
        assert!(r.profile.is_none() && r.events.is_empty());
        let archived = DELETED.replace("contact.deleted", "contact.archived");
        assert!(record(&archived).1.is_deletion());
        let back = USER_CREATED.replace("contact.user.created", "contact.unarchived");
        let (_, r) = record(&back);
        assert_eq!(r.presence, Some(Presence::Restored));
        assert!(r.events.is_empty() && r.profile.is_some());
        let nameless = DELETED.replace(r#""id": "6762f0d91bb69f9f2193bb7e", "#, "");
        assert_eq!(parse(&nameless), Err(ParseError::Missing("data.item.id")));
    }

    #[test]
    fn pings_and_unknown_topics_are_ignored() {
        assert_eq!(
            parse(PING),
            Ok(Parsed::Ignored {
                topic: "ping".into()
            })
        );
        let company = USER_CREATED.replace("contact.user.created", "company.created");
        assert_eq!(
            parse(&company),
            Ok(Parsed::Ignored {
                topic: "company.created".into()
            })
        );
    }

    #[test]
    fn conversation_created_names_the_contact() {
        let (d, r) = record(CONV_CREATED);
        assert_eq!(d.topic, "conversation.user.created");
        assert_eq!(r.person.source_id.as_deref(), Some(CONTACT_ID));
        assert_eq!(r.person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(r.person.name.as_deref(), Some("Jane Doe"));
        assert_eq!(r.profile, None);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketCreated);
        assert_eq!(e.ticket_id.as_deref(), Some("147"));
        assert_eq!(e.channel.as_deref(), Some("conversation"));
        assert_eq!(e.occurred_at, at(1_736_330_561));
        assert_eq!(
            e.id,
            SupportEvent::stable_id(
                &Source::Intercom,
                "conversation:147",
                EventKind::TicketCreated,
                e.occurred_at
            )
        );
        assert_eq!(e.properties["status"], "open");
    }

    #[test]
    fn conversation_closed_and_reopened() {
        let (_, r) = record(CONV_CLOSED);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::TicketClosed);
        assert_eq!(e.occurred_at, at(1_736_334_000));
        assert_eq!(e.properties["agent_name"], "Sam Agent");
        assert_eq!(e.channel.as_deref(), Some("email"));
        // statistics in seconds -> minutes, for the support aggregates
        assert_eq!(e.properties["first_reply_minutes"], 12.6);
        assert_eq!(e.properties["resolution_time"], 57.3);
        // Admin-authored source: the person comes from the contact list only.
        assert_eq!(r.person.source_id.as_deref(), Some(CONTACT_ID));
        assert_eq!(r.person.email, None);

        let opened = CONV_CLOSED.replace("conversation.admin.closed", "conversation.admin.opened");
        let (_, r) = record(&opened);
        assert_eq!(r.events[0].kind, EventKind::TicketReopened);
        assert_eq!(r.events[0].occurred_at, at(1_736_333_000));
    }

    /// A notification of `topic` whose item is `item`.
    fn notification(topic: &str, item: Value) -> String {
        json!({"type": "notification_event", "topic": topic, "id": format!("notif_{topic}"),
            "created_at": 1_736_340_000, "data": {"type": "notification_event_data", "item": item}})
        .to_string()
    }

    fn fin_conversation(state: &str) -> Value {
        json!({"type": "conversation", "id": "149", "created_at": 1_736_330_000,
            "updated_at": 1_736_336_000, "state": "open", "ai_agent_participated": true,
            "ai_agent": {"source_type": "essentials_plan_setup", "source_title": "Refunds",
                "last_answer_type": "ai_answer", "resolution_state": state, "rating": 4,
                "rating_remark": "quick"},
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": CONTACT_ID}]}})
    }

    #[test]
    fn a_fin_outcome_is_one_event_whichever_reply_topic_carries_it() {
        // A bot's reply comes as admin.replied and again as operator.replied.
        let (_, admin) = record(&notification(
            "conversation.admin.replied",
            fin_conversation("confirmed_resolution"),
        ));
        let (_, operator) = record(&notification(
            "conversation.operator.replied",
            fin_conversation("confirmed_resolution"),
        ));
        assert_eq!(admin.events.len(), 1);
        let e = &admin.events[0];
        assert_eq!(e.kind, EventKind::AiResolved);
        assert_eq!(e.id, operator.events[0].id, "one event id: sent once");
        assert_eq!(e.ticket_id.as_deref(), Some("149"));
        assert_eq!(e.properties["resolution_state"], "confirmed_resolution");
        assert_eq!(e.properties["rating"], 4);
        assert_eq!(admin.person.source_id.as_deref(), Some(CONTACT_ID));

        let (_, routed) = record(&notification(
            "conversation.admin.assigned",
            fin_conversation("routed_to_team"),
        ));
        assert_eq!(routed.events[0].kind, EventKind::AiEscalated);
        // A closing carries the milestone and the outcome.
        let (_, closed) = record(&notification(
            "conversation.admin.closed",
            fin_conversation("assumed_resolution"),
        ));
        let kinds: Vec<EventKind> = closed.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::TicketClosed, EventKind::AiResolved]);
        // A reply without an AI outcome changes nothing.
        let mut plain = fin_conversation("abandoned");
        plain["ai_agent_participated"] = json!(false);
        assert!(matches!(
            parse(&notification("conversation.admin.replied", plain)),
            Ok(Parsed::Ignored { .. })
        ));
    }

    #[test]
    fn snoozes_are_milestones_of_the_conversation() {
        let mut item = fin_conversation("abandoned");
        item["snoozed_until"] = json!(1_736_400_000);
        let (_, r) = record(&notification("conversation.admin.snoozed", item.clone()));
        assert_eq!(r.events.len(), 1, "no AI outcome in an abandoned state");
        assert_eq!(r.events[0].kind, EventKind::TicketSnoozed);
        assert_eq!(
            r.events[0].properties["snoozed_until"],
            "2025-01-09T05:20:00Z"
        );
        assert_eq!(r.events[0].occurred_at, at(1_736_336_000));
        let (_, r) = record(&notification("conversation.admin.unsnoozed", item));
        assert_eq!(r.events[0].kind, EventKind::TicketUnsnoozed);
    }

    #[test]
    fn tickets_have_the_conversation_milestones() {
        let ticket = |state: Value| {
            json!({"type": "ticket", "id": "150", "ticket_id": "42", "created_at": 1_736_330_000,
                "updated_at": 1_736_338_000, "ticket_state": state, "open": true,
                "ticket_type": {"type": "ticket_type", "name": "Bug report"},
                "ticket_attributes": {"_default_title_": "Export fails"},
                "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": CONTACT_ID}]}})
        };
        let (_, created) = record(&notification("ticket.created", ticket(json!("submitted"))));
        let e = &created.events[0];
        assert_eq!(e.kind, EventKind::TicketCreated);
        assert_eq!(e.id, "intercom:conversation:150:ticket.created");
        assert_eq!(e.occurred_at, at(1_736_330_000));
        assert_eq!(e.properties["subject"], "Export fails");
        assert_eq!(e.properties["ticket_type"], "Bug report");
        assert_eq!(e.properties["ticket_number"], "42");
        // 2.14 on: the state is an object; resolved is a closing, other states are not.
        let resolved = json!({"type": "ticket_state", "id": "7", "category": "resolved"});
        let (_, closed) = record(&notification("ticket.state.updated", ticket(resolved)));
        assert_eq!(closed.events[0].kind, EventKind::TicketClosed);
        assert_eq!(closed.events[0].occurred_at, at(1_736_338_000));
        assert!(matches!(
            parse(&notification(
                "ticket.state.updated",
                ticket(json!("in_progress"))
            )),
            Ok(Parsed::Ignored { .. })
        ));
        // Leaving `resolved` is a reopen, dated by the part that did it; a move between open
        // states is not, nor is a state change sent without the ticket's parts.
        let mut reopened = ticket(json!({"type": "ticket_state", "category": "in_progress"}));
        reopened["ticket_parts"] = json!({"type": "ticket_part.list", "ticket_parts": [
            {"type": "ticket_part", "id": "1", "part_type": "ticket_state_updated_by_admin",
             "previous_ticket_state": "in_progress", "ticket_state": "resolved",
             "created_at": 1_736_335_000},
            {"type": "ticket_part", "id": "2", "part_type": "comment",
             "ticket_state": "resolved", "created_at": 1_736_336_000},
            {"type": "ticket_part", "id": "3", "part_type": "ticket_state_updated_by_admin",
             "previous_ticket_state": "resolved", "ticket_state": "in_progress",
             "created_at": 1_736_337_000}]});
        let (_, r) = record(&notification("ticket.state.updated", reopened.clone()));
        assert_eq!(r.events[0].kind, EventKind::TicketReopened);
        assert_eq!(r.events[0].occurred_at, at(1_736_337_000));
        assert_eq!(r.events[0].ticket_id.as_deref(), Some("150"));
        let mut moved = reopened.clone();
        moved["ticket_parts"]["ticket_parts"][2]["previous_ticket_state"] = json!("submitted");
        assert!(matches!(
            parse(&notification("ticket.state.updated", moved)),
            Ok(Parsed::Ignored { .. })
        ));
        // A rated ticket (the payload is undocumented): a rating shaped as on conversations
        // is a survey response on the ticket's thread; without one the topic is ignored.
        let mut rated = ticket(json!("resolved"));
        rated["conversation_rating"] =
            json!({"rating": 2, "remark": "slow", "created_at": 1_736_339_000});
        let (_, r) = record(&notification("ticket.rating.provided", rated));
        assert_eq!(r.events[0].kind, EventKind::SurveyResponded);
        assert_eq!(r.events[0].properties["score"], 2);
        assert_eq!(r.events[0].ticket_id.as_deref(), Some("150"));
        assert!(matches!(
            parse(&notification(
                "ticket.rating.provided",
                ticket(json!("resolved"))
            )),
            Ok(Parsed::Ignored { .. })
        ));
        // 2.15 on, ticket.closed nests the ticket.
        let nested = json!({"type": "ticket_closed", "ticket": ticket(json!("resolved"))});
        let (_, closed2) = record(&notification("ticket.closed", nested));
        assert_eq!(
            closed2.events[0].id, closed.events[0].id,
            "one closing, two topics"
        );
        let (_, snoozed) = record(&notification(
            "ticket.admin.snoozed",
            ticket(json!("in_progress")),
        ));
        assert_eq!(snoozed.events[0].kind, EventKind::TicketSnoozed);
    }

    #[test]
    fn rating_becomes_a_survey_response() {
        let (_, r) = record(CONV_RATED);
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::SurveyResponded);
        assert_eq!(e.properties["score"], 5);
        assert_eq!(e.properties["remark"], "Sorted in minutes, thank you");
        assert_eq!(e.occurred_at, at(1_736_337_600));
        let out_of_range = CONV_RATED.replace("\"rating\": 5", "\"rating\": 9");
        assert_eq!(
            parse(&out_of_range),
            Err(ParseError::Missing("data.item.conversation_rating.rating"))
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for (body, err) in [
            (
                "[1]",
                ParseError::Invalid("Intercom body is not a JSON object".into()),
            ),
            (
                r#"{"type":"notification_event"}"#,
                ParseError::Missing("topic"),
            ),
            (
                r#"{"topic":"contact.user.created","data":{"item":{}}}"#,
                ParseError::Missing("id"),
            ),
            (
                r#"{"topic":"contact.user.created","id":"n"}"#,
                ParseError::Missing("data.item"),
            ),
            (
                r#"{"topic":"contact.user.created","id":"n","data":{"item":"x"}}"#,
                ParseError::Missing("data.item"),
            ),
            (
                r#"{"topic":"contact.user.created","id":"n","data":{"item":{"type":"contact"}}}"#,
                ParseError::Missing("data.item.id"),
            ),
            (
                r#"{"topic":"contact.user.tag.created","id":"n","data":{"item":{"tag":{}}}}"#,
                ParseError::Missing("data.item.tag.name"),
            ),
            (
                r#"{"topic":"contact.user.tag.created","id":"n","data":{"item":{"tag":{"name":"vip"}}}}"#,
                ParseError::Missing("data.item.contact"),
            ),
            (
                r#"{"topic":"conversation.user.created","id":"n","data":{"item":{"id":"1"}}}"#,
                ParseError::Missing("data.item.contacts"),
            ),
            (
                r#"{"topic":"conversation.rating.added","id":"n","data":{"item":{"id":"1","contacts":{"contacts":[{"id":"c"}]}}}}"#,
                ParseError::Missing("data.item.conversation_rating"),
            ),
        ] {
            assert_eq!(parse(body), Err(err), "{body}");
        }
        assert!(matches!(
            parse(r#"{"topic": null}"#),
            Err(ParseError::Missing("topic"))
        ));
    }

    #[test]
    fn contacts_become_people() {
        let p = person_from_contact(
            &serde_json::json!({"type": "contact", "id": "abc", "email": null,
            "phone": "+1 415 555 0199", "name": " ", "role": "lead"}),
        );
        assert_eq!(
            p,
            Person {
                source_id: Some("abc".into()),
                phone: Some("+1 415 555 0199".into()),
                ..Default::default()
            }
        );
    }

    /// `GET /companies/{id}` as documented for API 2.x.
    pub(crate) const COMPANY: &str =
        include_str!("../../../tests/fixtures/intercom/api-company.json");

    #[test]
    fn companies_are_referenced_by_contacts_and_attached_as_company() {
        let mut contact = serde_json::json!({"type": "contact", "id": "c1",
            "companies": {"type": "list", "data": [
                {"type": "company", "id": "6762f0f21bb69f9f2193bb83", "url": "/companies/6762f0f21bb69f9f2193bb83"},
                {"type": "company", "id": "other", "url": "/companies/other"}],
                "url": "/contacts/c1/companies", "total_count": 2, "has_more": false}});
        assert_eq!(
            first_company_id(&contact).as_deref(),
            Some("6762f0f21bb69f9f2193bb83")
        );
        assert!(lacks_company(&contact));
        let company: Value = serde_json::from_str(COMPANY).expect("json");
        with_company(&mut contact, &company);
        assert!(!lacks_company(&contact));
        assert_eq!(contact["company"]["name"], "Acme Logistics");
        assert_eq!(contact["company"]["plan"], "Pro");
        assert_eq!(contact["company"]["plan_id"], "269315");
        assert_eq!(contact["company"]["size"], 85);
        // Once there, a company is never replaced.
        with_company(&mut contact, &serde_json::json!({"name": "Other"}));
        assert_eq!(contact["company"]["name"], "Acme Logistics");

        let legacy = serde_json::json!({"companies": {"type": "company.list",
            "companies": [{"type": "company", "id": "531ee472cce572a6ec000006", "name": "Blue Sun"}]}});
        assert_eq!(
            first_company_id(&legacy).as_deref(),
            Some("531ee472cce572a6ec000006")
        );
        let none = serde_json::json!({"companies": {"type": "list", "data": []}});
        assert_eq!(first_company_id(&none), None);
        assert!(!lacks_company(&none));
        let mut not_an_object = Value::Null;
        with_company(&mut not_an_object, &company);
        assert_eq!(not_an_object, Value::Null);
    }
}
