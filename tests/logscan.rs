//! The logs of a full run hold no email address, phone number or secret in clear.
//!
//! A smaller fault run (all three helpdesks, look-ups, the backfill, Brevo refusals that quote
//! the contact, SMS conflicts, AWS failures, a killed worker, a body that is not a job and a
//! signed body that cannot be read) with every log line captured as Lambda writes it: the same
//! JSON subscriber, at debug level for every crate. Then every line is searched for each input's
//! email, phone numbers (as the helpdesk wrote them, in E.164, and as bare digits) and for the
//! secrets of the run. `DESKBRIDGE_LOGSCAN_DUMP=<file>` keeps the captured lines for reading.

mod common;

mod chaos;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chaos::world::World;
use chaos::{Plan, Rig, Vendor};
use deskbridge_shared::identity::mask;
use deskbridge_shared::queue::{Queue, SqsQueue};
use tracing_subscriber::util::SubscriberInitExt;

/// Log bytes, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// What must not appear in a log line, with what it is (for the report).
fn needles(world: &World, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for c in &world.customers {
        out.push(("email".into(), c.email.to_lowercase()));
        for v in &c.versions {
            if let Some(p) = &v.phone {
                out.push(("phone as written".into(), p.raw.to_lowercase()));
                out.push(("phone in E.164".into(), p.e164.clone()));
                out.push((
                    "phone digits".into(),
                    p.e164.trim_start_matches("+1").into(),
                ));
            }
        }
    }
    for (what, value) in extra {
        out.push(((*what).to_string(), value.to_lowercase()));
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_email_phone_or_secret_in_clear() {
    let logs = Captured::default();
    let sink = logs.clone();
    deskbridge_shared::telemetry::json_subscriber(
        move || sink.clone(),
        deskbridge_shared::telemetry::parse_filter("debug").expect("a level"),
    )
    .try_init()
    .expect("this test binary's only subscriber");

    let seed = 0x106_5CA7;
    let world = World::generate(seed, 150, chrono::Utc::now());
    let plan = Plan {
        brevo_rejected: 0.03,
        brevo_sms_conflict: 0.03,
        ..Plan::at_rate(0.12)
    };
    let rig = Rig::start("logscan", &world, &plan, seed).await;

    // A message that is not a job, quoting a person, straight onto the upsert queue; and a
    // signed Intercom body that cannot be read.
    let poison_email = "poison.pill@example.org";
    let poison_phone = "+14155550199";
    SqsQueue::new(aws_sdk_sqs::Client::new(&rig.direct))
        .send(
            &rig.res.upsert_queue_url,
            &format!(r#"{{"id":"poison","records":"{poison_email} {poison_phone}"}}"#),
        )
        .await
        .expect("poison message queued");
    let unreadable = chaos::world::Delivery::intercom_unreadable("unreadable.body@example.org");
    let vendor = Vendor::new(&rig.runner.base, rig.faults.clone(), seed);
    let answer = vendor.deliver(&unreadable).await;
    assert!(
        matches!(answer, chaos::Answer::Refused(400, _)),
        "{answer:?}"
    );

    let (run, rig) = rig.run(&world, seed, Duration::from_secs(240)).await;
    rig.stop().await;
    assert!(run.settled, "the run settled");

    let basic = |user: &str, secret: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    };
    let secrets = [
        ("secret", common::ZENDESK_SECRET.to_string()),
        ("secret", common::INTERCOM_SECRET.to_string()),
        ("secret", common::GORGIAS_TOKEN.to_string()),
        ("secret", "test-brevo-key".to_string()),
        ("secret", "zendesk-test-api-token".to_string()),
        ("secret", "intercom-test-access-token".to_string()),
        (
            "secret",
            basic("api-user@helpdesk.test/token", "zendesk-test-api-token"),
        ),
        ("email", poison_email.to_string()),
        ("phone in E.164", poison_phone.to_string()),
        ("email", "unreadable.body@example.org".to_string()),
    ];
    let needles = needles(&world, &secrets);
    let lines = logs.lines();
    if let Some(path) = std::env::var_os("DESKBRIDGE_LOGSCAN_DUMP") {
        let _ = std::fs::write(path, lines.join("\n"));
    }
    assert!(
        lines.len() > 1_000,
        "the run was logged ({} lines)",
        lines.len()
    );
    // The scan means something only if contacts are logged at all: masked, they are.
    let masked = world
        .customers
        .iter()
        .filter(|c| {
            let m = mask(&c.email);
            lines.iter().any(|l| l.contains(&m))
        })
        .count();
    assert!(masked > 0, "no contact is named in the logs, even masked");
    let mut leaks: Vec<String> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let lower = line.to_lowercase();
        for (what, needle) in &needles {
            if lower.contains(needle.as_str()) {
                leaks.push(format!("line {}: {what} in clear: {line}", n + 1));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {} log lines hold personal data or secrets in clear, e.g.:\n{}",
        leaks.len(),
        lines.len(),
        leaks.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}
