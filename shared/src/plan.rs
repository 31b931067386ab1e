//! What one record asks of Brevo, decided without any I/O.
//!
//! The upsert function reads a record's contact ledger, asks this module for the writes, and
//! carries them out; nothing here calls Brevo or the state store. Two steps, because the ledger
//! to read depends on the record:
//!
//! 1. [`observe`]: the contact as the mapping makes it from the record alone, and the key of the
//!    contact's ledger. The executor merges the record into that ledger
//!    ([`Ledger::observe`](crate::ledger::Ledger::observe) with [`Observed::attributes`]);
//! 2. [`plan`]: given the ledger as it stands after that merge, every Brevo write for the
//!    record ([`BrevoWrites`]): the contact upsert built from the ledger's newest values and
//!    aggregates, the lists it joins (all-contacts, added tags, CSAT), the lists it leaves
//!    (removed tags, the other CSAT list), and its events, named, addressed and enriched.
//!
//! [`view`] is the first half of step 2 on its own: the contact a newer ledger gives, for an
//! executor that reads the ledger again after writing.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::brevo::{ContactKey, ContactUpsert, EventIdentifiers, EventRequest};
use crate::ledger::{Aggregates, Ledger, ledger_key};
use crate::mapping::{Mapping, MappingError};
use crate::model::{EventKind, Record, Source, SupportEvent};
use crate::tags::TagChange;

/// The SMS attribute: a phone-only contact's identifier, and its events' address.
pub const SMS: &str = "SMS";

/// A record's contact as mapped from the record alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The contact upsert the mapping makes of the record (no ledger values yet).
    pub contact: ContactUpsert,
    /// The key of the contact's ledger: `None` when nothing identifies the contact for one.
    pub ledger_key: Option<String>,
    /// What the record changes of the tags that map to lists, for the contact's ledger.
    pub tags: Option<TagChange>,
}

impl Observed {
    /// The attribute values the record observed, for the contact's ledger.
    pub fn attributes(&self) -> &BTreeMap<String, Value> {
        &self.contact.attributes
    }

    /// Merges what `record` observed into its contact's `ledger` (attributes, events, role,
    /// tags); returns the attributes it held that were stale.
    pub fn merge_into(&self, ledger: &mut Ledger, source: &Source, record: &Record) -> Vec<String> {
        let stale = ledger.observe(source, record, self.attributes());
        if let Some(change) = &self.tags {
            ledger.tags.observe(change);
        }
        stale
    }
}

/// Every Brevo write for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct BrevoWrites {
    /// The upsert: identifiers (email, ext_id, or SMS alone), attributes, the lists to join
    /// (`list_ids`) and the blocklist flag.
    pub contact: ContactUpsert,
    /// What addresses the contact in Brevo, `None` for a phone-only contact.
    pub key: Option<ContactKey>,
    /// Lists to leave, in order: those of removed tags, then the CSAT list the contact's latest
    /// score moves it out of. Empty for a phone-only contact (list removals need a key).
    pub lists_leave: Vec<i64>,
    /// The rating whose CSAT placement the list changes write: once they are done, the ledger
    /// notes it, so the same rating does not move the contact again.
    pub csat_placed: Option<String>,
    /// The state lists ([`Mapping::state_lists`]) this plan puts the contact into (`true`, with
    /// its upsert) or takes it off (`false`, in `lists_leave`) where the ledger does not note that
    /// placement yet: once the writes are done, the ledger notes them.
    pub placements: Vec<(i64, bool)>,
    /// The record's events in order, each with its Brevo request, or `None` when the mapping
    /// does not send its kind.
    pub events: Vec<EventWrite>,
}

impl BrevoWrites {
    /// The lists the contact joins with its upsert.
    pub fn lists_join(&self) -> &[i64] {
        &self.contact.list_ids
    }

    /// Makes the contact join `list` with its upsert (as an all-contacts list does).
    pub fn join(&mut self, list: i64) {
        if !self.contact.list_ids.contains(&list) {
            self.contact.list_ids.push(list);
            self.contact.list_ids.sort_unstable();
        }
    }

    /// The SMS value the upsert carries.
    pub fn sms(&self) -> Option<&str> {
        self.contact.attributes.get(SMS).and_then(Value::as_str)
    }
}

/// One support event of a record, as Brevo gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWrite {
    /// The canonical event id (what dedupes it); for a repeatable milestone, the id its path
    /// gave it, which the upsert function identifies before sending (see
    /// [`crate::milestones`]).
    pub id: String,
    pub kind: EventKind,
    /// The Brevo event; `None` when the mapping does not send this kind.
    pub request: Option<EventRequest>,
}

/// Step 1: the contact the record maps to, and its ledger's key.
pub fn observe(
    mapping: &Mapping,
    source: &Source,
    record: &Record,
) -> Result<Observed, MappingError> {
    let contact = mapping.contact(source, record)?;
    let ledger_key = identity(&contact).map(|id| ledger_key(&id));
    let mentions_tags = !(record.tags_added.is_empty() && record.tags_removed.is_empty())
        || record.tags_now.is_some();
    let tags = if mentions_tags {
        let mapped = mapping.mapped_tags(source);
        TagChange::of(record, |t| mapped.contains(&t.trim().to_lowercase()))
    } else {
        None
    };
    Ok(Observed {
        contact,
        ledger_key,
        tags,
    })
}

/// Step 2: every Brevo write for `record`, given its contact's ledger after the record was
/// merged into it (`None` when the contact has no ledger: it is then written as mapped).
pub fn plan(
    mapping: &Mapping,
    source: &Source,
    record: &Record,
    observed: &Observed,
    ledger: Option<&Ledger>,
) -> BrevoWrites {
    let mut contact = observed.contact.clone();
    if let Some(ledger) = ledger {
        view(mapping, source, ledger, &mut contact);
    }
    let key = contact.key();
    let (lists_leave, csat_placed) = match &key {
        None => (Vec::new(), None),
        Some(_) => {
            let mut lists = mapping.lists_to_leave(source, record);
            // A removed tag's list stays while something else of the contact's carries it.
            if let Some(ledger) = ledger {
                let held = mapping.state_lists(source, ledger);
                lists.retain(|list| !held.contains(&(*list, true)));
            }
            let csat = ledger.and_then(|l| csat_leave(mapping, source, l));
            match csat {
                Some((list_id, rating)) => {
                    lists.push(list_id);
                    (lists, Some(rating))
                }
                None => (lists, None),
            }
        }
    };
    let mut lists_leave = lists_leave;
    let placements = match (&key, ledger) {
        (Some(_), Some(ledger)) => state_placements(mapping, source, ledger, &mut lists_leave),
        _ => Vec::new(),
    };
    let sms = contact.attributes.get(SMS).and_then(Value::as_str);
    let events = record
        .events
        .iter()
        .map(|event| EventWrite {
            id: event.id.clone(),
            kind: event.kind,
            request: event_request(mapping, source, key.as_ref(), sms, ledger, event),
        })
        .collect();
    BrevoWrites {
        contact,
        key,
        lists_leave,
        csat_placed,
        placements,
        events,
    }
}

/// The state-list placements the ledger does not note yet: a list the contact belongs in is
/// joined (by [`view`]) until noted; a list it no longer belongs in is left, but only if the
/// contact was written into it.
fn state_placements(
    mapping: &Mapping,
    source: &Source,
    ledger: &Ledger,
    lists_leave: &mut Vec<i64>,
) -> Vec<(i64, bool)> {
    let mut placements = Vec::new();
    for (list, belongs) in mapping.state_lists(source, ledger) {
        let placed = ledger.placed.get(&list).copied();
        if belongs && placed != Some(true) {
            placements.push((list, true));
        } else if !belongs && placed == Some(true) {
            if !lists_leave.contains(&list) {
                lists_leave.push(list);
            }
            placements.push((list, false));
        }
    }
    placements
}

/// Writes the ledger's view onto `contact`: the newest value of every attribute, the support
/// aggregates, the CSAT list its latest score joins, and (for a contact with a key) the state
/// lists it belongs in.
pub fn view(mapping: &Mapping, source: &Source, ledger: &Ledger, contact: &mut ContactUpsert) {
    let aggregates = if mapping.source(source).own_aggregates {
        let named: Vec<Source> = mapping
            .sources
            .keys()
            .filter_map(|k| k.parse().ok())
            .collect();
        aggregates_of(ledger, source, &named)
    } else {
        ledger.aggregates()
    };
    let mut attributes = ledger.attribute_values();
    attributes.extend(mapping.aggregate_attributes(source, &aggregates));
    contact.attributes = attributes;
    let mut join: Vec<i64> = mapping
        .csat_lists(source, &aggregates)
        .and_then(|(join, _)| join)
        .into_iter()
        .collect();
    if contact.key().is_some() {
        let states = mapping.state_lists(source, ledger);
        // A tag the record still names, but that nothing carries any more (an older
        // observation), joins nothing.
        contact
            .list_ids
            .retain(|list| !states.contains(&(*list, false)));
        join.extend(
            states
                .into_iter()
                .filter_map(|(list, belongs)| belongs.then_some(list)),
        );
    }
    for list in join {
        if !contact.list_ids.contains(&list) {
            contact.list_ids.push(list);
        }
    }
    contact.list_ids.sort_unstable();
}

/// The support figures of one source's tickets and ratings only (`aggregates: own`): those
/// keyed `<source>:…`, less those of the sources in `besides` that extend its name (a store's
/// further accounts, `gorgias:eu-store:…` beside `gorgias:…`). Folded counts are not told apart
/// by source, so they are left out.
pub fn aggregates_of(ledger: &Ledger, source: &Source, besides: &[Source]) -> Aggregates {
    let own = format!("{source}:");
    let others: Vec<String> = besides
        .iter()
        .filter(|b| *b != source)
        .map(|b| format!("{b}:"))
        .filter(|b| b.starts_with(&own))
        .collect();
    ledger.aggregates_where(|key| {
        key.starts_with(&own) && !others.iter().any(|o| key.starts_with(o.as_str()))
    })
}

/// What identifies a contact's ledger: its Brevo key, else its SMS.
fn identity(contact: &ContactUpsert) -> Option<String> {
    match contact.key() {
        Some(ContactKey::Email(e)) => Some(format!("email:{e}")),
        Some(ContactKey::ExtId(x)) => Some(format!("ext:{x}")),
        None => contact
            .attributes
            .get(SMS)
            .and_then(Value::as_str)
            .map(|s| format!("sms:{s}")),
    }
}

/// The ledger key of the contact `key` addresses.
pub fn ledger_key_of(key: &ContactKey) -> String {
    match key {
        ContactKey::Email(e) => ledger_key(&format!("email:{e}")),
        ContactKey::ExtId(x) => ledger_key(&format!("ext:{x}")),
    }
}

/// The list a contact leaves by its latest CSAT score, with that rating's id, when the
/// placement by that rating is not written yet.
fn csat_leave(mapping: &Mapping, source: &Source, ledger: &Ledger) -> Option<(i64, String)> {
    let latest = ledger.latest_rating()?;
    if ledger.csat_placed.as_deref() == Some(latest.id.as_str()) {
        return None;
    }
    let (_, leave) = mapping.csat_lists(source, &ledger.aggregates())?;
    Some((leave?, latest.id.clone()))
}

/// The Brevo event for a support event, addressed by the contact key, or by phone for a
/// phone-only contact, with what the ledger adds to a resolution. `None` when the mapping does
/// not send this kind (or nothing addresses the contact).
fn event_request(
    mapping: &Mapping,
    source: &Source,
    key: Option<&ContactKey>,
    sms: Option<&str>,
    ledger: Option<&Ledger>,
    event: &SupportEvent,
) -> Option<EventRequest> {
    let mut request = match (key, sms) {
        (Some(key), _) => mapping.event(source, key, event)?,
        (None, Some(sms)) => {
            // The mapping builds names and properties; the placeholder key is replaced.
            let mut request = mapping.event(source, &ContactKey::ExtId(String::new()), event)?;
            request.identifiers = EventIdentifiers {
                phone_id: Some(sms.to_string()),
                ..Default::default()
            };
            request
        }
        (None, None) => return None,
    };
    if let Some(ledger) = ledger {
        enrich(source, ledger, event, &mut request);
    }
    Some(request)
}

/// Adds what the ledger knows to a resolution event (resolution time, satisfaction).
fn enrich(source: &Source, ledger: &Ledger, event: &SupportEvent, request: &mut EventRequest) {
    if event.kind != EventKind::TicketClosed {
        return;
    }
    for (k, v) in ledger.resolution_properties(source, event) {
        request.event_properties.entry(k.to_string()).or_insert(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Person;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn at(secs: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("valid time")
    }

    fn event(id: &str, kind: EventKind, secs: i64) -> SupportEvent {
        SupportEvent {
            id: id.into(),
            kind,
            occurred_at: at(secs),
            ticket_id: Some("5158".into()),
            channel: None,
            properties: Default::default(),
        }
    }

    fn record(person: Person) -> Record {
        Record {
            person,
            observed_at: at(1_736_000_000),
            profile: Some(json!({}).into()),
            ..Default::default()
        }
    }

    fn email(e: &str) -> Person {
        Person {
            email: Some(e.into()),
            ..Default::default()
        }
    }

    /// The record merged into a fresh ledger, as the executor does.
    fn merged(observed: &Observed, source: &Source, record: &Record) -> Ledger {
        let mut ledger = Ledger::default();
        observed.merge_into(&mut ledger, source, record);
        ledger
    }

    #[test]
    fn without_a_ledger_the_contact_is_written_as_mapped() {
        let mut m = Mapping::default();
        let zd = m.sources.get_mut("zendesk").expect("zendesk mapping");
        zd.tag_lists.insert("vip".into(), 12);
        zd.lists.all_contacts = Some(35);
        let mut r = record(email("A@b.co"));
        r.tags_added = vec!["VIP".into()];
        r.tags_removed = vec!["vip".into(), "unknown".into()];
        r.unsubscribed = Some(true);
        r.events = vec![
            event("e1", EventKind::TicketCreated, 1_736_000_000),
            event("e2", EventKind::TicketClosed, 1_736_000_100),
        ];
        let observed = observe(&m, &Source::Zendesk, &r).expect("maps");
        assert_eq!(observed.ledger_key, Some(ledger_key("email:a@b.co")));
        let writes = plan(&m, &Source::Zendesk, &r, &observed, None);
        assert_eq!(writes.contact, observed.contact);
        assert_eq!(writes.key, Some(ContactKey::Email("a@b.co".into())));
        assert_eq!(writes.lists_join(), &[12, 35]);
        assert_eq!(writes.contact.email_blacklisted, Some(true));
        assert_eq!(writes.lists_leave, vec![12]);
        assert_eq!(writes.csat_placed, None);
        let names: Vec<_> = writes
            .events
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    e.request.as_ref().map(|r| r.event_name.as_str()),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("e1", Some("SUPPORT_TICKET_OPENED")),
                ("e2", Some("SUPPORT_TICKET_RESOLVED"))
            ]
        );
    }

    #[test]
    fn unmapped_kinds_stay_in_order_without_a_request() {
        let mut m = Mapping::default();
        m.event_mapping.remove(EventKind::TicketCreated.key());
        let mut r = record(email("a@b.co"));
        r.events = vec![
            event("e1", EventKind::TicketCreated, 1),
            event("e2", EventKind::TicketReopened, 2),
        ];
        let observed = observe(&m, &Source::Zendesk, &r).expect("maps");
        let writes = plan(&m, &Source::Zendesk, &r, &observed, None);
        assert_eq!(writes.events.len(), 2);
        assert_eq!(writes.events[0].id, "e1");
        assert!(writes.events[0].request.is_none());
        assert!(writes.events[1].request.is_some());
    }

    #[test]
    fn a_phone_only_contact_is_identified_by_its_sms_and_leaves_no_lists() {
        let mut m = Mapping::default();
        let zd = m.sources.get_mut("zendesk").expect("zendesk mapping");
        zd.tag_lists.insert("vip".into(), 12);
        let mut r = record(Person {
            phone: Some("+1 415 555 2671".into()),
            ..Default::default()
        });
        r.tags_removed = vec!["vip".into()];
        r.events = vec![event("e1", EventKind::TicketCreated, 1)];
        let observed = observe(&m, &Source::Zendesk, &r).expect("maps");
        assert_eq!(observed.ledger_key, Some(ledger_key("sms:+14155552671")));
        let ledger = merged(&observed, &Source::Zendesk, &r);
        let writes = plan(&m, &Source::Zendesk, &r, &observed, Some(&ledger));
        assert_eq!(writes.key, None);
        assert_eq!(writes.sms(), Some("+14155552671"));
        assert!(writes.lists_leave.is_empty());
        let request = writes.events[0].request.as_ref().expect("mapped");
        assert_eq!(
            request.identifiers,
            EventIdentifiers {
                phone_id: Some("+14155552671".into()),
                ..Default::default()
            }
        );
    }

    /// Plans `record` against `ledger` (merging it first) and notes the plan's placements,
    /// as the executor does once the writes are done.
    fn step(m: &Mapping, source: &Source, ledger: &mut Ledger, record: &Record) -> BrevoWrites {
        let observed = observe(m, source, record).expect("maps");
        observed.merge_into(ledger, source, record);
        let writes = plan(m, source, record, &observed, Some(ledger));
        for &(list, joined) in &writes.placements {
            ledger.placed.insert(list, joined);
        }
        writes
    }

    #[test]
    fn a_contact_is_in_the_active_list_while_a_conversation_is_open() {
        let mut m = Mapping::default();
        let ic = m.sources.get_mut("intercom").expect("intercom mapping");
        ic.lists.active_conversations = Some(36);
        let source = Source::Intercom;
        let mut ledger = Ledger::default();
        let with = |events: Vec<SupportEvent>| Record {
            events,
            ..record(email("a@b.co"))
        };

        // A customer never in support: not in the list, and no call to take them off it.
        let quiet = step(&m, &source, &mut ledger, &with(vec![]));
        assert!(!quiet.lists_join().contains(&36));
        assert!(quiet.lists_leave.is_empty() && quiet.placements.is_empty());

        let mut open = event("o1", EventKind::TicketCreated, 1_736_000_000);
        open.ticket_id = Some("147".into());
        let opened = step(&m, &source, &mut ledger, &with(vec![open]));
        assert!(opened.lists_join().contains(&36));
        assert_eq!(opened.placements, vec![(36, true)]);

        // A second conversation opens, the first closes: still in support.
        let mut second = event("o2", EventKind::TicketCreated, 1_736_000_100);
        second.ticket_id = Some("148".into());
        let mut close_first = event("c1", EventKind::TicketClosed, 1_736_000_200);
        close_first.ticket_id = Some("147".into());
        let busy = step(&m, &source, &mut ledger, &with(vec![second, close_first]));
        assert!(busy.lists_join().contains(&36));
        assert!(busy.lists_leave.is_empty() && busy.placements.is_empty());

        // The last one closes: the contact leaves, once.
        let mut close_second = event("c2", EventKind::TicketClosed, 1_736_000_300);
        close_second.ticket_id = Some("148".into());
        let done = step(&m, &source, &mut ledger, &with(vec![close_second.clone()]));
        assert!(!done.lists_join().contains(&36));
        assert_eq!(done.lists_leave, vec![36]);
        assert_eq!(done.placements, vec![(36, false)]);
        let again = step(&m, &source, &mut ledger, &with(vec![close_second]));
        assert!(again.lists_leave.is_empty() && again.placements.is_empty());

        // The attribute that says so, when the mapping names it.
        let ic = m.sources.get_mut("intercom").expect("intercom mapping");
        ic.field_mapping.push(crate::mapping::FieldRule::new(
            "in_support_conversation",
            "IN_SUPPORT_CONVERSATION",
            crate::mapping::Transform::Boolean,
        ));
        let quiet = step(&m, &source, &mut ledger, &with(vec![]));
        assert_eq!(
            quiet.contact.attributes["IN_SUPPORT_CONVERSATION"],
            json!(false)
        );
    }

    #[test]
    fn a_lead_is_in_the_leads_list_until_it_becomes_a_user() {
        let mut m = Mapping::default();
        let ic = m.sources.get_mut("intercom").expect("intercom mapping");
        ic.lists.leads = Some(37);
        let source = Source::Intercom;
        let contact = |role: &str, secs: i64| Record {
            observed_at: at(secs),
            profile: Some(json!({"type": "contact", "id": "c1", "role": role}).into()),
            ..record(email("a@b.co"))
        };
        let mut ledger = Ledger::default();
        let lead = step(&m, &source, &mut ledger, &contact("lead", 1_000));
        assert!(lead.lists_join().contains(&37));
        assert_eq!(lead.placements, vec![(37, true)]);
        // An older page that still says lead does not undo a newer sign-up.
        let user = step(&m, &source, &mut ledger, &contact("user", 2_000));
        assert_eq!(user.lists_leave, vec![37]);
        assert!(!user.lists_join().contains(&37));
        let stale = step(&m, &source, &mut ledger, &contact("lead", 1_500));
        assert!(!stale.lists_join().contains(&37));
        assert!(stale.lists_leave.is_empty() && stale.placements.is_empty());
        // A user never a lead costs no removal.
        let mut fresh = Ledger::default();
        let user = step(&m, &source, &mut fresh, &contact("user", 3_000));
        assert!(user.lists_leave.is_empty() && user.placements.is_empty());
    }

    #[test]
    fn nothing_to_identify_is_not_planned() {
        let m = Mapping::default();
        assert_eq!(
            observe(&m, &Source::Gorgias, &record(Person::default())),
            Err(MappingError::NoIdentifier)
        );
    }

    #[test]
    fn the_ledger_gives_newest_values_aggregates_and_csat_lists() {
        let mut m = Mapping::default();
        let zd = m.sources.get_mut("zendesk").expect("zendesk mapping");
        zd.lists.satisfied = Some(7);
        zd.lists.dissatisfied = Some(8);
        let source = Source::Zendesk;

        // An older observation said FIRSTNAME is "Old"; a newer one (already in the ledger)
        // says "New": the plan keeps the newer one.
        let mut newer = record(Person {
            email: Some("a@b.co".into()),
            name: Some("New Name".into()),
            ..Default::default()
        });
        newer.observed_at = at(2_000_000_000);
        let mut rating = event("r1", EventKind::SurveyResponded, 1_736_000_000);
        rating.properties.insert("score".into(), json!(5));
        newer.events = vec![rating];
        let mut ledger = Ledger::default();
        let first = observe(&m, &source, &newer).expect("maps");
        ledger.observe(&source, &newer, first.attributes());

        let mut older = record(Person {
            email: Some("a@b.co".into()),
            name: Some("Old Name".into()),
            ..Default::default()
        });
        older.observed_at = at(1_000_000_000);
        older.events = vec![event("c1", EventKind::TicketClosed, 1_736_000_500)];
        let observed = observe(&m, &source, &older).expect("maps");
        let stale = ledger.observe(&source, &older, observed.attributes());
        assert!(stale.contains(&"FIRSTNAME".to_string()));

        let writes = plan(&m, &source, &older, &observed, Some(&ledger));
        assert_eq!(writes.contact.attributes["FIRSTNAME"], json!("New"));
        assert_eq!(writes.contact.attributes, {
            let mut want = ledger.attribute_values();
            want.extend(m.aggregate_attributes(&source, &ledger.aggregates()));
            want
        });
        // A score of 5: satisfied, so the contact joins 7 and leaves 8.
        assert_eq!(ledger.aggregates().satisfied(), Some(true));
        assert!(writes.lists_join().contains(&7));
        assert_eq!(writes.lists_leave, vec![8]);
        assert_eq!(writes.csat_placed.as_deref(), Some("r1"));
        // Once placed, the same rating moves nobody again.
        let mut placed = ledger.clone();
        placed.csat_placed = Some("r1".into());
        let again = plan(&m, &source, &older, &observed, Some(&placed));
        assert!(again.lists_leave.is_empty());
        assert_eq!(again.csat_placed, None);
        assert!(again.lists_join().contains(&7));
        // The resolution event carries what the ledger adds to it.
        let request = writes.events[0].request.as_ref().expect("mapped");
        let mut want = m
            .event(
                &source,
                &ContactKey::Email("a@b.co".into()),
                &older.events[0],
            )
            .expect("mapped");
        for (k, v) in ledger.resolution_properties(&source, &older.events[0]) {
            want.event_properties.entry(k.to_string()).or_insert(v);
        }
        assert_eq!(request, &want);
    }
    #[test]
    fn a_sources_own_aggregates_leave_out_the_other_sources_and_its_further_accounts() {
        use EventKind::*;
        let store: Source = "gorgias:eu-store".parse().expect("an account");
        let t = |minute: i64| {
            chrono::DateTime::from_timestamp(1_740_819_600 + minute * 60, 0).expect("a time")
        };
        let event = |kind: EventKind, ticket: &str, at, props: serde_json::Value| SupportEvent {
            id: SupportEvent::stable_id(&Source::Zendesk, &format!("ticket:{ticket}"), kind, at),
            kind,
            occurred_at: at,
            ticket_id: Some(ticket.to_string()),
            channel: None,
            properties: props.as_object().cloned().unwrap_or_default(),
        };
        let mut l = Ledger::default();
        l.observe_events(
            &Source::Gorgias,
            &[event(TicketCreated, "5", t(1), json!({}))],
        );
        l.observe_events(
            &store,
            &[
                event(TicketCreated, "5", t(2), json!({})),
                event(TicketCreated, "6", t(3), json!({})),
                event(SurveyResponded, "6", t(4), json!({"score": 2})),
            ],
        );
        l.observe_events(
            &Source::Zendesk,
            &[event(TicketCreated, "9", t(5), json!({}))],
        );
        let named = [Source::Gorgias, store.clone(), Source::Zendesk];
        assert_eq!(l.aggregates().ticket_count, 4, "every source's, summed");
        let main = aggregates_of(&l, &Source::Gorgias, &named);
        assert_eq!((main.ticket_count, main.csat_responses), (1, 0));
        let eu = aggregates_of(&l, &store, &named);
        assert_eq!((eu.ticket_count, eu.csat_responses), (2, 1));
        assert_eq!(eu.csat_score, Some(2.0));
        assert_eq!(aggregates_of(&l, &Source::Zendesk, &named).ticket_count, 1);
    }
}
