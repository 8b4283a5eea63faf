#!/usr/bin/env python3
"""End-to-end benchmark: a generated CRI corpus -> `tidewater run --once` -> zstd Parquet on local disk.

Builds the release binary, generates the corpus once (tests/gen-cri.py, cached
under --work), warms the page cache, then runs tidewater --runs times on a
fresh data dir and lake, and reports the median of: input MB/s, records/s,
CPU-seconds per GB of input and peak RSS (from wait4 of the tidewater process).

    python3 benches/e2e.py                     # 1,000,000 records, 3 runs
    python3 benches/e2e.py --records 200000 --runs 5
    python3 benches/e2e.py --memory-limit 64MiB   # the same with a smaller memory budget
    python3 benches/e2e.py --rolling              # batches combined into 128 MiB objects (staging files)
    python3 benches/e2e.py --no-build --runs 5 --baseline /tmp/tidewater-before   # A/B, alternating
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", default="/tmp/tidewater-bench")
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/tidewater"))
    p.add_argument("--baseline", help="another tidewater binary, run alternately with --binary (A/B)")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--memory-limit", help="memory_limit for tidewater (default: its own default)")
    p.add_argument("--rolling", action="store_true", help='target_file_size = "128MiB": the rolling sink')
    a = p.parse_args()
    a.binary = os.path.abspath(a.binary)

    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "tidewater"], cwd=ROOT, check=True)
    logs = os.path.join(a.work, "logs")
    corpus = os.path.join(logs, f"bench-{a.records}.log")
    os.makedirs(logs, exist_ok=True)
    if not os.path.exists(corpus):
        for f in os.listdir(logs):
            os.remove(os.path.join(logs, f))
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/gen-cri.py"), "--records", str(a.records),
                        "--seed", "7", "--out", corpus + ".tmp"], check=True)
        os.rename(corpus + ".tmp", corpus)
    size = os.path.getsize(corpus)
    with open(corpus, "rb") as f:  # page cache, as the peers were measured
        while f.read(1 << 24):
            pass
    config = os.path.join(a.work, "bench.toml")
    with open(config, "w") as f:
        limit = f'memory_limit = "{a.memory_limit}"\n' if a.memory_limit else ""
        f.write(f"""data_dir = "state"
{limit}[sources.bench]
type = "tail"
include = ["{logs}/*.log"]
format = "cri"
read_from = "beginning"
[batch]
max_rows = 10000
max_bytes = "8MiB"
max_age = "2s"
[sinks.lake]
type = "parquet"
url = "file://lake"
""")
        if a.rolling:
            f.write('target_file_size = "128MiB"\n')

    def run_once(binary):
        for d in ("state", "lake"):
            shutil.rmtree(os.path.join(a.work, d), ignore_errors=True)
        start = time.monotonic()
        proc = subprocess.Popen([binary, "run", "--once", "--config", config], cwd=a.work,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        if status != 0:
            sys.exit(f"{binary} exited with status {status}")
        summary = json.loads(out.decode().strip().splitlines()[-1])
        if summary["rows_delivered"] != a.records:
            sys.exit(f"{binary} delivered {summary['rows_delivered']} rows of {a.records}")
        cpu = ru.ru_utime + ru.ru_stime
        lake = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(os.path.join(a.work, "lake")) for fn in fns)
        return {
            "wall_s": wall,
            "mb_per_s": size / 1e6 / wall,
            "records_per_s": summary["records"] / wall,
            "cpu_s_per_gb": cpu / (size / 1e9),
            "peak_rss_mib": ru.ru_maxrss / 1024,
            "records": summary["records"],
            "rows_delivered": summary["rows_delivered"],
            "lake_mb": lake / 1e6,
        }

    # With --baseline, the two binaries alternate run by run (the order
    # flips every round), so both see the same moments of a noisy host.
    binaries = [("binary", a.binary)]
    if a.baseline:
        binaries.append(("baseline", a.baseline))
    results = {name: [] for name, _ in binaries}
    for run in range(a.runs):
        for name, binary in (binaries if run % 2 == 0 else binaries[::-1]):
            r = run_once(binary)
            results[name].append(r)
            print(f"run {run + 1} {name}: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    report = {"input_mb": round(size / 1e6, 1), "runs": a.runs}
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        report["median" if name == "binary" else "baseline_median"] = {k: round(v, 2) for k, v in med.items()}
        report["max_peak_rss_mib" if name == "binary" else "baseline_max_peak_rss_mib"] = round(max(r["peak_rss_mib"] for r in rs), 1)
    if a.baseline:
        m, b = report["median"], report["baseline_median"]
        report["ratio"] = {k: round(m[k] / b[k], 3) for k in ("mb_per_s", "cpu_s_per_gb", "peak_rss_mib", "lake_mb")}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
