//! The `deskbridge` binary's output conventions: `--json` documents of a known shape, the table
//! and the plain lines of `status`, closed sets of arguments, shell completions, and log lines
//! without terminal colours when stderr is not a terminal.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{Queue, SqsQueue};
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::state::streams::{RunStats, RunStatus, StreamId, StreamState, StreamStore};
use serde_json::{Value, json};
use wiremock::MockServer;

/// Runs the binary against moto with only the AWS variables and `env` set.
async fn deskbridge(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_deskbridge"));
    command
        .args(args)
        .env_clear()
        .env("AWS_ENDPOINT_URL", common::moto_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("running deskbridge")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn both(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// A table with two stored streams: zendesk/tickets idle after a run that ended with an error,
/// intercom/contacts running.
async fn known_state(name: &str) -> deskbridge_shared::infra::Bootstrapped {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, name).await;
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), res.table.clone());
    let idle = StreamState {
        status: RunStatus::Idle,
        version: 4,
        bookmark: Some("1764800000".into()),
        last_run_started_at: Some(at("2026-12-01T10:00:00Z")),
        last_run_ended_at: Some(at("2026-12-01T10:05:30Z")),
        last_run: RunStats {
            pages: 3,
            records_read: 250,
            contacts: 120,
            events: 90,
            skipped: 30,
            failed: 10,
        },
        total: RunStats {
            records_read: 1_250,
            ..Default::default()
        },
        last_error: Some("HTTP 429 from Zendesk".into()),
        ..Default::default()
    };
    store
        .save(&StreamId::new(Source::Zendesk, "tickets"), None, &idle)
        .await
        .expect("saved");
    let running = StreamState {
        status: RunStatus::Running,
        version: 2,
        run_id: Some("run-1".into()),
        lease_until: Some(
            Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0)
                .single()
                .expect("a time"),
        ),
        cursor: Some("a-rather-long-cursor-value-from-intercom".into()),
        run_started_at: Some(at("2026-12-02T08:00:00Z")),
        run: RunStats {
            pages: 1,
            records_read: 50,
            contacts: 50,
            ..Default::default()
        },
        total: RunStats {
            records_read: 3_000,
            ..Default::default()
        },
        ..Default::default()
    };
    store
        .save(&StreamId::new(Source::Intercom, "contacts"), None, &running)
        .await
        .expect("saved");
    res
}

fn never_run(stream: &str) -> Value {
    let source = stream.split('/').next().unwrap_or_default();
    json!({
        "stream": stream, "source": source, "state": "never_run", "cursor": null,
        "run_started_at": null, "run_ended_at": null, "records_read": 0, "contacts": 0,
        "events": 0, "skipped": 0, "failed": 0, "last_error": null
    })
}

#[tokio::test]
async fn status_json_is_one_document_of_a_known_shape() {
    let res = known_state("cli-status-json").await;
    for args in [
        &["status", "--json"][..],
        &["status", "--format", "json"][..],
    ] {
        let out = deskbridge(args, &[("STATE_TABLE", &res.table)]).await;
        assert!(out.status.success(), "{}", both(&out));
        let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        let expected = json!({"streams": [
            never_run("zendesk/users"),
            {
                "stream": "zendesk/tickets", "source": "zendesk", "state": "idle",
                "cursor": "1764800000",
                "run_started_at": "2026-12-01T10:00:00Z", "run_ended_at": "2026-12-01T10:05:30Z",
                "records_read": 250, "contacts": 120, "events": 90, "skipped": 30, "failed": 10,
                "last_error": "HTTP 429 from Zendesk"
            },
            never_run("zendesk/satisfaction_ratings"),
            never_run("zendesk/organizations"),
            {
                "stream": "intercom/contacts", "source": "intercom", "state": "running",
                "cursor": "a-rather-long-cursor-value-from-intercom",
                "run_started_at": "2026-12-02T08:00:00Z", "run_ended_at": null,
                "records_read": 50, "contacts": 50, "events": 0, "skipped": 0, "failed": 0,
                "last_error": null
            },
            never_run("intercom/conversations"),
            never_run("gorgias/customers"),
            never_run("gorgias/tickets"),
            never_run("gorgias/satisfaction_surveys"),
        ],
        // Per helpdesk that synced or is configured: the seed's connection summary. Counts add
        // up every completed run and the one going on.
        "sources": [
            {"source": "zendesk", "connected": false, "last_sync": "2026-12-01T10:05:30Z",
                "customers": 0, "tickets_tracked": 1250, "csat_responses": 0},
            {"source": "intercom", "connected": false, "last_sync": null,
                "customers": 3050, "tickets_tracked": 0, "csat_responses": null},
        ]});
        assert_eq!(document, expected, "{}", stdout(&out));
    }
}

#[tokio::test]
async fn status_lists_a_further_accounts_streams_and_summary() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "cli-status-account").await;
    let file = std::env::temp_dir().join(format!("deskbridge-status-{}.yaml", std::process::id()));
    std::fs::write(&file, "connectors:\n  zendesk:brand2: {}\n").expect("config written");
    let env = [
        ("STATE_TABLE", res.table.as_str()),
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        ("ZENDESK_BRAND2_SUBDOMAIN", "brand2"),
        ("ZENDESK_BRAND2_OAUTH_TOKEN", "brand2-token"),
    ];
    let out = deskbridge(&["status", "--json"], &env).await;
    assert!(out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let streams = document["streams"].as_array().expect("streams");
    for stream in [
        "zendesk:brand2/users",
        "zendesk:brand2/tickets",
        "zendesk:brand2/satisfaction_ratings",
        "zendesk:brand2/organizations",
    ] {
        assert!(streams.contains(&never_run(stream)), "{stream}: {document}");
    }
    assert_eq!(
        document["sources"],
        json!([{"source": "zendesk:brand2", "connected": true, "last_sync": null,
            "customers": 0, "tickets_tracked": 0, "csat_responses": 0}]),
        "{document}"
    );
    std::fs::remove_file(file).ok();
}

#[tokio::test]
async fn status_prints_plain_lines_off_a_terminal_and_a_table_when_asked() {
    let res = known_state("cli-status-table").await;
    let env = [("STATE_TABLE", res.table.as_str())];

    // Not a terminal here: the plain lines, the same as `--format plain`.
    let default = deskbridge(&["status"], &env).await;
    let plain = deskbridge(&["status", "--format", "plain"], &env).await;
    assert!(default.status.success(), "{}", both(&default));
    assert_eq!(stdout(&default), stdout(&plain));
    let printed = stdout(&plain);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].starts_with("stream "), "{printed}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("zendesk/users") && l.ends_with("never run")),
        "{printed}"
    );
    let tickets = lines
        .iter()
        .find(|l| l.starts_with("zendesk/tickets"))
        .expect("a tickets line");
    let fields: Vec<&str> = tickets.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "zendesk/tickets",
            "idle",
            "1764800000",
            "2026-12-01",
            "10:00:00",
            "2026-12-01",
            "10:05:30",
            "250",
            "120",
            "90",
            "30",
            "10"
        ],
        "{printed}"
    );
    assert!(
        printed.contains("last error: HTTP 429 from Zendesk"),
        "{printed}"
    );
    assert!(!printed.contains('│'), "{printed}");
    assert!(
        lines.contains(
            &"zendesk: not connected, last sync 2026-12-01 10:05:30, customers 0, tickets tracked \
              1250, CSAT responses 0"
        ),
        "{printed}"
    );
    assert!(
        lines.contains(
            &"intercom: not connected, last sync never, customers 3050, tickets tracked 0, CSAT \
              responses with the tickets"
        ),
        "{printed}"
    );
    // A helpdesk whose API is configured here is connected, before its first sync too.
    let gorgias = [
        ("STATE_TABLE", res.table.as_str()),
        ("GORGIAS_DOMAIN", "yourstore"),
        ("GORGIAS_EMAIL", "ops@yourstore.example"),
        ("GORGIAS_API_KEY", "gorgias-key"),
    ];
    let out = deskbridge(&["status"], &gorgias).await;
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stdout(&out).lines().any(|l| l
            == "gorgias: connected, last sync never, customers 0, tickets tracked 0, CSAT \
                responses 0"),
        "{}",
        stdout(&out)
    );

    // The table: a header row, one row per stream, the error in a column of its own (cells
    // between `│` borders and `┆` separators).
    let table = deskbridge(&["status", "--format", "table"], &env).await;
    assert!(table.status.success(), "{}", both(&table));
    let printed = stdout(&table);
    assert!(!printed.contains('\u{1b}'), "no colour codes: {printed:?}");
    let cells = |start: &str| -> Vec<String> {
        printed
            .lines()
            .find(|l| l.trim_start_matches('│').trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no row `{start}` in:\n{printed}"))
            .split(['│', '┆'])
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    assert_eq!(
        cells("stream"),
        [
            "stream",
            "state",
            "cursor",
            "last run start",
            "last run end",
            "read",
            "contacts",
            "events",
            "skipped",
            "failed",
            "last error"
        ],
        "{printed}"
    );
    assert_eq!(
        cells("zendesk/tickets"),
        [
            "zendesk/tickets",
            "idle",
            "1764800000",
            "2026-12-01 10:00:00",
            "2026-12-01 10:05:30",
            "250",
            "120",
            "90",
            "30",
            "10",
            "HTTP 429 from Zendesk"
        ],
        "{printed}"
    );
    // A long cursor is shortened, as in the plain lines.
    assert_eq!(
        cells("intercom/contacts")[2],
        "a-rather-long-cursor-va…",
        "{printed}"
    );
    assert_eq!(cells("gorgias/tickets")[1], "never run", "{printed}");

    // --watch refreshes a view; it does not go with one JSON document.
    let out = deskbridge(&["status", "--watch", "--json"], &env).await;
    assert!(!out.status.success());
}

/// Brevo answering `GET /account` and `GET /contacts/attributes`, with one list that is not
/// deskbridge's.
async fn brevo() -> MockServer {
    use deskbridge_shared::testkit::brevo::{mount_account, mount_attributes, mount_lists};
    let server = MockServer::start().await;
    mount_account(&server).await;
    mount_attributes(&server, &[("FIRSTNAME", "text"), ("INTERCOM_ID", "text")]).await;
    mount_lists(&server, &[(4, "Newsletter")], 91).await;
    server
}

#[tokio::test]
async fn check_json_lists_every_check_with_its_result() {
    let server = brevo().await;
    let base = format!("{}/v3", server.uri());
    let env = [
        ("BREVO_API_KEY", "xkeysib-test"),
        ("BREVO_BASE_URL", base.as_str()),
    ];
    let out = deskbridge(&["check", "brevo", "--json"], &env).await;
    assert!(out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        document,
        json!({
            "passed": 2,
            "failed": 0,
            "checks": [
                {"result": "pass", "target": "brevo", "check": "authentication (account: Acme)"},
                {"result": "pass", "target": "brevo", "check": "attributes listable (2 attributes)"},
            ]
        })
    );

    // A source without credentials, named: a failure, and the document still printed.
    let out = deskbridge(&["check", "gorgias", "--json"], &env).await;
    assert!(!out.status.success());
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(document["failed"], 1, "{document}");
    assert_eq!(document["checks"][0]["result"], "fail", "{document}");
    assert_eq!(document["checks"][0]["target"], "gorgias", "{document}");
}

#[tokio::test]
async fn check_reads_a_further_zendesk_account_with_its_own_credentials() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, ResponseTemplate};
    // brand2's Zendesk answers brand2's token only.
    let zendesk = MockServer::start().await;
    let empty_export = |key: &str| {
        json!({key: [], "after_cursor": null, "before_cursor": null, "after_url": null,
            "before_url": null, "end_of_stream": true})
    };
    for (at, body) in [
        (
            "/api/v2/incremental/users/cursor.json",
            empty_export("users"),
        ),
        (
            "/api/v2/incremental/tickets/cursor.json",
            empty_export("tickets"),
        ),
        (
            "/api/v2/satisfaction_ratings",
            json!({"satisfaction_ratings": [], "meta": {"has_more": false}, "links": {}}),
        ),
        (
            "/api/v2/tags.json",
            json!({"tags": [{"name": "vip", "count": 1}], "meta": {"has_more": false}}),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(at))
            .and(header("authorization", "Bearer brand2-token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&zendesk)
            .await;
    }
    let file = std::env::temp_dir().join(format!("deskbridge-check-{}.yaml", std::process::id()));
    std::fs::write(&file, "connectors:\n  zendesk:brand2: {}\n").expect("config written");
    let uri = zendesk.uri();
    let env = [
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        // The first account's token is not one this Zendesk knows.
        ("ZENDESK_BASE_URL", uri.as_str()),
        ("ZENDESK_OAUTH_TOKEN", "the-first-accounts-token"),
        ("ZENDESK_BRAND2_BASE_URL", uri.as_str()),
        ("ZENDESK_BRAND2_OAUTH_TOKEN", "brand2-token"),
    ];
    let out = deskbridge(&["check", "zendesk:brand2", "--json"], &env).await;
    assert!(out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(document["failed"], 0, "{document}");
    let checks = document["checks"].as_array().expect("checks");
    assert!(
        checks.iter().all(|c| c["target"] == "zendesk:brand2"),
        "{document}"
    );
    assert!(
        checks.iter().any(|c| c["result"] == "note"
            && c["check"].as_str().is_some_and(|n| n
                .contains("ready OAuth access token (ZENDESK_BRAND2_OAUTH_TOKEN)")
                && n.contains(
                    "(ZENDESK_BRAND2_OAUTH_CLIENT_ID, ZENDESK_BRAND2_OAUTH_CLIENT_SECRET)"
                ))),
        "the method names brand2's variables: {document}"
    );
    for want in [
        "authentication",
        "users readable",
        "tickets readable",
        "CSAT available (satisfaction_ratings)",
        "tags listable",
    ] {
        assert!(
            checks
                .iter()
                .any(|c| c["check"] == want && c["result"] == "pass"),
            "{want}: {document}"
        );
    }
    // The first account, with its own (unknown) token, fails on its own.
    let out = deskbridge(&["check", "zendesk", "--json"], &env).await;
    assert!(!out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(document["checks"][1]["target"], "zendesk", "{document}");
    assert!(
        document["failed"].as_u64().is_some_and(|n| n > 0),
        "{document}"
    );
    // An account without its variables names them.
    let out = deskbridge(&["check", "zendesk:brand2", "--json"], &env[..1]).await;
    assert!(!out.status.success());
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let said = document["checks"][0]["check"].as_str().unwrap_or_default();
    assert!(
        said.contains("ZENDESK_BRAND2_SUBDOMAIN (or ZENDESK_BRAND2_BASE_URL)")
            && said.contains("ZENDESK_BRAND2_OAUTH_CLIENT_ID"),
        "{document}"
    );
    std::fs::remove_file(file).ok();
}

#[tokio::test]
async fn plan_says_what_each_line_of_the_intercom_seed_does() {
    let server = brevo().await;
    let base = format!("{}/v3", server.uri());
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seeds/intercom.yaml");
    let env = [
        ("BREVO_API_KEY", "xkeysib-test"),
        ("BREVO_BASE_URL", base.as_str()),
        ("INTERCOM_ACCESS_TOKEN", "ic-token"),
        ("DESKBRIDGE_CONFIG", seed),
    ];
    let out = deskbridge(&["plan", "--format", "plain"], &env).await;
    let printed = stdout(&out);
    assert!(
        printed.contains("configuration file, line by line:"),
        "{}",
        both(&out)
    );
    for expected in [
        "    6  connectors.intercom.access_token: the API token is read from the variable \
         INTERCOM_ACCESS_TOKEN",
        "   12  connectors.intercom.sync.companies: the batch sync reads companies",
        "   13  connectors.intercom.sync.events: the batch sync reads each changed contact's \
         data events with the contacts",
        "   21  connectors.intercom.lists.leads: list 37: leads join, and leave when they become \
         users",
        "   24  field_mapping.email: contacts are matched by email: no attribute",
    ] {
        assert!(printed.contains(expected), "`{expected}` in:\n{printed}");
    }
    // And in the JSON document, line by line.
    let out = deskbridge(&["plan", "--json"], &env).await;
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        document["file_lines"][0],
        json!({"line": 3, "key": "connectors", "says": "one block per helpdesk:"}),
        "{document}"
    );
}

#[tokio::test]
async fn plan_says_what_each_pull_resource_reads_and_refuses_a_broken_one_by_line() {
    let server = brevo().await;
    let base = format!("{}/v3", server.uri());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/generic-pull.yaml");
    let env = [
        ("BREVO_API_KEY", "xkeysib-test"),
        ("BREVO_BASE_URL", base.as_str()),
        ("DESKBRIDGE_CONFIG", example),
    ];
    let out = deskbridge(&["plan", "--format", "plain"], &env).await;
    let printed = stdout(&out);
    for expected in [
        "connectors.generic:freshdesk.pull: the batch sync reads its API at \
         https://acme.freshdesk.com/api/v2 (100 requests per 60 s)",
        "connectors.generic:freshdesk.pull.auth: requests authenticate with the variable \
         FRESHDESK_API_CREDENTIALS",
        "connectors.generic:freshdesk.pull.resources.contacts: stream contacts: GET /contacts \
         page by page (`page`); later runs ask for changes with `_updated_since` from the \
         previous run's start",
        "connectors.generic:helpscout.pull.resources.contacts: stream contacts: GET /customers \
         following the next link at `/_links/next/href`",
    ] {
        assert!(
            printed.contains(expected),
            "`{expected}` in:\n{}",
            both(&out)
        );
    }
    // FRESHDESK_ID and HELPSCOUT_ID are what the default rules write.
    assert!(printed.contains("FRESHDESK_ID"), "{printed}");

    let broken = temp_file(
        "broken-pull.yaml",
        "connectors:\n  generic:desk:\n    pull:\n      base_url: https://desk.example/api\n      auth: { type: bearer, token_env: DESK_TOKEN }\n      resources:\n        contacts:\n          path: /people\n          pagination: { type: next_link }\n          fields: { email: /email }\n",
    );
    let env = [
        ("BREVO_API_KEY", "xkeysib-test"),
        ("BREVO_BASE_URL", base.as_str()),
        ("DESKBRIDGE_CONFIG", broken.to_str().expect("utf-8 path")),
    ];
    let out = deskbridge(&["plan"], &env).await;
    assert!(!out.status.success());
    assert!(
        both(&out).contains(
            "broken-pull.yaml:9: connectors.generic:desk.pull.resources.contacts.pagination \
             (next_link) needs `next`"
        ),
        "{}",
        both(&out)
    );
    std::fs::remove_file(broken).ok();
}

#[tokio::test]
async fn plan_covers_a_further_account_with_its_own_id_attribute() {
    let server = brevo().await;
    let base = format!("{}/v3", server.uri());
    let file = std::env::temp_dir().join(format!("deskbridge-plan-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "connectors:\n  intercom: { enabled: false }\n  intercom:eu-workspace: {}\n",
    )
    .expect("config written");
    let env = [
        ("BREVO_API_KEY", "xkeysib-test"),
        ("BREVO_BASE_URL", base.as_str()),
        ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8 path")),
        ("INTERCOM_EU_WORKSPACE_ACCESS_TOKEN", "ic-token"),
    ];
    let out = deskbridge(&["plan", "--json"], &env).await;
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        document["sources"],
        json!(["intercom:eu-workspace"]),
        "{document}"
    );
    let id = document["attributes"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|a| a["name"] == "INTERCOM_EU_WORKSPACE_ID")
        .cloned()
        .unwrap_or_else(|| panic!("the workspace's id attribute: {document}"));
    assert_eq!(id["used_by"], json!(["intercom:eu-workspace"]), "{id}");
    assert_eq!(id["status"], "missing", "{id}");
    std::fs::remove_file(file).ok();
}

#[tokio::test]
async fn plan_json_has_the_attributes_lists_and_counts() {
    let server = brevo().await;
    let base = format!("{}/v3", server.uri());
    let env = [
        ("BREVO_API_KEY", "xkeysib-test"),
        ("BREVO_BASE_URL", base.as_str()),
        ("INTERCOM_ACCESS_TOKEN", "ic-token"),
    ];
    let out = deskbridge(&["plan", "--json"], &env).await;
    // Attributes are missing: Brevo differs from the mapping.
    assert!(!out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let mut keys: Vec<&str> = document
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "apply",
            "attributes",
            "configuration",
            "file_lines",
            "in_sync",
            "lists",
            "note",
            "sources",
            "summary"
        ]
    );
    assert_eq!(document["sources"], json!(["intercom"]));
    assert_eq!(document["apply"], false);
    assert_eq!(document["in_sync"], false);
    assert_eq!(document["configuration"], Value::Null);
    let attribute = |name: &str| {
        document["attributes"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no attribute {name} in {document}"))
    };
    assert_eq!(
        attribute("INTERCOM_ID"),
        json!({"name": "INTERCOM_ID", "types": ["text"], "used_by": ["intercom"], "status": "ok", "detail": null})
    );
    assert_eq!(
        attribute("FIRSTNAME"),
        json!({"name": "FIRSTNAME", "types": ["text"], "used_by": ["intercom"], "status": "built_in", "detail": null})
    );
    assert_eq!(
        attribute("LAST_ACTIVE"),
        json!({
            "name": "LAST_ACTIVE", "types": ["date"], "used_by": ["intercom"], "status": "missing",
            "detail": "Brevo would silently drop it on import"
        })
    );
    // No all-contacts list configured: the default list, which the first write creates (not
    // drift).
    assert_eq!(
        document["lists"],
        json!([{
            "name": "deskbridge — intercom", "used_by": ["intercom all_contacts (default list)"],
            "status": "pending", "detail": "created on the first write (or now with --apply)"
        }])
    );
    let summary = &document["summary"];
    let attributes = document["attributes"].as_array().expect("a list").len();
    assert_eq!(
        summary["ok"].as_u64().unwrap_or_default() + summary["missing"].as_u64().unwrap_or(0),
        attributes as u64,
        "{document}"
    );
    assert_eq!(
        (
            &summary["wrong_type"],
            &summary["created"],
            &summary["failed"],
            &summary["unchecked"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(0)),
        "{document}"
    );
    assert!(stderr_says(&out, "Brevo does not match the mapping"));
}

fn stderr_says(out: &std::process::Output, what: &str) -> bool {
    String::from_utf8_lossy(&out.stderr).contains(what)
}

#[tokio::test]
async fn replay_dry_run_json_shows_what_would_move() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "cli-replay-json").await;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk));
    queue
        .send(&res.upsert_dlq_url, r#"{"job":1}"#)
        .await
        .expect("sent");
    let env = [
        ("UPSERT_QUEUE_URL", res.upsert_queue_url.as_str()),
        ("UPSERT_DLQ_URL", res.upsert_dlq_url.as_str()),
    ];
    let out = deskbridge(
        &["replay", "--dry-run", "--queue", "upsert", "--json"],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", both(&out));
    let mut document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    // The message id is SQS's.
    let id = document["queues"][0]["would_move"][0]
        .as_object_mut()
        .and_then(|m| m.remove("message_id"));
    assert!(id.is_some_and(|id| id.is_string()), "{document}");
    assert_eq!(
        document,
        json!({
            "dry_run": true,
            "queues": [{
                "queue": "upsert",
                "dlq_url": res.upsert_dlq_url,
                "queue_url": res.upsert_queue_url,
                "messages": 1,
                "would_move": [{"receive_count": 1, "body": "{\"job\":1}", "reason": null}]
            }]
        })
    );
}

#[tokio::test]
async fn closed_sets_of_arguments_name_their_values() {
    let out = deskbridge(&["sync", "freshdesk"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = both(&out);
    assert!(
        said.contains("freshdesk")
            && said.contains(
                "is not a source to sync: zendesk, intercom, gorgias, <helpdesk>:<account> or \
                 generic:<name>"
            ),
        "{said}"
    );
    // Stream names too, every built-in helpdesk's.
    let out = deskbridge(&["sync", "zendesk", "--stream", "ticket"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = both(&out);
    assert!(
        said.contains("[possible values: ")
            && [
                "users",
                "tickets",
                "satisfaction_ratings",
                "contacts",
                "conversations",
                "customers"
            ]
            .iter()
            .all(|s| said.contains(s)),
        "{said}"
    );
    for refused in ["hubspot", "zendesk:Brand 2", "freshdesk:eu"] {
        let out = deskbridge(&["check", refused], &[]).await;
        assert_eq!(out.status.code(), Some(2));
        let said = both(&out);
        assert!(
            said.contains(
                "is not something to check: zendesk, intercom, gorgias, <helpdesk>:<account> \
                 (zendesk:brand2), brevo or all"
            ),
            "{said}"
        );
    }
    let out = deskbridge(&["check", "generic:cinnox"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        both(&out).contains("generic sources only receive webhooks"),
        "{}",
        both(&out)
    );
    // `serve --port` can come from DESKBRIDGE_PORT.
    let out = deskbridge(&["serve", "--help"], &[]).await;
    assert!(
        stdout(&out).contains("[env: DESKBRIDGE_PORT="),
        "{}",
        both(&out)
    );
}

#[tokio::test]
async fn completions_are_printed_for_a_shell() {
    let out = deskbridge(&["completions", "bash"], &[]).await;
    assert!(out.status.success(), "{}", both(&out));
    let script = stdout(&out);
    assert!(script.contains("deskbridge"), "{script}");
    for subcommand in ["status", "replay", "completions"] {
        assert!(script.contains(subcommand), "{subcommand}: {script}");
    }
    let out = deskbridge(&["completions", "tcsh"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn logs_go_to_stderr_without_colour_codes_off_a_terminal() {
    let prefix = common::unique_prefix("cli-logs");
    for env in [
        &[("RUST_LOG", "debug")][..],
        &[("RUST_LOG", "debug"), ("NO_COLOR", "1")][..],
    ] {
        let out = deskbridge(&["bootstrap", "--prefix", &prefix], env).await;
        assert!(out.status.success(), "{}", both(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.is_empty(), "debug logs expected on stderr");
        assert!(!stderr.contains('\u{1b}'), "colour codes in {stderr:?}");
        // stdout holds only the variables to eval.
        let printed = stdout(&out);
        assert!(
            printed.lines().all(|l| l.contains('=') && !l.contains(' ')),
            "{printed}"
        );
    }
}

/// The item under `key` in `table`, as DynamoDB holds it.
async fn item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("read")
        .item
}

#[tokio::test]
async fn migrate_makes_earlier_sent_event_records_permanent_and_nothing_else() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "cli-migrate").await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let expiry = (Utc::now().timestamp() + 86_400).to_string();
    let put = |pk: &str, status: &str, expires: bool| {
        let mut put = client
            .put_item()
            .table_name(&res.table)
            .item("pk", Av::S(pk.into()))
            .item("status", Av::S(status.into()));
        if expires {
            put = put.item("expires_at", Av::N(expiry.clone()));
        }
        if status == "pending" {
            put = put.item("claimed_at", Av::N(Utc::now().timestamp().to_string()));
        }
        put.send()
    };
    // Two sent events as earlier versions left them, one as this version writes it, one event
    // being sent, and a webhook delivery record (which is meant to expire).
    let legacy = [
        "event#zendesk:ticket:1:ticket.created",
        "event#gorgias:ticket:9:ticket.closed:2026-11-02",
    ];
    for key in legacy {
        put(key, "done", true).await.expect("put");
    }
    put("event#zendesk:ticket:2:ticket.created", "done", false)
        .await
        .expect("put");
    put("event#zendesk:ticket:3:ticket.created", "pending", true)
        .await
        .expect("put");
    put("delivery#zendesk#abc", "done", true)
        .await
        .expect("put");

    let env = [("STATE_TABLE", res.table.as_str())];
    let out = deskbridge(&["migrate"], &env).await;
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("2 sent-event record(s) in {} made permanent", res.table)
    );
    for key in legacy {
        let got = item(&client, &res.table, key).await.expect("kept");
        assert!(!got.contains_key("expires_at"), "{key}: {got:?}");
        assert_eq!(got.get("status"), Some(&Av::S("done".into())), "{key}");
    }
    // The claim in flight and the delivery record keep their expiry.
    for key in [
        "event#zendesk:ticket:3:ticket.created",
        "delivery#zendesk#abc",
    ] {
        let got = item(&client, &res.table, key).await.expect("there");
        assert_eq!(got.get("expires_at"), Some(&Av::N(expiry.clone())), "{key}");
    }
    let pending = item(&client, &res.table, "event#zendesk:ticket:3:ticket.created")
        .await
        .expect("there");
    assert_eq!(pending.get("status"), Some(&Av::S("pending".into())));

    // Run again: nothing left to change.
    let again = deskbridge(&["migrate"], &env).await;
    assert!(again.status.success(), "{}", both(&again));
    assert!(
        stdout(&again).starts_with("0 sent-event record(s)"),
        "{}",
        both(&again)
    );
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("deskbridge-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("writing a temporary file");
    path
}

#[tokio::test]
async fn preview_prints_the_brevo_requests_of_a_sample_delivery_under_the_configuration() {
    // The configuration renames the solve event for Zendesk and sends its tickets' requesters to
    // a list: both must show in what would be sent.
    let config = temp_file(
        "preview.yaml",
        "connectors:\n  zendesk:\n    lists: { all_contacts: 12 }\n    event_mapping:\n      ticket.closed: ZD_SOLVED\n",
    );
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/webhook-zendesk-ticket-solved.json"
    );
    let env = [("DESKBRIDGE_CONFIG", config.to_str().expect("utf-8 path"))];
    let out = deskbridge(&["preview", sample, "--json"], &env).await;
    assert!(out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let expected = json!({
        "source": "zendesk",
        "topic": "ticket.solved",
        "outcome": "accepted",
        "records": 1,
        "requests": [
            {"method": "POST", "path": "/v3/contacts", "body": {
                "attributes": {
                    "CSAT_RESPONSES": 0, "FIRSTNAME": "Jane", "LASTNAME": "Doe",
                    "LAST_SUPPORT_CHANNEL": "web_form", "LAST_SUPPORT_DATE": "2025-01-08",
                    "OPEN_TICKETS": 0, "SMS": "+14155550123", "TICKET_COUNT": 1,
                    "ZENDESK_ID": "8447388090494"
                },
                "email": "jane.doe@example.com",
                "listIds": [12],
                "updateEnabled": true
            }},
            {"method": "POST", "path": "/v3/events", "body": {
                "event_date": "2025-01-08T10:12:07Z",
                "event_name": "ZD_SOLVED",
                "event_properties": {
                    "agent_name": "Sam Agent", "channel": "web_form", "priority": "low",
                    "source": "zendesk", "status": "solved", "subject": "Refund for order 1042",
                    "ticket_id": "5158"
                },
                "identifiers": {"email_id": "jane.doe@example.com"}
            }}
        ],
        "counters": "messages=1 contacts=1 contacts_created=1 events=1",
        "notes": []
    });
    assert_eq!(document, expected);

    // The plain form: a heading, each request with its body, the counters.
    let plain = deskbridge(&["preview", sample], &env).await;
    assert!(plain.status.success(), "{}", both(&plain));
    let printed = stdout(&plain);
    assert!(
        printed.starts_with("zendesk ticket.solved: accepted, 1 record(s), 2 Brevo request(s)\n"),
        "{printed}"
    );
    assert!(printed.contains("\nPOST /v3/events\n{\n"), "{printed}");
    assert!(
        printed.contains("\"event_name\": \"ZD_SOLVED\""),
        "{printed}"
    );
    std::fs::remove_file(config).ok();
}

#[tokio::test]
async fn preview_shows_what_each_new_intercom_topic_sends_to_brevo() {
    // The tag list follows the conversation's tags.
    let config = temp_file(
        "preview-intercom.yaml",
        "connectors:\n  intercom:\n    tag_lists: { vip: 40 }\n",
    );
    let env = [("DESKBRIDGE_CONFIG", config.to_str().expect("utf-8 path"))];
    for (file, topic, event_name) in [
        (
            "webhook-intercom-ticket-created.json",
            "ticket.created",
            "SUPPORT_TICKET_OPENED",
        ),
        (
            "webhook-intercom-ticket-resolved.json",
            "ticket.state.updated",
            "SUPPORT_TICKET_RESOLVED",
        ),
        (
            "webhook-intercom-ticket-reopened.json",
            "ticket.state.updated",
            "SUPPORT_TICKET_REOPENED",
        ),
        (
            "webhook-intercom-ticket-rated.json",
            "ticket.rating.provided",
            "CSAT_SUBMITTED",
        ),
        (
            "webhook-intercom-conversation-snoozed.json",
            "conversation.admin.snoozed",
            "SUPPORT_TICKET_SNOOZED",
        ),
        (
            "webhook-intercom-fin-resolved.json",
            "conversation.operator.replied",
            "SUPPORT_AI_RESOLVED",
        ),
    ] {
        let sample = format!("{}/events/{file}", env!("CARGO_MANIFEST_DIR"));
        let out = deskbridge(&["preview", &sample, "--json"], &env).await;
        assert!(out.status.success(), "{file}: {}", both(&out));
        let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert_eq!(document["topic"], topic, "{file}");
        assert_eq!(document["outcome"], "accepted", "{file}");
        let requests = document["requests"].as_array().expect("requests");
        let event = requests
            .iter()
            .find(|r| r["path"] == "/v3/events")
            .unwrap_or_else(|| panic!("{file}: an event in {document}"));
        assert_eq!(event["body"]["event_name"], event_name, "{file}");
        assert_eq!(
            event["body"]["event_properties"]["source"], "intercom",
            "{file}"
        );
        let contact = requests
            .iter()
            .find(|r| r["path"] == "/v3/contacts")
            .unwrap_or_else(|| panic!("{file}: a contact in {document}"));
        // The conversations carry the `vip` tag: their contact joins its list.
        let conversation = file.contains("conversation") || file.contains("fin");
        assert_eq!(
            contact["body"]["listIds"]
                .as_array()
                .is_some_and(|l| l.contains(&json!(40))),
            conversation,
            "{file}: {contact}"
        );
    }
    std::fs::remove_file(config).ok();
}

#[tokio::test]
async fn preview_reads_a_bare_body_names_what_it_ignores_and_refuses_what_it_cannot_read() {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/webhook-intercom-contact-created.json"
        ))
        .expect("sample"),
    )
    .expect("JSON sample");
    let body = sample["body"].as_str().expect("a body");

    // A bare body needs its source…
    let bare = temp_file("bare.json", body);
    let out = deskbridge(&["preview", bare.to_str().expect("utf-8")], &[]).await;
    assert!(!out.status.success());
    assert!(both(&out).contains("needs --source"), "{}", both(&out));
    // …and with it gives what the request file gives.
    let out = deskbridge(
        &[
            "preview",
            bare.to_str().expect("utf-8"),
            "--source",
            "intercom",
            "--json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(document["topic"], "contact.user.created");
    let paths: Vec<&str> = document["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    assert_eq!(paths, ["/v3/contacts", "/v3/events"]);
    assert_eq!(
        document["requests"][0]["body"]["attributes"]["INTERCOM_ID"],
        "6762f0d91bb69f9f2193bb7e"
    );

    // A topic deskbridge does not act on: said, nothing would be sent.
    let ignored = temp_file(
        "ignored.json",
        r#"{"type":"notification_event","topic":"ping","id":"notif_1","created_at":1736330000,"data":{"item":{}}}"#,
    );
    let out = deskbridge(
        &[
            "preview",
            ignored.to_str().expect("utf-8"),
            "--source",
            "intercom",
            "--json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", both(&out));
    let document: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(document["outcome"], "ignored");
    assert_eq!(document["requests"], json!([]));

    // A body the parser refuses: the webhook's 400 reason, non-zero exit.
    let broken = temp_file("broken.json", r#"{"topic": 5}"#);
    let out = deskbridge(
        &[
            "preview",
            broken.to_str().expect("utf-8"),
            "--source",
            "zendesk",
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(both(&out).contains("would answer 400"), "{}", both(&out));
    for file in [bare, ignored, broken] {
        std::fs::remove_file(file).ok();
    }
}
