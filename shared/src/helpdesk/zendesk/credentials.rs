//! The credentials the Zendesk API is called with, read from the environment: an OAuth client,
//! a ready OAuth token, or the legacy API token (see [`super::auth`] for how each is used).
//! Secrets are left out of every `Debug` output.

use std::fmt;

use crate::config::vars::{ConfigError, Vars};
use crate::http::HeaderValue;

/// Scope asked for when `ZENDESK_OAUTH_SCOPE` is unset: reading is all deskbridge does.
pub const DEFAULT_SCOPE: &str = "read";
/// The day Zendesk stops accepting API tokens.
pub const API_TOKEN_END: &str = "2027-04-30";

// The first account's variables; a further account's are the same under its own prefix.
const OAUTH_CLIENT_ID_VAR: &str = "ZENDESK_OAUTH_CLIENT_ID";
const OAUTH_CLIENT_SECRET_VAR: &str = "ZENDESK_OAUTH_CLIENT_SECRET";
const OAUTH_SCOPE_VAR: &str = "ZENDESK_OAUTH_SCOPE";
const OAUTH_TOKEN_VAR: &str = "ZENDESK_OAUTH_TOKEN";
const EMAIL_VAR: &str = "ZENDESK_EMAIL";
const API_TOKEN_VAR: &str = "ZENDESK_API_TOKEN";

/// The name of the variable `first` (a `ZENDESK_` name) under `prefix`.
fn named(prefix: &str, first: &str) -> String {
    format!(
        "{prefix}{}",
        first.strip_prefix("ZENDESK_").unwrap_or(first)
    )
}

/// The credentials the Zendesk API is called with.
#[derive(Clone, PartialEq, Eq)]
pub enum ZendeskCredentials {
    /// An OAuth client: tokens come from the client-credentials grant.
    OAuthClient {
        client_id: String,
        client_secret: String,
        /// Space-separated scopes (`read`, `read write`, `tickets:read users:read`).
        scope: String,
    },
    /// A ready OAuth access token.
    OAuthToken(String),
    /// The legacy email + API token.
    ApiToken { email: String, api_token: String },
}

impl fmt::Debug for ZendeskCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZendeskCredentials::OAuthClient {
                client_id, scope, ..
            } => f
                .debug_struct("OAuthClient")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("scope", scope)
                .finish(),
            ZendeskCredentials::OAuthToken(_) => f.write_str("OAuthToken(<redacted>)"),
            ZendeskCredentials::ApiToken { email, .. } => f
                .debug_struct("ApiToken")
                .field("email", email)
                .field("api_token", &"<redacted>")
                .finish(),
        }
    }
}

/// The credentials `vars` hold, and the half of the OAuth client pair that is missing when only
/// one half is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialVars {
    /// The first complete set, by preference: OAuth client, ready OAuth token, API token.
    pub credentials: Option<ZendeskCredentials>,
    /// `<prefix>OAUTH_CLIENT_ID` or `<prefix>OAUTH_CLIENT_SECRET` when only the other one is
    /// set.
    pub incomplete_client: Option<String>,
}

impl ZendeskCredentials {
    /// Reads the credentials from `vars` (environment over the secret), under `prefix`:
    /// `ZENDESK_` for the account of the `ZENDESK_*` variables (`ZENDESK_OAUTH_CLIENT_ID`, …),
    /// a further account's own (`ZENDESK_BRAND2_`). An invalid `<prefix>OAUTH_SCOPE` (with an
    /// OAuth client) or `<prefix>OAUTH_TOKEN` is an error.
    pub fn from_vars(vars: &Vars, prefix: &str) -> Result<CredentialVars, ConfigError> {
        let var = |first: &str| vars.get(&named(prefix, first));
        let id = var(OAUTH_CLIENT_ID_VAR);
        let secret = var(OAUTH_CLIENT_SECRET_VAR);
        let incomplete_client = match (&id, &secret) {
            (Some(_), None) => Some(named(prefix, OAUTH_CLIENT_SECRET_VAR)),
            (None, Some(_)) => Some(named(prefix, OAUTH_CLIENT_ID_VAR)),
            _ => None,
        };
        let credentials = if let (Some(client_id), Some(client_secret)) = (id, secret) {
            Some(ZendeskCredentials::OAuthClient {
                client_id,
                client_secret,
                scope: scope(vars, prefix)?,
            })
        } else if let Some(token) = var(OAUTH_TOKEN_VAR) {
            if bearer(&token).is_none() {
                return Err(ConfigError::InvalidVariable {
                    name: named(prefix, OAUTH_TOKEN_VAR),
                    reason: "holds characters an HTTP header cannot carry".into(),
                });
            }
            Some(ZendeskCredentials::OAuthToken(token))
        } else {
            match (var(EMAIL_VAR), var(API_TOKEN_VAR)) {
                (Some(email), Some(api_token)) => {
                    Some(ZendeskCredentials::ApiToken { email, api_token })
                }
                _ => None,
            }
        };
        Ok(CredentialVars {
            credentials,
            incomplete_client,
        })
    }

    /// The method in a few words, for start-up lines and `deskbridge check`.
    pub fn method(&self) -> &'static str {
        match self {
            ZendeskCredentials::OAuthClient { .. } => "OAuth client credentials",
            ZendeskCredentials::OAuthToken(_) => "ready OAuth access token",
            ZendeskCredentials::ApiToken { .. } => "legacy API token",
        }
    }

    /// The variables these credentials come from.
    pub fn variables(&self) -> &'static str {
        match self {
            ZendeskCredentials::OAuthClient { .. } => {
                "ZENDESK_OAUTH_CLIENT_ID, ZENDESK_OAUTH_CLIENT_SECRET"
            }
            ZendeskCredentials::OAuthToken(_) => "ZENDESK_OAUTH_TOKEN",
            ZendeskCredentials::ApiToken { .. } => "ZENDESK_EMAIL, ZENDESK_API_TOKEN",
        }
    }

    /// Why an API call answered 401 although these credentials were used (and, for an OAuth
    /// client, renewed once), naming what to check.
    pub fn unauthorized_hint(&self) -> String {
        match self {
            ZendeskCredentials::OAuthClient { .. } => {
                "Zendesk refused a newly granted OAuth token: check that the OAuth client \
                 (ZENDESK_OAUTH_CLIENT_ID) belongs to this account (ZENDESK_SUBDOMAIN) and is \
                 still active"
                    .to_string()
            }
            ZendeskCredentials::OAuthToken(_) => {
                "the access token in ZENDESK_OAUTH_TOKEN was refused (expired or revoked?) and \
                 cannot be renewed: set ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET \
                 so that deskbridge obtains its own tokens, or replace the token"
                    .to_string()
            }
            ZendeskCredentials::ApiToken { .. } => format!(
                "bad credentials: check ZENDESK_EMAIL and ZENDESK_API_TOKEN, and that token \
                 access is enabled (Admin Center > Apps and integrations > Zendesk API); API \
                 tokens stop working on {API_TOKEN_END}: set ZENDESK_OAUTH_CLIENT_ID and \
                 ZENDESK_OAUTH_CLIENT_SECRET instead"
            ),
        }
    }
}

/// `<prefix>OAUTH_SCOPE`, whitespace normalised, or [`DEFAULT_SCOPE`].
fn scope(vars: &Vars, prefix: &str) -> Result<String, ConfigError> {
    let Some(raw) = vars.get(&named(prefix, OAUTH_SCOPE_VAR)) else {
        return Ok(DEFAULT_SCOPE.to_string());
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    let valid = |w: &&str| {
        w.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'))
    };
    if !words.iter().all(valid) {
        return Err(ConfigError::InvalidVariable {
            name: named(prefix, OAUTH_SCOPE_VAR),
            reason: "expected space-separated scopes such as `read` or `tickets:read users:read`"
                .into(),
        });
    }
    Ok(words.join(" "))
}

/// `Bearer {token}` as a header value hidden from debug output; `None` for a token no header
/// can carry.
pub(super) fn bearer(token: &str) -> Option<HeaderValue> {
    sensitive(&format!("Bearer {token}"))
}

pub(super) fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}
