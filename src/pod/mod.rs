//! The Pod's own labels and annotations, for a sidecar (`[kubernetes]`).
//!
//! A `downwardAPI` volume holds them as files ([`downward`] parses their
//! format). The kubelet updates such a volume in place with its
//! AtomicWriter: the files live in a timestamped directory
//! (`..2026_12_02_13_00_00.123456789/`), `..data` is a symlink to it and
//! `labels` a symlink to `..data/labels`; an update writes a new
//! timestamped directory, points a `..data_tmp` symlink at it, renames that
//! over `..data` and removes the old directory. So a file is never seen
//! half-written, but its path resolves to another file after an update.
//!
//! [`PodInfo`] is the one shared handle: [`PodInfo::current`] is the
//! metadata now, an `Arc` taken once per batch by each source's builder (no
//! lock per record). [`Refresher::run`], a task under the pipeline's
//! shutdown token, checks the files every [`REFRESH_INTERVAL`] (the
//! resolved path, size, mtime and inode: cheap) and re-reads one only when
//! that changed, so records read after an update carry the new values
//! without a restart.
//!
//! A file that is missing or unreadable gives NULL columns: one warning when
//! it fails, one info line when it can be read again, retried on every
//! check. Malformed lines are skipped and logged once per read.
//!
//! A leaf: it depends on nothing else in the crate.

pub mod config;
pub mod downward;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

pub use config::KubernetesConfig;

/// How often the refresher looks for an update of the files.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// One file's map: its entries, and the same as a JSON object (keys sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    entries: BTreeMap<String, String>,
    json: String,
}

impl Map {
    pub fn new(entries: BTreeMap<String, String>) -> Self {
        let json = serde_json::to_string(&entries).expect("a map of strings serializes");
        Self { entries, json }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The JSON object text (`{"app":"web","team":"payments"}`).
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// The Pod's metadata at one moment. `None`: the file is not configured,
/// or could not be read at the last check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub labels: Option<Arc<Map>>,
    pub annotations: Option<Arc<Map>>,
}

impl Snapshot {
    /// The `labels` column's value.
    pub fn labels_json(&self) -> Option<&str> {
        self.labels.as_deref().map(Map::json)
    }

    /// The `annotations` column's value.
    pub fn annotations_json(&self) -> Option<&str> {
        self.annotations.as_deref().map(Map::json)
    }

    /// One label's value (a `[[columns]]` with `label = "…"`).
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_deref()?.get(key)
    }
}

/// The shared handle on the Pod's current metadata.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl PodInfo {
    /// Read the configured files now (relative paths against `base_dir`);
    /// the [`Refresher`] keeps the handle current.
    pub fn load(config: &KubernetesConfig, base_dir: &Path) -> (Self, Refresher) {
        let pod = PodInfo::default();
        let mut refresher = Refresher {
            pod: pod.clone(),
            labels: config
                .labels_file
                .as_ref()
                .map(|p| Watched::new("labels", base_dir.join(p))),
            annotations: config
                .annotations_file
                .as_ref()
                .map(|p| Watched::new("annotations", base_dir.join(p))),
        };
        refresher.refresh();
        (pod, refresher)
    }

    /// The metadata now.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set(&self, snapshot: Snapshot) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }
}

/// Keeps a [`PodInfo`] current with its files.
#[derive(Debug)]
pub struct Refresher {
    pod: PodInfo,
    labels: Option<Watched>,
    annotations: Option<Watched>,
}

impl Refresher {
    /// Check every file now; re-read those that changed. Returns whether
    /// the snapshot changed.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        for w in [&mut self.labels, &mut self.annotations]
            .into_iter()
            .flatten()
        {
            changed |= w.check();
        }
        if !changed {
            return false;
        }
        self.pod.set(Snapshot {
            labels: self.labels.as_ref().and_then(|w| w.map.clone()),
            annotations: self.annotations.as_ref().and_then(|w| w.map.clone()),
        });
        // Said once the new values are what batches take.
        for w in [&self.labels, &self.annotations].into_iter().flatten() {
            if let (true, Some(map)) = (w.loaded, &w.map) {
                tracing::info!(file = %w.path.display(), entries = map.entries.len(), "loaded the Pod's {}", w.what);
            }
        }
        true
    }

    /// Check every `interval` until `shutdown`. The files are small and on
    /// the kubelet's tmpfs, so they are read on the runtime's thread.
    pub async fn run(
        mut self,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            self.refresh();
        }
    }
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    /// The path with every symlink resolved: another timestamped directory
    /// after a kubelet update.
    target: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let target = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&target)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        target,
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// One configured file and what was last read from it.
#[derive(Debug)]
struct Watched {
    what: &'static str,
    path: PathBuf,
    /// The stamp of the content in `map`; `None` after a failure.
    seen: Option<Stamp>,
    map: Option<Arc<Map>>,
    /// Whether the last check failed (the warning is logged once).
    failing: bool,
    /// Whether the last check read a new map.
    loaded: bool,
}

impl Watched {
    fn new(what: &'static str, path: PathBuf) -> Self {
        Self {
            what,
            path,
            seen: None,
            map: None,
            failing: false,
            loaded: false,
        }
    }

    /// Re-read the file if it changed; whether its map changed.
    fn check(&mut self) -> bool {
        self.loaded = false;
        let stamp = stamp(&self.path);
        if let (Ok(now), Some(seen)) = (&stamp, &self.seen) {
            if now == seen {
                return false;
            }
        }
        // A read that races with the kubelet's swap (the old directory
        // removed between resolving `..data` and opening the file) fails
        // once; the second attempt resolves to the new directory.
        let read = stamp.and_then(|s| {
            let text = std::fs::read(&self.path).or_else(|_| std::fs::read(&self.path))?;
            Ok((s, text))
        });
        let (seen, text) = match read {
            Ok(read) => read,
            Err(e) => {
                if !self.failing {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot read the Pod's {}: the column is NULL until the file can be read (retried every {REFRESH_INTERVAL:?})", self.what);
                    self.failing = true;
                }
                self.seen = None;
                return self.map.take().is_some();
            }
        };
        if self.failing {
            tracing::info!(file = %self.path.display(), "the Pod's {} can be read again", self.what);
            self.failing = false;
        }
        self.seen = Some(seen);
        let text = String::from_utf8_lossy(&text);
        let parsed = downward::parse(&text);
        if let Some((line, why)) = parsed.skipped.first() {
            tracing::warn!(file = %self.path.display(), skipped = parsed.skipped.len(), first_line = line, first_reason = why, "lines of the Pod's {} that are not key=\"value\" were skipped", self.what);
        }
        let map = Map::new(parsed.entries);
        if self.map.as_deref() == Some(&map) {
            return false;
        }
        self.map = Some(Arc::new(map));
        self.loaded = true;
        true
    }
}

#[cfg(test)]
mod tests;
