//! Logging set-up: JSON lines in Lambda, readable lines on a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. `json` selects JSON lines (Lambda, CloudWatch).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if json {
        builder
            .json()
            .with_current_span(true)
            .without_time()
            .try_init()
    } else {
        builder.try_init()
    };
    // A second call (tests) keeps the first subscriber.
    let _ = result;
}
