//! Operator commands that prepare and repair a deployment: `plan` (the Brevo attributes and
//! lists the mapping needs), `check` (connection tests) and `replay` (dead letters back to their
//! queue).
//!
//! Each command's core takes its inputs (settings, clients, an output writer) so the tests call
//! it directly; `main.rs` only builds the clients and picks stdout.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;

use anyhow::{Context, bail};
use chrono::Utc;
use deskbridge_shared::brevo::{AttributeInfo, BrevoApi, BrevoClient, BrevoError, RetryPolicy};
use deskbridge_shared::config::Settings;
use deskbridge_shared::helpdesk::reader_for;
use deskbridge_shared::helpdesk::zendesk::auth::{
    API_TOKEN_END, SendError, ZendeskAuth, ZendeskCredentials,
};
use deskbridge_shared::http as helpdesk_http;
use deskbridge_shared::mapping::{SourceMapping, Transform};
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::{InMessage, Queue};
use deskbridge_shared::sync::{FetchError, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// =============================================================================================
// plan
// =============================================================================================

/// `1 message`, `2 messages`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Attributes every Brevo account has; they may be missing from a listing and are never created.
pub const BUILT_IN_ATTRIBUTES: [&str; 4] = ["FIRSTNAME", "LASTNAME", "SMS", "EMAIL"];

/// The Brevo attribute type (`createAttribute.type`) that fits what a rule writes.
pub fn attribute_kind(transform: Transform) -> &'static str {
    match transform {
        Transform::Date => "date",
        Transform::Number => "float",
        Transform::Boolean => "boolean",
        // auto, text, phone, email, split_name, tags: all written as text.
        _ => "text",
    }
}

/// The attribute a split_name rule puts the last name in (mirrors the mapping: FIRSTNAME →
/// LASTNAME, any other `X` → `X_LAST`).
fn last_name_attribute(first: &str) -> String {
    if first == "FIRSTNAME" {
        "LASTNAME".into()
    } else {
        format!("{first}_LAST")
    }
}

/// One attribute the mapping writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededAttribute {
    pub name: String,
    /// Every Brevo type some source writes it as (more than one is a configuration conflict).
    pub kinds: BTreeSet<&'static str>,
    /// The sources that write it.
    pub sources: BTreeSet<String>,
}

/// One list the mapping adds contacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededList {
    pub id: i64,
    /// What it is used for, e.g. `gorgias all_contacts`, `zendesk tag vip`.
    pub uses: Vec<String>,
}

/// What the mapping needs in Brevo for `sources`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    pub attributes: BTreeMap<String, NeededAttribute>,
    pub lists: BTreeMap<i64, NeededList>,
}

/// Collects the attributes and lists the mapping of each of `sources` writes.
pub fn needs(settings: &Settings, sources: &[Source]) -> Needs {
    let mut needs = Needs::default();
    for source in sources {
        let sm: SourceMapping = settings.mapping.source(source);
        let name = source.to_string();
        let mut add = |attribute: String, kind: &'static str| {
            let entry = needs
                .attributes
                .entry(attribute.clone())
                .or_insert_with(|| NeededAttribute {
                    name: attribute,
                    kinds: BTreeSet::new(),
                    sources: BTreeSet::new(),
                });
            entry.kinds.insert(kind);
            entry.sources.insert(name.clone());
        };
        for rule in &sm.field_mapping {
            add(rule.attribute.clone(), attribute_kind(rule.transform));
            if rule.transform == Transform::SplitName {
                add(last_name_attribute(&rule.attribute), "text");
            }
        }
        let mut use_list = |id: i64, what: String| {
            needs
                .lists
                .entry(id)
                .or_insert_with(|| NeededList {
                    id,
                    uses: Vec::new(),
                })
                .uses
                .push(format!("{name} {what}"));
        };
        let lists = &sm.lists;
        for (id, what) in [
            (lists.all_contacts, "all_contacts"),
            (lists.satisfied, "satisfied"),
            (lists.dissatisfied, "dissatisfied"),
        ] {
            if let Some(id) = id {
                use_list(id, what.to_string());
            }
        }
        for (tag, id) in &sm.tag_lists {
            use_list(*id, format!("tag {tag}"));
        }
    }
    needs
}

/// The sources `plan` covers: those the configuration enables that have credentials here
/// (webhook secret or API), plus configured generic sources. When no built-in source has
/// credentials in this environment (an operator's laptop with only BREVO_API_KEY), every source
/// the configuration enables, and the note says so.
pub fn plan_sources(settings: &Settings) -> (Vec<Source>, Option<String>) {
    let enabled: Vec<Source> = Source::BUILT_IN
        .iter()
        .filter(|s| settings.file.source_enabled(s))
        .cloned()
        .collect();
    let generic: Vec<Source> = settings
        .mapping
        .sources
        .keys()
        .filter_map(|k| k.parse::<Source>().ok())
        .filter(|s| matches!(s, Source::Generic(_)) && settings.file.source_enabled(s))
        .collect();
    let configured: Vec<Source> = enabled
        .iter()
        .filter(|s| settings.webhook_enabled(s) || settings.api_enabled(s))
        .cloned()
        .collect();
    let (mut sources, note) = if configured.is_empty() {
        let names: Vec<String> = enabled.iter().map(ToString::to_string).collect();
        let note = format!(
            "no helpdesk has credentials in this environment; planning for every source the configuration enables ({})",
            names.join(", ")
        );
        (enabled, Some(note))
    } else {
        (configured, None)
    };
    sources.extend(generic);
    (sources, note)
}

/// A Brevo contact list, as `GET /v3/contacts/lists` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BrevoList {
    pub id: i64,
    #[serde(default)]
    pub name: String,
}

/// Every contact list of the account: `GET {base}/contacts/lists?limit=50&offset=…`, page by
/// page. (Not on [`BrevoApi`]: only `plan` needs it.)
pub async fn brevo_lists(base_url: &str, api_key: &str) -> anyhow::Result<Vec<BrevoList>> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        lists: Vec<BrevoList>,
        #[serde(default)]
        count: Option<u64>,
    }
    const PAGE: usize = 50;
    // 200 pages = 10,000 lists: a bound against a server that never stops paging.
    const MAX_PAGES: usize = 200;
    let client = helpdesk_http::client().context("building the HTTP client")?;
    let base = base_url.trim_end_matches('/');
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let offset = page * PAGE;
        let response = client
            .get(format!(
                "{base}/contacts/lists?limit={PAGE}&offset={offset}"
            ))
            .header("api-key", api_key.trim())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            bail!("Brevo answered HTTP {status} to GET /contacts/lists");
        }
        let body: Page = response
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("unreadable list page: {}", e.without_url()))?;
        let got = body.lists.len();
        all.extend(body.lists);
        let total = body.count.and_then(|c| usize::try_from(c).ok());
        if got < PAGE || total.is_some_and(|t| all.len() >= t) {
            break;
        }
    }
    Ok(all)
}

/// What `plan` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PlanSummary {
    pub ok: usize,
    pub missing: usize,
    pub wrong_type: usize,
    /// Attributes created by `--apply`.
    pub created: usize,
    /// Attributes `--apply` failed to create.
    pub failed: usize,
    /// Lists whose existence could not be checked.
    pub unchecked: usize,
}

impl PlanSummary {
    /// Attributes and lists that still do not match the mapping: missing ones not created by
    /// `--apply`, and wrong types (never changed automatically). Lists that could not be
    /// checked are not counted.
    pub fn drift(&self) -> usize {
        self.missing.saturating_sub(self.created) + self.wrong_type
    }
}

/// One attribute or list of a plan and what the account has of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// The attribute's name, or the list's id as text.
    pub name: String,
    /// The Brevo types the mapping writes the attribute as (more than one is a conflict);
    /// empty for a list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<&'static str>,
    /// The sources that write the attribute, or what the list is used for.
    pub used_by: Vec<String>,
    /// `ok`, `built_in`, `missing`, `wrong_type`, `created`, `create_failed` or `unchecked`.
    pub status: &'static str,
    /// What the account has or why, in words (the end of the plain line).
    pub detail: Option<String>,
    /// The plain line.
    #[serde(skip)]
    line: String,
}

/// Everything `plan` found, for the plain lines or `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    /// The sources whose mapping was planned.
    pub sources: Vec<String>,
    pub note: Option<String>,
    pub attributes: Vec<PlanItem>,
    pub lists: Vec<PlanItem>,
    /// Whether `--apply` was given.
    pub apply: bool,
    pub summary: PlanSummary,
    /// No drift left (see [`PlanSummary::drift`]).
    pub in_sync: bool,
}

impl PlanReport {
    /// The plain lines: the sources, one line per attribute and list, the counts and what to
    /// do next.
    pub fn write_plain(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "mapping of: {}", self.sources.join(", "))?;
        if let Some(note) = &self.note {
            writeln!(out, "note: {note}")?;
        }
        for item in self.attributes.iter().chain(&self.lists) {
            writeln!(out, "{}", item.line)?;
        }
        let summary = &self.summary;
        writeln!(
            out,
            "{} ok, {} missing, {} wrong type{}{}",
            summary.ok,
            summary.missing,
            summary.wrong_type,
            if self.apply {
                format!(", {} created, {} failed", summary.created, summary.failed)
            } else {
                String::new()
            },
            if summary.unchecked > 0 {
                format!(", {} not checked", count(summary.unchecked, "list"))
            } else {
                String::new()
            }
        )?;
        let missing_attributes = self
            .attributes
            .iter()
            .filter(|a| a.status == "missing")
            .count();
        if !self.apply && missing_attributes > 0 {
            writeln!(
                out,
                "run `deskbridge plan --apply` to create the missing attributes"
            )?;
        }
        if summary.wrong_type > 0 {
            writeln!(
                out,
                "a wrong type is not changed automatically: Brevo cannot change an attribute's type without deleting it (and its values); fix the mapping's transform or recreate the attribute in Brevo"
            )?;
        }
        Ok(())
    }
}

/// Why `plan` cannot run without a key.
pub const PLAN_NEEDS_KEY: &str = "plan needs BREVO_API_KEY: without it deskbridge runs Brevo in dry-run, which cannot see the account's attributes and lists";

/// Whether Brevo's `existing` attribute holds what the mapping writes as `kind`.
fn same_kind(existing: &AttributeInfo, kind: &str) -> bool {
    match existing.kind.as_deref() {
        // Brevo's API says `float`; its UI (and some older answers) say `number`.
        Some("float" | "number") => kind == "float",
        Some(k) => k == kind,
        None => false,
    }
}

/// `deskbridge plan [--apply]`: compares what the mapping writes with the Brevo account and
/// prints one line per attribute and list; with `apply`, creates the missing attributes.
/// Lists are only reported: a list is referenced by id, so it must be created in Brevo and its
/// id put in the configuration.
pub async fn plan(
    settings: &Settings,
    brevo: &dyn BrevoApi,
    apply: bool,
    out: &mut impl Write,
) -> anyhow::Result<PlanSummary> {
    let report = plan_report(settings, brevo, apply).await?;
    report.write_plain(out)?;
    Ok(report.summary)
}

/// What [`plan`] prints, as data (for `--json`).
pub async fn plan_report(
    settings: &Settings,
    brevo: &dyn BrevoApi,
    apply: bool,
) -> anyhow::Result<PlanReport> {
    let Some(api_key) = settings.brevo.api_key.as_deref() else {
        bail!(PLAN_NEEDS_KEY);
    };
    let (sources, note) = plan_sources(settings);
    let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
    let needs = needs(settings, &sources);
    let existing: BTreeMap<String, AttributeInfo> = brevo
        .list_attributes()
        .await
        .context("listing Brevo attributes (GET /contacts/attributes)")?
        .into_iter()
        .map(|a| (a.name.to_ascii_uppercase(), a))
        .collect();

    let mut summary = PlanSummary::default();
    let mut attributes = Vec::new();
    for need in needs.attributes.values() {
        let used_by: Vec<String> = need.sources.iter().cloned().collect();
        let kinds: Vec<&'static str> = need.kinds.iter().copied().collect();
        let label = format!(
            "attribute {} ({}; {})",
            need.name,
            kinds.join("/"),
            used_by.join(", ")
        );
        let item = |status: &'static str, detail: Option<String>, rest: &str| PlanItem {
            name: need.name.clone(),
            types: kinds.clone(),
            used_by: used_by.clone(),
            status,
            detail,
            line: format!("{label}: {rest}"),
        };
        if kinds.len() > 1 {
            // Two sources write the same attribute as different types: one of them loses.
            summary.wrong_type += 1;
            let detail = format!(
                "the mapping writes it as {}; make the sources agree",
                kinds.join(" and ")
            );
            attributes.push(item(
                "wrong_type",
                Some(detail.clone()),
                &format!("wrong type ({detail})"),
            ));
            continue;
        }
        let kind = kinds.first().copied().unwrap_or("text");
        let built_in = BUILT_IN_ATTRIBUTES.contains(&need.name.as_str());
        let entry = match existing.get(&need.name) {
            _ if built_in => {
                summary.ok += 1;
                item("built_in", None, "ok (built in)")
            }
            Some(found) if same_kind(found, kind) => {
                summary.ok += 1;
                item("ok", None, "ok")
            }
            Some(found) => {
                summary.wrong_type += 1;
                let has = match (found.kind.as_deref(), found.category.as_str()) {
                    (Some(k), "normal" | "") => k.to_string(),
                    (Some(k), category) => format!("{category} {k}"),
                    (None, "") => "no type".to_string(),
                    (None, category) => format!("a {category} attribute"),
                };
                let detail = format!("Brevo has {has}, mapping writes {kind}");
                item(
                    "wrong_type",
                    Some(detail.clone()),
                    &format!("wrong type ({detail})"),
                )
            }
            None if !apply => {
                summary.missing += 1;
                let detail = "Brevo would silently drop it on import".to_string();
                item(
                    "missing",
                    Some(detail.clone()),
                    &format!("missing ({detail})"),
                )
            }
            None => {
                summary.missing += 1;
                match brevo.create_attribute(&need.name, kind).await {
                    Ok(()) => {
                        summary.created += 1;
                        item(
                            "created",
                            Some(format!("created as {kind}")),
                            &format!("missing, created as {kind}"),
                        )
                    }
                    Err(e) => {
                        summary.failed += 1;
                        item(
                            "create_failed",
                            Some(format!("creating it failed: {e}")),
                            &format!("missing, creating it failed: {e}"),
                        )
                    }
                }
            }
        };
        attributes.push(entry);
    }

    let mut lists = Vec::new();
    if !needs.lists.is_empty() {
        let found = brevo_lists(&settings.brevo.base_url, api_key).await;
        for list in needs.lists.values() {
            let label = format!("list {} ({})", list.id, list.uses.join(", "));
            let item = |status: &'static str, detail: Option<String>, rest: String| PlanItem {
                name: list.id.to_string(),
                types: Vec::new(),
                used_by: list.uses.clone(),
                status,
                detail,
                line: format!("{label}: {rest}"),
            };
            let entry = match &found {
                Ok(found) => match found.iter().find(|l| l.id == list.id) {
                    Some(l) => {
                        summary.ok += 1;
                        item("ok", Some(l.name.clone()), format!("ok \"{}\"", l.name))
                    }
                    None => {
                        summary.missing += 1;
                        let detail = "create it in Brevo and put its id in the configuration; --apply does not create lists".to_string();
                        item(
                            "missing",
                            Some(detail.clone()),
                            format!("missing ({detail})"),
                        )
                    }
                },
                Err(e) => {
                    summary.unchecked += 1;
                    item(
                        "unchecked",
                        Some(e.to_string()),
                        format!("not checked ({e})"),
                    )
                }
            };
            lists.push(entry);
        }
    }

    Ok(PlanReport {
        sources: names,
        note,
        attributes,
        lists,
        apply,
        in_sync: summary.drift() == 0,
        summary,
    })
}

/// The live Brevo client for `plan` and `check` (no retries: an operator is waiting and a
/// failure is the answer), or `None` without BREVO_API_KEY.
pub fn brevo_client(settings: &Settings) -> anyhow::Result<Option<BrevoClient>> {
    let Some(key) = settings.brevo.api_key.as_deref() else {
        return Ok(None);
    };
    Ok(Some(
        BrevoClient::new(key, &settings.brevo.base_url)?.with_retry(RetryPolicy::none()),
    ))
}

// =============================================================================================
// check
// =============================================================================================

/// What `deskbridge check` tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// Brevo and every built-in helpdesk (unconfigured ones are reported, not failed).
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
    /// `brevo`, `zendesk`, `intercom` or `gorgias`.
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

/// The variables a source's API access lacks (empty when configured).
pub fn missing_api_variables(settings: &Settings, source: &Source) -> Vec<&'static str> {
    let mut missing = Vec::new();
    match source {
        Source::Zendesk => {
            let z = &settings.zendesk;
            if z.base_url.is_none() {
                missing.push("ZENDESK_SUBDOMAIN (or ZENDESK_BASE_URL)");
            }
            match (&z.credentials, z.incomplete_oauth_client) {
                (Some(_), _) => {}
                (None, Some(half)) => missing.push(half),
                (None, None) => missing.push(
                    "ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET (or \
                     ZENDESK_OAUTH_TOKEN, or the legacy ZENDESK_EMAIL and ZENDESK_API_TOKEN)",
                ),
            }
        }
        Source::Intercom => {
            if settings.intercom.access_token.is_none() {
                missing.push("INTERCOM_ACCESS_TOKEN");
            }
        }
        Source::Gorgias => {
            let g = &settings.gorgias;
            if g.base_url.is_none() {
                missing.push("GORGIAS_DOMAIN (or GORGIAS_BASE_URL)");
            }
            if g.email.is_none() {
                missing.push("GORGIAS_EMAIL");
            }
            if g.api_key.is_none() {
                missing.push("GORGIAS_API_KEY");
            }
        }
        Source::Generic(_) | Source::Added(_) => {}
    }
    missing
}

/// The streams a check reads: people, tickets, and the CSAT stream (Intercom has none: ratings
/// come on conversations).
fn check_streams(source: &Source) -> (&'static str, &'static str, Option<&'static str>) {
    match source {
        Source::Zendesk => ("users", "tickets", Some("satisfaction_ratings")),
        Source::Intercom => ("contacts", "conversations", None),
        _ => ("customers", "tickets", Some("satisfaction_surveys")),
    }
}

/// `GET` the helpdesk's tag listing with the same auth as the look-ups (lookup.rs); the number
/// of tags on the first page, or why it failed.
async fn list_tags(settings: &Settings, source: &Source) -> Result<usize, String> {
    let client = helpdesk_http::client().map_err(|e| e.to_string())?;
    let request = match source {
        Source::Zendesk => {
            let Some(auth) = settings.zendesk.auth() else {
                return Err("not configured".into());
            };
            // `page[size]=1`: the first tag is enough.
            let url = format!("{}/api/v2/tags.json?page%5Bsize%5D=1", auth.base_url());
            let response = auth
                .send(&client, || {
                    client.get(&url).header("Accept", "application/json")
                })
                .await
                .map_err(|e| match e {
                    SendError::Auth(e) => e.to_string(),
                    SendError::Http(e) => transport_failure(e),
                })?;
            return tag_count(response).await;
        }
        Source::Intercom => {
            let i = &settings.intercom;
            let Some(token) = &i.access_token else {
                return Err("not configured".into());
            };
            client
                .get(format!("{}/tags", i.base_url.trim_end_matches('/')))
                .bearer_auth(token)
                .header("Intercom-Version", &i.version)
        }
        Source::Gorgias => {
            let g = &settings.gorgias;
            let (Some(base), Some(email), Some(key)) = (&g.base_url, &g.email, &g.api_key) else {
                return Err("not configured".into());
            };
            client
                .get(format!("{}/api/tags?limit=1", base.trim_end_matches('/')))
                .basic_auth(email, Some(key))
        }
        Source::Generic(_) | Source::Added(_) => return Err("no API".into()),
    };
    let response = request
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(transport_failure)?;
    tag_count(response).await
}

/// A transport failure in a few words (the URL is left out).
fn transport_failure(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        e.without_url().to_string()
    }
}

/// The number of tags on a tag listing's first page, or why the listing failed.
async fn tag_count(response: reqwest::Response) -> Result<usize, String> {
    let status = response.status();
    if !status.is_success() {
        let why = match status.as_u16() {
            401 => "bad credentials",
            403 => "forbidden: the credentials may not read tags",
            404 => "not found: check the base URL / subdomain",
            429 => "rate limited: try again in a minute",
            _ => "refused",
        };
        return Err(format!("HTTP {status}: {why}"));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|_| "the answer is not JSON: check the base URL".to_string())?;
    // Zendesk `tags`, Intercom and Gorgias `data`.
    Ok(["tags", "data"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_array))
        .map_or(0, Vec::len))
}

/// Says which Zendesk authentication is in use and, for an OAuth client, checks that the token
/// grant works (the token is kept for the checks that follow). `false` when it does not.
async fn check_zendesk_auth(
    settings: &Settings,
    auth: &ZendeskAuth,
    out: &mut impl Write,
    s: &mut CheckSummary,
) -> anyhow::Result<bool> {
    let credentials = auth.credentials();
    let note = match credentials {
        ZendeskCredentials::OAuthClient { scope, .. } => format!(", scope `{scope}`"),
        ZendeskCredentials::OAuthToken(_) => "; it cannot be renewed, an OAuth client \
            (ZENDESK_OAUTH_CLIENT_ID, ZENDESK_OAUTH_CLIENT_SECRET) can"
            .to_string(),
        ZendeskCredentials::ApiToken { .. } => format!(
            "; Zendesk stops accepting API tokens on {API_TOKEN_END}: create an OAuth client \
             and set ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET"
        ),
    };
    s.note(
        out,
        &format!(
            "zendesk: authentication method: {} ({}){note}",
            credentials.method(),
            credentials.variables()
        ),
    )?;
    if let Some(missing) = settings.zendesk.incomplete_oauth_client {
        s.note(
            out,
            &format!("zendesk: {missing} is not set, so the OAuth client is not used"),
        )?;
    }
    if !auth.can_renew() {
        return Ok(true);
    }
    let client = helpdesk_http::client()?;
    match auth.grant_now(&client).await {
        Ok(grant) => {
            let scope = grant
                .as_ref()
                .and_then(|g| g.scope.as_deref())
                .map(|scope| format!("scope `{scope}`, "))
                .unwrap_or_default();
            let lifetime = grant
                .and_then(|g| g.expires_in)
                .map_or("no expiry given".to_string(), |d| {
                    format!("valid for {}", duration_words(d))
                });
            s.line(
                out,
                true,
                &format!("zendesk: OAuth token grant ({scope}{lifetime})"),
            )?;
            Ok(true)
        }
        Err(e) => {
            s.line(out, false, &format!("zendesk: OAuth token grant — {e}"))?;
            Ok(false)
        }
    }
}

/// `48 h`, `5 min`, `40 s`.
fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 7200 {
        format!("{} h", secs / 3600)
    } else if secs >= 120 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
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
    let missing = missing_api_variables(settings, source);
    let Some(reader) = reader_for(settings, source).filter(|_| missing.is_empty()) else {
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
    let (people, tickets, csat) = check_streams(source);
    if let (Source::Zendesk, Some(auth)) = (source, settings.zendesk.auth())
        && !check_zendesk_auth(settings, &auth, out, &mut s).await?
    {
        // No token: every API call would fail the same way.
        for what in [
            format!("authentication, {people} readable"),
            format!("{tickets} readable"),
            "CSAT available".to_string(),
            "tags listable".to_string(),
        ] {
            s.line(
                out,
                false,
                &format!("{source}: {what} — not tried (no OAuth token)"),
            )?;
        }
        return Ok(s);
    }
    let fetch = |stream: &str| PageRequest {
        stream: stream.to_string(),
        cursor: None,
        bookmark: None,
        full: true,
        run_started_at: Utc::now(),
        page_size: 1,
    };

    let auth = reader.fetch_page(&fetch(people)).await;
    let auth_label = format!("{source}: authentication, {people} readable");
    let auth_refused = matches!(auth, Err(FetchError::Rejected(_)));
    match auth {
        Ok(_) => s.line(out, true, &auth_label)?,
        Err(e) => s.line(out, false, &format!("{auth_label} — {e}"))?,
    }
    if auth_refused {
        // Bad credentials or a wrong base URL: the other calls would say the same.
        for what in [
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
        // Intercom has no ratings endpoint: `conversation_rating` comes on each conversation.
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
    match list_tags(settings, source).await {
        Ok(_) => s.line(out, true, &format!("{source}: tags listable"))?,
        Err(e) => s.line(out, false, &format!("{source}: tags listable — {e}"))?,
    }
    Ok(s)
}

/// `deskbridge check [SOURCE|brevo]`: one line per check, `✓`/`✗` and a short reason.
pub async fn check(
    settings: &Settings,
    target: &CheckTarget,
    out: &mut impl Write,
) -> anyhow::Result<CheckSummary> {
    let mut total = CheckSummary::default();
    if matches!(target, CheckTarget::All | CheckTarget::Brevo) {
        match brevo_client(settings)? {
            Some(client) => total.add(check_brevo(&client, out).await?),
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
            for source in Source::BUILT_IN {
                total.add(check_source(settings, &source, false, out).await?);
            }
        }
        CheckTarget::Source(source) => total.add(check_source(settings, source, true, out).await?),
        CheckTarget::Brevo => {}
    }
    Ok(total)
}

// =============================================================================================
// replay
// =============================================================================================

/// Which dead-letter queues `replay` empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayQueue {
    Upsert,
    Sync,
    Both,
}

/// One DLQ and the work queue its messages go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayTarget {
    /// `upsert` or `sync`.
    pub name: &'static str,
    pub dlq_url: String,
    pub queue_url: String,
}

/// How `replay` reads the DLQs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Count and show, move nothing.
    pub dry_run: bool,
    /// Long-poll wait of each receive; an empty answer after it ends the queue.
    pub wait_seconds: i32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            dry_run: false,
            wait_seconds: 2,
        }
    }
}

/// Messages moved (or, in a dry run, that would move) from one DLQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayCount {
    /// `upsert` or `sync`.
    #[serde(rename = "queue")]
    pub name: &'static str,
    pub dlq_url: String,
    pub queue_url: String,
    pub messages: usize,
    /// In a dry run: the messages that would move, in the order read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_move: Vec<ReplayMessage>,
}

/// A dead letter a dry run saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayMessage {
    pub message_id: String,
    pub receive_count: u32,
    pub body: String,
    /// Why deskbridge dead-lettered it, when it did.
    pub reason: Option<String>,
}

/// The DLQ URL of a work queue from its redrive policy (`deadLetterTargetArn`), for when
/// `UPSERT_DLQ_URL` / `SYNC_DLQ_URL` are not set.
pub async fn dlq_from_redrive_policy(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> anyhow::Result<String> {
    use aws_sdk_sqs::error::DisplayErrorContext;
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))?;
    let policy = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .context("the queue has no redrive policy")?;
    let policy: Value = serde_json::from_str(policy).context("unreadable redrive policy")?;
    let arn = policy
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .context("the redrive policy names no dead-letter queue")?;
    // arn:aws:sqs:<region>:<account>:<name>
    let parts: Vec<&str> = arn.split(':').collect();
    let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
        bail!("unexpected dead-letter queue ARN `{arn}`");
    };
    let found = sqs
        .get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))?;
    found
        .queue_url()
        .map(str::to_string)
        .context("SQS returned no URL for the dead-letter queue")
}

/// The targets of `which`: work queues from the settings, DLQs from `UPSERT_DLQ_URL` /
/// `SYNC_DLQ_URL` (read by `env`: the process environment in the CLI), else from the work
/// queue's redrive policy when `sqs` is given.
pub async fn replay_targets(
    settings: &Settings,
    which: ReplayQueue,
    env: impl Fn(&str) -> Option<String>,
    sqs: Option<&aws_sdk_sqs::Client>,
) -> anyhow::Result<Vec<ReplayTarget>> {
    let wanted: &[(&'static str, &str, &str, Option<&String>)] = &[
        (
            "upsert",
            "UPSERT_QUEUE_URL",
            "UPSERT_DLQ_URL",
            settings.upsert_queue_url.as_ref(),
        ),
        (
            "sync",
            "SYNC_QUEUE_URL",
            "SYNC_DLQ_URL",
            settings.sync_queue_url.as_ref(),
        ),
    ];
    let mut targets = Vec::new();
    for (name, queue_var, dlq_var, queue_url) in wanted {
        let selected = match which {
            ReplayQueue::Both => true,
            ReplayQueue::Upsert => *name == "upsert",
            ReplayQueue::Sync => *name == "sync",
        };
        if !selected {
            continue;
        }
        let queue_url = (*queue_url).cloned().with_context(|| {
            format!("{queue_var} must be set (or name the deployed stack with --stack-name)")
        })?;
        let from_env = env(dlq_var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let dlq_url = match (from_env, sqs) {
            (Some(url), _) => url,
            (None, Some(sqs)) => dlq_from_redrive_policy(sqs, &queue_url)
                .await
                .with_context(|| {
                    format!("{dlq_var} is not set and the DLQ of {queue_var} could not be found")
                })?,
            (None, None) => bail!("{dlq_var} must be set (`deskbridge bootstrap` prints it)"),
        };
        targets.push(ReplayTarget {
            name,
            dlq_url,
            queue_url,
        });
    }
    Ok(targets)
}

/// A message body as shown in a dry run: one line, at most 80 characters.
fn preview(body: &str) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 80 {
        format!("{}…", flat.chars().take(79).collect::<String>())
    } else {
        flat
    }
}

/// Counts what a replay of `target` would move, without consuming anything: received messages
/// are held (invisible) until the whole DLQ has been seen, so none is counted twice, then made
/// visible again at once.
async fn replay_dry_run(
    queue: &dyn Queue,
    target: &ReplayTarget,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<Vec<ReplayMessage>> {
    let mut held: Vec<InMessage> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let scanned = loop {
        let batch = match queue
            .receive(&target.dlq_url, 10, options.wait_seconds)
            .await
        {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        // Empty, or only messages seen already (held longer than the DLQ's visibility
        // timeout): the whole queue has been seen.
        let new: Vec<InMessage> = batch
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone()))
            .collect();
        if new.is_empty() {
            break Ok(());
        }
        for m in &new {
            writeln!(
                out,
                "  would move {} (received {} times): {}",
                m.message_id,
                m.receive_count,
                preview(&m.body)
            )?;
            if let Some(reason) = &m.reason {
                writeln!(out, "    failed for good: {reason}")?;
            }
        }
        held.extend(new);
    };
    // Release everything, also after a failure; a message not released reappears by itself
    // when its visibility timeout ends, so a failure here loses nothing.
    let mut unreleased = 0;
    for m in &held {
        if queue
            .set_visibility(&target.dlq_url, &m.receipt_handle, 0)
            .await
            .is_err()
        {
            unreleased += 1;
        }
    }
    if unreleased > 0 {
        writeln!(
            out,
            "  {unreleased} messages could not be made visible again; they reappear in the DLQ when their visibility timeout ends"
        )?;
    }
    scanned.with_context(|| format!("reading {}", target.dlq_url))?;
    Ok(held
        .into_iter()
        .map(|m| ReplayMessage {
            message_id: m.message_id,
            receive_count: m.receive_count,
            body: m.body,
            reason: m.reason,
        })
        .collect())
}

/// Moves every message of `target`'s DLQ to its work queue. Each batch is sent first and deleted
/// from the DLQ only once the send succeeded: an interruption loses nothing (at worst a message
/// is sent twice, which the pipeline's dedupe absorbs).
async fn replay_move(
    queue: &dyn Queue,
    target: &ReplayTarget,
    options: &ReplayOptions,
) -> anyhow::Result<usize> {
    let mut moved = 0;
    loop {
        let batch = queue
            .receive(&target.dlq_url, 10, options.wait_seconds)
            .await
            .with_context(|| format!("reading {} ({moved} moved so far)", target.dlq_url))?;
        if batch.is_empty() {
            return Ok(moved);
        }
        let bodies: Vec<String> = batch.iter().map(|m| m.body.clone()).collect();
        if let Err(e) = queue.send_batch(&target.queue_url, &bodies).await {
            // Put the batch back at once rather than after the visibility timeout; best effort.
            for m in &batch {
                let _ = queue
                    .set_visibility(&target.dlq_url, &m.receipt_handle, 0)
                    .await;
            }
            return Err(anyhow::anyhow!(e)).with_context(|| {
                format!(
                    "sending to {} ({moved} moved so far; this batch stays in the DLQ)",
                    target.queue_url
                )
            });
        }
        for m in &batch {
            queue
                .delete(&target.dlq_url, &m.receipt_handle)
                .await
                .with_context(|| {
                    format!(
                        "message {} was sent to the work queue but not deleted from the DLQ; a later replay sends it again ({moved} moved so far)",
                        m.message_id
                    )
                })?;
            moved += 1;
        }
    }
}

/// `deskbridge replay [--dry-run] [--queue upsert|sync|both]`: moves (or counts) dead letters
/// back to their work queue and prints a count per queue.
pub async fn replay(
    queue: &dyn Queue,
    targets: &[ReplayTarget],
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<Vec<ReplayCount>> {
    let mut counts = Vec::new();
    for target in targets {
        if options.dry_run {
            writeln!(out, "{}: reading {}", target.name, target.dlq_url)?;
            let would_move = replay_dry_run(queue, target, options, out).await?;
            writeln!(
                out,
                "{}: {} would move to {} (dry run: nothing moved)",
                target.name,
                count(would_move.len(), "message"),
                target.queue_url
            )?;
            counts.push(ReplayCount {
                name: target.name,
                dlq_url: target.dlq_url.clone(),
                queue_url: target.queue_url.clone(),
                messages: would_move.len(),
                would_move,
            });
        } else {
            let n = replay_move(queue, target, options).await?;
            writeln!(
                out,
                "{}: moved {} from {} to {}",
                target.name,
                count(n, "message"),
                target.dlq_url,
                target.queue_url
            )?;
            counts.push(ReplayCount {
                name: target.name,
                dlq_url: target.dlq_url.clone(),
                queue_url: target.queue_url.clone(),
                messages: n,
                would_move: Vec::new(),
            });
        }
    }
    Ok(counts)
}
