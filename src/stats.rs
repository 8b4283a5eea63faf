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
use prometheus_client::registry::{Metric, Registry};
use serde::Serialize;
use tidewater_sinks::Sink;

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
    /// New files not opened yet because `max_rotated_files` are open.
    pub waiting_files: Gauge,
    /// Rotated files closed before `rotate_wait` to stay within `max_rotated_files`.
    pub rotated_closed_early: Counter,
    /// Files that were gone before they could be read (counted, never silent).
    pub files_lost: Counter,
    /// Lines joined onto the record before them (`[sources.x.multiline]`).
    pub multiline_joined: Counter,
    /// Records the source's `drop` removed.
    pub dropped: Counter,
    /// Records `[[redact]]` changed.
    pub redacted: Counter,
}

/// What one sink counts.
pub struct SinkStats {
    pub rows_delivered: Counter,
    pub rows_dead_lettered: Counter,
    /// Records of the sink's inputs that its `when` left out.
    pub rows_filtered: Counter,
    /// Seconds from a batch's first delivery attempt to its acknowledgement
    /// (retries and, for staged rows, the wait until they are durable).
    pub batch_seconds: Histogram,
    /// The sink itself: its health state counts failed attempts (every one
    /// is retried), background uploads included.
    sink: Arc<dyn Sink>,
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
    waiting_files: Family<Label, Gauge>,
    rotated_closed_early: Counters,
    files_lost: Counters,
    multiline_joined: Counters,
    dropped: Counters,
    redacted: Counters,
    rows_delivered: Counters,
    rows_dead_lettered: Counters,
    rows_filtered: Counters,
    batch_seconds: Family<Label, Histogram, fn() -> Histogram>,
}

fn batch_histogram() -> Histogram {
    // 5 ms to about 22 minutes.
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

/// Register `metric` as `name` and hand it back: metrics and families are
/// shared handles, so the caller keeps updating what the registry exports.
pub fn registered<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
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
    /// Records the sources' `drop` removed.
    #[serde(default)]
    pub records_dropped: u64,
    /// Records `[[redact]]` changed.
    #[serde(default)]
    pub records_redacted: u64,
    /// Per sink: what it acknowledged, dead-lettered, and what its `when`
    /// left out.
    #[serde(default)]
    pub sinks: std::collections::BTreeMap<String, SinkSummary>,
}

/// One sink's part of the [`Summary`].
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SinkSummary {
    pub delivered: u64,
    pub dead_lettered: u64,
    pub filtered: u64,
}

impl Default for Stats {
    fn default() -> Self {
        let mut r = Registry::default();
        let counters = |r: &mut Registry, name: &str, help: &str| {
            registered(r, name, help, Counters::default())
        };
        let families = Families {
            files: counters(
                &mut r,
                "tidewater_source_files_opened",
                "Files a source started reading",
            ),
            lines: counters(&mut r, "tidewater_source_lines", "Lines read"),
            bytes: counters(
                &mut r,
                "tidewater_source_read_bytes",
                "Bytes read from log files",
            ),
            records: counters(
                &mut r,
                "tidewater_source_records",
                "Records produced (CRI/Docker partial lines joined)",
            ),
            parse_errors: counters(
                &mut r,
                "tidewater_source_parse_errors",
                "Records kept raw because they could not be parsed",
            ),
            truncated: counters(
                &mut r,
                "tidewater_source_truncated_records",
                "Records cut at max_line_bytes",
            ),
            invalid_utf8: counters(
                &mut r,
                "tidewater_source_invalid_utf8_records",
                "Records with invalid UTF-8, kept lossy",
            ),
            empty_lines: counters(
                &mut r,
                "tidewater_source_empty_lines",
                "Empty lines skipped",
            ),
            unreadable_files: counters(
                &mut r,
                "tidewater_source_unreadable_files",
                "Files that could not be opened",
            ),
            open_files: registered(
                &mut r,
                "tidewater_source_open_files",
                "Files held open by a source",
                Family::default(),
            ),
            waiting_files: registered(
                &mut r,
                "tidewater_source_waiting_files",
                "New files not opened yet because max_rotated_files rotated files are open",
                Family::default(),
            ),
            rotated_closed_early: counters(
                &mut r,
                "tidewater_source_rotated_files_closed_early",
                "Rotated files read to their end and closed before rotate_wait, to stay within max_rotated_files",
            ),
            files_lost: counters(
                &mut r,
                "tidewater_source_files_lost",
                "Files rotated away and gone before they could be read",
            ),
            multiline_joined: counters(
                &mut r,
                "tidewater_source_multiline_joined_lines",
                "Lines joined onto the record before them by multiline rules (stack traces)",
            ),
            dropped: counters(
                &mut r,
                "tidewater_source_records_dropped",
                "Records removed by the source's drop condition (the checkpoint moves past them)",
            ),
            redacted: counters(
                &mut r,
                "tidewater_source_records_redacted",
                "Records whose text [[redact]] masked",
            ),
            rows_filtered: counters(
                &mut r,
                "tidewater_sink_records_filtered",
                "Records of a sink's inputs that its when condition left out (the checkpoint moves past them)",
            ),
            rows_delivered: counters(
                &mut r,
                "tidewater_sink_records_delivered",
                "Records a sink acknowledged (durable)",
            ),
            rows_dead_lettered: counters(
                &mut r,
                "tidewater_sink_records_dead_lettered",
                "Records a sink rejected, written to the dead letter",
            ),
            batch_seconds: registered(
                &mut r,
                "tidewater_sink_batch_duration_seconds",
                "From a batch's first delivery attempt to its acknowledgement",
                Family::new_with_constructor(batch_histogram),
            ),
        };
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
            waiting_files: f.waiting_files.get_or_create_owned(&l),
            rotated_closed_early: f.rotated_closed_early.get_or_create_owned(&l),
            files_lost: f.files_lost.get_or_create_owned(&l),
            multiline_joined: f.multiline_joined.get_or_create_owned(&l),
            dropped: f.dropped.get_or_create_owned(&l),
            redacted: f.redacted.get_or_create_owned(&l),
        });
        lock(&self.sources).push(Arc::clone(&s));
        s
    }

    /// The counters of `sink`.
    pub fn sink(&self, sink: &Arc<dyn Sink>) -> Arc<SinkStats> {
        let l = [("sink", sink.name().to_string())];
        let f = &self.families;
        let s = Arc::new(SinkStats {
            rows_delivered: f.rows_delivered.get_or_create_owned(&l),
            rows_dead_lettered: f.rows_dead_lettered.get_or_create_owned(&l),
            rows_filtered: f.rows_filtered.get_or_create_owned(&l),
            batch_seconds: f.batch_seconds.get_or_create_owned(&l),
            sink: Arc::clone(sink),
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

    /// Bytes read so far, bytes to read in all and records so far (for the
    /// progress bar).
    pub fn progress(&self) -> (u64, u64, u64) {
        let s = lock(&self.sources);
        (
            s.iter().map(|s| s.bytes.get()).sum(),
            s.iter().map(|s| s.bytes_total.load(Relaxed)).sum(),
            s.iter().map(|s| s.records.get()).sum(),
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
            sink_retries: sinks.iter().map(|s| s.sink.health().failed_total()).sum(),
            records_dropped: src(|s| &s.dropped),
            records_redacted: src(|s| &s.redacted),
            sinks: sinks
                .iter()
                .map(|s| {
                    let counts = SinkSummary {
                        delivered: s.rows_delivered.get(),
                        dead_lettered: s.rows_dead_lettered.get(),
                        filtered: s.rows_filtered.get(),
                    };
                    (s.sink.name().to_string(), counts)
                })
                .collect(),
        }
    }
}
