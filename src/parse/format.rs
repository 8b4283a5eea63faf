//! `format = "…"` of a source: how the lines of a file are framed.
//!
//! Guarantees: the names accepted in the configuration are exactly the ones
//! [`Format`]'s `Display` prints (`cri`, `docker`, `json`, `text`, `auto`).

use std::fmt;

use serde::Deserialize;

/// How the lines of a file are framed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// containerd / CRI-O: `<time> <stream> <P|F> <body>`.
    #[default]
    Cri,
    /// Docker json-file: `{"log":..,"stream":..,"time":..}`.
    Docker,
    /// One JSON object per line.
    Json,
    /// Plain text.
    Text,
    /// Decided line by line from what the line looks like.
    Auto,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Format::Cri => "cri",
            Format::Docker => "docker",
            Format::Json => "json",
            Format::Text => "text",
            Format::Auto => "auto",
        };
        f.write_str(s)
    }
}
