//! Error events through a real RabbitMQ (127.0.0.1:5672, guest/guest) to a
//! local HTTP server standing in for Slack's webhook, which records every
//! request and answers as each test scripts it.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};

use crate::services::free_port;
use crate::util::*;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

// ---------------------------------------------------------------------------
// RabbitMQ from the test's side
// ---------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the test")
}

/// Names no other test (or earlier run) uses.
pub fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("tw-test.{what}.{}.{nanos}", std::process::id())
}

async fn connect() -> Connection {
    Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable at 127.0.0.1:5672 as guest/guest ({e}). Start it with \
                 `rabbitmq-server -detached` (install: `apt-get install rabbitmq-server`); \
                 `bash scripts/test.sh` does this when it is missing"
            )
        })
}

/// Messages ready in `queue` (0 if it does not exist).
pub(crate) fn queue_len(queue: &str) -> u32 {
    queue_state(queue).map_or(0, |(messages, _)| messages)
}

/// Consumers of `queue` (0 if it does not exist). `tidewater notify`
/// declares and binds its queue before it consumes, so a consumer means an
/// event published now is routed to it.
fn consumer_count(queue: &str) -> u32 {
    queue_state(queue).map_or(0, |(_, consumers)| consumers)
}

/// (messages ready, consumers) of `queue`, through a passive declare;
/// `None` if it does not exist.
fn queue_state(queue: &str) -> Option<(u32, u32)> {
    runtime().block_on(async {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let state = q.ok().map(|q| (q.message_count(), q.consumer_count()));
        let _ = conn.close(200, "bye".into()).await;
        state
    })
}

/// `(ready, unacknowledged)` messages of `queue`, as the broker counts them
/// (`rabbitmqctl list_queues`); `None` if there is no such queue.
fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    let listing = rabbitmqctl(&[
        "list_queues",
        "--no-table-headers",
        "--quiet",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ]);
    listing.lines().find_map(|line| {
        let mut cols = line.split_whitespace();
        if cols.next() != Some(queue) {
            return None;
        }
        let mut count = || cols.next().and_then(|n| n.parse().ok());
        Some((count()?, count()?))
    })
}

/// Every message in `queue`, taken (acked) one by one.
pub fn take_all(queue: &str) -> Vec<Value> {
    runtime().block_on(async {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Ok(Some(msg)) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
        {
            out.push(serde_json::from_slice(&msg.delivery.data).expect("events are JSON"));
        }
        let _ = conn.close(200, "bye".into()).await;
        out
    })
}

/// Publish `events` to `exchange` with confirms.
pub(crate) fn publish(exchange: &str, routing_key: &str, events: &[Value]) {
    runtime().block_on(async {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        for event in events {
            ch.basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(event).expect("json"),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        }
        ch.wait_for_confirms().await.expect("confirms");
        let _ = conn.close(200, "bye".into()).await;
    })
}

pub fn delete_queues(queue: &str) {
    runtime().block_on(async {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        for q in [queue.to_string(), format!("{queue}.dead")] {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "bye".into()).await;
    })
}

pub(crate) fn event(fingerprint: &str, message: &str, seq: u64) -> Value {
    json!({
        "id": format!("test-{seq}"), "timestamp": "2026-11-22T08:00:00Z", "level": "error",
        "message": message, "namespace": "shop", "pod": "web-1", "container": "web", "node": "n1",
        "fields": {"seq": seq}, "fingerprint": fingerprint
    })
}

// ---------------------------------------------------------------------------
// A stand-in for Slack's webhook
// ---------------------------------------------------------------------------

/// A scripted answer: the status and an optional `Retry-After` in seconds.
type Reply = (u16, Option<u64>);

/// Records every request; answers from a script, then 200.
pub(crate) struct FakeSlack {
    port: u16,
    requests: Arc<Mutex<Vec<(u16, Value)>>>,
    pub(crate) script: Arc<Mutex<VecDeque<Reply>>>,
    pub(crate) always: Arc<Mutex<u16>>,
}

impl FakeSlack {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Slack");
        let port = listener.local_addr().expect("addr").port();
        let slack = FakeSlack {
            port,
            requests: Arc::default(),
            script: Arc::default(),
            always: Arc::new(Mutex::new(200)),
        };
        let (requests, script, always) = (
            Arc::clone(&slack.requests),
            Arc::clone(&slack.script),
            Arc::clone(&slack.always),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let (status, retry_after) = script
                    .lock()
                    .expect("script")
                    .pop_front()
                    .unwrap_or((*always.lock().expect("always"), None));
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                requests.lock().expect("requests").push((status, body));
                let extra = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
                let reply = format!(
                    "HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        slack
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/services/T000/B000/secret-webhook-token",
            self.port
        )
    }

    /// Bodies of the requests answered 2xx.
    pub(crate) fn posted(&self) -> Vec<Value> {
        self.requests
            .lock()
            .expect("requests")
            .iter()
            .filter(|(s, _)| *s < 300)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub(crate) fn request_count(&self) -> usize {
        self.requests.lock().expect("requests").len()
    }
}

/// How many events a post stands for: 1, or N of "N more like this".
pub(crate) fn count_of(post: &Value) -> u64 {
    let text = post["text"].as_str().unwrap_or_default();
    match text.split_once(" more like this") {
        Some((n, _)) => n
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a count in {text:?}")),
        None => 1,
    }
}

pub(crate) fn posted_total(slack: &FakeSlack) -> u64 {
    slack.posted().iter().map(count_of).sum()
}

pub(crate) fn notify_config(
    sandbox: &Sandbox,
    exchange: &str,
    queue: &str,
    extra: &str,
) -> std::path::PathBuf {
    sandbox.write_file(
        "notify.toml",
        format!(
            "[notify]\nurl = {}\nexchange = {}\nqueue = {}\nbinding_key = \"#\"\nwebhook_url = \"${{TEST_SLACK_WEBHOOK}}\"\n\
             min_interval = \"50ms\"\nlink_template = \"https://redash.example/queries/7?p_fingerprint={{fingerprint}}\"\n{extra}",
            toml_str(AMQP_URL),
            toml_str(exchange),
            toml_str(queue),
        ),
    )
}

pub(crate) fn start_notify(sandbox: &Sandbox, config: &Path, slack: &FakeSlack) -> Tidewater {
    sandbox.spawn_with_env(
        &["notify", "--config", path_str(config)],
        &[("TEST_SLACK_WEBHOOK", &slack.url())],
    )
}

pub(crate) fn stop_notify(notify: Tidewater) -> Value {
    notify.signal("TERM");
    let finished = notify.finish(Duration::from_secs(30));
    finished.assert_success();
    assert!(
        !finished.stderr.contains("secret-webhook-token"),
        "the webhook URL leaked into the log"
    );
    assert!(
        !finished.stderr.contains("guest:guest"),
        "the AMQP password leaked into the log"
    );
    serde_json::from_str(finished.stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("notify printed no JSON summary ({e}): {}", finished.stdout))
}

pub(crate) fn wait_for(
    what: &str,
    timeout: Duration,
    process: &mut Tidewater,
    mut done: impl FnMut() -> bool,
) {
    let ok = poll_until(timeout, || {
        process.assert_running();
        done()
    });
    assert!(
        ok,
        "{what}: not within {timeout:?}\n--- stderr ---\n{}",
        tail(&process.stderr(), 4000)
    );
}

/// Waits until `notify` consumes from `queue` (so its queue is declared and
/// bound, and an event published now reaches it).
pub(crate) fn wait_for_consumer(queue: &str, notify: &mut Tidewater) {
    wait_for(
        &format!("notify consuming from {queue}"),
        Duration::from_secs(30),
        notify,
        || consumer_count(queue) >= 1,
    );
}

/// Waits until the broker holds no message of `queue`, neither ready nor
/// unacknowledged: every event was covered by a post and acked (or
/// dead-lettered).
pub(crate) fn wait_for_all_acked(queue: &str, notify: &mut Tidewater) {
    let mut last = None;
    let ok = poll_until(Duration::from_secs(60), || {
        notify.assert_running();
        last = queue_counts(queue);
        last == Some((0, 0))
    });
    assert!(
        ok,
        "every message of {queue} acked: not within 60s; (ready, unacked) = {last:?}\n--- stderr ---\n{}",
        tail(&notify.stderr(), 4000)
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// CRI lines with JSON bodies.
fn cri(level: &str, msg: &str, seq: u64) -> String {
    format!(
        "2026-11-22T08:00:{:02}.{:09}Z stdout F {}\n",
        seq % 60,
        seq,
        json!({"level": level, "msg": msg, "seq": seq})
    )
}

fn alerts_sink(exchange: &str, queue: &str) -> String {
    format!(
        "\n[sinks.alerts]\ntype = \"amqp\"\nurl = {}\nexchange = {}\nqueue = {}\nrouting_key = \"{{namespace}}.{{container}}.{{level}}\"\nwhen = 'level >= \"error\"'\nfields = [\"seq\"]\n",
        toml_str(AMQP_URL),
        toml_str(exchange),
        toml_str(queue)
    )
}

#[test]
fn errors_reach_slack_grouped_and_info_lines_do_not() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("errors"), unique("slack"));
    let mut log = String::new();
    let mut errors = 0;
    for seq in 0..400u64 {
        match seq % 10 {
            3 => {
                log.push_str(&cri(
                    "error",
                    &format!("timeout after {} ms calling payments", 1000 + seq),
                    seq,
                ));
                errors += 1;
            }
            7 if seq % 20 == 7 => {
                log.push_str(&cri("fatal", "out of memory", seq));
                errors += 1;
            }
            5 => log.push_str(&cri("warn", "slow request", seq)),
            _ => log.push_str(&cri("info", "GET /orders 200", seq)),
        }
    }
    let id = "0123456789abcdef".repeat(4);
    // Named as kubelet names them, for the Kubernetes metadata.
    sandbox.write_file(&format!("containers/web-1_shop_web-{id}.log"), &log);
    let mut config = Config::relative("cri");
    config.include = vec!["containers/*.log".into()];
    config.max_rows = 100;
    let config = sandbox.write_file(
        "tidewater.toml",
        config.to_toml() + &alerts_sink(&exchange, &queue),
    );
    let (finished, summary) = sandbox.run_once_ok(&config);
    assert_eq!(summary.get("records"), 400, "{}", finished.stderr);
    assert!(
        !finished.stderr.contains("guest:guest"),
        "the AMQP password leaked into the log"
    );
    assert_eq!(
        queue_len(&queue),
        errors,
        "every error and fatal line is an event in the queue"
    );

    let slack = FakeSlack::start();
    let notify_cfg = notify_config(&sandbox, &exchange, &queue, "group_window = \"2s\"\n");
    let mut notify = start_notify(&sandbox, &notify_cfg, &slack);
    wait_for(
        "every event posted",
        Duration::from_secs(60),
        &mut notify,
        || posted_total(&slack) >= errors as u64,
    );
    // Once the broker has every message acked, nothing is held that could
    // still be posted: the counts below are final.
    wait_for_all_acked(&queue, &mut notify);
    let summary = stop_notify(notify);
    let posts = slack.posted();
    println!(
        "{} events became {} Slack posts; notify: {summary}",
        errors,
        posts.len()
    );
    for post in &posts {
        println!("  {}", post["text"]);
    }
    assert_eq!(
        posted_total(&slack),
        errors as u64,
        "each event is counted once"
    );
    assert_eq!(
        posts.len(),
        4,
        "two fingerprints: a first post and one 'more like this' each"
    );
    let all = serde_json::to_string(&posts).expect("json");
    assert!(
        !all.contains("GET /orders") && !all.contains("slow request"),
        "no info or warn line is posted"
    );
    assert!(all.contains("timeout after") && all.contains("out of memory"));
    assert!(
        all.contains("in shop/web"),
        "the service is namespace/container from the file name"
    );
    assert!(all.contains("pod `web-1`"), "the pod is named");
    assert!(
        all.contains("https://redash.example/queries/7?p_fingerprint="),
        "the link is in the message"
    );
    assert!(posts[0]["blocks"].is_array(), "Block Kit");
    assert_eq!(summary["acked"], errors as u64);
    assert_eq!(queue_len(&queue), 0, "every message was acked");
    delete_queues(&queue);
}

#[test]
fn broker_connections_closed_while_publishing_lose_no_event() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("errors"), unique("restart"));
    let api = free_port();
    let mut config = Config::relative("cri");
    config.max_rows = 50;
    config.max_age = "200ms".into();
    config.api_address = Some(format!("127.0.0.1:{api}"));
    let config = sandbox.write_file(
        "tidewater.toml",
        config.to_toml() + &alerts_sink(&exchange, &queue),
    );
    let log = sandbox.logs().join("app.log");
    fs_append(&log, "");
    let mut tidewater = sandbox.start_run(&config);
    // The writer appends 100 error lines every 150 ms until told to stop,
    // and returns how many it wrote (its sleep paces a steadily logging
    // service; it synchronises nothing).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut chunk = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let lines: String = (chunk * 100..chunk * 100 + 100)
                    .map(|s| cri("error", "payment failed", s))
                    .collect();
                fs_append(&log, &lines);
                chunk += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
            chunk * 100
        })
    };
    // Close tidewater's connection from the broker's side three times while
    // the writer is appending error lines. Each close waits until tidewater
    // is connected and has published over that connection (the queue holds
    // more events than right after the previous close), and after the last
    // close the writer runs on until tidewater published again.
    let pid = tidewater.pid();
    let queue_name = queue.clone();
    // Waits until tidewater has published over a live connection (the queue
    // holds more than `since` events) and returns its connections.
    let publishing = move |tidewater: &mut Tidewater, what: &str, since: u32| {
        let mut connections = Vec::new();
        wait_for(what, Duration::from_secs(60), tidewater, || {
            queue_len(&queue_name) > since && {
                connections = connections_of(pid);
                !connections.is_empty()
            }
        });
        connections
    };
    let mut closed = 0;
    let mut queued_after_close = 0;
    for round in 1..=3 {
        let connections = publishing(
            &mut tidewater,
            &format!("tidewater connected and publishing before close {round}"),
            queued_after_close,
        );
        for connection in &connections {
            close_connection(connection);
        }
        closed += connections.len();
        queued_after_close = queue_len(&queue);
    }
    publishing(
        &mut tidewater,
        "tidewater connected and publishing again after the last close",
        queued_after_close,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total = writer.join().expect("writer");
    let len = std::fs::metadata(&log).expect("log").len();
    wait_for(
        "the checkpoint at the end of the log",
        Duration::from_secs(120),
        &mut tidewater,
        || {
            sandbox.checkpoint_file().exists()
                && checkpoint_offsets(&read_checkpoints(&sandbox)).contains(&len)
        },
    );
    tidewater.signal("TERM");
    let finished = tidewater.finish(Duration::from_secs(30));
    finished.assert_success();
    let events = take_all(&queue);
    let mut seqs: BTreeMap<u64, u32> = BTreeMap::new();
    for e in &events {
        *seqs
            .entry(e["fields"]["seq"].as_u64().expect("seq in fields"))
            .or_default() += 1;
    }
    let missing: Vec<u64> = (0..total).filter(|s| !seqs.contains_key(s)).collect();
    let duplicates: u32 = seqs.values().map(|n| n - 1).sum();
    let reconnects = finished.stderr.matches("connected to the broker").count();
    println!(
        "{closed} broker-side closes; {reconnects} connections made; {} events in the queue for {total} error lines; {duplicates} duplicates (republished after a close)",
        events.len()
    );
    assert!(
        missing.is_empty(),
        "events lost: {} (first {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(
        closed, 3,
        "tidewater should have had one connection at each of the three closes"
    );
    assert!(
        reconnects > closed,
        "tidewater should have connected again after each close:\n{}",
        tail(&finished.stderr, 3000)
    );
    assert!(
        !finished.stderr.contains("guest:guest"),
        "the AMQP password leaked into the log"
    );
    delete_queues(&queue);
}

/// `rabbitmqctl ARGS` (from rabbitmq-server): its stdout, or a panic.
fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl (from rabbitmq-server) inspects and closes connections and queues");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The broker's ids of the open connections a process named with its pid
/// (one being closed is left out: closing it again would fail).
fn connections_of(pid: u32) -> Vec<String> {
    let marker = format!("(pid {pid})");
    rabbitmqctl(&[
        "list_connections",
        "--no-table-headers",
        "--quiet",
        "pid",
        "client_properties",
        "state",
    ])
    .lines()
    .filter(|l| l.contains(&marker))
    .filter(|l| !matches!(l.split_whitespace().last(), Some("closing" | "closed")))
    .filter_map(|l| l.split_whitespace().next().map(String::from))
    .collect()
}

/// Close a connection from the broker's side (`rabbitmqctl close_connection`).
fn close_connection(connection: &str) {
    rabbitmqctl(&[
        "close_connection",
        connection,
        "tidewater test: broker-side close",
    ]);
}

fn fs_append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

#[test]
fn slack_429_then_500s_then_200_is_posted_once_and_acked() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("errors"), unique("retry"));
    let slack = FakeSlack::start();
    slack
        .script
        .lock()
        .expect("script")
        .extend([(429, Some(1)), (500, None), (503, None)]);
    let config = notify_config(
        &sandbox,
        &exchange,
        &queue,
        "group_window = \"1s\"\nmax_attempts = 5\n",
    );
    let mut notify = start_notify(&sandbox, &config, &slack);
    wait_for_consumer(&queue, &mut notify);
    let started = Instant::now();
    publish(
        &exchange,
        "shop.web.error",
        &[event("fp-retry", "card declined", 1)],
    );
    wait_for(
        "a successful post",
        Duration::from_secs(60),
        &mut notify,
        || !slack.posted().is_empty(),
    );
    let waited = started.elapsed();
    wait_for_all_acked(&queue, &mut notify);
    let summary = stop_notify(notify);
    println!(
        "requests: {}, posted after {waited:?}; notify: {summary}",
        slack.request_count()
    );
    assert_eq!(slack.request_count(), 4, "429, 500, 503, then 200");
    assert_eq!(slack.posted().len(), 1, "posted once");
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(summary["acked"], 1);
    assert_eq!(queue_len(&queue), 0, "acked, not requeued");
    assert_eq!(queue_len(&format!("{queue}.dead")), 0);
    delete_queues(&queue);
}

#[test]
fn a_webhook_that_never_recovers_dead_letters_after_n_tries() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("errors"), unique("dead"));
    let slack = FakeSlack::start();
    *slack.always.lock().expect("always") = 500;
    let config = notify_config(
        &sandbox,
        &exchange,
        &queue,
        "group_window = \"1s\"\nmax_attempts = 3\n",
    );
    let mut notify = start_notify(&sandbox, &config, &slack);
    wait_for_consumer(&queue, &mut notify);
    publish(
        &exchange,
        "shop.web.error",
        &[event("fp-dead", "disk full", 1)],
    );
    wait_for(
        "the message in the dead-letter queue",
        Duration::from_secs(60),
        &mut notify,
        || queue_len(&format!("{queue}.dead")) == 1,
    );
    let summary = stop_notify(notify);
    println!("requests: {}; notify: {summary}", slack.request_count());
    assert_eq!(slack.request_count(), 3, "max_attempts = 3");
    assert_eq!(summary["dead_lettered"], 1);
    let dead = take_all(&format!("{queue}.dead"));
    assert_eq!(
        dead[0]["message"], "disk full",
        "the dead letter is the event itself"
    );
    assert_eq!(queue_len(&queue), 0);
    delete_queues(&queue);
}

#[test]
fn an_error_storm_makes_few_posts_with_exact_counts() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("errors"), unique("storm"));
    let slack = FakeSlack::start();
    let config = notify_config(
        &sandbox,
        &exchange,
        &queue,
        "group_window = \"3s\"\nprefetch = 2000\n",
    );
    let mut notify = start_notify(&sandbox, &config, &slack);
    wait_for_consumer(&queue, &mut notify);
    let storm: Vec<Value> = (0..10_000u64)
        .map(|s| event("fp-storm", &format!("timeout after {s} ms"), s))
        .collect();
    let started = Instant::now();
    publish(&exchange, "shop.web.error", &storm);
    wait_for(
        "all 10,000 events posted",
        Duration::from_secs(120),
        &mut notify,
        || posted_total(&slack) >= 10_000,
    );
    let took = started.elapsed();
    wait_for_all_acked(&queue, &mut notify);
    let summary = stop_notify(notify);
    let posts = slack.posted();
    println!(
        "10,000 identical errors in {took:?} became {} posts: {:?}",
        posts.len(),
        posts.iter().map(count_of).collect::<Vec<_>>()
    );
    assert_eq!(posted_total(&slack), 10_000, "counts add up exactly");
    assert!(
        posts.len() <= 15,
        "a storm must make a handful of posts, not {}",
        posts.len()
    );
    assert_eq!(summary["acked"], 10_000);
    assert_eq!(queue_len(&queue), 0);
    delete_queues(&queue);
}

/// A CA and a certificate for `localhost` signed by it (openssl).
fn make_certificates(
    sandbox: &Sandbox,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = sandbox.path("tls");
    std::fs::create_dir_all(&dir).expect("tls dir");
    let ext = sandbox.write_file(
        "tls/leaf.ext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl is needed to make test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tidewater test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        path_str(&ext),
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

#[test]
fn amqps_with_a_private_ca_publishes_and_consumes() {
    let sandbox = Sandbox::new();
    let (ca, cert, key) = make_certificates(&sandbox);
    let port = free_port();
    let proxy_log = sandbox.path("tls-proxy.log");
    let mut proxy = std::process::Command::new(python())
        .arg(project_file("tests/tls_proxy.py"))
        .args([path_str(&cert), path_str(&key), &port.to_string(), "5672"])
        .stdout(std::fs::File::create(&proxy_log).expect("proxy log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tests/tls_proxy.py");
    assert!(
        poll_until(Duration::from_secs(10), || read_lossy(&proxy_log)
            .contains("ready")),
        "the TLS proxy did not start: {}",
        read_lossy(&proxy_log)
    );
    let url = format!("amqps://guest:guest@localhost:{port}/%2f");
    let (exchange, queue) = (unique("errors"), unique("tls"));
    let mut log = String::new();
    for seq in 0..20u64 {
        log.push_str(&cri(
            if seq % 4 == 0 { "error" } else { "info" },
            "card declined",
            seq,
        ));
    }
    sandbox.write_file("logs/app.log", &log);
    let sink = alerts_sink(&exchange, &queue).replace(&toml_str(AMQP_URL), &toml_str(&url))
        + &format!("tls_ca_file = {}\n", toml_str(path_str(&ca)));
    let config = sandbox.write_file("tidewater.toml", Config::relative("cri").to_toml() + &sink);
    let (finished, _) = sandbox.run_once_ok(&config);
    assert_eq!(
        queue_len(&queue),
        5,
        "5 error lines became events over TLS\n{}",
        tail(&finished.stderr, 2000)
    );

    let slack = FakeSlack::start();
    let notify_cfg = sandbox.write_file(
        "notify.toml",
        format!(
            "[notify]\nurl = {}\ntls_ca_file = {}\nexchange = {}\nqueue = {}\nwebhook_url = \"${{TEST_SLACK_WEBHOOK}}\"\ngroup_window = \"1s\"\nmin_interval = \"50ms\"\n",
            toml_str(&url),
            toml_str(path_str(&ca)),
            toml_str(&exchange),
            toml_str(&queue)
        ),
    );
    let mut notify = start_notify(&sandbox, &notify_cfg, &slack);
    wait_for(
        "the events posted",
        Duration::from_secs(60),
        &mut notify,
        || posted_total(&slack) >= 5,
    );
    let summary = stop_notify(notify);
    let _ = proxy.kill();
    let _ = proxy.wait();
    let handshakes = read_lossy(&proxy_log);
    println!(
        "over TLS: notify {summary}; proxy: {}",
        handshakes.lines().last().unwrap_or_default()
    );
    assert!(
        handshakes.contains("tls-connections 2"),
        "both tidewater and notify connected through TLS: {handshakes}"
    );
    assert_eq!(summary["acked"], 5);
    delete_queues(&queue);
}

/// `validate --connect` logs in to the broker, declaring and publishing
/// nothing, and reports a broker it cannot reach (exit 1), never with the
/// password.
#[test]
fn validate_connect_logs_in_to_the_broker_and_declares_nothing() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("probe"), unique("probe"));
    let config = Config::relative("cri").to_toml();
    // `validate --connect` on `file`: its exit code and its output.
    let validate_connect = |file: &Path| {
        let probe = sandbox
            .spawn(&["validate", "--connect", "--config", path_str(file)])
            .finish(Duration::from_secs(60));
        let output = format!("{}{}", probe.stdout, probe.stderr);
        (probe.status.code(), probe.stdout, output)
    };
    let reachable = sandbox.write_file(
        "tidewater.toml",
        config.clone() + &alerts_sink(&exchange, &queue),
    );
    let (code, stdout, output) = validate_connect(&reachable);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        stdout.contains("sinks.alerts: reachable: broker amqp://guest:***@127.0.0.1:5672/%2f"),
        "{output}"
    );
    assert_eq!(queue_state(&queue), None, "validate declared the queue");

    let dead_url = format!("127.0.0.1:{}", free_port());
    let unreachable = sandbox.write_file(
        "dead.toml",
        config + &alerts_sink(&exchange, &queue).replace("127.0.0.1:5672", &dead_url),
    );
    let (code, stdout, output) = validate_connect(&unreachable);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        stdout.contains("sinks.alerts: UNREACHABLE: amqp: connecting to"),
        "{output}"
    );
    assert!(
        !output.contains("guest:guest"),
        "the password leaked: {output}"
    );
}
