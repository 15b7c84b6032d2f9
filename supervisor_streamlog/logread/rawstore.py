"""supervisord's own child logs, for the processes streamlog does not capture.

Role: an existing deployment sees every process on day one.  A process
without a streamlog file (``captured: false``) is shown from the files
supervisord itself writes for it, the ``stdout_logfile``/``stderr_logfile``
paths its XML-RPC ``getAllProcessInfo`` reports (``AUTO`` ones resolved into
``childlogdir``).  :class:`RawStore` pages them like a streamlog log;
rawfollow.py follows them live by the same rules.

Invariants: only those paths are opened, and only regular files (a process
name never becomes a path); a position packs the two files' byte positions
into one integer below 2**53; the follower and history cut the same records
(the rules: :class:`RawStore`).  Blocking file I/O; a store may be shared
by threads::

    store = RawStore(raw_files(info))   # info: getAllProcessInfo's entry
    page = store.read_backward(None, 200)   # the newest 200 records of both lanes
"""

from __future__ import annotations

import logging
import os
import stat
import time
from typing import Any, Generator, List, Mapping, Optional, Tuple

from ..ondisk.files import Entry, record_end
from ..ondisk.formats import Record
from .search import Matcher, SearchResult
from .store import Page

log = logging.getLogger(__name__)

#: Width of the stdout lane: offset = stdout + stderr * LANE.
LANE = 2**26
STREAMS = ("stdout", "stderr")
_BLOCK = 64 * 1024
_READ = 256 * 1024
#: The read budget: a line longer than this is sent in pieces (see the module doc).
PIECE = 256 * 1024
#: Records read per step of a search.
_SEARCH_PAGE = 1000


def pack(positions: Tuple[int, int]) -> int:
    """One integer for a (stdout, stderr) pair of lane positions."""
    return positions[0] + positions[1] * LANE


def unpack(offset: int) -> Tuple[int, int]:
    """The (stdout, stderr) lane positions of an offset."""
    return offset % LANE, offset // LANE


def span(start: int, end: int) -> int:
    """Bytes of log between two offsets of a raw log."""
    a, b = unpack(start), unpack(end)
    return (b[0] - a[0]) + (b[1] - a[1])


class RawFile:
    """One lane: a child log file of supervisord, and where its lane begins in it."""

    def __init__(self, stream: str, path: str) -> None:
        self.stream = stream
        self.path = path
        #: The file position of lane position 0 (above 0 for a file past LANE bytes).
        self.base = 0

    def open(self) -> Optional[int]:
        """A descriptor of the file if it is a regular file now, else None.

        The path comes from supervisord's configuration: it could name a FIFO
        or a device (``/dev/stdout``, a terminal).  Opening one for reading can
        block, take a controlling terminal, or let a FIFO's writer go on into a
        pipe nobody drains, so the path is checked with ``stat`` before it is
        opened, opened so that it cannot block or become our terminal, and
        checked again on the descriptor (the name may have been replaced).
        """
        if not self.path:
            return None
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                return None
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass
        os.close(fd)
        return None

    def lane_size(self) -> int:
        """How far the lane reaches in the file now (0 when there is none)."""
        try:
            size = os.stat(self.path).st_size if self.path else 0
        except OSError:
            return 0
        return max(0, size - self.base)

    def rebase(self, size: int) -> bool:
        """Move the lane's start so that ``size`` fits in it; True if it moved."""
        if size - self.base < LANE:
            return False
        self.base = size - size % (LANE // 2) - LANE // 2
        return True


def cut_after(pos: int, low: int) -> int:
    """The first place a long line starting at ``pos`` may be cut: the first lane
    position (file position - ``low``) that is a multiple of ``PIECE`` and at
    least ``PIECE`` bytes after ``pos``."""
    return low + (pos - low + 2 * PIECE - 1) // PIECE * PIECE


def lane_end(fd: int, size: int, low: int) -> int:
    """The last record boundary at or before ``size`` (``low``: the lane's start).

    The boundaries of a lane (see the module doc) are its start, every position
    just after a newline, and every lane position ``A`` that is a multiple of
    ``PIECE`` with no newline among the ``PIECE`` bytes before it.  Each is
    decided by the bytes before it, so the last one is found within the last
    ``2 * PIECE`` bytes: a line in progress, however long, costs one read.
    """
    if size <= low:
        return low
    aligned = low + (size - low) // PIECE * PIECE
    start = max(low, aligned - PIECE)
    found = record_end(lambda pos, count: os.pread(fd, count, pos), size, start, size - start)
    # No newline since ``aligned - PIECE``: a cut at ``aligned`` (or the lane's
    # start, when it is that); else the last newline is past the last cut.
    return aligned if found is None else found


Line = Tuple[int, int, bytes, bool]  # file position of its start, of its end, text, partial


def _split(data: bytes, pos: int, low: int, limit: int) -> List[Line]:
    """The records of ``data`` (read at ``pos``, a record start), up to ``limit``
    and up to the last one ``data`` decides: whole lines, and pieces of long
    ones (``partial``) cut where the module doc says."""
    lines: List[Line] = []
    start = pos
    last = data.rfind(b"\n")
    if last >= 0:
        for text in data[:last].split(b"\n"):
            newline = start + len(text)
            if len(text) >= PIECE:  # may be cut: a shorter one never is
                cut = cut_after(start, low)
                while cut <= newline and len(lines) < limit:
                    lines.append((start, cut, data[start - pos : cut - pos], True))
                    start, cut = cut, cut + PIECE
                text = data[start - pos : newline - pos]
            if len(lines) == limit:
                return lines
            lines.append((start, newline + 1, text, False))
            start = newline + 1
            if len(lines) == limit:
                return lines
    # After the last newline: the pieces of a line still being written.
    cut = cut_after(start, low)
    while cut <= pos + len(data) and len(lines) < limit:
        lines.append((start, cut, data[start - pos : cut - pos], True))
        start, cut = cut, cut + PIECE
    return lines


def _forward(fd: int, pos: int, stop: int, limit: int, low: int) -> List[Line]:
    """Up to ``limit`` records from ``pos`` on, none past ``stop``.

    ``pos`` is taken as the start of a record, even inside a line (a cursor
    there, or a lane that starts mid-line): the first record is then the rest
    of that line from ``pos``.  The reads stay bounded whatever the lines' length.
    """
    lines: List[Line] = []
    size = _BLOCK
    while pos < stop and len(lines) < limit:
        # At least up to the next possible cut: a long line always gives a piece.
        want = min(max(size, cut_after(pos, low) - pos), stop - pos)
        data = os.pread(fd, want, pos)
        if not data:
            break  # the file shrank
        got = _split(data, pos, low, limit - len(lines))
        if not got:
            break  # only the start of a record that ends past ``stop``
        lines += got
        pos = got[-1][1]
        size = min(size * 2, _READ * 4)
    return lines


def _backward(fd: int, end: int, low: int, limit: int) -> List[Line]:
    """Up to ``limit`` records ending at or before ``end`` and starting at or
    after ``low``, newest first.

    Each block read is split from a place known to be a record start (just
    after its first newline, or its first possible cut if no newline comes
    before it, or ``low``); a block of ``2 * PIECE`` bytes always holds one,
    so the reads stay bounded and every step moves back.
    """
    end = lane_end(fd, end, low)
    lines: List[Line] = []
    size = _BLOCK
    while end > low and len(lines) < limit:
        start = max(low, end - size)
        data = os.pread(fd, end - start, start)
        if len(data) < end - start:
            break  # the file shrank
        first = start
        if start > low:
            cut = cut_after(start, low)
            newline = data.find(b"\n")
            first = start + newline + 1 if 0 <= newline < cut - start else cut
        if first >= end:
            size *= 2  # no record start known in the block yet
            continue
        got = _split(data[first - start :], first, low, len(data))
        if not got or got[-1][1] != end:
            log.error("raw log: records do not end at %d; history stops there", end)
            break
        for line in reversed(got):
            lines.append(line)
            end = line[0]
            if len(lines) == limit:
                break
        size = min(size * 2, _READ * 4)
    return lines


class RawStore:
    """History of a raw log: its live files read by lane positions.

    Those files carry no timestamps and no headers, so:

    * **Offsets.**  A raw log has two *lanes*, its stdout file and its stderr
      file (one with ``redirect_stderr``).  A position is the pair of byte
      positions (stdout, stderr) in the two files, packed into one integer,
      ``offset = stdout + stderr * LANE`` (``LANE`` = 2**26), so that a cursor
      stays one number below 2**53 (exact in JavaScript) and grows with every
      record of either lane.  A file that grows past ``LANE`` bytes (only with
      ``stdout_logfile_maxbytes`` above 64MB, or 0) is seen from a later point,
      as after a rotation.
    * **Records.**  A record is a line, or a piece of a long one: a line is cut
      at every lane position ``A`` that is a multiple of ``PIECE`` (256 KiB,
      the read budget) and follows ``PIECE`` bytes without a newline.  So a
      line of ``PIECE`` bytes or more comes as ``partial`` records (the first
      ``PIECE`` to ``2 * PIECE - 1`` bytes, the others ``PIECE``), then the rest
      of the line, with its newline, as an ordinary record (maybe empty).
      Whether a position is a boundary depends only on the ``PIECE`` bytes
      before it: the follower and history find the same records, a line still
      being written is sent piece by piece as it grows, and no read needs more
      than ``2 * PIECE`` bytes to find the next or the last record.  A read from
      any other position (a cursor inside a line) takes it as a record start:
      the rest of that line comes first.  The lane's start is a record start
      too, even where it cuts a line.  ``PIECE`` divides ``LANE // 2``.
    * **Order.**  Live records come in the order they were read; history cannot
      know how the two files interleaved, so a page interleaves them by position
      in their files.
    * **Rotation.**  supervisord renames ``NAME`` to ``NAME.1`` and starts a new
      file: the follower keeps the old file open, reads it to its end (bytes
      after its last newline, half a line the rotation cut, as a ``partial``
      record), then reports a reset (offsets of that lane start again at 0).  History covers
      the live files only, not the ``.1`` ... ``.N`` backups.
    * ``time`` is empty (sent as null): the records have none.

    Same calls as :class:`~.logstore.LogStore` where they make sense: pages
    forward and backward, search, bounds and a whole-log export; no time seek
    (raw lines have no time).  Files are opened per call; blocking.
    """

    def __init__(self, files: List[RawFile]) -> None:
        self.files = files  # stdout lane, stderr lane (either may be missing: None path)

    def _open(self) -> List[Tuple[RawFile, Optional[int], int]]:
        """Each lane: its file, a descriptor (None: no file) and its complete end."""
        lanes = []
        for raw in self.files:
            fd = raw.open()
            end = raw.base
            if fd is not None:
                end = max(raw.base, lane_end(fd, os.fstat(fd).st_size, raw.base))
            lanes.append((raw, fd, end))
        return lanes

    @staticmethod
    def _close(lanes: List[Tuple[RawFile, Optional[int], int]]) -> None:
        for _, fd, _ in lanes:
            if fd is not None:
                os.close(fd)

    def bounds(self) -> Tuple[int, int]:
        lanes = self._open()
        try:
            return 0, pack(lane_pair([end - raw.base for raw, _, end in lanes]))
        finally:
            self._close(lanes)

    def read_forward(self, start: Optional[int], limit: int, until: Optional[int] = None) -> Page:
        """Up to ``limit`` records from ``start`` (None: the oldest), and none past
        ``until`` in either lane."""
        lanes = self._open()
        try:
            begin = unpack(start or 0)
            stop = unpack(until) if until is not None else None
            found: List[Tuple[int, int, Line]] = []
            positions: List[int] = []
            for index, (raw, fd, end) in enumerate(lanes):
                pos = min(begin[index] + raw.base, end)
                if stop is not None:
                    end = min(end, stop[index] + raw.base)
                positions.append(pos - raw.base)
                if fd is not None and limit > 0:
                    for line in _forward(fd, pos, end, limit, raw.base):
                        found.append((line[0] - raw.base, index, line))
            found.sort(key=lambda item: (item[0], item[1]))
            chosen = found[:limit]
            entries = _entries(chosen, positions, lanes)
            ends = lane_pair([end - raw.base for raw, _, end in lanes])
            first = pack(lane_pair(positions))
            last = entries[-1].end if entries else first
            reached = unpack(last)
            after = reached[0] < ends[0] or reached[1] < ends[1]
            return Page(entries, first, last, first > 0, after)
        finally:
            self._close(lanes)

    def read_backward(self, end: Optional[int], limit: int) -> Page:
        """Up to ``limit`` records ending at or before ``end`` (None: the end)."""
        lanes = self._open()
        try:
            ends = [stop - raw.base for raw, _, stop in lanes]
            if end is not None:
                ends = [min(a, b) for a, b in zip(ends, unpack(end))]
            found: List[Tuple[int, int, Line]] = []
            for index, (raw, fd, _) in enumerate(lanes):
                if fd is not None and limit > 0:
                    for line in _backward(fd, ends[index] + raw.base, raw.base, limit):
                        found.append((line[0] - raw.base, index, line))
            found.sort(key=lambda item: (item[0], item[1]))
            chosen = found[-limit:] if limit > 0 else []
            positions = list(ends)
            for item in chosen:
                positions[item[1]] = min(positions[item[1]], item[0])
            entries = _entries(chosen, positions, lanes)
            first = pack(lane_pair(positions))
            last = pack(lane_pair(ends))
            return Page(entries, first, last, any(p > 0 for p in positions), False)
        finally:
            self._close(lanes)

    def span(self, start: int, end: int) -> int:
        """Bytes between two offsets: the growth of both lanes."""
        return span(start, end)

    def resume_at(self, cursor: int, live: int) -> int:
        """A cursor past what the files hold (from before a rotation) starts at
        the live position.  One only past the live position -- read over HTTP
        before the follower's next poll -- is kept: the hub waits for it."""
        mine, now = unpack(cursor), unpack(live)
        if all(m <= max(at, f.lane_size()) for m, at, f in zip(mine, now, self.files)):
            return cursor
        return pack((min(mine[0], now[0]), min(mine[1], now[1])))

    def seek_time(self, when: float) -> int:
        """Raw logs carry no timestamps: there is no time to seek to."""
        raise ValueError("no time jump: supervisord's own child logs carry no timestamps")

    def search(
        self,
        pattern: str,
        *,
        regex: bool = False,
        ignore_case: bool = False,
        start: Optional[int] = None,
        backward: bool = True,
        limit: int = 100,
        budget: float = 0.5,
    ) -> SearchResult:
        """Records whose text matches, page by page in the order pages show them."""
        matcher = Matcher(pattern, regex, ignore_case)
        deadline = time.monotonic() + budget
        found: List[Entry] = []
        scanned = 0
        cursor = start
        while True:
            if backward:
                page = self.read_backward(cursor, _SEARCH_PAGE)
                entries, cursor, more = list(reversed(page.entries)), page.start, page.has_before
            else:
                page = self.read_forward(cursor, _SEARCH_PAGE)
                entries, cursor, more = page.entries, page.end, page.has_after
            for entry in entries:
                scanned += len(entry.record.data) + 1
                if matcher.matches(entry.record):
                    found.append(entry)
                    if len(found) == limit:
                        return SearchResult(
                            found, entry.offset if backward else entry.end, scanned, True
                        )
            if not entries or not more:
                return SearchResult(found, None, scanned, True)
            if time.monotonic() >= deadline:
                return SearchResult(found, cursor, scanned, False)

    def export(
        self, start: Optional[int] = None, end: Optional[int] = None, chunk_size: int = _READ
    ) -> Generator[bytes, None, None]:
        """The stdout file, then the stderr file, as supervisord wrote them.

        Each lane from its position in ``start`` (None: its start) to its
        position in ``end`` (None: its last record -- its last newline, or the
        last piece of a long line), so [start, end) holds exactly the records
        a page between those cursors shows, lane by lane.
        """
        begin = unpack(start) if start is not None else (0, 0)
        stop = unpack(end) if end is not None else None
        for index, raw in enumerate(self.files):
            fd = raw.open()
            if fd is None:
                continue
            try:
                size = lane_end(fd, os.fstat(fd).st_size, raw.base)
                if stop is not None:
                    size = min(size, raw.base + stop[index])
                pos = raw.base + begin[index]
                while pos < size:
                    data = os.pread(fd, min(chunk_size, size - pos), pos)
                    if not data:
                        break
                    pos += len(data)
                    yield data
            finally:
                os.close(fd)


def lane_pair(values: List[int]) -> Tuple[int, int]:
    """Two lanes' values (the second 0 when there is one lane)."""
    return (values[0], values[1] if len(values) > 1 else 0)


def _entries(
    chosen: List[Tuple[int, int, Line]],
    positions: List[int],
    lanes: List[Tuple[RawFile, Optional[int], int]],
) -> List[Entry]:
    """Entries for lines in page order, offsets walking from ``positions``."""
    current = list(lane_pair(positions))
    entries = []
    for _, index, (begin, end, text, partial) in chosen:
        offset = pack((current[0], current[1]))
        current[index] += end - begin
        record = raw_record(lanes[index][0], text, partial)
        entries.append(Entry(offset, pack((current[0], current[1])), record))
    return entries


def raw_record(raw: RawFile, text: bytes, partial: bool = False) -> Record:
    """A record of a lane: no time (supervisord's files carry none)."""
    return Record("", raw.stream, text, partial)


def raw_files(info: Mapping[str, Any]) -> List[RawFile]:
    """The lanes of a process from its ``getAllProcessInfo`` entry ([] if none)."""
    out = str(info.get("stdout_logfile") or "")
    err = str(info.get("stderr_logfile") or "")
    if err == out:
        err = ""  # one file for both: read it once
    if not out and not err:
        return []
    # A missing lane is a path that never opens ("" cannot be a file).
    return [RawFile("stdout", out), RawFile("stderr", err)]
