"""Reading records back: CPU per record of the store and of the forwarder's pages.

    python -m bench.records                      # this checkout only
    python -m bench.records --baseline DIR       # and another checkout, side by side

What every reader pays per record before it does anything else: the
sidecar's history and catch-up (``LogStore.read_forward``) and the
forwarder's read-and-render step (``Feed.prepare``: read, parse, RFC 5424
message).  Writes ``--records`` 100-byte-text records with the real writer
(text and JSON formats, in a temporary directory), then, in a fresh
interpreter per checkout and round (alternating, so both see the same noise),
measures process CPU time per 10 000 records.  Prints medians and the ratio
new/old; pure CPU, no network and no rsyslogd (``bench.forward`` measures
the whole forwarder against a real one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter with the checkout under test first on sys.path.
_MEASURE = r"""
import json, sys, time
root, path, what = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
from supervisor_streamlog.logread.logstore import LogStore
store = LogStore(path)
count = 0
start = time.process_time()
if what == "store":
    cursor = 0
    while True:
        page = store.read_forward(cursor, 5000)
        if not page.entries:
            break
        count += len(page.entries)
        cursor = page.end
else:
    from supervisor_streamlog.forward.forwarder import Feed
    from supervisor_streamlog.forward.syslog import Origin
    feed = Feed("web:web", Origin("host1", "web", "web", "web.log"), store, 0)
    feed.rewind()
    while True:
        batch = feed.prepare(5000)
        if not batch.count:
            break
        count += batch.count
print(json.dumps({"records": count, "cpu": time.process_time() - start}))
"""


def write_log(directory: Path, fmt: str, records: int) -> str:
    """One process's log of ``records`` records, written by this checkout's writer."""
    from supervisor_streamlog.capture.writer import RotatingWriter
    from supervisor_streamlog.ondisk.formats import make_format

    path = directory / fmt / "web.log"
    path.parent.mkdir(parents=True)
    writer = RotatingWriter(str(path), maxbytes=64 * 1024 * 1024, backups=50, header=True)
    form = make_format(fmt, utc=True)
    ident = form.identity("web", "web")
    start = datetime.now(timezone.utc).timestamp()
    chunk: List[bytes] = []
    for n in range(records):
        line = b"line %09d " % n + b"x" * 84 + b"\n"
        stamp = form.stamp(start + n * 1e-5)
        chunk.append(form.records(stamp, "stdout", 4242, [(line, False)], ident))
        if len(chunk) == 1000:
            writer.write(b"".join(chunk))
            chunk = []
    writer.write(b"".join(chunk))
    writer.close()
    return str(path)


def measure(root: str, path: str, what: str) -> float:
    """CPU seconds per 10 000 records, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, root, path, what],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out)
    return float(result["cpu"]) / int(result["records"]) * 10_000


def main(argv: Optional[List[str]] = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="another checkout to compare with")
    args = parser.parse_args(argv)
    trees = {"new": str(ROOT)}
    if args.baseline:
        trees = {"old": os.path.abspath(args.baseline), **trees}
    work = Path(tempfile.mkdtemp(prefix="streamlog-bench-records-"))
    try:
        paths = {fmt: write_log(work, fmt, args.records) for fmt in ("text", "json")}
        figures: Dict[str, List[float]] = {}
        for _ in range(args.rounds):
            for fmt, path in paths.items():
                for what in ("store", "forward"):
                    for tree, root in trees.items():
                        key = f"{what} {fmt} {tree}"
                        figures.setdefault(key, []).append(measure(root, path, what))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.records} records, medians of {args.rounds} alternating rounds")
    print(f"{'reader':22} {'format':6} " + " ".join(f"{t:>10}" for t in trees) + "  new/old")
    for what in ("store", "forward"):
        for fmt in paths:
            row = [statistics.median(figures[f"{what} {fmt} {t}"]) for t in trees]
            ratio = f"{row[-1] / row[0]:8.2f}" if len(row) == 2 else ""
            name = "LogStore.read_forward" if what == "store" else "Feed.prepare"
            cells = " ".join(f"{v:10.4f}" for v in row)
            print(f"{name:22} {fmt:6} {cells}  {ratio}")
    print("(CPU seconds per 10 000 records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
