"""What a process's status records say about its restarts: starts, crashes, the last exit.

Role: the files hold every state change (``status STARTING``, ``status EXITED
pid=… exitstatus=3 expected=false``, docs/format.md), so a program that
crash-loops is shown as such -- starts, crashes, its last exit code -- from
the files alone, where supervisord's state (polled) mostly says RUNNING.

Invariants: nothing rescans a history per request.  The sidecar counts once
when it finds a log, over the newest :data:`SCAN_BYTES` before its follower's
start (:func:`scan`, off the IOLoop), then adds the status records its
follower reads (:func:`status_lines` finds them with a byte search, so the
records of a process nobody watches are still not parsed); ``/api/processes``
reads a :class:`RestartTally`::

    tally = scan(path, end)                 # once, over the newest SCAN_BYTES
    tally.add_lines(status_lines(data))     # then what the follower reads
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..ondisk.files import LogFile, open_listed, process_files
from ..ondisk.formats import Record, RecordError, parse
from ..ondisk.gzipped import gunzip, read_whole

#: How much of a log's end is read at start to count its restarts (bytes).
SCAN_BYTES = 16 * 1024 * 1024
#: Crash times kept, newest last: enough for a page to see a loop.
RECENT_CRASHES = 3
#: A status record's stream tag in the text format (the second field) ...
_TEXT_TAG = b" status "
#: ... and in JSON Lines (a child's text cannot hold it unescaped).
_JSON_TAG = b'"stream": "status"'
_JSON_TIME = b'{"time": "'


def status_lines(data: bytes, end: Optional[int] = None) -> List[bytes]:
    """The status records among the whole records in ``data[:end]``, in file order.

    A byte search for the stream tag, then a check of where it stands: no
    record of the child's output is parsed.
    """
    found: Dict[int, bytes] = {}
    end = len(data) if end is None else end
    for tag in (_TEXT_TAG, _JSON_TAG):
        pos = data.find(tag, 0, end)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            stop = data.find(b"\n", pos, end)
            if stop < 0:
                stop = end
            if tag is _TEXT_TAG:
                # The tag must be the record's second field, after the time.
                ours = data.find(b" ", start, pos) < 0
            else:
                # The field right after the time, which comes first (docs/format.md).
                ours = (
                    data.startswith(_JSON_TIME, start)
                    and data.find(b'"', start + len(_JSON_TIME), pos) == pos - 3
                )
            if ours:
                found[start] = data[start:stop]
            pos = data.find(tag, stop, end)
    return [found[start] for start in sorted(found)]


@dataclass
class RestartTally:
    """Starts and exits counted from one process's status records."""

    #: STARTING records: supervisord spawned the program.
    starts: int = 0
    #: Unexpected exits (``EXITED … expected=false``) and ``BACKOFF`` (exited
    #: before ``startsecs``).
    crashes: int = 0
    last_exit: Optional[int] = None
    last_exit_expected: Optional[bool] = None
    last_exit_time: Optional[str] = None
    last_start: Optional[str] = None
    #: Times of the last crashes, oldest first (at most RECENT_CRASHES).
    recent_crashes: List[str] = field(default_factory=list)
    #: The time of the oldest record counted: the figures count from there.
    since: Optional[str] = None

    def add(self, record: Record) -> bool:
        """Count one record; whether it changed a figure (only status records do)."""
        if record.stream != "status":
            return False
        words = record.data.decode("utf-8", "replace").split()
        if not words:
            return False
        state = words[0]
        fields = dict(word.partition("=")[::2] for word in words[1:])
        if state == "STARTING":
            self.starts += 1
            self.last_start = record.time
        elif state == "EXITED":
            code = fields.get("exitstatus", "")
            self.last_exit = int(code) if code.isdigit() else None
            self.last_exit_expected = fields.get("expected") == "true"
            self.last_exit_time = record.time
            if not self.last_exit_expected:
                self._crashed(record.time)
        elif state == "BACKOFF":
            self._crashed(record.time)
        else:
            return False
        return True

    def add_lines(self, lines: List[bytes]) -> bool:
        """Count the records :func:`status_lines` found; whether a figure changed."""
        changed = False
        for line in lines:
            try:
                record = parse(line)
            except RecordError:
                continue
            changed = self.add(record) or changed
        return changed

    def _crashed(self, time: str) -> None:
        self.crashes += 1
        self.recent_crashes = (self.recent_crashes + [time])[-RECENT_CRASHES:]

    def merge_older(self, older: RestartTally) -> None:
        """Add what was counted before this tally's first record (the start-up scan)."""
        self.starts += older.starts
        self.crashes += older.crashes
        if self.last_exit_time is None:
            self.last_exit = older.last_exit
            self.last_exit_expected = older.last_exit_expected
            self.last_exit_time = older.last_exit_time
        if self.last_start is None:
            self.last_start = older.last_start
        self.recent_crashes = (older.recent_crashes + self.recent_crashes)[-RECENT_CRASHES:]
        if older.since is not None:
            self.since = older.since

    def figures(self) -> Dict[str, Any]:
        """The fields ``/api/processes`` and ``state`` frames carry (docs/protocol.md)."""
        return {
            "starts": self.starts,
            "crashes": self.crashes,
            "last_exit": self.last_exit,
            "last_exit_expected": self.last_exit_expected,
            "last_exit_time": self.last_exit_time,
            "last_start": self.last_start,
            "recent_crashes": list(self.recent_crashes),
            "counted_since": self.since,
        }


def _tail_of(f: LogFile, hi: int, budget: int) -> Optional[bytes]:
    """Bytes ``[hi - budget, hi)`` of a file's contents, from its first whole
    record; None when it cannot be read in part (a ``.gz``), is gone or is
    another file now."""
    lo = max(0, hi - budget)
    if f.compressed and lo > 0:
        return None  # cannot be read in part: the scan stops before it
    fd = open_listed(f)
    if fd is None:
        return None
    try:
        data = gunzip(read_whole(fd), hi) if f.compressed else os.pread(fd, hi - lo, lo)
    finally:
        os.close(fd)
    if lo > 0:
        data = data[data.find(b"\n") + 1 :]  # the cut record before the first newline
    return data


def scan(path: str, end: int, budget: int = SCAN_BYTES) -> RestartTally:
    """Count the status records of the newest ``budget`` bytes before offset ``end``.

    Run once per process, off the IOLoop, when the sidecar finds its log
    (``end`` is where its follower starts).  A ``.gz`` backup is read only
    if all of it fits in what is left of the budget.  A file that moves or
    vanishes meanwhile ends the scan there: the figures count a little less.
    """
    pieces: List[bytes] = []
    left = budget
    try:
        for f in reversed(process_files(path)):
            if f.base >= end:
                continue
            if left <= 0:
                break
            data = _tail_of(f, min(end, f.end) - f.base, left)
            if data is None:
                break
            pieces.append(data)
            left -= len(data)
    except OSError:
        pass
    tally = RestartTally()
    for data in reversed(pieces):  # oldest first
        if tally.since is None and b"\n" in data:
            try:
                tally.since = parse(data[: data.find(b"\n")]).time
            except RecordError:
                pass
        tally.add_lines(status_lines(data))
    return tally
