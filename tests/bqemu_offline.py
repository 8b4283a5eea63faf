"""Start the BigQuery emulator (bqemulator) without network access.

bqemulator 1.4.0 runs `INSTALL spatial` (a DuckDB extension download) at
start-up and aborts when it cannot reach the extension repository. The
GEOGRAPHY type is not needed by tidewater, so the loader is replaced by a
no-op before the emulator's own command line runs.

Usage: python bqemu_offline.py start --project test-project \
           --rest-port P --grpc-port G [--persistent --data-dir DIR]
"""
import sys

import bqemulator.storage.engine as _engine

_engine.DuckDBEngine._load_spatial = lambda self: None

from bqemulator.cli import main  # noqa: E402

sys.exit(main())
