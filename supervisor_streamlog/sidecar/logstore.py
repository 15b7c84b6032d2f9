"""One process's history, read by offset across its live file and every backup.

The sidecar serves ``GET /api/log/NAME`` (paging by cursor), time jumps and
search from here::

    store = LogStore("/var/log/streamlog/web.log")
    page = store.read_backward(None, 200)           # the newest 200 records
    older = store.read_backward(page.start, 200)    # the 200 before them
    newer = store.read_forward(page.end, 200)       # what came after (live)
    store.read_forward(store.seek_time(time.time() - 3600), 200)  # an hour ago
    store.search("Traceback", limit=50)              # newest matches first

Positions are *offsets* in the process's whole log (see :mod:`.logfiles`): a
file's header base plus the position inside the uncompressed file, so they stay
valid across rotation, compression, retention and a restart of either side.  A
*cursor* is an offset at a record boundary: an :class:`~.logfiles.Entry`'s
``offset`` or ``end``.  A record is complete only once its newline is written;
the partial last record of the live file is never returned, and
``bounds()[1]`` is the end of the last complete record.

Reading is by blocks, from the end backwards when going back (the newest page
of a 1 GB file costs two small reads), and files are opened per call and
checked by inode: if the capture rotates, compresses or deletes a file under a
reader, the file list is taken again and the call retried (a few times; then
the files that keep vanishing count as deleted, never an exception).
Decompressed ``.gz`` backups are kept in a small cache (a few files, bounded
in bytes), since paging through one reads it many times.

The methods do blocking file I/O -- a first look into a 50 MB ``.gz``
decompresses it (~0.1 s), a search runs up to its budget -- so a Tornado
server should call them through an executor.  A store may be shared by
threads.  ``python -m bench.history`` measures them on a 1 GB file.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import itertools
import json
import os
import re
import threading
import time
import zlib
from datetime import datetime
from typing import (
    BinaryIO,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Pattern,
    Tuple,
    TypeVar,
    Union,
)

from ..ondisk.files import Entry, LogFile, header_base, is_header
from ..ondisk.formats import Record, RecordError, parse

T = TypeVar("T")

#: How a file on disk is recognised: st_dev, st_ino, st_mtime_ns, st_size.
#: No path: rotation renames a backup without changing its contents.
FileKey = Tuple[int, int, int, int]

_RETRIES = 4  # new listings after a file vanished, before doing without it
_FIRST_BLOCK = 64 * 1024  # enough for a page of a few hundred records
_MAX_BLOCK = 1024 * 1024
_SEEK_SPAN = 64 * 1024  # bisect down to this, then scan
_JSON_TIME = re.compile(rb'\{\s*"time"\s*:\s*"([^"\\]{1,64})"')
# Regex features that can match a record's text alone but not the same text
# inside a block of whole lines (where it follows "TIME STREAM " and precedes
# "\n"): such patterns are checked line by line.
_UNSAFE_REGEX = re.compile(r"\\A|\\Z|\(\?<|\(\?!|(?<!\[)\^")


@dataclasses.dataclass
class Page:
    """Records of one read, oldest first, and where the caller can go from there."""

    entries: List[Entry]
    start: int  #: offset of the first entry (the cursor when empty)
    end: int  #: end of the last entry (the cursor when empty)
    has_before: bool  #: older records exist (before ``start``)
    has_after: bool  #: newer complete records exist (from ``end``)
    #: A range of the log this page skipped because no file holds it any more
    #: (retention deleted it): going forward ``[start, first available)``, or
    #: a hole the page crossed before its first record; going backward the
    #: hole crossed, or ``[0, oldest available)`` once it reached the oldest record.
    missing: Optional[Tuple[int, int]] = None
    #: Lines skipped because they are not records (within the page's range,
    #: or anywhere it looked when it is empty).
    bad_lines: int = 0


@dataclasses.dataclass
class SearchResult:
    """Matches of one search call, and the cursor to search on from."""

    entries: List[Entry]  #: newest first going backward, oldest first going forward
    #: Where to continue (the ``start`` of the next call in the same direction);
    #: None when the history was covered to its end in that direction.
    next: Optional[int]
    scanned_bytes: int
    #: False when the time budget ran out first: ``entries`` are what was found
    #: so far and ``next`` goes on from where the scan stopped.
    complete: bool


@dataclasses.dataclass(frozen=True)
class _File:
    path: str
    base: int
    size: int
    compressed: bool
    key: FileKey

    @property
    def end(self) -> int:
        return self.base + self.size


class _Block(NamedTuple):
    """Whole records: ``data[lo:hi]``, where ``data[lo]`` is at offset ``at + lo``.

    A window rather than a slice, so a block is copied once (by the read):
    the bytes around it are a piece of a record cut by the block's edge.
    """

    at: int  # the offset of data[0]
    data: bytes
    lo: int  # 0 or just after a newline: data[:lo] holds one newline, at its end
    hi: int  # just after a newline; data[hi:] holds none

    @property
    def offset(self) -> int:
        return self.at + self.lo

    @property
    def end(self) -> int:
        return self.at + self.hi

    def lines(self) -> List[bytes]:
        """The records, without their newlines."""
        lines = self.data.split(b"\n")
        lines.pop()  # the empty string after the last newline, or the cut piece
        if self.lo:
            del lines[0]
        return lines


class _Gap(NamedTuple):
    start: int  # a range of the log that no file holds (deleted)
    end: int
    oldest: bool  # the deleted beginning of the log: nothing lies beyond


class _Vanished(Exception):
    """A listed file is gone or is another file now: list again and retry."""

    def __init__(self, file: _File) -> None:
        super().__init__(file.path)
        self.file = file


@dataclasses.dataclass
class _Tally:
    bad: int = 0  # unparseable lines and torn record ends
    #: ``bad`` when the last entry was taken: those past it are read again by
    #: the next page, and counted there.
    kept: int = 0

    def page_count(self, entries: List[Entry]) -> int:
        return self.kept if entries else self.bad


@dataclasses.dataclass
class _Meta:
    base: Optional[int]  # from the header; None when the file has none
    size: int  # uncompressed


class _Reader:
    """The files one call reads: opened lazily, verified by inode, closed at the end.

    A file that is gone, or is another file now, raises :class:`_Vanished`.
    """

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.fds: Dict[str, int] = {}
        self.memory: Dict[str, bytes] = {}

    def read(self, f: _File, pos: int, size: int) -> bytes:
        """``size`` bytes at ``pos`` of ``f``'s contents (fewer only at its end)."""
        size = max(0, min(size, f.size - pos))
        if f.compressed:
            data = self.memory.get(f.path)
            if data is None:
                data = self.memory[f.path] = self.store._gz_contents(f)
            return data[pos : pos + size]
        fd = self.fds.get(f.path)
        if fd is None:
            fd = self.fds[f.path] = self._open(f)
        data = os.pread(fd, size, pos)
        if len(data) < size:
            more = [data]
            got = len(data)
            while got < size:
                chunk = os.pread(fd, size - got, pos + got)
                if not chunk:
                    raise _Vanished(f)  # shrank: not the file we listed
                more.append(chunk)
                got += len(chunk)
            data = b"".join(more)
        self.store.bytes_read += len(data)
        return data

    @staticmethod
    def _open(f: _File) -> int:
        try:
            fd = os.open(f.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise _Vanished(f) from None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != f.key[:2]:
            os.close(fd)
            raise _Vanished(f)
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


class LogStore:
    """Reads one process's log (live file ``live_path`` and its backups) by offset."""

    def __init__(
        self,
        live_path: str,
        gz_cache_files: int = 3,
        gz_cache_bytes: int = 256 * 1024 * 1024,
        max_backups: int = 10_000,
    ) -> None:
        self.live_path = live_path
        self.gz_cache_files = gz_cache_files
        self.gz_cache_bytes = gz_cache_bytes
        self.max_backups = max_backups
        #: Bytes read from disk (plain reads and compressed files): for metrics and tests.
        self.bytes_read = 0
        #: .gz files decompressed (cache misses).
        self.decompressed = 0
        self._lock = threading.Lock()
        self._meta: Dict[FileKey, _Meta] = {}
        self._first_times: Dict[Tuple[int, int, int], Optional[float]] = {}
        self._ends: Dict[FileKey, int] = {}
        self._odd: Optional[List[Tuple[int, int, int]]] = None  # a listing with a hole
        self._gz: collections.OrderedDict[FileKey, bytes] = collections.OrderedDict()

    # ------------------------------------------------------------ the files

    def files(self) -> List[LogFile]:
        """The process's files now, oldest first, with their offsets.

        What :func:`.logfiles.process_files` returns, but headers and sizes are
        cached by (device, inode, mtime, size), so calling this per request is
        cheap, and a listing taken while a rotation renames files is taken again.
        """
        return [LogFile(f.path, f.base, f.size) for f in self._list_files()]

    def bounds(self) -> Tuple[int, int]:
        """Oldest available offset and the end of the last complete record.

        Everything in between can be read; a client that knows both can show
        how much history there is and whether its cursor is still valid.
        """

        def op(rd: _Reader, files: List[_File]) -> Tuple[int, int]:
            if not files:
                return 0, 0
            return files[0].base, self._complete_end(rd, files)

        return self._run(op)

    # ------------------------------------------------------------ export

    def export(
        self, start: Optional[int] = None, end: Optional[int] = None, chunk_size: int = 256 * 1024
    ) -> Generator[bytes, None, None]:
        """The log's records in [start, end) as the files hold them, oldest first,
        in chunks of about ``chunk_size`` bytes: what a download sends.

        Every backup and the live file, ``.gz`` decompressed as it streams,
        file headers left out, up to the end of the last complete record.
        ``start``/``end`` are cursors (None: the oldest record, the end); holes
        left by retention are passed over.  The files are all opened first, so
        rotation, compression or retention meanwhile change nothing: the
        export is the log as it was when it began.  Memory stays at a chunk
        whatever the size.  Blocking: iterate it off the IOLoop.
        """
        handles = self._open_all()
        try:
            if not handles:
                return
            files = [f for f, _ in handles]
            begin = files[0].base if start is None else max(start, files[0].base)
            rd = _Reader(self)
            try:
                complete = self._complete_end(rd, files)
            except _Vanished:
                complete = files[-1].end  # the live file was replaced: what was opened
            finally:
                rd.close()
            stop = complete if end is None else min(end, complete)
            for f, handle in handles:
                if f.end <= begin or f.base >= stop:
                    continue
                lo, hi = max(begin - f.base, 0), min(stop, f.end) - f.base
                yield from _export_file(handle, lo, hi, chunk_size)
        finally:
            _close_all(handles)

    def _open_all(self) -> List[Tuple[_File, BinaryIO]]:
        """Every file of the log, opened, each checked to be the file listed."""
        for attempt in range(_RETRIES + 1):
            files = self._list_files()
            opened: List[Tuple[_File, BinaryIO]] = []
            for f in files:
                try:
                    handle: BinaryIO = open(f.path, "rb")
                except OSError:
                    continue
                st = os.fstat(handle.fileno())
                if (st.st_dev, st.st_ino) != f.key[:2]:
                    handle.close()
                    continue
                if f.compressed:
                    handle = gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[assignment]
                opened.append((f, handle))
            if len(opened) == len(files) or attempt == _RETRIES:
                return opened  # at the last attempt, what could be opened
            _close_all(opened)
        return []

    # ------------------------------------------------------------ paging

    def read_forward(self, start: Optional[int], limit: int) -> Page:
        """Up to ``limit`` records from ``start`` on, oldest first (the "newer" page).

        ``start`` None is the oldest record; an offset inside a record moves on
        to the next record; one older than the oldest file starts at the oldest
        record and ``missing`` says which bytes are gone; one at or past the end
        gives an empty page.  Stops before a hole in the middle of the log once
        it has records, so the next page reports the hole.
        """
        return self._run(lambda rd, files: self._read_forward(rd, files, start, limit))

    def read_backward(self, end: Optional[int], limit: int) -> Page:
        """Up to ``limit`` records ending at or before ``end``, returned oldest first.

        ``end`` None is the end of the log: the page a tail view opens with.
        Reads blocks from ``end`` backwards, so it costs the same at the end of
        a 1 GB file as at the start of a small one.
        """
        return self._run(lambda rd, files: self._read_backward(rd, files, end, limit))

    def _read_forward(
        self, rd: _Reader, files: List[_File], start: Optional[int], limit: int
    ) -> Page:
        if not files:
            cursor = start or 0
            return Page([], cursor, cursor, False, False)
        oldest = files[0].base
        start = oldest if start is None else max(start, 0)
        complete = self._complete_end(rd, files)
        tally = _Tally()
        entries: List[Entry] = []
        missing: Optional[Tuple[int, int]] = None
        if limit > 0 and start < complete:
            blocks = self._forward_blocks(rd, files, start, _block_for(limit), tally)
            for item in blocks:
                if isinstance(item, _Gap):
                    if entries:
                        break  # the next page starts at the hole and reports it
                    missing = missing or (item.start, item.end)
                    continue
                if _collect(_lines_forward(item), entries, limit, tally):
                    break
        first = entries[0].offset if entries else start
        last = entries[-1].end if entries else start
        bad = tally.page_count(entries)
        return Page(entries, first, last, first > oldest, last < complete, missing, bad)

    def _read_backward(
        self, rd: _Reader, files: List[_File], end: Optional[int], limit: int
    ) -> Page:
        if not files:
            cursor = end or 0
            return Page([], cursor, cursor, False, False)
        oldest = files[0].base
        complete = self._complete_end(rd, files)
        end = complete if end is None else max(min(end, complete), 0)
        tally = _Tally()
        entries: List[Entry] = []
        missing: Optional[Tuple[int, int]] = None
        if limit > 0:
            for item in self._backward_blocks(rd, files, end, _block_for(limit), tally):
                if isinstance(item, _Gap):
                    if entries and not item.oldest:
                        break
                    missing = missing or (item.start, item.end)
                    continue
                if _collect(_lines_backward(item), entries, limit, tally):
                    break
        entries.reverse()
        first = entries[0].offset if entries else end
        last = entries[-1].end if entries else end
        bad = tally.page_count(entries)
        return Page(entries, first, last, first > oldest, last < complete, missing, bad)

    # ------------------------------------------------------------ time

    def seek_time(self, when: float) -> int:
        """The offset of the first record stamped at or after ``when`` (epoch seconds).

        Picks the file by its first record's time, then bisects byte positions
        inside it: a jump into a 1 GB file reads a few dozen small blocks.
        Records are in file order, which is time order short of the system
        clock going back; then the answer is one of the right neighbours.
        Returns the end offset when every record is older than ``when``.
        """
        return self._run(lambda rd, files: self._seek_time(rd, files, when))

    def _seek_time(self, rd: _Reader, files: List[_File], when: float) -> int:
        if not files:
            return 0
        complete = self._complete_end(rd, files)
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

    def _seek_in_file(self, rd: _Reader, f: _File, when: float, last: bool) -> Optional[int]:
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
        tally = _Tally()
        for item in self._file_forward(rd, f, lo, _FIRST_BLOCK, tally, last):
            for offset, _end, line in _lines_forward(item):
                if offset - f.base >= hi:
                    return offset
                try:
                    record = parse(line)
                except RecordError:
                    continue
                if is_header(record.stream, record.data):
                    continue
                stamp = _parse_time(record.time)
                if stamp is not None and stamp >= when:
                    return offset
        return None

    def _probe_time(self, rd: _Reader, f: _File, mid: int, hi: int) -> Optional[Tuple[int, float]]:
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
                size = min(size * 2, _MAX_BLOCK)
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

    def _first_time(self, rd: _Reader, f: _File) -> Optional[float]:
        """The time of a file's first record after its header (cached)."""
        key = (f.key[0], f.key[1], f.base)
        with self._lock:
            if key in self._first_times:
                return self._first_times[key]
        head = self._gz_head(f, _FIRST_BLOCK) if f.compressed else rd.read(f, 0, _FIRST_BLOCK)
        found: Optional[float] = None
        for line in head.split(b"\n")[:-1]:
            try:
                record = parse(line)
            except RecordError:
                continue
            stamp = _parse_time(record.time)
            if stamp is None:
                continue
            if not is_header(record.stream, record.data):
                with self._lock:
                    self._first_times[key] = stamp
                return stamp
            if found is None:
                found = stamp  # the header's, while no record follows it
        return found

    # ------------------------------------------------------------ search

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
        """Records whose text contains ``pattern`` (or matches it as a Python regex).

        Going backward (the default) from ``start`` (None: the end), newest
        first; forward from ``start`` (None: the oldest), oldest first.  Stops
        at ``limit`` matches or once ``budget`` seconds are spent (after at
        least one block, so every call makes progress); ``next`` continues.
        Blocks are searched with bytes/regex operations over the whole block and
        only candidate lines are parsed.  File headers never match.
        Raises ValueError for a bad regular expression.
        """
        matcher = _Matcher(pattern, regex, ignore_case)
        deadline = time.monotonic() + budget
        return self._run(
            lambda rd, files: self._search(rd, files, matcher, start, backward, limit, deadline)
        )

    def _search(
        self,
        rd: _Reader,
        files: List[_File],
        matcher: _Matcher,
        start: Optional[int],
        backward: bool,
        limit: int,
        deadline: float,
    ) -> SearchResult:
        if not files or limit <= 0 or matcher.never:
            return SearchResult([], None, 0, True)
        complete = self._complete_end(rd, files)
        tally = _Tally()
        blocks: Iterator[Union[_Block, _Gap]]
        if backward:
            end = complete if start is None else min(start, complete)
            blocks = self._backward_blocks(rd, files, end, 256 * 1024, tally)
        else:
            begin = files[0].base if start is None else max(start, 0)
            blocks = self._forward_blocks(rd, files, begin, 256 * 1024, tally)
        found: List[Entry] = []
        scanned = 0
        for item in blocks:
            if isinstance(item, _Gap):
                continue
            hits = matcher.scan(item)
            scanned += item.hi - item.lo
            if backward:
                hits.reverse()
            need = limit - len(found)
            if len(hits) >= need:
                found.extend(hits[:need])
                return SearchResult(
                    found, found[-1].offset if backward else found[-1].end, scanned, True
                )
            found.extend(hits)
            if time.monotonic() >= deadline:
                cursor = item.offset if backward else item.end
                return SearchResult(found, cursor, scanned, False)
        return SearchResult(found, None, scanned, True)

    # ------------------------------------------------------------ blocks

    def _forward_blocks(
        self, rd: _Reader, files: List[_File], start: int, first: int, tally: _Tally
    ) -> Iterator[Union[_Block, _Gap]]:
        """Whole-record blocks from the first record starting at or after ``start``."""
        previous: Optional[_File] = None
        for index, f in enumerate(files):
            if f.end <= start:
                previous = f
                continue
            if previous is None and start < f.base:
                yield _Gap(start, f.base, True)
            elif previous is not None and previous.end < f.base:
                yield _Gap(max(previous.end, start), f.base, False)
            previous = f
            local = max(start - f.base, 0)
            yield from self._file_forward(rd, f, local, first, tally, index == len(files) - 1)

    def _file_forward(
        self, rd: _Reader, f: _File, pos: int, first: int, tally: _Tally, last: bool
    ) -> Iterator[_Block]:
        if pos > 0:
            # Resync: a record starts at pos only if the byte before it is a newline.
            probe = pos - 1
            while True:
                chunk = rd.read(f, probe, 4096)
                if not chunk:
                    return
                newline = chunk.find(b"\n")
                if newline >= 0:
                    pos = probe + newline + 1
                    break
                probe += len(chunk)
        size = first
        while pos < f.size:
            data = rd.read(f, pos, size)
            if not data:
                return
            hi = data.rfind(b"\n") + 1
            if hi == 0:
                if pos + len(data) >= f.size:
                    if not last:
                        tally.bad += 1  # a backup ending in a torn record: never completed
                    return
                size *= 2  # a record longer than the block: read it whole
                continue
            yield _Block(f.base + pos, data, 0, hi)
            pos += hi  # the cut piece after hi is read again, with what follows it
            size = min(size * 2, _MAX_BLOCK)

    def _backward_blocks(
        self, rd: _Reader, files: List[_File], end: int, first: int, tally: _Tally
    ) -> Iterator[Union[_Block, _Gap]]:
        """Whole-record blocks ending at or before ``end``, newest first."""
        newer_base: Optional[int] = None
        for index in range(len(files) - 1, -1, -1):
            f = files[index]
            if f.base >= end:
                newer_base = f.base
                continue
            if newer_base is not None and f.end < min(newer_base, end):
                yield _Gap(f.end, min(newer_base, end), False)
            newer_base = f.base
            hi = min(end, f.end) - f.base
            yield from self._file_backward(rd, f, hi, first, tally, index == len(files) - 1)
        oldest = files[0].base if files else 0
        if min(oldest, end) > 0:
            yield _Gap(0, min(oldest, end), True)

    def _file_backward(
        self, rd: _Reader, f: _File, hi: int, first: int, tally: _Tally, last: bool
    ) -> Iterator[_Block]:
        stop = hi  # every complete record before ``stop`` is still to be yielded
        bounded = False  # ``stop`` is a record boundary (the last one before hi)
        size = first
        while stop > 0:
            start = max(0, stop - size)
            data = rd.read(f, start, stop - start)
            end = len(data)
            if not bounded:
                end = data.rfind(b"\n") + 1
                if end == 0:
                    if start == 0:
                        return  # no newline at all: no complete record
                    size *= 2
                    continue
                bounded = True
                if end < len(data) and not last and hi == f.size:
                    tally.bad += 1  # a backup ending in a torn record
            if start == 0:
                yield _Block(f.base, data, 0, end)
                return
            lo = data.find(b"\n", 0, end) + 1  # data[:lo] ends a record begun earlier
            if lo == 0 or lo == end:
                stop = start + end
                size *= 2  # a record longer than the block: read it whole
                continue
            yield _Block(f.base + start, data, lo, end)
            stop = start + lo
            size = min(size * 2, _MAX_BLOCK)

    def _complete_end(self, rd: _Reader, files: List[_File]) -> int:
        """The offset just past the last complete record of the last file."""
        f = files[-1]
        with self._lock:
            known = self._ends.get(f.key)
        if known is not None:
            return known
        pos, size = f.size, 4096
        end = f.base
        while pos > 0:
            take = min(size, pos)
            chunk = rd.read(f, pos - take, take)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = f.base + pos - take + newline + 1
                break
            pos -= take
            size = min(size * 2, _MAX_BLOCK)
        with self._lock:
            self._ends[f.key] = end
        return end

    # ------------------------------------------------------------ retries

    def _run(self, op: Callable[[_Reader, List[_File]], T]) -> T:
        """Run ``op`` on the current files; list again and retry if one vanished.

        If files keep moving through every retry, the last listing is kept and
        each file that vanishes from it becomes a hole (reported as missing):
        the list only shrinks, so this ends.
        """
        files: List[_File] = []
        for attempt in itertools.count():
            if attempt <= _RETRIES:
                files = self._list_files()
            reader = _Reader(self)
            try:
                return op(reader, files)
            except _Vanished as exc:
                if attempt >= _RETRIES:
                    files = [f for f in files if f is not exc.file]
            finally:
                reader.close()
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ listing

    def _list_files(self) -> List[_File]:
        files = self._probe_files()
        if not _contiguous(files) and _shape(files) != self._odd:
            # Probably a rotation renaming files while we looked: look again.
            for _attempt in range(3):
                time.sleep(0.001)
                again = self._probe_files()
                settled = _shape(again) == _shape(files)
                files = again
                if settled or _contiguous(files):
                    break
            if not _contiguous(files):
                # How the files really are (a hole, a damaged header): say so
                # once, not with a retry on every call.
                self._odd = _shape(files)
        files = _untangle(files)
        keys = {f.key for f in files}
        with self._lock:
            for cache in (self._meta, self._ends):
                for key in [key for key in cache if key not in keys]:
                    del cache[key]
            if len(self._first_times) > 4 * len(files) + 16:
                alive = {(f.key[0], f.key[1], f.base) for f in files}
                for stale in [k for k in self._first_times if k not in alive]:
                    del self._first_times[stale]
        return files

    def _probe_files(self) -> List[_File]:
        found: List[Tuple[str, os.stat_result]] = []
        seen = set()
        misses = 0
        index = 1
        # Go one index past a missing one: a rotation shifting backups leaves
        # one hole for a moment.
        while misses < 2 and index <= self.max_backups:
            name = f"{self.live_path}.{index}"
            index += 1
            for path in (name + ".gz", name):  # the .gz once both exist
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    found.append((path, st))
                misses = 0
                break
            else:
                misses += 1
        found.reverse()
        try:
            found.append((self.live_path, os.stat(self.live_path)))
        except OSError:
            pass
        files: List[_File] = []
        for path, st in found:
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            with self._lock:
                meta = self._meta.get(key)
            if meta is None:
                read = self._read_meta(path)
                if read is None:
                    continue  # removed meanwhile
                key, meta = read
                with self._lock:
                    self._meta[key] = meta
            base = meta.base
            if base is None:
                base = files[-1].end if files else 0
            files.append(_File(path, base, meta.size, path.endswith(".gz"), key))
        return files

    def _read_meta(self, path: str) -> Optional[Tuple[FileKey, _Meta]]:
        """Header base and size of one file, read through one open file."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            if path.endswith(".gz"):
                size = 0
                if st.st_size >= 18:
                    size = int.from_bytes(os.pread(fd, 4, st.st_size - 4), "little")
                head = _gunzip(os.pread(fd, 64 * 1024, 0), 4096)
                self.bytes_read += 4 + min(st.st_size, 64 * 1024)
            else:
                size = st.st_size
                head = os.pread(fd, 4096, 0)
                self.bytes_read += len(head)
        except OSError:
            return None
        finally:
            os.close(fd)
        return key, _Meta(header_base(head), size)

    # ------------------------------------------------------------ gzip

    def _gz_contents(self, f: _File) -> bytes:
        """A ``.gz`` backup's contents, from the cache or decompressed once."""
        with self._lock:
            data = self._gz.get(f.key)
            if data is not None:
                self._gz.move_to_end(f.key)
                return data
        try:
            with open(f.path, "rb") as handle:
                st = os.fstat(handle.fileno())
                if (st.st_dev, st.st_ino) != f.key[:2]:
                    raise FileNotFoundError(f.path)
                raw = handle.read()
        except FileNotFoundError:
            raise _Vanished(f) from None
        self.bytes_read += len(raw)
        data = _gunzip(raw)
        self.decompressed += 1
        with self._lock:
            if len(data) != f.size:
                # The trailer holds the size modulo 4 GiB: keep the real one.
                self._meta[f.key] = _Meta(self._meta.get(f.key, _Meta(None, 0)).base, len(data))
            self._gz[f.key] = data
            total = sum(map(len, self._gz.values()))
            while len(self._gz) > 1 and (
                len(self._gz) > self.gz_cache_files or total > self.gz_cache_bytes
            ):
                _, dropped = self._gz.popitem(last=False)
                total -= len(dropped)
            if len(self._gz) > self.gz_cache_files:
                self._gz.clear()  # gz_cache_files = 0: keep nothing
        if len(data) != f.size:
            raise _Vanished(f)  # list again, with the real size
        return data

    def _gz_head(self, f: _File, size: int) -> bytes:
        """The first ``size`` bytes of a ``.gz`` backup, without decompressing all of it."""
        with self._lock:
            data = self._gz.get(f.key)
        if data is not None:
            return data[:size]
        try:
            with open(f.path, "rb") as handle:
                st = os.fstat(handle.fileno())
                if (st.st_dev, st.st_ino) != f.key[:2]:
                    return b""  # renamed meanwhile: the caller does without
                raw = handle.read(max(size, 64 * 1024))
        except OSError:
            return b""
        self.bytes_read += len(raw)
        return _gunzip(raw, size)


# ---------------------------------------------------------------- matching


class _Matcher:
    """Finds the records of a block whose text matches, with whole-block operations.

    A substring is looked for with ``bytes.find`` over the block -- over the
    block lowercased for an ASCII substring with ``ignore_case`` in an ASCII
    block, 10x faster than an IGNORECASE regex -- and a regex runs over the
    decoded block.  Either finds candidate lines (a hit may be in a line's
    timestamp), and only those are parsed and checked on the record's text.
    Where that shortcut could miss a match (JSON lines, text that is not
    UTF-8, anchors such as ``^``), the block's lines are checked one by one.
    """

    def __init__(self, pattern: str, regex: bool, ignore_case: bool) -> None:
        self.needle: Optional[bytes] = None
        self.folded: Optional[bytes] = None  # the lowercased ASCII needle of ignore_case
        self.regex: Optional[Pattern[str]] = None
        self.never = False  # a record's text never holds a newline
        self.block_safe = True
        if regex or ignore_case:
            source = pattern if regex else re.escape(pattern)
            flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
            try:
                self.regex = re.compile(source, flags)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
            self.block_safe = _UNSAFE_REGEX.search(source) is None
            self.never = not regex and "\n" in pattern
            if not regex and pattern.isascii():
                # For ASCII text, IGNORECASE is exactly ASCII case folding.
                self.folded = pattern.lower().encode("ascii")
        else:
            self.needle = pattern.encode("utf-8", "surrogateescape")
            self.never = b"\n" in self.needle
            # In JSON lines the text is escaped: a plain find only works when
            # the pattern is written the same way there.
            self.json_safe = json.dumps(pattern, ensure_ascii=False)[1:-1] == pattern

    def matches(self, record: Record) -> bool:
        if self.needle is not None:
            return self.needle in record.data
        assert self.regex is not None
        return self.regex.search(record.text) is not None

    def scan(self, block: _Block) -> List[Entry]:
        """The matching records of ``block``, oldest first."""
        data = block.data
        # A file changes format only at a restart: looking at the first and the
        # last record is enough (and a search for "\n{" would cost more than the scan).
        last = data.rfind(b"\n", block.lo, block.hi - 1) + 1
        json_lines = data.startswith(b"{", block.lo) or data.startswith(b"{", max(last, block.lo))
        if self.needle is not None:
            if json_lines and not self.json_safe:
                return self._each_line(block)
            return self._by_find(block, data, self.needle)
        if self.folded is not None and not json_lines and data.isascii():
            return self._by_find(block, data.lower(), self.folded)
        if json_lines or not self.block_safe:
            return self._each_line(block)
        try:
            text = data[block.lo : block.hi].decode("utf-8")
        except UnicodeDecodeError:
            return self._each_line(block)
        return self._by_regex(block, text)

    def _by_find(self, block: _Block, haystack: bytes, needle: bytes) -> List[Entry]:
        """Candidates by ``haystack.find(needle)``; ``haystack`` is the block's data, or
        a copy of it with the same length (lowercased)."""
        data = block.data
        hits: List[Entry] = []
        find, rfind = haystack.find, haystack.rfind
        pos, hi = block.lo, block.hi
        while True:
            at = find(needle, pos, hi)
            if at < 0:
                break
            end = find(b"\n", at, hi)
            if end < 0:
                break
            self._check(block.at, data, rfind(b"\n", 0, at) + 1, end, hits)
            pos = end + 1
        return hits

    def _by_regex(self, block: _Block, text: str) -> List[Entry]:
        assert self.regex is not None
        data = block.data
        hits: List[Entry] = []
        same = len(text) == block.hi - block.lo  # ASCII: character and byte positions agree
        pos = mark = 0
        byte_mark = block.lo
        search = self.regex.search
        while True:
            match = search(text, pos)
            if match is None:
                break
            at = match.start()
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            if end < 0:
                break
            if same:
                self._check(block.at, data, block.lo + start, block.lo + end, hits)
            else:
                byte_start = byte_mark + len(text[mark:start].encode("utf-8"))
                byte_end = byte_start + len(text[start:end].encode("utf-8"))
                mark, byte_mark = start, byte_start
                self._check(block.at, data, byte_start, byte_end, hits)
            pos = end + 1
        return hits

    def _each_line(self, block: _Block) -> List[Entry]:
        hits: List[Entry] = []
        offset = block.offset
        for line in block.lines():
            end = offset + len(line) + 1
            try:
                record = parse(line)
            except RecordError:
                offset = end
                continue
            if not is_header(record.stream, record.data) and self.matches(record):
                hits.append(Entry(offset, end, record))
            offset = end
        return hits

    def _check(self, offset: int, data: bytes, start: int, end: int, hits: List[Entry]) -> None:
        try:
            record = parse(data[start:end])
        except RecordError:
            return
        if not is_header(record.stream, record.data) and self.matches(record):
            hits.append(Entry(offset + start, offset + end + 1, record))


# ---------------------------------------------------------------- helpers


def _close_all(handles: List[Tuple[_File, BinaryIO]]) -> None:
    for _, handle in handles:
        inner = handle.fileobj if isinstance(handle, gzip.GzipFile) else None
        handle.close()  # a GzipFile does not close the file it was given
        if inner is not None:
            inner.close()


def _export_file(handle: BinaryIO, lo: int, hi: int, chunk_size: int) -> Iterator[bytes]:
    """Bytes [lo, hi) of one opened file, without its header line."""
    gz = isinstance(handle, gzip.GzipFile)
    if gz:
        handle.seek(lo)  # reads forward: a stream from the start
    pos, first = lo, lo == 0
    while pos < hi:
        want = min(max(chunk_size, 4096) if first else chunk_size, hi - pos)
        try:
            data = handle.read(want) if gz else os.pread(handle.fileno(), want, pos)
        except (OSError, EOFError, zlib.error):
            return  # a damaged .gz: what came out of it
        if not data:
            return
        pos += len(data)
        if first:
            first = False
            newline = data.find(b"\n")
            if newline >= 0 and header_base(data[: newline + 1]) is not None:
                data = data[newline + 1 :]
        if data:
            yield data


def _block_for(limit: int) -> int:
    """A first block likely to hold ``limit`` records, so a page is one read."""
    return max(4096, min(_FIRST_BLOCK if limit <= 400 else limit * 160, _MAX_BLOCK))


def _lines_forward(block: _Block) -> Iterator[Tuple[int, int, bytes]]:
    offset = block.offset
    for line in block.lines():
        end = offset + len(line) + 1
        yield offset, end, line
        offset = end


def _lines_backward(block: _Block) -> Iterator[Tuple[int, int, bytes]]:
    end = block.end
    for line in reversed(block.lines()):
        offset = end - len(line) - 1
        yield offset, end, line
        end = offset


def _collect(
    lines: Iterator[Tuple[int, int, bytes]], entries: List[Entry], limit: int, tally: _Tally
) -> bool:
    """Parse lines into entries until there are ``limit``; True once there are."""
    for offset, end, line in lines:
        try:
            record = parse(line)
        except RecordError:
            tally.bad += 1
            continue
        entries.append(Entry(offset, end, record))
        tally.kept = tally.bad
        if len(entries) >= limit:
            return True
    return False


def _parse_time(text: str) -> Optional[float]:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _line_time(head: bytes) -> Optional[float]:
    """The time of a record from the first bytes of its line (either format)."""
    if head.startswith(b"{"):
        match = _JSON_TIME.match(head)
        stamp = match.group(1) if match else b""
    else:
        stamp = head[: head.find(b" ")] if b" " in head else b""
    if not stamp:
        return None
    return _parse_time(stamp.decode("ascii", "replace"))


def _gunzip(raw: bytes, limit: int = 0) -> bytes:
    """Decompress gzip data: up to ``limit`` bytes (0: all), or what a damaged file gives."""
    inflate = zlib.decompressobj(wbits=31)
    out: List[bytes] = []
    got = 0
    view = memoryview(raw)
    try:
        while view:
            chunk = inflate.decompress(view, limit - got if limit else 0)
            out.append(chunk)
            got += len(chunk)
            if limit and got >= limit:
                break
            if inflate.unconsumed_tail:
                view = memoryview(inflate.unconsumed_tail)
            elif inflate.eof and inflate.unused_data:
                # Another gzip member follows (concatenated files).
                view = memoryview(inflate.unused_data)
                inflate = zlib.decompressobj(wbits=31)
            else:
                break
    except zlib.error:
        pass  # a damaged or truncated file: keep what came out
    return out[0] if len(out) == 1 else b"".join(out)


def _shape(files: List[_File]) -> List[Tuple[int, int, int]]:
    """What identifies a listing, whatever the live file's growth."""
    return [(f.key[0], f.key[1], f.base) for f in files]


def _contiguous(files: List[_File]) -> bool:
    return all(a.end == b.base for a, b in zip(files, files[1:]))


def _untangle(files: List[_File]) -> List[_File]:
    """Drop older files that overlap newer ones: offsets must only grow.

    A ``.gz`` file's size comes from its trailer, which a damaged file gets
    wrong: such a file is kept, cut at the next file's base, and reading it
    finds its real size.
    """
    kept: List[_File] = []
    for f in reversed(files):
        if kept and f.end > kept[-1].base:
            if not f.compressed or f.base >= kept[-1].base:
                continue
            f = dataclasses.replace(f, size=kept[-1].base - f.base)
        kept.append(f)
    kept.reverse()
    return kept
