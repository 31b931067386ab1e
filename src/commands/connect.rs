//! `deskbridge connect brevo`: registers deskbridge's `POST /webhooks/brevo` route as a Brevo
//! marketing webhook (`POST /v3/webhooks`), with bearer authentication by `BREVO_WEBHOOK_TOKEN`
//! and the events the two-way path acts on. Run again, it finds the webhook by its URL and sets
//! its events and token again (`PUT /v3/webhooks/{id}`) instead of adding a second one.
//!
//! `deskbridge check brevo` reads the same listing ([`webhook_finding`]).

use std::io::Write;

use anyhow::{Context, bail};
use deskbridge_shared::brevo::{BrevoClient, WebhookInfo, WebhookSpec};
use deskbridge_shared::config::Settings;
use serde::Serialize;

use super::brevo_client;

/// The events deskbridge always acts on (see `shared::twoway`): unsubscribes, spam complaints
/// and hard bounces. Contact updates and list additions are not subscribed: they would be
/// answered and ignored. Deletions are subscribed only when a helpdesk acts on them
/// ([`brevo_events`]).
pub const BREVO_EVENTS: &[&str] = &["unsubscribed", "hardBounce", "spam"];

/// Brevo's contact deletion event, acted on where `on_contact_deleted` is `delete`.
pub const CONTACT_DELETED: &str = "contactDeleted";

/// The events the webhook must post for `settings`: [`BREVO_EVENTS`], and [`CONTACT_DELETED`]
/// when some helpdesk deletes the people Brevo deletes.
pub fn brevo_events(settings: &Settings) -> Vec<&'static str> {
    let mut events = BREVO_EVENTS.to_vec();
    if !settings.file.brevo_to_helpdesk.deleting().is_empty() {
        events.push(CONTACT_DELETED);
    }
    events
}

/// The variable that names the deployment's webhook base URL (the stack's `WebhookBaseUrl`).
pub const BASE_URL_VAR: &str = "DESKBRIDGE_WEBHOOK_BASE_URL";

const DESCRIPTION: &str =
    "deskbridge: unsubscribes, spam complaints and hard bounces written back into the helpdesks";

/// The URL Brevo posts to: `<base>/webhooks/brevo`.
pub fn brevo_route(base_url: &str) -> anyhow::Result<String> {
    let base = base_url.trim().trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        bail!("the webhook base URL must start with https:// (got `{base}`)");
    }
    let base = base.strip_suffix("/webhooks/brevo").unwrap_or(base);
    Ok(format!("{base}/webhooks/brevo"))
}

/// What `connect brevo` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Registered {
    /// No webhook posted to the URL: one was created.
    Created { id: i64, url: String },
    /// A webhook posted to the URL already: its events and token were set again.
    Updated {
        id: i64,
        url: String,
        /// Events it lacked before.
        added_events: Vec<String>,
    },
}

/// Registers (or refreshes) the marketing webhook posting `events` to `url` with `token`.
pub async fn connect_brevo(
    brevo: &BrevoClient,
    url: &str,
    token: &str,
    events: &[&str],
) -> anyhow::Result<Registered> {
    let spec = WebhookSpec {
        url: url.to_string(),
        events: events.iter().map(|e| (*e).to_string()).collect(),
        description: DESCRIPTION.to_string(),
        token: token.to_string(),
    };
    let existing = brevo
        .marketing_webhooks()
        .await
        .context("listing Brevo's marketing webhooks")?;
    match existing.iter().find(|w| same_url(&w.url, url)) {
        Some(found) => {
            brevo
                .update_webhook(found.id, &spec)
                .await
                .with_context(|| format!("updating Brevo webhook {}", found.id))?;
            Ok(Registered::Updated {
                id: found.id,
                url: url.to_string(),
                added_events: missing_events(found, events),
            })
        }
        None => {
            let id = brevo
                .create_webhook(&spec)
                .await
                .context("creating the Brevo webhook")?;
            Ok(Registered::Created {
                id,
                url: url.to_string(),
            })
        }
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// The `events` that `webhook` does not send.
fn missing_events(webhook: &WebhookInfo, events: &[&str]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !webhook.events.iter().any(|have| have == *e))
        .map(|e| (*e).to_string())
        .collect()
}

/// What the webhook listing says about deskbridge's route posting `events` (see
/// [`brevo_events`]), for `check brevo`: `Ok` with the line to pass, `Err` with the line to fail.
pub fn webhook_finding(
    webhooks: &[WebhookInfo],
    url: Option<&str>,
    events: &[&str],
) -> Result<String, String> {
    let ours: Vec<&WebhookInfo> = webhooks
        .iter()
        .filter(|w| match url {
            Some(url) => same_url(&w.url, url),
            None => w.url.trim_end_matches('/').ends_with("/webhooks/brevo"),
        })
        .collect();
    let shown = url.unwrap_or("…/webhooks/brevo");
    let Some(best) = ours.iter().min_by_key(|w| missing_events(w, events).len()) else {
        return Err(format!(
            "brevo: no marketing webhook posts to {shown} (run `deskbridge connect brevo`)"
        ));
    };
    let missing = missing_events(best, events);
    if missing.is_empty() {
        Ok(format!(
            "brevo: webhook {} posts {} to {}",
            best.id,
            events.join(", "),
            best.url
        ))
    } else {
        Err(format!(
            "brevo: webhook {} to {} does not send {} (run `deskbridge connect brevo`)",
            best.id,
            best.url,
            missing.join(", ")
        ))
    }
}

/// `deskbridge connect brevo [--url BASE] [--stack-name S]`.
pub async fn run(
    stack_name: Option<&str>,
    base_url: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<Registered> {
    let (_sdk, settings, vars) =
        crate::settings::load_for(stack_name, "connect brevo", &[]).await?;
    let base = match base_url {
        Some(b) => b.to_string(),
        None => vars.get(BASE_URL_VAR).context(
            "the webhook base URL is unknown: pass --url https://… or --stack-name of the deployed stack",
        )?,
    };
    connect(&settings, &base, out).await
}

/// The core of `connect brevo`, with settings loaded.
pub async fn connect(
    settings: &Settings,
    base_url: &str,
    out: &mut impl Write,
) -> anyhow::Result<Registered> {
    let url = brevo_route(base_url)?;
    let Some(token) = settings.brevo_inbound.webhook_token.as_deref() else {
        bail!(
            "BREVO_WEBHOOK_TOKEN is not set: put a long random token in the secret (or the \
             environment) first; the route answers 404 without it"
        );
    };
    let Some(brevo) = brevo_client(settings)? else {
        bail!("BREVO_API_KEY is not set: it is needed to register the webhook");
    };
    let events = brevo_events(settings);
    let registered = connect_brevo(&brevo, &url, token, &events).await?;
    match &registered {
        Registered::Created { id, url } => writeln!(
            out,
            "created Brevo webhook {id}: {} → {url} (bearer token)",
            events.join(", ")
        )?,
        Registered::Updated {
            id,
            url,
            added_events,
        } if added_events.is_empty() => writeln!(
            out,
            "Brevo webhook {id} already posts to {url}; its events and token were set again"
        )?,
        Registered::Updated {
            id,
            url,
            added_events,
        } => writeln!(
            out,
            "Brevo webhook {id} posts to {url}; added {} and set its token again",
            added_events.join(", ")
        )?,
    }
    Ok(registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: i64, url: &str, events: &[&str]) -> WebhookInfo {
        WebhookInfo {
            id,
            url: url.into(),
            events: events.iter().map(|e| (*e).to_string()).collect(),
            description: String::new(),
        }
    }

    #[test]
    fn contact_deletions_are_subscribed_only_when_a_helpdesk_deletes() {
        use deskbridge_shared::config::Vars;
        let settings = |config: &str| {
            let vars = Vars::from_pairs([("DESKBRIDGE_CONFIG", "secretsmanager:arn:test")])
                .with_config_text(config);
            Settings::from_vars(&vars).expect("settings")
        };
        assert_eq!(brevo_events(&settings("")), BREVO_EVENTS);
        let deleting = "brevo_to_helpdesk:\n  intercom: { on_contact_deleted: delete }\n";
        assert_eq!(
            brevo_events(&settings(deleting)),
            vec!["unsubscribed", "hardBounce", "spam", "contactDeleted"]
        );
    }

    #[test]
    fn the_route_is_the_base_url_and_the_brevo_path() {
        assert_eq!(
            brevo_route("https://abc.execute-api.eu-west-1.amazonaws.com/").expect("url"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/brevo"
        );
        assert_eq!(
            brevo_route("https://x.example/webhooks/brevo").expect("url"),
            "https://x.example/webhooks/brevo"
        );
        assert!(brevo_route("abc.example").is_err());
    }

    #[test]
    fn the_check_passes_only_with_every_event_at_the_url() {
        let url = "https://x.example/webhooks/brevo";
        let all = [hook(
            7,
            url,
            &["unsubscribed", "hardBounce", "spam", "opened"],
        )];
        assert_eq!(
            webhook_finding(&all, Some(url), BREVO_EVENTS),
            Ok(format!(
                "brevo: webhook 7 posts unsubscribed, hardBounce, spam to {url}"
            ))
        );
        let partial = [hook(8, url, &["unsubscribed"])];
        let err = webhook_finding(&partial, Some(url), BREVO_EVENTS).expect_err("missing events");
        assert!(err.contains("hardBounce, spam"), "{err}");
        let elsewhere = [hook(9, "https://other.example/hook", BREVO_EVENTS)];
        assert!(webhook_finding(&elsewhere, Some(url), BREVO_EVENTS).is_err());
        // Without a known URL, any webhook to a /webhooks/brevo route counts.
        assert!(webhook_finding(&all, None, BREVO_EVENTS).is_ok());
        assert!(webhook_finding(&elsewhere, None, BREVO_EVENTS).is_err());
        // When a helpdesk deletes, the webhook must post contact deletions too.
        let with_deletions = [BREVO_EVENTS, &[CONTACT_DELETED]].concat();
        let err = webhook_finding(&all, Some(url), &with_deletions).expect_err("no deletions");
        assert!(err.contains("does not send contactDeleted"), "{err}");
    }
}
