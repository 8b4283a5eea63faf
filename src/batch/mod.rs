//! Building Arrow batches from records.
//!
//! A [`Builder`] appends records straight into Arrow column builders laid out
//! by the table schema, and also records, per file, how far the batch covers
//! (the offset up to which every line is either in this batch, in an earlier
//! one, or was skipped). That [`Batch::acks`] list is what lets the checkpoint
//! advance once every sink has the batch.
//!
//! With a [`PodInfo`] (`[kubernetes]`), the `labels` and `annotations`
//! columns and the `[[columns]]` with a `label` are filled from the Pod's
//! metadata as it was when the batch started: the snapshot is taken once
//! per batch, not per record.
//!
//! A builder belongs to one source, and applies that source's rules on
//! the way in: `[[redact]]` masks the text of a record before it is
//! appended (and the Pod's labels once per batch), and `drop` removes the
//! matching rows when the batch is finished. Dropped rows still count as
//! covered by the batch's acks: the checkpoint moves past them.
//!
//! The batch limits are configured in [`BatchConfig`] (`[batch]`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use tidewater_sinks::when::Condition;

use crate::file::{FileId, FileMeta};
use crate::parse::body::Scalar;
use crate::parse::{Flags, Record};
use crate::pod::{PodInfo, Snapshot};
use crate::redact::Redactor;
use crate::schema::{ExtraColumn, TableSchema};

mod columns;
mod config;
mod ids;

use columns::{append_extra, convert, mask, Col, Converted, StrCol};
use ids::{batch_id, content_hash};

pub use config::BatchConfig;

/// A finished batch and what it covers.
#[derive(Debug)]
pub struct Batch {
    /// The source that read it.
    pub source: Arc<str>,
    /// Deterministic id: a hash of every file's fingerprint and first and
    /// last row offsets in the batch, then the first row's offset. Batches
    /// with other rows get other ids, so a replay after a restart can never
    /// overwrite another batch's object.
    pub id: String,
    pub records: RecordBatch,
    /// Where each row was read (one per row).
    pub origins: Vec<tidewater_sinks::RowOrigin>,
    /// For each file: every byte before this offset is in this batch or an earlier one.
    pub acks: Vec<(FileId, u64)>,
    /// Bytes of input lines in the batch.
    pub input_bytes: u64,
    /// Rows the source's `drop` removed (not in `records`).
    pub dropped: u64,
    /// Rows of `records` that `[[redact]]` changed.
    pub redacted: u64,
    /// The batch's share of the memory budget, held until every sink is
    /// done with it (set by the reader that hands it on).
    pub memory: Option<crate::memory::Reservation>,
}

/// Where a column's values come from.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Timestamp,
    Observed,
    Stream,
    Level,
    Message,
    Fields,
    Namespace,
    Pod,
    Container,
    Node,
    Source,
    File,
    Offset,
    Flags,
    ParseError,
    Labels,
    Annotations,
    Extra(usize),
    /// An extra column with a `label`: from the batch's [`Snapshot`].
    Label(usize),
}

/// Accumulates records into one Arrow batch at a time.
pub struct Builder {
    schema: SchemaRef,
    columns: Vec<(Fill, Col)>,
    extra_types: Vec<DataType>,
    /// Per extra column: the Pod label it reads, if it is a label column.
    extra_labels: Vec<Option<String>>,
    converted: Vec<Converted>,
    /// The Pod's metadata, when `[kubernetes]` is configured.
    pod: Option<PodInfo>,
    /// Taken from `pod` when a batch gets its first row.
    snapshot: Option<Arc<Snapshot>>,
    /// `conversion_error` when a label column's value did not convert
    /// (the same for every row of the batch).
    label_flags: Flags,
    /// The Pod's labels and annotations JSON, when `[[redact]]` changed
    /// them (else the snapshot's are used).
    redacted_pod: Option<[Option<String>; 2]>,
    /// Per extra column with a `label`: its value for the batch (masked).
    label_values: Vec<Option<String>>,
    source: Arc<str>,
    drop: Option<Condition>,
    redactor: Option<Arc<Redactor>>,
    /// Per row, with a redactor: whether it was masked.
    redacted: Vec<bool>,
    limits: BatchConfig,
    /// Per column: rows and text bytes of the last batch when it was full,
    /// which the next batch reserves at its first row (a builder between
    /// batches holds no buffers).
    sizes: Vec<(usize, usize)>,
    rows: usize,
    bytes: u64,
    started: Option<Instant>,
    /// Per file in the batch: (fingerprint, first row offset, last row offset).
    spans: Vec<(u64, u64, u64)>,
    /// Per row, when `with_origins`: where it was read and a hash of it.
    origins: Vec<tidewater_sinks::RowOrigin>,
    with_origins: bool,
    acks: Vec<(FileId, u64)>,
}

impl Builder {
    /// A builder for `schema`; fails when the schema has a column tidewater
    /// cannot fill, or one whose type does not fit its source.
    pub fn new(
        schema: &TableSchema,
        extras: &[ExtraColumn],
        limits: BatchConfig,
    ) -> Result<Self, String> {
        let arrow_schema = schema.arrow();
        let mut columns = Vec::new();
        let mut extra_types = vec![DataType::Null; extras.len()];
        for field in arrow_schema.fields() {
            let name = field.name().as_str();
            let from = match name {
                "timestamp" => Fill::Timestamp,
                "observed_timestamp" => Fill::Observed,
                "stream" => Fill::Stream,
                "level" => Fill::Level,
                "message" => Fill::Message,
                "fields" => Fill::Fields,
                "namespace" => Fill::Namespace,
                "pod" => Fill::Pod,
                "container" => Fill::Container,
                "node" => Fill::Node,
                "source" => Fill::Source,
                "file" => Fill::File,
                "offset" => Fill::Offset,
                "flags" => Fill::Flags,
                "parse_error" => Fill::ParseError,
                "labels" => Fill::Labels,
                "annotations" => Fill::Annotations,
                other => match extras.iter().position(|x| x.name == other) {
                    Some(i) if extras[i].label.is_some() => Fill::Label(i),
                    Some(i) => Fill::Extra(i),
                    None => {
                        return Err(format!(
                            "schema column {other:?} has no source: declare it under [[columns]] to extract it from the JSON body"
                        ))
                    }
                },
            };
            let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let want = match from {
                Fill::Timestamp | Fill::Observed => Some(ts.clone()),
                Fill::Offset => Some(DataType::Int64),
                Fill::Flags => None,
                Fill::Extra(_) | Fill::Label(_) => None,
                _ => Some(DataType::Utf8),
            };
            let always_set = matches!(
                from,
                Fill::Timestamp
                    | Fill::Observed
                    | Fill::Offset
                    | Fill::Flags
                    | Fill::Source
                    | Fill::File
            );
            if !field.is_nullable() && !always_set {
                return Err(format!(
                    "schema column {name:?} is REQUIRED, but records can lack it: make it NULLABLE"
                ));
            }
            let dt = field.data_type();
            if let Some(want) = want {
                if *dt != want {
                    return Err(format!(
                        "schema column {name:?} must have type {want}, not {dt}"
                    ));
                }
            }
            let col = match dt {
                DataType::Timestamp(..) => {
                    Col::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                }
                DataType::Utf8 => Col::Str(StrCol::default()),
                DataType::Int64 => Col::Int(Int64Builder::new()),
                DataType::Float64 => Col::Float(Float64Builder::new()),
                DataType::Boolean => Col::Bool(BooleanBuilder::new()),
                DataType::List(item)
                    if *item.data_type() == DataType::Utf8 && matches!(from, Fill::Flags) =>
                {
                    Col::StrList(ListBuilder::new(StringBuilder::new()))
                }
                other => {
                    return Err(format!(
                        "schema column {name:?}: type {other} is not supported here"
                    ))
                }
            };
            if let Fill::Extra(i) | Fill::Label(i) = from {
                extra_types[i] = dt.clone();
            }
            columns.push((from, col));
        }
        Ok(Self {
            schema: arrow_schema,
            columns,
            converted: vec![Converted::Null; extras.len()],
            extra_types,
            extra_labels: extras.iter().map(|x| x.label.clone()).collect(),
            pod: None,
            snapshot: None,
            label_flags: Flags::default(),
            redacted_pod: None,
            label_values: vec![None; extras.len()],
            source: Arc::from(""),
            drop: None,
            redactor: None,
            redacted: Vec::new(),
            limits,
            sizes: Vec::new(),
            rows: 0,
            bytes: 0,
            started: None,
            spans: Vec::new(),
            origins: Vec::new(),
            with_origins: false,
            acks: Vec::new(),
        })
    }

    /// Give every finished batch its rows' origins (for sinks that
    /// de-duplicate rows: see `Sink::wants_origins`).
    pub fn with_origins(mut self) -> Self {
        self.with_origins = true;
        self
    }

    /// Batches of the source `name`, with its `drop` condition and its
    /// `[[redact]]` rules.
    pub fn for_source(
        mut self,
        name: &str,
        drop: Option<Condition>,
        redactor: Option<Arc<Redactor>>,
    ) -> Self {
        self.source = Arc::from(name);
        self.drop = drop;
        self.redactor = redactor;
        self
    }

    /// Fill the Pod's labels and annotations (and the label columns) from
    /// `pod`; without it they are NULL.
    pub fn with_pod(mut self, pod: PodInfo) -> Self {
        self.pod = Some(pod);
        self
    }

    /// A batch gets its first row: take the Pod's metadata now, and convert
    /// the label columns' values once for the whole batch.
    fn start_batch(&mut self) {
        let Some(pod) = &self.pod else {
            return;
        };
        let snapshot = pod.current();
        self.label_flags = Flags::default();
        self.redacted_pod = None;
        if let Some(r) = &self.redactor {
            let masked = [snapshot.labels_json(), snapshot.annotations_json()]
                .map(|json| json.map(|j| r.apply_json(j)));
            if masked.iter().flatten().any(|m| matches!(m, Cow::Owned(_))) {
                self.label_flags.insert(Flags::REDACTED);
                self.redacted_pod = Some(masked.map(|m| m.map(Cow::into_owned)));
            }
        }
        for (i, label) in self.extra_labels.iter().enumerate() {
            let Some(label) = label else {
                continue;
            };
            let value = snapshot.label(label).map(|v| match &self.redactor {
                Some(r) => r.apply(v),
                None => Cow::Borrowed(v),
            });
            if matches!(value, Some(Cow::Owned(_))) {
                self.label_flags.insert(Flags::REDACTED);
            }
            self.label_values[i] = value.map(Cow::into_owned);
            let value = self.label_values[i]
                .as_deref()
                .map(|v| Scalar::Str(v.into()));
            self.converted[i] = match convert(value.as_ref(), &self.extra_types[i]) {
                Ok(c) => c,
                Err(()) => {
                    self.label_flags.insert(Flags::CONVERSION_ERROR);
                    Converted::Null
                }
            };
        }
        self.snapshot = Some(snapshot);
    }

    /// Count `bytes` of input lines toward the `max_bytes` limit.
    pub fn note_input(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// Append one record read from `meta`'s file, observed at `observed_us`.
    pub fn append(&mut self, meta: &FileMeta, rec: &Record, observed_us: i64) {
        if self.rows == 0 {
            for ((_, col), size) in self.columns.iter_mut().zip(&self.sizes) {
                col.reserve(*size);
            }
            self.start_batch();
        }
        let mut flags = rec.flags;
        flags.insert(self.label_flags);
        let masked = match &self.redactor {
            Some(r) => mask(r, rec, &self.extra_types),
            None => None,
        };
        if masked.is_some() {
            flags.insert(Flags::REDACTED);
        }
        if self.redactor.is_some() {
            self.redacted.push(flags.contains(Flags::REDACTED));
        }
        let masked = masked.as_deref();
        let message = masked.and_then(|m| m.message.as_deref());
        let message = message.or(rec.message.as_deref());
        let fields = masked.and_then(|m| m.fields.as_deref());
        let fields = fields.or(rec.fields.as_deref());
        let parse_error = masked.and_then(|m| m.parse_error.as_deref());
        let parse_error = parse_error.or(rec.parse_error.as_deref());
        for (i, ty) in self.extra_types.iter().enumerate() {
            if self.extra_labels[i].is_some() {
                continue; // converted once per batch, in start_batch
            }
            let value = rec.extras.get(i).and_then(Option::as_ref);
            self.converted[i] = match convert(value, ty) {
                Ok(c) => c,
                Err(()) => {
                    flags.insert(Flags::CONVERSION_ERROR);
                    Converted::Null
                }
            };
        }
        let snapshot = self.snapshot.as_deref();
        let pod_json = |i: usize| match &self.redacted_pod {
            Some(masked) => masked[i].as_deref(),
            None => snapshot.and_then(|s| {
                if i == 0 {
                    s.labels_json()
                } else {
                    s.annotations_json()
                }
            }),
        };
        for (from, col) in &mut self.columns {
            match (from, col) {
                (Fill::Timestamp, Col::Ts(b)) => {
                    b.append_value(rec.timestamp_us.unwrap_or(observed_us))
                }
                (Fill::Observed, Col::Ts(b)) => b.append_value(observed_us),
                (Fill::Offset, Col::Int(b)) => b.append_value(rec.offset as i64),
                (Fill::Flags, Col::StrList(b)) => {
                    for name in flags.names() {
                        b.values().append_value(name);
                    }
                    b.append(true);
                }
                (Fill::Extra(i), col) => {
                    let masked = masked.and_then(|m| m.extras.iter().find(|(x, _)| x == i));
                    let raw = match masked {
                        Some((_, value)) => Some(value),
                        None => rec.extras.get(*i),
                    };
                    append_extra(col, self.converted[*i], raw)
                }
                (Fill::Label(i), col) => {
                    let value = self.label_values[*i]
                        .as_deref()
                        .map(|v| Scalar::Str(Cow::Borrowed(v)));
                    append_extra(col, self.converted[*i], Some(&value));
                }
                (from, Col::Str(b)) => {
                    let value: Option<&str> = match from {
                        Fill::Stream => rec.stream,
                        Fill::Level => rec.level.as_deref(),
                        Fill::Message => message,
                        Fill::Fields => fields,
                        Fill::Namespace => meta.k8s.namespace.as_deref(),
                        Fill::Pod => meta.k8s.pod.as_deref(),
                        Fill::Container => meta.k8s.container.as_deref(),
                        Fill::Node => meta.k8s.node.as_deref(),
                        Fill::Source => Some(&meta.source),
                        Fill::File => Some(&meta.path),
                        Fill::ParseError => parse_error,
                        Fill::Labels => pod_json(0),
                        Fill::Annotations => pod_json(1),
                        _ => None,
                    };
                    b.append_option(value);
                }
                // Types were matched to sources in `new`.
                _ => unreachable!("column type checked against its source in Builder::new"),
            }
        }
        match self.spans.last_mut() {
            Some(span) if span.0 == meta.fingerprint => span.2 = rec.offset,
            _ => match self.spans.iter_mut().find(|s| s.0 == meta.fingerprint) {
                Some(span) => span.2 = rec.offset,
                None => self.spans.push((meta.fingerprint, rec.offset, rec.offset)),
            },
        }
        if self.with_origins {
            self.origins.push(tidewater_sinks::RowOrigin {
                file: meta.inode_key,
                offset: rec.offset,
                content: content_hash(rec, message, fields),
            });
        }
        self.rows += 1;
        self.started.get_or_insert_with(Instant::now);
    }

    /// Record that every line of `file` before `offset` has been appended or skipped.
    pub fn progress(&mut self, file: FileId, offset: u64) {
        match self.acks.iter_mut().find(|(f, _)| *f == file) {
            Some((_, o)) if *o == offset => return,
            Some((_, o)) => *o = offset,
            None => self.acks.push((file, offset)),
        }
        self.started.get_or_insert_with(Instant::now);
    }

    /// Whether `max_rows` or `max_bytes` is reached.
    pub fn is_full(&self) -> bool {
        self.rows >= self.limits.max_rows || self.bytes >= self.limits.max_bytes
    }

    /// When the open batch must be flushed by age, if it holds anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.limits.max_age)
    }

    /// Whether the batch holds neither rows nor progress.
    pub fn is_empty(&self) -> bool {
        self.rows == 0 && self.acks.is_empty()
    }

    /// Finish the open batch (`None` when it is empty) and start a new one.
    pub fn finish(&mut self) -> Option<Batch> {
        if self.is_empty() {
            return None;
        }
        // A full batch is followed by another in a burst: the next one
        // reserves its sizes. A batch cut short (by age, at a stop) may sit
        // in a reservation far larger than its rows: it gives the slack
        // back, since its memory size is what the budget charges.
        let full = self.is_full();
        if self.rows > 0 {
            self.sizes.clear();
            if full {
                self.sizes
                    .extend(self.columns.iter().map(|(_, col)| col.size()));
                crate::recycle::want();
            } else {
                // The burst is over: no batch will ask for recycled buffers.
                crate::recycle::clear();
            }
        }
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|(_, col)| {
                let mut array = col.finish();
                if !full {
                    array.shrink_to_fit();
                }
                array
            })
            .collect();
        let records = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .expect("builders follow the schema, so the batch is valid");
        let mut origins = std::mem::take(&mut self.origins);
        let mut redacted = std::mem::take(&mut self.redacted);
        let (records, dropped) = match &self.drop {
            Some(drop) if records.num_rows() > 0 => {
                let matched = drop.evaluate(&records);
                let dropped = matched.true_count();
                if dropped == 0 {
                    (records, 0)
                } else {
                    let keep = BooleanArray::from(!matched.values());
                    origins = filter_per_row(&origins, &keep);
                    redacted = filter_per_row(&redacted, &keep);
                    let kept = filter_record_batch(&records, &keep)
                        .expect("a mask of the batch's own length filters it");
                    (kept, dropped as u64)
                }
            }
            _ => (records, 0),
        };
        let batch = Batch {
            source: Arc::clone(&self.source),
            id: batch_id(&std::mem::take(&mut self.spans)),
            records,
            origins,
            acks: std::mem::take(&mut self.acks),
            input_bytes: self.bytes,
            dropped,
            redacted: redacted.iter().filter(|r| **r).count() as u64,
            memory: None,
        };
        self.rows = 0;
        self.bytes = 0;
        self.started = None;
        Some(batch)
    }
}

/// The elements of `origins` (empty, or one per row: origins, flags) where
/// `keep` is true.
pub fn filter_per_row<T: Copy>(origins: &[T], keep: &BooleanArray) -> Vec<T> {
    if origins.is_empty() {
        return Vec::new();
    }
    origins
        .iter()
        .zip(keep.values().iter())
        .filter_map(|(o, k)| k.then_some(*o))
        .collect()
}

#[cfg(test)]
mod tests;
