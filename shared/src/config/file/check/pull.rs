//! `connectors.generic:<name>.pull`: a REST API the batch sync reads (see
//! [`crate::helpdesk::generic::pull`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Checker, Entry, dotted, suggest};
use crate::config::file::yaml::{Node, scalar_text, shown};
use crate::helpdesk::generic::pull::{
    Pagination, PullAuth, PullResource, PullSource, STREAMS, TimeFormat, UpdatedSince,
};
use crate::model::EventKind;
use crate::sync::Rate;

const PULL_KEYS: &[&str] = &["base_url", "auth", "rate_limit", "resources"];
const RESOURCE_KEYS: &[&str] = &[
    "path",
    "query",
    "items",
    "pagination",
    "updated_since",
    "updated_at",
    "fields",
    "events",
    "event_times",
];
const AUTH_TYPES: &[&str] = &["bearer", "basic", "header"];
const PAGINATION_TYPES: &[&str] = &["page", "offset", "next_link", "cursor"];
/// The rate of a source whose file gives none: one request a second, which every helpdesk
/// API allows.
const DEFAULT_RATE: (u64, u64) = (60, 60);
/// The page size asked for when the file gives none.
const DEFAULT_PAGE_SIZE: u64 = 100;
/// How far back a run's `updated_since` reaches before the previous run's start by default.
const DEFAULT_OVERLAP_SECONDS: u64 = 60;

impl Checker {
    /// A positive whole number; reported otherwise.
    fn positive(&mut self, e: &Entry, where_: &str) -> Option<u64> {
        match &e.value.value {
            Node::Int(n) if *n > 0 => u64::try_from(*n).ok(),
            other => {
                self.error(
                    e.value_line(),
                    format!(
                        "{} must be a positive whole number, not {}",
                        dotted(where_, &e.key),
                        shown(other)
                    ),
                );
                None
            }
        }
    }

    /// The `type` of a block, one of `known`; reported when missing or unknown.
    fn block_type(
        &mut self,
        f: &Entry,
        entries: &[Entry],
        where_: &str,
        known: &[&str],
    ) -> Option<String> {
        let Some(k) = entries.iter().find(|k| k.key == "type") else {
            self.error(
                f.line,
                format!("{where_} needs a `type`: {}", known.join(", ")),
            );
            return None;
        };
        match scalar_text(&k.value.value).map(|t| t.trim().to_string()) {
            Some(t) if known.contains(&t.as_str()) => Some(t),
            t => {
                let hint = t
                    .as_deref()
                    .and_then(|t| suggest(t, known))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    k.value_line(),
                    format!(
                        "{where_}.type: unknown type {}{hint}; known: {}",
                        shown(&k.value.value),
                        known.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// `pull: { base_url, auth, rate_limit, resources }`.
    pub(super) fn pull_source(&mut self, f: &Entry, at: &str) -> Option<PullSource> {
        let where_ = format!("{at}.pull");
        let (mut base_url, mut auth, mut rate, mut resources) = (None, None, None, BTreeMap::new());
        let mut ok = true;
        for k in self.entries(f.value, &where_) {
            match k.key.as_str() {
                "base_url" => {
                    base_url = self.text(&k, &where_).filter(|url| {
                        let valid = reqwest::Url::parse(url)
                            .is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
                        if !valid {
                            self.error(
                                k.value_line(),
                                format!(
                                    "{where_}.base_url: `{url}` is not an http(s) URL such as \
                                     https://acme.freshdesk.com/api/v2"
                                ),
                            );
                        }
                        valid
                    });
                    ok &= base_url.is_some();
                }
                "auth" => {
                    auth = self.pull_auth(&k, &where_);
                    ok &= auth.is_some();
                }
                "rate_limit" => {
                    rate = self.rate_limit(&k, &where_);
                    ok &= rate.is_some();
                }
                "resources" => {
                    let here = format!("{where_}.resources");
                    for r in self.entries(k.value, &here) {
                        if !STREAMS.contains(&r.key.as_str()) {
                            self.error(
                                r.line,
                                format!(
                                    "{here}: `{}` is not a resource deskbridge reads; known: {} \
                                     (people, and tickets with their requester)",
                                    r.key,
                                    STREAMS.join(", ")
                                ),
                            );
                            ok = false;
                            continue;
                        }
                        match self.pull_resource(&r, &here) {
                            Some(resource) => {
                                resources.insert(r.key.clone(), resource);
                            }
                            None => ok = false,
                        }
                    }
                }
                _ => {
                    self.unknown_key(&k, &where_, PULL_KEYS);
                    ok = false;
                }
            }
        }
        for (key, missing, what) in [
            ("base_url", base_url.is_none(), "the API's root URL"),
            ("auth", auth.is_none(), "how requests authenticate"),
        ] {
            if missing && ok {
                self.error(f.line, format!("{where_} needs `{key}`: {what}"));
                ok = false;
            }
        }
        if ok && resources.is_empty() {
            self.error(
                f.line,
                format!(
                    "{where_} needs `resources` with `contacts` or `tickets`: what the sync reads"
                ),
            );
            ok = false;
        }
        let (requests, seconds) = DEFAULT_RATE;
        let rate = rate.unwrap_or_else(|| rate_of(requests, seconds));
        Some(PullSource {
            base_url: base_url?,
            auth: auth?,
            rate,
            resources,
        })
        .filter(|_| ok)
    }

    /// `auth: { type: bearer | basic | header, … }`.
    fn pull_auth(&mut self, f: &Entry, at: &str) -> Option<PullAuth> {
        let where_ = format!("{at}.auth");
        let entries = self.entries(f.value, &where_);
        let kind = self.block_type(f, &entries, &where_, AUTH_TYPES)?;
        let known: &[&str] = match kind.as_str() {
            "bearer" => &["type", "token_env"],
            "basic" => &["type", "credentials_env"],
            _ => &["type", "name", "value_env"],
        };
        let (mut var, mut name, mut ok) = (None, None, true);
        for k in &entries {
            match k.key.as_str() {
                "type" => {}
                key if known.contains(&key) && key.ends_with("_env") => {
                    var = self.variable_name(k, &where_);
                    ok &= var.is_some();
                }
                "name" if kind == "header" => {
                    name = self.text(k, &where_).filter(|h| {
                        let valid = http::HeaderName::from_bytes(h.as_bytes()).is_ok();
                        if !valid {
                            self.error(
                                k.value_line(),
                                format!("{where_}.name: `{h}` is not an HTTP header name"),
                            );
                        }
                        valid
                    });
                    ok &= name.is_some();
                }
                "token" | "password" | "key" | "value" | "secret" | "api_key" => {
                    self.error(
                        k.line,
                        format!(
                            "{where_}.{}: secrets never go in this file; put the value in an \
                             environment variable (or the DESKBRIDGE_SECRET_ARN secret) and name \
                             it with `{}`",
                            k.key, known[1]
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
        for key in &known[1..] {
            if ok && !entries.iter().any(|k| k.key == *key) {
                self.error(f.line, format!("{where_} ({kind}) needs `{key}`"));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let var = var?;
        Some(match kind.as_str() {
            "bearer" => PullAuth::Bearer { token_env: var },
            "basic" => PullAuth::Basic {
                credentials_env: var,
            },
            _ => PullAuth::Header {
                name: name?,
                value_env: var,
            },
        })
    }

    /// `rate_limit: { requests: 50, per_seconds: 60 }`.
    fn rate_limit(&mut self, f: &Entry, at: &str) -> Option<Rate> {
        let where_ = format!("{at}.rate_limit");
        let (mut requests, mut seconds, mut ok) = (None, None, true);
        for k in self.entries(f.value, &where_) {
            match k.key.as_str() {
                "requests" => requests = self.positive(&k, &where_),
                "per_seconds" => seconds = self.positive(&k, &where_),
                _ => {
                    self.unknown_key(&k, &where_, &["requests", "per_seconds"]);
                    ok = false;
                }
            }
        }
        match (requests, seconds, ok) {
            (Some(r), Some(s), true) => Some(rate_of(r, s)),
            (_, _, true) => {
                self.error(
                    f.line,
                    format!("{where_} needs `requests` and `per_seconds`, such as {{ requests: 50, per_seconds: 60 }}"),
                );
                None
            }
            _ => None,
        }
    }

    /// One resource of `resources`.
    fn pull_resource(&mut self, f: &Entry, at: &str) -> Option<PullResource> {
        let where_ = dotted(at, &f.key);
        let mut path = None;
        let mut query = BTreeMap::new();
        let mut items = Some(String::new());
        let mut pagination = None;
        let mut updated_since = None;
        let mut updated_at = None;
        let mut fields = None;
        let mut events = BTreeMap::new();
        let mut event_times = BTreeMap::new();
        let mut ok = true;
        for k in self.entries(f.value, &where_) {
            match k.key.as_str() {
                "path" => {
                    path = self.text(&k, &where_).filter(|p| {
                        let valid = p.starts_with('/') && !p.contains('?');
                        if !valid {
                            self.error(
                                k.value_line(),
                                format!(
                                    "{where_}.path: `{p}` must start with / and carry no query \
                                     (put fixed parameters under `query`)"
                                ),
                            );
                        }
                        valid
                    });
                    ok &= path.is_some();
                }
                "query" => {
                    let here = format!("{where_}.query");
                    for q in self.entries(k.value, &here) {
                        match scalar_text(&q.value.value) {
                            Some(v) => {
                                query.insert(q.key.clone(), v);
                            }
                            None => {
                                self.error(
                                    q.value_line(),
                                    format!(
                                        "{}: must be text, not {}",
                                        dotted(&here, &q.key),
                                        shown(&q.value.value)
                                    ),
                                );
                                ok = false;
                            }
                        }
                    }
                }
                "items" => {
                    items = self.pointer(&k, &where_);
                    ok &= items.is_some();
                }
                "updated_at" => {
                    updated_at = self.pointer(&k, &where_);
                    ok &= updated_at.is_some();
                }
                "pagination" => {
                    pagination = self.pagination(&k, &where_);
                    ok &= pagination.is_some();
                }
                "updated_since" => {
                    updated_since = self.updated_since(&k, &where_);
                    ok &= updated_since.is_some();
                }
                "fields" => {
                    fields = self.generic_fields(&k, &where_);
                    ok &= fields.is_some();
                }
                "events" => events = self.generic_events(&k, &where_, None),
                "event_times" => {
                    let here = format!("{where_}.event_times");
                    for t in self.entries(k.value, &here) {
                        match (EventKind::from_key(t.key.trim()), self.pointer(&t, &here)) {
                            (Some(kind), Some(pointer)) => {
                                event_times.insert(kind, pointer);
                            }
                            (None, _) => {
                                self.error(
                                    t.line,
                                    format!(
                                        "{}: not an event deskbridge knows",
                                        dotted(&here, &t.key)
                                    ),
                                );
                                ok = false;
                            }
                            (_, None) => ok = false,
                        }
                    }
                }
                _ => {
                    self.unknown_key(&k, &where_, RESOURCE_KEYS);
                    ok = false;
                }
            }
        }
        if ok {
            for (key, missing, what) in [
                (
                    "path",
                    path.is_none(),
                    "the resource's path under base_url, such as /contacts",
                ),
                (
                    "pagination",
                    pagination.is_none(),
                    "how the resource pages (type: page, offset, next_link or cursor)",
                ),
                (
                    "fields",
                    fields.is_none(),
                    "JSON pointers into one item: at least one of email, phone and external_id",
                ),
            ] {
                if missing {
                    self.error(f.line, format!("{where_} needs `{key}`: {what}"));
                    ok = false;
                }
            }
        }
        if let Some(f) = &fields
            && !events.is_empty()
            && f.event_type.is_none()
        {
            self.error(
                None,
                format!("{where_}.events needs {where_}.fields.event_type: the pointer to the value its keys are matched against"),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(PullResource {
            path: path?,
            query,
            items: items?,
            pagination: pagination?,
            updated_since,
            updated_at,
            fields: fields?,
            events,
            event_times,
        })
    }

    /// `pagination: { type: page | offset | next_link | cursor, … }`.
    fn pagination(&mut self, f: &Entry, at: &str) -> Option<Pagination> {
        let where_ = format!("{at}.pagination");
        let entries = self.entries(f.value, &where_);
        let kind = self.block_type(f, &entries, &where_, PAGINATION_TYPES)?;
        let known: &[&str] = match kind.as_str() {
            "page" => &["type", "param", "first", "size_param", "size"],
            "offset" => &["type", "param", "size_param", "size"],
            "next_link" => &["type", "next", "size_param", "size"],
            _ => &["type", "param", "next", "size_param", "size"],
        };
        let (mut param, mut next, mut size_param) = (None, None, None);
        let (mut first, mut size, mut ok) = (1, DEFAULT_PAGE_SIZE, true);
        for k in &entries {
            match k.key.as_str() {
                "type" => {}
                key if !known.contains(&key) => {
                    self.unknown_key(k, &format!("{where_} ({kind})"), known);
                    ok = false;
                }
                "param" => param = self.text(k, &where_),
                "size_param" => size_param = self.text(k, &where_),
                "next" => {
                    next = self.pointer(k, &where_);
                    ok &= next.is_some();
                }
                "first" => match &k.value.value {
                    Node::Int(n) if *n >= 0 => first = u64::try_from(*n).unwrap_or(1),
                    other => {
                        self.error(
                            k.value_line(),
                            format!("{where_}.first must be 0 or more, not {}", shown(other)),
                        );
                        ok = false;
                    }
                },
                _ => match self.positive(k, &where_) {
                    Some(n) => size = n,
                    None => ok = false,
                },
            }
        }
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let need = |this: &mut Self, key: &str, given: bool| {
            if !given {
                this.error(f.line, format!("{where_} ({kind}) needs `{key}`"));
            }
            given
        };
        match kind.as_str() {
            "page" => ok.then(|| Pagination::Page {
                param: param.unwrap_or_else(|| "page".into()),
                first,
                size_param,
                size,
            }),
            "offset" => ok.then(|| Pagination::Offset {
                param: param.unwrap_or_else(|| "offset".into()),
                size_param,
                size,
            }),
            "next_link" => {
                (need(self, "next", next.is_some()) && ok).then(|| Pagination::NextLink {
                    next: next.unwrap_or_default(),
                    size_param,
                    size,
                })
            }
            _ => {
                let has_next = need(self, "next", next.is_some());
                let has_param = need(self, "param", param.is_some());
                (has_next && has_param && ok).then(|| Pagination::Cursor {
                    param: param.unwrap_or_default(),
                    next: next.unwrap_or_default(),
                    size_param,
                    size,
                })
            }
        }
    }

    /// `updated_since: { param, format, overlap_seconds }`.
    fn updated_since(&mut self, f: &Entry, at: &str) -> Option<UpdatedSince> {
        let where_ = format!("{at}.updated_since");
        let (mut param, mut format, mut overlap, mut ok) =
            (None, TimeFormat::Rfc3339, DEFAULT_OVERLAP_SECONDS, true);
        for k in self.entries(f.value, &where_) {
            match k.key.as_str() {
                "param" => param = self.text(&k, &where_),
                "format" => match self.text(&k, &where_).as_deref().map(TimeFormat::from_name) {
                    Some(Some(f)) => format = f,
                    _ => {
                        self.error(
                            k.value_line(),
                            format!(
                                "{where_}.format must be one of {}, not {}",
                                TimeFormat::NAMES.join(", "),
                                shown(&k.value.value)
                            ),
                        );
                        ok = false;
                    }
                },
                "overlap_seconds" => match &k.value.value {
                    Node::Int(n) if *n >= 0 => overlap = u64::try_from(*n).unwrap_or(0),
                    other => {
                        self.error(
                            k.value_line(),
                            format!(
                                "{where_}.overlap_seconds must be 0 or more, not {}",
                                shown(other)
                            ),
                        );
                        ok = false;
                    }
                },
                _ => {
                    self.unknown_key(&k, &where_, &["param", "format", "overlap_seconds"]);
                    ok = false;
                }
            }
        }
        if param.is_none() && ok {
            self.error(
                f.line,
                format!("{where_} needs `param`: the query parameter that filters by change time"),
            );
            ok = false;
        }
        ok.then(|| UpdatedSince {
            param: param.unwrap_or_default(),
            format,
            overlap: Duration::from_secs(overlap),
        })
    }
}

/// `requests` per `seconds`, paced evenly (bursts of a tenth of the limit at most).
fn rate_of(requests: u64, seconds: u64) -> Rate {
    let limit = u32::try_from(requests).unwrap_or(u32::MAX);
    Rate::new(limit, Duration::from_secs(seconds), (limit / 10).max(1))
}
