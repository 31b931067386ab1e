//! The values every section is made of: mappings (with repeated keys reported), unknown keys,
//! booleans, text and Brevo list ids.

use std::collections::HashMap;

use super::{Checker, Entry, dotted, place, suggest};
use crate::config::file::yaml::{N, Node, line, scalar_text, shown};

impl Checker {
    /// The entries of a mapping (none for an empty value). Reports other values, keys that are
    /// not plain scalars, and repeated keys (whose later entries are dropped).
    pub(super) fn entries<'a>(&mut self, node: &'a N, where_: &str) -> Vec<Entry<'a>> {
        let pairs = match &node.value {
            Node::Null => return Vec::new(),
            Node::Map(pairs) => pairs,
            other => {
                self.error(
                    line(node),
                    format!(
                        "{where_} must be a mapping of `key: value` entries, not {}",
                        shown(other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut first_seen: HashMap<String, Option<usize>> = HashMap::new();
        let mut out = Vec::new();
        for (k, value) in pairs {
            let Some(key) = scalar_text(&k.value) else {
                self.error(
                    line(k),
                    format!(
                        "keys {} must be plain text, not {}",
                        place(where_),
                        shown(&k.value)
                    ),
                );
                continue;
            };
            if let Some(first) = first_seen.get(&key) {
                let first = first
                    .map(|l| format!(" (first on line {l})"))
                    .unwrap_or_default();
                self.error(
                    line(k),
                    format!("`{key}` is given twice {}{first}", place(where_)),
                );
                continue;
            }
            first_seen.insert(key.clone(), line(k));
            out.push(Entry {
                key,
                line: line(k),
                value,
            });
        }
        out
    }

    pub(super) fn unknown_key(&mut self, e: &Entry, where_: &str, known: &[&str]) {
        let hint = suggest(&e.key, known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            e.line,
            format!(
                "unknown key `{}` {}{hint}; known keys: {}",
                e.key,
                place(where_),
                known.join(", ")
            ),
        );
    }

    pub(super) fn boolean(&mut self, e: &Entry, where_: &str) -> Option<bool> {
        match &e.value.value {
            Node::Bool(b) => Some(*b),
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{} must be true or false, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }

    /// The `deletions` policy: `ignore`, `unlink` or `delete`.
    pub(super) fn deletions(&mut self, e: &Entry) -> Option<crate::deletions::Deletions> {
        use crate::deletions::Deletions;
        let text = self.text(e, "")?;
        let policy = Deletions::parse(&text);
        if policy.is_none() {
            self.error(
                e.value_line(),
                format!(
                    "deletions must be one of {}, not `{text}`",
                    Deletions::NAMES.join(", ")
                ),
            );
        }
        policy
    }

    /// Text, or nothing for an empty value.
    pub(super) fn text(&mut self, e: &Entry, where_: &str) -> Option<String> {
        match &e.value.value {
            Node::Null => None,
            Node::Str(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{} must be text, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }

    /// A Brevo list id; nothing for an empty value.
    pub(super) fn list_id(&mut self, e: &Entry, where_: &str) -> Option<i64> {
        match &e.value.value {
            Node::Null => None,
            Node::Int(id) if *id > 0 => Some(*id),
            Node::Str(s) if s.trim().parse::<i64>().is_ok_and(|id| id > 0) => {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: write the list id {} without quotes",
                        dotted(where_, &e.key),
                        s.trim()
                    ),
                );
                None
            }
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{}: Brevo list ids are positive whole numbers, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }
}
