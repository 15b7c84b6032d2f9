"""The registry of the processes the sidecar shows: one record per process, by spec.

A process is shown from one of two sources:

* **captured** -- a streamlog file in ``logdir``, found by discovery or the
  watcher, read by a :class:`~.follow.FileFollower` and paged by a
  :class:`~.logstore.LogStore` (added here, by :meth:`ProcessRegistry.add_process`);
* **uncaptured** -- supervisord's own child log files, polled by a
  :class:`~.rawfollow.RawFollower` and paged by a :class:`~.rawstore.RawStore`
  (added and removed by ``rawpoll``), until capture takes the process over.

Either way its :class:`ServedProcess` holds the follower, the stores (one for the
IOLoop's catch-up reads, one for the history thread: store caches are not
shared across threads), the hub channel and the counters; the followers'
callbacks here count what was read and hand it to the channel.  A process may
have a state (``statepoll``) and no log, or a log and no state.  Everything here
runs on the IOLoop.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from ..config import Config
from ..logread.follow import FileFollower
from ..logread.logstore import LogStore
from ..logread.rawfollow import RawFollower
from ..logread.restarts import RestartTally
from ..logread.store import Store
from ..ondisk.paths import display_name, host_display, split_host
from .hosts import HostWatchers
from .hub import Channel, Hub
from .restartcount import RestartCounter
from .watcher import Watcher

log = logging.getLogger("supervisor_streamlog.server")

#: One follower poll reads at most this much: a flooding process must not hold
#: the other processes' lines back (4 MiB took ~150 ms to parse).
FOLLOW_CHUNK = 256 * 1024


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


class ProcessRegistry:
    """The processes shown, by spec: adding them, finding them, feeding their channels."""

    def __init__(
        self,
        config: Config,
        hub: Hub,
        states: Mapping[str, Dict[str, Any]],
        restarts: RestartCounter,
    ) -> None:
        #: ``logdir`` (paths in listings) and ``layout`` (host prefixes in names).
        self.config = config
        self.hub = hub
        #: supervisord's state of each process (read only: statepoll writes it).
        self.states = states
        self.restarts = restarts
        self.logs: Dict[str, ServedProcess] = {}
        #: Set at start: polls each captured process's follower when its files change.
        self.watcher: Optional[Union[Watcher, HostWatchers]] = None

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
            functools.partial(self.published, spec),
            on_gap=functools.partial(self._gap, spec),
            on_reset=functools.partial(self._reset, spec),
            chunk_size=FOLLOW_CHUNK,
            # Records of a process nobody watches are counted, not parsed.
            wanted=functools.partial(self.watched, spec),
            on_advance=functools.partial(self.advanced, spec),
            on_status=functools.partial(self._status, spec),
        )
        channel = self.hub.add_channel(Channel(self.hub, spec, LogStore(path), follower.position))
        recipe = functools.partial(LogStore, path)
        shown = self.logs[spec] = ServedProcess(spec, channel, follower, recipe(), recipe, path)
        if old is not None:
            # The counters are Prometheus counters: they go on across the takeover.
            shown.lines, shown.bytes = old.lines, old.bytes
        shown.tally = self.restarts.count(spec, path, follower.position)
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

    def lookup(self, name: str) -> Optional[str]:
        """A known process spec for a client-given name (``group:name`` or ``name``;
        with ``layout = hosts``, ``HOST/group:name`` or ``HOST/name``)."""
        _, local = split_host(name) if self.config.layout == "hosts" else ("", name)
        for spec in (name, f"{name}:{local}" if ":" not in local else name):
            if spec in self.logs:
                return spec
        return None

    # ------------------------------------------------------------ follower callbacks

    def published(self, spec: str, entries: List[Any]) -> None:
        """Records a follower parsed: counted, then published to the channel."""
        shown = self.logs[spec]
        shown.lines += len(entries)
        shown.bytes += shown.channel.span(entries[0].offset, entries[-1].end)
        shown.channel.publish(entries)

    def watched(self, spec: str) -> bool:
        """Whether anybody subscribes to ``spec`` (else its records are counted, not parsed)."""
        shown = self.logs.get(spec)
        return shown is not None and bool(shown.channel.subscriptions)

    def advanced(self, spec: str, start: int, end: int, lines: int) -> None:
        """Records read without parsing (nobody subscribed): metrics and position."""
        shown = self.logs[spec]
        shown.lines += lines
        shown.bytes += shown.channel.span(start, end)
        shown.channel.advance(start, end)

    def _status(self, spec: str, lines: List[bytes]) -> None:
        """Status records the follower read: count them."""
        shown = self.logs.get(spec)
        if shown is not None and shown.tally is not None:
            self.restarts.add(spec, shown.tally, lines)

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

    # ------------------------------------------------------------ what is shown

    def specs(self) -> List[str]:
        """Every process supervisord runs and every process with a log."""
        return sorted(set(self.states) | set(self.logs))

    def listing(self) -> List[Dict[str, Any]]:
        """``/api/processes``: every process supervisord runs and every process with a log."""
        result = []
        for spec in self.specs():
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
