"""Sidecar end to end: a child's write -> a WebSocket client, and the cost of fan-out.

    python -m bench.sidecar                  # the full run (~4-5 min, 2 rounds)
    python -m bench.sidecar --quick          # one short round (< 1 min)
    python -m bench.sidecar --seconds 10 --rounds 2 --clients 50 --json out.json
    python -m bench.sidecar --only L1000,FL --profile /tmp/prof   # py-spy the sidecar
    python -m bench.sidecar --sidecar-command '{python} my_variant.py serve -c {conf}'

Every measurement starts a fresh real stack in its own temporary directory:
supervisord from pip (nodaemon, unix socket) with the plugin
(``[rpcinterface:streamlog]``), the sidecar as a ``[program:sidecar]``
(``python -m supervisor_streamlog serve``, bound to 127.0.0.1 on a free port),
and a ``[program:stream]`` running ``bench/children/stamped.py``: 100-byte lines
``seq N t EPOCH ...`` where EPOCH is ``time.time()`` taken just before the
``os.write`` that carries the line -- one line per write up to
``--batch-above`` lines/s (1000), above that one write per 1 ms tick holding
the lines due by then (they share its stamp).  The child waits for SIGUSR1
before its first line, so the clients are connected and subscribed before
anything is written.  WebSocket clients (tornado.websocket, frames taken by
``on_message_callback``) run in ONE separate client process (``--client-spec``,
started by this script) and subscribe live (``{"type": "subscribe",
"process": "stream"}``).  The stack imports ``supervisor_streamlog`` from this
checkout (``PYTHONPATH``), whatever ``pip install -e`` points to.

Configurations (interleaved: each round runs all of them, in an order rotated
per round; ratios compare measurements of the same round):

========  =============  =======  =====================================================
name      lines/s        clients  what for
========  =============  =======  =====================================================
I0        0              0        the sidecar's idle cost (the baseline)
L100      100            1        latency
L1000     1 000          1        latency (the target: p50 <= 10 ms, p99 <= 50 ms)
F1        10 000         1        latency at 10 000 lines/s, and fan-out with 1 client
F0        10 000         0        the sidecar's cost of following with nobody subscribed
F50       10 000         50       fan-out CPU
FL        1 000          1        latency behind a flood: a second program
                                  (``tests/children/emit.py burst``) writing 64 KiB
                                  blocks of 100-byte lines as fast as it can
========  =============  =======  =====================================================

Measured:

* **latency** = the client's ``time.time()`` when it got the frame minus the
  stamp in the line (same machine clock), split in *capture* (the record's
  timestamp, taken by the plugin when supervisord read the chunk, minus the
  stamp) and *delivery* (receive time minus the record's timestamp: file,
  sidecar, WebSocket, client).  Client 0 of each client process decodes every
  frame (``json.loads``) and checks every entry; in F50 its numbers include
  the queueing inside a client process that serves 50 connections.
* **CPU** from ``/proc/PID/stat`` (utime+stime) between SIGUSR1 and the moment
  every client has the last line (F0: the sidecar's follower reached the end of
  the file, from ``/metrics``): the sidecar (its pid from supervisord's
  ``getProcessInfo``), supervisord itself, and the client process (which shares
  the machine's cores with them: it is reported, and its work is kept small --
  clients other than client 0 check their frames without decoding the JSON:
  records are counted by substring, and the first/last sequence numbers, the
  count and the frame-to-frame offsets must agree).  Per second of streaming
  divides by the nominal streaming time (``--seconds``).  ``bg`` is what the
  rest of the machine used meanwhile (cores); each measurement waits (up to
  ``--quiet-wait`` s) for a quiet machine, and one with more than
  ``--quiet-load`` cores of ``bg`` is repeated, ``--retries`` times in all
  (not with ``--quick``), so that a busy machine does not make the run long.
* **delivery check**: every client must get every line exactly once, in order;
  lines not received are counted, with the ``skipped`` notices received (lines
  missing without a notice would break the protocol's guarantee).
* **drain**: for each client, receive time of the last line minus its stamp;
  the worst client is reported.  **frames/s**: ``lines`` frames per client per
  second (the hub batches what queued while the previous frame was written).
* in FL: how fast the flood was captured, and how much of
  it the sidecar read although nobody subscribed to it (``/metrics``).

Everything listens on 127.0.0.1 or unix sockets in the temporary directory,
and supervisord is terminated at the end of each measurement, errors included.
The sidecar refuses more than 32 connections per address, so the client
process opens its connections from 127.0.0.2, 127.0.0.3, ... (25 each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from bench.common import (
    EMIT,
    ROOT,
    Supervisord,
    http_get,
    machine_busy,
    proc_state,
    proc_times,
    stop_process,
    wait_for,
    wait_quiet,
)

STAMPED = ROOT / "bench" / "children" / "stamped.py"
SIDECAR = "{python} -m supervisor_streamlog serve -c {conf}"
PER_ADDRESS = 25  # connections per source address (the sidecar allows 32)

# ---------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Setup:
    name: str
    rate: int
    clients: int
    flood: bool = False
    what: str = ""


SETUPS = [
    Setup("I0", 0, 0, what="idle: no lines, no clients"),
    Setup("L100", 100, 1, what="latency"),
    Setup("L1000", 1000, 1, what="latency (target)"),
    Setup("F1", 10_000, 1, what="latency 10k/s; fan-out, 1 client"),
    Setup("F0", 10_000, 0, what="following, nobody subscribed"),
    Setup("F50", 10_000, 50, what="fan-out"),
    Setup("FL", 1000, 1, flood=True, what="latency behind a flood"),
]

# ---------------------------------------------------------------- reading the sidecar


def metric(text: str, name: str, process: Optional[str] = None) -> Optional[float]:
    """One sample of a Prometheus text page."""
    label = "" if process is None else r'\{process="' + re.escape(process) + r'"\}'
    match = re.search(r"^" + re.escape(name) + label + r" (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def log_offset(live: Path) -> int:
    """Bytes of a process's whole log so far: the live file's header offset + its size."""
    try:
        with open(live, "rb") as handle:
            first = handle.readline(4096)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return 0
    match = re.search(rb"STREAMLOG file offset=(\d+)", first)
    return (int(match.group(1)) if match else 0) + size


# ---------------------------------------------------------------- the stack

CONF = """
[rpcinterface:streamlog]
supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface

[streamlog]
logdir = {dir}/streamlog
programs = stream flood
timezone = utc
maxbytes = 50MB
backups = 2
bind = 127.0.0.1:{port}

[program:sidecar]
command = {sidecar}
autorestart = false
startsecs = 0
stdout_logfile = {dir}/sidecar.out
stderr_logfile = {dir}/sidecar.err

[program:stream]
command = {python} {stamped} {rate} {count} {dir}/stream.ready {batch_above}
autorestart = false
startsecs = 0
stdout_logfile = NONE
stderr_logfile = {dir}/stream.err
stdout_events_enabled = true

[program:flood]
command = {python} {emit} burst 1000000000 100 block
autostart = false
autorestart = false
startsecs = 0
stdout_logfile = NONE
stderr_logfile = {dir}/flood.err
stdout_events_enabled = true
"""


class Stack(Supervisord):
    """supervisord + plugin + sidecar + the stream child, in a temporary directory."""

    def __init__(
        self, setup: Setup, count: int, batch_above: int, keep: bool, sidecar: str
    ) -> None:
        super().__init__(f"streamlog-sidecar-{setup.name}-", keep=keep, sidecar=True)
        self.setup = setup
        self.configure(
            CONF.format(
                dir=self.dir,
                port=self.port,
                python=sys.executable,
                stamped=STAMPED,
                emit=EMIT,
                rate=setup.rate,
                count=count,
                batch_above=batch_above,
                sidecar=sidecar.format(python=sys.executable, conf=self.conf),
            ),
            loglevel="warn",
        )
        self.sidecar_pid = 0
        self.stream_pid = 0

    def start(self) -> None:
        super().start()
        self.sidecar_pid = self.process_pid("sidecar")
        ready = self.dir / "stream.ready"
        wait_for(lambda: ready.exists() and ready.read_text().endswith("\n"), 30, "the child")
        self.stream_pid = int(ready.read_text())
        # The sidecar knows a process once its file exists (the RUNNING record).
        wait_for(
            lambda: http_get(self.url + "/api/log/stream")[0] == 200, 30, "the sidecar to see it"
        )

    def cleanup(self) -> None:
        if self.keep:
            print(f"  kept {self.dir}", flush=True)
        super().cleanup()


# ---------------------------------------------------------------- the client process


class ClientProcess:
    """``python -m bench.sidecar --client-spec ...``: JSON lines on its stdout."""

    def __init__(self, spec: Dict[str, Any], stderr: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sidecar", "--client-spec", json.dumps(spec)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(stderr, "wb"),  # noqa: SIM115
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def receive(self, timeout: float) -> Dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the client process said nothing for {timeout:.0f}s") from None
        if line is None:
            raise RuntimeError(f"the client process exited ({self.proc.wait(10)})")
        value = json.loads(line)
        assert isinstance(value, dict)
        return value

    def tell(self, word: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()

    def stop(self) -> None:
        stop_process(self.proc, 10)


class PySpy:
    """``py-spy record`` of the sidecar during a measurement (``--profile``)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.proc = subprocess.Popen(
            ["py-spy", "record", "-p", str(pid), "-f", "raw", "-r", "200", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        stop_process(self.proc, 30, signal.SIGINT)


# ---------------------------------------------------------------- one measurement


@dataclass
class Result:
    setup: Setup
    round: int
    count: int
    seconds: float
    window: float = 0.0
    sidecar_cpu: float = 0.0
    supervisord_cpu: float = 0.0
    child_cpu: float = 0.0
    flood_cpu: float = 0.0
    client_cpu: float = 0.0
    background: float = 0.0
    clients: List[Dict[str, Any]] = field(default_factory=list)
    latency: List[float] = field(default_factory=list)
    capture: List[float] = field(default_factory=list)
    delivery: List[float] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def received(self) -> int:
        return sum(int(c["received"]) for c in self.clients)

    @property
    def missing(self) -> int:
        return sum(self.count - int(c["received"]) for c in self.clients)

    @property
    def notices(self) -> int:
        return sum(int(c["skipped_notices"]) for c in self.clients)

    @property
    def problems(self) -> int:
        return sum(int(c["unexplained"]) + int(c["disorder"]) for c in self.clients)

    @property
    def frame_rate(self) -> float:
        """Frames per second per client (the hub batches what queued up meanwhile)."""
        if not self.clients:
            return float("nan")
        return sum(int(c["frames"]) for c in self.clients) / len(self.clients) / self.window

    @property
    def drain(self) -> float:
        lags = [float(c["last_lag"]) for c in self.clients if c["last_lag"] is not None]
        return max(lags) if lags else float("nan")

    def summary(self) -> Dict[str, Any]:
        out = {
            key: getattr(self, key)
            for key in (
                "round",
                "count",
                "seconds",
                "window",
                "sidecar_cpu",
                "supervisord_cpu",
                "child_cpu",
                "flood_cpu",
                "client_cpu",
                "background",
                "received",
                "missing",
                "notices",
                "problems",
                "frame_rate",
                "extra",
            )
        }
        out["setup"] = self.setup.name
        out["drain_ms"] = self.drain
        for name in ("latency", "capture", "delivery"):
            values = getattr(self, name)
            if values:
                out[name] = {
                    "n": len(values),
                    "p50": percentile(values, 0.5),
                    "p99": percentile(values, 0.99),
                    "max": max(values),
                }
        return out


def measure(setup: Setup, round_: int, args: argparse.Namespace) -> Result:
    count = int(setup.rate * args.seconds)
    result = Result(setup, round_, count, args.seconds)
    stack = Stack(setup, count, args.batch_above, args.keep, args.sidecar_command)
    client: Optional[ClientProcess] = None
    spy: Optional[PySpy] = None
    try:
        stack.start()
        if setup.clients:
            spec = {
                "url": stack.url,
                "process": "stream",
                "clients": setup.clients,
                "count": count,
                "full": min(args.full_clients, setup.clients),
                "idle": 5.0,
                "timeout": args.seconds + 120,
            }
            client = ClientProcess(spec, stack.dir / "client.err")
            ready = client.receive(60)
            assert ready.get("ready"), ready
        flood_pid = 0
        if setup.flood:
            stack.rpc.supervisor.startProcess("flood")
            flood_pid = int(stack.rpc.supervisor.getProcessInfo("flood")["pid"])
            time.sleep(0.5)  # the flood at full speed first
        if args.profile:
            spy = PySpy(stack.sidecar_pid, Path(args.profile) / f"{setup.name}-r{round_}.txt")
            time.sleep(0.5)
        flood_at_go = log_offset(stack.dir / "streamlog" / "flood.log")
        side0 = proc_times(stack.sidecar_pid)[0]
        sup0, reaped0 = proc_times(stack.pid)
        child0 = proc_times(stack.stream_pid)[0]
        flood0 = proc_times(flood_pid)[0] if flood_pid else 0.0
        busy0 = machine_busy()
        began = time.monotonic()
        if not setup.rate:
            time.sleep(args.seconds)  # idle: the child writes nothing
        os.kill(stack.stream_pid, signal.SIGUSR1)
        wait_for(
            lambda: proc_state(stack.stream_pid) in ("", "Z", "X"),
            args.seconds + 120,
            "the child to finish",
            0.02,
        )
        if client is not None:
            client.tell("done")
            report = client.receive(args.seconds + 150)
        else:
            report = {}

            def caught_up() -> bool:
                text = http_get(stack.url + "/metrics")[1].decode()
                return metric(text, "streamlog_sidecar_follow_lag_bytes", "stream:stream") == 0

            wait_for(caught_up, 60, "the sidecar to reach the end of the file", 0.02)
        result.window = time.monotonic() - began
        result.sidecar_cpu = proc_times(stack.sidecar_pid)[0] - side0
        sup1 = proc_times(stack.pid)[0]
        if flood_pid:
            result.flood_cpu = proc_times(flood_pid)[0] - flood0
        busy = machine_busy() - busy0
        if spy is not None:
            spy.stop()
        result.supervisord_cpu = sup1 - sup0
        # The child was reaped: its CPU is in supervisord's children time now.
        wait_for(lambda: proc_state(stack.stream_pid) == "", 10, "the child to be reaped")
        result.child_cpu = proc_times(stack.pid)[1] - reaped0 - child0
        result.client_cpu = float(report.get("cpu", 0.0))
        ours = (
            result.sidecar_cpu
            + result.supervisord_cpu
            + result.child_cpu  # it exited inside the window
            + result.flood_cpu
            + result.client_cpu
        )
        result.background = max(0.0, busy - ours) / result.window
        result.clients = list(report.get("clients", []))
        result.latency = list(report.get("latency", []))
        result.capture = list(report.get("capture", []))
        result.delivery = list(report.get("delivery", []))
        if setup.flood:
            text = http_get(stack.url + "/metrics")[1].decode()
            flood_now = log_offset(stack.dir / "streamlog" / "flood.log")
            result.extra = {
                "flood_mb_per_s": (flood_now - flood_at_go) / 1e6 / result.window,
                "flood_sidecar_lag_mb": (
                    metric(text, "streamlog_sidecar_follow_lag_bytes", "flood:flood") or 0
                )
                / 1e6,
                "flood_sidecar_read_mb": (
                    metric(text, "streamlog_sidecar_bytes_total", "flood:flood") or 0
                )
                / 1e6,
                "flood_written_mb": flood_now / 1e6,
            }
    except BaseException:
        print(stack.errors(), file=sys.stderr)
        raise
    finally:
        if spy is not None:
            spy.stop()
        if client is not None:
            client.stop()
        stack.stop()
        stack.cleanup()
    return result


# ---------------------------------------------------------------- inside the client process


class Watch:
    """What one WebSocket client received, checked as it arrives."""

    KEY = '"text": "seq '

    def __init__(self, index: int, count: int, full: bool) -> None:
        self.index = index
        self.count = count
        self.full = full
        self.next_seq = 0
        self.received = 0
        self.unexplained = 0  # lines jumped over without a skipped notice
        self.disorder = 0  # a line twice, backwards, or a frame that does not add up
        self.offset_jumps = 0  # a frame not starting at the previous cursor
        self.skipped_notices = 0
        self.skipped_bytes = 0
        self.frames = 0
        self.cursor: Optional[int] = None
        self.noticed = False
        self.last_lag: Optional[float] = None
        self.latency: List[float] = []
        self.capture: List[float] = []
        self.delivery: List[float] = []
        self._stamps: Dict[str, float] = {}
        self.error = ""

    @property
    def complete(self) -> bool:
        return self.next_seq >= self.count

    def _account(self, first: int, last: int, lines: int) -> None:
        if first > self.next_seq and not self.noticed:
            self.unexplained += first - self.next_seq
        elif first < self.next_seq or last - first + 1 != lines:
            self.disorder += 1
        self.noticed = False
        self.next_seq = max(self.next_seq, last + 1)
        self.received += lines

    def handle(self, text: str, now: float) -> None:
        self.frames += 1
        if not text.startswith('{"type": "lines"'):
            frame = json.loads(text)
            if frame.get("type") == "skipped":
                self.skipped_notices += 1
                self.skipped_bytes += int(frame["to"]) - int(frame["from"])
                self.cursor = int(frame["to"])
                self.noticed = True
            return
        if self.full:
            self._decode(text, now)
        else:
            self._scan(text, now)

    def _scan(self, text: str, now: float) -> None:
        """Check a ``lines`` frame without decoding it."""
        at = text.index('"cursor": ') + 10
        cursor = int(text[at : text.index(",", at)])
        at = text.find('{"offset": ')
        if at >= 0:
            first_offset = int(text[at + 11 : text.index(",", at)])
            if self.cursor is not None and first_offset != self.cursor:
                self.offset_jumps += 1
        self.cursor = cursor
        lines = text.count(self.KEY)
        if not lines:
            return
        at = text.find(self.KEY) + len(self.KEY)
        first = int(text[at : at + 9])
        at = text.rfind(self.KEY) + len(self.KEY)
        last = int(text[at : at + 9])
        self._account(first, last, lines)
        if last == self.count - 1:
            stamp = float(text[at + 12 : text.index(" ", at + 12)])
            self.last_lag = (now - stamp) * 1000

    def _decode(self, text: str, now: float) -> None:
        """Decode a ``lines`` frame and check every entry."""
        frame = json.loads(text)
        for entry in frame["entries"]:
            if self.cursor is not None and entry["offset"] != self.cursor:
                self.offset_jumps += 1
            self.cursor = entry["end"]
            body = entry["text"]
            if entry["stream"] != "stdout" or not body.startswith("seq "):
                continue
            parts = body.split(" ", 4)
            seq, stamp = int(parts[1]), float(parts[3])
            self._account(seq, seq, 1)
            record = self._stamps.get(entry["time"])
            if record is None:
                if len(self._stamps) > 10000:
                    self._stamps.clear()
                record = self._stamps[entry["time"]] = datetime.fromisoformat(
                    entry["time"]
                ).timestamp()
            self.latency.append(round((now - stamp) * 1000, 3))
            self.capture.append(round((record - stamp) * 1000, 3))
            self.delivery.append(round((now - record) * 1000, 3))
            if seq == self.count - 1:
                self.last_lag = (now - stamp) * 1000
        self.cursor = int(frame["cursor"])

    def summary(self) -> Dict[str, Any]:
        return {
            "index": self.index,
            "received": self.received,
            "unexplained": self.unexplained,
            "disorder": self.disorder,
            "offset_jumps": self.offset_jumps,
            "skipped_notices": self.skipped_notices,
            "skipped_bytes": self.skipped_bytes,
            "frames": self.frames,
            "last_lag": self.last_lag,
            "error": self.error,
        }


async def client_main(spec: Dict[str, Any]) -> Dict[str, Any]:
    import tornado.httpclient
    import tornado.websocket

    url = str(spec["url"])
    count = int(spec["count"])
    watches = [Watch(i, count, i < int(spec["full"])) for i in range(int(spec["clients"]))]
    connections: List[tornado.websocket.WebSocketClientConnection] = []
    loop = asyncio.get_running_loop()
    last_frame = [time.monotonic()]

    def receiver(watch: Watch, subscribed: asyncio.Future) -> Callable[[Any], None]:
        """A message callback (cheaper than a task awaiting read_message per frame)."""

        def on_message(message: Union[None, str, bytes]) -> None:
            now = time.time()
            if message is None:
                watch.error = watch.error or "closed"
                if not subscribed.done():
                    subscribed.set_exception(RuntimeError("closed before subscribed"))
                return
            text = message if isinstance(message, str) else message.decode()
            last_frame[0] = time.monotonic()
            if subscribed.done():
                if not watch.complete:
                    watch.handle(text, now)
                return
            frame = json.loads(text)
            if frame["type"] == "error":
                subscribed.set_exception(RuntimeError(f"refused: {frame}"))
            elif frame["type"] == "subscribed":
                watch.cursor = int(frame["cursor"])
                subscribed.set_result(None)

        return on_message

    for watch in watches:
        request = tornado.httpclient.HTTPRequest(
            url.replace("http", "ws", 1) + "/ws",
            headers={"Origin": url},
            network_interface=f"127.0.0.{2 + watch.index // PER_ADDRESS}",
        )
        subscribed: asyncio.Future = loop.create_future()
        connection = await tornado.websocket.websocket_connect(
            request, ping_interval=None, on_message_callback=receiver(watch, subscribed)
        )
        connections.append(connection)
        await connection.write_message(
            json.dumps({"type": "subscribe", "process": spec["process"]})
        )
        await asyncio.wait_for(subscribed, 30)

    done = asyncio.Event()

    def on_stdin() -> None:
        data = os.read(0, 4096)
        if not data or b"done" in data:
            done.set()
            loop.remove_reader(0)

    loop.add_reader(0, on_stdin)
    cpu0 = sum(os.times()[:2])
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + float(spec["timeout"])
    while not all(w.complete for w in watches):
        if time.monotonic() > deadline:
            break
        if done.is_set() and time.monotonic() - last_frame[0] > float(spec["idle"]):
            break
        await asyncio.sleep(0.01)
    cpu = sum(os.times()[:2]) - cpu0
    for connection in connections:
        connection.close()
    return {
        "cpu": cpu,
        "clients": [w.summary() for w in watches],
        "latency": [v for w in watches if w.full for v in w.latency][:1_000_000],
        "capture": [v for w in watches if w.full for v in w.capture][:1_000_000],
        "delivery": [v for w in watches if w.full for v in w.delivery][:1_000_000],
    }


def run_client(spec: Dict[str, Any]) -> int:
    result = asyncio.run(client_main(spec))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------- report


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def pooled(results: List[Result], name: str) -> List[float]:
    return [v for r in results for v in getattr(r, name)]


def write_mode(setup: Setup, batch_above: int) -> str:
    return "1 line/write" if setup.rate <= batch_above else "1 write/ms"


def report(by_setup: Dict[str, List[Result]], args: argparse.Namespace) -> None:
    setups = [s for s in SETUPS if by_setup.get(s.name)]
    print()
    print("Latency, child's write -> WebSocket client (ms; pooled over rounds)")
    print()
    print(
        "| setup | lines/s | writes | samples | p50 | p99 | max | capture p50 / p99 "
        "| delivery p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for setup in setups:
        results = by_setup[setup.name]
        lat = pooled(results, "latency")
        if not lat:
            continue
        cap, dlv = pooled(results, "capture"), pooled(results, "delivery")
        label = setup.name + (" (client 0 of 50)" if setup.clients > 1 else "")
        label += " + flood" if setup.flood else ""
        print(
            f"| {label} | {setup.rate:,} | {write_mode(setup, args.batch_above)} | {len(lat)} "
            f"| {percentile(lat, 0.5):.2f} | {percentile(lat, 0.99):.2f} | {max(lat):.2f} "
            f"| {percentile(cap, 0.5):.2f} / {percentile(cap, 0.99):.2f} "
            f"| {percentile(dlv, 0.5):.2f} / {percentile(dlv, 0.99):.2f} |"
        )
    target = by_setup.get("L1000")
    if target:
        lat = pooled(target, "latency")
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        verdict = "met" if p50 <= 10 and p99 <= 50 else "NOT met"
        print(
            f"\nTarget at 1 000 lines/s (p50 <= 10 ms, p99 <= 50 ms): {verdict} "
            f"(p50 {p50:.2f} ms, p99 {p99:.2f} ms)"
        )

    print()
    print(
        f"CPU per second of streaming ({args.seconds:g} s per measurement; "
        "median over rounds) and delivery"
    )
    print()
    print(
        "| setup | lines/s | clients | clients complete | lines received / expected "
        "| skipped notices | sidecar CPU s/s | sidecar ms per 1000 lines x clients "
        "| frames/s per client | client proc CPU s/s | supervisord CPU s/s | drain max ms "
        "| bg cores |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for setup in setups:
        results = by_setup[setup.name]
        per_s = statistics.median(r.sidecar_cpu / r.seconds for r in results)
        if setup.clients and setup.rate:
            per_k = statistics.median(
                r.sidecar_cpu * 1e6 / (r.count * setup.clients) for r in results
            )
            per_k_text = f"{per_k:.3f}"
        elif setup.rate:
            alone = statistics.median(r.sidecar_cpu * 1e6 / r.count for r in results)
            per_k_text = f"({alone:.3f} per 1000 lines)"
        else:
            per_k_text = "n/a"
        received = sum(r.received for r in results)
        expected = sum(r.count * setup.clients for r in results)
        complete = sum(
            1
            for r in results
            for c in r.clients
            if int(c["received"]) == r.count and not int(c["unexplained"]) + int(c["disorder"])
        )
        problems = sum(r.problems for r in results)
        print(
            f"| {setup.name}{' + flood' if setup.flood else ''} | {setup.rate:,} "
            f"| {setup.clients} | {complete} / {setup.clients * len(results)} "
            f"| {received:,} / {expected:,}{f' ({problems} PROBLEMS)' if problems else ''} "
            f"| {sum(r.notices for r in results)} | {per_s:.3f} | {per_k_text} "
            f"| {fmt(statistics.median(r.frame_rate for r in results), 0)} "
            f"| {statistics.median(r.client_cpu / r.seconds for r in results):.3f} "
            f"| {statistics.median(r.supervisord_cpu / r.seconds for r in results):.3f} "
            f"| {fmt(statistics.median(r.drain for r in results))} "
            f"| {max(r.background for r in results):.2f} |"
        )
    jumps = sum(int(c["offset_jumps"]) for rs in by_setup.values() for r in rs for c in r.clients)
    if jumps:
        print(f"\n{jumps} frames did not start at the previous cursor (see --json)")

    ratios: List[str] = []
    rounds = sorted({r.round for rs in by_setup.values() for r in rs})

    def ratio(label: str, f: Callable[[Dict[str, Result]], float], unit: str = "") -> None:
        values = []
        for round_ in rounds:
            found = {r.setup.name: r for rs in by_setup.values() for r in rs if r.round == round_}
            try:
                values.append(f(found))
            except (KeyError, ZeroDivisionError, ValueError, IndexError):
                pass
        if values:
            ratios.append(f"{label}: {' / '.join(f'{v:.2f}{unit}' for v in values)}")

    many = max((s.clients for s in setups if s.name == "F50"), default=0)
    ratio(
        f"sidecar CPU, {many} clients / 1 client",
        lambda g: g["F50"].sidecar_cpu / g["F1"].sidecar_cpu,
        "x",
    )
    ratio(
        f"sidecar CPU per extra client, ((F50 - F1) / {many - 1}) per 1000 lines",
        lambda g: (g["F50"].sidecar_cpu - g["F1"].sidecar_cpu) * 1e6 / (many - 1) / g["F1"].count,
        " ms",
    )
    ratio(
        "sidecar CPU, 1 client / 0 clients",
        lambda g: g["F1"].sidecar_cpu / g["F0"].sidecar_cpu,
        "x",
    )
    ratio(
        "sidecar CPU to follow with nobody subscribed, (F0 - I0) per 1000 lines",
        lambda g: (g["F0"].sidecar_cpu - g["I0"].sidecar_cpu) * 1e6 / g["F0"].count,
        " ms",
    )
    ratio(
        "latency p50, behind a flood / quiet (1 000 lines/s)",
        lambda g: percentile(g["FL"].latency, 0.5) / percentile(g["L1000"].latency, 0.5),
        "x",
    )
    ratio(
        "latency p99, behind a flood / quiet (1 000 lines/s)",
        lambda g: percentile(g["FL"].latency, 0.99) / percentile(g["L1000"].latency, 0.99),
        "x",
    )
    if ratios:
        print("\nComparisons (within a round; one value per round):")
        for line in ratios:
            print(f"- {line}")
    floods = by_setup.get("FL", [])
    for r in floods:
        e = r.extra
        if e:
            print(
                f"\nFL round {r.round}: flood captured at {e['flood_mb_per_s']:.0f} MB/s; "
                f"sidecar CPU {r.sidecar_cpu / r.seconds:.2f} s/s; nobody subscribed to flood, "
                f"yet the sidecar read {e['flood_sidecar_read_mb']:.0f} MB of it (of "
                f"{e['flood_written_mb']:.0f} MB written; the rest was rotated away and deleted "
                f"before it got there; {e['flood_sidecar_lag_mb']:.0f} MB behind in the live file)"
            )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="streaming per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s (under a minute)")
    parser.add_argument("--clients", type=int, default=50, help="clients of the F50 setup")
    parser.add_argument("--only", default="", help="comma-separated setups (default: all)")
    parser.add_argument("--batch-above", type=int, default=1000, help="lines/s above which")
    parser.add_argument("--full-clients", type=int, default=1, help="clients decoding frames")
    parser.add_argument("--quiet-load", type=float, default=0.3, help="background cores limit")
    parser.add_argument("--quiet-wait", type=float, default=5, help="wait for quiet (s)")
    parser.add_argument(
        "--retries", type=int, default=3, help="disturbed measurements repeated (in all)"
    )
    parser.add_argument("--profile", default="", help="py-spy the sidecar into this directory")
    parser.add_argument(
        "--sidecar-command",
        default=SIDECAR,
        help="the sidecar program's command ({python}, {conf} substituted): to compare a variant",
    )
    parser.add_argument("--json", default="", help="write every measurement here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--client-spec", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_spec:
        return run_client(json.loads(args.client_spec))
    retries = args.retries
    if args.quick:
        args.seconds, args.rounds, args.quiet_wait, retries = 3.0, 1, 1.0, 0
    setups = [
        Setup(s.name, s.rate, args.clients, s.flood, s.what) if s.name == "F50" else s
        for s in SETUPS
    ]
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        setups = [s for s in setups if s.name in wanted]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    by_setup: Dict[str, List[Result]] = {}
    began = time.monotonic()
    for round_ in range(1, args.rounds + 1):
        shift = (round_ - 1) % len(setups)
        for setup in setups[shift:] + setups[:shift]:
            while True:
                wait_quiet(args.quiet_load, args.quiet_wait)
                result = measure(setup, round_, args)
                if result.background <= args.quiet_load or retries <= 0:
                    break
                retries -= 1
                print(f"  {setup.name}: other processes used {result.background:.2f} cores: again")
            by_setup.setdefault(setup.name, []).append(result)
            lat = result.latency
            print(
                f"round {round_} {setup.name:5} {result.window:5.1f} s, sidecar "
                f"{result.sidecar_cpu / result.seconds:.3f} CPU s/s, client proc "
                f"{result.client_cpu / result.seconds:.3f}, {fmt(result.frame_rate, 0)} frames/s, "
                f"received {result.received:,}/"
                f"{result.count * setup.clients:,}, notices {result.notices}"
                + (
                    f", p50 {percentile(lat, 0.5):.2f} ms p99 {percentile(lat, 0.99):.2f} ms"
                    if lat
                    else ""
                )
                + f", bg {result.background:.2f}",
                flush=True,
            )
    report(by_setup, args)
    python = sys.version.split()[0]
    print(f"\n({time.monotonic() - began:.0f} s, {os.cpu_count()} CPUs, Python {python})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([r.summary() for rs in by_setup.values() for r in rs], handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
