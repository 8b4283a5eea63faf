#!/usr/bin/env python3
"""BigQuery sink benchmark: insert_all (JSON rows), storage_write (Arrow IPC as is, the
_default stream) and exactly_once (storage_write with `delivery = "exactly_once"`: committed
streams at offsets, a synced ledger write per append).

Both runs read the same generated CRI corpus with `tidewater run --once` into
a fresh table of a local BigQuery emulator (bqemulator, in target/bq-venv:
run `bash scripts/test.sh` once to install it). The emulator's own speed
bounds the wall time, so the figure that describes tidewater is its CPU time
(user + sys from wait4) per record; wall time and peak RSS are reported too.
Runs alternate between the two APIs, and medians are printed.

    python3 benches/bigquery.py                       # 100,000 records, 3 runs each
    python3 benches/bigquery.py --records 50000 --runs 5 --no-build
    python3 benches/bigquery.py --baseline /tmp/tidewater-old --apis insert_all   # A/B of two binaries
    python3 benches/bigquery.py --apis storage_write,exactly_once --runs 5      # the cost of exactly once
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(work, python):
    rest, grpc = free_port(), free_port()
    log = open(os.path.join(work, f"bqemu-{rest}.log"), "w")
    proc = subprocess.Popen([python, os.path.join(ROOT, "tests/bqemu_offline.py"), "start", "--project", "bench",
                             "--rest-port", str(rest), "--grpc-port", str(grpc), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{rest}/readyz", timeout=1)
            return proc, rest, grpc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("the emulator did not start: see " + log.name)


def count(rest, table):
    body = json.dumps({"query": f"SELECT COUNT(*) FROM `bench.logs.{table}`", "useLegacySql": False}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{rest}/bigquery/v2/projects/bench/queries", body,
                                 {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(req, timeout=120))
    return int(answer["rows"][0]["f"][0]["v"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", default="/tmp/tidewater-bench-bq")
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/tidewater"))
    p.add_argument("--emulator-python", default=os.path.join(ROOT, "target/bq-venv/bin/python"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--baseline", help="another tidewater binary, run alternately with --binary")
    p.add_argument("--apis", default="insert_all,storage_write,exactly_once")
    a = p.parse_args()
    a.binary = os.path.abspath(a.binary)
    if not os.path.exists(a.emulator_python):
        sys.exit(f"{a.emulator_python} not found: run `bash scripts/test.sh` once (it installs bqemulator there)")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "tidewater"], cwd=ROOT, check=True)
    os.makedirs(a.work, exist_ok=True)
    logs = os.path.join(a.work, "logs")
    corpus = os.path.join(logs, f"bench-{a.records}.log")
    if not os.path.exists(corpus):
        shutil.rmtree(logs, ignore_errors=True)
        os.makedirs(logs)
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/gen-cri.py"), "--records", str(a.records),
                        "--seed", "7", "--long-share", "0", "--out", corpus + ".tmp"], check=True)
        os.rename(corpus + ".tmp", corpus)
    size = os.path.getsize(corpus)

    emu, rest, grpc = start_emulator(a.work, a.emulator_python)
    binaries = [("new", a.binary)] + ([("baseline", os.path.abspath(a.baseline))] if a.baseline else [])
    results = {(label, api): [] for api in a.apis.split(",") for label, _ in binaries}
    try:
        for run in range(a.runs):
            for (label, api) in results:
                binary = dict(binaries)[label]
                table = f"{api}_{label}_{run}"
                run_dir = os.path.join(a.work, "run")
                shutil.rmtree(run_dir, ignore_errors=True)
                os.makedirs(run_dir)
                config = os.path.join(run_dir, "bench.toml")
                with open(config, "w") as f:
                    f.write(f"""data_dir = "state"
[sources.bench]
type = "tail"
include = ["{logs}/*.log"]
format = "cri"
read_from = "beginning"

[sinks.warehouse]
type = "bigquery"
project = "bench"
dataset = "logs"
table = "{table}"
api = "{"storage_write" if api == "exactly_once" else api}"
delivery = "{"exactly_once" if api == "exactly_once" else "at_least_once"}"
create_table = true
endpoint = "http://127.0.0.1:{rest}"
storage_endpoint = "http://127.0.0.1:{grpc}"
""")
                started = time.monotonic()
                proc = subprocess.Popen([binary, "run", "--once", "--config", config], cwd=run_dir,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                out = proc.stdout.read()
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.monotonic() - started
                if status != 0:
                    sys.exit(f"{api}: tidewater exited with {status}")
                summary = json.loads(out.decode().strip().splitlines()[-1])
                rows = count(rest, table)
                if rows < summary["records"] or (api == "exactly_once" and rows != summary["records"]):
                    sys.exit(f"{api}: {rows} rows in the table for {summary['records']} records")
                cpu = usage.ru_utime + usage.ru_stime
                results[(label, api)].append({"wall": wall, "cpu_us_per_record": cpu / summary["records"] * 1e6,
                                     "rss_mib": usage.ru_maxrss / 1024, "records": summary["records"]})
                print(f"run {run + 1} {label} {api}: {wall:.1f} s wall, {cpu:.2f} s CPU, "
                      f"{usage.ru_maxrss / 1024:.0f} MiB peak RSS", file=sys.stderr)
    finally:
        emu.kill()
        emu.wait()

    print(f"corpus: {a.records} records, {size / 1e6:.0f} MB; {a.runs} runs per API (medians)")
    print("| binary | api | wall s | tidewater CPU µs/record | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    for (label, api), rs in results.items():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"| {label} | {api} | {med('wall'):.1f} | {med('cpu_us_per_record'):.1f} | {med('rss_mib'):.0f} |")


if __name__ == "__main__":
    main()
