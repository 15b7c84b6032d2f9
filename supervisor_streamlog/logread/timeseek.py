"""Time jumps in one process's log: the offset of the first record at or after a time.

Picks the file by its first record's time, then bisects byte positions
inside it: a jump into a 1 GB file reads a few dozen small blocks.  Records
are in file order, which is time order short of the system clock going
back; then the answer is one of the right neighbours.  Used by
:meth:`~.logstore.LogStore.seek_time`.  :func:`parse_time_param` reads the
time a request jumps to (or a histogram's ``since``/``until``), the one
parser of a client's time for every handler.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Dict, List, Optional, Tuple

from ..ondisk.files import LogFile, is_header
from ..ondisk.formats import RecordError, parse, record_seconds
from .blocks import FIRST_BLOCK, MAX_BLOCK, BadLines, BlockStore, Reader, lines_forward

_SEEK_SPAN = 64 * 1024  # bisect down to this, then scan
_JSON_TIME = re.compile(rb'\{\s*"time"\s*:\s*"([^"\\]{1,64})"')
#: A request's time parameter is below this (2**40 s: the year 36812).
MAX_TIME_PARAM = 2**40


class TimeSeek:
    """Seeks by time in the files of ``store``; caches each file's first record time."""

    def __init__(self, store: BlockStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._first_times: Dict[Tuple[int, int, int], Optional[float]] = {}

    def seek(self, rd: Reader, files: List[LogFile], when: float) -> int:
        """The offset of the first record stamped at or after ``when`` (epoch
        seconds); the end of the last complete record when every one is older."""
        if not files:
            return 0
        complete = self.store._complete_end(rd, files)
        # The last file whose first record is older than ``when`` (bisect on files).
        lo, hi = 0, len(files)
        while lo < hi:
            mid = (lo + hi) // 2
            first = self._first_time(rd, files[mid])
            if first is None or first < when:
                lo = mid + 1
            else:
                hi = mid
        for f in files[max(lo - 1, 0) :]:
            found = self._seek_in_file(rd, f, when, f is files[-1])
            if found is not None:
                return found
        return complete

    def prune(self, files: List[LogFile]) -> None:
        """Forget the files no longer listed (once the cache has grown)."""
        with self._lock:
            if len(self._first_times) > 4 * len(files) + 16:
                alive = {(f.key[0], f.key[1], f.base) for f in files}
                for stale in [k for k in self._first_times if k not in alive]:
                    del self._first_times[stale]

    def _seek_in_file(self, rd: Reader, f: LogFile, when: float, last: bool) -> Optional[int]:
        # Invariant: ``lo`` is a record start older than ``when`` (or 0), and
        # every record starting at or after ``hi`` is at least ``when``.
        lo, hi = 0, f.size
        while hi - lo > _SEEK_SPAN:
            mid = (lo + hi) // 2
            probe = self._probe_time(rd, f, mid, hi)
            if probe is None:
                hi = mid  # no record with a time starts in [mid, hi)
            elif probe[1] < when:
                lo = probe[0]
            else:
                hi = probe[0]
        tally = BadLines()
        for item in self.store._file_forward(rd, f, lo, FIRST_BLOCK, tally, last):
            for offset, _end, line in lines_forward(item):
                if offset - f.base >= hi:
                    return offset
                try:
                    record = parse(line)
                except RecordError:
                    continue
                if is_header(record.stream, record.data):
                    continue
                stamp = record_seconds(record.time)
                if stamp is not None and stamp >= when:
                    return offset
        return None

    @staticmethod
    def _probe_time(rd: Reader, f: LogFile, mid: int, hi: int) -> Optional[Tuple[int, float]]:
        """The first record starting in [mid, hi) whose time reads, and that time."""
        pos = mid - 1  # a record starts at mid if the byte before it is a newline
        size = 4096
        while pos < hi:
            chunk = rd.read(f, pos, size + 128)
            if not chunk:
                return None
            newline = chunk.find(b"\n", 0, size)
            if newline < 0:
                pos += size
                size = min(size * 2, MAX_BLOCK)
                continue
            start = pos + newline + 1
            if start >= hi:
                return None
            head = chunk[newline + 1 : newline + 129]
            if len(head) < 128:
                head = rd.read(f, start, 128)
            stamp = _line_time(head)
            if stamp is not None:
                return start, stamp
            pos = start  # not a record: try the next line
        return None

    def _first_time(self, rd: Reader, f: LogFile) -> Optional[float]:
        """The time of a file's first record after its header (cached)."""
        key = (f.key[0], f.key[1], f.base)
        with self._lock:
            if key in self._first_times:
                return self._first_times[key]
        read = self.store._gz_head(f, FIRST_BLOCK) if f.compressed else None
        head = rd.read(f, 0, FIRST_BLOCK) if read is None else read
        found: Optional[float] = None
        for line in head.split(b"\n")[:-1]:
            try:
                record = parse(line)
            except RecordError:
                continue
            stamp = record_seconds(record.time)
            if stamp is None:
                continue
            if not is_header(record.stream, record.data):
                with self._lock:
                    self._first_times[key] = stamp
                return stamp
            if found is None:
                found = stamp  # the header's, while no record follows it
        return found


def parse_time_param(name: str, raw: str) -> float:
    """A request's time parameter (``time``, ``since``, ``until``) as epoch seconds.

    The one reading of a time a client sends (docs/protocol.md: "RFC 3339 time
    or epoch seconds"): a number is epoch seconds, anything else is read as a
    record's stamp is (:func:`~..ondisk.formats.record_seconds`).  ValueError,
    its message naming the parameter, when it does not read or is no time
    after 1970 and before the year 36812 (2**40 s: NaN, infinities, and epoch
    milliseconds mistaken for seconds, are refused).
    """
    try:
        value = float(raw)
    except ValueError:
        stamp = record_seconds(raw)
        if stamp is None:
            raise ValueError(f"{name} must be RFC 3339 or epoch seconds") from None
        value = stamp
    if not math.isfinite(value) or not 0 <= value < MAX_TIME_PARAM:
        raise ValueError(f"{name} must be a time after 1970 and before the year 36812")
    return value


def _line_time(head: bytes) -> Optional[float]:
    """The time of a record from the first bytes of its line (either format)."""
    if head.startswith(b"{"):
        match = _JSON_TIME.match(head)
        stamp = match.group(1) if match else b""
    else:
        stamp = head[: head.find(b" ")] if b" " in head else b""
    if not stamp:
        return None
    return record_seconds(stamp.decode("ascii", "replace"))
