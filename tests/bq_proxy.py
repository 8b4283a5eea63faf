"""A recording reverse proxy in front of the BigQuery emulator, for tests.

Every request is forwarded to --upstream as it is. For each insertAll
request, one JSON line is appended to --log:
  {"n": <request number>, "status": <status sent back>,
   "bytes": <size of the uncompressed JSON body>,
   "rows": [[insertId, file, offset], ...]}
(the body is gunzipped to read it). With --fail-inserts N, the first N
insertAll requests are forwarded (so the rows DO land) and then answered
503 backendError: the client sees a failure after a write, the case a
retry must de-duplicate. With --deny-dataset-create, creating a dataset
is answered 403 accessDenied (an account with dataEditor on the dataset
only, which may not create datasets).

Usage: python bq_proxy.py --port P --upstream http://127.0.0.1:U --log F
                          [--fail-inserts N] [--deny-dataset-create]
"""
import argparse
import gzip
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail-inserts", type=int, default=0)
    ap.add_argument("--deny-dataset-create", action="store_true")
    args = ap.parse_args()
    up = urlsplit(args.upstream)
    lock = threading.Lock()
    state = {"inserts": 0, "fail": args.fail_inserts}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if args.deny_dataset_create and self.command == "POST" and self.path.split("?")[0].endswith("/datasets"):
                rbody = json.dumps({"error": {
                    "code": 403, "status": "PERMISSION_DENIED",
                    "message": "Access Denied: bigquery.datasets.create (test proxy)",
                    "errors": [{"reason": "accessDenied", "message": "denied"}],
                }}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                self.wfile.write(rbody)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                status, rheaders, rbody = resp.status, resp.getheaders(), resp.read()
            except OSError as e:
                status, rheaders = 502, [("Content-Type", "text/plain")]
                rbody = f"upstream: {e}".encode()
            finally:
                conn.close()
            if self.path.split("?")[0].endswith("/insertAll") and self.command == "POST":
                raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                req = json.loads(raw)
                rows = [
                    [r.get("insertId"), r["json"].get("file"), r["json"].get("offset")]
                    for r in req.get("rows", [])
                ]
                with lock:
                    state["inserts"] += 1
                    n = state["inserts"]
                    if status < 300 and state["fail"] > 0:
                        state["fail"] -= 1
                        status, rheaders = 503, [("Content-Type", "application/json")]
                        rbody = json.dumps({"error": {
                            "code": 503, "status": "UNAVAILABLE",
                            "message": "backend error injected by the test proxy",
                            "errors": [{"reason": "backendError", "message": "injected"}],
                        }}).encode()
                    with open(args.log, "a") as f:
                        f.write(json.dumps({"n": n, "status": status, "bytes": len(raw), "rows": rows}) + "\n")
            self.send_response(status)
            for k, v in rheaders:
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(rbody)))
            self.end_headers()
            self.wfile.write(rbody)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
