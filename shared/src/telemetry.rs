//! Logging set-up: JSON lines in Lambda, readable lines on a terminal.
//!
//! In Lambda every line is one JSON object that Lambda's JSON log format reads as it is (it does
//! not wrap lines that are already JSON):
//!
//! - `timestamp` (RFC 3339, UTC), `level` (`TRACE` … `ERROR`) and `message` at the top level, so
//!   Lambda files each line under its own level and the function's `ApplicationLogLevel` filters
//!   it (a JSON line without `level` counts as INFO there);
//! - `function_name`: `AWS_LAMBDA_FUNCTION_NAME` when set;
//! - `cold_start`: true on the lines of a process's first invocation and of its start-up before
//!   it, false afterwards;
//! - `requestId`: the AWS request id of the invocation the line belongs to (the key Lambda's own
//!   JSON lines use), taken from the outermost enclosing span that carries one (`requestId` in
//!   the runtime's `Lambda runtime invoke` span, `request_id` in the functions' own spans);
//! - the event's other fields, flattened, and `spans`: every enclosing span's fields, outermost
//!   first (the invocation, then the message span with the job and correlation ids), so a
//!   `brevo call` line names the webhook delivery it came from.
//!
//! `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the function's log level), else `RUST_LOG`, else
//! `info` filters them. Metric lines do not pass through here: see [`crate::metrics`].

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The variable Lambda sets to the function's name.
pub const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// Which log lines are written: a level (`info`, `DEBUG`), optionally per target
/// (`deskbridge_shared=debug,info`).
pub type LogFilter = Targets;

/// Reads a filter such as `info` or `deskbridge_upsert=debug,warn`; `None` when it is empty or
/// not one.
pub fn parse_filter(text: &str) -> Option<LogFilter> {
    let text = text.trim();
    // Each directive is a level or `target=level`. A bare word that is not a level would be read
    // as a target to log alone, silencing everything else: refuse it instead.
    let directive = |d: &str| match d.split_once('=') {
        Some((target, _)) => {
            !target.is_empty() && !target.contains(|c: char| c.is_whitespace() || c == '!')
        }
        None => d.trim().parse::<LevelFilter>().is_ok(),
    };
    if text.is_empty() || !text.split(',').all(directive) {
        return None;
    }
    text.parse().ok()
}

/// The filter from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
pub fn env_filter() -> LogFilter {
    ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|name| parse_filter(&std::env::var(name).ok()?))
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// `AWS_LAMBDA_FUNCTION_NAME`, when set and not empty.
pub fn function_name_from_env() -> Option<String> {
    std::env::var(FUNCTION_NAME_VAR)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The JSON subscriber of the Lambda functions, writing to `writer`, named after
/// `AWS_LAMBDA_FUNCTION_NAME`.
pub fn json_subscriber<W>(writer: W, filter: LogFilter) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    json_subscriber_for(writer, filter, function_name_from_env())
}

/// The JSON subscriber of the Lambda functions, writing to `writer`; `function_name` goes on
/// every line when given.
pub fn json_subscriber_for<W>(
    writer: W,
    filter: LogFilter,
    function_name: Option<String>,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let seen_invocation = Arc::new(AtomicBool::new(false));
    tracing_subscriber::registry()
        .with(filter)
        .with(Invocations {
            seen: seen_invocation.clone(),
        })
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(LambdaJson::new(function_name, seen_invocation))
                .with_writer(writer),
        )
}

/// Installs the global subscriber once. `json` selects JSON lines (Lambda, CloudWatch).
pub fn init(json: bool) {
    let filter = env_filter();
    // A second call (tests) keeps the first subscriber.
    if json {
        let _ = json_subscriber(io::stdout, filter).try_init();
    } else {
        // The filter alone decides the level: a `fmt()` subscriber would also stop at `info`.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init();
    }
}

/// What an invocation span records about its invocation (kept in the span's extensions).
#[derive(Debug, Clone)]
struct Invocation {
    request_id: String,
    cold_start: bool,
}

/// Marks the outermost span of each invocation (the first span in a scope that carries a request
/// id) with its request id and whether it is the process's first invocation.
struct Invocations {
    /// Whether an invocation has begun in this process (shared with [`LambdaJson`], which marks
    /// the lines before the first invocation as part of the cold start).
    seen: Arc<AtomicBool>,
}

impl<S> Layer<S> for Invocations
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let nested = span
            .scope()
            .skip(1)
            .any(|parent| parent.extensions().get::<Invocation>().is_some());
        if nested {
            return;
        }
        let mut visitor = RequestIdVisitor(None);
        attrs.record(&mut visitor);
        if let Some(request_id) = visitor.0.filter(|r| !r.is_empty()) {
            let cold_start = !self.seen.swap(true, Ordering::SeqCst);
            span.extensions_mut().insert(Invocation {
                request_id,
                cold_start,
            });
        }
    }
}

/// Reads a span's `requestId` or `request_id` field.
struct RequestIdVisitor(Option<String>);

impl RequestIdVisitor {
    fn is_request_id(field: &Field) -> bool {
        matches!(field.name(), "requestId" | "request_id")
    }
}

impl Visit for RequestIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if Self::is_request_id(field) {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if Self::is_request_id(field) {
            // `%request_id` arrives here as Display wrapped in Debug: no quotes added.
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// The event format of the Lambda functions: tracing-subscriber's JSON format (timestamp, level,
/// flattened event fields, span list), with the function name, the cold-start flag and the
/// request id added at the top level.
struct LambdaJson {
    inner: Format<Json, SystemTime>,
    function_name: Option<String>,
    seen_invocation: Arc<AtomicBool>,
}

/// The keys written first, in this order; the rest follow as the JSON format wrote them.
const HEAD: [&str; 6] = [
    "timestamp",
    "level",
    "message",
    "function_name",
    "cold_start",
    "requestId",
];

impl LambdaJson {
    fn new(function_name: Option<String>, seen_invocation: Arc<AtomicBool>) -> Self {
        let inner = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_target(false)
            .with_timer(SystemTime);
        LambdaJson {
            inner,
            function_name,
            seen_invocation,
        }
    }
}

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(&line) else {
            // Not expected from the JSON format; write its line as it is rather than lose it.
            return writer.write_str(&line);
        };
        let invocation = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .and_then(|span| {
                span.scope()
                    .from_root()
                    .find_map(|s| s.extensions().get::<Invocation>().cloned())
            });
        let cold_start = match &invocation {
            Some(invocation) => invocation.cold_start,
            // Start-up lines come before the first invocation (and belong to the cold start);
            // a line outside any invocation later on does not.
            None => !self.seen_invocation.load(Ordering::SeqCst),
        };
        if let Some(name) = &self.function_name {
            fields.insert("function_name".into(), Value::from(name.as_str()));
        }
        fields.insert("cold_start".into(), Value::from(cold_start));
        if let Some(invocation) = invocation {
            fields.insert("requestId".into(), Value::from(invocation.request_id));
        }
        writeln!(writer, "{}", ordered(fields))
    }
}

/// `fields` as one JSON object with the [`HEAD`] keys first.
fn ordered(mut fields: Map<String, Value>) -> String {
    let mut out = String::from("{");
    let head = HEAD
        .iter()
        .filter_map(|key| fields.remove(*key).map(|v| ((*key).to_string(), v)))
        .collect::<Vec<_>>();
    for (n, (key, value)) in head.into_iter().chain(fields).enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// Log output kept in memory, for tests that read what a run logged.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every line written so far, parsed (lines that are not JSON are left out).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("log capture poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

/// The Lambda JSON subscriber writing into memory at `filter` (`"info"`, `"debug"`, …), for
/// `tracing::subscriber::with_default` / `set_default` in tests.
pub fn capture_json(filter: &str) -> (tracing::Dispatch, CapturedLogs) {
    capture_json_for(filter, None)
}

/// [`capture_json`] for a function named `function_name`.
pub fn capture_json_for(
    filter: &str,
    function_name: Option<&str>,
) -> (tracing::Dispatch, CapturedLogs) {
    let logs = CapturedLogs::default();
    let subscriber = json_subscriber_for(
        logs.clone(),
        parse_filter(filter).unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO)),
        function_name.map(str::to_string),
    );
    (tracing::Dispatch::new(subscriber), logs)
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn filters_read_lambda_levels_and_per_target_directives() {
        let upper = parse_filter("DEBUG").expect("a level in capitals");
        assert!(upper.would_enable("deskbridge_upsert", &Level::DEBUG));
        assert!(!upper.would_enable("deskbridge_upsert", &Level::TRACE));
        let mixed = parse_filter("deskbridge_shared=debug,warn").expect("directives");
        assert!(mixed.would_enable("deskbridge_shared::brevo", &Level::DEBUG));
        assert!(!mixed.would_enable("hyper", &Level::INFO));
        assert!(mixed.would_enable("hyper", &Level::WARN));
        assert!(parse_filter("  ").is_none());
        assert!(parse_filter("deskbridge=loudest").is_none());
        // An unresolved template value, or a target without a level: not a filter.
        assert!(parse_filter("!Ref LogLevel").is_none());
        assert!(parse_filter("deskbridge_upsert").is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines captured from a subscriber are tested in `tests/log_lines.rs`, a test binary of its
    // own: tracing caches per call site whether anyone listens, and tests on other threads can
    // make that cache miss a capture.

    #[test]
    fn the_head_keys_come_first_in_their_order() {
        let fields: Map<String, Value> = serde_json::from_str(
            r#"{"spans":[],"requestId":"r","message":"m","a":1,"level":"INFO","timestamp":"t"}"#,
        )
        .expect("an object");
        let line = ordered(fields);
        assert!(
            line.starts_with(r#"{"timestamp":"t","level":"INFO","message":"m","requestId":"r","#),
            "{line}"
        );
        let back: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(back["a"], 1);
        assert_eq!(back["spans"], serde_json::json!([]));
    }
}
