"""Offsets: every file the capture starts says where it begins in the process's whole log."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import pytest

from supervisor_streamlog.capture import compressor as compressor_module
from supervisor_streamlog.capture import writer as writer_module
from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.capture.writer import Compressor
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.ondisk import files as files_module
from supervisor_streamlog.ondisk.files import (
    LogFile,
    ProcessFiles,
    contiguous,
    is_header,
    open_listed,
    process_files,
    read_base,
)
from supervisor_streamlog.ondisk.gzipped import PIECE, GzipStream, gunzip, inflate, read_whole


def make(tmp_path: Path, compressor: Optional[Compressor] = None, **settings: str) -> Capture:
    values = {
        "logdir": str(tmp_path / "logs"),
        "timezone": "utc",
        "maxbytes": "2KB",
        "backups": "100",
    }
    values.update(settings)
    config = from_mapping(values, here=str(tmp_path), environ={})
    return Capture(config, clock=lambda: 1.0e9, compressor=compressor)


def whole(files: list) -> bytes:
    out = b""
    for item in files:
        data = Path(item.path).read_bytes()
        out += gzip.decompress(data) if item.compressed else data
    return out


def test_offsets_are_contiguous_across_rotation_and_restart(tmp_path: Path) -> None:
    cap = make(tmp_path)
    for n in range(200):
        cap.log("app", "app", "stdout", 1, b"line %03d\n" % n)
    cap.close()
    # A restart goes on from where the files end, with the same offsets.
    cap = make(tmp_path)
    for n in range(200, 300):
        cap.log("app", "app", "stdout", 1, b"line %03d\n" % n)
    cap.close()
    files = process_files(str(tmp_path / "logs" / "app.log"))
    assert len(files) > 5
    assert files[0].base == 0
    for before, after in zip(files, files[1:]):
        assert after.base == before.end
    # An offset finds its bytes: the file's base plus the position inside it.
    data = whole(files)
    assert len(data) == files[-1].end
    for item in files:
        first = Path(item.path).read_bytes().split(b"\n")[0]
        assert data[item.base : item.base + len(first)] == first
        assert read_base(item.path) == item.base


def test_offsets_survive_compression_and_retention(tmp_path: Path) -> None:
    compressor = Compressor()
    compressor.start()
    values = {
        "logdir": str(tmp_path / "logs"),
        "timezone": "utc",
        "maxbytes": "2KB",
        "backups": "3",
        "compress": "true",
    }
    cap = Capture(
        from_mapping(values, here=str(tmp_path), environ={}),
        clock=lambda: 1.0e9,
        compressor=compressor,
    )
    for n in range(300):
        cap.log("app", "app", "stdout", 1, b"line %03d\n" % n)
    assert compressor.wait_idle(30)
    cap.close()
    compressor.stop()
    files = process_files(str(tmp_path / "logs" / "app.log"))
    assert [f.compressed for f in files] == [True, True, True, False]
    assert files[0].base > 0  # older files were removed, their bytes still counted
    for before, after in zip(files, files[1:]):
        assert after.base == before.end


def test_header_is_bookkeeping() -> None:
    assert is_header("status", b"STREAMLOG file offset=12")
    assert not is_header("stdout", b"STREAMLOG file offset=12")
    assert not is_header("status", b"STREAMLOG dropped bytes=1")


def test_a_record_larger_than_maxbytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    # With the header in every file, "an empty file" is one holding only its
    # header: rotating again would never make room (a regression: it looped).
    for fmt, line in (("text", b"x" * 3000), ("json", b"\x01" * 3000)):
        cap = make(tmp_path / fmt, maxbytes="1KB", format=fmt)
        cap.log("app", "app", "stdout", 1, b"before\n" + line + b"\nafter\n")
        cap.close()
        files = process_files(str(tmp_path / fmt / "logs" / "app.log"))
        assert 2 <= len(files) <= 4
        data = whole(files)
        assert data.count(b"\n") == 3 + len(files)  # three records and one header per file
        assert b"before" in data and b"after" in data


def test_timestamps_never_go_backwards_in_a_file(tmp_path: Path) -> None:
    ticks = iter(range(10**9, 10**9 + 100_000))
    values = {
        "logdir": str(tmp_path / "logs"),
        "timezone": "utc",
        "maxbytes": "2KB",
        "backups": "100",
    }
    cap = Capture(
        from_mapping(values, here=str(tmp_path), environ={}), clock=lambda: float(next(ticks))
    )
    cap.state("app", "app", "STARTING", 0, {})
    for n in range(200):
        cap.log("app", "app", "stdout", 1, b"line %03d\n" % n)
    cap.close()
    for item in process_files(str(tmp_path / "logs" / "app.log")):
        times = [line.split(b" ", 1)[0] for line in Path(item.path).read_bytes().splitlines()]
        assert times == sorted(times), item.path


# ---------------------------------------------------------------- the listing rule
#
# ondisk/files.py says which files make up a process's log while the writer
# rotates and compresses under the reader.  These tests run the real writer
# one file operation at a time and look at every state it passes through.


class Stepped:
    """The writer's file operations (renames, removals, the new live file and its
    header), one at a time, each when the test lets it: ``step()`` from the test
    thread while :meth:`run` does the work on another."""

    def __init__(self) -> None:
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.finished = False
        self.ops: List[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)  # everything else: the real os module

    def _step(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        self.go.acquire()
        try:
            self.ops.append(what)
            return call(*args)
        finally:
            self.done.release()

    def replace(self, src: str, dst: str) -> None:
        self._step(f"replace {Path(src).name} {Path(dst).name}", os.replace, src, dst)

    def unlink(self, name: str) -> None:
        self._step(f"unlink {Path(name).name}", os.unlink, name)

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        return int(self._step(f"open {Path(name).name}", os.open, name, flags, mode))

    def write(self, fd: int, data: bytes) -> int:
        return int(self._step("write", os.write, fd, data))

    def run(self, work: Callable[[], None]) -> threading.Thread:
        def main() -> None:
            try:
                work()
            finally:
                self.finished = True
                self.done.release()

        thread = threading.Thread(target=main)
        thread.start()
        return thread

    def step(self) -> bool:
        """Let the writer take its next step; False once it has finished."""
        if self.finished:
            return False
        taken = len(self.ops)
        self.go.release()
        self.done.acquire()
        return len(self.ops) > taken


def contents(item: LogFile) -> bytes:
    data = Path(item.path).read_bytes()
    return gzip.decompress(data) if item.compressed else data


def backups_in_all_states(tmp_path: Path) -> Tuple[Capture, Compressor, str]:
    """A log of a live file and eight backups: .1 and .2 plain, older ones .gz."""
    compressor = Compressor()  # not started: the test compresses, when it wants
    cap = make(tmp_path, compressor, backups="50", compress="true")
    n = 0
    live = str(tmp_path / "logs" / "app.log")
    while not os.path.exists(live + ".8"):
        cap.log("app", "app", "stdout", 1, b"line %04d %s\n" % (n, b"x" * (n % 50)))
        n += 1
    writer = cap.processes[("app", "app")].writer  # type: ignore[union-attr]
    for index in range(3, 9):
        st = os.stat(f"{live}.{index}")
        compressor.compress(writer, f"{st.st_dev}:{st.st_ino}")
    return cap, compressor, live


def rotate_and_compress(cap: Capture, compressor: Compressor, live: str) -> Callable[[], None]:
    """One rotation, then .1 (the old live file) and .2 compressed, as the writer does it."""
    writer = cap.processes[("app", "app")].writer  # type: ignore[union-attr]
    inodes = [os.stat(name) for name in (live, live + ".1")]

    def work() -> None:
        writer.rotate()
        for st in inodes:
            compressor.compress(writer, f"{st.st_dev}:{st.st_ino}")

    return work


def test_the_fixture_has_every_kind_of_file(tmp_path: Path) -> None:
    cap, _, live = backups_in_all_states(tmp_path)
    cap.close()
    names = [Path(f.path).name for f in process_files(live)]
    assert names == [f"app.log.{k}.gz" for k in range(8, 2, -1)] + [
        "app.log.2",
        "app.log.1",
        "app.log",
    ]


def test_every_state_of_a_rotation_and_compression_lists_each_byte_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap, compressor, live = backups_in_all_states(tmp_path)
    whole = b"".join(contents(f) for f in process_files(live))
    stepped = Stepped()
    monkeypatch.setattr(writer_module, "os", stepped)
    monkeypatch.setattr(compressor_module, "os", stepped)
    thread = stepped.run(rotate_and_compress(cap, compressor, live))
    states = 0
    try:
        while True:
            files = process_files(live)
            states += 1
            # Oldest first, each file beginning where the one before it ends:
            # every byte range once, none left out, in order.
            assert files[0].base == 0
            assert contiguous(files), (stepped.ops, files)
            assert files[-1].end >= len(whole)
            for item in files:
                assert contents(item)[: len(whole) - item.base] == whole[item.base : item.end]
            assert not any(f.path.endswith(".tmp") for f in files)
            if not stepped.step():
                break
    finally:
        while stepped.step():
            pass
        thread.join()
    cap.close()
    # The states the rule is written for were all met.
    assert states == len(stepped.ops) + 1 > 10
    ops = " / ".join(stepped.ops)
    assert "replace app.log app.log.1" in ops  # no live file until the next op
    assert "open app.log / write" in ops  # a live file without its header
    assert "replace app.log.2 app.log.3" in ops  # a hole at .2
    assert "replace app.log.1.gz.tmp app.log.1.gz / unlink app.log.1" in ops  # both


@pytest.mark.parametrize("ops_per_look", [1, 2, 3])
def test_a_walk_racing_the_writer_meets_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ops_per_look: int
) -> None:
    """Whatever the writer does between two looks, a walk misses no file (rule 1)."""
    template = tmp_path / "template"
    cap, compressor, live = backups_in_all_states(template)
    cap.close()
    stepped = Stepped()
    for phase in range(40):  # the walk starts after ``phase`` writer steps
        root = tmp_path / f"phase{phase}"
        shutil.copytree(template, root)
        cap = make(root, compressor, backups="50", compress="true")
        live = str(root / "logs" / "app.log")
        cap.log("app", "app", "stdout", 1, b"one more\n")  # opens the writer
        end = process_files(live)[-1].end
        stepped = Stepped()
        monkeypatch.setattr(writer_module, "os", stepped)
        monkeypatch.setattr(compressor_module, "os", stepped)
        thread = stepped.run(rotate_and_compress(cap, compressor, live))
        real_stat = files_module._stat

        def look(name: str, stepped: Stepped = stepped, real: Any = real_stat) -> Any:
            for _ in range(ops_per_look):
                stepped.step()  # the writer moves on between any two looks
            return real(name)

        try:
            for _ in range(phase):
                stepped.step()
            monkeypatch.setattr(files_module, "_stat", look)
            met = ProcessFiles(live).probe()
            monkeypatch.setattr(files_module, "_stat", real_stat)
        finally:
            while stepped.step():
                pass
            thread.join()
        monkeypatch.setattr(writer_module, "os", os)
        monkeypatch.setattr(compressor_module, "os", os)
        cap.close()
        # A file may be met twice (renamed, or compressed, between two looks):
        # as one range.  Every byte of the log before the rotation is in one.
        ranges = sorted({(f.base, f.end) for f in met})
        assert ranges[0][0] == 0, (phase, met)
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])), (
            phase,
            [(Path(f.path).name, f.base, f.end) for f in met],
            stepped.ops,
        )
        assert ranges[-1][1] >= end
        assert [f.base for f in met] == sorted(f.base for f in met)  # in order
        if not stepped.ops[phase:]:
            break  # the walk started after the writer was done: every phase seen
    assert phase > 10


def test_names_that_do_not_count_and_holes(tmp_path: Path) -> None:
    cap = make(tmp_path)
    for n in range(1000):
        cap.log("app", "app", "stdout", 1, b"line %03d\n" % n)
    cap.close()
    live = str(tmp_path / "logs" / "app.log")
    files = process_files(live)
    assert len(files) > 7
    # The compressor's temporary file never counts; .k and .k.gz together are one
    # file (the .gz: complete once it has its name).
    Path(live + ".2.gz.tmp").write_bytes(b"half a gzip")
    Path(live + ".3.gz").write_bytes(gzip.compress(Path(live + ".3").read_bytes()))
    assert [(f.base, f.end) for f in process_files(live)] == [(f.base, f.end) for f in files]
    assert [f.path for f in process_files(live)][-4] == live + ".3.gz"
    os.unlink(live + ".3")
    assert [(f.base, f.end) for f in process_files(live)] == [(f.base, f.end) for f in files]
    # A hole of up to two indexes is passed over; three end the walk.
    newest = [f.path for f in files][-1:-4:-1]  # live, .1, .2
    os.unlink(live + ".4")
    os.unlink(live + ".5")
    listed = process_files(live)
    assert [f.base for f in listed][-3:] == [f.base for f in files][-3:]
    assert {f.path for f in listed} >= {live + ".6", *newest}
    os.unlink(live + ".6")
    assert [f.path for f in process_files(live)] == [live + ".3.gz", *reversed(newest)]


# ---------------------------------------------------------------- the gzip reader

GZ_CONTENTS = b"".join(b"%06d some log line of a child\n" % n for n in range(20_000))


def gz_kinds() -> List[Tuple[str, bytes, bytes]]:
    """(what, gzip data, the contents it gives): one member, members one after
    another, truncated, damaged, garbage after the last member, empty."""
    one = gzip.compress(GZ_CONTENTS)
    half = len(GZ_CONTENTS) // 2
    two = gzip.compress(GZ_CONTENTS[:half]) + gzip.compress(GZ_CONTENTS[half:])
    cut = one[: len(one) // 2]
    damaged = bytearray(one)
    damaged[len(one) // 2] ^= 0xFF
    return [
        ("one member", one, GZ_CONTENTS),
        ("two members", two, GZ_CONTENTS),
        ("truncated", cut, gunzip(cut)),
        ("damaged", bytes(damaged), b""),  # see below
        ("garbage after", one + b"\x00" * 100, GZ_CONTENTS),
        ("empty", b"", b""),
    ]


def test_inflate_reads_members_and_keeps_what_a_damaged_file_gives() -> None:
    """The one gzip reader: any cut of the input into pieces gives the same
    contents; damage or truncation gives what came before it, never an exception."""
    for what, raw, contents in gz_kinds():
        if what == "damaged":
            continue
        assert gunzip(raw) == contents, what
        for size in (1, 7, 4096, len(raw) or 1):
            pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
            assert b"".join(inflate(pieces)) == contents, (what, size)
        for limit in (1, 100, len(contents) // 3 or 1):
            assert gunzip(raw, limit) == contents[:limit], (what, limit)
    truncated = gz_kinds()[2][2]
    assert 0 < len(truncated) < len(GZ_CONTENTS) and GZ_CONTENTS.startswith(truncated)
    # Damaged: what decompressed before the damage was met (how much depends on
    # the pieces: a piece fed whole is lost with its damage), never an exception.
    damaged = gz_kinds()[3][1]
    for size in (1, 4096, len(damaged)):
        pieces = [damaged[i : i + size] for i in range(0, len(damaged), size)]
        got = b"".join(inflate(pieces))
        assert len(got) < len(GZ_CONTENTS) and GZ_CONTENTS.startswith(got[:1000]), size
    assert gunzip(b"not gzip at all") == b""


def test_a_gzip_stream_reads_a_file_forward_in_bounded_pieces(tmp_path: Path) -> None:
    for what, raw, contents in gz_kinds():
        if what == "damaged":
            continue
        path = tmp_path / "x.gz"
        path.write_bytes(raw)
        for chunk, size in ((64, 1000), (1 << 20, -1), (100, 1)):
            if size == 1 and len(contents) > 5000:
                contents = contents[:5000]
            stream = GzipStream(os.open(path, os.O_RDONLY), chunk)
            got: List[bytes] = []
            while len(b"".join(got)) < len(contents):
                piece = stream.read(size)
                assert piece, what
                assert size < 0 or len(piece) <= size
                got.append(piece)
            assert b"".join(got) == contents, (what, chunk, size)
            if size < 0:
                assert stream.read() == b"" and stream.read(10) == b""
                assert stream.compressed == len(raw)
            stream.close()
            stream.close()  # twice: harmless


def test_a_gzip_stream_holds_a_piece_of_a_file_that_expands_a_thousandfold(
    tmp_path: Path,
) -> None:
    """An export or a scan of a very repetitive backup: a read of the next piece as it
    comes (size -1) is still at most PIECE bytes, whatever one compressed read holds."""
    contents = b"2026-12-07T00:00:00.000000+00:00 stdout " + b"a" * 60 + b"\n"
    contents *= 200_000  # 20 MB that gzip makes ~60 KB
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(contents))
    stream = GzipStream(os.open(path, os.O_RDONLY), chunk=1 << 20)
    got: List[bytes] = []
    while True:
        piece = stream.read()
        if not piece:
            break
        assert len(piece) <= PIECE
        got.append(piece)
    stream.close()
    assert b"".join(got) == contents and stream.complete


def drive(contents: Any) -> Tuple[bytes, bool]:
    """All an :func:`inflate` generator gives, and the value it returns."""
    got: List[bytes] = []
    while True:
        try:
            got.append(next(contents))
        except StopIteration as end:
            return b"".join(got), end.value


def test_inflate_says_whether_the_data_ended_cleanly_and_bounds_its_pieces() -> None:
    """What the follower tells a damaged backup by: the value inflate returns is
    True only for data read to a clean end; ``piece`` bounds every piece and,
    as zlib drops a call's output with its damage, keeps what came before it."""
    clean = {"one member": True, "two members": True, "empty": True}
    for what, raw, contents in gz_kinds():
        for size in (7, 4096, len(raw) or 1):
            pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
            got, ended = drive(inflate(pieces))
            assert ended is clean.get(what, False), (what, size)
            if what != "damaged":
                assert got == contents, (what, size)
        for piece in (1, 1000, 65536):
            out = list(inflate((raw,), piece=piece))
            assert all(0 < len(one) <= piece for one in out), (what, piece)
            if what != "damaged":
                assert b"".join(out) == contents, (what, piece)
        assert drive(inflate((raw,), 100))[1] is (what == "empty")  # stopped at the limit
    # A wrong checksum is met in the call that gives the last bytes: bounded
    # pieces keep all but the last one; a whole piece would lose everything.
    bad = bytearray(gzip.compress(GZ_CONTENTS))
    bad[-6] ^= 1
    assert drive(inflate((bytes(bad),))) == (b"", False)
    got, ended = drive(inflate((bytes(bad),), piece=4096))
    assert not ended and len(GZ_CONTENTS) - 4096 <= len(got) < len(GZ_CONTENTS)
    assert GZ_CONTENTS.startswith(got)
    # Output held back by the bound with no input left is given all the same.
    runs = gzip.compress(b"a" * 3_000_000 + b"end")
    for cut in range(10, len(runs), 97):
        got, ended = drive(inflate((runs[:cut], runs[cut:]), piece=65536))
        assert ended and len(got) == 3_000_003, cut


def test_a_gzip_stream_says_how_it_ended_and_rewinds(tmp_path: Path) -> None:
    for what, raw, contents in gz_kinds():
        path = tmp_path / "x.gz"
        path.write_bytes(raw)
        stream = GzipStream(os.open(path, os.O_RDONLY), 100, piece=500)
        first = stream.read(10)
        assert first == contents[:10] or what == "damaged"
        assert stream.complete is None or not first  # not at the end yet
        rest = [first]
        while True:
            piece = stream.read()
            assert len(piece) <= 500
            if not piece:
                break
            rest.append(piece)
        assert stream.complete is (what in ("one member", "two members", "empty")), what
        assert stream.read() == b"" and stream.complete is not None  # stays as it was
        got = b"".join(rest)
        assert got == contents or what == "damaged"
        stream.rewind()
        assert stream.complete is None and stream.compressed == 0
        again = b"".join(iter(stream.read, b""))
        assert again == got and stream.complete is not None
        stream.close()


def test_open_listed_opens_only_the_file_listed(tmp_path: Path) -> None:
    """A listed file opens while it is the one listed (device and inode); a
    name that holds another file now, or nothing, gives None."""
    path = tmp_path / "web.log.1"
    path.write_bytes(b"contents\n" * 10_000)
    st = os.stat(path)
    listed = LogFile(str(path), 0, st.st_size, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    fd = open_listed(listed)
    assert fd is not None
    try:
        assert read_whole(fd) == path.read_bytes()
        os.lseek(fd, 5, os.SEEK_SET)
        assert read_whole(fd) == path.read_bytes()  # whatever the position
    finally:
        os.close(fd)
    os.rename(path, tmp_path / "web.log.2")
    assert open_listed(listed) is None  # gone from its name
    path.write_bytes(b"another file\n")
    assert open_listed(listed) is None  # its name holds another file now
    moved = LogFile(str(tmp_path / "web.log.2"), 0, st.st_size, listed.key)
    fd = open_listed(moved)
    assert fd is not None  # the same file under its new name
    os.close(fd)
    path.unlink()
    empty_dir = tmp_path / "dir"
    empty_dir.mkdir()
    empty = LogFile(str(empty_dir / "nothing"), 0, 0, (0, 0, 0, 0))
    assert open_listed(empty) is None
