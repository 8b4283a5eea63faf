//! Sources: where lines come from.
//!
//! Today one kind, [`tail`]: files matched by globs, followed across
//! rotation, truncation and restarts. Each kind owns its configuration,
//! checks and health check (`warnings`, what `validate` reports) next to
//! its code ([`tail::config`]), and is started by the registry
//! (`crate::config::SourceConfig::spawn`) with a [`SourceContext`]. The
//! file identity types the sources hand on live in the leaf [`crate::file`].
//!
//! Guarantees every source keeps: it reads on its own thread (reading and
//! parsing are blocking CPU work); it reserves a batch's memory before
//! sending it, and sends on a bounded channel, so a slow sink stops it; it
//! stops when the shutdown token is cancelled; a panic in it stops the
//! process, naming the source ([`crate::tasks::Critical`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, Builder};
use crate::checkpoint::Checkpoints;
use crate::memory::MemoryBudget;
use crate::stats::SourceStats;
use crate::tasks::Critical;

pub mod tail;

/// Everything a source needs from the pipeline.
pub struct SourceContext {
    /// The source's name (`[sources.<name>]`).
    pub name: String,
    /// Relative paths in the source's keys are relative to this.
    pub base_dir: PathBuf,
    /// The JSON body keys that `[[columns]]` read.
    pub extra_keys: Arc<[String]>,
    /// The source's own batch builder.
    pub builder: Builder,
    /// Finished batches go here (bounded: a full channel blocks the reader).
    pub batches: mpsc::Sender<Batch>,
    pub checkpoints: Arc<Mutex<Checkpoints>>,
    pub stats: Arc<SourceStats>,
    /// Batches in flight wait for room here.
    pub memory: Arc<MemoryBudget>,
    /// Cancelled when the pipeline stops: the source hands over what it
    /// built and returns (checked between blocks and while waiting for
    /// memory).
    pub shutdown: CancellationToken,
    /// Read everything there is once, then stop.
    pub once: bool,
}

/// Why a source stopped early.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A running source's thread: it returns when the source has read
/// everything (`once`) or was stopped.
pub type Reader = std::thread::JoinHandle<Result<(), SourceError>>;

/// Run `read` on a thread of its own named `thread`; a panic in it is
/// reported to `critical` (which stops the process) naming `source`.
pub fn spawn_reader(
    source: &str,
    thread: String,
    critical: &Critical,
    read: impl FnOnce() -> Result<(), SourceError> + Send + 'static,
) -> std::io::Result<Reader> {
    let failed = critical.clone();
    let source = source.to_string();
    std::thread::Builder::new().name(thread).spawn(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
            let panic = crate::tasks::panic_message(&*panic);
            failed.report(format!("source {source} reader panicked: {panic}"));
            Ok(())
        })
    })
}
