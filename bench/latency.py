"""Latency behind a flood: how late does a quiet program's line reach its file?

    python -m bench.latency                 # plugin vs listener, 10 s each, 2 rounds
    python -m bench.latency --seconds 5 --rounds 1 --modes plugin

A ``flood`` program writes 100-byte lines in 64 KiB blocks as fast as it can;
a ``quiet`` program writes one line every 10 ms carrying ``time.time()`` of the
write.  Each mode gets its own supervisord (nodaemon, unix socket, temporary
directory).  The latency of a quiet line is the record's timestamp (taken by
the capture when it received the chunk, just before writing it to the file)
minus the time in the line.  Modes run interleaved, round after round, in one
run; the report gives p50/p99/max per mode and the ratio of the p99s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
EMIT = ROOT / "tests" / "children" / "emit.py"

QUIET = (
    "import os, time\n"
    "while True:\n"
    "    os.write(1, ('quiet %.6f\\n' % time.time()).encode())\n"
    "    time.sleep(0.01)\n"
)

BASE = """
[supervisord]
nodaemon = true
logfile = {dir}/supervisord.log
pidfile = {dir}/supervisord.pid
childlogdir = {dir}

[unix_http_server]
file = {dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[streamlog]
logdir = {dir}/streamlog
timezone = utc
maxbytes = 50MB
backups = 100

[program:flood]
command = {python} {emit} burst 1000000000 100 block
autostart = false
stdout_logfile = NONE
stdout_events_enabled = true

[program:quiet]
command = {python} {dir}/quiet.py
autostart = false
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
buffer_size = 8192
stdout_logfile = NONE
stderr_logfile = {dir}/listener.err
"""


def rpc(directory: Path) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{directory}/supervisor.sock")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def wait_running(directory: Path, proc: subprocess.Popen, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("supervisord exited")
        try:
            server = rpc(directory)
            if server.supervisor.getState()["statename"] == "RUNNING":
                return server
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("supervisord did not start")


def measure(mode: str, seconds: float) -> List[float]:
    """Latencies (ms) of the quiet program's lines during a flood, in one mode."""
    with tempfile.TemporaryDirectory(prefix=f"streamlog-latency-{mode}-") as name:
        directory = Path(name)
        text = BASE + (PLUGIN if mode == "plugin" else LISTENER)
        conf = directory / "supervisord.conf"
        (directory / "quiet.py").write_text(QUIET)
        conf.write_text(text.format(dir=directory, python=sys.executable, emit=EMIT))
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            server = wait_running(directory, proc)
            if mode == "listener":
                deadline = time.monotonic() + 30
                while server.supervisor.getProcessInfo("streamlog")["statename"] != "RUNNING":
                    if time.monotonic() > deadline:
                        raise RuntimeError("listener did not start")
                    time.sleep(0.05)
            server.supervisor.startProcess("flood")
            time.sleep(0.5)  # let the flood reach full speed first
            server.supervisor.startProcess("quiet")
            time.sleep(seconds)
            server.supervisor.stopProcess("quiet")
            server.supervisor.stopProcess("flood")
        finally:
            proc.terminate()
            proc.wait(60)
        latencies = []
        for line in (directory / "streamlog" / "quiet.log").read_text().splitlines():
            stamp, stream, text = line.split(" ", 2)
            if stream == "stdout" and text.startswith("quiet "):
                received = datetime.fromisoformat(stamp).timestamp()
                latencies.append((received - float(text.split()[1])) * 1000)
        return latencies


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="quiet lines per run (s)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--modes", default="plugin,listener", help="comma-separated modes")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    results: Dict[str, List[float]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):
        for mode in modes:
            values = measure(mode, args.seconds)
            results[mode].extend(values)
            print(
                f"round {round_ + 1} {mode:8} {len(values)} lines, "
                f"p99 {percentile(values, 0.99):.1f} ms",
                flush=True,
            )
    print()
    print("| mode | quiet lines | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for mode, values in results.items():
        print(
            f"| {mode} | {len(values)} | {statistics.median(values):.2f} | "
            f"{percentile(values, 0.99):.2f} | {max(values):.2f} |"
        )
    if "plugin" in results and "listener" in results:
        ratio = percentile(results["listener"], 0.99) / percentile(results["plugin"], 0.99)
        print(f"\nlistener p99 / plugin p99 = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
