//! Steps 3 of the sync path: contacts with an email written through `/v3/contacts/import`, one
//! call per (source, list-id set), after making sure the source's mapped attributes exist;
//! then every imported contact whose ledger changed meanwhile sent again with its newest view.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use deskbridge_shared::brevo::{BrevoApi, BrevoError, ContactUpsert};
use deskbridge_shared::helpdesk::PersonLookup;
use deskbridge_shared::mapping::{SourceMapping, Transform};
use deskbridge_shared::model::{Record, Source};
use deskbridge_shared::state::StateStore;
use futures::StreamExt;

use super::{Routed, SyncRun, Target};
use crate::claims::STATE_CONCURRENCY;
use crate::contact_ledger::LedgerEntry;
use crate::execute::describe;
use crate::stats::Retry;
use crate::upserter::Upserter;

/// Contacts per `/v3/contacts/import` call at most (sync path).
pub const IMPORT_MAX_CONTACTS: usize = 10_000;

/// Serialized contacts per `/v3/contacts/import` call at most: Brevo caps `jsonBody` at 10 MB and
/// calls ~8 MB the safe limit.
pub const IMPORT_MAX_BYTES: usize = 8_000_000;

/// Attributes every Brevo account has: never created.
const BUILT_IN_ATTRIBUTES: [&str; 7] = [
    "EMAIL",
    "FIRSTNAME",
    "LASTNAME",
    "SMS",
    "WHATSAPP",
    "LANDLINE_NUMBER",
    "EXT_ID",
];

/// A contact bound for `/v3/contacts/import`, merged over the records that name it.
struct ImportRow<'a> {
    contact: ContactUpsert,
    /// The record whose attributes won: the newest observation.
    newest: &'a Record,
    /// The ledger revision its contact was built from (a later one knows more).
    rev: u64,
    /// That ledger, to check after the import that nothing newer arrived meanwhile.
    entry: Option<LedgerEntry>,
    /// Messages that asked for this contact.
    jobs: Vec<usize>,
}

/// Contacts of one import call's list-id set, with the messages behind each.
#[derive(Default)]
struct ImportGroup {
    contacts: Vec<ContactUpsert>,
    entries: Vec<Option<LedgerEntry>>,
    jobs: Vec<Vec<usize>>,
}

impl<B: BrevoApi, S: StateStore, L: PersonLookup> Upserter<B, S, L> {
    /// Step 3: the import calls. Returns the imported records as event targets.
    pub(super) async fn import_all(
        &self,
        imports: Vec<Routed<'_>>,
        run: &mut SyncRun,
    ) -> Vec<Target> {
        let targets: Vec<Target> = imports
            .iter()
            .map(|r| Target {
                job: r.job,
                writes: r.writes.clone(),
                entry: r.entry.clone(),
            })
            .collect();

        // One row per (source, email): a person met twice in a batch (two pages, or a message
        // delivered twice) is imported once, with the newest observation's attributes (an
        // older one never overwrites a newer one) and every list either asked for.
        let mut rows: BTreeMap<(&Source, String), ImportRow<'_>> = BTreeMap::new();
        for routed in imports {
            let Some(email) = routed.writes.contact.email.clone() else {
                continue;
            };
            match rows.entry((routed.source, email)) {
                Entry::Vacant(slot) => {
                    slot.insert(ImportRow {
                        contact: routed.writes.contact,
                        newest: routed.record,
                        rev: routed.entry.as_ref().map_or(0, |e| e.rev),
                        entry: routed.entry,
                        jobs: vec![routed.job],
                    });
                }
                Entry::Occupied(mut slot) => {
                    let row = slot.get_mut();
                    let mut lists = std::mem::take(&mut row.contact.list_ids);
                    lists.extend_from_slice(&routed.writes.contact.list_ids);
                    let rev = routed.entry.as_ref().map_or(0, |e| e.rev);
                    if (rev, routed.record.observed_at) >= (row.rev, row.newest.observed_at) {
                        row.rev = rev;
                        row.contact = routed.writes.contact;
                        row.newest = routed.record;
                        row.entry = routed.entry;
                    }
                    lists.sort_unstable();
                    lists.dedup();
                    row.contact.list_ids = lists;
                    if !row.jobs.contains(&routed.job) {
                        row.jobs.push(routed.job);
                    }
                }
            }
        }

        // Brevo's import takes one list-id set per call: group by it.
        let mut groups: BTreeMap<(&Source, Vec<i64>), ImportGroup> = BTreeMap::new();
        for ((source, _), row) in rows {
            let group = groups
                .entry((source, row.contact.list_ids.clone()))
                .or_default();
            group.contacts.push(row.contact);
            group.entries.push(row.entry);
            group.jobs.push(row.jobs);
        }

        let mut ready: HashMap<&Source, Result<(), String>> = HashMap::new();
        for ((source, list_ids), group) in groups {
            let attributes = match ready.get(source) {
                Some(result) => result.clone(),
                None => {
                    let result = self
                        .ensure_attributes(source)
                        .await
                        .map_err(|Retry { reason, .. }| reason);
                    ready.insert(source, result.clone());
                    result
                }
            };
            if let Err(reason) = attributes {
                for job in group.jobs.iter().flatten() {
                    run.fail(*job, &reason);
                }
                continue;
            }
            let sizes = group.contacts.iter().map(|c| {
                // The contact's own JSON is a little larger than its import row: a safe bound.
                serde_json::to_vec(c).map_or(0, |v| v.len() + 1)
            });
            for range in chunk_ranges(sizes, IMPORT_MAX_CONTACTS, IMPORT_MAX_BYTES) {
                let (Some(contacts), Some(entries), Some(jobs)) = (
                    group.contacts.get(range.clone()),
                    group.entries.get(range.clone()),
                    group.jobs.get(range),
                ) else {
                    continue;
                };
                self.import_chunk(source, &list_ids, contacts, entries, jobs, run)
                    .await;
            }
        }
        targets
    }

    /// One `/v3/contacts/import` call.
    pub(super) async fn import_chunk(
        &self,
        source: &Source,
        list_ids: &[i64],
        contacts: &[ContactUpsert],
        entries: &[Option<LedgerEntry>],
        jobs: &[Vec<usize>],
        run: &mut SyncRun,
    ) {
        match self.brevo().import_contacts(contacts, list_ids).await {
            Ok(process_id) => {
                run.stats.imports += 1;
                run.stats.contacts_imported += contacts.len();
                tracing::info!(%source, process_id, contacts = contacts.len(), ?list_ids,
                    "upsert: contacts import accepted by Brevo");
                self.confirm_imported(source, contacts, entries, jobs, run)
                    .await;
            }
            Err(e) if e.is_worth_retrying() => {
                let reason = format!(
                    "importing {} {source} contacts into lists {list_ids:?}: {e}",
                    contacts.len()
                );
                for job in jobs.iter().flatten() {
                    run.fail(*job, &reason);
                }
            }
            Err(e) => {
                run.stats.rejected += 1;
                tracing::warn!(%source, contacts = contacts.len(), ?list_ids, error = %e,
                    "upsert: Brevo refused a contacts import; not retried");
                let reason = format!(
                    "Brevo refused an import of {} {source} contacts into lists {list_ids:?}: {e}",
                    contacts.len()
                );
                run.reject(jobs.iter().flatten().copied(), &reason);
            }
        }
    }

    /// After an import: a contact whose ledger another worker changed since its row was built
    /// (a webhook with a newer observation, written while the import was on its way) is sent
    /// again with the ledger's newest view, so the import does not leave older values last.
    /// The revisions are read side by side; only changed contacts cost a Brevo call.
    pub(super) async fn confirm_imported(
        &self,
        source: &Source,
        contacts: &[ContactUpsert],
        entries: &[Option<LedgerEntry>],
        jobs: &[Vec<usize>],
        run: &mut SyncRun,
    ) {
        let reads: Vec<_> = entries
            .iter()
            .map(|entry| async move {
                match entry {
                    Some(e) => self.ledger_rev(&e.key).await.map(|rev| rev != e.rev),
                    None => Ok(false),
                }
            })
            .collect();
        let changed: Vec<Result<bool, Retry>> = futures::stream::iter(reads)
            .buffered(STATE_CONCURRENCY)
            .collect()
            .await;
        for (i, changed) in changed.into_iter().enumerate() {
            let (Some(contact), Some(Some(entry)), Some(jobs)) =
                (contacts.get(i), entries.get(i), jobs.get(i))
            else {
                continue;
            };
            let outcome = match changed {
                Ok(false) => Ok(()),
                Ok(true) => {
                    let subject = describe(contact.key().as_ref());
                    self.confirm(source, entry, contact, &subject, &mut run.stats)
                        .await
                }
                Err(retry) => Err(retry),
            };
            if let Err(Retry { reason, .. }) = outcome {
                for job in jobs {
                    run.fail(*job, &reason);
                }
            }
        }
    }

    /// Makes sure every attribute the mapping of `source` can write exists in Brevo, since an
    /// import silently drops unknown ones. Lists the account's attributes once per container,
    /// creates what is missing, and remembers the sources done. Any failure is retryable,
    /// except a refused creation of an attribute that exists already.
    pub(super) async fn ensure_attributes(&self, source: &Source) -> Result<(), Retry> {
        let mut guard = self.attributes.lock().await;
        let cache = &mut *guard;
        if cache.ready.contains(source) {
            return Ok(());
        }
        let known = match &mut cache.known {
            Some(known) => known,
            slot @ None => {
                let listed =
                    self.brevo().list_attributes().await.map_err(|e| {
                        Retry::new(format!("listing Brevo contact attributes: {e}"))
                    })?;
                slot.insert(
                    listed
                        .into_iter()
                        .map(|a| a.name.to_ascii_uppercase())
                        .collect(),
                )
            }
        };
        for (name, kind) in mapped_attributes(&self.mapping.source(source)) {
            let upper = name.to_ascii_uppercase();
            if known.contains(&upper) || BUILT_IN_ATTRIBUTES.contains(&upper.as_str()) {
                continue;
            }
            match self.brevo().create_attribute(&name, kind).await {
                Ok(()) => {
                    tracing::info!(attribute = %name, kind, "upsert: created Brevo contact attribute");
                }
                Err(e) if already_exists(&e) => {}
                Err(e) => {
                    return Err(Retry::new(format!(
                        "creating Brevo contact attribute {name} ({kind}): {e}"
                    )));
                }
            }
            known.insert(upper);
        }
        cache.ready.insert(source.clone());
        Ok(())
    }
}

/// Splits items of the given serialized sizes into consecutive ranges of at most `max_items`
/// items and `max_bytes` bytes (an item larger than `max_bytes` goes alone).
fn chunk_ranges(
    sizes: impl IntoIterator<Item = usize>,
    max_items: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes, mut end) = (0, 0usize, 0);
    for size in sizes {
        if end > start && (end - start >= max_items || bytes.saturating_add(size) > max_bytes) {
            ranges.push(start..end);
            start = end;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        end += 1;
    }
    if end > start {
        ranges.push(start..end);
    }
    ranges
}

/// Every attribute the mapping of a source can write, with the Brevo type to create it with.
fn mapped_attributes(mapping: &SourceMapping) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut add = |name: String, kind: &'static str| {
        if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            out.push((name, kind));
        }
    };
    for rule in &mapping.field_mapping {
        let kind = match rule.transform {
            Transform::Date => "date",
            Transform::Number => "float",
            Transform::Boolean => "boolean",
            _ => "text",
        };
        add(rule.attribute.clone(), kind);
        if rule.transform == Transform::SplitName {
            // Where the mapping puts the last name: LASTNAME next to FIRSTNAME, else `<X>_LAST`.
            let last = if rule.attribute == "FIRSTNAME" {
                "LASTNAME".to_string()
            } else {
                format!("{}_LAST", rule.attribute)
            };
            add(last, "text");
        }
    }
    out
}

/// Whether Brevo refused to create an attribute because it exists already.
fn already_exists(err: &BrevoError) -> bool {
    match err {
        BrevoError::Rejected { code, message, .. } => {
            code == "duplicate_parameter" || message.to_ascii_lowercase().contains("already exist")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_split_by_count_and_by_size() {
        // 25,000 small contacts: 10,000 per import at most.
        assert_eq!(
            chunk_ranges(std::iter::repeat_n(100, 25_000), 10_000, 8_000_000),
            vec![0..10_000, 10_000..20_000, 20_000..25_000]
        );
        // Big rows: cut before the byte limit would pass; an oversized row goes alone.
        assert_eq!(
            chunk_ranges([400, 400, 300, 900, 100], 10, 1000),
            vec![0..2, 2..3, 3..5]
        );
        assert_eq!(
            chunk_ranges([10, 1500, 10], 10, 1000),
            vec![0..1, 1..2, 2..3]
        );
        assert!(chunk_ranges(Vec::new(), 10, 1000).is_empty());
    }

    #[test]
    fn mapped_attributes_take_their_type_from_the_transform() {
        use deskbridge_shared::mapping::FieldRule;
        let mapping = SourceMapping {
            field_mapping: vec![
                FieldRule::new("id", "ZENDESK_ID", Transform::Text),
                FieldRule::new("name", "FIRSTNAME", Transform::SplitName),
                FieldRule::new("agent", "AGENT", Transform::SplitName),
                FieldRule::new("created_at", "SIGNUP_DATE", Transform::Date),
                FieldRule::new("score", "HEALTH", Transform::Number),
                FieldRule::new("vip", "VIP", Transform::Boolean),
                FieldRule::new("tags", "TAGS", Transform::Tags),
                FieldRule::new("other_id", "ZENDESK_ID", Transform::Auto),
            ],
            ..Default::default()
        };
        let got: Vec<(String, &str)> = mapped_attributes(&mapping);
        let want = [
            ("ZENDESK_ID", "text"),
            ("FIRSTNAME", "text"),
            ("LASTNAME", "text"),
            ("AGENT", "text"),
            ("AGENT_LAST", "text"),
            ("SIGNUP_DATE", "date"),
            ("HEALTH", "float"),
            ("VIP", "boolean"),
            ("TAGS", "text"),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(n, k)| (n.to_string(), *k))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn attribute_conflicts_are_told_apart() {
        let rejected = |status: u16, code: &str, message: &str| BrevoError::Rejected {
            status,
            code: code.into(),
            message: message.into(),
        };
        assert!(already_exists(&rejected(400, "duplicate_parameter", "x")));
        assert!(already_exists(&rejected(
            400,
            "invalid_parameter",
            "Attribute name already exists"
        )));
        assert!(!already_exists(&rejected(
            400,
            "invalid_parameter",
            "bad name"
        )));
        assert!(!already_exists(&BrevoError::Transient("503".into())));
    }
}
