//! Durable read positions.
//!
//! For each file the store keeps the *committed* offset: every byte before it
//! has been acknowledged by every sink (the [`crate::ack`] tracker decides
//! that; nothing else moves it). Files are identified by device + inode and a
//! hash of their first bytes, so renames neither replay nor skip data and a
//! reused inode is not mistaken for the old file.
//!
//! The file `<data_dir>/checkpoints.json` is replaced atomically: written to a
//! temporary file, fsynced, renamed over the old one, and the directory
//! fsynced ([`writer`], which also runs the periodic writes). [`FileStatus`]
//! compares an entry with the file on disk now (`tidewater status`, the lag
//! in `/metrics`).

pub mod writer;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::file::{FileId, Head, Inode};
pub use writer::write;

/// The checkpoint file's name inside the data dir.
pub const FILE_NAME: &str = "checkpoints.json";

/// What is remembered of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The source that reads it.
    pub source: String,
    /// Where the file was last seen (it may have been renamed since it was opened).
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub head_len: u64,
    pub head_hash: u64,
    /// Every byte before this offset is delivered to every sink.
    pub offset: u64,
}

impl Entry {
    pub fn inode(&self) -> Inode {
        Inode {
            dev: self.dev,
            ino: self.ino,
        }
    }
    pub fn head(&self) -> Head {
        Head {
            len: self.head_len,
            hash: self.head_hash,
        }
    }

    /// This entry compared with the file on disk now.
    pub fn on_disk(&self) -> FileStatus {
        let (size, state) = match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {
                let state = if m.len() > self.offset {
                    "reading"
                } else {
                    "done"
                };
                (Some(m.len()), state)
            }
            Ok(_) => (None, "replaced"),
            Err(_) => (None, "missing"),
        };
        FileStatus {
            source: self.source.clone(),
            path: self.path.display().to_string(),
            committed: self.offset,
            size,
            lag: size.map(|s| s.saturating_sub(self.offset)),
            state,
        }
    }
}

/// One file of the checkpoint, compared with the disk.
#[derive(Debug, Serialize)]
pub struct FileStatus {
    pub source: String,
    pub path: String,
    /// Bytes delivered to every sink and checkpointed.
    pub committed: u64,
    /// The file's size now, when the path still holds the same file.
    pub size: Option<u64>,
    /// `size - committed`: on disk, not yet delivered.
    pub lag: Option<u64>,
    /// `reading`, `done` (lag 0), `replaced` (the path is another file now:
    /// rotated), or `missing`.
    pub state: &'static str,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Entry>,
}

/// A checkpoint file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("checkpoint {path} is not valid ({source}); move it away to start over (files are then read per read_from)")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

struct Live {
    entry: Entry,
    /// Set when the reader closed the file at this end offset; the entry is
    /// dropped once the committed offset reaches it.
    closed_at: Option<u64>,
}

/// The in-memory checkpoint state of every source.
pub struct Checkpoints {
    path: PathBuf,
    live: HashMap<FileId, Live>,
    /// Entries read from disk that no reader has claimed yet.
    unclaimed: Vec<Entry>,
    dirty: bool,
    written: Option<Written>,
}

/// Told what every checkpoint write wrote, once it is durable.
pub type Written = Arc<dyn Fn(&[Entry]) + Send + Sync>;

impl Checkpoints {
    /// Load `<data_dir>/checkpoints.json` (an absent file is an empty store).
    pub fn open(data_dir: &Path) -> Result<Self, CheckpointError> {
        let path = data_dir.join(FILE_NAME);
        let unclaimed = match fs::read(&path) {
            Ok(bytes) => {
                let disk: OnDisk =
                    serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                disk.files
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        Ok(Self {
            path,
            live: HashMap::new(),
            unclaimed,
            dirty: false,
            written: None,
        })
    }

    /// The entries of `<data_dir>/checkpoints.json`, read only (for
    /// `tidewater status`, which may run beside a live process).
    pub fn read(data_dir: &Path) -> Result<Vec<Entry>, CheckpointError> {
        Ok(Self::open(data_dir)?.unclaimed)
    }

    /// Take the remembered entry of `source` for this inode whose head
    /// `matches` (the same content), else any entry for the inode. Every
    /// other entry for the inode is dropped: it described content that is gone.
    pub fn claim(
        &mut self,
        source: &str,
        inode: Inode,
        matches: impl Fn(&Entry) -> bool,
    ) -> Option<Entry> {
        let mine = |e: &Entry| e.source == source && e.inode() == inode;
        let i = self
            .unclaimed
            .iter()
            .position(|e| mine(e) && matches(e))
            .or_else(|| self.unclaimed.iter().position(mine))?;
        let entry = self.unclaimed.swap_remove(i);
        self.unclaimed.retain(|e| !mine(e));
        Some(entry)
    }

    /// Take every remaining remembered entry of `source` (files that no glob
    /// matches any more, such as rotated files not yet fully delivered).
    pub fn claim_rest(&mut self, source: &str) -> Vec<Entry> {
        let (mine, rest) = self.unclaimed.drain(..).partition(|e| e.source == source);
        self.unclaimed = rest;
        self.dirty = true;
        mine
    }

    /// Start tracking a file being read under `id`.
    pub fn track(&mut self, id: FileId, entry: Entry) {
        self.live.insert(
            id,
            Live {
                entry,
                closed_at: None,
            },
        );
        self.dirty = true;
    }

    /// The file's head grew (it is identified by more bytes now).
    pub fn set_head(&mut self, id: FileId, head: Head) {
        if let Some(l) = self.live.get_mut(&id) {
            l.entry.head_len = head.len;
            l.entry.head_hash = head.hash;
            self.dirty = true;
        }
    }

    /// The file was renamed.
    pub fn set_path(&mut self, id: FileId, path: &Path) {
        if let Some(l) = self.live.get_mut(&id) {
            l.entry.path = path.to_path_buf();
            self.dirty = true;
        }
    }

    /// Every byte of `id` before `offset` is delivered to every sink.
    pub fn commit(&mut self, id: FileId, offset: u64) {
        let Some(l) = self.live.get_mut(&id) else {
            return; // retired (truncated) or closed and done: nothing to record
        };
        l.entry.offset = offset;
        if l.closed_at.is_some_and(|end| offset >= end) {
            self.live.remove(&id);
        }
        self.dirty = true;
    }

    /// The reader is done with `id`, whose content ends at `end`.
    pub fn close(&mut self, id: FileId, end: u64) {
        if let Some(l) = self.live.get_mut(&id) {
            if l.entry.offset >= end {
                self.live.remove(&id);
            } else {
                l.closed_at = Some(end);
            }
            self.dirty = true;
        }
    }

    /// Forget `id` (its content was truncated away); later commits for it are ignored.
    pub fn retire(&mut self, id: FileId) {
        self.live.remove(&id);
        self.dirty = true;
    }

    /// The committed offset of a live file.
    pub fn committed(&self, id: FileId) -> Option<u64> {
        self.live.get(&id).map(|l| l.entry.offset)
    }

    /// Every entry as it stands (files being read and files not claimed yet).
    pub fn entries(&self) -> Vec<Entry> {
        let mut files: Vec<Entry> = self.live.values().map(|l| l.entry.clone()).collect();
        files.extend(self.unclaimed.iter().cloned());
        files
    }

    /// The entries to write, if anything changed since the last call.
    pub fn take_changes(&mut self) -> Option<Vec<Entry>> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let mut files = self.entries();
        files.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
        Some(files)
    }

    /// Ask for the next [`Checkpoints::take_changes`] to return everything
    /// (a write failed).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Call `f` with the entries of every checkpoint written from now on,
    /// once they are durable (sinks forget what the checkpoint passed).
    pub fn on_written(&mut self, f: Written) {
        self.written = Some(f);
    }

    /// Where the store is written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64) -> Entry {
        Entry {
            source: "app".into(),
            path: format!("/logs/{ino}.log").into(),
            dev: 1,
            ino,
            head_len: 10,
            head_hash: 7,
            offset: 0,
        }
    }

    #[test]
    fn round_trips_and_claims_by_inode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Checkpoints::open(dir.path()).expect("empty store");
        let id = FileId::next();
        store.track(id, entry(5));
        store.commit(id, 42);
        let files = store.take_changes().expect("changed");
        write(store.path(), files).expect("written");
        assert!(store.take_changes().is_none());

        let mut again = Checkpoints::open(dir.path()).expect("reload");
        let any = |_: &Entry| true;
        assert!(again
            .claim("other", Inode { dev: 1, ino: 5 }, any)
            .is_none());
        let e = again
            .claim("app", Inode { dev: 1, ino: 5 }, any)
            .expect("claimed");
        assert_eq!(e.offset, 42);
        assert!(again.claim("app", Inode { dev: 1, ino: 5 }, any).is_none());
    }

    #[test]
    fn closed_files_are_dropped_once_delivered_and_retired_ones_ignore_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Checkpoints::open(dir.path()).expect("store");
        let (a, b) = (FileId::next(), FileId::next());
        store.track(a, entry(1));
        store.track(b, entry(2));
        store.close(a, 100);
        store.commit(a, 50);
        assert_eq!(store.committed(a), Some(50));
        store.commit(a, 100);
        assert_eq!(store.committed(a), None);
        store.retire(b);
        store.commit(b, 9);
        assert_eq!(store.committed(b), None);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        let e = Checkpoints::open(dir.path()).err().expect("corrupt");
        assert!(e.to_string().contains("move it away"), "{e}");
    }
}
