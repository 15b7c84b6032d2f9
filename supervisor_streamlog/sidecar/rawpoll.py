"""Uncaptured processes: shown from supervisord's own child log files, polled.

A process supervisord runs without capture still has the files supervisord
writes for it (``stdout_logfile``, ``stderr_logfile``).  Each state poll
(``statepoll``) offers every process's info here: one that is not captured and
has such files is added to the registry, with a
:class:`~..logread.rawfollow.RawFollower` read every :data:`RAW_POLL` seconds
and a :class:`~..logread.rawstore.RawStore` for its history; one supervisord no
longer reports is removed.  When capture takes a process over, the registry
replaces its record (``ProcessRegistry.add_process``) and it is no longer
polled here.  Everything runs on the IOLoop.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Dict, List, Optional, Set

import tornado.ioloop

from ..logread.rawfollow import RawFollower
from ..logread.rawstore import RawFile, RawStore, raw_files
from .processes import ProcessRegistry, ServedProcess

log = logging.getLogger("supervisor_streamlog.server")

#: How often supervisord's own child logs (uncaptured processes) are polled (s).
RAW_POLL = 0.1


class RawPoller:
    """Adds, polls and removes the registry's uncaptured processes."""

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry
        self.hub = registry.hub
        self._timer: Optional[tornado.ioloop.PeriodicCallback] = None

    def start(self) -> None:
        """Poll every :data:`RAW_POLL` seconds (only with a supervisord to ask)."""
        self._timer = tornado.ioloop.PeriodicCallback(self.poll, RAW_POLL * 1000)
        self._timer.start()

    def stop(self) -> None:
        """Stop polling and close the child logs (their disk space can be freed)."""
        if self._timer is not None:
            self._timer.stop()
        for shown in self.registry.logs.values():
            if isinstance(shown.follower, RawFollower):
                shown.follower.close()

    def offer(self, spec: str, info: Dict[str, Any]) -> None:
        """supervisord's info of a process: show it from its child logs unless captured."""
        shown = self.registry.logs.get(spec)
        if shown is None or not shown.captured:
            files = raw_files(info)
            if files:
                self.add(spec, files)

    def keep_only(self, seen: Set[str]) -> None:
        """Remove the uncaptured processes supervisord no longer reports."""
        for spec in set(self.registry.logs) - seen:
            self.remove(spec)

    def add(self, spec: str, files: List[RawFile]) -> None:
        """Show an uncaptured process from supervisord's own child log files."""
        logs, registry = self.registry.logs, self.registry
        shown = logs.get(spec)
        if shown is not None:
            if isinstance(shown.follower, RawFollower):
                for lane, raw in zip(shown.follower.files, files):
                    lane.path = raw.path  # changed by a reread: seen as a rotation
            return
        store = RawStore(files)
        follower = RawFollower(
            files,
            functools.partial(registry.published, spec),
            on_reset=functools.partial(self._reset, spec),
            wanted=functools.partial(registry.watched, spec),
            on_advance=functools.partial(registry.advanced, spec),
        )
        channel = self.hub.channel(spec, store, follower.position)
        channel.describe = {"uncaptured": True}
        # A RawStore keeps nothing between calls: the history thread may share it.
        logs[spec] = ServedProcess(
            spec, channel, follower, store, functools.partial(RawStore, files)
        )

    def remove(self, spec: str) -> None:
        """supervisord no longer has an uncaptured process: stop showing its child logs.

        Its files are closed (a deleted log's disk space is freed) and no longer
        polled or served; its subscriptions end with ``unsubscribed``, as the
        client could not unsubscribe from a process it can no longer name.
        """
        logs = self.registry.logs
        shown = logs.get(spec)
        if shown is None or shown.captured:
            return
        del logs[spec]
        shown.follower.close()
        if self.hub.channels.get(spec) is not shown.channel:
            return
        del self.hub.channels[spec]
        for sub in list(shown.channel.subscriptions):
            if self.hub.unsubscribe(sub.client, spec):
                sub.client.send({"type": "unsubscribed", "process": spec})

    def poll(self) -> None:
        """Read what is new in supervisord's own child logs."""
        for spec, shown in list(self.registry.logs.items()):
            if shown.captured:
                continue
            try:
                shown.follower.poll()
            except Exception:
                log.exception("following %s's child logs failed", spec)

    def _reset(self, spec: str, position: int) -> None:
        """supervisord rotated (or truncated) one of its child logs: offsets start again."""
        log.info("%s: supervisord's child log rotated (offset now %d)", spec, position)
        shown = self.registry.logs.get(spec)
        if shown is not None:
            shown.channel.reset(position)
