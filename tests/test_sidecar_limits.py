"""The sidecar cannot be held open: half-sent requests time out, one address has a cap,
and a WebSocket handshake without Origin gets a defined answer (real supervisord + sidecar)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import tornado.httpclient
import tornado.websocket

from .sidecar import get, with_sidecar
from .supervisor import Supervisor, emit, program, wait_for

ATTACK = 200
LIMIT = 64  # server.MAX_HTTP_CONNECTIONS_PER_ADDRESS


@pytest.fixture
def stopper() -> Iterator[List[Supervisor]]:
    started: List[Supervisor] = []
    yield started
    for sup in started:
        sup.stop()


def _half_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /api/processes HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset), without blocking."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_half_sent_requests_are_capped_per_address_and_time_out(
    tmp_path: Path, stopper: List[Supervisor]
) -> None:
    sup = with_sidecar(tmp_path, {"app": program(emit("tick", 0.05))}, {"request_timeout": "3"})
    stopper.append(sup)
    port = int(sup.url.rsplit(":", 1)[1])
    attack = [_half_request(port) for _ in range(ATTACK)]
    try:
        # Past the cap, connections from this address are closed at once.
        wait_for(
            lambda: sum(_closed_by_server(s) for s in attack) >= ATTACK - LIMIT,
            20,
            "connections past the per-address cap to be closed",
        )
        held = [s for s in attack if not _closed_by_server(s)]
        assert 0 < len(held) <= LIMIT
        # Meanwhile a normal client (another loopback address) is answered.
        answered = _get_from("127.0.0.2", port, "/api/processes")
        assert answered.startswith(b"HTTP/1.1 200"), answered[:100]
        assert not all(_closed_by_server(s) for s in held)  # still during the attack
        # The half-sent requests are then cut off by request_timeout.
        wait_for(
            lambda: all(_closed_by_server(s) for s in held),
            30,
            "the half-sent requests to time out",
        )
        assert get(sup.url + "/healthz")[0] == 200  # and the address is free again
    finally:
        for sock in attack:
            sock.close()


def _get_from(source: str, port: int, path: str) -> bytes:
    """One HTTP/1.1 GET from a given loopback source address; the raw response head."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_a_websocket_without_origin_is_a_non_browser_client_and_still_needs_credentials(
    tmp_path: Path, stopper: List[Supervisor]
) -> None:
    """Browsers always send Origin on a WebSocket handshake, so one without it
    cannot come from a page of another site: it is accepted (scripts, CLI
    clients) -- but with auth configured it needs the credentials like any
    request."""
    sup = with_sidecar(
        tmp_path,
        {"app": program(emit("tick", 0.05))},
        {"username": "ops", "password": "s3cret"},
    )
    stopper.append(sup)
    good = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret").decode()}
    url = sup.url.replace("http", "ws", 1) + "/ws"

    async def run() -> None:
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await tornado.websocket.websocket_connect(url)  # no Origin, no credentials
        assert refused.value.code == 401
        request = tornado.httpclient.HTTPRequest(url, headers=good)
        assert "Origin" not in request.headers
        connection = await tornado.websocket.websocket_connect(request)
        hello = await asyncio.wait_for(connection.read_message(), 10)
        assert hello is not None and '"hello"' in hello
        connection.close()
        evil = tornado.httpclient.HTTPRequest(url, headers=dict(good, Origin="http://evil.example"))
        with pytest.raises(tornado.httpclient.HTTPClientError) as cross:
            await tornado.websocket.websocket_connect(evil)
        assert cross.value.code == 403

    asyncio.run(run())


def test_a_regex_bomb_is_cut_off_while_the_sidecar_keeps_serving(
    tmp_path: Path, stopper: List[Supervisor]
) -> None:
    """``(a+)+$`` over runs of ``a`` backtracks for hours: it is stopped by the
    time limit with a clear error, and meanwhile the IOLoop answers others."""
    steps = [["out", (b"a" * 30 + b"b\n").hex()]] * 200 + [["sleep", 3600]]
    (tmp_path / "redos.json").write_text(json.dumps(steps))
    sup = with_sidecar(tmp_path, {"app": program(emit("script", tmp_path / "redos.json"))})
    stopper.append(sup)
    wait_for(lambda: len(get(sup.url + "/api/log/app")[1]["entries"]) >= 200, 20, "app's log")
    answer: Dict[str, Any] = {}

    def bomb() -> None:
        answer["status"], answer["body"] = get(
            sup.url + "/api/log/app?q=" + urllib.parse.quote("(a+)+$") + "&regex=1"
        )

    thread = threading.Thread(target=bomb)
    thread.start()
    try:
        # While the worker spins, the IOLoop answers other clients.
        served = 0
        while thread.is_alive() and served < 5:
            assert get(sup.url + "/healthz")[0] == 200
            assert get(sup.url + "/api/processes")[0] == 200
            served += 1
        assert served == 5 and thread.is_alive(), "the bomb answered before the others"
    finally:
        thread.join(60)
    assert answer["status"] == 400 and "took too long" in answer["body"]["error"]
    # The next search gets a fresh worker.
    status, body = get(sup.url + "/api/log/app?q=" + urllib.parse.quote("a{30}b$") + "&regex=1")
    assert status == 200 and len(body["entries"]) == 200 and body["complete"]
