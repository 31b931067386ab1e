//! A new user's configuration (no all-contacts list): each helpdesk gets the default list
//! "deskbridge — <source>", found or created once and remembered in the state store, so a
//! backfill imports (about 500 contacts a call) instead of writing each contact alone, and
//! webhook contacts join the same list. Against a wiremock Brevo with the documented list and
//! folder shapes and the in-memory state store.

use std::sync::Arc;

use chrono::Utc;
use deskbridge_shared::brevo::default_list;
use deskbridge_shared::mapping::Mapping;
use deskbridge_shared::memory::{MemoryStateStore, NoLookup};
use deskbridge_shared::model::{Job, Origin, Person, Record, Source};
use deskbridge_shared::state::StateStore;
use deskbridge_shared::testkit::brevo::{
    fast_client, mount_accepting, mount_attribute_creation, mount_lists, requests_to,
};
use deskbridge_upsert::{Message, Upserter};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const NAME: &str = "deskbridge — zendesk";

async fn brevo(lists: &[(i64, &str)], created: i64) -> MockServer {
    let server = MockServer::start().await;
    mount_brevo(&server, lists, created).await;
    server
}

async fn mount_brevo(server: &MockServer, lists: &[(i64, &str)], created: i64) {
    mount_accepting(server, &[]).await;
    mount_lists(server, lists, created).await;
    mount_attribute_creation(server).await;
}

fn deployed(
    server: &MockServer,
    state: Arc<MemoryStateStore>,
) -> Upserter<deskbridge_shared::brevo::BrevoClient, Arc<MemoryStateStore>, NoLookup> {
    // The defaults of a deployment: the seed mapping and BREVO_DEFAULT_LISTS unset (true).
    let settings = deskbridge_shared::config::Settings::from_vars(
        &deskbridge_shared::config::Vars::from_pairs([("BREVO_API_KEY", "xkeysib-test")]),
    )
    .expect("settings");
    Upserter::new(fast_client(server), state, NoLookup, Mapping::default())
        .with_default_lists(settings.brevo.uses_default_lists())
}

fn customer(n: usize) -> Record {
    Record {
        person: Person {
            source_id: Some(n.to_string()),
            email: Some(format!("customer{n}@example.com")),
            ..Default::default()
        },
        observed_at: Utc::now(),
        ..Default::default()
    }
}

fn message(id: &str, origin: Origin, records: Vec<Record>) -> Message {
    let job = Job {
        id: id.into(),
        source: Source::Zendesk,
        origin,
        received_at: Utc::now(),
        correlation_id: None,
        records,
    };
    Message {
        message_id: id.into(),
        body: serde_json::to_string(&job).expect("job serialises"),
        receive_count: 1,
        retry: None,
    }
}

/// A Lambda batch of ten sync pages of fifty customers, numbered from `first`.
fn backfill_batch(tag: &str, first: usize) -> Vec<Message> {
    (0..10)
        .map(|m| {
            let records = (0..50).map(|r| customer(first + m * 50 + r)).collect();
            message(&format!("{tag}-{m}"), Origin::Sync, records)
        })
        .collect()
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn calls(all: &[Request], verb: &str, route: &str) -> usize {
    all.iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == route)
        .count()
}

#[tokio::test]
async fn a_new_users_backfill_imports_into_the_default_list_created_once() {
    let server = brevo(&[], 91).await;
    let state = Arc::new(MemoryStateStore::new());
    let upserter = deployed(&server, state.clone());

    // 1,000 contacts: two Lambda batches.
    let first = upserter.handle(&backfill_batch("a", 0)).await;
    let second = upserter.handle(&backfill_batch("b", 500)).await;
    assert!(first.failed.is_empty() && second.failed.is_empty());

    let all = received(&server).await;
    // The folder and the list are made once, then remembered.
    assert_eq!(calls(&all, "GET", "/v3/contacts/lists"), 1);
    assert_eq!(calls(&all, "POST", "/v3/contacts/folders"), 1);
    let posted: Vec<Request> = all
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .cloned()
        .collect();
    let created = requests_to(&posted, "/v3/contacts/lists");
    assert_eq!(created, vec![json!({"name": NAME, "folderId": 1})]);
    // Every contact went through two imports into that list: 2 contact writes per 1,000.
    let imports = requests_to(&all, "/v3/contacts/import");
    assert_eq!(imports.len(), 2);
    for import in &imports {
        assert_eq!(import["listIds"], json!([91]));
        assert_eq!(import["jsonBody"].as_array().map(Vec::len), Some(500));
    }
    assert_eq!(calls(&all, "POST", "/v3/contacts"), 0);
    assert_eq!(
        first.stats.contacts_imported + second.stats.contacts_imported,
        1000
    );
    assert_eq!(
        default_list::stored(state.as_ref(), &Source::Zendesk)
            .await
            .expect("read"),
        Some(91)
    );

    // Another container (a cold start) reads the stored id: no list call to Brevo.
    server.reset().await;
    mount_brevo(&server, &[(91, NAME)], 92).await;
    let other = deployed(&server, state.clone());
    let third = other.handle(&backfill_batch("c", 1000)).await;
    assert!(third.failed.is_empty());
    let all = received(&server).await;
    assert_eq!(calls(&all, "GET", "/v3/contacts/lists"), 0);
    assert_eq!(calls(&all, "POST", "/v3/contacts/lists"), 0);
    assert_eq!(
        requests_to(&all, "/v3/contacts/import")[0]["listIds"],
        json!([91])
    );
}

#[tokio::test]
async fn a_list_of_that_name_already_in_the_account_is_used() {
    let server = brevo(&[(4, "Newsletter"), (12, NAME)], 99).await;
    let upserter = deployed(&server, Arc::new(MemoryStateStore::new()));

    let report = upserter.handle(&backfill_batch("a", 0)).await;

    assert!(report.failed.is_empty());
    let all = received(&server).await;
    assert_eq!(calls(&all, "POST", "/v3/contacts/lists"), 0);
    assert_eq!(calls(&all, "POST", "/v3/contacts/folders"), 0);
    assert_eq!(
        requests_to(&all, "/v3/contacts/import")[0]["listIds"],
        json!([12])
    );
}

#[tokio::test]
async fn a_webhook_contact_joins_the_default_list_too() {
    let server = brevo(&[(12, NAME)], 99).await;
    let upserter = deployed(&server, Arc::new(MemoryStateStore::new()));

    let report = upserter
        .handle(&[message("w-1", Origin::Webhook, vec![customer(7)])])
        .await;

    assert!(report.failed.is_empty());
    let upserts = requests_to(&received(&server).await, "/v3/contacts");
    assert_eq!(upserts.len(), 1);
    assert_eq!(upserts[0]["email"], "customer7@example.com");
    assert_eq!(upserts[0]["listIds"], json!([12]));
}

#[tokio::test]
async fn a_configured_all_contacts_list_wins_and_no_list_is_made() {
    let server = brevo(&[], 91).await;
    let mut mapping = Mapping::default();
    if let Some(zendesk) = mapping.sources.get_mut("zendesk") {
        zendesk.lists.all_contacts = Some(35);
    }
    let upserter = Upserter::new(
        fast_client(&server),
        MemoryStateStore::new(),
        NoLookup,
        mapping,
    )
    .with_default_lists(true);

    let report = upserter.handle(&backfill_batch("a", 0)).await;

    assert!(report.failed.is_empty());
    let all = received(&server).await;
    assert_eq!(calls(&all, "GET", "/v3/contacts/lists"), 0);
    assert_eq!(
        requests_to(&all, "/v3/contacts/import")[0]["listIds"],
        json!([35])
    );
}

/// Answers the list creation after another worker stored its own list: the race of two cold
/// containers creating the default list at the same moment.
struct CreatedWhileAnotherStored(Arc<MemoryStateStore>);

impl Respond for CreatedWhileAnotherStored {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let text = json!({"id": 55, "name": NAME}).to_string();
        let key = default_list::state_key(&Source::Zendesk);
        let stored = futures::executor::block_on(self.0.save_doc(&key, None, &text, None));
        assert_eq!(stored.ok(), Some(true));
        ResponseTemplate::new(201).set_body_json(json!({"id": 91}))
    }
}

#[tokio::test]
async fn two_containers_creating_the_list_at_once_end_with_one() {
    let server = MockServer::start().await;
    let state = Arc::new(MemoryStateStore::new());
    // Mounted first, so it answers the creation before the routes mounted below.
    Mock::given(method("POST"))
        .and(path("/v3/contacts/lists"))
        .respond_with(CreatedWhileAnotherStored(state.clone()))
        .mount(&server)
        .await;
    mount_brevo(&server, &[], 91).await;
    let upserter = deployed(&server, state.clone());

    let report = upserter.handle(&backfill_batch("a", 0)).await;

    assert!(report.failed.is_empty());
    let all = received(&server).await;
    // The other worker's list is used, and the one made here (still empty) is deleted.
    assert_eq!(
        requests_to(&all, "/v3/contacts/import")[0]["listIds"],
        json!([55])
    );
    let deleted: Vec<String> = all
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(deleted, vec!["/v3/contacts/lists/91".to_string()]);
}

#[tokio::test]
async fn with_default_lists_off_a_backfill_writes_contacts_one_by_one() {
    let server = brevo(&[], 91).await;
    let settings = deskbridge_shared::config::Settings::from_vars(
        &deskbridge_shared::config::Vars::from_pairs([("BREVO_DEFAULT_LISTS", "false")]),
    )
    .expect("settings");
    assert!(!settings.brevo.default_lists);
    let upserter = Upserter::new(
        fast_client(&server),
        MemoryStateStore::new(),
        NoLookup,
        Mapping::default(),
    )
    .with_default_lists(settings.brevo.uses_default_lists());

    let report = upserter
        .handle(&[message("a", Origin::Sync, (0..3).map(customer).collect())])
        .await;

    assert!(report.failed.is_empty());
    let all = received(&server).await;
    assert_eq!(calls(&all, "GET", "/v3/contacts/lists"), 0);
    assert_eq!(calls(&all, "POST", "/v3/contacts/import"), 0);
    let upserts = requests_to(&all, "/v3/contacts");
    assert_eq!(upserts.len(), 3);
    assert!(
        upserts.iter().all(|u| u.get("listIds").is_none()),
        "{upserts:?}"
    );
}
