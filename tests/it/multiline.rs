//! `[sources.app.multiline]` through the binary: stack traces of five
//! languages interleaved on stdout and stderr of one CRI file (long lines
//! split into `P` pieces) arrive as one row each, read back by the parquet
//! crate and by pyarrow; a SIGKILL while a trace is open loses no frame and
//! splits no record; the timeout emits a trace while `run` keeps running;
//! a stop emits the open trace; bad tables are refused naming their key.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const ALL_LANGUAGES: &str = r#"languages = ["java", "python", "go", "ruby", "node"]"#;

/// Lines longer than this are written as CRI `P` pieces of this size (the
/// runtime does so at its buffer's size, 16 KiB for containerd).
const PIECE: usize = 100;

/// `2026-11-22T03:00:00Z`, where the files' clock starts.
const START_US: i64 = 1_795_316_400 * 1_000_000;

// Traces as the runtimes print them (CRI: a blank line is an empty body).

const JAVA_UNCAUGHT: &[&str] = &[
    "Exception in thread \"main\" java.lang.RuntimeException: outer",
    "\tat Main.main(Main.java:5)",
    "\tSuppressed: java.lang.Exception: closing",
    "\t\tat Main.close(Main.java:12)",
    "\t\t... 1 more",
    "Caused by: com.x.FooError",
    "\tat Main.f(Main.java:9)",
    "\t... 12 common frames omitted",
];

const PYTHON: &[&str] = &[
    "ERROR:root:failed to load",
    "Traceback (most recent call last):",
    "  File \"/app/main.py\", line 3, in load",
    "    return int(x)",
    "           ^^^^^^",
    "ValueError: invalid literal for int() with base 10: 'x'",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    "  File \"/app/main.py\", line 8, in <module>",
    "    load(\"x\")",
    "RuntimeError: bad",
];

const GO: &[&str] = &[
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47d0a5]",
    "",
    "goroutine 1 [running]:",
    "main.(*Server).handle(0x0, {0x4b2f40, 0xc000012345})",
    "\t/app/main.go:12 +0x25",
    "main.main()",
    "\t/app/main.go:20 +0x3d",
    "",
    "goroutine 6 [chan receive]:",
    "main.worker(0xc000020060)",
    "\t/app/worker.go:8 +0x4a",
    "created by main.main in goroutine 1",
    "\t/app/main.go:17 +0x65",
];

const RUBY: &[&str] = &[
    "app.rb:3:in 'Integer#/': divided by 0 (ZeroDivisionError)",
    "\tfrom app.rb:3:in 'Object#divide'",
    "\tfrom app.rb:7:in '<main>'",
];

const RUBY_LOGGER: &[&str] = &[
    "E, [2026-11-22T03:00:00.123456 #1] ERROR -- : divided by 0 (ZeroDivisionError)",
    "app.rb:3:in `/'",
    "app.rb:3:in `divide'",
    "app.rb:7:in `block in <main>'",
];

const NODE_CRASH: &[&str] = &[
    "/app/index.js:3",
    "  throw new Error('boom');",
    "  ^",
    "",
    "Error: boom",
    "    at Object.<anonymous> (/app/index.js:3:9)",
    "    at Module._compile (node:internal/modules/cjs/loader:1554:14)",
    "    at node:internal/main/run_main_module:36:49",
    "",
    "Node.js v20.20.2",
];

const NODE_LOGGED: &[&str] = &[
    "TypeError: Cannot read properties of undefined (reading 'id')",
    "    at handler (/app/server.js:10:20)",
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
];

/// A logback error: the message line, the exception, frames, a cause.
fn java_logback() -> Vec<String> {
    let long_frame = format!(
        "\tat com.x.{}.invoke(Generated.java:1)",
        "Proxy$".repeat(40)
    );
    [
        "2026-11-22 03:00:01.000 ERROR [main] c.x.App - request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.x.App.handle(App.java:42)",
        &long_frame,
        "\tat com.x.App.main(App.java:10)",
        "Caused by: java.io.IOException: disk full",
        "\tat com.x.Disk.write(Disk.java:7)",
        "\t... 2 more",
    ]
    .map(String::from)
    .to_vec()
}

fn lines(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

/// A row as both readers see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Got {
    offset: i64,
    stream: Option<String>,
    message: String,
    level: Option<String>,
    flags: Vec<String>,
}

/// A CRI file written as the runtime writes it: one clock tick per line.
#[derive(Default)]
struct CriLog {
    bytes: Vec<u8>,
    ticks: i64,
}

impl CriLog {
    /// Appends one physical line; its offset and time (µs).
    fn physical(&mut self, stream: &str, tag: &str, body: &str) -> (i64, i64) {
        let us = START_US + self.ticks * 1_000;
        self.ticks += 1;
        let time = chrono::DateTime::from_timestamp_micros(us)
            .expect("a time")
            .format("%Y-%m-%dT%H:%M:%S%.9fZ");
        let offset = self.bytes.len() as i64;
        self.bytes
            .extend_from_slice(format!("{time} {stream} {tag} {body}\n").as_bytes());
        (offset, us)
    }

    /// One log line, split into `P` pieces when longer than [`PIECE`].
    fn line(&mut self, stream: &str, line: &str) -> (i64, i64) {
        let pieces = pieces(line);
        let mut first = None;
        for (i, p) in pieces.iter().enumerate() {
            let tag = if i + 1 < pieces.len() { "P" } else { "F" };
            let at = self.physical(stream, tag, p);
            first.get_or_insert(at);
        }
        first.expect("at least one piece")
    }
}

fn pieces(line: &str) -> Vec<&str> {
    if line.is_empty() {
        return vec![""];
    }
    line.as_bytes()
        .chunks(PIECE)
        .map(|c| std::str::from_utf8(c).expect("ASCII test lines"))
        .collect()
}

/// One stream's records, as physical CRI lines still to write.
struct Stream {
    name: &'static str,
    /// (tag, body, index of the record it starts).
    queue: VecDeque<(&'static str, String, Option<usize>)>,
    expected: Vec<(Got, i64)>,
}

impl Stream {
    fn new(name: &'static str, records: Vec<Vec<String>>) -> Self {
        let mut queue = VecDeque::new();
        let mut expected = Vec::new();
        for (k, record) in records.iter().enumerate() {
            let (message, level) = match serde_json::from_str::<Value>(&record[0]) {
                Ok(v) => (
                    v["msg"].as_str().map(String::from),
                    v["level"].as_str().map(String::from),
                ),
                Err(_) => (None, (record.len() > 1).then(|| "error".to_string())),
            };
            let got = Got {
                offset: -1,
                stream: Some(name.to_string()),
                message: message.unwrap_or_else(|| record.join("\n")),
                level,
                flags: vec![],
            };
            expected.push((got, 0));
            for (j, line) in record.iter().enumerate() {
                let pieces = pieces(line);
                let last = pieces.len() - 1;
                for (i, p) in pieces.into_iter().enumerate() {
                    let tag = if i < last { "P" } else { "F" };
                    let starts = (j == 0 && i == 0).then_some(k);
                    queue.push_back((tag, p.to_string(), starts));
                }
            }
        }
        Stream {
            name,
            queue,
            expected,
        }
    }

    /// Writes its next physical line; false when none is left.
    fn write_one(&mut self, log: &mut CriLog) -> bool {
        let Some((tag, body, starts)) = self.queue.pop_front() else {
            return false;
        };
        let (offset, us) = log.physical(self.name, tag, &body);
        if let Some(k) = starts {
            self.expected[k].0.offset = offset;
            self.expected[k].1 = us;
        }
        true
    }
}

/// The rows of the lake through the parquet crate, with their times.
fn rows_with_parquet_rs(lake: &Path) -> Vec<(Got, Option<i64>)> {
    let mut rows: Vec<(Got, Option<i64>)> = read_lake(lake)
        .rows()
        .map(|r| {
            let got = Got {
                offset: r.offset.expect("every row has an offset"),
                stream: r.stream.clone(),
                message: r.message.clone().unwrap_or_default(),
                level: r.level.clone(),
                flags: r.flags.clone(),
            };
            (got, r.timestamp)
        })
        .collect();
    rows.sort();
    rows
}

/// The rows of the lake through pyarrow (`tests/lake_rows.py`).
fn rows_with_pyarrow(lake: &Path) -> Vec<Got> {
    let script = project_file("tests/lake_rows.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(lake)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", python(), script.display()));
    assert!(
        output.status.success(),
        "lake_rows.py failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("lake_rows.py did not print a JSON array: {e}"));
    let text = |v: &Value| v.as_str().map(String::from);
    let mut rows: Vec<Got> = rows
        .iter()
        .map(|r| Got {
            offset: r["offset"].as_i64().expect("an integer offset"),
            stream: text(&r["stream"]),
            message: text(&r["message"]).unwrap_or_default(),
            level: text(&r["level"]),
            flags: r["flags"]
                .as_array()
                .expect("a flags list")
                .iter()
                .filter_map(text)
                .collect(),
        })
        .collect();
    rows.sort();
    rows
}

/// Both readers' rows, which must agree.
fn lake_rows(sandbox: &Sandbox) -> Vec<Got> {
    let rs = rows_with_parquet_rs(&sandbox.lake());
    let py = rows_with_pyarrow(&sandbox.lake());
    let rs_rows: Vec<Got> = rs.into_iter().map(|(g, _)| g).collect();
    assert_eq!(
        rs_rows, py,
        "the parquet crate and pyarrow read different rows"
    );
    rs_rows
}

/// A config for `logs/*.log` (CRI) with `[sources.app.multiline]` = `table`,
/// batches of at most 200ms and checkpoints every 100ms.
fn write_config(sandbox: &Sandbox, table: &str) -> PathBuf {
    let mut config = Config::absolute(sandbox, "cri");
    config.max_age = "200ms".into();
    let text = config.to_toml().replacen(
        "[batch]\n",
        &format!("[sources.app.multiline]\n{table}\n\n[batch]\n"),
        1,
    );
    sandbox.write_file(
        "tidewater.toml",
        format!("checkpoint_interval = \"100ms\"\n{text}"),
    )
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
}

/// Polls until the checkpoint records an offset at or past `offset`; the
/// offsets it records then.
fn wait_for_checkpoint_at(sandbox: &Sandbox, offset: u64, tidewater: &mut Tidewater) -> Vec<u64> {
    let mut seen = Vec::new();
    let reached = poll_until(LAKE_TIMEOUT, || {
        tidewater.assert_running();
        if !sandbox.checkpoint_file().exists() {
            return false;
        }
        seen = checkpoint_offsets(&read_checkpoints(sandbox));
        seen.iter().any(|o| *o >= offset)
    });
    assert!(
        reached,
        "the checkpoint did not reach offset {offset} within {LAKE_TIMEOUT:?} (it records {seen:?})\n--- stderr ---\n{}",
        tail(&tidewater.stderr(), 3000)
    );
    seen
}

#[test]
fn multiline_traces_interleaved_on_both_streams_are_one_row_each() {
    let sandbox = Sandbox::new();
    let stdout = vec![
        lines(&["starting service"]),
        java_logback(),
        lines(&["handled 200 GET /health"]),
        lines(GO),
        lines(&[r#"{"level":"info","msg":"json line"}"#]),
        vec![format!("request log {}", "abcdefghij".repeat(30))],
        lines(NODE_LOGGED),
        // Open at the end of the file: --once emits it, complete.
        lines(RUBY_LOGGER),
    ];
    let stderr = vec![
        lines(&["warming up"]),
        lines(PYTHON),
        lines(&["retrying in 1s"]),
        lines(RUBY),
        lines(NODE_CRASH),
        // Its first line is split too: the record's offset is its first piece's.
        [
            vec![format!("{} {}", JAVA_UNCAUGHT[0], "because ".repeat(20))],
            lines(&JAVA_UNCAUGHT[1..]),
        ]
        .concat(),
        lines(&["bye"]),
    ];
    let (mut out, mut err) = (Stream::new("stdout", stdout), Stream::new("stderr", stderr));
    let mut log = CriLog::default();
    // Two stdout lines, then one stderr line: pieces of one stream's split
    // lines have the other stream's lines between them.
    for i in 0.. {
        let (turn, other) = if i % 3 < 2 {
            (&mut out, &mut err)
        } else {
            (&mut err, &mut out)
        };
        if !(turn.write_one(&mut log) || other.write_one(&mut log)) {
            break;
        }
    }
    let physical = log.bytes.iter().filter(|b| **b == b'\n').count();
    let path = sandbox.write_file("logs/app.log", &log.bytes);
    let text = String::from_utf8_lossy(&log.bytes);
    assert!(
        text.contains(" stdout P ") && text.contains(" stderr P "),
        "both streams have split lines"
    );

    let config = write_config(&sandbox, ALL_LANGUAGES);
    let (_, summary) = sandbox.run_once_ok(&config);

    let mut expected: Vec<(Got, i64)> = out.expected.into_iter().chain(err.expected).collect();
    expected.sort();
    assert_eq!(summary.get("lines"), physical as u64, "{summary:?}");
    assert_eq!(summary.get("records"), expected.len() as u64, "{summary:?}");
    let got = lake_rows(&sandbox);
    let want: Vec<Got> = expected.iter().map(|(g, _)| g.clone()).collect();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "first difference");
    }
    assert_eq!(got, want);
    // Each record's time is its first line's.
    let times: Vec<(i64, Option<i64>)> = rows_with_parquet_rs(&sandbox.lake())
        .into_iter()
        .map(|(g, t)| (g.offset, t))
        .collect();
    let want_times: Vec<(i64, Option<i64>)> = expected
        .iter()
        .map(|(g, us)| (g.offset, Some(*us)))
        .collect();
    assert_eq!(times, want_times);
    assert_eq!(
        checkpoint_offsets(&read_checkpoints(&sandbox)),
        vec![log.bytes.len() as u64],
        "{}",
        path.display()
    );
}

#[test]
fn multiline_sigkill_while_a_trace_is_open_loses_no_frame() {
    let sandbox = Sandbox::new();
    let trace = java_logback();
    let (head, rest) = trace.split_at(4);
    let mut log = CriLog::default();
    let mut before = Vec::new();
    for n in 1..=3 {
        before.push(log.line("stdout", &format!("normal {n}")));
    }
    let (trace_at, _) = log.line("stdout", &head[0]);
    for l in &head[1..] {
        log.line("stdout", l);
    }
    let path = sandbox.write_file("logs/app.log", &log.bytes);
    let config = write_config(&sandbox, &format!("{ALL_LANGUAGES}\ntimeout = \"60s\""));

    let mut tidewater = sandbox.start_run(&config);
    // The normal lines are delivered and committed; the open trace holds
    // the checkpoint at its first line.
    let offsets = wait_for_checkpoint_at(&sandbox, trace_at as u64, &mut tidewater);
    assert_eq!(
        offsets,
        vec![trace_at as u64],
        "the checkpoint must stop at the open trace's first line"
    );
    tidewater.signal("KILL");
    let killed = tidewater.finish(Duration::from_secs(10));
    assert_eq!(
        killed.status.code(),
        None,
        "died of SIGKILL: {}",
        killed.status
    );
    let lake = read_lake(&sandbox.lake());
    assert!(
        lake.rows().all(|r| r.offset != Some(trace_at)),
        "the open trace was not emitted before the kill"
    );

    // The rest of the trace and a normal line, then a restart.
    let mut more = CriLog {
        ticks: log.ticks,
        ..CriLog::default()
    };
    for l in rest {
        more.line("stdout", l);
    }
    let after = log.bytes.len() as i64 + more.line("stdout", "normal 4").0;
    append(&path, &more.bytes);
    sandbox.run_once_ok(&config);

    let stdout = Some("stdout".to_string());
    let row = |offset: i64, message: String, level: Option<&str>| Got {
        offset,
        stream: stdout.clone(),
        message,
        level: level.map(String::from),
        flags: vec![],
    };
    let mut want: Vec<Got> = before
        .iter()
        .enumerate()
        .map(|(i, (o, _))| row(*o, format!("normal {}", i + 1), None))
        .collect();
    want.push(row(trace_at, trace.join("\n"), Some("error")));
    want.push(row(after, "normal 4".into(), None));
    assert_eq!(
        lake_rows(&sandbox),
        want,
        "one row for the trace, every frame in it"
    );
}

#[test]
fn multiline_timeout_emits_a_trace_while_run_keeps_running() {
    let sandbox = Sandbox::new();
    let mut log = CriLog::default();
    log.line("stderr", "normal");
    let (trace_at, _) = log.line("stderr", NODE_LOGGED[0]);
    for l in &NODE_LOGGED[1..] {
        log.line("stderr", l);
    }
    sandbox.write_file("logs/app.log", &log.bytes);
    let config = write_config(&sandbox, &format!("{ALL_LANGUAGES}\ntimeout = \"300ms\""));

    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    let emitted = poll_until(LAKE_TIMEOUT, || {
        tidewater.assert_running();
        lake.scan().rows().any(|r| r.offset == Some(trace_at))
    });
    assert!(
        emitted,
        "the trace was not emitted within {LAKE_TIMEOUT:?} of its timeout\n--- stderr ---\n{}",
        tail(&tidewater.stderr(), 3000)
    );
    tidewater.signal("TERM");
    tidewater.finish(Duration::from_secs(30)).assert_success();
    let rows = lake_rows(&sandbox);
    let messages: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["normal", &NODE_LOGGED.join("\n")]);
}

#[test]
fn multiline_stop_emits_the_open_trace_and_commits_it() {
    let sandbox = Sandbox::new();
    let mut log = CriLog::default();
    log.line("stdout", "normal");
    let (trace_at, _) = log.line("stdout", GO[0]);
    for l in &GO[1..] {
        log.line("stdout", l);
    }
    sandbox.write_file("logs/app.log", &log.bytes);
    let config = write_config(&sandbox, &format!("{ALL_LANGUAGES}\ntimeout = \"60s\""));

    let mut tidewater = sandbox.start_run(&config);
    // The file is one block: once the checkpoint is at the trace, all of
    // it was read and the trace is open.
    wait_for_checkpoint_at(&sandbox, trace_at as u64, &mut tidewater);
    tidewater.signal("TERM");
    tidewater.finish(Duration::from_secs(30)).assert_success();
    let rows = lake_rows(&sandbox);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        (rows[1].offset, rows[1].message.as_str()),
        (trace_at, GO.join("\n").as_str())
    );
    assert!(
        rows[1].flags.is_empty(),
        "complete, not partial: {:?}",
        rows[1]
    );
    assert_eq!(
        checkpoint_offsets(&read_checkpoints(&sandbox)),
        vec![log.bytes.len() as u64]
    );
    let (_, again) = sandbox.run_once_ok(&config);
    assert_eq!(again.get("records"), 0, "nothing is read again: {again:?}");
}

#[test]
fn multiline_tables_that_cannot_work_are_refused_naming_the_key() {
    let sandbox = Sandbox::new();
    for (table, expected) in [
        (
            "languages = [\"java\", \"cobol\"]",
            "multiline.languages: unknown variant `cobol`",
        ),
        (
            "start_pattern = '^(\\d'",
            "sources.app.multiline.start_pattern",
        ),
        (
            "languages = [\"go\"]\nstart_pattern = '^x'",
            "sources.app.multiline.start_pattern: cannot be used with languages",
        ),
        ("languages = []", "sources.app.multiline.languages"),
        (
            "languages = [\"go\"]\nmax_lines = 1",
            "sources.app.multiline.max_lines",
        ),
        (
            "languages = [\"go\"]\ntimeout = \"0s\"",
            "sources.app.multiline.timeout",
        ),
    ] {
        let config = write_config(&sandbox, table);
        let finished = sandbox
            .spawn(&["validate", "--config", path_str(&config)])
            .finish(Duration::from_secs(30));
        assert_ne!(finished.status.code(), Some(0), "{table} was accepted");
        assert!(
            finished.stderr.contains(expected) && finished.stderr.contains("tidewater.toml"),
            "{table}: expected {expected:?} and the file name in:\n{}",
            finished.stderr
        );
    }
}
