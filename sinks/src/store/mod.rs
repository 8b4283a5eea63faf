//! Object stores addressed by URL.
//!
//! One place turns a sink's `url` (and its store options) into an
//! `object_store` and a key prefix, so every destination — the local lake,
//! S3 (and S3-compatible servers) and GCS — is written by the same code.
//! Credentials come from where each ecosystem expects them (the `AWS_*` and
//! `GOOGLE_*` variables, a key file, or the metadata server); they are never
//! part of a [`Location`]'s display form or of an error message.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::config::Invalid;
use crate::SinkError;

/// How to reach an object store, beyond its URL. Every field is optional:
/// unset means the ecosystem's own default (environment variables, then the
/// provider's defaults).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// S3: an S3-compatible endpoint (MinIO, moto, ...). GCS: the base URL
    /// of an emulator. Unset: the provider's own endpoint.
    pub endpoint: Option<String>,
    /// S3 region (else `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Allow plain `http://` endpoints (local servers only).
    pub allow_http: Option<bool>,
    /// S3: `bucket.host/key` (true) or `host/bucket/key` (false) requests.
    pub virtual_hosted_style: Option<bool>,
    /// GCS: a service-account key file (else `GOOGLE_APPLICATION_CREDENTIALS`,
    /// else the metadata server, as with Workload Identity).
    pub credentials: Option<PathBuf>,
    /// How long one request may take before it counts as failed.
    pub request_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: None,
            virtual_hosted_style: None,
            credentials: None,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A store and the prefix under which a sink writes.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// A printable form of the URL (never with credentials).
    pub display: String,
}

impl Location {
    /// The full path of `key` under the prefix.
    pub fn path(&self, key: &str) -> Result<Path, object_store::Error> {
        let full = if self.prefix.as_ref().is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        Ok(Path::parse(full)?)
    }
}

/// Open the store named by `url`.
///
/// - `file://lake`, `file:///var/lib/lake`: the local filesystem; a relative
///   path is resolved against `base_dir` and the directory is created if
///   missing. Objects appear atomically (written to a temporary name, then
///   renamed), so a reader never sees a half-written file.
/// - `s3://bucket/prefix`: Amazon S3 or an S3-compatible server.
/// - `gs://bucket/prefix`: Google Cloud Storage.
///
/// Nothing is contacted here: an unreachable or misconfigured store shows up
/// as failed deliveries (retried, and reported as unhealthy).
pub fn open(
    sink: &str,
    url: &str,
    options: &StoreOptions,
    base_dir: &FsPath,
) -> Result<Location, SinkError> {
    let config_err = |key: &'static str, reason: String| SinkError::Config {
        sink: sink.to_string(),
        key: key.to_string(),
        reason,
    };
    check(url, options).map_err(|invalid| SinkError::config(sink, invalid))?;
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(config_err("url", format!("{url:?} is not a URL")));
    };
    match scheme {
        "file" => {
            let dir: PathBuf = if FsPath::new(rest).is_absolute() {
                PathBuf::from(rest)
            } else {
                base_dir.join(rest)
            };
            std::fs::create_dir_all(&dir).map_err(|e| {
                config_err(
                    "url",
                    format!("cannot create directory {}: {e}", dir.display()),
                )
            })?;
            let store = LocalFileSystem::new_with_prefix(&dir)?;
            Ok(Location {
                store: Arc::new(store),
                prefix: Path::default(),
                display: format!("file://{}", dir.display()),
            })
        }
        "s3" | "gs" => open_cloud(scheme, rest, options, base_dir)
            .map_err(|(key, reason)| config_err(key, reason)),
        other => Err(config_err(
            "url",
            format!("unsupported scheme {other:?}: expected file://, s3:// or gs://"),
        )),
    }
}

/// Check `url` and the options that go with it, without building or
/// contacting anything (`tidewater validate` runs this).
pub fn check(url: &str, options: &StoreOptions) -> Result<(), Invalid> {
    let config_err = |key: &'static str, reason: String| Invalid::new(key, reason);
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(config_err(
            "url",
            format!("expected file://PATH, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX, got {url:?}"),
        ));
    };
    if scheme != "file" {
        if url.contains('@') {
            return Err(config_err(
                "url",
                "credentials do not belong in the URL: use the provider's environment variables or key file"
                    .into(),
            ));
        }
        // Keys that belong to the other provider are mistakes worth naming.
        if scheme == "gs" {
            for (key, set) in [
                ("region", options.region.is_some()),
                (
                    "virtual_hosted_style",
                    options.virtual_hosted_style.is_some(),
                ),
            ] {
                if set {
                    return Err(config_err(
                        key,
                        "is an S3 setting; this sink is gs://".into(),
                    ));
                }
            }
        }
        if scheme == "s3" && options.credentials.is_some() {
            return Err(config_err(
                "credentials",
                "is a GCS key file; S3 credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS credential chain"
                    .into(),
            ));
        }
    }
    match scheme {
        "file" => {
            if rest.is_empty() {
                return Err(config_err("url", "file:// needs a path".into()));
            }
            for (key, set) in [
                ("endpoint", options.endpoint.is_some()),
                ("region", options.region.is_some()),
                ("credentials", options.credentials.is_some()),
                (
                    "virtual_hosted_style",
                    options.virtual_hosted_style.is_some(),
                ),
            ] {
                if set {
                    return Err(config_err(
                        key,
                        "applies to s3:// and gs:// only; this sink is file://".into(),
                    ));
                }
            }
            Ok(())
        }
        "s3" if !cfg!(feature = "s3") => Err(config_err("url", not_built("s3"))),
        "gs" if !cfg!(feature = "gcs") => Err(config_err("url", not_built("gcs"))),
        "s3" | "gs" => {
            let bucket = rest.split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Err(config_err(
                    "url",
                    format!("{url:?} names no bucket: expected {scheme}://BUCKET/PREFIX"),
                ));
            }
            Ok(())
        }
        other => Err(config_err(
            "url",
            format!("unsupported scheme {other:?}: expected file://, s3:// or gs://"),
        )),
    }
}

/// A store that could not be built: the key to blame and why.
type BuildError = (&'static str, String);

#[cfg(any(feature = "s3", feature = "gcs"))]
mod cloud;
#[cfg(any(feature = "s3", feature = "gcs"))]
use cloud::open as open_cloud;

/// Without any cloud feature, an `s3://` or `gs://` URL never passes
/// [`check`]; this only keeps `open` whole.
#[cfg(not(any(feature = "s3", feature = "gcs")))]
fn open_cloud(scheme: &str, _: &str, _: &StoreOptions, _: &FsPath) -> Result<Location, BuildError> {
    Err(("url", not_built(scheme)))
}

/// Why a URL this build cannot write to is refused.
fn not_built(feature: &str) -> String {
    format!("this tidewater was built without the {feature:?} feature (cargo build --no-default-features); use a build with it")
}

/// Whether an object-store error can go away by itself (an outage, a
/// timeout, throttling) or needs a person (no permission, no such bucket,
/// bad credentials). Both are retried: the data waits in the source files.
pub fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotFound { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => true,
        E::Generic { source, .. } => io_kind_is_permanent(source.as_ref()),
        _ => false,
    }
}

/// Local filesystem errors arrive as `Generic` with an `io::Error` inside.
fn io_kind_is_permanent(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::NotADirectory
            );
        }
        match e.source() {
            Some(next) => e = next,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_url(url: &str, options: &StoreOptions) -> Result<Location, SinkError> {
        let dir = tempfile::tempdir().expect("tempdir");
        open("lake", url, options, dir.path())
    }

    #[test]
    fn s3_url_gives_bucket_and_prefix() {
        let options = StoreOptions {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("eu-west-1".into()),
            allow_http: Some(true),
            ..StoreOptions::default()
        };
        let loc = open_url("s3://logs/prod/eu/", &options).expect("opens");
        assert_eq!(loc.display, "s3://logs/prod/eu");
        assert_eq!(
            loc.path("dt=2026-11-22/a.parquet").expect("path").as_ref(),
            "prod/eu/dt=2026-11-22/a.parquet"
        );
        let bare = open_url("s3://logs", &options).expect("opens");
        assert_eq!(bare.path("a.parquet").expect("path").as_ref(), "a.parquet");
    }

    #[test]
    fn bad_urls_name_the_key() {
        let opts = StoreOptions::default();
        let err = open_url("s3:///prefix", &opts)
            .expect_err("no bucket")
            .to_string();
        assert!(err.starts_with("sinks.lake.url:"), "{err}");
        let err = open_url("s3://AKIA:secret@bucket/p", &opts)
            .expect_err("credentials in URL")
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        let err = open_url("ftp://x", &opts).expect_err("scheme").to_string();
        assert!(err.contains("s3://"), "{err}");
        let with_region = StoreOptions {
            region: Some("us-east-1".into()),
            ..StoreOptions::default()
        };
        let err = open_url("gs://b/p", &with_region)
            .expect_err("region on gs")
            .to_string();
        assert!(err.starts_with("sinks.lake.region:"), "{err}");
        let err = open_url("file://lake", &with_region)
            .expect_err("region on file")
            .to_string();
        assert!(err.starts_with("sinks.lake.region:"), "{err}");
        let with_key = StoreOptions {
            credentials: Some("/nonexistent/key.json".into()),
            ..StoreOptions::default()
        };
        let err = open_url("gs://b/p", &with_key)
            .expect_err("missing key")
            .to_string();
        assert!(err.starts_with("sinks.lake.credentials:"), "{err}");
    }

    #[test]
    fn permission_problems_are_permanent_and_outages_are_not() {
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        assert!(is_permanent(&denied));
        let io = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        };
        assert!(is_permanent(&io));
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert!(!is_permanent(&refused));
    }
}
