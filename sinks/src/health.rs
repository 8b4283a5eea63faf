//! What a sink knows about its destination's health, for `/readyz` and logs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::SinkError;

/// A destination that has been failing since `since`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// When the first failure of the current run of failures happened.
    pub since: SystemTime,
    /// Failed attempts since the last success.
    pub attempts: u64,
    /// The last error, as printed (never with credentials).
    pub error: String,
    /// Whether the error needs a person (no permission, no such bucket):
    /// such a sink keeps retrying, but waiting alone will not fix it.
    pub permanent: bool,
}

/// A sink's health: healthy until an attempt fails, healthy again after the
/// next success. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct HealthState {
    current: Mutex<Option<Failure>>,
    /// Every failed attempt since start (each one is retried).
    failed_total: AtomicU64,
    /// Rows delivered with a weaker guarantee than configured.
    degraded_rows: AtomicU64,
}

impl HealthState {
    /// Record a failed attempt.
    pub fn failed(&self, error: &SinkError) {
        self.failed_total.fetch_add(1, Relaxed);
        let mut state = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let permanent = error.is_permanent();
        let error = error.to_string();
        match state.as_mut() {
            Some(f) => {
                f.attempts += 1;
                f.error = error;
                f.permanent = permanent;
            }
            None => {
                *state = Some(Failure {
                    since: SystemTime::now(),
                    attempts: 1,
                    error,
                    permanent,
                })
            }
        }
    }

    /// Record a success; returns the failure it ended, if any.
    pub fn succeeded(&self) -> Option<Failure> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The current run of failures, or `None` when healthy.
    pub fn failure(&self) -> Option<Failure> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Record `rows` rows delivered with a weaker guarantee than the
    /// configuration asks (BigQuery's exactly-once at a quota).
    pub fn degraded(&self, rows: u64) {
        self.degraded_rows.fetch_add(rows, Relaxed);
    }

    /// Rows delivered with a weaker guarantee than configured, since start.
    pub fn degraded_rows(&self) -> u64 {
        self.degraded_rows.load(Relaxed)
    }

    /// Failed attempts since start, including those of background uploads.
    pub fn failed_total(&self) -> u64 {
        self.failed_total.load(Relaxed)
    }
}
