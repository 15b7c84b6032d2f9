"""A full disk (a real, small tmpfs) neither stops capture nor loses data silently."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from .helpers import check_gaps, line_numbers
from .supervisor import Supervisor, Supervisors, emit, program, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the filesystem; return the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def run_burst_on_full_disk(
    supervisord: Supervisors, tmp_path: Path, disk: Path, write_buffer: str, count: int
) -> Supervisor:
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"burst": program(emit("burst", count, 100, "block"), autostart="false")},
            streamlog={
                "logdir": str(disk / "streamlog"),
                "write_buffer": write_buffer,
                "timezone": "utc",
            },
        )
    )
    filler = fill(disk)
    sup.rpc.supervisor.startProcess("burst")
    sup.wait_state("burst", "EXITED")
    wait_for(lambda: "cannot write" in sup.listener_err(), 30, "the listener to report ENOSPC")
    assert sup.state("streamlog:streamlog") == "RUNNING"
    filler.unlink()
    wait_for(
        lambda: any(r.text.startswith("EXITED") for r in sup.records("burst")),
        30,
        "the EXITED record once the disk has room",
    )
    return sup


def test_full_disk_holds_records_and_writes_them_when_space_returns(
    tmp_path: Path, small_disk: Path, supervisord: Supervisors
) -> None:
    sup = run_burst_on_full_disk(supervisord, tmp_path, small_disk, "16MB", 5000)
    assert line_numbers(sup.records("burst")) == list(range(5000))
    assert "writing" in sup.listener_err() and "again" in sup.listener_err()
    assert sup.listener_err().count("cannot write") == 1  # reported once, not per chunk
    assert "dropped" not in sup.read_bytes("burst").decode()


def test_full_disk_beyond_write_buffer_drops_with_a_counted_notice(
    tmp_path: Path, small_disk: Path, supervisord: Supervisors
) -> None:
    sup = run_burst_on_full_disk(supervisord, tmp_path, small_disk, "4KB", 5000)
    # In order, no duplicate, and each stretch dropped has one record in its
    # place with its count and bytes (one or more: the held records' middle
    # goes, as often as the buffer fills while the disk stays full).
    kept, gaps = check_gaps(sup.records("burst"), 5000, 32 + 8 + 100)
    assert gaps and sum(gap.records for gap in gaps) == 5000 - len(kept)


def filler(disk: Path, name: str, size: int) -> Path:
    """A file taking ``size`` bytes of the filesystem (to free later)."""
    path = disk / name
    path.write_bytes(b"\0" * size)
    return path


@pytest.mark.parametrize("base", ["plugin.conf", "listener.conf"])
def test_full_disk_freed_twice_gives_one_dropped_record_at_each_gap(
    tmp_path: Path, small_disk: Path, base: str, supervisord: Supervisors
) -> None:
    """A 25 000 lines/s numbered flood on a full disk with space freed twice:
    every line is present once, in order, or inside exactly one dropped record
    standing where it would be, with the right count, bytes and times."""
    total = 60_000
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"flood": program(emit("rate", total, 25_000), autostart="false")},
            streamlog={
                "logdir": str(small_disk / "streamlog"),
                "write_buffer": "256KB",
                "maxbytes": "512KB",
                "backups": 10,
                "timezone": "utc",
            },
            base=base,
        )
    )
    first = filler(small_disk, "first", 300_000)
    second = filler(small_disk, "second", 300_000)
    rest = fill(small_disk)
    sup.rpc.supervisor.startProcess("flood")
    wait_for(lambda: sup.info("flood")["now"] is not None, 5)
    time.sleep(0.7)
    first.unlink()  # room for some: the oldest held go out, then full again
    time.sleep(0.7)
    second.unlink()  # and once more
    sup.wait_state("flood", "EXITED")
    rest.unlink()  # the disk is back
    wait_for(
        lambda: any(r.text.startswith("EXITED") for r in sup.records("flood")),
        30,
        "the EXITED record once the disk has room",
    )
    found = sup.records("flood")
    # 32-byte UTC timestamp, " stdout ", 99 bytes of text, newline.
    kept, gaps = check_gaps(found, total, 32 + 8 + 100)
    assert len(gaps) >= 2, gaps  # at least one per outage
    assert kept[-1] == total - 1  # the newest are kept
    assert found[-1].text.startswith("EXITED")
