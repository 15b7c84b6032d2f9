"""The sidecar: a Tornado server that follows the files and streams them to browsers.

Run it as a program of its own under supervisord::

    [program:streamlog-web]
    command = supervisor-streamlog serve -c %(here)s/supervisord.conf

It reads only the files (the single source of truth) and supervisord's XML-RPC
(process states), never the capture code.  This module puts it together: the
parts (:class:`Sidecar`), the application (``handlers``, each URL spec naming
what its handler uses), the listening socket (``bind``, TLS) and the run until
SIGTERM.  The parts: ``processes`` (the registry of what is shown),
``rawpoll`` (uncaptured processes), ``statepoll`` (supervisord's states),
``restartcount``, ``snapshots`` (metrics), ``auth``, ``hub`` (live fan-out),
the watcher, and the read side's stores and followers.

Security: binds 127.0.0.1 by default; optional Basic auth (plain or ``{SHA}``
passwords, compared in constant time) on everything but ``/healthz``; optional
TLS; WebSocket Origin must be this server or ``allowed_origins``; a strict
Content-Security-Policy; process names are looked up among the known processes,
never turned into paths; limits on message size, subscriptions and connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import ssl
from typing import Any, Callable, Dict, Optional, Union

import tornado.httpserver
import tornado.ioloop
import tornado.iostream
import tornado.netutil
import tornado.web

from ..config import Config
from ..logread.follow import FileFollower
from ..logread.histogram import Histograms
from ..logread.searchworker import SearchWorker
from ..ondisk.logdir import discover_layout
from ..rpc import supervisor_proxy
from .actions import ProcessControl, action_routes
from .auth import Access, AddressCounts, ProxyTrust
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
from .hosts import HostWatchers
from .hub import Hub
from .live import MAX_CONNECTIONS_PER_ADDRESS, LiveHandler
from .processes import ProcessRegistry
from .protocol import MAX_MESSAGE
from .rawpoll import RawPoller
from .restartcount import RestartCounter
from .snapshots import Snapshots
from .statepoll import StatePoller
from .watcher import Watcher

log = logging.getLogger("supervisor_streamlog.server")

#: Open HTTP connections one client address may hold (browsers open about 6).
MAX_HTTP_CONNECTIONS_PER_ADDRESS = 64


class Sidecar:
    """The parts of one sidecar, made, started and stopped together.

    Nothing else receives this object: :func:`make_app` hands each handler the
    parts it uses.  Threads: ``streamlog-catchup`` (the hub's catch-up reads),
    ``streamlog-history`` (history, downloads, histograms), and those the parts
    own (``streamlog-rpc``, ``streamlog-restarts``, the search worker process).
    """

    def __init__(self, config: Config, rpc: Any = None) -> None:
        self.config = config
        self.access = Access(config)
        #: Catch-up reads of live subscriptions (tail, cursor) run here, off the IOLoop.
        self.catchup_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-catchup")
        #: History requests run here, one at a time, with stores of their own.
        self.history_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-history")
        self.hub = Hub(call_soon=self._call_soon, run_blocking=self._run_blocking)
        #: supervisord's view of every process, by spec: written by the state poller only.
        states: Dict[str, Dict[str, Any]] = {}
        self.restarts = RestartCounter(self.hub, states)
        self.registry = ProcessRegistry(config, self.hub, states, self.restarts)
        self.raw = RawPoller(self.registry)
        self.supervisor = StatePoller(rpc, self.hub, self.raw, states)
        self.snapshots = Snapshots(self.registry, self.hub, self.supervisor)
        #: Regular-expression searches run in this worker process (searchworker).
        self.search_worker = SearchWorker()
        self.watcher: Optional[Union[Watcher, HostWatchers]] = None

    def _call_soon(self, callback: Callable[[], None]) -> None:
        tornado.ioloop.IOLoop.current().add_callback(callback)

    def _run_blocking(self, read: Callable[[], Any]) -> Any:
        return tornado.ioloop.IOLoop.current().run_in_executor(self.catchup_executor, read)

    def start(self) -> None:
        """Find the logs there are, watch for new ones, start polling supervisord."""
        os.makedirs(self.config.logdir, exist_ok=True)
        self.search_worker.start()
        registry = self.registry
        for spec, path in discover_layout(self.config.logdir, self.config.layout).items():
            registry.add_process(spec, path)
        if self.config.layout == "hosts":
            self.watcher = HostWatchers(self.config.logdir, registry.add_process)
        else:
            self.watcher = Watcher(self.config.logdir, registry.add_process)
        registry.watcher = self.watcher
        for spec, shown in registry.logs.items():
            if isinstance(shown.follower, FileFollower):
                self.watcher.watch(spec, shown.follower)
        self.watcher.start()
        if self.supervisor.rpc is not None:
            self.supervisor.start()
            self.raw.start()

    def stop(self) -> None:
        """Stop watching and polling; let the threads and the search worker go."""
        if self.watcher is not None:
            self.watcher.stop()
        self.supervisor.stop()
        self.raw.stop()
        self.restarts.stop()
        self.history_executor.shutdown(wait=False)
        self.search_worker.stop()
        self.catchup_executor.shutdown(wait=False)


def make_app(sidecar: Sidecar) -> tornado.web.Application:
    """The Tornado application; each URL spec names what its handler uses."""
    access, registry, history = sidecar.access, sidecar.registry, sidecar.history_executor
    supervisor = sidecar.supervisor
    control = ProcessControl(sidecar.config, supervisor.states, supervisor.rpc is not None)
    return tornado.web.Application(
        [
            (r"/", PageHandler, {"access": access, "registry": registry}),
            (r"/static/(.*)", StaticHandler, {"path": STATIC, "access": access}),
            (
                r"/api/processes",
                ProcessesHandler,
                {"access": access, "registry": registry, "supervisor": supervisor},
            ),
            (
                r"/api/log/([^/]+)",
                LogHandler,
                {
                    "access": access,
                    "registry": registry,
                    "history": history,
                    "search_worker": sidecar.search_worker,
                },
            ),
            (
                r"/api/log/([^/]+)/download",
                DownloadHandler,
                {"access": access, "registry": registry, "history": history},
            ),
            (
                r"/api/log/([^/]+)/histogram",
                HistogramHandler,
                {
                    "access": access,
                    "registry": registry,
                    "history": history,
                    "histograms": Histograms(),
                },
            ),
            (
                r"/ws",
                LiveHandler,
                {
                    "access": access,
                    "registry": registry,
                    "hub": sidecar.hub,
                    "states": supervisor.states,
                    "connections": AddressCounts(MAX_CONNECTIONS_PER_ADDRESS),
                    "enabled": sidecar.config.websocket_enabled,
                },
            ),
            (r"/healthz", HealthHandler, {"snapshots": sidecar.snapshots}),
            (
                r"/metrics",
                SidecarMetricsHandler,
                {"access": access, "snapshots": sidecar.snapshots},
            ),
            *action_routes(access, control),
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
