//! `tidewater notify`'s `/healthz`, `/readyz` and `/metrics` against a real
//! RabbitMQ and a stand-in for Slack's webhook: the counters add up to what
//! Slack and the broker saw, and readiness follows the broker and Slack.

use std::time::Duration;

use serde_json::Value;

use crate::alerts::*;
use crate::services::*;
use crate::util::*;

fn get(port: u16, path: &str) -> (u16, Value) {
    let (code, body) = http("GET", port, path, &[], &[])
        .unwrap_or_else(|| panic!("nothing answers GET {path} on 127.0.0.1:{port}"));
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (code, json)
}

#[test]
fn notify_serves_health_readiness_and_metrics_that_add_up() {
    let sandbox = Sandbox::new();
    let (exchange, queue) = (unique("errors"), unique("api"));
    let slack = FakeSlack::start();
    let port = free_port();
    let config = notify_config(
        &sandbox,
        &exchange,
        &queue,
        &format!("group_window = \"1s\"\nmax_attempts = 10\n[notify.api]\naddress = \"127.0.0.1:{port}\"\n"),
    );
    let mut notify = start_notify(&sandbox, &config, &slack);
    wait_for_consumer(&queue, &mut notify);
    assert_eq!(get(port, "/healthz").0, 200);
    let (code, ready) = get(port, "/readyz");
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["components"]["broker"]["queue"], queue.as_str());

    // Three fingerprints, 12 events: first posts, then grouped repeats.
    let events: Vec<Value> = (0..12)
        .map(|i| event(&format!("fp-{}", i % 3), "payment failed", i))
        .collect();
    publish(&exchange, "shop.web.error", &events);
    wait_for_all_acked(&queue, &mut notify);
    let scrape = Scrape::take(port);
    let posts = slack.posted().len() as f64;
    assert_eq!(scrape.get("tidewater_notify_events_total", &[]), 12.0);
    assert_eq!(
        scrape.get("tidewater_notify_acked_messages_total", &[]),
        12.0
    );
    assert_eq!(scrape.get("tidewater_notify_posts_total", &[]), posts);
    assert_eq!(
        scrape.get("tidewater_notify_grouped_events_total", &[]),
        12.0 - posts,
        "every event is in a post: its own or another's"
    );
    assert_eq!(posted_total(&slack) as f64, 12.0);
    assert_eq!(scrape.get("tidewater_notify_held_messages", &[]), 0.0);
    assert_eq!(scrape.get("tidewater_notify_broker_connected", &[]), 1.0);
    assert_eq!(
        scrape.get("tidewater_notify_post_duration_seconds_count", &[]),
        posts
    );

    // Slack fails: readiness says so, the failures are counted by cause.
    *slack.always.lock().expect("always") = 503;
    publish(
        &exchange,
        "shop.web.error",
        &[event("fp-new", "disk full", 99)],
    );
    wait_for(
        "/readyz failing on Slack",
        Duration::from_secs(30),
        &mut notify,
        || get(port, "/readyz").0 == 503,
    );
    let (_, ready) = get(port, "/readyz");
    assert_eq!(ready["components"]["slack"]["status"], "failing", "{ready}");
    assert!(
        Scrape::take(port).get(
            "tidewater_notify_post_failures_total",
            &[("cause", "server")]
        ) >= 1.0
    );
    assert_eq!(
        get(port, "/healthz").0,
        200,
        "a Slack outage is not a reason to restart"
    );
    *slack.always.lock().expect("always") = 200;
    wait_for_all_acked(&queue, &mut notify);
    assert_eq!(get(port, "/readyz").0, 200);
    let summary = stop_notify(notify);
    assert_eq!(summary["events"], 13);
    assert_eq!(summary["acked"], 13);
    delete_queues(&queue);
}
