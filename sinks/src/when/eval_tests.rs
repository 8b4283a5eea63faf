//! Conditions evaluated on record batches: each kind of column and value,
//! and `evaluate` against `matches` on random rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, ListArray,
    StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Int64Type;

use super::*;

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
