//! The `deletions` policy of the configuration file (what each value does: [`super`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `deletions` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deletions {
    /// The contact stays as it is.
    Ignore,
    /// The helpdesk's id and list are taken off the contact.
    #[default]
    Unlink,
    /// The contact is deleted when deskbridge created it and nobody else knows the person.
    Delete,
}

impl Deletions {
    /// The values the configuration file accepts.
    pub const NAMES: [&'static str; 3] = ["ignore", "unlink", "delete"];

    /// The policy a configuration value names.
    pub fn parse(value: &str) -> Option<Deletions> {
        match value.trim().to_ascii_lowercase().as_str() {
            "ignore" => Some(Deletions::Ignore),
            "unlink" => Some(Deletions::Unlink),
            "delete" => Some(Deletions::Delete),
            _ => None,
        }
    }

    /// What the policy does, for `deskbridge plan`.
    pub fn describe(self) -> &'static str {
        match self {
            Deletions::Ignore => {
                "a person deleted in a helpdesk keeps their Brevo contact as it is (logged and \
                 counted)"
            }
            Deletions::Unlink => {
                "a person deleted in a helpdesk loses that helpdesk's id attribute and its \
                 all-contacts list on their Brevo contact; the contact stays"
            }
            Deletions::Delete => {
                "a person deleted in a helpdesk has their Brevo contact deleted when deskbridge \
                 created it and no other helpdesk knows them (else it is unlinked)"
            }
        }
    }
}

impl fmt::Display for Deletions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deletions::Ignore => "ignore",
            Deletions::Unlink => "unlink",
            Deletions::Delete => "delete",
        })
    }
}
