//! Helpdesk sources: webhook authentication and parsing into canonical records, and the
//! helpdesk API clients used to look people up (and, for batch sync, to read pages).

pub mod generic;
pub mod gorgias;
pub mod intercom;
pub mod lookup;
pub mod parse;
pub mod signature;
pub mod zendesk;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Settings;
use crate::model::{Person, Source};
use crate::sync::SourceReader;
use crate::sync::limiter::Rate;
use crate::sync::readers::sync_client;

pub use parse::{Delivery, MAX_JSON_DEPTH, ParseError, Parsed, body_hash, parse_json};

pub use lookup::{HelpdeskLookup, LookupError, PersonLookup};
pub use signature::AuthError;
pub use zendesk::auth::{ZendeskAuth, ZendeskCredentials};

/// Checks that a request really comes from `source`'s helpdesk (signature or token).
pub fn verify_webhook(
    settings: &Settings,
    source: &Source,
    headers: &http::HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    match source {
        Source::Zendesk => signature::verify_zendesk(
            settings
                .zendesk
                .webhook_secret
                .as_deref()
                .ok_or(AuthError::NotConfigured)?,
            headers,
            body,
            now,
            settings.signature_tolerance,
        ),
        Source::Intercom => signature::verify_intercom(
            settings
                .intercom
                .client_secret
                .as_deref()
                .ok_or(AuthError::NotConfigured)?,
            headers,
            body,
        ),
        Source::Gorgias => signature::verify_bearer(
            settings
                .gorgias
                .webhook_token
                .as_deref()
                .ok_or(AuthError::NotConfigured)?,
            headers,
        ),
        Source::Generic(name) => {
            let config = settings
                .file
                .generic
                .get(name)
                .ok_or(AuthError::NotConfigured)?;
            let secret = settings
                .generic_secrets
                .get(name)
                .ok_or(AuthError::NotConfigured)?;
            config.auth.verify(secret, headers, body)
        }
    }
}

/// Parses a verified webhook body of `source` into canonical records. Generic sources are read
/// as `settings` describes them.
pub fn parse_webhook(
    settings: &Settings,
    source: &Source,
    headers: &http::HeaderMap,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let value = parse_json(body)?;
    match source {
        Source::Zendesk => zendesk::webhook::parse_webhook(&value, headers, body, received_at),
        Source::Intercom => intercom::webhook::parse_webhook(&value, received_at),
        Source::Gorgias => gorgias::webhook::parse_webhook(&value, body, received_at),
        Source::Generic(name) => match settings.file.generic.get(name) {
            Some(config) => generic::parse_webhook(name, config, &value, body, received_at),
            None => Err(ParseError::Invalid(format!(
                "generic source `{name}` is not configured"
            ))),
        },
    }
}

/// The canonical person of a helpdesk's own person object (Zendesk user, Intercom contact,
/// Gorgias customer), as returned by its API.
pub fn person_from_profile(source: &Source, profile: &Value) -> Person {
    match source {
        Source::Zendesk => zendesk::webhook::person_from_user(profile),
        Source::Intercom => intercom::webhook::person_from_contact(profile),
        Source::Gorgias => gorgias::webhook::person_from_customer(profile),
        Source::Generic(_) => Person::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// The registry of helpdesk API readers for the batch sync

/// The readers of every helpdesk whose API credentials are set, in [`Source::BUILT_IN`] order,
/// sharing one HTTP client. Each has its own account limiter at the default rates.
///
/// If the HTTP client cannot be built (the TLS back-end failed to initialise, which does not
/// happen in practice), the error is logged and no reader is returned.
pub fn readers_from_settings(settings: &Settings) -> Vec<Box<dyn SourceReader>> {
    let Some(client) = client_or_log() else {
        return Vec::new();
    };
    Source::BUILT_IN
        .iter()
        .filter_map(|source| build(settings, source, &client))
        .collect()
}

/// The reader of `source`, when its API credentials are set (and the HTTP client builds).
pub fn reader_for(settings: &Settings, source: &Source) -> Option<Box<dyn SourceReader>> {
    if !settings.api_enabled(source) {
        return None;
    }
    build(settings, source, &client_or_log()?)
}

fn client_or_log() -> Option<reqwest::Client> {
    sync_client()
        .map_err(
            |e| tracing::error!(error = %e, "helpdesk HTTP client unavailable; no sync readers"),
        )
        .ok()
}

fn build(
    settings: &Settings,
    source: &Source,
    client: &reqwest::Client,
) -> Option<Box<dyn SourceReader>> {
    if !settings.api_enabled(source) {
        return None;
    }
    let client = client.clone();
    // Sync instances that may run at once each take this share of the account's limits.
    let share = settings.sync_instances;
    match source {
        Source::Zendesk => Some(Box::new(
            // The settings' token cache: look-ups built from the same settings share the token.
            zendesk::sync::ZendeskReader::from_auth(client, settings.zendesk.auth()?).with_rates(
                Rate::zendesk_exports().share(share),
                Rate::zendesk_account().share(share),
            ),
        )),
        Source::Intercom => {
            let i = &settings.intercom;
            Some(Box::new(
                intercom::sync::IntercomReader::new(
                    client,
                    &i.base_url,
                    i.access_token.as_deref()?,
                    &i.version,
                )
                .with_rate(Rate::intercom().share(share)),
            ))
        }
        Source::Gorgias => {
            let g = &settings.gorgias;
            Some(Box::new(
                gorgias::sync::GorgiasReader::new(
                    client,
                    g.base_url.as_deref()?,
                    g.email.as_deref()?,
                    g.api_key.as_deref()?,
                )
                .with_rate(Rate::gorgias().share(share)),
            ))
        }
        Source::Generic(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_vars(&Vars::from_pairs(pairs.iter().copied())).expect("settings")
    }

    #[test]
    fn only_sources_with_api_credentials_get_a_reader() {
        let s = settings(&[]);
        assert!(readers_from_settings(&s).is_empty());
        let s = settings(&[
            ("ZENDESK_SUBDOMAIN", "acme"),
            ("ZENDESK_EMAIL", "ops@acme.test"),
            ("ZENDESK_API_TOKEN", "t"),
            ("GORGIAS_DOMAIN", "acme"),
            ("GORGIAS_EMAIL", "ops@acme.test"),
        ]);
        let readers = readers_from_settings(&s);
        let sources: Vec<Source> = readers.iter().map(|r| r.source()).collect();
        assert_eq!(sources, vec![Source::Zendesk]);
        assert_eq!(
            readers[0].streams(),
            &["users", "tickets", "satisfaction_ratings"]
        );
        assert!(reader_for(&s, &Source::Gorgias).is_none());
        let s = settings(&[("INTERCOM_ACCESS_TOKEN", "tok")]);
        let intercom = reader_for(&s, &Source::Intercom).expect("reader");
        assert_eq!(intercom.streams(), &["contacts", "conversations"]);
        assert!(reader_for(&s, &Source::Generic("x".into())).is_none());
    }

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert_eq!(
            parse_json(deep.as_bytes()),
            Err(ParseError::TooDeep(MAX_JSON_DEPTH))
        );
        let ok = "[".repeat(10) + &"]".repeat(10);
        assert!(parse_json(ok.as_bytes()).is_ok());
        // Brackets inside strings do not count.
        let s = format!("{{\"a\":\"{}\"}}", "[".repeat(200));
        assert!(parse_json(s.as_bytes()).is_ok());
        assert!(matches!(parse_json(b"{nope"), Err(ParseError::NotJson(_))));
    }
}
