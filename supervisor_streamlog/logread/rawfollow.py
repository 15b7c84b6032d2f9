"""Follows an uncaptured process's child logs live: supervisord's own files, polled.

The lanes, offsets, pieces and rotation rules are :mod:`.rawstore`'s (its
module docstring): the follower finds the same records history does, as they
are written.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Tuple

from ..ondisk.files import Entry
from ..ondisk.formats import Record
from .rawstore import RawFile, cut_after, lane_end, lane_pair, pack, raw_record


class RawFollower:
    """Follows a raw log's files live (polled), across supervisord's rotation.

    Starts at the end of what is there.  Each :meth:`poll` reads what is new
    (stdout lane, then stderr lane), and hands out its records with their
    offsets (lines, and pieces of long ones as the module doc says: history
    finds the same records) -- or, when ``wanted()`` is false, only counts
    them (``on_advance``), as :class:`~.follow.FileFollower` does.  A file renamed
    away (rotation) is read to its end, an unfinished last line included (as
    a ``partial`` record), before the new one is opened; that, a
    truncation, or a file that grows past ``LANE``, is ``on_reset(position)``.
    """

    def __init__(
        self,
        files: List[RawFile],
        on_entries: Callable[[List[Entry]], None],
        on_reset: Callable[[int], None],
        wanted: Callable[[], bool],
        on_advance: Callable[[int, int, int], None],
    ) -> None:
        self.files = files
        self.on_entries = on_entries
        self.on_reset = on_reset
        self.wanted = wanted
        self.on_advance = on_advance
        self._fds: List[Optional[int]] = [None] * len(files)
        self._ids: List[Tuple[int, int]] = [(0, 0)] * len(files)
        #: Lane positions (file position - base) of the next record.
        self.positions = [0] * len(files)
        for index, raw in enumerate(files):
            fd = self._open(index)
            if fd is not None:
                end = lane_end(fd, os.fstat(fd).st_size, 0)
                raw.rebase(end)  # to a multiple of LANE // 2: a multiple of PIECE too
                self.positions[index] = end - raw.base

    @property
    def position(self) -> int:
        return pack(lane_pair(self.positions))

    def _open(self, index: int) -> Optional[int]:
        fd = self.files[index].open()
        if fd is not None:
            st = os.fstat(fd)
            self._fds[index], self._ids[index] = fd, (st.st_dev, st.st_ino)
        return fd

    def close(self) -> None:
        for fd in self._fds:
            if fd is not None:
                os.close(fd)
        self._fds = [None] * len(self.files)

    def poll(self) -> int:
        """Read what is new in both lanes; returns the bytes read."""
        counting = not self.wanted()
        total = 0
        for index in range(len(self.files)):
            total += self._poll_lane(index, counting)
        return total

    def _poll_lane(self, index: int, counting: bool) -> int:
        raw = self.files[index]
        fd = self._fds[index]
        if fd is None:
            fd = self._open(index)
            if fd is None:
                return 0
            raw.base = 0
            if self.positions[index]:
                self._restart(index)
        pos = raw.base + self.positions[index]
        size = os.fstat(fd).st_size
        if size < pos:  # truncated
            self._restart(index)
            return 0
        # Read up to the next place a long line may be cut (PIECE to 2 * PIECE
        # bytes): a line that ends within it is whole (no cut before its
        # newline), one that does not end within a full read is a piece.
        budget = cut_after(pos, raw.base) - pos
        data = os.pread(fd, min(budget, size - pos), pos) if size > pos else b""
        last = data.rfind(b"\n")
        if last >= 0 or len(data) == budget:
            end = pos + last + 1 if last >= 0 else pos + budget
            if raw.rebase(end):
                # Past the lane's width: go on from a later start, like a new file.
                self.positions[index] = pos - raw.base
                self.on_reset(self.position)
            if last >= 0:
                self._deliver(index, data[: last + 1], counting)
            else:
                self._deliver_partial(index, data, counting)
            return end - pos
        if size > pos + len(data):
            return 0  # the file shrank meanwhile: see at the next poll
        try:
            named = os.stat(raw.path)
        except OSError:
            return 0
        if (named.st_dev, named.st_ino) != self._ids[index]:
            if os.fstat(fd).st_size > size:
                return 0  # written to just before the rename: read that first
            # Rotated, and read to its end: what is left is the first half of a
            # line the rotation cut (supervisor issue 749), sent as partial; the
            # second half is the new file's first line.
            if data:
                self._deliver_partial(index, data, counting)
            os.close(fd)
            self._fds[index] = None
            if self._open(index) is not None:
                self._restart(index)
            return len(data)
        return 0

    def _restart(self, index: int) -> None:
        """The lane starts again at the start of its file (rotated, truncated)."""
        self.files[index].base = 0
        self.positions[index] = 0
        self.on_reset(self.position)

    def _deliver(self, index: int, data: bytes, counting: bool) -> None:
        start = self.position
        if counting:
            self.positions[index] += len(data)
            self.on_advance(start, self.position, data.count(b"\n"))
            return
        raw = self.files[index]
        entries = []
        for text in data[:-1].split(b"\n"):
            offset = self.position
            self.positions[index] += len(text) + 1
            entries.append(Entry(offset, self.position, raw_record(raw, text)))
        self.on_entries(entries)

    def _deliver_partial(self, index: int, text: bytes, counting: bool) -> None:
        """One record that no newline followed (``partial``): a piece of a long
        line, or the end of a rotated file."""
        start = self.position
        self.positions[index] += len(text)
        if counting:
            self.on_advance(start, self.position, 1)
            return
        record = Record("", self.files[index].stream, text, True)
        self.on_entries([Entry(start, self.position, record)])
