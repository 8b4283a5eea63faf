//! The exactly-once write-ahead ledger: which rows each append to a
//! committed stream carried, written and synced *before* the append is sent.
//!
//! After a crash, a stream's row count (FinalizeWriteStream) says which of
//! its appends landed (they land whole, in order), and the ledger says which
//! rows those were, by origin (file, offset, content hash). Those rows are
//! skipped when they are read again; every other row is appended anew.
//!
//! On disk: `<dir>/<seq>.seg` segment files, each a sequence of records
//! `len: u32 | payload | xxh3(payload): u64` (little-endian). A new segment
//! is started on open and when the current one exceeds
//! [`SEGMENT_BYTES`]; a record that does not check out ends its segment (a
//! torn write at a crash: its append was never sent). Segments are deleted
//! oldest first, once the checkpoint has passed every row they name
//! ([`Ledger::prune`]), so the ledger holds about what is in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xxhash_rust::xxh3::xxh3_64;

use crate::{CommittedFile, RowOrigin};

/// A segment is closed after this many bytes.
pub(super) const SEGMENT_BYTES: u64 = 8 << 20;

/// One entry of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Record {
    /// An append about to be sent: `origins.len()` rows at `offset`.
    Append {
        stream: String,
        offset: i64,
        origins: Vec<RowOrigin>,
    },
    /// The stream is finalized with `rows` rows: none will be added.
    Finalized { stream: String, rows: i64 },
}

/// The write-ahead ledger of one sink. Appends are serialised and synced.
pub(super) struct Ledger {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    current: File,
    current_bytes: u64,
    /// Oldest first; the last one is being written.
    segments: VecDeque<Segment>,
    /// Files gone from the checkpoint: read to their end and deleted, their
    /// rows are never read again (see [`Gone`]).
    gone: Gone,
    /// The last write failed: the next one starts a new segment, so that no
    /// record is ever written behind a torn one.
    broken: bool,
}

/// Which files have left the checkpoint for good. A file the checkpoint
/// held and no longer holds is gone; so is one it has not held for
/// [`GONE_AFTER`] writes in a row (a file named by an earlier run's ledger
/// that was deleted while tidewater was stopped: a file that is still
/// there is back in the checkpoint within the first writes after a start).
#[derive(Default)]
pub(super) struct Gone {
    seen: HashSet<u64>,
    absent: HashMap<u64, u32>,
}

/// Checkpoint writes a file named by the ledger may be missing from before
/// it counts as gone.
pub(super) const GONE_AFTER: u32 = 30;

impl Gone {
    /// A checkpoint holding `committed` was written; `named` are the files
    /// the caller still keeps something for.
    pub(super) fn update<'a>(
        &mut self,
        committed: &HashMap<u64, u64>,
        named: impl Iterator<Item = &'a u64>,
    ) {
        self.seen.extend(committed.keys());
        let mut absent = HashMap::new();
        for file in named {
            if !committed.contains_key(file) {
                let n = self.absent.get(file).copied().unwrap_or(0);
                absent.insert(*file, n + 1);
            }
        }
        self.absent = absent;
    }

    pub(super) fn contains(&self, file: &u64) -> bool {
        self.seen.contains(file) || self.absent.get(file).is_some_and(|n| *n >= GONE_AFTER)
    }
}

/// The committed offset of each file in `files`; a file two sources read
/// counts with the lower one.
pub(super) fn committed_offsets(files: &[CommittedFile]) -> HashMap<u64, u64> {
    let mut committed: HashMap<u64, u64> = HashMap::new();
    for f in files {
        let offset = committed.entry(f.file).or_insert(f.offset);
        *offset = (*offset).min(f.offset);
    }
    committed
}

struct Segment {
    seq: u64,
    /// File → the largest row offset the segment names in it.
    files: HashMap<u64, u64>,
}

impl Ledger {
    /// Open the ledger in `dir` (created if missing): the records of earlier
    /// runs, oldest first, and a new segment for this run.
    pub(super) fn open(dir: &Path) -> io::Result<(Self, Vec<Record>)> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u64> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut records = Vec::new();
        let mut segments = VecDeque::new();
        for &seq in &seqs {
            let mut segment = Segment {
                seq,
                files: HashMap::new(),
            };
            for record in read_segment(&segment_path(dir, seq))? {
                segment.note(&record);
                records.push(record);
            }
            segments.push_back(segment);
        }
        let next = seqs.last().map_or(0, |s| s + 1);
        let current = create_segment(dir, next)?;
        segments.push_back(Segment {
            seq: next,
            files: HashMap::new(),
        });
        let ledger = Self {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                current,
                current_bytes: 0,
                segments,
                gone: Gone::default(),
                broken: false,
            }),
        };
        Ok((ledger, records))
    }

    /// Write `record` and sync it: when this returns `Ok`, a crash cannot
    /// lose it.
    pub(super) fn append(&self, record: &Record) -> io::Result<()> {
        let payload = encode(record);
        let mut framed = Vec::with_capacity(payload.len() + 12);
        framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        framed.extend_from_slice(&payload);
        framed.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        let mut inner = lock(&self.inner);
        if inner.current_bytes >= SEGMENT_BYTES || inner.broken {
            let seq = inner.segments.back().map_or(0, |s| s.seq + 1);
            inner.current = create_segment(&self.dir, seq)?;
            inner.current_bytes = 0;
            inner.broken = false;
            inner.segments.push_back(Segment {
                seq,
                files: HashMap::new(),
            });
        }
        let written = inner
            .current
            .write_all(&framed)
            .and_then(|()| inner.current.sync_data());
        if let Err(e) = written {
            inner.broken = true;
            return Err(e);
        }
        inner.current_bytes += framed.len() as u64;
        if let Some(segment) = inner.segments.back_mut() {
            segment.note(record);
        }
        Ok(())
    }

    /// The checkpoint now holds `files`: delete the oldest segments whose
    /// rows it has passed (never the one being written). Returns how many
    /// were deleted.
    pub(super) fn prune(&self, files: &[CommittedFile]) -> io::Result<usize> {
        let committed = committed_offsets(files);
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let named: HashSet<u64> = inner
            .segments
            .iter()
            .flat_map(|s| s.files.keys().copied())
            .collect();
        inner.gone.update(&committed, named.iter());
        let mut deleted = 0;
        while inner.segments.len() > 1 {
            let Some(oldest) = inner.segments.front() else {
                break;
            };
            let passed = oldest
                .files
                .iter()
                .all(|(file, max)| match committed.get(file) {
                    Some(offset) => offset > max,
                    None => inner.gone.contains(file),
                });
            if !passed {
                break;
            }
            let seq = oldest.seq;
            match fs::remove_file(segment_path(&self.dir, seq)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            inner.segments.pop_front();
            deleted += 1;
        }
        Ok(deleted)
    }
}

impl Segment {
    fn note(&mut self, record: &Record) {
        if let Record::Append { origins, .. } = record {
            for o in origins {
                let max = self.files.entry(o.file).or_insert(o.offset);
                *max = (*max).max(o.offset);
            }
        }
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

fn create_segment(dir: &Path, seq: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, seq))?;
    // The new name must survive a crash too.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn read_segment(path: &Path) -> io::Result<Vec<Record>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(frame) = rest.get(4..4 + len + 8) else {
            break;
        };
        let (payload, sum) = frame.split_at(len);
        if xxh3_64(payload).to_le_bytes() != sum {
            break;
        }
        match decode(payload) {
            Some(record) => records.push(record),
            None => break,
        }
        rest = &rest[4 + len + 8..];
    }
    Ok(records)
}

const APPEND: u8 = 1;
const FINALIZED: u8 = 2;

fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    let put_name = |out: &mut Vec<u8>, name: &str| {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    };
    match record {
        Record::Append {
            stream,
            offset,
            origins,
        } => {
            out.reserve(17 + stream.len() + origins.len() * 24);
            out.push(APPEND);
            put_name(&mut out, stream);
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&(origins.len() as u32).to_le_bytes());
            for o in origins {
                out.extend_from_slice(&o.file.to_le_bytes());
                out.extend_from_slice(&o.offset.to_le_bytes());
                out.extend_from_slice(&o.content.to_le_bytes());
            }
        }
        Record::Finalized { stream, rows } => {
            out.push(FINALIZED);
            put_name(&mut out, stream);
            out.extend_from_slice(&rows.to_le_bytes());
        }
    }
    out
}

/// Reads a payload [`encode`] wrote; `None` for anything else.
fn decode(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let kind = r.take(1)?[0];
    let name_len = r.u32()? as usize;
    let stream = String::from_utf8(r.take(name_len)?.to_vec()).ok()?;
    let record = match kind {
        APPEND => {
            let offset = r.u64()? as i64;
            let count = r.u32()? as usize;
            let mut origins = Vec::with_capacity(count.min(r.0.len() / 24));
            for _ in 0..count {
                origins.push(RowOrigin {
                    file: r.u64()?,
                    offset: r.u64()?,
                    content: r.u64()?,
                });
            }
            Record::Append {
                stream,
                offset,
                origins,
            }
        }
        FINALIZED => Record::Finalized {
            stream,
            rows: r.u64()? as i64,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(file: u64, offset: u64) -> RowOrigin {
        RowOrigin {
            file,
            offset,
            content: offset ^ 0xabcd,
        }
    }

    fn append(stream: &str, offset: i64, rows: &[(u64, u64)]) -> Record {
        Record::Append {
            stream: stream.into(),
            offset,
            origins: rows.iter().map(|&(f, o)| origin(f, o)).collect(),
        }
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_ends_them() {
        let dir = tempfile::tempdir().unwrap();
        let written = [
            append("s1", 0, &[(1, 0), (1, 10)]),
            append("s1", 2, &[(1, 20)]),
            Record::Finalized {
                stream: "s1".into(),
                rows: 3,
            },
        ];
        {
            let (ledger, old) = Ledger::open(dir.path()).unwrap();
            assert!(old.is_empty());
            for r in &written {
                ledger.append(r).unwrap();
            }
        }
        // A crash in the middle of a write leaves a partial frame behind.
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, APPEND, 3]).unwrap();
        let (_ledger, read) = Ledger::open(dir.path()).unwrap();
        assert_eq!(read, written);
        // A second open starts a third segment and reads the same records.
        drop(_ledger);
        let (_, again) = Ledger::open(dir.path()).unwrap();
        assert_eq!(again, written);
    }

    #[test]
    fn segments_go_once_the_checkpoint_passed_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (ledger, _) = Ledger::open(dir.path()).unwrap();
            ledger
                .append(&append("s1", 0, &[(1, 0), (2, 100)]))
                .unwrap();
        }
        let (ledger, old) = Ledger::open(dir.path()).unwrap();
        assert_eq!(old.len(), 1);
        let segments = || fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(segments(), 2);
        let at = |file, offset| CommittedFile { file, offset };
        // A file missing from a checkpoint that never held it may still
        // be read from its start: kept, for GONE_AFTER writes.
        for _ in 1..GONE_AFTER {
            assert_eq!(ledger.prune(&[at(1, 50)]).unwrap(), 0);
        }
        // File 2's row at 100 is not committed yet (its offset is at it).
        assert_eq!(ledger.prune(&[at(1, 50), at(2, 100)]).unwrap(), 0);
        assert_eq!(ledger.prune(&[at(1, 50), at(2, 101)]).unwrap(), 1);
        assert_eq!(segments(), 1);
        // The segment being written is never deleted.
        ledger.append(&append("s2", 0, &[(1, 60)])).unwrap();
        assert_eq!(ledger.prune(&[at(1, 1000)]).unwrap(), 0);
        assert_eq!(segments(), 1);
    }

    #[test]
    fn a_file_deleted_while_stopped_no_longer_holds_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (ledger, _) = Ledger::open(dir.path()).unwrap();
            ledger.append(&append("s1", 0, &[(7, 0)])).unwrap();
        }
        let (ledger, _) = Ledger::open(dir.path()).unwrap();
        for _ in 1..GONE_AFTER {
            assert_eq!(ledger.prune(&[]).unwrap(), 0);
        }
        assert_eq!(ledger.prune(&[]).unwrap(), 1);
    }

    #[test]
    fn a_failed_write_is_never_followed_in_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = Ledger::open(dir.path()).unwrap();
        ledger.append(&append("s1", 0, &[(1, 0)])).unwrap();
        lock(&ledger.inner).broken = true;
        ledger.append(&append("s1", 1, &[(1, 10)])).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        drop(ledger);
        let (_, read) = Ledger::open(dir.path()).unwrap();
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn a_file_gone_from_the_checkpoint_no_longer_holds_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (ledger, _) = Ledger::open(dir.path()).unwrap();
            ledger.append(&append("s1", 0, &[(7, 0)])).unwrap();
        }
        let (ledger, _) = Ledger::open(dir.path()).unwrap();
        let at = |file, offset| CommittedFile { file, offset };
        assert_eq!(ledger.prune(&[at(7, 0)]).unwrap(), 0);
        // Read to its end and deleted: retired from the checkpoint.
        assert_eq!(ledger.prune(&[]).unwrap(), 1);
    }
}
