//! `tidewater status --data-dir DIR`: per file, how far delivery has got.
//!
//! Reads the checkpoint (never writes it, so it is safe beside a running
//! process) and compares each committed offset with the file as it is now:
//! the lag is what is on disk but not yet delivered to every sink. The
//! comparison itself is [`Entry::on_disk`], which `/metrics` uses too: the
//! runtime never depends on this module, which is the CLI's.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

pub use crate::checkpoint::FileStatus;
use crate::checkpoint::{Checkpoints, Entry, FILE_NAME};

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Status {
    pub checkpoint: String,
    /// Seconds since the checkpoint was last written.
    pub checkpoint_age_seconds: Option<u64>,
    pub files: Vec<FileStatus>,
    pub total_lag: u64,
}

/// Build the report for `data_dir`.
pub fn status(data_dir: &Path) -> anyhow::Result<Status> {
    let checkpoint = data_dir.join(FILE_NAME);
    if !checkpoint.exists() {
        anyhow::bail!(
            "no checkpoint at {}: is this the data_dir of a tidewater that has delivered something?",
            checkpoint.display()
        );
    }
    let age = std::fs::metadata(&checkpoint)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs());
    let mut files: Vec<FileStatus> = Checkpoints::read(data_dir)?
        .iter()
        .map(Entry::on_disk)
        .collect();
    files.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
    let total_lag = files.iter().filter_map(|f| f.lag).sum();
    Ok(Status {
        checkpoint: checkpoint.display().to_string(),
        checkpoint_age_seconds: age,
        files,
        total_lag,
    })
}

/// The report as a table for a person.
pub fn render(status: &Status) -> String {
    let mut out = format!(
        "checkpoint {} (written {})\n",
        status.checkpoint,
        status
            .checkpoint_age_seconds
            .map_or("at an unknown time".to_string(), |s| format!("{s}s ago"))
    );
    out.push_str(&format!(
        "{:<12} {:>14} {:>14} {:>14}  {:<9} {}\n",
        "SOURCE", "COMMITTED", "SIZE", "LAG", "STATE", "FILE"
    ));
    let num = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    for f in &status.files {
        out.push_str(&format!(
            "{:<12} {:>14} {:>14} {:>14}  {:<9} {}\n",
            f.source,
            f.committed,
            num(f.size),
            num(f.lag),
            f.state,
            f.path
        ));
    }
    out.push_str(&format!(
        "{} files, {} bytes not yet delivered\n",
        status.files.len(),
        status.total_lag
    ));
    out
}
