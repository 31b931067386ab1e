//! `POST /actions/<helpdesk>/tickets`: a Brevo automation's webhook step asks for a ticket in
//! the helpdesk for the contact in the body.
//!
//! The call must carry `Authorization: Bearer <DESKBRIDGE_ACTIONS_TOKEN>` (compared in constant
//! time). Without the variable, for a helpdesk that cannot open tickets (Zendesk, Intercom and
//! Gorgias can) or one the configuration file's `actions` block switches off (Intercom's
//! tickets stay off until the block names their `ticket_type_id`), the route answers 404.
//! Then 413 over the size limit, 401 for a missing or wrong token (nothing queued), 400 for a
//! body without a contact email, 200 `duplicate` for a ticket queued before (same contact,
//! automation and day, or the same `idempotency_key`), 503 when the state store or the queue
//! fails. Otherwise the ticket is queued on the upsert queue as a [`WriteBackJob`] and the
//! answer is 202; the upsert function opens it, once, looking for its `external_id` first.

use chrono::{DateTime, Utc};
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::Queue;
use deskbridge_shared::state::{self, StateStore};
use deskbridge_shared::twoway::{self, WriteBackJob};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tracing::{info, warn};

use crate::{MAX_BODY_BYTES, Outcome, Queued, Rejection, Reply, Webhook};

/// The helpdesk named by an action path (with or without a stage prefix): `zendesk` for
/// `/actions/zendesk/tickets`. `None` for any other shape, or a name outside `[a-z]`.
pub fn action_segment(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    let (_, rest) = trimmed.rsplit_once("/actions/")?;
    let (helpdesk, what) = rest.split_once('/')?;
    let plain = !helpdesk.is_empty() && helpdesk.chars().all(|c| c.is_ascii_lowercase());
    (what == "tickets" && plain).then_some(helpdesk)
}

impl<S: StateStore, Q: Queue> Webhook<S, Q> {
    /// Handles one request to `/actions/{helpdesk}/tickets`.
    pub async fn handle_action(
        &self,
        helpdesk: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        let mut reply = self
            .action_reply(helpdesk, headers, body, now, correlation_id)
            .await;
        reply.source = Some(twoway::brevo_source());
        reply
    }

    async fn action_reply(
        &self,
        helpdesk: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        let Some(token) = self.settings.brevo_inbound.actions_token.as_deref() else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                "actions are not configured (DESKBRIDGE_ACTIONS_TOKEN is not set)",
                Rejection::UnknownSource,
            );
        };
        let actions = &self.settings.file.actions;
        let target = match helpdesk.parse::<Source>() {
            Ok(h @ (Source::Zendesk | Source::Intercom | Source::Gorgias)) => h,
            _ => {
                return Reply::error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no ticket action for `{helpdesk}`; deskbridge opens Zendesk, Intercom \
                         and Gorgias tickets"
                    ),
                    Rejection::UnknownSource,
                );
            }
        };
        let Some(template) = actions.template(&target) else {
            let why = match target {
                Source::Intercom if actions.intercom.ticket_type_id.is_none() => {
                    "tickets for intercom are off until actions.intercom names a ticket_type_id"
                        .to_string()
                }
                _ => format!("tickets for {target} are switched off (actions.{target}.enabled)"),
            };
            return Reply::error(StatusCode::NOT_FOUND, why, Rejection::UnknownSource);
        };
        if body.len() > MAX_BODY_BYTES {
            return Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body is larger than 256 KiB",
                Rejection::TooLarge,
            );
        }
        let source = twoway::brevo_source();
        if let Err(e) = signature::verify_bearer(token, headers) {
            warn!(%source, reason = %e, "action refused");
            return Reply::error(
                StatusCode::UNAUTHORIZED,
                "signature or token is missing, wrong or stale",
                Rejection::Auth,
            );
        }
        let ticket = match twoway::read_ticket(&target, template, body, now) {
            Ok(ticket) => ticket,
            Err(e) => {
                warn!(%source, reason = %e, "action body rejected");
                return Reply::error(StatusCode::BAD_REQUEST, e.to_string(), Rejection::Parse);
            }
        };
        let delivery_id = format!("ticket:{target}:{}", ticket.external_id);
        let key = state::delivery_key(&source, &delivery_id);
        let job = WriteBackJob {
            id: format!("{source}:{delivery_id}"),
            received_at: now,
            correlation_id,
            write_backs: Vec::new(),
            tickets: vec![ticket],
        };
        let external_id = job.tickets[0].external_id.clone();
        match self
            .queue_once(&source, &key, || job.to_body().map_err(|e| e.to_string()))
            .await
        {
            Ok(Queued::Sent) => {
                info!(%source, job = %job.id, helpdesk = %target, "ticket action queued");
                Reply::new(
                    StatusCode::ACCEPTED,
                    json!({ "status": "queued", "job": job.id, "external_id": external_id }),
                    Outcome::Accepted,
                )
            }
            Ok(Queued::Duplicate) => {
                info!(%source, job = %job.id, "duplicate ticket action");
                Reply::new(
                    StatusCode::OK,
                    json!({ "status": "duplicate", "external_id": external_id }),
                    Outcome::Deduplicated,
                )
            }
            Err(reply) => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_segment_reads_the_helpdesk_of_a_ticket_path() {
        assert_eq!(action_segment("/actions/zendesk/tickets"), Some("zendesk"));
        assert_eq!(
            action_segment("/prod/actions/intercom/tickets/"),
            Some("intercom")
        );
        for refused in [
            "/actions/zendesk",
            "/actions/zendesk/users",
            "/actions/Zendesk/tickets",
            "/actions//tickets",
            "/actions/zendesk/tickets/1",
            "/webhooks/zendesk",
        ] {
            assert_eq!(action_segment(refused), None, "{refused}");
        }
    }
}
