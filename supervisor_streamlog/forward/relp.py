"""A RELP client (rsyslog's Reliable Event Logging Protocol) over asyncio streams.

RELP is what makes a record count as delivered only when the receiver said
so: every frame ``TXNR SP COMMAND SP DATALEN [SP DATA] LF`` the client sends
is answered by ``TXNR rsp DATALEN 200 OK`` once the receiver has taken the
message.  A session that breaks before the answer means "not delivered": the
caller reconnects and sends again from the last acknowledged record, so
delivery is at least once, with duplicates only for messages sent but not
acknowledged (carry the record's offset, as :mod:`.syslog` does, to tell them
apart).  The receiving rsyslog::

    module(load="imrelp")
    input(type="imrelp" port="2514" maxDataSize="64k")

(``maxDataSize``, and ``global(maxMessageSize=...)``, must hold the longest
record: ``max_line_length`` plus about 300 bytes of header.  With rsyslog's
default 8k, imrelp truncates a longer message and acknowledges it.)

What the acknowledgement means is the receiver's business: rsyslog answers
once the message is in the queue of the input's ruleset.  With its default
in-memory queue a SIGKILL of rsyslog loses messages it already acknowledged
(seen here in 4 of 10 runs); ``ruleset(... queue.type="Direct")`` (the
action runs before the answer) or a disk queue keeps them.

A session: ``open`` (we offer ``relp_version=0``, our software and
``commands=syslog``; the server must offer ``syslog`` back), then ``syslog``
frames with at most ``window`` unacknowledged, then ``close``.  The server
may end the session at any time with ``0 serverclose 0``.  Transaction
numbers run 1..999999999 and wrap to 1.  TLS is an ``ssl.SSLContext`` around
the same protocol (rsyslog's ``imrelp`` with ``tls="on"``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from .. import __version__
from .octet import SendError, address, close_stream, describe, open_stream

RELP_VERSION = 0
MAX_TXNR = 999_999_999
SOFTWARE = f"supervisor-streamlog,{__version__}"
# A response is a few bytes ("200 OK"; the open answer a few hundred):
# anything bigger than this is not a RELP server talking.
MAX_RESPONSE = 64 * 1024
_WRITE_CHUNK = 256 * 1024
_HEADER = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])")
_HEADER_MAX = 9 + 1 + 32 + 1 + 9 + 1
# Nearly every frame a server sends is a plain acknowledgement: a run of them
# is cut with one regex scan and one split instead of a match per frame.
_OK = b" rsp 6 200 OK\n"
_OKS = re.compile(rb"(?:\d{1,9} rsp 6 200 OK\n)+")
_OK_DATA = b"200 OK"
_RSP = b"rsp"

Frame = Tuple[int, bytes, bytes]  # (txnr, command, data)


#: Linux only (None elsewhere): see :meth:`RelpClient._ack_quickly`.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class RelpError(SendError):
    """The receiver did not acknowledge: refused, closed, went silent, or spoke no RELP."""


class FrameParser:
    """Cuts the bytes a RELP peer sends into frames, however they were split into reads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Frame]:
        """Add received bytes; return the frames now complete (the rest is kept)."""
        buffer = self._buffer
        buffer += data
        frames: List[Frame] = []
        pos = 0
        size = len(buffer)
        while pos < size:
            run = _OKS.match(buffer, pos)
            if run is not None:
                frames.extend(
                    (int(txnr), _RSP, _OK_DATA) for txnr in buffer[pos : run.end()].split(_OK)[:-1]
                )
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


class RelpClient:
    """One RELP session to ``host:port`` (TLS when ``ssl_context`` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: Optional[ssl.SSLContext] = None,
        window: int = 1024,
        timeout: float = 30.0,
    ) -> None:
        if window < 1:
            raise ValueError("the RELP window must be at least 1")
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.window = window
        self.timeout = timeout
        self.server_offers: Dict[str, str] = {}
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._parser = FrameParser()
        self._txnr = 0

    @property
    def connected(self) -> bool:
        """Whether a session is open (a failure drops it)."""
        return self._writer is not None

    def _next_txnr(self) -> int:
        self._txnr = self._txnr + 1 if self._txnr < MAX_TXNR else 1
        return self._txnr

    def _where(self) -> str:
        return f"relp://{address(self.host, self.port)}"

    async def connect(self) -> None:
        """Connect and open a session (again: an earlier one is dropped first)."""
        self._drop()
        self._reader, self._writer = await open_stream(
            self.host, self.port, self.ssl_context, self.timeout, RelpError
        )
        self._parser = FrameParser()
        self._txnr = 0
        offer = f"relp_version={RELP_VERSION}\nrelp_software={SOFTWARE}\ncommands=syslog"
        txnr = self._next_txnr()
        try:
            self._writer.write(frame(txnr, "open", offer.encode("ascii")))
            answer = (await self._responses(1))[0]
            got, command, data = answer
            if got != txnr or command != b"rsp":
                raise RelpError(f"{self._where()}: unexpected answer to open: {answer!r}")
            status, _, offers = data.partition(b"\n")
            if not status.startswith(b"200"):
                raise RelpError(f"{self._where()} refused the session: {_text(status)}")
            self.server_offers = parse_offers(offers)
            commands = self.server_offers.get("commands", "").split(",")
            if "syslog" not in commands:
                raise RelpError(f"{self._where()} does not accept syslog messages: {_text(data)}")
        except BaseException as exc:
            self._drop()
            if not isinstance(exc, RelpError):
                raise
            if "closed by the receiver" in str(exc) and self.ssl_context is not None:
                # imrelp with TLS hangs up after the handshake on a missing or
                # refused client certificate: say where it happened
                raise RelpError(
                    f"{exc} while opening the session (does it want a client certificate?)"
                ) from exc
            raise

    async def _responses(self, wanted: int) -> List[Frame]:
        """Read until at least ``wanted`` frames came; serverclose, EOF, timeout raise."""
        assert self._reader is not None
        frames: List[Frame] = []
        while len(frames) < wanted:
            for answer in await self._read():
                if answer[1] == b"serverclose":
                    raise self._closed_by_server()
                frames.append(answer)
        return frames

    async def _read(self) -> List[Frame]:
        """The frames of one read (maybe none, if it held only part of one)."""
        assert self._reader is not None
        try:
            data = await asyncio.wait_for(self._reader.read(65536), self.timeout)
        except asyncio.TimeoutError:
            raise RelpError(f"{self._where()}: no answer for {self.timeout:g}s") from None
        except OSError as exc:
            raise RelpError(f"{self._where()}: {describe(exc)}") from exc
        if not data:
            raise RelpError(f"{self._where()}: connection closed by the receiver")
        self._ack_quickly()
        return self._parser.feed(data)

    def _ack_quickly(self) -> None:
        """Ask the kernel to acknowledge the receiver's next segments at once
        (Linux ``TCP_QUICKACK``; it clears the flag by itself, hence per read).

        rsyslog's imrelp writes its answers with Nagle's algorithm on, so its
        last answers of a window wait until the kernel acknowledges the ones
        before; Linux delays that acknowledgement up to 40 ms while the client
        has nothing to send -- and a client whose window is full waits for those
        very answers.  That was one 40 ms stall each time the window drained;
        without it RELP catch-up went from about 45 000 to 70 000 records/s
        (``bench/forward.py``).
        """
        if _QUICKACK is None or self._writer is None:
            return
        sock = self._writer.transport.get_extra_info("socket")
        if sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass  # closed: the next read says so

    def _closed_by_server(self) -> RelpError:
        return RelpError(f"{self._where()}: the receiver ended the session (serverclose)")

    async def send(
        self, messages: Sequence[bytes], on_acked: Optional[Callable[[int], None]] = None
    ) -> int:
        """Send ``messages`` as syslog frames; return once the receiver acknowledged all.

        At most ``window`` are unacknowledged at a time.  ``on_acked(n)`` is
        called each time the number of messages acknowledged from the start of
        ``messages`` (all of the first ``n``) grows, so the caller may record
        progress while a long batch is in flight.  A refusal (an answer other
        than 200), a serverclose, the connection closing or ``timeout``
        seconds without progress raise :class:`RelpError` and drop the
        session: reconnect and send again from the last acknowledged message.
        Any other exception (cancellation, ``on_acked`` raising) drops the
        session too.
        """
        if self._writer is None:
            raise RelpError(f"{self._where()}: not connected")
        try:
            return await self._send(messages, on_acked)
        except BaseException:
            # also when cancelled or on_acked raised: answers to what is in
            # flight would confuse the next send
            self._drop()
            raise

    async def _send(
        self, messages: Sequence[bytes], on_acked: Optional[Callable[[int], None]]
    ) -> int:
        writer = self._writer
        assert writer is not None
        total = len(messages)
        sent = acked = 0
        pending: Deque[int] = deque()  # txnrs in the order sent
        early: Set[int] = set()  # answered before an earlier one (allowed, not seen)
        # Write again once a quarter of the window is free (or all that is
        # left fits), not after every read: fewer, bigger writes and reads.
        refill = max(1, self.window // 4)
        while acked < total:
            if sent < total and self.window - len(pending) >= min(refill, total - sent):
                parts = []
                size = 0
                room = min(total, sent + self.window - len(pending))
                txnr = self._txnr
                while sent < room and size < _WRITE_CHUNK:
                    message = messages[sent]
                    txnr = txnr + 1 if txnr < MAX_TXNR else 1
                    if message:
                        parts.append(b"%d syslog %d " % (txnr, len(message)))
                        parts.append(message)
                        parts.append(b"\n")
                    else:
                        parts.append(b"%d syslog 0\n" % txnr)
                    pending.append(txnr)
                    size += len(message)
                    sent += 1
                self._txnr = txnr
                try:
                    writer.write(b"".join(parts))
                    await asyncio.wait_for(writer.drain(), self.timeout)
                except asyncio.TimeoutError:
                    raise RelpError(
                        f"{self._where()}: the receiver read nothing for {self.timeout:g}s"
                    ) from None
                except OSError as exc:
                    raise RelpError(f"{self._where()}: {describe(exc)}") from exc
                if sent < total and self.window - len(pending) >= min(refill, total - sent):
                    continue
            before = acked
            ended: Optional[RelpError] = None
            for txnr, command, data in await self._read():
                if command == b"rsp" and data.startswith(b"200"):
                    if pending and txnr == pending[0]:
                        pending.popleft()
                        acked += 1
                        while pending and pending[0] in early:
                            early.discard(pending.popleft())
                            acked += 1
                        continue
                    if txnr in pending:
                        early.add(txnr)
                        continue
                ended = self._failure(txnr, command, data, acked, pending, total)
                break
            if on_acked is not None and acked > before:
                on_acked(acked)  # what was acknowledged before a failure counts
            if ended is not None:
                raise ended
        return acked

    def _failure(
        self, txnr: int, command: bytes, data: bytes, acked: int, pending: Deque[int], total: int
    ) -> RelpError:
        """The error for a frame that is not the acknowledgement of a pending message."""
        if command == b"serverclose":
            return self._closed_by_server()
        if command != b"rsp":
            return RelpError(f"{self._where()}: unexpected RELP command {command!r} ({txnr})")
        if txnr not in pending:
            return RelpError(f"{self._where()}: answer to unknown transaction {txnr}")
        index = acked + pending.index(txnr)
        return RelpError(f"{self._where()} refused message {index + 1} of {total}: {_text(data)}")

    def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.transport.abort()

    async def close(self) -> None:
        """End the session (``close``, wait for its answer), then the socket; never raises."""
        writer = self._writer
        if writer is None:
            return
        try:
            txnr = self._next_txnr()
            writer.write(frame(txnr, "close"))
            timeout, self.timeout = self.timeout, min(self.timeout, 5.0)
            try:
                while True:
                    frames = await self._read()
                    if any(got == txnr for got, _, _ in frames):
                        break
            finally:
                self.timeout = timeout
        except (RelpError, OSError):
            pass  # serverclose, EOF or silence: the session is over either way
        self._writer = self._reader = None
        await close_stream(writer, 5.0)


def _text(data: bytes) -> str:
    """A server's answer, quoted for an error message (one line, not too long)."""
    return repr(data[:200].decode("utf-8", "replace"))
