//! `[notify]`: the settings of `tidewater notify`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::*;
use tidewater_sinks::amqp::{check_name, default_binding_key};
use tidewater_sinks::config::{bounded_duration, placeholders, positive_duration};

/// `[notify]`: the Slack notifier (`tidewater notify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The broker (`amqp://user:password@host:5672/vhost`; never logged).
    pub url: String,
    pub exchange: String,
    /// A durable queue bound to the exchange; rejected messages go to
    /// `<queue>.dead`.
    pub queue: String,
    #[serde(default = "default_binding_key")]
    pub binding_key: String,
    /// For `amqps://`: the PEM CA of the broker's certificate.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Slack incoming webhook; or `webhook_url_file`. Never logged.
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Events with one fingerprint within this window make one message.
    #[serde(default = "default_group_window", deserialize_with = "duration")]
    pub group_window: Duration,
    /// At most one post per this interval (Slack allows about one a second).
    #[serde(default = "default_min_interval", deserialize_with = "duration")]
    pub min_interval: Duration,
    /// Failed posts (429, 5xx, network) before the messages go to the dead-letter queue.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Unacknowledged messages held at once (grouping holds them until posted).
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// A link in each message: `{fingerprint}`, `{namespace}`, `{container}`,
    /// `{pod}`, `{level}` are filled in (URL-encoded).
    #[serde(default)]
    pub link_template: Option<String>,
    /// How long SIGTERM waits for a post in progress.
    #[serde(default = "default_notify_shutdown", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// `[notify.api]`: `/healthz`, `/readyz` and `/metrics` of `notify`
    /// (default address `0.0.0.0:8687`).
    #[serde(default)]
    pub api: ApiConfig,
}

fn default_group_window() -> Duration {
    Duration::from_secs(60)
}
fn default_min_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_attempts() -> u32 {
    5
}
fn default_prefetch() -> u16 {
    2000
}
fn default_notify_shutdown() -> Duration {
    Duration::from_secs(10)
}

/// A file read by `tidewater notify`: only `[notify]` matters; the rest of
/// a `run` configuration may be there too.
#[derive(Debug, Deserialize)]
struct NotifyFile {
    notify: Option<NotifyConfig>,
    #[serde(flatten)]
    _rest: toml::Table,
}

impl NotifyConfig {
    /// What `tidewater notify` cannot run with; keys relative to `[notify]`.
    pub(super) fn check_keys(&self) -> Result<(), Invalid> {
        tidewater_sinks::amqp::check_url("url", &self.url)?;
        check_name("exchange", &self.exchange, 255)?;
        // `<queue>.dead` must be a valid name too.
        check_name("queue", &self.queue, 250)?;
        check_name("binding_key", &self.binding_key, 255)?;
        match (&self.webhook_url, &self.webhook_url_file) {
            (None, None) => {
                return Err(Invalid::new(
                    "webhook_url",
                    "set webhook_url (e.g. \"${SLACK_WEBHOOK_URL}\") or webhook_url_file",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    "webhook_url_file",
                    "set webhook_url or webhook_url_file, not both",
                ))
            }
            (Some(u), None) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                return Err(Invalid::new("webhook_url", "expected an http(s):// URL"))
            }
            (None, Some(f)) if f.as_os_str().is_empty() => {
                return Err(Invalid::new("webhook_url_file", "must not be empty"))
            }
            _ => {}
        }
        positive_duration(
            "group_window",
            self.group_window,
            "repeats of an event are counted within it",
        )?;
        // 0: no spacing between posts (Slack's 429s are still obeyed).
        bounded_duration("min_interval", self.min_interval)?;
        if self.max_attempts == 0 {
            return Err(Invalid::new(
                "max_attempts",
                "must be at least 1: with 0 no post would ever be tried",
            ));
        }
        if self.prefetch == 0 {
            return Err(Invalid::new(
                "prefetch",
                "must be at least 1: to the broker, a prefetch of 0 means no limit at all",
            ));
        }
        if let Some(t) = &self.link_template {
            if !(t.starts_with("https://") || t.starts_with("http://")) {
                return Err(Invalid::new("link_template", "expected an http(s):// URL"));
            }
            placeholders(
                t,
                &["fingerprint", "namespace", "container", "pod", "level"],
            )
            .map_err(|m| Invalid::new("link_template", m))?;
        }
        positive_duration(
            "shutdown_timeout",
            self.shutdown_timeout,
            "0s would abandon a post in progress at once on SIGTERM (its messages go back to the queue and are posted again later); for a quick stop use e.g. \"1s\"",
        )?;
        Ok(())
    }

    /// Read the `[notify]` table of a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let root = parse_document(&text, path, Some("notify"))?;
        let file: NotifyFile = deserialize_document(root, &text, path)?;
        let Some(n) = file.notify else {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "notify".into(),
                message:
                    "no [notify] table: tidewater notify needs url, exchange, queue and webhook_url"
                        .into(),
            });
        };
        n.check_keys()
            .map_err(|invalid| ConfigError::invalid(path, invalid.under("notify")))?;
        Ok(n)
    }
}
