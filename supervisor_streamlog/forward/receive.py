"""``supervisor-streamlog receive``: the central sink behind rsyslog's omprog.

Role: a central rsyslog receives what every host's ``forward`` sends and
hands each message to this program through ``omprog`` with
``confirmMessages="on"`` (conf/central-rsyslog.conf, quoted in
docs/shipping.md)::

    action(type="omprog" template="streamlog_receive" confirmMessages="on"
           binary="/usr/local/bin/supervisor-streamlog receive -c /etc/streamlog/central.conf")

Each message becomes one record, written with capture's own rotating writer
into ``<logdir>/<host>/`` laid out as that host's logdir, so central files
have headers, offsets, rotation and retention like any host's and ``serve``
with ``layout = hosts`` follows them.  Invariants: every message is answered
``OK`` (written, a repeat, or refused for good) or ``ERROR`` only when the
disk may take it later; a kill at any point neither repeats nor loses a
record (the ledger).  One thread; diagnostics on stderr, never stdout.  The
protocol, the refusals and the de-duplication: :class:`Sink`.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from ..capture.core import report_to_stderr
from ..capture.writer import Compressor, RotatingWriter, content_size
from ..config import Config
from ..ondisk.files import backup_path, header_base, is_header, read_base
from ..ondisk.formats import Format, make_format, record_seconds
from ..ondisk.logdir import component
from ..ondisk.paths import quote_name, relative_log_path
from .syslog import SD_ID

#: Longest input line taken (a 64k message is at most ~6x that in JSON).
MAX_LINE = 1024 * 1024
#: Writers (open files) kept at once; the least recently used is closed.
MAX_OPEN = 256
#: The hidden directory (ignored by discovery) of the ledgers and the lock.
STATE_DIR = ".receive"
LEDGER_SIZE = 128

OK = b"OK\n"

_SD_NAME = r"[!#-<>-\\^-~]{1,32}"  # PRINTUSASCII but '=', ']', '"' (RFC 5424 6.3.2)
_SD_ELEMENT = re.compile(rf"\[({_SD_NAME})")
_SD_PARAM = re.compile(rf' ({_SD_NAME})="((?:[^"\\]|\\.)*)"', re.DOTALL)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.ASCII)
_STATUS_FIELD = re.compile(r"(\w+)=(\S*)")
_STREAMS = ("stdout", "stderr", "status")


class SDError(ValueError):
    """STRUCTURED-DATA that is not RFC 5424's."""


class Refused(ValueError):
    """A message the sink will never take (answered OK, reported)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason


def parse_sd(text: str) -> Dict[str, Dict[str, str]]:
    """RFC 5424 STRUCTURED-DATA -> ``{SD-ID: {PARAM-NAME: value}}``, values unescaped.

    ``-`` (NILVALUE) is no element.  In a value, ``\\"``, ``\\\\`` and ``\\]``
    stand for ``"``, ``\\`` and ``]``; a backslash before any other character
    is kept as it is (RFC 5424 6.3.3).  Stricter than the RFC in one point: a
    PARAM-NAME twice in one element is an error, as is an SD-ID twice (the
    RFC forbids that one too) -- which value would count is not for a sink
    to guess.
    """
    if text == "-":
        return {}
    elements: Dict[str, Dict[str, str]] = {}
    pos = 0
    if not text:
        raise SDError("empty STRUCTURED-DATA")
    while pos < len(text):
        match = _SD_ELEMENT.match(text, pos)
        if match is None:
            raise SDError(f"no SD-ELEMENT at {pos}")
        sd_id = match.group(1)
        if sd_id in elements:
            raise SDError(f"SD-ID {sd_id!r} twice")
        params: Dict[str, str] = {}
        elements[sd_id] = params
        pos = match.end()
        while True:
            param = _SD_PARAM.match(text, pos)
            if param is None:
                break
            name = param.group(1)
            if name in params:
                raise SDError(f"PARAM-NAME {name!r} twice in {sd_id}")
            value = param.group(2)
            params[name] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
            pos = param.end()
        if text[pos : pos + 1] != "]":
            raise SDError(f"bad SD-PARAM or no ']' at {pos}")
        pos += 1
    return elements


@dataclass(frozen=True)
class Message:
    """One line from rsyslog (the ``streamlog_receive`` template's fields)."""

    host: str
    app: str
    procid: str
    msgid: str
    time: str
    sd: str
    msg: bytes


def parse_message(line: bytes) -> Message:
    """A template line into a :class:`Message`; :class:`Refused` if it is not one."""
    try:
        obj = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise Refused("not JSON", str(exc)) from None
    if not isinstance(obj, dict):
        raise Refused("not a JSON object")
    fields = []
    for key in ("host", "app", "procid", "msgid", "time", "sd", "msg"):
        value = obj.get(key, "")
        if not isinstance(value, str):
            raise Refused("bad field", key)
        fields.append(value)
    host, app, procid, msgid, stamp, sd, msg = fields
    try:
        data = msg.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a \udcXX escape in the JSON text itself
        raise Refused("bad MSG", "a lone surrogate") from None
    return Message(host, app, procid, msgid, stamp, sd, data)


@dataclass(frozen=True)
class Target:
    """Where a message goes and what it says, once checked."""

    host: str  # unquoted
    group: str
    name: str
    stream: str
    offset: int
    end: int
    partial: bool
    pid: int

    @property
    def key(self) -> Tuple[str, str, str]:
        return (self.host, self.group, self.name)

    @property
    def relative(self) -> str:
        """The log file's path relative to the central logdir."""
        return os.path.join(quote_name(self.host), relative_log_path(self.group, self.name))


@functools.lru_cache(maxsize=4096)
def _origin_file(file: str) -> Tuple[str, str]:
    """``web.log`` / ``grp/web.log`` (a host's relative path) -> (group, name)
    (cached: every message of a process names the same file)."""
    parts = file.split("/")
    if not parts[-1].endswith(".log") or len(parts) > 2:
        raise Refused("bad file", file)
    name = component(parts[-1][: -len(".log")])
    group = component(parts[0]) if len(parts) == 2 else name
    if name is None or group is None or (len(parts) == 2 and group == name):
        raise Refused("bad file", file)
    return group, name


def _number(params: Dict[str, str], key: str) -> int:
    value = params.get(key, "")
    if not (value.isdigit() and value.isascii()) or len(value) > 19:
        raise Refused(f"bad {key}", repr(value))
    return int(value)


def target(message: Message) -> Target:
    """Check a message's identity and position; :class:`Refused` if it is not ours."""
    try:
        elements = parse_sd(message.sd)
    except SDError as exc:
        raise Refused("bad STRUCTURED-DATA", str(exc)) from None
    params = elements.get(SD_ID)
    if params is None:
        raise Refused("not streamlog's", f"no {SD_ID} element")
    host = unquote(message.host, errors="surrogateescape")
    if not message.host or message.host == "-":
        raise Refused("no HOSTNAME")
    group, name = _origin_file(params.get("file", ""))
    # The forwarder writes an undecodable byte of a name as its Python escape.
    if params.get("group") not in (group, group.encode("utf-8", "backslashreplace").decode()):
        raise Refused("group does not match file", repr(params.get("group")))
    stream = params.get("stream", "")
    if stream not in _STREAMS:
        raise Refused("bad stream", repr(stream))
    offset, end = _number(params, "offset"), _number(params, "end")
    if end <= offset:
        raise Refused("bad offset/end", f"{offset}/{end}")
    if b"\n" in message.msg:
        raise Refused("MSG holds a newline")
    if is_header(stream, message.msg):
        raise Refused("a file header")
    procid = message.procid
    pid = int(procid) if procid.isdigit() and procid.isascii() and len(procid) < 10 else 0
    partial = params.get("partial") == "true" and stream != "status"
    return Target(host, group, name, stream, offset, end, partial, pid)


#: The fields of a status record capture writes (a status text may say more:
#: only these become fields, so a text cannot pose as ``b64`` or ``partial``).
_STATUS_FIELDS = frozenset({"pid", "tries", "exitstatus", "expected"})
_DROPPED_FIELDS = frozenset({"bytes", "records", "first", "last", "reason"})


def _json_status(stamp: str, pid: int, data: bytes, ident: str) -> bytes:
    """A status record in JSON Lines with its exact text and its fields, as
    capture writes it (a ``STREAMLOG dropped`` notice with its figures)."""
    text = data.decode("utf-8", "replace")
    state, _, rest = text.partition(" ")
    record: Dict[str, object] = {
        "time": stamp,
        "stream": "status",
        "pid": pid,
        "text": text,
        "state": state,
    }
    allowed = _STATUS_FIELDS
    if state == "STREAMLOG":
        kind, _, rest = rest.partition(" ")
        record["pid"] = 0
        record["notice"] = kind
        allowed = _DROPPED_FIELDS if kind == "dropped" else frozenset()
    for key, value in _STATUS_FIELD.findall(rest):
        if key not in allowed or key in record:
            continue
        if value in ("true", "false"):
            record[key] = value == "true"
        elif value.isdigit() and value.isascii():
            record[key] = int(value)
        else:
            record[key] = value
    encoded = json.dumps(record, ensure_ascii=False)
    return f"{encoded[:-1]}{ident}}}\n".encode("utf-8", "surrogateescape")


def render(fmt: Format, stamp: str, tgt: Target, data: bytes, ident: str) -> bytes:
    """The record for a message in the central format (text or JSON Lines)."""
    if tgt.stream != "status":
        piece = (data, True) if tgt.partial else (data + b"\n", False)
        return fmt.records(stamp, tgt.stream, tgt.pid, [piece], ident)
    pid = tgt.pid
    match = re.search(rb"(?:^| )pid=(\d{1,9})(?: |$)", data)
    if match:
        pid = int(match.group(1))
    if fmt.name != "json":
        return b"".join((stamp.encode("ascii"), b" status ", data, b"\n"))
    return _json_status(stamp, pid, data, ident)


def log_end(path: str) -> int:
    """The end offset of a process's central log: its last record's end.

    A live file holding only its header (a rotation killed before the next
    record) ends where it begins; no live file (killed between the rename
    and the new file): the newest backup's end.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
            size = os.fstat(handle.fileno()).st_size
        base = header_base(head) or 0
        return base if head.find(b"\n") + 1 == size else base + size
    except FileNotFoundError:
        pass
    previous = backup_path(path, 1)
    if previous is None:
        return 0
    return (read_base(previous) or 0) + content_size(previous)


def micros(stamp: str) -> Optional[int]:
    """An RFC 3339 time as microseconds since the epoch, exactly (a float of
    seconds holds microseconds only until about 2242); None if it is not one.

    Only a full stamp with an offset counts (what a message carries, not
    local time); its second is read as every record's is
    (:func:`~..ondisk.formats.record_seconds`), its fraction as digits.
    """
    match = _TIME.fullmatch(stamp)
    if match is None:
        return None
    head, fraction, zone = match.groups()
    seconds = record_seconds(head + zone)  # whole seconds: exact as a float
    if seconds is None:  # month 13, hour 25...
        return None
    return int(seconds) * 1_000_000 + int((fraction or "")[:6].ljust(6, "0"))


def _readable(name: str) -> str:
    """A name as JSON records carry it: an undecodable byte (a lone surrogate,
    from a ``%XX`` of the origin's file name) as U+FFFD; the path keeps the byte."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


#: What a ledger holds: (previous end, end, position, previous latest time, latest time).
LedgerEntry = Tuple[int, int, int, int, int]


class Ledger:
    """One process's ledger, written before each record: the origin end and the
    latest record time (µs) before and after it, and the central log's end
    offset before it (``PREVIOUS_END END POSITION PREVIOUS_TIME TIME``)."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def read(self) -> Optional[LedgerEntry]:
        """The last entry, or None (new, or not a ledger)."""
        words = os.pread(self.fd, LEDGER_SIZE, 0).split()
        if len(words) != 5 or not all(word.isdigit() for word in words):
            return None
        previous, end, position, previous_time, time = (int(word) for word in words)
        return previous, end, position, previous_time, time

    def write(self, *entry: int) -> None:
        """Record that a message is about to be written (see :data:`LedgerEntry`)."""
        line = " ".join(map(str, entry)).ljust(LEDGER_SIZE - 1).encode("ascii") + b"\n"
        if os.pwrite(self.fd, line, 0) != LEDGER_SIZE:
            raise OSError(f"short write to {self.path}")

    def close(self) -> None:
        os.close(self.fd)


class Process:
    """One origin process: its central writer, its ledger, the highest end written."""

    def __init__(
        self, writer: RotatingWriter, ledger: Ledger, last_end: int, latest: int, ident: str
    ) -> None:
        self.writer = writer
        self.ledger = ledger
        self.last_end = last_end
        #: The latest record time written (µs), to tell a repeat from an origin that started over.
        self.latest = latest
        self.ident = ident

    def position(self) -> int:
        """The central log's end offset now (before a write)."""
        writer = self.writer
        if writer.fd is not None:
            return writer.base + writer.size
        return log_end(writer.path)

    def close(self) -> None:
        self.writer.close()
        self.ledger.close()


Report = Callable[[str], None]


def report(message: str) -> None:
    """Diagnostics go to stderr (omprog's ``output=`` file), never stdout."""
    report_to_stderr(message, "streamlog receive")


class Sink:
    """Turns message lines into central records; :meth:`handle` answers each one.

    The conversation (rsyslog's omprog protocol):

    - at start, once the logdir is locked, the sink writes ``OK``: rsyslog sends
      nothing before it;
    - rsyslog writes one line per message: a JSON object (the template
      ``streamlog_receive``: ``host``, ``app``, ``procid``, ``msgid``, ``time``,
      ``sd``, ``msg``), which survives any MSG bytes -- rsyslog's ``jsonf``
      escapes control characters and quotes, and leaves other bytes, invalid
      UTF-8 included, as they are; lines are decoded with ``surrogateescape`` so
      every byte comes back;
    - for each line the sink answers one line: ``OK`` once the record is written
      (or known to be written already, or refused for good), or
      ``ERROR <reason>`` when it cannot write *now* (the disk refuses): rsyslog
      then keeps the message and sends it again after ``action.resumeInterval``.

    What is refused for good (answered ``OK``, counted, and reported on stderr,
    which omprog's ``output=`` file keeps): a line that is not such a JSON
    object, a message without the ``streamlog@32473`` element or with a bad one
    (missing or non-numeric ``offset``/``end``, a ``file`` or ``group`` that is
    not a name the writer would produce, an unknown ``stream``), a MSG holding a
    newline (no record can), a status record posing as a file header, a line
    longer than :data:`MAX_LINE`.  Answering ``ERROR`` for those would make
    rsyslog send the same message again forever and hold up every host behind
    it (the reason supervisord listeners must never answer FAIL for their own
    bugs).  Messages that are not ours (syslog from elsewhere) are refused the
    same way: route only the forwarders' input to this action.

    De-duplication: the forwarder delivers at least once, and every message
    carries its origin ``offset`` and ``end``.  Per (host, process) the sink keeps
    the highest origin ``end`` written, and the latest record time, and drops
    (confirms, without writing) a message whose ``end`` is not above it -- unless
    its time is later than every record written: then the origin's log started
    over (its logdir deleted, offsets back at 0; a repeat is a record already
    written, never a later one), which is reported and taken.  That survives a
    restart of the sink: before each write it records in a small *ledger* file,
    ``<logdir>/.receive/<host>/<file>.end``, the previous end and latest time, the
    message's, and the central log's end offset before the write (one
    ``pwrite`` of 128 bytes); at start, the central log's end tells whether the
    write happened (``end > position``: the message's values count, else the
    previous ones).  So a kill at any point neither repeats nor loses a record.
    """

    def __init__(
        self,
        config: Config,
        report: Report = report,
        clock: Callable[[], float] = time.time,
        compressor: Optional[Compressor] = None,
    ) -> None:
        self.config = config
        self.report = report
        self.clock = clock
        self.format = make_format(config.format, config.timezone == "utc")
        if compressor is None and config.compress:
            compressor = Compressor(report=lambda kind, text: report(text))
        self.compressor = compressor
        self.processes: OrderedDict[Tuple[str, str, str], Process] = OrderedDict()
        self.state_dir = os.path.join(config.logdir, STATE_DIR)
        self._stamp = ""
        self.written = 0
        self.duplicates = 0
        #: Origins whose offsets went back with later times (their logdir started over).
        self.restarts = 0
        self.refused: Dict[str, int] = {}

    # ------------------------------------------------------------ processes

    def process(self, tgt: Target) -> Process:
        """The :class:`Process` of a target, opened (and recovered) on first use."""
        found = self.processes.get(tgt.key)
        if found is not None:
            self.processes.move_to_end(tgt.key)
            return found
        while len(self.processes) >= MAX_OPEN:
            _, oldest = self.processes.popitem(last=False)
            oldest.close()
        relative = tgt.relative
        path = os.path.join(self.config.logdir, relative)
        ledger = Ledger(os.path.join(self.state_dir, relative[: -len(".log")] + ".end"))
        ident = self.format.identity(*(_readable(n) for n in (tgt.name, tgt.group, tgt.host)))

        def notice(text: str, stamp: Optional[str]) -> bytes:
            return self.format.notice(stamp or self._stamp, text, ident)

        config = self.config
        writer = RotatingWriter(
            path,
            maxbytes=config.maxbytes,
            backups=config.backups,
            max_total_bytes=config.max_total_bytes,
            compressor=self.compressor,
            buffer_limit=config.write_buffer,
            report=lambda kind, text: self.report(text),
            notice=notice,
            header=True,
        )
        last_end = latest = -1
        entry = ledger.read()
        if entry is not None:
            previous, end, position, previous_latest, now_latest = entry
            if log_end(path) > position:  # the record was written
                last_end, latest = end, now_latest
            else:
                last_end, latest = previous, previous_latest
        found = self.processes[tgt.key] = Process(writer, ledger, last_end, latest, ident)
        return found

    # ------------------------------------------------------------ messages

    def refuse(self, exc: Refused, line: bytes) -> bytes:
        """Count a refused message; report the 1st, 2nd, 4th, 8th ... of each reason."""
        count = self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
        if count & (count - 1) == 0:
            shown = line[:200].decode("utf-8", "backslashreplace")
            self.report(f"refused {count} message(s) so far ({exc}); this one: {shown}")
        return OK

    def handle(self, line: bytes) -> bytes:
        """One input line (without its newline) -> the answer line for rsyslog."""
        try:
            message = parse_message(line)
            tgt = target(message)
        except Refused as exc:
            return self.refuse(exc, line)
        try:
            proc = self.process(tgt)
        except OSError as exc:
            return f"ERROR cannot open the log of {tgt.relative}: {exc}\n".encode()
        writer = proc.writer
        if writer.pending and not writer.retry():
            return f"ERROR cannot write {writer.path}: {writer.failing}\n".encode()
        stamp = message.time
        when = micros(stamp)
        if tgt.end <= proc.last_end:
            # A repeat is a record already written: its time is not after the
            # latest written.  A later one at a lower offset: the origin started over.
            if when is None or when <= proc.latest:
                self.duplicates += 1
                return OK
            self.report(
                f"{tgt.relative}: offsets went back ({tgt.offset} after {proc.last_end}) with a "
                "later time: the origin's log started over; taking its records from here"
            )
            self.restarts += 1
        if when is None:
            stamp = self.format.stamp(self.clock())
        data = render(self.format, stamp, tgt, message.msg, proc.ident)
        latest = max(proc.latest, when if when is not None else -1)
        try:
            proc.ledger.write(
                max(proc.last_end, 0), tgt.end, proc.position(), max(proc.latest, 0), max(latest, 0)
            )
        except OSError as exc:
            return f"ERROR cannot write the ledger {proc.ledger.path}: {exc}\n".encode()
        self._stamp = stamp
        writer.write(data)
        proc.last_end = tgt.end
        proc.latest = latest
        if writer.pending:  # held in memory: rsyslog keeps it until retry() writes it
            return f"ERROR cannot write {writer.path}: {writer.failing}\n".encode()
        self.written += 1
        return OK

    def close(self) -> None:
        """Close every file; let the compressor finish."""
        while self.processes:
            _, proc = self.processes.popitem()
            try:
                proc.close()
            except OSError as exc:
                self.report(f"closing {proc.writer.path}: {exc}")
        if self.compressor is not None:
            self.compressor.stop()


def lock(config: Config) -> int:
    """Hold ``<logdir>/.receive/lock`` (waiting for a previous sink to exit)."""
    state = os.path.join(config.logdir, STATE_DIR)
    os.makedirs(state, exist_ok=True)
    fd = os.open(os.path.join(state, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def serve(sink: Sink, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The omprog loop: ``OK`` first, then one answer per line until EOF."""
    stdout.write(OK)
    stdout.flush()
    while True:
        line = stdin.readline(MAX_LINE)
        if not line:
            return 0
        if not line.endswith(b"\n"):
            if len(line) < MAX_LINE:  # EOF within a line: rsyslog went away mid-message
                sink.refuse(Refused("truncated line at EOF"), line)
                return 0
            while True:  # over-long: skip to its end, answer once
                rest = stdin.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
            answer = sink.refuse(Refused(f"line over {MAX_LINE} bytes"), line)
        else:
            try:
                answer = sink.handle(line[:-1])
            except Exception as exc:  # a bug of ours: say so, do not make rsyslog loop
                sink.report(f"internal error, message confirmed unwritten: {exc!r}")
                answer = OK
        stdout.write(answer)
        stdout.flush()


def run(config: Config) -> int:
    """Entry point of ``supervisor-streamlog receive``."""
    if config.layout != "hosts":
        report(
            f"{config.source}: set layout = hosts in [streamlog]: receive writes one "
            "directory per host, which serve reads only with layout = hosts"
        )
        return 2
    os.makedirs(config.logdir, exist_ok=True)
    held = lock(config)
    sink = Sink(config)
    if sink.compressor is not None:
        sink.compressor.start()
    report(f"writing to {config.logdir} (one directory per host)")
    try:
        return serve(sink, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # rsyslog went away without closing our stdin first
        report("rsyslog closed the pipe: exiting")
        return 0
    finally:
        sink.close()
        os.close(held)
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(sink.refused.items()))
        report(
            f"done: {sink.written} written, {sink.duplicates} repeats dropped"
            + (f", refused: {counts}" if counts else "")
        )


__all__: List[str] = ["Sink", "parse_sd", "parse_message", "target", "render", "run"]
