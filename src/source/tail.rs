//! Following files matched by globs.
//!
//! One thread per tail source reads its files round-robin in 256 KiB blocks,
//! splits lines, parses them and appends records to the source's batch
//! builder. A full or old batch is handed to the pipeline through a bounded
//! channel: when the sinks are slow the send blocks and reading stops, so the
//! log files on disk are the buffer (design rule 4).
//!
//! Discovery is a glob scan every `glob_interval`, woken sooner by inotify
//! events on the directories the globs name. Files are identified by device +
//! inode (following symlinks, as in `/var/log/containers`), so:
//! - rename + create: the renamed file is read to its end and closed after
//!   `rotate_wait` without growth, and the new file is read from its start;
//! - copytruncate: a file shorter than the read position is read again from 0;
//! - a file deleted while open is read to its end, then closed;
//! - after a restart, reading resumes at the committed offset, also for a
//!   rotated file that no glob matches any more.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::batch::{Batch, Builder};
use crate::checkpoint::{Checkpoints, Entry};
use crate::config::{ReadFrom, TailConfig};
use crate::lock;
use crate::memory::MemoryBudget;
use crate::parse::k8s::K8sMeta;
use crate::parse::{FileParser, Flags, Record};
use crate::source::fingerprint::{Head, Inode, HEAD_BYTES};
use crate::source::{FileId, FileMeta};
use crate::stats::SourceStats;

const READ_BYTES: usize = 256 * 1024;
/// Blocks read from one file before moving to the next (fairness).
const BLOCKS_PER_TURN: usize = 4;
/// How long an idle reader sleeps when no inotify event wakes it.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Everything a tail source needs from the pipeline.
pub struct TailContext {
    pub name: String,
    pub config: TailConfig,
    pub base_dir: PathBuf,
    pub extra_keys: Arc<[String]>,
    pub builder: Builder,
    pub batches: mpsc::Sender<Batch>,
    pub checkpoints: Arc<Mutex<Checkpoints>>,
    pub stats: Arc<SourceStats>,
    /// Batches in flight wait for room here.
    pub memory: Arc<MemoryBudget>,
    pub shutdown: Arc<AtomicBool>,
    /// Read every file to its end once, then stop.
    pub once: bool,
}

/// A file found by the globs but not opened yet (see `max_rotated_files`).
struct Waiting {
    path: PathBuf,
    inode: Inode,
}

/// One open file.
struct Tailed {
    id: FileId,
    inode: Inode,
    /// Where the file is now (it changes when the file is renamed).
    path: PathBuf,
    /// The path with symlinks resolved: where a rotated file is looked for.
    real_path: PathBuf,
    file: File,
    meta: FileMeta,
    parser: FileParser,
    /// Next byte to read.
    read_pos: u64,
    /// End of the last complete line handed to the parser.
    consumed: u64,
    /// The start of a line being skipped past its `max_line_bytes`.
    discard_from: Option<u64>,
    /// Bytes after the last newline, waiting for the rest of their line.
    leftover: Vec<u8>,
    head: Head,
    /// How often the file was truncated while open.
    truncations: u64,
    /// The path no longer leads to this file (renamed away or deleted).
    rotated: bool,
    /// Another file appeared at the path (seen before `rotated` is, which
    /// is only checked at the end of the file).
    superseded: bool,
    last_growth: Instant,
    at_eof: bool,
}

impl Tailed {
    /// The offset a checkpoint may reach: nothing held back lies before it.
    fn safe_offset(&self) -> u64 {
        let mut safe = self.consumed;
        if let Some(p) = self.parser.pending_offset() {
            safe = safe.min(p);
        }
        if let Some(d) = self.discard_from {
            safe = safe.min(d);
        }
        safe
    }
}

/// The reading loop of one tail source.
pub struct Tail {
    cx: TailContext,
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    files: Vec<Tailed>,
    buf: Vec<u8>,
    warned: HashSet<PathBuf>,
    /// New files not opened yet: `max_rotated_files` rotated files are open.
    waiting: Vec<Waiting>,
    env_meta: K8sMeta,
    wake: std_mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
    /// The pipeline stopped taking batches.
    closed: bool,
}

/// Why a tail source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("source {0}: the pipeline stopped accepting batches")]
    PipelineClosed(String),
}

impl Tail {
    pub fn new(cx: TailContext) -> Self {
        let absolute = |g: &String| -> String {
            if Path::new(g).is_absolute() {
                g.clone()
            } else {
                cx.base_dir.join(g).to_string_lossy().into_owned()
            }
        };
        let include: Vec<String> = cx.config.include.iter().map(absolute).collect();
        let exclude = cx
            .config
            .exclude
            .iter()
            .map(absolute)
            .filter_map(|g| glob::Pattern::new(&g).ok())
            .collect();
        let (wake_tx, wake) = std_mpsc::sync_channel(1);
        let watcher = if cx.once {
            None
        } else {
            watch_dirs(&include, wake_tx)
        };
        Self {
            include,
            exclude,
            files: Vec::new(),
            buf: Vec::with_capacity(READ_BYTES),
            warned: HashSet::new(),
            waiting: Vec::new(),
            env_meta: K8sMeta::from_env(),
            wake,
            _watcher: watcher,
            closed: false,
            cx,
        }
    }

    /// Read until shutdown (or, with `once`, until every file is read).
    pub fn run(mut self) -> Result<(), TailError> {
        self.discover(true);
        self.resume_rotated();
        let mut last_scan = Instant::now();
        let mut last_check = Instant::now();
        while !self.closed {
            if self.cx.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let mut read_any = false;
            for i in 0..self.files.len() {
                read_any |= self.read_turn(i);
                if self.closed {
                    break;
                }
            }
            if self
                .cx
                .builder
                .deadline()
                .is_some_and(|d| d <= Instant::now())
            {
                self.flush();
            }
            if self.cx.once {
                if !read_any {
                    self.finish_all();
                    break;
                }
                continue;
            }
            // Files at their end are checked for rotation and truncation when
            // idle, and at least every IDLE_POLL when other files keep the
            // reader busy.
            if !read_any || last_check.elapsed() >= IDLE_POLL {
                self.check_files();
                last_check = Instant::now();
            }
            if !read_any {
                let mut wait = IDLE_POLL;
                if let Some(d) = self.cx.builder.deadline() {
                    wait = wait.min(d.saturating_duration_since(Instant::now()));
                }
                let woken = self.wake.recv_timeout(wait).is_ok();
                if woken || last_scan.elapsed() >= self.cx.config.glob_interval {
                    self.discover(false);
                    last_scan = Instant::now();
                }
            } else if last_scan.elapsed() >= self.cx.config.glob_interval {
                self.discover(false);
                last_scan = Instant::now();
            }
        }
        // Stop: hand over what is built. Split records and unfinished lines
        // stay behind the checkpoint and are read again on the next start.
        for t in &self.files {
            self.cx.builder.progress(t.id, t.safe_offset());
        }
        self.flush();
        if self.closed {
            return Err(TailError::PipelineClosed(self.cx.name.clone()));
        }
        Ok(())
    }

    /// Find files matching the globs that are not open yet.
    fn discover(&mut self, startup: bool) {
        self.resume_waiting();
        let mut seen = HashSet::new();
        // Unreadable paths still matched: a warning is remembered only for
        // those, so the set stays as small as the globs' matches.
        let mut matched = HashSet::new();
        for pattern in self.include.clone() {
            let paths = match glob::glob(&pattern) {
                Ok(p) => p,
                Err(_) => continue, // validated with the config
            };
            for entry in paths {
                let path = match entry {
                    Ok(p) => p,
                    Err(e) => {
                        let p = e.path().to_path_buf();
                        self.unreadable(&p, &e.to_string());
                        matched.insert(p);
                        continue;
                    }
                };

                if self.exclude.iter().any(|x| x.matches_path(&path)) {
                    continue;
                }
                self.consider(&path, startup, &mut seen);
                if self.warned.contains(&path) {
                    matched.insert(path);
                }
            }
        }
        self.warned.retain(|p| matched.contains(p));
    }

    fn consider(&mut self, path: &Path, startup: bool, seen: &mut HashSet<Inode>) {
        let md = match fs::metadata(path) {
            Ok(md) => md,
            Err(e) => return self.unreadable(path, &e.to_string()),
        };
        if !md.is_file() {
            return self.unreadable(path, "not a regular file");
        }
        let inode = Inode::of(&md);
        if !seen.insert(inode) {
            return; // the same file through another matching path (a symlink)
        }
        if let Some(t) = self.files.iter_mut().find(|t| t.inode == inode) {
            if t.rotated || t.path != path {
                // Renamed to a name the globs still match: it is still live.
                t.rotated = false;
                t.path = path.to_path_buf();
                lock(&self.cx.checkpoints).set_path(t.id, path);
            }
            return;
        }
        // A new file where another one was: that one is rotated away.
        for t in self.files.iter_mut().filter(|t| t.path == path) {
            t.superseded = true;
        }
        if !self.room_for_rotated() {
            return self.wait(path, inode);
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.unreadable(path, &e.to_string()),
        };
        self.warned.remove(path);
        self.waiting.retain(|w| w.inode != inode);
        let size = md.len();
        let same_content = |e: &Entry| e.head().matches(&file).unwrap_or(false);
        let remembered = lock(&self.cx.checkpoints).claim(&self.cx.name, inode, same_content);
        let start = match remembered {
            Some(e) if e.offset <= size && same_content(&e) => e.offset,
            Some(_) => {
                tracing::info!(path = %path.display(), "file changed since the checkpoint (new file with a reused inode, or truncated): reading from the start");
                0
            }
            None if startup && self.cx.config.read_from == ReadFrom::End => size,
            None => 0,
        };
        self.open(path, file, inode, start, false);
    }

    /// Reopen files remembered by the checkpoint that no glob matches any more
    /// (rotated away before they were fully delivered).
    fn resume_rotated(&mut self) {
        let rest = lock(&self.cx.checkpoints).claim_rest(&self.cx.name);
        for e in rest {
            if self.files.iter().any(|t| t.inode == e.inode()) {
                continue; // already open under a matching name
            }
            // The file may have been renamed after the checkpoint was written.
            let found = [Some(e.path.clone()), find_renamed(&e.path, e.inode())]
                .into_iter()
                .flatten()
                .find_map(|p| {
                    let file = File::open(&p).ok()?;
                    let md = file.metadata().ok()?;
                    let same =
                        Inode::of(&md) == e.inode() && e.head().matches(&file).unwrap_or(false);
                    same.then_some((p, file, md.len()))
                });
            match found {
                Some((path, file, size)) if size > e.offset => {
                    tracing::info!(path = %path.display(), offset = e.offset, "resuming a rotated file from the checkpoint");
                    self.open(&path, file, e.inode(), e.offset, true);
                }
                Some(_) => {} // fully delivered
                None => tracing::warn!(
                    path = %e.path.display(),
                    offset = e.offset,
                    "a file remembered by the checkpoint is gone; whatever it held past the offset was not delivered"
                ),
            }
        }
    }

    fn open(&mut self, path: &Path, file: File, inode: Inode, start: u64, rotated: bool) {
        let resolved = fs::canonicalize(path).ok();
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let head = Head::read(&file, size).ok().flatten().unwrap_or_default();
        let meta = FileMeta {
            source: self.cx.name.clone(),
            path: path.to_string_lossy().into_owned(),
            k8s: K8sMeta::for_file(path, resolved.as_deref(), &self.env_meta),
            fingerprint: inode.fingerprint(head, 0),
            inode_key: inode.key(),
        };
        let id = FileId::next();
        lock(&self.cx.checkpoints).track(
            id,
            Entry {
                source: self.cx.name.clone(),
                path: path.to_path_buf(),
                dev: inode.dev,
                ino: inode.ino,
                head_len: head.len,
                head_hash: head.hash,
                offset: start,
            },
        );
        self.cx.stats.files.inc();
        self.cx.stats.bytes_total.fetch_add(
            size.saturating_sub(start),
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::debug!(path = %path.display(), offset = start, "following file");
        self.cx.stats.open_files.inc();
        self.files.push(Tailed {
            id,
            inode,
            path: path.to_path_buf(),
            real_path: resolved.unwrap_or_else(|| path.to_path_buf()),
            file,
            meta,
            parser: FileParser::new(
                self.cx.config.format,
                Arc::clone(&self.cx.extra_keys),
                self.cx.config.max_line_bytes as usize,
            ),
            read_pos: start,
            consumed: start,
            discard_from: None,
            leftover: Vec::new(),
            head,
            truncations: 0,
            rotated,
            superseded: false,
            last_growth: Instant::now(),
            at_eof: false,
        });
    }

    /// Rotated files open now (read to their end or not).
    fn rotated_open(&self) -> usize {
        self.files
            .iter()
            .filter(|t| t.rotated || t.superseded)
            .count()
    }

    /// Keep at most `max_rotated_files` rotated files open, closing those
    /// read to their end (the idlest first) before their `rotate_wait`.
    /// `false`: the rest still have data to read, so a new file must wait.
    fn room_for_rotated(&mut self) -> bool {
        while self.rotated_open() > self.cx.config.max_rotated_files {
            let idlest = self
                .files
                .iter()
                .enumerate()
                .filter(|(_, t)| (t.rotated || t.superseded) && t.at_eof)
                .min_by_key(|(_, t)| t.last_growth)
                .map(|(i, _)| i);
            let Some(i) = idlest else {
                return false;
            };
            tracing::info!(path = %self.files[i].path.display(), max_rotated_files = self.cx.config.max_rotated_files, "closing a rotated file before rotate_wait: too many rotated files open");
            self.cx.stats.rotated_closed_early.inc();
            self.close(i);
        }
        true
    }

    /// Remember a new file that cannot be opened yet.
    fn wait(&mut self, path: &Path, inode: Inode) {
        if self.waiting.iter().any(|w| w.inode == inode) {
            return;
        }
        tracing::warn!(path = %path.display(), max_rotated_files = self.cx.config.max_rotated_files, "too many rotated files still being read: this file waits (the logs on disk are the buffer)");
        self.waiting.push(Waiting {
            path: path.to_path_buf(),
            inode,
        });
        self.cx.stats.waiting_files.set(self.waiting.len() as i64);
    }

    /// Open waiting files that were rotated away meanwhile (the glob scan
    /// opens those still under their name), oldest first, as room allows;
    /// count those that are gone.
    fn resume_waiting(&mut self) {
        let mut i = 0;
        while i < self.waiting.len() {
            let w = &self.waiting[i];
            let at_path = fs::metadata(&w.path).is_ok_and(|md| Inode::of(&md) == w.inode);
            if at_path {
                i += 1;
                continue;
            }
            let found = find_renamed(&w.path, w.inode).and_then(|p| {
                let file = File::open(&p).ok()?;
                let md = file.metadata().ok()?;
                (Inode::of(&md) == w.inode).then_some((p, file))
            });
            let Some((path, file)) = found else {
                let w = self.waiting.remove(i);
                self.cx.stats.files_lost.inc();
                tracing::error!(path = %w.path.display(), "a file waiting to be read was rotated away and is gone: its lines were not delivered (raise max_rotated_files)");
                continue;
            };
            if !self.room_for_rotated() {
                break;
            }
            let w = self.waiting.remove(i);
            tracing::info!(path = %path.display(), "reading a file that waited, rotated meanwhile");
            self.open(&path, file, w.inode, 0, true);
        }
        self.cx.stats.waiting_files.set(self.waiting.len() as i64);
    }

    fn unreadable(&mut self, path: &Path, why: &str) {
        if self.warned.insert(path.to_path_buf()) {
            self.cx.stats.unreadable_files.inc();
            tracing::warn!(path = %path.display(), error = why, "cannot read a matched file; it is skipped until it becomes readable");
        }
    }

    /// Read up to a few blocks of file `i`; whether anything was read.
    fn read_turn(&mut self, i: usize) -> bool {
        let mut any = false;
        for _ in 0..BLOCKS_PER_TURN {
            match self.read_block(i) {
                Ok(0) => {
                    self.files[i].at_eof = true;
                    break;
                }
                Ok(_) => any = true,
                Err(e) => {
                    let path = self.files[i].path.clone();
                    tracing::warn!(path = %path.display(), error = %e, "read failed; will retry");
                    break;
                }
            }
            if self.closed {
                break;
            }
        }
        any
    }

    /// Read one block of file `i` and parse its complete lines.
    fn read_block(&mut self, i: usize) -> io::Result<usize> {
        let t = &mut self.files[i];
        let max_line = self.cx.config.max_line_bytes as usize;
        self.buf.clear();
        self.buf.extend_from_slice(&t.leftover);
        let kept = t.leftover.len();
        self.buf.resize(kept + READ_BYTES, 0);
        let n = t.file.read_at(&mut self.buf[kept..], t.read_pos)?;
        self.buf.truncate(kept + n);
        if n == 0 {
            return Ok(0);
        }
        t.leftover.clear();
        let base = t.read_pos - kept as u64;
        t.read_pos += n as u64;
        t.at_eof = false;
        t.last_growth = Instant::now();
        self.cx.stats.bytes.inc_by(n as u64);
        if t.head.len < HEAD_BYTES && t.read_pos > t.head.len {
            if let Ok(Some(head)) = Head::read(&t.file, t.read_pos) {
                t.head = head;
                t.meta.fingerprint = t.inode.fingerprint(head, t.truncations);
                lock(&self.cx.checkpoints).set_head(t.id, head);
            }
        }

        let observed = now_micros();
        let mut pos = 0;
        let mut lines = 0u64;
        while let Some(nl) = memchr::memchr(b'\n', &self.buf[pos..]) {
            let line_start = base + pos as u64;
            let line = &self.buf[pos..pos + nl];
            pos += nl + 1;
            lines += 1;
            let t = &mut self.files[i];
            if t.discard_from.take().is_some() {
                // The rest of an over-long line, already emitted truncated.
                t.consumed = base + pos as u64;
                continue;
            }
            let (line, flags) = cut(line, max_line);
            emit_line(
                t,
                line,
                line_start,
                flags,
                observed,
                &mut self.cx.builder,
                &self.cx.stats,
            );
            t.consumed = base + pos as u64;
            if self.cx.builder.is_full() {
                let progress = t.safe_offset();
                let id = t.id;
                self.cx.builder.progress(id, progress);
                self.flush();
                if self.closed {
                    break;
                }
            }
        }
        self.cx.stats.lines.inc_by(lines);
        let t = &mut self.files[i];
        let rest = &self.buf[pos..];
        if t.discard_from.is_some() {
            // Still inside an over-long line: its bytes are skipped.
        } else if rest.len() > max_line {
            // Longer than allowed and not finished: emit it cut now and skip
            // the rest up to its newline (where the line is counted).
            let line_start = base + pos as u64;
            let (line, flags) = cut(rest, max_line);
            emit_line(
                t,
                line,
                line_start,
                flags,
                observed,
                &mut self.cx.builder,
                &self.cx.stats,
            );
            t.discard_from = Some(line_start);
        } else {
            t.leftover.extend_from_slice(rest);
        }
        let progress = t.safe_offset();
        self.cx.builder.progress(t.id, progress);
        Ok(n)
    }

    /// Look at files that are at their end: truncated, renamed, deleted, done?
    fn check_files(&mut self) {
        let rotate_wait = self.cx.config.rotate_wait;
        let mut i = 0;
        while i < self.files.len() {
            if !self.files[i].at_eof {
                i += 1;
                continue;
            }
            let t = &mut self.files[i];
            let Ok(md) = t.file.metadata() else {
                i += 1;
                continue;
            };
            // Shorter than what was read, or different first bytes: the file
            // was truncated in place (and maybe already written again).
            if md.len() < t.read_pos || (t.head.len > 0 && !t.head.matches(&t.file).unwrap_or(true))
            {
                self.truncated(i);
                i += 1;
                continue;
            }
            if !t.rotated {
                let moved = match fs::metadata(&t.path) {
                    Ok(now) => Inode::of(&now) != t.inode,
                    Err(_) => true,
                };
                if moved || md.nlink() == 0 {
                    t.rotated = true;
                    if let Some(new_path) = find_renamed(&t.real_path, t.inode) {
                        tracing::info!(from = %t.path.display(), to = %new_path.display(), "file rotated; reading it to its end");
                        t.path = new_path.clone();
                        t.real_path = new_path;
                        lock(&self.cx.checkpoints).set_path(t.id, &t.path);
                    } else {
                        tracing::info!(path = %t.path.display(), "file deleted or moved away; reading it to its end");
                    }
                }
            }
            if self.files[i].rotated && self.files[i].last_growth.elapsed() >= rotate_wait {
                self.close(i);
                continue;
            }
            i += 1;
        }
    }

    /// The file is shorter than what was read: it was truncated in place
    /// (copytruncate). Read it again from the start, under a new id.
    fn truncated(&mut self, i: usize) {
        let observed = now_micros();
        let t = &mut self.files[i];
        tracing::info!(path = %t.path.display(), was = t.read_pos, "file truncated; reading it again from the start");
        finish_file(t, observed, &mut self.cx.builder, &self.cx.stats);
        // Acknowledgements of the old content no longer matter: its id is retired.
        let old = t.id;
        let new = FileId::next();
        t.id = new;
        t.read_pos = 0;
        t.consumed = 0;
        t.discard_from = None;
        t.leftover.clear();
        t.head = Head::default();
        t.truncations += 1;
        t.meta.fingerprint = t.inode.fingerprint(t.head, t.truncations);
        let mut store = lock(&self.cx.checkpoints);
        store.retire(old);
        store.track(
            new,
            Entry {
                source: self.cx.name.clone(),
                path: t.path.clone(),
                dev: t.inode.dev,
                ino: t.inode.ino,
                head_len: 0,
                head_hash: 0,
                offset: 0,
            },
        );
    }

    /// Close a rotated file that is read to its end.
    fn close(&mut self, i: usize) {
        let mut t = self.files.swap_remove(i);
        self.cx.stats.open_files.dec();
        finish_file(&mut t, now_micros(), &mut self.cx.builder, &self.cx.stats);
        let end = t.safe_offset();
        self.cx.builder.progress(t.id, end);
        lock(&self.cx.checkpoints).close(t.id, end);
        tracing::debug!(path = %t.path.display(), "closed rotated file");
    }

    /// `--once`: everything is read; emit unfinished last lines and split records.
    fn finish_all(&mut self) {
        let observed = now_micros();
        for t in &mut self.files {
            finish_file(t, observed, &mut self.cx.builder, &self.cx.stats);
            self.cx.builder.progress(t.id, t.safe_offset());
        }
        self.flush();
    }

    /// Hand the open batch to the pipeline (blocks while the pipeline is full).
    fn flush(&mut self) {
        let Some(mut batch) = self.cx.builder.finish() else {
            return;
        };
        // Waits while the batches in flight fill the budget (sinks behind).
        let bytes = batch.records.get_array_memory_size();
        match self.cx.memory.reserve_blocking(bytes, &self.cx.shutdown) {
            Some(reservation) => batch.memory = Some(reservation),
            None => {
                // Stopping with the sinks behind: this batch is read again
                // on the next start (nothing of it was acknowledged).
                self.closed = true;
                return;
            }
        }
        if self.cx.batches.blocking_send(batch).is_err() {
            self.closed = true;
        }
    }
}

/// Emit a file's last line (without newline) and its unfinished split records.
fn finish_file(t: &mut Tailed, observed: i64, builder: &mut Builder, stats: &SourceStats) {
    match t.discard_from.take() {
        // An over-long last line, already emitted cut.
        Some(_) => {
            stats.lines.inc();
        }
        None if !t.leftover.is_empty() => {
            let line = std::mem::take(&mut t.leftover);
            let start = t.read_pos - line.len() as u64;
            stats.lines.inc();
            emit_line(t, &line, start, Flags::default(), observed, builder, stats);
        }
        None => {}
    }
    t.leftover.clear();
    t.consumed = t.read_pos;
    let meta = &t.meta;
    t.parser
        .flush(&mut |rec: &Record| append(builder, meta, rec, observed, stats));
}

/// Cut a line to `max` bytes, flagging it.
fn cut(line: &[u8], max: usize) -> (&[u8], Flags) {
    if line.len() > max {
        (&line[..max], Flags::TRUNCATED)
    } else {
        (line, Flags::default())
    }
}

fn emit_line(
    t: &mut Tailed,
    line: &[u8],
    offset: u64,
    flags: Flags,
    observed: i64,
    builder: &mut Builder,
    stats: &SourceStats,
) {
    let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
    builder.note_input(line.len() + 1);
    if trimmed.is_empty() {
        stats.empty_lines.inc();
        return;
    }
    let meta = &t.meta;
    t.parser.line(line, offset, flags, &mut |rec: &Record| {
        append(builder, meta, rec, observed, stats)
    });
}

fn append(
    builder: &mut Builder,
    meta: &FileMeta,
    rec: &Record,
    observed: i64,
    stats: &SourceStats,
) {
    if rec.flags.contains(Flags::PARSE_ERROR) {
        stats.parse_errors.inc();
    }
    if rec.flags.contains(Flags::INVALID_UTF8) {
        stats.invalid_utf8.inc();
    }
    if rec.flags.contains(Flags::TRUNCATED) {
        stats.truncated.inc();
    }
    stats.records.inc();
    builder.append(meta, rec, observed);
}

/// Look in the file's directory for the name it was renamed to.
fn find_renamed(old: &Path, inode: Inode) -> Option<PathBuf> {
    let dir = old.parent()?;
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            fs::symlink_metadata(p)
                .map(|m| m.dev() == inode.dev && m.ino() == inode.ino)
                .unwrap_or(false)
        })
}

/// Watch the directories the globs start in; any event wakes the reader.
fn watch_dirs(
    include: &[String],
    wake: std_mpsc::SyncSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(move |_event| {
        let _ = wake.try_send(());
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "inotify unavailable; discovering files by polling");
            return None;
        }
    };
    for pattern in include {
        let (dir, recursive) = glob_root(pattern);
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(e) = watcher.watch(&dir, mode) {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
        }
    }
    Some(watcher)
}

/// The directory a glob starts in, and whether it descends further.
fn glob_root(pattern: &str) -> (PathBuf, bool) {
    let mut root = PathBuf::new();
    let mut components = Path::new(pattern).components().peekable();
    while let Some(c) = components.next() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            let deeper = components.peek().is_some() || s.contains("**");
            return (root, deeper);
        }
        if components.peek().is_none() {
            break; // the last component is a file name
        }
        root.push(c);
    }
    (root, false)
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_roots() {
        assert_eq!(
            glob_root("/var/log/containers/*.log"),
            (PathBuf::from("/var/log/containers"), false)
        );
        assert_eq!(
            glob_root("/var/log/pods/*/*/*.log"),
            (PathBuf::from("/var/log/pods"), true)
        );
        assert_eq!(glob_root("/logs/**/*.log"), (PathBuf::from("/logs"), true));
        assert_eq!(glob_root("/logs/app.log"), (PathBuf::from("/logs"), false));
    }
}
