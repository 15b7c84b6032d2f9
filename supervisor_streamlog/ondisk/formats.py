"""Record formats: how pieces become lines in the files, and how to read them back.

Role: a front end's pieces become one record per line, in the text format
(the default, below) or JSON Lines (:class:`JsonFormat`); :func:`parse` reads
either back, with or without the optional fields.  docs/format.md is the contract.

Text format (the default), one record per line, single spaces::

    2026-11-27T01:23:45.678901+00:00 stdout GET / 200
    2026-11-27T01:23:45.678901+00:00 stderr+ first 16384 bytes of a long line
    2026-11-27T01:23:45.678901+00:00 stderr ...and its end
    2026-11-27T01:23:46.000000+00:00 status EXITED pid=4242 exitstatus=1 expected=false

The stream tag ends in ``+`` when **no newline followed the text** in the
child's output: a piece of an over-long line, a prompt written out after
waiting, or the last bytes before the process ended.  The child's exact bytes
of a stream are therefore: each record's text, plus ``\\n`` unless the tag ends
in ``+``, in file order.  TEXT is the child's bytes unchanged (``\\r``, NUL,
escapes and invalid UTF-8 included) -- only ``\\n`` cannot occur in it.

Threads: parsing is pure; a :class:`Format` caches the current second's stamp,
so one thread at a time uses it (the capture core's, under its lock).  Example::

    reassemble(iter_records(blob), "stdout")   # a stream's exact bytes again
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from datetime import datetime, timezone
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

FieldValue = Union[str, int, bool]
#: The fields :meth:`JsonFormat.identity` appends to every record: no field of a
#: status record or a notice may take one of these names.
IDENTITY_FIELDS = frozenset({"program", "group", "host"})
# A str as a JSON string literal, non-ASCII kept (json.dumps(ensure_ascii=False)'s own).
_json_str = json.JSONEncoder(ensure_ascii=False).encode
# What line assembly hands on: (bytes, partial). ``partial`` marks a piece
# with no newline after it (see :mod:`supervisor_streamlog.capture.assemble`).
Piece = Tuple[bytes, bool]


def timestamp(now: float, utc: bool) -> str:
    """RFC 3339 with microseconds and a numeric offset."""
    if utc:
        moment = datetime.fromtimestamp(now, timezone.utc)
    else:
        moment = datetime.fromtimestamp(now).astimezone()
    return moment.isoformat(timespec="microseconds")


def record_seconds(stamp: str) -> Optional[float]:
    """Epoch seconds of a record's RFC 3339 time; None when it does not read.

    The one reading of a record's stamp, for every reader (the time seek, the
    histogram, ``tail``, the forwarder's age, the receiver's ledger), so they
    agree on every stamp: a ``Z`` offset is UTC on every Python version, a
    stamp without an offset is local time, and a stamp that does not read
    (damaged, another writer's, a date out of range, not a string) is None:
    what None means -- passed over, 0, "no age" -- is each caller's to say.
    """
    try:
        if stamp[-1:] in ("Z", "z"):
            stamp = stamp[:-1] + "+00:00"
        return datetime.fromisoformat(stamp).timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        return None


def status_text(state: str, fields: Dict[str, FieldValue]) -> str:
    """``EXITED pid=4242 exitstatus=1 expected=false``."""
    parts = [state]
    for key, value in fields.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}={value}")
    return " ".join(parts)


class Format:
    """Turns pieces and status changes into the bytes of whole records."""

    name = ""

    def __init__(self, utc: bool = False) -> None:
        self.utc = utc
        # stamp() formats the date, time and offset once per second (cached here).
        self._second: Optional[float] = None
        self._head = ""
        self._offset = ""

    def stamp(self, now: float) -> str:
        """The timestamp for records received at ``now``: ``timestamp(now, utc)``."""
        # Round to the microsecond exactly as datetime.fromtimestamp() does
        # (the fraction, half to even), so the text is the same as timestamp()'s.
        fraction, second = math.modf(now)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            micro -= 1_000_000
            second += 1.0
        elif micro < 0:
            micro += 1_000_000
            second -= 1.0
        if second != self._second:
            # "YYYY-MM-DDTHH:MM:SS" ".000000" "+HH:MM": the offset never changes
            # within a second.
            text = timestamp(second, self.utc)
            self._head, self._offset = text[:19], text[26:]
            self._second = second
        return f"{self._head}.{micro:06d}{self._offset}"

    def identity(self, program: str, group: str, host: Optional[str] = None) -> str:
        """One process's identity as this format writes it in each record.

        Rendered once per process and passed back as ``ident`` to
        :meth:`records`, :meth:`status` and :meth:`notice`.  The text format
        has none: its file path says which process it is.
        """
        return ""

    def records(
        self, stamp: str, stream: str, pid: int, pieces: Sequence[Piece], ident: str = ""
    ) -> bytes:
        """Render pieces of one stream, all received at ``stamp``."""
        raise NotImplementedError

    def status(
        self, stamp: str, pid: int, state: str, fields: Dict[str, FieldValue], ident: str = ""
    ) -> bytes:
        """Render a lifecycle record."""
        raise NotImplementedError

    def notice(self, stamp: str, text: str, ident: str = "") -> bytes:
        """Render a record written by streamlog itself (e.g. dropped bytes)."""
        return self.status(stamp, 0, "STREAMLOG", {"notice": text}, ident)


class TextFormat(Format):
    """``TIMESTAMP STREAM TEXT`` lines (the module docstring); no identity fields."""

    name = "text"

    def records(
        self, stamp: str, stream: str, pid: int, pieces: Sequence[Piece], ident: str = ""
    ) -> bytes:
        prefix = f"{stamp} {stream} ".encode("ascii")
        if len(pieces) == 1 and not pieces[0][1]:
            data = pieces[0][0]
            # The hot path: one run of complete lines (join: one copy fewer than +).
            return b"".join((prefix, data[:-1].replace(b"\n", b"\n" + prefix), b"\n"))
        parts = []
        cont = f"{stamp} {stream}+ ".encode("ascii")
        for data, partial in pieces:
            if partial:
                parts.append(cont + data + b"\n")
            else:
                parts.append(prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
        return b"".join(parts)

    def status(
        self, stamp: str, pid: int, state: str, fields: Dict[str, FieldValue], ident: str = ""
    ) -> bytes:
        text = status_text(state, fields).replace("\n", " ")
        return f"{stamp} status {text}\n".encode("utf-8", "surrogateescape")

    def notice(self, stamp: str, text: str, ident: str = "") -> bytes:
        text = text.replace("\n", " ")  # one record, whatever the text holds
        return f"{stamp} status STREAMLOG {text}\n".encode("utf-8", "surrogateescape")


class JsonFormat(Format):
    """JSON Lines, each record ending in the process's identity.

    JSON Lines format: one object per line with ``time``, ``stream``, ``pid`` and
    ``text``; ``"partial": true`` plays the role of ``+``; where the bytes are not
    UTF-8, ``text`` has U+FFFD replacements and ``b64`` holds the exact bytes.
    Status records add ``state`` and the event's fields; streamlog's own notices
    (a file's header, a ``dropped`` stretch) add ``notice`` and their figures.
    Every record the capture writes ends with the process's identity, ``program``,
    ``group`` and (when ``hostname`` is set) ``host``, so a file shipper needs no
    path parsing::

        {"time": "...", "stream": "stdout", "pid": 4242, "text": "GET / 200",
         "program": "web", "group": "web"}

    (one line; wrapped here).

    The identity is rendered once per process (:meth:`Format.identity`) and
    appended as text; a record costs one string literal per line (the JSON
    encoder's C function) and one join per chunk.  Readers take records with or
    without any of these fields (files written before they existed included).

    A record is built as text, not as a dict for :func:`json.dumps`: the same
    bytes ``json.dumps(record, ensure_ascii=False)`` gives, with the identity
    (rendered once per process) appended before the closing brace.
    """

    name = "json"

    def identity(self, program: str, group: str, host: Optional[str] = None) -> str:
        """``, "program": "web", "group": "web"`` (and ``, "host": ...`` if given)."""
        ident = f', "program": {_json_str(program)}, "group": {_json_str(group)}'
        if host:
            ident += f', "host": {_json_str(host)}'
        return ident

    def records(
        self, stamp: str, stream: str, pid: int, pieces: Sequence[Piece], ident: str = ""
    ) -> bytes:
        head = f'{{"time": "{stamp}", "stream": "{stream}", "pid": {pid:d}, "text": '
        end = ident + "}\n"
        out: List[str] = []
        for data, partial in pieces:
            if partial:
                out.append(self._line(head, data, ', "partial": true' + end))
                continue
            try:
                # Valid as a whole means every line is: "\n" never ends a sequence early.
                texts = data[:-1].decode("utf-8").split("\n")
            except UnicodeDecodeError:
                out.extend(self._line(head, line, end) for line in data[:-1].split(b"\n"))
                continue
            # The hot path: one literal per line, one join per run of lines.
            out.append(head)
            out.append((end + head).join(map(_json_str, texts)))
            out.append(end)
        return "".join(out).encode("utf-8")

    @staticmethod
    def _line(head: str, line: bytes, end: str) -> str:
        try:
            return head + _json_str(line.decode("utf-8")) + end
        except UnicodeDecodeError:
            text = _json_str(line.decode("utf-8", "replace"))
            b64 = base64.b64encode(line).decode("ascii")
            return f'{head}{text}, "b64": "{b64}"{end}'

    @staticmethod
    def _object(record: Dict[str, object], ident: str) -> bytes:
        text = json.dumps(record, ensure_ascii=False)
        return f"{text[:-1]}{ident}}}\n".encode("utf-8", "surrogateescape")

    def status(
        self, stamp: str, pid: int, state: str, fields: Dict[str, FieldValue], ident: str = ""
    ) -> bytes:
        record: Dict[str, object] = {
            "time": stamp,
            "stream": "status",
            "pid": pid,
            "text": status_text(state, fields),
            "state": state,
        }
        for key, value in fields.items():
            if key not in IDENTITY_FIELDS:
                record.setdefault(key, value)
        return self._object(record, ident)

    def notice(self, stamp: str, text: str, ident: str = "") -> bytes:
        """The notice's words as ``text``, and as fields: its kind as ``notice``
        and each ``key=value`` as a field (a number when all digits), so
        ``file offset=0`` adds ``"notice": "file", "offset": 0``."""
        record: Dict[str, object] = {
            "time": stamp,
            "stream": "status",
            "pid": 0,
            "state": "STREAMLOG",
            "text": f"STREAMLOG {text}",
        }
        kind, *words = text.split() or [""]
        record["notice"] = kind
        for word in words:
            key, equals, value = word.partition("=")
            if equals and key and key not in record and key not in IDENTITY_FIELDS:
                record[key] = int(value) if value.isdigit() and value.isascii() else value
        return self._object(record, ident)


def make_format(name: str, utc: bool) -> Format:
    """The :class:`Format` for the ``format`` setting."""
    if name == "json":
        return JsonFormat(utc)
    return TextFormat(utc)


# ---------------------------------------------------------------- reading back


class Record(NamedTuple):
    """One record read back from a file (a named tuple: readers make one per record)."""

    time: str
    stream: str  # stdout, stderr or status
    data: bytes  # the text's exact bytes
    partial: bool  # no newline followed it in the child's output
    pid: Optional[int] = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class RecordError(ValueError):
    """A line that is not a record of either format."""


#: A text record's stream tag: (stream, partial).
_TAGS = {
    b"stdout": ("stdout", False),
    b"stderr": ("stderr", False),
    b"status": ("status", False),
    b"stdout+": ("stdout", True),
    b"stderr+": ("stderr", True),
    b"status+": ("status", True),
}


def parse_text(line: bytes) -> Record:
    """Parse one text-format line (without its newline)."""
    parts = line.split(b" ", 2)
    if len(parts) == 3:
        stamp, tag, data = parts
    elif len(parts) == 2:
        stamp, tag = parts
        data = b""
    else:
        raise RecordError(f"not a streamlog record: {line[:80]!r}")
    known = _TAGS.get(tag)
    if known is None:
        raise RecordError(f"unknown stream tag {tag!r}")
    return Record(stamp.decode("ascii", "replace"), known[0], data, known[1])


def parse_json(line: bytes) -> Record:
    """Parse one JSON Lines record."""
    try:
        obj = json.loads(line)
        if "b64" in obj:
            data = base64.b64decode(obj["b64"], validate=True)
        else:
            data = obj["text"].encode("utf-8")
        return Record(obj["time"], obj["stream"], data, bool(obj.get("partial")), obj.get("pid"))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise RecordError(f"not a streamlog JSON record: {line[:80]!r} ({exc})") from None


def parse(line: bytes) -> Record:
    """Parse a record of either format."""
    if line.startswith(b"{"):
        return parse_json(line)
    return parse_text(line)


def iter_records(blob: bytes) -> Iterable[Record]:
    """Every record in the contents of a file (or several, concatenated)."""
    for line in blob.split(b"\n"):
        if line:
            yield parse(line)


def reassemble(records: Iterable[Record], stream: str) -> bytes:
    """The exact bytes the child wrote to ``stream``, from its records."""
    out: List[bytes] = []
    for record in records:
        if record.stream == stream:
            out.append(record.data)
            if not record.partial:
                out.append(b"\n")
    return b"".join(out)


def now() -> float:
    """The capture clock (a function so tests can replace it)."""
    return time.time()
