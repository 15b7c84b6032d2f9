"""The files of one process: which exist, in what order, and where each begins.

Role: the one owner of which files make up a process's log (the live
``<name>.log`` and its backups ``.1`` ... ``.N``, plain or ``.gz``); the history
store, the followers and ``tail`` ask :class:`ProcessFiles` and keep no rule of
their own.  Also the header record, gzip sizes and the end of the last record.

Invariants: every file the capture starts begins with a header record,
``TIMESTAMP status STREAMLOG file offset=N``, N being the bytes of the
process's log written before it (retention's deletions included).  So a
position in a log is one integer, the *offset* (N plus the position inside the
uncompressed file), valid across rotation, compression, retention and a
reader's restart.  A listing taken while the writer renames files meets every
file once, in order (the rule, at :class:`ProcessFiles`; tests/test_files.py
steps the real writer through every state to hold it).

Threads: any; :class:`ProcessFiles` is safe to share.  Example::

    for item in process_files("/var/log/streamlog/web.log"):   # oldest first
        print(item.path, item.base, item.end)
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple, TypeVar

from .formats import Record, RecordError, parse
from .gzipped import gunzip

T = TypeVar("T")

HEADER_PREFIX = "file offset="
_HEADER_DATA = b"STREAMLOG " + HEADER_PREFIX.encode("ascii")
#: Backup indexes a walk looks at, at most.
MAX_BACKUPS = 10_000
#: Missing backup indexes in a row that a walk passes over (see the rule, 2).
HOLE = 2
#: How much of a file's start holds its header, at most.
HEADER_LIMIT = 4096
_MAX_BLOCK = 1024 * 1024
_RELIST = 3  # new walks of a listing whose files do not follow each other

#: How a file on disk is recognised: st_dev, st_ino, st_mtime_ns, st_size.
#: No path: rotation renames a backup without changing its contents.
FileKey = Tuple[int, int, int, int]
#: ``read(pos, count)``: up to ``count`` bytes of a file's contents at ``pos``.
Read = Callable[[int, int], bytes]


def header_text(base: int) -> str:
    """The text of the header record of a file that begins at offset ``base``."""
    return f"{HEADER_PREFIX}{base}"


def is_header(stream: str, data: bytes) -> bool:
    """Whether a record is a file header (bookkeeping, not the child's output)."""
    return stream == "status" and data.startswith(_HEADER_DATA)


def header_base(line: bytes) -> Optional[int]:
    """The offset in a file's first line (with or without its newline), or
    None when that line is not a header record."""
    line = line.split(b"\n", 1)[0]
    try:
        record = parse(line)
    except RecordError:
        return None
    if not is_header(record.stream, record.data):
        return None
    digits = record.data[len(_HEADER_DATA) :].split(b" ", 1)[0]
    return int(digits) if digits.isdigit() else None


# ---------------------------------------------------------------- one file


def gzip_size(fd: int, file_size: int) -> int:
    """The uncompressed size a gzip file's trailer gives (modulo 4 GiB, as gzip
    keeps it); 0 for a file too short to hold a trailer.  ``file_size`` is the
    size on disk: the trailer is its last 4 bytes."""
    if file_size < 18:  # a gzip header and trailer alone take 18 bytes
        return 0
    trailer = os.pread(fd, 4, file_size - 4)
    return int.from_bytes(trailer, "little") if len(trailer) == 4 else 0


def record_end(read: Read, end: int, start: int = 0, block: int = 4096) -> Optional[int]:
    """Just past the last newline in bytes ``[start, end)`` of a file: the end
    of its last complete record.  None when there is no newline there.

    Reads backwards, ``block`` bytes first, then twice as much each time (up
    to 1 MiB): the usual answer costs one small read, a record of any length
    still being written a few.
    """
    pos, size = end, max(1, block)
    while pos > start:
        take = min(size, pos - start)
        newline = read(pos - take, take).rfind(b"\n")
        if newline >= 0:
            return pos - take + newline + 1
        pos -= take
        size = min(size * 2, max(block, _MAX_BLOCK))
    return None


@dataclass(frozen=True)
class FileMeta:
    """What a listing needs to know of one file, read through one open descriptor."""

    key: FileKey
    base: Optional[int]  #: from the header; None when the file has none
    size: int  #: of the (uncompressed) contents
    read: int  #: bytes read to find out


def read_meta(path: str) -> Optional[FileMeta]:
    """Header offset and contents size of one file; None if it is not there."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if path.endswith(".gz"):
            size = gzip_size(fd, st.st_size)
            raw = os.pread(fd, 64 * 1024, 0)
            head = gunzip(raw, HEADER_LIMIT)
            count = len(raw) + (4 if st.st_size >= 18 else 0)
        else:
            size = st.st_size
            head = os.pread(fd, HEADER_LIMIT, 0)
            count = len(head)
    except OSError:
        return None
    finally:
        os.close(fd)
    return FileMeta(key, header_base(head), size, count)


def read_base(path: str) -> Optional[int]:
    """The offset a file begins at, from its header; None if it has none."""
    meta = read_meta(path)
    return None if meta is None else meta.base


def uncompressed_size(path: str) -> int:
    """Size of a file's contents (a ``.gz`` file's trailer holds it, modulo 4 GiB)."""
    if not path.endswith(".gz"):
        return os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return gzip_size(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the walk


def names(live: str, index: int) -> Tuple[str, ...]:
    """The names to look at, in this order, for file ``index`` of a log (0: the
    live file): ``.gz``, plain, ``.gz`` again (rule 1)."""
    if index == 0:
        return (live,)
    packed = f"{live}.{index}.gz"
    return (packed, f"{live}.{index}", packed)


def walk(
    live: str,
    look: Callable[[str, int], Optional[T]],
    first: int = 0,
    max_backups: int = MAX_BACKUPS,
) -> Iterator[T]:
    """What ``look(name, index)`` finds for each file of the log, newest first.

    ``look`` stats or opens one name and returns None when there is nothing
    (usable) by it; the first name of an index that gives something stands
    for that index.  The walk starts at index ``first`` (0: the live file) and
    goes by the rule at :class:`ProcessFiles` (1, 2); a caller that found what
    it looked for simply stops iterating.  Repeats are the caller's to drop
    (rule 3): it knows what identifies what ``look`` gave.
    """
    misses = 0
    for index in range(first, max_backups + 1):
        found: Optional[T] = None
        for name in names(live, index):
            found = look(name, index)
            if found is not None:
                break
        if found is not None:
            misses = 0
            yield found
        elif index > 0:
            misses += 1
            if misses > HOLE:
                return


def backup_path(path: str, index: int) -> Optional[str]:
    """The existing backup ``.index`` of ``path`` (plain or ``.gz``), if any."""
    for name in names(path, index):
        if os.path.exists(name):
            return name
    return None


# ---------------------------------------------------------------- listings


@dataclass(frozen=True)
class LogFile:
    """One file of a process's log."""

    path: str
    base: int  # offset of its first byte in the process's log
    size: int  # bytes of (uncompressed) content
    #: The file as listed: a reader checks it still has this device and inode.
    key: FileKey = (0, 0, 0, 0)

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def compressed(self) -> bool:
        return self.path.endswith(".gz")


def open_listed(f: LogFile) -> Optional[int]:
    """A read descriptor on the file ``f`` lists; None when it is gone, or its
    name is another file's now (not the device and inode listed).

    Every reader opens a listed file through here: a listing is a moment's,
    and between it and the open the capture may rotate, compress or delete
    the file.  Other errors (permission) raise, as ``os.open``'s.
    """
    try:
        fd = os.open(f.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if (st.st_dev, st.st_ino) != f.key[:2]:
        os.close(fd)
        return None
    return fd


class ProcessFiles:
    """The files of one process's log (live file ``live`` and its backups), by the rule.

    Each file's header offset and size are cached by :data:`FileKey`, so a
    listing per request costs a few ``stat`` calls and no reads.  Safe to
    share between threads.

    What the writer and compressor do (capture/), while a reader looks
    ------------------------------------------------------------------
    The live file is ``<name>.log`` (index 0), backups ``<name>.log.1`` (the
    newest) ... ``.N``, each plain or ``.gz``.  Under the writer's lock a
    rotation removes ``.N``, renames ``.N-1`` to ``.N`` ... ``.1`` to ``.2``,
    then the live file to ``.1``, and creates a new live file, whose first line
    (the header) it writes at once.  The compressor writes ``.k.gz.tmp``, renames
    it to ``.k.gz`` and only then removes the plain ``.k``.  Retention removes
    the oldest files.  A reader looks at one name at a time while this goes on,
    so it can meet: a missing index (the one a rename just emptied), no live file
    (renamed to ``.1``, the new one not created yet), a live file whose header is
    not complete yet, ``.k`` and ``.k.gz`` both (the same bytes), one file at two
    indexes (moved between two looks), and ``.tmp`` files.

    The rule
    --------
    1. Look at the live name first, then at the backups from ``.1`` upward;
       for each index at ``.k.gz``, then ``.k``, then ``.k.gz`` once more
       (:func:`names`), and take the first found.  Files only move to a higher
       index, so a walk upward meets every file that stays in the log while it
       runs: a file can move ahead of the walk, never behind it.  The compressor
       renames the ``.gz`` into place before it removes the plain file, so
       ``.k`` missing means ``.k.gz`` is there by the next look (the third): no
       compression can slip between two looks unseen.  A ``.gz`` is complete
       once it has its name, and holds the same bytes as the plain file, so it
       is taken when both are there (and a backup that is compressed, the usual
       kind, costs one look).  ``.tmp`` files never count.
    2. A missing backup index is passed over; the walk stops at the
       ``HOLE + 1``-th missing index in a row (:func:`walk`).  A rename empties
       one index at a time, so a hole of up to ``HOLE`` indexes is taken as
       transient (or as a file deleted by hand) and the files past it still count.
    3. Newest first as met; a listing gives them oldest first.  A file met twice
       counts once: the same device, inode and header, or a range that overlaps a
       newer file's (compressed between the two looks).
    4. Where each begins: its header's offset; a file without one (written by
       something else, or a live file whose header is not complete yet) begins
       where the file before it ends (0 for the oldest).
    5. In a listing the files follow each other (each one's end is the next one's
       base).  One that does not was probably taken in the middle of a rotation:
       :class:`ProcessFiles` takes it again (a few times, 1 ms apart), and
       remembers a shape that stays so (a hole that is really there) instead of
       looking again on every call.

    tests/test_files.py holds the rule to this: it runs the real writer one file
    operation at a time and lists the files in every state it passes through,
    and walks while the writer moves files between any two looks.
    """

    def __init__(self, live: str, max_backups: int = MAX_BACKUPS) -> None:
        self.live = live
        self.max_backups = max_backups
        #: Bytes read for headers and gzip trailers (cache misses).
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._meta: Dict[FileKey, FileMeta] = {}
        self._odd: Optional[List[Tuple[int, int, int]]] = None  # a listing with a hole

    def files(self) -> List[LogFile]:
        """The files now, oldest first, with their offsets (rules 3 to 5)."""
        files = self.probe()
        if not contiguous(files) and _shape(files) != self._odd:
            # Probably a rotation renaming files while we looked: look again.
            for _attempt in range(_RELIST):
                time.sleep(0.001)
                again = self.probe()
                settled = _shape(again) == _shape(files)
                files = again
                if settled or contiguous(files):
                    break
            if not contiguous(files):
                # How the files really are (a hole, a damaged header): say so
                # once, not with a new look on every call.
                self._odd = _shape(files)
        files = _untangle(files)
        keys = {f.key for f in files}
        with self._lock:
            for key in [key for key in self._meta if key not in keys]:
                del self._meta[key]
        return files

    def probe(self) -> List[LogFile]:
        """One walk, oldest first, as met: neither looked at again nor untangled."""
        found: List[Tuple[str, FileMeta]] = []
        seen = set()
        for path, meta in walk(self.live, self._look, 0, self.max_backups):
            # The same file (device, inode) with the same header: once.  Not the
            # inode alone: a file removed during the walk frees its number for
            # the next one created (a .gz.tmp renamed into place further on).
            identity = (meta.key[0], meta.key[1], meta.base)
            if identity not in seen:
                seen.add(identity)
                found.append((path, meta))
        found.reverse()
        files: List[LogFile] = []
        for path, meta in found:
            base = meta.base
            if base is None:
                base = files[-1].end if files else 0
            files.append(LogFile(path, base, meta.size, meta.key))
        return files

    def _look(self, path: str, index: int) -> Optional[Tuple[str, FileMeta]]:
        """What is at ``path`` now: a ``stat``, and the header and size from the
        cache, or read at once (so they are those of the file met, wherever it
        moves next)."""
        st = _stat(path)
        if st is None:
            return None
        with self._lock:
            meta = self._meta.get((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        if meta is None:
            meta = read_meta(path)
            if meta is None:
                return None  # removed meanwhile
            with self._lock:
                self.bytes_read += meta.read
                self._meta[meta.key] = meta
        return path, meta

    def resize(self, key: FileKey, size: int) -> None:
        """The real contents size of a file (a ``.gz`` whose trailer said otherwise:
        it holds the size modulo 4 GiB); the next listing uses it."""
        with self._lock:
            meta = self._meta.get(key)
            base = meta.base if meta is not None else None
            self._meta[key] = FileMeta(key, base, size, 0)


def process_files(live: str, max_backups: int = MAX_BACKUPS) -> List[LogFile]:
    """The live file and its backups, oldest first, with their offsets (the rule)."""
    return ProcessFiles(live, max_backups).files()


def contiguous(files: List[LogFile]) -> bool:
    """Whether each file begins where the one before it ends."""
    return all(a.end == b.base for a, b in zip(files, files[1:]))


def _stat(path: str) -> Optional[os.stat_result]:
    # A walk meets missing names (the .gz of a plain backup, the indexes past
    # the last): os.access answers those without the cost of an exception.
    if not os.access(path, os.F_OK):
        return None
    try:
        return os.stat(path)
    except OSError:
        return None  # gone since: as missing as if looked at a moment later


def _shape(files: List[LogFile]) -> List[Tuple[int, int, int]]:
    """What identifies a listing, whatever the live file's growth."""
    return [(f.key[0], f.key[1], f.base) for f in files]


def _untangle(files: List[LogFile]) -> List[LogFile]:
    """Drop older files that overlap newer ones: offsets must only grow (rule 3).

    A ``.gz`` file's size comes from its trailer, which a damaged file gets
    wrong: such a file is kept, cut at the next file's base, and reading it
    finds its real size.
    """
    kept: List[LogFile] = []
    for f in reversed(files):
        if kept and f.end > kept[-1].base:
            if not f.compressed or f.base >= kept[-1].base:
                continue
            f = dataclasses.replace(f, size=kept[-1].base - f.base)
        kept.append(f)
    kept.reverse()
    return kept


class Entry(NamedTuple):
    """One record of a process's log, with where it is.

    ``offset`` is the offset of its first byte and ``end`` the offset just past
    its newline: the next record's ``offset``.  A reader that has seen a record
    resumes from its ``end`` -- that is what a cursor is.  (A named tuple, not a
    frozen dataclass: readers make one per record, and a tuple is made in a
    third of the time.)
    """

    offset: int
    end: int
    record: Record
