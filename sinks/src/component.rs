//! The sink component contract: how a `[sinks.<name>]` table checks itself,
//! becomes a running [`Sink`], and probes its destination.
//!
//! Each kind of sink has one config type, next to its code, that implements
//! [`SinkComponent`]; the top-level configuration only registers the type
//! under its `type = "…"` name. The pipeline knows sinks through this trait
//! and [`Sink`] alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;

use crate::config::Invalid;
use crate::{Sink, SinkError};

/// What the rest of the configuration says that a sink's keys are checked
/// against (`tidewater validate` and `run` check the same).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole `memory_limit`.
    pub memory_limit: u64,
    /// What this sink may hold in its own buffers (its share of
    /// `memory_limit`, see [`SinkComponent::buffers_in_memory`]).
    pub buffer_limit: u64,
    /// `batch.max_age`: how long a batch can take to fill.
    pub batch_max_age: Duration,
}

/// What a sink is built with, besides its own keys.
#[derive(Debug, Clone, Copy)]
pub struct SinkContext<'a> {
    /// The sink's name (`[sinks.<name>]`).
    pub name: &'a str,
    /// The Arrow schema of every batch the sink will be offered.
    pub schema: &'a SchemaRef,
    /// The same schema as a BigQuery JSON schema (what `tidewater schema
    /// --format bigquery` prints).
    pub bigquery_schema: &'a str,
    /// Columns that are nearly unique per row (messages, JSON bodies):
    /// dictionaries and min/max statistics only cost CPU there.
    pub plain_columns: &'a [&'a str],
    /// Columns with a few values per batch (stream, level, the Pod's
    /// names): their dictionary indices are a few bits per row, too little
    /// for compression to pay.
    pub small_columns: &'a [&'a str],
    /// Relative paths in the sink's keys are relative to this.
    pub base_dir: &'a Path,
    /// The process's data dir; a sink keeps its local state under
    /// `<data_dir>/staging/<name>`.
    pub data_dir: &'a Path,
    /// Bytes the sink may hold in its own buffers.
    pub buffer_limit: usize,
}

/// A kind of sink: its config type, which checks itself, builds the sink,
/// and probes the destination for `validate --connect`.
#[async_trait]
pub trait SinkComponent: Send + Sync {
    /// Every key on its own and against `limits`. Keys in the error are
    /// relative to the sink's table (`"part_size"`).
    fn check(&self, limits: &Limits) -> Result<(), Invalid>;

    /// What needs the pipeline's schema: templates that name its columns,
    /// a schema file of the sink's own.
    fn check_schema(&self, schema: &Schema) -> Result<(), Invalid> {
        let _ = schema;
        Ok(())
    }

    /// Batches the sink may be given at the same time.
    fn concurrency(&self) -> usize;

    /// The sink's `when` when the configuration leaves it out (`None`:
    /// every record its inputs produce). The condition is applied before
    /// the sink sees a batch: a sink receives only the rows it is for.
    fn default_when(&self) -> Option<&'static str> {
        None
    }

    /// Whether the sink buffers data of its own (row groups, upload parts)
    /// and so takes a share of `memory_limit` for it.
    fn buffers_in_memory(&self) -> bool {
        false
    }

    /// The running sink, from keys that passed [`SinkComponent::check`]
    /// and [`SinkComponent::check_schema`] (loading a configuration runs
    /// both; a sink may rely on them). Contacts the destination only where
    /// a wrong destination must stop the start (a BigQuery table that
    /// cannot take the rows); an unreachable one shows up as failed
    /// deliveries.
    async fn build(&self, cx: &SinkContext<'_>) -> Result<Arc<dyn Sink>, SinkError>;

    /// Reach the destination without writing anything and without touching
    /// the data dir; `Ok` describes what was found.
    async fn healthcheck(&self, cx: &SinkContext<'_>) -> Result<String, SinkError>;

    /// How long [`SinkComponent::healthcheck`] may take in all.
    fn healthcheck_timeout(&self) -> Duration;
}
