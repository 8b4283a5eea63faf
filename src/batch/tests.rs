//! The builder's buffers: reservations between batches, NULL columns.

use std::borrow::Cow;

use arrow::array::{Array, StringArray};

use super::*;
use crate::file::K8sMeta;

fn builder(max_rows: usize) -> Builder {
    let schema = TableSchema::load(None, &[]).expect("the bundled schema");
    let limits = BatchConfig {
        max_rows,
        ..BatchConfig::default()
    };
    Builder::new(&schema, &[], limits).expect("builder")
}

fn meta() -> FileMeta {
    FileMeta {
        source: "app".into(),
        path: "app.log".into(),
        k8s: K8sMeta::default(),
        fingerprint: 1,
        inode_key: 1,
    }
}

fn append(b: &mut Builder, rows: usize, text: &str) {
    let meta = meta();
    for offset in 0..rows as u64 {
        let rec = Record {
            message: Some(Cow::Borrowed(text)),
            fields: Some(Cow::Borrowed(text)),
            offset,
            ..Record::default()
        };
        b.append(&meta, &rec, 0);
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("a string column")
}

#[test]
fn a_batch_cut_short_after_a_full_one_is_not_charged_for_its_reservation() {
    let long = "x".repeat(1000);
    let mut b = builder(1000);
    append(&mut b, 1000, &long);
    assert!(b.is_full());
    let full = b.finish().expect("a batch").records;
    // The next batch reserves the full one's sizes at its first row,
    // then is cut short by age with two rows.
    append(&mut b, 2, &long);
    let short = b.finish().expect("a batch").records;
    assert_eq!(short.num_rows(), 2);
    assert_eq!(column(&short, "message").value(1), long);
    let (full, short) = (full.get_array_memory_size(), short.get_array_memory_size());
    assert!(full > 2_000_000, "{full}");
    assert!(short < 100_000, "{short} bytes for two rows");
}

#[test]
fn a_column_null_on_every_row_is_one_null_array() {
    let mut b = builder(10);
    append(&mut b, 3, "hello");
    let batch = b.finish().expect("a batch").records;
    let namespace = column(&batch, "namespace");
    assert_eq!((namespace.len(), namespace.null_count()), (3, 3));
    assert_eq!(column(&batch, "message").null_count(), 0);
    // Nulls before the first value are kept in place.
    let mut b = builder(10);
    append(&mut b, 2, "a");
    let rec = Record {
        parse_error: Some("bad".into()),
        offset: 9,
        ..Record::default()
    };
    b.append(&meta(), &rec, 0);
    append(&mut b, 1, "b");
    let batch = b.finish().expect("a batch").records;
    let errors = column(&batch, "parse_error");
    let values: Vec<Option<&str>> = errors.iter().collect();
    assert_eq!(values, [None, None, Some("bad"), None]);
}

#[test]
fn a_batch_built_in_a_recycled_buffer_holds_exactly_its_rows() {
    let mut b = builder(2000);
    append(&mut b, 2000, &"a".repeat(1000));
    let first = b.finish().expect("a batch").records;
    crate::recycle::give(first);
    // The next full batch reserves the first one's sizes, in its freed
    // text buffer when no other test took it (the pool is process-wide).
    let row = |i: usize| format!("{i:04}{}", "b".repeat(996));
    let meta = meta();
    for i in 0..2000 {
        let text = row(i);
        let rec = Record {
            message: Some(Cow::Borrowed(&text)),
            fields: Some(Cow::Borrowed(&text)),
            offset: i as u64,
            ..Record::default()
        };
        b.append(&meta, &rec, 0);
    }
    let second = b.finish().expect("a batch").records;
    for name in ["message", "fields"] {
        let values = column(&second, name);
        assert_eq!((values.len(), values.null_count()), (2000, 0));
        assert!((0..2000).all(|i| values.value(i) == row(i)), "{name}");
    }
}
