//! FileParser: framing, split records, bad lines, text bodies.

use super::*;

fn parse_all(format: Format, lines: &[&[u8]]) -> Vec<(u64, String, Option<String>, Flags)> {
    let mut p = FileParser::new(
        format,
        Arc::new(BodyRules::auto(Vec::new().into())),
        1 << 20,
    );
    let mut out = Vec::new();
    let mut offset = 0;
    for l in lines {
        p.line(l, offset, Flags::default(), &mut |r: &Record| {
            out.push((
                r.offset,
                r.message.as_deref().unwrap_or_default().to_string(),
                r.level.as_deref().map(str::to_string),
                r.flags,
            ))
        });
        offset += l.len() as u64 + 1;
    }
    p.flush(&mut |r: &Record| {
        out.push((
            r.offset,
            r.message.as_deref().unwrap_or_default().to_string(),
            None,
            r.flags,
        ))
    });
    out
}

#[test]
fn cri_partial_lines_are_joined_per_stream() {
    let lines: [&[u8]; 4] = [
        b"2026-11-22T03:00:00.1Z stdout P {\"level\":\"info\",",
        b"2026-11-22T03:00:00.2Z stderr F plain error",
        b"2026-11-22T03:00:00.3Z stdout P \"msg\":\"hel",
        b"2026-11-22T03:00:00.4Z stdout F lo\"}",
    ];
    let out = parse_all(Format::Cri, &lines);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].1, "plain error");
    assert_eq!(
        (out[1].0, out[1].1.as_str(), out[1].2.as_deref()),
        (0, "hello", Some("info"))
    );
}

#[test]
fn runaway_split_records_are_cut_and_release_the_checkpoint() {
    let mut p = FileParser::new(
        Format::Cri,
        Arc::new(BodyRules::auto(Vec::new().into())),
        10,
    );
    let mut out = Vec::new();
    let lines: [&[u8]; 4] = [
        b"2026-11-22T03:00:00Z stdout P 123456",
        b"2026-11-22T03:00:00Z stdout P 789abc",
        b"2026-11-22T03:00:00Z stdout P def",
        b"2026-11-22T03:00:00Z stdout F end",
    ];
    for (i, l) in lines.iter().enumerate() {
        p.line(l, i as u64 * 100, Flags::default(), &mut |r: &Record| {
            out.push((
                r.offset,
                r.message.as_deref().unwrap_or_default().to_string(),
                r.flags,
            ))
        });
        if i >= 1 {
            assert_eq!(p.pending_offset(), None, "after line {i}");
        }
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, "123456789a");
    assert!(out[0].2.contains(Flags::TRUNCATED));
    p.line(
        b"2026-11-22T03:00:01Z stdout F next",
        400,
        Flags::default(),
        &mut |r: &Record| {
            out.push((
                r.offset,
                r.message.as_deref().unwrap_or_default().to_string(),
                r.flags,
            ))
        },
    );
    assert_eq!(out[1].1, "next");
}

#[test]
fn unfinished_split_records_are_flushed_as_partial() {
    let out = parse_all(Format::Cri, &[b"2026-11-22T03:00:00Z stdout P half"]);
    assert_eq!(out.len(), 1);
    assert!(out[0].3.contains(Flags::PARTIAL));
}

#[test]
fn bad_lines_are_kept_raw_and_flagged() {
    let out = parse_all(
        Format::Cri,
        &[
            b"2026-11-22T03:00:00Z stdout",
            b"\xff\xfe stdout F x",
            b"2026-11-22T03:00:00Z stdout F {\"msg\":",
        ],
    );
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].1, "2026-11-22T03:00:00Z stdout");
    assert!(out.iter().all(|r| r.3.contains(Flags::PARSE_ERROR)));
    assert!(out[1].3.contains(Flags::INVALID_UTF8));
}

#[test]
fn docker_chunks_are_joined() {
    let out = parse_all(
        Format::Docker,
        &[
            br#"{"log":"{\"msg\":\"a","stream":"stdout","time":"2026-11-22T03:00:00Z"}"#,
            br#"{"log":"b\"}\r\n","stream":"stdout","time":"2026-11-22T03:00:00Z"}"#,
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, "ab");
}

#[test]
fn text_lines_keep_the_line_and_find_the_level() {
    let out = parse_all(Format::Auto, &[b"2026-11-22T03:00:00.002Z WARN disk low\r"]);
    assert_eq!(out[0].1, "2026-11-22T03:00:00.002Z WARN disk low");
    assert_eq!(out[0].2.as_deref(), Some("warn"));
}

#[test]
fn text_bodies_find_the_level_words_loggers_write() {
    let cases: [(&[u8], Option<&str>); 7] = [
        (
            b"2026-12-02 13:55:36.123 ERROR [main] c.x.App - failed",
            Some("error"),
        ),
        (b"[WARN] disk almost full", Some("warn")),
        (b"ERROR:root:failed to load", Some("error")),
        (
            b"E, [2026-12-02T13:55:36.123456 #1] ERROR -- : boom",
            Some("error"),
        ),
        (b"2026-11-22T03:00:00Z info started", Some("info")),
        (b"an error happened in the Info panel", None),
        (b"GET /ERROR 200", None),
    ];
    for (line, level) in cases {
        let out = parse_all(Format::Text, &[line]);
        assert_eq!(
            out[0].2.as_deref(),
            level,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

/// (timestamp, flags) of one CRI line whose body an nginx parser reads.
fn nginx_time(time_key: Option<&str>, body: &str) -> (Option<i64>, Flags) {
    let keys = rules::BodyKeys {
        parser: ParserKind::Nginx,
        time_key,
        ..rules::BodyKeys::default()
    };
    let rules = Arc::new(BodyRules::new(&keys, Vec::new().into()).expect("valid"));
    let mut p = FileParser::new(Format::Cri, rules, 1 << 20);
    let line = format!("2026-12-02T14:00:00Z stdout F {body}");
    let mut out = None;
    p.line(line.as_bytes(), 0, Flags::default(), &mut |r: &Record| {
        out = Some((r.timestamp_us, r.flags))
    });
    out.expect("one record")
}

#[test]
fn a_configured_time_key_replaces_the_runtimes_time() {
    let body = r#"10.0.0.1 - - [02/Dec/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#;
    let runtime = rfc3339_micros("2026-12-02T14:00:00Z");
    let request = rfc3339_micros("2026-12-02T13:55:36Z");
    assert_eq!(
        nginx_time(None, body).0,
        runtime,
        "by default the runtime's time wins"
    );
    assert_eq!(nginx_time(Some("time_local"), body).0, request);
    assert_eq!(nginx_time(Some("none"), body).0, runtime);
    let bad = body.replace("02/Dec/2026:13:55:36 +0000", "yesterday");
    let (time, flags) = nginx_time(Some("time_local"), &bad);
    assert_eq!(
        time, runtime,
        "a time that does not parse leaves the runtime's"
    );
    assert!(flags.contains(Flags::CONVERSION_ERROR));
}
