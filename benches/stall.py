#!/usr/bin/env python3
"""Memory under backpressure: a stalled S3 store while ~1 GB is appended.

Starts a moto S3 server (from the test venv, see scripts/test.sh), runs the
release binary with a rolling Parquet sink on it, stops the server with
SIGSTOP, appends a generated CRI corpus COPIES times to the tailed log while
sampling tidewater's RSS, resumes the server and waits until the checkpoint
reaches the end of the log. Reports, per memory_limit: RSS before the stall,
peak RSS during the stall, bytes read during the stall, seconds to deliver
everything after the resume, and the peak RSS of the whole run (wait4).

    python3 benches/stall.py                                   # 64MiB and the default
    python3 benches/stall.py --limits 64MiB 128MiB --copies 16
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def wait(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def committed(state):
    try:
        with open(os.path.join(state, "checkpoints.json")) as f:
            return max((e["offset"] for e in json.load(f)["files"]), default=0)
    except (OSError, ValueError):
        return 0


def run(a, limit, chunk):
    work = os.path.join(a.work, f"run-{limit or 'default'}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "logs"))
    log = os.path.join(work, "logs", "app.log")
    open(log, "wb").close()
    moto_port, api_port = free_port(), free_port()
    moto = subprocess.Popen([a.moto, "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait("moto", lambda: get(f"http://127.0.0.1:{moto_port}/moto-api/")[0] is not None, 30)
        get(f"http://127.0.0.1:{moto_port}/lake", method="PUT")
        config = os.path.join(work, "tidewater.toml")
        with open(config, "w") as f:
            if limit:
                f.write(f'memory_limit = "{limit}"\n')
            f.write(f"""data_dir = "state"
[api]
address = "127.0.0.1:{api_port}"
[sources.app]
type = "tail"
include = ["logs/*.log"]
format = "cri"
[batch]
max_rows = 10000
max_bytes = "8MiB"
max_age = "2s"
[sinks.lake]
type = "parquet"
url = "s3://lake/bench"
endpoint = "http://127.0.0.1:{moto_port}"
allow_http = true
region = "us-east-1"
request_timeout = "3s"
target_file_size = "16MiB"
max_file_age = "10s"
""")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        tw = subprocess.Popen([a.binary, "run", "--config", config], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "stderr.log"), "wb"))
        wait("/readyz", lambda: get(f"http://127.0.0.1:{api_port}/readyz")[0] == 200, 30)
        idle = rss_kib(tw.pid)
        os.kill(moto.pid, signal.SIGSTOP)
        peak = 0
        with open(log, "ab") as f:
            for _ in range(a.copies):
                f.write(chunk)
                f.flush()
                peak = max(peak, rss_kib(tw.pid))
        stall_end = time.monotonic() + a.stall
        while time.monotonic() < stall_end:
            peak = max(peak, rss_kib(tw.pid))
            time.sleep(0.1)
        _, metrics = get(f"http://127.0.0.1:{api_port}/metrics")
        read = next((float(l.split()[-1]) for l in metrics.splitlines()
                     if l.startswith("tidewater_source_read_bytes_total")), 0.0)
        os.kill(moto.pid, signal.SIGCONT)
        resumed = time.monotonic()
        size = os.path.getsize(log)
        wait("the checkpoint", lambda: committed(os.path.join(work, "state")) >= size, 1800)
        drain = time.monotonic() - resumed
        tw.send_signal(signal.SIGTERM)
        _, status, ru = os.wait4(tw.pid, 0)
        if status != 0:
            sys.exit(f"tidewater exited with {status}; see {work}/stderr.log")
        return {
            "memory_limit": limit or "default (256MiB)",
            "appended_mb": round(size / 1e6),
            "rss_idle_mib": round(idle / 1024, 1),
            "rss_peak_stalled_mib": round(peak / 1024, 1),
            "read_while_stalled_mb": round(read / 1e6),
            "deliver_after_resume_s": round(drain, 1),
            "deliver_mb_per_s": round(size / 1e6 / drain, 1),
            "rss_peak_whole_run_mib": round(ru.ru_maxrss / 1024, 1),
        }
    finally:
        os.kill(moto.pid, signal.SIGCONT)
        moto.kill()
        moto.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limits", nargs="+", default=["64MiB", ""], help='memory_limit values ("" = the default)')
    p.add_argument("--copies", type=int, default=32, help="times the 100k-record corpus (32 MB) is appended")
    p.add_argument("--stall", type=float, default=20, help="seconds the store stays stopped after the appends")
    p.add_argument("--work", default="/tmp/tidewater-stall")
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/tidewater"))
    p.add_argument("--moto", default=os.path.join(ROOT, "target/test-venv/bin/moto_server"))
    p.add_argument("--no-build", action="store_true")
    a = p.parse_args()
    if not os.path.exists(a.moto):
        sys.exit(f"{a.moto} not found: run scripts/test.sh once (it installs moto into target/test-venv)")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "tidewater"], cwd=ROOT, check=True)
    os.makedirs(a.work, exist_ok=True)
    corpus = os.path.join(a.work, "corpus-100000.log")
    if not os.path.exists(corpus):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/gen-cri.py"), "--records", "100000",
                        "--seed", "7", "--out", corpus + ".tmp"], check=True)
        os.rename(corpus + ".tmp", corpus)
    with open(corpus, "rb") as f:
        chunk = f.read()
    for limit in a.limits:
        print(json.dumps(run(a, limit, chunk)), flush=True)


if __name__ == "__main__":
    main()
