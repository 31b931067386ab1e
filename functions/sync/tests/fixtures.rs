//! The sync samples in events/ are what the sync function reads.

use deskbridge_sync::SyncMessage;

#[test]
fn the_sample_sync_batch_holds_a_start_request() {
    let text = include_str!("../../../events/sqs-sync-start.json");
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(text).expect("an SQS event");
    let body = event.records[0].body.as_deref().expect("a body");
    let msg: SyncMessage = serde_json::from_str(body).expect("a sync message");
    assert!(matches!(msg, SyncMessage::Start { full: false, .. }));
}

#[test]
fn the_sample_schedule_is_not_an_sqs_batch() {
    let text = include_str!("../../../events/schedule.json");
    let value: serde_json::Value = serde_json::from_str(text).expect("json");
    // main.rs tells the two event kinds apart by the SQS `Records` array.
    assert!(value.get("Records").is_none());
    assert_eq!(value["detail-type"], "Scheduled Event");
}
