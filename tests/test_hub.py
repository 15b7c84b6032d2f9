"""The hub's fan-out: exactly once and in order per client, bounded queues, skipped notices."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any, Dict, List, Optional, Tuple

from supervisor_streamlog.logread.store import Page
from supervisor_streamlog.ondisk.files import Entry
from supervisor_streamlog.ondisk.formats import Record
from supervisor_streamlog.sidecar.hub import Hub


def make_entries(count: int, start: int = 0, size: int = 50) -> List[Entry]:
    return [
        Entry(
            start + n * size,
            start + (n + 1) * size,
            Record(
                "2026-11-27T01:23:45.000000+00:00",
                "stdout",
                b"line %d" % (start // size + n),
                False,
            ),
        )
        for n in range(count)
    ]


class MemoryStore:
    """History in memory, with the LogStore paging semantics the hub relies on."""

    def __init__(self, entries: List[Entry], first: int = 0) -> None:
        self.entries = entries
        self.first = first

    def read_forward(self, start: Optional[int], limit: int, until: Optional[int] = None) -> Page:
        start = self.first if start is None else start
        missing = (start, self.first) if start < self.first else None
        found = [e for e in self.entries if e.offset >= max(start, self.first)][:limit]
        if until is not None:
            found = [e for e in found if e.end <= until]
        first = found[0].offset if found else start
        return Page(found, first, found[-1].end if found else start, False, False, missing)

    def read_backward(self, end: Optional[int], limit: int) -> Page:
        found = [e for e in self.entries if end is None or e.end <= end][-limit:]
        first, last = (found[0].offset, found[-1].end) if found else (0, 0)
        return Page(found, first, last, False, False)

    def span(self, start: int, end: int) -> int:
        return end - start

    def resume_at(self, cursor: int, live: int) -> int:
        return cursor


class Sender:
    """A client that records frames; ``slow`` leaves writes pending until released."""

    def __init__(self, slow: bool = False) -> None:
        self.frames: List[Dict[str, Any]] = []
        self.slow = slow
        self.pending: List[concurrent.futures.Future] = []

    def send(self, message: str) -> Any:
        self.frames.append(json.loads(message))
        future: concurrent.futures.Future = concurrent.futures.Future()
        if self.slow:
            self.pending.append(future)
        else:
            future.set_result(None)
        return future

    def release(self) -> None:
        while self.pending:
            self.pending.pop(0).set_result(None)

    def texts(self) -> List[str]:
        return [e["text"] for f in self.frames if f["type"] == "lines" for e in f["entries"]]

    def last_cursor(self) -> int:
        return [f for f in self.frames if f["type"] == "lines"][-1]["cursor"]


def test_live_records_exactly_once_in_order() -> None:
    hub = Hub()
    hub.channel("web:web", MemoryStore([]), 0)
    sender = Sender()
    client = hub.connect(sender)
    hub.subscribe(client, "web:web")
    entries = make_entries(30)
    for n in range(0, 30, 7):
        hub.channels["web:web"].publish(entries[n : n + 7])
    assert sender.texts() == [f"line {n}" for n in range(30)]
    assert sender.last_cursor() == entries[-1].end
    assert sender.frames[0]["type"] == "subscribed"


def test_tail_then_live() -> None:
    history = make_entries(100)
    hub = Hub()
    hub.channel("web:web", MemoryStore(history), history[-1].end)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web", tail=10)
    hub.channels["web:web"].publish(make_entries(5, start=history[-1].end))
    assert sender.texts() == [f"line {n}" for n in range(90, 105)]


def test_resume_from_cursor_while_live_records_arrive() -> None:
    history = make_entries(5000)
    store = MemoryStore(history[:3000])
    hub = Hub()
    channel = hub.channel("web:web", store, history[2999].end)
    sender = Sender(slow=True)
    client = hub.connect(sender)
    hub.subscribe(client, "web:web", cursor=history[1234].offset)
    # Live records arrive (and reach the files) while the catch-up is paced.
    for n in range(3000, 5000, 100):
        store.entries = history[: n + 100]
        channel.publish(history[n : n + 100])
        sender.release()
    for _ in range(50):
        sender.release()
    assert sender.texts() == [f"line {n}" for n in range(1234, 5000)]


def test_a_cursor_ahead_of_the_follower_waits_for_it() -> None:
    # The client read history up to the file's end over HTTP; the follower has
    # not read that far yet. What it publishes before the cursor is not sent again.
    history = make_entries(20)
    hub = Hub()
    channel = hub.channel("web:web", MemoryStore(history), history[9].end)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web", cursor=history[14].end)
    assert sender.frames[0]["cursor"] == history[14].end
    channel.publish(history[10:20])
    assert sender.texts() == [f"line {n}" for n in range(15, 20)]


def test_slow_client_gets_a_skipped_notice_and_a_fast_one_everything() -> None:
    hub = Hub(max_queue_bytes=10_000)
    channel = hub.channel("web:web", MemoryStore([]), 0)
    slow, fast = Sender(slow=True), Sender()
    hub.subscribe(hub.connect(slow), "web:web")
    hub.subscribe(hub.connect(fast), "web:web")
    entries = make_entries(2000)
    for n in range(0, 2000, 50):
        channel.publish(entries[n : n + 50])
    assert fast.texts() == [f"line {n}" for n in range(2000)]
    # The slow client's socket drains: it learns exactly what it missed.
    slow.release()
    more = make_entries(10, start=entries[-1].end)
    channel.publish(more)
    slow.release()
    seen = slow.texts()
    skipped = [f for f in slow.frames if f["type"] == "skipped"]
    assert len(skipped) == 1
    first_missed, resumed = skipped[0]["from"], skipped[0]["to"]
    got_before = [
        e
        for f in slow.frames
        if f["type"] == "lines"
        for e in f["entries"]
        if e["end"] <= first_missed
    ]
    got_after = [
        e
        for f in slow.frames
        if f["type"] == "lines"
        for e in f["entries"]
        if e["offset"] >= resumed
    ]
    # Every record is either received or inside the skipped range, once.
    assert len(got_before) + (resumed - first_missed) // 50 + len(got_after) == 2010
    assert seen[-10:] == [f"line {n}" for n in range(2000, 2010)]
    assert hub.skipped_records > 0


def test_file_headers_are_not_sent_but_the_cursor_moves_past_them() -> None:
    hub = Hub()
    channel = hub.channel("web:web", MemoryStore([]), 0)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web")
    header = Entry(0, 60, Record("t", "status", b"STREAMLOG file offset=0", False))
    channel.publish([header])
    assert sender.texts() == [] and sender.last_cursor() == 60


def test_history_deleted_by_retention_is_reported() -> None:
    history = make_entries(10, start=5000)
    hub = Hub()
    hub.channel("web:web", MemoryStore(history, first=5000), history[-1].end)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web", cursor=100)
    skipped = [f for f in sender.frames if f["type"] == "skipped"]
    assert skipped == [
        {"type": "skipped", "process": "web:web", "from": 100, "to": 5000, "reason": "deleted"}
    ]
    assert sender.texts() == [f"line {n}" for n in range(100, 110)]


def test_closed_client_is_forgotten() -> None:
    hub = Hub()
    channel = hub.channel("web:web", MemoryStore([]), 0)
    sender = Sender()
    client = hub.connect(sender)
    hub.subscribe(client, "web:web")
    client.close()
    channel.publish(make_entries(3))
    assert sender.texts() == [] and not hub.clients and not channel.subscriptions


def test_gap_and_reset_reach_live_subscribers_in_order() -> None:
    hub = Hub()
    channel = hub.channel("web:web", MemoryStore([]), 0)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web")
    channel.publish(make_entries(3))
    channel.gap(150, 1000)  # retention removed a file before the follower read it
    channel.publish(make_entries(2, start=1000))
    channel.reset(0)  # the live file was truncated: offsets start again
    channel.publish(make_entries(1))
    kinds = [(f["type"], f.get("from"), f.get("to"), f.get("cursor")) for f in sender.frames]
    assert kinds == [
        ("subscribed", None, None, 0),
        ("lines", None, None, 150),
        ("skipped", 150, 1000, None),
        ("lines", None, None, 1100),
        ("reset", None, None, 0),
        ("lines", None, None, 50),
    ]


class Deferred:
    """A ``run_blocking`` whose reads run only when the test says so."""

    def __init__(self) -> None:
        self.waiting: List[Tuple[Any, concurrent.futures.Future]] = []

    def __call__(self, read: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.waiting.append((read, future))
        return future

    def finish(self) -> int:
        """Run the reads asked for so far; how many ran."""
        done = 0
        while self.waiting:
            read, future = self.waiting.pop(0)
            future.set_result(read())
            done += 1
        return done


def test_catch_up_reads_run_elsewhere_and_live_records_are_not_lost_meanwhile() -> None:
    history = make_entries(5000)
    store = MemoryStore(history[:2000])
    runner = Deferred()
    hub = Hub(run_blocking=runner)
    channel = hub.channel("web:web", store, history[1999].end)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web", cursor=history[500].offset)
    # The subscribe itself reads nothing: its first page is only asked for.
    assert [f["type"] for f in sender.frames] == ["subscribed"]
    assert len(runner.waiting) == 1
    # Live records keep coming (and reach the files) while every read is pending.
    for n in range(2000, 5000, 250):
        store.entries = history[: n + 250]
        channel.publish(history[n : n + 250])
        runner.finish()
    while runner.finish():
        pass
    assert sender.texts() == [f"line {n}" for n in range(500, 5000)]


def test_tail_is_located_elsewhere_and_subscribed_comes_first() -> None:
    history = make_entries(103)
    store = MemoryStore(history[:100])
    runner = Deferred()
    hub = Hub(run_blocking=runner)
    channel = hub.channel("web:web", store, history[99].end)
    sender = Sender()
    state = {"type": "state", "process": "web:web", "state": "RUNNING"}
    hub.subscribe(hub.connect(sender), "web:web", tail=10, then=[state])
    assert sender.frames == []  # nothing known yet: the tail is being located
    store.entries = history
    channel.publish(history[100:])  # not queued: the catch-up reads them from the files
    runner.finish()
    assert sender.frames[0]["type"] == "subscribed"
    assert sender.frames[0]["cursor"] == history[90].offset
    assert sender.frames[1] == state
    while runner.finish():
        pass
    assert sender.texts() == [f"line {n}" for n in range(90, 103)]


def test_a_reset_while_a_catch_up_page_is_read_drops_that_page() -> None:
    history = make_entries(100)
    runner = Deferred()
    hub = Hub(run_blocking=runner)
    channel = hub.channel("web:web", MemoryStore(history), history[-1].end)
    sender = Sender()
    hub.subscribe(hub.connect(sender), "web:web", cursor=0)
    channel.reset(0)  # truncated while the first page was being read
    runner.finish()
    channel.publish(make_entries(2))
    kinds = [f["type"] for f in sender.frames]
    assert kinds == ["subscribed", "reset", "lines"]
    assert sender.texts() == ["line 0", "line 1"]


def test_a_slow_history_read_does_not_hold_back_live_clients() -> None:
    """A real IOLoop and thread: a catch-up read that takes 0.5 s (a big .gz)
    while another client's live records keep flowing."""
    import asyncio
    import time

    class SlowStore(MemoryStore):
        def read_forward(
            self, start: Optional[int], limit: int, until: Optional[int] = None
        ) -> Page:
            time.sleep(0.5)
            return super().read_forward(start, limit, until)

    async def run() -> Tuple[List[float], Sender, Sender]:
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(1)
        history = make_entries(1000)
        hub = Hub(
            call_soon=lambda callback: None if loop.call_soon(callback) else None,
            run_blocking=lambda read: loop.run_in_executor(executor, read),
        )
        channel = hub.channel("web:web", SlowStore(history), history[-1].end)
        live, behind = Sender(), Sender()
        hub.subscribe(hub.connect(live), "web:web")
        hub.subscribe(hub.connect(behind), "web:web", cursor=0)
        delays = []
        end = history[-1].end
        for _ in range(20):
            more = make_entries(1, start=end)
            end = more[-1].end
            channel.store.entries.extend(more)  # type: ignore[attr-defined]
            sent = time.monotonic()
            channel.publish(more)
            while live.texts()[-1:] != [more[0].record.text]:
                await asyncio.sleep(0.001)
            delays.append(time.monotonic() - sent)
            await asyncio.sleep(0.05)
        while len(behind.texts()) < 1020:
            await asyncio.sleep(0.05)
        executor.shutdown()
        return delays, live, behind

    delays, live, behind = asyncio.run(run())
    assert max(delays) < 0.1  # while the other client's read sleeps 0.5 s
    assert behind.texts() == [f"line {n}" for n in range(1020)]
    assert len(live.texts()) == 20
