//! Helpers shared by the upsert handler's tests: a Brevo client for a wiremock server, and what
//! that server received.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use deskbridge_shared::brevo::{BrevoClient, RateGovernor, RetryPolicy};
use serde_json::Value;
use wiremock::MockServer;

/// A Brevo client for `server`: production behaviour, with a fast account (tests are about what
/// is written, not pacing) and short backoff so outages are quick to test.
pub fn brevo_client(server: &MockServer) -> BrevoClient {
    BrevoClient::new("xkeysib-test", &format!("{}/v3", server.uri()))
        .expect("client builds")
        .with_governor(Arc::new(RateGovernor::new(1000, 1_000_000)))
        .with_retry(RetryPolicy {
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        })
}

/// Bodies of the requests `server` received on `route`, in order.
pub async fn bodies(server: &MockServer, route: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == route)
        .map(|r| r.body_json::<Value>().expect("JSON body"))
        .collect()
}
