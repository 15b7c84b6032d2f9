"""Line assembly: turn the chunks supervisord reads from a pipe into records.

supervisord hands over whatever one ``read()`` of the child's pipe returned: a
chunk cuts lines, and even multi-byte characters, anywhere.  A
:class:`LineAssembler` (one per process and stream) keeps the unfinished tail of
the last chunk and returns *pieces*:

* ``(data, False)`` -- one or more complete lines, each ending in ``\\n`` and
  none longer than ``max_line_length`` bytes (the newline not counted);
* ``(data, True)``  -- a piece with no newline after it: part of an over-long
  line, or an unfinished line written out because it waited too long or the
  process ended.  Writing ``data`` and then what follows reproduces the stream.

Bytes are never changed: ``\\r``, NUL, escape sequences and invalid UTF-8 pass
through.  ``\\r\\n`` ends a line like ``\\n`` (the ``\\r`` stays in its text).
Lines are found with whole-chunk ``bytes`` operations; the per-line Python
loop runs only for lines longer than the limit.  Threads: none; called by the
capture core under its front end's lock.  Example::

    assembler = LineAssembler(max_line_length=16384)
    assembler.feed(b"one\\ntw", time.time())  # [(b"one\\n", False)]; b"tw" waits
"""

from __future__ import annotations

from typing import List, Optional

from ..ondisk.formats import Piece


def cut_point(line: bytes, limit: int) -> int:
    """Where to cut an over-long line: at ``limit``, moved back (by at most 3
    bytes) so a UTF-8 character is not split between two pieces."""
    cut = limit
    while cut > limit - 3 and 0x80 <= line[cut] < 0xC0:
        cut -= 1
    if 0x80 <= line[cut] < 0xC0:
        return limit  # not UTF-8 here anyway: cut at the limit
    return cut


class LineAssembler:
    """Assemble one stream's chunks into pieces (see the module docstring)."""

    __slots__ = ("limit", "pending", "pending_since")

    def __init__(self, max_line_length: int) -> None:
        self.limit = max_line_length
        self.pending = b""
        #: When the unfinished line started waiting (for ``partial_timeout``).
        self.pending_since: Optional[float] = None

    def feed(self, data: bytes, now: float) -> List[Piece]:
        """Take one chunk; return the pieces it completes."""
        out: List[Piece] = []
        if self.pending:
            data = self.pending + data
            self.pending = b""
        else:
            self.pending_since = None
        last = data.rfind(b"\n")
        if last == -1:
            rest = data
        else:
            rest = data[last + 1 :]
            self._complete(data if last == len(data) - 1 else data[: last + 1], out)
            self.pending_since = None
        limit = self.limit
        while len(rest) > limit:
            cut = cut_point(rest, limit)
            out.append((rest[:cut], True))
            rest = rest[cut:]
        if rest:
            self.pending = rest
            if self.pending_since is None:
                self.pending_since = now
        else:
            self.pending_since = None
        return out

    def _complete(self, buf: bytes, out: List[Piece]) -> None:
        """Split a run of complete lines, carving out only the over-long ones."""
        limit = self.limit
        size = len(buf)
        pos = start = 0
        # Any window of limit+1 bytes must hold a newline, else a line there is
        # too long.  One rfind per window: a few microseconds per 64 KiB.
        while size - pos > limit + 1:
            found = buf.rfind(b"\n", pos, pos + limit + 1)
            if found != -1:
                pos = found + 1
                continue
            if pos > start:
                out.append((buf[start:pos], False))
            end = buf.index(b"\n", pos)
            line = buf[pos:end]
            while len(line) > limit:
                cut = cut_point(line, limit)
                out.append((line[:cut], True))
                line = line[cut:]
            out.append((line + b"\n", False))
            pos = start = end + 1
        if start < size:
            out.append((buf if start == 0 else buf[start:], False))

    def due(self, now: float, timeout: float) -> bool:
        """Whether an unfinished line has waited ``timeout`` seconds or more."""
        return bool(self.pending) and (
            self.pending_since is None or now - self.pending_since >= timeout
        )

    def flush(self) -> List[Piece]:
        """Give up waiting for the newline: return the unfinished line as a piece."""
        if not self.pending:
            return []
        piece = [(self.pending, True)]
        self.pending = b""
        self.pending_since = None
        return piece
