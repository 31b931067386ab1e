//! Fakes of the vendors deskbridge talks to, for the tests of every crate (feature `testkit`,
//! turned on as a dev-dependency feature; the functions are built without it). Each fake is a
//! wiremock server speaking the vendor's documented HTTP shapes, so tests use the real clients
//! against it instead of each building its own.
//!
//! - [`brevo::accepting`]: Brevo answering every write deskbridge makes as Brevo does when it
//!   accepts it, for tests that read what was sent ([`brevo::bodies`], [`brevo::requests_to`],
//!   [`brevo::event_names`]); the `mount_*` functions add its parts to a server one by one (the
//!   writes, the attribute listing, lists and folders, attribute creation, the account);
//! - [`brevo::BrevoModel`]: Brevo keeping contacts (matched by email, then ext_id; moves refused
//!   for an email another contact has; events on the contact they name), for tests of what ends
//!   up in the account;
//! - [`crate::helpdesk::intercom::fake::ContactSearch`]: Intercom's contact search, the
//!   contacts stream's backfill (in the vendor's folder, like everything about a helpdesk).
//!
//! - [`pull::Freshdesk`] and [`pull::HelpScout`]: two REST APIs shaped like those vendors',
//!   for the generic pull sources (`examples/generic-pull.yaml`).
//! - [`tickets::IntercomTickets`] and [`tickets::GorgiasTickets`]: the tickets Brevo
//!   automations open in Intercom and Gorgias, found again as their APIs find them.
//!
//! [`calls`] lists what any of these servers received.

pub mod brevo;
pub mod pull;
pub mod tickets;

use wiremock::MockServer;

/// `METHOD /path` of every request `server` received, in order.
pub async fn calls(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}
