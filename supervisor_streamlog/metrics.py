"""``/metrics``: the sidecar's counters in Prometheus text format.

prometheus_client renders the format (escaping, types, HELP lines); the values
are read from the sidecar at scrape time by a collector on a registry of our
own, so there is no global state and nothing to keep in step.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .server import Sidecar


class SidecarCollector(Collector):
    """Reads the sidecar's state when Prometheus scrapes."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def collect(self) -> Iterator[Metric]:
        sidecar = self.sidecar
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
        for spec in sorted(set(sidecar.stores) | set(sidecar.raw)):
            lines.add_metric([spec], sidecar.lines.get(spec, 0))
            size.add_metric([spec], sidecar.bytes.get(spec, 0))
            if spec not in sidecar.stores:
                continue  # supervisord's own child log: polled, no lag kept
            follower = sidecar.followers.get(spec)
            try:
                live = os.path.getsize(sidecar.paths[spec])
                behind = max(0, live - (follower.file_position if follower else 0))
            except OSError:
                behind = 0
            lag.add_metric([spec], behind)
        yield lines
        yield size
        yield lag
        hub = sidecar.hub
        yield GaugeMetricFamily(
            "streamlog_sidecar_clients", "Connected WebSocket clients", value=len(hub.clients)
        )
        yield GaugeMetricFamily(
            "streamlog_sidecar_queue_records",
            "Records waiting in client queues",
            value=hub.queued(),
        )
        yield CounterMetricFamily(
            "streamlog_sidecar_sent_records",
            "Records sent to WebSocket clients",
            value=hub.sent_records,
        )
        yield CounterMetricFamily(
            "streamlog_sidecar_skipped_records",
            "Records slow clients skipped",
            value=hub.skipped_records,
        )
        yield GaugeMetricFamily(
            "streamlog_sidecar_supervisor_up",
            "1 when supervisord's XML-RPC answers",
            value=1 if sidecar.rpc is not None and sidecar.rpc_error is None else 0,
        )


def render(sidecar: Sidecar) -> bytes:
    """The metrics page."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SidecarCollector(sidecar))
    return generate_latest(registry)
