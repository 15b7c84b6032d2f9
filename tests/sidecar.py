"""Helpers to run the real sidecar -- under a real supervisord, or in this process
over a logdir -- and talk to it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import tornado.httpclient
import tornado.websocket

from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.sidecar import server
from supervisor_streamlog.sidecar.server import Sidecar

from .supervisor import Supervisor, program


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving(
    tmp_path: Path,
    programs: Dict[str, Dict[str, object]],
    streamlog: Optional[Dict[str, object]] = None,
    **kwargs: Any,
) -> Supervisor:
    """A plugin-mode supervisord that also runs the sidecar as a program, not
    started yet: ``sup = supervisord(serving(tmp_path, programs))``.  Once
    started, ``sup.url`` answers (start waits for /healthz)."""
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
    sup.ready = lambda: get(sup.url + "/healthz")[0] == 200
    sup.ready_what = "the sidecar to answer"
    return sup


class InProcess:
    """A sidecar served from this process: its URL and its logdir."""

    def __init__(self, url: str, logdir: Path) -> None:
        self.url = url
        self.logdir = logdir


@contextlib.contextmanager
def in_process(
    tmp_path: Path, streamlog: Optional[Dict[str, object]] = None
) -> Iterator[InProcess]:
    """The sidecar's application and HTTP server as ``serve`` builds them
    (``server.make_app`` and ``server.listen``: per-address cap, timeouts,
    auth) on an IOLoop of a thread of its own, over tmp_path/streamlog, with
    no supervisord: for the HTTP and WebSocket limits, where a supervisord and
    a process boundary add nothing but start-up time.  Stopped as ``serve`` is."""
    port = free_port()
    settings: Dict[str, object] = {"logdir": str(tmp_path / "streamlog")}
    settings.update(streamlog or {}, bind=f"127.0.0.1:{port}")
    config = from_mapping({k: str(v) for k, v in settings.items()}, str(tmp_path), {})
    ready = threading.Event()
    state: Dict[str, Any] = {}

    async def serve() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = stop = asyncio.Event()
        sidecar = Sidecar(config)
        sidecar.start()
        http = server.listen(server.make_app(sidecar), config)
        ready.set()
        await stop.wait()
        http.stop()
        await http.close_all_connections()
        sidecar.stop()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # noqa: BLE001 -- raised in the test's thread
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="in-process-sidecar", daemon=True)
    thread.start()
    assert ready.wait(30), "the in-process sidecar did not start"
    if "error" in state:
        raise state["error"]
    try:
        yield InProcess(f"http://127.0.0.1:{port}", Path(config.logdir))
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)
        assert not thread.is_alive(), "the in-process sidecar did not stop"
        if "error" in state:
            raise state["error"]


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
        return numbered(self.entries(process))

    def cursor(self) -> int:
        return int([f for f in self.frames if f["type"] == "lines"][-1]["cursor"])

    def reached(self, process: str) -> int:
        """How far the frames for ``process`` got: the cursor of its last
        ``lines`` frame, or the end of its last ``skipped`` range."""
        at = 0
        for f in self.frames:
            if f.get("process") == process and f["type"] in ("lines", "skipped"):
                at = int(f["cursor"] if f["type"] == "lines" else f["to"])
        return at

    def numbers_with_skips_filled(self, base: str, process: str) -> Tuple[List[int], int]:
        """The line numbers of ``process`` in the order the frames give them,
        each ``skipped`` range filled from history by cursor (as a client
        would), and how many skips there were."""
        numbers: List[int] = []
        skips = 0
        for f in self.frames:
            if f.get("process") != process:
                continue
            if f["type"] == "lines":
                numbers += numbered(f["entries"])
            elif f["type"] == "skipped":
                skips += 1
                numbers += numbered(history(base, process, int(f["from"]), int(f["to"])))
        return numbers, skips

    def close(self) -> None:
        self.connection.close()


def numbered(entries: List[Dict[str, Any]]) -> List[int]:
    """The numbers of ``line NNNNNNNNN`` stdout entries."""
    return [
        int(e["text"][5:14])
        for e in entries
        if e["stream"] == "stdout" and e["text"].startswith("line ")
    ]


def history(base: str, process: str, start: int, stop: int) -> List[Dict[str, Any]]:
    """The entries in [start, stop) of a process's log, paged from /api/log."""
    found: List[Dict[str, Any]] = []
    while start < stop:
        query = f"cursor={start}&direction=forward&limit=1000"
        status, page = get(f"{base}/api/log/{urllib.parse.quote(process, safe='')}?{query}")
        assert status == 200, page
        entries = [e for e in page["entries"] if e["end"] <= stop]
        found += entries
        if not page["entries"] or page["end"] <= start:
            break
        start = page["end"]
    return found


def raw_handshake(url: str, origin: str, receive_buffer: int = 0) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads
    (``receive_buffer``: a small kernel buffer, so a stall shows sooner)."""
    parts = urllib.parse.urlparse(url)
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def send_text(sock: socket.socket, text: str) -> None:
    data = text.encode()
    mask = b"\x01\x02\x03\x04"
    assert len(data) < 126
    sock.sendall(
        bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    )


def read_frames(sock: socket.socket, until: str, timeout: float = 60) -> List[str]:
    """Read server frames (unmasked text) until one contains ``until``."""
    sock.settimeout(timeout)
    buffer = b""
    frames: List[str] = []

    def need(n: int) -> None:
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise AssertionError("connection closed")
            buffer += chunk

    while True:
        need(2)
        length = buffer[1] & 0x7F
        head = 2
        if length == 126:
            need(4)
            length, head = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            need(10)
            length, head = int.from_bytes(buffer[2:10], "big"), 10
        need(head + length)
        payload, buffer = buffer[head : head + length], buffer[head + length :]
        frames.append(payload.decode())
        if until in frames[-1]:
            return frames


class FrameReader:
    """Reads a raw WebSocket connection's server frames one by one (text only;
    pings and other control frames are passed over)."""

    def __init__(self, sock: socket.socket, timeout: float = 60) -> None:
        self.sock = sock
        self.buffer = b""
        sock.settimeout(timeout)

    def _need(self, n: int) -> None:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AssertionError("connection closed")
            self.buffer += chunk

    def next_text(self) -> str:
        while True:
            self._need(2)
            opcode, length, head = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                self._need(4)
                length, head = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                self._need(10)
                length, head = int.from_bytes(self.buffer[2:10], "big"), 10
            self._need(head + length)
            payload = self.buffer[head : head + length]
            self.buffer = self.buffer[head + length :]
            if opcode == 1:
                return payload.decode()
