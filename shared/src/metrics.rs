//! CloudWatch metrics as Embedded Metric Format (EMF) lines.
//!
//! A function builds one [`Document`] per invocation (per dimension values: one source, one
//! stream) and hands it to [`Metrics::emit`], which writes it as one JSON line on stdout. In
//! Lambda, CloudWatch Logs reads the `_aws` block of such a line and turns the values into
//! metrics in the `deskbridge` namespace: no API call, no extra latency, nothing to permit in IAM.
//!
//! Every document carries the `Function` dimension (the Lambda function's name, so two stacks in
//! one account keep their metrics apart) and the dimensions the caller adds (`Source`,
//! `Stream`, `Reason`). Besides the full dimension set, a document can publish each value under
//! smaller sets too ([`Document::rollup`]): `[Function]` alone gives the per-function totals the
//! alarms use.
//!
//! Every line also carries `"level":"INFO"` and an RFC 3339 `timestamp`. Lambda's JSON log format
//! filters application lines by their `level` (a JSON line without one counts as INFO, and one
//! without a valid `timestamp` is stamped INFO too), so a metric line is kept at every log level
//! up to INFO; the template allows no level above it (`LogLevel`: TRACE, DEBUG or INFO), since
//! WARN or ERROR would drop every metric line and leave the alarms without data.
//!
//! Where lines go is chosen once per process ([`Metrics::from_env`]): stdout in Lambda, a
//! `debug` log line in the local runner (so they do not flood the console), nowhere, or memory
//! for tests. `DESKBRIDGE_METRICS=emf|log|off` overrides the choice.
//!
//! A maintained crate exists for the `metrics` facade (`metrics_cloudwatch_embedded`). It is not
//! used: it writes one dimension set per document and one line per label set, keeps its state in a
//! global recorder (shared by every test of a process), and per-function rollups would need
//! duplicate metrics. What deskbridge needs is the small builder below.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every deskbridge metric.
pub const NAMESPACE: &str = "deskbridge";
/// The dimension every document carries.
pub const FUNCTION: &str = "Function";
/// The variable that chooses where metric lines go.
pub const METRICS_VAR: &str = "DESKBRIDGE_METRICS";
/// The log level of every metric line: the highest that Lambda's log-level filter keeps at the
/// log levels the template allows.
pub const LEVEL: &str = "INFO";

/// EMF limits: metrics per directive, dimensions per set, values per metric.
const MAX_METRICS: usize = 100;
const MAX_DIMENSIONS: usize = 30;
const MAX_VALUES: usize = 100;
/// CloudWatch's longest dimension value.
const MAX_DIMENSION_VALUE: usize = 1024;

/// The unit of a metric (a subset of CloudWatch's `StandardUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One EMF document: dimension values, metric values, and properties (searchable in Logs
/// Insights, not metrics).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    dimensions: Vec<(String, String)>,
    rollups: Vec<Vec<String>>,
    metrics: Vec<(String, Unit, Vec<f64>)>,
    properties: Map<String, Value>,
}

impl Document {
    /// A document for `function` (the `Function` dimension).
    pub fn new(function: &str) -> Self {
        Document::default().dimension(FUNCTION, function)
    }

    /// Adds a dimension (replacing its value if it is already there). An empty value is
    /// written as `none`: CloudWatch refuses empty dimension values.
    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        let value = if value.is_empty() {
            "none".to_string()
        } else {
            value.chars().take(MAX_DIMENSION_VALUE).collect()
        };
        let full = self.dimensions.len() >= MAX_DIMENSIONS;
        match self.dimensions.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None if !full => self.dimensions.push((name.to_string(), value)),
            None => tracing::warn!(name, "metric dimension dropped: EMF allows 30"),
        }
        self
    }

    /// Also publishes every value under this smaller dimension set (names of dimensions of the
    /// document; unknown names are left out when the document is written).
    pub fn rollup(mut self, names: &[&str]) -> Self {
        let set: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        if !self.rollups.contains(&set) {
            self.rollups.push(set);
        }
        self
    }

    /// Records `value` of metric `name`. A metric recorded twice keeps both values (EMF sends
    /// them as an array, and CloudWatch counts each one).
    pub fn record(&mut self, name: &str, unit: Unit, value: f64) -> &mut Self {
        if !value.is_finite() {
            return self;
        }
        let full = self.metrics.len() >= MAX_METRICS;
        match self.metrics.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, _, values)) if values.len() < MAX_VALUES => values.push(value),
            Some(_) => tracing::warn!(name, "metric value dropped: EMF allows 100 per metric"),
            None if !full => self.metrics.push((name.to_string(), unit, vec![value])),
            None => tracing::warn!(name, "metric dropped: EMF allows 100 per document"),
        }
        self
    }

    /// Records a count.
    pub fn count(&mut self, name: &str, n: u64) -> &mut Self {
        self.record(name, Unit::Count, n as f64)
    }

    /// Records a duration in milliseconds.
    pub fn millis(&mut self, name: &str, d: Duration) -> &mut Self {
        self.record(name, Unit::Milliseconds, d.as_secs_f64() * 1000.0)
    }

    /// Records a duration in seconds.
    pub fn seconds(&mut self, name: &str, secs: f64) -> &mut Self {
        self.record(name, Unit::Seconds, secs)
    }

    /// Adds a property: a searchable field of the log line that is not a metric.
    pub fn property(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.properties.insert(name.to_string(), value.into());
        self
    }

    /// Whether no metric was recorded (such a document is not written).
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The values recorded for `name` (tests, and callers that log a summary).
    pub fn values(&self, name: &str) -> Option<&[f64]> {
        self.metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, v)| v.as_slice())
    }

    /// The EMF JSON object, stamped with `timestamp_ms` (milliseconds since the Unix epoch).
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let names: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        let mut sets: Vec<Vec<&str>> = vec![names.clone()];
        for rollup in &self.rollups {
            let set: Vec<&str> = rollup
                .iter()
                .map(String::as_str)
                .filter(|n| names.contains(n))
                .collect();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        // Properties first: a dimension or a metric of the same name wins.
        let mut root = self.properties.clone();
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), json!(value));
        }
        for (name, _, values) in &self.metrics {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert(name.clone(), value);
        }
        // Last: the keys Lambda's log-level filter reads are never a property's.
        root.insert("level".into(), json!(LEVEL));
        root.insert("timestamp".into(), json!(rfc3339(timestamp_ms)));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// The document as one line of JSON (no trailing newline), stamped now.
    pub fn to_line(&self) -> String {
        self.to_json(chrono::Utc::now().timestamp_millis())
            .to_string()
    }
}

/// `timestamp_ms` (milliseconds since the Unix epoch) in RFC 3339, UTC, to the millisecond.
fn rfc3339(timestamp_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(timestamp_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where metric lines go.
#[derive(Debug, Clone)]
enum Output {
    /// One line on stdout per document (Lambda: CloudWatch Logs extracts the metrics).
    Stdout,
    /// A `debug` log line per document (the local runner).
    Log,
    /// Nowhere.
    Off,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

/// The lines a [`Metrics::memory`] emitter has written.
#[derive(Debug, Clone, Default)]
pub struct MemoryLines(Arc<Mutex<Vec<String>>>);

impl MemoryLines {
    /// Every line so far, parsed.
    pub fn documents(&self) -> Vec<Value> {
        self.0
            .lock()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every line so far, as written.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A process's metric emitter: the function name and where lines go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: Arc<str>,
    output: Output,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::off()
    }
}

impl Metrics {
    /// An emitter that writes nothing.
    pub fn off() -> Self {
        Metrics {
            function: Arc::from("deskbridge"),
            output: Output::Off,
        }
    }

    /// An emitter that keeps its lines in memory, for tests.
    pub fn memory(function: &str) -> (Self, MemoryLines) {
        let lines = MemoryLines::default();
        let metrics = Metrics {
            function: Arc::from(function),
            output: Output::Memory(lines.0.clone()),
        };
        (metrics, lines)
    }

    /// The emitter for this process. The function name is `AWS_LAMBDA_FUNCTION_NAME` when set,
    /// else `default_function`. Lines go to stdout in Lambda (`AWS_LAMBDA_RUNTIME_API` set) and
    /// to `debug` log lines elsewhere, unless `DESKBRIDGE_METRICS` says `emf`, `log` or `off`.
    pub fn from_env(default_function: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let function = var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| default_function.into());
        let in_lambda = var("AWS_LAMBDA_RUNTIME_API").is_some();
        Metrics {
            function: Arc::from(function.as_str()),
            output: choose_output(var(METRICS_VAR).as_deref(), in_lambda),
        }
    }

    /// The function name documents are stamped with.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// Whether lines are written anywhere.
    pub fn enabled(&self) -> bool {
        !matches!(self.output, Output::Off)
    }

    /// A new document for this function.
    pub fn document(&self) -> Document {
        Document::new(&self.function)
    }

    /// Writes `doc` (nothing when it holds no metric).
    pub fn emit(&self, doc: &Document) {
        if doc.is_empty() {
            return;
        }
        match &self.output {
            Output::Off => {}
            Output::Stdout => {
                use std::io::Write;
                let mut line = doc.to_line();
                line.push('\n');
                // One write of the whole line, so it never interleaves with a log line.
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Output::Log => tracing::debug!(target: "deskbridge::metrics", "{}", doc.to_line()),
            Output::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(doc.to_line());
                }
            }
        }
    }
}

fn choose_output(setting: Option<&str>, in_lambda: bool) -> Output {
    match setting.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("emf" | "stdout" | "on") => Output::Stdout,
        Some("log") => Output::Log,
        Some("off" | "none") => Output::Off,
        Some(other) => {
            tracing::warn!(
                value = other,
                "{METRICS_VAR} is not emf, log or off; using the default"
            );
            choose_output(None, in_lambda)
        }
        None if in_lambda => Output::Stdout,
        None => Output::Log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `doc` against the EMF specification's structure and returns the directive.
    fn check_spec(doc: &Value) -> &Value {
        let root = doc.as_object().expect("the root is an object");
        let aws = root["_aws"].as_object().expect("_aws is an object");
        assert!(aws["Timestamp"].is_i64(), "Timestamp is an integer");
        let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= MAX_DIMENSIONS);
            for name in set {
                let name = name.as_str().expect("dimension names are strings");
                // Every dimension references a string member of the root.
                assert!(root[name].is_string(), "{name} is a string member");
            }
        }
        let metrics = directive["Metrics"].as_array().expect("metric definitions");
        assert!(!metrics.is_empty() && metrics.len() <= MAX_METRICS);
        for m in metrics {
            let name = m["Name"].as_str().expect("Name");
            assert!(m["Unit"].is_string());
            // Every metric references a number or an array of numbers in the root.
            match &root[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(values.len() <= MAX_VALUES);
                    assert!(values.iter().all(Value::is_number), "{name}");
                }
                other => panic!("{name} is {other}"),
            }
        }
        directive
    }

    #[test]
    fn a_document_follows_the_emf_structure() {
        let mut doc = Document::new("stack-WebhookFunction-1")
            .dimension("Source", "zendesk")
            .rollup(&[FUNCTION]);
        doc.count("DeliveriesAccepted", 1)
            .millis("HandleTime", Duration::from_micros(1500))
            .property("request_id", "r-1");
        let line = doc.to_line();
        assert!(!line.contains('\n'), "one line");
        let json: Value = serde_json::from_str(&line).expect("valid JSON");
        let directive = check_spec(&json);
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Source"], ["Function"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "DeliveriesAccepted", "Unit": "Count"},
                {"Name": "HandleTime", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(json["Function"], "stack-WebhookFunction-1");
        assert_eq!(json["Source"], "zendesk");
        assert_eq!(json["DeliveriesAccepted"], 1.0);
        assert_eq!(json["HandleTime"], 1.5);
        assert_eq!(json["request_id"], "r-1");
        // Lambda's log-level filter files the line as INFO, at its own time.
        assert_eq!(json["level"], "INFO");
        assert!(json["timestamp"].is_string());
    }

    #[test]
    fn repeated_values_become_an_array_and_limits_hold() {
        let mut doc = Document::new("f");
        for i in 0..150 {
            doc.count("Calls", i);
        }
        doc.record("NotANumber", Unit::Count, f64::NAN);
        let json = doc.to_json(1_700_000_000_000);
        check_spec(&json);
        assert_eq!(json["Calls"].as_array().map(Vec::len), Some(MAX_VALUES));
        assert!(json.get("NotANumber").is_none());
        assert_eq!(json["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["level"], "INFO");
    }

    #[test]
    fn dimension_values_are_never_empty_and_rollups_keep_known_names() {
        let doc = Document::new("f")
            .dimension("Source", "")
            .dimension("Source", "intercom")
            .dimension("Stream", "")
            .rollup(&["Function", "Nope"])
            .rollup(&["Function", "Nope"]);
        let mut doc = doc;
        doc.count("X", 1);
        let json = doc.to_json(0);
        let directive = check_spec(&json);
        assert_eq!(json["Source"], "intercom");
        assert_eq!(json["Stream"], "none");
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Source", "Stream"], ["Function"]])
        );
    }

    #[test]
    fn empty_documents_are_not_written_and_memory_keeps_the_rest() {
        let (metrics, lines) = Metrics::memory("fn");
        metrics.emit(&metrics.document());
        assert!(lines.lines().is_empty());
        let mut doc = metrics.document();
        doc.count("X", 2);
        metrics.emit(&doc);
        let docs = lines.documents();
        assert_eq!(docs.len(), 1);
        check_spec(&docs[0]);
        assert_eq!(docs[0]["Function"], "fn");
        assert_eq!(docs[0]["X"], 2.0);
    }

    #[test]
    fn output_is_stdout_in_lambda_and_a_debug_line_elsewhere() {
        assert!(matches!(choose_output(None, true), Output::Stdout));
        assert!(matches!(choose_output(None, false), Output::Log));
        assert!(matches!(choose_output(Some("EMF"), false), Output::Stdout));
        assert!(matches!(choose_output(Some("off"), true), Output::Off));
        assert!(matches!(choose_output(Some("log"), true), Output::Log));
        assert!(matches!(choose_output(Some("loud"), true), Output::Stdout));
        assert!(!Metrics::off().enabled());
    }
}
