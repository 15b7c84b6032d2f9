"""The ``forward`` setting: where records go, and the client that takes them there.

::

    [streamlog]
    forward = relp://logs.example:2514 tls://[2001:db8::5]:6514

Whitespace-separated URLs, one per destination:

- ``relp://HOST:PORT``: RELP, acknowledged (:mod:`.relp`);
- ``tcp://HOST:PORT``: RFC 5424 with octet-counting framing over TCP (:mod:`.octet`);
- ``tls://HOST:PORT``: the same over TLS (RFC 5425), the server's certificate
  verified against a CA file (or the system's CAs) by default.

An IPv6 address goes in brackets.  The port is required (RELP has no
standard one; rsyslog's examples use 2514; syslog over TLS is 6514).  The
URLs are parsed where every setting is validated (:mod:`..config`); this
module makes their clients.  Threads: none; called by the forwarder on its
asyncio loop when a lane connects.
"""

from __future__ import annotations

import ssl
from typing import Optional, Union

from ..config import Destination, parse_destinations
from .octet import SendError, StreamSender
from .relp import RelpClient, RelpError

__all__ = [
    "Destination",
    "RelpClient",
    "RelpError",
    "SendError",
    "StreamSender",
    "client_for",
    "parse_destinations",
    "tls_context",
]

Client = Union[RelpClient, StreamSender]


def tls_context(
    cafile: Optional[str] = None,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client TLS context: the server's certificate checked against ``cafile``
    (the system's CAs when None) and its name, unless ``verify`` is false;
    ``certfile``/``keyfile`` present a client certificate.  Unreadable or bad
    files raise ValueError with a one-line reason."""
    try:
        context = ssl.create_default_context(cafile=cafile)
        if certfile:
            context.load_cert_chain(certfile, keyfile or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        files = ", ".join(name for name in (cafile, certfile, keyfile) if name)
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ValueError(f"cannot use the TLS files {files or '(system CAs)'}: {reason}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def client_for(
    destination: Destination,
    ssl_context: Optional[ssl.SSLContext] = None,
    window: int = 1024,
    timeout: float = 30.0,
) -> Client:
    """The client for a destination: RELP, or octet-counted TCP or TLS.

    ``ssl_context`` is used for ``tls://`` (a verifying default context
    when None) and ignored for the others.
    """
    if destination.scheme == "relp":
        return RelpClient(destination.host, destination.port, window=window, timeout=timeout)
    if destination.scheme == "tls":
        context = ssl_context if ssl_context is not None else tls_context()
        return StreamSender(destination.host, destination.port, context, timeout=timeout)
    return StreamSender(destination.host, destination.port, None, timeout=timeout)
