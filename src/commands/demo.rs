//! `deskbridge demo`: replays the sample webhook requests of `events/` against a running local
//! runner, signed afresh with the secrets in the environment, and waits until the upsert queue
//! has been worked off. Samples of generic sources are sent only when the configuration file
//! enables them (with their secret set); otherwise they are skipped with a note.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::model::Source;
use serde_json::Value;

/// The sample webhook files shipped in `events/`.
pub fn default_files() -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("events")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("webhook-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A request read from an API Gateway v2 event file.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    pub path: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

fn read_event(file: &Path) -> anyhow::Result<(Value, String, Source)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let event: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let path = event["rawPath"]
        .as_str()
        .context("event has no rawPath")?
        .to_string();
    let source = deskbridge_webhook::source_segment(&path)
        .and_then(|name| name.parse::<Source>().ok())
        .with_context(|| format!("{}: unknown source in rawPath `{path}`", file.display()))?;
    Ok((event, path, source))
}

/// The source an event file is addressed to (from its `rawPath`).
pub fn sample_source(file: &Path) -> anyhow::Result<Source> {
    read_event(file).map(|(_, _, source)| source)
}

/// Reads an event file and signs its body for now with the configured secrets.
pub fn signed_request(file: &Path, settings: &Settings) -> anyhow::Result<SampleRequest> {
    let (event, path, source) = read_event(file)?;
    let body = event["body"]
        .as_str()
        .context("event has no body")?
        .to_string();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    let unset = || source.variable_prefix();
    match &source.vendor() {
        Source::Zendesk => {
            let secret = settings
                .zendesk_of(&source)
                .and_then(|z| z.webhook_secret.as_deref())
                .with_context(|| format!("{}WEBHOOK_SECRET is not set", unset()))?;
            let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            headers.push((
                "x-zendesk-webhook-signature".into(),
                signature::sign_zendesk(secret, &ts, body.as_bytes()),
            ));
            headers.push(("x-zendesk-webhook-signature-timestamp".into(), ts));
            if let Some(id) = event["headers"]["x-zendesk-webhook-invocation-id"].as_str() {
                headers.push(("x-zendesk-webhook-invocation-id".into(), id.to_string()));
            }
        }
        Source::Intercom => {
            let secret = settings
                .intercom_of(&source)
                .and_then(|i| i.client_secret.as_deref())
                .with_context(|| format!("{}CLIENT_SECRET is not set", unset()))?;
            headers.push((
                "x-hub-signature".into(),
                signature::sign_intercom(secret, body.as_bytes()),
            ));
        }
        Source::Gorgias => {
            let token = settings
                .gorgias_of(&source)
                .and_then(|g| g.webhook_token.as_deref())
                .with_context(|| format!("{}WEBHOOK_TOKEN is not set", unset()))?;
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        Source::Generic(name) => {
            let config = settings.file.generic.get(name).with_context(|| {
                format!(
                    "{source} has no auth and fields in the configuration file (DESKBRIDGE_CONFIG)"
                )
            })?;
            let secret = settings
                .generic_secrets
                .get(name)
                .with_context(|| format!("{} is not set", config.auth.secret_var()))?;
            headers.extend(config.auth.request_headers(
                secret,
                body.as_bytes(),
                chrono::Utc::now(),
            ));
        }
        Source::Added(_) | Source::Account(_) => {
            bail!("{source}: samples are signed for the built-in and generic sources only")
        }
    }
    Ok(SampleRequest {
        path,
        body,
        headers,
    })
}

/// Messages in a queue: visible, in flight, and delayed (waiting to be retried).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .context("reading the upsert queue depth")?;
    let attrs = out.attributes().cloned().unwrap_or_default();
    let get = |k: QueueAttributeName| {
        attrs
            .get(&k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Delayed messages are those waiting to be retried: the queue is not drained while any is.
    Ok(get(QueueAttributeName::ApproximateNumberOfMessages)
        + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        + get(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
}

/// Sends every file, then waits for the upsert queue to drain.
pub async fn run(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    base_url: &str,
    files: &[PathBuf],
    wait: Duration,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut accepted = 0usize;
    let mut sent = 0usize;
    for file in files {
        if let Source::Generic(name) = sample_source(file)?
            && !settings.webhook_enabled(&Source::Generic(name.clone()))
        {
            println!(
                "demo: {} skipped: generic:{name} is not enabled (configure it in \
                 DESKBRIDGE_CONFIG and set its secret)",
                file.display()
            );
            continue;
        }
        let req = signed_request(file, settings)?;
        sent += 1;
        let mut builder = http.post(format!("{}{}", base_url.trim_end_matches('/'), req.path));
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let resp = builder
            .body(req.body)
            .send()
            .await
            .with_context(|| format!("POST {}", req.path))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        println!("demo: {} -> {} {}", file.display(), status.as_u16(), text);
        if status.is_success() {
            accepted += 1;
        }
    }
    let Some(url) = settings.upsert_queue_url.as_deref() else {
        println!("demo: {accepted}/{sent} accepted (UPSERT_QUEUE_URL not set: not waiting)");
        return Ok(());
    };
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let start = Instant::now();
    loop {
        let depth = queue_depth(&sqs, url).await?;
        if depth == 0 {
            println!(
                "demo: {accepted}/{sent} accepted; upsert queue drained in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if start.elapsed() > wait {
            bail!("upsert queue still holds {depth} message(s) after {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
