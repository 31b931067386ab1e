//! Helpdesk deletions end to end through the local runner: a Zendesk user made inactive (its
//! soft deletion) arrives as a signed event webhook, and the person's Brevo contact ends as the
//! `deletions` policy of the configuration file says. DynamoDB and SQS in moto, Brevo a fake
//! that keeps contacts.

mod common;

use std::time::Duration;

use common::runner::Runner;
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::testkit::brevo::{BrevoModel, Contact};
use serde_json::{Value, json};

const USER_CREATED: &str = include_str!("../shared/tests/fixtures/zendesk/event-user-created.json");
/// The user made inactive: Zendesk's soft deletion.
const USER_DEACTIVATED: &str =
    include_str!("../shared/tests/fixtures/zendesk/event-user-active-changed.json");
const JANE: &str = "jane.doe@example.com";
const USER_ID: &str = "6596848315901";

fn signed(body: &str, invocation: &str) -> Vec<(&'static str, String)> {
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    vec![
        (
            "x-zendesk-webhook-signature",
            signature::sign_zendesk(common::ZENDESK_SECRET, &ts, body.as_bytes()),
        ),
        ("x-zendesk-webhook-signature-timestamp", ts),
        ("x-zendesk-webhook-invocation-id", invocation.to_string()),
    ]
}

fn zendesk_id(contact: &Contact) -> Option<Value> {
    contact.attributes.get("ZENDESK_ID").cloned()
}

/// Runs one user's creation and deactivation under `policy` (none: the default) and returns
/// Brevo's contacts once the upsert queue is drained.
async fn deactivate_under(policy: Option<&str>) -> Vec<Contact> {
    let name = policy.unwrap_or("default");
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, &format!("deletions-{name}")).await;
    let (model, brevo) = BrevoModel::start().await;
    let file = std::env::temp_dir().join(format!(
        "deskbridge-deletions-{name}-{}.yaml",
        std::process::id()
    ));
    let config = policy.map_or(String::new(), |p| format!("deletions: {p}\n"));
    std::fs::write(&file, config).expect("config written");
    let settings = common::settings(
        &res,
        Some(&brevo.uri()),
        &[
            ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
            // The fake Brevo keeps contacts, not lists.
            ("BREVO_DEFAULT_LISTS", "false"),
        ],
    );
    let runner = Runner::start(&sdk, settings).await;

    let (status, answer) = runner
        .post(
            "/webhooks/zendesk",
            &signed(USER_CREATED, "inv-1"),
            USER_CREATED,
        )
        .await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("queued")),
        "{answer}"
    );
    common::eventually(Duration::from_secs(30), || async {
        model
            .by_email(JANE)
            .filter(|c| zendesk_id(c) == Some(json!(USER_ID)))
    })
    .await
    .expect("the user reached Brevo");

    let (status, answer) = runner
        .post(
            "/webhooks/zendesk",
            &signed(USER_DEACTIVATED, "inv-2"),
            USER_DEACTIVATED,
        )
        .await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("queued")),
        "{answer}"
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let drained = common::eventually(Duration::from_secs(30), || async {
        let depth = deskbridge::commands::demo::queue_depth(&sqs, &res.upsert_queue_url)
            .await
            .expect("queue attributes");
        (depth == 0).then_some(())
    })
    .await;
    runner.stop().await;
    std::fs::remove_file(&file).ok();
    assert!(
        drained.is_some(),
        "{name}: the upsert queue was not drained"
    );
    model.contacts()
}

#[tokio::test]
async fn by_default_a_deactivated_zendesk_user_is_unlinked_from_their_contact() {
    let contacts = deactivate_under(None).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].email.as_deref(), Some(JANE));
    assert_eq!(zendesk_id(&contacts[0]), Some(json!("")));
}

#[tokio::test]
async fn under_delete_the_contact_deskbridge_made_for_the_user_is_deleted() {
    let contacts = deactivate_under(Some("delete")).await;
    assert!(contacts.is_empty(), "{contacts:?}");
}

#[tokio::test]
async fn under_ignore_the_contact_keeps_the_zendesk_id() {
    let contacts = deactivate_under(Some("ignore")).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(zendesk_id(&contacts[0]), Some(json!(USER_ID)));
}
