#!/usr/bin/env python3
"""Check sidecar/monitoring and sidecar/dashboards against what tidewater
really exports.

    check_monitoring.py SCRAPE [SCRAPE ...] REPO_ROOT

Each SCRAPE is a file holding one GET /metrics (the OpenMetrics text): of a
running `tidewater run` that has a sink and has read at least one file, and
of a running `tidewater notify` that has failed at least one post, so that
every family has a sample and its labels are seen (the label checks need
them). The names and labels are checked against the union of the scrapes;
REPO_ROOT is the repository. Checked:

1. Every metric name in every PromQL expression of the PrometheusRule
   (sidecar/monitoring/prometheusrule.yaml) and of the Grafana dashboards
   (sidecar/dashboards/*.json: panel targets and variable queries) is
   a series name of a scrape, exactly as Prometheus stores it: counters
   with _total, histograms as _bucket/_sum/_count (a "# TYPE" line gives
   the names of a family that has no sample yet). `up`, which Prometheus
   adds itself, is the one exception. Label names in matchers, in
   by/without/on/ignoring lists, in legends and in $labels.x must be
   tidewater's (seen in a scrape) or the PodMonitor's target labels; and
   every tidewater_* name the annotations and panel descriptions mention
   must be exported too.
2. The structure of the PodMonitor and the PrometheusRule (kubernetes-validate
   has no schema for these kinds and only warns about them): known fields,
   an API port named as in the three workloads (the sidecar, the DaemonSet,
   notify) and on the port of their [api] (or [notify.api]) address,
   the job="tidewater" that the expressions select, and on every alert a
   severity, a summary, a description and a runbook.
3. `promtool check rules` on the PrometheusRule's spec (written out as a
   plain rule file) and `promtool test rules` on
   sidecar/monitoring/tests/rules_test.yaml, which must test every alert
   both firing and not firing.

promtool is taken from $PROMTOOL, else from PATH. Exit 0 when everything
holds (a JSON summary on stdout), 1 naming every failure on stderr, 2 when
it cannot run (bad arguments, a missing file or promtool)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

# Labels a series gets from the scrape (the PodMonitor), not from tidewater,
# and those of the exposition format itself.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "le", "quantile"}
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up"}
SEVERITIES = {"critical", "warning", "info"}
JOB = "tidewater"

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
FUNCTIONS = AGGREGATIONS | {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "double_exponential_smoothing", "end", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
    "sort_desc", "sqrt", "start", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "tan", "tanh", "time", "timestamp", "vector", "year",
}
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "inf", "nan",
}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)"
STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
IDENT = r"[A-Za-z_:][A-Za-z0-9_:]*"
# Prometheus durations (the CRDs' pattern).
DURATION = re.compile(r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$")

problems = []


def fail(why):
    problems.append(why)


def die(why):
    print(f"check_monitoring: {why}", file=sys.stderr)
    sys.exit(2)


# --- The scrape ---------------------------------------------------------------

HISTOGRAMS = set()  # family names of histograms and summaries, which prose may name


def read_scrape(text):
    """Series names Prometheus stores from this exposition -> label names seen."""
    names = {}
    # What a family with no sample yet will be stored as (a _created sample
    # counts only where the scrape has one).
    suffixes = {
        "counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
        "gaugehistogram": ["_bucket", "_gsum", "_gcount"], "summary": ["", "_sum", "_count"],
        "info": ["_info"], "gauge": [""], "stateset": [""], "unknown": [""],
    }
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(None, 3)
            if kind.strip() in ("histogram", "gaugehistogram", "summary"):
                HISTOGRAMS.add(family)
            for suffix in suffixes.get(kind.strip(), [""]):
                names.setdefault(family + suffix, set())
        elif line and not line.startswith("#"):
            m = re.match(rf"({IDENT})(\{{.*\}})?\s", line)
            if not m:
                fail(f"scrape: cannot read the sample line {line!r}")
                continue
            labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', m.group(2) or ""))
            names.setdefault(m.group(1), set()).update(labels)
    return names


# --- PromQL -------------------------------------------------------------------

def promql_refs(expr):
    """(metric names, label names) an expression uses. Strings, durations,
    Grafana variables, functions and keywords are not names; a metric name
    given as {__name__="x"} is."""
    metrics, labels = set(), set()
    for m in re.finditer(rf"__name__\s*(=~|!=|!~|=)\s*({STRING})", expr):
        if m.group(1) != "=":
            fail(f"{expr!r}: a {m.group(1)} matcher on __name__ cannot be checked")
        metrics.add(m.group(2)[1:-1])
    s = re.sub(STRING, '""', expr)
    s = re.sub(r"#[^\n]*", " ", s)  # comments, once strings are gone
    s = re.sub(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]", " 0 ", s)  # Grafana variables
    for block in re.findall(r"\{([^{}]*)\}", s):
        labels.update(re.findall(rf"({IDENT})\s*(?:=~|!=|!~|=)", block))
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # ranges and subqueries
    for group in re.findall(GROUPING, s):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    s = re.sub(GROUPING, " ", s)
    for m in re.finditer(rf"(?<![A-Za-z0-9_:.$])({IDENT})(\s*\()?", s):
        name, call = m.groups()
        if call:
            if name not in FUNCTIONS:
                fail(f"{expr!r}: {name}() is not a PromQL function")
        elif name.lower() not in KEYWORDS:
            metrics.add(name)
    return metrics, labels - {"__name__"}


def selector_labels(expr):
    """(metric, label) for each label matcher written after a metric name."""
    s = re.sub(STRING, '""', expr)
    for m in re.finditer(rf"(?<![A-Za-z0-9_:.$])({IDENT})\s*\{{([^{{}}]*)\}}", s):
        for label in re.findall(rf"({IDENT})\s*(?:=~|!=|!~|=)", m.group(2)):
            yield m.group(1), label


def self_test():
    """The extractor on expressions with every construct it must see
    through; a wrong extractor would pass everything."""
    cases = {
        'sum by (namespace, sink) (rate(a_total{job="x", pod=~"$pod"}[$__rate_interval]))':
            ({"a_total"}, {"namespace", "sink", "job", "pod"}),
        'histogram_quantile(0.99, sum without (instance) (rate(b_bucket[5m:1m] offset 1h)))':
            ({"b_bucket"}, {"instance"}),
        'c == 0 and on (pod) group_left (sink) d > 1e3 unless e{path!="/x{y}"} @ start()':
            ({"c", "d", "e"}, {"pod", "sink", "path"}),
        'topk(20, max(f / g) by (le)) > bool 0.5 or {__name__="h", source="s"}':
            ({"f", "g", "h"}, {"le", "source"}),
        'label_replace(i, "dst", "$1", "src", "(.*)") + count_values("v", j) # k':
            ({"i", "j"}, set()),
    }
    for expr, want in cases.items():
        got = promql_refs(expr)
        if got != want:
            die(f"the PromQL extractor is wrong on {expr!r}: {got} instead of {want}")
    before = len(problems)
    promql_refs("nosuchfunction(x)")
    if len(problems) != before + 1:
        die("the PromQL extractor does not refuse an unknown function")
    del problems[before:]


def check_names(where, expr, exported, known_labels):
    metrics, labels = promql_refs(expr)
    if not metrics:
        fail(f"{where}: no metric name found in {expr!r}")
    for name in sorted(metrics - set(exported) - PROMETHEUS_SERIES):
        hint = ""
        if name.startswith("tidewater_notify_") and not any(n.startswith("tidewater_notify_") for n in exported):
            hint = " (no scrape of `tidewater notify` was given)"
        fail(f"{where}: {name} is not exported by tidewater (in no scrape){hint}: {expr!r}")
    for label in sorted(labels - known_labels - TARGET_LABELS):
        fail(f"{where}: the label {label} is neither tidewater's (on a sample of a scrape) "
             f"nor a target label: {expr!r}")
    for metric, label in selector_labels(expr):
        seen = exported.get(metric)
        if seen and label not in seen | TARGET_LABELS:
            fail(f"{where}: {metric} has no label {label} (it has {sorted(seen)})")
    for job in re.findall(r'\bjob\s*=\s*"([^"]*)"', expr):
        if job != JOB:
            fail(f'{where}: job="{job}", but the PodMonitor sets job="{JOB}"')
    return metrics


def check_mentions(where, text, exported):
    """Prose names series as they are queried (a counter with _total), or a
    histogram by its family name."""
    for name in sorted(set(re.findall(r"\btidewater_[a-z0-9_]+", text))):
        if name not in exported and name not in HISTOGRAMS:
            fail(f"{where}: mentions {name}, which tidewater does not export")


# --- The PodMonitor and the PrometheusRule --------------------------------------

def keys_within(where, obj, allowed):
    if not isinstance(obj, dict):
        fail(f"{where}: not a mapping")
        return False
    for key in sorted(set(obj) - allowed):
        fail(f"{where}: unknown field {key}")
    return True


def check_header(where, doc, kind):
    if not isinstance(doc, dict):
        fail(f"{where}: not a mapping")
        return False
    if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") != kind:
        fail(f"{where}: not a monitoring.coreos.com/v1 {kind}")
    keys_within(where, doc, {"apiVersion", "kind", "metadata", "spec"})
    if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
        fail(f"{where}: no metadata.name")
    return isinstance(doc.get("spec"), dict)


def label_selector(where, sel):
    if keys_within(where, sel, {"matchLabels", "matchExpressions"}):
        for e in sel.get("matchExpressions") or []:
            keys_within(f"{where}.matchExpressions", e, {"key", "operator", "values"})


# (workload, its container, its config, the API table, its default address)
WORKLOADS = [
    ("sidecar/base/deployment.yaml", "tidewater", "sidecar/base/tidewater.toml", ["api"], "0.0.0.0:8686"),
    ("sidecar/daemonset/daemonset.yaml", "tidewater", "sidecar/daemonset/tidewater.toml", ["api"], "0.0.0.0:8686"),
    ("sidecar/notify/deployment.yaml", "notify", "sidecar/notify/notify.toml", ["notify", "api"], "0.0.0.0:8687"),
]


def api_port(root, workload, container, config, table, default):
    """The named ports of the container, and the port of its API address."""
    with open(os.path.join(root, workload)) as f:
        pod = yaml.safe_load(f)["spec"]["template"]["spec"]
    containers = pod.get("initContainers", []) + pod.get("containers", [])
    tw = next((c for c in containers if c["name"] == container), {})
    with open(os.path.join(root, config), "rb") as f:
        api = tomllib.load(f)
    for key in table:
        api = api.get(key, {})
    address = api.get("address", default)
    port = int(address.rsplit(":", 1)[1]) if ":" in address else None
    return {p.get("name"): p["containerPort"] for p in tw.get("ports", [])}, port


def check_podmonitor(root, doc):
    where = "podmonitor.yaml"
    if not check_header(where, doc, "PodMonitor"):
        return
    spec = doc["spec"]
    keys_within(f"{where}: spec", spec, {
        "selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels",
        "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit",
        "labelValueLengthLimit", "keepDroppedTargets", "attachMetadata", "scrapeClass",
        "scrapeProtocols", "bodySizeLimit"})
    if "selector" not in spec:
        fail(f"{where}: spec.selector is required")
    else:
        label_selector(f"{where}: spec.selector", spec["selector"])
    if "namespaceSelector" in spec:
        keys_within(f"{where}: spec.namespaceSelector", spec["namespaceSelector"], {"any", "matchNames"})
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        fail(f"{where}: no podMetricsEndpoints")
        return
    jobs = set()
    for i, ep in enumerate(endpoints):
        at = f"{where}: podMetricsEndpoints[{i}]"
        keys_within(at, ep, {
            "port", "portNumber", "path", "scheme", "params", "interval", "scrapeTimeout",
            "honorLabels", "honorTimestamps", "trackTimestampsStaleness", "relabelings",
            "metricRelabelings", "tlsConfig", "basicAuth", "authorization", "oauth2",
            "bearerTokenSecret", "followRedirects", "enableHttp2", "filterRunning",
            "proxyUrl", "noProxy", "proxyFromEnvironment", "proxyConnectHeader"})
        if ep.get("path") != "/metrics":
            fail(f"{at}: path is {ep.get('path')!r}, tidewater serves /metrics")
        for key in ("interval", "scrapeTimeout"):
            if key in ep and not DURATION.match(str(ep[key])):
                fail(f"{at}: {key} {ep[key]!r} is not a Prometheus duration")
        for workload, container, config, table, default in WORKLOADS:
            ports, api = api_port(root, workload, container, config, table, default)
            if ports.get(ep.get("port")) is None:
                fail(f"{at}: no port named {ep.get('port')!r} on {container} in {workload} (it has {sorted(ports)})")
            elif ports[ep["port"]] != api:
                fail(f"{at}: port {ep['port']} is {ports[ep['port']]} in {workload}, "
                     f"[{'.'.join(table)}] address in {config} is on {api}")
        for j, r in enumerate(ep.get("relabelings") or []):
            keys_within(f"{at}.relabelings[{j}]", r, {
                "sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"})
            if str(r.get("action", "replace")).lower() not in {
                    "replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                    "lowercase", "uppercase", "keepequal", "dropequal"}:
                fail(f"{at}.relabelings[{j}]: unknown action {r.get('action')!r}")
            if r.get("targetLabel") == "job" and not r.get("sourceLabels"):
                jobs.add(r.get("replacement"))
    if jobs != {JOB}:
        fail(f'{where}: the expressions select job="{JOB}"; the endpoints set the job to {sorted(jobs) or "the Operator default"}')


def check_rule_object(doc):
    """The alerting rules, by name, and their structure."""
    where = "prometheusrule.yaml"
    alerts = {}
    if not check_header(where, doc, "PrometheusRule"):
        return alerts
    keys_within(f"{where}: spec", doc["spec"], {"groups"})
    for g in doc["spec"].get("groups") or []:
        gw = f"{where}: group {g.get('name')!r}"
        keys_within(gw, g, {"name", "interval", "rules", "partial_response_strategy", "limit",
                            "query_offset", "labels"})
        for r in g.get("rules") or []:
            name = r.get("alert") or r.get("record")
            rw = f"{where}: rule {name!r}"
            keys_within(rw, r, {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"})
            if bool(r.get("alert")) == bool(r.get("record")):
                fail(f"{rw}: needs exactly one of alert and record")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                fail(f"{rw}: no expr")
            for key in ("for", "keep_firing_for"):
                if key in r and not DURATION.match(str(r[key])):
                    fail(f"{rw}: {key} {r[key]!r} is not a Prometheus duration")
            if not r.get("alert"):
                continue
            if name in alerts:
                fail(f"{rw}: defined twice")
            alerts[name] = r
            if (r.get("labels") or {}).get("severity") not in SEVERITIES:
                fail(f"{rw}: labels.severity must be one of {sorted(SEVERITIES)}")
            notes = r.get("annotations") or {}
            for key in ("summary", "description", "runbook"):
                if not str(notes.get(key, "")).strip():
                    fail(f"{rw}: no {key} annotation")
    if not alerts:
        fail(f"{where}: no alerting rules")
    return alerts


def annotation_labels(alert, rule):
    """$labels.x in the annotations must be labels the alert keeps."""
    grouped = set()
    m = re.match(r"\s*\w+\s+by\s*\(([^()]*)\)", rule["expr"])
    if m:
        grouped = {x.strip() for x in m.group(1).split(",")}
    for text in (rule.get("annotations") or {}).values():
        for label in re.findall(r"\$labels\.(\w+)", str(text)):
            if grouped and label not in grouped:
                fail(f"rule {alert}: the annotations use $labels.{label}, which its sum/max by (...) drops")


# --- The dashboard ------------------------------------------------------------

def dashboard_queries(dash, name):
    """(where, PromQL) of every panel target and query variable, and the text
    of the descriptions; checks the datasource variable on the way."""
    variables = dash.get("templating", {}).get("list", [])
    if not any(v.get("type") == "datasource" and v.get("name") == "datasource"
               and v.get("query") == "prometheus" for v in variables):
        fail(f"dashboard {name}: no ${{datasource}} variable of type datasource (prometheus)")
    queries, texts = [], [dash.get("description", "")]
    for v in variables:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q or ""
        if v.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"dashboard {name}: variable {v.get('name')} does not use ${{datasource}}")
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q, re.S)
        if m:
            queries.append((f"dashboard {name} variable {v['name']}", m.group(1), [m.group(2)]))
        elif re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S):
            queries.append((f"dashboard {name} variable {v['name']}", q.strip()[len("query_result("):-1], []))
        else:
            fail(f"dashboard {name}: variable {v.get('name')}: cannot read the query {q!r}")
    ids = set()
    panels = list(dash.get("panels", []))
    while panels:
        p = panels.pop(0)
        panels.extend(p.get("panels", []))
        where = f"dashboard {name} panel {p.get('title')!r}"
        if p.get("id") in ids:
            fail(f"{where}: id {p.get('id')} used twice")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{where}: the datasource is not ${{datasource}}")
        texts.append(p.get("description", "") + " " + p.get("title", ""))
        targets = p.get("targets") or []
        if not targets:
            fail(f"{where}: no query")
        for t in targets:
            legend = re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", ""))
            queries.append((where, t.get("expr", ""), legend))
    return queries, texts


# --- promtool -------------------------------------------------------------------

def run_promtool(promtool, spec, tests):
    with tempfile.TemporaryDirectory(prefix="check-monitoring-") as tmp:
        with open(os.path.join(tmp, "tidewater-rules.yaml"), "w") as f:
            yaml.safe_dump(spec, f, sort_keys=False)
        shutil.copy(tests, os.path.join(tmp, "rules_test.yaml"))
        out = {}
        for args in (["check", "rules", "tidewater-rules.yaml"], ["test", "rules", "rules_test.yaml"]):
            p = subprocess.run([promtool, *args], cwd=tmp, capture_output=True, text=True)
            out[" ".join(args[:2])] = (p.stdout + p.stderr).strip()
            if p.returncode != 0:
                fail(f"promtool {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
        return out


def check_tests_cover(alerts, tests):
    fires, quiet = set(), set()
    for case in tests.get("tests") or []:
        for t in case.get("alert_rule_test") or []:
            (fires if t.get("exp_alerts") else quiet).add(t.get("alertname"))
    for name in sorted(alerts):
        if name not in fires:
            fail(f"rules_test.yaml: no test in which {name} fires")
        if name not in quiet:
            fail(f"rules_test.yaml: no test in which {name} must stay silent")
    for name in sorted((fires | quiet) - set(alerts)):
        fail(f"rules_test.yaml: tests {name}, which no rule defines")


def main():
    if len(sys.argv) < 3:
        die("usage: check_monitoring.py SCRAPE_FILE [SCRAPE_FILE ...] REPO_ROOT")
    scrape_paths, root = sys.argv[1:-1], sys.argv[-1]
    monitoring = os.path.join(root, "sidecar", "monitoring")
    exported = {}
    try:
        for scrape_path in scrape_paths:
            with open(scrape_path) as f:
                names = read_scrape(f.read())
            if not any(n.startswith("tidewater_") for n in names):
                die(f"{scrape_path} holds no tidewater_ metric: is it a scrape of tidewater's /metrics?")
            for name, labels in names.items():
                exported.setdefault(name, set()).update(labels)
        with open(os.path.join(monitoring, "kustomization.yaml")) as f:
            kustomization = yaml.safe_load(f)
        with open(os.path.join(monitoring, "podmonitor.yaml")) as f:
            podmonitor = yaml.safe_load(f)
        with open(os.path.join(monitoring, "prometheusrule.yaml")) as f:
            rule_object = yaml.safe_load(f)
        tests_path = os.path.join(monitoring, "tests", "rules_test.yaml")
        with open(tests_path) as f:
            tests = yaml.safe_load(f)
        dashboards = {}
        folder = os.path.join(root, "sidecar", "dashboards")
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    dashboards[name] = json.load(f)
    except (OSError, ValueError, yaml.YAMLError) as e:
        die(str(e))
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not promtool:
        die("promtool not found: install it (Debian: apt-get install prometheus) or set PROMTOOL")

    self_test()
    if "tidewater.json" not in dashboards:
        die(f"no tidewater.json in {folder}")
    known_labels = set().union(*exported.values())

    if kustomization.get("kind") != "Component" or \
            set(kustomization.get("resources") or []) != {"podmonitor.yaml", "prometheusrule.yaml"}:
        fail("sidecar/monitoring/kustomization.yaml: not a Component of podmonitor.yaml and prometheusrule.yaml")
    check_podmonitor(root, podmonitor)
    alerts = check_rule_object(rule_object)

    used = set()
    for group in (rule_object.get("spec") or {}).get("groups") or []:
        for r in group.get("rules") or []:
            where = f"rule {r.get('alert') or r.get('record')}"
            used |= check_names(where, r.get("expr", ""), exported, known_labels)
            for text in (r.get("annotations") or {}).values():
                check_mentions(where, str(text), exported)
    for name, rule in alerts.items():
        annotation_labels(name, rule)
    queries, texts, uids = [], [], {}
    for name, dashboard in dashboards.items():
        q, t = dashboard_queries(dashboard, name)
        queries += q
        texts += t
        if dashboard.get("uid") in uids:
            fail(f"dashboard {name}: uid {dashboard.get('uid')!r} is also {uids[dashboard.get('uid')]}'s")
        uids[dashboard.get("uid")] = name
    for where, expr, legend_labels in queries:
        used |= check_names(where, expr, exported, known_labels)
        for label in legend_labels:
            if label not in known_labels | TARGET_LABELS:
                fail(f"{where}: the legend or variable uses the label {label}, which no series has")
    for text in texts:
        check_mentions("dashboard", text, exported)

    check_tests_cover(alerts, tests)
    promtool_out = run_promtool(promtool, rule_object.get("spec") or {}, tests_path)

    if problems:
        for p in problems:
            print(f"monitoring check failed: {p}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "exported": len(exported),
        "used": sorted(used),
        "not_used": sorted(n for n in exported if n.startswith("tidewater_") and n not in used),
        "alerts": sorted(alerts),
        "scrapes": len(scrape_paths),
        "dashboards": sorted(dashboards),
        "panels": len({w for w, _, _ in queries if " panel " in w}),
        "promtool": promtool_out,
    }))


if __name__ == "__main__":
    main()
