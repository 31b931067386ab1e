//! Normalisation of the identifiers Brevo matches contacts on, and masking for logs.

use rlibphonenumber::enums::Region;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat};
use sha2::{Digest, Sha256};

/// Trims and lower-cases an email; `None` when it is empty or has no `@` between two parts.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == ';')
        || domain.contains('@')
    {
        return None;
    }
    Some(email)
}

/// Error for a phone number that cannot be put in E.164 form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number could not be parsed")]
    Unparseable,
    #[error("phone number is not a valid number for its country")]
    Invalid,
    #[error("unknown default region `{0}` (expected an ISO 3166 code such as US or GB)")]
    UnknownRegion(String),
}

/// A region phone numbers without a country code are read in (`US`, `GB`).
pub type PhoneRegion = Region;

/// Parses an ISO 3166-1 alpha-2 region code (`US`, `gb`) that has phone-number metadata.
pub fn parse_region(code: &str) -> Result<PhoneRegion, PhoneError> {
    let unknown = || PhoneError::UnknownRegion(code.to_string());
    let region = Region::from_code(code.trim()).map_err(|_| unknown())?;
    // Any two letters make a `Region`; only those with a calling code are real ones.
    PHONE_NUMBER_UTIL
        .get_country_code_for_region(region)
        .filter(|code| *code > 0)
        .map(|_| region)
        .ok_or_else(unknown)
}

/// Normalises a phone number to E.164 (`+14155552671`), using `default_region` for numbers
/// written without a country code. A leading `00` is read as the international prefix.
pub fn normalize_phone(
    raw: &str,
    default_region: Option<PhoneRegion>,
) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Unparseable);
    }
    let candidate = match trimmed.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => trimmed.to_string(),
    };
    let number = PHONE_NUMBER_UTIL
        .parse(&candidate, default_region)
        .map_err(|_| PhoneError::Unparseable)?;
    if !number.is_valid() {
        return Err(PhoneError::Invalid);
    }
    Ok(number.format_as(PhoneNumberFormat::E164).into_owned())
}

/// Splits a full name into first and last name: the last word is the last name.
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let words: Vec<&str> = full.split_whitespace().collect();
    match words.as_slice() {
        [] => (None, None),
        [one] => (Some((*one).to_string()), None),
        [first @ .., last] => (Some(first.join(" ")), Some((*last).to_string())),
    }
}

/// A log-safe stand-in for an email or phone: a short stable hash, so one person's log lines
/// can be followed without the identifier appearing in clear.
pub fn mask(value: &str) -> String {
    let digest = Sha256::digest(value.trim().to_lowercase().as_bytes());
    format!("h:{}", hex::encode(&digest[..6]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Jane.Doe@Example.COM "),
            Some("jane.doe@example.com".into())
        );
        assert_eq!(normalize_email("nobody"), None);
        assert_eq!(normalize_email("a@b"), None);
        assert_eq!(normalize_email("a b@example.com"), None);
        assert_eq!(normalize_email(""), None);
    }

    #[test]
    fn phones_become_e164() {
        let us = parse_region("us").ok();
        assert_eq!(
            normalize_phone("+1 (415) 555-2671", None).as_deref(),
            Ok("+14155552671")
        );
        assert_eq!(
            normalize_phone("(415) 555-2671", us).as_deref(),
            Ok("+14155552671")
        );
        assert_eq!(
            normalize_phone("0044 20 7946 0958", None).as_deref(),
            Ok("+442079460958")
        );
        assert_eq!(
            normalize_phone("+44 20 7946 0958", us).as_deref(),
            Ok("+442079460958")
        );
        assert!(normalize_phone("hello", us).is_err());
        assert!(normalize_phone("+1 555", None).is_err());
        assert!(parse_region("XX").is_err());
        assert!(parse_region("001").is_err());
        assert!(parse_region("USA").is_err());
    }

    #[test]
    fn national_numbers_are_read_in_the_default_region() {
        let de = parse_region(" de ").ok();
        assert_eq!(
            normalize_phone("030 901820", de).as_deref(),
            Ok("+4930901820")
        );
        let fr = parse_region("FR").ok();
        assert_eq!(
            normalize_phone("01 42 68 53 00", fr).as_deref(),
            Ok("+33142685300")
        );
        // Without a region a national number has no country to belong to.
        assert_eq!(
            normalize_phone("01 42 68 53 00", None),
            Err(PhoneError::Unparseable)
        );
        // A number that is too short for its country is not valid there.
        assert_eq!(normalize_phone("+33 1 42", None), Err(PhoneError::Invalid));
    }

    #[test]
    fn names_split_on_the_last_word() {
        assert_eq!(
            split_name("Jane Doe"),
            (Some("Jane".into()), Some("Doe".into()))
        );
        assert_eq!(
            split_name("Mary Ann van Dyke"),
            (Some("Mary Ann van".into()), Some("Dyke".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
        assert_eq!(split_name("   "), (None, None));
    }

    #[test]
    fn masks_hide_the_value_and_are_stable() {
        let m = mask("Jane@Example.com");
        assert!(!m.contains("jane"));
        assert_eq!(m, mask(" jane@example.com"));
    }
}
