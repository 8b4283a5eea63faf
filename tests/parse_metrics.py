#!/usr/bin/env python3
"""Parse an OpenMetrics/Prometheus text exposition on stdin with the
prometheus_client library's own parser (the strict OpenMetrics one), and
print every sample as a JSON line: {"family", "type", "name", "labels", "value"}.

A body the parser rejects makes this exit non-zero with the parser's error,
so a malformed /metrics fails the test that scrapes it."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "name": s.name,
                "labels": s.labels,
                "value": s.value,
            }))
except Exception as e:  # the parser raises ValueError and others
    print(f"not valid OpenMetrics text: {e}", file=sys.stderr)
    sys.exit(1)
