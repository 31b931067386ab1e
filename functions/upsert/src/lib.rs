//! The upsert function: reads [`Job`]s from the upsert queue and writes them to Brevo.
//!
//! Per record: look the person up in the helpdesk when the delivery only named them by id,
//! settle which contact is the person's (a contact moves when its email appears or changes),
//! upsert the contact (`POST /v3/contacts`, `updateEnabled: true`), take them off the lists of
//! removed tags, and send each mapped support event once (deduped through the state store).
//!
//! Failures are reported per message (SQS `ReportBatchItemFailures`):
//! - retryable (Brevo rate limit or outage after the client's own retries, helpdesk outage,
//!   state store unavailable): the message id goes into [`BatchReport::failed`] and SQS
//!   redelivers it. Work already done is safe to repeat: upserts are idempotent, list removals
//!   too, and sent events are remembered in the state store;
//! - final (Brevo rejected a request, a record has no identifier, the body is not a job):
//!   logged with masked identifiers, counted, and the message is not retried, since retrying
//!   cannot help; it goes to the dead-letter queue with its reason.
//!
//! Retries of single Brevo calls (429 waits, transient backoff) live in the Brevo client, not
//! here; the only retry this handler does is the SMS-conflict one: an upsert refused because the
//! number belongs to another contact is sent again without `SMS` (never with `forceMerge`, which
//! deletes a contact).
//!
//! Jobs of the batch sync (`Origin::Sync`, up to 50 records each) take a batch path instead, so a
//! backfill of N contacts costs about N/500 Brevo calls rather than N: all sync messages of one
//! Lambda batch are written together, contacts with an email through one `/v3/contacts/import`
//! per (source, list-id set) and events through `/v3/events/batch`, up to 200 a call (steps in
//! `Upserter::process_sync`). Brevo's import requires a list: a source without a configured
//! all-contacts list gets the default list "deskbridge — <source>" (`lists`). Contacts an import
//! cannot carry (no email, unsubscribed), and every contact when default lists are switched off
//! and none is configured, fall back to single upserts.
//! Webhook jobs keep the per-record path above (fast, per-contact errors, SMS-conflict retry).
//!
//! Both paths plan each record with [`deskbridge_shared::plan`] (a pure function of the record,
//! its contact's ledger and the mapping) and carry the plan out. The modules, by role:
//! - `message`: SQS glue, the outage gate's hold, deadlines, retries and dead letters;
//! - `resolve`: helpdesk look-ups of people named only by id;
//! - `contact_ledger`: the record merged into its contact's ledger, then planned;
//! - `execute`: one record's plan carried out (the per-record path);
//! - `import`: the sync jobs of a batch together (imports, single upserts, event batches);
//! - `lists`: each source's all-contacts list, the configured or the default one;
//! - `claims`: each event sent once (claims, marks, the batch's shared bookkeeping);
//! - `write_back`: Brevo's unsubscribes, spam complaints and hard bounces carried out in the
//!   helpdesks (messages the webhook function queued from `/webhooks/brevo`);
//! - `stats`, [`health`] and `upserter` (the [`Upserter`] and its settings).

mod claims;
mod contact_ledger;
mod execute;
mod forget;
pub mod health;
mod import;
mod lists;
mod message;
mod people;
mod resolve;
mod stats;
mod upserter;
mod write_back;

pub use claims::EVENT_CLAIM_TTL;
pub use deskbridge_shared::queue::{Message, messages_from_sqs};
pub use import::{EVENTS_PER_BATCH, IMPORT_MAX_BYTES, IMPORT_MAX_CONTACTS};
pub use message::{BatchReport, sqs_response};
pub use stats::Stats;
pub use upserter::{CONCURRENCY, Upserter, send_reserve_for};
