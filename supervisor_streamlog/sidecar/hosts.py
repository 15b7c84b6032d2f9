"""A central sidecar's watcher (``layout = hosts``): one :class:`~.watcher.Watcher` per host.

On a central host, ``supervisor-streamlog receive`` writes ``<logdir>/<host>/``
laid out exactly as that host's logdir.  Each host directory gets a watcher of
its own (the same code as a host's sidecar: inotify, the safety poll, new
processes), whose specs are prefixed with the host: ``HOST/group:name``.  A
host that appears later is found within :data:`HOST_SCAN` seconds.

Each watcher holds an inotify instance: Linux allows 128 per user by default
(``fs.inotify.max_user_instances``); past that a host's watcher polls
instead, and says so in the log.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Dict, Optional

from tornado.ioloop import PeriodicCallback

from ..logread.follow import FileFollower
from ..ondisk.logdir import hosts
from ..ondisk.paths import host_spec, split_host
from .watcher import Watcher

log = logging.getLogger(__name__)

#: How often the central logdir is scanned for new host directories (s).
HOST_SCAN = 1.0


class HostWatchers:
    """The :class:`~.watcher.Watcher` interface the sidecar uses, over one watcher per host."""

    def __init__(
        self, logdir: str, on_new_process: Optional[Callable[[str, str], None]] = None
    ) -> None:
        self.logdir = logdir
        self.on_new_process = on_new_process
        self.watchers: Dict[str, Watcher] = {}
        self._timer: Optional[PeriodicCallback] = None
        self.started = False

    def _new_process(self, host: str, spec: str, path: str) -> None:
        if self.on_new_process is not None:
            self.on_new_process(host_spec(host, spec), path)

    def _host(self, host: str, path: str) -> Watcher:
        watcher = self.watchers.get(host)
        if watcher is None:
            watcher = Watcher(path, functools.partial(self._new_process, host))
            self.watchers[host] = watcher
            if self.started:
                watcher.start()
        return watcher

    def scan(self) -> None:
        """Start watching host directories not watched yet."""
        for host, path in hosts(self.logdir).items():
            if host not in self.watchers:
                log.info("host %s: watching %s", host, path)
                self._host(host, path)

    def watch(self, spec: str, follower: FileFollower) -> None:
        """Poll ``follower`` whenever the files of ``HOST/group:name`` change."""
        host, local = split_host(spec)
        self._host(host, f"{self.logdir}/{host}").watch(local, follower)

    def start(self) -> None:
        """Watch every host directory there is, and look for new ones every HOST_SCAN s."""
        self.started = True
        self.scan()
        for watcher in self.watchers.values():
            watcher.start()
        self._timer = PeriodicCallback(self.scan, HOST_SCAN * 1000)
        self._timer.start()

    def stop(self) -> None:
        """Stop every watcher (followers stay open; the caller owns them)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        for watcher in self.watchers.values():
            watcher.stop()
        self.started = False
