//! Comparisons on values: one record's ([`matches`]) or a batch's columns
//! ([`evaluate`]).

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Range;

use arrow::array::{
    Array, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int64Array, LargeStringArray,
    RecordBatch, StringArray, StringViewArray,
};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use regex::Regex;

use super::json::{self, Leaf, Plan};
use super::{Comparison, Condition, Op};
use crate::event::level_rank;

/// What a comparison checks of a value.
#[derive(Debug, Clone)]
pub(super) enum Test {
    /// `==` / `!=` with text: the value as text.
    Text {
        want: String,
        /// `want` as an integer, if an integer's text can equal it.
        int: Option<i64>,
        negate: bool,
    },
    /// `=~` / `!~`.
    Regex { re: Regex, negate: bool },
    /// `level` compared by rank: the value's rank must be in this range.
    Rank(Range<usize>),
    /// Any operator but `=~` / `!~` with a number.
    Num { op: Op, num: Num },
}

/// A number: compared exactly when both sides are integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    /// `text` as a number, if it is one in decimal: an optional sign,
    /// digits with an optional fraction, an optional exponent (`-1`, `2.5`,
    /// `.5`, `1e3`). Not `inf`, `NaN`, hex, nor with spaces around.
    pub(super) fn parse(text: &str) -> Option<Num> {
        let b = text.as_bytes();
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
        let int_end = digits(i);
        let mut count = int_end - i;
        i = int_end;
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            let end = digits(i + 1);
            count += end - (i + 1);
            i = end;
        }
        if count == 0 {
            return None;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return None;
            }
            i = end;
        }
        if i != b.len() {
            return None;
        }
        if integer {
            if let Ok(v) = text.parse::<i64>() {
                return Some(Num::Int(v));
            }
        }
        let v: f64 = text.parse().ok()?;
        v.is_finite().then_some(Num::Float(v))
    }

    fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            _ => self.float().partial_cmp(&other.float()),
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }
}

/// One row's value of a field, borrowed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cell<'s> {
    Missing,
    Str(&'s str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A JSON object or array, as compact JSON: text, never a number.
    Json(&'s str),
}

impl<'s> Cell<'s> {
    fn num(self) -> Option<Num> {
        match self {
            Cell::Str(s) => Num::parse(s),
            Cell::Int(v) => Some(Num::Int(v)),
            Cell::Float(v) if v.is_finite() => Some(Num::Float(v)),
            _ => None,
        }
    }

    /// The value as text, written into `scratch` if it is not text already.
    fn text<'t>(self, scratch: &'t mut String) -> &'t str
    where
        's: 't,
    {
        match self {
            Cell::Str(s) | Cell::Json(s) => s,
            Cell::Bool(b) => bool_text(b),
            Cell::Missing => "",
            Cell::Int(v) => {
                scratch.clear();
                let _ = write!(scratch, "{v}");
                scratch
            }
            Cell::Float(v) => {
                scratch.clear();
                let _ = match serde_json::Number::from_f64(v) {
                    Some(n) => write!(scratch, "{n}"),
                    None => write!(scratch, "{v}"),
                };
                scratch
            }
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl Test {
    pub(super) fn text(want: &str, negate: bool) -> Test {
        Test::Text {
            want: want.to_string(),
            int: want.parse::<i64>().ok().filter(|v| v.to_string() == want),
            negate,
        }
    }

    /// Whether a missing value passes: only for `!=` and `!~`.
    fn negated(&self) -> bool {
        match self {
            Test::Text { negate, .. } | Test::Regex { negate, .. } => *negate,
            Test::Num { op, .. } => *op == Op::Ne,
            Test::Rank(_) => false,
        }
    }

    #[inline]
    fn holds(&self, cell: Cell<'_>, scratch: &mut String) -> bool {
        if let Cell::Missing = cell {
            return self.negated();
        }
        match self {
            Test::Text { want, int, negate } => {
                let equal = match cell {
                    Cell::Str(s) | Cell::Json(s) => s == want,
                    Cell::Int(v) => *int == Some(v),
                    _ => cell.text(scratch) == want,
                };
                equal != *negate
            }
            Test::Regex { re, negate } => re.is_match(cell.text(scratch)) != *negate,
            Test::Rank(range) => match cell {
                Cell::Str(s) => level_rank(s).is_some_and(|r| range.contains(&r)),
                _ => false,
            },
            Test::Num { op, num } => {
                let Some(v) = cell.num() else {
                    return *op == Op::Ne;
                };
                let ord = v.compare(*num);
                match op {
                    Op::Eq => ord == Some(Ordering::Equal),
                    Op::Ne => ord != Some(Ordering::Equal),
                    Op::Lt => ord == Some(Ordering::Less),
                    Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    Op::Gt => ord == Some(Ordering::Greater),
                    Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                    Op::Matches | Op::NotMatches => false,
                }
            }
        }
    }
}

/// A text column of any of Arrow's string layouts.
#[derive(Clone, Copy)]
enum Strings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    fn of(array: &'a dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => array.as_string_opt::<i32>().map(Strings::Utf8),
            DataType::LargeUtf8 => array.as_string_opt::<i64>().map(Strings::Large),
            DataType::Utf8View => array.as_string_view_opt().map(Strings::View),
            _ => None,
        }
    }

    #[inline]
    fn get(self, row: usize) -> Option<&'a str> {
        match self {
            Strings::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Strings::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Strings::View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// Which rows of `batch` match `condition`.
///
/// Comparisons run a column at a time, each only on the rows whose outcome
/// it can still change: those its `and`-group has not ruled out and no
/// earlier group has matched. A JSON column is parsed at most once per row,
/// and not again for a row whose text is the previous parsed row's.
pub(super) fn evaluate(condition: &Condition, batch: &RecordBatch) -> BooleanArray {
    let n = batch.num_rows();
    let mut json: Vec<Rows<'_>> = condition
        .json
        .iter()
        .map(|plan| Rows {
            strings: batch
                .column_by_name(&plan.column)
                .and_then(|c| Strings::of(c.as_ref())),
            rows: n,
            plan,
            parses: Vec::new(),
            row_parse: Vec::new(),
            last: None,
        })
        .collect();
    let mut scratch = String::new();
    let mut any = BooleanBuffer::new_unset(n);
    let mut matched = 0;
    for group in &condition.any {
        if matched == n {
            break;
        }
        let mut all = !&any;
        for c in group {
            if all.count_set_bits() == 0 {
                break;
            }
            let bits = compare(c, batch, &all, &mut json, &mut scratch);
            all = &all & &bits;
        }
        any = &any | &all;
        matched = any.count_set_bits();
    }
    BooleanArray::new(any, None)
}

/// The rows of `rows` where `c` holds.
fn compare<'a>(
    c: &Comparison,
    batch: &RecordBatch,
    rows: &BooleanBuffer,
    json: &mut [Rows<'a>],
    scratch: &mut String,
) -> BooleanBuffer {
    let n = rows.len();
    let test = &c.test;
    if let Some((plan, slot)) = c.json {
        let parsed = &mut json[plan];
        return collect(rows, |i| {
            parsed.parse(i);
            test.holds(parsed.cell(i, slot), scratch)
        });
    }
    let Some(column) = batch.column_by_name(&c.column) else {
        return if test.negated() {
            rows.clone()
        } else {
            BooleanBuffer::new_unset(n)
        };
    };
    let column = column.as_ref();
    if let Some(strings) = Strings::of(column) {
        return match strings {
            Strings::Utf8(a) => collect(rows, |i| {
                let cell = if a.is_null(i) {
                    Cell::Missing
                } else {
                    Cell::Str(a.value(i))
                };
                test.holds(cell, scratch)
            }),
            _ => collect(rows, |i| {
                test.holds(strings.get(i).map_or(Cell::Missing, Cell::Str), scratch)
            }),
        };
    }
    match column.data_type() {
        DataType::Int64 => {
            let a: &Int64Array = column.as_primitive::<Int64Type>();
            collect(rows, |i| {
                let cell = if a.is_null(i) {
                    Cell::Missing
                } else {
                    Cell::Int(a.value(i))
                };
                test.holds(cell, scratch)
            })
        }
        DataType::Float64 => {
            let a: &Float64Array = column.as_primitive::<Float64Type>();
            collect(rows, |i| {
                let cell = if a.is_null(i) {
                    Cell::Missing
                } else {
                    Cell::Float(a.value(i))
                };
                test.holds(cell, scratch)
            })
        }
        DataType::Boolean => {
            let a: &BooleanArray = column.as_boolean();
            collect(rows, |i| {
                let cell = if a.is_null(i) {
                    Cell::Missing
                } else {
                    Cell::Bool(a.value(i))
                };
                test.holds(cell, scratch)
            })
        }
        // Not comparable (check_fields says so): missing.
        _ if test.negated() => rows.clone(),
        _ => BooleanBuffer::new_unset(n),
    }
}

/// The rows of `rows` for which `holds`, as a buffer as long as `rows`.
#[inline]
fn collect(rows: &BooleanBuffer, mut holds: impl FnMut(usize) -> bool) -> BooleanBuffer {
    let mut out = BooleanBufferBuilder::new(rows.len());
    out.append_n(rows.len(), false);
    for i in rows.set_indices() {
        if holds(i) {
            out.set_bit(i, true);
        }
    }
    out.finish()
}

/// One JSON column's keys that the condition reads, parsed row by row as
/// comparisons need them.
struct Rows<'a> {
    plan: &'a Plan,
    strings: Option<Strings<'a>>,
    /// The batch's rows.
    rows: usize,
    /// The leaves of each parse, `plan.slots` each; the first parse is all
    /// missing (NULL, invalid JSON).
    parses: Vec<Leaf<'a>>,
    /// Each row's parse; [`UNPARSED`] until needed.
    row_parse: Vec<u32>,
    /// The row parsed last.
    last: Option<usize>,
}

const UNPARSED: u32 = u32::MAX;

impl<'a> Rows<'a> {
    /// Parse row `i` unless it is.
    #[inline]
    fn parse(&mut self, i: usize) {
        if self.row_parse.is_empty() {
            self.row_parse = vec![UNPARSED; self.rows];
            self.parses.resize_with(self.plan.slots, || Leaf::Missing);
        }
        if self.row_parse[i] != UNPARSED {
            return;
        }
        let Some(text) = self.strings.and_then(|s| s.get(i)) else {
            self.row_parse[i] = 0;
            return;
        };
        if let Some(last) = self.last {
            if self.strings.and_then(|s| s.get(last)) == Some(text) {
                self.row_parse[i] = self.row_parse[last];
                return;
            }
        }
        let k = self.plan.slots;
        let base = self.parses.len();
        self.parses.resize_with(base + k, || Leaf::Missing);
        self.row_parse[i] = if json::walk(self.plan, text, &mut self.parses[base..]) {
            (base / k) as u32
        } else {
            self.parses.truncate(base);
            0
        };
        self.last = Some(i);
    }

    /// Row `i`'s value of the path at `slot`; the row is parsed.
    #[inline]
    fn cell(&self, i: usize, slot: usize) -> Cell<'_> {
        self.parses[self.row_parse[i] as usize * self.plan.slots + slot].cell()
    }
}

/// [`Condition::matches`]: one record's values as text.
#[cfg(test)]
pub(super) fn matches<'a>(condition: &Condition, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    let mut parsed: Vec<Option<Vec<Leaf<'a>>>> = vec![None; condition.json.len()];
    let mut scratch = String::new();
    for group in &condition.any {
        let mut all = true;
        for c in group {
            let cell = match c.json {
                None => get(&c.column).map_or(Cell::Missing, Cell::Str),
                Some((p, slot)) => {
                    let leaves = parsed[p].get_or_insert_with(|| {
                        let plan = &condition.json[p];
                        let mut leaves = vec![Leaf::Missing; plan.slots];
                        if let Some(text) = get(&plan.column) {
                            json::walk(plan, text, &mut leaves);
                        }
                        leaves
                    });
                    leaves[slot].cell()
                }
            };
            if !c.test.holds(cell, &mut scratch) {
                all = false;
                break;
            }
        }
        if all {
            return true;
        }
    }
    false
}
