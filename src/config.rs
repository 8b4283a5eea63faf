//! The TOML configuration: Vector-style named sources and sinks.
//!
//! Loading substitutes `${VAR}` from the environment, rejects unknown keys,
//! and checks what serde cannot (at least one source and one sink, sane
//! limits). Every error names the file, the key and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

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
    /// Read by `tidewater notify` (ignored by `run`).
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

/// `[notify]`: the Slack notifier (`tidewater notify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The broker (`amqp://user:password@host:5672/vhost`; never logged).
    pub url: String,
    pub exchange: String,
    /// A durable queue bound to the exchange; rejected messages go to
    /// `<queue>.dead`.
    pub queue: String,
    #[serde(default = "default_binding_key")]
    pub binding_key: String,
    /// For `amqps://`: the PEM CA of the broker's certificate.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Slack incoming webhook; or `webhook_url_file`. Never logged.
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Events with one fingerprint within this window make one message.
    #[serde(default = "default_group_window", deserialize_with = "duration")]
    pub group_window: Duration,
    /// At most one post per this interval (Slack allows about one a second).
    #[serde(default = "default_min_interval", deserialize_with = "duration")]
    pub min_interval: Duration,
    /// Failed posts (429, 5xx, network) before the messages go to the dead-letter queue.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Unacknowledged messages held at once (grouping holds them until posted).
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// A link in each message: `{fingerprint}`, `{namespace}`, `{container}`,
    /// `{pod}`, `{level}` are filled in (URL-encoded).
    #[serde(default)]
    pub link_template: Option<String>,
    /// How long SIGTERM waits for a post in progress.
    #[serde(default = "default_notify_shutdown", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
}

fn default_binding_key() -> String {
    "#".into()
}
fn default_group_window() -> Duration {
    Duration::from_secs(60)
}
fn default_min_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_attempts() -> u32 {
    5
}
fn default_prefetch() -> u16 {
    2000
}
fn default_notify_shutdown() -> Duration {
    Duration::from_secs(10)
}

/// A file read by `tidewater notify`: only `[notify]` matters; the rest of
/// a `run` configuration may be there too.
#[derive(Debug, Deserialize)]
struct NotifyFile {
    notify: Option<NotifyConfig>,
    #[serde(flatten)]
    _rest: toml::Table,
}

impl NotifyConfig {
    /// Read the `[notify]` table of a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = substitute_env(&text, path)?;
        let file: NotifyFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(&e, &text),
        })?;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: format!("notify.{key}"),
            message: message.to_string(),
        };
        let Some(n) = file.notify else {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "notify".into(),
                message:
                    "no [notify] table: tidewater notify needs url, exchange, queue and webhook_url"
                        .into(),
            });
        };
        if !(n.url.starts_with("amqp://") || n.url.starts_with("amqps://")) {
            return Err(invalid("url", "expected amqp://… or amqps://…"));
        }
        match (&n.webhook_url, &n.webhook_url_file) {
            (None, None) => {
                return Err(invalid(
                    "webhook_url",
                    "set webhook_url (e.g. \"${SLACK_WEBHOOK_URL}\") or webhook_url_file",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "webhook_url_file",
                    "set webhook_url or webhook_url_file, not both",
                ))
            }
            (Some(u), None) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                return Err(invalid("webhook_url", "expected an http(s):// URL"))
            }
            _ => {}
        }
        if n.max_attempts == 0 {
            return Err(invalid("max_attempts", "expected at least 1"));
        }
        if n.prefetch == 0 {
            return Err(invalid("prefetch", "expected at least 1"));
        }
        if n.group_window.is_zero() {
            return Err(invalid("group_window", "expected more than 0s"));
        }
        Ok(n)
    }
}

/// `[api]`: the HTTP endpoint (`/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `host:port`; port 0 picks a free port (logged at start-up). When not
    /// set and the default port is taken, tidewater runs without the endpoint.
    #[serde(default)]
    pub address: Option<std::net::SocketAddr>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: None,
        }
    }
}

/// The API's address when none is configured.
pub const DEFAULT_API_ADDRESS: &str = "0.0.0.0:8686";

/// A typed column filled from a key of the JSON body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ExtraType,
    /// The JSON key to read; defaults to `name`.
    #[serde(default)]
    pub from: Option<String>,
}

impl ExtraColumn {
    /// The JSON key this column is read from.
    pub fn key(&self) -> &str {
        self.from.as_deref().unwrap_or(&self.name)
    }
}

/// Types an extracted column can have (BigQuery's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExtraType {
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
}

/// A source, selected by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    Tail(TailConfig),
}

/// `type = "tail"`: follow files matching globs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are cut to this length and flagged `truncated`.
    #[serde(default = "default_max_line_bytes", deserialize_with = "size")]
    pub max_line_bytes: u64,
    /// How often the globs are re-evaluated (inotify wakes it sooner).
    #[serde(default = "default_glob_interval", deserialize_with = "duration")]
    pub glob_interval: Duration,
    /// How long a rotated or deleted file is kept open after its last growth.
    #[serde(default = "default_rotate_wait", deserialize_with = "duration")]
    pub rotate_wait: Duration,
}

/// How the lines of a file are framed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// containerd / CRI-O: `<time> <stream> <P|F> <body>`.
    #[default]
    Cri,
    /// Docker json-file: `{"log":..,"stream":..,"time":..}`.
    Docker,
    /// One JSON object per line.
    Json,
    /// Plain text.
    Text,
    /// Decided line by line from what the line looks like.
    Auto,
}

/// Where reading starts in a file seen for the first time at start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// When an open batch is flushed: whichever limit is reached first.
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
fn default_max_line_bytes() -> u64 {
    1 << 20
}
fn default_glob_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_max_rows() -> usize {
    10_000
}
/// The default `memory_limit`: large enough that the default batch and
/// sink settings run at full speed (BENCHMARKS.md).
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;

/// The smallest `memory_limit` accepted.
pub const MIN_MEMORY_LIMIT: u64 = 32 << 20;

fn default_memory_limit() -> u64 {
    DEFAULT_MEMORY_LIMIT
}

fn default_max_bytes() -> u64 {
    8 << 20
}
fn default_max_age() -> Duration {
    Duration::from_secs(2)
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
fn default_true() -> bool {
    true
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
        "{path}: line {line}: environment variable {var} is not set (referenced as ${{{var}}})"
    )]
    MissingEnv {
        path: PathBuf,
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
        let text = substitute_env(text, path)?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(&e, &text),
        })?;
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
            for pattern in &tail.include {
                let full = base_dir.join(pattern);
                let matched = glob::glob(&full.to_string_lossy())
                    .map(|paths| paths.flatten().next().is_some())
                    .unwrap_or(false);
                if !matched {
                    out.push(format!(
                        "sources.{name}.include: {pattern:?} matches no file yet (files that appear later are picked up)"
                    ));
                }
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

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: message.to_string(),
        };
        if self.sources.is_empty() {
            return Err(invalid(
                "sources".into(),
                "no sources configured: add a [sources.<name>] table with type = \"tail\"",
            ));
        }
        if self.sinks.is_empty() {
            return Err(invalid(
                "sinks".into(),
                "no sinks configured: add a [sinks.<name>] table, e.g. type = \"parquet\", url = \"file://lake\"",
            ));
        }
        for (name, source) in &self.sources {
            let SourceConfig::Tail(tail) = source;
            if tail.include.is_empty() {
                return Err(invalid(
                    format!("sources.{name}.include"),
                    "expected at least one glob",
                ));
            }
            for (key, globs) in [("include", &tail.include), ("exclude", &tail.exclude)] {
                for g in globs {
                    if let Err(e) = glob::Pattern::new(g) {
                        return Err(invalid(
                            format!("sources.{name}.{key}"),
                            &format!("{g:?} is not a valid glob: {e}"),
                        ));
                    }
                }
            }
            if tail.max_line_bytes < 64 {
                return Err(invalid(
                    format!("sources.{name}.max_line_bytes"),
                    "expected at least 64 bytes",
                ));
            }
        }
        if self.batch.max_rows == 0 {
            return Err(invalid("batch.max_rows".into(), "expected at least 1"));
        }
        if self.batch.max_bytes == 0 {
            return Err(invalid(
                "batch.max_bytes".into(),
                "expected more than 0 bytes",
            ));
        }
        if self.memory_limit < MIN_MEMORY_LIMIT {
            return Err(invalid(
                "memory_limit".into(),
                &format!(
                    "expected at least {}",
                    bytesize::ByteSize(MIN_MEMORY_LIMIT).display().iec()
                ),
            ));
        }
        // A batch takes about twice its input bytes as Arrow arrays; half of
        // memory_limit is for batches in flight, and two must fit.
        if self.batch.max_bytes > self.memory_limit / 8 {
            return Err(invalid(
                "batch.max_bytes".into(),
                &format!(
                    "expected at most an eighth of memory_limit ({}): a batch takes about twice its input in memory, and half of memory_limit is for two or more batches in flight",
                    bytesize::ByteSize(self.memory_limit).display().iec()
                ),
            ));
        }
        if self.batch.max_age.is_zero() {
            return Err(invalid("batch.max_age".into(), "expected more than 0s"));
        }
        for (name, sink) in &self.sinks {
            let p = match sink {
                SinkConfig::Parquet(p) => p,
                SinkConfig::Bigquery(b) => {
                    check_bigquery(name, b).map_err(|(key, message)| {
                        invalid(format!("sinks.{name}.{key}"), &message)
                    })?;
                    continue;
                }
                SinkConfig::Amqp(a) => {
                    if let Err(e) = tidewater_sinks::when::Condition::parse(&a.when) {
                        return Err(invalid(format!("sinks.{name}.when"), &e.to_string()));
                    }
                    if !(a.url.starts_with("amqp://") || a.url.starts_with("amqps://")) {
                        return Err(invalid(
                            format!("sinks.{name}.url"),
                            "expected amqp://… or amqps://…",
                        ));
                    }
                    if a.exchange.is_empty() {
                        return Err(invalid(
                            format!("sinks.{name}.exchange"),
                            "must not be empty",
                        ));
                    }
                    continue;
                }
            };
            if p.concurrency == 0 {
                return Err(invalid(
                    format!("sinks.{name}.concurrency"),
                    "expected at least 1",
                ));
            }
            let share = self.parquet_buffer_limit();
            let least = tidewater_sinks::parquet::min_buffer_limit(
                usize::try_from(p.part_size).unwrap_or(usize::MAX),
            ) as u64;
            if p.rolling().is_some() && share < least {
                return Err(invalid(
                    format!("sinks.{name}.part_size"),
                    &format!(
                        "with memory_limit {} each Parquet sink has {} for its buffers, and a rolling sink needs {} (two parts and the row groups of its open files): lower part_size (at least 5MiB) or raise memory_limit",
                        bytesize::ByteSize(self.memory_limit).display().iec(),
                        bytesize::ByteSize(share).display().iec(),
                        bytesize::ByteSize(least).display().iec(),
                    ),
                ));
            }
            if let Err(tidewater_sinks::SinkError::Config { key, reason, .. }) =
                tidewater_sinks::store::check(name, &p.url, &p.store_options())
            {
                return Err(invalid(format!("sinks.{name}.{key}"), &reason));
            }
            if p.request_timeout.is_zero() {
                return Err(invalid(
                    format!("sinks.{name}.request_timeout"),
                    "expected more than 0s",
                ));
            }
            if p.part_size < tidewater_sinks::parquet::MIN_PART_SIZE as u64 || p.part_size > 5 << 30
            {
                return Err(invalid(
                    format!("sinks.{name}.part_size"),
                    "expected between 5MiB and 5GiB (S3's part limits)",
                ));
            }
            if p.target_file_size == Some(0) {
                return Err(invalid(
                    format!("sinks.{name}.target_file_size"),
                    "expected more than 0 bytes",
                ));
            }
            if p.max_file_age.is_some_and(|a| a.is_zero()) {
                return Err(invalid(
                    format!("sinks.{name}.max_file_age"),
                    "expected more than 0s",
                ));
            }
        }
        Ok(())
    }
}

/// A `type = "bigquery"` sink's keys: `Err((key, what was expected))`.
fn check_bigquery(name: &str, b: &BigQuerySinkConfig) -> Result<(), (&'static str, String)> {
    use tidewater_sinks::bigquery::{Api, MAX_REQUEST_BYTES, MAX_ROWS_PER_REQUEST};
    let id = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    };
    if !id(&b.project) {
        return Err((
            "project",
            "expected a project id (letters, digits, -)".into(),
        ));
    }
    if b.dataset.is_empty()
        || !b
            .dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(("dataset", "expected letters, digits and _".into()));
    }
    if b.table.is_empty() {
        return Err(("table", "expected a table name".into()));
    }
    if b.max_rows_per_request == 0 || b.max_rows_per_request > MAX_ROWS_PER_REQUEST {
        return Err((
            "max_rows_per_request",
            format!("expected 1 to {MAX_ROWS_PER_REQUEST} (BigQuery's limit per request)"),
        ));
    }
    if b.max_request_bytes < 1024 || b.max_request_bytes > MAX_REQUEST_BYTES as u64 {
        return Err((
            "max_request_bytes",
            format!(
                "expected 1KiB to {MAX_REQUEST_BYTES} bytes (BigQuery refuses larger requests)"
            ),
        ));
    }
    if b.request_timeout.is_zero() {
        return Err(("request_timeout", "expected more than 0s".into()));
    }
    if b.concurrency == 0 {
        return Err(("concurrency", "expected at least 1".into()));
    }
    // Without an emulator `endpoint` (or with `credentials`), requests carry
    // a real Google token: never over plain HTTP.
    let real_token = b.endpoint.is_none() || b.credentials.is_some();
    for (key, url) in [
        ("endpoint", &b.endpoint),
        ("storage_endpoint", &b.storage_endpoint),
    ] {
        let Some(u) = url else { continue };
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err((key, format!("expected http://… or https://…, got {u:?}")));
        }
        if real_token && u.starts_with("http://") {
            return Err((
                key,
                "expected https://: requests carry Google credentials here, which must not cross plain HTTP (an http:// emulator takes no credentials: set endpoint and leave credentials unset)".into(),
            ));
        }
    }
    let api = b.api().map_err(|e| ("api", e))?;
    if api == Api::StorageWrite && b.endpoint.is_some() && b.storage_endpoint.is_none() {
        return Err((
            "storage_endpoint",
            format!("sinks.{name}.endpoint is an emulator: set the emulator's Storage Write (gRPC) URL too, e.g. http://127.0.0.1:9060"),
        ));
    }
    Ok(())
}

/// toml's message already quotes the line and names the key; add the line
/// number in words for people grepping logs.
fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            if message.contains("line") {
                message
            } else {
                format!("line {line}: {message}")
            }
        }
        None => message,
    }
}

/// Replace `${VAR}` with the variable's value; `$${` is a literal `${`.
fn substitute_env(text: &str, path: &Path) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let var = &after[..end];
        match std::env::var(var) {
            Ok(value) => out.push_str(&value),
            Err(_) => {
                let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
                return Err(ConfigError::MissingEnv {
                    path: path.to_path_buf(),
                    line,
                    var: var.to_string(),
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Format::Cri => "cri",
            Format::Docker => "docker",
            Format::Json => "json",
            Format::Text => "text",
            Format::Auto => "auto",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "state"
[sources.app]
type = "tail"
include = ["logs/*.log"]
exclude = []
format = "cri"
read_from = "beginning"
[batch]
max_rows = 10000
max_bytes = "8MiB"
max_age = "2s"
[sinks.lake]
type = "parquet"
url = "file://lake"
"#;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_example_loads() {
        let c = load(GOOD).expect("valid");
        assert_eq!(c.batch.max_bytes, 8 << 20);
        assert_eq!(c.batch.max_age, Duration::from_secs(2));
        let SourceConfig::Tail(t) = &c.sources["app"];
        assert_eq!(t.format, Format::Cri);
        assert_eq!(t.max_line_bytes, 1 << 20);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load(&GOOD.replace("exclude = []", "exclde = []")).expect_err("unknown key");
        assert!(e.contains("exclde"), "{e}");
        let e =
            load(&GOOD.replace("max_age = \"2s\"", "max_age = \"2 fortnights\"")).expect_err("bad");
        assert!(e.contains("max_age") && e.contains("duration"), "{e}");
        let e = load(&GOOD.replace("max_rows = 10000", "max_rows = \"many\"")).expect_err("type");
        assert!(e.contains("max_rows"), "{e}");
        let e = load(&GOOD.replace("format = \"cri\"", "format = \"xml\"")).expect_err("variant");
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn env_vars_are_substituted_and_missing_ones_named() {
        std::env::set_var("TIDEWATER_TEST_LAKE", "file://elsewhere");
        let c = load(&GOOD.replace("\"file://lake\"", "\"${TIDEWATER_TEST_LAKE}\"")).expect("ok");
        let SinkConfig::Parquet(p) = &c.sinks["lake"] else {
            panic!("the lake is a parquet sink");
        };
        assert_eq!(p.url, "file://elsewhere");
        let e = load(&GOOD.replace("\"state\"", "\"${TIDEWATER_NOT_SET_X}\"")).expect_err("unset");
        assert!(
            e.contains("TIDEWATER_NOT_SET_X") && e.contains("line 2"),
            "{e}"
        );
    }
}
