"""A RELP client (rsyslog's Reliable Event Logging Protocol) over asyncio streams.

Role: a record counts as delivered only when the receiver said so.  Every frame
``TXNR SP COMMAND SP DATALEN [SP DATA] LF`` (cut and made by :mod:`.relpframe`)
is answered ``TXNR rsp DATALEN 200 OK`` once the receiver took the message.  A
session: ``open`` (we offer ``relp_version=0``, our software and
``commands=syslog``; the server must offer ``syslog`` back), ``syslog`` frames
with at most ``window`` unacknowledged, ``close``; the server may end it at any
time with ``0 serverclose 0``.  Transaction numbers run 1..999999999 and wrap to
1.  TLS is an ``ssl.SSLContext`` around the same protocol (``imrelp tls="on"``).

Invariants: a session that breaks before the answer means "not delivered": the
caller reconnects and sends again from the last acknowledged record (at least
once; duplicates carry their offset, :mod:`.syslog`).  The acknowledgement means
what rsyslog makes it mean: in its default in-memory queue a message can be lost
after it was acknowledged; docs/shipping.md ("The queue") says how to avoid that.

Threads: one asyncio loop.  Answers are counted by an ``asyncio.Protocol``
(:class:`_Session`) as they arrive; the sending coroutine waits only for a
quarter of its window to be free, so the acknowledgements pace the writes and
the transport's buffer holds at most a window of messages.

Example, the receiving rsyslog (``maxDataSize``, and ``global(maxMessageSize=...)``,
must hold ``max_line_length`` plus about 300 bytes: with rsyslog's default 8k,
imrelp truncates a longer message and acknowledges it)::

    module(load="imrelp")
    input(type="imrelp" port="2514" maxDataSize="64k")
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from bisect import bisect_left
from itertools import accumulate, chain, repeat
from typing import Callable, Dict, List, Optional, Sequence, Set

from .. import __version__
from .octet import address, describe, open_transport
from .relpframe import (
    MAX_TXNR,
    OK,
    RSP,
    Frame,
    FrameParser,
    RelpError,
    frame,
    parse_offers,
    quoted,
)

RELP_VERSION = 0
SOFTWARE = f"supervisor-streamlog,{__version__}"
_WRITE_CHUNK = 256 * 1024


#: Linux only (None elsewhere).  rsyslog's imrelp writes its answers with
#: Nagle's algorithm on, so its last answers of a window wait until the kernel
#: acknowledges the ones before; Linux delays that acknowledgement up to 40 ms
#: while the client has nothing to send -- and a client whose window is full
#: waits for those very answers.  That was one 40 ms stall each time the window
#: drained (RELP catch-up went from about 45 000 to 70 000 records/s without
#: it, ``bench/forward.py``).  So while the sender waits, the client asks the
#: kernel to acknowledge at once (``TCP_QUICKACK``, which clears itself) when
#: it begins to wait and at each read.  Reading pauses for ``_READ_EVERY`` s
#: after each read, so the answers of a few milliseconds are one read and one
#: wake-up (a read, a wake-up and a system call per dozen answers were a third
#: of the client's CPU).
_READ_EVERY = 0.002
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _Session(asyncio.Protocol):
    """The client's end of one RELP connection: the receiver's answers, taken as they come.

    Acknowledgements of ``syslog`` frames are counted here, in
    :meth:`data_received`, and the sending coroutine is woken only once
    enough of its window is free (or all is acknowledged, or the session
    failed) -- not once per read: a coroutine wake-up, a read timeout and a
    parse for every few acknowledgements were most of the client's CPU.
    The messages in flight are ``unacked`` consecutive transaction numbers
    from ``first`` (the server may answer out of order: those are kept in
    ``early`` until the ones before come).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.transport: Optional[asyncio.Transport] = None
        self.parser = FrameParser()
        #: Why the session is over (the receiver refused, closed, spoke no RELP).
        self.failure: Optional[RelpError] = None
        #: Whether the failure is the connection ending (closed, reset, a TLS alert).
        self.cut = False
        #: Answers that are not acknowledgements of messages (to open and close).
        self.answers: List[Frame] = []
        self.first = 1
        self.unacked = 0
        self.acked = 0  # since the send began
        self.total = 0  # messages of the send
        self.early: Set[int] = set()
        #: Wake the sender once at most this many are unacknowledged; -1: once
        #: an answer to open or close came (the only time one is expected).
        self.wake_at = -1
        self._waiter: Optional[asyncio.Future[None]] = None
        self._writable: Optional[asyncio.Future[None]] = None
        self._closed: Optional[asyncio.Future[None]] = None
        self._quickack: Optional[Callable[[], None]] = None
        self._resuming: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._closed = asyncio.get_running_loop().create_future()
        sock = transport.get_extra_info("socket")
        if _QUICKACK is not None and sock is not None:
            setsockopt = sock.setsockopt

            def quickack() -> None:
                try:
                    setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError:
                    pass  # closed: connection_lost says so

            self._quickack = quickack

    def _resume(self) -> None:
        self._resuming = None
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        if self._waiter is not None and self._quickack is not None:
            self._quickack()  # the sender waits for the answers still to come

    def begin(self, first: int, total: int) -> None:
        """A send of ``total`` messages starts, its first transaction being ``first``."""
        self.first = first
        self.unacked = self.acked = 0
        self.total = total
        self.early.clear()
        self.answers.clear()

    def data_received(self, data: bytes) -> None:
        if self.failure is not None:
            return
        waiting = self._waiter is not None
        if self._resuming is None and self.transport is not None:
            # Let the next answers gather in the socket for a moment: one read
            # (and one wake-up) for what would have been a dozen.
            self.transport.pause_reading()
            self._resuming = asyncio.get_running_loop().call_later(_READ_EVERY, self._resume)
        try:
            answers = self.parser.answers(data)
        except RelpError as exc:
            self._fail(RelpError(f"{self.where}: {exc}"))
            return
        for answer in answers:
            if isinstance(answer, list):
                if self._take_run(answer):
                    continue
                frames: List[Frame] = [(txnr, RSP, OK) for txnr in answer]
            else:
                frames = [answer]
            if not self._take(frames):
                return
        if waiting and self._ready():
            self._wake()

    def _take_run(self, txnrs: List[int]) -> bool:
        """A run of acknowledgements of the next messages in order, taken at once
        (nearly every read is one); False when it is anything else."""
        first, count = self.first, len(txnrs)
        last = first + count - 1
        if count > self.unacked or self.early or last > MAX_TXNR or txnrs[0] != first:
            return False
        if txnrs[-1] != last or txnrs != list(range(first, last + 1)):
            return False
        self.first = last + 1 if last < MAX_TXNR else 1
        self.unacked -= count
        self.acked += count
        return True

    def _take(self, frames: List[Frame]) -> bool:
        """Answers one by one; False once the session failed."""
        for answer in frames:
            txnr, command, body = answer
            if self.unacked and command == RSP and body.startswith(b"200"):
                if txnr == self.first:
                    self._acknowledge()
                    while self.early and self.first in self.early:
                        self.early.discard(self.first)
                        self._acknowledge()
                    continue
                if (txnr - self.first) % MAX_TXNR < self.unacked:
                    self.early.add(txnr)
                    continue
            if command == b"serverclose":
                self._fail(RelpError(f"{self.where}: the receiver ended the session (serverclose)"))
                return False
            if self.unacked or self.wake_at >= 0:
                self._fail(self._unexpected(txnr, command, body))
                return False
            self.answers.append(answer)
        return True

    def _ready(self) -> bool:
        """Whether what the sender waits for is there (or the session failed)."""
        if self.failure is not None:
            return True
        return bool(self.answers) if self.wake_at < 0 else self.unacked <= self.wake_at

    def _acknowledge(self) -> None:
        self.first = self.first + 1 if self.first < MAX_TXNR else 1
        self.unacked -= 1
        self.acked += 1

    def _unexpected(self, txnr: int, command: bytes, body: bytes) -> RelpError:
        """The error for a frame, during a send, that acknowledges no message in flight."""
        if command != RSP:
            return RelpError(f"{self.where}: unexpected RELP command {command!r} ({txnr})")
        position = (txnr - self.first) % MAX_TXNR
        if position >= self.unacked:  # (also any answer between sends)
            return RelpError(f"{self.where}: answer to unknown transaction {txnr}")
        index = self.acked + position + 1
        return RelpError(f"{self.where} refused message {index} of {self.total}: {quoted(body)}")

    def eof_received(self) -> Optional[bool]:
        self.cut = self.cut or self.failure is None
        self._fail(RelpError(f"{self.where}: connection closed by the receiver"))
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.cut = self.cut or self.failure is None
        if exc is None:
            self._fail(RelpError(f"{self.where}: connection closed by the receiver"))
        else:
            self._fail(RelpError(f"{self.where}: {describe(exc)}"))
        if self._resuming is not None:
            self._resuming.cancel()
            self._resuming = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self.resume_writing()

    def _fail(self, failure: RelpError) -> None:
        if self.failure is None:
            self.failure = failure
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until enough is acknowledged (``wake_at``), an answer came or the session
        failed; raises the failure, or a timeout after ``timeout`` s of silence."""
        if not self._ready() and self._quickack is not None:
            self._quickack()
        while not self._ready():
            progress = self.acked
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                if self.acked == progress:
                    raise RelpError(f"{self.where}: no answer for {timeout:g}s") from None
                # answers came, just not enough yet: wait on
            finally:
                self._waiter = None
        if self.failure is not None:
            raise self.failure

    async def answer(self, timeout: float) -> Frame:
        """The next answer that is not an acknowledgement (to open or close)."""
        self.wake_at = -1
        while not self.answers:
            await self.wait(timeout)
        return self.answers.pop(0)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    async def writable(self, timeout: float) -> None:
        """Until the transport's buffer is below its high-water mark again."""
        if self._writable is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writable), timeout)
            except asyncio.TimeoutError:
                silence = f"the receiver read nothing for {timeout:g}s"
                raise RelpError(f"{self.where}: {silence}") from None
        if self.failure is not None:
            raise self.failure

    async def closed(self, timeout: float) -> None:
        """Until the connection is gone (at most ``timeout`` s)."""
        if self._closed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), timeout)
            except asyncio.TimeoutError:
                if self.transport is not None:
                    self.transport.abort()


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
        self._session: Optional[_Session] = None
        self._txnr = 0
        #: Messages of the last :meth:`send` written to the connection (those
        #: past the acknowledged ones were sent and may arrive twice).
        self.written = 0

    @property
    def connected(self) -> bool:
        """Whether a session is open (a failure drops it)."""
        return self._session is not None

    def hung_up(self) -> bool:
        """Whether the receiver closed or reset the connection (or ended the
        session), seen without sending: an idle forwarder says so at once."""
        session = self._session
        return (
            session is None
            or session.failure is not None
            or session.transport is None
            or session.transport.is_closing()
        )

    def _next_txnr(self) -> int:
        self._txnr = self._txnr + 1 if self._txnr < MAX_TXNR else 1
        return self._txnr

    def _where(self) -> str:
        return f"relp://{address(self.host, self.port)}"

    async def connect(self) -> None:
        """Connect and open a session (again: an earlier one is dropped first)."""
        self._drop()
        where = self._where()
        transport, session = await open_transport(
            self.host, self.port, self.ssl_context, self.timeout, lambda: _Session(where), RelpError
        )
        self._session = session
        self._txnr = 0
        offer = f"relp_version={RELP_VERSION}\nrelp_software={SOFTWARE}\ncommands=syslog"
        txnr = self._next_txnr()
        try:
            assert isinstance(transport, asyncio.Transport)
            transport.write(frame(txnr, "open", offer.encode("ascii")))
            answer = await session.answer(self.timeout)
            got, command, data = answer
            if got != txnr or command != b"rsp":
                raise RelpError(f"{where}: unexpected answer to open: {answer!r}")
            status, _, offers = data.partition(b"\n")
            if not status.startswith(b"200"):
                raise RelpError(f"{where} refused the session: {quoted(status)}")
            self.server_offers = parse_offers(offers)
            commands = self.server_offers.get("commands", "").split(",")
            if "syslog" not in commands:
                raise RelpError(f"{where} does not accept syslog messages: {quoted(data)}")
        except BaseException as exc:
            self._drop()
            if not isinstance(exc, RelpError):
                raise
            if exc is session.failure and session.cut and self.ssl_context is not None:
                # imrelp with TLS hangs up after the handshake on a missing or
                # refused client certificate (a close, a reset or an alert,
                # as the timing falls): say where it happened
                raise RelpError(
                    f"{exc} while opening the session (does it want a client certificate?)"
                ) from exc
            raise

    async def send(
        self, messages: Sequence[bytes], on_acked: Optional[Callable[[int], None]] = None
    ) -> int:
        """Send ``messages`` as syslog frames; return once the receiver acknowledged all.

        At most ``window`` are unacknowledged at a time.  ``on_acked(n)`` is
        called as the number of messages acknowledged from the start of
        ``messages`` (all of the first ``n``) grows, so the caller may record
        progress while a long batch is in flight.  A refusal (an answer other
        than 200), a serverclose, the connection closing or ``timeout``
        seconds without progress raise :class:`RelpError` and drop the
        session: reconnect and send again from the last acknowledged message.
        Any other exception (cancellation, ``on_acked`` raising) drops the
        session too.
        """
        self.written = 0
        if self._session is None:
            raise RelpError(f"{self._where()}: not connected")
        try:
            return await self._send(self._session, messages, on_acked)
        except BaseException:
            # also when cancelled or on_acked raised: answers to what is in
            # flight would confuse the next send
            self._drop()
            raise

    async def _send(
        self,
        session: _Session,
        messages: Sequence[bytes],
        on_acked: Optional[Callable[[int], None]],
    ) -> int:
        total = len(messages)
        sent = reported = 0
        session.begin(self._txnr + 1 if self._txnr < MAX_TXNR else 1, total)
        # Write once a quarter of the window is free (or all that is left
        # fits), not after every answer: fewer, bigger writes.
        refill = max(1, self.window // 4)
        try:
            while session.acked < total:
                if session.failure is not None:
                    raise session.failure
                if sent < total and self.window - session.unacked >= min(refill, total - sent):
                    sent = self._write(session, messages, sent)
                    await session.writable(self.timeout)
                    continue
                # Wake once a quarter of the window is free again, or all is acknowledged.
                session.wake_at = self.window - min(refill, total - sent) if sent < total else 0
                await session.wait(self.timeout)
                if on_acked is not None and session.acked > reported:
                    reported = session.acked
                    on_acked(reported)
        finally:
            if on_acked is not None and session.acked > reported:
                on_acked(session.acked)  # what was acknowledged before a failure counts
        return session.acked

    def _write(self, session: _Session, messages: Sequence[bytes], sent: int) -> int:
        """Write the next messages from ``sent`` that fit the window (and a write's
        size); returns how many of ``messages`` are written now."""
        assert session.transport is not None
        batch = messages[sent : min(len(messages), sent + self.window - session.unacked)]
        # as many as make _WRITE_CHUNK bytes (the one that crosses it included)
        count = min(len(batch), bisect_left(list(accumulate(map(len, batch))), _WRITE_CHUNK) + 1)
        batch = batch[:count]
        first = self._txnr + 1 if self._txnr < MAX_TXNR else 1
        last = first + count - 1
        if last <= MAX_TXNR and all(batch):
            # the frames' heads made in one go, then joined with their messages
            heads = [
                b"%d syslog %d " % head for head in zip(range(first, last + 1), map(len, batch))
            ]
            data = b"".join(chain.from_iterable(zip(heads, batch, repeat(b"\n", count))))
            self._txnr = last
        else:  # the transaction numbers wrap, or a message is empty
            data = b"".join(frame(self._next_txnr(), "syslog", message) for message in batch)
        session.unacked += count
        session.transport.write(data)
        self.written = sent + count
        return self.written

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None and session.transport is not None:
            session.transport.abort()

    async def close(self) -> None:
        """End the session (``close``, wait for its answer), then the socket; never raises."""
        session, self._session = self._session, None
        if session is None or session.transport is None:
            return
        transport = session.transport
        if session.failure is None:
            txnr = self._next_txnr()
            transport.write(frame(txnr, "close"))
            try:
                while (await session.answer(min(self.timeout, 5.0)))[0] != txnr:
                    pass
            except RelpError:
                pass  # serverclose, EOF or silence: the session is over either way
        transport.close()
        await session.closed(5.0)
