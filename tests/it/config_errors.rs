//! Configuration errors are caught before anything runs, with exit code 2 and
//! a message naming the key, the file and the line; every example config and
//! every ```toml block of the README validates (fragments inside a minimal
//! frame, see [`FRAGMENT_FRAME`]); plus the rest of the CLI surface
//! (`--version`, `--help`, `schema`).

use serde_json::Value;

use crate::util::*;

/// The README's config, which must validate.
fn good_config() -> String {
    Config::relative("cri").to_toml()
}

/// Replaces the one line of `config` that starts with `key =`.
fn with_line(config: &str, key: &str, new_line: &str) -> String {
    let prefix = format!("{key} =");
    assert_eq!(
        config.lines().filter(|l| l.starts_with(&prefix)).count(),
        1,
        "the test config should have one {key} line"
    );
    config
        .lines()
        .map(|l| if l.starts_with(&prefix) { new_line } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The 1-based number of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(start))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starts with {start:?}"))
}

/// Runs `tidewater validate` on `config` (written as `name`) and asserts that
/// it fails with exit code 2 and a stderr that names `key`, the file and,
/// unless `lines` is empty, one of `lines` (the offending line, or the header
/// of the table holding it: serde cannot always point closer than that).
fn assert_rejected(name: &str, config: &str, key: &str, lines: &[usize]) -> Finished {
    let sandbox = Sandbox::new();
    let path = sandbox.write_file(name, config);
    let finished = sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_code(2);
    let stderr = &finished.stderr;
    assert!(
        stderr.contains(key),
        "the error should name {key:?}:\n{stderr}"
    );
    assert!(
        stderr.contains(name),
        "the error should name the config file {name}:\n{stderr}"
    );
    if !lines.is_empty() {
        assert!(
            lines.iter().any(|line| {
                stderr.contains(&format!("line {line}"))
                    || stderr.contains(&format!("{name}:{line}"))
            }),
            "the error should give the line (one of {lines:?}):\n{stderr}"
        );
    }
    assert!(
        !finished.stdout.contains("config OK"),
        "a bad config must not be reported OK"
    );
    finished
}

#[test]
fn a_good_config_validates() {
    let sandbox = Sandbox::new();
    let path = sandbox.write_file("good.toml", good_config());
    let finished = sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();
    assert!(
        finished.stdout.contains("config OK"),
        "stdout: {}",
        finished.stdout
    );
}

#[test]
fn unknown_key_is_named() {
    let good = good_config();
    let include = good
        .lines()
        .find(|l| l.starts_with("include ="))
        .expect("the config has an include line");
    let config = with_line(
        &good,
        "include",
        &format!("{include}\ninclde = [\"other/*.log\"]"),
    );
    assert_rejected(
        "unknown-key.toml",
        &config,
        "inclde",
        &[
            line_of(&config, "inclde"),
            line_of(&config, "[sources.app]"),
        ],
    );
}

#[test]
fn wrong_type_is_named() {
    let config = with_line(&good_config(), "max_rows", "max_rows = \"many\"");
    assert_rejected(
        "wrong-type.toml",
        &config,
        "max_rows",
        &[line_of(&config, "max_rows")],
    );
}

#[test]
fn bad_duration_is_named() {
    let config = with_line(&good_config(), "max_age", "max_age = \"2 fortnights\"");
    assert_rejected(
        "bad-duration.toml",
        &config,
        "max_age",
        &[line_of(&config, "max_age")],
    );
}

#[test]
fn missing_sinks_is_reported() {
    let good = good_config();
    let config = &good[..good.find("[sinks.lake]").expect("the config has a sink")];
    assert_rejected("no-sinks.toml", config, "sinks", &[]);
}

#[test]
fn unset_environment_variable_is_named() {
    let config = with_line(&good_config(), "url", "url = \"file://${NOPE_VAR}/lake\"");
    let finished = assert_rejected(
        "unset-var.toml",
        &config,
        "sinks.lake.url: environment variable NOPE_VAR is not set",
        &[line_of(&config, "url =")],
    );
    assert!(
        !finished.stderr.contains("panicked"),
        "an unset variable is a config error, not a crash:\n{}",
        finished.stderr
    );
    // In a comment, a reference is only text.
    let commented = format!("# url = \"file://${{NOPE_VAR}}/lake\"\n{}", good_config());
    let sandbox = Sandbox::new();
    let path = sandbox.write_file("commented-var.toml", &commented);
    sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT)
        .assert_success();
}

#[test]
fn a_zero_interval_is_a_config_error_not_a_panic() {
    // Before, validate accepted this and run panicked in tokio::time::interval.
    let config = format!("checkpoint_interval = \"0s\"\n{}", good_config());
    assert_rejected("zero-interval.toml", &config, "checkpoint_interval", &[]);
    let sandbox = Sandbox::new();
    let path = sandbox.write_file("zero-interval.toml", &config);
    let finished = sandbox
        .spawn(&["run", "--config", path_str(&path), "--once"])
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_code(2);
    assert!(
        finished
            .stderr
            .contains("checkpoint_interval: must be more than 0s")
            && !finished.stderr.contains("panicked"),
        "{}",
        finished.stderr
    );
}

/// Values for the environment variables the README and `examples/` refer to.
const DOC_ENV: &[(&str, &str)] = &[
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T000/B000/XXXX",
    ),
    ("GOOGLE_CLOUD_PROJECT", "my-project"),
];

/// The `${VAR}` references in `text` (not `$${` escapes).
fn env_references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        let after = &rest[at + 2..];
        let end = after.find('}').unwrap_or(after.len());
        if !escaped {
            out.push(after[..end].to_string());
        }
        rest = after;
    }
    out
}

/// `tidewater validate` on `text` in a sandbox holding the project's
/// `schemas/` (examples name them relative to the working directory), with
/// [`DOC_ENV`] set; panics with `what` and the output if it is not OK.
fn assert_validates(what: &str, text: &str) {
    for var in env_references(text) {
        assert!(
            DOC_ENV.iter().any(|(k, _)| *k == var),
            "{what} refers to ${{{var}}}: give it a value in DOC_ENV"
        );
    }
    let sandbox = Sandbox::new();
    for entry in std::fs::read_dir(project_file("schemas")).expect("schemas/") {
        let entry = entry.expect("schemas/ entry");
        let name = entry.file_name();
        let name = name.to_str().expect("UTF-8 file name");
        sandbox.write_file(
            &format!("schemas/{name}"),
            std::fs::read(entry.path()).expect("a schema file"),
        );
    }
    let path = sandbox.write_file("doc.toml", text);
    let finished = sandbox
        .spawn_with_env(&["validate", "--config", path_str(&path)], DOC_ENV)
        .finish(RUN_ONCE_TIMEOUT);
    assert!(
        finished.status.success() && finished.stdout.contains("config OK"),
        "{what} does not validate:\n{text}\n--- stderr:\n{}",
        finished.stderr
    );
}

/// What a README fragment is checked inside: the README shows a `[sinks.*]`
/// table on its own, so a block without `data_dir` (a required top-level
/// key) is a fragment and gets this data dir and one tail source in front.
/// No sink is added: a fragment without one fails.
const FRAGMENT_FRAME: &str =
    "data_dir = \"state\"\n[sources.readme]\ntype = \"tail\"\ninclude = [\"logs/*.log\"]\n\n";

/// The ```toml blocks of `markdown`, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut open {
            None if line.trim_start().starts_with("```toml") => open = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(open.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed ```toml block");
    blocks
}

#[test]
fn every_toml_block_of_the_readme_validates() {
    let readme = std::fs::read_to_string(project_file("README.md")).expect("README.md");
    let blocks = toml_blocks(&readme);
    assert!(
        blocks.len() >= 4,
        "expected the README's toml blocks (configuration, lake, BigQuery, alerts), found {}",
        blocks.len()
    );
    let mut whole = 0;
    for (line, block) in &blocks {
        let is_whole = block.lines().any(|l| l.starts_with("data_dir"));
        let text = if is_whole {
            whole += 1;
            block.clone()
        } else {
            format!("{FRAGMENT_FRAME}{block}")
        };
        assert_validates(&format!("the README's toml block at line {line}"), &text);
    }
    assert!(
        whole >= 1,
        "the Configuration section's block is a whole config"
    );
}

#[test]
fn every_example_config_validates() {
    let mut found = 0;
    for entry in std::fs::read_dir(project_file("examples")).expect("examples/") {
        let path = entry.expect("examples/ entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        found += 1;
        let text = std::fs::read_to_string(&path).expect("an example config");
        assert_validates(&path.display().to_string(), &text);
    }
    assert!(
        found >= 2,
        "expected examples/quickstart.toml and examples/bigquery.toml"
    );
}

#[test]
fn the_readme_fragments_are_checked_for_real() {
    // The frame adds no sink, and a mistake in a block still fails.
    let sandbox = Sandbox::new();
    let path = sandbox.write_file("frame.toml", FRAGMENT_FRAME);
    sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT)
        .assert_code(2);
    let readme = std::fs::read_to_string(project_file("README.md")).expect("README.md");
    let (_, alerts) = toml_blocks(&readme)
        .into_iter()
        .find(|(_, b)| b.contains("[sinks.alerts]"))
        .expect("the README's alerts block");
    let broken = format!(
        "{FRAGMENT_FRAME}{}",
        alerts.replace("confirm_timeout = \"30s\"", "confirm_timeout = \"0s\"")
    );
    assert_ne!(
        broken,
        format!("{FRAGMENT_FRAME}{alerts}"),
        "the block sets confirm_timeout"
    );
    let path = sandbox.write_file("broken.toml", &broken);
    let finished = sandbox
        .spawn_with_env(&["validate", "--config", path_str(&path)], DOC_ENV)
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("sinks.alerts.confirm_timeout"),
        "{}",
        finished.stderr
    );
}

#[test]
fn run_with_a_bad_config_exits_2() {
    let sandbox = Sandbox::new();
    let path = sandbox.write_file(
        "bad.toml",
        with_line(&good_config(), "max_age", "max_age = \"2 fortnights\""),
    );
    let finished = sandbox
        .spawn(&["run", "--config", path_str(&path), "--once"])
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("max_age"),
        "stderr: {}",
        finished.stderr
    );
    assert!(
        !sandbox.lake().exists(),
        "a rejected config must not start shipping"
    );
}

#[test]
fn environment_variables_are_substituted() {
    let sandbox = Sandbox::new();
    let corpus = generate(&sandbox.logs().join("app.log"), "cri", 100, &[]);
    let lake = sandbox.path("lake-from-env");
    let mut config = Config::relative("cri");
    config.lake_url = "file://${TW_IT_LAKE}".into();
    let path = sandbox.write_config(&config);
    let finished = sandbox
        .spawn_with_env(
            &["run", "--config", path_str(&path), "--once"],
            &[("TW_IT_LAKE", path_str(&lake))],
        )
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();
    read_lake(&lake).assert_exactly_once(corpus.seqs());
}

#[test]
fn version_and_help() {
    let sandbox = Sandbox::new();
    let version = sandbox.spawn(&["--version"]).finish(RUN_ONCE_TIMEOUT);
    version.assert_success();
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "--version should print {}: {}",
        env!("CARGO_PKG_VERSION"),
        version.stdout
    );
    let help = sandbox.spawn(&["--help"]).finish(RUN_ONCE_TIMEOUT);
    help.assert_success();
    for command in ["run", "validate", "schema"] {
        assert!(
            help.stdout.contains(command),
            "--help should list {command}:\n{}",
            help.stdout
        );
    }
}

#[test]
fn schema_matches_the_schema_file() {
    let sandbox = Sandbox::new();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(project_file("schemas/container_log.json"))
            .expect("cannot read schemas/container_log.json"),
    )
    .expect("schemas/container_log.json is JSON");
    let names = |schema: &Value| -> Vec<String> {
        schema
            .as_array()
            .expect("a BigQuery schema is a JSON array")
            .iter()
            .map(|f| {
                f["name"]
                    .as_str()
                    .expect("every field has a name")
                    .to_string()
            })
            .collect()
    };
    let expected = names(&file);

    let bigquery = sandbox
        .spawn(&["schema", "--format", "bigquery"])
        .finish(RUN_ONCE_TIMEOUT);
    bigquery.assert_success();
    let printed: Value = serde_json::from_str(bigquery.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "schema --format bigquery is not JSON ({e}):\n{}",
            bigquery.stdout
        )
    });
    assert_eq!(
        names(&printed),
        expected,
        "schema --format bigquery differs from schemas/container_log.json"
    );

    let arrow = sandbox.spawn(&["schema"]).finish(RUN_ONCE_TIMEOUT);
    arrow.assert_success();
    for name in &expected {
        assert!(
            arrow.stdout.contains(name.as_str()),
            "`tidewater schema` does not show {name}:\n{}",
            arrow.stdout
        );
    }
    for column in COLUMNS {
        assert!(
            expected.iter().any(|n| n == column),
            "the schema file lacks the contract's column {column}"
        );
    }
}

#[test]
fn object_store_settings_are_checked_by_validate() {
    let base = good_config();
    let url_line = |url: &str| format!("url = {}", toml_str(url));
    let cases: [(&str, String, &str); 6] = [
        (
            "no_bucket.toml",
            with_line(&base, "url", &url_line("s3:///prefix")),
            "sinks.lake.url",
        ),
        (
            "secret_in_url.toml",
            with_line(
                &base,
                "url",
                &url_line("s3://AKIAEXAMPLE:hunter2@bucket/prefix"),
            ),
            "sinks.lake.url",
        ),
        (
            "region_on_file.toml",
            base.clone() + "region = \"eu-west-1\"\n",
            "sinks.lake.region",
        ),
        (
            "key_file_on_s3.toml",
            with_line(&base, "url", &url_line("s3://bucket/prefix"))
                + "credentials = \"key.json\"\n",
            "sinks.lake.credentials",
        ),
        (
            "small_part.toml",
            with_line(&base, "url", &url_line("s3://bucket/prefix")) + "part_size = \"1MiB\"\n",
            "sinks.lake.part_size",
        ),
        (
            "ftp.toml",
            with_line(&base, "url", &url_line("ftp://host/dir")),
            "sinks.lake.url",
        ),
    ];
    for (name, config, key) in cases {
        let finished = assert_rejected(name, &config, key, &[]);
        assert!(
            !finished.stderr.contains("hunter2"),
            "a password in the URL must not be echoed:\n{}",
            finished.stderr
        );
    }
}

#[test]
fn memory_limit_too_small_for_batches_or_buffers_is_rejected() {
    let config = good_config();
    let tiny = format!("memory_limit = \"1MiB\"\n{config}");
    let finished = assert_rejected("tiny.toml", &tiny, "memory_limit", &[]);
    assert!(
        finished.stderr.contains("at least 32"),
        "{}",
        finished.stderr
    );

    // The test config's batch.max_bytes is 8MiB: more than an eighth of 32MiB.
    let small = format!("memory_limit = \"32MiB\"\n{config}");
    let finished = assert_rejected("small.toml", &small, "batch.max_bytes", &[]);
    assert!(
        finished.stderr.contains("eighth of memory_limit"),
        "{}",
        finished.stderr
    );

    // A rolling sink's two 16 MiB parts do not fit in its 32 MiB share.
    let parts = format!(
        "memory_limit = \"64MiB\"\n{config}target_file_size = \"64MiB\"\npart_size = \"16MiB\"\n"
    );
    let finished = assert_rejected("parts.toml", &parts, "sinks.lake.part_size", &[]);
    assert!(
        finished.stderr.contains("raise memory_limit"),
        "{}",
        finished.stderr
    );
    // The same with 5 MiB parts fits.
    let fits = parts.replace("16MiB", "5MiB");
    let sandbox = Sandbox::new();
    let path = sandbox.write_file("fits.toml", &fits);
    sandbox
        .spawn(&["validate", "--config", path_str(&path)])
        .finish(RUN_ONCE_TIMEOUT)
        .assert_success();
}

#[test]
fn bigquery_settings_are_checked_by_validate() {
    let base = Config::relative("cri").to_toml();
    let sink = |keys: &str| {
        format!(
            "{base}\n[sinks.warehouse]\ntype = \"bigquery\"\nproject = \"p\"\ndataset = \"logs\"\ntable = \"t\"\n{keys}"
        )
    };
    // The bundled example validates (its project comes from the environment;
    // its schema path is relative to the working directory).
    let sandbox = Sandbox::new();
    sandbox.write_file(
        "schemas/app_log.json",
        std::fs::read(project_file("schemas/app_log.json")).expect("schemas/app_log.json"),
    );
    let finished = sandbox
        .spawn_with_env(
            &[
                "validate",
                "--config",
                path_str(&project_file("examples/bigquery.toml")),
            ],
            &[("GOOGLE_CLOUD_PROJECT", "my-project")],
        )
        .finish(RUN_ONCE_TIMEOUT);
    finished.assert_success();

    let config = sink("max_rows_per_request = 60000\n");
    let out = assert_rejected(
        "bq-rows.toml",
        &config,
        "sinks.warehouse.max_rows_per_request",
        &[],
    );
    assert!(out.stderr.contains("50000"), "{}", out.stderr);
    let config = sink("api = \"storage_write\"\nendpoint = \"http://127.0.0.1:9050\"\n");
    assert_rejected(
        "bq-grpc.toml",
        &config,
        "sinks.warehouse.storage_endpoint",
        &[],
    );
    let config = sink("api = \"streaming\"\n");
    assert_rejected("bq-api.toml", &config, "sinks.warehouse.api", &[]);
    let config = sink("storage_endpoint = \"http://127.0.0.1:9060\"\n");
    let out = assert_rejected(
        "bq-http.toml",
        &config,
        "sinks.warehouse.storage_endpoint",
        &[],
    );
    assert!(out.stderr.contains("expected https://"), "{}", out.stderr);
    let config = sink("dataset = \"my logs\"\n").replace("dataset = \"logs\"\n", "");
    assert_rejected("bq-dataset.toml", &config, "sinks.warehouse.dataset", &[]);
}
