//! The whole flow as a team deploys it: one tidewater reading an access
//! log and an app log into three sinks (the lake on S3 — a real moto
//! server —, BigQuery exactly once — the emulator —, error events on a
//! real RabbitMQ) and `tidewater notify` posting them to a stand-in for
//! Slack. Then both are stopped with SIGTERM and restarted while the logs
//! grow: nothing is lost, nothing is written twice, every error event is
//! in exactly one post, and the counters of both `/metrics` agree.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::alerts::*;
use crate::bigquery::append;
use crate::services::*;
use crate::util::*;

const BUCKET: &str = "flow";
/// The three error messages: numbers differ, fingerprints do not.
const ERRORS: [&str; 3] = [
    "payment failed for order {}",
    "upstream timeout after {} ms",
    "connection refused to 10.0.3.{}",
];

fn access_line(seq: u64) -> String {
    let status = if seq.is_multiple_of(40) { 503 } else { 200 };
    format!(
        "10.1.0.{} - - [03/Dec/2026:08:{:02}:{:02} +0000] \"GET /orders/{seq} HTTP/1.1\" {status} 512 \"-\" \"shop-client/2.1\"\n",
        seq % 200,
        (seq / 60) % 60,
        seq % 60
    )
}

/// An app log line, and whether it is an error event.
fn app_line(seq: u64) -> (String, bool) {
    let error = seq.is_multiple_of(25);
    let body = if error {
        let template = ERRORS[(seq / 25) as usize % ERRORS.len()];
        json!({"level": "error", "msg": template.replace("{}", &seq.to_string()), "seq": seq})
    } else {
        json!({"level": "info", "msg": format!("served request {seq}"), "seq": seq})
    };
    (
        format!(
            "2026-12-03T08:00:{:02}.{:09}Z stdout F {body}\n",
            seq % 60,
            seq
        ),
        error,
    )
}

fn lines(range: std::ops::Range<u64>) -> (String, String, u64) {
    let access: String = range.clone().map(access_line).collect();
    let mut app = String::new();
    let mut errors = 0;
    for seq in range {
        let (line, error) = app_line(seq);
        app.push_str(&line);
        errors += u64::from(error);
    }
    (access, app, errors)
}

fn run_config(moto: &Moto, emu: &BqEmulator, exchange: &str, queue: &str, port: u16) -> String {
    format!(
        r##"data_dir = "state"
shutdown_timeout = "30s"
checkpoint_interval = "500ms"

[api]
address = "127.0.0.1:{port}"

[[columns]]
name = "seq"
type = "INTEGER"

[sources.access]
type = "tail"
include = ["logs/access.log"]
format = "text"
parser = "nginx"
read_from = "beginning"

[sources.app]
type = "tail"
include = ["logs/app.log"]
format = "cri"
read_from = "beginning"

[batch]
max_rows = 400
max_age = "300ms"

[sinks.lake]
type = "parquet"
url = "s3://{BUCKET}/lake"
{moto}
[sinks.warehouse]
type = "bigquery"
project = "{BQ_PROJECT}"
dataset = "logs"
table = "flow"
api = "storage_write"
delivery = "exactly_once"
create_table = true
endpoint = "{rest}"
storage_endpoint = "{grpc}"

[sinks.alerts]
type = "amqp"
url = {amqp}
exchange = {exchange}
queue = {queue}
binding_key = "#"
"##,
        moto = moto.sink_settings(),
        rest = emu.rest_url(),
        grpc = emu.grpc_url(),
        amqp = toml_str(AMQP_URL),
        exchange = toml_str(exchange),
        queue = toml_str(queue),
    )
}

/// (rows, distinct messages) in BigQuery.
fn in_bigquery(emu: &BqEmulator) -> (i64, i64) {
    let rows = emu.query(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT message) FROM `{BQ_PROJECT}.logs.flow`"
    ));
    let cell = |i: usize| -> i64 {
        rows.first()
            .and_then(|r| r.get(i))
            .and_then(Value::as_str)
            .map_or(-1, |s| s.parse().unwrap_or(-1))
    };
    (cell(0), cell(1))
}

/// (rows, distinct messages) in the lake on S3.
fn in_lake(sandbox: &Sandbox, moto: &Moto, n: u32) -> (usize, usize) {
    let out = sandbox.path(&format!("fetched-{n}"));
    moto.fetch(BUCKET, "lake", &out);
    let lake = read_lake(&out);
    let distinct: std::collections::HashSet<&str> =
        lake.rows().filter_map(|r| r.message.as_deref()).collect();
    (lake.row_count(), distinct.len())
}

/// fingerprint → (first posts, events covered) of every post Slack took.
fn posts_by_fingerprint(slack: &FakeSlack) -> BTreeMap<String, (u64, u64)> {
    let mut by = BTreeMap::new();
    for post in slack.posted() {
        let context = post["blocks"][2]["elements"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let fingerprint = context
            .split("fingerprint `")
            .nth(1)
            .and_then(|f| f.split('`').next())
            .unwrap_or_else(|| panic!("a post without a fingerprint: {post}"))
            .to_string();
        let entry = by.entry(fingerprint).or_insert((0, 0));
        let count = count_of(&post);
        if !post["text"]
            .as_str()
            .unwrap_or_default()
            .contains("more like this")
        {
            entry.0 += 1;
        }
        entry.1 += count;
    }
    by
}

#[test]
fn the_seed_flow_delivers_everything_once_and_alerts_once_across_restarts() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    moto.create_bucket(BUCKET);
    let emu = BqEmulator::start(&sandbox);
    let slack = FakeSlack::start();
    let (exchange, queue) = (unique("flow"), unique("flow"));
    let (run_port, notify_port) = (free_port(), free_port());
    let cfg = sandbox.write_file(
        "tidewater.toml",
        run_config(&moto, &emu, &exchange, &queue, run_port),
    );
    let notify_cfg = notify_config(
        &sandbox,
        &exchange,
        &queue,
        &format!("group_window = \"2s\"\n[notify.api]\naddress = \"127.0.0.1:{notify_port}\"\n"),
    );
    let start_run = || sandbox.spawn_with_env(&["run", "--config", path_str(&cfg)], &s3_env());

    // Phase 1: half of the logs, delivered everywhere.
    let (access, app, errors_1) = lines(0..1000);
    let access_log = sandbox.write_file("logs/access.log", access);
    let app_log = sandbox.write_file("logs/app.log", app);
    let mut run = start_run();
    let mut notify = start_notify(&sandbox, &notify_cfg, &slack);
    wait_for(
        "phase 1 in BigQuery",
        Duration::from_secs(90),
        &mut run,
        || in_bigquery(&emu).1 >= 2000,
    );
    wait_for_all_acked(&queue, &mut notify);
    wait_for(
        "every phase 1 event posted",
        Duration::from_secs(30),
        &mut notify,
        || posted_total(&slack) >= errors_1,
    );
    assert_eq!(in_bigquery(&emu), (2000, 2000));
    assert_eq!(in_lake(&sandbox, &moto, 1), (2000, 2000));
    // Each fingerprint: one first post, then its repeats grouped.
    let by = posts_by_fingerprint(&slack);
    assert_eq!(by.len(), 3, "{by:?}");
    for (fingerprint, (first, _)) in &by {
        assert_eq!(*first, 1, "{fingerprint}: one first post in {by:?}");
    }
    assert_eq!(by.values().map(|v| v.1).sum::<u64>(), errors_1);
    // Both /metrics agree with each other and with Slack.
    let run_metrics = Scrape::take(run_port);
    let notify_metrics = Scrape::take(notify_port);
    let published = run_metrics.get(
        "tidewater_sink_records_delivered_total",
        &[("sink", "alerts")],
    );
    assert_eq!(published, errors_1 as f64);
    assert_eq!(
        run_metrics.get(
            "tidewater_sink_records_delivered_total",
            &[("sink", "warehouse")]
        ),
        2000.0
    );
    assert_eq!(
        notify_metrics.get("tidewater_notify_events_total", &[]),
        published
    );
    assert_eq!(
        notify_metrics.get("tidewater_notify_acked_messages_total", &[]),
        published
    );
    assert_eq!(
        notify_metrics.get("tidewater_notify_posts_total", &[]),
        slack.posted().len() as f64
    );

    // Phase 2: the logs grow; both are stopped with SIGTERM mid-stream and
    // started again.
    let (access, app, errors_2) = lines(1000..3000);
    let (access, app) = (access.into_bytes(), app.into_bytes());
    let half = |b: &[u8]| b.len() / 2;
    append(&access_log, &access[..half(&access)]);
    append(&app_log, &app[..half(&app)]);
    std::thread::sleep(Duration::from_millis(400));
    run.signal("TERM");
    notify.signal("TERM");
    run.finish(Duration::from_secs(60)).assert_success();
    let summary = stop_notify(notify);
    println!("notify before the restart: {summary}");
    // Lines cut at half a line are completed by the rest.
    append(&access_log, &access[half(&access)..]);
    append(&app_log, &app[half(&app)..]);
    let mut run = start_run();
    let mut notify = start_notify(&sandbox, &notify_cfg, &slack);
    wait_for(
        "everything in BigQuery",
        Duration::from_secs(120),
        &mut run,
        || in_bigquery(&emu).1 >= 6000,
    );
    wait_for_all_acked(&queue, &mut notify);
    let errors = errors_1 + errors_2;
    wait_for(
        "every event posted",
        Duration::from_secs(30),
        &mut notify,
        || posted_total(&slack) >= errors,
    );
    run.signal("TERM");
    run.finish(Duration::from_secs(60)).assert_success();
    stop_notify(notify);

    assert_eq!(in_bigquery(&emu), (6000, 6000), "BigQuery: exactly once");
    assert_eq!(
        in_lake(&sandbox, &moto, 2),
        (6000, 6000),
        "the lake: exactly once"
    );
    let by = posts_by_fingerprint(&slack);
    assert_eq!(
        by.values().map(|v| v.1).sum::<u64>(),
        errors,
        "every error event in exactly one post: {by:?}"
    );
    assert_eq!(queue_len(&format!("{queue}.dead")), 0);
    delete_queues(&queue);
}
