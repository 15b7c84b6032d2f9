"""Listener mode: capture through supervisord's event listener protocol.

Add to supervisord.conf (and ``stdout_events_enabled = true`` /
``stderr_events_enabled = true`` to every ``[program:x]`` to capture)::

    [eventlistener:streamlog]
    command = supervisor-streamlog listen -c %(here)s/supervisord.conf
    events = PROCESS_LOG,PROCESS_STATE
    buffer_size = 65536
    stdout_logfile = NONE
    stderr_logfile = %(here)s/streamlog-listener.err

The protocol, and what bites:

* the header's ``len`` counts *characters*, so the payload is read from a text
  stream, with ``newline="\\n"`` so ``\\r\\n`` is not translated;
* a chunk that was not valid UTF-8 arrives as ``Undecodable: b'...'`` and is
  turned back into its bytes (only when those bytes are really not UTF-8, so
  a child that prints that text literally keeps its text);
* stdout carries protocol tokens and nothing else; diagnostics go to stderr;
* an exception while handling an event is reported and the event is still
  answered ``OK`` -- ``FAIL`` would make supervisord re-send it forever;
* SIGTERM writes the unfinished lines and exits cleanly; SIGUSR2 or SIGHUP
  reopens the files (for an external logrotate).

Threads: one, the protocol loop, which also runs the core's timers; gzip runs
on the compressor's thread.
"""

from __future__ import annotations

import ast
import io
import os
import re
import select
import signal
import socket
import sys
from typing import Any, Callable, Dict, Optional, TextIO, Tuple

from ..rpc import supervisor_proxy
from .core import Capture, ReportMessage, report_to_stderr, status_fields

READY = "READY\n"
OK = "RESULT 2\nOK"
UNDECODABLE = "Undecodable: "
_UNDECODABLE_B = UNDECODABLE + "b"

#: Seconds an XML-RPC call (the exit status lookup) may take.
RPC_TIMEOUT = 5.0
#: How often the loop wakes when no event comes, for partial-line timeouts.
IDLE_TICK = 0.1

Headers = Dict[str, str]
_LEN = re.compile(r"(?:^|\s)len:(\d+)(?:\s|$)")
RpcFactory = Callable[[], Any]


class ProtocolError(ValueError):
    """A header line or payload that does not follow the protocol."""


def parse_headers(line: str) -> Headers:
    """``key:value key:value`` -> dict; raises :class:`ProtocolError`."""
    headers: Headers = {}
    for token in line.split():
        key, sep, value = token.partition(":")
        if not sep or not key:
            raise ProtocolError(f"bad header token {token[:60]!r}")
        headers[key] = value
    return headers


def decode_data(text: str) -> bytes:
    """The bytes of a PROCESS_LOG chunk, undoing supervisord's ``Undecodable`` repr."""
    if text.startswith(_UNDECODABLE_B) and len(text) > len(UNDECODABLE) + 2:
        try:
            value = ast.literal_eval(text[len(UNDECODABLE) :])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, bytes):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return value  # supervisord could not decode it: these are the bytes
    return text.encode("utf-8", "surrogateescape")


def split_log_payload(payload: str) -> Tuple[Headers, bytes]:
    """PROCESS_LOG payload -> (its header fields, the chunk's bytes)."""
    head, sep, data = payload.partition("\n")
    if not sep:
        raise ProtocolError("PROCESS_LOG payload without a header line")
    return parse_headers(head), decode_data(data)


def _pid(value: Optional[str]) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


class Listener:
    """Translates events into :class:`~.core.Capture` calls.

    Streams, the readiness wait and the XML-RPC proxy are injected so the loop
    runs against in-memory streams in tests.
    """

    def __init__(
        self,
        capture: Capture,
        stdin: TextIO,
        stdout: TextIO,
        wait: Optional[Callable[[float], bool]] = None,
        rpc: Optional[RpcFactory] = None,
        report: ReportMessage = report_to_stderr,
        own: Optional[Tuple[str, str]] = None,
    ) -> None:
        self.capture = capture
        #: (group, name) of this listener: its own state changes are not logged.
        self.own = own
        self.stdin = stdin
        self.stdout = stdout
        self.wait = wait
        self.rpc = rpc
        self.report = report
        self.stopping = False
        self.reopen_requested = False
        self.events = 0
        self._reported: set = set()

    # ------------------------------------------------------------ one event

    def handle_event(self, headers: Headers, payload: str) -> None:
        """Handle one event; raises only for events that make no sense."""
        name = headers.get("eventname", "")
        if name.startswith("PROCESS_LOG_"):
            fields, data = split_log_payload(payload)
            stream = fields.get("channel") or name[len("PROCESS_LOG_") :].lower()
            if stream not in ("stdout", "stderr"):
                raise ProtocolError(f"unknown channel {stream!r}")
            process = fields.get("processname", "")
            self.capture.log(
                fields.get("groupname") or process, process, stream, _pid(fields.get("pid")), data
            )
        elif name.startswith("PROCESS_STATE_"):
            fields = parse_headers(payload)
            state = name[len("PROCESS_STATE_") :]
            process = fields.get("processname", "")
            group = fields.get("groupname") or process
            if (group, process) == self.own:
                return
            pid = _pid(fields.get("pid"))
            extra = status_fields(
                state,
                pid=pid if "pid" in fields else None,
                tries=_pid(fields["tries"]) if "tries" in fields else None,
                exitstatus=self._exit_status(group, process) if state == "EXITED" else None,
                expected=fields.get("expected") == "1",
            )
            self.capture.state(group, process, state, pid, extra)
        # Anything else (TICK, ...) is acknowledged and ignored.

    def _exit_status(self, group: str, name: str) -> Optional[int]:
        """The exit status is not in the event: ask supervisord for it.

        supervisord answers for the process as it is *now*, and events queue:
        by the time this EXITED event is handled the program may have been
        started again.  So the answer is used only if it is still about the
        exited run: state EXITED and no pid (supervisord clears the pid when it
        reaps a process; a later run has its own pid from its spawn on, and
        BACKOFF, FATAL, STOPPED or STARTING mean a later attempt).  Otherwise
        no exit status is written rather than another run's.  (One case
        remains that supervisord's answer cannot tell apart: a later run that
        has also exited already; it needs a whole run to pass while this event
        waits in the queue.)
        """
        if self.rpc is None:
            return None
        try:
            info = self.rpc().supervisor.getProcessInfo(f"{group}:{name}")
            if info.get("statename") != "EXITED" or info.get("pid"):
                return None  # a later run: its status is not this one's
            return int(info["exitstatus"])
        except Exception as exc:
            self._report_once("rpc", f"cannot read exit status over XML-RPC: {exc!r}")
            return None

    def recover_files(self) -> None:
        """Make a writer for every captured process now, not at its first event.

        Making one finishes what a crash left half done -- a killed
        compression's ``.gz.tmp``, plain backups still to compress (the
        previous listener was stopped, perhaps killed, at a reload) -- also for
        a program that never writes again.  The names come from supervisord.
        """
        if self.rpc is None:
            return
        try:
            infos = self.rpc().supervisor.getAllProcessInfo()
        except Exception as exc:
            self._report_once("rpc", f"cannot list processes over XML-RPC: {exc!r}")
            return
        for info in infos:
            name = str(info.get("name", ""))
            group = str(info.get("group") or name)
            if name and (group, name) != self.own:
                self.capture.process(group, name)

    def _report_once(self, kind: str, message: str) -> None:
        if kind not in self._reported:
            self._reported.add(kind)
            self.report(message)

    # ------------------------------------------------------------ the loop

    def _send(self, token: str) -> None:
        self.stdout.write(token)
        self.stdout.flush()

    def serve_one(self) -> bool:
        """Read, handle and acknowledge one event; False at end of input.

        Raises :class:`ProtocolError` when the header has no readable ``len``:
        the stream is then out of step and only a restart can bring it back.
        """
        line = self.stdin.readline()
        if not line:
            return False
        match = _LEN.search(line)
        if match is None:
            raise ProtocolError(f"event header without a valid len: {line[:120]!r}")
        payload = self.stdin.read(int(match.group(1)))
        self.events += 1
        try:
            headers = parse_headers(line)
        except ProtocolError:
            self._report_once(
                "header", f"ignoring an event with a malformed header: {line[:120]!r}"
            )
        else:
            try:
                self.handle_event(headers, payload)
            except Exception as exc:
                kind = f"event:{type(exc).__name__}"
                self._report_once(
                    kind,
                    f"could not handle {headers.get('eventname')} event (acknowledged anyway): "
                    f"{exc!r}",
                )
        self._send(OK + READY)
        return True

    def run(self) -> int:
        """Speak the protocol until EOF or SIGTERM; return the exit status."""
        self._send(READY)
        try:
            try:
                self.recover_files()
            except Exception as exc:
                self.capture.contain("listener.recover", exc)
            while not self.stopping:
                if self.reopen_requested:
                    self.reopen_requested = False
                    self.capture.reopen()
                if self.wait is not None and not self.wait(IDLE_TICK):
                    self.capture.tick()
                    continue
                if not self.serve_one():
                    break
        except ProtocolError as exc:
            # Answering would put supervisord and us further out of step: exit,
            # and supervisord restarts the listener (and re-sends its event).
            self.report(f"{exc}; exiting so supervisord restarts the listener in step")
            return 2
        finally:
            self.capture.close()
            if self.capture.compressor is not None:
                self.capture.compressor.stop()
        return 0


def _wait_for(fd: int) -> Callable[[float], bool]:
    # poll(), not select(): registered once, half the cost per event.
    poller = select.poll()
    poller.register(fd, select.POLLIN)

    def wait(timeout: float) -> bool:
        try:
            ready = poller.poll(timeout * 1000.0)
        except InterruptedError:
            return False
        return bool(ready)

    return wait


def run(capture: Capture) -> int:
    """Run the listener on this process's real stdin/stdout."""
    # Only the XML-RPC exit-status lookup opens sockets: never wait long on it.
    socket.setdefaulttimeout(RPC_TIMEOUT)
    stdin = io.TextIOWrapper(
        sys.stdin.buffer, encoding="utf-8", errors="surrogateescape", newline="\n"
    )
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", write_through=True)
    # Nothing else may ever write to the protocol channel: send stray prints to stderr.
    sys.stdout = sys.stderr
    own = None
    if os.environ.get("SUPERVISOR_PROCESS_NAME"):
        name = os.environ["SUPERVISOR_PROCESS_NAME"]
        own = (os.environ.get("SUPERVISOR_GROUP_NAME") or name, name)
    listener = Listener(
        capture,
        stdin,
        stdout,
        wait=_wait_for(stdin.fileno()),
        rpc=supervisor_proxy(capture.config.source),
        own=own,
    )

    def stop(signum: int, frame: Any) -> None:
        listener.stopping = True

    def reopen(signum: int, frame: Any) -> None:
        listener.reopen_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR2, reopen)
    signal.signal(signal.SIGHUP, reopen)
    if capture.compressor is not None:
        capture.compressor.start()
    return listener.run()
