//! The routing keys every source and sink has, whatever its `type`:
//! `drop` and `[[sources.<name>.columns]]` on a source, `inputs` and
//! `when` on a sink. The configuration loader takes them out of each
//! table before the table is read by its type, so that every kind of
//! source and sink gets them without declaring them.

use serde::Deserialize;

use crate::schema::ExtraColumn;

/// A source's routing keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRoute {
    /// Records matching this condition are dropped at the source (counted
    /// in `tidewater_source_records_dropped_total`; the checkpoint moves
    /// past them as for delivered ones).
    #[serde(default)]
    pub drop: Option<String>,
    /// Typed columns of this source only, after the global `[[columns]]`.
    #[serde(default)]
    pub columns: Vec<ExtraColumn>,
}

/// A sink's routing keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkRoute {
    /// The sources whose records this sink receives; every source when
    /// left out.
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    /// Only records matching this condition reach the sink (the others
    /// are counted in `tidewater_sink_records_filtered_total`). Left out:
    /// the sink type's default (every record; `level >= "error"` for
    /// `amqp`).
    #[serde(default)]
    pub when: Option<String>,
    /// Whether `when` is the sink type's default, not written.
    #[serde(skip)]
    pub default_when: bool,
}

impl SourceRoute {
    /// The keys taken out of a source's table.
    pub const KEYS: &'static [&'static str] = &["drop", "columns"];
}

impl SinkRoute {
    /// The keys taken out of a sink's table.
    pub const KEYS: &'static [&'static str] = &["inputs", "when"];
}
