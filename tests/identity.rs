//! One person, one Brevo contact: a person first known by its helpdesk id only, and a person
//! whose email changes, each end as one contact carrying everything written for them. The
//! state table is DynamoDB in moto; Brevo is the testkit's model, which keeps contacts the way
//! Brevo does.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::helpdesk::Parsed;
use deskbridge_shared::helpdesk::intercom::webhook::parse_webhook;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::NoLookup;
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::testkit::brevo::{BrevoModel, fast_client};
use deskbridge_upsert::{Message, Upserter};
use serde_json::{Map, Value, json};
use wiremock::MockServer;

struct World {
    brevo: BrevoModel,
    upserter: Upserter<BrevoClient, DynamoStateStore, NoLookup>,
    _server: MockServer,
}

async fn world(name: &str) -> World {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, name).await;
    let (model, server) = BrevoModel::start().await;
    let brevo = fast_client(&server);
    let state = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), res.table.clone());
    World {
        brevo: model,
        upserter: Upserter::new(brevo, state, NoLookup, Mapping::default()),
        _server: server,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0)
        .single()
        .expect("time")
}

/// An Intercom contact webhook, as Intercom sends it.
fn intercom(topic: &str, n: u32, id: &str, role: &str, email: Option<&str>, secs: i64) -> Value {
    json!({
        "type": "notification_event",
        "app_id": "a86dr8yl",
        "data": {"type": "notification_event_data", "item": {
            "type": "contact", "id": id, "workspace_id": "a86dr8yl", "external_id": null,
            "role": role, "email": email, "phone": null, "name": "Robin Park",
            "unsubscribed_from_emails": false, "created_at": 1_767_225_600,
            "updated_at": 1_767_225_600 + secs, "signed_up_at": null,
            "custom_attributes": {"utm_campaign": "spring"},
            "tags": {"type": "list", "data": [], "total_count": 0, "has_more": false}
        }},
        "id": format!("notif_{n}"),
        "topic": topic,
        "created_at": 1_767_225_600 + secs,
    })
}

impl World {
    async fn handle(&self, job: Job) -> deskbridge_upsert::Stats {
        let message = Message::new(
            job.id.clone(),
            serde_json::to_string(&job).expect("job serialises"),
        );
        let report = self.upserter.handle(&[message]).await;
        assert!(report.failed.is_empty(), "{:?}", report);
        assert!(report.stats.finals.is_empty(), "{:?}", report.stats.finals);
        report.stats
    }

    /// Runs an Intercom webhook body through the parser and the upsert, as a delivery would.
    async fn intercom(&self, body: Value, secs: i64) -> deskbridge_upsert::Stats {
        let Ok(Parsed::Accepted(delivery)) = parse_webhook(body, at(secs)) else {
            panic!("the webhook is accepted");
        };
        self.handle(Job {
            id: format!("intercom:{}", delivery.delivery_id),
            source: Source::Intercom,
            origin: Origin::Webhook,
            received_at: at(secs),
            correlation_id: None,
            records: delivery.records,
        })
        .await
    }
}

#[tokio::test]
async fn an_email_less_lead_that_gives_an_email_stays_one_contact() {
    let w = world("identity-lead").await;
    let lead = "6762f11a2c3d4e5f60718293";
    w.intercom(
        intercom("contact.lead.created", 1, lead, "lead", None, 0),
        0,
    )
    .await;
    let before = w.brevo.contacts();
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(
        before[0].ext_id.as_deref(),
        Some(&*format!("intercom:{lead}"))
    );
    assert_eq!(before[0].email, None);

    let stats = w
        .intercom(
            intercom(
                "contact.lead.added_email",
                2,
                lead,
                "lead",
                Some("robin@example.com"),
                60,
            ),
            60,
        )
        .await;
    assert_eq!(stats.contacts_moved, 1);
    // Signing up later changes nothing more.
    w.intercom(
        intercom(
            "contact.lead.signed_up",
            3,
            lead,
            "user",
            Some("robin@example.com"),
            120,
        ),
        120,
    )
    .await;
    let after = w.brevo.contacts();
    assert_eq!(after.len(), 1, "one contact: {after:?}");
    let c = &after[0];
    assert_eq!(c.email.as_deref(), Some("robin@example.com"));
    assert_eq!(c.ext_id.as_deref(), Some(&*format!("intercom:{lead}")));
    assert_eq!(c.attributes["INTERCOM_ID"], lead);
    assert_eq!(c.attributes["INTERCOM_ROLE"], "user");
    assert_eq!(
        c.events,
        ["SUPPORT_CUSTOMER_CREATED"],
        "the lead's timeline is kept"
    );
}

#[tokio::test]
async fn a_changed_email_moves_the_contact() {
    let w = world("identity-email").await;
    let user = "6762f0d91bb69f9f2193bb7e";
    w.intercom(
        intercom(
            "contact.user.created",
            1,
            user,
            "user",
            Some("jane@old.example"),
            0,
        ),
        0,
    )
    .await;
    w.intercom(
        intercom(
            "contact.email.updated",
            2,
            user,
            "user",
            Some("jane@new.example"),
            60,
        ),
        60,
    )
    .await;
    let after = w.brevo.contacts();
    assert_eq!(after.len(), 1, "one contact: {after:?}");
    assert_eq!(after[0].email.as_deref(), Some("jane@new.example"));
    assert_eq!(after[0].events, ["SUPPORT_CUSTOMER_CREATED"]);
}

#[tokio::test]
async fn a_new_email_that_has_a_contact_takes_the_persons_records_and_the_old_one_is_left() {
    let w = world("identity-taken").await;
    w.intercom(
        intercom(
            "contact.user.created",
            1,
            "other",
            "user",
            Some("shared@example.com"),
            0,
        ),
        0,
    )
    .await;
    w.intercom(
        intercom("contact.lead.created", 2, "lead9", "lead", None, 10),
        10,
    )
    .await;
    let stats = w
        .intercom(
            intercom(
                "contact.lead.added_email",
                3,
                "lead9",
                "lead",
                Some("shared@example.com"),
                20,
            ),
            20,
        )
        .await;
    assert_eq!((stats.contacts_moved, stats.contacts_merged), (0, 1));
    let after = w.brevo.contacts();
    assert_eq!(after.len(), 2, "{after:?}");
    let shared = after
        .iter()
        .find(|c| c.email.as_deref() == Some("shared@example.com"))
        .expect("the email's contact");
    assert_eq!(
        shared.attributes["INTERCOM_ID"], "lead9",
        "the person's newest values"
    );
    // Later records of the person go there, not to the contact left behind.
    w.intercom(
        intercom(
            "contact.lead.updated",
            4,
            "lead9",
            "lead",
            Some("shared@example.com"),
            30,
        ),
        30,
    )
    .await;
    assert_eq!(w.brevo.contacts().len(), 2);
}

fn ticket_opened(requester: Person, ticket: &str, secs: i64) -> Record {
    Record {
        person: requester,
        observed_at: at(secs),
        events: vec![SupportEvent {
            id: SupportEvent::stable_id(
                &Source::Zendesk,
                &format!("ticket:{ticket}"),
                EventKind::TicketCreated,
                at(secs),
            ),
            kind: EventKind::TicketCreated,
            occurred_at: at(secs),
            ticket_id: Some(ticket.into()),
            channel: Some("email".into()),
            properties: Map::new(),
        }],
        ..Default::default()
    }
}

fn job(id: &str, origin: Origin, secs: i64, records: Vec<Record>) -> Job {
    Job {
        id: id.into(),
        source: Source::Zendesk,
        origin,
        received_at: at(secs),
        correlation_id: None,
        records,
    }
}

#[tokio::test]
async fn a_ticket_whose_requester_was_unknown_ends_on_the_email_contact() {
    let w = world("identity-requester").await;
    let unknown = Person {
        source_id: Some("9001".into()),
        ..Default::default()
    };
    // The requester could not be looked up (no API credentials): an ext_id contact.
    w.handle(job(
        "zendesk:t1",
        Origin::Webhook,
        0,
        vec![ticket_opened(unknown.clone(), "41", 0)],
    ))
    .await;
    assert_eq!(
        w.brevo.contacts()[0].ext_id.as_deref(),
        Some("zendesk:9001")
    );

    // The user stream then reads the user, with an email.
    let user = Record {
        person: Person {
            source_id: Some("9001".into()),
            email: Some("Pat@Example.com".into()),
            name: Some("Pat Lee".into()),
            ..Default::default()
        },
        observed_at: at(300),
        ..Default::default()
    };
    w.handle(job("zendesk/users:p1", Origin::Sync, 300, vec![user]))
        .await;
    // A later ticket whose requester is again not looked up goes to the email contact.
    w.handle(job(
        "zendesk:t2",
        Origin::Webhook,
        600,
        vec![ticket_opened(unknown, "42", 600)],
    ))
    .await;

    let after = w.brevo.contacts();
    assert_eq!(after.len(), 1, "one contact: {after:?}");
    let c = &after[0];
    assert_eq!(c.email.as_deref(), Some("pat@example.com"));
    assert_eq!(c.events, ["SUPPORT_TICKET_OPENED", "SUPPORT_TICKET_OPENED"]);
    assert_eq!(
        c.attributes.get("TICKET_COUNT"),
        Some(&json!(2)),
        "the ticket written before the email was known still counts: {:?}",
        c.attributes
    );
}

#[tokio::test]
async fn one_customer_id_in_two_helpdesks_is_one_contact() {
    let w = world("identity-external").await;
    // A Zendesk end user without an email, with the customer's id from the CRM…
    let user = Record {
        person: Person {
            source_id: Some("35436".into()),
            external_id: Some("crm-77".into()),
            name: Some("Sam Rivers".into()),
            ..Default::default()
        },
        observed_at: at(0),
        ..Default::default()
    };
    w.handle(job("zendesk/users:e1", Origin::Sync, 0, vec![user]))
        .await;
    // …and the same customer as an Intercom lead, also without an email.
    let mut lead = intercom("contact.lead.created", 1, "lead-crm", "lead", None, 30);
    lead["data"]["item"]["external_id"] = json!("crm-77");
    w.intercom(lead, 30).await;
    let contacts = w.brevo.contacts();
    assert_eq!(contacts.len(), 1, "one contact: {contacts:?}");
    assert_eq!(contacts[0].ext_id.as_deref(), Some("crm-77"));
    assert_eq!(contacts[0].attributes["ZENDESK_ID"], "35436");
    assert_eq!(contacts[0].attributes["INTERCOM_ID"], "lead-crm");

    // The lead gives an email: the one contact moves to it.
    let mut added = intercom(
        "contact.lead.added_email",
        2,
        "lead-crm",
        "lead",
        Some("sam@example.com"),
        60,
    );
    added["data"]["item"]["external_id"] = json!("crm-77");
    w.intercom(added, 60).await;
    let contacts = w.brevo.contacts();
    assert_eq!(contacts.len(), 1, "one contact: {contacts:?}");
    assert_eq!(contacts[0].email.as_deref(), Some("sam@example.com"));
    assert_eq!(contacts[0].events, ["SUPPORT_CUSTOMER_CREATED"]);
}
