//! Rotation: files renamed away, deleted or truncated while open, the
//! rotated files a restart resumes, and the `max_rotated_files` bound.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::*;

/// A file found by the globs but not opened yet (see `max_rotated_files`).
pub(super) struct Waiting {
    pub(super) path: PathBuf,
    pub(super) real_path: PathBuf,
    pub(super) inode: Inode,
}

impl Tail {
    /// Reopen files remembered by the checkpoint that no glob matches any more
    /// (rotated away before they were fully delivered).
    pub(super) fn resume_rotated(&mut self) {
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

    /// Rotated files open now (read to their end or not).
    fn rotated_open(&self) -> usize {
        self.files
            .iter()
            .filter(|t| t.rotated || t.superseded)
            .count()
    }

    /// Keep at most `max_rotated_files` rotated files open (`extra` more
    /// are about to be), closing those read to their end (the idlest first)
    /// before their `rotate_wait`. `false`: the rest still have data to
    /// read, so a new file must wait.
    pub(super) fn room_for_rotated(&mut self, extra: usize) -> bool {
        while self.rotated_open() + extra > self.config.max_rotated_files {
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
            // Its end was seen at the last turn: read what came since.
            while self.read_turn(i) && !self.closed {}
            tracing::info!(path = %self.files[i].path.display(), max_rotated_files = self.config.max_rotated_files, "closing a rotated file before rotate_wait: too many rotated files open");
            self.cx.stats.rotated_closed_early.inc();
            self.close(i);
        }
        true
    }

    /// Remember a new file that cannot be opened yet.
    pub(super) fn wait(&mut self, path: &Path, inode: Inode) {
        if self.waiting.iter().any(|w| w.inode == inode) {
            return;
        }
        tracing::warn!(path = %path.display(), max_rotated_files = self.config.max_rotated_files, "too many rotated files still being read: this file waits (the logs on disk are the buffer)");
        self.waiting.push(Waiting {
            path: path.to_path_buf(),
            // Where a rename is looked for (the target of a symlink such as
            // /var/log/containers/x.log).
            real_path: fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            inode,
        });
        self.cx.stats.waiting_files.set(self.waiting.len() as i64);
    }

    /// Open waiting files that were rotated away meanwhile (the glob scan
    /// opens those still under their name), oldest first, as room allows;
    /// count those that are gone.
    pub(super) fn resume_waiting(&mut self) {
        let mut i = 0;
        while i < self.waiting.len() {
            let w = &self.waiting[i];
            let at_path = fs::metadata(&w.path).is_ok_and(|md| Inode::of(&md) == w.inode);
            if at_path {
                i += 1;
                continue;
            }
            let found = find_renamed(&w.real_path, w.inode).and_then(|p| {
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
            if !self.room_for_rotated(1) {
                break;
            }
            let w = self.waiting.remove(i);
            tracing::info!(path = %path.display(), "reading a file that waited, rotated meanwhile");
            self.open(&path, file, w.inode, 0, true);
        }
        self.cx.stats.waiting_files.set(self.waiting.len() as i64);
    }

    /// Look at files that are at their end: truncated, renamed, deleted, done?
    pub(super) fn check_files(&mut self) {
        let rotate_wait = self.config.rotate_wait;
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
}

/// Look in the file's directory for the name it was renamed to.
pub(super) fn find_renamed(old: &Path, inode: Inode) -> Option<PathBuf> {
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
