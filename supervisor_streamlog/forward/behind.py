"""How far one destination is behind on one process: bytes, records, seconds.

Role: what ``forward_metrics`` serves and ``forward --status`` prints
(docs/shipping.md, "Watching the forwarder").  Bytes behind are the end of
the last complete record minus the acknowledged offset; the age is the time of
the record at that offset (one small read, kept while the offset stays).

Records are counted exactly without re-reading the backlog at every scrape
(gigabytes after a long outage): each feed keeps a :class:`Backlog` of the
records between its acknowledged offset and a *counted-up-to* offset.  Pages
the forwarder read anyway add their records, acknowledgements subtract, and a
scrape counts only the bytes past the counted-up-to offset, once
(:func:`count_records`, in a thread).  Invariant: every byte is counted at
most once per destination, except after a retention gap, which drops the
count and counts from the oldest record on disk again.  Threads: the
:class:`Backlog` changes on the event loop only.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple

from ..logread.logstore import LogStore
from ..ondisk.files import is_header
from ..ondisk.formats import record_seconds


def count_records(store: LogStore, start: int, end: int) -> int:
    """Records in ``[start, end)`` of a log, file headers left out: newline count,
    by chunks (memory: one chunk; cost: one read, or decompression, of those bytes)."""
    if end <= start:
        return 0
    return sum(chunk.count(b"\n") for chunk in store.export(start, end))


def record_time(store: LogStore, offset: int) -> Optional[float]:
    """The time of the first record at or after ``offset`` (the header of a file left out)."""
    page = store.read_forward(offset, 2)
    for entry in page.entries:
        if not is_header(entry.record.stream, entry.record.data):
            return record_seconds(entry.record.time)  # None: no age to tell
    return None


class Backlog:
    """Records of one process not yet acknowledged by one destination, counted exactly.

    ``records`` is the number of records in ``[max(floor, acked offset),
    counted_to)``; every change happens on the event loop.  ``floor`` is
    where counting (re)started: acknowledgements of records before it were
    never counted and subtract nothing.  ``epoch`` changes whenever the count
    starts again, so a scrape's count of a range taken before that is dropped.

    How the count moves: a page the forwarder sends was read anyway, so its
    records past ``counted_to`` are added (a bisection of the page's record
    ends) and ``counted_to`` moves to the page's end; an acknowledgement
    subtracts the records it covers; a scrape counts the newline-terminated
    records (file headers left out) past ``counted_to`` by chunks and adds
    them.  Once delivery reaches ``counted_to`` the count is zero by
    definition, which also forgets any line that is not a record (damage:
    counted by newline, never sent).  A scrape costs, per process, a look at
    the log's bounds, the new bytes since the last scrape or page (a ``.gz``
    in the range decompressed from its start) and one small read for the age
    when the acknowledged offset moved.
    """

    def __init__(self, offset: int) -> None:
        self.floor = offset
        self.counted_to = offset
        self.records = 0
        self.epoch = 0
        #: Messages handed to the destination, acknowledged, and sent again
        #: (after a reconnect: sent before, never acknowledged).
        self.sent = 0
        self.acked = 0
        self.resent = 0
        #: The end of what has been sent at least once.
        self.sent_to = offset
        #: (offset, time of the record there) of the last age looked up.
        self.time_at: Tuple[int, Optional[float]] = (-1, None)

    def restart(self, offset: int) -> None:
        """Count again from ``offset``: nothing counted before it holds any more."""
        self.floor = self.counted_to = offset
        self.records = 0
        self.epoch += 1

    def sending(self, ends: Sequence[int], end: int) -> None:
        """A page is about to be sent: ``ends`` of its messages, ``end`` of its range."""
        if end > self.counted_to:
            self.records += len(ends) - bisect.bisect_right(ends, self.counted_to)
            self.counted_to = end

    def written(self, ends: Sequence[int], count: int) -> None:
        """The first ``count`` messages of a page went out (all, or up to a failure)."""
        if not count:
            return
        self.sent += count
        if ends[0] <= self.sent_to:
            self.resent += bisect.bisect_right(ends, self.sent_to, 0, count)
        self.sent_to = max(self.sent_to, ends[count - 1])

    def acknowledged(self, ends: Sequence[int], before: int, now: int) -> None:
        """Messages ``before..now`` of a page (by their ``ends``) were acknowledged."""
        self.acked += now - before
        first = max(before, bisect.bisect_right(ends, self.floor, before, now))
        self.records -= now - first

    def advanced(self, offset: int) -> None:
        """The acknowledged offset moved to ``offset``: at the counted end, nothing is left."""
        if offset >= self.counted_to:
            self.restart(offset)

    def reserve(self, end: int) -> Optional[Tuple[int, int, int]]:
        """Take ``[counted_to, end)`` for a scrape to count: (start, end, epoch), or None."""
        if end <= self.counted_to:
            return None
        span = (self.counted_to, end, self.epoch)
        self.counted_to = end
        return span

    def counted(self, epoch: int, records: int) -> None:
        """A scrape's count of a reserved range, unless the count started again since."""
        if epoch == self.epoch:
            self.records += records


class Tracked(Protocol):
    """What :func:`measure` needs of a feed (``forwarder.Feed``)."""

    store: LogStore
    offset: int
    backlog: Backlog


@dataclass(frozen=True)
class Behind:
    """One process, as one destination stands now."""

    bytes: int
    records: int
    #: Age of the oldest record not acknowledged (0 when nothing is behind).
    seconds: float
    #: Bytes retention deleted before they were delivered and that delivery
    #: has not passed yet (``State.lost`` counts them once it has).
    deleted: int


def _bounds(stores: Sequence[LogStore]) -> List[Tuple[int, int]]:
    found = []
    for store in stores:
        try:
            found.append(store.bounds())
        except OSError:
            found.append((0, 0))
    return found


def _count(
    spans: Sequence[Tuple[LogStore, int, int]], ages: Sequence[Tuple[LogStore, int]]
) -> Tuple[List[Optional[int]], List[Optional[float]]]:
    counts: List[Optional[int]] = []
    for store, start, end in spans:
        try:
            counts.append(count_records(store, start, end))
        except OSError:
            counts.append(None)
    times = []
    for store, offset in ages:
        try:
            times.append(record_time(store, offset))
        except OSError:
            times.append(None)
    return counts, times


async def measure(feeds: Sequence[Tracked]) -> List[Behind]:
    """Where each feed stands now.  Blocking reads run in threads; every change
    to a backlog is made here, on the loop, between them (one call at a time)."""
    bounds = await asyncio.to_thread(_bounds, [feed.store for feed in feeds])
    spans: List[Tuple[Tracked, int, int, int]] = []
    for feed, (oldest, end) in zip(feeds, bounds):
        backlog = feed.backlog
        if feed.offset < oldest and backlog.floor < oldest:
            backlog.restart(oldest)  # retention deleted records, counted or not
        span = backlog.reserve(end)
        if span is not None:
            spans.append((feed, *span))
    ages = []
    for feed, (oldest, end) in zip(feeds, bounds):
        start = max(feed.offset, oldest)
        if start < max(end, feed.backlog.counted_to) and feed.backlog.time_at[0] != start:
            ages.append((feed, start))
    try:
        counts, times = await asyncio.to_thread(
            _count,
            [(feed.store, start, end) for feed, start, end, _ in spans],
            [(feed.store, start) for feed, start in ages],
        )
    except BaseException:
        counts, times = [None] * len(spans), []
        raise
    finally:
        for (feed, _, _, epoch), records in zip(spans, counts):
            if records is not None:
                feed.backlog.counted(epoch, records)
            elif epoch == feed.backlog.epoch:
                # A range that could not be counted: forget the count, and
                # count from the acknowledged offset at the next scrape.
                feed.backlog.restart(feed.offset)
    for (feed, start), when in zip(ages, times):
        feed.backlog.time_at = (start, when)
    now = time.time()
    found = []
    for feed, (oldest, end) in zip(feeds, bounds):
        backlog = feed.backlog
        start = max(feed.offset, oldest)
        size = max(0, max(end, backlog.counted_to) - start)
        seconds = 0.0
        if size:
            at, when = backlog.time_at
            # at is the offset looked at above: this one, or a little before
            # it if acknowledgements came meanwhile (then a little older).
            if at <= start and when is not None:
                seconds = max(0.0, now - when)
        deleted = max(0, oldest - feed.offset)
        found.append(Behind(size, max(0, backlog.records) if size else 0, seconds, deleted))
    return found
