//! `[batch]`: the limits of an open batch, and their checks: a builder
//! made from a config that passed [`BatchConfig::check`] flushes (at least
//! one row, a byte limit above 0, an age that ticks).

use std::time::Duration;

use serde::Deserialize;
use tidewater_sinks::config::{duration, positive_duration, size, Invalid};

/// `[batch]`: when an open batch is flushed, whichever limit is reached
/// first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Bytes of input lines in one batch.
    #[serde(default = "default_max_bytes", deserialize_with = "size")]
    pub max_bytes: u64,
    #[serde(default = "default_max_age", deserialize_with = "duration")]
    pub max_age: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
        }
    }
}

fn default_max_rows() -> usize {
    10_000
}
fn default_max_bytes() -> u64 {
    8 << 20
}
fn default_max_age() -> Duration {
    Duration::from_secs(2)
}

impl BatchConfig {
    /// What serde cannot check; keys relative to `[batch]`. (How
    /// `max_bytes` must fit in `memory_limit` is the registry's check: it
    /// involves both.)
    pub fn check(&self) -> Result<(), Invalid> {
        if self.max_rows == 0 {
            return Err(Invalid::new("max_rows", "expected at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(Invalid::new("max_bytes", "expected more than 0 bytes"));
        }
        positive_duration(
            "max_age",
            self.max_age,
            "an open batch is flushed when it is this old",
        )
    }
}
