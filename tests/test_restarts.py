"""Restart figures from status records (logread/restarts.py): the byte search that
finds status records without parsing the others, the tally, the bounded start-up
scan over real rotated files, and the follower's ``on_status`` hook.

Files are written by the real capture path (``Capture.log`` / ``Capture.state``).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import List

import pytest

from supervisor_streamlog.capture.core import Capture, status_fields
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.logread.follow import FileFollower
from supervisor_streamlog.logread.restarts import RestartTally, scan, status_lines
from supervisor_streamlog.ondisk.files import process_files
from supervisor_streamlog.ondisk.formats import parse

from .helpers import T0


def make_capture(logdir: Path, fmt: str = "text", **settings: str) -> Capture:
    values = {"logdir": str(logdir), "maxbytes": "4KB", "backups": "50", "format": fmt}
    values.update(settings)
    config = from_mapping(values, here=str(logdir.parent), environ={})
    return Capture(config, clock=lambda: T0)


def crash(capture: Capture, n: int, code: int = 3, noise: int = 5) -> None:
    """One run of a program that starts, writes, and exits with ``code``."""
    capture.state("app", "app", "STARTING", 0, status_fields("STARTING", tries=0))
    capture.state("app", "app", "RUNNING", 100 + n, status_fields("RUNNING", pid=100 + n))
    for k in range(noise):
        # Lines that look like status records to a careless search.
        text = b"run %d: status EXITED exitstatus=0 %d\n" % (n, k)
        capture.log("app", "app", "stdout", 100 + n, text)
        capture.log("app", "app", "stderr", 100 + n, b' "stream": "status" EXITED\n')
    fields = status_fields("EXITED", pid=100 + n, exitstatus=code, expected=code == 0)
    capture.state("app", "app", "EXITED", 100 + n, fields)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_status_lines_finds_status_records_and_nothing_else(tmp_path: Path, fmt: str) -> None:
    capture = make_capture(tmp_path / "logs", fmt, maxbytes="0")
    for n in range(3):
        crash(capture, n)
    capture.close()
    data = (tmp_path / "logs" / "app.log").read_bytes()
    found = [parse(line) for line in status_lines(data)]
    texts = [r.data.split(b" ")[0] for r in found]
    # The file header, then three runs of STARTING, RUNNING, EXITED.
    assert texts == [b"STREAMLOG"] + [b"STARTING", b"RUNNING", b"EXITED"] * 3
    assert all(r.stream == "status" for r in found)
    # Only whole records before ``end`` count.
    cut = data.rfind(b"\n", 0, data.index(b"RUNNING")) + 1
    assert [parse(line).data.split(b" ")[0] for line in status_lines(data, cut)] == [
        b"STREAMLOG",
        b"STARTING",
    ]


def test_tally_counts_starts_crashes_and_the_last_exit() -> None:
    tally = RestartTally()
    lines = [
        b"2026-12-03T10:00:00.000000+00:00 status STARTING tries=0",
        b"2026-12-03T10:00:00.100000+00:00 status RUNNING pid=7",
        b"2026-12-03T10:00:01.000000+00:00 status EXITED pid=7 exitstatus=3 expected=false",
        b"2026-12-03T10:00:01.100000+00:00 status STARTING tries=0",
        b"2026-12-03T10:00:01.200000+00:00 status BACKOFF tries=1",
        b"2026-12-03T10:00:02.000000+00:00 status STARTING tries=1",
        b"2026-12-03T10:00:03.000000+00:00 status EXITED pid=8 exitstatus=0 expected=true",
        b"2026-12-03T10:00:03.000000+00:00 stdout status EXITED exitstatus=9",
        b"not a record at all",
    ]
    assert tally.add_lines(lines)
    assert tally.figures() == {
        "starts": 3,
        "crashes": 2,
        "last_exit": 0,
        "last_exit_expected": True,
        "last_exit_time": "2026-12-03T10:00:03.000000+00:00",
        "last_start": "2026-12-03T10:00:02.000000+00:00",
        "recent_crashes": [
            "2026-12-03T10:00:01.000000+00:00",
            "2026-12-03T10:00:01.200000+00:00",
        ],
        "counted_since": None,
    }
    # Records that change nothing say so (no state frame is sent for them).
    assert not tally.add_lines([b"2026-12-03T10:00:04.000000+00:00 status RUNNING pid=9"])
    # An EXITED record without an exit status (listener mode, RPC failed).
    tally.add_lines([b"2026-12-03T10:00:05.000000+00:00 status EXITED pid=9 expected=false"])
    assert tally.last_exit is None and tally.crashes == 3
    assert len(tally.recent_crashes) == 3


def test_merge_older_adds_the_scan_under_what_the_follower_counted() -> None:
    older, newer = RestartTally(), RestartTally()
    older.add_lines(
        [
            b"2026-12-03T09:00:00.000000+00:00 status STARTING tries=0",
            b"2026-12-03T09:00:01.000000+00:00 status EXITED pid=1 exitstatus=2 expected=false",
        ]
    )
    older.since = "2026-12-03T08:00:00.000000+00:00"
    newer.add_lines([b"2026-12-03T10:00:00.000000+00:00 status STARTING tries=0"])
    newer.merge_older(older)
    assert (newer.starts, newer.crashes, newer.last_exit) == (2, 1, 2)
    assert newer.last_start == "2026-12-03T10:00:00.000000+00:00"
    assert newer.since == "2026-12-03T08:00:00.000000+00:00"


@pytest.mark.parametrize("compress", ["false", "true"])
def test_scan_counts_across_rotated_files_up_to_the_end(tmp_path: Path, compress: str) -> None:
    capture = make_capture(tmp_path / "logs", compress=compress)
    for n in range(40):
        crash(capture, n, code=3 if n % 2 else 0)
    capture.close()
    live = str(tmp_path / "logs" / "app.log")
    files = process_files(live)
    assert len(files) > 5  # rotated many times
    end = files[-1].end
    tally = scan(live, end)
    assert (tally.starts, tally.crashes, tally.last_exit) == (40, 20, 3)
    assert tally.since is not None and tally.since.startswith("20")
    # Only what is before ``end`` (the follower counts the rest).
    exited = [m for m in _status_offsets(live) if m[1].startswith(b"EXITED")]
    assert scan(live, exited[10][0]).crashes == 5


def test_scan_is_bounded_by_its_budget(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    for n in range(200):
        crash(capture, n)
    capture.close()
    live = str(tmp_path / "logs" / "app.log")
    size = (tmp_path / "logs" / "app.log").stat().st_size
    part = scan(live, size, budget=size // 4)
    assert 40 <= part.starts <= 60  # about a quarter of the runs
    assert part.since is not None
    assert scan(live, size).starts == 200


def _status_offsets(live: str) -> List[tuple]:
    """(offset, text) of each status record of a log, through every file."""
    out = []
    for f in process_files(live):
        data = gzip.open(f.path).read() if f.compressed else open(f.path, "rb").read()
        pos = 0
        for line in data.split(b"\n")[:-1]:
            record = parse(line)
            if record.stream == "status":
                out.append((f.base + pos, record.data))
            pos += len(line) + 1
    return out


def test_the_follower_hands_on_status_records_whether_it_parses_or_not(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs")
    live = str(tmp_path / "logs" / "app.log")
    crash(capture, 0)
    found: List[bytes] = []
    watched = [False]
    follower = FileFollower(
        live,
        None,
        lambda entries: None,
        wanted=lambda: watched[0],
        on_status=found.extend,
        on_advance=lambda *args: None,
    )
    for n in range(1, 30):  # across rotations, nobody watching (records not parsed)
        crash(capture, n)
        follower.poll()
    watched[0] = True
    for n in range(30, 35):  # watched: parsed
        crash(capture, n)
        follower.poll()
    capture.close()
    follower.poll()
    tally = RestartTally()
    tally.add_lines(found)
    assert (tally.starts, tally.crashes) == (34, 34)
