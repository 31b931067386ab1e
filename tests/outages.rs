//! Long outages on a fast clock: the local runner (the same handlers as Lambda, against moto and
//! wiremock) rides out a 6-hour Brevo outage and a 10-minute DynamoDB throttling storm while
//! signed webhook deliveries keep arriving, with the default retry policy (24-hour horizon,
//! backoff to 5 minutes). The handlers read the time from a clock that runs 240 (or 20) times
//! faster than the wall clock, and every retry delay they ask SQS for is shortened by the same
//! factor, so the proportions stay those of the real outage.
//!
//! Afterwards Brevo's state must equal what the deliveries call for (nothing lost, no event
//! twice, nothing stale), both dead-letter queues must be empty, and the catch-up must keep the
//! Brevo rate limit. Each test prints one line:
//!
//! `outage: brevo 503 for 6h …` / `outage: dynamodb throttled for 10m …`

mod common;

mod chaos;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chaos::time::{FastClock, FastQueue};
use chaos::world::World;
use chaos::{Answer, Plan, Rig, Tune, Vendor};
use deskbridge_shared::queue::{Queue, Redelivery, RetryPolicy, SqsQueue};

/// Brevo requests per second of each upsert worker: the template's default
/// (`BrevoRequestsPerSecond`); the runner's four workers are four instances, 16/s in all.
const RATE: u32 = 4;

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Upsert handlers that read the fast clock and whose retry delays pass at its pace.
fn fast_handlers(clock: Arc<FastClock>, sqs: aws_sdk_sqs::Client) -> Tune {
    Arc::new(move |upserter, settings| {
        let queue: Arc<dyn Queue> = Arc::new(FastQueue {
            inner: SqsQueue::new(sqs.clone()),
            clock: clock.clone(),
        });
        let redelivery = Redelivery::configured(
            queue,
            settings.upsert_queue_url.as_deref(),
            settings.upsert_dlq_url.as_deref(),
            settings.retry,
        )
        .with_clock(clock.clone());
        upserter.with_redelivery(redelivery)
    })
}

/// A rig without random faults whose upsert handlers run on `clock`, configured as a new user
/// has it: 24 h retry horizon, backoff to 5 min, [`RATE`] Brevo requests/s per instance.
async fn fast_rig(name: &str, world: &World, seed: u64, clock: &Arc<FastClock>) -> Rig {
    let direct = common::sdk().await;
    let tune = fast_handlers(clock.clone(), aws_sdk_sqs::Client::new(&direct));
    Rig::start_with(
        name,
        world,
        &Plan::at_rate(0.0),
        seed,
        |s| {
            s.retry = RetryPolicy::default();
            s.brevo.requests_per_second = RATE;
        },
        Some(tune),
    )
    .await
}

/// One run at a time: each takes moto and both cores for itself.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends the deliveries spread evenly over `span` of wall-clock time, 32 at most in flight;
/// each retries (as the helpdesks do) until deskbridge answers. Returns the answers.
async fn send_spread(vendor: Arc<Vendor>, world: &World, span: Duration) -> Vec<Answer> {
    let deliveries = Arc::new(world.deliveries.clone());
    let gap = span.div_f64(deliveries.len().max(1) as f64);
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for i in 0..deliveries.len() {
        tokio::time::sleep_until(start + gap.mul_f64(i as f64)).await;
        let permit = permits.clone().acquire_owned().await.expect("open");
        let (vendor, deliveries) = (vendor.clone(), deliveries.clone());
        tasks.spawn(async move {
            let answer = vendor.deliver(&deliveries[i]).await;
            drop(permit);
            (i, answer)
        });
    }
    let mut answers = vec![Answer::Refused(0, "never sent".into()); deliveries.len()];
    while let Some(Ok((i, answer))) = tasks.join_next().await {
        answers[i] = answer;
    }
    answers
}

/// What a run ended with.
struct Outcome {
    lost: usize,
    duplicated: usize,
    stale: usize,
    unexpected: usize,
    dead_letters: u64,
    refused: usize,
    settled: bool,
    examples: String,
}

impl Outcome {
    fn line(&self) -> String {
        format!(
            "lost {}, duplicated {}, stale {}, unexpected {}, dead-lettered {}, refused {}, settled {}",
            self.lost,
            self.duplicated,
            self.stale,
            self.unexpected,
            self.dead_letters,
            self.refused,
            if self.settled { "yes" } else { "NO" }
        )
    }

    fn assert_clean(&self) {
        assert!(self.settled, "the queues drained in time");
        assert_eq!(self.refused, 0, "every delivery accepted");
        assert_eq!(self.dead_letters, 0, "nothing in either dead-letter queue");
        assert!(
            self.lost == 0 && self.duplicated == 0 && self.stale == 0 && self.unexpected == 0,
            "Brevo's state differs from the inputs':\n{}",
            self.examples
        );
    }
}

async fn settle(rig: Rig, world: &World, answers: &[Answer], limit: Duration) -> (Outcome, Rig) {
    let settled = chaos::wait_until_settled(
        &rig.direct,
        &rig.res,
        &rig.brevo,
        None,
        Duration::from_secs(3),
        limit,
        limit,
    )
    .await;
    let dead_letters = chaos::depth(&rig.direct, &rig.res.upsert_dlq_url).await
        + chaos::depth(&rig.direct, &rig.res.sync_dlq_url).await;
    let verdict = chaos::verdict::judge(world, &rig.brevo.accepted());
    let outcome = Outcome {
        lost: verdict.lost(),
        duplicated: verdict.duplicated(),
        stale: verdict.stale_contacts(),
        unexpected: verdict.unexpected_events.len() + verdict.unexpected_contacts.len(),
        dead_letters,
        refused: answers
            .iter()
            .filter(|a| matches!(a, Answer::Refused(..)))
            .count(),
        settled,
        examples: verdict.examples(),
    };
    (outcome, rig)
}

/// The most requests accepted in any window of `window`, and the average rate, of `times`.
fn rates(times: &[Instant], window: Duration) -> (usize, f64) {
    let mut peak = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= window {
            lo += 1;
        }
        peak = peak.max(hi - lo + 1);
    }
    let span = match (times.first(), times.last()) {
        (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    let average = if span > 0.0 {
        times.len() as f64 / span
    } else {
        0.0
    };
    (peak, average)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_hour_brevo_outage_delays_every_delivery_and_loses_none() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let outage = Duration::from_secs(6 * 3600);
    let clock = FastClock::new(240.0);
    let world = World::generate(0x0B7A_6E00, 1_000, chrono::Utc::now());
    let rig = fast_rig("brevo-outage", &world, 1, &clock).await;
    rig.brevo.set_down(true);
    let vendor = Arc::new(Vendor::new(&rig.runner.base, rig.faults.clone(), 7));

    // Deliveries arrive through the first five hours of the outage.
    let sending = {
        let (world, span) = (world.clone(), clock.real(outage.mul_f64(5.0 / 6.0)));
        tokio::spawn(async move { send_spread(vendor, &world, span).await })
    };
    clock.sleep_until(outage).await;
    let during = rig.brevo.requests();
    let ended = Instant::now();
    rig.brevo.set_down(false);
    let answers = sending.await.unwrap_or_default();

    let (outcome, rig) = settle(rig, &world, &answers, Duration::from_secs(300)).await;
    let after: Vec<Instant> = rig
        .brevo
        .accepted()
        .iter()
        .map(|a| a.at)
        .filter(|at| *at >= ended)
        .collect();
    let (peak, average) = rates(&after, Duration::from_secs(1));
    let (peak5, _) = rates(&after, Duration::from_secs(5));
    let first = after
        .first()
        .map_or(0.0, |t| t.duration_since(ended).as_secs_f64() * 240.0);
    report(&format!(
        "outage: brevo 503 for 6h (240x clock, {:.0} s), {} deliveries; {}; Brevo requests during \
         the outage {during} (probes); catch-up: first write {first:.0} s (fast clock) after the \
         outage, {} writes, peak {peak} in 1 s and {peak5} in 5 s, average {average:.1}/s, \
         limit {}/s",
        clock.real(outage).as_secs_f64(),
        world.deliveries.len(),
        outcome.line(),
        after.len(),
        RATE * chaos::UPSERT_WORKERS as u32,
    ));
    rig.stop().await;

    outcome.assert_clean();
    // Each worker's governor lets a burst of one second's quota through, then its rate: over
    // 5 s that is at most 6 s worth of requests (+1 per worker for window edges).
    let limit = RATE as usize * chaos::UPSERT_WORKERS;
    assert!(
        peak5 <= limit * 6 + chaos::UPSERT_WORKERS,
        "the catch-up kept the Brevo rate limit: {peak5} requests in 5 s at {limit}/s"
    );
    // While Brevo was down it was probed (one message per worker every 30 s, with the client's
    // 4 attempts), not called for every waiting message.
    let probes = chaos::UPSERT_WORKERS as u64
        * (outage.as_secs() / deskbridge_upsert::health::PROBE_INTERVAL.as_secs() + 1);
    assert!(
        during <= probes * 4,
        "Brevo was probed while it was down: {during} requests, at most {} expected",
        probes * 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_minute_dynamodb_throttling_storm_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let storm = Duration::from_secs(600);
    let clock = FastClock::new(20.0);
    let world = World::generate(0x0B7A_6E01, 300, chrono::Utc::now());
    let rig = fast_rig("dynamo-storm", &world, 2, &clock).await;
    let vendor = Arc::new(Vendor::new(&rig.runner.base, rig.faults.clone(), 8));
    let accepted = Arc::new(AtomicUsize::new(0));

    // A third of the deliveries before the storm, the rest while it rages (the webhook answers
    // 503 then, and the helpdesks retry) and after.
    let sending = {
        let (world, span) = (world.clone(), clock.real(storm.mul_f64(1.5)));
        tokio::spawn(async move { send_spread(vendor, &world, span).await })
    };
    let started = Instant::now();
    clock.sleep_until(storm / 2).await;
    rig.aws.set_storm(true);
    let storm_from = Instant::now();
    clock.sleep_until(storm / 2 + storm).await;
    rig.aws.set_storm(false);
    let storm_took = storm_from.elapsed();
    let answers = sending.await.unwrap_or_default();
    accepted.store(
        answers
            .iter()
            .filter(|a| matches!(a, Answer::Accepted(_)))
            .count(),
        Ordering::Relaxed,
    );

    let (outcome, rig) = settle(rig, &world, &answers, Duration::from_secs(240)).await;
    let faults = rig.faults.snapshot();
    report(&format!(
        "outage: dynamodb throttled for 10m (20x clock, {:.0} s), {} deliveries ({} accepted); \
         {}; {} throttled calls; run {:.0} s",
        storm_took.as_secs_f64(),
        world.deliveries.len(),
        accepted.load(Ordering::Relaxed),
        outcome.line(),
        faults
            .injected
            .get("dynamodb throttling storm")
            .copied()
            .unwrap_or(0),
        started.elapsed().as_secs_f64()
    ));
    rig.stop().await;

    outcome.assert_clean();
    assert!(
        faults
            .injected
            .get("dynamodb throttling storm")
            .copied()
            .unwrap_or(0)
            > 0,
        "the storm throttled calls"
    );
}
