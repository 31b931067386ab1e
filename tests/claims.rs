//! Event claims on DynamoDB (moto): whoever sends an event holds its claim, so two workers never
//! both send it — also when a claim was left pending past its lease, or released meanwhile.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use deskbridge_shared::state::{CLAIM_LEASE, Claim, DynamoStateStore, StateStore};

const TTL: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_claim_is_held_by_one_worker_at_a_time_and_a_stale_one_is_taken_over_once() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "claims").await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let a = DynamoStateStore::new(client.clone(), res.table.clone());
    let b = DynamoStateStore::new(client.clone(), res.table.clone());

    // Fresh: one worker gets it, the other waits.
    assert_eq!(a.claim("event#e1", TTL).await.expect("claim"), Claim::New);
    assert_eq!(b.claim("event#e1", TTL).await.expect("claim"), Claim::Busy);
    // Released (the send failed): the next claim is a new one.
    a.release("event#e1").await.expect("release");
    assert_eq!(b.claim("event#e1", TTL).await.expect("claim"), Claim::New);
    b.complete("event#e1", None).await.expect("complete");
    assert_eq!(a.claim("event#e1", TTL).await.expect("claim"), Claim::Done);

    // A claim left pending past its lease (its worker died): exactly one worker takes it over,
    // and holds it like a fresh claim.
    let stale = chrono::Utc::now().timestamp() - CLAIM_LEASE.as_secs() as i64 - 5;
    client
        .put_item()
        .table_name(&res.table)
        .item("pk", AttributeValue::S("event#e2".into()))
        .item("status", AttributeValue::S("pending".into()))
        .item("claimed_at", AttributeValue::N(stale.to_string()))
        .item(
            "expires_at",
            AttributeValue::N((chrono::Utc::now().timestamp() + 3600).to_string()),
        )
        .send()
        .await
        .expect("a stale claim");
    let (first, second) = tokio::join!(a.claim("event#e2", TTL), b.claim("event#e2", TTL));
    let mut outcomes = [first.expect("claim"), second.expect("claim")];
    outcomes.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        outcomes,
        [Claim::Abandoned, Claim::Busy],
        "one takes it over"
    );
    assert_eq!(a.claim("event#e2", TTL).await.expect("claim"), Claim::Busy);
}
