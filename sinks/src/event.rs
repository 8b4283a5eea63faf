//! Error events: what the AMQP sink publishes and `tidewater notify` reads.
//!
//! An event is one log record that matched the sink's `when` condition, as
//! JSON, with a `fingerprint` that is the same for messages that differ only
//! in numbers, ids and hex ("timeout after 3012 ms" and "timeout after
//! 2987 ms"), so that a consumer can group them.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One error event (the JSON body of an AMQP message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Stable id: the batch id and the row, so a republished event has the
    /// same id (and the AMQP `message_id`).
    pub id: String,
    /// RFC 3339, from the record's `timestamp`.
    pub timestamp: Option<String>,
    pub level: Option<String>,
    pub message: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
    /// The selected keys of the JSON body (`fields` in the sink's config).
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Groups events that differ only in numbers, ids and hex.
    pub fingerprint: String,
}

/// Levels in order; a `level >= "error"` condition compares positions here.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// The position of `level` in [`LEVELS`].
pub fn level_rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

/// The message with what varies between occurrences replaced: UUIDs, hex
/// (`0x…`, or 8+ hex digits with a digit in them) and numbers.
pub fn normalize(message: &str) -> String {
    static PATTERNS: OnceLock<[(Regex, &str); 3]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("built-in pattern {p}: {e}"));
        [
            (
                re(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
                "<id>",
            ),
            (re(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b"), "<hex>"),
            (re(r"\d+(\.\d+)?"), "<n>"),
        ]
    });
    let mut out = message.trim().to_string();
    for (pattern, replacement) in patterns {
        out = pattern.replace_all(&out, *replacement).into_owned();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The fingerprint of a message from a service: 16 hex digits of a hash of
/// namespace, container and the normalized message. The same error from two
/// services is two groups.
pub fn fingerprint(namespace: Option<&str>, container: Option<&str>, message: &str) -> String {
    let key = format!(
        "{}\u{1}{}\u{1}{}",
        namespace.unwrap_or(""),
        container.unwrap_or(""),
        normalize(message)
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_ids_and_hex_do_not_change_the_fingerprint() {
        let a = fingerprint(Some("shop"), Some("web"), "timeout after 3012 ms");
        let b = fingerprint(Some("shop"), Some("web"), "timeout after 2987 ms");
        assert_eq!(a, b);
        assert_eq!(
            normalize(
                "user 5d41402abc4b2a76 req 0x1F failed: 3f2504e0-4f89-11d3-9a0c-0305e82c3301"
            ),
            "user <hex> req <hex> failed: <id>"
        );
        assert_eq!(
            normalize("cafe babe decade"),
            "cafe babe decade",
            "words stay"
        );
        assert_ne!(
            a,
            fingerprint(Some("shop"), Some("api"), "timeout after 3012 ms")
        );
        assert_ne!(
            a,
            fingerprint(Some("shop"), Some("web"), "connection refused")
        );
    }
}
