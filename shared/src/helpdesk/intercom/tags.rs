//! Contact tags in the batch sync.
//!
//! A searched contact lists its tags by id only (`tags.data[].id`, at most 10 shown, with
//! `has_more` when there are more). The names come from one `GET /tags` (every tag of the
//! workspace), kept by the reader for [`NAMES_TTL`] and read again when a contact names a tag
//! the names do not hold. A contact whose list is complete gives its whole set of tags
//! (`tags_now`), so a tag taken off in Intercom takes it off the tag's list — unless one of its
//! conversations still carries the tag (see [`crate::tags`]); an incomplete list only adds.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::fields::text;
use crate::model::Record;

/// The workspace's tag names by id.
pub(super) type Names = std::sync::Arc<HashMap<String, String>>;

/// How long the workspace's tag names are reused.
pub const NAMES_TTL: Duration = Duration::from_secs(15 * 60);

/// Tag names by id, from a `GET /tags` answer (`data[]`, or a bare array).
pub(super) fn names(answer: &Value) -> HashMap<String, String> {
    let list = answer.get("data").unwrap_or(answer);
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((text(t.get("id"))?, text(t.get("name"))?)))
        .collect()
}

/// The tag ids a contact lists, and whether the list is complete.
pub(super) fn tag_ids(contact: &Value) -> Option<(Vec<String>, bool)> {
    let tags = contact.get("tags").filter(|t| t.is_object())?;
    let ids = tags
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| text(t.get("id")))
        .collect();
    let complete = tags.get("has_more") != Some(&Value::Bool(true));
    Some((ids, complete))
}

/// Whether `names` lacks a tag one of `records`' contacts lists.
pub(super) fn lacks_any(records: &[Record], names: &HashMap<String, String>) -> bool {
    records
        .iter()
        .filter_map(|r| r.profile.as_ref().and_then(|p| tag_ids(p)))
        .any(|(ids, _)| ids.iter().any(|id| !names.contains_key(id)))
}

/// Puts each contact's tags on its record: its whole set when the contact's list is complete
/// and every name is known, else the known names as additions only.
pub(super) fn apply(records: &mut [Record], names: &HashMap<String, String>) {
    for record in records {
        let Some((ids, complete)) = record.profile.as_ref().and_then(|p| tag_ids(p)) else {
            continue;
        };
        let known: Vec<String> = ids.iter().filter_map(|id| names.get(id).cloned()).collect();
        if complete && known.len() == ids.len() {
            record.tags_now = Some(known.clone());
        }
        record.tags_added = known;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact(tags: Value) -> Record {
        Record {
            profile: Some(json!({"type": "contact", "id": "c1", "tags": tags}).into()),
            ..Default::default()
        }
    }

    #[test]
    fn complete_lists_give_the_whole_set_and_others_only_add() {
        let names = names(&json!({"type": "list", "data": [
            {"type": "tag", "id": "1", "name": "VIP"}, {"type": "tag", "id": "2", "name": "churn"}]}));
        let mut records = vec![
            contact(json!({"type": "list", "data": [{"type": "tag", "id": "1"}],
                "has_more": false, "total_count": 1})),
            contact(json!({"type": "list", "data": [], "has_more": false, "total_count": 0})),
            contact(json!({"type": "list", "data": [{"type": "tag", "id": "2"}],
                "has_more": true, "total_count": 11})),
            contact(
                json!({"type": "list", "data": [{"type": "tag", "id": "1"}, {"type": "tag", "id": "9"}],
                "has_more": false}),
            ),
            Record::default(),
        ];
        assert!(lacks_any(&records, &names));
        apply(&mut records, &names);
        assert_eq!(records[0].tags_now, Some(vec!["VIP".to_string()]));
        assert_eq!(records[1].tags_now, Some(vec![]));
        assert_eq!(records[2].tags_now, None);
        assert_eq!(records[2].tags_added, vec!["churn".to_string()]);
        // Tag 9 has no name: only what is known is added.
        assert_eq!(records[3].tags_now, None);
        assert_eq!(records[3].tags_added, vec!["VIP".to_string()]);
        assert_eq!(records[4].tags_now, None);
        assert!(!lacks_any(&records[..3], &names));
    }
}
