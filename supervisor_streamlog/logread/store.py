"""What a history store offers: one Protocol for the captured and the uncaptured log.

A process's log is read through a store -- :class:`~.logstore.LogStore` for a
streamlog file and its backups, :class:`~.rawstore.RawStore` for supervisord's
own child logs of a process streamlog does not capture.  The hub, the HTTP
handlers, the search worker and the forwarder use only what this Protocol
declares, so they never ask which kind they hold.

Positions are *offsets*, each store's own kind of integer (a byte offset in the
whole log, or two lanes packed into one): ``span`` says how many bytes lie
between two of them and ``resume_at`` where a client's cursor can resume.
"""

from __future__ import annotations

import dataclasses
from typing import Generator, List, Optional, Protocol, Tuple

from ..ondisk.files import Entry
from .search import SearchResult

__all__ = ["Page", "Pages", "SearchResult", "Store"]


@dataclasses.dataclass
class Page:
    """Records of one read, oldest first, and where the caller can go from there."""

    entries: List[Entry]
    start: int  #: offset of the first entry (the cursor when empty)
    end: int  #: end of the last entry (the cursor when empty)
    has_before: bool  #: older records exist (before ``start``)
    has_after: bool  #: newer complete records exist (from ``end``)
    #: A range of the log this page skipped because no file holds it any more
    #: (retention deleted it): going forward ``[start, first available)``, or
    #: a hole the page crossed before its first record; going backward the
    #: hole crossed, or ``[0, oldest available)`` once it reached the oldest record.
    missing: Optional[Tuple[int, int]] = None
    #: Lines skipped because they are not records (within the page's range,
    #: or anywhere it looked when it is empty).
    bad_lines: int = 0


#: One line of a log as read, not parsed: (offset, end, the line without its newline).
Line = Tuple[int, int, bytes]


@dataclasses.dataclass
class Lines:
    """Lines of one forward read, not parsed (``LogStore.read_forward_lines``)."""

    lines: List[Line]
    end: int  #: end of the last line (the cursor when empty)
    missing: Optional[Tuple[int, int]] = None  #: as :attr:`Page.missing`


class Pages(Protocol):
    """What the live hub reads of a store: pages around a cursor, and offset arithmetic."""

    def read_forward(self, start: Optional[int], limit: int, until: Optional[int] = None) -> Page:
        """Up to ``limit`` records from ``start`` (None: the oldest); none ends after ``until``."""
        ...

    def read_backward(self, end: Optional[int], limit: int) -> Page:
        """Up to ``limit`` records ending at or before ``end`` (None: the end), oldest first."""
        ...

    def span(self, start: int, end: int) -> int:
        """Bytes of log between two offsets (what queue limits count)."""
        ...

    def resume_at(self, cursor: int, live: int) -> int:
        """Where a client's ``cursor`` resumes, ``live`` being where live records stand."""
        ...


class Store(Pages, Protocol):
    """Reads one process's log by offset.  Blocking: call it off the IOLoop."""

    def bounds(self) -> Tuple[int, int]:
        """(first, last): the offsets of the oldest record and just past the newest."""
        ...

    def seek_time(self, when: float) -> int:
        """The cursor of the first record at or after ``when``; ValueError without times."""
        ...

    def search(
        self,
        pattern: str,
        *,
        regex: bool = False,
        ignore_case: bool = False,
        start: Optional[int] = None,
        backward: bool = True,
        limit: int = 100,
        budget: float = 0.5,
    ) -> SearchResult:
        """Records whose text matches, page by page, within a time ``budget``."""
        ...

    def export(
        self, start: Optional[int] = None, end: Optional[int] = None
    ) -> Generator[bytes, None, None]:
        """The log's bytes as the files hold them, [start, end), in chunks (close
        the generator to release the files early)."""
        ...
