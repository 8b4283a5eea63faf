//! S3 and GCS stores (the `s3` and `gcs` features), built from a sink's
//! URL and options. Credentials come from the ecosystem's usual places and
//! never appear in a display form or an error.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "s3")]
use object_store::aws::AmazonS3Builder;
#[cfg(feature = "gcs")]
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

#[cfg(not(all(feature = "s3", feature = "gcs")))]
use super::not_built;
use super::{BuildError, Location, StoreOptions};

/// The store for `scheme://rest` (`s3` or `gs`); contacts nothing.
pub(super) fn open(
    scheme: &str,
    rest: &str,
    options: &StoreOptions,
    base_dir: &FsPath,
) -> Result<Location, BuildError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = Path::parse(prefix.trim_matches('/'))
        .map_err(|e| ("url", format!("invalid prefix: {e}")))?;
    let client = client_options(options);
    let retry = retry_config(options.request_timeout);
    let store = if scheme == "s3" {
        s3(bucket, options, client, retry)
    } else {
        gcs(bucket, options, client, retry, base_dir)
    }?;
    let display = if prefix.as_ref().is_empty() {
        format!("{scheme}://{bucket}")
    } else {
        format!("{scheme}://{bucket}/{prefix}")
    };
    Ok(Location {
        store,
        prefix,
        display,
    })
}

#[cfg(feature = "s3")]
fn s3(
    bucket: &str,
    options: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(endpoint) = &options.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let Some(region) = &options.region {
        b = b.with_region(region);
    }
    if let Some(allow) = options.allow_http {
        b = b.with_allow_http(allow);
    }
    if let Some(virtual_hosted) = options.virtual_hosted_style {
        b = b.with_virtual_hosted_style_request(virtual_hosted);
    }
    Ok(Arc::new(b.build().map_err(|e| ("url", redact(&e)))?))
}

#[cfg(not(feature = "s3"))]
fn s3(
    _: &str,
    _: &StoreOptions,
    _: ClientOptions,
    _: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, BuildError> {
    Err(("url", not_built("s3")))
}

#[cfg(feature = "gcs")]
fn gcs(
    bucket: &str,
    options: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
    base_dir: &FsPath,
) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(endpoint) = &options.endpoint {
        b = b.with_base_url(endpoint);
    }
    if let Some(path) = &options.credentials {
        let path = base_dir.join(path);
        if !path.is_file() {
            return Err((
                "credentials",
                format!("no service-account key file at {}", path.display()),
            ));
        }
        b = b.with_service_account_path(path.to_string_lossy());
    }
    Ok(Arc::new(
        b.build().map_err(|e| ("credentials", redact(&e)))?,
    ))
}

#[cfg(not(feature = "gcs"))]
fn gcs(
    _: &str,
    _: &StoreOptions,
    _: ClientOptions,
    _: RetryConfig,
    _: &FsPath,
) -> Result<Arc<dyn ObjectStore>, BuildError> {
    Err(("url", not_built("gcs")))
}

fn client_options(options: &StoreOptions) -> ClientOptions {
    let mut client = ClientOptions::new()
        .with_timeout(options.request_timeout)
        .with_connect_timeout(options.request_timeout.min(Duration::from_secs(10)));
    if let Some(allow) = options.allow_http {
        client = client.with_allow_http(allow);
    }
    client
}

/// object_store's own retries cover a blip inside one request; a longer
/// outage surfaces quickly as an error, so the sink is reported as failing
/// and the pipeline's own backoff (without end) takes over.
fn retry_config(request_timeout: Duration) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: request_timeout.max(Duration::from_secs(10)),
    }
}

/// A builder error's text. object_store's builder errors name keys and
/// URLs, never secret values, but a key file's content must never be echoed:
/// cut anything after a `{`, where a JSON body would start.
fn redact(e: &object_store::Error) -> String {
    let text = e.to_string();
    match text.find('{') {
        Some(i) => format!("{} (details withheld)", text[..i].trim_end()),
        None => text,
    }
}
