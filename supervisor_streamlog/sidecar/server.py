"""The sidecar: a Tornado server that follows the files and streams them to browsers.

Run it as a program of its own under supervisord::

    [program:streamlog-web]
    command = supervisor-streamlog serve -c %(here)s/supervisord.conf

It reads only the files (the single source of truth) and supervisord's XML-RPC
(process states), never the capture code.  This module puts it together: the
application (``handlers``), the listening socket (``bind``, TLS) and the run
until SIGTERM.  The parts: ``processes`` (what is shown, and what feeds it),
``auth``, ``handlers``, ``hub`` (live fan-out), the stores and followers.

Security: binds 127.0.0.1 by default; optional Basic auth (plain or ``{SHA}``
passwords, compared in constant time) on everything but ``/healthz``; optional
TLS; WebSocket Origin must be this server or ``allowed_origins``; a strict
Content-Security-Policy; process names are looked up among the known processes,
never turned into paths; limits on message size, subscriptions and connections.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from typing import Any, Dict, Optional

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from ..config import Config
from ..logread.histogram import Histograms
from ..rpc import supervisor_proxy
from .actions import action_routes
from .auth import AddressCounts, ProxyTrust
from .handlers import (
    STATIC,
    DownloadHandler,
    HealthHandler,
    HistogramHandler,
    LogHandler,
    PageHandler,
    ProcessesHandler,
    SidecarMetricsHandler,
    StaticHandler,
)
from .live import MAX_CONNECTIONS_PER_ADDRESS, LiveHandler
from .processes import Sidecar
from .protocol import MAX_MESSAGE

log = logging.getLogger("supervisor_streamlog.server")

#: Open HTTP connections one client address may hold (browsers open about 6).
MAX_HTTP_CONNECTIONS_PER_ADDRESS = 64


def make_app(sidecar: Sidecar) -> tornado.web.Application:
    """The Tornado application; handlers get the sidecar via ``initialize``."""
    kwargs = {"sidecar": sidecar}
    histograms = {"sidecar": sidecar, "histograms": Histograms()}
    return tornado.web.Application(
        [
            (r"/", PageHandler, kwargs),
            (r"/static/(.*)", StaticHandler, {"path": STATIC, "sidecar": sidecar}),
            (r"/api/processes", ProcessesHandler, kwargs),
            (r"/api/log/([^/]+)", LogHandler, kwargs),
            (r"/api/log/([^/]+)/download", DownloadHandler, kwargs),
            (r"/api/log/([^/]+)/histogram", HistogramHandler, histograms),
            (
                r"/ws",
                LiveHandler,
                {"sidecar": sidecar, "connections": AddressCounts(MAX_CONNECTIONS_PER_ADDRESS)},
            ),
            (r"/healthz", HealthHandler, kwargs),
            (r"/metrics", SidecarMetricsHandler, kwargs),
            *action_routes(sidecar),
        ],
        websocket_max_message_size=MAX_MESSAGE,
        websocket_ping_interval=30,
        xsrf_cookies=False,
        debug=False,
    )


def _ssl_context(config: Config) -> Optional[ssl.SSLContext]:
    if not config.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.certfile, config.keyfile)
    return context


class LimitedHTTPServer(tornado.httpserver.HTTPServer):
    """An HTTPServer that caps open connections per client address.

    Reading a request's header (and the wait for the next request on a
    kept-alive connection) is bounded by ``request_timeout``, so a client
    that sends half a header is cut off; and one address may hold at most
    :data:`MAX_HTTP_CONNECTIONS_PER_ADDRESS` connections, so a few hundred
    such sockets cannot use up the server's file descriptors while the timer
    runs.  Connections from a trusted proxy or a unix socket (a proxy too)
    are not capped: the proxy speaks for many browsers.  A connection that
    becomes a WebSocket leaves this count for the WebSocket limit.
    """

    def initialize(  # type: ignore[override]
        self, *args: Any, proxies: ProxyTrust, limit: int, **kwargs: Any
    ) -> None:
        super().initialize(*args, **kwargs)
        self.proxies = proxies
        self.per_address = AddressCounts(limit)
        self._address_of: Dict[Any, str] = {}
        #: Connections closed at once because their address had too many (metrics, tests).
        self.refused = 0

    def handle_stream(self, stream: tornado.iostream.IOStream, address: Any) -> None:
        peer = address[0] if isinstance(address, tuple) and address else ""
        if peer and not self.proxies.trusted(peer):
            if not self.per_address.admit(peer):
                self.refused += 1
                stream.close()
                return
            self._address_of[stream] = peer
        super().handle_stream(stream, address)

    def on_close(self, server_conn: Any) -> None:
        peer = self._address_of.pop(getattr(server_conn, "stream", None), None)
        if peer is not None:
            self.per_address.release(peer)
        super().on_close(server_conn)


def listen(app: tornado.web.Application, config: Config) -> tornado.httpserver.HTTPServer:
    """Bind ``config.bind`` (host:port or unix:/path); return the server."""
    server = LimitedHTTPServer(
        app,
        ssl_options=_ssl_context(config),
        xheaders=False,
        proxies=ProxyTrust(config),
        limit=MAX_HTTP_CONNECTIONS_PER_ADDRESS,
        # The header of a request (and the idle wait before the next one on a
        # kept-alive connection) must arrive within this; so must a body.
        idle_connection_timeout=config.request_timeout,
        body_timeout=config.request_timeout,
        max_header_size=64 * 1024,
        max_body_size=1024 * 1024,
    )
    if config.bind.startswith("unix:"):
        server.add_socket(tornado.netutil.bind_unix_socket(config.bind[5:], mode=0o600))
    else:
        host, _, port = config.bind.rpartition(":")
        server.listen(int(port), address=host.strip("[]"))
    return server


async def serve(config: Config) -> int:
    """Run the sidecar until SIGTERM/SIGINT."""
    rpc = supervisor_proxy(config.source)
    if config.layout == "hosts":
        # A central sidecar shows what receive wrote for many hosts: the
        # supervisord that may run it here knows none of those processes.
        log.warning("layout = hosts: processes from the files only (no supervisord states)")
        rpc = None
    sidecar = Sidecar(config, rpc=rpc)
    sidecar.start()
    server = listen(make_app(sidecar), config)
    scheme = "https" if config.certfile else "http"
    log.warning("streamlog sidecar on %s://%s/ (logdir %s)", scheme, config.bind, config.logdir)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    server.stop()
    for client in list(sidecar.hub.clients):
        sender = client.sender
        if isinstance(sender, LiveHandler):
            sender.close(1001, "server shutting down")
    # Connections first, then the executors: a request still arriving on a
    # kept-alive connection must not find the history thread gone (a 500).
    await server.close_all_connections()
    sidecar.stop()
    return 0


def run(config: Config) -> int:
    """Entry point of ``supervisor-streamlog serve``."""
    logging.basicConfig(level=logging.WARNING, format="streamlog-web: %(message)s")
    logging.getLogger("supervisor_streamlog.actions").setLevel(logging.INFO)  # who did what
    return asyncio.run(serve(config))
