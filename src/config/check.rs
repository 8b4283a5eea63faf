//! What serde cannot check: every key against what `run` and the sinks
//! can work with, each error naming the key.

use std::path::Path;
use std::time::Duration;

use super::*;
use tidewater_sinks::config::Invalid;

impl Config {
    pub(super) fn check(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_keys()
            .and_then(|()| self.check_schema())
            .map_err(|bad| bad.at(path))
    }

    /// Every key, on its own and against the others: what `validate`
    /// accepts, `run` must be able to run with.
    fn check_keys(&self) -> Result<(), Bad> {
        if self.sources.is_empty() {
            return Err(bad(
                "sources",
                "no sources configured: add a [sources.<name>] table with type = \"tail\"",
            ));
        }
        if self.sinks.is_empty() {
            return Err(bad(
                "sinks",
                "no sinks configured: add a [sinks.<name>] table, e.g. type = \"parquet\", url = \"file://lake\"",
            ));
        }
        // Names become directories (staging files, dead letters): a name
        // like ".." or "a/b" would write, or empty, another directory.
        let names = self.sources.keys().map(|n| ("sources", n));
        for (table, name) in names.chain(self.sinks.keys().map(|n| ("sinks", n))) {
            let safe = !name.is_empty()
                && name != "."
                && name != ".."
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !safe {
                return Err(bad(
                    format!("{table}.{name}"),
                    "a name may hold only letters, digits, '_', '-' and '.' (it names directories under data_dir)",
                ));
            }
        }
        positive_duration(
            "shutdown_timeout",
            self.shutdown_timeout,
            "0s would give up on the batches in flight at once on SIGTERM, so every stop would leave them to be read and sent again; for a quick stop use e.g. \"1s\"",
        )?;
        positive_duration(
            "checkpoint_interval",
            self.checkpoint_interval,
            "acknowledged offsets are written on a timer, which cannot tick every 0s",
        )?;
        bounded_duration("lock_wait", self.lock_wait)?;
        if self
            .schema
            .as_ref()
            .is_some_and(|s| s.as_os_str().is_empty())
        {
            return Err(bad(
                "schema",
                "must not be empty (leave it out for the bundled schema)",
            ));
        }
        crate::schema::check_columns(&self.columns).map_err(Bad::from)?;
        for (name, source) in &self.sources {
            source
                .check()
                .map_err(|e| Bad::from(e.under(&format!("sources.{name}"))))?;
        }
        self.batch
            .check()
            .map_err(|e| Bad::from(e.under("batch")))?;
        if self.memory_limit < MIN_MEMORY_LIMIT {
            return Err(bad(
                "memory_limit",
                format!(
                    "expected at least {}",
                    bytesize::ByteSize(MIN_MEMORY_LIMIT).display().iec()
                ),
            ));
        }
        // A batch takes about twice its input bytes as Arrow arrays; half of
        // memory_limit is for batches in flight, and two must fit.
        if self.batch.max_bytes > self.memory_limit / 8 {
            return Err(bad(
                "batch.max_bytes",
                format!(
                    "expected at most an eighth of memory_limit ({}): a batch takes about twice its input in memory, and half of memory_limit is for two or more batches in flight",
                    bytesize::ByteSize(self.memory_limit).display().iec()
                ),
            ));
        }
        let limits = self.sink_limits();
        for (name, sink) in &self.sinks {
            sink.component()
                .check(&limits)
                .map_err(|invalid| Bad::from(invalid.under(&format!("sinks.{name}"))))?;
        }
        #[cfg(feature = "amqp")]
        if let Some(n) = &self.notify {
            n.check_keys().map_err(|bad| bad.under("notify"))?;
        }
        Ok(())
    }

    /// What needs the schema: it loads (the bundled one, or the file,
    /// relative to the working directory as for `run`), every column can
    /// be filled, and the key and table templates name columns it has.
    fn check_schema(&self) -> Result<(), Bad> {
        let schema = crate::schema::TableSchema::load(self.schema.as_deref(), &self.columns)
            .map_err(|e| bad("schema", e.to_string()))?;
        crate::batch::Builder::new(&schema, &self.columns, self.batch.clone())
            .map_err(|e| bad("schema", e))?;
        let arrow = schema.arrow();
        for (name, sink) in &self.sinks {
            sink.component()
                .check_schema(&arrow)
                .map_err(|invalid| Bad::from(invalid.under(&format!("sinks.{name}"))))?;
        }
        Ok(())
    }
}

/// A key that cannot be used, and why; `at` makes it a [`ConfigError`].
#[derive(Debug)]
pub(super) struct Bad {
    key: String,
    message: String,
}

pub(super) fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        message: message.into(),
    }
}

/// A component's own check (keys already prefixed with its table).
impl From<Invalid> for Bad {
    fn from(invalid: Invalid) -> Self {
        bad(invalid.key, invalid.message)
    }
}

impl Bad {
    /// The same, for a key inside the table `table`.
    #[cfg(feature = "amqp")]
    pub(super) fn under(self, table: &str) -> Self {
        Self {
            key: format!("{table}.{}", self.key),
            ..self
        }
    }

    pub(super) fn at(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            key: self.key,
            message: self.message,
        }
    }
}

pub use tidewater_sinks::config::MAX_DURATION;

/// A duration that must be more than 0 (`why` says what it is for) and at
/// most [`MAX_DURATION`].
pub(super) fn positive_duration(key: &str, d: Duration, why: &str) -> Result<(), Bad> {
    tidewater_sinks::config::positive_duration(key, d, why).map_err(Bad::from)
}

/// A duration where 0 means "not at all", at most [`MAX_DURATION`].
pub(super) fn bounded_duration(key: &str, d: Duration) -> Result<(), Bad> {
    tidewater_sinks::config::bounded_duration(key, d).map_err(Bad::from)
}

/// An exchange, queue or binding key (see [`tidewater_sinks::amqp::check_name`]).
#[cfg(feature = "amqp")]
pub(super) fn amqp_name(key: &str, value: &str, max: usize) -> Result<(), Bad> {
    tidewater_sinks::amqp::check_name(key, value, max).map_err(Bad::from)
}

#[cfg(feature = "amqp")]
pub(super) use tidewater_sinks::config::placeholders;
