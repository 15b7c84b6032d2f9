"""The processes the sidecar shows: one record per process, and what feeds them.

A process is shown from one of two sources:

* **captured** -- a streamlog file in ``logdir``, found by discovery or the
  watcher, read by a :class:`~.follow.FileFollower` and paged by a
  :class:`~.logstore.LogStore`;
* **uncaptured** -- supervisord's own child log files (``rawstore``, ``rawfollow``), polled by
  a :class:`~.rawfollow.RawFollower` and paged by a :class:`~.rawstore.RawStore`,
  until capture takes the process over.

Either way its :class:`ServedProcess` holds the follower, the stores (one for the
IOLoop's catch-up reads, one for the history thread: store caches are not
shared across threads), the hub channel and the counters.  Process *states*
come from supervisord's XML-RPC, polled here and broadcast on change; a
process may have a state and no log, or a log and no state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Union

import tornado.ioloop

from ..config import Config
from ..logread.follow import FileFollower
from ..logread.logstore import LogStore
from ..logread.rawfollow import RawFollower
from ..logread.rawstore import RawFile, RawStore, raw_files
from ..logread.restarts import RestartTally, scan
from ..logread.searchworker import SearchWorker
from ..logread.store import Store
from ..ondisk.logdir import discover_layout
from ..ondisk.paths import display_name, host_display, split_host
from .auth import ProxyTrust
from .hosts import HostWatchers
from .hub import Channel, Hub
from .metrics import ReadFigures, Snapshot
from .watcher import Watcher

log = logging.getLogger("supervisor_streamlog.server")

#: One follower poll reads at most this much: a flooding process must not hold
#: the other processes' lines back (4 MiB took ~150 ms to parse).
FOLLOW_CHUNK = 256 * 1024
#: How often supervisord's process states are read (s).
STATE_POLL = 1.0
#: How often supervisord's own child logs (uncaptured processes) are polled (s).
RAW_POLL = 0.1
#: Changed restart figures are sent in one ``state`` frame per process at most this often (s).
FIGURES_DELAY = 0.2
_STATE_KEYS = ("state", "pid", "start", "stop", "exitstatus")


@dataclass
class ServedProcess:
    """One process's log as the sidecar serves it."""

    spec: str
    channel: Channel
    follower: Union[FileFollower, RawFollower]
    #: The store the history thread reads (LogStore caches are per thread).
    history: Store
    #: Builds another store of this log (picklable: the search worker's, see searchworker).
    recipe: Callable[[], Store]
    #: The streamlog file; None for a process shown from supervisord's own logs.
    path: Optional[str] = None
    #: Records and bytes read from its files (metrics).
    lines: int = 0
    bytes: int = 0
    #: Starts and exits counted from its status records (captured processes).
    tally: Optional[RestartTally] = None

    @property
    def captured(self) -> bool:
        return self.path is not None


class Sidecar:
    """The server's state: the processes and their logs, supervisord's states, the hub."""

    def __init__(self, config: Config, rpc: Any = None) -> None:
        self.config = config
        #: Catch-up reads of live subscriptions (tail, cursor) run here, off the IOLoop.
        self.catchup_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-catchup")
        #: History requests run here, one at a time, with stores of their own.
        self.history_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-history")
        self._rpc_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-rpc")
        #: The start-up count of each log's restarts (restarts.scan): never ahead
        #: of a history request in the queue.
        self._scan_executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-restarts")
        self.hub = Hub(call_soon=self._call_soon, run_blocking=self._run_blocking)
        self.logs: Dict[str, ServedProcess] = {}
        self.watcher: Optional[Union[Watcher, HostWatchers]] = None
        self.rpc = rpc
        #: supervisord's view of every process (``state`` frames), by spec.
        self.states: Dict[str, Dict[str, Any]] = {}
        self.rpc_error: Optional[str] = None
        self.proxies = ProxyTrust(config)
        self.started = time.time()
        self._pollers: List[tornado.ioloop.PeriodicCallback] = []
        #: Regular-expression searches run in this worker process (searchworker).
        self.search_worker = SearchWorker()
        #: Processes whose restart figures changed, not sent yet (FIGURES_DELAY).
        self._figures_changed: Set[str] = set()

    def _call_soon(self, callback: Any) -> None:
        tornado.ioloop.IOLoop.current().add_callback(callback)

    def _run_blocking(self, read: Callable[[], Any]) -> Any:
        return tornado.ioloop.IOLoop.current().run_in_executor(self.catchup_executor, read)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Find the logs there are, watch for new ones, start polling supervisord."""
        os.makedirs(self.config.logdir, exist_ok=True)
        self.search_worker.start()
        for spec, path in discover_layout(self.config.logdir, self.config.layout).items():
            self.add_process(spec, path)
        if self.config.layout == "hosts":
            self.watcher = HostWatchers(self.config.logdir, self.add_process)
        else:
            self.watcher = Watcher(self.config.logdir, self.add_process)
        for spec, shown in self.logs.items():
            if isinstance(shown.follower, FileFollower):
                self.watcher.watch(spec, shown.follower)
        self.watcher.start()
        if self.rpc is not None:
            for callback, seconds in ((self.poll_states, STATE_POLL), (self.poll_raw, RAW_POLL)):
                poller = tornado.ioloop.PeriodicCallback(callback, seconds * 1000)
                poller.start()
                self._pollers.append(poller)
            tornado.ioloop.IOLoop.current().add_callback(self.poll_states)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for poller in self._pollers:
            poller.stop()
        for shown in self.logs.values():
            if isinstance(shown.follower, RawFollower):
                shown.follower.close()
        self._rpc_executor.shutdown(wait=False)
        self._scan_executor.shutdown(wait=False, cancel_futures=True)
        self.history_executor.shutdown(wait=False)
        self.search_worker.stop()
        self.catchup_executor.shutdown(wait=False)

    # ------------------------------------------------------------ processes

    def add_process(self, spec: str, path: str) -> None:
        """A process log file appeared: follow it from its current end."""
        old = self.logs.get(spec)
        if old is not None and old.captured:
            return
        if old is not None:
            old.follower.close()  # shown from supervisord's own files until now
        follower = FileFollower(
            path,
            None,
            functools.partial(self._published, spec),
            on_gap=functools.partial(self._gap, spec),
            on_reset=functools.partial(self._reset, spec),
            chunk_size=FOLLOW_CHUNK,
            # Records of a process nobody watches are counted, not parsed.
            wanted=functools.partial(self._watched, spec),
            on_advance=functools.partial(self._advanced, spec),
            on_status=functools.partial(self._status, spec),
        )
        channel = self.hub.add_channel(Channel(self.hub, spec, LogStore(path), follower.position))
        recipe = functools.partial(LogStore, path)
        shown = self.logs[spec] = ServedProcess(spec, channel, follower, recipe(), recipe, path)
        if old is not None:
            # The counters are Prometheus counters: they go on across the takeover.
            shown.lines, shown.bytes = old.lines, old.bytes
        self._count_restarts(shown, follower.position)
        if old is not None:
            # Captured from now on: its subscribers start again, live, in the
            # new log's offsets.
            for sub in list(old.channel.subscriptions):
                self.hub.subscribe(sub.client, spec)
        if self.watcher is not None:
            self.watcher.watch(spec, follower)
        if old is None and spec not in self.states and self.hub.clients:
            # A log nobody's supervisord reports (a new host's, on a central
            # sidecar): pages learn of it as of a state change.
            self.hub.broadcast({"type": "state", "process": spec, "state": "UNKNOWN"})

    def add_raw(self, spec: str, files: List[RawFile]) -> None:
        """Show an uncaptured process from supervisord's own child log files."""
        shown = self.logs.get(spec)
        if shown is not None:
            if isinstance(shown.follower, RawFollower):
                for lane, raw in zip(shown.follower.files, files):
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
        channel = self.hub.channel(spec, store, follower.position)
        channel.describe = {"uncaptured": True}
        # A RawStore keeps nothing between calls: the history thread may share it.
        self.logs[spec] = ServedProcess(
            spec, channel, follower, store, functools.partial(RawStore, files)
        )

    def remove_raw(self, spec: str) -> None:
        """supervisord no longer has an uncaptured process: stop showing its child logs.

        Its files are closed (a deleted log's disk space is freed) and no longer
        polled or served; its subscriptions end with ``unsubscribed``, as the
        client could not unsubscribe from a process it can no longer name.
        """
        shown = self.logs.get(spec)
        if shown is None or shown.captured:
            return
        del self.logs[spec]
        shown.follower.close()
        if self.hub.channels.get(spec) is not shown.channel:
            return
        del self.hub.channels[spec]
        for sub in list(shown.channel.subscriptions):
            if self.hub.unsubscribe(sub.client, spec):
                sub.client.send({"type": "unsubscribed", "process": spec})

    def poll_raw(self) -> None:
        """Read what is new in supervisord's own child logs."""
        for spec, shown in list(self.logs.items()):
            if shown.captured:
                continue
            try:
                shown.follower.poll()
            except Exception:
                log.exception("following %s's child logs failed", spec)

    def lookup(self, name: str) -> Optional[str]:
        """A known process spec for a client-given name (``group:name`` or ``name``;
        with ``layout = hosts``, ``HOST/group:name`` or ``HOST/name``)."""
        _, local = split_host(name) if self.config.layout == "hosts" else ("", name)
        for spec in (name, f"{name}:{local}" if ":" not in local else name):
            if spec in self.logs:
                return spec
        return None

    def _count_restarts(self, shown: ServedProcess, end: int) -> None:
        """Count the restarts the files hold before ``end`` (where the follower
        starts), once, on a thread of its own; the follower counts the rest."""
        shown.tally = RestartTally()
        assert shown.path is not None
        counted = tornado.ioloop.IOLoop.current().run_in_executor(
            self._scan_executor, scan, shown.path, end
        )

        def done(future: asyncio.Future[RestartTally]) -> None:
            if future.cancelled() or future.exception() is not None:
                if not future.cancelled():
                    log.warning("counting %s's restarts failed: %r", shown.spec, future.exception())
                return
            if shown.tally is not None:
                shown.tally.merge_older(future.result())
                self._figures_changed_soon(shown.spec)

        counted.add_done_callback(done)

    def _status(self, spec: str, lines: List[bytes]) -> None:
        """Status records the follower read: count them."""
        shown = self.logs.get(spec)
        if shown is not None and shown.tally is not None and shown.tally.add_lines(lines):
            self._figures_changed_soon(spec)

    def _figures_changed_soon(self, spec: str) -> None:
        """Send the new figures in a ``state`` frame, batched (a crash loop can be fast)."""
        if not self._figures_changed:
            tornado.ioloop.IOLoop.current().call_later(FIGURES_DELAY, self._send_figures)
        self._figures_changed.add(spec)

    def _send_figures(self) -> None:
        changed, self._figures_changed = self._figures_changed, set()
        for spec in sorted(changed):
            shown = self.logs.get(spec)
            if shown is None or shown.tally is None:
                continue
            state = self.states.get(spec, {"process": spec, "state": "UNKNOWN"})
            self.hub.broadcast({"type": "state", **state, **shown.tally.figures()})

    # ------------------------------------------------------------ follower callbacks

    def _published(self, spec: str, entries: List[Any]) -> None:
        shown = self.logs[spec]
        shown.lines += len(entries)
        shown.bytes += shown.channel.span(entries[0].offset, entries[-1].end)
        shown.channel.publish(entries)

    def _watched(self, spec: str) -> bool:
        shown = self.logs.get(spec)
        return shown is not None and bool(shown.channel.subscriptions)

    def _advanced(self, spec: str, start: int, end: int, lines: int) -> None:
        """Records read without parsing (nobody subscribed): metrics and position."""
        shown = self.logs[spec]
        shown.lines += lines
        shown.bytes += shown.channel.span(start, end)
        shown.channel.advance(start, end)

    def _gap(self, spec: str, start: int, end: int) -> None:
        """Bytes the follower could not read (retention was faster): say so."""
        shown = self.logs.get(spec)
        if shown is not None:
            shown.channel.gap(start, end)

    def _reset(self, spec: str, old: int, new: int) -> None:
        """The live file was truncated or replaced: offsets start again at ``new``."""
        log.warning("%s: log file was truncated or replaced (offset %d -> %d)", spec, old, new)
        shown = self.logs.get(spec)
        if shown is not None:
            shown.channel.reset(new)

    def _raw_reset(self, spec: str, position: int) -> None:
        """supervisord rotated (or truncated) one of its child logs: offsets start again."""
        log.info("%s: supervisord's child log rotated (offset now %d)", spec, position)
        shown = self.logs.get(spec)
        if shown is not None:
            shown.channel.reset(position)

    # ------------------------------------------------------------ supervisord

    async def poll_states(self) -> None:
        """Read process states from supervisord; broadcast the changes."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.run_in_executor(
                self._rpc_executor, lambda: self.rpc().supervisor.getAllProcessInfo()
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
            shown = self.logs.get(spec)
            if shown is None or not shown.captured:
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
        for spec in set(self.logs) - seen:
            self.remove_raw(spec)

    # ------------------------------------------------------------ what is shown

    def _specs(self) -> List[str]:
        """Every process supervisord runs and every process with a log."""
        return sorted(set(self.states) | set(self.logs))

    def processes(self) -> List[Dict[str, Any]]:
        """``/api/processes``: every process supervisord runs and every process with a log."""
        result = []
        for spec in self._specs():
            host, local = split_host(spec) if self.config.layout == "hosts" else ("", spec)
            group, _, name = local.partition(":")
            item: Dict[str, Any] = {
                "name": spec,
                "display": host_display(host, group, name) if host else display_name(group, name),
                "group": group,
                "process": name,
            }
            if host:
                item["host"] = host
            state = self.states.get(spec)
            if state is not None:
                item.update({k: v for k, v in state.items() if k != "process"})
            else:
                item["state"] = "UNKNOWN"
            shown = self.logs.get(spec)
            item["captured"] = shown is not None and shown.captured
            if shown is not None:
                if shown.path is not None:
                    item["log"] = os.path.relpath(shown.path, self.config.logdir)
                if shown.tally is not None:
                    item.update(shown.tally.figures())
                else:
                    item["uncaptured"] = True  # shown from supervisord's own child logs
                item["cursor"] = shown.channel.position
            result.append(item)
        return result

    def snapshot(self) -> Snapshot:
        """The figures of /metrics and /healthz, for the processes /api/processes lists."""
        figures = []
        for spec in self._specs():
            shown = self.logs.get(spec)
            if shown is None:
                figures.append(ReadFigures(spec, 0, 0, None))
                continue
            lag: Optional[int] = None
            if shown.path is not None and isinstance(shown.follower, FileFollower):
                try:
                    lag = max(0, os.path.getsize(shown.path) - shown.follower.file_position)
                except OSError:
                    lag = 0
            figures.append(ReadFigures(spec, shown.lines, shown.bytes, lag))
        return Snapshot(
            processes=figures,
            clients=len(self.hub.clients),
            queued_records=self.hub.queued(),
            sent_records=self.hub.sent_records,
            skipped_records=self.hub.skipped_records,
            supervisor_up=None if self.rpc is None else self.rpc_error is None,
        )
