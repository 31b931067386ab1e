//! `connectors.<source>`: one block per built-in helpdesk or `generic:<name>` source, with its
//! switches and sync streams; the sections inside are checked by their own files.

use std::collections::BTreeMap;

use super::generic::GenericBlocks;
use super::{Checker, Entry, dotted, suggest};
use crate::config::file::SourceFileSettings;
use crate::config::file::yaml::Node;
use crate::helpdesk::generic::{self, GenericSource};
use crate::mapping::{FieldRule, Lists};
use crate::model::Source;

const CONNECTOR_KEYS: &[&str] = &[
    "enabled",
    "domain",
    "subdomain",
    "sync",
    "lists",
    "tag_lists",
    "field_mapping",
    "event_mapping",
];
/// A `generic:<name>` connector takes these too.
const GENERIC_ONLY_KEYS: &[&str] = &["auth", "fields", "events"];
const SOURCE_NAMES: &[&str] = &["zendesk", "intercom", "gorgias"];

/// What one `connectors.<source>` block says.
pub(super) struct Connector {
    pub(super) name: String,
    pub(super) source: Source,
    pub(super) settings: SourceFileSettings,
    /// The rules and the line of `field_mapping`.
    pub(super) field_mapping: Option<(Vec<FieldRule>, Option<usize>)>,
    pub(super) event_mapping: BTreeMap<String, String>,
    pub(super) lists: Option<Lists>,
    pub(super) tag_lists: Option<BTreeMap<String, i64>>,
    /// A generic source that can receive deliveries (its `auth` and `fields` are valid).
    pub(super) generic: Option<GenericSource>,
}

impl Checker {
    pub(super) fn connector(&mut self, e: &Entry) -> Option<Connector> {
        let Ok(source) = e.key.parse::<Source>() else {
            let hint = suggest(&e.key, SOURCE_NAMES)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            self.error(
                e.line,
                format!(
                    "unknown source `{}` under connectors{hint}; known: zendesk, intercom, \
                     gorgias, generic:<name>",
                    e.key
                ),
            );
            return None;
        };
        if let Source::Generic(name) = &source
            && !generic::valid_name(name)
        {
            self.error(
                e.line,
                format!(
                    "`{name}` cannot name a generic source: it appears in the webhook URL \
                     /webhooks/generic/<name>, so use lower-case letters, digits, - and _ only"
                ),
            );
        }
        let name = source.to_string();
        let at = format!("connectors.{name}");
        let is_generic = matches!(source, Source::Generic(_));
        let mut blocks = GenericBlocks::default();
        let mut c = Connector {
            name,
            source,
            settings: SourceFileSettings::default(),
            field_mapping: None,
            event_mapping: BTreeMap::new(),
            lists: None,
            tag_lists: None,
            generic: None,
        };
        for f in self.entries(e.value, &at) {
            match f.key.as_str() {
                "enabled" => {
                    if let Some(b) = self.boolean(&f, &at) {
                        c.settings.enabled = b;
                    }
                }
                "domain" | "subdomain" => c.settings.domain = self.text(&f, &at),
                "sync" => c.settings.streams = self.streams(&c.source, &f, &at),
                "lists" => c.lists = Some(self.lists(&f, &at)),
                "tag_lists" => c.tag_lists = Some(self.tag_lists(&f, &at)),
                "field_mapping" if !matches!(f.value.value, Node::Null) => {
                    let rules = self.field_mapping(f.value, &format!("{at}.field_mapping"));
                    c.field_mapping = Some((rules, f.line));
                }
                "field_mapping" => {}
                "event_mapping" => {
                    c.event_mapping = self.event_mapping(f.value, &format!("{at}.event_mapping"));
                }
                "auth" | "fields" | "events" if !is_generic => self.error(
                    f.line,
                    format!(
                        "{}: `auth`, `fields` and `events` are settings of generic:<name> \
                         sources; {} has its own webhook format and secret variable",
                        dotted(&at, &f.key),
                        c.name
                    ),
                ),
                "auth" => blocks.auth = Some(self.generic_auth(&f, &at)),
                "fields" => blocks.fields = Some(self.generic_fields(&f, &at)),
                "events" => blocks.events = Some(self.generic_events(&f, &at)),
                _ if is_generic => {
                    let known: Vec<&str> = CONNECTOR_KEYS
                        .iter()
                        .chain(GENERIC_ONLY_KEYS)
                        .copied()
                        .collect();
                    self.unknown_key(&f, &at, &known);
                }
                _ => self.unknown_key(&f, &at, CONNECTOR_KEYS),
            }
        }
        if is_generic {
            c.generic = self.generic_source(blocks, e.line, &at);
        }
        Some(c)
    }

    fn streams(&mut self, source: &Source, f: &Entry, at: &str) -> BTreeMap<String, bool> {
        let where_ = format!("{at}.sync");
        let known: &[&str] = match source {
            Source::Zendesk => &crate::helpdesk::zendesk::STREAMS,
            Source::Intercom => &crate::helpdesk::intercom::STREAMS,
            Source::Gorgias => &crate::helpdesk::gorgias::STREAMS,
            Source::Generic(_) | Source::Added(_) => &[],
        };
        let mut streams = BTreeMap::new();
        for s in self.entries(f.value, &where_) {
            let Some(on) = self.boolean(&s, &where_) else {
                continue;
            };
            if known.is_empty() {
                self.warn(
                    s.line,
                    format!("{where_}: a generic source has no batch sync; this has no effect"),
                );
            } else if !known.contains(&s.key.as_str()) {
                self.warn(
                    s.line,
                    format!(
                        "{}: {source} has no `{}` stream, so this has no effect (streams: {})",
                        dotted(&where_, &s.key),
                        s.key,
                        known.join(", ")
                    ),
                );
            }
            streams.insert(s.key, on);
        }
        streams
    }
}
