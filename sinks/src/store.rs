//! Object stores addressed by URL.
//!
//! One place turns a sink's `url` into an `object_store` and a key prefix, so
//! every destination (the local lake today; S3 and GCS next) is reached through
//! the same code path.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::SinkError;

/// A store and the prefix under which a sink writes.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// A printable form of the URL (never with credentials).
    pub display: String,
}

/// Open the store named by `url`.
///
/// `file://lake` and `file:///var/lib/lake` address the local filesystem; a
/// relative path is resolved against `base_dir`. The directory is created if
/// missing. Objects appear atomically (written to a temporary name, then
/// renamed), so a reader never sees a half-written file.
pub fn open(sink: &str, url: &str, base_dir: &FsPath) -> Result<Location, SinkError> {
    let config_err = |reason: String| SinkError::Config {
        sink: sink.to_string(),
        key: "url",
        reason,
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(config_err(format!(
            "expected a URL such as file://lake or file:///var/lib/lake, got {url:?}"
        )));
    };
    match scheme {
        "file" => {
            if rest.is_empty() {
                return Err(config_err("file:// needs a path".into()));
            }
            let dir: PathBuf = if FsPath::new(rest).is_absolute() {
                PathBuf::from(rest)
            } else {
                base_dir.join(rest)
            };
            std::fs::create_dir_all(&dir).map_err(|e| {
                config_err(format!("cannot create directory {}: {e}", dir.display()))
            })?;
            let store = LocalFileSystem::new_with_prefix(&dir)?;
            Ok(Location {
                store: Arc::new(store),
                prefix: Path::default(),
                display: format!("file://{}", dir.display()),
            })
        }
        "s3" | "gs" => Err(config_err(format!(
            "{scheme}:// destinations are not supported by this build yet (only file://)"
        ))),
        other => Err(config_err(format!(
            "unsupported scheme {other:?}: expected file://"
        ))),
    }
}
