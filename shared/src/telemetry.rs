//! Logging set-up: JSON lines in Lambda, readable lines on a terminal.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The filter of every process: `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The JSON-lines subscriber of the Lambda functions, writing to `writer`: one object per event
/// with its fields and the current span, no timestamp (CloudWatch adds one). Tests install it
/// with an in-memory writer to read exactly what Lambda would log.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .without_time()
        .finish()
}

/// Installs the global subscriber once. `json` selects JSON lines (Lambda, CloudWatch).
pub fn init(json: bool) {
    use tracing_subscriber::util::SubscriberInitExt;
    // A second call (tests) keeps the first subscriber.
    if json {
        let _ = json_subscriber(env_filter(), std::io::stdout).try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(env_filter())
            .with_target(false)
            .try_init();
    }
}
