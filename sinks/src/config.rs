//! What every component's configuration is made of: durations and sizes as
//! people write them (`"2s"`, `"8MiB"`), and [`Invalid`], the error a
//! component's `check` returns, which names the key it is about.
//!
//! This is a leaf: it knows no component. Each source, parser and sink
//! defines its own `serde` config type next to its code and uses these
//! helpers for its values and checks.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest duration accepted anywhere: longer ones cannot be added to
/// a clock reading (`Instant + Duration` overflows) and are surely a slip.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A key that cannot be used, and why. The key is relative to the table the
/// check looked at (`"part_size"`); [`Invalid::under`] prefixes the table
/// (`"sinks.lake.part_size"`) as the error travels up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same, for a key inside the table `table`.
    pub fn under(self, table: &str) -> Self {
        Self {
            key: format!("{table}.{}", self.key),
            ..self
        }
    }
}

/// A duration that must be more than 0 (`why` says what it is for) and at
/// most [`MAX_DURATION`].
pub fn positive_duration(key: &str, d: Duration, why: &str) -> Result<(), Invalid> {
    if d.is_zero() {
        return Err(Invalid::new(key, format!("must be more than 0s: {why}")));
    }
    bounded_duration(key, d)
}

/// A duration where 0 means "not at all", at most [`MAX_DURATION`].
pub fn bounded_duration(key: &str, d: Duration) -> Result<(), Invalid> {
    if d > MAX_DURATION {
        return Err(Invalid::new(
            key,
            format!(
                "expected at most 365 days, got {}",
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

/// Every `{name}` in `template` is one of `known`, and every `{` is closed.
pub fn placeholders(template: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("{template:?}: an unclosed {{"));
        };
        let name = &rest[open + 1..open + close];
        if !known.contains(&name) {
            let known: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
            return Err(format!(
                "{template:?}: unknown placeholder {{{name}}}; expected {}",
                known.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// `deserialize_with`: `"2s"`, `"500ms"`, `"1m 30s"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "expected a duration such as \"2s\" or \"500ms\", got {text:?} ({e})"
        ))
    })
}

/// `deserialize_with` for an optional key: as [`duration`].
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// `deserialize_with`: `"8MiB"`, `"512KiB"`, `"1 MB"` or a plain number of
/// bytes.
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Text(t) => t
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected a size such as \"8MiB\" or \"512KiB\", got {t:?}"
                ))
            }),
    }
}

/// `deserialize_with` for an optional key: as [`size`].
pub fn optional_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

/// A size for messages: `"8 MiB"`.
pub fn show_size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}
