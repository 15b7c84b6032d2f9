"""RotatingWriter on real files: whole records, safe rotation, retention, disk errors."""

from __future__ import annotations

import errno
import fcntl
import gzip
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor_streamlog.capture import writer as writer_module
from supervisor_streamlog.capture.compressor import Compressor
from supervisor_streamlog.capture.writer import RotatingWriter
from supervisor_streamlog.ondisk.files import read_base

from .helpers import FlakyOs, ProblemReports, flaky_os

WAIT = 10.0  # seconds: an upper bound for the compressor thread, never a sleep


def record(n: int, size: int = 40) -> bytes:
    """A numbered record of exactly ``size`` bytes, newline included."""
    head = b"rec-%06d " % n
    return head + b"x" * max(0, size - len(head) - 1) + b"\n"


def read(name: str) -> bytes:
    if name.endswith(".gz"):
        with gzip.open(name, "rb") as packed:
            return packed.read()
    with open(name, "rb") as handle:
        return handle.read()


def oldest_first(writer: RotatingWriter) -> List[str]:
    return list(reversed(writer.files()))


def everything(writer: RotatingWriter) -> bytes:
    """Backups oldest to newest, then the live file."""
    return b"".join(read(name) for name in oldest_first(writer))


def listing(directory: Path) -> List[str]:
    return sorted(os.listdir(directory))


# ------------------------------------------------------------------ rotation

RECORD = st.binary(max_size=90).map(lambda b: b.replace(b"\n", b"") + b"\n")
WRITES = st.lists(st.lists(RECORD, min_size=1, max_size=5).map(b"".join), max_size=12)


@settings(max_examples=60, deadline=None)
@given(writes=WRITES, maxbytes=st.sampled_from([1, 40, 100, 257]))
def test_rotation_only_at_record_boundaries(writes: List[bytes], maxbytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.log")
        writer = RotatingWriter(path, maxbytes=maxbytes, backups=100)
        for data in writes:
            writer.write(data)
        writer.close()
        assert everything(writer) == b"".join(writes)
        names = oldest_first(writer)
        assert not os.path.exists(writer.backup_name(100))  # nothing was trimmed
        contents = [read(name) for name in names]
        for name, data in zip(names, contents):
            if name != path:
                assert data, "a backup is never empty"
            assert data == b"" or data.endswith(b"\n")
            # maxbytes holds, except for a file holding one record larger than it.
            assert len(data) <= maxbytes or data.count(b"\n") == 1
        # Rotation happened only when the next record did not fit.
        for data, following in zip(contents, contents[1:]):
            if following:
                first = following[: following.index(b"\n") + 1]
                assert len(data) + len(first) > maxbytes


def test_a_record_larger_than_maxbytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100, backups=10)
    small, big = record(1, 50), record(2, 300)
    writer.write(small)
    writer.write(big)
    writer.write(record(3, 50))
    # And the same again within one write.
    writer.write(record(4, 50) + record(5, 300) + record(6, 50))
    writer.close()
    assert [read(name) for name in oldest_first(writer)] == [
        small,
        big,
        record(3, 50) + record(4, 50),
        record(5, 300),
        record(6, 50),
    ]


def test_write_that_fills_the_file_exactly_does_not_rotate_yet(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=80, backups=3)
    writer.write(record(1) + record(2))  # exactly 80 bytes
    assert writer.files() == [path]
    writer.write(record(3))
    assert read(path) == record(3)
    assert read(writer.backup_name(1)) == record(1) + record(2)


def test_existing_file_size_counts_after_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    first = RotatingWriter(path, maxbytes=100, backups=3)
    first.write(record(1, 70))
    first.close()
    second = RotatingWriter(path, maxbytes=100, backups=3)
    second.write(record(2, 70))
    second.close()
    assert read(second.backup_name(1)) == record(1, 70)
    assert read(path) == record(2, 70)


def test_backups_count(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=80, backups=3)
    written = [record(n) for n in range(40)]  # two records per file: 20 files' worth
    for data in written:
        writer.write(data)
    writer.close()
    assert listing(tmp_path) == ["p.log", "p.log.1", "p.log.2", "p.log.3"]
    # What is kept is the newest, contiguous, in order.
    assert everything(writer) == b"".join(written[-8:])
    assert writer.rotations == 19


def test_backups_zero_keeps_only_the_live_file(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=80, backups=0)
    for n in range(7):
        writer.write(record(n))
    writer.close()
    assert listing(tmp_path) == ["p.log"]
    assert read(path) == record(6)


def test_maxbytes_zero_never_rotates(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=0, backups=3)
    for n in range(100):
        writer.write(record(n, 100))
    writer.close()
    assert listing(tmp_path) == ["p.log"]
    assert os.path.getsize(path) == 100 * 100


def total_size(writer: RotatingWriter) -> int:
    return sum(os.path.getsize(name) for name in writer.files())


def test_max_total_bytes_removes_oldest_never_the_live_file(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100, backups=50, max_total_bytes=350)
    written = []
    for n in range(60):
        data = record(n, 50)
        written.append(data)
        writer.write(data)
        # The cap holds at every moment, the live file included.
        assert total_size(writer) <= 350
        assert os.path.exists(path)
    writer.close()
    kept = everything(writer)
    # The oldest went first: what is left is the newest records, contiguous.
    assert kept == b"".join(written)[-len(kept) :]
    # And no more than needed was removed: one more backup would not have fit.
    assert len(kept) >= 350 - 2 * 100
    assert kept.startswith(b"rec-")


def test_max_total_bytes_smaller_than_a_file_keeps_the_live_file(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100, backups=5, max_total_bytes=10)
    for n in range(10):
        writer.write(record(n, 50))
    writer.enforce_total()  # as the compressor does, with the live file present
    writer.close()
    assert listing(tmp_path) == ["p.log"]
    assert read(path) == record(8, 50) + record(9, 50)


# ------------------------------------------------------------------ compression


def test_compress_gzips_every_backup_and_loses_no_byte(tmp_path: Path) -> None:
    reports = ProblemReports()
    compressor = Compressor(report=reports)
    compressor.start()
    try:
        path = str(tmp_path / "p.log")
        writer = RotatingWriter(path, maxbytes=1000, backups=100, compressor=compressor)
        written = [record(n, 37 + n % 50) for n in range(600)]
        for index in range(0, len(written), 7):
            writer.write(b"".join(written[index : index + 7]))
        assert compressor.wait_idle(WAIT)
        writer.close()
        names = listing(tmp_path)
        assert not [name for name in names if name.endswith(".tmp")]
        backups = [name for name in names if name != "p.log"]
        assert backups and all(name.endswith(".gz") for name in backups)
        assert everything(writer) == b"".join(written)
        for name in writer.files()[1:]:
            data = read(name)
            assert data.endswith(b"\n") and len(data) <= 1000
        assert compressor.compressed == len(backups)
        assert reports.calls == []
    finally:
        compressor.stop()


@pytest.mark.parametrize("attempt", range(5))  # a race: more attempts, more chances
def test_compress_with_few_backups_and_a_total_cap(tmp_path: Path, attempt: int) -> None:
    """Retention removes files while they are being compressed; nothing may be mixed up.

    (This once caught the compressor finding a removed backup "again" by an inode
    number the filesystem had already given to a newer backup.)
    """
    compressor = Compressor()
    compressor.start()
    try:
        path = str(tmp_path / "p.log")
        writer = RotatingWriter(
            path, maxbytes=500, backups=3, max_total_bytes=2000, compressor=compressor
        )
        written = [record(n, 50) for n in range(300)]
        for data in written:
            writer.write(data)
        assert compressor.wait_idle(WAIT)
        writer.enforce_total()
        writer.close()
        assert listing(tmp_path) == ["p.log", "p.log.1.gz", "p.log.2.gz", "p.log.3.gz"]
        kept = everything(writer)
        assert kept == b"".join(written)[-len(kept) :]
        assert total_size(writer) <= 2000
    finally:
        compressor.stop()


def test_compressor_not_started_leaves_plain_backups(tmp_path: Path) -> None:
    compressor = Compressor()  # e.g. before supervisord daemonized
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=80, backups=5, compressor=compressor)
    for n in range(6):
        writer.write(record(n))
    assert listing(tmp_path) == ["p.log", "p.log.1", "p.log.2"]
    assert not compressor.wait_idle(0)  # work is queued
    compressor.start()
    try:
        assert compressor.wait_idle(WAIT)
    finally:
        compressor.stop()
    assert listing(tmp_path) == ["p.log", "p.log.1.gz", "p.log.2.gz"]
    assert everything(writer) == b"".join(record(n) for n in range(6))


def test_wait_idle_waits_for_the_job_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compressor = Compressor()
    gate = threading.Event()
    real = compressor.compress

    def slow(writer: RotatingWriter, inode: str) -> None:
        assert gate.wait(WAIT)
        real(writer, inode)

    monkeypatch.setattr(compressor, "compress", slow)
    compressor.start()
    try:
        path = str(tmp_path / "p.log")
        writer = RotatingWriter(path, maxbytes=80, backups=5, compressor=compressor)
        for n in range(6):
            writer.write(record(n))
        assert not compressor.wait_idle(0.05)
        gate.set()
        assert compressor.wait_idle(WAIT)
        assert listing(tmp_path) == ["p.log", "p.log.1.gz", "p.log.2.gz"]
    finally:
        gate.set()
        compressor.stop()


def test_failed_compression_keeps_the_plain_backup(tmp_path: Path, flaky: FlakyOs) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    flaky.fsync = no_space  # type: ignore[attr-defined]
    reports = ProblemReports()
    compressor = Compressor(report=reports)
    compressor.start()
    try:
        path = str(tmp_path / "p.log")
        writer = RotatingWriter(path, maxbytes=80, backups=5, compressor=compressor)
        for n in range(4):
            writer.write(record(n))
        assert compressor.wait_idle(WAIT)
    finally:
        compressor.stop()
    assert listing(tmp_path) == ["p.log", "p.log.1"]
    assert everything(writer) == b"".join(record(n) for n in range(4))
    assert reports.kinds == ["gzip"]
    assert "kept uncompressed" in reports.calls[0][1]


# ------------------------------------------------------------------ crash recovery


def test_recover_removes_stale_tmp_and_plain_duplicates(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    Path(path).write_bytes(b"live\n")
    Path(path + ".1.gz.tmp").write_bytes(b"half a gzip")
    with gzip.open(path + ".2.gz", "wb") as packed:
        packed.write(b"two\n")
    Path(path + ".2").write_bytes(b"two\n")  # crash after the rename, before the unlink
    Path(path + ".3").write_bytes(b"three\n")
    writer = RotatingWriter(path, maxbytes=100, backups=5)
    assert listing(tmp_path) == ["p.log", "p.log.2.gz", "p.log.3"]
    assert everything(writer) == b"three\ntwo\nlive\n"


def test_recover_compresses_leftover_plain_backups(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    Path(path + ".1").write_bytes(b"one\n")
    Path(path + ".2").write_bytes(b"two\n")
    Path(path + ".1.gz.tmp").write_bytes(b"junk")
    compressor = Compressor()
    compressor.start()
    try:
        writer = RotatingWriter(path, maxbytes=100, backups=5, compressor=compressor)
        assert compressor.wait_idle(WAIT)
    finally:
        compressor.stop()
    assert listing(tmp_path) == ["p.log.1.gz", "p.log.2.gz"]
    assert everything(writer) == b"two\none\n"


def test_rotation_after_a_crash_mid_rotation_keeps_every_byte(tmp_path: Path) -> None:
    """A crash between two renames leaves a gap in the numbering; nothing is lost."""
    path = str(tmp_path / "p.log")
    Path(path + ".1").write_bytes(b"b\n")
    Path(path + ".3").write_bytes(b"a\n")  # .2 had already moved on to .3
    writer = RotatingWriter(path, maxbytes=4, backups=5)
    writer.write(b"c\n")
    writer.write(b"d\n")
    writer.write(b"e\n")
    writer.close()
    assert everything(writer) == b"a\nb\nc\nd\ne\n"


# ------------------------------------------------------------------ write errors


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> FlakyOs:
    return flaky_os(monkeypatch)


def test_write_error_holds_records_and_retries_in_order(tmp_path: Path, flaky: FlakyOs) -> None:
    reports = ProblemReports()
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=0, report=reports)
    writer.write(record(0))
    flaky.fail_with = errno.ENOSPC
    writer.write(record(1))
    writer.write(record(2))
    assert writer.failing == "ENOSPC"
    assert writer.stats()["held_bytes"] == 80
    assert read(path) == record(0)
    assert reports.kinds == ["write:ENOSPC"]  # reported once, not per write
    assert "p.log" in reports.calls[0][1]
    assert writer.retry() is False
    flaky.fail_with = None
    writer.write(record(3))
    writer.close()
    assert read(path) == b"".join(record(n) for n in range(4))
    assert reports.kinds == ["write:ENOSPC", "write:ENOSPC:ok"]
    assert writer.failing is None
    assert writer.stats()["held_bytes"] == 0
    assert writer.errors >= 3


def test_retry_alone_writes_what_was_held(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path)
    flaky.fail_with = errno.EIO
    writer.write(record(1))
    assert writer.failing == "EIO"
    flaky.fail_with = None
    assert writer.retry() is True
    assert read(path) == record(1)


def test_held_records_rotate_at_record_boundaries_too(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100, backups=50)
    flaky.fail_with = errno.ENOSPC
    written = [record(n, 30) for n in range(20)]
    for data in written:
        writer.write(data)
    flaky.fail_with = None
    writer.close()
    assert everything(writer) == b"".join(written)
    for name in writer.files():
        data = read(name)
        assert len(data) <= 100 and data.endswith(b"\n")


def test_past_the_buffer_limit_the_middle_is_dropped_and_a_notice_stands_in_its_place(
    tmp_path: Path, flaky: FlakyOs
) -> None:
    notices: List[str] = []

    def notice(text: str, stamp: Optional[str]) -> bytes:
        notices.append(text)
        return b"NOTICE " + text.encode() + b"\n"

    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, buffer_limit=200, notice=notice)
    flaky.fail_with = errno.ENOSPC
    for n in range(12):
        writer.write(record(n))  # 40 bytes each
    # The record whose write failed waits whole (writer.tail); then the oldest
    # records fill half the limit and stay, the newest fill the rest, and the
    # records between them are dropped.
    assert writer.tail == record(0)
    assert writer.stats()["held_bytes"] == 40 + 200
    assert writer.dropped_bytes == 6 * 40 and writer.dropped_records == 6
    assert notices == []  # nothing to say while the disk still refuses
    flaky.fail_with = None
    writer.write(record(12))  # the first write after recovery is not dropped
    writer.close()
    lines = read(path).splitlines(keepends=True)
    assert lines[:3] == [record(0), record(1), record(2)]
    assert lines[3].startswith(b"NOTICE ")  # where the gap is
    assert lines[4:] == [record(n) for n in (9, 10, 11, 12)]
    # Records not in a streamlog format carry no times: only the counts.
    assert notices == ["dropped bytes=240 records=6 reason=ENOSPC"]
    assert writer.stats()["dropped_bytes"] == 240
    assert writer.dropped_bytes == 0  # said once, then reset


def test_a_record_larger_than_the_buffer_is_dropped_whole(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(
        path, buffer_limit=100, notice=lambda text, stamp: text.encode() + b"\n"
    )
    flaky.fail_with = errno.ENOSPC
    writer.write(record(0, 300))  # the write in progress: kept whole (writer.tail)
    writer.write(record(1, 300))
    writer.write(record(2, 300))
    assert writer.held_bytes == 0 and writer.dropped_records == 2
    flaky.fail_with = None
    writer.write(record(3))
    writer.close()
    notice = b"dropped bytes=600 records=2 reason=ENOSPC\n"
    assert read(path) == record(0, 300) + notice + record(3)


def test_no_notice_callback_still_recovers(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, buffer_limit=100)
    flaky.fail_with = errno.ENOSPC
    for n in range(5):
        writer.write(record(n))
    assert writer.dropped_bytes > 0
    flaky.fail_with = None
    assert writer.retry()
    assert read(path) == record(0) + record(1) + record(4)  # both ends kept


def test_partial_os_write_is_completed(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path)
    flaky.plan = [7, 1, 3, 5, 11, 2]
    data = b"".join(record(n) for n in range(5))
    writer.write(data)
    writer.close()
    assert read(path) == data
    assert writer.bytes_written == len(data)


def test_error_after_a_partial_write_resumes_mid_record(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100, backups=10)
    writer.write(record(0, 60))
    flaky.plan = [10, "ENOSPC"]
    writer.write(record(1, 30))  # 10 bytes land, then the disk is full
    flaky.fail_with = errno.ENOSPC
    writer.write(record(2, 30))
    assert read(path) == record(0, 60) + record(1, 30)[:10]
    assert writer.failing == "ENOSPC"
    flaky.fail_with = None
    writer.write(record(3, 30))
    writer.close()
    # Nothing lost, nothing written twice, and the cut record stayed in one file.
    expected = [record(0, 60), record(1, 30), record(2, 30), record(3, 30)]
    assert everything(writer) == b"".join(expected)
    for name in writer.files():
        data = read(name)
        assert data.endswith(b"\n") and data.startswith(b"rec-")


def test_open_failure_holds_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FlakyOs()
    failing = {"on": True}

    def bad_open(*args: Any, **kwargs: Any) -> int:
        if failing["on"]:
            raise OSError(errno.EACCES, "Permission denied")
        return os.open(*args, **kwargs)

    fake.open = bad_open  # type: ignore[attr-defined]
    monkeypatch.setattr(writer_module, "os", fake)
    reports = ProblemReports()
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, report=reports)
    for n in range(4):
        writer.write(record(n))  # each write retries (and fails) first
    assert writer.failing == "EACCES" and reports.kinds == ["write:EACCES"]
    failing["on"] = False
    writer.write(record(4))
    writer.close()
    assert read(path) == b"".join(record(n) for n in range(5))  # in order


def test_close_writes_what_is_held(tmp_path: Path, flaky: FlakyOs) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path)
    flaky.fail_with = errno.ENOSPC
    writer.write(record(1))
    flaky.fail_with = None
    writer.close()
    assert read(path) == record(1)
    assert writer.fd is None


# ------------------------------------------------------------------ files moved


def test_directory_deleted_while_running_is_recreated(tmp_path: Path) -> None:
    logdir = tmp_path / "logs" / "group"
    path = str(logdir / "p.log")
    writer = RotatingWriter(path, maxbytes=1000)
    writer.write(record(1))
    shutil.rmtree(tmp_path / "logs")
    assert writer.check_moved() is True
    writer.write(record(2))
    writer.close()
    assert read(path) == record(2)


def test_directory_deleted_then_rotation_recreates_it(tmp_path: Path) -> None:
    path = str(tmp_path / "logs" / "p.log")
    writer = RotatingWriter(path, maxbytes=50, backups=2)
    writer.write(record(1))
    shutil.rmtree(tmp_path / "logs")
    writer.write(record(2))  # does not fit: rotation reopens by name
    writer.close()
    assert read(path) == record(2)


def test_check_moved_reopens_a_deleted_live_file(tmp_path: Path) -> None:
    reports = ProblemReports()
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, report=reports)
    assert writer.check_moved() is False  # nothing open yet
    writer.write(record(1))
    assert writer.check_moved() is False
    os.unlink(path)
    assert writer.check_moved() is True
    assert reports.kinds == [f"moved:{path}"]
    writer.write(record(2))
    assert writer.check_moved() is False
    writer.close()
    assert read(path) == record(2)


def test_check_moved_reopens_a_renamed_live_file(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100)
    writer.write(record(1))
    os.rename(path, path + ".old")
    assert writer.check_moved() is True
    writer.write(record(2))
    writer.close()
    assert read(path + ".old") == record(1)
    assert read(path) == record(2)


def test_reopen_after_an_external_logrotate(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=100)
    writer.write(record(1))
    os.rename(path, path + "-20260101")
    writer.write(record(2))  # still goes to the renamed file, as with any logger
    writer.reopen()
    writer.write(record(3))
    writer.close()
    assert read(path + "-20260101") == record(1) + record(2)
    assert read(path) == record(3)
    # The new file's size is its own: rotation is based on it.
    assert writer.size == 40


def test_a_record_half_written_at_enospc_stays_in_its_file_after_an_external_move(
    tmp_path: Path, flaky: FlakyOs
) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=1000)
    writer.write(record(0))
    flaky.plan = [10, "ENOSPC"]
    writer.write(record(1))  # 10 bytes land, then the disk is full
    flaky.fail_with = errno.ENOSPC
    os.rename(path, path + "-20260101")  # logrotate moves the live file
    assert writer.check_moved() is True  # ... and the rest of record 1 still cannot be written
    writer.write(record(2))
    writer.retry()
    flaky.fail_with = None  # space again
    writer.write(record(3))
    writer.close()
    # Record 1 is whole in the file it began in; the new file has what followed.
    assert read(path + "-20260101") == record(0) + record(1)
    assert read(path) == record(2) + record(3)


def header_notice(text: str, stamp: Optional[str]) -> bytes:
    return f"2026-11-27T01:23:45.000000+00:00 status STREAMLOG {text}\n".encode()


def test_a_new_files_offset_after_a_restart_does_not_trust_a_wrapped_gzip_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A world where gzip's ISIZE wraps at 1000 bytes stands for 4 GiB: the
    # backup below holds more than that, so its trailer alone would be wrong.
    path = str(tmp_path / "p.log")
    contents = header_notice("file offset=5000", None) + b"".join(record(n) for n in range(100))
    with gzip.open(path + ".1.gz", "wb") as packed:
        packed.write(contents)
    monkeypatch.setattr(writer_module, "ISIZE_MODULUS", 1000, raising=False)
    true_isize = writer_module.uncompressed_size
    monkeypatch.setattr(writer_module, "uncompressed_size", lambda name: true_isize(name) % 1000)
    writer = RotatingWriter(path, maxbytes=100_000, notice=header_notice, header=True)
    writer.write(record(100))  # no live file: a new one, after the backup
    writer.close()
    assert read_base(path) == 5000 + len(contents)


def big_backup(path: str, megabytes: int) -> bytes:
    """A plain backup ``path.1`` that takes gzip a while (incompressible bytes)."""
    data = b"".join(os.urandom(30).hex().encode() + b"\n" for _ in range(megabytes * 17_000))
    with open(path + ".1", "wb") as handle:
        handle.write(data)
    return data


def test_a_reload_while_the_previous_loads_compressor_runs_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    data = big_backup(path, 20)
    reports = ProblemReports()
    old = Compressor(report=reports)
    old.start()
    RotatingWriter(path, backups=3, compressor=old)  # the previous load resumes .1
    wait_for_file(path + ".1.gz.tmp")
    # The reload: a new load's writer and compressor for the same files, while
    # the old compressor is still writing its .gz.tmp.
    new = Compressor(report=reports)
    new.start()
    RotatingWriter(path, backups=3, compressor=new)
    assert old.wait_idle(WAIT * 3) and new.wait_idle(WAIT * 3)
    old.stop()
    new.stop()
    assert listing(tmp_path) == ["p.log.1.gz"]
    assert read(path + ".1.gz") == data
    assert reports.calls == []


def test_cancel_leaves_the_plain_backup_and_the_next_load_compresses_it(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    data = big_backup(path, 20)
    old = Compressor()
    old.start()
    RotatingWriter(path, backups=3, compressor=old)
    wait_for_file(path + ".1.gz.tmp")
    began = time.monotonic()
    old.cancel(timeout=WAIT)  # a reload: stop within one block, not at the end of the file
    assert time.monotonic() - began < 1.0
    assert listing(tmp_path) == ["p.log.1"]  # the partial .gz.tmp removed, the plain kept
    new = Compressor()
    new.start()
    RotatingWriter(path, backups=3, compressor=new)  # the next load takes the work over
    assert new.wait_idle(WAIT * 3)
    new.stop()
    assert listing(tmp_path) == ["p.log.1.gz"] and read(path + ".1.gz") == data


def test_recover_removes_a_stale_tmp_but_not_one_being_written(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    (tmp_path / "p.log.1").write_bytes(record(1))
    (tmp_path / "p.log.2").write_bytes(record(2))
    (tmp_path / "p.log.1.gz.tmp").write_bytes(b"\x1f\x8b partial")  # its writer was killed
    busy = os.open(tmp_path / "p.log.2.gz.tmp", os.O_WRONLY | os.O_CREAT)
    fcntl.flock(busy, fcntl.LOCK_EX)  # another compressor is writing this one
    try:
        RotatingWriter(path, backups=3)
        assert listing(tmp_path) == ["p.log.1", "p.log.2", "p.log.2.gz.tmp"]
    finally:
        os.close(busy)


def wait_for_file(name: str) -> None:
    deadline = time.monotonic() + WAIT
    while not os.path.exists(name):
        assert time.monotonic() < deadline, f"{name} never appeared"
        time.sleep(0.001)


def test_stats(tmp_path: Path) -> None:
    path = str(tmp_path / "p.log")
    writer = RotatingWriter(path, maxbytes=80, backups=2)
    for n in range(5):
        writer.write(record(n))
    stats = writer.stats()
    writer.close()
    assert stats["path"] == path
    assert stats["bytes_written"] == 200
    assert stats["rotations"] == 2
    assert stats["write_errors"] == 0
    assert stats["held_bytes"] == 0
    assert stats["failing"] is None
