//! The TOML configuration: Vector-style named sources and sinks.
//!
//! Loading parses the TOML, substitutes `${VAR}` from the environment in its
//! string values (not in keys or comments; `$${` is a literal `${`), rejects
//! unknown keys, and checks what serde cannot: at least one source and one
//! sink, and every duration, size and count against what `run` and the
//! sinks can work with. Every error names the file, the key and what was
//! expected.

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
    /// Read by `tidewater notify`; `run` does not use it, but when present
    /// it is checked like the rest, so that `validate` covers a file shared
    /// by both commands.
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
    /// What `tidewater notify` cannot run with; keys relative to `[notify]`.
    fn check_keys(&self) -> Result<(), Bad> {
        if !(self.url.starts_with("amqp://") || self.url.starts_with("amqps://")) {
            return Err(bad("url", "expected amqp://… or amqps://…"));
        }
        amqp_name("exchange", &self.exchange, 255)?;
        // `<queue>.dead` must be a valid name too.
        amqp_name("queue", &self.queue, 250)?;
        amqp_name("binding_key", &self.binding_key, 255)?;
        match (&self.webhook_url, &self.webhook_url_file) {
            (None, None) => {
                return Err(bad(
                    "webhook_url",
                    "set webhook_url (e.g. \"${SLACK_WEBHOOK_URL}\") or webhook_url_file",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(bad(
                    "webhook_url_file",
                    "set webhook_url or webhook_url_file, not both",
                ))
            }
            (Some(u), None) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                return Err(bad("webhook_url", "expected an http(s):// URL"))
            }
            (None, Some(f)) if f.as_os_str().is_empty() => {
                return Err(bad("webhook_url_file", "must not be empty"))
            }
            _ => {}
        }
        positive_duration(
            "group_window",
            self.group_window,
            "repeats of an event are counted within it",
        )?;
        // 0: no spacing between posts (Slack's 429s are still obeyed).
        bounded_duration("min_interval", self.min_interval)?;
        if self.max_attempts == 0 {
            return Err(bad(
                "max_attempts",
                "must be at least 1: with 0 no post would ever be tried",
            ));
        }
        if self.prefetch == 0 {
            return Err(bad(
                "prefetch",
                "must be at least 1: to the broker, a prefetch of 0 means no limit at all",
            ));
        }
        if let Some(t) = &self.link_template {
            if !(t.starts_with("https://") || t.starts_with("http://")) {
                return Err(bad("link_template", "expected an http(s):// URL"));
            }
            placeholders(
                t,
                &["fingerprint", "namespace", "container", "pod", "level"],
            )
            .map_err(|m| bad("link_template", m))?;
        }
        positive_duration(
            "shutdown_timeout",
            self.shutdown_timeout,
            "0s would abandon a post in progress at once on SIGTERM (its messages go back to the queue and are posted again later); for a quick stop use e.g. \"1s\"",
        )?;
        Ok(())
    }

    /// Read the `[notify]` table of a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let root = parse_document(&text, path, Some("notify"))?;
        let file: NotifyFile = deserialize_document(root, &text, path)?;
        let Some(n) = file.notify else {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "notify".into(),
                message:
                    "no [notify] table: tidewater notify needs url, exchange, queue and webhook_url"
                        .into(),
            });
        };
        n.check_keys().map_err(|bad| bad.under("notify").at(path))?;
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
    /// Rotated (renamed away or deleted) files kept open at most; past it a
    /// rotated file read to its end is closed before `rotate_wait`, and a
    /// new file waits until one is (the log files stay the buffer).
    #[serde(default = "default_max_rotated_files")]
    pub max_rotated_files: usize,
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
fn default_max_rotated_files() -> usize {
    32
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
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.is_empty() {
                return Err(bad(format!("columns[{i}].name"), "must not be empty"));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(bad(
                    format!("columns[{i}].name"),
                    format!("{:?} is declared twice", c.name),
                ));
            }
            if c.from.as_deref() == Some("") {
                return Err(bad(
                    format!("columns[{i}].from"),
                    format!(
                        "must not be empty (leave it out to read the key {:?})",
                        c.name
                    ),
                ));
            }
        }
        for (name, source) in &self.sources {
            let SourceConfig::Tail(tail) = source;
            let key = |k: &str| format!("sources.{name}.{k}");
            if tail.include.is_empty() {
                return Err(bad(key("include"), "expected at least one glob"));
            }
            for (k, globs) in [("include", &tail.include), ("exclude", &tail.exclude)] {
                for g in globs {
                    if g.is_empty() {
                        return Err(bad(key(k), "an empty glob matches nothing"));
                    }
                    if let Err(e) = glob::Pattern::new(g) {
                        return Err(bad(key(k), format!("{g:?} is not a valid glob: {e}")));
                    }
                }
            }
            if tail.max_line_bytes < 64 {
                return Err(bad(key("max_line_bytes"), "expected at least 64 bytes"));
            }
            positive_duration(
                &key("glob_interval"),
                tail.glob_interval,
                "0s would re-scan the globs without pause",
            )?;
            positive_duration(
                &key("rotate_wait"),
                tail.rotate_wait,
                "0s would close a rotated file the moment it is read to its end, while the writer may still be adding its last lines",
            )?;
            if tail.max_rotated_files == 0 {
                return Err(bad(
                    key("max_rotated_files"),
                    "expected at least 1 (a rotated file must be kept open to be read to its end)",
                ));
            }
        }
        if self.batch.max_rows == 0 {
            return Err(bad("batch.max_rows", "expected at least 1"));
        }
        if self.batch.max_bytes == 0 {
            return Err(bad("batch.max_bytes", "expected more than 0 bytes"));
        }
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
        positive_duration(
            "batch.max_age",
            self.batch.max_age,
            "an open batch is flushed when it is this old",
        )?;
        for (name, sink) in &self.sinks {
            match sink {
                SinkConfig::Parquet(p) => self.check_parquet(name, p),
                SinkConfig::Bigquery(b) => check_bigquery(name, b)
                    .map_err(|(key, message)| bad(format!("sinks.{name}.{key}"), message)),
                SinkConfig::Amqp(a) => check_amqp(name, a),
            }?;
        }
        if let Some(n) = &self.notify {
            n.check_keys().map_err(|bad| bad.under("notify"))?;
        }
        Ok(())
    }

    fn check_parquet(&self, name: &str, p: &ParquetSinkConfig) -> Result<(), Bad> {
        let key = |k: &str| format!("sinks.{name}.{k}");
        tidewater_sinks::KeyTemplate::parse(&p.path_template)
            .map_err(|reason| bad(key("path_template"), reason))?;
        if p.zstd_level != 0 {
            parquet::basic::ZstdLevel::try_new(p.zstd_level).map_err(|e| {
                bad(
                    key("zstd_level"),
                    format!("expected 0 (uncompressed) or a zstd level: {e}"),
                )
            })?;
        }
        if p.concurrency == 0 {
            return Err(bad(key("concurrency"), "expected at least 1"));
        }
        if p.part_size < tidewater_sinks::parquet::MIN_PART_SIZE as u64 || p.part_size > 5 << 30 {
            return Err(bad(
                key("part_size"),
                "expected between 5MiB and 5GiB (S3's part limits)",
            ));
        }
        let share = self.parquet_buffer_limit();
        let least = tidewater_sinks::parquet::min_buffer_limit(
            usize::try_from(p.part_size).unwrap_or(usize::MAX),
        ) as u64;
        if p.rolling().is_some() && share < least {
            return Err(bad(
                key("part_size"),
                format!(
                    "with memory_limit {} each Parquet sink has {} for its buffers, and a rolling sink needs {} (two parts and the row groups of its open files): lower part_size (at least 5MiB) or raise memory_limit",
                    bytesize::ByteSize(self.memory_limit).display().iec(),
                    bytesize::ByteSize(share).display().iec(),
                    bytesize::ByteSize(least).display().iec(),
                ),
            ));
        }
        if let Err(tidewater_sinks::SinkError::Config { key: k, reason, .. }) =
            tidewater_sinks::store::check(name, &p.url, &p.store_options())
        {
            return Err(bad(key(k), reason));
        }
        positive_duration(
            &key("request_timeout"),
            p.request_timeout,
            "no request to the store can finish in 0s",
        )?;
        if p.target_file_size == Some(0) {
            return Err(bad(key("target_file_size"), "expected more than 0 bytes"));
        }
        if let Some(age) = p.max_file_age {
            positive_duration(
                &key("max_file_age"),
                age,
                "a combined file is completed when it is this old",
            )?;
        }
        if let Some((_, age)) = p.rolling() {
            if age < self.batch.max_age {
                return Err(bad(
                    key("max_file_age"),
                    format!(
                        "expected at least batch.max_age ({}): a batch can take that long to fill, so files would be completed before a second batch could join them",
                        humantime::format_duration(self.batch.max_age)
                    ),
                ));
            }
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
            match sink {
                SinkConfig::Parquet(p) => {
                    tidewater_sinks::KeyTemplate::parse(&p.path_template)
                        .and_then(|t| t.check_schema(&arrow))
                        .map_err(|reason| bad(format!("sinks.{name}.path_template"), reason))?;
                }
                SinkConfig::Bigquery(b) => {
                    check_table_template(&b.table, &arrow)
                        .map_err(|reason| bad(format!("sinks.{name}.table"), reason))?;
                    if let Some(path) = &b.schema {
                        let key = format!("sinks.{name}.schema");
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            bad(&key, format!("cannot read {}: {e}", path.display()))
                        })?;
                        serde_json::from_str::<Vec<serde_json::Map<String, serde_json::Value>>>(
                            &text,
                        )
                        .map_err(|e| {
                            bad(
                                &key,
                                format!(
                                    "{} is not a BigQuery JSON schema (an array of columns): {e}",
                                    path.display()
                                ),
                            )
                        })?;
                    }
                }
                SinkConfig::Amqp(_) => {}
            }
        }
        Ok(())
    }
}

/// A `type = "amqp"` sink's keys.
fn check_amqp(name: &str, a: &AmqpSinkConfig) -> Result<(), Bad> {
    let key = |k: &str| format!("sinks.{name}.{k}");
    if let Err(e) = tidewater_sinks::when::Condition::parse(&a.when) {
        return Err(bad(key("when"), e.to_string()));
    }
    if !(a.url.starts_with("amqp://") || a.url.starts_with("amqps://")) {
        return Err(bad(key("url"), "expected amqp://… or amqps://…"));
    }
    amqp_name(&key("exchange"), &a.exchange, 255)?;
    if a.routing_key.len() > 255 {
        return Err(bad(
            key("routing_key"),
            "expected at most 255 bytes (AMQP's limit)",
        ));
    }
    placeholders(
        &a.routing_key,
        &["namespace", "container", "pod", "node", "level"],
    )
    .map_err(|m| bad(key("routing_key"), m))?;
    if let Some(i) = a.fields.iter().position(String::is_empty) {
        return Err(bad(
            format!("sinks.{name}.fields[{i}]"),
            "must not be empty",
        ));
    }
    if let Some(q) = &a.queue {
        amqp_name(&key("queue"), q, 250)?;
        amqp_name(&key("binding_key"), &a.binding_key, 255)?;
    }
    positive_duration(
        &key("confirm_timeout"),
        a.confirm_timeout,
        "every batch would time out waiting for the broker's confirms",
    )?;
    Ok(())
}

/// `{date}` or a STRING column in each placeholder of a BigQuery table name
/// (what the sink's own parser accepts).
fn check_table_template(template: &str, schema: &arrow::datatypes::Schema) -> Result<(), String> {
    use arrow::datatypes::{DataType, TimeUnit};
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{template:?}: an unclosed {{"))?;
        let name = &rest[open + 1..open + close];
        if name == "date" {
            let ok = schema.field_with_name("timestamp").is_ok_and(|f| {
                matches!(f.data_type(), DataType::Timestamp(TimeUnit::Microsecond, _))
            });
            if !ok {
                return Err("{date} needs the TIMESTAMP column \"timestamp\"".into());
            }
        } else {
            match schema.field_with_name(name) {
                Ok(f) if f.data_type() == &DataType::Utf8 => {}
                Ok(_) => return Err(format!("{{{name}}} is not a STRING column")),
                Err(_) => {
                    return Err(format!(
                        "{{{name}}} is neither {{date}} nor a column of the schema"
                    ))
                }
            }
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// A key that cannot be used, and why; `at` makes it a [`ConfigError`].
#[derive(Debug)]
struct Bad {
    key: String,
    message: String,
}

fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        message: message.into(),
    }
}

impl Bad {
    /// The same, for a key inside the table `table`.
    fn under(self, table: &str) -> Self {
        Self {
            key: format!("{table}.{}", self.key),
            ..self
        }
    }

    fn at(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            key: self.key,
            message: self.message,
        }
    }
}

/// The longest duration accepted anywhere: longer ones cannot be added to
/// a clock reading (`Instant + Duration` overflows) and are surely a slip.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration that must be more than 0 (`why` says what it is for) and at
/// most [`MAX_DURATION`].
fn positive_duration(key: &str, d: Duration, why: &str) -> Result<(), Bad> {
    if d.is_zero() {
        return Err(bad(key, format!("must be more than 0s: {why}")));
    }
    bounded_duration(key, d)
}

/// A duration where 0 means "not at all", at most [`MAX_DURATION`].
fn bounded_duration(key: &str, d: Duration) -> Result<(), Bad> {
    if d > MAX_DURATION {
        return Err(bad(
            key,
            format!(
                "expected at most 365 days, got {}",
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

/// An exchange, queue or binding key: not empty, at most `max` bytes (AMQP
/// allows 255).
fn amqp_name(key: &str, value: &str, max: usize) -> Result<(), Bad> {
    if value.is_empty() {
        return Err(bad(key, "must not be empty"));
    }
    if value.len() > max {
        return Err(bad(
            key,
            format!("expected at most {max} bytes (AMQP's limit is 255)"),
        ));
    }
    Ok(())
}

/// Every `{name}` in `template` is one of `known`, and every `{` is closed.
fn placeholders(template: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("{template:?}: an unclosed {{"));
        };
        let name = &rest[open + 1..open + close];
        if !known.contains(&name) {
            let known: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
            return Err(format!(
                "{template:?}: unknown placeholder {{{name}}}; expected {}",
                known.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
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
        return Err((
            "request_timeout",
            "must be more than 0s: no request to BigQuery can finish in 0s".into(),
        ));
    }
    if b.request_timeout > MAX_DURATION {
        return Err(("request_timeout", "expected at most 365 days".into()));
    }
    if b.location.is_empty() {
        return Err((
            "location",
            "expected a BigQuery location, e.g. \"US\"".into(),
        ));
    }
    if b.clustering.len() > 4 {
        return Err((
            "clustering",
            "expected at most 4 columns (BigQuery's limit)".into(),
        ));
    }
    if b.clustering.iter().any(String::is_empty) {
        return Err(("clustering", "a column name must not be empty".into()));
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
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            if message.contains("line") {
                message
            } else {
                format!("line {line}: {message}")
            }
        }
        None => message,
    }
}

/// Parse a configuration document and substitute `${VAR}` in its string
/// values (never in keys, comments or the TOML syntax around them). The
/// spans are kept, so later errors can still point at a line. With `only`,
/// just that top-level table is substituted (the rest is not read).
fn parse_document<'i>(
    text: &'i str,
    path: &Path,
    only: Option<&str>,
) -> Result<toml::Spanned<toml::de::DeTable<'i>>, ConfigError> {
    let mut root = toml::de::DeTable::parse(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(&e, text),
    })?;
    match only {
        None => substitute_table(root.get_mut(), "", text, path)?,
        Some(only) => {
            for (key, value) in root.get_mut().iter_mut() {
                if key.get_ref() == only {
                    substitute_value(value, only, text, path)?;
                }
            }
        }
    }
    Ok(root)
}

/// Deserialize a parsed (and substituted) document; errors keep their
/// line and column.
fn deserialize_document<'i, T: Deserialize<'i>>(
    root: toml::Spanned<toml::de::DeTable<'i>>,
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    T::deserialize(toml::de::Deserializer::from(root)).map_err(|mut e| {
        e.set_input(Some(text));
        ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(&e, text),
        }
    })
}

fn substitute_table(
    table: &mut toml::de::DeTable<'_>,
    prefix: &str,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        let key = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        substitute_value(value, &key, text, path)?;
    }
    Ok(())
}

fn substitute_value(
    value: &mut toml::Spanned<toml::de::DeValue<'_>>,
    key: &str,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    let span = value.span();
    match value.get_mut() {
        toml::de::DeValue::String(s) if s.contains('$') => {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            let replaced =
                substitute_env(s, |var| std::env::var(var).ok()).map_err(|e| match e {
                    Substitution::Unset(var) => ConfigError::MissingEnv {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        line,
                        var,
                    },
                    Substitution::Malformed(message) => ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        message,
                    },
                })?;
            *s = replaced.into();
        }
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{key}[{i}]"), text, path)?;
            }
        }
        toml::de::DeValue::Table(table) => substitute_table(table, key, text, path)?,
        _ => {}
    }
    Ok(())
}

/// Why a string's `${VAR}` could not be replaced.
#[derive(Debug, PartialEq, Eq)]
enum Substitution {
    /// The variable is not set.
    Unset(String),
    /// `${` without `}`, or `${}`.
    Malformed(String),
}

/// Replace `${VAR}` in one string value with `lookup(VAR)`; `$${` is a
/// literal `${`. A `$` not followed by `{` stays as it is.
fn substitute_env(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Substitution> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(Substitution::Malformed(format!(
                    "{value:?} has a ${{ without a closing }} (write $${{ for a literal ${{)"
                )));
            };
            let var = &after[..end];
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Substitution::Malformed(format!(
                    "${{{var}}} is not an environment variable name (letters, digits and _; write $${{ for a literal ${{)"
                )));
            }
            out.push_str(&lookup(var).ok_or_else(|| Substitution::Unset(var.to_string()))?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
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
            e.contains("data_dir: environment variable TIDEWATER_NOT_SET_X is not set")
                && e.contains("line 2"),
            "{e}"
        );
    }

    #[test]
    fn unset_variables_are_named_with_their_key_path() {
        let e = load(&GOOD.replace("\"file://lake\"", "\"file://${TIDEWATER_NOT_SET_Y}\""))
            .expect_err("unset");
        assert!(
            e.contains("sinks.lake.url: environment variable TIDEWATER_NOT_SET_Y is not set"),
            "{e}"
        );
        let e = load(&GOOD.replace("\"logs/*.log\"", "\"a\", \"${TIDEWATER_NOT_SET_Y}/*.log\""))
            .expect_err("unset");
        assert!(
            e.contains("sources.app.include[1]: environment variable"),
            "{e}"
        );
        let e = load(&format!(
            "{GOOD}\n[[columns]]\nname = \"x\"\ntype = \"STRING\"\nfrom = \"${{TIDEWATER_NOT_SET_Y}}\"\n"
        ))
        .expect_err("unset");
        assert!(e.contains("columns[0].from: environment variable"), "{e}");
    }

    #[test]
    fn substituted_values_cannot_change_the_toml() {
        // Before, substitution was textual: this value ended the string and
        // added a key (or broke the file).
        let tricky = "st\"ate\\dir\nmax_rows = 1 ${NOT_A_REFERENCE}";
        std::env::set_var("TIDEWATER_TEST_TRICKY", tricky);
        let c = load(&GOOD.replace("\"state\"", "\"${TIDEWATER_TEST_TRICKY}\"")).expect("ok");
        assert_eq!(c.data_dir, PathBuf::from(tricky), "taken as it is, once");
        assert_eq!(c.batch.max_rows, 10_000);
    }

    #[test]
    fn references_in_comments_need_nothing_set() {
        let text = GOOD.replace(
            "[batch]",
            "# url = \"${TIDEWATER_NOT_SET_IN_COMMENT}\"\n[batch] # ${TIDEWATER_NOT_SET_EITHER}",
        );
        load(&text).expect("comments are not substituted");
    }

    #[test]
    fn dollar_dollar_brace_is_a_literal() {
        let c = load(&GOOD.replace("\"state\"", "\"a$${HOME}b$c$$d\"")).expect("ok");
        assert_eq!(c.data_dir, PathBuf::from("a${HOME}b$c$$d"));
        let e = load(&GOOD.replace("\"state\"", "\"a${HOME\"")).expect_err("unclosed");
        assert!(
            e.contains("data_dir: ") && e.contains("without a closing"),
            "{e}"
        );
        let e = load(&GOOD.replace("\"state\"", "\"a${}\"")).expect_err("empty");
        assert!(
            e.contains("data_dir: ") && e.contains("not an environment variable name"),
            "{e}"
        );
    }

    #[test]
    fn substitution_is_one_pass() {
        let env = |v: &str| match v {
            "A" => Some("${B}".to_string()),
            "B" => Some("b".to_string()),
            _ => None,
        };
        assert_eq!(substitute_env("x${A}y", env).as_deref(), Ok("x${B}y"));
        assert_eq!(substitute_env("${B}${B}", env).as_deref(), Ok("bb"));
        assert_eq!(substitute_env("$${A}", env).as_deref(), Ok("${A}"));
        assert_eq!(
            substitute_env("${C}", env),
            Err(Substitution::Unset("C".into()))
        );
        assert_eq!(substitute_env("100$", env).as_deref(), Ok("100$"));
    }

    #[test]
    fn syntax_errors_and_unknown_keys_keep_their_line_and_column() {
        let e = load(&GOOD.replace("max_rows = 10000", "max_rows = = 3")).expect_err("syntax");
        assert!(e.contains("line 10"), "{e}");
        let e = load(&GOOD.replace("exclude = []", "exclde = []")).expect_err("unknown key");
        // serde reports an unknown key at its table's header.
        assert!(e.contains("exclde") && e.contains("line 3"), "{e}");
        let e = load(&GOOD.replace("max_rows = 10000", "max_rows = \"many\"")).expect_err("type");
        assert!(e.contains("max_rows") && e.contains("line 10"), "{e}");
    }

    #[test]
    fn notify_substitutes_only_its_own_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("both.toml");
        std::env::set_var("TIDEWATER_TEST_HOOK", "https://hooks.example/x\"y");
        std::fs::write(
            &path,
            format!(
                "{}\n[notify]\nurl = \"amqp://localhost\"\nexchange = \"e\"\nqueue = \"q\"\nwebhook_url = \"${{TIDEWATER_TEST_HOOK}}\"\n",
                GOOD.replace("\"file://lake\"", "\"${TIDEWATER_NOT_SET_FOR_NOTIFY}\"")
            ),
        )
        .expect("write");
        let n = NotifyConfig::load(&path).expect("the sinks' variables are not notify's");
        assert_eq!(n.webhook_url.as_deref(), Some("https://hooks.example/x\"y"));
    }

    /// `GOOD` with an AMQP sink (plus `extra` lines in it).
    fn with_amqp(extra: &str) -> String {
        format!("{GOOD}\n[sinks.alerts]\ntype = \"amqp\"\nurl = \"amqp://localhost\"\nexchange = \"errors\"\n{extra}")
    }

    /// `GOOD` with a BigQuery sink (plus `extra` lines in it).
    fn with_bigquery(extra: &str) -> String {
        format!("{GOOD}\n[sinks.wh]\ntype = \"bigquery\"\nproject = \"p\"\ndataset = \"d\"\ntable = \"t\"\n{extra}")
    }

    /// `GOOD` with a `[notify]` table (plus `extra` lines in it).
    fn with_notify(extra: &str) -> String {
        format!("{GOOD}\n[notify]\nurl = \"amqp://localhost\"\nexchange = \"e\"\nqueue = \"q\"\nwebhook_url = \"https://hooks.example/x\"\n{extra}")
    }

    #[test]
    fn what_cannot_run_is_refused_with_its_key() {
        let top = |line: &str| format!("{line}\n{GOOD}");
        let source = |line: &str| {
            GOOD.replace(
                "read_from = \"beginning\"",
                &format!("read_from = \"beginning\"\n{line}"),
            )
        };
        let batch = |line: &str| GOOD.replace("max_age = \"2s\"", line);
        let lake = |line: &str| format!("{GOOD}{line}\n");
        let cases: Vec<(String, &str, &str)> = vec![
            (top("checkpoint_interval = \"0s\""), "checkpoint_interval: must be more than 0s", "timer"),
            (top("shutdown_timeout = \"0s\""), "shutdown_timeout: must be more than 0s", "in flight"),
            (top("shutdown_timeout = \"1000years\""), "shutdown_timeout: expected at most 365 days", ""),
            (top("lock_wait = \"1000years\""), "lock_wait: expected at most 365 days", ""),
            (top("schema = \"\""), "schema: must not be empty", ""),
            (top("schema = \"no/such/schema.json\""), "schema: schema no/such/schema.json", ""),
            (source("glob_interval = \"0s\""), "sources.app.glob_interval: must be more than 0s", ""),
            (source("rotate_wait = \"0s\""), "sources.app.rotate_wait: must be more than 0s", "writer"),
            (GOOD.replace("[\"logs/*.log\"]", "[\"\"]"), "sources.app.include: an empty glob", ""),
            (GOOD.replace("exclude = []", "exclude = [\"a/[\"]"), "sources.app.exclude:", "not a valid glob"),
            (batch("max_age = \"0s\""), "batch.max_age: must be more than 0s", ""),
            (batch("max_age = \"400days\""), "batch.max_age: expected at most 365 days", ""),
            (lake("request_timeout = \"0s\""), "sinks.lake.request_timeout: must be more than 0s", ""),
            (lake("concurrency = 0"), "sinks.lake.concurrency: expected at least 1", ""),
            (lake("zstd_level = 23"), "sinks.lake.zstd_level: expected 0 (uncompressed) or a zstd level", ""),
            (lake("path_template = \"{dt}.parquet\""), "sinks.lake.path_template:", "no {id}"),
            (lake("path_template = \"{dt}/{team}/{id}.parquet\""), "sinks.lake.path_template:", "\"team\""),
            (lake("part_size = \"1MiB\""), "sinks.lake.part_size: expected between 5MiB and 5GiB", ""),
            (lake("target_file_size = 0"), "sinks.lake.target_file_size: expected more than 0", ""),
            (lake("max_file_age = \"0s\""), "sinks.lake.max_file_age: must be more than 0s", ""),
            (lake("max_file_age = \"1s\""), "sinks.lake.max_file_age: expected at least batch.max_age (2s)", ""),
            (
                batch("max_age = \"10m\"") + "target_file_size = \"64MiB\"\n",
                "sinks.lake.max_file_age: expected at least batch.max_age (10m)",
                "",
            ),
            (format!("{GOOD}\n[[columns]]\nname = \"x\"\ntype = \"STRING\"\n[[columns]]\nname = \"x\"\ntype = \"INTEGER\"\n"), "columns[1].name: \"x\" is declared twice", ""),
            (format!("{GOOD}\n[[columns]]\nname = \"\"\ntype = \"STRING\"\n"), "columns[0].name: must not be empty", ""),
            (with_amqp("confirm_timeout = \"0s\""), "sinks.alerts.confirm_timeout: must be more than 0s", "confirms"),
            (with_amqp("routing_key = \"{namespace}.{app}\""), "sinks.alerts.routing_key:", "unknown placeholder {app}"),
            (with_amqp("routing_key = \"{namespace\""), "sinks.alerts.routing_key:", "unclosed"),
            (with_amqp("queue = \"\""), "sinks.alerts.queue: must not be empty", ""),
            (with_amqp("queue = \"q\"\nbinding_key = \"\""), "sinks.alerts.binding_key: must not be empty", ""),
            (with_amqp("exchange = \"\"").replace("exchange = \"errors\"\n", ""), "sinks.alerts.exchange: must not be empty", ""),
            (with_amqp("fields = [\"a\", \"\"]"), "sinks.alerts.fields[1]: must not be empty", ""),
            (with_amqp("when = 'level >= \"error\" pod'"), "sinks.alerts.when: column 18", ""),
            (with_bigquery("table = \"t_{nope}\"").replace("table = \"t\"\n", ""), "sinks.wh.table:", "neither {date} nor a column"),
            (with_bigquery("location = \"\""), "sinks.wh.location:", ""),
            (with_bigquery("clustering = [\"a\", \"b\", \"c\", \"d\", \"e\"]"), "sinks.wh.clustering: expected at most 4", ""),
            (with_bigquery("request_timeout = \"0s\""), "sinks.wh.request_timeout: must be more than 0s", ""),
            (with_bigquery("schema = \"no/such/bq.json\""), "sinks.wh.schema: cannot read no/such/bq.json", ""),
            (with_notify("shutdown_timeout = \"0s\""), "notify.shutdown_timeout: must be more than 0s", ""),
            (with_notify("group_window = \"0s\""), "notify.group_window: must be more than 0s", ""),
            (with_notify("prefetch = 0"), "notify.prefetch: must be at least 1", ""),
            (with_notify("max_attempts = 0"), "notify.max_attempts: must be at least 1", ""),
            (with_notify("link_template = \"https://x/{finger}\""), "notify.link_template:", "unknown placeholder {finger}"),
            (with_notify("link_template = \"x/{fingerprint}\""), "notify.link_template: expected an http(s)", ""),
            (with_notify("min_interval = \"1000years\""), "notify.min_interval: expected at most", ""),
        ];
        for (text, says, also) in cases {
            let e = load(&text).expect_err(says);
            assert!(
                e.contains(says) && e.contains(also),
                "expected {says:?} and {also:?}, got: {e}"
            );
        }
    }

    #[test]
    fn what_can_run_is_accepted() {
        for text in [
            format!("lock_wait = \"0s\"\n{GOOD}"),
            format!("{GOOD}zstd_level = 0\n"),
            format!("{GOOD}zstd_level = -5\n"),
            format!("{GOOD}max_file_age = \"2s\"\n"),
            with_amqp("when = 'level >= \"error\" AND pod == \"x\"'\nrouting_key = \"{pod}.{node}\""),
            with_bigquery("clustering = []")
                .replace("table = \"t\"", "table = \"t_{namespace}_{date}\""),
            with_notify("min_interval = \"0s\"\nlink_template = \"https://x/?f={fingerprint}&n={namespace}\""),
        ] {
            load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }
}
