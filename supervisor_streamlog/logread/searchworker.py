"""Regular-expression searches of history, in a worker process that can be killed.

Role: Python cannot interrupt a regular expression that backtracks (``(a+)+$``
over a long run of ``a`` takes hours), so a regex search runs in another
process, and one not done in time is killed and answered as an error.

Invariants: the worker is never forked from the sidecar itself (a child forked
while another of its threads holds a lock can deadlock): it comes from a
``forkserver``, a fresh interpreter that only imports the store modules.  One
worker lives on between searches and keeps the last few stores it built, so
paging through a ``.gz`` decompresses it once; it is replaced only after a
timeout or if it dies.  A store is described by a *recipe*, a picklable
callable that builds it::

    worker.search(functools.partial(LogStore, path), "a+$", {"regex": True}, timeout=5)

Threads: calls block until the answer or the deadline; one search at a time.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import multiprocessing.connection
import pickle
import threading
from typing import Any, Callable, Dict, Optional, Tuple

log = logging.getLogger("supervisor_streamlog.server")

#: Seconds a search may scan before it answers what it found so far (``complete: false``).
SEARCH_BUDGET = 0.5
#: Seconds a regex search may take in all before its worker is killed.
REGEX_DEADLINE = SEARCH_BUDGET + 2.0
#: Stores a worker keeps between searches (each may cache decompressed backups).
_WORKER_STORES = 2
_PRELOAD = [
    "supervisor_streamlog.logread.searchworker",
    "supervisor_streamlog.logread.logstore",
    "supervisor_streamlog.logread.rawstore",
]

#: Builds a store in the worker; must pickle (a class and plain arguments).
Recipe = Callable[[], Any]


class SearchTimeout(ValueError):
    """A regular expression search that had to be stopped."""


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """The worker's loop: (recipe, pattern, options) in, ("ok", result) or ("error", exc) out."""
    stores: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
    while True:
        try:
            recipe, pattern, options = conn.recv()
        except (EOFError, OSError):
            return  # the sidecar closed its end: stop
        try:
            key = pickle.dumps(recipe)
            store = stores.pop(key, None)
            if store is None:
                store = recipe()
            stores[key] = store
            while len(stores) > _WORKER_STORES:
                stores.popitem(last=False)
            answer: Tuple[str, Any] = ("ok", store.search(pattern, **options))
        except Exception as exc:  # sent back to be raised in the sidecar
            answer = ("error", exc)
        try:
            conn.send(answer)
        except (OSError, ValueError):
            return


class SearchWorker:
    """The sidecar's side of the worker: one search at a time, each with a deadline."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._process: Optional[Any] = None
        self._conn: Optional[multiprocessing.connection.Connection] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the forkserver and the worker now, not at the first search."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> multiprocessing.connection.Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._discard()
        self._context.set_forkserver_preload(_PRELOAD)
        mine, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve, args=(theirs,), daemon=True, name="streamlog-search"
        )
        process.start()
        theirs.close()
        self._process, self._conn = process, mine
        return mine

    def _discard(self) -> None:
        """Kill the worker (it may be stuck in a regex) and forget it."""
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(1)
        self._process = self._conn = None

    def search(self, recipe: Recipe, pattern: str, options: Dict[str, Any], timeout: float) -> Any:
        """``recipe().search(pattern, **options)`` in the worker, or :class:`SearchTimeout`.

        Exceptions of the search (ValueError for a bad pattern) come back as
        they were raised.  Blocking: call it off the IOLoop.
        """
        with self._lock:
            conn = self._ensure()
            try:
                conn.send((recipe, pattern, options))
                if not conn.poll(timeout):
                    self._discard()
                    raise SearchTimeout(
                        "the regular expression took too long (nested repetition such as "
                        "(a+)+ backtracks without end): simplify it"
                    )
                kind, value = conn.recv()
            except (EOFError, OSError):
                self._discard()
                raise SearchTimeout("the search stopped unexpectedly") from None
        if kind == "error":
            raise value
        return value

    def stop(self) -> None:
        """End the worker (the sidecar is stopping), even in the middle of a search."""
        if self._lock.acquire(timeout=0.1):
            try:
                self._discard()
            finally:
                self._lock.release()
        elif self._process is not None:
            self._process.kill()  # the search in progress then fails: we are stopping
