//! `delivery = "exactly_once"` against a real emulator (bqemulator's
//! COMMITTED streams answer ALREADY_EXISTS / OUT_OF_RANGE as BigQuery does):
//! SIGKILLs at random moments while the log grows, a kill timed between an
//! append's answer and the checkpoint (the fault hook), rotation, a
//! rejected row, an emulator frozen with SIGSTOP. Each ends with
//! `COUNT(*) = COUNT(DISTINCT seq) = records written`.

use std::time::{Duration, Instant};

use crate::bigquery::{append, config, dead_letters_of, seq_stats};
use crate::services::*;
use crate::util::*;

/// The sink keys of an exactly-once Storage Write sink on `emu`.
fn exactly_once(emu: &BqEmulator, delivery: &str, extra: &str) -> String {
    format!(
        "table = \"container_log\"\napi = \"storage_write\"\ndelivery = \"{delivery}\"\n\
         create_table = true\nendpoint = \"{}\"\nstorage_endpoint = \"{}\"\n{extra}",
        emu.rest_url(),
        emu.grpc_url()
    )
}

/// Wait until the table holds `n` distinct records; the final
/// (rows, distinct, min, max).
fn wait_for(emu: &BqEmulator, n: i64, timeout: Duration) -> (i64, i64, i64, i64) {
    let _ = poll_until(timeout, || seq_stats(emu, "container_log").1 >= n);
    seq_stats(emu, "container_log")
}

/// A small deterministic generator (the kill moments of a run are the same
/// on every machine).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn eight_sigkills_while_the_log_grows_leave_every_record_exactly_once() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let total = 12_000;
    let corpus = generate(&sandbox.path("corpus.log"), "cri", total, &["--seed", "31"]);
    let lines = corpus.lines();
    let log = sandbox.write_file("logs/app.log", "");
    let cfg = config(
        "cri",
        &exactly_once(&emu, "exactly_once", ""),
        "checkpoint_interval = \"700ms\"\n",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);

    // The writer appends 48 chunks while tidewater is killed 8 times.
    let chunks: Vec<Vec<u8>> = lines
        .chunks(lines.len().div_ceil(48))
        .map(|c| c.concat())
        .collect();
    let mut rng = Lcg(0x5eed_0018);
    let mut kill_at: Vec<usize> = (0..8).map(|_| 4 + rng.below(40) as usize).collect();
    kill_at.sort_unstable();
    let mut run = sandbox.start_run(&path);
    let mut kills = 0;
    let mut stderr = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        append(&log, chunk);
        std::thread::sleep(Duration::from_millis(100 + rng.below(150)));
        while kill_at.first() == Some(&i) {
            kill_at.remove(0);
            run.assert_running();
            run.signal("KILL");
            let killed = run.finish(Duration::from_secs(10));
            stderr.push_str(&killed.stderr);
            kills += 1;
            run = sandbox.start_run(&path);
        }
    }
    assert_eq!(kills, 8);
    let stats = wait_for(&emu, total as i64, Duration::from_secs(120));
    run.signal("TERM");
    let last = run.finish(Duration::from_secs(30));
    last.assert_success();
    stderr.push_str(&last.stderr);
    assert_eq!(
        stats,
        (total as i64, total as i64, 0, total as i64 - 1),
        "(COUNT(*), COUNT(DISTINCT seq), MIN, MAX) after 8 SIGKILLs\n{}\n--- emulator ---\n{}",
        tail(&stderr, 4000),
        tail(&emu.logs(), 5000)
    );
    // The kills interrupted deliveries: restarts had streams to resolve.
    assert!(
        stderr.contains("exactly-once: resolved a stream"),
        "no restart resolved a stream: {}",
        tail(&stderr, 4000)
    );
}

#[test]
fn a_kill_between_the_answer_and_the_checkpoint_writes_nothing_twice() {
    for (delivery, duplicates_expected) in [("at_least_once", true), ("exactly_once", false)] {
        let sandbox = Sandbox::new();
        let emu = BqEmulator::start(&sandbox);
        generate(
            &sandbox.path("logs/app.log"),
            "cri",
            3000,
            &["--seed", "32"],
        );
        // No checkpoint before the kill: every row is read again.
        let cfg = config(
            "cri",
            &exactly_once(&emu, delivery, "concurrency = 1\n"),
            "checkpoint_interval = \"1h\"\n",
        );
        let path = sandbox.write_file("tidewater.toml", cfg);
        let killed = sandbox
            .spawn_with_env(
                &["run", "--config", path_str(&path), "--once"],
                &[("TIDEWATER_FAULT_KILL_AFTER_APPENDS", "2")],
            )
            .finish(Duration::from_secs(60));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&killed.status),
            Some(9),
            "{delivery}: the fault hook should have killed the process: {}",
            killed.stderr
        );
        let (landed, _, _, _) = seq_stats(&emu, "container_log");
        assert_eq!(
            landed,
            2 * 700,
            "{delivery}: two appends of 700 rows landed"
        );

        let (finished, _) = sandbox.run_once_ok(&path);
        let (rows, distinct, min, max) = seq_stats(&emu, "container_log");
        assert_eq!((distinct, min, max), (3000, 0, 2999), "{delivery}");
        if duplicates_expected {
            // The control: the _default stream writes the landed rows again.
            assert_eq!(rows, 3000 + 1400, "{delivery}");
        } else {
            assert_eq!(rows, 3000, "{delivery}: {}", finished.stderr);
            assert!(
                finished.stderr.contains("\"rows_in_flight_landed\":1400"),
                "the restart found the two landed appends: {}",
                finished.stderr
            );
        }
    }
}

#[test]
fn a_file_rotated_mid_stream_and_a_kill_lose_and_repeat_nothing() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    // One line per record: the test cuts the corpus by lines.
    let corpus = generate(
        &sandbox.path("corpus.log"),
        "cri",
        6000,
        &["--seed", "33", "--partial-share", "0"],
    );
    let lines = corpus.lines();
    let log = sandbox.write_file("logs/app.log", lines[..3000].concat());
    let cfg = config(
        "cri",
        &exactly_once(&emu, "exactly_once", ""),
        "checkpoint_interval = \"500ms\"\n",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let run = sandbox.start_run(&path);
    assert!(
        poll_until(Duration::from_secs(60), || seq_stats(&emu, "container_log")
            .1
            >= 1000),
        "the first rows did not arrive: {}",
        run.stderr()
    );
    // logrotate's rename + create: the old file (`app.log.1` is outside
    // the glob) is read to its end, the new one from its start.
    std::fs::rename(&log, sandbox.path("logs/app.log.1")).expect("rotate");
    sandbox.write_file("logs/app.log", lines[3000..4500].concat());
    std::thread::sleep(Duration::from_millis(300));
    run.signal("KILL");
    let killed = run.finish(Duration::from_secs(10));
    append(&log, &lines[4500..].concat());
    let run = sandbox.start_run(&path);
    let stats = wait_for(&emu, 6000, Duration::from_secs(90));
    run.signal("TERM");
    let finished = run.finish(Duration::from_secs(30));
    finished.assert_success();
    assert_eq!(
        stats,
        (6000, 6000, 0, 5999),
        "{}\n--- killed run ---\n{}\n--- emulator ---\n{}",
        finished.stderr,
        killed.stderr,
        tail(&emu.logs(), 5000)
    );
}

#[test]
fn a_rejected_row_goes_to_the_dead_letter_and_the_stream_goes_on() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    // Records of 4-40 KB among short ones: over max_request_bytes alone.
    generate(
        &sandbox.path("logs/app.log"),
        "cri",
        2000,
        &["--seed", "34", "--long-share", "0.003"],
    );
    let cfg = config(
        "cri",
        &exactly_once(&emu, "exactly_once", "max_request_bytes = \"4KiB\"\n"),
        "",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let (finished, summary) = sandbox.run_once_ok(&path);
    let dead = dead_letters_of(&sandbox, "warehouse");
    assert_eq!(summary.get("rows_dead_lettered"), dead.len() as u64);
    assert!(!dead.is_empty(), "{}", finished.stderr);
    for reason in &dead {
        assert!(reason.contains("max_request_bytes"), "{reason}");
    }
    let (rows, distinct, _, _) = seq_stats(&emu, "container_log");
    assert_eq!(rows, distinct);
    assert_eq!(rows as u64 + dead.len() as u64, 2000);
}

#[test]
fn an_emulator_frozen_for_20_seconds_costs_no_duplicate() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start(&sandbox);
    let corpus = generate(
        &sandbox.path("corpus.log"),
        "cri",
        8000,
        &["--seed", "35", "--partial-share", "0"],
    );
    let lines = corpus.lines();
    let log = sandbox.write_file("logs/app.log", lines[..2000].concat());
    let cfg = config(
        "cri",
        &exactly_once(&emu, "exactly_once", "request_timeout = \"5s\"\n"),
        "[api]\naddress = \"127.0.0.1:0\"\n",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let run = sandbox.start_run(&path);
    assert_eq!(wait_for(&emu, 2000, Duration::from_secs(60)).1, 2000);

    // Frozen mid-append: answers never come, requests time out; whether an
    // append landed is unknown until the emulator answers again.
    append(&log, &lines[2000..5000].concat());
    std::thread::sleep(Duration::from_millis(150));
    let pid = emu.pid();
    send_signal(pid, "STOP");
    let frozen = Instant::now();
    append(&log, &lines[5000..].concat());
    assert!(
        poll_until(Duration::from_secs(20), || run
            .stderr()
            .contains("delivery failed; retrying")),
        "no failed delivery while frozen: {}",
        run.stderr()
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(frozen.elapsed()));
    send_signal(pid, "CONT");
    let stats = wait_for(&emu, 8000, Duration::from_secs(120));
    run.signal("TERM");
    let finished = run.finish(Duration::from_secs(30));
    finished.assert_success();
    assert_eq!(
        stats,
        (8000, 8000, 0, 7999),
        "{}\n--- emulator ---\n{}",
        finished.stderr,
        tail(&emu.logs(), 5000)
    );
}

#[test]
fn a_quota_on_new_streams_degrades_to_at_least_once_loudly() {
    let sandbox = Sandbox::new();
    let emu = BqEmulator::start_refusing_write_streams(&sandbox);
    generate(
        &sandbox.path("logs/app.log"),
        "cri",
        1500,
        &["--seed", "36"],
    );
    let port = free_port();
    let cfg = config(
        "cri",
        &exactly_once(&emu, "exactly_once", ""),
        &format!("[api]\naddress = \"127.0.0.1:{port}\"\n"),
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let mut run = sandbox.start_run(&path);
    let stats = wait_for(&emu, 1500, Duration::from_secs(60));
    run.assert_running();
    let degraded = Scrape::take(port).get(
        "tidewater_sink_degraded_rows_total",
        &[("sink", "warehouse")],
    );
    run.signal("TERM");
    let finished = run.finish(Duration::from_secs(30));
    finished.assert_success();
    // Nothing is lost; the rows went through _default, counted.
    assert_eq!(stats, (1500, 1500, 0, 1499), "{}", finished.stderr);
    assert_eq!(degraded, 1500.0);
    assert!(
        finished
            .stderr
            .contains("exactly-once DEGRADED to at-least-once"),
        "{}",
        finished.stderr
    );
}

#[test]
fn exactly_once_needs_the_storage_write_api() {
    let sandbox = Sandbox::new();
    let cfg = config(
        "cri",
        "table = \"t\"\ndelivery = \"exactly_once\"\nendpoint = \"http://127.0.0.1:9\"\n",
        "",
    );
    let path = sandbox.write_file("tidewater.toml", cfg);
    let finished = sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(Duration::from_secs(30));
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("sinks.warehouse.delivery: \"exactly_once\" needs api = \"storage_write\""),
        "{}",
        finished.stderr
    );
}
