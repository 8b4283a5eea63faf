//! The Parquet lake on object stores: S3 through a real moto server (writes,
//! multipart, outages, a missing bucket, SIGKILL during uploads), GCS
//! configuration and reads through fake-gcs-server, and real GCS (opt-in:
//! the `gcs-live` feature and credentials, see the README). The lake is read
//! back with boto3 and pyarrow, not with the object_store code that wrote it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::services::*;
use crate::util::*;

const BUCKET: &str = "lake";

/// A config that ships `logs/*.log` to `s3://lake/<prefix>` on `moto`.
fn s3_config(moto: &Moto, prefix: &str) -> Config {
    let mut config = Config::relative("cri");
    config.lake_url = format!("s3://{BUCKET}/{prefix}");
    config.sink_extra = moto.sink_settings();
    config
}

/// Start tidewater with the S3 credentials in its environment.
fn start_s3_run(sandbox: &Sandbox, config: &Path) -> Tidewater {
    sandbox.spawn_with_env(&["run", "--config", path_str(config)], &s3_env())
}

fn run_s3_once(sandbox: &Sandbox, config: &Path) -> (Finished, Summary) {
    let finished = sandbox
        .spawn_with_env(&["run", "--config", path_str(config), "--once"], &s3_env())
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();
    let summary = finished.summary();
    (finished, summary)
}

/// `tests/duckdb_s3.py`: DuckDB (httpfs) reading `glob` on `moto`.
fn duckdb_on_s3(moto: &Moto, glob: &str) -> Value {
    duckdb_s3(moto, glob, &[])
}

/// `tests/duckdb_s3.py --offsets`: rows and distinct (file, offset) pairs.
fn duckdb_count_offsets(moto: &Moto, glob: &str) -> Value {
    duckdb_s3(moto, glob, &["--offsets"])
}

fn duckdb_s3(moto: &Moto, glob: &str, options: &[&str]) -> Value {
    let endpoint = moto.endpoint().trim_start_matches("http://").to_string();
    let output = std::process::Command::new(python())
        .arg(project_file("tests/duckdb_s3.py"))
        .args([&endpoint, glob])
        .args(options)
        .output()
        .expect("cannot run tests/duckdb_s3.py");
    assert!(
        output.status.success(),
        "duckdb_s3.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("duckdb_s3.py prints JSON")
}

fn assert_no_secret(output: &str) {
    assert!(
        !output.contains(S3_SECRET),
        "the S3 secret key appears in tidewater's output"
    );
}

#[test]
fn s3_lake_holds_the_corpus_exactly_once() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    moto.create_bucket(BUCKET);
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 20_000, &[]);
    let mut config = s3_config(&moto, "prod/eu");
    config.max_rows = 3_000;
    let config = sandbox.write_config(&config);

    let (finished, summary) = run_s3_once(&sandbox, &config);
    assert_eq!(
        summary.get("rows_delivered"),
        corpus.records,
        "{}",
        finished.stderr
    );
    assert_no_secret(&finished.stderr);

    let fetched_dir = sandbox.path("fetched");
    let fetched = moto.fetch(BUCKET, "prod/eu", &fetched_dir);
    println!("S3 lake: {fetched:?}");
    assert!(
        fetched.objects >= 7,
        "20,000 rows in batches of 3,000 make at least 7 objects: {fetched:?}"
    );
    for key in &fetched.keys {
        parse_lake_key(Path::new(key));
    }
    read_lake(&fetched_dir).assert_exactly_once(corpus.seqs());
    let py = read_lake_with_pyarrow(&fetched_dir);
    assert_eq!(py.files, fetched.objects);
    assert_eq!(py.rows, corpus.records);
    let mut seqs = py.seqs.clone();
    seqs.dedup();
    assert_eq!(
        seqs.len() as u64,
        corpus.records,
        "pyarrow sees every seq once"
    );

    // The README's DuckDB query, on the bucket.
    let duck = duckdb_on_s3(&moto, &format!("s3://{BUCKET}/prod/eu/**/*.parquet"));
    println!("DuckDB on S3: {duck}");
    assert_eq!(duck["rows"], corpus.records, "{duck}");
    assert_eq!(duck["distinct_seqs"], corpus.records, "{duck}");
    assert!(
        duck["days"].as_u64().is_some_and(|d| d >= 1),
        "dt is read from the Hive-style path: {duck}"
    );

    // Nothing outside the prefix.
    let everything = moto.fetch(BUCKET, "", &sandbox.path("whole-bucket"));
    assert_eq!(
        everything.objects, fetched.objects,
        "objects outside prefix prod/eu: {:?}",
        everything.keys
    );
}

#[test]
fn s3_rolling_combines_batches_into_multipart_objects() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    moto.create_bucket(BUCKET);
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 60_000, &[]);
    let mut config = s3_config(&moto, "rolled");
    config.max_rows = 2_000;
    // Uncompressed, so that a few batches make an object larger than one 5 MiB part.
    config.sink_extra.push_str(
        "zstd_level = 0\npart_size = \"5MiB\"\ntarget_file_size = \"6MiB\"\nmax_file_age = \"10m\"\n",
    );
    let config = sandbox.write_config(&config);

    let (finished, summary) = run_s3_once(&sandbox, &config);
    assert_eq!(
        summary.get("rows_delivered"),
        corpus.records,
        "{}",
        finished.stderr
    );

    let fetched_dir = sandbox.path("fetched");
    let fetched = moto.fetch(BUCKET, "rolled", &fetched_dir);
    println!("rolled lake: {fetched:?}");
    let batches = corpus.records.div_ceil(2_000);
    assert!(
        fetched.objects < batches / 2,
        "{batches} batches should be combined into far fewer objects: {fetched:?}"
    );
    assert!(
        fetched.multipart >= 1,
        "an object above 5 MiB goes up in parts: {fetched:?}"
    );
    assert_eq!(
        fetched.incomplete_uploads, 0,
        "no multipart upload is left open"
    );
    read_lake(&fetched_dir).assert_exactly_once(corpus.seqs());
    assert_eq!(read_lake_with_pyarrow(&fetched_dir).rows, corpus.records);
    let staging = sandbox.data_dir().join("staging/lake");
    let left: Vec<_> = fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "staging files left after a complete run: {left:?}"
    );
}

/// Appends the lines of `source` to `target` a chunk at a time, `pause` apart.
fn spawn_writer(
    source: Vec<Vec<u8>>,
    target: std::path::PathBuf,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&target)
            .expect("open the log for appending");
        for lines in source.chunks(chunk) {
            file.write_all(&lines.concat()).expect("append to the log");
            std::thread::sleep(pause);
        }
    })
}

#[test]
fn s3_outage_is_reported_and_nothing_is_lost() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    moto.create_bucket(BUCKET);
    let corpus = generate(&sandbox.path("source/app.log"), "cri", 30_000, &[]);
    let log = sandbox.logs().join("app.log");
    let api = free_port();
    let mut config = s3_config(&moto, "outage");
    config.max_rows = 1_000;
    config.api_address = Some(format!("127.0.0.1:{api}"));
    let config = sandbox.write_config(&config);

    let mut tidewater = start_s3_run(&sandbox, &config);
    // About 15 s of appends: 200 lines every 100 ms.
    let writer = spawn_writer(corpus.lines(), log.clone(), 200, Duration::from_millis(100));
    wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(30),
        "a healthy sink",
        |code, _| code == 200,
    );

    moto.pause();
    let paused_at = Instant::now();
    let failing = wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(60),
        "the sink failing",
        |code, body| code == 503 && body["components"]["sinks.lake"]["status"] == "failing",
    );
    println!("while the store was down, /readyz said: {failing}");
    assert_eq!(
        failing["components"]["sinks.lake"]["permanent"], false,
        "an outage is not a permanent error"
    );
    // Stay down a while longer while the writer keeps appending.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(paused_at.elapsed()));
    let rss_down = peak_rss_kib(tidewater.pid());
    moto.resume();

    writer.join().expect("the writer thread panicked");
    let len = fs::metadata(&log).expect("the log").len();
    wait_for_checkpoint(&sandbox, len, &mut tidewater, Duration::from_secs(180));
    wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(30),
        "the sink healthy again",
        |code, _| code == 200,
    );
    let peak = peak_rss_kib(tidewater.pid()).expect("VmHWM of tidewater");
    println!(
        "peak RSS: {} MiB (at the end of the outage: {:?} MiB)",
        peak / 1024,
        rss_down.map(|k| k / 1024)
    );
    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(30));
    finished.assert_success();
    assert_no_secret(&finished.stderr);
    assert!(
        finished.summary().get("sink_retries") > 0,
        "the outage should have caused retries"
    );

    let fetched_dir = sandbox.path("fetched");
    moto.fetch(BUCKET, "outage", &fetched_dir);
    let lake = read_lake(&fetched_dir);
    let report = lake.seq_report(corpus.seqs());
    println!(
        "after the outage: {} rows, {} duplicates",
        lake.row_count(),
        report.duplicate_rows()
    );
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{}",
        report.describe()
    );
    // Retried batches overwrite their own keys: no duplicates either.
    lake.assert_exactly_once(corpus.seqs());
    assert!(
        peak < 256 * 1024,
        "peak RSS {} MiB: buffering is not bounded",
        peak / 1024
    );
}

#[test]
fn s3_missing_bucket_is_reported_as_permanent_until_it_exists() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 5_000, &[]);
    let api = free_port();
    let mut config = s3_config(&moto, "late");
    config.api_address = Some(format!("127.0.0.1:{api}"));
    let config = sandbox.write_config(&config);

    let mut tidewater = start_s3_run(&sandbox, &config);
    let body = wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(60),
        "a permanent failure",
        |code, body| code == 503 && body["components"]["sinks.lake"]["permanent"] == true,
    );
    let error = body["components"]["sinks.lake"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!("with no bucket, /readyz said: {body}");
    assert!(
        !error.is_empty(),
        "the failing sink names its error: {body}"
    );
    assert!(
        tidewater
            .stderr()
            .contains("cannot succeed until this is fixed"),
        "the log says a person must act"
    );

    moto.create_bucket(BUCKET);
    let len = fs::metadata(&corpus.path).expect("the log").len();
    wait_for_checkpoint(&sandbox, len, &mut tidewater, Duration::from_secs(120));
    wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(30),
        "the sink healthy",
        |code, _| code == 200,
    );
    tidewater.signal("TERM");
    tidewater.finish(Duration::from_secs(30)).assert_success();
    let fetched_dir = sandbox.path("fetched");
    moto.fetch(BUCKET, "late", &fetched_dir);
    read_lake(&fetched_dir).assert_exactly_once(corpus.seqs());
}

#[test]
fn s3_sigkill_during_an_upload_loses_and_duplicates_nothing() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    moto.create_bucket(BUCKET);
    let corpus = generate(&sandbox.path("source/app.log"), "cri", 60_000, &[]);
    let log = sandbox.logs().join("app.log");
    let api = free_port();
    let mut config = s3_config(&moto, "crash");
    config.max_rows = 2_000;
    config.api_address = Some(format!("127.0.0.1:{api}"));
    config.sink_extra.push_str(
        "zstd_level = 0\npart_size = \"5MiB\"\ntarget_file_size = \"6MiB\"\nmax_file_age = \"10m\"\n",
    );
    let config = sandbox.write_config(&config);

    // While a writer appends (about 20 s), let the first objects land, then
    // hang the store so that the next upload is in flight, and kill
    // tidewater in the middle of it.
    let mut tidewater = start_s3_run(&sandbox, &config);
    let writer = spawn_writer(corpus.lines(), log, 300, Duration::from_millis(100));
    let landed = poll_until(Duration::from_secs(120), || {
        tidewater.assert_running();
        moto.fetch(BUCKET, "crash", &sandbox.path("peek")).objects >= 1
    });
    assert!(
        landed,
        "no object arrived\n{}",
        tail(&tidewater.stderr(), 3000)
    );
    moto.pause();
    wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(60),
        "an upload hanging",
        |code, _| code == 503,
    );
    tidewater.signal("KILL");
    let killed = tidewater.finish(Duration::from_secs(10));
    assert_eq!(
        killed.status.code(),
        None,
        "tidewater should have died of SIGKILL"
    );
    moto.resume();
    let staged = fs::read_dir(sandbox.data_dir().join("staging/lake"))
        .map(|d| d.count())
        .unwrap_or(0);
    writer.join().expect("the writer thread panicked");

    let (finished, summary) = run_s3_once(&sandbox, &config);
    let fetched_dir = sandbox.path("fetched");
    let fetched = moto.fetch(BUCKET, "crash", &fetched_dir);
    let lake = read_lake(&fetched_dir);
    let report = lake.seq_report(corpus.seqs());
    println!(
        "SIGKILL with {staged} staging files and an upload in flight; the restart read {} records; \
         lake: {} objects, {} rows, {} duplicate rows; {} multipart uploads left incomplete",
        summary.get("records"),
        fetched.objects,
        lake.row_count(),
        report.duplicate_rows(),
        fetched.incomplete_uploads
    );
    assert!(
        report.missing.is_empty(),
        "rows lost: {}\n{}",
        report.describe(),
        tail(&finished.stderr, 3000)
    );
    // The restart re-makes the interrupted object from the checkpoint, with
    // the same first batch and so the same key: it replaces, not duplicates.
    assert_eq!(
        report.duplicate_rows(),
        0,
        "deterministic keys should leave no duplicates: {}",
        report.describe()
    );
}

// ---------------------------------------------------------------------------
// GCS
// ---------------------------------------------------------------------------

/// A service-account key file for an emulator: object_store then sends no
/// OAuth token.
fn emulator_key(sandbox: &Sandbox) -> std::path::PathBuf {
    sandbox.write_file(
        "gcs-key.json",
        r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#,
    )
}

#[test]
fn gcs_lake_is_listed_and_read_back() {
    let sandbox = Sandbox::new();
    let gcs = FakeGcs::start(&sandbox);
    gcs.create_bucket(BUCKET);

    // A lake made by tidewater, copied into the emulator through its JSON
    // API (the emulator does not take object_store's XML-API writes).
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 6_000, &[]);
    let mut local = Config::relative("cri");
    local.max_rows = 2_000;
    let local = sandbox.write_config(&local);
    sandbox.run_once_ok(&local);
    let mut files = Vec::new();
    collect_parquet_files(&sandbox.lake(), &mut files);
    assert!(
        files.len() >= 3,
        "6,000 rows in batches of 2,000: {files:?}"
    );
    for file in &files {
        let key = file.strip_prefix(sandbox.lake()).expect("under the lake");
        gcs.upload(
            BUCKET,
            &format!("prod/{}", path_str(key)),
            &fs::read(file).expect("lake file"),
        );
    }

    let key = emulator_key(&sandbox);
    let mut config = Config::relative("cri");
    config.data_dir = "state-gcs".into();
    config.lake_url = format!("gs://{BUCKET}/prod");
    config.sink_extra = format!(
        "endpoint = {}\nallow_http = true\ncredentials = {}\n",
        toml_str(&gcs.base_url()),
        toml_str(path_str(&key))
    );
    let config = sandbox.write_config(&config);
    let probe = sandbox
        .spawn(&["validate", "--config", path_str(&config), "--connect"])
        .finish(Duration::from_secs(60));
    probe.assert_success();
    println!("{}", probe.stdout);
    let line = probe
        .stdout
        .lines()
        .find(|l| l.starts_with("sinks.lake:"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!(
            "reachable: gs://{BUCKET}/prod holds {} Parquet objects",
            files.len()
        )),
        "validate --connect should list every object: {line}"
    );
    let rows: u64 = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count of the newest object in: {line}"));
    assert!(
        rows > 0 && rows <= 2_000,
        "the newest object's footer was read: {line}"
    );
    assert_eq!(
        read_lake(&sandbox.lake()).row_count() as u64,
        corpus.records
    );

    // A key file that is not there is a config error naming the key.
    let mut missing = Config::relative("cri");
    missing.lake_url = format!("gs://{BUCKET}/prod");
    missing.sink_extra = "credentials = \"no-such-key.json\"\n".into();
    let missing = sandbox.write_config(&missing);
    let failed = sandbox
        .spawn(&["run", "--config", path_str(&missing), "--once"])
        .finish(Duration::from_secs(60));
    assert!(!failed.status.success());
    assert!(
        failed.stderr.contains("sinks.lake.credentials"),
        "{}",
        failed.stderr
    );
}

#[test]
fn s3_unreachable_destination_is_reported_by_validate_connect() {
    let sandbox = Sandbox::new();
    let mut config = Config::relative("cri");
    config.lake_url = format!("s3://{BUCKET}/prod");
    config.sink_extra = format!(
        "endpoint = \"http://127.0.0.1:{}\"\nallow_http = true\nregion = \"us-east-1\"\nrequest_timeout = \"1s\"\n",
        free_port()
    );
    let config = sandbox.write_config(&config);
    let probe = sandbox
        .spawn_with_env(
            &["validate", "--config", path_str(&config), "--connect"],
            &s3_env(),
        )
        .finish(Duration::from_secs(60));
    assert_eq!(probe.status.code(), Some(1), "{}", probe.stdout);
    assert!(
        probe.stdout.contains("sinks.lake: UNREACHABLE"),
        "{}",
        probe.stdout
    );
    assert_no_secret(&probe.stdout);
    assert_no_secret(&probe.stderr);
}

/// Real GCS, end to end. Opt-in: compiled only with the `gcs-live` feature
/// (see the README for the command), so the default run neither runs nor
/// passes it; with the feature it needs `TIDEWATER_TEST_GCS_URL`
/// (`gs://bucket/prefix`) and `GOOGLE_APPLICATION_CREDENTIALS`, and fails
/// without them.
#[cfg(feature = "gcs-live")]
#[test]
fn real_gcs_end_to_end() {
    let setting = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (Some(url), Some(_)) = (
        setting("TIDEWATER_TEST_GCS_URL"),
        setting("GOOGLE_APPLICATION_CREDENTIALS"),
    ) else {
        panic!(
            "the real-GCS test (feature gcs-live) needs TIDEWATER_TEST_GCS_URL=gs://BUCKET/PREFIX and \
             GOOGLE_APPLICATION_CREDENTIALS=/path/to/key.json (a service account that may write and \
             list under that prefix): set both, or run without --features gcs-live"
        );
    };
    let sandbox = Sandbox::new();
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 5_000, &[]);
    let run_prefix = format!(
        "{}/tidewater-it-{}",
        url.trim_end_matches('/'),
        std::process::id()
    );
    let mut config = Config::relative("cri");
    config.lake_url = run_prefix.clone();
    let config = sandbox.write_config(&config);
    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("rows_delivered"), corpus.records);
    let probe = sandbox
        .spawn(&["validate", "--config", path_str(&config), "--connect"])
        .finish(Duration::from_secs(120));
    probe.assert_success();
    println!("real GCS: {}", probe.stdout);
    assert!(
        probe.stdout.contains(&format!("reachable: {run_prefix}")),
        "{}",
        probe.stdout
    );
}

/// Design rule 4 under a stalled store: with `memory_limit = "64MiB"`,
/// tidewater's resident memory stays under the limit plus a stated overhead
/// while the S3 server is stopped (SIGSTOP) and about 1 GB is appended to the
/// log; `/metrics` shows the lag and the failing sink; after the server
/// resumes every record arrives (each file offset once).
#[test]
fn memory_stays_bounded_while_the_store_stalls() {
    /// What the process needs besides the budget: code, runtime, TLS and
    /// HTTP clients, allocator slack (measured in BENCHMARKS.md).
    const OVERHEAD_MIB: u64 = 64;
    const LIMIT_MIB: u64 = 64;
    const COPIES: u64 = 32;

    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    moto.create_bucket(BUCKET);
    // 32 MB of CRI lines, appended 32 times: every record has its own offset.
    let corpus = generate(&sandbox.path("source/app.log"), "cri", 100_000, &[]);
    let chunk = fs::read(&corpus.path).expect("corpus");
    let log = sandbox.logs().join("app.log");
    fs::create_dir_all(sandbox.logs()).expect("logs dir");
    fs::write(&log, b"").expect("create the log");
    let api = free_port();
    let mut config = s3_config(&moto, "stall");
    config.api_address = Some(format!("127.0.0.1:{api}"));
    config
        .sink_extra
        .push_str("target_file_size = \"16MiB\"\nmax_file_age = \"10s\"\n");
    let config = sandbox.write_config(&config);
    let text = fs::read_to_string(&config).expect("config");
    fs::write(
        &config,
        format!("memory_limit = \"{LIMIT_MIB}MiB\"\n{text}"),
    )
    .expect("config");

    let mut tidewater = start_s3_run(&sandbox, &config);
    wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(30),
        "a healthy sink",
        |code, _| code == 200,
    );
    let idle_rss = rss_kib(tidewater.pid()).unwrap_or(0);
    moto.pause();

    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut file = OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("open the log");
            for _ in 0..COPIES {
                file.write_all(&chunk).expect("append");
            }
        })
    };
    // Sample the resident memory while the writer appends and the store hangs.
    let mut peak_kib = 0;
    let stalled_until = Instant::now() + Duration::from_secs(25);
    while Instant::now() < stalled_until || !writer.is_finished() {
        tidewater.assert_running();
        peak_kib = peak_kib.max(rss_kib(tidewater.pid()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    writer.join().expect("the writer thread");
    let total = corpus.bytes * COPIES;
    let scrape = Scrape::take(api);
    let lag = scrape.get(
        "tidewater_checkpoint_lag_bytes",
        &[("source", "app"), ("path", path_str(&log))],
    );
    let reserved = scrape.get("tidewater_batch_memory_bytes", &[]);
    println!(
        "store stalled, {total} bytes appended: RSS idle {} MiB, peak {} MiB (bound {LIMIT_MIB} + {OVERHEAD_MIB} MiB); \
         lag {lag} bytes; batches hold {reserved} bytes; read {} bytes",
        idle_rss / 1024,
        peak_kib / 1024,
        scrape.get("tidewater_source_read_bytes_total", &[("source", "app")]),
    );
    assert!(
        peak_kib / 1024 <= LIMIT_MIB + OVERHEAD_MIB,
        "resident memory reached {} MiB, above memory_limit {LIMIT_MIB} MiB + {OVERHEAD_MIB} MiB",
        peak_kib / 1024
    );
    assert_eq!(scrape.get("tidewater_sink_up", &[("sink", "lake")]), 0.0);
    assert!(scrape.get("tidewater_sink_retries_total", &[("sink", "lake")]) >= 1.0);
    let read = scrape.get("tidewater_source_read_bytes_total", &[("source", "app")]);
    assert!(
        read < (total / 2) as f64,
        "most of the log waits in the file, not in memory: read {read} of {total} bytes"
    );
    assert_eq!(
        lag, total as f64,
        "nothing is acknowledged while the store is down, so nothing is committed"
    );
    assert_eq!(
        scrape.get("tidewater_source_lag_bytes", &[("source", "app")]),
        lag
    );
    assert!(reserved <= scrape.get("tidewater_batch_memory_limit_bytes", &[]));
    assert!(
        !scrape.text.contains(S3_SECRET),
        "/metrics shows the S3 secret"
    );

    moto.resume();
    let len = fs::metadata(&log).expect("the log").len();
    assert_eq!(len, total);
    wait_for_checkpoint(&sandbox, len, &mut tidewater, Duration::from_secs(900));
    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(60));
    finished.assert_success();
    assert_no_secret(&finished.stderr);
    let records = corpus.records * COPIES;
    assert_eq!(finished.summary().get("records"), records);
    assert_eq!(finished.summary().get("rows_delivered"), records);

    let duck = duckdb_count_offsets(&moto, &format!("s3://{BUCKET}/stall/**/*.parquet"));
    println!("DuckDB on S3 after the stall: {duck}");
    assert_eq!(duck["rows"], records, "{duck}");
    assert_eq!(
        duck["distinct_offsets"], records,
        "every record once: {duck}"
    );
}
