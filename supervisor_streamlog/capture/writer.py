"""The rotating writer: whole records in, files that never split one out.

Rotation follows the multilog/s6-log protocol:

* data comes in as whole records; before a write that would take the file past
  ``maxbytes`` the writer writes the records that still fit, then rotates, then
  goes on (a single record larger than ``maxbytes`` gets a file of its own);
* rotation is a chain of renames -- ``.N`` is removed, ``.i`` becomes ``.i+1``,
  the live file becomes ``.1`` -- so a crash between two steps leaves every byte
  in some file; the next start finishes what was left (see :meth:`recover`);
* ``compress`` gzips a rotated file on a background thread into ``.gz.tmp``
  (held under an exclusive ``flock`` while written), renames that to ``.gz`` and
  only then removes the plain file; a ``.gz.tmp`` nobody holds is left over
  from a compression that was killed or cancelled: :meth:`recover` removes it
  and submits the plain file again;
* a supervisord reload makes new writers for the same files while the previous
  load's compressor may still run: renames are serialised by one lock per path
  (:func:`path_lock`), shared by every writer of that path in the process, and
  the previous load's compressor is cancelled (:meth:`Compressor.cancel`), its
  work left to the new load's :meth:`recover`;
* retention: ``backups`` files by count, and ``max_total_bytes`` over the live
  file and its backups together (oldest removed first; the live file never, and
  it is counted at ``maxbytes``, the size it may reach before the next rotation).

A write error (full disk, vanished directory) never raises to the caller and
never loses data silently: records are held in memory up to ``buffer_limit``
bytes and retried on the next write or :meth:`retry`.  Past the limit, the
writer keeps both ends of what it holds -- the oldest records (up to half the
limit: how the trouble began) and the newest (the rest: what the program is
doing now, its last words and its exit included) -- and drops the records
between them.  Each stretch of dropped records is one :class:`Gap` in the
queue, written as one ``status STREAMLOG dropped ...`` record at its place,
so a reader sees exactly which stretch is missing (see :meth:`Gap.text`).

The module is longer than most (about 800 lines) because the writer, what it
holds while the disk refuses writes, and the :class:`Compressor` share one
lock per path and one naming of the backups: the rename chain, crash recovery
(stale ``.gz.tmp`` included), retention, the compressor's rename and the
position of each ``dropped`` record are one protocol, best read in one place.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import gzip
import os
import queue
import threading
from typing import Callable, Deque, Dict, List, Optional, Tuple, TypedDict, Union

from ..ondisk.files import backup_path, header_text, read_base, uncompressed_size
from ..ondisk.formats import RecordError, parse

#: How the writer and the compressor report a problem: ``(kind, message)``.
#: ``kind`` names the problem (``write:ENOSPC``, ``moved:PATH``, ``gzip``) so the
#: receiver can say each one once; ``KIND:ok`` says it is over.  The capture core
#: passes its ``_report_kind``, which does that and hands the message on as a
#: :data:`~.core.ReportMessage`.
ReportProblem = Callable[[str, str], None]
#: Renders a ``status`` record of the writer's own (a file header, a drop notice)
#: from its text and the timestamp to give it (as found in the records), or None
#: for the time the record is written.
Notice = Callable[[str, Optional[str]], bytes]


def _quiet_report(kind: str, message: str) -> None:
    pass


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


def _claim(tmp: str, create: bool) -> Optional[int]:
    """Open ``tmp`` and hold it under an exclusive flock, or None if another
    compressor holds it (or, with ``create`` false, it does not exist).  The
    flock ends with the process, so a ``.gz.tmp`` nobody holds is stale."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder we waited for may have renamed it to .gz meanwhile: then
        # this descriptor is that .gz, not a .gz.tmp.
        if (os.fstat(fd).st_ino, os.fstat(fd).st_dev) != (
            os.stat(tmp).st_ino,
            os.stat(tmp).st_dev,
        ):
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return fd


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
                fd = _claim(stale, create=False) if os.path.exists(stale) else None
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


class Compressor:
    """Gzips rotated files on one background thread, so capture never waits.

    A file is found again by its inode after compression, since more rotations
    may have renamed it meanwhile; renames happen under the writer's lock.
    """

    def __init__(self, report: ReportProblem = _quiet_report, level: int = 6) -> None:
        self.report = report
        self.level = level
        self.jobs: queue.Queue[Optional[Tuple[RotatingWriter, str]]] = queue.Queue()
        self.thread: Optional[threading.Thread] = None
        self.idle = threading.Event()
        self.idle.set()
        #: Set by :meth:`cancel`: jobs are left for the next load's recover().
        self.cancelled = threading.Event()
        #: Jobs submitted and not finished; ``idle`` is set exactly when it is 0.
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.compressed = 0

    def start(self) -> None:
        """Start the worker thread (call after supervisord has daemonized)."""
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="streamlog-gzip", daemon=True)
            self.thread.start()

    def submit(self, writer: RotatingWriter, name: str) -> None:
        try:
            st = os.stat(name)
        except OSError:
            return
        with self._pending_lock:
            self._pending += 1
            self.idle.clear()
        self.jobs.put((writer, f"{st.st_dev}:{st.st_ino}"))

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued work (up to ``timeout`` seconds) and stop the thread."""
        if self.thread is not None and self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join(timeout)
        self.thread = None

    def cancel(self, timeout: float = 5.0) -> None:
        """Stop soon, leaving queued and running jobs undone (a reload).

        The file being compressed stops within one block, its ``.gz.tmp`` is
        removed and its plain file kept; the next load's writers find the plain
        backups and compress them (:meth:`RotatingWriter.recover`).  Waiting
        for a large file to finish instead would hold up supervisord's reload.
        """
        self.cancelled.set()
        self.stop(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted file is compressed (for tests, shutdown)."""
        return self.idle.wait(timeout)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.idle.set()
                return
            writer, inode = job
            try:
                if not self.cancelled.is_set():
                    self.compress(writer, inode)
            except Exception as exc:  # a bad file must not stop the thread
                self.report("gzip", f"compressing a backup of {writer.path} failed: {exc!r}")
            # Not ``jobs.empty()``: a submit() between its clear() and its put()
            # would then see idle set while its job is still to come.
            with self._pending_lock:
                self._pending -= 1
                if self._pending == 0:
                    self.idle.set()

    @staticmethod
    def _find(writer: RotatingWriter, inode: str) -> Optional[str]:
        for index in range(1, writer.backups + 1):
            name = writer.backup_name(index)
            try:
                st = os.stat(name)
            except OSError:
                continue
            if f"{st.st_dev}:{st.st_ino}" == inode:
                return name
        return None

    def compress(self, writer: RotatingWriter, inode: str) -> None:
        """Gzip the backup of ``writer`` with this inode, if it still exists."""
        with writer.lock:
            name = self._find(writer, inode)
            if name is None:
                return
            source = open(name, "rb")
        tmp = name + ".gz.tmp"
        # ``source`` stays open until the rename: while it is open, its inode
        # number cannot be given to a new file, so the file found again by
        # inode below is this one (and not, say, a newer backup that reused
        # the number after retention removed this one).
        with source:
            fd = _claim(tmp, create=True)
            if fd is None:
                return  # another load's compressor is on it
            try:
                os.ftruncate(fd, 0)
                with open(fd, "wb", closefd=False) as raw:
                    with gzip.GzipFile(
                        filename=os.path.basename(name),
                        mode="wb",
                        compresslevel=self.level,
                        fileobj=raw,
                    ) as packed:
                        while not self.cancelled.is_set():
                            block = source.read(1024 * 1024)
                            if not block:
                                break
                            packed.write(block)
                    raw.flush()
                    os.fsync(fd)
                with writer.lock:
                    current = self._find(writer, inode)
                    if current is None or self.cancelled.is_set():
                        os.unlink(tmp)  # removed by retention meanwhile, or cancelled
                        return
                    os.replace(tmp, current + ".gz")
                    os.unlink(current)
                    self.compressed += 1
                    writer._enforce_total()
            except OSError as exc:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                self.report(
                    "gzip", f"cannot compress {name}: {exc.strerror or exc}; kept uncompressed"
                )
            finally:
                os.close(fd)  # after the rename: the flock covers it
