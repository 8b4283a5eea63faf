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
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use crate::store::{self, Location, StoreOptions};
use crate::{
    Backoff, Delivery, Durable, HealthState, KeyTemplate, RejectedRow, Sink, SinkBatch, SinkError,
};

/// The default key template: Hive-style date and hour, then namespace and pod.
pub const DEFAULT_PATH_TEMPLATE: &str = "dt={dt}/hour={hour}/{namespace}/{pod}/{id}.parquet";

/// Default multipart part size: objects up to this size go up in one PUT.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// S3's smallest part (other than the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The default `buffer_limit`: room for every buffer at its fastest size.
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

/// Settings of a Parquet sink.
#[derive(Debug, Clone)]
pub struct ParquetConfig {
    /// `file://path`, `s3://bucket/prefix` or `gs://bucket/prefix`.
    pub url: String,
    /// How to reach the store (endpoint, region, credentials, timeouts).
    pub store: StoreOptions,
    /// Object key template, see [`KeyTemplate`].
    pub path_template: String,
    /// zstd level (1 is the measured sweet spot); 0 turns compression off.
    pub zstd_level: i32,
    /// Columns written without dictionary encoding or min/max statistics:
    /// high-cardinality ones (messages, JSON bodies), where a dictionary and
    /// byte-wise min/max comparisons cost CPU and help no query.
    pub plain_columns: Vec<String>,
    /// Multipart part size; an object up to this size is one PUT.
    pub part_size: usize,
    /// Combine batches into larger objects; `None`: one object per batch.
    pub rolling: Option<Rolling>,
    /// Bytes the sink may hold in its own buffers (row groups of staging
    /// files, upload parts); smaller buffers and fewer uploads at once when
    /// it is small. Batches handed to the sink are budgeted by the caller.
    pub buffer_limit: usize,
}

/// When to complete a combined object.
#[derive(Debug, Clone)]
pub struct Rolling {
    /// Complete an object once its file reaches this size.
    pub target_file_size: u64,
    /// Complete an object this long after its first batch, whatever its size.
    pub max_file_age: Duration,
    /// Where staging files live (inside the data dir; emptied at start-up).
    pub staging_dir: PathBuf,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            url: "file://lake".into(),
            store: StoreOptions::default(),
            path_template: DEFAULT_PATH_TEMPLATE.into(),
            zstd_level: 1,
            plain_columns: Vec::new(),
            part_size: DEFAULT_PART_SIZE,
            rolling: None,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
        }
    }
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
    /// Open the destination and check the template against `schema`.
    /// Contacts nothing: an unreachable store shows up as failed deliveries.
    pub fn new(
        name: &str,
        config: &ParquetConfig,
        schema: &arrow::datatypes::SchemaRef,
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
        if config.part_size < MIN_PART_SIZE {
            return Err(config_err(
                "part_size",
                format!(
                    "expected at least 5MiB (S3's smallest part), got {} bytes",
                    config.part_size
                ),
            ));
        }
        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(1 << 20));
        for column in &config.plain_columns {
            props = props
                .set_column_dictionary_enabled(column.as_str().into(), false)
                .set_column_statistics_enabled(column.as_str().into(), EnabledStatistics::None);
        }
        let location = store::open(name, &config.url, &config.store, base_dir)?;
        let target = Arc::new(Target {
            name: name.to_string(),
            location,
            template,
            schema: Arc::clone(schema),
            props: props.build(),
            part_size: config.part_size,
            buffers: Buffers::within(config.buffer_limit, config.part_size),
            health: HealthState::default(),
        });
        let roller = match &config.rolling {
            None => None,
            Some(rolling) => {
                if rolling.target_file_size == 0 || rolling.max_file_age.is_zero() {
                    return Err(config_err(
                        "target_file_size",
                        "target_file_size and max_file_age must be more than 0".into(),
                    ));
                }
                Some(Arc::new(Roller::new(Arc::clone(&target), rolling.clone())?))
            }
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
        let parts = self.target.template.partition(&batch.records, &batch.id);
        let records = batch.records.clone();
        let target = Arc::clone(&self.target);
        // Encoding is CPU work: keep it off the async threads.
        let encoded = tokio::task::spawn_blocking(move || {
            parts
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
// Rolling: staging files combined from many batches
// ---------------------------------------------------------------------------

/// The open staging files of a rolling sink, and the uploads of completed ones.
struct Roller {
    target: Arc<Target>,
    rolling: Rolling,
    open: tokio::sync::Mutex<BTreeMap<String, OpenFile>>,
    uploads: Arc<Semaphore>,
    next_file: AtomicU64,
    ticker: OnceLock<tokio::task::JoinHandle<()>>,
}

/// A staging file still taking batches.
struct OpenFile {
    /// The object key it will be uploaded under.
    key: String,
    staging: PathBuf,
    writer: Option<ArrowWriter<std::fs::File>>,
    opened: Instant,
    /// One per staged batch part, told when the object is complete.
    waiters: Vec<oneshot::Sender<()>>,
}

impl Roller {
    /// Empty the staging dir: files left there by an earlier process were
    /// never acknowledged, so their rows will be read again from the logs.
    fn new(target: Arc<Target>, rolling: Rolling) -> Result<Self, SinkError> {
        let dir = &rolling.staging_dir;
        let staging_err = |source| SinkError::Staging {
            path: dir.display().to_string(),
            source,
        };
        let stale = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        if stale > 0 {
            tracing::info!(sink = %target.name, files = stale, "removing staging files of an earlier run; their rows are read again");
            std::fs::remove_dir_all(dir).map_err(staging_err)?;
        }
        std::fs::create_dir_all(dir).map_err(staging_err)?;
        tracing::debug!(sink = %target.name, buffers = ?target.buffers, "staging buffers");
        let uploads = target.buffers.uploads;
        Ok(Self {
            target,
            rolling,
            open: tokio::sync::Mutex::new(BTreeMap::new()),
            uploads: Arc::new(Semaphore::new(uploads)),
            next_file: AtomicU64::new(0),
            ticker: OnceLock::new(),
        })
    }

    /// Append the batch to the staging file of each of its keys.
    async fn stage(self: &Arc<Self>, batch: &SinkBatch) -> Result<Durable, SinkError> {
        self.ticker
            .get_or_init(|| tokio::spawn(age_ticker(Arc::downgrade(self))));
        let groups = self.target.template.groups(&batch.records);
        let single = groups.len() == 1;
        let mut receivers = Vec::with_capacity(groups.len());
        let mut open = self.open.lock().await;
        for (n, (group, rows)) in groups.into_iter().enumerate() {
            if !open.contains_key(&group) {
                if open.len() >= MAX_OPEN_FILES {
                    let oldest = open
                        .iter()
                        .min_by_key(|(_, f)| f.opened)
                        .map(|(k, _)| k.clone());
                    if let Some(file) = oldest.and_then(|k| open.remove(&k)) {
                        self.complete(file).await;
                    }
                }
                let id = if single {
                    batch.id.clone()
                } else {
                    format!("{}-{n}", batch.id)
                };
                let file = self.create(KeyTemplate::with_id(&group, &id)).await?;
                open.insert(group.clone(), file);
            }
            let Some(file) = open.get_mut(&group) else {
                continue; // just inserted
            };
            let part = select(&batch.records, rows)?;
            let Some(mut writer) = file.writer.take() else {
                continue; // never: the writer is only out during a write
            };
            let row_group_bytes = self.target.buffers.row_group_bytes;
            let staging = file.staging.clone();
            let written = tokio::task::spawn_blocking(move || {
                append(&mut writer, &part, row_group_bytes)
                    .map(|()| writer)
                    .map_err(|e| staging_error(&staging, e))
            })
            .await
            .map_err(|e| SinkError::Task(e.to_string()));
            match written {
                Ok(Ok(writer)) => file.writer = Some(writer),
                Ok(Err(e)) | Err(e) => {
                    // The staging file may be damaged: give it up. Batches
                    // staged in it earlier are given up too (the pipeline
                    // offers them again); this one is answered by `e`: a
                    // retry for an I/O error such as a full disk.
                    tracing::error!(sink = %self.target.name, error = %e, "staging write failed; abandoning the staging file");
                    if let Some(file) = open.remove(&group) {
                        remove_staging(file.staging).await;
                    }
                    return Err(e);
                }
            }
            let (tx, rx) = oneshot::channel();
            file.waiters.push(tx);
            receivers.push(rx);
            let size = file
                .writer
                .as_ref()
                .map_or(0, |w| w.bytes_written() + w.in_progress_size());
            if size as u64 >= self.rolling.target_file_size {
                if let Some(file) = open.remove(&group) {
                    self.complete(file).await;
                }
            }
        }
        Ok(Durable(receivers))
    }

    /// Open a staging file for `key` (on the blocking pool: it touches the disk).
    async fn create(&self, key: String) -> Result<OpenFile, SinkError> {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let staging = self.rolling.staging_dir.join(format!("{n}.parquet"));
        let schema = Arc::clone(&self.target.schema);
        let props = self.target.props.clone();
        let path = staging.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&path).map_err(|source| SinkError::Staging {
                path: path.display().to_string(),
                source,
            })?;
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| staging_error(&path, e))
        })
        .await
        .map_err(|e| SinkError::Task(e.to_string()))??;
        Ok(OpenFile {
            key,
            staging,
            writer: Some(writer),
            opened: Instant::now(),
            waiters: Vec::new(),
        })
    }

    /// Close `file` and upload it in the background, retrying until it is
    /// complete in the store; then its batches are delivered. Waits first
    /// for an upload slot: that wait is the sink's backpressure.
    async fn complete(&self, mut file: OpenFile) {
        let Ok(permit) = Arc::clone(&self.uploads).acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let Some(writer) = file.writer.take() else {
            return;
        };
        let closed = tokio::task::spawn_blocking(move || writer.close()).await;
        let error = match closed {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(staging_error(&file.staging, e)),
            Err(e) => Some(SinkError::Task(e.to_string())),
        };
        if let Some(e) = error {
            // Dropping the waiters gives the batches up: the pipeline offers
            // them again, and they are staged anew.
            self.target.health.failed(&e);
            tracing::error!(sink = %self.target.name, error = %e, "cannot finish a staging file; its batches are offered again");
            remove_staging(file.staging).await;
            return;
        }
        let target = Arc::clone(&self.target);
        tokio::spawn(async move {
            let _permit = permit;
            let mut backoff = Backoff::default();
            loop {
                let attempt = async {
                    let path = target.location.path(&file.key)?;
                    upload(
                        &target.location.store,
                        &path,
                        Body::File(&file.staging),
                        target.part_size,
                        target.buffers.parts_in_flight,
                    )
                    .await
                };
                match attempt.await {
                    Ok(()) => break,
                    Err(e) => {
                        target.health.failed(&e);
                        let delay = backoff.next_delay();
                        if e.is_permanent() {
                            tracing::error!(sink = %target.name, key = %file.key, error = %e, retry_in = ?delay, "upload cannot succeed until this is fixed; retrying");
                        } else {
                            tracing::warn!(sink = %target.name, key = %file.key, error = %e, retry_in = ?delay, "upload failed; retrying");
                        }
                        tokio::time::sleep(delay).await;
                    }
                }
            }
            target.recovered();
            if let Err(e) = tokio::fs::remove_file(&file.staging).await {
                tracing::warn!(sink = %target.name, error = %e, "cannot remove an uploaded staging file");
            }
            for waiter in file.waiters {
                let _ = waiter.send(());
            }
        });
    }

    /// Complete every open file whose age passed `max_file_age`.
    async fn complete_due(&self) {
        let mut open = self.open.lock().await;
        let due: Vec<String> = open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= self.rolling.max_file_age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(file) = open.remove(&key) {
                self.complete(file).await;
            }
        }
    }

    async fn complete_all(&self) {
        let mut open = self.open.lock().await;
        for (_, file) in std::mem::take(&mut *open) {
            self.complete(file).await;
        }
    }
}

/// Completes files by age for as long as the sink exists.
async fn age_ticker(roller: Weak<Roller>) {
    loop {
        let period = match roller.upgrade() {
            Some(r) => {
                r.complete_due().await;
                (r.rolling.max_file_age / 4)
                    .clamp(Duration::from_millis(50), Duration::from_secs(1))
            }
            None => return,
        };
        tokio::time::sleep(period).await;
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

/// Append `part` to a staging file, writing the row group out once the
/// writer holds `row_group_bytes` (encoded pages and values not yet encoded).
fn append(
    writer: &mut ArrowWriter<std::fs::File>,
    part: &RecordBatch,
    row_group_bytes: usize,
) -> Result<(), parquet::errors::ParquetError> {
    writer.write(part)?;
    if writer.memory_size() >= row_group_bytes {
        writer.flush()?;
    }
    Ok(())
}

/// A staging file's error: I/O on the file (a full disk, say) is a retry
/// like any other I/O error; only an encoding error is the batch's fault.
fn staging_error(path: &FsPath, e: parquet::errors::ParquetError) -> SinkError {
    use parquet::errors::ParquetError;
    match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(source) => SinkError::Staging {
                path: path.display().to_string(),
                source: *source,
            },
            Err(inner) => SinkError::Encode(ParquetError::External(inner)),
        },
        e => SinkError::Encode(e),
    }
}

/// Remove an abandoned staging file (its rows are offered again).
async fn remove_staging(path: PathBuf) {
    if let Err(e) = tokio::fs::remove_file(&path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an abandoned staging file");
        }
    }
}

/// The rows `rows` of `records` (all of them without a copy when that is all).
fn select(records: &RecordBatch, rows: Vec<u32>) -> Result<RecordBatch, SinkError> {
    if rows.len() == records.num_rows() {
        return Ok(records.clone());
    }
    take_record_batch(records, &UInt32Array::from(rows)).map_err(|e| SinkError::Encode(e.into()))
}

/// One in-memory Parquet file.
fn encode(part: &RecordBatch, props: &WriterProperties) -> Result<Vec<u8>, SinkError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), part.schema(), Some(props.clone()))?;
    writer.write(part)?;
    Ok(writer.into_inner()?)
}

/// What an upload reads from.
enum Body<'a> {
    Memory(Bytes),
    File(&'a FsPath),
}

/// Upload `body` to `path`: one PUT when it fits in a part, else a multipart
/// upload of `part_size` parts (a few in flight), aborted if any part or the
/// completion fails. Either way the object appears whole or not at all, and
/// a retry starts afresh under the same key.
async fn upload(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    body: Body<'_>,
    part_size: usize,
    parts_in_flight: usize,
) -> Result<(), SinkError> {
    let staging_err = |p: &FsPath| {
        let p = p.display().to_string();
        move |source| SinkError::Staging { path: p, source }
    };
    let len = match &body {
        Body::Memory(b) => b.len() as u64,
        Body::File(p) => tokio::fs::metadata(p).await.map_err(staging_err(p))?.len(),
    };
    if len <= part_size as u64 {
        let bytes = match body {
            Body::Memory(b) => b,
            Body::File(p) => tokio::fs::read(p).await.map_err(staging_err(p))?.into(),
        };
        store.put(path, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let mut writer =
        WriteMultipart::new_with_chunk_size(store.put_multipart(path).await?, part_size);
    match body {
        Body::Memory(b) => writer.put(b),
        Body::File(p) => {
            let mut file = match tokio::fs::File::open(p).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(staging_err(p)(e));
                }
            };
            loop {
                let mut chunk = Vec::with_capacity(part_size);
                let read = (&mut file)
                    .take(part_size as u64)
                    .read_to_end(&mut chunk)
                    .await;
                match read {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(staging_err(p)(e));
                    }
                }
                if let Err(e) = writer.wait_for_capacity(parts_in_flight).await {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
                writer.put(chunk.into());
            }
        }
    }
    writer.finish().await?;
    Ok(())
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
