//! Stopping and restarting: after SIGKILL a restart loses nothing and
//! duplicates only what was in flight; SIGTERM/SIGINT drain, checkpoint and
//! exit 0; a restart resumes from the checkpoint.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::*;

/// `shutdown_timeout` of these tests' configs, and how much longer than it
/// tidewater may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_SLACK: Duration = Duration::from_secs(5);

/// README, "Delivery guarantees": after a SIGKILL the next start resumes
/// from the checkpoint, "nothing lost, duplicates only from batches that were
/// in flight".
///
/// In flight, for a restart, is what was read but is not covered by the
/// checkpoint on disk: the restart reads again from that offset, so the only
/// rows that can arrive twice (and at most twice) are those the killed
/// process had already written to the lake at or past it. Once the process is
/// dead neither `checkpoints.json` nor the lake changes, so the test takes
/// that set exactly and checks the duplicates against it, and that the
/// restart read exactly the records from the checkpoint on.
///
/// Why not a count from the queue sizes: src/pipeline.rs bounds the batches
/// not yet acknowledged (the one being built, `SOURCE_QUEUE` = 1, the one the
/// dispatcher holds while the sink's queue is full, that queue's 1, and
/// `concurrency` = 2 being delivered: 6 batches of `max_rows` = 2,000), and
/// only the 2 being delivered can be in the lake already. But the checkpoint
/// on disk also lags acknowledged batches: one acknowledged before an earlier
/// batch still being written is not committed until that one is, and
/// committed offsets are written only every `checkpoint_interval` (100ms
/// here), so how many written rows lie past the checkpoint at a kill depends
/// on the throughput since the last write, not on a capacity (runs of this
/// test saw 0 to 22,000): `6 × max_rows` would be a bound the code does not
/// keep. (Re-made batches mostly overwrite their object, the keys being
/// deterministic, so the duplicates are usually 0.)
#[test]
fn sigkill_then_restart_loses_nothing() {
    let sandbox = Sandbox::new();
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 100_000, &[]);
    let mut config = Config::absolute(&sandbox, "cri");
    config.max_rows = 2_000;
    let config = sandbox.write_config(&config);
    // With the default 1s the whole file is delivered before the first
    // checkpoint is written.
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&config, format!("checkpoint_interval = \"100ms\"\n{text}")).expect("config");

    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    // Kill once a checkpoint commits part of the file, so that the restart
    // resumes from one (while the rest of the file is still in flight).
    let checkpointed = poll_until(LAKE_TIMEOUT, || {
        tidewater.assert_running();
        sandbox.checkpoint_file().exists()
            && checkpoint_offsets(&read_checkpoints(&sandbox))
                .iter()
                .any(|o| *o > 0)
    });
    assert!(
        checkpointed,
        "no checkpoint within {LAKE_TIMEOUT:?}\n--- tidewater stderr ---\n{}",
        tail(&tidewater.stderr(), 4000)
    );
    tidewater.signal("KILL");
    let killed = tidewater.finish(Duration::from_secs(10));
    assert_eq!(
        killed.status.code(),
        None,
        "tidewater should have died of SIGKILL: {}",
        killed.status
    );

    // What the killed process left: the offset its checkpoint commits (0
    // without one yet) and the rows it wrote at or past that offset.
    let committed = if sandbox.checkpoint_file().exists() {
        let offsets = checkpoint_offsets(&read_checkpoints(&sandbox));
        assert!(offsets.len() <= 1, "one log file, one entry: {offsets:?}");
        offsets.first().copied().unwrap_or(0)
    } else {
        0
    };
    let at_kill = lake.scan();
    let in_flight: HashSet<i64> = at_kill
        .rows()
        .filter(|r| r.offset.is_some_and(|o| o >= committed as i64))
        .filter_map(|r| r.seq)
        .collect();
    // The lines the restart must read: those from `committed` on.
    let mut offset = 0;
    let mut lines_past_checkpoint = 0u64;
    for line in corpus.lines() {
        if offset >= committed {
            lines_past_checkpoint += 1;
        }
        offset += line.len() as u64;
    }

    let (_, summary) = sandbox.run_once_ok(&config);

    let lake = lake.scan();
    let report = lake.seq_report(corpus.seqs());
    println!(
        "SIGKILL with {} of {} rows in the lake, the checkpoint at byte {committed}: {} rows \
         written past it (in flight); the restart read {} records; {} duplicate rows in the lake",
        at_kill.row_count(),
        corpus.records,
        in_flight.len(),
        summary.get("records"),
        report.duplicate_rows()
    );
    assert!(
        report.missing.is_empty(),
        "records lost across SIGKILL + restart: {}",
        report.describe()
    );
    assert!(
        report.unexpected.is_empty(),
        "rows that are not in the corpus: {}",
        report.describe()
    );
    // Every record is in the lake now, each with its own offset.
    let records_past_checkpoint = lake
        .rows()
        .filter_map(|r| r.offset)
        .filter(|o| *o >= committed as i64)
        .collect::<HashSet<i64>>()
        .len() as u64;
    assert_eq!(
        (summary.get("lines"), summary.get("records")),
        (lines_past_checkpoint, records_past_checkpoint),
        "the restart should read exactly the (lines, records) from the checkpoint (byte {committed}) on"
    );
    let not_in_flight: Vec<&(i64, usize)> = report
        .duplicated
        .iter()
        .filter(|(seq, n)| *n > 2 || !in_flight.contains(seq))
        .collect();
    assert!(
        not_in_flight.is_empty(),
        "duplicates may only be rows written past the checkpoint before the kill ({} rows), each \
         at most twice; these are not (seq, copies): {:?}; {}",
        in_flight.len(),
        &not_in_flight[..not_in_flight.len().min(10)],
        report.describe()
    );
    assert!(report.duplicate_rows() <= in_flight.len());
    let file_len = fs::metadata(&corpus.path).expect("corpus file").len();
    assert!(
        checkpoint_offsets(&read_checkpoints(&sandbox)).contains(&file_len),
        "after the restart the checkpoint should commit the whole file ({file_len} bytes): {}",
        read_checkpoints(&sandbox)
    );
}

#[test]
fn sigterm_drains_checkpoints_and_exits_zero() {
    let sandbox = Sandbox::new();
    let corpus = generate(
        &sandbox.logs().join("app.log"),
        "cri",
        5_000,
        &["--partial-share", "0.1"],
    );
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));

    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_seqs(corpus.seqs(), &mut tidewater, LAKE_TIMEOUT);
    let finished = terminate(tidewater, "TERM");
    let summary = finished.summary();
    assert_eq!(
        summary.get("records"),
        corpus.records,
        "records in {summary:?}"
    );

    let checkpoint = read_checkpoints(&sandbox);
    assert!(
        checkpoint_offsets(&checkpoint).contains(&corpus.bytes),
        "the checkpoint should commit app.log's whole length ({} bytes): {checkpoint}",
        corpus.bytes
    );
    let files_before = lake.scan().files.len();

    // Everything is committed: a restart reads nothing again.
    let (_, again) = sandbox.run_once_ok(&config);
    assert_eq!(
        again.get("records"),
        0,
        "the restart re-read committed records: {again:?}"
    );
    assert_eq!(
        again.get("rows_delivered"),
        0,
        "the restart re-delivered rows: {again:?}"
    );
    let lake = lake.scan();
    assert_eq!(
        lake.files.len(),
        files_before,
        "the restart wrote new lake files"
    );
    lake.assert_exactly_once(corpus.seqs());
}

#[test]
fn sigint_drains_like_sigterm() {
    let sandbox = Sandbox::new();
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 500, &[]);
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));

    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_seqs(corpus.seqs(), &mut tidewater, LAKE_TIMEOUT);
    let finished = terminate(tidewater, "INT");
    assert_eq!(finished.summary().get("records"), corpus.records);
    assert!(
        checkpoint_offsets(&read_checkpoints(&sandbox)).contains(&corpus.bytes),
        "SIGINT should checkpoint the whole file"
    );
}

#[test]
fn sigterm_flushes_the_open_batch() {
    let sandbox = Sandbox::new();
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 3_000, &[]);
    // Nothing would be flushed for an hour: only the shutdown can deliver.
    let mut config = Config::absolute(&sandbox, "cri");
    config.max_rows = 1_000_000;
    config.max_bytes = "32MiB".into();
    config.max_age = "1h".into();
    let config = sandbox.write_config(&config);

    let mut tidewater = sandbox.start_run(&config);
    // SIGTERM once tidewater has read the file's bytes, so that the open
    // batch holds records; the assertions below hold at any moment.
    let has_read = wait_until_bytes_read(&mut tidewater, corpus.bytes, Duration::from_secs(60));
    let finished = terminate(tidewater, "TERM");
    let first = finished.summary();
    let mut lake = LakeReader::new(&sandbox.lake());
    let after_term = lake.scan();
    println!(
        "SIGTERM after tidewater read {} bytes: {} records read, {} rows in the lake",
        if has_read {
            "the file's"
        } else {
            "fewer than the file's"
        },
        first.get("records"),
        after_term.row_count()
    );
    if has_read {
        assert!(
            first.get("records") > 0,
            "tidewater read the file but produced no records: {first:?}"
        );
    }
    // Everything read before the stop was flushed and delivered.
    assert_eq!(
        after_term.row_count() as u64,
        first.get("records"),
        "every record read before SIGTERM must be flushed to the lake at shutdown: {first:?}"
    );
    assert_eq!(
        first.get("rows_delivered") as usize,
        after_term.row_count(),
        "rows_delivered should be the rows in the lake: {first:?}"
    );
    let report = after_term.seq_report(corpus.seqs());
    assert!(
        report.duplicated.is_empty() && report.unexpected.is_empty(),
        "{}",
        report.describe()
    );

    // The restart delivers exactly the rest: a graceful stop leaves no duplicates.
    let (_, second) = sandbox.run_once_ok(&config);
    assert_eq!(
        second.get("records") as usize,
        corpus.records as usize - after_term.row_count(),
        "the restart should read exactly what the first run did not deliver: {second:?}"
    );
    lake.scan().assert_exactly_once(corpus.seqs());
}

#[test]
fn restart_resumes_from_the_checkpoint() {
    let sandbox = Sandbox::new();
    let first = generate(
        &sandbox.logs().join("app.log"),
        "cri",
        1_000,
        &["--partial-share", "0.1"],
    );
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("records"), first.records);

    // The application logs on; the next run ships only the new records.
    let more = generate(
        &sandbox.path("corpus/more.cri"),
        "cri",
        1_000,
        &[
            "--start-seq",
            "1000",
            "--seed",
            "7",
            "--partial-share",
            "0.1",
        ],
    );
    append(
        &first.path,
        &fs::read(&more.path).expect("cannot read the second corpus"),
    );
    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(
        summary.get("records"),
        more.records,
        "the second run should read only the appended records"
    );
    assert_eq!(
        summary.get("lines"),
        more.lines,
        "the second run should read only the appended lines"
    );

    read_lake(&sandbox.lake()).assert_exactly_once(0..2_000);
}

// ---------------------------------------------------------------------------

/// Sends SIG`signal` and asserts a clean exit (code 0) within
/// `shutdown_timeout` plus a few seconds.
fn terminate(tidewater: Tidewater, signal: &str) -> Finished {
    let start = Instant::now();
    tidewater.signal(signal);
    let finished = tidewater.finish(SHUTDOWN_TIMEOUT + EXIT_SLACK);
    finished.assert_success();
    println!("exited {:?} after SIG{signal}", start.elapsed());
    finished
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
}

/// Waits until the process has read at least `bytes` bytes through read
/// syscalls (`rchar` of `/proc/<pid>/io`, which counts `pread` too): with a
/// single log file of that size, it has read (nearly) all of it. Returns false
/// after `timeout`.
fn wait_until_bytes_read(tidewater: &mut Tidewater, bytes: u64, timeout: Duration) -> bool {
    let io = format!("/proc/{}/io", tidewater.pid());
    poll_until(timeout, || {
        tidewater.assert_running();
        fs::read_to_string(&io)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("rchar:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .is_some_and(|read| read >= bytes)
    })
}

/// A rolling update, five times over: SIGTERM, then a new process on the
/// same data dir, while the application keeps logging. Every line arrives;
/// a duplicate is only allowed where a drain passed its deadline (printed).
#[test]
fn rolling_updates_while_the_writer_keeps_appending() {
    let sandbox = Sandbox::new();
    // The corpus is written elsewhere, then appended to the tailed file in
    // paced chunks by a writer thread: a service logging through the updates.
    let corpus = generate(&sandbox.path("source/app.log"), "cri", 60_000, &[]);
    let lines = corpus.lines();
    let log = sandbox.logs().join("app.log");
    fs::create_dir_all(sandbox.logs()).expect("logs dir");
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open the log for appending");
            for chunk in lines.chunks(300) {
                file.write_all(&chunk.concat()).expect("append");
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let mut config = Config::absolute(&sandbox, "cri");
    config.max_rows = 1_000;
    config.max_age = "300ms".into();
    let config = sandbox.write_config(&config);

    let mut deadlines_passed = 0;
    for round in 1..=5 {
        let mut tidewater = sandbox.start_run(&config);
        std::thread::sleep(Duration::from_millis(1_500));
        tidewater.assert_running();
        let stopped = terminate(tidewater, "TERM");
        if stopped.stderr.contains("shutdown deadline passed") {
            deadlines_passed += 1;
        }
        println!(
            "round {round}: {} rows in the lake so far",
            read_lake(&sandbox.lake()).row_count()
        );
    }
    writer.join().expect("the writer thread");

    // The last process catches up with everything written.
    let mut tidewater = sandbox.start_run(&config);
    let lake = LakeReader::new(&sandbox.lake()).wait_for_seqs(
        corpus.seqs(),
        &mut tidewater,
        RUN_ONCE_TIMEOUT,
    );
    terminate(tidewater, "TERM");
    let report = lake.seq_report(corpus.seqs());
    println!(
        "5 rolling updates: {} rows for {} records, {} duplicate rows, {deadlines_passed} drains past their deadline",
        lake.row_count(),
        corpus.records,
        report.duplicate_rows()
    );
    assert!(report.missing.is_empty(), "{}", report.describe());
    assert!(report.unexpected.is_empty(), "{}", report.describe());
    if deadlines_passed == 0 {
        assert_eq!(
            report.duplicate_rows(),
            0,
            "every drain finished in time, so nothing may arrive twice: {}",
            report.describe()
        );
    }
    let file_len = fs::metadata(&log).expect("log").len();
    assert!(
        checkpoint_offsets(&read_checkpoints(&sandbox)).contains(&file_len),
        "the checkpoint commits the whole file: {}",
        read_checkpoints(&sandbox)
    );
}

/// One process per data dir. By default a second one fails at once; with
/// `lock_wait` it waits for the first to exit (a rolling update whose old
/// process is still draining) and then carries on from its checkpoint.
#[test]
fn a_second_process_fails_or_waits_for_the_data_dir() {
    let sandbox = Sandbox::new();
    let first_corpus = generate(&sandbox.logs().join("app.log"), "cri", 1_000, &[]);
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let mut first = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_seqs(first_corpus.seqs(), &mut first, LAKE_TIMEOUT);

    let refused = sandbox.run_once(&config);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("in use by another tidewater process"),
        "{}",
        refused.stderr
    );

    let text = fs::read_to_string(&config).expect("config");
    let waiting_config = sandbox.write_file("waiting.toml", format!("lock_wait = \"60s\"\n{text}"));
    let mut second = sandbox.start_run(&waiting_config);
    let said = poll_until(Duration::from_secs(20), || {
        second.assert_running();
        second.stderr().contains("waiting for it to exit")
    });
    assert!(
        said,
        "the second process should say it waits: {}",
        second.stderr()
    );
    terminate(first, "TERM");
    // Lines logged after the first one exited: only the second can deliver them.
    let more = generate(
        &sandbox.logs().join("more.log"),
        "cri",
        1_000,
        &["--start-seq", "50000"],
    );
    let all = lake.wait_for_seqs(more.seqs(), &mut second, LAKE_TIMEOUT);
    terminate(second, "TERM");
    let report = all.seq_report(first_corpus.seqs());
    assert!(report.missing.is_empty(), "{}", report.describe());
    assert_eq!(
        all.seq_report(more.seqs()).duplicate_rows() + report.duplicate_rows(),
        0,
        "the second process resumed from the first one's checkpoint"
    );
}

/// SIGTERM while waiting for the data dir exits 0 at once: nothing was read.
#[test]
fn sigterm_while_waiting_for_the_data_dir_exits_zero() {
    let sandbox = Sandbox::new();
    generate(&sandbox.logs().join("app.log"), "cri", 100, &[]);
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let mut first = sandbox.start_run(&config);
    let lake = LakeReader::new(&sandbox.lake());
    lake.wait_for_a_file(&mut first, LAKE_TIMEOUT);

    let text = fs::read_to_string(&config).expect("config");
    let waiting_config = sandbox.write_file("waiting.toml", format!("lock_wait = \"60s\"\n{text}"));
    let mut second = sandbox.start_run(&waiting_config);
    let waiting = poll_until(Duration::from_secs(20), || {
        second.assert_running();
        second.stderr().contains("waiting for it to exit")
    });
    assert!(waiting, "{}", second.stderr());
    let stopped = terminate(second, "TERM");
    assert_eq!(stopped.summary().get("records"), 0, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("stopped while waiting"),
        "{}",
        stopped.stderr
    );
    terminate(first, "TERM");
}
