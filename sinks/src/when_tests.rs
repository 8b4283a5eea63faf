//! The condition language: each misparse case, print → parse round-trips,
//! checks against a schema, and evaluation on record batches.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, ListArray,
    StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};

use super::*;

fn record<'a>(level: &'a str, message: &'a str) -> impl Fn(&str) -> Option<&'a str> {
    move |f| match f {
        "level" => Some(level),
        "message" => Some(message),
        "namespace" => Some("shop"),
        _ => None,
    }
}

#[test]
fn levels_compare_in_order() {
    let c = Condition::parse(r#"level >= "error""#).expect("parses");
    assert!(c.matches(record("error", "x")));
    assert!(c.matches(record("fatal", "x")));
    assert!(!c.matches(record("warn", "x")));
    assert!(!c.matches(|_| None), "no level never matches");
    let c = Condition::parse(r#"level < "info""#).expect("parses");
    assert!(c.matches(record("debug", "x")) && !c.matches(record("info", "x")));
}

#[test]
fn and_binds_tighter_than_or_and_regexes_work() {
    let c = Condition::parse(
        r#"level >= "warn" and message =~ "time ?out" or namespace == 'shop and more'"#,
    )
    .expect("parses");
    assert!(c.matches(record("warn", "request timeout")));
    assert!(!c.matches(record("warn", "refused")));
    let c = Condition::parse(r#"message !~ "health" and level == "info""#).expect("parses");
    assert!(c.matches(record("info", "GET /orders")));
    assert!(!c.matches(record("info", "GET /health")));
}

#[test]
fn matches_reads_json_paths_and_numbers_from_text() {
    let c = Condition::parse(r#"fields.status >= 500 and fields.http.method == "GET""#)
        .expect("parses");
    let row = |fields: &'static str| move |f: &str| (f == "fields").then_some(fields);
    assert!(c.matches(row(r#"{"status": 502, "http": {"method": "GET"}}"#)));
    assert!(c.matches(row(r#"{"status": "503", "http": {"method": "GET"}}"#)));
    assert!(!c.matches(row(r#"{"status": 404, "http": {"method": "GET"}}"#)));
    assert!(!c.matches(row("not json")));
    assert!(!c.matches(|_| None));
    let c = Condition::parse("status == 200").expect("parses");
    assert!(c.matches(|f| (f == "status").then_some("200.0")));
    assert!(!c.matches(|f| (f == "status").then_some("OK")));
}

#[test]
fn mistakes_are_explained() {
    for (text, says) in [
        (r#"lvl >= "error""#, "compares numbers"),
        (r#"level >= error"#, "is quoted"),
        (r#"level >= "loud""#, "unknown level"),
        (r#"message > "a""#, "compares numbers"),
        (r#"message =~ "(""#, "bad regex"),
        ("level", "expected FIELD OP"),
        ("", "empty condition"),
        ("   ", "empty condition"),
    ] {
        let err = Condition::parse(text).expect_err(text);
        assert!(err.to_string().contains(says), "{text}: {err}");
    }
}

#[test]
fn number_mistakes_are_explained() {
    for (text, column, says) in [
        (
            "message == error",
            12,
            r#"`error` is not a number; text is quoted, as in message == "error""#,
        ),
        (
            r#"fields.status >= "500""#,
            15,
            "compares numbers (or levels, on level); write fields.status >= 500 with",
        ),
        (
            r#"fields.status > "high""#,
            15,
            "write fields.status > 500 with the number unquoted",
        ),
        ("level >= 3", 10, "on level compares levels"),
        (
            "message =~ 5",
            12,
            r#"takes a quoted regex, as in message =~ "5""#,
        ),
        ("x == 1.2.3", 6, "not a number"),
        ("x == inf", 6, "not a number"),
        ("x == NaN", 6, "not a number"),
        ("x == 0x10", 6, "not a number"),
        ("x == 1e", 6, "not a number"),
        ("x == -", 6, "not a number"),
        ("x == 5ms", 6, "not a number"),
        ("x == 1e999", 6, "not a number"),
        ("fields. x == 1", 8, "expected a key after `fields.`"),
        ("fields.x. == 1", 10, "expected a key after `fields.x.`"),
        (
            r#"labels."app == 1"#,
            8,
            "the key starting here has no closing",
        ),
        ("x == 1 and", 11, "after `and`"),
        (
            "x >=",
            5,
            "expected a value after x >=: quoted text or a number",
        ),
        ("x == (1)", 6, "parentheses"),
        ("and == 1", 1, "the keyword `and`"),
        (r#"OR.x == "a""#, 1, "the keyword `OR`"),
    ] {
        let err = Condition::parse(text).expect_err(text);
        assert!(err.message.contains(says), "{text}: {err}");
        assert_eq!(err.column, column, "{text}: {err}");
    }
}

fn pods<'a>(namespace: &'a str, pod: &'a str) -> impl Fn(&str) -> Option<&'a str> {
    move |f| match f {
        "namespace" => Some(namespace),
        "pod" => Some(pod),
        "level" => Some("error"),
        _ => None,
    }
}

#[test]
fn and_or_in_capitals_work_as_written() {
    // Before: `AND` was not a keyword, and this was one comparison whose
    // value was `a" AND pod == "b`: silently never matching.
    let c = Condition::parse(r#"namespace == "a" AND pod == "b""#).expect("parses");
    assert!(c.matches(pods("a", "b")));
    assert!(!c.matches(pods("a", "c")));
    let c = Condition::parse(r#"namespace == "a" OR namespace == "b""#).expect("parses");
    assert!(c.matches(pods("a", "x")) && c.matches(pods("b", "x")));
    assert!(!c.matches(pods("c", "x")));
    let c = Condition::parse("namespace == 'a'\n\tAnd pod == 'b' oR level >= 'fatal'")
        .expect("any case, any whitespace");
    assert_eq!(
        c.to_string(),
        r#"namespace == "a" and pod == "b" or level >= "fatal""#
    );
}

#[test]
fn quotes_inside_values() {
    let c = Condition::parse(r#"message == "say \"hi\" \\o/""#).expect("escapes");
    assert!(c.matches(|f| (f == "message").then_some(r#"say "hi" \o/"#)));
    let c = Condition::parse(r#"message == 'it''s'"#);
    let err = c.expect_err("two values in a row");
    assert_eq!(err.column, 16, "{err}");
    let c = Condition::parse(r#"message == "it's" and pod == 'say "hi"'"#).expect("mixed");
    assert!(c.matches(|f| match f {
        "message" => Some("it's"),
        "pod" => Some("say \"hi\""),
        _ => None,
    }));
    // A regex keeps its backslashes: `\d` is not an escape here.
    let c = Condition::parse(r#"message =~ "^\d+ ms$""#).expect("regex");
    assert!(c.matches(|f| (f == "message").then_some("12 ms")));
    // An unescaped quote ends the value; what follows is not a keyword.
    let err = Condition::parse(r#"namespace == "a"b""#).expect_err("stray quote");
    assert!(err.to_string().contains("column 17"), "{err}");
    assert!(err.message.contains("found `b`"), "{err}");
    let err = Condition::parse(r#"message == "unterminated"#).expect_err("unterminated");
    assert_eq!(err.column, 12, "{err}");
    assert!(err.message.contains("no closing"), "{err}");
}

#[test]
fn stray_tokens_are_errors_with_their_column() {
    for (text, column, says) in [
        // Before: the value was `a" "b`, accepted.
        (r#"namespace == "a" "b""#, 18, "expected `and`, `or`"),
        (r#"level >= "error" extra"#, 18, "expected `and`, `or`"),
        (r#"level >= "error" and"#, 21, "after `and`"),
        (
            r#"level >= "error" or or level == "info""#,
            21,
            "found the keyword `or`",
        ),
        (r#"level >= "error" && pod == "x""#, 18, "write and"),
        (r#"level >= "error" || pod == "x""#, 18, "write or"),
        (r#"(level >= "error")"#, 1, "parentheses"),
        (r#"level = "error""#, 7, "did you mean =="),
        (
            r#"level >= "error" andpod == "x""#,
            18,
            "expected `and`, `or`",
        ),
        (r#"pod == "é" nöde == "x""#, 12, "expected `and`, `or`"),
        (r#""level" >= "error""#, 1, "expected FIELD OP"),
        (r#"level "error""#, 7, "expected FIELD OP"),
        (r#"level >="#, 9, "expected a value"),
        (r#"status == 500 500"#, 15, "expected `and`, `or`"),
    ] {
        let err = Condition::parse(text).expect_err(text);
        assert_eq!(err.column, column, "{text}: {err}");
        assert!(err.message.contains(says), "{text}: {err}");
        assert!(err.to_string().starts_with(&format!("column {column}: ")));
    }
}

#[test]
fn numbers_and_paths_print_in_canonical_form() {
    for (text, printed) in [
        ("fields.status >= 500", "fields.status >= 500"),
        ("duration_ms>2.5", "duration_ms > 2.5"),
        ("x==-1", "x == -1"),
        ("x < +1e3 or x >= .5", "x < +1e3 or x >= .5"),
        (
            "fields.http.method == 'GET'",
            r#"fields.http.method == "GET""#,
        ),
        (
            r#"labels."app.kubernetes.io/name" == "checkout""#,
            r#"labels."app.kubernetes.io/name" == "checkout""#,
        ),
        (
            r#"labels.'app.kubernetes.io/name' != 'x'"#,
            r#"labels."app.kubernetes.io/name" != "x""#,
        ),
        (r#"labels."team" == "a""#, r#"labels.team == "a""#),
        (r#"labels.app-name =~ "^a""#, r#"labels.app-name =~ "^a""#),
        (r#"fields."" == 1"#, r#"fields."" == 1"#),
        (r#"fields."a\"b".c == 1"#, r#"fields."a\"b".c == 1"#),
        ("9lives.2 == 0", "9lives.2 == 0"),
        (r#"status == "500""#, r#"status == "500""#),
    ] {
        let c = Condition::parse(text).expect(text);
        assert_eq!(c.to_string(), printed, "{text}");
        assert_eq!(Condition::parse(printed).expect(printed), c, "{printed}");
    }
    // A number and the same number quoted are different comparisons.
    assert_ne!(
        Condition::parse("status == 500").expect("number"),
        Condition::parse(r#"status == "500""#).expect("text")
    );
}

#[test]
fn fields_and_columns_list_what_is_read() {
    let c = Condition::parse(
        r#"level >= "warn" and fields.status >= 500 or labels.'app.kubernetes.io/name' == "x" and fields.http.method == "GET" and level == "error""#,
    )
    .expect("parses");
    assert_eq!(
        c.fields().collect::<Vec<_>>(),
        [
            "level",
            "fields.status",
            r#"labels."app.kubernetes.io/name""#,
            "fields.http.method",
            "level"
        ]
    );
    assert_eq!(c.columns(), ["level", "fields", "labels"]);
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("level", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, true),
        Field::new("status", DataType::Int64, true),
        Field::new("latency_ms", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("fields", DataType::Utf8, true),
        Field::new(
            "flags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
    ])
}

#[test]
fn check_fields_names_the_columns() {
    let columns =
        "the table has columns: timestamp, level, message, status, latency_ms, ok, fields, flags";
    for (text, error) in [
        (
            r#"level >= "warn" and lvl == "error""#,
            format!(r#"column 21: unknown field "lvl"; {columns}"#),
        ),
        (
            r#"labels.team == "payments""#,
            format!(
                r#"column 1: labels.team is a key of the JSON column "labels", which the table does not have; {columns}"#
            ),
        ),
        (
            r#"message == "x" or timestamp == "2024""#,
            r#"column 19: field "timestamp": cannot compare a timestamp column"#.into(),
        ),
        (
            r#"flags =~ "partial""#,
            r#"column 1: field "flags": cannot compare a list column"#.into(),
        ),
        (
            "status.code == 500",
            r#"column 1: status.code: the column "status" is an integer column, not JSON text: only a text column has keys"#.into(),
        ),
        (
            "ok > 0",
            r#"column 1: > compares numbers, but "ok" is a boolean column; write ok == "true""#
                .into(),
        ),
    ] {
        let c = Condition::parse(text).expect(text);
        let err = c.check_fields(&schema()).expect_err(text);
        assert_eq!(err.to_string(), error, "{text}");
    }
    // Columns without a table listed, as the message says.
    let err = Condition::parse("x == 1")
        .expect("parses")
        .check_fields(&Schema::empty())
        .expect_err("no columns");
    assert!(err.message.ends_with("the table has no columns"), "{err}");
    for fine in [
        r#"level >= "warn" and message =~ "x""#,
        "status >= 500 and latency_ms > 2.5",
        r#"ok == "true" or ok != 1"#,
        r#"fields.http.method == "GET" and fields == "{}""#,
        r#"status == "500""#,
    ] {
        let c = Condition::parse(fine).expect(fine);
        c.check_fields(&schema()).expect(fine);
    }
}

/// A batch of the given columns.
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

fn text(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Which rows of `batch` match `condition`.
fn rows(condition: &str, batch: &RecordBatch) -> Vec<bool> {
    let c = Condition::parse(condition).expect(condition);
    let out = c.evaluate(batch);
    assert_eq!(out.len(), batch.num_rows(), "{condition}");
    assert_eq!(out.null_count(), 0, "{condition}");
    out.values().iter().collect()
}

const T: bool = true;
const F: bool = false;

#[test]
fn evaluate_levels_by_rank() {
    let b = batch(vec![(
        "level",
        text(&[
            Some("error"),
            Some("warn"),
            Some("fatal"),
            None,
            Some("loud"),
            Some("info"),
            Some("trace"),
        ]),
    )]);
    assert_eq!(rows(r#"level >= "warn""#, &b), [T, T, T, F, F, F, F]);
    assert_eq!(rows(r#"level > "warn""#, &b), [T, F, T, F, F, F, F]);
    assert_eq!(rows(r#"level < "info""#, &b), [F, F, F, F, F, F, T]);
    assert_eq!(rows(r#"level <= "info""#, &b), [F, F, F, F, F, T, T]);
    assert_eq!(rows(r#"level == "loud""#, &b), [F, F, F, F, T, F, F]);
    assert_eq!(rows(r#"level != "warn""#, &b), [T, F, T, T, T, T, T]);
}

#[test]
fn evaluate_message_regexes() {
    let b = batch(vec![(
        "message",
        text(&[
            Some("request timeout"),
            Some("GET /health"),
            None,
            Some("time out"),
            Some(""),
        ]),
    )]);
    assert_eq!(rows(r#"message =~ "time ?out""#, &b), [T, F, F, T, F]);
    assert_eq!(rows(r#"message !~ "health""#, &b), [T, F, T, T, T]);
    assert_eq!(rows(r#"message =~ "^$""#, &b), [F, F, F, F, T]);
}

fn fields_batch() -> RecordBatch {
    batch(vec![(
        "fields",
        text(&[
            Some(r#"{"status": 500}"#),
            Some(r#"{"status": "503"}"#),
            Some(r#"{"status": 404}"#),
            Some(r#"{"status": "abc"}"#),
            Some(r#"{"other": 1}"#),
            None,
            Some("not json"),
            Some(r#"{"status": null}"#),
            Some(r#"{"status": 500.5}"#),
            Some(r#"{"status": [500]}"#),
            Some("[1]"),
            Some(r#"{"status": 499.99}"#),
            Some(r#"{"status": 500.0}"#),
            Some(r#"{"status": 500} trailing"#),
            Some(r#"{"status": true}"#),
            Some(r#"{"status": 9223372036854775808}"#),
        ]),
    )])
}

#[test]
fn evaluate_json_numbers() {
    let b = fields_batch();
    #[rustfmt::skip]
    assert_eq!(
        rows("fields.status >= 500", &b),
        [T, T, F, F, F, F, F, F, T, F, F, F, T, F, F, T]
    );
    #[rustfmt::skip]
    assert_eq!(
        rows("fields.status < 500", &b),
        [F, F, T, F, F, F, F, F, F, F, F, T, F, F, F, F]
    );
    #[rustfmt::skip]
    assert_eq!(
        rows("fields.status == 500", &b),
        [T, F, F, F, F, F, F, F, F, F, F, F, T, F, F, F]
    );
    // Missing and not-a-number values are not equal to 500.
    #[rustfmt::skip]
    assert_eq!(
        rows("fields.status != 500", &b),
        [F, T, T, T, T, T, T, T, T, T, T, T, F, T, T, T]
    );
}

#[test]
fn evaluate_json_text_forms() {
    let b = fields_batch();
    // Text: a JSON number as JSON writes it, arrays as compact JSON.
    #[rustfmt::skip]
    assert_eq!(
        rows(r#"fields.status == "500""#, &b),
        [T, F, F, F, F, F, F, F, F, F, F, F, F, F, F, F]
    );
    #[rustfmt::skip]
    assert_eq!(
        rows(r#"fields.status == "500.0" or fields.status == "[500]""#, &b),
        [F, F, F, F, F, F, F, F, F, T, F, F, T, F, F, F]
    );
    #[rustfmt::skip]
    assert_eq!(
        rows(r#"fields.status =~ "^5""#, &b),
        [T, T, F, F, F, F, F, F, T, F, F, F, T, F, F, F]
    );
    #[rustfmt::skip]
    assert_eq!(
        rows(r#"fields.status == "true""#, &b),
        [F, F, F, F, F, F, F, F, F, F, F, F, F, F, T, F]
    );
    // Missing (absent, NULL, invalid, null, not an object) passes !~ only.
    #[rustfmt::skip]
    assert_eq!(
        rows(r#"fields.status !~ "^[0-9]""#, &b),
        [F, F, F, T, T, T, T, T, F, T, T, F, F, T, T, F]
    );
}

#[test]
fn evaluate_numeric_equality_across_representations() {
    let b = batch(vec![(
        "fields",
        text(&[
            Some(r#"{"status": 200}"#),
            Some(r#"{"status": 200.0}"#),
            Some(r#"{"status": "200"}"#),
            Some(r#"{"status": "200 OK"}"#),
            Some(r#"{"status": " 200"}"#),
            Some(r#"{"status": 2e2}"#),
            Some(r#"{"status": "+200"}"#),
            Some(r#"{"status": 201}"#),
        ]),
    )]);
    assert_eq!(rows("fields.status == 200", &b), [T, T, T, F, F, T, T, F]);
    assert_eq!(rows("fields.status == 2.0e2", &b), [T, T, T, F, F, T, T, F]);
    assert_eq!(rows("fields.status != 200", &b), [F, F, F, T, T, F, F, T]);
    assert_eq!(
        rows(r#"fields.status == "200""#, &b),
        [T, F, T, F, F, F, F, F]
    );
}

#[test]
fn evaluate_nested_and_quoted_paths() {
    let b = batch(vec![(
        "fields",
        text(&[
            Some(r#"{"http": {"method": "GET", "path": "/"}}"#),
            Some(r#"{"http": {"method": "POST"}}"#),
            Some(r#"{"http": "GET"}"#),
            Some(r#"{"http.method": "GET"}"#),
            Some(r#"{"http": {"method": "G\u0045T"}}"#),
            Some(r#"{"ht\u0074p": {"method": "GET"}}"#),
            Some(r#"{"a": [{"http": {"method": "GET"}}], "http": {}}"#),
            Some(r#"{"http": {"method": "POST"}, "http": {"method": "GET"}}"#),
        ]),
    )]);
    assert_eq!(
        rows(r#"fields.http.method == "GET""#, &b),
        [T, F, F, F, T, T, F, T]
    );
    assert_eq!(
        rows(r#"fields."http.method" == "GET""#, &b),
        [F, F, F, T, F, F, F, F]
    );
    // A path compared both as a whole and below: the whole is compact JSON.
    assert_eq!(
        rows(
            r#"fields.http =~ "^\{" and fields.http.method == "GET" or fields.http == "GET""#,
            &b
        ),
        [T, F, T, F, T, T, F, T]
    );
}

#[test]
fn evaluate_labels_repeated_across_rows() {
    let payments = r#"{"team": "payments", "app.kubernetes.io/name": "checkout"}"#;
    let b = batch(vec![
        (
            "labels",
            text(&[
                Some(payments),
                Some(payments),
                Some(r#"{"team": "search"}"#),
                Some(r#"{"team": "search"}"#),
                Some(payments),
                None,
                Some("{"),
                Some("{"),
            ]),
        ),
        (
            "level",
            text(&[
                Some("info"),
                Some("error"),
                Some("error"),
                Some("info"),
                Some("warn"),
                Some("error"),
                Some("error"),
                Some("error"),
            ]),
        ),
    ]);
    assert_eq!(
        rows(r#"labels.team == "payments""#, &b),
        [T, T, F, F, T, F, F, F]
    );
    assert_eq!(
        rows(
            r#"level >= "warn" and labels."app.kubernetes.io/name" == "checkout""#,
            &b
        ),
        [F, T, F, F, T, F, F, F]
    );
    assert_eq!(
        rows(
            r#"labels.team != "payments" and labels.team =~ "^s" or level == "warn""#,
            &b
        ),
        [F, F, T, T, T, F, F, F]
    );
}

#[test]
fn evaluate_typed_columns() {
    let b = batch(vec![
        (
            "status",
            Arc::new(Int64Array::from(vec![
                Some(500),
                Some(200),
                None,
                Some(503),
                Some(-1),
            ])) as ArrayRef,
        ),
        (
            "latency_ms",
            Arc::new(Float64Array::from(vec![
                Some(2.5),
                Some(2.6),
                Some(f64::NAN),
                None,
                Some(200.0),
            ])),
        ),
        (
            "ok",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(false),
            ])),
        ),
    ]);
    assert_eq!(rows("status >= 500", &b), [T, F, F, T, F]);
    assert_eq!(rows("status == -1", &b), [F, F, F, F, T]);
    assert_eq!(rows("status != 500", &b), [F, T, T, T, T]);
    assert_eq!(rows(r#"status == "500""#, &b), [T, F, F, F, F]);
    assert_eq!(rows(r#"status == "500.0""#, &b), [F, F, F, F, F]);
    assert_eq!(rows(r#"status =~ "^5""#, &b), [T, F, F, T, F]);
    assert_eq!(rows(r#"status =~ "^-""#, &b), [F, F, F, F, T]);
    assert_eq!(rows("latency_ms > 2.5", &b), [F, T, F, F, T]);
    assert_eq!(rows("latency_ms >= 2.5", &b), [T, T, F, F, T]);
    assert_eq!(rows("latency_ms == 200", &b), [F, F, F, F, T]);
    assert_eq!(rows(r#"latency_ms == "200.0""#, &b), [F, F, F, F, T]);
    assert_eq!(rows(r#"latency_ms =~ "^2\.5$""#, &b), [T, F, F, F, F]);
    assert_eq!(rows(r#"ok == "true""#, &b), [T, F, F, T, F]);
    assert_eq!(rows(r#"ok != "true""#, &b), [F, T, T, F, T]);
    assert_eq!(rows(r#"ok =~ "^f""#, &b), [F, T, F, F, T]);
    assert_eq!(rows("ok == 1", &b), [F, F, F, F, F]);
}

#[test]
fn evaluate_other_string_layouts() {
    let values = [Some(r#"{"a": 1}"#), None, Some(r#"{"a": "x"}"#)];
    let large: ArrayRef = Arc::new(LargeStringArray::from(values.to_vec()));
    let view: ArrayRef = Arc::new(StringViewArray::from(values.to_vec()));
    for column in [large, view] {
        let b = batch(vec![("fields", column.clone()), ("m", column)]);
        assert_eq!(rows("fields.a == 1", &b), [T, F, F]);
        assert_eq!(rows(r#"m =~ "x" or fields.a != 1"#, &b), [F, T, T]);
    }
}

#[test]
fn evaluate_missing_values_match_only_negations() {
    let b = batch(vec![
        (
            "fields",
            text(&[
                None,
                Some("{}"),
                Some(r#"{"a": null}"#),
                Some(r#"{"a": "x"}"#),
            ]),
        ),
        ("m", text(&[None, None, Some("x"), Some("y")])),
    ]);
    // A column that is not in the batch: missing in every row.
    assert_eq!(rows(r#"team == "x""#, &b), [F, F, F, F]);
    assert_eq!(rows(r#"team != "x""#, &b), [T, T, T, T]);
    assert_eq!(rows(r#"team !~ "x""#, &b), [T, T, T, T]);
    assert_eq!(rows("team != 1", &b), [T, T, T, T]);
    assert_eq!(rows("team < 1", &b), [F, F, F, F]);
    assert_eq!(rows("labels.team != 1", &b), [T, T, T, T]);
    assert_eq!(rows(r#"labels.team == "x""#, &b), [F, F, F, F]);
    // NULL, absent key, JSON null.
    assert_eq!(rows(r#"fields.a == "x""#, &b), [F, F, F, T]);
    assert_eq!(rows(r#"fields.a != "x""#, &b), [T, T, T, F]);
    assert_eq!(rows(r#"fields.a !~ "x""#, &b), [T, T, T, F]);
    assert_eq!(rows(r#"fields.a =~ "" "#, &b), [F, F, F, T]);
    assert_eq!(rows(r#"m != "x""#, &b), [T, T, F, T]);
    // A column of a type that does not compare is missing too.
    let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1, 2, 3, 4]));
    let b = batch(vec![("timestamp", times)]);
    assert_eq!(rows(r#"timestamp != "1""#, &b), [T, T, T, T]);
    assert_eq!(rows(r#"timestamp == "1""#, &b), [F, F, F, F]);
}

#[test]
fn evaluate_and_binds_tighter_than_or() {
    // All eight combinations of a, b, c.
    let bit = |k: usize| -> ArrayRef {
        text(
            &(0..8)
                .map(|row| Some(if row >> k & 1 == 1 { "1" } else { "0" }))
                .collect::<Vec<_>>(),
        )
    };
    let b = batch(vec![("a", bit(2)), ("b", bit(1)), ("c", bit(0))]);
    let expect = |f: fn(bool, bool, bool) -> bool| -> Vec<bool> {
        (0..8)
            .map(|row| f(row >> 2 & 1 == 1, row >> 1 & 1 == 1, row & 1 == 1))
            .collect()
    };
    assert_eq!(
        rows("a == 1 or b == 1 and c == 1", &b),
        expect(|a, b, c| a || (b && c))
    );
    assert_eq!(
        rows("a == 1 and b == 1 or c == 1", &b),
        expect(|a, b, c| (a && b) || c)
    );
    assert_eq!(
        rows(
            r#"a == "1" and b != 1 or c == 0 and a == 0 or b == 1 and c == 1"#,
            &b
        ),
        expect(|a, b, c| (a && !b) || (!c && !a) || (b && c))
    );
    assert_eq!(rows("a == 1 and a == 0", &b), [F; 8]);
    assert_eq!(rows("a == 1 or a == 0 or b == 7", &b), [T; 8]);
}

#[test]
fn evaluate_an_empty_batch() {
    let b = batch(vec![("level", text(&[]))]);
    assert_eq!(rows(r#"level >= "warn" or fields.a == 1"#, &b), [F; 0]);
}

#[test]
fn evaluate_treats_a_list_column_as_missing() {
    // A list column in a batch is missing to evaluate, like any type that
    // does not compare (check_fields reports it first).
    let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1)]),
        None,
    ]));
    let b = batch(vec![("flags", list)]);
    assert_eq!(rows(r#"flags =~ "1""#, &b), [F, F]);
    assert_eq!(rows(r#"flags !~ "1""#, &b), [T, T]);
}

mod round_trip {
    use super::super::eval::Test;
    use super::super::*;
    use proptest::prelude::*;

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("finite", |v| v.is_finite())
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            finite().prop_map(|v| v.to_string()),
            finite().prop_map(|v| format!("{v:e}")),
            finite().prop_map(|v| format!("{v:E}")),
        ]
    }

    /// A column and keys; never `and` / `or` as the column.
    fn field() -> impl Strategy<Value = (String, Vec<String>)> {
        let column = prop_oneof![
            prop::sample::select(vec!["level", "message", "fields", "labels", "status"])
                .prop_map(String::from),
            "[A-Za-z0-9_]{1,8}",
        ]
        .prop_filter("not a keyword", |c| {
            !c.eq_ignore_ascii_case("and") && !c.eq_ignore_ascii_case("or")
        });
        let key = prop_oneof!["[A-Za-z0-9_-]{1,6}", any::<String>()];
        (column, prop::collection::vec(key, 0..3))
    }

    fn comparison() -> impl Strategy<Value = Comparison> {
        let text = (
            field(),
            prop::sample::select(vec![Op::Eq, Op::Ne]),
            any::<String>().prop_map(Value::Text),
        );
        let number = (
            field(),
            prop::sample::select(Op::ALL.to_vec()),
            number().prop_map(Value::Number),
        )
            .prop_filter("levels compare with levels", |((c, p), op, _)| {
                let level = c == "level" && p.is_empty();
                match op {
                    Op::Matches | Op::NotMatches => false,
                    _ => !(level && op.orders()),
                }
            });
        let regex = (
            field(),
            prop::sample::select(vec![Op::Matches, Op::NotMatches]),
            any::<String>().prop_map(|v| Value::Text(regex::escape(&v))),
        );
        let rank = (
            prop::sample::select(vec![Op::Ge, Op::Le, Op::Gt, Op::Lt]),
            prop::sample::select(crate::event::LEVELS.to_vec()),
        )
            .prop_map(|(op, v)| {
                (
                    ("level".to_string(), Vec::new()),
                    op,
                    Value::Text(v.to_string()),
                )
            });
        prop_oneof![text, number, regex, rank].prop_map(|((column, path), op, value)| {
            Comparison {
                field: field_text(&column, &path),
                column,
                path,
                op,
                value,
                // Not compared: equality is on what is written.
                test: Test::text("", false),
                offset: 0,
                at: 1,
                json: None,
            }
        })
    }

    fn condition() -> impl Strategy<Value = Condition> {
        prop::collection::vec(prop::collection::vec(comparison(), 1..4), 1..4)
            .prop_map(Condition::new)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn printed_conditions_parse_back(c in condition()) {
            let text = c.to_string();
            let parsed = Condition::parse(&text)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(&parsed, &c, "{}", text);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn keywords_in_any_case_and_spacing_parse_the_same(
            c in condition(),
            and in prop::sample::select(vec![" and ", " AND ", "\tAnd\n", "  aNd  "]),
            or in prop::sample::select(vec![" or ", " OR ", "\n\tOr ", "  oR  "]),
        ) {
            let text = c
                .any
                .iter()
                .map(|all| all.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(and))
                .collect::<Vec<_>>()
                .join(or);
            let parsed = Condition::parse(&text)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(&parsed, &c, "{}", text);
        }
    }
}

/// `evaluate` (a column at a time, on the rows still undecided, JSON parsed
/// once per row) agrees with `matches` (a record at a time).
mod evaluate_agrees_with_matches {
    use super::*;
    use proptest::prelude::*;

    const CONDITIONS: [&str; 8] = [
        r#"a == "1""#,
        "a >= 1",
        r#"b =~ "x""#,
        r#"b !~ "^x""#,
        "fields.n > 1",
        r#"fields.s == "x""#,
        "fields.n != 2",
        r#"fields.o.k =~ "1""#,
    ];

    const FIELDS: [Option<&str>; 8] = [
        None,
        Some("{}"),
        Some(r#"{"n": 2, "s": "x"}"#),
        Some(r#"{"n": "3", "o": {"k": 1}}"#),
        Some(r#"{"n": null, "s": "y", "o": {"k": "x1"}}"#),
        Some("nope"),
        Some(r#"{"o": [1]}"#),
        Some(r#"{"n": 1.5, "s": "x", "o": {}}"#),
    ];

    fn cell() -> impl Strategy<Value = Option<&'static str>> {
        prop::sample::select(vec![
            None,
            Some("0"),
            Some("1"),
            Some("2"),
            Some("x"),
            Some("yx"),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn on_random_rows(
            groups in prop::collection::vec(
                prop::collection::vec(prop::sample::select(CONDITIONS.to_vec()), 1..4),
                1..4,
            ),
            table in prop::collection::vec(
                (cell(), cell(), prop::sample::select(FIELDS.to_vec())),
                0..40,
            ),
        ) {
            let text = groups
                .iter()
                .map(|all| all.join(" and "))
                .collect::<Vec<_>>()
                .join(" or ");
            let c = Condition::parse(&text).expect("parses");
            let a: Vec<_> = table.iter().map(|r| r.0).collect();
            let b: Vec<_> = table.iter().map(|r| r.1).collect();
            let f: Vec<_> = table.iter().map(|r| r.2).collect();
            let batch = batch(vec![("a", text_array(&a)), ("b", text_array(&b)), ("fields", text_array(&f))]);
            let got: Vec<bool> = c.evaluate(&batch).values().iter().collect();
            let want: Vec<bool> = table
                .iter()
                .map(|&(a, b, f)| {
                    c.matches(|name| match name {
                        "a" => a,
                        "b" => b,
                        "fields" => f,
                        _ => None,
                    })
                })
                .collect();
            prop_assert_eq!(got, want, "{}", text);
        }
    }

    fn text_array(values: &[Option<&str>]) -> ArrayRef {
        text(values)
    }
}
