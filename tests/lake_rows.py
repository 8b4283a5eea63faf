#!/usr/bin/env python3
"""Print the rows of a tidewater data lake with pyarrow, independently of the Rust code.

Usage: lake_rows.py LAKE_DIR

Reads every `*.parquet` file under LAKE_DIR (recursively, no partition
inference) and prints ONE JSON array on stdout: every row's `file`, `stream`,
`offset`, `level`, `message` and `flags`, sorted by file, offset and stream.
The multiline integration tests (tests/it/multiline.rs) compare it with what
the parquet crate reads, and check the joined records on both.
"""
import json
import pathlib
import sys

import pyarrow.parquet as pq

COLUMNS = ["file", "stream", "offset", "level", "message", "flags"]


def rows(lake: pathlib.Path) -> list:
    out = []
    for path in sorted(p for p in lake.rglob("*.parquet") if p.is_file()):
        table = pq.read_table(path, columns=COLUMNS, partitioning=None)
        for row in table.to_pylist():
            row["flags"] = row["flags"] or []
            out.append(row)
    out.sort(key=lambda r: (r["file"] or "", r["offset"] or 0, r["stream"] or ""))
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    lake = pathlib.Path(sys.argv[1])
    if not lake.is_dir():
        print(f"lake_rows.py: {lake} is not a directory", file=sys.stderr)
        return 2
    print(json.dumps(rows(lake)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
