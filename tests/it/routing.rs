//! Routing and masking with real sinks: an nginx access log and a service's
//! CRI log into a BigQuery table (the emulator), two lakes and RabbitMQ,
//! each read back independently; and a SIGKILL in the middle of a run with
//! dropped and filtered records in flight.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::alerts::{delete_queues, take_all, unique, AMQP_URL};
use crate::services::*;
use crate::util::*;

/// The secrets the logs below carry: none may leave the process.
fn secret(i: usize) -> String {
    format!("s3cr3t{i}x")
}

const REDACT: &str = r#"
[[redact]]
pattern = '(?i)(password|passwd|token|secret|api_key)=[^\s&"]+'
replace = '$1=[REDACTED]'
"#;

/// `n` nginx lines: every 10th a kube-probe health check, every 7th a
/// URL with a token, every 13th a 503. The last line is a health check,
/// so the file ends on a dropped record.
fn access_log(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let path = if i % 10 == 0 || i == n - 1 {
            "/healthz".to_string()
        } else if i % 7 == 0 {
            format!("/login?user=u{i}&token={}", secret(i))
        } else {
            format!("/api/items/{i}")
        };
        let status = if i % 13 == 0 { 503 } else { 200 };
        out.push_str(&format!(
            "10.0.0.{} - - [02/Dec/2026:10:{:02}:{:02} +0000] \"GET {path} HTTP/1.1\" {status} {} \"-\" \"curl/8.5.0\"\n",
            i % 250,
            (i / 60) % 60,
            i % 60,
            100 + i
        ));
    }
    out
}

/// `n` CRI lines with JSON bodies, levels debug/info/warn/error in turn;
/// every 5th logs a password. The last line is a debug line.
fn app_log(n: usize, first: usize) -> String {
    let levels = ["debug", "info", "warn", "error"];
    let mut out = String::new();
    for i in first..first + n {
        let level = if i == first + n - 1 {
            "debug"
        } else {
            levels[i % 4]
        };
        let msg = if i % 5 == 0 {
            format!("login for u{i} with password={}", secret(i))
        } else {
            format!("request {i} done")
        };
        out.push_str(&format!(
            "2026-12-02T10:00:{:02}.{:09}Z stdout F {}\n",
            i % 60,
            i,
            json!({"level": level, "msg": msg, "seq": i})
        ));
    }
    out
}

const APP_PAYMENTS: &str =
    "containers/pay-7d9f_payments_app-0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9.log";
const APP_SHOP: &str =
    "containers/web-5c4b_shop_web-1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a.log";

fn sources() -> String {
    format!(
        r#"data_dir = "state"
{REDACT}
[batch]
max_rows = 50
max_age = "200ms"

[sources.access]
type = "tail"
include = ["access.log"]
format = "text"
parser = "nginx"
read_from = "beginning"
drop = 'fields.path == "/healthz"'
[[sources.access.columns]]
name = "status"
type = "INTEGER"

[sources.app]
type = "tail"
include = ["containers/*.log"]
format = "cri"
read_from = "beginning"
drop = 'level <= "debug"'
[[sources.app.columns]]
name = "seq"
type = "INTEGER"

[sinks.app_lake]
type = "parquet"
url = "file://app-lake"
inputs = ["app"]

[sinks.filtered]
type = "parquet"
url = "file://filtered"
inputs = ["access", "app"]
when = 'level >= "warn" or namespace == "payments" or status >= 500'
"#
    )
}

/// Every row of a lake as a JSON object of its columns, read by DuckDB.
fn lake_rows(sandbox: &Sandbox, lake: &str) -> Vec<Value> {
    let sql = "SELECT CAST(to_json(t) AS VARCHAR) FROM logs t ORDER BY source, file, \"offset\"";
    let result = crate::util::duckdb(sandbox, &sandbox.path(lake), &[sql]);
    result[0]
        .iter()
        .map(|r| serde_json::from_str(r[0].as_str().expect("a JSON text")).expect("a row"))
        .collect()
}

fn no_secret_in(what: &str, text: &str, n: usize) {
    for i in 0..n {
        assert!(!text.contains(&secret(i)), "{} reached {what}", secret(i));
    }
}

#[test]
fn two_sources_reach_their_sinks_by_inputs_and_when_and_no_secret_leaves() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let (exchange, queue) = (unique("routing"), unique("routing-q"));
    let n = 300;
    sandbox.write_file("access.log", access_log(n));
    sandbox.write_file(APP_PAYMENTS, app_log(n, 0));
    sandbox.write_file(APP_SHOP, app_log(n, n));
    // Alerts of the payments namespace only are bound: the shop's come
    // back from the broker and are dead-lettered (with their text).
    let config = format!(
        "{}\n[sinks.warehouse]\ntype = \"bigquery\"\ninputs = [\"access\"]\nproject = \"{BQ_PROJECT}\"\n\
         dataset = \"logs\"\ntable = \"access_log\"\ncreate_table = true\nendpoint = \"{}\"\n\
         \n[sinks.alerts]\ntype = \"amqp\"\ninputs = [\"app\"]\nurl = {}\nexchange = {}\nqueue = {}\n\
         binding_key = \"payments.#\"\n",
        sources(),
        emu.rest_url(),
        toml_str(AMQP_URL),
        toml_str(&exchange),
        toml_str(&queue)
    );
    let path = sandbox.write_file("routing.toml", config);
    let finished = sandbox.run_once(&path);
    finished.assert_success();
    let summary = finished.summary();
    let stderr = finished.stderr.clone();

    // What the logs hold, counted here.
    let access = access_log(n);
    let health = access.lines().filter(|l| l.contains("/healthz")).count() as u64;
    let app_lines = 2 * n as u64;
    let app_all = [app_log(n, 0), app_log(n, n)].concat();
    let debug = app_all.lines().filter(|l| l.contains("\"debug\"")).count() as u64;
    assert_eq!(summary.get("records"), n as u64 + app_lines);
    assert_eq!(
        summary.get("records_dropped"),
        health + debug,
        "{summary:?}"
    );

    // Every access line (but the health checks) is in BigQuery, nowhere else.
    let access_kept = n as u64 - health;
    let rows = emu.query(&format!(
        "SELECT source, COUNT(*) FROM `{BQ_PROJECT}.logs.access_log` GROUP BY source"
    ));
    assert_eq!(
        rows,
        [vec![json!("access"), json!(access_kept.to_string())]],
        "the warehouse holds exactly the access records"
    );
    let bq_text = serde_json::to_string(&emu.query(&format!(
        "SELECT message, fields FROM `{BQ_PROJECT}.logs.access_log`"
    )))
    .expect("JSON");
    assert!(
        !bq_text.contains("/healthz"),
        "no health check reached BigQuery"
    );
    no_secret_in("BigQuery", &bq_text, 2 * n);
    assert!(
        bq_text.contains("token=[REDACTED]"),
        "the token is masked, the rest kept"
    );

    // The app lake: every app record but the debug ones, and only those.
    let app_lake = lake_rows(&sandbox, "app-lake");
    assert_eq!(app_lake.len() as u64, app_lines - debug);
    assert!(app_lake.iter().all(|r| r["source"] == json!("app")));
    assert!(app_lake.iter().all(|r| r["level"] != json!("debug")));
    let mut seqs: Vec<i64> = app_lake
        .iter()
        .map(|r| r["seq"].as_i64().expect("seq"))
        .collect();
    seqs.sort_unstable();
    let want: Vec<i64> = app_all
        .lines()
        .filter(|l| !l.contains("\"debug\""))
        .map(|l| {
            let body: Value =
                serde_json::from_str(l.splitn(4, ' ').nth(3).expect("body")).expect("JSON");
            body["seq"].as_i64().expect("seq")
        })
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort_unstable();
    assert_eq!(seqs, want_sorted, "the app lake: each kept record once");

    // The filtered lake: exactly the records its `when` selects, of both.
    let filtered = lake_rows(&sandbox, "filtered");
    let expected_access = access
        .lines()
        .filter(|l| !l.contains("/healthz") && l.contains("\" 503 "))
        .count();
    let expected_app = app_all
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            !l.contains("\"debug\"")
                && (l.contains("\"warn\"") || l.contains("\"error\"") || *i < n)
        })
        .count();
    let by_source = filtered.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["source"].as_str().expect("source").to_string())
            .or_insert(0) += 1;
        m
    });
    assert_eq!(
        by_source,
        BTreeMap::from([
            ("access".to_string(), expected_access),
            ("app".to_string(), expected_app)
        ]),
        "the filtered lake"
    );
    for r in &filtered {
        let level = r["level"].as_str();
        let payments = r["namespace"] == json!("payments");
        let server_error = r["status"].as_i64().is_some_and(|s| s >= 500);
        assert!(
            matches!(level, Some("warn" | "error")) || payments || server_error,
            "a row the condition does not select: {r:?}"
        );
    }

    // The counters add up, per sink: delivered + filtered (+ dead-lettered)
    // = the records of its inputs that were not dropped.
    let sinks = &summary.0["sinks"];
    let count = |sink: &str, what: &str| {
        sinks[sink][what]
            .as_u64()
            .unwrap_or_else(|| panic!("{sink}.{what} in {summary:?}"))
    };
    assert_eq!(count("warehouse", "delivered"), access_kept);
    assert_eq!(count("app_lake", "delivered"), app_lines - debug);
    assert_eq!(
        count("filtered", "delivered") + count("filtered", "filtered"),
        access_kept + app_lines - debug
    );
    assert_eq!(count("filtered", "delivered"), filtered.len() as u64);
    let errors = app_all.lines().filter(|l| l.contains("\"error\"")).count() as u64;
    assert_eq!(
        count("alerts", "delivered") + count("alerts", "dead_lettered"),
        errors,
        "every error event is published or dead-lettered"
    );
    assert_eq!(count("alerts", "filtered"), app_lines - debug - errors);

    // No secret in the lakes, the events, the dead letter or the log.
    let events = take_all(&queue);
    assert_eq!(events.len() as u64, count("alerts", "delivered"));
    assert!(
        count("alerts", "dead_lettered") > 0,
        "the shop's events came back"
    );
    delete_queues(&queue);
    let mut everything = serde_json::to_string(&(&app_lake, &filtered, &events)).expect("JSON");
    let mut dead = Vec::new();
    collect_files(&sandbox.path("state/dead_letter"), &mut dead);
    assert!(!dead.is_empty(), "the dead letter has the returned events");
    for file in dead {
        everything.push_str(&read_lossy(&file));
    }
    everything.push_str(&stderr);
    no_secret_in(
        "a lake, an event, the dead letter or the log",
        &everything,
        2 * n,
    );
    assert!(everything.contains("password=[REDACTED]"));
    // Counted once per record that left the process (not the dropped ones).
    let redacted = app_all
        .lines()
        .filter(|l| l.contains("password=") && !l.contains("\"debug\""))
        .count()
        + access
            .lines()
            .filter(|l| l.contains("token=") && !l.contains("/healthz"))
            .count();
    assert_eq!(summary.get("records_redacted"), redacted as u64);
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            collect_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn a_kill_mid_run_with_dropped_and_filtered_records_in_flight_loses_nothing() {
    let sandbox = Sandbox::new();
    let n = 400;
    // Large enough that the first run is killed half way through it.
    let big = 30_000;
    let config = sandbox.write_file(
        "routing.toml",
        sources().replace(
            "data_dir = \"state\"",
            "data_dir = \"state\"\ncheckpoint_interval = \"50ms\"",
        ),
    );
    sandbox.write_file("access.log", access_log(n));
    let payments = app_log(big, 0);
    sandbox.write_file(APP_PAYMENTS, &payments);
    sandbox.write_file(APP_SHOP, "");

    let mut first = sandbox.start_run(&config);
    // Some batches are acknowledged, the rest is in flight or unread.
    let (access_end, payments_end) = (access_log(n).len() as u64, payments.len() as u64);
    let half_way = poll_until(Duration::from_secs(60), || {
        first.assert_running();
        sandbox.checkpoint_file().exists()
            && checkpoint_offsets(&read_checkpoints(&sandbox))
                .iter()
                .any(|&o| o > 0 && o != access_end && o != payments_end)
    });
    assert!(
        half_way,
        "no checkpoint within 60s:\n{}",
        tail(&first.stderr(), 3000)
    );
    send_signal(first.pid(), "KILL");
    let at_kill = read_checkpoints(&sandbox);
    assert!(
        !checkpoint_offsets(&at_kill).contains(&payments_end),
        "the first run was not killed half way (it had delivered everything): make the log larger"
    );
    let _ = first.finish(Duration::from_secs(10));
    // More lines while it is down, then a second run to the end.
    let shop = app_log(n, big);
    std::fs::write(sandbox.path(APP_SHOP), &shop).expect("append");
    let mut second = sandbox.start_run(&config);
    let ends = [access_end, payments_end, shop.len() as u64];
    let done = poll_until(Duration::from_secs(90), || {
        second.assert_running();
        let offsets = checkpoint_offsets(&read_checkpoints(&sandbox));
        ends.iter().all(|e| offsets.contains(e))
    });
    assert!(
        done,
        "the checkpoint did not reach the ends of the files (each ends on a dropped record): {}\n{}",
        read_checkpoints(&sandbox),
        tail(&second.stderr(), 3000)
    );
    second.signal("TERM");
    second.finish(Duration::from_secs(30)).assert_success();

    // Each kept record at least once; duplicates only from re-sent batches
    // (at most the batches in flight at the kill: 50 rows each).
    let app_lake = lake_rows(&sandbox, "app-lake");
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &app_lake {
        *counts.entry(r["seq"].as_i64().expect("seq")).or_insert(0) += 1;
    }
    let all = [payments, shop].concat();
    let want: Vec<i64> = all
        .lines()
        .filter(|l| !l.contains("\"debug\""))
        .map(|l| {
            let body: Value =
                serde_json::from_str(l.splitn(4, ' ').nth(3).expect("body")).expect("JSON");
            body["seq"].as_i64().expect("seq")
        })
        .collect();
    let missing: Vec<&i64> = want.iter().filter(|s| !counts.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost after the kill: {missing:?}");
    assert_eq!(
        counts.len(),
        want.len(),
        "no dropped record reached the lake"
    );
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 4 * 50,
        "{duplicates} duplicates: more than the batches in flight"
    );
    let filtered = lake_rows(&sandbox, "filtered");
    let access_503 = access_log(n)
        .lines()
        .filter(|l| !l.contains("/healthz") && l.contains("\" 503 "))
        .count();
    let access: Vec<&Value> = filtered
        .iter()
        .filter(|r| r["source"] == json!("access"))
        .collect();
    assert!(
        access.iter().all(|r| r["status"] == json!(503)),
        "only 5xx access records in the filtered lake"
    );
    let offsets: std::collections::BTreeSet<i64> = access
        .iter()
        .map(|r| r["offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(offsets.len(), access_503, "every 5xx in the filtered lake");
    assert!(
        access.len() - offsets.len() <= 4 * 50,
        "duplicates beyond the batches in flight"
    );
}

#[test]
fn schema_prints_a_sinks_table_and_validate_shows_and_checks_the_routes() {
    let sandbox = Sandbox::new();
    let config = sandbox.write_file("routing.toml", sources());
    let schema = |sink: &str| {
        let finished = sandbox
            .spawn(&[
                "schema",
                "--config",
                path_str(&config),
                "--sink",
                sink,
                "--format",
                "bigquery",
            ])
            .finish(RUN_ONCE_TIMEOUT);
        finished.assert_success();
        let columns: Vec<Value> = serde_json::from_str(&finished.stdout).expect("BigQuery JSON");
        columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["name"].as_str().expect("name"),
                    c["type"].as_str().expect("type")
                )
            })
            .collect::<Vec<_>>()
    };
    let app = schema("app_lake");
    let both = schema("filtered");
    assert_eq!(
        app.last().map(String::as_str),
        Some("seq INTEGER"),
        "{app:?}"
    );
    assert!(!app.iter().any(|c| c.starts_with("status ")), "{app:?}");
    assert_eq!(&both[both.len() - 2..], ["status INTEGER", "seq INTEGER"]);
    let unknown = sandbox
        .spawn(&["schema", "--config", path_str(&config), "--sink", "nope"])
        .finish(RUN_ONCE_TIMEOUT);
    assert!(
        unknown.stderr.contains("no such sink"),
        "{}",
        unknown.stderr
    );

    let ok = sandbox
        .spawn(&["validate", "--config", path_str(&config)])
        .finish(RUN_ONCE_TIMEOUT);
    ok.assert_success();
    assert!(
        ok.stdout.contains("sinks.filtered receives access, app where level >= \"warn\" or namespace == \"payments\" or status >= 500"),
        "{}",
        ok.stdout
    );
    let bad = sandbox.write_file(
        "bad.toml",
        sources().replace(
            r#"inputs = ["access", "app"]"#,
            r#"inputs = ["access", "apps"]"#,
        ),
    );
    let finished = sandbox
        .spawn(&["validate", "--config", path_str(&bad)])
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_code(2);
    assert!(
        finished
            .stderr
            .contains("sinks.filtered.inputs[1]: no source is named \"apps\""),
        "{}",
        finished.stderr
    );
}
