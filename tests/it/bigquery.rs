//! The BigQuery sink against a real local emulator (bqemulator, REST and the
//! Storage Write API), reached over real connections: what arrives is
//! checked with SQL through the emulator's query API, the insertIds through
//! a recording proxy (`tests/bq_proxy.py`), since the emulator does not
//! de-duplicate on them as BigQuery does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

use crate::services::*;
use crate::util::*;

/// A config with one tail source over `logs/*.log` and a BigQuery sink
/// `warehouse` with `sink` as its extra keys.
pub(crate) fn config(format: &str, sink: &str, extra: &str) -> String {
    format!(
        r#"data_dir = "state"
shutdown_timeout = "20s"
{extra}
[[columns]]
name = "seq"
type = "INTEGER"

[sources.app]
type = "tail"
include = ["logs/*.log"]
format = "{format}"
read_from = "beginning"

[batch]
max_rows = 700
max_age = "300ms"

[sinks.warehouse]
type = "bigquery"
project = "{BQ_PROJECT}"
dataset = "logs"
{sink}
"#
    )
}

fn table_ref(table: &str) -> String {
    format!("`{BQ_PROJECT}.logs.{table}`")
}

/// (rows, distinct seqs, min seq, max seq) of a table.
pub(crate) fn seq_stats(emu: &BqEmulator, table: &str) -> (i64, i64, i64, i64) {
    let rows = emu.query(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM {}",
        table_ref(table)
    ));
    // No row at all while the table is still empty or being created.
    let cell = |i: usize| -> i64 {
        rows.first()
            .and_then(|r| r.get(i))
            .and_then(Value::as_str)
            .map_or(-1, |s| s.parse().unwrap_or(-1))
    };
    (cell(0), cell(1), cell(2), cell(3))
}

/// Create dataset `logs` (if missing) and table `table` over REST, with the
/// given columns.
fn create_table(emu: &BqEmulator, table: &str, fields: &[Value]) {
    let datasets = emu.rest("GET", "/datasets", &Value::Null);
    let exists = datasets["datasets"].as_array().is_some_and(|d| {
        d.iter()
            .any(|d| d["datasetReference"]["datasetId"] == "logs")
    });
    if !exists {
        emu.rest(
            "POST",
            "/datasets",
            &json!({"datasetReference": {"projectId": BQ_PROJECT, "datasetId": "logs"}}),
        );
    }
    emu.rest(
        "POST",
        "/datasets/logs/tables",
        &json!({"tableReference": {"projectId": BQ_PROJECT, "datasetId": "logs", "tableId": table},
                "schema": {"fields": fields}}),
    );
}

/// The bundled schema's columns plus `extra`.
fn bundled_columns(extra: &[Value]) -> Vec<Value> {
    let text = std::fs::read_to_string(project_file("schemas/container_log.json"))
        .expect("schemas/container_log.json");
    let mut fields: Vec<Value> = serde_json::from_str(&text).expect("the schema is JSON");
    fields.extend(extra.iter().cloned());
    fields
}

#[test]
fn the_corpus_arrives_through_insert_all_into_a_partitioned_clustered_table() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let corpus = generate(&sandbox.path("logs/app.log"), "cri", 3000, &["--seed", "7"]);
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\ncreate_table = true\nendpoint = \"{}\"\n",
            emu.rest_url()
        ),
        "",
    );
    // A Parquet lake beside it: the same rows, read independently, to check
    // that every column landed where it belongs.
    let cfg = format!("{cfg}\n[sinks.lake]\ntype = \"parquet\"\nurl = \"file://lake\"\n");
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("records"), corpus.records);

    // Every record, once.
    let (rows, distinct, min, max) = seq_stats(&emu, "container_log");
    assert_eq!(
        (rows, distinct, min, max),
        (3000, 3000, 0, 2999),
        "COUNT(*), COUNT(DISTINCT seq), MIN, MAX"
    );

    // The table: day partitions on timestamp, clustered for the usual filters.
    let table = emu.rest("GET", "/datasets/logs/tables/container_log", &Value::Null);
    assert_eq!(table["timePartitioning"]["type"], "DAY", "{table}");
    assert_eq!(table["timePartitioning"]["field"], "timestamp", "{table}");
    assert_eq!(
        table["clustering"]["fields"],
        json!(["namespace", "pod", "container"]),
        "{table}"
    );
    let columns: Vec<&str> = table["schema"]["fields"]
        .as_array()
        .expect("schema fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        columns.contains(&"fields") && columns.contains(&"seq"),
        "{columns:?}"
    );

    // `validate --connect` reads the table without writing.
    let probe = sandbox
        .spawn(&["validate", "--connect", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT);
    probe.assert_success();
    assert!(
        probe.stdout.contains(
            "sinks.warehouse: reachable: table test-project.logs.container_log: 18 columns"
        ),
        "{}",
        probe.stdout
    );

    // Column by column, the same values as the lake.
    let lake = read_lake(&sandbox.lake());
    let by_seq: HashMap<i64, &Row> = lake.rows().filter_map(|r| Some((r.seq?, r))).collect();
    assert_eq!(by_seq.len(), 3000);
    let sample = emu.query(&format!(
        "SELECT seq, level, message, stream, file, `offset`, JSON_VALUE(fields, '$.req_id'), flags \
         FROM {} WHERE MOD(seq, 97) = 0 ORDER BY seq",
        table_ref("container_log")
    ));
    assert_eq!(sample.len(), 31, "one row per 97 seqs");
    for row in &sample {
        let seq: i64 = row[0].as_str().and_then(|s| s.parse().ok()).expect("seq");
        let want = by_seq[&seq];
        let text = |v: &Value| v.as_str().map(str::to_string);
        assert_eq!(text(&row[1]), want.level, "level of seq {seq}");
        assert_eq!(text(&row[2]), want.message, "message of seq {seq}");
        assert_eq!(text(&row[3]), want.stream, "stream of seq {seq}");
        assert_eq!(text(&row[4]), want.file, "file of seq {seq}");
        assert_eq!(
            row[5].as_str().and_then(|s| s.parse().ok()),
            want.offset,
            "offset of seq {seq}"
        );
        let fields: Value =
            serde_json::from_str(want.fields.as_deref().expect("fields")).expect("JSON");
        assert_eq!(
            text(&row[6]).as_deref(),
            fields["req_id"].as_str(),
            "seq {seq}"
        );
    }
}

#[test]
fn the_corpus_arrives_through_the_storage_write_api_as_arrow() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let corpus = generate(&sandbox.path("logs/app.log"), "cri", 2500, &["--seed", "8"]);
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\napi = \"storage_write\"\ncreate_table = true\n\
             endpoint = \"{}\"\nstorage_endpoint = \"{}\"\n",
            emu.rest_url(),
            emu.grpc_url()
        ),
        "",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("records"), corpus.records);
    assert_eq!(summary.get("rows_delivered"), corpus.records);
    assert_eq!(
        seq_stats(&emu, "container_log"),
        (2500, 2500, 0, 2499),
        "COUNT(*), COUNT(DISTINCT seq), MIN, MAX"
    );
    // Typed columns arrive typed: the timestamp is the CRI timestamp.
    let rows = emu.query(&format!(
        "SELECT COUNT(*) FROM {} WHERE timestamp >= TIMESTAMP '2026-01-01' AND level IS NOT NULL",
        table_ref("container_log")
    ));
    assert_eq!(rows[0][0], json!("2500"));
}

#[test]
fn create_table_in_an_existing_dataset_needs_no_right_to_create_datasets() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    // The dataset exists (made by its owner); the table does not.
    create_table(&emu, "other", &bundled_columns(&[]));
    let proxy = BqProxy::start_denying_dataset_creation(&sandbox, &emu);
    generate(&sandbox.path("logs/app.log"), "cri", 300, &["--seed", "9"]);
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\ncreate_table = true\nendpoint = \"{}\"\n",
            proxy.url()
        ),
        "",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("rows_delivered"), 300);
    assert_eq!(seq_stats(&emu, "container_log"), (300, 300, 0, 299));
}

#[test]
fn a_table_per_namespace_is_created_on_first_use() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let id = "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f";
    generate(
        &sandbox.path(&format!("containers/web-7d9f8c6b5-x2x4k_shop_app-{id}.log")),
        "cri",
        300,
        &["--seed", "16"],
    );
    generate(
        &sandbox.path(&format!(
            "containers/api-5c8d7f9b4-q7w2e_payments_api-{id}.log"
        )),
        "cri",
        200,
        &["--seed", "17", "--start-seq", "300"],
    );
    let cfg = config(
        "cri",
        &format!(
            "table = \"app_{{namespace}}\"\ncreate_table = true\nendpoint = \"{}\"\n",
            emu.rest_url()
        ),
        "",
    )
    .replace("logs/*.log", "containers/*.log");
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("rows_delivered"), 500);
    assert_eq!(seq_stats(&emu, "app_shop"), (300, 300, 0, 299));
    assert_eq!(seq_stats(&emu, "app_payments"), (200, 200, 300, 499));
    let other = emu.count(&format!(
        "SELECT COUNT(*) FROM {} WHERE namespace != 'shop'",
        table_ref("app_shop")
    ));
    assert_eq!(other, 0);
    for table in ["app_shop", "app_payments"] {
        let t = emu.rest(
            "GET",
            &format!("/datasets/logs/tables/{table}"),
            &Value::Null,
        );
        assert_eq!(t["timePartitioning"]["field"], "timestamp", "{t}");
    }
}

#[test]
fn a_retried_insert_carries_the_same_insert_ids() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    // The first two inserts land, then the client is told 503.
    let proxy = BqProxy::start(&sandbox, &emu, 2);
    generate(
        &sandbox.path("logs/app.log"),
        "cri",
        2000,
        &["--seed", "9", "--long-share", "0"],
    );
    // Small requests: batches of 700 rows are split on both limits.
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\ncreate_table = true\nendpoint = \"{}\"\nconcurrency = 1\n\
             max_rows_per_request = 60\nmax_request_bytes = \"24KiB\"\n",
            proxy.url()
        ),
        "",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (finished, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("rows_delivered"), 2000);
    assert!(
        summary.get("sink_retries") >= 2,
        "the two 503s were retried: {}",
        finished.stderr
    );

    let inserts = proxy.inserts();
    for r in &inserts {
        assert!(
            r.rows.len() <= 60 && r.bytes <= 24 * 1024,
            "request {} has {} rows, {} bytes",
            r.n,
            r.rows.len(),
            r.bytes
        );
    }
    assert!(inserts.len() >= 2000 / 60, "{} requests", inserts.len());
    let failed: Vec<&InsertRequest> = inserts.iter().filter(|r| r.status == 503).collect();
    assert_eq!(failed.len(), 2, "{inserts:?}");
    for f in &failed {
        // The same rows went again, each with the id it had the first time.
        let ids: BTreeMap<(String, i64), String> = f.ids();
        let retry = inserts
            .iter()
            .find(|r| {
                r.n > f.n
                    && r.status == 200
                    && r.rows
                        .iter()
                        .any(|(_, fl, o)| ids.contains_key(&(fl.clone(), *o)))
            })
            .unwrap_or_else(|| panic!("request {} was never retried: {inserts:?}", f.n));
        let again: BTreeMap<(String, i64), String> = retry.ids();
        assert_eq!(
            again, ids,
            "request {} retried as {} with other rows or ids",
            f.n, retry.n
        );
    }
    // One id per source position, and every position a different id.
    let ids_of: HashMap<(String, i64), HashSet<String>> = proxy
        .ids_by_position()
        .into_iter()
        .map(|(pos, ids)| (pos, ids.into_iter().collect()))
        .collect();
    assert_eq!(ids_of.len(), 2000);
    assert!(ids_of.values().all(|ids| ids.len() == 1));
    let distinct_ids: HashSet<&String> = ids_of.values().flatten().collect();
    assert_eq!(distinct_ids.len(), 2000);
    // The emulator keeps both copies (BigQuery would drop the second by its
    // insertId): every record is there, the retried ones twice.
    let (rows, distinct, _, _) = seq_stats(&emu, "container_log");
    assert_eq!(distinct, 2000);
    let resent: usize = failed.iter().map(|f| f.rows.len()).sum();
    assert_eq!(rows as usize, 2000 + resent);
}

#[test]
fn a_restart_after_sigkill_resends_the_same_insert_ids() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let proxy = BqProxy::start(&sandbox, &emu, 0);
    let corpus = generate(&sandbox.path("corpus.log"), "cri", 1500, &["--seed", "10"]);
    let lines = corpus.lines();
    // The file starts short (two lines, under the 1 KiB that identifies a
    // file's content): ids must not change as it grows.
    let log = sandbox.write_file("logs/app.log", lines[..2].concat());
    assert!(std::fs::metadata(&log).expect("log").len() < 1024);
    // No checkpoint is written before the kill: the restart reads every
    // line again, the case de-duplication is for.
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\ncreate_table = true\nendpoint = \"{}\"\n",
            proxy.url()
        ),
        "checkpoint_interval = \"1h\"\n",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let mut first = sandbox.start_run(&path);
    assert!(
        poll_until(Duration::from_secs(60), || seq_stats(&emu, "container_log")
            .0
            >= 1),
        "the first lines did not arrive: {}",
        first.stderr()
    );
    append(&log, &lines[2..].concat());
    let all_in = poll_until(Duration::from_secs(60), || {
        seq_stats(&emu, "container_log").1 == 1500
    });
    first.assert_running();
    assert!(all_in, "the first run did not deliver: {}", first.stderr());
    first.signal("KILL");
    let _ = first.finish(Duration::from_secs(10));
    let sent_before = proxy.inserts().len();

    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(
        summary.get("rows_delivered"),
        1500,
        "the restart read everything again"
    );
    let inserts = proxy.inserts();
    assert!(inserts.len() > sent_before);
    let ids_of: HashMap<(String, i64), Vec<String>> = proxy.ids_by_position();
    assert_eq!(ids_of.len(), 1500);
    for (pos, ids) in &ids_of {
        assert_eq!(ids.len(), 2, "{pos:?} was sent {} times", ids.len());
        assert_eq!(ids[0], ids[1], "{pos:?} got another id after the restart");
    }
}

/// The team's table `app` has an INTEGER status; 200 JSON lines, of which
/// four (seq 7, 57, 107, 157) log `"status":"n/a"`. Returns the config of a
/// sink sending to `endpoint`, with `status` read as a STRING column.
pub(crate) fn table_with_an_integer_status(
    sandbox: &Sandbox,
    emu: &BqEmulator,
    endpoint: &str,
) -> String {
    create_table(
        emu,
        "app",
        &bundled_columns(&[
            json!({"name": "seq", "type": "INTEGER", "mode": "NULLABLE"}),
            json!({"name": "status", "type": "INTEGER", "mode": "NULLABLE"}),
        ]),
    );
    let mut lines = String::new();
    for seq in 0..200 {
        let status = if seq % 50 == 7 {
            json!("n/a")
        } else {
            json!(200 + seq % 3)
        };
        lines.push_str(&format!("{}\n", json!({"level": "info", "msg": format!("request seq={seq}"), "seq": seq, "status": status})));
    }
    sandbox.write_file("logs/app.log", lines);
    config(
        "json",
        &format!("table = \"app\"\nendpoint = \"{endpoint}\"\n"),
        "[[columns]]\nname = \"status\"\ntype = \"STRING\"\n",
    )
}

/// (status, dead_letter_reason) of every row in the sink's dead letters.
pub(crate) fn dead_letters(sandbox: &Sandbox) -> Vec<(String, String)> {
    dead_letter_columns(sandbox, "warehouse", "status")
}

/// The dead_letter_reason of every row in sink `sink`'s dead letters.
pub(crate) fn dead_letters_of(sandbox: &Sandbox, sink: &str) -> Vec<String> {
    dead_letter_columns(sandbox, sink, "dead_letter_reason")
        .into_iter()
        .map(|(reason, _)| reason)
        .collect()
}

/// (`column`, dead_letter_reason) of every row in `sink`'s dead letters.
fn dead_letter_columns(sandbox: &Sandbox, sink: &str, column: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    collect_parquet_files(
        &sandbox.path(&format!("state/dead_letter/{sink}")),
        &mut files,
    );
    let mut dead: Vec<(String, String)> = Vec::new();
    for f in files {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).expect("open"))
                .expect("a Parquet file")
                .build()
                .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let col = |name: &str| {
                let a = batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("no {name}"));
                arrow::array::AsArray::as_string::<i32>(a).clone()
            };
            let (status, reason) = (col(column), col("dead_letter_reason"));
            for i in 0..batch.num_rows() {
                dead.push((status.value(i).to_string(), reason.value(i).to_string()));
            }
        }
    }
    dead
}

#[test]
fn rows_that_do_not_fit_the_table_go_to_the_dead_letter() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let cfg = table_with_an_integer_status(&sandbox, &emu, &emu.rest_url());
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (finished, summary) = sandbox.run_once_ok(&path);
    assert!(
        finished
            .stderr
            .contains("column status is INT64 in the table, STRING in the schema"),
        "the type difference is reported at start-up: {}",
        finished.stderr
    );
    assert_eq!(summary.get("rows_dead_lettered"), 4);
    assert_eq!(summary.get("rows_delivered"), 196);

    let (rows, distinct, _, _) = seq_stats(&emu, "app");
    assert_eq!((rows, distinct), (196, 196));
    let bad_in_table = emu.count(&format!(
        "SELECT COUNT(*) FROM {} WHERE MOD(seq, 50) = 7",
        table_ref("app")
    ));
    assert_eq!(bad_in_table, 0);

    // The dead letter holds exactly the four rows, with BigQuery's reason.
    let dead = dead_letters(&sandbox);
    assert_eq!(dead.len(), 4, "{dead:?}");
    for (status, reason) in &dead {
        assert_eq!(status, "n/a");
        assert!(reason.starts_with("invalid"), "{reason}");
    }
}

#[test]
fn a_dead_letter_that_cannot_be_written_is_retried_without_resending_rows() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let proxy = BqProxy::start(&sandbox, &emu, 0);
    let cfg = table_with_an_integer_status(&sandbox, &emu, &proxy.url());
    let path = sandbox.write_file("tidewater.toml", cfg);
    // A file where the dead-letter directory must go: writing it fails until
    // the file is removed.
    let blocker = sandbox.write_file("state/dead_letter", "");
    let mut run = sandbox.spawn(&["run", "--once", "--config", path_str(&path)]);
    assert!(
        poll_until(Duration::from_secs(60), || run
            .stderr()
            .contains("cannot write the dead letter; will retry")),
        "{}",
        run.stderr()
    );
    run.assert_running();
    std::fs::remove_file(&blocker).expect("remove the blocker");
    let finished = run.finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();
    let summary = finished.summary();
    assert_eq!(summary.get("rows_dead_lettered"), 4);
    assert_eq!(summary.get("rows_delivered"), 196);
    assert_eq!(dead_letters(&sandbox).len(), 4);
    // Each row was sent once: retrying the dead letter sent nothing again.
    let sent = proxy.ids_by_position();
    assert_eq!(sent.len(), 200);
    for (pos, ids) in &sent {
        assert_eq!(ids.len(), 1, "{pos:?} was sent {} times", ids.len());
    }
    assert_eq!(seq_stats(&emu, "app").0, 196);
}

#[test]
fn nothing_is_lost_while_the_emulator_is_down() {
    let sandbox = Sandbox::new();
    let mut emu = BqEmulator::start_persistent(&sandbox, &sandbox.path("bq-data"));
    let log = sandbox.path("logs/app.log");
    generate(&log, "cri", 1000, &["--seed", "11"]);
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\ncreate_table = true\nendpoint = \"{}\"\nrequest_timeout = \"3s\"\n",
            emu.rest_url()
        ),
        "[api]\naddress = \"127.0.0.1:0\"\n",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let mut run = sandbox.start_run(&path);
    assert!(
        poll_until(Duration::from_secs(60), || seq_stats(&emu, "container_log")
            .1
            == 1000),
        "the first part did not arrive: {}",
        run.stderr()
    );

    // Down: the writer keeps appending.
    emu.stop();
    let more = generate(
        &sandbox.path("more.log"),
        "cri",
        2000,
        &["--seed", "12", "--start-seq", "1000"],
    );
    append(&log, &std::fs::read(&more.path).expect("read"));
    assert!(
        poll_until(Duration::from_secs(30), || run
            .stderr()
            .contains("delivery failed; retrying")),
        "no failed delivery was logged: {}",
        run.stderr()
    );
    run.assert_running();

    emu.restart();
    assert!(
        poll_until(Duration::from_secs(90), || seq_stats(&emu, "container_log")
            .1
            == 3000),
        "after the restart: {:?}\n{}\n--- emulator ---\n{}",
        seq_stats(&emu, "container_log"),
        run.stderr(),
        emu.logs()
    );
    run.signal("TERM");
    let finished = run.finish(Duration::from_secs(30));
    finished.assert_success();
    let (rows, distinct, min, max) = seq_stats(&emu, "container_log");
    assert_eq!((distinct, min, max), (3000, 0, 2999));
    // Batches in flight when the emulator went down may land twice (the
    // emulator does not de-duplicate by insertId); never more than those.
    assert!(rows - 3000 <= 2 * 700, "{rows} rows for 3000 records");
}

#[test]
fn a_table_that_lacks_columns_is_reported_at_start_or_extended() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    create_table(
        &emu,
        "old",
        &[
            json!({"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"}),
            json!({"name": "message", "type": "STRING", "mode": "NULLABLE"}),
        ],
    );
    generate(&sandbox.path("logs/app.log"), "cri", 50, &["--seed", "13"]);
    let sink = format!("table = \"old\"\nendpoint = \"{}\"\n", emu.rest_url());
    let path = sandbox.write_file("tidewater.toml", config("cri", &sink, ""));
    let finished = sandbox.run_once(&path);
    assert_ne!(finished.status.code(), Some(0));
    assert!(
        finished.stderr.contains("table test-project.logs.old does not fit the schema: lacks the columns observed_timestamp, stream")
            && finished.stderr.contains("update_schema"),
        "{}",
        finished.stderr
    );
    assert_eq!(
        emu.count(&format!("SELECT COUNT(*) FROM {}", table_ref("old"))),
        0
    );

    // With update_schema the missing columns are added through the tables
    // API. (The emulator records the new schema but does not widen its
    // storage, so it refuses the rows afterwards with a 500 that tidewater
    // retries: only the table's definition can be checked here.)
    let path = sandbox.write_file(
        "tidewater.toml",
        config(
            "cri",
            &format!("{sink}update_schema = true\n"),
            "shutdown_timeout = \"1s\"\n",
        )
        .replace("shutdown_timeout = \"20s\"\n", ""),
    );
    let run = sandbox.start_run(&path);
    let columns = || -> Vec<(String, String, String)> {
        let table = emu.rest("GET", "/datasets/logs/tables/old", &Value::Null);
        table["schema"]["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| {
                        let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                        (s("name"), s("type"), s("mode"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        poll_until(Duration::from_secs(30), || columns().len() > 2),
        "no column was added: {}",
        run.stderr()
    );
    run.signal("TERM");
    let _ = run.finish(Duration::from_secs(30));
    let columns = columns();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "timestamp",
            "message",
            "observed_timestamp",
            "stream",
            "level",
            "fields",
            "namespace",
            "pod",
            "container",
            "node",
            "labels",
            "annotations",
            "source",
            "file",
            "offset",
            "flags",
            "parse_error",
            "seq"
        ]
    );
    let mode = |name: &str| {
        columns
            .iter()
            .find(|c| c.0 == name)
            .map(|c| (c.1.as_str(), c.2.as_str()))
    };
    // REQUIRED in the schema, but BigQuery only adds NULLABLE columns.
    assert_eq!(mode("observed_timestamp"), Some(("TIMESTAMP", "NULLABLE")));
    assert_eq!(mode("flags"), Some(("STRING", "REPEATED")));
    assert_eq!(mode("seq"), Some(("INTEGER", "NULLABLE")));
}

#[test]
fn a_deleted_table_makes_the_sink_unhealthy_until_it_is_back() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let seq = json!({"name": "seq", "type": "INTEGER", "mode": "NULLABLE"});
    create_table(
        &emu,
        "container_log",
        &bundled_columns(std::slice::from_ref(&seq)),
    );
    let log = sandbox.path("logs/app.log");
    generate(&log, "cri", 500, &["--seed", "14"]);
    let api = free_port();
    let cfg = config(
        "cri",
        &format!(
            "table = \"container_log\"\nendpoint = \"{}\"\nrequest_timeout = \"3s\"\n",
            emu.rest_url()
        ),
        &format!("[api]\naddress = \"127.0.0.1:{api}\"\n"),
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let mut run = sandbox.start_run(&path);
    assert!(
        poll_until(Duration::from_secs(60), || seq_stats(&emu, "container_log")
            .1
            == 500),
        "{}",
        run.stderr()
    );

    // Someone drops the table; the service keeps logging.
    emu.rest(
        "DELETE",
        "/datasets/logs/tables/container_log",
        &Value::Null,
    );
    let more = generate(
        &sandbox.path("more.log"),
        "cri",
        500,
        &["--seed", "15", "--start-seq", "500"],
    );
    append(&log, &std::fs::read(&more.path).expect("read"));
    let failing = wait_for_readyz(
        api,
        &mut run,
        Duration::from_secs(60),
        "the BigQuery sink failing",
        |code, body| code == 503 && body["components"]["sinks.warehouse"]["status"] == "failing",
    );
    let sink = &failing["components"]["sinks.warehouse"];
    assert_eq!(sink["permanent"], true, "{failing}");
    assert!(
        sink["error"]
            .as_str()
            .is_some_and(|e| e.contains("notFound") || e.contains("does not exist")),
        "{failing}"
    );

    // Back: the rows read meanwhile arrive, none lost.
    create_table(&emu, "container_log", &bundled_columns(&[seq]));
    assert!(
        poll_until(Duration::from_secs(90), || seq_stats(&emu, "container_log")
            .1
            == 500),
        "{:?}\n{}",
        seq_stats(&emu, "container_log"),
        run.stderr()
    );
    let (rows, _, min, max) = seq_stats(&emu, "container_log");
    assert_eq!((rows, min, max), (500, 500, 999));
    wait_for_readyz(
        api,
        &mut run,
        Duration::from_secs(30),
        "the sink healthy again",
        |code, _| code == 200,
    );
    run.signal("TERM");
    run.finish(Duration::from_secs(30)).assert_success();
}

pub(crate) fn append(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(bytes).expect("append");
}
