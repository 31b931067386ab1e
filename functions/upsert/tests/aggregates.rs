//! Support aggregates, the stale-write guard and CSAT lists through the upsert handler: jobs in,
//! Brevo requests out (wiremock Brevo, in-memory state store).

use chrono::{DateTime, TimeZone, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::MemoryStateStore;
use deskbridge_shared::memory::NoLookup;
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_shared::testkit::brevo::accepting;
use deskbridge_shared::testkit::brevo::{bodies, fast_client};
use deskbridge_upsert::{Message, Upserter};
use serde_json::{Map, Value, json};
use wiremock::MockServer;

const SATISFIED: i64 = 36;
const DISSATISFIED: i64 = 37;

type TestUpserter = Upserter<BrevoClient, MemoryStateStore, NoLookup>;

async fn brevo() -> MockServer {
    accepting(&[]).await
}

fn upserter(server: &MockServer) -> TestUpserter {
    let brevo = fast_client(server);
    let mut mapping = Mapping::default();
    if let Some(z) = mapping.sources.get_mut("zendesk") {
        z.lists.satisfied = Some(SATISFIED);
        z.lists.dissatisfied = Some(DISSATISFIED);
    }
    Upserter::new(brevo, MemoryStateStore::new(), NoLookup, mapping)
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 8, 9, 0, 0)
        .single()
        .expect("time")
        + chrono::Duration::minutes(minutes)
}

fn event(kind: EventKind, ticket: &str, minutes: i64, props: Value) -> SupportEvent {
    let occurred_at = at(minutes);
    SupportEvent {
        id: SupportEvent::stable_id(
            &Source::Zendesk,
            &format!("ticket:{ticket}"),
            kind,
            occurred_at,
        ),
        kind,
        occurred_at,
        ticket_id: Some(ticket.into()),
        channel: Some("email".into()),
        properties: props.as_object().cloned().unwrap_or_else(Map::new),
    }
}

fn jane(name: &str) -> Person {
    Person {
        source_id: Some("901".into()),
        email: Some("jane@example.com".into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn delivery(n: usize, name: &str, observed: i64, events: Vec<SupportEvent>) -> Message {
    let job = Job {
        id: format!("zendesk:delivery-{n}"),
        source: Source::Zendesk,
        origin: Origin::Webhook,
        received_at: Utc::now(),
        correlation_id: None,
        records: vec![Record {
            person: jane(name),
            observed_at: at(observed),
            events,
            ..Default::default()
        }],
    };
    Message {
        message_id: format!("m{n}"),
        body: serde_json::to_string(&job).expect("serialises"),
        receive_count: 1,
        retry: None,
    }
}

async fn last_contact(server: &MockServer) -> Value {
    bodies(server, "/v3/contacts")
        .await
        .pop()
        .expect("a contact was written")
}

/// One deliveries per happening of a support history: three tickets, replies, a resolution,
/// a reopening, two ratings of one ticket and one of another. The name changes on the way.
fn history() -> Vec<Message> {
    use EventKind::*;
    let e = event;
    vec![
        delivery(
            1,
            "Jane Old",
            0,
            vec![e(TicketCreated, "1", 0, json!({"first_reply_minutes": 30}))],
        ),
        delivery(
            2,
            "Jane Old",
            10,
            vec![e(TicketCreated, "2", 10, json!({}))],
        ),
        delivery(3, "Jane Old", 60, vec![e(TicketClosed, "1", 60, json!({}))]),
        delivery(
            4,
            "Jane Old",
            70,
            vec![e(SurveyResponded, "1", 70, json!({"score": "bad"}))],
        ),
        delivery(
            5,
            "Jane New",
            80,
            vec![e(TicketReopened, "1", 80, json!({}))],
        ),
        delivery(
            6,
            "Jane New",
            2000,
            vec![e(
                TicketClosed,
                "1",
                2000,
                json!({"first_reply_minutes": 30}),
            )],
        ),
        delivery(
            7,
            "Jane New",
            2100,
            vec![e(SurveyResponded, "1", 2100, json!({"score": "good"}))],
        ),
        delivery(
            8,
            "Jane New",
            3000,
            vec![e(
                TicketCreated,
                "3",
                3000,
                json!({"first_reply_minutes": 90}),
            )],
        ),
    ]
}

/// The attributes Brevo holds at the end, given the requests it accepted in order.
async fn final_attributes(server: &MockServer) -> Map<String, Value> {
    let mut state = Map::new();
    for body in bodies(server, "/v3/contacts").await {
        if let Some(attrs) = body["attributes"].as_object() {
            state.extend(attrs.clone());
        }
    }
    state
}

#[tokio::test]
async fn aggregates_follow_the_support_history() {
    let server = brevo().await;
    let upserter = upserter(&server);
    for message in history() {
        let report = upserter.handle(&[message]).await;
        assert!(report.failed.is_empty(), "{report:?}");
    }
    let attrs = final_attributes(&server).await;
    let want = json!({
        "ZENDESK_ID": "901", "FIRSTNAME": "Jane", "LASTNAME": "New",
        "TICKET_COUNT": 3, "OPEN_TICKETS": 2,
        "LAST_SUPPORT_DATE": "2025-01-10", "LAST_SUPPORT_CHANNEL": "email",
        "AVG_RESPONSE_TIME": 60.0, "CSAT_SCORE": 5.0, "CSAT_RESPONSES": 1
    });
    assert_eq!(Value::Object(attrs), want);
}

#[tokio::test]
async fn a_shuffled_duplicated_stream_writes_what_the_ordered_stream_writes() {
    let ordered_server = brevo().await;
    let ordered = upserter(&ordered_server);
    for message in history() {
        ordered.handle(&[message]).await;
    }
    let want = final_attributes(&ordered_server).await;

    for seed in [1u64, 7, 42, 1234] {
        let server = brevo().await;
        let upserter = upserter(&server);
        let mut messages = history();
        // Every delivery twice (vendor retries), some in the same batch, in a shuffled order.
        messages.extend(history());
        let mut s = seed;
        for i in (1..messages.len()).rev() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            messages.swap(i, (s >> 33) as usize % (i + 1));
        }
        for batch in messages.chunks(3) {
            let report = upserter.handle(batch).await;
            assert!(report.failed.is_empty(), "seed {seed}: {report:?}");
        }
        let got = final_attributes(&server).await;
        assert_eq!(got, want, "seed {seed}");
        // No timeline event twice.
        let events = bodies(&server, "/v3/events").await;
        let mut keys: Vec<String> = events
            .iter()
            .map(|e| format!("{}|{}", e["event_name"], e["event_date"]))
            .collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "seed {seed}: an event was sent twice");
        assert_eq!(n, 8, "seed {seed}: every happening once");
    }
}

#[tokio::test]
async fn an_older_observation_does_not_overwrite_a_newer_one() {
    let server = brevo().await;
    let upserter = upserter(&server);
    upserter
        .handle(&[delivery(1, "Jane Newer", 100, vec![])])
        .await;
    // A sync page read before, or a vendor retry of an older delivery, arrives late.
    let report = upserter
        .handle(&[delivery(2, "Jane Older", 50, vec![])])
        .await;
    assert_eq!(report.stats.stale_attributes, 1, "LASTNAME: {report:?}");
    let last = last_contact(&server).await;
    assert_eq!(last["attributes"]["LASTNAME"], json!("Newer"));
    assert_eq!(last["attributes"]["FIRSTNAME"], json!("Jane"));
}

/// The lists Brevo was asked to remove the contact from, in order.
async fn removals(server: &MockServer) -> Vec<i64> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            r.url
                .path()
                .strip_prefix("/v3/contacts/lists/")
                .and_then(|p| p.strip_suffix("/contacts/remove"))
                .and_then(|id| id.parse::<i64>().ok())
        })
        .collect()
}

#[tokio::test]
async fn a_changed_csat_score_moves_the_contact_between_lists() {
    use EventKind::*;
    let server = brevo().await;
    let upserter = upserter(&server);

    let good = event(SurveyResponded, "1", 10, json!({"score": 5}));
    upserter
        .handle(&[delivery(1, "Jane", 10, vec![good])])
        .await;
    assert_eq!(last_contact(&server).await["listIds"], json!([SATISFIED]));
    assert_eq!(removals(&server).await, vec![DISSATISFIED]);

    // A newer, bad score: joins dissatisfied, leaves satisfied.
    let bad = event(SurveyResponded, "2", 20, json!({"score": 2}));
    upserter.handle(&[delivery(2, "Jane", 20, vec![bad])]).await;
    assert_eq!(
        last_contact(&server).await["listIds"],
        json!([DISSATISFIED])
    );
    assert_eq!(removals(&server).await, vec![DISSATISFIED, SATISFIED]);

    // The old good score again (a replay): nothing moves back, nothing removed again.
    let good_again = event(SurveyResponded, "1", 10, json!({"score": 5}));
    upserter
        .handle(&[delivery(3, "Jane", 10, vec![good_again])])
        .await;
    assert_eq!(
        last_contact(&server).await["listIds"],
        json!([DISSATISFIED])
    );
    assert_eq!(removals(&server).await, vec![DISSATISFIED, SATISFIED]);
    assert_eq!(
        last_contact(&server).await["attributes"]["CSAT_SCORE"],
        json!(2.0)
    );
}

#[tokio::test]
async fn a_resolved_ticket_event_carries_what_a_follow_up_campaign_needs() {
    use EventKind::*;
    let server = brevo().await;
    let upserter = upserter(&server);
    let created = event(TicketCreated, "5158", 0, json!({"subject": "Refund"}));
    let rating = event(SurveyResponded, "4000", 5, json!({"score": 4}));
    upserter
        .handle(&[delivery(1, "Jane", 5, vec![created, rating])])
        .await;
    let closed = event(
        TicketClosed,
        "5158",
        125,
        json!({"subject": "Refund", "agent_name": "Sam Agent"}),
    );
    upserter
        .handle(&[delivery(2, "Jane", 125, vec![closed])])
        .await;

    let events = bodies(&server, "/v3/events").await;
    let resolved = events
        .iter()
        .find(|e| e["event_name"] == json!("SUPPORT_TICKET_RESOLVED"))
        .expect("resolution event sent");
    let p = &resolved["event_properties"];
    assert_eq!(p["agent_name"], json!("Sam Agent"));
    assert_eq!(p["subject"], json!("Refund"));
    assert_eq!(p["channel"], json!("email"));
    assert_eq!(p["resolution_time"], json!(125.0));
    assert_eq!(p["satisfaction"], json!(4.0));
}

#[tokio::test]
async fn a_contact_is_in_the_active_list_only_while_a_ticket_is_open() {
    use EventKind::*;
    const ACTIVE: i64 = 38;
    let server = brevo().await;
    let mut mapping = Mapping::default();
    if let Some(z) = mapping.sources.get_mut("zendesk") {
        z.lists.active_conversations = Some(ACTIVE);
    }
    let upserter = Upserter::new(
        fast_client(&server),
        MemoryStateStore::new(),
        NoLookup,
        mapping,
    );
    let lists = |contact: Value| contact.get("listIds").cloned().unwrap_or(json!([]));

    upserter.handle(&[delivery(1, "Jane", 0, vec![])]).await;
    assert_eq!(lists(last_contact(&server).await), json!([]));
    upserter
        .handle(&[delivery(
            2,
            "Jane",
            10,
            vec![event(TicketCreated, "1", 10, json!({}))],
        )])
        .await;
    assert_eq!(lists(last_contact(&server).await), json!([ACTIVE]));
    upserter
        .handle(&[delivery(
            3,
            "Jane",
            20,
            vec![event(TicketClosed, "1", 20, json!({}))],
        )])
        .await;
    assert_eq!(lists(last_contact(&server).await), json!([]));
    assert_eq!(removals(&server).await, vec![ACTIVE]);
    // The same closing again (a vendor retry under a new delivery id): no second removal.
    let report = upserter
        .handle(&[delivery(
            4,
            "Jane",
            20,
            vec![event(TicketClosed, "1", 20, json!({}))],
        )])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(removals(&server).await, vec![ACTIVE]);
}

/// A delivery that says only something about tags: `holder` (`None`: the person) added or
/// removed some, or carries exactly `now`.
fn tag_delivery(
    n: usize,
    minutes: i64,
    holder: Option<&str>,
    tags: (&[&str], &[&str], Option<&[&str]>),
) -> Message {
    let owned = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let mut message = delivery(n, "Jane", minutes, vec![]);
    let mut job: Job = serde_json::from_str(&message.body).expect("job");
    let r = &mut job.records[0];
    r.tag_holder = holder.map(str::to_string);
    r.tags_added = owned(tags.0);
    r.tags_removed = owned(tags.1);
    r.tags_now = tags.2.map(owned);
    message.body = serde_json::to_string(&job).expect("serialises");
    message
}

#[tokio::test]
async fn a_tag_list_is_left_only_when_nothing_of_the_contacts_carries_the_tag() {
    const VIP: i64 = 40;
    let server = brevo().await;
    let mut mapping = Mapping::default();
    if let Some(z) = mapping.sources.get_mut("zendesk") {
        z.tag_lists.insert("vip".into(), VIP);
    }
    let upserter = Upserter::new(
        fast_client(&server),
        MemoryStateStore::new(),
        NoLookup,
        mapping,
    );
    let lists = |contact: Value| contact.get("listIds").cloned().unwrap_or(json!([]));
    let send = |m: Message| async { upserter.handle(&[m]).await };

    // The person is tagged, and so is one of their conversations.
    send(tag_delivery(1, 0, None, (&["VIP"], &[], None))).await;
    assert_eq!(lists(last_contact(&server).await), json!([VIP]));
    send(tag_delivery(
        2,
        5,
        Some("conversation:7"),
        (&["vip"], &[], Some(&["vip", "billing"])),
    ))
    .await;
    assert_eq!(lists(last_contact(&server).await), json!([VIP]));
    // The person's tag goes: the conversation still carries it, so the contact stays.
    let report = send(tag_delivery(3, 10, None, (&[], &["vip"], None))).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(removals(&server).await, Vec::<i64>::new());
    assert_eq!(lists(last_contact(&server).await), json!([VIP]));
    // The conversation is read again without it: nothing carries it, the contact leaves.
    send(tag_delivery(
        4,
        20,
        Some("conversation:7"),
        (&["billing"], &[], Some(&["billing"])),
    ))
    .await;
    assert_eq!(removals(&server).await, vec![VIP]);
    assert_eq!(lists(last_contact(&server).await), json!([]));
    // An older observation of the person's tag (before its removal) joins nothing and takes
    // nothing off again.
    let written = bodies(&server, "/v3/contacts").await.len();
    send(tag_delivery(5, 3, None, (&["vip"], &[], None))).await;
    let after = bodies(&server, "/v3/contacts").await;
    assert!(after.len() > written, "the record is written");
    assert!(
        after[written..]
            .iter()
            .all(|c| lists(c.clone()) == json!([])),
        "{after:?}"
    );
    assert_eq!(removals(&server).await, vec![VIP]);
    // Tagged again later: back in.
    send(tag_delivery(
        6,
        30,
        Some("ticket:12"),
        (&["vip"], &[], Some(&["vip"])),
    ))
    .await;
    assert_eq!(lists(last_contact(&server).await), json!([VIP]));
}

#[tokio::test]
async fn a_data_event_reaches_the_timeline_under_its_own_name_or_the_mapped_one() {
    let server = brevo().await;
    let mut mapping = Mapping::default();
    mapping
        .event_mapping
        .insert("data_event.invited-teammate".into(), "TEAM_INVITE".into());
    let upserter = Upserter::new(
        fast_client(&server),
        MemoryStateStore::new(),
        NoLookup,
        mapping,
    );
    let data_event = |id: &str, name: &str, minutes: i64| {
        let occurred_at = at(minutes);
        let mut e = event(
            EventKind::DataEvent,
            "-",
            minutes,
            json!({"event_name": name, "plan": "pro"}),
        );
        e.id = SupportEvent::stable_id(
            &Source::Zendesk,
            &format!("data_event:{id}"),
            EventKind::DataEvent,
            occurred_at,
        );
        e.ticket_id = None;
        e.channel = None;
        e
    };
    let report = upserter
        .handle(&[delivery(
            1,
            "Jane",
            5,
            vec![
                data_event("e1", "placed order", 1),
                data_event("e2", "invited-teammate", 2),
            ],
        )])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    let events = bodies(&server, "/v3/events").await;
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    assert_eq!(names, vec!["placed_order", "TEAM_INVITE"]);
    assert_eq!(events[0]["event_properties"]["event_name"], "placed order");
    assert_eq!(events[0]["event_properties"]["plan"], "pro");
}
