//! `field_mapping` and `event_mapping`: helpdesk fields to Brevo attributes, and canonical
//! events to Brevo event names.

use std::collections::{BTreeMap, HashMap};

use super::{Checker, dotted, suggest, suggest_event};
use crate::config::file::yaml::{N, Node, line, scalar_text, shown};
use crate::mapping::{FieldRule, Transform};
use crate::model::EventKind;

const RULE_KEYS: &[&str] = &["attribute", "transform"];
const TRANSFORMS: &[(&str, Transform)] = &[
    ("auto", Transform::Auto),
    ("text", Transform::Text),
    ("number", Transform::Number),
    ("boolean", Transform::Boolean),
    ("date", Transform::Date),
    ("phone", Transform::Phone),
    ("split_name", Transform::SplitName),
    ("email", Transform::Email),
    ("tags", Transform::Tags),
];
const ATTRIBUTE_RULE: &str = "Brevo attribute names are UPPERCASE letters, digits and _";

impl Checker {
    /// Rules of one `field_mapping`; `where_` is its dotted name.
    pub(super) fn field_mapping(&mut self, node: &N, where_: &str) -> Vec<FieldRule> {
        let mut rules = Vec::new();
        // Attribute -> (path, line) of the rule that fills it first.
        let mut filled_by: HashMap<String, (String, Option<usize>)> = HashMap::new();
        for r in self.entries(node, where_) {
            let path = r.key.trim();
            if path.is_empty()
                || path.split('.').any(str::is_empty)
                || path.contains(char::is_whitespace)
            {
                self.error(
                    r.line,
                    format!(
                        "{where_}: `{path}` is not a field path; use dotted names such as \
                         custom_attributes.plan_tier"
                    ),
                );
                continue;
            }
            let here = dotted(where_, path);
            let (attribute, attribute_line, transform) = match &r.value.value {
                Node::Str(a) => (a.trim().to_string(), r.value_line(), None),
                Node::Map(_) => match self.long_rule(r.value, &here) {
                    Some(parts) => parts,
                    None => continue,
                },
                other => {
                    self.error(
                        r.value_line(),
                        format!(
                            "{here} must be a Brevo attribute name or {{ attribute: NAME, \
                             transform: KIND }}, not {}",
                            shown(other)
                        ),
                    );
                    continue;
                }
            };
            // The seeds' `email: email`: the email is the contact's identifier, no attribute.
            if path == "email" && attribute.eq_ignore_ascii_case("email") {
                continue;
            }
            if !valid_attribute(&attribute) {
                let upper: String = attribute
                    .to_ascii_uppercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let hint = if valid_attribute(&upper) {
                    format!(" (did you mean `{upper}`?)")
                } else {
                    String::new()
                };
                self.error(
                    attribute_line,
                    format!(
                        "{here}: `{attribute}` is not a valid attribute name; \
                         {ATTRIBUTE_RULE}{hint}"
                    ),
                );
                continue;
            }
            if let Some((first_path, first_line)) = filled_by.get(&attribute) {
                let first = first_line
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                self.error(
                    r.line,
                    format!(
                        "{where_}: `{first_path}`{first} and `{path}` both map to {attribute}; \
                         each attribute can come from one path only"
                    ),
                );
                continue;
            }
            filled_by.insert(attribute.clone(), (path.to_string(), r.line));
            let transform = transform.unwrap_or_else(|| infer_transform(path, &attribute));
            rules.push(FieldRule::new(path, &attribute, transform));
        }
        rules
    }

    /// `{ attribute: NAME, transform: KIND }`: the attribute, its line and the transform.
    pub(super) fn long_rule(
        &mut self,
        node: &N,
        here: &str,
    ) -> Option<(String, Option<usize>, Option<Transform>)> {
        let mut attribute = None;
        let mut transform = None;
        let mut ok = true;
        for k in self.entries(node, here) {
            match k.key.as_str() {
                "attribute" => match &k.value.value {
                    Node::Str(a) => attribute = Some((a.trim().to_string(), k.value_line())),
                    other => {
                        self.error(
                            k.value_line(),
                            format!("{here}.attribute must be text, not {}", shown(other)),
                        );
                        ok = false;
                    }
                },
                "transform" => {
                    let name = scalar_text(&k.value.value).unwrap_or_default();
                    match TRANSFORMS.iter().find(|(n, _)| *n == name.trim()) {
                        Some((_, t)) => transform = Some(*t),
                        None => {
                            let known: Vec<&str> = TRANSFORMS.iter().map(|(n, _)| *n).collect();
                            let hint = suggest(name.trim(), &known)
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            self.error(
                                k.value_line(),
                                format!(
                                    "{here}: unknown transform {}{hint}; known: {}",
                                    shown(&k.value.value),
                                    known.join(", ")
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                _ => {
                    self.unknown_key(&k, here, RULE_KEYS);
                    ok = false;
                }
            }
        }
        match attribute {
            Some((name, at)) if ok => Some((name, at, transform)),
            Some(_) => None,
            None => {
                if ok {
                    self.error(line(node), format!("{here} needs an `attribute`"));
                }
                None
            }
        }
    }

    /// Canonical event key -> Brevo event name ("" = don't send).
    pub(super) fn event_mapping(&mut self, node: &N, where_: &str) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        for e in self.entries(node, where_) {
            let renamed_data_event = e
                .key
                .strip_prefix(&crate::data_events::key(""))
                .is_some_and(|name| !name.trim().is_empty());
            let known = EventKind::from_key(&e.key).is_some() || renamed_data_event;
            if !known {
                let keys: Vec<&str> = EventKind::ALL.iter().map(|k| k.key()).collect();
                let hint = suggest_event(&e.key)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    e.line,
                    format!(
                        "{where_}: `{}` is not an event deskbridge knows{hint}; known events: {}",
                        e.key,
                        keys.join(", ")
                    ),
                );
            }
            let name = match &e.value.value {
                Node::Null => String::new(),
                Node::Str(s) => s.trim().to_string(),
                other => {
                    self.error(
                        e.value_line(),
                        format!(
                            "{} must be a Brevo event name, or \"\" not to send it; not {}",
                            dotted(where_, &e.key),
                            shown(other)
                        ),
                    );
                    continue;
                }
            };
            if !name.is_empty() && !valid_event_name(&name) {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: Brevo would reject the event name `{name}`; event names are letters, \
                         digits, _ and - only, at most 255 characters",
                        dotted(where_, &e.key)
                    ),
                );
                continue;
            }
            if known {
                names.insert(e.key, name);
            }
        }
        names
    }
}

fn valid_attribute(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('A'..='Z'))
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn valid_event_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The transform of a rule written as `path: ATTRIBUTE`.
fn infer_transform(path: &str, attribute: &str) -> Transform {
    if crate::ledger::is_aggregate(path) {
        return crate::mapping::aggregate_transform(path);
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    match attribute {
        "SMS" => Transform::Phone,
        "FIRSTNAME" if last == "name" => Transform::SplitName,
        "LAST_ACTIVE" | "SIGNUP_DATE" => Transform::Date,
        a if a.ends_with("_DATE") => Transform::Date,
        _ => Transform::Auto,
    }
}
