//! `deskbridge preview FILE`: the Brevo requests a delivery (or a job of canonical records)
//! would produce under the current configuration, printed and not sent.
//!
//! The delivery goes through the same code as a deployed one: the helpdesk's parser (from the
//! registry), then the upsert function's `Upserter` with the configured mapping, against a
//! dry-run Brevo client and an empty in-memory state, so what is printed is what a first
//! delivery would send. Signatures are not checked (the point is the mapping), and helpdesk
//! look-ups are only made with `--lookup` (a record that would need one says so).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use deskbridge_shared::brevo::{DryRunBrevo, DryRunOutput, DryRunRequest};
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::{HelpdeskLookup, Parsed, PersonLookup, Registry};
use deskbridge_shared::memory::{MemoryStateStore, NoLookup};
use deskbridge_shared::model::{Job, Origin, Source};
use deskbridge_shared::queue::Message;
use deskbridge_upsert::{Stats, Upserter};
use serde::Serialize;
use serde_json::Value;

use crate::output::{self, Format};

/// What a preview reads: a webhook delivery, or a job of canonical records.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Delivery {
        source: Source,
        headers: http::HeaderMap,
        body: Vec<u8>,
    },
    Job(Job),
}

/// Reads a preview input: an API Gateway v2 request file (as in `events/`: the source from its
/// `rawPath`, its headers and body), a job as it sits on the upsert queue, or a bare webhook
/// body, which needs `source`.
pub fn read_input(text: &str, source: Option<&str>) -> anyhow::Result<Input> {
    let value: Value = serde_json::from_str(text).context("the file is not JSON")?;
    let named = source
        .map(|s| s.parse::<Source>())
        .transpose()
        .context("--source")?;
    if let (Some(path), Some(body)) = (
        value.get("rawPath").and_then(Value::as_str),
        value.get("body").and_then(Value::as_str),
    ) {
        let from_path =
            deskbridge_webhook::source_segment(path).and_then(|name| name.parse::<Source>().ok());
        let Some(source) = named.or(from_path) else {
            bail!("rawPath `{path}` names no source; say which with --source");
        };
        let mut headers = http::HeaderMap::new();
        if let Some(map) = value.get("headers").and_then(Value::as_object) {
            for (name, v) in map {
                let (Ok(name), Some(Ok(v))) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    v.as_str().map(http::HeaderValue::from_str),
                ) else {
                    continue;
                };
                headers.insert(name, v);
            }
        }
        let encoded = value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
        if encoded {
            bail!("base64-encoded bodies are not read; put the JSON body in the file");
        }
        return Ok(Input::Delivery {
            source,
            headers,
            body: body.as_bytes().to_vec(),
        });
    }
    if value.get("records").is_some() && value.get("origin").is_some() {
        let job: Job = serde_json::from_value(value).context("reading the job")?;
        return Ok(Input::Job(job));
    }
    let Some(source) = named else {
        bail!(
            "a bare webhook body needs --source (zendesk, intercom, gorgias or generic:<name>); \
             a file from events/ names its source"
        );
    };
    Ok(Input::Delivery {
        source,
        headers: http::HeaderMap::new(),
        body: text.as_bytes().to_vec(),
    })
}

/// One request that would be sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewRequest {
    pub method: &'static str,
    /// Under Brevo's API base, e.g. `/v3/contacts`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl From<DryRunRequest> for PreviewRequest {
    fn from(r: DryRunRequest) -> Self {
        PreviewRequest {
            method: r.method,
            path: r.path,
            body: r.body,
        }
    }
}

/// What `preview` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    pub source: String,
    /// The delivery's topic (`ticket.created`, …); none for a job.
    pub topic: Option<String>,
    /// `accepted`, or `ignored` when the helpdesk's parser does not act on the delivery.
    pub outcome: &'static str,
    pub records: usize,
    pub requests: Vec<PreviewRequest>,
    /// What the upsert counted (contacts, events, look-ups, …), as `name=value` pairs.
    pub counters: String,
    pub notes: Vec<String>,
}

impl Preview {
    /// The plain-text form: one block per request, the body pretty-printed.
    pub fn write_plain(&self, out: &mut impl Write) -> anyhow::Result<()> {
        let topic = self
            .topic
            .as_deref()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{}{topic}: {}, {} record(s), {} Brevo request(s)",
            self.source,
            self.outcome,
            self.records,
            self.requests.len()
        )?;
        for request in &self.requests {
            writeln!(out)?;
            writeln!(out, "{} {}", request.method, request.path)?;
            if let Some(body) = &request.body {
                writeln!(out, "{}", serde_json::to_string_pretty(body)?)?;
            }
        }
        if !self.counters.is_empty() {
            writeln!(out)?;
            writeln!(out, "counted: {}", self.counters)?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        Ok(())
    }
}

/// Runs `input` through the parser and the upsert against a dry-run Brevo. With `lookup`, the
/// helpdesk APIs configured in `settings` are called for records that name a person by id only.
pub async fn preview(
    settings: &Settings,
    input: Input,
    lookup: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<Preview> {
    let registry = Registry::built_in();
    let (job, topic) = match input {
        Input::Job(job) => (job, None),
        Input::Delivery {
            source,
            headers,
            body,
        } => {
            if registry.get(&source).is_none() {
                bail!("`{source}` is not a helpdesk deskbridge serves");
            }
            let parsed = registry
                .parse_webhook(settings, &source, &headers, &body, now)
                .map_err(|e| anyhow::anyhow!("{source} would answer 400: {e}"))?;
            let delivery = match parsed {
                Parsed::Accepted(delivery) => delivery,
                Parsed::Ignored { topic } => {
                    return Ok(Preview {
                        source: source.to_string(),
                        topic: Some(topic),
                        outcome: "ignored",
                        records: 0,
                        requests: Vec::new(),
                        counters: String::new(),
                        notes: vec!["not an event deskbridge acts on: nothing is sent".into()],
                    });
                }
            };
            let job = Job {
                id: format!("{source}:{}", delivery.delivery_id),
                source,
                origin: Origin::Webhook,
                received_at: now,
                correlation_id: None,
                records: delivery.records,
            };
            (job, Some(delivery.topic))
        }
    };
    let brevo = Arc::new(DryRunBrevo::with_output(DryRunOutput::Silent));
    let stats = if lookup {
        run_upsert(
            settings,
            &job,
            Arc::clone(&brevo),
            HelpdeskLookup::new(settings),
        )
        .await?
    } else {
        run_upsert(settings, &job, Arc::clone(&brevo), NoLookup).await?
    };
    let mut notes = Vec::new();
    if !lookup && stats.lookups_unresolved > 0 {
        notes.push(format!(
            "{} person(s) named by id only were not looked up; --lookup asks the helpdesk's API",
            stats.lookups_unresolved
        ));
    }
    if !settings.file.source_enabled(&job.source) {
        notes.push(format!(
            "{} is disabled in the configuration file: its deliveries are refused",
            job.source
        ));
    }
    Ok(Preview {
        source: job.source.to_string(),
        topic,
        outcome: "accepted",
        records: job.records.len(),
        requests: brevo.requests().into_iter().map(Into::into).collect(),
        counters: stats.to_string(),
        notes,
    })
}

/// The upsert function's handling of `job` as one message, against an empty state.
async fn run_upsert<L: PersonLookup>(
    settings: &Settings,
    job: &Job,
    brevo: Arc<DryRunBrevo>,
    lookup: L,
) -> anyhow::Result<Stats> {
    let upserter = Upserter::new(
        brevo,
        MemoryStateStore::new(),
        lookup,
        settings.mapping.clone(),
    );
    let body = serde_json::to_string(job)?;
    let report = upserter.handle(&[Message::new("preview", body)]).await;
    if !report.failed.is_empty() {
        bail!("the upsert could not handle the job ({})", report.stats);
    }
    Ok(report.stats)
}

/// `deskbridge preview FILE [--source S] [--lookup] [--json] [--stack-name S]`.
pub async fn run(
    stack_name: Option<&str>,
    file: &Path,
    source: Option<&str>,
    lookup: bool,
    format: Format,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let input = read_input(&text, source).with_context(|| format!("{}", file.display()))?;
    let (_sdk, settings, _) = crate::settings::load_for(stack_name, "preview", &[]).await?;
    let found = preview(&settings, input, lookup, Utc::now()).await?;
    let mut stdout = std::io::stdout().lock();
    if format == Format::Json {
        output::write_json(&mut stdout, &serde_json::to_value(&found)?)?;
    } else {
        found.write_plain(&mut stdout)?;
    }
    Ok(())
}
