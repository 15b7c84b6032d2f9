"""supervisord's view of every process, polled over XML-RPC and broadcast on change.

Every :data:`STATE_POLL` seconds ``getAllProcessInfo`` runs on a thread of its
own (``streamlog-rpc``: a slow supervisord must not hold the IOLoop); the
answer is applied on the IOLoop, to the ``states`` mapping the poller is given
and is the only writer of (the registry, the restart counter, the WebSocket
handler and process control read it).  A state frame goes to every page
when a state, pid, start, stop or exit status changes, ``REMOVED`` when a
process is gone; each process's info is offered to ``rawpoll``, which shows
uncaptured processes from supervisord's own child logs.  Without a
supervisord (``rpc`` None: a central sidecar) nothing is polled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, Dict, List, Optional, Set

import tornado.ioloop

from .hub import Hub
from .rawpoll import RawPoller

log = logging.getLogger("supervisor_streamlog.server")

#: How often supervisord's process states are read (s).
STATE_POLL = 1.0
_STATE_KEYS = ("state", "pid", "start", "stop", "exitstatus")


class StatePoller:
    """supervisord's process states (``state`` frames), kept and broadcast on change."""

    def __init__(
        self, rpc: Any, hub: Hub, raw: RawPoller, states: Dict[str, Dict[str, Any]]
    ) -> None:
        #: Makes a supervisord XML-RPC proxy; None when there is no supervisord to ask.
        self.rpc = rpc
        self.hub = hub
        self.raw = raw
        #: supervisord's view of every process (``state`` frames), by spec.
        self.states = states
        #: Why the last poll failed; None after one that answered.
        self.rpc_error: Optional[str] = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-rpc")
        self._timer: Optional[tornado.ioloop.PeriodicCallback] = None

    @property
    def up(self) -> Optional[bool]:
        """None without a supervisord, else whether its XML-RPC answered the last poll."""
        return None if self.rpc is None else self.rpc_error is None

    def status(self) -> str:
        """``supervisor`` of ``/api/processes``: ``ok``, ``n/a`` or the last error."""
        return (self.rpc_error or "ok") if self.rpc else "n/a"

    def start(self) -> None:
        """Poll now and every :data:`STATE_POLL` seconds (only with a supervisord to ask)."""
        self._timer = tornado.ioloop.PeriodicCallback(self.poll, STATE_POLL * 1000)
        self._timer.start()
        tornado.ioloop.IOLoop.current().add_callback(self.poll)

    def stop(self) -> None:
        """Poll no more; a call under way finishes on its thread, unread."""
        if self._timer is not None:
            self._timer.stop()
        self._executor.shutdown(wait=False)

    async def poll(self) -> None:
        """Read process states from supervisord; broadcast the changes."""
        loop = asyncio.get_running_loop()
        try:
            infos: List[Dict[str, Any]] = await loop.run_in_executor(
                self._executor, lambda: self.rpc().supervisor.getAllProcessInfo()
            )
        except Exception as exc:
            if self.rpc_error is None:
                log.warning("cannot read process states from supervisord: %r", exc)
            self.rpc_error = repr(exc)
            return
        self.rpc_error = None
        seen: Set[str] = set()
        for info in infos:
            spec = f"{info['group']}:{info['name']}"
            seen.add(spec)
            state = {
                "process": spec,
                "state": info["statename"],
                "pid": info["pid"],
                "start": info["start"],
                "stop": info["stop"],
                "exitstatus": info["exitstatus"],
                "description": info["description"],
            }
            self.raw.offer(spec, info)
            previous = self.states.get(spec)
            self.states[spec] = state
            # "description" holds the uptime: it changes every second, the state does not.
            if previous is None or any(previous[k] != state[k] for k in _STATE_KEYS):
                self.hub.broadcast({"type": "state", **state})
        for spec in set(self.states) - seen:
            del self.states[spec]
            self.hub.broadcast({"type": "state", "process": spec, "state": "REMOVED"})
        self.raw.keep_only(seen)
