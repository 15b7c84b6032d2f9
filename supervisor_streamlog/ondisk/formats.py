"""Record formats: how pieces become lines in the files, and how to read them back.

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

JSON Lines format: one object per line with ``time``, ``stream``, ``pid`` and
``text``; ``"partial": true`` plays the role of ``+``; where the bytes are not
UTF-8, ``text`` has U+FFFD replacements and ``b64`` holds the exact bytes.
Status records add ``state`` and the event's fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

FieldValue = Union[str, int, bool]
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

    def records(self, stamp: str, stream: str, pid: int, pieces: Sequence[Piece]) -> bytes:
        """Render pieces of one stream, all received at ``stamp``."""
        raise NotImplementedError

    def status(self, stamp: str, pid: int, state: str, fields: Dict[str, FieldValue]) -> bytes:
        """Render a lifecycle record."""
        raise NotImplementedError

    def notice(self, stamp: str, text: str) -> bytes:
        """Render a record written by streamlog itself (e.g. dropped bytes)."""
        return self.status(stamp, 0, "STREAMLOG", {"notice": text})


class TextFormat(Format):
    name = "text"

    def records(self, stamp: str, stream: str, pid: int, pieces: Sequence[Piece]) -> bytes:
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

    def status(self, stamp: str, pid: int, state: str, fields: Dict[str, FieldValue]) -> bytes:
        text = status_text(state, fields).replace("\n", " ")
        return f"{stamp} status {text}\n".encode("utf-8", "surrogateescape")

    def notice(self, stamp: str, text: str) -> bytes:
        text = text.replace("\n", " ")  # one record, whatever the text holds
        return f"{stamp} status STREAMLOG {text}\n".encode("utf-8", "surrogateescape")


class JsonFormat(Format):
    name = "json"

    @staticmethod
    def _line(stamp: str, stream: str, pid: int, line: bytes, partial: bool) -> bytes:
        record: Dict[str, object] = {"time": stamp, "stream": stream, "pid": pid}
        try:
            record["text"] = line.decode("utf-8")
        except UnicodeDecodeError:
            record["text"] = line.decode("utf-8", "replace")
            record["b64"] = base64.b64encode(line).decode("ascii")
        if partial:
            record["partial"] = True
        return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"

    def records(self, stamp: str, stream: str, pid: int, pieces: Sequence[Piece]) -> bytes:
        out = []
        for data, partial in pieces:
            if partial:
                out.append(self._line(stamp, stream, pid, data, True))
            else:
                for line in data[:-1].split(b"\n"):
                    out.append(self._line(stamp, stream, pid, line, False))
        return b"".join(out)

    def status(self, stamp: str, pid: int, state: str, fields: Dict[str, FieldValue]) -> bytes:
        record: Dict[str, object] = {
            "time": stamp,
            "stream": "status",
            "pid": pid,
            "text": status_text(state, fields),
            "state": state,
        }
        for key, value in fields.items():
            record.setdefault(key, value)
        return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n"

    def notice(self, stamp: str, text: str) -> bytes:
        record = {
            "time": stamp,
            "stream": "status",
            "pid": 0,
            "state": "STREAMLOG",
            "text": f"STREAMLOG {text}",
        }
        return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def make_format(name: str, utc: bool) -> Format:
    """The :class:`Format` for the ``format`` setting."""
    if name == "json":
        return JsonFormat(utc)
    return TextFormat(utc)


# ---------------------------------------------------------------- reading back


@dataclass(frozen=True)
class Record:
    """One record read back from a file."""

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


def parse_text(line: bytes) -> Record:
    """Parse one text-format line (without its newline)."""
    parts = line.split(b" ", 2)
    if len(parts) < 2:
        raise RecordError(f"not a streamlog record: {line[:80]!r}")
    stamp, tag = parts[0], parts[1]
    data = parts[2] if len(parts) == 3 else b""
    partial = tag.endswith(b"+")
    stream = (tag[:-1] if partial else tag).decode("ascii", "replace")
    if stream not in ("stdout", "stderr", "status"):
        raise RecordError(f"unknown stream tag {tag!r}")
    return Record(stamp.decode("ascii", "replace"), stream, data, partial)


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
