#!/usr/bin/env python3
"""Query a tidewater lake on S3 with DuckDB, as the README shows.

Usage: duckdb_s3.py ENDPOINT_HOST:PORT S3_GLOB [--offsets]

Loads the httpfs extension from the duckdb-extension-httpfs package (no
download), points an S3 secret at the endpoint (path style, plain HTTP), and
runs the README's Hive-partitioned read. Prints ONE JSON object:

  {"rows": N, "distinct_seqs": N, "days": N, "namespaces": [...]}

With --offsets, counts rows and distinct (file, offset) pairs instead:

  {"rows": N, "distinct_offsets": N}
"""
import json
import pathlib
import sys

import duckdb
import duckdb_extension_httpfs


def main() -> None:
    endpoint, glob = sys.argv[1:3]
    offsets = "--offsets" in sys.argv[3:]
    ext = next(pathlib.Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    con.execute(
        "CREATE SECRET lake (TYPE s3, KEY_ID 'duckdb', SECRET 'duckdb', REGION 'us-east-1', "
        f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)"
    )
    if offsets:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (file, \"offset\")) "
            f"FROM read_parquet('{glob}', hive_partitioning = true)"
        ).fetchone()
        print(json.dumps({"rows": rows, "distinct_offsets": distinct}))
        return
    rows, seqs, days = con.execute(
        "SELECT count(*), count(DISTINCT CAST(fields->>'$.seq' AS BIGINT)), count(DISTINCT dt) "
        f"FROM read_parquet('{glob}', hive_partitioning = true)"
    ).fetchone()
    namespaces = [r[0] for r in con.execute(
        f"SELECT DISTINCT namespace FROM read_parquet('{glob}', hive_partitioning = true) ORDER BY 1"
    ).fetchall()]
    print(json.dumps({"rows": rows, "distinct_seqs": seqs, "days": days, "namespaces": namespaces}))


if __name__ == "__main__":
    main()
