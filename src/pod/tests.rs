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
