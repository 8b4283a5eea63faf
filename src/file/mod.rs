//! What identifies a log file and what all of its records share.
//!
//! A leaf: it depends on nothing else in the crate, so the stages that pass
//! files around — [`crate::source`] (which opens them), [`crate::batch`]
//! (which labels rows with them) and [`crate::checkpoint`] /
//! [`crate::ack`] (which remember how far they are delivered) — can all use
//! these types without depending on each other.
//!
//! Guarantees: a [`FileId`] is never reused inside a process; an [`Inode`]
//! with a matching [`Head`] is the same content across renames and
//! restarts.

pub mod fingerprint;
pub mod k8s;

use std::sync::atomic::{AtomicU64, Ordering};

pub use fingerprint::{Head, Inode, HEAD_BYTES};
pub use k8s::K8sMeta;

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
