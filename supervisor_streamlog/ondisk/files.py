"""The files of one process: which exist, in what order, and where each begins.

Every file the capture starts begins with a header record,
``TIMESTAMP status STREAMLOG file offset=N``, where N is the number of bytes
of this process's log written before this file (in all earlier files, those
deleted by retention included).  So a position in a process's log is one
integer, the *offset*, that stays valid across rotation, compression, the
deletion of old backups and a restart of the reader: it is the file's N plus
the position inside the (uncompressed) file.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from typing import List, Optional

from .formats import Record, RecordError, parse

HEADER_PREFIX = "file offset="
_HEADER_DATA = b"STREAMLOG " + HEADER_PREFIX.encode("ascii")


def header_text(base: int) -> str:
    """The text of the header record of a file that begins at offset ``base``."""
    return f"{HEADER_PREFIX}{base}"


def is_header(stream: str, data: bytes) -> bool:
    """Whether a record is a file header (bookkeeping, not the child's output)."""
    return stream == "status" and data.startswith(_HEADER_DATA)


def _first_line(path: str, limit: int = 4096) -> bytes:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.readline(limit)


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


def read_base(path: str) -> Optional[int]:
    """The offset a file begins at, from its header; None if it has none."""
    try:
        return header_base(_first_line(path))
    except (OSError, EOFError, gzip.BadGzipFile):
        return None


def uncompressed_size(path: str) -> int:
    """Size of a file's contents (a ``.gz`` file's trailer holds it, modulo 4 GiB)."""
    if not path.endswith(".gz"):
        return os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return int(struct.unpack("<I", handle.read(4))[0])


def backup_path(path: str, index: int) -> Optional[str]:
    """The existing backup ``.index`` of ``path`` (plain or ``.gz``), if any."""
    for name in (f"{path}.{index}", f"{path}.{index}.gz"):
        if os.path.exists(name):
            return name
    return None


@dataclass(frozen=True)
class LogFile:
    """One file of a process's log."""

    path: str
    base: int  # offset of its first byte in the process's log
    size: int  # bytes of (uncompressed) content

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def compressed(self) -> bool:
        return self.path.endswith(".gz")


def process_files(live: str, max_backups: int = 10_000) -> List[LogFile]:
    """The live file and its backups, oldest first, with their offsets.

    A file without a header (written by something else) is placed right after
    the file before it.
    """
    names: List[str] = []
    for index in range(1, max_backups + 1):
        name = backup_path(live, index)
        if name is None:
            break
        names.append(name)
    names.reverse()
    if os.path.exists(live):
        names.append(live)
    files: List[LogFile] = []
    for name in names:
        try:
            size = uncompressed_size(name)
        except OSError:
            continue  # removed meanwhile
        base = read_base(name)
        if base is None:
            base = files[-1].end if files else 0
        files.append(LogFile(name, base, size))
    return files


@dataclass(frozen=True)
class Entry:
    """One record of a process's log, with where it is.

    ``offset`` is the offset of its first byte and ``end`` the offset just past
    its newline: the next record's ``offset``.  A reader that has seen a record
    resumes from its ``end`` -- that is what a cursor is.
    """

    offset: int
    end: int
    record: Record
