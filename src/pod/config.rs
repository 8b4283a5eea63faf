//! `[kubernetes]`: where the Pod's own metadata is, for a sidecar.
//!
//! Guarantees: a `KubernetesConfig` that passed [`KubernetesConfig::check`]
//! names at least one file, and no empty path. Errors name the key relative
//! to `[kubernetes]` (`"labels_file"`); the registry ([`crate::config`])
//! prefixes `kubernetes`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tidewater_sinks::config::Invalid;

/// `[kubernetes]`: the files of a `downwardAPI` volume.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The item with `fieldPath: metadata.labels`: the `labels` column,
    /// and the `[[columns]]` with a `label`.
    #[serde(default)]
    pub labels_file: Option<PathBuf>,
    /// The item with `fieldPath: metadata.annotations`: the `annotations`
    /// column.
    #[serde(default)]
    pub annotations_file: Option<PathBuf>,
}

impl KubernetesConfig {
    /// What serde cannot check; keys relative to `[kubernetes]`.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.labels_file.is_none() && self.annotations_file.is_none() {
            return Err(Invalid::new(
                "labels_file",
                "[kubernetes] names no file: set labels_file and/or annotations_file (the items of a downwardAPI volume), or leave the table out",
            ));
        }
        for (key, path) in self.files() {
            if path.as_os_str().is_empty() {
                return Err(Invalid::new(key, "must not be empty (leave the key out)"));
            }
        }
        Ok(())
    }

    /// What is valid but probably not meant, for `validate`: a file that
    /// cannot be read now (relative paths resolved against `base_dir`, as
    /// `run` does). `run` starts anyway, with NULL columns until it can.
    pub fn warnings(&self, base_dir: &Path) -> Vec<Invalid> {
        self.files()
            .filter_map(|(key, path)| {
                let full = base_dir.join(path);
                let e = std::fs::read(&full).err()?;
                Some(Invalid::new(
                    key,
                    format!(
                        "{} cannot be read ({e}): the column stays NULL until it can (is the downwardAPI volume mounted?)",
                        full.display()
                    ),
                ))
            })
            .collect()
    }

    /// `(key, path)` of each configured file.
    pub fn files(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        [
            ("labels_file", self.labels_file.as_deref()),
            ("annotations_file", self.annotations_file.as_deref()),
        ]
        .into_iter()
        .filter_map(|(key, path)| Some((key, path?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubernetes(toml: &str) -> Result<KubernetesConfig, String> {
        toml::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_s_table_is_accepted() {
        let k = kubernetes(
            "labels_file = \"/etc/podinfo/labels\"\nannotations_file = \"/etc/podinfo/annotations\"",
        )
        .expect("valid");
        assert_eq!(k.check(), Ok(()));
        assert_eq!(k.files().count(), 2);
        let k = kubernetes("labels_file = \"podinfo/labels\"").expect("valid");
        assert_eq!(k.check(), Ok(()));
    }

    #[test]
    fn errors_name_the_key_relative_to_the_table() {
        let e = kubernetes("")
            .expect("parses")
            .check()
            .expect_err("no file");
        assert_eq!(e.key, "labels_file");
        let e = kubernetes("annotations_file = \"\"")
            .expect("parses")
            .check()
            .expect_err("empty");
        assert_eq!(
            e.under("kubernetes").to_string(),
            "kubernetes.annotations_file: must not be empty (leave the key out)"
        );
        let e = kubernetes("label_file = \"x\"").expect_err("unknown key");
        assert!(e.contains("unknown field `label_file`"), "{e}");
    }

    #[test]
    fn an_unreadable_file_is_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("labels"), "a=\"b\"").expect("write");
        let k = kubernetes("labels_file = \"labels\"\nannotations_file = \"annotations\"")
            .expect("valid");
        let warnings = k.warnings(dir.path());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "annotations_file");
        assert!(
            warnings[0].message.contains("cannot be read"),
            "{warnings:?}"
        );
    }
}
