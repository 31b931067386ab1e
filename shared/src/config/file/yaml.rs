//! The YAML tree of the configuration file. Serde's derive would stop at the first problem and
//! forget where values were; this keeps every node with its line so that all problems can be
//! reported together.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::Problem;

pub(super) type N = Spanned<Node>;

#[derive(Debug)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A list, its items in order (`actions.<helpdesk>.tags` takes one).
    Seq(Vec<N>),
    /// Entries in file order. Repeated keys are kept (and reported).
    Map(Vec<(N, N)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
                // Beyond i64 only as text: no setting takes such a number anyway.
                Ok(i64::try_from(n).map_or_else(|_| Node::Str(n.to_string()), Node::Int))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Node, E> {
                Ok(Node::Float(x))
            }
            fn visit_str<E>(self, s: &str) -> Result<Node, E> {
                Ok(Node::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Node, E> {
                Ok(Node::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<N>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<N, N>()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

pub(super) fn read_yaml(text: &str) -> Result<Option<N>, Problem> {
    let options = serde_saphyr::options! {
        // YAML 1.1's yes/no/on/off are text: `NO` is Norway, not false.
        strict_booleans: true,
        // Repeated keys reach the checker, which reports them with the others.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    serde_saphyr::from_str_with_options::<Option<N>>(text, options).map_err(|e| {
        use serde_saphyr::MessageFormatter;
        let reason = serde_saphyr::UserMessageFormatter.format_message(e.without_snippet());
        Problem {
            line: e
                .location()
                .and_then(|l| usize::try_from(l.line()).ok())
                .filter(|l| *l > 0),
            message: format!("not valid YAML: {}", printable(&reason)),
        }
    })
}

/// The parser's message may quote the file; keep control characters out of logs.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(super) fn line(n: &N) -> Option<usize> {
    usize::try_from(n.referenced.line()).ok().filter(|l| *l > 0)
}

/// A scalar as text (keys may be numbers: a tag named `2024`).
pub(super) fn scalar_text(n: &Node) -> Option<String> {
    match n {
        Node::Str(s) => Some(s.clone()),
        Node::Int(i) => Some(i.to_string()),
        Node::Float(x) => Some(x.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Null | Node::Seq(_) | Node::Map(_) => None,
    }
}

/// A value as shown in messages.
pub(super) fn shown(n: &Node) -> Cow<'static, str> {
    match n {
        Node::Null => "nothing".into(),
        Node::Seq(_) => "a list".into(),
        Node::Map(_) => "a mapping".into(),
        Node::Str(s) if s.is_empty() => "an empty text".into(),
        other => format!("`{}`", scalar_text(other).unwrap_or_default()).into(),
    }
}
