//! Network-level fault points: a TCP proxy that resets connections, and an HTTP proxy in front of
//! moto that answers some AWS calls with the errors AWS documents.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Faults, Plan, SharedRng};

/// A TCP proxy in front of a wiremock server that resets the connection (RST, nothing
/// forwarded) in place of some client writes. The dropped write is never seen upstream, so a
/// reset request was never applied; a response is never cut, since HTTP/1.1 clients send the
/// next request only after reading the answer to the last.
pub struct ResetProxy {
    pub url: String,
}

impl ResetProxy {
    /// Proxies to `upstream`; `point` names the fault point in the counters.
    pub async fn start(
        upstream: SocketAddr,
        rate: f64,
        point: &'static str,
        faults: Arc<Faults>,
        rng: SharedRng,
    ) -> ResetProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the reset proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (faults, rng) = (faults.clone(), rng.clone());
                tokio::spawn(pipe(client, upstream, rate, point, faults, rng));
            }
        });
        ResetProxy { url }
    }
}

async fn pipe(
    client: TcpStream,
    upstream: SocketAddr,
    rate: f64,
    point: &'static str,
    faults: Arc<Faults>,
    rng: SharedRng,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if rng.chance(rate) {
            faults.op(point);
            faults.inject(&format!("{point} connection reset"));
            down.abort();
            let _ = from_client.as_ref().set_zero_linger();
            return;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to_server.shutdown().await;
    let _ = down.await;
}

/// An HTTP proxy between the runner's AWS SDK clients (`AWS_ENDPOINT_URL`) and moto. Most calls
/// pass through; some are answered here, without reaching moto, with DynamoDB's throttling
/// errors, a conditional-check failure on a dedupe claim, or SQS's 500/503.
pub struct AwsProxy {
    pub url: String,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    plan: Plan,
    faults: Arc<Faults>,
    rng: SharedRng,
    /// SQS sends still to fail in the current outage.
    outage: AtomicU32,
    /// A throttling storm: every DynamoDB call is answered ThrottlingException while set.
    storm: std::sync::atomic::AtomicBool,
}

impl AwsProxy {
    pub async fn start(
        upstream: &str,
        plan: Plan,
        faults: Arc<Faults>,
        rng: SharedRng,
    ) -> AwsProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the AWS proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            plan,
            faults,
            rng,
            outage: AtomicU32::new(0),
            storm: std::sync::atomic::AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        AwsProxy { url, shared }
    }

    /// Starts (true) or ends (false) a storm in which DynamoDB throttles every call.
    pub fn set_storm(&self, on: bool) {
        self.shared.storm.store(on, Ordering::SeqCst);
    }
}

async fn forward(State(p): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let item = PutItem::read(&target, &bytes);
    if let Some(fault) = p.fault(&target, &item) {
        if let Some(event) = item.event().filter(|_| item.status == "done") {
            p.faults.note(super::COMPLETION_FAILED, event);
        }
        return fault;
    }
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut headers = parts.headers.clone();
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    let sent = p
        .http
        .request(parts.method, format!("{}{path}", p.upstream))
        .headers(headers)
        .body(bytes)
        .send()
        .await;
    let Ok(resp) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if k != header::TRANSFER_ENCODING && k != header::CONNECTION && k != header::CONTENT_LENGTH
        {
            headers.append(k.clone(), v.clone());
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    if status == StatusCode::BAD_REQUEST
        && String::from_utf8_lossy(&body).contains("ConditionalCheckFailedException")
    {
        p.faults.observe("conditional check failed in moto");
        if let Some(event) = item.event() {
            p.faults.note(super::CLAIM_CONTENDED, event);
        }
    }
    (status, headers, Body::from(body)).into_response()
}

impl Shared {
    fn fault(&self, target: &str, item: &PutItem) -> Option<Response> {
        if target.starts_with("DynamoDB_20120810.") {
            self.faults.op("dynamodb");
            if self.storm.load(Ordering::SeqCst) {
                self.faults.inject("dynamodb throttling storm");
                return Some(dynamo_error(
                    "ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                ));
            }
            if item.is_claim() && self.rng.chance(self.plan.claim_conflict) {
                self.faults.inject("dynamodb conditional-check conflict");
                return Some(dynamo_error(
                    "ConditionalCheckFailedException",
                    "The conditional request failed",
                ));
            }
            let roll = self.rng.unit();
            if roll < self.plan.dynamo_throttling {
                self.faults.inject("dynamodb ThrottlingException");
                return Some(dynamo_error(
                    "ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                ));
            }
            if roll < self.plan.dynamo_throttling + self.plan.dynamo_capacity {
                self.faults
                    .inject("dynamodb ProvisionedThroughputExceededException");
                return Some(dynamo_error(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. \
                     Consider increasing your provisioning level with the UpdateTable API.",
                ));
            }
            return None;
        }
        let op = target.strip_prefix("AmazonSQS.")?;
        self.faults.op("sqs");
        let send = matches!(op, "SendMessage" | "SendMessageBatch");
        let in_outage = send
            && self
                .outage
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
        let starts_outage = send && !in_outage && self.rng.chance(self.plan.sqs_outage);
        if starts_outage {
            self.outage
                .store(2 + self.rng.below(4) as u32, Ordering::Release);
        }
        if in_outage || starts_outage || self.rng.chance(self.plan.sqs_5xx) {
            let (status, code, message) = if self.rng.chance(0.5) {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                )
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.",
                )
            };
            self.faults.inject(&format!("sqs {} {op}", status.as_u16()));
            return Some(sqs_error(status, code, message));
        }
        None
    }
}

/// What matters of a DynamoDB `PutItem` (empty for other calls).
#[derive(Debug, Default)]
struct PutItem {
    key: String,
    status: String,
    conditional: bool,
}

impl PutItem {
    fn read(target: &str, body: &Bytes) -> PutItem {
        if target != "DynamoDB_20120810.PutItem" {
            return PutItem::default();
        }
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        PutItem {
            key: s(&v["Item"]["pk"]["S"]),
            status: s(&v["Item"]["status"]["S"]),
            conditional: v["ConditionExpression"]
                .as_str()
                .is_some_and(|c| c.contains("attribute_not_exists")),
        }
    }

    /// A dedupe claim: a conditional put of a `delivery#` or `event#` key.
    fn is_claim(&self) -> bool {
        self.conditional && (self.key.starts_with("delivery#") || self.key.starts_with("event#"))
    }

    /// The timeline event id of an `event#` record.
    fn event(&self) -> Option<&str> {
        self.key.strip_prefix("event#")
    }
}

fn request_id() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "FAULT{:027}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A DynamoDB (awsJson1_0) client error.
fn dynamo_error(kind: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            (
                header::CONTENT_TYPE,
                "application/x-amz-json-1.0".to_string(),
            ),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                request_id(),
            ),
        ],
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message})
            .to_string(),
    )
        .into_response()
}

/// An SQS (JSON protocol) server error, with the query-compatible error code header.
fn sqs_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                "application/x-amz-json-1.0".to_string(),
            ),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                request_id(),
            ),
            (
                header::HeaderName::from_static("x-amzn-query-error"),
                format!("{code};Receiver"),
            ),
        ],
        json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message}).to_string(),
    )
        .into_response()
}
