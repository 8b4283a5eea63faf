//! Routing as a configuration declares it: each sink's table and inputs,
//! what `validate` refuses, and which rows `select` hands a sink.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use tidewater_sinks::RowOrigin;

use crate::batch::{BatchConfig, Builder};
use crate::config::Config;
use crate::file::{FileMeta, K8sMeta};
use crate::parse::body::Scalar;
use crate::parse::Record;

const TWO_SOURCES: &str = r#"
data_dir = "state"
[sources.access]
type = "tail"
include = ["access.log"]
format = "text"
parser = "nginx"
drop = 'message =~ "GET /healthz"'
[[sources.access.columns]]
name = "status"
type = "INTEGER"

[sources.app]
type = "tail"
include = ["app/*.log"]
format = "cri"
drop = 'level <= "debug"'
[[sources.app.columns]]
name = "user"

[sinks.access_lake]
type = "parquet"
url = "file://access"
inputs = ["access"]

[sinks.lake]
type = "parquet"
url = "file://lake"
inputs = ["access", "app"]
when = 'level >= "warn" or namespace == "payments"'
"#;

fn load(text: &str) -> Result<Config, String> {
    Config::from_toml(text, Path::new("t.toml")).map_err(|e| e.to_string())
}

fn names(schema: &crate::schema::TableSchema) -> Vec<&str> {
    schema.columns.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn each_sink_gets_the_union_of_its_inputs_columns() {
    let config = load(TWO_SOURCES).expect("valid");
    let routes = config.routes().expect("routes");
    let access = names(&routes.sinks["access_lake"].schema);
    let lake = names(&routes.sinks["lake"].schema);
    assert_eq!(access.last(), Some(&"status"), "{access:?}");
    assert!(!access.contains(&"user"), "{access:?}");
    assert_eq!(&lake[lake.len() - 2..], &["status", "user"], "{lake:?}");
    assert!(routes.sinks["access_lake"].receives("access"));
    assert!(!routes.sinks["access_lake"].receives("app"));
    let app = names(&routes.sources["app"].schema);
    assert_eq!(app.last(), Some(&"user"));
    assert!(routes.sources["app"].drop.is_some());
}

#[test]
fn routing_mistakes_name_the_key() {
    for (from, to, says) in [
        (
            r#"inputs = ["access", "app"]"#,
            r#"inputs = ["access", "ap"]"#,
            "sinks.lake.inputs[1]: no source is named \"ap\"; the sources are: access, app",
        ),
        (
            r#"inputs = ["access", "app"]"#,
            "inputs = []",
            "sinks.lake.inputs: is empty",
        ),
        (
            r#"inputs = ["access", "app"]"#,
            r#"inputs = ["access"]"#,
            "sources.app: no sink receives this source",
        ),
        (
            r#"drop = 'level <= "debug"'"#,
            r#"drop = 'lvl == "debug"'"#,
            "sources.app.drop: column 1: unknown field",
        ),
        (
            r#"when = 'level >= "warn" or namespace == "payments"'"#,
            r#"when = 'level >= "warn" or' "#,
            "sinks.lake.when: column 19: expected a comparison after `or`",
        ),
        (
            "name = \"user\"",
            "name = \"status\"",
            "sinks.lake.inputs: sources \"access\" and \"app\" both have a column \"status\", as INTEGER and STRING",
        ),
        (
            "inputs = [\"access\"]\n",
            "inputs = \"access\"\n",
            "sinks.access_lake: ",
        ),
    ] {
        assert!(TWO_SOURCES.contains(from), "{from}");
        let e = load(&TWO_SOURCES.replacen(from, to, 1)).expect_err(to);
        assert!(e.contains(says), "{to}:\n{e}");
    }
}

/// A batch of the access source: `(level, namespace, status)` per row.
fn access_batch(config: &Config, rows: &[(&str, &str, i64)]) -> crate::batch::Batch {
    let routes = config.routes().expect("routes");
    let plan = &routes.sources["access"];
    let mut b = Builder::new(&plan.schema, &plan.columns, BatchConfig::default())
        .expect("builder")
        .for_source("access", None, None)
        .with_origins();
    for (i, (level, namespace, status)) in rows.iter().enumerate() {
        let meta = FileMeta {
            source: "access".into(),
            path: "access.log".into(),
            k8s: K8sMeta {
                namespace: Some(namespace.to_string()),
                ..K8sMeta::default()
            },
            fingerprint: 1,
            inode_key: 1,
        };
        let rec = Record {
            level: Some((*level).into()),
            message: Some("GET /".into()),
            offset: i as u64 * 10,
            extras: vec![Some(Scalar::Int(*status))],
            ..Record::default()
        };
        b.append(&meta, &rec, 0);
    }
    b.finish().expect("a batch")
}

#[test]
fn a_sink_receives_only_its_rows_in_its_own_table() {
    let config = load(TWO_SOURCES).expect("valid");
    let routes = config.routes().expect("routes");
    let lake = &routes.sinks["lake"];
    let batch = access_batch(
        &config,
        &[
            ("info", "shop", 200),
            ("error", "shop", 500),
            ("info", "payments", 200),
            ("debug", "shop", 404),
        ],
    );
    let origins: Arc<[RowOrigin]> = batch.origins.into();
    let selected = lake.select(&batch.records, &origins);
    assert_eq!(selected.filtered, 2);
    let selected = selected.rows.expect("two rows");
    assert_eq!(
        selected.positions.as_deref(),
        Some(&[1, 2][..]),
        "positions in the batch as built"
    );
    let (rows, kept) = (selected.records, selected.origins);
    assert_eq!(rows.schema(), *lake.arrow());
    assert_eq!(kept.iter().map(|o| o.offset).collect::<Vec<_>>(), [10, 20]);
    let status = rows.column_by_name("status").expect("status");
    assert_eq!(
        status.as_primitive::<Int64Type>().values().to_vec(),
        [500, 200]
    );
    let user = rows.column_by_name("user").expect("the app's column");
    assert_eq!(
        user.null_count(),
        2,
        "NULL where the source has no such column"
    );
    // Nothing for the sink: the dispatcher acknowledges it at once.
    let none = lake.select(&batch.records.slice(0, 1), &Arc::from(Vec::new()));
    assert!(none.rows.is_none());
    assert_eq!(none.filtered, 1);
    // The access lake takes every row, in the source's own table.
    let all = routes.sinks["access_lake"].select(&batch.records, &origins);
    assert_eq!(
        (all.filtered, all.rows.map(|r| r.records.num_rows())),
        (0, Some(4))
    );
}

#[test]
fn drop_removes_rows_when_the_batch_is_finished_and_still_covers_them() {
    let config = load(&TWO_SOURCES.replace(
        r#"drop = 'message =~ "GET /healthz"'"#,
        "drop = 'status >= 400'",
    ))
    .expect("valid");
    let routes = config.routes().expect("routes");
    let plan = &routes.sources["access"];
    let mut b = Builder::new(&plan.schema, &plan.columns, BatchConfig::default())
        .expect("builder")
        .for_source("access", plan.drop.clone(), None)
        .with_origins();
    let meta = FileMeta {
        source: "access".into(),
        path: "access.log".into(),
        k8s: K8sMeta::default(),
        fingerprint: 1,
        inode_key: 1,
    };
    for (offset, status) in [(0, 200), (10, 404), (20, 200), (30, 503)] {
        let rec = Record {
            offset,
            extras: vec![Some(Scalar::Int(status))],
            ..Record::default()
        };
        b.append(&meta, &rec, 0);
    }
    let file = crate::file::FileId::next();
    b.progress(file, 40);
    let batch = b.finish().expect("a batch");
    assert_eq!(batch.dropped, 2);
    assert_eq!(batch.records.num_rows(), 2);
    let offsets = batch.records.column_by_name("offset").expect("offset");
    assert_eq!(
        offsets.as_primitive::<Int64Type>().values().to_vec(),
        [0, 20]
    );
    assert_eq!(batch.acks, [(file, 40)], "the acks cover dropped rows");
    assert_eq!(&*batch.source, "access");
    let kept: Vec<u64> = batch.origins.iter().map(|o| o.offset).collect();
    assert_eq!(kept, [0, 20], "the origins follow the rows");
}
