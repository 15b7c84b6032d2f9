"""Following one process's log live: the :class:`FileFollower`, records in order by offset.

Used by the sidecar, which supervisord runs as a program of its own::

    [program:streamlog-web]
    command = supervisor-streamlog serve -c %(here)s/supervisord.conf

and by ``supervisor-streamlog tail -f`` (one follower per process named).

The files are the single source of truth (docs/format.md): every file begins
with ``status STREAMLOG file offset=N``, so a position in a process's log is
one integer that stays valid across rotation, compression and retention.  A
:class:`FileFollower` reads one process's log forward from such an offset and
hands out complete records as :class:`~..ondisk.files.Entry` batches, each
with its ``offset`` and ``end`` (the next record's offset: a client's cursor).

How a follower crosses a rotation, without loss or duplicate: it keeps the file
it reads **open**.  When the name ``<name>.log`` points to another file (whose
first line is complete, i.e. the writer has moved on), it drains the old file to
its end, then looks for the file that begins exactly where the old one ended,
by the headers: the new live file after one rotation, or backups ``.k`` ...
``.1`` (plain or ``.gz``) when several rotations happened between two polls --
walking the names by the one rule of :mod:`..ondisk.files`.  Backups are
immutable, so once opened they are read to their end whatever renames or
compressions happen meanwhile.  What retention removed before it could be read
is reported by ``on_gap(start, end)``; a live file that was truncated, or
replaced by one that does not continue the log (no header, or a header that
goes back), by ``on_reset(old, new)`` -- the follower then starts again at that
file's beginning.

Threads: none of its own; blocking local file reads only, never a wait on a
client.  One follower per process (the sidecar's registry makes it, the hub
fans its records out, a client wanting older records reads them as history
up to :attr:`FileFollower.position`): each record is read and parsed once
whatever the number of clients.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any, Callable, List, Optional, Set, Tuple

from ..ondisk.files import Entry, gzip_size, header_base, process_files, record_end, walk
from ..ondisk.formats import RecordError, parse
from ..ondisk.gzipped import GzipStream, inflate
from .restarts import status_lines

log = logging.getLogger(__name__)

EntriesCallback = Callable[[List[Entry]], None]
RangeCallback = Callable[[int, int], None]
#: ``on_status(lines)``: the status records among those just read, unparsed.
StatusCallback = Callable[[List[bytes]], None]
#: ``on_advance(start, end, lines)``: complete records read but not parsed.
AdvanceCallback = Callable[[int, int, int], None]

#: How much a header line may take; anything longer is not a header.
_FIRST_LINE_LIMIT = 4096
#: Size of one read() inside a poll.
_READ_SIZE = 1024 * 1024
#: Compressed bytes read at a time from a ``.gz`` backup, and the most
#: decompressed at a time: zlib drops a call's output when it meets damage,
#: so small pieces keep a damaged backup readable up to about where the damage
#: is.  A header read takes the first piece.
_GZ_CHUNK = 64 * 1024
_GZ_PIECE = 64 * 1024


def _first_line(head: bytes) -> Optional[bytes]:
    """The first line of a file from its first bytes; None if not complete yet."""
    newline = head.find(b"\n")
    if newline >= 0:
        return head[: newline + 1]
    if len(head) >= _FIRST_LINE_LIMIT:
        return head  # a very long first line: complete enough to say it is no header
    return None


# ---------------------------------------------------------------- one file


class _Damaged(OSError):
    """A ``.gz`` backup whose contents end before a clean end (damaged or truncated)."""


class _Source:
    """One open file of a process's log: plain (read with pread) or a ``.gz`` backup
    (read forward through a :class:`~..ondisk.gzipped.GzipStream`)."""

    def __init__(
        self,
        name: str,
        fd: int,
        index: int,
        size: int,
        first_line: Optional[bytes],
        packed: Optional[GzipStream] = None,
    ) -> None:
        self.name = name
        self.fd = fd
        #: 0 for the live name, k for backup ``.k`` (where it was found).
        self.index = index
        #: Whether the writer may still append to it (cleared once it was rotated away).
        self.live = index == 0
        st = os.fstat(fd)
        self.ino, self.dev = st.st_ino, st.st_dev
        self.size = size
        self.first_line = first_line
        self.packed = packed  # owns ``fd`` when compressed
        #: Where ``packed`` is in the contents.
        self._read_to = 0
        self.base: Optional[int] = None if first_line is None else header_base(first_line)

    @property
    def end(self) -> int:
        return (self.base or 0) + self.size

    def read(self, pos: int, count: int) -> bytes:
        if self.packed is None:
            return os.pread(self.fd, count, pos)
        return self._read_packed(self.packed, pos, count)

    def _read_packed(self, stream: GzipStream, pos: int, count: int) -> bytes:
        """Up to ``count`` bytes of the contents from ``pos``: forward through the
        stream, skipping what is before ``pos`` (from the start again for a
        position behind it).  Raises :class:`_Damaged` when the contents end
        early before ``count`` bytes: a read that meets the damage gives nothing,
        and the follower skips the rest of the file."""
        if pos < self._read_to:
            stream.rewind()
            self._read_to = 0
        while self._read_to < pos:  # skip forward
            skipped = stream.read(min(pos - self._read_to, _READ_SIZE))
            if not skipped:
                break
            self._read_to += len(skipped)
        parts: List[bytes] = []
        got = 0
        while got < count and self._read_to == pos + got:
            data = stream.read(count - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
            self._read_to += len(data)
        if got < count and stream.complete is False:
            raise _Damaged(f"damaged or truncated: its contents end at byte {self._read_to}")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        if self.packed is not None:
            self.packed.close()
            return
        try:
            os.close(self.fd)
        except OSError:
            pass


def _open_source(name: str, index: int) -> Optional[_Source]:
    """Open one file of the log; None if it is not there (or not a readable file,
    or a ``.gz`` that is damaged before its first line)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        if not name.endswith(".gz"):
            first = _first_line(os.pread(fd, _FIRST_LINE_LIMIT, 0))
            return _Source(name, fd, index, st.st_size, first)
        size = gzip_size(fd, st.st_size)
        head = os.pread(fd, _GZ_CHUNK, 0)
    except OSError:
        os.close(fd)
        return None
    first = _packed_first_line(head, size)
    if first is None:
        os.close(fd)
        return None
    return _Source(name, fd, index, size, first, GzipStream(fd, _GZ_CHUNK, _GZ_PIECE))


def _packed_first_line(raw: bytes, size: int) -> Optional[bytes]:
    """The first line of a ``.gz`` backup's contents from its first compressed
    bytes ``raw`` (b"" when there is none); None when it is damaged before
    that line ends.  Pieces of 8 KiB, and never all of the ``size`` the trailer
    gives (zlib checks the trailer in the call that gives the last byte): damage
    after the line is met, reported and skipped by the reads that come to it."""
    contents = inflate((raw,), _FIRST_LINE_LIMIT, max(1, min(8192, size - 1)))
    head = b""
    while b"\n" not in head and len(head) < _FIRST_LINE_LIMIT:
        try:
            head += next(contents)
        except StopIteration as end:
            if not end.value and b"\n" not in head:
                return None
            break
    return _first_line(head) or b""


class FileFollower:
    """Follows one process's log from an offset, across rotation, by records.

    ``start`` is the offset of the first record wanted (a cursor), or None for
    the current end: only records completed from now on.  Each :meth:`poll`
    reads what is new (at most ``chunk_size`` bytes), calls ``on_entries`` once
    with the complete records (file headers included; see
    :func:`~..ondisk.files.is_header`), and sets :attr:`pending` when it stopped
    because of the budget.  A partial trailing record waits for its newline.
    ``on_gap(start, end)`` reports bytes that cannot be delivered (removed by
    retention before they were read, a cursor that was not at a record
    boundary, an unfinished record in a rotated file); ``on_reset(old, new)``
    a live file that no longer continues the log.  Lines that do not parse are
    skipped and counted in :attr:`unparsed`.  Callbacks are called in log
    order and their exceptions are logged, not raised.

    ``wanted()``, when given, is asked at the start of each poll whether
    anyone needs the records: when it is false they are not parsed at all --
    the poll counts their newlines and calls ``on_advance(start, end, lines)``
    instead of ``on_entries``, so :attr:`position` and the counters stay
    right at a fraction of the cost (a process nobody watches can flood).
    ``on_status(lines)``, when given, gets the status records among what was
    read, found by a byte search whether the records are parsed or not
    (:func:`~.restarts.status_lines`): a process's restarts are counted
    from them.
    """

    def __init__(
        self,
        path: str,
        start: Optional[int],
        on_entries: EntriesCallback,
        on_gap: Optional[RangeCallback] = None,
        on_reset: Optional[RangeCallback] = None,
        chunk_size: int = 4 * 1024 * 1024,
        max_backups: int = 10_000,
        wanted: Optional[Callable[[], bool]] = None,
        on_advance: Optional[AdvanceCallback] = None,
        on_status: Optional[StatusCallback] = None,
    ) -> None:
        self.path = path
        self.on_status = on_status
        self.on_entries = on_entries
        self.wanted = wanted
        self.on_advance = on_advance
        self.on_gap = on_gap
        self.on_reset = on_reset
        self.chunk_size = max(1, chunk_size)
        self.max_backups = max_backups
        #: True when the last poll stopped at ``chunk_size`` with more to read.
        self.pending = False
        self.records = 0
        self.unparsed = 0
        self.gaps = 0
        self.resets = 0
        self.bytes_read = 0
        self._src: Optional[_Source] = None
        #: Position in ``_src`` just past the last complete record.
        self._pos = 0
        #: Bytes read after ``_pos`` that do not end with a newline yet.
        self._partial = b""
        #: Drop bytes up to the next newline (a start offset inside a record).
        self._align = False
        #: The offset to go on from when no file is open; None: the live file's
        #: start, whatever its offset (after a reset).
        self._next: Optional[int] = start
        #: Backup index to begin the next scan at (see :meth:`_locate`).
        self._hint = 0
        #: Position before a truncation, reported once the live file is readable again.
        self._reset_from: Optional[int] = None
        #: ``_next`` is the end of a file: the next file must begin exactly there.
        self._boundary = False
        self._batch: List[Entry] = []
        #: This poll only counts records (nobody wants them parsed).
        self._counting = False
        #: Records counted and not reported yet: how many, and their extent.
        self._counted = 0
        self._counted_from = 0
        self._counted_to = 0
        #: Compressed backups found corrupt: (device, inode), skipped from then on.
        self._broken: Set[Tuple[int, int]] = set()
        if start is None:
            self._start_at_end()

    # ------------------------------------------------------------ public

    @property
    def position(self) -> int:
        """The offset of the next record to deliver: a cursor for what comes next."""
        if self._src is not None and self._src.base is not None:
            return self._src.base + self._pos
        if self._next is not None:
            return self._next
        return self._reset_from or 0  # a reset waiting for the live file's first line

    @property
    def file_position(self) -> int:
        """The position inside the file being read (the live file once caught up)."""
        return self._pos if self._src is not None else 0

    def poll(self) -> int:
        """Read what is new now, deliver complete records; returns bytes read.

        Never blocks on anything but local file reads, and reads at most
        ``chunk_size`` bytes: :attr:`pending` says whether to call again soon.
        """
        total = 0
        self.pending = False
        self._counting = self.wanted is not None and not self.wanted()
        try:
            while True:
                if self._src is None and not self._open_next():
                    break
                src = self._src
                assert src is not None
                want = min(self.chunk_size - total, _READ_SIZE)
                if want <= 0:
                    self.pending = True
                    break
                try:
                    data = src.read(self._pos + len(self._partial), want)
                except OSError as exc:
                    if src.packed is None:
                        raise
                    self._skip_broken(src, exc)
                    continue
                if data:
                    total += len(data)
                    self._consume(src, data)
                    continue
                if not src.live:
                    self._finish_source(src)
                    continue
                verdict = self._check_live(src)
                if verdict == "same":
                    break
                if verdict == "reset":
                    self._restart_live(src)
                    continue
                # Rotated: nothing more will be written to it; drain it once
                # more (what came since the read above), then move on.
                src.live = False
        finally:
            self.bytes_read += total
            self._flush()
        return total

    def close(self) -> None:
        """Close the open file (a later :meth:`poll` opens it again, at :attr:`position`)."""
        if self._src is not None:
            self._next = self.position
            self._src.close()
            self._src = None

    # ------------------------------------------------------------ records

    def _consume(self, src: _Source, data: bytes) -> None:
        base = src.base or 0
        buf = self._partial + data if self._partial else data
        if self._align:
            newline = buf.find(b"\n")
            if newline < 0:
                self._partial = buf
                return
            skip = newline + 1
            self._gap(base + self._pos, base + self._pos + skip)
            buf = buf[skip:]
            self._pos += skip
            self._align = False
        last = buf.rfind(b"\n")
        if last < 0:
            self._partial = buf
            return
        self._partial = buf[last + 1 :]
        offset = base + self._pos
        if self.on_status is not None:
            found = status_lines(buf, last + 1)
            if found:
                self._notify("on_status", self.on_status, found)
        if self._counting:
            # Nobody watches: count the records, do not parse them (~50x cheaper).
            if not self._counted:
                self._counted_from = offset
            self._counted += buf.count(b"\n", 0, last + 1)
            self._counted_to = offset + last + 1
            self._pos += last + 1
            return
        lines = buf[: last + 1].split(b"\n")
        lines.pop()
        batch = self._batch
        for line in lines:
            end = offset + len(line) + 1
            try:
                record = parse(line)
            except RecordError:
                self.unparsed += 1
            else:
                batch.append(Entry(offset, end, record))
            offset = end
        self._pos += last + 1

    def _flush(self) -> None:
        if self._counted:
            lines, self._counted = self._counted, 0
            self.records += lines
            self._notify("on_advance", self.on_advance, self._counted_from, self._counted_to, lines)
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self.records += len(batch)
        self._notify("on_entries", self.on_entries, batch)

    def _gap(self, start: int, end: int) -> None:
        self.gaps += 1
        self._flush()
        self._notify("on_gap", self.on_gap, start, end)

    def _reset(self, old: int, new: int) -> None:
        self.resets += 1
        self._flush()
        self._notify("on_reset", self.on_reset, old, new)

    def _notify(self, what: str, callback: Optional[Callable[..., Any]], *args: Any) -> None:
        """Call a consumer's callback; its failure is logged, never the follower's."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("%s failed for %s", what, self.path)

    # ------------------------------------------------------------ files

    def _look(self, name: str, index: int) -> Optional[_Source]:
        """Open one name of the log (``index`` 0: the live file) for :func:`walk`;
        None if there is nothing usable by that name."""
        src = _open_source(name, index)
        if src is not None and (src.dev, src.ino) in self._broken:
            src.close()
            return None
        if src is not None and src.first_line is not None and src.base is None:
            src.base = self._derived_base(src)
            if src.base is None:
                src.close()
                return None
        return src

    def _derived_base(self, src: _Source) -> Optional[int]:
        """The offset of a file without a header, as process_files() places it."""
        for item in process_files(self.path, self.max_backups):
            if item.path == src.name:
                return item.base
        return None

    def _start_at_end(self) -> None:
        """Position at the end of the last complete record there now."""
        src = self._look(self.path, 0)
        if src is not None and src.base is not None:
            self._install(src, record_end(src.read, src.size) or 0)
            return
        if src is not None:
            src.close()  # being created, its header not written yet
        # The writer begins a new file where the newest backup ends, or at 0.
        previous = next(walk(self.path, self._look, 1, self.max_backups), None)
        self._next = 0
        if previous is not None:
            self._next = previous.end
            previous.close()

    def _install(self, src: _Source, pos: int) -> None:
        self._src = src
        self._pos = pos
        self._partial = b""
        try:
            self._align = pos > 0 and src.read(pos - 1, 1) != b"\n"
        except _Damaged:
            # A .gz damaged before ``pos``: the next read meets it again and
            # the rest of the file is skipped (see poll).
            self._align = True

    def _open_next(self) -> bool:
        """Open the file holding the next record; False if there is none yet."""
        if self._next is None:
            src = self._look(self.path, 0)
            if src is None or src.base is None:
                if src is not None:
                    src.close()
                return False
            self._install(src, 0)
            self._boundary = False
            if self._reset_from is not None:
                old, self._reset_from = self._reset_from, None
                self._reset(old, src.base)
            return True
        offset = self._next
        kind, src = self._locate(offset, self._hint)
        if kind == "gap":
            # Make sure it was not a scan torn by a rotation: look once more.
            assert src is not None
            first_base = src.base
            src.close()
            kind, src = self._locate(offset, 0)
            if kind == "gap" and src is not None and src.base != first_base:
                src.close()
                return False  # the files are moving: next poll
        self._hint = 0
        if kind == "wait" or src is None:
            return False
        assert src.base is not None
        boundary, self._boundary = self._boundary, False
        if kind == "found" and boundary and src.base != offset:
            # The file after the one just finished must begin where it ended;
            # one that spans that offset is another log (the files were replaced).
            kind = "reset"
        if kind == "found":
            self._install(src, offset - src.base)
        elif kind == "gap":
            self._install(src, 0)
            self._gap(offset, src.base)
        else:  # "reset": the offset is past the end of the live file
            self._install(src, 0)
            self._reset(offset, src.base)
        return True

    def _locate(self, offset: int, first_index: int) -> Tuple[str, Optional[_Source]]:
        """Find the file holding ``offset``, newest to oldest.

        Renames only ever move a file to a higher index and the scan moves up
        too, one index at a time, so the file holding ``offset`` cannot slip
        past it.  Results: ``found`` (the file holds it), ``gap`` (it is gone;
        the file returned is the oldest after it), ``reset`` (past the live
        file's end; the live file is returned) or ``wait`` (not written yet).
        """
        newer: Optional[_Source] = None
        for src in walk(self.path, self._look, first_index, self.max_backups):
            if src.base is None:  # the live file, its header not complete yet
                src.close()
                if newer is not None:
                    newer.close()
                return "wait", None
            if src.base > offset:
                if newer is not None:
                    newer.close()
                newer = src
                continue
            if offset < src.end or (src.live and offset <= src.end):
                if newer is not None:
                    newer.close()
                return "found", src
            if src.live:
                return "reset", src
            src.close()  # ends at or before offset: the next file is ``newer``
            break
        if newer is not None:
            return "gap", newer
        if first_index > 0:
            return self._locate(offset, 0)
        return "wait", None

    def _finish_source(self, src: _Source) -> None:
        """The end of a file nothing more will be written to: go on after it."""
        base = src.base or 0
        if self._partial:
            # An unfinished record in a file that was rotated away: never completed.
            self._gap(base + self._pos, base + self._pos + len(self._partial))
            self._pos += len(self._partial)
            self._partial = b""
        self._next = base + self._pos
        self._boundary = True
        self._hint = max(0, src.index - 1)
        src.close()
        self._src = None

    def _skip_broken(self, src: _Source, exc: BaseException) -> None:
        """A compressed backup that cannot be read on: what is left of it is a gap."""
        log.warning("cannot read %s (%s): skipping the rest of it", src.name, exc)
        self._broken.add((src.dev, src.ino))
        self._next = (src.base or 0) + self._pos
        self._boundary = False
        self._partial = b""
        src.close()
        self._src = None

    def _check_live(self, src: _Source) -> str:
        """At the end of the live file: ``same``, ``rotated`` or ``reset``."""
        try:
            st = os.fstat(src.fd)
            if st.st_size < self._pos + len(self._partial):
                return "reset"  # truncated
            first = src.first_line
            if first is not None and os.pread(src.fd, len(first), 0) != first:
                return "reset"  # rewritten in place
            named = os.stat(self.path)
        except OSError:
            return "same"  # no file by that name (rotation under way, or deleted): wait
        if (named.st_ino, named.st_dev) == (src.ino, src.dev):
            return "same"
        # Another file has the name.  Once its first line is there, the writer
        # has moved on (it writes the header right after creating the file) and
        # nothing more will be appended to ours.
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(_FIRST_LINE_LIMIT)
        except OSError:
            return "same"
        return "same" if _first_line(head) is None else "rotated"

    def _restart_live(self, src: _Source) -> None:
        self._reset_from = self.position
        src.close()
        self._src = None
        self._next = None
        self._partial = b""
