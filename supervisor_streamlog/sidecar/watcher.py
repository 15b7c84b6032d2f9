"""The watcher: wakes each process's followers when its files change, and finds new processes.

Used by the sidecar, which supervisord runs as a program of its own::

    [program:streamlog-web]
    command = supervisor-streamlog serve -c %(here)s/supervisord.conf

Waking up: the :class:`Watcher` uses inotify (:mod:`.inotify`) on ``logdir``
and each group directory and polls a process's followers once per IOLoop
iteration however many events arrived; elsewhere, or with
``STREAMLOG_NO_INOTIFY=1``, a 100 ms periodic poll.  A slow safety poll (1 s)
runs in both modes for events that were missed.  A poll reads at most the
follower's ``chunk_size`` bytes (4 MiB) so one busy file cannot starve the
loop; a follower with more to read is polled again on the next iteration.
Which names are process logs is :mod:`..ondisk.logdir`'s to say.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Callable, Dict, List, Optional, Set, Tuple

from tornado.ioloop import IOLoop, PeriodicCallback

from ..logread.follow import FileFollower
from ..ondisk.logdir import discover, group_dir, parse_name
from ..ondisk.paths import quote_name, split_process
from .inotify import (
    DIR_MASK,
    IN_CREATE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    Inotify,
    inotify_wanted,
)

log = logging.getLogger(__name__)


def _spec(spec: str) -> str:
    """``name`` or ``group:name`` -> ``group:name``."""
    group, name = split_process(spec)
    return f"{group}:{name}"


class Watcher:
    """Wakes the followers of ``logdir`` when their files change, and finds new processes.

    ``on_new_process(spec, path)`` is called for every process file present
    at :meth:`start` and for each one that appears later (once per process:
    a file deleted and created again is not new).  :meth:`watch` attaches a
    follower to a process (``group:name``; a plain ``name`` means
    ``name:name``); several followers per process are allowed, though the
    server is meant to keep one and fan out (see :mod:`.follow`).
    New processes are found from inotify events, and by the safety poll
    (every ``safety_interval`` seconds) in both modes.  Everything runs on the
    IOLoop current at :meth:`start`.
    """

    def __init__(
        self,
        logdir: str,
        on_new_process: Optional[Callable[[str, str], None]] = None,
        poll_interval: float = 0.1,
        safety_interval: float = 1.0,
        use_inotify: Optional[bool] = None,
    ) -> None:
        self.logdir = logdir
        self.on_new_process = on_new_process
        self.poll_interval = poll_interval
        self.safety_interval = safety_interval
        self.use_inotify = inotify_wanted() if use_inotify is None else use_inotify
        #: ``inotify`` or ``poll`` once started.
        self.mode = "stopped"
        self.followers: Dict[str, List[FileFollower]] = {}
        #: Every process seen: spec -> live path.
        self.known: Dict[str, str] = {}
        self.io_loop: Optional[IOLoop] = None
        self._inotify: Optional[Inotify] = None
        self._wds: Dict[int, str] = {}  # watch descriptor -> group component ("" = logdir)
        self._dirs: Dict[str, int] = {}
        self._dirty: Set[str] = set()
        self._names: Dict[Tuple[str, str], Optional[Tuple[str, bool]]] = {}
        self._rescan = False
        self._scheduled = False
        self._timers: List[PeriodicCallback] = []
        self.polls = 0
        self.events = 0

    # ------------------------------------------------------------ public

    def watch(self, spec: str, follower: FileFollower) -> None:
        """Poll ``follower`` whenever the files of process ``spec`` change."""
        spec = _spec(spec)
        followers = self.followers.setdefault(spec, [])
        if follower not in followers:
            followers.append(follower)
        self._mark(spec)

    def unwatch(self, spec: str, follower: FileFollower) -> None:
        """Stop polling ``follower`` (it is not closed: the caller owns it)."""
        spec = _spec(spec)
        followers = self.followers.get(spec, [])
        if follower in followers:
            followers.remove(follower)
        if not followers:
            self.followers.pop(spec, None)

    def start(self) -> None:
        """Begin watching, on the current IOLoop (inotify if possible, else polling)."""
        if self.io_loop is not None:
            return
        self.io_loop = IOLoop.current()
        if self.use_inotify:
            try:
                self._inotify = Inotify()
            except (OSError, AttributeError) as exc:  # AttributeError: no such libc symbol
                log.warning("inotify unavailable (%s): polling %s instead", exc, self.logdir)
        if self._inotify is not None:
            self.mode = "inotify"
            self.io_loop.add_handler(self._inotify.fd, self._on_inotify, IOLoop.READ)
            self._sync_watches()
        else:
            self.mode = "poll"
            self._timers.append(PeriodicCallback(self.poll_all, self.poll_interval * 1000))
        self._timers.append(PeriodicCallback(self._safety, self.safety_interval * 1000))
        for timer in self._timers:
            timer.start()
        self._discover()
        self.poll_all()

    def stop(self) -> None:
        """Stop watching (followers stay open; the caller owns them)."""
        for timer in self._timers:
            timer.stop()
        self._timers = []
        if self._inotify is not None:
            if self.io_loop is not None:
                self.io_loop.remove_handler(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        self._wds.clear()
        self._dirs.clear()
        self.io_loop = None
        self.mode = "stopped"

    def poll_all(self) -> None:
        """Poll every follower (on the next IOLoop iteration)."""
        self._mark(*self.followers)

    # ------------------------------------------------------------ polling

    def _mark(self, *specs: str) -> None:
        self._dirty.update(specs)
        self._schedule()

    def _schedule(self) -> None:
        if self.io_loop is not None and not self._scheduled:
            self._scheduled = True
            self.io_loop.add_callback(self._run)

    def _run(self) -> None:
        """One round: each changed process's followers polled once, however many events."""
        self._scheduled = False
        if self.io_loop is None:
            return
        if self._rescan:
            self._rescan = False
            self._discover()
        dirty, self._dirty = self._dirty, set()
        again: List[str] = []
        for spec in dirty:
            for follower in list(self.followers.get(spec, ())):
                self.polls += 1
                try:
                    follower.poll()
                except Exception:
                    log.exception("following %s failed", follower.path)
                    continue
                if follower.pending:
                    again.append(spec)
        if again:
            self._mark(*again)  # the next iteration: let other work in between

    def _safety(self) -> None:
        """The slow poll: missed events, a logdir created late, new processes."""
        if self._inotify is not None:
            self._sync_watches()
        self._rescan = True
        self.poll_all()

    def _discover(self) -> None:
        for spec, path in discover(self.logdir).items():
            if spec in self.known:
                continue
            self.known[spec] = path
            if self.on_new_process is not None:
                try:
                    self.on_new_process(spec, path)
                except Exception:
                    log.exception("on_new_process failed for %s", spec)

    # ------------------------------------------------------------ inotify

    def _add_watch(self, group: str) -> None:
        assert self._inotify is not None
        if group in self._dirs:
            return
        path = os.path.join(self.logdir, quote_name(group)) if group else self.logdir
        try:
            wd = self._inotify.add_watch(path, DIR_MASK)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                log.warning("cannot watch %s: %s", path, exc)
            return
        self._wds[wd] = group
        self._dirs[group] = wd

    def _forget_watch(self, wd: int) -> None:
        group = self._wds.pop(wd, None)
        if group is not None and self._dirs.get(group) == wd:
            del self._dirs[group]

    def _sync_watches(self) -> None:
        """Watch ``logdir`` and each group directory not watched yet."""
        self._add_watch("")
        if "" not in self._dirs:
            return
        root = os.path.realpath(self.logdir)
        try:
            entries = list(os.scandir(self.logdir))
        except OSError:
            return
        for entry in entries:
            group = group_dir(entry, root)
            if group is not None and group not in self._dirs:
                self._add_watch(group)
                # Files may have been created, and written, before the watch.
                self._rescan = True
                self._dirty.update(s for s in self.followers if split_process(s)[0] == group)

    def _on_inotify(self, fd: int, events: int) -> None:
        if self._inotify is None:
            return
        try:
            batch = self._inotify.read_events()
        except OSError as exc:
            log.warning("reading inotify events failed (%s): polling everything", exc)
            batch = [(-1, IN_Q_OVERFLOW, "")]
        for wd, mask, name in batch:
            self.events += 1
            self._event(wd, mask, name)
        self._schedule()

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            self._rescan = True
            self._dirty.update(self.followers)
            return
        if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
            if mask & IN_MOVE_SELF and self._inotify is not None:
                self._inotify.rm_watch(wd)  # the name it was watched under is gone
            self._forget_watch(wd)
            self._dirty.update(self.followers)
            return
        group = self._wds.get(wd)
        if group is None or not name:
            return
        if mask & IN_ISDIR:
            if not group and mask & (IN_CREATE | IN_MOVED_TO):
                self._sync_watches()
                self._rescan = True
            return
        # A rotation renames every backup: tens of thousands of events in a
        # burst, for a few hundred names.  Parse each name once.
        key = (group, name)
        try:
            parsed = self._names[key]
        except KeyError:
            if len(self._names) > 4096:
                self._names.clear()
            parsed = self._names[key] = parse_name(group, name)
        if parsed is None:
            return
        spec, live = parsed
        if spec in self.followers:
            self._dirty.add(spec)
        if live and spec not in self.known:
            self._rescan = True
