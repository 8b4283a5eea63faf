//! Counters of what the pipeline did, shared by every stage.
//!
//! Printed as a one-line JSON summary when the process exits; the numbers an
//! operator checks to see that nothing was lost: every line read is either a
//! record, part of one, or counted as empty; every record is delivered or
//! dead-lettered.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Stats {
    pub files: AtomicU64,
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    /// Bytes the `--once` run has to read in all (for the progress bar).
    pub bytes_total: AtomicU64,
    pub records: AtomicU64,
    pub parse_errors: AtomicU64,
    pub truncated: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub empty_lines: AtomicU64,
    pub unreadable_files: AtomicU64,
    pub rows_delivered: AtomicU64,
    pub rows_dead_lettered: AtomicU64,
    pub sink_retries: AtomicU64,
}

/// A snapshot of [`Stats`], as printed at exit.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub lines: u64,
    pub bytes: u64,
    pub records: u64,
    pub parse_errors: u64,
    pub truncated: u64,
    pub invalid_utf8: u64,
    pub empty_lines: u64,
    pub unreadable_files: u64,
    pub rows_delivered: u64,
    pub rows_dead_lettered: u64,
    pub sink_retries: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn summary(&self) -> Summary {
        Summary {
            files: self.files.load(Relaxed),
            lines: self.lines.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            records: self.records.load(Relaxed),
            parse_errors: self.parse_errors.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            invalid_utf8: self.invalid_utf8.load(Relaxed),
            empty_lines: self.empty_lines.load(Relaxed),
            unreadable_files: self.unreadable_files.load(Relaxed),
            rows_delivered: self.rows_delivered.load(Relaxed),
            rows_dead_lettered: self.rows_dead_lettered.load(Relaxed),
            sink_retries: self.sink_retries.load(Relaxed),
        }
    }
}
