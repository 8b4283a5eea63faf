//! Body parsers, one at a time, on lines of about the same length (~250
//! bytes): the JSON body (the baseline), nginx, LTSV, logfmt, a regex, and
//! Java stack traces through the multiline joiner. Each run feeds 10,000
//! lines through a `FileParser` (framing `text`, or `cri` for the traces,
//! with and without `[multiline] languages = ["java"]`) and counts the
//! records; criterion reports input bytes per second.
//!
//! The `redact` group (issue 15) measures `[[redact]]` on CRI lines with
//! JSON bodies: the parse alone, then the parse with the issue's rule
//! applied to each record's message and fields, when no record matches and
//! when 1 % do; and the prefilters on the bodies alone.
//!
//! `cargo bench --bench parsers`; figures in BENCHMARKS.md.

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use regex::{Regex, RegexSet};
use tidewater::parse::multiline::{Language, MultilineConfig, Rules};
use tidewater::parse::rules::{BodyKeys, BodyRules, ParserKind};
use tidewater::parse::{FileParser, Flags, Format, Record};
use tidewater::redact::{RedactConfig, Redactor};

const LINES: usize = 10_000;

const PATHS: [&str; 4] = [
    "/api/v1/items",
    "/api/v1/orders/1234",
    "/healthz",
    "/static/app.js",
];
const AGENTS: [&str; 2] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "curl/8.5.0",
];

fn nginx(i: usize) -> String {
    format!(
        r#"10.{}.{}.{} - - [02/Dec/2026:13:{:02}:{:02} +0000] "GET {}?page={} HTTP/1.1" {} {} "https://shop.example.com/" "{}" "-" 0.{:03} 0.{:03}"#,
        i % 256,
        i / 256 % 256,
        i % 7,
        i / 60 % 60,
        i % 60,
        PATHS[i % 4],
        i,
        [200, 200, 404, 502][i % 4],
        1000 + i % 5000,
        AGENTS[i % 2],
        i % 1000,
        i % 900
    )
}

fn json(i: usize) -> String {
    format!(
        r#"{{"time":"2026-12-02T13:{:02}:{:02}.{:03}Z","level":"info","msg":"request served","method":"GET","path":"{}","status":{},"bytes":{},"duration_ms":{},"user_agent":"{}","request_id":"{:016x}"}}"#,
        i / 60 % 60,
        i % 60,
        i % 1000,
        PATHS[i % 4],
        [200, 200, 404, 502][i % 4],
        1000 + i % 5000,
        i % 1000,
        AGENTS[i % 2],
        i * 7919
    )
}

fn ltsv(i: usize) -> String {
    format!(
        "time:[02/Dec/2026:22:{:02}:{:02} +0900]\thost:10.0.{}.{}\tmethod:GET\tpath:{}\tstatus:{}\tsize:{}\treferer:-\tua:{}\treqtime:0.{:03}\tapptime:0.{:03}",
        i / 60 % 60,
        i % 60,
        i % 256,
        i % 7,
        PATHS[i % 4],
        [200, 200, 404, 502][i % 4],
        1000 + i % 5000,
        AGENTS[i % 2],
        i % 1000,
        i % 900
    )
}

fn logfmt(i: usize) -> String {
    format!(
        r#"time=2026-12-02T13:{:02}:{:02}Z level=info msg="request served" method=GET path={} status={} bytes={} duration=0.{:03}s user_agent="{}" request_id={:016x}"#,
        i / 60 % 60,
        i % 60,
        PATHS[i % 4],
        [200, 200, 404, 502][i % 4],
        1000 + i % 5000,
        i % 1000,
        AGENTS[i % 2],
        i * 7919
    )
}

const REGEX: &str = r#"^(?P<time>\S+) (?P<level>[A-Z]+) \[(?P<thread>[^\]]+)\] (?P<logger>\S+) - (?P<message>.*?) status=(?P<status>\d+) took=(?P<took>\d+)ms$"#;

fn regex_line(i: usize) -> String {
    format!(
        "2026-12-02T13:{:02}:{:02}.{:03}Z INFO [http-nio-8080-exec-{}] com.example.shop.web.RequestLogger - request served for {} with agent {} status={} took={}ms",
        i / 60 % 60,
        i % 60,
        i % 1000,
        i % 16,
        PATHS[i % 4],
        AGENTS[i % 2],
        [200, 200, 404, 502][i % 4],
        i % 1000
    )
}

/// CRI lines: a log line, then every tenth record a Java trace of 12 lines.
fn java_cri(i: usize) -> String {
    let ts = format!("2026-12-02T13:{:02}:{:02}.{:09}Z", i / 60 % 60, i % 60, i);
    let body = match i % 20 {
        0..=7 => format!(
            "2026-12-02 13:55:36.123 INFO [http-nio-8080-exec-{}] com.example.shop.web.RequestLogger - request served for {} in {} ms",
            i % 16, PATHS[i % 4], i % 1000
        ),
        8 => "2026-12-02 13:55:36.123 ERROR [http-nio-8080-exec-3] com.example.shop.OrderService - order failed".into(),
        9 => "java.lang.IllegalStateException: inventory for item 1234 is negative after the reservation".into(),
        18 => "Caused by: java.sql.SQLException: deadlock detected while waiting for lock on orders".into(),
        19 => "\t... 42 more".into(),
        n => format!("\tat com.example.shop.inventory.InventoryRepository.reserve{n}(InventoryRepository.java:{})", 100 + n),
    };
    format!("{ts} stdout F {body}")
}

fn corpus(make: fn(usize) -> String) -> (Vec<String>, u64) {
    let lines: Vec<String> = (0..LINES).map(make).collect();
    let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
    (lines, bytes)
}

fn run(parser: &mut FileParser, lines: &[String]) -> usize {
    let mut records = 0;
    let mut emit = |r: &Record| {
        black_box(r);
        records += 1;
    };
    for (i, line) in lines.iter().enumerate() {
        parser.line(line.as_bytes(), i as u64 * 256, Flags::default(), &mut emit);
    }
    parser.flush(&mut emit);
    records
}

fn rules(parser: ParserKind, pattern: Option<&str>) -> Arc<BodyRules> {
    let keys = BodyKeys {
        parser,
        pattern,
        ..BodyKeys::default()
    };
    Arc::new(BodyRules::new(&keys, Arc::from(Vec::<String>::new())).expect("valid rules"))
}

/// A case: its name, its line generator, its parser and pattern.
type Case = (
    &'static str,
    fn(usize) -> String,
    ParserKind,
    Option<&'static str>,
);

fn parsers(c: &mut Criterion) {
    let mut group = c.benchmark_group("body");
    let cases: [Case; 5] = [
        ("json", json, ParserKind::Auto, None),
        ("nginx", nginx, ParserKind::Nginx, None),
        ("ltsv", ltsv, ParserKind::Ltsv, None),
        ("logfmt", logfmt, ParserKind::Logfmt, None),
        ("regex", regex_line, ParserKind::Regex, Some(REGEX)),
    ];
    for (name, make, kind, pattern) in cases {
        let (lines, bytes) = corpus(make);
        let rules = rules(kind, pattern);
        let mut check = FileParser::new(Format::Text, Arc::clone(&rules), 1 << 20);
        assert_eq!(
            run(&mut check, &lines),
            LINES,
            "{name}: one record per line"
        );
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut p = FileParser::new(Format::Text, Arc::clone(&rules), 1 << 20);
                run(&mut p, &lines)
            })
        });
    }
    let (lines, bytes) = corpus(java_cri);
    let rules = rules(ParserKind::Auto, None);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("cri_text", |b| {
        b.iter(|| {
            let mut p = FileParser::new(Format::Cri, Arc::clone(&rules), 1 << 20);
            run(&mut p, &lines)
        })
    });
    let java = MultilineConfig {
        languages: Some(vec![Language::Java]),
        start_pattern: None,
        timeout: std::time::Duration::from_secs(1),
        max_lines: 500,
    };
    let java = Arc::new(Rules::new(&java).expect("valid multiline rules"));
    let mut check =
        FileParser::new(Format::Cri, Arc::clone(&rules), 1 << 20).with_multiline(Arc::clone(&java));
    assert_eq!(
        run(&mut check, &lines),
        LINES / 20 * 9,
        "one record per trace"
    );
    group.bench_function("cri_multiline_java", |b| {
        b.iter(|| {
            let mut p = FileParser::new(Format::Cri, Arc::clone(&rules), 1 << 20)
                .with_multiline(Arc::clone(&java));
            run(&mut p, &lines)
        })
    });
    group.finish();
}

/// The issue's rule.
const REDACT: &str = r"(?i)(password|passwd|token|secret|api_key)=\S+";

/// CRI lines with the JSON bodies of [`json`]; every `secret_every`-th
/// (if any) logs a password in its `msg`; with `query`, each path has a
/// query string (`?page=…`: the rule's needle `=` in every line).
fn cri_json(i: usize, secret_every: Option<usize>, query: bool) -> String {
    let ts = format!("2026-12-02T13:{:02}:{:02}.{:09}Z", i / 60 % 60, i % 60, i);
    let mut body = json(i);
    if secret_every.is_some_and(|n| i.is_multiple_of(n)) {
        body = body.replace("request served", "login ok password=hunter2");
    }
    if query {
        body = body.replace(r#"","status""#, &format!(r#"?page={}","status""#, i % 50));
    }
    format!("{ts} stdout F {body}")
}

/// Parse `lines`, and with `redact`, mask each record's message and fields
/// as the pipeline would; returns the records and the masked ones.
fn run_redacted(
    parser: &mut FileParser,
    lines: &[String],
    redact: Option<&Redactor>,
    by_record: bool,
) -> (usize, usize) {
    let mut records = 0;
    let mut masked = 0;
    let mut emit = |r: &Record| {
        records += 1;
        if let Some(redactor) = redact {
            if by_record {
                let mut message = r.message.clone();
                let mut fields = r.fields.clone();
                masked += usize::from(redactor.apply_record(&mut message, &mut fields));
                black_box((message, fields));
            } else {
                let message = r.message.as_deref().map(|m| redactor.apply(m));
                let fields = r.fields.as_deref().map(|f| redactor.apply_json(f));
                let changed =
                    matches!(message, Some(Cow::Owned(_))) || matches!(fields, Some(Cow::Owned(_)));
                masked += usize::from(changed);
                black_box((message, fields));
            }
        }
        black_box(r);
    };
    for (i, line) in lines.iter().enumerate() {
        parser.line(line.as_bytes(), i as u64 * 256, Flags::default(), &mut emit);
    }
    parser.flush(&mut emit);
    (records, masked)
}

fn redaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("redact");
    let rules = rules(ParserKind::Auto, None);
    let config = [RedactConfig {
        pattern: REDACT.into(),
        replace: "$1=[REDACTED]".into(),
        sources: None,
    }];
    tidewater::redact::check(&config).expect("the issue's rule is valid");
    let redactor = Redactor::for_source(&config, "app").expect("applies to every source");
    let three = [
        config[0].clone(),
        RedactConfig {
            pattern: r"(?i)authorization: bearer \S+".into(),
            replace: "Authorization: Bearer [REDACTED]".into(),
            sources: None,
        },
        RedactConfig {
            pattern: r"\bAKIA[0-9A-Z]{16}\b".into(),
            replace: "[AWS KEY ID]".into(),
            sources: None,
        },
    ];
    tidewater::redact::check(&three).expect("valid rules");
    let three = Redactor::for_source(&three, "app").expect("applies to every source");
    let parser = || FileParser::new(Format::Cri, Arc::clone(&rules), 1 << 20);

    // (name, secret in every n-th line, query strings, redactor, apply_record)
    type RedactCase<'r> = (
        &'static str,
        Option<usize>,
        bool,
        Option<&'r Redactor>,
        bool,
    );
    let cases: [RedactCase; 9] = [
        ("cri_json_parse", None, false, None, false),
        (
            "cri_json_parse+apply_none",
            None,
            false,
            Some(&redactor),
            false,
        ),
        (
            "cri_json_parse+record_none",
            None,
            false,
            Some(&redactor),
            true,
        ),
        (
            "cri_json_parse+record_1pct",
            Some(100),
            false,
            Some(&redactor),
            true,
        ),
        (
            "cri_json_parse+apply_1pct",
            Some(100),
            false,
            Some(&redactor),
            false,
        ),
        (
            "cri_json_parse+record_3rules_none",
            None,
            false,
            Some(&three),
            true,
        ),
        ("cri_json_query_parse", None, true, None, false),
        (
            "cri_json_query_parse+record_none",
            None,
            true,
            Some(&redactor),
            true,
        ),
        (
            "cri_json_query_parse+record_1pct",
            Some(100),
            true,
            Some(&redactor),
            true,
        ),
    ];
    for (name, every, query, redact, by_record) in cases {
        let lines: Vec<String> = (0..LINES).map(|i| cri_json(i, every, query)).collect();
        let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let expected = if redact.is_some() {
            every.map_or(0, |n| LINES / n)
        } else {
            0
        };
        assert_eq!(
            run_redacted(&mut parser(), &lines, redact, by_record),
            (LINES, expected),
            "{name}"
        );
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| {
            b.iter(|| run_redacted(&mut parser(), &lines, redact, by_record))
        });
    }

    // The prefilters alone, on the JSON bodies (none matches).
    let bodies: Vec<String> = (0..LINES).map(json).collect();
    let bytes = bodies.iter().map(|l| l.len() as u64).sum();
    let set = RegexSet::new([REDACT]).expect("valid");
    let regex = Regex::new(REDACT).expect("valid");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("gate_regexset", |b| {
        b.iter(|| bodies.iter().filter(|t| set.is_match(t)).count())
    });
    group.bench_function("gate_regex", |b| {
        b.iter(|| bodies.iter().filter(|t| regex.is_match(t)).count())
    });
    group.bench_function("gate_needle_apply_json", |b| {
        b.iter(|| {
            bodies
                .iter()
                .filter(|t| matches!(redactor.apply_json(t), Cow::Owned(_)))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, parsers, redaction);
criterion_main!(benches);
