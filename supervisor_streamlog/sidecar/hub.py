"""Fan-out of live records to WebSocket clients, each with a bounded queue.

One :class:`Channel` per process receives the records its file follower reads
(``publish``), in order, each with its offsets.  Every client subscribed to the
process has a :class:`Subscription`: a queue of records not yet sent and the
*cursor* -- the offset up to which it has seen the log.

* A subscription that starts in the past (``tail`` N, or a ``cursor`` after a
  reconnect) reads history (``LogStore``) page by page -- live records are not
  queued meanwhile, the files have them too -- until it reaches the channel's
  position, and from there takes live records: nothing is missed or sent twice,
  and memory stays bounded however far behind it starts (past
  ``max_catchup_bytes`` it is skipped forward, with a notice).  Those reads
  (a first one may decompress a large ``.gz``) run through ``run_blocking``
  -- a thread, in the server -- one per subscription at a time; the IOLoop
  only sends what they return, so live clients never wait for them.
* Frames go out one at a time per client (the next only when the previous
  write completed), batching what queued up meanwhile: a fast client gets small
  frames quickly, a slow one fewer, larger frames.
* A client that does not keep up -- its queue passes ``max_queue_bytes`` --
  loses its queue instead of slowing anyone down: it is sent a ``skipped``
  notice with the offset range it missed (fetchable from ``/api/log``) and goes
  on with live records.  Capture never waits for the sidecar, and the sidecar
  never waits for a client.

Invariant: every record once, in order, or inside an explicit skipped range;
subscription, client and channel hold it together (one cursor moving through
catch-up, live, skipped and reset).  Threads: everything here runs on the
IOLoop but the history reads handed to ``run_blocking``.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    List,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)

from ..logread.store import Pages
from ..ondisk.files import Entry, is_header

log = logging.getLogger("supervisor_streamlog.hub")

#: Records per ``lines`` frame at most.
FRAME_ENTRIES = 2000
#: Records read from history per step of a catch-up.
HISTORY_PAGE = 1000


class Sender(Protocol):
    """The client side: send one JSON text frame; the result completes when written."""

    def send(self, message: str) -> Any: ...


#: A queued record: its offsets, and its JSON (None for a file header, not shown).
Item = Tuple[int, int, Optional[str]]


class HubNotice(NamedTuple):
    """A control message queued among the records (``skipped``, ``reset``).

    It has the shape of an :data:`Item` (start and end at the cursor it moves
    to, then its JSON), so a queue holds both; its type tells them apart.
    """

    start: int
    end: int
    message: str


#: Runs a blocking function elsewhere; the future's callbacks run on the IOLoop.
RunBlocking = Callable[[Callable[[], Any]], Any]


class CatchUpPage:
    """A page of history read for a catch-up, encoded off the IOLoop."""

    def __init__(
        self, items: List[Item], missing: Optional[Tuple[int, int]], failed: bool = False
    ) -> None:
        self.items = items
        self.missing = missing
        #: The read failed: [missing) is skipped without a reason (not deleted).
        self.failed = failed


def encode(entry: Entry) -> Item:
    """Encode a record once, however many clients it goes to."""
    shown = None
    if not is_header(entry.record.stream, entry.record.data):
        shown = json.dumps(entry_json(entry), ensure_ascii=False)
    return entry.offset, entry.end, shown


def entry_json(entry: Entry) -> Dict[str, Any]:
    """A record as the wire protocol sends it (docs/protocol.md)."""
    record = entry.record
    item: Dict[str, Any] = {
        "offset": entry.offset,
        "end": entry.end,
        "time": record.time or None,
        "stream": record.stream,
        "text": record.data.decode("utf-8", "replace"),
    }
    if record.partial:
        item["partial"] = True
    return item


class Subscription:
    """One client's view of one process."""

    def __init__(self, channel: Channel, client: Client) -> None:
        self.channel = channel
        self.client = client
        self.queue: Deque[Item] = collections.deque()
        self.queued_bytes = 0
        #: Notices (skipped, reset) in ``queue``: with none, the queue is one
        #: contiguous run of records and a frame is taken without looking at each.
        self.controls = 0
        #: Everything before this offset has been sent (or reported skipped).
        self.cursor = channel.position
        self.catching_up = False
        self.skipped: Optional[List[int]] = None  # [from, to) being skipped
        self.active = True
        #: False until the ``subscribed`` frame is out (a ``tail`` is located first).
        self.started = False
        #: A history read for this subscription is running off the IOLoop.
        self.reading = False
        #: A page it returned, waiting to be sent (None: nothing read yet).
        self.page: Optional[CatchUpPage] = None

    def enqueue(self, items: List[Item]) -> None:
        if not self.active or self.catching_up:
            return  # a catch-up reads these from the files when it gets there
        if self.skipped is not None:
            self.skipped[1] = items[-1][1]
            self.channel.hub.skipped_records += len(items)
            return
        if items[0][0] < self.cursor and not self.controls:
            # Started ahead of the follower (history read up to the file's
            # end first): what the client already has is not sent again.
            items = [item for item in items if item[0] >= self.cursor]
            if not items:
                return
        self.queue.extend(items)
        self.queued_bytes += self.channel.span(items[0][0], items[-1][1])  # contiguous
        if self.queued_bytes > self.channel.hub.max_queue_bytes:
            self._start_skipping()

    def notice(self, message: Dict[str, Any], cursor: int, force: bool = False) -> None:
        """Queue a control message in order with the records; it moves the cursor."""
        if not self.active or not self.started:
            return  # a subscription not started yet begins at the new position
        if self.catching_up and not force:
            return  # the catch-up's own reading will meet the same gap
        self.catching_up = False
        self.queue.append(HubNotice(cursor, cursor, json.dumps(message)))
        self.controls += 1
        self.channel.hub.schedule(self.client)

    def _start_skipping(self) -> None:
        """Too far behind: drop everything not yet sent, and say so when possible."""
        end = self.queue[-1][1]
        self.channel.hub.skipped_records += len(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        self.controls = 0
        self.catching_up = False
        # Everything from the cursor on was not sent: history not caught up
        # yet as well as the queue.
        self.skipped = [self.cursor, end]


class Client:
    """A connection: its subscriptions and its single in-flight write."""

    def __init__(self, hub: Hub, sender: Sender) -> None:
        self.hub = hub
        self.sender = sender
        self.subscriptions: Dict[str, Subscription] = {}
        self.writing = False
        self.closed = False

    def send(self, message: Any) -> None:
        """Send a message (a dict, or JSON already encoded), tracking the write."""
        if self.closed:
            return
        self.writing = True
        text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
        try:
            result = self.sender.send(text)
        except Exception as exc:
            log.info("client write failed: %r", exc)
            self.close()
            return
        if result is None or not hasattr(result, "add_done_callback"):
            self.writing = False
            return
        result.add_done_callback(self._written)

    def _written(self, future: Any) -> None:
        self.writing = False
        if future.exception() is not None:
            self.close()
            return
        self.hub.schedule(self)

    def pump(self) -> None:
        """Send the next frame if the previous one is out."""
        if self.closed or self.writing:
            return
        for spec, sub in self.subscriptions.items():
            if not sub.started:
                continue
            if sub.skipped is not None:
                start, end = sub.skipped
                sub.skipped = None
                sub.cursor = end
                self.send({"type": "skipped", "process": spec, "from": start, "to": end})
                return
            if sub.catching_up:
                if self._catch_up(spec, sub):
                    return
                continue
            if not sub.queue:
                continue
            if not sub.controls:
                # The usual case: records only, one contiguous run.
                count = min(len(sub.queue), FRAME_ENTRIES)
                batch = [sub.queue.popleft() for _ in range(count)]
                sub.queued_bytes -= sub.channel.span(batch[0][0], batch[-1][1])
            elif isinstance(sub.queue[0], HubNotice):
                control = sub.queue.popleft()
                assert isinstance(control, HubNotice)
                sub.controls -= 1
                sub.cursor = control.end
                self.send(control.message)
                return
            else:
                count = 0
                for item in sub.queue:
                    if count == FRAME_ENTRIES or isinstance(item, HubNotice):
                        break
                    count += 1
                batch = [sub.queue.popleft() for _ in range(count)]
                sub.queued_bytes -= sum(sub.channel.span(a, b) for a, b, _ in batch)
            self._send_entries(spec, sub, batch)
            return

    def _send_entries(self, spec: str, sub: Subscription, batch: List[Item]) -> None:
        shown = [text for _, _, text in batch if text is not None]
        sub.cursor = batch[-1][1]
        self.hub.sent_records += len(shown)
        self.send(
            f'{{"type": "lines", "process": {json.dumps(spec)}, "cursor": {sub.cursor}, '
            f'"entries": [{", ".join(shown)}]}}'
        )

    def _catch_up(self, spec: str, sub: Subscription) -> bool:
        """Send the next page of history before live records; False when done
        or while the page is being read.

        Live records are not queued meanwhile: the catch-up reads them from the
        files too, until it reaches the live position; one page is read (off
        the IOLoop) and in flight at a time, so memory stays bounded however
        slow the client.  A client more than ``max_catchup_bytes`` behind is
        skipped to the live position.
        """
        if sub.reading:
            return False
        channel = sub.channel
        target = channel.position
        if channel.span(sub.cursor, target) > self.hub.max_catchup_bytes:
            start, sub.cursor = sub.cursor, target
            sub.catching_up = False
            sub.page = None
            self.hub.skipped_records += 1
            self.send({"type": "skipped", "process": spec, "from": start, "to": target})
            return True
        page, sub.page = sub.page, None
        if page is None:
            if sub.cursor >= target:
                sub.catching_up = False
                self._drop_queued_before(sub)
                return False
            self._read_page(sub, target)
            return sub.page is not None and self._catch_up(spec, sub)  # read in place
        if page.missing is not None and page.missing[0] < page.missing[1]:
            missing_from, missing_to = page.missing
            sub.cursor = missing_to
            message: Dict[str, Any] = {"type": "skipped", "process": spec}
            message.update({"from": missing_from, "to": missing_to})
            if not page.failed:
                message["reason"] = "deleted"
            self.send(message)
            return True
        items = [item for item in page.items if item[1] <= target]
        if not items:
            # Nothing complete before the live position: go live from there.
            sub.cursor = max(sub.cursor, target)
            sub.catching_up = False
            self._drop_queued_before(sub)
            return False
        self._send_entries(spec, sub, items)
        return True

    def _read_page(self, sub: Subscription, target: int) -> None:
        """Read the page from ``sub.cursor`` off the IOLoop; pump again once it is there."""
        cursor, channel = sub.cursor, sub.channel
        sub.reading = True

        def done(page: Optional[CatchUpPage], error: Optional[BaseException]) -> None:
            sub.reading = False
            if not sub.active or not sub.catching_up or sub.cursor != cursor:
                return  # reset, skipped or unsubscribed meanwhile: the page is stale
            if error is not None:
                log.error("reading %s history failed: %r", channel.spec, error)
                # Say what was not sent rather than stall: it stays fetchable by cursor.
                page = CatchUpPage([], (cursor, target), failed=True)
            sub.page = page
            self.hub.schedule(self)

        self.hub.run(lambda: channel.catch_up_page(cursor, target), done)

    @staticmethod
    def _drop_queued_before(sub: Subscription) -> None:
        """History already sent what the queue holds before the cursor."""
        while sub.queue and sub.queue[0][0] < sub.cursor:
            item = sub.queue.popleft()
            if isinstance(item, HubNotice):
                sub.controls -= 1
            else:
                sub.queued_bytes -= sub.channel.span(item[0], item[1])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sub in list(self.subscriptions.values()):
            sub.active = False
            sub.channel.subscriptions.discard(sub)
        self.subscriptions.clear()
        self.hub.clients.discard(self)


class Channel:
    """The live records of one process, and who is subscribed to them."""

    def __init__(self, hub: Hub, spec: str, store: Pages, position: int) -> None:
        self.hub = hub
        self.spec = spec
        self.store = store
        #: Offset just past the last record published: where live begins.
        self.position = position
        self.subscriptions: Set[Subscription] = set()
        #: Fields added to this channel's ``subscribed`` frames.
        self.describe: Dict[str, Any] = {}
        #: Times the log started again (see :meth:`reset`).
        self.resets = 0

    def span(self, start: int, end: int) -> int:
        """Bytes of log between two offsets (what queue limits count)."""
        return self.store.span(start, end)

    def clamp(self, cursor: int) -> int:
        """A client's cursor as this channel can resume from it."""
        return self.store.resume_at(cursor, self.position)

    def catch_up_page(self, cursor: int, target: int) -> CatchUpPage:
        """Off the IOLoop: the history page after ``cursor``, encoded.

        Only records that end at or before ``target`` (the live position
        when the read was asked for) are needed; the caller filters again.
        """
        page = self.store.read_forward(cursor, HISTORY_PAGE, until=target)
        items = [encode(entry) for entry in page.entries if entry.end <= target]
        return CatchUpPage(items, page.missing)

    def advance(self, start: int, end: int) -> None:
        """Records in [start, end) were read but not parsed: nobody is subscribed."""
        self.position = end

    def gap(self, start: int, end: int) -> None:
        """Records in [start, end) will never be published: tell the subscribers."""
        self.position = max(self.position, end)
        for sub in list(self.subscriptions):
            sub.notice(
                {
                    "type": "skipped",
                    "process": self.spec,
                    "from": start,
                    "to": end,
                    "reason": "deleted",
                },
                end,
            )

    def reset(self, position: int) -> None:
        """The log starts again at ``position`` (a truncated or replaced file)."""
        self.position = position
        self.resets += 1
        for sub in list(self.subscriptions):
            sub.notice(
                {"type": "reset", "process": self.spec, "cursor": position}, position, force=True
            )

    def publish(self, entries: List[Entry]) -> None:
        """New records from the follower, in order, continuing ``position``."""
        if not entries:
            return
        self.position = entries[-1].end
        if not self.subscriptions:
            return
        items = [encode(entry) for entry in entries]
        for sub in list(self.subscriptions):
            sub.enqueue(items)
            self.hub.schedule(sub.client)


class Hub:
    """All channels and clients; the server feeds it and drives its timer."""

    def __init__(
        self,
        max_queue_bytes: int = 4 * 1024 * 1024,
        call_soon: Optional[Callable[[Callable[[], None]], None]] = None,
        max_catchup_bytes: int = 256 * 1024 * 1024,
        run_blocking: Optional[RunBlocking] = None,
    ) -> None:
        self.max_queue_bytes = max_queue_bytes
        #: History reads go through this (None: called in place, for tests and tools).
        self.run_blocking = run_blocking
        self.max_catchup_bytes = max_catchup_bytes
        self.channels: Dict[str, Channel] = {}
        self.clients: Set[Client] = set()
        self.call_soon = call_soon
        self._scheduled: Set[Client] = set()
        self.sent_records = 0
        self.skipped_records = 0

    def channel(self, spec: str, store: Pages, position: int) -> Channel:
        found = self.channels.get(spec)
        if found is None:
            found = self.channels[spec] = Channel(self, spec, store, position)
        return found

    def add_channel(self, channel: Channel) -> Channel:
        """Register a channel made elsewhere (a subclass); replaces one of that name."""
        self.channels[channel.spec] = channel
        return channel

    def connect(self, sender: Sender) -> Client:
        client = Client(self, sender)
        self.clients.add(client)
        return client

    def run(
        self,
        read: Callable[[], Any],
        done: Callable[[Any, Optional[BaseException]], None],
    ) -> None:
        """Run a blocking read through ``run_blocking``; ``done(result, error)`` on the loop."""
        if self.run_blocking is None:
            try:
                result = read()
            except Exception as exc:
                done(None, exc)
                return
            done(result, None)
            return

        def finished(future: Any) -> None:
            if future.cancelled():
                return  # the executor shut down: the server is stopping
            error = future.exception()
            done(None if error is not None else future.result(), error)

        self.run_blocking(read).add_done_callback(finished)

    def subscribe(
        self,
        client: Client,
        spec: str,
        tail: int = 0,
        cursor: Optional[int] = None,
        then: Sequence[Dict[str, Any]] = (),
    ) -> Subscription:
        """Start sending ``spec`` to ``client``: from ``cursor``, or its last ``tail`` records.

        The ``subscribed`` frame, then the ``then`` messages, go out once the
        start is known: at once, or after the ``tail`` was located in history
        (off the IOLoop).  Live records are not queued meanwhile.
        """
        channel = self.channels[spec]
        old = client.subscriptions.pop(spec, None)
        if old is not None:
            old.active = False
            channel.subscriptions.discard(old)
        sub = Subscription(channel, client)
        sub.catching_up = True  # until started: the files hold what comes meanwhile
        client.subscriptions[spec] = sub
        channel.subscriptions.add(sub)
        if cursor is not None:
            self._start(sub, channel.clamp(cursor), then)
        elif tail > 0:
            position, resets = channel.position, channel.resets
            sub.reading = True

            def located(page: Any, error: Optional[BaseException]) -> None:
                sub.reading = False
                if not sub.active:
                    return
                start = channel.position  # after a failure, or a reset meanwhile
                if error is not None:
                    log.error("reading %s history failed: %r", spec, error)
                elif page.entries and channel.resets == resets:
                    start = page.entries[0].offset
                self._start(sub, start, then)

            self.run(lambda: channel.store.read_backward(position, tail), located)
        else:
            self._start(sub, channel.position, then)
        return sub

    def _start(self, sub: Subscription, start: int, then: Sequence[Dict[str, Any]]) -> None:
        channel, client = sub.channel, sub.client
        sub.cursor = start
        sub.catching_up = start < channel.position
        sub.started = True
        message = {"type": "subscribed", "process": channel.spec, "cursor": start}
        message["live"] = channel.position
        message.update(channel.describe)
        client.send(message)
        for extra in then:
            client.send(extra)
        self.schedule(client)

    def unsubscribe(self, client: Client, spec: str) -> bool:
        sub = client.subscriptions.pop(spec, None)
        if sub is None:
            return False
        sub.active = False
        sub.channel.subscriptions.discard(sub)
        return True

    def schedule(self, client: Client) -> None:
        """Pump ``client`` soon (once, however many records arrive meanwhile)."""
        if self.call_soon is None:
            client.pump()
            return
        if client not in self._scheduled:
            self._scheduled.add(client)
            self.call_soon(lambda: self._pump(client))

    def _pump(self, client: Client) -> None:
        self._scheduled.discard(client)
        client.pump()

    def queued(self) -> int:
        """Records waiting in all client queues (a metric)."""
        return sum(len(s.queue) for c in self.clients for s in c.subscriptions.values())

    def broadcast(self, message: Dict[str, Any]) -> None:
        """A control message to every client (process state changes)."""
        for client in list(self.clients):
            client.send(message)
