//! The `deletions` policy in the upsert handler, against a Brevo that keeps contacts: a person
//! the helpdesk deleted is unlinked (the default), deleted, or left alone, and their later
//! records are not written until the helpdesk brings them back.

use std::sync::Arc;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use deskbridge_shared::brevo::BrevoClient;
use deskbridge_shared::deletions::Deletions;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryStateStore, NoLookup};
use deskbridge_shared::model::{Job, Origin, Person, Presence, Record, Source};
use deskbridge_shared::people::{PersonIndex, person_key};
use deskbridge_shared::state::StateStore;
use deskbridge_shared::testkit::brevo::{BrevoModel, Contact, fast_client};
use deskbridge_upsert::{Message, Stats, Upserter};
use serde_json::{Value, json};

const ANN: &str = "ann@example.com";
/// The Zendesk all-contacts list of these tests.
const ZENDESK_LIST: i64 = 12;

type Upsert = Upserter<BrevoClient, Arc<MemoryStateStore>, NoLookup>;

fn mapping(policy: Deletions) -> Mapping {
    let mut mapping = Mapping {
        deletions: policy,
        ..Mapping::default()
    };
    if let Some(zendesk) = mapping.sources.get_mut("zendesk") {
        zendesk.lists.all_contacts = Some(ZENDESK_LIST);
    }
    mapping
}

async fn start(
    policy: Deletions,
) -> (
    BrevoModel,
    wiremock::MockServer,
    Upsert,
    Arc<MemoryStateStore>,
) {
    start_with(mapping(policy)).await
}

async fn start_with(
    mapping: Mapping,
) -> (
    BrevoModel,
    wiremock::MockServer,
    Upsert,
    Arc<MemoryStateStore>,
) {
    let (model, server) = BrevoModel::start().await;
    let state = Arc::new(MemoryStateStore::new());
    let upserter = Upserter::new(fast_client(&server), state.clone(), NoLookup, mapping);
    (model, server, upserter, state)
}

/// A time of the helpdesk's, `minutes` after the first record of these tests.
fn at(minutes: i64) -> DateTime<Utc> {
    let start: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("a time");
    start + TimeDelta::minutes(minutes)
}

fn person(source_id: &str, email: Option<&str>) -> Person {
    Person {
        source_id: Some(source_id.into()),
        email: email.map(str::to_string),
        name: Some("Ann Lee".into()),
        ..Person::default()
    }
}

/// A helpdesk user or contact record, as a webhook brings it.
fn user(source_id: &str, minutes: i64) -> Record {
    Record {
        person: person(source_id, Some(ANN)),
        observed_at: at(minutes),
        profile: Some(json!({"id": source_id, "email": ANN, "name": "Ann Lee"}).into()),
        ..Record::default()
    }
}

fn deletion(source_id: &str, minutes: i64) -> Record {
    Record::deletion(person(source_id, Some(ANN)), at(minutes))
}

fn message(id: &str, source: Source, origin: Origin, records: Vec<Record>) -> Message {
    let job = Job {
        id: format!("{source}:{id}"),
        source,
        origin,
        received_at: Utc::now(),
        correlation_id: None,
        records,
    };
    Message {
        message_id: format!("m-{id}"),
        body: serde_json::to_string(&job).expect("a job"),
        receive_count: 1,
        retry: None,
    }
}

async fn deliver(upserter: &Upsert, id: &str, source: Source, records: Vec<Record>) -> Stats {
    let report = upserter
        .handle(&[message(id, source, Origin::Webhook, records)])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.stats.finals.is_empty(), "{report:?}");
    report.stats
}

fn attribute(contact: &Contact, name: &str) -> Option<Value> {
    contact.attributes.get(name).cloned()
}

async fn index(state: &MemoryStateStore, source: &Source, id: &str) -> PersonIndex {
    let doc = state
        .load_doc(&person_key(source, id))
        .await
        .expect("readable")
        .expect("an index");
    serde_json::from_str(&doc.text).expect("an index")
}

#[tokio::test]
async fn unlink_empties_the_helpdesk_id_and_list_until_the_person_comes_back() {
    let (model, _server, upserter, state) = start(Deletions::Unlink).await;
    deliver(&upserter, "u1", Source::Zendesk, vec![user("42", 0)]).await;
    let ann = model.by_email(ANN).expect("written");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("42")));
    assert!(ann.lists.contains(&ZENDESK_LIST), "{ann:?}");

    let stats = deliver(&upserter, "d1", Source::Zendesk, vec![deletion("42", 5)]).await;
    assert_eq!((stats.contacts_unlinked, stats.contacts_deleted), (1, 0));
    let ann = model.by_email(ANN).expect("kept");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("")));
    assert!(!ann.lists.contains(&ZENDESK_LIST), "{ann:?}");
    assert_eq!(attribute(&ann, "FIRSTNAME"), Some(json!("Ann")));
    // The state table keeps the deletion, not the address.
    let known = index(&state, &Source::Zendesk, "42").await;
    assert_eq!((known.email, known.ext_id), (None, None));
    assert_eq!(known.deleted_at, Some(at(5)));

    // A record of the deleted person, older or newer, is not written.
    let stats = deliver(
        &upserter,
        "u2",
        Source::Zendesk,
        vec![user("42", 3), user("42", 9)],
    )
    .await;
    assert_eq!((stats.deleted_people_skipped, stats.contacts), (2, 0));
    let ann = model.by_email(ANN).expect("kept");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("")));

    // Reactivated in the helpdesk after the deletion: written again.
    let mut back = user("42", 20);
    back.presence = Some(Presence::Restored);
    let stats = deliver(&upserter, "u3", Source::Zendesk, vec![back]).await;
    assert_eq!((stats.people_restored, stats.contacts), (1, 1));
    let ann = model.by_email(ANN).expect("kept");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("42")));
    assert_eq!(index(&state, &Source::Zendesk, "42").await.deleted_at, None);
}

#[tokio::test]
async fn delete_removes_a_contact_deskbridge_created_that_no_other_helpdesk_knows() {
    let (model, _server, upserter, _state) = start(Deletions::Delete).await;
    deliver(&upserter, "u1", Source::Zendesk, vec![user("42", 0)]).await;
    assert!(model.by_email(ANN).is_some());

    let stats = deliver(&upserter, "d1", Source::Zendesk, vec![deletion("42", 5)]).await;
    assert_eq!(stats.contacts_deleted, 1);
    assert!(model.contacts().is_empty(), "{:?}", model.contacts());

    // The same deletion again (a second delivery under another id): nothing left to do.
    let stats = deliver(&upserter, "d2", Source::Zendesk, vec![deletion("42", 5)]).await;
    assert_eq!(
        (stats.contacts_deleted, stats.deletions_without_contact),
        (0, 1)
    );
    assert!(model.contacts().is_empty());
}

#[tokio::test]
async fn delete_unlinks_a_contact_that_existed_before_deskbridge() {
    let (model, _server, upserter, _state) = start(Deletions::Delete).await;
    model.insert(Contact {
        email: Some(ANN.into()),
        created_at: Some(Utc::now() - TimeDelta::days(400)),
        attributes: serde_json::Map::from_iter([("NEWSLETTER".to_string(), json!(true))]),
        ..Contact::default()
    });
    deliver(&upserter, "u1", Source::Zendesk, vec![user("42", 0)]).await;
    let stats = deliver(&upserter, "d1", Source::Zendesk, vec![deletion("42", 5)]).await;
    assert_eq!((stats.contacts_deleted, stats.contacts_unlinked), (0, 1));
    let ann = model.by_email(ANN).expect("kept");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("")));
    assert_eq!(attribute(&ann, "NEWSLETTER"), Some(json!(true)));
}

#[tokio::test]
async fn delete_unlinks_a_contact_another_helpdesk_still_knows() {
    let (model, _server, upserter, _state) = start(Deletions::Delete).await;
    deliver(&upserter, "u1", Source::Zendesk, vec![user("42", 0)]).await;
    deliver(&upserter, "i1", Source::Intercom, vec![user("ic-7", 1)]).await;
    let stats = deliver(&upserter, "d1", Source::Zendesk, vec![deletion("42", 5)]).await;
    assert_eq!((stats.contacts_deleted, stats.contacts_unlinked), (0, 1));
    let ann = model.by_email(ANN).expect("kept");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("")));
    assert_eq!(attribute(&ann, "INTERCOM_ID"), Some(json!("ic-7")));

    // Intercom deletes the person too: now nobody knows them, and deskbridge made the contact.
    let stats = deliver(&upserter, "d2", Source::Intercom, vec![deletion("ic-7", 6)]).await;
    assert_eq!(stats.contacts_deleted, 1);
    assert!(model.contacts().is_empty(), "{:?}", model.contacts());
}

#[tokio::test]
async fn ignore_leaves_the_contact_and_later_records_as_they_are() {
    let (model, _server, upserter, _state) = start(Deletions::Ignore).await;
    deliver(&upserter, "u1", Source::Zendesk, vec![user("42", 0)]).await;
    let stats = deliver(&upserter, "d1", Source::Zendesk, vec![deletion("42", 5)]).await;
    assert_eq!(stats.deletions_ignored, 1);
    let ann = model.by_email(ANN).expect("kept");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("42")));
    assert!(ann.lists.contains(&ZENDESK_LIST));
    let stats = deliver(&upserter, "u2", Source::Zendesk, vec![user("42", 9)]).await;
    assert_eq!((stats.contacts, stats.deleted_people_skipped), (1, 0));
}

#[tokio::test]
async fn a_deletion_in_a_sync_page_keeps_the_persons_records_of_that_batch_out() {
    // No all-contacts list: the page's contacts take single upserts.
    let (model, _server, upserter, _state) = start_with(Mapping::default()).await;
    let page = message(
        "p1",
        Source::Zendesk,
        Origin::Sync,
        vec![user("42", 0), deletion("42", 5), user("77", 0)],
    );
    let report = upserter.handle(&[page]).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stats.deleted_people_skipped, 1, "{:?}", report.stats);
    assert_eq!(report.stats.deletions_without_contact, 1);
    // Only the other person (same email in this test, another helpdesk id) is written.
    let ann = model.by_email(ANN).expect("the other person");
    assert_eq!(attribute(&ann, "ZENDESK_ID"), Some(json!("77")));
}
