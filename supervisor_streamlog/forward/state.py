"""Where the forwarder is: per destination, the offset up to which each process is delivered.

One small JSON file per destination in ``forward_state`` (default
``<logdir>/.forward``; hidden names are never taken for process logs)::

    {"version": 1, "logdir": "/var/log/supervisor/streamlog",
     "destination": "relp://logs.example:2514",
     "offsets": {"web:web": 1234567, "workers:worker_0": 89},
     "lost": {"web:web": 0}, "saved": 1764745200.5}

An offset is the one integer of docs/format.md that stays valid across
rotation, compression, retention and restarts: everything before it was
acknowledged by the destination.  The file is replaced atomically (written
beside, fsynced, renamed), so a crash leaves the old state or the new one,
never half of either: the forwarder then re-sends what was sent after the
last save (at-least-once; a receiver tells duplicates by their offsets).

Threads: none of its own; each lane saves its :class:`State` from the
forwarder's asyncio loop (every second while records flow, always at exit),
and ``forward --status`` reads the files with :func:`read_only`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

VERSION = 1


class StateError(ValueError):
    """A state file that cannot be used, worded for the person who runs the forwarder."""


def state_directory(forward_state: Optional[str], logdir: str) -> str:
    """Where the state files go: ``forward_state``, else ``<logdir>/.forward``."""
    return forward_state or os.path.join(logdir, ".forward")


def state_path(directory: str, url: str) -> str:
    """The state file of one destination: its URL made into a safe file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", url).strip("._") or "destination"
    return os.path.join(directory, safe + ".json")


@dataclass
class State:
    """What one destination has acknowledged, by process (``group:name``)."""

    path: str
    logdir: str
    destination: str
    offsets: Dict[str, int] = field(default_factory=dict)
    #: Bytes of records retention deleted before they were delivered, by process.
    lost: Dict[str, int] = field(default_factory=dict)
    saved: float = 0.0

    @classmethod
    def load(cls, path: str, logdir: str, destination: str) -> State:
        """Read a destination's state; a new one if there is none.

        Raises :class:`StateError` for a file from another logdir or another
        destination (a copied or misconfigured state directory: resuming from
        its offsets would skip or repeat records).  A file that cannot be
        parsed is moved aside (``.corrupt``) and the forwarder starts from
        the oldest record on disk: duplicates, never a loss.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return cls(path, logdir, destination)
        except OSError as exc:
            raise StateError(f"cannot read forward state {path}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
            offsets = _offsets(data["offsets"])
            lost = _offsets(data.get("lost", {}))
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            aside = f"{path}.corrupt"
            os.replace(path, aside)
            raise CorruptState(
                f"forward state {path} is not valid ({exc}); moved to {aside}: "
                "starting again from the oldest record on disk (receivers may see duplicates)"
            ) from None
        if os.path.abspath(data.get("logdir", "")) != os.path.abspath(logdir):
            raise StateError(
                f"forward state {path} belongs to logdir {data.get('logdir')!r}, not {logdir!r}: "
                "point forward_state at a directory of this logdir's own"
            )
        if data.get("destination") != destination:
            raise StateError(
                f"forward state {path} belongs to destination {data.get('destination')!r}, "
                f"not {destination!r}"
            )
        return cls(path, logdir, destination, offsets, lost, float(data.get("saved", 0.0)))

    def save(self) -> None:
        """Replace the file atomically (write beside, fsync, rename, fsync the directory)."""
        self.saved = time.time()
        data: Dict[str, Any] = {
            "version": VERSION,
            "logdir": self.logdir,
            "destination": self.destination,
            "offsets": dict(sorted(self.offsets.items())),
            "lost": {k: v for k, v in sorted(self.lost.items()) if v},
            "saved": self.saved,
        }
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


class CorruptState(StateError):
    """The state file was unreadable and has been moved aside (see :meth:`State.load`)."""


def _offsets(value: Any) -> Dict[str, int]:
    if not isinstance(value, dict):
        raise TypeError("offsets must be an object")
    result: Dict[str, int] = {}
    for key, offset in value.items():
        if not isinstance(key, str) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"bad offset {key!r}: {offset!r}")
        result[key] = offset
    return result


def load_or_start(path: str, logdir: str, destination: str, report: Any) -> State:
    """:meth:`State.load`, where a corrupt file is reported and replaced by a new state."""
    try:
        return State.load(path, logdir, destination)
    except CorruptState as exc:
        report(str(exc))
        return State(path, logdir, destination)


def read_only(path: str) -> Optional[Dict[str, Any]]:
    """A state file's data as it is, for ``forward --status`` (None if unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
