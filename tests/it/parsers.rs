//! Body parsers on files written the way the programs write them: an nginx
//! access log (combined and `main` with times, `-` fields, user agents with
//! spaces and `\x22`-escaped quotes), Apache common and combined, LTSV with
//! bracketed `+0900` times, logfmt with quoted values, and a regex whose
//! captures fill typed `[[columns]]`. The lake is read back with DuckDB.

use serde_json::{json, Value};

use crate::util::*;

const NGINX: &str = r#"203.0.113.7 - - [02/Dec/2026:13:55:36 +0000] "GET /api/items?id=3 HTTP/1.1" 200 612 "-" "Mozilla/5.0 (X11; Linux x86_64) \x22quoted\x22 AppleWebKit/537.36"
198.51.100.2 - alice [02/Dec/2026:13:55:37 +0000] "POST /api/orders HTTP/2.0" 502 157 "https://shop.example.com/cart" "curl/8.5.0" "10.0.0.9, 10.0.0.10" 0.105 0.104
203.0.113.9 - - [02/Dec/2026:13:56:01 +0000] "\x16\x03\x01\x02\x00\x01\x00" 400 157 "-" "-"
2026/12/02 13:56:02 [error] 7#7: *1 connect() failed (111: Connection refused)
"#;

const APACHE: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326
127.0.0.1 - - [10/Oct/2000:13:55:37 -0700] "GET /search?q=\"x\" HTTP/1.1" 304 - "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
"#;

const LTSV: &str = "time:[02/Dec/2026:22:55:36 +0900]\thost:192.0.2.1\tmethod:GET\tpath:/ltsv\tstatus:200\tsize:-\tua:Mozilla/5.0 (compatible; bot:1.0)\n";

const LOGFMT: &str = r#"time=2026-12-02T13:55:38Z level=warn msg="payment \"declined\" by bank" status=402 user_id=17 retry
time=2026-12-02T13:55:39Z level=info msg=ok status=200 path="/a b"
"#;

const REGEX_LOG: &str = "2026-12-02T13:55:40.250Z ERROR worker=7 job=invoice status=500 took=12.5ms at=2026-12-02T13:55:39Z failed to render\n";
const PATTERN: &str = r"^(?P<time>\S+) (?P<level>[A-Z]+) worker=(?P<worker>\d+) job=(?P<job>\S+) status=(?P<status>\d+) took=(?P<took_ms>[\d.]+)ms at=(?P<started_at>\S+) (?P<message>.*)$";

fn config() -> String {
    let source = |name: &str, file: &str, extra: &str| {
        format!(
            "[sources.{name}]\ntype = \"tail\"\ninclude = [\"logs/{file}\"]\nformat = \"text\"\n{extra}\n"
        )
    };
    [
        "data_dir = \"state\"\n".to_string(),
        "[[columns]]\nname = \"status\"\ntype = \"INTEGER\"\n".into(),
        "[[columns]]\nname = \"took_ms\"\ntype = \"FLOAT\"\n".into(),
        "[[columns]]\nname = \"started_at\"\ntype = \"TIMESTAMP\"\n".into(),
        source(
            "access",
            "access.log",
            "parser = \"nginx\"\ntime_key = \"time_local\"\ntime_format = \"%d/%b/%Y:%H:%M:%S %z\"",
        ),
        source("apache", "apache.log", "parser = \"apache\""),
        source("ltsv", "app.ltsv", "parser = \"ltsv\""),
        source("logfmt", "svc.logfmt", "parser = \"logfmt\""),
        source(
            "worker",
            "worker.log",
            &format!("parser = \"regex\"\npattern = {}", toml_str(PATTERN)),
        ),
        "[sinks.lake]\ntype = \"parquet\"\nurl = \"file://lake\"\n".into(),
    ]
    .concat()
}

#[test]
fn access_logs_ltsv_logfmt_and_regex_become_fields() {
    let sandbox = Sandbox::new();
    for (name, text) in [
        ("access.log", NGINX),
        ("apache.log", APACHE),
        ("app.ltsv", LTSV),
        ("svc.logfmt", LOGFMT),
        ("worker.log", REGEX_LOG),
    ] {
        sandbox.write_file(&format!("logs/{name}"), text);
    }
    let config = sandbox.write_file("tidewater.toml", config());
    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("records"), 10, "one record per line");
    assert_eq!(
        summary.get("parse_errors"),
        1,
        "only the nginx error-log line"
    );

    let rows = |sql: &str| duckdb(&sandbox, &sandbox.lake(), &[sql]).remove(0);
    let one = |source: &str, path: &str, columns: &str| -> Vec<Value> {
        let mut r = rows(&format!(
            "SELECT {columns} FROM logs WHERE source = '{source}' AND (fields->>'$.path') = '{path}'"
        ));
        assert_eq!(r.len(), 1, "{source} {path}: {r:?}");
        r.remove(0)
    };

    // nginx combined: names, numbers, absent `-`, unescaped user agent, time_local as the time.
    let r = one(
        "access",
        "/api/items?id=3",
        "fields->>'$.remote_addr', fields->>'$.method', fields->>'$.protocol', status, \
         fields->'$.body_bytes_sent', fields->>'$.remote_user', fields->>'$.http_referer', \
         fields->>'$.http_user_agent', epoch(timestamp), message, flags",
    );
    assert_eq!(
        r[..5],
        [
            json!("203.0.113.7"),
            json!("GET"),
            json!("HTTP/1.1"),
            json!(200),
            json!("612")
        ]
    );
    assert_eq!(
        (&r[5], &r[6]),
        (&Value::Null, &Value::Null),
        "`-` is absent: {r:?}"
    );
    assert_eq!(
        r[7],
        "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" AppleWebKit/537.36"
    );
    assert_eq!(
        r[8],
        json!(1_796_219_736.0),
        "time_local 02/Dec/2026:13:55:36 +0000"
    );
    assert!(
        r[9].as_str()
            .is_some_and(|m| m.starts_with("203.0.113.7 - - [")),
        "message is the line"
    );
    assert_eq!(r[10], json!([]));
    // nginx main: forwarded-for and the times.
    let r = one(
        "access",
        "/api/orders",
        "fields->>'$.remote_user', status, fields->>'$.http_x_forwarded_for', \
         fields->'$.request_time', fields->'$.upstream_response_time'",
    );
    assert_eq!(
        r,
        [
            json!("alice"),
            json!(502),
            json!("10.0.0.9, 10.0.0.10"),
            json!("0.105"),
            json!("0.104")
        ]
    );
    // A TLS handshake on the plain port: the request stays whole.
    let r = rows(
        "SELECT fields->>'$.request', status FROM logs WHERE source = 'access' AND status = 400",
    );
    assert_eq!(
        r,
        [[json!("\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}"), json!(400)]]
    );
    // A line of another format: kept whole, flagged, with the reason.
    let r = rows(
        "SELECT message, parse_error, fields FROM logs WHERE list_contains(flags, 'parse_error')",
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0][0]
        .as_str()
        .is_some_and(|m| m.starts_with("2026/12/02 13:56:02 [error]")));
    assert!(
        r[0][1]
            .as_str()
            .is_some_and(|e| e.starts_with("not a nginx line: ")),
        "{r:?}"
    );
    assert_eq!(r[0][2], Value::Null);

    // Apache common (no referer, `-` bytes) and combined (escaped quotes).
    let r = one(
        "apache",
        "/apache_pb.gif",
        "fields->>'$.remote_user', status, fields->'$.body_bytes_sent', epoch(timestamp)",
    );
    assert_eq!(
        r,
        [
            json!("frank"),
            json!(200),
            json!("2326"),
            json!(971_211_336.0)
        ]
    );
    let r = one(
        "apache",
        "/search?q=\"x\"",
        "status, fields->'$.body_bytes_sent', fields->>'$.http_user_agent'",
    );
    assert_eq!(
        r,
        [
            json!(304),
            Value::Null,
            json!("Mozilla/4.08 [en] (Win98; I ;Nav)")
        ]
    );

    // LTSV: keys as written, a bracketed +0900 time, a typed column from a string.
    let r = one("ltsv", "/ltsv", "fields->>'$.host', fields->>'$.status', status, fields->>'$.size', fields->>'$.ua', epoch(timestamp)");
    assert_eq!(
        r,
        [
            json!("192.0.2.1"),
            json!("200"),
            json!(200),
            Value::Null,
            json!("Mozilla/5.0 (compatible; bot:1.0)"),
            json!(1_796_219_736.0)
        ]
    );

    // logfmt: quoted values with escapes become the message; level and time from their keys.
    let r = rows("SELECT message, level, status, fields->'$.retry', epoch(timestamp) FROM logs WHERE source = 'logfmt' ORDER BY \"offset\"");
    assert_eq!(
        r[0],
        [
            json!("payment \"declined\" by bank"),
            json!("warn"),
            json!(402),
            json!("true"),
            json!(1_796_219_738.0)
        ]
    );
    assert_eq!(r[1][..3], [json!("ok"), json!("info"), json!(200)]);

    // regex: named captures, typed by [[columns]].
    let r = rows("SELECT message, level, status, took_ms, epoch(started_at), fields->>'$.worker', epoch_ms(timestamp) FROM logs WHERE source = 'worker'");
    assert_eq!(
        r,
        [[
            json!("failed to render"),
            json!("error"),
            json!(500),
            json!(12.5),
            json!(1_796_219_739.0),
            json!("7"),
            json!(1_796_219_740_250i64)
        ]]
    );
}

#[test]
fn bad_parser_keys_are_refused_by_name() {
    let sandbox = Sandbox::new();
    for (extra, expected) in [
        (
            "parser = \"regex\"",
            "sources.app.pattern: parser = \"regex\" needs a pattern",
        ),
        (
            "parser = \"regex\"\npattern = \"(?P<a>\"",
            "sources.app.pattern: is not a valid Rust regex",
        ),
        (
            "parser = \"nginx\"\ntime_format = \"%Q\"",
            "sources.app.time_format: \"%Q\" is not a chrono strftime format",
        ),
        ("parser = \"xml\"", "unknown variant `xml`"),
    ] {
        let config = sandbox.write_file(
            "bad.toml",
            format!("data_dir = \"state\"\n[sources.app]\ntype = \"tail\"\ninclude = [\"logs/*.log\"]\n{extra}\n[sinks.lake]\ntype = \"parquet\"\nurl = \"file://lake\"\n"),
        );
        let out = sandbox
            .spawn(&["validate", "--config", path_str(&config)])
            .finish(std::time::Duration::from_secs(30));
        assert_ne!(out.status.code(), Some(0), "{extra} was accepted");
        assert!(
            out.stderr.contains(expected),
            "{extra}: expected {expected:?} in\n{}",
            out.stderr
        );
    }
}
