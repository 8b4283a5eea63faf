//! Object keys from a template such as
//! `dt={dt}/hour={hour}/{namespace}/{pod}/{id}.parquet`.
//!
//! `{dt}` (YYYY-MM-DD) and `{hour}` (HH) come from the row's `timestamp`
//! column in UTC, `{id}` is the batch id (plus a part number when one batch
//! spans several keys), and any other `{name}` is the value of that string
//! column, made safe for a path segment (`unknown` when null or empty).
//! Rendering is deterministic: the same rows give the same keys.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};

const ID: &str = "\u{1}id\u{1}";

/// What a missing value renders as.
const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Date,
    Hour,
    Id,
    Column(String),
}

/// A parsed key template.
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

impl KeyTemplate {
    /// Parse a template; fails on an unclosed `{` or a template without `{id}`
    /// (without it two batches would overwrite each other).
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("unclosed '{{' in {template:?}"));
            };
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "dt" => Part::Date,
                "hour" => Part::Hour,
                "id" => Part::Id,
                "" => return Err(format!("empty '{{}}' in {template:?}")),
                other => Part::Column(other.to_string()),
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if !parts.contains(&Part::Id) {
            return Err(format!(
                "{template:?} has no {{id}}: every batch needs a key of its own"
            ));
        }
        if template.starts_with('/') || template.split('/').any(|s| s == "..") {
            return Err(format!("{template:?} must be a relative path without '..'"));
        }
        Ok(Self { parts })
    }

    /// Names of the columns the template reads (`timestamp` for `{dt}`/`{hour}`).
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        for part in &self.parts {
            let name = match part {
                Part::Date | Part::Hour => "timestamp",
                Part::Column(c) => c.as_str(),
                _ => continue,
            };
            if !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// Check that `schema` has every column the template reads, with a usable type.
    pub fn check_schema(&self, schema: &arrow::datatypes::Schema) -> Result<(), String> {
        for name in self.columns() {
            let field = schema.field_with_name(&name).map_err(|_| {
                format!("the template reads column {name:?}, which the schema lacks")
            })?;
            let ok = match (name.as_str(), field.data_type()) {
                ("timestamp", DataType::Timestamp(TimeUnit::Microsecond, _)) => true,
                ("timestamp", _) => false,
                (_, DataType::Utf8) => true,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "the template reads column {name:?}, whose type {} cannot name a path",
                    field.data_type()
                ));
            }
        }
        Ok(())
    }

    /// Group the rows of `batch` by key. Returns `(key, row indices)` in key
    /// order; keys are complete, with `{id}` replaced by `id` (and `-<n>` after
    /// it when the batch spans more than one key).
    pub fn partition(&self, batch: &RecordBatch, id: &str) -> Vec<(String, Vec<u32>)> {
        let groups = self.groups(batch);
        let many = groups.len() > 1;
        groups
            .into_iter()
            .enumerate()
            .map(|(n, (key, rows))| {
                let id = if many {
                    format!("{id}-{n}")
                } else {
                    id.to_string()
                };
                (Self::with_id(&key, &id), rows)
            })
            .collect()
    }

    /// Group the rows of `batch` by key, in key order, with `{id}` still
    /// open: fill it in with [`KeyTemplate::with_id`].
    pub fn groups(&self, batch: &RecordBatch) -> Vec<(String, Vec<u32>)> {
        let values = self.resolve(batch);
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut key = String::new();
        let mut run: Vec<u32> = Vec::new();
        for row in 0..batch.num_rows() {
            // Neighbouring rows nearly always share a key: render and look
            // the key up only when it changes.
            if row > 0 && !same_key(&values, row - 1, row) {
                groups.entry(key.clone()).or_default().append(&mut run);
                key.clear();
            }
            if key.is_empty() {
                render_row(&values, row, &mut key);
            }
            run.push(row as u32);
        }
        if !run.is_empty() {
            groups.entry(key).or_default().append(&mut run);
        }
        groups.into_iter().collect()
    }

    /// A key from [`KeyTemplate::groups`] with its `{id}` filled in.
    pub fn with_id(key: &str, id: &str) -> String {
        key.replace(ID, id)
    }

    /// Look up, once per batch, the arrays each part reads.
    fn resolve<'a>(&'a self, batch: &'a RecordBatch) -> Vec<Value<'a>> {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(s) => Value::Literal(s),
                Part::Id => Value::Literal(ID),
                Part::Date | Part::Hour => Value::Time(
                    batch
                        .column_by_name("timestamp")
                        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
                    matches!(part, Part::Date),
                ),
                // A column without values renders the same on every row:
                // nothing to compare.
                Part::Column(name) => match batch
                    .column_by_name(name)
                    .and_then(|c| c.as_string_opt::<i32>())
                {
                    Some(s) if s.null_count() == s.len() => Value::Literal(UNKNOWN),
                    s => Value::Column(s),
                },
            })
            .collect()
    }
}

/// A template part with the array it reads.
enum Value<'a> {
    Literal(&'a str),
    /// The timestamp column; `true` for the date, `false` for the hour.
    Time(Option<&'a TimestampMicrosecondArray>, bool),
    Column(Option<&'a StringArray>),
}

/// Whether rows `a` and `b` render to the same key (same hour, same columns).
fn same_key(values: &[Value], a: usize, b: usize) -> bool {
    const HOUR_US: i64 = 3_600_000_000;
    values.iter().all(|v| match v {
        Value::Literal(_) => true,
        Value::Time(t, _) => t.is_some_and(|t| {
            t.is_valid(a)
                && t.is_valid(b)
                && t.value(a).div_euclid(HOUR_US) == t.value(b).div_euclid(HOUR_US)
        }),
        Value::Column(s) => {
            s.is_some_and(|s| s.is_valid(a) == s.is_valid(b) && s.value(a) == s.value(b))
        }
    })
}

fn render_row(values: &[Value], row: usize, out: &mut String) {
    use std::fmt::Write;
    for v in values {
        match v {
            Value::Literal(s) => out.push_str(s),
            Value::Time(t, date) => {
                let ts = t
                    .filter(|a| a.is_valid(row))
                    .and_then(|a| chrono::DateTime::from_timestamp_micros(a.value(row)));
                match (ts, date) {
                    (Some(t), true) => {
                        let _ = write!(out, "{}", t.format("%Y-%m-%d"));
                    }
                    (Some(t), false) => {
                        let _ = write!(out, "{}", t.format("%H"));
                    }
                    (None, _) => out.push_str(UNKNOWN),
                }
            }
            Value::Column(s) => {
                let value = s
                    .filter(|a| a.is_valid(row))
                    .map(|a| a.value(row))
                    .unwrap_or("");
                push_segment(value, out);
            }
        }
    }
}

/// Append `value` as one safe path segment (at most ~100 bytes: longer
/// values are cut and end with a hash of the whole value, so they stay
/// distinct and within file-name limits).
fn push_segment(value: &str, out: &mut String) {
    const MAX: usize = 80;
    if value.is_empty() || value == "." || value == ".." {
        out.push_str(UNKNOWN);
        return;
    }
    let mut cut = value.len().min(MAX);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    out.extend(value[..cut].chars().map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=') {
            c
        } else {
            '_'
        }
    }));
    if cut < value.len() {
        // xxh3 is specified (std's DefaultHasher may change between Rust
        // releases): a batch re-sent after an upgrade lands on the same key.
        let hash = xxhash_rust::xxh3::xxh3_64(value.as_bytes());
        out.push_str(&format!("-{hash:016x}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let ts = 1_795_316_400_000_000i64; // 2026-11-22T03:00:00Z
        let schema = Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("namespace", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![ts, ts + 3_600_000_000, ts])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![Some("shop"), None, Some("a/b")])),
            ],
        )
        .expect("valid batch")
    }

    #[test]
    fn partitions_by_date_hour_and_column() {
        let t = KeyTemplate::parse("dt={dt}/hour={hour}/{namespace}/{id}.parquet").expect("ok");
        let parts = t.partition(&batch(), "abc-0");
        let keys: Vec<_> = parts.iter().map(|(k, r)| (k.as_str(), r.clone())).collect();
        assert_eq!(
            keys,
            vec![
                ("dt=2026-11-22/hour=03/a_b/abc-0-0.parquet", vec![2]),
                ("dt=2026-11-22/hour=03/shop/abc-0-1.parquet", vec![0]),
                ("dt=2026-11-22/hour=04/unknown/abc-0-2.parquet", vec![1]),
            ]
        );
    }

    #[test]
    fn a_column_null_on_every_row_renders_as_a_null_row_does() {
        let t = KeyTemplate::parse("dt={dt}/{namespace}/{id}.parquet").expect("ok");
        // The mixed batch's NULL row, rendered row by row.
        let mixed = t.partition(&batch(), "m");
        assert_eq!(mixed[2].0, "dt=2026-11-22/unknown/m-2.parquet");
        let all_null = RecordBatch::try_new(
            batch().schema(),
            vec![
                Arc::clone(batch().column(0)),
                Arc::new(StringArray::from(vec![None::<&str>; 3])),
            ],
        )
        .expect("valid batch");
        assert_eq!(
            t.partition(&all_null, "x"),
            vec![("dt=2026-11-22/unknown/x.parquet".to_string(), vec![0, 1, 2])]
        );
    }

    #[test]
    fn one_group_keeps_the_plain_id() {
        let t = KeyTemplate::parse("dt={dt}/{id}.parquet").expect("ok");
        let parts = t.partition(&batch(), "x");
        assert_eq!(
            parts,
            vec![("dt=2026-11-22/x.parquet".to_string(), vec![0, 1, 2])]
        );
    }

    #[test]
    fn rejects_templates_that_would_collide_or_escape() {
        assert!(KeyTemplate::parse("dt={dt}/data.parquet").is_err());
        assert!(KeyTemplate::parse("../{id}").is_err());
        assert!(KeyTemplate::parse("{dt/{id}").is_err());
    }
}

#[cfg(test)]
mod segment_tests {
    #[test]
    fn long_values_are_cut_and_stay_distinct() {
        let (mut a, mut b) = (String::new(), String::new());
        super::push_segment(&"x".repeat(300), &mut a);
        super::push_segment(&format!("{}y", "x".repeat(299)), &mut b);
        assert!(a.len() < 120, "{}", a.len());
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_of_a_long_value_is_pinned() {
        // xxh3-64 of the whole value, checked with Python's xxhash package
        // (`xxhash.xxh3_64_intdigest`): a toolchain upgrade must not move keys.
        let mut key = String::new();
        super::push_segment(&format!("pod-{}", "a".repeat(100)), &mut key);
        assert_eq!(key, format!("pod-{}-932b363734627ce9", "a".repeat(76)));
    }
}
