//! The README's sidecar example end to end: `examples/sidecar.toml` (an
//! nginx access log, a Java service's CRI log with stack traces, the Pod's
//! labels; each source to its own table, health checks and debug lines
//! dropped, secrets masked) into three lakes and into two BigQuery tables
//! (the emulator), then the README's own queries on both: status codes per
//! path per minute match the access log counted independently here, there
//! is one row per exception, with its team, the problems table holds
//! exactly the warnings, errors and 5xx, and no secret is anywhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::services::*;
use crate::util::*;

/// The ```sql blocks of the README preceded by `<!-- query: {engine} -->`.
fn readme_queries(engine: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(project_file("README.md")).expect("README.md");
    let marker = format!("<!-- query: {engine} -->");
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != marker {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sql"),
            "{marker} must precede a ```sql block"
        );
        let sql: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        out.push(sql.join("\n"));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The example's `[[redact]]` rule, applied here with the regex crate.
fn masked(text: &str) -> String {
    let rule = regex::Regex::new(r#"(?i)(password|passwd|token|secret|api_key)=[^\s&"]+"#)
        .expect("the README's rule");
    rule.replace_all(text, "$1=[REDACTED]").into_owned()
}

/// The secrets in the bundled samples, which must reach no table.
const SECRETS: [&str; 4] = [
    "hunter2",
    "eyJhbGciOiJIUzI1NiJ9",
    "tok_9f8e7d6c5b",
    "sk_live_51HxQ2pVb9",
];

/// (minute `HH:MM`, path, status) → requests, read from the access log
/// with nothing but string splitting, without the dropped health checks.
fn expected_status_counts(log: &str) -> BTreeMap<(String, String, i64), i64> {
    let mut counts = BTreeMap::new();
    for line in log.lines().filter(|l| !l.contains("GET /healthz ")) {
        let time = line
            .split('[')
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .expect("a [time]");
        let minute = time[12..17].to_string();
        let request = line.split('"').nth(1).expect("a request");
        let path = masked(request.split(' ').nth(1).expect("a path"));
        let after = line.split('"').nth(2).expect("status and size");
        let status: i64 = after
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("a status");
        *counts.entry((minute, path, status)).or_insert(0) += 1;
    }
    counts
}

#[test]
fn the_readme_queries_answer_on_the_lake_and_on_bigquery() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    copy_dir(
        &project_file("examples/sidecar"),
        &sandbox.path("examples/sidecar"),
    );
    let example = std::fs::read_to_string(project_file("examples/sidecar.toml"))
        .expect("examples/sidecar.toml");
    let mut config = example;
    for (sink, source, table) in [
        ("access_table", "access", "access_log"),
        ("app_table", "app", "app_log"),
    ] {
        config.push_str(&format!(
            "\n[sinks.{sink}]\ntype = \"bigquery\"\ninputs = [\"{source}\"]\nproject = \"{BQ_PROJECT}\"\n\
             dataset = \"logs\"\ntable = \"{table}\"\ncreate_table = true\nendpoint = \"{}\"\n",
            emu.rest_url()
        ));
    }
    let path = sandbox.write_file("sidecar.toml", config);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("parse_errors"), 0);

    let access = std::fs::read_to_string(project_file("examples/sidecar/nginx/access.log"))
        .expect("access.log");
    let app: String = std::fs::read_dir(sandbox.path("examples/sidecar/containers"))
        .expect("the container logs")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("log"))
        .collect();
    let health_checks = access
        .lines()
        .filter(|l| l.contains("GET /healthz "))
        .count();
    let debug_lines = app.lines().filter(|l| l.contains(" DEBUG ")).count();
    assert!(
        health_checks > 0 && debug_lines > 0,
        "the samples have something to drop"
    );
    assert_eq!(
        summary.get("records_dropped"),
        (health_checks + debug_lines) as u64,
        "every dropped record is counted"
    );
    assert_eq!(
        summary.get("records_redacted"),
        3,
        "the login, the URL token and the api_key"
    );
    let expected = expected_status_counts(&access);
    assert!(
        expected.len() > 5,
        "the sample has several paths, statuses and minutes"
    );
    let exceptions = [
        ("org.springframework.dao.CannotAcquireLockException", 11),
        ("java.lang.NullPointerException", 4),
        ("java.net.SocketTimeoutException", 6),
    ];

    let duckdb = readme_queries("duckdb");
    let bigquery = readme_queries("bigquery");
    assert_eq!(
        (duckdb.len(), bigquery.len()),
        (3, 2),
        "the README's sidecar queries"
    );

    let duckdb: Vec<&str> = duckdb.iter().map(String::as_str).collect();
    let results = crate::util::duckdb(&sandbox, &sandbox.path("lake-sidecar"), &duckdb);
    let counted: BTreeMap<(String, String, i64), i64> = results[0]
        .iter()
        .map(|r| {
            let minute = r[0].as_str().expect("a minute")[11..16].to_string();
            let key = (
                minute,
                r[1].as_str().expect("a path").to_string(),
                r[2].as_i64().expect("status"),
            );
            (key, r[3].as_i64().expect("a count"))
        })
        .collect();
    assert_eq!(
        counted, expected,
        "DuckDB: status codes per path per minute"
    );
    let rows: Vec<(Value, Value, Value)> = results[1]
        .iter()
        .map(|r| (r[1].clone(), r[2].clone(), r[3].clone()))
        .collect();
    let want: Vec<(Value, Value, Value)> = exceptions
        .iter()
        .map(|(e, n)| (json!("payments"), json!(e), json!(n)))
        .collect();
    assert_eq!(rows, want, "DuckDB: one row per exception");
    let problems: Vec<(String, String, i64)> = results[2]
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().expect("a string").to_string();
            (s(0), s(1), r[2].as_i64().expect("a count"))
        })
        .collect();
    let server_errors = expected
        .iter()
        .filter(|((_, _, status), _)| *status >= 500)
        .map(|(_, n)| n)
        .sum::<i64>();
    let warnings = app.lines().filter(|l| l.contains(" WARN ")).count() as i64;
    assert_eq!(
        problems,
        [
            ("access".to_string(), "502".to_string(), server_errors),
            (
                "app".to_string(),
                "error".to_string(),
                exceptions.len() as i64
            ),
            ("app".to_string(), "warn".to_string(), warnings),
        ],
        "DuckDB: the problems table holds the 5xx, errors and warnings, nothing else"
    );
    // No secret in any Parquet file, read back as text by DuckDB.
    let leaks = crate::util::duckdb(
        &sandbox,
        &sandbox.path("lake-sidecar"),
        &["SELECT count(*) FROM logs WHERE concat_ws(' ', message, fields, parse_error, labels, annotations) SIMILAR TO '.*(hunter2|eyJhbGciOiJIUzI1NiJ9|tok_9f8e7d6c5b|sk_live_51HxQ2pVb9).*'",
          "SELECT count(*) FROM logs WHERE list_contains(flags, 'redacted')"],
    );
    assert_eq!(leaks[0], [[json!(0)]], "no secret reaches the lakes");
    // The masked records are in the app table and the problems table.
    assert_eq!(
        leaks[1],
        [[json!(4)]],
        "the redacted rows, the api_key warning twice"
    );
    for secret in SECRETS {
        assert!(
            app.contains(secret) || access.contains(secret),
            "{secret} is in the samples"
        );
    }

    let bq = |sql: &str| emu.query(&sql.replace("my-project", BQ_PROJECT));
    let counted: BTreeMap<(String, String, i64), i64> = bq(&bigquery[0])
        .iter()
        .map(|r| {
            let minute = bq_minute(&r[0]);
            let status = r[2].as_str().and_then(|s| s.parse().ok()).expect("status");
            let n = r[3].as_str().and_then(|s| s.parse().ok()).expect("count");
            (
                (minute, r[1].as_str().expect("path").to_string(), status),
                n,
            )
        })
        .collect();
    assert_eq!(
        counted, expected,
        "BigQuery: status codes per path per minute"
    );
    let rows: Vec<(Value, Value, Value)> = bq(&bigquery[1])
        .into_iter()
        .map(|r| (r[1].clone(), r[2].clone(), r[3].clone()))
        .collect();
    let want: Vec<(Value, Value, Value)> = exceptions
        .iter()
        .map(|(e, n)| (json!("payments"), json!(e), json!(n.to_string())))
        .collect();
    assert_eq!(rows, want, "BigQuery: one row per exception");
    for table in ["access_log", "app_log"] {
        let rows = bq(&format!(
            "SELECT message, fields FROM `{BQ_PROJECT}.logs.{table}`"
        ));
        assert!(!rows.is_empty(), "{table} has rows");
        let text = serde_json::to_string(&rows).expect("rows as JSON");
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} reached BigQuery's {table}"
            );
        }
    }
}

/// `HH:MM` of a BigQuery TIMESTAMP as the REST API returns it: seconds
/// since the epoch as a string (the emulator may give microseconds).
fn bq_minute(v: &Value) -> String {
    let n: f64 = v
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a TIMESTAMP: {v}"));
    let secs = if n > 1e14 { n / 1e6 } else { n };
    let t = chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap_or_else(|| panic!("a valid time: {v}"));
    t.format("%H:%M").to_string()
}
