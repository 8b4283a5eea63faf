#!/usr/bin/env python3
"""Read a tidewater data lake with pyarrow, independently of the Rust code.

Usage: read_parquet.py LAKE_DIR

Reads every `*.parquet` file under LAKE_DIR (recursively), one file at a time
with `pyarrow.parquet.read_table` and no partition inference (so the
`dt=`/`hour=` directories add no columns and no schemas are merged), and
prints ONE JSON object on stdout:

  {"files": N,              number of *.parquet files read
   "rows": N,               total rows
   "seqs": [...],           sorted integer "seq" values from the `fields` JSON
                            column (rows whose `fields` is null, or not an
                            object with an integer "seq", are skipped)
   "columns": [...],        column names of the first file (sorted by path)
   "flags": {flag: count},  how many rows carry each value of `flags`
   "parse_errors": N,       rows whose `parse_error` is not null
   "time_ranged": N}        files whose every row group carries the min/max of
                            its `timestamp` column in its statistics, equal to
                            the values read (what lets a query on a time
                            range skip the file)

The integration tests (tests/it) compare this with what they read through the
Rust parquet crate, so a file only one reader understands is caught.
"""
import json
import pathlib
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def time_ranged(path: pathlib.Path) -> bool:
    """Every row group's `timestamp` statistics hold its true min and max."""
    pf = pq.ParquetFile(path)
    meta = pf.metadata
    names = [meta.schema.column(j).name for j in range(meta.num_columns)]
    if "timestamp" not in names:
        return False
    j = names.index("timestamp")
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(j).statistics
        if stats is None or not stats.has_min_max:
            return False
        values = pf.read_row_group(i, columns=["timestamp"]).column(0).cast(pa.int64())
        bounds = pc.min_max(values)
        if (stats.min_raw, stats.max_raw) != (bounds["min"].as_py(), bounds["max"].as_py()):
            return False
    return True


def summarise(lake: pathlib.Path) -> dict:
    files = sorted(p for p in lake.rglob("*.parquet") if p.is_file())
    rows = 0
    seqs = []
    columns = None
    flags = {}
    parse_errors = 0
    ranged = 0
    for path in files:
        ranged += time_ranged(path)
        table = pq.read_table(path, partitioning=None)
        if columns is None:
            columns = table.column_names
        rows += table.num_rows
        names = set(table.column_names)
        if "fields" in names:
            for text in table.column("fields").to_pylist():
                if text is None:
                    continue
                value = json.loads(text)
                seq = value.get("seq") if isinstance(value, dict) else None
                if isinstance(seq, int) and not isinstance(seq, bool):
                    seqs.append(seq)
        if "flags" in names:
            for row_flags in table.column("flags").to_pylist():
                for flag in row_flags or []:
                    flags[flag] = flags.get(flag, 0) + 1
        if "parse_error" in names:
            column = table.column("parse_error")
            parse_errors += len(column) - column.null_count
    seqs.sort()
    return {
        "files": len(files),
        "rows": rows,
        "seqs": seqs,
        "columns": columns or [],
        "flags": flags,
        "parse_errors": parse_errors,
        "time_ranged": ranged,
    }


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    lake = pathlib.Path(sys.argv[1])
    if not lake.is_dir():
        print(f"read_parquet.py: {lake} is not a directory", file=sys.stderr)
        return 2
    print(json.dumps(summarise(lake)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
