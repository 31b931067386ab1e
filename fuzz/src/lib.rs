//! The checks behind deskbridge's fuzz targets (`fuzz_targets/*.rs` are one-line wrappers).
//!
//! Every `check_*` function takes one raw fuzzer input, feeds it to deskbridge's code exactly as
//! an attacker (webhooks) or an operator (the configuration file) could, and panics only when a
//! property below is broken. The code under test must never panic by itself, on any input.
//!
//! Webhook inputs are written like an HTTP request without its request line, so the corpus
//! stays readable and the fixtures drop straight in:
//!
//! ```text
//! x-hub-signature: sha1=0123…
//! content-type: application/json
//!
//! {"type":"notification_event", …}
//! ```
//!
//! Everything before the first blank line (`\n\n`) is headers, one `name: value` per line (a
//! trailing `\r` is dropped; lines that are not a valid header are skipped, as an HTTP server
//! would refuse them); everything after it is the body, byte for byte. An input without a
//! blank line is all body, with no headers.
//!
//! The `signatures` input is structured with `arbitrary` ([`SignatureInput`]).

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use deskbridge_shared::config::file as config_file;
use deskbridge_shared::config::{Settings, Vars};
use deskbridge_shared::helpdesk::signature::{
    AUTHORIZATION_HEADER, AuthError, INTERCOM_SIGNATURE_HEADER, ZENDESK_SIGNATURE_HEADER,
    ZENDESK_TIMESTAMP_HEADER, sign_intercom, sign_zendesk, verify_bearer, verify_intercom,
    verify_zendesk,
};
use deskbridge_shared::helpdesk::{Parsed, parse_json, parse_webhook, verify_webhook};
use deskbridge_shared::model::{Record, Source};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The test secrets of `scripts/run-local.sh`; the `events/webhook-*.json` deliveries (and so
/// the seed corpus) are signed with them, so seeds reach the "verified" paths.
pub const ZENDESK_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";
pub const INTERCOM_SECRET: &str = "deskbridge-test-intercom-secret";
pub const GORGIAS_TOKEN: &str = "deskbridge-test-gorgias-token";

/// Signature tolerance of the fuzzed settings: wide enough that both Zendesk events in
/// `events/` (signed 10:02:42 and 10:12:08) are fresh at [`now`].
pub const TOLERANCE_SECONDS: u64 = 900;

/// The fixed "current time" of every check (the day the `events/` deliveries were signed).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 8, 10, 5, 0)
        .single()
        .expect("a valid fixed time")
}

/// Settings with all three webhook sources configured, built once.
pub fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let vars = Vars::from_pairs([
            ("ZENDESK_WEBHOOK_SECRET", ZENDESK_SECRET.to_string()),
            ("INTERCOM_CLIENT_SECRET", INTERCOM_SECRET.to_string()),
            ("GORGIAS_WEBHOOK_TOKEN", GORGIAS_TOKEN.to_string()),
            (
                "DESKBRIDGE_SIGNATURE_TOLERANCE_SECONDS",
                TOLERANCE_SECONDS.to_string(),
            ),
        ]);
        Settings::from_vars(&vars).expect("the fuzz settings are valid")
    })
}

/// Splits a webhook input into headers and body (see the crate docs for the layout).
pub fn split_request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let Some(blank) = data.windows(2).position(|w| w == b"\n\n") else {
        return (HeaderMap::new(), data);
    };
    let (head, body) = (&data[..blank], &data[blank + 2..]);
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        // Keep trailing blanks in the value: the verifiers' own trimming is under test too.
        let value = line[colon + 1..].trim_ascii_start();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            // `append`: repeated headers are possible, as on the wire.
            headers.append(name, value);
        }
    }
    (headers, body)
}

/// `body` with one byte changed (or one byte added, when it is empty).
fn tampered(body: &[u8], at: usize) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.is_empty() {
        out.push(b' ');
    } else {
        let i = at % out.len();
        out[i] ^= 0x01;
    }
    out
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("signatures and fixed tokens are valid header values")
}

/// A webhook input of `source`: verification against the configured secret and parsing of the
/// body (parsing runs whatever verification said, so the parser is fuzzed directly too).
///
/// Properties:
/// - neither `verify_webhook` nor `parse_webhook` panics;
/// - a body that is not acceptable JSON fails parsing with exactly `parse_json`'s error;
/// - every accepted record survives the JSON round trip the upsert queue puts it through;
/// - the same headers with a correct signature (token) for this body verify, and the same
///   with one body byte changed (or a wrong token, or a moved timestamp) do not.
pub fn check_webhook(source: &Source, data: &[u8]) {
    let (headers, body) = split_request(data);
    let settings = settings();

    let _ = verify_webhook(settings, source, &headers, body, now());

    let parsed = parse_webhook(settings, source, &headers, body, now());
    if let Err(err) = parse_json(body) {
        assert_eq!(
            parsed,
            Err(err),
            "a body parse_json refuses must be refused"
        );
    }
    if let Ok(Parsed::Accepted(delivery)) = &parsed {
        for record in &delivery.records {
            let json = serde_json::to_vec(record).expect("a record serialises");
            if let Err(e) = serde_json::from_slice::<Record>(&json) {
                panic!("an accepted record does not read back from its queue JSON: {e}");
            }
        }
    }

    signed_round_trip(source, headers, body);
}

fn signed_round_trip(source: &Source, mut headers: HeaderMap, body: &[u8]) {
    let settings = settings();
    let verify =
        |headers: &HeaderMap, body: &[u8]| verify_webhook(settings, source, headers, body, now());
    match source {
        Source::Zendesk => {
            let at = "2025-01-08T10:04:00Z";
            headers.insert(
                ZENDESK_SIGNATURE_HEADER,
                header_value(&sign_zendesk(ZENDESK_SECRET, at, body)),
            );
            headers.insert(ZENDESK_TIMESTAMP_HEADER, header_value(at));
            assert_eq!(verify(&headers, body), Ok(()), "a signed body verifies");
            assert_eq!(
                verify(&headers, &tampered(body, body.len() / 2)),
                Err(AuthError::BadSignature),
                "a changed body must not verify"
            );
            // Still inside the tolerance, but not the signed timestamp.
            headers.insert(
                ZENDESK_TIMESTAMP_HEADER,
                header_value("2025-01-08T10:04:01Z"),
            );
            assert_eq!(
                verify(&headers, body),
                Err(AuthError::BadSignature),
                "the signature is bound to its timestamp"
            );
        }
        Source::Intercom => {
            headers.insert(
                INTERCOM_SIGNATURE_HEADER,
                header_value(&sign_intercom(INTERCOM_SECRET, body)),
            );
            assert_eq!(verify(&headers, body), Ok(()), "a signed body verifies");
            assert_eq!(
                verify(&headers, &tampered(body, body.len() / 2)),
                Err(AuthError::BadSignature),
                "a changed body must not verify"
            );
        }
        Source::Gorgias => {
            headers.insert(
                AUTHORIZATION_HEADER,
                header_value(&format!("Bearer {GORGIAS_TOKEN}")),
            );
            assert_eq!(
                verify(&headers, body),
                Ok(()),
                "the configured token verifies"
            );
            headers.insert(
                AUTHORIZATION_HEADER,
                header_value(&format!("Bearer {GORGIAS_TOKEN}x")),
            );
            assert_eq!(
                verify(&headers, body),
                Err(AuthError::BadSignature),
                "a longer token must not verify"
            );
        }
        // Generic sources verify by their configuration's scheme (fuzzed through the config
        // targets); no target feeds an added helpdesk, whose verification is its own code, nor
        // a further account, which verifies as its helpdesk does.
        Source::Generic(_) | Source::Added(_) | Source::Account(_) => {}
    }
}

/// The `signatures` target's input: a secret, a body and raw header values, split by
/// `arbitrary`.
#[derive(Debug, Arbitrary)]
pub struct SignatureInput {
    /// Used as the Zendesk secret, the Intercom client secret and the bearer token.
    pub secret: String,
    /// Raw `X-Zendesk-Webhook-Signature` and `X-Hub-Signature` value.
    pub signature: Vec<u8>,
    /// Raw `X-Zendesk-Webhook-Signature-Timestamp` value.
    pub timestamp: Vec<u8>,
    /// Raw `Authorization` value.
    pub authorization: Vec<u8>,
    /// Signing time minus [`now`], for the Zendesk round trip.
    pub skew_seconds: i32,
    pub tolerance_seconds: u16,
    /// Which body byte the tamper checks change.
    pub flip_at: u16,
    pub body: Vec<u8>,
}

/// Decodes a `signatures` input exactly as `fuzz_target!` does, then checks it.
pub fn check_signatures_bytes(data: &[u8]) {
    if let Ok(input) = SignatureInput::arbitrary_take_rest(Unstructured::new(data)) {
        check_signatures(&input);
    }
}

/// Properties:
/// - the three verifiers never panic on raw header values;
/// - Zendesk: a body signed at `now + skew` verifies iff `|skew| <= tolerance` (else `Stale`),
///   also with blanks around the header value; a changed body, a wrong secret or a moved
///   timestamp gives `BadSignature`;
/// - Intercom: `sign_intercom` gives `sha1=` + 40 hex digits, which verifies in either case;
///   a changed body, a wrong secret or a truncated signature gives `BadSignature`;
/// - bearer: `Bearer <secret>` verifies iff the secret is non-blank visible ASCII (what a
///   header can carry as text); `Bearer <secret>x` never does.
pub fn check_signatures(input: &SignatureInput) {
    let now = now();
    let tolerance = Duration::from_secs(u64::from(input.tolerance_seconds));
    let secret = input.secret.as_str();
    let body = input.body.as_slice();

    // Raw header values, whatever they are.
    let mut raw = HeaderMap::new();
    for (name, value) in [
        (ZENDESK_SIGNATURE_HEADER, &input.signature),
        (INTERCOM_SIGNATURE_HEADER, &input.signature),
        (ZENDESK_TIMESTAMP_HEADER, &input.timestamp),
        (AUTHORIZATION_HEADER, &input.authorization),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            raw.insert(name, value);
        }
    }
    let _ = verify_zendesk(secret, &raw, body, now, tolerance);
    let _ = verify_intercom(secret, &raw, body);
    let _ = verify_bearer(secret, &raw);

    let wrong_secret = format!("{secret}x");
    let changed_body = tampered(body, usize::from(input.flip_at));

    // Zendesk round trip.
    let skew = TimeDelta::seconds(i64::from(input.skew_seconds));
    let signed_at = now + skew;
    let timestamp = signed_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let signature = sign_zendesk(secret, &timestamp, body);
    let zendesk = |signature: &str, timestamp: &str, secret: &str, body: &[u8]| {
        let mut h = HeaderMap::new();
        h.insert(ZENDESK_SIGNATURE_HEADER, header_value(signature));
        h.insert(ZENDESK_TIMESTAMP_HEADER, header_value(timestamp));
        verify_zendesk(secret, &h, body, now, tolerance)
    };
    let fresh = skew.abs().to_std().is_ok_and(|s| s <= tolerance);
    let expected = if fresh { Ok(()) } else { Err(AuthError::Stale) };
    assert_eq!(zendesk(&signature, &timestamp, secret, body), expected);
    assert_eq!(
        zendesk(&format!("  {signature}\t"), &timestamp, secret, body),
        expected,
        "blanks around the signature are ignored"
    );
    if fresh {
        assert_eq!(
            zendesk(&signature, &timestamp, secret, &changed_body),
            Err(AuthError::BadSignature),
            "a changed body must not verify"
        );
        assert_eq!(
            zendesk(&signature, &timestamp, &wrong_secret, body),
            Err(AuthError::BadSignature),
            "another secret must not verify"
        );
        // One second towards `now` (or past it): still fresh unless the tolerance is zero,
        // and not the signed timestamp.
        let step = if skew <= TimeDelta::zero() { 1 } else { -1 };
        let moved_skew = skew + TimeDelta::seconds(step);
        let moved = (now + moved_skew).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let expected = if moved_skew.abs().to_std().is_ok_and(|s| s <= tolerance) {
            Err(AuthError::BadSignature)
        } else {
            Err(AuthError::Stale)
        };
        assert_eq!(
            zendesk(&signature, &moved, secret, body),
            expected,
            "a moved timestamp must not verify"
        );
    }

    // Intercom round trip.
    let signature = sign_intercom(secret, body);
    assert!(
        signature.len() == 45
            && signature.starts_with("sha1=")
            && signature[5..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "sign_intercom gives sha1=<40 lower-case hex>: {signature:?}"
    );
    let intercom = |signature: &str, secret: &str, body: &[u8]| {
        let mut h = HeaderMap::new();
        h.insert(INTERCOM_SIGNATURE_HEADER, header_value(signature));
        verify_intercom(secret, &h, body)
    };
    assert_eq!(intercom(&signature, secret, body), Ok(()));
    assert_eq!(
        intercom(&signature.to_ascii_uppercase(), secret, body),
        Ok(())
    );
    assert_eq!(
        intercom(&signature, secret, &changed_body),
        Err(AuthError::BadSignature),
        "a changed body must not verify"
    );
    assert_eq!(
        intercom(&signature, &wrong_secret, body),
        Err(AuthError::BadSignature),
        "another secret must not verify"
    );
    assert_eq!(
        intercom(&signature[..44], secret, body),
        Err(AuthError::BadSignature),
        "a truncated signature must not verify"
    );

    // Bearer tokens.
    let bearer = |value: &str| {
        HeaderValue::from_str(value).ok().map(|v| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION_HEADER, v);
            verify_bearer(secret, &h)
        })
    };
    let carried = secret.bytes().all(|b| b == b'\t' || (32..127).contains(&b));
    if let Some(result) = bearer(&format!("Bearer {secret}")) {
        let expected = if carried && !secret.trim().is_empty() {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        };
        assert_eq!(result, expected, "Bearer <token>");
    }
    if let Some(result) = bearer(&format!("bearer {secret}x")) {
        assert_eq!(
            result,
            Err(AuthError::BadSignature),
            "a longer token must not verify"
        );
    }
}

/// Properties of `config_file::parse` on any UTF-8 text: no panic; a refusal names at least
/// one problem, and every problem and warning renders.
pub fn check_config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config_file::parse("fuzz.yaml", text) {
        Ok(config) => {
            for warning in &config.warnings {
                let _ = warning.at("fuzz.yaml");
            }
        }
        Err(err) => {
            assert!(!err.problems.is_empty(), "a refusal names its problems");
            let _ = err.to_string();
        }
    }
}

/// Replays the committed corpus (and any `fuzz/artifacts/`) through the checks on the plain
/// stable toolchain: `cargo test --manifest-path fuzz/Cargo.toml`.
#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut count = 0;
        for dir in [
            root.join("corpus").join(target),
            root.join("artifacts").join(target),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("a corpus file");
                eprintln!("{}", path.display());
                check(&data);
                count += 1;
            }
        }
        count
    }

    #[test]
    fn zendesk_corpus() {
        assert!(replay("zendesk_webhook", |d| check_webhook(&Source::Zendesk, d)) > 0);
    }

    #[test]
    fn intercom_corpus() {
        assert!(replay("intercom_webhook", |d| check_webhook(&Source::Intercom, d)) > 0);
    }

    #[test]
    fn gorgias_corpus() {
        assert!(replay("gorgias_webhook", |d| check_webhook(&Source::Gorgias, d)) > 0);
    }

    #[test]
    fn signatures_corpus() {
        assert!(replay("signatures", check_signatures_bytes) > 0);
    }

    #[test]
    fn config_file_corpus() {
        assert!(replay("config_file", check_config_file) > 0);
    }

    #[test]
    fn seeds_reach_the_verified_paths() {
        // The event seeds carry real signatures: they must verify, or the corpus has gone stale.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (source, file) in [
            (Source::Zendesk, "zendesk_webhook/event-ticket-created.http"),
            (
                Source::Intercom,
                "intercom_webhook/event-contact-created.http",
            ),
            (Source::Gorgias, "gorgias_webhook/event-ticket-closed.http"),
        ] {
            let data = std::fs::read(root.join(file)).expect("seed");
            let (headers, body) = split_request(&data);
            assert_eq!(
                verify_webhook(settings(), &source, &headers, body, now()),
                Ok(()),
                "{file}"
            );
            assert!(
                matches!(
                    parse_webhook(settings(), &source, &headers, body, now()),
                    Ok(Parsed::Accepted(_))
                ),
                "{file}"
            );
        }
    }
}
