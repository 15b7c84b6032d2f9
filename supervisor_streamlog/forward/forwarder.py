"""``supervisor-streamlog forward``: every record, to the log engines a fleet already runs.

Role: one *lane* per destination reads each process's records through the
read side (:class:`~supervisor_streamlog.logread.logstore.LogStore`: rotated
and ``.gz`` backups included), renders them (:mod:`.syslog`) and sends them in
pages of ``BATCH``; ``forward --status`` reads the same state and store.

Invariants: per destination, the offset up to which every process is
acknowledged is kept in :mod:`.state` and advanced only on acknowledgement; on
any error a lane closes, waits (backoff up to 30 s) and resumes from its
offsets: at-least-once, every duplicate carrying its offset.  Records that
retention deleted before delivery are counted and reported, never skipped.

Threads: one asyncio loop; while a page is sent a lane reads and renders the
next one in a worker thread (one page ahead: two pages per lane in memory).
Following live, records gather for ``LINGER`` between rounds.  With
``forward_metrics`` set, ``GET /metrics`` there (:mod:`.metrics`, :mod:`.behind`)
says how far behind each destination is.  Figures: docs/benchmarks.md,
"Forwarder" (``python -m bench.forward``).

Example, a program of its own under supervisord beside the sidecar::

    [streamlog]
    forward = relp://logs.example:2514

    [program:streamlog-forward]
    command = supervisor-streamlog forward -c %(here)s/supervisord.conf
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
from ..logread.logstore import LogStore
from ..ondisk.files import Entry
from ..ondisk.formats import RecordError, parse
from ..ondisk.logdir import discover
from .behind import Backlog, count_records, measure, record_time
from .destinations import Destination, client_for, parse_destinations, tls_context
from .metrics import DeliveryFigures, DestinationFigures, listen
from .octet import SendError
from .state import State, StateError, load_or_start, read_only, state_directory, state_path
from .syslog import Origin, Severities, encoder, wanted

log = logging.getLogger("supervisor_streamlog.forward")

#: Records read and sent per step of one process: a lane holds at most two
#: such pages (the messages being sent, about 1.7 MB with 100-byte lines, and
#: the page read ahead, about 4.5 MB at its peak while it is rendered);
#: 5000 rather than 2000 makes the RELP window drain less often.
BATCH = 5000
#: How often files are looked at when everything is delivered (s).
POLL = 0.2
#: How long records gather, while following a process that writes, before
#: the next page is read (s): pages of a few thousand records at 50 000
#: lines/s instead of a page per round trip of a few dozen (the per-page and
#: per-wake-up work was half of the forwarder's CPU then; bench/forward.py).
LINGER = 0.05
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
class Batch:
    """One page of a process's log, read and rendered, ready to send.

    ``changes`` lists, in order, (n, pid): once the first ``n`` messages are
    acknowledged the running pid is ``pid`` (status records are rare, so
    this is usually empty); ``pid_before``/``pid_after`` are the pid at the
    page's start and end.
    """

    feed: Feed
    messages: List[bytes]
    ends: List[int]  # offset just past each message's record
    end: int  # the page's end: where the next page starts
    count: int  # lines read (headers, and lines that are not records, included)
    missing: Optional[Tuple[int, int]]
    pid_before: Optional[int]
    pid_after: Optional[int]
    changes: List[Tuple[int, Optional[int]]] = field(default_factory=list)

    def pid_at(self, acked: int) -> Optional[int]:
        """The running pid once the first ``acked`` messages are acknowledged."""
        pid = self.pid_before
        for count, after in self.changes:
            if count > acked:
                break
            pid = after
        return pid


@dataclass
class Feed:
    """One process's log as one destination reads it.

    ``offset`` and ``pid`` are where acknowledged delivery stands; ``cursor``
    and ``read_pid`` where reading stands, ahead of them by the batches being
    sent or read in advance (:meth:`rewind` brings them back after a failure).
    """

    spec: str
    origin: Origin
    store: LogStore
    offset: int
    severities: Severities = Severities()
    #: The pid of the running process at ``offset`` (text records carry none).
    pid: Optional[int] = None
    cursor: int = 0
    read_pid: Optional[int] = None
    #: Whether the last page read was full: catching up, so reading ahead is
    #: worth it (a process followed live is read after ``LINGER`` instead).
    more: bool = True
    #: What is not yet acknowledged, counted (:mod:`.behind`; changed on the loop only).
    backlog: Backlog = field(init=False)
    #: The live file's (inode, size, mtime) taken before the last page was
    #: read, when that page came back empty: while it is the same, nothing was
    #: written since, and the next read is skipped (:meth:`unchanged`).
    quiet: Optional[Tuple[int, int, int]] = None

    def __post_init__(self) -> None:
        self.backlog = Backlog(self.offset)

    def rewind(self) -> None:
        """Read again from the last acknowledged record."""
        self.cursor = self.offset
        self.read_pid = self.pid
        self.more = True
        self.quiet = None

    def _signature(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = os.stat(self.store.live_path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def unchanged(self) -> bool:
        """Whether nothing was written since the last page came back empty: one
        ``stat`` instead of a thread hand-off and a read per idle process and
        round (an idle forwarder over 50 logs took 4 % of a core)."""
        return self.quiet is not None and self._signature() == self.quiet

    def prepare(self, limit: int) -> Batch:
        """Read the next page from ``cursor`` and render its messages (blocking:
        run it in a thread; one at a time per feed).

        A stdout or stderr record is rendered from its line
        (:meth:`.syslog.Encoder.text_line`, :meth:`~.syslog.Encoder.json_line`);
        other lines are parsed first, and lines that are not records are
        skipped, as every reader skips them.
        """
        signature = self._signature()  # before reading: a later write changes it
        page = self.store.read_forward_lines(self.cursor, limit)
        coder = encoder(self.origin, self.severities)
        text_line, json_line = coder.text_line, coder.json_line
        out: List[bytes] = []
        ends: List[int] = []
        changes: List[Tuple[int, Optional[int]]] = []
        before = running = self.read_pid
        for offset, end, line in page.lines:
            if line[:1] == b"{":
                message = json_line(offset, end, line, running)
            else:
                message = text_line(offset, end, line, running)
            if message is not None:
                out.append(message)
                ends.append(end)
                continue
            try:
                record = parse(line)
            except RecordError:
                continue
            entry = Entry(offset, end, record)
            if record.stream != "status":
                out.append(coder.encode(entry, record.pid if record.pid is not None else running))
                ends.append(end)
                continue
            pid = record.pid if record.pid is not None else running
            changed, after = _status_pid(record.data)
            own = record.pid if record.pid is not None else _own_pid(record.data)
            pid = own if own is not None else pid
            if changed:
                running = after
                # from the acknowledgement of this record (or of the next message) on
                changes.append((len(out) + 1, after))
            if wanted(entry):
                out.append(coder.encode(entry, pid))
                ends.append(end)
        if page.lines:
            self.cursor = page.end
        elif page.missing is not None:
            self.cursor = page.missing[1]
        self.read_pid = running
        self.more = len(page.lines) >= limit
        self.quiet = signature if not page.lines and page.missing is None else None
        return Batch(
            self, out, ends, page.end, len(page.lines), page.missing, before, running, changes
        )


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
        feed = Feed(spec, origin, store, offset, self.forwarder.severities)
        if offset > 0:
            feed.pid = _locate_pid(store, offset)
        feed.rewind()
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
        """Send every feed's batches in turn until stopping (or a failure raises).

        Pipelined: while one batch is sent and acknowledged, the next feed's
        next page is read and rendered in a thread (when its last page had
        records: catching up, or following a busy process), so the receiver
        is not kept waiting for the disk and the rendering.  At most one
        batch is read ahead; one that came back empty is read again when its
        turn comes (records may have come meanwhile); after a failure reading
        starts again from the acknowledged offsets.  When no page of a round
        was full (every process is followed live), records gather for
        ``LINGER`` before the next round.
        """
        for feed in self.feeds.values():
            feed.rewind()
        ready: Dict[str, Batch] = {}
        ahead: Optional[asyncio.Future[None]] = None

        async def read_ahead(feed: Feed) -> None:
            ready[feed.spec] = await asyncio.to_thread(feed.prepare, BATCH)

        try:
            while not self.forwarder.stopping.is_set():
                sent = 0
                catching_up = False
                feeds = list(self.feeds.values())
                for index, feed in enumerate(feeds):
                    if ahead is not None:
                        await ahead  # a failed read raises here
                        ahead = None
                    batch = ready.pop(feed.spec, None)
                    if batch is None or not (batch.count or batch.missing):
                        if feed.unchanged():
                            continue  # nothing written since it was last read
                        batch = await asyncio.to_thread(feed.prepare, BATCH)
                    following = feeds[(index + 1) % len(feeds)]
                    if following.more and following.spec not in ready:
                        ahead = asyncio.ensure_future(read_ahead(following))
                    sent += await self._send(client, batch)
                    catching_up = catching_up or feed.more
                    if self.forwarder.stopping.is_set():
                        break
                self.save()
                if not sent:
                    if client.hung_up():
                        raise SendError("connection closed by the receiver")
                    await self.forwarder.pause(POLL)
                elif not catching_up:
                    await self.forwarder.pause(LINGER)
        finally:
            if ahead is not None:
                # a thread cannot be cancelled: let the read end, and drop it
                await asyncio.gather(ahead, return_exceptions=True)

    async def _send(self, client: Any, batch: Batch) -> int:
        """Send one batch; returns the records it covered."""
        feed = batch.feed
        missing = batch.missing
        if missing is not None and missing[0] < missing[1]:
            lost = missing[1] - missing[0]
            self.state.lost[feed.spec] = self.state.lost.get(feed.spec, 0) + lost
            self.figures.lost[feed.spec] = self.state.lost[feed.spec]
            log.warning(
                "%s: %s: %d bytes of records (offsets %d-%d) were deleted by retention "
                "before they were delivered",
                self.destination.url,
                feed.spec,
                lost,
                missing[0],
                missing[1],
            )
            self._advance(feed, missing[1])
            feed.backlog.restart(missing[1])
        if not batch.count:
            return 0
        if batch.messages:
            ends = batch.ends
            backlog = feed.backlog
            backlog.sending(ends, batch.end)
            done = 0

            def acked(count: int) -> None:
                # Acknowledged so far: a broken session re-sends only the rest.
                nonlocal done
                backlog.acknowledged(ends, done, count)
                done = count
                self._advance(feed, ends[count - 1])
                feed.pid = batch.pid_at(count)

            try:
                await client.send(batch.messages, on_acked=acked)
            finally:
                backlog.written(ends, client.written)
            self.figures.sent += len(batch.messages)
        self._advance(feed, batch.end)
        feed.pid = batch.pid_after
        return batch.count

    def _advance(self, feed: Feed, offset: int) -> None:
        feed.offset = offset
        feed.backlog.advanced(offset)
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
        self.state_dir = state_directory(config.forward_state, config.logdir)
        self.lanes: List[Lane] = []
        self.stopping = asyncio.Event()
        self._measuring: Optional[asyncio.Lock] = None

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

    async def measure(self) -> List[DestinationFigures]:
        """Every destination's figures now (``/metrics``), one measurement at a
        time; one that was begun ends even if its scrape goes away."""
        return await asyncio.shield(self._measure())

    async def _measure(self) -> List[DestinationFigures]:
        if self._measuring is None:
            self._measuring = asyncio.Lock()
        async with self._measuring:
            feeds = [(lane, feed) for lane in self.lanes for feed in list(lane.feeds.values())]
            found = await measure([feed for _, feed in feeds])
        processes: Dict[int, List[DeliveryFigures]] = {id(lane): [] for lane in self.lanes}
        for (lane, feed), behind in zip(feeds, found):
            backlog = feed.backlog
            processes[id(lane)].append(
                DeliveryFigures(
                    feed.spec,
                    backlog.sent,
                    backlog.acked,
                    backlog.resent,
                    lane.state.lost.get(feed.spec, 0) + behind.deleted,
                    behind.bytes,
                    behind.records,
                    behind.seconds,
                )
            )
        return [
            DestinationFigures(
                lane.destination.url,
                lane.figures.connected,
                lane.figures.errors,
                lane.figures.last_error,
                processes[id(lane)],
            )
            for lane in self.lanes
        ]

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
    bind = forwarder.config.forward_metrics
    server = None
    if bind:
        try:
            server = listen(bind, forwarder.measure)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            sys.stderr.write(
                f"supervisor-streamlog forward: cannot serve metrics on "
                f"forward_metrics = {bind}: {reason}\n"
            )
            return 2
        log.info("metrics on %s (GET /metrics)", bind)
    try:
        await forwarder.run()
    finally:
        if server is not None:
            server.stop()
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
    state_dir = state_directory(config.forward_state, config.logdir)
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
            oldest, end = store.bounds()
            offset = int(offsets.get(spec, 0))
            start = max(offset, oldest)
            behind = max(0, end - start)
            # Exact, by reading the backlog once (a one-off: memory stays at a chunk).
            records = count_records(store, start, end)
            seconds = "-"
            if behind:
                behind_any = True
                stamp = record_time(store, start)
                if stamp is not None:
                    seconds = f"{max(0.0, time.time() - stamp):.1f}s"
            gone = int(lost.get(spec, 0)) + max(0, oldest - offset)
            note = f"  lost {gone} bytes to retention" if gone else ""
            out.write(
                f"  {spec:30} behind {behind:>12} bytes {records:>10} records  {seconds:>8}{note}\n"
            )
    return 1 if behind_any else 0
