//! Liveness and readiness, as `/healthz` and `/readyz` report them.
//!
//! Liveness: the process is running its pipeline (no reader thread died).
//! Readiness: additionally, every sink's last attempt succeeded. A sink that
//! is failing is named with its error, since when and whether waiting alone
//! can fix it (`permanent`: no permission, no such bucket).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use tidewater_sinks::Sink;

/// Shared by the pipeline (which reports) and the HTTP API (which reads).
pub struct Health {
    started: SystemTime,
    sinks: Vec<Arc<dyn Sink>>,
    source_failure: Mutex<Option<(SystemTime, String)>>,
}

impl Health {
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Self {
        Self {
            started: SystemTime::now(),
            sinks,
            source_failure: Mutex::new(None),
        }
    }

    /// A source stopped with an error: the process is no longer alive in
    /// any useful sense, and a restart (from the checkpoint) is the remedy.
    pub fn source_failed(&self, error: String) {
        *crate::lock(&self.source_failure) = Some((SystemTime::now(), error));
    }

    /// Each sink's name, whether its last attempt succeeded, its failed
    /// attempts since start, and its rows delivered with a weaker guarantee
    /// than configured.
    pub fn sinks_ok(&self) -> Vec<(String, bool, u64, u64)> {
        self.sinks
            .iter()
            .map(|s| {
                let h = s.health();
                (
                    s.name().to_string(),
                    h.failure().is_none(),
                    h.failed_total(),
                    h.degraded_rows(),
                )
            })
            .collect()
    }

    /// `(alive, report)` for `/healthz`.
    pub fn liveness(&self) -> (bool, Value) {
        let mut components = Map::new();
        let failure = crate::lock(&self.source_failure).clone();
        let alive = failure.is_none();
        components.insert(
            "sources".into(),
            match failure {
                None => json!({"status": "ok"}),
                Some((since, error)) => json!({
                    "status": "failing",
                    "since": rfc3339(since),
                    "error": error,
                }),
            },
        );
        (alive, report(self.started, alive, components))
    }

    /// `(ready, report)` for `/readyz`.
    pub fn readiness(&self) -> (bool, Value) {
        let (alive, live) = self.liveness();
        let mut components = live
            .get("components")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut ready = alive;
        for sink in &self.sinks {
            let state = match sink.health().failure() {
                None => json!({"status": "ok"}),
                Some(f) => {
                    ready = false;
                    json!({
                        "status": "failing",
                        "since": rfc3339(f.since),
                        "failing_for_seconds": f.since.elapsed().map(|d| d.as_secs()).unwrap_or(0),
                        "attempts": f.attempts,
                        "error": f.error,
                        "permanent": f.permanent,
                    })
                }
            };
            components.insert(format!("sinks.{}", sink.name()), state);
        }
        (ready, report(self.started, ready, components))
    }
}

/// The JSON body of `/healthz` and `/readyz` (`notify`'s too).
pub(crate) fn report(started: SystemTime, ok: bool, components: Map<String, Value>) -> Value {
    json!({
        "status": if ok { "ok" } else { "failing" },
        "started": rfc3339(started),
        "components": components,
    })
}

/// A time as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
