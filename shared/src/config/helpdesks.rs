//! The built-in helpdesks' settings: the account of each helpdesk's own variables
//! (`ZENDESK_*`, `INTERCOM_*`, `GORGIAS_*`), and the further accounts the configuration file
//! names (`connectors: zendesk:<account>`), each read the same way from the variables under its
//! own prefix ([`Source::variable_prefix`]: `ZENDESK_BRAND2_SUBDOMAIN`,
//! `INTERCOM_EU_WORKSPACE_ACCESS_TOKEN`, `GORGIAS_EU_STORE_API_KEY`).

use std::collections::BTreeMap;

use super::file::FileConfig;
use super::vars::{ConfigError, Vars};
use crate::helpdesk::zendesk::auth::{TokenCache, ZendeskAuth, ZendeskCredentials};
use crate::model::Source;

pub const DEFAULT_INTERCOM_BASE_URL: &str = "https://api.intercom.io";
pub const DEFAULT_INTERCOM_VERSION: &str = "2.11";

// The first account's variables; a further account's are the same under its own prefix
// ([`variable`]).
const ZENDESK_BASE_URL_VAR: &str = "ZENDESK_BASE_URL";
const ZENDESK_SUBDOMAIN_VAR: &str = "ZENDESK_SUBDOMAIN";
const ZENDESK_WEBHOOK_SECRET_VAR: &str = "ZENDESK_WEBHOOK_SECRET";
const ZENDESK_SYNC_STAFF_VAR: &str = "ZENDESK_SYNC_STAFF";
const INTERCOM_BASE_URL_VAR: &str = "INTERCOM_BASE_URL";
const INTERCOM_ACCESS_TOKEN_VAR: &str = "INTERCOM_ACCESS_TOKEN";
const INTERCOM_CLIENT_SECRET_VAR: &str = "INTERCOM_CLIENT_SECRET";
const INTERCOM_VERSION_VAR: &str = "INTERCOM_VERSION";
const GORGIAS_BASE_URL_VAR: &str = "GORGIAS_BASE_URL";
const GORGIAS_DOMAIN_VAR: &str = "GORGIAS_DOMAIN";
const GORGIAS_EMAIL_VAR: &str = "GORGIAS_EMAIL";
const GORGIAS_API_KEY_VAR: &str = "GORGIAS_API_KEY";
const GORGIAS_WEBHOOK_TOKEN_VAR: &str = "GORGIAS_WEBHOOK_TOKEN";

/// The name of `source`'s variable `first`, which is named as the helpdesk's first account's
/// (`ZENDESK_SUBDOMAIN`): itself for that account, the same under a further account's prefix
/// for that account (`ZENDESK_BRAND2_SUBDOMAIN`).
pub fn variable(source: &Source, first: &str) -> String {
    let vendor = source.vendor().variable_prefix();
    let rest = first.strip_prefix(vendor.as_str()).unwrap_or(first);
    format!("{}{rest}", source.variable_prefix())
}

/// Zendesk settings. API access needs the subdomain (or base URL) and one set of credentials.
#[derive(Debug, Clone, Default)]
pub struct ZendeskSettings {
    pub base_url: Option<String>,
    /// The API credentials, the first set present of: OAuth client
    /// (`ZENDESK_OAUTH_CLIENT_ID`, `ZENDESK_OAUTH_CLIENT_SECRET`, `ZENDESK_OAUTH_SCOPE`), ready
    /// OAuth token (`ZENDESK_OAUTH_TOKEN`), legacy `ZENDESK_EMAIL` + `ZENDESK_API_TOKEN` (a
    /// further account's under its own prefix).
    pub credentials: Option<ZendeskCredentials>,
    /// When only one half of the OAuth client pair is set: the variable that is missing.
    pub incomplete_oauth_client: Option<String>,
    pub webhook_secret: Option<String>,
    /// Whether the user stream also syncs agents and admins (`ZENDESK_SYNC_STAFF`, default
    /// false: end users only).
    pub sync_staff: bool,
    /// The process's OAuth token of this account, shared by every client built with
    /// [`ZendeskSettings::auth`].
    pub tokens: TokenCache,
}

impl ZendeskSettings {
    /// The settings of `source` (Zendesk, or one of its accounts) from its variables, with the
    /// prefix `P` of [`Source::variable_prefix`]: `<P>BASE_URL` or `<P>SUBDOMAIN`, the
    /// credentials of [`ZendeskCredentials::from_vars`], `<P>WEBHOOK_SECRET`, `<P>SYNC_STAFF`.
    pub fn from_vars(vars: &Vars, source: &Source) -> Result<ZendeskSettings, ConfigError> {
        let credentials = ZendeskCredentials::from_vars(vars, &source.variable_prefix())?;
        Ok(ZendeskSettings {
            base_url: base_url(
                vars,
                source,
                (ZENDESK_BASE_URL_VAR, ZENDESK_SUBDOMAIN_VAR),
                |l| format!("https://{l}.zendesk.com"),
            )?,
            credentials: credentials.credentials,
            incomplete_oauth_client: credentials.incomplete_client,
            webhook_secret: vars.get(&variable(source, ZENDESK_WEBHOOK_SECRET_VAR)),
            sync_staff: flag(vars, &variable(source, ZENDESK_SYNC_STAFF_VAR))?,
            tokens: TokenCache::default(),
        })
    }

    /// The API authentication, when the base URL and credentials are set. Every one returned
    /// shares this settings' token.
    pub fn auth(&self) -> Option<ZendeskAuth> {
        Some(ZendeskAuth::with_tokens(
            self.base_url.as_deref()?,
            self.credentials.clone()?,
            self.tokens.clone(),
        ))
    }

    /// Why the API is off, or how it authenticates, for the start-up line; `prefix` is the
    /// account's variable prefix (`ZENDESK_`).
    pub(super) fn api_state(&self, prefix: &str) -> String {
        let incomplete = self
            .incomplete_oauth_client
            .as_ref()
            .map(|missing| format!("{missing} not set, so the OAuth client is not used"));
        match (&self.base_url, &self.credentials) {
            (None, _) => format!("off ({prefix}SUBDOMAIN or {prefix}BASE_URL not set)"),
            (Some(_), None) => format!(
                "off ({})",
                incomplete.unwrap_or_else(|| {
                    format!(
                        "no API credentials: set {prefix}OAUTH_CLIENT_ID and \
                         {prefix}OAUTH_CLIENT_SECRET"
                    )
                })
            ),
            (Some(_), Some(credentials)) => {
                let method = match credentials {
                    ZendeskCredentials::ApiToken { .. } => format!(
                        "legacy API token, which Zendesk stops accepting on {}: set \
                         {prefix}OAUTH_CLIENT_ID and {prefix}OAUTH_CLIENT_SECRET",
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

impl IntercomSettings {
    /// The settings of `source` (Intercom, or one of its workspaces) from its variables, with
    /// the prefix `P` of [`Source::variable_prefix`]: `<P>BASE_URL`, `<P>ACCESS_TOKEN` (or the
    /// variable the file's `access_token: "${NAME}"` names), `<P>CLIENT_SECRET`, `<P>VERSION`
    /// (over the file's `api_version`).
    pub fn from_vars(
        vars: &Vars,
        source: &Source,
        file: &FileConfig,
    ) -> Result<IntercomSettings, ConfigError> {
        let var = |first: &str| vars.get(&variable(source, first));
        let in_file = file.sources.get(&source.to_string());
        let access_token = match in_file.and_then(|s| s.token_var.as_deref()) {
            Some(named) => vars.get(named),
            None => var(INTERCOM_ACCESS_TOKEN_VAR),
        };
        let base_url = match var(INTERCOM_BASE_URL_VAR) {
            None => DEFAULT_INTERCOM_BASE_URL.to_string(),
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(_) => {
                return Err(invalid(
                    variable(source, INTERCOM_BASE_URL_VAR),
                    "expected an http(s) URL",
                ));
            }
        };
        Ok(IntercomSettings {
            base_url,
            access_token,
            client_secret: var(INTERCOM_CLIENT_SECRET_VAR),
            version: var(INTERCOM_VERSION_VAR)
                .or_else(|| in_file.and_then(|s| s.api_version.clone()))
                .unwrap_or_else(|| DEFAULT_INTERCOM_VERSION.into()),
        })
    }
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
        let var = |first: &str| vars.get(&variable(source, first));
        Ok(GorgiasSettings {
            base_url: base_url(
                vars,
                source,
                (GORGIAS_BASE_URL_VAR, GORGIAS_DOMAIN_VAR),
                |l| format!("https://{l}.gorgias.com"),
            )?,
            email: var(GORGIAS_EMAIL_VAR),
            api_key: var(GORGIAS_API_KEY_VAR),
            webhook_token: var(GORGIAS_WEBHOOK_TOKEN_VAR),
        })
    }
}

/// The further accounts of `vendor` the file names (`connectors: <vendor>:<account>`), by
/// source name, each read by `read`.
pub(super) fn accounts<T>(
    file: &FileConfig,
    vendor: &Source,
    read: impl Fn(&Source) -> Result<T, ConfigError>,
) -> Result<BTreeMap<String, T>, ConfigError> {
    file.sources
        .keys()
        .filter_map(|name| name.parse::<Source>().ok())
        .filter(|s| s.is_account_of(vendor))
        .map(|s| Ok((s.to_string(), read(&s)?)))
        .collect()
}

fn invalid(name: String, reason: &str) -> ConfigError {
    ConfigError::InvalidVariable {
        name,
        reason: reason.into(),
    }
}

/// `source`'s base URL variable as given (an http(s) URL), else the helpdesk's URL of the
/// account's host label (`yourco` of `yourco` or `yourco.zendesk.com`) in its label variable;
/// `names` are the first account's (base URL, label).
fn base_url(
    vars: &Vars,
    source: &Source,
    names: (&str, &str),
    host: impl Fn(&str) -> String,
) -> Result<Option<String>, ConfigError> {
    let (url_var, label_var) = (variable(source, names.0), variable(source, names.1));
    match (vars.get(&url_var), vars.get(&label_var)) {
        (Some(u), _) if u.starts_with("https://") || u.starts_with("http://") => {
            Ok(Some(u.trim_end_matches('/').to_string()))
        }
        (Some(_), _) => Err(invalid(url_var, "expected an http(s) URL")),
        (None, Some(d)) => {
            let label = d.split('.').next().unwrap_or_default().trim();
            if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(label_var, "expected a subdomain such as `yourco`"));
            }
            Ok(Some(host(label)))
        }
        (None, None) => Ok(None),
    }
}

/// A true/false variable (`1`/`0` too), false when unset or empty.
fn flag(vars: &Vars, name: &str) -> Result<bool, ConfigError> {
    match vars.get(name).as_deref().map(str::trim) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(invalid(name.to_string(), "expected true or false")),
    }
}
