//! How a source's bodies are parsed: `parser`, `pattern`, `time_key`,
//! `time_format`, `level_key` and `message_key` of a tail source, checked
//! and compiled once per source into [`BodyRules`].
//!
//! Guarantees: a [`BodyRules`] exists only for keys that passed
//! [`BodyRules::new`] (a `regex` parser has a pattern that compiles and names
//! at least one group; a `time_format` has no unknown `%` directive), so
//! parsing a line never fails on configuration.

use std::fmt;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use regex::Regex;
use serde::Deserialize;
use tidewater_sinks::config::Invalid;

/// `parser = "…"`: how the body of a line is turned into fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParserKind {
    /// A JSON object body is parsed; anything else is text (its leading
    /// RFC 3339 time and level word are recognised).
    #[default]
    Auto,
    /// The body must be one JSON object.
    Json,
    /// `key=value key="quoted value"`.
    Logfmt,
    /// Labeled tab-separated values: `label:value<TAB>label:value`.
    Ltsv,
    /// nginx's `combined` format and its common `main` extensions.
    Nginx,
    /// Apache's common and combined formats.
    Apache,
    /// `pattern`: a Rust regex whose named groups become fields.
    Regex,
    /// The body is the message; nothing is parsed.
    None,
}

impl fmt::Display for ParserKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParserKind::Auto => "auto",
            ParserKind::Json => "json",
            ParserKind::Logfmt => "logfmt",
            ParserKind::Ltsv => "ltsv",
            ParserKind::Nginx => "nginx",
            ParserKind::Apache => "apache",
            ParserKind::Regex => "regex",
            ParserKind::None => "none",
        })
    }
}

/// The keys of a source that say how bodies are parsed, as written.
#[derive(Debug, Clone, Default)]
pub struct BodyKeys<'a> {
    pub parser: ParserKind,
    pub pattern: Option<&'a str>,
    pub time_key: Option<&'a str>,
    pub time_format: Option<&'a str>,
    pub level_key: Option<&'a str>,
    pub message_key: Option<&'a str>,
}

/// Where a record's time comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeKey {
    /// The parser's usual keys; the body's time is used only when the
    /// framing has none (text and JSON lines).
    Default,
    /// `time_key = "…"`: this key's time replaces the runtime's.
    Key(String),
    /// `time_key = "none"`: always the runtime's (or the observed) time.
    None,
}

/// What a body key holds, for [`BodyRules::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Message,
    /// `log`: the message when no message key is there (Docker-style bodies).
    Log,
    Level,
    Time,
    None,
}

/// The compiled body rules of one source, shared by its files.
#[derive(Debug)]
pub struct BodyRules {
    pub parser: ParserKind,
    pub regex: Option<Regex>,
    pub time_key: TimeKey,
    /// `time_format`, or the parser's default (`None`: RFC 3339 only).
    pub time_format: Option<String>,
    /// Keys searched for the level, in order.
    pub level_keys: Vec<String>,
    /// Keys searched for the message, in order.
    pub message_keys: Vec<String>,
    /// The body keys that `[[columns]]` read, in column order.
    pub extra_keys: Arc<[String]>,
    /// No key was configured: JSON bodies take the fast path.
    pub default_keys: bool,
    /// nginx or apache: `time_local` is the default time key.
    access_log: bool,
}

/// The time format of access logs (`10/Oct/2000:13:55:36 -0700`).
pub const CLF_TIME: &str = "%d/%b/%Y:%H:%M:%S %z";

const LEVEL_KEYS: [&str; 5] = ["level", "severity", "lvl", "loglevel", "log.level"];
const MESSAGE_KEYS: [&str; 2] = ["message", "msg"];

impl BodyRules {
    /// Check and compile; errors name the key, relative to the source's table.
    pub fn new(keys: &BodyKeys, extra_keys: Arc<[String]>) -> Result<Self, Invalid> {
        let regex = match (keys.parser, keys.pattern) {
            (ParserKind::Regex, None) => {
                return Err(Invalid::new(
                    "pattern",
                    "parser = \"regex\" needs a pattern: a Rust regex whose named groups (?P<name>...) become fields",
                ))
            }
            (ParserKind::Regex, Some(p)) => Some(compile_pattern(p)?),
            (other, Some(_)) => {
                return Err(Invalid::new(
                    "pattern",
                    format!("is only read with parser = \"regex\", not {other:?}", other = other.to_string()),
                ))
            }
            (_, None) => None,
        };
        let time_key = match keys.time_key {
            None => TimeKey::Default,
            Some("") => {
                return Err(Invalid::new(
                    "time_key",
                    "must not be empty (\"none\" uses the runtime's time)",
                ))
            }
            Some("none") => TimeKey::None,
            Some(k) => TimeKey::Key(k.to_string()),
        };
        if let Some(f) = keys.time_format {
            check_time_format(f)?;
            if time_key == TimeKey::None {
                return Err(Invalid::new(
                    "time_format",
                    "is not read with time_key = \"none\"",
                ));
            }
        }
        let default_format = match keys.parser {
            ParserKind::Nginx | ParserKind::Apache | ParserKind::Ltsv => Some(CLF_TIME),
            _ => None,
        };
        let one = |key: &str, value: Option<&str>, defaults: &[&str]| match value {
            Some("") => Err(Invalid::new(key, "must not be empty")),
            Some(v) => Ok(vec![v.to_string()]),
            None => Ok(defaults.iter().map(|s| s.to_string()).collect()),
        };
        Ok(Self {
            parser: keys.parser,
            regex,
            time_key,
            time_format: keys.time_format.or(default_format).map(str::to_string),
            level_keys: one("level_key", keys.level_key, &LEVEL_KEYS)?,
            message_keys: one("message_key", keys.message_key, &MESSAGE_KEYS)?,
            extra_keys,
            access_log: matches!(keys.parser, ParserKind::Nginx | ParserKind::Apache),
            default_keys: keys.time_key.is_none()
                && keys.time_format.is_none()
                && keys.level_key.is_none()
                && keys.message_key.is_none(),
        })
    }

    /// The rules of a source with every key at its default.
    pub fn auto(extra_keys: Arc<[String]>) -> Self {
        Self::new(&BodyKeys::default(), extra_keys)
            .unwrap_or_else(|_| unreachable!("defaults are valid"))
    }

    /// What a body key holds for tidewater (time, level, message), by the
    /// source's keys or their defaults.
    // Called for every key of every JSON body: inlined into the body's
    // visitor, as the literal match it replaced was.
    #[inline(always)]
    pub fn classify(&self, key: &str) -> Known {
        if self.default_keys {
            return match key {
                "msg" | "message" => Known::Message,
                "log" => Known::Log,
                "level" | "severity" | "lvl" | "loglevel" | "log.level" => Known::Level,
                "time" | "ts" | "timestamp" | "@timestamp" if !self.access_log => Known::Time,
                "time_local" if self.access_log => Known::Time,
                _ => Known::None,
            };
        }
        self.classify_configured(key)
    }

    fn classify_configured(&self, key: &str) -> Known {
        if self.message_keys.iter().any(|k| k == key) {
            Known::Message
        } else if key == "log" {
            Known::Log
        } else if self.level_keys.iter().any(|k| k == key) {
            Known::Level
        } else if match &self.time_key {
            TimeKey::Key(k) => k == key,
            TimeKey::Default => self.time_keys().contains(&key),
            TimeKey::None => false,
        } {
            Known::Time
        } else {
            Known::None
        }
    }

    /// Whether a time key whose value is not a time flags the record
    /// `conversion_error` (when the user or the parser named a format or key).
    pub fn time_required(&self) -> bool {
        matches!(self.time_key, TimeKey::Key(_)) || self.time_format.is_some()
    }

    /// The keys a record's time is read from, in order.
    pub fn time_keys(&self) -> &[&str] {
        match (&self.time_key, self.parser) {
            (TimeKey::None, _) => &[],
            (TimeKey::Key(_), _) => &[],
            (TimeKey::Default, ParserKind::Nginx | ParserKind::Apache) => &["time_local"],
            (TimeKey::Default, _) => &["time", "ts", "timestamp", "@timestamp"],
        }
    }
}

fn compile_pattern(pattern: &str) -> Result<Regex, Invalid> {
    let regex = Regex::new(pattern)
        .map_err(|e| Invalid::new("pattern", format!("is not a valid Rust regex: {e}")))?;
    if regex.capture_names().flatten().next().is_none() {
        return Err(Invalid::new(
            "pattern",
            "names no group: fields come from named groups like (?P<status>\\d+)",
        ));
    }
    Ok(regex)
}

fn check_time_format(format: &str) -> Result<(), Invalid> {
    if format.is_empty() {
        return Err(Invalid::new("time_format", "must not be empty"));
    }
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(Invalid::new(
            "time_format",
            format!("{format:?} is not a chrono strftime format (see https://docs.rs/chrono/latest/chrono/format/strftime/)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(keys: BodyKeys) -> Result<BodyRules, Invalid> {
        BodyRules::new(&keys, Vec::new().into())
    }

    #[test]
    fn regex_needs_a_pattern_with_named_groups() {
        let e = rules(BodyKeys {
            parser: ParserKind::Regex,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "pattern");
        let e = rules(BodyKeys {
            parser: ParserKind::Regex,
            pattern: Some("^(\\d+)$"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.message.contains("names no group"), "{e}");
        let e = rules(BodyKeys {
            parser: ParserKind::Regex,
            pattern: Some("(?P<a>"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.message.contains("not a valid Rust regex"), "{e}");
        let e = rules(BodyKeys {
            parser: ParserKind::Nginx,
            pattern: Some("(?P<a>.)"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.message.contains("only read with parser = \"regex\""),
            "{e}"
        );
    }

    #[test]
    fn time_keys_and_formats() {
        let e = rules(BodyKeys {
            time_format: Some("%Y-%Q"),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "time_format");
        let r = rules(BodyKeys {
            parser: ParserKind::Nginx,
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(r.time_format.as_deref(), Some(CLF_TIME));
        assert_eq!(r.time_keys(), ["time_local"]);
        let r = rules(BodyKeys {
            time_key: Some("none"),
            ..Default::default()
        })
        .expect("valid");
        assert!(r.time_keys().is_empty());
        let e = rules(BodyKeys {
            level_key: Some(""),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "level_key");
    }
}
