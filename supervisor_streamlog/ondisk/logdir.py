"""What lives in ``logdir``: which names are process logs, and finding them.

The naming contract of :mod:`.paths` read backwards: ``<logdir>/<name>.log``
is process ``name:name``, ``<logdir>/<group>/<name>.log`` is ``group:name``
(each component quoted by :func:`~.paths.quote_name`), and next to each live
file its backups ``.1`` ... ``.N`` (``.gz`` when compressed) and the
compressor's ``.gz.tmp`` files (which files of one process make up its log
is :mod:`.files`'s to say).  Anything else -- hidden files, names
:func:`~.paths.quote_name` would not produce, symlinks leading out of
``logdir`` -- is not ours and is ignored.  The sidecar discovers processes
with :func:`discover` and tells, from an inotify event's name alone, which
process a file belongs to with :func:`parse_name`.

Threads: none; each call lists the directory afresh.  Example::

    discover("/var/log/streamlog")
    # {"web:web": ".../web.log", "workers:worker_0": ".../workers/worker_0.log"}
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from .paths import quote_name, unquote_name

#: A process's file or one of its backups (and their temporary files).
FILE_NAME = re.compile(r"^(?P<stem>.+)\.log(?P<suffix>(?:\.\d+)?(?:\.gz)?(?:\.tmp)?)$")


def component(text: str) -> Optional[str]:
    """The name a path component stands for, if quote_name() produces it."""
    if not text or text.startswith("."):
        return None
    name = unquote_name(text)
    return name if name and quote_name(name) == text else None


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` (symlinks resolved) is ``root`` or below it."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def group_dir(entry: os.DirEntry, root: str) -> Optional[str]:
    """The group a directory of ``logdir`` holds, if it is one (and inside ``root``,
    the real path of ``logdir``)."""
    group = component(entry.name)
    try:
        if group is None or not entry.is_dir(follow_symlinks=True):
            return None
        if entry.is_symlink() and not _inside(entry.path, root):
            return None
    except OSError:
        return None
    return group


def live_name(entry: os.DirEntry, root: str) -> Optional[str]:
    """The process name of a live log file in a directory listing, else None."""
    if not entry.name.endswith(".log"):
        return None
    name = component(entry.name[: -len(".log")])
    if name is None:
        return None
    try:
        if entry.is_symlink() and not _inside(entry.path, root):
            return None
        if not entry.is_file(follow_symlinks=True):
            return None
    except OSError:
        return None
    return name


def _listing(directory: str) -> List[os.DirEntry]:
    """A directory's entries sorted by name; none if it cannot be read."""
    try:
        return sorted(os.scandir(directory), key=lambda item: item.name)
    except OSError:
        return []


def discover(logdir: str) -> Dict[str, str]:
    """Every process log under ``logdir``: ``{"group:name": live_path}``.

    ``<logdir>/<name>.log`` is ``name:name``; ``<logdir>/<group>/<name>.log`` is
    ``group:name`` (names unquoted with :func:`~.paths.unquote_name`).  Backups,
    temporary and hidden files, names the writer would not produce, and
    symlinks leading out of ``logdir`` are ignored.
    """
    found: Dict[str, str] = {}
    root = os.path.realpath(logdir)
    for entry in _listing(logdir):
        name = live_name(entry, root)
        if name is not None:
            found[f"{name}:{name}"] = entry.path
            continue
        group = group_dir(entry, root)
        if group is None:
            continue
        for member in _listing(entry.path):
            name = live_name(member, root)
            # group == name lives at the top level; a file like that here is not ours.
            if name is not None and name != group:
                found[f"{group}:{name}"] = member.path
    return found


def parse_name(group: str, name: str) -> Optional[Tuple[str, bool]]:
    """The process a file name in a group directory ("" = logdir) belongs to,
    and whether it is the live file (not a backup or temporary file)."""
    match = FILE_NAME.match(name)
    if match is None:
        return None
    process = component(match.group("stem"))
    if process is None:
        return None
    return f"{group or process}:{process}", not match.group("suffix")


def hosts(logdir: str) -> Dict[str, str]:
    """The host directories of a central logdir (``layout = hosts``):
    ``{directory name: path}``; hidden ones (``.receive``) and names quote_name
    would not produce are not hosts."""
    found: Dict[str, str] = {}
    root = os.path.realpath(logdir)
    for entry in _listing(logdir):
        if group_dir(entry, root) is not None:
            found[entry.name] = entry.path
    return found


def discover_layout(logdir: str, layout: str = "processes") -> Dict[str, str]:
    """:func:`discover` for the ``layout`` setting: with ``hosts``, every
    process of every host directory, as ``HOST/group:name``."""
    if layout != "hosts":
        return discover(logdir)
    found: Dict[str, str] = {}
    for host, path in hosts(logdir).items():
        for spec, live in discover(path).items():
            found[f"{host}/{spec}"] = live
    return found
