//! Brevo's final state, rebuilt from the requests it accepted in the order it applied them, and
//! compared with the state the inputs call for.
//!
//! Contacts: `POST /v3/contacts` and `/v3/contacts/import` rows set the attributes they carry
//! (updateEnabled / updateExistingContacts: others are kept). Timeline events carry no id of
//! their own in Brevo's API, so an accepted event is identified the way deskbridge keys it: the
//! contact, and the stable id rebuilt from its source, ticket or conversation, event name and
//! date (`SupportEvent::stable_id`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::model::{EventKind, Source, SupportEvent};
use serde_json::Value;

use super::sims::Accepted;
use super::world::World;
use super::{CLAIM_CONTENDED, COMPLETION_FAILED, Faults};

/// One attribute that does not hold the newest observation's value.
#[derive(Debug, Clone)]
pub struct Stale {
    pub contact: String,
    pub attribute: String,
    pub expected: Value,
    pub found: Option<Value>,
}

/// An event as deskbridge identifies it: (contact key, stable id).
pub type EventIdentity = (String, String);

/// An event Brevo accepted more than once.
#[derive(Debug, Clone)]
pub struct Duplicate {
    pub event: EventIdentity,
    pub times: usize,
    /// When Brevo accepted the first and the last copy.
    pub first: Instant,
    pub last: Instant,
}

/// Why an event reached the timeline twice, as far as the run's notes tell.
pub fn duplicate_cause(d: &Duplicate, faults: &Faults, killed_at: Option<Instant>) -> &'static str {
    let id = d.event.1.as_str();
    if faults.noted(COMPLETION_FAILED, id) {
        "the write marking it sent failed after Brevo accepted it"
    } else if faults.noted(CLAIM_CONTENDED, id) {
        "a second worker found its claim in flight and sent it too"
    } else if killed_at.is_some_and(|k| d.first <= k && k <= d.last) {
        "a worker was killed between Brevo's answer and the write marking it sent"
    } else {
        "unexplained"
    }
}

#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Customers with no contact in Brevo.
    pub lost_contacts: Vec<String>,
    /// Events that never reached the timeline.
    pub lost_events: Vec<EventIdentity>,
    /// Events accepted more than once, with how often.
    pub duplicated_events: Vec<Duplicate>,
    pub stale: Vec<Stale>,
    /// Accepted events no input asked for (or that could not be identified).
    pub unexpected_events: Vec<String>,
    /// Contacts no input asked for.
    pub unexpected_contacts: Vec<String>,
}

impl Verdict {
    pub fn lost(&self) -> usize {
        self.lost_contacts.len() + self.lost_events.len()
    }

    /// Extra copies of events on the timeline.
    pub fn duplicated(&self) -> usize {
        self.duplicated_events.iter().map(|d| d.times - 1).sum()
    }

    /// Extra copies by cause: `cause n, cause n`.
    pub fn duplicate_causes(&self, faults: &Faults, killed_at: Option<Instant>) -> String {
        let mut causes: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &self.duplicated_events {
            *causes
                .entry(duplicate_cause(d, faults, killed_at))
                .or_insert(0) += d.times - 1;
        }
        causes
            .iter()
            .map(|(c, n)| format!("{n} because {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Contacts with at least one stale attribute.
    pub fn stale_contacts(&self) -> usize {
        self.stale
            .iter()
            .map(|s| s.contact.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// A few examples of each problem, for a failure message.
    pub fn examples(&self) -> String {
        let mut out = Vec::new();
        let few = |v: Vec<String>| v.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if !self.lost_contacts.is_empty() {
            out.push(format!(
                "lost contacts: {}",
                few(self.lost_contacts.clone())
            ));
        }
        if !self.lost_events.is_empty() {
            let v = self
                .lost_events
                .iter()
                .map(|(c, e)| format!("{e} for {c}"))
                .collect();
            out.push(format!("lost events: {}", few(v)));
        }
        if !self.duplicated_events.is_empty() {
            let v = self
                .duplicated_events
                .iter()
                .map(|d| format!("{} for {} ×{}", d.event.1, d.event.0, d.times))
                .collect();
            out.push(format!("duplicated events: {}", few(v)));
        }
        if !self.stale.is_empty() {
            let v = self
                .stale
                .iter()
                .map(|s| {
                    format!(
                        "{} {}: {} expected, {} found",
                        s.contact,
                        s.attribute,
                        s.expected,
                        s.found.as_ref().map_or("nothing".into(), Value::to_string)
                    )
                })
                .collect();
            out.push(format!("stale: {}", few(v)));
        }
        if !self.unexpected_events.is_empty() {
            out.push(format!(
                "unexpected events: {}",
                few(self.unexpected_events.clone())
            ));
        }
        if !self.unexpected_contacts.is_empty() {
            out.push(format!(
                "unexpected contacts: {}",
                few(self.unexpected_contacts.clone())
            ));
        }
        out.join("\n")
    }
}

/// Compares what Brevo accepted with what `world` calls for.
/// deskbridge's ids of the events in the requests Brevo accepted with API key `key`.
pub fn event_ids_from(world: &World, accepted: &[Accepted], key: &str) -> Vec<String> {
    let identify = Identify::new(world);
    accepted
        .iter()
        .filter(|a| a.key == key && a.path.starts_with("/v3/events"))
        .flat_map(|a| match a.body["events"].as_array() {
            Some(items) => items.clone(),
            None => vec![a.body.clone()],
        })
        .filter_map(|e| identify.event(&e).map(|(_, id)| id))
        .collect()
}

pub fn judge(world: &World, accepted: &[Accepted]) -> Verdict {
    let (contacts, events) = brevo_state(world, accepted);
    let mut verdict = Verdict::default();
    let mut expected_events: BTreeSet<EventIdentity> = BTreeSet::new();
    for c in &world.customers {
        let key = c.key();
        expected_events.extend(c.events.iter().map(|id| (key.clone(), id.clone())));
        let Some(found) = contacts.get(&key) else {
            verdict.lost_contacts.push(key);
            continue;
        };
        for (attribute, expected) in c.expected_attributes() {
            let got = found.get(&attribute);
            if got != Some(&expected) {
                verdict.stale.push(Stale {
                    contact: key.clone(),
                    attribute,
                    expected,
                    found: got.cloned(),
                });
            }
        }
    }
    let keys = world.by_key();
    verdict.unexpected_contacts = contacts
        .keys()
        .filter(|k| !keys.contains_key(*k))
        .cloned()
        .collect();
    for e in &expected_events {
        if !events.contains_key(&Some(e.clone())) {
            verdict.lost_events.push(e.clone());
        }
    }
    for (identity, seen) in events {
        match identity {
            Some(id) if expected_events.contains(&id) => {
                if seen.times > 1 {
                    verdict.duplicated_events.push(Duplicate {
                        event: id,
                        times: seen.times,
                        first: seen.first,
                        last: seen.last,
                    });
                }
            }
            Some((c, e)) => verdict.unexpected_events.push(format!("{e} for {c}")),
            None => verdict.unexpected_events.push(seen.raw),
        }
    }
    verdict
}

type Contacts = BTreeMap<String, BTreeMap<String, Value>>;
/// Accepted events by identity (`None`: not identifiable).
type Events = BTreeMap<Option<EventIdentity>, Seen>;

/// How often and when an event was accepted, with one raw body.
struct Seen {
    times: usize,
    first: Instant,
    last: Instant,
    raw: String,
}

fn brevo_state(world: &World, accepted: &[Accepted]) -> (Contacts, Events) {
    let mut contacts: Contacts = BTreeMap::new();
    let mut events: Events = BTreeMap::new();
    let identify = Identify::new(world);
    let mut write = |row: &Value| {
        let Some(key) = contact_key(row) else { return };
        let attributes = contacts.entry(key).or_default();
        if let Some(a) = row["attributes"].as_object() {
            for (k, v) in a {
                attributes.insert(k.clone(), v.clone());
            }
        }
    };
    for a in accepted {
        match a.path.as_str() {
            "/v3/contacts" => write(&a.body),
            "/v3/contacts/import" => {
                for row in a.body["jsonBody"].as_array().into_iter().flatten() {
                    write(row);
                }
            }
            "/v3/events" | "/v3/events/batch" => {
                let items = match a.body["events"].as_array() {
                    Some(items) => items.clone(),
                    None => vec![a.body.clone()],
                };
                for e in items {
                    let seen = events.entry(identify.event(&e)).or_insert(Seen {
                        times: 0,
                        first: a.at,
                        last: a.at,
                        raw: e.to_string(),
                    });
                    seen.times += 1;
                    seen.last = a.at;
                }
            }
            _ => {}
        }
    }
    (contacts, events)
}

fn contact_key(row: &Value) -> Option<String> {
    row["email"]
        .as_str()
        .map(str::to_lowercase)
        .or_else(|| row["ext_id"].as_str().map(str::to_string))
        .or_else(|| row["attributes"]["SMS"].as_str().map(str::to_string))
}

/// Rebuilds deskbridge's identity of a Brevo event.
struct Identify<'w> {
    world: &'w World,
    keys: BTreeMap<String, usize>,
    kinds: HashMap<String, EventKind>,
}

impl<'w> Identify<'w> {
    fn new(world: &'w World) -> Self {
        let mapping = Mapping::default();
        let kinds = EventKind::ALL
            .into_iter()
            .filter_map(|k| Some((mapping.event_name(&Source::Zendesk, k)?, k)))
            .collect();
        Identify {
            world,
            keys: world.by_key(),
            kinds,
        }
    }

    fn event(&self, e: &Value) -> Option<EventIdentity> {
        let ids = &e["identifiers"];
        let contact = ids["email_id"]
            .as_str()
            .map(str::to_lowercase)
            .or_else(|| ids["ext_id"].as_str().map(str::to_string))
            .or_else(|| ids["phone_id"].as_str().map(str::to_string))?;
        let kind = *self.kinds.get(e["event_name"].as_str()?)?;
        let props = &e["event_properties"];
        let source: Source = props["source"].as_str()?.parse().ok()?;
        let at = chrono::DateTime::parse_from_rfc3339(e["event_date"].as_str()?)
            .ok()?
            .with_timezone(&chrono::Utc);
        let subject = match props["ticket_id"].as_str() {
            Some(t) if source == Source::Intercom => format!("conversation:{t}"),
            Some(t) => format!("ticket:{t}"),
            None => self
                .world
                .customers
                .get(*self.keys.get(&contact)?)?
                .created_subject(),
        };
        Some((
            contact,
            SupportEvent::stable_id(&source, &subject, kind, at),
        ))
    }
}
