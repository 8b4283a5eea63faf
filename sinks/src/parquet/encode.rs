//! Encoding record batches as Parquet: the writer properties every Parquet
//! sink uses, and one batch into one in-memory file. Public so that the
//! stage benchmarks (`benches/stages.rs`) measure exactly what the sink does.

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::SinkError;

/// How the schema's columns are encoded, by name (see `SinkContext`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    /// Nearly unique per row: no dictionary, no statistics; integers and
    /// times among them (offsets, timestamps: increasing) are delta-encoded.
    pub plain: &'a [&'a str],
    /// A few values per batch: dictionary-encoded and not compressed.
    pub small: &'a [&'a str],
}

/// The properties of a Parquet sink's files for `schema`: zstd at
/// `zstd_level` (0: no compression) except on `columns.small`; the
/// encodings of [`Columns`].
pub fn writer_properties(
    zstd_level: i32,
    schema: &Schema,
    columns: &Columns<'_>,
) -> Result<WriterProperties, ParquetError> {
    let compression = match zstd_level {
        0 => Compression::UNCOMPRESSED,
        level => Compression::ZSTD(ZstdLevel::try_new(level)?),
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(1 << 20));
    for name in columns.plain {
        let column = (*name).to_string();
        props = props
            .set_column_dictionary_enabled(column.clone().into(), false)
            .set_column_statistics_enabled(column.clone().into(), EnabledStatistics::None);
        let integer = schema
            .field_with_name(name)
            .is_ok_and(|f| matches!(f.data_type(), DataType::Int64 | DataType::Timestamp(..)));
        if integer {
            props = props.set_column_encoding(column.into(), Encoding::DELTA_BINARY_PACKED);
        }
    }
    for name in columns.small {
        props = props.set_column_compression((*name).into(), Compression::UNCOMPRESSED);
    }
    Ok(props.build())
}

/// `part` as one complete in-memory Parquet file (one row group).
pub fn encode(part: &RecordBatch, props: &WriterProperties) -> Result<Vec<u8>, SinkError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), part.schema(), Some(props.clone()))?;
    writer.write(part)?;
    Ok(writer.into_inner()?)
}
