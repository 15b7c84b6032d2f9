"""A child for bench/sidecar.py: numbered 100-byte lines carrying the time of their write.

    stamped.py RATE COUNT READY_FILE [BATCH_ABOVE]

Writes COUNT lines at RATE lines per second to stdout with ``os.write``, each
``seq NNNNNNNNN t EPOCH.MICROS xxx...`` (100 bytes with its newline), where
EPOCH is ``time.time()`` taken just before the ``write(2)`` that carries the line.

* RATE <= BATCH_ABOVE (default 1000): one line per write, line ``n`` due at
  ``start + n / RATE`` (a late line is written at once, the schedule is not
  shifted);
* RATE > BATCH_ABOVE: one write per 1 ms tick holding every line due by then;
  the lines of one write share its time stamp.

It waits before writing its first line: it blocks SIGUSR1, creates READY_FILE
(so the benchmark knows the signal will not kill it), and starts the schedule
when SIGUSR1 arrives.  It exits once the last line is written.  A write that
blocks (a full pipe) counts in the latency: the stamp is taken before it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import List

SIZE = 100
TICK = 0.001


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def line(seq: int, stamp: float) -> bytes:
    head = b"seq %09d t %.6f " % (seq, stamp)
    return head + b"x" * (SIZE - 1 - len(head)) + b"\n"


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def one_per_write(rate: float, count: int) -> None:
    start = time.monotonic()
    for seq in range(count):
        sleep_until(start + seq / rate)
        write_all(1, line(seq, time.time()))


def batched(rate: float, count: int) -> None:
    start = time.monotonic()
    seq = 0
    tick = 0
    while seq < count:
        tick += 1
        sleep_until(start + tick * TICK)
        due = min(count, int((time.monotonic() - start) * rate))
        if due > seq:
            stamp = time.time()
            lines: List[bytes] = [line(n, stamp) for n in range(seq, due)]
            write_all(1, b"".join(lines))
            seq = due


def main(argv: List[str]) -> int:
    rate, count, ready = float(argv[1]), int(argv[2]), argv[3]
    batch_above = float(argv[4]) if len(argv) > 4 else 1000.0
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    with open(ready, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    signal.sigwait({signal.SIGUSR1})
    if rate <= batch_above:
        one_per_write(rate, count)
    else:
        batched(rate, count)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
