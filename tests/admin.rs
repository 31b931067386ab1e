//! The operator commands `replay` (against moto), `plan` and `check` (against wiremock Brevo and
//! Intercom), called through their core functions with an in-memory output.

mod common;

use aws_sdk_sqs::types::QueueAttributeName;
use common::stack::{create_stack, deskbridge_cli};
use deskbridge::commands::check::{CheckTarget, check};
use deskbridge::commands::plan::{self, plan};
use deskbridge::commands::replay::{
    ReplayOptions, ReplayQueue, ReplayTarget, replay, replay_targets,
};
use deskbridge::commands::{self};
use deskbridge_shared::brevo::{BrevoClient, DryRunBrevo, DryRunOutput, RetryPolicy};
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::mapping::{FieldRule, Transform};
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Queue, SqsQueue};
use deskbridge_shared::testkit::brevo::{
    mount_account, mount_attribute_creation, mount_attributes, mount_lists,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// replay

async fn visible_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> u32 {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes");
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .expect("a message count")
}

/// Every body in `url`, consumed.
async fn drain(queue: &SqsQueue, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let batch = queue.receive(url, 10, 0).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        for m in batch {
            queue.delete(url, &m.receipt_handle).await.expect("delete");
            bodies.push(m.body);
        }
    }
    bodies.sort();
    bodies
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("utf-8 output")
}

#[tokio::test]
async fn replay_moves_dead_letters_back_and_a_dry_run_moves_nothing() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "replay").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = SqsQueue::new(sqs.clone());
    let mut upsert: Vec<String> = (0..12).map(|i| format!(r#"{{"job":{i}}}"#)).collect();
    let sync = vec![r#"{"start":{"source":"zendesk"}}"#.to_string()];
    queue
        .send_batch(&res.upsert_dlq_url, &upsert)
        .await
        .expect("seed upsert DLQ");
    // One put there by the upsert function, with its reason.
    let refused = r#"{"job":12}"#.to_string();
    queue
        .send_dead_letter(
            &res.upsert_dlq_url,
            &refused,
            "Brevo refused sending SUPPORT_TICKET_OPENED: invalid_parameter",
        )
        .await
        .expect("seed a dead letter with its reason");
    upsert.push(refused);
    queue
        .send_batch(&res.sync_dlq_url, &sync)
        .await
        .expect("seed sync DLQ");
    let targets = vec![
        ReplayTarget {
            name: "upsert",
            dlq_url: res.upsert_dlq_url.clone(),
            queue_url: res.upsert_queue_url.clone(),
            backfill_url: None,
        },
        ReplayTarget {
            name: "sync",
            dlq_url: res.sync_dlq_url.clone(),
            queue_url: res.sync_queue_url.clone(),
            backfill_url: None,
        },
    ];

    // Dry run: counted (each once, across two receive batches), nothing consumed or moved.
    let mut out = Vec::new();
    let dry = ReplayOptions {
        dry_run: true,
        wait_seconds: 1,
    };
    let counts = replay(&queue, &targets, &dry, &mut out)
        .await
        .expect("dry run");
    let printed = text(out);
    assert_eq!(
        counts.iter().map(|c| c.messages).collect::<Vec<_>>(),
        [13, 1],
        "{printed}"
    );
    assert!(
        printed.contains("upsert: 13 messages would move"),
        "{printed}"
    );
    assert!(printed.contains("sync: 1 message would move"), "{printed}");
    assert!(printed.contains(r#"{"job":7}"#), "{printed}");
    assert!(
        printed.contains(
            "failed for good: Brevo refused sending SUPPORT_TICKET_OPENED: invalid_parameter"
        ),
        "{printed}"
    );
    assert_eq!(visible_messages(&sqs, &res.upsert_dlq_url).await, 13);
    assert_eq!(visible_messages(&sqs, &res.sync_dlq_url).await, 1);
    assert_eq!(visible_messages(&sqs, &res.upsert_queue_url).await, 0);

    // The real thing.
    let mut out = Vec::new();
    let options = ReplayOptions {
        dry_run: false,
        wait_seconds: 1,
    };
    let counts = replay(&queue, &targets, &options, &mut out)
        .await
        .expect("replay");
    let printed = text(out);
    assert_eq!(
        counts.iter().map(|c| c.messages).collect::<Vec<_>>(),
        [13, 1],
        "{printed}"
    );
    assert!(printed.contains("upsert: moved 13 messages"), "{printed}");
    assert!(printed.contains("sync: moved 1 message"), "{printed}");
    assert_eq!(visible_messages(&sqs, &res.upsert_dlq_url).await, 0);
    assert_eq!(visible_messages(&sqs, &res.sync_dlq_url).await, 0);
    let mut expected = upsert.clone();
    expected.sort();
    assert_eq!(drain(&queue, &res.upsert_queue_url).await, expected);
    assert_eq!(drain(&queue, &res.sync_queue_url).await, sync);

    // Nothing left: a second replay moves nothing.
    let mut out = Vec::new();
    let counts = replay(&queue, &targets, &options, &mut out)
        .await
        .expect("replay of empty DLQs");
    assert!(counts.iter().all(|c| c.messages == 0));
}

#[tokio::test]
async fn replay_finds_the_dlqs_from_the_environment_or_the_redrive_policy() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "replay-targets").await;
    let settings = common::settings(&res, None, &[]);
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    // From the variables `deskbridge bootstrap` prints.
    let env = |name: &str| match name {
        "UPSERT_DLQ_URL" => Some(res.upsert_dlq_url.clone()),
        "SYNC_DLQ_URL" => Some(res.sync_dlq_url.clone()),
        _ => None,
    };
    let targets = replay_targets(&settings, ReplayQueue::Both, env, None)
        .await
        .expect("targets");
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0].dlq_url, res.upsert_dlq_url);
    assert_eq!(targets[1].queue_url, res.sync_queue_url);

    // Unset: read from the work queue's redrive policy.
    let targets = replay_targets(&settings, ReplayQueue::Sync, |_| None, Some(&sqs))
        .await
        .expect("targets from the redrive policy");
    assert_eq!(
        targets,
        vec![ReplayTarget {
            name: "sync",
            dlq_url: res.sync_dlq_url.clone(),
            queue_url: res.sync_queue_url.clone(),
            backfill_url: None,
        }]
    );

    // Unset and no way to look: the variable is named.
    let err = replay_targets(&settings, ReplayQueue::Upsert, |_| None, None)
        .await
        .expect_err("no DLQ URL");
    assert!(err.to_string().contains("UPSERT_DLQ_URL"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// plan

/// Settings with only Intercom configured, Brevo at `brevo` (when given).
fn intercom_settings(brevo: Option<&str>, intercom: Option<&str>) -> Settings {
    let mut pairs = vec![
        ("INTERCOM_ACCESS_TOKEN".to_string(), "ic-token".to_string()),
        (
            "INTERCOM_CLIENT_SECRET".to_string(),
            "ic-secret".to_string(),
        ),
    ];
    if let Some(url) = brevo {
        pairs.push(("BREVO_API_KEY".into(), "xkeysib-test".into()));
        pairs.push(("BREVO_BASE_URL".into(), format!("{url}/v3")));
    }
    if let Some(url) = intercom {
        pairs.push(("INTERCOM_BASE_URL".into(), url.to_string()));
    }
    Settings::from_vars(&Vars::from_pairs(pairs)).expect("valid settings")
}

/// The default mapping plus a number attribute and two lists for Intercom.
fn plan_settings(brevo: &str) -> Settings {
    let settings = intercom_settings(Some(brevo), None);
    let mut mapping = settings.mapping.clone();
    let intercom = mapping.sources.entry("intercom".into()).or_default();
    intercom.field_mapping.push(FieldRule::new(
        "custom_attributes.score",
        "LIFETIME_SCORE",
        Transform::Number,
    ));
    intercom.lists.all_contacts = Some(35);
    intercom.tag_lists.insert("vip".into(), 40);
    settings.with_mapping(mapping)
}

fn client(settings: &Settings) -> BrevoClient {
    commands::brevo_client(settings)
        .expect("client builds")
        .expect("a key is set")
        .with_retry(RetryPolicy::none())
}

async fn brevo_account(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v3/contacts/attributes"))
        .and(header("api-key", "xkeysib-test"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"attributes": [
                {"name": "FIRSTNAME", "category": "normal", "type": "text"},
                {"name": "LASTNAME", "category": "normal", "type": "text"},
                {"name": "SMS", "category": "normal", "type": "text"},
                {"name": "INTERCOM_ID", "category": "normal", "type": "text"},
                {"name": "SIGNUP_DATE", "category": "normal", "type": "text"},
                {"name": "PLAN", "category": "category", "type": "category"},
            ]})),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/contacts/lists"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "lists": [{"id": 35, "name": "All support contacts", "totalSubscribers": 3}],
            "count": 1
        })))
        .mount(server)
        .await;
}

fn line<'a>(printed: &'a str, start: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with `{start}` in:\n{printed}"))
}

#[tokio::test]
async fn plan_reports_missing_and_mistyped_attributes_and_lists() {
    let server = MockServer::start().await;
    brevo_account(&server).await;
    let settings = plan_settings(&server.uri());
    let mut out = Vec::new();
    let summary = plan(&settings, &client(&settings), false, &mut out)
        .await
        .expect("plan");
    let printed = text(out);

    assert!(printed.contains("mapping of: intercom"), "{printed}");
    assert!(
        line(&printed, "attribute INTERCOM_ID").ends_with(": ok"),
        "{printed}"
    );
    assert!(
        line(&printed, "attribute FIRSTNAME").contains("ok"),
        "{printed}"
    );
    for missing in [
        "INTERCOM_ROLE",
        "LAST_ACTIVE",
        "UNSUBSCRIBED",
        "COMPANY_NAME",
        "COMPANY_PLAN",
        "COMPANY_SIZE",
        "LIFETIME_SCORE",
    ] {
        assert!(
            line(&printed, &format!("attribute {missing} "))
                .contains("missing (Brevo would silently drop it on import)"),
            "{printed}"
        );
    }
    assert!(
        line(&printed, "attribute SIGNUP_DATE")
            .contains("wrong type (Brevo has text, mapping writes date)"),
        "{printed}"
    );
    assert!(
        line(&printed, "attribute LIFETIME_SCORE").contains("(float;"),
        "{printed}"
    );
    assert!(
        line(&printed, "list 35").contains("ok \"All support contacts\""),
        "{printed}"
    );
    assert!(
        line(&printed, "list 40 (intercom tag vip)").contains("missing"),
        "{printed}"
    );
    // Zendesk and Gorgias have no credentials here: their attributes are not planned.
    assert!(!printed.contains("ZENDESK_ID"), "{printed}");
    // Also missing: COMPANY_NAME/PLAN/SIZE and the seven support aggregates (TICKET_COUNT, …).
    assert_eq!(summary.missing, 5 + 3 + 7, "{printed}");
    assert_eq!(summary.wrong_type, 1, "{printed}");
    assert!(printed.contains("deskbridge plan --apply"), "{printed}");

    // Nothing was created without --apply.
    let posts = server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 0);
}

#[tokio::test]
async fn plan_apply_creates_the_default_list_when_no_all_contacts_list_is_configured() {
    let server = MockServer::start().await;
    brevo_account(&server).await;
    mount_lists(&server, &[(35, "All support contacts")], 91).await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v3/contacts/attributes/normal/[A-Z_]+$"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let settings = plan_settings(&server.uri());
    let mut mapping = settings.mapping.clone();
    if let Some(intercom) = mapping.sources.get_mut("intercom") {
        intercom.lists.all_contacts = None;
    }
    let settings = settings.with_mapping(mapping);

    let mut out = Vec::new();
    plan(&settings, &client(&settings), false, &mut out)
        .await
        .expect("plan");
    let printed = text(out);
    assert_eq!(
        line(&printed, "list \"deskbridge — intercom\""),
        "list \"deskbridge — intercom\" (intercom all_contacts, default): created on the first write (or now with --apply)"
    );

    let mut out = Vec::new();
    plan(&settings, &client(&settings), true, &mut out)
        .await
        .expect("plan --apply");
    let printed = text(out);
    assert!(
        line(&printed, "list \"deskbridge — intercom\"").ends_with("created, id 91"),
        "{printed}"
    );
    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| {
            r.method.as_str() == "POST" && r.url.path().starts_with("/v3/contacts/folders")
                || r.method.as_str() == "POST" && r.url.path() == "/v3/contacts/lists"
        })
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"name": "deskbridge"}),
            json!({"name": "deskbridge — intercom", "folderId": 1})
        ]
    );
}

#[tokio::test]
async fn plan_apply_creates_the_missing_attributes_with_their_types() {
    let server = MockServer::start().await;
    brevo_account(&server).await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v3/contacts/attributes/normal/[A-Z_]+$"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let settings = plan_settings(&server.uri());
    let mut out = Vec::new();
    let summary = plan(&settings, &client(&settings), true, &mut out)
        .await
        .expect("plan --apply");
    let printed = text(out);

    let mut created: Vec<(String, Value)> = server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| {
            let name = r
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            (name, serde_json::from_slice(&r.body).expect("JSON body"))
        })
        .collect();
    created.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        created,
        vec![
            ("AVG_RESPONSE_TIME".to_string(), json!({"type": "float"})),
            ("COMPANY_NAME".to_string(), json!({"type": "text"})),
            ("COMPANY_PLAN".to_string(), json!({"type": "text"})),
            ("COMPANY_SIZE".to_string(), json!({"type": "float"})),
            ("CSAT_RESPONSES".to_string(), json!({"type": "float"})),
            ("CSAT_SCORE".to_string(), json!({"type": "float"})),
            ("INTERCOM_ROLE".to_string(), json!({"type": "text"})),
            ("LAST_ACTIVE".to_string(), json!({"type": "date"})),
            ("LAST_SUPPORT_CHANNEL".to_string(), json!({"type": "text"})),
            ("LAST_SUPPORT_DATE".to_string(), json!({"type": "date"})),
            ("LIFETIME_SCORE".to_string(), json!({"type": "float"})),
            ("OPEN_TICKETS".to_string(), json!({"type": "float"})),
            ("TICKET_COUNT".to_string(), json!({"type": "float"})),
            ("UNSUBSCRIBED".to_string(), json!({"type": "boolean"})),
        ],
        "{printed}"
    );
    assert!(
        line(&printed, "attribute LAST_ACTIVE").contains("created as date"),
        "{printed}"
    );
    // A wrong type is reported, never "fixed".
    assert!(
        line(&printed, "attribute SIGNUP_DATE").contains("wrong type"),
        "{printed}"
    );
    assert_eq!(
        (summary.created, summary.failed),
        (4 + 3 + 7, 0),
        "{printed}"
    );
}

#[tokio::test]
async fn plan_without_a_brevo_key_says_it_needs_one() {
    let settings = intercom_settings(None, None);
    let dry_run = DryRunBrevo::with_output(DryRunOutput::Silent);
    let mut out = Vec::new();
    let err = plan(&settings, &dry_run, false, &mut out)
        .await
        .expect_err("no key");
    assert!(err.to_string().contains("BREVO_API_KEY"), "{err}");
    assert!(dry_run.requests().is_empty());
}

/// A Brevo account holding the attributes Intercom's default mapping writes, with their types,
/// except `leave_out`; `retype` is listed as text whatever the mapping writes. Creating an
/// attribute succeeds.
async fn brevo_holding(leave_out: &[&str], retype: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    let needed = plan::needs(
        &intercom_settings(Some(&server.uri()), None),
        &[Source::Intercom],
    );
    assert!(needed.lists.is_empty(), "{needed:?}");
    let listed: Vec<(&str, &str)> = needed
        .attributes
        .values()
        .filter(|a| !leave_out.contains(&a.name.as_str()))
        .map(|a| {
            let kind = if retype.contains(&a.name.as_str()) {
                "text"
            } else {
                a.kinds.first().copied().unwrap_or("text")
            };
            (a.name.as_str(), kind)
        })
        .collect();
    mount_attributes(&server, &listed).await;
    mount_attribute_creation(&server).await;
    server
}

#[tokio::test]
async fn plan_exits_non_zero_while_brevo_differs_from_the_mapping() {
    let run = |server: &MockServer, args: &'static [&'static str]| {
        let base = format!("{}/v3", server.uri());
        async move {
            deskbridge_cli(
                args,
                &[
                    ("BREVO_API_KEY", "xkeysib-test"),
                    ("BREVO_BASE_URL", &base),
                    ("INTERCOM_ACCESS_TOKEN", "ic-token"),
                ],
            )
            .await
        }
    };
    let said = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // Everything in place: exit 0.
    let complete = brevo_holding(&[], &[]).await;
    let out = run(&complete, &["plan"]).await;
    assert!(out.status.success(), "{}", said(&out));

    // A missing attribute: non-zero, until --apply creates it.
    let lacking = brevo_holding(&["LAST_ACTIVE"], &[]).await;
    let out = run(&lacking, &["plan"]).await;
    assert!(!out.status.success(), "{}", said(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Brevo does not match the mapping: 1 missing, 0 wrong type"),
        "{stderr}"
    );
    let out = run(&lacking, &["plan", "--apply"]).await;
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("LAST_ACTIVE (date; intercom): missing, created as date"),
        "{}",
        said(&out)
    );

    // A wrong type: --apply does not change it, so plan stays non-zero.
    let mistyped = brevo_holding(&[], &["LAST_ACTIVE"]).await;
    let out = run(&mistyped, &["plan", "--apply"]).await;
    assert!(!out.status.success(), "{}", said(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 missing, 1 wrong type"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// check

async fn intercom_answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    let ok = status == 200;
    for (verb, route) in [
        ("POST", "/contacts/search"),
        ("POST", "/conversations/search"),
        ("GET", "/tags"),
    ] {
        let response = if ok {
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "list", "data": [], "pages": {}}))
        } else {
            ResponseTemplate::new(status)
                .set_body_json(json!({"type": "error.list", "errors": [{"code": "unauthorized"}]}))
        };
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    server
}

async fn brevo_answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    if status == 200 {
        mount_account(&server).await;
        mount_attributes(&server, &[("FIRSTNAME", "text")]).await;
    } else {
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"code": "unauthorized", "message": "Key not found"})),
            )
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn check_passes_when_brevo_and_intercom_answer() {
    let brevo = brevo_answering(200).await;
    let intercom = intercom_answering(200).await;
    let settings = intercom_settings(Some(&brevo.uri()), Some(&intercom.uri()));
    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::All, &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!(summary.failed, 0, "{printed}");
    assert_eq!(summary.passed, 7, "{printed}");
    for expected in [
        "✓ brevo: authentication (account: Acme)",
        "✓ brevo: attributes listable (1 attribute)",
        "✓ intercom: authentication",
        "✓ intercom: contacts readable",
        "✓ intercom: conversations readable",
        "✓ intercom: CSAT available",
        "✓ intercom: tags listable",
    ] {
        assert!(printed.contains(expected), "`{expected}` in:\n{printed}");
    }
    // Sources without credentials are reported, not failed, when not asked for by name.
    assert!(
        line(&printed, "- zendesk: API not configured").contains("ZENDESK_API_TOKEN"),
        "{printed}"
    );
    assert!(
        line(&printed, "- gorgias: API not configured").contains("GORGIAS_API_KEY"),
        "{printed}"
    );
    // The Intercom calls carried the token.
    let authed = intercom
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .all(|r| {
            r.headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer ic-token")
        });
    assert!(authed);
}

#[tokio::test]
async fn check_fails_with_a_reason_on_401() {
    let brevo = brevo_answering(401).await;
    let intercom = intercom_answering(401).await;
    let settings = intercom_settings(Some(&brevo.uri()), Some(&intercom.uri()));

    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Brevo, &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert!(summary.failed > 0 && summary.passed == 0, "{printed}");
    assert!(
        line(&printed, "✗ brevo: authentication").contains("BREVO_API_KEY"),
        "{printed}"
    );
    assert!(!printed.contains("intercom"), "only Brevo: {printed}");

    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Source(Source::Intercom), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!(summary.passed, 0, "{printed}");
    assert_eq!(summary.failed, 5, "{printed}");
    let auth = line(&printed, "✗ intercom: authentication");
    assert!(
        auth.contains("401") && auth.contains("INTERCOM_ACCESS_TOKEN"),
        "{printed}"
    );
    assert!(!printed.contains('✓'), "{printed}");
}

/// A Gorgias store answering its list endpoints in the documented shape (`data`, `meta` with
/// cursors) to Basic `ops@yourstore.example:gorgias-key`, and 401 to anything else.
async fn gorgias_answering() -> MockServer {
    let server = MockServer::start().await;
    // base64("ops@yourstore.example:gorgias-key")
    let basic = "Basic b3BzQHlvdXJzdG9yZS5leGFtcGxlOmdvcmdpYXMta2V5";
    for route in [
        "/api/customers",
        "/api/tickets",
        "/api/satisfaction-surveys",
        "/api/tags",
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .and(wiremock::matchers::header("authorization", basic))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "uri": route, "data": [],
                "meta": {"prev_cursor": null, "next_cursor": null}})))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"msg": "Unauthorized"}})),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn check_gorgias_prints_the_five_lines_of_its_seed() {
    let server = gorgias_answering().await;
    let settings = |key: &str| {
        Settings::from_vars(&Vars::from_pairs([
            ("GORGIAS_BASE_URL", server.uri().as_str()),
            ("GORGIAS_EMAIL", "ops@yourstore.example"),
            ("GORGIAS_API_KEY", key),
        ]))
        .expect("valid settings")
    };
    let mut out = Vec::new();
    let summary = check(
        &settings("gorgias-key"),
        &"gorgias".parse().expect("target"),
        &mut out,
    )
    .await
    .expect("check runs");
    let printed = text(out);
    assert_eq!((summary.passed, summary.failed), (5, 0), "{printed}");
    assert_eq!(
        printed.trim(),
        "✓ gorgias: authentication\n\
         ✓ gorgias: customers readable\n\
         ✓ gorgias: tickets readable\n\
         ✓ gorgias: CSAT available (satisfaction_surveys)\n\
         ✓ gorgias: tags listable"
    );

    // tag_lists names a tag the store does not have: said (a typo, or a tag not created yet),
    // not failed. The store's tags come in two pages.
    let tagged = MockServer::start().await;
    let basic = "Basic b3BzQHlvdXJzdG9yZS5leGFtcGxlOmdvcmdpYXMta2V5";
    Mock::given(method("GET"))
        .and(path("/api/tags"))
        .and(wiremock::matchers::query_param("cursor", "page-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": [{"id": 3, "name": "refund"}],
            "meta": {"prev_cursor": "page-1", "next_cursor": null}})))
        .mount(&tagged)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/tags"))
        .and(wiremock::matchers::header("authorization", basic))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": [{"id": 1, "name": "VIP"}, {"id": 2, "name": "billing"}],
            "meta": {"prev_cursor": null, "next_cursor": "page-2"}})))
        .mount(&tagged)
        .await;
    for route in [
        "/api/customers",
        "/api/tickets",
        "/api/satisfaction-surveys",
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "data": [], "meta": {"next_cursor": null}})))
            .mount(&tagged)
            .await;
    }
    let mut mapping = deskbridge_shared::mapping::Mapping::default();
    mapping
        .sources
        .get_mut("gorgias")
        .expect("gorgias")
        .tag_lists = std::collections::BTreeMap::from([
        ("vip".to_string(), 40),
        ("refund".to_string(), 41),
        ("churn-risk".to_string(), 42),
    ]);
    let settings_tagged = Settings::from_vars(&Vars::from_pairs([
        ("GORGIAS_BASE_URL", tagged.uri().as_str()),
        ("GORGIAS_EMAIL", "ops@yourstore.example"),
        ("GORGIAS_API_KEY", "gorgias-key"),
    ]))
    .expect("valid settings")
    .with_mapping(mapping);
    let mut out = Vec::new();
    let summary = check(
        &settings_tagged,
        &"gorgias".parse().expect("target"),
        &mut out,
    )
    .await
    .expect("check runs");
    let printed = text(out);
    assert_eq!((summary.passed, summary.failed), (5, 0), "{printed}");
    assert!(
        printed.contains(
            "- gorgias: tag_lists names tags gorgias does not have (yet): churn-risk (a typo? \
             tags match whatever their case)"
        ),
        "{printed}"
    );

    // A wrong key: authentication fails with the reason, and nothing else is tried.
    let mut out = Vec::new();
    let summary = check(
        &settings("wrong-key"),
        &"gorgias".parse().expect("target"),
        &mut out,
    )
    .await
    .expect("check runs");
    let printed = text(out);
    assert_eq!((summary.passed, summary.failed), (0, 5), "{printed}");
    assert!(
        line(&printed, "✗ gorgias: authentication").contains("401"),
        "{printed}"
    );
    assert!(
        line(&printed, "✗ gorgias: tags listable").contains("not tried"),
        "{printed}"
    );
}

#[tokio::test]
async fn check_of_an_unconfigured_source_names_the_missing_variables() {
    let settings = intercom_settings(None, None);
    let mut out = Vec::new();
    let summary = check(&settings, &"gorgias".parse().expect("target"), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!(summary.failed, 1, "{printed}");
    assert_eq!(
        printed.trim(),
        "✗ gorgias: API not configured: GORGIAS_DOMAIN (or GORGIAS_BASE_URL), GORGIAS_EMAIL, GORGIAS_API_KEY not set"
    );
    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Brevo, &mut out)
        .await
        .expect("check runs");
    assert_eq!(summary.failed, 1);
    assert!(text(out).contains("BREVO_API_KEY not set"));
    assert!("generic:cinnox".parse::<CheckTarget>().is_err());
}

// ---------------------------------------------------------------------------------------------
// check: Zendesk authentication

/// A Zendesk account whose API answers requests carrying `authorization` (empty pages in the
/// documented shapes, one tag), and whose token endpoint grants `zd-oauth-token` to the
/// `deskbridge` client or refuses it with `token_status`.
async fn zendesk_answering(authorization: &str, token_status: u16) -> MockServer {
    let server = MockServer::start().await;
    let token = if token_status == 200 {
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "zd-oauth-token", "token_type": "bearer", "scope": "read",
            "expires_in": 172_800}))
    } else {
        ResponseTemplate::new(token_status).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "Client authentication failed due to unknown client, no client \
                authentication included, or unsupported authentication method."}))
    };
    Mock::given(method("POST"))
        .and(path("/oauth/tokens"))
        .respond_with(token)
        .mount(&server)
        .await;
    for (route, body) in [
        (
            "/api/v2/incremental/users/cursor.json",
            json!({"users": [], "after_cursor": null, "end_of_stream": true}),
        ),
        (
            "/api/v2/incremental/tickets/cursor.json",
            json!({"tickets": [], "users": [], "metric_sets": [], "after_cursor": null,
                "end_of_stream": true}),
        ),
        (
            "/api/v2/satisfaction_ratings",
            json!({"satisfaction_ratings": [], "meta": {"has_more": false, "after_cursor": null,
                "before_cursor": null}, "links": {"prev": null, "next": null}}),
        ),
        (
            "/api/v2/tags.json",
            json!({"tags": [{"name": "vip", "count": 3}], "meta": {"has_more": false}}),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .and(header("authorization", authorization))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": "Couldn't authenticate you"})),
        )
        .mount(&server)
        .await;
    server
}

fn zendesk_settings(server: &MockServer, credentials: &[(&str, &str)]) -> Settings {
    let uri = server.uri();
    let mut pairs = vec![("ZENDESK_BASE_URL", uri.as_str())];
    pairs.extend_from_slice(credentials);
    Settings::from_vars(&Vars::from_pairs(pairs)).expect("valid settings")
}

const OAUTH_CLIENT: [(&str, &str); 2] = [
    ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
    ("ZENDESK_OAUTH_CLIENT_SECRET", "zd-client-secret"),
];

async fn token_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/oauth/tokens")
        .count()
}

#[tokio::test]
async fn check_zendesk_names_the_oauth_client_and_checks_the_grant() {
    let server = zendesk_answering("Bearer zd-oauth-token", 200).await;
    let settings = zendesk_settings(&server, &OAUTH_CLIENT);
    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Source(Source::Zendesk), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!(summary.failed, 0, "{printed}");
    assert_eq!(summary.passed, 6, "{printed}");
    for expected in [
        "- zendesk: authentication method: OAuth client credentials \
         (ZENDESK_OAUTH_CLIENT_ID, ZENDESK_OAUTH_CLIENT_SECRET), scope `read`",
        "✓ zendesk: OAuth token grant (scope `read`, valid for 48 h)",
        "✓ zendesk: authentication",
        "✓ zendesk: users readable",
        "✓ zendesk: tickets readable",
        "✓ zendesk: CSAT available (satisfaction_ratings)",
        "✓ zendesk: tags listable",
    ] {
        assert!(printed.contains(expected), "`{expected}` in:\n{printed}");
    }
    // One token for every check, and no secret printed.
    assert_eq!(token_requests(&server).await, 1);
    assert!(
        !printed.contains("zd-client-secret") && !printed.contains("zd-oauth-token"),
        "{printed}"
    );
}

#[tokio::test]
async fn check_zendesk_fails_when_the_grant_is_refused() {
    let server = zendesk_answering("Bearer zd-oauth-token", 401).await;
    let settings = zendesk_settings(&server, &OAUTH_CLIENT);
    let mut out = Vec::new();
    let summary = check(&settings, &"zendesk".parse().expect("target"), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!((summary.passed, summary.failed), (0, 6), "{printed}");
    let grant = line(&printed, "✗ zendesk: OAuth token grant");
    assert!(
        grant.contains("HTTP 401")
            && grant.contains("invalid_client")
            && grant.contains("ZENDESK_OAUTH_CLIENT_ID")
            && grant.contains("ZENDESK_OAUTH_CLIENT_SECRET"),
        "{printed}"
    );
    assert!(
        line(&printed, "✗ zendesk: users readable").contains("not tried"),
        "{printed}"
    );
    // Nothing but the grant was asked for.
    let asked = server.received_requests().await.expect("recorded");
    assert!(
        asked.iter().all(|r| r.url.path() == "/oauth/tokens"),
        "{asked:?}"
    );
}

#[tokio::test]
async fn check_zendesk_names_a_ready_token() {
    let server = zendesk_answering("Bearer ready-token", 500).await;
    let settings = zendesk_settings(&server, &[("ZENDESK_OAUTH_TOKEN", "ready-token")]);
    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Source(Source::Zendesk), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!((summary.passed, summary.failed), (5, 0), "{printed}");
    assert!(
        line(
            &printed,
            "- zendesk: authentication method: ready OAuth access token"
        )
        .contains("cannot be renewed"),
        "{printed}"
    );
    assert_eq!(token_requests(&server).await, 0);

    // A ready token Zendesk refuses: the reason says it cannot be renewed.
    let server = zendesk_answering("Bearer another-token", 500).await;
    let settings = zendesk_settings(&server, &[("ZENDESK_OAUTH_TOKEN", "ready-token")]);
    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Source(Source::Zendesk), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert!(summary.failed > 0, "{printed}");
    assert!(
        line(&printed, "✗ zendesk: authentication").contains("ZENDESK_OAUTH_TOKEN"),
        "{printed}"
    );
}

#[tokio::test]
async fn check_zendesk_names_the_legacy_api_token_and_its_end() {
    // base64("ops@example.com/token:zd-token")
    let server = zendesk_answering("Basic b3BzQGV4YW1wbGUuY29tL3Rva2VuOnpkLXRva2Vu", 500).await;
    let settings = zendesk_settings(
        &server,
        &[
            ("ZENDESK_EMAIL", "ops@example.com"),
            ("ZENDESK_API_TOKEN", "zd-token"),
            ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge"),
        ],
    );
    let mut out = Vec::new();
    let summary = check(&settings, &CheckTarget::Source(Source::Zendesk), &mut out)
        .await
        .expect("check runs");
    let printed = text(out);
    assert_eq!((summary.passed, summary.failed), (5, 0), "{printed}");
    let method = line(
        &printed,
        "- zendesk: authentication method: legacy API token",
    );
    assert!(
        method.contains("2027-04-30") && method.contains("ZENDESK_OAUTH_CLIENT_SECRET"),
        "{printed}"
    );
    assert!(
        printed.contains(
            "- zendesk: ZENDESK_OAUTH_CLIENT_SECRET is not set, so the OAuth client is not used"
        ),
        "{printed}"
    );
}

// ---------------------------------------------------------------------------------------------
// --stack-name: the deployed stack's outputs in place of exported variables

#[tokio::test]
async fn status_and_sync_reach_the_stacks_resources_by_its_name() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "stack-cli").await;
    // The Zendesk API credentials come from the stack's secret, as they do deployed.
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(common::unique_prefix("stack-secret"))
        .secret_string(
            json!({"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_OAUTH_TOKEN": "zd-token"}).to_string(),
        )
        .send()
        .await
        .expect("secret created");
    let secret_arn = secret.arn().expect("arn");
    let stack = create_stack(&sdk, &res, &[("SecretArn", secret_arn)], &[]).await;

    // DESKBRIDGE_STACK means the same as --stack-name.
    let out = deskbridge_cli(&["status"], &[("DESKBRIDGE_STACK", &stack)]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("zendesk/tickets"), "{stdout}");
    assert!(stdout.contains("never run"), "{stdout}");

    let out = deskbridge_cli(&["sync", "zendesk", "--full", "--stack-name", &stack], &[]).await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk));
    let bodies = drain(&queue, &res.sync_queue_url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let start: Value = serde_json::from_str(&bodies[0]).expect("json");
    let expected = serde_json::to_value(deskbridge_sync::SyncMessage::Start {
        source: Some(Source::Zendesk),
        stream: None,
        full: true,
        since: None,
        page_size: None,
    })
    .expect("json");
    assert_eq!(start, expected);

    // The seed's sync parameters: several streams, a start date, a page size.
    let out = deskbridge_cli(
        &[
            "sync",
            "zendesk",
            "--stream",
            "users",
            "--stream",
            "tickets",
            "--since",
            "2026-11-01",
            "--batch-size",
            "50",
            "--stack-name",
            &stack,
        ],
        &[],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sync of zendesk/users, zendesk/tickets requested (from 2026-11-01T00:00:00+00:00, 50 per page)"),
        "{stdout}"
    );
    let starts: Vec<Value> = drain(&queue, &res.sync_queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("json"))
        .collect();
    // A standard queue keeps no order.
    let mut streams: Vec<&str> = starts.iter().filter_map(|s| s["stream"].as_str()).collect();
    streams.sort_unstable();
    assert_eq!(streams, vec!["tickets", "users"], "{starts:?}");
    for start in &starts {
        assert_eq!(start["since"], json!("2026-11-01T00:00:00Z"), "{start}");
        assert_eq!(start["page_size"], json!(50), "{start}");
    }
    // A date that is not one, and --since with --full, are refused before anything is queued.
    for args in [
        &[
            "sync",
            "zendesk",
            "--since",
            "last tuesday",
            "--stack-name",
            &stack,
        ][..],
        &[
            "sync",
            "zendesk",
            "--since",
            "2026-11-01",
            "--full",
            "--stack-name",
            &stack,
        ][..],
    ] {
        let out = deskbridge_cli(args, &[]).await;
        assert!(!out.status.success(), "{args:?}");
    }
    // A stream the configuration does not switch on is refused by name (Gorgias's events feed
    // is opt-in).
    let out = deskbridge_cli(
        &[
            "sync",
            "gorgias",
            "--stream",
            "events",
            "--stack-name",
            &stack,
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gorgias/events is switched off")
            && stderr.contains("`connectors.gorgias.sync.events: true`"),
        "{stderr}"
    );
    assert_eq!(
        visible_messages(&aws_sdk_sqs::Client::new(&sdk), &res.sync_queue_url).await,
        0
    );

    // A variable set in the environment wins over the stack's output, and the CLI says so.
    let out = deskbridge_cli(
        &["sync", "zendesk", "--stack-name", &stack],
        &[("SYNC_QUEUE_URL", &res.upsert_queue_url)],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SYNC_QUEUE_URL") && stderr.contains("wins"),
        "{stderr}"
    );
    assert_eq!(drain(&queue, &res.upsert_queue_url).await.len(), 1);
    assert_eq!(
        visible_messages(&aws_sdk_sqs::Client::new(&sdk), &res.sync_queue_url).await,
        0
    );
}

#[tokio::test]
async fn an_unknown_stack_or_a_missing_output_is_named() {
    let sdk = common::sdk().await;
    let out = deskbridge_cli(&["status", "--stack-name", "deskbridge-no-such-stack"], &[]).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deskbridge-no-such-stack") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let res = common::bootstrap(&sdk, "stack-missing").await;
    let stack = create_stack(&sdk, &res, &[], &["SyncQueueUrl"]).await;
    let out = deskbridge_cli(
        &["sync", "zendesk", "--stack-name", &stack],
        &[
            ("ZENDESK_SUBDOMAIN", "acme"),
            ("ZENDESK_OAUTH_TOKEN", "zd-token"),
        ],
    )
    .await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&stack) && stderr.contains("SyncQueueUrl"),
        "{stderr}"
    );
    assert_eq!(
        visible_messages(&aws_sdk_sqs::Client::new(&sdk), &res.sync_queue_url).await,
        0
    );
}

/// A file under the system's temporary directory holding `text`, removed by the caller.
fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", common::unique_prefix("config")));
    std::fs::write(&path, text).expect("writing a config file");
    path
}

#[tokio::test]
async fn config_push_checks_the_file_and_plan_says_when_the_deployed_copy_differs() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "stack-config").await;
    let brevo = MockServer::start().await;
    brevo_account(&brevo).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let credentials = secrets
        .create_secret()
        .name(common::unique_prefix("stack-credentials"))
        .secret_string(
            json!({"BREVO_API_KEY": "xkeysib-test", "BREVO_BASE_URL": format!("{}/v3", brevo.uri())})
                .to_string(),
        )
        .send()
        .await
        .expect("secret created");
    // As template.yaml creates it: only a comment, which means the built-in defaults.
    let placeholder = "# deskbridge configuration: the built-in defaults until `deskbridge config push` writes your file here.\n";
    let configuration = secrets
        .create_secret()
        .name(common::unique_prefix("stack-configuration"))
        .secret_string(placeholder)
        .send()
        .await
        .expect("secret created");
    let config_arn = configuration.arn().expect("arn").to_string();
    let stack = create_stack(
        &sdk,
        &res,
        &[
            ("SecretArn", credentials.arn().expect("arn")),
            ("ConfigSecretArn", &config_arn),
        ],
        &[],
    )
    .await;
    let deployed = || async {
        secrets
            .get_secret_value()
            .secret_id(&config_arn)
            .send()
            .await
            .expect("read")
            .secret_string()
            .unwrap_or_default()
            .to_string()
    };

    // An invalid file is refused with its lines, and nothing is written.
    let bad = temp_config("bad.yaml", "connectors:\n  zendesk:\n    enabled: maybe\n");
    let out = deskbridge_cli(
        &[
            "config",
            "push",
            bad.to_str().expect("utf-8"),
            "--stack-name",
            &stack,
        ],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:3:") && stderr.contains("not pushed"),
        "{stderr}"
    );
    assert_eq!(deployed().await, placeholder);

    // A valid file becomes the secret's text, which `config show` prints.
    let cinnox = std::fs::read_to_string(common::CINNOX_CONFIG).expect("example");
    let good = temp_config("cinnox.yaml", &cinnox);
    let good_arg = good.to_str().expect("utf-8");
    let out = deskbridge_cli(
        &["config", "push", good_arg],
        &[("DESKBRIDGE_STACK", &stack)],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fingerprint = deskbridge_shared::config::file::fingerprint(&cinnox);
    assert!(
        stdout.contains(&format!("fingerprint {fingerprint}")),
        "{stdout}"
    );
    assert_eq!(deployed().await, cinnox);
    let out = deskbridge_cli(&["config", "show", "--stack-name", &stack], &[]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), cinnox);
    // Pushing the same text again writes nothing.
    let out = deskbridge_cli(&["config", "push", good_arg, "--stack-name", &stack], &[]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing written"));

    // plan --stack-name without a local file plans the deployed copy: the CINNOX source's
    // CINNOX_ID attribute is one the mapping needs. This Brevo account lacks attributes, so
    // plan exits non-zero for that, not for the configuration.
    let out = deskbridge_cli(&["plan", "--stack-name", &stack], &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("Brevo does not match the mapping") && !stderr.contains("config push"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "planning the deployed copy (fingerprint {fingerprint})"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("CINNOX_ID"), "{stdout}");

    // The same local file: no drift. A changed one: named, with the line, and exit non-zero.
    let out = deskbridge_cli(
        &["plan", "--stack-name", &stack],
        &[("DESKBRIDGE_CONFIG", good_arg)],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Brevo does not match the mapping") && !stderr.contains("config push"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("is what stack `{stack}` reads")),
        "{stdout}"
    );
    let changed = temp_config("changed.yaml", &format!("{cinnox}default_region: FR\n"));
    let out = deskbridge_cli(
        &["plan", "--stack-name", &stack],
        &[("DESKBRIDGE_CONFIG", changed.to_str().expect("utf-8"))],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    let last_line = cinnox.lines().count() + 1;
    assert!(
        stdout.contains("differs from what stack")
            && stdout.contains(&format!("from line {last_line}")),
        "{stdout}"
    );
    assert!(stderr.contains("config push"), "{stderr}");
    for path in [bad, good, changed] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn replay_sends_batch_sync_jobs_back_to_the_backfill_lane() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "replay-lanes").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = SqsQueue::new(sqs.clone());
    let job = |id: &str, origin: &str| {
        json!({"id": id, "source": "zendesk", "origin": origin,
               "received_at": "2026-12-01T10:00:00Z", "records": []})
        .to_string()
    };
    let webhook = job("zendesk:d1", "webhook");
    let backfill: Vec<String> = (0..3)
        .map(|i| job(&format!("zendesk/users:p{i}"), "sync"))
        .collect();
    let not_a_job = r#"{"job":1}"#.to_string();
    let mut all = vec![webhook.clone(), not_a_job.clone()];
    all.extend(backfill.clone());
    queue
        .send_batch(&res.upsert_dlq_url, &all)
        .await
        .expect("seed the upsert DLQ");

    // The targets as the CLI makes them from the settings, which name the backfill lane.
    let settings = common::settings(&res, None, &[]);
    let targets = replay_targets(
        &settings,
        ReplayQueue::Upsert,
        |name| (name == "UPSERT_DLQ_URL").then(|| res.upsert_dlq_url.clone()),
        None,
    )
    .await
    .expect("targets");
    assert_eq!(
        targets[0].backfill_url.as_deref(),
        Some(res.backfill_queue_url.as_str())
    );
    let mut out = Vec::new();
    let options = ReplayOptions {
        dry_run: false,
        wait_seconds: 1,
    };
    let counts = replay(&queue, &targets, &options, &mut out)
        .await
        .expect("replay");
    let printed = text(out);
    assert_eq!(counts[0].messages, 5, "{printed}");
    assert!(printed.contains("batch sync jobs to"), "{printed}");
    let mut realtime = vec![webhook, not_a_job];
    realtime.sort();
    assert_eq!(drain(&queue, &res.upsert_queue_url).await, realtime);
    let mut lane = backfill;
    lane.sort();
    assert_eq!(drain(&queue, &res.backfill_queue_url).await, lane);
    assert_eq!(visible_messages(&sqs, &res.upsert_dlq_url).await, 0);
}
