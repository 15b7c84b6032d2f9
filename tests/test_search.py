"""search.Matcher on its own: what a match is, for one record and over a block of records."""

from __future__ import annotations

import pytest

from supervisor_streamlog.logread.blocks import Block
from supervisor_streamlog.logread.search import Matcher
from supervisor_streamlog.ondisk.files import header_text
from supervisor_streamlog.ondisk.formats import parse

STAMP = b"2026-11-27T01:23:45.678901+00:00"


def line(stream: bytes, text: bytes) -> bytes:
    return STAMP + b" " + stream + b" " + text + b"\n"


def test_matches_one_record() -> None:
    record = parse(line(b"stdout", b"GET /items 200 caf\xc3\xa9").rstrip(b"\n"))
    assert Matcher("/items", False, False).matches(record)
    assert not Matcher("/ITEMS", False, False).matches(record)
    assert Matcher("/ITEMS", False, True).matches(record)
    assert Matcher("CAFÉ", False, True).matches(record)
    assert Matcher(r"^GET /\w+ 2\d\d", True, False).matches(record)
    assert not Matcher(r"^2026", True, False).matches(record)  # the text, not the line
    with pytest.raises(ValueError, match="bad regular expression"):
        Matcher("(", True, False)
    assert Matcher("two\nlines", False, False).never


@pytest.mark.parametrize(
    ("pattern", "regex", "ignore_case"),
    [("needle", False, False), ("NEEDLE", False, True), (r"need\w+$", True, False)],
)
def test_scan_finds_the_matching_records_of_a_block(
    pattern: str, regex: bool, ignore_case: bool
) -> None:
    lines = [
        line(b"status", b"STREAMLOG " + header_text(100).encode()),
        line(b"stdout", b"hay"),
        line(b"stderr", b"a needle"),
        line(b"stdout", b"more hay"),
        line(b"stdout", b"needle again"),
    ]
    data = b"cut piece\n" + b"".join(lines) + b"half a rec"
    lo = len(b"cut piece\n")
    block = Block(100, data, lo, len(data) - len(b"half a rec"))
    hits = Matcher(pattern, regex, ignore_case).scan(block)
    want = [2, 4] if not regex else [2]  # ``$``: the end of the record's text
    starts = [100 + lo + sum(map(len, lines[:n])) for n in range(len(lines) + 1)]
    assert [(e.offset, e.end) for e in hits] == [(starts[n], starts[n + 1]) for n in want]
    assert [e.record.data for e in hits] == [parse(lines[n][:-1]).data for n in want]
    # The header never matches, even when the pattern is in it.
    assert Matcher("STREAMLOG", False, False).scan(block) == []
