"""The sidecar's HTTP handlers (the surface docs/protocol.md describes; ``/ws`` is ``live``).

``/`` the tail page and ``/static/`` its assets, ``/api/processes``,
``/api/log/NAME`` (history by cursor, a jump to a time, a search),
``/api/log/NAME/download``, ``/api/log/NAME/histogram``, ``/healthz``,
``/metrics``.  Each handler gets through ``initialize`` only what it uses,
named at its URL spec in ``server.make_app``: the :class:`~.auth.Access`
rules, the process registry, supervisord's states, the history thread
(``history``: an executor), the search worker, the snapshots of ``/metrics``.
Anything that reads files runs on that history thread, so the IOLoop never
waits for the disk.  Log text is only ever sent as JSON strings or
``text/plain``, under a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import html
import json
import os
import re
from typing import Any, Awaitable, Dict, List, Optional
from urllib.parse import quote

import tornado.iostream
import tornado.web

from ..logread.histogram import STEP_BYTES, Histograms, QueryError, parse_query
from ..logread.searchworker import REGEX_DEADLINE, SEARCH_BUDGET, SearchWorker
from ..logread.timeseek import parse_time_param
from ..ondisk.files import is_header
from .auth import Access, send_refusal
from .hub import entry_json
from .metrics import render
from .processes import ProcessRegistry, ServedProcess
from .snapshots import Snapshots
from .statepoll import StatePoller

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_PAGE = 1000


class BaseHandler(tornado.web.RequestHandler):
    """Security headers and auth for every page and API."""

    def initialize(self, access: Access) -> None:
        self.access = access

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> Optional[Awaitable[None]]:
        refusal = self.access.refusal(self.request)
        if refusal is not None:
            send_refusal(self, refusal)
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": self._reason})

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish({"error": message})


class PageHandler(BaseHandler):
    def initialize(self, access: Access, registry: ProcessRegistry) -> None:  # type: ignore[override]
        super().initialize(access)
        self.registry = registry

    def get(self) -> None:
        with open(os.path.join(STATIC, "index.html"), "rb") as handle:
            page = handle.read()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        page = page.replace(LEVEL_RULES_MARK, level_rules(), 1)
        if self.get_argument("at", None) is None:
            names = [n for n in self.get_arguments("process") if self.registry.lookup(n)]
            page = page.replace(FIRST_PAGE_MARK, first_page_links(names), 1)
        self.finish(page)


#: Where index.html takes the level rules (static/levels.json) that levels.js reads.
LEVEL_RULES_MARK = b"<!-- level rules -->"


def level_rules() -> bytes:
    """static/levels.json as the text of the page's ``<script type="application/json">``:
    compact, and with ``<`` escaped so that no text in it can end the element."""
    with open(os.path.join(STATIC, "levels.json"), encoding="utf-8") as handle:
        rules = json.load(handle)
    text = json.dumps(rules, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").encode("utf-8")


#: Where index.html takes the preloads of :func:`first_page_links`.
FIRST_PAGE_MARK = b"<!-- first pages -->"
#: Records of the page's first page of a process (static/live.js's TAIL).
FIRST_PAGE = 1000
#: What JavaScript's encodeURIComponent leaves as it is, besides letters and digits.
URI_COMPONENT_SAFE = "-_.!~*'()"


def first_page_links(names: List[str]) -> bytes:
    """Preloads of the newest page of each process the address opens, exactly as
    static/history.js's ``newest()`` asks for it: the request starts with the
    HTML instead of after the page's modules, and the page's fetch takes it."""
    links = []
    for name in dict.fromkeys(names):
        # encodeURIComponent's escaping, so that the URL is the page's own.
        url = (
            f"/api/log/{quote(name, safe=URI_COMPONENT_SAFE)}?limit={FIRST_PAGE}&direction=backward"
        )
        links.append(
            f'<link rel="preload" as="fetch" crossorigin="anonymous" href="{html.escape(url)}">'
        )
    return "\n".join(links).encode("utf-8")


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's assets, with the same headers and auth as the page."""

    def initialize(self, path: str, access: Access) -> None:  # type: ignore[override]
        super().initialize(path)
        self.access = access

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> Optional[Awaitable[None]]:
        refusal = self.access.refusal(self.request)
        if refusal is not None:
            send_refusal(self, refusal, body=False)
        return None

    async def get(self, path: str, include_body: bool = True) -> None:
        if path == "index.html":  # the page is "/", where the sidecar fills in its rules
            query = self.request.query
            self.redirect("/" + ("?" + query if query else ""))
            return
        await super().get(path, include_body)


class ProcessesHandler(BaseHandler):
    def initialize(  # type: ignore[override]
        self, access: Access, registry: ProcessRegistry, supervisor: StatePoller
    ) -> None:
        super().initialize(access)
        self.registry = registry
        self.supervisor = supervisor

    def get(self) -> None:
        self.finish({"processes": self.registry.listing(), "supervisor": self.supervisor.status()})


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


class LogHandler(BaseHandler):
    """History of one process: pages by cursor, a jump to a time, or a search.

    File reading runs on the history thread (a search may take its whole time
    budget, a first look into a ``.gz`` decompresses it): the IOLoop, and so
    every live client, never waits for it.  That thread has stores of its own.
    """

    def initialize(  # type: ignore[override]
        self,
        access: Access,
        registry: ProcessRegistry,
        history: concurrent.futures.Executor,
        search_worker: SearchWorker,
    ) -> None:
        super().initialize(access)
        self.registry = registry
        self.history = history
        self.search_worker = search_worker

    async def get(self, name: str) -> None:
        spec = self.registry.lookup(name)
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
        try:
            when = None if raw_time is None else parse_time_param("time", raw_time)
        except ValueError as exc:
            raise tornado.web.HTTPError(400, reason=str(exc)) from None
        shown = self.registry.logs[spec]
        uncaptured = not shown.captured
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
            shown,
            self.search_worker,
            limit,
            cursor,
            direction,
            query,
            search,
            when,
        )
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self.history, read)
        except ValueError as exc:  # a bad regular expression
            self.fail(400, str(exc)[:200])
            return
        if uncaptured:
            body["uncaptured"] = True
        self.finish(body)

    @staticmethod
    def _read(
        shown: ServedProcess,
        worker: SearchWorker,
        limit: int,
        cursor: Optional[int],
        direction: str,
        query: Optional[str],
        search: Optional[Dict[str, bool]],
        when: Optional[float],
    ) -> Dict[str, Any]:
        """On the history thread: the response body."""
        spec, store = shown.spec, shown.history
        if query and search is not None:
            options: Dict[str, Any] = {
                "start": cursor,
                "backward": direction == "backward",
                "limit": limit,
                "budget": SEARCH_BUDGET,
                **search,
            }
            if search["regex"]:
                # A regular expression can backtrack for hours on one line, and
                # Python cannot interrupt it: run it where it can be killed.
                result = worker.search(shown.recipe, query, options, REGEX_DEADLINE)
            else:
                result = store.search(query, **options)
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

    def initialize(  # type: ignore[override]
        self, access: Access, registry: ProcessRegistry, history: concurrent.futures.Executor
    ) -> None:
        super().initialize(access)
        self.registry = registry
        self.history = history

    async def get(self, name: str) -> None:
        spec = self.registry.lookup(name)
        if spec is None:
            self.fail(404, "no such process log")
            return
        start = _int_arg(self, "from", None, 0, 2**62)
        end = _int_arg(self, "to", None, 0, 2**62)
        chunks = self.registry.logs[spec].history.export(start, end)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{download_name(spec)}"')
        loop = asyncio.get_running_loop()
        executor = self.history
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

    def initialize(self, snapshots: Snapshots) -> None:
        self.snapshots = snapshots

    def get(self) -> None:
        snap = self.snapshots.take()
        up = snap.supervisor_up
        self.finish(
            {
                "status": "ok",
                "processes": len(snap.processes),
                "clients": snap.clients,
                "supervisor": "n/a" if up is None else ("ok" if up else "unreachable"),
            }
        )


class SidecarMetricsHandler(BaseHandler):
    def initialize(self, access: Access, snapshots: Snapshots) -> None:  # type: ignore[override]
        super().initialize(access)
        self.snapshots = snapshots

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(render(self.snapshots.take()))


class HistogramHandler(BaseHandler):
    """``/api/log/NAME/histogram``: records per time bucket, from :mod:`.histogram`'s index.

    The index is built (and the live file's caught up) a few MB per step on
    the history thread, so other history requests wait at most a step.
    """

    def initialize(  # type: ignore[override]
        self,
        access: Access,
        registry: ProcessRegistry,
        history: concurrent.futures.Executor,
        histograms: Histograms,
    ) -> None:
        super().initialize(access)
        self.registry = registry
        self.history = history
        self.histograms = histograms

    async def get(self, name: str) -> None:
        spec = self.registry.lookup(name)
        if spec is None:
            self.fail(404, "no such process log")
            return
        shown = self.registry.logs[spec]
        if shown.path is None:
            self.fail(400, "no histogram: supervisord's own child logs carry no timestamps")
            return
        raw = (self.get_argument(key, None) for key in ("since", "until", "buckets"))
        try:
            query = parse_query(*raw)
        except QueryError as exc:
            self.fail(400, str(exc))
            return
        loop = asyncio.get_running_loop()
        executor = self.history
        # Indexes of processes gone are closed there: never wait for a step here.
        await loop.run_in_executor(executor, self.histograms.forget, set(self.registry.logs))
        index = self.histograms.index(spec, shown.path)
        while not await loop.run_in_executor(executor, index.step, STEP_BYTES):
            pass
        try:
            body = await loop.run_in_executor(executor, index.answer, query)
        except QueryError as exc:  # a default met the other bound: until before the first record
            self.fail(400, str(exc))
            return
        self.finish({"process": spec, **body})
