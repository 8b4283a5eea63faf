//! What `tidewater notify` shows: its counters (the exit summary and
//! `/metrics`) and its health (`/healthz`, `/readyz`).
//!
//! Ready means: connected to the broker, the queue declared, and the last
//! post to Slack (if any) succeeded. Alive means the process runs: a broker
//! or Slack outage is retried, never a reason to restart notify.

use std::sync::Mutex;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};

use super::slack::Failure;
use super::Summary;
use crate::health::{report, rfc3339};
use crate::lock;
use crate::stats::registered;

/// A failed post's cause, as a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cause {
    cause: &'static str,
}

/// The counters, gauges and health of one `notify` process.
pub struct Observer {
    registry: Registry,
    pub events: Counter,
    pub invalid: Counter,
    pub posts: Counter,
    /// Events covered by a post that stands for more than one.
    pub grouped: Counter,
    pub acked: Counter,
    pub dead_lettered: Counter,
    failures: Family<Cause, Counter>,
    /// Messages received and not yet acked or handed back.
    pub held: Gauge,
    pub post_seconds: Histogram,
    connected: Gauge,
    pub reconnects: Counter,
    started: SystemTime,
    broker: Mutex<Broker>,
    last_post: Mutex<Option<(SystemTime, Option<String>)>>,
}

#[derive(Default)]
struct Broker {
    connected: bool,
    queue: Option<String>,
    error: Option<(SystemTime, String)>,
}

/// Every `cause` of a failed post.
const CAUSES: [&str; 4] = ["rate_limited", "server", "client", "network"];

impl Default for Observer {
    fn default() -> Self {
        let mut r = Registry::default();
        let counter = |r: &mut Registry, name: &str, help: &str| {
            registered(r, name, help, Counter::default())
        };
        Self {
            events: counter(&mut r, "tidewater_notify_events", "Error events consumed"),
            invalid: counter(
                &mut r,
                "tidewater_notify_invalid_messages",
                "Messages that are not error events (rejected to the dead-letter queue)",
            ),
            posts: counter(&mut r, "tidewater_notify_posts", "Messages posted to Slack"),
            grouped: counter(
                &mut r,
                "tidewater_notify_grouped_events",
                "Events that went into another event's post (grouped by fingerprint)",
            ),
            acked: counter(
                &mut r,
                "tidewater_notify_acked_messages",
                "Messages acknowledged after their post succeeded",
            ),
            dead_lettered: counter(
                &mut r,
                "tidewater_notify_dead_lettered_messages",
                "Messages sent to the dead-letter queue after max_attempts failed posts",
            ),
            failures: registered(
                &mut r,
                "tidewater_notify_post_failures",
                "Failed posts to Slack, each retried, by cause (rate_limited: 429, server: 5xx, client: other 4xx, network)",
                Family::default(),
            ),
            held: registered(
                &mut r,
                "tidewater_notify_held_messages",
                "Messages received and not yet acknowledged or handed back (grouping holds them)",
                Gauge::default(),
            ),
            post_seconds: registered(
                &mut r,
                "tidewater_notify_post_duration_seconds",
                "How long one post to Slack took",
                Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0]),
            ),
            connected: registered(
                &mut r,
                "tidewater_notify_broker_connected",
                "1 while connected to the broker with the queue declared",
                Gauge::default(),
            ),
            reconnects: counter(
                &mut r,
                "tidewater_notify_reconnects",
                "Broker connections lost and re-established",
            ),
            registry: r,
            started: SystemTime::now(),
            broker: Mutex::default(),
            last_post: Mutex::default(),
        }
        .with_every_cause()
    }
}

impl Observer {
    /// Every cause's series exists from the start, at 0, so that `rate()`
    /// and `increase()` see the first failure of each.
    fn with_every_cause(self) -> Self {
        for cause in CAUSES {
            let _ = self.failures.get_or_create(&Cause { cause });
        }
        self
    }

    /// The counters as printed at exit.
    pub fn summary(&self) -> Summary {
        Summary {
            events: self.events.get(),
            posts: self.posts.get(),
            acked: self.acked.get(),
            dead_lettered: self.dead_lettered.get(),
            invalid: self.invalid.get(),
            failed_attempts: self.failures_total(),
        }
    }

    fn failures_total(&self) -> u64 {
        CAUSES
            .into_iter()
            .map(|cause| self.failures.get_or_create(&Cause { cause }).get())
            .sum()
    }

    /// Connected, with `queue` declared.
    pub fn connected(&self, queue: &str) {
        let mut b = lock(&self.broker);
        b.connected = true;
        b.queue = Some(queue.to_string());
        b.error = None;
        self.connected.set(1);
    }

    /// The connection is lost (`error`, never with credentials).
    pub fn disconnected(&self, error: &str) {
        let mut b = lock(&self.broker);
        b.connected = false;
        b.queue = None;
        let since = b.error.as_ref().map_or_else(SystemTime::now, |e| e.0);
        b.error = Some((since, error.to_string()));
        self.connected.set(0);
        // The broker requeues what this connection held.
        self.held.set(0);
    }

    /// A post succeeded.
    pub fn posted(&self) {
        *lock(&self.last_post) = Some((SystemTime::now(), None));
    }

    /// A post failed (it is retried).
    pub fn post_failed(&self, failure: &Failure) {
        let cause = match failure {
            Failure::RateLimited(_) => "rate_limited",
            Failure::Server(_) => "server",
            Failure::Client(_) => "client",
            Failure::Network(_) => "network",
        };
        self.failures.get_or_create(&Cause { cause }).inc();
        *lock(&self.last_post) = Some((SystemTime::now(), Some(failure.to_string())));
    }
}

impl crate::api::Endpoints for Observer {
    fn liveness(&self) -> (bool, Value) {
        (true, report(self.started, true, Map::new()))
    }

    fn readiness(&self) -> (bool, Value) {
        let mut components = Map::new();
        let b = lock(&self.broker);
        let broker_ok = b.connected && b.queue.is_some();
        components.insert(
            "broker".into(),
            match (&b.queue, &b.error) {
                (Some(queue), _) if b.connected => json!({"status": "ok", "queue": queue}),
                (_, Some((since, error))) => json!({
                    "status": "failing", "since": rfc3339(*since), "error": error,
                }),
                _ => json!({"status": "connecting"}),
            },
        );
        drop(b);
        let last = lock(&self.last_post).clone();
        let slack_ok = last.as_ref().is_none_or(|(_, e)| e.is_none());
        components.insert(
            "slack".into(),
            match last {
                None => json!({"status": "ok", "last_post": null}),
                Some((at, None)) => json!({"status": "ok", "last_post": rfc3339(at)}),
                Some((at, Some(error))) => json!({
                    "status": "failing", "last_attempt": rfc3339(at), "error": error,
                }),
            },
        );
        let ready = broker_ok && slack_ok;
        (ready, report(self.started, ready, components))
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            Ok(()) => out,
            Err(e) => format!("# cannot encode the metrics: {e}\n"),
        }
    }
}
