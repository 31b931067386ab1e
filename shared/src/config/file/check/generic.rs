//! The webhook blocks of a `generic:<name>` connector: `auth`, `fields` and `events`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Checker, Entry, dotted, suggest, suggest_event};
use crate::config::file::yaml::{Node, scalar_text, shown};
use crate::helpdesk::generic::{self, GenericAuth, GenericFields, GenericSource};
use crate::helpdesk::signature::{HmacSha256Scheme, SignatureEncoding, SignedTimestamp};
use crate::model::EventKind;

const AUTH_TYPES: &[&str] = &["hmac_sha256", "hmac_sha1", "bearer", "basic"];
const HMAC_KEYS: &[&str] = &[
    "type",
    "header",
    "secret_env",
    "encoding",
    "prefix",
    "timestamp_header",
    "signed_payload",
    "max_age_seconds",
];
/// What an HMAC with a signed timestamp covers unless `signed_payload` says otherwise.
const DEFAULT_SIGNED_PAYLOAD: &str = "{timestamp}{body}";
/// How old (or how far ahead) a signed timestamp may be unless `max_age_seconds` says otherwise.
const DEFAULT_MAX_AGE_SECONDS: u64 = 300;
const BEARER_KEYS: &[&str] = &["type", "token_env"];
const BASIC_KEYS: &[&str] = &["type", "credentials_env"];
/// Fields of which a generic delivery must name at least one: how the person is told apart.
const IDENTIFYING_FIELDS: &[&str] = &["email", "phone", "external_id"];

/// The webhook blocks of a `generic:<name>` connector as read: each is `None` when absent and
/// `Some(None)` when present but invalid (already reported).
#[derive(Default)]
pub(super) struct GenericBlocks {
    pub(super) auth: Option<Option<GenericAuth>>,
    pub(super) fields: Option<Option<GenericFields>>,
    pub(super) events: Option<BTreeMap<String, Option<EventKind>>>,
    /// Event-type values mapped to [`PERSON_DELETED`].
    pub(super) deletions: BTreeSet<String>,
}

/// The `events` value of a generic source that makes a delivery a deletion of its person.
pub(super) const PERSON_DELETED: &str = "person.deleted";

impl Checker {
    /// A generic source from its blocks, when they are complete and valid; reports what is
    /// missing or inconsistent.
    pub(super) fn generic_source(
        &mut self,
        blocks: GenericBlocks,
        line: Option<usize>,
        at: &str,
        pulled: bool,
    ) -> Option<GenericSource> {
        let url = at.replacen("connectors.generic:", "/webhooks/generic/", 1);
        let (auth, fields) = match (blocks.auth, blocks.fields) {
            (None, None) => {
                if blocks.events.is_some() {
                    self.error(
                        line,
                        format!("{at} has `events` but no `auth` and `fields`"),
                    );
                } else if pulled {
                    // An API the sync reads, without webhooks: nothing to say.
                } else {
                    self.warn(
                        line,
                        format!(
                            "{at} has no `auth` and `fields`, so POST {url} answers 404 (its \
                             mapping applies to nothing)"
                        ),
                    );
                }
                return None;
            }
            (Some(_), None) => {
                self.error(
                    line,
                    format!(
                        "{at} has `auth` but no `fields`: add JSON pointers to the email, phone \
                         or external id of the person a delivery is about"
                    ),
                );
                return None;
            }
            (None, Some(_)) => {
                self.error(
                    line,
                    format!(
                        "{at} has `fields` but no `auth`: deliveries must be signed \
                         (type: hmac_sha256) or carry a bearer token (type: bearer)"
                    ),
                );
                return None;
            }
            (Some(auth), Some(fields)) => (auth, fields),
        };
        let events = blocks.events.unwrap_or_default();
        let deletions = blocks.deletions;
        if let Some(fields) = &fields {
            match (
                &fields.event_type,
                events.is_empty() && deletions.is_empty(),
            ) {
                (None, false) => self.error(
                    line,
                    format!(
                        "{at}.events needs {at}.fields.event_type: the pointer to the value its \
                         keys are matched against"
                    ),
                ),
                (Some(_), true) => self.error(
                    line,
                    format!(
                        "{at}.fields.event_type is set but {at}.events maps no value, so every \
                         delivery would be ignored; list the values (`contact.edited: ~` \
                         updates the contact without an event)"
                    ),
                ),
                _ => {}
            }
        }
        Some(GenericSource {
            auth: auth?,
            fields: fields?,
            events,
            deletions,
        })
    }

    /// `auth: { type: hmac_sha256 | bearer, … }`.
    pub(super) fn generic_auth(&mut self, f: &Entry, at: &str) -> Option<GenericAuth> {
        let where_ = format!("{at}.auth");
        let entries = self.entries(f.value, &where_);
        if entries.is_empty() && !matches!(f.value.value, Node::Map(_) | Node::Null) {
            return None; // not a mapping: reported by `entries`
        }
        let kind = entries.iter().find(|k| k.key == "type");
        let kind = match kind.map(|k| (k, scalar_text(&k.value.value))) {
            None => {
                self.error(
                    f.line,
                    format!("{where_} needs a `type`: {}", AUTH_TYPES.join(", ")),
                );
                return None;
            }
            Some((_, Some(t))) if AUTH_TYPES.contains(&t.trim()) => t.trim().to_string(),
            Some((k, t)) => {
                let hint = t
                    .as_deref()
                    .and_then(|t| suggest(t.trim(), AUTH_TYPES))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    k.value_line(),
                    format!(
                        "{where_}.type: unknown auth type {}{hint}; known: {}",
                        shown(&k.value.value),
                        AUTH_TYPES.join(", ")
                    ),
                );
                return None;
            }
        };
        let hmac = kind.starts_with("hmac_");
        let basic = kind == "basic";
        let known = match (hmac, basic) {
            (true, _) => HMAC_KEYS,
            (_, true) => BASIC_KEYS,
            _ => BEARER_KEYS,
        };
        let (mut header, mut secret_env, mut token_env, mut prefix) = (None, None, None, None);
        let mut credentials_env = None;
        let mut encoding = Some(SignatureEncoding::Hex);
        let (mut timestamp_header, mut layout, mut max_age) = (None, None, None);
        let mut ok = true;
        for k in &entries {
            match k.key.as_str() {
                "type" => {}
                "timestamp_header" if hmac => {
                    timestamp_header = self.header_name(k, &where_);
                    ok &= timestamp_header.is_some();
                }
                "signed_payload" if hmac => {
                    let template = self.text(k, &where_);
                    layout = match template.as_deref().map(SignedTimestamp::layout) {
                        Some(Ok(layout)) => Some(layout),
                        Some(Err(why)) => {
                            self.error(
                                k.value_line(),
                                format!(
                                    "{where_}.signed_payload {why}, e.g. `{{timestamp}}.{{body}}`"
                                ),
                            );
                            ok = false;
                            None
                        }
                        None => {
                            ok = false;
                            None
                        }
                    };
                }
                "max_age_seconds" if hmac => match &k.value.value {
                    Node::Int(n) if *n > 0 => max_age = u64::try_from(*n).ok(),
                    other => {
                        self.error(
                            k.value_line(),
                            format!(
                                "{where_}.max_age_seconds must be a positive whole number of seconds, not {}",
                                shown(other)
                            ),
                        );
                        ok = false;
                    }
                },
                "header" if hmac => {
                    header = self.header_name(k, &where_);
                    ok &= header.is_some();
                }
                "secret_env" if hmac => secret_env = self.variable_name(k, &where_),
                "token_env" if !hmac && !basic => token_env = self.variable_name(k, &where_),
                "credentials_env" if basic => credentials_env = self.variable_name(k, &where_),
                "prefix" if hmac => prefix = self.text(k, &where_),
                "encoding" if hmac => {
                    encoding = match scalar_text(&k.value.value).as_deref().map(str::trim) {
                        Some("hex") => Some(SignatureEncoding::Hex),
                        Some("base64") => Some(SignatureEncoding::Base64),
                        _ => {
                            self.error(
                                k.value_line(),
                                format!(
                                    "{where_}.encoding must be hex or base64, not {}",
                                    shown(&k.value.value)
                                ),
                            );
                            None
                        }
                    }
                }
                "secret" | "token" | "password" | "key" | "value" => {
                    let var = match (hmac, basic) {
                        (true, _) => "secret_env",
                        (_, true) => "credentials_env",
                        _ => "token_env",
                    };
                    self.error(
                        k.line,
                        format!(
                            "{where_}.{}: secrets never go in this file; put the value in an \
                             environment variable (or the DESKBRIDGE_SECRET_ARN secret) and name \
                             it with `{var}`",
                            k.key
                        ),
                    );
                    ok = false;
                }
                _ => {
                    self.unknown_key(k, &format!("{where_} ({kind})"), known);
                    ok = false;
                }
            }
        }
        // A key that is given but invalid is reported already.
        let required = |name: &str, this: &mut Self, what: &str| {
            if !entries.iter().any(|k| k.key == name) {
                this.error(f.line, format!("{where_} ({kind}) needs `{name}`: {what}"));
            }
        };
        if hmac {
            required(
                "header",
                self,
                "the request header that carries the signature",
            );
            required(
                "secret_env",
                self,
                "the environment variable (or secret key) holding the signing secret",
            );
            if timestamp_header.is_none() {
                for key in ["signed_payload", "max_age_seconds"] {
                    if let Some(k) = entries.iter().find(|k| k.key == key) {
                        self.error(
                            k.line,
                            format!(
                                "{where_}.{key} needs `timestamp_header`: the request header that \
                                 carries the signing time"
                            ),
                        );
                        ok = false;
                    }
                }
            }
            let timestamp = timestamp_header.map(|header| {
                let (before, after) = layout.unwrap_or_else(|| {
                    SignedTimestamp::layout(DEFAULT_SIGNED_PAYLOAD).unwrap_or_default()
                });
                SignedTimestamp {
                    header,
                    before,
                    after,
                    tolerance: Duration::from_secs(max_age.unwrap_or(DEFAULT_MAX_AGE_SECONDS)),
                }
            });
            let scheme = HmacSha256Scheme {
                header: header?,
                encoding: encoding?,
                prefix,
                timestamp,
            };
            let secret_env = secret_env?;
            ok.then_some(if kind == "hmac_sha1" {
                GenericAuth::HmacSha1 { scheme, secret_env }
            } else {
                GenericAuth::HmacSha256 { scheme, secret_env }
            })
        } else if basic {
            required(
                "credentials_env",
                self,
                "the environment variable (or secret key) holding `user:password`",
            );
            let credentials_env = credentials_env?;
            ok.then_some(GenericAuth::Basic { credentials_env })
        } else {
            required(
                "token_env",
                self,
                "the environment variable (or secret key) holding the expected token",
            );
            let token_env = token_env?;
            ok.then_some(GenericAuth::Bearer { token_env })
        }
    }

    /// An HTTP header name.
    fn header_name(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let name = self.text(e, where_)?;
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            self.error(
                e.value_line(),
                format!("{where_}.{}: `{name}` is not an HTTP header name", e.key),
            );
            return None;
        }
        Some(name)
    }

    /// The name of an environment variable (or secret key).
    pub(super) fn variable_name(&mut self, e: &Entry, where_: &str) -> Option<String> {
        let name = self.text(e, where_)?;
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            return Some(name);
        }
        self.error(
            e.value_line(),
            format!(
                "{}: `{name}` is not a variable name (letters, digits and _, such as \
                 CINNOX_WEBHOOK_SECRET); the file names the variable, the variable holds the secret",
                dotted(where_, &e.key)
            ),
        );
        None
    }

    /// `fields: { email: /contact/email, … }`: RFC 6901 JSON pointers.
    /// The JSON pointer an entry of `where_` holds; `None` (reported) when it holds none.
    pub(super) fn pointer(&mut self, k: &Entry, where_: &str) -> Option<String> {
        let here = dotted(where_, &k.key);
        let pointer = match &k.value.value {
            Node::Str(p) => p.trim().to_string(),
            other => {
                self.error(
                    k.value_line(),
                    format!(
                        "{here} must be a JSON pointer such as /contact/email, not {}",
                        shown(other)
                    ),
                );
                return None;
            }
        };
        if !generic::valid_pointer(&pointer) {
            let hint = if pointer.starts_with('/') || pointer.is_empty() {
                "`~` must be followed by 0 (for ~) or 1 (for /)".to_string()
            } else {
                let slashed = pointer.trim_start_matches("$.").replace('.', "/");
                format!("pointers start with / (did you mean `/{slashed}`?)")
            };
            self.error(
                k.value_line(),
                format!("{here}: `{pointer}` is not a JSON pointer (RFC 6901); {hint}"),
            );
            return None;
        }
        Some(pointer)
    }

    pub(super) fn generic_fields(&mut self, f: &Entry, at: &str) -> Option<GenericFields> {
        let where_ = format!("{at}.fields");
        let mut fields = GenericFields::default();
        let mut ok = true;
        for k in self.entries(f.value, &where_) {
            let slot = match k.key.as_str() {
                "email" => &mut fields.email,
                "phone" => &mut fields.phone,
                "name" => &mut fields.name,
                "first_name" => &mut fields.first_name,
                "last_name" => &mut fields.last_name,
                "external_id" => &mut fields.external_id,
                "event_type" => &mut fields.event_type,
                "event_time" => &mut fields.event_time,
                "delivery_id" => &mut fields.delivery_id,
                "subject" => &mut fields.subject,
                "channel" => &mut fields.channel,
                "tags" => &mut fields.tags,
                "score" => &mut fields.score,
                "properties" => {
                    let here = dotted(&where_, &k.key);
                    for p in self.entries(k.value, &here) {
                        if let Some(pointer) = self.pointer(&p, &here) {
                            fields.properties.insert(p.key.clone(), pointer);
                        } else {
                            ok = false;
                        }
                    }
                    continue;
                }
                _ => {
                    self.unknown_key(&k, &where_, &generic::FIELD_NAMES);
                    ok = false;
                    continue;
                }
            };
            match self.pointer(&k, &where_) {
                Some(pointer) => *slot = Some(pointer),
                None => ok = false,
            }
        }
        let named: Vec<&str> = fields.pointers().iter().map(|(n, _)| *n).collect();
        if ok && !IDENTIFYING_FIELDS.iter().any(|n| named.contains(n)) {
            self.error(
                f.line,
                format!(
                    "{where_} needs at least one of {}: the pointers that say who a delivery \
                     is about",
                    IDENTIFYING_FIELDS.join(", ")
                ),
            );
            ok = false;
        }
        ok.then_some(fields)
    }

    /// `events: { <event-type value>: <canonical event key> | person.deleted | ~ }`. Values
    /// mapped to `person.deleted` go to `deletions`; without it (a pull), they are refused.
    pub(super) fn generic_events(
        &mut self,
        f: &Entry,
        at: &str,
        mut deletions: Option<&mut BTreeSet<String>>,
    ) -> BTreeMap<String, Option<EventKind>> {
        let where_ = format!("{at}.events");
        let mut events = BTreeMap::new();
        let keys: Vec<&str> = EventKind::ALL.iter().map(|k| k.key()).collect();
        for e in self.entries(f.value, &where_) {
            let kind = match &e.value.value {
                Node::Null => None,
                Node::Str(s) if s.trim().is_empty() => None,
                Node::Str(s) if s.trim() == PERSON_DELETED => {
                    match deletions.as_deref_mut() {
                        Some(set) => {
                            set.insert(e.key.trim().to_string());
                        }
                        None => self.error(
                            e.value_line(),
                            format!(
                                "{}: {PERSON_DELETED} is read from webhooks only, not from a \
                                 pull",
                                dotted(&where_, &e.key)
                            ),
                        ),
                    }
                    continue;
                }
                Node::Str(s) => match EventKind::from_key(s.trim()) {
                    Some(kind) => Some(kind),
                    None => {
                        let hint = suggest_event(s.trim())
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        self.error(
                            e.value_line(),
                            format!(
                                "{}: `{}` is not an event deskbridge knows{hint}; known events: \
                                 {}, {PERSON_DELETED} for a deletion, or ~ to update the contact \
                                 without an event",
                                dotted(&where_, &e.key),
                                s.trim(),
                                keys.join(", ")
                            ),
                        );
                        continue;
                    }
                },
                other => {
                    self.error(
                        e.value_line(),
                        format!(
                            "{} must be an event key such as ticket.created, or ~, not {}",
                            dotted(&where_, &e.key),
                            shown(other)
                        ),
                    );
                    continue;
                }
            };
            events.insert(e.key.trim().to_string(), kind);
        }
        events
    }
}
