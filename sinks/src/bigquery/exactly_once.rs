//! `delivery = "exactly_once"`: Storage Write appends to COMMITTED streams
//! at explicit offsets, with a write-ahead [`Ledger`] of which rows each
//! append carries.
//!
//! The argument (README, "Exactly once into BigQuery"):
//! - An append to a committed stream at offset `o` lands whole or not at
//!   all, and only if the stream holds exactly `o` rows; appends to one
//!   stream are sent one at a time, so a stream's row count says exactly
//!   which of its appends landed.
//! - Every append is in the ledger (synced) before it is sent, with the
//!   origin (file, offset, content hash) of each of its rows.
//! - An append whose outcome is unknown (a timeout, a crash, a kill) leaves
//!   its stream *unresolved*: nothing else is sent until the stream is
//!   finalized (no append can land after that) and its row count read. The
//!   rows of the appends that landed are then known to be in the table and
//!   are skipped when they are offered again, whichever batch they are in
//!   (batches are cut by time, so they differ after a restart).
//! - A row is skipped only if a landed append carried a row with the same
//!   origin, so a truncated or replaced file's new lines are never taken for
//!   old ones.
//!
//! Streams: up to `concurrency` open streams per table, each used by one
//! delivery at a time, created when first needed and finalized at shutdown
//! or after an unknown outcome. A stream that cannot be created because of
//! a quota makes that table's rows go to the `_default` stream
//! (at-least-once) for [`DEGRADED_FOR`], with an error in the log and the
//! sink's `degraded` counter; so are the rows of a stream BigQuery can no
//! longer count (gone, or refusing a second finalize), which are sent again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;

use super::error::from_grpc;
use super::ledger::{committed_offsets, Gone, Ledger, Record};
use super::storage_write::{row_errors, Appended, StorageWriter};
use super::Sent;
use crate::{CommittedFile, HealthState, RowOrigin, SinkBatch, SinkError};

/// How long a table's rows go to `_default` after a quota refused a stream.
pub(super) const DEGRADED_FOR: Duration = Duration::from_secs(600);

/// The exactly-once state of one sink.
pub(super) struct ExactlyOnce {
    sink: String,
    ledger: Arc<Ledger>,
    ledger_dir: String,
    /// Rows known to be in a table from appends whose batches were not
    /// acknowledged (an earlier run's, or an unknown outcome's), until the
    /// checkpoint passes them.
    in_table: Mutex<HashSet<RowOrigin>>,
    gone: Mutex<Gone>,
    /// Streams whose row count must be read before anything else is sent.
    unresolved: tokio::sync::Mutex<Vec<Unresolved>>,
    tables: Mutex<HashMap<String, Arc<Pool>>>,
    /// Tables whose rows go to `_default` until then.
    degraded: Mutex<HashMap<String, Instant>>,
    slots: usize,
}

/// A stream whose appends may or may not have landed.
struct Unresolved {
    stream: String,
    /// Appends in the order they were recorded: a later one at the same
    /// offset replaces an earlier one (which BigQuery refused).
    appends: Vec<(i64, Vec<RowOrigin>)>,
}

/// The open streams of one table.
struct Pool {
    slots: Vec<tokio::sync::Mutex<Option<Open>>>,
    next: AtomicUsize,
}

struct Open {
    name: String,
    /// Rows in the stream: where the next append goes.
    rows: i64,
    /// Appends refused in a row: at [`GIVE_UP_AFTER`] the stream is given
    /// up (finalized, resolved) and another one created.
    refused: u32,
}

/// Refused appends in a row after which a stream is replaced (its state may
/// be what BigQuery refuses).
const GIVE_UP_AFTER: u32 = 3;

impl ExactlyOnce {
    /// Open the ledger in `dir`; streams left by an earlier run are
    /// resolved before the first append.
    pub(super) fn open(sink: &str, dir: &Path, slots: usize) -> Result<Self, SinkError> {
        let (ledger, records) = Ledger::open(dir).map_err(|e| SinkError::Config {
            sink: sink.to_string(),
            key: "delivery".into(),
            reason: format!(
                "cannot open the exactly-once ledger in {}: {e}",
                dir.display()
            ),
        })?;
        let mut streams: BTreeMap<String, Unresolved> = BTreeMap::new();
        let mut finalized: HashMap<String, i64> = HashMap::new();
        for record in records {
            match record {
                Record::Append {
                    stream,
                    offset,
                    origins,
                } => streams
                    .entry(stream.clone())
                    .or_insert_with(|| Unresolved {
                        stream,
                        appends: Vec::new(),
                    })
                    .appends
                    .push((offset, origins)),
                Record::Finalized { stream, rows } => {
                    finalized.insert(stream, rows);
                }
            }
        }
        let mut in_table = HashSet::new();
        let mut unresolved = Vec::new();
        for (name, stream) in streams {
            match finalized.get(&name) {
                Some(&rows) => in_table.extend(stream.landed(rows)),
                None => unresolved.push(stream),
            }
        }
        if !unresolved.is_empty() {
            tracing::info!(
                sink,
                streams = unresolved.len(),
                rows_known = in_table.len(),
                "exactly-once: streams of an earlier run are resolved before the first append"
            );
        }
        Ok(Self {
            sink: sink.to_string(),
            ledger: Arc::new(ledger),
            ledger_dir: dir.display().to_string(),
            in_table: Mutex::new(in_table),
            gone: Mutex::default(),
            unresolved: tokio::sync::Mutex::new(unresolved),
            tables: Mutex::default(),
            degraded: Mutex::default(),
            slots: slots.max(1),
        })
    }

    /// Send rows `rows` of `batch` to `table` (`projects/P/datasets/D/tables/T`)
    /// so that each is in it once, whatever was sent before.
    pub(super) async fn send(
        &self,
        writer: &StorageWriter,
        health: &HealthState,
        table: &str,
        batch: &SinkBatch,
        rows: &[usize],
    ) -> Sent {
        let mut sent = Sent::default();
        if let Err(e) = self.resolve(writer, health).await {
            sent.error = Some(e);
            return sent;
        }
        // Rows already in the table (an earlier run's, or an unknown
        // outcome's): usually none, and then nothing is looked up.
        let mut todo = rows.to_vec();
        {
            let mut in_table = lock(&self.in_table);
            if !in_table.is_empty() {
                todo.retain(|&row| match batch.origins.get(row) {
                    Some(o) if in_table.remove(o) => {
                        sent.written.push(row);
                        false
                    }
                    _ => true,
                });
            }
        }
        if todo.is_empty() {
            return sent;
        }
        if self.is_degraded(table) {
            sent.merge(at_least_once(writer, health, table, batch, &todo).await);
            return sent;
        }
        let pool = self.pool(table);
        let mut slot = pool.acquire().await;
        if slot.is_none() {
            match writer.create_committed(table).await {
                Ok(name) => {
                    *slot = Some(Open {
                        name,
                        rows: 0,
                        refused: 0,
                    })
                }
                Err(status) if status.code() == Code::ResourceExhausted => {
                    drop(slot);
                    self.degrade(table, &status);
                    sent.merge(at_least_once(writer, health, table, batch, &todo).await);
                    return sent;
                }
                Err(status) => {
                    sent.table_missing = status.code() == Code::NotFound;
                    sent.error = Some(from_grpc("create_write_stream", &status));
                    return sent;
                }
            }
        }
        let Some(open) = slot.as_mut() else {
            return sent;
        };
        let mut work = vec![todo];
        while let Some(item) = work.pop() {
            let Some((item, ipc)) = writer.encode(batch, item, &mut work, &mut sent).await else {
                if sent.error.is_some() {
                    return sent;
                }
                continue;
            };
            let origins: Vec<RowOrigin> = item
                .iter()
                .filter_map(|&r| batch.origins.get(r).copied())
                .collect();
            if origins.len() != item.len() {
                sent.error = Some(SinkError::Task(
                    "exactly-once delivery needs every row's origin".into(),
                ));
                return sent;
            }
            let record = Record::Append {
                stream: open.name.clone(),
                offset: open.rows,
                origins,
            };
            if let Err(e) = self.write(record).await {
                sent.error = Some(e);
                return sent;
            }
            let (offset, open_name) = (open.rows, open.name.clone());
            match writer.append(&open.name, ipc, Some(offset)).await {
                Ok(Appended::Done) => {
                    open.rows += item.len() as i64;
                    open.refused = 0;
                    sent.written.extend(item);
                }
                Ok(Appended::RowErrors(errors)) => {
                    if let Err(e) = row_errors(&mut sent, &mut work, item, &errors) {
                        sent.error = Some(e);
                        return sent;
                    }
                }
                Ok(Appended::TableMissing(e)) => {
                    // The stream went with the table.
                    *slot = None;
                    sent.table_missing = true;
                    sent.error = Some(e);
                    return sent;
                }
                Ok(Appended::Refused(e)) => {
                    open.refused += 1;
                    if open.refused >= GIVE_UP_AFTER {
                        // Nothing of a refused append landed.
                        *slot = None;
                        drop(slot);
                        self.give_up(open_name, Vec::new()).await;
                    }
                    sent.error = Some(e);
                    return sent;
                }
                Ok(Appended::Misplaced(e)) => {
                    // Not where this sink thinks the stream ends: nothing
                    // landed, but the stream is given up (finalized and
                    // counted before anything else is sent).
                    *slot = None;
                    drop(slot);
                    self.give_up(open_name, Vec::new()).await;
                    sent.error = Some(e);
                    return sent;
                }
                Err(e) => {
                    // Unknown: it may have landed. Nothing else is sent
                    // until the stream's row count says.
                    let rows = item
                        .iter()
                        .filter_map(|&r| batch.origins.get(r).copied())
                        .collect();
                    *slot = None;
                    drop(slot);
                    self.give_up(open_name, vec![(offset, rows)]).await;
                    sent.error = Some(e);
                    return sent;
                }
            }
        }
        sent
    }

    /// Stop using `stream`: it is resolved before anything else is sent.
    async fn give_up(&self, stream: String, appends: Vec<(i64, Vec<RowOrigin>)>) {
        self.unresolved
            .lock()
            .await
            .push(Unresolved { stream, appends });
    }

    /// Finalize every open stream (at shutdown): nothing is left to
    /// resolve at the next start.
    pub(super) async fn finalize_all(&self, writer: &StorageWriter) {
        let pools: Vec<Arc<Pool>> = lock(&self.tables).values().cloned().collect();
        for pool in pools {
            for slot in &pool.slots {
                let mut slot = slot.lock().await;
                let Some(open) = slot.take() else { continue };
                match writer.finalize(&open.name).await {
                    Ok(rows) => {
                        let record = Record::Finalized {
                            stream: open.name,
                            rows,
                        };
                        if let Err(e) = self.write(record).await {
                            tracing::warn!(sink = %self.sink, error = %e, "exactly-once: cannot record a finalized stream; the next start asks BigQuery");
                        }
                    }
                    Err(status) => {
                        tracing::warn!(sink = %self.sink, error = %from_grpc("finalize_write_stream", &status), "exactly-once: cannot finalize a stream; the next start does");
                    }
                }
            }
        }
    }

    /// The checkpoint passed these offsets: forget what it passed.
    pub(super) fn checkpointed(&self, files: &[CommittedFile]) {
        {
            let committed = committed_offsets(files);
            let mut in_table = lock(&self.in_table);
            if !in_table.is_empty() {
                let mut gone = lock(&self.gone);
                let named: HashSet<u64> = in_table.iter().map(|o| o.file).collect();
                gone.update(&committed, named.iter());
                // A file not in the checkpoint yet may still be read from
                // its start.
                in_table.retain(|o| match committed.get(&o.file) {
                    Some(c) => *c <= o.offset,
                    None => !gone.contains(&o.file),
                });
            }
        }
        if let Err(e) = self.ledger.prune(files) {
            tracing::warn!(sink = %self.sink, error = %e, "exactly-once: cannot delete a ledger segment; will retry at the next checkpoint");
        }
    }

    /// Read the row count of every unresolved stream (finalizing it).
    async fn resolve(&self, writer: &StorageWriter, health: &HealthState) -> Result<(), SinkError> {
        let mut unresolved = self.unresolved.lock().await;
        while let Some(stream) = unresolved.last() {
            let rows = match writer.finalize(&stream.stream).await {
                Ok(rows) => rows,
                Err(status)
                    if matches!(
                        status.code(),
                        Code::NotFound | Code::FailedPrecondition | Code::InvalidArgument
                    ) =>
                {
                    // BigQuery cannot count the stream's rows any more (the
                    // table was deleted, the stream garbage-collected, or
                    // it refuses a second finalize): the rows of unknown
                    // outcome are sent again, possibly twice. Loudly.
                    let at_stake = stream.landed(i64::MAX).count() as u64;
                    health.degraded(at_stake);
                    tracing::error!(sink = %self.sink, stream = %stream.stream, rows = at_stake, error = %from_grpc("finalize_write_stream", &status), "exactly-once DEGRADED: BigQuery cannot say which appends of this stream landed; their rows are sent again and may be duplicated (none is lost)");
                    0
                }
                Err(status) => {
                    return Err(from_grpc(
                        "finalize_write_stream (resolving an append whose outcome is unknown)",
                        &status,
                    ))
                }
            };
            let landed: Vec<RowOrigin> = stream.landed(rows).collect();
            tracing::info!(sink = %self.sink, stream = %stream.stream, rows, rows_in_flight_landed = landed.len(), "exactly-once: resolved a stream");
            lock(&self.in_table).extend(landed);
            let record = Record::Finalized {
                stream: stream.stream.clone(),
                rows,
            };
            self.write(record).await?;
            unresolved.pop();
        }
        Ok(())
    }

    async fn write(&self, record: Record) -> Result<(), SinkError> {
        let ledger = Arc::clone(&self.ledger);
        let written = tokio::task::spawn_blocking(move || ledger.append(&record))
            .await
            .map_err(|e| SinkError::Task(format!("writing the exactly-once ledger: {e}")))?;
        written.map_err(|source| SinkError::Staging {
            path: self.ledger_dir.clone(),
            source,
        })
    }

    fn pool(&self, table: &str) -> Arc<Pool> {
        let mut tables = lock(&self.tables);
        Arc::clone(tables.entry(table.to_string()).or_insert_with(|| {
            Arc::new(Pool {
                slots: (0..self.slots)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
            })
        }))
    }

    fn is_degraded(&self, table: &str) -> bool {
        let mut degraded = lock(&self.degraded);
        match degraded.get(table) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                degraded.remove(table);
                false
            }
            None => false,
        }
    }

    fn degrade(&self, table: &str, status: &tonic::Status) {
        tracing::error!(sink = %self.sink, table, minutes = DEGRADED_FOR.as_secs() / 60, error = %from_grpc("create_write_stream", status), "exactly-once DEGRADED to at-least-once: BigQuery refused a new write stream (a quota); this table's rows go to its _default stream, where a retry or a restart can duplicate them");
        lock(&self.degraded).insert(table.to_string(), Instant::now() + DEGRADED_FOR);
    }
}

/// Rows `rows` of `batch` through `table`'s `_default` stream, counted as
/// degraded.
async fn at_least_once(
    writer: &StorageWriter,
    health: &HealthState,
    table: &str,
    batch: &SinkBatch,
    rows: &[usize],
) -> Sent {
    health.degraded(rows.len() as u64);
    writer
        .send(&format!("{table}/streams/_default"), batch, rows)
        .await
}

impl Unresolved {
    /// The rows of the appends that landed in a stream of `rows` rows.
    fn landed(&self, rows: i64) -> impl Iterator<Item = RowOrigin> + '_ {
        let mut at: BTreeMap<i64, &Vec<RowOrigin>> = BTreeMap::new();
        for (offset, origins) in &self.appends {
            at.insert(*offset, origins);
        }
        at.into_iter()
            .filter(move |(offset, origins)| offset + origins.len() as i64 <= rows)
            .flat_map(|(_, origins)| origins.iter().copied())
    }
}

impl Pool {
    /// A stream no other delivery is using: a free one if there is one.
    async fn acquire(&self) -> tokio::sync::MutexGuard<'_, Option<Open>> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Relaxed) % self.slots.len();
        self.slots[i].lock().await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(offset: u64) -> RowOrigin {
        RowOrigin {
            file: 1,
            offset,
            content: offset * 7,
        }
    }

    #[test]
    fn a_row_count_names_the_appends_that_landed() {
        let stream = Unresolved {
            stream: "s".into(),
            appends: vec![
                (0, vec![o(0), o(10)]),
                // Refused (a row error), then sent again without the bad row.
                (2, vec![o(20), o(30), o(40)]),
                (2, vec![o(20), o(40)]),
                (4, vec![o(50)]),
            ],
        };
        let landed = |rows| stream.landed(rows).map(|o| o.offset).collect::<Vec<_>>();
        assert_eq!(landed(0), Vec::<u64>::new());
        assert_eq!(landed(2), vec![0, 10]);
        assert_eq!(landed(4), vec![0, 10, 20, 40]);
        assert_eq!(landed(5), vec![0, 10, 20, 40, 50]);
    }
}
