"""The sidecar: a Tornado server that follows the files and streams them to browsers.

Run it as a program of its own under supervisord::

    [program:streamlog-web]
    command = supervisor-streamlog serve -c %(here)s/supervisord.conf

It reads only the files (the single source of truth) and supervisord's XML-RPC
(process states), never the capture code.  HTTP surface (docs/protocol.md):
``/`` the tail page, ``/api/processes``, ``/api/log/NAME``, ``/ws``,
``/healthz``, ``/metrics``.

Security: binds 127.0.0.1 by default; optional Basic auth (plain or ``{SHA}``
passwords, compared in constant time) on everything but ``/healthz``; optional
TLS; WebSocket Origin must be this server or ``allowed_origins``; a strict
Content-Security-Policy; process names are looked up among the known processes,
never turned into paths; limits on message size, subscriptions and connections.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import hashlib
import hmac
import ipaddress
import logging
import multiprocessing
import os
import re
import signal
import ssl
import time
from datetime import datetime
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set
from urllib.parse import urlparse

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.iostream
import tornado.netutil
import tornado.web
import tornado.websocket

from ..config import Config
from ..ondisk.files import is_header
from ..ondisk.logdir import discover
from ..rpc import supervisor_proxy
from .follow import FileFollower
from .hub import Client, Hub, entry_json
from .logstore import LogStore
from .metrics import ProcessFigures, Snapshot, render
from .protocol import MAX_MESSAGE, MessageError, parse_message
from .rawlog import RawChannel, RawFile, RawFollower, RawStore, raw_files
from .watcher import Watcher

log = logging.getLogger("supervisor_streamlog.server")

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_SUBSCRIPTIONS = 32
MAX_CONNECTIONS_PER_ADDRESS = 32
MAX_BAD_MESSAGES = 20
MAX_PAGE = 1000
SEARCH_BUDGET = 0.5
FOLLOW_CHUNK = 256 * 1024
STATE_POLL = 1.0
#: How often supervisord's own child logs (uncaptured processes) are polled.
RAW_POLL = 0.1
_STATE_KEYS = ("state", "pid", "start", "stop", "exitstatus")


# ---------------------------------------------------------------- auth


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


# ---------------------------------------------------------------- the sidecar


class Sidecar:
    """The server's state: processes, their stores and followers, the hub."""

    def __init__(self, config: Config, rpc: Any = None) -> None:
        self.config = config
        #: Catch-up reads of live subscriptions (tail, cursor) run here, off the IOLoop.
        self.catchup_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-catchup")
        self.hub = Hub(call_soon=self._call_soon, run_blocking=self._run_blocking)
        self.stores: Dict[str, LogStore] = {}
        self.paths: Dict[str, str] = {}
        self.followers: Dict[str, FileFollower] = {}
        self.watcher: Optional[Watcher] = None
        self.rpc = rpc
        self.states: Dict[str, Dict[str, Any]] = {}
        self.rpc_error: Optional[str] = None
        self.connections: Dict[str, int] = {}
        self.proxies = ProxyTrust(config)
        self.started = time.time()
        self.lines: Dict[str, int] = {}
        self.bytes: Dict[str, int] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-rpc")
        #: History requests run here, one at a time, with stores of their own.
        self.history_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-history")
        self._history_stores: Dict[str, LogStore] = {}
        self._poller: Optional[tornado.ioloop.PeriodicCallback] = None
        #: Uncaptured processes shown from supervisord's own child logs (rawlog).
        self.raw: Dict[str, RawFollower] = {}
        self.raw_stores: Dict[str, RawStore] = {}
        self._raw_poller: Optional[tornado.ioloop.PeriodicCallback] = None

    def _call_soon(self, callback: Any) -> None:
        tornado.ioloop.IOLoop.current().add_callback(callback)

    def _run_blocking(self, read: Callable[[], Any]) -> Any:
        return tornado.ioloop.IOLoop.current().run_in_executor(self.catchup_executor, read)

    # ------------------------------------------------------------ processes

    def start(self) -> None:
        os.makedirs(self.config.logdir, exist_ok=True)
        for spec, path in discover(self.config.logdir).items():
            self.add_process(spec, path)
        self.watcher = Watcher(self.config.logdir, self.add_process)
        for spec, follower in self.followers.items():
            self.watcher.watch(spec, follower)
        self.watcher.start()
        if self.rpc is not None:
            self._poller = tornado.ioloop.PeriodicCallback(self.poll_states, STATE_POLL * 1000)
            self._poller.start()
            tornado.ioloop.IOLoop.current().add_callback(self.poll_states)
            self._raw_poller = tornado.ioloop.PeriodicCallback(self.poll_raw, RAW_POLL * 1000)
            self._raw_poller.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self._poller is not None:
            self._poller.stop()
        if self._raw_poller is not None:
            self._raw_poller.stop()
        for follower in self.raw.values():
            follower.close()
        self._executor.shutdown(wait=False)
        self.history_executor.shutdown(wait=False)
        self.catchup_executor.shutdown(wait=False)

    def add_process(self, spec: str, path: str) -> None:
        """A process log file appeared: follow it from its current end."""
        if spec in self.stores:
            return
        shown_raw = self.raw.pop(spec, None)
        if shown_raw is not None:
            shown_raw.close()
            self.raw_stores.pop(spec, None)
        store = LogStore(path)
        self.stores[spec] = store
        self.paths[spec] = path
        follower = FileFollower(
            path,
            None,
            functools.partial(self._published, spec),
            on_gap=functools.partial(self._gap, spec),
            on_reset=functools.partial(self._reset, spec),
            # One poll reads at most this much: a flooding process must not hold
            # the other processes' lines back (4 MiB took ~150 ms to parse).
            chunk_size=FOLLOW_CHUNK,
            # Records of a process nobody watches are counted, not parsed.
            wanted=functools.partial(self._watched, spec),
            on_advance=functools.partial(self._advanced, spec),
        )
        self.followers[spec] = follower
        old = self.hub.channels.pop(spec, None)
        self.hub.channel(spec, store, follower.position)
        if old is not None:
            # Captured from now on (it was shown from supervisord's own files):
            # its subscribers start again, live, in the new log's offsets.
            for sub in list(old.subscriptions):
                self.hub.subscribe(sub.client, spec)
        if self.watcher is not None:
            self.watcher.watch(spec, follower)

    def add_raw(self, spec: str, files: List[RawFile]) -> None:
        """Show an uncaptured process from supervisord's own child log files."""
        follower = self.raw.get(spec)
        if follower is not None:
            for lane, raw in zip(follower.files, files):
                lane.path = raw.path  # changed by a reread: seen as a rotation
            return
        store = RawStore(files)
        follower = RawFollower(
            files,
            functools.partial(self._published, spec),
            on_reset=functools.partial(self._raw_reset, spec),
            wanted=functools.partial(self._watched, spec),
            on_advance=functools.partial(self._advanced, spec),
        )
        self.raw[spec] = follower
        self.raw_stores[spec] = store
        self.hub.add_channel(RawChannel(self.hub, spec, store, follower.position))

    def remove_raw(self, spec: str) -> None:
        """supervisord no longer has an uncaptured process: stop showing its child logs.

        Its files are closed (a deleted log's disk space is freed) and no longer
        polled or served; its subscriptions end with ``unsubscribed``, as the
        client could not unsubscribe from a process it can no longer name.
        """
        follower = self.raw.pop(spec, None)
        if follower is None:
            return
        follower.close()
        self.raw_stores.pop(spec, None)
        channel = self.hub.channels.pop(spec, None)
        if channel is None:
            return
        for sub in list(channel.subscriptions):
            if self.hub.unsubscribe(sub.client, spec):
                sub.client.send({"type": "unsubscribed", "process": spec})

    def poll_raw(self) -> None:
        """Read what is new in supervisord's own child logs."""
        for spec, follower in list(self.raw.items()):
            try:
                follower.poll()
            except Exception:
                log.exception("following %s's child logs failed", spec)

    def _published(self, spec: str, entries: List[Any]) -> None:
        channel = self.hub.channels[spec]
        self.lines[spec] = self.lines.get(spec, 0) + len(entries)
        self.bytes[spec] = self.bytes.get(spec, 0) + channel.span(
            entries[0].offset, entries[-1].end
        )
        channel.publish(entries)

    def _watched(self, spec: str) -> bool:
        channel = self.hub.channels.get(spec)
        return channel is not None and bool(channel.subscriptions)

    def _advanced(self, spec: str, start: int, end: int, lines: int) -> None:
        """Records read without parsing (nobody subscribed): metrics and position."""
        channel = self.hub.channels[spec]
        self.lines[spec] = self.lines.get(spec, 0) + lines
        self.bytes[spec] = self.bytes.get(spec, 0) + channel.span(start, end)
        channel.advance(start, end)

    def _gap(self, spec: str, start: int, end: int) -> None:
        """Bytes the follower could not read (retention was faster): say so."""
        channel = self.hub.channels.get(spec)
        if channel is not None:
            channel.gap(start, end)

    def _reset(self, spec: str, old: int, new: int) -> None:
        """The live file was truncated or replaced: offsets start again at ``new``."""
        log.warning("%s: log file was truncated or replaced (offset %d -> %d)", spec, old, new)
        channel = self.hub.channels.get(spec)
        if channel is not None:
            channel.reset(new)

    def _raw_reset(self, spec: str, position: int) -> None:
        """supervisord rotated (or truncated) one of its child logs: offsets start again."""
        log.info("%s: supervisord's child log rotated (offset now %d)", spec, position)
        channel = self.hub.channels.get(spec)
        if channel is not None:
            channel.reset(position)

    def history_store(self, spec: str) -> Any:
        """The history thread's store for ``spec`` (LogStore caches are not shared)."""
        if spec in self.raw_stores:
            return self.raw_stores[spec]  # keeps nothing between calls
        store = self._history_stores.get(spec)
        if store is None:
            store = self._history_stores[spec] = LogStore(self.paths[spec])
        return store

    def lookup(self, name: str) -> Optional[str]:
        """A known process spec for a client-given name (``group:name`` or ``name``)."""
        for spec in (name, f"{name}:{name}" if ":" not in name else name):
            if spec in self.stores or spec in self.raw:
                return spec
        return None

    async def poll_states(self) -> None:
        """Read process states from supervisord; broadcast the changes."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.run_in_executor(
                self._executor, lambda: self.rpc().supervisor.getAllProcessInfo()
            )
        except Exception as exc:
            if self.rpc_error is None:
                log.warning("cannot read process states from supervisord: %r", exc)
            self.rpc_error = repr(exc)
            return
        self.rpc_error = None
        seen: Set[str] = set()
        for info in infos:
            spec = f"{info['group']}:{info['name']}"
            seen.add(spec)
            state = {
                "process": spec,
                "state": info["statename"],
                "pid": info["pid"],
                "start": info["start"],
                "stop": info["stop"],
                "exitstatus": info["exitstatus"],
                "description": info["description"],
            }
            if spec not in self.stores:
                files = raw_files(info)
                if files:
                    self.add_raw(spec, files)
            previous = self.states.get(spec)
            self.states[spec] = state
            # "description" holds the uptime: it changes every second, the state does not.
            if previous is None or any(previous[k] != state[k] for k in _STATE_KEYS):
                self.hub.broadcast({"type": "state", **state})
        for spec in set(self.states) - seen:
            del self.states[spec]
            self.hub.broadcast({"type": "state", "process": spec, "state": "REMOVED"})
        for spec in set(self.raw) - seen:
            self.remove_raw(spec)

    def _specs(self) -> List[str]:
        """Every process supervisord runs and every process with a log file."""
        return sorted(set(self.states) | set(self.stores) | set(self.raw))

    def snapshot(self) -> Snapshot:
        """The figures of /metrics and /healthz, for the processes /api/processes lists."""
        figures = []
        for spec in self._specs():
            lag: Optional[int] = None
            if spec in self.stores:
                follower = self.followers.get(spec)
                try:
                    live = os.path.getsize(self.paths[spec])
                    lag = max(0, live - (follower.file_position if follower else 0))
                except OSError:
                    lag = 0
            figures.append(
                ProcessFigures(spec, self.lines.get(spec, 0), self.bytes.get(spec, 0), lag)
            )
        return Snapshot(
            processes=figures,
            clients=len(self.hub.clients),
            queued_records=self.hub.queued(),
            sent_records=self.hub.sent_records,
            skipped_records=self.hub.skipped_records,
            supervisor_up=None if self.rpc is None else self.rpc_error is None,
        )

    def processes(self) -> List[Dict[str, Any]]:
        """Every process supervisord runs and every process with a log file."""
        result = []
        for spec in self._specs():
            group, _, name = spec.partition(":")
            item: Dict[str, Any] = {"name": spec, "group": group, "process": name}
            state = self.states.get(spec)
            if state is not None:
                item.update({k: v for k, v in state.items() if k != "process"})
            else:
                item["state"] = "UNKNOWN"
            item["captured"] = spec in self.stores
            if spec in self.stores:
                item["log"] = os.path.relpath(self.paths[spec], self.config.logdir)
                item["cursor"] = self.hub.channels[spec].position
            elif spec in self.raw:
                item["uncaptured"] = True  # shown from supervisord's own child logs
                item["cursor"] = self.hub.channels[spec].position
            result.append(item)
        return result


# ---------------------------------------------------------------- handlers


def refuse(config: Config, request: tornado.httputil.HTTPServerRequest) -> Optional[tuple]:
    """(status, reason) when a request must be refused before anything else."""
    if not host_allowed(config, request.headers.get("Host")):
        return 403, "unexpected Host header"
    if not check_credentials(config, request.headers.get("Authorization")):
        return 401, "authentication required"
    return None


def send_refusal(handler: tornado.web.RequestHandler, refusal: tuple, body: bool = True) -> None:
    """Answer a request :func:`refuse` turned down."""
    status, reason = refusal
    handler.set_status(status)
    if status == 401:
        handler.set_header("WWW-Authenticate", 'Basic realm="streamlog", charset="UTF-8"')
    handler.finish({"error": reason} if body else None)


class BaseHandler(tornado.web.RequestHandler):
    """Security headers and auth for every page and API."""

    def initialize(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> Optional[Awaitable[None]]:
        refusal = refuse(self.sidecar.config, self.request)
        if refusal is not None:
            send_refusal(self, refusal)
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": self._reason})

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish({"error": message})


class PageHandler(BaseHandler):
    def get(self) -> None:
        with open(os.path.join(STATIC, "index.html"), "rb") as handle:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(handle.read())


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's assets, with the same headers and auth as the page."""

    def initialize(self, path: str, sidecar: Sidecar) -> None:  # type: ignore[override]
        super().initialize(path)
        self.sidecar = sidecar

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> Optional[Awaitable[None]]:
        refusal = refuse(self.sidecar.config, self.request)
        if refusal is not None:
            send_refusal(self, refusal, body=False)
        return None


class ProcessesHandler(BaseHandler):
    def get(self) -> None:
        self.finish(
            {
                "processes": self.sidecar.processes(),
                "supervisor": (self.sidecar.rpc_error or "ok") if self.sidecar.rpc else "n/a",
            }
        )


def _int_arg(
    handler: BaseHandler, name: str, default: Optional[int], low: int, high: int
) -> Optional[int]:
    raw = handler.get_argument(name, None)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise tornado.web.HTTPError(400, reason=f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise tornado.web.HTTPError(400, reason=f"{name} must be from {low} to {high}")
    return value


def _time_arg(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise tornado.web.HTTPError(400, reason="time must be RFC 3339 or epoch seconds") from None


class SearchTimeout(ValueError):
    """A regular expression search that had to be stopped."""


def _search_child(conn: Any, run: Callable[[], Any]) -> None:
    try:
        conn.send(("ok", run()))
    except Exception as exc:  # sent back to be raised in the server
        conn.send(("error", exc))
    finally:
        conn.close()


def run_with_deadline(run: Callable[[], Any], timeout: float) -> Any:
    """Run ``run()`` in a forked child; kill it and raise :class:`SearchTimeout`
    if it is not done in ``timeout`` seconds.  Exceptions come back as they were."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_search_child, args=(sender, run), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            child.kill()
            raise SearchTimeout(
                "the regular expression took too long (nested repetition such as (a+)+ "
                "backtracks without end): simplify it"
            )
        kind, value = receiver.recv()
    except EOFError:
        raise SearchTimeout("the search stopped unexpectedly") from None
    finally:
        receiver.close()
        child.join(1)
    if kind == "error":
        raise value
    return value


class LogHandler(BaseHandler):
    """History of one process: pages by cursor, a jump to a time, or a search.

    File reading runs on the history thread (a search may take its whole time
    budget, a first look into a ``.gz`` decompresses it): the IOLoop, and so
    every live client, never waits for it.  That thread has stores of its own.
    """

    async def get(self, name: str) -> None:
        spec = self.sidecar.lookup(name)
        if spec is None:
            self.fail(404, "no such process log")
            return
        limit = _int_arg(self, "limit", 200, 1, MAX_PAGE) or 200
        cursor = _int_arg(self, "cursor", None, 0, 2**62)
        direction = self.get_argument("direction", "backward")
        if direction not in ("backward", "forward"):
            raise tornado.web.HTTPError(400, reason="direction must be backward or forward")
        query = self.get_argument("q", None)
        raw_time = self.get_argument("time", None)
        when = None if raw_time is None else _time_arg(raw_time)
        uncaptured = spec in self.sidecar.raw
        if when is not None and uncaptured:
            raise tornado.web.HTTPError(
                400, reason="no time jump: supervisord's own child logs carry no timestamps"
            )
        search = None
        if query:
            search = {
                "regex": self.get_argument("regex", "0") == "1",
                "ignore_case": self.get_argument("case", "1") == "0",
            }
        read = functools.partial(
            self._read,
            self.sidecar.history_store(spec),
            spec,
            limit,
            cursor,
            direction,
            query,
            search,
            when,
        )
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self.sidecar.history_executor, read)
        except ValueError as exc:  # a bad regular expression
            self.fail(400, str(exc)[:200])
            return
        if uncaptured:
            body["uncaptured"] = True
        self.finish(body)

    @staticmethod
    def _read(
        store: Any,
        spec: str,
        limit: int,
        cursor: Optional[int],
        direction: str,
        query: Optional[str],
        search: Optional[Dict[str, bool]],
        when: Optional[float],
    ) -> Dict[str, Any]:
        """On the history thread: the response body."""
        if query and search is not None:
            run = functools.partial(
                store.search,
                query,
                start=cursor,
                backward=direction == "backward",
                limit=limit,
                budget=SEARCH_BUDGET,
                **search,
            )
            # A regular expression can backtrack for hours on one line, and
            # Python cannot interrupt it: run it where it can be killed.
            result = run_with_deadline(run, SEARCH_BUDGET + 2.0) if search["regex"] else run()
            return {
                "process": spec,
                "entries": [entry_json(e) for e in result.entries],
                "next": result.next,
                "complete": result.complete,
            }
        if when is not None:
            cursor = store.seek_time(when)
            direction = "forward"
        if direction == "forward":
            page = store.read_forward(cursor, limit)
        else:
            page = store.read_backward(cursor, limit)
        first, last = store.bounds()
        return {
            "process": spec,
            "entries": [
                entry_json(e) for e in page.entries if not is_header(e.record.stream, e.record.data)
            ],
            "start": page.start,
            "end": page.end,
            "has_before": page.has_before,
            "has_after": page.has_after,
            "missing": list(page.missing) if page.missing else None,
            "first": first,
            "last": last,
        }


def download_name(spec: str) -> str:
    """A file name for a process's download that no browser or shell can misread."""
    group, _, name = spec.partition(":")
    stem = name if group == name else f"{group}_{name}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".")[:100] or "process"
    return safe + ".log"


class DownloadHandler(BaseHandler):
    """``/api/log/NAME/download``: the whole log (or [from, to)) as one text file.

    Streamed: each chunk is read on the history thread (a ``.gz`` is
    decompressed as it goes) and flushed to the client before the next is
    read, so memory stays at a chunk and the IOLoop never waits for the disk.
    """

    async def get(self, name: str) -> None:
        spec = self.sidecar.lookup(name)
        if spec is None:
            self.fail(404, "no such process log")
            return
        start = _int_arg(self, "from", None, 0, 2**62)
        end = _int_arg(self, "to", None, 0, 2**62)
        chunks = self.sidecar.history_store(spec).export(start, end)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{download_name(spec)}"')
        loop = asyncio.get_running_loop()
        executor = self.sidecar.history_executor
        try:
            while True:
                chunk = await loop.run_in_executor(executor, next, chunks, None)
                if chunk is None:
                    break
                self.write(chunk)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return  # the client went away
        finally:
            await loop.run_in_executor(executor, chunks.close)
        self.finish()


class HealthHandler(tornado.web.RequestHandler):
    """Liveness, without auth and without secrets."""

    def initialize(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def get(self) -> None:
        snap = self.sidecar.snapshot()
        up = snap.supervisor_up
        self.finish(
            {
                "status": "ok",
                "processes": len(snap.processes),
                "clients": snap.clients,
                "supervisor": "n/a" if up is None else ("ok" if up else "unreachable"),
            }
        )


class MetricsHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(render(self.sidecar.snapshot()))


class LiveHandler(tornado.websocket.WebSocketHandler):
    """``/ws``: subscriptions, live records, state changes (docs/protocol.md)."""

    def initialize(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.client: Optional[Client] = None
        self.bad_messages = 0
        self.address = ""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        config = self.sidecar.config
        refusal = refuse(config, self.request)
        if refusal is not None:
            send_refusal(self, refusal)
            return
        if not config.websocket_enabled:
            self.set_status(404)
            self.finish({"error": "live streaming is off (websocket_enabled = false)"})
            return
        self.address = self.sidecar.proxies.client(self.request)
        if self.sidecar.connections.get(self.address, 0) >= MAX_CONNECTIONS_PER_ADDRESS:
            self.set_status(429)
            self.finish({"error": "too many connections"})
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        parsed = urlparse(origin)
        host = self.request.headers.get("Host", "")
        if parsed.netloc and parsed.netloc.lower() == host.lower():
            return True
        allowed = (self.sidecar.config.allowed_origins or "").replace(",", " ").split()
        return origin.rstrip("/") in {item.rstrip("/") for item in allowed}

    def open(self, *args: str, **kwargs: str) -> None:
        # Frames are small and latency matters: without this, Nagle's algorithm
        # and delayed ACKs hold a frame back ~16-40 ms (bench/sidecar.py).
        self.set_nodelay(True)
        connections = self.sidecar.connections
        connections[self.address] = connections.get(self.address, 0) + 1
        self.client = self.sidecar.hub.connect(self)
        self.client.send(
            {
                "type": "hello",
                "version": 1,
                "max_message": MAX_MESSAGE,
                "max_subscriptions": MAX_SUBSCRIPTIONS,
            }
        )

    def send(self, message: str) -> Any:
        """For the hub: write one frame; the future completes once it is written."""
        try:
            return self.write_message(message)
        except tornado.websocket.WebSocketClosedError:
            if self.client is not None:
                self.client.close()
            return None

    def on_message(self, message: Any) -> None:
        client = self.client
        if client is None:
            return
        try:
            request = parse_message(message)
            self._handle(client, request)
        except MessageError as exc:
            self.bad_messages += 1
            client.send({"type": "error", "error": str(exc)})
            if self.bad_messages >= MAX_BAD_MESSAGES:
                self.close(1008, "too many bad messages")

    def _handle(self, client: Client, request: Dict[str, Any]) -> None:
        kind = request["type"]
        if kind == "ping":
            client.send({"type": "pong", "id": request["id"]})
            return
        spec = self.sidecar.lookup(request["process"])
        if spec is None:
            raise MessageError("no such process log")
        if kind == "unsubscribe":
            self.sidecar.hub.unsubscribe(client, spec)
            client.send({"type": "unsubscribed", "process": spec})
            return
        if spec not in client.subscriptions and len(client.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise MessageError(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        states = [
            {"type": "state", **state}
            for state in self.sidecar.states.values()
            if state["process"] == spec
        ]
        self.sidecar.hub.subscribe(
            client, spec, tail=request["tail"], cursor=request["cursor"], then=states
        )

    def on_close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            count = self.sidecar.connections.get(self.address, 1) - 1
            if count <= 0:
                self.sidecar.connections.pop(self.address, None)
            else:
                self.sidecar.connections[self.address] = count


# ---------------------------------------------------------------- application


def make_app(sidecar: Sidecar) -> tornado.web.Application:
    """The Tornado application; handlers get the sidecar via ``initialize``."""
    kwargs = {"sidecar": sidecar}
    return tornado.web.Application(
        [
            (r"/", PageHandler, kwargs),
            (r"/static/(.*)", StaticHandler, {"path": STATIC, "sidecar": sidecar}),
            (r"/api/processes", ProcessesHandler, kwargs),
            (r"/api/log/([^/]+)", LogHandler, kwargs),
            (r"/api/log/([^/]+)/download", DownloadHandler, kwargs),
            (r"/ws", LiveHandler, kwargs),
            (r"/healthz", HealthHandler, kwargs),
            (r"/metrics", MetricsHandler, kwargs),
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


def listen(app: tornado.web.Application, config: Config) -> tornado.httpserver.HTTPServer:
    """Bind ``config.bind`` (host:port or unix:/path); return the server."""
    server = tornado.httpserver.HTTPServer(app, ssl_options=_ssl_context(config), xheaders=False)
    if config.bind.startswith("unix:"):
        server.add_socket(tornado.netutil.bind_unix_socket(config.bind[5:], mode=0o600))
    else:
        host, _, port = config.bind.rpartition(":")
        server.listen(int(port), address=host.strip("[]"))
    return server


async def serve(config: Config) -> int:
    """Run the sidecar until SIGTERM/SIGINT."""
    sidecar = Sidecar(config, rpc=supervisor_proxy(config.source))
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
    sidecar.stop()
    await server.close_all_connections()
    return 0


def run(config: Config) -> int:
    """Entry point of ``supervisor-streamlog serve``."""
    logging.basicConfig(level=logging.WARNING, format="streamlog-web: %(message)s")
    return asyncio.run(serve(config))
