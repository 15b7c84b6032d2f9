"""One process's history, read by offset across its live file and every backup.

Role: what ``GET /api/log/NAME`` pages, what a time jump, a search, an export,
``tail``'s backlog and the forwarder read::

    store = LogStore("/var/log/streamlog/web.log")
    page = store.read_backward(None, 200)           # the newest 200 records
    older = store.read_backward(page.start, 200)    # the 200 before them
    newer = store.read_forward(page.end, 200)       # what came after (live)
    store.read_forward(store.seek_time(time.time() - 3600), 200)  # an hour ago

Invariants: positions are offsets in the whole log (a file's header base plus
the position in its contents, ondisk/files.py), valid across rotation,
compression, retention and restarts; a cursor is a record boundary; the
partial last record of the live file is never returned.  Reading by blocks is
:mod:`.blocks`, time jumps :mod:`.timeseek`, search :mod:`.search`.
Threads: blocking file I/O (call it through an executor); a store may be
shared by threads.
"""

from __future__ import annotations

import functools
import os
import time
from itertools import islice
from typing import Any, Callable, Generator, Iterator, List, Optional, Tuple, Union, cast

from ..ondisk.files import Entry, LogFile, header_base, open_listed
from ..ondisk.formats import RecordError, parse
from ..ondisk.gzipped import GzipStream
from .blocks import (
    FIRST_BLOCK,
    MAX_BLOCK,
    RETRIES,
    BadLines,
    BlockStore,
    DeletedRange,
    Reader,
    Vanished,
    lines_backward,
    lines_forward,
)
from .search import Matcher, SearchResult, search
from .store import Line, Lines, Page
from .timeseek import TimeSeek

__all__ = ["LogStore", "Page", "SearchResult"]


class LogStore(BlockStore):
    """Pages, time jumps, search and export over a :class:`~.blocks.BlockStore`
    (whose constructor it takes as it is)."""

    @functools.cached_property
    def _times(self) -> TimeSeek:
        """Time jumps in this store's files, with each file's first time cached
        (made on first use; two threads racing to it may each make one: a cache,
        either is right)."""
        return TimeSeek(self)

    # ------------------------------------------------------------ the files

    def files(self) -> List[LogFile]:
        """The process's files now, oldest first, with their offsets.

        What :func:`..ondisk.files.process_files` returns, but headers and
        sizes are cached by (device, inode, mtime, size), so calling this per
        request is cheap.
        """
        return self._list_files()

    def bounds(self) -> Tuple[int, int]:
        """Oldest available offset and the end of the last complete record.

        Everything in between can be read; a client that knows both can show
        how much history there is and whether its cursor is still valid.
        """

        def op(rd: Reader, files: List[LogFile]) -> Tuple[int, int]:
            if not files:
                return 0, 0
            return files[0].base, self._complete_end(rd, files)

        return self._run(op)

    def _list_files(self) -> List[LogFile]:
        files = super()._list_files()
        self._times.prune(files)
        return files

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
            rd = Reader(self)
            try:
                complete = self._complete_end(rd, files)
            except Vanished:
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

    def _open_all(self) -> List[Tuple[LogFile, Opened]]:
        """Every file of the log, opened, each checked to be the file listed."""
        for attempt in range(RETRIES + 1):
            files = self._list_files()
            opened: List[Tuple[LogFile, Opened]] = []
            for f in files:
                try:
                    fd = open_listed(f)
                except OSError:
                    continue
                if fd is None:
                    continue
                opened.append((f, GzipStream(fd) if f.compressed else fd))
            if len(opened) == len(files) or attempt == RETRIES:
                return opened  # at the last attempt, what could be opened
            _close_all(opened)
        return []

    # ------------------------------------------------------------ paging

    def read_forward(self, start: Optional[int], limit: int, until: Optional[int] = None) -> Page:
        """Up to ``limit`` records from ``start`` on, oldest first (the "newer" page).

        ``start`` None is the oldest record; an offset inside a record moves on
        to the next record; one older than the oldest file starts at the oldest
        record and ``missing`` says which bytes are gone; one at or past the end
        gives an empty page.  Stops before a hole in the middle of the log once
        it has records, so the next page reports the hole.  With ``until``,
        records that end after it are left out (``has_after`` then says so).
        """
        page = self._run(lambda rd, files: self._read_forward(rd, files, start, limit))
        if until is not None and page.entries and page.entries[-1].end > until:
            page.entries = [entry for entry in page.entries if entry.end <= until]
            page.end = page.entries[-1].end if page.entries else page.start
            page.has_after = True
        return page

    def span(self, start: int, end: int) -> int:
        """Bytes between two offsets: offsets are byte positions in the whole log."""
        return end - start

    def resume_at(self, cursor: int, live: int) -> int:
        """Any cursor resumes where it is: one past the live position is waited for."""
        return cursor

    def read_backward(self, end: Optional[int], limit: int) -> Page:
        """Up to ``limit`` records ending at or before ``end``, returned oldest first.

        ``end`` None is the end of the log: the page a tail view opens with.
        Reads blocks from ``end`` backwards, so it costs the same at the end of
        a 1 GB file as at the start of a small one.
        """
        return self._run(lambda rd, files: self._read_backward(rd, files, end, limit))

    def read_forward_lines(self, start: int, limit: int) -> Lines:
        """:meth:`read_forward`'s lines, not parsed: up to ``limit`` of them, lines
        that are not records included (the caller parses what it needs: the
        forwarder renders text records straight from their bytes)."""
        page = self._run(lambda rd, files: self._read_forward(rd, files, start, limit, _take))
        return Lines(cast(List[Line], page.entries), page.end, page.missing)

    def _read_forward(
        self,
        rd: Reader,
        files: List[LogFile],
        start: Optional[int],
        limit: int,
        collect: Optional[Collector] = None,
    ) -> Page:
        collect = collect or _collect
        if not files:
            cursor = start or 0
            return Page([], cursor, cursor, False, False)
        oldest = files[0].base
        start = oldest if start is None else max(start, 0)
        complete = self._complete_end(rd, files)
        tally = BadLines()
        entries: List[Any] = []  # Entry (or Line, collected by _take)
        missing: Optional[Tuple[int, int]] = None
        if limit > 0 and start < complete:
            blocks = self._forward_blocks(rd, files, start, _block_for(limit), tally)
            for item in blocks:
                if isinstance(item, DeletedRange):
                    if entries:
                        break  # the next page starts at the hole and reports it
                    missing = missing or (item.start, item.end)
                    continue
                if collect(lines_forward(item), entries, limit, tally):
                    break
        first = entries[0][0] if entries else start  # (offset, end, ...) either way
        last = entries[-1][1] if entries else start
        bad = tally.page_count(entries)
        return Page(entries, first, last, first > oldest, last < complete, missing, bad)

    def _read_backward(
        self, rd: Reader, files: List[LogFile], end: Optional[int], limit: int
    ) -> Page:
        if not files:
            cursor = end or 0
            return Page([], cursor, cursor, False, False)
        oldest = files[0].base
        complete = self._complete_end(rd, files)
        end = complete if end is None else max(min(end, complete), 0)
        tally = BadLines()
        entries: List[Entry] = []
        missing: Optional[Tuple[int, int]] = None
        if limit > 0:
            for item in self._backward_blocks(rd, files, end, _block_for(limit), tally):
                if isinstance(item, DeletedRange):
                    if entries and not item.oldest:
                        break
                    missing = missing or (item.start, item.end)
                    continue
                if _collect(lines_backward(item), entries, limit, tally):
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
        return self._run(lambda rd, files: self._times.seek(rd, files, when))

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
        matcher = Matcher(pattern, regex, ignore_case)
        deadline = time.monotonic() + budget
        return self._run(
            lambda rd, files: search(self, rd, files, matcher, start, backward, limit, deadline)
        )


# ---------------------------------------------------------------- helpers


#: An opened file of an export: a descriptor, or a ``.gz`` read forward.
Opened = Union[int, GzipStream]


def _close_all(handles: List[Tuple[LogFile, Opened]]) -> None:
    for _, handle in handles:
        if isinstance(handle, GzipStream):
            handle.close()
        else:
            os.close(handle)


def _export_file(handle: Opened, lo: int, hi: int, chunk_size: int) -> Iterator[bytes]:
    """Bytes [lo, hi) of one opened file, without its header line."""
    if isinstance(handle, GzipStream):
        skip = lo  # a stream from the start: read up to lo, and drop it
        while skip > 0:
            try:
                passed = handle.read(min(skip, 1024 * 1024))
            except OSError:
                return
            if not passed:
                return
            skip -= len(passed)
    pos, first = lo, lo == 0
    while pos < hi:
        want = min(max(chunk_size, 4096) if first else chunk_size, hi - pos)
        try:
            # (a damaged .gz ends where its damage begins: what came out of it)
            data = (
                handle.read(want) if isinstance(handle, GzipStream) else os.pread(handle, want, pos)
            )
        except OSError:
            return  # unreadable from here: what came out of it
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
    return max(4096, min(FIRST_BLOCK if limit <= 400 else limit * 160, MAX_BLOCK))


#: What turns lines into a page's entries: (lines, entries so far, limit, tally) ->
#: whether the page is full.
Collector = Callable[[Iterator[Line], List[Any], int, BadLines], bool]


def _take(lines: Iterator[Line], taken: List[Line], limit: int, tally: BadLines) -> bool:
    """Lines as they are (parsed by the caller) until there are ``limit``; True once there are."""
    taken.extend(islice(lines, limit - len(taken)))
    return len(taken) >= limit


def _collect(lines: Iterator[Line], entries: List[Entry], limit: int, tally: BadLines) -> bool:
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
