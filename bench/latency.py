"""Latency behind a flood: how late does a quiet program's line reach its file?

    python -m bench.latency                 # plugin vs listener, 10 s each, 2 rounds
    python -m bench.latency --seconds 5 --rounds 1 --modes plugin
    python -m bench.latency --exit 30       # a dying program's last line and exit

``--exit N`` measures something else: a program prints one line (carrying
``time.time()`` of its write) and exits at once, N times, with nothing else
running.  For each run it reports how late, after the write, the line and the
exit appear -- in plugin mode (the line's record and the EXITED record in our
file) and, side by side from the same supervisord, natively (the line in
supervisord's own child log, and its ``exited:`` line in supervisord.log).
The harness watches the files (1 ms polls) without touching supervisord's
socket, which would wake its main loop.

A ``flood`` program writes 100-byte lines in 64 KiB blocks as fast as it can;
a ``quiet`` program writes one numbered line every 10 ms carrying
``time.time()`` of the write.  Each mode gets its own supervisord (nodaemon,
unix socket, temporary directory) with a ``[streamlog]`` section; the
listener runs with ``buffer_size = --buffer-size`` (65536, the recommended
value).  The latency of a quiet line is the record's timestamp (taken by the
capture when it received the chunk, just before writing it to the file) minus
the time in the line.

The quiet program is stopped while the flood still runs; the flood is stopped
only once the quiet program's STOPPED record is in its file, so the lines
still queued in supervisord (listener mode) are counted too.  The quiet
program tells how many lines it wrote: lines missing from the file are
reported as lost (latency is infinite for those), and so are the events
supervisord dropped ("event buffer overflowed").

Modes run interleaved, round after round, in one run.  Before each measurement
the harness waits (up to ``--quiet-wait`` s) until other processes use less
than ``--quiet-load`` cores, and repeats a measurement once if they used more
during it, keeping the quieter of the two.  The report gives p50/p90/p99/max
per mode (all rounds pooled) and the ratio of the p99s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bench.common import (
    EMIT,
    Supervisord,
    add_quiet_options,
    machine_busy,
    proc_times,
    tail,
    wait_for,
    wait_quiet,
)

MODES = ("plugin", "listener")
TARGET_P99_MS = 20.0  # the target for plugin mode

# Numbered lines, each with the time of its write; on SIGTERM, how many were written.
QUIET = (
    "import os, signal, sys, time\n"
    "stopping = []\n"
    "signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))\n"
    "n = 0\n"
    "while not stopping:\n"
    "    os.write(1, ('quiet %d %.6f\\n' % (n, time.time())).encode())\n"
    "    n += 1\n"
    "    time.sleep(0.01)\n"
    "with open(sys.argv[1], 'w') as handle:\n"
    "    handle.write('%d\\n' % n)\n"
)

SECTIONS = """
[streamlog]
logdir = {dir}/streamlog
timezone = utc
maxbytes = 50MB
backups = 3

[program:flood]
command = {python} {emit} burst 1000000000 100 block
autostart = false
autorestart = false
stdout_logfile = NONE
stdout_events_enabled = true

[program:quiet]
command = {python} {dir}/quiet.py {dir}/quiet.count
autostart = false
autorestart = false
stdout_logfile = NONE
stdout_events_enabled = true
"""

PLUGIN = """
[rpcinterface:streamlog]
supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface
"""

LISTENER = """
[eventlistener:streamlog]
command = {python} -m supervisor_streamlog listen -c {dir}/supervisord.conf
events = PROCESS_LOG,PROCESS_STATE
buffer_size = {buffer_size}
stdout_logfile = NONE
stderr_logfile = {dir}/listener.err
"""


@dataclasses.dataclass
class Run:
    """One measurement of one mode."""

    mode: str
    latencies: List[float]  # ms, one per quiet line found
    written: int  # quiet lines the program wrote
    dropped: int  # events supervisord dropped ("event buffer overflowed")
    background: float  # cores other processes used during the measurement

    @property
    def lost(self) -> int:
        return self.written - len(self.latencies)


def cpu_of(pids: List[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += proc_times(pid)[0]
        except OSError:
            pass
    return total


def measure(mode: str, seconds: float, buffer_size: int) -> Run:
    """The quiet program's lines during a flood, in one mode."""
    awaited = ["streamlog"] if mode == "listener" else []
    with Supervisord(f"streamlog-latency-{mode}-", awaited=awaited) as stack:
        directory = stack.dir
        text = SECTIONS + (PLUGIN if mode == "plugin" else LISTENER)
        (directory / "quiet.py").write_text(QUIET)
        stack.configure(
            text.format(dir=directory, python=sys.executable, emit=EMIT, buffer_size=buffer_size)
        )
        quiet_log = directory / "streamlog" / "quiet.log"
        try:
            stack.start()
            server = stack.rpc
            server.supervisor.startProcess("flood")
            time.sleep(0.5)  # let the flood reach full speed first
            server.supervisor.startProcess("quiet")
            pids = [stack.pid] + [
                int(info["pid"]) for info in server.supervisor.getAllProcessInfo() if info["pid"]
            ]
            ours, busy, began = cpu_of(pids), machine_busy(), time.monotonic()
            time.sleep(seconds)
            ours = cpu_of(pids) - ours
            background = max(0.0, machine_busy() - busy - ours) / (time.monotonic() - began)
            server.supervisor.stopProcess("quiet")
            # Events are handled in order: once the STOPPED record is written,
            # every quiet line supervisord still had queued is in the file.
            wait_for(
                lambda: b" status STOPPED " in tail(quiet_log, 4096),
                120,
                "the STOPPED record of quiet",
                0.05,
            )
            server.supervisor.stopProcess("flood")
        except BaseException:
            print(stack.errors(), file=sys.stderr)
            raise
        finally:
            stack.stop()
        latencies = []
        for line in quiet_log.read_text().splitlines():
            stamp, stream, rest = line.split(" ", 2)
            if stream == "stdout" and rest.startswith("quiet "):
                received = datetime.fromisoformat(stamp).timestamp()
                latencies.append((received - float(rest.split()[2])) * 1000)
        written = int((directory / "quiet.count").read_text())
        log = (directory / "supervisord.log").read_text(errors="replace")
        return Run(mode, latencies, written, log.count("event buffer overflowed"), background)


def measure_quietly(mode: str, args: argparse.Namespace) -> Tuple[Run, Optional[Run]]:
    """One measurement, once more if other processes disturbed it (the quieter counts)."""
    wait_quiet(args.quiet_load, args.quiet_wait)
    first = measure(mode, args.seconds, args.buffer_size)
    if first.background <= args.quiet_load:
        return first, None
    wait_quiet(args.quiet_load, args.quiet_wait)
    second = measure(mode, args.seconds, args.buffer_size)
    return (second, first) if second.background < first.background else (first, second)


def percentile(values: List[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(run: Run) -> str:
    return (
        f"{len(run.latencies)} lines, lost {run.lost}, dropped {run.dropped}, "
        f"p50 {percentile(run.latencies, 0.5):.1f} ms, p99 {percentile(run.latencies, 0.99):.1f} ms"
        f", max {max(run.latencies, default=float('nan')):.1f} ms"
        f", other {run.background:.2f} cores"
    )


DYING = "import os, time\nos.write(1, ('last %.6f\\n' % time.time()).encode())\nos._exit(0)\n"

EXIT_SECTIONS = """
[rpcinterface:streamlog]
supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface

[streamlog]
logdir = {dir}/streamlog
timezone = utc

[program:dying]
command = {python} {dir}/dying.py
autostart = false
autorestart = false
startsecs = 0
stdout_logfile = {dir}/dying.native.log
"""


def _count(path: Path, needle: bytes) -> int:
    try:
        return path.read_bytes().count(needle)
    except OSError:
        return 0


def measure_exit(runs: int) -> Dict[str, List[float]]:
    """Per run: ms from the last write to each of the four appearances."""
    found: Dict[str, List[float]] = {
        "plugin line": [],
        "plugin EXITED": [],
        "native line": [],
        "native exited": [],
    }
    with Supervisord("streamlog-exit-") as stack:
        directory = stack.dir
        (directory / "dying.py").write_text(DYING)
        stack.configure(EXIT_SECTIONS.format(dir=directory, python=sys.executable))
        ours = directory / "streamlog" / "dying.log"
        watched = {
            "plugin line": (ours, b" stdout last "),
            "plugin EXITED": (ours, b" status EXITED "),
            "native line": (directory / "dying.native.log", b"last "),
            "native exited": (directory / "supervisord.log", b"exited: dying"),
        }
        try:
            stack.start()
            for run in range(runs):
                seen: Dict[str, float] = {}
                stack.rpc.supervisor.startProcess("dying", False)
                deadline = time.monotonic() + 10
                while len(seen) < len(watched) and time.monotonic() < deadline:
                    now = time.time()
                    for what, (path, needle) in watched.items():
                        if what not in seen and _count(path, needle) > run:
                            seen[what] = now
                    time.sleep(0.001)
                native = (directory / "dying.native.log").read_text().split()
                written = float(native[2 * run + 1])
                for what in watched:
                    found[what].append((seen.get(what, float("inf")) - written) * 1000)
                # Not before the runs: the next start must not wake the loop early.
                wait_for(lambda: stack.state("dying") == "EXITED", 10, "dying to exit")
        except BaseException:
            print(stack.errors(), file=sys.stderr)
            raise
        finally:
            stack.stop()
            stack.cleanup()
    return found


def report_exit(runs: int) -> int:
    """Print the ``--exit`` figures: p50/p90/max per appearance."""
    found = measure_exit(runs)
    print("| appears in the file | runs | p50 ms | p90 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for what, values in found.items():
        print(
            f"| {what} | {len(values)} | {statistics.median(values):.1f} "
            f"| {percentile(values, 0.9):.1f} | {max(values):.1f} |"
        )
    return 0


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="quiet lines per run (s)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--modes", default="plugin,listener", help="comma-separated modes")
    parser.add_argument("--buffer-size", type=int, default=65536, help="the listener's buffer_size")
    parser.add_argument(
        "--exit", type=int, default=0, metavar="N", help="measure a dying program N times instead"
    )
    add_quiet_options(parser)
    args = parser.parse_args(argv)
    if args.exit:
        return report_exit(args.exit)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r} ({', '.join(MODES)})")
    runs: Dict[str, List[Run]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):
        for mode in modes:
            run, noisier = measure_quietly(mode, args)
            if noisier is not None:
                print(f"      (noisier, not counted: {describe(noisier)})", flush=True)
            runs[mode].append(run)
            print(f"round {round_ + 1} {mode:8} {describe(run)}", flush=True)
    print()
    print("| mode | quiet lines | lost | events dropped | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    pooled: Dict[str, List[float]] = {}
    for mode, mode_runs in runs.items():
        values = pooled[mode] = [v for run in mode_runs for v in run.latencies]
        print(
            f"| {mode} | {len(values)} | {sum(run.lost for run in mode_runs)} "
            f"| {sum(run.dropped for run in mode_runs)} "
            f"| {statistics.median(values) if values else float('nan'):.2f} "
            f"| {percentile(values, 0.9):.2f} | {percentile(values, 0.99):.2f} "
            f"| {max(values, default=float('nan')):.2f} |"
        )
    if "plugin" in pooled and "listener" in pooled:
        ratio = percentile(pooled["listener"], 0.99) / percentile(pooled["plugin"], 0.99)
        print(f"\nlistener p99 / plugin p99 = {ratio:.1f}x")
    if "plugin" in pooled:
        p99 = percentile(pooled["plugin"], 0.99)
        met = "met" if p99 <= TARGET_P99_MS else "NOT met"
        print(f"plugin p99 {p99:.2f} ms: target <= {TARGET_P99_MS:.0f} ms {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
