//! What the mapping needs in Brevo: the attributes each source writes (with their types) and the
//! lists its contacts join, and the sources `deskbridge plan` covers.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_shared::config::Settings;
use deskbridge_shared::mapping::{SourceMapping, Transform};
use deskbridge_shared::model::Source;

/// Attributes every Brevo account has; they may be missing from a listing and are never created.
pub const BUILT_IN_ATTRIBUTES: [&str; 4] = ["FIRSTNAME", "LASTNAME", "SMS", "EMAIL"];

/// The Brevo attribute type (`createAttribute.type`) that fits what a rule writes.
pub fn attribute_kind(transform: Transform) -> &'static str {
    match transform {
        Transform::Date => "date",
        Transform::Number => "float",
        Transform::Boolean => "boolean",
        // auto, text, phone, email, split_name, tags: all written as text.
        _ => "text",
    }
}

/// The attribute a split_name rule puts the last name in (mirrors the mapping: FIRSTNAME →
/// LASTNAME, any other `X` → `X_LAST`).
fn last_name_attribute(first: &str) -> String {
    if first == "FIRSTNAME" {
        "LASTNAME".into()
    } else {
        format!("{first}_LAST")
    }
}

/// One attribute the mapping writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededAttribute {
    pub name: String,
    /// Every Brevo type some source writes it as (more than one is a configuration conflict).
    pub kinds: BTreeSet<&'static str>,
    /// The sources that write it.
    pub sources: BTreeSet<String>,
}

/// One list the mapping adds contacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededList {
    pub id: i64,
    /// What it is used for, e.g. `gorgias all_contacts`, `zendesk tag vip`.
    pub uses: Vec<String>,
}

/// What the mapping needs in Brevo for `sources`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    pub attributes: BTreeMap<String, NeededAttribute>,
    pub lists: BTreeMap<i64, NeededList>,
}

/// Collects the attributes and lists the mapping of each of `sources` writes.
pub fn needs(settings: &Settings, sources: &[Source]) -> Needs {
    let mut needs = Needs::default();
    for source in sources {
        let sm: SourceMapping = settings.mapping.source(source);
        let name = source.to_string();
        let mut add = |attribute: String, kind: &'static str| {
            let entry = needs
                .attributes
                .entry(attribute.clone())
                .or_insert_with(|| NeededAttribute {
                    name: attribute,
                    kinds: BTreeSet::new(),
                    sources: BTreeSet::new(),
                });
            entry.kinds.insert(kind);
            entry.sources.insert(name.clone());
        };
        for rule in &sm.field_mapping {
            add(rule.attribute.clone(), attribute_kind(rule.transform));
            if rule.transform == Transform::SplitName {
                add(last_name_attribute(&rule.attribute), "text");
            }
        }
        let mut use_list = |id: i64, what: String| {
            needs
                .lists
                .entry(id)
                .or_insert_with(|| NeededList {
                    id,
                    uses: Vec::new(),
                })
                .uses
                .push(format!("{name} {what}"));
        };
        let lists = &sm.lists;
        for (id, what) in [
            (lists.all_contacts, "all_contacts"),
            (lists.satisfied, "satisfied"),
            (lists.dissatisfied, "dissatisfied"),
            (lists.active_conversations, "active_conversations"),
            (lists.leads, "leads"),
        ] {
            if let Some(id) = id {
                use_list(id, what.to_string());
            }
        }
        for (tag, id) in &sm.tag_lists {
            use_list(*id, format!("tag {tag}"));
        }
    }
    needs
}

/// The sources `plan` covers: those the configuration enables that have credentials here
/// (webhook secret or API), further accounts included, plus configured generic sources. When no built-in source has
/// credentials in this environment (an operator's laptop with only BREVO_API_KEY), every source
/// the configuration enables, and the note says so.
pub fn plan_sources(settings: &Settings) -> (Vec<Source>, Option<String>) {
    // The built-in helpdesks, then the further accounts the file names (`zendesk:brand2`).
    let enabled: Vec<Source> = Source::BUILT_IN
        .iter()
        .cloned()
        .chain(settings.account_sources())
        .filter(|s| settings.file.source_enabled(s))
        .collect();
    let generic: Vec<Source> = settings
        .mapping
        .sources
        .keys()
        .filter_map(|k| k.parse::<Source>().ok())
        .filter(|s| matches!(s, Source::Generic(_)) && settings.file.source_enabled(s))
        .collect();
    let configured: Vec<Source> = enabled
        .iter()
        .filter(|s| settings.webhook_enabled(s) || settings.api_enabled(s))
        .cloned()
        .collect();
    let (mut sources, note) = if configured.is_empty() {
        let names: Vec<String> = enabled.iter().map(ToString::to_string).collect();
        let note = format!(
            "no helpdesk has credentials in this environment; planning for every source the configuration enables ({})",
            names.join(", ")
        );
        (enabled, Some(note))
    } else {
        (configured, None)
    };
    sources.extend(generic);
    (sources, note)
}
