//! Shared helpers for the integration tests: a scratch directory per test,
//! config files, running the real `tidewater` binary, generating log corpora
//! with `tests/gen-cri.py`, and reading the Parquet lake back with the
//! `parquet` crate (and, independently, with pyarrow via `tests/read_parquet.py`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// The binary under test, built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_tidewater");

/// Environment variables that feed Kubernetes metadata; removed from every
/// spawned process unless a test sets them, so the host cannot leak into rows.
const METADATA_ENV: [&str; 4] = ["POD_NAME", "POD_NAMESPACE", "NODE_NAME", "CONTAINER_NAME"];

/// How long a `run --once` may take before the test gives up.
pub const RUN_ONCE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to wait for rows to show up in the lake while `run` is running.
pub const LAKE_TIMEOUT: Duration = Duration::from_secs(120);

/// A file inside the project (e.g. `tests/gen-cri.py`).
pub fn project_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The Python interpreter for the test helpers: `$TIDEWATER_TEST_PYTHON`
/// (set by `scripts/test.sh`), else `python3` from `PATH`.
pub fn python() -> String {
    std::env::var("TIDEWATER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

// ---------------------------------------------------------------------------
// Sandbox: one scratch directory per test
// ---------------------------------------------------------------------------

/// A temporary directory holding everything one test touches: log files,
/// the config, the data dir (`state/`), the lake (`lake/`) and the captured
/// output of every tidewater process it started (`tidewater-N.stdout`/`.stderr`).
///
/// It is deleted when the test ends, unless `TIDEWATER_TEST_KEEP` is set
/// (then its path is printed, for a post-mortem).
pub struct Sandbox {
    dir: tempfile::TempDir,
    runs: std::cell::Cell<u32>,
}

impl Sandbox {
    pub fn new() -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("tidewater-it-")
            .tempdir()
            .expect("cannot create a temporary directory for the test");
        if std::env::var_os("TIDEWATER_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            println!("TIDEWATER_TEST_KEEP: keeping {}", dir.path().display());
        }
        let sandbox = Sandbox {
            dir,
            runs: std::cell::Cell::new(0),
        };
        fs::create_dir_all(sandbox.logs()).expect("cannot create the logs/ directory");
        sandbox
    }

    /// The sandbox root (used as the working directory of tidewater).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// `root/logs`, where most tests put the files tidewater tails.
    pub fn logs(&self) -> PathBuf {
        self.path("logs")
    }

    /// `root/lake`, the Parquet lake of the default configs.
    pub fn lake(&self) -> PathBuf {
        self.path("lake")
    }

    /// `root/state`, the data dir of the default configs.
    pub fn data_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `root/state/checkpoints.json`.
    pub fn checkpoint_file(&self) -> PathBuf {
        self.data_dir().join("checkpoints.json")
    }

    /// Writes `text` as `root/name` and returns its path.
    pub fn write_file(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("cannot create a directory in the sandbox");
        }
        fs::write(&path, text).expect("cannot write a file in the sandbox");
        path
    }

    /// Writes `config` as `root/tidewater.toml` and returns its path.
    pub fn write_config(&self, config: &Config) -> PathBuf {
        self.write_file("tidewater.toml", config.to_toml())
    }

    /// Starts `tidewater <args>` with the sandbox as working directory; its
    /// stdout and stderr go to files in the sandbox (read with [`Tidewater::finish`]).
    pub fn spawn(&self, args: &[&str]) -> Tidewater {
        self.spawn_with_env(args, &[])
    }

    /// Like [`Sandbox::spawn`], with extra environment variables.
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Tidewater {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let stdout_path = self.path(&format!("tidewater-{n}.stdout"));
        let stderr_path = self.path(&format!("tidewater-{n}.stderr"));
        let stdout = fs::File::create(&stdout_path).expect("cannot create the stdout capture file");
        let stderr = fs::File::create(&stderr_path).expect("cannot create the stderr capture file");
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.root())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for key in METADATA_ENV {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Tidewater {
            child,
            args: args.iter().map(|s| s.to_string()).collect(),
            stdout_path,
            stderr_path,
        }
    }

    /// `tidewater run --config <config>` (runs until signalled).
    pub fn start_run(&self, config: &Path) -> Tidewater {
        self.spawn(&["run", "--config", path_str(config)])
    }

    /// `tidewater run --config <config> --once`, waited for.
    pub fn run_once(&self, config: &Path) -> Finished {
        self.spawn(&["run", "--config", path_str(config), "--once"])
            .finish(RUN_ONCE_TIMEOUT)
    }

    /// `tidewater run --once` that must succeed; returns its summary.
    pub fn run_once_ok(&self, config: &Path) -> (Finished, Summary) {
        let finished = self.run_once(config);
        finished.assert_success();
        let summary = finished.summary();
        (finished, summary)
    }
}

/// A path as `&str` (test paths are always UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------------------
// Config files
// ---------------------------------------------------------------------------

/// The settings of a one-source, one-Parquet-sink config, rendered to TOML by
/// [`Config::to_toml`]. Paths are written as given: relative ones resolve
/// against the sandbox, which is tidewater's working directory.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: String,
    pub shutdown_timeout: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub format: String,
    pub read_from: String,
    pub max_line_bytes: Option<String>,
    pub max_rows: u64,
    pub max_bytes: String,
    pub max_age: String,
    pub lake_url: String,
    /// Extra `key = value` lines for the sink table (store settings).
    pub sink_extra: String,
    /// `[api] address`, when the test probes `/readyz`.
    pub api_address: Option<String>,
}

impl Config {
    /// The README's config: `data_dir = "state"`, `include = ["logs/*.log"]`,
    /// `url = "file://lake"`, all relative to the working directory.
    pub fn relative(format: &str) -> Self {
        Config {
            data_dir: "state".into(),
            shutdown_timeout: "10s".into(),
            include: vec!["logs/*.log".into()],
            exclude: vec![],
            format: format.into(),
            read_from: "beginning".into(),
            max_line_bytes: None,
            max_rows: 10_000,
            max_bytes: "8MiB".into(),
            max_age: "1s".into(),
            lake_url: "file://lake".into(),
            sink_extra: String::new(),
            api_address: None,
        }
    }

    /// The same config with absolute paths into `sandbox` (`file:///abs/lake`).
    pub fn absolute(sandbox: &Sandbox, format: &str) -> Self {
        Config {
            data_dir: path_str(&sandbox.data_dir()).into(),
            include: vec![format!("{}/*.log", path_str(&sandbox.logs()))],
            lake_url: format!("file://{}", path_str(&sandbox.lake())),
            ..Config::relative(format)
        }
    }

    pub fn to_toml(&self) -> String {
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut source = format!(
            "[sources.app]\ntype = \"tail\"\ninclude = {}\nexclude = {}\nformat = {}\nread_from = {}\n",
            list(&self.include),
            list(&self.exclude),
            toml_str(&self.format),
            toml_str(&self.read_from),
        );
        if let Some(max) = &self.max_line_bytes {
            source.push_str(&format!("max_line_bytes = {}\n", toml_str(max)));
        }
        let api = match &self.api_address {
            Some(a) => format!("[api]\naddress = {}\n\n", toml_str(a)),
            None => String::new(),
        };
        format!(
            "data_dir = {}\nshutdown_timeout = {}\n\n{api}{source}\n\
             [batch]\nmax_rows = {}\nmax_bytes = {}\nmax_age = {}\n\n\
             [sinks.lake]\ntype = \"parquet\"\nurl = {}\n{}",
            toml_str(&self.data_dir),
            toml_str(&self.shutdown_timeout),
            self.max_rows,
            toml_str(&self.max_bytes),
            toml_str(&self.max_age),
            toml_str(&self.lake_url),
            self.sink_extra,
        )
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

// ---------------------------------------------------------------------------
// Running tidewater
// ---------------------------------------------------------------------------

/// A running `tidewater` process. Dropping it kills the process, so a failing
/// test leaves nothing behind.
pub struct Tidewater {
    child: Child,
    args: Vec<String>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Tidewater {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `SIGNAL` (e.g. `"TERM"`, `"INT"`, `"KILL"`) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// The process's exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .expect("cannot query the tidewater process")
    }

    /// Panics (with its stderr) if the process has already exited: for use
    /// while waiting on a `run` that should keep running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!(
                "tidewater {:?} exited early with {status}\n--- stderr ---\n{}",
                self.args,
                self.stderr()
            );
        }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Waits for the process to exit (panicking with its stderr after
    /// `timeout`) and returns its status and output.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "tidewater {:?} did not exit within {timeout:?}\n--- stderr ---\n{}",
                    self.args,
                    tail(&self.stderr(), 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Finished {
            args: self.args.clone(),
            status,
            stdout: read_lossy(&self.stdout_path),
            stderr: read_lossy(&self.stderr_path),
        }
    }
}

impl Drop for Tidewater {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `kill -SIGNAL pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("cannot run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// A tidewater process that has exited.
pub struct Finished {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Asserts exit code 0, showing stderr otherwise.
    pub fn assert_success(&self) {
        self.assert_code(0);
    }

    /// Asserts the exit code, showing stdout and stderr otherwise.
    pub fn assert_code(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "tidewater {:?}: expected exit code {code}, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.status,
            tail(&self.stdout, 2000),
            tail(&self.stderr, 4000)
        );
    }

    /// The JSON summary line that `run` prints on stdout at exit.
    pub fn summary(&self) -> Summary {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| {
                panic!(
                    "tidewater {:?} printed no JSON summary line on stdout\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.args,
                    self.stdout,
                    tail(&self.stderr, 2000)
                )
            });
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the summary line is not JSON ({e}): {line}"));
        assert!(
            value.is_object(),
            "the summary is not a JSON object: {line}"
        );
        Summary(value)
    }
}

/// The JSON summary of a `run`.
#[derive(Debug)]
pub struct Summary(pub Value);

impl Summary {
    /// A counter of the summary, e.g. `summary.get("records")`.
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).and_then(Value::as_u64).unwrap_or_else(|| {
            panic!(
                "the summary has no non-negative integer {key:?}: {}",
                self.0
            )
        })
    }
}

/// Reads a file as text, replacing invalid UTF-8 (empty if it does not exist).
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of `text` (at a char boundary), for failure messages.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes;
/// returns whether it held.
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads `<data_dir>/checkpoints.json`.
pub fn read_checkpoints(sandbox: &Sandbox) -> Value {
    let path = sandbox.checkpoint_file();
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the checkpoint file {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

/// Polls until the checkpoint on disk records offset `len` (the end of a
/// log), while `tidewater` keeps running; panics after `timeout`.
pub fn wait_for_checkpoint(
    sandbox: &Sandbox,
    len: u64,
    tidewater: &mut Tidewater,
    timeout: Duration,
) {
    let ok = poll_until(timeout, || {
        tidewater.assert_running();
        sandbox.checkpoint_file().exists()
            && checkpoint_offsets(&read_checkpoints(sandbox)).contains(&len)
    });
    assert!(ok, "the checkpoint did not reach the end of the log ({len} bytes) within {timeout:?}\n--- stderr ---\n{}", tail(&tidewater.stderr(), 3000));
}

/// The `offset`s that the checkpoint records (all entries of `files`).
pub fn checkpoint_offsets(checkpoint: &Value) -> Vec<u64> {
    checkpoint
        .get("files")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("the checkpoint has no \"files\" array: {checkpoint}"))
        .iter()
        .map(|entry| {
            entry
                .get("offset")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("a checkpoint entry has no integer \"offset\": {entry}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Log corpora
// ---------------------------------------------------------------------------

/// A log file written by `tests/gen-cri.py`, with the counts it reported.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub path: PathBuf,
    /// Records (seqs `start_seq .. start_seq + records`).
    pub records: u64,
    /// Physical lines (CRI P/F parts and Docker 16 KiB chunks count each).
    pub lines: u64,
    pub bytes: u64,
    pub start_seq: u64,
}

impl Corpus {
    /// The seqs this corpus holds.
    pub fn seqs(&self) -> Range<i64> {
        self.start_seq as i64..(self.start_seq + self.records) as i64
    }

    /// The file's lines, each with its `\n`.
    pub fn lines(&self) -> Vec<Vec<u8>> {
        let bytes = fs::read(&self.path).expect("cannot read the generated corpus");
        bytes
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }
}

/// Runs `tests/gen-cri.py --format FORMAT --records N [extra...] --out OUT`.
pub fn generate(out: &Path, format: &str, records: u64, extra: &[&str]) -> Corpus {
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).expect("cannot create the corpus directory");
    }
    let script = project_file("tests/gen-cri.py");
    let records_arg = records.to_string();
    let output = Command::new(python())
        .arg(&script)
        .args(["--format", format, "--records", &records_arg])
        .args(extra)
        .args(["--out", path_str(out)])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} {}: {e} (set TIDEWATER_TEST_PYTHON or install python3)",
                python(),
                script.display()
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "gen-cri.py failed ({}): {stderr}",
        output.status
    );
    let report: Value = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("gen-cri.py printed no JSON summary on stderr: {stderr}"));
    let count = |key: &str| {
        report
            .get(key)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("gen-cri.py summary lacks {key}: {report}"))
    };
    let start_seq = extra
        .iter()
        .position(|a| *a == "--start-seq")
        .map(|i| {
            extra
                .get(i + 1)
                .and_then(|s| s.parse().ok())
                .expect("--start-seq needs a number")
        })
        .unwrap_or(0);
    Corpus {
        path: out.to_path_buf(),
        records: count("records"),
        lines: count("lines"),
        bytes: count("bytes"),
        start_seq,
    }
}

// ---------------------------------------------------------------------------
// Reading the lake with the parquet crate
// ---------------------------------------------------------------------------

/// One row of a lake file, with every column of the contract.
#[derive(Clone, Debug)]
pub struct Row {
    /// `seq` of the `fields` JSON, when `fields` is an object with one.
    pub seq: Option<i64>,
    /// `timestamp`, in microseconds since the epoch.
    pub timestamp: Option<i64>,
    /// `observed_timestamp`, in microseconds since the epoch.
    pub observed_timestamp: Option<i64>,
    pub stream: Option<String>,
    pub level: Option<String>,
    pub message: Option<String>,
    pub fields: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
    pub file: Option<String>,
    pub offset: Option<i64>,
    pub flags: Vec<String>,
    pub parse_error: Option<String>,
    pub source: Option<String>,
}

/// A Parquet file of the lake.
#[derive(Debug)]
pub struct LakeFile {
    /// Path relative to the lake directory.
    pub key: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// A snapshot of every `*.parquet` file of a lake.
#[derive(Debug, Default)]
pub struct Lake {
    pub files: Vec<Arc<LakeFile>>,
}

impl Lake {
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.files.iter().flat_map(|f| f.rows.iter())
    }

    pub fn row_count(&self) -> usize {
        self.files.iter().map(|f| f.rows.len()).sum()
    }

    /// How many times each seq occurs.
    pub fn seq_counts(&self) -> HashMap<i64, usize> {
        let mut counts = HashMap::new();
        for seq in self.rows().filter_map(|r| r.seq) {
            *counts.entry(seq).or_insert(0) += 1;
        }
        counts
    }

    /// How many rows carry each flag.
    pub fn flag_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for flag in self.rows().flat_map(|r| r.flags.iter()) {
            *counts.entry(flag.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Compares the lake's seqs with `expected`.
    pub fn seq_report(&self, expected: Range<i64>) -> SeqReport {
        let counts = self.seq_counts();
        let missing: Vec<i64> = expected
            .clone()
            .filter(|s| !counts.contains_key(s))
            .collect();
        let mut duplicated: Vec<(i64, usize)> = counts
            .iter()
            .filter(|(s, n)| expected.contains(s) && **n > 1)
            .map(|(s, n)| (*s, *n))
            .collect();
        duplicated.sort_unstable();
        let mut unexpected: Vec<i64> = counts
            .keys()
            .filter(|s| !expected.contains(s))
            .copied()
            .collect();
        unexpected.sort_unstable();
        SeqReport {
            missing,
            duplicated,
            unexpected,
        }
    }

    /// Asserts that every seq of `expected` is in the lake exactly once and
    /// that no other seq is.
    pub fn assert_exactly_once(&self, expected: Range<i64>) {
        let report = self.seq_report(expected.clone());
        assert!(
            report.missing.is_empty()
                && report.duplicated.is_empty()
                && report.unexpected.is_empty(),
            "seqs {expected:?} are not in the lake exactly once: {}",
            report.describe()
        );
    }
}

/// What is wrong with the seqs of a lake.
#[derive(Debug)]
pub struct SeqReport {
    pub missing: Vec<i64>,
    /// (seq, occurrences) for seqs seen more than once.
    pub duplicated: Vec<(i64, usize)>,
    /// Seqs outside the expected range.
    pub unexpected: Vec<i64>,
}

impl SeqReport {
    /// Extra rows beyond one per seq.
    pub fn duplicate_rows(&self) -> usize {
        self.duplicated.iter().map(|(_, n)| n - 1).sum()
    }

    pub fn describe(&self) -> String {
        let first = |v: &[i64]| {
            v.iter()
                .take(10)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let dups: Vec<String> = self
            .duplicated
            .iter()
            .take(10)
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        format!(
            "{} missing (first: {}); {} duplicated (first: {}); {} unexpected (first: {})",
            self.missing.len(),
            first(&self.missing),
            self.duplicated.len(),
            dups.join(", "),
            self.unexpected.len(),
            first(&self.unexpected)
        )
    }
}

/// Reads a lake directory, caching files it has already read (lake files are
/// written once, atomically, so a file whose size and mtime did not change
/// need not be read again while polling).
pub struct LakeReader {
    dir: PathBuf,
    cache: HashMap<PathBuf, (u64, SystemTime, Arc<LakeFile>)>,
}

impl LakeReader {
    pub fn new(dir: &Path) -> Self {
        LakeReader {
            dir: dir.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    /// Every `*.parquet` file of the lake now (none if the lake does not exist yet).
    pub fn scan(&mut self) -> Lake {
        let mut paths = Vec::new();
        collect_parquet_files(&self.dir, &mut paths);
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        let mut fresh = HashMap::with_capacity(paths.len());
        for path in paths {
            let Ok(meta) = fs::metadata(&path) else {
                continue; // replaced between listing and reading: next scan sees it
            };
            let mtime = meta.modified().expect("file mtimes are supported");
            let file = match self.cache.get(&path) {
                Some((len, time, file)) if *len == meta.len() && *time == mtime => file.clone(),
                _ => Arc::new(read_lake_file(&self.dir, &path)),
            };
            fresh.insert(path, (meta.len(), mtime, file.clone()));
            files.push(file);
        }
        self.cache = fresh;
        Lake { files }
    }

    /// Polls the lake until every seq of `expected` is in it, while `tidewater`
    /// keeps running; panics after `timeout` with what is missing.
    pub fn wait_for_seqs(
        &mut self,
        expected: Range<i64>,
        tidewater: &mut Tidewater,
        timeout: Duration,
    ) -> Lake {
        let deadline = Instant::now() + timeout;
        loop {
            tidewater.assert_running();
            let lake = self.scan();
            let report = lake.seq_report(expected.clone());
            if report.missing.is_empty() {
                return lake;
            }
            if Instant::now() >= deadline {
                panic!(
                    "after {timeout:?}, seqs {expected:?} are still not all in the lake: {}\n--- tidewater stderr ---\n{}",
                    report.describe(),
                    tail(&tidewater.stderr(), 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls until at least one `*.parquet` file is in the lake (listing
    /// only, without reading: quick enough to act while tidewater is busy).
    pub fn wait_for_a_file(&self, tidewater: &mut Tidewater, timeout: Duration) {
        let found = poll_until(timeout, || {
            tidewater.assert_running();
            let mut paths = Vec::new();
            collect_parquet_files(&self.dir, &mut paths);
            !paths.is_empty()
        });
        assert!(
            found,
            "after {timeout:?} the lake {} has no Parquet file\n--- tidewater stderr ---\n{}",
            self.dir.display(),
            tail(&tidewater.stderr(), 4000)
        );
    }
}

/// Reads the whole lake once.
pub fn read_lake(dir: &Path) -> Lake {
    LakeReader::new(dir).scan()
}

pub fn collect_parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_parquet_files(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
}

/// Reads one lake file with the parquet crate into [`Row`]s.
fn read_lake_file(lake: &Path, path: &Path) -> LakeFile {
    let file = fs::File::open(path)
        .unwrap_or_else(|e| panic!("cannot open lake file {}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{} is not a readable Parquet file: {e}", path.display()));
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for batch in reader {
        let batch =
            batch.unwrap_or_else(|e| panic!("cannot read a batch of {}: {e}", path.display()));
        if columns.is_empty() {
            columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        rows.extend(batch_rows(path, &batch));
    }
    LakeFile {
        key: path.strip_prefix(lake).unwrap_or(path).to_path_buf(),
        columns,
        rows,
    }
}

fn batch_rows(path: &Path, batch: &RecordBatch) -> Vec<Row> {
    let column = |name: &str| -> ArrayRef {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("lake file {} has no column {name:?}", path.display()))
            .clone()
    };
    let timestamp = micros(&column("timestamp"));
    let observed_timestamp = micros(&column("observed_timestamp"));
    let stream = strings(&column("stream"));
    let level = strings(&column("level"));
    let message = strings(&column("message"));
    let fields = strings(&column("fields"));
    let namespace = strings(&column("namespace"));
    let pod = strings(&column("pod"));
    let container = strings(&column("container"));
    let node = strings(&column("node"));
    let file = strings(&column("file"));
    let offset = ints(&column("offset"));
    let flags = string_lists(&column("flags"));
    let parse_error = strings(&column("parse_error"));
    let source = strings(&column("source"));
    (0..batch.num_rows())
        .map(|i| Row {
            seq: fields[i].as_deref().and_then(seq_of_fields),
            timestamp: timestamp[i],
            observed_timestamp: observed_timestamp[i],
            stream: stream[i].clone(),
            level: level[i].clone(),
            message: message[i].clone(),
            fields: fields[i].clone(),
            namespace: namespace[i].clone(),
            pod: pod[i].clone(),
            container: container[i].clone(),
            node: node[i].clone(),
            file: file[i].clone(),
            offset: offset[i],
            flags: flags[i].clone(),
            parse_error: parse_error[i].clone(),
            source: source[i].clone(),
        })
        .collect()
}

/// The integer `seq` of a `fields` JSON object.
fn seq_of_fields(fields: &str) -> Option<i64> {
    serde_json::from_str::<Value>(fields)
        .ok()?
        .get("seq")?
        .as_i64()
}

/// A string column (Utf8, LargeUtf8, Utf8View or dictionary) as `Option<String>`s.
fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    let utf8 = cast(array, &DataType::Utf8)
        .unwrap_or_else(|e| panic!("a {} column is not a string column: {e}", array.data_type()));
    let utf8 = utf8.as_string::<i32>();
    (0..utf8.len())
        .map(|i| (!utf8.is_null(i)).then(|| utf8.value(i).to_string()))
        .collect()
}

/// An integer column as `Option<i64>`s.
fn ints(array: &ArrayRef) -> Vec<Option<i64>> {
    let int64 = cast(array, &DataType::Int64).unwrap_or_else(|e| {
        panic!(
            "a {} column is not an integer column: {e}",
            array.data_type()
        )
    });
    let int64 = int64.as_primitive::<Int64Type>();
    (0..int64.len())
        .map(|i| (!int64.is_null(i)).then(|| int64.value(i)))
        .collect()
}

/// A timestamp column as microseconds since the epoch.
fn micros(array: &ArrayRef) -> Vec<Option<i64>> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        panic!("expected a timestamp column, found {}", array.data_type());
    };
    let (mul, div) = match unit {
        TimeUnit::Second => (1_000_000, 1),
        TimeUnit::Millisecond => (1_000, 1),
        TimeUnit::Microsecond => (1, 1),
        TimeUnit::Nanosecond => (1, 1_000),
    };
    ints(array)
        .into_iter()
        .map(|v| v.map(|v| v * mul / div))
        .collect()
}

/// A list-of-strings column; a null list reads as empty.
fn string_lists(array: &ArrayRef) -> Vec<Vec<String>> {
    let one =
        |values: ArrayRef| -> Vec<String> { strings(&values).into_iter().flatten().collect() };
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            (0..list.len())
                .map(|i| {
                    if list.is_null(i) {
                        vec![]
                    } else {
                        one(list.value(i))
                    }
                })
                .collect()
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            (0..list.len())
                .map(|i| {
                    if list.is_null(i) {
                        vec![]
                    } else {
                        one(list.value(i))
                    }
                })
                .collect()
        }
        other => panic!("expected a list column for flags, found {other}"),
    }
}

// ---------------------------------------------------------------------------
// Reading the lake with pyarrow (tests/read_parquet.py)
// ---------------------------------------------------------------------------

/// What `tests/read_parquet.py LAKE` reports.
#[derive(Debug)]
pub struct PyLake {
    pub files: u64,
    pub rows: u64,
    pub seqs: Vec<i64>,
    pub columns: Vec<String>,
    pub flags: BTreeMap<String, u64>,
    pub parse_errors: u64,
    /// Files whose row groups all carry the true min/max of `timestamp`.
    pub time_ranged: u64,
}

/// Runs `tests/read_parquet.py` with `$TIDEWATER_TEST_PYTHON` on `lake`.
pub fn read_lake_with_pyarrow(lake: &Path) -> PyLake {
    let python = std::env::var("TIDEWATER_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TIDEWATER_TEST_PYTHON is not set: run the tests via scripts/test.sh, which installs pyarrow \
             into target/test-venv and sets it (or set it to a python with pyarrow yourself)"
        )
    });
    let script = project_file("tests/read_parquet.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(lake)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_parquet.py failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("read_parquet.py did not print JSON ({e}): {stdout}"));
    let num = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("read_parquet.py output lacks {key}: {v}"))
    };
    let array = |key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("read_parquet.py output lacks {key}: {v}"))
            .clone()
    };
    let flags = v
        .get("flags")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("read_parquet.py output lacks flags: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("flag counts are integers")))
        .collect();
    PyLake {
        files: num("files"),
        rows: num("rows"),
        seqs: array("seqs")
            .iter()
            .map(|s| s.as_i64().expect("seqs are integers"))
            .collect(),
        columns: array("columns")
            .iter()
            .map(|s| s.as_str().expect("column names are strings").to_string())
            .collect(),
        flags,
        parse_errors: num("parse_errors"),
        time_ranged: num("time_ranged"),
    }
}

/// The columns every lake file must have (Arrow names of the contract).
pub const COLUMNS: [&str; 17] = [
    "timestamp",
    "observed_timestamp",
    "stream",
    "level",
    "message",
    "fields",
    "namespace",
    "pod",
    "container",
    "node",
    "labels",
    "annotations",
    "file",
    "offset",
    "flags",
    "parse_error",
    "source",
];

/// Levels a row may carry after normalisation.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// Splits a lake key into `(dt, hour, namespace, pod, file name)`, panicking
/// when it is not `dt=YYYY-MM-DD/hour=HH/<namespace>/<pod>/<id>.parquet`.
pub fn parse_lake_key(key: &Path) -> (String, String, String, String, String) {
    let parts: Vec<String> = key
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let shape_ok = parts.len() == 5
        && parts[0].len() == "dt=YYYY-MM-DD".len()
        && parts[0].starts_with("dt=")
        && parts[0][3..].chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
        && parts[1].len() == "hour=HH".len()
        && parts[1].starts_with("hour=")
        && parts[1][5..].chars().all(|c| c.is_ascii_digit())
        && parts[4].ends_with(".parquet");
    assert!(
        shape_ok,
        "lake key {} is not dt=YYYY-MM-DD/hour=HH/<namespace>/<pod>/<id>.parquet",
        key.display()
    );
    (
        parts[0][3..].to_string(),
        parts[1][5..].to_string(),
        parts[2].clone(),
        parts[3].clone(),
        parts[4].clone(),
    )
}

/// The rows of each SQL statement over the lake at `lake` (the view
/// `logs`; relative paths in the SQL resolve against the sandbox, as the
/// README's queries do against the working directory), through DuckDB
/// (`tests/duckdb_query.py`), independently of the Rust code.
pub fn duckdb(sandbox: &Sandbox, lake: &Path, statements: &[&str]) -> Vec<Vec<Vec<Value>>> {
    let out = std::process::Command::new(python())
        .arg(project_file("tests/duckdb_query.py"))
        .arg(lake)
        .args(statements)
        .current_dir(sandbox.root())
        .output()
        .expect("run tests/duckdb_query.py (bash scripts/test.sh installs duckdb)");
    assert!(
        out.status.success(),
        "duckdb_query.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("duckdb_query.py prints JSON")
}
