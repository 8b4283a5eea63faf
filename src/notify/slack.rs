//! Slack incoming webhooks: the message a person reads, and one attempt to
//! post it. The webhook URL is a secret: it is never logged, and errors are
//! stripped of it.

use std::time::Duration;

use serde_json::{json, Value};

use super::group::Post;

/// A Slack incoming webhook.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
}

/// How one attempt went.
#[derive(Debug)]
pub enum Outcome {
    Posted,
    Failed(Failure),
}

/// Why a post failed (the reasons never hold the URL).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// 429: wait this long (`Retry-After`), then try again.
    #[error("Slack rate limit (429), retry after {0:?}")]
    RateLimited(Duration),
    /// 5xx.
    #[error("{0}")]
    Server(String),
    /// Another 4xx.
    #[error("{0}")]
    Client(String),
    /// No answer.
    #[error("{0}")]
    Network(String),
}

impl Webhook {
    pub fn new(url: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {}", e.without_url()))?;
        Ok(Self { client, url })
    }

    /// POST `body` once.
    pub async fn post(&self, body: &Value) -> Outcome {
        match self.client.post(&self.url).json(body).send().await {
            Ok(r) if r.status().is_success() => Outcome::Posted,
            Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(1), Duration::from_secs);
                Outcome::Failed(Failure::RateLimited(wait))
            }
            Ok(r) if r.status().is_server_error() => {
                Outcome::Failed(Failure::Server(format!("HTTP {}", r.status())))
            }
            Ok(r) => Outcome::Failed(Failure::Client(format!("HTTP {}", r.status()))),
            Err(e) => Outcome::Failed(Failure::Network(e.without_url().to_string())),
        }
    }
}

/// The Block Kit message for a post: level, service, pod, the message, the
/// time, the fingerprint and, with a template, a link.
pub fn message<A>(post: &Post<A>, link_template: Option<&str>) -> Value {
    let e = &post.event;
    let level = e.level.as_deref().unwrap_or("error").to_uppercase();
    let service = format!(
        "{}/{}",
        e.namespace.as_deref().unwrap_or("unknown"),
        e.container.as_deref().unwrap_or("unknown")
    );
    let icon = match e.level.as_deref() {
        Some("fatal") => ":boom:",
        Some("error") => ":red_circle:",
        Some("warn") => ":warning:",
        _ => ":information_source:",
    };
    let headline = if post.repeat {
        format!(
            "{icon} *{} more like this* in {service} in the last {}",
            post.count,
            humantime::format_duration(Duration::from_secs(post.span.as_secs().max(1)))
        )
    } else {
        format!("{icon} *{level}* in {service}")
    };
    let text: String = e.message.chars().take(2500).collect();
    let context = format!(
        "pod `{}` · node `{}` · {} · fingerprint `{}`",
        e.pod.as_deref().unwrap_or("unknown"),
        e.node.as_deref().unwrap_or("unknown"),
        e.timestamp.as_deref().unwrap_or("time unknown"),
        e.fingerprint
    );
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": headline}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", text.replace("```", "'''"))}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}),
    ];
    if let Some(template) = link_template {
        blocks.push(json!({
            "type": "actions",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the logs"}, "url": link(template, post)}]
        }));
    }
    let fallback = if post.repeat {
        format!("{} more like this in {service}: {text}", post.count)
    } else {
        format!("{level} in {service}: {text}")
    };
    json!({"text": fallback, "blocks": blocks})
}

/// Fill `{fingerprint}`, `{namespace}`, `{container}`, `{pod}`, `{level}`,
/// URL-encoded.
fn link<A>(template: &str, post: &Post<A>) -> String {
    let e = &post.event;
    let enc = |v: Option<&str>| -> String {
        v.unwrap_or("")
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    template
        .replace("{fingerprint}", &enc(Some(&e.fingerprint)))
        .replace("{namespace}", &enc(e.namespace.as_deref()))
        .replace("{container}", &enc(e.container.as_deref()))
        .replace("{pod}", &enc(e.pod.as_deref()))
        .replace("{level}", &enc(e.level.as_deref()))
}
