//! The Arrow column builders of a batch, how an extracted value
//! (`[[columns]]`) is converted to its column's type, and a record's text
//! masked by `[[redact]]`.

use std::borrow::Cow;

use arrow::array::{
    new_null_array, ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::MutableBuffer;
use arrow::datatypes::DataType;

use crate::parse::body::{rfc3339_micros, Scalar};
use crate::parse::Record;
use crate::redact::Redactor;

pub(super) enum Col {
    Ts(TimestampMicrosecondBuilder),
    Str(StrCol),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    StrList(ListBuilder<StringBuilder>),
}

impl Col {
    /// The rows appended, and the bytes of their text in a string column.
    pub(super) fn size(&self) -> (usize, usize) {
        match self {
            Col::Ts(b) => (b.len(), 0),
            // All NULL so far: nothing worth reserving.
            Col::Str(b) if b.values.is_empty() => (0, 0),
            Col::Str(b) => (b.len(), b.values.values_slice().len()),
            Col::Int(b) => (b.len(), 0),
            Col::Float(b) => (b.len(), 0),
            Col::Bool(b) => (b.len(), 0),
            Col::StrList(b) => (b.len(), 0),
        }
    }

    /// The column's array; the builder starts empty again.
    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Ts(b) => ArrayBuilder::finish(b),
            Col::Str(b) => b.finish(),
            Col::Int(b) => ArrayBuilder::finish(b),
            Col::Float(b) => ArrayBuilder::finish(b),
            Col::Bool(b) => ArrayBuilder::finish(b),
            Col::StrList(b) => ArrayBuilder::finish(b),
        }
    }

    /// Give an empty builder room for `rows` rows (and `bytes` of text in
    /// a string column), so that a batch like the last one is built
    /// without growing and copying its buffers.
    pub(super) fn reserve(&mut self, (rows, bytes): (usize, usize)) {
        if self.size().0 != 0 || rows == 0 {
            return;
        }
        match self {
            Col::Ts(b) => {
                *b = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC")
            }
            Col::Str(b) => b.values = string_builder(rows, bytes),
            Col::Int(b) => *b = Int64Builder::with_capacity(rows),
            Col::Float(b) => *b = Float64Builder::with_capacity(rows),
            Col::Bool(b) => *b = BooleanBuilder::with_capacity(rows),
            // Flags are rare: the list stays small.
            Col::StrList(_) => {}
        }
    }
}

/// An empty string builder with room for `rows` and `bytes` of text, in a
/// recycled buffer when there is one ([`crate::recycle`]).
fn string_builder(rows: usize, bytes: usize) -> StringBuilder {
    let Some(values) = crate::recycle::take(bytes) else {
        return StringBuilder::with_capacity(rows, bytes);
    };
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0i32);
    // SAFETY: a single zero offset and no text are a valid empty array.
    unsafe {
        StringBuilder::new_from_buffer(
            MutableBuffer::from(offsets),
            MutableBuffer::from(values),
            None,
        )
    }
}

/// A string column whose leading NULLs are only counted: a column that
/// stays NULL for a whole batch (no Pod metadata, no parse error) costs a
/// counter per row and becomes one null array.
#[derive(Default)]
pub(super) struct StrCol {
    values: StringBuilder,
    leading_nulls: usize,
}

impl StrCol {
    pub(super) fn append_value(&mut self, value: impl AsRef<str>) {
        if self.leading_nulls > 0 {
            self.values.append_nulls(self.leading_nulls);
            self.leading_nulls = 0;
        }
        self.values.append_value(value);
    }

    pub(super) fn append_null(&mut self) {
        if self.values.is_empty() {
            self.leading_nulls += 1;
        } else {
            self.values.append_null();
        }
    }

    pub(super) fn append_option(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }

    fn len(&self) -> usize {
        self.values.len() + self.leading_nulls
    }

    fn finish(&mut self) -> ArrayRef {
        match std::mem::take(&mut self.leading_nulls) {
            0 => ArrayBuilder::finish(&mut self.values),
            nulls => new_null_array(&DataType::Utf8, nulls),
        }
    }
}

/// The value of an extra column after conversion to its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Converted {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Ts(i64),
    /// A string value: taken from the record's extras when appending.
    Str,
}

pub(super) fn convert(value: Option<&Scalar>, ty: &DataType) -> Result<Converted, ()> {
    let Some(value) = value else {
        return Ok(Converted::Null);
    };
    Ok(match (ty, value) {
        (_, Scalar::Other) => return Err(()),
        (DataType::Utf8, _) => Converted::Str,
        (DataType::Int64, Scalar::Int(n)) => Converted::Int(*n),
        (DataType::Int64, Scalar::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Converted::Int(*f as i64)
        }
        (DataType::Int64, Scalar::Str(s)) => Converted::Int(s.trim().parse().map_err(|_| ())?),
        (DataType::Float64, Scalar::Int(n)) => Converted::Float(*n as f64),
        (DataType::Float64, Scalar::Float(f)) => Converted::Float(*f),
        (DataType::Float64, Scalar::Str(s)) => Converted::Float(s.trim().parse().map_err(|_| ())?),
        (DataType::Boolean, Scalar::Bool(b)) => Converted::Bool(*b),
        (DataType::Boolean, Scalar::Str(s)) => Converted::Bool(s.trim().parse().map_err(|_| ())?),
        (DataType::Timestamp(..), Scalar::Str(s)) => Converted::Ts(rfc3339_micros(s).ok_or(())?),
        _ => return Err(()),
    })
}

pub(super) fn append_extra(col: &mut Col, value: Converted, raw: Option<&Option<Scalar>>) {
    match (col, value) {
        (Col::Int(b), Converted::Int(n)) => b.append_value(n),
        (Col::Float(b), Converted::Float(f)) => b.append_value(f),
        (Col::Bool(b), Converted::Bool(v)) => b.append_value(v),
        (Col::Ts(b), Converted::Ts(t)) => b.append_value(t),
        (Col::Str(b), Converted::Str) => match raw.and_then(Option::as_ref) {
            Some(Scalar::Str(s)) => b.append_value(s),
            Some(Scalar::Int(n)) => b.append_value(n.to_string()),
            Some(Scalar::Float(f)) => b.append_value(f.to_string()),
            Some(Scalar::Bool(v)) => b.append_value(v.to_string()),
            _ => b.append_null(),
        },
        (col, _) => append_null(col),
    }
}

pub(super) fn append_null(col: &mut Col) {
    match col {
        Col::Ts(b) => b.append_null(),
        Col::Str(b) => b.append_null(),
        Col::Int(b) => b.append_null(),
        Col::Float(b) => b.append_null(),
        Col::Bool(b) => b.append_null(),
        Col::StrList(b) => b.append(false),
    }
}

/// What `[[redact]]` changed in one record; `None` fields were left alone.
pub(super) struct Masked {
    pub message: Option<String>,
    pub fields: Option<String>,
    pub parse_error: Option<String>,
    /// STRING `[[columns]]` read from the body, by index.
    pub extras: Vec<(usize, Option<Scalar<'static>>)>,
}

/// `rec`'s text as `r` masks it: the message, the `fields` JSON, the parse
/// error (it quotes the line) and the STRING columns read from the body;
/// `None` when no rule matched (most records: then nothing is allocated).
pub(super) fn mask(r: &Redactor, rec: &Record, extra_types: &[DataType]) -> Option<Box<Masked>> {
    let mut message = rec.message.as_deref().map(Cow::Borrowed);
    let mut fields = rec.fields.as_deref().map(Cow::Borrowed);
    let mut changed = r.apply_record(&mut message, &mut fields);
    let owned = |text: Option<Cow<'_, str>>| match text {
        Some(Cow::Owned(s)) => Some(s),
        _ => None,
    };
    let parse_error = rec
        .parse_error
        .as_deref()
        .and_then(|e| owned(Some(r.apply(e))));
    let mut extras = Vec::new();
    for (i, ty) in extra_types.iter().enumerate() {
        if let (DataType::Utf8, Some(Some(Scalar::Str(v)))) = (ty, rec.extras.get(i)) {
            if let Cow::Owned(m) = r.apply(v) {
                extras.push((i, Some(Scalar::Str(Cow::Owned(m)))));
            }
        }
    }
    changed |= parse_error.is_some() || !extras.is_empty();
    changed.then(|| {
        Box::new(Masked {
            message: owned(message),
            fields: owned(fields),
            parse_error,
            extras,
        })
    })
}
