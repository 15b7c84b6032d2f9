"""The histogram index: counts per time bucket, exactly the records the real writer wrote."""

from __future__ import annotations

import bisect
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from supervisor_streamlog.logread import histogram, histscan
from supervisor_streamlog.logread.blocks import Vanished
from supervisor_streamlog.logread.histogram import (
    MAX_BUCKETS,
    HistogramIndex,
    Query,
    QueryError,
    parse_query,
)
from supervisor_streamlog.logread.levels import (
    ERROR_LEVELS,
    RULES,
    RULES_PATH,
    LevelRules,
    level_of_line,
)
from supervisor_streamlog.logread.prefilter import derive
from supervisor_streamlog.ondisk.files import LogFile, is_header, process_files
from supervisor_streamlog.ondisk.formats import FieldValue, JsonFormat, TextFormat

from .helpers import LEVEL_CASES, LEVEL_EXTRA_CASES, T0
from .logfile import Log, reference, time_of

Counts = Dict[str, List[int]]


def expected(live: str, since: float, until: float, buckets: int) -> Tuple[Counts, List[float]]:
    """What the answer must hold, from every record read the simple way: a record
    counts in the bucket holding the start of its second."""
    width = (until - since) / buckets
    edges = [since + i * width for i in range(buckets)] + [until]
    counts: Counts = {name: [0] * buckets for name in histscan.COLUMNS}
    exits: List[float] = []
    before = None  # the record before, in its file
    for entry in reference(live):
        record = entry.record
        previous, before = before, record
        if is_header(record.stream, record.data):
            continue
        moment = time_of(entry)
        bucket = bisect.bisect_right(edges, math.floor(moment)) - 1
        if not 0 <= bucket < buckets:
            continue
        counts[record.stream][bucket] += 1
        # A line's level is read from its first piece (the page reads the joined line).
        continued = previous is not None and previous.partial and previous.stream == record.stream
        if not continued and level_of_line(record.text, record.stream) in ("error", "fatal"):
            counts["errors"][bucket] += 1
        words = record.data.split()
        if record.stream == "status" and words[0] == b"EXITED" and b"expected=false" in words:
            counts["exits"][bucket] += 1
            exits.append(moment)
    return counts, exits


def built(index: HistogramIndex) -> HistogramIndex:
    steps = 0
    while not index.step(64 * 1024):  # small steps: a build spans many
        steps += 1
        assert steps < 10_000
    return index


def check(index: HistogramIndex, live: str, since: float, until: float, buckets: int) -> None:
    answer = built(index).answer(Query(since, until, buckets))
    counts, exits = expected(live, since, until, buckets)
    for name, column in counts.items():
        assert answer[name] == column, name
    assert answer["exit_times"] == pytest.approx(exits, abs=1e-6)
    assert answer["resolution"] == 1


def exited(log: Log, expected_exit: bool) -> None:
    log.clock.now += 0.25
    fields: Dict[str, FieldValue] = {"pid": 42, "exitstatus": 1, "expected": expected_exit}
    log.capture.state("app", "app", "EXITED", 42, fields)


def busy(log: Log, count: int) -> None:
    """Chatter with state changes, unexpected exits and exits that were expected."""
    for n in range(count):
        if n % 113 == 60:
            exited(log, n % 2 == 0)
            log.state("RUNNING")
        stream = "stderr" if n % 7 == 3 else "stdout"
        log.write(b"line %05d %s\n" % (n, b"x" * (n % 60)), stream)


@pytest.mark.parametrize("compress", ["false", "true"])
def test_counts_are_the_records_across_rotated_backups(tmp_path: Path, compress: str) -> None:
    log = Log(tmp_path, compress=compress)
    busy(log, 1500)
    log.close()
    files = process_files(log.live)
    assert len(files) > 20
    assert any(f.compressed for f in files) == (compress == "true")
    index = HistogramIndex(log.live)
    # The whole span, in buckets of odd sizes, and windows inside it.
    for since, until, buckets in [
        (T0, T0 + 1000, 100),
        (T0, T0 + 1000, 7),
        (T0 + 123.4, T0 + 456.7, 33),
        (T0 + 300, T0 + 301, 1),
        (T0 - 5000, T0 + 5000, MAX_BUCKETS),
    ]:
        check(index, log.live, since, until, buckets)
    answer = index.answer(Query(T0, T0 + 1000, 10))
    assert sum(answer["exits"]) == len(answer["exit_times"]) > 3
    assert answer["cursor"] == files[-1].end


def test_defaults_cover_the_whole_log(tmp_path: Path) -> None:
    log = Log(tmp_path)
    busy(log, 300)
    log.close()
    index = built(HistogramIndex(log.live, clock=lambda: T0 + 100))  # records are in the "future"
    answer = index.answer(Query())
    records = [e for e in reference(log.live) if not is_header(e.record.stream, e.record.data)]
    first, last = math.floor(time_of(records[0])), math.floor(time_of(records[-1]))
    assert (answer["first"], answer["last"]) == (first, last + 1)
    assert (answer["since"], answer["until"]) == (first, last + 1)
    assert answer["buckets"] == histogram.DEFAULT_BUCKETS
    total = sum(sum(answer[name]) for name in ("stdout", "stderr", "status"))
    assert total == len(records)
    # Now is later than the newest record: until is now.
    later = built(HistogramIndex(log.live, clock=lambda: T0 + 10**6 - 0.5))
    assert later.answer(Query())["until"] == T0 + 10**6


def test_the_live_file_is_counted_from_where_it_stopped(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="0")
    busy(log, 2000)
    index = built(HistogramIndex(log.live))
    size = os.path.getsize(log.live)
    assert index.bytes_read >= size
    read = index.bytes_read
    busy(log, 10)
    check(index, log.live, T0, T0 + 2000, 50)
    assert index.bytes_read - read < 4096  # what was written since, not the file again
    # A record still being written is not counted until its newline is.
    with open(log.live, "ab") as handle:
        handle.write(b"2026-11-27T02:00:00.000000+00:00 stdout half a rec")
    answer = built(index).answer(Query(T0, T0 + 10000, 1))
    with open(log.live, "ab") as handle:
        handle.write(b"ord\n")
    again = built(index).answer(Query(T0, T0 + 10000, 1))
    assert again["stdout"] == [answer["stdout"][0] + 1]
    log.close()


@pytest.mark.parametrize("compress", ["false", "true"])
def test_files_rotated_between_requests_are_not_read_again(tmp_path: Path, compress: str) -> None:
    log = Log(tmp_path, compress=compress, maxbytes="16KB")
    busy(log, 600)
    if log.compressor is not None:
        assert log.compressor.wait_idle(30)
    index = HistogramIndex(log.live)
    check(index, log.live, T0, T0 + 2000, 40)
    read = index.bytes_read
    total = sum(f.size for f in process_files(log.live))
    for _round in range(3):
        busy(log, 400)  # the live file becomes .1 (and .1.gz), a new one starts
        if log.compressor is not None:
            assert log.compressor.wait_idle(30)
        check(index, log.live, T0, T0 + 2000, 40)
    written = sum(f.size for f in process_files(log.live)) - total
    # What was written since, and the file that was live when last asked (up
    # to 16 KB of it, read again when compressed): never the older files.
    assert index.bytes_read - read <= written + 3 * 20 * 1024
    log.close()


def test_vanished_files_are_forgotten(tmp_path: Path) -> None:
    log = Log(tmp_path, backups="3")
    busy(log, 300)
    index = HistogramIndex(log.live)
    check(index, log.live, T0, T0 + 2000, 20)
    busy(log, 300)  # retention deletes the oldest files
    check(index, log.live, T0, T0 + 2000, 20)
    assert len(index.files) == len(process_files(log.live)) == 4
    # One deleted by hand: its records are no longer counted.
    os.unlink(process_files(log.live)[0].path)
    check(index, log.live, T0, T0 + 2000, 20)
    assert len(index.files) == 3
    log.close()
    # Every file gone: nothing to count.
    for f in process_files(log.live):
        os.unlink(f.path)
    answer = built(index).answer(Query(T0, T0 + 2000, 4))
    assert answer["stdout"] == [0, 0, 0, 0] and answer["first"] is None


def test_json_format(tmp_path: Path) -> None:
    log = Log(tmp_path, format="json", compress="true")
    busy(log, 800)
    log.close()
    check(HistogramIndex(log.live), log.live, T0, T0 + 1000, 25)


def test_lines_in_another_layout_are_read_and_garbage_is_not(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="0")
    busy(log, 50)
    log.close()
    with open(log.live, "ab") as handle:
        handle.write(b"not a record at all\n")
        handle.write(b'{"stream": "stderr", "time": "2026-11-27T01:24:10.5+00:00", "text": "x"}\n')
        handle.write(b"2026-11-27T01:24:11Z stdout no fraction, Z for UTC\n")
        handle.write(b"2026-11-27T02:24:12.000001+01:00 stderr another zone\n")
        handle.write(b"2026-11-27T01:24:13.000001+00:00 stdout EXITED pid=1 expected=false\n")
        handle.write(b"2026-11-27T01:24:14.000001+00:00 status EXITED pid=1 expected=falsely\n")
    check(HistogramIndex(log.live), log.live, T0, T0 + 100, 100)


def test_a_file_with_many_seconds_gets_wider_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(histscan, "SLOT_LIMIT", 16)
    log = Log(tmp_path, maxbytes="0")
    for n in range(200):
        log.write(b"tick %d\n" % n, step=1.5 if n % 3 else 0.1)
    log.close()
    index = built(HistogramIndex(log.live))
    (only,) = index.files.values()
    assert only.width > 1 and len(only.frozen.starts if only.frozen else only.slots) <= 16
    width = only.width
    since = T0 - T0 % width
    answer = index.answer(Query(since, since + 64 * width, 64))
    assert answer["resolution"] == width
    # Buckets as wide as a slot, on its edges: still exact.
    counts, _ = expected(log.live, since, since + 64 * width, 64)
    assert answer["stdout"] == counts["stdout"]
    assert sum(answer["stdout"]) == 200


def test_a_closed_index_costs_arrays_not_dicts(tmp_path: Path) -> None:
    log = Log(tmp_path, maxbytes="64KB")
    busy(log, 3000)
    log.close()
    index = built(HistogramIndex(log.live))
    closed = [i for i in index.files.values() if i.complete is not None]
    assert closed and all(not i.slots and i.frozen is not None for i in closed)
    per_file = max(i.nbytes for i in closed)
    assert per_file <= 48 * (histscan.SLOT_LIMIT + 1) + 8 * histscan.EXIT_LIMIT


@pytest.mark.parametrize(
    "since, until, buckets, message",
    [
        ("yesterday", None, None, "since must be RFC 3339 or epoch seconds"),
        (None, "nan", None, "until must be a time"),
        ("inf", None, None, "since must be a time"),
        ("-1", None, None, "since must be a time"),
        ("10", "5", None, "until must be later than since"),
        ("10", "10", None, "until must be later than since"),
        (None, None, "ten", "buckets must be a whole number"),
        (None, None, "0", "buckets must be from 1 to 2000"),
        (None, None, "2001", "buckets must be from 1 to 2000"),
        (None, None, "1.5", "buckets must be a whole number"),
    ],
)
def test_bad_parameters_say_which_and_why(
    since: str, until: str, buckets: str, message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(since, until, buckets)


def test_good_parameters() -> None:
    assert parse_query(None, None, None) == Query(None, None, histogram.DEFAULT_BUCKETS)
    assert parse_query("", "", "") == Query(None, None, histogram.DEFAULT_BUCKETS)
    assert parse_query("2026-11-27T01:23:45Z", "1795742626.5", "2000") == Query(T0, T0 + 1.5, 2000)
    # A default that meets the other bound is refused when answering.
    with pytest.raises(QueryError, match="until must be later than since"):
        HistogramIndex("/nonexistent/app.log", clock=lambda: T0).answer(Query(T0 + 10, None, 5))


def test_a_file_moved_under_a_step_is_found_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log(tmp_path)
    busy(log, 400)
    log.close()
    real = histscan.opened
    misses = [0]

    def moved(f: LogFile) -> int:
        """The first opens meet another file at the listed name (a rotation between
        the listing and the open)."""
        if misses[0] < 3:
            misses[0] += 1
            raise Vanished(f)
        return real(f)

    monkeypatch.setattr(histscan, "opened", moved)
    index = HistogramIndex(log.live)
    assert index.step() is False  # listed again at the next step
    check(index, log.live, T0, T0 + 1000, 10)
    assert misses[0] == 3


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_records_of_one_pipe_read_share_a_stamp_and_are_counted_by_runs(
    tmp_path: Path, fmt: str
) -> None:
    log = Log(tmp_path, format=fmt, maxbytes="64KB", compress="true")
    for n in range(300):
        # Several lines per read, as a busy child's output arrives: one stamp each.
        lines = b"".join(b"chunk %04d line %d\n" % (n, k) for k in range(1 + n % 12))
        log.write(lines, "stderr" if n % 4 == 1 else "stdout", step=0.3)
        if n % 50 == 7:
            exited(log, False)
    assert histscan._runs_pay(b"\n" + Path(log.live).read_bytes()[-65536:].split(b"\n", 1)[1])
    log.close()
    check(HistogramIndex(log.live), log.live, T0, T0 + 200, 37)
    # A line that is not a record in the middle of a run is left out, the rest counted.
    with open(log.live, "ab") as handle:
        stamp = b"2026-11-27T01:25:30.000001+00:00"
        for k in range(8):
            handle.write(stamp + b" stdout run line %d\n" % k)
            if k == 3:
                handle.write(b"garbage in the middle\n")
    check(HistogramIndex(log.live), log.live, T0, T0 + 200, 37)


# Lines and whether the page marks them error or fatal.
ERROR_LINES = [
    (b"ERROR:app:connection lost", "stderr", True),
    (b"\x1b[1;31mERROR\x1b[0m coloured", "stdout", True),
    (b"\x1b[31mE\x1b[0mRROR split by colour", "stdout", True),
    (b'{"level":"error","msg":"child JSON"}', "stdout", True),
    (b'{"level":50,"msg":"pino"}', "stdout", True),
    (b'{"level":"\\u0065rror","msg":"escaped"}', "stdout", True),
    (b'{"severity" : 2}', "stdout", True),
    (b"level=fatal msg=x", "stdout", True),
    (b"<11>Dec  3 07:00:00 host app[42]: failed", "stdout", True),
    (b"E1203 07:00:00.123456   42 main.go:12] refused", "stderr", True),
    (b"Traceback (most recent call last):", "stderr", True),
    (b"panic: runtime error", "stderr", True),
    (b"[2026-12-03 07:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT", "stderr", True),
    (b"reading from stderr: nothing", "stderr", False),
    (b"INFO: retrying after error", "stdout", False),
    (b"2026-12-03 INFO the error count is 0", "stderr", False),
    (b'{"level":"info","msg":"an ERROR in the text"}', "stdout", False),
    (b"an error occurred while reading", "stdout", False),
    (b"ERR_CONNECTION_REFUSED", "stdout", False),
    (b"WARNING:root:almost full of errors", "stderr", False),
    (b"\xff\xfe ERROR: not UTF-8", "stdout", True),
]


@pytest.mark.parametrize("format", ["text", "json"])
def test_error_level_lines_are_counted_as_the_page_marks_them(tmp_path: Path, format: str) -> None:
    log = Log(tmp_path, format=format, maxbytes="2KB")
    for _round in range(3):
        for text, stream, _ in ERROR_LINES:
            log.write(text + b"\n", stream)
        exited(log, False)
    # A long line split into pieces: its level is its first piece's (the rest is not read).
    log.write(b"ERROR " + b"y" * 20000 + b"\n", "stdout")
    log.write(b"x" * 17000 + b" ERROR tail\n", "stdout")
    log.close()
    index = built(HistogramIndex(log.live))
    answer = index.answer(Query(T0, T0 + 1000, 1))
    errors = sum(1 for _, _, error in ERROR_LINES if error)
    assert answer["errors"] == [3 * errors + 1]
    check(index, log.live, T0, T0 + 1000, 40)
    # The JSON format's own "stream": "stderr" and status records are never errors.
    assert answer["exits"] == [3]


def test_every_error_level_line_of_the_tables_is_a_candidate() -> None:
    """The searches that pick the lines to read find every line the page marks
    error or fatal (tests/helpers.py's tables), written in either format."""
    cases = [(t.replace("\\x1b", "\x1b"), s, w) for t, s, w in LEVEL_CASES] + [
        c for c in LEVEL_EXTRA_CASES if c[2] is not None
    ]
    errors = [(text, stream) for text, stream, want in cases if want in ("error", "fatal")]
    assert len(errors) > 30
    for fmt in (TextFormat(True), JsonFormat(True)):
        stamp = fmt.stamp(T0)
        for text, stream in errors:
            data = fmt.records(stamp, stream, 42, [(text.encode() + b"\n", False)])
            assert histscan._candidates(data) == {0}, (fmt.name, text)


def test_the_candidate_searches_are_derived_from_the_rules_file() -> None:
    """A level word, a prefix or a level number added only to static/levels.json is
    classified and its lines are found, in either format; before, they were not."""
    with open(RULES_PATH, encoding="utf-8") as handle:
        data = json.load(handle)
    data["words"]["fatal"].append("kaput")
    data["text"]["upper"].append("KAPUT")
    data["text"]["prefixes"].append(["Oops! ", "error"])
    data["numbers"] = [[n, "error" if level == "warn" else level] for n, level in data["numbers"]]
    rules = LevelRules(data)
    changed = derive(rules, histscan._FRAMING, histscan._TEXT_STARTS)
    lines = ["KAPUT: disk gone", '{"level":"kaput"}', "Oops! it broke", '{"level":40,"msg":"x"}']
    for fmt in (TextFormat(True), JsonFormat(True)):
        for text in lines:
            records = fmt.records(fmt.stamp(T0), "stderr", 42, [(text.encode() + b"\n", False)])
            assert rules.level_of_line(text, "stderr") in ERROR_LEVELS, text
            assert changed.line_starts(records) == {0}, (fmt.name, text)
            assert histscan._candidates(records) == set(), (fmt.name, text)
    # The rules as shipped give the searches the histogram uses.
    shipped = derive(RULES, histscan._FRAMING, histscan._TEXT_STARTS)
    assert shipped.finds == histscan._PREFILTER.finds == (b"crit", b"fatal", b"panic")
    assert [p.pattern for p in shipped.lowered] == [p.pattern for p in histscan._PREFILTER.lowered]


def test_the_stream_tags_are_not_candidates_but_what_the_page_reads_is() -> None:
    """``stderr`` holds ``err`` and is in every stderr record: not a candidate by
    itself; the error words the old hand-written searches missed are found."""
    fmt = TextFormat(True)
    quiet = fmt.records(fmt.stamp(T0), "stderr", 42, [(b"reading from stderr: ok\n", False)])
    assert histscan._candidates(quiet) == set()
    long_head = b'{"level"\xc2\xa0:3,"m":"' + b"z" * 2000 + b'"}'  # NBSP: JavaScript's \s
    for text in (b'{"level" \r: 3}', b'{"level":-1e-400}', long_head):
        assert level_of_line(text.decode(), "stdout") in ERROR_LEVELS, text
        data = fmt.records(fmt.stamp(T0), "stdout", 42, [(text + b"\n", False)])
        assert histscan._candidates(data) == {0}, text
