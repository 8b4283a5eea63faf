#!/usr/bin/env python3
"""Download what tidewater wrote to an S3 bucket, with boto3 (independent of
the Rust object_store code that wrote it).

Usage: s3_fetch.py ENDPOINT BUCKET PREFIX OUT_DIR

Every object under PREFIX/ is written to OUT_DIR/<key relative to PREFIX>.
Prints ONE JSON object on stdout:

  {"objects": N,             objects under the prefix
   "bytes": N,               their total size
   "multipart": N,           objects whose ETag shows a multipart upload ("...-<parts>")
   "incomplete_uploads": N,  multipart uploads started and neither completed nor aborted
   "keys": [...]}            the keys, relative to PREFIX
"""
import json
import pathlib
import sys

import boto3
from botocore.config import Config


def main() -> None:
    endpoint, bucket, prefix, out = sys.argv[1:5]
    prefix = prefix.strip("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="fetch",
        aws_secret_access_key="fetch",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    out_dir = pathlib.Path(out)
    listed = prefix + "/" if prefix else ""
    objects = multipart = size = 0
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=listed):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            rel = key[len(listed):]
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
            objects += 1
            size += obj["Size"]
            if "-" in obj["ETag"].strip('"'):
                multipart += 1
            keys.append(rel)
    incomplete = s3.list_multipart_uploads(Bucket=bucket, Prefix=listed).get("Uploads", [])
    print(json.dumps({
        "objects": objects,
        "bytes": size,
        "multipart": multipart,
        "incomplete_uploads": len(incomplete),
        "keys": sorted(keys),
    }))


if __name__ == "__main__":
    main()
