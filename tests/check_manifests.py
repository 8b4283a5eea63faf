#!/usr/bin/env python3
"""Check what `kubectl kustomize` built (YAML on stdin) for the properties an
operator relies on, beyond the OpenAPI schemas (kubernetes-validate checks
those): the tidewater container runs as a non-root user with a read-only root
filesystem (or, in the DaemonSet, as root with all capabilities dropped but
DAC_READ_SEARCH), has its probes on the API port, and the Pod's grace period is
longer than tidewater's drain deadline.

Writes the ConfigMap's tidewater.toml to argv[1] (for `tidewater validate`),
prints a JSON summary, and exits 1 naming the first property that fails."""
import json
import re
import sys
import tomllib

import yaml

out_toml = sys.argv[1]
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]


def fail(why):
    print(f"manifest check failed: {why}", file=sys.stderr)
    sys.exit(1)


def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    fail(f"cannot read the duration {duration!r}")


configs = [d for d in docs if d["kind"] == "ConfigMap" and "tidewater.toml" in d.get("data", {})]
if len(configs) != 1:
    fail(f"expected one ConfigMap with tidewater.toml, found {len(configs)}")
toml_text = configs[0]["data"]["tidewater.toml"]
with open(out_toml, "w") as f:
    f.write(toml_text)
config = tomllib.loads(toml_text)

workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
if len(workloads) != 1:
    fail(f"expected one workload, found {len(workloads)}")
workload = workloads[0]
pod = workload["spec"]["template"]["spec"]
containers = pod.get("initContainers", []) + pod["containers"]
tidewater = [c for c in containers if c["name"] == "tidewater"]
if len(tidewater) != 1:
    fail("no container named tidewater")
tw = tidewater[0]
if workload["kind"] == "Deployment" and tw.get("restartPolicy") != "Always":
    fail("the sidecar is not a native sidecar (initContainer with restartPolicy: Always)")

grace = pod.get("terminationGracePeriodSeconds", 30)
drain = seconds(config.get("shutdown_timeout", "30s"))
if grace <= drain:
    fail(f"terminationGracePeriodSeconds {grace} is not above shutdown_timeout {drain}s")

sc = {**pod.get("securityContext", {}), **tw.get("securityContext", {})}
if not sc.get("readOnlyRootFilesystem"):
    fail("tidewater's root filesystem is not read-only")
if sc.get("allowPrivilegeEscalation") is not False:
    fail("privilege escalation is allowed")
caps = sc.get("capabilities", {})
if caps.get("drop") != ["ALL"]:
    fail("capabilities are not all dropped")
if workload["kind"] == "Deployment":
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        fail("the sidecar may run as root")
elif set(caps.get("add", [])) - {"DAC_READ_SEARCH"}:
    fail(f"capabilities beyond DAC_READ_SEARCH: {caps['add']}")

port = int(config["api"]["address"].rsplit(":", 1)[1])
ports = {p["name"]: p["containerPort"] for p in tw.get("ports", [])}
probe = tw.get("livenessProbe", {}).get("httpGet", {})
if probe.get("path") != "/healthz" or ports.get(probe.get("port")) != port:
    fail(f"the liveness probe is not /healthz on the API port {port}: {probe}")
if "limits" not in tw.get("resources", {}) or "memory" not in tw["resources"]["limits"]:
    fail("no memory limit")

mounts = {m["mountPath"] for m in tw.get("volumeMounts", [])}
if config["data_dir"] not in mounts:
    fail(f"data_dir {config['data_dir']} is not on a volume")
env = {e["name"] for e in tw.get("env", [])}
if "NODE_NAME" not in env:
    fail("NODE_NAME does not come from the Downward API")
# Only variables tidewater reads (a misspelt one is silently ignored).
known = {"POD_NAME", "POD_NAMESPACE", "NODE_NAME", "CONTAINER_NAME", "TIDEWATER_LOG"}
known |= set(re.findall(r"\$\{(\w+)\}", toml_text))  # what the config substitutes
if env - known:
    fail(f"environment variables tidewater does not read: {sorted(env - known)}")
if workload["kind"] == "Deployment" and not {"POD_NAME", "POD_NAMESPACE"} <= env:
    fail("POD_NAME and POD_NAMESPACE do not come from the Downward API")

# [kubernetes]: each file is an item of a downwardAPI volume mounted in the
# tidewater container, with the fieldPath its column needs.
for key, field in (("labels_file", "metadata.labels"), ("annotations_file", "metadata.annotations")):
    want = config.get("kubernetes", {}).get(key)
    if want is None:
        continue
    found = False
    for m in tw.get("volumeMounts", []):
        volume = next((v for v in pod.get("volumes", []) if v["name"] == m["name"]), {})
        for item in volume.get("downwardAPI", {}).get("items", []):
            path = m["mountPath"].rstrip("/") + "/" + item["path"]
            found |= path == want and item.get("fieldRef", {}).get("fieldPath") == field
    if not found:
        fail(f"kubernetes.{key} = {want!r} is not a downwardAPI item with fieldPath {field} mounted in tidewater")

print(json.dumps({
    "kind": workload["kind"],
    "namespace": workload["metadata"].get("namespace"),
    "image": tw["image"],
    "grace_seconds": grace,
    "drain_seconds": drain,
    "memory_limit": tw["resources"]["limits"]["memory"],
}))
