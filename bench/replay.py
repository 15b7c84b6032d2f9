"""Replay a stream of supervisord events into our listener and the null one, in-process.

    python -m bench.replay [--lines N] [--chunk BYTES] [--profile]

No supervisord, no pipes: the bytes supervisord would send (PROCESS_LOG
events cutting ``emit.py``-style lines into chunks of ``--chunk`` bytes, as
its reads do) are built in memory and fed through a ``TextIOWrapper`` opened
like the real listener's stdin.  It reports the CPU time per event of
:class:`supervisor_streamlog.capture.listener.Listener` (writing real files in a
temporary directory) and of ``bench/null_listener.py``'s loop, and with
``--profile`` the cProfile of ours.  A deterministic way to see where the
listener's time goes; ``bench/capture.py`` measures the real thing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from typing import List, Optional, Sequence

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.capture.listener import Listener
from supervisor_streamlog.config import Config

from .null_listener import serve


def line(n: int, size: int) -> bytes:
    head = b"line %09d " % n
    return head + b"x" * (size - len(head) - 1) + b"\n"


def event_stream(lines: int, size: int, chunk: int) -> bytes:
    """The bytes supervisord writes to a listener for this burst (one event at a time)."""
    data = b"".join(line(n, size) for n in range(lines))
    out: List[bytes] = []
    serial = 0

    def envelope(name: str, payload: str) -> None:
        nonlocal serial
        serial += 1
        out.append(
            (
                f"ver:3.0 server:supervisor serial:{serial} pool:listener poolserial:{serial} "
                f"eventname:{name} len:{len(payload)}\n{payload}"
            ).encode()
        )

    state = "processname:producer groupname:producer from_state:{} pid:4242"
    envelope("PROCESS_STATE_STARTING", state.format("STOPPED").replace(" pid:4242", " tries:0"))
    envelope("PROCESS_STATE_RUNNING", state.format("STARTING"))
    head = "processname:producer groupname:producer pid:4242 channel:stdout\n"
    for start in range(0, len(data), chunk):
        envelope("PROCESS_LOG_STDOUT", head + data[start : start + chunk].decode("ascii"))
    envelope("PROCESS_STATE_EXITED", state.format("RUNNING") + " expected:1")
    return b"".join(out)


def stdin_for(stream: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.BytesIO(stream), encoding="utf-8", errors="surrogateescape", newline="\n"
    )


def run_ours(stream: bytes, logdir: str) -> float:
    capture = Capture(Config(logdir=logdir), report=lambda message: None)
    listener = Listener(capture, stdin_for(stream), io.StringIO())
    began = time.process_time()
    listener.run()
    return time.process_time() - began


def run_null(stream: bytes, side: str) -> float:
    began = time.process_time()
    serve(stdin_for(stream), io.BytesIO(), side)  # type: ignore[arg-type]
    return time.process_time() - began


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument(
        "--chunk",
        type=int,
        action="append",
        help="bytes per event (repeatable; default 65536 and 3000, "
        "as seen for block and line producers)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one run of ours")
    args = parser.parse_args(argv)
    for chunk in args.chunk or [65536, 3000]:
        stream = event_stream(args.lines, args.size, chunk)
        events = stream.count(b"ver:3.0 ")
        ours: List[float] = []
        null: List[float] = []
        for _ in range(args.repeat):
            work = tempfile.mkdtemp(prefix="streamlog-replay-")
            try:
                null.append(run_null(stream, f"{work}/null.json"))
                ours.append(run_ours(stream, f"{work}/logs"))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        best_ours, best_null = min(ours), min(null)
        print(
            f"chunk {chunk:6d} B, {events} events: ours {best_ours:.3f} s "
            f"({1e6 * best_ours / events:.1f} µs/event), null {best_null:.3f} s "
            f"({1e6 * best_null / events:.1f} µs/event), ours/null {best_ours / best_null:.2f}"
        )
        if args.profile:
            work = tempfile.mkdtemp(prefix="streamlog-replay-")
            try:
                profile = cProfile.Profile()
                profile.enable()
                run_ours(stream, f"{work}/logs")
                profile.disable()
            finally:
                shutil.rmtree(work, ignore_errors=True)
            pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
