//! `[sources.<name>.multiline]`: joining the lines of one record — a stack
//! trace, or whatever a `start_pattern` delimits — into one.
//!
//! The rules apply to bodies: after CRI/Docker framing and after the
//! runtime's split lines are joined, per file and per stream (stdout and
//! stderr are joined separately). A [`Joiner`] (one per file, inside
//! [`super::FileParser`]) holds at most one open record per stream:
//!
//! - a body that continues it (see [`rules`]) is appended with `\n`;
//! - any other body emits it, then starts the next one, or — a blank line,
//!   or with the built-in rules a JSON object — is a record on its own;
//! - it is emitted after `timeout` without a continuation
//!   ([`Joiner::expire`]), when the file ends, is rotated or truncated, and
//!   at shutdown ([`Joiner::flush`]);
//! - at `max_lines` lines (or `max_record_bytes`) it is emitted flagged
//!   `truncated`, and the next continuation starts the next record in the
//!   same state: nothing is dropped.
//!
//! A joined record's offset and time are its first line's. With the
//! built-in rules, a record of more than one line is a stack trace: it
//! gets level `error` when its body gave none. Blank lines at a record's
//! end (Go and Python print them inside traces) are left out of its text.
//!
//! At-least-once: [`Joiner::offset`] is the first offset of the earliest
//! open record, and the file's checkpoint never passes it
//! ([`super::FileParser::pending_offset`]): after a crash the record is
//! read and joined again.
//!
//! Sources without this table pay nothing: the file parser holds an
//! `Option` that is `None`.

mod rules;

use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::de::IntoDeserializer;
use serde::{Deserialize, Deserializer};
use tidewater_sinks::config::{duration, positive_duration, Invalid};

use super::{Flags, Format};
use rules::{Builtin, LineRules, Mode};

/// `[sources.<name>.multiline]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Built-in stack-trace rules for these languages.
    #[serde(default, deserialize_with = "languages")]
    pub languages: Option<Vec<Language>>,
    /// Or: a line matching this (Rust regex) starts a record, every other
    /// line continues the open one.
    #[serde(default)]
    pub start_pattern: Option<String>,
    /// An open record is emitted after this long without a continuation.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// A record is emitted (flagged `truncated`) at this many lines; the
    /// next lines form the next record.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
}

/// A language whose stack traces the built-in rules join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Java,
    Python,
    Go,
    Ruby,
    Node,
}

/// `deserialize_with`: a list of [`Language`]s; an unknown one is named
/// with its key (a list written over several lines would otherwise be
/// quoted without it).
fn languages<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Language>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|name| {
            Language::deserialize(name.as_str().into_deserializer()).map_err(
                |e: serde::de::value::Error| {
                    serde::de::Error::custom(format!("multiline.languages: {e}"))
                },
            )
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_max_lines() -> usize {
    500
}

impl MultilineConfig {
    /// What serde cannot check; keys relative to the `multiline` table
    /// (the tail source prefixes `multiline.`).
    pub fn check(&self) -> Result<(), Invalid> {
        self.line_rules().map(|_| ())
    }

    /// Checked and compiled.
    fn line_rules(&self) -> Result<LineRules, Invalid> {
        if self.max_lines < 2 {
            return Err(Invalid::new(
                "max_lines",
                "expected at least 2 (a record of one line joins nothing)",
            ));
        }
        positive_duration(
            "timeout",
            self.timeout,
            "0s would emit every record before its next line could join it",
        )?;
        match (&self.languages, &self.start_pattern) {
            (Some(_), Some(_)) => Err(Invalid::new(
                "start_pattern",
                "cannot be used with languages: either the built-in stack-trace rules or your own start_pattern",
            )),
            (None, None) => Err(Invalid::new(
                "languages",
                "expected languages = [\"java\", \"python\", \"go\", \"ruby\", \"node\"] (or some of them) or a start_pattern",
            )),
            (Some(l), None) if l.is_empty() => Err(Invalid::new(
                "languages",
                "expected at least one of \"java\", \"python\", \"go\", \"ruby\", \"node\"",
            )),
            (Some(l), None) => Builtin::new(l)
                .map(|b| LineRules::Builtin(Box::new(b)))
                .map_err(|e| Invalid::new("languages", format!("built-in rules: {e}"))),
            (None, Some(p)) if p.is_empty() => Err(Invalid::new(
                "start_pattern",
                "an empty pattern matches every line: nothing would be joined",
            )),
            (None, Some(p)) => Regex::new(p).map(LineRules::Pattern).map_err(|e| {
                Invalid::new("start_pattern", format!("{p:?} is not a valid regex: {e}"))
            }),
        }
    }
}

/// A source's compiled multiline rules, shared by its files.
#[derive(Debug)]
pub struct Rules {
    lines: LineRules,
    timeout: Duration,
    max_lines: usize,
}

impl Rules {
    /// Compile a config's rules (the errors are [`MultilineConfig::check`]'s).
    pub fn new(config: &MultilineConfig) -> Result<Self, Invalid> {
        Ok(Self {
            lines: config.line_rules()?,
            timeout: config.timeout,
            max_lines: config.max_lines,
        })
    }
}

/// A complete body handed to the joiner, or a record it hands back (a body
/// on its own, or several joined).
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub text: &'a str,
    /// Of its first line.
    pub offset: u64,
    /// Of its first line (the runtime's time for CRI and Docker).
    pub timestamp_us: Option<i64>,
    pub flags: Flags,
    /// How the body is turned into a record (CRI and Docker: framed, with
    /// a stream; JSON and text lines: unframed).
    pub format: Format,
    /// A stack trace joined by the built-in rules (more than one line).
    pub stack: bool,
}

/// The record open on one stream.
#[derive(Debug, Default)]
struct Open {
    active: bool,
    text: String,
    offset: u64,
    timestamp_us: Option<i64>,
    flags: Flags,
    format: Format,
    lines: usize,
    mode: Mode,
    deadline: Option<Instant>,
}

impl Open {
    fn start(&mut self, line: &Chunk, mode: Mode) {
        self.active = true;
        self.text.clear();
        self.text.push_str(line.text);
        self.offset = line.offset;
        self.timestamp_us = line.timestamp_us;
        self.flags = line.flags;
        self.format = line.format;
        self.lines = 1;
        self.mode = mode;
    }

    /// The record as it stands (trailing blank lines left out).
    fn chunk(&self, builtin: bool) -> Chunk<'_> {
        Chunk {
            text: without_blank_tail(&self.text),
            offset: self.offset,
            timestamp_us: self.timestamp_us,
            flags: self.flags,
            format: self.format,
            stack: builtin && self.lines > 1,
        }
    }
}

/// `text` without the blank lines at its end.
fn without_blank_tail(text: &str) -> &str {
    let mut t = text;
    while let Some(nl) = t.rfind('\n') {
        if !t[nl + 1..].trim().is_empty() {
            break;
        }
        t = &t[..nl];
    }
    t
}

/// Joins the bodies of one file, per stream (slot 0: stdout, or the only
/// stream of JSON and text files; slot 1: stderr).
#[derive(Debug)]
pub struct Joiner {
    rules: Arc<Rules>,
    max_bytes: usize,
    open: [Open; 2],
    /// Lines appended to a record before them, since the last
    /// [`Joiner::take_joined`].
    joined: u64,
}

impl Joiner {
    /// `max_bytes` bounds a joined record's text like `max_lines` its lines.
    pub fn new(rules: Arc<Rules>, max_bytes: usize) -> Self {
        Self {
            rules,
            max_bytes,
            open: Default::default(),
            joined: 0,
        }
    }

    /// A complete body of stream `slot` arrived at `now`; `out` receives
    /// the records it completes, in order (the one it closes, then itself
    /// when it is a record on its own).
    pub fn push<F: FnMut(usize, Chunk<'_>)>(
        &mut self,
        slot: usize,
        line: Chunk<'_>,
        now: Instant,
        out: &mut F,
    ) {
        let rules = &*self.rules;
        let builtin = rules.lines.is_builtin();
        let open = &mut self.open[slot];
        if open.active {
            if let Some(mode) = rules.lines.continues(open.mode, line.text) {
                let full = open.lines >= rules.max_lines
                    || open.text.len() + 1 + line.text.len() > self.max_bytes;
                if full {
                    // Cut here; the rest forms the next record, in the same state.
                    open.flags.insert(Flags::TRUNCATED);
                    out(slot, open.chunk(builtin));
                    open.start(&line, mode);
                } else {
                    open.text.push('\n');
                    open.text.push_str(line.text);
                    open.lines += 1;
                    open.flags.insert(line.flags);
                    open.mode = mode;
                    self.joined += 1;
                }
                open.deadline = Some(now + rules.timeout);
                if mode == Mode::Done {
                    out(slot, open.chunk(builtin));
                    open.active = false;
                }
                return;
            }
            out(slot, open.chunk(builtin));
            open.active = false;
        }
        match rules.lines.starts(line.text) {
            Some(mode) => {
                open.start(&line, mode);
                open.deadline = Some(now + rules.timeout);
            }
            None => out(slot, line),
        }
    }

    /// Emit the open records whose `timeout` has passed at `now`, except on
    /// the streams in `held` (a split line is still being read there);
    /// whether any was.
    pub fn expire<F: FnMut(usize, Chunk<'_>)>(
        &mut self,
        now: Instant,
        held: [bool; 2],
        out: &mut F,
    ) -> bool {
        let builtin = self.rules.lines.is_builtin();
        let mut any = false;
        for (slot, open) in self.open.iter_mut().enumerate() {
            if open.active && !held[slot] && open.deadline.is_some_and(|d| d <= now) {
                out(slot, open.chunk(builtin));
                open.active = false;
                any = true;
            }
        }
        any
    }

    /// When the earliest open record not `held` expires.
    pub fn next_deadline(&self, held: [bool; 2]) -> Option<Instant> {
        self.open
            .iter()
            .enumerate()
            .filter(|(slot, o)| o.active && !held[*slot])
            .filter_map(|(_, o)| o.deadline)
            .min()
    }

    /// Emit the open records, except on the streams in `held`.
    pub fn flush<F: FnMut(usize, Chunk<'_>)>(&mut self, held: [bool; 2], out: &mut F) {
        let builtin = self.rules.lines.is_builtin();
        for (slot, open) in self.open.iter_mut().enumerate() {
            if open.active && !held[slot] {
                out(slot, open.chunk(builtin));
                open.active = false;
            }
        }
    }

    /// The first offset of the earliest open record.
    pub fn offset(&self) -> Option<u64> {
        self.open
            .iter()
            .filter(|o| o.active)
            .map(|o| o.offset)
            .min()
    }

    /// Lines joined onto a record before them since the last call.
    pub fn take_joined(&mut self) -> u64 {
        std::mem::take(&mut self.joined)
    }
}

#[cfg(test)]
mod tests;
