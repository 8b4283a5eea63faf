//! Rolling: batches appended to local staging files (one per key),
//! uploaded as one object when a file reaches its size or age.

use parquet::arrow::ArrowWriter;

use super::*;

/// The open staging files of a rolling sink, and the uploads of completed ones.
pub(super) struct Roller {
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
    pub(super) fn new(target: Arc<Target>, rolling: Rolling) -> Result<Self, SinkError> {
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

    /// Append the batch to the staging file of each of its keys, in two
    /// steps so that a full disk damages nothing:
    /// 1. open the files and reserve disk room for what the parts can add
    ///    (`fallocate`); if that fails (no space), the files this call
    ///    opened are removed and the error is a retry, nothing written;
    /// 2. write the parts. A write that still fails (EIO, say) damages the
    ///    file: it is given up with every batch staged in it, which the
    ///    pipeline treats as fatal (a restart reads them again).
    pub(super) async fn stage(self: &Arc<Self>, batch: &SinkBatch) -> Result<Durable, SinkError> {
        self.ticker
            .get_or_init(|| tokio::spawn(age_ticker(Arc::downgrade(self))));
        let groups = self.target.template.groups(&batch.records);
        let single = groups.len() == 1;
        let mut open = self.open.lock().await;
        let mut created: Vec<String> = Vec::new();
        let mut parts = Vec::with_capacity(groups.len());
        let mut prepared = Ok(());
        for (n, (group, rows)) in groups.into_iter().enumerate() {
            let step = self
                .prepare(&mut open, batch, single, n, &group, rows, &mut created)
                .await;
            match step {
                Ok(rows) => parts.push((group, rows)),
                Err(e) => {
                    prepared = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = prepared {
            // Nothing of this batch is written; the files it opened hold
            // nothing else (the lock was held): remove them.
            for group in created {
                if let Some(file) = open.remove(&group) {
                    remove_staging(file.staging).await;
                }
            }
            return Err(e);
        }
        let mut receivers = Vec::with_capacity(parts.len());
        for (group, rows) in parts {
            let Some(file) = open.get_mut(&group) else {
                continue; // never: prepared above, under the same lock
            };
            // One part at a time in memory (a copy unless it is all rows).
            let part = select(&batch.records, rows)?;
            let Some(mut writer) = file.writer.take() else {
                // Never (step 1 saw it): but skipping the part would
                // acknowledge rows that were not written.
                return Err(SinkError::Task("a staging writer is missing".into()));
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
                    // The file may be damaged: give it up, and with it the
                    // batches staged in it (their Durable resolves false).
                    if let Some(file) = open.remove(&group) {
                        if !file.waiters.is_empty() {
                            tracing::error!(sink = %self.target.name, error = %e, staged_parts = file.waiters.len(), "staging write failed; abandoning the staging file and the batches staged in it");
                        }
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

    /// Step 1 of [`Roller::stage`] for one group: its staging file (opened
    /// if needed, and then named in `created`) with disk room reserved for
    /// `rows`, which it hands back.
    #[allow(clippy::too_many_arguments)]
    async fn prepare(
        &self,
        open: &mut BTreeMap<String, OpenFile>,
        batch: &SinkBatch,
        single: bool,
        n: usize,
        group: &str,
        rows: Vec<u32>,
        created: &mut Vec<String>,
    ) -> Result<Vec<u32>, SinkError> {
        if !open.contains_key(group) {
            if open.len() >= MAX_OPEN_FILES {
                let oldest = open
                    .iter()
                    .filter(|(k, _)| !created.contains(k))
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
            let file = self.create(KeyTemplate::with_id(group, &id)).await?;
            open.insert(group.to_string(), file);
            created.push(group.to_string());
        }
        // The rows' share of the batch's Arrow size: more than their
        // Parquet encoding takes.
        let total = batch.records.num_rows().max(1);
        let part_bytes = batch.records.get_array_memory_size() * rows.len() / total;
        let Some(file) = open.get_mut(group) else {
            return Err(SinkError::Task("a staging file vanished".into()));
        };
        // What the write may put on disk: the row group being buffered
        // (flushed when it is full) plus this part, and room for the footer.
        let Some(writer) = file.writer.take() else {
            return Err(SinkError::Task("a staging writer is missing".into()));
        };
        let (offset, len) = (
            writer.bytes_written() as u64,
            (writer.memory_size() + part_bytes) as u64 + FOOTER_ROOM,
        );
        let staging = file.staging.clone();
        let reserved = tokio::task::spawn_blocking(move || {
            let r = reserve(writer.inner(), offset, len);
            (writer, r)
        })
        .await
        .map_err(|e| SinkError::Task(e.to_string()))?;
        file.writer = Some(reserved.0);
        reserved.1.map_err(|source| SinkError::Staging {
            path: staging.display().to_string(),
            source,
        })?;
        Ok(rows)
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

    pub(super) async fn complete_all(&self) {
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

/// Disk room reserved beyond a staging file's parts, for its footer.
const FOOTER_ROOM: u64 = 1 << 20;

/// Reserve `len` bytes of disk for `file` from `offset` on, without changing
/// its size (`FALLOC_FL_KEEP_SIZE`), so that the writes that follow cannot
/// fail for want of space. A filesystem that cannot reserve (no `fallocate`)
/// is written to without a reservation.
fn reserve(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    match fallocate(file, FallocateFlags::KEEP_SIZE, offset, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(()),
        Err(e) => Err(e.into()),
    }
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
