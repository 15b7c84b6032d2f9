"""Offsets: every file the capture starts says where it begins in the process's whole log."""

from __future__ import annotations

import gzip
from pathlib import Path

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.capture.writer import Compressor
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.ondisk.files import is_header, process_files, read_base


def make(tmp_path: Path, **settings: str) -> Capture:
    values = {
        "logdir": str(tmp_path / "logs"),
        "timezone": "utc",
        "maxbytes": "2KB",
        "backups": "100",
    }
    values.update(settings)
    return Capture(from_mapping(values, here=str(tmp_path), environ={}), clock=lambda: 1.0e9)


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
