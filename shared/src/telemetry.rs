//! Logging set-up: JSON lines in Lambda, readable lines on a terminal.
//!
//! In Lambda every line is one JSON object with the event's fields, the current span's fields
//! (`span`) and every enclosing span's (`spans`): the invocation span (request id, source), the
//! message span (job id, correlation id). So a `brevo call` line names the webhook delivery it
//! came from. `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the function's log level), else
//! `RUST_LOG`, else `info` filters them.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The JSON subscriber of the Lambda functions, writing to `writer`. No timestamp: Lambda adds
/// its own to every line.
pub fn json_subscriber<W>(writer: W, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .without_time()
        .with_writer(writer)
        .finish()
}

/// Installs the global subscriber once. `json` selects JSON lines (Lambda, CloudWatch).
pub fn init(json: bool) {
    let filter = env_filter();
    // A second call (tests) keeps the first subscriber.
    if json {
        let _ = json_subscriber(io::stdout, filter).try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .try_init();
    }
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
    let logs = CapturedLogs::default();
    let subscriber = json_subscriber(logs.clone(), EnvFilter::new(filter));
    (tracing::Dispatch::new(subscriber), logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_every_enclosing_span() {
        let (dispatch, logs) = capture_json("info");
        tracing::dispatcher::with_default(&dispatch, || {
            let outer = tracing::info_span!("invocation", request_id = "r-1");
            let _o = outer.enter();
            let inner = tracing::info_span!("message", correlation_id = "c-1");
            let _i = inner.enter();
            tracing::info!(path = "/contacts", "brevo call");
            tracing::debug!("filtered out");
        });
        let lines = logs.json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["fields"]["message"], "brevo call");
        assert_eq!(line["span"]["correlation_id"], "c-1");
        assert_eq!(line["spans"][0]["request_id"], "r-1");
        assert_eq!(line["spans"][1]["name"], "message");
        assert!(line.get("timestamp").is_none());
    }
}
