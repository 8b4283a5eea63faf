//! Log rotation while `tidewater run` tails: rename+create, copytruncate and
//! delete-while-open must neither lose nor duplicate records.
//!
//! The test itself is the application: it appends lines of a generated corpus
//! to `logs/app.log` at a steady pace (whole lines per write, like a logger)
//! and rotates the file the way logrotate or the kubelet would, while the
//! tidewater process tails it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::util::*;

/// Lines per write; the pace is one write per [`PACE`].
const CHUNK_LINES: usize = 50;
const PACE: Duration = Duration::from_millis(20);

#[test]
fn rename_rotation_loses_and_duplicates_nothing() {
    const SEGMENTS: usize = 4;
    const PER_SEGMENT: usize = 1_500;
    let sandbox = Sandbox::new();
    let corpus = generate(
        &sandbox.path("corpus/app.cri"),
        "cri",
        (SEGMENTS * PER_SEGMENT) as u64,
        &["--partial-share", "0"],
    );
    let lines = corpus.lines();
    assert_eq!(
        lines.len(),
        SEGMENTS * PER_SEGMENT,
        "one line per record without P/F splits"
    );

    // `*.log` does not match the rotated `app.log.N`: tidewater must keep
    // reading a renamed file it already has open.
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    let live = sandbox.logs().join("app.log");

    for (i, segment) in lines.chunks(PER_SEGMENT).enumerate() {
        let first_seq = (i * PER_SEGMENT) as i64;
        let (head, rest) = segment.split_at(PER_SEGMENT / 3);
        write_paced(&live, head);
        // The new file has been found and is being read...
        lake.wait_for_seqs(first_seq..first_seq + 1, &mut tidewater, LAKE_TIMEOUT);
        // ...and what is written right before the rename must still arrive.
        write_paced(&live, rest);
        if i + 1 < SEGMENTS {
            fs::rename(&live, sandbox.logs().join(format!("app.log.{}", i + 1)))
                .expect("cannot rotate app.log by renaming it");
        }
    }

    lake.wait_for_seqs(corpus.seqs(), &mut tidewater, LAKE_TIMEOUT);
    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(30));
    finished.assert_success();
    let summary = finished.summary();

    let lake = lake.scan();
    lake.assert_exactly_once(corpus.seqs());
    assert_eq!(
        summary.get("records"),
        corpus.records,
        "records read in {summary:?}"
    );
    assert!(
        summary.get("files") >= SEGMENTS as u64,
        "{SEGMENTS} files were written, the summary counts {}",
        summary.get("files")
    );
}

#[test]
fn copytruncate_restarts_at_the_beginning() {
    let sandbox = Sandbox::new();
    let part1 = generate(
        &sandbox.path("corpus/part1.cri"),
        "cri",
        3_000,
        &["--partial-share", "0"],
    );
    // A different seed, as a later stretch of a real log has different times.
    let part2 = generate(
        &sandbox.path("corpus/part2.cri"),
        "cri",
        1_000,
        &["--partial-share", "0", "--start-seq", "3000", "--seed", "7"],
    );

    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    let live = sandbox.logs().join("app.log");

    write_paced(&live, &part1.lines());
    lake.wait_for_seqs(part1.seqs(), &mut tidewater, LAKE_TIMEOUT);

    // logrotate's copytruncate: copy the file away (to a name the glob does
    // not match), then truncate it in place; the application keeps appending.
    fs::copy(&live, sandbox.logs().join("app.log.1")).expect("cannot copy app.log");
    OpenOptions::new()
        .write(true)
        .open(&live)
        .and_then(|f| f.set_len(0))
        .expect("cannot truncate app.log");
    write_paced(&live, &part2.lines());

    lake.wait_for_seqs(
        part1.start_seq as i64..(part2.start_seq + part2.records) as i64,
        &mut tidewater,
        LAKE_TIMEOUT,
    );
    tidewater.signal("TERM");
    tidewater.finish(Duration::from_secs(30)).assert_success();

    let lake = lake.scan();
    lake.assert_exactly_once(part1.seqs().start..part2.seqs().end);
}

#[test]
fn deleted_file_is_read_to_its_end() {
    let sandbox = Sandbox::new();
    let part1 = generate(
        &sandbox.path("corpus/part1.cri"),
        "cri",
        2_000,
        &["--partial-share", "0"],
    );
    let part2 = generate(
        &sandbox.path("corpus/part2.cri"),
        "cri",
        500,
        &["--partial-share", "0", "--start-seq", "2000", "--seed", "7"],
    );

    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    let live = sandbox.logs().join("app.log");

    let lines = part1.lines();
    let (head, rest) = lines.split_at(100);
    write_paced(&live, head);
    lake.wait_for_seqs(0..1, &mut tidewater, LAKE_TIMEOUT);
    // Written, then deleted at once while tidewater has the file open.
    write_paced(&live, rest);
    fs::remove_file(&live).expect("cannot delete app.log");
    write_paced(&live, &part2.lines());

    lake.wait_for_seqs(0..2_500, &mut tidewater, LAKE_TIMEOUT);
    tidewater.signal("TERM");
    tidewater.finish(Duration::from_secs(30)).assert_success();
    lake.scan().assert_exactly_once(0..2_500);
}

/// Appends `lines` to `path` (creating it), [`CHUNK_LINES`] whole lines per
/// write, one write per [`PACE`]: a steadily logging application.
fn write_paced(path: &Path, lines: &[Vec<u8>]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {} for appending: {e}", path.display()));
    for chunk in lines.chunks(CHUNK_LINES) {
        file.write_all(&chunk.concat())
            .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
        std::thread::sleep(PACE);
    }
}

/// A file rotated while tidewater was stopped, after lines were appended to
/// it: the next start finds it under its new name (no glob matches it) and
/// delivers the rest from the checkpoint; the new file is read from the start.
#[test]
fn a_file_rotated_while_stopped_is_finished_from_the_checkpoint() {
    let sandbox = Sandbox::new();
    let part1 = generate(
        &sandbox.path("corpus/part1.cri"),
        "cri",
        1_000,
        &["--partial-share", "0"],
    );
    let part2 = generate(
        &sandbox.path("corpus/part2.cri"),
        "cri",
        700,
        &["--partial-share", "0", "--start-seq", "1000", "--seed", "8"],
    );
    let part3 = generate(
        &sandbox.path("corpus/part3.cri"),
        "cri",
        300,
        &["--partial-share", "0", "--start-seq", "1700", "--seed", "9"],
    );
    let config = sandbox.write_config(&Config::absolute(&sandbox, "cri"));
    let live = sandbox.logs().join("app.log");
    fs::write(&live, part1.lines().concat()).expect("write part 1");
    sandbox.run_once_ok(&config);

    // While stopped: more lines, then kubelet-style rotation.
    let mut f = OpenOptions::new()
        .append(true)
        .open(&live)
        .expect("open app.log");
    f.write_all(&part2.lines().concat()).expect("append part 2");
    drop(f);
    let rotated = sandbox.logs().join("app.log.20261122-030000");
    fs::rename(&live, &rotated).expect("rotate");
    fs::write(&live, part3.lines().concat()).expect("write part 3");

    let (_, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("records"), 1_000, "{summary:?}");
    read_lake(&sandbox.lake()).assert_exactly_once(0..2_000);
}

/// An application that rotates faster than `rotate_wait`: with
/// `rotate_wait = "1h"` every rotated file would stay open for an hour, so
/// `max_rotated_files = 2` closes the idlest ones that are read to their end
/// (counted) and the number of open files stays bounded. Nothing is lost or
/// duplicated.
#[test]
fn rotated_files_past_max_rotated_files_are_closed_once_read() {
    const GENERATIONS: usize = 6;
    const PER_GENERATION: usize = 300;
    let sandbox = Sandbox::new();
    let corpus = generate(
        &sandbox.path("corpus/app.cri"),
        "cri",
        (GENERATIONS * PER_GENERATION) as u64,
        &["--partial-share", "0"],
    );
    let lines = corpus.lines();
    let api = crate::services::free_port();
    let mut config = Config::absolute(&sandbox, "cri");
    config.api_address = Some(format!("127.0.0.1:{api}"));
    let toml = config.to_toml().replace(
        "read_from = \"beginning\"\n",
        "read_from = \"beginning\"\nrotate_wait = \"1h\"\nmax_rotated_files = 2\n",
    );
    assert!(toml.contains("max_rotated_files"), "{toml}");
    let config = sandbox.write_file("tidewater.toml", toml);
    let mut tidewater = sandbox.start_run(&config);
    let mut lake = LakeReader::new(&sandbox.lake());
    let live = sandbox.logs().join("app.log");

    // Five generations are renamed away after they were read; the sixth stays.
    for (i, generation) in lines.chunks(PER_GENERATION).enumerate() {
        let first = (i * PER_GENERATION) as i64;
        write_paced(&live, generation);
        lake.wait_for_seqs(
            first..first + PER_GENERATION as i64,
            &mut tidewater,
            LAKE_TIMEOUT,
        );
        if i + 1 < GENERATIONS {
            fs::rename(&live, sandbox.logs().join(format!("app.log.{i}")))
                .expect("cannot rotate app.log by renaming it");
        }
    }
    // The live file and at most two rotated ones; three rotated files were
    // closed before their hour was up.
    let source = [("source", "app")];
    let mut last = None;
    let settled = poll_until(Duration::from_secs(30), || {
        let scrape = crate::services::Scrape::take(api);
        let open = scrape.get("tidewater_source_open_files", &source);
        let early = scrape.get("tidewater_source_rotated_files_closed_early_total", &source);
        last = Some((open, early));
        open == 3.0 && early == 3.0
    });
    assert!(
        settled,
        "(open files, closed early) = {last:?}, expected (3, 3)\n{}",
        tail(&tidewater.stderr(), 3000)
    );
    let scrape = crate::services::Scrape::take(api);
    assert_eq!(scrape.get("tidewater_source_waiting_files", &source), 0.0);
    assert_eq!(
        scrape.get("tidewater_source_files_lost_total", &source),
        0.0
    );

    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(30));
    finished.assert_success();
    lake.scan().assert_exactly_once(corpus.seqs());
}
