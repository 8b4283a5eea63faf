//! `[sources.<name>]` with `type = "tail"`: the settings of a tail source
//! and their checks.
//!
//! Guarantees: a `TailConfig` that passed [`TailConfig::check`] can be run —
//! at least one valid include glob, lines of at least 64 bytes, and timers
//! that tick (more than 0s, at most a year). Errors name the key relative to
//! the source's table (`"include"`); the registry ([`crate::config`])
//! prefixes `sources.<name>`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tidewater_sinks::config::{duration, positive_duration, size, Invalid};

use crate::parse::multiline::MultilineConfig;
use crate::parse::rules::{BodyKeys, BodyRules, ParserKind};
use crate::parse::Format;

/// `type = "tail"`: follow files matching globs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub format: Format,
    /// How each body is parsed: auto (JSON objects, else text), json,
    /// logfmt, ltsv, nginx, apache, regex (with `pattern`) or none.
    #[serde(default)]
    pub parser: ParserKind,
    /// `parser = "regex"`: a Rust regex whose named groups become fields.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The field holding the record's time; `"none"`: the runtime's time.
    #[serde(default)]
    pub time_key: Option<String>,
    /// chrono strftime format of that time (RFC 3339 is always accepted).
    #[serde(default)]
    pub time_format: Option<String>,
    /// The field holding the level (default: level, severity, lvl, loglevel).
    #[serde(default)]
    pub level_key: Option<String>,
    /// The field holding the message (default: message, msg).
    #[serde(default)]
    pub message_key: Option<String>,
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are cut to this length and flagged `truncated`.
    #[serde(default = "default_max_line_bytes", deserialize_with = "size")]
    pub max_line_bytes: u64,
    /// How often the globs are re-evaluated (inotify wakes it sooner).
    #[serde(default = "default_glob_interval", deserialize_with = "duration")]
    pub glob_interval: Duration,
    /// How long a rotated or deleted file is kept open after its last growth.
    #[serde(default = "default_rotate_wait", deserialize_with = "duration")]
    pub rotate_wait: Duration,
    /// Rotated (renamed away or deleted) files kept open at most; past it a
    /// rotated file read to its end is closed before `rotate_wait`, and a
    /// new file waits until one is (the log files stay the buffer).
    #[serde(default = "default_max_rotated_files")]
    pub max_rotated_files: usize,
    /// `[sources.<name>.multiline]`: join stack traces (or the lines a
    /// `start_pattern` delimits) into one record.
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
}

/// Where reading starts in a file seen for the first time at start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

fn default_max_line_bytes() -> u64 {
    1 << 20
}
fn default_glob_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_max_rotated_files() -> usize {
    32
}

impl TailConfig {
    /// What serde cannot check; keys relative to the source's table.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.include.is_empty() {
            return Err(Invalid::new("include", "expected at least one glob"));
        }
        for (key, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for g in globs {
                if g.is_empty() {
                    return Err(Invalid::new(key, "an empty glob matches nothing"));
                }
                if let Err(e) = glob::Pattern::new(g) {
                    return Err(Invalid::new(key, format!("{g:?} is not a valid glob: {e}")));
                }
            }
        }
        BodyRules::new(&self.body_keys(), Vec::new().into())?;
        if self.max_line_bytes < 64 {
            return Err(Invalid::new("max_line_bytes", "expected at least 64 bytes"));
        }
        positive_duration(
            "glob_interval",
            self.glob_interval,
            "0s would re-scan the globs without pause",
        )?;
        positive_duration(
            "rotate_wait",
            self.rotate_wait,
            "0s would close a rotated file the moment it is read to its end, while the writer may still be adding its last lines",
        )?;
        if self.max_rotated_files == 0 {
            return Err(Invalid::new(
                "max_rotated_files",
                "expected at least 1 (a rotated file must be kept open to be read to its end)",
            ));
        }
        if let Some(m) = &self.multiline {
            m.check().map_err(|e| e.under("multiline"))?;
        }
        Ok(())
    }

    /// The body-parsing keys, for [`BodyRules::new`].
    pub fn body_keys(&self) -> BodyKeys<'_> {
        BodyKeys {
            parser: self.parser,
            pattern: self.pattern.as_deref(),
            time_key: self.time_key.as_deref(),
            time_format: self.time_format.as_deref(),
            level_key: self.level_key.as_deref(),
            message_key: self.message_key.as_deref(),
        }
    }

    /// What is valid but probably not meant: include globs that match no
    /// file yet (relative ones resolved against `base_dir`, as `run` does).
    pub fn warnings(&self, base_dir: &Path) -> Vec<Invalid> {
        let mut out = Vec::new();
        for pattern in &self.include {
            let full = base_dir.join(pattern);
            let matched = glob::glob(&full.to_string_lossy())
                .map(|paths| paths.flatten().next().is_some())
                .unwrap_or(false);
            if !matched {
                out.push(Invalid::new(
                    "include",
                    format!(
                        "{pattern:?} matches no file yet (files that appear later are picked up)"
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(toml: &str) -> TailConfig {
        toml::from_str(toml).expect("a tail table")
    }

    #[test]
    fn errors_name_the_key_relative_to_the_source() {
        assert_eq!(tail("include = [\"logs/*.log\"]").check(), Ok(()));
        let e = tail("include = []").check().expect_err("no glob");
        assert_eq!(e.key, "include");
        let e = tail("include = [\"a\"]\nexclude = [\"[\"]")
            .check()
            .expect_err("bad glob");
        assert_eq!(e.key, "exclude");
        let e = tail("include = [\"a\"]\nmax_line_bytes = 10")
            .check()
            .expect_err("short lines");
        assert_eq!(
            e.under("sources.app").to_string(),
            "sources.app.max_line_bytes: expected at least 64 bytes"
        );
        let e = tail("include = [\"a\"]\nparser = \"regex\"\npattern = \"(\"")
            .check()
            .expect_err("bad regex");
        assert_eq!(e.key, "pattern");
        let e = toml::from_str::<TailConfig>("include = [\"a\"]\nparser = \"xml\"")
            .expect_err("unknown parser");
        assert!(e.to_string().contains("parser"), "{e}");
    }

    #[test]
    fn multiline_errors_name_the_key_under_multiline() {
        let with = |table: &str| tail(&format!("include = [\"a\"]\n[multiline]\n{table}"));
        let ok = with("languages = [\"java\", \"python\", \"go\", \"ruby\", \"node\"]");
        assert_eq!(ok.check(), Ok(()));
        let m = ok.multiline.as_ref().expect("a multiline table");
        assert_eq!((m.timeout, m.max_lines), (Duration::from_secs(1), 500));
        assert_eq!(with("start_pattern = '^\\d{4}-'").check(), Ok(()));
        let key = |table: &str| with(table).check().expect_err(table).key;
        assert_eq!(key("languages = []"), "multiline.languages");
        assert_eq!(key("timeout = \"1s\""), "multiline.languages");
        assert_eq!(
            key("languages = [\"go\"]\nstart_pattern = '^x'"),
            "multiline.start_pattern"
        );
        assert_eq!(key("start_pattern = ''"), "multiline.start_pattern");
        assert_eq!(
            key("languages = [\"go\"]\nmax_lines = 1"),
            "multiline.max_lines"
        );
        assert_eq!(
            key("languages = [\"go\"]\ntimeout = \"0s\""),
            "multiline.timeout"
        );
        assert_eq!(
            key("languages = [\"go\"]\ntimeout = \"400d\""),
            "multiline.timeout"
        );
        let e = with("start_pattern = '^(\\d'")
            .check()
            .expect_err("an unclosed group");
        assert_eq!(e.key, "multiline.start_pattern");
        assert!(e.message.contains("unclosed group"), "{e}");
        // A list over several lines: toml's quoted line would be `"cobol",`.
        let table = "include = [\"a\"]\n[multiline]\nlanguages = [\n  \"java\",\n  \"cobol\",\n]";
        let e = toml::from_str::<TailConfig>(table).expect_err("an unknown language");
        let e = e.to_string();
        assert!(
            e.contains("multiline.languages: unknown variant `cobol`, expected one of `java`"),
            "{e}"
        );
    }
}
