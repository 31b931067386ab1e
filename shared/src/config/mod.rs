//! Settings from the environment (and, in AWS, one Secrets Manager secret). Names are the
//! contract in the README's configuration table.

use std::collections::BTreeMap;
use std::time::Duration;

pub mod brevo_inbound;
pub mod file;
pub mod helpdesks;
pub mod vars;

pub use brevo_inbound::BrevoInboundSettings;
pub use helpdesks::{
    DEFAULT_INTERCOM_BASE_URL, DEFAULT_INTERCOM_VERSION, GorgiasSettings, IntercomSettings,
    ZendeskSettings,
};
pub use vars::{ConfigError, Vars};

use crate::mapping::Mapping;
use crate::model::Source;

/// Brevo settings. No API key means dry-run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrevoSettings {
    pub api_key: Option<String>,
    pub base_url: String,
    /// Requests per second this process sends (Brevo allows 10 per account; the template runs
    /// two upsert instances at 5 each).
    pub requests_per_second: u32,
    /// Whole-request timeout of one Brevo call (`BREVO_TIMEOUT_SECONDS`, default 10 s).
    pub timeout: Duration,
    /// Whether a helpdesk without a configured all-contacts list gets the default list
    /// "deskbridge — <source>", which its contacts join and backfills import into
    /// (`BREVO_DEFAULT_LISTS`, default true).
    pub default_lists: bool,
}

impl BrevoSettings {
    /// Whether default lists are in use: switched on, and a real Brevo account to hold them
    /// (a dry run creates nothing, so it has no list id to import into or to remember).
    pub fn uses_default_lists(&self) -> bool {
        self.default_lists && self.api_key.is_some()
    }
}

/// Everything deskbridge reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub brevo: BrevoSettings,
    /// Brevo's marketing webhooks (the two-way path back into the helpdesks).
    pub brevo_inbound: BrevoInboundSettings,
    pub zendesk: ZendeskSettings,
    pub intercom: IntercomSettings,
    pub gorgias: GorgiasSettings,
    pub state_table: Option<String>,
    pub upsert_queue_url: Option<String>,
    /// The backfill lane (`BACKFILL_QUEUE_URL`): where the sync puts the records it reads, drained
    /// by upsert instances of their own so that webhook jobs on the upsert queue never wait
    /// behind a backfill. Unset, the sync uses the upsert queue (one lane).
    pub backfill_queue_url: Option<String>,
    /// Where the upsert function puts messages that failed for good, with the reason
    /// (`UPSERT_DLQ_URL`, the upsert queue's dead-letter queue).
    pub upsert_dlq_url: Option<String>,
    pub sync_queue_url: Option<String>,
    /// Where the sync function puts page jobs that failed past the retry horizon
    /// (`SYNC_DLQ_URL`, the sync queue's dead-letter queue).
    pub sync_dlq_url: Option<String>,
    /// How long transient failures are retried, and how far apart (`RETRY_HORIZON_SECONDS`,
    /// `RETRY_MAX_DELAY_SECONDS`).
    pub retry: crate::queue::RetryPolicy,
    /// Sync function instances that may run at once (`DESKBRIDGE_SYNC_INSTANCES`); each takes
    /// this share of every helpdesk rate limit.
    pub sync_instances: u32,
    /// Largest accepted clock difference for signed Zendesk timestamps.
    pub signature_tolerance: Duration,
    pub mapping: Mapping,
    /// The `DESKBRIDGE_CONFIG` file (defaults when unset): source and stream switches, event policy.
    pub file: crate::config::file::FileConfig,
    /// Secrets of the file's generic sources, by source name, read from the variables their
    /// `auth` block names (`secret_env`, `token_env`); a source whose variable is unset is absent.
    pub generic_secrets: BTreeMap<String, String>,
    /// Secrets of the file's generic pull sources (their `pull.auth` variable), by source
    /// name; a source whose variable is unset is absent (and its API off).
    pub pull_secrets: BTreeMap<String, String>,
    /// The further Gorgias stores the file names (`connectors: gorgias:<account>`), by source
    /// (`gorgias:eu-store`), each from its own variables.
    pub gorgias_accounts: BTreeMap<String, GorgiasSettings>,
    /// The further Zendesk accounts (`zendesk:<account>`), likewise.
    pub zendesk_accounts: BTreeMap<String, ZendeskSettings>,
    /// The further Intercom workspaces (`intercom:<account>`), likewise.
    pub intercom_accounts: BTreeMap<String, IntercomSettings>,
}

pub const DEFAULT_BREVO_BASE_URL: &str = "https://api.brevo.com/v3";
/// Default whole-request timeout of a Brevo call.
pub const DEFAULT_BREVO_TIMEOUT: Duration = crate::brevo::REQUEST_TIMEOUT;
/// Longest Brevo request timeout accepted (a call must never eat a Lambda's whole timeout).
pub const MAX_BREVO_TIMEOUT: Duration = Duration::from_secs(60);

/// The retry policy of both queues: `RETRY_HORIZON_SECONDS` (default 24 h, at least a
/// minute) and `RETRY_MAX_DELAY_SECONDS` (default 300, from 1 to SQS's 900).
fn retry_policy(vars: &Vars) -> Result<crate::queue::RetryPolicy, ConfigError> {
    let mut policy = crate::queue::RetryPolicy::default();
    if let Some(v) = vars.get("RETRY_HORIZON_SECONDS") {
        policy.horizon = v
            .parse::<u64>()
            .ok()
            .filter(|s| *s >= 60)
            .map(Duration::from_secs)
            .ok_or(ConfigError::Invalid {
                name: "RETRY_HORIZON_SECONDS",
                reason: "expected a whole number of seconds, at least 60".into(),
            })?;
    }
    if let Some(v) = vars.get("RETRY_MAX_DELAY_SECONDS") {
        policy.max_delay = v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=900).contains(s))
            .map(Duration::from_secs)
            .ok_or(ConfigError::Invalid {
                name: "RETRY_MAX_DELAY_SECONDS",
                reason: "expected a whole number of seconds from 1 to 900".into(),
            })?;
        policy.first_delay = policy.first_delay.min(policy.max_delay);
    }
    Ok(policy)
}

fn url(name: &'static str, value: String) -> Result<String, ConfigError> {
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name,
            reason: "expected an http(s) URL".into(),
        });
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// A true/false variable (`1`/`0` too); `default` when unset or empty.
fn flag(vars: &Vars, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match vars.get(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "expected true or false".into(),
        }),
    }
}

impl Settings {
    /// Reads settings from `vars`. The mapping is the built-in default; the YAML file, when
    /// configured, is applied by [`Settings::with_mapping`].
    pub fn from_vars(vars: &Vars) -> Result<Settings, ConfigError> {
        let brevo = BrevoSettings {
            api_key: vars.get("BREVO_API_KEY"),
            base_url: url(
                "BREVO_BASE_URL",
                vars.get("BREVO_BASE_URL")
                    .unwrap_or_else(|| DEFAULT_BREVO_BASE_URL.into()),
            )?,
            requests_per_second: match vars.get("BREVO_REQUESTS_PER_SECOND") {
                None => 10,
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or(ConfigError::Invalid {
                        name: "BREVO_REQUESTS_PER_SECOND",
                        reason: "expected a whole number from 1 to 1000".into(),
                    })?,
            },
            timeout: match vars.get("BREVO_TIMEOUT_SECONDS") {
                None => DEFAULT_BREVO_TIMEOUT,
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s >= 0.1)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| *d <= MAX_BREVO_TIMEOUT)
                    .ok_or(ConfigError::Invalid {
                        name: "BREVO_TIMEOUT_SECONDS",
                        reason: "expected a number of seconds from 0.1 to 60".into(),
                    })?,
            },
            default_lists: flag(vars, "BREVO_DEFAULT_LISTS", true)?,
        };

        let zendesk = ZendeskSettings::from_vars(vars, &Source::Zendesk)?;

        // The mapping file, validated as a whole: a bad file stops start-up with every problem.
        let file = crate::config::file::load_from_vars(vars)?.unwrap_or_default();
        // The file may name the token's variable (`access_token: "${NAME}"`) and pin the API
        // version; the INTERCOM_VERSION variable wins over the file, as every variable does.
        let intercom = IntercomSettings::from_vars(vars, &Source::Intercom, &file)?;
        let gorgias = GorgiasSettings::from_vars(vars, &Source::Gorgias)?;
        // Further accounts, each with its own variables (`GORGIAS_EU_STORE_API_KEY`, …).
        let gorgias_accounts = helpdesks::accounts(&file, &Source::Gorgias, |s| {
            GorgiasSettings::from_vars(vars, s)
        })?;
        let zendesk_accounts = helpdesks::accounts(&file, &Source::Zendesk, |s| {
            ZendeskSettings::from_vars(vars, s)
        })?;
        let intercom_accounts = helpdesks::accounts(&file, &Source::Intercom, |s| {
            IntercomSettings::from_vars(vars, s, &file)
        })?;

        let signature_tolerance = match vars.get("DESKBRIDGE_SIGNATURE_TOLERANCE_SECONDS") {
            None => Duration::from_secs(300),
            Some(v) => Duration::from_secs(v.parse::<u64>().map_err(|_| ConfigError::Invalid {
                name: "DESKBRIDGE_SIGNATURE_TOLERANCE_SECONDS",
                reason: "expected a whole number of seconds".into(),
            })?),
        };

        let mapping = file.mapping.clone();
        let generic_secrets = file
            .generic
            .iter()
            .filter_map(|(name, g)| Some((name.clone(), vars.get(g.auth.secret_var())?)))
            .collect();

        let pull_secrets = file
            .pulls
            .iter()
            .filter_map(|(name, p)| Some((name.clone(), vars.get(p.auth.secret_var())?)))
            .collect();

        let sync_instances = match vars.get("DESKBRIDGE_SYNC_INSTANCES") {
            None => 1,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(ConfigError::Invalid {
                    name: "DESKBRIDGE_SYNC_INSTANCES",
                    reason: "expected a whole number from 1 to 100".into(),
                })?,
        };

        let retry = retry_policy(vars)?;

        Ok(Settings {
            retry,
            sync_dlq_url: vars.get("SYNC_DLQ_URL"),
            brevo,
            brevo_inbound: BrevoInboundSettings::from_vars(vars),
            sync_instances,
            zendesk,
            intercom,
            gorgias,
            state_table: vars.get("STATE_TABLE"),
            upsert_queue_url: vars.get("UPSERT_QUEUE_URL"),
            backfill_queue_url: vars.get("BACKFILL_QUEUE_URL"),
            upsert_dlq_url: vars.get("UPSERT_DLQ_URL"),
            sync_queue_url: vars.get("SYNC_QUEUE_URL"),
            signature_tolerance,
            mapping,
            file,
            generic_secrets,
            pull_secrets,
            gorgias_accounts,
            zendesk_accounts,
            intercom_accounts,
        })
    }

    /// Replaces the mapping.
    pub fn with_mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Whether webhooks from `source` are accepted (its secret or token is set).
    pub fn webhook_enabled(&self, source: &Source) -> bool {
        if !self.file.source_enabled(source) {
            return false;
        }
        match &source.vendor() {
            Source::Zendesk => self
                .zendesk_of(source)
                .is_some_and(|z| z.webhook_secret.is_some()),
            Source::Intercom => self
                .intercom_of(source)
                .is_some_and(|i| i.client_secret.is_some()),
            Source::Gorgias => self
                .gorgias_of(source)
                .is_some_and(|g| g.webhook_token.is_some()),
            Source::Generic(name) => {
                self.file.generic.contains_key(name) && self.generic_secrets.contains_key(name)
            }
            // An added helpdesk says itself (`Helpdesk::webhook_enabled`).
            Source::Added(_) | Source::Account(_) => false,
        }
    }

    /// Whether the helpdesk API of `source` can be called (look-ups, batch sync).
    pub fn api_enabled(&self, source: &Source) -> bool {
        if !self.file.source_enabled(source) {
            return false;
        }
        match &source.vendor() {
            Source::Zendesk => self
                .zendesk_of(source)
                .is_some_and(|z| z.base_url.is_some() && z.credentials.is_some()),
            Source::Intercom => self
                .intercom_of(source)
                .is_some_and(|i| i.access_token.is_some()),
            Source::Gorgias => self
                .gorgias_of(source)
                .is_some_and(|g| g.base_url.is_some() && g.email.is_some() && g.api_key.is_some()),
            Source::Generic(name) => {
                self.file.pulls.contains_key(name) && self.pull_secrets.contains_key(name)
            }
            Source::Added(_) | Source::Account(_) => false,
        }
    }

    /// The Zendesk settings of `source`: the account of the `ZENDESK_*` variables, or a further
    /// account the file names.
    pub fn zendesk_of(&self, source: &Source) -> Option<&ZendeskSettings> {
        match source {
            Source::Zendesk => Some(&self.zendesk),
            Source::Account(name) => self.zendesk_accounts.get(name),
            _ => None,
        }
    }

    /// The Intercom settings of `source`: the workspace of the `INTERCOM_*` variables, or a
    /// further workspace the file names.
    pub fn intercom_of(&self, source: &Source) -> Option<&IntercomSettings> {
        match source {
            Source::Intercom => Some(&self.intercom),
            Source::Account(name) => self.intercom_accounts.get(name),
            _ => None,
        }
    }

    /// The further accounts the file names, of every helpdesk (`gorgias:eu-store`, …).
    pub fn account_sources(&self) -> impl Iterator<Item = Source> + '_ {
        self.zendesk_accounts
            .keys()
            .chain(self.intercom_accounts.keys())
            .chain(self.gorgias_accounts.keys())
            .filter_map(|name| name.parse().ok())
    }

    /// The Gorgias settings of `source`: the store of the `GORGIAS_*` variables, or a further
    /// store the file names.
    pub fn gorgias_of(&self, source: &Source) -> Option<&GorgiasSettings> {
        match source {
            Source::Gorgias => Some(&self.gorgias),
            Source::Account(name) if source.vendor() == Source::Gorgias => {
                self.gorgias_accounts.get(name)
            }
            _ => None,
        }
    }

    /// The state table name, or an error naming the variable.
    pub fn require_state_table(&self) -> Result<&str, ConfigError> {
        self.state_table
            .as_deref()
            .ok_or(ConfigError::Missing("STATE_TABLE"))
    }

    /// The upsert queue URL, or an error naming the variable.
    /// Where sync jobs go: the backfill lane, or the upsert queue when there is none.
    pub fn require_backfill_queue(&self) -> Result<&str, ConfigError> {
        match self.backfill_queue_url.as_deref() {
            Some(url) => Ok(url),
            None => self.require_upsert_queue(),
        }
    }

    pub fn require_upsert_queue(&self) -> Result<&str, ConfigError> {
        self.upsert_queue_url
            .as_deref()
            .ok_or(ConfigError::Missing("UPSERT_QUEUE_URL"))
    }

    /// One line per source saying what is enabled, for the start-up log, followed by the
    /// configuration file's warnings. Never holds secrets.
    pub fn describe_sources(&self) -> Vec<String> {
        let warnings = self
            .file
            .warnings
            .iter()
            .map(|w| format!("configuration: {}", w.message));
        let generic = self.file.generic.iter().map(|(name, g)| {
            let source = Source::Generic(name.clone());
            let webhook = if self.webhook_enabled(&source) {
                "on".to_string()
            } else if !self.file.source_enabled(&source) {
                "off (disabled in the configuration file)".to_string()
            } else {
                format!("off ({} not set)", g.auth.secret_var())
            };
            format!("{source}: webhooks {webhook} at /webhooks/generic/{name}")
        });
        let pulls = self.file.pulls.iter().map(|(name, p)| {
            let source = Source::Generic(name.clone());
            let api = if self.api_enabled(&source) {
                "on".to_string()
            } else if !self.file.source_enabled(&source) {
                "off (disabled in the configuration file)".to_string()
            } else {
                format!("off ({} not set)", p.auth.secret_var())
            };
            format!(
                "{source}: API {api} at {} (streams {})",
                p.base_url,
                p.streams().join(", ")
            )
        });
        Source::BUILT_IN
            .iter()
            .map(|s| {
                let webhook = if self.webhook_enabled(s) {
                    "on"
                } else {
                    "off (no secret set)"
                };
                let api = match s {
                    Source::Zendesk if self.file.source_enabled(s) => {
                        self.zendesk.api_state("ZENDESK_")
                    }
                    _ if self.api_enabled(s) => "on".to_string(),
                    _ => "off (no API credentials)".to_string(),
                };
                format!("{s}: webhooks {webhook}, API {api}")
            })
            .chain(generic)
            .chain(pulls)
            .chain(self.account_sources().map(|source| {
                let on = |set: bool| if set { "on" } else { "off" };
                let prefix = source.variable_prefix();
                let api = match self.zendesk_of(&source) {
                    Some(z) if self.file.source_enabled(&source) => z.api_state(&prefix),
                    _ => on(self.api_enabled(&source)).to_string(),
                };
                format!(
                    "{source}: webhooks {} at /webhooks/{}/{}, API {api} (variables {prefix}*)",
                    on(self.webhook_enabled(&source)),
                    source.vendor(),
                    source.account_name().unwrap_or_default(),
                )
            }))
            .chain(std::iter::once(self.brevo_inbound.describe()))
            .chain(std::iter::once(
                self.brevo_inbound
                    .describe_actions(&self.file.actions.helpdesks()),
            ))
            .chain(warnings)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::helpdesk::zendesk::auth::ZendeskCredentials;

    #[test]
    fn the_file_names_the_intercom_token_variable_and_pins_the_api_version() {
        // As deployed: the file is read from its secret, the token from the credentials secret
        // under the name the file gives.
        let text = "connectors:\n  intercom:\n    access_token: \"${SUPPORT_INTERCOM_TOKEN}\"\n    \
                    api_version: \"2.10\"\n";
        let vars = |env: &[(&'static str, &'static str)]| {
            let config = (
                "DESKBRIDGE_CONFIG",
                "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:config",
            );
            Vars::from_pairs(env.iter().copied().chain([config]))
                .with_fallback(HashMap::from([(
                    "SUPPORT_INTERCOM_TOKEN".to_string(),
                    "from-the-secret".to_string(),
                )]))
                .with_config_text(text)
        };
        let s = Settings::from_vars(&vars(&[])).expect("valid");
        assert_eq!(s.intercom.access_token.as_deref(), Some("from-the-secret"));
        assert_eq!(s.intercom.version, "2.10");
        assert!(s.api_enabled(&Source::Intercom));
        // The usual variable is not read when the file names another; INTERCOM_VERSION wins.
        let s = Settings::from_vars(&vars(&[
            ("INTERCOM_ACCESS_TOKEN", "the-usual-one"),
            ("INTERCOM_VERSION", "2.11"),
        ]))
        .expect("valid");
        assert_eq!(s.intercom.access_token.as_deref(), Some("from-the-secret"));
        assert_eq!(s.intercom.version, "2.11");
    }

    #[test]
    fn defaults_apply_and_sources_without_secrets_are_disabled() {
        let s = Settings::from_vars(&Vars::default()).expect("valid");
        assert_eq!(s.brevo.base_url, DEFAULT_BREVO_BASE_URL);
        assert_eq!(s.brevo.api_key, None);
        assert_eq!(s.intercom.version, "2.11");
        assert_eq!(s.signature_tolerance, Duration::from_secs(300));
        assert_eq!(s.brevo.timeout, DEFAULT_BREVO_TIMEOUT);
        for src in Source::BUILT_IN {
            assert!(!s.webhook_enabled(&src));
            assert!(!s.api_enabled(&src));
        }
    }

    #[test]
    fn subdomains_become_base_urls_and_env_beats_secret() {
        let vars = Vars::from_pairs([
            ("ZENDESK_SUBDOMAIN", "yourco"),
            ("ZENDESK_EMAIL", "ops@yourco.com"),
            ("GORGIAS_DOMAIN", "yourstore.gorgias.com"),
            ("ZENDESK_WEBHOOK_SECRET", "from-env"),
        ])
        .with_fallback(HashMap::from([
            (
                "ZENDESK_WEBHOOK_SECRET".to_string(),
                "from-secret".to_string(),
            ),
            ("ZENDESK_API_TOKEN".to_string(), "tok".to_string()),
        ]));
        let s = Settings::from_vars(&vars).expect("valid");
        assert_eq!(
            s.zendesk.base_url.as_deref(),
            Some("https://yourco.zendesk.com")
        );
        assert_eq!(
            s.gorgias.base_url.as_deref(),
            Some("https://yourstore.gorgias.com")
        );
        assert_eq!(s.zendesk.webhook_secret.as_deref(), Some("from-env"));
        assert!(s.api_enabled(&Source::Zendesk));
        assert!(s.webhook_enabled(&Source::Zendesk));
    }

    #[test]
    fn zendesk_api_is_on_with_a_subdomain_and_any_one_credentials_set() {
        let zendesk_line = |pairs: &[(&str, &str)]| {
            let s = Settings::from_vars(&Vars::from_pairs(pairs.iter().copied())).expect("valid");
            let line = s
                .describe_sources()
                .into_iter()
                .find(|l| l.starts_with("zendesk:"))
                .expect("a zendesk line");
            assert!(
                !line.contains("zd-client-secret") && !line.contains("ready-token"),
                "{line}"
            );
            (
                s.api_enabled(&Source::Zendesk),
                s.zendesk.auth().is_some(),
                line,
            )
        };
        let sub = ("ZENDESK_SUBDOMAIN", "yourco");
        let id = ("ZENDESK_OAUTH_CLIENT_ID", "deskbridge");
        let secret = ("ZENDESK_OAUTH_CLIENT_SECRET", "zd-client-secret");
        let ready = ("ZENDESK_OAUTH_TOKEN", "ready-token");
        let (email, token) = (
            ("ZENDESK_EMAIL", "ops@yourco.com"),
            ("ZENDESK_API_TOKEN", "zd-token"),
        );

        let (on, auth, line) = zendesk_line(&[sub, id, secret]);
        assert!(on && auth, "{line}");
        assert!(
            line.ends_with("API on (OAuth client credentials)"),
            "{line}"
        );
        let (on, _, line) = zendesk_line(&[sub, ready]);
        assert!(
            on && line.ends_with("API on (ready OAuth access token)"),
            "{line}"
        );
        let (on, _, line) = zendesk_line(&[sub, email, token]);
        assert!(on, "{line}");
        assert!(
            line.contains("legacy API token") && line.contains("2027-04-30"),
            "{line}"
        );
        // Half an OAuth client: said so, whether another set is used or not.
        let (on, _, line) = zendesk_line(&[sub, id, email, token]);
        assert!(on, "{line}");
        assert!(
            line.contains("ZENDESK_OAUTH_CLIENT_SECRET not set, so the OAuth client is not used"),
            "{line}"
        );
        let (on, auth, line) = zendesk_line(&[sub, id]);
        assert!(!on && !auth, "{line}");
        assert!(
            line.ends_with(
                "API off (ZENDESK_OAUTH_CLIENT_SECRET not set, so the OAuth client is not used)"
            ),
            "{line}"
        );
        // Credentials without an account, an account without credentials.
        let (on, auth, line) = zendesk_line(&[id, secret]);
        assert!(!on && !auth, "{line}");
        assert!(
            line.contains("ZENDESK_SUBDOMAIN or ZENDESK_BASE_URL not set"),
            "{line}"
        );
        let (on, _, line) = zendesk_line(&[sub]);
        assert!(!on, "{line}");
        assert!(
            line.contains("no API credentials: set ZENDESK_OAUTH_CLIENT_ID"),
            "{line}"
        );
        // The scope is validated only with an OAuth client to use it.
        let err = Settings::from_vars(&Vars::from_pairs([
            sub,
            id,
            secret,
            ("ZENDESK_OAUTH_SCOPE", "read;"),
        ]))
        .expect_err("invalid");
        assert!(err.to_string().contains("ZENDESK_OAUTH_SCOPE"), "{err}");
        let (on, _, _) = zendesk_line(&[sub, email, token, ("ZENDESK_OAUTH_SCOPE", "read;")]);
        assert!(on);
        // The client pair may come from the secret, like every other credential.
        let s = Settings::from_vars(&Vars::from_pairs([sub, email, token]).with_fallback(
            HashMap::from([id, secret].map(|(k, v)| (k.to_string(), v.to_string()))),
        ))
        .expect("valid");
        assert_eq!(
            s.zendesk.credentials.as_ref().map(|c| c.method()),
            Some("OAuth client credentials")
        );
    }

    #[test]
    fn zendesk_staff_are_synced_only_when_asked_for() {
        let staff = |v: Option<&str>| {
            let mut pairs = vec![("ZENDESK_SUBDOMAIN", "acme")];
            pairs.extend(v.map(|v| ("ZENDESK_SYNC_STAFF", v)));
            Settings::from_vars(&Vars::from_pairs(pairs)).map(|s| s.zendesk.sync_staff)
        };
        assert!(!staff(None).expect("valid"));
        assert!(!staff(Some("false")).expect("valid"));
        assert!(staff(Some("true")).expect("valid"));
        let err = staff(Some("yes please")).expect_err("invalid");
        assert!(err.to_string().contains("ZENDESK_SYNC_STAFF"), "{err}");
    }

    #[test]
    fn the_configuration_file_switches_sources_and_replaces_the_mapping() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/deskbridge.yaml");
        let s = Settings::from_vars(&Vars::from_pairs([
            ("DESKBRIDGE_CONFIG", example),
            ("ZENDESK_WEBHOOK_SECRET", "s"),
            ("INTERCOM_CLIENT_SECRET", "s"),
        ]))
        .expect("the example file is valid");
        assert!(
            !s.webhook_enabled(&Source::Zendesk),
            "zendesk is switched off in the file"
        );
        assert!(s.webhook_enabled(&Source::Intercom));
        assert_eq!(
            s.mapping.source(&Source::Gorgias).lists.all_contacts,
            Some(35)
        );
        assert_eq!(s.mapping.default_region.as_deref(), Some("US"));

        let dir = std::env::temp_dir().join(format!("deskbridge-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "connectors:\n  freshdesk: {}\n").expect("write");
        let err = Settings::from_vars(&Vars::from_pairs([(
            "DESKBRIDGE_CONFIG",
            bad.to_string_lossy().as_ref(),
        )]))
        .expect_err("unknown source");
        assert!(err.to_string().contains("bad.yaml:2"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_values_are_named() {
        let err = Settings::from_vars(&Vars::from_pairs([("BREVO_BASE_URL", "api.brevo.com")]))
            .expect_err("invalid");
        assert!(err.to_string().contains("BREVO_BASE_URL"));
        let err = Settings::from_vars(&Vars::from_pairs([("ZENDESK_SUBDOMAIN", "a b")]))
            .expect_err("invalid");
        assert!(err.to_string().contains("ZENDESK_SUBDOMAIN"));
        for bad in ["0", "-1", "61", "soon", "NaN"] {
            let err = Settings::from_vars(&Vars::from_pairs([("BREVO_TIMEOUT_SECONDS", bad)]))
                .expect_err("invalid");
            assert!(
                err.to_string().contains("BREVO_TIMEOUT_SECONDS"),
                "{bad}: {err}"
            );
        }
        let s = Settings::from_vars(&Vars::from_pairs([("BREVO_TIMEOUT_SECONDS", "1.5")]))
            .expect("valid");
        assert_eq!(s.brevo.timeout, Duration::from_millis(1500));
        // Default lists are on unless switched off; anything but true/false is refused.
        assert!(s.brevo.default_lists);
        let off = Settings::from_vars(&Vars::from_pairs([("BREVO_DEFAULT_LISTS", "false")]))
            .expect("valid");
        assert!(!off.brevo.default_lists);
        let err = Settings::from_vars(&Vars::from_pairs([("BREVO_DEFAULT_LISTS", "off")]))
            .expect_err("invalid");
        assert!(err.to_string().contains("BREVO_DEFAULT_LISTS"), "{err}");
    }

    #[test]
    fn a_further_gorgias_store_reads_its_own_variables() {
        let dir = std::env::temp_dir().join(format!("deskbridge-stores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("stores.yaml");
        std::fs::write(&file, "connectors:\n  gorgias:eu-store: {}\n").expect("written");
        let s = Settings::from_vars(&Vars::from_pairs([
            ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8")),
            ("GORGIAS_DOMAIN", "main"),
            ("GORGIAS_EU_STORE_DOMAIN", "eu-shop"),
            ("GORGIAS_EU_STORE_EMAIL", "ops@eu.test"),
            ("GORGIAS_EU_STORE_API_KEY", "k"),
        ]))
        .expect("valid");
        let store: Source = "gorgias:eu-store".parse().expect("an account");
        let g = s.gorgias_of(&store).expect("the store's settings");
        assert_eq!(g.base_url.as_deref(), Some("https://eu-shop.gorgias.com"));
        assert!(s.api_enabled(&store));
        assert!(
            !s.webhook_enabled(&store),
            "no GORGIAS_EU_STORE_WEBHOOK_TOKEN"
        );
        assert!(
            !s.api_enabled(&Source::Gorgias),
            "the first store has no credentials"
        );
        let lines = s.describe_sources();
        assert!(
            lines.contains(&"gorgias:eu-store: webhooks off at /webhooks/gorgias/eu-store, API on (variables GORGIAS_EU_STORE_*)".to_string()),
            "{lines:?}"
        );
        let bad = Settings::from_vars(&Vars::from_pairs([
            ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8")),
            ("GORGIAS_EU_STORE_BASE_URL", "eu-shop.gorgias.com"),
        ]));
        assert!(
            matches!(bad, Err(ConfigError::InvalidVariable { ref name, .. }) if name == "GORGIAS_EU_STORE_BASE_URL"),
            "{bad:?}"
        );
        std::fs::remove_file(file).ok();
    }

    #[test]
    fn further_zendesk_and_intercom_accounts_read_their_own_variables() {
        let dir = std::env::temp_dir().join(format!("deskbridge-accounts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("accounts.yaml");
        std::fs::write(
            &file,
            "connectors:\n  zendesk:brand2: {}\n  intercom:eu-workspace:\n    \
             api_version: \"2.10\"\n  intercom:us: { access_token: \"${US_TOKEN}\" }\n",
        )
        .expect("written");
        let config = ("DESKBRIDGE_CONFIG", file.to_str().expect("utf-8"));
        let s = Settings::from_vars(
            &Vars::from_pairs([
                config,
                ("ZENDESK_SUBDOMAIN", "main"),
                ("ZENDESK_OAUTH_CLIENT_ID", "main-client"),
                ("ZENDESK_OAUTH_CLIENT_SECRET", "main-secret"),
                ("ZENDESK_WEBHOOK_SECRET", "main-signing"),
                ("ZENDESK_BRAND2_SUBDOMAIN", "brand2.zendesk.com"),
                ("ZENDESK_BRAND2_OAUTH_CLIENT_ID", "brand2-client"),
                ("ZENDESK_BRAND2_OAUTH_SCOPE", "read  write"),
                ("ZENDESK_BRAND2_WEBHOOK_SECRET", "brand2-signing"),
                ("ZENDESK_BRAND2_SYNC_STAFF", "true"),
                ("INTERCOM_EU_WORKSPACE_ACCESS_TOKEN", "eu-token"),
                ("INTERCOM_EU_WORKSPACE_CLIENT_SECRET", "eu-client-secret"),
                (
                    "INTERCOM_EU_WORKSPACE_BASE_URL",
                    "https://api.eu.intercom.io/",
                ),
                (
                    "INTERCOM_US_ACCESS_TOKEN",
                    "not-read: the file names another",
                ),
            ])
            .with_fallback(HashMap::from([
                (
                    "ZENDESK_BRAND2_OAUTH_CLIENT_SECRET".to_string(),
                    "brand2-secret".to_string(),
                ),
                ("US_TOKEN".to_string(), "us-token".to_string()),
            ])),
        )
        .expect("valid");
        let brand2: Source = "zendesk:brand2".parse().expect("an account");
        let eu: Source = "intercom:eu-workspace".parse().expect("an account");
        let us: Source = "intercom:us".parse().expect("an account");

        let z = s.zendesk_of(&brand2).expect("brand2's settings");
        assert_eq!(z.base_url.as_deref(), Some("https://brand2.zendesk.com"));
        assert_eq!(z.webhook_secret.as_deref(), Some("brand2-signing"));
        assert!(z.sync_staff && !s.zendesk.sync_staff);
        assert_eq!(
            z.credentials,
            Some(ZendeskCredentials::OAuthClient {
                client_id: "brand2-client".into(),
                client_secret: "brand2-secret".into(),
                scope: "read write".into(),
            })
        );
        assert_eq!(
            s.zendesk.webhook_secret.as_deref(),
            Some("main-signing"),
            "the first account keeps its own"
        );
        assert!(s.api_enabled(&brand2) && s.webhook_enabled(&brand2));

        let i = s.intercom_of(&eu).expect("the workspace's settings");
        assert_eq!(i.base_url, "https://api.eu.intercom.io");
        assert_eq!(i.access_token.as_deref(), Some("eu-token"));
        assert_eq!(i.client_secret.as_deref(), Some("eu-client-secret"));
        assert_eq!(i.version, "2.10");
        assert!(s.api_enabled(&eu) && s.webhook_enabled(&eu));
        assert!(!s.api_enabled(&Source::Intercom) && !s.webhook_enabled(&Source::Intercom));
        let i = s.intercom_of(&us).expect("us's settings");
        assert_eq!(i.access_token.as_deref(), Some("us-token"));
        assert!(s.api_enabled(&us) && !s.webhook_enabled(&us));
        // An account the file does not name has no settings, whatever the variables say.
        let other: Source = "zendesk:other".parse().expect("an account");
        assert!(s.zendesk_of(&other).is_none() && !s.api_enabled(&other));
        assert!(s.intercom_of(&brand2).is_none() && s.gorgias_of(&brand2).is_none());

        let lines = s.describe_sources();
        for want in [
            "zendesk:brand2: webhooks on at /webhooks/zendesk/brand2, API on (OAuth client \
             credentials) (variables ZENDESK_BRAND2_*)",
            "intercom:eu-workspace: webhooks on at /webhooks/intercom/eu-workspace, API on \
             (variables INTERCOM_EU_WORKSPACE_*)",
        ] {
            assert!(lines.contains(&want.to_string()), "{want}\n{lines:?}");
        }
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("brand2-secret") && !l.contains("eu-token")),
            "{lines:?}"
        );

        // Each bad variable is named with its account's prefix.
        for (name, value) in [
            ("ZENDESK_BRAND2_SUBDOMAIN", "brand 2"),
            ("ZENDESK_BRAND2_BASE_URL", "brand2.zendesk.com"),
            ("ZENDESK_BRAND2_SYNC_STAFF", "sometimes"),
            ("INTERCOM_EU_WORKSPACE_BASE_URL", "api.eu.intercom.io"),
        ] {
            let bad = Settings::from_vars(&Vars::from_pairs([config, (name, value)]));
            assert!(
                matches!(bad, Err(ConfigError::InvalidVariable { name: ref n, .. }) if n == name),
                "{name}: {bad:?}"
            );
        }
        let half = Settings::from_vars(&Vars::from_pairs([
            config,
            ("ZENDESK_BRAND2_SUBDOMAIN", "brand2"),
            ("ZENDESK_BRAND2_OAUTH_CLIENT_ID", "brand2-client"),
        ]))
        .expect("valid");
        let line = half
            .describe_sources()
            .into_iter()
            .find(|l| l.starts_with("zendesk:brand2:"))
            .expect("brand2's line");
        assert!(
            line.contains(
                "API off (ZENDESK_BRAND2_OAUTH_CLIENT_SECRET not set, so the OAuth client is not \
                 used)"
            ),
            "{line}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn generic_sources_take_their_secret_from_the_named_variable() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/cinnox-zapier.yaml"
        );
        let cinnox = Source::Generic("cinnox".into());
        let without = Settings::from_vars(&Vars::from_pairs([("DESKBRIDGE_CONFIG", example)]))
            .expect("valid");
        assert!(!without.webhook_enabled(&cinnox));
        assert!(!without.api_enabled(&cinnox));
        assert!(
            without.describe_sources().contains(
                &"generic:cinnox: webhooks off (CINNOX_WEBHOOK_TOKEN not set) at \
                            /webhooks/generic/cinnox"
                    .to_string()
            )
        );

        // From the secret (the environment would win, as for every variable).
        let with = Settings::from_vars(
            &Vars::from_pairs([("DESKBRIDGE_CONFIG", example)]).with_fallback(HashMap::from([(
                "CINNOX_WEBHOOK_TOKEN".to_string(),
                "zap-token".to_string(),
            )])),
        )
        .expect("valid");
        assert!(with.webhook_enabled(&cinnox));
        assert_eq!(
            with.generic_secrets.get("cinnox").map(String::as_str),
            Some("zap-token")
        );
        let lines = with.describe_sources();
        assert!(
            lines.contains(&"generic:cinnox: webhooks on at /webhooks/generic/cinnox".to_string()),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains("zap-token")));
        // A generic source the file does not describe stays off.
        assert!(!with.webhook_enabled(&Source::Generic("other".into())));
    }
}
