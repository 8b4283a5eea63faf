//! The TOML configuration: Vector-style named sources and sinks.
//!
//! Loading parses the TOML, substitutes `${VAR}` from the environment in its
//! string values (not in keys or comments, nor in `[[redact]]`, where `${1}`
//! is a regex group; `$${` is a literal `${`), rejects
//! unknown keys, and checks what serde cannot: at least one source and one
//! sink, and every duration, size and count against what `run` and the
//! sinks can work with. Every error names the file, the key and what was
//! expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
#[cfg(feature = "amqp")]
use tidewater_sinks::amqp::AmqpSinkConfig;
#[cfg(feature = "bigquery")]
use tidewater_sinks::bigquery::BigQuerySinkConfig;
use tidewater_sinks::config::{duration, size, Invalid};
use tidewater_sinks::parquet::ParquetSinkConfig;
use tidewater_sinks::{Limits, SinkComponent};

mod check;
mod document;
#[cfg(feature = "amqp")]
mod notify;
#[cfg(test)]
mod tests;

pub use check::MAX_DURATION;
use document::{deserialize_document, parse_document, take_keys};
#[cfg(feature = "amqp")]
pub use notify::NotifyConfig;
/// `[notify]` in a build without `tidewater notify` (no `amqp` feature):
/// accepted unread, so that a file shared with `notify` still runs; `validate`
/// warns that it is not checked.
#[cfg(not(feature = "amqp"))]
pub type NotifyConfig = serde::de::IgnoredAny;

// Each component owns its configuration; these are re-exported so that the
// whole file's types can be named from one place (`config::TailConfig`).
pub use crate::api::{ApiConfig, DEFAULT_API_ADDRESS};
pub use crate::batch::BatchConfig;
pub use crate::parse::Format;
pub use crate::pod::KubernetesConfig;
pub use crate::redact::RedactConfig;
pub use crate::route::{Routes, Routing, SinkRoute, SourceRoute};
pub use crate::schema::{ExtraColumn, ExtraType};
pub use crate::source::tail::{ReadFrom, TailConfig};
use crate::source::{Reader, SourceContext};
use crate::tasks::Critical;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where checkpoints and other state live; created if missing.
    pub data_dir: PathBuf,
    /// How long SIGTERM waits for in-flight batches before exiting.
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// How often acknowledged offsets are written to disk.
    #[serde(default = "default_checkpoint_interval", deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// What may be buffered between reading and acknowledgement: half for
    /// batches in flight, half for the sinks' buffers (row groups, upload
    /// parts). Beyond it the readers wait; the log files are the buffer.
    #[serde(default = "default_memory_limit", deserialize_with = "size")]
    pub memory_limit: u64,
    /// How long a start waits for another process to release the data dir
    /// (a rolling update whose old process is still draining); 0: fail at once.
    #[serde(default = "default_lock_wait", deserialize_with = "duration")]
    pub lock_wait: Duration,
    /// BigQuery-style JSON schema file; the bundled `container_log` when absent.
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// Typed columns extracted from JSON bodies, added to the schema of
    /// every source (a source's own are `[[sources.<name>.columns]]`).
    #[serde(default)]
    pub columns: Vec<ExtraColumn>,
    /// `[[redact]]`: masks applied to what leaves the process.
    #[serde(default)]
    pub redact: Vec<RedactConfig>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// The HTTP endpoint for probes.
    #[serde(default)]
    pub api: ApiConfig,
    /// Sidecar mode: the Pod's own labels and annotations, from the files
    /// of a downwardAPI volume.
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// Read by `tidewater notify`; `run` does not use it, but when present
    /// it is checked like the rest, so that `validate` covers a file shared
    /// by both commands (a build without the `amqp` feature accepts it
    /// unread, and `validate` says so).
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// The routing keys of every source and sink (`drop`, `columns`,
    /// `inputs`, `when`), taken out of their tables when the file is read.
    #[serde(skip)]
    pub routing: Routing,
}

/// A source, selected by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    Tail(TailConfig),
}

impl SourceConfig {
    /// The source's own checks; keys relative to its table.
    pub fn check(&self) -> Result<(), Invalid> {
        match self {
            SourceConfig::Tail(c) => c.check(),
        }
    }

    /// Its health check: what is valid but probably not meant (an include
    /// glob that matches nothing yet), for `validate`.
    pub fn warnings(&self, base_dir: &Path) -> Vec<Invalid> {
        match self {
            SourceConfig::Tail(c) => c.warnings(base_dir),
        }
    }

    /// Start the source on its own thread.
    pub fn spawn(&self, cx: SourceContext, critical: &Critical) -> std::io::Result<Reader> {
        match self {
            SourceConfig::Tail(c) => crate::source::tail::spawn(c, cx, critical),
        }
    }
}

/// A sink, selected by its `type`: the registry of sink components. Each
/// kind's keys, checks, build and health check live with its code in
/// `tidewater-sinks`; adding a kind adds a variant here and its arm in
/// [`SinkConfig::component`].
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Parquet(ParquetSinkConfig),
    #[cfg(feature = "amqp")]
    Amqp(AmqpSinkConfig),
    #[cfg(not(feature = "amqp"))]
    Amqp(AmqpNotBuilt),
    #[cfg(feature = "bigquery")]
    Bigquery(BigQuerySinkConfig),
    #[cfg(not(feature = "bigquery"))]
    Bigquery(BigqueryNotBuilt),
}

impl SinkConfig {
    /// The component behind the `type`.
    pub fn component(&self) -> &dyn SinkComponent {
        match self {
            SinkConfig::Parquet(c) => c,
            #[cfg(feature = "amqp")]
            SinkConfig::Amqp(c) => c,
            #[cfg(not(feature = "amqp"))]
            SinkConfig::Amqp(never) => match *never {},
            #[cfg(feature = "bigquery")]
            SinkConfig::Bigquery(c) => c,
            #[cfg(not(feature = "bigquery"))]
            SinkConfig::Bigquery(never) => match *never {},
        }
    }
}

/// A `type` this build leaves out (`cargo build --no-default-features`):
/// a table for it is refused when the file is loaded, naming the feature.
/// It has no value, so a loaded configuration never holds one.
#[cfg(any(not(feature = "amqp"), not(feature = "bigquery")))]
macro_rules! not_built {
    ($name:ident, $feature:literal) => {
        #[derive(Debug, Clone)]
        pub enum $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                Err(serde::de::Error::custom(concat!(
                    "type = \"",
                    $feature,
                    "\" is not in this build of tidewater (built without the \"",
                    $feature,
                    "\" feature): use a build with the default features"
                )))
            }
        }
    };
}
#[cfg(not(feature = "amqp"))]
not_built!(AmqpNotBuilt, "amqp");
#[cfg(not(feature = "bigquery"))]
not_built!(BigqueryNotBuilt, "bigquery");

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_lock_wait() -> Duration {
    Duration::ZERO
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(1)
}
/// The default `memory_limit`: large enough that the default batch and
/// sink settings run at full speed (BENCHMARKS.md).
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;

/// The smallest `memory_limit` accepted.
pub const MIN_MEMORY_LIMIT: u64 = 32 << 20;

fn default_memory_limit() -> u64 {
    DEFAULT_MEMORY_LIMIT
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: {key}: environment variable {var} is not set (referenced as ${{{var}}} on line {line}; write $${{ for a literal ${{)"
    )]
    MissingEnv {
        path: PathBuf,
        /// The key whose value references it (`sinks.alerts.url`).
        key: String,
        line: usize,
        var: String,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

impl Config {
    /// Read, substitute, parse and check a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parse configuration text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut root = parse_document(text, path, None)?;
        let sources = take_keys(&mut root, "sources", SourceRoute::KEYS, text, path)?;
        let sinks = take_keys(&mut root, "sinks", SinkRoute::KEYS, text, path)?;
        let mut config: Config = deserialize_document(root, text, path)?;
        config.routing = Routing { sources, sinks };
        for name in config.sources.keys() {
            config.routing.sources.entry(name.clone()).or_default();
        }
        for (name, sink) in &config.sinks {
            let route = config.routing.sinks.entry(name.clone()).or_default();
            if route.when.is_none() {
                route.when = sink.component().default_when().map(String::from);
                route.default_when = route.when.is_some();
            }
        }
        config.check(path)?;
        Ok(config)
    }

    /// What is valid but probably not meant: include globs that match no
    /// file yet, a data dir that cannot be written. `base_dir` resolves
    /// relative paths, as `run` does.
    pub fn warnings(&self, base_dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for (name, source) in &self.sources {
            for warning in source.warnings(base_dir) {
                out.push(warning.under(&format!("sources.{name}")).to_string());
            }
        }
        if let Some(k) = &self.kubernetes {
            for warning in k.warnings(base_dir) {
                out.push(warning.under("kubernetes").to_string());
            }
        }
        if cfg!(not(feature = "amqp")) && self.notify.is_some() {
            out.push(
                "notify: this build has no `tidewater notify` (built without the \"amqp\" feature), so the table is not checked".into(),
            );
        }
        // The data dir, or the nearest existing parent it would be made in,
        // must take a file; nothing is created beyond a probe file.
        let data_dir = base_dir.join(&self.data_dir);
        let mut dir = data_dir.as_path();
        while !dir.exists() {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
        let probe = dir.join(format!(".tidewater-validate-{}", std::process::id()));
        let writable = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
        if let Err(e) = writable {
            out.push(format!(
                "data_dir: {} is not writable ({e}); checkpoints could not be saved",
                data_dir.display()
            ));
        }
        out
    }

    /// The share of `memory_limit` for the own buffers of each sink that
    /// has them: the half that is not for batches in flight, split evenly.
    pub fn sink_buffer_limit(&self) -> u64 {
        let buffering = self
            .sinks
            .values()
            .filter(|s| s.component().buffers_in_memory())
            .count() as u64;
        self.memory_limit / 2 / buffering.max(1)
    }

    /// Every source's and sink's table and routing, compiled (a loaded
    /// configuration's routes build: loading checks them).
    pub fn routes(&self) -> Result<Routes, Invalid> {
        let tables = crate::route::Tables {
            schema: self.schema.as_deref(),
            columns: &self.columns,
            redact: &self.redact,
            has_labels: self
                .kubernetes
                .as_ref()
                .is_some_and(|k| k.labels_file.is_some()),
        };
        Routes::build(tables, &self.routing)
    }

    /// What each sink's keys are checked against.
    pub fn sink_limits(&self) -> Limits {
        Limits {
            memory_limit: self.memory_limit,
            buffer_limit: self.sink_buffer_limit(),
            batch_max_age: self.batch.max_age,
        }
    }
}
