//! Counters of what the pipeline did, per source and per sink.
//!
//! The same counters feed two readers: `/metrics` (Prometheus, labelled by
//! `source` and `sink`; see [`crate::metrics`]) and the one-line JSON summary
//! printed when the process exits. The summary holds the numbers an operator
//! checks to see that nothing was lost: every line read is either a record,
//! part of one, or counted as empty; every record is delivered or
//! dead-lettered.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::lock;

type Label = [(&'static str, String); 1];
type Counters = Family<Label, Counter>;

/// What one source counts. Handles into the shared [`Stats`]: updating them
/// is one relaxed atomic add.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub files: Counter,
    pub lines: Counter,
    pub bytes: Counter,
    /// Bytes a `--once` run has to read in all (for the progress bar).
    pub bytes_total: AtomicU64,
    pub records: Counter,
    pub parse_errors: Counter,
    pub truncated: Counter,
    pub invalid_utf8: Counter,
    pub empty_lines: Counter,
    pub unreadable_files: Counter,
    pub open_files: Gauge,
}

/// What one sink counts.
#[derive(Debug)]
pub struct SinkStats {
    pub rows_delivered: Counter,
    pub rows_dead_lettered: Counter,
    /// Batches the pipeline retried (for the exit summary; `/metrics`
    /// counts every failed attempt instead, see [`crate::metrics`]).
    pub retries: Counter,
    /// Seconds from a batch's first delivery attempt to its acknowledgement
    /// (retries and, for staged rows, the wait until they are durable).
    pub batch_seconds: Histogram,
}

/// Every source's and sink's counters, and the Prometheus registry that
/// exports them.
pub struct Stats {
    registry: Mutex<Registry>,
    families: Families,
    sources: Mutex<Vec<Arc<SourceStats>>>,
    sinks: Mutex<Vec<Arc<SinkStats>>>,
}

struct Families {
    files: Counters,
    lines: Counters,
    bytes: Counters,
    records: Counters,
    parse_errors: Counters,
    truncated: Counters,
    invalid_utf8: Counters,
    empty_lines: Counters,
    unreadable_files: Counters,
    open_files: Family<Label, Gauge>,
    rows_delivered: Counters,
    rows_dead_lettered: Counters,
    batch_seconds: Family<Label, Histogram, fn() -> Histogram>,
}

fn batch_histogram() -> Histogram {
    // 5 ms to about 22 minutes.
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

/// A snapshot of [`Stats`], summed over sources and sinks, as printed at exit.
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

impl Default for Stats {
    fn default() -> Self {
        let families = Families {
            files: Counters::default(),
            lines: Counters::default(),
            bytes: Counters::default(),
            records: Counters::default(),
            parse_errors: Counters::default(),
            truncated: Counters::default(),
            invalid_utf8: Counters::default(),
            empty_lines: Counters::default(),
            unreadable_files: Counters::default(),
            open_files: Family::default(),
            rows_delivered: Counters::default(),
            rows_dead_lettered: Counters::default(),
            batch_seconds: Family::new_with_constructor(batch_histogram),
        };
        let mut r = Registry::default();
        let f = &families;
        r.register(
            "tidewater_source_files_opened",
            "Files a source started reading",
            f.files.clone(),
        );
        r.register("tidewater_source_lines", "Lines read", f.lines.clone());
        r.register(
            "tidewater_source_read_bytes",
            "Bytes read from log files",
            f.bytes.clone(),
        );
        r.register(
            "tidewater_source_records",
            "Records produced (CRI/Docker partial lines joined)",
            f.records.clone(),
        );
        r.register(
            "tidewater_source_parse_errors",
            "Records kept raw because they could not be parsed",
            f.parse_errors.clone(),
        );
        r.register(
            "tidewater_source_truncated_records",
            "Records cut at max_line_bytes",
            f.truncated.clone(),
        );
        r.register(
            "tidewater_source_invalid_utf8_records",
            "Records with invalid UTF-8, kept lossy",
            f.invalid_utf8.clone(),
        );
        r.register(
            "tidewater_source_empty_lines",
            "Empty lines skipped",
            f.empty_lines.clone(),
        );
        r.register(
            "tidewater_source_unreadable_files",
            "Files that could not be opened",
            f.unreadable_files.clone(),
        );
        r.register(
            "tidewater_source_open_files",
            "Files held open by a source",
            f.open_files.clone(),
        );
        r.register(
            "tidewater_sink_records_delivered",
            "Records a sink acknowledged (durable)",
            f.rows_delivered.clone(),
        );
        r.register(
            "tidewater_sink_records_dead_lettered",
            "Records a sink rejected, written to the dead letter",
            f.rows_dead_lettered.clone(),
        );
        r.register(
            "tidewater_sink_batch_duration_seconds",
            "From a batch's first delivery attempt to its acknowledgement",
            f.batch_seconds.clone(),
        );
        Self {
            registry: Mutex::new(r),
            families,
            sources: Mutex::default(),
            sinks: Mutex::default(),
        }
    }
}

impl Stats {
    /// The counters of the source `name` (created on first use).
    pub fn source(&self, name: &str) -> Arc<SourceStats> {
        let l = [("source", name.to_string())];
        let f = &self.families;
        let s = Arc::new(SourceStats {
            files: f.files.get_or_create_owned(&l),
            lines: f.lines.get_or_create_owned(&l),
            bytes: f.bytes.get_or_create_owned(&l),
            bytes_total: AtomicU64::new(0),
            records: f.records.get_or_create_owned(&l),
            parse_errors: f.parse_errors.get_or_create_owned(&l),
            truncated: f.truncated.get_or_create_owned(&l),
            invalid_utf8: f.invalid_utf8.get_or_create_owned(&l),
            empty_lines: f.empty_lines.get_or_create_owned(&l),
            unreadable_files: f.unreadable_files.get_or_create_owned(&l),
            open_files: f.open_files.get_or_create_owned(&l),
        });
        lock(&self.sources).push(Arc::clone(&s));
        s
    }

    /// The counters of the sink `name` (created on first use).
    pub fn sink(&self, name: &str) -> Arc<SinkStats> {
        let l = [("sink", name.to_string())];
        let f = &self.families;
        let s = Arc::new(SinkStats {
            rows_delivered: f.rows_delivered.get_or_create_owned(&l),
            rows_dead_lettered: f.rows_dead_lettered.get_or_create_owned(&l),
            retries: Counter::default(),
            batch_seconds: f.batch_seconds.get_or_create_owned(&l),
        });
        lock(&self.sinks).push(Arc::clone(&s));
        s
    }

    /// Register more metrics (the ones computed when scraped).
    pub fn with_registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut lock(&self.registry))
    }

    /// Every metric in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &lock(&self.registry));
        out
    }

    /// Bytes read so far and bytes to read in all (for the progress bar).
    pub fn progress(&self) -> (u64, u64) {
        let s = lock(&self.sources);
        (
            s.iter().map(|s| s.bytes.get()).sum(),
            s.iter().map(|s| s.bytes_total.load(Relaxed)).sum(),
        )
    }

    pub fn summary(&self) -> Summary {
        let sources = lock(&self.sources);
        let sinks = lock(&self.sinks);
        let src = |c: fn(&SourceStats) -> &Counter| sources.iter().map(|s| c(s).get()).sum();
        let snk = |c: fn(&SinkStats) -> &Counter| sinks.iter().map(|s| c(s).get()).sum();
        Summary {
            files: src(|s| &s.files),
            lines: src(|s| &s.lines),
            bytes: src(|s| &s.bytes),
            records: src(|s| &s.records),
            parse_errors: src(|s| &s.parse_errors),
            truncated: src(|s| &s.truncated),
            invalid_utf8: src(|s| &s.invalid_utf8),
            empty_lines: src(|s| &s.empty_lines),
            unreadable_files: src(|s| &s.unreadable_files),
            rows_delivered: snk(|s| &s.rows_delivered),
            rows_dead_lettered: snk(|s| &s.rows_dead_lettered),
            sink_retries: snk(|s| &s.retries),
        }
    }
}
