//! Arrow rows as the JSON objects of `tabledata.insertAll`.
//!
//! Written by hand rather than through arrow's JSON writer so that each
//! column follows BigQuery's streaming rules: TIMESTAMP as an RFC 3339
//! string with microseconds, a JSON column as its JSON text (as Google's
//! own clients send it), REPEATED as an array, and NULL as an absent key.

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;

/// One column, downcast once per batch.
enum Column<'a> {
    Timestamp(&'a TimestampMicrosecondArray),
    Utf8(&'a StringArray),
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Boolean(&'a BooleanArray),
    Utf8List(&'a ListArray),
    /// A type tidewater's schemas do not produce: sent as its display text.
    Other(&'a dyn Array),
}

/// Encodes rows of one batch.
pub struct RowEncoder<'a> {
    columns: Vec<(&'a str, Column<'a>)>,
}

impl<'a> RowEncoder<'a> {
    /// Prepare to encode rows of `batch`.
    pub fn new(batch: &'a RecordBatch) -> Self {
        let schema = batch.schema_ref();
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(array, field)| {
                let column = match array.data_type() {
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        Column::Timestamp(array.as_primitive())
                    }
                    DataType::Utf8 => Column::Utf8(array.as_string::<i32>()),
                    DataType::Int64 => Column::Int64(array.as_primitive()),
                    DataType::Float64 => Column::Float64(array.as_primitive()),
                    DataType::Boolean => Column::Boolean(array.as_boolean()),
                    DataType::List(item) if item.data_type() == &DataType::Utf8 => {
                        Column::Utf8List(array.as_list::<i32>())
                    }
                    _ => Column::Other(array.as_ref()),
                };
                (field.name().as_str(), column)
            })
            .collect();
        Self { columns }
    }

    /// Append row `row` to `out` as a JSON object; NULL columns are left out.
    /// Written straight to bytes: a `serde_json::Value` per row costs more
    /// than the rest of the request (BENCHMARKS.md).
    pub fn write_row(&self, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (name, column) in &self.columns {
            let valid = match column {
                Column::Timestamp(a) => a.is_valid(row),
                Column::Utf8(a) => a.is_valid(row),
                Column::Int64(a) => a.is_valid(row),
                Column::Float64(a) => a.is_valid(row),
                Column::Boolean(a) => a.is_valid(row),
                Column::Utf8List(a) => a.is_valid(row),
                Column::Other(a) => a.is_valid(row),
            };
            if !valid {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            string(out, name);
            out.push(b':');
            match column {
                Column::Timestamp(a) => {
                    out.push(b'"');
                    write_timestamp(a.value(row), out);
                    out.push(b'"');
                }
                Column::Utf8(a) => string(out, a.value(row)),
                Column::Int64(a) => out.extend_from_slice(a.value(row).to_string().as_bytes()),
                Column::Float64(a) => {
                    // NaN and infinities are not JSON; BigQuery takes them as strings.
                    let v = a.value(row);
                    if v.is_finite() {
                        let _ = serde_json::to_writer(&mut *out, &v);
                    } else {
                        string(out, &v.to_string());
                    }
                }
                Column::Boolean(a) => {
                    out.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
                }
                Column::Utf8List(a) => {
                    let items = a.value(row);
                    out.push(b'[');
                    for (i, item) in items.as_string::<i32>().iter().flatten().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        string(out, item);
                    }
                    out.push(b']');
                }
                Column::Other(a) => {
                    let text =
                        arrow::util::display::array_value_to_string(*a, row).unwrap_or_default();
                    string(out, &text);
                }
            }
        }
        out.push(b'}');
    }
}

/// A JSON string (serde_json's escaping).
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Microseconds since the epoch as `2026-11-23T10:00:00.123456Z` (what
/// insertAll reads as TIMESTAMP; a JSON number would be taken as µs by the
/// emulator and refused by BigQuery).
fn write_timestamp(us: i64, out: &mut Vec<u8>) {
    let text = match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => us.to_string(),
    };
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ListBuilder, StringBuilder};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn columns_follow_bigquerys_streaming_rules() {
        let mut flags = ListBuilder::new(StringBuilder::new());
        flags.values().append_value("truncated");
        flags.append(true);
        flags.append(true);
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("fields", DataType::Utf8, true),
            Field::new("offset", DataType::Int64, true),
            Field::new(
                "flags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_763_892_000_123_456, 0])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![Some(r#"{"a":1}"#), None])),
                Arc::new(Int64Array::from(vec![Some(42), None])),
                Arc::new(flags.finish()),
            ],
        )
        .unwrap();
        let enc = RowEncoder::new(&batch);
        let row = |i| {
            let mut out = Vec::new();
            enc.write_row(i, &mut out);
            serde_json::from_slice::<serde_json::Value>(&out).expect("valid JSON")
        };
        assert_eq!(
            row(0),
            serde_json::json!({
                "timestamp": "2025-11-23T10:00:00.123456Z",
                "fields": "{\"a\":1}",
                "offset": 42,
                "flags": ["truncated"],
            })
        );
        assert_eq!(
            row(1),
            serde_json::json!({"timestamp": "1970-01-01T00:00:00.000000Z", "flags": []})
        );
    }
}
