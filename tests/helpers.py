"""Helpers shared by several test modules: a clock, report recorders, a flaky ``os``, ...

Test modules import these from here, never from one another: a test module is
a list of behaviours, and borrowing its helpers ties two lists together.  The
harnesses that run a real supervisord or sidecar live in :mod:`tests.supervisor`
and :mod:`tests.sidecar`.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import pytest

from supervisor_streamlog.capture import writer as writer_module
from supervisor_streamlog.ondisk.formats import Record

from .supervisor import CONF, program

T0 = 1795742625.0  # 2026-11-27T01:23:45+00:00


class Clock:
    """A clock that stands still until a test moves ``now``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Reports:
    """Records what the capture says (a :data:`~.core.ReportMessage`): one line each."""

    def __init__(self) -> None:
        self.messages: List[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)


class ProblemReports:
    """Records what a writer or compressor reports (a :data:`~.writer.ReportProblem`)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.calls.append((kind, message))

    @property
    def kinds(self) -> List[str]:
        return [kind for kind, _ in self.calls]


class FlakyOs:
    """Stands in for the ``os`` module inside the writer; scripts ``os.write``.

    ``fail_with`` (an errno) makes every write fail until it is set back to
    None.  Otherwise each step of ``plan`` is an ``int`` (write at most that
    many bytes) or an errno name (raise it); when the plan is empty, writes go
    through.  ``calls`` counts the writes tried.  ``space`` (bytes), when not
    None, plays a disk that fills: writes take what fits (a short write) and
    fail with ENOSPC once it is 0; a test frees space by raising it.
    """

    def __init__(self) -> None:
        self.plan: List[Union[int, str]] = []
        self.fail_with: Optional[int] = None
        self.space: Optional[int] = None
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.fail_with is not None:
            raise OSError(self.fail_with, os.strerror(self.fail_with))
        if self.plan:
            step = self.plan.pop(0)
            if isinstance(step, str):
                code = getattr(errno, step)
                raise OSError(code, os.strerror(code))
            return os.write(fd, bytes(data[:step]))
        if self.space is not None:
            if not self.space:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = os.write(fd, bytes(data[: self.space]))
            self.space -= written
            return written
        return os.write(fd, data)


def flaky_os(monkeypatch: pytest.MonkeyPatch) -> FlakyOs:
    """A :class:`FlakyOs` put in place of the writer's ``os`` for this test."""
    fake = FlakyOs()
    monkeypatch.setattr(writer_module, "os", fake)
    return fake


def demo_copy(tmp_path: Path) -> Tuple[Path, Dict[str, str]]:
    """conf/demo.conf and its programs, copied so the demo writes under tmp_path/demo;
    and an environment whose python3 is the one running the tests."""
    shutil.copytree(CONF, tmp_path / "conf")
    (tmp_path / "demo" / "childlogs").mkdir(parents=True)
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return tmp_path / "conf" / "demo.conf", dict(os.environ, PATH=path)


def quiet_program(command: str, **options: object) -> Dict[str, object]:
    """A [program:x] as users write it: no *_events_enabled at all (the plugin turns them on)."""
    section = program(command, **options)
    del section["stdout_events_enabled"], section["stderr_events_enabled"]
    return section


def line_numbers(records: Sequence[Record], stream: str = "stdout") -> List[int]:
    """The numbers of ``children/emit.py``'s ``line NNNNNNNNN`` records on ``stream``."""
    return [int(r.data[5:14]) for r in records if r.stream == stream and r.data.startswith(b"line")]


class Dropped(NamedTuple):
    """A ``status STREAMLOG dropped ...`` record, read back."""

    bytes: int
    records: int
    first: str
    last: str
    time: str  # the record's own timestamp


def dropped_fields(record: Record) -> Optional[Dropped]:
    """The fields of a ``dropped`` record, or None for any other record."""
    if record.stream != "status" or not record.data.startswith(b"STREAMLOG dropped "):
        return None
    fields = dict(word.split("=", 1) for word in record.text.split()[2:] if "=" in word)
    return Dropped(
        int(fields["bytes"]),
        int(fields["records"]),
        fields.get("first", ""),
        fields.get("last", ""),
        record.time,
    )


def check_gaps(
    records: Sequence[Record], total: int, record_bytes: int, stream: str = "stdout"
) -> Tuple[List[int], List[Dropped]]:
    """Check that every numbered line ``0 .. total-1`` of ``stream`` (``emit.py``'s
    ``line NNNNNNNNN``) is either present once, in order, or inside exactly one
    ``dropped`` record, which stands where its lines would be, with their count,
    their bytes (each line's record is ``record_bytes`` long) and the times of
    the first and last of them.  Returns the numbers kept and the gaps."""
    kept: List[int] = []
    gaps: List[Dropped] = []
    previous: Optional[Record] = None  # the last record before the pending gap
    pending: Optional[Dropped] = None
    for record in records:
        gap = dropped_fields(record)
        if gap is not None:
            assert pending is None, "two dropped records next to each other: one gap"
            assert previous is None or previous.time <= gap.first, (previous, gap)
            assert gap.first <= gap.last and gap.time == gap.first, gap
            pending = gap
            continue
        if record.stream != stream or not record.data.startswith(b"line"):
            continue
        number = int(record.data[5:14])
        expected = kept[-1] + 1 if kept else 0
        if pending is not None:
            assert number - expected == pending.records, (expected, number, pending)
            assert pending.bytes == pending.records * record_bytes, pending
            assert pending.last <= record.time, (pending, record)
            gaps.append(pending)
            pending = None
        else:
            assert number == expected, f"line {expected} is missing with no dropped record"
        kept.append(number)
        previous = record
    expected = kept[-1] + 1 if kept else 0
    if pending is not None:
        assert total - expected == pending.records, (expected, total, pending)
        gaps.append(pending)
    else:
        assert expected == total, f"lines {expected}.. are missing with no dropped record"
    return kept, gaps
