//! `deskbridge replay`: dead-lettered messages back to the queue they came from.

use std::collections::HashSet;
use std::io::Write;

use anyhow::{Context, bail};
use deskbridge_shared::config::Settings;
use deskbridge_shared::model::Origin;
use deskbridge_shared::queue::{InMessage, Queue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::count;
use crate::output::{self, Format, Progress};

/// Which dead-letter queues `replay` empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayQueue {
    Upsert,
    Sync,
    Both,
}

/// One DLQ and the work queue its messages go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayTarget {
    /// `upsert` or `sync`.
    pub name: &'static str,
    pub dlq_url: String,
    pub queue_url: String,
    /// Where the batch sync's jobs go back to instead (the backfill lane, `BACKFILL_QUEUE_URL`),
    /// so a replay of backfill dead letters never queues them ahead of real-time work.
    pub backfill_url: Option<String>,
}

impl ReplayTarget {
    /// The queue a dead letter goes back to: a job of the batch sync to the backfill lane when
    /// there is one, anything else (webhook jobs, bodies that are not jobs) to the work queue.
    pub fn destination(&self, body: &str) -> &str {
        #[derive(Deserialize)]
        struct Lane {
            origin: Option<Origin>,
        }
        let sync =
            serde_json::from_str::<Lane>(body).is_ok_and(|lane| lane.origin == Some(Origin::Sync));
        match (&self.backfill_url, sync) {
            (Some(backfill), true) => backfill,
            _ => &self.queue_url,
        }
    }
}

/// How `replay` reads the DLQs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Count and show, move nothing.
    pub dry_run: bool,
    /// Long-poll wait of each receive; an empty answer after it ends the queue.
    pub wait_seconds: i32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            dry_run: false,
            wait_seconds: 2,
        }
    }
}

/// Messages moved (or, in a dry run, that would move) from one DLQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayCount {
    /// `upsert` or `sync`.
    #[serde(rename = "queue")]
    pub name: &'static str,
    pub dlq_url: String,
    pub queue_url: String,
    pub messages: usize,
    /// In a dry run: the messages that would move, in the order read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_move: Vec<ReplayMessage>,
}

/// A dead letter a dry run saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayMessage {
    pub message_id: String,
    pub receive_count: u32,
    pub body: String,
    /// Why deskbridge dead-lettered it, when it did.
    pub reason: Option<String>,
}

/// The DLQ URL of a work queue from its redrive policy (`deadLetterTargetArn`), for when
/// `UPSERT_DLQ_URL` / `SYNC_DLQ_URL` are not set.
pub async fn dlq_from_redrive_policy(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> anyhow::Result<String> {
    use aws_sdk_sqs::error::DisplayErrorContext;
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))?;
    let policy = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .context("the queue has no redrive policy")?;
    let policy: Value = serde_json::from_str(policy).context("unreadable redrive policy")?;
    let arn = policy
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .context("the redrive policy names no dead-letter queue")?;
    // arn:aws:sqs:<region>:<account>:<name>
    let parts: Vec<&str> = arn.split(':').collect();
    let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
        bail!("unexpected dead-letter queue ARN `{arn}`");
    };
    let found = sqs
        .get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))?;
    found
        .queue_url()
        .map(str::to_string)
        .context("SQS returned no URL for the dead-letter queue")
}

/// The targets of `which`: work queues from the settings, DLQs from `UPSERT_DLQ_URL` /
/// `SYNC_DLQ_URL` (read by `env`: the process environment in the CLI), else from the work
/// queue's redrive policy when `sqs` is given.
pub async fn replay_targets(
    settings: &Settings,
    which: ReplayQueue,
    env: impl Fn(&str) -> Option<String>,
    sqs: Option<&aws_sdk_sqs::Client>,
) -> anyhow::Result<Vec<ReplayTarget>> {
    let wanted: &[(&'static str, &str, &str, Option<&String>)] = &[
        (
            "upsert",
            "UPSERT_QUEUE_URL",
            "UPSERT_DLQ_URL",
            settings.upsert_queue_url.as_ref(),
        ),
        (
            "sync",
            "SYNC_QUEUE_URL",
            "SYNC_DLQ_URL",
            settings.sync_queue_url.as_ref(),
        ),
    ];
    let mut targets = Vec::new();
    for (name, queue_var, dlq_var, queue_url) in wanted {
        let selected = match which {
            ReplayQueue::Both => true,
            ReplayQueue::Upsert => *name == "upsert",
            ReplayQueue::Sync => *name == "sync",
        };
        if !selected {
            continue;
        }
        let queue_url = (*queue_url).cloned().with_context(|| {
            format!("{queue_var} must be set (or name the deployed stack with --stack-name)")
        })?;
        let from_env = env(dlq_var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let dlq_url = match (from_env, sqs) {
            (Some(url), _) => url,
            (None, Some(sqs)) => dlq_from_redrive_policy(sqs, &queue_url)
                .await
                .with_context(|| {
                    format!("{dlq_var} is not set and the DLQ of {queue_var} could not be found")
                })?,
            (None, None) => bail!("{dlq_var} must be set (`deskbridge bootstrap` prints it)"),
        };
        let backfill_url = if *name == "upsert" {
            settings
                .backfill_queue_url
                .clone()
                .filter(|url| *url != queue_url)
        } else {
            None
        };
        targets.push(ReplayTarget {
            name,
            dlq_url,
            queue_url,
            backfill_url,
        });
    }
    Ok(targets)
}

/// A message body as shown in a dry run: one line, at most 80 characters.
fn preview(body: &str) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 80 {
        format!("{}…", flat.chars().take(79).collect::<String>())
    } else {
        flat
    }
}

/// Counts what a replay of `target` would move, without consuming anything: received messages
/// are held (invisible) until the whole DLQ has been seen, so none is counted twice, then made
/// visible again at once.
async fn replay_dry_run(
    queue: &dyn Queue,
    target: &ReplayTarget,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<Vec<ReplayMessage>> {
    let mut held: Vec<InMessage> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let scanned = loop {
        let batch = match queue
            .receive(&target.dlq_url, 10, options.wait_seconds)
            .await
        {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        // Empty, or only messages seen already (held longer than the DLQ's visibility
        // timeout): the whole queue has been seen.
        let new: Vec<InMessage> = batch
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone()))
            .collect();
        if new.is_empty() {
            break Ok(());
        }
        for m in &new {
            writeln!(
                out,
                "  would move {} (received {} times): {}",
                m.message_id,
                m.receive_count,
                preview(&m.body)
            )?;
            if let Some(reason) = &m.reason {
                writeln!(out, "    failed for good: {reason}")?;
            }
        }
        held.extend(new);
    };
    // Release everything, also after a failure; a message not released reappears by itself
    // when its visibility timeout ends, so a failure here loses nothing.
    let mut unreleased = 0;
    for m in &held {
        if queue
            .set_visibility(&target.dlq_url, &m.receipt_handle, 0)
            .await
            .is_err()
        {
            unreleased += 1;
        }
    }
    if unreleased > 0 {
        writeln!(
            out,
            "  {unreleased} messages could not be made visible again; they reappear in the DLQ when their visibility timeout ends"
        )?;
    }
    scanned.with_context(|| format!("reading {}", target.dlq_url))?;
    Ok(held
        .into_iter()
        .map(|m| ReplayMessage {
            message_id: m.message_id,
            receive_count: m.receive_count,
            body: m.body,
            reason: m.reason,
        })
        .collect())
}

/// Moves every message of `target`'s DLQ to its work queue. Each batch is sent first and deleted
/// from the DLQ only once the send succeeded: an interruption loses nothing (at worst a message
/// is sent twice, which the pipeline's dedupe absorbs).
async fn replay_move(
    queue: &dyn Queue,
    target: &ReplayTarget,
    options: &ReplayOptions,
) -> anyhow::Result<usize> {
    let mut moved = 0;
    let progress = Progress::spinner("messages moved");
    progress.set_message(format!("from {}", target.dlq_url));
    let result = async {
        loop {
            let batch = queue
                .receive(&target.dlq_url, 10, options.wait_seconds)
                .await
                .with_context(|| format!("reading {} ({moved} moved so far)", target.dlq_url))?;
            if batch.is_empty() {
                return Ok(moved);
            }
            // Each message back to its lane: sync jobs to the backfill queue when there is one.
            let mut lanes: Vec<(&str, Vec<String>)> = Vec::new();
            for m in &batch {
                let to = target.destination(&m.body);
                match lanes.iter_mut().find(|(url, _)| *url == to) {
                    Some((_, bodies)) => bodies.push(m.body.clone()),
                    None => lanes.push((to, vec![m.body.clone()])),
                }
            }
            for (to, bodies) in &lanes {
                if let Err(e) = queue.send_batch(to, bodies).await {
                    // Put the batch back at once rather than after the visibility timeout; best
                    // effort. What another lane got already is sent again by a later replay,
                    // which the pipeline's dedupe absorbs.
                    for m in &batch {
                        let _ = queue
                            .set_visibility(&target.dlq_url, &m.receipt_handle, 0)
                            .await;
                    }
                    return Err(anyhow::anyhow!(e)).with_context(|| {
                        format!("sending to {to} ({moved} moved so far; this batch stays in the DLQ)")
                    });
                }
            }
            for m in &batch {
                queue
                    .delete(&target.dlq_url, &m.receipt_handle)
                    .await
                    .with_context(|| {
                        format!(
                            "message {} was sent to the work queue but not deleted from the DLQ; a later replay sends it again ({moved} moved so far)",
                            m.message_id
                        )
                    })?;
                moved += 1;
                progress.inc(1);
            }
        }
    }
    .await;
    progress.finish();
    result
}

/// ` (sync jobs to …)` when a target splits its messages by lane.
fn lane_note(target: &ReplayTarget) -> String {
    target
        .backfill_url
        .as_deref()
        .map(|url| format!(" (batch sync jobs to {url})"))
        .unwrap_or_default()
}

/// `deskbridge replay [--dry-run] [--queue upsert|sync|both]`: moves (or counts) dead letters
/// back to their work queue and prints a count per queue.
pub async fn replay(
    queue: &dyn Queue,
    targets: &[ReplayTarget],
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<Vec<ReplayCount>> {
    let mut counts = Vec::new();
    for target in targets {
        if options.dry_run {
            writeln!(out, "{}: reading {}", target.name, target.dlq_url)?;
            let would_move = replay_dry_run(queue, target, options, out).await?;
            writeln!(
                out,
                "{}: {} would move to {}{} (dry run: nothing moved)",
                target.name,
                count(would_move.len(), "message"),
                target.queue_url,
                lane_note(target)
            )?;
            counts.push(ReplayCount {
                name: target.name,
                dlq_url: target.dlq_url.clone(),
                queue_url: target.queue_url.clone(),
                messages: would_move.len(),
                would_move,
            });
        } else {
            let n = replay_move(queue, target, options).await?;
            writeln!(
                out,
                "{}: moved {} from {} to {}{}",
                target.name,
                count(n, "message"),
                target.dlq_url,
                target.queue_url,
                lane_note(target)
            )?;
            counts.push(ReplayCount {
                name: target.name,
                dlq_url: target.dlq_url.clone(),
                queue_url: target.queue_url.clone(),
                messages: n,
                would_move: Vec::new(),
            });
        }
    }
    Ok(counts)
}

/// `deskbridge replay [--dry-run] [--queue Q] [--json] [--stack-name S]`.
pub async fn run(
    stack_name: Option<&str>,
    queue: ReplayQueue,
    dry_run: bool,
    format: Format,
) -> anyhow::Result<()> {
    let needed: &[&str] = match queue {
        ReplayQueue::Both => &["UPSERT_QUEUE_URL", "SYNC_QUEUE_URL"],
        ReplayQueue::Upsert => &["UPSERT_QUEUE_URL"],
        ReplayQueue::Sync => &["SYNC_QUEUE_URL"],
    };
    let (sdk, settings, vars) = crate::settings::load_for(stack_name, "replay", needed).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let targets = replay_targets(&settings, queue, |name| vars.get(name), Some(&sqs)).await?;
    let options = ReplayOptions {
        dry_run,
        ..Default::default()
    };
    let queue = deskbridge_shared::queue::SqsQueue::new(sqs);
    if format == Format::Json {
        let counts = replay(&queue, &targets, &options, &mut std::io::sink()).await?;
        output::write_json(
            &mut std::io::stdout().lock(),
            &serde_json::json!({ "dry_run": dry_run, "queues": counts }),
        )?;
    } else {
        replay(&queue, &targets, &options, &mut std::io::stdout()).await?;
    }
    Ok(())
}
