"""The forwarder's own ``/metrics``, in Prometheus text format, when ``forward_metrics`` is set.

    [streamlog]
    forward = relp://logs.example:2514
    forward_metrics = 127.0.0.1:9718

A small Tornado server on the forwarder's asyncio loop answers ``GET /metrics``
(and nothing else).  The figures come from a ``measure`` coroutine the
forwarder hands in, taken at scrape time (:mod:`.behind` says what that
costs); prometheus_client renders them, from a collector on a registry of our
own, as the sidecar's :mod:`..sidecar.metrics` does.  Names and meanings are
in docs/shipping.md ("Watching the forwarder").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator, List, Optional, Sequence

import tornado.httpserver
import tornado.netutil
import tornado.web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("supervisor_streamlog.forward")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class DeliveryFigures:
    """One process as one destination stands."""

    process: str
    sent: int
    acked: int
    resent: int
    lost_bytes: int
    behind_bytes: int
    behind_records: int
    behind_seconds: float


@dataclass(frozen=True)
class DestinationFigures:
    """One destination (a lane) and its processes."""

    destination: str
    connected: bool
    errors: int
    #: The last failure while it lasts (None once connected again).
    error: Optional[str]
    processes: List[DeliveryFigures]


Measure = Callable[[], Awaitable[List[DestinationFigures]]]


class FiguresCollector(Collector):
    """Turns one measurement into metric families."""

    def __init__(self, figures: Sequence[DestinationFigures]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        both = ["destination", "process"]
        connected = GaugeMetricFamily(
            "streamlog_forward_connected",
            "1 while a session with the destination is open",
            labels=["destination"],
        )
        errors = CounterMetricFamily(
            "streamlog_forward_errors",
            "Failed connections and sessions (each is retried from the acknowledged offsets)",
            labels=["destination"],
        )
        error = GaugeMetricFamily(
            "streamlog_forward_error_info",
            "The last failure, while the destination is not connected again",
            labels=["destination", "error"],
        )
        families = {
            name: CounterMetricFamily(f"streamlog_forward_{name}", text, labels=both)
            for name, text in (
                ("sent_records", "Records sent (re-sent ones included) since the start"),
                ("acked_records", "Records acknowledged (TCP/TLS: handed to the kernel)"),
                (
                    "resent_records",
                    "Records sent again after a reconnect (sent, never acknowledged): "
                    "the most duplicates a receiver can hold",
                ),
                (
                    "lost_bytes",
                    "Bytes of records retention deleted before they were delivered",
                ),
            )
        }
        behind = {
            name: GaugeMetricFamily(f"streamlog_forward_behind_{name}", text, labels=both)
            for name, text in (
                ("bytes", "Bytes of records on disk not yet acknowledged"),
                ("records", "Records on disk not yet acknowledged"),
                ("seconds", "Age of the oldest record not yet acknowledged (0 if none)"),
            )
        }
        for lane in self.figures:
            url = lane.destination
            connected.add_metric([url], 1 if lane.connected else 0)
            errors.add_metric([url], lane.errors)
            if lane.error is not None and not lane.connected:
                error.add_metric([url, lane.error], 1)
            for p in lane.processes:
                labels = [url, p.process]
                families["sent_records"].add_metric(labels, p.sent)
                families["acked_records"].add_metric(labels, p.acked)
                families["resent_records"].add_metric(labels, p.resent)
                families["lost_bytes"].add_metric(labels, p.lost_bytes)
                behind["bytes"].add_metric(labels, p.behind_bytes)
                behind["records"].add_metric(labels, p.behind_records)
                behind["seconds"].add_metric(labels, round(p.behind_seconds, 3))
        yield connected
        yield errors
        yield error
        yield from families.values()
        yield from behind.values()


def render(figures: Sequence[DestinationFigures]) -> bytes:
    """The metrics page."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(figures))
    return generate_latest(registry)


class ForwardMetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: measured at each scrape."""

    def initialize(self, measure: Measure) -> None:
        self.measure = measure

    async def get(self) -> None:
        figures = await self.measure()
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(render(figures))


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Scrapes are not logged; failures are."""
    if handler.get_status() >= 500:
        log.warning("metrics: %s %s", handler.get_status(), handler.request.uri)


def listen(bind: str, measure: Measure) -> tornado.httpserver.HTTPServer:
    """Serve ``/metrics`` on ``bind`` (host:port or unix:/path) on the running loop.

    Raises OSError when the address cannot be bound.
    """
    app = tornado.web.Application(
        [(r"/metrics", ForwardMetricsHandler, {"measure": measure})], log_function=_log_request
    )
    server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=60)
    if bind.startswith("unix:"):
        server.add_socket(tornado.netutil.bind_unix_socket(bind[5:], mode=0o600))
    else:
        host, _, port = bind.rpartition(":")
        server.listen(int(port), address=host.strip("[]"))
    return server
