//! The `when` parser: each misparse case, and print → parse round-trips.

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
fn mistakes_are_explained() {
    for (text, says) in [
        (r#"lvl >= "error""#, "unknown field"),
        (r#"level >= error"#, "quoted"),
        (r#"level >= "loud""#, "unknown level"),
        (r#"message > "a""#, "compares levels"),
        (r#"message =~ "(""#, "bad regex"),
        ("level", "expected FIELD OP"),
        ("", "empty condition"),
        ("   ", "empty condition"),
    ] {
        let err = Condition::parse(text).expect_err(text);
        assert!(err.to_string().contains(says), "{text}: {err}");
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
            "unknown field",
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
        (r#"level >="#, 9, "expected a quoted value"),
    ] {
        let err = Condition::parse(text).expect_err(text);
        assert_eq!(err.column, column, "{text}: {err}");
        assert!(err.message.contains(says), "{text}: {err}");
        assert!(err.to_string().starts_with(&format!("column {column}: ")));
    }
}

mod round_trip {
    use super::super::*;
    use proptest::prelude::*;

    fn comparison() -> impl Strategy<Value = Comparison> {
        let field = prop::sample::select(FIELDS.to_vec());
        let equality = (
            field.clone(),
            prop::sample::select(vec![Op::Eq, Op::Ne]),
            any::<String>(),
        )
            .prop_map(|(f, op, v)| (f, op, v));
        let regex = (
            field,
            prop::sample::select(vec![Op::Matches, Op::NotMatches]),
            any::<String>(),
        )
            .prop_map(|(f, op, v)| (f, op, regex::escape(&v)));
        let rank = (
            prop::sample::select(vec![Op::Ge, Op::Le, Op::Gt, Op::Lt]),
            prop::sample::select(crate::event::LEVELS.to_vec()),
        )
            .prop_map(|(op, v)| ("level", op, v.to_string()));
        prop_oneof![equality, regex, rank].prop_map(|(field, op, value)| Comparison {
            field: field.to_string(),
            op,
            value,
            // Not compared: equality is on what is written.
            test: Test::Eq(String::new()),
        })
    }

    fn condition() -> impl Strategy<Value = Condition> {
        prop::collection::vec(prop::collection::vec(comparison(), 1..4), 1..4)
            .prop_map(|any| Condition { any })
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
