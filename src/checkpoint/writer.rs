//! Getting the checkpoint to disk.
//!
//! Guarantees: the file is replaced atomically and durably ([`write`]: a
//! temporary file, fsynced, renamed over the old one, the directory
//! fsynced), so a crash leaves the old checkpoint or the new one, never a
//! mix; writes are serialised and each takes its snapshot inside the
//! serialisation ([`save`]), so a newer state is never overwritten by an
//! older one; and a failed write is retried on the next tick with every
//! entry ([`run`]), logged when it starts failing and then at most every
//! [`LOG_EVERY`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CheckpointError, Checkpoints, Entry, OnDisk, FILE_NAME};
use crate::lock;
use crate::tasks::LOG_EVERY;

/// Replace the checkpoint file at `path` with `files`, atomically and durably.
pub fn write(path: &Path, files: Vec<Entry>) -> Result<(), CheckpointError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let step = |what: &'static str| {
        move |e: io::Error| CheckpointError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(e.kind(), format!("{what}: {e}")),
        }
    };
    let json = serde_json::to_vec_pretty(&OnDisk { version: 1, files })
        .expect("checkpoint entries serialize");
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(step("creating the data dir"))?;
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{FILE_NAME}.{}.{n}.tmp", std::process::id()));
    let mut f = File::create(&tmp).map_err(step("creating the temporary file"))?;
    f.write_all(&json)
        .map_err(step("writing the temporary file"))?;
    f.sync_all().map_err(step("syncing the temporary file"))?;
    drop(f);
    fs::rename(&tmp, path).map_err(step("renaming the temporary file"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(step("syncing the data dir"))?;
    Ok(())
}

/// Write the checkpoint if it changed. Writes are serialised, and each takes
/// its snapshot inside the serialisation, so a newer state is never
/// overwritten by an older one.
pub async fn save(store: &Arc<Mutex<Checkpoints>>) -> anyhow::Result<()> {
    static WRITING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _writing = WRITING.lock().await;
    let (path, changes, listener) = {
        let mut s = lock(store);
        (s.path().to_path_buf(), s.take_changes(), s.written.clone())
    };
    if let Some(files) = changes {
        // The listener runs here too: sinks may touch files in it.
        let written = tokio::task::spawn_blocking(move || {
            let entries = listener.as_ref().map(|_| files.clone());
            write(&path, files)?;
            if let (Some(listener), Some(entries)) = (listener, entries) {
                listener(&entries);
            }
            Ok::<(), CheckpointError>(())
        })
        .await?;
        if let Err(e) = written {
            lock(store).mark_dirty();
            return Err(e.into());
        }
    }
    Ok(())
}

/// The checkpoint writer: [`save`] every `interval` until `stop` is
/// cancelled. It does not write on its way out: the caller makes the final
/// write once nothing else can (no periodic write may still be running when
/// the final one starts).
pub async fn run(
    store: Arc<Mutex<Checkpoints>>,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return Ok(()),
        }
        match save(&store).await {
            Ok(()) => {
                if failing_since.take().is_some() {
                    tracing::info!("the checkpoint is written again");
                }
            }
            Err(e) => {
                // Logged when it starts failing, then at most every LOG_EVERY.
                let log = failing_since.is_none_or(|t| t.elapsed() >= LOG_EVERY);
                if log {
                    failing_since = Some(Instant::now());
                    tracing::error!(error = %format!("{e:#}"), "cannot write the checkpoint; will retry");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::FileId;

    #[tokio::test]
    async fn writes_on_its_ticks_and_stops_when_cancelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Mutex::new(Checkpoints::open(dir.path()).expect("store")));
        let id = FileId::next();
        lock(&store).track(
            id,
            Entry {
                source: "app".into(),
                path: "/logs/a.log".into(),
                dev: 1,
                ino: 2,
                head_len: 0,
                head_hash: 0,
                offset: 0,
            },
        );
        lock(&store).commit(id, 42);
        let stop = CancellationToken::new();
        let writer = tokio::spawn(run(
            Arc::clone(&store),
            Duration::from_millis(10),
            stop.clone(),
        ));
        let file = dir.path().join(FILE_NAME);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !file.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let written = Checkpoints::read(dir.path()).expect("written");
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].offset, 42);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer stops when cancelled")
            .expect("joined")
            .expect("no error");
    }
}
