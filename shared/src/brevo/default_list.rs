//! The list each helpdesk's contacts join when the user configured no all-contacts list:
//! "deskbridge — <source>" in a "deskbridge" folder. Brevo's contact import
//! (`POST /v3/contacts/import`) needs a list to put contacts in, so without one every backfilled
//! contact would cost a call of its own; with it a backfill writes up to 500 contacts per call,
//! whatever the user configured.
//!
//! Found or created once per account and source, and its id kept in the state table
//! (`default_list#<source>`), so every function and container uses the same list. Two workers
//! that create it at the same time both try to store their list's id on condition that none is
//! stored: the second one uses the first one's list and deletes its own, still empty.

use serde::{Deserialize, Serialize};

use super::{BrevoApi, BrevoError};
use crate::model::Source;
use crate::state::{StateError, StateStore};

/// The folder deskbridge's own lists are created in.
pub const FOLDER_NAME: &str = "deskbridge";

/// The name of `source`'s default list, e.g. `deskbridge — zendesk`.
pub fn list_name(source: &Source) -> String {
    format!("deskbridge — {source}")
}

/// Key of the record holding the list's id in the state table.
pub fn state_key(source: &Source) -> String {
    format!("default_list#{source}")
}

/// Why the default list could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum DefaultListError {
    #[error("finding or creating the default list in Brevo: {0}")]
    Brevo(#[from] BrevoError),
    #[error("reading or storing the default list's id: {0}")]
    State(#[from] StateError),
    #[error("the stored default list record of {0} is not readable")]
    Unreadable(String),
}

impl DefaultListError {
    /// Whether trying again later can succeed (an outage rather than a refusal).
    pub fn is_retryable(&self) -> bool {
        match self {
            DefaultListError::Brevo(e) => e.is_worth_retrying(),
            DefaultListError::State(_) => true,
            DefaultListError::Unreadable(_) => false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    id: i64,
    name: String,
}

/// The id stored for `source`, if any: one state-table read, no Brevo call.
pub async fn stored<S: StateStore + ?Sized>(
    state: &S,
    source: &Source,
) -> Result<Option<i64>, DefaultListError> {
    let key = state_key(source);
    match state.load_doc(&key).await? {
        None => Ok(None),
        Some(doc) => serde_json::from_str::<Stored>(&doc.text)
            .map(|s| Some(s.id))
            .map_err(|_| DefaultListError::Unreadable(key)),
    }
}

/// The id of `source`'s default list: the stored one, else the account's list of that name
/// (the lowest id if there are several), else a new list. Stored for good once known.
pub async fn resolve<B, S>(brevo: &B, state: &S, source: &Source) -> Result<i64, DefaultListError>
where
    B: BrevoApi + ?Sized,
    S: StateStore + ?Sized,
{
    if let Some(id) = stored(state, source).await? {
        return Ok(id);
    }
    let name = list_name(source);
    let existing = brevo
        .contact_lists()
        .await?
        .into_iter()
        .filter(|l| l.name == name)
        .map(|l| l.id)
        .min();
    let (id, created) = match existing {
        Some(id) => (id, false),
        None => {
            let folder = folder(brevo).await?;
            let id = brevo.create_list(&name, folder).await?;
            tracing::info!(%source, list_id = id, list = %name, "created the default list");
            (id, true)
        }
    };
    let text = serde_json::json!(Stored {
        id,
        name: name.clone()
    })
    .to_string();
    if state
        .save_doc(&state_key(source), None, &text, None)
        .await?
    {
        return Ok(id);
    }
    // Another worker stored its list first: that one is the list.
    let theirs = stored(state, source)
        .await?
        .ok_or_else(|| DefaultListError::Unreadable(state_key(source)))?;
    if created && theirs != id {
        match brevo.delete_list(id).await {
            Ok(()) => tracing::info!(%source, list_id = id, "deleted a second default list"),
            Err(e) => tracing::warn!(%source, list_id = id, reason = %e,
                "could not delete a second, empty default list; it can be deleted in Brevo"),
        }
    }
    Ok(theirs)
}

/// The id of the "deskbridge" folder, created when the account has none.
async fn folder<B: BrevoApi + ?Sized>(brevo: &B) -> Result<i64, BrevoError> {
    let existing = brevo
        .contact_folders()
        .await?
        .into_iter()
        .filter(|f| f.name == FOLDER_NAME)
        .map(|f| f.id)
        .min();
    match existing {
        Some(id) => Ok(id),
        None => brevo.create_folder(FOLDER_NAME).await,
    }
}
