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
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use super::{spawn_reader, Reader, SourceContext, SourceError};
use crate::batch::Builder;
use crate::checkpoint::Entry;
use crate::file::{FileId, FileMeta, Head, Inode, K8sMeta, HEAD_BYTES};
use crate::lock;
use crate::parse::rules::BodyRules;
use crate::parse::{multiline, FileParser, Flags, Record};
use crate::stats::SourceStats;
use crate::tasks::Critical;
use notify::{RecursiveMode, Watcher};

pub mod config;
mod read;
mod rotation;

pub use config::{ReadFrom, TailConfig};

use read::finish_file;
use rotation::Waiting;

const READ_BYTES: usize = 256 * 1024;
/// Blocks read from one file before moving to the next (fairness).
const BLOCKS_PER_TURN: usize = 4;
/// How long an idle reader sleeps when no inotify event wakes it.
const IDLE_POLL: Duration = Duration::from_millis(250);

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
    cx: SourceContext,
    config: TailConfig,
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
    /// How bodies are parsed, compiled once for every file.
    rules: Arc<BodyRules>,
    /// `[sources.x.multiline]`, compiled once for every file.
    multiline: Option<Arc<multiline::Rules>>,
}

/// Why a tail source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("source {0}: the pipeline stopped accepting batches")]
    PipelineClosed(String),
}

/// Start a tail source on its own thread.
pub fn spawn(config: &TailConfig, cx: SourceContext, critical: &Critical) -> io::Result<Reader> {
    let name = cx.name.clone();
    let rules = BodyRules::new(&config.body_keys(), Arc::clone(&cx.extra_keys)).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            e.under(&format!("sources.{name}")).to_string(),
        )
    })?;
    // Checked with the config: this compiles what passed the checks.
    let multiline = match &config.multiline {
        Some(m) => Some(multiline::Rules::new(m).map_err(|e| {
            let e = e.under(&format!("sources.{name}.multiline"));
            io::Error::new(io::ErrorKind::InvalidInput, e)
        })?),
        None => None,
    };
    let mut tail = Tail::new(config.clone(), cx, Arc::new(rules));
    tail.multiline = multiline.map(Arc::new);
    spawn_reader(&name, format!("tail-{name}"), critical, move || {
        tail.run().map_err(SourceError::from)
    })
}

impl Tail {
    pub fn new(config: TailConfig, cx: SourceContext, rules: Arc<BodyRules>) -> Self {
        let absolute = |g: &String| -> String {
            if Path::new(g).is_absolute() {
                g.clone()
            } else {
                cx.base_dir.join(g).to_string_lossy().into_owned()
            }
        };
        let include: Vec<String> = config.include.iter().map(absolute).collect();
        let exclude = config
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
            rules,
            multiline: None,
            cx,
            config,
        }
    }

    /// Read until shutdown (or, with `once`, until every file is read).
    pub fn run(mut self) -> Result<(), TailError> {
        self.discover(true);
        self.resume_rotated();
        let mut last_scan = Instant::now();
        let mut last_check = Instant::now();
        while !self.closed {
            if self.cx.shutdown.is_cancelled() {
                break;
            }
            let mut read_any = false;
            for i in 0..self.files.len() {
                read_any |= self.read_turn(i);
                if self.closed {
                    break;
                }
            }
            self.expire_multiline();
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
                if let Some(d) = self.multiline_deadline() {
                    wait = wait.min(d.saturating_duration_since(Instant::now()));
                }
                let woken = self.wake.recv_timeout(wait).is_ok();
                if woken || last_scan.elapsed() >= self.config.glob_interval {
                    self.discover(false);
                    last_scan = Instant::now();
                }
            } else if last_scan.elapsed() >= self.config.glob_interval {
                self.discover(false);
                last_scan = Instant::now();
            }
        }
        // Stop: hand over what is built. Split records and unfinished lines
        // stay behind the checkpoint and are read again on the next start;
        // open multiline records are complete as they are and emitted.
        self.flush_multiline();
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
                t.superseded = false;
                t.path = path.to_path_buf();
                lock(&self.cx.checkpoints).set_path(t.id, path);
            }
            return;
        }
        // A new file where another one was: that one is rotated away.
        for t in self.files.iter_mut().filter(|t| t.path == path) {
            t.superseded = true;
        }
        if !self.room_for_rotated(0) {
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
            None if startup && self.config.read_from == ReadFrom::End => size,
            None => 0,
        };
        self.open(path, file, inode, start, false);
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
        let mut parser = FileParser::new(
            self.config.format,
            Arc::clone(&self.rules),
            self.config.max_line_bytes as usize,
        );
        if let Some(rules) = &self.multiline {
            parser = parser.with_multiline(Arc::clone(rules));
        }
        self.files.push(Tailed {
            id,
            inode,
            path: path.to_path_buf(),
            real_path: resolved.unwrap_or_else(|| path.to_path_buf()),
            file,
            meta,
            parser,
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

    fn unreadable(&mut self, path: &Path, why: &str) {
        if self.warned.insert(path.to_path_buf()) {
            self.cx.stats.unreadable_files.inc();
            tracing::warn!(path = %path.display(), error = why, "cannot read a matched file; it is skipped until it becomes readable");
        }
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
        let (dropped, redacted) = (batch.dropped, batch.redacted);
        if self.cx.batches.blocking_send(batch).is_err() {
            self.closed = true;
            return;
        }
        // Counted once handed on: a batch given up here is read again.
        self.cx.stats.dropped.inc_by(dropped);
        self.cx.stats.redacted.inc_by(redacted);
    }
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
