use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use super::literal::{has_anchor, needles};
use super::*;

const ISSUE: &str = r"(?i)(password|passwd|token|secret|api_key)=\S+";

fn rule(pattern: &str, replace: &str) -> RedactConfig {
    RedactConfig {
        pattern: pattern.into(),
        replace: replace.into(),
        sources: None,
    }
}

fn issue() -> Redactor {
    Redactor::for_source(&[rule(ISSUE, "$1=[REDACTED]")], "app").expect("applies")
}

fn check_err(rules: &[RedactConfig]) -> String {
    check(rules).expect_err("invalid").to_string()
}

#[test]
fn the_issues_rule_masks_each_value() {
    let r = issue();
    assert_eq!(
        r.apply("login ok user=bob password=hunter2 token=abc"),
        "login ok user=bob password=[REDACTED] token=[REDACTED]"
    );
    assert!(matches!(
        r.apply("login ok user=bob password=hunter2"),
        Cow::Owned(_)
    ));
}

#[test]
fn case_does_not_matter_under_i() {
    let r = issue();
    assert_eq!(
        r.apply("PASSWORD=x Token=y Api_Key=z"),
        "PASSWORD=[REDACTED] Token=[REDACTED] Api_Key=[REDACTED]"
    );
    // Unicode case folding: KELVIN SIGN is a `k` under (?i).
    assert_eq!(r.apply("to\u{212A}en=abc"), "to\u{212A}en=[REDACTED]");
}

#[test]
fn nothing_matched_is_borrowed() {
    let r = issue();
    for text in [
        "GET /healthz 200",
        "",
        // The needle `=` is there, the rule does not match.
        "user=bob status=200",
        "password = spaced",
    ] {
        assert!(matches!(r.apply(text), Cow::Borrowed(_)), "{text}");
    }
    for json in [
        r#"{"user":"bob","status":200}"#,
        r#"{"q":"a=b","msg":"say \"hi\"\n"}"#,
        // A key is not a value.
        r#"{"password=hunter2":"x"}"#,
        "{}",
    ] {
        assert!(matches!(r.apply_json(json), Cow::Borrowed(_)), "{json}");
    }
}

#[test]
fn sources_choose_the_rules() {
    let mut only_app = rule("secret=\\S+", "secret=*");
    only_app.sources = Some(vec!["app".into(), "web".into()]);
    let everywhere = rule("token=\\S+", "token=*");
    let rules = [only_app.clone()];
    assert!(Redactor::for_source(&rules, "db").is_none());
    let app = Redactor::for_source(&rules, "app").expect("app");
    assert_eq!(app.apply("secret=1"), "secret=*");

    let rules = [only_app, everywhere];
    let db = Redactor::for_source(&rules, "db").expect("the rule for all");
    assert_eq!(db.apply("secret=1 token=2"), "secret=1 token=*");
    let web = Redactor::for_source(&rules, "web").expect("both");
    assert_eq!(web.apply("secret=1 token=2"), "secret=* token=*");
    assert!(Redactor::for_source(&[], "app").is_none());
}

#[test]
fn rules_apply_in_order_each_on_the_one_before() {
    let rules = [
        rule(r"card=\d+", "card=XXXX"),
        rule("XXXX", "####"),
        rule(r"(?P<user>\w+)@example\.com", "${user}@…"),
    ];
    let r = Redactor::for_source(&rules, "a").expect("rules");
    assert_eq!(
        r.apply("card=4111 by ann@example.com"),
        "card=#### by ann@…"
    );
    // The second rule's needle only appears once the first has run.
    assert_eq!(r.apply("XXXX"), "####");
}

#[test]
fn json_values_are_masked_and_the_json_stays_valid() {
    let r = issue();
    let json = r#"{"user":"bob","msg":"login password=hunter2","n":1.50,"ok":true,"nested":{"a":["token=abc",2,null]},"z":"end"}"#;
    let out = r.apply_json(json);
    assert!(matches!(out, Cow::Owned(_)));
    // Everything but the two values is copied byte for byte.
    assert_eq!(
        out,
        r#"{"user":"bob","msg":"login password=[REDACTED]","n":1.50,"ok":true,"nested":{"a":["token=[REDACTED]",2,null]},"z":"end"}"#
    );
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["msg"], "login password=[REDACTED]");
    assert_eq!(v["nested"]["a"][0], "token=[REDACTED]");
    assert_eq!(v["user"], "bob");

    // Without the per-value walk, `\S+` would eat `"}`.
    let out = r.apply_json(r#"{"msg":"password=hunter2"}"#);
    assert_eq!(out, r#"{"msg":"password=[REDACTED]"}"#);
    // Spacing around keys and values is kept.
    let out = r.apply_json("{ \"msg\" : \"token=1\" , \"k\" :\t\"v\" }");
    assert_eq!(out, "{ \"msg\" : \"token=[REDACTED]\" , \"k\" :\t\"v\" }");
}

#[test]
fn json_escapes_are_decoded_then_written_back() {
    let r = issue();
    let json = r#"{"msg":"say \"hi\" password=hun\"ter\\2\nnext line","path":"C:\\tmp"}"#;
    let out = r.apply_json(json);
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["msg"], "say \"hi\" password=[REDACTED]\nnext line");
    assert_eq!(v["path"], "C:\\tmp");
    // The raw text has no `=`: only the decoded value shows the secret
    // (Go's encoding/json writes `<>&` this way).
    let out = r.apply_json(r#"{"msg":"password\u003dhunter2 \u0026 more"}"#);
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["msg"], "password=[REDACTED] & more");
    // A replacement holding characters that JSON escapes.
    let q = Redactor::for_source(&[rule("secret", "\"\\\u{1}\t")], "a").expect("rule");
    let out = q.apply_json(r#"{"a":"a secret"}"#);
    assert_eq!(out, r#"{"a":"a \"\\\u0001\t"}"#);
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["a"], "a \"\\\u{1}\t");
}

#[test]
fn escapes_that_stand_for_a_needles_bytes() {
    // Needles holding `/`, a tab, `"` or a non-ASCII character: the raw
    // text holds `\/`, `\t`, `\"`, `\u00e9` instead.
    for (pattern, json, value) in [
        ("a/b", r#"{"x":"a\/b"}"#, "a/b"),
        ("a\tb", r#"{"x":"a\tb"}"#, "a\tb"),
        ("a\"b", r#"{"x":"a\"b"}"#, "a\"b"),
        ("é=", r#"{"x":"\u00e9="}"#, "é="),
        ("=x", r#"{"x":"\u003dx"}"#, "=x"),
    ] {
        let r = Redactor::for_source(&[rule(pattern, "<$0>")], "a").expect("rule");
        let out = r.apply_json(json);
        let v: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(v["x"], format!("<{value}>"), "{pattern}");
    }
}

#[test]
fn a_records_message_and_fields() {
    let r = issue();
    let line = r#"{"msg":"login password=hunter2","user":"bob"}"#.to_string();
    let mut message = Some(Cow::Borrowed(&line[8..30]));
    assert_eq!(message.as_deref(), Some("login password=hunter2"));
    let mut fields = Some(Cow::Borrowed(line.as_str()));
    assert!(r.apply_record(&mut message, &mut fields));
    assert_eq!(message.as_deref(), Some("login password=[REDACTED]"));
    assert_eq!(
        fields.as_deref(),
        Some(r#"{"msg":"login password=[REDACTED]","user":"bob"}"#)
    );

    // Nothing to mask: both stay borrowed.
    let line = r#"{"msg":"login ok","user":"bob"}"#.to_string();
    let mut message = Some(Cow::Borrowed(&line[8..16]));
    let mut fields = Some(Cow::Borrowed(line.as_str()));
    assert!(!r.apply_record(&mut message, &mut fields));
    assert!(matches!(message, Some(Cow::Borrowed("login ok"))));
    assert!(matches!(fields, Some(Cow::Borrowed(_))));

    // A text body: the message is not in the (clean) fields.
    let mut message = Some(Cow::Borrowed("retry token=abc"));
    let mut fields = Some(Cow::Owned(r#"{"attempt":2}"#.to_string()));
    assert!(r.apply_record(&mut message, &mut fields));
    assert_eq!(message.as_deref(), Some("retry token=[REDACTED]"));
    let mut none = None;
    assert!(!r.apply_record(&mut none, &mut None));

    // A JSON body without a message key is its own message: masked as JSON.
    let line = r#"{"event":"login","password":"x","note":"token=abc"}"#.to_string();
    let mut message = Some(Cow::Borrowed(line.as_str()));
    let mut fields = Some(Cow::Borrowed(line.as_str()));
    assert!(r.apply_record(&mut message, &mut fields));
    let masked = r#"{"event":"login","password":"x","note":"token=[REDACTED]"}"#;
    assert_eq!(fields.as_deref(), Some(masked));
    assert_eq!(message.as_deref(), Some(masked));
}

#[test]
fn anchors_are_a_values_ends_in_json() {
    let r = Redactor::for_source(&[rule(r"^Bearer \S+$", "Bearer *")], "a").expect("rule");
    assert_eq!(
        r.apply_json(r#"{"auth":"Bearer abc","x":"no Bearer abc"}"#),
        r#"{"auth":"Bearer *","x":"no Bearer abc"}"#
    );
    assert_eq!(r.apply("Bearer abc"), "Bearer *");
    // A JWT by its shape: the key's name is not seen.
    let jwt =
        Redactor::for_source(&[rule(r"^eyJ[\w-]+\.[\w-]+\.[\w-]+$", "[JWT]")], "a").expect("rule");
    assert_eq!(
        jwt.apply_json(r#"{"password":"eyJhbGc.eyJzdWI.SflKx"}"#),
        r#"{"password":"[JWT]"}"#
    );
}

#[test]
fn not_json_is_masked_as_text() {
    let r = issue();
    assert_eq!(
        r.apply_json(r#"{"a":"token=1"#),
        r#"{"a":"token=[REDACTED]"#
    );
}

#[test]
fn check_names_the_key() {
    assert!(check(&[rule(ISSUE, "$1=[REDACTED]")]).is_ok());
    let e = check_err(&[rule(ISSUE, "x"), rule("(?P<a>", "x")]);
    assert!(
        e.starts_with("redact[1].pattern: is not a valid Rust regex:"),
        "{e}"
    );
    assert_eq!(
        check_err(&[rule("a", "b"), rule("(a)=x", "$2")]),
        "redact[1].replace: refers to group $2, but the pattern has 1 group"
    );
    assert_eq!(
        check_err(&[rule("a=x", "${1}")]),
        "redact[0].replace: refers to group ${1}, but the pattern has no group"
    );
    let e = check_err(&[rule("(a)", "$1a")]);
    assert!(
        e.starts_with("redact[0].replace: $1a is read as the group named \"1a\"")
            && e.ends_with("write ${1}a"),
        "{e}"
    );
    let e = check_err(&[rule("(?P<user>a)", "$usr")]);
    assert_eq!(
        e,
        "redact[0].replace: refers to the group \"usr\", but the pattern's named groups are: user"
    );
    let e = check_err(&[rule("(a)", "${name}")]);
    assert!(e.ends_with("the pattern names no group"), "{e}");
    for ok in [
        "$0", "$$1", "${user}x", "$user", "$", "a$", "$-", "${1", "${1}a",
    ] {
        assert!(check(&[rule("(?P<user>a)", ok)]).is_ok(), "{ok}");
    }
    let mut empty = rule("a", "b");
    empty.sources = Some(Vec::new());
    let e = check_err(&[empty]);
    assert!(e.starts_with("redact[0].sources: must not be empty"), "{e}");
}

#[test]
fn a_pattern_that_matches_nothing_is_an_error() {
    for p in [
        "",
        "a*",
        "x?",
        "(?m)^",
        "$",
        r"\b",
        r"\B",
        r"(?:a|)",
        r"\ba*",
        r"(?m)$",
        r"\<",
        r"(?-u:\b)",
        "a{0}",
        r"(?R)$",
    ] {
        let e = check_err(&[rule(p, "x")]);
        assert!(
            e.starts_with("redact[0].pattern: can match the empty string"),
            "{p:?}: {e}"
        );
    }
    for p in ["a", r"\w+", "^a", r"\ba\b", "a|b", ".", r"(?m)^x$"] {
        assert!(check(&[rule(p, "x")]).is_ok(), "{p:?}");
    }
}

#[test]
fn sources_must_exist() {
    let mut r = rule("a", "b");
    r.sources = Some(vec!["app".into(), "ap".into()]);
    let rules = [rule("c", "d"), r];
    assert!(check_sources(&rules, |n| n == "app" || n == "ap").is_ok());
    let e = check_sources(&rules, |n| n == "app").expect_err("ap");
    assert_eq!(e.key, "redact[1].sources[1]");
    assert_eq!(
        e.message,
        "\"ap\" is not a source: there is no [sources.ap]"
    );
}

#[test]
fn toml_tables() {
    #[derive(Deserialize)]
    struct Doc {
        redact: Vec<RedactConfig>,
    }
    let d: Doc = toml::from_str(
        "[[redact]]\npattern = 'k=\\S+'\n[[redact]]\npattern = 'x'\nreplace = 'y'\nsources = ['app']\n",
    )
    .expect("valid");
    assert_eq!(d.redact[0].pattern, r"k=\S+");
    assert_eq!(d.redact[0].replace, DEFAULT_REPLACE);
    assert_eq!(
        d.redact[1].sources.as_deref(),
        Some(&["app".to_string()][..])
    );
    let e = toml::from_str::<Doc>("[[redact]]\npattern = 'x'\nreplacement = 'y'\n")
        .err()
        .expect("unknown key");
    assert!(e.to_string().contains("unknown field `replacement`"), "{e}");
}

#[test]
fn words_every_match_holds() {
    let words = |w: &[&str]| Some(w.iter().map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>());
    let cases: [(&str, Option<Vec<Vec<u8>>>); 12] = [
        (
            ISSUE,
            words(&["api_key", "passwd", "password", "secret", "token"]),
        ),
        ("token=\\S+", words(&["token="])),
        ("(?i)Bearer [A-Za-z0-9._-]+", words(&["bearer "])),
        ("ab+c", words(&["bc"])),
        ("x{2,}yz", words(&["xyz"])),
        ("(?:foo|bar)=baz", words(&["=baz"])),
        ("a|b", None), // the class [ab]
        (r"\b\d{16}\b", None),
        (r"[^]=]+", None),
        ("(?i)é", None),
        ("(?i)k=", words(&["k="])),
        (r"[[:alpha:]]+@[\w.]+", words(&["@"])),
    ];
    for (pattern, want) in cases {
        Regex::new(pattern).expect(pattern);
        assert_eq!(needles(pattern), want, "{pattern}");
    }
    assert!(!has_anchor(ISSUE));
    for p in [r"[^a]\$", "[$]", r"\^"] {
        assert!(!has_anchor(p), "{p}");
    }
    for p in ["^a", "a$", r"\Aa", r"a\z", r"(?m)^a", r"\\$", r"\[^a"] {
        assert!(has_anchor(p), "{p}");
    }
}

#[test]
fn the_word_scan_sees_words_that_overlap_a_false_hit() {
    let words = super::gate::Words::new(&[b"abab_x".to_vec(), b"token".to_vec()]).expect("words");
    assert!(words.may_be_in(b"..ababab_x.."));
    assert!(words.may_be_in(b"TOTOKEN"));
    assert!(words.may_be_in("x é".as_bytes())); // not ASCII: the regexes decide
    assert!(!words.may_be_in(b"abab_y tokn"));
}

/// A small deterministic generator for the property tests.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn text(&mut self, pieces: &[&str], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| pieces[self.below(pieces.len())]).collect()
    }
}

const PIECES: [&str; 24] = [
    "=", "a", "b", "c", "]", "k", "K", "\u{212A}", "é", "É", ".", " ", "x", "y", "z", "\n", "ab",
    "foo", "bar", "baz", "@", "0", "\"", "\\",
];

const PATTERNS: [&str; 21] = [
    "ab+c",
    "a=?b",
    "(a=)?b",
    "x{0}=",
    "x{2,}yz",
    "(?:foo|bar)=baz",
    r"[]=]x",
    r"[^]=]+=",
    r"(?i)k=",
    r"(?i)K",
    r"(?i:a)b",
    r"(?i)a(?-i:b)c",
    r"\b=\b",
    r"[[:alpha:]]+@[\w.]+",
    r"\.\<\w",
    "é=|x",
    r"(?i)é=",
    "(a|b)+c",
    r"a\nb",
    r#"\\""#,
    r"(?U)a+?b{1,2}?",
];

/// Every match contains the needle: on 3,000 texts per pattern.
#[test]
fn needles_are_in_every_match() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for pattern in PATTERNS {
        let regex = Regex::new(pattern).expect(pattern);
        let Some(words) = needles(pattern) else {
            continue;
        };
        let gate = super::gate::Words::new(&words).expect("an automaton");
        for _ in 0..3000 {
            let text = rng.text(&PIECES, 8);
            if let Some(m) = regex.find(&text) {
                assert!(
                    gate.may_be_in(m.as_str().as_bytes()),
                    "{pattern}: match {:?} of {text:?} lacks all of {words:?}",
                    m.as_str(),
                );
            }
        }
    }
}

/// `apply` is the rules' `replace_all` in order, and `apply_json` is that
/// on each string value of the parsed JSON.
#[test]
fn the_gates_lose_nothing() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let rules: Vec<RedactConfig> = PATTERNS
        .iter()
        .chain([ISSUE, r"^a", r"b$", r"\bfoo\b"].iter())
        .map(|p| rule(p, "<$0>"))
        .collect();
    for window in rules.windows(3) {
        check(window).expect("valid rules");
        let r = Redactor::for_source(window, "a").expect("rules");
        let regexes: Vec<Regex> = window
            .iter()
            .map(|w| Regex::new(&w.pattern).unwrap())
            .collect();
        let reference = |text: &str| {
            let mut out = text.to_string();
            for re in &regexes {
                out = re.replace_all(&out, "<$0>").into_owned();
            }
            out
        };
        for _ in 0..400 {
            let text = rng.text(&PIECES, 8);
            let got = r.apply(&text);
            assert_eq!(got, reference(&text), "{window:?} on {text:?}");
            assert_eq!(matches!(got, Cow::Owned(_)), got != text);

            let values: Vec<Value> = (0..3)
                .map(|_| Value::String(rng.text(&PIECES, 6)))
                .collect();
            let doc =
                serde_json::json!({"a": values[0], "foo=b": [values[1], 1], "k": {"x": values[2]}});
            let mut json = doc.to_string();
            if rng.below(3) == 0 {
                // Escape `=` and `a` the way Go does `<>&`.
                json = json.replace('=', "\\u003d").replace("\"a\"", "\"\\u0061\"");
            }
            let masked: Vec<String> = values
                .iter()
                .map(|v| reference(v.as_str().unwrap()))
                .collect();
            let expected =
                serde_json::json!({"a": masked[0], "foo=b": [masked[1], 1], "k": {"x": masked[2]}});
            // Any slice of the fields as the message, as a JSON body's `msg`.
            let bounds: Vec<usize> = (0..=json.len())
                .filter(|i| json.is_char_boundary(*i))
                .collect();
            let a = bounds[rng.below(bounds.len())];
            let b = bounds[rng.below(bounds.len())];
            let slice = &json[a.min(b)..a.max(b)];
            let mut message = Some(Cow::Borrowed(slice));
            let mut fields = Some(Cow::Borrowed(json.as_str()));
            let changed = r.apply_record(&mut message, &mut fields);
            if slice.len() == json.len() {
                assert_eq!(message, fields);
            } else {
                assert_eq!(message.as_deref(), Some(&*r.apply(slice)));
            }
            assert_eq!(fields.as_deref(), Some(&*r.apply_json(&json)));
            assert_eq!(
                changed,
                matches!(message, Some(Cow::Owned(_))) || matches!(fields, Some(Cow::Owned(_)))
            );
            let out = r.apply_json(&json);
            let parsed: Value = serde_json::from_str(&out).expect("valid JSON");
            assert_eq!(parsed, expected, "{window:?} on {json}");
            if parsed == doc {
                assert!(matches!(out, Cow::Borrowed(_)), "{window:?} on {json}");
            }
        }
    }
}
