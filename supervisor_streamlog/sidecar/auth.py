"""Who may talk to the sidecar: Basic auth, the Host check, and proxies' addresses.

* **Credentials** -- HTTP Basic against ``username``/``password`` (plain, or
  ``{SHA}`` and the SHA-1 hex digest as in supervisord's
  ``[inet_http_server]``), compared in constant time, on everything but
  ``/healthz``.
* **Host** -- a sidecar bound to loopback answers only to loopback names (DNS
  rebinding).
* **Client address** -- behind a reverse proxy listed in ``trusted_proxies``,
  per-address limits count the browser, not the proxy.

Handlers get an :class:`Access` (these rules, from the config) and, where they
hold connections open, an :class:`AddressCounts` they ask to admit and release
an address.  The WebSocket Origin check lives with the WebSocket handler
(``live``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from typing import Dict, Optional, Tuple
from urllib.parse import urlparse

import tornado.httputil
import tornado.web

from ..config import Config

#: (HTTP status, reason) of a refused request.
Refusal = Tuple[int, str]


def check_credentials(config: Config, header: Optional[str]) -> bool:
    """Basic auth against ``username``/``password`` (plain or ``{SHA}`` hex), in
    constant time; True when no username is configured."""
    if not config.username:
        return True
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    if not sep:
        return False
    stored = config.password or ""
    if stored.startswith("{SHA}"):
        given = hashlib.sha1(password.encode("utf-8")).hexdigest().encode()
        expected = stored[5:].strip().lower().encode()
    else:
        given, expected = password.encode("utf-8"), stored.encode("utf-8")
    user_ok = hmac.compare_digest(user.encode("utf-8"), config.username.encode("utf-8"))
    return hmac.compare_digest(given, expected) and user_ok


def _loopback(name: str) -> bool:
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(config: Config, host: Optional[str]) -> bool:
    """Refuse requests for another host name (DNS rebinding).

    A sidecar bound to loopback answers only to loopback names (and the hosts
    of ``allowed_origins``): a page on another site whose name was made to
    resolve to 127.0.0.1 cannot read the logs.  One bound elsewhere was exposed
    on purpose (then set ``username``/``password``), and a unix socket is
    reached through a proxy that picks the Host itself.
    """
    if config.bind.startswith("unix:"):
        return True
    if not _loopback(config.bind.rpartition(":")[0]):
        return True
    name = urlparse(f"//{host or ''}").hostname or ""
    if _loopback(name):
        return True
    allowed = (config.allowed_origins or "").replace(",", " ").split()
    return name in {(urlparse(origin).hostname or "").lower() for origin in allowed}


class ProxyTrust:
    """Which peers are reverse proxies (``trusted_proxies``), to find a client's address.

    The per-address connection limit must count browsers, not the proxy in
    front of them: when, and only when, the peer is a trusted proxy, the
    client is the nearest address in ``X-Forwarded-For`` that is not a
    trusted proxy itself (or ``X-Real-IP``).  Anyone else could write those
    headers, so they are ignored otherwise.
    """

    def __init__(self, config: Config) -> None:
        self.unix = config.bind.startswith("unix:")
        self.unix_trusted = "unix" in config.trusted_proxies
        self.networks = [
            ipaddress.ip_network(item, strict=False)
            for item in config.trusted_proxies
            if item != "unix"
        ]

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, request: tornado.httputil.HTTPServerRequest) -> str:
        """The address a request comes from, for per-address limits."""
        if self.unix:
            peer = "unix"  # Tornado says 0.0.0.0 for a unix socket
            if not self.unix_trusted:
                return peer
        else:
            peer = request.remote_ip or "unknown"
            if not self.trusted(peer):
                return peer
        hops = [
            hop.strip()
            for header in request.headers.get_list("X-Forwarded-For")
            for hop in header.split(",")
        ]
        for hop in reversed(hops):
            if not _is_ip(hop):
                return peer  # garbled: do not guess
            if not self.trusted(hop):
                return hop
        real = request.headers.get("X-Real-IP", "").strip()
        if _is_ip(real):
            return real
        return hops[0] if hops else peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class AddressCounts:
    """Open connections per client address, under a cap: the one place they are counted.

    A connection is counted from :meth:`add` (or an :meth:`admit` that said yes)
    until its :meth:`release`; an address with none left is forgotten.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Dict[str, int] = {}

    def has_room(self, address: str) -> bool:
        """Whether ``address`` may open one more connection."""
        return self._counts.get(address, 0) < self.limit

    def add(self, address: str) -> None:
        """Count a connection that is open (its address was checked before)."""
        self._counts[address] = self._counts.get(address, 0) + 1

    def admit(self, address: str) -> bool:
        """Count a connection if the address is under the cap; False when it is not."""
        if not self.has_room(address):
            return False
        self.add(address)
        return True

    def release(self, address: str) -> None:
        """A counted connection closed."""
        left = self._counts.get(address, 1) - 1
        if left > 0:
            self._counts[address] = left
        else:
            self._counts.pop(address, None)


class Access:
    """The rules of who may talk to one sidecar, from its config, for its handlers.

    Handlers ask it whether to refuse a request, which address a request
    comes from (:class:`ProxyTrust`) and which other origins may use the page;
    they never see the rest of the config.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.proxies = ProxyTrust(config)

    @property
    def allowed_origins(self) -> Optional[str]:
        """``allowed_origins`` as configured (origins separated by commas or spaces)."""
        return self.config.allowed_origins

    def refusal(self, request: tornado.httputil.HTTPServerRequest) -> Optional[Refusal]:
        """(status, reason) when ``request`` must be refused before anything else."""
        return refuse(self.config, request)

    def client(self, request: tornado.httputil.HTTPServerRequest) -> str:
        """The address ``request`` comes from, for per-address limits and logs."""
        return self.proxies.client(request)


def refuse(config: Config, request: tornado.httputil.HTTPServerRequest) -> Optional[Refusal]:
    """(status, reason) when a request must be refused before anything else."""
    if not host_allowed(config, request.headers.get("Host")):
        return 403, "unexpected Host header"
    if not check_credentials(config, request.headers.get("Authorization")):
        return 401, "authentication required"
    return None


def send_refusal(handler: tornado.web.RequestHandler, refusal: Refusal, body: bool = True) -> None:
    """Answer a request :func:`refuse` turned down."""
    status, reason = refusal
    handler.set_status(status)
    if status == 401:
        handler.set_header("WWW-Authenticate", 'Basic realm="streamlog", charset="UTF-8"')
    handler.finish({"error": reason} if body else None)
