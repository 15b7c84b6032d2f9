"""The floor of a listener that writes files: the null listener plus one write per chunk.

    python -m bench.write_listener SIDEFILE

What any listener that writes timestamped lines must do, and nothing more:
wait for input with a timeout (``poll``, so it could run timers), read the
event as ``bench/null_listener.py`` does, and for a PROCESS_LOG event turn the
chunk's complete lines into ``TIMESTAMP stdout TEXT`` records with one
``bytes.replace`` and append them with one ``os.write`` to ``SIDEFILE.log``.
No line assembly across chunks (the unfinished tail of a chunk is dropped), no
stderr, no rotation, no error handling.  The counts go to SIDEFILE like the
null listener's, so ``bench.capture --kinds write`` measures it the same way.
"""

from __future__ import annotations

import io
import os
import select
import sys
import time
from typing import List, TextIO

from supervisor_streamlog.ondisk.formats import TextFormat

from . import null_listener
from .null_listener import ANSWER, Counts


def serve(stdin: TextIO, stdout: io.RawIOBase, side: str) -> Counts:
    counts = Counts()
    counts.save(side)
    stamp = TextFormat().stamp  # streamlog's own: formats the date once a second
    fd = os.open(side + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    poller = select.poll()
    poller.register(stdin.fileno(), select.POLLIN)
    stdout.write(b"READY\n")
    while True:
        if not poller.poll(100):
            continue
        line = stdin.readline()
        if not line:
            break
        headers = dict(token.split(":", 1) for token in line.split())
        payload = stdin.read(int(headers["len"]))
        counts.events += 1
        serial = int(headers["poolserial"])
        if counts.first_serial is None:
            counts.first_serial = serial
        counts.last_serial = serial
        name = headers["eventname"]
        if name.startswith("PROCESS_LOG"):
            now = time.time()
            data = payload[payload.index("\n") + 1 :].encode("utf-8", "surrogateescape")
            last = data.rfind(b"\n")
            if last >= 0:
                prefix = f"{stamp(now)} stdout ".encode("ascii")
                os.write(fd, b"".join((prefix, data[:last].replace(b"\n", b"\n" + prefix), b"\n")))
            counts.log_events += 1
            counts.lines += data.count(b"\n")
            counts.chars += len(data)
            counts.last_log_time = now
        elif name.startswith("PROCESS_STATE"):
            state = name[len("PROCESS_STATE_") :]
            counts.states[state] = counts.states.get(state, 0) + 1
            counts.save(side)
        stdout.write(ANSWER)
    counts.save(side, done=True)
    return counts


def main(argv: List[str]) -> int:
    return null_listener.main(argv, serve)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
