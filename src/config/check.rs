//! What serde cannot check: every key against what `run` and the sinks
//! can work with, each error naming the key.

use std::path::Path;

use super::*;
use tidewater_sinks::config::{bounded_duration, positive_duration, Invalid};

impl Config {
    pub(super) fn check(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_keys()
            .and_then(|()| self.check_schema())
            .map_err(|invalid| ConfigError::invalid(path, invalid))
    }

    /// Every key, on its own and against the others: what `validate`
    /// accepts, `run` must be able to run with.
    fn check_keys(&self) -> Result<(), Invalid> {
        if self.sources.is_empty() {
            return Err(Invalid::new(
                "sources",
                "no sources configured: add a [sources.<name>] table with type = \"tail\"",
            ));
        }
        if self.sinks.is_empty() {
            return Err(Invalid::new(
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
                return Err(Invalid::new(
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
            return Err(Invalid::new(
                "schema",
                "must not be empty (leave it out for the bundled schema)",
            ));
        }
        crate::schema::check_columns(&self.columns)?;
        if let Some(k) = &self.kubernetes {
            k.check().map_err(|e| e.under("kubernetes"))?;
        }
        let labels_file = self
            .kubernetes
            .as_ref()
            .and_then(|k| k.labels_file.as_ref());
        if let Some(i) = self.columns.iter().position(|c| c.label.is_some()) {
            if labels_file.is_none() {
                return Err(Invalid::new(
                    format!("columns[{i}].label"),
                    "needs the Pod's labels: set [kubernetes] labels_file (a downwardAPI volume's metadata.labels item)",
                ));
            }
        }
        for (name, source) in &self.sources {
            source
                .check()
                .map_err(|e| e.under(&format!("sources.{name}")))?;
        }
        self.batch.check().map_err(|e| e.under("batch"))?;
        if self.memory_limit < MIN_MEMORY_LIMIT {
            return Err(Invalid::new(
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
            return Err(Invalid::new(
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
                .map_err(|invalid| invalid.under(&format!("sinks.{name}")))?;
        }
        #[cfg(feature = "amqp")]
        if let Some(n) = &self.notify {
            n.check_keys().map_err(|invalid| invalid.under("notify"))?;
        }
        Ok(())
    }

    /// What needs the schema: it loads (the bundled one, or the file,
    /// relative to the working directory as for `run`), every column can
    /// be filled, the routing builds (`inputs`, `when`, `drop`, the
    /// sources' columns, `[[redact]]`), and each sink's key and table
    /// templates name columns of its own table.
    fn check_schema(&self) -> Result<(), Invalid> {
        let schema = crate::schema::TableSchema::load(self.schema.as_deref(), &self.columns)
            .map_err(|e| Invalid::new("schema", e.to_string()))?;
        crate::batch::Builder::new(&schema, &self.columns, self.batch.clone())
            .map_err(|e| Invalid::new("schema", e))?;
        let routes = self.routes()?;
        for (name, sink) in &self.sinks {
            sink.component()
                .check_schema(routes.sinks[name].arrow())
                .map_err(|invalid| invalid.under(&format!("sinks.{name}")))?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// A key of the file at `path` that cannot be used, as a check found it.
    pub(super) fn invalid(path: &Path, invalid: Invalid) -> Self {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            key: invalid.key,
            message: invalid.message,
        }
    }
}

pub use tidewater_sinks::config::MAX_DURATION;
