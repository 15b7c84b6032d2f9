"""RFC 5424 over TCP with octet-counting framing (RFC 6587), plain or TLS (RFC 5425).

Each message is sent as ``LEN SP MSG``: the length in bytes, a space and the
message, so a record holding a newline or a NUL stays one message (newline
framing would cut it: rsyslog issue 1165).  The receiving rsyslog::

    module(load="imtcp")
    input(type="imtcp" port="6514")       # add StreamDriver.Name="gtls" ... for TLS

**No acknowledgement**: the receiver never answers, so :meth:`StreamSender.send`
returns once the bytes were handed to the kernel (``drain()``), and a record
counts as delivered then.  Records still in the kernel's or the receiver's
buffers when the receiver dies are lost without anyone knowing.  RELP
(:mod:`.relp`) is the acknowledged choice; use this one for receivers that do
not speak RELP.

The receiver must accept the longest record (``max_line_length`` plus about
300 bytes): rsyslog's imtcp with its default ``maxMessageSize`` of 8k cuts a
longer message in two, the rest arriving as a message of its own.

:class:`SendError` is the one error both senders raise for "not delivered,
reconnect and send again from the last delivered record".  Threads: one
asyncio loop (the forwarder's); a sender is used by one lane at a time.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Awaitable, Callable, Optional, Sequence, Tuple, Type, TypeVar

T = TypeVar("T")
P = TypeVar("P", bound=asyncio.BaseProtocol)

# at most this many bytes are joined into one write
_WRITE_CHUNK = 256 * 1024


class SendError(Exception):
    """A message was perhaps not delivered: reconnect, then re-send from the last one that was."""


def address(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe(exc: BaseException) -> str:
    """A one-line reason for a socket or TLS failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed by the receiver"
    if isinstance(exc, ConnectionError):  # reset, broken pipe, or asyncio's "Connection lost"
        detail = exc.strerror or str(exc)
        if detail.lower() in ("", "connection lost"):
            return "connection lost"
        return f"connection lost ({detail})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def open_stream(
    host: str,
    port: int,
    ssl_context: Optional[ssl.SSLContext],
    timeout: float,
    error: Type[SendError] = SendError,
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect (and do the TLS handshake) within ``timeout``; failures raise ``error``."""
    connecting = asyncio.open_connection(
        host, port, ssl=ssl_context, server_hostname=host if ssl_context is not None else None
    )
    return await _connecting(connecting, host, port, timeout, error)


async def open_transport(
    host: str,
    port: int,
    ssl_context: Optional[ssl.SSLContext],
    timeout: float,
    factory: Callable[[], P],
    error: Type[SendError] = SendError,
) -> Tuple[asyncio.BaseTransport, P]:
    """:func:`open_stream` for a protocol of one's own (``loop.create_connection``)."""
    connecting = asyncio.get_running_loop().create_connection(
        factory, host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
    )
    return await _connecting(connecting, host, port, timeout, error)


async def _connecting(
    connecting: Awaitable[T], host: str, port: int, timeout: float, error: Type[SendError]
) -> T:
    try:
        return await asyncio.wait_for(connecting, timeout)
    except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
        raise error(f"cannot connect to {address(host, port)}: {describe(exc)}") from exc


async def close_stream(writer: Optional[asyncio.StreamWriter], timeout: float = 5.0) -> None:
    """Close a connection, waiting at most ``timeout``; never raises."""
    if writer is None:
        return
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (Exception, asyncio.CancelledError):  # closing is best effort
        writer.transport.abort()


class StreamSender:
    """Sends RFC 5424 messages with octet-counting framing; same shape as ``RelpClient``."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: Optional[ssl.SSLContext] = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.timeout = timeout
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        #: Messages of the last :meth:`send` written to the connection.
        self.written = 0

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` succeeded and nothing failed since."""
        return self._writer is not None

    def hung_up(self) -> bool:
        """Whether the receiver closed or reset the connection, seen without
        sending (the transport noticed it): an idle forwarder says so at once."""
        writer, reader = self._writer, self._reader
        return writer is None or reader is None or writer.is_closing() or reader.at_eof()

    async def connect(self) -> None:
        """Connect (again: any earlier connection is dropped first)."""
        await self.close()
        self._reader, self._writer = await open_stream(
            self.host, self.port, self.ssl_context, self.timeout
        )
        if self.ssl_context is None:
            # drain() then waits until every byte left this process for the
            # kernel: with the default high-water mark (64 KiB) a message could
            # still sit in asyncio's buffer when reported sent, and die with
            # the process.  (asyncio's TLS transport does not resume writing at
            # a mark of 0: over tls:// up to 64 KiB may still be in the process
            # when reported sent -- RELP is the choice that waits for the
            # receiver.)
            self._writer.transport.set_write_buffer_limits(high=0)

    async def send(
        self, messages: Sequence[bytes], on_acked: Optional[Callable[[int], None]] = None
    ) -> int:
        """Write ``messages`` framed, and wait until the kernel took them (``drain``).

        Returns how many were sent.  ``on_acked(n)`` is called as the first
        ``n`` of them are handed over (as with ``RelpClient.send``).  A closed
        or reset connection, or a receiver that stops reading for ``timeout``
        seconds, raises :class:`SendError` and drops the connection; so does
        any other exception (cancellation, ``on_acked`` raising): reconnect.
        """
        writer, reader = self._writer, self._reader
        self.written = 0
        if writer is None or reader is None:
            raise SendError(f"not connected to {address(self.host, self.port)}")
        done = 0
        try:
            # The receiver never writes: EOF means it closed the connection.
            if reader.at_eof() or writer.is_closing():
                raise ConnectionResetError(0, "connection closed by the receiver")
            while done < len(messages):
                parts = []
                size = 0
                count = done
                while count < len(messages) and size < _WRITE_CHUNK:
                    message = messages[count]
                    parts.append(b"%d " % len(message))
                    parts.append(message)
                    size += len(message)
                    count += 1
                writer.write(b"".join(parts))
                self.written = count
                await asyncio.wait_for(writer.drain(), self.timeout)
                done = count
                if on_acked is not None:
                    on_acked(done)
        except (OSError, asyncio.TimeoutError) as exc:
            self._drop()
            raise SendError(f"sending to {address(self.host, self.port)}: {describe(exc)}") from exc
        except BaseException:
            # cancelled (or on_acked raised) with a frame maybe half written:
            # the connection cannot carry another message
            self._drop()
            raise
        return done

    def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.transport.abort()

    async def close(self) -> None:
        """Close the connection (flushing what is buffered, within ``timeout``); never raises."""
        writer, self._writer, self._reader = self._writer, None, None
        await close_stream(writer, min(self.timeout, 5.0))
