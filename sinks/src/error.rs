use thiserror::Error;

/// What went wrong in a sink. Messages never contain credentials.
#[derive(Debug, Error)]
pub enum SinkError {
    /// The sink's configuration cannot work; names the key.
    #[error("sinks.{sink}.{key}: {reason}")]
    Config {
        sink: String,
        key: &'static str,
        reason: String,
    },
    /// Encoding the batch failed.
    #[error("encoding Parquet: {0}")]
    Encode(#[from] parquet::errors::ParquetError),
    /// The object store refused or failed the request.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A task the sink ran on the blocking pool died.
    #[error("encoder task failed: {0}")]
    Task(String),
}
