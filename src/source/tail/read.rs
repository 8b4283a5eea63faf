//! Reading: blocks of a file split into lines, cut at `max_line_bytes`,
//! parsed and appended to the source's batch; multiline records emitted
//! when their `timeout` passes.

use super::*;

impl Tail {
    /// Read up to a few blocks of file `i`; whether anything was read.
    pub(super) fn read_turn(&mut self, i: usize) -> bool {
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
        let max_line = self.config.max_line_bytes as usize;
        // The buffer keeps its length between blocks: it is zeroed only
        // when it grows, and `end` marks what this block filled.
        let kept = t.leftover.len();
        if self.buf.len() < kept + READ_BYTES {
            self.buf.resize(kept + READ_BYTES, 0);
        }
        self.buf[..kept].copy_from_slice(&t.leftover);
        let n = t
            .file
            .read_at(&mut self.buf[kept..kept + READ_BYTES], t.read_pos)?;
        let end = kept + n;
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
        while let Some(nl) = memchr::memchr(b'\n', &self.buf[pos..end]) {
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
        self.cx
            .stats
            .multiline_joined
            .inc_by(t.parser.take_joined_lines());
        let rest = &self.buf[pos..end];
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
}

impl Tail {
    /// Emit the multiline records that waited their `timeout` for a next
    /// line, in files read to their end (a file with lines still to read
    /// may hold that next line).
    pub(super) fn expire_multiline(&mut self) {
        if self.multiline.is_none() {
            return;
        }
        let now = Instant::now();
        let observed = now_micros();
        for t in self.files.iter_mut().filter(|t| t.at_eof) {
            let (meta, builder, stats) = (&t.meta, &mut self.cx.builder, &self.cx.stats);
            let emitted = t.parser.expire(now, &mut |rec: &Record| {
                append(builder, meta, rec, observed, stats)
            });
            if emitted {
                self.cx.builder.progress(t.id, t.safe_offset());
            }
        }
        if self.cx.builder.is_full() {
            self.flush();
        }
    }

    /// When the earliest open multiline record of a file read to its end
    /// is due: the reader sleeps no longer.
    pub(super) fn multiline_deadline(&self) -> Option<Instant> {
        self.multiline.as_ref()?;
        self.files
            .iter()
            .filter(|t| t.at_eof)
            .filter_map(|t| t.parser.next_deadline())
            .min()
    }

    /// Stopping: emit the open multiline records (see
    /// `FileParser::flush_multiline`).
    pub(super) fn flush_multiline(&mut self) {
        if self.multiline.is_none() {
            return;
        }
        let observed = now_micros();
        for t in &mut self.files {
            let (meta, builder, stats) = (&t.meta, &mut self.cx.builder, &self.cx.stats);
            t.parser
                .flush_multiline(&mut |rec: &Record| append(builder, meta, rec, observed, stats));
        }
    }
}

/// Emit a file's last line (without newline) and its unfinished split records.
pub(super) fn finish_file(
    t: &mut Tailed,
    observed: i64,
    builder: &mut Builder,
    stats: &SourceStats,
) {
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
    stats.multiline_joined.inc_by(t.parser.take_joined_lines());
}

/// Cut a line to `max` bytes, flagging it.
fn cut(line: &[u8], max: usize) -> (&[u8], Flags) {
    if line.len() > max {
        (&line[..max], Flags::TRUNCATED)
    } else {
        (line, Flags::default())
    }
}

pub(super) fn emit_line(
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
