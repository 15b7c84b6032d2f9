"""The rotating writer: whole records in, files that never split one out.

Role: :class:`RotatingWriter` appends records to ``<name>.log``, rotates it to
``.1`` before a write would pass ``maxbytes`` (a record larger than that gets a
file of its own), keeps ``backups`` files and ``max_total_bytes`` over them all
(oldest removed first; the live file never, counted at ``maxbytes``), and hands
rotated files to the :class:`~.compressor.Compressor`.

Invariants: a file holds whole records only, and every byte is in some file at
every moment.  Rotation is a chain of renames (``.N`` removed, ``.i`` becomes
``.i+1``, the live file ``.1``), so a crash between two steps loses nothing and
:meth:`RotatingWriter.recover` finishes it at the next start.  A write error
(full disk, vanished directory) never raises to the caller: records are held up
to ``buffer_limit`` bytes and retried; past it, the oldest (how the trouble
began) and the newest (the program's last words) are kept and the stretch
between them becomes one :class:`Gap`, written in its place as one ``status
STREAMLOG dropped ...`` record.

Threads: called from capture's thread only.  The compressor's thread renames
the same files: both hold one lock per path (:func:`path_lock`), shared by every
writer of that path across a supervisord reload.

Example::

    writer = RotatingWriter("/var/log/app.log", maxbytes=50_000_000, backups=10)
    writer.write(b"2026-12-07T21:36:23.000001+00:00 stdout hello\\n")  # whole records
    writer.close()
"""

from __future__ import annotations

import collections
import errno
import gzip
import os
import threading
from typing import Callable, Deque, Dict, List, Optional, Tuple, TypedDict, Union

from ..ondisk.files import backup_path, header_text, read_base, uncompressed_size
from ..ondisk.formats import RecordError, parse
from .compressor import Compressor, ReportProblem, _quiet_report, claim

#: Renders a ``status`` record of the writer's own (a file header, a drop notice)
#: from its text and the timestamp to give it (as found in the records), or None
#: for the time the record is written.
Notice = Callable[[str, Optional[str]], bytes]


#: gzip's trailer holds the uncompressed size modulo this (RFC 1952's ISIZE).
ISIZE_MODULUS = 2**32
#: Deflate never packs more than 1032 bytes into one (258-byte matches at 2 bits
#: each, rounded up here): a ``.gz`` smaller than ISIZE_MODULUS / this holds
#: less than ISIZE_MODULUS bytes, so its ISIZE is exact.
MAX_DEFLATE_RATIO = 1040


def content_size(path: str) -> int:
    """The exact size of a file's contents, a ``.gz``'s uncompressed.

    gzip's trailer gives it modulo 4 GiB (:func:`~..ondisk.files.uncompressed_size`);
    where that may have wrapped (a ``.gz`` large enough to hold 4 GiB or more)
    the contents are counted instead.  That reads the whole file, but only when
    a new live file is started with nothing else to go by (see ``_ensure_open``).
    """
    if not path.endswith(".gz"):
        return os.path.getsize(path)
    if os.path.getsize(path) * MAX_DEFLATE_RATIO < ISIZE_MODULUS:
        return uncompressed_size(path)
    total = 0
    with gzip.open(path, "rb") as packed:
        while True:
            block = packed.read(1024 * 1024)
            if not block:
                return total
            total += len(block)


def _record_time(line: bytes) -> Optional[str]:
    """The timestamp of a record (one line, of either format), or None."""
    try:
        return parse(line.rstrip(b"\n")).time
    except RecordError:
        return None


class Gap:
    """A stretch of consecutive records dropped while the disk refused writes.

    It takes their place in the writer's queue and is written there as one
    record, ``status STREAMLOG dropped bytes=N records=M first=T1 last=T2
    reason=ENOSPC``: N and M count what it replaces (the bytes of the records
    as they would have been written), T1 and T2 are the timestamps of the first
    and the last of them, and the record itself is stamped T1 so a file's
    timestamps never go backwards.  Only the first and the last record are
    kept (to read their times when the gap is written).
    """

    __slots__ = ("bytes", "records", "first", "last", "reason")

    def __init__(self, reason: Optional[str]) -> None:
        self.bytes = 0
        self.records = 0
        self.first = b""
        self.last = b""
        self.reason = reason or "error"

    def add(self, data: bytes) -> None:
        """Count ``data`` (whole records, newer than those already counted)."""
        if not self.bytes:
            self.first = data[: data.find(b"\n") + 1 or len(data)]
        self.last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
        self.bytes += len(data)
        self.records += data.count(b"\n")

    def text(self) -> Tuple[str, Optional[str]]:
        """The record's text and its timestamp (None if the records had none)."""
        first, last = _record_time(self.first), _record_time(self.last)
        text = f"dropped bytes={self.bytes} records={self.records}"
        if first is not None and last is not None:
            text += f" first={first} last={last}"
        return f"{text} reason={self.reason}", first


#: What waits in the writer's queue: records, and the gaps between them.
Held = Union[bytes, Gap]

_path_locks: Dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def path_lock(path: str) -> threading.Lock:
    """The one lock of a log file's renames, whichever writer or load holds it.

    After a supervisord reload, the previous load's compressor and the new
    load's writer work on the same files: one lock per path keeps a rotation
    from renaming a file between the compressor finding it and replacing it.
    """
    with _path_locks_guard:
        return _path_locks.setdefault(os.path.abspath(path), threading.Lock())


class WriterStats(TypedDict):
    """The figures of :meth:`RotatingWriter.stats` (plain data: status calls, metrics)."""

    #: The live file.
    path: str
    #: Bytes written by this writer (all its files, headers included).
    bytes_written: int
    rotations: int
    #: Writes that failed (each is retried; see ``failing``).
    write_errors: int
    #: Bytes waiting in memory for the disk to work again.
    held_bytes: int
    #: Bytes this writer dropped because ``write_buffer`` was full.
    dropped_bytes: int
    #: The errno name of the failure going on (``ENOSPC``), or None.
    failing: Optional[str]


class RotatingWriter:
    """Appends whole records to ``path``, rotating and trimming its backups."""

    def __init__(
        self,
        path: str,
        maxbytes: int = 0,
        backups: int = 10,
        max_total_bytes: int = 0,
        compressor: Optional[Compressor] = None,
        buffer_limit: int = 16 * 1024 * 1024,
        report: ReportProblem = _quiet_report,
        notice: Optional[Notice] = None,
        header: bool = False,
    ) -> None:
        self.path = path
        self.maxbytes = maxbytes
        self.backups = backups
        self.max_total_bytes = max_total_bytes
        self.compressor = compressor
        self.buffer_limit = buffer_limit
        self.report = report
        self.notice = notice
        #: Start every new file with a header record giving its offset (ondisk/files.py).
        self.header = header and notice is not None
        #: Offset of the live file's first byte in the process's whole log.
        self.base = 0
        self._next_base: Optional[int] = None
        #: Size of a new file before any record: its header, or 0.
        self.empty_size = 0
        #: Held by rotation and by the compressor while they rename files.
        self.lock = path_lock(path)
        self.fd: Optional[int] = None
        self.size = 0
        #: The rest of a record whose write was cut short; written before anything else.
        self.tail = b""
        #: A reopen waits for ``tail`` to be written to the file it began in.
        self._reopen_due = False
        #: What the disk refused, oldest first: the oldest records (up to half of
        #: ``buffer_limit``, never dropped) in ``held``, then the newest in
        #: ``recent``, whose oldest are dropped (become a :class:`Gap`) when the
        #: two together pass the limit.  Gaps keep their place in the queue.
        self.held: Deque[Held] = collections.deque()
        self.recent: Deque[Held] = collections.deque()
        #: Bytes of records in ``held`` and ``recent`` together, and in ``recent``.
        self.held_bytes = 0
        self.recent_bytes = 0
        #: Dropped and not written as a ``dropped`` record yet.
        self.dropped_bytes = 0
        self.dropped_records = 0
        self.failing: Optional[str] = None
        # Counters for status and metrics.
        self.bytes_written = 0
        self.rotations = 0
        self.errors = 0
        self.total_dropped_bytes = 0
        self.recover()

    # ------------------------------------------------------------ file names

    def backup_name(self, index: int, gz: bool = False) -> str:
        return f"{self.path}.{index}" + (".gz" if gz else "")

    def files(self) -> List[str]:
        """The live file and every backup that exists, newest first."""
        names = [self.path] if os.path.exists(self.path) else []
        for index in range(1, max(self.backups, 1) + 1):
            for gz in (False, True):
                name = self.backup_name(index, gz)
                if os.path.exists(name):
                    names.append(name)
        return names

    def recover(self) -> None:
        """Finish whatever a crash left half done, before the first write."""
        with self.lock:
            for index in range(1, max(self.backups, 1) + 1):
                plain, packed = self.backup_name(index), self.backup_name(index, True)
                stale = packed + ".tmp"
                fd = claim(stale, create=False) if os.path.exists(stale) else None
                if fd is not None:
                    # Left by a compression that was killed or cancelled (one
                    # still running holds its flock): the plain file is intact.
                    self._remove(stale)
                    os.close(fd)
                if os.path.exists(plain) and os.path.exists(packed):
                    # The .gz was renamed into place only once complete.
                    self._remove(plain)
        if self.compressor is not None:
            for index in range(1, self.backups + 1):
                if os.path.exists(self.backup_name(index)):
                    self.compressor.submit(self, self.backup_name(index))

    # ------------------------------------------------------------ writing

    def write(self, data: bytes) -> None:
        """Append whole records.  Never raises for an I/O error (see module doc)."""
        if (self.failing is not None or self.held or self.tail) and not self.retry():
            # Still failing: hold.  (Retrying first means a full buffer never
            # drops the first records that arrive once the disk is back.)
            self._hold(data)
            return
        try:
            if self.fd is not None and (
                not self.maxbytes or self.size + len(data) <= self.maxbytes
            ):
                self._raw_write(data)  # the hot path: no rotation due
            else:
                self._write_records(data)
        except OSError as exc:
            self._failed(exc)

    def _hold(self, data: bytes) -> None:
        """Queue records the disk refused; past ``buffer_limit``, drop the middle.

        Why both ends: the oldest records say how the trouble began, the newest
        what the program is doing now (its last lines and exit status included,
        which a reader needs most once the disk is back).  Dropping only the
        newest would lose those; dropping only the oldest, the beginning.
        """
        size = len(data)
        if not self.recent and self.held_bytes + size <= self.buffer_limit // 2:
            self.held.append(data)
            self.held_bytes += size
            return
        self.recent.append(data)
        self.recent_bytes += size
        self.held_bytes += size
        while self.held_bytes > self.buffer_limit and self._drop_oldest_recent():
            pass

    def _drop_oldest_recent(self) -> bool:
        """Turn the oldest records of ``recent`` into (part of) a gap."""
        recent = self.recent
        if recent and isinstance(recent[0], Gap):
            if len(recent) < 2:
                return False
            gap = recent[0]
            data = recent[1]
            del recent[1]
        elif recent:
            data = recent.popleft()
            last = self.held[-1] if self.held else None
            if isinstance(last, Gap):
                gap = last  # the records just after an earlier gap: the same stretch
            else:
                gap = Gap(self.failing)
                recent.appendleft(gap)
        else:
            return False
        assert isinstance(data, bytes)  # gaps are never next to each other
        gap.add(data)
        self.held_bytes -= len(data)
        self.recent_bytes -= len(data)
        self.dropped_bytes += len(data)
        self.total_dropped_bytes += len(data)
        self.dropped_records += data.count(b"\n")
        return True

    def _rebalance(self) -> None:
        """After writes emptied part of ``held``, let it take the oldest of ``recent``."""
        half = self.buffer_limit // 2
        recent = self.recent
        while recent:
            item = recent[0]
            if isinstance(item, bytes):
                if self.held_bytes - self.recent_bytes + len(item) > half:
                    return
                self.recent_bytes -= len(item)
            self.held.append(recent.popleft())

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written (held records, gaps, a half record)."""
        return bool(self.held or self.recent or self.tail)

    def _failed(self, exc: OSError) -> None:
        self.errors += 1
        kind = errno.errorcode.get(exc.errno or 0, "error")
        if self.failing != kind:
            self.failing = kind
            self.report(
                f"write:{kind}",
                f"cannot write {self.path}: {exc.strerror or exc}; holding records "
                f"in memory (up to {self.buffer_limit} bytes) and retrying",
            )

    def retry(self) -> bool:
        """Try again to write held records and gaps; True once nothing is held."""
        try:
            if self.tail:
                self._ensure_open()
                self._raw_write(self.tail)
                self.tail = b""
            if self._reopen_due:
                self.reopen()  # the file was moved while a record was half written
            while self.held or self.recent:
                if self.held:
                    item = self.held.popleft()
                else:
                    item = self.recent.popleft()
                    if isinstance(item, bytes):
                        self.recent_bytes -= len(item)
                if isinstance(item, Gap):
                    self._write_gap(item)
                    continue
                self.held_bytes -= len(item)
                # On failure, what was not written is kept (tail and held).
                self._write_records(item)
        except OSError as exc:
            self._failed(exc)
            self._rebalance()
            return False
        if self.failing is not None:
            self.report(f"write:{self.failing}:ok", f"writing {self.path} again")
            self.failing = None
        return True

    def _write_gap(self, gap: Gap) -> None:
        """Write the ``dropped`` record standing for ``gap`` (see :class:`Gap`)."""
        self.dropped_bytes -= gap.bytes
        self.dropped_records -= gap.records
        if self.notice is None:
            return
        text, stamp = gap.text()
        data = self.notice(text, stamp)
        self._write_records(data)  # on failure its bytes are kept like any record

    def _write_records(self, data: bytes) -> None:
        maxbytes = self.maxbytes
        while data:
            try:
                self._ensure_open()
            except OSError:
                self._keep(data)
                raise
            if maxbytes and self.size + len(data) > maxbytes:
                room = maxbytes - self.size
                cut = data.rfind(b"\n", 0, room) + 1 if room > 0 else 0
                if cut == 0 and self.size <= self.empty_size:
                    # One record larger than maxbytes (with the header): it gets a
                    # file of its own -- rotating again could never make room.
                    cut = data.find(b"\n") + 1 or len(data)
                if cut:
                    chunk, data = data[:cut], data[cut:]
                    self._write_or_keep(chunk, data)
                if data or self.size >= maxbytes:
                    self._write_or_keep(b"", data, rotate=True)
                continue
            self._write_or_keep(data, b"")
            data = b""

    def _write_or_keep(self, chunk: bytes, rest: bytes, rotate: bool = False) -> None:
        """Write ``chunk`` (or rotate); on failure keep ``rest`` for the retry."""
        try:
            if rotate:
                self.rotate()
            else:
                self._raw_write(chunk)
        except OSError:
            self._keep(rest)
            raise

    def _keep(self, data: bytes) -> None:
        """Put unwritten records back at the head of the queue."""
        if data:
            self.held.appendleft(data)
            self.held_bytes += len(data)

    def _raw_write(self, data: bytes) -> None:
        assert self.fd is not None
        try:
            written = os.write(self.fd, data)
        except OSError:
            self.tail = data  # the whole record goes first on retry
            raise
        self.size += written
        self.bytes_written += written
        if written == len(data):
            return  # the usual case: no memoryview, no loop
        view = memoryview(data)[written:]
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError:
                # Whatever of this record was not written goes first on retry.
                self.tail = bytes(view)
                raise
            self.size += written
            self.bytes_written += written
            view = view[written:]

    def _ensure_open(self) -> None:
        if self.fd is not None:
            return
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.empty_size = 0
        if not self.header:
            return
        if self.size:
            self.base = read_base(self.path) or 0
            self._next_base = None
            return
        if self._next_base is None:
            previous = backup_path(self.path, 1)
            self._next_base = 0
            if previous is not None:
                # The previous file's own header plus its exact size: not gzip's
                # ISIZE alone, which wraps at 4 GiB.
                self._next_base = (read_base(previous) or 0) + content_size(previous)
        self.base, self._next_base = self._next_base, None
        assert self.notice is not None
        header = self.notice(header_text(self.base), None)
        self.empty_size = len(header)  # a file holding only its header counts as empty
        self._raw_write(header)  # on failure kept in self.tail

    def _close_fd(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    # ------------------------------------------------------------ rotation

    def rotate(self) -> None:
        """Rename the live file to ``.1``, shift the backups, enforce retention."""
        if self.tail:
            raise RuntimeError("rotate() with a record half written")
        self._next_base = self.base + self.size
        self._close_fd()
        with self.lock:
            if os.path.exists(self.path):
                if self.backups <= 0:
                    self._remove(self.path)
                else:
                    for gz in (False, True):
                        self._remove(self.backup_name(self.backups, gz))
                    for index in range(self.backups - 1, 0, -1):
                        for gz in (False, True):
                            src = self.backup_name(index, gz)
                            if os.path.exists(src):
                                os.replace(src, self.backup_name(index + 1, gz))
                    os.replace(self.path, self.backup_name(1))
            self.rotations += 1
            self._enforce_total()
        self._ensure_open()
        if self.compressor is not None and self.backups > 0:
            self.compressor.submit(self, self.backup_name(1))

    def _enforce_total(self) -> None:
        """Remove the oldest backups until all files fit ``max_total_bytes``."""
        if not self.max_total_bytes:
            return
        sizes: List[Tuple[str, int]] = []
        for name in self.files():
            try:
                sizes.append((name, os.path.getsize(name)))
            except OSError:
                pass
        total = sum(size for _, size in sizes)
        # The live file grows to maxbytes before the next rotation: count it at
        # that size, so the cap holds at all times, not only just after a rotation.
        live = next((size for name, size in sizes if name == self.path), 0)
        total += max(0, self.maxbytes - live)
        # Oldest last in files(); never remove the live file.
        for name, size in reversed(sizes):
            if total <= self.max_total_bytes or name == self.path:
                break
            self._remove(name)
            total -= size

    def enforce_total(self) -> None:
        """Apply ``max_total_bytes`` now (after a compression shrank a file)."""
        with self.lock:
            self._enforce_total()

    @staticmethod
    def _remove(name: str) -> None:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------ upkeep

    def reopen(self) -> None:
        """Reopen the live file by name (after an external logrotate)."""
        if self.tail and self.fd is not None:
            # Finish the record a failed write left half done, in the file it began in.
            try:
                self._raw_write(self.tail)
                self.tail = b""
            except OSError as exc:
                # Its rest must go to that file too, or the record would be split
                # across two files: keep the file open until retry() writes it,
                # and reopen then.
                self._reopen_due = True
                self._failed(exc)
                return
        self._reopen_due = False
        if self.fd is not None:
            self._next_base = self.base + self.size  # used if the new file is empty
        self._close_fd()
        try:
            self._ensure_open()
        except OSError as exc:
            self._failed(exc)

    def check_moved(self) -> bool:
        """Reopen if the live file was deleted or replaced under us."""
        if self.fd is None:
            return False
        try:
            st = os.fstat(self.fd)
            try:
                current = os.stat(self.path)
                same = (current.st_ino, current.st_dev) == (st.st_ino, st.st_dev)
            except FileNotFoundError:
                same = False
        except OSError:
            same = False
        if not same:
            self.report(f"moved:{self.path}", f"{self.path} was moved or deleted; reopening")
            self.reopen()
            return True
        return False

    def close(self) -> None:
        """Write what is held if possible, then close."""
        if self.pending:
            self.retry()
        self._close_fd()

    def stats(self) -> WriterStats:
        """Counters for status calls and metrics."""
        return WriterStats(
            path=self.path,
            bytes_written=self.bytes_written,
            rotations=self.rotations,
            write_errors=self.errors,
            held_bytes=self.held_bytes + len(self.tail),
            dropped_bytes=self.total_dropped_bytes,
            failing=self.failing,
        )
