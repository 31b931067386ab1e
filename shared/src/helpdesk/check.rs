//! What `deskbridge check` asks of a helpdesk beyond its sync streams: the variables its API
//! access lacks, the streams that prove each capability, how it authenticates, and its tag
//! listing. Each vendor folder answers for itself; the command only prints.

use async_trait::async_trait;
use serde_json::Value;

/// The streams a check reads one item of: people (which also proves authentication), tickets,
/// and the CSAT stream (`None` when ratings come on the tickets, as Intercom's do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckStreams {
    pub people: &'static str,
    pub tickets: &'static str,
    pub csat: Option<&'static str>,
}

/// One thing a helpdesk found about its own authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Said, neither passed nor failed (which method is in use, what to change).
    Note(String),
    Pass(String),
    /// Authentication cannot work: the calls that follow are not tried.
    Fail(String),
}

/// The calls `check` makes of a helpdesk's API besides reading its streams.
#[async_trait]
pub trait CheckApi: Send + Sync {
    /// Notes and checks on authentication before anything is read (the method in use, an OAuth
    /// token grant). Nothing to say by default.
    async fn authentication(&self, _client: &reqwest::Client) -> Vec<Finding> {
        Vec::new()
    }

    /// The number of tags on the first page of the tag listing, or why it failed, in a few
    /// words.
    async fn count_tags(&self, client: &reqwest::Client) -> Result<usize, String>;

    /// Every tag name the helpdesk has, so that `check` can name the `tag_lists` tags it does
    /// not have; `None` where the API cannot list them all (Zendesk lists recent ones only).
    async fn tag_names(&self, _client: &reqwest::Client) -> Result<Option<Vec<String>>, String> {
        Ok(None)
    }
}

/// Most pages of tags `check` reads before it gives up naming missing ones.
pub const MAX_TAG_PAGES: usize = 50;

/// The tag names on one page of a tag listing (`name` of each item under `tags` or `data`) and
/// the whole answer (for its cursor), or why the listing failed.
pub async fn names_on_page(
    request: reqwest::RequestBuilder,
) -> Result<(Vec<String>, Value), String> {
    let body = read_listing(send(request).await?).await?;
    let names = tag_items(&body)
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    Ok((names, body))
}

/// The `tag_lists` tags (matched whatever their case) that `names` lacks, in their order.
pub fn missing_tags<'t>(
    configured: impl IntoIterator<Item = &'t String>,
    names: &[String],
) -> Vec<String> {
    let known: std::collections::HashSet<String> =
        names.iter().map(|n| n.trim().to_lowercase()).collect();
    configured
        .into_iter()
        .filter(|t| !known.contains(&t.trim().to_lowercase()))
        .cloned()
        .collect()
}

/// A transport failure in a few words (the URL is left out).
pub fn transport_failure(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        e.without_url().to_string()
    }
}

/// The number of tags on a tag listing's first page (under `tags` or `data`), or why the
/// listing failed.
pub async fn tags_on_page(response: reqwest::Response) -> Result<usize, String> {
    Ok(tag_items(&read_listing(response).await?).len())
}

/// A tag listing's answer as JSON, or why the listing failed.
async fn read_listing(response: reqwest::Response) -> Result<Value, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", status_words(status.as_u16())));
    }
    response
        .json()
        .await
        .map_err(|_| "the answer is not JSON: check the base URL".to_string())
}

/// The tags of a listing's answer: the array under `tags` (Zendesk) or `data`.
fn tag_items(body: &Value) -> &[Value] {
    ["tags", "data"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_array))
        .map_or(&[], Vec::as_slice)
}

/// Sends `request` (auth already on it) asking for JSON.
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    request
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(transport_failure)
}

/// What an operator should make of a refusal of the tag listing.
fn status_words(status: u16) -> &'static str {
    match status {
        401 => "bad credentials",
        403 => "forbidden: the credentials may not read tags",
        404 => "not found: check the base URL / subdomain",
        429 => "rate limited: try again in a minute",
        _ => "refused",
    }
}

/// Sends `request` (auth already on it) and counts the tags on the answer.
pub async fn count_tags_with(request: reqwest::RequestBuilder) -> Result<usize, String> {
    tags_on_page(send(request).await?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_tags_are_matched_whatever_their_case() {
        let configured = ["VIP".to_string(), "churn-risk".to_string()];
        let names = ["vip".to_string(), "billing".to_string()];
        assert_eq!(
            missing_tags(&configured, &names),
            vec!["churn-risk".to_string()]
        );
    }

    #[test]
    fn refusals_name_the_likely_fix() {
        assert_eq!(status_words(401), "bad credentials");
        assert!(status_words(404).contains("base URL"));
        assert_eq!(status_words(500), "refused");
    }
}
