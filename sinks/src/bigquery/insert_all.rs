//! `tabledata.insertAll`: rows as JSON, each with an `insertId` derived from
//! where it was read, so BigQuery's best-effort de-duplication (about a
//! minute) drops the copies a retry sends.
//!
//! Requests keep to BigQuery's limits (at most 50,000 rows and 10 MB of
//! JSON each: https://cloud.google.com/bigquery/quotas#streaming_inserts) by
//! splitting greedily on `max_rows_per_request` and `max_request_bytes`.
//! `skipInvalidRows` is always set: a row that does not fit the table is
//! refused alone (reason `invalid`) and the others are written.

use gcp_bigquery_client::model::table_data_insert_all_request::TableDataInsertAllRequest;
use gcp_bigquery_client::model::table_data_insert_all_request_rows::TableDataInsertAllRequestRows;
use gcp_bigquery_client::Client;

use super::error::{from_rest, http_status};
use super::rows::RowEncoder;
use super::{insert_id, BigQueryConfig, Sent};
use crate::{RejectedRow, SinkBatch, SinkError};

/// Insert rows `rows` of `batch` into `table`.
pub async fn send(
    client: &Client,
    cfg: &BigQueryConfig,
    table: &str,
    batch: &SinkBatch,
    rows: &[usize],
) -> Sent {
    let encoder = RowEncoder::new(&batch.records);
    let mut sent = Sent::default();
    let mut chunk: Vec<(usize, TableDataInsertAllRequestRows)> = Vec::new();
    // The request's own JSON around the rows.
    const ENVELOPE: usize = 96;
    let mut chunk_bytes = ENVELOPE;
    for &row in rows {
        let json = encoder.row(row);
        let id = insert_id(batch, row);
        // The row's share of the request body: its JSON, its id and the
        // `{"insertId":…,"json":…}` around them.
        let bytes = serde_json::to_string(&json).map_or(0, |s| s.len()) + id.len() + 24;
        if bytes + ENVELOPE > cfg.max_request_bytes {
            sent.rejected.push(RejectedRow {
                row,
                reason: format!(
                    "row is {bytes} bytes as JSON: larger than an insertAll request may be (max_request_bytes = {})",
                    cfg.max_request_bytes
                ),
            });
            continue;
        }
        if !chunk.is_empty()
            && (chunk.len() >= cfg.max_rows_per_request
                || chunk_bytes + bytes > cfg.max_request_bytes)
        {
            if let Err(e) = request(client, cfg, table, std::mem::take(&mut chunk), &mut sent).await
            {
                sent.error = Some(e);
                return sent;
            }
            chunk_bytes = ENVELOPE;
        }
        chunk_bytes += bytes;
        chunk.push((
            row,
            TableDataInsertAllRequestRows {
                insert_id: Some(id),
                json,
            },
        ));
    }
    if !chunk.is_empty() {
        if let Err(e) = request(client, cfg, table, chunk, &mut sent).await {
            sent.error = Some(e);
        }
    }
    sent
}

/// One insertAll request. Rows BigQuery wrote go to `sent.written`, rows it
/// refused as invalid to `sent.rejected`; a row refused for any other reason
/// (`stopped`, `backendError`, `timeout`), or an error BigQuery does not
/// tie to a row, makes the request an error, so the batch is offered again
/// (the insertIds make the copies harmless).
async fn request(
    client: &Client,
    cfg: &BigQueryConfig,
    table: &str,
    chunk: Vec<(usize, TableDataInsertAllRequestRows)>,
    sent: &mut Sent,
) -> Result<(), SinkError> {
    let (rows, bodies): (Vec<usize>, Vec<_>) = chunk.into_iter().unzip();
    let mut req = TableDataInsertAllRequest::new();
    req.skip_invalid_rows();
    req.add_rows(bodies)
        .map_err(|e| from_rest("building an insertAll request", e))?;
    let resp = match client
        .tabledata()
        .insert_all(&cfg.project, &cfg.dataset, table, req)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            sent.table_missing = http_status(&e) == Some(404);
            return Err(from_rest(
                &format!("insertAll into {}.{}.{table}", cfg.project, cfg.dataset),
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
