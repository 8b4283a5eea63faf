//! Loading, substitution and the checks, on small configs.

use super::document::{substitute_env, Substitution};
use super::*;

const GOOD: &str = r#"
data_dir = "state"
[sources.app]
type = "tail"
include = ["logs/*.log"]
exclude = []
format = "cri"
read_from = "beginning"
[batch]
max_rows = 10000
max_bytes = "8MiB"
max_age = "2s"
[sinks.lake]
type = "parquet"
url = "file://lake"
"#;

fn load(text: &str) -> Result<Config, String> {
    Config::from_toml(text, Path::new("t.toml")).map_err(|e| e.to_string())
}

#[test]
fn the_documented_example_loads() {
    let c = load(GOOD).expect("valid");
    assert_eq!(c.batch.max_bytes, 8 << 20);
    assert_eq!(c.batch.max_age, Duration::from_secs(2));
    let SourceConfig::Tail(t) = &c.sources["app"];
    assert_eq!(t.format, Format::Cri);
    assert_eq!(t.max_line_bytes, 1 << 20);
}

#[test]
fn errors_name_the_key() {
    let e = load(&GOOD.replace("exclude = []", "exclde = []")).expect_err("unknown key");
    assert!(e.contains("exclde"), "{e}");
    let e = load(&GOOD.replace("max_age = \"2s\"", "max_age = \"2 fortnights\"")).expect_err("bad");
    assert!(e.contains("max_age") && e.contains("duration"), "{e}");
    let e = load(&GOOD.replace("max_rows = 10000", "max_rows = \"many\"")).expect_err("type");
    assert!(e.contains("max_rows"), "{e}");
    let e = load(&GOOD.replace("format = \"cri\"", "format = \"xml\"")).expect_err("variant");
    assert!(e.contains("xml"), "{e}");
}

#[test]
fn env_vars_are_substituted_and_missing_ones_named() {
    std::env::set_var("TIDEWATER_TEST_LAKE", "file://elsewhere");
    let c = load(&GOOD.replace("\"file://lake\"", "\"${TIDEWATER_TEST_LAKE}\"")).expect("ok");
    let SinkConfig::Parquet(p) = &c.sinks["lake"] else {
        panic!("the lake is a parquet sink");
    };
    assert_eq!(p.url, "file://elsewhere");
    let e = load(&GOOD.replace("\"state\"", "\"${TIDEWATER_NOT_SET_X}\"")).expect_err("unset");
    assert!(
        e.contains("data_dir: environment variable TIDEWATER_NOT_SET_X is not set")
            && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn unset_variables_are_named_with_their_key_path() {
    let e = load(&GOOD.replace("\"file://lake\"", "\"file://${TIDEWATER_NOT_SET_Y}\""))
        .expect_err("unset");
    assert!(
        e.contains("sinks.lake.url: environment variable TIDEWATER_NOT_SET_Y is not set"),
        "{e}"
    );
    let e = load(&GOOD.replace("\"logs/*.log\"", "\"a\", \"${TIDEWATER_NOT_SET_Y}/*.log\""))
        .expect_err("unset");
    assert!(
        e.contains("sources.app.include[1]: environment variable"),
        "{e}"
    );
    let e = load(&format!(
        "{GOOD}\n[[columns]]\nname = \"x\"\ntype = \"STRING\"\nfrom = \"${{TIDEWATER_NOT_SET_Y}}\"\n"
    ))
    .expect_err("unset");
    assert!(e.contains("columns[0].from: environment variable"), "{e}");
}

#[test]
fn substituted_values_cannot_change_the_toml() {
    // Before, substitution was textual: this value ended the string and
    // added a key (or broke the file).
    let tricky = "st\"ate\\dir\nmax_rows = 1 ${NOT_A_REFERENCE}";
    std::env::set_var("TIDEWATER_TEST_TRICKY", tricky);
    let c = load(&GOOD.replace("\"state\"", "\"${TIDEWATER_TEST_TRICKY}\"")).expect("ok");
    assert_eq!(c.data_dir, PathBuf::from(tricky), "taken as it is, once");
    assert_eq!(c.batch.max_rows, 10_000);
}

#[test]
fn references_in_comments_need_nothing_set() {
    let text = GOOD.replace(
        "[batch]",
        "# url = \"${TIDEWATER_NOT_SET_IN_COMMENT}\"\n[batch] # ${TIDEWATER_NOT_SET_EITHER}",
    );
    load(&text).expect("comments are not substituted");
}

#[test]
fn dollar_dollar_brace_is_a_literal() {
    let c = load(&GOOD.replace("\"state\"", "\"a$${HOME}b$c$$d\"")).expect("ok");
    assert_eq!(c.data_dir, PathBuf::from("a${HOME}b$c$$d"));
    let e = load(&GOOD.replace("\"state\"", "\"a${HOME\"")).expect_err("unclosed");
    assert!(
        e.contains("data_dir: ") && e.contains("without a closing"),
        "{e}"
    );
    let e = load(&GOOD.replace("\"state\"", "\"a${}\"")).expect_err("empty");
    assert!(
        e.contains("data_dir: ") && e.contains("not an environment variable name"),
        "{e}"
    );
}

#[test]
fn substitution_is_one_pass() {
    let env = |v: &str| match v {
        "A" => Some("${B}".to_string()),
        "B" => Some("b".to_string()),
        _ => None,
    };
    assert_eq!(substitute_env("x${A}y", env).as_deref(), Ok("x${B}y"));
    assert_eq!(substitute_env("${B}${B}", env).as_deref(), Ok("bb"));
    assert_eq!(substitute_env("$${A}", env).as_deref(), Ok("${A}"));
    assert_eq!(
        substitute_env("${C}", env),
        Err(Substitution::Unset("C".into()))
    );
    assert_eq!(substitute_env("100$", env).as_deref(), Ok("100$"));
}

#[test]
fn syntax_errors_and_unknown_keys_keep_their_line_and_column() {
    let e = load(&GOOD.replace("max_rows = 10000", "max_rows = = 3")).expect_err("syntax");
    assert!(e.contains("line 10"), "{e}");
    let e = load(&GOOD.replace("exclude = []", "exclde = []")).expect_err("unknown key");
    // serde reports an unknown key at its table's header.
    assert!(e.contains("exclde") && e.contains("line 3"), "{e}");
    let e = load(&GOOD.replace("max_rows = 10000", "max_rows = \"many\"")).expect_err("type");
    assert!(e.contains("max_rows") && e.contains("line 10"), "{e}");
}

#[test]
fn notify_substitutes_only_its_own_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("both.toml");
    std::env::set_var("TIDEWATER_TEST_HOOK", "https://hooks.example/x\"y");
    std::fs::write(
        &path,
        format!(
            "{}\n[notify]\nurl = \"amqp://localhost\"\nexchange = \"e\"\nqueue = \"q\"\nwebhook_url = \"${{TIDEWATER_TEST_HOOK}}\"\n",
            GOOD.replace("\"file://lake\"", "\"${TIDEWATER_NOT_SET_FOR_NOTIFY}\"")
        ),
    )
    .expect("write");
    let n = NotifyConfig::load(&path).expect("the sinks' variables are not notify's");
    assert_eq!(n.webhook_url.as_deref(), Some("https://hooks.example/x\"y"));
}

/// `GOOD` with an AMQP sink (plus `extra` lines in it).
fn with_amqp(extra: &str) -> String {
    format!("{GOOD}\n[sinks.alerts]\ntype = \"amqp\"\nurl = \"amqp://localhost\"\nexchange = \"errors\"\n{extra}")
}

/// `GOOD` with a BigQuery sink (plus `extra` lines in it).
fn with_bigquery(extra: &str) -> String {
    format!("{GOOD}\n[sinks.wh]\ntype = \"bigquery\"\nproject = \"p\"\ndataset = \"d\"\ntable = \"t\"\n{extra}")
}

/// `GOOD` with a `[notify]` table (plus `extra` lines in it).
fn with_notify(extra: &str) -> String {
    format!("{GOOD}\n[notify]\nurl = \"amqp://localhost\"\nexchange = \"e\"\nqueue = \"q\"\nwebhook_url = \"https://hooks.example/x\"\n{extra}")
}

#[test]
fn what_cannot_run_is_refused_with_its_key() {
    let top = |line: &str| format!("{line}\n{GOOD}");
    let source = |line: &str| {
        GOOD.replace(
            "read_from = \"beginning\"",
            &format!("read_from = \"beginning\"\n{line}"),
        )
    };
    let batch = |line: &str| GOOD.replace("max_age = \"2s\"", line);
    let lake = |line: &str| format!("{GOOD}{line}\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (top("checkpoint_interval = \"0s\""), "checkpoint_interval: must be more than 0s", "timer"),
        (top("shutdown_timeout = \"0s\""), "shutdown_timeout: must be more than 0s", "in flight"),
        (top("shutdown_timeout = \"1000years\""), "shutdown_timeout: expected at most 365 days", ""),
        (top("lock_wait = \"1000years\""), "lock_wait: expected at most 365 days", ""),
        (top("schema = \"\""), "schema: must not be empty", ""),
        (top("schema = \"no/such/schema.json\""), "schema: schema no/such/schema.json", ""),
        (source("glob_interval = \"0s\""), "sources.app.glob_interval: must be more than 0s", ""),
        (source("rotate_wait = \"0s\""), "sources.app.rotate_wait: must be more than 0s", "writer"),
        (GOOD.replace("[\"logs/*.log\"]", "[\"\"]"), "sources.app.include: an empty glob", ""),
        (GOOD.replace("exclude = []", "exclude = [\"a/[\"]"), "sources.app.exclude:", "not a valid glob"),
        (batch("max_age = \"0s\""), "batch.max_age: must be more than 0s", ""),
        (batch("max_age = \"400days\""), "batch.max_age: expected at most 365 days", ""),
        (lake("request_timeout = \"0s\""), "sinks.lake.request_timeout: must be more than 0s", ""),
        (lake("concurrency = 0"), "sinks.lake.concurrency: expected at least 1", ""),
        (lake("zstd_level = 23"), "sinks.lake.zstd_level: expected 0 (uncompressed) or a zstd level", ""),
        (lake("path_template = \"{dt}.parquet\""), "sinks.lake.path_template:", "no {id}"),
        (lake("path_template = \"{dt}/{team}/{id}.parquet\""), "sinks.lake.path_template:", "\"team\""),
        (lake("part_size = \"1MiB\""), "sinks.lake.part_size: expected between 5MiB and 5GiB", ""),
        (lake("target_file_size = 0"), "sinks.lake.target_file_size: expected more than 0", ""),
        (lake("max_file_age = \"0s\""), "sinks.lake.max_file_age: must be more than 0s", ""),
        (lake("max_file_age = \"1s\""), "sinks.lake.max_file_age: expected at least batch.max_age (2s)", ""),
        (
            batch("max_age = \"10m\"") + "target_file_size = \"64MiB\"\n",
            "sinks.lake.max_file_age: expected at least batch.max_age (10m)",
            "",
        ),
        (format!("{GOOD}\n[[columns]]\nname = \"x\"\ntype = \"STRING\"\n[[columns]]\nname = \"x\"\ntype = \"INTEGER\"\n"), "columns[1].name: \"x\" is declared twice", ""),
        (format!("{GOOD}\n[[columns]]\nname = \"\"\ntype = \"STRING\"\n"), "columns[0].name: must not be empty", ""),
        (with_amqp("confirm_timeout = \"0s\""), "sinks.alerts.confirm_timeout: must be more than 0s", "confirms"),
        (with_amqp("routing_key = \"{namespace}.{app}\""), "sinks.alerts.routing_key:", "unknown placeholder {app}"),
        (with_amqp("routing_key = \"{namespace\""), "sinks.alerts.routing_key:", "unclosed"),
        (with_amqp("queue = \"\""), "sinks.alerts.queue: must not be empty", ""),
        (with_amqp("queue = \"q\"\nbinding_key = \"\""), "sinks.alerts.binding_key: must not be empty", ""),
        (with_amqp("exchange = \"\"").replace("exchange = \"errors\"\n", ""), "sinks.alerts.exchange: must not be empty", ""),
        (with_amqp("fields = [\"a\", \"\"]"), "sinks.alerts.fields[1]: must not be empty", ""),
        (with_amqp("when = 'level >= \"error\" pod'"), "sinks.alerts.when: column 18", ""),
        (with_bigquery("table = \"t_{nope}\"").replace("table = \"t\"\n", ""), "sinks.wh.table:", "neither {date} nor a column"),
        (with_bigquery("location = \"\""), "sinks.wh.location:", ""),
        (with_bigquery("clustering = [\"a\", \"b\", \"c\", \"d\", \"e\"]"), "sinks.wh.clustering: expected at most 4", ""),
        (with_bigquery("request_timeout = \"0s\""), "sinks.wh.request_timeout: must be more than 0s", ""),
        (with_bigquery("schema = \"no/such/bq.json\""), "sinks.wh.schema: cannot read no/such/bq.json", ""),
        (with_notify("shutdown_timeout = \"0s\""), "notify.shutdown_timeout: must be more than 0s", ""),
        (with_notify("group_window = \"0s\""), "notify.group_window: must be more than 0s", ""),
        (with_notify("prefetch = 0"), "notify.prefetch: must be at least 1", ""),
        (with_notify("max_attempts = 0"), "notify.max_attempts: must be at least 1", ""),
        (with_notify("link_template = \"https://x/{finger}\""), "notify.link_template:", "unknown placeholder {finger}"),
        (with_notify("link_template = \"x/{fingerprint}\""), "notify.link_template: expected an http(s)", ""),
        (with_notify("min_interval = \"1000years\""), "notify.min_interval: expected at most", ""),
    ];
    for (text, says, also) in cases {
        let e = load(&text).expect_err(says);
        assert!(
            e.contains(says) && e.contains(also),
            "expected {says:?} and {also:?}, got: {e}"
        );
    }
}

#[test]
fn what_can_run_is_accepted() {
    for text in [
        format!("lock_wait = \"0s\"\n{GOOD}"),
        format!("{GOOD}zstd_level = 0\n"),
        format!("{GOOD}zstd_level = -5\n"),
        format!("{GOOD}max_file_age = \"2s\"\n"),
        with_amqp("when = 'level >= \"error\" AND pod == \"x\"'\nrouting_key = \"{pod}.{node}\""),
        with_bigquery("clustering = []")
            .replace("table = \"t\"", "table = \"t_{namespace}_{date}\""),
        with_notify(
            "min_interval = \"0s\"\nlink_template = \"https://x/?f={fingerprint}&n={namespace}\"",
        ),
    ] {
        load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

#[test]
fn component_names_that_would_escape_the_data_dir_are_refused() {
    for name in ["\"..\"", "\"a/b\"", "\"\""] {
        let text = GOOD.replace("[sinks.lake]", &format!("[sinks.{name}]"));
        let e = load(&text).expect_err(name);
        assert!(e.contains("a name may hold only"), "{name}: {e}");
    }
    load(&GOOD.replace("[sinks.lake]", "[sinks.lake_2-eu]")).expect("a plain name");
}
