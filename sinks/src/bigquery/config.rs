//! `type = "bigquery"`: the keys of a BigQuery sink, their checks, and how
//! the sink is built and its table probed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use async_trait::async_trait;
use serde::Deserialize;

use super::{Api, BigQuerySink, Settings, TableTemplate, MAX_REQUEST_BYTES, MAX_ROWS_PER_REQUEST};
use crate::component::{Limits, SinkComponent, SinkContext};
use crate::config::{duration, size, Invalid, MAX_DURATION};
use crate::{Sink, SinkError};

/// `[sinks.<name>]` with `type = "bigquery"`: rows streamed into a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySinkConfig {
    pub project: String,
    pub dataset: String,
    /// Table name; `{column}` is replaced per row by that STRING column's
    /// value and `{date}` by the row's timestamp as `YYYYMMDD`, each reduced
    /// to letters, digits and `_` (one table per value).
    pub table: String,
    /// The table's BigQuery JSON schema; default: the pipeline's `schema`
    /// (with its `[[columns]]`), as `tidewater schema --format bigquery` prints it.
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// A service-account key file; default: Application Default
    /// Credentials, or none at all with an emulator `endpoint`.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// REST base URL of an emulator (`http://127.0.0.1:9050`); default: Google's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Storage Write API URL of an emulator (`http://127.0.0.1:9060`).
    #[serde(default)]
    pub storage_endpoint: Option<String>,
    /// `insert_all` or `storage_write` (see [`BigQuerySinkConfig::api`]).
    #[serde(default = "default_api", rename = "api")]
    pub api_name: String,
    #[serde(default)]
    pub create_table: bool,
    #[serde(default)]
    pub update_schema: bool,
    /// Where a created dataset lives.
    #[serde(default = "default_location")]
    pub location: String,
    /// Day partitioning of a created table; `""` for none.
    #[serde(default = "default_partition_field")]
    pub partition_field: String,
    /// Clustering columns of a created table.
    #[serde(default = "default_clustering")]
    pub clustering: Vec<String>,
    #[serde(default = "default_max_rows_per_request")]
    pub max_rows_per_request: usize,
    #[serde(default = "default_max_request_bytes", deserialize_with = "size")]
    pub max_request_bytes: u64,
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Batches this sink sends at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `at_least_once` or `exactly_once` (Storage Write only; see
    /// [`BigQuerySinkConfig::exactly_once`]).
    #[serde(default = "default_delivery")]
    pub delivery: String,
}

fn default_api() -> String {
    "insert_all".into()
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
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    4
}
fn default_delivery() -> String {
    "at_least_once".into()
}

impl BigQuerySinkConfig {
    /// The API named by `api` (a string, so that a bad value is reported
    /// by [`SinkComponent::check`] with its key).
    pub fn api(&self) -> Result<Api, String> {
        match self.api_name.as_str() {
            "insert_all" => Ok(Api::InsertAll),
            "storage_write" => Ok(Api::StorageWrite),
            other => Err(format!(
                "expected \"insert_all\" or \"storage_write\", got {other:?}"
            )),
        }
    }

    /// Whether `delivery = "exactly_once"`: committed streams at offsets,
    /// with a write-ahead ledger in the data dir.
    pub fn exactly_once(&self) -> Result<bool, String> {
        match self.delivery.as_str() {
            "at_least_once" => Ok(false),
            "exactly_once" => Ok(true),
            other => Err(format!(
                "expected \"at_least_once\" or \"exactly_once\", got {other:?}"
            )),
        }
    }

    /// The partitioning column of a created table, if any.
    pub(super) fn partition_field(&self) -> Option<&str> {
        Some(self.partition_field.as_str()).filter(|f| !f.is_empty())
    }

    pub(super) fn max_request_bytes(&self) -> usize {
        usize::try_from(self.max_request_bytes).unwrap_or(usize::MAX)
    }

    /// The sink's settings in `cx`, and its table's JSON schema.
    fn settings(&self, cx: &SinkContext<'_>) -> Result<(Settings, String), SinkError> {
        let schema_json = match &self.schema {
            Some(path) => {
                let path = cx.base_dir.join(path);
                std::fs::read_to_string(&path).map_err(|e| SinkError::Config {
                    sink: cx.name.to_string(),
                    key: "schema".into(),
                    reason: format!("cannot read {}: {e}", path.display()),
                })?
            }
            None => cx.bigquery_schema.to_string(),
        };
        let api = self.api().map_err(|reason| SinkError::Config {
            sink: cx.name.to_string(),
            key: "api".into(),
            reason,
        })?;
        let keys = Self {
            credentials: self.credentials.as_ref().map(|p| cx.base_dir.join(p)),
            ..self.clone()
        };
        let exactly_once = self
            .exactly_once()
            .map_err(|reason| SinkError::Config {
                sink: cx.name.to_string(),
                key: "delivery".into(),
                reason,
            })?
            .then(|| cx.data_dir.join("staging").join(cx.name).join("ledger"));
        let settings = Settings {
            name: cx.name.to_string(),
            api,
            keys,
            exactly_once,
        };
        Ok((settings, schema_json))
    }
}

#[async_trait]
impl SinkComponent for BigQuerySinkConfig {
    fn check(&self, _: &Limits) -> Result<(), Invalid> {
        let id = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        };
        if !id(&self.project) {
            return Err(Invalid::new(
                "project",
                "expected a project id (letters, digits, -)",
            ));
        }
        let dataset_chars = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if self.dataset.is_empty() || !self.dataset.chars().all(dataset_chars) {
            return Err(Invalid::new("dataset", "expected letters, digits and _"));
        }
        if self.table.is_empty() {
            return Err(Invalid::new("table", "expected a table name"));
        }
        if self.max_rows_per_request == 0 || self.max_rows_per_request > MAX_ROWS_PER_REQUEST {
            return Err(Invalid::new(
                "max_rows_per_request",
                format!("expected 1 to {MAX_ROWS_PER_REQUEST} (BigQuery's limit per request)"),
            ));
        }
        if self.max_request_bytes < 1024 || self.max_request_bytes > MAX_REQUEST_BYTES as u64 {
            return Err(Invalid::new(
                "max_request_bytes",
                format!(
                    "expected 1KiB to {MAX_REQUEST_BYTES} bytes (BigQuery refuses larger requests)"
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Invalid::new(
                "request_timeout",
                "must be more than 0s: no request to BigQuery can finish in 0s",
            ));
        }
        if self.request_timeout > MAX_DURATION {
            return Err(Invalid::new("request_timeout", "expected at most 365 days"));
        }
        if self.location.is_empty() {
            return Err(Invalid::new(
                "location",
                "expected a BigQuery location, e.g. \"US\"",
            ));
        }
        if self.clustering.len() > 4 {
            return Err(Invalid::new(
                "clustering",
                "expected at most 4 columns (BigQuery's limit)",
            ));
        }
        if self.clustering.iter().any(String::is_empty) {
            return Err(Invalid::new(
                "clustering",
                "a column name must not be empty",
            ));
        }
        if self.concurrency == 0 {
            return Err(Invalid::new("concurrency", "expected at least 1"));
        }
        // Without an emulator `endpoint` (or with `credentials`), requests
        // carry a real Google token: never over plain HTTP.
        let real_token = self.endpoint.is_none() || self.credentials.is_some();
        for (key, url) in [
            ("endpoint", &self.endpoint),
            ("storage_endpoint", &self.storage_endpoint),
        ] {
            let Some(u) = url else { continue };
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Invalid::new(
                    key,
                    format!("expected http://… or https://…, got {u:?}"),
                ));
            }
            if real_token && u.starts_with("http://") {
                return Err(Invalid::new(
                    key,
                    "expected https://: requests carry Google credentials here, which must not cross plain HTTP (an http:// emulator takes no credentials: set endpoint and leave credentials unset)",
                ));
            }
        }
        let api = self.api().map_err(|e| Invalid::new("api", e))?;
        let exactly_once = self
            .exactly_once()
            .map_err(|e| Invalid::new("delivery", e))?;
        if exactly_once && api != Api::StorageWrite {
            return Err(Invalid::new(
                "delivery",
                "\"exactly_once\" needs api = \"storage_write\" (committed streams with offsets); insertAll's insertIds only de-duplicate for about a minute",
            ));
        }
        if api == Api::StorageWrite && self.endpoint.is_some() && self.storage_endpoint.is_none() {
            return Err(Invalid::new(
                "storage_endpoint",
                "endpoint is set to an emulator: set the emulator's Storage Write (gRPC) URL too, e.g. http://127.0.0.1:9060",
            ));
        }
        Ok(())
    }

    /// The table template names columns the schema has, and a `schema`
    /// file (read relative to the working directory, as `run` does) is a
    /// BigQuery JSON schema.
    fn check_schema(&self, schema: &Schema) -> Result<(), Invalid> {
        TableTemplate::parse(&self.table, schema)
            .map_err(|reason| Invalid::new("table", reason))?;
        if let Some(path) = &self.schema {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Invalid::new("schema", format!("cannot read {}: {e}", path.display()))
            })?;
            serde_json::from_str::<Vec<serde_json::Map<String, serde_json::Value>>>(&text)
                .map_err(|e| {
                    Invalid::new(
                        "schema",
                        format!(
                            "{} is not a BigQuery JSON schema (an array of columns): {e}",
                            path.display()
                        ),
                    )
                })?;
        }
        Ok(())
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Creates and checks a table without placeholders now (see
    /// [`BigQuerySink`]).
    async fn build(&self, cx: &SinkContext<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        let (settings, schema_json) = self.settings(cx)?;
        let sink = BigQuerySink::connect(settings, &schema_json, cx.schema).await?;
        Ok(Arc::new(sink))
    }

    /// Read the table's definition; nothing is created or altered.
    async fn healthcheck(&self, cx: &SinkContext<'_>) -> Result<String, SinkError> {
        let (mut settings, schema_json) = self.settings(cx)?;
        settings.keys.create_table = false;
        settings.keys.update_schema = false;
        // The data dir is not touched.
        settings.exactly_once = None;
        let sink = BigQuerySink::connect(settings, &schema_json, cx.schema).await?;
        let table = sink.probe().await?;
        Ok(format!("reachable: table {table}"))
    }

    fn healthcheck_timeout(&self) -> Duration {
        self.request_timeout * 4
    }
}
