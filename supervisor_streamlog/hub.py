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
  ``max_catchup_bytes`` it is skipped forward, with a notice).
* Frames go out one at a time per client (the next only when the previous
  write completed), batching what queued up meanwhile: a fast client gets small
  frames quickly, a slow one fewer, larger frames.
* A client that does not keep up -- its queue passes ``max_queue_bytes`` --
  loses its queue instead of slowing anyone down: it is sent a ``skipped``
  notice with the offset range it missed (fetchable from ``/api/log``) and goes
  on with live records.  Capture never waits for the sidecar, and the sidecar
  never waits for a client.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Set, Tuple

from .logfiles import Entry, is_header

log = logging.getLogger("supervisor_streamlog.hub")

#: Records per ``lines`` frame at most.
FRAME_ENTRIES = 2000
#: Records read from history per step of a catch-up.
HISTORY_PAGE = 1000


class Sender(Protocol):
    """The client side: send one JSON text frame; the result completes when written."""

    def send(self, message: str) -> Any: ...


class Page(Protocol):
    entries: List[Entry]
    start: int
    end: int
    missing: Optional[Tuple[int, int]]


class Store(Protocol):
    """What the hub needs of :class:`~.logstore.LogStore`."""

    def read_forward(self, start: Optional[int], limit: int) -> Any: ...

    def read_backward(self, end: Optional[int], limit: int) -> Any: ...


#: A queued record: its offsets, and its JSON (None for a file header, not shown).
Item = Tuple[int, int, Optional[str]]


def _is_control(item: Item) -> bool:
    """A control message queued among records (see :meth:`Subscription.notice`)."""
    return (item[2] or "").startswith("\0")


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
        "time": record.time,
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
        #: Control messages (gap, reset) in ``queue``: with none, the queue is one
        #: contiguous run of records and a frame is taken without looking at each.
        self.controls = 0
        #: Everything before this offset has been sent (or reported skipped).
        self.cursor = channel.position
        self.catching_up = False
        self.skipped: Optional[List[int]] = None  # [from, to) being skipped
        self.active = True

    def enqueue(self, items: List[Item]) -> None:
        if not self.active or self.catching_up:
            return  # a catch-up reads these from the files when it gets there
        if self.skipped is not None:
            self.skipped[1] = items[-1][1]
            self.channel.hub.skipped_records += len(items)
            return
        self.queue.extend(items)
        self.queued_bytes += items[-1][1] - items[0][0]  # a publish is contiguous
        if self.queued_bytes > self.channel.hub.max_queue_bytes:
            self._start_skipping()

    def notice(self, message: Dict[str, Any], cursor: int, force: bool = False) -> None:
        """Queue a control message in order with the records; it moves the cursor."""
        if not self.active:
            return
        if self.catching_up and not force:
            return  # the catch-up's own reading will meet the same gap
        self.catching_up = False
        self.queue.append((cursor, cursor, "\0" + json.dumps(message)))
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
                sub.queued_bytes -= batch[-1][1] - batch[0][0]
            elif _is_control(sub.queue[0]):
                _, cursor, control = sub.queue.popleft()
                sub.controls -= 1
                sub.cursor = cursor
                self.send(str(control)[1:])
                return
            else:
                count = 0
                for item in sub.queue:
                    if count == FRAME_ENTRIES or _is_control(item):
                        break
                    count += 1
                batch = [sub.queue.popleft() for _ in range(count)]
                sub.queued_bytes -= sum(end - start for start, end, _ in batch)
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
        """Send the next page of history before live records; False when done.

        Live records are not queued meanwhile: the catch-up reads them from the
        files too, until it reaches the live position; one page is in flight at a
        time, so memory stays bounded however slow the client.  A client more
        than ``max_catchup_bytes`` behind is skipped to the live position.
        """
        target = sub.channel.position
        if target - sub.cursor > self.hub.max_catchup_bytes:
            start, sub.cursor = sub.cursor, target
            sub.catching_up = False
            self.hub.skipped_records += 1
            self.send({"type": "skipped", "process": spec, "from": start, "to": target})
            return True
        if sub.cursor >= target:
            sub.catching_up = False
            self._drop_queued_before(sub)
            return False
        page = sub.channel.store.read_forward(sub.cursor, HISTORY_PAGE)
        if page.missing is not None and page.missing[0] < page.missing[1]:
            missing_from, missing_to = page.missing
            sub.cursor = missing_to
            self.send(
                {
                    "type": "skipped",
                    "process": spec,
                    "from": missing_from,
                    "to": missing_to,
                    "reason": "deleted",
                }
            )
            return True
        entries = [encode(e) for e in page.entries if e.end <= target]
        if not entries:
            # Nothing complete before the live position: go live from there.
            sub.cursor = max(sub.cursor, target)
            sub.catching_up = False
            self._drop_queued_before(sub)
            return False
        self._send_entries(spec, sub, entries)
        return True

    @staticmethod
    def _drop_queued_before(sub: Subscription) -> None:
        """History already sent what the queue holds before the cursor."""
        while sub.queue and sub.queue[0][0] < sub.cursor:
            start, end, _ = sub.queue.popleft()
            sub.queued_bytes -= end - start

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

    def __init__(self, hub: Hub, spec: str, store: Store, position: int) -> None:
        self.hub = hub
        self.spec = spec
        self.store = store
        #: Offset just past the last record published: where live begins.
        self.position = position
        self.subscriptions: Set[Subscription] = set()

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
    ) -> None:
        self.max_queue_bytes = max_queue_bytes
        self.max_catchup_bytes = max_catchup_bytes
        self.channels: Dict[str, Channel] = {}
        self.clients: Set[Client] = set()
        self.call_soon = call_soon
        self._scheduled: Set[Client] = set()
        self.sent_records = 0
        self.skipped_records = 0

    def channel(self, spec: str, store: Store, position: int) -> Channel:
        found = self.channels.get(spec)
        if found is None:
            found = self.channels[spec] = Channel(self, spec, store, position)
        return found

    def connect(self, sender: Sender) -> Client:
        client = Client(self, sender)
        self.clients.add(client)
        return client

    def subscribe(
        self, client: Client, spec: str, tail: int = 0, cursor: Optional[int] = None
    ) -> Subscription:
        """Start sending ``spec`` to ``client``: from ``cursor``, or its last ``tail`` records."""
        channel = self.channels[spec]
        old = client.subscriptions.pop(spec, None)
        if old is not None:
            old.active = False
            channel.subscriptions.discard(old)
        sub = Subscription(channel, client)
        start = channel.position
        if cursor is not None:
            start = cursor
        elif tail > 0:
            page = channel.store.read_backward(channel.position, tail)
            if page.entries:
                start = page.entries[0].offset
        sub.cursor = start
        if start < channel.position:
            sub.catching_up = True
        client.subscriptions[spec] = sub
        channel.subscriptions.add(sub)
        client.send(
            {"type": "subscribed", "process": spec, "cursor": start, "live": channel.position}
        )
        self.schedule(client)
        return sub

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
