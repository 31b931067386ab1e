//! The YAML configuration file named by `DESKBRIDGE_CONFIG`: the [`Mapping`] plus per-source
//! switches. `examples/deskbridge.yaml` at the workspace root is the annotated reference.
//!
//! # Shape
//!
//! ```yaml
//! default_region: US              # ISO 3166 region for phones without a country code
//! historical_events: false        # a backfill sends timeline events for the past only if true
//! event_mapping:                  # global: canonical event key -> Brevo event name ("" or ~ = don't send)
//!   ticket.created: SUPPORT_TICKET_OPENED
//! connectors:                     # zendesk | intercom | gorgias | generic:<name>
//!   gorgias:
//!     enabled: true               # default true
//!     domain: yourstore.gorgias.com   # informative (`subdomain` is accepted too); env vars win
//!     sync: { customers: true, tickets: true }   # stream -> on/off, default on
//!     lists: { all_support_contacts: 35, satisfied_customers: 36, dissatisfied_customers: 37 }
//!     tag_lists: { vip: 40 }      # helpdesk tag -> Brevo list id
//!     field_mapping:              # dotted path -> ATTRIBUTE, or -> {attribute, transform}
//!       id: GORGIAS_ID
//!       name: { attribute: FIRSTNAME, transform: split_name }
//!     event_mapping: { ticket.closed: SUPPORT_TICKET_RESOLVED }   # wins over the global one
//!   generic:cinnox:               # the keys above, and the webhook of /webhooks/generic/cinnox:
//!     auth: { type: bearer, token_env: CINNOX_WEBHOOK_TOKEN }   # or hmac_sha256 (header, secret_env, …)
//!     fields: { email: /email, external_id: /contact_id, event_type: /event }   # JSON pointers
//!     events: { enquiry.new: ticket.created, contact.edited: ~ }   # event-type value -> event
//! field_mapping: { … }            # the seeds' layout, see below
//! ```
//!
//! # Rules
//!
//! - Whatever the file leaves out keeps the built-in default ([`Mapping::default`]).
//! - The global `event_mapping` overrides the default names key by key.
//! - A source's `field_mapping` REPLACES that source's default rules (list the id too); sources
//!   the file does not mention keep their defaults. A `generic:<name>` source without a
//!   `field_mapping` gets `id` -> `<NAME>_ID`, `name` -> FIRSTNAME/LASTNAME, `phone` -> SMS.
//! - A top-level `field_mapping` (the seeds put it there) belongs to the one source listed under
//!   `connectors`. With no source or several sources there it is an error, and so is giving
//!   `field_mapping` both at the top level and under that source.
//! - `email: email` (or `email: EMAIL`) names the identifier: contacts are matched by email, so no
//!   attribute rule is made for it.
//! - Without a `transform`, it is inferred: attribute SMS -> phone; FIRSTNAME from a `name` path
//!   -> split_name; attributes ending in `_DATE`, and LAST_ACTIVE -> date; otherwise auto.
//! - List keys accept the seeds' names: `all_support_contacts` / `all_users` = `all_contacts`,
//!   `satisfied_customers` = `satisfied`, `dissatisfied_customers` = `dissatisfied`.
//! - Booleans are `true`/`false` only (YAML 1.2), so `default_region: NO` means Norway.
//! - A `generic:<name>` source receives webhooks only with both `auth` and `fields` (neither is a
//!   warning, one without the other an error); its name must be `[a-z0-9_-]+` (it is in the URL).
//!   `auth` names the variable holding the secret, never the secret. See [`crate::helpdesk::generic`].
//!
//! Everything is checked at load, and every problem is reported at once with its line.
//! Sync streams that the source does not have (the Gorgias seed's `tags`) are accepted but
//! produce a warning in [`FileConfig::warnings`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::config::vars::{ConfigError, Vars};
use crate::helpdesk::generic::{self, GenericAuth, GenericFields, GenericSource};
use crate::helpdesk::signature::{HmacSha256Scheme, SignatureEncoding};
use crate::identity::parse_region;
use crate::mapping::{FieldRule, Lists, Mapping, SourceMapping, Transform};
use crate::model::{EventKind, Source};

/// The environment variable holding the file's path.
pub const CONFIG_VAR: &str = "DESKBRIDGE_CONFIG";

/// What the configuration file says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileConfig {
    /// The defaults with the file's changes applied.
    pub mapping: Mapping,
    /// Per-source switches, keyed like [`Mapping::sources`] (`gorgias`, `generic:cinnox`); only
    /// the sources the file lists under `connectors`.
    pub sources: BTreeMap<String, SourceFileSettings>,
    /// Whether a backfill sends timeline events for past happenings.
    pub historical_events: bool,
    /// Generic webhook sources that can receive deliveries (their `auth` and `fields` are
    /// valid), keyed by name (`cinnox` for `generic:cinnox`).
    pub generic: BTreeMap<String, GenericSource>,
    /// Things that are accepted but probably not what was meant, for the start-up log.
    pub warnings: Vec<Problem>,
}

/// The switches of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFileSettings {
    pub enabled: bool,
    /// `domain` (or `subdomain`) as written; informative, the environment variables win.
    pub domain: Option<String>,
    /// Batch-sync stream -> on/off, as written under `sync`.
    pub streams: BTreeMap<String, bool>,
}

impl Default for SourceFileSettings {
    fn default() -> Self {
        SourceFileSettings {
            enabled: true,
            domain: None,
            streams: BTreeMap::new(),
        }
    }
}

impl FileConfig {
    /// Whether `source` is enabled; sources the file does not list are.
    pub fn source_enabled(&self, source: &Source) -> bool {
        self.sources
            .get(&source.to_string())
            .is_none_or(|s| s.enabled)
    }

    /// Whether the batch sync of `stream` runs for `source`: off when the source is disabled or
    /// the stream is set to false, on otherwise.
    pub fn stream_enabled(&self, source: &Source, stream: &str) -> bool {
        self.sources
            .get(&source.to_string())
            .is_none_or(|s| s.enabled && s.streams.get(stream).copied().unwrap_or(true))
    }
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    /// `path:line: message` (or `path: message` without a line).
    pub fn at(&self, path: &str) -> String {
        match self.line {
            Some(line) => format!("{path}:{line}: {}", self.message),
            None => format!("{path}: {}", self.message),
        }
    }
}

/// The file could not be read or is not valid; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .problems))]
pub struct ConfigFileError {
    pub path: String,
    pub problems: Vec<Problem>,
}

fn render(path: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.at(path))
        .collect::<Vec<_>>()
        .join("\n")
}

impl From<ConfigFileError> for ConfigError {
    fn from(e: ConfigFileError) -> Self {
        ConfigError::File(e.to_string())
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<FileConfig, ConfigFileError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&shown, &text),
        Err(e) => Err(ConfigFileError {
            path: shown,
            problems: vec![Problem {
                line: None,
                message: format!("cannot read the configuration file: {e}"),
            }],
        }),
    }
}

/// The prefix of a `DESKBRIDGE_CONFIG` value that names a Secrets Manager secret holding the
/// file's text (how the deployed stack delivers it): `secretsmanager:ARN`.
pub const SECRET_PREFIX: &str = "secretsmanager:";

/// Where `DESKBRIDGE_CONFIG` says the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A file on disk (local runs, tests).
    Path(String),
    /// The whole text of a Secrets Manager secret (the deployed stack).
    Secret(String),
}

impl ConfigOrigin {
    /// The origin `value` (a `DESKBRIDGE_CONFIG` value) names.
    pub fn of(value: &str) -> Self {
        match value.strip_prefix(SECRET_PREFIX) {
            Some(arn) => ConfigOrigin::Secret(arn.trim().to_string()),
            None => ConfigOrigin::Path(value.to_string()),
        }
    }

    /// The origin `vars` name; `None` when `DESKBRIDGE_CONFIG` is unset.
    pub fn from_vars(vars: &Vars) -> Option<Self> {
        vars.get(CONFIG_VAR).map(|v| Self::of(&v))
    }
}

/// The configuration `DESKBRIDGE_CONFIG` names; `None` when the variable is unset. A
/// `secretsmanager:` value is read from the text [`crate::aws::load_vars`] fetched; an empty
/// secret means the built-in defaults (the stack creates it empty).
pub fn load_from_vars(vars: &Vars) -> Result<Option<FileConfig>, ConfigFileError> {
    let Some(value) = vars.get(CONFIG_VAR) else {
        return Ok(None);
    };
    match ConfigOrigin::of(&value) {
        ConfigOrigin::Path(path) => load(Path::new(&path)).map(Some),
        ConfigOrigin::Secret(arn) => match vars.config_text() {
            Some(text) => parse(&value, text).map(Some),
            None => Err(ConfigFileError {
                path: value.clone(),
                problems: vec![Problem {
                    line: None,
                    message: format!(
                        "the secret {arn} was not read (it is read where AWS is reachable, by the \
                         functions and by the CLI)"
                    ),
                }],
            }),
        },
    }
}

/// A short fingerprint of a configuration text (the first 12 hex digits of its SHA-256), logged
/// by the functions at start-up and shown by `deskbridge plan`, so that the copy a function runs
/// can be told from another.
pub fn fingerprint(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    hex::encode(&digest[..6])
}

/// Checks `text`; `path_for_messages` names the file in problems.
pub fn parse(path_for_messages: &str, text: &str) -> Result<FileConfig, ConfigFileError> {
    let fail = |problems| ConfigFileError {
        path: path_for_messages.to_string(),
        problems,
    };
    let root = read_yaml(text).map_err(|p| fail(vec![p]))?;
    let mut checker = Checker::default();
    let mut config = checker.file(root.as_ref());
    if !checker.problems.is_empty() {
        checker.problems.sort_by_key(|p| p.line);
        return Err(fail(checker.problems));
    }
    checker.warnings.sort_by_key(|p| p.line);
    config.warnings = checker.warnings;
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// The YAML tree. Serde's derive would stop at the first problem and forget where values were;
// this keeps every node with its line so that all problems can be reported together.

type N = Spanned<Node>;

#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// No setting takes a list; the items are not kept.
    Seq,
    /// Entries in file order. Repeated keys are kept (and reported).
    Map(Vec<(N, N)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
                // Beyond i64 only as text: no setting takes such a number anyway.
                Ok(i64::try_from(n).map_or_else(|_| Node::Str(n.to_string()), Node::Int))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Node, E> {
                Ok(Node::Float(x))
            }
            fn visit_str<E>(self, s: &str) -> Result<Node, E> {
                Ok(Node::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Node, E> {
                Ok(Node::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Node::Seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<N, N>()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

fn read_yaml(text: &str) -> Result<Option<N>, Problem> {
    let options = serde_saphyr::options! {
        // YAML 1.1's yes/no/on/off are text: `NO` is Norway, not false.
        strict_booleans: true,
        // Repeated keys reach the checker, which reports them with the others.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    serde_saphyr::from_str_with_options::<Option<N>>(text, options).map_err(|e| {
        use serde_saphyr::MessageFormatter;
        let reason = serde_saphyr::UserMessageFormatter.format_message(e.without_snippet());
        Problem {
            line: e
                .location()
                .and_then(|l| usize::try_from(l.line()).ok())
                .filter(|l| *l > 0),
            message: format!("not valid YAML: {}", printable(&reason)),
        }
    })
}

/// The parser's message may quote the file; keep control characters out of logs.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn line(n: &N) -> Option<usize> {
    usize::try_from(n.referenced.line()).ok().filter(|l| *l > 0)
}

/// A scalar as text (keys may be numbers: a tag named `2024`).
fn scalar_text(n: &Node) -> Option<String> {
    match n {
        Node::Str(s) => Some(s.clone()),
        Node::Int(i) => Some(i.to_string()),
        Node::Float(x) => Some(x.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Null | Node::Seq | Node::Map(_) => None,
    }
}

/// A value as shown in messages.
fn shown(n: &Node) -> Cow<'static, str> {
    match n {
        Node::Null => "nothing".into(),
        Node::Seq => "a list".into(),
        Node::Map(_) => "a mapping".into(),
        Node::Str(s) if s.is_empty() => "an empty text".into(),
        other => format!("`{}`", scalar_text(other).unwrap_or_default()).into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Checking.

const TOP: &str = "the top level";
const TOP_KEYS: &[&str] = &[
    "default_region",
    "historical_events",
    "event_mapping",
    "connectors",
    "field_mapping",
];
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
const AUTH_TYPES: &[&str] = &["hmac_sha256", "bearer"];
const HMAC_KEYS: &[&str] = &["type", "header", "secret_env", "encoding", "prefix"];
const BEARER_KEYS: &[&str] = &["type", "token_env"];
/// Fields of which a generic delivery must name at least one: how the person is told apart.
const IDENTIFYING_FIELDS: &[&str] = &["email", "phone", "external_id"];
const SOURCE_NAMES: &[&str] = &["zendesk", "intercom", "gorgias"];
const LIST_KEYS: &[&str] = &[
    "all_contacts",
    "all_support_contacts",
    "all_users",
    "satisfied",
    "satisfied_customers",
    "dissatisfied",
    "dissatisfied_customers",
];
const RULE_KEYS: &[&str] = &["attribute", "transform"];
const TRANSFORMS: &[(&str, Transform)] = &[
    ("auto", Transform::Auto),
    ("text", Transform::Text),
    ("number", Transform::Number),
    ("boolean", Transform::Boolean),
    ("date", Transform::Date),
    ("phone", Transform::Phone),
    ("split_name", Transform::SplitName),
    ("email", Transform::Email),
    ("tags", Transform::Tags),
];
const ATTRIBUTE_RULE: &str = "Brevo attribute names are UPPERCASE letters, digits and _";

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

/// What one `connectors.<source>` block says.
struct Connector {
    name: String,
    source: Source,
    settings: SourceFileSettings,
    /// The rules and the line of `field_mapping`.
    field_mapping: Option<(Vec<FieldRule>, Option<usize>)>,
    event_mapping: BTreeMap<String, String>,
    lists: Option<Lists>,
    tag_lists: Option<BTreeMap<String, i64>>,
    /// A generic source that can receive deliveries (its `auth` and `fields` are valid).
    generic: Option<GenericSource>,
}

/// The webhook blocks of a `generic:<name>` connector as read: each is `None` when absent and
/// `Some(None)` when present but invalid (already reported).
#[derive(Default)]
struct GenericBlocks {
    auth: Option<Option<GenericAuth>>,
    fields: Option<Option<GenericFields>>,
    events: Option<BTreeMap<String, Option<EventKind>>>,
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
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

    /// The entries of a mapping (none for an empty value). Reports other values, keys that are
    /// not plain scalars, and repeated keys (whose later entries are dropped).
    fn entries<'a>(&mut self, node: &'a N, where_: &str) -> Vec<Entry<'a>> {
        let pairs = match &node.value {
            Node::Null => return Vec::new(),
            Node::Map(pairs) => pairs,
            other => {
                self.error(
                    line(node),
                    format!(
                        "{where_} must be a mapping of `key: value` entries, not {}",
                        shown(other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut first_seen: HashMap<String, Option<usize>> = HashMap::new();
        let mut out = Vec::new();
        for (k, value) in pairs {
            let Some(key) = scalar_text(&k.value) else {
                self.error(
                    line(k),
                    format!(
                        "keys {} must be plain text, not {}",
                        place(where_),
                        shown(&k.value)
                    ),
                );
                continue;
            };
            if let Some(first) = first_seen.get(&key) {
                let first = first
                    .map(|l| format!(" (first on line {l})"))
                    .unwrap_or_default();
                self.error(
                    line(k),
                    format!("`{key}` is given twice {}{first}", place(where_)),
                );
                continue;
            }
            first_seen.insert(key.clone(), line(k));
            out.push(Entry {
                key,
                line: line(k),
                value,
            });
        }
        out
    }

    fn unknown_key(&mut self, e: &Entry, where_: &str, known: &[&str]) {
        let hint = suggest(&e.key, known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            e.line,
            format!(
                "unknown key `{}` {}{hint}; known keys: {}",
                e.key,
                place(where_),
                known.join(", ")
            ),
        );
    }

    fn boolean(&mut self, e: &Entry, where_: &str) -> Option<bool> {
        match &e.value.value {
            Node::Bool(b) => Some(*b),
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{} must be true or false, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }

    /// Text, or nothing for an empty value.
    fn text(&mut self, e: &Entry, where_: &str) -> Option<String> {
        match &e.value.value {
            Node::Null => None,
            Node::Str(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{} must be text, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }

    /// A Brevo list id; nothing for an empty value.
    fn list_id(&mut self, e: &Entry, where_: &str) -> Option<i64> {
        match &e.value.value {
            Node::Null => None,
            Node::Int(id) if *id > 0 => Some(*id),
            Node::Str(s) if s.trim().parse::<i64>().is_ok_and(|id| id > 0) => {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: write the list id {} without quotes",
                        dotted(where_, &e.key),
                        s.trim()
                    ),
                );
                None
            }
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: Brevo list ids are positive whole numbers, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }

    fn file(&mut self, root: Option<&N>) -> FileConfig {
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
                .or_insert_with(|| generic_defaults(&c.source));
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

    fn connector(&mut self, e: &Entry) -> Option<Connector> {
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

    /// A generic source from its blocks, when they are complete and valid; reports what is
    /// missing or inconsistent.
    fn generic_source(
        &mut self,
        blocks: GenericBlocks,
        line: Option<usize>,
        at: &str,
    ) -> Option<GenericSource> {
        let url = at.replacen("connectors.generic:", "/webhooks/generic/", 1);
        let (auth, fields) = match (blocks.auth, blocks.fields) {
            (None, None) => {
                if blocks.events.is_some() {
                    self.error(
                        line,
                        format!("{at} has `events` but no `auth` and `fields`"),
                    );
                } else {
                    self.warn(
                        line,
                        format!(
                            "{at} has no `auth` and `fields`, so POST {url} answers 404 (its \
                             mapping applies to nothing)"
                        ),
                    );
                }
                return None;
            }
            (Some(_), None) => {
                self.error(
                    line,
                    format!(
                        "{at} has `auth` but no `fields`: add JSON pointers to the email, phone \
                         or external id of the person a delivery is about"
                    ),
                );
                return None;
            }
            (None, Some(_)) => {
                self.error(
                    line,
                    format!(
                        "{at} has `fields` but no `auth`: deliveries must be signed \
                         (type: hmac_sha256) or carry a bearer token (type: bearer)"
                    ),
                );
                return None;
            }
            (Some(auth), Some(fields)) => (auth, fields),
        };
        let events = blocks.events.unwrap_or_default();
        if let Some(fields) = &fields {
            match (&fields.event_type, events.is_empty()) {
                (None, false) => self.error(
                    line,
                    format!(
                        "{at}.events needs {at}.fields.event_type: the pointer to the value its \
                         keys are matched against"
                    ),
                ),
                (Some(_), true) => self.error(
                    line,
                    format!(
                        "{at}.fields.event_type is set but {at}.events maps no value, so every \
                         delivery would be ignored; list the values (`contact.edited: ~` \
                         updates the contact without an event)"
                    ),
                ),
                _ => {}
            }
        }
        Some(GenericSource {
            auth: auth?,
            fields: fields?,
            events,
        })
    }

    /// `auth: { type: hmac_sha256 | bearer, … }`.
    fn generic_auth(&mut self, f: &Entry, at: &str) -> Option<GenericAuth> {
        let where_ = format!("{at}.auth");
        let entries = self.entries(f.value, &where_);
        if entries.is_empty() && !matches!(f.value.value, Node::Map(_) | Node::Null) {
            return None; // not a mapping: reported by `entries`
        }
        let kind = entries.iter().find(|k| k.key == "type");
        let kind = match kind.map(|k| (k, scalar_text(&k.value.value))) {
            None => {
                self.error(
                    f.line,
                    format!("{where_} needs a `type`: hmac_sha256 or bearer"),
                );
                return None;
            }
            Some((_, Some(t))) if AUTH_TYPES.contains(&t.trim()) => t.trim().to_string(),
            Some((k, t)) => {
                let hint = t
                    .as_deref()
                    .and_then(|t| suggest(t.trim(), AUTH_TYPES))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    k.value_line(),
                    format!(
                        "{where_}.type: unknown auth type {}{hint}; known: {}",
                        shown(&k.value.value),
                        AUTH_TYPES.join(", ")
                    ),
                );
                return None;
            }
        };
        let hmac = kind == "hmac_sha256";
        let known = if hmac { HMAC_KEYS } else { BEARER_KEYS };
        let (mut header, mut secret_env, mut token_env, mut prefix) = (None, None, None, None);
        let mut encoding = Some(SignatureEncoding::Hex);
        let mut ok = true;
        for k in &entries {
            match k.key.as_str() {
                "type" => {}
                "header" if hmac => {
                    header = self.text(k, &where_);
                    if let Some(h) = header.as_deref()
                        && http::HeaderName::from_bytes(h.as_bytes()).is_err()
                    {
                        self.error(
                            k.value_line(),
                            format!("{where_}.header: `{h}` is not an HTTP header name"),
                        );
                        ok = false;
                    }
                }
                "secret_env" if hmac => secret_env = self.variable_name(k, &where_),
                "token_env" if !hmac => token_env = self.variable_name(k, &where_),
                "prefix" if hmac => prefix = self.text(k, &where_),
                "encoding" if hmac => {
                    encoding = match scalar_text(&k.value.value).as_deref().map(str::trim) {
                        Some("hex") => Some(SignatureEncoding::Hex),
                        Some("base64") => Some(SignatureEncoding::Base64),
                        _ => {
                            self.error(
                                k.value_line(),
                                format!(
                                    "{where_}.encoding must be hex or base64, not {}",
                                    shown(&k.value.value)
                                ),
                            );
                            None
                        }
                    }
                }
                "secret" | "token" | "password" | "key" | "value" => {
                    let var = if hmac { "secret_env" } else { "token_env" };
                    self.error(
                        k.line,
                        format!(
                            "{where_}.{}: secrets never go in this file; put the value in an \
                             environment variable (or the DESKBRIDGE_SECRET_ARN secret) and name \
                             it with `{var}`",
                            k.key
                        ),
                    );
                    ok = false;
                }
                _ => {
                    self.unknown_key(k, &format!("{where_} ({kind})"), known);
                    ok = false;
                }
            }
        }
        // A key that is given but invalid is reported already.
        let required = |name: &str, this: &mut Self, what: &str| {
            if !entries.iter().any(|k| k.key == name) {
                this.error(f.line, format!("{where_} ({kind}) needs `{name}`: {what}"));
            }
        };
        if hmac {
            required(
                "header",
                self,
                "the request header that carries the signature",
            );
            required(
                "secret_env",
                self,
                "the environment variable (or secret key) holding the signing secret",
            );
            let scheme = HmacSha256Scheme {
                header: header?,
                encoding: encoding?,
                prefix,
            };
            ok.then_some(GenericAuth::HmacSha256 {
                scheme,
                secret_env: secret_env?,
            })
        } else {
            required(
                "token_env",
                self,
                "the environment variable (or secret key) holding the expected token",
            );
            let token_env = token_env?;
            ok.then_some(GenericAuth::Bearer { token_env })
        }
    }

    /// The name of an environment variable (or secret key).
    fn variable_name(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let name = self.text(e, where_)?;
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            return Some(name);
        }
        self.error(
            e.value_line(),
            format!(
                "{}: `{name}` is not a variable name (letters, digits and _, such as \
                 CINNOX_WEBHOOK_SECRET); the file names the variable, the variable holds the secret",
                dotted(where_, &e.key)
            ),
        );
        None
    }

    /// `fields: { email: /contact/email, … }`: RFC 6901 JSON pointers.
    fn generic_fields(&mut self, f: &Entry, at: &str) -> Option<GenericFields> {
        let where_ = format!("{at}.fields");
        let mut fields = GenericFields::default();
        let mut ok = true;
        for k in self.entries(f.value, &where_) {
            let slot = match k.key.as_str() {
                "email" => &mut fields.email,
                "phone" => &mut fields.phone,
                "name" => &mut fields.name,
                "first_name" => &mut fields.first_name,
                "last_name" => &mut fields.last_name,
                "external_id" => &mut fields.external_id,
                "event_type" => &mut fields.event_type,
                "event_time" => &mut fields.event_time,
                "delivery_id" => &mut fields.delivery_id,
                "subject" => &mut fields.subject,
                "channel" => &mut fields.channel,
                _ => {
                    self.unknown_key(&k, &where_, &generic::FIELD_NAMES);
                    ok = false;
                    continue;
                }
            };
            let here = dotted(&where_, &k.key);
            let pointer = match &k.value.value {
                Node::Str(p) => p.trim().to_string(),
                other => {
                    self.error(
                        k.value_line(),
                        format!(
                            "{here} must be a JSON pointer such as /contact/email, not {}",
                            shown(other)
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            if !generic::valid_pointer(&pointer) {
                let hint = if pointer.starts_with('/') || pointer.is_empty() {
                    "`~` must be followed by 0 (for ~) or 1 (for /)".to_string()
                } else {
                    let slashed = pointer.trim_start_matches("$.").replace('.', "/");
                    format!("pointers start with / (did you mean `/{slashed}`?)")
                };
                self.error(
                    k.value_line(),
                    format!("{here}: `{pointer}` is not a JSON pointer (RFC 6901); {hint}"),
                );
                ok = false;
                continue;
            }
            *slot = Some(pointer);
        }
        let named: Vec<&str> = fields.pointers().iter().map(|(n, _)| *n).collect();
        if ok && !IDENTIFYING_FIELDS.iter().any(|n| named.contains(n)) {
            self.error(
                f.line,
                format!(
                    "{where_} needs at least one of {}: the pointers that say who a delivery \
                     is about",
                    IDENTIFYING_FIELDS.join(", ")
                ),
            );
            ok = false;
        }
        ok.then_some(fields)
    }

    /// `events: { <event-type value>: <canonical event key> | ~ }`.
    fn generic_events(&mut self, f: &Entry, at: &str) -> BTreeMap<String, Option<EventKind>> {
        let where_ = format!("{at}.events");
        let mut events = BTreeMap::new();
        let keys: Vec<&str> = EventKind::ALL.iter().map(|k| k.key()).collect();
        for e in self.entries(f.value, &where_) {
            let kind = match &e.value.value {
                Node::Null => None,
                Node::Str(s) if s.trim().is_empty() => None,
                Node::Str(s) => match EventKind::from_key(s.trim()) {
                    Some(kind) => Some(kind),
                    None => {
                        let hint = suggest(s.trim(), &keys)
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        self.error(
                            e.value_line(),
                            format!(
                                "{}: `{}` is not an event deskbridge knows{hint}; known events: \
                                 {}, or ~ to update the contact without an event",
                                dotted(&where_, &e.key),
                                s.trim(),
                                keys.join(", ")
                            ),
                        );
                        continue;
                    }
                },
                other => {
                    self.error(
                        e.value_line(),
                        format!(
                            "{} must be an event key such as ticket.created, or ~, not {}",
                            dotted(&where_, &e.key),
                            shown(other)
                        ),
                    );
                    continue;
                }
            };
            events.insert(e.key.trim().to_string(), kind);
        }
        events
    }

    fn streams(&mut self, source: &Source, f: &Entry, at: &str) -> BTreeMap<String, bool> {
        let where_ = format!("{at}.sync");
        let known: &[&str] = match source {
            Source::Zendesk => &crate::helpdesk::zendesk::STREAMS,
            Source::Intercom => &crate::helpdesk::intercom::STREAMS,
            Source::Gorgias => &crate::helpdesk::gorgias::STREAMS,
            Source::Generic(_) => &[],
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

    fn lists(&mut self, f: &Entry, at: &str) -> Lists {
        let where_ = format!("{at}.lists");
        let mut lists = Lists::default();
        // Which key set each list, so that two aliases of one list are reported.
        let mut set_by: [Option<String>; 3] = Default::default();
        for l in self.entries(f.value, &where_) {
            let slot = match l.key.as_str() {
                "all_contacts" | "all_support_contacts" | "all_users" => 0,
                "satisfied" | "satisfied_customers" => 1,
                "dissatisfied" | "dissatisfied_customers" => 2,
                _ => {
                    self.unknown_key(&l, &where_, LIST_KEYS);
                    continue;
                }
            };
            if let Some(first) = &set_by[slot] {
                self.error(
                    l.line,
                    format!(
                        "`{first}` and `{}` in {where_} name the same list; keep one",
                        l.key
                    ),
                );
                continue;
            }
            set_by[slot] = Some(l.key.clone());
            let id = self.list_id(&l, &where_);
            match slot {
                0 => lists.all_contacts = id,
                1 => lists.satisfied = id,
                _ => lists.dissatisfied = id,
            }
        }
        lists
    }

    fn tag_lists(&mut self, f: &Entry, at: &str) -> BTreeMap<String, i64> {
        let where_ = format!("{at}.tag_lists");
        let mut out = BTreeMap::new();
        // Tags match whatever their case, so `VIP` and `vip` are one tag.
        let mut seen: HashMap<String, Option<usize>> = HashMap::new();
        for t in self.entries(f.value, &where_) {
            let tag = t.key.trim().to_string();
            if tag.is_empty() {
                self.error(t.line, format!("{where_}: a tag name is empty"));
                continue;
            }
            if let Some(first) = seen.get(&tag.to_lowercase()) {
                let first = first
                    .map(|l| format!(" (first on line {l})"))
                    .unwrap_or_default();
                self.error(
                    t.line,
                    format!(
                        "tag `{tag}` is given twice in {where_}; tags match whatever their \
                         case{first}"
                    ),
                );
                continue;
            }
            seen.insert(tag.to_lowercase(), t.line);
            if let Some(id) = self.list_id(&t, &where_) {
                out.insert(tag, id);
            }
        }
        out
    }

    /// Rules of one `field_mapping`; `where_` is its dotted name.
    fn field_mapping(&mut self, node: &N, where_: &str) -> Vec<FieldRule> {
        let mut rules = Vec::new();
        // Attribute -> (path, line) of the rule that fills it first.
        let mut filled_by: HashMap<String, (String, Option<usize>)> = HashMap::new();
        for r in self.entries(node, where_) {
            let path = r.key.trim();
            if path.is_empty()
                || path.split('.').any(str::is_empty)
                || path.contains(char::is_whitespace)
            {
                self.error(
                    r.line,
                    format!(
                        "{where_}: `{path}` is not a field path; use dotted names such as \
                         custom_attributes.plan_tier"
                    ),
                );
                continue;
            }
            let here = dotted(where_, path);
            let (attribute, attribute_line, transform) = match &r.value.value {
                Node::Str(a) => (a.trim().to_string(), r.value_line(), None),
                Node::Map(_) => match self.long_rule(r.value, &here) {
                    Some(parts) => parts,
                    None => continue,
                },
                other => {
                    self.error(
                        r.value_line(),
                        format!(
                            "{here} must be a Brevo attribute name or {{ attribute: NAME, \
                             transform: KIND }}, not {}",
                            shown(other)
                        ),
                    );
                    continue;
                }
            };
            // The seeds' `email: email`: the email is the contact's identifier, no attribute.
            if path == "email" && attribute.eq_ignore_ascii_case("email") {
                continue;
            }
            if !valid_attribute(&attribute) {
                let upper: String = attribute
                    .to_ascii_uppercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let hint = if valid_attribute(&upper) {
                    format!(" (did you mean `{upper}`?)")
                } else {
                    String::new()
                };
                self.error(
                    attribute_line,
                    format!(
                        "{here}: `{attribute}` is not a valid attribute name; \
                         {ATTRIBUTE_RULE}{hint}"
                    ),
                );
                continue;
            }
            if let Some((first_path, first_line)) = filled_by.get(&attribute) {
                let first = first_line
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                self.error(
                    r.line,
                    format!(
                        "{where_}: `{first_path}`{first} and `{path}` both map to {attribute}; \
                         each attribute can come from one path only"
                    ),
                );
                continue;
            }
            filled_by.insert(attribute.clone(), (path.to_string(), r.line));
            let transform = transform.unwrap_or_else(|| infer_transform(path, &attribute));
            rules.push(FieldRule::new(path, &attribute, transform));
        }
        rules
    }

    /// `{ attribute: NAME, transform: KIND }`: the attribute, its line and the transform.
    fn long_rule(
        &mut self,
        node: &N,
        here: &str,
    ) -> Option<(String, Option<usize>, Option<Transform>)> {
        let mut attribute = None;
        let mut transform = None;
        let mut ok = true;
        for k in self.entries(node, here) {
            match k.key.as_str() {
                "attribute" => match &k.value.value {
                    Node::Str(a) => attribute = Some((a.trim().to_string(), k.value_line())),
                    other => {
                        self.error(
                            k.value_line(),
                            format!("{here}.attribute must be text, not {}", shown(other)),
                        );
                        ok = false;
                    }
                },
                "transform" => {
                    let name = scalar_text(&k.value.value).unwrap_or_default();
                    match TRANSFORMS.iter().find(|(n, _)| *n == name.trim()) {
                        Some((_, t)) => transform = Some(*t),
                        None => {
                            let known: Vec<&str> = TRANSFORMS.iter().map(|(n, _)| *n).collect();
                            let hint = suggest(name.trim(), &known)
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            self.error(
                                k.value_line(),
                                format!(
                                    "{here}: unknown transform {}{hint}; known: {}",
                                    shown(&k.value.value),
                                    known.join(", ")
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                _ => {
                    self.unknown_key(&k, here, RULE_KEYS);
                    ok = false;
                }
            }
        }
        match attribute {
            Some((name, at)) if ok => Some((name, at, transform)),
            Some(_) => None,
            None => {
                if ok {
                    self.error(line(node), format!("{here} needs an `attribute`"));
                }
                None
            }
        }
    }

    /// Canonical event key -> Brevo event name ("" = don't send).
    fn event_mapping(&mut self, node: &N, where_: &str) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        for e in self.entries(node, where_) {
            let known = EventKind::from_key(&e.key).is_some();
            if !known {
                let keys: Vec<&str> = EventKind::ALL.iter().map(|k| k.key()).collect();
                let hint = suggest(&e.key, &keys)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    e.line,
                    format!(
                        "{where_}: `{}` is not an event deskbridge knows{hint}; known events: {}",
                        e.key,
                        keys.join(", ")
                    ),
                );
            }
            let name = match &e.value.value {
                Node::Null => String::new(),
                Node::Str(s) => s.trim().to_string(),
                other => {
                    self.error(
                        e.value_line(),
                        format!(
                            "{} must be a Brevo event name, or \"\" not to send it; not {}",
                            dotted(where_, &e.key),
                            shown(other)
                        ),
                    );
                    continue;
                }
            };
            if !name.is_empty() && !valid_event_name(&name) {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: Brevo would reject the event name `{name}`; event names are letters, \
                         digits, _ and - only, at most 255 characters",
                        dotted(where_, &e.key)
                    ),
                );
                continue;
            }
            if known {
                names.insert(e.key, name);
            }
        }
        names
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

fn valid_attribute(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('A'..='Z'))
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn valid_event_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The transform of a rule written as `path: ATTRIBUTE`.
fn infer_transform(path: &str, attribute: &str) -> Transform {
    if crate::ledger::is_aggregate(path) {
        return crate::mapping::aggregate_transform(path);
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    match attribute {
        "SMS" => Transform::Phone,
        "FIRSTNAME" if last == "name" => Transform::SplitName,
        "LAST_ACTIVE" | "SIGNUP_DATE" => Transform::Date,
        a if a.ends_with("_DATE") => Transform::Date,
        _ => Transform::Auto,
    }
}

/// The mapping of a `generic:<name>` source the defaults do not know.
fn generic_defaults(source: &Source) -> SourceMapping {
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
fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/deskbridge.yaml");

    /// The Gorgias section of the seeds, as written there.
    const GORGIAS_SEED: &str = r#"
connectors:
  gorgias:
    enabled: true
    domain: "yourstore.gorgias.com"
    sync: { customers: true, tickets: true, satisfaction_surveys: true, tags: true }
    lists: { all_support_contacts: 35, satisfied_customers: 36, dissatisfied_customers: 37 }
field_mapping:
  id: GORGIAS_ID
  email: email
  name: FIRSTNAME
  phone: SMS
  nb_tickets: TICKET_COUNT
  last_ticket_date: LAST_SUPPORT_DATE
  last_ticket_channel: LAST_SUPPORT_CHANNEL
  avg_response_time: AVG_RESPONSE_TIME
  last_satisfaction_score: CSAT_SCORE
  satisfaction_count: CSAT_RESPONSES
  customer_type: CUSTOMER_TYPE
  vip_status: VIP_STATUS
event_mapping:
  ticket.created: SUPPORT_TICKET_OPENED
  ticket.closed: SUPPORT_TICKET_RESOLVED
  ticket.reopened: SUPPORT_TICKET_REOPENED
  satisfaction_survey.created: CSAT_SURVEY_SENT
  satisfaction_survey.responded: CSAT_SUBMITTED
  customer.created: SUPPORT_CUSTOMER_CREATED
"#;

    fn rules(rows: &[(&str, &str, Transform)]) -> Vec<FieldRule> {
        rows.iter()
            .map(|(p, a, t)| FieldRule::new(p, a, *t))
            .collect()
    }

    fn problems(text: &str) -> Vec<(Option<usize>, String)> {
        parse("test.yaml", text)
            .expect_err("invalid")
            .problems
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect()
    }

    #[test]
    fn the_example_file_parses_into_the_expected_mapping() {
        use Transform::*;
        assert!(
            include_str!("../../README.md").contains(EXAMPLE),
            "the README shows examples/deskbridge.yaml as it is"
        );
        let cfg = parse("examples/deskbridge.yaml", EXAMPLE).expect("valid");

        let mut expected = Mapping {
            default_region: Some("US".into()),
            ..Mapping::default()
        };
        let gorgias = expected.sources.get_mut("gorgias").expect("gorgias");
        gorgias.field_mapping = rules(&[
            ("id", "GORGIAS_ID", Auto),
            ("name", "FIRSTNAME", SplitName),
            ("phone", "SMS", Phone),
            ("nb_tickets", "TICKET_COUNT", Number),
            ("last_ticket_date", "LAST_SUPPORT_DATE", Date),
            ("last_ticket_channel", "LAST_SUPPORT_CHANNEL", Text),
            ("avg_response_time", "AVG_RESPONSE_TIME", Number),
            ("last_satisfaction_score", "CSAT_SCORE", Number),
            ("satisfaction_count", "CSAT_RESPONSES", Number),
            ("customer_type", "CUSTOMER_TYPE", Auto),
            ("vip_status", "VIP_STATUS", Boolean),
            ("meta.plan_tier", "PLAN_TIER", Auto),
        ]);
        gorgias.event_mapping =
            BTreeMap::from([("ticket.closed".into(), "GORGIAS_TICKET_RESOLVED".into())]);
        gorgias.lists = Lists {
            all_contacts: Some(35),
            satisfied: Some(36),
            dissatisfied: Some(37),
        };
        gorgias.tag_lists = BTreeMap::from([("vip".into(), 40), ("churn-risk".into(), 41)]);
        let intercom = expected.sources.get_mut("intercom").expect("intercom");
        intercom.field_mapping = rules(&[
            ("id", "INTERCOM_ID", Auto),
            ("name", "FIRSTNAME", SplitName),
            ("phone", "SMS", Phone),
            ("role", "INTERCOM_ROLE", Auto),
            ("signed_up_at", "SIGNUP_DATE", Date),
            ("last_seen_at", "LAST_ACTIVE", Date),
            ("session_count", "SESSION_COUNT", Number),
            ("unsubscribed_from_emails", "UNSUBSCRIBED", Boolean),
            ("company.name", "COMPANY_NAME", Auto),
            ("company.plan", "COMPANY_PLAN", Auto),
            ("company.size", "COMPANY_SIZE", Number),
            ("custom_attributes.plan_tier", "PLAN_TIER", Auto),
            ("custom_attributes.feature_usage", "FEATURE_USAGE", Auto),
        ]);
        intercom.event_mapping =
            BTreeMap::from([("satisfaction_survey.created".into(), String::new())]);
        intercom.lists = Lists {
            all_contacts: Some(38),
            satisfied: Some(39),
            dissatisfied: None,
        };
        expected.sources.insert(
            "generic:cinnox".into(),
            SourceMapping {
                field_mapping: rules(&[
                    ("id", "CINNOX_ID", Auto),
                    ("name", "FIRSTNAME", SplitName),
                    ("phone", "SMS", Phone),
                    ("contact.company", "COMPANY_NAME", Auto),
                ]),
                event_mapping: BTreeMap::from([(
                    "ticket.created".into(),
                    "CINNOX_ENQUIRY_NEW".into(),
                )]),
                ..Default::default()
            },
        );
        assert_eq!(cfg.mapping, expected);

        let pointer = |p: &str| Some(p.to_string());
        assert_eq!(
            cfg.generic,
            BTreeMap::from([(
                "cinnox".to_string(),
                GenericSource {
                    auth: GenericAuth::HmacSha256 {
                        scheme: HmacSha256Scheme {
                            header: "X-Signature".into(),
                            encoding: SignatureEncoding::Hex,
                            prefix: Some("sha256=".into()),
                        },
                        secret_env: "CINNOX_WEBHOOK_SECRET".into(),
                    },
                    fields: GenericFields {
                        email: pointer("/contact/email"),
                        phone: pointer("/contact/phone"),
                        name: pointer("/contact/name"),
                        first_name: None,
                        last_name: None,
                        external_id: pointer("/contact/id"),
                        event_type: pointer("/event"),
                        event_time: pointer("/occurred_at"),
                        delivery_id: pointer("/delivery_id"),
                        subject: pointer("/enquiry/id"),
                        channel: pointer("/enquiry/channel"),
                    },
                    events: BTreeMap::from([
                        ("enquiry.new".into(), Some(EventKind::TicketCreated)),
                        ("enquiry.closed".into(), Some(EventKind::TicketClosed)),
                        ("contact.created".into(), Some(EventKind::CustomerCreated)),
                        ("contact.edited".into(), None),
                    ]),
                }
            )])
        );

        let streams = |pairs: &[&str]| pairs.iter().map(|s| (s.to_string(), true)).collect();
        assert_eq!(
            cfg.sources,
            BTreeMap::from([
                ("generic:cinnox".to_string(), SourceFileSettings::default()),
                (
                    "gorgias".to_string(),
                    SourceFileSettings {
                        enabled: true,
                        domain: Some("yourstore.gorgias.com".into()),
                        streams: streams(&["customers", "tickets", "satisfaction_surveys"]),
                    }
                ),
                (
                    "intercom".to_string(),
                    SourceFileSettings {
                        enabled: true,
                        domain: None,
                        streams: streams(&["contacts", "conversations"]),
                    }
                ),
                (
                    "zendesk".to_string(),
                    SourceFileSettings {
                        enabled: false,
                        ..Default::default()
                    }
                ),
            ])
        );
        assert!(!cfg.historical_events);
        assert_eq!(cfg.warnings, vec![]);

        // What the mapping then does with it.
        assert_eq!(
            cfg.mapping
                .event_name(&Source::Gorgias, EventKind::TicketClosed)
                .as_deref(),
            Some("GORGIAS_TICKET_RESOLVED")
        );
        assert_eq!(
            cfg.mapping
                .event_name(&Source::Intercom, EventKind::SurveySent),
            None
        );
        assert_eq!(
            cfg.mapping
                .event_name(&Source::Intercom, EventKind::TicketClosed)
                .as_deref(),
            Some("SUPPORT_TICKET_RESOLVED")
        );
        assert!(!cfg.source_enabled(&Source::Zendesk));
        assert!(!cfg.stream_enabled(&Source::Zendesk, "tickets"));
        assert!(cfg.stream_enabled(&Source::Gorgias, "tickets"));
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        for text in ["", "\n", "# nothing yet\n", "~\n", "---\n"] {
            let cfg = parse("empty.yaml", text).expect("valid");
            assert_eq!(cfg, FileConfig::default(), "{text:?}");
            assert!(cfg.source_enabled(&Source::Gorgias));
            assert!(cfg.stream_enabled(&Source::Intercom, "contacts"));
        }
    }

    #[test]
    fn the_gorgias_seed_loads_with_its_aggregate_rows() {
        use Transform::*;
        let cfg = parse("seed.yaml", GORGIAS_SEED).expect("valid");
        let g = cfg.mapping.source(&Source::Gorgias);
        assert_eq!(
            g.field_mapping,
            rules(&[
                ("id", "GORGIAS_ID", Auto),
                ("name", "FIRSTNAME", SplitName),
                ("phone", "SMS", Phone),
                ("nb_tickets", "TICKET_COUNT", Number),
                ("last_ticket_date", "LAST_SUPPORT_DATE", Date),
                ("last_ticket_channel", "LAST_SUPPORT_CHANNEL", Text),
                ("avg_response_time", "AVG_RESPONSE_TIME", Number),
                ("last_satisfaction_score", "CSAT_SCORE", Number),
                ("satisfaction_count", "CSAT_RESPONSES", Number),
                ("customer_type", "CUSTOMER_TYPE", Auto),
                ("vip_status", "VIP_STATUS", Auto),
            ])
        );
        assert_eq!(
            g.lists,
            Lists {
                all_contacts: Some(35),
                satisfied: Some(36),
                dissatisfied: Some(37),
            }
        );
        assert_eq!(cfg.mapping.event_mapping, Mapping::default().event_mapping);
        // The other sources keep their defaults.
        let defaults = Mapping::default();
        assert_eq!(cfg.mapping.sources["zendesk"], defaults.sources["zendesk"]);
        assert_eq!(
            cfg.mapping.sources["intercom"],
            defaults.sources["intercom"]
        );
        let settings = &cfg.sources["gorgias"];
        assert_eq!(settings.domain.as_deref(), Some("yourstore.gorgias.com"));
        assert_eq!(settings.streams.get("tags"), Some(&true));
        // Gorgias has no `tags` stream: accepted, with a warning.
        assert_eq!(
            cfg.warnings,
            vec![Problem {
                line: Some(6),
                message: "connectors.gorgias.sync.tags: gorgias has no `tags` stream, so this \
                          has no effect (streams: customers, tickets, satisfaction_surveys)"
                    .into()
            }]
        );
    }

    #[test]
    fn the_intercom_seed_mapping_loads_and_warns_about_the_missing_id() {
        use Transform::*;
        let text = "\
connectors:
  intercom:
    lists: { all_users: 35 }
    field_mapping:
      email: email
      name: FULLNAME
      phone: SMS
      signed_up_at: SIGNUP_DATE
      last_seen_at: LAST_ACTIVE
      unsubscribed_from_emails: UNSUBSCRIBED
      custom_attributes.plan_tier: PLAN_TIER
";
        let cfg = parse("intercom.yaml", text).expect("valid");
        let i = cfg.mapping.source(&Source::Intercom);
        assert_eq!(
            i.field_mapping,
            rules(&[
                ("name", "FULLNAME", Auto),
                ("phone", "SMS", Phone),
                ("signed_up_at", "SIGNUP_DATE", Date),
                ("last_seen_at", "LAST_ACTIVE", Date),
                ("unsubscribed_from_emails", "UNSUBSCRIBED", Auto),
                ("custom_attributes.plan_tier", "PLAN_TIER", Auto),
            ])
        );
        assert_eq!(i.lists.all_contacts, Some(35));
        assert_eq!(
            cfg.warnings,
            vec![Problem {
                line: Some(4),
                message: "the field_mapping of intercom has no `id` row, so INTERCOM_ID is not \
                          written (it replaces the default rules)"
                    .into()
            }]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
feild_mapping: {}
default_region: Narnia
event_mapping:
  ticket.solved: SUPPORT_TICKET_SOLVED
  ticket.closed: support.ticket.closed
connectors:
  freshdesk: { enabled: true }
  gorgias:
    enabled: yes
    lists: { all_support_contacts: 0, satisfied_customers: \"36\", leads: 37 }
    tag_lists: { vip: -4, VIP: 5 }
    field_mapping:
      name: firstname
      phone: { attribute: SMS, transform: e164 }
      nb_tickets: TICKET_COUNT
      ticket_count: TICKET_COUNT
      company: { transform: text }
      tags: [a, b]
    event_mapping:
      customer.created: SUPPORT CUSTOMER
  zendesk:
    lsts: { all_contacts: 5 }
  generic:cinnox: {}
historical_events: 1
";
        let expected: Vec<(Option<usize>, String)> = vec![
            (
                1,
                "unknown key `feild_mapping` at the top level (did you mean `field_mapping`?); \
                 known keys: default_region, historical_events, event_mapping, connectors, \
                 field_mapping",
            ),
            (
                2,
                "default_region: `Narnia` is not a region code; use a two-letter ISO 3166 code \
                 such as US, GB or DE",
            ),
            (
                4,
                "event_mapping: `ticket.solved` is not an event deskbridge knows (did you mean \
                 `ticket.closed`?); known events: ticket.created, ticket.closed, \
                 ticket.reopened, satisfaction_survey.created, satisfaction_survey.responded, \
                 customer.created",
            ),
            (
                5,
                "event_mapping.ticket.closed: Brevo would reject the event name \
                 `support.ticket.closed`; event names are letters, digits, _ and - only, at \
                 most 255 characters",
            ),
            (
                7,
                "unknown source `freshdesk` under connectors; known: zendesk, intercom, \
                 gorgias, generic:<name>",
            ),
            (
                9,
                "connectors.gorgias.enabled must be true or false, not `yes`",
            ),
            (
                10,
                "connectors.gorgias.lists.all_support_contacts: Brevo list ids are positive \
                  whole numbers, not `0`",
            ),
            (
                10,
                "connectors.gorgias.lists.satisfied_customers: write the list id 36 without \
                  quotes",
            ),
            (
                10,
                "unknown key `leads` in connectors.gorgias.lists; known keys: all_contacts, \
                  all_support_contacts, all_users, satisfied, satisfied_customers, \
                  dissatisfied, dissatisfied_customers",
            ),
            (
                11,
                "connectors.gorgias.tag_lists.vip: Brevo list ids are positive whole \
                  numbers, not `-4`",
            ),
            (
                11,
                "tag `VIP` is given twice in connectors.gorgias.tag_lists; tags match \
                  whatever their case (first on line 11)",
            ),
            (
                13,
                "connectors.gorgias.field_mapping.name: `firstname` is not a valid attribute \
                  name; Brevo attribute names are UPPERCASE letters, digits and _ (did you \
                  mean `FIRSTNAME`?)",
            ),
            (
                14,
                "connectors.gorgias.field_mapping.phone: unknown transform `e164`; known: \
                  auto, text, number, boolean, date, phone, split_name, email, tags",
            ),
            (
                16,
                "connectors.gorgias.field_mapping: `nb_tickets` (line 15) and \
                  `ticket_count` both map to TICKET_COUNT; each attribute can come from one \
                  path only",
            ),
            (
                17,
                "connectors.gorgias.field_mapping.company needs an `attribute`",
            ),
            (
                18,
                "connectors.gorgias.field_mapping.tags must be a Brevo attribute name or { \
                  attribute: NAME, transform: KIND }, not a list",
            ),
            (
                20,
                "connectors.gorgias.event_mapping.customer.created: Brevo would reject the \
                  event name `SUPPORT CUSTOMER`; event names are letters, digits, _ and - \
                  only, at most 255 characters",
            ),
            (
                22,
                "unknown key `lsts` in connectors.zendesk (did you mean `lists`?); known \
                  keys: enabled, domain, subdomain, sync, lists, tag_lists, field_mapping, \
                  event_mapping",
            ),
            (24, "historical_events must be true or false, not `1`"),
        ]
        .into_iter()
        .map(|(l, m)| (Some(l), m.to_string()))
        .collect();
        let got = problems(text);
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e);
        }
        assert_eq!(got.len(), expected.len(), "{got:#?}");
    }

    #[test]
    fn repeated_keys_and_misplaced_top_level_rules_are_reported() {
        let text = "\
connectors:
  gorgias: {}
  intercom: {}
field_mapping:
  id: X_ID
  id: Y_ID
";
        assert_eq!(
            problems(text),
            vec![
                (
                    Some(4),
                    "a top-level field_mapping belongs to the one source listed under \
                     connectors, but 2 are listed; move the rules to \
                     connectors.<source>.field_mapping"
                        .to_string()
                ),
                (
                    Some(6),
                    "`id` is given twice in field_mapping (first on line 5)".to_string()
                ),
            ]
        );

        let both = "\
connectors:
  gorgias:
    field_mapping: { id: GORGIAS_ID }
field_mapping: { id: GORGIAS_ID }
";
        assert_eq!(
            problems(both),
            vec![(
                Some(4),
                "field_mapping is given both at the top level and under connectors.gorgias; \
                 keep one"
                    .to_string()
            )]
        );
        let none = "field_mapping: { id: GORGIAS_ID }\n";
        assert_eq!(problems(none).len(), 1);
        assert_eq!(problems(none)[0].0, Some(1));
    }

    #[test]
    fn yaml_syntax_errors_name_the_line() {
        let err =
            parse("bad.yaml", "connectors:\n  gorgias: { enabled: true\n").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "bad.yaml:2: not valid YAML: unclosed bracket '{'"
        );
        let err = parse("bad.yaml", "- just\n- a list\n").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "bad.yaml:1: the top level must be a mapping of `key: value` entries, not a list"
        );
    }

    #[test]
    fn display_prints_one_problem_per_line() {
        let err =
            parse("deskbridge.yaml", "historical_events: maybe\nfoo: 1\n").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "deskbridge.yaml:1: historical_events must be true or false, not `maybe`\n\
             deskbridge.yaml:2: unknown key `foo` at the top level; known keys: \
             default_region, historical_events, event_mapping, connectors, field_mapping"
        );
        let as_config_error: ConfigError = err.into();
        assert!(
            as_config_error
                .to_string()
                .starts_with("configuration file: deskbridge.yaml:1:")
        );
    }

    #[test]
    fn generic_sources_and_norway() {
        let text = "\
default_region: NO
connectors:
  generic:cinnox:
    tag_lists: { 2024: 7 }
    event_mapping: { ticket.created: CINNOX_ENQUIRY_NEW }
";
        let cfg = parse("g.yaml", text).expect("valid");
        assert_eq!(cfg.mapping.default_region.as_deref(), Some("NO"));
        let cinnox = Source::Generic("cinnox".into());
        let sm = cfg.mapping.source(&cinnox);
        assert_eq!(sm.field_mapping, generic_defaults(&cinnox).field_mapping);
        assert_eq!(sm.field_mapping[0].attribute, "CINNOX_ID");
        assert_eq!(sm.tag_lists, BTreeMap::from([("2024".to_string(), 7)]));
        assert_eq!(
            cfg.mapping
                .event_name(&cinnox, EventKind::TicketCreated)
                .as_deref(),
            Some("CINNOX_ENQUIRY_NEW")
        );
        assert!(cfg.source_enabled(&cinnox));
    }

    #[test]
    fn streams_can_be_switched_off() {
        let text = "connectors:\n  zendesk:\n    sync: { tickets: false }\n";
        let cfg = parse("s.yaml", text).expect("valid");
        assert!(!cfg.stream_enabled(&Source::Zendesk, "tickets"));
        assert!(cfg.stream_enabled(&Source::Zendesk, "users"));
        assert!(cfg.stream_enabled(&Source::Gorgias, "tickets"));
        assert!(cfg.source_enabled(&Source::Zendesk));
    }

    #[test]
    fn files_are_read_from_the_variable() {
        assert_eq!(load_from_vars(&Vars::default()), Ok(None));
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/deskbridge.yaml");
        let cfg = load_from_vars(&Vars::from_pairs([(CONFIG_VAR, example)]))
            .expect("valid")
            .expect("configured");
        assert_eq!(cfg.mapping.default_region.as_deref(), Some("US"));

        let missing = "/nonexistent/deskbridge.yaml";
        let err = load_from_vars(&Vars::from_pairs([(CONFIG_VAR, missing)])).expect_err("missing");
        assert_eq!(err.path, missing);
        assert!(
            err.to_string()
                .starts_with("/nonexistent/deskbridge.yaml: cannot read the configuration file")
        );
    }

    #[test]
    fn the_cinnox_zapier_example_loads() {
        let text = include_str!("../../examples/cinnox-zapier.yaml");
        // The README shows this file: it must be exactly what is tested here.
        assert!(include_str!("../../README.md").contains(text));
        let cfg = parse("examples/cinnox-zapier.yaml", text).expect("valid");
        assert_eq!(cfg.warnings, vec![]);
        let g = &cfg.generic["cinnox"];
        assert_eq!(
            g.auth,
            GenericAuth::Bearer {
                token_env: "CINNOX_WEBHOOK_TOKEN".into()
            }
        );
        assert_eq!(g.fields.email.as_deref(), Some("/email"));
        assert_eq!(g.events.len(), 4);
        assert_eq!(g.events["contact.edited"], None);
        let cinnox = Source::Generic("cinnox".into());
        assert_eq!(
            cfg.mapping.source(&cinnox).field_mapping.last(),
            Some(&FieldRule::new("company", "COMPANY_NAME", Transform::Auto))
        );
        // The built-in sources keep their defaults.
        assert_eq!(
            cfg.mapping.sources["zendesk"],
            Mapping::default().sources["zendesk"]
        );
        assert!(cfg.source_enabled(&Source::Zendesk));
    }

    #[test]
    fn generic_webhook_blocks_are_checked_with_their_lines() {
        let text = r#"connectors:
  generic:cinnox:
    auth:
      type: hmac_sha265
  generic:helpscout:
    auth: { type: hmac_sha256, encoding: b64, secret: "s3cr3t", prefix: "sha256=" }
    fields: { email: contact.email, phone: "/a~2", mail: /x, name: 5 }
    events:
      conversation.created: ticket.opened
      conversation.closed: [ticket.closed]
  generic:freshdesk:
    auth: { type: bearer, token_env: "my token", header: X-Token }
    fields: { event_type: /event, email: /requester/email }
    events: {}
  generic:Gladly:
    auth: { type: bearer, token_env: GLADLY_TOKEN }
    fields: { external_id: /customer/id }
    events: { conversation.new: ticket.created }
  generic:kayako:
    fields: { name: "" }
  generic:front:
    auth: { type: bearer, token_env: FRONT_TOKEN }
  zendesk:
    fields: { email: /email }
"#;
        let expected: Vec<(usize, &str)> = vec![
            (
                2,
                "connectors.generic:cinnox has `auth` but no `fields`: add JSON pointers to \
                 the email, phone or external id of the person a delivery is about",
            ),
            (
                4,
                "connectors.generic:cinnox.auth.type: unknown auth type `hmac_sha265` (did you \
                 mean `hmac_sha256`?); known: hmac_sha256, bearer",
            ),
            (
                6,
                "connectors.generic:helpscout.auth.encoding must be hex or base64, not `b64`",
            ),
            (
                6,
                "connectors.generic:helpscout.auth.secret: secrets never go in this file; put \
                 the value in an environment variable (or the DESKBRIDGE_SECRET_ARN secret) and \
                 name it with `secret_env`",
            ),
            (
                6,
                "connectors.generic:helpscout.auth (hmac_sha256) needs `header`: the request \
                 header that carries the signature",
            ),
            (
                6,
                "connectors.generic:helpscout.auth (hmac_sha256) needs `secret_env`: the \
                 environment variable (or secret key) holding the signing secret",
            ),
            (
                7,
                "connectors.generic:helpscout.fields.email: `contact.email` is not a JSON \
                 pointer (RFC 6901); pointers start with / (did you mean `/contact/email`?)",
            ),
            (
                7,
                "connectors.generic:helpscout.fields.phone: `/a~2` is not a JSON pointer (RFC \
                 6901); `~` must be followed by 0 (for ~) or 1 (for /)",
            ),
            (
                7,
                "unknown key `mail` in connectors.generic:helpscout.fields (did you mean \
                 `email`?); known keys: email, phone, name, first_name, last_name, \
                 external_id, event_type, event_time, delivery_id, subject, channel",
            ),
            (
                7,
                "connectors.generic:helpscout.fields.name must be a JSON pointer such as \
                 /contact/email, not `5`",
            ),
            (
                9,
                "connectors.generic:helpscout.events.conversation.created: `ticket.opened` is \
                 not an event deskbridge knows (did you mean `ticket.reopened`?); known events: \
                 ticket.created, ticket.closed, ticket.reopened, satisfaction_survey.created, \
                 satisfaction_survey.responded, customer.created, or ~ to update the contact \
                 without an event",
            ),
            (
                10,
                "connectors.generic:helpscout.events.conversation.closed must be an event key \
                 such as ticket.created, or ~, not a list",
            ),
            (
                11,
                "connectors.generic:freshdesk.fields.event_type is set but \
                 connectors.generic:freshdesk.events maps no value, so every delivery would be \
                 ignored; list the values (`contact.edited: ~` updates the contact without an \
                 event)",
            ),
            (
                12,
                "connectors.generic:freshdesk.auth.token_env: `my token` is not a variable name \
                 (letters, digits and _, such as CINNOX_WEBHOOK_SECRET); the file names the \
                 variable, the variable holds the secret",
            ),
            (
                12,
                "unknown key `header` in connectors.generic:freshdesk.auth (bearer); known \
                 keys: type, token_env",
            ),
            (
                15,
                "`Gladly` cannot name a generic source: it appears in the webhook URL \
                 /webhooks/generic/<name>, so use lower-case letters, digits, - and _ only",
            ),
            (
                15,
                "connectors.generic:Gladly.events needs connectors.generic:Gladly.fields.event_type: \
                 the pointer to the value its keys are matched against",
            ),
            (
                19,
                "connectors.generic:kayako has `fields` but no `auth`: deliveries must be signed \
                 (type: hmac_sha256) or carry a bearer token (type: bearer)",
            ),
            (
                20,
                "connectors.generic:kayako.fields needs at least one of email, phone, \
                 external_id: the pointers that say who a delivery is about",
            ),
            (
                21,
                "connectors.generic:front has `auth` but no `fields`: add JSON pointers to the \
                 email, phone or external id of the person a delivery is about",
            ),
            (
                24,
                "connectors.zendesk.fields: `auth`, `fields` and `events` are settings of \
                 generic:<name> sources; zendesk has its own webhook format and secret variable",
            ),
        ];
        let got = problems(text);
        for (g, (line, message)) in got.iter().zip(&expected) {
            assert_eq!(g, &(Some(*line), message.to_string()));
        }
        assert_eq!(got.len(), expected.len(), "{got:#?}");
    }

    #[test]
    fn generic_sources_without_webhook_blocks_only_warn() {
        let cfg = parse(
            "g.yaml",
            "connectors:\n  generic:cinnox:\n    tag_lists: { vip: 7 }\n",
        )
        .expect("valid");
        assert!(cfg.generic.is_empty());
        assert_eq!(
            cfg.warnings,
            vec![Problem {
                line: Some(2),
                message: "connectors.generic:cinnox has no `auth` and `fields`, so POST \
                          /webhooks/generic/cinnox answers 404 (its mapping applies to nothing)"
                    .into()
            }]
        );
        // A minimal webhook source: a bearer token and an email, every delivery an update.
        let minimal = "\
connectors:
  generic:forms:
    auth: { type: bearer, token_env: FORMS_TOKEN }
    fields: { email: /email }
";
        let cfg = parse("m.yaml", minimal).expect("valid");
        let forms = &cfg.generic["forms"];
        assert_eq!(forms.fields.email.as_deref(), Some("/email"));
        assert!(forms.events.is_empty());
        assert_eq!(cfg.warnings, vec![]);
    }
}
