//! What goes over the wire to Brevo and comes back, without the HTTP: request bodies, path
//! encoding, and the per-item answer of a batch. The client and the dry-run client share these,
//! so a dry run prints exactly what would be sent.

use serde_json::{Value, json};

use super::redact::redact;
use super::{BrevoError, ContactKey, ContactUpsert};

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (attribute names are `[A-Z0-9_]`, but never trust that).
pub(crate) fn path_segment(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, PATH_SEGMENT).to_string()
}

/// The `{identifier}?identifierType=…` part of `/contacts/{identifier}` for `key`.
pub(crate) fn contact_path(key: &ContactKey) -> String {
    match key {
        ContactKey::Email(e) => format!("{}?identifierType=email_id", path_segment(e)),
        ContactKey::ExtId(x) => format!("{}?identifierType=ext_id", path_segment(x)),
    }
}

/// Body of `POST /contacts/lists/{id}/contacts/{add,remove}` for one contact.
pub(crate) fn list_body(key: &ContactKey) -> Value {
    match key {
        ContactKey::Email(e) => json!({ "emails": [e] }),
        ContactKey::ExtId(x) => json!({ "extIds": [x] }),
    }
}

/// Body of `POST /contacts/import` (jsonBody variant).
pub(crate) fn import_body(contacts: &[ContactUpsert], list_ids: &[i64]) -> Value {
    let rows: Vec<Value> = contacts
        .iter()
        .map(|c| {
            let mut row = serde_json::Map::new();
            if let Some(e) = &c.email {
                row.insert("email".into(), json!(e));
            }
            if let Some(x) = &c.ext_id {
                row.insert("ext_id".into(), json!(x));
            }
            row.insert("attributes".into(), json!(c.attributes));
            Value::Object(row)
        })
        .collect();
    json!({
        "jsonBody": rows,
        "listIds": list_ids,
        "updateExistingContacts": true,
        "emptyContactsAttributes": false,
    })
}

/// Reads the per-event errors of a `207` from `POST /v3/events/batch`.
///
/// Brevo documents the 207 (changelog 2026-03-03) but not its body, so this accepts the usual
/// shapes: an array under `errors`, `failed`, `failures`, `invalid_events`/`invalidEvents` or
/// `results`, whose items carry the event's position (`index`, `event_index`, `eventIndex` or
/// `position`) and `code` / `message` (or `error`). Items reporting success are ignored.
pub(crate) fn batch_errors(body: &Value, len: usize) -> Vec<(usize, BrevoError)> {
    const LISTS: [&str; 6] = [
        "errors",
        "failed",
        "failures",
        "invalid_events",
        "invalidEvents",
        "results",
    ];
    const INDEX: [&str; 4] = ["index", "event_index", "eventIndex", "position"];
    let mut out = Vec::new();
    for items in LISTS
        .iter()
        .filter_map(|k| body.get(k))
        .filter_map(Value::as_array)
    {
        for item in items {
            let ok = item.get("success").and_then(Value::as_bool) == Some(true)
                || item
                    .get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("success"));
            let index = INDEX
                .iter()
                .find_map(|k| item.get(k).and_then(Value::as_u64))
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < len);
            let (false, Some(index)) = (ok, index) else {
                continue;
            };
            let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
            let code = text("code").unwrap_or_else(|| "invalid_parameter".into());
            let message = redact(
                &text("message")
                    .or_else(|| text("error"))
                    .unwrap_or_default(),
            );
            // An item may carry its own HTTP status (`status` or `statusCode`).
            let status = ["status", "statusCode"]
                .iter()
                .find_map(|k| item.get(k).and_then(Value::as_u64));
            let error = if item_is_transient(status, &code) {
                BrevoError::Transient(format!("event {index} of a batch: {code} {message}"))
            } else {
                BrevoError::Rejected {
                    status: 207,
                    code,
                    message,
                }
            };
            if !out.iter().any(|(i, _)| *i == index) {
                out.push((index, error));
            }
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

/// Whether one refused item of a 207 can succeed if sent again: its own status says Brevo was
/// busy or failing (429, 5xx), or its code names such a condition. Anything else (a bad name, an
/// unknown contact) would be refused again.
fn item_is_transient(status: Option<u64>, code: &str) -> bool {
    const TRANSIENT: [&str; 5] = [
        "too_many_requests",
        "rate_limited",
        "internal_error",
        "service_unavailable",
        "timeout",
    ];
    status.is_some_and(|s| s == 429 || (500..600).contains(&s))
        || TRANSIENT.iter().any(|c| code.eq_ignore_ascii_case(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_errors_read_common_shapes() {
        let body = json!({"errors":[{"index":1,"code":"invalid_parameter","message":"bad event_name"},{"index":9,"message":"out of range"}]});
        let errs = batch_errors(&body, 3);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, 1);
        let results = json!({"results":[{"eventIndex":0,"status":"success"},{"eventIndex":2,"status":"error","error":"x"}]});
        assert_eq!(
            batch_errors(&results, 3)
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn batch_items_that_can_succeed_later_are_transient() {
        let body = json!({"errors":[
            {"index":0,"code":"invalid_parameter","message":"bad event_name"},
            {"index":1,"code":"too_many_requests","message":"slow down"},
            {"index":2,"status":503,"message":"try later"}
        ]});
        let errs = batch_errors(&body, 3);
        assert_eq!(errs.len(), 3);
        assert!(!errs[0].1.is_retryable());
        assert!(errs[1].1.is_retryable());
        assert!(errs[2].1.is_retryable());
    }

    #[test]
    fn contacts_are_addressed_by_email_or_ext_id() {
        assert_eq!(
            contact_path(&ContactKey::Email("jane+x@example.com".into())),
            "jane%2Bx%40example.com?identifierType=email_id"
        );
        assert_eq!(
            contact_path(&ContactKey::ExtId("intercom:abc".into())),
            "intercom%3Aabc?identifierType=ext_id"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("ZENDESK_ID"), "ZENDESK_ID");
        assert_eq!(path_segment("A B/C"), "A%20B%2FC");
        assert_eq!(path_segment("a-b.c_d~e%"), "a-b.c_d~e%25");
        assert_eq!(path_segment("É"), "%C3%89");
    }
}
