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

/// The events deskbridge acts on (see `shared::twoway`): unsubscribes, spam complaints and hard
/// bounces. Contact updates, list additions and deletions are not subscribed: they would be
/// answered and ignored.
pub const BREVO_EVENTS: &[&str] = &["unsubscribed", "hardBounce", "spam"];

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

/// Registers (or refreshes) the marketing webhook posting to `url` with `token`.
pub async fn connect_brevo(
    brevo: &BrevoClient,
    url: &str,
    token: &str,
) -> anyhow::Result<Registered> {
    let spec = WebhookSpec {
        url: url.to_string(),
        events: BREVO_EVENTS.iter().map(|e| (*e).to_string()).collect(),
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
                added_events: missing_events(found),
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

/// The events deskbridge acts on that `webhook` does not send.
fn missing_events(webhook: &WebhookInfo) -> Vec<String> {
    BREVO_EVENTS
        .iter()
        .filter(|e| !webhook.events.iter().any(|have| have == *e))
        .map(|e| (*e).to_string())
        .collect()
}

/// What the webhook listing says about deskbridge's route, for `check brevo`: `Ok` with the
/// line to pass, `Err` with the line to fail.
pub fn webhook_finding(webhooks: &[WebhookInfo], url: Option<&str>) -> Result<String, String> {
    let ours: Vec<&WebhookInfo> = webhooks
        .iter()
        .filter(|w| match url {
            Some(url) => same_url(&w.url, url),
            None => w.url.trim_end_matches('/').ends_with("/webhooks/brevo"),
        })
        .collect();
    let shown = url.unwrap_or("…/webhooks/brevo");
    let Some(best) = ours.iter().min_by_key(|w| missing_events(w).len()) else {
        return Err(format!(
            "brevo: no marketing webhook posts to {shown} (run `deskbridge connect brevo`)"
        ));
    };
    let missing = missing_events(best);
    if missing.is_empty() {
        Ok(format!(
            "brevo: webhook {} posts {} to {}",
            best.id,
            BREVO_EVENTS.join(", "),
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
    let registered = connect_brevo(&brevo, &url, token).await?;
    match &registered {
        Registered::Created { id, url } => writeln!(
            out,
            "created Brevo webhook {id}: {} → {url} (bearer token)",
            BREVO_EVENTS.join(", ")
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
            webhook_finding(&all, Some(url)),
            Ok(format!(
                "brevo: webhook 7 posts unsubscribed, hardBounce, spam to {url}"
            ))
        );
        let partial = [hook(8, url, &["unsubscribed"])];
        let err = webhook_finding(&partial, Some(url)).expect_err("missing events");
        assert!(err.contains("hardBounce, spam"), "{err}");
        let elsewhere = [hook(9, "https://other.example/hook", BREVO_EVENTS)];
        assert!(webhook_finding(&elsewhere, Some(url)).is_err());
        // Without a known URL, any webhook to a /webhooks/brevo route counts.
        assert!(webhook_finding(&all, None).is_ok());
        assert!(webhook_finding(&elsewhere, None).is_err());
    }
}
