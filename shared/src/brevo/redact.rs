//! Masking of identifiers inside free text (Brevo error messages, parse errors, request bodies)
//! before it reaches a log line.

use crate::identity::mask;

/// Characters that separate tokens: whitespace plus JSON and prose punctuation. `@`, `+`, `.`
/// and `-` are not separators, so emails and phone numbers stay whole tokens.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\''
                | '`'
                | ','
                | ';'
                | ':'
                | '{'
                | '}'
                | '['
                | ']'
                | '('
                | ')'
                | '<'
                | '>'
                | '='
                | '\\'
        )
}

/// Whether a token looks like an email or a phone number. Deliberately eager: masking a long
/// number that was not a phone costs a little readability, leaking a phone costs more.
fn is_identifier(token: &str) -> bool {
    if token.contains('@') {
        return true;
    }
    let digits = token.chars().filter(char::is_ascii_digit).count();
    let phone_chars = token
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    phone_chars && ((token.starts_with('+') && digits >= 7) || digits >= 10)
}

/// Replaces every email-like or phone-like token of `text` by its [`mask`].
///
/// ```
/// use deskbridge_shared::brevo::redact;
/// let line = redact(r#"{"email":"Jane@Example.com","attributes":{"SMS":"+14155552671","PLAN":"pro"}}"#);
/// assert!(!line.contains("Jane") && !line.contains("4155552671"));
/// assert!(line.contains("PLAN") && line.contains("pro"));
/// ```
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if is_identifier(token) {
            out.push_str(&mask(token));
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars() {
        if is_separator(c) {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_phones_are_masked_everything_else_kept() {
        let msg = "Unable to create contact, email jane@example.com is already associated (SMS 0033612345678)";
        let r = redact(msg);
        assert!(!r.contains("jane@example.com"), "{r}");
        assert!(!r.contains("0033612345678"), "{r}");
        assert!(r.starts_with("Unable to create contact, email h:"), "{r}");
        assert_eq!(
            redact("list 12 not found; date 2025-01-08"),
            "list 12 not found; date 2025-01-08"
        );
    }
}
