"""RFC 5424 messages from records: what a receiver sees of each record (pure functions).

Role: one record becomes one message, its parts described at :class:`Encoder`::

    <14>1 2026-11-27T01:23:45.678901+00:00 web1 web 4242 stdout [streamlog@32473
    group="web" stream="stdout" offset="1200" end="1251" file="web.log"] GET / 200

(one line; wrapped here).  File headers (``STREAMLOG file offset=N``) are
bookkeeping, not output: :func:`wanted` says which entries to send.

Invariants: MSG is the record's exact bytes (no BOM; invalid UTF-8, NUL, ``\\r``
and escapes pass); names outside printable ASCII are ``%XX``-quoted and can be
decoded back; every message carries its record's ``offset`` and ``end``, so a
receiver drops what a reconnect sent twice.

Threads: none; pure functions, called from a lane's reading thread.  The
per-origin parts are rendered once (:func:`encoder` caches an :class:`Encoder`
per origin); a stdout/stderr line becomes a message by one bytes formatting
(:meth:`Encoder.text_line`, :meth:`Encoder.json_line`), status records, which
are rare, are parsed.  Figures: docs/benchmarks.md, "Forwarder".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Tuple

from ..ondisk.files import Entry, is_header

# 32473 is the example Private Enterprise Number IANA reserves for
# documentation (RFC 5612); streamlog has no number of its own.
SD_ID = "streamlog@32473"
FACILITY_USER = 1
APP_NAME_MAX = 48
HOSTNAME_MAX = 255
NIL = "-"

#: Scans a JSON record without json.loads's detour (encoding detection,
#: whitespace matches): json_line wants one object spanning the whole line.
_JSON = json.JSONDecoder()
#: A fast path's preformatted parts: (PRI, from MSGID to offset=", the rest).
Parts = Tuple[bytes, bytes, bytes]

_PRINTUSASCII = frozenset(chr(code) for code in range(33, 127)) - {"%"}
_STATUS_FIELD = re.compile(rb"(\w+)=(\S*)")
# status fields carried into the structured data, and their SD-PARAM names
_STATUS_PARAMS = {
    b"pid": "",  # PROCID, not a param
    b"exitstatus": "exitstatus",
    b"expected": "expected",
    b"bytes": "dropped_bytes",
    b"records": "dropped_records",
}


@dataclass(frozen=True)
class Origin:
    """Who wrote the record: the host and the process, and its log file."""

    host: str  # HOSTNAME
    group: str
    name: str  # APP-NAME is the program name
    file: str  # the log file's path relative to logdir, e.g. "web.log" or "grp/web.log"


@dataclass(frozen=True)
class Severities:
    """Syslog severities (0 emergency .. 7 debug) by stream."""

    stdout: int = 6  # info
    stderr: int = 4  # warning
    status: int = 5  # notice
    unexpected_exit: int = 3  # error: EXITED with expected=false
    dropped: int = 4  # warning: a "STREAMLOG dropped ..." notice


def header_name(value: str, limit: int) -> str:
    """``value`` as a HOSTNAME or APP-NAME: printable US-ASCII, at most ``limit`` long.

    Other characters (and ``%``) become ``%XX`` per UTF-8 byte (an
    undecodable byte of a name, held as a lone surrogate, as that byte); a
    longer value is cut before the first character that does not fit whole;
    an empty value is the NILVALUE ``-``.
    """
    out = []
    size = 0
    for char in value:
        if char in _PRINTUSASCII:
            piece = char
        else:
            try:
                raw = char.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a surrogate that stands for no byte
                raw = char.encode("utf-8", "surrogatepass")
            piece = "".join(f"%{byte:02X}" for byte in raw)
        size += len(piece)
        if size > limit:
            break
        out.append(piece)
    return "".join(out) or NIL


def sd_escape(value: str) -> str:
    """An SD-PARAM value: ``"``, ``\\`` and ``]`` escaped with a backslash (RFC 5424 6.3.3).

    It must be UTF-8: a lone surrogate (an undecodable byte of a file name)
    is written as its Python escape, ``\\udcff``.
    """
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def wanted(entry: Entry) -> bool:
    """Whether an entry is sent: every record but the files' header records."""
    record = entry.record
    return not is_header(record.stream, record.data)


def _status_facts(data: bytes) -> Tuple[Optional[int], str, bool, bool]:
    """From a status text: (pid, extra SD params, unexpected exit, dropped notice)."""
    state, _, rest = data.partition(b" ")
    fields: Dict[bytes, bytes] = dict(_STATUS_FIELD.findall(rest))
    pid_text = fields.get(b"pid", b"")
    pid = int(pid_text) if pid_text.isdigit() and int(pid_text) > 0 else None
    params = [f' state="{sd_escape(state.decode("utf-8", "replace"))}"']
    for key, name in _STATUS_PARAMS.items():
        if name and key in fields:
            value = sd_escape(fields[key].decode("utf-8", "replace"))
            params.append(f' {name}="{value}"')
    unexpected = state == b"EXITED" and fields.get(b"expected") == b"false"
    dropped = state == b"STREAMLOG" and rest.startswith(b"dropped ")
    return pid, "".join(params), unexpected, dropped


class Encoder:
    """Renders the records of one origin; the per-origin parts are built once.

    The parts of a message:

    - PRI: ``facility * 8 + severity``; severities by stream in :class:`Severities`
      (stdout info, stderr warning, status notice, an unexpected exit error, a
      ``STREAMLOG dropped`` notice warning).
    - TIMESTAMP: the record's time as stored (RFC 3339, microseconds, numeric
      offset), ``-`` when it has none.
    - HOSTNAME and APP-NAME (the program name): RFC 5424 allows only printable
      US-ASCII (``!`` to ``~``) there, at most 255 and 48 characters.  Every other
      character, and ``%``, is written as ``%XX`` per UTF-8 byte (as in the file
      names), so ``my app`` is sent as ``my%20app`` and can be decoded back with
      ``urllib.parse.unquote``; a longer name is cut at a whole character.
    - PROCID: for a status record the ``pid=`` in its text; else the ``pid``
      given, else the record's own (JSON format); ``-`` when none is known.
    - MSGID: ``stdout``, ``stderr`` or ``status``.
    - STRUCTURED-DATA: one element ``streamlog@32473`` with group, stream, the
      record's ``offset`` and ``end`` in the process's log and the log ``file``
      (relative to logdir), so a receiver can de-duplicate what a reconnect sent
      twice; ``partial="true"`` on a piece that no newline followed (join it with
      the next one of its stream); for status records ``state`` and, when present,
      ``exitstatus``, ``expected`` and a dropped notice's ``dropped_bytes`` and
      ``dropped_records``.  Values are escaped as RFC 5424 says (``"``, ``\\``
      and ``]`` get a backslash).
    - MSG: the record's exact bytes, without a BOM: RFC 5424 allows any octets
      there when no BOM announces UTF-8, and the child's output may be invalid
      UTF-8, hold NUL, ``\\r`` or escapes (a piece never holds ``\\n``).
    """

    def __init__(
        self, origin: Origin, severities: Severities = Severities(), facility: int = FACILITY_USER
    ) -> None:
        if not 0 <= facility <= 23:
            raise ValueError(f"syslog facility {facility} is not 0..23")
        self.origin = origin
        self.facility = facility
        self.severities = severities
        base = facility * 8
        self._pri = {
            "stdout": f"<{base + severities.stdout}>1 ",
            "stderr": f"<{base + severities.stderr}>1 ",
            "status": f"<{base + severities.status}>1 ",
        }
        self._unexpected = f"<{base + severities.unexpected_exit}>1 "
        self._dropped = f"<{base + severities.dropped}>1 "
        host = header_name(origin.host, HOSTNAME_MAX)
        app = header_name(origin.name, APP_NAME_MAX)
        self._names = f" {host} {app} "
        self._group = f' [{SD_ID} group="{sd_escape(origin.group)}" stream="'
        self._file = f'" file="{sd_escape(origin.file)}"'
        # The fast paths' parts, per text tag and per JSON (stream, partial):
        # (PRI, from MSGID to offset=", the rest)
        self._text: Dict[bytes, Parts] = {}
        self._json: Dict[Tuple[str, bool], Parts] = {}
        for stream in ("stdout", "stderr"):
            for partial, tag, extra in (
                (False, stream, ""),
                (True, stream + "+", ' partial="true"'),
            ):
                parts = (
                    self._pri[stream].encode(),
                    f' {stream}{self._group}{stream}" offset="'.encode(),
                    f"{self._file}{extra}]".encode(),
                )
                self._text[tag.encode()] = parts
                self._json[stream, partial] = parts
        self._names_bytes = self._names.encode()

    def encode(self, entry: Entry, pid: Optional[int] = None) -> bytes:
        """The RFC 5424 message for ``entry``; ``pid`` when the record has none."""
        record = entry.record
        stream = msgid = record.stream
        stamp = record.time
        # Records come from files on disk: a JSON record may hold anything.
        if type(stamp) is not str or not stamp or not stamp.isascii() or " " in stamp:
            stamp = NIL
        procid: object = pid or record.pid
        extra = ' partial="true"' if record.partial else ""
        pri = self._pri.get(stream) if type(stream) is str else None
        if pri is None:  # not a stream we know (a hand-made JSON record)
            pri = self._pri["status"]
            msgid = header_name(str(stream), 32)
            stream = sd_escape(str(stream))
        elif stream == "status":
            status_pid, params, unexpected, dropped = _status_facts(record.data)
            procid = status_pid or procid
            extra += params
            if unexpected:
                pri = self._unexpected
            elif dropped:
                pri = self._dropped
        if type(procid) is not int or procid <= 0:
            procid = NIL
        head = (
            f"{pri}{stamp}{self._names}{procid} {msgid}{self._group}{stream}"
            f'" offset="{entry.offset}" end="{entry.end}{self._file}{extra}]'
        ).encode()
        if record.data:
            return b"".join((head, b" ", record.data))
        return head

    def text_line(self, offset: int, end: int, line: bytes, pid: Optional[int]) -> Optional[bytes]:
        """:meth:`encode` of a text-format stdout or stderr line, straight from its bytes.

        The same message as parsing the line and encoding its entry, without
        the record, the entry and the string round trip (the forwarder's
        per-record cost: ``bench/records.py``).  None for any other line
        (status, JSON, a time stamp that is not ASCII, not a record): parse it.
        """
        parts = line.split(b" ", 2)
        if len(parts) != 3:
            return None
        stamp, tag, data = parts
        text = self._text.get(tag)
        if text is None or not stamp.isascii() or stamp[:1] in (b"", b"{"):
            return None  # ("{": parse() reads it as JSON)
        return self._fast(text, stamp, pid, offset, end, data)

    def json_line(self, offset: int, end: int, line: bytes, pid: Optional[int]) -> Optional[bytes]:
        """:meth:`encode` of a JSON Lines stdout or stderr record, straight from its line.

        The same message as :func:`~..ondisk.formats.parse_json` and
        :meth:`encode` give (``pid`` as the forwarder passes it: used when the
        record has none), with one scan of the JSON and no record, entry or
        string round trip.  None for any other line (status, ``b64`` data,
        a field of an unusual type, not JSON): parse it.
        """
        try:
            text = line.decode("utf-8")
            obj, stop = _JSON.raw_decode(text)
        except ValueError:  # not UTF-8, not JSON
            return None
        if type(obj) is not dict or stop != len(text) or "b64" in obj:
            return None
        stamp, stream, data = obj.get("time"), obj.get("stream"), obj.get("text")
        if type(stamp) is not str or type(stream) is not str or type(data) is not str:
            return None
        parts = self._json.get((stream, bool(obj.get("partial"))))
        if parts is None or not stamp or not stamp.isascii() or " " in stamp:
            return None
        own = obj.get("pid")
        try:
            return self._fast(
                parts,
                stamp.encode(),
                (own if own is not None else pid) or own,
                offset,
                end,
                data.encode("utf-8"),
            )
        except UnicodeEncodeError:  # a lone surrogate: parse_json refuses the record
            return None

    def _fast(
        self, parts: Parts, stamp: bytes, pid: object, offset: int, end: int, data: bytes
    ) -> bytes:
        pri, middle, rest = parts
        procid = b"%d" % pid if type(pid) is int and pid > 0 else b"-"
        space = b" " if data else b""  # no MSG, no space before it (as encode())
        return b'%b%b%b%b%b%d" end="%d%b%b%b' % (
            pri,
            stamp,
            self._names_bytes,
            procid,
            middle,
            offset,
            end,
            rest,
            space,
            data,
        )


@lru_cache(maxsize=4096)
def encoder(
    origin: Origin, severities: Severities = Severities(), facility: int = FACILITY_USER
) -> Encoder:
    """The :class:`Encoder` of an origin (cached: build the per-origin parts once)."""
    return Encoder(origin, severities, facility)


# The last encoder message() used: a batch is usually of one process, so the
# same Origin object comes again and again (identity is cheaper than a hash).
_last: Tuple[object, object, int, Optional[Encoder]] = (None, None, -1, None)


def message(
    origin: Origin,
    entry: Entry,
    pid: Optional[int],
    severities: Severities = Severities(),
    facility: int = FACILITY_USER,
) -> bytes:
    """The RFC 5424 message for ``entry`` of ``origin`` (see the module docstring)."""
    global _last
    last_origin, last_severities, last_facility, last = _last
    if last is None or not (
        origin is last_origin and severities is last_severities and facility == last_facility
    ):
        last = encoder(origin, severities, facility)
        _last = (origin, severities, facility, last)
    return last.encode(entry, pid)
