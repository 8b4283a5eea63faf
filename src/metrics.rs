//! `GET /metrics`: the counters of [`crate::stats`] plus what is measured at
//! scrape time — checkpoint lag per file, batches in flight, sink queue
//! depth, sink health and the process's resident memory — in the OpenMetrics
//! text format that Prometheus scrapes.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::ack::AckTracker;
use crate::checkpoint::Checkpoints;
use crate::health::Health;
use crate::lock;
use crate::memory::MemoryBudget;
use crate::stats::{registered, Stats};

/// How many batches wait in a sink's queue right now.
pub type QueueDepth = Box<dyn Fn() -> usize + Send + Sync>;

/// Everything `/metrics` reads; built once the pipeline runs.
pub struct Metrics {
    stats: Arc<Stats>,
    checkpoints: Arc<Mutex<Checkpoints>>,
    tracker: Arc<Mutex<AckTracker>>,
    health: Arc<Health>,
    memory: Arc<MemoryBudget>,
    queues: Vec<(String, QueueDepth)>,
    gauges: Gauges,
    /// One scrape at a time: each rewrites the per-file gauges.
    scraping: Mutex<()>,
}

struct Gauges {
    lag: Family<[(&'static str, String); 2], Gauge>,
    source_lag: Family<[(&'static str, String); 1], Gauge>,
    in_flight: Gauge,
    queue_depth: Family<[(&'static str, String); 1], Gauge>,
    sink_up: Family<[(&'static str, String); 1], Gauge>,
    retries: Family<[(&'static str, String); 1], Counter>,
    degraded: Family<[(&'static str, String); 1], Counter>,
    rss: Gauge,
    reserved: Gauge,
    budget: Gauge,
}

impl Metrics {
    pub fn new(
        stats: Arc<Stats>,
        checkpoints: Arc<Mutex<Checkpoints>>,
        tracker: Arc<Mutex<AckTracker>>,
        health: Arc<Health>,
        memory: Arc<MemoryBudget>,
        queues: Vec<(String, QueueDepth)>,
    ) -> Self {
        let gauges = stats.with_registry(|r| Gauges {
            lag: registered(
                r,
                "tidewater_checkpoint_lag_bytes",
                "Bytes of a file not yet delivered to every sink (file size minus committed offset)",
                Family::default(),
            ),
            source_lag: registered(
                r,
                "tidewater_source_lag_bytes",
                "Bytes of a source's files not yet delivered to every sink",
                Family::default(),
            ),
            in_flight: registered(
                r,
                "tidewater_batches_in_flight",
                "Batches read but not yet acknowledged by every sink",
                Gauge::default(),
            ),
            queue_depth: registered(
                r,
                "tidewater_sink_queue_depth",
                "Batches waiting in a sink's queue",
                Family::default(),
            ),
            sink_up: registered(
                r,
                "tidewater_sink_up",
                "1 when the sink's last attempt succeeded, 0 while it fails",
                Family::default(),
            ),
            retries: registered(
                r,
                "tidewater_sink_retries",
                "Failed attempts to write to the destination, each retried (background uploads included)",
                Family::default(),
            ),
            degraded: registered(
                r,
                "tidewater_sink_degraded_rows",
                "Rows delivered with a weaker guarantee than configured (BigQuery exactly_once sent at-least-once at a quota)",
                Family::default(),
            ),
            reserved: registered(
                r,
                "tidewater_batch_memory_bytes",
                "Bytes of the memory budget that batches in flight hold",
                Gauge::default(),
            ),
            budget: registered(
                r,
                "tidewater_batch_memory_limit_bytes",
                "The budget for batches in flight: half of memory_limit",
                Gauge::default(),
            ),
            rss: registered(
                r,
                "process_resident_memory_bytes",
                "Resident memory of the tidewater process",
                Gauge::default(),
            ),
        });
        Self {
            stats,
            checkpoints,
            tracker,
            health,
            memory,
            queues,
            gauges,
            scraping: Mutex::new(()),
        }
    }

    /// The whole exposition, with the scrape-time gauges refreshed.
    pub fn render(&self) -> String {
        let _one = lock(&self.scraping);
        let g = &self.gauges;
        let entries = lock(&self.checkpoints).entries();
        // Stat outside the checkpoint lock: the readers need it. A file the
        // reader holds open is measured through its descriptor, so a file
        // renamed or deleted by rotation still shows its lag.
        let open = open_file_sizes();
        let mut per_source: HashMap<String, u64> = HashMap::new();
        g.lag.clear();
        for entry in &entries {
            let size = open
                .get(&(entry.dev, entry.ino))
                .copied()
                .or_else(|| entry.on_disk().size);
            let Some(size) = size else { continue };
            let lag = size.saturating_sub(entry.offset);
            *per_source.entry(entry.source.clone()).or_default() += lag;
            g.lag
                .get_or_create(&[
                    ("source", entry.source.clone()),
                    ("path", entry.path.display().to_string()),
                ])
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        for (source, lag) in per_source {
            g.source_lag
                .get_or_create(&[("source", source)])
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        g.in_flight.set(lock(&self.tracker).in_flight() as i64);
        for (sink, depth) in &self.queues {
            g.queue_depth
                .get_or_create(&[("sink", sink.clone())])
                .set(depth() as i64);
        }
        for (sink, ok, failed, degraded) in self.health.sinks_ok() {
            let label = [("sink", sink)];
            g.sink_up.get_or_create(&label).set(i64::from(ok));
            // The sink counts; the counters follow it (they never go down).
            let retries = g.retries.get_or_create(&label);
            retries.inc_by(failed.saturating_sub(retries.get()));
            let degraded_rows = g.degraded.get_or_create(&label);
            degraded_rows.inc_by(degraded.saturating_sub(degraded_rows.get()));
        }
        g.reserved
            .set(i64::try_from(self.memory.reserved()).unwrap_or(i64::MAX));
        g.budget
            .set(i64::try_from(self.memory.limit()).unwrap_or(i64::MAX));
        if let Some(rss) = resident_bytes() {
            g.rss.set(rss);
        }
        self.stats.encode()
    }
}

/// (device, inode) → size of every regular file this process holds open.
fn open_file_sizes() -> HashMap<(u64, u64), u64> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return HashMap::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .filter(|m| m.is_file())
        .map(|m| ((m.dev(), m.ino()), m.len()))
        .collect()
}

/// VmRSS of this process, from `/proc/self/status` (Linux).
pub fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
