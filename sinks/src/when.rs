//! `when` and `drop` conditions: which rows a sink receives (a sink's
//! `when`), which rows a source throws away (a source's `drop`).
//!
//! A condition is comparisons `FIELD OP VALUE` joined by `and` / `or`;
//! `and` binds tighter than `or`, there are no parentheses, and `and` / `or`
//! may be written in any case:
//!
//! ```text
//! level >= "error"
//! level >= "warn" and message =~ "timeout|refused"
//! namespace == "payments" or level == "fatal"
//! fields.status >= 500 and fields.http.method == "POST"
//! labels.team == "payments" and labels."app.kubernetes.io/name" != "canary"
//! ```
//!
//! # Fields
//!
//! - A column of the table, by its name: `level`, `message`, `namespace`,
//!   `status`, `source`, … Names are letters, digits and `_`. A name that is
//!   not a column of the table is an error when the configuration is
//!   checked, and so is a timestamp or list column: they do not compare.
//! - A key of a JSON column, after a dot: `fields.status`, `labels.team`,
//!   `annotations.owner`. The column (`fields`, `labels`, `annotations`)
//!   holds a JSON object as text; further dots go into nested objects:
//!   `fields.http.method` is `"GET"` in `{"http": {"method": "GET"}}`. A key
//!   is letters, digits, `_` and `-`; a key with any other character is
//!   quoted: `labels."app.kubernetes.io/name"`.
//!
//! # Values
//!
//! - Text, quoted with `"` or `'`. Inside, `\"`, `\'` and `\\` stand for the
//!   quote and the backslash; any other `\x` is kept as it is, so regexes
//!   such as `"\d+"` need no doubling.
//! - Numbers, unquoted, in decimal with an optional sign, fraction and
//!   exponent: `500`, `-1`, `2.5`, `1e3`.
//!
//! # Operators
//!
//! - `==`, `!=` with a number compare numbers: the row's value equals the
//!   number when it is an integer or float column, a JSON number, or text
//!   that is a number as above (`"500"`, as the logfmt parser writes it; not
//!   `" 500"`), of the same value: `fields.status == 200` matches `200`,
//!   `200.0` and `"200"`. A row's value that is not a number is not equal
//!   to it (it matches `!=`).
//! - `==`, `!=` with quoted text compare the row's value as text: text as
//!   it is, a number as JSON writes it (`200`, `2.5`; a float keeps its
//!   `.0`: `200.0`), a boolean as `true` / `false`, a JSON object or array
//!   as compact JSON.
//! - `=~`, `!~`: the quoted regex (the `regex` crate's syntax) is found
//!   anywhere in the value as text; anchor it with `^…$` to match the whole.
//! - `<`, `<=`, `>`, `>=` on `level` compare levels, with a quoted level, in
//!   the order trace < debug < info < warn < error < fatal; a row whose level
//!   is none of these never matches. On any other field they compare
//!   numbers: the value is an unquoted number (`fields.status >= 500`), and
//!   a row's value that is not a number (as above) never matches.
//!
//! # Missing values
//!
//! A row's value is missing when the column is NULL or not in the batch;
//! for a key, also when the column's text is not a JSON object (invalid
//! JSON included), when the object has no such key (or a step of the path
//! is not an object), and when the key's value is `null`. A missing value
//! matches only `!=` and `!~`.

mod eval;
mod json;
mod parse;

use std::fmt;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Schema};

use eval::Test;

/// A parsed condition: any of its `and`-groups matches. Printed (`Display`)
/// in the canonical syntax, which parses back to an equal condition.
#[derive(Debug, Clone)]
pub struct Condition {
    any: Vec<Vec<Comparison>>,
    /// The JSON columns the comparisons read keys of, and which keys.
    json: Vec<json::Plan>,
}

/// Conditions are equal when their comparisons are.
impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.any == other.any
    }
}

#[derive(Debug, Clone)]
struct Comparison {
    /// The field in canonical form: the column, then `.key`s, quoted where
    /// needed.
    field: String,
    column: String,
    /// Keys into the column's JSON; empty for the column itself.
    path: Vec<String>,
    op: Op,
    value: Value,
    test: Test,
    /// Where the field starts in the parsed text: byte offset, and 1-based
    /// column in characters.
    offset: usize,
    at: usize,
    /// For a JSON path: which of the condition's [`json::Plan`]s, and the
    /// path's slot in it.
    json: Option<(usize, usize)>,
}

/// Comparisons are equal when they are written the same (the compiled
/// test follows from field, operator and value).
impl PartialEq for Comparison {
    fn eq(&self, other: &Self) -> bool {
        self.column == other.column
            && self.path == other.path
            && self.op == other.op
            && self.value == other.value
    }
}

/// A comparison's value as written.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// Quoted text, unescaped.
    Text(String),
    /// An unquoted number literal, as written.
    Number(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Matches,
    NotMatches,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    /// Longest first, so that `>=` is not read as `>`.
    const ALL: [Op; 8] = [
        Op::Eq,
        Op::Ne,
        Op::Matches,
        Op::NotMatches,
        Op::Ge,
        Op::Le,
        Op::Gt,
        Op::Lt,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }

    /// `<`, `<=`, `>`, `>=`.
    fn orders(self) -> bool {
        matches!(self, Op::Ge | Op::Le | Op::Gt | Op::Lt)
    }
}

/// Why a condition does not parse, or does not fit a table; and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct WhenError {
    /// 1-based, in characters, of where the problem starts.
    pub column: usize,
    /// The byte offset of the same place.
    pub offset: usize,
    pub message: String,
}

impl Condition {
    /// Parse `text`; the error says what is wrong and where. Any field name
    /// is accepted: [`Condition::check_fields`] checks them against a table.
    pub fn parse(text: &str) -> Result<Self, WhenError> {
        parse::parse(text).map(Self::new)
    }

    fn new(mut any: Vec<Vec<Comparison>>) -> Self {
        let mut json: Vec<json::Plan> = Vec::new();
        for c in any.iter_mut().flatten() {
            c.json = None;
            if c.path.is_empty() {
                continue;
            }
            let plan = match json.iter().position(|p| p.column == c.column) {
                Some(p) => p,
                None => {
                    json.push(json::Plan::new(&c.column));
                    json.len() - 1
                }
            };
            c.json = Some((plan, json[plan].insert(&c.path)));
        }
        Self { any, json }
    }

    /// The fields compared, in canonical form (as [`Display`](fmt::Display)
    /// prints them: `level`, `fields.http.method`,
    /// `labels."app.kubernetes.io/name"`), in the order written, repeats
    /// included.
    #[cfg(test)]
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.any.iter().flatten().map(|c| c.field.as_str())
    }

    /// The columns the condition reads (a JSON path's column once), in the
    /// order first written.
    #[cfg(test)]
    pub fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in self.any.iter().flatten() {
            if !out.contains(&c.column.as_str()) {
                out.push(&c.column);
            }
        }
        out
    }

    /// Whether every field can be read from a table of `schema`: a plain
    /// name is a column of a type that compares (text, integer, float,
    /// boolean), a dotted path's first name a text (JSON) column. The error
    /// points at the field in the condition's text and lists the columns.
    pub fn check_fields(&self, schema: &Schema) -> Result<(), WhenError> {
        for c in self.any.iter().flatten() {
            let err = |message: String| WhenError {
                column: c.at,
                offset: c.offset,
                message,
            };
            let have = || {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                if names.is_empty() {
                    "the table has no columns".to_string()
                } else {
                    format!("the table has columns: {}", names.join(", "))
                }
            };
            let Ok(column) = schema.field_with_name(&c.column) else {
                return Err(err(if c.path.is_empty() {
                    format!("unknown field {:?}; {}", c.column, have())
                } else {
                    format!(
                        "{} is a key of the JSON column {:?}, which the table does not have; {}",
                        c.field,
                        c.column,
                        have()
                    )
                }));
            };
            let ty = column.data_type();
            let text = matches!(
                ty,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            if !c.path.is_empty() {
                if !text {
                    return Err(err(format!(
                        "{}: the column {:?} is {}, not JSON text: only a text column has keys",
                        c.field,
                        c.column,
                        describe(ty)
                    )));
                }
                continue;
            }
            match ty {
                _ if text => {}
                DataType::Int64 | DataType::Float64 | DataType::Boolean
                    if matches!(c.test, Test::Rank(_)) =>
                {
                    return Err(err(format!(
                        "{} {} compares level names, but {:?} is {}",
                        c.op.as_str(),
                        c.value,
                        c.column,
                        describe(ty)
                    )))
                }
                DataType::Boolean if c.op.orders() => {
                    return Err(err(format!(
                        "{} compares numbers, but {:?} is a boolean column; write {} == \"true\"",
                        c.op.as_str(),
                        c.column,
                        c.field
                    )))
                }
                DataType::Int64 | DataType::Float64 | DataType::Boolean => {}
                _ => {
                    return Err(err(format!(
                        "field {:?}: cannot compare {}",
                        c.column,
                        describe(ty)
                    )))
                }
            }
        }
        Ok(())
    }

    /// Which rows of `batch` match: true where a row does, never null.
    /// Columns are found by name; one that `batch` lacks is missing in every
    /// row.
    pub fn evaluate(&self, batch: &RecordBatch) -> BooleanArray {
        eval::evaluate(self, batch)
    }

    /// Whether one record matches; `get` returns a column's value as text
    /// (a JSON column's JSON text, for keys of it). Numbers are compared by
    /// parsing the text. The record-at-a-time oracle the tests check
    /// [`Condition::evaluate`] against; nothing else needs it.
    #[cfg(test)]
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        eval::matches(self, get)
    }
}

/// A column type in words, for errors.
fn describe(ty: &DataType) -> String {
    match ty {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            "a timestamp column".into()
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            "a list column".into()
        }
        DataType::Int64 => "an integer column".into(),
        DataType::Float64 => "a float column".into(),
        DataType::Boolean => "a boolean column".into(),
        other => format!("a column of type {other}"),
    }
}

/// Whether a key is written without quotes.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A field in canonical form: `column.key."other key"`.
fn field_text(column: &str, path: &[String]) -> String {
    let mut out = column.to_string();
    for key in path {
        out.push('.');
        if plain_key(key) {
            out.push_str(key);
        } else {
            out.push_str(&quoted(key));
        }
    }
    out
}

/// `text` in double quotes, `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (g, all) in self.any.iter().enumerate() {
            if g > 0 {
                f.write_str(" or ")?;
            }
            for (c, comparison) in all.iter().enumerate() {
                if c > 0 {
                    f.write_str(" and ")?;
                }
                write!(f, "{comparison}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.field, self.op.as_str(), self.value)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(text) => f.write_str(&quoted(text)),
            Value::Number(literal) => f.write_str(literal),
        }
    }
}

#[cfg(test)]
#[path = "when/eval_tests.rs"]
mod eval_tests;
#[cfg(test)]
#[path = "when_tests.rs"]
mod tests;
