//! Turning lines into records.
//!
//! A [`FileParser`] belongs to one file: it frames each line (CRI, Docker
//! json-file, JSON, text), joins the pieces the runtime split (CRI `P`
//! lines, Docker's 16 KiB chunks), joins multi-line records such as stack
//! traces when the source asks for it ([`multiline`]) and parses each body
//! with the source's parser ([`rules`]: JSON, logfmt, LTSV, nginx, Apache,
//! a regex, or none). Nothing is dropped: a line that does not parse
//! becomes a record whose `message` is the raw text, flagged `parse_error`
//! with the reason.
//!
//! Records borrow from the line (or from the parser's join buffer), so the
//! JSON and text paths allocate nothing per line; the text parsers build
//! one `fields` JSON string per record.

mod access;
pub mod body;
pub mod fields;
mod format;
mod kv;
pub mod multiline;
mod rfc3339;
pub mod rules;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use body::{normalize_level, rfc3339_micros, Scalar};
use fields::Fields;
pub use format::Format;
use rules::{BodyRules, ParserKind, TimeKey};

/// Per-record quality flags, stored as the `flags` list column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// The line was longer than `max_line_bytes` and was cut.
    pub const TRUNCATED: Flags = Flags(1);
    /// The line was not valid UTF-8; invalid bytes became U+FFFD.
    pub const INVALID_UTF8: Flags = Flags(2);
    /// The line did not parse in the configured format.
    pub const PARSE_ERROR: Flags = Flags(4);
    /// A split record whose final piece never came (file ended or was truncated).
    pub const PARTIAL: Flags = Flags(8);
    /// An extra column's value, or the record's time under `time_key` /
    /// `time_format`, did not convert to its type (it stays in `fields`).
    pub const CONVERSION_ERROR: Flags = Flags(16);
    /// `[[redact]]` masked part of the record's text (or the Pod's labels).
    pub const REDACTED: Flags = Flags(32);

    const NAMES: [(Flags, &'static str); 6] = [
        (Flags::TRUNCATED, "truncated"),
        (Flags::INVALID_UTF8, "invalid_utf8"),
        (Flags::PARSE_ERROR, "parse_error"),
        (Flags::PARTIAL, "partial"),
        (Flags::CONVERSION_ERROR, "conversion_error"),
        (Flags::REDACTED, "redacted"),
    ];

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The names of the set flags.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// One log record, borrowing from the line it came from.
#[derive(Debug, Default)]
pub struct Record<'a> {
    /// The runtime's or the body's timestamp; `None` means "when observed".
    pub timestamp_us: Option<i64>,
    pub stream: Option<&'a str>,
    pub level: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
    /// The body's fields as a JSON object: the body itself when it is one,
    /// else what the source's parser found.
    pub fields: Option<Cow<'a, str>>,
    /// Byte offset of the record's first line in its file.
    pub offset: u64,
    pub flags: Flags,
    pub parse_error: Option<String>,
    /// Values for the configured extra columns (empty when none are configured).
    pub extras: Vec<Option<Scalar<'a>>>,
}

/// A record split over several lines, waiting for its last piece.
#[derive(Debug, Default)]
struct Pending {
    text: String,
    offset: u64,
    timestamp_us: Option<i64>,
    flags: Flags,
    active: bool,
}

/// Parses the lines of one file, in order.
pub struct FileParser {
    format: Format,
    rules: Arc<BodyRules>,
    max_record_bytes: usize,
    /// Split records per stream: stdout, stderr.
    pending: [Pending; 2],
    /// Per stream: a split record reached `max_record_bytes` and was emitted
    /// cut; its remaining pieces are skipped up to its final one.
    skipping: [bool; 2],
    /// Joins multi-line records (`[sources.x.multiline]`); `None`: off.
    multiline: Option<Box<multiline::Joiner>>,
}

const STREAMS: [&str; 2] = ["stdout", "stderr"];

impl FileParser {
    pub fn new(format: Format, rules: Arc<BodyRules>, max_record_bytes: usize) -> Self {
        Self {
            format,
            rules,
            max_record_bytes,
            pending: Default::default(),
            skipping: [false; 2],
            multiline: None,
        }
    }

    /// Join multi-line records (stack traces) by `rules`, compiled once per
    /// source.
    pub fn with_multiline(mut self, rules: Arc<multiline::Rules>) -> Self {
        let joiner = multiline::Joiner::new(rules, self.max_record_bytes);
        self.multiline = Some(Box::new(joiner));
        self
    }

    /// Offset of the earliest line held back in a split record or an open
    /// multiline record, if any: a checkpoint must not pass it.
    pub fn pending_offset(&self) -> Option<u64> {
        let split = self.pending.iter().filter(|p| p.active).map(|p| p.offset);
        let joined = self.multiline.as_ref().and_then(|j| j.offset());
        split.chain(joined).min()
    }

    /// When the earliest open multiline record is due ([`Self::expire`]).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.multiline.as_ref()?.next_deadline(self.splitting())
    }

    /// Emit the open multiline records that waited their `timeout` for a
    /// next line by `now`; whether any was. A stream whose split line is
    /// still being read keeps its record: that line may continue it.
    pub fn expire<F: FnMut(&Record)>(&mut self, now: Instant, emit: &mut F) -> bool {
        let Some(mut joiner) = self.multiline.take() else {
            return false;
        };
        let splitting = self.splitting();
        let any = joiner.expire(now, splitting, &mut |slot, c| {
            self.emit_chunk(slot, c, emit)
        });
        self.multiline = Some(joiner);
        any
    }

    /// At shutdown: emit the open multiline records, complete as they are
    /// (not `partial`). Split lines stay held (behind the checkpoint, read
    /// again on the next start), and so does the multiline record of their
    /// stream, which the rest of such a line may continue.
    pub fn flush_multiline<F: FnMut(&Record)>(&mut self, emit: &mut F) {
        let Some(mut joiner) = self.multiline.take() else {
            return;
        };
        let splitting = self.splitting();
        joiner.flush(splitting, &mut |slot, c| self.emit_chunk(slot, c, emit));
        self.multiline = Some(joiner);
    }

    /// Lines joined onto the record before them since the last call.
    pub fn take_joined_lines(&mut self) -> u64 {
        self.multiline.as_mut().map_or(0, |j| j.take_joined())
    }

    /// Per stream: whether a split line is being read.
    fn splitting(&self) -> [bool; 2] {
        [self.pending[0].active, self.pending[1].active]
    }

    /// Parse one line (without its `\n`) read at `offset`; `emit` is called
    /// with each record it completes (none for a `P` line, one otherwise).
    pub fn line<F: FnMut(&Record)>(
        &mut self,
        raw: &[u8],
        offset: u64,
        mut flags: Flags,
        emit: &mut F,
    ) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Validate first: the lossy decoder is several times slower on valid input.
        let text = match simdutf8::basic::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => {
                flags.insert(Flags::INVALID_UTF8);
                String::from_utf8_lossy(raw)
            }
        };
        let format = match self.format {
            Format::Auto => detect(&text),
            f => f,
        };
        match format {
            Format::Cri => self.cri(&text, offset, flags, emit),
            Format::Docker => self.docker(&text, offset, flags, emit),
            format => {
                let chunk = multiline::Chunk {
                    text: &text,
                    offset,
                    timestamp_us: None,
                    flags,
                    format,
                    stack: false,
                };
                self.complete(0, chunk, emit);
            }
        }
    }

    /// Emit every held-back split record, flagged `partial` (the file ended
    /// or was truncated before their final piece), and every open multiline
    /// record.
    pub fn flush<F: FnMut(&Record)>(&mut self, emit: &mut F) {
        for slot in 0..STREAMS.len() {
            if !self.pending[slot].active {
                continue;
            }
            let p = std::mem::take(&mut self.pending[slot]);
            let mut flags = p.flags;
            flags.insert(Flags::PARTIAL);
            self.framed(slot, &p.text, p.timestamp_us, p.offset, flags, emit);
        }
        self.flush_multiline(emit);
    }

    /// A complete body of stream `slot`: into the multiline joiner when the
    /// source has one, else a record now.
    fn complete<F: FnMut(&Record)>(&mut self, slot: usize, chunk: multiline::Chunk, emit: &mut F) {
        let Some(mut joiner) = self.multiline.take() else {
            return self.emit_chunk(slot, chunk, emit);
        };
        joiner.push(slot, chunk, Instant::now(), &mut |slot, c| {
            self.emit_chunk(slot, c, emit)
        });
        self.multiline = Some(joiner);
    }

    /// A complete CRI or Docker body (the runtime's split pieces joined).
    fn framed<F: FnMut(&Record)>(
        &mut self,
        slot: usize,
        body: &str,
        timestamp_us: Option<i64>,
        offset: u64,
        flags: Flags,
        emit: &mut F,
    ) {
        let chunk = multiline::Chunk {
            text: body,
            offset,
            timestamp_us,
            flags,
            format: Format::Cri,
            stack: false,
        };
        self.complete(slot, chunk, emit);
    }

    /// The record of a body on its own or of several joined: a JSON or text
    /// line as such, a CRI or Docker body of stream `slot` through
    /// [`Self::body`]. A joined stack trace whose body gave no level is an
    /// `error`.
    fn emit_chunk<F: FnMut(&Record)>(&self, slot: usize, c: multiline::Chunk, emit: &mut F) {
        let mut rec = match c.format {
            Format::Cri | Format::Docker => {
                let mut rec = Record {
                    timestamp_us: c.timestamp_us,
                    stream: Some(STREAMS[slot]),
                    offset: c.offset,
                    flags: c.flags,
                    ..Record::default()
                };
                self.body(c.text, &mut rec);
                rec
            }
            Format::Json | Format::Text | Format::Auto => {
                let mut rec = Record {
                    offset: c.offset,
                    flags: c.flags,
                    ..Record::default()
                };
                // `format = "json"`: the line is the body and must be an object.
                let parser = match (c.format, self.rules.parser) {
                    (Format::Json, ParserKind::Auto) => ParserKind::Json,
                    (_, parser) => parser,
                };
                self.body_as(parser, c.text, &mut rec);
                rec
            }
        };
        if c.stack && rec.level.is_none() {
            rec.level = Some(Cow::Borrowed("error"));
        }
        emit(&rec);
    }

    fn cri<F: FnMut(&Record)>(&mut self, text: &str, offset: u64, flags: Flags, emit: &mut F) {
        let Some((ts, stream, tag, body)) = split_cri(text) else {
            emit(&parse_failure(
                text,
                offset,
                flags,
                "not a CRI line: expected '<RFC 3339 time> <stdout|stderr> <P|F> <message>'",
            ));
            return;
        };
        let Some(ts_us) = rfc3339_micros(ts) else {
            emit(&parse_failure(
                text,
                offset,
                flags,
                "not a CRI line: the time is not RFC 3339",
            ));
            return;
        };
        let partial = tag.starts_with('P');
        self.piece(stream, body, partial, ts_us, offset, flags, emit);
    }

    fn docker<F: FnMut(&Record)>(&mut self, text: &str, offset: u64, flags: Flags, emit: &mut F) {
        #[derive(Deserialize)]
        struct Line<'a> {
            #[serde(borrow)]
            log: Cow<'a, str>,
            #[serde(borrow, default)]
            stream: Cow<'a, str>,
            #[serde(borrow, default)]
            time: Cow<'a, str>,
        }
        let line: Line = match serde_json::from_str(text) {
            Ok(l) => l,
            Err(e) => {
                emit(&parse_failure(
                    text,
                    offset,
                    flags,
                    &format!("not a Docker json-file line: {e}"),
                ));
                return;
            }
        };
        let ts_us = rfc3339_micros(&line.time).unwrap_or(i64::MIN);
        let (body, partial) = match line.log.strip_suffix('\n') {
            Some(b) => (b.strip_suffix('\r').unwrap_or(b), false),
            None => (line.log.as_ref(), true),
        };
        let stream = if line.stream == "stderr" {
            "stderr"
        } else {
            "stdout"
        };
        self.piece(stream, body, partial, ts_us, offset, flags, emit);
    }

    /// One piece of a possibly split record (CRI `P`/`F`, Docker chunks).
    #[allow(clippy::too_many_arguments)]
    fn piece<F: FnMut(&Record)>(
        &mut self,
        stream: &str,
        body: &str,
        partial: bool,
        ts_us: i64,
        offset: u64,
        flags: Flags,
        emit: &mut F,
    ) {
        let slot = usize::from(stream == "stderr");
        let ts = (ts_us != i64::MIN).then_some(ts_us);
        if self.skipping[slot] {
            self.skipping[slot] = partial;
            return;
        }
        if !partial && !self.pending[slot].active {
            return self.framed(slot, body, ts, offset, flags, emit);
        }
        let max = self.max_record_bytes;
        let p = &mut self.pending[slot];
        if !p.active {
            p.active = true;
            p.offset = offset;
            p.timestamp_us = ts;
            p.flags = flags;
            p.text.clear();
        } else {
            p.flags.insert(flags);
        }
        let room = max.saturating_sub(p.text.len());
        if body.len() > room {
            let mut cut = room;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            p.text.push_str(&body[..cut]);
            p.flags.insert(Flags::TRUNCATED);
        } else {
            p.text.push_str(body);
        }
        let full = p.flags.contains(Flags::TRUNCATED);
        if partial && !full {
            return;
        }
        // The record is complete, or as long as it may get: emit it now so a
        // runaway split record (a progress bar without newline) neither grows
        // without bound nor holds the checkpoint back.
        self.skipping[slot] = partial;
        let p = std::mem::take(&mut self.pending[slot]);
        self.framed(slot, &p.text, p.timestamp_us, p.offset, p.flags, emit);
        // Keep the join buffer's allocation for the next split record.
        let mut text = p.text;
        text.clear();
        self.pending[slot].text = text;
    }

    /// Fill message, level, fields and extras from a complete body.
    fn body<'a>(&self, body: &'a str, rec: &mut Record<'a>) {
        self.body_as(self.rules.parser, body, rec)
    }

    fn body_as<'a>(&self, parser: ParserKind, body: &'a str, rec: &mut Record<'a>) {
        let rules = &*self.rules;
        match parser {
            ParserKind::None => {
                rec.message = Some(Cow::Borrowed(body));
                return;
            }
            ParserKind::Auto if !body.trim_start().starts_with('{') => {
                text_body(body, rec);
                return;
            }
            ParserKind::Auto | ParserKind::Json => return self.json(body, rec),
            _ => {}
        }
        // Only the text parsers pay for a field list.
        let mut fields = Fields::new();
        let parsed = match parser {
            // Returned above.
            ParserKind::None | ParserKind::Auto | ParserKind::Json => return,
            ParserKind::Nginx | ParserKind::Apache => access::parse(body, &mut fields),
            ParserKind::Logfmt => kv::logfmt(body, &mut fields),
            ParserKind::Ltsv => kv::ltsv(body, &mut fields),
            ParserKind::Regex => regex_fields(rules, body, &mut fields),
        };
        match parsed {
            Ok(()) => fields.fill(body, rules, rec),
            Err(why) => {
                rec.message = Some(Cow::Borrowed(body));
                rec.flags.insert(Flags::PARSE_ERROR);
                rec.parse_error = Some(format!("not a {parser} line: {why}"));
            }
        }
    }

    fn json<'a>(&self, body: &'a str, rec: &mut Record<'a>) {
        if !body.trim_start().starts_with('{') {
            rec.message = Some(Cow::Borrowed(body));
            rec.flags.insert(Flags::PARSE_ERROR);
            rec.parse_error = Some("not a JSON object".into());
            return;
        }
        match body::parse(body, &self.rules, rec.timestamp_us.is_some()) {
            Ok(b) => {
                rec.message = Some(b.message.unwrap_or(Cow::Borrowed(body)));
                rec.level = b.level;
                rec.fields = Some(Cow::Borrowed(body));
                if let Some(t) = b.time_us {
                    if rec.timestamp_us.is_none() || matches!(self.rules.time_key, TimeKey::Key(_))
                    {
                        rec.timestamp_us = Some(t);
                    }
                }
                if b.time_invalid && self.rules.time_required() {
                    rec.flags.insert(Flags::CONVERSION_ERROR);
                }
                rec.extras = b.extras;
            }
            Err(e) => {
                rec.message = Some(Cow::Borrowed(body));
                rec.flags.insert(Flags::PARSE_ERROR);
                rec.parse_error = Some(format!("invalid JSON body: {e}"));
            }
        }
    }
}

/// `parser = "regex"`: the named groups that matched become fields.
fn regex_fields<'k, 'a: 'k>(
    rules: &'k BodyRules,
    body: &'a str,
    out: &mut Fields<'k, 'a>,
) -> Result<(), String> {
    let Some(regex) = &rules.regex else {
        return Err("no pattern".into());
    };
    let caps = regex.captures(body).ok_or("it does not match pattern")?;
    for (i, name) in regex.capture_names().enumerate() {
        if let (Some(name), Some(m)) = (name, caps.get(i)) {
            out.push_new(name, fields::Value::Str(Cow::Borrowed(m.as_str())));
        }
    }
    Ok(())
}

/// `<time> <stream> <tag> <body>`; the body may be empty.
fn split_cri(text: &str) -> Option<(&str, &str, &str, &str)> {
    // memchr: splitting on a `char` pattern went through the generic
    // searcher, 2 % of the end-to-end job.
    fn split_space(s: &str) -> Option<(&str, &str)> {
        let at = memchr::memchr(b' ', s.as_bytes())?;
        // A space is one byte: both sides are on char boundaries.
        Some((&s[..at], &s[at + 1..]))
    }
    let (ts, rest) = split_space(text)?;
    let (stream, rest) = split_space(rest)?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let (tag, body) = split_space(rest).unwrap_or((rest, ""));
    if !(tag.starts_with('P') || tag.starts_with('F')) {
        return None;
    }
    Some((ts, stream, tag, body))
}

fn parse_failure<'a>(text: &'a str, offset: u64, mut flags: Flags, why: &str) -> Record<'a> {
    flags.insert(Flags::PARSE_ERROR);
    Record {
        message: Some(Cow::Borrowed(text)),
        offset,
        flags,
        parse_error: Some(why.to_string()),
        ..Record::default()
    }
}

/// A text body: the body is the message; a leading RFC 3339 time (used
/// when the framing gave none) and a level word near the start are
/// recognised: any case right after the time (`2026-11-22T03:00:00Z warn
/// ...`), else an upper-case level name among the first four words
/// (`2026-12-02 13:55:36.123 ERROR [main] ...`, `[WARN]`, `ERROR:root:...`,
/// Ruby's `E, [...] ERROR -- : ...`).
fn text_body<'a>(body: &'a str, rec: &mut Record<'a>) {
    rec.message = Some(Cow::Borrowed(body));
    let mut words = body.split_ascii_whitespace().take(4);
    let Some(first) = words.next() else { return };
    let time = rfc3339_micros(first);
    if rec.timestamp_us.is_none() {
        rec.timestamp_us = time;
    }
    let after_time = time.is_some();
    for (i, word) in std::iter::once(first).chain(words).enumerate() {
        let word =
            word.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')' | '<' | '>' | ',' | ':'));
        let word = word.split(':').next().unwrap_or(word);
        let upper = word.len() > 2 && word.bytes().all(|b| b.is_ascii_uppercase());
        if (after_time && i == 1 && word.len() > 1) || upper {
            if let level @ Cow::Borrowed(_) = normalize_level(word) {
                rec.level = Some(level);
                return;
            }
        }
    }
}

/// Decide a line's format from its shape (for `format = "auto"`).
fn detect(text: &str) -> Format {
    if text.starts_with("{\"log\":") {
        Format::Docker
    } else if text.starts_with('{') {
        Format::Json
    } else if split_cri(text).is_some() {
        Format::Cri
    } else {
        Format::Text
    }
}

#[cfg(test)]
mod tests;
