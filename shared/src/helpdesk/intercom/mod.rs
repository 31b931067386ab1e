//! Intercom: signed webhooks (`webhook`) and the batch sync of contacts and conversations
//! (`sync`).
//!
//! Everything about this helpdesk lives in this folder; this file holds only what other
//! modules need without the rest (the stream names the configuration file checks).

mod conversation;
/// Intercom's API on wiremock, for the tests of every crate (feature `testkit`).
#[cfg(feature = "testkit")]
pub mod fake;
mod fields;
pub mod sync;
mod tags;
pub mod vendor;
pub mod webhook;

/// The streams, in the order a run starts them.
pub const STREAMS: [&str; 2] = ["contacts", "conversations"];
