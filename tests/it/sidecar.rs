//! The README's sidecar example end to end: `examples/sidecar.toml` (an
//! nginx access log, a Java service's CRI log with stack traces, the Pod's
//! labels) into the lake and into BigQuery (the emulator), then the README's
//! own queries on both: status codes per path per minute match the access
//! log counted independently here, and there is one row per exception, with
//! its team.

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

/// (minute `HH:MM`, path, status) → requests, read from the access log
/// with nothing but string splitting.
fn expected_status_counts(log: &str) -> BTreeMap<(String, String, i64), i64> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let time = line
            .split('[')
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .expect("a [time]");
        let minute = time[12..17].to_string();
        let request = line.split('"').nth(1).expect("a request");
        let path = request.split(' ').nth(1).expect("a path").to_string();
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
    let config = format!(
        "{example}\n[sinks.warehouse]\ntype = \"bigquery\"\nproject = \"{BQ_PROJECT}\"\ndataset = \"logs\"\n\
         table = \"container_log\"\ncreate_table = true\nendpoint = \"{}\"\n",
        emu.rest_url()
    );
    let path = sandbox.write_file("sidecar.toml", config);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("parse_errors"), 0);

    let access = std::fs::read_to_string(project_file("examples/sidecar/nginx/access.log"))
        .expect("access.log");
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
        (2, 2),
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
