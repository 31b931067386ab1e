//! The mapping from canonical records to Brevo requests, as data.
//!
//! [`Mapping::default`] holds the seed mappings; the YAML configuration file replaces or extends
//! it. Handlers never hard-code attribute or event names: they ask the mapping.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::brevo::{ContactKey, ContactUpsert, EventIdentifiers, EventRequest};
use crate::identity::{self, normalize_email, normalize_phone, split_name};
use crate::ledger;
use crate::model::{EventKind, Person, Record, Source, SupportEvent};

/// How a source value becomes a Brevo attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Strings, numbers and booleans as they are; arrays of strings joined with `, `.
    Auto,
    Text,
    Number,
    Boolean,
    /// Unix seconds or ISO-8601 → `YYYY-MM-DD`.
    Date,
    /// Any phone notation → E.164.
    Phone,
    /// A full name → FIRSTNAME and LASTNAME (the target attribute receives the first name).
    SplitName,
    /// Lower-cased, trimmed email.
    Email,
    /// A list of tags → one comma-separated text.
    Tags,
}

/// One `field_mapping` row: a dotted source path and the Brevo attribute it fills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldRule {
    pub path: String,
    pub attribute: String,
    pub transform: Transform,
}

impl FieldRule {
    pub fn new(path: &str, attribute: &str, transform: Transform) -> Self {
        FieldRule {
            path: path.into(),
            attribute: attribute.into(),
            transform,
        }
    }
}

/// Lists a source's contacts join.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lists {
    /// Every contact from this source joins this list.
    pub all_contacts: Option<i64>,
    /// Contacts whose latest CSAT is good.
    pub satisfied: Option<i64>,
    /// Contacts whose latest CSAT is bad.
    pub dissatisfied: Option<i64>,
    /// Contacts with an open ticket or conversation: they join while one is open and leave
    /// when the last one closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_conversations: Option<i64>,
    /// Intercom leads: a lead joins, and leaves when it becomes a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leads: Option<i64>,
}

/// Mapping of one source.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceMapping {
    pub field_mapping: Vec<FieldRule>,
    /// Canonical event key (`ticket.created`) → Brevo event name; overrides the global table.
    pub event_mapping: BTreeMap<String, String>,
    pub lists: Lists,
    /// Helpdesk tag → Brevo list id.
    pub tag_lists: BTreeMap<String, i64>,
    /// The support figures this source writes count its own tickets and ratings only
    /// (`aggregates: own`), not every source's (`all`, the default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_aggregates: bool,
}

/// The whole mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Region for phone numbers written without a country code (ISO 3166, e.g. `US`).
    pub default_region: Option<String>,
    /// Canonical event key → Brevo event name, for every source.
    pub event_mapping: BTreeMap<String, String>,
    pub sources: BTreeMap<String, SourceMapping>,
    /// What a person deleted in a helpdesk does to their Brevo contact (`deletions`).
    #[serde(default)]
    pub deletions: crate::deletions::policy::Deletions,
}

/// Why a record could not be mapped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("record has no identifier Brevo accepts (no email, no helpdesk id, no valid phone)")]
    NoIdentifier,
}

impl Default for Mapping {
    fn default() -> Self {
        use Transform::*;
        let event_mapping = [
            (EventKind::TicketCreated, "SUPPORT_TICKET_OPENED"),
            (EventKind::TicketClosed, "SUPPORT_TICKET_RESOLVED"),
            (EventKind::TicketReopened, "SUPPORT_TICKET_REOPENED"),
            (EventKind::SurveySent, "CSAT_SURVEY_SENT"),
            (EventKind::SurveyResponded, "CSAT_SUBMITTED"),
            (EventKind::CustomerCreated, "SUPPORT_CUSTOMER_CREATED"),
            (EventKind::TicketSnoozed, "SUPPORT_TICKET_SNOOZED"),
            (EventKind::TicketUnsnoozed, "SUPPORT_TICKET_UNSNOOZED"),
            (EventKind::AiResolved, "SUPPORT_AI_RESOLVED"),
            (EventKind::AiEscalated, "SUPPORT_AI_ESCALATED"),
            (EventKind::MacroApplied, "SUPPORT_MACRO_APPLIED"),
            (EventKind::RuleExecuted, "SUPPORT_RULE_EXECUTED"),
        ]
        .into_iter()
        .map(|(k, v)| (k.key().to_string(), v.to_string()))
        .collect();

        let zendesk = vec![
            FieldRule::new("id", "ZENDESK_ID", Text),
            FieldRule::new("name", "FIRSTNAME", SplitName),
            FieldRule::new("phone", "SMS", Phone),
            // The user's organization, read and put under `organization`.
            FieldRule::new("organization.name", "COMPANY_NAME", Text),
        ];
        let intercom = vec![
            FieldRule::new("id", "INTERCOM_ID", Text),
            FieldRule::new("name", "FIRSTNAME", SplitName),
            FieldRule::new("phone", "SMS", Phone),
            FieldRule::new("role", "INTERCOM_ROLE", Text),
            FieldRule::new("signed_up_at", "SIGNUP_DATE", Date),
            FieldRule::new("last_seen_at", "LAST_ACTIVE", Date),
            FieldRule::new("unsubscribed_from_emails", "UNSUBSCRIBED", Boolean),
            // The contact's first company, fetched and put under `company` (plan: its name).
            FieldRule::new("company.name", "COMPANY_NAME", Text),
            FieldRule::new("company.plan", "COMPANY_PLAN", Text),
            FieldRule::new("company.size", "COMPANY_SIZE", Number),
        ];
        let gorgias = vec![
            FieldRule::new("id", "GORGIAS_ID", Text),
            FieldRule::new("name", "FIRSTNAME", SplitName),
            FieldRule::new("phone", "SMS", Phone),
        ];
        let sources = [
            ("zendesk", zendesk),
            ("intercom", intercom),
            ("gorgias", gorgias),
        ]
        .into_iter()
        .map(|(name, mut rules)| {
            rules.extend(aggregate_rules());
            (
                name.to_string(),
                SourceMapping {
                    field_mapping: rules,
                    ..Default::default()
                },
            )
        })
        .collect();
        Mapping {
            default_region: None,
            event_mapping,
            sources,
            deletions: crate::deletions::policy::Deletions::default(),
        }
    }
}

/// The support aggregates under their default attributes (every built-in source has them).
pub fn aggregate_rules() -> Vec<FieldRule> {
    crate::ledger::AGGREGATE_FIELDS
        .iter()
        .map(|(path, attribute)| FieldRule::new(path, attribute, aggregate_transform(path)))
        .collect()
}

/// The transform of an aggregate field: dates for the last ticket's date, text for its channel,
/// numbers for the rest.
pub fn aggregate_transform(path: &str) -> Transform {
    match path {
        "last_ticket_date" => Transform::Date,
        "last_ticket_channel" | "last_ai_outcome" => Transform::Text,
        "in_support_conversation" => Transform::Boolean,
        _ => Transform::Number,
    }
}

/// Reads a dotted path (`company.name`, `custom_attributes.plan_tier`, `companies.0.name`).
pub fn lookup_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Formats a time for a Brevo `date` attribute.
pub fn brevo_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Formats a time for an event date or event property.
pub fn iso_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads a source timestamp: unix seconds (number or digit string) or RFC 3339 / ISO-8601.
pub fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|s| Utc.timestamp_opt(s, 0).single()),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(secs) = s.parse::<i64>() {
                return Utc.timestamp_opt(secs, 0).single();
            }
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                })
        }
        _ => None,
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Mapping {
    /// The mapping of `source`; an empty one when the source has none.
    pub fn source(&self, source: &Source) -> SourceMapping {
        let name = match source {
            Source::Generic(name) => format!("generic:{name}"),
            other => other.as_str().to_string(),
        };
        self.sources.get(&name).cloned().unwrap_or_default()
    }

    fn region(&self) -> Option<identity::PhoneRegion> {
        self.default_region
            .as_deref()
            .and_then(|r| identity::parse_region(r).ok())
    }

    /// The Brevo contact key of a person: normalised email, else its `external_id` (the
    /// customer's own id, shared by every helpdesk that knows it), else `<source>:<id>`.
    pub fn contact_key(&self, source: &Source, person: &Person) -> Option<ContactKey> {
        if let Some(email) = person.email.as_deref().and_then(normalize_email) {
            return Some(ContactKey::Email(email));
        }
        // The customer's own id: the same person in two helpdesks is one contact.
        if let Some(external) = person
            .external_id
            .as_deref()
            .map(str::trim)
            .filter(|x| !x.is_empty())
        {
            return Some(ContactKey::ExtId(external.to_string()));
        }
        person
            .source_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .map(|id| ContactKey::ExtId(format!("{}:{}", source.as_str(), id.trim())))
    }

    /// Value of a field path for a record: `id`, `email`, `phone` and `name` come from the
    /// canonical person (the parsers know where each helpdesk keeps them); every other path is
    /// read from the helpdesk's own object.
    fn field(&self, record: &Record, path: &str) -> Option<Value> {
        let p = &record.person;
        let canonical = match path {
            "id" => p.source_id.clone(),
            "email" => p.email.clone(),
            "phone" => p.phone.clone(),
            "name" => p.name.clone().or_else(|| {
                let joined = [p.first_name.as_deref(), p.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!joined.is_empty()).then_some(joined)
            }),
            _ => {
                return record
                    .profile
                    .as_ref()
                    .and_then(|v| lookup_path(v, path))
                    .cloned();
            }
        };
        canonical.map(Value::String)
    }

    /// Applies one rule, writing zero, one or two attributes.
    fn apply_rule(&self, rule: &FieldRule, value: &Value, out: &mut BTreeMap<String, Value>) {
        let put = |out: &mut BTreeMap<String, Value>, v: Value| {
            out.insert(rule.attribute.clone(), v);
        };
        match rule.transform {
            Transform::Auto => match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => put(out, value.clone()),
                Value::Array(items) => {
                    let joined: Vec<String> = items.iter().filter_map(text_of).collect();
                    if !joined.is_empty() {
                        put(out, Value::String(joined.join(", ")));
                    }
                }
                _ => {}
            },
            Transform::Text => {
                if let Some(t) = text_of(value) {
                    put(out, Value::String(t));
                }
            }
            Transform::Number => {
                let n = match value {
                    Value::Number(n) => Some(n.clone()),
                    Value::String(s) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64),
                    _ => None,
                };
                if let Some(n) = n {
                    put(out, Value::Number(n));
                }
            }
            Transform::Boolean => {
                let b = match value {
                    Value::Bool(b) => Some(*b),
                    Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" => Some(true),
                        "false" | "no" | "0" => Some(false),
                        _ => None,
                    },
                    Value::Number(n) => n.as_i64().map(|n| n != 0),
                    _ => None,
                };
                if let Some(b) = b {
                    put(out, Value::Bool(b));
                }
            }
            Transform::Date => {
                if let Some(t) = parse_time(value) {
                    put(out, Value::String(brevo_date(t)));
                }
            }
            Transform::Phone => {
                if let Some(raw) = text_of(value)
                    && let Ok(e164) = normalize_phone(&raw, self.region())
                {
                    put(out, Value::String(e164));
                }
            }
            Transform::SplitName => {
                if let Some(full) = text_of(value) {
                    let (first, last) = split_name(&full);
                    if let Some(first) = first {
                        put(out, Value::String(first));
                    }
                    if let Some(last) = last {
                        out.insert(last_name_attribute(&rule.attribute), Value::String(last));
                    }
                }
            }
            Transform::Email => {
                if let Some(e) = text_of(value).as_deref().and_then(normalize_email) {
                    put(out, Value::String(e));
                }
            }
            Transform::Tags => {
                if let Value::Array(items) = value {
                    let tags: Vec<String> = items
                        .iter()
                        .filter_map(|t| text_of(t).or_else(|| t.get("name").and_then(text_of)))
                        .collect();
                    put(out, Value::String(tags.join(", ")));
                }
            }
        }
    }

    /// The Brevo contact upsert for a record. Tag removals are returned by [`Mapping::lists_to_leave`].
    pub fn contact(&self, source: &Source, record: &Record) -> Result<ContactUpsert, MappingError> {
        let sm = self.source(source);
        let mut attributes = BTreeMap::new();
        for rule in &sm.field_mapping {
            if ledger::is_aggregate(&rule.path) {
                continue; // written from the contact's ledger, see `aggregate_attributes`
            }
            if let Some(value) = self.field(record, &rule.path) {
                self.apply_rule(rule, &value, &mut attributes);
            }
        }
        if record.person.first_name.is_some() || record.person.last_name.is_some() {
            // The helpdesk gave the parts itself: they beat a split of the full name.
            if let Some(f) = &record.person.first_name {
                attributes.insert("FIRSTNAME".into(), Value::String(f.clone()));
            }
            if let Some(l) = &record.person.last_name {
                attributes.insert("LASTNAME".into(), Value::String(l.clone()));
            }
        }
        let key = match self.contact_key(source, &record.person) {
            Some(key) => key,
            None => {
                // A phone-only contact: Brevo accepts attributes.SMS as the identifier.
                if attributes.contains_key("SMS") {
                    let mut c = ContactUpsert {
                        update_enabled: true,
                        ..Default::default()
                    };
                    c.attributes = attributes;
                    c.list_ids = self.lists_to_join(&sm, record);
                    return Ok(c);
                }
                return Err(MappingError::NoIdentifier);
            }
        };
        let mut upsert = ContactUpsert::new(&key);
        upsert.attributes = attributes;
        upsert.list_ids = self.lists_to_join(&sm, record);
        if record.unsubscribed == Some(true) {
            upsert.email_blacklisted = Some(true);
        }
        Ok(upsert)
    }

    /// The attributes the support aggregates of a contact map to, by the field rules of
    /// `source` that name an aggregate (`nb_tickets: TICKET_COUNT`, …).
    pub fn aggregate_attributes(
        &self,
        source: &Source,
        aggregates: &ledger::Aggregates,
    ) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for rule in self.source(source).field_mapping {
            if let Some(value) = aggregates.value(&rule.path) {
                self.apply_rule(&rule, &value, &mut out);
            }
        }
        out
    }

    /// The CSAT lists of `source` a contact joins and leaves by its latest score: satisfied
    /// (score of 4 or 5, Zendesk `good`) or dissatisfied. `None` when neither list is set or the
    /// contact has no score.
    pub fn csat_lists(
        &self,
        source: &Source,
        aggregates: &ledger::Aggregates,
    ) -> Option<(Option<i64>, Option<i64>)> {
        let lists = self.source(source).lists;
        let satisfied = aggregates.satisfied()?;
        let (join, leave) = if satisfied {
            (lists.satisfied, lists.dissatisfied)
        } else {
            (lists.dissatisfied, lists.satisfied)
        };
        (join.is_some() || leave.is_some()).then_some((join, leave))
    }

    /// The lists of `source` whose membership follows the contact's state, each with whether
    /// the contact belongs in it now: active conversations by its open tickets, leads by its
    /// latest role (only once a role is known), each tag list by whether anything of the
    /// contact's carries one of its tags (only once the ledger knows one of them).
    pub fn state_lists(&self, source: &Source, ledger: &ledger::Ledger) -> Vec<(i64, bool)> {
        let sm = self.source(source);
        let mut tagged: BTreeMap<i64, bool> = BTreeMap::new();
        for (tag, list) in sm.tag_lists.iter().filter(|(t, _)| ledger.tags.knows(t)) {
            *tagged.entry(*list).or_default() |= ledger.tags.carried(tag);
        }
        let lists = sm.lists;
        let mut out: Vec<(i64, bool)> = tagged.into_iter().collect();
        if let Some(id) = lists.active_conversations {
            out.push((id, ledger.aggregates().open_tickets > 0));
        }
        if let (Some(id), Some((_, role))) = (lists.leads, &ledger.role) {
            out.push((id, role == "lead"));
        }
        out
    }

    fn lists_to_join(&self, sm: &SourceMapping, record: &Record) -> Vec<i64> {
        let mut ids: Vec<i64> = sm.lists.all_contacts.into_iter().collect();
        ids.extend(record.tags_added.iter().filter_map(|t| tag_list(sm, t)));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The tags the `tag_lists` of `source` map, trimmed and lowercase.
    pub fn mapped_tags(&self, source: &Source) -> std::collections::BTreeSet<String> {
        let sm = self.source(source);
        sm.tag_lists
            .keys()
            .map(|t| t.trim().to_lowercase())
            .collect()
    }

    /// Lists the record's removed tags map to.
    pub fn lists_to_leave(&self, source: &Source, record: &Record) -> Vec<i64> {
        let sm = self.source(source);
        let mut ids: Vec<i64> = record
            .tags_removed
            .iter()
            .filter_map(|t| tag_list(&sm, t))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The Brevo event name for a happening from `source`, if the mapping sends it.
    pub fn event_name(&self, source: &Source, kind: EventKind) -> Option<String> {
        let sm = self.source(source);
        sm.event_mapping
            .get(kind.key())
            .or_else(|| self.event_mapping.get(kind.key()))
            .filter(|name| !name.is_empty())
            .cloned()
    }

    /// The Brevo event for one support event of a record addressed by `key`.
    pub fn event(
        &self,
        source: &Source,
        key: &ContactKey,
        event: &SupportEvent,
    ) -> Option<EventRequest> {
        let event_name = match event.kind {
            EventKind::DataEvent => {
                let sm = self.source(source);
                crate::data_events::brevo_name(&sm.event_mapping, &self.event_mapping, event)?
            }
            kind => self.event_name(source, kind)?,
        };
        let mut props: Map<String, Value> = Map::new();
        props.insert("source".into(), Value::String(source.to_string()));
        if let Some(t) = &event.ticket_id {
            props.insert("ticket_id".into(), Value::String(t.clone()));
        }
        if let Some(c) = &event.channel {
            props.insert("channel".into(), Value::String(c.clone()));
        }
        for (k, v) in &event.properties {
            props.insert(crate::data_events::brevo_safe(k), v.clone());
        }
        Some(EventRequest {
            event_name,
            identifiers: EventIdentifiers::from(key),
            event_date: Some(iso_time(event.occurred_at)),
            event_properties: props,
        })
    }
}

fn tag_list(sm: &SourceMapping, tag: &str) -> Option<i64> {
    sm.tag_lists
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(tag.trim()))
        .map(|(_, id)| *id)
}

/// `FIRSTNAME` → `LASTNAME`; any other target `X` → `X_LAST`.
fn last_name_attribute(first: &str) -> String {
    if first == "FIRSTNAME" {
        "LASTNAME".into()
    } else {
        format!("{first}_LAST")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(person: Person, profile: Value) -> Record {
        Record {
            person,
            observed_at: Utc::now(),
            profile: Some(profile.into()),
            ..Default::default()
        }
    }

    #[test]
    fn intercom_default_mapping_fills_seed_attributes() {
        let m = Mapping::default();
        let person = Person {
            source_id: Some("6329bd9ffe4e".into()),
            email: Some(" Jane@Example.com ".into()),
            phone: Some("+1 415 555 2671".into()),
            name: Some("Jane Doe".into()),
            ..Default::default()
        };
        let profile = json!({"role": "user", "signed_up_at": 1_700_000_000, "last_seen_at": "2024-03-01T10:00:00Z",
            "unsubscribed_from_emails": false,
            "company": {"id": "6762f0f2", "name": "Acme Logistics", "plan": "Pro", "plan_id": "269315", "size": 85}});
        let c = m
            .contact(&Source::Intercom, &record(person, profile))
            .expect("maps");
        assert_eq!(c.email.as_deref(), Some("jane@example.com"));
        assert!(c.update_enabled);
        assert_eq!(c.attributes["FIRSTNAME"], json!("Jane"));
        assert_eq!(c.attributes["LASTNAME"], json!("Doe"));
        assert_eq!(c.attributes["SMS"], json!("+14155552671"));
        assert_eq!(c.attributes["INTERCOM_ID"], json!("6329bd9ffe4e"));
        assert_eq!(c.attributes["INTERCOM_ROLE"], json!("user"));
        assert_eq!(c.attributes["SIGNUP_DATE"], json!("2023-11-14"));
        assert_eq!(c.attributes["LAST_ACTIVE"], json!("2024-03-01"));
        assert_eq!(c.attributes["UNSUBSCRIBED"], json!(false));
        assert_eq!(c.attributes["COMPANY_NAME"], json!("Acme Logistics"));
        assert_eq!(c.attributes["COMPANY_PLAN"], json!("Pro"));
        assert_eq!(c.attributes["COMPANY_SIZE"], json!(85));
    }

    #[test]
    fn the_customers_own_id_is_the_ext_id_of_a_person_without_email() {
        let m = Mapping::default();
        let mut person = Person {
            source_id: Some("42".into()),
            external_id: Some(" crm-77 ".into()),
            ..Default::default()
        };
        for source in [Source::Zendesk, Source::Intercom] {
            assert_eq!(
                m.contact_key(&source, &person),
                Some(ContactKey::ExtId("crm-77".into()))
            );
        }
        person.email = Some("Pat@Example.com".into());
        assert_eq!(
            m.contact_key(&Source::Zendesk, &person),
            Some(ContactKey::Email("pat@example.com".into()))
        );
    }

    #[test]
    fn without_email_the_contact_is_addressed_by_ext_id() {
        let m = Mapping::default();
        let person = Person {
            source_id: Some("42".into()),
            ..Default::default()
        };
        let c = m
            .contact(&Source::Gorgias, &record(person, json!({})))
            .expect("maps");
        assert_eq!(c.email, None);
        assert_eq!(c.ext_id.as_deref(), Some("gorgias:42"));
        let empty = Person::default();
        assert_eq!(
            m.contact(&Source::Gorgias, &record(empty, json!({}))),
            Err(MappingError::NoIdentifier)
        );
    }

    #[test]
    fn tags_map_to_lists_both_ways() {
        let mut m = Mapping::default();
        let zd = m.sources.get_mut("zendesk").expect("zendesk mapping");
        zd.tag_lists.insert("vip".into(), 12);
        zd.lists.all_contacts = Some(35);
        let mut r = record(
            Person {
                email: Some("a@b.co".into()),
                ..Default::default()
            },
            json!({}),
        );
        r.tags_added = vec!["VIP".into(), "other".into()];
        r.tags_removed = vec!["vip".into()];
        let c = m.contact(&Source::Zendesk, &r).expect("maps");
        assert_eq!(c.list_ids, vec![12, 35]);
        assert_eq!(m.lists_to_leave(&Source::Zendesk, &r), vec![12]);
    }

    #[test]
    fn events_use_the_mapping_and_iso_dates() {
        let m = Mapping::default();
        let at = Utc
            .timestamp_opt(1_736_331_127, 0)
            .single()
            .expect("valid time");
        let ev = SupportEvent {
            id: "x".into(),
            kind: EventKind::TicketClosed,
            occurred_at: at,
            ticket_id: Some("5158".into()),
            channel: Some("email".into()),
            properties: json!({"ticket subject": "Help"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let key = ContactKey::Email("a@b.co".into());
        let req = m.event(&Source::Zendesk, &key, &ev).expect("mapped");
        assert_eq!(req.event_name, "SUPPORT_TICKET_RESOLVED");
        assert_eq!(req.event_date.as_deref(), Some("2025-01-08T10:12:07Z"));
        assert_eq!(req.identifiers.email_id.as_deref(), Some("a@b.co"));
        assert_eq!(req.event_properties["ticket_subject"], json!("Help"));
        assert_eq!(req.event_properties["ticket_id"], json!("5158"));
    }

    #[test]
    fn paths_read_nested_objects_and_arrays() {
        let v = json!({"company": {"name": "Acme"}, "companies": [{"name": "First"}]});
        assert_eq!(lookup_path(&v, "company.name"), Some(&json!("Acme")));
        assert_eq!(lookup_path(&v, "companies.0.name"), Some(&json!("First")));
        assert_eq!(lookup_path(&v, "company.size"), None);
    }
}
