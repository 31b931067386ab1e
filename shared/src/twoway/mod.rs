//! Two-way: Brevo back into the helpdesks.
//!
//! Brevo's marketing webhooks (`POST /webhooks/brevo`, bearer `BREVO_WEBHOOK_TOKEN`) are read
//! by [`inbound`] into [`WriteBack`]s; the webhook function queues them on the upsert queue as a
//! [`WriteBackJob`], and the upsert function carries them out through [`WriteBackApi`]
//! ([`HelpdeskWriteBack`] over the helpdesk APIs), as the `brevo_to_helpdesk` block of the
//! configuration file says:
//!
//! | Brevo event | Zendesk | Intercom | Gorgias |
//! |---|---|---|---|
//! | `unsubscribed`, `spam` | user tag `brevo_unsubscribed` added | `unsubscribed_from_emails: true` | note line "Brevo: unsubscribed from marketing emails" added to the customer |
//! | `hardBounce` / `hard_bounce` | user tag `brevo_hard_bounce` added | custom attribute `brevo_hard_bounce: true` | note line "Brevo: email address hard-bounced" added |
//! | `contactDeleted` / `contact_deleted` (only with `on_contact_deleted: delete`; off by default) | end-users deleted (`DELETE /api/v2/users/{id}`; agents and admins never) | contacts deleted (`DELETE /contacts/{id}`) | customers deleted (`DELETE /api/customers/{id}`) |
//!
//! Events that carry `api_key_name` equal to `BREVO_API_KEY_NAME` are deskbridge's own writes
//! coming back, and are ignored. A `contactDeleted` is acknowledged and ignored unless some
//! helpdesk's `on_contact_deleted` is `delete`. `contactUpdated` and `listAddition` are
//! accepted and ignored: contact updates are not written back.
//!
//! A Brevo automation's webhook step (`POST /actions/<helpdesk>/tickets`, bearer
//! `DESKBRIDGE_ACTIONS_TOKEN`) asks for a ticket: [`action`] reads it into a [`TicketRequest`],
//! queued the same way (a [`WriteBackJob`] with `tickets`), and opened once through
//! [`WriteBackApi::open_ticket`]:
//!
//! | helpdesk | ticket | found again before the create by |
//! |---|---|---|
//! | Zendesk | `POST /api/v2/tickets.json`, requester by email and name | `external_id` (`GET /api/v2/tickets.json?external_id=`) |
//! | Intercom | `POST /tickets` of the configured `ticket_type_id`, contact by email | the key on the description's last line (`POST /tickets/search`) |
//! | Gorgias | `POST /api/tickets`, customer by email, one incoming message | `external_id` (`GET /api/tickets?external_id=`) |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Source;

pub mod action;
pub mod inbound;
mod open;
pub mod write;

pub use action::{ActionError, TicketRequest, read_ticket};
pub use inbound::{FORGET_OFF, Ignored, Inbound, parse_webhook};
pub use write::{HelpdeskOutcome, HelpdeskWriteBack, TicketOpened, WriteBackApi, Written};

/// The path segment of a Brevo automation's ticket requests: `/actions/<helpdesk>/tickets`.
pub const ACTIONS: &str = "actions";

/// The path segment of Brevo's webhooks: `/webhooks/brevo`.
pub const BREVO: &str = "brevo";

/// Brevo as the webhook function names it in metric dimensions and delivery keys
/// (`delivery#brevo#<id>`). It is not a helpdesk: nothing syncs from it.
pub fn brevo_source() -> Source {
    Source::Added(BREVO.to_string())
}

/// What a Brevo event asks of the helpdesks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The person unsubscribed or marked an email as spam: mail them no more.
    Unsubscribe,
    /// Mail to the person's address bounced for good.
    HardBounce,
    /// The person's Brevo contact was deleted: the helpdesks configured to (`on_contact_deleted:
    /// delete`) delete the person with the email.
    Forget,
}

/// One Brevo event to write back into the helpdesks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBack {
    /// Stable id of the event (see [`inbound`]): the same however often Brevo delivers it.
    pub id: String,
    pub action: Action,
    /// The Brevo event as deskbridge names it: `unsubscribed`, `spam`, `hard_bounce` or
    /// `contact_deleted`.
    pub event: String,
    /// The person's email, trimmed and lower-cased.
    pub email: String,
    /// When it happened (`ts_event`, else `ts`), when Brevo said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// One Brevo delivery's write-backs, as a message of the upsert queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBackJob {
    /// `brevo:<delivery id>`.
    pub id: String,
    pub received_at: DateTime<Utc>,
    /// The webhook request's id, carried to the helpdesk calls' logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub write_backs: Vec<WriteBack>,
    /// Tickets a Brevo automation asked for (`/actions/<helpdesk>/tickets`); one at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<TicketRequest>,
}

/// The queue body: the job under one key, `{"brevo_write_back": {…}}`, which no
/// [`Job`](crate::model::Job) body has, so the upsert function tells the two apart.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Queued {
    brevo_write_back: WriteBackJob,
}

impl WriteBackJob {
    /// The job as a queue message body.
    pub fn to_body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Queued {
            brevo_write_back: self.clone(),
        })
    }

    /// The job a queue message body holds, if it holds one.
    pub fn from_body(body: &str) -> Option<WriteBackJob> {
        serde_json::from_str::<Queued>(body)
            .ok()
            .map(|q| q.brevo_write_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips_through_its_body_and_no_other_body_reads_as_one() {
        let job = WriteBackJob {
            id: "brevo:abc".into(),
            received_at: Utc::now(),
            correlation_id: Some("req-1".into()),
            write_backs: vec![WriteBack {
                id: "unsubscribed:h:1:-:1".into(),
                action: Action::Unsubscribe,
                event: "unsubscribed".into(),
                email: "jane@example.com".into(),
                occurred_at: None,
            }],
            tickets: Vec::new(),
        };
        let body = job.to_body().expect("serialises");
        assert!(body.starts_with("{\"brevo_write_back\":"), "{body}");
        assert_eq!(WriteBackJob::from_body(&body), Some(job));
        assert_eq!(WriteBackJob::from_body("{}"), None);
        assert_eq!(
            WriteBackJob::from_body(r#"{"id":"zendesk:1","source":"zendesk","records":[]}"#),
            None
        );
        assert_eq!(brevo_source().to_string(), "brevo");
    }
}
