"""How fast the central path writes: RELP -> a real rsyslogd -> omprog -> ``receive``.

    python3 -m bench.central                     # 100 000 records, 2 rounds
    python3 -m bench.central --records 200000 --rounds 3

Each round starts an rsyslogd on 127.0.0.1 with conf/central-rsyslog.conf (the
recipe of docs/shipping.md, placeholders replaced), sends N records of 100
bytes with the forwarder's own RELP client and encoder (window 1024), and
times from the first send (after one record that starts the sink) until the
last is acknowledged (the sink answers each one only once it is written, so
the last acknowledgement and the last record come together).  Reported:
records/s, and the CPU of the sink (``receive``) and of rsyslogd per 10 000
records, from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from bench.common import free_port, proc_times
from supervisor_streamlog.forward.relp import RelpClient
from supervisor_streamlog.forward.syslog import Origin, message
from supervisor_streamlog.ondisk.files import Entry
from supervisor_streamlog.ondisk.formats import Record
from tests.rsyslog import Rsyslog, central_config
from tests.test_central import sink_pids

STAMP = "2026-12-03T10:00:00.000001+00:00"


def messages(count: int) -> List[bytes]:
    origin = Origin("bench-host", "web", "web", "web.log")
    out = []
    for number in range(count):
        data = f"line {number:09d} ".encode() + b"x" * 84
        offset = 100 + number * 130
        out.append(
            message(
                origin, Entry(offset, offset + 130, Record(STAMP, "stdout", data, False, 42)), 42
            )
        )
    return out


async def send(port: int, batch: List[bytes]) -> None:
    client = RelpClient("127.0.0.1", port, window=1024, timeout=60)
    await client.connect()
    try:
        for start in range(0, len(batch), 10_000):
            await client.send(batch[start : start + 10_000], lambda count: None)
    finally:
        await client.close()


def one_round(directory: Path, count: int) -> str:
    port = free_port()
    conf = directory / "central.conf"
    conf.write_text(f"[streamlog]\nlogdir = {directory}/central\nlayout = hosts\n")
    workdir = directory / "work"
    workdir.mkdir()
    receive = f"{sys.executable} -m supervisor_streamlog receive -c {conf}"
    server = Rsyslog(
        directory / "rsyslog",
        relp=False,
        config=central_config(port, workdir, receive, directory / "receive.log"),
    )
    server.relp_port = port
    batch = messages(count)
    server.start()
    try:
        assert server.pid is not None
        asyncio.run(send(port, batch[:1]))  # omprog starts the sink with the first message
        batch = batch[1:]
        deadline = time.monotonic() + 30
        while not sink_pids(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        sink = sink_pids(server.pid)[0]
        sink_before, rsyslog_before = proc_times(sink)[0], proc_times(server.pid)[0]
        started = time.monotonic()
        asyncio.run(send(port, batch))
        elapsed = time.monotonic() - started
        sink_cpu = proc_times(sink)[0] - sink_before
        rsyslog_cpu = proc_times(server.pid)[0] - rsyslog_before
    finally:
        server.stop()
    lines = (directory / "central" / "bench-host" / "web.log").read_bytes().count(b"\n") - 1
    assert lines == count, f"{lines} of {count} records written"
    sent = len(batch)
    per = 10_000 / sent
    return (
        f"{sent} records in {elapsed:.2f} s: {sent / elapsed:,.0f} records/s; CPU per 10 000: "
        f"sink {sink_cpu * per:.3f} s, rsyslogd {rsyslog_cpu * per:.3f} s"
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for index in range(args.rounds):
        directory = Path(tempfile.mkdtemp(prefix="bench-central-"))
        try:
            print(f"round {index + 1}: {one_round(directory, args.records)}", flush=True)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
