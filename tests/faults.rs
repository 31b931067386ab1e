//! The fault-injection suite: thousands of signed webhook deliveries from Zendesk, Intercom and
//! Gorgias (with redeliveries, re-sends and late observations) and an Intercom backfill over the
//! same customers, through the local runner against moto and wiremock, while Brevo answers 429,
//! 5xx and too late, connections are reset, the helpdesk APIs answer 429 and 500, SQS and
//! DynamoDB calls fail the way AWS documents, and an upsert worker is killed mid-batch. At the
//! end Brevo's state must equal the state the inputs call for: no contact or event lost, no event
//! twice, no attribute older than the newest observation — also after every state item with an
//! expiry is swept (as DynamoDB's TTL would once all of them passed) and one delivery in twenty
//! is redelivered, as a helpdesk might months later. It prints one summary line,
//!
//! `faults: N deliveries, M faults injected, lost L, duplicated D, stale S`
//!
//! and a second one with the seed, the faults by kind and what else was seen.
//!
//! `DESKBRIDGE_FAULTS_SEED` (decimal or 0x-hex) changes the inputs, `DESKBRIDGE_FAULTS_DELIVERIES`
//! their number (default 5,000), `DESKBRIDGE_FAULTS_RATE` the share of failed requests at every
//! fault point (default 0.12). With `RUST_LOG` set, the runner's log goes to the terminal.

mod common;

mod chaos;

use std::io::Write;
use std::time::Duration;

use chaos::world::World;
use chaos::{Answer, Counts, Plan, Rig};

const DEFAULT_SEED: u64 = 0x5EED_0005;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    let raw = std::env::var("DESKBRIDGE_FAULTS_SEED").unwrap_or_default();
    let raw = raw.trim();
    match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    }
    .unwrap_or(DEFAULT_SEED)
}

/// Written to the terminal even when the test harness captures output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_under_faults_reach_brevo_once_and_never_stale() {
    if std::env::var_os("RUST_LOG").is_some() {
        deskbridge_shared::telemetry::init(false);
    }
    let seed = seed();
    let wanted: usize = env_or("DESKBRIDGE_FAULTS_DELIVERIES", 5_000);
    let rate: f64 = env_or("DESKBRIDGE_FAULTS_RATE", 0.12);
    let world = World::generate(seed, wanted, chrono::Utc::now());
    let plan = Plan::at_rate(rate);
    let rig = Rig::start("faults", &world, &plan, seed).await;
    let (run, rig) = rig.run(&world, seed, Duration::from_secs(420)).await;
    let accepted = rig.brevo.accepted();
    let faults = rig.faults.clone();
    rig.stop().await;

    let verdict = chaos::verdict::judge(&world, &accepted);
    let counts: Counts = faults.snapshot();
    let refused: Vec<&Answer> = run
        .answers
        .iter()
        .filter(|a| matches!(a, Answer::Refused(..)))
        .collect();
    let duplicates = run
        .answers
        .iter()
        .filter(|a| **a == Answer::Accepted("duplicate".into()))
        .count();
    let mix = world.mix();
    let total = world.deliveries.len();
    let (injected, ops) = (counts.total_injected(), counts.total_ops());
    report(&format!(
        "faults: {total} deliveries, {injected} faults injected, lost {}, duplicated {}, stale {}",
        verdict.lost(),
        verdict.duplicated(),
        verdict.stale_contacts()
    ));
    let causes = match verdict.duplicated() {
        0 => String::new(),
        _ => format!(
            "; duplicated: {} ({})",
            verdict.duplicate_causes(&faults, Some(run.killed_at)),
            verdict
                .duplicated_events
                .iter()
                .map(|d| {
                    let at = |t: std::time::Instant| {
                        t.saturating_duration_since(run.killed_at).as_secs_f64()
                            - run.killed_at.saturating_duration_since(t).as_secs_f64()
                    };
                    format!(
                        "{} accepted {}x, {:+.1} s to {:+.1} s from the kill",
                        d.event.1,
                        d.times,
                        at(d.first),
                        at(d.last)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    report(&format!(
        "faults: seed {seed:#x} (DESKBRIDGE_FAULTS_SEED), {ops} requests at the fault points, \
         {:.1}% failed: {}; inputs: {} customers, {} redeliveries, {} re-sent under a new id, \
         {} late observations; answered duplicate {duplicates}; {}; dead-lettered {}; \
         unexpected events {}, contacts {}{causes}; {}; sent in {:.0} s, settled {} after {:.0} s; \
         then {} expiring state items swept and {} deliveries redelivered",
        100.0 * injected as f64 / ops.max(1) as f64,
        Counts::list(&counts.injected),
        world.customers.len(),
        mix.redeliveries,
        mix.resent,
        mix.late,
        Counts::list(&counts.observed),
        run.dead_letters,
        verdict.unexpected_events.len(),
        verdict.unexpected_contacts.len(),
        run.kill,
        run.sent_in.as_secs_f64(),
        if run.settled { "yes" } else { "NO" },
        run.took.as_secs_f64(),
        run.swept,
        run.late,
    ));

    assert!(total >= wanted, "{total} deliveries");
    assert!(
        injected * 10 >= ops,
        "at least 10% of the requests failed: {injected} of {ops}"
    );
    assert!(refused.is_empty(), "every delivery accepted: {refused:?}");
    assert!(
        run.settled,
        "the queues drained and Brevo went quiet within the time limit"
    );
    assert!(run.late > 0, "deliveries were redelivered after the sweep");
    assert!(
        verdict.lost() == 0
            && verdict.duplicated() == 0
            && verdict.stale_contacts() == 0
            && verdict.unexpected_events.is_empty()
            && verdict.unexpected_contacts.is_empty(),
        "Brevo's state differs from the inputs':\n{}",
        verdict.examples()
    );
}
