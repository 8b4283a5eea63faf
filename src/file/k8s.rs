//! Kubernetes metadata of a log file.
//!
//! From the kubelet's paths:
//! `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log` and
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`; for a sidecar,
//! whatever the path does not say comes from the Downward API environment
//! (`POD_NAME`, `POD_NAMESPACE`, `NODE_NAME`, `CONTAINER_NAME`).

use std::path::Path;

/// Where a record ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sMeta {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
}

impl K8sMeta {
    /// Metadata for `path` (also tried on `resolved`, the symlink's target),
    /// completed from `env`.
    pub fn for_file(path: &Path, resolved: Option<&Path>, env: &K8sMeta) -> Self {
        let mut meta = from_path(path)
            .or_else(|| resolved.and_then(from_path))
            .unwrap_or_default();
        meta.namespace = meta.namespace.or_else(|| env.namespace.clone());
        meta.pod = meta.pod.or_else(|| env.pod.clone());
        meta.container = meta.container.or_else(|| env.container.clone());
        meta.node = meta.node.or_else(|| env.node.clone());
        meta
    }

    /// The Downward API variables of this process.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            namespace: var("POD_NAMESPACE"),
            pod: var("POD_NAME"),
            container: var("CONTAINER_NAME"),
            node: var("NODE_NAME"),
        }
    }
}

fn from_path(path: &Path) -> Option<K8sMeta> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent()?;
    let parent_name = parent.file_name()?.to_str()?;
    if parent_name == "containers" {
        // <pod>_<namespace>_<container>-<id>.log
        let stem = name.strip_suffix(".log")?;
        let mut parts = stem.splitn(3, '_');
        let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let (container, id) = rest.rsplit_once('-')?;
        if pod.is_empty() || namespace.is_empty() || container.is_empty() || id.is_empty() {
            return None;
        }
        return Some(K8sMeta {
            namespace: Some(namespace.into()),
            pod: Some(pod.into()),
            container: Some(container.into()),
            node: None,
        });
    }
    // /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log[.<rotation>]
    let pod_dir = parent.parent()?;
    if pod_dir.parent()?.file_name()?.to_str()? != "pods" {
        return None;
    }
    let mut parts = pod_dir.file_name()?.to_str()?.splitn(3, '_');
    let (namespace, pod, _uid) = (parts.next()?, parts.next()?, parts.next()?);
    Some(K8sMeta {
        namespace: Some(namespace.into()),
        pod: Some(pod.into()),
        container: Some(parent_name.into()),
        node: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_and_pod_paths() {
        let env = K8sMeta {
            node: Some("node-1".into()),
            ..K8sMeta::default()
        };
        let m = K8sMeta::for_file(
            Path::new("/var/log/containers/web-7d9f_shop_app-0123abcd.log"),
            None,
            &env,
        );
        assert_eq!(m.namespace.as_deref(), Some("shop"));
        assert_eq!(m.pod.as_deref(), Some("web-7d9f"));
        assert_eq!(m.container.as_deref(), Some("app"));
        assert_eq!(m.node.as_deref(), Some("node-1"));
        let m = K8sMeta::for_file(
            Path::new("/var/log/containers/x.log"),
            Some(Path::new(
                "/var/log/pods/shop_web-7d9f_1234-uid/side-car/0.log",
            )),
            &K8sMeta::default(),
        );
        assert_eq!(m.container.as_deref(), Some("side-car"));
        assert_eq!(m.pod.as_deref(), Some("web-7d9f"));
    }

    #[test]
    fn other_paths_use_the_environment() {
        let env = K8sMeta {
            pod: Some("p".into()),
            ..K8sMeta::default()
        };
        let m = K8sMeta::for_file(Path::new("logs/app.log"), None, &env);
        assert_eq!(m.pod.as_deref(), Some("p"));
        assert_eq!(m.namespace, None);
    }
}
