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
//! actions:                        # tickets Brevo automations open (`POST /actions/<helpdesk>/tickets`)
//!   zendesk: { subject: "{{subject}}", comment: "{{comment}}", tags: [brevo_automation], priority: normal }
//! deletions: unlink               # a person deleted in a helpdesk: ignore | unlink | delete (see `crate::deletions`)
//! brevo_to_helpdesk:              # Brevo marketing webhooks written back (see `crate::twoway`)
//!   zendesk: { enabled: true, unsubscribed_tag: brevo_unsubscribed, hard_bounce_tag: brevo_hard_bounce }
//!   intercom: { enabled: true, unsubscribe: true, hard_bounce_attribute: brevo_hard_bounce }
//!   gorgias: { enabled: true, unsubscribed_note: "…", hard_bounce_note: "…" }
//!   # each helpdesk also takes `on_contact_deleted: ignore | delete` (default ignore)
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

use std::collections::BTreeMap;
use std::path::Path;

pub use actions::{Actions, Placeholder, Template, TicketTemplate};

use crate::config::vars::{ConfigError, Vars};
use crate::helpdesk::generic::GenericSource;
use crate::helpdesk::generic::pull::PullSource;
use crate::mapping::Mapping;
use crate::model::Source;

pub mod actions;
mod check;
#[cfg(test)]
mod tests;
mod yaml;

use check::Checker;
use yaml::read_yaml;

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
    /// The generic sources whose API the batch sync reads (their `pull` block is valid), keyed
    /// by name.
    pub pulls: BTreeMap<String, PullSource>,
    /// Things that are accepted but probably not what was meant, for the start-up log.
    pub warnings: Vec<Problem>,
    /// What each line of the file does, in line order (`deskbridge plan` prints them).
    pub lines: Vec<Said>,
    /// What Brevo's marketing webhooks write back into the helpdesks (`brevo_to_helpdesk`).
    pub brevo_to_helpdesk: BrevoToHelpdesk,
    /// The tickets Brevo automations open in the helpdesks (`actions`).
    pub actions: Actions,
}

/// The `brevo_to_helpdesk` block: what an unsubscribe, a spam complaint, a hard bounce or a
/// contact deletion that Brevo reports changes in each helpdesk. Every key has a default, so a
/// file without the block writes unsubscribes and bounces back to every helpdesk whose API
/// credentials are set, and deletes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrevoToHelpdesk {
    pub zendesk: ZendeskWriteBack,
    pub intercom: IntercomWriteBack,
    pub gorgias: GorgiasWriteBack,
}

/// What a Brevo `contactDeleted` asks of one helpdesk (`on_contact_deleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnContactDeleted {
    /// Nothing: the event is acknowledged and ignored (the default).
    #[default]
    Ignore,
    /// The helpdesk is asked to delete the people with the email (Zendesk end-users only).
    Delete,
}

impl OnContactDeleted {
    /// The value as the file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            OnContactDeleted::Ignore => "ignore",
            OnContactDeleted::Delete => "delete",
        }
    }
}

/// `brevo_to_helpdesk.zendesk`: user tags added (never removed) by Brevo events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZendeskWriteBack {
    /// Default true.
    pub enabled: bool,
    /// The tag an unsubscribe or a spam complaint adds (default `brevo_unsubscribed`); `None`
    /// (written `~` or `""`) adds none.
    pub unsubscribed_tag: Option<String>,
    /// The tag a hard bounce adds (default `brevo_hard_bounce`); `None` adds none.
    pub hard_bounce_tag: Option<String>,
    /// Whether a Brevo contact deletion deletes the end-users with the email (default ignore).
    pub on_contact_deleted: OnContactDeleted,
}

/// `brevo_to_helpdesk.intercom`: contact fields set by Brevo events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntercomWriteBack {
    /// Default true.
    pub enabled: bool,
    /// Whether an unsubscribe or a spam complaint sets `unsubscribed_from_emails: true`
    /// (default true).
    pub unsubscribe: bool,
    /// The boolean custom data attribute a hard bounce sets to true (default
    /// `brevo_hard_bounce`; it must exist in Intercom); `None` sets none.
    pub hard_bounce_attribute: Option<String>,
    /// Whether a Brevo contact deletion deletes the contacts with the email (default ignore).
    pub on_contact_deleted: OnContactDeleted,
}

/// `brevo_to_helpdesk.gorgias`: lines added (never removed) to the customer's note, which
/// agents see beside the customer's tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GorgiasWriteBack {
    /// Default true.
    pub enabled: bool,
    /// The note line an unsubscribe or a spam complaint adds (default
    /// [`DEFAULT_GORGIAS_UNSUBSCRIBED_NOTE`]); `None` adds none.
    pub unsubscribed_note: Option<String>,
    /// The note line a hard bounce adds (default [`DEFAULT_GORGIAS_HARD_BOUNCE_NOTE`]); `None`
    /// adds none.
    pub hard_bounce_note: Option<String>,
    /// Whether a Brevo contact deletion deletes the customers with the email (default ignore).
    pub on_contact_deleted: OnContactDeleted,
}

/// The default Zendesk tag of an unsubscribe or spam complaint.
pub const DEFAULT_UNSUBSCRIBED_TAG: &str = "brevo_unsubscribed";
/// The default Zendesk tag and Intercom attribute of a hard bounce.
pub const DEFAULT_HARD_BOUNCE_MARK: &str = "brevo_hard_bounce";
/// The default Gorgias note line of an unsubscribe or spam complaint.
pub const DEFAULT_GORGIAS_UNSUBSCRIBED_NOTE: &str = "Brevo: unsubscribed from marketing emails";
/// The default Gorgias note line of a hard bounce.
pub const DEFAULT_GORGIAS_HARD_BOUNCE_NOTE: &str = "Brevo: email address hard-bounced";

impl Default for BrevoToHelpdesk {
    fn default() -> Self {
        BrevoToHelpdesk {
            zendesk: ZendeskWriteBack {
                enabled: true,
                unsubscribed_tag: Some(DEFAULT_UNSUBSCRIBED_TAG.into()),
                hard_bounce_tag: Some(DEFAULT_HARD_BOUNCE_MARK.into()),
                on_contact_deleted: OnContactDeleted::Ignore,
            },
            intercom: IntercomWriteBack {
                enabled: true,
                unsubscribe: true,
                hard_bounce_attribute: Some(DEFAULT_HARD_BOUNCE_MARK.into()),
                on_contact_deleted: OnContactDeleted::Ignore,
            },
            gorgias: GorgiasWriteBack {
                enabled: true,
                unsubscribed_note: Some(DEFAULT_GORGIAS_UNSUBSCRIBED_NOTE.into()),
                hard_bounce_note: Some(DEFAULT_GORGIAS_HARD_BOUNCE_NOTE.into()),
                on_contact_deleted: OnContactDeleted::Ignore,
            },
        }
    }
}

impl BrevoToHelpdesk {
    /// The helpdesks (`zendesk`, `intercom`, `gorgias`) whose people a Brevo contact deletion
    /// deletes: enabled, with `on_contact_deleted: delete`. Empty by default.
    pub fn deleting(&self) -> Vec<&'static str> {
        let on = |enabled: bool, on: OnContactDeleted| enabled && on == OnContactDeleted::Delete;
        [
            (
                "zendesk",
                on(self.zendesk.enabled, self.zendesk.on_contact_deleted),
            ),
            (
                "intercom",
                on(self.intercom.enabled, self.intercom.on_contact_deleted),
            ),
            (
                "gorgias",
                on(self.gorgias.enabled, self.gorgias.on_contact_deleted),
            ),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

/// What one key of the file does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Said {
    pub line: usize,
    /// The key's dotted path (`connectors.intercom.lists.leads`).
    pub key: String,
    pub says: String,
}

/// The switches of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFileSettings {
    pub enabled: bool,
    /// `domain` (or `subdomain`) as written; informative, the environment variables win.
    pub domain: Option<String>,
    /// Batch-sync stream -> on/off, as written under `sync`.
    pub streams: BTreeMap<String, bool>,
    /// The variable holding the API token, as `access_token: "${NAME}"` names it (Intercom);
    /// `None`: the source's usual variable.
    pub token_var: Option<String>,
    /// `api_version` as written (Intercom); the `INTERCOM_VERSION` variable wins.
    pub api_version: Option<String>,
    /// Which tickets the Zendesk ticket export reads (`support_type_scope`): `all` (the
    /// default here: tickets handled by AI agents too), `agent` or `ai_agent`.
    pub support_type_scope: Option<String>,
}

impl Default for SourceFileSettings {
    fn default() -> Self {
        SourceFileSettings {
            enabled: true,
            domain: None,
            streams: BTreeMap::new(),
            token_var: None,
            api_version: None,
            support_type_scope: None,
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

    /// The `support_type_scope` of the Zendesk ticket export: as the file says, else `all`.
    pub fn support_type_scope(&self) -> &str {
        self.support_type_scope_of(&Source::Zendesk)
    }

    /// [`FileConfig::support_type_scope`] of `source`, Zendesk or a further account of it.
    pub fn support_type_scope_of(&self, source: &Source) -> &str {
        self.sources
            .get(source.as_str())
            .and_then(|s| s.support_type_scope.as_deref())
            .unwrap_or("all")
    }

    /// Whether the batch sync of `stream` runs for `source`: off when the source is disabled or
    /// the stream is set to false, on when it is set to true; otherwise on, except for the
    /// streams a user opts in to (Gorgias `events`).
    pub fn stream_enabled(&self, source: &Source, stream: &str) -> bool {
        let default = !check::opt_in_streams(source).contains(&stream);
        self.sources.get(&source.to_string()).map_or(default, |s| {
            s.enabled && s.streams.get(stream).copied().unwrap_or(default)
        })
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
    if let Some(root) = root.as_ref() {
        config.lines = Checker::default().explain(root, &config);
    }
    Ok(config)
}
