//! The settings variables (the environment laid over the credentials secret's keys) and the
//! error of a setting that is missing or invalid. A leaf: everything that reads variables can
//! use it without depending on the settings built from them.

use std::collections::HashMap;

/// Where setting values come from: the process environment, overlaid on the secret's keys.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, String>,
    /// The configuration text when `DESKBRIDGE_CONFIG` names a Secrets Manager secret
    /// (`secretsmanager:ARN`), read by [`crate::aws::load_vars`]; `None` when it does not.
    config_text: Option<String>,
}

impl Vars {
    /// The process environment only.
    pub fn from_env() -> Self {
        Vars {
            values: std::env::vars().collect(),
            config_text: None,
        }
    }

    /// Explicit values (tests, and the secret merged under the environment).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Vars {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            config_text: None,
        }
    }

    /// Adds `secret` values for keys the environment does not set (the environment wins).
    pub fn with_fallback(mut self, secret: HashMap<String, String>) -> Self {
        for (k, v) in secret {
            self.values.entry(k).or_insert(v);
        }
        self
    }

    /// With the configuration text that `DESKBRIDGE_CONFIG` (`secretsmanager:ARN`) names.
    pub fn with_config_text(mut self, text: impl Into<String>) -> Self {
        self.config_text = Some(text.into());
        self
    }

    /// The configuration text read from the secret `DESKBRIDGE_CONFIG` names, if it was read.
    pub fn config_text(&self) -> Option<&str> {
        self.config_text.as_deref()
    }

    /// A non-empty value.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

/// An invalid setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// [`ConfigError::Invalid`] of a variable whose name is made at run time (an account's).
    #[error("{name} is not valid: {reason}")]
    InvalidVariable { name: String, reason: String },
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("reading the secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
    #[error("configuration file: {0}")]
    File(String),
}
