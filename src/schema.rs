//! The table schema, read from a BigQuery JSON schema file.
//!
//! `schemas/container_log.json` is the single source of truth: the Arrow
//! schema of every batch (and so the Parquet files) is derived from it here,
//! and later the BigQuery table. Typed columns declared in the config
//! (`[[columns]]`) are appended when the file lacks them.
//!
//! The typed columns are configured here too ([`ExtraColumn`]), with their
//! checks: columns that passed [`check_columns`] have distinct, non-empty
//! names and keys.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use tidewater_sinks::config::Invalid;

/// `[[columns]]`: a typed column filled from a key of the JSON body, or
/// from one of the Pod's labels (`label`, with `[kubernetes] labels_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraColumn {
    pub name: String,
    /// STRING when left out.
    #[serde(rename = "type", default)]
    pub ty: ExtraType,
    /// The JSON key to read; defaults to `name`.
    #[serde(default)]
    pub from: Option<String>,
    /// The Pod's label to read instead of the body (not with `from`).
    #[serde(default)]
    pub label: Option<String>,
}

impl ExtraColumn {
    /// The JSON key this column is read from.
    pub fn key(&self) -> &str {
        self.from.as_deref().unwrap_or(&self.name)
    }

    /// The body key to extract for this column: `None` for a label column,
    /// which is filled from the Pod's labels, never from the body.
    pub fn body_key(&self) -> Option<&str> {
        match self.label {
            Some(_) => None,
            None => Some(self.key()),
        }
    }
}

/// Types an extracted column can have (BigQuery's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExtraType {
    #[default]
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
}

impl ExtraType {
    /// The type's name in BigQuery (and in the configuration).
    pub fn bigquery_name(self) -> &'static str {
        bigquery_type(self)
    }
}

/// The `columns` array's checks that serde cannot make; keys are
/// `columns[<i>].<key>`, relative to the top level where `columns` is.
pub fn check_columns(columns: &[ExtraColumn]) -> Result<(), Invalid> {
    for (i, c) in columns.iter().enumerate() {
        if c.name.is_empty() {
            return Err(Invalid::new(
                format!("columns[{i}].name"),
                "must not be empty",
            ));
        }
        if columns[..i].iter().any(|o| o.name == c.name) {
            return Err(Invalid::new(
                format!("columns[{i}].name"),
                format!("{:?} is declared twice", c.name),
            ));
        }
        if c.label.is_some() && c.from.is_some() {
            return Err(Invalid::new(
                format!("columns[{i}].label"),
                "a column reads either a Pod label (label) or a body key (from), not both",
            ));
        }
        if c.label.as_deref() == Some("") {
            return Err(Invalid::new(
                format!("columns[{i}].label"),
                "must not be empty (the label's key, e.g. \"team\" or \"app.kubernetes.io/name\")",
            ));
        }
        if c.from.as_deref() == Some("") {
            return Err(Invalid::new(
                format!("columns[{i}].from"),
                format!(
                    "must not be empty (leave it out to read the key {:?})",
                    c.name
                ),
            ));
        }
    }
    Ok(())
}

/// The bundled schema of container log records.
pub const CONTAINER_LOG: &str = include_str!("../schemas/container_log.json");

/// One column in BigQuery's JSON schema format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default = "nullable")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn nullable() -> String {
    "NULLABLE".into()
}

/// A table schema: ordered columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub columns: Vec<Column>,
}

/// A schema that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("schema {origin}: {message}")]
pub struct SchemaError {
    origin: String,
    message: String,
}

impl TableSchema {
    /// The bundled `container_log` schema, or the file at `path`, plus `extra`.
    pub fn load(path: Option<&Path>, extra: &[ExtraColumn]) -> Result<Self, SchemaError> {
        let (origin, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|e| SchemaError {
                    origin: p.display().to_string(),
                    message: e.to_string(),
                })?,
            ),
            None => (
                "container_log (bundled)".to_string(),
                CONTAINER_LOG.to_string(),
            ),
        };
        let err = |message: String| SchemaError {
            origin: origin.clone(),
            message,
        };
        let mut columns: Vec<Column> = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "not a BigQuery JSON schema (an array of columns): {e}"
            ))
        })?;
        for x in extra {
            if columns.iter().any(|c| c.name == x.name) {
                continue;
            }
            columns.push(Column {
                name: x.name.clone(),
                ty: bigquery_type(x.ty).into(),
                mode: "NULLABLE".into(),
                description: Some(match &x.label {
                    Some(label) => format!("the Pod's label {label:?}"),
                    None => format!("extracted from the JSON body key {:?}", x.key()),
                }),
            });
        }
        let schema = Self { columns };
        for c in &schema.columns {
            arrow_field(c).map_err(err)?;
        }
        Ok(schema)
    }

    /// The Arrow schema every batch has.
    pub fn arrow(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| arrow_field(c).expect("checked in load"))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The schema as BigQuery JSON.
    pub fn to_bigquery_json(&self) -> String {
        serde_json::to_string_pretty(&self.columns).expect("columns serialize")
    }
}

fn bigquery_type(t: ExtraType) -> &'static str {
    match t {
        ExtraType::String => "STRING",
        ExtraType::Integer => "INTEGER",
        ExtraType::Float => "FLOAT",
        ExtraType::Boolean => "BOOLEAN",
        ExtraType::Timestamp => "TIMESTAMP",
    }
}

/// Map a BigQuery column to an Arrow field. JSON columns are UTF-8 text
/// holding JSON, which DuckDB's `json` functions and BigQuery both read.
fn arrow_field(c: &Column) -> Result<Field, String> {
    let base = match c.ty.to_ascii_uppercase().as_str() {
        "STRING" | "JSON" => DataType::Utf8,
        "INTEGER" | "INT64" => DataType::Int64,
        "FLOAT" | "FLOAT64" => DataType::Float64,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        other => {
            return Err(format!(
                "column {:?}: type {other:?} is not supported (STRING, JSON, INTEGER, FLOAT, BOOLEAN, TIMESTAMP)",
                c.name
            ))
        }
    };
    Ok(match c.mode.to_ascii_uppercase().as_str() {
        "NULLABLE" => Field::new(&c.name, base, true),
        "REQUIRED" => Field::new(&c.name, base, false),
        "REPEATED" => Field::new(
            &c.name,
            DataType::List(Arc::new(Field::new("item", base, true))),
            false,
        ),
        other => {
            return Err(format!(
                "column {:?}: mode {other:?} is not NULLABLE, REQUIRED or REPEATED",
                c.name
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_schema_maps_to_arrow() {
        let s = TableSchema::load(None, &[]).expect("bundled schema loads");
        let a = s.arrow();
        assert_eq!(
            a.field_with_name("timestamp").expect("column").data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(matches!(
            a.field_with_name("flags").expect("column").data_type(),
            DataType::List(_)
        ));
        assert_eq!(
            a.field_with_name("offset").expect("column").data_type(),
            &DataType::Int64
        );
    }

    #[test]
    fn extra_columns_are_appended() {
        let extra = [ExtraColumn {
            name: "status".into(),
            ty: ExtraType::Integer,
            from: None,
            label: None,
        }];
        let s = TableSchema::load(None, &extra).expect("loads");
        assert_eq!(s.columns.last().map(|c| c.ty.as_str()), Some("INTEGER"));
    }

    fn columns(toml_text: &str) -> Vec<ExtraColumn> {
        #[derive(Deserialize)]
        struct Top {
            columns: Vec<ExtraColumn>,
        }
        toml::from_str::<Top>(toml_text).expect("columns").columns
    }

    #[test]
    fn a_label_column_is_a_string_read_from_the_pod_not_the_body() {
        let c = columns("[[columns]]\nname = \"team\"\nlabel = \"team\"\n");
        assert_eq!(check_columns(&c), Ok(()));
        assert_eq!(c[0].ty, ExtraType::String, "type defaults to STRING");
        assert_eq!(c[0].body_key(), None);
        let s = TableSchema::load(None, &c).expect("loads");
        let team = s.columns.last().expect("appended");
        assert_eq!((team.name.as_str(), team.ty.as_str()), ("team", "STRING"));
        assert_eq!(
            team.description.as_deref(),
            Some("the Pod's label \"team\"")
        );
        let c = columns("[[columns]]\nname = \"status\"\ntype = \"INTEGER\"\n");
        assert_eq!(c[0].body_key(), Some("status"));
    }

    #[test]
    fn label_and_from_exclude_each_other() {
        let c = columns(
            "[[columns]]\nname = \"status\"\n\n[[columns]]\nname = \"team\"\nlabel = \"team\"\nfrom = \"team\"\n",
        );
        let e = check_columns(&c).expect_err("both");
        assert_eq!(e.key, "columns[1].label");
        assert!(e.message.contains("not both"), "{e}");
        let c = columns("[[columns]]\nname = \"team\"\nlabel = \"\"\n");
        assert_eq!(
            check_columns(&c).expect_err("empty").key,
            "columns[0].label"
        );
    }
}
