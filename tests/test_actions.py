"""Process control (``actions = true``): config, the checks, supervisord's faults.

The config and the request checks are tested alone (a Tornado app whose
supervisord is a stand-in that records calls and raises supervisord's faults);
then over plain HTTP against the real sidecar under a real supervisord; the
page's buttons are in tests/test_actions_browser.py.
"""

from __future__ import annotations

import json
import xmlrpc.client
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import tornado.testing
import tornado.web

from supervisor_streamlog.config import ConfigError, from_mapping
from supervisor_streamlog.sidecar.actions import (
    SIGNALS,
    TOKEN_HEADER,
    ProcessControl,
    action_routes,
    basic_user,
    same_origin,
)
from supervisor_streamlog.sidecar.auth import Access
from supervisor_streamlog.sidecar.server import Sidecar, make_app

from .credentials import AUTH, GUARDED, PASSWORD, USER
from .helpers import Cli, supervisord_conf

# ------------------------------------------------------------------ config


def test_actions_are_off_by_default_and_need_auth(tmp_path: Path) -> None:
    assert from_mapping({}, str(tmp_path), {}).actions is False
    assert from_mapping(GUARDED, str(tmp_path), {}).actions is True
    assert from_mapping({"actions": "false"}, str(tmp_path), {}).actions is False
    with pytest.raises(ConfigError) as refused:
        from_mapping({"actions": "true"}, str(tmp_path), {})
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("[streamlog] actions = true needs username and password")
    with pytest.raises(ConfigError, match="actions = 'maybe' is not valid: expected true or false"):
        from_mapping({"actions": "maybe"}, str(tmp_path), {})


def test_serve_refuses_actions_without_auth_in_one_line(tmp_path: Path, cli: Cli) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[streamlog]\nactions = true\nbind = 127.0.0.1:1\n")
    result = cli("serve", "-c", conf)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "actions = true needs username and password" in result.stderr


def test_check_refuses_actions_without_auth_in_one_line(tmp_path: Path, cli: Cli) -> None:
    conf = supervisord_conf(tmp_path, "[streamlog]\nactions = true\n")
    result = cli("check", "-c", conf)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "actions = true needs username and password" in lines[0]


# ------------------------------------------------------------------ the checks, alone


def test_origins_and_users() -> None:
    assert same_origin("http://127.0.0.1:9002", "127.0.0.1:9002", None)
    assert same_origin("https://LOGS.example", "logs.example", None)
    assert same_origin("http://127.0.0.1:9002/?process=web", "127.0.0.1:9002", None)  # a Referer
    assert not same_origin("http://evil.example", "127.0.0.1:9002", None)
    assert not same_origin("http://127.0.0.1:9003", "127.0.0.1:9002", None)
    assert not same_origin("null", "127.0.0.1:9002", None)
    assert not same_origin("", "127.0.0.1:9002", None)
    assert not same_origin("javascript://127.0.0.1:9002", "127.0.0.1:9002", None)
    # Behind a proxy that rewrites Host: the public origin is listed.
    assert same_origin("https://logs.example", "127.0.0.1:9002", "https://logs.example/")
    assert not same_origin("http://logs.example", "127.0.0.1:9002", "https://logs.example")
    assert basic_user(AUTH["Authorization"]) == USER
    assert basic_user("Basic !!!") == "" and basic_user(None) == ""


class FakeSupervisor:
    """supervisord's XML-RPC methods, as the actions call them: records, and faults."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self.running = {"web:web": True, "idle:idle": False}
        self.pid = 100
        self.down = False

    def _fault(self, code: int, name: str) -> xmlrpc.client.Fault:
        return xmlrpc.client.Fault(code, f"{name}: {name.lower()}")

    def _known(self, name: str) -> None:
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        if name not in self.running:
            raise self._fault(10, "BAD_NAME")

    def startProcess(self, name: str, wait: bool) -> bool:  # noqa: N802 (supervisord's name)
        self.calls.append(("start", name, wait))
        self._known(name)
        if self.running[name]:
            raise self._fault(60, "ALREADY_STARTED")
        self.running[name] = True
        self.pid += 1
        return True

    def stopProcess(self, name: str, wait: bool) -> bool:  # noqa: N802
        self.calls.append(("stop", name, wait))
        self._known(name)
        if not self.running[name]:
            raise self._fault(70, "NOT_RUNNING")
        self.running[name] = False
        return True

    def signalProcess(self, name: str, signal: str) -> bool:  # noqa: N802
        self.calls.append(("signal", name, signal))
        self._known(name)
        return True

    def getProcessInfo(self, name: str) -> Dict[str, Any]:  # noqa: N802
        running = self.running[name]
        return {"statename": "RUNNING" if running else "STOPPED", "pid": self.pid if running else 0}


class Proxy:
    def __init__(self, supervisor: FakeSupervisor) -> None:
        self.supervisor = supervisor


class ActionsAlone(tornado.testing.AsyncHTTPTestCase):
    """The handlers with a stand-in supervisord: every refusal and every fault."""

    def get_app(self) -> tornado.web.Application:
        self.fake = FakeSupervisor()
        config = from_mapping({**GUARDED, "bind": "127.0.0.1:9002"}, "/tmp", {})
        states: Dict[str, Dict[str, Any]] = {"web:web": {}, "idle:idle": {}, "sidecar:sidecar": {}}
        control = ProcessControl(config, states, supervised=True, rpc=lambda: Proxy(self.fake))
        routes = action_routes(Access(config), control)
        self.control = routes[0][2]["control"]
        self.control.own = "sidecar:sidecar"  # as if supervisord ran this sidecar
        return tornado.web.Application(routes)

    def token(self) -> str:
        response = self.fetch("/api/actions", headers=AUTH)
        assert response.code == 200
        body = json.loads(response.body)
        assert body["enabled"] is True and body["header"] == TOKEN_HEADER
        assert body["signals"] == list(SIGNALS) and body["self"] == "sidecar:sidecar"
        return str(body["token"])

    def post(self, path: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
        base = {"Origin": self.get_url("/").rstrip("/"), TOKEN_HEADER: self.token(), **AUTH}
        if headers is not None:
            base.update(headers)
            base = {k: v for k, v in base.items() if v}
        response = self.fetch(path, method="POST", body=b"", headers=base)
        return response.code, json.loads(response.body or b"{}")

    def test_refusals(self) -> None:
        assert self.fetch("/api/actions").code == 401
        assert self.post("/api/process/web/start", {"Authorization": ""})[0] == 401
        foreign = self.post("/api/process/web/restart", {"Origin": "http://evil.example"})
        assert foreign == (
            403,
            {"error": "refused: not sent from this page's origin", "fault": "ORIGIN"},
        )
        assert self.post("/api/process/web/restart", {"Origin": ""})[1]["fault"] == "ORIGIN"
        assert self.post("/api/process/web/restart", {TOKEN_HEADER: ""})[1]["fault"] == "TOKEN"
        assert self.post("/api/process/web/restart", {TOKEN_HEADER: "0" * 64})[0] == 403
        # The token is the user's: another user's (were there one) would not do.
        assert self.control.token("other") != self.token()
        assert self.post("/api/process/web/reboot")[0] == 400
        assert self.post("/api/process/web/signal?signal=SEGV")[1]["fault"] == "BAD_SIGNAL"
        assert self.post("/api/process/web/signal")[0] == 400
        # supervisord would take "web:*" as the whole group: only exact names pass.
        for name in ["nope", "..%2F..%2Fetc", "web%3Aweb%00", "%3Cscript%3E", "web%3A%2A"]:
            assert self.post(f"/api/process/{name}/start") == (
                404,
                {"error": "no such process", "fault": "BAD_NAME"},
            ), name
        assert self.post("/api/process/sidecar/stop")[1]["fault"] == "SELF"
        assert self.fetch("/api/process/web/start", headers=AUTH).code == 405
        assert self.fake.calls == []  # nothing refused reached supervisord

    def test_actions_and_faults(self) -> None:
        assert self.post("/api/process/web/start") == (
            409,
            {"error": "web is already running", "fault": "ALREADY_STARTED"},
        )
        assert self.post("/api/process/idle/stop") == (
            409,
            {"error": "idle is not running", "fault": "NOT_RUNNING"},
        )
        status, body = self.post("/api/process/web:web/restart")
        assert status == 200
        assert body == {
            "process": "web:web",
            "action": "restart",
            "ok": True,
            "message": "restarted web (pid 101)",
            "state": "RUNNING",
            "pid": 101,
        }
        # Restarting a stopped process: its NOT_RUNNING is no failure.
        assert self.post("/api/process/idle/restart")[1]["message"] == "restarted idle (pid 102)"
        assert self.post("/api/process/web/signal?signal=sigusr1")[1]["message"] == (
            "sent SIGUSR1 to web"
        )
        assert self.fake.calls == [
            ("start", "web:web", True),
            ("stop", "idle:idle", True),
            ("stop", "web:web", True),
            ("start", "web:web", True),
            ("stop", "idle:idle", True),
            ("start", "idle:idle", True),
            ("signal", "web:web", "USR1"),
        ]
        self.fake.down = True
        status, body = self.post("/api/process/web/stop")
        assert status == 502 and body["fault"] == "UNREACHABLE"
        assert body["error"].startswith("cannot reach supervisord:")


class ActionsOff(tornado.testing.AsyncHTTPTestCase):
    """A sidecar without ``actions = true`` says so, and refuses every action."""

    def get_app(self) -> tornado.web.Application:
        config = from_mapping({"username": USER, "password": PASSWORD}, "/tmp", {})
        return make_app(Sidecar(config, rpc=None))

    def test_refused(self) -> None:
        assert json.loads(self.fetch("/api/actions", headers=AUTH).body) == {"enabled": False}
        origin = {"Origin": self.get_url("/").rstrip("/"), **AUTH}
        response = self.fetch("/api/process/web/stop", method="POST", body=b"", headers=origin)
        assert response.code == 404
        assert json.loads(response.body) == {
            "error": "process control is off (actions = false)",
            "fault": "DISABLED",
        }
