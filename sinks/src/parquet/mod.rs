//! Parquet files on an object store.
//!
//! By default each batch becomes one Parquet object per distinct key of the
//! template (by default one per hour and pod), uploaded before the batch is
//! [`Delivery::Delivered`]. Keys are deterministic per batch, so a retried
//! batch overwrites what an earlier attempt may have left.
//!
//! With [`Rolling`], batches are combined into larger objects: each batch is
//! appended to a staging file on local disk (one per key), which is uploaded
//! when it reaches `target_file_size` or `max_file_age`. Such batches are
//! [`Delivery::Staged`]: they count as delivered only once the object that
//! holds them is complete in the store, and the sink retries that upload
//! itself for as long as it takes. The object is named after the first batch
//! it holds, which a restart reads again first, so a file re-made after a
//! crash replaces its earlier upload.
//!
//! Objects larger than one part go up as multipart uploads; an upload that
//! fails is aborted and retried as a whole under the same key.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use parquet::file::properties::WriterProperties;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

mod config;
mod encode;
mod object;
mod roll;

pub use config::{ParquetSinkConfig, DEFAULT_PATH_TEMPLATE};
pub use encode::{encode, writer_properties, Columns};

use object::{upload, Body};
use roll::Roller;

use crate::component::SinkContext;
use crate::store::{self, Location};
use crate::{
    Backoff, Delivery, Durable, HealthState, KeyTemplate, RejectedRow, Sink, SinkBatch, SinkError,
};

/// Default multipart part size: objects up to this size go up in one PUT.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// S3's smallest part (other than the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// A `buffer_limit` with room for every buffer at its fastest size.
#[cfg(test)]
const DEFAULT_BUFFER_LIMIT: usize = 128 << 20;

/// Staging files open at once; opening one more completes the oldest.
const MAX_OPEN_FILES: usize = 16;

/// The sizes of a sink's in-memory buffers, chosen to fit its `buffer_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buffers {
    /// A staging file's buffered row group is written out at this size, so
    /// an open file holds at most this much in memory.
    row_group_bytes: usize,
    /// Completed staging files in upload at once. When the store is slow or
    /// down, the next file to complete waits for a slot, which stops the
    /// sink and so (through the bounded queues) the readers.
    uploads: usize,
    /// Parts of one multipart upload in flight at once (one more is being
    /// read from the staging file).
    parts_in_flight: usize,
}

/// The smallest `buffer_limit` a rolling sink with this part size fits in:
/// one upload with one part in flight and one being read, and the smallest
/// row groups for every open staging file.
pub fn min_buffer_limit(part_size: usize) -> usize {
    2 * (2 * part_size).max(MAX_OPEN_FILES * MIN_ROW_GROUP_BYTES)
}

/// The smallest row group a staging file buffers before writing it out.
const MIN_ROW_GROUP_BYTES: usize = 256 << 10;

impl Buffers {
    /// Half the limit for uploads (each holds up to `parts_in_flight + 1`
    /// parts), half for the row groups of the open staging files.
    fn within(limit: usize, part_size: usize) -> Self {
        let upload_room = limit / 2;
        let (uploads, parts_in_flight) = [(2, 2), (1, 2), (1, 1)]
            .into_iter()
            .find(|(u, p)| u * (p + 1) * part_size <= upload_room)
            .unwrap_or((1, 1));
        Self {
            row_group_bytes: (limit / 2 / MAX_OPEN_FILES).clamp(MIN_ROW_GROUP_BYTES, 4 << 20),
            uploads,
            parts_in_flight,
        }
    }
}

/// When to complete a combined object, resolved from the sink's keys.
#[derive(Debug, Clone)]
pub(crate) struct Rolling {
    /// Complete an object once its file reaches this size.
    pub target_file_size: u64,
    /// Complete an object this long after its first batch, whatever its size.
    pub max_file_age: Duration,
    /// Where staging files live (inside the data dir; emptied at start-up).
    pub staging_dir: PathBuf,
}

/// What every write needs: where to, under which keys, how to encode.
struct Target {
    name: String,
    location: Location,
    template: KeyTemplate,
    schema: arrow::datatypes::SchemaRef,
    props: WriterProperties,
    part_size: usize,
    buffers: Buffers,
    health: HealthState,
}

/// Writes batches as Parquet objects.
pub struct ParquetSink {
    target: Arc<Target>,
    roller: Option<Arc<Roller>>,
}

impl ParquetSink {
    /// Open the destination and check the template against the schema.
    /// Contacts nothing: an unreachable store shows up as failed deliveries.
    /// `config` has passed its checks ([`ParquetSinkConfig`]).
    fn new(
        config: &ParquetSinkConfig,
        cx: &SinkContext<'_>,
        rolling: Option<Rolling>,
    ) -> Result<Self, SinkError> {
        let name = cx.name;
        let config_err = |key: &'static str, reason: String| SinkError::Config {
            sink: name.to_string(),
            key: key.to_string(),
            reason,
        };
        let template = KeyTemplate::parse(&config.path_template)
            .map_err(|r| config_err("path_template", r))?;
        template
            .check_schema(cx.schema)
            .map_err(|r| config_err("path_template", r))?;
        let columns = Columns {
            plain: cx.plain_columns,
            small: cx.small_columns,
        };
        let props = writer_properties(config.zstd_level, cx.schema, &columns)
            .map_err(|e| config_err("zstd_level", e.to_string()))?;
        let location = store::open(name, &config.url, &config.store_options(), cx.base_dir)?;
        let part_size = config.part_bytes();
        let target = Arc::new(Target {
            name: name.to_string(),
            location,
            template,
            schema: Arc::clone(cx.schema),
            props,
            part_size,
            buffers: Buffers::within(cx.buffer_limit, part_size),
            health: HealthState::default(),
        });
        let roller = match rolling {
            None => None,
            Some(rolling) => Some(Arc::new(Roller::new(Arc::clone(&target), rolling)?)),
        };
        tracing::info!(
            sink = name,
            destination = %target.location.display,
            rolling = roller.is_some(),
            "parquet sink ready"
        );
        Ok(Self { target, roller })
    }
}

/// What [`ParquetSink::probe`] found under the sink's prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Where the sink writes (never with credentials).
    pub destination: String,
    /// Parquet objects under the prefix.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// The newest object's key and the row count in its footer.
    pub newest: Option<(String, i64)>,
}

impl ParquetSink {
    /// Check that the destination answers: list the prefix and read the
    /// footer of the newest Parquet object. Writes nothing.
    pub async fn probe(&self) -> Result<Probe, SinkError> {
        use futures::StreamExt;
        let location = &self.target.location;
        let prefix = (!location.prefix.as_ref().is_empty()).then_some(&location.prefix);
        let mut listing = location.store.list(prefix);
        let (mut objects, mut bytes) = (0u64, 0u64);
        let mut newest: Option<object_store::ObjectMeta> = None;
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if !meta.location.as_ref().ends_with(".parquet") {
                continue;
            }
            objects += 1;
            bytes += meta.size;
            if newest
                .as_ref()
                .is_none_or(|n| meta.last_modified >= n.last_modified)
            {
                newest = Some(meta);
            }
        }
        let newest = match newest {
            None => None,
            Some(meta) => {
                let rows = footer_rows(&*location.store, &meta).await?;
                Some((meta.location.to_string(), rows))
            }
        };
        Ok(Probe {
            destination: location.display.clone(),
            objects,
            bytes,
            newest,
        })
    }

    /// One object per key of the batch, each complete before returning.
    async fn write_objects(&self, batch: &SinkBatch) -> Result<(), SinkError> {
        let (records, id) = (batch.records.clone(), batch.id.clone());
        let target = Arc::clone(&self.target);
        // Grouping by key and encoding are CPU work: keep them off the
        // async threads.
        let encoded = tokio::task::spawn_blocking(move || {
            target
                .template
                .partition(&records, &id)
                .into_iter()
                .map(|(key, rows)| Ok((key, encode(&select(&records, rows)?, &target.props)?)))
                .collect::<Result<Vec<_>, SinkError>>()
        })
        .await
        .map_err(|e| SinkError::Task(e.to_string()))??;
        for (key, bytes) in encoded {
            let path = self.target.location.path(&key)?;
            upload(
                &self.target.location.store,
                &path,
                Body::Memory(bytes.into()),
                self.target.part_size,
                self.target.buffers.parts_in_flight,
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for ParquetSink {
    fn name(&self) -> &str {
        &self.target.name
    }

    async fn deliver(&self, batch: &SinkBatch) -> Delivery {
        if batch.records.num_rows() == 0 {
            return Delivery::Delivered;
        }
        let result = match &self.roller {
            None => self
                .write_objects(batch)
                .await
                .map(|()| Delivery::Delivered),
            Some(roller) => roller.stage(batch).await.map(Delivery::Staged),
        };
        match result {
            Ok(delivery) => {
                if matches!(delivery, Delivery::Delivered) {
                    self.target.recovered();
                }
                delivery
            }
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
            Err(e) => {
                self.target.health.failed(&e);
                Delivery::Retry(e)
            }
        }
    }

    async fn flush(&self) {
        if let Some(roller) = &self.roller {
            roller.complete_all().await;
        }
    }

    fn health(&self) -> &HealthState {
        &self.target.health
    }
}

impl Target {
    fn recovered(&self) {
        if let Some(f) = self.health.succeeded() {
            tracing::info!(sink = %self.name, failed_attempts = f.attempts, "sink recovered");
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding and uploading
// ---------------------------------------------------------------------------

/// The row count in the footer of a Parquet object: two range reads (the
/// 8-byte tail, then the metadata), however large the object is.
async fn footer_rows(
    store: &dyn ObjectStore,
    meta: &object_store::ObjectMeta,
) -> Result<i64, SinkError> {
    use parquet::errors::ParquetError;
    use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
    let corrupt = |what: &str| {
        SinkError::Encode(ParquetError::General(format!(
            "{} is not a Parquet file: {what}",
            meta.location
        )))
    };
    if meta.size < 12 {
        return Err(corrupt("too short"));
    }
    let tail = store
        .get_range(&meta.location, meta.size - 8..meta.size)
        .await?;
    let tail: [u8; 8] = tail
        .as_ref()
        .try_into()
        .map_err(|_| corrupt("short read"))?;
    let len = FooterTail::try_new(&tail)?.metadata_length() as u64;
    if len + 8 > meta.size {
        return Err(corrupt("footer longer than the file"));
    }
    let footer = store
        .get_range(&meta.location, meta.size - 8 - len..meta.size - 8)
        .await?;
    Ok(ParquetMetaDataReader::decode_metadata(&footer)?
        .file_metadata()
        .num_rows())
}

/// The rows `rows` of `records` (all of them without a copy when that is all).
fn select(records: &RecordBatch, rows: Vec<u32>) -> Result<RecordBatch, SinkError> {
    if rows.len() == records.num_rows() {
        return Ok(records.clone());
    }
    take_record_batch(records, &UInt32Array::from(rows)).map_err(|e| SinkError::Encode(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_shrink_to_fit_the_limit() {
        let mib = 1 << 20;
        // The default limit keeps the fastest sizes.
        assert_eq!(
            Buffers::within(DEFAULT_BUFFER_LIMIT, DEFAULT_PART_SIZE),
            Buffers {
                row_group_bytes: 4 * mib,
                uploads: 2,
                parts_in_flight: 2
            }
        );
        // memory_limit = 64MiB gives a Parquet sink 32 MiB.
        let small = Buffers::within(32 * mib, DEFAULT_PART_SIZE);
        assert_eq!(
            small.uploads * (small.parts_in_flight + 1) * DEFAULT_PART_SIZE,
            16 * mib
        );
        assert_eq!(small.row_group_bytes * MAX_OPEN_FILES, 16 * mib);
        // The smallest limit the config accepts still fits.
        let least = min_buffer_limit(MIN_PART_SIZE);
        let tiny = Buffers::within(least, MIN_PART_SIZE);
        assert_eq!((tiny.uploads, tiny.parts_in_flight), (1, 1));
        assert!(2 * MIN_PART_SIZE <= least / 2);
        assert!(tiny.row_group_bytes * MAX_OPEN_FILES <= least / 2);
    }
}
