"""Restart figures of the captured processes (starts, crashes, last exit), sent to pages.

Each captured process gets a :class:`~..logread.restarts.RestartTally` when the
registry starts following it.  What its files hold before the follower's start
is counted once, by :func:`~..logread.restarts.scan` on a thread of its own
(``streamlog-restarts``: never ahead of a history request in a queue); the
status records the follower reads afterwards are added on the IOLoop.  A
change goes out as one ``state`` frame per process (supervisord's state and
the figures), at most every :data:`FIGURES_DELAY` seconds: a crash loop can be
fast.  Everything but the scan runs on the IOLoop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, Dict, List, Mapping

import tornado.ioloop

from ..logread.restarts import RestartTally, scan
from .hub import Hub

log = logging.getLogger("supervisor_streamlog.server")

#: Changed restart figures are sent in one ``state`` frame per process at most this often (s).
FIGURES_DELAY = 0.2


class RestartCounter:
    """Counts restarts per process and broadcasts changed figures, batched."""

    def __init__(self, hub: Hub, states: Mapping[str, Dict[str, Any]]) -> None:
        self.hub = hub
        #: supervisord's state of each process (read only: statepoll writes it).
        self.states = states
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-restarts")
        #: Tallies whose figures changed, not sent yet (FIGURES_DELAY), by spec.
        self._changed: Dict[str, RestartTally] = {}

    def count(self, spec: str, path: str, end: int) -> RestartTally:
        """A tally of ``spec``'s restarts; what its files hold before ``end`` (where
        the follower starts) is counted into it later, once, on the scan thread."""
        tally = RestartTally()
        counted = tornado.ioloop.IOLoop.current().run_in_executor(self._executor, scan, path, end)

        def done(future: asyncio.Future[RestartTally]) -> None:
            if future.cancelled() or future.exception() is not None:
                if not future.cancelled():
                    log.warning("counting %s's restarts failed: %r", spec, future.exception())
                return
            tally.merge_older(future.result())
            self._changed_soon(spec, tally)

        counted.add_done_callback(done)
        return tally

    def add(self, spec: str, tally: RestartTally, lines: List[bytes]) -> None:
        """Status records the follower read: count them."""
        if tally.add_lines(lines):
            self._changed_soon(spec, tally)

    def _changed_soon(self, spec: str, tally: RestartTally) -> None:
        """Send the new figures in a ``state`` frame, batched (a crash loop can be fast)."""
        if not self._changed:
            tornado.ioloop.IOLoop.current().call_later(FIGURES_DELAY, self._send)
        self._changed[spec] = tally

    def _send(self) -> None:
        changed, self._changed = self._changed, {}
        for spec in sorted(changed):
            state = self.states.get(spec, {"process": spec, "state": "UNKNOWN"})
            self.hub.broadcast({"type": "state", **state, **changed[spec].figures()})

    def stop(self) -> None:
        """Scans not started yet are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)
