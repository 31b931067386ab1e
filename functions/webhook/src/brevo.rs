//! `POST /webhooks/brevo`: Brevo's marketing webhooks, written back into the helpdesks.
//!
//! Brevo signs nothing: a delivery must carry `Authorization: Bearer <BREVO_WEBHOOK_TOKEN>`
//! (compared in constant time). Without the variable the route answers 404, like any source
//! that is not configured. The answers are the other sources': 413 over the size limit, 401 for
//! a missing or wrong token (nothing queued), 400 for a body that is not Brevo events, 200
//! `ignored` when no event asks for a write-back (contact updates and list additions are not
//! acted on; contact deletions only when some helpdesk's `on_contact_deleted` is `delete`,
//! otherwise they are set aside here with a debug line; events caused by deskbridge's own
//! writes, whose `api_key_name` is `BREVO_API_KEY_NAME`, are counted as echoes), 200 `duplicate` for a
//! delivery queued before, 503 when the state store or the queue fails. Otherwise the
//! delivery's write-backs are queued as one [`WriteBackJob`] on the upsert queue, and the
//! answer is 200 only once it is there; the upsert function carries them out.

use chrono::{DateTime, Utc};
use deskbridge_shared::helpdesk::signature;
use deskbridge_shared::model::Source;
use deskbridge_shared::queue::Queue;
use deskbridge_shared::state::{self, StateStore};
use deskbridge_shared::twoway::{self, WriteBackJob};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::{MAX_BODY_BYTES, Outcome, Queued, Rejection, Reply, Webhook};

impl<S: StateStore, Q: Queue> Webhook<S, Q> {
    /// Handles one request to `/webhooks/brevo`.
    pub(crate) async fn handle_brevo(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        let source = twoway::brevo_source();
        let mut reply = self
            .brevo_reply(&source, headers, body, now, correlation_id)
            .await;
        reply.source = Some(source);
        reply
    }

    async fn brevo_reply(
        &self,
        source: &Source,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Reply {
        let inbound = &self.settings.brevo_inbound;
        let Some(token) = inbound.webhook_token.as_deref() else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                "source `brevo` is not configured",
                Rejection::UnknownSource,
            );
        };
        if body.len() > MAX_BODY_BYTES {
            return Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body is larger than 256 KiB",
                Rejection::TooLarge,
            );
        }
        if let Err(e) = signature::verify_bearer(token, headers) {
            warn!(%source, reason = %e, "webhook refused");
            return Reply::error(
                StatusCode::UNAUTHORIZED,
                "signature or token is missing, wrong or stale",
                Rejection::Auth,
            );
        }
        let mut read = match twoway::parse_webhook(body, inbound.api_key_name.as_deref()) {
            Ok(read) => read,
            Err(e) => {
                warn!(%source, reason = %e, "webhook body rejected");
                return Reply::error(StatusCode::BAD_REQUEST, e.to_string(), Rejection::Parse);
            }
        };
        if self.settings.file.brevo_to_helpdesk.deleting().is_empty() {
            let set_aside = read.set_aside_forgets();
            if set_aside > 0 {
                debug!(%source, contact_deletions = set_aside,
                    "brevo contact deletions ignored: no helpdesk has on_contact_deleted: delete");
            }
        }
        for ignored in read
            .ignored
            .iter()
            .filter(|i| i.reason != twoway::FORGET_OFF)
        {
            info!(%source, event = %ignored.event, reason = ignored.reason, "brevo event ignored");
        }
        if read.echoes > 0 {
            info!(%source, echoes = read.echoes,
                "brevo events caused by deskbridge's own writes ignored (api_key_name is BREVO_API_KEY_NAME)");
        }
        let Some(delivery_id) = read.delivery_id() else {
            let ignored: Vec<_> = read
                .ignored
                .iter()
                .map(|i| json!({ "event": i.event, "reason": i.reason }))
                .collect();
            let mut reply = Reply::new(
                StatusCode::OK,
                json!({ "status": "ignored", "echoes": read.echoes, "ignored": ignored }),
                Outcome::Ignored,
            );
            reply.echoes = read.echoes;
            return reply;
        };
        let key = state::delivery_key(source, &delivery_id);
        let job = WriteBackJob {
            id: format!("{source}:{delivery_id}"),
            received_at: now,
            correlation_id,
            write_backs: read.write_backs,
            tickets: Vec::new(),
        };
        let queued = self
            .queue_once(source, &key, || job.to_body().map_err(|e| e.to_string()))
            .await;
        let mut reply = match queued {
            Ok(Queued::Sent) => {
                info!(%source, job = %job.id, write_backs = job.write_backs.len(), "webhook queued");
                Reply::new(
                    StatusCode::OK,
                    json!({ "status": "queued", "job": job.id, "write_backs": job.write_backs.len() }),
                    Outcome::Accepted,
                )
            }
            Ok(Queued::Duplicate) => {
                info!(%source, delivery = %delivery_id, "duplicate delivery");
                Reply::new(
                    StatusCode::OK,
                    json!({ "status": "duplicate" }),
                    Outcome::Deduplicated,
                )
            }
            Err(reply) => reply,
        };
        reply.echoes = read.echoes;
        reply
    }
}
