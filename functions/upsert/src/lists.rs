//! The all-contacts list of each source: the one the user configured, else (unless switched off
//! with `BREVO_DEFAULT_LISTS=false`) the default list "deskbridge — <source>"
//! ([`deskbridge_shared::brevo::default_list`]), found or created the first time a container
//! needs it and then remembered. Every contact of the source joins it, on both paths; the sync
//! path needs it to import (Brevo's import requires a list).

use deskbridge_shared::brevo::BrevoApi;
use deskbridge_shared::brevo::default_list::{self, DefaultListError};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::model::Source;
use deskbridge_shared::plan::BrevoWrites;
use deskbridge_shared::state::StateStore;

use crate::upserter::{Upserter, lock};

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Sources without a configured all-contacts list join (and are imported into) the default
    /// list "deskbridge — <source>" (`on`, the deployed default), or none (`false`).
    pub fn with_default_lists(mut self, on: bool) -> Self {
        self.default_lists.on = on;
        self
    }

    /// The list every contact of `source` joins: configured, default, or none.
    pub(crate) async fn all_contacts_list(
        &self,
        source: &Source,
    ) -> Result<Option<i64>, DefaultListError> {
        if let Some(id) = self.mapping.source(source).lists.all_contacts {
            return Ok(Some(id));
        }
        if !self.default_lists.on {
            return Ok(None);
        }
        if let Some(id) = lock(&self.default_lists.known).get(source) {
            return Ok(Some(*id));
        }
        let id = default_list::resolve(&self.brevo(), &self.state, source).await?;
        lock(&self.default_lists.known).insert(source.clone(), id);
        Ok(Some(id))
    }

    /// Adds the default list to a record's planned lists (a configured all-contacts list is in
    /// the plan already). When the list cannot be found now, the contact is written without it
    /// and joins with a later write: a support update never waits for a list.
    pub(crate) async fn join_default_list(&self, source: &Source, writes: &mut BrevoWrites) {
        if self.mapping.source(source).lists.all_contacts.is_some() || !self.default_lists.on {
            return;
        }
        match self.all_contacts_list(source).await {
            Ok(Some(id)) => writes.join(id),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%source, reason = %e, "default list unavailable; contact written without it")
            }
        }
    }
}
