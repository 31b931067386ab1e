//! deskbridge's shared library: the canonical model, the mapping to Brevo, the helpdesk
//! sources, the Brevo client, the AWS-backed state and queue, and the two-way path from Brevo
//! back into the helpdesks (`twoway`).

pub mod aws;
pub mod brevo;
pub mod clock;
pub mod config;
pub mod data_events;
pub mod deletions;
pub mod helpdesk;
pub mod http;
pub mod identity;
pub mod infra;
pub mod ledger;
pub mod mapping;
pub mod memory;
pub mod metrics;
pub mod milestones;
pub mod model;
pub mod people;
pub mod plan;
pub mod queue;
pub mod state;
pub mod sync;
pub mod tags;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod twoway;
