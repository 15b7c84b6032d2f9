"""LineAssembler: chunks cut anywhere come back as whole lines, byte for byte."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor_streamlog.capture.assemble import LineAssembler, Piece, cut_point

LIMIT = 80

#: Bytes that make line assembly interesting: newlines, CR, NUL, ESC, UTF-8
#: lead and continuation bytes, and bytes that are never valid UTF-8.
INTERESTING = [
    b"\n",
    b"\r",
    b"\r\n",
    b"\0",
    b"\x1b[31m",
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"\xe2\x82\xac",
]
STREAM = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(INTERESTING),
        st.text(max_size=20).map(lambda s: s.encode("utf-8")),
        # Long runs without a newline, to exercise over-long lines.
        st.integers(min_value=1, max_value=300).map(lambda n: b"x" * n),
        st.integers(min_value=1, max_value=100).map(lambda n: "é€😀".encode() * n),
    ),
    max_size=30,
).map(b"".join)


def chunked(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    """Cut ``data`` at the (sorted, deduplicated) positions ``cuts``."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out = []
    prev = 0
    for point in points + [len(data)]:
        out.append(data[prev:point])
        prev = point
    return out


def feed_all(assembler: LineAssembler, chunks: Sequence[bytes]) -> List[Piece]:
    pieces: List[Piece] = []
    for index, chunk in enumerate(chunks):
        pieces.extend(assembler.feed(chunk, float(index)))
    pieces.extend(assembler.flush())
    return pieces


def records(pieces: Sequence[Piece]) -> List[Tuple[bytes, bool]]:
    """Flatten pieces into (line without newline, partial) records."""
    out = []
    for data, partial in pieces:
        if partial:
            out.append((data, True))
        else:
            out.extend((line, False) for line in data[:-1].split(b"\n"))
    return out


@settings(max_examples=300, deadline=None)
@given(
    data=STREAM,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    limit=st.sampled_from([80, 81, 83, 100, 16384]),
)
def test_chunks_split_anywhere_reassemble_exactly(data: bytes, cuts: List[int], limit: int) -> None:
    pieces = feed_all(LineAssembler(limit), chunked(data, cuts))
    assert b"".join(piece for piece, _ in pieces) == data
    for piece, partial in pieces:
        assert piece, "no empty pieces"
        if partial:
            assert b"\n" not in piece
            assert len(piece) <= limit
        else:
            assert piece.endswith(b"\n")
            for line in piece[:-1].split(b"\n"):
                assert len(line) <= limit


@settings(max_examples=200, deadline=None)
@given(data=STREAM, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_records_do_not_depend_on_how_the_stream_was_chunked(data: bytes, cuts: List[int]) -> None:
    whole = records(feed_all(LineAssembler(LIMIT), [data]))
    pieces = records(feed_all(LineAssembler(LIMIT), chunked(data, cuts)))
    assert pieces == whole


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(min_size=1, max_size=400).filter(lambda s: "\n" not in s),
    limit=st.integers(min_value=80, max_value=120),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_over_long_valid_utf8_is_cut_at_character_boundaries(
    text: str, limit: int, cuts: List[int]
) -> None:
    data = (text * 3).encode("utf-8") + b"\n"
    pieces = feed_all(LineAssembler(limit), chunked(data, cuts))
    for piece, _ in pieces:
        piece.decode("utf-8")  # every piece is valid UTF-8 on its own
        assert len(piece.rstrip(b"\n")) <= limit
    assert b"".join(p for p, _ in pieces) == data


@pytest.mark.parametrize("char", ["a", "é", "€", "😀"])
def test_cut_pieces_are_as_long_as_the_characters_allow(char: str) -> None:
    width = len(char.encode())
    data = (char * 100).encode() + b"\n"
    pieces = LineAssembler(LIMIT).feed(data, 0.0)
    *cut, last = pieces
    assert cut and all(partial for _, partial in cut)
    for piece, _ in cut:
        # The longest whole number of characters that fits the limit.
        assert len(piece) == LIMIT // width * width
    assert last[1] is False and last[0].endswith(b"\n")


def test_bytes_that_are_not_utf8_are_cut_exactly_at_the_limit() -> None:
    data = b"\x80" * 200 + b"\n"  # continuation bytes only: no boundary to find
    pieces = LineAssembler(LIMIT).feed(data, 0.0)
    assert pieces == [(b"\x80" * 80, True), (b"\x80" * 80, True), (b"\x80" * 40 + b"\n", False)]


def test_cut_point_never_moves_back_more_than_three_bytes() -> None:
    line = b"a" * 10 + b"\x80" * 100
    assert cut_point(line, 50) == 50
    line = b"a" * 49 + b"\xf0\x9f\x98\x80" + b"a" * 10  # 4-byte char at 49..52
    assert cut_point(line, 50) == 49
    assert cut_point(line, 52) == 49
    assert cut_point(line, 53) == 53


def test_bytes_pass_through_unchanged() -> None:
    data = b"a\r\nb\0c\x1b[1m\xff\n"
    assert LineAssembler(LIMIT).feed(data, 0.0) == [(data, False)]


def test_line_of_exactly_the_limit_is_one_record() -> None:
    assembler = LineAssembler(LIMIT)
    assert assembler.feed(b"x" * LIMIT + b"\n", 0.0) == [(b"x" * LIMIT + b"\n", False)]
    assert assembler.feed(b"y" * LIMIT, 1.0) == []  # still waiting for its newline
    assert assembler.pending == b"y" * LIMIT
    assert assembler.feed(b"y", 2.0) == [(b"y" * LIMIT, True)]
    assert assembler.pending == b"y"


def test_complete_lines_around_an_over_long_one_keep_their_order() -> None:
    data = b"short\n" + b"L" * 200 + b"\nafter\n"
    pieces = LineAssembler(LIMIT).feed(data, 0.0)
    assert pieces == [
        (b"short\n", False),
        (b"L" * 80, True),
        (b"L" * 80, True),
        (b"L" * 40 + b"\n", False),
        (b"after\n", False),
    ]


def test_pending_and_pending_since() -> None:
    assembler = LineAssembler(LIMIT)
    assert assembler.pending == b"" and assembler.pending_since is None
    assert not assembler.due(1000.0, 0.5)

    assert assembler.feed(b"prompt", 10.0) == []
    assert assembler.pending == b"prompt"
    assert assembler.pending_since == 10.0
    # More of the same unfinished line: it has been waiting since the first byte.
    assert assembler.feed(b"> ", 11.0) == []
    assert assembler.pending == b"prompt> "
    assert assembler.pending_since == 10.0

    # A newline completes it; what follows starts a new wait.
    assert assembler.feed(b"yes\nnext", 12.0) == [(b"prompt> yes\n", False)]
    assert assembler.pending == b"next"
    assert assembler.pending_since == 12.0

    assert assembler.feed(b"\n", 13.0) == [(b"next\n", False)]
    assert assembler.pending == b"" and assembler.pending_since is None


def test_due_after_partial_timeout() -> None:
    assembler = LineAssembler(LIMIT)
    assembler.feed(b"waiting", 100.0)
    assert not assembler.due(100.0, 0.5)
    assert not assembler.due(100.49, 0.5)
    assert assembler.due(100.5, 0.5)
    assert assembler.due(200.0, 0.5)
    assert assembler.due(100.0, 0.0)  # a zero timeout writes unfinished lines at once


def test_flush_returns_the_unfinished_line_once() -> None:
    assembler = LineAssembler(LIMIT)
    assert assembler.flush() == []
    assembler.feed(b"abc\ndef", 1.0)
    assert assembler.flush() == [(b"def", True)]
    assert assembler.pending == b"" and assembler.pending_since is None
    assert assembler.flush() == []
    assert not assembler.due(10.0, 0.5)
    # The line goes on after the flush: only the rest is in the next piece.
    assert assembler.feed(b"ghi\n", 2.0) == [(b"ghi\n", False)]


def test_empty_chunk_changes_nothing() -> None:
    assembler = LineAssembler(LIMIT)
    assert assembler.feed(b"", 1.0) == []
    assert assembler.pending_since is None
    assembler.feed(b"x", 2.0)
    assert assembler.feed(b"", 3.0) == []
    assert assembler.pending == b"x" and assembler.pending_since == 2.0


def test_remainder_of_a_cut_line_keeps_waiting() -> None:
    assembler = LineAssembler(LIMIT)
    pieces = assembler.feed(b"z" * 170, 5.0)
    assert pieces == [(b"z" * 80, True), (b"z" * 80, True)]
    assert assembler.pending == b"z" * 10
    assert assembler.pending_since == 5.0
    assert assembler.due(5.5, 0.5)


def test_big_chunk_of_many_lines_is_one_piece() -> None:
    """The hot path: a chunk of ordinary complete lines is passed on as it is."""
    chunk = b"".join(b"line %05d of a big chunk\n" % i for i in range(2000))
    pieces = LineAssembler(16384).feed(chunk, 0.0)
    assert pieces == [(chunk, False)]
