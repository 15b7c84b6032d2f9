"""The capture core: chunks and state changes in, records in files out.

It knows nothing of supervisord's wire protocol or its objects: the front ends
(:mod:`.listener` for an event listener, :mod:`.plugin` in-process) call

* :meth:`Capture.log` for every chunk a child wrote (raw bytes),
* :meth:`Capture.state` for every process state change,
* :meth:`Capture.tick` now and then (at least every ``partial_timeout``),
* :meth:`Capture.reopen` on SIGUSR2/SIGHUP and :meth:`Capture.close` at exit.

Per process it keeps a :class:`~.writer.RotatingWriter` and one
:class:`~.assemble.LineAssembler` per stream.  A chunk is stamped once, cut into
pieces with whole-chunk bytes operations and rendered by the configured
:class:`~.formats.Format`, with the process's identity (program, group, and
``hostname`` when set: JSON records carry it) rendered once per process.
Nothing here raises for bad input or a failing disk.

Threads: not thread-safe on purpose (the per-chunk path takes no lock).  The
listener calls it from its one thread; the plugin from supervisord's main loop
and its timer thread, under one lock of its own.  Example::

    capture = Capture(from_mapping({"logdir": "/var/log/streamlog"}, here="/etc"))
    capture.log("web", "web", "stdout", 4242, b"GET / 200\\n")  # web.log, header first
    capture.close()
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, List, Optional, Set, Tuple, TypedDict

from ..config import Config
from ..ondisk.files import HEADER_PREFIX
from ..ondisk.formats import FieldValue, Format, make_format
from ..ondisk.paths import log_path
from .assemble import LineAssembler
from .writer import Compressor, RotatingWriter, WriterStats

#: Where the capture's diagnostics go: one line of text, already worded for a
#: person (stderr for the listener, supervisord's log for the plugin).  The
#: capture itself says each kind of problem once (see ``Capture._report_kind``);
#: the writer's :data:`~.writer.ReportProblem` is the (kind, message) form it
#: hands down.
ReportMessage = Callable[[str], None]

#: States after which a process's unfinished lines will never be finished.
ENDING_STATES = frozenset({"EXITED", "STOPPED", "FATAL", "BACKOFF", "UNKNOWN"})


def status_fields(
    state: str,
    pid: Optional[int] = None,
    tries: Optional[int] = None,
    exitstatus: Optional[int] = None,
    expected: Optional[bool] = None,
) -> Dict[str, FieldValue]:
    """The fields of a ``status`` record, the same for both front ends.

    ``pid`` is left out where supervisord has none yet (STARTING, BACKOFF,
    FATAL), and ``exitstatus``/``expected`` belong to EXITED only.
    """
    fields: Dict[str, FieldValue] = {}
    if pid is not None and state not in ("STARTING", "BACKOFF", "FATAL"):
        fields["pid"] = pid
    if tries is not None:
        fields["tries"] = tries
    if state == "EXITED":
        if exitstatus is not None:
            fields["exitstatus"] = exitstatus
        if expected is not None:
            fields["expected"] = expected
    return fields


def report_to_stderr(message: str, who: str = "streamlog") -> None:
    """Default diagnostics sink: one line on stderr, never stdout (a listener's stdout is
    the protocol, and ``receive``'s is omprog's answers); ``who`` starts the line."""
    try:
        sys.stderr.write(f"{who}: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class ProcessLog:
    """The files and the unfinished lines of one process."""

    __slots__ = ("group", "name", "ident", "writer", "streams", "pid", "batch", "batch_since")

    def __init__(
        self, group: str, name: str, writer: RotatingWriter, limit: int, ident: str = ""
    ) -> None:
        self.group = group
        self.name = name
        #: Its identity as the format writes it (:meth:`~.formats.Format.identity`).
        self.ident = ident
        self.writer = writer
        self.streams = {"stdout": LineAssembler(limit), "stderr": LineAssembler(limit)}
        self.pid = 0
        self.batch: List[bytes] = []
        self.batch_since = 0.0


class CaptureStats(TypedDict):
    """The figures of :meth:`Capture.stats`.

    A TypedDict, not a dataclass: the figures leave as plain data (the
    plugin's ``streamlog.getStatus()`` over XML-RPC), and a dict needs no
    conversion on the way.
    """

    #: Chunks of captured processes received.
    chunks: int
    #: Exceptions contained (bugs of ours): see :meth:`Capture.contain`.
    internal_errors: int
    #: The writer's figures of each captured process, by ``group:name``.
    processes: Dict[str, WriterStats]


class Capture:
    """Routes chunks and state changes of the captured processes to their files."""

    def __init__(
        self,
        config: Config,
        report: ReportMessage = report_to_stderr,
        clock: Callable[[], float] = time.time,
        compressor: Optional[Compressor] = None,
        tick_on_log: bool = True,
    ) -> None:
        self.config = config
        #: Run the timers from :meth:`log` too (a listener busy with events never
        #: idles); the plugin has a timer thread and keeps supervisord's loop lean.
        self.tick_on_log = tick_on_log
        self.report = report
        self.clock = clock
        self.format: Format = make_format(config.format, config.timezone == "utc")
        if compressor is None and config.compress:
            compressor = Compressor(report=self._report_kind)
        self.compressor = compressor
        self.processes: Dict[Tuple[str, str], Optional[ProcessLog]] = {}
        self.partial_timeout = config.partial_timeout / 1000.0
        self.flush_interval = config.flush_interval / 1000.0
        self._reported: Set[str] = set()
        self._last_check = 0.0
        self._moved_second = -1
        #: Receive time of the records being written (for a new file's header).
        self._writing = 0.0
        self.chunks = 0
        self.failures = 0

    # ------------------------------------------------------------ reporting

    def _report_kind(self, kind: str, message: str) -> None:
        """Report a kind of problem once; recoveries (``...:ok``) re-arm it."""
        if kind.endswith(":ok"):
            self._reported.discard(kind[:-3])
            self.report(message)
            return
        if kind not in self._reported:
            self._reported.add(kind)
            self.report(message)

    def contain(self, where: str, exc: BaseException) -> None:
        """Count and report an exception that was caught instead of raised.

        Capture never raises into its caller.  In plugin mode the caller is
        supervisord's main loop: an exception from an output event makes it log
        "uncaptured python exception, closing channel" and close the child's
        pipe, and one from a state change escapes the loop itself.  In listener
        mode it would end the listener, and the events would be lost until
        supervisord restarted it.  So every entry point of the core, and every
        callback of a front end, ends in ``except Exception as exc:
        capture.contain("where", exc)``.  Each kind of failure (place and
        exception type) is reported once; all are counted in
        ``stats()["internal_errors"]``.
        """
        self.failures += 1
        self._report_kind(
            f"bug:{where}:{type(exc).__name__}",
            f"internal error in {where}, capture continues: {exc!r}",
        )

    # ------------------------------------------------------------ routing

    def process(self, group: str, name: str) -> Optional[ProcessLog]:
        """The :class:`ProcessLog` of ``group:name``, or None if not captured."""
        key = (group, name)
        try:
            return self.processes[key]
        except KeyError:
            pass
        plog: Optional[ProcessLog] = None
        if self.config.captures(group, name):
            path = log_path(self.config.logdir, group, name)
            ident = self.format.identity(name, group, self.config.hostname)

            def notice(text: str, stamp: Optional[str]) -> bytes:
                return self._notice(text, stamp, ident)

            writer = RotatingWriter(
                path,
                maxbytes=self.config.maxbytes,
                backups=self.config.backups,
                max_total_bytes=self.config.max_total_bytes,
                compressor=self.compressor,
                buffer_limit=self.config.write_buffer,
                report=self._report_kind,
                notice=notice,
                header=True,
            )
            plog = ProcessLog(group, name, writer, self.config.max_line_length, ident)
        self.processes[key] = plog
        return plog

    def _notice(self, text: str, stamp: Optional[str] = None, ident: str = "") -> bytes:
        if stamp is not None:
            return self.format.notice(stamp, text, ident)
        # A file's header is written as the first record arrives: give it that
        # record's time, so a file's timestamps never go backwards.
        when = self._writing if text.startswith(HEADER_PREFIX) and self._writing else self.clock()
        return self.format.notice(self.format.stamp(when), text, ident)

    def _emit(self, plog: ProcessLog, data: bytes, now: float) -> None:
        if not self.flush_interval:
            self._writing = now
            plog.writer.write(data)
            return
        if not plog.batch:
            plog.batch_since = now
        plog.batch.append(data)

    def _flush_batch(self, plog: ProcessLog) -> None:
        if plog.batch:
            self._writing = plog.batch_since
            data = b"".join(plog.batch)
            plog.batch.clear()
            plog.writer.write(data)

    # ------------------------------------------------------------ events

    def log(
        self, group: str, name: str, stream: str, pid: int, data: bytes, now: Optional[float] = None
    ) -> None:
        """One chunk of a child's ``stdout`` or ``stderr``, as read from the pipe."""
        try:
            plog = self.process(group, name)
            if plog is None or not data:
                return
            when = self.clock() if now is None else now
            self.chunks += 1
            plog.pid = pid
            pieces = plog.streams[stream].feed(data, when)
            if pieces:
                stamp = self.format.stamp(when)
                self._emit(plog, self.format.records(stamp, stream, pid, pieces, plog.ident), when)
            if self.tick_on_log and when - self._last_check >= 0.1:
                self.tick(when)
        except Exception as exc:
            self.contain("log", exc)

    def state(
        self,
        group: str,
        name: str,
        state: str,
        pid: int,
        fields: Optional[Dict[str, FieldValue]] = None,
        now: Optional[float] = None,
    ) -> None:
        """A state change: write a ``status`` record (after any unfinished lines)."""
        try:
            plog = self.process(group, name)
            if plog is None:
                return
            when = self.clock() if now is None else now
            stamp = self.format.stamp(when)
            if state in ENDING_STATES or state == "STARTING":
                self._flush_partials(plog, stamp)
            if pid:
                plog.pid = pid
            record = self.format.status(stamp, pid, state, dict(fields or {}), plog.ident)
            self._emit(plog, record, when)
            if state in ENDING_STATES:
                self._flush_batch(plog)
        except Exception as exc:
            self.contain("state", exc)

    def _flush_partials(self, plog: ProcessLog, stamp: str) -> None:
        for stream, assembler in plog.streams.items():
            pieces = assembler.flush()
            if pieces:
                record = self.format.records(stamp, stream, plog.pid, pieces, plog.ident)
                self._emit(plog, record, self.clock())

    def tick(self, now: Optional[float] = None) -> None:
        """Timers: write lines that waited too long, flush batches, retry the disk."""
        try:
            when = self.clock() if now is None else now
            self._last_check = when
            check_files = False
            for plog in self.processes.values():
                if plog is None:
                    continue
                for stream, assembler in plog.streams.items():
                    if assembler.due(when, self.partial_timeout):
                        pieces = assembler.flush()
                        stamp = self.format.stamp(when)
                        record = self.format.records(stamp, stream, plog.pid, pieces, plog.ident)
                        self._emit(plog, record, when)
                if plog.batch and when - plog.batch_since >= self.flush_interval:
                    self._flush_batch(plog)
                writer = plog.writer
                if writer.failing or writer.pending:
                    writer.retry()
                check_files = True
            if check_files and int(when) != self._moved_second:
                self._moved_second = int(when)
                for plog in self.processes.values():
                    if plog is not None:
                        plog.writer.check_moved()
        except Exception as exc:
            self.contain("tick", exc)

    def forget_group(self, group: str) -> None:
        """A group was removed (``supervisorctl update``): finish and close its files."""
        for key in [key for key in self.processes if key[0] == group]:
            plog = self.processes.pop(key)
            if plog is not None:
                try:
                    self._flush_partials(plog, self.format.stamp(self.clock()))
                    self._flush_batch(plog)
                    plog.writer.close()
                except Exception as exc:
                    self.contain("forget_group", exc)

    def reopen(self) -> None:
        """Reopen every file by name (SIGUSR2/SIGHUP, for external logrotate)."""
        for plog in self.processes.values():
            if plog is not None:
                try:
                    self._flush_batch(plog)
                    plog.writer.reopen()
                except Exception as exc:
                    self.contain("reopen", exc)

    def close(self) -> None:
        """Write every unfinished line and batch, then close the files."""
        for plog in self.processes.values():
            if plog is None:
                continue
            try:
                self._flush_partials(plog, self.format.stamp(self.clock()))
                self._flush_batch(plog)
                plog.writer.close()
            except Exception as exc:
                self.contain("close", exc)

    def stats(self) -> CaptureStats:
        """Counters for status calls and metrics."""
        processes: Dict[str, WriterStats] = {}
        for (group, name), plog in self.processes.items():
            if plog is not None:
                processes[f"{group}:{name}"] = plog.writer.stats()
        return CaptureStats(chunks=self.chunks, internal_errors=self.failures, processes=processes)
