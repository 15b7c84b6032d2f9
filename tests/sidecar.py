"""Helpers to run the real sidecar under a real supervisord and talk to it."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import tornado.httpclient
import tornado.websocket

from .supervisor import Supervisor, program, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_sidecar(
    tmp_path: Path,
    programs: Dict[str, Dict[str, object]],
    streamlog: Optional[Dict[str, object]] = None,
    **kwargs: Any,
) -> Supervisor:
    """A plugin-mode supervisord that also runs the sidecar as a program."""
    port = free_port()
    settings: Dict[str, object] = {"bind": f"127.0.0.1:{port}"}
    settings.update(streamlog or {})
    programs = dict(programs)
    programs["sidecar"] = program(
        f"{sys.executable} -m supervisor_streamlog serve -c {tmp_path}/supervisord.conf",
        autorestart="true",
        startsecs=0,
        stdout_events_enabled="false",
        stderr_events_enabled="false",
        stderr_logfile=f"{tmp_path}/sidecar.err",
    )
    sup = Supervisor(tmp_path, programs, streamlog=settings, base="plugin.conf", **kwargs)
    sup.url = f"http://127.0.0.1:{port}"
    sup.start()
    wait_for(
        lambda: get(sup.url + "/healthz")[0] == 200,
        30,
        "the sidecar to answer",
    )
    return sup


def get(url: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except OSError:
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


class Live:
    """A WebSocket client of the sidecar (Tornado's), collecting what it receives."""

    def __init__(self, connection: tornado.websocket.WebSocketClientConnection) -> None:
        self.connection = connection
        self.frames: List[Dict[str, Any]] = []
        #: stdout records received so far (kept up to date: conditions stay cheap).
        self.count = 0

    @classmethod
    async def connect(cls, base: str, headers: Optional[Dict[str, str]] = None) -> Live:
        request = tornado.httpclient.HTTPRequest(
            base.replace("http", "ws", 1) + "/ws", headers=dict({"Origin": base}, **(headers or {}))
        )
        return cls(await tornado.websocket.websocket_connect(request))

    async def send(self, message: Dict[str, Any]) -> None:
        await self.connection.write_message(json.dumps(message))

    async def receive(self, timeout: float = 30) -> Optional[Dict[str, Any]]:
        text = await asyncio.wait_for(self.connection.read_message(), timeout)
        if text is None:
            return None
        frame = json.loads(text)
        self.frames.append(frame)
        if frame["type"] == "lines":
            self.count += sum(1 for e in frame["entries"] if e["stream"] == "stdout")
        return frame

    async def until(self, condition: Any, timeout: float = 60, what: str = "a frame") -> None:
        """Receive frames until ``condition(self)`` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition(self):
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            if await self.receive(left) is None:
                raise AssertionError(f"connection closed while waiting for {what}")

    def entries(self, process: Optional[str] = None) -> List[Dict[str, Any]]:
        return [
            e
            for f in self.frames
            if f["type"] == "lines" and (process is None or f["process"] == process)
            for e in f["entries"]
        ]

    def numbers(self, process: Optional[str] = None) -> List[int]:
        return [
            int(e["text"][5:14])
            for e in self.entries(process)
            if e["stream"] == "stdout" and e["text"].startswith("line ")
        ]

    def cursor(self) -> int:
        return int([f for f in self.frames if f["type"] == "lines"][-1]["cursor"])

    def close(self) -> None:
        self.connection.close()
