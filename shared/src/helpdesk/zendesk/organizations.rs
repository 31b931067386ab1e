//! A Zendesk user's organization in its profile, under `organization`, so that the mapping reads
//! `organization.name`, `organization.tags` and `organization.organization_fields.<key>` (the
//! default rules write `organization.name` as COMPANY_NAME, as Intercom's `company.name`).
//!
//! A user names its organization by `organization_id` only. The sync reads the organizations of
//! a page in one call per hundred (`GET /api/v2/organizations/show_many.json?ids=…`); the
//! look-up of a webhook's user reads its one organization (`GET
//! /api/v2/organizations/{id}.json`). Both keep what they read for a while.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::helpdesk::api::{Cache, valid_id};
use crate::model::Record;

/// Organizations by id, as read (`None`: none such).
pub(crate) type Organizations = Cache<String, Option<Value>>;

/// Most ids `show_many` takes in one call.
pub const SHOW_MANY: usize = 100;

/// The organization a user belongs to (`organization_id`; `null` and `0` are none).
pub fn organization_id(user: &Value) -> Option<String> {
    let id = match user.get("organization_id")? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    (!id.is_empty() && id != "0").then_some(id)
}

/// Whether `profile` is a user that names an organization but does not carry it yet.
pub fn lacks_organization(profile: &Value) -> bool {
    profile.get("organization").is_none() && organization_id(profile).is_some()
}

/// `profile` with `organization` (a Zendesk organization object) under `organization`: its
/// name, tags, organization fields, domain names, details, notes and external id. A profile
/// that is not an object, or already has one, is left alone.
pub fn with_organization(profile: &mut Value, organization: &Value) {
    let (Some(user), Some(org)) = (profile.as_object_mut(), organization.as_object()) else {
        return;
    };
    if user.contains_key("organization") {
        return;
    }
    let kept: serde_json::Map<String, Value> = org
        .iter()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "id" | "name"
                    | "tags"
                    | "organization_fields"
                    | "domain_names"
                    | "details"
                    | "notes"
                    | "external_id"
                    | "group_id"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    user.insert("organization".into(), Value::Object(kept));
}

/// The organizations `records` name that `cache` does not hold yet, in id order.
pub(crate) fn wanted(records: &[Record], cache: &Organizations) -> Vec<String> {
    let ids: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.profile.as_ref().filter(|p| lacks_organization(p)))
        .filter_map(|p| organization_id(p))
        .filter(|id| valid_id(id) && cache.get(id).is_none())
        .collect();
    ids.into_iter().collect()
}

/// Keeps what a `show_many` of `asked` answered; an id it left out has no organization.
pub(crate) fn keep(asked: &[String], found: Vec<Value>, cache: &Organizations) {
    let mut by_id: HashMap<String, Value> = found
        .into_iter()
        .filter_map(|o| {
            let id = match o.get("id")? {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            Some((id, o))
        })
        .collect();
    for id in asked {
        cache.put(id.clone(), by_id.remove(id));
    }
}

/// Puts each record's organization, where `cache` holds it, into its profile.
pub(crate) fn attach(records: &mut [Record], cache: &Organizations) {
    for record in records {
        if let Some(profile) = record.profile.as_mut().filter(|p| lacks_organization(p))
            && let Some(id) = organization_id(profile)
            && let Some(Some(org)) = cache.get(&id)
        {
            with_organization(profile, &org);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_gets_its_organization_once() {
        let mut user = json!({"id": 7, "organization_id": 360012345678u64});
        assert_eq!(organization_id(&user).as_deref(), Some("360012345678"));
        assert!(lacks_organization(&user));
        let org = json!({"id": 360012345678u64, "name": "Acme", "tags": ["enterprise"],
            "organization_fields": {"plan": "gold"}, "url": "https://acme.zendesk.com/api/v2/organizations/1.json",
            "shared_tickets": false});
        with_organization(&mut user, &org);
        assert_eq!(user["organization"]["name"], "Acme");
        assert_eq!(user["organization"]["organization_fields"]["plan"], "gold");
        assert!(user["organization"].get("url").is_none());
        assert!(!lacks_organization(&user));
        with_organization(&mut user, &json!({"name": "Other"}));
        assert_eq!(user["organization"]["name"], "Acme");
        for none in [
            json!({"organization_id": null}),
            json!({"organization_id": "0"}),
            json!({}),
        ] {
            assert_eq!(organization_id(&none), None, "{none}");
        }
    }
}
