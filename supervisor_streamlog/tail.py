"""``supervisor-streamlog tail``: the last records of a process, and new ones as they come.

Reads the files the capture writes (live file and, for ``-n`` beyond it, the
newest backup), so it works whether or not the sidecar runs.  Follows across
rotation the way ``tail -F`` does: the old file is drained before switching.
"""

from __future__ import annotations

import gzip
import os
import time
from typing import BinaryIO, List, Optional, TextIO, Tuple

from .config import Config
from .ondisk.files import is_header, record_end, walk
from .ondisk.formats import RecordError, parse
from .ondisk.paths import log_path, split_process


def _render(line: bytes) -> Optional[str]:
    """A record as tail prints it; None for a file header (bookkeeping)."""
    try:
        record = parse(line)
    except RecordError:
        return line.decode("utf-8", "replace")
    if is_header(record.stream, record.data):
        return None
    mark = "+" if record.partial else ""
    return f"{record.time} {record.stream}{mark} {record.text}"


def last_lines(path: str, count: int, block: int = 65536, end: Optional[int] = None) -> List[bytes]:
    """The last ``count`` lines of ``path`` before offset ``end`` (default: its
    end), reading backwards."""
    if count <= 0:
        return []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        size = handle.seek(0, os.SEEK_END)
        end = size if end is None else min(end, size)
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= count:
            step = min(block, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines[-count:]


def _record_end(path: str, size: int) -> int:
    """The offset just past the last complete record before ``size``."""
    with open(path, "rb") as handle:
        fd = handle.fileno()
        found = record_end(lambda pos, count: os.pread(fd, count, pos), size)
    return size if found is None else found


def run(
    config: Config,
    names: List[str],
    count: int,
    follow: bool,
    out: TextIO,
    poll: float = 0.2,
    deadline: Optional[float] = None,
) -> int:
    """Print the last ``count`` records of each name; follow if asked."""
    paths = []
    states = {}
    for name in names:
        group, process = split_process(name)
        path = log_path(config.logdir, group, process)
        paths.append(path)
        # Where following starts: taken before reading the last lines, and the
        # last lines read up to exactly there, so nothing falls in between.
        try:
            st = os.stat(path)
            states[path] = (st.st_ino, _record_end(path, st.st_size), b"")
        except FileNotFoundError:
            states[path] = (0, 0, b"")
        prefix = f"{name} | " if len(names) > 1 else ""
        shown = [
            text
            for text in map(_render, last_lines(path, count + 1, end=states[path][1]))
            if text is not None
        ]
        for text in shown[-count:] if count > 0 else []:
            out.write(prefix + text + "\n")
    out.flush()
    if not follow:
        return 0
    while deadline is None or time.monotonic() < deadline:
        for name, path in zip(names, paths):
            states[path] = _follow_once(name if len(names) > 1 else "", path, states[path], out)
        out.flush()
        time.sleep(poll)
    return 0


def _follow_once(label: str, path: str, state: tuple, out: TextIO) -> tuple:
    inode, offset, rest = state
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return state
    with handle:
        st = os.fstat(handle.fileno())  # the file we read, not whatever the name is now
        if st.st_ino != inode and inode:
            # Rotated (maybe several times since we last looked): drain the file we
            # were reading from where we stopped, then every newer backup, oldest first.
            for older, start in _rotated_since(path, inode, offset, st.st_ino):
                with older:
                    older.seek(start)
                    rest = _emit(rest + older.read(), label, out)
            offset = 0
        inode = st.st_ino
        if st.st_size < offset:
            offset = 0  # truncated
        handle.seek(offset)
        data = handle.read()
    offset += len(data)
    rest = _emit(rest + data, label, out)
    return inode, offset, rest


def _rotated_since(path: str, inode: int, offset: int, live: int) -> List[Tuple[BinaryIO, int]]:
    """Open files holding what was written after (inode, offset), oldest first.

    The backups are walked by the rule of :mod:`.ondisk.files`, and opened as
    they are found, so a rotation during the scan cannot take their contents
    away; the live file (inode ``live``) is skipped if a rotation already made
    it a backup.
    """
    found: List[Tuple[BinaryIO, int]] = []
    for handle, ino in walk(path, _open_file, 1):
        if ino == live:
            handle.close()
            continue
        if ino == inode:
            return [(handle, offset)] + list(reversed(found))
        found.append((handle, 0))
    for opened, _ in found:
        opened.close()
    return []  # lost track (retention removed it): go on from the live file


def _open_file(name: str, index: int) -> Optional[Tuple[BinaryIO, int]]:
    """One file of the log, opened (``.gz`` decompressed as it is read), and its inode."""
    try:
        if name.endswith(".gz"):
            handle: BinaryIO = gzip.open(name, "rb")  # type: ignore[assignment]
        else:
            handle = open(name, "rb")
    except FileNotFoundError:
        return None
    return handle, os.fstat(handle.fileno()).st_ino


def _emit(data: bytes, label: str, out: TextIO) -> bytes:
    *lines, rest = data.split(b"\n")
    prefix = f"{label} | " if label else ""
    for line in lines:
        text = _render(line)
        if text is not None:
            out.write(prefix + text + "\n")
    return rest
