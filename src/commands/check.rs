//! `deskbridge check [SOURCE|brevo]`: connection tests, one line per check.

use std::io::Write;

use anyhow::bail;
use chrono::Utc;
use deskbridge_shared::brevo::{BrevoApi, BrevoError};
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::{CheckStreams, Finding, Registry};
use deskbridge_shared::http as helpdesk_http;
use deskbridge_shared::model::Source;
use deskbridge_shared::sync::{FetchError, PageRequest};
use serde::Serialize;
use serde_json::Value;

use super::{brevo_client, count};
use crate::output::{self, Format};

/// What `deskbridge check` tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// Brevo, every built-in helpdesk and every further account the configuration file names
    /// (unconfigured ones are reported, not failed).
    All,
    Brevo,
    Source(Source),
}

impl std::str::FromStr for CheckTarget {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "all" => Ok(CheckTarget::All),
            "brevo" => Ok(CheckTarget::Brevo),
            other => match other.parse::<Source>()? {
                Source::Generic(_) => {
                    bail!("generic sources only receive webhooks; there is no API to check")
                }
                source => Ok(CheckTarget::Source(source)),
            },
        }
    }
}

/// One line of a `check` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    /// `pass`, `fail`, or `note` (said, neither passed nor failed).
    pub result: &'static str,
    /// `brevo`, `zendesk`, `intercom`, `gorgias` or a further account (`zendesk:brand2`).
    pub target: String,
    /// What was checked and, on a failure, why (without the target).
    pub check: String,
}

impl CheckLine {
    fn new(result: &'static str, what: &str) -> Self {
        let (target, check) = what.split_once(": ").unwrap_or(("", what));
        CheckLine {
            result,
            target: target.to_string(),
            check: check.to_string(),
        }
    }
}

/// Counts and lines of a `check` run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CheckSummary {
    pub passed: usize,
    pub failed: usize,
    /// Every line, in order.
    pub checks: Vec<CheckLine>,
}

impl CheckSummary {
    fn line(&mut self, out: &mut impl Write, ok: bool, what: &str) -> std::io::Result<()> {
        if ok {
            self.passed += 1;
            self.checks.push(CheckLine::new("pass", what));
            writeln!(out, "✓ {what}")
        } else {
            self.failed += 1;
            self.checks.push(CheckLine::new("fail", what));
            writeln!(out, "✗ {what}")
        }
    }

    fn note(&mut self, out: &mut impl Write, what: &str) -> std::io::Result<()> {
        self.checks.push(CheckLine::new("note", what));
        writeln!(out, "- {what}")
    }

    fn add(&mut self, other: CheckSummary) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.checks.extend(other.checks);
    }
}

/// A Brevo error in a few words, naming the likely fix.
fn brevo_reason(e: &BrevoError) -> String {
    match e {
        BrevoError::Rejected { status: 401, .. } => {
            "HTTP 401: the key was refused; check BREVO_API_KEY (an API v3 key, xkeysib-…)".into()
        }
        BrevoError::Rejected {
            status: 403,
            message,
            ..
        } => format!("HTTP 403: {message} (API key restrictions or IP allow-list?)"),
        other => other.to_string(),
    }
}

/// The Brevo checks: authentication (`GET /account`) and the attribute listing.
pub async fn check_brevo(
    brevo: &dyn BrevoApi,
    out: &mut impl Write,
) -> anyhow::Result<CheckSummary> {
    let mut s = CheckSummary::default();
    match brevo.account().await {
        Ok(account) => {
            let who = ["companyName", "email"]
                .iter()
                .find_map(|k| account.get(*k).and_then(Value::as_str))
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!(" (account: {v})"))
                .unwrap_or_default();
            s.line(out, true, &format!("brevo: authentication{who}"))?;
        }
        Err(e) => {
            s.line(
                out,
                false,
                &format!("brevo: authentication — {}", brevo_reason(&e)),
            )?;
            // Every other call would fail the same way.
            s.line(
                out,
                false,
                "brevo: attributes listable — not tried (authentication failed)",
            )?;
            return Ok(s);
        }
    }
    match brevo.list_attributes().await {
        Ok(list) => s.line(
            out,
            true,
            &format!(
                "brevo: attributes listable ({})",
                count(list.len(), "attribute")
            ),
        )?,
        Err(e) => s.line(
            out,
            false,
            &format!("brevo: attributes listable — {}", brevo_reason(&e)),
        )?,
    }
    Ok(s)
}

/// The checks of one helpdesk: authentication with the people stream, tickets, CSAT, tags.
/// `explicit`: the operator named this source, so a missing configuration is a failure.
pub async fn check_source(
    settings: &Settings,
    source: &Source,
    explicit: bool,
    out: &mut impl Write,
) -> anyhow::Result<CheckSummary> {
    let mut s = CheckSummary::default();
    if !settings.file.source_enabled(source) {
        s.note(
            out,
            &format!("{source}: disabled in the configuration file (DESKBRIDGE_CONFIG)"),
        )?;
        return Ok(s);
    }
    let registry = Registry::built_in();
    let Some(helpdesk) = registry.get(source) else {
        s.line(out, false, &format!("{source}: not a known helpdesk"))?;
        return Ok(s);
    };
    let Some(CheckStreams {
        people,
        tickets,
        csat,
    }) = helpdesk.check_streams()
    else {
        s.note(
            out,
            &format!("{source}: only receives webhooks; there is no API to check"),
        )?;
        return Ok(s);
    };
    let missing = helpdesk.missing_api_variables(settings);
    let client = helpdesk_http::client()?;
    let ready = (
        helpdesk.reader(settings, &client),
        helpdesk.check_api(settings),
    );
    let (Some(reader), Some(api), true) = (ready.0, ready.1, missing.is_empty()) else {
        let what = if missing.is_empty() {
            "the HTTP client could not be built".to_string()
        } else {
            format!("API not configured: {} not set", missing.join(", "))
        };
        if explicit {
            s.line(out, false, &format!("{source}: {what}"))?;
        } else {
            s.note(out, &format!("{source}: {what}"))?;
        }
        return Ok(s);
    };
    let mut authenticated = true;
    for finding in api.authentication(&client).await {
        match finding {
            Finding::Note(what) => s.note(out, &format!("{source}: {what}"))?,
            Finding::Pass(what) => s.line(out, true, &format!("{source}: {what}"))?,
            Finding::Fail(what) => {
                authenticated = false;
                s.line(out, false, &format!("{source}: {what}"))?;
            }
        }
    }
    if !authenticated {
        // No usable credentials: every API call would fail the same way.
        for what in [
            "authentication".to_string(),
            format!("{people} readable"),
            format!("{tickets} readable"),
            "CSAT available".to_string(),
            "tags listable".to_string(),
        ] {
            s.line(
                out,
                false,
                &format!("{source}: {what} — not tried (authentication failed)"),
            )?;
        }
        return Ok(s);
    }
    let fetch = |stream: &str| PageRequest {
        stream: stream.to_string(),
        cursor: None,
        bookmark: None,
        full: true,
        since: None,
        run_started_at: Utc::now(),
        page_size: 1,
    };

    // The first read proves authentication: one line for each, as the seeds list them.
    let auth = reader.fetch_page(&fetch(people)).await;
    let auth_refused = matches!(auth, Err(FetchError::Rejected(_)));
    match auth {
        Ok(_) => {
            s.line(out, true, &format!("{source}: authentication"))?;
            s.line(out, true, &format!("{source}: {people} readable"))?;
        }
        Err(e) if auth_refused => s.line(out, false, &format!("{source}: authentication — {e}"))?,
        Err(e) => {
            s.line(
                out,
                false,
                &format!("{source}: authentication — no answer to tell by: {e}"),
            )?;
            s.line(out, false, &format!("{source}: {people} readable — {e}"))?;
        }
    }
    if auth_refused {
        // Bad credentials or a wrong base URL: the other calls would say the same.
        for what in [
            format!("{people} readable"),
            format!("{tickets} readable"),
            "CSAT available".to_string(),
            "tags listable".to_string(),
        ] {
            s.line(
                out,
                false,
                &format!("{source}: {what} — not tried (the first request was refused)"),
            )?;
        }
        return Ok(s);
    }

    let tickets_ok = match reader.fetch_page(&fetch(tickets)).await {
        Ok(_) => {
            s.line(out, true, &format!("{source}: {tickets} readable"))?;
            true
        }
        Err(e) => {
            s.line(out, false, &format!("{source}: {tickets} readable — {e}"))?;
            false
        }
    };
    match csat {
        Some(stream) => match reader.fetch_page(&fetch(stream)).await {
            Ok(_) => s.line(out, true, &format!("{source}: CSAT available ({stream})"))?,
            Err(e) => s.line(
                out,
                false,
                &format!("{source}: CSAT available ({stream}) — {e}"),
            )?,
        },
        // Ratings come on the tickets (Intercom's `conversation_rating`).
        None => s.line(
            out,
            tickets_ok,
            &format!(
                "{source}: CSAT available (conversation_rating, read with the {tickets}){}",
                if tickets_ok {
                    ""
                } else {
                    " — not readable, see above"
                }
            ),
        )?,
    }
    match api.count_tags(&client).await {
        Ok(_) => s.line(out, true, &format!("{source}: tags listable"))?,
        Err(e) => s.line(out, false, &format!("{source}: tags listable — {e}"))?,
    }
    // The tags `tag_lists` maps: a tag the helpdesk does not have is probably a typo (or one
    // not created yet), so it is said, not failed.
    let configured = settings.mapping.source(source).tag_lists;
    if !configured.is_empty() {
        match api.tag_names(&client).await {
            Ok(Some(names)) => {
                let missing =
                    deskbridge_shared::helpdesk::check::missing_tags(configured.keys(), &names);
                if missing.is_empty() {
                    s.note(
                        out,
                        &format!(
                            "{source}: every tag of tag_lists exists ({})",
                            configured.len()
                        ),
                    )?;
                } else {
                    s.note(
                        out,
                        &format!(
                            "{source}: tag_lists names tags {source} does not have (yet): {} \
                             (a typo? tags match whatever their case)",
                            missing.join(", ")
                        ),
                    )?;
                }
            }
            Ok(None) => s.note(
                out,
                &format!(
                    "{source}: tag_lists tags are not checked ({source} lists only recent tags)"
                ),
            )?,
            Err(e) => s.note(out, &format!("{source}: tag_lists tags not checked — {e}"))?,
        }
    }
    Ok(s)
}

/// The Brevo webhook of the two-way path, when it is on (`BREVO_WEBHOOK_TOKEN` set): a marketing
/// webhook posts every event deskbridge acts on to its `/webhooks/brevo` route.
async fn check_brevo_webhook(
    client: &deskbridge_shared::brevo::BrevoClient,
    settings: &Settings,
    base_url: Option<&str>,
    s: &mut CheckSummary,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if settings.brevo_inbound.webhook_token.is_none() {
        // Two-way is off: no webhook is expected.
        return Ok(());
    }
    let url = base_url.map(super::connect::brevo_route).transpose()?;
    match client.marketing_webhooks().await {
        Ok(webhooks) => match super::connect::webhook_finding(
            &webhooks,
            url.as_deref(),
            &super::connect::brevo_events(settings),
        ) {
            Ok(line) => s.line(out, true, &line)?,
            Err(line) => s.line(out, false, &line)?,
        },
        Err(e) => s.line(
            out,
            false,
            &format!("brevo: webhooks listable — {}", brevo_reason(&e)),
        )?,
    }
    Ok(())
}

/// `deskbridge check [SOURCE|brevo]`: one line per check, `✓`/`✗` and a short reason.
pub async fn check(
    settings: &Settings,
    target: &CheckTarget,
    out: &mut impl Write,
) -> anyhow::Result<CheckSummary> {
    check_with(settings, target, None, out).await
}

/// [`check`], knowing the deployment's webhook base URL (the stack's `WebhookBaseUrl`), so the
/// Brevo webhook is looked for at its exact URL.
pub async fn check_with(
    settings: &Settings,
    target: &CheckTarget,
    webhook_base_url: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<CheckSummary> {
    let mut total = CheckSummary::default();
    if matches!(target, CheckTarget::All | CheckTarget::Brevo) {
        match brevo_client(settings)? {
            Some(client) => {
                let mut s = check_brevo(&client, out).await?;
                if s.failed == 0 {
                    check_brevo_webhook(&client, settings, webhook_base_url, &mut s, out).await?;
                }
                total.add(s);
            }
            None => {
                let mut s = CheckSummary::default();
                s.line(
                    out,
                    false,
                    "brevo: BREVO_API_KEY not set (dry-run: nothing is sent to Brevo)",
                )?;
                total.add(s);
            }
        }
    }
    match target {
        CheckTarget::All => {
            // The built-in helpdesks, then the further accounts the file names.
            let accounts: Vec<Source> = settings.account_sources().collect();
            for source in Source::BUILT_IN.iter().chain(&accounts) {
                total.add(check_source(settings, source, false, out).await?);
            }
        }
        CheckTarget::Source(source) => total.add(check_source(settings, source, true, out).await?),
        CheckTarget::Brevo => {}
    }
    Ok(total)
}

/// `deskbridge check [TARGET] [--json] [--stack-name S]`: exits non-zero when a check fails.
pub async fn run(
    stack_name: Option<&str>,
    target: &CheckTarget,
    format: Format,
) -> anyhow::Result<()> {
    let (_sdk, settings, vars) = crate::settings::load_for(stack_name, "check", &[]).await?;
    let base_url = vars.get(super::connect::BASE_URL_VAR);
    let base_url = base_url.as_deref();
    let summary = if format == Format::Json {
        let summary = check_with(&settings, target, base_url, &mut std::io::sink()).await?;
        output::write_json(
            &mut std::io::stdout().lock(),
            &serde_json::to_value(&summary)?,
        )?;
        summary
    } else {
        check_with(&settings, target, base_url, &mut std::io::stdout()).await?
    };
    if summary.failed > 0 {
        anyhow::bail!(
            "{} of {} checks failed",
            summary.failed,
            summary.failed + summary.passed
        );
    }
    Ok(())
}
