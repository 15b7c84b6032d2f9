"""Formats: records render, parse back and reassemble the child's exact bytes."""

from __future__ import annotations

import base64
import calendar
import json
import re
import time
from datetime import datetime, timedelta
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor_streamlog.capture.assemble import LineAssembler
from supervisor_streamlog.ondisk.formats import (
    FieldValue,
    Format,
    JsonFormat,
    Piece,
    RecordError,
    TextFormat,
    iter_records,
    make_format,
    parse,
    reassemble,
    record_seconds,
    timestamp,
)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$")
NOW = 1795742625.678901  # 2026-11-27T01:23:45.678901+00:00
STAMP = "2026-11-27T01:23:45.678901+00:00"

FORMATS = [TextFormat(utc=True), JsonFormat(utc=True)]
FORMAT_IDS = ["text", "json"]

CHUNK = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"\n", b"\r\n", b"\0", b"\x1b[0m", b"\xff\xfe", b"\xe2\x82", b"\xac", b" "]),
    st.text(max_size=30).map(lambda s: s.encode("utf-8")),
    st.integers(min_value=1, max_value=250).map(lambda n: b"y" * n),
)
#: (stream, chunk, flush the unfinished line after it -- a timeout or an exit)
EVENTS = st.lists(
    st.tuples(st.sampled_from(["stdout", "stderr"]), CHUNK, st.booleans()), max_size=25
)


def render(fmt: Format, events: List[Tuple[str, bytes, bool]], limit: int = 80) -> bytes:
    """Run events through assemblers and a format, as the capture core does."""
    assemblers = {"stdout": LineAssembler(limit), "stderr": LineAssembler(limit)}
    out = []
    for index, (stream, chunk, flush) in enumerate(events):
        stamp = fmt.stamp(NOW + index)
        pieces = assemblers[stream].feed(chunk, NOW + index)
        if flush:
            pieces += assemblers[stream].flush()
        if pieces:
            out.append(fmt.records(stamp, stream, 4242, pieces))
        if index % 3 == 0:
            out.append(fmt.status(stamp, 4242, "RUNNING", {"pid": 4242}))
    for stream, assembler in assemblers.items():
        pieces = assembler.flush()
        if pieces:
            out.append(fmt.records(fmt.stamp(NOW), stream, 4242, pieces))
    return b"".join(out)


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
@settings(max_examples=150, deadline=None)
@given(events=EVENTS)
def test_render_parse_reassemble_is_byte_exact(
    fmt: Format, events: List[Tuple[str, bytes, bool]]
) -> None:
    blob = render(fmt, events)
    assert blob == b"" or blob.endswith(b"\n")
    parsed = list(iter_records(blob))
    assert len(parsed) == blob.count(b"\n")  # one record per line
    for stream in ("stdout", "stderr"):
        expected = b"".join(chunk for s, chunk, _ in events if s == stream)
        assert reassemble(parsed, stream) == expected
    for record in parsed:
        assert RFC3339.match(record.time)
        assert record.stream in ("stdout", "stderr", "status")


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
@settings(max_examples=150, deadline=None)
@given(line=st.binary(max_size=200).filter(lambda b: b"\n" not in b), partial=st.booleans())
def test_one_record_round_trips(fmt: Format, line: bytes, partial: bool) -> None:
    piece = (line, True) if partial else (line + b"\n", False)
    if partial and not line:
        return  # the assembler never makes an empty partial piece
    blob = fmt.records(STAMP, "stderr", 7, [piece])
    assert blob.endswith(b"\n") and blob.count(b"\n") == 1
    record = parse(blob[:-1])
    assert record.data == line
    assert record.partial is partial
    assert record.stream == "stderr"
    assert record.time == STAMP


def test_text_record_layout() -> None:
    fmt = TextFormat(utc=True)
    blob = fmt.records(STAMP, "stdout", 1, [(b"GET / 200\n  indented\n\n", False)])
    assert blob == (
        f"{STAMP} stdout GET / 200\n{STAMP} stdout   indented\n{STAMP} stdout \n".encode()
    )
    blob = fmt.records(STAMP, "stderr", 1, [(b"a" * 5, True), (b"bc\nd\n", False)])
    assert blob == f"{STAMP} stderr+ aaaaa\n{STAMP} stderr bc\n{STAMP} stderr d\n".encode()
    records = list(iter_records(blob))
    assert [r.partial for r in records] == [True, False, False]
    assert reassemble(records, "stderr") == b"aaaaabc\nd\n"
    assert reassemble(records, "stdout") == b""


def test_text_keeps_hostile_bytes() -> None:
    fmt = TextFormat(utc=True)
    line = b"\x1b[31mred\x1b[0m \0 \r \xff\xfe tab\there"
    blob = fmt.records(STAMP, "stdout", 1, [(line + b"\n", False)])
    assert blob == f"{STAMP} stdout ".encode() + line + b"\n"
    assert parse(blob[:-1]).data == line


def test_json_record_fields() -> None:
    fmt = JsonFormat(utc=True)
    blob = fmt.records(STAMP, "stdout", 4242, [("héllo \0 \x1b".encode() + b"\n", False)])
    obj = json.loads(blob)
    assert obj == {"time": STAMP, "stream": "stdout", "pid": 4242, "text": "héllo \0 \x1b"}
    blob = fmt.records(STAMP, "stdout", 4242, [(b"part", True)])
    assert json.loads(blob)["partial"] is True


def test_json_undecodable_bytes_keep_exact_copy_in_b64() -> None:
    fmt = JsonFormat(utc=True)
    line = b"bad \xff\xfe \xe2\x82"
    obj = json.loads(fmt.records(STAMP, "stderr", 1, [(line + b"\n", False)]))
    assert base64.b64decode(obj["b64"]) == line
    assert obj["text"].startswith("bad \ufffd")
    assert parse(fmt.records(STAMP, "stderr", 1, [(line + b"\n", False)])[:-1]).data == line
    assert parse(fmt.records(STAMP, "stderr", 1, [(line + b"\n", False)])[:-1]).pid == 1


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_status_records(fmt: Format) -> None:
    fields: Dict[str, FieldValue] = {"pid": 4242, "exitstatus": 1, "expected": False}
    blob = fmt.status(STAMP, 4242, "EXITED", fields)
    assert blob.endswith(b"\n") and blob.count(b"\n") == 1
    record = parse(blob[:-1])
    assert record.stream == "status"
    assert record.text == "EXITED pid=4242 exitstatus=1 expected=false"
    assert not record.partial
    assert record.time == STAMP
    # Status records are not part of any stream's bytes.
    assert reassemble([record], "stdout") == b""


def test_text_status_layout() -> None:
    fmt = TextFormat(utc=True)
    assert fmt.status(STAMP, 4242, "RUNNING", {"pid": 4242}) == (
        f"{STAMP} status RUNNING pid=4242\n".encode()
    )
    # A newline in a field can never make a second record.
    blob = fmt.status(STAMP, 1, "EXITED", {"why": "a\nb"})
    assert blob.count(b"\n") == 1


def test_json_status_has_state_and_fields() -> None:
    obj = json.loads(
        JsonFormat(utc=True).status(STAMP, 4242, "EXITED", {"exitstatus": 3, "expected": True})
    )
    assert obj["stream"] == "status"
    assert obj["state"] == "EXITED"
    assert obj["pid"] == 4242
    assert obj["exitstatus"] == 3
    assert obj["expected"] is True
    assert obj["text"] == "EXITED exitstatus=3 expected=true"


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_notice_records(fmt: Format) -> None:
    blob = fmt.notice(STAMP, "dropped bytes=10 records=2")
    assert blob.count(b"\n") == 1 and blob.endswith(b"\n")
    record = parse(blob[:-1])
    assert record.stream == "status"
    assert record.text == "STREAMLOG dropped bytes=10 records=2"
    # A newline in a notice's text cannot make a second record either.
    assert fmt.notice(STAMP, "a\nb").count(b"\n") == 1


def test_timestamp_utc() -> None:
    stamp = timestamp(NOW, utc=True)
    assert stamp == STAMP
    assert RFC3339.match(stamp)
    assert timestamp(1795742625.0, utc=True) == "2026-11-27T01:23:45.000000+00:00"
    assert datetime.fromisoformat(stamp).timestamp() == pytest.approx(NOW, abs=1e-6)


@pytest.mark.parametrize(
    "tz, offset",
    [("UTC0", "+00:00"), ("IST-5:30", "+05:30"), ("XYZ+3", "-03:00"), ("NPT-5:45", "+05:45")],
)
def test_timestamp_local_has_numeric_offset(
    monkeypatch: pytest.MonkeyPatch, tz: str, offset: str
) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        stamp = timestamp(NOW, utc=False)
        assert RFC3339.match(stamp), stamp
        assert stamp.endswith(offset)
        moment = datetime.fromisoformat(stamp)
        assert moment.timestamp() == pytest.approx(NOW, abs=1e-6)
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        sign = -1 if offset[0] == "-" else 1
        assert moment.utcoffset() == sign * timedelta(hours=hours, minutes=minutes)
        assert make_format("text", utc=False).stamp(NOW) == stamp
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("utc", [True, False])
@settings(max_examples=200, deadline=None)
@given(
    moments=st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=4e9, allow_nan=False),
            # Just around whole seconds, where rounding to microseconds carries.
            st.integers(min_value=1_700_000_000, max_value=1_700_000_003).flatmap(
                lambda s: st.floats(min_value=s - 1e-5, max_value=s + 1e-5)
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_stamp_is_timestamp_whatever_came_before(utc: bool, moments: List[float]) -> None:
    """Format.stamp() may cache per second; its text must still be timestamp()'s."""
    fmt = TextFormat(utc=utc)
    for now in moments:
        assert fmt.stamp(now) == timestamp(now, utc)


def test_stamp_across_a_daylight_saving_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        change = calendar.timegm((2026, 3, 29, 1, 0, 0))  # 02:00 CET becomes 03:00 CEST
        fmt = TextFormat(utc=False)
        moments = [change - 1.5, change - 0.25, change - 1e-7, change, change + 0.25, change - 0.5]
        stamps = [fmt.stamp(now) for now in moments]
        assert stamps == [timestamp(now, utc=False) for now in moments]
        assert stamps[1] == "2026-03-29T01:59:59.750000+01:00"
        assert stamps[3] == "2026-03-29T03:00:00.000000+02:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_make_format() -> None:
    assert isinstance(make_format("json", True), JsonFormat)
    assert isinstance(make_format("text", True), TextFormat)
    assert make_format("text", True).stamp(NOW).endswith("+00:00")


@pytest.mark.parametrize(
    "line",
    [
        b"hello",
        b"2026-11-27T01:23:45.678901+00:00 stdin text",
        b"{not json",
        b'{"time": "x", "stream": "stdout"}',
        b'{"time": "x", "stream": "stdout", "text": "a", "b64": "!!"}',
        b"[1, 2]",
    ],
)
def test_garbage_lines_raise_record_error(line: bytes) -> None:
    with pytest.raises(RecordError):
        parse(line)


def test_iter_records_reads_concatenated_files_of_both_formats() -> None:
    blob = TextFormat(True).records(STAMP, "stdout", 1, [(b"one\n", False)]) + JsonFormat(
        True
    ).records(STAMP, "stdout", 1, [(b"two", True), (b"three\n", False)])
    assert reassemble(iter_records(blob), "stdout") == b"one\ntwothree\n"


# ------------------------------------------------- identity and structured notices

IDENT = JsonFormat(True).identity("web_00", "web", "host-1")


def reference_json(stamp: str, stream: str, pid: int, pieces: List[Piece], ident: str) -> bytes:
    """JSON records as json.dumps renders them (the format before it was hand-built),
    with the identity before the closing brace."""
    out = []
    for data, partial in pieces:
        lines = [data] if partial else data[:-1].split(b"\n")
        for line in lines:
            record: Dict[str, object] = {"time": stamp, "stream": stream, "pid": pid}
            try:
                record["text"] = line.decode("utf-8")
            except UnicodeDecodeError:
                record["text"] = line.decode("utf-8", "replace")
                record["b64"] = base64.b64encode(line).decode("ascii")
            if partial:
                record["partial"] = True
            out.append(json.dumps(record, ensure_ascii=False)[:-1] + ident + "}\n")
    return "".join(out).encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, ident=st.sampled_from(["", IDENT]))
def test_json_records_are_exactly_json_dumps_plus_identity(
    events: List[Tuple[str, bytes, bool]], ident: str
) -> None:
    fmt = JsonFormat(utc=True)
    assembler = LineAssembler(80)
    for index, (_, chunk, flush) in enumerate(events):
        pieces = assembler.feed(chunk, NOW + index) + (assembler.flush() if flush else [])
        got = fmt.records(STAMP, "stdout", 4242, pieces, ident)
        assert got == reference_json(STAMP, "stdout", 4242, pieces, ident)


def test_json_identity_fields() -> None:
    fmt = JsonFormat(utc=True)
    assert fmt.identity("web", "web") == ', "program": "web", "group": "web"'
    assert fmt.identity("web_00", "web", "h1") == (
        ', "program": "web_00", "group": "web", "host": "h1"'
    )
    # Any name is a well-formed JSON string (quotes, backslashes, non-ASCII).
    hostile = fmt.identity('we"b\\ é', "g\x01", "hôte")
    blob = fmt.records(STAMP, "stdout", 7, [(b"a\nb\n", False), (b"c", True)], hostile)
    objs = [json.loads(line) for line in blob.splitlines()]
    assert [(o["text"], o["program"], o["group"], o["host"]) for o in objs] == [
        ("a", 'we"b\\ é', "g\x01", "hôte"),
        ("b", 'we"b\\ é', "g\x01", "hôte"),
        ("c", 'we"b\\ é', "g\x01", "hôte"),
    ]
    assert objs[2]["partial"] is True
    # The text format has none: its path says which process it is.
    text = TextFormat(utc=True)
    assert text.identity("web", "web", "h1") == ""
    assert text.records(STAMP, "stdout", 1, [(b"x\n", False)], "ignored") == (
        f"{STAMP} stdout x\n".encode()
    )


def test_json_record_field_order_time_first() -> None:
    """``time`` opens every record: the sidecar seeks by time with a prefix regex."""
    fmt = JsonFormat(utc=True)
    blobs = [
        fmt.records(STAMP, "stderr", 1, [(b"\xff\n", False), (b"p", True)], IDENT),
        fmt.status(STAMP, 1, "RUNNING", {"pid": 1}, IDENT),
        fmt.notice(STAMP, "file offset=0", IDENT),
    ]
    for line in b"".join(blobs).splitlines():
        assert line.startswith(f'{{"time": "{STAMP}", "stream": '.encode())
        assert line.endswith(b', "program": "web_00", "group": "web", "host": "host-1"}')


def test_json_status_carries_identity_but_no_field_overrides_it() -> None:
    obj = json.loads(
        JsonFormat(utc=True).status(STAMP, 9, "EXITED", {"exitstatus": 2, "program": "x"}, IDENT)
    )
    assert (obj["state"], obj["exitstatus"], obj["program"], obj["group"]) == (
        "EXITED",
        2,
        "web_00",
        "web",
    )


def test_json_header_notice_has_structured_fields() -> None:
    blob = JsonFormat(utc=True).notice(STAMP, "file offset=123456", IDENT)
    obj = json.loads(blob)
    assert obj == {
        "time": STAMP,
        "stream": "status",
        "pid": 0,
        "state": "STREAMLOG",
        "text": "STREAMLOG file offset=123456",
        "notice": "file",
        "offset": 123456,
        "program": "web_00",
        "group": "web",
        "host": "host-1",
    }
    assert parse(blob[:-1]).text == "STREAMLOG file offset=123456"


def test_json_dropped_notice_has_structured_fields() -> None:
    text = (
        "dropped bytes=1400 records=10 first=2026-11-27T01:23:45.000001+00:00"
        " last=2026-11-27T01:23:46.000002+00:00 reason=ENOSPC"
    )
    obj = json.loads(JsonFormat(utc=True).notice(STAMP, text))
    assert obj["text"] == f"STREAMLOG {text}"
    assert {k: obj[k] for k in ("notice", "bytes", "records", "first", "last", "reason")} == {
        "notice": "dropped",
        "bytes": 1400,
        "records": 10,
        "first": "2026-11-27T01:23:45.000001+00:00",
        "last": "2026-11-27T01:23:46.000002+00:00",
        "reason": "ENOSPC",
    }
    assert "program" not in obj  # no identity given
    # Words that are not key=value, and keys the record already has, stay text only.
    odd = json.loads(JsonFormat(utc=True).notice(STAMP, "odd word time=x program=y n=٣"))
    assert (odd["notice"], odd["time"], odd["n"]) == ("odd", STAMP, "٣")
    assert "program" not in odd and "word" not in odd
    assert json.loads(JsonFormat(utc=True).notice(STAMP, ""))["notice"] == ""


#: Records as streamlog wrote them before the identity and notice fields existed.
OLD_JSON_LINES = [
    b'{"time": "2026-11-27T01:23:45.678901+00:00", "stream": "status", "pid": 0,'
    b' "state": "STREAMLOG", "text": "STREAMLOG file offset=2048"}',
    b'{"time": "2026-11-27T01:23:45.678901+00:00", "stream": "stdout", "pid": 4242,'
    b' "text": "GET / 200"}',
    b'{"time": "2026-11-27T01:23:45.678901+00:00", "stream": "stderr", "pid": 4242,'
    b' "text": "bad \\ufffd", "b64": "YmFkIP8=", "partial": true}',
    b'{"time": "2026-11-27T01:23:45.678901+00:00", "stream": "status", "pid": 4242,'
    b' "text": "EXITED pid=4242 exitstatus=1 expected=false", "state": "EXITED",'
    b' "exitstatus": 1, "expected": false}',
    b'{"time": "2026-11-27T01:23:45.678901+00:00", "stream": "status", "pid": 0,'
    b' "state": "STREAMLOG", "text": "STREAMLOG dropped bytes=10 records=2 reason=EIO"}',
]


def new_json_lines() -> List[bytes]:
    """The same records as capture writes them now."""
    fmt = JsonFormat(utc=True)
    blob = b"".join(
        [
            fmt.notice(STAMP, "file offset=2048", IDENT),
            fmt.records(STAMP, "stdout", 4242, [(b"GET / 200\n", False)], IDENT),
            fmt.records(STAMP, "stderr", 4242, [(b"bad \xff", True)], IDENT),
            fmt.status(
                STAMP, 4242, "EXITED", {"pid": 4242, "exitstatus": 1, "expected": False}, IDENT
            ),
            fmt.notice(STAMP, "dropped bytes=10 records=2 reason=EIO", IDENT),
        ]
    )
    return blob.splitlines()


def test_old_and_new_json_records_parse_the_same() -> None:
    old = [parse(line) for line in OLD_JSON_LINES]
    new = [parse(line) for line in new_json_lines()]
    assert old == new
    assert [(r.stream, r.partial, r.data, r.pid) for r in new] == [
        ("status", False, b"STREAMLOG file offset=2048", 0),
        ("stdout", False, b"GET / 200", 4242),
        ("stderr", True, b"bad \xff", 4242),
        ("status", False, b"EXITED pid=4242 exitstatus=1 expected=false", 4242),
        ("status", False, b"STREAMLOG dropped bytes=10 records=2 reason=EIO", 0),
    ]


def test_record_seconds_reads_every_stamp_the_writer_writes() -> None:
    """The one stamp -> epoch seconds: the writer's own stamps back to their time."""
    for now in (0.0, 1.5, 1_795_742_625.123456, 4_102_444_800.000001):
        for utc in (True, False):
            assert record_seconds(timestamp(now, utc)) == pytest.approx(now, abs=1e-6)
    assert record_seconds("1970-01-01T00:00:01.5+00:00") == 1.5
    assert record_seconds("1970-01-01T01:00:00+01:00") == 0.0
    # Z is UTC, whatever the Python version's own reading of it.
    assert record_seconds("1970-01-01T00:00:02Z") == 2.0
    assert record_seconds("1970-01-01T00:00:02z") == 2.0
    # No offset: local time.
    local = datetime(2026, 12, 3, 10, 0, 0).timestamp()
    assert record_seconds("2026-12-03T10:00:00") == local


def test_record_seconds_is_none_for_a_bad_stamp() -> None:
    """One behaviour on a bad stamp, whatever is wrong with it: None, never an exception."""
    bad = ["", "-", "Z", "yesterday", "2026-13-01T00:00:00+00:00", "2026-12-03T25:00:00Z"]
    # local time out of range, a NUL, digits of another script
    bad += ["0001-01-01T00:00:00", "\x00", "٢٠٢٦-12-03"]
    for stamp in bad:
        assert record_seconds(stamp) is None, stamp
    assert record_seconds(123) is None  # type: ignore[arg-type]  # a JSON record's "time": 123
    assert record_seconds(None) is None  # type: ignore[arg-type]
