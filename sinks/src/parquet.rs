//! Parquet files on an object store.
//!
//! Each batch becomes one Parquet object per distinct key of the template
//! (by default one per hour and pod). Keys are deterministic per batch, so a
//! retried batch overwrites what an earlier attempt may have left. A batch is
//! [`Delivery::Delivered`] only once every one of its objects is complete in
//! the store.

use std::path::Path as FsPath;
use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::store::{self, Location};
use crate::{Delivery, KeyTemplate, RejectedRow, Sink, SinkBatch, SinkError};

/// The default key template: Hive-style date and hour, then namespace and pod.
pub const DEFAULT_PATH_TEMPLATE: &str = "dt={dt}/hour={hour}/{namespace}/{pod}/{id}.parquet";

/// Settings of a Parquet sink.
#[derive(Debug, Clone)]
pub struct ParquetConfig {
    /// `file://path` (relative to the working directory, or absolute).
    pub url: String,
    /// Object key template, see [`KeyTemplate`].
    pub path_template: String,
    /// zstd level (1 is the measured sweet spot); 0 turns compression off.
    pub zstd_level: i32,
    /// Columns written without dictionary encoding or min/max statistics:
    /// high-cardinality ones (messages, JSON bodies), where a dictionary and
    /// byte-wise min/max comparisons cost CPU and help no query.
    pub plain_columns: Vec<String>,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            url: "file://lake".into(),
            path_template: DEFAULT_PATH_TEMPLATE.into(),
            zstd_level: 1,
            plain_columns: Vec::new(),
        }
    }
}

/// Writes batches as Parquet objects.
pub struct ParquetSink {
    name: String,
    location: Location,
    template: KeyTemplate,
    props: Arc<WriterProperties>,
}

impl ParquetSink {
    /// Open the destination and check the template against `schema`.
    pub fn new(
        name: &str,
        config: &ParquetConfig,
        schema: &SchemaRef,
        base_dir: &FsPath,
    ) -> Result<Self, SinkError> {
        let config_err = |key: &'static str, reason: String| SinkError::Config {
            sink: name.to_string(),
            key,
            reason,
        };
        let template = KeyTemplate::parse(&config.path_template)
            .map_err(|r| config_err("path_template", r))?;
        template
            .check_schema(schema)
            .map_err(|r| config_err("path_template", r))?;
        let compression = match config.zstd_level {
            0 => Compression::UNCOMPRESSED,
            level => Compression::ZSTD(
                ZstdLevel::try_new(level).map_err(|e| config_err("zstd_level", e.to_string()))?,
            ),
        };
        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(1 << 20));
        for column in &config.plain_columns {
            props = props
                .set_column_dictionary_enabled(column.as_str().into(), false)
                .set_column_statistics_enabled(column.as_str().into(), EnabledStatistics::None);
        }
        let props = props.build();
        let location = store::open(name, &config.url, base_dir)?;
        tracing::info!(sink = name, destination = %location.display, "parquet sink ready");
        Ok(Self {
            name: name.to_string(),
            location,
            template,
            props: Arc::new(props),
        })
    }

    async fn try_deliver(&self, batch: &SinkBatch) -> Result<(), SinkError> {
        let parts = self.template.partition(&batch.records, &batch.id);
        let records = batch.records.clone();
        let props = Arc::clone(&self.props);
        // Encoding is CPU work: keep it off the async threads.
        let encoded = tokio::task::spawn_blocking(move || encode_parts(&records, parts, &props))
            .await
            .map_err(|e| SinkError::Task(e.to_string()))??;
        for (key, bytes) in encoded {
            let path = Path::parse(format!("{}/{key}", self.location.prefix))
                .or_else(|_| Path::parse(&key))
                .map_err(object_store::Error::from)?;
            self.location
                .store
                .put(&path, PutPayload::from(bytes))
                .await?;
        }
        Ok(())
    }
}

/// Encode each part of a batch to an in-memory Parquet file.
fn encode_parts(
    records: &arrow::record_batch::RecordBatch,
    parts: Vec<(String, Vec<u32>)>,
    props: &WriterProperties,
) -> Result<Vec<(String, Vec<u8>)>, SinkError> {
    let single = parts.len() == 1;
    parts
        .into_iter()
        .map(|(key, rows)| {
            let part = if single {
                records.clone()
            } else {
                take_record_batch(records, &UInt32Array::from(rows))
                    .map_err(|e| SinkError::Encode(e.into()))?
            };
            let mut writer = ArrowWriter::try_new(Vec::new(), part.schema(), Some(props.clone()))?;
            writer.write(&part)?;
            Ok((key, writer.into_inner()?))
        })
        .collect()
}

#[async_trait]
impl Sink for ParquetSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &SinkBatch) -> Delivery {
        if batch.records.num_rows() == 0 {
            return Delivery::Delivered;
        }
        match self.try_deliver(batch).await {
            Ok(()) => Delivery::Delivered,
            // A batch the encoder cannot write will never be written: its
            // rows go to the dead letter rather than blocking the pipeline.
            Err(SinkError::Encode(e)) => Delivery::Rejected(
                (0..batch.records.num_rows())
                    .map(|row| RejectedRow {
                        row,
                        reason: format!("parquet encoding failed: {e}"),
                    })
                    .collect(),
            ),
            Err(e) => Delivery::Retry(e),
        }
    }
}
