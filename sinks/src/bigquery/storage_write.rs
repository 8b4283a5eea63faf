//! The Storage Write API with Arrow rows: each batch's Arrow IPC is sent as
//! it is (`AppendRowsRequest.arrow_rows`), with no JSON or protobuf
//! re-encoding, to the table's `_default` stream.
//!
//! The `_default` stream commits each append at once and has no offsets, so
//! delivery is at-least-once: a retried append whose first attempt did land
//! is written twice (use `api = "insert_all"` for insertId de-duplication).
//! A failed append writes nothing: rows that BigQuery names in
//! `row_errors` are rejected (dead-lettered) and the others sent again. An
//! append refused as invalid without naming rows is not split up to find a
//! culprit: a cause that is the table's (a schema changed under the stream)
//! would send every row to the dead letter one by one. It is a permanent
//! error instead: retried, and the sink reports itself unhealthy.

use std::time::Duration;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{
    write_message, DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions,
};
use arrow::record_batch::RecordBatch;
use googleapis_tonic_google_cloud_bigquery_storage_v1::google::cloud::bigquery::storage::v1 as storage;
use storage::append_rows_request::{ArrowData, Rows};
use storage::append_rows_response::Response;
use storage::big_query_write_client::BigQueryWriteClient;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::Code;

use super::auth::GcpAuth;
use super::error::from_grpc;
use super::Sent;
use crate::{RejectedRow, SinkBatch, SinkError};

/// Google's Storage API endpoint.
pub(super) const GOOGLE_ENDPOINT: &str = "https://bigquerystorage.googleapis.com";

/// Appends Arrow batches to `_default` streams.
pub struct StorageWriter {
    client: BigQueryWriteClient<Channel>,
    auth: GcpAuth,
    /// The IPC schema message every append carries.
    schema_ipc: Vec<u8>,
    max_request_bytes: usize,
}

impl StorageWriter {
    /// A writer for batches of `schema`. Connects lazily: nothing is sent
    /// until the first append.
    pub fn new(
        sink: &str,
        endpoint: &str,
        auth: GcpAuth,
        schema: &SchemaRef,
        request_timeout: Duration,
        max_request_bytes: usize,
    ) -> Result<Self, SinkError> {
        let config = |reason: String| SinkError::Config {
            sink: sink.to_string(),
            key: "storage_endpoint".into(),
            reason,
        };
        let mut ep = Channel::from_shared(endpoint.to_string())
            .map_err(|e| config(format!("{endpoint:?} is not a URL: {e}")))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(request_timeout);
        if endpoint.starts_with("https://") {
            ep = ep
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| config(format!("TLS: {e}")))?;
        }
        let client = BigQueryWriteClient::new(ep.connect_lazy())
            .max_encoding_message_size(32 << 20)
            .max_decoding_message_size(32 << 20);
        let (generator, options) = (IpcDataGenerator::default(), IpcWriteOptions::default());
        let mut tracker = DictionaryTracker::new(false);
        let mut schema_ipc = Vec::new();
        write_message(
            &mut schema_ipc,
            generator.schema_to_bytes_with_dictionary_tracker(schema, &mut tracker, &options),
            &options,
        )
        .map_err(|e| config(format!("cannot encode the Arrow schema: {e}")))?;
        Ok(Self {
            client,
            auth,
            schema_ipc,
            max_request_bytes,
        })
    }

    /// Append rows `rows` of `batch` to `stream`
    /// (`projects/P/datasets/D/tables/T/streams/_default`).
    pub async fn send(&self, stream: &str, batch: &SinkBatch, rows: &[usize]) -> Sent {
        let mut sent = Sent::default();
        let mut work: Vec<Vec<usize>> = vec![rows.to_vec()];
        while let Some(item) = work.pop() {
            // Selecting and encoding is CPU work: off the async threads.
            let records = batch.records.clone();
            let rows = item.clone();
            let encoded =
                tokio::task::spawn_blocking(move || select(&records, &rows).map(|r| encode(&r)))
                    .await;
            let ipc = match encoded {
                Ok(Ok(Ok(b))) => b,
                Ok(Ok(Err(e))) => {
                    reject_all(&mut sent, &item, &format!("arrow IPC encoding failed: {e}"));
                    continue;
                }
                Ok(Err(e)) => {
                    sent.error = Some(SinkError::Task(format!("selecting rows: {e}")));
                    return sent;
                }
                Err(e) => {
                    sent.error = Some(SinkError::Task(format!("encoding rows: {e}")));
                    return sent;
                }
            };
            if ipc.len() + self.schema_ipc.len() > self.max_request_bytes {
                if item.len() == 1 {
                    reject_all(&mut sent, &item, &format!(
                        "row is {} bytes as Arrow IPC: larger than an append request may be (max_request_bytes)",
                        ipc.len()
                    ));
                } else {
                    split(&mut work, item);
                }
                continue;
            }
            match self.append(stream, ipc).await {
                Ok(Appended::Done) => sent.written.extend(item),
                Ok(Appended::RowErrors(errors)) => {
                    // Nothing of this append was written: reject the named
                    // rows, send the rest again.
                    if !errors
                        .iter()
                        .any(|(i, _)| usize::try_from(*i).is_ok_and(|i| i < item.len()))
                    {
                        sent.error = Some(SinkError::BigQuery {
                            message: format!(
                                "append_rows: row errors name no row of the append ({})",
                                errors.first().map_or("", |e| e.1.as_str())
                            ),
                            permanent: false,
                        });
                        return sent;
                    }
                    let mut rest = Vec::new();
                    for (i, row) in item.iter().enumerate() {
                        match errors.iter().find(|(index, _)| *index == i as i64) {
                            Some((_, reason)) => sent.rejected.push(RejectedRow {
                                row: *row,
                                reason: reason.clone(),
                            }),
                            None => rest.push(*row),
                        }
                    }
                    if !rest.is_empty() {
                        work.push(rest);
                    }
                }
                Ok(Appended::TableMissing(e)) => {
                    sent.table_missing = true;
                    sent.error = Some(e);
                    return sent;
                }
                Err(e) => {
                    sent.error = Some(e);
                    return sent;
                }
            }
        }
        sent
    }

    async fn append(&self, stream: &str, batch_ipc: Vec<u8>) -> Result<Appended, SinkError> {
        let request = storage::AppendRowsRequest {
            write_stream: stream.to_string(),
            rows: Some(Rows::ArrowRows(ArrowData {
                writer_schema: Some(storage::ArrowSchema {
                    serialized_schema: self.schema_ipc.clone(),
                }),
                rows: Some(storage::ArrowRecordBatch {
                    serialized_record_batch: batch_ipc,
                    ..Default::default()
                }),
            })),
            ..Default::default()
        };
        let token = self
            .auth
            .token()
            .await
            .map_err(|e| super::error::from_rest("getting an access token", e))?;
        let mut call = tonic::Request::new(futures::stream::iter(vec![request]));
        let metadata = call.metadata_mut();
        let header = |v: String| {
            v.parse().map_err(|_| SinkError::BigQuery {
                message: "the stream name or token is not a valid gRPC header".into(),
                permanent: true,
            })
        };
        metadata.insert("authorization", header(format!("Bearer {token}"))?);
        metadata.insert(
            "x-goog-request-params",
            header(format!("write_stream={}", stream.replace('/', "%2F")))?,
        );
        let mut client = self.client.clone();
        let answer = match client.append_rows(call).await {
            Ok(r) => r.into_inner().message().await,
            Err(status) => Err(status),
        };
        match answer {
            Ok(Some(response)) => {
                if !response.row_errors.is_empty() {
                    return Ok(Appended::RowErrors(
                        response
                            .row_errors
                            .iter()
                            .map(|e| (e.index, format!("{} (code {})", e.message, e.code)))
                            .collect(),
                    ));
                }
                match response.response {
                    Some(Response::AppendResult(_)) => Ok(Appended::Done),
                    Some(Response::Error(status)) => {
                        failed(tonic::Status::new(Code::from(status.code), status.message))
                    }
                    None => Err(SinkError::BigQuery {
                        message: "append_rows: an empty response".into(),
                        permanent: false,
                    }),
                }
            }
            Ok(None) => Err(SinkError::BigQuery {
                message: "append_rows: the stream closed without a response".into(),
                permanent: false,
            }),
            Err(status) => failed(status),
        }
    }
}

/// The outcome of one append that BigQuery answered.
enum Appended {
    Done,
    /// (index in the append, reason) of rows that can never be written.
    RowErrors(Vec<(i64, String)>),
    /// The table is gone (deleted while running).
    TableMissing(SinkError),
}

fn failed(status: tonic::Status) -> Result<Appended, SinkError> {
    let error = from_grpc("append_rows", &status);
    match status.code() {
        Code::NotFound => Ok(Appended::TableMissing(error)),
        _ => Err(error),
    }
}

fn select(records: &RecordBatch, rows: &[usize]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let in_order =
        rows.len() == records.num_rows() && rows.iter().enumerate().all(|(i, r)| i == *r);
    if in_order {
        return Ok(records.clone());
    }
    let indices = UInt32Array::from(rows.iter().map(|r| *r as u32).collect::<Vec<_>>());
    take_record_batch(records, &indices)
}

/// One record batch message. Sliced and taken batches are written with
/// their own buffers only.
fn encode(records: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let (generator, options) = (IpcDataGenerator::default(), IpcWriteOptions::default());
    let mut tracker = DictionaryTracker::new(false);
    let (_dictionaries, message) = generator.encode(
        records,
        &mut tracker,
        &options,
        &mut IpcWriteContext::default(),
    )?;
    let mut out = Vec::new();
    write_message(&mut out, message, &options)?;
    Ok(out)
}

fn split(work: &mut Vec<Vec<usize>>, mut item: Vec<usize>) {
    let second = item.split_off(item.len() / 2);
    work.push(second);
    work.push(item);
}

fn reject_all(sent: &mut Sent, rows: &[usize], reason: &str) {
    sent.rejected.extend(rows.iter().map(|&row| RejectedRow {
        row,
        reason: reason.to_string(),
    }));
}
