"""Search: which records of a process's log match a pattern, scanning whole blocks.

:meth:`~.logstore.LogStore.search` runs :func:`search` over the store's
blocks, newest first (or oldest first), until it has ``limit`` matches or its
time budget is spent; :class:`Matcher` is what decides a match, and is also
used record by record by the store of supervisord's own logs (rawstore.py).
Patterns are a substring (bytes compared with the record's text) or a Python
regular expression (over the text decoded as UTF-8).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from typing import Iterator, List, Optional, Pattern, Union

from ..ondisk.files import Entry, LogFile, is_header
from ..ondisk.formats import Record, RecordError, parse
from .blocks import BadLines, Block, BlockStore, DeletedRange, Reader

#: Bytes scanned per block.
SEARCH_BLOCK = 256 * 1024
# Regex features that can match a record's text alone but not the same text
# inside a block of whole lines (where it follows "TIME STREAM " and precedes
# "\n"): such patterns are checked line by line.
_UNSAFE_REGEX = re.compile(r"\\A|\\Z|\(\?<|\(\?!|(?<!\[)\^")


@dataclasses.dataclass
class SearchResult:
    """Matches of one search call, and the cursor to search on from."""

    entries: List[Entry]  #: newest first going backward, oldest first going forward
    #: Where to continue (the ``start`` of the next call in the same direction);
    #: None when the history was covered to its end in that direction.
    next: Optional[int]
    scanned_bytes: int
    #: False when the time budget ran out first: ``entries`` are what was found
    #: so far and ``next`` goes on from where the scan stopped.
    complete: bool


def search(
    store: BlockStore,
    rd: Reader,
    files: List[LogFile],
    matcher: Matcher,
    start: Optional[int],
    backward: bool,
    limit: int,
    deadline: float,
) -> SearchResult:
    """Up to ``limit`` matches in ``files`` from ``start``, until ``time.monotonic()``
    reaches ``deadline`` (after at least one block, so every call makes progress)."""
    if not files or limit <= 0 or matcher.never:
        return SearchResult([], None, 0, True)
    complete = store._complete_end(rd, files)
    tally = BadLines()
    blocks: Iterator[Union[Block, DeletedRange]]
    if backward:
        end = complete if start is None else min(start, complete)
        blocks = store._backward_blocks(rd, files, end, SEARCH_BLOCK, tally)
    else:
        begin = files[0].base if start is None else max(start, 0)
        blocks = store._forward_blocks(rd, files, begin, SEARCH_BLOCK, tally)
    found: List[Entry] = []
    scanned = 0
    for item in blocks:
        if isinstance(item, DeletedRange):
            continue
        hits = matcher.scan(item)
        scanned += item.hi - item.lo
        if backward:
            hits.reverse()
        need = limit - len(found)
        if len(hits) >= need:
            found.extend(hits[:need])
            return SearchResult(
                found, found[-1].offset if backward else found[-1].end, scanned, True
            )
        found.extend(hits)
        if time.monotonic() >= deadline:
            cursor = item.offset if backward else item.end
            return SearchResult(found, cursor, scanned, False)
    return SearchResult(found, None, scanned, True)


class Matcher:
    """Finds the records of a block whose text matches, with whole-block operations.

    A substring is looked for with ``bytes.find`` over the block -- over the
    block lowercased for an ASCII substring with ``ignore_case`` in an ASCII
    block, 10x faster than an IGNORECASE regex -- and a regex runs over the
    decoded block.  Either finds candidate lines (a hit may be in a line's
    timestamp), and only those are parsed and checked on the record's text.
    Where that shortcut could miss a match (JSON lines, text that is not
    UTF-8, anchors such as ``^``), the block's lines are checked one by one.

    ``Matcher(pattern, regex, ignore_case)`` raises ValueError for a bad
    regular expression.  :meth:`matches` checks one record (what a store
    that has its records parsed already uses), :meth:`scan` a whole block.
    File headers never match a scan.
    """

    def __init__(self, pattern: str, regex: bool, ignore_case: bool) -> None:
        self.needle: Optional[bytes] = None
        self.folded: Optional[bytes] = None  # the lowercased ASCII needle of ignore_case
        self.regex: Optional[Pattern[str]] = None
        self.never = False  # a record's text never holds a newline
        self.block_safe = True
        if regex or ignore_case:
            source = pattern if regex else re.escape(pattern)
            flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
            try:
                self.regex = re.compile(source, flags)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
            self.block_safe = _UNSAFE_REGEX.search(source) is None
            self.never = not regex and "\n" in pattern
            if not regex and pattern.isascii():
                # For ASCII text, IGNORECASE is exactly ASCII case folding.
                self.folded = pattern.lower().encode("ascii")
        else:
            self.needle = pattern.encode("utf-8", "surrogateescape")
            self.never = b"\n" in self.needle
            # In JSON lines the text is escaped: a plain find only works when
            # the pattern is written the same way there.
            self.json_safe = json.dumps(pattern, ensure_ascii=False)[1:-1] == pattern

    def matches(self, record: Record) -> bool:
        """Whether ``record``'s text contains the pattern (or the regex matches it)."""
        if self.needle is not None:
            return self.needle in record.data
        assert self.regex is not None
        return self.regex.search(record.text) is not None

    def scan(self, block: Block) -> List[Entry]:
        """The matching records of ``block``, oldest first."""
        data = block.data
        # A file changes format only at a restart: looking at the first and the
        # last record is enough (and a search for "\n{" would cost more than the scan).
        last = data.rfind(b"\n", block.lo, block.hi - 1) + 1
        json_lines = data.startswith(b"{", block.lo) or data.startswith(b"{", max(last, block.lo))
        if self.needle is not None:
            if json_lines and not self.json_safe:
                return self._each_line(block)
            return self._by_find(block, data, self.needle)
        if self.folded is not None and not json_lines and data.isascii():
            return self._by_find(block, data.lower(), self.folded)
        if json_lines or not self.block_safe:
            return self._each_line(block)
        try:
            text = data[block.lo : block.hi].decode("utf-8")
        except UnicodeDecodeError:
            return self._each_line(block)
        return self._by_regex(block, text)

    def _by_find(self, block: Block, haystack: bytes, needle: bytes) -> List[Entry]:
        """Candidates by ``haystack.find(needle)``; ``haystack`` is the block's data, or
        a copy of it with the same length (lowercased)."""
        data = block.data
        hits: List[Entry] = []
        find, rfind = haystack.find, haystack.rfind
        pos, hi = block.lo, block.hi
        while True:
            at = find(needle, pos, hi)
            if at < 0:
                break
            end = find(b"\n", at, hi)
            if end < 0:
                break
            self._check(block.at, data, rfind(b"\n", 0, at) + 1, end, hits)
            pos = end + 1
        return hits

    def _by_regex(self, block: Block, text: str) -> List[Entry]:
        assert self.regex is not None
        data = block.data
        hits: List[Entry] = []
        same = len(text) == block.hi - block.lo  # ASCII: character and byte positions agree
        pos = mark = 0
        byte_mark = block.lo
        search = self.regex.search
        while True:
            match = search(text, pos)
            if match is None:
                break
            at = match.start()
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            if end < 0:
                break
            if same:
                self._check(block.at, data, block.lo + start, block.lo + end, hits)
            else:
                byte_start = byte_mark + len(text[mark:start].encode("utf-8"))
                byte_end = byte_start + len(text[start:end].encode("utf-8"))
                mark, byte_mark = start, byte_start
                self._check(block.at, data, byte_start, byte_end, hits)
            pos = end + 1
        return hits

    def _each_line(self, block: Block) -> List[Entry]:
        hits: List[Entry] = []
        offset = block.offset
        for line in block.lines():
            end = offset + len(line) + 1
            try:
                record = parse(line)
            except RecordError:
                offset = end
                continue
            if not is_header(record.stream, record.data) and self.matches(record):
                hits.append(Entry(offset, end, record))
            offset = end
        return hits

    def _check(self, offset: int, data: bytes, start: int, end: int, hits: List[Entry]) -> None:
        try:
            record = parse(data[start:end])
        except RecordError:
            return
        if not is_header(record.stream, record.data) and self.matches(record):
            hits.append(Entry(offset + start, offset + end + 1, record))
