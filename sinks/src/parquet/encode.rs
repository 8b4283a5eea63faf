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

/// Data pages of 256 KiB, not parquet's 1 MiB: a page's buffers then stay
/// below the 1 MiB mmap threshold that `main` sets, so malloc reuses them
/// instead of mapping and faulting in fresh memory for every page (less CPU
/// and a smaller peak RSS, for a lake about 1 % larger: BENCHMARKS.md,
/// issue 16).
pub const DATA_PAGE_BYTES: usize = 256 << 10;

/// How the schema's columns are encoded, by name (see `SinkContext`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    /// Nearly unique per row: no dictionary. Text among them gets no
    /// statistics (comparing every value costs CPU and prunes nothing);
    /// integers and times (offsets, timestamps: increasing) are
    /// delta-encoded and keep their min/max per page and row group, so that
    /// a query on a time range skips the files and pages outside it.
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
        .set_max_row_group_row_count(Some(1 << 20))
        .set_data_page_size_limit(DATA_PAGE_BYTES);
    for name in columns.plain {
        let column = (*name).to_string();
        props = props.set_column_dictionary_enabled(column.clone().into(), false);
        let integer = schema
            .field_with_name(name)
            .is_ok_and(|f| matches!(f.data_type(), DataType::Int64 | DataType::Timestamp(..)));
        props = if integer {
            props.set_column_encoding(column.into(), Encoding::DELTA_BINARY_PACKED)
        } else {
            props.set_column_statistics_enabled(column.into(), EnabledStatistics::None)
        };
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, TimeUnit};
    use bytes::Bytes;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;

    use super::*;

    #[test]
    fn columns_get_their_encoding_and_compression() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("stream", DataType::Utf8, true),
            Field::new("message", DataType::Utf8, true),
        ]));
        let rows = 1000;
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| i * 1000))
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from_iter_values((0..rows).map(|_| "stdout"))),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("request {i} served")),
                )),
            ],
        )
        .expect("valid batch");
        let columns = Columns {
            plain: &["timestamp", "message"],
            small: &["stream"],
        };
        let props = writer_properties(1, &schema, &columns).expect("level 1");
        let file = encode(&batch, &props).expect("encodes");
        let reader = SerializedFileReader::new(Bytes::from(file)).expect("a Parquet file");
        let group = reader.metadata().row_group(0);
        assert_eq!(group.num_rows(), rows);
        let column = |name: &str| {
            (0..group.num_columns())
                .map(|i| group.column(i))
                .find(|c| c.column_path().string() == name)
                .expect("the column")
        };
        let ts = column("timestamp");
        assert!(ts.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED));
        assert!(matches!(ts.compression(), Compression::ZSTD(_)));
        match ts.statistics() {
            Some(Statistics::Int64(range)) => {
                assert_eq!(range.min_opt(), Some(&0));
                assert_eq!(range.max_opt(), Some(&((rows - 1) * 1000)));
            }
            other => panic!("the time column needs its min/max, got {other:?}"),
        }
        let stream = column("stream");
        assert_eq!(stream.compression(), Compression::UNCOMPRESSED);
        assert!(stream.dictionary_page_offset().is_some());
        let message = column("message");
        assert!(matches!(message.compression(), Compression::ZSTD(_)));
        assert!(message.dictionary_page_offset().is_none());
        assert!(message.statistics().is_none());
    }
}
