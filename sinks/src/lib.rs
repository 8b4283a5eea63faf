//! tidewater's destinations.
//!
//! A sink receives Arrow batches and answers, for each one, a [`Delivery`]:
//! the only thing that decides whether the pipeline may acknowledge the batch
//! (and so advance the source's checkpoint). Sinks know nothing about files or
//! tailing: they see a [`SinkBatch`] with a stable id and an Arrow
//! `RecordBatch` whose schema comes from `schemas/`.

mod error;
mod key;
pub mod parquet;
pub mod store;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

pub use error::SinkError;
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
}
