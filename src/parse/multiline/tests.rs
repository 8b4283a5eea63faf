//! Real traces, as the runtimes print them, through a [`FileParser`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::parse::{FileParser, Record};

/// What a test checks of a record.
#[derive(Debug, Clone, PartialEq)]
struct Out {
    offset: u64,
    stream: Option<&'static str>,
    message: String,
    level: Option<String>,
    flags: Vec<&'static str>,
}

fn out(r: &Record) -> Out {
    Out {
        offset: r.offset,
        stream: r
            .stream
            .map(|s| if s == "stderr" { "stderr" } else { "stdout" }),
        message: r.message.as_deref().unwrap_or_default().to_string(),
        level: r.level.as_deref().map(str::to_string),
        flags: r.flags.names().collect(),
    }
}

fn rules(table: &str) -> Arc<Rules> {
    let config: MultilineConfig = toml::from_str(table).expect("a multiline table");
    Arc::new(Rules::new(&config).expect("valid rules"))
}

fn all_languages() -> Arc<Rules> {
    rules(r#"languages = ["java", "python", "go", "ruby", "node"]"#)
}

/// Feeds `lines` (offsets counted as in the file, `\n` included) and
/// flushes at the end, as `--once` does.
struct Feed {
    parser: FileParser,
    offset: u64,
    out: Vec<Out>,
}

impl Feed {
    fn new(format: Format, rules: Arc<Rules>) -> Self {
        Self::sized(format, rules, 1 << 20)
    }

    fn sized(format: Format, rules: Arc<Rules>, max_bytes: usize) -> Self {
        Feed {
            parser: FileParser::new(
                format,
                Arc::new(crate::parse::rules::BodyRules::auto(Vec::new().into())),
                max_bytes,
            )
            .with_multiline(rules),
            offset: 0,
            out: Vec::new(),
        }
    }

    /// One line; returns its offset.
    fn line(&mut self, line: &str) -> u64 {
        let at = self.offset;
        let out = &mut self.out;
        self.parser
            .line(line.as_bytes(), at, Flags::default(), &mut |r: &Record| {
                out.push(self::out(r))
            });
        self.offset += line.len() as u64 + 1;
        at
    }

    fn lines(&mut self, lines: &[&str]) -> u64 {
        let first = self.offset;
        for l in lines {
            self.line(l);
        }
        first
    }

    fn flush(mut self) -> Vec<Out> {
        let out = &mut self.out;
        self.parser.flush(&mut |r: &Record| out.push(self::out(r)));
        self.out
    }
}

fn cri(stream: &str, body: &str) -> String {
    format!("2026-11-22T03:00:00.000000001Z {stream} F {body}")
}

fn joined(lines: &[&str]) -> String {
    lines.join("\n")
}

const JAVA: &[&str] = &[
    "2026-11-22 03:00:01.000 ERROR [main] c.x.App - request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.x.App.handle(App.java:42)",
    "\tat com.x.App.main(App.java:10)",
    "Caused by: java.io.IOException: disk full",
    "  Detail: /data is at 100% (an indented detail line of the cause)",
    "\tat com.x.Disk.write(Disk.java:7)",
    "\tat com.x.App.handle(App.java:40)",
    "\t... 1 more",
];

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

/// CRI: blank lines are empty bodies.
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

fn record(offset: u64, message: &str, level: Option<&str>) -> Out {
    Out {
        offset,
        stream: None,
        message: message.to_string(),
        level: level.map(str::to_string),
        flags: vec![],
    }
}

#[test]
fn each_language_joins_its_trace_between_normal_lines() {
    for trace in [
        JAVA,
        JAVA_UNCAUGHT,
        PYTHON,
        GO,
        RUBY,
        RUBY_LOGGER,
        NODE_CRASH,
        NODE_LOGGED,
    ] {
        let mut f = Feed::new(Format::Text, all_languages());
        let a = f.line("2026-11-22T03:00:00Z INFO starting");
        let t = f.lines(trace);
        let b = f.line("2026-11-22T03:00:02Z INFO next request");
        let c = f.line("plain line");
        let expected = vec![
            record(a, "2026-11-22T03:00:00Z INFO starting", Some("info")),
            record(t, &joined(trace), Some("error")),
            record(b, "2026-11-22T03:00:02Z INFO next request", Some("info")),
            record(c, "plain line", None),
        ];
        assert_eq!(f.flush(), expected, "{}", trace[0]);
    }
}

#[test]
fn a_language_not_named_joins_nothing() {
    let mut f = Feed::new(Format::Text, rules(r#"languages = ["python"]"#));
    f.lines(JAVA);
    let out = f.flush();
    assert_eq!(out.len(), JAVA.len());
    let mut f = Feed::new(Format::Text, rules(r#"languages = ["java"]"#));
    f.lines(&PYTHON[1..6]);
    assert_eq!(f.flush().len(), 5);
}

#[test]
fn traces_interleaved_on_stdout_and_stderr_are_joined_per_stream() {
    let mut f = Feed::new(Format::Cri, all_languages());
    let mut offsets = ([None, None], Vec::new());
    let (java, python) = (JAVA, PYTHON);
    for i in 0..java.len().max(python.len()) {
        if let Some(l) = java.get(i) {
            let at = f.line(&cri("stdout", l));
            offsets.0[0].get_or_insert(at);
        }
        if let Some(l) = python.get(i) {
            let at = f.line(&cri("stderr", l));
            offsets.0[1].get_or_insert(at);
        }
    }
    let next = f.line(&cri(
        "stdout",
        "{\"msg\":\"json is never joined\",\"level\":\"info\"}",
    ));
    offsets.1.push(next);
    let out = f.flush();
    let expect = |stream, offset: Option<u64>, lines: &[&str]| Out {
        offset: offset.expect("an offset"),
        stream: Some(stream),
        message: joined(lines),
        level: Some("error".into()),
        flags: vec![],
    };
    assert_eq!(out.len(), 3, "{out:#?}");
    assert!(
        out.contains(&expect("stdout", offsets.0[0], java)),
        "{out:#?}"
    );
    assert!(
        out.contains(&expect("stderr", offsets.0[1], python)),
        "{out:#?}"
    );
    assert_eq!(out[1].offset, next, "the JSON line closes the Java trace");
    assert_eq!(out[1].message, "json is never joined");
}

#[test]
fn go_dumps_node_crashes_end_at_their_last_line() {
    let mut f = Feed::new(Format::Cri, all_languages());
    let go_at = f.lines(
        &GO.iter()
            .map(|l| cri("stderr", l))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    f.line(&cri("stderr", "exit status 2"));
    assert_eq!(f.out.len(), 1, "exit status ends the dump");
    assert_eq!(f.out[0].offset, go_at);
    assert!(f.out[0]
        .message
        .ends_with("/app/main.go:17 +0x65\nexit status 2"));
    let node: Vec<String> = NODE_CRASH.iter().map(|l| cri("stdout", l)).collect();
    for l in &node {
        f.line(l);
    }
    assert_eq!(f.out.len(), 2, "the version line ends the crash report");
    assert_eq!(f.out[1].message, joined(NODE_CRASH));
    assert_eq!(f.parser.pending_offset(), None);
}

#[test]
fn python_without_blank_lines_as_text_files_give_them() {
    let lines: Vec<&str> = PYTHON.iter().copied().filter(|l| !l.is_empty()).collect();
    let mut f = Feed::new(Format::Text, all_languages());
    f.lines(&lines);
    f.line("INFO:root:next");
    let out = f.flush();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].message, joined(&lines));
}

#[test]
fn blank_lines_after_a_trace_are_left_out_and_stand_alone_otherwise() {
    let mut f = Feed::new(Format::Cri, all_languages());
    f.lines(&[&cri("stdout", "")]);
    let trace = [&GO[..6], &[""][..]].concat();
    for l in &trace {
        f.line(&cri("stdout", l));
    }
    f.line(&cri("stdout", "after"));
    let out = f.flush();
    let messages: Vec<&str> = out.iter().map(|o| o.message.as_str()).collect();
    assert_eq!(messages, ["", &joined(&GO[..6]), "after"]);
}

#[test]
fn a_logged_level_is_kept() {
    let mut f = Feed::new(Format::Text, all_languages());
    f.lines(&[
        "2026-11-22T03:00:00Z WARN retrying",
        "\tat com.x.App.retry(App.java:3)",
    ]);
    let out = f.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].level.as_deref(), Some("warn"));
}

#[test]
fn start_pattern_starts_records_and_joins_every_other_line() {
    let mut f = Feed::new(
        Format::Text,
        rules(r"start_pattern = '^\d{4}-\d{2}-\d{2}[ T]'"),
    );
    let orphan = f.line("  orphan continuation");
    f.line("  and its follower");
    let a = f.lines(&["2026-11-22 03:00:00 first", "  detail 1", "detail 2"]);
    let b = f.line("2026-11-22 03:00:01 second");
    let out = f.flush();
    assert_eq!(
        out,
        vec![
            record(orphan, "  orphan continuation\n  and its follower", None),
            record(a, "2026-11-22 03:00:00 first\n  detail 1\ndetail 2", None),
            record(b, "2026-11-22 03:00:01 second", None),
        ],
        "no level is made up for a start_pattern record"
    );
}

#[test]
fn max_lines_cuts_flagged_truncated_and_the_rest_is_the_next_record() {
    let mut f = Feed::new(Format::Text, rules("languages = [\"java\"]\nmax_lines = 3"));
    let at = f.lines(&JAVA[1..]);
    let out = f.flush();
    let messages: Vec<&str> = out.iter().map(|o| o.message.as_str()).collect();
    assert_eq!(
        messages,
        [joined(&JAVA[1..4]), joined(&JAVA[4..7]), joined(&JAVA[7..])]
    );
    assert_eq!(out[0].offset, at);
    assert_eq!(out[0].flags, ["truncated"]);
    assert_eq!(out[1].flags, ["truncated"]);
    assert!(out[2].flags.is_empty(), "{:?}", out[2]);
}

#[test]
fn max_record_bytes_bounds_the_joined_text() {
    let mut f = Feed::sized(Format::Text, rules("languages = [\"java\"]"), 80);
    f.lines(&JAVA[1..5]);
    let out = f.flush();
    assert!(out.iter().all(|o| o.message.len() <= 80), "{out:#?}");
    let text: Vec<&str> = out.iter().map(|o| o.message.as_str()).collect();
    assert_eq!(text.join("\n"), joined(&JAVA[1..5]), "nothing dropped");
    assert_eq!(out[0].flags, ["truncated"]);
}

#[test]
fn the_checkpoint_waits_for_an_open_record_and_timeouts_release_it() {
    let mut f = Feed::new(Format::Cri, all_languages());
    let first = f.line(&cri("stdout", "normal"));
    assert_eq!(
        f.parser.pending_offset(),
        Some(first),
        "held: a trace may follow"
    );
    let trace = f.line(&cri("stdout", JAVA[0]));
    f.line(&cri("stdout", JAVA[1]));
    let error = f.line(&cri("stderr", "an error line"));
    assert_eq!(f.parser.pending_offset(), Some(trace));
    let due = f.parser.next_deadline().expect("a deadline");
    assert!(
        due > Instant::now() + Duration::from_millis(500),
        "1s default"
    );
    let out = &mut f.out;
    let early = due - Duration::from_millis(1);
    assert!(!f
        .parser
        .expire(early, &mut |r: &Record| out.push(self::out(r))));
    // The stdout trace is due first (the stderr line came after it).
    assert!(f
        .parser
        .expire(due, &mut |r: &Record| out.push(self::out(r))));
    assert_eq!(f.parser.pending_offset(), Some(error));
    let later = due + Duration::from_secs(1);
    assert!(f
        .parser
        .expire(later, &mut |r: &Record| out.push(self::out(r))));
    assert_eq!(f.parser.pending_offset(), None);
    assert_eq!(f.parser.next_deadline(), None);
    let messages: Vec<&str> = f.out.iter().map(|o| o.message.as_str()).collect();
    assert_eq!(messages, ["normal", &joined(&JAVA[..2]), "an error line"]);
}

#[test]
fn split_lines_hold_their_streams_record_at_shutdown_and_join_it() {
    let mut f = Feed::new(Format::Cri, all_languages());
    let trace = f.lines(&[&cri("stdout", JAVA[1]), &cri("stdout", JAVA[2])]);
    let other = f.line(&cri("stderr", "other stream"));
    f.line(&format!("2026-11-22T03:00:00Z stdout P {}", &JAVA[3][..10]));
    // Shutdown: the stderr record is emitted; the stdout trace stays open
    // (its next line is half read), and so the checkpoint stays at it.
    let out = &mut f.out;
    f.parser
        .flush_multiline(&mut |r: &Record| out.push(self::out(r)));
    assert_eq!(f.out.len(), 1);
    assert_eq!(
        (f.out[0].offset, f.out[0].message.as_str()),
        (other, "other stream")
    );
    assert_eq!(f.parser.pending_offset(), Some(trace));
    let far = Instant::now() + Duration::from_secs(3600);
    let out = &mut f.out;
    assert!(!f
        .parser
        .expire(far, &mut |r: &Record| out.push(self::out(r))));
    f.line(&format!("2026-11-22T03:00:00Z stdout F {}", &JAVA[3][10..]));
    let out = f.flush();
    assert_eq!(out[1].offset, trace);
    assert_eq!(out[1].message, joined(&JAVA[1..4]));
    assert!(out[1].flags.is_empty(), "complete at the end: not partial");
}

#[test]
fn a_cut_split_line_at_the_end_makes_the_record_partial() {
    let mut f = Feed::new(Format::Cri, all_languages());
    f.lines(&[&cri("stdout", JAVA[1]), &cri("stdout", JAVA[2])]);
    f.line(&format!("2026-11-22T03:00:00Z stdout P {}", &JAVA[3][..10]));
    let out = f.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].message,
        format!("{}\n{}\n{}", JAVA[1], JAVA[2], &JAVA[3][..10])
    );
    assert_eq!(out[0].flags, ["partial"]);
}

#[test]
fn docker_bodies_are_joined_like_cri_ones() {
    let mut f = Feed::new(Format::Docker, all_languages());
    for l in RUBY {
        let line = serde_json::json!({"log": format!("{l}\n"), "stream": "stderr", "time": "2026-11-22T03:00:00Z"});
        f.line(&line.to_string());
    }
    let out = f.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].stream, out[0].message.as_str()),
        (Some("stderr"), joined(RUBY).as_str())
    );
}

#[test]
fn a_json_object_is_never_joined_by_the_builtin_rules() {
    let mut f = Feed::new(Format::Cri, all_languages());
    let json = r#"{"level":"warn","msg":"structured"}"#;
    f.lines(&[&cri("stdout", PYTHON[1]), &cri("stdout", PYTHON[2])]);
    let at = f.line(&cri("stdout", json));
    let out = f.flush();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].message, joined(&PYTHON[1..3]));
    assert_eq!(
        (
            out[1].offset,
            out[1].message.as_str(),
            out[1].level.as_deref()
        ),
        (at, "structured", Some("warn"))
    );
}
