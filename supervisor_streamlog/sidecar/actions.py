"""Process control from the tail page: start, stop, restart and signal (opt-in).

Off unless the config says so, and refused by config validation without
``username``/``password``::

    [streamlog]
    username = ops
    password = {SHA}...
    actions = true

The page asks ``GET /api/actions`` whether control is on and for its token,
then sends ``POST /api/process/NAME/ACTION`` (``start``, ``stop``,
``restart``, ``signal?signal=HUP``) with the token in ``X-Streamlog-Token``.
A POST is carried out only when all of these hold:

* the Basic-auth credentials (``BaseHandler.prepare``, as for every request);
* the ``Origin`` (or, without one, the ``Referer``) is this server's own
  origin or one of ``allowed_origins``: browsers send the cached Basic
  credentials with a cross-site form POST, but always with that page's origin;
* the token: an HMAC of the user with a secret made when the sidecar starts.
  Only a page of this origin can read it (no CORS), and a cross-site form
  cannot set a header at all;
* the name is a process supervisord reports, and not the sidecar itself; a
  signal is one of :data:`SIGNALS`.

The calls go to supervisord over its own XML-RPC (the URL it gives its
children, the ``[supervisorctl]`` credentials, as supervisorctl would), on a
thread and a proxy of their own: a ``startProcess`` waits for ``startsecs``
and must not hold back the state polling that feeds the page.  Faults become
a 409 with a sentence and the fault's name; every action is logged with the
user and the client's address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import hashlib
import hmac
import http.client
import logging
import os
import secrets
import xmlrpc.client
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlparse

from ..config import Config
from ..ondisk.paths import display_name
from ..rpc import ProxyFactory, supervisor_proxy
from .auth import Access
from .handlers import BaseHandler

log = logging.getLogger("supervisor_streamlog.actions")

ACTIONS = ("start", "stop", "restart", "signal")
#: The signals the page may send (supervisord's names, without ``SIG``).
SIGNALS = ("HUP", "INT", "QUIT", "TERM", "KILL", "USR1", "USR2")
TOKEN_HEADER = "X-Streamlog-Token"

#: supervisord's fault codes (supervisor.xmlrpc.Faults) by the names the page shows.
FAULT_NAMES = {
    1: "UNKNOWN_METHOD",
    2: "INCORRECT_PARAMETERS",
    3: "BAD_ARGUMENTS",
    6: "SHUTDOWN_STATE",
    10: "BAD_NAME",
    11: "BAD_SIGNAL",
    20: "NO_FILE",
    21: "NOT_EXECUTABLE",
    30: "FAILED",
    40: "ABNORMAL_TERMINATION",
    50: "SPAWN_ERROR",
    60: "ALREADY_STARTED",
    70: "NOT_RUNNING",
}
#: What each fault means for the person who pressed the button ({name}, {action}).
SENTENCES = {
    "SHUTDOWN_STATE": "supervisord is shutting down",
    "BAD_NAME": "supervisord has no process {name}",
    "BAD_SIGNAL": "supervisord refused the signal",
    "NO_FILE": "{name}'s command was not found",
    "NOT_EXECUTABLE": "{name}'s command is not executable",
    "FAILED": "supervisord could not {action} {name}",
    "ABNORMAL_TERMINATION": "{name} exited while starting: see its log",
    "SPAWN_ERROR": "{name} could not be started (spawn error): see its log",
    "ALREADY_STARTED": "{name} is already running",
    "NOT_RUNNING": "{name} is not running",
}
DONE = {"start": "started", "stop": "stopped", "restart": "restarted"}


class ActionError(Exception):
    """A refused or failed action: the HTTP status, a sentence and a short name."""

    def __init__(self, status: int, message: str, fault: str) -> None:
        super().__init__(message)
        self.status = status
        self.fault = fault


def basic_user(header: Optional[str]) -> str:
    """The user name of a Basic ``Authorization`` header (already checked), or ""."""
    if not header or not header.startswith("Basic "):
        return ""
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def same_origin(origin: str, host: str, allowed: Optional[str]) -> bool:
    """Whether a request's ``Origin`` (or ``Referer``) is this server or an allowed origin."""
    parsed = urlparse(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False  # "null" (a sandboxed frame, a file), or garbage
    if host and parsed.netloc.lower() == host.lower():
        return True
    base = f"{parsed.scheme}://{parsed.netloc}".lower()
    return base in {item.rstrip("/").lower() for item in (allowed or "").replace(",", " ").split()}


def own_spec(environ: Any = os.environ) -> Optional[str]:
    """The sidecar's own ``group:name`` when supervisord runs it (its environment says)."""
    name = environ.get("SUPERVISOR_PROCESS_NAME")
    group = environ.get("SUPERVISOR_GROUP_NAME") or name
    return f"{group}:{name}" if name else None


class ProcessControl:
    """The actions of one sidecar: the token secret, the XML-RPC proxy, its thread.

    ``states`` is supervisord's view of its processes (statepoll's, read only):
    only a process it reports can be acted on.  ``supervised`` says whether
    the sidecar reads states from a supervisord at all; then, and with
    ``actions = true``, the actions get an XML-RPC proxy of their own.
    """

    def __init__(
        self,
        config: Config,
        states: Mapping[str, Dict[str, Any]],
        supervised: bool,
        rpc: Optional[ProxyFactory] = None,
    ) -> None:
        self.states = states
        self.enabled = config.actions
        if rpc is None and supervised and self.enabled:
            rpc = supervisor_proxy(config.source)  # a proxy of its own (one thread)
        self.rpc = rpc
        self.secret = secrets.token_bytes(32)
        self.own = own_spec()
        #: One action at a time, never on the IOLoop or the state poller's thread.
        self.executor = concurrent.futures.ThreadPoolExecutor(1, "streamlog-actions")

    def token(self, user: str) -> str:
        """The page's token for ``user``: valid until the sidecar restarts."""
        return hmac.new(self.secret, user.encode("utf-8"), hashlib.sha256).hexdigest()

    def token_ok(self, user: str, given: Optional[str]) -> bool:
        return bool(given) and hmac.compare_digest(self.token(user), str(given))

    def lookup(self, name: str) -> Optional[str]:
        """The ``group:name`` of a process supervisord reports, for a client-given name."""
        states = self.states
        if name in states:
            return name
        if ":" not in name and f"{name}:{name}" in states:
            return f"{name}:{name}"
        return None

    def run(self, spec: str, action: str, signal: Optional[str]) -> Dict[str, Any]:
        """On the actions thread: carry the action out; raise ActionError on a fault."""
        assert self.rpc is not None
        group, _, process = spec.partition(":")
        shown = display_name(group, process)
        supervisor = self.rpc().supervisor
        try:
            if action == "signal":
                supervisor.signalProcess(spec, signal)
                return {"message": f"sent SIG{signal} to {shown}"}
            if action in ("stop", "restart"):
                try:
                    supervisor.stopProcess(spec, True)
                except xmlrpc.client.Fault as fault:
                    if action == "stop" or FAULT_NAMES.get(fault.faultCode) != "NOT_RUNNING":
                        raise
            if action in ("start", "restart"):
                supervisor.startProcess(spec, True)
            info = supervisor.getProcessInfo(spec)
        except xmlrpc.client.Fault as fault:
            name = FAULT_NAMES.get(fault.faultCode, f"FAULT_{fault.faultCode}")
            sentence = SENTENCES.get(name, "supervisord refused: {detail}")
            message = sentence.format(name=shown, action=action, detail=fault.faultString)
            raise ActionError(409, message, name) from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            raise ActionError(502, f"cannot reach supervisord: {exc}", "UNREACHABLE") from None
        pid = info.get("pid") or 0
        message = f"{DONE[action]} {shown}" + (f" (pid {pid})" if pid else "")
        return {"message": message, "state": info.get("statename"), "pid": pid}


class ActionsHandler(BaseHandler):
    """``GET /api/actions``: whether process control is on, and the page's token."""

    def initialize(self, access: Access, control: ProcessControl) -> None:  # type: ignore[override]
        super().initialize(access)
        self.control = control

    def get(self) -> None:
        control = self.control
        if not control.enabled:
            self.finish({"enabled": False})
            return
        user = basic_user(self.request.headers.get("Authorization"))
        self.finish(
            {
                "enabled": True,
                "token": control.token(user),
                "header": TOKEN_HEADER,
                "signals": list(SIGNALS),
                "self": control.own,
                "supervisor": control.rpc is not None,
            }
        )


class ProcessActionHandler(BaseHandler):
    """``POST /api/process/NAME/ACTION``: start, stop, restart or signal a process."""

    def initialize(self, access: Access, control: ProcessControl) -> None:  # type: ignore[override]
        super().initialize(access)
        self.control = control

    async def post(self, name: str, action: str) -> None:
        user = basic_user(self.request.headers.get("Authorization"))
        address = self.access.client(self.request)
        try:
            spec, signal = self._check(user, name, action)
        except ActionError as exc:
            level = logging.WARNING if exc.status == 403 else logging.INFO
            log.log(level, "%s from %s: %s %r refused: %s", user, address, action, name, exc)
            self._answer(exc)
            return
        what = f"{action} {spec}" + (f" SIG{signal}" if signal else "")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self.control.executor, self.control.run, spec, action, signal
            )
        except ActionError as exc:
            log.info("%s from %s: %s failed: %s (%s)", user, address, what, exc, exc.fault)
            self._answer(exc)
            return
        log.info("%s from %s: %s: %s", user, address, what, result["message"])
        self.finish({"process": spec, "action": action, "ok": True, **result})

    def _check(self, user: str, name: str, action: str) -> Tuple[str, Optional[str]]:
        """(spec, signal) of an allowed request; raise ActionError otherwise."""
        control, request = self.control, self.request
        if not control.enabled:
            raise ActionError(404, "process control is off (actions = false)", "DISABLED")
        origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
        host = request.headers.get("Host", "")
        if not same_origin(origin, host, self.access.allowed_origins):
            raise ActionError(403, "refused: not sent from this page's origin", "ORIGIN")
        if not control.token_ok(user, request.headers.get(TOKEN_HEADER)):
            raise ActionError(
                403, f"refused: missing or stale {TOKEN_HEADER} (reload the page)", "TOKEN"
            )
        if action not in ACTIONS:
            raise ActionError(400, "action must be start, stop, restart or signal", "BAD_ACTION")
        signal: Optional[str] = None
        if action == "signal":
            signal = self.get_argument("signal", "").upper().removeprefix("SIG")
            if signal not in SIGNALS:
                raise ActionError(400, "signal must be one of " + ", ".join(SIGNALS), "BAD_SIGNAL")
        if control.rpc is None:
            raise ActionError(503, "the sidecar does not run under supervisord", "NO_SUPERVISOR")
        spec = control.lookup(name)
        if spec is None:
            raise ActionError(404, "no such process", "BAD_NAME")
        if spec == control.own:
            raise ActionError(
                409, "this is the sidecar serving this page: use supervisorctl", "SELF"
            )
        return spec, signal

    def _answer(self, error: ActionError) -> None:
        self.set_status(error.status)
        self.finish({"error": str(error), "fault": error.fault})


def action_routes(access: Access, control: ProcessControl) -> List[Tuple[Any, ...]]:
    """The URL specs of process control, for ``server.make_app``."""
    kwargs = {"access": access, "control": control}
    return [
        (r"/api/actions", ActionsHandler, kwargs),
        (r"/api/process/([^/]+)/([^/]+)", ProcessActionHandler, kwargs),
    ]
