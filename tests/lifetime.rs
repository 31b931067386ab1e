//! Exactly once for the life of a ticket: a solved ticket's timeline events reach Brevo once,
//! also when the sync re-reads the ticket or the helpdesk redelivers its webhook after every
//! expiry has passed. The state table is DynamoDB in moto with its clock injected; DynamoDB's
//! TTL sweep is played by deleting every item whose `expires_at` is past, as AWS would.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeZone, Utc};
use deskbridge_shared::brevo::{BrevoClient, RateGovernor};
use deskbridge_shared::clock::{Clock, ManualClock};
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::NoLookup;
use deskbridge_shared::model::{EventKind, Job, Origin, Person, Record, Source, SupportEvent};
use deskbridge_shared::state::{Claim, DynamoStateStore, StateStore};
use deskbridge_shared::testkit::brevo::{accepting, event_names, fast_client};
use deskbridge_upsert::{Message, Upserter};
use wiremock::MockServer;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn brevo() -> MockServer {
    accepting(&[
        ("FIRSTNAME", "text"),
        ("LASTNAME", "text"),
        ("TICKET_COUNT", "float"),
        ("OPEN_TICKETS", "float"),
        ("LAST_SUPPORT_DATE", "date"),
        ("LAST_SUPPORT_CHANNEL", "text"),
    ])
    .await
}

/// The `event_name`s of every event Brevo received, one by one or in batches.
async fn events_received(server: &MockServer) -> Vec<String> {
    event_names(server).await
}

fn event(kind: EventKind, at: chrono::DateTime<Utc>) -> SupportEvent {
    SupportEvent {
        id: SupportEvent::stable_id(&Source::Zendesk, "ticket:77", kind, at),
        kind,
        occurred_at: at,
        ticket_id: Some("77".into()),
        channel: Some("email".into()),
        properties: serde_json::Map::new(),
    }
}

/// The solved ticket as a path reports it at `seen`.
fn message(n: usize, origin: Origin, seen: chrono::DateTime<Utc>) -> Message {
    let created = Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("time");
    let solved = Utc
        .with_ymd_and_hms(2026, 3, 3, 16, 30, 0)
        .single()
        .expect("time");
    reporting(
        n,
        origin,
        seen,
        vec![
            event(EventKind::TicketCreated, created),
            event(EventKind::TicketClosed, solved),
        ],
    )
}

/// Ticket 77's `events` as a path reports them at `seen`.
fn reporting(
    n: usize,
    origin: Origin,
    seen: chrono::DateTime<Utc>,
    events: Vec<SupportEvent>,
) -> Message {
    let job = Job {
        id: format!("zendesk:lifetime-{n}"),
        source: Source::Zendesk,
        origin,
        received_at: seen,
        correlation_id: None,
        records: vec![Record {
            person: Person {
                source_id: Some("501".into()),
                email: Some("pat@example.com".into()),
                name: Some("Pat Lee".into()),
                ..Default::default()
            },
            observed_at: seen,
            events,
            ..Default::default()
        }],
    };
    Message {
        message_id: format!("m-{n}"),
        body: serde_json::to_string(&job).expect("job serialises"),
        receive_count: 1,
        retry: None,
    }
}

#[tokio::test]
async fn a_solved_tickets_events_are_sent_once_whatever_reports_them_months_later() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "lifetime").await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 3, 17, 0, 0)
            .single()
            .expect("time"),
    ));
    let server = brevo().await;
    let brevo = fast_client(&server);
    let state = DynamoStateStore::new(client.clone(), res.table.clone()).with_clock(clock.clone());
    let upserter =
        Upserter::new(brevo, state.clone(), NoLookup, Mapping::default()).with_clock(clock.clone());

    // A record written before event records were permanent: done, with the 30-day expiry.
    let legacy = "event#zendesk:ticket:12:ticket.closed:2026-03-01";
    client
        .put_item()
        .table_name(&res.table)
        .item("pk", AttributeValue::S(legacy.into()))
        .item("status", AttributeValue::S("done".into()))
        .item(
            "expires_at",
            AttributeValue::N((clock.now().timestamp() + 30 * 86_400).to_string()),
        )
        .send()
        .await
        .expect("legacy record");
    // A webhook delivery's dedupe record, which rightly expires after 7 days.
    client
        .put_item()
        .table_name(&res.table)
        .item("pk", AttributeValue::S("delivery#zendesk#old".into()))
        .item("status", AttributeValue::S("done".into()))
        .item(
            "expires_at",
            AttributeValue::N((clock.now().timestamp() + 7 * 86_400).to_string()),
        )
        .send()
        .await
        .expect("delivery record");

    // The webhook reports the solve (nothing reads the ticket again for a month).
    let report = upserter
        .handle(&[message(1, Origin::Webhook, clock.now())])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    let first = events_received(&server).await;
    assert_eq!(
        first,
        ["SUPPORT_TICKET_OPENED", "SUPPORT_TICKET_RESOLVED"],
        "each milestone once"
    );
    // The legacy record is read again within its 30 days and loses its expiry.
    assert_eq!(state.claim(legacy, DAY).await.expect("claim"), Claim::Done);

    // 31 days on, everything that expires has expired and been swept…
    clock.advance(31 * DAY);
    let swept = common::sweep_expired(&client, &res.table, clock.now().timestamp()).await;
    assert!(swept >= 1, "the sweep removed the expired delivery record");
    assert_eq!(
        state
            .claim("delivery#zendesk#old", DAY)
            .await
            .expect("claim"),
        Claim::New,
        "an expired record is gone"
    );

    // …and an agent's comment makes the sync read the ticket again, and the helpdesk
    // redelivers the old webhook: neither sends its events again.
    let report = upserter
        .handle(&[message(3, Origin::Sync, clock.now())])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    let report = upserter
        .handle(&[message(4, Origin::Webhook, clock.now())])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        events_received(&server).await,
        first,
        "no event sent twice, 31 days later"
    );
    assert_eq!(state.claim(legacy, DAY).await.expect("claim"), Claim::Done);

    // A year on, the same.
    clock.advance(365 * DAY);
    common::sweep_expired(&client, &res.table, clock.now().timestamp()).await;
    let report = upserter
        .handle(&[message(5, Origin::Sync, clock.now())])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    let report = upserter
        .handle(&[message(6, Origin::Webhook, clock.now())])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(events_received(&server).await, first);
}

/// One solve is one event whichever path reports it and at whatever second (the webhook just
/// before midnight, the sync's `solved_at` just after); a solve, a reopen and a second solve on
/// one day are three; a solve sent by an earlier version under its day-keyed id is not sent
/// again when reported under its instant.
#[tokio::test]
async fn a_solve_is_one_event_at_any_hour_and_two_solves_are_two() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "milestones").await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let time = |d, h, m, s| {
        Utc.with_ymd_and_hms(2026, 3, d, h, m, s)
            .single()
            .expect("time")
    };
    let clock = Arc::new(ManualClock::new(time(2, 0, 5, 0)));
    let server = brevo().await;
    let brevo = BrevoClient::new("xkeysib-test", &format!("{}/v3", server.uri()))
        .expect("client")
        .with_governor(Arc::new(RateGovernor::new(1000, 1_000_000)));
    let state = DynamoStateStore::new(client.clone(), res.table.clone()).with_clock(clock.clone());
    let upserter =
        Upserter::new(brevo, state.clone(), NoLookup, Mapping::default()).with_clock(clock.clone());
    let deliver = |n, origin, events: Vec<SupportEvent>| {
        let message = reporting(n, origin, clock.now(), events);
        let upserter = &upserter;
        async move {
            let report = upserter.handle(&[message]).await;
            assert!(report.failed.is_empty(), "{report:?}");
        }
    };
    let closed = |t| event(EventKind::TicketClosed, t);
    let reopened = |t| event(EventKind::TicketReopened, t);

    // An earlier version sent the solve of 20 February under its day-keyed id.
    let old_solve = Utc
        .with_ymd_and_hms(2026, 2, 20, 14, 0, 0)
        .single()
        .expect("time");
    let legacy = SupportEvent::day_id("zendesk:ticket:77", EventKind::TicketClosed, old_solve);
    state
        .complete(&format!("event#{legacy}"), None)
        .await
        .expect("legacy record");
    deliver(1, Origin::Sync, vec![closed(old_solve)]).await;
    assert!(
        events_received(&server).await.is_empty(),
        "sent before, not again"
    );

    // The webhook sees the solve at 23:59:59, the sync reads `solved_at` as 00:00:01.
    deliver(2, Origin::Webhook, vec![closed(time(1, 23, 59, 59))]).await;
    deliver(3, Origin::Sync, vec![closed(time(2, 0, 0, 1))]).await;
    assert_eq!(events_received(&server).await, ["SUPPORT_TICKET_RESOLVED"]);

    // Reopened and solved again that morning, as the webhook reports it.
    deliver(4, Origin::Webhook, vec![reopened(time(2, 9, 0, 0))]).await;
    deliver(5, Origin::Webhook, vec![closed(time(2, 9, 1, 0))]).await;
    let expected = [
        "SUPPORT_TICKET_REOPENED",
        "SUPPORT_TICKET_RESOLVED",
        "SUPPORT_TICKET_RESOLVED",
    ];
    assert_eq!(events_received(&server).await, expected);

    // The sync reads the ticket's whole history, each instant a second off, and a month later
    // (after every expiry) the webhook deliveries come again: nothing new.
    clock.advance(31 * DAY);
    deliver(
        6,
        Origin::Sync,
        vec![
            closed(old_solve),
            closed(time(2, 0, 0, 2)),
            reopened(time(2, 9, 0, 1)),
            closed(time(2, 9, 1, 1)),
        ],
    )
    .await;
    deliver(7, Origin::Webhook, vec![closed(time(1, 23, 59, 59))]).await;
    deliver(8, Origin::Webhook, vec![closed(time(2, 9, 1, 0))]).await;
    assert_eq!(events_received(&server).await, expected);
}
