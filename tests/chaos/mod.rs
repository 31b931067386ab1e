//! Fault-injection harness of the end-to-end suites (tests/faults.rs, tests/logscan.rs).
//!
//! - [`world`]: a seeded world of helpdesk customers, their signed webhook deliveries, and the
//!   Brevo state the inputs call for;
//! - [`sims`]: wiremock Brevo and helpdesk APIs that answer like the vendors, failures included
//!   (429 with the vendors' headers, 5xx, answers slower than the client waits);
//! - [`net`]: a TCP proxy that resets connections, and an HTTP proxy in front of moto that
//!   answers some AWS calls with AWS-shaped errors (moto stays the real backend);
//! - [`verdict`]: Brevo's final state rebuilt from the requests it accepted, compared with the
//!   expected state;
//! - here: the fault plan and counters, the local runner built from `deskbridge serve`'s parts
//!   (so its upsert worker can be killed mid-batch), and the helpdesks' delivery loop.
#![allow(dead_code)]

pub mod net;
pub mod sims;
pub mod time;
pub mod verdict;
pub mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskbridge::commands::serve;
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::infra::Bootstrapped;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::SqsQueue;
use deskbridge_shared::state::DynamoStateStore;
use deskbridge_shared::state::streams::{RunStatus, StreamId, StreamStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common;
use world::Delivery;

/// SplitMix64: small, seedable, good enough to pick faults and names.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.saturating_sub(lo).max(0) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One [`Rng`] shared by concurrent fault points.
#[derive(Debug, Clone)]
pub struct SharedRng(Arc<Mutex<Rng>>);

impl SharedRng {
    pub fn new(seed: u64) -> Self {
        SharedRng(Arc::new(Mutex::new(Rng::new(seed))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn unit(&self) -> f64 {
        self.with(Rng::unit)
    }

    pub fn chance(&self, p: f64) -> bool {
        self.with(|r| r.chance(p))
    }

    pub fn below(&self, n: u64) -> u64 {
        self.with(|r| r.below(n))
    }
}

/// How often each fault is injected, as a share of the requests through its fault point.
#[derive(Debug, Clone)]
pub struct Plan {
    pub brevo_429: f64,
    pub brevo_5xx: f64,
    pub brevo_slow: f64,
    pub brevo_reset: f64,
    /// Final refusals quoting the contact (the log-scan run only: they lose the write).
    pub brevo_rejected: f64,
    pub brevo_sms_conflict: f64,
    pub helpdesk_429: f64,
    pub helpdesk_5xx: f64,
    pub helpdesk_reset: f64,
    pub dynamo_throttling: f64,
    pub dynamo_capacity: f64,
    /// Claims (`delivery#`, `event#` keys) answered as if another worker held them.
    pub claim_conflict: f64,
    pub sqs_5xx: f64,
    /// Share of SQS sends that start an outage of a few consecutive failed sends.
    pub sqs_outage: f64,
    /// The Brevo client's timeout in the run; slow answers come later than this.
    pub brevo_timeout: Duration,
}

impl Plan {
    /// About `rate` of the requests at every fault point fail.
    pub fn at_rate(rate: f64) -> Plan {
        Plan {
            brevo_429: rate * 0.12,
            brevo_5xx: rate * 0.5,
            brevo_slow: rate * 0.04,
            brevo_reset: rate * 0.34,
            brevo_rejected: 0.0,
            brevo_sms_conflict: 0.0,
            helpdesk_429: rate * 0.4,
            helpdesk_5xx: rate * 0.5,
            helpdesk_reset: rate * 0.1,
            dynamo_throttling: rate * 0.5,
            dynamo_capacity: rate * 0.4,
            claim_conflict: rate * 0.5,
            sqs_5xx: rate * 0.9,
            sqs_outage: rate * 0.1,
            // Long enough that a loaded machine does not turn answers Brevo applied into
            // client timeouts: a timed-out event send is retried, and Brevo's events API has no
            // idempotency key, so it would be applied twice (a limit the README states; the
            // suite's slow answers model the timeouts that are not applied).
            brevo_timeout: Duration::from_secs(5),
        }
    }
}

/// What the fault points did: requests seen, faults injected and other things observed, by
/// kind; and notes on single items (event ids), to explain the outcome.
#[derive(Debug, Default)]
pub struct Faults {
    counts: Mutex<Counts>,
    notes: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

/// Note: a write marking this event sent failed (injected).
pub const COMPLETION_FAILED: &str = "completion failed";
/// Note: this event's claim was found held by another worker (moto's conditional check).
pub const CLAIM_CONTENDED: &str = "claim contended";

#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub ops: BTreeMap<String, u64>,
    pub injected: BTreeMap<String, u64>,
    pub observed: BTreeMap<String, u64>,
}

impl Counts {
    pub fn total_ops(&self) -> u64 {
        self.ops.values().sum()
    }

    pub fn total_injected(&self) -> u64 {
        self.injected.values().sum()
    }

    pub fn observed(&self, what: &str) -> u64 {
        self.observed.get(what).copied().unwrap_or(0)
    }

    /// `kind n, kind n, …`
    pub fn list(map: &BTreeMap<String, u64>) -> String {
        map.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Faults {
    fn bump(&self, pick: impl FnOnce(&mut Counts) -> &mut BTreeMap<String, u64>, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *pick(&mut counts).entry(key.to_string()).or_insert(0) += 1;
    }

    /// Notes `id` under `tag`.
    pub fn note(&self, tag: &str, id: &str) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tag.to_string())
            .or_default()
            .insert(id.to_string());
    }

    pub fn noted(&self, tag: &str, id: &str) -> bool {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tag)
            .is_some_and(|ids| ids.contains(id))
    }

    /// A request passed fault point `point`.
    pub fn op(&self, point: &str) {
        self.bump(|c| &mut c.ops, point);
    }

    /// A fault of `kind` was injected.
    pub fn inject(&self, kind: &str) {
        self.bump(|c| &mut c.injected, kind);
    }

    /// Something worth reporting happened (not injected).
    pub fn observe(&self, what: &str) {
        self.bump(|c| &mut c.observed, what);
    }

    pub fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The local runner, built from the same parts as `deskbridge serve`: the webhook routes,
/// [`UPSERT_WORKERS`] upsert workers (concurrent instances, as Lambda runs up to
/// `UpsertMaxConcurrency`) and a sync worker, each a task of this runtime, so an upsert worker
/// can be killed in the middle of a batch and replaced like a crashed Lambda instance.
pub struct Runner {
    pub base: String,
    sdk: aws_config::SdkConfig,
    settings: Settings,
    tune: Option<Tune>,
    upsert_queue_url: String,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    upsert: Vec<JoinHandle<()>>,
    /// The backfill lane's worker, when the settings have one.
    backfill: Option<JoinHandle<()>>,
    sync: Option<JoinHandle<()>>,
}

/// Upsert workers of a [`Runner`].
pub const UPSERT_WORKERS: usize = 4;

/// How long a fault run may go without progress before it is declared stuck.
pub const STALL: Duration = Duration::from_secs(180);

/// The Brevo API key of upsert worker 0, the one that gets killed.
pub const VICTIM_KEY: &str = "test-brevo-key-of-worker-0";

/// Changes each upsert worker's handler (made from the runner's settings) before it starts: a
/// clock, a queue adapter.
pub type Tune = Arc<dyn Fn(serve::LocalUpserter, &Settings) -> serve::LocalUpserter + Send + Sync>;

impl Runner {
    pub async fn start(sdk: &aws_config::SdkConfig, settings: Settings) -> Runner {
        Self::start_tuned(sdk, settings, None).await
    }

    pub async fn start_tuned(
        sdk: &aws_config::SdkConfig,
        settings: Settings,
        tune: Option<Tune>,
    ) -> Runner {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the runner");
        let base = format!("http://{}", listener.local_addr().expect("runner address"));
        let (stop, stop_rx) = watch::channel(false);
        let webhook = serve::local_webhook(sdk, settings.clone()).expect("webhook handler");
        let mut shutdown = stop_rx.clone();
        let http = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                serve::router(
                    webhook,
                    deskbridge_shared::metrics::Metrics::from_env("deskbridge-webhook"),
                ),
            )
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        });
        let sync = serve::local_syncer(sdk, &settings)
            .expect("sync handler")
            .map(|(url, syncer)| {
                let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk));
                tokio::spawn(serve::worker(queue, url, syncer, stop_rx.clone()))
            });
        let upsert_queue_url = settings
            .require_upsert_queue()
            .expect("upsert queue")
            .to_string();
        let backfill = settings.backfill_queue_url.clone().map(|url| {
            // Wired as the deployed backfill function: the backfill queue is its own queue.
            let mut lane = settings.clone();
            lane.upsert_queue_url = Some(url.clone());
            Self::upsert_worker(sdk, &lane, &url, stop_rx.clone(), tune.as_ref())
        });
        let upsert = (0..UPSERT_WORKERS)
            .map(|i| {
                Self::upsert_worker(
                    sdk,
                    &Self::worker_settings(&settings, i),
                    &upsert_queue_url,
                    stop_rx.clone(),
                    tune.as_ref(),
                )
            })
            .collect();
        Runner {
            base,
            sdk: sdk.clone(),
            settings,
            tune,
            upsert_queue_url,
            stop,
            http,
            upsert,
            backfill,
            sync,
        }
    }

    /// Worker 0, the one [`Runner::kill_upsert_worker`] kills, calls Brevo with its own API key
    /// ([`VICTIM_KEY`]), so Brevo can tell its requests apart.
    fn worker_settings(settings: &Settings, worker: usize) -> Settings {
        let mut settings = settings.clone();
        if worker == 0 {
            settings.brevo.api_key = Some(VICTIM_KEY.to_string());
        }
        settings
    }

    fn upsert_worker(
        sdk: &aws_config::SdkConfig,
        settings: &Settings,
        url: &str,
        stop: watch::Receiver<bool>,
        tune: Option<&Tune>,
    ) -> JoinHandle<()> {
        let mut upserter = serve::local_upserter(sdk, settings).expect("upsert handler");
        if let Some(tune) = tune {
            upserter = tune(upserter, settings);
        }
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk));
        tokio::spawn(serve::worker(queue, url.to_string(), upserter, stop))
    }

    /// Kills an upsert worker wherever it is (its in-flight messages come back after their
    /// visibility timeout) and starts a fresh one, with empty caches.
    pub fn kill_upsert_worker(&mut self) {
        self.upsert[0].abort();
        self.upsert[0] = Self::upsert_worker(
            &self.sdk,
            &Self::worker_settings(&self.settings, 0),
            &self.upsert_queue_url,
            self.stop.subscribe(),
            self.tune.as_ref(),
        );
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let wait = Duration::from_secs(30);
        let _ = tokio::time::timeout(wait, self.http).await;
        for worker in self.upsert.into_iter().chain(self.backfill) {
            let _ = tokio::time::timeout(wait, worker).await;
        }
        if let Some(sync) = self.sync {
            let _ = tokio::time::timeout(wait, sync).await;
        }
    }
}

/// The helpdesks' side of webhooks: signs each delivery as its vendor does and retries it
/// (re-signed) until deskbridge answers 2xx, 400 or 401, like the helpdesks' retry policies.
pub struct Vendor {
    base: String,
    http: reqwest::Client,
    faults: Arc<Faults>,
    rng: SharedRng,
}

/// How deskbridge finally answered a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx with the `status` of the body (`queued`, `duplicate`, `ignored`).
    Accepted(String),
    /// Any other final answer.
    Refused(u16, String),
}

impl Vendor {
    pub fn new(base: &str, faults: Arc<Faults>, seed: u64) -> Vendor {
        Vendor {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("HTTP client"),
            faults,
            rng: SharedRng::new(seed),
        }
    }

    fn headers(d: &Delivery) -> Vec<(&'static str, String)> {
        match d.source {
            Source::Zendesk => {
                let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
                let mut h = vec![
                    (
                        "x-zendesk-webhook-signature",
                        signature::sign_zendesk(common::ZENDESK_SECRET, &ts, d.body.as_bytes()),
                    ),
                    ("x-zendesk-webhook-signature-timestamp", ts),
                ];
                if let Some(id) = &d.invocation_id {
                    h.push(("x-zendesk-webhook-invocation-id", id.clone()));
                }
                h
            }
            Source::Intercom => vec![(
                "x-hub-signature",
                signature::sign_intercom(common::INTERCOM_SECRET, d.body.as_bytes()),
            )],
            _ => vec![("authorization", format!("Bearer {}", common::GORGIAS_TOKEN))],
        }
    }

    /// Delivers until a final answer (at most 10 minutes of retries).
    pub async fn deliver(&self, d: &Delivery) -> Answer {
        let url = format!("{}{}", self.base, d.path());
        for _ in 0..2_000 {
            let mut req = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(d.body.clone());
            for (k, v) in Self::headers(d) {
                req = req.header(k, v);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    match status {
                        200..=299 => {
                            let s = body["status"].as_str().unwrap_or_default().to_string();
                            return Answer::Accepted(s);
                        }
                        400 | 401 | 404 | 413 => {
                            return Answer::Refused(status, body.to_string());
                        }
                        _ => self.faults.observe(&format!("webhook answered {status}")),
                    }
                }
                Err(_) => self.faults.observe("webhook request failed"),
            }
            self.faults.observe("webhook retries");
            let wait = 100 + self.rng.below(200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        Answer::Refused(0, "gave up after 2,000 attempts".into())
    }
}

/// Sends `deliveries` in order, `concurrency` at a time, in the background; `done` counts the
/// deliveries finally answered. While `backlog` (the upsert queue's depth, kept up to date by
/// [`watch_depth`]) is above `max_backlog`, sending waits: moto's queues slow down with their
/// length, and a backlog of thousands would measure moto rather than deskbridge.
/// The task returns every final answer, in input order.
pub fn send_all(
    vendor: Arc<Vendor>,
    deliveries: Arc<Vec<Delivery>>,
    concurrency: usize,
    done: Arc<AtomicUsize>,
    backlog: Arc<AtomicU64>,
    max_backlog: u64,
) -> JoinHandle<Vec<Answer>> {
    tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..deliveries.len() {
            wait_for(|| backlog.load(Ordering::Relaxed) <= max_backlog).await;
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            let (vendor, deliveries, done) = (vendor.clone(), deliveries.clone(), done.clone());
            tasks.spawn(async move {
                let answer = vendor.deliver(&deliveries[i]).await;
                done.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                (i, answer)
            });
        }
        let mut answers = vec![Answer::Refused(0, "never sent".into()); deliveries.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, answer)) = joined {
                answers[i] = answer;
            }
        }
        answers
    })
}

/// Settings of a fault run: Brevo and the helpdesk APIs at their proxies, a short Brevo
/// timeout, Brevo's pace raised (the simulated account has no 10/s limit), and an all-contacts
/// list for Intercom so the backfill goes through imports.
pub fn settings(res: &Bootstrapped, brevo: &str, helpdesk: &str, plan: &Plan) -> Settings {
    let timeout = plan.brevo_timeout.as_secs_f64().to_string();
    let mut s = common::settings(
        res,
        Some(brevo),
        &[
            ("BREVO_REQUESTS_PER_SECOND", "1000"),
            ("BREVO_TIMEOUT_SECONDS", &timeout),
            ("ZENDESK_BASE_URL", helpdesk),
            ("ZENDESK_EMAIL", "api-user@helpdesk.test"),
            ("ZENDESK_API_TOKEN", "zendesk-test-api-token"),
            ("INTERCOM_BASE_URL", helpdesk),
            ("INTERCOM_ACCESS_TOKEN", "intercom-test-access-token"),
            // The run lasts minutes, not hours: retries back off to 10 s at most (24 h horizon
            // as deployed). tests/outages.rs runs the default policy on a compressed clock.
            ("RETRY_MAX_DELAY_SECONDS", "10"),
        ],
    );
    if let Some(m) = s.mapping.sources.get_mut("intercom") {
        m.lists.all_contacts = Some(35);
    }
    s
}

/// The runner's AWS configuration: through the fault proxy, with the SDK's standard retries
/// (3 attempts) but a short first back-off, so injected throttling costs milliseconds.
pub async fn sdk_through(proxy: &net::AwsProxy) -> aws_config::SdkConfig {
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(20));
    common::sdk_loader(&proxy.url)
        .retry_config(retry)
        .load()
        .await
}

/// Keeps `gauge` at the depth of `url` (every 200 ms) until the task is aborted.
pub fn watch_depth(
    sdk: &aws_config::SdkConfig,
    url: &str,
    gauge: Arc<AtomicU64>,
) -> JoinHandle<()> {
    let (sqs, url) = (aws_sdk_sqs::Client::new(sdk), url.to_string());
    tokio::spawn(async move {
        loop {
            if let Ok(d) = deskbridge::commands::demo::queue_depth(&sqs, &url).await {
                gauge.store(d, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Messages visible and in flight in `url`.
pub async fn depth(sdk: &aws_config::SdkConfig, url: &str) -> u64 {
    deskbridge::commands::demo::queue_depth(&aws_sdk_sqs::Client::new(sdk), url)
        .await
        .unwrap_or(u64::MAX)
}

/// Waits until the backfill run started at or after `after` is finished, both queues are empty
/// and Brevo has received nothing for `quiet`; false once nothing moved (Brevo's accepted
/// requests, the queues' depths) for `stall`, or after `cap` in all. Progress, not the wall
/// clock, decides: a slower machine settles later, a stuck message still fails the run.
pub async fn wait_until_settled(
    sdk: &aws_config::SdkConfig,
    res: &Bootstrapped,
    brevo: &sims::BrevoSim,
    after: Option<chrono::DateTime<chrono::Utc>>,
    quiet: Duration,
    stall: Duration,
    cap: Duration,
) -> bool {
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), res.table.clone());
    let stream = StreamId::new(Source::Intercom, "contacts");
    let started = tokio::time::Instant::now();
    let mut last = (brevo.requests(), started);
    let mut moved = ((0, 0, 0), started);
    loop {
        let now = tokio::time::Instant::now();
        let seen = brevo.requests();
        if seen != last.0 {
            last = (seen, now);
        }
        let sync_state = store.load(&stream).await;
        let synced = match after {
            None => true,
            Some(after) => sync_state.as_ref().is_ok_and(|s| {
                s.state.status == RunStatus::Idle
                    && s.state.last_run_started_at.is_some_and(|t| t >= after)
            }),
        };
        let upsert_depth =
            depth(sdk, &res.upsert_queue_url).await + depth(sdk, &res.backfill_queue_url).await;
        let sync_depth = depth(sdk, &res.sync_queue_url).await;
        if synced && now.duration_since(last.1) >= quiet && upsert_depth == 0 && sync_depth == 0 {
            return true;
        }
        let state = (brevo.accepted_count(), upsert_depth, sync_depth);
        if state != moved.0 {
            moved = (state, now);
        }
        if now.duration_since(moved.1) > stall || now.duration_since(started) > cap {
            // Say what held it up, so that a run that does not settle can be diagnosed.
            eprintln!(
                "not settled: backfill finished {synced} (stream state {:?}), upsert queue {upsert_depth}, \
                 sync queue {sync_depth}, last Brevo request {:.0} s ago",
                sync_state.map(|s| s.state),
                now.duration_since(last.1).as_secs_f64()
            );
            for url in [
                &res.upsert_queue_url,
                &res.backfill_queue_url,
                &res.sync_queue_url,
            ] {
                peek(sdk, url).await;
            }
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Prints up to ten visible messages of `url` (body and attributes) without taking them.
async fn peek(sdk: &aws_config::SdkConfig, url: &str) {
    let Ok(out) = aws_sdk_sqs::Client::new(sdk)
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_attribute_names("All")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
    else {
        return;
    };
    for m in out.messages() {
        let body: String = m.body().unwrap_or_default().chars().take(400).collect();
        eprintln!(
            "  left in {url}: {body} | attributes {:?} | {:?}",
            m.attributes(),
            m.message_attributes()
        );
    }
}

/// Visibility timeouts short enough that a killed worker's messages come back within the run.
pub async fn short_visibility(sdk: &aws_config::SdkConfig, res: &Bootstrapped, seconds: u32) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for url in [
        &res.sync_queue_url,
        &res.upsert_queue_url,
        &res.backfill_queue_url,
    ] {
        sqs.set_queue_attributes()
            .queue_url(url)
            .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string())
            .send()
            .await
            .expect("visibility timeout");
    }
}

/// Polls `ready` every 50 ms until it holds.
pub async fn wait_for(mut ready: impl FnMut() -> bool) {
    while !ready() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything of one fault run: moto behind the AWS fault proxy, Brevo and the helpdesk APIs on
/// wiremock behind connection-resetting proxies, and the local runner between them.
pub struct Rig {
    /// moto, unproxied: what the test reads.
    pub direct: aws_config::SdkConfig,
    pub res: Bootstrapped,
    pub faults: Arc<Faults>,
    pub brevo: sims::BrevoSim,
    pub runner: Runner,
    /// The fault proxy in front of moto that the runner talks to.
    pub aws: net::AwsProxy,
    _servers: (wiremock::MockServer, wiremock::MockServer),
}

/// What a [`Rig::run`] did.
pub struct Run {
    /// The final answer to each delivery, in input order.
    pub answers: Vec<Answer>,
    pub killed_at: std::time::Instant,
    /// Where the kill landed.
    pub kill: String,
    /// Whether the queues drained and Brevo went quiet in time.
    pub settled: bool,
    pub sent_in: Duration,
    pub took: Duration,
    /// Messages in the dead-letter queues at the end.
    pub dead_letters: u64,
    /// State items deleted as DynamoDB's TTL sweep would once every expiry has passed, and the
    /// deliveries then sent again (a helpdesk redelivering months later).
    pub swept: usize,
    pub late: usize,
}

impl Rig {
    pub async fn start(name: &str, world: &world::World, plan: &Plan, seed: u64) -> Rig {
        Self::start_with(name, world, plan, seed, |_| {}, None).await
    }

    /// As [`Rig::start`], with the runner's settings changed by `adjust` and its upsert
    /// handlers by `tune`.
    pub async fn start_with(
        name: &str,
        world: &world::World,
        plan: &Plan,
        seed: u64,
        adjust: impl FnOnce(&mut Settings),
        tune: Option<Tune>,
    ) -> Rig {
        let faults = Arc::new(Faults::default());
        let rng = SharedRng::new(seed ^ 0xFA17_FA17);
        let direct = common::sdk().await;
        let res = common::bootstrap(&direct, name).await;
        short_visibility(&direct, &res, 10).await;
        let aws = net::AwsProxy::start(
            common::moto_url(),
            plan.clone(),
            faults.clone(),
            rng.clone(),
        )
        .await;
        let (brevo_server, brevo) =
            sims::BrevoSim::start(plan.clone(), faults.clone(), rng.clone()).await;
        let brevo_proxy = net::ResetProxy::start(
            *brevo_server.address(),
            plan.brevo_reset,
            "brevo",
            faults.clone(),
            rng.clone(),
        )
        .await;
        let helpdesk =
            sims::HelpdeskSim::start(world, plan.clone(), faults.clone(), rng.clone()).await;
        let helpdesk_proxy = net::ResetProxy::start(
            *helpdesk.address(),
            plan.helpdesk_reset,
            "helpdesk",
            faults.clone(),
            rng,
        )
        .await;
        let mut settings = settings(&res, &brevo_proxy.url, &helpdesk_proxy.url, plan);
        adjust(&mut settings);
        let runner = Runner::start_tuned(&sdk_through(&aws).await, settings, tune).await;
        Rig {
            direct,
            res,
            faults,
            brevo,
            runner,
            aws,
            _servers: (brevo_server, helpdesk),
        }
    }

    /// Sends every delivery (16 at a time, the upsert queue kept under 60 messages), starts the
    /// Intercom backfill a quarter in, kills an upsert worker while it writes to Brevo two
    /// fifths in, then waits until everything settled (at most `limit` after the last delivery,
    /// and never longer than [`STALL`] without progress) and stops the runner.
    pub async fn run(mut self, world: &world::World, seed: u64, limit: Duration) -> (Run, Self) {
        let started = std::time::Instant::now();
        let vendor = Arc::new(Vendor::new(&self.runner.base, self.faults.clone(), seed));
        let deliveries = Arc::new(world.deliveries.clone());
        let total = deliveries.len();
        let done = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::new(AtomicU64::new(0));
        let gauge = watch_depth(&self.direct, &self.res.upsert_queue_url, backlog.clone());
        let sending = send_all(vendor, deliveries, 16, done.clone(), backlog, 60);

        wait_for(|| done.load(Ordering::Relaxed) >= total / 4).await;
        let backfill_from = chrono::Utc::now();
        common::request_intercom_sync(&self.direct, &self.res, false).await;
        wait_for(|| done.load(Ordering::Relaxed) >= total * 2 / 5).await;
        let kill = self.kill_mid_write(world).await;
        let killed_at = std::time::Instant::now();
        self.faults.inject("upsert worker killed mid-batch");

        let answers = sending.await.unwrap_or_default();
        gauge.abort();
        let sent_in = started.elapsed();
        let settled = wait_until_settled(
            &self.direct,
            &self.res,
            &self.brevo,
            Some(backfill_from),
            Duration::from_secs(3),
            STALL.min(limit),
            limit,
        )
        .await;

        // Months later: every item with an expiry is gone (delivery dedupe, claims), and the
        // helpdesks redeliver one delivery in twenty, freshly signed.
        let mut answers = answers;
        let (mut swept, mut late, mut settled) = (0, 0, settled);
        if settled {
            swept = common::sweep_expired(
                &aws_sdk_dynamodb::Client::new(&self.direct),
                &self.res.table,
                i64::MAX,
            )
            .await;
            let again: Vec<_> = world.deliveries.iter().step_by(20).cloned().collect();
            late = again.len();
            let vendor = Arc::new(Vendor::new(
                &self.runner.base,
                self.faults.clone(),
                seed ^ 0x1A7E,
            ));
            let done = Arc::new(AtomicUsize::new(0));
            let backlog = Arc::new(AtomicU64::new(0));
            let gauge = watch_depth(&self.direct, &self.res.upsert_queue_url, backlog.clone());
            let later = send_all(vendor, Arc::new(again), 16, done, backlog, 60);
            answers.extend(later.await.unwrap_or_default());
            gauge.abort();
            settled = wait_until_settled(
                &self.direct,
                &self.res,
                &self.brevo,
                None,
                Duration::from_secs(3),
                STALL.min(limit),
                limit,
            )
            .await;
        }
        let dead_letters = depth(&self.direct, &self.res.upsert_dlq_url).await
            + depth(&self.direct, &self.res.sync_dlq_url).await;
        let run = Run {
            answers,
            killed_at,
            kill,
            settled,
            sent_in,
            took: started.elapsed(),
            dead_letters,
            swept,
            late,
        };
        (run, self)
    }

    /// Kills upsert worker 0 while a request of its to Brevo is on the wire and not applied
    /// (Brevo holds it), once every event Brevo applied for it before is marked sent: the kill
    /// strands the worker's claims and messages at any stage but the one no connector can make
    /// safe — between Brevo applying an event and the connector noting it — since Brevo's events
    /// API takes no idempotency key (the README's reliability section states that limit, and
    /// the upsert function keeps its own deadline out of that window).
    async fn kill_mid_write(&mut self, world: &world::World) -> String {
        self.brevo.hold_requests_of(VICTIM_KEY);
        let on_wire = within(Duration::from_secs(60), || self.brevo.held() > 0).await;
        let table = aws_sdk_dynamodb::Client::new(&self.direct);
        let mut unmarked: Vec<String> =
            verdict::event_ids_from(world, &self.brevo.accepted(), VICTIM_KEY);
        let applied = unmarked.len();
        let started = std::time::Instant::now();
        while !unmarked.is_empty() && started.elapsed() < Duration::from_secs(30) {
            let mut still = Vec::new();
            for id in unmarked {
                if !marked_sent(&table, &self.res.table, &id).await {
                    still.push(id);
                }
            }
            unmarked = still;
            if !unmarked.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.runner.kill_upsert_worker();
        self.brevo.stop_holding();
        format!(
            "killed {} request(s) on the wire{}, after {} of its {applied} applied events were marked sent",
            self.brevo.held(),
            if on_wire {
                ""
            } else {
                " (none came within 60 s)"
            },
            applied - unmarked.len(),
        )
    }

    pub async fn stop(self) {
        self.runner.stop().await;
    }
}

/// Waits until `ready` (true) or `limit` passes (false).
async fn within(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while !ready() {
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Whether the state table says event `id` was sent.
async fn marked_sent(table: &aws_sdk_dynamodb::Client, name: &str, id: &str) -> bool {
    let key = deskbridge_shared::state::event_key(id);
    table
        .get_item()
        .table_name(name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key))
        .consistent_read(true)
        .send()
        .await
        .ok()
        .and_then(|out| out.item)
        .and_then(|item| item.get("status")?.as_s().ok().cloned())
        .is_some_and(|status| status == "done")
}
