//! `POST /actions/<helpdesk>/tickets` without AWS: in-memory state and queue, the body a Brevo
//! automation's webhook step sends, the bearer token the step is given.

use chrono::{TimeZone, Utc};
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::Registry;
use deskbridge_shared::memory::{MemoryQueue, MemoryStateStore};
use deskbridge_shared::model::Source;
use deskbridge_shared::twoway::WriteBackJob;
use deskbridge_webhook::{Outcome, Rejection, Reply, Webhook, lambda_handler};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "deskbridge-test-actions-token";
const QUEUE: &str = "memory://upsert";

fn webhook_with(pairs: &[(&str, &str)]) -> Webhook<MemoryStateStore, MemoryQueue> {
    let settings = Settings::from_vars(&Vars::from_pairs(pairs.iter().copied())).expect("settings");
    Webhook {
        settings,
        helpdesks: Registry::built_in(),
        state: MemoryStateStore::new(),
        queue: MemoryQueue::new(),
        upsert_queue_url: QUEUE.into(),
    }
}

fn webhook() -> Webhook<MemoryStateStore, MemoryQueue> {
    webhook_with(&[("DESKBRIDGE_ACTIONS_TOKEN", TOKEN)])
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

fn automation_call(email: &str) -> Value {
    json!({"email": email, "contact_id": 42, "workflow_id": 117, "step_id": 3,
        "attributes": {"FIRSTNAME": "Jane", "LASTNAME": "Doe"},
        "subject": "Renewal call", "comment": "Please call Jane back."})
}

async fn post_at(
    w: &Webhook<MemoryStateStore, MemoryQueue>,
    helpdesk: &str,
    headers: &HeaderMap,
    body: &[u8],
    hour: u32,
) -> Reply {
    let now = Utc
        .with_ymd_and_hms(2026, 12, 7, hour, 0, 0)
        .single()
        .expect("a time");
    w.handle_action(helpdesk, headers, body, now, Some("req-1".into()))
        .await
}

async fn post(
    w: &Webhook<MemoryStateStore, MemoryQueue>,
    headers: &HeaderMap,
    body: &Value,
) -> Reply {
    post_at(w, "zendesk", headers, body.to_string().as_bytes(), 10).await
}

fn queued_jobs(w: &Webhook<MemoryStateStore, MemoryQueue>) -> Vec<WriteBackJob> {
    w.queue
        .messages(QUEUE)
        .iter()
        .map(|body| WriteBackJob::from_body(body).expect("a ticket job"))
        .collect()
}

#[tokio::test]
async fn a_ticket_request_is_queued_once_per_contact_automation_and_day() {
    let w = webhook();
    let body = automation_call("Jane.Doe@Example.com");
    let first = post(&w, &bearer(TOKEN), &body).await;
    assert_eq!(
        (first.status, first.body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued")),
        "{}",
        first.body
    );
    assert_eq!(first.outcome, Outcome::Accepted);
    // Later the same day, the automation calls again: acknowledged, not queued twice.
    let again = post_at(
        &w,
        "zendesk",
        &bearer(TOKEN),
        body.to_string().as_bytes(),
        18,
    )
    .await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(again.outcome, Outcome::Deduplicated);
    assert_eq!(again.body["external_id"], first.body["external_id"]);

    let jobs = queued_jobs(&w);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert!(job.write_backs.is_empty());
    assert_eq!(job.correlation_id.as_deref(), Some("req-1"));
    let [ticket] = job.tickets.as_slice() else {
        panic!("one ticket: {job:?}")
    };
    assert_eq!(ticket.helpdesk, Source::Zendesk);
    assert_eq!(ticket.email, "jane.doe@example.com");
    assert_eq!(ticket.name, "Jane Doe");
    assert_eq!(ticket.subject, "Renewal call");
    assert_eq!(ticket.comment, "Please call Jane back.");
    assert_eq!(ticket.tags, vec!["brevo_automation"]);
    assert_eq!(ticket.automation.as_deref(), Some("117"));
    assert_eq!(first.body["external_id"], ticket.external_id.as_str());
    assert_eq!(first.body["job"], job.id.as_str());

    // An explicit key is one ticket whatever the day; another key is another ticket.
    let mut keyed = body.clone();
    keyed["idempotency_key"] = json!("order-1001");
    let k1 = post(&w, &bearer(TOKEN), &keyed).await;
    assert_eq!(k1.status, StatusCode::ACCEPTED);
    let k2 = post_at(
        &w,
        "zendesk",
        &bearer(TOKEN),
        keyed.to_string().as_bytes(),
        23,
    )
    .await;
    assert_eq!(k2.body["status"], "duplicate");
    assert_eq!(queued_jobs(&w).len(), 2);
}

#[tokio::test]
async fn wrong_or_missing_tokens_are_401_and_nothing_is_queued() {
    let w = webhook();
    let body = automation_call("jane.doe@example.com");
    for headers in [bearer("guessed"), HeaderMap::new(), {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic ZGVza2JyaWRnZQ=="),
        );
        h
    }] {
        let r = post(&w, &headers, &body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(r.outcome, Outcome::Rejected(Rejection::Auth));
    }
    assert_eq!(w.queue.len(), 0);
}

#[tokio::test]
async fn unset_token_unknown_helpdesks_and_switched_off_tickets_are_404() {
    let body = automation_call("jane.doe@example.com");
    let off = webhook_with(&[("BREVO_WEBHOOK_TOKEN", "brevo-token")]);
    let r = post(&off, &bearer(TOKEN), &body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::UnknownSource));
    assert!(
        r.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("DESKBRIDGE_ACTIONS_TOKEN")),
        "{}",
        r.body
    );
    // The Brevo webhook token is not the actions token.
    let r = post(&off, &bearer("brevo-token"), &body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Intercom's tickets are off until the configuration names their ticket type.
    let w = webhook();
    for helpdesk in ["intercom", "freshdesk"] {
        let r = post_at(
            &w,
            helpdesk,
            &bearer(TOKEN),
            body.to_string().as_bytes(),
            10,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{helpdesk}");
    }
    assert!(
        post_at(
            &w,
            "intercom",
            &bearer(TOKEN),
            body.to_string().as_bytes(),
            10
        )
        .await
        .body["error"]
            .as_str()
            .is_some_and(|e| e.contains("ticket_type_id")),
    );
    let mut w = webhook();
    w.settings =
        configured("actions:\n  zendesk:\n    enabled: false\n  gorgias:\n    enabled: false\n");
    for helpdesk in ["zendesk", "gorgias"] {
        let r = post_at(
            &w,
            helpdesk,
            &bearer(TOKEN),
            body.to_string().as_bytes(),
            10,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{helpdesk}");
    }
    assert_eq!(w.queue.len(), 0);
}

/// Settings with the actions token and the configuration file `text`.
fn configured(text: &str) -> Settings {
    Settings::from_vars(
        &Vars::from_pairs([
            ("DESKBRIDGE_ACTIONS_TOKEN", TOKEN),
            ("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"),
        ])
        .with_config_text(text),
    )
    .expect("settings")
}

#[tokio::test]
async fn intercom_and_gorgias_tickets_are_queued_once_each_per_contact_automation_and_day() {
    let mut w = webhook();
    w.settings = configured(
        "actions:\n  intercom:\n    ticket_type_id: \"1234\"\n  gorgias:\n    \
         tags: [brevo_automation, renewal]\n",
    );
    let body = automation_call("jane.doe@example.com").to_string();
    let mut keys = Vec::new();
    for helpdesk in ["intercom", "gorgias", "zendesk"] {
        let first = post_at(&w, helpdesk, &bearer(TOKEN), body.as_bytes(), 9).await;
        assert_eq!(
            (first.status, first.body["status"].as_str()),
            (StatusCode::ACCEPTED, Some("queued")),
            "{helpdesk}: {}",
            first.body
        );
        let again = post_at(&w, helpdesk, &bearer(TOKEN), body.as_bytes(), 17).await;
        assert_eq!(
            (again.status, again.body["status"].as_str()),
            (StatusCode::OK, Some("duplicate")),
            "{helpdesk}"
        );
        assert_eq!(again.body["external_id"], first.body["external_id"]);
        keys.push(first.body["external_id"].clone());
    }
    // One ticket per helpdesk: the same call to another helpdesk is another ticket.
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    let jobs = queued_jobs(&w);
    let helpdesks: Vec<Source> = jobs.iter().map(|j| j.tickets[0].helpdesk.clone()).collect();
    assert_eq!(
        helpdesks,
        vec![Source::Intercom, Source::Gorgias, Source::Zendesk]
    );
    let gorgias = &jobs[1].tickets[0];
    assert_eq!(gorgias.subject, "Renewal call");
    assert_eq!(gorgias.comment, "Please call Jane back.");
    assert_eq!(gorgias.tags, vec!["brevo_automation", "renewal"]);
    assert!(
        jobs[0].tickets[0].tags.is_empty(),
        "Intercom tickets take no tags"
    );
}

#[tokio::test]
async fn the_intercom_sample_is_queued_through_the_lambda_adapter() {
    let text = include_str!("../../../events/brevo-automation-ticket-intercom.json");
    let request = lambda_http::request::from_str(text).expect("an API Gateway v2 request");
    let mut w = webhook();
    w.settings = configured("actions:\n  intercom:\n    ticket_type_id: \"1234\"\n");
    let response = lambda_handler(&w, request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let jobs = queued_jobs(&w);
    assert_eq!(jobs.len(), 1);
    let ticket = &jobs[0].tickets[0];
    assert_eq!(ticket.helpdesk, Source::Intercom);
    assert_eq!(ticket.email, "jane.doe@example.com");
}

#[tokio::test]
async fn malformed_bodies_are_400_oversized_413_and_outages_503() {
    let w = webhook();
    let auth = bearer(TOKEN);
    for bad in [
        b"{not json".to_vec(),
        b"[1,2]".to_vec(),
        json!({"subject": "no email"}).to_string().into_bytes(),
        json!({"email": "not an email"}).to_string().into_bytes(),
        json!({"email": "a@example.com", "idempotency_key": {"x": 1}})
            .to_string()
            .into_bytes(),
    ] {
        let r = post_at(&w, "zendesk", &auth, &bad, 10).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.outcome, Outcome::Rejected(Rejection::Parse));
    }
    let huge = vec![b' '; deskbridge_webhook::MAX_BODY_BYTES + 1];
    let r = post_at(&w, "zendesk", &auth, &huge, 10).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(w.queue.len(), 0);

    let body = automation_call("jane.doe@example.com");
    w.state.set_failing(true);
    assert_eq!(
        post(&w, &auth, &body).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    w.state.set_failing(false);
    w.queue.set_failing(true);
    assert_eq!(
        post(&w, &auth, &body).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    w.queue.set_failing(false);
    // The automation's retry goes through: the failed attempt left no claim behind.
    assert_eq!(post(&w, &auth, &body).await.status, StatusCode::ACCEPTED);
    assert_eq!(w.queue.len(), 1);
}

#[tokio::test]
async fn the_api_gateway_sample_is_queued_through_the_lambda_adapter() {
    let text = include_str!("../../../events/brevo-automation-ticket.json");
    let request = lambda_http::request::from_str(text).expect("an API Gateway v2 request");
    let w = webhook();
    let response = lambda_handler(&w, request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let jobs = queued_jobs(&w);
    assert_eq!(jobs.len(), 1);
    let ticket = &jobs[0].tickets[0];
    assert_eq!(ticket.email, "jane.doe@example.com");
    assert_eq!(ticket.subject, "Renewal call for Jane");
}
