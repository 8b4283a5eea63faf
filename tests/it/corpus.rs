//! Generated corpora (`tests/gen-cri.py`) go through `run --once` and arrive in
//! the lake exactly once, with every column right, readable by the parquet
//! crate and by pyarrow; Kubernetes metadata comes from the file path or the
//! environment.

use std::collections::HashMap;
use std::fs;

use serde_json::Value;

use crate::util::*;

/// `2026-11-22T03:00:00Z`, where gen-cri.py's clock starts.
const CORPUS_START_US: i64 = 1_795_316_400 * 1_000_000;
const HOUR_US: i64 = 3_600 * 1_000_000;

#[test]
fn cri_corpus_arrives_exactly_once() {
    let sandbox = Sandbox::new();
    let corpus = generate(
        &sandbox.logs().join("app.log"),
        "cri",
        20_000,
        &["--partial-share", "0.1", "--long-share", "0.01"],
    );
    assert!(
        corpus.lines > corpus.records,
        "the corpus should contain P/F split records"
    );

    let config = sandbox.write_config(&Config::relative("cri"));
    let (_, summary) = sandbox.run_once_ok(&config);

    check_summary(&summary, &[&corpus]);
    assert!(
        sandbox.checkpoint_file().is_file(),
        "run --once wrote no checkpoint at {}",
        sandbox.checkpoint_file().display()
    );
    let lake = read_lake(&sandbox.lake());
    check_rows(&lake, &[&corpus], "cri");
    check_with_pyarrow(&sandbox, &lake, &[&corpus]);
    for file in &lake.files {
        let (dt, hour, namespace, pod, _) = parse_lake_key(&file.key);
        assert_eq!(
            (namespace.as_str(), pod.as_str()),
            ("unknown", "unknown"),
            "a file without Kubernetes metadata must be under unknown/unknown, got {}",
            file.key.display()
        );
        assert!(
            dt.len() == 10 && hour.len() == 2,
            "bad partition in {}",
            file.key.display()
        );
    }
    for row in lake.rows() {
        assert_eq!(
            row.namespace, None,
            "plain log file names carry no namespace"
        );
        assert_eq!(row.pod, None, "plain log file names carry no pod");
    }
}

#[test]
fn docker_corpus_with_split_records_arrives_exactly_once() {
    let sandbox = Sandbox::new();
    let corpus = generate(
        &sandbox.logs().join("app.log"),
        "docker",
        5_000,
        &["--long-share", "0.02"],
    );
    assert!(
        corpus.lines > corpus.records,
        "the corpus should contain records longer than 16 KiB, split by dockerd"
    );

    let config = sandbox.write_config(&Config::relative("docker"));
    let (_, summary) = sandbox.run_once_ok(&config);

    check_summary(&summary, &[&corpus]);
    assert!(
        sandbox.checkpoint_file().is_file(),
        "run --once wrote no checkpoint"
    );
    let lake = read_lake(&sandbox.lake());
    check_rows(&lake, &[&corpus], "docker");
    check_with_pyarrow(&sandbox, &lake, &[&corpus]);
    let longest = lake
        .rows()
        .filter_map(|r| r.fields.as_ref())
        .map(String::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest > 16 * 1024,
        "split Docker records must be joined back: the longest `fields` is only {longest} bytes"
    );
}

#[test]
fn auto_format_reads_cri_and_docker_files() {
    let sandbox = Sandbox::new();
    let cri = generate(
        &sandbox.logs().join("cri.log"),
        "cri",
        1_000,
        &["--partial-share", "0.1"],
    );
    let docker = generate(
        &sandbox.logs().join("docker.log"),
        "docker",
        1_000,
        &["--start-seq", "1000", "--long-share", "0.02"],
    );

    let config = sandbox.write_config(&Config::relative("auto"));
    let (_, summary) = sandbox.run_once_ok(&config);

    check_summary(&summary, &[&cri, &docker]);
    let lake = read_lake(&sandbox.lake());
    lake.assert_exactly_once(0..2_000);
    let expected: HashMap<i64, Expected> = expected_records(&cri, "cri")
        .into_iter()
        .chain(expected_records(&docker, "docker"))
        .collect();
    for row in lake.rows() {
        let seq = row.seq.expect("every row of the corpus has a seq");
        let want = &expected[&seq];
        assert_eq!(
            row.stream.as_deref(),
            Some(want.stream.as_str()),
            "stream of seq {seq}"
        );
        assert_micros_close(row.timestamp, want.timestamp_us, seq);
    }
}

#[test]
fn kubernetes_metadata_comes_from_the_container_log_path() {
    let sandbox = Sandbox::new();
    // The kubelet's layout: /var/log/containers/<pod>_<namespace>_<container>-<id>.log
    // is a symlink to /var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log.
    let id = "4f1c0f3e9a7b2d6c8e5f1a3b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d";
    assert_eq!(id.len(), 64);
    let target =
        sandbox.path("var/log/pods/shop_web-7d9f_0d9e8f7a-1b2c-3d4e-5f60-718293a4b5c6/app/0.log");
    let corpus = generate(&target, "cri", 300, &[]);
    let containers = sandbox.path("var/log/containers");
    fs::create_dir_all(&containers).expect("cannot create var/log/containers");
    let link = containers.join(format!("web-7d9f_shop_app-{id}.log"));
    std::os::unix::fs::symlink(&target, &link).expect("cannot create the container log symlink");

    let mut config = Config::absolute(&sandbox, "cri");
    config.include = vec![format!("{}/*.log", path_str(&containers))];
    let config = sandbox.write_config(&config);
    let finished = sandbox
        .spawn_with_env(
            &["run", "--config", path_str(&config), "--once"],
            &[("NODE_NAME", "node-a")],
        )
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();
    assert_eq!(finished.summary().get("records"), corpus.records);

    let lake = read_lake(&sandbox.lake());
    lake.assert_exactly_once(corpus.seqs());
    for row in lake.rows() {
        assert_eq!(
            row.namespace.as_deref(),
            Some("shop"),
            "namespace from the path"
        );
        assert_eq!(row.pod.as_deref(), Some("web-7d9f"), "pod from the path");
        assert_eq!(
            row.container.as_deref(),
            Some("app"),
            "container from the path"
        );
        assert_eq!(row.node.as_deref(), Some("node-a"), "node from $NODE_NAME");
    }
    for file in &lake.files {
        let (_, _, namespace, pod, _) = parse_lake_key(&file.key);
        assert_eq!(
            (namespace.as_str(), pod.as_str()),
            ("shop", "web-7d9f"),
            "lake key {}",
            file.key.display()
        );
    }
}

#[test]
fn plain_file_metadata_comes_from_the_environment() {
    let sandbox = Sandbox::new();
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 200, &[]);
    let config = sandbox.write_config(&Config::relative("cri"));
    let env = [
        ("POD_NAME", "api-0"),
        ("POD_NAMESPACE", "billing"),
        ("NODE_NAME", "node-b"),
        ("CONTAINER_NAME", "api"),
    ];
    let finished = sandbox
        .spawn_with_env(&["run", "--config", path_str(&config), "--once"], &env)
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();

    let lake = read_lake(&sandbox.lake());
    lake.assert_exactly_once(corpus.seqs());
    for row in lake.rows() {
        assert_eq!(
            row.namespace.as_deref(),
            Some("billing"),
            "namespace from $POD_NAMESPACE"
        );
        assert_eq!(row.pod.as_deref(), Some("api-0"), "pod from $POD_NAME");
        assert_eq!(
            row.container.as_deref(),
            Some("api"),
            "container from $CONTAINER_NAME"
        );
        assert_eq!(row.node.as_deref(), Some("node-b"), "node from $NODE_NAME");
    }
    for file in &lake.files {
        let (_, _, namespace, pod, _) = parse_lake_key(&file.key);
        assert_eq!(
            (namespace.as_str(), pod.as_str()),
            ("billing", "api-0"),
            "lake key {}",
            file.key.display()
        );
    }
}

// ---------------------------------------------------------------------------

/// The summary of a `run --once` over clean corpora: everything counted, nothing lost.
fn check_summary(summary: &Summary, corpora: &[&Corpus]) {
    let sum = |f: fn(&Corpus) -> u64| corpora.iter().map(|c| f(c)).sum::<u64>();
    let records = sum(|c| c.records);
    assert_eq!(
        summary.get("files"),
        corpora.len() as u64,
        "files in {summary:?}"
    );
    assert_eq!(
        summary.get("lines"),
        sum(|c| c.lines),
        "physical lines in {summary:?}"
    );
    assert_eq!(
        summary.get("bytes"),
        sum(|c| c.bytes),
        "bytes in {summary:?}"
    );
    assert_eq!(summary.get("records"), records, "records in {summary:?}");
    assert_eq!(
        summary.get("rows_delivered"),
        records,
        "rows_delivered in {summary:?}"
    );
    for zero in [
        "parse_errors",
        "truncated",
        "invalid_utf8",
        "empty_lines",
        "unreadable_files",
        "rows_dead_lettered",
    ] {
        assert_eq!(summary.get(zero), 0, "{zero} in {summary:?}");
    }
}

/// Every row of a clean corpus: each seq once, and each column what the
/// corpus line says.
fn check_rows(lake: &Lake, corpora: &[&Corpus], format: &str) {
    let total: u64 = corpora.iter().map(|c| c.records).sum();
    assert_eq!(lake.row_count() as u64, total, "rows in the lake");
    for corpus in corpora {
        lake.assert_exactly_once(corpus.seqs());
    }
    for file in &lake.files {
        for column in COLUMNS {
            assert!(
                file.columns.iter().any(|c| c == column),
                "lake file {} lacks column {column} (has {:?})",
                file.key.display(),
                file.columns
            );
        }
    }
    let expected: HashMap<i64, Expected> = corpora
        .iter()
        .flat_map(|c| expected_records(c, format))
        .collect();
    for row in lake.rows() {
        let seq = row
            .seq
            .expect("every row of a clean corpus has a seq in `fields`");
        let want = &expected[&seq];
        let fields: Value =
            serde_json::from_str(row.fields.as_deref().expect("fields is set when seq is"))
                .expect("fields is JSON");
        let level = row
            .level
            .as_deref()
            .unwrap_or_else(|| panic!("seq {seq}: level is null"));
        assert!(
            LEVELS.contains(&level),
            "seq {seq}: level {level:?} is not normalised"
        );
        assert_eq!(
            Some(level),
            fields["level"].as_str(),
            "seq {seq}: level differs from the body's"
        );
        let message = row
            .message
            .as_deref()
            .unwrap_or_else(|| panic!("seq {seq}: message is null"));
        assert!(
            message.contains(&format!("seq={seq}")),
            "seq {seq}: message {message:?} is not the body's msg"
        );
        assert_eq!(
            row.stream.as_deref(),
            Some(want.stream.as_str()),
            "seq {seq}: stream"
        );
        assert_micros_close(row.timestamp, want.timestamp_us, seq);
        assert!(
            row.observed_timestamp.is_some(),
            "seq {seq}: observed_timestamp is null"
        );
        assert_eq!(
            row.offset,
            Some(want.offset as i64),
            "seq {seq}: offset of the record's first line"
        );
        assert!(
            row.file
                .as_deref()
                .is_some_and(|f| f.ends_with(&*want.file_name)),
            "seq {seq}: file {:?} should name {}",
            row.file,
            want.file_name
        );
        assert_eq!(row.source.as_deref(), Some("app"), "seq {seq}: source name");
        assert_eq!(row.parse_error, None, "seq {seq}: unexpected parse error");
        assert!(
            !row.flags
                .iter()
                .any(|f| f == "parse_error" || f == "truncated" || f == "invalid_utf8"),
            "seq {seq}: unexpected flags {:?}",
            row.flags
        );
    }
}

/// The parquet crate and pyarrow must read the same lake.
fn check_with_pyarrow(sandbox: &Sandbox, lake: &Lake, corpora: &[&Corpus]) {
    let py = read_lake_with_pyarrow(&sandbox.lake());
    assert_eq!(
        py.files as usize,
        lake.files.len(),
        "pyarrow and parquet-rs see different file counts"
    );
    assert_eq!(
        py.rows as usize,
        lake.row_count(),
        "pyarrow and parquet-rs see different row counts"
    );
    let mut expected: Vec<i64> = corpora.iter().flat_map(|c| c.seqs()).collect();
    expected.sort_unstable();
    assert!(
        py.seqs == expected,
        "pyarrow does not read every seq exactly once"
    );
    for column in COLUMNS {
        assert!(
            py.columns.iter().any(|c| c == column),
            "pyarrow sees no column {column}: {:?}",
            py.columns
        );
    }
    assert_eq!(py.parse_errors, 0, "pyarrow sees parse errors");
    assert_eq!(
        py.time_ranged, py.files,
        "pyarrow finds files without the true min/max of `timestamp` in their statistics"
    );
    assert_eq!(
        py.flags,
        lake.flag_counts(),
        "pyarrow and parquet-rs see different flags"
    );
}

/// What a corpus line says about its record.
#[derive(Debug)]
struct Expected {
    /// Byte offset of the record's first line.
    offset: u64,
    timestamp_us: i64,
    stream: String,
    file_name: String,
}

/// Walks a corpus file and returns, per seq, the record's first-line offset,
/// runtime timestamp and stream.
fn expected_records(corpus: &Corpus, format: &str) -> HashMap<i64, Expected> {
    let file_name = corpus
        .path
        .file_name()
        .expect("corpus files have names")
        .to_string_lossy()
        .into_owned();
    let mut out = HashMap::new();
    let mut offset = 0u64;
    let mut record_start = 0u64;
    let mut seq = corpus.start_seq as i64;
    for line in corpus.lines() {
        let text = std::str::from_utf8(&line).expect("generated corpora are UTF-8");
        let (stamp, stream, ends_record) = match format {
            "cri" => {
                let mut parts = text.splitn(4, ' ');
                let stamp = parts.next().expect("CRI time").to_string();
                let stream = parts.next().expect("CRI stream").to_string();
                let tag = parts.next().expect("CRI P/F tag");
                (stamp, stream, tag == "F")
            }
            "docker" => {
                let v: Value = serde_json::from_str(text).expect("Docker json-file lines are JSON");
                let log = v["log"].as_str().expect("Docker log field");
                (
                    v["time"].as_str().expect("Docker time").to_string(),
                    v["stream"].as_str().expect("Docker stream").to_string(),
                    log.ends_with('\n'),
                )
            }
            other => panic!("no expectations for format {other}"),
        };
        offset += line.len() as u64;
        if ends_record {
            out.insert(
                seq,
                Expected {
                    offset: record_start,
                    timestamp_us: rfc3339_micros(&stamp),
                    stream,
                    file_name: file_name.clone(),
                },
            );
            seq += 1;
            record_start = offset;
        }
    }
    assert_eq!(
        out.len() as u64,
        corpus.records,
        "records found in {}",
        corpus.path.display()
    );
    out
}

/// The runtime timestamp, to the microsecond (truncated or rounded).
fn assert_micros_close(actual: Option<i64>, expected: i64, seq: i64) {
    let actual = actual.unwrap_or_else(|| panic!("seq {seq}: timestamp is null"));
    assert!(
        (CORPUS_START_US..CORPUS_START_US + HOUR_US).contains(&actual),
        "seq {seq}: timestamp {actual} µs is not the corpus's 2026-11-22T03 runtime time"
    );
    assert!(
        (actual - expected).abs() <= 1,
        "seq {seq}: timestamp {actual} µs, the runtime's time is {expected} µs"
    );
}

/// Parses gen-cri.py's `YYYY-MM-DDTHH:MM:SS.fffffffffZ` into µs since the epoch.
fn rfc3339_micros(stamp: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| -> i64 {
        stamp
            .get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp {stamp:?}"))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let seconds = num(11..13) * 3600 + num(14..16) * 60 + num(17..19);
    let fraction = stamp[20..].trim_end_matches('Z');
    let nanos: i64 = format!("{fraction:0<9}")[..9]
        .parse()
        .expect("fraction digits");
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + seconds) * 1_000_000 + nanos / 1_000
}

#[test]
fn rfc3339_parser_matches_the_corpus_epoch() {
    assert_eq!(
        rfc3339_micros("2026-11-22T03:00:00.000000000Z"),
        CORPUS_START_US
    );
    assert_eq!(rfc3339_micros("1970-01-01T00:00:01.000001999Z"), 1_000_001);
}

/// `[[columns]]` extracts typed columns from JSON bodies; a value that does
/// not convert is NULL, flagged `conversion_error`, and kept in `fields`.
#[test]
fn extra_columns_are_typed_and_bad_values_flagged() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let sandbox = Sandbox::new();
    let lines = [
        r#"2026-11-22T03:00:00Z stdout F {"msg":"ok","status":200,"latency_ms":1.5}"#,
        r#"2026-11-22T03:00:01Z stdout F {"msg":"text number","status":"404","latency_ms":2}"#,
        r#"2026-11-22T03:00:02Z stdout F {"msg":"bad","status":"n/a","latency_ms":3.25}"#,
    ];
    sandbox.write_file("logs/app.log", lines.join("\n") + "\n");
    let mut toml = Config::relative("cri").to_toml();
    toml.push_str(
        "\n[[columns]]\nname = \"status\"\ntype = \"INTEGER\"\n\n[[columns]]\nname = \"latency\"\ntype = \"FLOAT\"\nfrom = \"latency_ms\"\n",
    );
    let config = sandbox.write_file("extra.toml", toml);
    sandbox.run_once_ok(&config);

    let mut files = Vec::new();
    collect_parquet_files(&sandbox.lake(), &mut files);
    let mut rows = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&file).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("no column {name}"))
                    .clone()
            };
            let (message, status, latency, flags, fields) = (
                col("message"),
                col("status"),
                col("latency"),
                col("flags"),
                col("fields"),
            );
            let (message, fields) = (message.as_string::<i32>(), fields.as_string::<i32>());
            let (status, latency) = (
                status.as_primitive::<Int64Type>(),
                latency.as_primitive::<Float64Type>(),
            );
            let flags = flags.as_list::<i32>();
            for i in 0..batch.num_rows() {
                let row_flags = flags.value(i);
                let row_flags: Vec<String> = row_flags
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect();
                rows.push((
                    message.value(i).to_string(),
                    status.is_valid(i).then(|| status.value(i)),
                    latency.is_valid(i).then(|| latency.value(i)),
                    row_flags,
                    fields.value(i).to_string(),
                ));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2),
        ("bad", None, Some(3.25))
    );
    assert_eq!(rows[0].3, vec!["conversion_error".to_string()]);
    assert!(
        rows[0].4.contains("n/a"),
        "the unconverted value stays in fields: {}",
        rows[0].4
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1, rows[1].2),
        ("ok", Some(200), Some(1.5))
    );
    assert!(rows[1].3.is_empty());
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1, rows[2].2),
        ("text number", Some(404), Some(2.0))
    );
}
