"""What ``GET /api/log/NAME/histogram`` should answer, counted from the entries themselves.

tests/test_integration_histogram.py checks the sidecar's answer with it and
tests/test_timeline.py the page's bars: both count the same entries the same way.
"""

from __future__ import annotations

import bisect
import math
from datetime import datetime
from typing import Any, Dict, List, Tuple

COLUMNS = ("stdout", "stderr", "status", "exits", "errors")


def is_error(text: str) -> bool:
    """Whether a line the histogram tests write is error-level (a plain ERROR, a JSON fatal)."""
    return text.startswith("ERROR: ") or text.startswith('{"level":"fatal"')


def seconds(time: str) -> float:
    """A record's time stamp as epoch seconds."""
    return datetime.fromisoformat(time).timestamp()


def counted(
    entries: List[Dict[str, Any]], since: float, until: float, buckets: int
) -> Tuple[Dict[str, List[int]], List[float]]:
    """Per bucket, the entries of each stream and the unexpected exits (docs/protocol.md's
    rule: a record counts in the bucket holding the start of its second)."""
    width = (until - since) / buckets
    edges = [since + i * width for i in range(buckets)] + [until]
    counts = {name: [0] * buckets for name in COLUMNS}
    exits: List[float] = []
    for entry in entries:
        moment = seconds(entry["time"])
        bucket = bisect.bisect_right(edges, math.floor(moment)) - 1
        if not 0 <= bucket < buckets:
            continue
        counts[entry["stream"]][bucket] += 1
        if entry["stream"] != "status" and is_error(entry["text"]):
            counts["errors"][bucket] += 1
        words = entry["text"].split()
        if entry["stream"] == "status" and words[0] == "EXITED" and "expected=false" in words:
            counts["exits"][bucket] += 1
            exits.append(moment)
    return counts, exits
