"""The forwarder's fast rendering: records straight from their lines, the same messages.

``Encoder.text_line`` and ``Encoder.json_line`` render a stdout/stderr
record without parsing it into a record; ``Feed.prepare`` uses them and
parses every other line.  These tests hold both to the slow path they replace: the
message of each entry the sidecar's store reads (``read_forward``), with the
running pid followed through status records, headers left out.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor_streamlog.capture.writer import RotatingWriter
from supervisor_streamlog.forward.forwarder import Feed, _status_pid
from supervisor_streamlog.forward.syslog import Origin, Severities, encoder, wanted
from supervisor_streamlog.logread.logstore import LogStore
from supervisor_streamlog.ondisk.files import Entry
from supervisor_streamlog.ondisk.formats import RecordError, make_format, parse

ORIGIN = Origin("web1.example", "w\u00e9b]", "web app", 'w\u00e9b]/web app".log')
STAMP = b"2026-11-27T01:23:45.678901+00:00"


def slow(line: bytes, pid: Optional[int], offset: int = 10, end: int = 99) -> Optional[bytes]:
    """The message of the parsed line (None: not a record)."""
    try:
        record = parse(line)
    except RecordError:
        return None
    entry = Entry(offset, end, record)
    return encoder(ORIGIN).encode(entry, record.pid if record.pid is not None else pid)


@pytest.mark.parametrize(
    "line",
    [
        STAMP + b" stdout GET / 200",
        STAMP + b" stderr oops: \xff\xfe not UTF-8",
        STAMP + b" stdout+ a piece",
        STAMP + b" stderr+ ",
        STAMP + b" stdout ",
        STAMP + b" stdout   spaces  kept ",
        STAMP + b' stdout \x00\r\x1b[31mred] "quoted"',
        b"- stdout no time",
    ],
)
@pytest.mark.parametrize("pid", [None, 4242, 0, -1])
def test_a_text_line_renders_as_its_parsed_record(line: bytes, pid: Optional[int]) -> None:
    fast = encoder(ORIGIN).text_line(10, 99, line, pid)
    assert fast is not None
    assert fast == slow(line, pid)


@pytest.mark.parametrize(
    "line",
    [
        STAMP + b" status RUNNING pid=7",
        STAMP + b" status STREAMLOG file offset=2048",
        STAMP + b" stdout",  # no data, no space: parsed, then rendered the slow way
        STAMP + b" stdin hello",
        STAMP + b" stdout+",
        b"2026-11-27T01:23:45\xc3\xa9 stdout non-ASCII stamp",
        b" stdout empty stamp",
        b'{"time": "x", "stream": "stdout", "text": "json"}',
        b'{"x" stdout not json either',
        b"garbage",
        b"",
    ],
)
def test_other_lines_take_the_slow_path(line: bytes) -> None:
    assert encoder(ORIGIN).text_line(10, 99, line, 4242) is None


@settings(max_examples=300, deadline=None)
@given(
    stamp=st.sampled_from([STAMP, b"-", b"", b"x\xff", b"{a", b"12"]),
    tag=st.sampled_from([b"stdout", b"stderr", b"stdout+", b"stderr+", b"status", b"x"]),
    data=st.binary(max_size=40),
    sep=st.sampled_from([b" ", b""]),
    pid=st.one_of(st.none(), st.integers(-3, 10**7)),
)
def test_any_line_renders_the_same_or_is_left_to_the_slow_path(
    stamp: bytes, tag: bytes, data: bytes, sep: bytes, pid: Optional[int]
) -> None:
    line = (stamp + b" " + tag + sep + data).replace(b"\n", b" ")
    fast = encoder(ORIGIN).text_line(10, 99, line, pid)
    if fast is not None:
        assert fast == slow(line, pid)


JSON_STAMP = STAMP.decode()


@pytest.mark.parametrize(
    "record",
    [
        {"time": JSON_STAMP, "stream": "stdout", "pid": 7, "text": "GET / 200"},
        {"time": JSON_STAMP, "stream": "stderr", "text": "no pid: the running one"},
        {"time": JSON_STAMP, "stream": "stdout", "pid": 0, "text": "pid 0"},
        {"time": JSON_STAMP, "stream": "stdout", "pid": "7", "text": "a pid that is text"},
        {"time": JSON_STAMP, "stream": "stdout", "pid": True, "text": "a pid that is true"},
        {"time": JSON_STAMP, "stream": "stdout", "partial": True, "text": "a piece"},
        {"time": JSON_STAMP, "stream": "stdout", "partial": 0, "text": "not a piece"},
        {"time": JSON_STAMP, "stream": "stderr", "partial": "yes", "text": ""},
        {"time": JSON_STAMP, "stream": "stdout", "text": 'caf\u00e9 \u2603 \x00 " ] \\'},
        {"time": JSON_STAMP, "stream": "stdout", "text": "x", "program": "p", "group": "g"},
    ],
)
@pytest.mark.parametrize("pid", [None, 4242])
def test_a_json_record_renders_as_its_parsed_record(record: dict, pid: Optional[int]) -> None:
    for ascii_only in (True, False):
        line = json.dumps(record, ensure_ascii=ascii_only).encode()
        fast = encoder(ORIGIN).json_line(10, 99, line, pid)
        assert fast is not None
        assert fast == slow(line, pid)


@pytest.mark.parametrize(
    "line",
    [
        b'{"time": "t", "stream": "status", "text": "RUNNING pid=7"}',
        b'{"time": "t", "stream": "stdout", "b64": "/w=="}',
        b'{"time": "t x", "stream": "stdout", "text": "a space in the time"}',
        b'{"time": "", "stream": "stdout", "text": "no time"}',
        b'{"time": 5, "stream": "stdout", "text": "a time that is a number"}',
        rb'{"time": "t\u00e9", "stream": "stdout", "text": "not ASCII"}',
        b'{"time": "t", "stream": "stdout", "text": 5}',
        b'{"time": "t", "stream": ["stdout"], "text": "x"}',
        rb'{"time": "t", "stream": "stdout", "text": "\udcff a lone surrogate"}',
        b'{"time": "t", "stream": "stdout", "text": "x"}  ',
        b'{"time": "t", "stream": "stdout", "text": "x"} {}',
        b'{"time": "t", "stream": "stdout"',
        b'{"time": "t", "stream": "stdout", "text": "\xff"}',  # not UTF-8
        b"[1, 2]",
        b"{",
    ],
)
def test_other_json_lines_take_the_slow_path(line: bytes) -> None:
    assert encoder(ORIGIN).json_line(10, 99, line, 4242) is None


ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.text(max_size=8),
    st.lists(st.none(), max_size=1),
)


@settings(max_examples=400, deadline=None)
@given(
    stamp=st.one_of(st.sampled_from([JSON_STAMP, "-", "", "a b", "t\u00e9"]), ANY),
    stream=st.one_of(st.sampled_from(["stdout", "stderr", "status"]), ANY),
    text=st.one_of(st.text(max_size=30), ANY),
    extra=st.dictionaries(st.sampled_from(["partial", "pid", "b64", "program"]), ANY, max_size=3),
    ascii_only=st.booleans(),
    pid=st.one_of(st.none(), st.integers(-3, 10**7)),
)
def test_any_json_record_renders_the_same_or_is_left_to_the_slow_path(
    stamp: object, stream: object, text: object, extra: dict, ascii_only: bool, pid: Optional[int]
) -> None:
    record = {"time": stamp, "stream": stream, "text": text, **extra}
    line = json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    fast = encoder(ORIGIN).json_line(10, 99, line, pid)
    if fast is not None:
        assert fast == slow(line, pid)


def reference(store: LogStore) -> Tuple[List[bytes], List[int]]:
    """Every message the forwarder sends, by the slow path: each entry the store
    reads, rendered, with the running pid followed through status records."""
    messages: List[bytes] = []
    ends: List[int] = []
    running: Optional[int] = None
    cursor: Optional[int] = None
    coder = encoder(ORIGIN)
    while True:
        page = store.read_forward(cursor, 700)
        if not page.entries:
            if page.missing is None or page.missing[1] <= (cursor or 0):
                return messages, ends
            cursor = page.missing[1]
            continue
        for entry in page.entries:
            record = entry.record
            pid = record.pid if record.pid is not None else running
            if record.stream == "status":
                changed, after = _status_pid(record.data)
                if changed:
                    running = after
                own = dict(
                    field.split(b"=", 1) for field in record.data.split(b" ")[1:] if b"=" in field
                ).get(b"pid", b"")
                if own.isdigit():
                    pid = int(own)
            if wanted(entry):
                messages.append(coder.encode(entry, pid))
                ends.append(entry.end)
        cursor = page.end


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_prepare_sends_what_the_slow_path_renders(tmp_path: Path, fmt: str) -> None:
    """A real writer's log, rotated and gzipped, with status records, pieces,
    a dropped notice and lines that are not records: page by page, the
    forwarder's messages and their ends are the slow path's, in order."""
    path = tmp_path / "web.log"
    writer = RotatingWriter(str(path), maxbytes=40_000, backups=20, header=True)
    form = make_format(fmt, utc=True)
    ident = form.identity("web app", "w\u00e9b]")
    pid = 4242
    for n in range(3000):
        stamp = form.stamp(1_790_000_000 + n / 10)
        if n % 500 == 0:
            pid += 1
            writer.write(form.status(stamp, pid, "STARTING", {}, ident))
            writer.write(form.status(stamp, pid, "RUNNING", {"pid": pid}, ident))
        if n % 500 == 499:
            writer.write(
                form.status(
                    stamp, pid, "EXITED", {"pid": pid, "exitstatus": 1, "expected": False}, ident
                )
            )
        stream = "stderr" if n % 7 == 3 else "stdout"
        pieces = [(b'line %d \xff x\x1b[0m "]\\ ' % n + b"y" * (n % 50) + b"\n", False)]
        if n % 11 == 5:
            pieces = [(b"piece %d" % n, True)]
        if n % 97 == 0:
            pieces = [(b"\n", False)]
        writer.write(form.records(stamp, stream, pid, pieces, ident))
        if n == 1500:
            writer.write(form.notice(stamp, "dropped bytes=10 records=2 reason=EIO", ident))
        if n % 400 == 13:
            writer.write(b"not a record at all\n")
        if n == 2000:
            writer.write(
                b"2026-11-27T01:23:45 stdout non-ascii \xc3\xa9 stamp?\n".replace(
                    b"45 ", b"4\xc3\xa9 "
                )
            )
    writer.close()
    # One backup compressed, as compress = true leaves them.
    backup = tmp_path / "web.log.3"
    assert backup.exists()
    with open(backup, "rb") as raw, gzip.open(str(backup) + ".gz", "wb") as packed:
        packed.write(raw.read())
    os.unlink(backup)

    want, want_ends = reference(LogStore(str(path)))
    feed = Feed("w\u00e9b]:web app", ORIGIN, LogStore(str(path)), 0, Severities())
    feed.rewind()
    got: List[bytes] = []
    got_ends: List[int] = []
    pages = 0
    while True:
        batch = feed.prepare(300)
        if not batch.count and not batch.missing:
            break
        got += batch.messages
        got_ends += batch.ends
        assert batch.ends == sorted(batch.ends)
        pages += 1
    assert pages > 10 and len(want) > 3000
    assert got_ends == want_ends
    assert got == want


def test_an_idle_log_is_not_read_again_until_it_changes(tmp_path: Path) -> None:
    """After an empty page the forwarder only stats the live file: a write, a
    rotation or a rewind (after a reconnect) makes it read again, and nothing
    written in between is skipped."""
    path = tmp_path / "web.log"
    writer = RotatingWriter(str(path), maxbytes=2_000, backups=5, header=True)
    form = make_format("text", utc=True)

    def write(text: bytes) -> None:
        writer.write(form.records(form.stamp(1_790_000_000), "stdout", 1, [(text, False)], ""))

    write(b"one\n")
    feed = Feed("web:web", ORIGIN, LogStore(str(path)), 0, Severities())
    feed.rewind()
    assert len(feed.prepare(100).messages) == 1
    assert not feed.unchanged()  # the page had records: read again
    assert feed.prepare(100).count == 0
    assert feed.unchanged()
    write(b"two\n")
    assert not feed.unchanged()
    assert [m.rsplit(b" ", 1)[-1] for m in feed.prepare(100).messages] == [b"two"]
    assert feed.prepare(100).count == 0 and feed.unchanged()
    for n in range(40):  # past maxbytes: the live file is a new one
        write(b"line %d %s\n" % (n, b"x" * 60))
    assert not feed.unchanged()
    got = feed.prepare(1000).messages
    assert len(got) == 40 and got[-1].endswith(b"line 39 " + b"x" * 60)
    assert feed.prepare(100).count == 0 and feed.unchanged()
    feed.rewind()
    assert not feed.unchanged()
    writer.close()
