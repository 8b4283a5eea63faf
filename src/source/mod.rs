//! Sources: where lines come from.
//!
//! Today one kind, [`tail`]: files matched by globs, followed across
//! rotation, truncation and restarts.

pub mod fingerprint;
pub mod tail;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::parse::k8s::K8sMeta;

/// One reading of one file inside this process: a file that is truncated
/// and read again from the start gets a new id, so acknowledgements of the
/// old content can never move the new content's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u64);

impl FileId {
    /// A new id, never used before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        FileId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What every record of a file shares.
#[derive(Debug, Clone)]
pub struct FileMeta {
    /// The source's name in the configuration.
    pub source: String,
    /// The path the file was opened by.
    pub path: String,
    pub k8s: K8sMeta,
    /// Stable hash of the file's identity (device, inode), for batch ids.
    pub fingerprint: u64,
    /// Hash of device and inode alone: the same for the file's whole life.
    pub inode_key: u64,
}
