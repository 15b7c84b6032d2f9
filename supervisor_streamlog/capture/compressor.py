"""The compressor: rotated backups gzipped on a thread of their own, so capture never waits.

Role: :class:`Compressor` takes ``.1`` (or any plain backup) from a writer
(:mod:`.writer`) and replaces it by ``.1.gz``, finding it again by its inode
since more rotations may have renamed it meanwhile.

Invariants: every byte is in some file at every moment.  The ``.gz`` is written
as ``.gz.tmp`` under an exclusive ``flock`` (:func:`claim`), renamed to ``.gz``
once complete and only then is the plain file removed; a ``.gz.tmp`` nobody
holds is left over from a compression that was killed or cancelled, and the
writer's ``recover()`` removes it and submits the plain file again.  Renames
happen under the writer's path lock, the one its rotations hold.

Threads: one daemon thread (``streamlog-gzip``) per compressor; ``submit``
is called from capture's thread.  A supervisord reload cancels the previous
load's compressor (:meth:`Compressor.cancel`) and leaves its work to the new
load's writers.

Example::

    compressor = Compressor(report=report)
    compressor.start()              # after supervisord has daemonized
    writer = RotatingWriter(path, maxbytes=50_000_000, compressor=compressor)
    ...
    compressor.stop()               # finish queued work, then end the thread
"""

from __future__ import annotations

import fcntl
import gzip
import os
import queue
import threading
from typing import Callable, Optional, Protocol, Tuple

#: How the writer and the compressor report a problem: ``(kind, message)``.
#: ``kind`` names the problem (``write:ENOSPC``, ``moved:PATH``, ``gzip``) so the
#: receiver can say each one once; ``KIND:ok`` says it is over.  The capture core
#: passes its ``_report_kind``, which does that and hands the message on as a
#: :data:`~.core.ReportMessage`.
ReportProblem = Callable[[str, str], None]


def _quiet_report(kind: str, message: str) -> None:
    pass


class WriterFiles(Protocol):
    """What the compressor uses of a writer: its backups' names and the lock of their renames."""

    #: The live file (named in reports).
    path: str
    #: How many backups the writer keeps (``.1`` to ``.N``).
    backups: int
    #: The path lock held by rotation and by the compressor while they rename files.
    lock: threading.Lock

    def backup_name(self, index: int, gz: bool = False) -> str: ...

    def _enforce_total(self) -> None: ...


def claim(tmp: str, create: bool) -> Optional[int]:
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


class Compressor:
    """Gzips rotated files on one background thread, so capture never waits.

    A file is found again by its inode after compression, since more rotations
    may have renamed it meanwhile; renames happen under the writer's lock.
    """

    def __init__(self, report: ReportProblem = _quiet_report, level: int = 6) -> None:
        self.report = report
        self.level = level
        self.jobs: queue.Queue[Optional[Tuple[WriterFiles, str]]] = queue.Queue()
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

    def submit(self, writer: WriterFiles, name: str) -> None:
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
        backups and compress them (:meth:`~.writer.RotatingWriter.recover`).  Waiting
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
    def _find(writer: WriterFiles, inode: str) -> Optional[str]:
        for index in range(1, writer.backups + 1):
            name = writer.backup_name(index)
            try:
                st = os.stat(name)
            except OSError:
                continue
            if f"{st.st_dev}:{st.st_ino}" == inode:
                return name
        return None

    def compress(self, writer: WriterFiles, inode: str) -> None:
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
            fd = claim(tmp, create=True)
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
