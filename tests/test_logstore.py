"""LogStore: paging, time jumps and search over files written by the real capture path."""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor_streamlog.logread.blocks import Vanished, opened
from supervisor_streamlog.logread.logstore import LogStore, Page, SearchResult
from supervisor_streamlog.logread.timeseek import parse_time_param
from supervisor_streamlog.ondisk.files import Entry, is_header, process_files
from supervisor_streamlog.ondisk.formats import parse

from .helpers import T0
from .logfile import Log, reference, time_of


def all_forward(store: LogStore, limit: int, start: Optional[int] = None) -> List[Entry]:
    entries: List[Entry] = []
    cursor = start
    while True:
        page = store.read_forward(cursor, limit)
        if entries and page.entries:
            # The cursor continues exactly, or the page says what is gone in between.
            gap = (entries[-1].end, page.entries[0].offset)
            assert gap[0] == gap[1] or page.missing == gap
        entries.extend(page.entries)
        if not page.has_after:
            return entries
        assert page.entries
        cursor = page.end


def all_backward(store: LogStore, limit: int) -> List[Entry]:
    entries: List[Entry] = []
    cursor = None
    while True:
        page = store.read_backward(cursor, limit)
        if entries and page.entries:
            gap = (page.entries[-1].end, entries[0].offset)
            assert gap[0] == gap[1] or page.missing == gap
        entries[:0] = page.entries
        if not page.has_before:
            return entries
        assert page.entries
        cursor = page.start


def search(store: LogStore, pattern: str, **options: Any) -> SearchResult:
    """A search whose results the test checks: no time budget in the way."""
    options.setdefault("budget", 60.0)
    return store.search(pattern, **options)


def chatter(log: Log, count: int, size: Callable[[int], int] = lambda n: n % 60) -> None:
    """Records of varied sizes on both streams, a few state changes between them."""
    for n in range(count):
        if n % 97 == 50:
            log.state("RUNNING")
        stream = "stderr" if n % 7 == 3 else "stdout"
        log.write(b"line %05d %s\n" % (n, b"x" * size(n)), stream)


@pytest.fixture(params=["plain", "gz"])
def rotated(request: Any, tmp_path: Path) -> Log:
    log = Log(tmp_path, compress="true" if request.param == "gz" else "false")
    chatter(log, 1500)
    log.close()
    return log


# ---------------------------------------------------------------- paging


def test_pages_cover_every_record_once_in_order(rotated: Log) -> None:
    store = LogStore(rotated.live)
    files = store.files()
    assert files == process_files(rotated.live)
    assert len(files) > 20
    if rotated.compressor is not None:
        assert all(f.compressed for f in files[:-1])
    expected = reference(rotated.live)
    assert store.bounds() == (0, files[-1].end)
    for limit in (1, 7, 50, 1000):
        assert all_forward(store, limit) == expected
        assert all_backward(store, limit) == expected
    assert {e.record.stream for e in expected} == {"stdout", "stderr", "status"}
    # Headers are entries too (the caller decides whether to show them).
    assert sum(is_header(e.record.stream, e.record.data) for e in expected) == len(files)


def test_cursors_continue_exactly(rotated: Log) -> None:
    store = LogStore(rotated.live)
    expected = reference(rotated.live)
    page = store.read_backward(None, 30)
    assert page.entries == expected[-30:]
    assert page.has_before and not page.has_after
    assert (page.start, page.end) == (expected[-30].offset, expected[-1].end)
    older = store.read_backward(page.start, 30)
    assert older.entries == expected[-60:-30]
    newer = store.read_forward(older.end, 30)
    assert newer.entries == page.entries
    # The first page of all.
    first = store.read_forward(None, 5)
    assert first.entries == expected[:5]
    assert not first.has_before and first.has_after and first.missing is None
    assert store.read_backward(first.start, 5).entries == []


def test_a_start_inside_a_record_resyncs(rotated: Log) -> None:
    store = LogStore(rotated.live)
    expected = reference(rotated.live)
    for index in (1, 2, 100, 555, len(expected) - 2):
        entry, following = expected[index], expected[index + 1]
        assert store.read_forward(entry.offset, 1).entries == [entry]
        for inside in (entry.offset + 1, entry.end - 1):
            page = store.read_forward(inside, 2)
            assert page.entries[0] == following
        # Backward: only records that end at or before the cursor.
        assert store.read_backward(entry.end, 1).entries == [entry]
        assert store.read_backward(entry.end - 1, 1).entries == [expected[index - 1]]


def test_beyond_the_end_and_empty(tmp_path: Path) -> None:
    missing = LogStore(str(tmp_path / "nothing.log"))
    assert missing.files() == []
    assert missing.bounds() == (0, 0)
    assert missing.read_forward(None, 10) == Page([], 0, 0, False, False)
    assert missing.read_backward(None, 10).entries == []
    assert missing.search("x").entries == []
    assert missing.seek_time(T0) == 0

    log = Log(tmp_path)
    chatter(log, 20)
    log.close()
    store = LogStore(log.live)
    end = store.bounds()[1]
    page = store.read_forward(end, 10)
    assert page.entries == [] and page.start == end and not page.has_after and page.has_before
    assert store.read_forward(end + 1000, 10).entries == []
    assert store.read_backward(end + 1000, 3).entries == reference(log.live)[-3:]
    assert store.read_forward(None, 0).entries == []


def test_missing_range_after_retention(tmp_path: Path) -> None:
    log = Log(tmp_path, backups="2")
    chatter(log, 600)
    log.close()
    store = LogStore(log.live)
    files = store.files()
    oldest = files[0].base
    assert len(files) == 3 and oldest > 0
    expected = reference(log.live)
    assert expected[0].offset == oldest

    page = store.read_forward(0, 5)
    assert page.missing == (0, oldest)
    assert page.entries == expected[:5]
    assert not page.has_before
    page = store.read_forward(oldest - 10, 5)
    assert page.missing == (oldest - 10, oldest)
    assert store.read_forward(None, 5).missing is None
    assert store.read_forward(oldest, 5).missing is None

    # Paging back reaches the oldest record and says what came before is gone.
    cursor = None
    while True:
        page = store.read_backward(cursor, 40)
        if not page.has_before:
            break
        assert page.missing is None
        cursor = page.start
    assert page.entries[0] == expected[0]
    assert page.missing == (0, oldest)
    empty = store.read_backward(10, 5)
    assert empty.entries == [] and empty.missing == (0, 10)
    assert all_forward(store, 33, start=0) == expected


def test_a_partially_written_last_record_is_not_returned(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="0")
    chatter(log, 50)
    log.close()
    store = LogStore(log.live)
    expected = reference(log.live)
    end = expected[-1].end
    with open(log.live, "ab") as handle:
        handle.write(b"2026-11-27T01:30:00.000000+00:00 stdout half a rec")
    assert store.bounds() == (0, end)
    assert store.read_backward(None, 3).entries == expected[-3:]
    assert store.read_forward(expected[-2].offset, 10).entries == expected[-2:]
    tail = store.read_forward(end, 10)
    assert tail.entries == [] and not tail.has_after
    assert search(store, "half a rec").entries == []
    assert store.seek_time(T0 + 10_000) == end
    with open(log.live, "ab") as handle:
        handle.write(b"ord\n")
    tail = store.read_forward(end, 10)
    assert [e.record.data for e in tail.entries] == [b"half a record"]
    assert store.bounds()[1] == os.path.getsize(log.live)


def test_unparseable_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    log = Log(tmp_path)
    chatter(log, 300)
    log.close()
    store = LogStore(log.live)
    expected = reference(log.live)
    # Overwrite one record of a backup, same length, so offsets stay true.
    victim = store.files()[2]
    data = Path(victim.path).read_bytes()
    lines = data.split(b"\n")
    lines[3] = b"#" * len(lines[3])
    Path(victim.path).write_bytes(b"\n".join(lines))
    broken = victim.base + sum(len(line) + 1 for line in lines[:3])
    survivors = [e for e in expected if e.offset != broken]
    assert len(survivors) == len(expected) - 1
    assert all_forward(store, 1000) == survivors
    page = store.read_forward(victim.base, 10)
    assert page.bad_lines == 1 and len(page.entries) == 10
    assert store.read_backward(page.end, 10).bad_lines == 1


# ---------------------------------------------------------------- hypothesis


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=120),
    limits=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8),
    maxbytes=st.sampled_from(["1KB", "3KB", "0"]),
)
def test_concatenated_pages_are_all_records(
    sizes: List[int], limits: List[int], maxbytes: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Log(Path(tmp), maxbytes=maxbytes, max_line_length="400")
        for n, size in enumerate(sizes):
            log.write(bytes([97 + n % 26]) * size + b"\n", "stderr" if n % 3 else "stdout")
        log.close()
        store = LogStore(log.live)
        expected = reference(log.live)

        def limit_at(n: int) -> int:
            return limits[n % len(limits)]

        got: List[Entry] = []
        cursor: Optional[int] = None
        for n in range(10_000):
            page = store.read_forward(cursor, limit_at(n))
            got.extend(page.entries)
            if not page.has_after:
                break
            cursor = page.end
        assert got == expected

        back: List[Entry] = []
        cursor = None
        for n in range(10_000):
            page = store.read_backward(cursor, limit_at(n))
            back[:0] = page.entries
            if not page.has_before:
                break
            cursor = page.start
        assert back == expected


# ---------------------------------------------------------------- time


@pytest.mark.parametrize("compress", ["false", "true"])
def test_seek_time_lands_on_the_first_record_at_or_after(tmp_path: Path, compress: str) -> None:
    log = Log(tmp_path, compress=compress)
    chatter(log, 800)
    log.close()
    store = LogStore(log.live)
    records = [e for e in reference(log.live) if not is_header(e.record.stream, e.record.data)]
    assert len(store.files()) > 15

    def first_at(when: float) -> int:
        return next((e.offset for e in records if time_of(e) >= when), store.bounds()[1])

    for index in (0, 1, 40, 41, 333, 500, 700, len(records) - 1):
        when = time_of(records[index])
        assert store.seek_time(when) == first_at(when) == records[index].offset
        assert store.seek_time(when - 0.1) == first_at(when - 0.1)
        assert store.seek_time(when + 0.1) == first_at(when + 0.1)
    # Every file's first record (the file is picked by it).
    for f in store.files():
        first = next(e for e in records if e.offset > f.base)
        assert store.seek_time(time_of(first)) == first.offset
    assert store.seek_time(0) == records[0].offset
    assert store.seek_time(T0 + 1e6) == store.bounds()[1]


def test_seek_time_with_clock_going_back_still_lands_near(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="0")
    for n in range(300):
        log.write(b"line %d\n" % n, step=-5.0 if n == 150 else 0.5)
    log.close()
    store = LogStore(log.live)
    records = [e for e in reference(log.live) if not is_header(e.record.stream, e.record.data)]
    found = store.seek_time(time_of(records[100]))
    assert store.read_forward(found, 1).entries[0].record.data.startswith(b"line ")


# ---------------------------------------------------------------- search


def texts(entries: List[Entry]) -> List[bytes]:
    return [e.record.data for e in entries]


@pytest.fixture
def searchable(tmp_path: Path) -> Log:
    log = Log(tmp_path, compress="true")
    for n in range(1200):
        if n % 100 == 0:
            log.state("RUNNING")
        text = b"request %04d ok" % n
        if n % 250 == 7:
            text = b"request %04d FAILED: Disk full \xc3\xa9t\xc3\xa9" % n
        if n == 999:
            text = b"binary \xff\xfe needle-bytes"
        log.write(text + b"\n")
    log.close()
    return log


def test_search_substring_newest_first_and_paged(searchable: Log) -> None:
    store = LogStore(searchable.live)
    result = search(store, "FAILED")
    assert result.complete and result.next is None
    assert [e.record.data[:12] for e in result.entries] == [
        b"request 1007",
        b"request 0757",
        b"request 0507",
        b"request 0257",
        b"request 0007",
    ]
    assert result.scanned_bytes == store.bounds()[1]
    # Limit, then continue from ``next``.
    first = search(store, "FAILED", limit=2)
    assert first.complete and first.next == first.entries[-1].offset
    rest = search(store, "FAILED", limit=10, start=first.next)
    assert rest.entries == result.entries[2:]
    # Forward: oldest first.
    forward = search(store, "FAILED", backward=False, limit=3)
    assert forward.entries == result.entries[::-1][:3]
    assert forward.next == forward.entries[-1].end
    assert (
        search(store, "FAILED", backward=False, start=forward.next).entries
        == (result.entries[::-1][3:])
    )
    # Non-ASCII and non-UTF-8 text.
    assert len(search(store, "été").entries) == 5
    assert texts(search(store, "needle-bytes").entries) == [b"binary \xff\xfe needle-bytes"]
    assert search(store, "no such text").entries == []
    assert search(store, "two\nlines").entries == []


def test_search_regex_and_ignore_case(searchable: Log) -> None:
    store = LogStore(searchable.live)
    failed = search(store, "FAILED").entries
    assert search(store, "failed", ignore_case=True).entries == failed
    assert search(store, "ÉTÉ", ignore_case=True).entries == failed
    assert search(store, r"FAIL\w+: disk", regex=True, ignore_case=True).entries == failed
    assert search(store, r"request \d+7 FAILED", regex=True).entries == failed
    # Anchors apply to the record's text, not the line.
    assert search(store, r"^request 0007", regex=True).entries == failed[-1:]
    assert search(store, r"ok$", regex=True, limit=3).entries[0].record.data == b"request 1199 ok"
    assert search(store, r"^2026", regex=True).entries == []
    assert search(store, r"(?<=request )1007", regex=True).entries == failed[:1]
    assert search(store, r"\xff", regex=True).entries == []
    assert (
        search(store, r"binary \ufffd\ufffd", regex=True)
        .entries[0]
        .record.data.startswith(b"binary")
    )
    assert len(search(store, r"[^o]k$", regex=True, limit=5000).entries) == 0
    # Status records match on their text; file headers never do.
    assert len(search(store, "RUNNING", limit=5000).entries) == 12
    assert search(store, "STREAMLOG").entries == []
    assert search(store, "offset=", regex=True).entries == []


def test_bad_regex_is_a_value_error(searchable: Log) -> None:
    store = LogStore(searchable.live)
    with pytest.raises(ValueError, match=r"bad regular expression '\(unclosed'"):
        search(store, "(unclosed", regex=True)
    assert search(store, "(unclosed").entries == []  # fine as a substring


def test_search_budget_stops_with_a_usable_next(searchable: Log) -> None:
    store = LogStore(searchable.live)
    everything = search(store, "request", limit=100_000)
    assert everything.complete and len(everything.entries) == 1199  # one is binary
    for backward in (True, False):
        found: List[Entry] = []
        cursor: Optional[int] = None
        calls = 0
        while True:
            result = search(
                store, "request", limit=100_000, budget=0.0, start=cursor, backward=backward
            )
            calls += 1
            found.extend(result.entries)
            if result.next is None:
                assert result.complete
                break
            assert not result.complete
            cursor = result.next
        assert calls > 10
        assert found == (everything.entries if backward else everything.entries[::-1])


# ---------------------------------------------------------------- JSON lines


def test_json_format_pages_and_search(tmp_path: Path) -> None:
    log = Log(tmp_path, format="json")
    for n in range(400):
        log.write(b'said "hi" \\ %d\n' % n if n % 50 == 0 else b"plain %d\n" % n)
    log.write(b"bad \xff utf8\n")
    log.close()
    store = LogStore(log.live)
    expected = reference(log.live)
    assert len(store.files()) > 5
    assert all_forward(store, 17) == expected
    assert all_backward(store, 23) == expected
    quoted = search(store, 'said "hi" \\', limit=100)
    assert len(quoted.entries) == 8
    assert quoted.entries[0].record.data == b'said "hi" \\ 350'
    assert len(search(store, r'^said "hi"', regex=True).entries) == 8
    assert texts(search(store, "bad \xff", limit=1).entries) == []
    assert texts(search(store, "bad \ufffd utf8").entries) == []  # bytes match the bytes
    assert texts(search(store, "bad \ufffd utf8", regex=True).entries) == [b"bad \xff utf8"]
    records = [e for e in expected if not is_header(e.record.stream, e.record.data)]
    assert store.seek_time(time_of(records[200])) == records[200].offset


# ---------------------------------------------------------------- cost


def test_reading_back_a_big_file_reads_a_bounded_amount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log(tmp_path, maxbytes="0")
    line = b"x" * 90 + b"\n"
    for n in range(200):
        log.write(b"%08d " % n + line * 1000, step=0.01)
    log.close()
    size = os.path.getsize(log.live)
    assert size > 20_000_000
    reads: List[int] = []
    real_pread = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        reads.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting)
    store = LogStore(log.live)
    page = store.read_backward(None, 200)
    assert len(page.entries) == 200 and page.end == size
    assert sum(reads) < 200_000
    assert store.bytes_read == sum(reads)

    reads.clear()
    page = store.read_forward(size // 2, 200)
    assert len(page.entries) == 200
    assert sum(reads) < 200_000

    reads.clear()
    middle = page.entries[0]
    assert store.seek_time(time_of(middle)) <= middle.offset
    assert sum(reads) < 1_000_000

    reads.clear()
    result = search(store, "not there at all", budget=60)
    assert result.complete and result.scanned_bytes == size


# ---------------------------------------------------------------- files moving


def test_a_file_renamed_under_a_reader_is_found_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log(tmp_path)
    chatter(log, 300)
    store = LogStore(log.live)
    stale = store._list_files()
    chatter(log, 60)  # rotates: the live file listed above is now a backup
    log.close()
    expected = reference(log.live)
    real = store._list_files
    calls: List[int] = []

    def listing() -> Any:
        calls.append(1)
        return stale if len(calls) == 1 else real()

    monkeypatch.setattr(store, "_list_files", listing)
    assert store.read_backward(None, 20).entries == expected[-20:]
    assert len(calls) == 2

    # A listing that never stops being wrong: after a few attempts the reader
    # reads the files that vanished as empty instead of raising.
    monkeypatch.setattr(store, "_list_files", lambda: stale)
    for page in (store.read_forward(None, 10_000), store.read_backward(None, 10_000)):
        assert set(page.entries) <= set(expected)


def test_reading_while_the_capture_rotates_and_compresses(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="2KB", backups="5", compress="true")
    chatter(log, 50)
    stop = threading.Event()
    errors: List[BaseException] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            log.write(b"busy %06d\n" % n)
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    store = LogStore(log.live)
    try:
        for _ in range(300):
            for page in (store.read_backward(None, 50), store.read_forward(None, 50)):
                for before, after in zip(page.entries, page.entries[1:]):
                    assert after.offset == before.end
            search(store, "busy 0001", budget=0.01)
            store.seek_time(T0 + 10)
    except BaseException as exc:  # pragma: no cover - reported below
        errors.append(exc)
    finally:
        stop.set()
        writer.join()
        log.close()
    assert not errors


def test_gz_contents_are_cached_and_bounded(tmp_path: Path) -> None:
    log = Log(tmp_path, compress="true")
    chatter(log, 600)
    log.close()
    store = LogStore(log.live, gz_cache_files=2)
    backups = [f for f in store.files() if f.compressed]
    assert len(backups) > 5
    inside = backups[1].base + 10
    store.read_forward(inside, 5)
    store.read_forward(inside, 5)
    assert store.decompressed == 1
    all_forward(store, 1000)
    assert len(store._gz) <= 2
    assert store.read_forward(inside, 5).entries


def test_a_hole_in_the_middle_is_reported_where_paging_reaches_it(tmp_path: Path) -> None:
    log = Log(tmp_path)
    chatter(log, 400)
    log.close()
    store = LogStore(log.live)
    files = store.files()
    hole = files[len(files) // 2]
    everything = reference(log.live)
    os.unlink(hole.path)
    expected = [e for e in everything if not hole.base <= e.offset < hole.end]
    assert store.files() == [f for f in files if f != hole]
    before = [e for e in expected if e.offset < hole.base]
    after = [e for e in expected if e.offset >= hole.end]
    # Forward: the page stops at the hole; the next one says it is missing.
    page = store.read_forward(before[-3].offset, 10)
    assert page.entries == before[-3:] and page.has_after and page.missing is None
    page = store.read_forward(page.end, 10)
    assert page.missing == (hole.base, hole.end)
    assert page.entries == after[:10]
    # Backward: the same, mirrored.
    page = store.read_backward(after[2].end, 10)
    assert page.entries == after[:3] and page.has_before
    page = store.read_backward(page.start, 10)
    assert page.missing == (hole.base, hole.end)
    assert page.entries == before[-10:]
    # Everything else is still there, once.
    assert all_forward(store, 1000) == expected
    assert all_backward(store, 1000) == expected
    assert len(search(store, "line", limit=10_000).entries) == sum(
        1 for e in expected if e.record.data.startswith(b"line")
    )


def test_a_damaged_gz_backup_gives_what_it_holds(tmp_path: Path) -> None:
    log = Log(tmp_path, compress="true")
    chatter(log, 400)
    log.close()
    store = LogStore(log.live)
    expected = reference(log.live)
    victim = store.files()[3]
    packed = Path(victim.path).read_bytes()
    Path(victim.path).write_bytes(packed[: len(packed) // 2])
    store = LogStore(log.live)
    got: List[Entry] = []
    pages: List[Page] = []
    cursor: Optional[int] = None
    while not pages or pages[-1].has_after:
        pages.append(store.read_forward(cursor, 50))
        got.extend(pages[-1].entries)
        cursor = pages[-1].end
    assert [e for e in expected if not victim.base <= e.offset < victim.end] == [
        e for e in got if not victim.base <= e.offset < victim.end
    ]
    inflated = [e for e in got if victim.base <= e.offset < victim.end]
    assert (
        inflated
        and inflated
        == expected[: len(inflated) + expected.index(inflated[0])][expected.index(inflated[0]) :]
    )
    # What did not inflate is reported: a torn last record and the missing rest.
    gone = [p.missing for p in pages if p.missing]
    assert len(gone) == 1 and gone[0][1] == victim.end
    assert sum(p.bad_lines for p in pages) == 1
    back: List[Entry] = []
    cursor = None
    while True:
        page = store.read_backward(cursor, 50)
        back[:0] = page.entries
        if not page.has_before:
            break
        cursor = page.start
    assert back == got


def test_records_longer_than_a_block(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="4MB", max_line_length="1MB")
    sizes = [10, 200_000, 20, 900_000, 5, 300_000, 70_000]
    for n, size in enumerate(sizes):
        log.write(b"%d " % n + b"y" * size + b" end\n")
    log.close()
    store = LogStore(log.live)
    expected = reference(log.live)
    assert len(expected) > len(sizes)
    for limit in (1, 2, 5):
        assert all_forward(store, limit) == expected
        assert all_backward(store, limit) == expected
    big = expected[4]
    assert store.read_forward(big.offset + 1000, 1).entries == [expected[5]]
    assert store.read_backward(big.end - 1000, 1).entries == [expected[3]]
    assert [e.offset for e in search(store, " end", limit=100).entries] == [
        e.offset for e in reversed(expected) if e.record.data.endswith(b" end")
    ]
    assert store.seek_time(time_of(big)) == big.offset


@pytest.mark.parametrize("compress", ["false", "true"])
def test_export_is_every_record_once_without_headers(tmp_path: Path, compress: str) -> None:
    log = Log(tmp_path, compress=compress)
    chatter(log, 3000)
    log.write(b"unfinished")  # no newline yet: not a complete record, not exported
    log.close()
    store = LogStore(log.live)
    records = [e for e in reference(log.live) if not is_header(e.record.stream, e.record.data)]
    assert len(process_files(log.live)) > 20
    whole = b"".join(store.export(chunk_size=1000))
    lines = whole.split(b"\n")
    assert lines.pop() == b""
    assert [parse(line) for line in lines] == [e.record for e in records]
    # A range by cursors: exactly the records in it.
    some = records[1000:1500]
    part = b"".join(store.export(some[0].offset, some[-1].end))
    assert [parse(line) for line in part.split(b"\n")[:-1]] == [e.record for e in some]


def test_export_is_the_log_as_it_was_when_it_began(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="4KB", backups="3")
    chatter(log, 200)
    store = LogStore(log.live)
    before = b"".join(store.export())
    chunks = store.export(chunk_size=100)
    first = next(chunks)
    chatter(log, 400)  # rotations delete every file the export opened
    rest = b"".join(chunks)
    log.close()
    assert first + rest == before


def test_a_request_time_reads_as_epoch_seconds_or_rfc_3339() -> None:
    """The one parser of a client's time (``/api/log?time=``, a histogram's
    ``since``/``until``): docs/protocol.md's "RFC 3339 time or epoch seconds"."""
    assert parse_time_param("time", "0") == 0.0
    assert parse_time_param("time", "1795742625.5") == 1795742625.5
    assert parse_time_param("time", "1.7e9") == 1.7e9
    assert parse_time_param("since", "2026-12-03T10:00:00Z") == 1796292000.0
    assert parse_time_param("since", "2026-12-03T11:00:00.5+01:00") == 1796292000.5
    local = datetime(2026, 12, 3, 10, 0).timestamp()
    assert parse_time_param("until", "2026-12-03T10:00:00") == local


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "time must be RFC 3339 or epoch seconds"),
        ("yesterday", "time must be RFC 3339 or epoch seconds"),
        ("2026-13-01T00:00:00Z", "time must be RFC 3339 or epoch seconds"),
        ("nan", "time must be a time after 1970 and before the year 36812"),
        ("inf", "time must be a time after 1970 and before the year 36812"),
        ("-1", "time must be a time after 1970 and before the year 36812"),
        ("1969-12-31T23:59:59Z", "time must be a time after 1970 and before the year 36812"),
        (str(2**40), "time must be a time after 1970 and before the year 36812"),
        ("1796292000000", "time must be a time after 1970 and before the year 36812"),  # ms
    ],
)
def test_a_request_time_that_does_not_read_says_which_and_why(raw: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_time_param("time", raw)
    assert str(caught.value) == message


def test_a_listed_file_that_moved_is_vanished_for_the_reader(tmp_path: Path) -> None:
    """blocks.opened: the listed file, or Vanished (the reader lists again)."""
    log = Log(tmp_path)
    log.write(b"one\n")
    log.close()
    (listed,) = process_files(log.live)
    fd = opened(listed)
    try:
        assert os.pread(fd, listed.size, 0) == Path(log.live).read_bytes()
    finally:
        os.close(fd)
    os.rename(log.live, log.live + ".moved")
    with pytest.raises(Vanished) as caught:
        opened(listed)
    assert caught.value.file is listed
    Path(log.live).write_bytes(b"another file\n")
    with pytest.raises(Vanished):
        opened(listed)
