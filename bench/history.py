"""History reads over a big log: what ``GET /api/log/NAME`` costs on 1 GB.

    python -m bench.history                  # 1 GB live file + a 50 MB .gz backup
    python -m bench.history --size-mb 200    # smaller, quicker
    python -m bench.history --size-mb 300 --chunk-step 2   # the same records over 4 hours

Builds, in a temporary directory, one process's log as the capture writes it:
a ``.1.gz`` backup (``--gz-mb``, offsets from 0) and a plain live file of
``--size-mb`` of 100-byte-text records (4 ms apart in time), each starting with
its ``status STREAMLOG file offset=N`` header.  A rare string is in two records,
at 25 % and 95 % of the live file.  Then times, through
:class:`supervisor_streamlog.logread.logstore.LogStore`:

* the first ``read_backward(None, 200)`` page (a tail view opening), with the
  live file dropped from the page cache (``posix_fadvise DONTNEED``) and warm;
* ``read_forward`` of 200 records from the middle, ``seek_time`` to the middle;
* a search for the rare string (newest first, ``budget=0.5``), the same
  case-insensitively and as a regex, and over the whole history (no budget);
* the first read inside the ``.gz`` backup (decompressed once, then cached);
* ``GET /api/log/NAME/histogram``'s index (:mod:`supervisor_streamlog.logread.histogram`):
  its first build over the whole history (every file scanned once, the
  ``.gz`` decompressed as it streams), a later request (200 buckets, nothing
  new written), and one after 1 MB more was appended to the live file; then
  the same through the real sidecar (``supervisor-streamlog serve`` on
  127.0.0.1, HTTP): a new sidecar's first request (the build) and later ones.

"cold" is a new LogStore and the file's pages dropped; "warm" the median of 5
runs on one LogStore.  Removes its files at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from bench.common import free_port, http_get, stop_process
from supervisor_streamlog.logread.histogram import HistogramIndex, Query
from supervisor_streamlog.logread.logstore import LogStore, Page, SearchResult
from supervisor_streamlog.ondisk.files import header_text
from supervisor_streamlog.ondisk.formats import TextFormat

R = TypeVar("R")

T0 = 1795742625.0
NEEDLE = b"needle-7f3a9c"
RECORDS_PER_CHUNK = 400  # one stamp per chunk, as the capture stamps a pipe read
STEP = 0.004  # seconds between chunks


def _bodies(count: int) -> List[bytes]:
    """Chunks of 400 distinct 100-byte lines, built once and reused."""
    bodies = []
    for b in range(count):
        lines = []
        for n in range(RECORDS_PER_CHUNK):
            text = b"GET /api/items/%06d?page=%03d 200 %5dB user=u%04d agent=bench" % (
                b * RECORDS_PER_CHUNK + n,
                n % 1000,
                (n * 37) % 99999,
                (b * 7 + n) % 10000,
            )
            lines.append(text.ljust(100, b".") + b"\n")
        bodies.append(b"".join(lines))
    return bodies


def write_log(
    path: str, size: int, base: int, start: float, needles: Tuple[float, ...], step: float = STEP
) -> float:
    """Write a log file of about ``size`` bytes starting at offset ``base``, a chunk
    of records every ``step`` seconds; returns the clock."""
    fmt = TextFormat(utc=True)
    bodies = _bodies(16)
    marks = sorted(int(size * where) for where in needles)
    now = start
    with open(path, "wb", buffering=0) as out:
        out.write(fmt.notice(fmt.stamp(now), header_text(base)))
        written = 0
        chunk = 0
        while written < size:
            body = bodies[chunk % len(bodies)]
            if marks and written >= marks[0]:
                marks.pop(0)
                body = body[:-101] + (b"rare event " + NEEDLE).ljust(100, b"!") + b"\n"
            data = fmt.records(fmt.stamp(now), "stdout", 4242, [(body, False)])
            out.write(data)
            written += len(data)
            chunk += 1
            now += step
        os.fsync(out.fileno())
    return now


def drop_cache(path: str) -> None:
    """Evict a file's pages from the page cache (no root needed for clean pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(action: Callable[[], R]) -> Tuple[float, R]:
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000.0, result


def measure(live: str, action: Callable[[LogStore], R], cold_file: str) -> Tuple[float, float, R]:
    """(cold ms, warm median ms, last result)."""
    drop_cache(cold_file)
    cold, result = timed(lambda: action(LogStore(live)))
    store = LogStore(live)
    action(store)
    warm = []
    for _ in range(5):
        ms, result = timed(lambda: action(store))
        warm.append(ms)
    return cold, statistics.median(warm), result


def pages(page: Page) -> str:
    return f"{len(page.entries)} records"


def found(result: SearchResult, ms: float) -> str:
    scanned = result.scanned_bytes / 2**20
    rate = scanned / 1024 / (ms / 1000)
    return (
        f"{len(result.entries)} found, {scanned:.0f} MB scanned ({rate:.1f} GB/s), "
        f"complete={result.complete}, next={result.next}"
    )


Row = Tuple[str, float, float, str]


def histogram_rows(live: str, end: float, span: Tuple[float, float]) -> List[Row]:
    """The histogram index: first build (cold: pages dropped; warm: a new index on
    cached pages), later requests, a request after the live file grew."""
    rows: List[Row] = []
    query = Query(span[0], span[1] + 1, 200)

    def request(index: HistogramIndex) -> Dict[str, Any]:
        while not index.step():
            pass
        return index.answer(query)

    for path in (live, live + ".1.gz"):
        drop_cache(path)
    cold, _ = timed(lambda: request(HistogramIndex(live)))
    cpu = time.process_time()
    first, answer = timed(lambda: request(HistogramIndex(live)))
    cpu = (time.process_time() - cpu) * 1000.0  # wall time on a busy machine says less
    index = HistogramIndex(live)
    request(index)
    later = statistics.median(timed(lambda: request(index))[0] for _ in range(5))
    records = sum(sum(answer[name]) for name in ("stdout", "stderr", "status"))
    note = f"{records} records; warm: {cpu:.0f} ms of CPU"
    rows.append(("histogram: first build, whole history", cold, first, note))
    rows.append(("histogram: later request (200 buckets)", later, later, "nothing new to read"))
    memory = f"index {index.nbytes / 1024:.0f} KB for {len(index.files)} files"
    grown = []
    for n in range(5):
        write_more(live, 2**20, end + n)
        ms, _ = timed(lambda: request(index))
        grown.append(ms)
    rows.append(("histogram: after 1 MB more written", grown[0], statistics.median(grown), memory))
    return rows


def http_rows(root: str, span: Tuple[float, float]) -> List[Row]:
    """``GET /api/log/app/histogram`` from a sidecar serving ``root``: its first
    request (the index is built then) and later ones (median of 10)."""
    port = free_port()
    conf = os.path.join(root, "bench.conf")
    with open(conf, "w") as out:
        out.write(f"[streamlog]\nlogdir = {root}\nbind = 127.0.0.1:{port}\n")
    command = [sys.executable, "-m", "supervisor_streamlog", "serve", "-c", conf]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def fetch(query: str) -> Dict[str, Any]:
        with urllib.request.urlopen(f"{base}/api/log/app/histogram?{query}", timeout=300) as r:
            return dict(json.loads(r.read()))

    try:
        deadline = time.monotonic() + 30
        while http_get(base + "/healthz")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the sidecar did not answer")
            time.sleep(0.05)
        rows: List[Row] = []
        first, answer = timed(lambda: fetch("buckets=1"))
        note = f"{answer['stdout'][0]} stdout records"
        rows.append(("HTTP histogram: first request", first, first, note))
        for buckets in (300, 2000):
            query = f"since={span[0]}&until={span[1] + 1}&buckets={buckets}"
            times = [timed(partial(fetch, query))[0] for _ in range(10)]
            label = f"HTTP histogram: later ({buckets} buckets)"
            rows.append((label, times[0], statistics.median(times), "warm: median of 10"))
        return rows
    finally:
        stop_process(proc)


def write_more(path: str, size: int, now: float) -> None:
    """Append ``size`` bytes of records at ``now`` (the live file growing)."""
    fmt = TextFormat(utc=True)
    body = _bodies(1)[0]
    with open(path, "ab") as out:
        written = 0
        while written < size:
            written += out.write(fmt.records(fmt.stamp(now), "stdout", 4242, [(body, False)]))
            now += STEP


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="live file size (MB)")
    parser.add_argument("--gz-mb", type=int, default=50, help=".gz backup size, uncompressed")
    parser.add_argument(
        "--chunk-step",
        type=float,
        default=STEP,
        help="seconds between two chunks of 400 records (the history's time span)",
    )
    parser.add_argument("--dir", default=None, help="where to build the files (default: tmp)")
    args = parser.parse_args(argv)

    root = tempfile.mkdtemp(prefix="streamlog-history-", dir=args.dir)
    try:
        live = os.path.join(root, "app.log")
        backup = live + ".1"
        started = time.perf_counter()
        now = write_log(backup, args.gz_mb * 2**20, 0, T0, (), args.chunk_step)
        gz_size = os.path.getsize(backup)
        with open(backup, "rb") as src, gzip.open(backup + ".gz", "wb") as dst:
            shutil.copyfileobj(src, dst, 2**20)
        os.unlink(backup)
        end = write_log(live, args.size_mb * 2**20, gz_size, now, (0.25, 0.95), args.chunk_step)
        size = os.path.getsize(live)
        build = time.perf_counter() - started
        print(
            f"built {size / 2**20:.0f} MB live + {gz_size / 2**20:.0f} MB .gz backup "
            f"in {build:.1f} s ({root})",
            file=sys.stderr,
        )

        middle_time = (now + end) / 2
        middle_offset = gz_size + size // 2
        rows: List[Tuple[str, float, float, str]] = []

        cold, warm, page = measure(live, lambda s: s.read_backward(None, 200), live)
        rows.append(("read_backward(None, 200)", cold, warm, pages(page)))
        cold, warm, page = measure(live, lambda s: s.read_forward(middle_offset, 200), live)
        rows.append(("read_forward(middle, 200)", cold, warm, pages(page)))
        cold, warm, offset = measure(live, lambda s: s.seek_time(middle_time), live)
        rows.append(("seek_time(middle)", cold, warm, f"offset {offset}"))
        searches: List[Tuple[str, str, Dict[str, bool], float]] = [
            ("search rare", NEEDLE.decode(), {}, 0.5),
            ("search rare, ignore_case", NEEDLE.decode().upper(), {"ignore_case": True}, 0.5),
            ("search rare, regex", r"needle-[0-9a-f]{4}9c", {"regex": True}, 0.5),
            ("search rare, whole history", NEEDLE.decode(), {}, 60.0),
        ]
        for label, pattern, flags, budget in searches:

            def search(
                s: LogStore,
                pattern: str = pattern,
                flags: Dict[str, bool] = flags,
                budget: float = budget,
            ) -> SearchResult:
                return s.search(pattern, budget=budget, **flags)

            cold, warm, result = measure(live, search, live)
            rows.append((f"{label} (budget {budget:g} s)", cold, warm, found(result, warm)))
        inside = args.gz_mb * 2**20 // 2
        cold, warm, page = measure(live, lambda s: s.read_forward(inside, 200), live + ".1.gz")
        rows.append(
            (f"read_forward in .gz ({args.gz_mb} MB)", cold, warm, pages(page) + "; cold: gunzip")
        )

        rows += histogram_rows(live, end, (T0, end))
        rows += http_rows(root, (T0, end))

        print(f"\n| operation ({size / 2**30:.2f} GB live file) | cold ms | warm ms | result |")
        print("|---|---:|---:|---|")
        for name, cold, warm, note in rows:
            print(f"| {name} | {cold:.1f} | {warm:.2f} | {note} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
