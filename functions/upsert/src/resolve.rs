//! People named only by id, filled in before their record is planned.
//!
//! A webhook delivery that names its person only by id is filled in from the helpdesk API. A
//! sync page is not looked up again: a record whose page held the person's own object (a
//! contacts page, a ticket with its requester sideloaded) already says all the API would, and
//! its company was read by the sync under the helpdesk's rate limit; a record that names the
//! person only by id (an Intercom conversation) takes the email the person index holds for
//! it, and only a person the index does not know yet costs a helpdesk call.

use std::collections::HashMap;

use deskbridge_shared::brevo::{BrevoApi, redact};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::model::{Origin, Person, Record, Source};
use deskbridge_shared::people;
use deskbridge_shared::state::StateStore;
use serde_json::Value;

use crate::stats::{Retry, Stats};
use crate::upserter::Upserter;

/// What a helpdesk look-up gave, cached per message.
pub(crate) type Found = Option<(Person, Value)>;

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Fills in a person named only by id (once per id and message), and what the person's
    /// object only references (an Intercom contact's company); see the module's comment for
    /// what a sync record is spared.
    pub(crate) async fn resolve_person(
        &self,
        source: &Source,
        origin: Origin,
        record: &Record,
        found: &mut HashMap<String, Found>,
        stats: &mut Stats,
    ) -> Result<Record, Retry> {
        let mut record = record.clone();
        if origin == Origin::Sync && record.profile.is_some() {
            return Ok(record);
        }
        let Some(id) = record
            .person
            .source_id
            .clone()
            .filter(|_| record.person.needs_lookup())
        else {
            self.lookup.complete_profile(source, &mut record).await;
            return Ok(record);
        };
        if origin == Origin::Sync
            && !found.contains_key(&id)
            && let Some(email) = self.indexed_email(source, &id).await?
        {
            stats.lookups_spared += 1;
            record.person.email = Some(email);
            return Ok(record);
        }
        if !found.contains_key(&id) {
            stats.lookups += 1;
            let result = match self.lookup.lookup(source, &id).await {
                Ok(result) => result,
                // Outage or rate limit: a later delivery can succeed, no sooner than the
                // helpdesk's Retry-After.
                Err(e) if e.is_retryable() => {
                    return Err(Retry::new(format!(
                        "helpdesk look-up of {}:{id} failed: {e}",
                        source.as_str()
                    ))
                    .not_before(e.retry_after()));
                }
                // Refused for good (credentials, invalid id): fall back to the ext_id.
                Err(e) => {
                    tracing::warn!(person = %format!("{}:{id}", source.as_str()), reason = %redact(&e.to_string()),
                        "upsert: helpdesk refused the look-up");
                    None
                }
            };
            if result.is_none() {
                stats.lookups_unresolved += 1;
                tracing::info!(ext_id = %format!("{}:{id}", source.as_str()),
                    "upsert: person known only by id (no helpdesk API credentials, or no such person): addressed by ext_id");
            }
            found.insert(id.clone(), result);
        }
        if let Some(Some((person, profile))) = found.get(&id) {
            merge_person(&mut record.person, person);
            if record.profile.is_none() {
                record.profile = Some(profile.clone().into());
            }
        }
        self.lookup.complete_profile(source, &mut record).await;
        Ok(record)
    }

    /// The email the person index holds for `source`'s person `id`, if any.
    async fn indexed_email(&self, source: &Source, id: &str) -> Result<Option<String>, Retry> {
        let (_, index) = self
            .load_person_index(&people::person_key(source, id))
            .await?;
        Ok(index.email)
    }
}

/// Fills the fields `person` lacks from what the helpdesk returned; fields the delivery had win.
pub(crate) fn merge_person(person: &mut Person, found: &Person) {
    let fill = |field: &mut Option<String>, from: &Option<String>| {
        if field.is_none() {
            field.clone_from(from);
        }
    };
    fill(&mut person.source_id, &found.source_id);
    fill(&mut person.email, &found.email);
    fill(&mut person.phone, &found.phone);
    fill(&mut person.name, &found.name);
    fill(&mut person.first_name, &found.first_name);
    fill(&mut person.last_name, &found.last_name);
    fill(&mut person.external_id, &found.external_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_delivery_had() {
        let mut person = Person {
            source_id: Some("7".into()),
            name: Some("J. Doe".into()),
            ..Default::default()
        };
        let found = Person {
            source_id: Some("7".into()),
            email: Some("jane@example.com".into()),
            name: Some("Jane Doe".into()),
            ..Default::default()
        };
        merge_person(&mut person, &found);
        assert_eq!(person.email.as_deref(), Some("jane@example.com"));
        assert_eq!(person.name.as_deref(), Some("J. Doe"));
    }
}
