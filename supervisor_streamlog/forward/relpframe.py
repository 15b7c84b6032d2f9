"""RELP's frames: cutting what a server sends into frames, and making the client's.

A frame is ``TXNR SP COMMAND SP DATALEN [SP DATA] LF`` (:mod:`.relp` has the
session around them), for example ``3 rsp 6 200 OK\\n`` answering frame 3.

Invariants: a frame is taken only once whole (its DATALEN bytes and the LF);
anything that breaks the grammar is an error, never a guess.  Threads: none;
pure, bytes in, frames out (called from the RELP session's protocol).
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple, Union

from .octet import SendError

#: Transaction numbers run 1..MAX_TXNR and wrap to 1.
MAX_TXNR = 999_999_999
# A response is a few bytes ("200 OK"; the open answer a few hundred):
# anything bigger than this is not a RELP server talking.
MAX_RESPONSE = 64 * 1024
_HEADER = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])")
_HEADER_MAX = 9 + 1 + 32 + 1 + 9 + 1
# Nearly every frame a server sends is a plain acknowledgement: a run of them
# is cut with one regex scan and one split instead of a match per frame.
_OK = b" rsp 6 200 OK\n"
_OKS = re.compile(rb"(?:\d{1,9} rsp 6 200 OK\n)+")
OK = b"200 OK"  # the data of a plain acknowledgement
RSP = b"rsp"  # the command of an answer

Frame = Tuple[int, bytes, bytes]  # (txnr, command, data)


class RelpError(SendError):
    """The receiver did not acknowledge: refused, closed, went silent, or spoke no RELP."""


class FrameParser:
    """Cuts the bytes a RELP peer sends into frames, however they were split into reads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Frame]:
        """Add received bytes; return the frames now complete (the rest is kept)."""
        frames: List[Frame] = []
        for answer in self.answers(data):
            if isinstance(answer, list):
                frames.extend((txnr, RSP, OK) for txnr in answer)
            else:
                frames.append(answer)
        return frames

    def answers(self, data: bytes) -> List[Union[Frame, List[int]]]:
        """:meth:`feed`, with each run of plain acknowledgements (``200 OK``) as one
        list of their transaction numbers: a client takes such a run at once."""
        buffer = self._buffer
        buffer += data
        frames: List[Union[Frame, List[int]]] = []
        pos = 0
        size = len(buffer)
        while pos < size:
            run = _OKS.match(buffer, pos)
            if run is not None:
                frames.append(list(map(int, buffer[pos : run.end()].split(_OK)[:-1])))
                pos = run.end()
                continue
            match = _HEADER.match(buffer, pos)
            if match is None:
                rest = bytes(buffer[pos : pos + _HEADER_MAX])
                if len(rest) >= _HEADER_MAX or b"\n" in rest or not _could_start(rest):
                    raise RelpError(f"not a RELP frame: {rest!r}")
                break  # a header still arriving
            length = int(match.group(3))
            if length > MAX_RESPONSE:
                raise RelpError(f"RELP frame of {length} bytes: too long for a response")
            if match.group(4) == b"\n":
                if length:
                    raise RelpError(f"RELP frame without its data: {match.group(0)!r}")
                frames.append((int(match.group(1)), bytes(match.group(2)), b""))
                pos = match.end()
                continue
            start = match.end()
            if size < start + length + 1:
                break  # data still arriving
            if buffer[start + length] != 0x0A:
                raise RelpError(f"RELP frame not ended by a newline: {match.group(0)!r}")
            frames.append(
                (int(match.group(1)), bytes(match.group(2)), bytes(buffer[start : start + length]))
            )
            pos = start + length + 1
        del buffer[:pos]
        return frames


def _could_start(rest: bytes) -> bool:
    """Whether ``rest`` (no newline in it) may be the beginning of a frame header."""
    head, _, tail = rest.partition(b" ")
    if not head.isdigit():
        return False
    if not tail:
        return True
    command, space, length = tail.partition(b" ")
    return (command.isalpha() or not command) and (not space or length.isdigit() or not length)


def frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    """One RELP frame."""
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode("ascii"), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode("ascii"))


def parse_offers(data: bytes) -> Dict[str, str]:
    """The ``name=value`` lines of an ``open`` offer or its answer (after the status line)."""
    offers = {}
    for line in data.split(b"\n"):
        name, _, value = line.decode("utf-8", "replace").partition("=")
        if name:
            offers[name.strip()] = value.strip()
    return offers


def quoted(data: bytes) -> str:
    """A server's answer, quoted for an error message (one line, not too long)."""
    return repr(data[:200].decode("utf-8", "replace"))
