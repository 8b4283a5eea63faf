#!/usr/bin/env python3
"""Check what `kubectl kustomize` built (YAML on stdin) for the properties an
operator relies on, beyond the OpenAPI schemas (kubernetes-validate checks
those): the tidewater container runs as a non-root user with a read-only root
filesystem (or, in the DaemonSet, as root with all capabilities dropped but
DAC_READ_SEARCH), has its probes on the API port, and the Pod's grace period is
longer than tidewater's drain deadline; every ${VAR} its config substitutes is
set in the container's env.

A build may also hold the `tidewater notify` Deployment (sidecar/notify): it
runs non-root on a read-only root filesystem, its liveness (/healthz) and
readiness (/readyz) probes are on the port named tidewater-api, which is
[notify.api]'s, its grace period is longer than notify's shutdown_timeout, it
is one replica replaced with Recreate (one consumer per queue: see
sidecar/notify/deployment.yaml), runs the sidecar's image, and its broker
password and Slack webhook come from Secrets, never from the config.

Writes the ConfigMap's tidewater.toml to argv[1] (for `tidewater validate`),
followed by the notify ConfigMap's notify.toml when the build has one (a file
of [notify] only, which validate checks as notify does), prints a JSON
summary, and exits 1 naming the first property that fails."""
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


def config_maps():
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}


def check_env_refs(who, container):
    """A configMapKeyRef names a ConfigMap of the build and one of its keys
    (the overlays replace tidewater-settings: a key it lacks stops the Pod)."""
    maps = config_maps()
    for e in container.get("env", []):
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if ref and not ref.get("optional") and ref.get("key") not in maps.get(ref.get("name"), {}):
            fail(f"{who}: env {e['name']} refers to ConfigMap {ref.get('name')} key {ref.get('key')}, "
                 "which the build does not have")


def secret_vars(container):
    return {e["name"] for e in container.get("env", []) if (e.get("valueFrom") or {}).get("secretKeyRef")}


def check_secret_url(key, url, container):
    """A URL's password (amqp://user:password@host) is a ${VAR} from a Secret."""
    m = re.match(r"^[a-z]+://([^/@]*)@", url)
    whole = re.fullmatch(r"\$\{(\w+)\}", url)
    if whole:
        if whole.group(1) not in secret_vars(container):
            fail(f"{key}: ${{{whole.group(1)}}} holds a password and must come from a Secret (secretKeyRef)")
    elif m and ":" in m.group(1):
        password = m.group(1).split(":", 1)[1]
        var = re.fullmatch(r"\$\{(\w+)\}", password)
        if not var or var.group(1) not in secret_vars(container):
            fail(f"{key}: the password is in plain text; take it from a Secret as ${{VAR}}")


configs = [d for d in docs if d["kind"] == "ConfigMap" and "tidewater.toml" in d.get("data", {})]
if len(configs) != 1:
    fail(f"expected one ConfigMap with tidewater.toml, found {len(configs)}")
toml_text = configs[0]["data"]["tidewater.toml"]
with open(out_toml, "w") as f:
    f.write(toml_text)
config = tomllib.loads(toml_text)


def pod_containers(doc):
    pod = doc["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


def is_notify(doc):
    return any((c.get("args") or [None])[0] == "notify" for c in pod_containers(doc))


workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
notify_workloads = [d for d in workloads if is_notify(d)]
workloads = [d for d in workloads if not is_notify(d)]
if len(workloads) != 1:
    fail(f"expected one workload besides notify, found {len(workloads)}")
if len(notify_workloads) > 1:
    fail(f"expected at most one notify Deployment, found {len(notify_workloads)}")
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
# And every variable the config substitutes is set (an unset one stops the
# start); envFrom is optional and cannot be counted on.
unset = set(re.findall(r"\$\{(\w+)\}", toml_text)) - env
if unset:
    fail(f"tidewater.toml substitutes variables the container does not set: {sorted(unset)}")
check_env_refs("tidewater", tw)
for name, sink in config.get("sinks", {}).items():
    if sink.get("type") == "amqp":
        check_secret_url(f"sinks.{name}.url", sink.get("url", ""), tw)

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


def check_notify(deployment, sidecar, run_config):
    """The notify Deployment; returns its summary, with its notify.toml."""
    where = f"notify ({deployment['kind']} {deployment['metadata']['name']})"
    if deployment["kind"] != "Deployment":
        fail(f"{where}: notify runs as a Deployment")
    spec = deployment["spec"]
    # One consumer per queue (sidecar/notify/deployment.yaml says why).
    if spec.get("replicas", 1) != 1:
        fail(f"{where}: replicas {spec['replicas']}: two consumers on one queue split a fingerprint's events")
    if (spec.get("strategy") or {}).get("type") != "Recreate":
        fail(f"{where}: a rolling update would run two consumers at once: use strategy Recreate")
    npod = spec["template"]["spec"]
    found = [c for c in pod_containers(deployment) if (c.get("args") or [None])[0] == "notify"]
    if len(found) != 1:
        fail(f"{where}: expected one container running notify, found {len(found)}")
    c = found[0]
    args = c["args"]
    if len(args) != 3 or args[1] not in ("--config", "-c"):
        fail(f"{where}: args {args}: expected [notify, --config, FILE]")
    if c.get("image") != sidecar.get("image"):
        fail(f"{where}: image {c.get('image')} is not the sidecar's {sidecar.get('image')}")

    # The config: a key of a ConfigMap of the build, mounted at its directory.
    path = args[2]
    directory, name = path.rsplit("/", 1)
    text = None
    for m in c.get("volumeMounts", []):
        if m["mountPath"].rstrip("/") != directory:
            continue
        volume = next((v for v in npod.get("volumes", []) if v["name"] == m["name"]), {})
        cm = (volume.get("configMap") or {}).get("name")
        items = {i["path"]: i["key"] for i in (volume.get("configMap") or {}).get("items", [])}
        text = config_maps().get(cm, {}).get(items.get(name, name))
    if text is None:
        fail(f"{where}: {path} is not a key of a ConfigMap of the build mounted at {directory}")
    root = tomllib.loads(text)
    if set(root) != {"notify"}:
        fail(f"{where}: {name} holds {sorted(set(root) - {'notify'})} besides [notify]: notify reads only [notify]")
    notify = root["notify"]
    # The sidecars publish where notify consumes.
    amqp = [k for k in run_config.get("sinks", {}).values() if k.get("type") == "amqp"]
    if not any(k.get("exchange") == notify.get("exchange") for k in amqp):
        fail(f"{where}: no amqp sink of tidewater.toml publishes to notify.exchange {notify.get('exchange')!r}")
    for k in amqp:
        if k.get("queue") not in (None, notify.get("queue")):
            fail(f"{where}: sinks' queue {k['queue']!r} is not notify.queue {notify.get('queue')!r}")

    grace = npod.get("terminationGracePeriodSeconds", 30)
    drain = seconds(notify.get("shutdown_timeout", "10s"))
    if grace <= drain:
        fail(f"{where}: terminationGracePeriodSeconds {grace} is not above notify.shutdown_timeout {drain}s")

    sc = {**npod.get("securityContext", {}), **c.get("securityContext", {})}
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        fail(f"{where}: may run as root")
    if not sc.get("readOnlyRootFilesystem"):
        fail(f"{where}: the root filesystem is not read-only")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{where}: privilege escalation is allowed")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"] or (sc.get("capabilities") or {}).get("add"):
        fail(f"{where}: capabilities are not all dropped")
    if "memory" not in (c.get("resources") or {}).get("limits", {}):
        fail(f"{where}: no memory limit")

    # The API: the port sidecar/monitoring's PodMonitor scrapes, both probes on it.
    api = notify.get("api", {})
    if api.get("enabled", True) is False:
        fail(f"{where}: [notify.api] is disabled: no probes, no /metrics")
    port = int(api.get("address", "0.0.0.0:8687").rsplit(":", 1)[1])
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if ports.get("tidewater-api") != port:
        fail(f"{where}: no port named tidewater-api on [notify.api]'s port {port}: {ports}")
    for probe, path_ in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet", {})
        if get.get("path") != path_ or ports.get(get.get("port"), get.get("port")) != port:
            fail(f"{where}: {probe} is not {path_} on the API port {port}: {get}")

    # Secrets: the broker's password and the webhook, never in the config.
    check_secret_url(f"{where}: notify.url", notify.get("url", ""), c)
    env = {e["name"] for e in c.get("env", [])}
    used = set(re.findall(r"\$\{(\w+)\}", text))
    if used - env:
        fail(f"{where}: {name} substitutes variables the container does not set: {sorted(used - env)}")
    if env - used - {"TIDEWATER_LOG"}:
        fail(f"{where}: environment variables notify does not read: {sorted(env - used - {'TIDEWATER_LOG'})}")
    check_env_refs(where, c)
    if "webhook_url" in notify:
        var = re.fullmatch(r"\$\{(\w+)\}", notify["webhook_url"])
        if not var or var.group(1) not in secret_vars(c):
            fail(f"{where}: notify.webhook_url is a secret: a ${{VAR}} from a Secret, or webhook_url_file")
    else:
        want = notify.get("webhook_url_file", "")
        found = False
        for m in c.get("volumeMounts", []):
            volume = next((v for v in npod.get("volumes", []) if v["name"] == m["name"]), {})
            secret = volume.get("secret")
            if secret is None:
                continue
            keys = [i["path"] for i in secret.get("items", [])] or [want.rsplit("/", 1)[-1]]
            found |= any(m["mountPath"].rstrip("/") + "/" + k == want for k in keys)
        if not found:
            fail(f"{where}: notify.webhook_url_file {want!r} is not a file of a mounted Secret")
    return {
        "image": c["image"],
        "grace_seconds": grace,
        "drain_seconds": drain,
        "memory_limit": c["resources"]["limits"]["memory"],
        "toml": text,
    }


summary_notify = None
if notify_workloads:
    summary_notify = check_notify(notify_workloads[0], tw, config)
    with open(out_toml, "a") as f:
        f.write(f"\n# --- notify.toml of the notify Deployment ---\n{summary_notify.pop('toml')}")

print(json.dumps({
    "kind": workload["kind"],
    "namespace": workload["metadata"].get("namespace"),
    "image": tw["image"],
    "grace_seconds": grace,
    "drain_seconds": drain,
    "memory_limit": tw["resources"]["limits"]["memory"],
    "notify": summary_notify,
}))
