//! `deskbridge plan`: the Brevo attributes and lists the mapping needs, compared with the
//! account; `--apply` creates the missing attributes.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use deskbridge_shared::brevo::default_list;
use deskbridge_shared::brevo::{AttributeInfo, BrevoApi, BrevoError, ListInfo};
use deskbridge_shared::config::Settings;
use deskbridge_shared::config::file::Said;
use deskbridge_shared::model::Source;
use serde::Serialize;

pub use super::needs::{
    BUILT_IN_ATTRIBUTES, NeededAttribute, NeededList, Needs, attribute_kind, needs, plan_sources,
};
use super::{brevo_client, count};
use crate::output::{self, Format};

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
    /// `ok`, `built_in`, `missing`, `wrong_type`, `created`, `create_failed`, `unchecked`, or
    /// `pending` (a default list the first write creates).
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
    /// What each line of the configuration file does (empty without a file).
    pub file_lines: Vec<Said>,
}

impl PlanReport {
    /// The plain lines: the sources, one line per attribute and list, the counts and what to
    /// do next.
    pub fn write_plain(&self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.file_lines.is_empty() {
            writeln!(out, "configuration file, line by line:")?;
            for said in &self.file_lines {
                writeln!(out, "{:>5}  {}: {}", said.line, said.key, said.says)?;
            }
        }
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
    if settings.brevo.api_key.is_none() {
        bail!(PLAN_NEEDS_KEY);
    }
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
    let defaults: Vec<&Source> = sources
        .iter()
        .filter(|s| {
            settings.brevo.default_lists && settings.mapping.source(s).lists.all_contacts.is_none()
        })
        .collect();
    if !needs.lists.is_empty() || !defaults.is_empty() {
        let found = brevo.contact_lists().await;
        for source in defaults {
            lists.push(default_list_item(brevo, source, &found, apply, &mut summary).await);
        }
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
        file_lines: settings.file.lines.clone(),
        summary,
    })
}

/// The default list of `source` (no all-contacts list configured): found by name, or created
/// with `--apply`; otherwise the first write creates it, which is not drift.
async fn default_list_item(
    brevo: &dyn BrevoApi,
    source: &Source,
    found: &Result<Vec<ListInfo>, BrevoError>,
    apply: bool,
    summary: &mut PlanSummary,
) -> PlanItem {
    let name = default_list::list_name(source);
    let item = |status: &'static str, detail: String| PlanItem {
        name: name.clone(),
        types: Vec::new(),
        used_by: vec![format!("{source} all_contacts (default list)")],
        status,
        line: format!("list \"{name}\" ({source} all_contacts, default): {detail}"),
        detail: Some(detail),
    };
    let existing = match found {
        Ok(found) => found.iter().filter(|l| l.name == name).map(|l| l.id).min(),
        Err(e) => {
            summary.unchecked += 1;
            return item("unchecked", format!("not checked ({e})"));
        }
    };
    match existing {
        Some(id) => {
            summary.ok += 1;
            item("ok", format!("ok, id {id}"))
        }
        None if !apply => item(
            "pending",
            "created on the first write (or now with --apply)".into(),
        ),
        None => {
            // Found again by name on first use, so the state table need not hold it yet.
            let state = deskbridge_shared::memory::MemoryStateStore::new();
            match default_list::resolve(brevo, &state, source).await {
                Ok(id) => {
                    summary.created += 1;
                    item("created", format!("created, id {id}"))
                }
                Err(e) => {
                    summary.failed += 1;
                    item("create_failed", format!("creating it failed: {e}"))
                }
            }
        }
    }
}

/// `deskbridge plan [--apply] [--json] [--stack-name S]`: with a stack, the deployed
/// configuration is first compared with the local file; exits non-zero on any drift.
pub async fn run(stack_name: Option<&str>, apply: bool, format: Format) -> anyhow::Result<()> {
    let (sdk, settings, _) = crate::settings::load_for(stack_name, "plan", &[]).await?;
    // With a stack: the deployed configuration is checked and compared with the local
    // file (DESKBRIDGE_CONFIG as a path), which is what the plan below then uses.
    let mut drift = false;
    let mut configuration = serde_json::Value::Null;
    if let Some(name) = stack_name.filter(|n| !n.trim().is_empty()) {
        let env = deskbridge_shared::config::Vars::from_env();
        let from_stack = crate::stack::variables(&sdk, name).await?;
        let arn = super::config::target_secret(Some(name), &from_stack, &env)?;
        let deployed = super::config::deployed_text(&sdk, &arn).await?;
        let local = match super::config::local_file(None, &env) {
            Some(path) => Some((
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                path,
            )),
            None => None,
        };
        let mut said = Vec::new();
        drift = super::config::report(
            name,
            local
                .as_ref()
                .map(|(text, path)| (path.as_path(), text.as_str())),
            &deployed,
            &mut said,
        )?;
        let said = String::from_utf8_lossy(&said).into_owned();
        if format == Format::Json {
            configuration = serde_json::json!({
                "stack": name,
                "local_file": local.as_ref().map(|(_, path)| path.display().to_string()),
                "differs": drift,
                "report": said.lines().collect::<Vec<_>>(),
            });
        } else {
            print!("{said}");
        }
    }
    let Some(brevo) = brevo_client(&settings)? else {
        anyhow::bail!(PLAN_NEEDS_KEY);
    };
    let report = plan_report(&settings, &brevo, apply).await?;
    let mut stdout = std::io::stdout().lock();
    if format == Format::Json {
        let mut document = serde_json::to_value(&report)?;
        if let Some(fields) = document.as_object_mut() {
            fields.insert("configuration".into(), configuration);
        }
        output::write_json(&mut stdout, &document)?;
    } else {
        report.write_plain(&mut stdout)?;
    }
    drop(stdout);
    let summary = report.summary;
    if summary.failed > 0 {
        anyhow::bail!("{} attributes could not be created", summary.failed);
    }
    if drift {
        anyhow::bail!(
            "the local configuration differs from the deployed one (deskbridge config push deploys it)"
        );
    }
    if summary.drift() > 0 {
        anyhow::bail!(
            "Brevo does not match the mapping: {} missing, {} wrong type{}",
            summary.missing.saturating_sub(summary.created),
            summary.wrong_type,
            if apply {
                ""
            } else {
                " (deskbridge plan --apply creates missing attributes)"
            }
        );
    }
    Ok(())
}
