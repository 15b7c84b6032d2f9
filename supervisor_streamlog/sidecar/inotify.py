"""inotify through ctypes: the few calls the watcher needs, and no dependency.

Linux only; :class:`Inotify` raises OSError elsewhere (or when the kernel
refuses, e.g. ``max_user_instances`` reached), and :func:`inotify_wanted` says
whether to try at all (``STREAMLOG_NO_INOTIFY=1`` turns it off).  The
:class:`~.watcher.Watcher` falls back to polling either way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import struct
import sys
from typing import List, Tuple

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = 0o2000000

DIR_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


@functools.cache
def _libc() -> ctypes.CDLL:
    # find_library() may run ldconfig: once is enough.
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Inotify:
    """The few inotify calls the watcher needs, through ctypes (no dependency)."""

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, "inotify is Linux only")
        libc = _libc()
        self._init1 = libc.inotify_init1
        self._init1.argtypes = [ctypes.c_int]
        self._init1.restype = ctypes.c_int
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        self._rm.restype = ctypes.c_int
        fd = self._init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd: int = fd

    def add_watch(self, path: str, mask: int) -> int:
        """Watch ``path``; returns the watch descriptor."""
        wd = self._add(self.fd, os.fsencode(path), mask)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_add_watch {path}: {os.strerror(code)}")
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        """Stop watching what ``wd`` watches."""
        self._rm(self.fd, wd)  # fails only if already gone: nothing to do then

    def read_events(self, limit: int = 16) -> List[Tuple[int, int, str]]:
        """Events queued now, ``(wd, mask, name)``, from at most ``limit`` reads
        of 64 KiB (a busy writer must not keep us here); never blocks."""
        events: List[Tuple[int, int, str]] = []
        for _ in range(limit):
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
                pos += _EVENT.size
                name = data[pos : pos + length].rstrip(b"\0")
                pos += length
                events.append((wd, mask, os.fsdecode(name)))
        return events

    def close(self) -> None:
        """Close the inotify descriptor (every watch goes with it)."""
        try:
            os.close(self.fd)
        except OSError:
            pass


def inotify_wanted() -> bool:
    """Whether to try inotify: on Linux, unless ``STREAMLOG_NO_INOTIFY=1``."""
    return sys.platform.startswith("linux") and os.environ.get("STREAMLOG_NO_INOTIFY") != "1"
