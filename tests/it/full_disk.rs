//! A full data disk, on a real small filesystem (a tmpfs the test mounts):
//! staging files, checkpoints and dead letters that cannot be written are
//! retried (staging files shown in `/readyz`), good rows never go to the dead
//! letter, and everything arrives once the disk has room again, without a
//! restart.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::services::*;
use crate::util::*;

/// A tmpfs of a fixed size mounted on a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        fs::create_dir_all(dir).expect("cannot create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            panic!(
                "this test needs a small real filesystem and mounts a {size} tmpfs on {} itself, \
                 which takes root (CI and the development machines run as root): mount failed: {why}",
                dir.display()
            );
        }
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Give the filesystem more (or less) room, as an operator would.
    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("cannot run mount");
        assert!(status.success(), "remounting {} failed", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fill the filesystem holding `dir` with a ballast file until it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = fs::File::create(&path).expect("cannot create the ballast file");
    let block = vec![0u8; 64 << 10];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    // The last partial block may have left a little room: take it too.
    while file.write_all(&[0u8; 512]).is_ok() {}
    while file.write_all(&[0u8]).is_ok() {}
    path
}

fn dead_letter_files(sandbox: &Sandbox) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect_parquet_files(&sandbox.data_dir().join("dead_letter"), &mut found);
    found
}

#[test]
fn a_full_staging_disk_is_retried_and_everything_arrives_once_it_has_room() {
    let sandbox = Sandbox::new();
    let disk = Tmpfs::mount(&sandbox.data_dir(), "2m");
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 60_000, &[]);
    let api = free_port();
    let mut config = Config::relative("cri");
    config.api_address = Some(format!("127.0.0.1:{api}"));
    // The staging files live in the data dir: uncompressed, 60,000 records
    // outgrow its 2 MiB long before a file is due.
    config.sink_extra =
        "zstd_level = 0\ntarget_file_size = \"64MiB\"\nmax_file_age = \"3s\"\n".into();
    let config = sandbox.write_config(&config);
    let mut tidewater = sandbox.start_run(&config);

    let failing = wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(60),
        "the sink failing on the full disk",
        |code, body| {
            code == 503
                && body["components"]["sinks.lake"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("No space left on device"))
        },
    );
    println!("while the disk was full, /readyz said: {failing}");
    // A few more seconds full: retries, never the dead letter.
    std::thread::sleep(Duration::from_secs(3));
    tidewater.assert_running();
    assert_eq!(dead_letter_files(&sandbox), Vec::<PathBuf>::new());

    disk.resize("256m");
    let lake = LakeReader::new(&sandbox.lake()).wait_for_seqs(
        corpus.seqs(),
        &mut tidewater,
        Duration::from_secs(120),
    );
    let report = lake.seq_report(corpus.seqs());
    assert!(report.missing.is_empty(), "{}", report.describe());
    let len = fs::metadata(&corpus.path).expect("the log").len();
    wait_for_checkpoint(&sandbox, len, &mut tidewater, Duration::from_secs(120));
    wait_for_readyz(
        api,
        &mut tidewater,
        Duration::from_secs(30),
        "the sink healthy again",
        |code, _| code == 200,
    );

    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(60));
    finished.assert_success();
    let summary = finished.summary();
    assert_eq!(summary.get("rows_dead_lettered"), 0);
    assert!(summary.get("sink_retries") > 0, "the full disk was retried");
    assert_eq!(dead_letter_files(&sandbox), Vec::<PathBuf>::new());
    println!(
        "{} rows for {} records ({} duplicates from batches given up on the full disk)",
        lake.row_count(),
        corpus.records,
        report.duplicate_rows()
    );
}

#[test]
fn a_full_data_dir_holds_the_checkpoint_back_but_delivery_goes_on() {
    let sandbox = Sandbox::new();
    let _disk = Tmpfs::mount(&sandbox.data_dir(), "1m");
    let first = generate(&sandbox.path("source/first.log"), "cri", 2_000, &[]);
    let log = sandbox.logs().join("app.log");
    fs::copy(&first.path, &log).expect("copy the first part");
    let config = sandbox.write_config(&Config::relative("cri"));
    let mut tidewater = sandbox.start_run(&config);
    let first_len = fs::metadata(&log).expect("the log").len();
    wait_for_checkpoint(
        &sandbox,
        first_len,
        &mut tidewater,
        Duration::from_secs(120),
    );

    // The data dir is full: checkpoints cannot be written.
    let ballast = fill(&sandbox.data_dir());
    let second = generate(
        &sandbox.path("source/second.log"),
        "cri",
        2_000,
        &["--start-seq", "2000"],
    );
    let mut out = fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open the log");
    out.write_all(&fs::read(&second.path).expect("the second part"))
        .expect("append");
    drop(out);
    let all = first.seqs().start..second.seqs().end;
    LakeReader::new(&sandbox.lake()).wait_for_seqs(
        all.clone(),
        &mut tidewater,
        Duration::from_secs(60),
    );
    // Delivered, but the checkpoint could not move (and nothing crashed).
    std::thread::sleep(Duration::from_secs(2));
    tidewater.assert_running();
    let offsets = checkpoint_offsets(&read_checkpoints(&sandbox));
    assert_eq!(offsets, vec![first_len], "the checkpoint on the full disk");
    assert!(
        tidewater.stderr().contains("cannot write the checkpoint"),
        "the failing checkpoint is logged\n{}",
        tail(&tidewater.stderr(), 3000)
    );

    // Room again: the checkpoint catches up without a restart.
    fs::remove_file(&ballast).expect("remove the ballast");
    let len = fs::metadata(&log).expect("the log").len();
    wait_for_checkpoint(&sandbox, len, &mut tidewater, Duration::from_secs(120));
    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(60));
    finished.assert_success();
    let lake = read_lake(&sandbox.lake());
    lake.assert_exactly_once(all);
}

#[test]
fn a_dead_letter_on_a_full_disk_is_retried_until_there_is_room() {
    let sandbox = Sandbox::new();
    let _disk = Tmpfs::mount(&sandbox.data_dir(), "1m");
    let emu = BqEmulator::start(&sandbox);
    // 200 lines, four of which the table refuses (BigQuery's `invalid`).
    let cfg = crate::bigquery::table_with_an_integer_status(&sandbox, &emu, &emu.rest_url());
    let path = sandbox.write_file("tidewater.toml", cfg);
    let ballast = fill(&sandbox.data_dir());
    let mut run = sandbox.spawn(&["run", "--once", "--config", path_str(&path)]);
    assert!(
        poll_until(Duration::from_secs(60), || run
            .stderr()
            .contains("cannot write the dead letter; will retry")),
        "{}",
        tail(&run.stderr(), 3000)
    );
    assert!(
        run.stderr().contains("No space left on device"),
        "{}",
        tail(&run.stderr(), 3000)
    );
    std::thread::sleep(Duration::from_secs(2));
    run.assert_running();
    fs::remove_file(&ballast).expect("remove the ballast");
    let finished = run.finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();
    let summary = finished.summary();
    assert_eq!(summary.get("rows_dead_lettered"), 4);
    assert_eq!(summary.get("rows_delivered"), 196);
    let dead = crate::bigquery::dead_letters(&sandbox);
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(dead.iter().all(|(status, _)| status == "n/a"), "{dead:?}");
}
