//! The SQS sample in events/ is a batch the upsert function reads as a job.

use deskbridge_shared::model::{EventKind, Job, Origin};
use deskbridge_upsert::messages_from_sqs;

#[test]
fn the_sample_sqs_batch_holds_a_job() {
    let text = include_str!("../../../events/sqs-upsert-batch.json");
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(text).expect("an SQS event");
    let messages = messages_from_sqs(&event);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].receive_count, 1);
    let job: Job = serde_json::from_str(&messages[0].body).expect("a job");
    assert_eq!(job.origin, Origin::Webhook);
    assert_eq!(job.records[0].events[0].kind, EventKind::SurveyResponded);
}
