//! Helpdesk sources: webhook authentication and parsing into canonical records, and the
//! helpdesk API clients used to look people up (and, for batch sync, to read pages).
//!
//! Each helpdesk lives in its own folder and implements [`Helpdesk`] there; the [`Registry`]
//! lists them. The free functions here serve the built-in registry.

pub mod account;
pub mod api;
pub mod check;
pub mod contract;
pub mod generic;
pub mod gorgias;
pub mod intercom;
pub mod lookup;
pub mod parse;
pub mod registry;
pub mod signature;
pub mod zendesk;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Settings;
use crate::model::{Person, Source};
use crate::sync::SourceReader;

pub use parse::{Delivery, MAX_JSON_DEPTH, ParseError, Parsed, body_hash, parse_json};

pub use api::{CachePolicy, LookupError};
pub use check::{CheckApi, CheckStreams, Finding};
pub use contract::{Helpdesk, PersonApi};
pub use lookup::{HelpdeskLookup, PersonLookup};
pub use registry::{Registry, SharedBudgets, attach_budgets};
pub use signature::AuthError;
pub use zendesk::auth::{ZendeskAuth, ZendeskCredentials};

/// Checks that a request really comes from `source`'s helpdesk (signature or token), among the
/// built-in helpdesks and the generic sources.
pub fn verify_webhook(
    settings: &Settings,
    source: &Source,
    headers: &http::HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    Registry::built_in().verify_webhook(settings, source, headers, body, now)
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
    Registry::built_in().parse_webhook(settings, source, headers, body, received_at)
}

/// The canonical person of a helpdesk's own person object (Zendesk user, Intercom contact,
/// Gorgias customer), as returned by its API.
pub fn person_from_profile(source: &Source, profile: &Value) -> Person {
    Registry::built_in().person_from_profile(source, profile)
}

/// The readers of every built-in helpdesk whose API credentials are set, in
/// [`Source::BUILT_IN`] order ([`Registry::readers`]).
pub fn readers_from_settings(settings: &Settings) -> Vec<Box<dyn SourceReader>> {
    Registry::built_in().readers(settings)
}

/// The request budget of every built-in helpdesk whose API is configured, kept in `store`
/// ([`Registry::shared_budgets`]).
pub fn shared_budgets<S>(settings: &Settings, store: &S) -> SharedBudgets
where
    S: crate::state::StateStore + Clone + std::fmt::Debug + 'static,
{
    Registry::built_in().shared_budgets(settings, store)
}

/// The reader of `source`, when its API credentials are set (and the HTTP client builds).
pub fn reader_for(settings: &Settings, source: &Source) -> Option<Box<dyn SourceReader>> {
    Registry::built_in().reader_for(settings, source)
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
            &["users", "tickets", "satisfaction_ratings", "organizations"]
        );
        assert!(reader_for(&s, &Source::Gorgias).is_none());
        let s = settings(&[("INTERCOM_ACCESS_TOKEN", "tok")]);
        let intercom = reader_for(&s, &Source::Intercom).expect("reader");
        assert_eq!(
            intercom.streams(),
            &["contacts", "conversations", "companies"]
        );
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
        // …nor after escaped quotes and backslashes inside them, while those outside still do.
        let tricky = format!(
            "{{\"a\":\"x\\\" [[ \\\\\",\"b\":{}1{}}}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(
            parse_json(tricky.as_bytes()),
            Err(ParseError::TooDeep(MAX_JSON_DEPTH))
        );
        let fits = format!(
            "{{\"a\":\"x\\\" [[ \\\\\",\"b\":{}1{}}}",
            "[".repeat(MAX_JSON_DEPTH - 1),
            "]".repeat(MAX_JSON_DEPTH - 1)
        );
        assert!(parse_json(fits.as_bytes()).is_ok(), "{fits}");
        // A string left open, or a lone backslash at the end, is serde's to refuse.
        assert!(matches!(
            parse_json(b"{\"a\":\"ab"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse_json(b"{\"a\":\"ab\\"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse_json(b"{nope"), Err(ParseError::NotJson(_))));
    }
}
