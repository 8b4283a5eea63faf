//! `[kubernetes]`: the Pod's labels and annotations from a downwardAPI
//! volume built exactly as the kubelet builds it (a timestamped directory,
//! the `..data` symlink, one symlink per file), updated while `run` tails
//! a growing file the way the kubelet updates it (a new directory,
//! `..data_tmp` renamed over `..data`, the old directory removed). The lake
//! is read back with DuckDB (the README's `labels->>'$.team'`) and pyarrow;
//! the BigQuery emulator gets `labels` as JSON and `team` as a column.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::services::*;
use crate::util::*;

/// A downwardAPI volume as the kubelet's AtomicWriter writes it.
struct PodInfoVolume {
    root: PathBuf,
    generation: u32,
}

impl PodInfoVolume {
    fn new(root: PathBuf, labels: &str, annotations: &str) -> Self {
        std::fs::create_dir_all(&root).expect("mkdir podinfo");
        let mut v = PodInfoVolume {
            root,
            generation: 0,
        };
        v.write(labels, annotations);
        for name in ["labels", "annotations"] {
            symlink(format!("..data/{name}"), v.root.join(name)).expect("symlink");
        }
        v
    }

    /// Write a new timestamped directory and swap `..data` to it.
    fn write(&mut self, labels: &str, annotations: &str) {
        self.generation += 1;
        let dir = format!("..2026_12_02_13_00_{:02}.123456789", self.generation);
        std::fs::create_dir(self.root.join(&dir)).expect("mkdir");
        std::fs::write(self.root.join(&dir).join("labels"), labels).expect("write");
        std::fs::write(self.root.join(&dir).join("annotations"), annotations).expect("write");
        let old = std::fs::read_link(self.root.join("..data")).ok();
        symlink(&dir, self.root.join("..data_tmp")).expect("symlink ..data_tmp");
        std::fs::rename(self.root.join("..data_tmp"), self.root.join("..data"))
            .expect("rename ..data_tmp over ..data");
        if let Some(old) = old {
            std::fs::remove_dir_all(self.root.join(old)).expect("remove the old dir");
        }
    }
}

/// The kubelet's format (Go's %q): a label with a slash, an annotation
/// with quotes, a newline and non-ASCII text.
const LABELS_V1: &str = "app.kubernetes.io/name=\"web\"\nteam=\"payments\"";
const ANNOTATIONS_V1: &str = r#"deploy.example.com/note="say \"hi\"\nthen go: Zoë 日本""#;
const LABELS_V2: &str = "app.kubernetes.io/name=\"web\"\nteam=\"checkout\"";
const ANNOTATIONS_V2: &str = r#"deploy.example.com/note="moved""#;

const KUBERNETES: &str = "\n[kubernetes]\nlabels_file = \"podinfo/labels\"\n\
     annotations_file = \"podinfo/annotations\"\n\n\
     [[columns]]\nname = \"team\"\nlabel = \"team\"\n";

fn append_lines(path: &Path, seqs: std::ops::Range<i64>) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log");
    for seq in seqs {
        writeln!(f, "{}", json!({"level": "info", "msg": "tick", "seq": seq})).expect("append");
    }
}

/// Every row of the lake as DuckDB reads it, with the README's query shape:
/// `[seq, labels->>'$.team', team, labels, annotations]`, ordered by seq.
fn duckdb_rows(sandbox: &Sandbox) -> Vec<Vec<Value>> {
    let sql = "SELECT CAST(fields->>'$.seq' AS BIGINT) AS seq, labels->>'$.team', team, \
               labels, annotations FROM logs ORDER BY seq";
    duckdb(sandbox, &sandbox.lake(), &[sql]).remove(0)
}

/// A JSON column's text, parsed.
fn json_text(v: &Value) -> Value {
    let text = v.as_str().unwrap_or_else(|| panic!("not JSON text: {v}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn labels_follow_a_kubelet_update_without_a_restart() {
    let sandbox = Sandbox::new();
    let mut volume = PodInfoVolume::new(sandbox.path("podinfo"), LABELS_V1, ANNOTATIONS_V1);
    let log = sandbox.logs().join("app.log");
    append_lines(&log, 0..5);
    let config = Config {
        max_age: "200ms".into(),
        ..Config::relative("json")
    };
    let path = sandbox.write_file("tidewater.toml", config.to_toml() + KUBERNETES);
    let mut run = sandbox.start_run(&path);
    let mut lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_seqs(0..5, &mut run, Duration::from_secs(20));

    // The kubelet's update; the refresher sees it within one poll period
    // (1 s) and says so.
    volume.write(LABELS_V2, ANNOTATIONS_V2);
    let seen = poll_until(Duration::from_secs(3), || {
        run.stderr().matches("loaded the Pod's labels").count() >= 2
    });
    assert!(seen, "the update was not read:\n{}", run.stderr());
    append_lines(&log, 5..10);
    lake.wait_for_seqs(0..10, &mut run, Duration::from_secs(20));
    run.signal("TERM");
    run.finish(Duration::from_secs(20)).assert_success();

    let rows = duckdb_rows(&sandbox);
    assert_eq!(rows.len(), 10, "{rows:?}");
    for row in &rows {
        let seq = row[0].as_i64().expect("seq");
        let (team, note) = if seq < 5 {
            ("payments", "say \"hi\"\nthen go: Zoë 日本")
        } else {
            ("checkout", "moved")
        };
        assert_eq!(row[1], json!(team), "labels->>'$.team' of seq {seq}");
        assert_eq!(row[2], json!(team), "the team column of seq {seq}");
        assert_eq!(
            json_text(&row[3]),
            json!({"app.kubernetes.io/name": "web", "team": team}),
            "labels of seq {seq}"
        );
        assert_eq!(
            json_text(&row[4]),
            json!({"deploy.example.com/note": note}),
            "annotations of seq {seq}"
        );
    }
    let py = read_lake_with_pyarrow(&sandbox.lake());
    assert_eq!(py.seqs, (0..10).collect::<Vec<_>>());
    for column in ["labels", "annotations", "team"] {
        assert!(py.columns.iter().any(|c| c == column), "{:?}", py.columns);
    }
}

#[test]
fn labels_are_null_while_the_volume_is_missing_then_read_when_it_appears() {
    let sandbox = Sandbox::new();
    let log = sandbox.logs().join("app.log");
    append_lines(&log, 0..3);
    let config = Config {
        max_age: "200ms".into(),
        ..Config::relative("json")
    };
    let path = sandbox.write_file("tidewater.toml", config.to_toml() + KUBERNETES);
    let validated = sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT);
    validated.assert_success();
    for key in ["labels_file", "annotations_file"] {
        assert!(
            validated
                .stderr
                .contains(&format!("warning: kubernetes.{key}: ")),
            "{}",
            validated.stderr
        );
    }
    assert!(
        validated.stderr.contains("cannot be read"),
        "{}",
        validated.stderr
    );

    let mut run = sandbox.start_run(&path);
    let mut lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_seqs(0..3, &mut run, Duration::from_secs(20));
    // Retried every second, warned about once: no second warning comes.
    let warnings = || run.stderr().matches("cannot read the Pod's labels").count();
    assert!(
        !poll_until(Duration::from_millis(2500), || warnings() != 1),
        "expected one warning:\n{}",
        run.stderr()
    );
    // The volume appears: the next rows carry it.
    PodInfoVolume::new(sandbox.path("podinfo"), LABELS_V1, ANNOTATIONS_V1);
    assert!(
        poll_until(Duration::from_secs(3), || run
            .stderr()
            .contains("loaded the Pod's labels")),
        "{}",
        run.stderr()
    );
    append_lines(&log, 3..5);
    lake.wait_for_seqs(0..5, &mut run, Duration::from_secs(20));
    run.signal("TERM");
    run.finish(Duration::from_secs(20)).assert_success();

    let rows = duckdb_rows(&sandbox);
    assert_eq!(rows.len(), 5);
    for row in &rows {
        if row[0].as_i64() < Some(3) {
            assert!(row[2..].iter().all(Value::is_null), "{row:?}");
        } else {
            assert_eq!(row[2], json!("payments"), "{row:?}");
            assert!(row[4].is_string(), "{row:?}");
        }
    }
}

#[test]
fn labels_reach_bigquery_as_json_and_team_as_a_column() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    PodInfoVolume::new(sandbox.path("podinfo"), LABELS_V1, ANNOTATIONS_V1);
    append_lines(&sandbox.logs().join("app.log"), 0..20);
    let cfg = format!(
        r#"data_dir = "state"
{KUBERNETES}
[[columns]]
name = "seq"
type = "INTEGER"

[sources.app]
type = "tail"
include = ["logs/*.log"]
format = "json"

[sinks.rows]
type = "bigquery"
project = "{BQ_PROJECT}"
dataset = "logs"
table = "by_rows"
create_table = true
endpoint = "{rest}"

[sinks.arrow]
type = "bigquery"
project = "{BQ_PROJECT}"
dataset = "logs"
table = "by_arrow"
api = "storage_write"
create_table = true
endpoint = "{rest}"
storage_endpoint = "{grpc}"
"#,
        rest = emu.rest_url(),
        grpc = emu.grpc_url(),
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (_, summary) = sandbox.run_once_ok(&path);
    assert_eq!(summary.get("records"), 20);

    for table in ["by_rows", "by_arrow"] {
        let t = emu.rest(
            "GET",
            &format!("/datasets/logs/tables/{table}"),
            &Value::Null,
        );
        let ty = |name: &str| {
            t["schema"]["fields"]
                .as_array()
                .and_then(|f| f.iter().find(|f| f["name"] == name))
                .map(|f| f["type"].clone())
        };
        assert_eq!(ty("labels"), Some(json!("JSON")), "{t}");
        assert_eq!(ty("annotations"), Some(json!("JSON")), "{t}");
        assert_eq!(ty("team"), Some(json!("STRING")), "{t}");
        let rows = emu.query(&format!(
            "SELECT COUNT(*), COUNTIF(team = 'payments'), \
             COUNTIF(JSON_VALUE(labels, '$.team') = 'payments'), \
             COUNTIF(JSON_VALUE(labels, '$.\"app.kubernetes.io/name\"') = 'web'), \
             MIN(JSON_VALUE(annotations, '$.\"deploy.example.com/note\"')) \
             FROM `{BQ_PROJECT}.logs.{table}`"
        ));
        assert_eq!(
            rows,
            [vec![
                json!("20"),
                json!("20"),
                json!("20"),
                json!("20"),
                json!("say \"hi\"\nthen go: Zoë 日本")
            ]],
            "{table}"
        );
    }
}

#[test]
fn label_columns_and_the_kubernetes_table_are_checked_by_validate() {
    let sandbox = Sandbox::new();
    let base = Config::relative("json").to_toml();
    let cases = [
        (
            "both.toml",
            format!("{base}{KUBERNETES}from = \"team\"\n"),
            "columns[0].label: a column reads either a Pod label (label) or a body key (from), not both",
        ),
        (
            "no-kubernetes.toml",
            format!("{base}\n[[columns]]\nname = \"team\"\nlabel = \"team\"\n"),
            "columns[0].label: needs the Pod's labels: set [kubernetes] labels_file",
        ),
        (
            "only-annotations.toml",
            format!("{base}{}", KUBERNETES.replace("labels_file", "# labels_file")),
            "columns[0].label: needs the Pod's labels",
        ),
        (
            "empty.toml",
            format!("{base}\n[kubernetes]\n"),
            "kubernetes.labels_file: [kubernetes] names no file",
        ),
        (
            "unknown.toml",
            format!("{base}\n[kubernetes]\nlabels = \"podinfo/labels\"\n"),
            "unknown field `labels`",
        ),
    ];
    for (name, text, error) in cases {
        let path = sandbox.write_file(name, &text);
        let finished = sandbox
            .spawn(&["validate", "--config", path_str(&path)])
            .finish(RUN_ONCE_TIMEOUT);
        finished.assert_code(2);
        assert!(
            finished.stderr.contains(error),
            "{name}: expected {error:?}:\n{}",
            finished.stderr
        );
    }
}

/// A table made by a version without `labels` and `annotations`: the start
/// stops naming them and `update_schema`; with it they are added as
/// NULLABLE JSON.
#[test]
fn an_older_bigquery_table_without_labels_is_named_or_extended() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let text = std::fs::read_to_string(project_file("schemas/container_log.json"))
        .expect("schemas/container_log.json");
    let mut old: Vec<Value> = serde_json::from_str(&text).expect("the schema is JSON");
    old.retain(|c| c["name"] != "labels" && c["name"] != "annotations");
    emu.rest(
        "POST",
        "/datasets",
        &json!({"datasetReference": {"projectId": BQ_PROJECT, "datasetId": "logs"}}),
    );
    emu.rest(
        "POST",
        "/datasets/logs/tables",
        &json!({"tableReference": {"projectId": BQ_PROJECT, "datasetId": "logs", "tableId": "old"},
                "schema": {"fields": old}}),
    );
    append_lines(&sandbox.logs().join("app.log"), 0..3);
    let cfg = |extra: &str| {
        format!(
            "data_dir = \"state\"\nshutdown_timeout = \"1s\"\n\n[sources.app]\ntype = \"tail\"\n\
             include = [\"logs/*.log\"]\nformat = \"json\"\n\n[sinks.warehouse]\ntype = \"bigquery\"\n\
             project = \"{BQ_PROJECT}\"\ndataset = \"logs\"\ntable = \"old\"\nendpoint = \"{}\"\n{extra}",
            emu.rest_url()
        )
    };
    let path = sandbox.write_file("tidewater.toml", cfg(""));
    let finished = sandbox.run_once(&path);
    assert_ne!(finished.status.code(), Some(0));
    assert!(
        finished.stderr.contains(
            "lacks the columns labels, annotations (set sinks.warehouse.update_schema = true"
        ),
        "{}",
        finished.stderr
    );

    let path = sandbox.write_file("tidewater.toml", cfg("update_schema = true\n"));
    let mut run = sandbox.start_run(&path);
    let added = || {
        let t = emu.rest("GET", "/datasets/logs/tables/old", &Value::Null);
        let fields = t["schema"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ["labels", "annotations"].map(|name| {
            fields
                .iter()
                .find(|f| f["name"] == name)
                .map(|f| (f["type"].clone(), f["mode"].clone()))
        })
    };
    assert!(
        poll_until(Duration::from_secs(30), || {
            run.assert_running();
            added().iter().all(Option::is_some)
        }),
        "the columns were not added:\n{}",
        run.stderr()
    );
    run.signal("TERM");
    let _ = run.finish(Duration::from_secs(30));
    let nullable_json = Some((json!("JSON"), json!("NULLABLE")));
    assert_eq!(added(), [nullable_json.clone(), nullable_json]);
}
