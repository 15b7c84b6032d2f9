"""supervisord's own child logs (uncaptured processes): lanes, pages, rotation, counting."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Tuple

from supervisor_streamlog.logread import rawstore
from supervisor_streamlog.logread.rawfollow import RawFollower
from supervisor_streamlog.logread.rawstore import (
    LANE,
    RawFile,
    RawStore,
    pack,
    raw_files,
    span,
    unpack,
)
from supervisor_streamlog.ondisk.files import Entry


def lanes(tmp_path: Path) -> List[RawFile]:
    return [RawFile("stdout", str(tmp_path / "a.out")), RawFile("stderr", str(tmp_path / "a.err"))]


def write(path: Path, lines: List[bytes]) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


def fill(tmp_path: Path, count: int) -> None:
    write(tmp_path / "a.out", [b"out %05d" % n for n in range(count)])
    write(tmp_path / "a.err", [b"err %05d" % n for n in range(0, count, 3)])


def test_offsets_pack_two_lanes_exactly_below_2_53() -> None:
    assert unpack(pack((LANE - 1, 2**27 - 1))) == (LANE - 1, 2**27 - 1)
    assert pack((LANE - 1, 2**27 - 1)) < 2**53
    assert span(pack((10, 5)), pack((30, 9))) == 24


def every_page_forward(store: RawStore, limit: int) -> List[Entry]:
    """Every entry, paging forward from the start ``limit`` at a time."""
    found: List[Entry] = []
    cursor = None
    while True:
        page = store.read_forward(cursor, limit)
        found += page.entries
        if not page.has_after:
            return found
        assert page.entries and page.end != cursor  # never stuck
        cursor = page.end


def every_page_backward(store: RawStore, limit: int) -> List[Entry]:
    """Every entry, paging backward from the end ``limit`` at a time (and it ends)."""
    found: List[Entry] = []
    end = None
    for _ in range(10_000):
        page = store.read_backward(end, limit)
        found = page.entries + found
        if not page.has_before:
            return found
        end = page.start
    raise AssertionError("paging backward never reached the start")


def test_pages_cover_every_line_once_both_ways(tmp_path: Path) -> None:
    fill(tmp_path, 1000)
    store = RawStore(lanes(tmp_path))
    forward = every_page_forward(store, 77)
    backward = every_page_backward(store, 64)
    for entries in (forward, backward):
        assert [e.record.data for e in entries if e.record.stream == "stdout"] == [
            b"out %05d" % n for n in range(1000)
        ]
        assert [e.record.data for e in entries if e.record.stream == "stderr"] == [
            b"err %05d" % n for n in range(0, 1000, 3)
        ]
        assert all(a.end == b.offset for a, b in zip(entries, entries[1:]))
        assert entries[0].offset == 0 and entries[-1].end == store.bounds()[1]
        assert all(e.record.time == "" for e in entries)
    # Bounded per lane (what a catch-up asks for): nothing past either lane's limit.
    limit = pack((unpack(forward[500].end)[0], 30))
    page = store.read_forward(0, 10_000, until=limit)
    assert all(unpack(e.end)[0] <= unpack(limit)[0] for e in page.entries)
    assert all(unpack(e.end)[1] <= 30 for e in page.entries)


def test_export_of_a_range_holds_the_records_of_that_range_lane_by_lane(
    tmp_path: Path,
) -> None:
    fill(tmp_path, 300)
    store = RawStore(lanes(tmp_path))
    whole = b"".join(store.export())
    assert whole == (tmp_path / "a.out").read_bytes() + (tmp_path / "a.err").read_bytes()
    entries = every_page_forward(store, 50)
    some = entries[40:90]
    part = b"".join(store.export(some[0].offset, some[-1].end))

    def by_lane(chosen: List[Entry]) -> bytes:
        return b"".join(
            e.record.data + b"\n"
            for stream in ("stdout", "stderr")
            for e in chosen
            if e.record.stream == stream
        )

    assert part == by_lane(some)
    assert b"".join(store.export(some[-1].end, None)) == by_lane(entries[90:])


def test_search_both_lanes(tmp_path: Path) -> None:
    fill(tmp_path, 300)
    store = RawStore(lanes(tmp_path))
    found = store.search("00042")
    assert sorted(e.record.data for e in found.entries) == [b"err 00042", b"out 00042"]
    assert found.complete and found.next is None


class Watched:
    """A follower of some lanes, with what it delivered, reset and counted."""

    def __init__(self, files: List[RawFile]) -> None:
        self.got: List[Entry] = []
        self.resets: List[int] = []
        self.counted: List[Tuple[int, int, int]] = []
        self.wanted = [True]  # set wanted[0] to False: nobody subscribed
        self.follower = RawFollower(
            files,
            self.got.extend,
            self.resets.append,
            lambda: self.wanted[0],
            lambda start, end, lines: self.counted.append((start, end, lines)),
        )


def test_follower_reads_a_rotated_file_to_its_end_then_resets(tmp_path: Path) -> None:
    fill(tmp_path, 10)
    watched = Watched(lanes(tmp_path))
    follower, got, resets, counted, wanted = (
        watched.follower,
        watched.got,
        watched.resets,
        watched.counted,
        watched.wanted,
    )
    start = follower.position
    assert unpack(start) == (
        os.path.getsize(tmp_path / "a.out"),
        os.path.getsize(tmp_path / "a.err"),
    )
    write(tmp_path / "a.out", [b"late 1", b"late 2"])
    write(tmp_path / "a.err", [b"late err"])
    follower.poll()
    assert [e.record.data for e in got] == [b"late 1", b"late 2", b"late err"]
    assert got[0].offset == start and all(a.end == b.offset for a, b in zip(got, got[1:]))
    # supervisord's rotation: written to, renamed away, a new file opened.
    write(tmp_path / "a.out", [b"last of old"])
    os.rename(tmp_path / "a.out", tmp_path / "a.out.1")
    write(tmp_path / "a.out", [b"first of new"])
    for _ in range(3):
        follower.poll()
    assert [e.record.data for e in got[3:]] == [b"last of old", b"first of new"]
    assert len(resets) == 1 and unpack(resets[0])[0] == 0
    assert got[-1].offset == resets[0]
    # Nobody subscribed: counted, not parsed; the position moves all the same.
    wanted[0] = False
    write(tmp_path / "a.out", [b"x"] * 5)
    follower.poll()
    assert counted == [(got[-1].end, got[-1].end + 10, 5)] and follower.position == got[-1].end + 10


def test_lanes_of_a_process_info() -> None:
    info = {"stdout_logfile": "/var/log/x.out", "stderr_logfile": "/var/log/x.out"}
    files = raw_files(info)
    assert [(f.stream, f.path) for f in files] == [("stdout", "/var/log/x.out"), ("stderr", "")]
    assert raw_files({"stdout_logfile": "", "stderr_logfile": ""}) == []
    assert RawFile("stdout", "/dev/null").open() is None  # not a regular file


def test_a_file_past_the_lane_width_is_seen_from_later_on(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(rawstore, "LANE", 1024)
    got: List[Entry] = []
    resets: List[int] = []
    files = lanes(tmp_path)
    follower = RawFollower(files, got.extend, resets.append, lambda: True, lambda *a: None)
    for n in range(300):
        write(tmp_path / "a.out", [b"out %05d" % n])
        follower.poll()
    assert resets and all(unpack(e.end)[0] <= 1024 for e in got)
    numbers = [int(e.record.data[4:]) for e in got]
    assert numbers == list(range(300))  # live, nothing lost when the lane moved on
    page = RawStore(files).read_backward(None, 5)
    assert [e.record.data for e in page.entries] == [b"out %05d" % n for n in range(295, 300)]


def test_a_truncated_file_past_the_lane_width_starts_again_at_its_start(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # stdout_logfile_maxbytes = 0 and logrotate's copytruncate: a big file cut to 0.
    monkeypatch.setattr(rawstore, "LANE", 1024)
    write(tmp_path / "a.out", [b"old %05d" % n for n in range(500)])
    got: List[Entry] = []
    resets: List[int] = []
    files = lanes(tmp_path)
    follower = RawFollower(files, got.extend, resets.append, lambda: True, lambda *a: None)
    assert files[0].base > 0
    os.truncate(tmp_path / "a.out", 0)
    write(tmp_path / "a.out", [b"after 1", b"after 2"])
    for _ in range(5):
        follower.poll()
    assert [e.record.data for e in got] == [b"after 1", b"after 2"]
    assert resets == [0] and files[0].base == 0
    assert got[0].offset == 0 and got[-1].end == 16
    assert [e.record.data for e in RawStore(files).read_backward(None, 5).entries] == [
        b"after 1",
        b"after 2",
    ]


def test_the_unfinished_line_of_a_rotated_file_is_sent_as_partial(tmp_path: Path) -> None:
    watched = Watched(lanes(tmp_path))
    follower, got, resets, counted, wanted = (
        watched.follower,
        watched.got,
        watched.resets,
        watched.counted,
        watched.wanted,
    )
    out = tmp_path / "a.out"
    with open(out, "ab") as handle:
        handle.write(b"one\ntwo\nthe first half of a line cut by rotat")
    follower.poll()
    # supervisord's rollover cut the line (supervisor issue 749).
    os.rename(out, tmp_path / "a.out.1")
    out.write_bytes(b"ion, its second half\nthree\n")
    for _ in range(3):
        follower.poll()
    assert [(e.record.data, e.record.partial) for e in got] == [
        (b"one", False),
        (b"two", False),
        (b"the first half of a line cut by rotat", True),
        (b"ion, its second half", False),
        (b"three", False),
    ]
    assert got[2].offset == got[1].end and got[2].end == got[2].offset + 37
    assert resets == [0] and got[3].offset == 0  # after the partial, the new file
    # Nobody subscribed: the unfinished line is counted as one record.
    wanted[0] = False
    with open(out, "ab") as handle:
        handle.write(b"cut")
    follower.poll()
    os.rename(out, tmp_path / "a.out.2")
    out.write_bytes(b"")
    for _ in range(2):
        follower.poll()
    assert counted == [(got[-1].end, got[-1].end + 3, 1)] and resets == [0, 0]


def test_only_regular_files_are_ever_opened(tmp_path: Path, monkeypatch: Any) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    regular = tmp_path / "a.out"
    regular.write_bytes(b"x\n")
    opened: List[Tuple[str, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        opened.append((str(path), flags))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(rawstore.os, "open", spy)
    for path in (str(fifo), "/dev/null", "/dev/tty", str(tmp_path), str(tmp_path / "none"), ""):
        assert RawFile("stdout", path).open() is None
    assert opened == []  # checked before, never opened: a FIFO or a device can block
    fd = RawFile("stdout", str(regular)).open()
    assert fd is not None
    os.close(fd)
    assert opened[0][0] == str(regular)
    assert opened[0][1] & os.O_NOCTTY and opened[0][1] & os.O_NONBLOCK


def follow_all(files: List[RawFile]) -> Tuple[RawFollower, List[Entry], List[Tuple[int, int, int]]]:
    got: List[Entry] = []
    counted: List[Tuple[int, int, int]] = []
    follower = RawFollower(
        files, got.extend, lambda position: None, lambda: True, lambda *a: counted.append(a)
    )
    return follower, got, counted


def joined(entries: List[Entry], stream: str = "stdout") -> bytes:
    """The bytes of a lane's entries: pieces joined, lines given back their newline."""
    return b"".join(
        e.record.data + (b"" if e.record.partial else b"\n")
        for e in entries
        if e.record.stream == stream
    )


def test_a_line_longer_than_a_read_comes_live_in_pieces(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(rawstore, "PIECE", 16)
    out = tmp_path / "a.out"
    out.write_bytes(b"before\n")
    follower, got, _ = follow_all(lanes(tmp_path))
    start = follower.position
    assert start == 7
    long = bytes(range(65, 65 + 26)) * 3  # 78 bytes, no newline yet
    with open(out, "ab") as handle:
        handle.write(long[:20])
    follower.poll()
    # Lane position 7: the first place it may be cut is 32, 25 bytes on: not there yet.
    assert got == []
    with open(out, "ab") as handle:
        handle.write(long[20:])
    for _ in range(6):
        follower.poll()
    # Cut at 32, 48, 64, 80: every piece as soon as it is there, nothing read twice.
    assert [(e.offset, e.end, e.record.partial) for e in got] == [
        (7, 32, True),
        (32, 48, True),
        (48, 64, True),
        (64, 80, True),
    ]
    assert follower.position == 80  # 5 bytes wait for more
    write(out, [b"", b"after 1", b"after 2"])  # the newline that ends it, then lines
    for _ in range(2):
        follower.poll()
    assert [e.record.data for e in got[4:]] == [long[73:], b"after 1", b"after 2"]
    assert not any(e.record.partial for e in got[4:])
    assert all(a.end == b.offset for a, b in zip(got, got[1:]))
    assert joined(got) == out.read_bytes()[start:]
    # History finds the same records.
    page = RawStore(lanes(tmp_path)).read_forward(start, 100)
    assert [(e.offset, e.end, e.record.data, e.record.partial) for e in page.entries] == [
        (e.offset, e.end, e.record.data, e.record.partial) for e in got
    ]


def test_pieces_of_a_line_are_counted_when_nobody_is_subscribed(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(rawstore, "PIECE", 16)
    files = lanes(tmp_path)
    (tmp_path / "a.out").write_bytes(b"")
    counted: List[Tuple[int, int, int]] = []
    follower = RawFollower(
        files, lambda e: None, lambda p: None, lambda: False, lambda *a: counted.append(a)
    )
    (tmp_path / "a.out").write_bytes(b"x" * 40)
    for _ in range(3):
        follower.poll()
    assert counted == [(0, 16, 1), (16, 32, 1)] and follower.position == 32


def key(e: Entry) -> Tuple[str, int, int, bytes, bool]:
    """A record by its own lane's positions (how lanes interleave is not compared)."""
    lane = 0 if e.record.stream == "stdout" else 1
    start, end = unpack(e.offset)[lane], unpack(e.end)[lane]
    return (e.record.stream, start, end, e.record.data, e.record.partial)


def random_log(seed: int, size: int, piece: int) -> bytes:
    """Lines of every length around the piece size, some of them unfinished at the end."""
    import random

    rng = random.Random(seed)
    lengths = [0, 1, piece - 1, piece, piece + 1, 2 * piece - 1, 2 * piece, 5 * piece + 3]
    parts = []
    total = 0
    while total < size:
        n = rng.choice(lengths + [rng.randrange(4 * piece)] * 4)
        parts.append(bytes(rng.choice(b"abcdefgh") for _ in range(n)) + b"\n")
        total += n + 1
    return b"".join(parts) + b"t" * rng.randrange(3 * piece)  # a line still being written


def test_live_and_history_cut_long_lines_alike_and_page_every_byte_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import random

    monkeypatch.setattr(rawstore, "PIECE", 16)
    for seed in range(8):
        for name in ("a.out", "a.err"):
            (tmp_path / name).write_bytes(b"")
        files = lanes(tmp_path)
        follower, live, _ = follow_all(files)
        logs = {
            name: random_log(seed * 2 + n, 1500, 16) for n, name in enumerate(("a.out", "a.err"))
        }
        # Written in random chunks, polled in between: the follower sees lines grow.
        rng = random.Random(seed)
        written = {name: 0 for name in logs}
        while any(written[name] < len(logs[name]) for name in logs):
            for name, data in logs.items():
                step = rng.randrange(1, 40)
                with open(tmp_path / name, "ab") as handle:
                    handle.write(data[written[name] : written[name] + step])
                written[name] = min(len(data), written[name] + step)
            follower.poll()
        for _ in range(200):
            if not follower.poll():
                break
        store = RawStore(files)
        assert store.bounds()[1] == follower.position  # history ends where live is
        # Forward from the start, pages of every size: each byte exactly once, and
        # the records live found.
        for limit in (1, 3, 50):
            forward = every_page_forward(store, limit)
            assert sorted(map(key, forward)) == sorted(map(key, live))
            for stream, name in (("stdout", "a.out"), ("stderr", "a.err")):
                assert joined(forward, stream) == logs[name][: len(joined(live, stream))]
            assert all(a.end == b.offset for a, b in zip(forward, forward[1:]))
            # Backward from the end: the same records, and it ends.
            backward = every_page_backward(store, limit)
            assert sorted(map(key, backward)) == sorted(map(key, forward))
            assert all(a.end == b.offset for a, b in zip(backward, backward[1:]))
        for name in logs:
            (tmp_path / name).unlink()


def test_a_cursor_inside_a_long_line_gets_the_rest_of_it(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(rawstore, "PIECE", 16)
    data = b"short\n" + b"L" * 70 + b"\nnext\n"
    (tmp_path / "a.out").write_bytes(data)
    store = RawStore(lanes(tmp_path))
    for cursor in range(len(data)):
        entries: List[Entry] = []
        position: Any = cursor
        while True:
            page = store.read_forward(position, 2)
            entries += page.entries
            if not page.has_after:
                break
            position = page.end
        assert entries[0].offset == cursor
        assert joined(entries) == data[cursor:]
    # Inside the long line (6 .. 76): a piece up to its next cut, then in step with live.
    page = store.read_forward(10, 3)
    assert [(e.offset, e.end, e.record.partial) for e in page.entries] == [
        (10, 32, True),
        (32, 48, True),
        (48, 64, True),
    ]
    page = store.read_forward(70, 3)
    assert [(e.offset, e.end, e.record.data) for e in page.entries] == [
        (70, 77, b"LLLLLL"),
        (77, 82, b"next"),
    ]


def test_a_huge_unfinished_line_is_paged_and_searched_in_bounded_reads(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(rawstore, "PIECE", 64)
    monkeypatch.setattr(rawstore, "_BLOCK", 64)
    monkeypatch.setattr(rawstore, "_READ", 64)
    data = b"first\n" + b"z" * 5000 + b"needle" + b"z" * 5000  # no newline at all after it
    (tmp_path / "a.out").write_bytes(data)
    reads: List[int] = []
    real_pread = os.pread

    def spy(fd: int, size: int, offset: int) -> bytes:
        reads.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(rawstore.os, "pread", spy)
    store = RawStore(lanes(tmp_path))
    end = store.bounds()[1]
    assert end == len(data) // 64 * 64  # the last piece that is there
    tail = store.read_backward(None, 3)
    assert [(e.offset, e.end, e.record.partial) for e in tail.entries] == [
        (end - 192, end - 128, True),
        (end - 128, end - 64, True),
        (end - 64, end, True),
    ]
    found = store.search("needle", backward=True)
    assert found.complete and len(found.entries) == 1 and b"needle" in found.entries[0].record.data
    assert store.search("zz", backward=False, limit=1000).complete
    assert max(reads) <= 4 * 64
    entries = every_page_backward(store, 7)
    assert joined(entries) == data[:end] and max(reads) <= 4 * 64
