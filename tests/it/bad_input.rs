//! Bad input is kept and counted, never dropped: invalid UTF-8, NUL bytes,
//! over-long lines, CRLF endings, broken bodies and envelopes, empty lines, a
//! final line without newline, and glob matches that cannot be read.

use std::fs;
use std::time::Duration;

use crate::util::*;

/// A CRI line `<time> <stream> F <body>` (without line ending).
fn cri(second: u32, stream: &str, body: &[u8]) -> Vec<u8> {
    let mut line = format!("2026-11-22T03:00:{second:02}.000000000Z {stream} F ").into_bytes();
    line.extend_from_slice(body);
    line
}

/// How many entries [`add_unreadable_entries`] makes.
const UNREADABLE_ENTRIES: u64 = 2;

/// A glob-matched entry that is a directory and one that is a dangling
/// symlink; neither can be read as a log file. Each is counted once in
/// `unreadable_files`, however often the glob is scanned again.
fn add_unreadable_entries(sandbox: &Sandbox) {
    fs::create_dir_all(sandbox.logs().join("bad.log"))
        .expect("cannot create the bad.log directory");
    std::os::unix::fs::symlink(
        sandbox.path("nowhere/gone"),
        sandbox.logs().join("gone.log"),
    )
    .expect("cannot create the dangling gone.log symlink");
}

#[test]
fn every_bad_line_is_accounted_for() {
    let sandbox = Sandbox::new();
    const FIVE_MIB: usize = 5 * 1024 * 1024;
    const ONE_MIB: usize = 1024 * 1024;
    // (line, its line ending)
    let lines: Vec<(Vec<u8>, &[u8])> = vec![
        (
            cri(0, "stdout", br#"{"level":"info","msg":"first ok"}"#),
            b"\n",
        ),
        (
            cri(
                1,
                "stdout",
                b"{\"level\":\"info\",\"msg\":\"bad utf8 \xff\xfe here\"}",
            ),
            b"\n",
        ),
        (Vec::new(), b"\n"),
        (cri(2, "stdout", b"nul\0byte\0here"), b"\n"),
        (cri(3, "stdout", &vec![b'a'; FIVE_MIB]), b"\n"),
        (cri(4, "stdout", b"plain crlf line"), b"\r\n"),
        (
            cri(5, "stdout", br#"{"level":"warn","msg":"json crlf"}"#),
            b"\r\n",
        ),
        (Vec::new(), b"\n"),
        (cri(6, "stdout", br#"{"level":"info","msg":"#), b"\n"),
        (b"2026-11-22T03:00:00Z stdout".to_vec(), b"\n"),
        (Vec::new(), b"\n"),
        (b"not a cri line at all".to_vec(), b"\n"),
        (cri(7, "stderr", b"last line without newline"), b""),
    ];
    let empty = lines.iter().filter(|(l, _)| l.is_empty()).count() as u64;
    let non_empty = lines.len() as u64 - empty;
    let text: Vec<u8> = lines
        .iter()
        .flat_map(|(l, end)| l.iter().chain(end.iter()).copied())
        .collect();
    sandbox.write_file("logs/app.log", &text);
    add_unreadable_entries(&sandbox);

    let config = sandbox.write_config(&Config::relative("cri"));
    let (finished, summary) = sandbox.run_once_ok(&config);

    // The summary accounts for every physical line.
    assert_eq!(
        summary.get("lines"),
        lines.len() as u64,
        "physical lines in {summary:?}"
    );
    assert_eq!(
        summary.get("empty_lines"),
        empty,
        "empty lines in {summary:?}"
    );
    assert_eq!(
        summary.get("records"),
        non_empty,
        "one record per non-empty line in {summary:?}"
    );
    assert_eq!(
        summary.get("rows_delivered"),
        non_empty,
        "rows delivered in {summary:?}"
    );
    assert_eq!(
        summary.get("truncated"),
        1,
        "truncated lines in {summary:?}"
    );
    assert_eq!(
        summary.get("invalid_utf8"),
        1,
        "invalid UTF-8 lines in {summary:?}"
    );
    assert_eq!(
        summary.get("parse_errors"),
        3,
        "lines that are not CRI in {summary:?}"
    );
    assert_eq!(
        summary.get("unreadable_files"),
        UNREADABLE_ENTRIES,
        "unreadable entries (bad.log, a directory, and gone.log, a dangling symlink) in {summary:?}"
    );
    assert!(
        finished.stderr.contains("gone.log"),
        "stderr should name the unreadable gone.log:\n{}",
        tail(&finished.stderr, 4000)
    );

    // The lake has one row per non-empty line, with the flags counted above.
    let lake = read_lake(&sandbox.lake());
    let rows: Vec<&Row> = lake.rows().collect();
    assert_eq!(rows.len() as u64, non_empty, "rows in the lake");
    let flags = lake.flag_counts();
    let flag = |name: &str| flags.get(name).copied().unwrap_or(0);
    assert_eq!(flag("truncated"), 1, "rows flagged truncated: {flags:?}");
    assert_eq!(
        flag("invalid_utf8"),
        1,
        "rows flagged invalid_utf8: {flags:?}"
    );
    assert_eq!(
        flag("parse_error"),
        summary.get("parse_errors"),
        "rows flagged parse_error: {flags:?}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.parse_error.is_some()).count() as u64,
        flag("parse_error"),
        "rows with a parse_error text should be the rows flagged parse_error"
    );

    let find = |what: &str, pred: &dyn Fn(&str) -> bool| -> &Row {
        rows.iter()
            .copied()
            .find(|r| r.message.as_deref().is_some_and(pred))
            .unwrap_or_else(|| {
                let messages: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        r.message
                            .as_deref()
                            .unwrap_or("<null>")
                            .chars()
                            .take(60)
                            .collect()
                    })
                    .collect();
                panic!("no row for the {what} line; messages: {messages:?}")
            })
    };

    let ok = find("valid", &|m| m == "first ok");
    assert!(ok.flags.is_empty(), "a valid line has flags {:?}", ok.flags);
    assert_eq!(ok.level.as_deref(), Some("info"));

    let bad_utf8 = find("invalid UTF-8", &|m| m.contains("bad utf8"));
    assert!(
        bad_utf8.flags.iter().any(|f| f == "invalid_utf8"),
        "flags {:?}",
        bad_utf8.flags
    );
    assert!(
        bad_utf8
            .message
            .as_deref()
            .is_some_and(|m| m.contains('\u{FFFD}')),
        "invalid bytes should be replaced by U+FFFD: {:?}",
        bad_utf8.message
    );

    find("NUL bytes", &|m| m.contains("nul") && m.contains("here"));

    let long = find("5 MiB", &|m| m.starts_with("aaaa"));
    assert!(
        long.flags.iter().any(|f| f == "truncated"),
        "flags {:?}",
        long.flags
    );
    let kept = long.message.as_deref().map_or(0, str::len);
    assert!(
        (ONE_MIB / 2..=ONE_MIB).contains(&kept),
        "a 5 MiB line should be kept truncated to max_line_bytes (1 MiB), kept {kept} bytes"
    );

    let crlf = find("CRLF text", &|m| m.starts_with("plain crlf line"));
    assert_eq!(
        crlf.message.as_deref(),
        Some("plain crlf line"),
        "CRLF: the message must not keep the \\r"
    );
    let crlf_json = find("CRLF JSON", &|m| m.starts_with("json crlf"));
    assert_eq!(crlf_json.message.as_deref(), Some("json crlf"));
    assert_eq!(crlf_json.level.as_deref(), Some("warn"));
    assert!(
        crlf_json.fields.is_some(),
        "a JSON body with CRLF is still JSON"
    );
    for row in &rows {
        let message = row.message.as_deref().unwrap_or("");
        assert!(
            !message.ends_with('\r'),
            "a message ends with \\r: {:?}",
            message
        );
    }

    let broken = find("broken JSON", &|m| m.contains(r#"{"level":"info","msg":"#));
    assert_eq!(
        broken.fields, None,
        "a body that is not a JSON object has no fields"
    );

    for (what, raw) in [
        ("missing CRI fields", "2026-11-22T03:00:00Z stdout"),
        ("not CRI", "not a cri line at all"),
    ] {
        let row = find(what, &|m| m.contains(raw));
        assert!(
            row.flags.iter().any(|f| f == "parse_error"),
            "{what}: flags {:?}",
            row.flags
        );
        assert!(
            row.parse_error.as_deref().is_some_and(|e| !e.is_empty()),
            "{what}: parse_error should say why"
        );
    }

    let last = find("final line without newline", &|m| {
        m == "last line without newline"
    });
    assert_eq!(last.stream.as_deref(), Some("stderr"));
}

#[test]
fn max_line_bytes_is_configurable() {
    let sandbox = Sandbox::new();
    let mut text = cri(0, "stdout", &[b'b'; 4_000]);
    text.push(b'\n');
    text.extend(cri(1, "stdout", b"short line"));
    text.push(b'\n');
    sandbox.write_file("logs/app.log", &text);
    let mut config = Config::relative("cri");
    config.max_line_bytes = Some("1KiB".into());
    let config = sandbox.write_config(&config);

    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("records"), 2, "{summary:?}");
    assert_eq!(summary.get("truncated"), 1, "{summary:?}");

    let lake = read_lake(&sandbox.lake());
    let long = lake
        .rows()
        .find(|r| r.message.as_deref().is_some_and(|m| m.starts_with("bbb")))
        .expect("the long line is kept");
    assert!(
        long.flags.iter().any(|f| f == "truncated"),
        "flags {:?}",
        long.flags
    );
    let kept = long.message.as_deref().map_or(0, str::len);
    assert!(
        (1..=1024).contains(&kept),
        "kept {kept} bytes of a line over max_line_bytes = 1KiB"
    );
    let short = lake
        .rows()
        .find(|r| r.message.as_deref() == Some("short line"))
        .expect("the short line is kept");
    assert!(short.flags.is_empty(), "flags {:?}", short.flags);
}

#[test]
fn long_first_line_is_truncated_and_flagged() {
    let sandbox = Sandbox::new();
    let mut text = cri(0, "stdout", &vec![b'c'; 3 * 1024 * 1024]);
    text.push(b'\n');
    let second_offset = text.len() as i64;
    text.extend(cri(1, "stdout", b"after the long line"));
    text.push(b'\n');
    sandbox.write_file("logs/app.log", &text);
    let config = sandbox.write_config(&Config::relative("cri"));

    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("lines"), 2, "physical lines in {summary:?}");
    assert_eq!(summary.get("records"), 2, "{summary:?}");
    assert_eq!(summary.get("truncated"), 1, "{summary:?}");

    let lake = read_lake(&sandbox.lake());
    let long = lake
        .rows()
        .find(|r| r.message.as_deref().is_some_and(|m| m.starts_with("ccc")))
        .expect("the long line is kept");
    assert_eq!(long.offset, Some(0));
    assert!(
        long.flags.iter().any(|f| f == "truncated"),
        "a line over max_line_bytes (1 MiB by default) must be flagged truncated: flags {:?}",
        long.flags
    );
    let next = lake
        .rows()
        .find(|r| r.message.as_deref() == Some("after the long line"))
        .expect("the line after the long one is kept");
    assert_eq!(
        next.offset,
        Some(second_offset),
        "offset of the second line"
    );
}

#[test]
fn unreadable_entries_do_not_stop_run() {
    let sandbox = Sandbox::new();
    add_unreadable_entries(&sandbox);
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let mut tidewater = sandbox.start_run(&config);

    // A log file that appears after start-up is picked up.
    let corpus = generate(&sandbox.path("corpus/late.cri"), "cri", 500, &[]);
    fs::copy(&corpus.path, sandbox.logs().join("late.log")).expect("cannot create late.log");
    let mut lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_seqs(corpus.seqs(), &mut tidewater, LAKE_TIMEOUT);

    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(20));
    finished.assert_success();
    let summary = finished.summary();
    assert_eq!(
        summary.get("unreadable_files"),
        UNREADABLE_ENTRIES,
        "unreadable entries (bad.log, a directory, and gone.log, a dangling symlink), each counted once however often the glob is scanned: {summary:?}"
    );
    assert!(
        finished.stderr.contains("gone.log"),
        "stderr should name the unreadable gone.log:\n{}",
        tail(&finished.stderr, 4000)
    );
    lake.scan().assert_exactly_once(corpus.seqs());
}
