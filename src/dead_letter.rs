//! Where rows that a sink can never accept go.
//!
//! Rejected rows are written, with the reason, as a Parquet file under
//! `<data_dir>/dead_letter/<sink>/<batch id>.parquet`, and counted; only then
//! is the batch acknowledged. Nothing is dropped without a trace.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use tidewater_sinks::{RejectedRow, SinkBatch};

/// Write `rows` of `batch` to the dead-letter directory of `sink`.
pub fn write(
    data_dir: &Path,
    sink: &str,
    batch: &SinkBatch,
    rows: &[RejectedRow],
) -> anyhow::Result<PathBuf> {
    let indices = UInt32Array::from(rows.iter().map(|r| r.row as u32).collect::<Vec<_>>());
    let rejected = take_record_batch(&batch.records, &indices)?;
    let reasons: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
    ));
    let mut fields: Vec<Field> = rejected
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("dead_letter_reason", DataType::Utf8, false));
    let mut columns = rejected.columns().to_vec();
    columns.push(reasons);
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

    let dir = data_dir.join("dead_letter").join(sink);
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.parquet", batch.id));
    let tmp = dir.join(format!(".{}.parquet.tmp", batch.id));
    let file = fs::File::create(&tmp)?;
    let mut writer = ArrowWriter::try_new(file, out.schema(), None)?;
    writer.write(&out)?;
    writer.into_inner()?.sync_all()?;
    fs::rename(&tmp, &path)?;
    // The batch is acknowledged next: the rename must survive a crash.
    fs::File::open(&dir)?.sync_all()?;
    Ok(path)
}
