"""The tail page in headless Chromium: write-to-screen latency, long tasks, frames, heap.

(Long: the stack, the measurements, the report and the screenshot run on one
shared set of helpers; splitting them would spread one benchmark over files.)

    python -m bench.page                       # 2 rounds: ~3 min
    python -m bench.page --quick               # 1 round of 4 s streams (~1 min)
    python -m bench.page --seconds 10 --rounds 2 --json bench/results/page.json
    python -m bench.page --screenshot docs/screenshot.png   # only the README's picture
    python -m bench.page --quick --json-lines  # the same with JSON lines (levels, chips)
    python -m bench.page --first-line 15 --before /work/base   # time to first line, vs another tree

One real stack for the whole run, in a temporary directory: supervisord from
pip (nodaemon, unix socket) with the plugin (``[rpcinterface:streamlog]``), the
sidecar as a ``[program:sidecar]`` bound to 127.0.0.1 on a free port, and
``bench/children/stamped.py`` children (``autostart = false``) that write
100-byte lines ``seq N t EPOCH xxx...``, EPOCH being ``time.time()`` just
before the ``write(2)`` (one line per write up to 1 000 lines/s, above that
one write per 1 ms tick; with ``--json-lines``, JSON objects instead, such as
``{"level":"info",...,"msg":"seq N t EPOCH",...}``, that the page shows as a
level mark, the message and field chips).  Each child waits for SIGUSR1 before its first line,
so the page is open and subscribed before anything is written.  The page is
Debian's ``/usr/bin/chromium`` driven by Playwright (never a downloaded
browser), headless, 1280x800, the launch arguments of tests/test_browser.py,
one new browser context per measurement, opened at ``/?process=NAME``, and
following (the default).  The stack imports ``supervisor_streamlog`` from this
checkout (``PYTHONPATH``), so the page measured is the one in this tree.

Instruments, installed with ``add_init_script`` before the page's own scripts
(``window.__bench``; the page's CSP does not apply to them):

* a ``MutationObserver`` on the document: the first time a row whose text
  holds ``seq N t EPOCH`` is added to the DOM, it records N, EPOCH and
  ``performance.timeOrigin + performance.now()`` (wall-clock ms, the host's
  clock, like the child's ``time.time()``; the skew between the two is
  measured and printed).  *dom* latency = that time minus EPOCH.  The view is
  virtualized: only the rows in view (and an overscan) exist, so at 10 000
  lines/s most lines are never rendered -- only the lines that were rendered
  are counted (a sample: "on screen" says how many of the written lines that is);
* *painted*: a ``MessageChannel`` message posted from that observer callback:
  it runs after the rendering step of the frame that inserted the rows, so it
  bounds when the row was painted;
* the WebSocket: a subclass of ``WebSocket`` whose own ``message`` listener
  (registered before the page's) stamps each frame's arrival and the first
  and last ``seq`` in it, which splits the latency in *ws* (write -> frame in
  the page: capture, file, sidecar, socket) and *page* (frame -> row in the
  DOM: JSON, the store, the per-frame batching, render);
* ``PerformanceObserver`` for ``longtask`` (buffered): tasks over 50 ms, with
  their start and duration;
* frames: a ``requestAnimationFrame`` loop recording each frame's timestamp;
  frame time = delta between consecutive frames (16.7 ms at 60 Hz);
* the JS heap (``JSHeapUsedSize`` from CDP ``Performance.getMetrics``, after
  ``HeapProfiler.collectGarbage``) and ``document.getElementsByTagName('*')``.

Measurements, per round, in this order (each with a fresh child ``slowN``, ``fastN``, ``bulkN``):

==========  ===========  ===================================================
name        lines/s      what
==========  ===========  ===================================================
L100        100          latency (target p50 <= 50 ms, p99 <= 150 ms);
                         frames before (idle) and while ingesting
L10k        10 000       latency (sampled), long tasks (target: none over
                         100 ms), frames while ingesting
R200k       20 000       200 000 lines retained: heap and DOM nodes empty vs
                         full, frames idle with 200 000 lines held, frames
                         and long tasks while scrolling up by ``--scroll-step``
                         px every frame (``scrollTop`` set in a rAF loop) for
                         ``--scroll-seconds``; also latency/long tasks at 20 000 lines/s
==========  ===========  ===================================================

CPU is read from /proc for each window, in cores: chromium's renderers (the
page), the rest of chromium with Playwright's driver and this script, the stack
(supervisord and its children) and *others*: whatever else the machine did
(``/proc/stat``, steal included, minus ours: on a shared machine, other jobs).
Every measurement waits (up to ``--quiet-wait`` s) for the machine to be quiet,
and one during which others used more than ``--quiet-load`` cores is repeated
with fresh children, ``--retries`` times in all (not with ``--quick``).

Everything listens on 127.0.0.1 or unix sockets in the temporary directory;
supervisord and the browser are stopped at the end, errors included.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import json
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from bench.common import (
    CLK_TCK,
    ROOT,
    Supervisord,
    http_get,
    machine_busy,
    proc_stat,
    wait_for,
    wait_quiet,
)

STAMPED = ROOT / "bench" / "children" / "stamped.py"
CHATTY = ROOT / "conf" / "demo" / "chatty.py"
CHROMIUM = "/usr/bin/chromium"
# As tests/test_browser.py launches it.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}

# ---------------------------------------------------------------- the stack

CONF = """
[rpcinterface:streamlog]
supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface

[streamlog]
logdir = {dir}/streamlog
programs = {programs}
maxbytes = 50MB
backups = 2
bind = 127.0.0.1:{port}

[program:sidecar]
command = {python} -m supervisor_streamlog serve -c {conf}
autorestart = false
startsecs = 0
stdout_logfile = {dir}/sidecar.out
stderr_logfile = {dir}/sidecar.err
"""

PROGRAM = """
[program:{name}]
command = {command}
autostart = {autostart}
autorestart = {autorestart}
startsecs = {startsecs}
stdout_logfile = NONE
stderr_logfile = NONE
stdout_events_enabled = true
stderr_events_enabled = true
"""


class Stack(Supervisord):
    """supervisord + plugin + sidecar + the given programs, in a temporary directory."""

    def __init__(self, programs: Dict[str, Dict[str, str]], keep: bool, root: Path = ROOT) -> None:
        # The sidecar serves this checkout's page (PYTHONPATH), not an installed
        # one; or ``root``'s, to compare with another worktree.
        super().__init__("streamlog-page-", keep=keep, sidecar=True, root=root)
        text = CONF.format(
            dir=self.dir,
            port=self.port,
            python=sys.executable,
            conf=self.conf,
            programs=" ".join(programs),
        )
        for name, options in programs.items():
            section = {"autostart": "false", "autorestart": "false", "startsecs": "0"}
            section.update(options)
            section["command"] = section["command"].replace("{dir}", str(self.dir))
            text += PROGRAM.format(name=name, **section)
        self.configure(text, loglevel="warn")

    def start_stamped(self, name: str) -> int:
        """Start a stamped.py child; its pid once it waits for SIGUSR1 and the sidecar knows it."""
        self.rpc.supervisor.startProcess(name, True)
        ready = self.dir / f"{name}.ready"
        wait_for(lambda: ready.exists() and ready.read_text().endswith("\n"), 30, name)
        # The sidecar knows a process once its file exists (the RUNNING record).
        wait_for(lambda: http_get(f"{self.url}/api/log/{name}")[0] == 200, 30, f"{name}'s log")
        return int(ready.read_text())

    def cleanup(self) -> None:
        if self.keep:
            print(f"  kept {self.dir}", flush=True)
        super().cleanup()


# ---------------------------------------------------------------- CPU


def cpu_snapshot(stack_pid: int) -> Dict[str, float]:
    """CPU seconds used so far: the whole machine, and this run's processes by group.

    ``renderer``: chromium's renderer processes (the page); ``browser``: the
    rest of chromium, Playwright's driver and this script; ``stack``: supervisord and its
    children (the sidecar, the writing child).  Processes are found as
    descendants of this one and of supervisord, through /proc.
    """
    parents: Dict[int, int] = {}
    used: Dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = proc_stat(int(entry))
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK

    def descendants(root: int) -> List[int]:
        found, todo = [root], [root]
        while todo:
            parent = todo.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            found += children
            todo += children
        return found

    stack = set(descendants(stack_pid)) if stack_pid else set()
    out = {"machine": machine_busy(), "renderer": 0.0, "browser": 0.0, "stack": 0.0}
    out["stack"] = sum(used.get(pid, 0.0) for pid in stack)
    for pid in descendants(os.getpid()):
        if pid in stack:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as raw:
                renderer = b"--type=renderer" in raw.read()
        except OSError:
            continue
        out["renderer" if renderer else "browser"] += used.get(pid, 0.0)
    return out


# The page's main-thread time from CDP Performance.getMetrics (seconds, cumulative).
MAIN_THREAD = {
    "task": "TaskDuration",
    "script": "ScriptDuration",
    "layout": "LayoutDuration",
    "style": "RecalcStyleDuration",
}


def hot_functions(profile: Dict[str, Any], top: int = 8) -> List[Tuple[str, float]]:
    """Self time (ms) per function of a CDP CPU profile, the largest first."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    self_ms: Dict[str, float] = {}
    for node_id, delta in zip(profile.get("samples", []), profile.get("timeDeltas", [])):
        frame = nodes[node_id]["callFrame"]
        url = str(frame.get("url", "")).rsplit("/", 1)[-1]
        name = frame.get("functionName") or "(anonymous)"
        where = f"{name} {url}:{int(frame.get('lineNumber', 0)) + 1}" if url else name
        self_ms[where] = self_ms.get(where, 0.0) + delta / 1000
    return sorted(self_ms.items(), key=lambda item: -item[1])[:top]


# ---------------------------------------------------------------- in the page

# The instruments, installed before the page's own scripts (window.__bench).
INSTRUMENTS = ROOT / "bench" / "page.js"

# ---------------------------------------------------------------- numbers


def percentile(values: List[float], fraction: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def deltas(times: List[float]) -> List[float]:
    return [b - a for a, b in zip(times, times[1:])]


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or a != a or b != b else f"{a / b:.2f}x"


@dataclass
class Window:
    """Frames and long tasks over one stretch of time in the page."""

    name: str
    frames: List[float] = field(default_factory=list)  # frame times, ms
    longtasks: List[float] = field(default_factory=list)  # durations, ms
    seconds: float = 0.0
    nodes: int = 0  # most elements seen in the DOM (every 10th frame)
    cpu: Dict[str, float] = field(default_factory=dict)  # cores busy meanwhile, by group
    profile: List[Tuple[str, float]] = field(default_factory=list)  # --profile: hot functions

    @property
    def load(self) -> float:
        return self.cpu.get("machine", float("nan"))

    def summary(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "frames": len(self.frames),
            "frame_p50": percentile(self.frames, 0.5),
            "frame_p99": percentile(self.frames, 0.99),
            "frame_max": max(self.frames, default=float("nan")),
            "late": sum(1 for f in self.frames if f > 20),  # at least one vsync missed
            "longtasks": len(self.longtasks),
            "longtask_max": max(self.longtasks, default=0.0),
            "max_elements": self.nodes,
            "cores": self.cpu,
            "profile": self.profile,
        }


@dataclass
class Stream:
    """One child's lines through the page: latency of the lines rendered, and counts."""

    name: str
    rate: int
    written: int
    held: int = 0  # lines the page's store holds
    seen: int = 0  # distinct lines that were rendered as rows
    dom: List[float] = field(default_factory=list)
    painted: List[float] = field(default_factory=list)
    ws: List[float] = field(default_factory=list)
    page: List[float] = field(default_factory=list)
    drain: float = float("nan")  # last line in the store: s after the child's last write
    follow: bool = True

    def summary(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            key: getattr(self, key)
            for key in ("name", "rate", "written", "held", "seen", "drain", "follow")
        }
        for key in ("dom", "painted", "ws", "page"):
            values = getattr(self, key)
            out[key] = {
                "n": len(values),
                "p50": percentile(values, 0.5),
                "p99": percentile(values, 0.99),
                "max": max(values, default=float("nan")),
            }
        return out


def latencies(stream: Stream, data: Dict[str, List[Any]]) -> None:
    """Fill a Stream from what the instruments recorded."""
    stream.seen = len(data["seq"])
    arrivals = sorted(data["arrivals"], key=lambda a: a[1])
    firsts = [int(a[1]) for a in arrivals]
    for seq, stamp, dom, paint in zip(data["seq"], data["stamp"], data["dom"], data["paint"]):
        stream.dom.append(dom - stamp)
        if paint:
            stream.painted.append(paint - stamp)
        k = bisect.bisect_right(firsts, seq) - 1
        if k >= 0 and arrivals[k][1] <= seq <= arrivals[k][2]:
            stream.ws.append(arrivals[k][0] - stamp)
            stream.page.append(dom - arrivals[k][0])


# ---------------------------------------------------------------- measuring


class Bench:
    """The stack and the browser, and one measurement after another."""

    def __init__(self, args: argparse.Namespace, stack: Stack, browser: Any) -> None:
        self.args = args
        self.stack = stack
        self.browser = browser
        self.errors: List[str] = []
        self.cdp: Any = None  # the current page's CDP session

    def open(self, name: str) -> Tuple[Any, Any, Any]:
        """A new context and page following ``name``, subscribed; and a CDP session."""
        context = self.browser.new_context(viewport=VIEWPORT, color_scheme="light")
        context.add_init_script(path=INSTRUMENTS)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{name}: {exc}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"{name}: {m.text}") if m.type == "error" else None,
        )
        page.goto(f"{self.stack.url}/?process={name}")
        page.wait_for_function(
            """() => window.streamlog && window.streamlog.live.connected
                && window.streamlog.session.subs.size === 1
                && [...window.streamlog.session.subs.values()][0].cursor !== null""",
            timeout=30_000,
        )
        page.wait_for_selector("#log .row", timeout=30_000)  # the RUNNING marker
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        self.cdp = cdp
        return context, page, cdp

    def frames(self, page: Any, name: str, seconds: float) -> Window:
        """Frames and long tasks while nothing is written."""
        busy = self.usage()
        page.evaluate("window.__bench.startFrames()")
        time.sleep(seconds)
        got = page.evaluate("window.__bench.stopFrames()")
        return self.window(page, name, got, busy)

    def window(self, page: Any, name: str, got: Dict[str, Any], busy: Dict[str, float]) -> Window:
        time.sleep(0.2)  # long task entries are reported after the task
        began, ended = float(got["began"]), float(got["ended"])
        tasks = page.evaluate("window.__bench.longtasks")
        seconds = (ended - began) / 1000
        return Window(
            name,
            frames=deltas(got["times"]),
            longtasks=[d for start, d in tasks if began <= start + d and start <= ended],
            seconds=seconds,
            nodes=int(got["nodes"]),
            cpu=usage(busy, self.usage()),
        )

    def ingest(
        self, page: Any, name: str, pid: int, rate: int, count: int
    ) -> Tuple[Stream, Window]:
        """Signal the child, follow its lines into the page until the last one is held."""
        stream = Stream(name, rate, count)
        process = page.evaluate("[...window.streamlog.session.subs.keys()][0]")  # "name:name"
        busy = self.usage()
        page.evaluate("window.__bench.startFrames()")
        self.profile_start()
        os.kill(pid, signal.SIGUSR1)
        began = time.time()
        deadline = began + count / rate + self.args.drain_timeout
        while page.evaluate("(p) => window.__bench.newest(p)", process) < count - 1:
            if time.time() > deadline:
                print(f"  {name}: the page did not get the last line in time", flush=True)
                break
            time.sleep(0.1)
        got = page.evaluate("window.__bench.stopFrames()")
        stream.drain = time.time() - (began + count / rate)
        window = self.window(page, f"{name} ingesting {rate:,}/s", got, busy)
        self.profile_stop(window)
        latencies(stream, page.evaluate("window.__bench.take()"))
        stream.held = int(page.evaluate("(p) => window.__bench.held(p)", process))
        stream.follow = bool(page.evaluate("window.streamlog.session.follow"))
        return stream, window

    def heap(self, cdp: Any) -> Dict[str, float]:
        cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return {
            "heap_mb": metrics["JSHeapUsedSize"] / 1e6,
            "heap_total_mb": metrics["JSHeapTotalSize"] / 1e6,
            "cdp_nodes": metrics.get("Nodes", float("nan")),
        }

    def clock_skew(self, page: Any) -> float:
        """Page wall clock minus time.time() (ms), from a bracketed reading."""
        before = time.time()
        value = float(page.evaluate("performance.timeOrigin + performance.now()"))
        after = time.time()
        return value - (before + after) / 2 * 1000

    def probe(self) -> float:
        """A 120 ms busy loop in the page: the long task the observer reports (ms; 0: none).

        Shows that the longtask observer works in this browser, so "0 long tasks"
        means none happened rather than none could be seen.
        """
        context = self.browser.new_context(viewport=VIEWPORT)
        context.add_init_script(path=INSTRUMENTS)
        try:
            page = context.new_page()
            page.goto(self.stack.url + "/")
            page.evaluate(
                """() => new Promise((done) => setTimeout(() => {
                    const t = performance.now();
                    while (performance.now() - t < 120) { /* busy */ }
                    setTimeout(done, 300);
                }, 0))"""
            )
            tasks = page.evaluate("window.__bench.longtasks")
        finally:
            context.close()
        return max((float(d) for _, d in tasks), default=0.0)

    def usage(self) -> Dict[str, float]:
        """CPU by group, and the page's main-thread time (CDP), so far."""
        snapshot = cpu_snapshot(self.stack.pid)
        snapshot["at"] = time.monotonic()
        if self.cdp is not None:
            metrics = {
                m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]
            }
            for key, metric in MAIN_THREAD.items():
                snapshot[key] = float(metrics.get(metric, 0.0))
        return snapshot

    def profile_start(self) -> None:
        if self.args.profile and self.cdp is not None:
            self.cdp.send("Profiler.enable")
            self.cdp.send("Profiler.setSamplingInterval", {"interval": 500})
            self.cdp.send("Profiler.start")

    def profile_stop(self, window: Window) -> None:
        if self.args.profile and self.cdp is not None:
            window.profile = hot_functions(self.cdp.send("Profiler.stop")["profile"])
            self.cdp.send("Profiler.disable")

    def quiet(self) -> None:
        wait_quiet(self.args.quiet_load, self.args.quiet_wait)

    def latency_run(self, name: str, rate: int, count: int) -> Dict[str, Any]:
        """L100 / L10k: idle frames, then the stream."""
        pid = self.stack.start_stamped(name)
        self.quiet()
        context, page, _ = self.open(name)
        try:
            skew = self.clock_skew(page)
            idle = self.frames(page, f"{name} idle", self.args.idle)
            stream, busy = self.ingest(page, name, pid, rate, count)
        finally:
            context.close()
            self.cdp = None
        return {"skew": skew, "idle": idle, "stream": stream, "ingest": busy}

    def retained_run(self, name: str) -> Dict[str, Any]:
        """R200k: fill the page with --retain lines, then heap, DOM, idle and scrolling frames."""
        args = self.args
        pid = self.stack.start_stamped(name)
        self.quiet()
        context, page, cdp = self.open(name)
        try:
            empty = self.heap(cdp)
            empty["elements"] = page.evaluate("window.__bench.nodes()")
            stream, busy = self.ingest(page, name, pid, args.bulk_rate, args.retain)
            page.evaluate("window.__bench.record = false")
            time.sleep(1.0)
            full = self.heap(cdp)
            full["elements"] = page.evaluate("window.__bench.nodes()")
            full["held"] = page.evaluate("window.streamlog.store.lines.length")
            idle = self.frames(page, f"{name} idle, {full['held']:,} held", args.idle)
            self.quiet()
            load = self.usage()
            self.profile_start()
            got = page.evaluate(
                "([ms, step]) => window.__bench.scroll(ms, step)",
                [args.scroll_seconds * 1000, args.scroll_step],
            )
            scroll = self.window(page, f"{name} scrolling", got, load)
            self.profile_stop(scroll)
            scroll_info = {k: got[k] for k in ("from", "to", "follow")}
            after = self.heap(cdp)
            after["elements"] = page.evaluate("window.__bench.nodes()")
        finally:
            context.close()
            self.cdp = None
        return {
            "stream": stream,
            "ingest": busy,
            "idle": idle,
            "scroll": scroll,
            "empty": empty,
            "full": full,
            "after_scroll": after,
            "scroll_info": scroll_info,
        }


# ---------------------------------------------------------------- the run


def json_line(seq: int, stamp: float) -> bytes:
    """A pino-like JSON line carrying ``seq N t EPOCH`` as its message (--json-lines)."""
    level = "error" if seq % 100 == 0 else "warn" if seq % 20 == 0 else "info"
    record = {
        "level": level,
        "time": round(stamp * 1000),
        "pid": os.getpid(),
        "hostname": "bench",
        "msg": f"seq {seq:09d} t {stamp:.6f}",
        "req": {"id": seq, "method": "GET", "url": f"/api/items/{seq % 1000}"},
        "status": 500 if level == "error" else 200,
        "ms": round(1 + seq % 37 / 10, 1),
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def json_child() -> None:
    """bench/children/stamped.py's schedule, writing json_line()s: the --json-lines child."""
    from bench.children import stamped

    stamped.line = json_line
    sys.exit(stamped.main(["stamped.py", *sys.argv[1:]]))


def programs(args: argparse.Namespace) -> Dict[str, Dict[str, str]]:
    out: Dict[str, Dict[str, str]] = {}
    child = (
        f"{sys.executable} -c 'from bench.page import json_child; json_child()'"
        if args.json_lines
        else f"{sys.executable} {STAMPED}"
    )

    def stamped(rate: int, count: int, name: str) -> Dict[str, str]:
        ready = "{dir}/" + name + ".ready"
        return {"command": f"{child} {rate} {count} {ready}"}

    # Fresh children for every measurement, repeats included: a page opened on
    # a child that already wrote would render its old lines first.
    for i in range(1, args.rounds + args.retries + 1):
        out[f"slow{i}"] = stamped(args.slow_rate, int(args.slow_rate * args.seconds), f"slow{i}")
        out[f"fast{i}"] = stamped(args.fast_rate, int(args.fast_rate * args.seconds), f"fast{i}")
        out[f"bulk{i}"] = stamped(args.bulk_rate, args.retain, f"bulk{i}")
    return out


def usage(before: Dict[str, float], after: Dict[str, float]) -> Dict[str, float]:
    """Cores busy between two snapshots, by group."""
    seconds = max(after["at"] - before["at"], 1e-3)
    return {k: (after[k] - before[k]) / seconds for k in after if k != "at"}


def pooled_window(windows: List[Window], name: str) -> Window:
    out = Window(name)
    for w in windows:
        out.frames += w.frames
        out.longtasks += w.longtasks
        out.seconds += w.seconds
        out.nodes = max(out.nodes, w.nodes)
        out.profile += w.profile
    for key in ("machine", "renderer", "browser", "stack", *MAIN_THREAD):
        values = [w.cpu[key] for w in windows if key in w.cpu]
        if values:
            out.cpu[key] = statistics.mean(values)
    return out


def pooled_stream(streams: List[Stream], name: str) -> Stream:
    out = Stream(name, streams[0].rate, 0, drain=max(s.drain for s in streams))
    for s in streams:
        out.written += s.written
        out.held += s.held
        out.seen += s.seen
        out.follow = out.follow and s.follow
        for key in ("dom", "painted", "ws", "page"):
            getattr(out, key).extend(getattr(s, key))
    return out


def cores(w: Window) -> str:
    keys = ("renderer", "browser", "stack")
    return (
        " / ".join(fmt(w.cpu.get(k, float("nan")), 2) for k in keys) + " / " + fmt(others(w.cpu), 2)
    )


def main_thread(w: Window) -> str:
    """The page's main-thread time per second of the window (CDP metrics)."""
    keys = ("task", "script", "layout", "style")
    return " / ".join(fmt(1000 * w.cpu.get(k, float("nan")), 0) for k in keys)


def ms_pair(values: List[float]) -> str:
    return f"{fmt(percentile(values, 0.5))} / {fmt(percentile(values, 0.99))}"


def report(rounds: List[Dict[str, Any]], args: argparse.Namespace) -> Dict[str, Any]:
    """Print markdown tables (pooled over rounds) and the comparisons; return the summary."""
    slow = pooled_stream([r["L100"]["stream"] for r in rounds], "L100")
    fast = pooled_stream([r["L10k"]["stream"] for r in rounds], "L10k")
    bulk = pooled_stream([r["R200k"]["stream"] for r in rounds], "R200k")
    print("\nWrite-to-screen latency, ms (pooled over rounds; only lines rendered as rows):\n")
    print(
        "| setup | lines/s | written | in the page | on screen | p50 | p99 | max "
        "| painted p50 / p99 | ws p50 / p99 | page p50 / p99 | last line after s | following |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in (slow, fast, bulk):
        print(
            f"| {s.name} | {s.rate:,} | {s.written:,} | {s.held:,} | {s.seen:,} "
            f"({100 * s.seen / max(s.written, 1):.1f} %) | {fmt(percentile(s.dom, 0.5))} "
            f"| {fmt(percentile(s.dom, 0.99))} | {fmt(max(s.dom, default=float('nan')))} "
            f"| {ms_pair(s.painted)} | {ms_pair(s.ws)} | {ms_pair(s.page)} "
            f"| {fmt(s.drain, 2)} | {'yes' if s.follow else 'NO'} |"
        )
    for r in rounds:
        print(
            f"- round {r['round']}: "
            + "; ".join(
                f"{key} p50 {fmt(percentile(r[key]['stream'].dom, 0.5))} / p99 "
                f"{fmt(percentile(r[key]['stream'].dom, 0.99))} ms"
                for key in ("L100", "L10k", "R200k")
            )
            + f"; clock skew page - host {fmt(r['L100']['skew'], 2)} ms"
        )

    windows = [
        (
            "idle, empty page",
            [r["L100"]["idle"] for r in rounds] + [r["L10k"]["idle"] for r in rounds],
        ),
        (f"ingesting {args.slow_rate:,} lines/s", [r["L100"]["ingest"] for r in rounds]),
        (f"ingesting {args.fast_rate:,} lines/s", [r["L10k"]["ingest"] for r in rounds]),
        (
            f"ingesting {args.bulk_rate:,} lines/s up to {args.retain:,}",
            [r["R200k"]["ingest"] for r in rounds],
        ),
        (f"idle, {args.retain:,} lines held", [r["R200k"]["idle"] for r in rounds]),
        (
            f"scrolling {args.scroll_step:,} px/frame, {args.retain:,} held",
            [r["R200k"]["scroll"] for r in rounds],
        ),
    ]
    pooled = [pooled_window(ws, name) for name, ws in windows]
    print("\nFrames (requestAnimationFrame deltas, ms), long tasks (> 50 ms) and CPU:\n")
    print(
        "| page state | s | frames | p50 | p99 | max | late (> 20 ms) | long tasks "
        "| longest ms | max elements | main thread ms/s: all / script / layout / style "
        "| cores: renderer / rest of browser / stack / others |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in pooled:
        m = w.summary()
        print(
            f"| {w.name} | {w.seconds:.1f} | {m['frames']} | {fmt(m['frame_p50'])} "
            f"| {fmt(m['frame_p99'])} | {fmt(m['frame_max'])} "
            f"| {m['late']} ({100 * m['late'] / max(m['frames'], 1):.1f} %) "
            f"| {m['longtasks']} | {fmt(m['longtask_max'])} | {m['max_elements']:,} "
            f"| {main_thread(w)} | {cores(w)} |"
        )
    for w in pooled:
        if w.profile:
            merged: Dict[str, float] = {}
            for where, ms in w.profile:
                merged[where] = merged.get(where, 0.0) + ms
            hot = sorted(merged.items(), key=lambda item: -item[1])[:8]
            print(f"\nHot functions (self ms, summed over rounds), {w.name}:")
            for where, ms in hot:
                print(f"  {ms:8.1f}  {where}")

    print(f"\nWith {args.retain:,} lines retained (JS heap after a forced GC):\n")
    print(
        "| round | lines held | JS heap MB: empty / full / after scrolling | heap per line "
        "| DOM elements: empty / full / after scrolling | scrolled (px) |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in rounds:
        e, f, a = r["R200k"]["empty"], r["R200k"]["full"], r["R200k"]["after_scroll"]
        per_line = (f["heap_mb"] - e["heap_mb"]) * 1e6 / max(f["held"], 1)
        info = r["R200k"]["scroll_info"]
        print(
            f"| {r['round']} | {f['held']:,} | {e['heap_mb']:.1f} / {f['heap_mb']:.1f} "
            f"/ {a['heap_mb']:.1f} | {per_line:.0f} B | {e['elements']:,} / {f['elements']:,} "
            f"/ {a['elements']:,} | {info['from']:,.0f} -> {info['to']:,.0f}"
            f"{'' if not info['follow'] else ' (still following!)'} |"
        )

    print("\nComparisons (one value per round):")

    def per_round(label: str, value: Any) -> None:
        print(f"- {label}: " + " / ".join(value(r) for r in rounds))

    def frame(r: Dict[str, Any], key: str, part: str, p: float) -> float:
        return percentile(r[key][part].frames, p)

    per_round(
        f"latency p50, {args.fast_rate:,} / {args.slow_rate:,} lines/s",
        lambda r: ratio(
            percentile(r["L10k"]["stream"].dom, 0.5), percentile(r["L100"]["stream"].dom, 0.5)
        ),
    )
    per_round(
        f"latency p99, {args.fast_rate:,} / {args.slow_rate:,} lines/s",
        lambda r: ratio(
            percentile(r["L10k"]["stream"].dom, 0.99), percentile(r["L100"]["stream"].dom, 0.99)
        ),
    )
    per_round(
        f"frame p99, ingesting {args.fast_rate:,}/s / idle",
        lambda r: ratio(frame(r, "L10k", "ingest", 0.99), frame(r, "L10k", "idle", 0.99)),
    )

    def late(r: Dict[str, Any], key: str, part: str) -> str:
        frames = r[key][part].frames
        return f"{100 * sum(1 for f in frames if f > 20) / max(len(frames), 1):.1f} %"

    per_round(
        f"late frames: idle / ingesting {args.slow_rate:,} / {args.fast_rate:,} "
        f"/ {args.bulk_rate:,} lines/s / scrolling",
        lambda r: (
            "("
            + ", ".join(
                late(r, k, part)
                for k, part in (
                    ("L10k", "idle"),
                    ("L100", "ingest"),
                    ("L10k", "ingest"),
                    ("R200k", "ingest"),
                    ("R200k", "scroll"),
                )
            )
            + ")"
        ),
    )
    per_round(
        f"renderer cores, ingesting {args.fast_rate:,} / {args.slow_rate:,} lines/s",
        lambda r: ratio(
            r["L10k"]["ingest"].cpu.get("renderer", float("nan")),
            r["L100"]["ingest"].cpu.get("renderer", float("nan")),
        ),
    )
    per_round(
        f"frame p99, idle with {args.retain:,} held / idle empty",
        lambda r: ratio(frame(r, "R200k", "idle", 0.99), frame(r, "L10k", "idle", 0.99)),
    )
    per_round(
        f"frame p99, scrolling with {args.retain:,} held / idle empty",
        lambda r: ratio(frame(r, "R200k", "scroll", 0.99), frame(r, "L10k", "idle", 0.99)),
    )

    l100_p50, l100_p99 = percentile(slow.dom, 0.5), percentile(slow.dom, 0.99)
    longest = max(pooled[2].longtasks, default=0.0)
    print("\nTargets:")
    print(
        f"- {args.slow_rate:,} lines/s, p50 <= 50 ms and p99 <= 150 ms: "
        f"{'met' if l100_p50 <= 50 and l100_p99 <= 150 else 'NOT met'} "
        f"(p50 {fmt(l100_p50)}, p99 {fmt(l100_p99)} ms)"
    )
    print(
        f"- {args.fast_rate:,} lines/s, no long task over 100 ms: "
        f"{'met' if longest <= 100 else 'NOT met'} "
        f"({len(pooled[2].longtasks)} long tasks, longest {fmt(longest)} ms)"
    )
    return {
        "streams": [s.summary() for s in (slow, fast, bulk)],
        "windows": [w.summary() for w in pooled],
        "rounds": [
            {
                "round": r["round"],
                "skew_ms": r["L100"]["skew"],
                "streams": [r[k]["stream"].summary() for k in ("L100", "L10k", "R200k")],
                "windows": [
                    r[k][part].summary()
                    for k, part in (
                        ("L100", "idle"),
                        ("L100", "ingest"),
                        ("L10k", "idle"),
                        ("L10k", "ingest"),
                        ("R200k", "ingest"),
                        ("R200k", "idle"),
                        ("R200k", "scroll"),
                    )
                ],
                "retained": {
                    k: r["R200k"][k] for k in ("empty", "full", "after_scroll", "scroll_info")
                },
            }
            for r in rounds
        ],
    }


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, launched as tests/test_browser.py launches it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    stack = Stack(programs(args), args.keep)
    rounds: List[Dict[str, Any]] = []
    errors: List[str] = []
    probe = 0.0
    try:
        stack.start()
        with chromium() as browser:
            bench = Bench(args, stack, browser)
            probe = bench.probe()
            print(f"long task probe: a 120 ms busy loop was reported as {probe:.0f} ms", flush=True)
            retries = args.retries
            used = {"slow": 0, "fast": 0, "bulk": 0}
            for r in range(1, args.rounds + 1):
                result: Dict[str, Any] = {"round": r}
                for key, kind in (("L100", "slow"), ("L10k", "fast"), ("R200k", "bulk")):
                    while True:
                        used[kind] += 1
                        name = f"{kind}{used[kind]}"
                        if kind == "slow":
                            count = int(args.slow_rate * args.seconds)
                            result[key] = bench.latency_run(name, args.slow_rate, count)
                        elif kind == "fast":
                            count = int(args.fast_rate * args.seconds)
                            result[key] = bench.latency_run(name, args.fast_rate, count)
                        else:
                            result[key] = bench.retained_run(name)
                        show(r, key, result[key])
                        other = disturbance(result[key])
                        if other <= args.quiet_load or retries <= 0:
                            break
                        retries -= 1
                        print(f"  {key}: other processes used {other:.2f} cores: again", flush=True)
                rounds.append(result)
            errors = bench.errors
    except BaseException:
        print(stack.errors(), file=sys.stderr)
        raise
    finally:
        stack.stop()
        stack.cleanup()
    summary = report(rounds, args)
    summary["longtask_probe_ms"] = probe
    if errors:
        print("\nPage errors (console/pageerror):")
        for error in errors[:20]:
            print(f"- {error}")
    python = sys.version.split()[0]
    print(f"\n({time.monotonic() - began:.0f} s, {os.cpu_count()} CPUs, Python {python})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        summary["args"] = vars(args)
        summary["page_errors"] = errors
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=1)
    return 0


def others(cpu: Dict[str, float]) -> float:
    """Cores used by processes that are not this run's (machine minus ours)."""
    if "machine" not in cpu:
        return float("nan")
    return cpu["machine"] - cpu["renderer"] - cpu["browser"] - cpu["stack"]


def disturbance(result: Dict[str, Any]) -> float:
    """The most cores other processes used during any window of a measurement."""
    values = [others(w.cpu) for w in result.values() if isinstance(w, Window)]
    return max((v for v in values if v == v), default=0.0)


def show(r: int, key: str, result: Dict[str, Any]) -> None:
    s: Stream = result["stream"]
    w: Window = result["ingest"]
    print(
        f"round {r} {key:5} {s.rate:>6,}/s: held {s.held:,}/{s.written:,}, on screen "
        f"{s.seen:,}, p50 {fmt(percentile(s.dom, 0.5))} p99 {fmt(percentile(s.dom, 0.99))} "
        f"max {fmt(max(s.dom, default=float('nan')))} ms; frames p50/p99 "
        f"{ms_pair(w.frames)} ms, long tasks {len(w.longtasks)} "
        f"(max {fmt(max(w.longtasks, default=0.0))} ms), cores {cores(w)}",
        flush=True,
    )


# ---------------------------------------------------------------- time to first line

# A log with history (3 000 lines, so the first page is full), then a line every 50 ms.
FIRST_LINE_CHILD = """import sys, time
for n in range(3000):
    sys.stdout.write(f"history {n:06d} {'x' * 80}\\n")
sys.stdout.flush()
n = 0
while True:
    n += 1
    print(f"live {n:06d}", flush=True)
    time.sleep(0.05)
"""
# Installed before the page's scripts: when the first log row with text is in
# the DOM (ms since navigation start), and how many there were at the load event.
FIRST_LINE_PROBE = """
(() => {
  const probe = { first: null, atLoad: null };
  window.__firstLine = probe;
  const rows = () => document.querySelectorAll('#log .row .text').length;
  new MutationObserver((_, observer) => {
    if (probe.first !== null || rows() === 0) return;
    probe.first = performance.now();
    observer.disconnect();
  }).observe(document, { childList: true, subtree: true });
  addEventListener('load', () => { probe.atLoad = rows(); });
})();
"""


def live_lines(url: str) -> bool:
    """Whether the newest page of a log has the child's live lines (its history is written)."""
    return b"live 0" in http_get(url)[1]


def first_line(args: argparse.Namespace) -> int:
    """Time from navigation start to the first log line drawn, ``--first-line`` loads
    of ``/?process=app`` each, for this checkout and (``--before``) another one:
    two stacks side by side, loads alternated so both see the same machine."""
    trees: List[Tuple[str, Path]] = [("this tree", ROOT)]
    if args.before:
        trees.insert(0, ("before", Path(args.before).resolve()))
    programs = {
        "app": {
            "command": f"{sys.executable} {{dir}}/first_line_child.py",
            "autostart": "true",
            "autorestart": "false",
        }
    }
    stacks = [Stack(programs, args.keep, root) for _, root in trees]
    times: Dict[str, List[float]] = {label: [] for label, _ in trees}
    at_load: Dict[str, int] = {label: 0 for label, _ in trees}
    after_goto: Dict[str, int] = {label: 0 for label, _ in trees}
    try:
        for stack in stacks:
            (stack.dir / "first_line_child.py").write_text(FIRST_LINE_CHILD)
            stack.start()
            url = f"{stack.url}/api/log/app?limit=5"
            wait_for(functools.partial(live_lines, url), 30, "app's history")
        with chromium() as browser:
            for _ in range(args.first_line):
                for (label, _root), stack in zip(trees, stacks):
                    context = browser.new_context(viewport=VIEWPORT)
                    context.add_init_script(FIRST_LINE_PROBE)
                    page = context.new_page()
                    page.goto(f"{stack.url}/?process=app", wait_until="load")
                    # What a screenshot taken as soon as goto() returns would show.
                    if page.evaluate("() => window.__firstLine.first !== null"):
                        after_goto[label] += 1
                    page.wait_for_function("() => window.__firstLine.first !== null")
                    probe = page.evaluate("() => window.__firstLine")
                    times[label].append(float(probe["first"]))
                    at_load[label] += 1 if probe["atLoad"] else 0
                    context.close()
    finally:
        for stack in stacks:
            stack.stop()
            stack.cleanup()
    print(f"time to first line, navigation start -> first row drawn, {args.first_line} loads each:")
    for label, root in trees:
        got = times[label]
        print(
            f"  {label:9} median {statistics.median(got):6.1f} ms, min {min(got):6.1f}, "
            f"max {max(got):6.1f}; lines drawn at the load event in {at_load[label]}/{len(got)}, "
            f"when goto() returned in {after_goto[label]}/{len(got)}  ({root})"
        )
    return 0


# ---------------------------------------------------------------- the README's picture


def screenshot(args: argparse.Namespace) -> int:
    """The demo's chatty programs (conf/demo/chatty.py), web and flaky merged, at 1280x800."""
    python = f"{sys.executable} -u {CHATTY}"
    stack = Stack(
        {
            "web": {"command": f"{python} web", "autostart": "true"},
            "worker": {"command": f"{python} worker", "autostart": "true"},
            "flaky": {
                "command": f"{python} flaky",
                "autostart": "true",
                "autorestart": "true",
                "startsecs": "1",
            },
        },
        args.keep,
    )
    try:
        stack.start()
        with chromium() as browser:
            context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
            page = context.new_page()
            page.goto(f"{stack.url}/?process=web&process=flaky")
            # flaky exits with code 3 after ~5 s and is restarted: lifecycle markers.
            page.wait_for_selector("#log .row.marker >> text=exited", timeout=30_000)
            time.sleep(args.screenshot_wait)
            page.screenshot(path=args.screenshot, type="png")
            context.close()
    finally:
        stack.stop()
        stack.cleanup()
    size = Path(args.screenshot).stat().st_size
    print(f"wrote {args.screenshot} ({size / 1000:.0f} KB)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="L100 and L10k streams (s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (fresh children each)")
    parser.add_argument("--quick", action="store_true", help="1 round, 4 s streams")
    parser.add_argument("--slow-rate", type=int, default=100, help="L100's lines/s")
    parser.add_argument("--fast-rate", type=int, default=10_000, help="L10k's lines/s")
    parser.add_argument("--bulk-rate", type=int, default=20_000, help="R200k's lines/s")
    parser.add_argument("--retain", type=int, default=200_000, help="R200k's lines")
    parser.add_argument("--idle", type=float, default=2.0, help="idle frames measured (s)")
    parser.add_argument("--scroll-seconds", type=float, default=2.0, help="scrolling (s)")
    parser.add_argument("--scroll-step", type=int, default=4000, help="px scrolled per frame")
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="wait for the last line (s)"
    )
    parser.add_argument(
        "--quiet-load", type=float, default=0.3, help="cores other processes may use"
    )
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="wait for quiet (s)")
    parser.add_argument(
        "--retries", type=int, default=4, help="disturbed measurements repeated (in all)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="CPU-profile the page's JS (hot functions)"
    )
    parser.add_argument("--json", default="", help="write the summary here (bench/results/...)")
    parser.add_argument(
        "--json-lines", action="store_true", help="children write JSON lines (levels, chips)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--screenshot", default="", help="only take the README's screenshot")
    parser.add_argument(
        "--first-line", type=int, default=0, help="only time N loads to the first line"
    )
    parser.add_argument("--before", default="", help="--first-line: also this checkout")
    parser.add_argument(
        "--screenshot-wait", type=float, default=1.5, help="after the first exit (s)"
    )
    args = parser.parse_args(argv)
    if args.screenshot:
        return screenshot(args)
    if args.first_line:
        if args.before and not (Path(args.before) / "supervisor_streamlog").is_dir():
            parser.error(f"--before {args.before}: not a checkout of supervisor-streamlog")
        return first_line(args)
    if args.quick:
        args.rounds, args.seconds, args.idle, args.quiet_wait, args.retries = 1, 4.0, 1.0, 2.0, 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
