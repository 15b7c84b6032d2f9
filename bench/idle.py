"""What an idle forwarder costs on a host with many programs.

    python -m bench.idle                          # 50 logs, this checkout
    python -m bench.idle --logs 50 --baseline DIR # and another checkout, alternating

Writes ``--logs`` small process logs with the real writer (one record each),
starts ``supervisor-streamlog forward`` over them to a TCP sink on 127.0.0.1
that reads and discards, waits until it has sent everything (``--settle``
seconds), then reports its CPU over ``--seconds`` of nothing being written:
cores, from ``/proc/PID/stat``.  Rounds alternate between the checkouts.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.common import ROOT, proc_times, stop_process


def write_logs(logdir: Path, count: int) -> None:
    from supervisor_streamlog.capture.writer import RotatingWriter
    from supervisor_streamlog.ondisk.formats import make_format

    form = make_format("text", utc=True)
    for number in range(count):
        writer = RotatingWriter(str(logdir / f"p{number:03d}.log"), 1 << 20, header=True)
        writer.write(form.records(form.stamp(time.time()), "stdout", 1, [(b"hello\n", False)]))
        writer.close()


def discard(server: socket.socket) -> None:
    """Accept connections and read them to their end (a TCP sink)."""
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return

        def drain(conn: socket.socket = conn) -> None:
            with conn:
                while conn.recv(65536):
                    pass

        threading.Thread(target=drain, daemon=True).start()


def idle_cores(tree: Path, conf: Path, settle: float, seconds: float) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-m", "supervisor_streamlog", "forward", "-c", str(conf)]
    # cwd: "python -m" puts it first on sys.path, before PYTHONPATH
    proc = subprocess.Popen(command, cwd=tree, env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        before = proc_times(proc.pid)[0]
        time.sleep(seconds)
        return (proc_times(proc.pid)[0] - before) / seconds
    finally:
        stop_process(proc)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--logs", type=int, default=50, help="process logs")
    parser.add_argument("--seconds", type=float, default=10, help="idle time measured")
    parser.add_argument("--settle", type=float, default=5, help="time to send the records first")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--baseline", metavar="DIR", help="another checkout, alternating")
    args = parser.parse_args(argv)
    trees = {"new": ROOT}
    if args.baseline:
        trees = {"old": Path(args.baseline), **trees}
    results: Dict[str, List[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="streamlog-idle-") as work:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        threading.Thread(target=discard, args=(server,), daemon=True).start()
        for name in trees:
            logdir = Path(work) / name / "logs"
            logdir.mkdir(parents=True)
            write_logs(logdir, args.logs)
            (Path(work) / name / "forward.conf").write_text(
                f"[streamlog]\nlogdir = {logdir}\n"
                f"forward = tcp://127.0.0.1:{server.getsockname()[1]}\n"
            )
        for _ in range(args.rounds):
            for name, tree in trees.items():
                conf = Path(work) / name / "forward.conf"
                results[name].append(idle_cores(tree, conf, args.settle, args.seconds))
                print(f"  {name}: {results[name][-1]:.4f} cores", flush=True)
        server.close()
    for name, values in results.items():
        print(
            f"{name} ({trees[name]}): {args.logs} idle logs, forwarder "
            f"{statistics.median(values):.4f} cores (median of {len(values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
