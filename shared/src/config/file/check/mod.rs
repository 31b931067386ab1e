//! Checking the YAML tree: the [`Checker`] collects every problem and warning with its line
//! while it builds the [`FileConfig`]. This file holds the top level and the helpers every
//! section uses; each section is checked in a file of its own.

use super::yaml::{N, Node, line};
use super::{FileConfig, Problem};
use crate::identity::parse_region;
use crate::mapping::{FieldRule, Mapping, SourceMapping, Transform};
use crate::model::Source;

mod actions;
mod connectors;
mod explain;
mod generic;
mod lists;
mod mapping;
mod pull;
mod two_way;
mod values;

use connectors::Connector;
pub(super) use connectors::opt_in_streams;

const TOP: &str = "the top level";
const TOP_KEYS: &[&str] = &[
    "default_region",
    "historical_events",
    "event_mapping",
    "connectors",
    "field_mapping",
    "brevo_to_helpdesk",
    "actions",
    "deletions",
];

/// One `key: value` of a mapping.
struct Entry<'a> {
    key: String,
    line: Option<usize>,
    value: &'a N,
}

impl Entry<'_> {
    /// The value's line, else the key's.
    fn value_line(&self) -> Option<usize> {
        line(self.value).or(self.line)
    }
}

#[derive(Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
}

fn place(where_: &str) -> String {
    if where_ == TOP {
        format!("at {TOP}")
    } else {
        format!("in {where_}")
    }
}

impl Checker {
    fn error(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    fn warn(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.warnings.push(Problem {
            line,
            message: message.into(),
        });
    }

    pub(super) fn file(&mut self, root: Option<&N>) -> FileConfig {
        let mut config = FileConfig::default();
        let Some(root) = root else {
            return config; // an empty file
        };
        let mut connectors = Vec::new();
        let mut connector_count = 0;
        let mut top_field_mapping = None;
        for e in self.entries(root, TOP) {
            match e.key.as_str() {
                "default_region" => config.mapping.default_region = self.region(&e),
                "historical_events" => {
                    if let Some(b) = self.boolean(&e, "") {
                        config.historical_events = b;
                    }
                }
                "event_mapping" => {
                    let names = self.event_mapping(e.value, "event_mapping");
                    config.mapping.event_mapping.extend(names);
                }
                "connectors" => {
                    let entries = self.entries(e.value, "connectors");
                    connector_count = entries.len();
                    connectors = entries.iter().filter_map(|c| self.connector(c)).collect();
                }
                "field_mapping" if !matches!(e.value.value, Node::Null) => {
                    let rules = self.field_mapping(e.value, "field_mapping");
                    top_field_mapping = Some((rules, e.line));
                }
                "field_mapping" => {}
                "brevo_to_helpdesk" => config.brevo_to_helpdesk = self.brevo_to_helpdesk(&e),
                "actions" => config.actions = self.actions(&e),
                "deletions" => {
                    if let Some(policy) = self.deletions(&e) {
                        config.mapping.deletions = policy;
                    }
                }
                _ => self.unknown_key(&e, TOP, TOP_KEYS),
            }
        }

        if let Some((rules, at)) = top_field_mapping {
            self.place_top_field_mapping(rules, at, &mut connectors, connector_count);
        }

        for c in connectors {
            let sm = config
                .mapping
                .sources
                .entry(c.name.clone())
                .or_insert_with(|| default_mapping(&c.source));
            sm.own_aggregates = c.own_aggregates;
            if let Some((rules, at)) = c.field_mapping {
                if !rules.iter().any(|r| r.path == "id") {
                    self.warn(
                        at,
                        format!(
                            "the field_mapping of {} has no `id` row, so {} is not written \
                             (it replaces the default rules)",
                            c.name,
                            c.source.id_attribute()
                        ),
                    );
                }
                sm.field_mapping = rules;
            }
            sm.event_mapping.extend(c.event_mapping);
            if let Some(lists) = c.lists {
                sm.lists = lists;
            }
            if let Some(tag_lists) = c.tag_lists {
                sm.tag_lists = tag_lists;
            }
            if let (Source::Generic(name), Some(g)) = (&c.source, c.generic) {
                config.generic.insert(name.clone(), g);
            }
            if let (Source::Generic(name), Some(p)) = (&c.source, c.pull) {
                config.pulls.insert(name.clone(), p);
            }
            config.sources.insert(c.name, c.settings);
        }
        config
    }

    /// Gives the top-level `field_mapping` to the one source under `connectors`.
    fn place_top_field_mapping(
        &mut self,
        rules: Vec<FieldRule>,
        at: Option<usize>,
        connectors: &mut [Connector],
        connector_count: usize,
    ) {
        match connectors {
            [only] if connector_count == 1 => {
                if only.field_mapping.is_some() {
                    self.error(
                        at,
                        format!(
                            "field_mapping is given both at the top level and under \
                             connectors.{}; keep one",
                            only.name
                        ),
                    );
                } else {
                    only.field_mapping = Some((rules, at));
                }
            }
            // The one connector listed is unknown, and that is reported already.
            [] if connector_count == 1 => {}
            _ if connector_count == 0 => self.error(
                at,
                "a top-level field_mapping belongs to the one source listed under connectors, \
                 but none is listed; add it there (e.g. `connectors: { gorgias: { enabled: true } }`) \
                 or move the rules to connectors.<source>.field_mapping",
            ),
            _ => self.error(
                at,
                format!(
                    "a top-level field_mapping belongs to the one source listed under connectors, \
                     but {connector_count} are listed; move the rules to \
                     connectors.<source>.field_mapping"
                ),
            ),
        }
    }

    fn region(&mut self, e: &Entry) -> Option<String> {
        let text = self.text(e, "")?;
        if parse_region(&text).is_ok() {
            Some(text.to_ascii_uppercase())
        } else {
            self.error(
                e.value_line(),
                format!(
                    "default_region: `{text}` is not a region code; use a two-letter ISO 3166 \
                     code such as US, GB or DE"
                ),
            );
            None
        }
    }
}

/// `where_.key`, or `key` at the top level.
fn dotted(where_: &str, key: &str) -> String {
    if where_.is_empty() || where_ == TOP {
        key.to_string()
    } else {
        format!("{where_}.{key}")
    }
}

/// The mapping of a `generic:<name>` source the defaults do not know.
/// The mapping of a source the file names but the built-in defaults do not have: a further
/// account takes its helpdesk's default rules with its own id attribute; a generic source
/// [`generic_defaults`].
fn default_mapping(source: &Source) -> SourceMapping {
    if source.account_name().is_none() {
        return generic_defaults(source);
    }
    let mut mapping = Mapping::default().source(&source.vendor());
    for rule in &mut mapping.field_mapping {
        if rule.path == "id" {
            rule.attribute = source.id_attribute();
        }
    }
    mapping
}

pub(super) fn generic_defaults(source: &Source) -> SourceMapping {
    SourceMapping {
        field_mapping: vec![
            FieldRule::new("id", &source.id_attribute(), Transform::Text),
            FieldRule::new("name", "FIRSTNAME", Transform::SplitName),
            FieldRule::new("phone", "SMS", Transform::Phone),
        ],
        ..Default::default()
    }
}

/// The known word closest to a misspelt `word`, if it is close enough to be a typo.
/// The event key an unknown one probably means: the helpdesks' own words for a closing
/// (`solved`, `resolved`) first, then the nearest spelling.
fn suggest_event(word: &str) -> Option<&'static str> {
    let action = word.rsplit_once('.').map_or(word, |(_, action)| action);
    if matches!(action, "solved" | "resolved" | "completed" | "done") {
        return Some(crate::model::EventKind::TicketClosed.key());
    }
    let keys: Vec<&'static str> = crate::model::EventKind::ALL
        .iter()
        .map(|k| k.key())
        .collect();
    suggest(word, &keys)
}

fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
