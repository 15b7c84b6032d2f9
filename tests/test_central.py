"""One page for many hosts, for real: two hosts' forwarders -> a real rsyslogd
(imrelp, the recipe conf/central-rsyslog.conf as docs/shipping.md prints it)
-> ``supervisor-streamlog receive`` through omprog -> a central logdir, one
directory per host -> a central ``serve`` (``layout = hosts``) over HTTP and
WebSocket.

Each host's files are written by the real capture writer; the forwarders are
the real ``forward`` command.  Every record must be in the central files
exactly once, in order per process -- through a SIGKILL of a forwarder and of
the sink -- and the central sidecar must follow them across its own rotations
(``compress = true``, a small ``maxbytes``) with the history complete.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.ondisk.files import is_header, process_files
from supervisor_streamlog.ondisk.formats import Record, parse

from .rsyslog import Rsyslog, central_config, environment_problem, free_port
from .sidecar import Live, get, history, numbered
from .supervisor import wait_for

PROCESSES = {"hostA": [("web", "web"), ("workers", "w0")], "hostB": [("web", "web")]}
PAD = "x" * 80
#: Bytes a child may write: not UTF-8, a tab, terminal escapes, a lone CR.
ODD = b"odd \xff\xfe\ttab \x1b[31mred\x1b[0m \xc3\xa9 cr\r end"


def numbered_line(number: int) -> bytes:
    return f"line {number:09d} {PAD}\n".encode()


def central_records(path: Path) -> List[Record]:
    """Every whole record of a central process log, oldest first, headers left
    out (read again when the sink rotated a file away under the reading; a
    record still being written is not one yet)."""
    while True:
        found = []
        try:
            for log in process_files(str(path)):
                opener = gzip.open if log.compressed else open
                with opener(log.path, "rb") as handle:
                    for raw in handle:
                        if not raw.endswith(b"\n"):
                            break  # the sink is writing this record now
                        record = parse(raw.rstrip(b"\n"))
                        if not is_header(record.stream, record.data):
                            found.append(record)
        except FileNotFoundError:
            continue
        return found


def line_numbers(records: List[Record]) -> List[int]:
    return [int(r.data[5:14]) for r in records if r.stream == "stdout" and r.data[:5] == b"line "]


def write_conf(path: Path, **settings: object) -> Path:
    path.write_text("[streamlog]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return path


class Host:
    """One origin host: its logdir written by the real capture, and its forwarder."""

    def __init__(self, tmp_path: Path, name: str, port: int) -> None:
        self.name = name
        self.logdir = tmp_path / name
        self.conf = write_conf(
            tmp_path / f"{name}.conf",
            logdir=self.logdir,
            hostname=name,
            timezone="utc",
            forward=f"relp://127.0.0.1:{port}",
        )
        self.capture = Capture(from_mapping({"logdir": str(self.logdir)}, str(tmp_path)))
        self.stderr = tmp_path / f"{name}-forward.err"
        self.forwarder: Optional[subprocess.Popen[bytes]] = None
        self.written: Dict[Tuple[str, str], int] = {}

    def write(self, count: int) -> None:
        """``count`` more numbered lines of each of the host's processes."""
        for group, name in PROCESSES[self.name]:
            start = self.written.get((group, name), 0)
            for first in range(start, start + count, 100):
                chunk = b"".join(numbered_line(n) for n in range(first, first + 100))
                self.capture.log(group, name, "stdout", 4000, chunk)
            self.written[(group, name)] = start + count

    def start_forwarder(self) -> None:
        with open(self.stderr, "ab") as err:
            self.forwarder = subprocess.Popen(
                [sys.executable, "-m", "supervisor_streamlog", "forward", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )

    def kill_forwarder(self) -> None:
        assert self.forwarder is not None
        self.forwarder.send_signal(signal.SIGKILL)
        self.forwarder.wait(10)
        self.forwarder = None

    def stop(self) -> None:
        if self.forwarder is not None:
            self.forwarder.terminate()
            self.forwarder.wait(20)
            self.forwarder = None
        self.capture.close()


def sink_pids(rsyslogd: int) -> List[int]:
    """The receive processes rsyslogd runs (omprog's children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == rsyslogd and b"receive" in cmdline:
            found.append(int(entry))
    return found


@pytest.fixture
def central(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tuple[Rsyslog, Path, str]]:
    """A central rsyslogd handing messages to receive, and a central serve
    (central files in the format the test's parameter names, else text)."""
    problem = environment_problem()
    if problem:
        pytest.fail(problem)  # never skipped: .ci/run installs rsyslog
    port, web = free_port(), free_port()
    conf = write_conf(
        tmp_path / "central.conf",
        logdir=tmp_path / "central",
        layout="hosts",
        format=getattr(request, "param", "text"),
        maxbytes="32KB",
        backups=200,
        compress="true",
        bind=f"127.0.0.1:{web}",
    )
    workdir = tmp_path / "rsyslog-work"
    workdir.mkdir()
    text = central_config(
        port,
        workdir,
        f"{sys.executable} -m supervisor_streamlog receive -c {conf}",
        tmp_path / "receive.log",
    )
    server = Rsyslog(tmp_path / "rsyslog", relp=False, config=text)
    server.relp_port = port  # start() waits for it to accept
    serve = subprocess.Popen(
        [sys.executable, "-m", "supervisor_streamlog", "serve", "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.err", "wb"),
    )
    try:
        server.start()
        base = f"http://127.0.0.1:{web}"
        wait_for(lambda: get(base + "/healthz")[0] == 200, 30, "the central sidecar")
        yield server, tmp_path / "central", base
    finally:
        serve.terminate()
        serve.wait(20)
        server.stop()


def quoted(spec: str) -> str:
    return urllib.parse.quote(spec, safe="")


@pytest.mark.parametrize("central", ["text", "json"], indirect=True)
def test_two_hosts_through_rsyslog_to_one_central_sidecar(
    tmp_path: Path, central: Tuple[Rsyslog, Path, str], request: pytest.FixtureRequest
) -> None:
    server, logdir, base = central
    port = server.relp_port
    assert port is not None
    hosts = {name: Host(tmp_path, name, port) for name in PROCESSES}
    try:
        for host in hosts.values():
            host.write(1000)
            host.start_forwarder()

        def listed() -> Dict[str, Dict[str, object]]:
            status, body = get(base + "/api/processes")
            found = {p["name"]: p for p in body["processes"]} if status == 200 else {}
            return found if len(found) == 3 else {}

        processes = wait_for(listed, 60, "three processes on the central page")
        assert sorted(processes) == ["hostA/web:web", "hostA/workers:w0", "hostB/web:web"]
        assert processes["hostA/web:web"]["display"] == "hostA / web"
        assert processes["hostA/workers:w0"]["display"] == "hostA / workers:w0"
        assert processes["hostB/web:web"]["host"] == "hostB"

        async def follow() -> Live:
            """One merged live view of both hosts' web, from their first record."""
            live = await Live.connect(base)
            for spec in ("hostA/web:web", "hostB/web:web"):
                await live.send({"type": "subscribe", "process": spec, "cursor": 0})
            loop = asyncio.get_running_loop()
            # Meanwhile: more lines, a forwarder and the sink killed mid-flow.
            await loop.run_in_executor(None, outages)
            await live.until(
                lambda c: all(
                    c.numbers_with_skips_filled(base, spec)[0][-1:] == [3999]
                    for spec in ("hostA/web:web", "hostB/web:web")
                ),
                180,
                "every line of both hosts live",
            )
            return live

        def outages() -> None:
            for host in hosts.values():
                host.write(1000)
            wait_for(
                lambda: len(line_numbers(central_records(logdir / "hostA" / "web.log"))) > 1200,
                60,
                "hostA's second thousand under way",
            )
            hosts["hostA"].kill_forwarder()
            assert server.pid is not None
            sinks = wait_for(lambda: sink_pids(server.pid or 0), 10, "the sink's pid")
            for pid in sinks:
                os.kill(pid, signal.SIGKILL)
            for host in hosts.values():
                host.write(1000)
            hosts["hostA"].start_forwarder()
            for host in hosts.values():
                host.write(1000)
            hosts["hostA"].capture.state("web", "web", "EXITED", 4000, {"pid": 4000})
            hosts["hostB"].capture.log("web", "web", "stdout", 4000, ODD + b"\n")

        live = asyncio.run(follow())
        # The sink was killed and rsyslog started another.
        assert (tmp_path / "receive.log").read_text().count("writing to") >= 2
        for spec in ("hostA/web:web", "hostB/web:web"):
            numbers, _skips = live.numbers_with_skips_filled(base, spec)
            assert numbers == list(range(4000)), spec

        def complete(path: Path, count: int) -> bool:
            return len(line_numbers(central_records(path))) >= count

        for path in ("hostA/web.log", "hostA/workers/w0.log", "hostB/web.log"):
            wait_for(functools.partial(complete, logdir / path, 4000), 120, f"all of {path}")
            records = central_records(logdir / path)
            assert line_numbers(records) == list(range(4000)), path  # once each, in order
            assert len(list((logdir / path).parent.glob(Path(path).name + ".*.gz"))) >= 5
        wait_for(
            lambda: central_records(logdir / "hostA" / "web.log")[-1].stream == "status",
            60,
            "hostA web's exit",
        )
        status = central_records(logdir / "hostA" / "web.log")[-1]
        assert status.data == b"EXITED pid=4000"
        assert all(r.time.endswith("+00:00") for r in central_records(logdir / "hostB/web.log"))
        wait_for(
            lambda: central_records(logdir / "hostB" / "web.log")[-1].data == ODD,
            60,
            "hostB's odd bytes, exactly",
        )

        # JSON Lines central files say whose each record is.
        oldest = process_files(str(logdir / "hostA/workers/w0.log"))[0]
        with (gzip.open if oldest.compressed else open)(oldest.path, "rb") as handle:
            second = handle.read().split(b"\n")[1]
        if request.node.callspec.params["central"] == "json":
            obj = json.loads(second)
            assert (obj["host"], obj["group"], obj["program"]) == ("hostA", "workers", "w0")
        else:
            assert second.split(b" ", 2)[1] == b"stdout"

        # History over HTTP, across every rotated and compressed central file.
        status_code, page = get(f"{base}/api/log/{quoted('hostA/workers:w0')}?limit=5")
        assert status_code == 200 and page["process"] == "hostA/workers:w0"
        whole = history(base, "hostA/workers:w0", 0, page["last"])
        assert numbered(whole) == list(range(4000))
        assert get(f"{base}/api/log/{quoted('hostB/web')}?limit=1")[0] == 200  # HOST/name
        assert get(f"{base}/api/log/{quoted('hostC/web')}?limit=1")[0] == 404
    finally:
        for host in hosts.values():
            host.stop()


#: The real sink, with the central files' writes failing (ENOSPC) while FLAG
#: exists; it adds a line to FLAG.seen for each write refused.
FULL_DISK = """\
import os, sys
flag, conf = sys.argv[1], sys.argv[2]
real_write = os.write
def write(fd, data):
    if os.path.exists(flag) and os.readlink(f"/proc/self/fd/{fd}").endswith(".log"):
        with open(flag + ".seen", "a") as seen:
            seen.write("refused\\n")
        raise OSError(28, "No space left on device")
    return real_write(fd, data)
os.write = write
from supervisor_streamlog.cli import main
sys.exit(main(["receive", "-c", conf]))
"""


def refused(flag: Path) -> int:
    try:
        return Path(f"{flag}.seen").read_text().count("refused")
    except FileNotFoundError:
        return 0


def test_a_full_central_disk_holds_the_forwarder_back_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """While the sink cannot write it answers ERROR: rsyslog acknowledges
    nothing (it restarts the sink, imrelp ends the session), the forwarder
    sends again from its last acknowledged record, and once the disk is back
    every record is in the central file once."""
    problem = environment_problem()
    if problem:
        pytest.fail(problem)
    port = free_port()
    conf = write_conf(tmp_path / "central.conf", logdir=tmp_path / "central", layout="hosts")
    flag = tmp_path / "disk-full"
    flag.write_text("")
    wrapper = tmp_path / "full_disk.py"
    wrapper.write_text(FULL_DISK)
    workdir = tmp_path / "rsyslog-work"
    workdir.mkdir()
    receive = f"{sys.executable} {wrapper} {flag} {conf}"
    server = Rsyslog(
        tmp_path / "rsyslog",
        relp=False,
        config=central_config(port, workdir, receive, tmp_path / "receive.log"),
    )
    server.relp_port = port
    live = tmp_path / "central" / "hostB" / "web.log"
    host = Host(tmp_path, "hostB", port)
    try:
        with server:
            host.write(500)
            host.start_forwarder()
            # rsyslog offers the message again (action.resumeInterval = 1 s):
            # the disk stays full over several attempts.
            wait_for(lambda: refused(flag) >= 4, 60, "four refused writes")
            assert line_numbers(central_records(live)) == []
            host.write(500)
            flag.unlink()
            wait_for(lambda: len(line_numbers(central_records(live))) >= 1000, 120, "all lines")
            assert line_numbers(central_records(live)) == list(range(1000))
    finally:
        host.stop()
