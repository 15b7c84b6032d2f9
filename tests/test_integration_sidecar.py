"""The sidecar against a real supervisord, real capture, real WebSocket clients; its
refusals and limits over a written logdir, served from this process (tests.sidecar.in_process)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import tornado.httpclient
import tornado.websocket

from supervisor_streamlog.ondisk.files import is_header
from supervisor_streamlog.ondisk.formats import parse

from .logfile import Log
from .sidecar import Live, get, in_process, numbered, raw_handshake, read_frames, send_text, serving
from .supervisor import Supervisors, emit, program, wait_for


def quiet(command: str, **options: object) -> dict:
    section = program(command, **options)
    del section["stdout_events_enabled"], section["stderr_events_enabled"]
    return section


def written(tmp_path: Path, lines: List[bytes]) -> None:
    """app:app's log in tmp_path/streamlog, as the capture writes it: for the tests
    that serve it from this process (tests.sidecar.in_process)."""
    log = Log(tmp_path, logdir=str(tmp_path / "streamlog"), maxbytes="10MB")
    for line in lines:
        log.write(line)
    log.close()


def test_rotation_during_a_50k_lines_per_second_stream_delivers_every_line_once(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    count = 150_000
    sup = supervisord(
        serving(
            tmp_path,
            {"fast": quiet(emit("rate", count, 50_000), autostart="false")},
            streamlog={"maxbytes": "1MB", "backups": 100},
        )
    )
    # The process's file exists once it has a record: start it, and subscribe
    # from offset 0 so that nothing it ever wrote can be missed.
    sup.rpc.supervisor.startProcess("fast")
    wait_for(lambda: (sup.logdir / "fast.log").exists(), 20, "fast.log")
    wait_for(lambda: get(sup.url + "/api/log/fast")[0] == 200, 20, "the sidecar to see fast")

    def done(c: Live) -> bool:
        """The last line came, or a skipped range reached the end of the finished log."""
        last = c.frames[-1] if c.frames else {}
        if last.get("type") == "lines":
            return count - 1 in numbered(last["entries"])
        if last.get("type") == "skipped" and sup.state("fast:fast") == "EXITED":
            return c.reached("fast:fast") >= get(sup.url + "/api/log/fast")[1]["last"]
        return False

    async def run() -> Live:
        live = await Live.connect(sup.url)
        await live.send({"type": "subscribe", "process": "fast", "cursor": 0})
        await live.until(done, 120, "the end of the log")
        return live

    live = asyncio.run(run())
    # A client that fell behind (a busy machine) is skipped with an explicit
    # range, which it can fetch by cursor: every line once, in order, either way.
    numbers, _skips = live.numbers_with_skips_filled(sup.url, "fast:fast")
    assert numbers == list(range(count))
    assert len(list(sup.logdir.glob("fast.log.*"))) >= 10
    offsets = live.entries()
    for before, after in zip(offsets, offsets[1:]):
        assert before["end"] <= after["offset"]  # in order, never twice


def test_reconnect_with_cursor_has_no_gap_and_no_duplicate(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    sup = supervisord(
        serving(
            tmp_path,
            {"ticker": quiet(emit("tick", 0.002))},
            streamlog={"maxbytes": "32KB", "backups": 100},
        )
    )
    wait_for(lambda: get(sup.url + "/api/log/ticker")[0] == 200, 20, "ticker's log")

    async def run() -> List[int]:
        first = await Live.connect(sup.url)
        await first.send({"type": "subscribe", "process": "ticker", "tail": 50})
        await first.until(lambda c: c.count >= 300, 60, "300 lines")
        cursor = first.cursor()
        first.close()
        await asyncio.sleep(0.5)  # the ticker goes on while nobody listens
        second = await Live.connect(sup.url)
        await second.send({"type": "subscribe", "process": "ticker", "cursor": cursor})
        await second.until(lambda c: c.count >= 600, 60, "600 more lines")
        second.close()
        return first.numbers() + second.numbers()

    numbers = asyncio.run(run())
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_a_client_that_stops_reading_is_skipped_while_another_keeps_up(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    count = 200_000  # 28 MB of records at 20 000 lines/s: far more than socket buffers hold
    sup = supervisord(
        serving(
            tmp_path,
            {"fast": quiet(emit("rate", count, 20_000), autostart="false")},
            streamlog={"maxbytes": "10MB", "backups": 100},
        )
    )
    sup.rpc.supervisor.startProcess("fast")
    wait_for(lambda: get(sup.url + "/api/log/fast")[0] == 200, 20, "fast's log")
    # A browser tab that stops reading: subscribed live, never reads again.
    stalled = raw_handshake(sup.url, sup.url)
    send_text(stalled, '{"type": "subscribe", "process": "fast"}')

    async def keep_up() -> Live:
        live = await Live.connect(sup.url)
        await live.send({"type": "subscribe", "process": "fast", "cursor": 0})
        await live.until(lambda c: c.count >= count, 120, "every line")
        return live

    live = asyncio.run(keep_up())
    assert live.numbers() == list(range(count))
    # Now the stalled client reads: it was told what it missed.
    frames = read_frames(stalled, '"type": "skipped"')
    assert '"from"' in frames[-1] and '"to"' in frames[-1]
    stalled.close()
    status, metrics = get(sup.url + "/metrics")
    assert status == 200
    text = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
    skipped = [
        line
        for line in text.splitlines()
        if line.startswith("streamlog_sidecar_skipped_records_total")
    ]
    assert skipped and float(skipped[0].split()[-1]) > 0


def test_cross_origin_traversal_and_bad_messages_are_refused(tmp_path: Path) -> None:
    written(tmp_path, [b"tick 1\n", b"tick 2\n"])
    with in_process(tmp_path) as sup:
        wait_for(lambda: get(sup.url + "/api/log/app")[0] == 200, 20, "app's log")
        for name in ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", "app%00", "nope"]:
            assert get(sup.url + "/api/log/" + name)[0] == 404, name
        status, body = get(sup.url + "/api/log/app?limit=100000")
        assert status == 400

        async def run() -> None:
            with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
                await Live.connect(sup.url, {"Origin": "http://evil.example"})
            assert refused.value.code == 403
            live = await Live.connect(sup.url)
            await live.until(lambda c: c.frames and c.frames[0]["type"] == "hello", 10, "hello")
            bad_messages = [
                "not json",
                '{"type": "subscribe", "process": "../../etc/passwd"}',
                '{"type": "subscribe", "process": "app", "tail": -1}',
                "[1, 2]",
            ]
            for number, bad in enumerate(bad_messages, 1):
                await live.connection.write_message(bad)
                await live.until(
                    lambda c, n=number: sum(f["type"] == "error" for f in c.frames) == n,
                    10,
                    "an error",
                )
            await live.connection.write_message("x" * 100_000)  # over the message limit
            closed = await asyncio.wait_for(live.connection.read_message(), 10)
            assert closed is None  # the server closed the connection

        asyncio.run(run())
        assert get(sup.url + "/healthz")[0] == 200


def test_basic_auth_with_sha_password_guards_page_api_and_websocket(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    digest = hashlib.sha1(b"s3cret").hexdigest()
    sup = supervisord(
        serving(
            tmp_path,
            {"app": quiet(emit("tick", 0.05))},
            streamlog={"username": "ops", "password": "{SHA}" + digest},
        )
    )
    good = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()}
    for path in ["/", "/api/processes", "/api/log/app", "/metrics", "/static/app.js"]:
        assert get(sup.url + path)[0] == 401, path
        assert get(sup.url + path, bad)[0] == 401, path
    wait_for(lambda: get(sup.url + "/api/log/app", good)[0] == 200, 20, "app's log")
    assert get(sup.url + "/healthz")[0] == 200  # liveness needs no credentials

    async def run() -> None:
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await Live.connect(sup.url, bad)
        assert refused.value.code == 401
        live = await Live.connect(sup.url, good)
        await live.send({"type": "subscribe", "process": "app", "tail": 5})
        await live.until(lambda c: c.count >= 5, 20, "lines")

    asyncio.run(run())
    assert "s3cret" not in (tmp_path / "sidecar.err").read_text()


def test_page_and_processes_api(tmp_path: Path, supervisord: Supervisors) -> None:
    sup = supervisord(
        serving(
            tmp_path,
            {"app": quiet(emit("tick", 0.05)), "other": quiet(emit("tick", 0.05))},
            streamlog={"programs": "app"},
        )
    )
    status, page = get(sup.url + "/")
    assert status == 200 and b"<title>streamlog</title>" in page

    def listed() -> dict:
        return {p["name"]: p for p in get(sup.url + "/api/processes")[1]["processes"]}

    wait_for(lambda: listed().get("app:app", {}).get("state") == "RUNNING", 20, "states")
    processes = listed()
    assert processes["app:app"]["captured"] and processes["app:app"]["log"] == "app.log"
    assert processes["app:app"]["display"] == "app"  # as supervisorctl shows it
    assert not processes["other:other"]["captured"]
    assert processes["other:other"]["state"] == "RUNNING"


def test_history_pages_search_and_time_jump(tmp_path: Path, supervisord: Supervisors) -> None:
    count = 20_000
    sup = supervisord(
        serving(
            tmp_path,
            {"hist": quiet(emit("burst", count, 100, "block"))},
            streamlog={"maxbytes": "256KB", "backups": 100, "compress": "true"},
        )
    )
    sup.wait_state("hist", "EXITED")
    wait_for(lambda: get(sup.url + "/api/log/hist")[0] == 200, 20, "hist's log")

    def numbers(body: dict) -> List[int]:
        return [int(e["text"][5:14]) for e in body["entries"] if e["text"].startswith("line ")]

    wait_for(
        lambda: numbers(get(sup.url + "/api/log/hist?limit=5")[1])[-1:] == [count - 1],
        30,
        "the last line in history",
    )
    # Backward from the end, page after page, across rotated (gzipped) files.
    seen: List[int] = []
    cursor = ""
    while True:
        status, body = get(sup.url + f"/api/log/hist?limit=1000{cursor}")
        assert status == 200
        seen = numbers(body) + seen
        if not body["has_before"]:
            break
        cursor = f"&cursor={body['start']}"
    assert seen == list(range(count))
    # Forward from the start.
    status, body = get(sup.url + "/api/log/hist?direction=forward&cursor=0&limit=50")
    forward = numbers(body)
    assert len(forward) >= 40 and forward == list(range(len(forward)))
    # Search, newest first, limited.
    status, body = get(sup.url + "/api/log/hist?q=line%20000012345")
    assert status == 200 and numbers(body) == [12345]
    pattern = urllib.parse.quote("line 0+1(2345|9999) ")
    status, body = get(sup.url + f"/api/log/hist?q={pattern}&regex=1")
    assert numbers(body) == [19999, 12345]
    assert get(sup.url + "/api/log/hist?q=%28&regex=1")[0] == 400
    # A time jump lands on the first record at or after that time.
    status, body = get(sup.url + "/api/log/hist?direction=forward&cursor=0&limit=3")
    first_time = body["entries"][0]["time"]
    status, body = get(sup.url + "/api/log/hist?time=" + urllib.parse.quote(first_time))
    assert status == 200 and body["entries"][0]["time"] >= first_time


def test_websocket_off_keeps_history_and_sigterm_stops_cleanly(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    sup = supervisord(
        serving(
            tmp_path, {"app": quiet(emit("tick", 0.05))}, streamlog={"websocket_enabled": "false"}
        )
    )
    wait_for(lambda: get(sup.url + "/api/log/app")[0] == 200, 20, "app's log")
    assert get(sup.url + "/api/log/app")[1]["entries"]

    async def refused() -> int:
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await Live.connect(sup.url)
        return caught.value.code

    assert asyncio.run(refused()) == 404
    # SIGTERM (supervisorctl stop) ends the sidecar cleanly: status 0, no traceback.
    sup.rpc.supervisor.stopProcess("sidecar")
    info = sup.info("sidecar:sidecar")
    assert info["statename"] == "STOPPED" and info["exitstatus"] == 0
    assert "Traceback" not in (tmp_path / "sidecar.err").read_text()


def test_dns_rebinding_and_catastrophic_regex_are_refused(tmp_path: Path) -> None:
    written(tmp_path, [b"a" * 40 + b"b\n"])
    with in_process(tmp_path) as sup:
        wait_for(lambda: get(sup.url + "/api/log/app")[0] == 200, 20, "app's log")
        port = urllib.parse.urlparse(sup.url).port
        # A page on another site whose name resolves to 127.0.0.1 (DNS rebinding).
        evil = {"Host": f"evil.example:{port}"}
        assert get(sup.url + "/api/log/app", evil)[0] == 403
        assert get(sup.url + "/", evil)[0] == 403
        assert get(sup.url + "/api/log/app", {"Host": f"localhost:{port}"})[0] == 200

        async def websocket_refused() -> int:
            with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
                await Live.connect(
                    sup.url,
                    {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
                )
            return caught.value.code

        assert asyncio.run(websocket_refused()) == 403
        # (a+)+c backtracks for hours on 40 a's: stopped, and the server goes on.
        pattern = urllib.parse.quote("(a+)+c")
        status, body = get(sup.url + f"/api/log/app?q={pattern}&regex=1")
        assert status == 400 and "took too long" in body["error"]
        assert get(sup.url + "/api/log/app?q=aaab")[1]["entries"]


def fetch(url: str) -> Tuple[int, Dict[str, str], bytes]:
    """A GET that keeps the body as bytes and the headers."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_download_streams_every_backup_without_headers(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    count = 20_000
    hostile = 'ev"il<b>&..'
    sup = supervisord(
        serving(
            tmp_path,
            {hostile: quiet(emit("burst", count, 100, "block"))},
            streamlog={"maxbytes": "256KB", "backups": 100, "compress": "true"},
        )
    )
    sup.wait_state(hostile, "EXITED")
    url = sup.url + "/api/log/" + urllib.parse.quote(hostile, safe="")
    wait_for(lambda: get(url)[0] == 200, 20, "the log")
    wait_for(
        lambda: get(url + "?limit=1")[1]["entries"][-1]["stream"] == "status",
        20,
        "the exit record",
    )
    status, headers, body = fetch(url + "/download")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    disposition = headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="[A-Za-z0-9_.-]+\.log"', disposition), disposition
    assert any(name.endswith(".gz") for name in os.listdir(sup.logdir))
    records = [parse(line) for line in body.split(b"\n")[:-1]]
    assert not [r for r in records if is_header(r.stream, r.data)]
    numbers = [int(r.data[5:14]) for r in records if r.stream == "stdout"]
    assert numbers == list(range(count))
    # A range by cursors: the records between two of them, exactly.
    page = get(url + "?cursor=0&direction=forward&limit=1000")[1]
    some = page["entries"][100:600]
    status, _, part = fetch(url + f"/download?from={some[0]['offset']}&to={some[-1]['end']}")
    assert [parse(line).time for line in part.split(b"\n")[:-1]] == [e["time"] for e in some]
    assert fetch(sup.url + "/api/log/nope/download")[0] == 404
    assert fetch(sup.url + "/api/log/..%2F..%2Fetc%2Fpasswd/download")[0] == 404
    assert fetch(url + "/download?from=x")[0] == 400


def test_connection_limit_counts_the_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    with in_process(tmp_path, {"trusted_proxies": "127.0.0.1"}) as sup:

        async def run() -> None:
            def behind(address: str) -> Dict[str, str]:
                return {"X-Forwarded-For": address}

            first = [await Live.connect(sup.url, behind("203.0.113.1")) for _ in range(32)]
            with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
                await Live.connect(sup.url, behind("203.0.113.1"))
            assert refused.value.code == 429
            # Another browser behind the same proxy is not refused.
            other = await Live.connect(sup.url, behind("203.0.113.2"))
            await other.until(lambda c: c.frames and c.frames[0]["type"] == "hello", 10, "hello")
            for live in first + [other]:
                live.close()

        asyncio.run(run())


RAW_CHILD = """
import os, sys, time
n = 0
while True:
    os.write(1, b"out %08d %s\\n" % (n, b"x" * 80))
    os.write(2, b"err %08d %s\\n" % (n, b"y" * 80))
    n += 1
    time.sleep(float(sys.argv[1]))
"""


# Each line in two writes: supervisord's rotation (at a write that reaches
# maxbytes) cuts some of them in two, the first half in the renamed file.
CUT_CHILD = """
import os, sys, time
n = 0
while True:
    os.write(1, b"out %08d %s" % (n, b"x" * 40))
    time.sleep(float(sys.argv[1]))
    os.write(1, b"%s\\n" % (b"z" * 40))
    n += 1
"""


def raw_numbers(entries: List[dict], stream: str) -> List[int]:
    """The numbers of a raw child's lines, ``partial`` pieces joined to the next entry."""
    numbers: List[int] = []
    pending = ""
    for entry in entries:
        if entry["stream"] != stream:
            continue
        if entry.get("partial"):
            pending += entry["text"]
            continue
        text, pending = pending + entry["text"], ""
        if not numbers and text[:4] not in ("out ", "err "):
            continue  # subscribed just after a rotation: the rest of a cut line
        assert len(text) == 93, text  # whole: nothing lost, nothing repeated
        numbers.append(int(text[4:12]))
    return numbers


def test_uncaptured_processes_are_shown_from_supervisords_own_logs(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    (tmp_path / "raw_child.py").write_text(RAW_CHILD)
    (tmp_path / "cut_child.py").write_text(CUT_CHILD)
    child = f"{sys.executable} {tmp_path / 'raw_child.py'}"
    sup = supervisord(
        serving(
            tmp_path,
            {
                "app": quiet(emit("tick", 0.5)),
                # Not captured (programs = app): supervisord's own files, AUTO for stdout.
                "plain": quiet(f"{child} 0.01", stderr_logfile=tmp_path / "plain.err"),
                "rot": quiet(
                    f"{sys.executable} {tmp_path / 'cut_child.py'} 0.001",
                    stdout_logfile=tmp_path / "rot.out",
                    stdout_logfile_maxbytes="20KB",
                    stdout_logfile_backups=3,
                    stderr_logfile="NONE",
                ),
                "mute": quiet(f"{child} 1", stdout_logfile="NONE", stderr_logfile="NONE"),
            },
            streamlog={"programs": "app"},
        )
    )

    def listed() -> Dict[str, dict]:
        return {p["name"]: p for p in get(sup.url + "/api/processes")[1]["processes"]}

    wait_for(lambda: listed().get("plain:plain", {}).get("uncaptured"), 20, "plain listed")
    processes = listed()
    assert processes["plain:plain"]["captured"] is False
    assert isinstance(processes["plain:plain"]["cursor"], int)
    assert "uncaptured" not in processes["mute:mute"]  # NONE: nothing to show
    assert get(sup.url + "/api/log/mute")[0] == 404
    assert processes["app:app"]["captured"] and "uncaptured" not in processes["app:app"]

    async def live_and_resume() -> Tuple[List[int], List[int]]:
        first = await Live.connect(sup.url)
        await first.send({"type": "subscribe", "process": "plain", "tail": 20})
        await first.until(lambda c: len(c.entries()) >= 200, 30, "200 records")
        subscribed = [f for f in first.frames if f["type"] == "subscribed"][0]
        assert subscribed["uncaptured"] is True
        assert all(e["time"] is None for e in first.entries())
        cursor = first.cursor()
        first.close()
        await asyncio.sleep(0.3)  # the child goes on while nobody listens
        second = await Live.connect(sup.url)
        await second.send({"type": "subscribe", "process": "plain", "cursor": cursor})
        await second.until(lambda c: len(c.entries()) >= 200, 30, "200 more records")
        second.close()
        both = first.entries() + second.entries()
        return raw_numbers(both, "stdout"), raw_numbers(both, "stderr")

    out, err = asyncio.run(live_and_resume())
    for numbers in (out, err):  # no gap, no duplicate, across the reconnect
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert len(out) > 150 and len(err) > 150

    async def across_rotation() -> Live:
        live = await Live.connect(sup.url)
        await live.send({"type": "subscribe", "process": "rot"})
        await live.until(
            lambda c: (
                sum(f["type"] == "reset" for f in c.frames) >= 3
                and sum(bool(e.get("partial")) for e in c.entries()) >= 2
            ),
            60,
            "three rotations, two of them cutting a line",
        )
        await live.until(lambda c: c.frames[-1]["type"] == "lines", 10, "lines after them")
        return live

    live = asyncio.run(across_rotation())
    numbers = raw_numbers(live.entries(), "stdout")
    # supervisord renamed rot.out at least three times: the old file was read to
    # its end first, the first half of a line the rotation cut included.
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert (tmp_path / "rot.out.1").exists()
    resets = [f for f in live.frames if f["type"] == "reset"]
    assert all(f["cursor"] == 0 for f in resets)  # the stdout lane starts again

    # History: pages both ways, search; no time jump (no timestamps).
    status, page = get(sup.url + "/api/log/plain?limit=50")
    assert status == 200 and page["uncaptured"] is True and len(page["entries"]) == 50
    older = get(sup.url + f"/api/log/plain?limit=50&cursor={page['start']}")[1]
    assert older["end"] == page["start"]
    assert [e["end"] for e in older["entries"][:-1]] == [e["offset"] for e in older["entries"][1:]]
    first = get(sup.url + "/api/log/plain?cursor=0&direction=forward&limit=4")[1]["entries"]
    assert sorted(e["text"][:12] for e in first) == [
        "err 00000000",
        "err 00000001",
        "out 00000000",
        "out 00000001",
    ]
    found = get(sup.url + "/api/log/plain?q=err%2000000010")[1]["entries"]
    assert [e["text"][:12] for e in found] == ["err 00000010"]
    status, body = get(sup.url + "/api/log/plain?time=0")
    assert status == 400 and "timestamps" in body["error"]
    # The download holds what supervisord wrote.
    status, _, data = fetch(sup.url + "/api/log/plain/download")
    assert status == 200 and data.startswith(b"out 00000000 ")


def test_an_uncaptured_process_supervisord_removes_is_closed_and_forgotten(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    (tmp_path / "raw_child.py").write_text(RAW_CHILD)
    out, err = tmp_path / "gone.out", tmp_path / "gone.err"
    sup = supervisord(
        serving(
            tmp_path,
            {
                "app": quiet(emit("tick", 0.5)),
                "gone": quiet(
                    f"{sys.executable} {tmp_path / 'raw_child.py'} 0.01",
                    stdout_logfile=out,
                    stderr_logfile=err,
                ),
            },
            streamlog={"programs": "app"},
        )
    )
    sidecar_pid = int(str(sup.info("sidecar")["pid"]))

    def listed() -> Dict[str, dict]:
        return {p["name"]: p for p in get(sup.url + "/api/processes")[1]["processes"]}

    wait_for(lambda: listed().get("gone:gone", {}).get("uncaptured"), 20, "gone listed")

    def open_logs() -> List[str]:
        """The sidecar's descriptors of gone's child logs."""
        found = []
        for fd in os.listdir(f"/proc/{sidecar_pid}/fd"):
            try:
                target = os.readlink(f"/proc/{sidecar_pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith((str(out), str(err))):
                found.append(target)
        return found

    async def removed() -> Live:
        live = await Live.connect(sup.url)
        await live.send({"type": "subscribe", "process": "gone", "tail": 5})
        await live.until(lambda c: len(c.entries()) >= 20, 30, "gone's lines")
        assert len(open_logs()) == 2
        # `supervisorctl update` after the section was taken out of the config.
        conf = sup.conf.read_text()
        head, _, rest = conf.partition("\n[program:gone]\n")
        sup.conf.write_text(head + "\n" + rest[rest.find("\n[") :])
        rpc = sup.rpc.supervisor
        assert rpc.reloadConfig()[0][2] == ["gone"]
        rpc.stopProcessGroup("gone")
        rpc.removeProcessGroup("gone")
        out.unlink()  # its disk space is freed once nobody holds it open
        await live.until(
            lambda c: any(f["type"] == "unsubscribed" for f in c.frames), 10, "unsubscribed"
        )
        await live.send({"type": "subscribe", "process": "gone"})
        await live.until(lambda c: c.frames[-1]["type"] == "error", 10, "an error")
        live.close()
        return live

    live = asyncio.run(removed())
    kinds = [(f["type"], f.get("state")) for f in live.frames if f.get("process") == "gone:gone"]
    assert kinds.index(("state", "REMOVED")) < kinds.index(("unsubscribed", None))
    assert live.frames[-1]["error"] == "no such process log"
    wait_for(lambda: not open_logs(), 5, "gone's child logs closed")
    assert get(sup.url + "/api/log/gone")[0] == 404
    assert "gone:gone" not in listed()


# Waits for the test to subscribe, then writes one line of 800 000 bytes (in
# 64 KiB writes) and 20 ordinary lines.
LONG_CHILD = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
data = b"".join(b"%07d," % i for i in range(100000))
for i in range(0, len(data), 65536):
    os.write(1, data[i : i + 65536])
    time.sleep(0.02)
os.write(1, b"\\n")
for n in range(20):
    os.write(1, b"line %08d after\\n" % n)
time.sleep(3600)
"""
LONG_LINE = "".join(f"{i:07d}," for i in range(100000))


def test_an_uncaptured_line_longer_than_a_read_comes_in_pieces(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    (tmp_path / "long_child.py").write_text(LONG_CHILD)
    go = tmp_path / "go"
    sup = supervisord(
        serving(
            tmp_path,
            {
                "app": quiet(emit("tick", 0.5)),
                "long": quiet(
                    f"{sys.executable} {tmp_path / 'long_child.py'} {go}",
                    stdout_logfile=tmp_path / "long.out",
                    stderr_logfile=tmp_path / "long.err",
                ),
            },
            streamlog={"programs": "app"},
        )
    )
    wait_for(
        lambda: any(
            p["name"] == "long:long" and p.get("uncaptured")
            for p in get(sup.url + "/api/processes")[1]["processes"]
        ),
        20,
        "long listed",
    )

    def whole(entries: List[dict]) -> List[str]:
        """The lines the entries make, pieces joined to what follows them."""
        lines, pending = [], ""
        for entry in entries:
            if entry["stream"] != "stdout":
                continue
            pending += entry["text"]
            if not entry.get("partial"):
                lines.append(pending)
                pending = ""
        assert pending == ""
        return lines

    expected = [LONG_LINE] + [f"line {n:08d} after" for n in range(20)]

    async def live_then_resume() -> Tuple[Live, Live]:
        live = await Live.connect(sup.url)
        await live.send({"type": "subscribe", "process": "long"})
        await live.until(
            lambda c: any(f["type"] == "subscribed" for f in c.frames), 10, "subscribed"
        )
        go.write_bytes(b"")
        await live.until(lambda c: 19 in c.numbers(), 60, "the lines after the long one")
        live.close()
        # From a cursor just past the first piece: the rest of the line, then the lines.
        first_piece = live.entries()[0]
        resumed = await Live.connect(sup.url)
        await resumed.send({"type": "subscribe", "process": "long", "cursor": first_piece["end"]})
        await resumed.until(lambda c: 19 in c.numbers(), 60, "the lines, resumed")
        resumed.close()
        return live, resumed

    live, resumed = asyncio.run(live_then_resume())
    entries = live.entries()
    # The long line came as pieces (256 KiB reads), every byte exactly once.
    pieces = [e for e in entries if e.get("partial")]
    assert len(pieces) == 3 and all(len(e["text"]) == 256 * 1024 for e in pieces)
    assert whole(entries) == expected
    assert all(a["end"] == b["offset"] for a, b in zip(entries, entries[1:]))
    rest = whole(resumed.entries())
    assert rest == [LONG_LINE[256 * 1024 :]] + expected[1:]
    assert resumed.entries()[0]["offset"] == pieces[0]["end"]

    # History, paged forward from the start, has the same bytes (and ends).
    paged: List[dict] = []
    cursor = 0
    for _ in range(100):
        page = get(sup.url + f"/api/log/long?cursor={cursor}&direction=forward&limit=3")[1]
        paged += page["entries"]
        if not page["has_after"]:
            break
        cursor = page["end"]
    assert whole(paged) == expected
    found = get(sup.url + "/api/log/long?q=0099999,")[1]
    assert found["complete"] and len(found["entries"]) == 1
    assert found["entries"][0]["text"].endswith("0099999,")
