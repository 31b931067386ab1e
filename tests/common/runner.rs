//! The local runner (`deskbridge serve`) on a loopback port for a test, stopped cleanly at
//! its end, and a way to post to it.

use std::time::Duration;

use deskbridge::commands::serve;
use deskbridge_shared::config::Settings;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Runner {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Runner {
    pub async fn start(sdk: &aws_config::SdkConfig, settings: Settings) -> Runner {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let sdk = sdk.clone();
        let task = tokio::spawn(async move {
            serve::serve_on(listener, &sdk, settings, async {
                let _ = rx.await;
            })
            .await
        });
        Runner {
            base,
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let outcome = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        assert!(
            matches!(outcome, Ok(Ok(Ok(())))),
            "runner stopped cleanly: {outcome:?}"
        );
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut req = client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.body(body.into()).send().await.expect("runner answers");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }
}
