"""One file's records counted per slot of time: the scan under :mod:`.histogram`.

A :class:`FileIndex` counts, per slot of time, one file's stdout, stderr and
status records, its unexpected exits (status ``EXITED ... expected=false``)
and its error-level lines, and keeps the exits' exact times.  A slot is one
second; past :data:`SLOT_LIMIT` distinct slots a file's slot width doubles,
so a file costs at most that many slots whatever its size or time span.

Invariants: only whole records are counted (a scan stops at the last
newline and goes on from there on the next step); a file's header is never
counted; a piece that continues a split line is read with its first piece,
never on its own; a closed file, counted to its end, is frozen into arrays of
running totals and never read again.  The scan is by whole blocks: regular
expressions find each record's second and stream (one match per run of
records sharing a stamp, where runs pay), a literal pre-filter finds the lines
that may be error-level, and only those and the lines of another layout are
parsed.  Not thread-safe: :class:`~.histogram.HistogramIndex` holds the lock.
"""

from __future__ import annotations

import collections
import math
import os
import re
from array import array
from typing import Counter, Dict, List, Optional, Set, Tuple

from ..ondisk.files import LogFile, header_base
from ..ondisk.formats import RecordError, parse, record_seconds
from ..ondisk.gzipped import GzipStream
from .blocks import opened
from .levels import ERROR_LEVELS, RULES, level_of_line
from .prefilter import derive

#: Slots one file's index keeps at most (its slot width doubles past that).
SLOT_LIMIT = 2048
#: Exact exit times one file's index keeps at most (its slots count them all).
EXIT_LIMIT = 1024
_CHUNK = 1024 * 1024
#: The most of a ``.gz`` decompressed at once: a history step's worth (smaller
#: blocks cost the scan more per byte; docs/benchmarks.md, December 7).
_GZ_BLOCK = 8 * _CHUNK

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
_PARTIAL = (b"stdout+ ", b"stderr+ ", b'"partial": true')

# ---------------------------------------------------------------- the error-level pre-filter

# Lines that may be error-level: a superset of what :mod:`.levels` reads as
# error or fatal, in both formats, the child's text JSON-escaped or not, derived
# from the level rules' file (:mod:`.prefilter`).  The layout's own words are
# never a level (the ``stderr`` tag holds ``err``); a level read from the text's
# start (glog, a traceback) follows a stream tag or the JSON format's "text" key.
_FRAMING = (b"stdout", b"stderr", b"status", b"time", b"stream", b"pid", b"text", b"partial")
_TEXT_STARTS = (rb"td(?:out|err)\+? ", rb'"text": "')
_PREFILTER = derive(RULES, _FRAMING, _TEXT_STARTS)


def _candidates(data: bytes) -> Set[int]:
    """Where the lines of ``data`` that may be error-level start."""
    return _PREFILTER.line_starts(data)


# ---------------------------------------------------------------- one file's counts


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
        self.identity = file_identity(f)
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
        the bytes read.  Raises :class:`~.blocks.Vanished` when the path is another file now."""
        if self.complete is not None:
            return 0
        self.path = f.path
        if f.compressed:
            return self._advance_gz(f, closed, budget)
        fd = opened(f)
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
            self._gz = _GzScan(opened(f))
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
                stamp = record_seconds(record.time)
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
            stamp = record_seconds(record.time)
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
                stamp = record_seconds(record.time)
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
        seconds = record_seconds((second + zone).decode("ascii"))
        moment = None if seconds is None else int(seconds)
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
        """What this index holds in memory, about (docs/protocol.md gives the figure)."""
        frozen = self.frozen.nbytes if self.frozen is not None else 0
        return frozen + 210 * len(self.slots) + 8 * len(self.exits)


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
        self.stream = GzipStream(fd, _CHUNK // 4, piece=_GZ_BLOCK)
        self.rest = b""  # a record cut by the last block's edge
        self.done = False

    def next_block(self) -> Optional[bytes]:
        """The next run of whole records; None at the end."""
        while not self.done:
            out = self.stream.read()
            if not out:
                self.done = True  # the end, or the damage: what came out before it
            data = self.rest + out
            hi = data.rfind(b"\n") + 1
            self.rest = data[hi:]
            if hi:
                return data[:hi]
        return None

    def close(self) -> None:
        self.stream.close()


def file_identity(f: LogFile) -> Tuple[int, int, int]:
    """What identifies a file whatever its name: device, inode and header offset."""
    return (f.key[0], f.key[1], f.base)
