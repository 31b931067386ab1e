//! `lists` and `tag_lists`: the Brevo lists a source's contacts are added to.

use std::collections::{BTreeMap, HashMap};

use super::{Checker, Entry};
use crate::mapping::Lists;
use crate::model::Source;

const LIST_KEYS: &[&str] = &[
    "all_contacts",
    "all_support_contacts",
    "all_users",
    "satisfied",
    "satisfied_customers",
    "dissatisfied",
    "dissatisfied_customers",
    "active_conversations",
    "leads",
];

impl Checker {
    pub(super) fn lists(&mut self, source: &Source, f: &Entry, at: &str) -> Lists {
        let where_ = format!("{at}.lists");
        let mut lists = Lists::default();
        // Which key set each list, so that two aliases of one list are reported.
        let mut set_by: [Option<String>; 5] = Default::default();
        for l in self.entries(f.value, &where_) {
            let slot = match l.key.as_str() {
                "all_contacts" | "all_support_contacts" | "all_users" => 0,
                "satisfied" | "satisfied_customers" => 1,
                "dissatisfied" | "dissatisfied_customers" => 2,
                "active_conversations" => 3,
                "leads" if source.vendor() != Source::Intercom => {
                    self.error(
                        l.line,
                        format!(
                            "{where_}.leads: leads are Intercom's (contacts with the role \
                             `lead`); {source} has none"
                        ),
                    );
                    continue;
                }
                "leads" => 4,
                _ => {
                    self.unknown_key(&l, &where_, LIST_KEYS);
                    continue;
                }
            };
            if let Some(first) = &set_by[slot] {
                self.error(
                    l.line,
                    format!(
                        "`{first}` and `{}` in {where_} name the same list; keep one",
                        l.key
                    ),
                );
                continue;
            }
            set_by[slot] = Some(l.key.clone());
            let id = self.list_id(&l, &where_);
            match slot {
                0 => lists.all_contacts = id,
                1 => lists.satisfied = id,
                2 => lists.dissatisfied = id,
                3 => lists.active_conversations = id,
                _ => lists.leads = id,
            }
        }
        lists
    }

    pub(super) fn tag_lists(&mut self, f: &Entry, at: &str) -> BTreeMap<String, i64> {
        let where_ = format!("{at}.tag_lists");
        let mut out = BTreeMap::new();
        // Tags match whatever their case, so `VIP` and `vip` are one tag.
        let mut seen: HashMap<String, Option<usize>> = HashMap::new();
        for t in self.entries(f.value, &where_) {
            let tag = t.key.trim().to_string();
            if tag.is_empty() {
                self.error(t.line, format!("{where_}: a tag name is empty"));
                continue;
            }
            if let Some(first) = seen.get(&tag.to_lowercase()) {
                let first = first
                    .map(|l| format!(" (first on line {l})"))
                    .unwrap_or_default();
                self.error(
                    t.line,
                    format!(
                        "tag `{tag}` is given twice in {where_}; tags match whatever their \
                         case{first}"
                    ),
                );
                continue;
            }
            seen.insert(tag.to_lowercase(), t.line);
            if let Some(id) = self.list_id(&t, &where_) {
                out.insert(tag, id);
            }
        }
        out
    }
}
