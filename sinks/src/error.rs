//! [`SinkError`]: what can go wrong in a sink, and whether retrying can help
//! ([`SinkError::is_permanent`]). Messages never contain credentials.

use thiserror::Error;

/// What went wrong in a sink. Messages never contain credentials.
#[derive(Debug, Error)]
pub enum SinkError {
    /// The sink's configuration cannot work; names the key.
    #[error("sinks.{sink}.{key}: {reason}")]
    Config {
        sink: String,
        key: String,
        reason: String,
    },
    /// Encoding the batch failed.
    #[error("encoding Parquet: {0}")]
    Encode(#[from] parquet::errors::ParquetError),
    /// The object store refused or failed the request.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Reading or writing the sink's local staging files failed.
    #[error("staging file {path}: {source}")]
    Staging {
        path: String,
        source: std::io::Error,
    },
    /// The AMQP broker could not be reached or refused (never with the password).
    #[error("amqp: {0}")]
    Amqp(String),
    /// BigQuery refused or failed a request (never with a token).
    #[error("bigquery: {message}")]
    BigQuery { message: String, permanent: bool },
    /// A task the sink ran on the blocking pool died.
    #[error("encoder task failed: {0}")]
    Task(String),
}

impl SinkError {
    /// The sink `sink`'s key that cannot work, as its check found it.
    pub fn config(sink: &str, invalid: crate::config::Invalid) -> Self {
        SinkError::Config {
            sink: sink.to_string(),
            key: invalid.key,
            reason: invalid.message,
        }
    }

    /// Whether retrying cannot help until a person changes something
    /// (permissions, a missing bucket, credentials, the configuration).
    pub fn is_permanent(&self) -> bool {
        match self {
            SinkError::Config { .. } => true,
            SinkError::Store(e) => crate::store::is_permanent(e),
            SinkError::Staging { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ),
            SinkError::BigQuery { permanent, .. } => *permanent,
            SinkError::Encode(_) | SinkError::Task(_) | SinkError::Amqp(_) => false,
        }
    }
}
