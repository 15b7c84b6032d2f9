"""``supervisor-streamlog tail``: the last records of processes, merged into one
timeline, and new ones as they come.

Role: reads the files the capture writes, so it works whether or not the
sidecar runs: the backlog through :class:`.logread.logstore.LogStore`, new
records through :class:`.logread.follow.FileFollower` (the sidecar's
follower: it crosses rotation and gzip by the headers' offsets).  Prints one
line per line of the child's output::

    TIME [NAME] STREAM TEXT

NAME (as supervisorctl shows it) only when several processes are tailed.
Invariants: no byte twice -- pieces of a line are joined, a piece nothing
follows within the reorder window (a prompt) is printed alone and what
completes it later as a line of its own; each process's order is kept, and
live lines are held at most ``window`` seconds to be put in time order across
processes; SGR colours are kept for a terminal, every other control character
or escape is printed as text (``\\x1b[2J``), so a log cannot take over the
terminal.  One thread.
"""

from __future__ import annotations

import collections
import heapq
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Deque, Dict, Iterable, Iterator, List, Optional, TextIO, Tuple

from .config import Config
from .logread.follow import FileFollower
from .logread.logstore import LogStore
from .ondisk.files import Entry, is_header
from .ondisk.formats import Record, record_seconds
from .ondisk.paths import (
    display_name,
    log_path,
    quote_name,
    split_host,
    split_process,
    unquote_name,
)

# ---------------------------------------------------------------- time arguments

_RELATIVE = re.compile(
    r"^\s*(-)?\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)"
    r"\s*(ago)?\s*$",
    re.IGNORECASE,
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(text: str, now: Optional[float] = None) -> float:
    """``--since``/``--until`` text as epoch seconds.

    Accepts RFC 3339 (``2026-12-02T14:05:00+01:00``, ``...Z``), local time
    (``2026-12-02 14:05``, ``2026-12-02``, ``14:05`` today), relative times
    in the past (``-5m``, ``5m``, ``1h ago``, ``2d``, ``30s``), ``now``,
    ``today`` and ``yesterday``.  Raises ValueError otherwise.
    """
    now = time.time() if now is None else now
    word = text.strip().lower()
    if word == "now":
        return now
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if word == "today":
        return midnight.timestamp()
    if word == "yesterday":
        return (midnight - timedelta(days=1)).timestamp()
    match = _RELATIVE.match(text)
    if match:
        unit = match.group(3).lower()
        return now - float(match.group(2)) * _UNITS[unit[0]]
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text.strip()):
        text = f"{midnight.date().isoformat()} {text.strip()}"
    moment = record_seconds(text.strip())  # read as a record's stamp; naive: local time
    if moment is None:
        raise ValueError(f"not a time: {text!r} (try 2026-12-02 14:05, RFC 3339, -5m or '1h ago')")
    return moment


# ---------------------------------------------------------------- rendering

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), any other ESC + one char,
# C0 controls but tab and newline, DEL, C1 controls.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[^\[\]]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
RESET = "\x1b[0m"
_STREAM_COLOURS = {"stderr": "\x1b[31m", "status": "\x1b[36m"}


def _escaped(text: str) -> str:
    """Control characters of ``text`` as ``\\xNN`` text; the rest as it is."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def sanitize(text: str, colour: bool) -> str:
    """``text`` safe for a terminal: SGR colours kept (``colour``) or dropped,
    anything else that could drive a terminal shown escaped (``\\x1b[2J``)."""

    def one(match: re.Match) -> str:
        seq = match.group(0)
        if _SGR.fullmatch(seq):
            return seq if colour else ""
        return _escaped(seq)

    clean = _ESCAPES.sub(one, text)
    if colour and "\x1b[" in clean:
        clean += RESET  # a colour left open must not run into the next line
    return clean


def plain(text: str) -> str:
    """``text`` with SGR colours removed: what ``--grep`` matches."""
    return _SGR.sub("", text)


@dataclass(order=True)
class Line:
    """One line to print: a whole line of a process's stream, pieces joined."""

    when: float
    seq: int
    stamp: str = field(compare=False)
    name: str = field(compare=False)
    stream: str = field(compare=False)
    data: bytes = field(compare=False)
    arrived: float = field(default=0.0, compare=False)


class Printer:
    """Formats :class:`Line` s and writes them: names, colours, filters."""

    def __init__(
        self,
        out: TextIO,
        show_names: bool,
        colour: bool,
        grep: Optional[re.Pattern[str]] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
    ) -> None:
        self.out = out
        self.show_names = show_names
        self.colour = colour
        self.grep = grep
        self.since = since
        self.until = until

    def wanted(self, line: Line) -> bool:
        """Whether ``line`` passes ``--since``/``--until``/``--grep``."""
        if self.since is not None and line.when < self.since:
            return False
        if self.until is not None and line.when > self.until:
            return False
        if self.grep is not None:
            return self.grep.search(plain(line.data.decode("utf-8", "replace"))) is not None
        return True

    def write(self, line: Line) -> None:
        """Print ``line`` if it is wanted."""
        if not self.wanted(line):
            return
        text = sanitize(line.data.decode("utf-8", "replace"), self.colour)
        stream = line.stream
        if self.colour and stream in _STREAM_COLOURS:
            stream = _STREAM_COLOURS[stream] + stream + RESET
        name = f"{sanitize(line.name, False)} " if self.show_names else ""
        self.out.write(f"{line.stamp} {name}{stream} {text}\n")


# ---------------------------------------------------------------- joining pieces


class Joiner:
    """Joins one process's ``+`` pieces into lines (per stream), in file order."""

    def __init__(self, name: str, counter: collections.Counter[str]) -> None:
        self.name = name
        self.held: Dict[str, Line] = {}
        self.counter = counter

    def _seq(self) -> int:
        self.counter["seq"] += 1
        return self.counter["seq"]

    def add(self, record: Record, arrived: float = 0.0) -> Optional[Line]:
        """Feed one record; the line it completes, if any."""
        held = self.held.pop(record.stream, None)
        if held is None:
            held = Line(
                record_seconds(record.time) or 0.0,  # 0: a stamp that does not read
                self._seq(),
                record.time,
                self.name,
                record.stream,
                b"",
                arrived,
            )
        held.data += record.data
        if record.partial:
            self.held[record.stream] = held
            return None
        return held

    def flush(self, older_than: Optional[float] = None) -> List[Line]:
        """Held pieces that arrived before ``older_than`` (None: all), as lines."""
        out = []
        for stream, line in list(self.held.items()):
            if older_than is None or line.arrived <= older_than:
                out.append(self.held.pop(stream))
        return out


# ---------------------------------------------------------------- the backlog

PAGE = 5000  # records per read going forward


def backlog(
    path: str,
    end: Optional[int],
    count: Optional[int],
    printer: Printer,
    joiner: Joiner,
    follow: bool,
) -> Iterable[Line]:
    """One process's last ``count`` (None: all) wanted lines up to offset
    ``end`` (None: the end), oldest first.

    Lines are joined by ``joiner``; a piece the log ends in is left held
    there when following (its rest may come), else it is a line.  All lines
    (``count`` None) or a time start read forward, lazily (the time start
    found by :meth:`LogStore.seek_time`); the last ``count`` read backward.
    """
    if count == 0:
        return []
    store = LogStore(path, max_backups=100_000)
    if printer.until is not None:
        stop = store.seek_time(printer.until + 1e-6)  # records stamped after it begin here
        end = stop if end is None else min(end, stop)
    if count is None or printer.since is not None:
        start = None if printer.since is None else store.seek_time(printer.since)
        lines = _forward(store, start, end, printer, joiner, follow)
        return lines if count is None else collections.deque(lines, maxlen=count)
    entries: List[Entry] = []
    cursor = end
    size = max(200, count * 2)
    while True:
        page = store.read_backward(cursor, size)
        entries[:0] = page.entries
        # Joined again from the start of what was read: the first line may be
        # the end of one begun before it (shown as it is when nothing is older).
        trial = Joiner(joiner.name, joiner.counter)
        found = [line for line in _join(entries, trial, follow) if printer.wanted(line)]
        if len(found) > count or not page.has_before or not page.entries:
            joiner.held.update(trial.held)
            return found[-count:]
        cursor = page.start
        size = min(size * 2, 100_000)


def _forward(
    store: LogStore,
    start: Optional[int],
    end: Optional[int],
    printer: Printer,
    joiner: Joiner,
    follow: bool,
) -> Iterator[Line]:
    cursor = start
    while True:
        page = store.read_forward(cursor, PAGE, until=end)
        for line in _join(page.entries, joiner, follow=True):
            if printer.wanted(line):
                yield line
        if not page.entries or not page.has_after or page.end == cursor:
            break
        cursor = page.end
    if not follow:
        yield from (line for line in joiner.flush() if printer.wanted(line))


def _join(entries: Iterable[Entry], joiner: Joiner, follow: bool) -> Iterator[Line]:
    """The lines of ``entries`` (headers skipped); at the end, pieces with no
    rest are left held in ``joiner`` if ``follow``, else lines too."""
    for entry in entries:
        record = entry.record
        if not is_header(record.stream, record.data):
            line = joiner.add(record)
            if line is not None:
                yield line
    if not follow:
        yield from joiner.flush()


# ---------------------------------------------------------------- following


class LiveLog:
    """One process's records as they are completed, across rotation and gzip.

    A thin wrapper of :class:`.logread.follow.FileFollower` (the one
    follower of the package, the sidecar's too): it starts at the end of the
    last complete record there now (:attr:`position`, where the backlog
    stops), keeps the file it reads open, and finds the next one by its
    header's base offset -- so a rotation in the middle of a walk of the
    backups, or a backup compressed between two looks, loses nothing and
    reads nothing twice.  File headers are left out.
    """

    def __init__(self, path: str) -> None:
        self._records: List[Record] = []
        self.follower = FileFollower(path, None, self._take)

    @property
    def position(self) -> int:
        """The offset of the next record it will read: where the backlog ends."""
        return self.follower.position

    @property
    def pending(self) -> bool:
        """Whether the last :meth:`poll` stopped at its budget with more to read."""
        return self.follower.pending

    def poll(self) -> List[Record]:
        """The records completed since the last poll, in file order."""
        self.follower.poll()
        return self.take()

    def take(self) -> List[Record]:
        """Records read and not handed out yet (what a poll cut short by Ctrl-C read)."""
        records, self._records = self._records, []
        return records

    def close(self) -> None:
        """Close the file being read."""
        self.follower.close()

    def _take(self, entries: List[Entry]) -> None:
        for entry in entries:
            record = entry.record
            if not is_header(record.stream, record.data):
                self._records.append(record)


# ---------------------------------------------------------------- running


def run(
    config: Config,
    names: List[str],
    count: Optional[int],
    follow: bool,
    out: TextIO,
    poll: float = 0.1,
    deadline: Optional[float] = None,
    window: float = 0.05,
    colour: bool = False,
    grep: Optional[re.Pattern[str]] = None,
    since: Optional[float] = None,
    until: Optional[float] = None,
) -> int:
    """Print the last ``count`` (None: all) lines of each name, merged by time;
    follow if asked, holding live lines at most ``window`` seconds to order them."""
    printer = Printer(out, len(names) > 1, colour, grep, since, until)
    counter: collections.Counter[str] = collections.Counter()
    procs: List[Tuple[LiveLog, Joiner]] = []
    try:
        backlogs = []
        for spec in names:
            path, name = _log_of(config, spec)
            # Where following starts: taken before reading the backlog, and the
            # backlog read up to exactly there, so nothing falls in between.
            live = LiveLog(path)
            joiner = Joiner(name, counter)
            backlogs.append(backlog(path, live.position, count, printer, joiner, follow))
            procs.append((live, joiner))
        for line in heapq.merge(*backlogs, key=lambda line: line.when):
            printer.write(line)
        out.flush()
        if follow:
            _follow(procs, printer, out, poll, deadline, window)
    finally:
        for live, _ in procs:
            live.close()
    return 0


def _log_of(config: Config, spec: str) -> Tuple[str, str]:
    """The live file of the process ``spec`` names, and the name to print for it."""
    host, local = split_host(spec) if config.layout == "hosts" else ("", spec)
    group, process = split_process(local)
    logdir = config.logdir
    if host:  # as the page names it, or as its directory is named
        logdir = os.path.join(logdir, quote_name(unquote_name(host)))
    name = display_name(group, process)
    if host:  # one word, as the other fields: web1/web
        name = f"{unquote_name(host)}/{name}"
    return log_path(logdir, group, process), name


def _follow(
    procs: List[Tuple[LiveLog, Joiner]],
    printer: Printer,
    out: TextIO,
    poll: float,
    deadline: Optional[float],
    window: float,
) -> None:
    """Print new lines until Ctrl-C (or ``deadline``), each held at most
    ``window`` seconds to put the lines of several processes in time order."""
    for _, joiner in procs:  # pieces the backlog ended in: their rest may come
        for held in joiner.held.values():
            held.arrived = time.monotonic()
    pending: List[Deque[Line]] = [collections.deque() for _ in procs]

    def add(i: int, records: List[Record], now: float) -> None:
        joiner = procs[i][1]
        for record in records:
            done = joiner.add(record, now)
            if done is not None:
                done.arrived = done.arrived or now
                pending[i].append(done)

    try:
        while deadline is None or time.monotonic() < deadline:
            now = time.monotonic()
            for i, (live, joiner) in enumerate(procs):
                add(i, live.poll(), now)
                for line in joiner.flush(older_than=now - window):
                    pending[i].append(line)
            _release(pending, printer, time.monotonic() - window)
            out.flush()
            wait = 0.0 if any(live.pending for live, _ in procs) else poll
            for queue in pending:
                if queue:
                    wait = min(wait, queue[0].arrived + window - time.monotonic())
            for _, joiner in procs:
                for line in joiner.held.values():
                    wait = min(wait, line.arrived + window - time.monotonic())
            time.sleep(max(wait, 0.005))
    except KeyboardInterrupt:
        pass
    now = time.monotonic()
    for i, (live, joiner) in enumerate(procs):
        add(i, live.take(), now)  # what a poll cut short had read
        pending[i].extend(joiner.flush())
    _release(pending, printer, None)
    out.flush()


def _release(pending: List[Deque[Line]], printer: Printer, expired: Optional[float]) -> None:
    """Print held live lines in time order while any has been held long enough
    (arrived at or before ``expired``; None: all): a line waits for earlier
    ones from other processes, never longer than the window."""
    while True:
        heads = [queue for queue in pending if queue]
        if not heads:
            return
        if expired is not None and not any(q[0].arrived <= expired for q in heads):
            return
        first = min(heads, key=lambda q: (q[0].when, q[0].seq))
        printer.write(first.popleft())
