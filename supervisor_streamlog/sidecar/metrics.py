"""``/metrics``: the sidecar's counters in Prometheus text format.

prometheus_client renders the format (escaping, types, HELP lines).  The values
come from a :class:`Snapshot` the sidecar takes at scrape time (the same
processes ``/api/processes`` lists), handed to a collector on a registry of our
own: no global state, and this module knows nothing of the sidecar's insides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class ReadFigures:
    """What the sidecar has read of one process's log."""

    name: str
    lines: int
    bytes: int
    #: Bytes in the live file the follower has not read; None for a process
    #: shown from supervisord's own child logs (polled, no lag kept).
    lag: Optional[int]


@dataclass(frozen=True)
class Snapshot:
    """The sidecar's figures at one moment (for /metrics and /healthz)."""

    processes: List[ReadFigures]
    clients: int
    queued_records: int
    sent_records: int
    skipped_records: int
    #: None when no supervisord is configured, else whether its XML-RPC answers.
    supervisor_up: Optional[bool]


class SnapshotCollector(Collector):
    """Turns one snapshot into metric families."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        lines = CounterMetricFamily(
            "streamlog_sidecar_lines", "Records read from the log files", labels=["process"]
        )
        size = CounterMetricFamily(
            "streamlog_sidecar_bytes", "Bytes of records read", labels=["process"]
        )
        lag = GaugeMetricFamily(
            "streamlog_sidecar_follow_lag_bytes",
            "Bytes in the live file not yet read by the follower",
            labels=["process"],
        )
        for figures in snap.processes:
            lines.add_metric([figures.name], figures.lines)
            size.add_metric([figures.name], figures.bytes)
            if figures.lag is not None:
                lag.add_metric([figures.name], figures.lag)
        yield lines
        yield size
        yield lag
        yield GaugeMetricFamily(
            "streamlog_sidecar_clients", "Connected WebSocket clients", value=snap.clients
        )
        yield GaugeMetricFamily(
            "streamlog_sidecar_queue_records",
            "Records waiting in client queues",
            value=snap.queued_records,
        )
        yield CounterMetricFamily(
            "streamlog_sidecar_sent_records",
            "Records sent to WebSocket clients",
            value=snap.sent_records,
        )
        yield CounterMetricFamily(
            "streamlog_sidecar_skipped_records",
            "Records slow clients skipped",
            value=snap.skipped_records,
        )
        yield GaugeMetricFamily(
            "streamlog_sidecar_supervisor_up",
            "1 when supervisord's XML-RPC answers",
            value=1 if snap.supervisor_up else 0,
        )


def render(snapshot: Snapshot) -> bytes:
    """The metrics page."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
