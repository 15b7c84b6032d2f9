"""``supervisor-streamlog forward``: every record, to the log engines a fleet already runs.

Run it as a program of its own under supervisord, beside the sidecar::

    [streamlog]
    forward = relp://logs.example:2514

    [program:streamlog-forward]
    command = supervisor-streamlog forward -c %(here)s/supervisord.conf

Like the sidecar it reads only the files, through the same store
(:class:`~supervisor_streamlog.sidecar.logstore.LogStore`: rotated and ``.gz``
backups included), and it keeps, per destination, the offset up to which
every process is acknowledged (:mod:`.state`).  One *lane* per destination
connects, sends each process's records in order in batches, advances the
offsets on acknowledgement, and on any error closes, waits (backoff up to
30 s) and resumes from its offsets: delivery is at-least-once, with
duplicates only for records sent but not acknowledged, and every duplicate
carries its offset.  Records retention deleted before they were delivered are
counted and reported, never silently skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from ..config import Config
from ..ondisk.files import Entry
from ..ondisk.logdir import discover
from ..sidecar.logstore import LogStore
from .destinations import Destination, client_for, parse_destinations, tls_context
from .octet import SendError
from .state import State, StateError, load_or_start, read_only, state_path
from .syslog import Origin, Severities, message, wanted

log = logging.getLogger("supervisor_streamlog.forward")

#: Records read and sent per step of one process (bounded memory per lane).
BATCH = 2000
#: How often files are looked at when everything is delivered (s).
POLL = 0.2
#: How often new process logs are looked for (s).
DISCOVER = 2.0
#: How often offsets are saved while records flow (s); always at exit.
SAVE = 1.0
#: Reconnect delays (s): doubled after each failure, up to the last.
BACKOFF = (0.5, 30.0)
_ENDED = (b"EXITED", b"STOPPED", b"FATAL", b"BACKOFF")


def _status_pid(data: bytes) -> Tuple[bool, Optional[int]]:
    """(whether this status record changes the current pid, the pid from then on)."""
    state, _, rest = data.partition(b" ")
    if state in _ENDED:
        return True, None
    if state in (b"RUNNING", b"STARTING"):
        for field_ in rest.split(b" "):
            if field_.startswith(b"pid=") and field_[4:].isdigit():
                return True, int(field_[4:])
        return state == b"STARTING", None
    return False, None


def _own_pid(data: bytes) -> Optional[int]:
    for field_ in data.split(b" ")[1:]:
        if field_.startswith(b"pid=") and field_[4:].isdigit():
            return int(field_[4:])
    return None


@dataclass
class Feed:
    """One process's log as one destination reads it."""

    spec: str
    origin: Origin
    store: LogStore
    offset: int
    #: The pid of the running process at ``offset`` (text records carry none).
    pid: Optional[int] = None

    def messages(
        self, entries: List[Entry], severities: Severities
    ) -> Tuple[List[bytes], List[int]]:
        """The syslog messages of a page, and the offset just past each one's record."""
        out: List[bytes] = []
        ends: List[int] = []
        for entry in entries:
            record = entry.record
            pid = record.pid if record.pid is not None else self.pid
            if record.stream == "status":
                changes, after = _status_pid(record.data)
                own = record.pid if record.pid is not None else _own_pid(record.data)
                pid = own if own is not None else pid
                if changes:
                    self.pid = after
            if wanted(entry):
                out.append(message(self.origin, entry, pid, severities))
                ends.append(entry.end)
        return out, ends


def _locate_pid(store: LogStore, offset: int) -> Optional[int]:
    """The running pid at ``offset``, from the last status record before it (if near)."""
    page = store.read_backward(offset, 2000)
    for entry in reversed(page.entries):
        record = entry.record
        if record.stream != "status":
            continue
        changes, after = _status_pid(record.data)
        if changes:
            return after
    return None


@dataclass
class LaneFigures:
    """What one destination's lane has done (for ``/metrics`` and the log)."""

    sent: int = 0
    errors: int = 0
    connected: bool = False
    last_error: Optional[str] = None
    lost: Dict[str, int] = field(default_factory=dict)


class Lane:
    """One destination: connect, send every process's records in order, resume on failure."""

    def __init__(self, forwarder: Forwarder, destination: Destination, state: State) -> None:
        self.forwarder = forwarder
        self.destination = destination
        self.state = state
        self.feeds: Dict[str, Feed] = {}
        self.figures = LaneFigures()
        self._dirty = False
        self._last_save = 0.0

    def add(self, spec: str, path: str, fresh: bool) -> None:
        """Start reading a process's log: from its saved offset, else its oldest
        record (or, with ``forward_start = newest`` on a first start, its end)."""
        if spec in self.feeds:
            return
        store = LogStore(path)
        group, _, name = spec.partition(":")
        origin = Origin(
            self.forwarder.hostname,
            group,
            name,
            os.path.relpath(path, self.forwarder.config.logdir),
        )
        offset = self.state.offsets.get(spec)
        if offset is None:
            # Its oldest record still on disk: what retention deleted before
            # streamlog forwarded anything was never ours to deliver.
            first, last = store.bounds()
            start_at_end = fresh and self.forwarder.config.forward_start == "newest"
            offset = last if start_at_end else first
            self.state.offsets[spec] = offset
            self._dirty = True
        feed = Feed(spec, origin, store, offset)
        if offset > 0:
            feed.pid = _locate_pid(store, offset)
        self.feeds[spec] = feed

    async def run(self) -> None:
        """Deliver until the forwarder stops; reconnect with backoff on any failure."""
        delay = BACKOFF[0]
        url = self.destination.url
        while not self.forwarder.stopping.is_set():
            client = client_for(self.destination, self.forwarder.ssl_context)
            try:
                await client.connect()
                self.figures.connected = True
                if self.figures.last_error is not None:
                    log.warning("%s: connected again", url)
                else:
                    log.info("%s: connected", url)
                self.figures.last_error = None
                delay = BACKOFF[0]
                await self._deliver(client)
            except (SendError, OSError, asyncio.TimeoutError) as exc:
                self.figures.errors += 1
                text = str(exc) or type(exc).__name__
                if self.figures.last_error is None:
                    log.warning(
                        "%s: cannot deliver (%s); retrying from the last acknowledged record",
                        url,
                        text,
                    )
                self.figures.last_error = text
            finally:
                self.figures.connected = False
                self.save(force=True)
                await client.close()
            if self.forwarder.stopping.is_set():
                break
            await self.forwarder.pause(delay)
            delay = min(delay * 2, BACKOFF[1])

    async def _deliver(self, client: Any) -> None:
        while not self.forwarder.stopping.is_set():
            sent = 0
            for feed in list(self.feeds.values()):
                sent += await self._step(client, feed)
            self.save()
            if not sent:
                await self.forwarder.pause(POLL)

    async def _step(self, client: Any, feed: Feed) -> int:
        """Send the next batch of one process; returns the records sent."""
        page = await asyncio.to_thread(feed.store.read_forward, feed.offset, BATCH)
        if page.missing is not None and page.missing[0] < page.missing[1]:
            lost = page.missing[1] - page.missing[0]
            self.state.lost[feed.spec] = self.state.lost.get(feed.spec, 0) + lost
            self.figures.lost[feed.spec] = self.state.lost[feed.spec]
            log.warning(
                "%s: %s: %d bytes of records (offsets %d-%d) were deleted by retention "
                "before they were delivered",
                self.destination.url,
                feed.spec,
                lost,
                page.missing[0],
                page.missing[1],
            )
            self._advance(feed, page.missing[1])
        if not page.entries:
            return 0
        messages, ends = feed.messages(page.entries, self.forwarder.severities)
        if messages:

            def acked(count: int) -> None:
                # Acknowledged so far: a broken session re-sends only the rest.
                self._advance(feed, ends[count - 1])

            await client.send(messages, on_acked=acked)
            self.figures.sent += len(messages)
        self._advance(feed, page.end)
        return len(page.entries)

    def _advance(self, feed: Feed, offset: int) -> None:
        feed.offset = offset
        self.state.offsets[feed.spec] = offset
        self._dirty = True

    def save(self, force: bool = False) -> None:
        """Write the offsets (at most every ``SAVE`` s unless forced)."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_save < SAVE):
            return
        try:
            self.state.save()
        except OSError as exc:
            log.error("cannot save forward state %s: %s", self.state.path, exc)
            return
        self._dirty = False
        self._last_save = now


class Forwarder:
    """All lanes, process discovery and the clock they share."""

    def __init__(self, config: Config, hostname: Optional[str] = None) -> None:
        self.config = config
        self.hostname = hostname or config.hostname or socket.gethostname()
        self.destinations = parse_destinations(config.forward or "")
        self.severities = Severities(stderr=config.forward_stderr_severity)
        self.ssl_context: Optional[ssl.SSLContext] = None
        if any(d.scheme == "tls" for d in self.destinations):
            self.ssl_context = tls_context(
                config.forward_cafile,
                config.forward_certfile,
                config.forward_keyfile,
                verify=config.forward_verify,
            )
        self.state_dir = config.forward_state or os.path.join(config.logdir, ".forward")
        self.lanes: List[Lane] = []
        self.stopping = asyncio.Event()

    def open_states(self) -> None:
        """Load every destination's state (raises StateError for a wrong one)."""
        for destination in self.destinations:
            path = state_path(self.state_dir, destination.url)
            state = load_or_start(path, self.config.logdir, destination.url, log.error)
            self.lanes.append(Lane(self, destination, state))

    def discover(self, first: bool = False) -> None:
        for spec, path in discover(self.config.logdir).items():
            for lane in self.lanes:
                fresh = first and not lane.state.offsets and not lane.state.saved
                lane.add(spec, path, fresh)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def run(self) -> None:
        self.discover(first=True)
        tasks = [asyncio.ensure_future(lane.run()) for lane in self.lanes]
        while not self.stopping.is_set():
            await self.pause(DISCOVER)
            self.discover()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self.lanes:
            lane.save(force=True)


async def _serve(forwarder: Forwarder) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, forwarder.stopping.set)
    await forwarder.run()
    return 0


def run(config: Config) -> int:
    """Entry point of ``supervisor-streamlog forward``."""
    logging.basicConfig(level=logging.INFO, format="streamlog-forward: %(message)s")
    if not config.forward:
        sys.stderr.write(
            "supervisor-streamlog forward: no destinations: set forward = relp://host:port "
            "(or tcp://, tls://) in [streamlog]\n"
        )
        return 2
    try:
        forwarder = Forwarder(config)
        forwarder.open_states()
    except (StateError, ValueError, OSError) as exc:
        sys.stderr.write(f"supervisor-streamlog forward: {exc}\n")
        return 2
    urls = ", ".join(d.url for d in forwarder.destinations)
    log.info("forwarding %s to %s (state in %s)", config.logdir, urls, forwarder.state_dir)
    return asyncio.run(_serve(forwarder))


def status(config: Config, out: TextIO) -> int:
    """``forward --status``: per destination and process, how far behind delivery is."""
    state_dir = config.forward_state or os.path.join(config.logdir, ".forward")
    try:
        destinations: Sequence[Destination] = parse_destinations(config.forward or "")
    except ValueError as exc:
        out.write(f"invalid forward setting: {exc}\n")
        return 2
    if not destinations:
        out.write("no destinations (set forward = relp://host:port in [streamlog])\n")
        return 1
    logs = discover(config.logdir)
    behind_any = False
    for destination in destinations:
        path = state_path(state_dir, destination.url)
        data = read_only(path) or {}
        offsets = data.get("offsets") or {}
        lost = data.get("lost") or {}
        saved = data.get("saved")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved)) if saved else "never"
        out.write(f"{destination.url}  (state saved {when})\n")
        for spec, live in sorted(logs.items()):
            store = LogStore(live)
            end = store.bounds()[1]
            offset = int(offsets.get(spec, 0))
            behind = max(0, end - offset)
            seconds = "-"
            if behind:
                behind_any = True
                page = store.read_forward(offset, 1)
                first = page.entries[0].record.time if page.entries else ""
                seconds = _age(first)
            note = f"  lost {lost[spec]} bytes to retention" if lost.get(spec) else ""
            out.write(f"  {spec:30} behind {behind:>12} bytes  {seconds:>8}{note}\n")
    return 1 if behind_any else 0


def _age(stamp: str) -> str:
    """Seconds since an RFC 3339 time, as text ("-" if unknown)."""
    from datetime import datetime

    try:
        then = datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return "-"
    return f"{max(0.0, time.time() - then):.1f}s"
