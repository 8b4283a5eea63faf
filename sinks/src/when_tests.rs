//! The condition language: each misparse case, print → parse round-trips
//! and checks against a schema (evaluation: `when/eval_tests.rs`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

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
