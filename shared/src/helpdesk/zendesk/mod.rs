//! Zendesk: signed webhooks (`webhook`), OAuth and API-token authentication (`auth`), the
//! batch sync of users, tickets, satisfaction ratings and organization changes (`sync`,
//! `org_changes`), the user tags written back from Brevo (`write_back`) and the tickets Brevo
//! automations open (`tickets`).
//!
//! Everything about this helpdesk lives in this folder; this file holds only what other
//! modules need without the rest (the stream names the configuration file checks).

pub mod auth;
mod credentials;
mod org_changes;
pub mod organizations;
mod records;
pub mod sync;
pub mod tickets;
pub mod vendor;
pub mod webhook;
pub mod write_back;

/// The streams, in the order a run starts them.
pub const STREAMS: [&str; 4] = ["users", "tickets", "satisfaction_ratings", "organizations"];
