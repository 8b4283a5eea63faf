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
use serde_json::{Map, Value};

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

    /// Row `row` as a JSON object; NULL columns are left out.
    pub fn row(&self, row: usize) -> Value {
        let mut out = Map::with_capacity(self.columns.len());
        for (name, column) in &self.columns {
            let value = match column {
                Column::Timestamp(a) if a.is_valid(row) => {
                    Value::String(rfc3339_micros(a.value(row)))
                }
                Column::Utf8(a) if a.is_valid(row) => Value::String(a.value(row).to_string()),
                Column::Int64(a) if a.is_valid(row) => Value::from(a.value(row)),
                Column::Float64(a) if a.is_valid(row) => {
                    // NaN and infinities are not JSON; BigQuery takes them as strings.
                    let v = a.value(row);
                    serde_json::Number::from_f64(v)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(v.to_string()))
                }
                Column::Boolean(a) if a.is_valid(row) => Value::Bool(a.value(row)),
                Column::Utf8List(a) if a.is_valid(row) => {
                    let items = a.value(row);
                    let items = items.as_string::<i32>();
                    Value::Array(
                        items
                            .iter()
                            .flatten()
                            .map(|s| Value::String(s.to_string()))
                            .collect(),
                    )
                }
                Column::Other(a) if a.is_valid(row) => {
                    match arrow::util::display::array_value_to_string(*a, row) {
                        Ok(s) => Value::String(s),
                        Err(_) => continue,
                    }
                }
                _ => continue,
            };
            out.insert((*name).to_string(), value);
        }
        Value::Object(out)
    }
}

/// Microseconds since the epoch as `2026-11-23T10:00:00.123456Z`.
fn rfc3339_micros(us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => us.to_string(),
    }
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
        assert_eq!(
            enc.row(0),
            serde_json::json!({
                "timestamp": "2025-11-23T10:00:00.123456Z",
                "fields": "{\"a\":1}",
                "offset": 42,
                "flags": ["truncated"],
            })
        );
        assert_eq!(
            enc.row(1),
            serde_json::json!({"timestamp": "1970-01-01T00:00:00.000000Z", "flags": []})
        );
    }
}
