//! Making sure the destination table exists and can take our rows.
//!
//! With `create_table`, a missing dataset and table are created from the
//! schema, partitioned by day on the timestamp column and clustered. An
//! existing table is compared with the schema: a column it lacks is an error
//! (or, with `update_schema`, added as NULLABLE), a REQUIRED column we do not
//! send is an error, and a type that differs is a warning for insertAll
//! (BigQuery converts JSON values, row by row: rows that do not convert go
//! to the dead letter) and an error for the Storage Write API (its Arrow
//! schema must match).

use gcp_bigquery_client::model::clustering::Clustering;
use gcp_bigquery_client::model::dataset::Dataset;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;
use gcp_bigquery_client::Client;

use super::error::{from_rest, http_status};
use super::{Api, Settings};
use crate::SinkError;

/// Create (if allowed) and check the table `table` of the sink's dataset.
pub async fn ensure(
    client: &Client,
    cfg: &Settings,
    table: &str,
    fields: &[TableFieldSchema],
) -> Result<(), SinkError> {
    let (p, d) = (cfg.keys.project.as_str(), cfg.keys.dataset.as_str());
    let live = match client.table().get(p, d, table, None).await {
        Ok(t) => t,
        Err(e) if http_status(&e) == Some(404) && cfg.keys.create_table => {
            create(client, cfg, table, fields).await?;
            return Ok(());
        }
        Err(e) if http_status(&e) == Some(404) => {
            return Err(SinkError::BigQuery {
                message: format!(
                    "table {p}.{d}.{table} does not exist: create it (tidewater schema --format bigquery prints its schema) or set sinks.{}.create_table = true",
                    cfg.name
                ),
                permanent: true,
            })
        }
        Err(e) => return Err(from_rest(&format!("reading table {p}.{d}.{table}"), e)),
    };
    let live_fields = live.schema.fields.clone().unwrap_or_default();
    let diff = compare(fields, &live_fields, cfg.api);
    for w in &diff.warnings {
        tracing::warn!(sink = %cfg.name, table = %format!("{p}.{d}.{table}"), "{w}");
    }
    if !diff.missing.is_empty() && cfg.keys.update_schema && diff.errors.is_empty() {
        let mut merged = live_fields;
        for f in &diff.missing {
            // BigQuery adds NULLABLE and REPEATED columns, never REQUIRED ones.
            let mut added = f.clone();
            if added.mode.as_deref() == Some("REQUIRED") {
                added.mode = Some("NULLABLE".into());
            }
            merged.push(added);
        }
        let mut patch = Table {
            table_reference: live.table_reference.clone(),
            ..Default::default()
        };
        patch.schema = TableSchema::new(merged);
        client
            .table()
            .patch(p, d, table, patch)
            .await
            .map_err(|e| from_rest(&format!("adding columns to {p}.{d}.{table}"), e))?;
        let names: Vec<&str> = diff.missing.iter().map(|f| f.name.as_str()).collect();
        tracing::info!(sink = %cfg.name, table = %format!("{p}.{d}.{table}"), columns = ?names, "added the schema's missing columns (update_schema)");
        return Ok(());
    }
    let mut errors = diff.errors;
    if !diff.missing.is_empty() {
        let names: Vec<&str> = diff.missing.iter().map(|f| f.name.as_str()).collect();
        errors.insert(
            0,
            format!(
                "lacks the columns {} (set sinks.{}.update_schema = true to add them as NULLABLE)",
                names.join(", "),
                cfg.name
            ),
        );
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(SinkError::BigQuery {
        message: format!(
            "table {p}.{d}.{table} does not fit the schema: {}",
            errors.join("; ")
        ),
        permanent: true,
    })
}

async fn create(
    client: &Client,
    cfg: &Settings,
    table: &str,
    fields: &[TableFieldSchema],
) -> Result<(), SinkError> {
    let (p, d) = (cfg.keys.project.as_str(), cfg.keys.dataset.as_str());
    // Read first: creating needs a right on the project
    // (bigquery.datasets.create) that an account with dataEditor on an
    // existing dataset does not have, and should not need.
    let exists = match client.dataset().get(p, d).await {
        Ok(_) => true,
        Err(e) if http_status(&e) == Some(404) => false,
        Err(e) => return Err(from_rest(&format!("reading dataset {p}.{d}"), e)),
    };
    if !exists {
        match client
            .dataset()
            .create(Dataset::new(p, d).location(&cfg.keys.location))
            .await
        {
            Ok(_) => {
                tracing::info!(sink = %cfg.name, dataset = %format!("{p}.{d}"), "created the dataset")
            }
            Err(e) if http_status(&e) == Some(409) => {}
            Err(e) => return Err(from_rest(&format!("creating dataset {p}.{d}"), e)),
        }
    }
    let mut definition = Table::new(p, d, table, TableSchema::new(fields.to_vec()));
    if let Some(field) = cfg.keys.partition_field() {
        definition = definition.time_partitioning(TimePartitioning::per_day().field(field));
    }
    if !cfg.keys.clustering.is_empty() {
        definition = definition.clustering(Clustering {
            fields: Some(cfg.keys.clustering.clone()),
        });
    }
    match client.table().create(definition).await {
        Ok(_) => {
            tracing::info!(sink = %cfg.name, table = %format!("{p}.{d}.{table}"), partition = ?cfg.keys.partition_field(), clustering = ?cfg.keys.clustering, "created the table");
            Ok(())
        }
        // Another sidecar created it meanwhile.
        Err(e) if http_status(&e) == Some(409) => Ok(()),
        Err(e) => Err(from_rest(&format!("creating table {p}.{d}.{table}"), e)),
    }
}

/// How a live table differs from the schema.
#[derive(Debug, Default)]
struct Diff {
    /// Our columns the table lacks.
    missing: Vec<TableFieldSchema>,
    /// Differences that make every insert fail.
    errors: Vec<String>,
    /// Differences that only some rows may trip over.
    warnings: Vec<String>,
}

fn compare(ours: &[TableFieldSchema], live: &[TableFieldSchema], api: Api) -> Diff {
    let mut diff = Diff::default();
    for f in ours {
        match live.iter().find(|l| l.name.eq_ignore_ascii_case(&f.name)) {
            None => diff.missing.push(f.clone()),
            Some(l) => {
                let (a, b) = (type_name(&f.r#type), type_name(&l.r#type));
                if a != b {
                    let text = format!("column {} is {b} in the table, {a} in the schema", f.name);
                    match api {
                        Api::InsertAll => diff.warnings.push(format!(
                            "{text}: rows whose value does not convert go to the dead letter"
                        )),
                        Api::StorageWrite => diff.errors.push(text),
                    }
                }
                let repeated = |m: &Option<String>| m.as_deref() == Some("REPEATED");
                if repeated(&f.mode) != repeated(&l.mode) {
                    diff.errors.push(format!(
                        "column {} is {} in the table, {} in the schema",
                        f.name,
                        l.mode.as_deref().unwrap_or("NULLABLE"),
                        f.mode.as_deref().unwrap_or("NULLABLE")
                    ));
                }
            }
        }
    }
    for l in live {
        let ours_has = ours.iter().any(|f| f.name.eq_ignore_ascii_case(&l.name));
        if !ours_has && l.mode.as_deref() == Some("REQUIRED") {
            diff.errors.push(format!(
                "the table's REQUIRED column {} is not in the schema",
                l.name
            ));
        }
    }
    diff
}

/// Standard SQL's name for a legacy type name.
fn type_name(t: &FieldType) -> &'static str {
    match t {
        FieldType::String => "STRING",
        FieldType::Bytes => "BYTES",
        FieldType::Integer | FieldType::Int64 => "INT64",
        FieldType::Float | FieldType::Float64 => "FLOAT64",
        FieldType::Numeric => "NUMERIC",
        FieldType::Bignumeric => "BIGNUMERIC",
        FieldType::Boolean | FieldType::Bool => "BOOL",
        FieldType::Timestamp => "TIMESTAMP",
        FieldType::Date => "DATE",
        FieldType::Time => "TIME",
        FieldType::Datetime => "DATETIME",
        FieldType::Record | FieldType::Struct => "STRUCT",
        FieldType::Geography => "GEOGRAPHY",
        FieldType::Json => "JSON",
        FieldType::Interval => "INTERVAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, ty: FieldType, mode: &str) -> TableFieldSchema {
        let mut f = TableFieldSchema::new(name, ty);
        f.mode = Some(mode.into());
        f
    }

    #[test]
    fn a_differing_table_is_described_column_by_column() {
        let ours = vec![
            field("timestamp", FieldType::Timestamp, "REQUIRED"),
            field("status", FieldType::Integer, "NULLABLE"),
            field("flags", FieldType::String, "REPEATED"),
            field("req_id", FieldType::String, "NULLABLE"),
        ];
        let live = vec![
            field("timestamp", FieldType::Timestamp, "REQUIRED"),
            field("status", FieldType::String, "NULLABLE"),
            field("flags", FieldType::String, "NULLABLE"),
            field("tenant", FieldType::String, "REQUIRED"),
        ];
        let d = compare(&ours, &live, Api::InsertAll);
        assert_eq!(
            d.missing
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["req_id"]
        );
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("status is STRING in the table, INT64"));
        assert_eq!(d.errors.len(), 2, "{:?}", d.errors);
        assert!(d.errors[0].contains("flags is NULLABLE in the table, REPEATED"));
        assert!(d.errors[1].contains("REQUIRED column tenant"));
        let d = compare(&ours, &live, Api::StorageWrite);
        assert_eq!(d.errors.len(), 3, "{:?}", d.errors);
        // Legacy and standard names are the same type.
        let d = compare(
            &[field("n", FieldType::Integer, "NULLABLE")],
            &[field("n", FieldType::Int64, "NULLABLE")],
            Api::StorageWrite,
        );
        assert!(d.errors.is_empty() && d.warnings.is_empty() && d.missing.is_empty());
    }
}
