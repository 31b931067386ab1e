//! Cold-start proxy for the three Lambda functions.
//!
//! Starts each function's release binary (`target/release/deskbridge-{webhook,upsert,sync}`)
//! against a minimal local Lambda Runtime API, hands it one event and measures:
//!
//! - **init**: from just before `exec` to its first `GET /2018-06-01/runtime/invocation/next`;
//! - **first response**: from just before `exec` to its `POST …/{id}/response` (or `…/error`);
//! - **CPU**: CPU time of all its threads (`/proc/<pid>/task/*/schedstat`) at init and at the
//!   end of the first invocation;
//! - **AWS**: the number of AWS calls of the first invocation and the wall time spent waiting on
//!   them (every call goes through a timing proxy in front of the AWS endpoint), so the first
//!   response can be read without the local AWS stand-in's latency;
//! - **peak RSS**: `VmHWM` of `/proc/<pid>/status`, read when it asks for the second event (the
//!   process is idle then and still alive), after which it is killed.
//!
//! AWS calls go to a moto server on 127.0.0.1 when `.venv/bin/moto_server` exists (a fresh
//! table and queues per run, made by `target/debug/deskbridge bootstrap`, so every run is a real
//! first delivery, not a duplicate), otherwise to a closed local port with `AWS_MAX_ATTEMPTS=1`
//! so they fail at once. The helpdesk APIs are enabled (so their clients are built at init)
//! and point at a closed port; none of these events calls them.
//!
//! It also prints each bootstrap's stripped size and its size zipped with `zip -9`.
//!
//! ```sh
//! cargo run --release --manifest-path tools/coldstart/Cargo.toml -- \
//!     [--runs N] [--no-build] [--no-moto] [--env KEY=VALUE]…
//! ```
//!
//! Without `--no-build` it first runs
//! `cargo build --release -p deskbridge-webhook -p deskbridge-upsert -p deskbridge-sync`.
//! `--env` adds a variable to the functions' environment, for experiments (e.g.
//! `SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt`: load one CA bundle, as on Lambda's
//! Amazon Linux 2023, instead of every file of `/etc/ssl/certs`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod runtime;

use runtime::{Calls, Run, Seen, aws_proxy, runtime_api};

const FUNCTIONS: [(&str, &str); 3] = [
    (
        "deskbridge-webhook",
        "events/webhook-intercom-contact-created.json",
    ),
    ("deskbridge-upsert", "events/sqs-upsert-batch.json"),
    ("deskbridge-sync", "events/schedule.json"),
];
const GOAL_INIT_MS: f64 = 15.0;
const GOAL_FIRST_MS: f64 = 25.0;
const GOAL_RSS_MIB: f64 = 30.0;
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

struct Sample {
    init: Duration,
    first: Duration,
    init_cpu: Duration,
    cpu: Duration,
    rss_kib: u64,
    /// AWS calls before the first response, and the wall time during which one was in flight.
    aws_calls: usize,
    aws_wait: Duration,
    reply: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coldstart: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    runs: usize,
    build: bool,
    moto: bool,
    extra: Vec<(String, String)>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        runs: 10,
        build: true,
        moto: true,
        extra: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                o.runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--no-build" => o.build = false,
            "--no-moto" => o.moto = false,
            "--env" => {
                let pair = args.next().ok_or("--env needs KEY=VALUE")?;
                let (k, v) = pair.split_once('=').ok_or("--env needs KEY=VALUE")?;
                o.extra.push((k.to_string(), v.to_string()));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

fn run() -> Result<(), String> {
    let opts = options()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .map_err(|e| format!("workspace root: {e}"))?;
    if opts.build {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&root).args(["build", "--release"]);
        for (name, _) in FUNCTIONS {
            cmd.args(["-p", name]);
        }
        eprintln!("coldstart: cargo build --release (fat LTO: minutes when not up to date)");
        let status = cmd.status().map_err(|e| format!("cargo: {e}"))?;
        if !status.success() {
            return Err("cargo build --release failed".into());
        }
    }
    for (name, _) in FUNCTIONS {
        let bin = root.join("target/release").join(name);
        if !bin.is_file() {
            return Err(format!(
                "{} is missing: run `cargo build --release -p deskbridge-webhook -p deskbridge-upsert -p deskbridge-sync`",
                bin.display()
            ));
        }
    }
    let logs = root.join("target/coldstart");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;

    let moto_bin = root.join(".venv/bin/moto_server");
    let cli = root.join("target/debug/deskbridge");
    let mut moto = None;
    let aws = if opts.moto && moto_bin.is_file() {
        if !cli.is_file() {
            return Err(format!(
                "{} is missing (it creates the table and queues in moto): run `cargo build -p deskbridge`, or pass --no-moto",
                cli.display()
            ));
        }
        let (child, port) = start_moto(&moto_bin, &logs)?;
        moto = Some(child);
        Aws::Moto { port, cli }
    } else {
        Aws::Closed
    };
    let result = measure(&root, &logs, &aws, &opts);
    if let Some(mut child) = moto {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

enum Aws {
    Moto { port: u16, cli: PathBuf },
    Closed,
}

fn measure(root: &Path, logs: &Path, aws: &Aws, opts: &Options) -> Result<(), String> {
    let (api, state) = runtime_api()?;
    let closed = format!("http://127.0.0.1:{}", free_port()?);
    let calls: Calls = Arc::default();
    let endpoint = match aws {
        Aws::Moto { port, .. } => {
            let endpoint = aws_proxy(*port, Arc::clone(&calls))?;
            println!(
                "AWS: moto on 127.0.0.1:{port} behind a timing proxy at {endpoint}, a fresh table and queues per run (real responses)"
            );
            endpoint
        }
        Aws::Closed => {
            println!(
                "AWS: closed port {closed}, AWS_MAX_ATTEMPTS=1 (AWS calls fail at once; the first response is an error)"
            );
            closed.clone()
        }
    };
    for (k, v) in &opts.extra {
        println!("extra environment: {k}={v}");
    }
    println!(
        "{} runs per function; median [min–max]; goals: init ≤ {GOAL_INIT_MS} ms, first response ≤ {GOAL_FIRST_MS} ms, peak RSS ≤ {GOAL_RSS_MIB} MiB",
        opts.runs
    );
    for (name, event_file) in FUNCTIONS {
        let event = std::fs::read_to_string(root.join(event_file))
            .map_err(|e| format!("{event_file}: {e}"))?;
        let bin = root.join("target/release").join(name);
        let log = logs.join(format!("{name}.log"));
        let mut samples = Vec::new();
        for i in 0..opts.runs {
            let mut env = base_env(name, &api, &endpoint, &closed);
            match aws {
                Aws::Moto { port, cli } => {
                    let prefix = format!("cs{}-{}-{i}", std::process::id(), &name[11..]);
                    env.extend(bootstrap(cli, *port, &prefix)?);
                    // The queue URLs moto returns name moto's port: send them through the proxy.
                    let direct = format!("http://127.0.0.1:{port}");
                    for (_, v) in &mut env {
                        if v.starts_with(&direct) {
                            *v = v.replacen(&direct, &endpoint, 1);
                        }
                    }
                }
                Aws::Closed => env.push(("AWS_MAX_ATTEMPTS".into(), "1".into())),
            }
            env.extend_from_slice(&opts.extra);
            let (tx, rx) = mpsc::channel();
            *state.lock().map_err(|_| "lock")? = Run {
                function: name.into(),
                event: event.clone(),
                pid: 0,
                nexts: 0,
                tx,
            };
            calls.lock().map_err(|_| "lock")?.clear();
            let sample =
                once(&bin, &env, &state, &rx, &calls, &log).map_err(|e| format!("{name}: {e}"))?;
            samples.push(sample);
        }
        let size = bootstrap_size(&bin, logs)?;
        let proxied = matches!(aws, Aws::Moto { .. });
        println!("{}", line(name, event_file, &samples, proxied, size));
    }
    Ok(())
}

/// The environment Lambda gives a function, plus deskbridge's settings: every source's webhook
/// and API enabled, the helpdesk APIs at a closed port (nothing here calls them).
fn base_env(name: &str, api: &str, aws: &str, closed: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2025/01/08/[1]coldstart"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_ENDPOINT_URL", aws),
        ("STATE_TABLE", "deskbridge-state"),
        (
            "UPSERT_QUEUE_URL",
            &format!("{aws}/123456789012/deskbridge-upsert"),
        ),
        (
            "SYNC_QUEUE_URL",
            &format!("{aws}/123456789012/deskbridge-sync"),
        ),
        ("INTERCOM_CLIENT_SECRET", "deskbridge-test-intercom-secret"),
        ("GORGIAS_WEBHOOK_TOKEN", "deskbridge-test-gorgias-token"),
        (
            "ZENDESK_WEBHOOK_SECRET",
            "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
        ),
        ("ZENDESK_BASE_URL", closed),
        ("ZENDESK_EMAIL", "agent@example.com"),
        ("ZENDESK_API_TOKEN", "testing"),
        ("INTERCOM_BASE_URL", closed),
        ("INTERCOM_ACCESS_TOKEN", "testing"),
        ("GORGIAS_BASE_URL", closed),
        ("GORGIAS_EMAIL", "agent@example.com"),
        ("GORGIAS_API_KEY", "testing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Starts one function process and follows it through one invocation.
fn once(
    bin: &Path,
    env: &[(String, String)],
    state: &Mutex<Run>,
    rx: &Receiver<Seen>,
    calls: &Calls,
    log: &Path,
) -> Result<Sample, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if let Ok(mut run) = state.lock() {
        run.pid = child.id();
    }
    let (mut init, mut init_cpu, mut first, mut reply) = (None, None, None, String::new());
    let result = loop {
        if t0.elapsed() > RUN_TIMEOUT {
            break Err(format!(
                "no result in {RUN_TIMEOUT:?} (log: {})",
                log.display()
            ));
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Seen::Next(at, 1, cpu)) => (init, init_cpu) = (Some(at - t0), cpu),
            Ok(Seen::Reply { at, kind, body }) => {
                first = Some((at, at - t0));
                reply = format!("{kind} {}", body.trim());
            }
            Ok(Seen::Next(_, _, cpu)) => {
                let rss = vm_hwm(child.id());
                break match (init, init_cpu, first, cpu, rss) {
                    (Some(init), Some(init_cpu), Some((at, first)), Some(cpu), Some(rss_kib)) => {
                        let (aws_calls, aws_wait) = busy(calls, t0, at);
                        Ok(Sample {
                            init,
                            first,
                            init_cpu,
                            cpu,
                            rss_kib,
                            aws_calls,
                            aws_wait,
                            reply: reply.clone(),
                        })
                    }
                    _ => Err(format!("incomplete run (log: {})", log.display())),
                };
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    break Err(format!(
                        "exited with {status} before asking for a second event; reply: {reply:?} (log: {})",
                        log.display()
                    ));
                }
            }
            Err(RecvTimeoutError::Disconnected) => break Err("runtime API stopped".into()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Number of AWS calls that started in `[from, to]`, and the wall time during which at least
/// one was in flight (overlapping calls count once).
fn busy(calls: &Calls, from: Instant, to: Instant) -> (usize, Duration) {
    let mut spans: Vec<_> = calls
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(s, _)| *s >= from && *s <= to)
        .collect();
    spans.sort();
    let n = spans.len();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (s, e) in spans {
        let e = e.min(to);
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce.saturating_duration_since(cs);
    }
    (n, total)
}

/// Peak resident set size of `pid` in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}


fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

fn start_moto(bin: &Path, logs: &Path) -> Result<(Child, u16), String> {
    let port = free_port()?;
    let log = File::create(logs.join("moto.log")).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut buf = [0u8; 5];
            if s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/" {
                return Ok((child, port));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto_server exited with {status}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err("moto_server did not answer within 30 s".into())
}

/// Creates a table and queues named `prefix…` in moto; returns their variables.
fn bootstrap(cli: &Path, port: u16, prefix: &str) -> Result<Vec<(String, String)>, String> {
    let out = Command::new(cli)
        .args(["bootstrap", "--prefix", prefix])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", cli.display()))?;
    if !out.status.success() {
        return Err(format!(
            "deskbridge bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Bytes of the binary and of a zip holding it as `bootstrap` (`zip -9`).
fn bootstrap_size(bin: &Path, logs: &Path) -> Result<(u64, Option<u64>), String> {
    let raw = std::fs::metadata(bin).map_err(|e| e.to_string())?.len();
    let dir = logs.join("zip");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::copy(bin, dir.join("bootstrap")).map_err(|e| e.to_string())?;
    let zipped = Command::new("zip")
        .current_dir(&dir)
        .args(["-q", "-9", "bootstrap.zip", "bootstrap"])
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(dir.join("bootstrap.zip")).ok())
        .map(|m| m.len());
    Ok((raw, zipped))
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (mid, v[0], v[n - 1])
}

fn line(
    name: &str,
    event: &str,
    samples: &[Sample],
    proxied: bool,
    (raw, zipped): (u64, Option<u64>),
) -> String {
    let ms = |f: &dyn Fn(&Sample) -> Duration| {
        let (m, lo, hi) = stats(samples.iter().map(|s| f(s).as_secs_f64() * 1e3).collect());
        format!("{m:.1} ms [{lo:.1}–{hi:.1}]")
    };
    let median_ms = |f: &dyn Fn(&Sample) -> Duration| {
        stats(samples.iter().map(|s| f(s).as_secs_f64() * 1e3).collect()).0
    };
    let mark = |v: f64, goal: f64| if v <= goal { "met" } else { "MISSED" };
    let init = median_ms(&|s| s.init);
    let first = median_ms(&|s| s.first);
    let (rss, rss_lo, rss_hi) = stats(samples.iter().map(|s| s.rss_kib as f64 / 1024.0).collect());
    let aws = if proxied {
        format!(
            " ({} AWS calls, {} waiting on them; without that wait {})",
            samples.last().map_or(0, |s| s.aws_calls),
            ms(&|s| s.aws_wait),
            ms(&|s| s.first.saturating_sub(s.aws_wait)),
        )
    } else {
        " (AWS unreachable)".to_string()
    };
    let mut reply = samples.last().map(|s| s.reply.clone()).unwrap_or_default();
    if reply.chars().count() > 100 {
        reply = format!("{}…", reply.chars().take(100).collect::<String>());
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let zip = zipped.map_or("zip unavailable".to_string(), |z| {
        format!("{:.2} MiB zipped", mib(z))
    });
    format!(
        "{name}: init {} {} | first response {} {}{aws} | CPU at init {}, at first response {} | peak RSS {rss:.1} MiB [{rss_lo:.1}–{rss_hi:.1}] {} | bootstrap {:.2} MiB stripped, {zip} | event {event} | reply: {reply}",
        ms(&|s| s.init),
        mark(init, GOAL_INIT_MS),
        ms(&|s| s.first),
        mark(first, GOAL_FIRST_MS),
        ms(&|s| s.init_cpu),
        ms(&|s| s.cpu),
        mark(rss, GOAL_RSS_MIB),
        mib(raw),
    )
}
