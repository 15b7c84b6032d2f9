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
standard one; rsyslog's examples use 2514; syslog over TLS is 6514).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Optional, Tuple, Union
from urllib.parse import urlsplit

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

SCHEMES = ("relp", "tcp", "tls")
ACCEPTED = (
    "whitespace-separated relp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT (IPv6 as [::1])"
)

Client = Union[RelpClient, StreamSender]


@dataclass(frozen=True)
class Destination:
    """One URL of the ``forward`` setting."""

    scheme: str  # relp, tcp or tls
    host: str  # without brackets
    port: int
    url: str  # as written (the name in logs, metrics and state files)


def parse_destination(url: str) -> Destination:
    """One URL; a bad one raises ValueError with a one-line reason."""

    def bad(reason: str) -> ValueError:
        return ValueError(f"{ACCEPTED}; {url!r} {reason}")

    scheme, sep, rest = url.partition("://")
    if not sep:
        raise bad("is not a URL")
    if scheme.lower() not in SCHEMES:
        raise bad(f"has an unknown scheme {scheme!r}")
    if rest.count(":") > 1 and not rest.startswith("["):
        raise bad("has an IPv6 address without brackets")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise bad("has a bad host or port") from None
    if parts.username is not None or parts.password is not None:
        raise bad("has a user name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("has more than host and port")
    if not host:
        raise bad("has no host")
    if port is None:
        raise bad("has no port")
    if not 0 < port < 65536:
        raise bad("has a port outside 1..65535")
    return Destination(parts.scheme, host, port, url)


def parse_destinations(value: str) -> Tuple[Destination, ...]:
    """The ``forward`` setting: every URL in it (none: forwarding is off)."""
    found = []
    seen = set()
    for url in value.split():
        destination = parse_destination(url)
        key = (destination.scheme, destination.host.lower(), destination.port)
        if key in seen:
            raise ValueError(f"{ACCEPTED}; {url!r} is listed twice")
        seen.add(key)
        found.append(destination)
    return tuple(found)


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
