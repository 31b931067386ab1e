//! Intercom: signed webhooks (`webhook`), the batch sync of contacts, conversations and
//! company changes (`sync`, `companies`), the contact fields written back from Brevo
//! (`write_back`), and the tickets Brevo automations open (`tickets`).
//!
//! Everything about this helpdesk lives in this folder; this file holds only what other
//! modules need without the rest (the stream names the configuration file checks).

mod companies;
mod conversation;
mod data_events;
/// Intercom's API on wiremock, for the tests of every crate (feature `testkit`).
#[cfg(feature = "testkit")]
pub mod fake;
mod fields;
pub mod sync;
mod tags;
pub mod tickets;
pub mod vendor;
pub mod webhook;
pub mod write_back;

/// The streams, in the order a run starts them.
pub const STREAMS: [&str; 3] = ["contacts", "conversations", "companies"];

/// The streams (and `sync` switches) that run only when the configuration file switches them
/// on: `companies` scrolls over every company each run, `events` costs a call per changed
/// contact.
pub const OPT_IN: [&str; 2] = ["companies", "events"];
