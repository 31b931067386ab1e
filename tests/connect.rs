//! `deskbridge connect brevo` and `check brevo` against a deployed stack (CloudFormation and
//! Secrets Manager in moto) and a wiremock Brevo speaking `/v3/webhooks`' documented shapes.

mod common;

use common::stack::{create_stack, deskbridge_cli};
use deskbridge_shared::testkit::brevo::{mount_account, mount_attributes};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BASE: &str = "https://example.execute-api.us-east-1.amazonaws.com";
const TOKEN: &str = "brevo-webhook-token-of-this-stack";

/// A stack whose secret holds the Brevo key (pointing at `brevo`) and the webhook token.
async fn stack_with_secret(brevo: &MockServer, token: Option<&str>) -> String {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "connect").await;
    let mut secret = json!({
        "BREVO_API_KEY": "xkeysib-test",
        "BREVO_BASE_URL": format!("{}/v3", brevo.uri()),
    });
    if let Some(token) = token {
        secret["BREVO_WEBHOOK_TOKEN"] = Value::from(token);
    }
    let arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(common::unique_prefix("connect-secret"))
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("secret created in moto")
        .arn()
        .expect("an ARN")
        .to_string();
    create_stack(&sdk, &res, &[("SecretArn", &arn)], &[]).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn requests(server: &MockServer, verb: &str, at: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == at)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn connect_brevo_registers_the_webhook_once_and_check_brevo_finds_it() {
    let brevo = MockServer::start().await;
    mount_account(&brevo).await;
    mount_attributes(&brevo, &[("FIRSTNAME", "text")]).await;
    let url = format!("{BASE}/webhooks/brevo");
    // Brevo's listing: empty until the webhook exists (the first check and the first connect
    // read it), then the webhook as created.
    Mock::given(method("GET"))
        .and(path("/v3/webhooks"))
        .and(query_param("type", "marketing"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"webhooks": []})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&brevo)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/webhooks"))
        .and(query_param("type", "marketing"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"webhooks": [
                {"id": 4, "url": "https://elsewhere.example/hook", "events": ["opened"],
                 "type": "marketing", "description": "another tool"},
                {"id": 41, "url": url, "events": ["unsubscribed", "hardBounce", "spam"],
                 "type": "marketing", "description": "deskbridge",
                 "createdAt": "2026-12-07T21:00:00.000Z", "modifiedAt": "2026-12-07T21:00:00.000Z"},
            ]})),
        )
        .with_priority(2)
        .mount(&brevo)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/webhooks"))
        .and(header("api-key", "xkeysib-test"))
        .and(body_partial_json(json!({"type": "marketing", "url": url})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 41})))
        .mount(&brevo)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v3/webhooks/41"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&brevo)
        .await;
    let stack = stack_with_secret(&brevo, Some(TOKEN)).await;

    // Before: `check brevo` fails and says what to run.
    let out = deskbridge_cli(&["check", "brevo", "--stack-name", &stack], &[]).await;
    let printed = text(&out.stdout);
    assert!(!out.status.success(), "{printed}");
    assert!(
        printed.contains("✗ brevo: no marketing webhook posts to")
            && printed.contains("deskbridge connect brevo"),
        "{printed}"
    );

    // First run: created, with the route, the events and the bearer token.
    let out = deskbridge_cli(&["connect", "brevo", "--stack-name", &stack], &[]).await;
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}{}", text(&out.stderr));
    assert!(printed.contains("created Brevo webhook 41"), "{printed}");
    let created = requests(&brevo, "POST", "/v3/webhooks").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0],
        json!({
            "type": "marketing",
            "url": url,
            "events": ["unsubscribed", "hardBounce", "spam"],
            "auth": {"type": "bearer", "token": TOKEN},
            "description": created[0]["description"],
        })
    );

    // Second run: the same webhook is updated, not a second one created.
    let out = deskbridge_cli(
        &[
            "connect",
            "brevo",
            "--stack-name",
            &stack,
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}{}", text(&out.stderr));
    let answer: Value = serde_json::from_str(&printed).expect("one JSON document");
    assert_eq!(answer["result"], "updated", "{printed}");
    assert_eq!(answer["id"], 41, "{printed}");
    assert_eq!(requests(&brevo, "POST", "/v3/webhooks").await.len(), 1);
    let updated = requests(&brevo, "PUT", "/v3/webhooks/41").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(
        updated[0]["auth"],
        json!({"type": "bearer", "token": TOKEN})
    );
    assert!(updated[0].get("type").is_none(), "{}", updated[0]);

    // After: `check brevo` passes with the webhook's line.
    let out = deskbridge_cli(&["check", "brevo", "--stack-name", &stack], &[]).await;
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}{}", text(&out.stderr));
    assert!(
        printed.contains(&format!(
            "✓ brevo: webhook 41 posts unsubscribed, hardBounce, spam to {url}"
        )),
        "{printed}"
    );
}

#[tokio::test]
async fn connect_brevo_needs_the_webhook_token_and_a_base_url() {
    let brevo = MockServer::start().await;
    let stack = stack_with_secret(&brevo, None).await;
    let out = deskbridge_cli(&["connect", "brevo", "--stack-name", &stack], &[]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("BREVO_WEBHOOK_TOKEN is not set"),
        "{}",
        text(&out.stderr)
    );

    // No stack and no --url: the base URL is unknown, said before anything is sent.
    let out = deskbridge_cli(
        &["connect", "brevo"],
        &[
            ("BREVO_API_KEY", "xkeysib-test"),
            ("BREVO_WEBHOOK_TOKEN", TOKEN),
            ("BREVO_BASE_URL", &format!("{}/v3", brevo.uri())),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--url"), "{}", text(&out.stderr));
    let sent = brevo.received_requests().await.expect("recorded");
    assert!(sent.is_empty(), "nothing sent to Brevo: {sent:?}");
}
