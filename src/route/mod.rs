//! Routing: which records reach which sink, in which table.
//!
//! Every source has a table of its own: the base schema, the global
//! `[[columns]]`, then its own `[[sources.<name>.columns]]`; its records may
//! be masked (`[[redact]]`) and dropped (`drop`) before they leave the
//! source. Every sink has `inputs` (the sources it receives, all by
//! default) and a `when` condition (every record by default), and its table
//! is the base schema, the global columns, then the union of its inputs'
//! own columns (NULL in rows of a source without the column).
//!
//! [`Routes::build`] compiles all of it once and is also what `validate`
//! runs, so a configuration that loads routes. At run time the dispatcher
//! asks each sink's [`SinkPlan::select`] for the rows it receives: a batch
//! with no row for a sink is acknowledged for it at once, so the checkpoint
//! moves past filtered and dropped records exactly as for delivered ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tidewater_sinks::config::Invalid;
use tidewater_sinks::when::Condition;
use tidewater_sinks::RowOrigin;

use crate::batch::filter_per_row;
use crate::redact::{RedactConfig, Redactor};
use crate::schema::{check_columns, ExtraColumn, TableSchema};

mod keys;

pub use keys::{SinkRoute, SourceRoute};

/// Every source's and sink's routing keys, by name (every configured
/// source and sink has an entry, with defaults where nothing was written).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub sources: BTreeMap<String, SourceRoute>,
    pub sinks: BTreeMap<String, SinkRoute>,
}

/// What the routes are built from, besides the routing keys.
#[derive(Debug, Clone, Copy)]
pub struct Tables<'a> {
    /// `schema`: the base schema file (the bundled one when `None`).
    pub schema: Option<&'a Path>,
    /// The global `[[columns]]`.
    pub columns: &'a [ExtraColumn],
    /// `[[redact]]`.
    pub redact: &'a [RedactConfig],
    /// Whether the Pod's labels are read (`[kubernetes] labels_file`).
    pub has_labels: bool,
}

/// A source's compiled routing.
pub struct SourcePlan {
    /// The source's table.
    pub schema: TableSchema,
    /// The global columns, then the source's own: the typed columns of
    /// `schema` that records fill.
    pub columns: Vec<ExtraColumn>,
    /// Records matching it are dropped at the source.
    pub drop: Option<Condition>,
    /// The `[[redact]]` rules that apply to this source.
    pub redactor: Option<Arc<Redactor>>,
}

/// A sink's compiled routing.
pub struct SinkPlan {
    inputs: BTreeSet<String>,
    when: Option<Condition>,
    /// The sink's table.
    pub schema: TableSchema,
    arrow: SchemaRef,
}

/// Every source's and sink's plan.
pub struct Routes {
    pub sources: BTreeMap<String, SourcePlan>,
    pub sinks: BTreeMap<String, SinkPlan>,
}

impl Routes {
    /// Compile and check the routing: errors name the key (`sinks.lake.inputs[1]`,
    /// `sources.app.drop`, `redact[0].sources`).
    pub fn build(tables: Tables<'_>, routing: &Routing) -> Result<Self, Invalid> {
        crate::redact::check(tables.redact)?;
        crate::redact::check_sources(tables.redact, |n| routing.sources.contains_key(n))?;
        let mut sources = BTreeMap::new();
        for (name, route) in &routing.sources {
            let plan = SourcePlan::build(name, route, tables)
                .map_err(|e| e.under(&format!("sources.{name}")))?;
            sources.insert(name.clone(), plan);
        }
        let mut sinks = BTreeMap::new();
        for (name, route) in &routing.sinks {
            let plan = SinkPlan::build(route, &routing.sources, tables)
                .map_err(|e| e.under(&format!("sinks.{name}")))?;
            sinks.insert(name.clone(), plan);
        }
        for name in routing.sources.keys() {
            if !sinks.values().any(|s| s.receives(name)) {
                return Err(Invalid::new(
                    format!("sources.{name}"),
                    "no sink receives this source: add it to a sink's inputs (or remove the source)",
                ));
            }
        }
        Ok(Self { sources, sinks })
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    format!("; the sources are: {}", names.join(", "))
}

impl SourcePlan {
    fn build(name: &str, route: &SourceRoute, tables: Tables<'_>) -> Result<Self, Invalid> {
        check_columns(&route.columns)?;
        for (i, c) in route.columns.iter().enumerate() {
            if tables.columns.iter().any(|g| g.name == c.name) {
                return Err(Invalid::new(
                    format!("columns[{i}].name"),
                    format!(
                        "{:?} is also a global [[columns]] column: declare it in one place",
                        c.name
                    ),
                ));
            }
            if c.label.is_some() && !tables.has_labels {
                return Err(Invalid::new(
                    format!("columns[{i}].label"),
                    "needs the Pod's labels: set [kubernetes] labels_file (a downwardAPI volume's metadata.labels item)",
                ));
            }
        }
        let columns: Vec<ExtraColumn> = tables
            .columns
            .iter()
            .chain(&route.columns)
            .cloned()
            .collect();
        let schema = TableSchema::load(tables.schema, &columns)
            .map_err(|e| Invalid::new("columns", e.to_string()))?;
        crate::batch::Builder::new(&schema, &columns, crate::batch::BatchConfig::default())
            .map_err(|e| Invalid::new("columns", e))?;
        let drop = condition("drop", route.drop.as_deref(), &schema.arrow())?;
        Ok(Self {
            schema,
            columns,
            drop,
            redactor: Redactor::for_source(tables.redact, name).map(Arc::new),
        })
    }

    /// The JSON body keys the typed columns read, one per column ("" for
    /// a label column, which is filled from the Pod's labels).
    pub fn body_keys(&self) -> Arc<[String]> {
        self.columns
            .iter()
            .map(|c| c.body_key().unwrap_or_default().to_string())
            .collect()
    }
}

impl SinkPlan {
    fn build(
        route: &SinkRoute,
        sources: &BTreeMap<String, SourceRoute>,
        tables: Tables<'_>,
    ) -> Result<Self, Invalid> {
        let inputs: BTreeSet<String> = match &route.inputs {
            None => sources.keys().cloned().collect(),
            Some(list) if list.is_empty() => {
                return Err(Invalid::new(
                    "inputs",
                    "is empty, so the sink would receive nothing: list sources, or leave it out for every source",
                ))
            }
            Some(list) => {
                for (i, name) in list.iter().enumerate() {
                    if !sources.contains_key(name) {
                        return Err(Invalid::new(
                            format!("inputs[{i}]"),
                            format!("no source is named {name:?}{}", known(sources.keys())),
                        ));
                    }
                }
                list.iter().cloned().collect()
            }
        };
        // The global columns, then each input's own, in source name order;
        // one type per column name.
        let mut columns: Vec<ExtraColumn> = tables.columns.to_vec();
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for source in &inputs {
            for c in &sources[source].columns {
                match columns.iter().find(|x| x.name == c.name) {
                    Some(x) if x.ty != c.ty => {
                        return Err(Invalid::new(
                            "inputs",
                            format!(
                                "sources {:?} and {source:?} both have a column {:?}, as {} and {}: a sink's table has one type per column (rename one of them, or send them to different sinks)",
                                owner.get(c.name.as_str()).copied().unwrap_or_default(),
                                c.name,
                                x.ty.bigquery_name(),
                                c.ty.bigquery_name(),
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        owner.insert(&c.name, source);
                        columns.push(c.clone());
                    }
                }
            }
        }
        let schema = TableSchema::load(tables.schema, &columns)
            .map_err(|e| Invalid::new("inputs", e.to_string()))?;
        let arrow = schema.arrow();
        let when = condition("when", route.when.as_deref(), &arrow).map_err(|e| {
            if route.default_when {
                let message = format!(
                    "{} (in this sink type's default when, {:?}: write a when that fits this table)",
                    e.message,
                    route.when.as_deref().unwrap_or_default()
                );
                Invalid { message, ..e }
            } else {
                e
            }
        })?;
        Ok(Self {
            inputs,
            when,
            schema,
            arrow,
        })
    }

    /// Whether the sink receives records of `source`.
    pub fn receives(&self, source: &str) -> bool {
        self.inputs.contains(source)
    }

    /// What the sink receives, for people: `access, app where level >= "warn"`.
    pub fn describe(&self) -> String {
        let inputs: Vec<&str> = self.inputs.iter().map(String::as_str).collect();
        match &self.when {
            Some(when) => format!("{} where {when}", inputs.join(", ")),
            None => inputs.join(", "),
        }
    }

    /// The Arrow schema of every batch the sink is given.
    pub fn arrow(&self) -> &SchemaRef {
        &self.arrow
    }

    /// The rows of `records` (a batch of one of its inputs, in that
    /// source's table) that this sink receives, in the sink's table, with
    /// their origins (`origins` is empty or one per row).
    pub fn select(&self, records: &RecordBatch, origins: &Arc<[RowOrigin]>) -> Selected {
        let rows = records.num_rows();
        let records = self.adapt(records);
        let Some(when) = &self.when else {
            return Selected::all(records, origins);
        };
        let mask = when.evaluate(&records);
        let kept = mask.true_count();
        if kept == rows {
            return Selected::all(records, origins);
        }
        let filtered = (rows - kept) as u64;
        if kept == 0 {
            return Selected {
                rows: None,
                filtered,
            };
        }
        let kept_records = filter_record_batch(&records, &mask)
            .expect("a mask of the batch's own length filters it");
        let positions = mask
            .values()
            .set_indices()
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        Selected {
            rows: Some(Rows {
                records: kept_records,
                origins: filter_per_row(origins, &mask).into(),
                positions: Some(positions),
            }),
            filtered,
        }
    }

    /// `records` in the sink's table: its columns by name, NULL where the
    /// source has no such column.
    fn adapt(&self, records: &RecordBatch) -> RecordBatch {
        if records.schema().fields() == self.arrow.fields() {
            return records.clone();
        }
        let columns: Vec<ArrayRef> = self
            .arrow
            .fields()
            .iter()
            .map(|f| match records.column_by_name(f.name()) {
                Some(c) => Arc::clone(c),
                None => new_null_array(f.data_type(), records.num_rows()),
            })
            .collect();
        RecordBatch::try_new(Arc::clone(&self.arrow), columns)
            .expect("a sink's table extends each input's table with NULLABLE columns")
    }
}

/// What a sink receives of one batch.
pub struct Selected {
    /// `None` when no row is for the sink.
    pub rows: Option<Rows>,
    /// Rows its `when` left out.
    pub filtered: u64,
}

/// The rows of a batch one sink receives.
pub struct Rows {
    pub records: RecordBatch,
    /// Their origins (empty, or one per row).
    pub origins: Arc<[RowOrigin]>,
    /// Their positions in the batch as built (`None`: all of it).
    pub positions: Option<Arc<[u32]>>,
}

impl Selected {
    fn all(records: RecordBatch, origins: &Arc<[RowOrigin]>) -> Self {
        Self {
            rows: Some(Rows {
                records,
                origins: Arc::clone(origins),
                positions: None,
            }),
            filtered: 0,
        }
    }
}

/// Parse `text` (the key `key`) and check the fields it names against
/// `schema`.
fn condition(
    key: &str,
    text: Option<&str>,
    schema: &arrow::datatypes::Schema,
) -> Result<Option<Condition>, Invalid> {
    let Some(text) = text else {
        return Ok(None);
    };
    let c = Condition::parse(text).map_err(|e| Invalid::new(key, e.to_string()))?;
    c.check_fields(schema)
        .map_err(|e| Invalid::new(key, e.to_string()))?;
    Ok(Some(c))
}

#[cfg(test)]
mod tests;
