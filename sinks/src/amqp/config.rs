//! `type = "amqp"`: the keys of an AMQP sink, their checks, and how the
//! sink is built and its broker probed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{open_connection, redact_url, AmqpSink};
use crate::component::{Limits, SinkComponent, SinkContext};
use crate::config::{duration, placeholders, positive_duration, Invalid};
use crate::{Sink, SinkError};

/// `[sinks.<name>]` with `type = "amqp"`: error events to RabbitMQ.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSinkConfig {
    /// `amqp://user:password@host:5672/vhost` or `amqps://…` (never logged).
    pub url: String,
    /// A durable topic exchange, declared if missing.
    pub exchange: String,
    /// Routing key template: `{namespace}`, `{container}`, `{pod}`,
    /// `{node}`, `{level}`; dots inside values become `_`.
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// Keys of the JSON body copied into each event's `fields`.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Declare this durable queue (and `<queue>.dead`) bound with
    /// `binding_key`, so events are kept before any consumer runs.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default = "default_binding_key")]
    pub binding_key: String,
    /// For `amqps://`: the PEM CA of the broker's certificate (else the
    /// system's roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// How long to wait for the broker's confirms of one batch.
    #[serde(default = "default_confirm_timeout", deserialize_with = "duration")]
    pub confirm_timeout: Duration,
}

fn default_routing_key() -> String {
    "{namespace}.{container}.{level}".into()
}
/// Which records become events when the sink's `when` is left out.
pub const DEFAULT_WHEN: &str = "level >= \"error\"";
/// The binding of a declared queue when none is configured: every event.
pub fn default_binding_key() -> String {
    "#".into()
}
fn default_confirm_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A broker URL: `amqp://…` or `amqps://…`.
pub fn check_url(key: &str, url: &str) -> Result<(), Invalid> {
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return Err(Invalid::new(key, "expected amqp://… or amqps://…"));
    }
    Ok(())
}

/// An exchange, queue or binding key: not empty, at most `max` bytes (AMQP
/// allows 255).
pub fn check_name(key: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(key, "must not be empty"));
    }
    if value.len() > max {
        return Err(Invalid::new(
            key,
            format!("expected at most {max} bytes (AMQP's limit is 255)"),
        ));
    }
    Ok(())
}

impl AmqpSinkConfig {
    /// The same keys with `tls_ca_file` relative to `cx.base_dir`.
    fn resolved(&self, cx: &SinkContext<'_>) -> Self {
        Self {
            tls_ca_file: self.tls_ca_file.as_ref().map(|p| cx.base_dir.join(p)),
            ..self.clone()
        }
    }
}

#[async_trait]
impl SinkComponent for AmqpSinkConfig {
    fn check(&self, _: &Limits) -> Result<(), Invalid> {
        check_url("url", &self.url)?;
        check_name("exchange", &self.exchange, 255)?;
        if self.routing_key.len() > 255 {
            return Err(Invalid::new(
                "routing_key",
                "expected at most 255 bytes (AMQP's limit)",
            ));
        }
        placeholders(
            &self.routing_key,
            &["namespace", "container", "pod", "node", "level"],
        )
        .map_err(|m| Invalid::new("routing_key", m))?;
        if let Some(i) = self.fields.iter().position(String::is_empty) {
            return Err(Invalid::new(format!("fields[{i}]"), "must not be empty"));
        }
        if let Some(q) = &self.queue {
            check_name("queue", q, 250)?;
            check_name("binding_key", &self.binding_key, 255)?;
        }
        positive_duration(
            "confirm_timeout",
            self.confirm_timeout,
            "every batch would time out waiting for the broker's confirms",
        )
    }

    /// One publisher: the events of a source stay in order.
    fn concurrency(&self) -> usize {
        1
    }

    /// Error events: records at `error` and above.
    fn default_when(&self) -> Option<&'static str> {
        Some(DEFAULT_WHEN)
    }

    async fn build(&self, cx: &SinkContext<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(AmqpSink::new(cx.name, self.resolved(cx))?))
    }

    /// Connect and log in; declares and publishes nothing.
    async fn healthcheck(&self, cx: &SinkContext<'_>) -> Result<String, SinkError> {
        let config = self.resolved(cx);
        let name = format!("tidewater validate {}", cx.name);
        let connection = open_connection(&config.url, &name, config.tls_ca_file.as_deref()).await?;
        let _ = connection.close(0, "tidewater validate".into()).await;
        Ok(format!("reachable: broker {}", redact_url(&config.url)))
    }

    fn healthcheck_timeout(&self) -> Duration {
        self.confirm_timeout
    }
}
