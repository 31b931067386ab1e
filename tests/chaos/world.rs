//! A seeded world of helpdesk customers, what happens to them, and the signed-webhook deliveries
//! that report it, with what Brevo must hold in the end.
//!
//! Every customer lives on one helpdesk and has a timeline of distinct seconds: created, profile
//! versions (name and phone change), tickets or conversations opened, closed, reopened and rated.
//! Each happening becomes one delivery in the vendor's documented shape, carrying the customer as
//! they were at that second (Zendesk ticket events carry only the requester id, like the real
//! ones: the upsert side looks the person up). A delivery that carries the customer is an
//! *observation*: the attributes it maps to, at the second it was made. Expected Brevo state:
//! per attribute, the value of the newest observation carrying it; per customer, every timeline
//! event once, by its stable id.
//!
//! The send order is the happenings' order, then disturbed the way vendors disturb it: some
//! deliveries arrive again unchanged (a retry), some are re-sent under a new delivery id, and some
//! observations arrive late, after a newer observation of the same customer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use deskbridge_shared::identity::normalize_phone;
use deskbridge_shared::model::{EventKind, Source, SupportEvent};
use serde_json::{Value, json};

use super::Rng;

const FIRST: [&str; 24] = [
    "Ava", "Liam", "Mia", "Noah", "Zoe", "Omar", "Lena", "Ivan", "Nora", "Hugo", "Iris", "Theo",
    "Ruth", "Axel", "Cleo", "Emil", "Vera", "Finn", "Jade", "Otto", "Sana", "Yuki", "Ines", "Raul",
];
const LAST: [&str; 24] = [
    "Quinn",
    "Okafor",
    "Berg",
    "Silva",
    "Novak",
    "Haddad",
    "Moreau",
    "Kowalski",
    "Tanaka",
    "Reyes",
    "Lindqvist",
    "Osei",
    "Fischer",
    "Duarte",
    "Ivanova",
    "Murphy",
    "Nakamura",
    "Costa",
    "Weber",
    "Abara",
    "Laine",
    "Petrov",
    "Sato",
    "Vidal",
];
const AREAS: [&str; 6] = ["415", "212", "646", "617", "312", "206"];

/// A phone number as the helpdesk wrote it, and its E.164 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub raw: String,
    pub e164: String,
}

/// A customer as they were from `at` on.
#[derive(Debug, Clone)]
pub struct Version {
    pub at: i64,
    pub first: String,
    pub last: String,
    pub phone: Option<Phone>,
}

impl Version {
    fn name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

/// What one delivery tells Brevo about a customer, and when it was true.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub at: i64,
    pub attributes: BTreeMap<String, Value>,
}

/// A helpdesk customer.
#[derive(Debug, Clone)]
pub struct Customer {
    pub source: Source,
    /// The helpdesk's id of the person.
    pub id: String,
    /// The email as the helpdesk holds it (mixed case; Brevo gets it lower-cased).
    pub email: String,
    pub created_at: i64,
    pub versions: Vec<Version>,
    pub observations: Vec<Observation>,
    /// Stable ids of the timeline events Brevo must show once.
    pub events: BTreeSet<String>,
    /// The version the helpdesk API serves to the backfill (Intercom), when it is in it.
    pub backfill: Option<usize>,
}

impl Customer {
    /// The Brevo contact key: the lower-cased email.
    pub fn key(&self) -> String {
        self.email.to_lowercase()
    }

    /// Per attribute, the value of the newest observation carrying it.
    pub fn expected_attributes(&self) -> BTreeMap<String, Value> {
        let mut newest: BTreeMap<String, (i64, Value)> = BTreeMap::new();
        for o in &self.observations {
            for (k, v) in &o.attributes {
                match newest.get(k) {
                    Some((at, _)) if *at >= o.at => {}
                    _ => {
                        newest.insert(k.clone(), (o.at, v.clone()));
                    }
                }
            }
        }
        newest.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }

    /// The newest version: what the helpdesk API answers now.
    pub fn current(&self) -> &Version {
        self.versions
            .last()
            .unwrap_or_else(|| unreachable!("a customer has a version"))
    }

    /// The subject of the customer-created event's stable id.
    pub fn created_subject(&self) -> String {
        match self.source {
            Source::Intercom => format!("contact:{}", self.id),
            _ => format!("user:{}", self.id),
        }
    }

    /// The helpdesk's own contact object at version `v` (Intercom API and webhooks).
    pub fn intercom_contact(&self, v: &Version) -> Value {
        json!({
            "type": "contact", "id": self.id, "workspace_id": "faults", "role": "user",
            "email": self.email, "phone": v.phone.as_ref().map(|p| p.raw.clone()),
            "name": v.name(), "created_at": self.created_at, "updated_at": v.at,
            "signed_up_at": self.created_at, "last_seen_at": v.at,
            "unsubscribed_from_emails": false,
        })
    }

    /// The Zendesk user object at version `v` (API and event `detail`).
    pub fn zendesk_user(&self, v: &Version) -> Value {
        json!({
            "id": self.id, "email": self.email, "name": v.name(),
            "phone": v.phone.as_ref().map(|p| p.raw.clone()), "role": "end-user",
            "created_at": iso(self.created_at), "updated_at": iso(v.at),
        })
    }
}

/// How a delivery is different from a plain first delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disturbance {
    None,
    /// The same request again (a vendor retry after a lost answer).
    Redelivery,
    /// The same happening under a new delivery id.
    Resent,
    /// An older observation sent after a newer one of the same customer.
    Late,
}

/// One webhook delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub source: Source,
    pub body: String,
    /// `X-Zendesk-Webhook-Invocation-Id` of trigger deliveries.
    pub invocation_id: Option<String>,
    pub customer: usize,
    pub disturbance: Disturbance,
    /// When the vendor sends it (seconds on the world's clock; only the order matters).
    send_at: i64,
}

impl Delivery {
    pub fn path(&self) -> String {
        format!("/webhooks/{}", self.source.as_str())
    }

    /// A signed Intercom notification deskbridge cannot read (its contact has no id), quoting
    /// `email`.
    pub fn intercom_unreadable(email: &str) -> Delivery {
        let body = json!({
            "type": "notification_event", "app_id": "faults", "id": "notif_unreadable",
            "topic": "contact.user.created", "created_at": 1_700_000_000,
            "data": {"type": "notification_event_data", "item": {"type": "contact", "email": email}},
        });
        Delivery {
            source: Source::Intercom,
            body: body.to_string(),
            invocation_id: None,
            customer: usize::MAX,
            disturbance: Disturbance::None,
            send_at: 0,
        }
    }
}

/// The whole input.
#[derive(Debug, Clone)]
pub struct World {
    pub seed: u64,
    pub customers: Vec<Customer>,
    /// In send order.
    pub deliveries: Vec<Delivery>,
}

/// Counts of the input, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    pub redeliveries: usize,
    pub resent: usize,
    pub late: usize,
}

impl World {
    /// Customers (round-robin over the three helpdesks) until at least `deliveries` deliveries.
    pub fn generate(seed: u64, deliveries: usize, now: DateTime<Utc>) -> World {
        let mut g = Generator {
            rng: Rng::new(seed),
            now: now.timestamp(),
            out: Vec::new(),
            customers: Vec::new(),
            phones: BTreeSet::new(),
            next_id: 0,
        };
        let sources = [Source::Zendesk, Source::Intercom, Source::Gorgias];
        let mut n = 0;
        while g.out.len() < deliveries {
            let first = g.out.len();
            g.customer(sources[n % 3].clone());
            g.disturb(first);
            n += 1;
        }
        let mut out = g.out;
        out.sort_by_key(|d| d.send_at);
        for (i, c) in g.customers.iter().enumerate() {
            assert!(
                out.iter().any(|d| d.customer == i) && !c.observations.is_empty(),
                "every customer is delivered: {}",
                c.email
            );
        }
        World {
            seed,
            customers: g.customers,
            deliveries: out,
        }
    }

    pub fn mix(&self) -> Mix {
        let count = |k| {
            self.deliveries
                .iter()
                .filter(|d| d.disturbance == k)
                .count()
        };
        Mix {
            redeliveries: count(Disturbance::Redelivery),
            resent: count(Disturbance::Resent),
            late: count(Disturbance::Late),
        }
    }

    /// The customer Brevo addresses by `key` (lower-cased email).
    pub fn by_key(&self) -> BTreeMap<String, usize> {
        self.customers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key(), i))
            .collect()
    }
}

/// A ticket or conversation of the generator.
#[derive(Debug, Clone)]
struct Ticket {
    id: String,
    subject: String,
    created: i64,
    /// Last close, when closed now.
    closed: Option<i64>,
    reopened: bool,
    rated: bool,
}

struct Generator {
    rng: Rng,
    now: i64,
    out: Vec<Delivery>,
    customers: Vec<Customer>,
    phones: BTreeSet<String>,
    next_id: u64,
}

pub fn iso(t: i64) -> String {
    Utc.timestamp_opt(t, 0)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn at(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

fn date(t: i64) -> String {
    at(t).format("%Y-%m-%d").to_string()
}

impl Generator {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A phone number no other customer has, valid for its country, in one of the notations
    /// helpdesks store.
    fn phone(&mut self) -> Phone {
        loop {
            let area = self.rng.pick(&AREAS).to_string();
            let exchange = 200 + self.rng.below(800);
            let line = self.rng.below(10_000);
            let e164 = format!("+1{area}{exchange:03}{line:04}");
            let Ok(normal) = normalize_phone(&e164, None) else {
                continue;
            };
            if exchange % 100 == 11 || !self.phones.insert(normal.clone()) {
                continue;
            }
            let raw = match self.rng.below(4) {
                0 => format!("+1 ({area}) {exchange:03}-{line:04}"),
                1 => format!("+1 {area} {exchange:03} {line:04}"),
                2 => e164.clone(),
                _ => format!("001 {area} {exchange:03} {line:04}"),
            };
            return Phone { raw, e164: normal };
        }
    }

    fn version(&mut self, at: i64, previous: Option<&Version>) -> Version {
        let first = self.rng.pick(&FIRST).to_string();
        let last = self.rng.pick(&LAST).to_string();
        match previous {
            None => Version {
                at,
                first,
                last,
                phone: (!self.rng.chance(0.2)).then(|| self.phone()),
            },
            // A change of last name, of phone, or both; a phone is never removed.
            Some(p) => {
                let change = self.rng.below(3);
                let phone = if change > 0 || p.phone.is_none() {
                    Some(self.phone())
                } else {
                    p.phone.clone()
                };
                Version {
                    at,
                    first: p.first.clone(),
                    last: if change != 1 { last } else { p.last.clone() },
                    phone,
                }
            }
        }
    }

    fn push(&mut self, source: &Source, customer: usize, body: Value, invocation: Option<String>) {
        self.out.push(Delivery {
            source: source.clone(),
            body: body.to_string(),
            invocation_id: invocation,
            customer,
            disturbance: Disturbance::None,
            send_at: 0,
        });
    }

    fn customer(&mut self, source: Source) {
        let n = self.customers.len();
        let start = self.now - 8 * 3600 + self.rng.range(0, 5 * 3600);
        let v0 = self.version(start, None);
        let id = match source {
            Source::Zendesk => format!("8{:012}", 4_400_000 + n),
            Source::Intercom => format!("65f1{:020x}", 0x00c0_ffee_0000_u64 + n as u64),
            _ => format!("{}", 700_000 + n),
        };
        let tag = match source {
            Source::Zendesk => "Zendesk",
            Source::Intercom => "Intercom",
            _ => "Gorgias",
        };
        let email = format!("{}.{}{n}@{tag}.Example.com", v0.first, v0.last);
        self.customers.push(Customer {
            source: source.clone(),
            id,
            email,
            created_at: start,
            versions: vec![v0],
            observations: Vec::new(),
            events: BTreeSet::new(),
            backfill: None,
        });
        let mut t = start;
        // Gorgias reports customers only through their tickets.
        if source != Source::Gorgias {
            self.created(n, t);
        }
        let mut tickets: Vec<Ticket> = Vec::new();
        let steps = 3 + self.rng.below(6);
        for step in 0..steps {
            t += 60 + self.rng.range(0, 1200);
            let open = tickets.iter().filter(|k| k.closed.is_none()).count();
            let closed: Vec<usize> = (0..tickets.len())
                .filter(|&i| tickets[i].closed.is_some())
                .collect();
            let mut choices: Vec<(u64, u8)> = Vec::new();
            if self.customers[n].versions.len() < 4 {
                choices.push((3, 0));
            }
            if open < 2 && tickets.len() < 3 {
                choices.push((3, 1));
            }
            if open > 0 {
                choices.push((4, 2));
            }
            if closed
                .iter()
                .any(|&i| !tickets[i].reopened && !tickets[i].rated)
            {
                choices.push((1, 3));
            }
            if closed.iter().any(|&i| !tickets[i].rated) {
                choices.push((2, 4));
            }
            if step == 0 && source == Source::Gorgias {
                // Gorgias reports a customer only through a ticket: open one first.
                choices = vec![(1, 1)];
            }
            let total: u64 = choices.iter().map(|(w, _)| w).sum();
            let mut roll = self.rng.below(total);
            let mut action = 0;
            for (w, a) in &choices {
                if roll < *w {
                    action = *a;
                    break;
                }
                roll -= w;
            }
            match action {
                0 => {
                    let previous = self.customers[n].current().clone();
                    let v = self.version(t, Some(&previous));
                    self.customers[n].versions.push(v);
                    self.updated(n, t);
                }
                1 => {
                    let k = self.id();
                    let ticket = Ticket {
                        id: match source {
                            Source::Zendesk => format!("{}", 51_000 + k),
                            Source::Intercom => format!("{}", 1_911_000_000 + k),
                            _ => format!("{}", 40_000 + k),
                        },
                        subject: format!("Order {} question", 1000 + k),
                        created: t,
                        closed: None,
                        reopened: false,
                        rated: false,
                    };
                    tickets.push(ticket.clone());
                    self.ticket(n, &ticket, EventKind::TicketCreated, t);
                }
                2 => {
                    let Some(i) = tickets.iter().position(|k| k.closed.is_none()) else {
                        continue;
                    };
                    tickets[i].closed = Some(t);
                    let ticket = tickets[i].clone();
                    self.ticket(n, &ticket, EventKind::TicketClosed, t);
                }
                3 => {
                    let Some(&i) = closed
                        .iter()
                        .find(|&&i| !tickets[i].reopened && !tickets[i].rated)
                    else {
                        continue;
                    };
                    tickets[i].closed = None;
                    tickets[i].reopened = true;
                    let ticket = tickets[i].clone();
                    self.ticket(n, &ticket, EventKind::TicketReopened, t);
                }
                _ => {
                    let Some(&i) = closed.iter().find(|&&i| !tickets[i].rated) else {
                        continue;
                    };
                    tickets[i].rated = true;
                    let ticket = tickets[i].clone();
                    self.ticket(n, &ticket, EventKind::SurveyResponded, t);
                }
            }
        }
        if source == Source::Intercom {
            // The backfill reads the customer as the API holds them when it runs: half the time
            // an older version than the webhooks deliver later.
            let versions = self.customers[n].versions.len();
            let served = if versions > 1 && self.rng.chance(0.5) {
                self.rng.below(versions as u64 - 1) as usize
            } else {
                versions - 1
            };
            self.customers[n].backfill = Some(served);
        }
    }

    fn observe(&mut self, n: usize, at: i64, attributes: BTreeMap<String, Value>) {
        self.customers[n]
            .observations
            .push(Observation { at, attributes });
    }

    /// The attributes a full profile of `source` maps to (the default mapping).
    fn profile_attributes(&self, n: usize, v: &Version) -> BTreeMap<String, Value> {
        let c = &self.customers[n];
        let mut a = BTreeMap::new();
        a.insert(c.source.id_attribute(), json!(c.id));
        a.insert("FIRSTNAME".into(), json!(v.first));
        a.insert("LASTNAME".into(), json!(v.last));
        if let Some(p) = &v.phone {
            a.insert("SMS".into(), json!(p.e164));
        }
        if c.source == Source::Intercom {
            a.insert("INTERCOM_ROLE".into(), json!("user"));
            a.insert("SIGNUP_DATE".into(), json!(date(c.created_at)));
            a.insert("LAST_ACTIVE".into(), json!(date(v.at)));
            a.insert("UNSUBSCRIBED".into(), json!(false));
        }
        a
    }

    /// What a ticket delivery's inline person maps to (no phone: the templates carry names).
    fn name_attributes(&self, n: usize, v: &Version) -> BTreeMap<String, Value> {
        let c = &self.customers[n];
        BTreeMap::from([
            (c.source.id_attribute(), json!(c.id)),
            ("FIRSTNAME".into(), json!(v.first)),
            ("LASTNAME".into(), json!(v.last)),
        ])
    }

    /// Records that a ticket delivery at `t` carries customer `n`'s names at version `v`.
    fn observe_names(&mut self, n: usize, t: i64, v: &Version) -> Customer {
        let attributes = self.name_attributes(n, v);
        self.observe(n, t, attributes);
        self.customers[n].clone()
    }

    fn expect_event(&mut self, n: usize, subject: &str, kind: EventKind, t: i64) {
        let source = self.customers[n].source.clone();
        let id = SupportEvent::stable_id(&source, subject, kind, at(t));
        self.customers[n].events.insert(id);
    }

    fn created(&mut self, n: usize, t: i64) {
        let c = self.customers[n].clone();
        let v = c.current().clone();
        let attributes = self.profile_attributes(n, &v);
        self.observe(n, t, attributes);
        let subject = c.created_subject();
        self.expect_event(n, &subject, EventKind::CustomerCreated, c.created_at);
        let body = match c.source {
            Source::Zendesk => self.zendesk_envelope(
                "user.created",
                t,
                &format!("zen:user:{}", c.id),
                c.zendesk_user(&v),
                json!({}),
            ),
            _ => self.intercom_notification("contact.user.created", t, c.intercom_contact(&v)),
        };
        self.push(&c.source, n, body, None);
    }

    fn updated(&mut self, n: usize, t: i64) {
        let c = self.customers[n].clone();
        let v = c.current().clone();
        if c.source == Source::Gorgias {
            // No customer webhook: later tickets carry the new version.
            return;
        }
        let attributes = self.profile_attributes(n, &v);
        self.observe(n, t, attributes);
        let body = match c.source {
            Source::Zendesk => self.zendesk_envelope(
                "user.name_changed",
                t,
                &format!("zen:user:{}", c.id),
                c.zendesk_user(&v),
                json!({"current": v.name()}),
            ),
            _ => self.intercom_notification("contact.user.updated", t, c.intercom_contact(&v)),
        };
        self.push(&c.source, n, body, None);
    }

    fn ticket(&mut self, n: usize, ticket: &Ticket, kind: EventKind, t: i64) {
        let c = self.customers[n].clone();
        let v = c.current().clone();
        let subject = match c.source {
            Source::Intercom => format!("conversation:{}", ticket.id),
            _ => format!("ticket:{}", ticket.id),
        };
        self.expect_event(n, &subject, kind, t);
        let (body, invocation) = match c.source {
            Source::Zendesk => self.zendesk_ticket(n, ticket, kind, t, &v),
            Source::Intercom => (self.intercom_conversation(n, ticket, kind, t, &v), None),
            _ => (self.gorgias_ticket(n, ticket, kind, t, &v), None),
        };
        self.push(&c.source, n, body, invocation);
    }

    fn zendesk_envelope(
        &mut self,
        topic: &str,
        t: i64,
        subject: &str,
        detail: Value,
        event: Value,
    ) -> Value {
        let k = self.id();
        json!({
            "type": format!("zen:event-type:{topic}"), "account_id": 12_514_403,
            "id": format!("7f3c1d2e-{k:04x}-4c3e-b1a2-{:012x}", self.rng.next_u64() >> 16),
            "time": iso(t), "zendesk_event_version": "2022-11-06", "subject": subject,
            "detail": detail, "event": event,
        })
    }

    /// Zendesk: status changes through the event subscription (the requester by id only),
    /// ratings through the deskbridge trigger template (the requester in full).
    fn zendesk_ticket(
        &mut self,
        n: usize,
        ticket: &Ticket,
        kind: EventKind,
        t: i64,
        v: &Version,
    ) -> (Value, Option<String>) {
        let c = self.customers[n].clone();
        let status = match kind {
            EventKind::TicketCreated => "NEW",
            EventKind::TicketClosed | EventKind::SurveyResponded => "SOLVED",
            _ => "OPEN",
        };
        if kind == EventKind::SurveyResponded {
            self.observe(n, t, {
                let mut a = self.name_attributes(n, v);
                if let Some(p) = &v.phone {
                    a.insert("SMS".into(), json!(p.e164));
                }
                a
            });
            let good = self.rng.chance(0.7);
            let body = json!({
                "deskbridge_event": "satisfaction.rated",
                "ticket": {
                    "id": ticket.id, "title": ticket.subject, "status": "Solved",
                    "priority": "Normal", "via": "Web Form", "tags": "",
                    "updated_at": iso(t), "assignee_name": "Sam Agent",
                    "satisfaction_rating": if good { "Good" } else { "Bad" },
                    "satisfaction_comment": if good { "Quick and friendly" } else { "Too slow" },
                },
                "requester": {
                    "id": c.id, "email": c.email, "name": v.name(), "first_name": v.first,
                    "last_name": v.last,
                    "phone": v.phone.as_ref().map_or(String::new(), |p| p.raw.clone()),
                    "external_id": "",
                },
            });
            let k = self.id();
            return (body, Some(format!("01HFAULTS{k:016}")));
        }
        let detail = json!({
            "id": ticket.id, "requester_id": c.id, "submitter_id": c.id, "status": status,
            "priority": "NORMAL", "subject": ticket.subject, "type": "QUESTION",
            "created_at": iso(ticket.created), "updated_at": iso(t), "is_public": true,
            "via": {"channel": "web"},
        });
        let (topic, event) = match kind {
            EventKind::TicketCreated => ("ticket.created", json!({"current": {"status": "New"}})),
            EventKind::TicketClosed => (
                "ticket.status_changed",
                json!({"current": "SOLVED", "previous": "OPEN"}),
            ),
            _ => (
                "ticket.status_changed",
                json!({"current": "OPEN", "previous": "SOLVED"}),
            ),
        };
        let subject = format!("zen:ticket:{}", ticket.id);
        (
            self.zendesk_envelope(topic, t, &subject, detail, event),
            None,
        )
    }

    fn intercom_notification(&mut self, topic: &str, t: i64, item: Value) -> Value {
        let k = self.id();
        json!({
            "type": "notification_event", "app_id": "faults", "id": format!("notif_{k:08x}"),
            "topic": topic, "delivery_status": "pending", "delivery_attempts": 1,
            "created_at": t, "first_sent_at": t,
            "data": {"type": "notification_event_data", "item": item},
        })
    }

    fn intercom_conversation(
        &mut self,
        n: usize,
        ticket: &Ticket,
        kind: EventKind,
        t: i64,
        v: &Version,
    ) -> Value {
        let c = self.observe_names(n, t, v);
        let mut item = json!({
            "type": "conversation", "id": ticket.id, "created_at": ticket.created,
            "updated_at": t, "title": null, "open": kind != EventKind::TicketClosed,
            "state": if kind == EventKind::TicketClosed || kind == EventKind::SurveyResponded { "closed" } else { "open" },
            "source": {
                "type": "email", "id": format!("src{}", ticket.id), "delivered_as": "customer_initiated",
                "subject": ticket.subject,
                "author": {"type": "user", "id": c.id, "name": v.name(), "email": c.email},
            },
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": c.id}]},
            "statistics": {"type": "conversation_statistics", "last_close_at": ticket.closed},
        });
        if kind == EventKind::SurveyResponded {
            item["conversation_rating"] = json!({
                "rating": 1 + self.rng.below(5), "remark": "Thanks for the help", "created_at": t,
                "contact": {"type": "contact", "id": c.id},
            });
        }
        let topic = match kind {
            EventKind::TicketCreated => "conversation.user.created",
            EventKind::TicketClosed => "conversation.admin.closed",
            EventKind::TicketReopened => "conversation.admin.opened",
            _ => "conversation.rating.added",
        };
        self.intercom_notification(topic, t, item)
    }

    fn gorgias_ticket(
        &mut self,
        n: usize,
        ticket: &Ticket,
        kind: EventKind,
        t: i64,
        v: &Version,
    ) -> Value {
        let c = self.observe_names(n, t, v);
        let (event, status) = match kind {
            EventKind::TicketCreated => ("ticket.created", "open"),
            EventKind::TicketReopened => ("ticket.reopened", "open"),
            _ => ("ticket.updated", "closed"),
        };
        let survey = if kind == EventKind::SurveyResponded {
            // The ticket is closed; its close is reported again (same stable id, deduped).
            json!({"score": format!("{}", 1 + self.rng.below(5)), "body_text": "Solved fast",
                   "scored_datetime": iso(t)})
        } else {
            json!({"score": "", "body_text": "", "scored_datetime": ""})
        };
        json!({
            "deskbridge_event": event,
            "ticket": {
                "id": ticket.id, "subject": ticket.subject, "status": status,
                "channel": "email", "via": "email", "tags": "",
                "created_datetime": iso(ticket.created), "updated_datetime": iso(t),
                "closed_datetime": ticket.closed.map_or(String::new(), iso),
                "assignee_user": {"name": "Sam Agent"},
                "satisfaction_survey": survey,
                "customer": {"id": c.id, "email": c.email, "name": v.name(),
                             "firstname": v.first, "lastname": v.last},
            }
        })
    }

    /// Send times (the happening's second) of the deliveries from `first` on (one customer's),
    /// then the vendors' retries, re-sends and late observations.
    fn disturb(&mut self, first: usize) {
        let mut deliveries = self.out.split_off(first);
        for d in &mut deliveries {
            d.send_at = happened_at(d);
        }
        let mut extra = Vec::new();
        for d in &deliveries {
            let roll = self.rng.unit();
            if roll < 0.05 {
                let mut again = d.clone();
                again.disturbance = Disturbance::Redelivery;
                again.send_at += self.rng.range(30, 4 * 3600);
                extra.push(again);
            } else if roll < 0.08 && d.source != Source::Gorgias && d.invocation_id.is_none() {
                let mut again = d.clone();
                let mut body: Value = serde_json::from_str(&d.body).unwrap_or(Value::Null);
                let k = self.id();
                match d.source {
                    Source::Zendesk => body["id"] = json!(format!("resent-{k:08}")),
                    _ => {
                        body["id"] = json!(format!("notif_resent_{k:08x}"));
                        body["delivery_attempts"] = json!(2);
                    }
                }
                again.body = body.to_string();
                again.disturbance = Disturbance::Resent;
                again.send_at += self.rng.range(30, 4 * 3600);
                extra.push(again);
            }
        }
        // Late observations: sent well after the customer's next observation (newest first, so
        // the next one's send time is final when an older one is moved after it).
        for i in (0..deliveries.len()).rev() {
            if !self.rng.chance(0.12) {
                continue;
            }
            let (c, sent) = (deliveries[i].customer, deliveries[i].send_at);
            let carries = |d: &Delivery| observed_at(d).is_some();
            if !carries(&deliveries[i]) {
                continue;
            }
            let next = deliveries
                .iter()
                .filter(|d| d.customer == c && carries(d) && d.send_at > sent)
                .map(|d| d.send_at)
                .min();
            if let Some(next) = next {
                deliveries[i].send_at = next + self.rng.range(3600, 5 * 3600);
                deliveries[i].disturbance = Disturbance::Late;
            }
        }
        deliveries.extend(extra);
        self.out.extend(deliveries);
    }
}

/// The second a delivery reports (its observation, or its happening).
fn happened_at(d: &Delivery) -> i64 {
    let body: Value = serde_json::from_str(&d.body).unwrap_or(Value::Null);
    let parse = |v: &Value| deskbridge_shared::mapping::parse_time(v).map(|t| t.timestamp());
    match d.source {
        Source::Zendesk => parse(&body["time"])
            .or_else(|| parse(&body["ticket"]["updated_at"]))
            .unwrap_or(0),
        Source::Intercom => body["created_at"].as_i64().unwrap_or(0),
        _ => parse(&body["ticket"]["updated_datetime"]).unwrap_or(0),
    }
}

/// The second of the customer observation a delivery carries, if it carries one (Zendesk
/// ticket events name the requester by id only).
fn observed_at(d: &Delivery) -> Option<i64> {
    let body: Value = serde_json::from_str(&d.body).unwrap_or(Value::Null);
    let zendesk_ticket = d.source == Source::Zendesk
        && body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("zen:event-type:ticket."));
    (!zendesk_ticket).then(|| happened_at(d))
}
