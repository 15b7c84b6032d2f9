"""The forwarder as the tests run it: under a real supervisord, its files, its
``--status``; and a fake RELP server for the client's protocol tests.

tests/test_forward.py, tests/test_forward_metrics.py and tests/test_forward_proto.py
use these; a real rsyslogd is :mod:`tests.rsyslog`'s.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path
from typing import Awaitable, Callable, Dict, Tuple

from supervisor_streamlog.forward.relp import frame
from supervisor_streamlog.ondisk.files import is_header, process_files
from supervisor_streamlog.ondisk.formats import parse

from .supervisor import Supervisor, program

#: The hostname the forwarded records carry.
HOST = "fleet-a"


def forwarding(
    tmp_path: Path,
    programs: Dict[str, Dict[str, object]],
    forward: str,
    **settings: object,
) -> Supervisor:
    """A plugin-mode supervisord capturing ``programs`` and running the forwarder,
    not started yet: ``sup = supervisord(forwarding(tmp_path, programs, url))``."""
    conf = tmp_path / "supervisord.conf"
    streamlog: Dict[str, object] = {
        "programs": " ".join(programs),
        "hostname": HOST,
        "forward": forward,
        "timezone": "utc",
    }
    streamlog.update(settings)
    everything = dict(programs)
    everything["forward"] = program(
        f"{sys.executable} -m supervisor_streamlog forward -c {conf}",
        autorestart="true",
        startsecs=0,
        stdout_events_enabled="false",
        stderr_events_enabled="false",
        stderr_logfile=f"{tmp_path}/forward.err",
    )
    return Supervisor(tmp_path, everything, streamlog=streamlog, base="plugin.conf")


def file_records(sup: Supervisor, name: str) -> Dict[int, Tuple[str, str, bytes]]:
    """offset -> (time, stream, text) of every record in a process's files."""
    found: Dict[int, Tuple[str, str, bytes]] = {}
    for log in process_files(str(sup.logdir / f"{name}.log")):
        opener = gzip.open if log.compressed else open
        with opener(log.path, "rb") as handle:
            position = log.base
            for line in handle:
                record = parse(line.rstrip(b"\n"))
                if not is_header(record.stream, record.data):
                    found[position] = (record.time, record.stream, record.data)
                position += len(line)
    return found


def status_of(sup: Supervisor) -> subprocess.CompletedProcess[str]:
    """What ``forward --status`` says about ``sup``'s logs (run as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "forward", "--status", "-c", str(sup.conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def fake_server(handler: Handler) -> Tuple[asyncio.AbstractServer, int]:
    """A TCP server on a free port of 127.0.0.1 that answers with ``handler``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def answer_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Play a RELP server's answer to the client's ``open``."""
    await reader.readuntil(b"commands=syslog\n")
    offers = b"200 OK\nrelp_version=0\nrelp_software=fake\ncommands=syslog"
    writer.write(frame(1, "rsp", offers))
