"""Lines per time bucket of one process's log, from a sparse index kept per file.

The sidecar answers ``GET /api/log/NAME/histogram?since=&until=&buckets=``
(docs/protocol.md) from here: the tail page draws it as the volume timeline
above the lines::

    index = HistogramIndex("/var/log/streamlog/web.log")
    while not index.step():          # on the history thread, a few MB a step
        pass
    index.answer(Query(since=t0, until=t1, buckets=100))

Each file of the log has a :class:`~.histscan.FileIndex` (its records counted
per slot of time).  A closed file is counted once and its index kept by what
identifies it (device, inode, header offset): a rotation renames files
without changing them, and a backup compressed after it was counted takes
over the plain file's index (same offset, as many bytes).  The live file is
counted on from where the last step stopped; files that left the listing are
forgotten.  An answer sums the slots' running totals, two bisections per
bucket and file.  Blocking file I/O: call :meth:`HistogramIndex.step` and
:meth:`HistogramIndex.answer` off the IOLoop; one lock makes an index safe to share.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Container, Dict, List, Optional, Tuple

from ..ondisk.files import LogFile, ProcessFiles
from .blocks import Vanished
from .histscan import COLUMNS, FileIndex, file_identity
from .timeseek import parse_time_param

__all__ = ["HistogramIndex", "Histograms", "Query", "QueryError", "parse_query"]

#: Buckets one request may ask for.
MAX_BUCKETS = 2000
#: Buckets when the request does not say.
DEFAULT_BUCKETS = 100
#: Exit times one answer lists at most.
MAX_EXIT_TIMES = 1000
#: Bytes one :meth:`HistogramIndex.step` reads, about (a few MB: other history
#: requests on the same thread wait at most that long).
STEP_BYTES = 8 * 1024 * 1024
#: Times a listed file may vanish under one step before it is left for the next.
_VANISH_LIMIT = 5


class QueryError(ValueError):
    """A request's parameter that cannot be used (its message says which and why)."""


@dataclass(frozen=True)
class Query:
    """What one request asks: ``buckets`` equal buckets over ``[since, until)``
    (epoch seconds; None: the oldest record, now)."""

    since: Optional[float] = None
    until: Optional[float] = None
    buckets: int = DEFAULT_BUCKETS


def _time(name: str, raw: Optional[str]) -> Optional[float]:
    """``since`` or ``until``: None when absent or empty."""
    if raw is None or raw == "":
        return None
    try:
        return parse_time_param(name, raw)
    except ValueError as exc:
        raise QueryError(str(exc)) from None


def parse_query(since: Optional[str], until: Optional[str], buckets: Optional[str]) -> Query:
    """A :class:`Query` from a request's raw parameters; :class:`QueryError` when one
    does not read or they contradict each other."""
    start, end = _time("since", since), _time("until", until)
    count = DEFAULT_BUCKETS
    if buckets is not None and buckets != "":
        try:
            count = int(buckets)
        except ValueError:
            raise QueryError("buckets must be a whole number") from None
        if not 1 <= count <= MAX_BUCKETS:
            raise QueryError(f"buckets must be from 1 to {MAX_BUCKETS}")
    if start is not None and end is not None and end <= start:
        raise QueryError("until must be later than since")
    return Query(start, end, count)


# ---------------------------------------------------------------- one log


class HistogramIndex:
    """The counts of one process's log (live file ``live`` and its backups).

    Safe to share between threads (one lock); meant to be stepped and asked
    on the sidecar's history thread.
    """

    def __init__(self, live: str, clock: Callable[[], float] = time.time) -> None:
        self.live = live
        self.listing = ProcessFiles(live)
        self.clock = clock
        self.files: Dict[Tuple[int, int, int], FileIndex] = {}
        #: Bytes read by steps (tests, the benchmark).
        self.bytes_read = 0
        self._order: List[FileIndex] = []  # the listed files' indexes, oldest first
        self._end = 0  # offset up to which the newest file is counted
        self._vanished = 0  # files that vanished under the steps of this round
        self._lock = threading.Lock()

    def step(self, budget: int = STEP_BYTES) -> bool:
        """List the files and count up to about ``budget`` new bytes; True once
        every file is counted to its last complete record."""
        with self._lock:
            files = self.listing.files()
            self._adopt(files)
            read = 0
            for f in files:
                index = self.files[file_identity(f)]
                closed = f is not files[-1]
                try:
                    read += index.advance(f, closed, budget - read)
                except Vanished:
                    index.release()
                    self._vanished += 1
                    if self._vanished < _VANISH_LIMIT:
                        return False  # moved meanwhile: the next step lists again
                except OSError:
                    pass  # unreadable: counted as far as it could be read
                if read >= budget:
                    self.bytes_read += read
                    return False
            self.bytes_read += read
            self._vanished = 0
            if files:
                newest = self.files[file_identity(files[-1])]
                self._end = files[-1].base + newest.scanned
            return True

    def _adopt(self, files: List[LogFile]) -> None:
        """Match the listed files to the indexes kept; drop those of files gone."""
        kept: Dict[Tuple[int, int, int], FileIndex] = {}
        for f in files:
            key = file_identity(f)
            index = self.files.get(key)
            if index is None:
                index = self._same_records(f) or FileIndex(f)
                index.identity = key
            kept[key] = index
        for key, index in self.files.items():
            if key not in kept:
                index.release()
        self.files = kept
        self._order = [kept[file_identity(f)] for f in files]

    def _same_records(self, f: LogFile) -> Optional[FileIndex]:
        """A closed file's index under its new name: a ``.gz`` made of it (same
        offset, as many bytes)."""
        if not f.compressed:
            return None
        for index in self.files.values():
            if index.base == f.base and index.complete is not None and index.complete == f.size:
                index.compressed = True
                return index
        return None

    def answer(self, query: Query) -> Dict[str, Any]:
        """The counts per bucket for ``query`` (call :meth:`step` until True first)."""
        with self._lock:
            return self._answer(query)

    def _answer(self, query: Query) -> Dict[str, Any]:
        views = [(index, index.view()) for index in self._order]
        firsts = [v.starts[0] for _, v in views if len(v.starts)]
        lasts = [v.starts[-1] + i.width for i, v in views if len(v.starts)]
        first = min(firsts) if firsts else None
        last = max(lasts) if lasts else None
        until = query.until
        if until is None:
            until = float(math.ceil(self.clock()))
            if last is not None:
                until = max(until, float(last))
        since = query.since
        if since is None:
            since = float(first) if first is not None and first < until else until - 60.0
        if until <= since:
            raise QueryError("until must be later than since")
        buckets = query.buckets
        width = (until - since) / buckets
        edges = [since + i * width for i in range(buckets)] + [until]
        counts = [[0] * buckets for _ in COLUMNS]
        resolution = 1
        exits: List[float] = []
        for index, view in views:
            starts = view.starts
            if not len(starts) or starts[-1] < since or starts[0] >= until:
                continue
            resolution = max(resolution, index.width)
            # Only the buckets this file's slots fall in.
            lo = max(0, bisect.bisect_right(edges, starts[0]) - 1)
            hi = min(buckets, bisect.bisect_right(edges, starts[-1]))
            below = bisect.bisect_left(starts, edges[lo])
            for b in range(lo, hi):
                above = bisect.bisect_left(starts, edges[b + 1])
                if above != below:
                    for column, total in enumerate(view.totals):
                        counts[column][b] += total[above] - total[below]
                below = above
            for stamp in index.exits:
                # Listed when counted: by the start of its second, as the counts.
                if since <= math.floor(stamp) < until and len(exits) < MAX_EXIT_TIMES:
                    exits.append(stamp)
        exits.sort()
        body: Dict[str, Any] = {
            "since": since,
            "until": until,
            "buckets": buckets,
            "width": width,
            "resolution": resolution,
            "first": first,
            "last": last,
            "cursor": self._end,
            "exit_times": exits,
        }
        for column, name in enumerate(COLUMNS):
            body[name] = counts[column]
        return body

    @property
    def nbytes(self) -> int:
        """Memory the counts hold, about."""
        return sum(index.nbytes for index in self.files.values())

    def close(self) -> None:
        """Close what an unfinished scan holds open (a ``.gz`` half read)."""
        with self._lock:
            for index in self.files.values():
                index.release()


class Histograms:
    """The sidecar's indexes, one per process log, made on first use."""

    def __init__(self) -> None:
        self._indexes: Dict[str, HistogramIndex] = {}
        self._lock = threading.Lock()

    def index(self, spec: str, path: str) -> HistogramIndex:
        """The index of process ``spec``'s log at ``path`` (a new one if the path changed)."""
        with self._lock:
            index = self._indexes.get(spec)
            if index is None or index.live != path:
                if index is not None:
                    index.close()
                index = self._indexes[spec] = HistogramIndex(path)
            return index

    def forget(self, keep: Container[str]) -> None:
        """Drop the indexes of processes no longer shown."""
        with self._lock:
            for spec in [spec for spec in self._indexes if spec not in keep]:
                self._indexes.pop(spec).close()
