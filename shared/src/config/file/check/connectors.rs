//! `connectors.<source>`: one block per built-in helpdesk, further account of one
//! (`gorgias:<account>`, `zendesk:<account>`, `intercom:<account>`) or `generic:<name>` source,
//! with its
//! switches and sync streams; the sections inside are checked by their own files.

use std::collections::BTreeMap;

use super::generic::GenericBlocks;
use super::{Checker, Entry, dotted, suggest};
use crate::config::file::SourceFileSettings;
use crate::config::file::yaml::Node;
use crate::helpdesk::generic::pull::PullSource;
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
    "direction",
    "access_token",
    "api_version",
    "support_type_scope",
    "aggregates",
];
/// A `generic:<name>` connector takes these too.
const GENERIC_ONLY_KEYS: &[&str] = &["auth", "fields", "events", "pull"];
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
    /// A generic source's API the batch sync reads (its `pull` block is valid).
    pub(super) pull: Option<PullSource>,
    /// `aggregates: own`: its support figures count its own tickets only.
    pub(super) own_aggregates: bool,
}

impl Checker {
    pub(super) fn connector(&mut self, e: &Entry) -> Option<Connector> {
        let Ok(source) = e.key.parse::<Source>() else {
            if let Some((vendor, account)) = e.key.split_once(':')
                && SOURCE_NAMES.contains(&vendor)
            {
                self.error(
                    e.line,
                    format!(
                        "`{account}` cannot name an account of {vendor}: it appears in the \
                         webhook URL /webhooks/{vendor}/<account> and in its variables' names, \
                         so use lower-case letters, digits, - and _ only (at most 64)"
                    ),
                );
                return None;
            }
            let hint = suggest(&e.key, SOURCE_NAMES)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            self.error(
                e.line,
                format!(
                    "unknown source `{}` under connectors{hint}; known: zendesk, intercom, \
                     gorgias, <helpdesk>:<account>, generic:<name>",
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
            pull: None,
            own_aggregates: false,
        };
        let mut pull_given = false;
        for f in self.entries(e.value, &at) {
            match f.key.as_str() {
                "enabled" => {
                    if let Some(b) = self.boolean(&f, &at) {
                        c.settings.enabled = b;
                    }
                }
                "domain" | "subdomain" => c.settings.domain = self.text(&f, &at),
                "direction" => self.direction(&c.source, &f, &at),
                "access_token" | "api_version" if c.source.vendor() != Source::Intercom => self
                    .error(
                        f.line,
                        format!(
                            "{}: `{}` is a setting of intercom; {} reads its credentials and API \
                         from its own variables (see the README's configuration table)",
                            dotted(&at, &f.key),
                            f.key,
                            c.name
                        ),
                    ),
                "access_token" => c.settings.token_var = self.variable_reference(&f, &at),
                "support_type_scope" if c.source.vendor() != Source::Zendesk => self.error(
                    f.line,
                    format!(
                        "{}: `support_type_scope` is a setting of zendesk (which tickets its \
                         export reads)",
                        dotted(&at, &f.key)
                    ),
                ),
                "support_type_scope" => {
                    c.settings.support_type_scope = self.text(&f, &at).and_then(|scope| {
                        if matches!(scope.as_str(), "all" | "agent" | "ai_agent") {
                            return Some(scope);
                        }
                        self.error(
                            f.value_line(),
                            format!(
                                "{}: `{scope}` is not a scope; write all (every ticket, the \
                                 default), agent (those agents handled) or ai_agent (those AI \
                                 agents handled)",
                                dotted(&at, &f.key)
                            ),
                        );
                        None
                    });
                }
                "api_version" => c.settings.api_version = self.api_version(&f, &at),
                "sync" => c.settings.streams = self.streams(&c.source, &f, &at),
                "aggregates" => match self.text(&f, &at).as_deref() {
                    Some("own") => c.own_aggregates = true,
                    Some("all") | None => c.own_aggregates = false,
                    Some(other) => self.error(
                        f.value_line(),
                        format!(
                            "{}: `{other}` is not a choice; write own (the support figures this \
                             source writes count its own tickets) or all (every source's, the \
                             default)",
                            dotted(&at, &f.key)
                        ),
                    ),
                },
                "lists" => c.lists = Some(self.lists(&c.source, &f, &at)),
                "tag_lists" => c.tag_lists = Some(self.tag_lists(&f, &at)),
                "field_mapping" if !matches!(f.value.value, Node::Null) => {
                    let rules = self.field_mapping(f.value, &format!("{at}.field_mapping"));
                    c.field_mapping = Some((rules, f.line));
                }
                "field_mapping" => {}
                "event_mapping" => {
                    c.event_mapping = self.event_mapping(f.value, &format!("{at}.event_mapping"));
                }
                "auth" | "fields" | "events" | "pull" if !is_generic => self.error(
                    f.line,
                    format!(
                        "{}: `auth`, `fields`, `events` and `pull` are settings of \
                         generic:<name> sources; {} has its own webhook format, API and secret \
                         variables",
                        dotted(&at, &f.key),
                        c.name
                    ),
                ),
                "auth" => blocks.auth = Some(self.generic_auth(&f, &at)),
                "fields" => blocks.fields = Some(self.generic_fields(&f, &at)),
                "events" => {
                    let events = self.generic_events(&f, &at, Some(&mut blocks.deletions));
                    blocks.events = Some(events);
                }
                "pull" => {
                    pull_given = true;
                    c.pull = self.pull_source(&f, &at);
                }
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
            c.generic = self.generic_source(blocks, e.line, &at, pull_given);
        }
        Some(c)
    }

    /// `direction`: which way data goes. Only `<source>_to_brevo` is built; the way back is
    /// refused by name rather than accepted and ignored.
    fn direction(&mut self, source: &Source, f: &Entry, at: &str) {
        let Some(direction) = self.text(f, at) else {
            return;
        };
        let name = match source {
            Source::Generic(name) => name.as_str(),
            other => other.as_str(),
        };
        let forward = format!("{name}_to_brevo");
        if direction == forward {
            return;
        }
        let back = [
            format!("brevo_to_{name}"),
            "bidirectional".into(),
            "two_way".into(),
            "both".into(),
        ];
        let message = if back.contains(&direction) {
            format!(
                "{}: `{direction}` is not available: deskbridge sends {source} to Brevo, and \
                 sends nothing back yet; write `{forward}` or leave `direction` out",
                dotted(at, &f.key)
            )
        } else {
            format!(
                "{}: `{direction}` is not a direction; write `{forward}` (the default)",
                dotted(at, &f.key)
            )
        };
        self.error(f.value_line(), message);
    }

    /// A secret given as a reference to the variable that holds it (`"${NAME}"`): the name.
    /// A literal is refused without being repeated, since it is probably the secret itself.
    fn variable_reference(&mut self, f: &Entry, at: &str) -> Option<String> {
        let where_ = dotted(at, &f.key);
        let Node::Str(text) = &f.value.value else {
            if !matches!(f.value.value, Node::Null) {
                self.error(
                    f.value_line(),
                    format!("{where_} must be a reference such as \"${{INTERCOM_ACCESS_TOKEN}}\""),
                );
            }
            return None;
        };
        let name = text
            .trim()
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .map(str::trim);
        match name {
            Some(name) if is_variable_name(name) => Some(name.to_string()),
            Some(_) => {
                self.error(
                    f.value_line(),
                    format!(
                        "{where_}: the variable name between ${{ and }} must be letters, \
                         digits and _, not starting with a digit"
                    ),
                );
                None
            }
            None => {
                self.error(
                    f.value_line(),
                    format!(
                        "{where_}: write the variable that holds the token, as \
                         \"${{INTERCOM_ACCESS_TOKEN}}\", not the token itself: the file is not \
                         a place for secrets (in AWS, put the token in the credentials secret \
                         under that name)"
                    ),
                );
                None
            }
        }
    }

    /// `api_version`: an Intercom API version such as `"2.11"`, or `Unstable`.
    fn api_version(&mut self, f: &Entry, at: &str) -> Option<String> {
        let where_ = dotted(at, &f.key);
        if matches!(f.value.value, Node::Float(_) | Node::Int(_)) {
            self.error(
                f.value_line(),
                format!(
                    "{where_}: write the version in quotes, as \"2.11\": unquoted, YAML reads \
                     it as a number, and 2.10 would become 2.1"
                ),
            );
            return None;
        }
        let version = self.text(f, at)?;
        let numbered = version
            .split_once('.')
            .is_some_and(|(major, minor)| is_number(major) && is_number(minor));
        if numbered || version == "Unstable" {
            return Some(version);
        }
        self.error(
            f.value_line(),
            format!("{where_}: `{version}` is not an Intercom API version such as \"2.11\""),
        );
        None
    }

    fn streams(&mut self, source: &Source, f: &Entry, at: &str) -> BTreeMap<String, bool> {
        let where_ = format!("{at}.sync");
        let known = known_streams(source);
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
            } else if !known.contains(&s.key.as_str())
                && !sync_switches(source).iter().any(|(key, _)| *key == s.key)
            {
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

/// The batch-sync streams of a built-in helpdesk (none for the others).
pub(super) fn known_streams(source: &Source) -> &'static [&'static str] {
    match source {
        Source::Zendesk => &crate::helpdesk::zendesk::STREAMS,
        Source::Intercom => &crate::helpdesk::intercom::STREAMS,
        Source::Gorgias => &crate::helpdesk::gorgias::STREAMS,
        Source::Account(_) => known_streams(&source.vendor()),
        Source::Generic(_) | Source::Added(_) => &[],
    }
}

/// Keys of a helpdesk's `sync` block that switch part of a stream rather than name one (on
/// unless set to false, or off unless set to true for those in the helpdesk's opt-in list), with
/// what they read.
pub(crate) fn sync_switches(source: &Source) -> &'static [(&'static str, &'static str)] {
    match &source.vendor() {
        Source::Intercom => &[
            ("tags", "each contact's tags with the contacts"),
            (
                "events",
                "each changed contact's data events with the contacts",
            ),
        ],
        Source::Gorgias => &[("tags", "each ticket's tags with the tickets")],
        _ => &[],
    }
}

/// The streams of a built-in helpdesk that are off unless the file switches them on.
pub(crate) fn opt_in_streams(source: &Source) -> &'static [&'static str] {
    match &source.vendor() {
        Source::Gorgias => &crate::helpdesk::gorgias::OPT_IN,
        Source::Intercom => &crate::helpdesk::intercom::OPT_IN,
        _ => &[],
    }
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
fn is_variable_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}
