"""Following the files: every record once, in order, across rotation, compression and
retention, from any offset (follow.py); discovery of process logs (ondisk/logdir.py);
the watcher wakes followers by inotify or by polling (watcher.py, inotify.py).

All files are written by the real capture path (``Capture.log``) unless a test is
about what something else did to them (a partial write, truncation, replacement).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import shutil
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.capture.writer import Compressor
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.logread import follow
from supervisor_streamlog.logread.follow import FileFollower
from supervisor_streamlog.ondisk.files import Entry, is_header, process_files
from supervisor_streamlog.ondisk.formats import reassemble, timestamp
from supervisor_streamlog.ondisk.logdir import discover
from supervisor_streamlog.sidecar import inotify
from supervisor_streamlog.sidecar import watcher as watcher_module
from supervisor_streamlog.sidecar.watcher import Watcher


def make_capture(logdir: Path, compressor: Optional[Compressor] = None, **settings: str) -> Capture:
    values = {"logdir": str(logdir), "maxbytes": "4KB", "backups": "200"}
    values.update(settings)
    if compressor is not None:
        values["compress"] = "true"
    config = from_mapping(values, here=str(logdir.parent), environ={})
    return Capture(config, compressor=compressor)


def numbered(start: int, stop: int) -> bytes:
    return b"".join(b"line %06d\n" % n for n in range(start, stop))


def write_lines(
    capture: Capture, start: int, stop: int, group: str = "app", name: str = "app"
) -> None:
    for n in range(start, stop):
        capture.log(group, name, "stdout", 42, b"line %06d\n" % n)


class Collector:
    """What a follower delivered, checked as it arrives."""

    def __init__(self, cond: Optional[threading.Condition] = None) -> None:
        self.entries: List[Entry] = []
        self.gaps: List[Tuple[int, int]] = []
        self.resets: List[Tuple[int, int]] = []
        self.batches = 0
        #: Notified on every delivery (may be shared by several collectors).
        self.cond = cond or threading.Condition()
        self.delivered = 0  # the end of the last record delivered

    def __call__(self, entries: List[Entry]) -> None:
        assert entries, "an empty batch"
        self.batches += 1
        self.entries.extend(entries)
        with self.cond:
            self.delivered = entries[-1].end
            self.cond.notify_all()

    def gap(self, start: int, end: int) -> None:
        self.gaps.append((start, end))

    def reset(self, old: int, new: int) -> None:
        self.resets.append((old, new))

    def follower(self, path: Path, start: Optional[int] = 0, **kwargs: Any) -> FileFollower:
        return FileFollower(str(path), start, self, on_gap=self.gap, on_reset=self.reset, **kwargs)

    def output(self) -> List[Entry]:
        """The child's records, without the file headers."""
        return [e for e in self.entries if not is_header(e.record.stream, e.record.data)]

    def data(self) -> bytes:
        return reassemble((e.record for e in self.entries), "stdout")

    def assert_contiguous(self, start: Optional[int] = None) -> None:
        if start is not None and self.entries:
            assert self.entries[0].offset == start
        for before, after in zip(self.entries, self.entries[1:]):
            assert after.offset == before.end, (before, after)


def drain(follower: FileFollower) -> None:
    """Poll until nothing more is there now."""
    for _ in range(10_000):
        if not follower.poll() and not follower.pending:
            return
    raise AssertionError("the follower never caught up")


def whole_log(live: Path) -> bytes:
    out = b""
    for item in process_files(str(live)):
        data = Path(item.path).read_bytes()
        out += gzip.decompress(data) if item.compressed else data
    return out


def record(text: bytes) -> bytes:
    """A record as if written by another writer (text format)."""
    return timestamp(time.time(), True).encode() + b" stdout " + text + b"\n"


# ---------------------------------------------------------------- discover


def test_discover_finds_live_files_and_ignores_everything_else(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    capture = make_capture(logdir)
    write_lines(capture, 0, 200)  # rotates: app.log.1 ... exist too
    write_lines(capture, 0, 1, "web", "web:0")
    write_lines(capture, 0, 1, "web", "web:1")
    write_lines(capture, 0, 1, "odd group", "we ird/name")
    write_lines(capture, 0, 1, ".hidden", ".hidden")
    capture.close()
    assert (logdir / "app.log.1").exists()
    outside = tmp_path / "outside.log"
    outside.write_bytes(record(b"x"))
    (logdir / "escape.log").symlink_to(outside)
    (logdir / "alias.log").symlink_to(logdir / "app.log")  # inside logdir: fine
    (logdir / "link").symlink_to(tmp_path)  # a "group" outside logdir
    (logdir / "notes.txt").write_text("x")
    (logdir / "app.log.3.gz.tmp").write_bytes(b"")
    (logdir / ".secret.log").write_bytes(b"")
    (logdir / "a b.log").write_bytes(b"")  # not a name quote_name() produces
    (logdir / "dir.log").mkdir()
    (logdir / "web" / "web.log").write_bytes(b"")  # group == name lives at the top
    (logdir / "web" / "web%3A0.log.1").write_bytes(b"")
    assert discover(str(logdir)) == {
        "alias:alias": str(logdir / "alias.log"),
        "app:app": str(logdir / "app.log"),
        ".hidden:.hidden": str(logdir / "%2Ehidden.log"),
        "odd group:we ird/name": str(logdir / "odd%20group" / "we%20ird%2Fname.log"),
        "web:web:0": str(logdir / "web" / "web%3A0.log"),
        "web:web:1": str(logdir / "web" / "web%3A1.log"),
    }
    assert discover(str(tmp_path / "missing")) == {}


# ---------------------------------------------------------------- FileFollower


@pytest.mark.parametrize("compress", [False, True])
def test_follows_many_rotations_from_the_start(tmp_path: Path, compress: bool) -> None:
    compressor = Compressor() if compress else None
    if compressor is not None:
        compressor.start()
    capture = make_capture(tmp_path / "logs", compressor)
    live = tmp_path / "logs" / "app.log"
    got = Collector()
    follower = got.follower(live, 0)
    assert follower.poll() == 0 and follower.position == 0  # nothing there yet
    for step in range(10):
        write_lines(capture, step * 300, (step + 1) * 300)
        if step % 3 == 0:  # several rotations between some polls, one between others
            drain(follower)
    if compressor is not None:
        assert compressor.wait_idle(30)
        assert any(item.compressed for item in process_files(str(live)))
    drain(follower)
    capture.close()
    if compressor is not None:
        compressor.stop()
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 3000)
    assert (got.gaps, got.resets, follower.unparsed) == ([], [], 0)
    headers = [e for e in got.entries if is_header(e.record.stream, e.record.data)]
    assert len(headers) == len(process_files(str(live))) > 20
    assert follower.position == got.entries[-1].end == len(whole_log(live))


def test_start_at_the_end_delivers_only_new_records(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs")
    live = tmp_path / "logs" / "app.log"
    early = Collector()
    before = early.follower(live, None)  # no file yet: begins with the first one
    assert before.position == 0
    write_lines(capture, 0, 500)
    got = Collector()
    follower = got.follower(live, None)
    start = follower.position
    assert start == len(whole_log(live))
    assert follower.poll() == 0 and not got.entries
    write_lines(capture, 500, 1000)
    drain(follower)
    drain(before)
    got.assert_contiguous(start)
    assert got.data() == numbered(500, 1000)
    early.assert_contiguous(0)
    assert early.data() == numbered(0, 1000)


@pytest.mark.parametrize("compress", [False, True])
def test_start_inside_a_backup_reads_forward_to_the_live_file(
    tmp_path: Path, compress: bool
) -> None:
    compressor = Compressor() if compress else None
    if compressor is not None:
        compressor.start()
    capture = make_capture(tmp_path / "logs", compressor)
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 3000)
    if compressor is not None:
        assert compressor.wait_idle(30)
        compressor.stop()
    everything = Collector()
    drain(everything.follower(live, 0))
    files = process_files(str(live))
    assert len(files) > 30 and files[10].compressed == compress
    # The second record of an old backup (just after its header).
    start = next(e.end for e in everything.entries if e.offset == files[10].base)
    got = Collector()
    follower = got.follower(live, start)
    drain(follower)
    assert got.entries == [e for e in everything.entries if e.offset >= start]
    assert (got.gaps, got.resets) == ([], [])
    write_lines(capture, 3000, 3100)  # and on to what is written next
    drain(follower)
    got.assert_contiguous(start)
    assert got.output()[-1].record.data == b"line 003099"


def test_a_partial_record_waits_for_its_newline(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 10)
    got = Collector()
    follower = got.follower(live, None)
    whole = record(b"half and the rest")
    cut = len(whole) - 9
    with open(live, "ab") as handle:  # a write seen half done
        handle.write(whole[:cut])
    assert follower.poll() == cut
    assert not got.entries and follower.position == live.stat().st_size - cut
    assert follower.poll() == 0
    with open(live, "ab") as handle:
        handle.write(whole[cut:])
    assert follower.poll() == len(whole) - cut
    [entry] = got.entries
    assert entry.record.data == b"half and the rest"
    assert (entry.offset, entry.end) == (live.stat().st_size - len(whole), live.stat().st_size)


def test_a_corrupt_compressed_backup_is_a_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compressor = Compressor()
    compressor.start()
    capture = make_capture(tmp_path / "logs", compressor)
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 1000)
    assert compressor.wait_idle(30)
    compressor.stop()
    files = process_files(str(live))
    broken = files[3]
    assert broken.compressed
    packed = Path(broken.path).read_bytes()
    Path(broken.path).write_bytes(packed[: len(packed) // 2])
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    [(start, end)] = got.gaps
    [message] = [
        r.getMessage() for r in caplog.records if r.name == "supervisor_streamlog.logread.follow"
    ]
    assert message.startswith(f"cannot read {broken.path} (") and "skipping the rest" in message
    # What was decompressed before the damage may be lost with it (reads are 1 MiB).
    assert broken.base <= start < broken.end == end == files[4].base
    before = [e for e in got.entries if e.end <= start]
    after = [e for e in got.entries if e.offset >= end]
    assert before + after == got.entries
    assert before[-1].end == start and after[0].offset == end
    assert (before[0].offset, follower.gaps, follower.resets) == (0, 1, 0)
    assert after[-1].end == files[-1].end


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_backup_in_the_middle_of_a_follow_gives_what_comes_before_the_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """Pinned beside the code it came from (gzip.GzipFile): a read that meets the
    damage gives nothing, what reads before it gave is delivered, the rest of
    the file is one gap up to the next file, reported once in the log.  The
    damage is placed where every reader sees it at the same byte (just after a
    full flush, the middle of a poll's reads), so the records are exact."""
    compressor = Compressor()
    compressor.start()
    capture = make_capture(tmp_path / "logs", compressor, maxbytes="3MB")
    live = tmp_path / "logs" / "app.log"
    rnd = random.Random(18)
    words = [b"GET", b"/api/items", b"took", b"ms", b"status=200", b"cache", b"miss", b"user"]
    for n in range(13000):
        text = b" ".join(rnd.choice(words) + b"=%d" % rnd.randrange(10**6) for _ in range(60))
        capture.log("app", "app", "stdout", 42, b"line %06d %s\n" % (n, text))
    assert compressor.wait_idle(30)
    compressor.stop()
    capture.close()
    files = process_files(str(live))
    assert len(files) >= 4 and all(item.compressed for item in files[:-1])
    broken = files[1]
    contents = gzip.decompress(Path(broken.path).read_bytes())
    everything = Collector()
    drain(everything.follower(live, 0))
    # The damage goes at a record boundary in the middle of a poll's reads:
    # a poll reads chunk_size bytes, so the reads end at multiples of it.
    chunk = 1024 * 1024
    at = next(
        e.end - broken.base
        for e in everything.entries
        if e.end > broken.base + len(contents) // 3
        and chunk // 4 <= e.end % chunk <= chunk * 3 // 4
    )
    pack = zlib.compressobj(6, zlib.DEFLATED, 31)
    packed = pack.compress(contents[:at]) + pack.flush(zlib.Z_FULL_FLUSH)
    rest = pack.compress(contents[at:]) + pack.flush()
    if damage == "truncated":
        Path(broken.path).write_bytes(packed)
    else:  # a block of a type that does not exist, met right there
        Path(broken.path).write_bytes(packed + b"\x06" + rest[1:])
    got = Collector()
    follower = got.follower(live, 0, chunk_size=chunk)
    drain(follower)
    read_to = (broken.base + at) // chunk * chunk  # the reads before the damage
    start = max([broken.base] + [e.end for e in everything.entries if e.end <= read_to])
    assert broken.base < start < broken.base + at
    assert got.gaps == [(start, files[2].base)] and (follower.gaps, follower.resets) == (1, 0)
    assert got.entries == [
        e for e in everything.entries if e.end <= start or e.offset >= files[2].base
    ]
    [message] = [
        r.getMessage() for r in caplog.records if r.name == "supervisor_streamlog.logread.follow"
    ]
    assert message.startswith(f"cannot read {broken.path} (") and "skipping the rest" in message
    assert follower.position == files[-1].end


def test_a_compressed_backup_is_read_at_any_position(tmp_path: Path) -> None:
    """The follower reads a ``.gz`` forward; a position ahead is skipped to, one
    behind starts the file over.  A read that meets damage raises (poll then
    skips the rest of the file) and gives nothing; one that ends before it is whole."""
    contents = b"".join(record(b"%06d" % n) for n in range(40_000))
    path = tmp_path / "app.log.1.gz"
    packed = gzip.compress(contents)
    path.write_bytes(packed)
    src = follow._open_source(str(path), 1)
    assert src is not None and src.first_line == contents[: contents.index(b"\n") + 1]
    try:
        for pos, count in [(0, 100), (700_000, 10), (50, 300_000), (20, 1), (0, 2_000_000)]:
            assert src.read(pos, count) == contents[pos : pos + count], (pos, count)
        assert src.read(len(contents) - 5, 100) == contents[-5:]
        assert src.read(len(contents), 100) == b"" == src.read(len(contents) + 10, 1)
    finally:
        src.close()
    path.write_bytes(packed[: len(packed) // 2])
    src = follow._open_source(str(path), 1)
    assert src is not None
    try:
        assert src.read(100, 1000) == contents[100:1100]
        with pytest.raises(OSError, match="damaged or truncated"):
            src.read(1100, len(contents))
        with pytest.raises(OSError):
            src.read(len(contents) - 10, 1)  # past the damage
        assert src.read(0, 10) == contents[:10]  # before it: from the start again
    finally:
        src.close()


def test_records_written_just_before_a_rotation_are_drained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 10)
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    check = follower._check_live
    plog = capture.processes[("app", "app")]
    assert plog is not None

    def late_writes_then_rotation(src: Any) -> str:
        # Between the follower's last read and its look at the name: more
        # records into the file, then a rotation.
        if not (tmp_path / "logs" / "app.log.1").exists():
            write_lines(capture, 10, 20)
            plog.writer.rotate()
            write_lines(capture, 20, 30)
        return check(src)

    monkeypatch.setattr(follower, "_check_live", late_writes_then_rotation)
    drain(follower)
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 30)


def test_truncation_in_place_is_a_reset(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 100)
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    before = follower.position
    os.truncate(live, 0)  # copytruncate; the writer appends on (O_APPEND), no header
    assert follower.poll() == 0 and got.resets == []  # nothing to restart from yet
    write_lines(capture, 100, 300)  # more than there was: the size alone cannot tell
    drain(follower)
    assert got.resets == [(before, 0)]
    # Offsets start again at 0, then run on contiguously.
    [cut] = [i for i, e in enumerate(got.entries) if i and e.offset < got.entries[i - 1].end]
    assert got.entries[cut - 1].end == before and got.entries[cut].offset == 0
    for part in (got.entries[:cut], got.entries[cut:]):
        assert all(a.end == b.offset for a, b in zip(part, part[1:]))
    assert got.data() == numbered(0, 300)
    assert got.gaps == []


def test_replacement_without_a_header_is_a_reset(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 100)
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    before = follower.position
    other = tmp_path / "other"
    other.write_bytes(record(b"foreign 1") + record(b"foreign 2"))
    os.replace(other, live)
    drain(follower)
    assert got.resets == [(before, 0)]
    assert [e.record.data for e in got.entries[-2:]] == [b"foreign 1", b"foreign 2"]
    assert got.entries[-2].offset == 0


def test_a_log_started_over_is_a_reset(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    capture = make_capture(logdir)
    live = logdir / "app.log"
    write_lines(capture, 0, 500)
    capture.close()
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    before = follower.position
    shutil.rmtree(logdir)  # all files gone; a new capture starts at offset 0
    capture = make_capture(logdir)
    write_lines(capture, 0, 500)
    drain(follower)
    assert got.resets == [(before, process_files(str(live))[-1].base)]
    assert got.output()[-1].record.data == b"line 000499"


def test_offsets_removed_by_retention_are_a_gap(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", backups="2")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 10)
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    write_lines(capture, 10, 2000)  # many rotations; only 2 backups kept
    drain(follower)
    files = process_files(str(live))
    [(start, end)] = got.gaps
    assert end == files[0].base > start
    # Everything before the gap and everything after it, each contiguous.
    cut = next(i for i, e in enumerate(got.entries) if e.offset == end)
    assert got.entries[cut - 1].end == start
    assert got.entries[cut:][-1].end == files[-1].end
    assert got.output()[-1].record.data == b"line 001999"


def test_a_start_past_the_end_is_a_reset(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 10)
    got = Collector()
    drain(got.follower(live, 10**6))
    assert got.resets == [(10**6, 0)]
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 10)


def test_a_start_inside_a_record_skips_to_the_next(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 10)
    everything = Collector()
    drain(everything.follower(live, 0))
    third = everything.entries[3]
    got = Collector()
    drain(got.follower(live, third.offset + 5))
    assert got.gaps == [(third.offset + 5, third.end)]
    assert got.entries == everything.entries[4:]


def test_unparseable_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 5)
    with open(live, "ab") as handle:
        handle.write(b"garbage\n\n")
    write_lines(capture, 5, 10)
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    assert follower.unparsed == 2
    assert got.data() == numbered(0, 10)
    jump = [(a, b) for a, b in zip(got.entries, got.entries[1:]) if a.end != b.offset]
    assert [(b.offset - a.end) for a, b in jump] == [len(b"garbage\n\n")]


def test_a_poll_reads_at_most_chunk_size(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 1000)
    got = Collector()
    follower = got.follower(live, 0, chunk_size=1000)
    polls = 0
    while True:
        polls += 1
        assert follower.poll() <= 1000
        if not follower.pending:
            break
    assert polls >= len(whole_log(live)) // 1000
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 1000)


def test_json_format(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", format="json")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 300)
    got = Collector()
    drain(got.follower(live, 0))
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 300)
    assert got.output()[0].record.pid == 42
    assert len(got.entries) - len(got.output()) == len(process_files(str(live))) > 1


def test_a_deleted_live_file_loses_nothing(tmp_path: Path) -> None:
    capture = make_capture(tmp_path / "logs", maxbytes="0")
    live = tmp_path / "logs" / "app.log"
    write_lines(capture, 0, 10)
    got = Collector()
    follower = got.follower(live, 0)
    drain(follower)
    live.unlink()
    assert follower.poll() == 0
    write_lines(capture, 10, 20)  # still into the deleted file, until a reopen
    capture.reopen()  # a new file, continuing the offsets
    write_lines(capture, 20, 30)
    drain(follower)
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 30)
    assert (got.gaps, got.resets) == ([], [])
    follower.close()


# ---------------------------------------------------------------- Watcher, on an IOLoop


async def until(
    predicate: Callable[[], bool], timeout: float = 60.0, state: Callable[[], object] = str
) -> None:
    """Let the IOLoop run until ``predicate()`` holds (or fail at the deadline,
    saying ``state()``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {state()}"
        await asyncio.sleep(0.01)


def state_of(follower: FileFollower) -> Dict[str, object]:
    """What a follower was doing, for a failure message."""
    source = follower._src
    return {
        "position": follower.position,
        "file": None if source is None else (source.name, source.base, source.live),
        "next": follower._next,
        "gaps": follower.gaps,
        "resets": follower.resets,
        "records": follower.records,
        "files": [(os.path.basename(f.path), f.base, f.end) for f in process_files(follower.path)],
    }


LINUX = sys.platform.startswith("linux")
BOTH_MODES = [
    pytest.param(True, id="inotify", marks=pytest.mark.skipif(not LINUX, reason="Linux only")),
    pytest.param(False, id="poll"),
]


def make_watcher(
    logdir: Path, inotify: bool, on_new: Optional[Callable[[str, str], None]] = None
) -> Watcher:
    # With inotify, the safety poll never runs: events alone must do the work.
    return Watcher(
        str(logdir),
        on_new,
        poll_interval=0.05,
        safety_interval=3600 if inotify else 0.2,
        use_inotify=inotify,
    )


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("inotify", BOTH_MODES)
def test_watcher_follows_a_burst_of_20000_lines(
    tmp_path: Path, inotify: bool, compress: bool
) -> None:
    logdir = tmp_path / "logs"
    live = logdir / "app.log"
    compressor = Compressor() if compress else None
    if compressor is not None:
        compressor.start()
    capture = make_capture(logdir, compressor)
    write_lines(capture, 0, 1)
    blob = numbered(1, 20_000)
    first = Collector()
    second = Collector(first.cond)  # the writer waits for the slower of the two
    followers: List[FileFollower] = []
    errors: List[BaseException] = []

    def delivered() -> int:
        return min(c.delivered for c in (first, second)[: len(followers)])

    def writer() -> None:
        # Chunks of random sizes, cutting lines, as supervisord reads them; never
        # more than ~100 files ahead of the followers (200 backups are kept).
        try:
            rng = random.Random(7)
            plog = capture.processes[("app", "app")]
            assert plog is not None
            pos = 0
            while pos < len(blob):
                size = rng.randint(1, 2000)
                capture.log("app", "app", "stdout", 42, blob[pos : pos + size])
                pos += size
                with first.cond:
                    deadline = time.monotonic() + 60
                    while plog.writer.base + plog.writer.size - delivered() > 400_000:
                        assert first.cond.wait(deadline - time.monotonic())
            capture.close()
        except BaseException as exc:
            errors.append(exc)

    async def main() -> None:
        watcher = make_watcher(logdir, inotify)
        followers.append(first.follower(live, 0))
        watcher.watch("app", followers[0])
        watcher.start()
        assert watcher.mode == ("inotify" if inotify else "poll")
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            # Half way, a second client starts from a cursor now in a backup.
            await until(lambda: len(first.entries) > 10_000 or not thread.is_alive())
            start = first.entries[2000].end
            followers.append(second.follower(live, start))
            with first.cond:
                second.delivered = start
            watcher.watch("app:app", followers[1])
            await until(
                lambda: bool(errors) or len(second.output()) >= 20_000 - 2000,
                state=lambda: [state_of(f) for f in followers],
            )
            await until(
                lambda: bool(errors) or len(first.output()) >= 20_000,
                state=lambda: [state_of(f) for f in followers],
            )
        finally:
            thread.join(60)
            watcher.stop()
        assert not errors, errors
        # Once the writer is done, nothing more arrives.
        assert all(f.poll() == 0 for f in followers)

    asyncio.run(main())
    if compressor is not None:
        assert compressor.wait_idle(30)
        compressor.stop()
    headers = [e for e in first.entries if is_header(e.record.stream, e.record.data)]
    assert len(headers) > 240  # so many rotations that retention removed files too
    assert process_files(str(live))[0].base > 0
    first.assert_contiguous(0)
    assert first.data() == numbered(0, 1) + blob
    assert (first.gaps, first.resets) == ([], [])
    second.assert_contiguous()
    assert second.entries == [e for e in first.entries if e.offset >= second.entries[0].offset]
    assert second.entries[0].offset == first.entries[2000].end
    assert (second.gaps, second.resets) == ([], [])


@pytest.mark.parametrize("inotify", BOTH_MODES)
def test_watcher_discovers_and_follows_new_processes(tmp_path: Path, inotify: bool) -> None:
    logdir = tmp_path / "logs"
    capture = make_capture(logdir)
    write_lines(capture, 0, 10)
    collectors: Dict[str, Collector] = {}
    found: List[Tuple[str, str]] = []

    async def main() -> None:
        watcher: Watcher

        def on_new(spec: str, path: str) -> None:
            found.append((spec, path))
            collectors[spec] = Collector()
            watcher.watch(spec, collectors[spec].follower(Path(path), 0))

        watcher = make_watcher(logdir, inotify, on_new)
        watcher.start()
        try:
            assert found == [("app:app", str(logdir / "app.log"))]
            write_lines(capture, 0, 100, "web", "web:0")  # a new group directory
            write_lines(capture, 0, 100, "db", "db")
            await until(lambda: len(found) == 3)
            write_lines(capture, 100, 300, "web", "web:0")
            write_lines(capture, 100, 300, "db", "db")
            write_lines(capture, 10, 300)
            await until(
                lambda: (
                    all(len(c.output()) == 300 for c in collectors.values())
                    and len(collectors) == 3
                )
            )
        finally:
            watcher.stop()

    asyncio.run(main())
    assert sorted(found) == [
        ("app:app", str(logdir / "app.log")),
        ("db:db", str(logdir / "db.log")),
        ("web:web:0", str(logdir / "web" / "web%3A0.log")),
    ]
    for collected in collectors.values():
        collected.assert_contiguous(0)
        assert collected.data() == numbered(0, 300)


@pytest.mark.parametrize("inotify", BOTH_MODES)
def test_a_logdir_created_after_start_is_picked_up(tmp_path: Path, inotify: bool) -> None:
    logdir = tmp_path / "logs"
    got = Collector()
    found: List[str] = []

    async def main() -> None:
        watcher = Watcher(
            str(logdir),
            lambda spec, path: found.append(spec),
            poll_interval=0.05,
            safety_interval=0.1,
            use_inotify=inotify,
        )
        watcher.watch("app", got.follower(logdir / "app.log", None))
        watcher.start()
        try:
            capture = make_capture(logdir)
            write_lines(capture, 0, 10)
            await until(lambda: len(got.output()) == 10)
            write_lines(capture, 10, 20)
            await until(lambda: len(got.output()) == 20 and found == ["app:app"])
            assert watcher.mode == ("inotify" if inotify else "poll")
            if inotify:
                assert "" in watcher._dirs  # watched once it appeared
        finally:
            watcher.stop()

    asyncio.run(main())
    assert found == ["app:app"]
    got.assert_contiguous(0)
    assert got.data() == numbered(0, 20)


@pytest.mark.parametrize("inotify", BOTH_MODES)
def test_watcher_survives_deleted_files_and_directories(tmp_path: Path, inotify: bool) -> None:
    logdir = tmp_path / "logs"
    capture = make_capture(logdir)
    write_lines(capture, 0, 10)
    write_lines(capture, 0, 10, "web", "w")
    app, web = Collector(), Collector()

    async def main() -> None:
        watcher = make_watcher(logdir, inotify)
        watcher.watch("app", app.follower(logdir / "app.log", 0))
        watcher.watch("web:w", web.follower(logdir / "web" / "w.log", 0))
        watcher.start()
        try:
            await until(lambda: len(app.output()) == len(web.output()) == 10)
            polls = watcher.polls
            (logdir / "app.log").unlink()
            shutil.rmtree(logdir / "web")
            await until(lambda: watcher.polls > polls)  # seen, and nothing broke
            write_lines(capture, 10, 20)  # into the deleted files
            write_lines(capture, 10, 20, "web", "w")
            capture.reopen()  # new files (and directory), continuing the offsets
            write_lines(capture, 20, 30)
            write_lines(capture, 20, 30, "web", "w")
            await until(lambda: len(app.output()) == len(web.output()) == 30)
        finally:
            watcher.stop()

    asyncio.run(main())
    for collected in (app, web):
        collected.assert_contiguous(0)
        assert collected.data() == numbered(0, 30)
        assert (collected.gaps, collected.resets) == ([], [])


@pytest.mark.skipif(not LINUX, reason="inotify is Linux only")
def test_inotify_events_are_coalesced_into_one_poll_per_iteration(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    capture = make_capture(logdir, maxbytes="0")
    write_lines(capture, 0, 1)
    got = Collector()

    async def main() -> None:
        watcher = make_watcher(logdir, True)
        watcher.watch("app", got.follower(logdir / "app.log", 0))
        watcher.start()
        try:
            assert watcher.mode == "inotify"
            await until(lambda: len(got.output()) == 1)
            polls = watcher.polls
            write_lines(capture, 1, 1001)  # 1000 writes, 1000 IN_MODIFY events
            await until(lambda: len(got.output()) == 1001)
            assert watcher.polls - polls <= 3
            assert got.batches <= 5
        finally:
            watcher.stop()

    asyncio.run(main())


def test_polling_when_inotify_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logdir = tmp_path / "logs"
    capture = make_capture(logdir)
    write_lines(capture, 0, 10)
    monkeypatch.setenv("STREAMLOG_NO_INOTIFY", "1")
    assert not Watcher(str(logdir)).use_inotify
    monkeypatch.delenv("STREAMLOG_NO_INOTIFY")

    def broken() -> inotify.Inotify:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(watcher_module, "Inotify", broken)
    got = Collector()

    async def main() -> str:
        watcher = Watcher(str(logdir), use_inotify=True, poll_interval=0.05)
        watcher.watch("app", got.follower(logdir / "app.log", None))
        watcher.start()
        try:
            write_lines(capture, 10, 20)
            await until(lambda: len(got.output()) == 10)
            return watcher.mode
        finally:
            watcher.stop()

    assert asyncio.run(main()) == "poll"
    assert got.data() == numbered(10, 20)


def test_records_nobody_wants_are_counted_not_parsed(tmp_path: Path, monkeypatch: Any) -> None:
    capture = make_capture(tmp_path / "logs")
    live = tmp_path / "logs" / "app.log"
    got = Collector()
    advanced: List[Tuple[int, int, int]] = []
    wanted = [False]
    follower = FileFollower(
        str(live),
        0,
        got,
        on_gap=got.gap,
        on_reset=got.reset,
        wanted=lambda: wanted[0],
        on_advance=lambda start, end, lines: advanced.append((start, end, lines)),
    )
    parsed: List[bytes] = []
    real_parse = follow.parse

    def counting_parse(line: bytes) -> Any:
        parsed.append(line)
        return real_parse(line)

    monkeypatch.setattr(follow, "parse", counting_parse)
    write_lines(capture, 0, 1000)  # across several rotations (maxbytes 4KB)
    drain(follower)
    assert parsed == [] and got.entries == []
    # Contiguous ranges from 0 up to the position, every newline counted once.
    assert advanced[0][0] == 0 and follower.position == advanced[-1][1]
    assert all(a[1] == b[0] for a, b in zip(advanced, advanced[1:]))
    total = whole_log(live)
    assert follower.position == len(total)
    assert sum(lines for _, _, lines in advanced) == total.count(b"\n") == follower.records
    # Someone subscribes: from the next poll on, records are parsed, from the position on.
    wanted[0] = True
    write_lines(capture, 1000, 1010)
    drain(follower)
    got.assert_contiguous(advanced[-1][1])
    assert got.data() == numbered(1000, 1010)
    assert len(parsed) >= 10
