"""A do-nothing event listener: the floor of what listener mode costs.

    python bench/null_listener.py SIDEFILE

It speaks the protocol exactly as a careful listener must (header by
``readline``, then ``len`` *characters* of payload from a text stream opened
with ``newline="\\n"``), answers ``RESULT 2\\nOK`` + ``READY\\n`` and does
nothing else with the data -- except count it, so the benchmark can tell what
arrived: events, PROCESS_LOG payload characters and newlines, the pool serials
(a gap is an event supervisord dropped), and the time the last PROCESS_LOG
event was read.  The counts go to SIDEFILE (as JSON, replaced atomically) at
start, on every PROCESS_STATE event and at the end of input -- never per log
event, so the counting costs one ``str.count`` per event.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, TextIO

ANSWER = b"RESULT 2\nOKREADY\n"


class Counts:
    """What the listener received."""

    def __init__(self) -> None:
        self.events = 0
        self.log_events = 0
        self.chars = 0
        self.lines = 0
        self.first_serial: Optional[int] = None
        self.last_serial: Optional[int] = None
        self.last_log_time = 0.0
        self.states: Dict[str, int] = {}

    def save(self, path: str, done: bool = False) -> None:
        data = dict(vars(self), done=done)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)


def serve(stdin: TextIO, stdout: io.RawIOBase, side: str) -> Counts:
    counts = Counts()
    counts.save(side)
    stdout.write(b"READY\n")
    while True:
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
            counts.log_events += 1
            # The payload is a header line, then the chunk.
            counts.lines += payload.count("\n") - 1
            counts.chars += len(payload) - payload.index("\n") - 1
            counts.last_log_time = time.time()
        elif name.startswith("PROCESS_STATE"):
            state = name[len("PROCESS_STATE_") :]
            counts.states[state] = counts.states.get(state, 0) + 1
            counts.save(side)
        stdout.write(ANSWER)
    counts.save(side, done=True)
    return counts


def main(argv: List[str], serve: Callable[[TextIO, io.RawIOBase, str], Counts] = serve) -> int:
    """Run ``serve`` on stdin/stdout as supervisord connects them (also write_listener's)."""
    if len(argv) != 2:
        sys.stderr.write(f"usage: {os.path.basename(argv[0])} SIDEFILE\n")
        return 2
    stdin = io.TextIOWrapper(
        sys.stdin.buffer, encoding="utf-8", errors="surrogateescape", newline="\n"
    )
    stdout = io.FileIO(sys.stdout.fileno(), "wb", closefd=False)  # unbuffered
    serve(stdin, stdout, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
