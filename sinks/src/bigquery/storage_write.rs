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

/// The environment variable of a fault hook for tests: after this many
/// appends have landed, the process kills itself with SIGKILL as soon as
/// the answer arrives (so before any checkpoint can include the rows).
pub const KILL_AFTER_APPENDS: &str = "TIDEWATER_FAULT_KILL_AFTER_APPENDS";

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
            let Some((item, ipc)) = self.encode(batch, item, &mut work, &mut sent).await else {
                if sent.error.is_some() {
                    return sent;
                }
                continue;
            };
            match self.append(stream, ipc, None).await {
                Ok(Appended::Done) => sent.written.extend(item),
                Ok(Appended::RowErrors(errors)) => {
                    if let Err(e) = row_errors(&mut sent, &mut work, item, &errors) {
                        sent.error = Some(e);
                        return sent;
                    }
                }
                Ok(Appended::TableMissing(e)) => {
                    sent.table_missing = true;
                    sent.error = Some(e);
                    return sent;
                }
                Ok(Appended::Refused(e) | Appended::Misplaced(e)) | Err(e) => {
                    sent.error = Some(e);
                    return sent;
                }
            }
        }
        sent
    }

    /// Rows `item` of `batch` as Arrow IPC, when they fit a request. Rows
    /// that cannot be encoded or do not fit alone are rejected into `sent`,
    /// more than fit are split back into `work`; a failed task is
    /// `sent.error`. `None` when there is nothing to send now.
    pub(super) async fn encode(
        &self,
        batch: &SinkBatch,
        item: Vec<usize>,
        work: &mut Vec<Vec<usize>>,
        sent: &mut Sent,
    ) -> Option<(Vec<usize>, Vec<u8>)> {
        // Selecting and encoding is CPU work: off the async threads.
        let records = batch.records.clone();
        let rows = item.clone();
        let encoded =
            tokio::task::spawn_blocking(move || select(&records, &rows).map(|r| encode(&r))).await;
        let ipc = match encoded {
            Ok(Ok(Ok(b))) => b,
            Ok(Ok(Err(e))) => {
                reject_all(sent, &item, &format!("arrow IPC encoding failed: {e}"));
                return None;
            }
            Ok(Err(e)) => {
                sent.error = Some(SinkError::Task(format!("selecting rows: {e}")));
                return None;
            }
            Err(e) => {
                sent.error = Some(SinkError::Task(format!("encoding rows: {e}")));
                return None;
            }
        };
        if ipc.len() + self.schema_ipc.len() > self.max_request_bytes {
            if item.len() == 1 {
                reject_all(sent, &item, &format!(
                    "row is {} bytes as Arrow IPC: larger than an append request may be (max_request_bytes)",
                    ipc.len()
                ));
            } else {
                split(work, item);
            }
            return None;
        }
        Some((item, ipc))
    }

    /// Create a COMMITTED stream on `table`
    /// (`projects/P/datasets/D/tables/T`); its name.
    pub async fn create_committed(&self, table: &str) -> Result<String, tonic::Status> {
        let request = storage::CreateWriteStreamRequest {
            parent: table.to_string(),
            write_stream: Some(storage::WriteStream {
                r#type: storage::write_stream::Type::Committed as i32,
                ..Default::default()
            }),
        };
        let call = self.call(request, "parent", table).await?;
        let mut client = self.client.clone();
        Ok(client.create_write_stream(call).await?.into_inner().name)
    }

    /// Finalize `stream`: no append is accepted after this; its row count.
    pub async fn finalize(&self, stream: &str) -> Result<i64, tonic::Status> {
        let request = storage::FinalizeWriteStreamRequest {
            name: stream.to_string(),
        };
        let call = self.call(request, "name", stream).await?;
        let mut client = self.client.clone();
        Ok(client
            .finalize_write_stream(call)
            .await?
            .into_inner()
            .row_count)
    }

    /// `message` with the token and routing headers every call carries.
    async fn call<T>(
        &self,
        message: T,
        param: &str,
        value: &str,
    ) -> Result<tonic::Request<T>, tonic::Status> {
        let token = self
            .auth
            .token()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("getting an access token: {e}")))?;
        let mut call = tonic::Request::new(message);
        let metadata = call.metadata_mut();
        let header = |v: String| {
            v.parse().map_err(|_| {
                tonic::Status::invalid_argument(
                    "the stream name or token is not a valid gRPC header",
                )
            })
        };
        metadata.insert("authorization", header(format!("Bearer {token}"))?);
        metadata.insert(
            "x-goog-request-params",
            header(format!("{param}={}", value.replace('/', "%2F")))?,
        );
        Ok(call)
    }

    /// Append one encoded batch at `offset` (`None`: wherever the stream
    /// ends, as `_default` streams do). `Err` is an append whose outcome
    /// is unknown (no answer): it may have been written.
    pub(super) async fn append(
        &self,
        stream: &str,
        batch_ipc: Vec<u8>,
        offset: Option<i64>,
    ) -> Result<Appended, SinkError> {
        let request = storage::AppendRowsRequest {
            write_stream: stream.to_string(),
            offset,
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
        let call = match self
            .call(futures::stream::iter(vec![request]), "write_stream", stream)
            .await
        {
            Ok(call) => call,
            // Nothing was sent.
            Err(status) => return Ok(Appended::Refused(from_grpc("append_rows", &status))),
        };
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
                    Some(Response::AppendResult(_)) => {
                        fault_hook();
                        Ok(Appended::Done)
                    }
                    // BigQuery answered with an error: nothing was written.
                    Some(Response::Error(status)) => Ok(answered_error(tonic::Status::new(
                        Code::from(status.code),
                        status.message,
                    ))),
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
            // Codes that say the request was refused, not lost.
            Err(status)
                if matches!(
                    status.code(),
                    Code::NotFound
                        | Code::InvalidArgument
                        | Code::PermissionDenied
                        | Code::Unauthenticated
                        | Code::FailedPrecondition
                        | Code::AlreadyExists
                        | Code::OutOfRange
                        | Code::ResourceExhausted
                        | Code::Unimplemented
                ) =>
            {
                Ok(answered_error(status))
            }
            Err(status) => Err(from_grpc("append_rows", &status)),
        }
    }
}

/// The outcome of one append that BigQuery answered.
pub(super) enum Appended {
    Done,
    /// (index in the append, reason) of rows that can never be written;
    /// nothing of the append was written.
    RowErrors(Vec<(i64, String)>),
    /// The table is gone (deleted while running).
    TableMissing(SinkError),
    /// An offset at or past the stream's end (`ALREADY_EXISTS`,
    /// `OUT_OF_RANGE`): nothing was written.
    Misplaced(SinkError),
    /// Any other answer: nothing was written.
    Refused(SinkError),
}

/// [`KILL_AFTER_APPENDS`]: count a landed append, and die at the limit.
fn fault_hook() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static LANDED: AtomicU64 = AtomicU64::new(0);
    let Some(limit) = *LIMIT.get_or_init(|| std::env::var(KILL_AFTER_APPENDS).ok()?.parse().ok())
    else {
        return;
    };
    if LANDED.fetch_add(1, Relaxed) + 1 == limit {
        tracing::error!("{KILL_AFTER_APPENDS}={limit}: killing the process after an append landed");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

fn answered_error(status: tonic::Status) -> Appended {
    let error = from_grpc("append_rows", &status);
    match status.code() {
        Code::NotFound => Appended::TableMissing(error),
        Code::AlreadyExists | Code::OutOfRange => Appended::Misplaced(error),
        _ => Appended::Refused(error),
    }
}

/// Nothing of append `item` was written because of the rows `errors`
/// names: reject those, send the rest again.
pub(super) fn row_errors(
    sent: &mut Sent,
    work: &mut Vec<Vec<usize>>,
    item: Vec<usize>,
    errors: &[(i64, String)],
) -> Result<(), SinkError> {
    if !errors
        .iter()
        .any(|(i, _)| usize::try_from(*i).is_ok_and(|i| i < item.len()))
    {
        return Err(SinkError::BigQuery {
            message: format!(
                "append_rows: row errors name no row of the append ({})",
                errors.first().map_or("", |e| e.1.as_str())
            ),
            permanent: false,
        });
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
    Ok(())
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
