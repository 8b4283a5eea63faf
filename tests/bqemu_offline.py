"""Start the BigQuery emulator (bqemulator) without network access, with
its Storage Write appends made atomic.

bqemulator 1.4.0 runs `INSTALL spatial` (a DuckDB extension download) at
start-up and aborts when it cannot reach the extension repository. The
GEOGRAPHY type is not needed by tidewater, so the loader is replaced by a
no-op before the emulator's own command line runs.

Its AppendRows counts the rows into the stream (the offset, the row count
FinalizeWriteStream reports) before it inserts them into the table, and
the insert can fail (DuckDB's "connection is busy with another call" while
a query runs): the stream then claims rows the table does not have. In
BigQuery an append lands whole or not at all, which is what exactly-once
delivery relies on; so a failed insert here puts the stream's counters
back before the error is returned, and FinalizeWriteStream waits for an
append in progress. And the insert and the queries (REST) share one DuckDB
connection without a lock, which is why the insert fails: they take one
lock here, so that a query waits instead of failing an append.

With BQEMU_REFUSE_CREATE_WRITE_STREAM set, CreateWriteStream answers
RESOURCE_EXHAUSTED (a quota), for the test of exactly-once's fallback.

Usage: python bqemu_offline.py start --project test-project \
           --rest-port P --grpc-port G [--persistent --data-dir DIR]
"""
import os
import sys

import bqemulator.storage.engine as _engine

_engine.DuckDBEngine._load_spatial = lambda self: None

import threading  # noqa: E402

import bqemulator.grpc_api.write_servicer as _write  # noqa: E402

_DB = threading.RLock()


def _locked(method):
    def call(*args, **kwargs):
        with _DB:
            return method(*args, **kwargs)

    return call


_engine.DuckDBEngine.execute = _locked(_engine.DuckDBEngine.execute)
_engine.DuckDBEngine.fetch_arrow = _locked(_engine.DuckDBEngine.fetch_arrow)
_write.BigQueryWriteHandler._flush_to_target = _locked(_write.BigQueryWriteHandler._flush_to_target)

_perform_append = _write.BigQueryWriteHandler._perform_append


def _atomic_append(self, bound_stream, rows_table, offset, max_buffered_rows):
    # The stream's lock is reentrant: the original takes it again.
    with bound_stream.lock:
        before = (bound_stream.next_offset, bound_stream.row_count)
        try:
            return _perform_append(self, bound_stream, rows_table, offset, max_buffered_rows)
        except Exception:
            bound_stream.next_offset, bound_stream.row_count = before
            raise


_finalize = _write.BigQueryWriteHandler._handle_finalize_write_stream


def _locked_finalize(self, request_bytes, context):
    """FinalizeWriteStream after any append in progress on the stream, as in
    BigQuery (the emulator reads the row count without the stream's lock)."""
    from google.cloud.bigquery_storage_v1 import types

    stream = self._manager.get(types.FinalizeWriteStreamRequest.deserialize(request_bytes).name)
    if stream is None:
        return _finalize(self, request_bytes, context)
    with stream.lock:
        return _finalize(self, request_bytes, context)


if os.environ.get("BQEMU_REFUSE_CREATE_WRITE_STREAM"):
    # For tests: BigQuery's quota on new write streams, reached.
    import grpc  # noqa: E402

    def _refuse_create(self, request_bytes, context):
        context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
        context.set_details("Exceeds quota: CreateWriteStream requests (test)")
        return b""

    _write.BigQueryWriteHandler._handle_create_write_stream = _refuse_create

_write.BigQueryWriteHandler._perform_append = _atomic_append
_write.BigQueryWriteHandler._handle_finalize_write_stream = _locked_finalize

from bqemulator.cli import main  # noqa: E402

sys.exit(main())
