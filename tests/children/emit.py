"""A child program for the integration tests: writes exactly what it is told.

    emit.py script FILE      -- run a JSON script: [["out"|"err", hex], ["sleep", s], ["exit", n]]
    emit.py tick INTERVAL       -- numbered lines forever, one every INTERVAL seconds
    emit.py rate N PER_SECOND   -- N numbered 100-byte lines at a steady rate (10 ms blocks)
    emit.py burst N SIZE MODE [STREAM]  -- N numbered lines of SIZE bytes;
                                MODE block (64 KiB writes) or line (one write each)
Output goes straight to the file descriptors (no Python buffering), so each
step is one write(2) and sleeps make supervisord read separate chunks.
"""

import json
import os
import signal
import sys
import time


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def script(path: str) -> None:
    with open(path) as handle:
        steps = json.load(handle)
    for step in steps:
        if step[0] == "out":
            write_all(1, bytes.fromhex(step[1]))
        elif step[0] == "err":
            write_all(2, bytes.fromhex(step[1]))
        elif step[0] == "sleep":
            time.sleep(step[1])
        elif step[0] == "exit":
            sys.exit(step[1])


def line(n: int, size: int) -> bytes:
    head = b"line %09d " % n
    return head + b"x" * (size - len(head) - 1) + b"\n"


def burst(count: int, size: int, mode: str, fd: int) -> None:
    if mode == "line":
        for n in range(count):
            write_all(fd, line(n, size))
    else:
        batch = []
        total = 0
        for n in range(count):
            batch.append(line(n, size))
            total += size
            if total >= 65536:
                write_all(fd, b"".join(batch))
                batch, total = [], 0
        write_all(fd, b"".join(batch))


if __name__ == "__main__":
    if sys.argv[1] == "script":
        script(sys.argv[2])
    elif sys.argv[1] == "tick":
        # Numbered lines until SIGTERM; then say how many were written, so a
        # test can check that every one of them arrived.
        stopping: list = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
        n = 0
        while not stopping:
            write_all(1, line(n, 60))
            n += 1
            time.sleep(float(sys.argv[2]))
        counts = os.environ.get("EMIT_COUNT_FILE")
        if counts:
            with open(counts, "a") as handle:
                handle.write(f"{n}\n")
        sys.exit(0)
    elif sys.argv[1] == "rate":
        total, per_second = int(sys.argv[2]), int(sys.argv[3])
        per_tick = max(1, per_second // 100)
        began = time.monotonic()
        for first in range(0, total, per_tick):
            write_all(1, b"".join(line(n, 100) for n in range(first, min(total, first + per_tick))))
            delay = began + (first + per_tick) / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    else:
        fd = 2 if len(sys.argv) > 5 and sys.argv[5] == "stderr" else 1
        burst(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], fd)
    # Stay up (like a service) until supervisord stops us, unless told to exit.
    if os.environ.get("EMIT_LINGER"):
        time.sleep(3600)
