//! The helpdesks deskbridge serves: the built-in ones, listed once in [`Registry::built_in`],
//! and any added with [`Registry::with`]. The webhook handler, the person look-ups, the batch
//! sync readers and the local runner all find a source's [`Helpdesk`] here.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::contract::Helpdesk;
use super::generic::vendor::Generic;
use super::gorgias::vendor::Gorgias;
use super::intercom::vendor::Intercom;
use super::parse::{ParseError, Parsed};
use super::signature::AuthError;
use super::zendesk::vendor::Zendesk;
use crate::config::Settings;
use crate::model::{Person, Source};
use crate::state::StateStore;
use crate::state::budget::StoredBudget;
use crate::sync::SourceReader;
use crate::sync::limiter::SharedBudget;
use crate::sync::readers::sync_client;

/// Each helpdesk account's budget shared between processes, by source.
pub type SharedBudgets = std::collections::HashMap<Source, Arc<dyn SharedBudget>>;

/// The helpdesks by source. Generic sources are not listed: each configured one is served by
/// a [`Generic`] made on demand from the settings.
#[derive(Clone)]
pub struct Registry {
    helpdesks: Vec<Arc<dyn Helpdesk>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.helpdesks.iter().map(|h| h.source()))
            .finish()
    }
}

/// The helpdesk of a further account (`zendesk:brand2`, `intercom:eu`, `gorgias:eu-store`):
/// its vendor's, reading the account's own settings.
fn account_helpdesk(source: &Source) -> Option<Arc<dyn Helpdesk>> {
    if let Some(account) = Zendesk::account(source) {
        return Some(Arc::new(account));
    }
    if let Some(account) = Intercom::account(source) {
        return Some(Arc::new(account));
    }
    Some(Arc::new(Gorgias::account(source)?))
}

impl Default for Registry {
    fn default() -> Self {
        Registry::built_in()
    }
}

impl Registry {
    /// The built-in helpdesks, in the order their sync streams are listed.
    pub fn built_in() -> Self {
        Registry {
            helpdesks: vec![
                Arc::new(Zendesk::default()),
                Arc::new(Intercom::default()),
                Arc::new(Gorgias::default()),
            ],
        }
    }

    /// This registry with `helpdesk` added (or in place of the one of the same source). An
    /// added helpdesk's source is a [`Source::Added`] name (see [`Source::added`]).
    pub fn with(mut self, helpdesk: Arc<dyn Helpdesk>) -> Self {
        let source = helpdesk.source();
        match self.helpdesks.iter_mut().find(|h| h.source() == source) {
            Some(slot) => *slot = helpdesk,
            None => self.helpdesks.push(helpdesk),
        }
        self
    }

    /// The listed helpdesks (built-in first, then the added ones in the order they were added).
    pub fn listed(&self) -> impl Iterator<Item = &Arc<dyn Helpdesk>> {
        self.helpdesks.iter()
    }

    /// The source a webhook path segment names (`zendesk`, `generic:cinnox`, an added
    /// helpdesk's name), when this registry serves one by that name.
    pub fn source(&self, name: &str) -> Option<Source> {
        let source = match name.parse::<Source>() {
            Ok(source) => source,
            Err(_) => Source::added(name)?,
        };
        self.get(&source).map(|_| source)
    }

    /// The helpdesk of `source`.
    pub fn get(&self, source: &Source) -> Option<Arc<dyn Helpdesk>> {
        if let Source::Generic(name) = source {
            return Some(Arc::new(Generic { name: name.clone() }));
        }
        if let Some(account) = account_helpdesk(source) {
            return Some(account);
        }
        self.helpdesks
            .iter()
            .find(|h| h.source() == *source)
            .cloned()
    }

    /// Checks that a request really comes from `source`'s helpdesk (signature or token).
    pub fn verify_webhook(
        &self,
        settings: &Settings,
        source: &Source,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        self.get(source)
            .ok_or(AuthError::NotConfigured)?
            .verify_webhook(settings, headers, body, now)
    }

    /// Parses a verified webhook body of `source` into canonical records.
    pub fn parse_webhook(
        &self,
        settings: &Settings,
        source: &Source,
        headers: &http::HeaderMap,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Parsed, ParseError> {
        match self.get(source) {
            Some(helpdesk) => helpdesk.parse_webhook_body(settings, headers, body, received_at),
            None => Err(ParseError::Invalid(format!(
                "source `{source}` is not served here"
            ))),
        }
    }

    /// The canonical person of one of `source`'s person objects.
    pub fn person_from_profile(&self, source: &Source, profile: &Value) -> Person {
        self.get(source)
            .map(|h| h.person_from_profile(profile))
            .unwrap_or_default()
    }

    /// The sync streams of `source` (none for a source without a sync).
    pub fn streams(&self, source: &Source) -> &'static [&'static str] {
        self.get(source).map_or(&[], |h| h.streams())
    }

    /// The readers of every listed helpdesk whose API credentials are set, in the registry's
    /// order, sharing one HTTP client. Each has its own account limiter at the default rates.
    ///
    /// If the HTTP client cannot be built (the TLS back-end failed to initialise, which does
    /// not happen in practice), the error is logged and no reader is returned.
    pub fn readers(&self, settings: &Settings) -> Vec<Box<dyn SourceReader>> {
        let Some(client) = client_or_log() else {
            return Vec::new();
        };
        self.with_pulls(settings)
            .filter(|h| h.api_enabled(settings))
            .filter_map(|h| h.reader(settings, &client))
            .collect()
    }

    /// The listed helpdesks, then the generic sources whose API the file describes (`pull`),
    /// then the further accounts it names.
    fn with_pulls<'a>(
        &'a self,
        settings: &'a Settings,
    ) -> impl Iterator<Item = Arc<dyn Helpdesk>> + 'a {
        let pulls = settings
            .file
            .pulls
            .keys()
            .map(|name| Arc::new(Generic { name: name.clone() }) as Arc<dyn Helpdesk>);
        let accounts = settings
            .account_sources()
            .filter_map(|source| account_helpdesk(&source));
        self.helpdesks.iter().cloned().chain(pulls).chain(accounts)
    }

    /// The request budget of every helpdesk whose API is configured, kept in `store`
    /// ([`StoredBudget`]), so that the sync's readers ([`attach_budgets`]) and the look-ups
    /// ([`super::HelpdeskLookup::with_budgets`]) of every process draw from one budget per
    /// account.
    pub fn shared_budgets<S>(&self, settings: &Settings, store: &S) -> SharedBudgets
    where
        S: StateStore + Clone + fmt::Debug + 'static,
    {
        self.with_pulls(settings)
            .filter(|h| h.api_enabled(settings))
            .filter_map(|h| {
                let source = h.source();
                let rate = match &source {
                    Source::Generic(name) => settings.file.pulls.get(name).map(|p| p.rate),
                    _ => h.account_rate(),
                }?;
                let budget = StoredBudget::new(store.clone(), &source, rate);
                Some((source, Arc::new(budget) as Arc<dyn SharedBudget>))
            })
            .collect()
    }

    /// The reader of `source`, when its API credentials are set (and the HTTP client builds).
    pub fn reader_for(
        &self,
        settings: &Settings,
        source: &Source,
    ) -> Option<Box<dyn SourceReader>> {
        let helpdesk = self.get(source).filter(|h| h.api_enabled(settings))?;
        helpdesk.reader(settings, &client_or_log()?)
    }
}

/// Makes each reader's account limiter draw from its helpdesk's shared budget, and each of
/// its lane limiters (Zendesk's exports) from that budget's lane.
pub fn attach_budgets(readers: &[Arc<dyn SourceReader>], budgets: &SharedBudgets) {
    for reader in readers {
        let Some(budget) = budgets.get(&reader.source()) else {
            continue;
        };
        if let Some(limiter) = reader.account_limiter() {
            limiter.attach(budget.clone());
        }
        for (lane, limiter) in reader.lane_limiters() {
            if let Some(lane) = budget.lane(lane, limiter.rate()) {
                limiter.attach(lane);
            }
        }
    }
}

fn client_or_log() -> Option<reqwest::Client> {
    sync_client()
        .map_err(
            |e| tracing::error!(error = %e, "helpdesk HTTP client unavailable; no sync readers"),
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn zendesk_exports_draw_from_a_lane_of_the_account_budget() {
        use crate::config::Vars;
        use crate::memory::MemoryStateStore;
        let settings = Settings::from_vars(&Vars::from_pairs([
            ("ZENDESK_SUBDOMAIN", "acme"),
            ("ZENDESK_OAUTH_TOKEN", "t"),
        ]))
        .expect("settings");
        let store = std::sync::Arc::new(MemoryStateStore::new());
        let registry = Registry::built_in();
        let readers: Vec<Arc<dyn SourceReader>> = registry
            .readers(&settings)
            .into_iter()
            .map(Arc::from)
            .collect();
        attach_budgets(&readers, &registry.shared_budgets(&settings, &store));
        let lanes = readers[0].lane_limiters();
        assert_eq!(
            lanes.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            ["exports"]
        );
        lanes[0].1.acquire().await;
        readers[0]
            .account_limiter()
            .expect("account")
            .acquire()
            .await;
        for key in ["budget#zendesk", "budget#zendesk/exports"] {
            assert!(
                store.load_doc(key).await.expect("read").is_some(),
                "{key} was drawn from"
            );
        }
    }

    #[test]
    fn the_built_in_helpdesks_are_listed_in_order_with_their_streams() {
        let r = Registry::built_in();
        let sources: Vec<Source> = r.listed().map(|h| h.source()).collect();
        assert_eq!(sources, Source::BUILT_IN.to_vec());
        assert_eq!(
            r.streams(&Source::Zendesk),
            &["users", "tickets", "satisfaction_ratings", "organizations"]
        );
        assert_eq!(
            r.streams(&Source::Intercom),
            &["contacts", "conversations", "companies"]
        );
        assert_eq!(
            r.streams(&Source::Gorgias),
            &["customers", "tickets", "satisfaction_surveys", "events"]
        );
        // What a generic source's `pull` block can declare (its reader lists those it does),
        // and a further store's are its helpdesk's.
        assert_eq!(
            r.streams(&Source::Generic("cinnox".into())),
            &["contacts", "tickets"]
        );
        let store: Source = "gorgias:eu-store".parse().expect("an account");
        assert_eq!(r.streams(&store), r.streams(&Source::Gorgias));
        assert_eq!(r.get(&store).map(|h| h.source()), Some(store));
        for (account, vendor) in [
            ("zendesk:brand2", Source::Zendesk),
            ("intercom:eu-workspace", Source::Intercom),
        ] {
            let account: Source = account.parse().expect("an account");
            assert_eq!(r.streams(&account), r.streams(&vendor));
            assert_eq!(r.get(&account).map(|h| h.source()), Some(account.clone()));
            assert_eq!(r.source(&account.to_string()), Some(account));
        }
        assert_eq!(
            r.source("generic:cinnox"),
            Some(Source::Generic("cinnox".into()))
        );
        assert_eq!(r.source("gorgias"), Some(Source::Gorgias));
        // Names nobody registered are not served.
        assert_eq!(r.source("acme"), None);
        assert!(r.get(&Source::Added("acme".into())).is_none());
    }
}
