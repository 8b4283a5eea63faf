//! tidewater's destinations.
//!
//! A sink receives Arrow batches and answers, for each one, a [`Delivery`]:
//! the only thing that decides whether the pipeline may acknowledge the batch
//! (and so advance the source's checkpoint). Sinks know nothing about files or
//! tailing: they see a [`SinkBatch`] with a stable id and an Arrow
//! `RecordBatch` whose schema comes from `schemas/`.

#[cfg(feature = "amqp")]
pub mod amqp;
mod backoff;
#[cfg(feature = "bigquery")]
pub mod bigquery;
pub mod component;
pub mod config;
mod error;
pub mod event;
mod health;
mod key;
pub mod parquet;
pub mod store;
pub mod when;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

pub use backoff::Backoff;
pub use component::{Limits, SinkComponent, SinkContext};
pub use error::SinkError;
pub use health::{Failure, HealthState};
pub use key::KeyTemplate;

/// One batch offered to a sink.
#[derive(Debug, Clone)]
pub struct SinkBatch {
    /// Stable identity of the batch: derived from where its first row was read,
    /// so a retry of the same batch produces the same id (and, for the Parquet
    /// sink, the same object key: a retried upload replaces, never duplicates).
    pub id: String,
    /// The rows, in the order they were read.
    pub records: RecordBatch,
    /// Where each row was read, one per row of `records`; empty unless a
    /// sink asked for them (see [`Sink::wants_origins`]).
    pub origins: std::sync::Arc<[RowOrigin]>,
    /// When the sink's `when` kept only some rows of the batch: each row's
    /// position in the batch as the source built it (so that a row's
    /// identity, `<id>-<position>`, does not depend on which sink it went
    /// to); `None` when `records` is the whole batch.
    pub rows: Option<std::sync::Arc<[u32]>>,
}

impl SinkBatch {
    /// The position of `row` of `records` in the batch as built: the same
    /// row has the same position whatever each sink's `when` kept.
    pub fn position(&self, row: usize) -> usize {
        match &self.rows {
            Some(rows) => rows.get(row).map_or(row, |&p| p as usize),
            None => row,
        }
    }
}

/// The identity of one row: the same line gets the same origin on every
/// read of it (a retry, a re-read after a crash, after a rename of its
/// file), and another line another one, so a destination with row-level
/// de-duplication (BigQuery's `insertId`) recognises a row it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowOrigin {
    /// The file's device and inode, hashed: stable while the file exists,
    /// through renames and restarts (unlike its content fingerprint, whose
    /// head grows with a young file).
    pub file: u64,
    /// Byte offset of the row's first line in that file.
    pub offset: u64,
    /// A hash of the row's content (timestamp, stream, message, body), which
    /// tells a line from another one written at the same offset of a
    /// truncated file or a reused inode.
    pub content: u64,
}

/// Rows of a batch that the destination can never accept.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// Index of the row in [`SinkBatch::records`].
    pub row: usize,
    /// Why the destination refused it, as it said.
    pub reason: String,
}

/// A sink's answer for one batch: the whole sink contract.
#[derive(Debug)]
pub enum Delivery {
    /// Every row is durable at the destination.
    Delivered,
    /// Every row is in the sink's hands but not durable yet (it is staged
    /// into a larger object that is completed later). The batch counts as
    /// delivered when [`Durable::wait`] returns `true`; until then the sink
    /// itself retries whatever fails, and the caller must not acknowledge the
    /// batch. If it returns `false` the sink gave the rows up and the caller
    /// offers the batch again.
    Staged(Durable),
    /// Nothing (or not all) is durable and trying again may succeed: the same
    /// batch will be offered again after a backoff.
    Retry(SinkError),
    /// These rows can never be accepted; every other row is durable. The
    /// pipeline dead-letters them (and counts them) before acknowledging.
    Rejected(Vec<RejectedRow>),
}

/// A destination for Arrow batches.
///
/// `deliver` may be called concurrently for different batches; a batch is
/// offered again only after the previous call for it returned
/// [`Delivery::Retry`].
#[async_trait]
pub trait Sink: Send + Sync {
    /// The sink's name in the configuration (`[sinks.<name>]`).
    fn name(&self) -> &str;
    /// Make the batch durable at the destination, or say why not.
    async fn deliver(&self, batch: &SinkBatch) -> Delivery;
    /// Complete everything staged so far now rather than when it is due
    /// (called when the pipeline drains). Staged batches still resolve only
    /// once their objects are complete.
    async fn flush(&self) {}
    /// Whether the destination is working, as the sink last saw it.
    fn health(&self) -> &HealthState;
    /// Whether batches must carry [`SinkBatch::origins`] (they cost a hash
    /// per row, so they are made only when some sink uses them).
    fn wants_origins(&self) -> bool {
        false
    }
    /// The checkpoint was written and now holds `files`: rows before each
    /// file's offset will never be offered again, so state kept to
    /// recognise them after a crash can go (BigQuery's exactly-once
    /// ledger). Called after every checkpoint write, on a blocking thread.
    fn checkpointed(&self, files: &[CommittedFile]) {
        let _ = files;
    }
}

/// One file of a written checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedFile {
    /// The file, as in [`RowOrigin::file`].
    pub file: u64,
    /// Every row that starts before this offset is delivered to every sink.
    pub offset: u64,
}

/// Resolves when the rows of a [`Delivery::Staged`] batch are durable.
#[derive(Debug)]
pub struct Durable(Vec<tokio::sync::oneshot::Receiver<()>>);

impl Durable {
    /// Durable when every one of `receivers` was told so; given up when the
    /// sender of any is dropped.
    pub fn new(receivers: Vec<tokio::sync::oneshot::Receiver<()>>) -> Self {
        Self(receivers)
    }

    /// Wait until every object holding the batch's rows is complete. Returns
    /// `false` if the sink gave up on them (a staging file it had to abandon,
    /// say): the pipeline then offers the batch again.
    pub async fn wait(self) -> bool {
        for rx in self.0 {
            if rx.await.is_err() {
                return false;
            }
        }
        true
    }
}
