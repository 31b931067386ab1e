//! Gorgias: HTTP-integration webhooks (`webhook`), the batch sync of customers, tickets and
//! satisfaction surveys (`sync`), the macro and rule activity of its events feed (`events`),
//! the customer notes and deletions Brevo events write back (`write_back`) and the tickets Brevo
//! automations open (`tickets`).
//!
//! Everything about this helpdesk lives in this folder; this file holds only what other
//! modules need without the rest (the stream names the configuration file checks).

mod api;
pub mod events;
pub mod responses;
pub mod sync;
pub mod tickets;
pub mod vendor;
pub mod webhook;
pub mod write_back;

/// The streams, in the order a run starts them.
pub const STREAMS: [&str; 4] = ["customers", "tickets", "satisfaction_surveys", "events"];

/// The streams that run only when the configuration file switches them on (`sync.events:
/// true`): macro and rule activity is operational detail many teams do not want on a
/// marketing timeline.
pub const OPT_IN: [&str; 1] = ["events"];
