//! Delivering batches to one sink: the retry and dead-letter policy.
//!
//! A worker takes a batch from its sink's queue and offers it until the sink
//! gives an answer the pipeline can acknowledge:
//! - **Delivered**: acknowledged at once.
//! - **Staged**: the rows are in the sink's hands, so their memory is
//!   returned and the worker moves on; a task waits until the rows are
//!   durable and acknowledges then. A sink gives staged rows up only when
//!   it could not keep them (a staging file damaged by an I/O error: a full
//!   disk is refused before anything is written, as a retry); the rows are
//!   no longer in memory, so that stops the process loudly and a restart
//!   reads them again from the checkpoint.
//! - **Rejected**: the rejected rows are written to the dead letter (retried
//!   until that write succeeds: a full disk is a retry, never a loss), then
//!   the batch is acknowledged.
//! - **Retry**: offered again after an exponential backoff with jitter, for
//!   as long as it takes. The sink's health state (`/readyz`, `/metrics`)
//!   shows why; the log says so at most every [`LOG_EVERY`].
//!
//! A batch is acknowledged exactly once per sink, and only after one of the
//! first three answers: the checkpoint never passes a row that a sink has
//! not made durable or dead-lettered.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use tidewater_sinks::{Backoff, Delivery, RejectedRow, Sink, SinkBatch};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::ack::{AckTracker, BatchId};
use crate::lock;
use crate::memory::Reservation;
use crate::stats::SinkStats;
use crate::tasks::{Critical, LOG_EVERY};

/// A batch on its way to the sinks.
pub struct Dispatched {
    pub id: BatchId,
    pub batch: SinkBatch,
    /// Returned to the budget when the last sink drops the batch (each
    /// sink may get its own selection of the rows; they share the source
    /// batch's reservation).
    pub memory: Option<Arc<Reservation>>,
    /// This sink's own copy of the rows, when its `when` kept only some
    /// ([`crate::memory::MemoryBudget::charge`]).
    pub copy: Option<Reservation>,
}

impl Drop for Dispatched {
    /// The last sink done with the rows hands their text buffers to the
    /// next batch's builder ([`crate::recycle`]).
    fn drop(&mut self) {
        let empty = RecordBatch::new_empty(self.batch.records.schema());
        crate::recycle::give(std::mem::replace(&mut self.batch.records, empty));
    }
}

/// The queue a sink's workers share.
pub type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Arc<Dispatched>>>>;

/// Tasks waiting for staged batches to become durable.
#[derive(Clone, Default)]
pub struct Staged(Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl Staged {
    fn push(&self, task: tokio::task::JoinHandle<()>) {
        let mut tasks = lock(&self.0);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Wait for every staged batch, including batches staged again while
    /// waiting, calling `flush` before each round (so sinks complete what
    /// they hold now rather than when it is due).
    pub async fn drain<F: Future<Output = ()>>(&self, mut flush: impl FnMut() -> F) {
        loop {
            flush().await;
            let pending = std::mem::take(&mut *lock(&self.0));
            if pending.is_empty() {
                return;
            }
            for task in pending {
                let _ = task.await;
            }
        }
    }
}

/// Everything one sink's workers share.
#[derive(Clone)]
pub struct Worker {
    pub sink: Arc<dyn Sink>,
    pub tracker: Arc<Mutex<AckTracker>>,
    pub stats: Arc<SinkStats>,
    pub staged: Staged,
    pub data_dir: PathBuf,
    pub critical: Critical,
}

impl Worker {
    /// Take batches from `queue` until it is closed.
    pub async fn run(self, queue: Queue) -> anyhow::Result<()> {
        loop {
            let Some(item) = queue.lock().await.recv().await else {
                return Ok(());
            };
            self.deliver(item, Instant::now()).await;
        }
    }

    /// Offer `item` until the sink delivered, staged or rejected it.
    fn deliver(
        &self,
        item: Arc<Dispatched>,
        started: Instant,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let mut backoff = Backoff::default();
            let mut last_log: Option<Instant> = None;
            let mut attempts = 0u64;
            loop {
                match self.sink.deliver(&item.batch).await {
                    Delivery::Delivered => return self.acked(&item, 0, started),
                    // The sink holds the rows now: the batch is dropped here.
                    Delivery::Staged(durable) => return self.await_durable(item, durable, started),
                    Delivery::Rejected(rejected) if rejected.is_empty() => {
                        // "These rows can never be accepted; every other row
                        // is durable" with no rows: all of them are durable.
                        tracing::error!(sink = self.sink.name(), batch = %item.batch.id, "bug: the sink rejected a batch naming no row; counting it as delivered");
                        return self.acked(&item, 0, started);
                    }
                    Delivery::Rejected(rejected) => {
                        self.dead_letter(&item, &rejected).await;
                        return self.acked(&item, rejected.len() as u64, started);
                    }
                    Delivery::Retry(e) => {
                        // The sink counted the failed attempt (its health state).
                        attempts += 1;
                        let delay = backoff.next_delay();
                        if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                            last_log = Some(Instant::now());
                            if e.is_permanent() {
                                tracing::error!(sink = self.sink.name(), batch = %item.batch.id, attempts, error = %e, retry_in = ?delay, "delivery cannot succeed until this is fixed; retrying");
                            } else {
                                tracing::warn!(sink = self.sink.name(), batch = %item.batch.id, attempts, error = %e, retry_in = ?delay, "delivery failed; retrying");
                            }
                        }
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        })
    }

    /// Acknowledge `item` for this sink and count it.
    fn acked(&self, item: &Dispatched, dead_lettered: u64, started: Instant) {
        let rows = item.batch.records.num_rows() as u64;
        self.acked_id(item.id, rows, dead_lettered, started);
    }

    /// Acknowledge batch `id` of `rows` rows for this sink and count it.
    fn acked_id(&self, id: BatchId, rows: u64, dead_lettered: u64, started: Instant) {
        // Acknowledge first: a reader of the counters then also sees the
        // committed offsets.
        lock(&self.tracker).ack(id);
        self.stats.rows_dead_lettered.inc_by(dead_lettered);
        self.stats
            .rows_delivered
            .inc_by(rows.saturating_sub(dead_lettered));
        self.stats
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// The rows are in the sink's hands: return their memory now, and
    /// acknowledge them when they are durable. Rows the sink gives up are
    /// fatal: they are gone from memory, and only a restart (from the
    /// checkpoint) reads them again.
    fn await_durable(
        &self,
        item: Arc<Dispatched>,
        durable: tidewater_sinks::Durable,
        started: Instant,
    ) {
        let w = self.clone();
        let (id, rows) = (item.id, item.batch.records.num_rows() as u64);
        let name = format!("sink {} staged batch {}", self.sink.name(), item.batch.id);
        drop(item);
        let task = self.critical.spawn(name, async move {
            if durable.wait().await {
                w.acked_id(id, rows, 0, started);
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "the sink gave up staged rows (a staging file it could not write, see the log); a restart reads them again from the checkpoint"
                ))
            }
        });
        self.staged.push(task);
    }

    /// Write the rejected rows to the dead letter, retrying until it works:
    /// only the dead letter is retried (offering the batch again would send
    /// the other rows again).
    async fn dead_letter(&self, item: &Dispatched, rejected: &[RejectedRow]) {
        let mut backoff = Backoff::default();
        let mut last_log: Option<Instant> = None;
        loop {
            let dir = self.data_dir.clone();
            let (name, batch, r) = (
                self.sink.name().to_string(),
                item.batch.clone(),
                rejected.to_vec(),
            );
            let written = tokio::task::spawn_blocking(move || {
                crate::dead_letter::write(&dir, &name, &batch, &r)
            })
            .await;
            let error = match written {
                Ok(Ok(path)) => {
                    let reason = rejected.first().map_or("", |r| r.reason.as_str());
                    tracing::warn!(sink = self.sink.name(), rows = rejected.len(), path = %path.display(), reason, "rows rejected; written to the dead letter");
                    return;
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) => format!("dead-letter task failed: {e}"),
            };
            if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                last_log = Some(Instant::now());
                tracing::error!(
                    sink = self.sink.name(),
                    error,
                    "cannot write the dead letter; will retry"
                );
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
