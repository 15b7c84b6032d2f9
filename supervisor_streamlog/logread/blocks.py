"""One process's log read by offset, as blocks of whole records: what the store pages over.

Role: the layer under :class:`~.logstore.LogStore` (and its time seek and
search).  Which files to read comes from :class:`~..ondisk.files.ProcessFiles`
(the one listing rule); this module reads them.  A *block* is a run of whole
records of one file; blocks go forward from an offset or backward from one,
and a :class:`DeletedRange` stands for a range no file holds any more.

Invariants: a listed file is opened by :func:`opened` and checked by inode; if
the capture rotates, compresses or deletes a file under a reader, the listing
is taken again and the call retried (a few times; then the files that keep
vanishing count as deleted, never an exception).  Decompressed ``.gz``
backups are kept in a small cache bounded in bytes, since paging through one
reads it many times.  Threads: blocking file I/O; the cache has a lock.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import threading
from typing import (
    Callable,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sized,
    Tuple,
    TypeVar,
    Union,
)

from ..ondisk.files import FileKey, LogFile, ProcessFiles, open_listed, record_end
from ..ondisk.gzipped import gunzip, read_whole

T = TypeVar("T")

#: New listings after a file vanished, before doing without it.
RETRIES = 4
FIRST_BLOCK = 64 * 1024  # enough for a page of a few hundred records
MAX_BLOCK = 1024 * 1024


class Block(NamedTuple):
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


class DeletedRange(NamedTuple):
    """A range of the log that no file holds (deleted)."""

    start: int
    end: int
    oldest: bool  # the deleted beginning of the log: nothing lies beyond


class Vanished(Exception):
    """A listed file is gone or is another file now: list again and retry."""

    def __init__(self, file: LogFile) -> None:
        super().__init__(file.path)
        self.file = file


@dataclasses.dataclass
class BadLines:
    """Lines that are not records, met while reading."""

    bad: int = 0  # unparseable lines and torn record ends
    #: ``bad`` when the last entry was taken: those past it are read again by
    #: the next page, and counted there.
    kept: int = 0

    def page_count(self, entries: Sized) -> int:
        """The bad lines a page reports: those before its last entry, or all if it has none."""
        return self.kept if entries else self.bad


class Reader:
    """The files one call reads: opened lazily, verified by inode, closed at the end.

    A file that is gone, or is another file now, raises :class:`Vanished`.
    """

    def __init__(self, store: BlockStore) -> None:
        self.store = store
        self.fds: Dict[str, int] = {}
        self.memory: Dict[str, bytes] = {}

    def read(self, f: LogFile, pos: int, size: int) -> bytes:
        """``size`` bytes at ``pos`` of ``f``'s contents (fewer only at its end)."""
        size = max(0, min(size, f.size - pos))
        if f.compressed:
            data = self.memory.get(f.path)
            if data is None:
                data = self.memory[f.path] = self.store._gz_contents(f)
            return data[pos : pos + size]
        fd = self.fds.get(f.path)
        if fd is None:
            fd = self.fds[f.path] = opened(f)
        data = os.pread(fd, size, pos)
        if len(data) < size:
            more = [data]
            got = len(data)
            while got < size:
                chunk = os.pread(fd, size - got, pos + got)
                if not chunk:
                    raise Vanished(f)  # shrank: not the file we listed
                more.append(chunk)
                got += len(chunk)
            data = b"".join(more)
        self.store._bytes_read += len(data)
        return data

    def close(self) -> None:
        """Close every file this call opened."""
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


class BlockStore:
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
        self.listing = ProcessFiles(live_path, max_backups)
        self._bytes_read = 0
        #: .gz files decompressed (cache misses).
        self.decompressed = 0
        self._lock = threading.Lock()
        self._ends: Dict[FileKey, int] = {}
        self._gz: collections.OrderedDict[FileKey, bytes] = collections.OrderedDict()

    @property
    def bytes_read(self) -> int:
        """Bytes read from disk (plain reads, compressed files, headers): for metrics and tests."""
        return self._bytes_read + self.listing.bytes_read

    # ------------------------------------------------------------ retries

    def _run(self, op: Callable[[Reader, List[LogFile]], T]) -> T:
        """Run ``op`` on the current files; list again and retry if one vanished.

        If files keep moving through every retry, the last listing is kept and
        each file that vanishes from it becomes a hole (reported as missing):
        the list only shrinks, so this ends.
        """
        files: List[LogFile] = []
        for attempt in itertools.count():
            if attempt <= RETRIES:
                files = self._list_files()
            reader = Reader(self)
            try:
                return op(reader, files)
            except Vanished as exc:
                if attempt >= RETRIES:
                    files = [f for f in files if f is not exc.file]
            finally:
                reader.close()
        raise AssertionError("unreachable")

    def _list_files(self) -> List[LogFile]:
        """The files now (the listing's), forgetting what is cached of files gone."""
        files = self.listing.files()
        keys = {f.key for f in files}
        with self._lock:
            for key in [key for key in self._ends if key not in keys]:
                del self._ends[key]
        return files

    # ------------------------------------------------------------ blocks

    def _forward_blocks(
        self, rd: Reader, files: List[LogFile], start: int, first: int, tally: BadLines
    ) -> Iterator[Union[Block, DeletedRange]]:
        """Whole-record blocks from the first record starting at or after ``start``."""
        previous: Optional[LogFile] = None
        for index, f in enumerate(files):
            if f.end <= start:
                previous = f
                continue
            if previous is None and start < f.base:
                yield DeletedRange(start, f.base, True)
            elif previous is not None and previous.end < f.base:
                yield DeletedRange(max(previous.end, start), f.base, False)
            previous = f
            local = max(start - f.base, 0)
            yield from self._file_forward(rd, f, local, first, tally, index == len(files) - 1)

    def _file_forward(
        self, rd: Reader, f: LogFile, pos: int, first: int, tally: BadLines, last: bool
    ) -> Iterator[Block]:
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
            yield Block(f.base + pos, data, 0, hi)
            pos += hi  # the cut piece after hi is read again, with what follows it
            size = min(size * 2, MAX_BLOCK)

    def _backward_blocks(
        self, rd: Reader, files: List[LogFile], end: int, first: int, tally: BadLines
    ) -> Iterator[Union[Block, DeletedRange]]:
        """Whole-record blocks ending at or before ``end``, newest first."""
        newer_base: Optional[int] = None
        for index in range(len(files) - 1, -1, -1):
            f = files[index]
            if f.base >= end:
                newer_base = f.base
                continue
            if newer_base is not None and f.end < min(newer_base, end):
                yield DeletedRange(f.end, min(newer_base, end), False)
            newer_base = f.base
            hi = min(end, f.end) - f.base
            yield from self._file_backward(rd, f, hi, first, tally, index == len(files) - 1)
        oldest = files[0].base if files else 0
        if min(oldest, end) > 0:
            yield DeletedRange(0, min(oldest, end), True)

    def _file_backward(
        self, rd: Reader, f: LogFile, hi: int, first: int, tally: BadLines, last: bool
    ) -> Iterator[Block]:
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
                yield Block(f.base, data, 0, end)
                return
            lo = data.find(b"\n", 0, end) + 1  # data[:lo] ends a record begun earlier
            if lo == 0 or lo == end:
                stop = start + end
                size *= 2  # a record longer than the block: read it whole
                continue
            yield Block(f.base + start, data, lo, end)
            stop = start + lo
            size = min(size * 2, MAX_BLOCK)

    def _complete_end(self, rd: Reader, files: List[LogFile]) -> int:
        """The offset just past the last complete record of the last file."""
        f = files[-1]
        with self._lock:
            known = self._ends.get(f.key)
        if known is not None:
            return known
        found = record_end(lambda pos, count: rd.read(f, pos, count), f.size)
        end = f.base + (found or 0)
        with self._lock:
            self._ends[f.key] = end
        return end

    # ------------------------------------------------------------ gzip

    def _gz_contents(self, f: LogFile) -> bytes:
        """A ``.gz`` backup's contents, from the cache or decompressed once."""
        with self._lock:
            data = self._gz.get(f.key)
            if data is not None:
                self._gz.move_to_end(f.key)
                return data
        fd = opened(f)
        try:
            raw = read_whole(fd)
        finally:
            os.close(fd)
        self._bytes_read += len(raw)
        data = gunzip(raw)
        self.decompressed += 1
        if len(data) != f.size:
            # The trailer holds the size modulo 4 GiB: keep the real one.
            self.listing.resize(f.key, len(data))
        with self._lock:
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
            raise Vanished(f)  # list again, with the real size
        return data

    def _gz_head(self, f: LogFile, size: int) -> bytes:
        """The first ``size`` bytes of a ``.gz`` backup, without decompressing all of it."""
        with self._lock:
            data = self._gz.get(f.key)
        if data is not None:
            return data[:size]
        try:
            fd = open_listed(f)
            if fd is None:
                return b""  # renamed meanwhile: the caller does without
            try:
                raw = os.pread(fd, max(size, 64 * 1024), 0)
            finally:
                os.close(fd)
        except OSError:
            return b""
        self._bytes_read += len(raw)
        return gunzip(raw, size)


def opened(f: LogFile) -> int:
    """A descriptor on the file ``f`` lists (:func:`~..ondisk.files.open_listed`);
    :class:`Vanished` when it is gone or is another file now."""
    fd = open_listed(f)
    if fd is None:
        raise Vanished(f)
    return fd


def lines_forward(block: Block) -> Iterator[Tuple[int, int, bytes]]:
    """``(offset, end, line)`` of each record of ``block``, oldest first."""
    offset = block.offset
    for line in block.lines():
        end = offset + len(line) + 1
        yield offset, end, line
        offset = end


def lines_backward(block: Block) -> Iterator[Tuple[int, int, bytes]]:
    """``(offset, end, line)`` of each record of ``block``, newest first."""
    end = block.end
    for line in reversed(block.lines()):
        offset = end - len(line) - 1
        yield offset, end, line
        end = offset
