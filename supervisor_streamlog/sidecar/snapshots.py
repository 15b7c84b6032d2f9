"""The sidecar's figures at one moment, for ``/metrics`` and ``/healthz``.

:meth:`Snapshots.take` reads the registry's counters (records and bytes read
per process, how far each follower is behind its live file), the hub's
(clients, queued, sent and skipped records) and whether supervisord answers,
into a :class:`~.metrics.Snapshot` that ``metrics`` renders without knowing
any of these objects.  The processes are those ``/api/processes`` lists.  It
runs on the IOLoop, at scrape time; the lag costs one ``stat`` per process.
"""

from __future__ import annotations

import os
from typing import List, Optional

from ..logread.follow import FileFollower
from .hub import Hub
from .metrics import ReadFigures, Snapshot
from .processes import ProcessRegistry
from .statepoll import StatePoller


class Snapshots:
    """Takes a :class:`~.metrics.Snapshot` of the registry, the hub and supervisord."""

    def __init__(self, registry: ProcessRegistry, hub: Hub, supervisor: StatePoller) -> None:
        self.registry = registry
        self.hub = hub
        self.supervisor = supervisor

    def take(self) -> Snapshot:
        """The figures of /metrics and /healthz, for the processes /api/processes lists."""
        figures: List[ReadFigures] = []
        logs = self.registry.logs
        for spec in self.registry.specs():
            shown = logs.get(spec)
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
            supervisor_up=self.supervisor.up,
        )
