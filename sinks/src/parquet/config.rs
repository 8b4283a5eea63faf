//! `type = "parquet"`: the keys of a Parquet sink, their checks, and how
//! the sink is built and probed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use async_trait::async_trait;
use serde::Deserialize;

use super::{min_buffer_limit, ParquetSink, Probe, Rolling, DEFAULT_PART_SIZE, MIN_PART_SIZE};
use crate::component::{Limits, SinkComponent, SinkContext};
use crate::config::{
    duration, optional_duration, optional_size, positive_duration, show_size, size, Invalid,
};
use crate::store::StoreOptions;
use crate::{KeyTemplate, Sink, SinkError};

/// `[sinks.<name>]` with `type = "parquet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// `file://path`, `s3://bucket/prefix` or `gs://bucket/prefix`.
    pub url: String,
    /// Object key template, see [`KeyTemplate`].
    #[serde(default = "default_path_template")]
    pub path_template: String,
    /// zstd level (1 is the measured sweet spot); 0 turns compression off.
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

/// The default key template: Hive-style date and hour, then namespace and pod.
pub const DEFAULT_PATH_TEMPLATE: &str = "dt={dt}/hour={hour}/{namespace}/{pod}/{id}.parquet";

fn default_path_template() -> String {
    DEFAULT_PATH_TEMPLATE.to_string()
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
    DEFAULT_PART_SIZE as u64
}

impl ParquetSinkConfig {
    /// How to reach the store.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
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

    /// The part size as the upload code counts it.
    pub(super) fn part_bytes(&self) -> usize {
        usize::try_from(self.part_size).unwrap_or(usize::MAX)
    }

    /// Where and when batches are combined, for a sink built in `cx`.
    pub(super) fn rolling_in(&self, cx: &SinkContext<'_>) -> Option<Rolling> {
        self.rolling()
            .map(|(target_file_size, max_file_age)| Rolling {
                target_file_size,
                max_file_age,
                staging_dir: cx.data_dir.join("staging").join(cx.name),
            })
    }
}

#[async_trait]
impl SinkComponent for ParquetSinkConfig {
    fn check(&self, limits: &Limits) -> Result<(), Invalid> {
        KeyTemplate::parse(&self.path_template)
            .map_err(|reason| Invalid::new("path_template", reason))?;
        if self.zstd_level != 0 {
            parquet::basic::ZstdLevel::try_new(self.zstd_level).map_err(|e| {
                Invalid::new(
                    "zstd_level",
                    format!("expected 0 (uncompressed) or a zstd level: {e}"),
                )
            })?;
        }
        if self.concurrency == 0 {
            return Err(Invalid::new("concurrency", "expected at least 1"));
        }
        if self.part_size < MIN_PART_SIZE as u64 || self.part_size > 5 << 30 {
            return Err(Invalid::new(
                "part_size",
                "expected between 5MiB and 5GiB (S3's part limits)",
            ));
        }
        let least = min_buffer_limit(self.part_bytes()) as u64;
        if self.rolling().is_some() && limits.buffer_limit < least {
            return Err(Invalid::new(
                "part_size",
                format!(
                    "with memory_limit {} each Parquet sink has {} for its buffers, and a rolling sink needs {} (two parts and the row groups of its open files): lower part_size (at least 5MiB) or raise memory_limit",
                    show_size(limits.memory_limit),
                    show_size(limits.buffer_limit),
                    show_size(least),
                ),
            ));
        }
        crate::store::check(&self.url, &self.store_options())?;
        positive_duration(
            "request_timeout",
            self.request_timeout,
            "no request to the store can finish in 0s",
        )?;
        if self.target_file_size == Some(0) {
            return Err(Invalid::new(
                "target_file_size",
                "expected more than 0 bytes",
            ));
        }
        if let Some(age) = self.max_file_age {
            positive_duration(
                "max_file_age",
                age,
                "a combined file is completed when it is this old",
            )?;
        }
        if let Some((_, age)) = self.rolling() {
            if age < limits.batch_max_age {
                return Err(Invalid::new(
                    "max_file_age",
                    format!(
                        "expected at least batch.max_age ({}): a batch can take that long to fill, so files would be completed before a second batch could join them",
                        humantime::format_duration(limits.batch_max_age)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_schema(&self, schema: &Schema) -> Result<(), Invalid> {
        KeyTemplate::parse(&self.path_template)
            .and_then(|t| t.check_schema(schema))
            .map_err(|reason| Invalid::new("path_template", reason))
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn buffers_in_memory(&self) -> bool {
        true
    }

    async fn build(&self, cx: &SinkContext<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(ParquetSink::new(self, cx, self.rolling_in(cx))?))
    }

    /// List the prefix and read the newest object's footer.
    async fn healthcheck(&self, cx: &SinkContext<'_>) -> Result<String, SinkError> {
        let probe = ParquetSink::new(self, cx, None)?.probe().await?;
        Ok(describe(&probe))
    }

    fn healthcheck_timeout(&self) -> Duration {
        self.request_timeout * 4
    }
}

fn describe(p: &Probe) -> String {
    let newest = match &p.newest {
        Some((key, rows)) => format!(", newest {key} ({rows} rows)"),
        None => String::new(),
    };
    format!(
        "reachable: {} holds {} Parquet objects, {} bytes{newest}",
        p.destination, p.objects, p.bytes
    )
}
