use std::os::unix::fs::symlink;

use super::*;

/// A downwardAPI volume written the way the kubelet's AtomicWriter does.
struct Volume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl Volume {
    fn new(labels: &str, annotations: &str) -> Self {
        let mut v = Volume {
            dir: tempfile::tempdir().expect("tempdir"),
            generation: 0,
        };
        v.update(labels, annotations);
        for name in ["labels", "annotations"] {
            symlink(format!("..data/{name}"), v.dir.path().join(name)).expect("symlink");
        }
        v
    }

    /// A new timestamped directory, `..data_tmp` pointing at it, renamed
    /// over `..data`, the old directory removed.
    fn update(&mut self, labels: &str, annotations: &str) {
        let root = self.dir.path();
        self.generation += 1;
        let name = format!("..2026_12_02_13_00_0{}.123456789", self.generation);
        std::fs::create_dir(root.join(&name)).expect("mkdir");
        std::fs::write(root.join(&name).join("labels"), labels).expect("write");
        std::fs::write(root.join(&name).join("annotations"), annotations).expect("write");
        let old = std::fs::read_link(root.join("..data")).ok();
        symlink(&name, root.join("..data_tmp")).expect("symlink");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("rename");
        if let Some(old) = old {
            std::fs::remove_dir_all(root.join(old)).expect("remove the old dir");
        }
    }

    fn config(&self) -> KubernetesConfig {
        KubernetesConfig {
            labels_file: Some(self.dir.path().join("labels")),
            annotations_file: Some("annotations".into()),
        }
    }
}

#[test]
fn a_kubelet_update_is_seen_at_the_next_check() {
    let mut volume = Volume::new("app=\"web\"\nteam=\"payments\"", "note=\"two\\nlines\"");
    // annotations_file is relative: resolved against the base dir.
    let (pod, mut refresher) = PodInfo::load(&volume.config(), volume.dir.path());
    let first = pod.current();
    assert_eq!(
        first.labels_json(),
        Some(r#"{"app":"web","team":"payments"}"#)
    );
    assert_eq!(first.annotations_json(), Some(r#"{"note":"two\nlines"}"#));
    assert_eq!(first.label("team"), Some("payments"));
    assert_eq!(first.label("tier"), None);

    // Nothing changed: the same snapshot.
    assert!(!refresher.refresh());
    assert!(Arc::ptr_eq(&first, &pod.current()));

    volume.update("app=\"web\"\nteam=\"checkout\"", "note=\"two\\nlines\"");
    assert!(refresher.refresh());
    let second = pod.current();
    assert_eq!(second.label("team"), Some("checkout"));
    assert_eq!(second.annotations_json(), first.annotations_json());
    // The batch that held the first snapshot still has it.
    assert_eq!(first.label("team"), Some("payments"));

    // Same content rewritten (a new directory): no new snapshot.
    volume.update("app=\"web\"\nteam=\"checkout\"", "note=\"two\\nlines\"");
    assert!(!refresher.refresh());
}

#[test]
fn a_missing_file_gives_null_until_it_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = KubernetesConfig {
        labels_file: Some("labels".into()),
        annotations_file: None,
    };
    let (pod, mut refresher) = PodInfo::load(&config, dir.path());
    assert_eq!(*pod.current(), Snapshot::default());
    assert!(refresher.labels.as_ref().is_some_and(|w| w.failing));
    assert!(!refresher.refresh(), "still missing: no change");

    std::fs::write(dir.path().join("labels"), "").expect("write");
    assert!(refresher.refresh());
    assert_eq!(
        pod.current().labels_json(),
        Some("{}"),
        "an empty file is {{}}"
    );
    assert!(refresher.labels.as_ref().is_some_and(|w| !w.failing));

    // A plain file edited in place is seen too (size and mtime).
    std::fs::write(dir.path().join("labels"), "a=\"1\"").expect("write");
    assert!(refresher.refresh());
    assert_eq!(pod.current().label("a"), Some("1"));

    std::fs::remove_file(dir.path().join("labels")).expect("remove");
    assert!(refresher.refresh());
    assert_eq!(pod.current().labels_json(), None);
}

#[tokio::test]
async fn the_refresher_follows_updates_until_the_token_is_cancelled() {
    let mut volume = Volume::new("a=\"1\"", "");
    let (pod, refresher) = PodInfo::load(&volume.config(), volume.dir.path());
    let token = CancellationToken::new();
    let task = tokio::spawn(refresher.run(Duration::from_millis(10), token.clone()));
    volume.update("a=\"2\"", "");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pod.current().label("a") != Some("2") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the update was not seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    token.cancel();
    task.await.expect("joins").expect("ends cleanly");
}

mod builder {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::batch::{BatchConfig, Builder};
    use crate::file::{FileMeta, K8sMeta};
    use crate::parse::Record;
    use crate::schema::{ExtraColumn, ExtraType, TableSchema};

    fn column(name: &str, ty: ExtraType, label: &str) -> ExtraColumn {
        ExtraColumn {
            name: name.into(),
            ty,
            from: None,
            label: Some(label.into()),
        }
    }

    fn strings(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<Option<String>> {
        let a = batch
            .column_by_name(name)
            .expect("column")
            .as_string::<i32>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    #[test]
    fn a_batch_carries_the_metadata_of_its_first_row() {
        let mut volume = Volume::new("replicas=\"3\"\nteam=\"payments\"", "note=\"hi\"");
        let (pod, mut refresher) = PodInfo::load(&volume.config(), volume.dir.path());
        let columns = [
            column("team", ExtraType::String, "team"),
            column("replicas", ExtraType::Integer, "replicas"),
            column("tier", ExtraType::String, "tier"),
            column("team_id", ExtraType::Integer, "team"),
        ];
        let schema = TableSchema::load(None, &columns).expect("schema");
        let mut b = Builder::new(&schema, &columns, BatchConfig::default())
            .expect("builder")
            .with_pod(pod);
        let meta = FileMeta {
            source: "app".into(),
            path: "app.log".into(),
            k8s: K8sMeta::default(),
            fingerprint: 1,
            inode_key: 1,
        };
        let rec = |offset| Record {
            message: Some("hello".into()),
            offset,
            ..Record::default()
        };
        b.append(&meta, &rec(0), 0);
        volume.update("replicas=\"4\"\nteam=\"checkout\"", "");
        assert!(refresher.refresh());
        b.append(&meta, &rec(6), 0);
        let first = b.finish().expect("a batch").records;
        b.append(&meta, &rec(12), 0);
        let second = b.finish().expect("a batch").records;

        let payments = Some(r#"{"replicas":"3","team":"payments"}"#.to_string());
        assert_eq!(strings(&first, "labels"), [payments.clone(), payments]);
        assert_eq!(
            strings(&first, "annotations")[1].as_deref(),
            Some(r#"{"note":"hi"}"#)
        );
        assert_eq!(
            strings(&first, "team"),
            [Some("payments".into()), Some("payments".into())]
        );
        let replicas = first.column_by_name("replicas").expect("column");
        assert_eq!(replicas.as_primitive::<Int64Type>().value(1), 3);
        assert_eq!(
            strings(&first, "tier"),
            [None, None],
            "a label the Pod lacks"
        );
        // A label that does not convert: NULL and flagged, on every row.
        assert_eq!(
            first
                .column_by_name("team_id")
                .expect("column")
                .null_count(),
            2
        );
        let flags = first
            .column_by_name("flags")
            .expect("column")
            .as_list::<i32>();
        assert_eq!(
            flags.value(1).as_string::<i32>().value(0),
            "conversion_error"
        );

        assert_eq!(
            strings(&second, "labels"),
            [Some(r#"{"replicas":"4","team":"checkout"}"#.to_string())]
        );
        assert_eq!(strings(&second, "annotations"), [Some("{}".to_string())]);
        assert_eq!(strings(&second, "team"), [Some("checkout".into())]);
    }

    #[test]
    fn without_a_pod_the_columns_are_null_and_other_schemas_work() {
        let columns = [column("team", ExtraType::String, "team")];
        let schema = TableSchema::load(None, &columns).expect("schema");
        let mut b = Builder::new(&schema, &columns, BatchConfig::default()).expect("builder");
        let meta = FileMeta {
            source: "app".into(),
            path: "app.log".into(),
            k8s: K8sMeta::default(),
            fingerprint: 1,
            inode_key: 1,
        };
        b.append(&meta, &Record::default(), 0);
        let batch = b.finish().expect("a batch").records;
        assert_eq!(strings(&batch, "labels"), [None]);
        assert_eq!(strings(&batch, "team"), [None]);

        // A schema file of the old shape, without labels and annotations.
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("old.json");
        std::fs::write(
            &old,
            r#"[{"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
                {"name": "message", "type": "STRING"}]"#,
        )
        .expect("write");
        let schema = TableSchema::load(Some(&old), &[]).expect("schema");
        let volume = Volume::new("team=\"payments\"", "");
        let (pod, _refresher) = PodInfo::load(&volume.config(), volume.dir.path());
        let mut b = Builder::new(&schema, &[], BatchConfig::default())
            .expect("builder")
            .with_pod(pod);
        b.append(&meta, &Record::default(), 0);
        assert_eq!(b.finish().expect("a batch").records.num_columns(), 2);
    }
}
