//! `tabledata.insertAll`: rows as JSON, each with an `insertId` derived from
//! where it was read, so BigQuery's best-effort de-duplication (about a
//! minute) drops the copies a retry sends.
//!
//! Requests keep to BigQuery's limits (at most 50,000 rows and 10 MB of
//! JSON each: https://cloud.google.com/bigquery/quotas#streaming_inserts) by
//! splitting greedily on `max_rows_per_request` and `max_request_bytes`.
//! `skipInvalidRows` is always set: a row that does not fit the table is
//! refused alone (reason `invalid`) and the others are written.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use gcp_bigquery_client::model::table_data_insert_all_request::TableDataInsertAllRequestGzipped;
use gcp_bigquery_client::Client;

use super::error::{from_rest, http_status};
use super::rows::RowEncoder;
use super::{write_insert_id, Sent, Settings};
use crate::{RejectedRow, SinkBatch, SinkError};

const HEAD: &[u8] = br#"{"skipInvalidRows":true,"ignoreUnknownValues":false,"rows":["#;
const TAIL: &[u8] = b"]}";

/// One request: the JSON body (gzipped once complete) and the rows in it.
struct Chunk {
    body: Vec<u8>,
    rows: Vec<usize>,
}

impl Chunk {
    fn new() -> Self {
        Self {
            body: HEAD.to_vec(),
            rows: Vec::new(),
        }
    }

    /// The body's size once closed.
    fn len(&self) -> usize {
        self.body.len() + TAIL.len()
    }
}

/// Insert rows `rows` of `batch` into `table`. Each request's body is
/// encoded and gzipped on the blocking pool (up to 9 MB of JSON is CPU work
/// the async threads must not wait for), one request at a time.
pub async fn send(
    client: &Client,
    cfg: &Settings,
    table: &str,
    batch: &SinkBatch,
    rows: &[usize],
) -> Sent {
    let mut sent = Sent::default();
    let limits = (cfg.keys.max_rows_per_request, cfg.keys.max_request_bytes());
    let mut rest: Vec<usize> = rows.to_vec();
    while !rest.is_empty() {
        let batch = batch.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let next = next_request(&batch, &rest, limits);
            (next, rest)
        })
        .await;
        let next = match encoded {
            Ok(((request, taken, rejected), mut left)) => {
                sent.rejected.extend(rejected);
                left.drain(..taken);
                rest = left;
                request
            }
            Err(e) => {
                sent.error = Some(SinkError::Task(format!("encoding insertAll rows: {e}")));
                return sent;
            }
        };
        match next {
            Ok(Some(chunk)) => {
                if let Err(e) = request(client, cfg, table, chunk, &mut sent).await {
                    sent.error = Some(e);
                    return sent;
                }
            }
            Ok(None) => {}
            Err(e) => {
                sent.error = Some(e);
                return sent;
            }
        }
    }
    sent
}

/// The next request from the front of `rows`: its gzipped body and rows
/// (`None` when every row taken was too large alone), how many of `rows` it
/// took, and the rows refused for their size.
fn next_request(
    batch: &SinkBatch,
    rows: &[usize],
    (max_rows, max_bytes): (usize, usize),
) -> (Result<Option<Chunk>, SinkError>, usize, Vec<RejectedRow>) {
    let encoder = RowEncoder::new(&batch.records);
    let mut chunk = Chunk::new();
    let mut rejected = Vec::new();
    let mut entry = Vec::new();
    let mut taken = 0;
    for &row in rows {
        // `{"insertId":…,"json":{…}}`, written once: its size decides the split.
        entry.clear();
        entry.extend_from_slice(br#"{"insertId":"#);
        write_insert_id(batch, row, &mut entry);
        entry.extend_from_slice(br#","json":"#);
        encoder.write_row(row, &mut entry);
        entry.push(b'}');
        if HEAD.len() + entry.len() + TAIL.len() > max_bytes {
            rejected.push(RejectedRow {
                row,
                reason: format!(
                    "row is {} bytes as JSON: larger than an insertAll request may be (max_request_bytes = {max_bytes})",
                    entry.len(),
                ),
            });
            taken += 1;
            continue;
        }
        if !chunk.rows.is_empty()
            && (chunk.rows.len() >= max_rows || chunk.len() + 1 + entry.len() > max_bytes)
        {
            break;
        }
        if !chunk.rows.is_empty() {
            chunk.body.push(b',');
        }
        chunk.body.extend_from_slice(&entry);
        chunk.rows.push(row);
        taken += 1;
    }
    if chunk.rows.is_empty() {
        return (Ok(None), taken, rejected);
    }
    chunk.body.extend_from_slice(TAIL);
    let gzipped = gzip(&chunk.body)
        .map(|body| {
            Some(Chunk {
                body,
                rows: chunk.rows,
            })
        })
        .map_err(|e| SinkError::Task(format!("gzip: {e}")));
    (gzipped, taken, rejected)
}

/// The body gzipped at the fastest level: on a 2-core sidecar the CPU matters
/// more than the last few percent of bytes (BENCHMARKS.md).
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// One insertAll request. Rows BigQuery wrote go to `sent.written`, rows it
/// refused as invalid to `sent.rejected`; a row refused for any other reason
/// (`stopped`, `backendError`, `timeout`), or an error BigQuery does not
/// tie to a row, makes the request an error, so the batch is offered again
/// (the insertIds make the copies harmless).
async fn request(
    client: &Client,
    cfg: &Settings,
    table: &str,
    chunk: Chunk,
    sent: &mut Sent,
) -> Result<(), SinkError> {
    let (body, rows) = (chunk.body, chunk.rows);
    let resp = match client
        .tabledata()
        .insert_all_gzipped(
            &cfg.keys.project,
            &cfg.keys.dataset,
            table,
            TableDataInsertAllRequestGzipped::new(body),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            sent.table_missing = http_status(&e) == Some(404);
            return Err(from_rest(
                &format!(
                    "insertAll into {}.{}.{table}",
                    cfg.keys.project, cfg.keys.dataset
                ),
                e,
            ));
        }
    };
    let mut refused: Vec<Option<(bool, String)>> = vec![None; rows.len()];
    for e in resp.insert_errors.unwrap_or_default() {
        let slot = e
            .index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| refused.get_mut(i));
        let Some(slot) = slot else {
            return Err(SinkError::BigQuery {
                message: format!("insertAll: an insert error for no row of the request: {e}"),
                permanent: false,
            });
        };
        let errors = e.errors.unwrap_or_default();
        let invalid = errors
            .iter()
            .any(|p| p.reason.as_deref() == Some("invalid"));
        let text = errors
            .iter()
            .map(|p| {
                format!(
                    "{}: {}{}",
                    p.reason.as_deref().unwrap_or("error"),
                    p.message.as_deref().unwrap_or(""),
                    p.location
                        .as_deref()
                        .map(|l| format!(" (at {l})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        *slot = Some((invalid, text));
    }
    let mut not_written = Vec::new();
    for (row, refusal) in rows.into_iter().zip(refused) {
        match refusal {
            None => sent.written.push(row),
            Some((true, reason)) => sent.rejected.push(RejectedRow { row, reason }),
            Some((false, reason)) => not_written.push(reason),
        }
    }
    match not_written.first() {
        None => Ok(()),
        Some(reason) => Err(SinkError::BigQuery {
            message: format!(
                "insertAll: {} rows were not written ({reason})",
                not_written.len()
            ),
            permanent: false,
        }),
    }
}
