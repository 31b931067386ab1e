//! Settings from the environment (and, in AWS, one Secrets Manager secret). Names are the
//! contract in the README's configuration table.

use std::collections::BTreeMap;
use std::time::Duration;

pub mod brevo_inbound;
pub mod file;
pub mod vars;

pub use brevo_inbound::BrevoInboundSettings;
pub use vars::{ConfigError, Vars};

use crate::helpdesk::zendesk::auth::{TokenCache, ZendeskAuth, ZendeskCredentials};
use crate::mapping::Mapping;
use crate::model::Source;

/// Zendesk settings. API access needs the subdomain (or base URL) and one set of credentials.
#[derive(Debug, Clone, Default)]
pub struct ZendeskSettings {
    pub base_url: Option<String>,
    /// The API credentials, the first set present of: OAuth client
    /// (`ZENDESK_OAUTH_CLIENT_ID`, `ZENDESK_OAUTH_CLIENT_SECRET`, `ZENDESK_OAUTH_SCOPE`), ready
    /// OAuth token (`ZENDESK_OAUTH_TOKEN`), legacy `ZENDESK_EMAIL` + `ZENDESK_API_TOKEN`.
    pub credentials: Option<ZendeskCredentials>,
    /// When only one half of the OAuth client pair is set: the variable that is missing.
    pub incomplete_oauth_client: Option<&'static str>,
    pub webhook_secret: Option<String>,
    /// Whether the user stream also syncs agents and admins (`ZENDESK_SYNC_STAFF`, default
    /// false: end users only).
    pub sync_staff: bool,
    /// The process's OAuth token, shared by every client built with [`ZendeskSettings::auth`].
    pub tokens: TokenCache,
}

impl ZendeskSettings {
    /// The API authentication, when the base URL and credentials are set. Every one returned
    /// shares this settings' token.
    pub fn auth(&self) -> Option<ZendeskAuth> {
        Some(ZendeskAuth::with_tokens(
            self.base_url.as_deref()?,
            self.credentials.clone()?,
            self.tokens.clone(),
        ))
    }

    /// Why the API is off, or how it authenticates, for the start-up line.
    fn api_state(&self) -> String {
        let incomplete = self
            .incomplete_oauth_client
            .map(|missing| format!("{missing} not set, so the OAuth client is not used"));
        match (&self.base_url, &self.credentials) {
            (None, _) => "off (ZENDESK_SUBDOMAIN or ZENDESK_BASE_URL not set)".to_string(),
            (Some(_), None) => format!(
                "off ({})",
                incomplete.unwrap_or_else(|| {
                    "no API credentials: set ZENDESK_OAUTH_CLIENT_ID and \
                     ZENDESK_OAUTH_CLIENT_SECRET"
                        .to_string()
                })
            ),
            (Some(_), Some(credentials)) => {
                let method = match credentials {
                    ZendeskCredentials::ApiToken { .. } => format!(
                        "legacy API token, which Zendesk stops accepting on {}: set \
                         ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET",
                        crate::helpdesk::zendesk::auth::API_TOKEN_END
                    ),
                    other => other.method().to_string(),
                };
                match incomplete {
                    Some(note) => format!("on ({method}; {note})"),
                    None => format!("on ({method})"),
                }
            }
        }
    }
}

/// Intercom settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntercomSettings {
    pub base_url: String,
    pub access_token: Option<String>,
    pub client_secret: Option<String>,
    pub version: String,
}

/// Gorgias settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GorgiasSettings {
    pub base_url: Option<String>,
    pub email: Option<String>,
    pub api_key: Option<String>,
    pub webhook_token: Option<String>,
}

impl GorgiasSettings {
    /// The settings of `source` (Gorgias, or one of its accounts) from its variables:
    /// `<prefix>BASE_URL` or `<prefix>DOMAIN`, `<prefix>EMAIL`, `<prefix>API_KEY`,
    /// `<prefix>WEBHOOK_TOKEN`, with the prefix of [`Source::variable_prefix`].
    pub fn from_vars(vars: &Vars, source: &Source) -> Result<GorgiasSettings, ConfigError> {
        let prefix = source.variable_prefix();
        // The first store's names as written; an account's under its prefix.
        let (base_url, domain, email, api_key, webhook_token) = match source {
            Source::Gorgias => (
                vars.get("GORGIAS_BASE_URL"),
                vars.get("GORGIAS_DOMAIN"),
                vars.get("GORGIAS_EMAIL"),
                vars.get("GORGIAS_API_KEY"),
                vars.get("GORGIAS_WEBHOOK_TOKEN"),
            ),
            _ => {
                let var = |name: &str| vars.get(&format!("{prefix}{name}"));
                (
                    var("BASE_URL"),
                    var("DOMAIN"),
                    var("EMAIL"),
                    var("API_KEY"),
                    var("WEBHOOK_TOKEN"),
                )
            }
        };
        let invalid = |name: &str, reason: &str| ConfigError::InvalidVariable {
            name: format!("{prefix}{name}"),
            reason: reason.into(),
        };
        let base_url = match (base_url, domain) {
            (Some(u), _) if u.starts_with("https://") || u.starts_with("http://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            (Some(_), _) => return Err(invalid("BASE_URL", "expected an http(s) URL")),
            (None, Some(d)) => {
                let label = d.split('.').next().unwrap_or_default().trim().to_string();
                if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(invalid("DOMAIN", "expected a subdomain such as `yourco`"));
                }
                Some(format!("https://{label}.gorgias.com"))
            }
            (None, None) => None,
        };
        Ok(GorgiasSettings {
            base_url,
            email,
            api_key,
            webhook_token,
        })
    }
}

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
}

pub const DEFAULT_BREVO_BASE_URL: &str = "https://api.brevo.com/v3";
pub const DEFAULT_INTERCOM_BASE_URL: &str = "https://api.intercom.io";
pub const DEFAULT_INTERCOM_VERSION: &str = "2.11";
/// Default whole-request timeout of a Brevo call.
pub const DEFAULT_BREVO_TIMEOUT: Duration = crate::brevo::REQUEST_TIMEOUT;
/// Longest Brevo request timeout accepted (a call must never eat a Lambda's whole timeout).
pub const MAX_BREVO_TIMEOUT: Duration = Duration::from_secs(60);

fn host_label(name: &'static str, value: &str) -> Result<String, ConfigError> {
    // Accept `yourco` as well as `yourco.zendesk.com` / `yourstore.gorgias.com`.
    let label = value
        .split('.')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ConfigError::Invalid {
            name,
            reason: "expected a subdomain such as `yourco`".into(),
        });
    }
    Ok(label)
}

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

        let zendesk_base = match (vars.get("ZENDESK_BASE_URL"), vars.get("ZENDESK_SUBDOMAIN")) {
            (Some(u), _) => Some(url("ZENDESK_BASE_URL", u)?),
            (None, Some(sub)) => Some(format!(
                "https://{}.zendesk.com",
                host_label("ZENDESK_SUBDOMAIN", &sub)?
            )),
            (None, None) => None,
        };
        let zendesk_credentials = ZendeskCredentials::from_vars(vars)?;
        let zendesk = ZendeskSettings {
            base_url: zendesk_base,
            credentials: zendesk_credentials.credentials,
            incomplete_oauth_client: zendesk_credentials.incomplete_client,
            webhook_secret: vars.get("ZENDESK_WEBHOOK_SECRET"),
            sync_staff: flag(vars, "ZENDESK_SYNC_STAFF", false)?,
            tokens: TokenCache::default(),
        };

        // The mapping file, validated as a whole: a bad file stops start-up with every problem.
        let file = crate::config::file::load_from_vars(vars)?.unwrap_or_default();
        // The file may name the token's variable (`access_token: "${NAME}"`) and pin the API
        // version; the INTERCOM_VERSION variable wins over the file, as every variable does.
        let intercom_file = file.sources.get(Source::Intercom.as_str());
        let token_var = intercom_file
            .and_then(|s| s.token_var.as_deref())
            .unwrap_or("INTERCOM_ACCESS_TOKEN");
        let intercom = IntercomSettings {
            base_url: url(
                "INTERCOM_BASE_URL",
                vars.get("INTERCOM_BASE_URL")
                    .unwrap_or_else(|| DEFAULT_INTERCOM_BASE_URL.into()),
            )?,
            access_token: vars.get(token_var),
            client_secret: vars.get("INTERCOM_CLIENT_SECRET"),
            version: vars
                .get("INTERCOM_VERSION")
                .or_else(|| intercom_file.and_then(|s| s.api_version.clone()))
                .unwrap_or_else(|| DEFAULT_INTERCOM_VERSION.into()),
        };

        let gorgias = GorgiasSettings::from_vars(vars, &Source::Gorgias)?;
        // Further stores, each with its own variables (`GORGIAS_EU_STORE_API_KEY`, …).
        let gorgias_accounts = file
            .sources
            .keys()
            .filter_map(|name| name.parse::<Source>().ok())
            .filter(|s| s.account_name().is_some() && s.vendor() == Source::Gorgias)
            .map(|s| Ok((s.to_string(), GorgiasSettings::from_vars(vars, &s)?)))
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;

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
        match source {
            Source::Zendesk => self.zendesk.webhook_secret.is_some(),
            Source::Intercom => self.intercom.client_secret.is_some(),
            Source::Gorgias => self.gorgias.webhook_token.is_some(),
            Source::Account(_) => self
                .gorgias_of(source)
                .is_some_and(|g| g.webhook_token.is_some()),
            Source::Generic(name) => {
                self.file.generic.contains_key(name) && self.generic_secrets.contains_key(name)
            }
            // An added helpdesk says itself (`Helpdesk::webhook_enabled`).
            Source::Added(_) => false,
        }
    }

    /// Whether the helpdesk API of `source` can be called (look-ups, batch sync).
    pub fn api_enabled(&self, source: &Source) -> bool {
        if !self.file.source_enabled(source) {
            return false;
        }
        match source {
            Source::Zendesk => {
                self.zendesk.base_url.is_some() && self.zendesk.credentials.is_some()
            }
            Source::Intercom => self.intercom.access_token.is_some(),
            Source::Gorgias | Source::Account(_) => self
                .gorgias_of(source)
                .is_some_and(|g| g.base_url.is_some() && g.email.is_some() && g.api_key.is_some()),
            Source::Generic(name) => {
                self.file.pulls.contains_key(name) && self.pull_secrets.contains_key(name)
            }
            Source::Added(_) => false,
        }
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
                    Source::Zendesk if self.file.source_enabled(s) => self.zendesk.api_state(),
                    _ if self.api_enabled(s) => "on".to_string(),
                    _ => "off (no API credentials)".to_string(),
                };
                format!("{s}: webhooks {webhook}, API {api}")
            })
            .chain(generic)
            .chain(pulls)
            .chain(self.gorgias_accounts.keys().map(|name| {
                let source: Source = name.parse().unwrap_or(Source::Gorgias);
                let on = |set: bool| if set { "on" } else { "off" };
                let account = source.account_name().unwrap_or_default();
                format!(
                    "{name}: webhooks {} at /webhooks/gorgias/{account}, API {} (variables {}*)",
                    on(self.webhook_enabled(&source)),
                    on(self.api_enabled(&source)),
                    source.variable_prefix()
                )
            }))
            .chain(std::iter::once(self.brevo_inbound.describe()))
            .chain(std::iter::once(self.brevo_inbound.describe_actions()))
            .chain(warnings)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
