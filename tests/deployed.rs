//! The deployed stack, without AWS: the three Lambda binaries run under a local Lambda Runtime
//! API with exactly the environment template.yaml gives them (its `!Ref`s resolved to moto
//! resources and wiremock vendors), their configuration delivered as the deployment delivers it
//! (`deskbridge config push` into the Configuration secret), and the queues fed to them as
//! Lambda's SQS event source mappings do (batches, `ReportBatchItemFailures`). A generic-source
//! webhook with a custom mapping and a sync page go through to the Brevo fake. When the template
//! and the code disagree on a variable, a function fails its init here.
//!
//! The binaries are the ones the test build made (`cargo test --workspace` builds them for the
//! functions' own integration tests); this test asks cargo to bring them up to date first.

mod common;

use deskbridge_shared::infra::Bootstrapped;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use wiremock::MockServer;

const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------------
// template.yaml, read as CloudFormation reads it for the parts the functions see

/// The template's text.
fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("template.yaml")
}

/// The lines of the top-level block `header` (e.g. `  WebhookFunction:`), without the header.
fn block<'a>(lines: &[&'a str], header: &str) -> Vec<&'a str> {
    let start = lines
        .iter()
        .position(|l| *l == header)
        .unwrap_or_else(|| panic!("`{header}` in template.yaml"));
    let indent = header.len() - header.trim_start().len();
    lines[start + 1..]
        .iter()
        .take_while(|l| {
            l.trim().is_empty()
                || l.len() - l.trim_start().len() > indent
                || l.trim_start().starts_with('#')
        })
        .copied()
        .collect()
}

/// `key: value` entries directly under the first line that reads `under` (trimmed), skipping
/// comments: e.g. the `Variables:` of an `Environment:`.
fn entries(lines: &[&str], under: &str) -> Vec<(String, String)> {
    let Some(start) = lines.iter().position(|l| l.trim() == under) else {
        return Vec::new();
    };
    let indent = lines[start].len() - lines[start].trim_start().len();
    lines[start + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .take_while(|l| l.len() - l.trim_start().len() > indent)
        .map(|l| {
            let (k, v) = l
                .trim()
                .split_once(':')
                .unwrap_or_else(|| panic!("`key: value` in template.yaml: {l}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// The value of `key:` in `lines` (the first, trimmed).
fn scalar(lines: &[&str], key: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        l.trim()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// A template value as CloudFormation gives it: `!Ref <Parameter>` becomes the parameter's
/// default.
fn template_value(lines: &[&str], value: &str) -> String {
    match value.strip_prefix("!Ref ") {
        Some(name) => scalar(&block(lines, &format!("  {name}:")), "Default")
            .unwrap_or_else(|| panic!("parameter {name} has a default")),
        None => value.to_string(),
    }
}

/// What a function of the template is, as far as its process sees it.
struct FunctionSpec {
    binary: String,
    timeout: u64,
    memory: String,
    /// Globals' variables overlaid by the function's own, unresolved.
    env: Vec<(String, String)>,
    log_level: String,
}

/// Reads `logical_id`'s function from the template.
fn function_spec(text: &str, logical_id: &str) -> FunctionSpec {
    let lines: Vec<&str> = text.lines().collect();
    let globals = block(&lines, "Globals:");
    let function = block(&lines, &format!("  {logical_id}:"));
    let mut env: BTreeMap<String, String> = entries(&globals, "Variables:").into_iter().collect();
    env.extend(entries(&function, "Variables:"));
    FunctionSpec {
        binary: scalar(&function, "Binary").expect("BuildProperties.Binary"),
        timeout: scalar(&function, "Timeout")
            .and_then(|t| t.parse().ok())
            .expect("Timeout"),
        memory: scalar(&function, "MemorySize")
            .or_else(|| scalar(&globals, "MemorySize"))
            .expect("MemorySize"),
        env: env.into_iter().collect(),
        log_level: template_value(
            &lines,
            &scalar(&globals, "ApplicationLogLevel").expect("ApplicationLogLevel"),
        ),
    }
}

/// Parameter defaults of the template.
fn parameter_defaults(text: &str) -> HashMap<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let params = block(&lines, "Parameters:");
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for line in params {
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && line.trim_end().ends_with(':') {
            current = Some(line.trim().trim_end_matches(':').to_string());
        } else if let (Some(name), Some(v)) = (
            &current,
            line.trim().strip_prefix("Default:").map(str::trim),
        ) {
            out.insert(name.clone(), v.trim_matches('"').to_string());
        }
    }
    out
}

/// Resolves a template value: a literal, `!Ref Name` or `!Sub "…${Name}…"`, with `refs` for
/// resources and parameters. Anything else fails the test: the stand-in must learn it first.
/// Every `!Ref` the functions' environment holds, resolved to its local stand-in: the template's
/// parameter defaults, then the resources bootstrap created and the two secrets.
fn stand_ins(
    template: &str,
    res: &Bootstrapped,
    secrets_arn: &str,
    config_arn: &str,
) -> HashMap<String, String> {
    let mut refs = parameter_defaults(template);
    for (logical_id, value) in [
        ("StateTable", res.table.as_str()),
        ("UpsertQueue", res.upsert_queue_url.as_str()),
        ("UpsertDeadLetterQueue", res.upsert_dlq_url.as_str()),
        ("BackfillQueue", res.backfill_queue_url.as_str()),
        ("SyncQueue", res.sync_queue_url.as_str()),
        ("SyncDeadLetterQueue", res.sync_dlq_url.as_str()),
        ("Secrets", secrets_arn),
        ("Configuration", config_arn),
    ] {
        refs.insert(logical_id.into(), value.to_string());
    }
    refs
}

fn resolve(value: &str, refs: &HashMap<String, String>) -> String {
    let lookup = |name: &str| {
        refs.get(name).cloned().unwrap_or_else(|| {
            panic!("template.yaml refers to `{name}`, which this test does not stand in for")
        })
    };
    if let Some(name) = value.strip_prefix("!Ref ") {
        return lookup(name.trim());
    }
    if let Some(text) = value.strip_prefix("!Sub ") {
        let mut text = text.trim().trim_matches('"').to_string();
        while let Some(start) = text.find("${") {
            let end = text[start..].find('}').expect("closing brace in !Sub") + start;
            let value = lookup(&text[start + 2..end]);
            text.replace_range(start..=end, &value);
        }
        return text;
    }
    assert!(
        !value.starts_with('!'),
        "template.yaml uses `{value}`, which this test cannot resolve"
    );
    value.trim_matches('"').to_string()
}

// ---------------------------------------------------------------------------------------------
// A local Lambda Runtime API (2018-06-01): one per function process

type Pending = (String, Value, oneshot::Sender<Outcome>);

/// How an invocation ended.
#[derive(Debug)]
enum Outcome {
    Response(Value),
    Error(String),
}

#[derive(Clone)]
struct RuntimeApi {
    next: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    init_error: Arc<Mutex<Option<String>>>,
    function_arn: String,
    timeout: Duration,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let (id, event, done) = api
        .next
        .lock()
        .await
        .recv()
        .await
        .expect("the test keeps the sender");
    api.waiting.lock().expect("lock").insert(id.clone(), done);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + api.timeout.as_millis();
    let mut headers = HeaderMap::new();
    let set = |headers: &mut HeaderMap, name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    };
    set(&mut headers, "lambda-runtime-aws-request-id", id);
    set(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline.to_string(),
    );
    set(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        api.function_arn.clone(),
    );
    set(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-67890abc-0123456789abcdef01234567;Parent=1234567890abcdef;Sampled=0".into(),
    );
    (headers, event.to_string())
}

async fn invocation_response(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    finish(
        &api,
        &id,
        Outcome::Response(serde_json::from_str(&body).unwrap_or(Value::Null)),
    )
}

async fn invocation_error(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    finish(&api, &id, Outcome::Error(body))
}

fn finish(api: &RuntimeApi, id: &str, outcome: Outcome) -> StatusCode {
    match api.waiting.lock().expect("lock").remove(id) {
        Some(done) => {
            let _ = done.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    *api.init_error.lock().expect("lock") = Some(body);
    StatusCode::ACCEPTED
}

/// One function process under its runtime API.
struct Function {
    name: String,
    invoke: mpsc::UnboundedSender<Pending>,
    api: RuntimeApi,
    child: Child,
    log: PathBuf,
    invocations: u32,
}

impl Function {
    /// Starts `spec`'s binary with the template's environment (`env`, resolved) and what Lambda
    /// itself sets for a process.
    async fn start(logical_id: &str, spec: &FunctionSpec, env: &[(String, String)]) -> Function {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = format!("deskbridge-{logical_id}");
        let api = RuntimeApi {
            next: Arc::new(tokio::sync::Mutex::new(rx)),
            waiting: Arc::default(),
            init_error: Arc::default(),
            function_arn: format!("arn:aws:lambda:{REGION}:123456789012:function:{name}"),
            timeout: Duration::from_secs(spec.timeout),
        };
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let log = std::env::temp_dir().join(format!("{}.log", common::unique_prefix(logical_id)));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary(&spec.binary))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // What Lambda sets in every execution environment.
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &spec.memory)
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", &spec.log_level)
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/12/04/[$LATEST]0123456789abcdef",
            )
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            // The one stand-in: every AWS call goes to moto instead of AWS.
            .env("AWS_ENDPOINT_URL", common::moto_url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", spec.binary));
        Function {
            name,
            invoke: tx,
            api,
            child,
            log,
            invocations: 0,
        }
    }

    /// Its log lines so far.
    fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Hands it `event` and waits for the outcome, failing with its logs when it died, reported
    /// an init error or took longer than its timeout.
    async fn invoke(&mut self, event: Value) -> Outcome {
        self.invocations += 1;
        let id = format!("{}-{:04}", self.name, self.invocations);
        let (done, outcome) = oneshot::channel();
        self.invoke
            .send((id, event, done))
            .expect("runtime API alive");
        let deadline = tokio::time::Instant::now() + self.api.timeout + Duration::from_secs(5);
        let mut outcome = outcome;
        loop {
            if let Some(error) = self.api.init_error.lock().expect("lock").clone() {
                panic!("{} failed its init: {error}\n{}", self.name, self.logs());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.logs());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not answer within its timeout:\n{}",
                self.name,
                self.logs()
            );
            match tokio::time::timeout(Duration::from_millis(100), &mut outcome).await {
                Ok(Ok(outcome)) => return outcome,
                Ok(Err(_)) => panic!("{}: invocation dropped", self.name),
                Err(_) => continue,
            }
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The path of the function binary `name`, brought up to date by the same cargo command as the
/// test suite's build (so nothing is rebuilt with other features).
fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["test", "--workspace", "--no-run", "--locked", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .status()
            .expect("running cargo");
        assert!(status.success(), "building the function binaries");
    });
    // target/debug/deps/deployed-… → target/debug/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} (built by cargo test --workspace)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------------
// Lambda's SQS event source mapping, as the template declares it for each queue

/// Receives a batch from `queue_url` (moto), invokes `function` with it as Lambda does, and
/// deletes the messages the function did not report failed. The number of messages handed over.
async fn poll_once(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    function: &mut Function,
    batch_size: i32,
) -> usize {
    let Some((messages, event)) = receive_event(sqs, queue_url, batch_size).await else {
        return 0;
    };
    let outcome = function.invoke(event).await;
    settle(sqs, queue_url, &messages, outcome).await;
    messages.len()
}

/// Receives up to `batch_size` messages from `queue_url` and builds the SQS event Lambda
/// would invoke the function with; None when the queue had nothing visible.
async fn receive_event(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch_size: i32,
) -> Option<(Vec<aws_sdk_sqs::types::Message>, Value)> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(batch_size)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(0)
        .send()
        .await
        .expect("receive");
    let messages = out.messages().to_vec();
    if messages.is_empty() {
        return None;
    }
    let arn = format!(
        "arn:aws:sqs:{REGION}:123456789012:{}",
        queue_url.rsplit('/').next().unwrap_or_default()
    );
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                json!({
                                    "stringValue": v.string_value(),
                                    "stringListValues": [],
                                    "binaryListValues": [],
                                    "dataType": v.data_type(),
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    Some((messages, json!({ "Records": records })))
}

/// What Lambda does with a batch once its invocation ended: deletes the messages the function
/// did not report failed.
async fn settle(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[aws_sdk_sqs::types::Message],
    outcome: Outcome,
) {
    let failed: Vec<String> = match outcome {
        Outcome::Response(answer) => answer["batchItemFailures"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        // A failed invocation: every message comes back after its visibility timeout.
        Outcome::Error(_) => messages
            .iter()
            .filter_map(|m| m.message_id().map(str::to_string))
            .collect(),
    };
    for m in messages {
        if m.message_id()
            .is_some_and(|id| failed.iter().any(|f| f == id))
        {
            continue;
        }
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .expect("delete");
    }
}

/// Messages visible, in flight and delayed in `url`.
async fn backlog(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(sqs, url)
        .await
        .unwrap_or(u64::MAX)
}

/// The template's `BatchSize` of the event source mapping named `logical_id`.
fn batch_size(text: &str, logical_id: &str) -> i32 {
    let lines: Vec<&str> = text.lines().collect();
    scalar(&block(&lines, &format!("  {logical_id}:")), "BatchSize")
        .and_then(|b| b.parse().ok())
        .unwrap_or(10)
}

// ---------------------------------------------------------------------------------------------
// The vendors

/// The stack as deployed, against moto: its two secrets (the credentials, and the
/// configuration `deskbridge config push` put in its secret) and every `!Ref` of the functions'
/// environment resolved to its stand-in.
struct Deployment {
    template: String,
    refs: HashMap<String, String>,
}

impl Deployment {
    async fn new(
        sdk: &aws_config::SdkConfig,
        res: &Bootstrapped,
        name: &str,
        credentials: Value,
        configuration: &str,
        brevo: &MockServer,
    ) -> Deployment {
        // The stack's two secrets, as `sam deploy` creates them and the README fills them.
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let credentials = secrets
            .create_secret()
            .name(common::unique_prefix(&format!("{name}-credentials")))
            .secret_string(credentials.to_string())
            .send()
            .await
            .expect("credentials secret");
        let template = template();
        let placeholder = resolve(
            &scalar(
                &block(&template.lines().collect::<Vec<_>>(), "  Configuration:"),
                "SecretString",
            )
            .expect("Configuration's SecretString"),
            &HashMap::new(),
        )
        .replace("\\n", "\n");
        let secret = secrets
            .create_secret()
            .name(common::unique_prefix(&format!("{name}-configuration")))
            .secret_string(&placeholder)
            .send()
            .await
            .expect("configuration secret");
        let config_arn = secret.arn().expect("arn").to_string();

        // The configuration travels as it does deployed: `deskbridge config push`.
        let file = std::env::temp_dir().join(format!("{}.yaml", common::unique_prefix(name)));
        std::fs::write(&file, configuration).expect("config file");
        let pushed = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
            .args(["config", "push", file.to_str().expect("utf-8")])
            .env_clear()
            .env("DESKBRIDGE_CONFIG", format!("secretsmanager:{config_arn}"))
            .env("AWS_ENDPOINT_URL", common::moto_url())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("deskbridge config push");
        let _ = std::fs::remove_file(&file);
        assert!(pushed.status.success(), "{pushed:?}");

        let mut refs = stand_ins(&template, res, credentials.arn().expect("arn"), &config_arn);
        refs.insert("BrevoBaseUrl".into(), format!("{}/v3", brevo.uri()));
        Deployment { template, refs }
    }

    /// Starts the function `logical_id` with the template's environment: a new execution
    /// environment, as Lambda starts one.
    async fn start(&self, logical_id: &'static str) -> Function {
        let spec = function_spec(&self.template, logical_id);
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), resolve(v, &self.refs)))
            .collect();
        Function::start(logical_id, &spec, &env).await
    }
}

/// Brevo accepting writes (`testkit::brevo::mount_writes`); every other route answers 404.
async fn brevo() -> MockServer {
    let brevo = MockServer::start().await;
    deskbridge_shared::testkit::brevo::mount_writes(&brevo).await;
    brevo
}

/// The deployed configuration: the CINNOX generic source with an event name of its own, and
/// Intercom's contacts stream (its conversations stream off) with a custom attribute.
fn deployed_configuration() -> String {
    let cinnox = std::fs::read_to_string(common::CINNOX_CONFIG).expect("CINNOX example");
    let intercom = "connectors:
  intercom:
    sync: { contacts: true, conversations: false }
    field_mapping:
      id: INTERCOM_ID
      email: email
      name: FIRSTNAME
      custom_attributes.plan_tier: PLAN_TIER
";
    let text = cinnox.replacen("connectors:\n", intercom, 1);
    assert_ne!(
        text, cinnox,
        "the CINNOX example starts its connectors with `connectors:`"
    );
    format!("{text}event_mapping:\n  ticket.created: CINNOX_ENQUIRY_OPENED\n")
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_as_the_template_declares_it_delivers_a_webhook_and_a_sync_page_to_brevo() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "deployed").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let brevo = brevo().await;
    let intercom = MockServer::start().await;
    let contacts = deskbridge_shared::helpdesk::intercom::fake::ContactSearch::default();
    let now = chrono::Utc::now().timestamp();
    contacts.set(vec![json!({
        "type": "contact", "id": "c-deployed-1", "role": "user",
        "email": "ada@example.com", "name": "Ada Lovelace",
        "created_at": now - 86_400, "updated_at": now - 3_600, "signed_up_at": now - 86_400,
        "custom_attributes": {"plan_tier": "enterprise"}
    })]);
    contacts.mount(&intercom).await;

    let text = deployed_configuration();
    let credentials = json!({
        "BREVO_API_KEY": "xkeysib-deployed",
        "CINNOX_WEBHOOK_TOKEN": common::CINNOX_TOKEN,
        "INTERCOM_ACCESS_TOKEN": "intercom-token",
        // The Intercom API's address: the fake (deployed: the default, api.intercom.io).
        "INTERCOM_BASE_URL": intercom.uri(),
    });
    let stack = Deployment::new(&sdk, &res, "deployed", credentials, &text, &brevo).await;
    let template = &stack.template;
    let start = |logical_id: &'static str| stack.start(logical_id);
    let mut webhook = start("WebhookFunction").await;
    let mut upsert = start("UpsertFunction").await;
    let mut backfill = start("BackfillFunction").await;
    let mut sync = start("SyncFunction").await;
    let upsert_batch = batch_size(template, "UpsertFunctionJobs");
    let backfill_batch = batch_size(template, "BackfillFunctionJobs");
    let sync_batch = batch_size(template, "SyncFunctionPages");

    // 1. A CINNOX delivery through the API: accepted and queued.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/webhook-generic-cinnox-enquiry-new.json"
        ))
        .expect("sample"),
    )
    .expect("json");
    match webhook.invoke(event).await {
        Outcome::Response(answer) => assert!(
            matches!(answer["statusCode"].as_u64(), Some(200 | 202)),
            "{answer}\n{}",
            webhook.logs()
        ),
        Outcome::Error(e) => panic!("webhook failed: {e}\n{}", webhook.logs()),
    }

    // 2. The schedule starts every enabled stream: Intercom contacts only.
    let schedule: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/schedule.json"))
            .expect("schedule event"),
    )
    .expect("json");
    match sync.invoke(schedule).await {
        Outcome::Response(_) => {}
        Outcome::Error(e) => panic!("sync schedule failed: {e}\n{}", sync.logs()),
    }

    // 3. The event source mappings run until the queues are empty: the webhook's job on the
    // upsert queue, the sync's records on the backfill lane.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut backfilled = 0;
    loop {
        let drained = poll_once(&sqs, &res.backfill_queue_url, &mut backfill, backfill_batch).await;
        backfilled += drained;
        let moved = poll_once(&sqs, &res.sync_queue_url, &mut sync, sync_batch).await
            + poll_once(&sqs, &res.upsert_queue_url, &mut upsert, upsert_batch).await
            + drained;
        if moved == 0
            && backlog(&sqs, &res.sync_queue_url).await == 0
            && backlog(&sqs, &res.upsert_queue_url).await == 0
            && backlog(&sqs, &res.backfill_queue_url).await == 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queues did not drain:\nsync:\n{}\nupsert:\n{}\nbackfill:\n{}",
            sync.logs(),
            upsert.logs(),
            backfill.logs()
        );
        if moved == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Each function read the pushed configuration from its secret.
    let fingerprint = deskbridge_shared::config::file::fingerprint(&text);
    assert!(backfilled > 0, "the sync's records took the backfill lane");
    for f in [&webhook, &upsert, &backfill, &sync] {
        let logs = f.logs();
        assert!(
            logs.contains(&format!("fingerprint {fingerprint}")),
            "{} did not log the pushed configuration:\n{logs}",
            f.name
        );
    }

    // What Brevo received: the CINNOX contact with its custom attribute and the event under the
    // configured name; the Intercom contact with PLAN_TIER from its custom attribute.
    let requests = brevo.received_requests().await.unwrap_or_default();
    let bodies = |p: &str| deskbridge_shared::testkit::brevo::requests_to(&requests, p);
    let upserted: Vec<Value> = bodies("/v3/contacts")
        .into_iter()
        .chain(
            bodies("/v3/contacts/import")
                .into_iter()
                .flat_map(|b| b["jsonBody"].as_array().cloned().unwrap_or_default()),
        )
        .collect();
    let all = Value::Array(upserted.clone()).to_string();
    assert!(all.contains("CINNOX_ID"), "CINNOX contact: {all}");
    assert!(
        upserted
            .iter()
            .any(|c| c.to_string().contains("ada@example.com")
                && c.to_string().contains("enterprise")),
        "Intercom contact with PLAN_TIER: {all}"
    );
    assert!(all.contains("PLAN_TIER"), "{all}");
    let events: Vec<Value> = bodies("/v3/events")
        .into_iter()
        .chain(
            bodies("/v3/events/batch")
                .into_iter()
                .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default()),
        )
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event_name"] == "CINNOX_ENQUIRY_OPENED"),
        "{events:?}"
    );
    for r in &requests {
        assert_eq!(
            r.headers.get("api-key").and_then(|v| v.to_str().ok()),
            Some("xkeysib-deployed"),
            "every Brevo request carries the secret's key"
        );
    }
    // Nothing was dead-lettered.
    assert_eq!(backlog(&sqs, &res.upsert_dlq_url).await, 0);
    assert_eq!(backlog(&sqs, &res.sync_dlq_url).await, 0);
}

/// The email addresses in Brevo's contact writes (single upserts and imports), one entry per
/// time a contact was written.
fn written_emails(requests: &[wiremock::Request]) -> Vec<String> {
    let bodies = |p: &str| deskbridge_shared::testkit::brevo::requests_to(requests, p);
    bodies("/v3/contacts")
        .into_iter()
        .chain(
            bodies("/v3/contacts/import")
                .into_iter()
                .flat_map(|b| b["jsonBody"].as_array().cloned().unwrap_or_default()),
        )
        .filter_map(|c| c["email"].as_str().map(str::to_lowercase))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_whose_function_is_killed_mid_batch_completes_soon_after_the_restart() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    const CONTACTS: usize = 1_000;
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "deployed-crash").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    // Brevo accepts everything, but its first contact write takes 5 s: the backfill function
    // is killed while it waits for that answer.
    let brevo = MockServer::start().await;
    for (route, status) in [("/v3/contacts/import", 202), ("/v3/contacts", 204)] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"processId": 1}))
                    .set_delay(Duration::from_secs(5)),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&brevo)
            .await;
    }
    deskbridge_shared::testkit::brevo::mount_accepting(&brevo, &[("FIRSTNAME", "text")]).await;
    // No list yet: the function creates the default list, and the backfill goes by imports.
    deskbridge_shared::testkit::brevo::mount_lists(&brevo, &[], 17).await;
    deskbridge_shared::testkit::brevo::mount_attribute_creation(&brevo).await;

    let intercom = MockServer::start().await;
    let contacts = deskbridge_shared::helpdesk::intercom::fake::ContactSearch::default();
    let now = chrono::Utc::now().timestamp();
    contacts.set(
        (0..CONTACTS)
            .map(|i| {
                json!({
                    "type": "contact", "id": format!("c{i:05}"), "role": "user",
                    "email": format!("user{i}@example.com"), "name": format!("User {i}"),
                    "created_at": now - 86_400, "updated_at": now - 3_600 + i as i64,
                })
            })
            .collect(),
    );
    contacts.mount(&intercom).await;
    let credentials = json!({
        "BREVO_API_KEY": "xkeysib-deployed",
        "INTERCOM_ACCESS_TOKEN": "intercom-token",
        "INTERCOM_BASE_URL": intercom.uri(),
    });
    let configuration =
        "connectors:\n  intercom:\n    sync: { contacts: true, conversations: false }\n";
    let stack = Deployment::new(&sdk, &res, "crash", credentials, configuration, &brevo).await;
    let mut sync = stack.start("SyncFunction").await;
    let mut backfill = stack.start("BackfillFunction").await;
    let backfill_batch = batch_size(&stack.template, "BackfillFunctionJobs");
    let sync_batch = batch_size(&stack.template, "SyncFunctionPages");

    let schedule: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/schedule.json"))
            .expect("schedule event"),
    )
    .expect("json");
    assert!(matches!(sync.invoke(schedule).await, Outcome::Response(_)));

    // The sync reads pages until the backfill lane has a batch; the backfill function takes it
    // and is killed while Brevo has not yet answered its first write.
    let killed_at = loop {
        poll_once(&sqs, &res.sync_queue_url, &mut sync, sync_batch).await;
        let Some((messages, event)) =
            receive_event(&sqs, &res.backfill_queue_url, backfill_batch).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let writing = async {
            loop {
                let requests = brevo.received_requests().await.unwrap_or_default();
                if !written_emails(&requests).is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            outcome = backfill.invoke(event) => panic!(
                "the invocation ended before Brevo answered ({outcome:?}):\n{}",
                backfill.logs()
            ),
            () = writing => {}
        }
        // The execution environment dies mid-invocation: no answer, no batch item failures.
        drop(backfill);
        break (messages.len(), tokio::time::Instant::now());
    };
    let in_flight: Vec<String> =
        written_emails(&brevo.received_requests().await.unwrap_or_default());

    // Lambda starts a new execution environment for the next batch.
    let restarted = tokio::time::Instant::now();
    let mut backfill = stack.start("BackfillFunction").await;
    let deadline = restarted + Duration::from_secs(120);
    loop {
        let moved = poll_once(&sqs, &res.sync_queue_url, &mut sync, sync_batch).await
            + poll_once(&sqs, &res.backfill_queue_url, &mut backfill, backfill_batch).await;
        if moved == 0
            && backlog(&sqs, &res.sync_queue_url).await == 0
            && backlog(&sqs, &res.backfill_queue_url).await == 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backfill was not complete 2 minutes after the restart ({} messages were held \
             by the killed function):\nsync:\n{}\nbackfill:\n{}",
            killed_at.0,
            sync.logs(),
            backfill.logs()
        );
        if moved == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    eprintln!(
        "killed holding {} messages; complete {:.1} s after the restart",
        killed_at.0,
        restarted.elapsed().as_secs_f64()
    );

    // Every contact reached Brevo, and those the killed invocation was writing were written
    // again by the new environment (their messages came back to the queue).
    let written = written_emails(&brevo.received_requests().await.unwrap_or_default());
    let distinct: std::collections::BTreeSet<&String> = written.iter().collect();
    assert_eq!(distinct.len(), CONTACTS, "every contact reached Brevo");
    for email in &in_flight {
        assert!(
            written.iter().filter(|e| *e == email).count() >= 2,
            "{email}, in flight at the kill, was written again after the restart"
        );
    }
    assert_eq!(backlog(&sqs, &res.upsert_dlq_url).await, 0);
    assert_eq!(backlog(&sqs, &res.sync_dlq_url).await, 0);
}

#[tokio::test]
async fn a_function_whose_deployed_configuration_is_invalid_fails_its_init_naming_each_line() {
    let sdk = common::sdk().await;
    let res = common::bootstrap(&sdk, "deployed-bad").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let credentials = secrets
        .create_secret()
        .name(common::unique_prefix("deployed-bad-credentials"))
        .secret_string("{}")
        .send()
        .await
        .expect("credentials secret");
    // Written past `deskbridge config push` (which refuses it), e.g. in the console.
    let configuration = secrets
        .create_secret()
        .name(common::unique_prefix("deployed-bad-configuration"))
        .secret_string("connectors:\n  zendesk:\n    enabled: maybe\n  nosuchdesk: {}\n")
        .send()
        .await
        .expect("configuration secret");
    let template = template();
    let refs = stand_ins(
        &template,
        &res,
        credentials.arn().expect("arn"),
        configuration.arn().expect("arn"),
    );
    let spec = function_spec(&template, "WebhookFunction");
    let env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), resolve(v, &refs)))
        .collect();
    let mut webhook = Function::start("WebhookFunction", &spec, &env).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = webhook.child.wait().expect("wait");
        (status, webhook)
    })
    .await
    .expect("join");
    let (status, webhook) = status;
    assert!(!status.success(), "init must fail");
    let logs = webhook.logs();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    let arn = configuration.arn().expect("arn");
    for line in [3, 4] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("secretsmanager:{arn}:{line}: "))),
            "an error line for line {line}:\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_running_function_takes_up_a_new_configuration_version_and_refuses_an_invalid_one() {
    use deskbridge_shared::aws::Live;
    use deskbridge_shared::config::{Settings, Vars};
    let sdk = common::sdk().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = secrets
        .create_secret()
        .name(common::unique_prefix("live-configuration"))
        .secret_string("# defaults\n")
        .send()
        .await
        .expect("configuration secret")
        .arn()
        .expect("arn")
        .to_string();
    let env = Vars::from_pairs([
        ("DESKBRIDGE_CONFIG", format!("secretsmanager:{arn}")),
        ("DESKBRIDGE_SECRET_REFRESH_SECONDS", "1".to_string()),
    ]);
    let builds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = builds.clone();
    let live = Live::start(&sdk, env, move |vars| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Settings::from_vars(vars)?)
    })
    .await
    .expect("starts on the defaults");
    let zendesk = deskbridge_shared::model::Source::Zendesk;
    assert!(live.get().await.file.source_enabled(&zendesk));

    // Within the refresh period nothing is read again.
    let put = |text: &'static str| {
        let secrets = secrets.clone();
        let arn = arn.clone();
        async move {
            secrets
                .put_secret_value()
                .secret_id(arn)
                .secret_string(text)
                .send()
                .await
                .expect("new version");
        }
    };
    put("connectors:\n  zendesk:\n    enabled: false\n").await;
    assert!(live.get().await.file.source_enabled(&zendesk));
    assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);

    // After it, the new version is built and used.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!live.get().await.file.source_enabled(&zendesk));
    assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 2);

    // An invalid version is refused and the running settings stay.
    put("connectors:\n  zendesk:\n    enabled: maybe\n").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!live.get().await.file.source_enabled(&zendesk));
    assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 3);
    // …and is not tried again until another version arrives.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = live.get().await;
    assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 3);
}
