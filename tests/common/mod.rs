//! Test harness: a moto server on loopback (DynamoDB, SQS) shared by the tests of one binary,
//! fresh resources per test, and a wiremock Brevo.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::Credentials;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::infra::{self, Bootstrapped, Names};

pub mod runner;
pub mod stack;

pub const ZENDESK_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";
pub const INTERCOM_SECRET: &str = "deskbridge-test-intercom-secret";
pub const GORGIAS_TOKEN: &str = "deskbridge-test-gorgias-token";
pub const CINNOX_TOKEN: &str = "deskbridge-test-cinnox-token";
/// The README's CINNOX-via-Zapier configuration file (`generic:cinnox`, bearer token).
pub const CINNOX_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cinnox-zapier.yaml");

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// URL of the moto server for this test binary: `DESKBRIDGE_TEST_MOTO_URL` when the test command
/// started one, else one started here (stopped by a watchdog when this process exits).
pub fn moto_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DESKBRIDGE_TEST_MOTO_URL") {
            return url;
        }
        let port = free_port();
        let bin = moto_binary();
        let script = format!(
            "'{bin}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & child=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $child",
            bin = bin.display(),
            parent = std::process::id()
        );
        // The watchdog shell outlives this call on purpose; it reaps moto when the tests end.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting moto_server (run scripts/test.sh, which installs moto[server] into .venv)");
        std::mem::forget(watchdog);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start at {url}; install it with scripts/test.sh or pip install 'moto[server]'"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        url
    })
}

/// SDK configuration pointing at moto.
pub async fn sdk() -> aws_config::SdkConfig {
    sdk_loader(moto_url()).load().await
}

/// SDK configuration for `endpoint` (moto, or a proxy in front of it) with the test
/// credentials; callers may add to it before loading.
pub fn sdk_loader(endpoint: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "deskbridge-tests",
        ))
}

/// A unique resource prefix for one test.
pub fn unique_prefix(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fresh table and queues in moto.
pub async fn bootstrap(sdk: &aws_config::SdkConfig, name: &str) -> Bootstrapped {
    infra::bootstrap(
        &aws_sdk_dynamodb::Client::new(sdk),
        &aws_sdk_sqs::Client::new(sdk),
        &Names::new(&unique_prefix(name)),
    )
    .await
    .expect("bootstrap against moto")
}

/// Settings for a local run against `resources`, with the test secrets and Brevo at `brevo_url`.
pub fn settings(
    resources: &Bootstrapped,
    brevo_url: Option<&str>,
    extra: &[(&str, &str)],
) -> Settings {
    let mut pairs: Vec<(String, String)> = vec![
        ("ZENDESK_WEBHOOK_SECRET".into(), ZENDESK_SECRET.into()),
        ("INTERCOM_CLIENT_SECRET".into(), INTERCOM_SECRET.into()),
        ("GORGIAS_WEBHOOK_TOKEN".into(), GORGIAS_TOKEN.into()),
        ("STATE_TABLE".into(), resources.table.clone()),
        (
            "UPSERT_QUEUE_URL".into(),
            resources.upsert_queue_url.clone(),
        ),
        (
            "BACKFILL_QUEUE_URL".into(),
            resources.backfill_queue_url.clone(),
        ),
        ("SYNC_QUEUE_URL".into(), resources.sync_queue_url.clone()),
        ("UPSERT_DLQ_URL".into(), resources.upsert_dlq_url.clone()),
        ("SYNC_DLQ_URL".into(), resources.sync_dlq_url.clone()),
    ];
    if let Some(url) = brevo_url {
        pairs.push(("BREVO_API_KEY".into(), "test-brevo-key".into()));
        pairs.push(("BREVO_BASE_URL".into(), format!("{url}/v3")));
    }
    for (k, v) in extra {
        pairs.push(((*k).into(), (*v).into()));
    }
    Settings::from_vars(&Vars::from_pairs(pairs)).expect("valid test settings")
}

/// Polls `check` every 100 ms until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Queues a start request for the Intercom contacts stream, as the schedule or `deskbridge sync`
/// does.
pub async fn request_intercom_sync(sdk: &aws_config::SdkConfig, res: &Bootstrapped, full: bool) {
    use deskbridge_shared::queue::Queue;
    let msg = deskbridge_sync::SyncMessage::Start {
        source: Some(deskbridge_shared::model::Source::Intercom),
        stream: Some("contacts".into()),
        full,
        since: None,
        page_size: None,
    };
    deskbridge_shared::queue::SqsQueue::new(aws_sdk_sqs::Client::new(sdk))
        .send(
            &res.sync_queue_url,
            &serde_json::to_string(&msg).expect("json"),
        )
        .await
        .expect("start request queued");
}

/// What DynamoDB's TTL sweep does once `now` (epoch seconds) is past an item's `expires_at`:
/// deletes it. `i64::MAX` plays the sweep after every expiry has passed. Returns how many went.
pub async fn sweep_expired(client: &aws_sdk_dynamodb::Client, table: &str, now: i64) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut swept = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("#ttl < :now")
            .expression_attribute_names("#ttl", "expires_at")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .projection_expression("pk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scanning the state table");
        for item in page.items.unwrap_or_default() {
            if let Some(pk) = item.get("pk") {
                client
                    .delete_item()
                    .table_name(table)
                    .key("pk", pk.clone())
                    .send()
                    .await
                    .expect("sweeping an expired item");
                swept += 1;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return swept;
        }
    }
}
