//! File identity: device + inode, confirmed by a hash of the first bytes.
//!
//! Device and inode follow a file through renames; the hash of its head tells
//! a new file that reuses a freed inode from the file the checkpoint
//! remembers. The head grows with the file up to [`HEAD_BYTES`], so a file
//! first seen nearly empty is still told apart once it has content.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use xxhash_rust::xxh3::xxh3_64;

/// How many leading bytes identify a file's content.
pub const HEAD_BYTES: u64 = 1024;

/// Device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inode {
    pub dev: u64,
    pub ino: u64,
}

impl Inode {
    pub fn of(md: &Metadata) -> Self {
        Self {
            dev: md.dev(),
            ino: md.ino(),
        }
    }

    /// A hash of device and inode only: stable while the file exists, across
    /// renames, growth and restarts (row origins, BigQuery's insertIds).
    pub fn key(self) -> u64 {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.dev.to_le_bytes());
        bytes[8..].copy_from_slice(&self.ino.to_le_bytes());
        xxh3_64(&bytes)
    }

    /// A 64-bit fingerprint of this content of the file, used in batch ids
    /// (and so in object keys): device, inode, the head of the content, and
    /// how many times the file was truncated in this process. Content that
    /// replaced earlier content at the same offsets gets other keys, so it
    /// never overwrites what the earlier content delivered.
    pub fn fingerprint(self, head: Head, truncations: u64) -> u64 {
        let mut bytes = [0u8; 40];
        bytes[..8].copy_from_slice(&self.dev.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.ino.to_le_bytes());
        bytes[16..24].copy_from_slice(&head.len.to_le_bytes());
        bytes[24..32].copy_from_slice(&head.hash.to_le_bytes());
        bytes[32..].copy_from_slice(&truncations.to_le_bytes());
        xxh3_64(&bytes)
    }
}

/// The length and hash of a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    pub len: u64,
    pub hash: u64,
}

impl Head {
    /// Hash the first `min(len, HEAD_BYTES)` bytes of `file`. Returns `None`
    /// when the file is now shorter than that (it was truncated or replaced).
    pub fn read(file: &File, len: u64) -> io::Result<Option<Head>> {
        let len = len.min(HEAD_BYTES);
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], filled as u64)? {
                0 => return Ok(None),
                n => filled += n,
            }
        }
        Ok(Some(Head {
            len,
            hash: xxh3_64(&buf),
        }))
    }

    /// Whether `file` still starts with the bytes this head was taken from.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        Ok(Head::read(file, self.len)? == Some(*self))
    }
}
