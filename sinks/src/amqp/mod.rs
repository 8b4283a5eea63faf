//! Error events to RabbitMQ (AMQP 0-9-1, `lapin`).
//!
//! Every record the sink receives (those its `when` condition selects,
//! `level >= "error"` by default: see `SinkComponent::default_when`)
//! becomes an [`ErrorEvent`], published
//! as persistent JSON messages to a durable topic exchange, with publisher
//! confirms. A batch is [`Delivery::Delivered`] only once the broker
//! confirmed every one of its events. A broken connection (broker down or
//! restarted) is a retry: the next attempt reconnects, and the batch's
//! events are published again with the same message ids.
//!
//! Messages are published `mandatory`: an event that no queue is bound to
//! receive comes back and is dead-lettered (and counted), never dropped
//! silently. Give the queue a binding that covers the routing keys, or let
//! the sink declare it (`queue`), so events wait in the broker for
//! `tidewater notify` even before it starts.

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::TimestampMicrosecondType;
use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

mod config;

pub use config::{check_name, check_url, default_binding_key, AmqpSinkConfig};

use crate::event::{fingerprint, ErrorEvent};
use crate::{Delivery, HealthState, RejectedRow, Sink, SinkBatch, SinkError};

/// Publishes error events; see the module documentation.
pub struct AmqpSink {
    name: String,
    /// Checked, with `tls_ca_file` resolved.
    config: AmqpSinkConfig,
    /// The connection and its confirm-mode channel; `None` until connected,
    /// and again after a failure.
    link: tokio::sync::Mutex<Option<(Connection, Channel)>>,
    health: HealthState,
}

impl AmqpSink {
    /// Connects on the first batch. `config` has passed its checks
    /// ([`AmqpSinkConfig`]).
    fn new(name: &str, config: AmqpSinkConfig) -> Result<Self, SinkError> {
        tracing::info!(sink = name, broker = %redact_url(&config.url), exchange = %config.exchange, "amqp sink ready");
        Ok(Self {
            name: name.to_string(),
            config,
            link: tokio::sync::Mutex::new(None),
            health: HealthState::default(),
        })
    }

    /// The events of `batch`: `(row, event, routing key)`.
    fn events(&self, batch: &SinkBatch) -> Vec<(usize, ErrorEvent, String)> {
        let records = &batch.records;
        let col = |name: &str| str_column(records, name);
        let (level, message, namespace, pod, container, node, fields) = (
            col("level"),
            col("message"),
            col("namespace"),
            col("pod"),
            col("container"),
            col("node"),
            col("fields"),
        );
        let times = records
            .column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
        let get = cell;
        let mut out = Vec::new();
        for row in 0..records.num_rows() {
            let text = get(message, row).unwrap_or_default();
            let body: serde_json::Map<String, serde_json::Value> = if self.config.fields.is_empty()
            {
                serde_json::Map::new()
            } else {
                get(fields, row)
                    .and_then(|f| serde_json::from_str::<serde_json::Map<_, _>>(f).ok())
                    .map(|all| {
                        all.into_iter()
                            .filter(|(k, _)| self.config.fields.contains(k))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let timestamp = times
                .filter(|t| t.is_valid(row))
                .and_then(|t| chrono::DateTime::from_timestamp_micros(t.value(row)))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            let event = ErrorEvent {
                id: format!("{}-{}", batch.id, batch.position(row)),
                timestamp,
                level: get(level, row).map(String::from),
                message: text.to_string(),
                namespace: get(namespace, row).map(String::from),
                pod: get(pod, row).map(String::from),
                container: get(container, row).map(String::from),
                node: get(node, row).map(String::from),
                fields: body,
                fingerprint: fingerprint(get(namespace, row), get(container, row), text),
            };
            let key = routing_key(&self.config.routing_key, &event);
            out.push((row, event, key));
        }
        out
    }

    async fn connect(&self) -> Result<(Connection, Channel), SinkError> {
        let amqp = |what: &str, e: lapin::Error| SinkError::Amqp(format!("{what}: {e}"));
        let connection = open_connection(
            &self.config.url,
            &format!("tidewater sink {}", self.name),
            self.config.tls_ca_file.as_deref(),
        )
        .await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| amqp("opening a channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp("enabling publisher confirms", e))?;
        declare_exchange(&channel, &self.config.exchange, ExchangeKind::Topic)
            .await
            .map_err(|e| amqp(&format!("declaring exchange {}", self.config.exchange), e))?;
        if let Some(queue) = &self.config.queue {
            declare_queue(
                &channel,
                queue,
                &self.config.exchange,
                &self.config.binding_key,
            )
            .await
            .map_err(|e| amqp(&format!("declaring queue {queue}"), e))?;
        }
        tracing::info!(sink = %self.name, broker = %redact_url(&self.config.url), "connected to the broker");
        Ok((connection, channel))
    }

    /// Publish every event and wait for the broker's confirms. Returns the
    /// rows the broker returned as unroutable.
    async fn publish(
        &self,
        events: &[(usize, ErrorEvent, String)],
    ) -> Result<Vec<RejectedRow>, SinkError> {
        let mut link = self.link.lock().await;
        if link
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *link = None;
            *link = Some(self.connect().await?);
        }
        let Some((_, channel)) = link.as_ref() else {
            return Err(SinkError::Amqp("not connected".into()));
        };
        let result = publish_on(channel, &self.config, events).await;
        if result.is_err() {
            // The channel may be half-broken: start afresh next time.
            if let Some((connection, _)) = link.take() {
                let _ = connection.close(0, "tidewater: reconnecting".into()).await;
            }
        }
        result
    }
}

async fn publish_on(
    channel: &Channel,
    config: &AmqpSinkConfig,
    events: &[(usize, ErrorEvent, String)],
) -> Result<Vec<RejectedRow>, SinkError> {
    let amqp = |what: &str, e: lapin::Error| SinkError::Amqp(format!("{what}: {e}"));
    let mut confirms = Vec::with_capacity(events.len());
    for (row, event, key) in events {
        let body = serde_json::to_vec(event)
            .map_err(|e| SinkError::Amqp(format!("encoding an event: {e}")))?;
        let confirm = channel
            .basic_publish(
                config.exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(event.id.as_str().into()),
            )
            .await
            .map_err(|e| amqp("publishing", e))?;
        confirms.push((*row, key, confirm));
    }
    let mut unroutable = Vec::new();
    let wait = async {
        for (row, key, confirm) in confirms {
            let confirmation = confirm
                .await
                .map_err(|e| amqp("waiting for a confirm", e))?;
            if !confirmation.is_ack() {
                return Err(SinkError::Amqp(
                    "the broker refused (nacked) an event".into(),
                ));
            }
            if confirmation.take_message().is_some() {
                unroutable.push(RejectedRow {
                    row,
                    reason: format!(
                        "unroutable: no queue is bound to exchange {:?} for routing key {key:?}",
                        config.exchange
                    ),
                });
            }
        }
        Ok(())
    };
    match tokio::time::timeout(config.confirm_timeout, wait).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(SinkError::Amqp(format!(
                "no confirms from the broker within {:?}",
                config.confirm_timeout
            )))
        }
    }
    Ok(unroutable)
}

/// Connect to the broker at `url` (`amqp://` or `amqps://`). `name` shows
/// in the broker's connection list, with the process id; `ca_file` is a PEM
/// CA for TLS. Errors never contain the password.
pub async fn open_connection(
    url: &str,
    name: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Connection, SinkError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("{name} (pid {})", std::process::id()).into());
    let failed =
        |e: lapin::Error| SinkError::Amqp(format!("connecting to {}: {e}", redact_url(url)));
    match ca_file {
        None => Connection::connect(url, properties).await.map_err(failed),
        Some(path) => {
            let pem = tokio::fs::read_to_string(path).await.map_err(|e| {
                SinkError::Amqp(format!(
                    "cannot read the TLS CA file {}: {e}",
                    path.display()
                ))
            })?;
            let tls = lapin::tcp::OwnedTLSConfig {
                identity: None,
                cert_chain: Some(pem),
            };
            let runtime = lapin::runtime::default_runtime().map_err(failed)?;
            Connection::connect_with_config(url, properties, tls, runtime)
                .await
                .map_err(failed)
        }
    }
}

/// Declare a durable exchange of `kind` (a no-op if it exists alike).
async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), lapin::Error> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
}

/// Declare a durable `queue` bound to `exchange`, with a dead-letter queue
/// `<queue>.dead` (behind exchange `<queue>.dead`) for messages a consumer
/// rejects. The same declaration is used by `tidewater notify`, so either
/// side may start first.
pub async fn declare_queue(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    binding_key: &str,
) -> Result<(), lapin::Error> {
    let dead = format!("{queue}.dead");
    declare_exchange(channel, exchange, ExchangeKind::Topic).await?;
    declare_exchange(channel, &dead, ExchangeKind::Fanout).await?;
    channel
        .queue_declare(
            dead.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dead.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString(dead.as_str().into()),
    );
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            binding_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

#[async_trait]
impl Sink for AmqpSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &SinkBatch) -> Delivery {
        let events = self.events(batch);
        if events.is_empty() {
            return Delivery::Delivered;
        }
        match self.publish(&events).await {
            Ok(unroutable) => {
                if let Some(f) = self.health.succeeded() {
                    tracing::info!(sink = %self.name, failed_attempts = f.attempts, "sink recovered");
                }
                if unroutable.is_empty() {
                    Delivery::Delivered
                } else {
                    Delivery::Rejected(unroutable)
                }
            }
            Err(e) => {
                self.health.failed(&e);
                Delivery::Retry(e)
            }
        }
    }

    fn health(&self) -> &HealthState {
        &self.health
    }
}

/// `url` without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// Fill a routing key template from an event.
pub fn routing_key(template: &str, event: &ErrorEvent) -> String {
    let part = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .replace(['.', '#', '*'], "_")
    };
    template
        .replace("{namespace}", &part(&event.namespace))
        .replace("{container}", &part(&event.container))
        .replace("{pod}", &part(&event.pod))
        .replace("{node}", &part(&event.node))
        .replace("{level}", &part(&event.level))
}

/// The value at `row`, if the column exists and the value is not null.
fn cell(array: Option<&StringArray>, row: usize) -> Option<&str> {
    array.filter(|a| a.is_valid(row)).map(|a| a.value(row))
}

fn str_column<'a>(records: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    records
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host/vh"), "amqp://host/vh");
        assert!(!redact_url("amqps://u:p@ss@h").contains("p@ss"));
    }

    #[test]
    fn routing_keys_are_filled_and_safe() {
        let event = ErrorEvent {
            id: "x".into(),
            timestamp: None,
            level: Some("error".into()),
            message: "m".into(),
            namespace: Some("shop.eu".into()),
            pod: None,
            container: Some("web".into()),
            node: None,
            fields: Default::default(),
            fingerprint: "f".into(),
        };
        assert_eq!(
            routing_key("{namespace}.{container}.{level}", &event),
            "shop_eu.web.error"
        );
        assert_eq!(routing_key("{pod}", &event), "unknown");
    }
}
