"""Lines per time bucket of one process's log, from a sparse index built once per file.

The sidecar answers ``GET /api/log/NAME/histogram?since=&until=&buckets=``
(docs/protocol.md) from here: the tail page draws it as the volume timeline
above the lines::

    index = HistogramIndex("/var/log/streamlog/web.log")
    while not index.step():          # on the history thread, a few MB a step
        pass
    index.answer(Query(since=t0, until=t1, buckets=100))

The index holds, per file of the log, the records counted per *slot* of
time -- stdout, stderr and status records, unexpected exits (status
``EXITED ... expected=false``) and error-level lines -- and the exits' exact
times.  A slot is one
second; a file whose records spread over more than :data:`SLOT_LIMIT`
distinct slots doubles its slot width until they fit, so a file costs at most
``SLOT_LIMIT`` slots whatever its size or time span.  It is built by one scan
of the file, by whole blocks: a regular expression finds each record's
second and stream and :class:`collections.Counter` tallies them, both in C --
or, where the records come in runs of one stamp (the capture stamps a whole
pipe read at once: a busy child's lines), one match per run, counted by its
newlines (about 3.7 s of CPU per GB instead of 7.5 here); only the lines
neither reads (records in a layout of another writer, lines that are not
records) are parsed one by one.  Error-level lines are the ones the page marks
error or fatal (:mod:`.levels`, a port of its rules): a few literal searches
per block find the lines that may be such (level words in any case but the
``stderr`` tag, numeric level fields, syslog priorities, glog prefixes,
escapes), and only those are parsed and read by the page's rules.  That
search is most of the build's cost now: about 8.8 s for bench/history.py's
1 GB where streams alone took 2.3 s (a dozen passes over each block at about
2 GB/s each; one pass trying an alternation at every byte was slower still).  A piece
that continues a split line (the record just before it, of its stream, ends
in ``+``) is not read on its own: the page reads the line from its start.

A closed file (a backup, plain or ``.gz``) is scanned once and its index
kept, by what identifies the file (device, inode and header offset, as
:mod:`..ondisk.files` identifies files): a rotation renames files without
changing them, so they are never read again.  A backup compressed after it
was indexed is the same records under a new inode: its index is taken over
when the ``.gz`` begins at the same offset and holds as many bytes.  The
live file's index goes on from the last complete record it counted: a
request reads only what was written since the one before.  Files that left
the listing (retention) are forgotten.

Memory: a closed file's index is frozen into arrays -- 48 bytes a slot
(its start and five running totals), so at most ~99 KB a file, plus 8 bytes
per exit time kept (at most :data:`EXIT_LIMIT`).  The live file's, still
growing, is a dict of at most ``SLOT_LIMIT`` slots (~210 bytes each).  A
request answers from the running totals with two bisections per bucket and
file: well under a millisecond per file, whatever the files' sizes.

Blocking file I/O: call :meth:`HistogramIndex.step` and
:meth:`HistogramIndex.answer` off the IOLoop.

It is over 500 lines: the request's parameters, the per-file scan (both formats,
plain and ``.gz``, resumable) and the answer from the slots are one piece;
split, each part would reach into the others' slots.
"""

from __future__ import annotations

import bisect
import collections
import math
import os
import re
import threading
import time
import zlib
from array import array
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Container, Counter, Dict, List, Optional, Set, Tuple

from ..ondisk.files import LogFile, ProcessFiles, header_base
from ..ondisk.formats import RecordError, parse
from .levels import ERROR_LEVELS, RULES, level_of_line
from .prefilter import derive
from .timeseek import parse_time

__all__ = ["HistogramIndex", "Histograms", "Query", "QueryError", "parse_query"]

#: Slots one file's index keeps at most (its slot width doubles past that).
SLOT_LIMIT = 2048
#: Exact exit times one file's index keeps at most (its slots count them all).
EXIT_LIMIT = 1024
#: Buckets one request may ask for.
MAX_BUCKETS = 2000
#: Buckets when the request does not say.
DEFAULT_BUCKETS = 100
#: Exit times one answer lists at most.
MAX_EXIT_TIMES = 1000
#: Bytes one :meth:`HistogramIndex.step` reads, about (a few MB: other history
#: requests on the same thread wait at most that long).
STEP_BYTES = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
#: Times a listed file may vanish under one step before it is left for the next.
_VANISH_LIMIT = 5

# stdout, stderr, status, exits, errors: the columns of a slot.
_STDOUT, _STDERR, _STATUS, _EXITS, _ERRORS = range(5)
_COLUMN = {b"stdout": _STDOUT, b"stderr": _STDERR, b"status": _STATUS}
COLUMNS = ("stdout", "stderr", "status", "exits", "errors")

# A record's second, its zone and its stream, as the writer lays out both
# formats: ``2026-11-27T01:23:45.678901+00:00 stdout ...`` and
# ``{"time": "2026-11-27T01:23:45.678901+00:00", "stream": "stdout", ...``.
# It starts with the newline before the record (the block gets one in front):
# a literal first lets the engine jump from line to line instead of trying
# every byte, twice as fast as ``^`` with re.M.
_RECORD = re.compile(
    rb'\n(?:\{"time": ")?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)[.\d]*(Z|[+-]\d\d:\d\d)?'
    rb'(?: |", "stream": ")(stdout|stderr|status)'
)
# A run of records with the same stamp and stream (the capture stamps a whole
# pipe read at once): one match, counted by its newlines, costs a third of
# one match per record -- when runs are long, which :func:`_runs_pay` checks.
_KEY = (
    rb'(?:\{"time": ")?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*(?:Z|[+-]\d\d:\d\d)?'
    rb'(?: |", "stream": ")(?:stdout|stderr|status)'
)
_RUN = re.compile(rb"\n(" + _KEY + rb")[^\n]*(?:\n\1[^\n]*)*")
_FIRST_KEY = re.compile(rb"\n(" + _KEY + rb")")
_EXIT_MARK = b"expected=false"
# Lines that may be error-level: a superset of what :mod:`.levels` reads as
# error or fatal, in both formats, the child's text JSON-escaped or not, derived
# from the level rules' file.  The layout's own words are never a level (the
# ``stderr`` tag holds ``err``); a level read from the text's start (glog, a
# traceback) follows a stream tag or the JSON format's "text" key.
_FRAMING = (b"stdout", b"stderr", b"status", b"time", b"stream", b"pid", b"text", b"partial")
_TEXT_STARTS = (rb"td(?:out|err)\+? ", rb'"text": "')
_PREFILTER = derive(RULES, _FRAMING, _TEXT_STARTS)
_PARTIAL = (b"stdout+ ", b"stderr+ ", b'"partial": true')


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
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise QueryError(f"{name} must be RFC 3339 or epoch seconds") from None
    if not math.isfinite(value) or not 0 <= value < 2**40:
        raise QueryError(f"{name} must be a time after 1970 and before the year 36812")
    return value


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


# ---------------------------------------------------------------- one file


class _Frozen:
    """A file's slots as sorted starts and running totals: any range in two bisections."""

    __slots__ = ("starts", "totals")

    def __init__(self, slots: Dict[int, List[int]]) -> None:
        self.starts = array("q", sorted(slots))
        self.totals = [array("q", [0]) for _ in COLUMNS]
        for start in self.starts:
            counts = slots[start]
            for column, total in enumerate(self.totals):
                total.append(total[-1] + counts[column])

    @property
    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.starts, *self.totals))


class FileIndex:
    """The counts of one file of the log, per slot of time."""

    def __init__(self, f: LogFile) -> None:
        self.identity = _identity(f)
        self.base = f.base
        self.path = f.path
        self.compressed = f.compressed
        #: Bytes of the file's contents counted (a record boundary).
        self.scanned = 0
        #: The file's size when it was counted to its end as a closed file; None before.
        self.complete: Optional[int] = None
        self.width = 1  # seconds per slot, a power of two
        self.slots: Dict[int, List[int]] = {}
        self.exits: List[float] = []
        self.frozen: Optional[_Frozen] = None
        self._seconds: Dict[Tuple[bytes, bytes], Optional[int]] = {}
        self._gz: Optional[_GzScan] = None
        #: The stream whose piece ended the last block counted, when it was a partial one.
        self._partial: Optional[str] = None

    # ------------------------------------------------------------ reading

    def advance(self, f: LogFile, closed: bool, budget: int) -> int:
        """Count what the file holds past ``scanned``, up to about ``budget`` bytes;
        the bytes read.  Raises :class:`_Vanished` when the path is another file now."""
        if self.complete is not None:
            return 0
        self.path = f.path
        if f.compressed:
            return self._advance_gz(f, closed, budget)
        fd = _open(f)
        try:
            size = os.fstat(fd).st_size
            if size < self.scanned:
                self.reset()  # truncated in place: count it again
            pos, read = self.scanned, 0
            want = _CHUNK
            ended = pos >= size
            while read < budget and not ended:
                data = os.pread(fd, min(want, size - pos), pos)
                read += len(data)
                hi = data.rfind(b"\n") + 1
                if hi == 0:
                    if not data or pos + len(data) >= size:
                        ended = True  # a record still being written (or a torn end)
                    else:
                        want *= 2  # a record longer than the chunk: read it whole
                    continue
                self._count(data[:hi] if hi < len(data) else data, pos == 0)
                pos += hi
                self.scanned = pos
                want = _CHUNK
                ended = pos >= size
            if closed and ended:
                self._close(size)
            return read
        finally:
            os.close(fd)

    def _advance_gz(self, f: LogFile, closed: bool, budget: int) -> int:
        if self._gz is None:
            self._gz = _GzScan(_open(f))
        scan, read = self._gz, 0
        while read < budget:
            data = scan.next_block()
            if data is None:
                break
            read += len(data)
            self._count(data, self.scanned == 0)
            self.scanned += len(data)
        if scan.done:
            scan.close()
            self._gz = None
            self._close(self.scanned)
        return read

    def _close(self, size: int) -> None:
        """Counted to the end of a closed file: freeze it, keep only the arrays."""
        self.complete = size
        self.frozen = _Frozen(self.slots)
        self.slots = {}
        self._seconds = {}

    def reset(self) -> None:
        """Forget every count (the file was truncated, or replaced)."""
        self.release()
        self.scanned = 0
        self.complete = None
        self.width = 1
        self.slots = {}
        self.exits = []
        self.frozen = None
        self._partial = None

    def release(self) -> None:
        """Close what a scan left open."""
        if self._gz is not None:
            self._gz.close()
            self._gz = None

    # ------------------------------------------------------------ counting

    def _count(self, data: bytes, at_start: bool) -> None:
        """Count the whole records in ``data`` (it ends with a newline)."""
        if at_start:
            newline = data.find(b"\n") + 1
            if header_base(data[:newline]) is not None:
                data = data[newline:]  # the file's header: bookkeeping, not a record
        block = b"\n" + data
        tally: Counter[Tuple[bytes, bytes, bytes]] = collections.Counter()
        if _runs_pay(block):
            for run in _RUN.finditer(block):
                key = _RECORD.match(b"\n" + run.group(1))
                if key is not None:
                    second, zone, stream = key.groups(b"")  # findall's way: b"" for no zone
                    tally[(second, zone, stream)] += block.count(b"\n", run.start(), run.end())
        else:
            tally.update(_RECORD.findall(block))
        self.frozen = None
        for (second, zone, stream), count in tally.items():
            moment = self._second(second, zone)
            if moment is not None:
                self._slot(moment)[_COLUMN[stream]] += count
        if sum(tally.values()) != data.count(b"\n"):
            self._count_odd(data)
        if _EXIT_MARK in data:
            self._count_exits(data)
        self._count_errors(data)

    def _count_errors(self, data: bytes) -> None:
        """Error-level lines: only the lines a candidate search finds are parsed."""
        for start in sorted(_candidates(data)):
            end = data.find(b"\n", start)
            try:
                record = parse(data[start:end])
            except RecordError:
                continue
            if record.stream == "status" or self._continues(data, start, record.stream):
                continue
            if level_of_line(record.text, record.stream) in ERROR_LEVELS:
                stamp = parse_time(record.time)
                if stamp is not None:
                    self._slot(int(math.floor(stamp)))[_ERRORS] += 1
        last = data.rfind(b"\n", 0, len(data) - 1) + 1
        self._partial = _partial_stream(data[last:-1])

    def _continues(self, data: bytes, start: int, stream: str) -> bool:
        """Whether the record at ``start`` continues a piece of its stream."""
        if start == 0:
            return self._partial == stream
        return _partial_stream(data[data.rfind(b"\n", 0, start - 1) + 1 : start - 1]) == stream

    def _count_odd(self, data: bytes) -> None:
        """Lines the fast expression did not read: parse them one by one."""
        for line in data.split(b"\n")[:-1]:
            if _RECORD.match(b"\n" + line):
                continue
            try:
                record = parse(line)
            except RecordError:
                continue  # not a record: never counted
            stamp = parse_time(record.time)
            column = _COLUMN.get(record.stream.encode("ascii"))
            if stamp is not None and column is not None:
                self._slot(int(math.floor(stamp)))[column] += 1

    def _count_exits(self, data: bytes) -> None:
        pos = data.find(_EXIT_MARK)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            try:
                record = parse(data[start:end])
            except RecordError:
                record = None
            if (
                record is not None
                and record.stream == "status"
                and record.data.startswith(b"EXITED ")
                and _EXIT_MARK in record.data.split()
            ):
                stamp = parse_time(record.time)
                if stamp is not None:
                    self._slot(int(math.floor(stamp)))[_EXITS] += 1
                    if len(self.exits) < EXIT_LIMIT:
                        self.exits.append(stamp)
            pos = data.find(_EXIT_MARK, end)

    def _second(self, second: bytes, zone: bytes) -> Optional[int]:
        """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` in ``zone`` (cached: a block
        holds few distinct seconds)."""
        key = (second, zone)
        if key in self._seconds:
            return self._seconds[key]
        text = second.decode("ascii") + ("+00:00" if zone == b"Z" else zone.decode("ascii"))
        try:
            moment: Optional[int] = int(datetime.fromisoformat(text).timestamp())
        except (ValueError, OverflowError, OSError):
            moment = None
        if len(self._seconds) > 4 * SLOT_LIMIT:
            self._seconds.clear()
        self._seconds[key] = moment
        return moment

    def _slot(self, moment: int) -> List[int]:
        start = moment - moment % self.width
        counts = self.slots.get(start)
        if counts is None:
            if len(self.slots) >= SLOT_LIMIT:
                self._coarsen()
                return self._slot(moment)
            counts = self.slots[start] = [0] * len(COLUMNS)
        return counts

    def _coarsen(self) -> None:
        """Twice as wide slots, until there are at most half ``SLOT_LIMIT``."""
        while len(self.slots) > SLOT_LIMIT // 2:
            self.width *= 2
            merged: Dict[int, List[int]] = {}
            for start, counts in self.slots.items():
                into = merged.setdefault(start - start % self.width, [0] * len(COLUMNS))
                for column in range(len(COLUMNS)):
                    into[column] += counts[column]
            self.slots = merged

    # ------------------------------------------------------------ answering

    def view(self) -> _Frozen:
        """The slots as running totals (made once per change)."""
        if self.frozen is None:
            self.frozen = _Frozen(self.slots)
        return self.frozen

    @property
    def nbytes(self) -> int:
        """What this index holds in memory, about (for the module docstring's claim)."""
        frozen = self.frozen.nbytes if self.frozen is not None else 0
        return frozen + 210 * len(self.slots) + 8 * len(self.exits)


def _candidates(data: bytes) -> Set[int]:
    """Where the lines of ``data`` that may be error-level start."""
    return _PREFILTER.line_starts(data)


def _partial_stream(line: bytes) -> Optional[str]:
    """The stream of ``line`` when it is a partial piece of stdout or stderr, else None."""
    if not any(mark in line for mark in _PARTIAL):
        return None
    try:
        record = parse(line)
    except RecordError:
        return None
    return record.stream if record.partial and record.stream != "status" else None


def _runs_pay(block: bytes) -> bool:
    """Whether the records of ``block`` come in runs of one stamp (a few records
    a pipe read, at least): judged by the first record's stamp in its first 64 KB."""
    first = _FIRST_KEY.match(block)
    return first is not None and block.count(first.group(0), 0, 65536) >= 4


class _GzScan:
    """Whole-record blocks of a ``.gz`` file, decompressed as they are read."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0  # in the compressed file
        self.inflate = zlib.decompressobj(wbits=31)
        self.rest = b""  # a record cut by the last block's edge
        self.done = False

    def next_block(self) -> Optional[bytes]:
        """The next run of whole records; None at the end."""
        while not self.done:
            raw = os.pread(self.fd, _CHUNK // 4, self.pos)
            self.pos += len(raw)
            try:
                out = self.inflate.decompress(raw) if raw else self.inflate.flush()
                while self.inflate.eof and self.inflate.unused_data:
                    # Another gzip member follows (concatenated files).
                    more = self.inflate.unused_data
                    self.inflate = zlib.decompressobj(wbits=31)
                    out += self.inflate.decompress(more)
            except zlib.error:
                out, raw = b"", b""  # damaged: keep what came out before
            if not raw:
                self.done = True
            data = self.rest + out
            hi = data.rfind(b"\n") + 1
            self.rest = data[hi:]
            if hi:
                return data[:hi]
        return None

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class _Vanished(Exception):
    """The listed file is gone, or its name is another file's now."""


def _open(f: LogFile) -> int:
    try:
        fd = os.open(f.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _Vanished(f.path) from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != f.key[:2]:
        os.close(fd)
        raise _Vanished(f.path)
    return fd


def _identity(f: LogFile) -> Tuple[int, int, int]:
    return (f.key[0], f.key[1], f.base)


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
                index = self.files[_identity(f)]
                closed = f is not files[-1]
                try:
                    read += index.advance(f, closed, budget - read)
                except _Vanished:
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
                newest = self.files[_identity(files[-1])]
                self._end = files[-1].base + newest.scanned
            return True

    def _adopt(self, files: List[LogFile]) -> None:
        """Match the listed files to the indexes kept; drop those of files gone."""
        kept: Dict[Tuple[int, int, int], FileIndex] = {}
        for f in files:
            key = _identity(f)
            index = self.files.get(key)
            if index is None:
                index = self._same_records(f) or FileIndex(f)
                index.identity = key
            kept[key] = index
        for key, index in self.files.items():
            if key not in kept:
                index.release()
        self.files = kept
        self._order = [kept[_identity(f)] for f in files]

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
