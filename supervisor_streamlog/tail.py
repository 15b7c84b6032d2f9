"""``supervisor-streamlog tail``: the last records of a process, and new ones as they come.

Reads the files the capture writes (live file and, for ``-n`` beyond it, the
newest backup), so it works whether or not the sidecar runs.  Follows across
rotation the way ``tail -F`` does: the old file is drained before switching.
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, TextIO

from .config import Config
from .formats import RecordError, parse
from .paths import log_path, split_process


def _render(line: bytes) -> str:
    try:
        record = parse(line)
    except RecordError:
        return line.decode("utf-8", "replace")
    mark = "+" if record.partial else ""
    return f"{record.time} {record.stream}{mark} {record.text}"


def last_lines(path: str, count: int, block: int = 65536) -> List[bytes]:
    """The last ``count`` lines of ``path``, reading backwards from the end."""
    if count <= 0:
        return []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
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
    for name in names:
        group, process = split_process(name)
        path = log_path(config.logdir, group, process)
        paths.append(path)
        for line in last_lines(path, count):
            prefix = f"{name} | " if len(names) > 1 else ""
            out.write(prefix + _render(line) + "\n")
    out.flush()
    if not follow:
        return 0
    states = {}
    for path in paths:
        try:
            st = os.stat(path)
            states[path] = (st.st_ino, st.st_size, b"")
        except FileNotFoundError:
            states[path] = (0, 0, b"")
    while deadline is None or time.monotonic() < deadline:
        for name, path in zip(names, paths):
            states[path] = _follow_once(name if len(names) > 1 else "", path, states[path], out)
        out.flush()
        time.sleep(poll)
    return 0


def _follow_once(label: str, path: str, state: tuple, out: TextIO) -> tuple:
    inode, offset, rest = state
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return state
    if st.st_ino != inode and inode:
        # Rotated (maybe several times since we last looked): drain the file we
        # were reading from where we stopped, then every newer backup, oldest first.
        for name, start in _rotated_since(path, inode, offset):
            rest = _emit(rest + _read(name, start), label, out)
        inode, offset = st.st_ino, 0
    elif not inode:
        inode = st.st_ino
    if st.st_size < offset:
        offset = 0  # truncated
    if st.st_size > offset:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        offset += len(data)
        rest = _emit(rest + data, label, out)
    return inode, offset, rest


def _rotated_since(path: str, inode: int, offset: int) -> List[tuple]:
    """(file, start offset) for what was written after (inode, offset), oldest first."""
    found: List[tuple] = []
    index = 1
    while True:
        name = f"{path}.{index}"
        try:
            st = os.stat(name)
        except FileNotFoundError:
            if os.path.exists(name + ".gz"):
                found.append((name + ".gz", 0))
                index += 1
                continue
            return []  # lost track (retention removed it): resume from the live file
        if st.st_ino == inode:
            return [(name, offset)] + list(reversed(found))
        found.append((name, 0))
        index += 1


def _read(name: str, start: int) -> bytes:
    try:
        if name.endswith(".gz"):
            import gzip

            with gzip.open(name, "rb") as packed:
                return packed.read()[start:]
        with open(name, "rb") as handle:
            handle.seek(start)
            return handle.read()
    except FileNotFoundError:
        return b""


def _emit(data: bytes, label: str, out: TextIO) -> bytes:
    *lines, rest = data.split(b"\n")
    prefix = f"{label} | " if label else ""
    for line in lines:
        out.write(prefix + _render(line) + "\n")
    return rest
