//! One process per data dir.
//!
//! Two processes on one data dir would overwrite each other's checkpoints,
//! so a start takes an exclusive lock on `<data_dir>/lock` and holds it
//! (the returned file) for as long as it runs; the kernel releases it when
//! the process exits, however it exits. Guarantees: [`lock`] returns the
//! file only once it holds the lock; while another process holds it, it
//! waits up to `lock_wait` (a rolling update whose old process is still
//! draining), and gives up — `None`, nothing read or written — at the first
//! SIGTERM or SIGINT meanwhile.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::shutdown::{cancel_on_signal, CancellationToken};

/// How often a start waiting for the data dir's lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// Lock `data_dir`, waiting up to `wait` for another process to release
/// it; `None` if a stop signal comes meanwhile. The caller blocks the
/// thread it runs on, so the signals are watched by a task on the
/// runtime's workers, which cancels a token this thread checks.
pub fn lock(data_dir: &Path, wait: Duration) -> anyhow::Result<Option<std::fs::File>> {
    let path = data_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("data_dir: cannot open {}", path.display()))?;
    let started = std::time::Instant::now();
    let mut stop: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    let locked = loop {
        match file.try_lock() {
            Ok(()) => break Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                let (stopped, _) = match &stop {
                    Some(s) => s,
                    None => {
                        tracing::info!(data_dir = %data_dir.display(), lock_wait = ?wait, "data_dir is in use by another tidewater process; waiting for it to exit");
                        let token = CancellationToken::new();
                        let watcher = cancel_on_signal(token.clone())?;
                        stop.insert((token, watcher))
                    }
                };
                if stopped.is_cancelled() {
                    break Ok(None);
                }
                std::thread::sleep(LOCK_POLL);
            }
            Err(std::fs::TryLockError::WouldBlock) => break Err(anyhow::anyhow!(
                "data_dir {} is in use by another tidewater process (lock file {}; waited {:?}, see lock_wait)",
                data_dir.display(),
                path.display(),
                wait
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                break Err(e).with_context(|| format!("data_dir: cannot lock {}", path.display()))
            }
        }
    };
    // `run` listens for the signals from here on.
    if let Some((_, watcher)) = stop {
        watcher.abort();
    }
    locked
}
