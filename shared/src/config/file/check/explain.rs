//! What each line of a valid file does, in words (`deskbridge plan` prints them): read from the
//! YAML tree for the lines and from the finished [`FileConfig`] for the meaning, so that what is
//! said is what deskbridge will do.

use super::connectors::{known_streams, sync_switches};
use super::{Checker, Entry};
use crate::config::file::yaml::{N, scalar_text};
use crate::config::file::{FileConfig, Said};
use crate::ledger::is_aggregate;
use crate::mapping::FieldRule;
use crate::model::{EventKind, Source};

impl Checker {
    /// Every key of `root` with a line, and what it does in `config` (the file's result).
    pub(in crate::config::file) fn explain(&mut self, root: &N, config: &FileConfig) -> Vec<Said> {
        let mut said = Vec::new();
        let connectors: Vec<Source> = config
            .sources
            .keys()
            .filter_map(|name| name.parse().ok())
            .collect();
        for e in self.entries(root, "") {
            let says = match e.key.as_str() {
                "default_region" => format!(
                    "phone numbers written without a country code are read as {}",
                    config.mapping.default_region.as_deref().unwrap_or("-")
                ),
                "historical_events" if config.historical_events => {
                    "a backfill also puts past happenings on the timeline".into()
                }
                "historical_events" => {
                    "a backfill puts no past happenings on the timeline (the aggregates count them)"
                        .into()
                }
                "event_mapping" => {
                    self.event_lines(&e, None, &mut said);
                    "Brevo event names for every source (a source's own win):".into()
                }
                "connectors" => {
                    for c in self.entries(e.value, "") {
                        self.connector_lines(&c, config, &mut said);
                    }
                    "one block per helpdesk:".into()
                }
                "brevo_to_helpdesk" => {
                    let deleting = config.brevo_to_helpdesk.deleting();
                    let deletions = if deleting.is_empty() {
                        "a Brevo contact deletion deletes nothing".to_string()
                    } else {
                        format!(
                            "a Brevo contact deletion deletes the person with that email in {}",
                            deleting.join(", ")
                        )
                    };
                    format!(
                        "what Brevo's unsubscribes, spam complaints and hard bounces write back \
                         into the helpdesks; {deletions} (see the README's \"Two-way: Brevo → \
                         helpdesk\")"
                    )
                }
                "actions" => {
                    self.action_lines(&e, config, &mut said);
                    "the tickets Brevo automations open through POST /actions/<helpdesk>/tickets \
                     (see the README's \"Brevo automation → helpdesk ticket\"):"
                        .into()
                }
                "deletions" => config.mapping.deletions.describe().into(),
                "field_mapping" => match connectors.as_slice() {
                    [only] => {
                        self.rule_lines(&e, only, config, &mut said);
                        format!("the field rules of {only} (they replace its default rules):")
                    }
                    _ => "field rules".into(),
                },
                _ => continue,
            };
            push(&mut said, &e, e.key.clone(), says);
        }
        said.sort_by_key(|s| s.line);
        said
    }

    fn connector_lines(&mut self, c: &Entry, config: &FileConfig, said: &mut Vec<Said>) {
        let Ok(source) = c.key.parse::<Source>() else {
            return;
        };
        let name = source.to_string();
        let Some(settings) = config.sources.get(&name) else {
            return;
        };
        let at = |key: &str| format!("connectors.{name}.{key}");
        for f in self.entries(c.value, "") {
            let says = match f.key.as_str() {
                "enabled" if settings.enabled => {
                    format!("{name} is on: webhooks and the sync run once its credentials are set")
                }
                "enabled" => format!("{name} is off: no webhooks, no sync, whatever is set"),
                "domain" | "subdomain" => {
                    "for information: the API address comes from the environment variables".into()
                }
                "access_token" => format!(
                    "the API token is read from the variable {}",
                    settings
                        .token_var
                        .clone()
                        .unwrap_or_else(|| format!("{}ACCESS_TOKEN", source.variable_prefix()))
                ),
                "api_version" => format!(
                    "Intercom-Version {} on every API call ({}VERSION wins)",
                    settings.api_version.as_deref().unwrap_or("-"),
                    source.variable_prefix()
                ),
                "direction" => format!("{name} to Brevo"),
                "support_type_scope" => format!(
                    "the ticket export reads `{}` tickets",
                    config.support_type_scope_of(&source)
                ),
                "sync" => {
                    for s in self.entries(f.value, "") {
                        let on = config.stream_enabled(&source, &s.key);
                        let known = known_streams(&source);
                        let switch = sync_switches(&source)
                            .iter()
                            .find(|(key, _)| *key == s.key)
                            .map(|(_, what)| *what);
                        let says = if let Some(what) = switch {
                            let verb = if on { "reads" } else { "leaves out" };
                            format!("the batch sync {verb} {what}")
                        } else if !known.contains(&s.key.as_str()) {
                            format!("{name} has no `{}` stream yet: no effect", s.key)
                        } else if on {
                            format!("the batch sync reads {}", s.key)
                        } else {
                            format!("the batch sync leaves {} out", s.key)
                        };
                        push(said, &s, format!("{}.{}", at("sync"), s.key), says);
                    }
                    "batch sync streams:".into()
                }
                "lists" => {
                    for l in self.entries(f.value, "") {
                        let id = scalar_text(&l.value.value).unwrap_or_default();
                        let what = match l.key.as_str() {
                            "all_contacts" | "all_support_contacts" | "all_users" => {
                                "every contact joins"
                            }
                            "satisfied" | "satisfied_customers" => {
                                "contacts whose latest CSAT is 4 or 5 join"
                            }
                            "dissatisfied" | "dissatisfied_customers" => {
                                "contacts whose latest CSAT is below 4 join"
                            }
                            "active_conversations" => {
                                "contacts join while a ticket or conversation is open"
                            }
                            "leads" => "leads join, and leave when they become users",
                            _ => "",
                        };
                        push(
                            said,
                            &l,
                            format!("{}.{}", at("lists"), l.key),
                            format!("list {id}: {what}"),
                        );
                    }
                    "Brevo lists:".into()
                }
                "tag_lists" => {
                    for t in self.entries(f.value, "") {
                        let id = scalar_text(&t.value.value).unwrap_or_default();
                        push(
                            said,
                            &t,
                            format!("{}.{}", at("tag_lists"), t.key),
                            format!("list {id}: joined when tag `{}` is added", t.key),
                        );
                    }
                    "helpdesk tags to lists:".into()
                }
                "field_mapping" => {
                    self.rule_lines(&f, &source, config, said);
                    format!("the field rules of {name} (they replace its default rules):")
                }
                "event_mapping" => {
                    self.event_lines(&f, Some(&source), said);
                    format!("Brevo event names for {name}:")
                }
                "auth" => "how its webhook deliveries prove where they come from".into(),
                "fields" => "where the person and the event are in its webhook bodies".into(),
                "events" => "which of its event types become which happenings".into(),
                "pull" => match &source {
                    Source::Generic(g) => match config.pulls.get(g) {
                        Some(pull) => {
                            self.pull_lines(&f, &name, pull, said);
                            format!(
                                "the batch sync reads its API at {} ({} requests per {} s)",
                                pull.base_url,
                                pull.rate.limit(),
                                pull.rate.window().as_secs()
                            )
                        }
                        None => continue,
                    },
                    _ => continue,
                },
                _ => continue,
            };
            push(said, &f, at(&f.key), says);
        }
        push(said, c, format!("connectors.{name}"), format!("{name}:"));
    }

    /// What each resource of a `pull` block reads.
    fn pull_lines(
        &mut self,
        f: &Entry,
        name: &str,
        pull: &crate::helpdesk::generic::pull::PullSource,
        said: &mut Vec<Said>,
    ) {
        use crate::helpdesk::generic::pull::Pagination;
        for block in self.entries(f.value, "") {
            let says = match block.key.as_str() {
                "auth" => format!(
                    "requests authenticate with the variable {}",
                    pull.auth.secret_var()
                ),
                "resources" => {
                    for r in self.entries(block.value, "") {
                        let Some(resource) = pull.resources.get(&r.key) else {
                            continue;
                        };
                        let paging = match &resource.pagination {
                            Pagination::Page { param, .. } => format!("page by page (`{param}`)"),
                            Pagination::Offset { param, .. } => format!("by offset (`{param}`)"),
                            Pagination::NextLink { next, .. } => {
                                format!("following the next link at `{next}`")
                            }
                            Pagination::Cursor { next, .. } => {
                                format!("following the cursor at `{next}`")
                            }
                        };
                        let since = match &resource.updated_since {
                            Some(u) => format!(
                                "; later runs ask for changes with `{}` from the previous run's start",
                                u.param
                            ),
                            None if resource.updated_at.is_some() => {
                                "; later runs read everything and keep what changed".into()
                            }
                            None => "; every run reads everything".into(),
                        };
                        push(
                            said,
                            &r,
                            format!("connectors.{name}.pull.resources.{}", r.key),
                            format!("stream {}: GET {} {paging}{since}", r.key, resource.path),
                        );
                    }
                    "what the sync reads:".into()
                }
                _ => continue,
            };
            push(
                said,
                &block,
                format!("connectors.{name}.pull.{}", block.key),
                says,
            );
        }
    }

    fn rule_lines(
        &mut self,
        f: &Entry,
        source: &Source,
        config: &FileConfig,
        said: &mut Vec<Said>,
    ) {
        let rules = config.mapping.source(source).field_mapping;
        for r in self.entries(f.value, "") {
            let says = match rules.iter().find(|rule| rule.path == r.key) {
                Some(rule) => rule_says(rule),
                None if matches!(r.key.as_str(), "email") => {
                    "contacts are matched by email: no attribute".into()
                }
                None => "no rule".into(),
            };
            push(said, &r, format!("field_mapping.{}", r.key), says);
        }
    }

    fn event_lines(&mut self, f: &Entry, source: Option<&Source>, said: &mut Vec<Said>) {
        for e in self.entries(f.value, "") {
            let name = scalar_text(&e.value.value).unwrap_or_default();
            let whose = source.map_or_else(|| "every source".to_string(), |s| s.to_string());
            let says = match (EventKind::from_key(&e.key), name.trim()) {
                (Some(_), "") => format!("`{}` is not sent for {whose}", e.key),
                (Some(_), name) => format!("`{}` is sent as {name} for {whose}", e.key),
                (None, _) => continue,
            };
            push(said, &e, format!("event_mapping.{}", e.key), says);
        }
    }
}

/// What one field rule writes.
fn rule_says(rule: &FieldRule) -> String {
    let from = if is_aggregate(&rule.path) {
        format!("computed `{}`", rule.path)
    } else {
        format!("`{}`", rule.path)
    };
    format!(
        "{from} is written to {} ({})",
        rule.attribute,
        serde_json::to_value(rule.transform)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    )
}

pub(super) fn push(said: &mut Vec<Said>, e: &Entry, key: String, says: String) {
    if let Some(line) = e.line {
        said.push(Said { line, key, says });
    }
}
