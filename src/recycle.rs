//! Text buffers of delivered batches, handed to the next batch's builder.
//!
//! A batch's `fields` and `message` text takes megabytes, and the builder
//! of the next batch in a burst asks for the same sizes again
//! (`batch::Builder` reserves the last full batch's sizes). glibc serves
//! blocks that large with fresh mappings (the 1 MiB mmap threshold that
//! `main` sets for the memory target), which the kernel zeroes and faults
//! in page by page on the reader thread, the pipeline's critical path.
//! Reusing the freed buffers skips that (measured in BENCHMARKS.md,
//! issue 16).
//!
//! **Memory.** The pool is bounded: only buffers of at least [`MIN_BYTES`],
//! at most [`MAX_BUFFERS`] of them and [`MAX_BYTES`] in all. It keeps
//! buffers only in a burst: from a full batch ([`want`]) until a builder
//! finishes one that was not full ([`clear`]), so a sidecar at rest holds
//! none. Pooled buffers are not charged to the memory budget: they are at
//! most [`MAX_BYTES`].
//!
//! **At rest**, malloc's heap still holds what a burst freed: after the
//! end-to-end job, 30 MB of heap with 7 MB in use, since glibc returns to
//! the kernel only free memory at the top of the heap. [`AtRest`] tells
//! when a pipeline that delivered batches has stopped delivering them;
//! the pipeline then gives the heap's free pages back
//! ([`release_free_memory`]), once per rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

/// Also the mmap threshold `main` sets (1 MiB): smaller buffers come from
/// malloc's heap, which reuses freed memory without faulting it in again.
pub const MIN_BYTES: usize = 1 << 20;
/// The next batch's `fields` text (its `message` text is usually smaller
/// than [`MIN_BYTES`]); each buffer held here is memory the process keeps.
pub const MAX_BUFFERS: usize = 1;
/// One of the largest batches' text (`max_bytes` is 8 MiB by default).
pub const MAX_BYTES: usize = 8 << 20;

/// The pooled buffers; the process has one ([`want`], [`clear`], [`give`],
/// [`take`]).
#[derive(Default)]
struct Pool {
    /// In a burst: a builder will ask for buffers.
    wanted: bool,
    buffers: Vec<Vec<u8>>,
}

impl Pool {
    fn clear(&mut self) {
        self.wanted = false;
        self.buffers.clear();
    }

    fn keep(&mut self, values: Vec<u8>) {
        let held: usize = self.buffers.iter().map(Vec::capacity).sum();
        let room = self.buffers.len() < MAX_BUFFERS && held + values.capacity() <= MAX_BYTES;
        if self.wanted && room {
            self.buffers.push(values);
        }
    }

    fn take(&mut self, bytes: usize) -> Option<Vec<u8>> {
        if bytes < MIN_BYTES {
            return None;
        }
        let (i, _) = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= bytes)
            .min_by_key(|(_, b)| b.capacity())?;
        Some(self.buffers.swap_remove(i))
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    wanted: false,
    buffers: Vec::new(),
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // The pool holds only empty buffers: one a panic left behind is as good.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A builder finished a full batch: keep the buffers of delivered ones.
pub fn want() {
    pool().wanted = true;
}

/// The burst is over: free every pooled buffer and keep none until [`want`].
pub fn clear() {
    pool().clear();
}

/// Keep the string columns' text buffers of `records` for later batches,
/// where no one else holds them (another sink's copy of the rows, a slice).
/// Called once per batch and sink, when the sink is done with it (delivered,
/// dead-lettered or dropped at a stop): [`AtRest`] counts these calls.
pub fn give(records: RecordBatch) {
    DELIVERED.fetch_add(1, Ordering::Relaxed);
    if !pool().wanted {
        return;
    }
    for values in text_buffers(records) {
        pool().keep(values);
    }
}

/// An empty buffer with room for at least `bytes`, if one is pooled (the
/// smallest such).
pub fn take(bytes: usize) -> Option<Vec<u8>> {
    pool().take(bytes)
}

/// Batches sinks were done with so far ([`give`]): activity, not a count
/// of deliveries.
static DELIVERED: AtomicU64 = AtomicU64::new(0);

/// How often the pipeline asks [`AtRest::check`]: a pipeline at rest for
/// this long gives its free memory back.
pub const REST_CHECK: Duration = Duration::from_secs(5);

/// Tells when the pipeline has come to rest after delivering batches.
#[derive(Debug, Default)]
pub struct AtRest {
    /// Deliveries counted at the previous check.
    seen: u64,
    /// Deliveries counted when the memory was last released.
    released: u64,
}

impl AtRest {
    /// Called every [`REST_CHECK`]: true once when no batch was delivered
    /// since the previous check but some were since the last release.
    pub fn check(&mut self) -> bool {
        self.check_at(DELIVERED.load(Ordering::Relaxed))
    }

    fn check_at(&mut self, delivered: u64) -> bool {
        let resting = delivered == self.seen;
        self.seen = delivered;
        if resting && delivered != self.released {
            self.released = delivered;
            return true;
        }
        false
    }
}

/// Give the memory malloc holds unused back to the kernel (glibc's
/// `malloc_trim`; nothing with another libc). It walks the whole heap and
/// holds malloc's lock meanwhile: call it at rest ([`AtRest`]), on a
/// blocking thread, never per batch.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds unused.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The text buffers of `records`' string columns that are large enough to
/// pool and that no one else holds, emptied.
fn text_buffers(records: RecordBatch) -> Vec<Vec<u8>> {
    let (_, columns, _) = records.into_parts();
    let mut buffers = Vec::new();
    for column in columns {
        if *column.data_type() != DataType::Utf8 || column.get_buffer_memory_size() < MIN_BYTES {
            continue;
        }
        let strings = column.as_string::<i32>().clone();
        drop(column);
        let (_, values, _) = strings.into_parts();
        if values.capacity() < MIN_BYTES {
            continue;
        }
        if let Ok(mut values) = values.into_vec::<u8>() {
            values.clear();
            buffers.push(values);
        }
    }
    buffers
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringBuilder};

    use super::*;

    /// A batch whose text column is built as `batch::Builder` builds it
    /// (arrow's `StringBuilder`, whose buffers are plain `Vec`s).
    fn batch(text_bytes: usize) -> RecordBatch {
        let row = "x".repeat(1000);
        let rows = text_bytes / row.len();
        let mut builder = StringBuilder::with_capacity(rows, text_bytes);
        for _ in 0..rows {
            builder.append_value(&row);
        }
        let text: ArrayRef = Arc::new(builder.finish());
        let numbers: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        RecordBatch::try_from_iter([("text", text), ("n", numbers)]).expect("valid batch")
    }

    fn give(pool: &mut Pool, records: RecordBatch) {
        for values in text_buffers(records) {
            pool.keep(values);
        }
    }

    #[test]
    fn buffers_are_reused_only_in_a_burst_when_unshared_and_the_pool_is_bounded() {
        let mut pool = Pool::default();
        give(&mut pool, batch(2 << 20));
        assert!(pool.take(MIN_BYTES).is_none(), "no burst: nothing is kept");

        pool.wanted = true;
        let b = batch(2 << 20);
        let shared = b.clone();
        give(&mut pool, b);
        assert!(
            pool.take(MIN_BYTES).is_none(),
            "a buffer someone else holds is not pooled"
        );
        drop(shared);

        give(&mut pool, batch(2 << 20));
        let reused = pool.take(1_900_000).expect("the freed text buffer");
        assert!(reused.is_empty() && reused.capacity() >= 1_900_000);
        assert!(pool.take(MIN_BYTES).is_none(), "taken once");

        give(&mut pool, batch(512 << 10));
        assert!(pool.buffers.is_empty(), "small buffers are left to malloc");

        for _ in 0..MAX_BUFFERS + 2 {
            give(&mut pool, batch(2 << 20));
        }
        assert_eq!(pool.buffers.len(), MAX_BUFFERS);
        assert!(pool.take(3 << 20).is_none(), "none is large enough");
        pool.clear();
        give(&mut pool, batch(2 << 20));
        assert!(pool.take(MIN_BYTES).is_none(), "the burst is over");
    }

    #[test]
    fn memory_is_released_once_per_rest_after_deliveries() {
        let mut rest = AtRest::default();
        assert!(!rest.check_at(0), "nothing delivered yet");
        assert!(!rest.check_at(3), "delivering");
        assert!(!rest.check_at(7), "still delivering");
        assert!(rest.check_at(7), "at rest after deliveries");
        assert!(!rest.check_at(7), "released once per rest");
        assert!(!rest.check_at(7));
        assert!(!rest.check_at(8), "delivering again");
        assert!(rest.check_at(8), "at rest again");
    }
}
