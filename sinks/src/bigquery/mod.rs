//! The BigQuery sink: rows streamed into a (day-partitioned, clustered)
//! table, through `tabledata.insertAll` (default: every row carries an
//! `insertId` from its source position, so BigQuery drops the copies a retry
//! sends) or the Storage Write API (Arrow IPC as it is, the cheapest path).
//!
//! Delivery: a batch is answered `Delivered` only when every row is in the
//! table, or `Rejected` with exactly the rows BigQuery refused as invalid
//! (they go to the dead letter) once every other row is in. Anything else is
//! `Retry`. Rows of a batch that are already in are remembered, so a batch
//! offered again sends only what is missing.

mod auth;
mod config;
mod error;
mod exactly_once;
mod insert_all;
mod ledger;
mod rows;
mod storage_write;
mod table;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::Client;

use crate::{Delivery, HealthState, RejectedRow, Sink, SinkBatch, SinkError};
use auth::GcpAuth;
pub use config::BigQuerySinkConfig;
use exactly_once::ExactlyOnce;
use storage_write::StorageWriter;
pub use storage_write::KILL_AFTER_APPENDS;

/// Google's REST endpoint.
const GOOGLE_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// BigQuery's limits per insertAll request.
pub const MAX_ROWS_PER_REQUEST: usize = 50_000;
/// BigQuery refuses requests over 10 MB.
pub const MAX_REQUEST_BYTES: usize = 10_000_000;

/// Which API carries the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `tabledata.insertAll` with insertIds: fewest duplicates.
    InsertAll,
    /// The Storage Write API's `_default` stream with Arrow rows: fastest
    /// and cheapest, at-least-once without de-duplication.
    StorageWrite,
}

/// A sink's checked keys, with what was resolved from them.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The sink's name (`[sinks.<name>]`), for messages.
    pub name: String,
    pub api: Api,
    /// `credentials` is relative to the base dir no more.
    pub keys: BigQuerySinkConfig,
    /// `delivery = "exactly_once"`: where its ledger is kept.
    pub exactly_once: Option<std::path::PathBuf>,
}

/// Tables remembered as created and checked, at most.
const MAX_READY_TABLES: usize = 1024;

/// What one send of some rows achieved.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Rows now in the table.
    written: Vec<usize>,
    /// Rows the table can never take.
    rejected: Vec<RejectedRow>,
    /// Why the remaining rows were not written.
    error: Option<SinkError>,
    /// The error says the table does not exist (deleted while running).
    table_missing: bool,
}

impl Sent {
    /// Add what `other` achieved for other rows.
    fn merge(&mut self, other: Sent) {
        self.written.extend(other.written);
        self.rejected.extend(other.rejected);
        self.table_missing |= other.table_missing;
        if other.error.is_some() {
            self.error = other.error;
        }
    }
}

/// Rows of a batch already settled, kept while the batch is retried.
struct Progress {
    settled: Vec<bool>,
    rejected: Vec<RejectedRow>,
}

/// Delivers batches to a BigQuery table.
pub struct BigQuerySink {
    cfg: Settings,
    client: Client,
    fields: Vec<TableFieldSchema>,
    template: TableTemplate,
    writer: Option<StorageWriter>,
    exactly_once: Option<ExactlyOnce>,
    /// Tables created or checked since start.
    ready: Mutex<HashSet<String>>,
    progress: Mutex<HashMap<String, Progress>>,
    health: HealthState,
}

impl BigQuerySink {
    /// Build the clients and, for a table name without placeholders, create
    /// and check the table now: a table that cannot take the rows stops the
    /// start with the reason. An unreachable BigQuery does not (the check is
    /// repeated before the first delivery).
    async fn connect(
        cfg: Settings,
        schema_json: &str,
        schema: &SchemaRef,
    ) -> Result<Self, SinkError> {
        let config_error = |key: &'static str, reason: String| SinkError::Config {
            sink: cfg.name.clone(),
            key: key.to_string(),
            reason,
        };
        let fields: Vec<TableFieldSchema> = serde_json::from_str(schema_json)
            .map_err(|e| config_error("schema", format!("not a BigQuery JSON schema: {e}")))?;
        let template = TableTemplate::parse(&cfg.keys.table, schema)
            .map_err(|reason| config_error("table", reason))?;
        let auth = match (&cfg.keys.credentials, &cfg.keys.endpoint) {
            (None, Some(_)) => GcpAuth::Static("emulator".into()),
            (credentials, _) => GcpAuth::google(&cfg.name, credentials.as_deref()).await?,
        };
        let http = reqwest012::Client::builder()
            .timeout(cfg.keys.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| config_error("endpoint", format!("cannot build an HTTP client: {e}")))?;
        let endpoint = cfg.keys.endpoint.as_deref().unwrap_or(GOOGLE_ENDPOINT);
        let client = gcp_bigquery_client::client_builder::ClientBuilder::new()
            .with_v2_base_url(format!("{}/bigquery/v2", endpoint.trim_end_matches('/')))
            .with_client(http)
            .build_from_authenticator(Arc::new(auth.clone()))
            .await
            .map_err(|e| config_error("endpoint", e.to_string()))?;
        let writer = match cfg.api {
            Api::InsertAll => None,
            Api::StorageWrite => Some(StorageWriter::new(
                &cfg.name,
                cfg.keys
                    .storage_endpoint
                    .as_deref()
                    .unwrap_or(storage_write::GOOGLE_ENDPOINT),
                auth,
                schema,
                cfg.keys.request_timeout,
                cfg.keys.max_request_bytes(),
            )?),
        };
        let exactly_once = match &cfg.exactly_once {
            Some(dir) => Some(ExactlyOnce::open(&cfg.name, dir, cfg.keys.concurrency)?),
            None => None,
        };
        let sink = Self {
            cfg,
            client,
            fields,
            template,
            writer,
            exactly_once,
            ready: Mutex::default(),
            progress: Mutex::default(),
            health: HealthState::default(),
        };
        if let Some(table) = sink.template.fixed() {
            match sink.ensure_table(table).await {
                Ok(()) => {}
                Err(e) if e.is_permanent() => return Err(e),
                Err(e) => {
                    tracing::warn!(sink = %sink.cfg.name, error = %e, "cannot reach BigQuery to check the table; will check before the first delivery");
                    sink.health.failed(&e);
                }
            }
        }
        Ok(sink)
    }

    /// `validate --connect`: read the table's definition.
    pub async fn probe(&self) -> Result<String, SinkError> {
        let Some(table) = self.template.fixed() else {
            return Ok(format!(
                "{}.{} (tables named per row: {})",
                self.cfg.keys.project, self.cfg.keys.dataset, self.cfg.keys.table
            ));
        };
        let t = self
            .client
            .table()
            .get(&self.cfg.keys.project, &self.cfg.keys.dataset, table, None)
            .await
            .map_err(|e| error::from_rest(&format!("reading table {table}"), e))?;
        Ok(format!(
            "{}.{}.{table}: {} columns, {} rows",
            self.cfg.keys.project,
            self.cfg.keys.dataset,
            t.schema.fields.as_ref().map_or(0, Vec::len),
            t.num_rows.as_deref().unwrap_or("?")
        ))
    }

    async fn ensure_table(&self, table: &str) -> Result<(), SinkError> {
        if lock(&self.ready).contains(table) {
            return Ok(());
        }
        table::ensure(&self.client, &self.cfg, table, &self.fields).await?;
        let mut ready = lock(&self.ready);
        if ready.len() >= MAX_READY_TABLES {
            // A templated name ({date}) makes new tables forever: forget the
            // old ones (a table seen again is checked again, one request).
            ready.clear();
        }
        ready.insert(table.to_string());
        Ok(())
    }

    async fn send(&self, table: &str, batch: &SinkBatch, rows: &[usize]) -> Sent {
        if let Err(e) = self.ensure_table(table).await {
            return Sent {
                error: Some(e),
                ..Sent::default()
            };
        }
        let table_path = format!(
            "projects/{}/datasets/{}/tables/{table}",
            self.cfg.keys.project, self.cfg.keys.dataset
        );
        let sent = match (&self.writer, &self.exactly_once) {
            (None, _) => insert_all::send(&self.client, &self.cfg, table, batch, rows).await,
            (Some(w), Some(once)) => once.send(w, &self.health, &table_path, batch, rows).await,
            (Some(w), None) => {
                w.send(&format!("{table_path}/streams/_default"), batch, rows)
                    .await
            }
        };
        if sent.table_missing {
            // Deleted while running: check (and with create_table, create)
            // it again before the next attempt.
            lock(&self.ready).remove(table);
        }
        sent
    }
}

#[async_trait]
impl Sink for BigQuerySink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn deliver(&self, batch: &SinkBatch) -> Delivery {
        let n = batch.records.num_rows();
        if n == 0 {
            return Delivery::Delivered;
        }
        let todo: Vec<usize> = match lock(&self.progress).get(&batch.id) {
            Some(p) => (0..n).filter(|r| !p.settled[*r]).collect(),
            None => (0..n).collect(),
        };
        let mut by_table: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        match self.template.fixed() {
            Some(table) => {
                by_table.insert(table.to_string(), todo);
            }
            None => {
                for row in todo {
                    by_table
                        .entry(self.template.render(&batch.records, row))
                        .or_default()
                        .push(row);
                }
            }
        }
        let mut failure = None;
        for (table, rows) in by_table {
            let sent = self.send(&table, batch, &rows).await;
            let mut progress = lock(&self.progress);
            let p = progress
                .entry(batch.id.clone())
                .or_insert_with(|| Progress {
                    settled: vec![false; n],
                    rejected: Vec::new(),
                });
            for r in &sent.written {
                p.settled[*r] = true;
            }
            for r in &sent.rejected {
                p.settled[r.row] = true;
            }
            p.rejected.extend(sent.rejected);
            if let Some(e) = sent.error {
                failure = Some(e);
                break;
            }
        }
        if let Some(e) = failure {
            self.health.failed(&e);
            return Delivery::Retry(e);
        }
        let rejected = lock(&self.progress)
            .remove(&batch.id)
            .map(|p| p.rejected)
            .unwrap_or_default();
        if let Some(f) = self.health.succeeded() {
            tracing::info!(sink = %self.cfg.name, failed_attempts = f.attempts, "sink recovered");
        }
        if rejected.is_empty() {
            Delivery::Delivered
        } else {
            Delivery::Rejected(rejected)
        }
    }

    fn health(&self) -> &HealthState {
        &self.health
    }

    fn wants_origins(&self) -> bool {
        true
    }

    /// Exactly-once: finalize the open streams, so the next start has
    /// nothing to resolve.
    async fn flush(&self) {
        if let (Some(w), Some(once)) = (&self.writer, &self.exactly_once) {
            once.finalize_all(w).await;
        }
    }

    fn checkpointed(&self, files: &[crate::CommittedFile]) {
        if let Some(once) = &self.exactly_once {
            once.checkpointed(files);
        }
    }
}

/// Append the `insertId` of row `row`, as a JSON string, to `out`: its
/// origin (file, offset, content hash), the same on every attempt and after
/// a restart; 50 characters at most (BigQuery allows 128). Hex digits, digits
/// and `-` only, so nothing needs escaping.
fn write_insert_id(batch: &SinkBatch, row: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = match batch.origins.get(row) {
        Some(o) => write!(out, "\"{:016x}-{}-{:016x}\"", o.file, o.offset, o.content),
        None => write!(out, "\"{}-{row}\"", batch.id),
    };
}

/// A table name with per-row placeholders.
#[derive(Debug)]
struct TableTemplate {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    /// A STRING column, by index.
    Column(usize),
    /// `YYYYMMDD` of this TIMESTAMP column, by index.
    Date(usize),
}

impl TableTemplate {
    fn parse(template: &str, schema: &arrow::datatypes::Schema) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{template:?}: an unclosed {{"))?;
            let name = &rest[open + 1..open + close];
            let part = if name == "date" {
                let ts = schema
                    .fields()
                    .iter()
                    .position(|f| {
                        f.name() == "timestamp"
                            && matches!(
                                f.data_type(),
                                DataType::Timestamp(TimeUnit::Microsecond, _)
                            )
                    })
                    .ok_or_else(|| "{date} needs the TIMESTAMP column \"timestamp\"".to_string())?;
                Part::Date(ts)
            } else {
                match schema.index_of(name) {
                    Ok(i) if schema.field(i).data_type() == &DataType::Utf8 => Part::Column(i),
                    Ok(_) => return Err(format!("{{{name}}} is not a STRING column")),
                    Err(_) => {
                        return Err(format!(
                            "{{{name}}} is neither {{date}} nor a column of the schema"
                        ))
                    }
                }
            };
            parts.push(part);
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("expected a table name".into());
        }
        Ok(Self { parts })
    }

    /// The name when it has no placeholders.
    fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    fn render(&self, records: &arrow::record_batch::RecordBatch, row: usize) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Column(i) => {
                    let a = records.column(*i).as_string::<i32>();
                    let value = if a.is_valid(row) {
                        a.value(row)
                    } else {
                        "none"
                    };
                    out.extend(value.chars().map(
                        |c| {
                            if c.is_ascii_alphanumeric() {
                                c
                            } else {
                                '_'
                            }
                        },
                    ));
                }
                Part::Date(i) => {
                    let a = records
                        .column(*i)
                        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                    let day = chrono::DateTime::from_timestamp_micros(a.value(row))
                        .map(|t| t.format("%Y%m%d").to_string())
                        .unwrap_or_else(|| "none".into());
                    out.push_str(&day);
                }
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    #[test]
    fn table_names_are_rendered_per_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("namespace", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_763_892_000_000_000, 0])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![Some("kube-system"), None])),
            ],
        )
        .unwrap();
        let t = TableTemplate::parse("logs_{namespace}_{date}", &schema).unwrap();
        assert_eq!(t.fixed(), None);
        assert_eq!(t.render(&batch, 0), "logs_kube_system_20251123");
        assert_eq!(t.render(&batch, 1), "logs_none_19700101");
        assert_eq!(
            TableTemplate::parse("container_log", &schema)
                .unwrap()
                .fixed(),
            Some("container_log")
        );
        for bad in ["logs_{pod}", "logs_{timestamp}", "logs_{namespace", ""] {
            assert!(TableTemplate::parse(bad, &schema).is_err(), "{bad}");
        }
    }
}
