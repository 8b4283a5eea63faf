//! The TOML configuration: Vector-style named sources and sinks.
//!
//! Loading parses the TOML, substitutes `${VAR}` from the environment in its
//! string values (not in keys or comments; `$${` is a literal `${`), rejects
//! unknown keys, and checks what serde cannot: at least one source and one
//! sink, and every duration, size and count against what `run` and the
//! sinks can work with. Every error names the file, the key and what was
//! expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod check;
mod document;
mod notify;
#[cfg(test)]
mod tests;

pub use check::MAX_DURATION;
use document::{deserialize_document, parse_document};
use notify::default_binding_key;
pub use notify::NotifyConfig;

// Each component owns its configuration; these are re-exported so that the
// whole file's types can be named from one place (`config::TailConfig`).
pub use crate::api::{ApiConfig, DEFAULT_API_ADDRESS};
pub use crate::batch::BatchConfig;
pub use crate::parse::Format;
pub use crate::schema::{ExtraColumn, ExtraType};
pub use crate::source::tail::{ReadFrom, TailConfig};

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
    /// Typed columns extracted from JSON bodies, added to the schema.
    #[serde(default)]
    pub columns: Vec<ExtraColumn>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// The HTTP endpoint for probes.
    #[serde(default)]
    pub api: ApiConfig,
    /// Read by `tidewater notify`; `run` does not use it, but when present
    /// it is checked like the rest, so that `validate` covers a file shared
    /// by both commands.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

/// A source, selected by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    Tail(TailConfig),
}

/// A sink, selected by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Parquet(ParquetSinkConfig),
    Amqp(AmqpSinkConfig),
    Bigquery(BigQuerySinkConfig),
}

/// `type = "bigquery"`: rows streamed into a BigQuery table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySinkConfig {
    pub project: String,
    pub dataset: String,
    /// May hold `{date}` and `{<STRING column>}` (one table per value).
    pub table: String,
    /// The table's BigQuery JSON schema; default: the pipeline's `schema`
    /// (with its `[[columns]]`), as `tidewater schema --format bigquery` prints it.
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// A service-account key file; default: Application Default Credentials.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// REST base URL of an emulator (`http://127.0.0.1:9050`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Storage Write API URL of an emulator (`http://127.0.0.1:9060`).
    #[serde(default)]
    pub storage_endpoint: Option<String>,
    /// `insert_all` or `storage_write` (checked by `Config::load`, so that
    /// a bad value is reported with its key: see [`BigQuerySinkConfig::api`]).
    #[serde(default = "default_api", rename = "api")]
    pub api_name: String,
    #[serde(default)]
    pub create_table: bool,
    #[serde(default)]
    pub update_schema: bool,
    #[serde(default = "default_location")]
    pub location: String,
    /// Day partitioning of a created table; `""` for none.
    #[serde(default = "default_partition_field")]
    pub partition_field: String,
    #[serde(default = "default_clustering")]
    pub clustering: Vec<String>,
    #[serde(default = "default_max_rows_per_request")]
    pub max_rows_per_request: usize,
    #[serde(default = "default_max_request_bytes", deserialize_with = "size")]
    pub max_request_bytes: u64,
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Batches this sink sends at the same time.
    #[serde(default = "default_bigquery_concurrency")]
    pub concurrency: usize,
}

fn default_api() -> String {
    "insert_all".into()
}

impl BigQuerySinkConfig {
    /// The API named by `api`.
    pub fn api(&self) -> Result<tidewater_sinks::bigquery::Api, String> {
        match self.api_name.as_str() {
            "insert_all" => Ok(tidewater_sinks::bigquery::Api::InsertAll),
            "storage_write" => Ok(tidewater_sinks::bigquery::Api::StorageWrite),
            other => Err(format!(
                "expected \"insert_all\" or \"storage_write\", got {other:?}"
            )),
        }
    }
}
fn default_location() -> String {
    "US".into()
}
fn default_partition_field() -> String {
    "timestamp".into()
}
fn default_clustering() -> Vec<String> {
    vec!["namespace".into(), "pod".into(), "container".into()]
}
fn default_max_rows_per_request() -> usize {
    10_000
}
fn default_max_request_bytes() -> u64 {
    9_000_000
}
fn default_bigquery_concurrency() -> usize {
    4
}

/// `type = "amqp"`: error events to RabbitMQ.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSinkConfig {
    /// `amqp://user:password@host:5672/vhost` or `amqps://…` (never logged).
    pub url: String,
    pub exchange: String,
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// Which records become events (see the README).
    #[serde(default = "default_when")]
    pub when: String,
    /// Keys of the JSON body copied into each event.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Declare this durable queue (and `<queue>.dead`) bound with `binding_key`.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default = "default_binding_key")]
    pub binding_key: String,
    /// For `amqps://`: the PEM CA of the broker's certificate.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    #[serde(default = "default_confirm_timeout", deserialize_with = "duration")]
    pub confirm_timeout: Duration,
}

fn default_routing_key() -> String {
    "{namespace}.{container}.{level}".into()
}
fn default_when() -> String {
    "level >= \"error\"".into()
}
fn default_confirm_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `type = "parquet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    pub url: String,
    #[serde(default = "default_path_template")]
    pub path_template: String,
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Batches this sink writes at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// S3: an S3-compatible endpoint; GCS: an emulator's base URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default)]
    pub region: Option<String>,
    /// Allow a plain `http://` endpoint.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// S3: virtual-hosted-style (`bucket.host`) rather than path-style requests.
    #[serde(default)]
    pub virtual_hosted_style: Option<bool>,
    /// GCS: a service-account key file.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// How long one request to the store may take.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Multipart part size; smaller objects are one PUT.
    #[serde(default = "default_part_size", deserialize_with = "size")]
    pub part_size: u64,
    /// Combine batches into objects of about this size.
    #[serde(default, deserialize_with = "optional_size")]
    pub target_file_size: Option<u64>,
    /// Complete a combined object at most this long after its first batch.
    #[serde(default, deserialize_with = "optional_duration")]
    pub max_file_age: Option<Duration>,
}

impl ParquetSinkConfig {
    /// How to reach the store, in the sinks crate's terms.
    pub fn store_options(&self) -> tidewater_sinks::store::StoreOptions {
        tidewater_sinks::store::StoreOptions {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            allow_http: self.allow_http,
            virtual_hosted_style: self.virtual_hosted_style,
            credentials: self.credentials.clone(),
            request_timeout: self.request_timeout,
        }
    }

    /// `(target_file_size, max_file_age)` when batches are combined: either
    /// key turns it on, and the other takes its default (128MiB, 5m).
    pub fn rolling(&self) -> Option<(u64, Duration)> {
        if self.target_file_size.is_none() && self.max_file_age.is_none() {
            return None;
        }
        Some((
            self.target_file_size.unwrap_or(128 << 20),
            self.max_file_age.unwrap_or(Duration::from_secs(300)),
        ))
    }
}

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

fn default_path_template() -> String {
    tidewater_sinks::parquet::DEFAULT_PATH_TEMPLATE.to_string()
}
fn default_zstd_level() -> i32 {
    1
}
fn default_concurrency() -> usize {
    2
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_part_size() -> u64 {
    tidewater_sinks::parquet::DEFAULT_PART_SIZE as u64
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn optional_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

/// Parse `"2s"`, `"500ms"`, `"1m 30s"`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "expected a duration such as \"2s\" or \"500ms\", got {text:?} ({e})"
        ))
    })
}

/// Parse `"8MiB"`, `"512KiB"`, `"1 MB"` or a plain number of bytes.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Text(t) => t
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected a size such as \"8MiB\" or \"512KiB\", got {t:?}"
                ))
            }),
    }
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
        let root = parse_document(text, path, None)?;
        let config: Config = deserialize_document(root, text, path)?;
        config.check(path)?;
        Ok(config)
    }

    /// What is valid but probably not meant: include globs that match no
    /// file yet, a data dir that cannot be written. `base_dir` resolves
    /// relative paths, as `run` does.
    pub fn warnings(&self, base_dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for (name, source) in &self.sources {
            let SourceConfig::Tail(tail) = source;
            for warning in tail.warnings(base_dir) {
                out.push(warning.under(&format!("sources.{name}")).to_string());
            }
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

    /// Each Parquet sink's share of `memory_limit` for its own buffers: the
    /// half that is not for batches in flight, split evenly.
    pub fn parquet_buffer_limit(&self) -> u64 {
        let parquet_sinks = self
            .sinks
            .values()
            .filter(|s| matches!(s, SinkConfig::Parquet(_)))
            .count() as u64;
        self.memory_limit / 2 / parquet_sinks.max(1)
    }
}
