//! The configured sinks: built from their components for `run`, and probed
//! for `validate --connect`. Only the [`SinkComponent`] trait is known here;
//! each kind's keys, checks and health check live with its code in
//! `tidewater-sinks`.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use tidewater_sinks::{Sink, SinkComponent, SinkContext, SinkError};

use crate::config::Config;
use crate::route::Routes;
use crate::schema::TableSchema;

/// Columns of the bundled schema that are nearly unique per row: Parquet
/// dictionaries only cost CPU there (measured in BENCHMARKS.md).
pub const PLAIN_COLUMNS: &[&str] = &[
    "timestamp",
    "observed_timestamp",
    "message",
    "fields",
    "offset",
    "parse_error",
];

/// Columns of the bundled schema with a few values per batch: Parquet
/// leaves them uncompressed (measured in BENCHMARKS.md, issue 16).
pub const SMALL_COLUMNS: &[&str] = &[
    "stream",
    "level",
    "namespace",
    "pod",
    "container",
    "node",
    "labels",
    "annotations",
    "source",
    "file",
];

/// A built sink and how many batches it takes at once.
pub type Built = (Arc<dyn Sink>, usize);

/// Build every sink of `config`, in name order, each for its own table
/// (`routes`). A sink that cannot work (a bad key, a BigQuery table that
/// cannot take the rows) stops the start with the sink's name; an
/// unreachable destination does not.
pub async fn build(
    config: &Config,
    routes: &Routes,
    base_dir: &Path,
    data_dir: &Path,
) -> anyhow::Result<Vec<Built>> {
    let mut sinks = Vec::new();
    for (name, sink) in &config.sinks {
        let component = sink.component();
        let shared = Shared::new(config, &routes.sinks[name].schema);
        let built = component
            .build(&shared.context(name, base_dir, data_dir))
            .await
            .map_err(|e| named(name, e))?;
        sinks.push((built, component.concurrency()));
    }
    Ok(sinks)
}

/// `tidewater validate --connect`: reach every sink's destination (list it,
/// read a table's definition, log in to a broker) without writing anything
/// and without touching a running instance's data dir.
pub async fn probe(
    config: &Config,
    base_dir: &Path,
) -> anyhow::Result<Vec<(String, Result<String, SinkError>)>> {
    let routes = config.routes().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    for (name, sink) in &config.sinks {
        let component: &dyn SinkComponent = sink.component();
        let shared = Shared::new(config, &routes.sinks[name].schema);
        // No data dir: a probe must not touch a running instance's state.
        let cx = shared.context(name, base_dir, Path::new(""));
        let timeout = component.healthcheck_timeout();
        let result = match tokio::time::timeout(timeout, component.healthcheck(&cx)).await {
            Ok(result) => result,
            Err(_) => Err(SinkError::Task(format!("no answer within {timeout:?}"))),
        };
        out.push((name.clone(), result));
    }
    Ok(out)
}

/// What a sink of a configuration is built with.
struct Shared {
    arrow: SchemaRef,
    bigquery_schema: String,
    buffer_limit: usize,
}

impl Shared {
    fn new(config: &Config, schema: &TableSchema) -> Self {
        Self {
            arrow: schema.arrow(),
            bigquery_schema: schema.to_bigquery_json(),
            buffer_limit: usize::try_from(config.sink_buffer_limit()).unwrap_or(usize::MAX),
        }
    }

    fn context<'a>(
        &'a self,
        name: &'a str,
        base_dir: &'a Path,
        data_dir: &'a Path,
    ) -> SinkContext<'a> {
        SinkContext {
            name,
            schema: &self.arrow,
            bigquery_schema: &self.bigquery_schema,
            plain_columns: PLAIN_COLUMNS,
            small_columns: SMALL_COLUMNS,
            base_dir,
            data_dir,
            buffer_limit: self.buffer_limit,
        }
    }
}

/// A build error that names its sink: a config error names it already.
fn named(name: &str, e: SinkError) -> anyhow::Error {
    match e {
        SinkError::Config { .. } => e.into(),
        other => anyhow::Error::new(other).context(format!("sinks.{name}")),
    }
}
