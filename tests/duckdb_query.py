#!/usr/bin/env python3
"""Run SQL with DuckDB over a local tidewater lake, independently of the Rust code.

Usage: duckdb_query.py LAKE_DIR SQL [SQL ...]

Creates the view `logs` over every `*.parquet` file under LAKE_DIR (as the
README's queries read the lake: `read_parquet('lake/**/*.parquet')`), runs
each SQL statement, and prints ONE JSON array on stdout: for each statement,
its rows as arrays (lists as arrays; timestamps, JSON values and other
types as strings).
"""
import json
import sys

import duckdb


def main() -> None:
    lake, statements = sys.argv[1], sys.argv[2:]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"CREATE VIEW logs AS SELECT * FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = false, union_by_name = true)"
    )
    out = []
    for sql in statements:
        rel = con.sql(sql)
        # TIMESTAMP WITH TIME ZONE values as text ('2026-12-02 13:55:00+00'):
        # turning them into Python objects would need pytz.
        quoted = ['"' + name.replace('"', '""') + '"' for name in rel.columns]
        exprs = [
            f"CAST({q} AS VARCHAR) AS {q}" if "TIME ZONE" in str(ty) else q
            for q, ty in zip(quoted, rel.types)
        ]
        rows = rel.project(", ".join(exprs)).fetchall()
        out.append([list(row) for row in rows])
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
