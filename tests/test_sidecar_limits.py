"""The sidecar cannot be held open: half-sent requests time out, one address has a cap,
a WebSocket handshake without Origin gets a defined answer, a regex bomb is cut off
while others are served (the sidecar's app and server in this process, over a logdir);
a stalled client is skipped with an exact notice (real supervisord + sidecar: the
sidecar's own memory is measured)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import tornado.httpclient
import tornado.websocket

from .logfile import Log
from .sidecar import FrameReader, get, in_process, raw_handshake, send_text, serving
from .supervisor import Supervisors, emit, program, wait_for

ATTACK = 200
LIMIT = 64  # server.MAX_HTTP_CONNECTIONS_PER_ADDRESS


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


def test_half_sent_requests_are_capped_per_address_and_time_out(tmp_path: Path) -> None:
    with in_process(tmp_path, {"request_timeout": "3"}) as sup:
        url = sup.url
        port = int(url.rsplit(":", 1)[1])
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
            assert get(url + "/healthz")[0] == 200  # and the address is free again
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
    tmp_path: Path,
) -> None:
    """Browsers always send Origin on a WebSocket handshake, so one without it
    cannot come from a page of another site: it is accepted (scripts, CLI
    clients) -- but with auth configured it needs the credentials like any
    request."""
    with in_process(tmp_path, {"username": "ops", "password": "s3cret"}) as sup:
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
            evil = tornado.httpclient.HTTPRequest(
                url, headers=dict(good, Origin="http://evil.example")
            )
            with pytest.raises(tornado.httpclient.HTTPClientError) as cross:
                await tornado.websocket.websocket_connect(evil)
            assert cross.value.code == 403

        asyncio.run(run())


def test_a_regex_bomb_is_cut_off_while_the_sidecar_keeps_serving(tmp_path: Path) -> None:
    """``(a+)+$`` over runs of ``a`` backtracks for hours: it is stopped by the
    time limit with a clear error, and meanwhile the IOLoop answers others."""
    log = Log(tmp_path, logdir=str(tmp_path / "streamlog"), maxbytes="10MB")
    for _ in range(200):  # app:app's 200 lines, as the capture writes them
        log.write(b"a" * 30 + b"b\n")
    log.close()
    with in_process(tmp_path) as sup:
        url = sup.url
        wait_for(lambda: len(get(url + "/api/log/app")[1]["entries"]) >= 200, 20, "app's log")
        answer: Dict[str, Any] = {}

        def bomb() -> None:
            answer["status"], answer["body"] = get(
                url + "/api/log/app?q=" + urllib.parse.quote("(a+)+$") + "&regex=1"
            )

        thread = threading.Thread(target=bomb)
        thread.start()
        try:
            # While the worker spins, the IOLoop answers other clients.
            served = 0
            while thread.is_alive() and served < 5:
                assert get(url + "/healthz")[0] == 200
                assert get(url + "/api/processes")[0] == 200
                served += 1
            assert served == 5 and thread.is_alive(), "the bomb answered before the others"
        finally:
            thread.join(60)
        assert answer["status"] == 400 and "took too long" in answer["body"]["error"]
        # The next search gets a fresh worker.
        status, body = get(url + "/api/log/app?q=" + urllib.parse.quote("a{30}b$") + "&regex=1")
        assert status == 200 and len(body["entries"]) == 200 and body["complete"]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_a_stalled_client_gets_an_exact_skipped_notice_then_live_lines_with_no_gap(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    """5 000 lines/s to a client that stops reading: past its 4 MiB budget it is
    skipped; once it reads again it gets the lines it was sent, a ``skipped``
    range, then live lines -- and the range, fetched by cursor, holds exactly
    the missing lines: every line once, none silently lost."""
    count = 60_000  # ~10 MB of frames: past the queue budget and the socket buffers
    sup = supervisord(
        serving(tmp_path, {"fast": program(emit("rate", count, 5_000), autostart="false")})
    )
    sidecar_pid = int(sup.rpc.supervisor.getProcessInfo("sidecar")["pid"])
    sup.rpc.supervisor.startProcess("fast")
    wait_for(lambda: get(sup.url + "/api/log/fast")[0] == 200, 20, "fast's log")
    stalled = raw_handshake(sup.url, sup.url, receive_buffer=32 * 1024)
    send_text(stalled, '{"type": "subscribe", "process": "fast", "cursor": 0}')
    peak = 0

    def finished() -> bool:
        nonlocal peak
        peak = max(peak, _rss_kib(sidecar_pid))
        return sup.rpc.supervisor.getProcessInfo("fast")["statename"] == "EXITED"

    wait_for(finished, 60, "fast to write every line")
    end = get(sup.url + "/api/log/fast")[1]["last"]
    received: List[int] = []
    skips: List[Tuple[int, int]] = []
    cursor = 0
    reader = FrameReader(stalled)
    while cursor < end:
        frame = json.loads(reader.next_text())
        if frame["type"] == "lines":
            assert frame["entries"][0]["offset"] == cursor or not received  # contiguous
            received += [int(e["text"][5:14]) for e in frame["entries"] if e["stream"] == "stdout"]
            cursor = frame["cursor"]
        elif frame["type"] == "skipped":
            assert frame["from"] == cursor  # a skip starts where the client was
            skips.append((frame["from"], frame["to"]))
            received.append(-len(skips))  # where the skipped lines belong
            cursor = frame["to"]
    stalled.close()
    assert skips, "the stalled client was never skipped: raise count"
    filled: List[int] = []
    for number in received:
        if number >= 0:
            filled.append(number)
            continue
        start, stop = skips[-number - 1]
        while start < stop:
            page = get(sup.url + f"/api/log/fast?cursor={start}&direction=forward&limit=1000")[1]
            filled += [
                int(e["text"][5:14])
                for e in page["entries"]
                if e["end"] <= stop and e["stream"] == "stdout"
            ]
            start = max(e["end"] for e in page["entries"])
    assert filled == list(range(count))
    # The queue for a client is bounded: the sidecar did not hold 10 MB per client.
    print(f"sidecar peak RSS {peak / 1024:.1f} MiB over {count} lines, {len(skips)} skips")
    assert peak < 200 * 1024


def test_the_page_is_only_served_with_its_level_rules(tmp_path: Path) -> None:
    """``/static/index.html`` would be the page without the rules the sidecar puts into
    it (levels.js could not start): it sends the browser to ``/`` instead."""
    with in_process(tmp_path) as sup:
        status, body = get(sup.url + "/")
        assert status == 200 and b'id="level-rules">{' in body
        host, port = sup.url[len("http://") :].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/static/index.html?process=app")
        answer = connection.getresponse()
        assert (answer.status, answer.getheader("Location")) == (302, "/?process=app")
        connection.close()
        status, body = get(sup.url + "/static/index.html?process=app")
        assert status == 200 and b'id="level-rules">{' in body
        assert get(sup.url + "/static/levels.js")[0] == 200
