"""Where a process's log file lives, and why nothing can escape ``logdir``.

``<logdir>/<name>.log`` when the group has the process's name (a plain
``[program:name]`` with ``numprocs = 1``), else ``<logdir>/<group>/<name>.log``.

Process and group names come from supervisord.conf and are not trusted: every
character outside ``[A-Za-z0-9_.@+=,-]`` is written as ``%XX`` (its UTF-8
bytes), and so is a leading dot, so a name can never be ``..``, a hidden file,
a path separator or a NUL.  The mapping is reversible with :func:`unquote_name`.

Threads: none; pure functions.  Example::

    log_path("/var/log/streamlog", "workers", "worker 0")
    # "/var/log/streamlog/workers/worker%200.log"
"""

from __future__ import annotations

import os
import string
from typing import Tuple

_SAFE = frozenset(string.ascii_letters + string.digits + "_.@+=,-")


def quote_name(name: str) -> str:
    """Turn a supervisord process or group name into one safe path component."""
    if not name:
        # A lone "%" is never produced for a non-empty name (each "%" there is
        # followed by two hex digits), so it cannot collide; "%00" would, with "\0".
        return "%"
    out = []
    for index, char in enumerate(name):
        if char in _SAFE and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape"))
    return "".join(out)


def unquote_name(component: str) -> str:
    """Invert :func:`quote_name`."""
    from urllib.parse import unquote

    if component == "%":
        return ""
    return unquote(component, errors="surrogateescape")


def relative_log_path(group: str, name: str) -> str:
    """The log file's path relative to ``logdir``."""
    if group == name or not group:
        return quote_name(name) + ".log"
    return os.path.join(quote_name(group), quote_name(name) + ".log")


def log_path(logdir: str, group: str, name: str) -> str:
    """The log file's absolute path; always inside ``logdir``."""
    path = os.path.join(logdir, relative_log_path(group, name))
    # Belt and braces: quote_name already makes this impossible.
    if os.path.commonpath([os.path.abspath(path), os.path.abspath(logdir)]) != os.path.abspath(
        logdir
    ):
        raise ValueError(f"log path for {group}:{name} escapes {logdir}")
    return path


def split_process(spec: str) -> Tuple[str, str]:
    """``group:name`` or ``name`` -> ``(group, name)``."""
    group, sep, name = spec.partition(":")
    if not sep:
        return spec, spec
    return group, name


def display_name(group: str, name: str) -> str:
    """A process's name as supervisorctl shows it: ``web`` for ``web:web``, else
    ``group:name``.  Identifiers (URLs, metrics labels, the protocol's ``process``)
    stay ``group:name``; this is for people."""
    return name if group == name else f"{group}:{name}"


# ---------------------------------------------------------------- layout = hosts
# A central logdir (``supervisor-streamlog receive``) holds one directory per
# host, each laid out as above.  A process there is ``HOST/group:name``, HOST
# being the host's directory name (quote_name of the host: it holds no ``/``,
# so the first ``/`` of a spec ends it).


def host_spec(host_component: str, spec: str) -> str:
    """``HOST/group:name`` from a host's directory name and a host-local spec."""
    return f"{host_component}/{spec}"


def split_host(spec: str) -> Tuple[str, str]:
    """``HOST/group:name`` -> ``(HOST, "group:name")``; ``("", spec)`` without a host."""
    host, sep, rest = spec.partition("/")
    return (host, rest) if sep else ("", spec)


def host_display(host_component: str, group: str, name: str) -> str:
    """``web1 / web`` or ``web1 / grp:worker``: a central process's name for people."""
    return f"{unquote_name(host_component)} / {display_name(group, name)}"
