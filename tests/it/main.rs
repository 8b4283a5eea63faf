//! Integration tests of the `tidewater` binary, against real files and a real
//! local Parquet lake. Run them with `bash scripts/test.sh` (which installs
//! pyarrow for the independent reader, `tests/read_parquet.py`).
//!
//! - `corpus`: generated CRI and Docker corpora arrive exactly once, readable by
//!   both the parquet crate and pyarrow; Kubernetes metadata from file paths.
//! - `rotation`: rename+create and copytruncate rotation while `run` tails.
//! - `crash`: SIGKILL and restart (no loss, bounded duplicates); SIGTERM drains
//!   and checkpoints; restarts resume from the checkpoint.
//! - `full_disk`: a data dir on a small tmpfs that fills up: staging files
//!   and checkpoints are retried, never dead-lettered, and catch up once
//!   the disk has room, without a restart.
//! - `bad_input`: invalid UTF-8, NUL bytes, huge lines, CRLF, broken lines,
//!   empty lines and unreadable entries are all accounted for.
//! - `object_store`: the lake on S3 (a real moto server: exactly once,
//!   multipart rolling, an outage, a missing bucket, SIGKILL mid-upload) and
//!   GCS (fake-gcs-server: configuration and reads; real GCS only with
//!   `--features gcs-live`, see the README).
//! - `alerts`: error events through a real RabbitMQ to `tidewater notify` and a
//!   local stand-in for Slack's webhook: grouping, retries, dead letters, an
//!   error storm, broker-side connection closes, amqps:// through a TLS front.
//! - `bigquery`: the BigQuery sink against a real emulator (bqemulator):
//!   insertAll and the Storage Write API (Arrow), table creation, insertIds
//!   on retries and restarts (through a recording proxy), dead letters, an
//!   outage, a dropped table, schema checks.
//! - `exactly_once`: BigQuery's `delivery = "exactly_once"` (committed
//!   streams at offsets, the ledger): eight SIGKILLs while the log grows,
//!   a kill between an append's answer and the checkpoint (a fault hook,
//!   with at-least-once as the control), rotation, a rejected row, an
//!   emulator frozen by SIGSTOP.
//! - `notify_api`: `tidewater notify`'s `/healthz`, `/readyz` and `/metrics`
//!   (counters that add up, readiness that follows the broker and Slack).
//! - `parsers`: nginx, Apache, LTSV, logfmt and regex bodies become `fields`,
//!   times, levels and typed columns; bad parser keys are refused by name.
//! - `labels`: `[kubernetes]`, the Pod's labels and annotations from a
//!   downwardAPI volume swapped like the kubelet does while `run` tails
//!   (DuckDB's `labels->>'$.team'` on the lake), a missing volume, and both
//!   BigQuery APIs.
//! - `sidecar`: the README's sidecar example (nginx access log, Java traces,
//!   Pod labels) into the lake and BigQuery, and the README's queries on both.
//! - `operations`: `tidewater status`, the warnings of `validate`, `/metrics`.
//! - `multiline`: stack traces of five languages interleaved on stdout and
//!   stderr of one CRI file (split by `P` lines) arrive as one row each; a
//!   SIGKILL while a trace is open loses no frame; the timeout and a stop
//!   emit an open trace; bad `[multiline]` tables are refused.
//! - `whole_flow`: one tidewater into the lake on S3, BigQuery exactly once
//!   and RabbitMQ, `tidewater notify` to a stand-in Slack; SIGTERM and
//!   restart of both mid-stream: every record once, every event in one post.
//! - `packaging`: `sidecar/` manifests against the Kubernetes schemas and the
//!   Dockerfile through hadolint.
//! - `config_errors`: bad configs are rejected with the key, file and line;
//!   the CLI surface (`--version`, `schema`).

mod alerts;
mod bad_input;
mod bigquery;
mod config_errors;
mod corpus;
mod crash;
mod exactly_once;
mod full_disk;
mod labels;
mod multiline;
mod notify_api;
mod object_store;
mod operations;
mod packaging;
mod parsers;
mod rotation;
mod routing;
mod services;
mod sidecar;
mod util;
mod whole_flow;
