"""The forwarder's own ``/metrics`` (``forward_metrics``) and ``forward --status``.

A real supervisord with the plugin and the ``forward`` program, a real rsyslogd
receiving over RELP, real files: the endpoint is scraped over HTTP and its
figures are checked against the files themselves -- what is behind falls to
zero once everything is delivered; with rsyslog down, the records behind are
exactly those written since, while they are being written too; records that
retention deletes before they were delivered are lost bytes, counted once.
Also: the bookkeeping that keeps the record count exact without re-reading the
backlog (:class:`~supervisor_streamlog.forward.behind.Backlog`), and bad
``forward_metrics`` values.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor_streamlog.forward.behind import Backlog
from supervisor_streamlog.forward.octet import StreamSender
from supervisor_streamlog.forward.relp import RelpClient
from supervisor_streamlog.logread.logstore import LogStore
from supervisor_streamlog.ondisk.files import process_files

from .forwarder import answer_open, fake_server, file_records, forwarding, status_of
from .helpers import Cli
from .rsyslog import Rsyslog, environment_problem, free_port
from .supervisor import Supervisor, Supervisors, emit, program, wait_for

Labels = Tuple[Tuple[str, str], ...]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Rsyslog]:
    problem = environment_problem()
    if problem:
        pytest.fail(problem)  # never skipped: .ci/run installs rsyslog
    with Rsyslog(tmp_path / "rsyslog", relp=True) as server:
        yield server


class Scrape:
    """One GET /metrics, parsed with prometheus_client's own parser."""

    def __init__(self, port: int) -> None:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as answer:
            self.content_type = answer.headers["Content-Type"]
            text = answer.read().decode()
        self.samples: Dict[Tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.samples[key] = sample.value

    def get(self, name: str, **labels: str) -> Optional[float]:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def process(self, name: str, destination: str, process: str) -> float:
        value = self.get(name, destination=destination, process=process)
        assert value is not None, f"no {name} for {process}"
        return value


def scrape_when_up(port: int) -> Scrape:
    """The first scrape, once the forwarder listens."""

    def attempt() -> Optional[Scrape]:
        try:
            return Scrape(port)
        except (urllib.error.URLError, ConnectionError):
            return None

    found = wait_for(attempt, 60, "the forwarder's /metrics")
    assert found is not None
    return found


def on_disk(sup: Supervisor, name: str) -> Dict[int, Tuple[str, str, bytes]]:
    """Every record of a process's files (headers left out), by offset."""
    return file_records(sup, name)


def log_end(sup: Supervisor, name: str) -> int:
    return LogStore(str(sup.logdir / f"{name}.log")).bounds()[1]


def settled(sup: Supervisor, name: str) -> Dict[int, Tuple[str, str, bytes]]:
    """The records once the process has exited and its EXITED record is on disk."""
    sup.wait_state(name, "EXITED", timeout=120)

    def exited() -> Optional[Dict[int, Tuple[str, str, bytes]]]:
        records = on_disk(sup, name)
        last = records[max(records)]
        return records if last[1] == "status" and last[2].startswith(b"EXITED") else None

    found = wait_for(exited, 30, f"{name}'s EXITED record")
    assert found is not None
    return found


def status_line(sup: Supervisor, name: str) -> Tuple[int, int, str]:
    """(bytes, records, rest of the line) of a process in ``forward --status``."""
    out = status_of(sup).stdout
    found = re.search(rf"^  {name}\s+behind\s+(\d+) bytes\s+(\d+) records(.*)$", out, re.M)
    assert found, out
    return int(found[1]), int(found[2]), found[3]


def delivered(port: int, url: str, name: str, records: int) -> Scrape:
    """A scrape once ``name`` is caught up and ``records`` were acknowledged."""

    def caught_up() -> Optional[Scrape]:
        got = Scrape(port)
        done = (
            got.get("streamlog_forward_connected", destination=url) == 1
            and got.process("streamlog_forward_behind_bytes", url, name) == 0
            and got.process("streamlog_forward_acked_records_total", url, name) >= records
        )
        return got if done else None

    found = wait_for(caught_up, 120, f"{name} caught up", interval=0.2)
    assert found is not None
    return found


def disconnected(port: int, url: str) -> Scrape:
    """A scrape once the forwarder has seen the receiver go."""

    def gone() -> Optional[Scrape]:
        got = Scrape(port)
        return got if got.get("streamlog_forward_connected", destination=url) == 0 else None

    found = wait_for(gone, 60, "the forwarder to see rsyslog gone", interval=0.1)
    assert found is not None
    return found


def test_behind_falls_to_zero_and_counts_exactly_what_was_written_during_an_outage(
    tmp_path: Path, receiver: Rsyslog, supervisord: Supervisors
) -> None:
    port = free_port()
    url = f"relp://127.0.0.1:{receiver.relp_port}"
    programs = {"alpha": program(emit("rate", 20_000, 5_000), autostart="false")}
    sup = supervisord(forwarding(tmp_path, programs, url, forward_metrics=f"127.0.0.1:{port}"))
    first = scrape_when_up(port)
    assert first.content_type.startswith("text/plain; version=0.0.4")
    sup.rpc.supervisor.startProcess("alpha")
    before = settled(sup, "alpha")
    got = delivered(port, url, "alpha:alpha", len(before))
    assert got.process("streamlog_forward_behind_records", url, "alpha:alpha") == 0
    assert got.process("streamlog_forward_behind_seconds", url, "alpha:alpha") == 0
    assert got.process("streamlog_forward_sent_records_total", url, "alpha:alpha") == len(before)
    assert got.process("streamlog_forward_acked_records_total", url, "alpha:alpha") == len(before)
    assert got.process("streamlog_forward_resent_records_total", url, "alpha:alpha") == 0
    assert got.process("streamlog_forward_lost_bytes_total", url, "alpha:alpha") == 0
    assert got.get("streamlog_forward_errors_total", destination=url) == 0
    end_before = log_end(sup, "alpha")

    receiver.kill()
    down = disconnected(port, url)
    assert (down.get("streamlog_forward_errors_total", destination=url) or 0) >= 1
    errors = [key for key in down.samples if key[0] == "streamlog_forward_error_info"]
    assert len(errors) == 1 and dict(errors[0][1])["destination"] == url

    # The same program again while rsyslog is down: scraped while it writes,
    # the count only grows (nothing is acknowledged) ...
    started = time.time()
    sup.rpc.supervisor.startProcess("alpha")
    seen: List[float] = []

    def written() -> bool:
        seen.append(Scrape(port).process("streamlog_forward_behind_records", url, "alpha:alpha"))
        return sup.state("alpha") == "EXITED"

    wait_for(written, 120, "the second run to end", interval=0.1)
    assert seen == sorted(seen) and len(set(seen)) > 2, seen
    # ... and once it is written, it is exactly the records written since.
    now = settled(sup, "alpha")
    since = [offset for offset in now if offset >= end_before]
    assert len(since) == len(now) - len(before) > 20_000
    out = Scrape(port)
    assert out.process("streamlog_forward_behind_records", url, "alpha:alpha") == len(since)
    assert out.process("streamlog_forward_behind_bytes", url, "alpha:alpha") == (
        log_end(sup, "alpha") - end_before
    )
    age = out.process("streamlog_forward_behind_seconds", url, "alpha:alpha")
    assert 0 < age <= time.time() - started
    assert status_line(sup, "alpha:alpha")[:2] == (log_end(sup, "alpha") - end_before, len(since))

    receiver.restart()
    after = delivered(port, url, "alpha:alpha", len(now))
    assert after.process("streamlog_forward_behind_records", url, "alpha:alpha") == 0
    assert after.process("streamlog_forward_acked_records_total", url, "alpha:alpha") == len(now)
    assert after.process("streamlog_forward_resent_records_total", url, "alpha:alpha") == 0
    # The state file, which --status reads, is saved every second.
    wait_for(lambda: status_line(sup, "alpha:alpha")[:2] == (0, 0), 30, "--status caught up")
    arrived = {int(m.streamlog["offset"]) for m in receiver.received() if m.appname == "alpha"}
    assert arrived == set(now)


def test_records_retention_deleted_before_delivery_are_lost_bytes_counted_once(
    tmp_path: Path, receiver: Rsyslog, supervisord: Supervisors
) -> None:
    port = free_port()
    url = f"relp://127.0.0.1:{receiver.relp_port}"
    programs = {"alpha": program(emit("rate", 30_000, 6_000), autostart="false")}
    sup = supervisord(
        forwarding(
            tmp_path,
            programs,
            url,
            forward_metrics=f"127.0.0.1:{port}",
            maxbytes="128KB",
            backups=3,
            compress="true",
        )
    )
    scrape_when_up(port)
    sup.rpc.supervisor.startProcess("alpha")
    wait_for(
        lambda: (
            (
                Scrape(port).get(
                    "streamlog_forward_acked_records_total", destination=url, process="alpha:alpha"
                )
                or 0
            )
            > 1_000
        ),
        60,
        "records of alpha delivered",
    )
    receiver.kill()  # mid-flood
    disconnected(port, url)
    state_file = next((sup.logdir / ".forward").glob("*.json"))
    saved = json.loads(state_file.read_text())
    acked = saved["offsets"]["alpha:alpha"]
    # (Retention may already have deleted records the forwarder was about to
    # read while it kept up: those were logged and counted then.)
    earlier = saved.get("lost", {}).get("alpha:alpha", 0)
    records = settled(sup, "alpha")  # ~23 rotations: retention keeps the last 4 files
    files = process_files(str(sup.logdir / "alpha.log"))
    oldest, end = files[0].base, log_end(sup, "alpha")
    assert oldest > acked, "retention deleted records not yet delivered"
    lost = earlier + oldest - acked
    out = Scrape(port)
    assert out.process("streamlog_forward_lost_bytes_total", url, "alpha:alpha") == lost
    assert out.process("streamlog_forward_behind_records", url, "alpha:alpha") == len(records)
    assert out.process("streamlog_forward_behind_bytes", url, "alpha:alpha") == end - oldest
    size, count, note = status_line(sup, "alpha:alpha")
    assert (size, count) == (end - oldest, len(records))
    assert note.strip().endswith(f"lost {lost} bytes to retention")

    receiver.restart()
    after = delivered(port, url, "alpha:alpha", len(records))
    assert after.process("streamlog_forward_lost_bytes_total", url, "alpha:alpha") == lost
    assert after.process("streamlog_forward_behind_records", url, "alpha:alpha") == 0
    assert json.loads(state_file.read_text())["lost"] == {"alpha:alpha": lost}
    said = (tmp_path / "forward.err").read_text()
    gap = f"{oldest - acked} bytes of records (offsets {acked}-{oldest}) were deleted"
    assert f"alpha:alpha: {gap}" in said
    arrived = {int(m.streamlog["offset"]) for m in receiver.received() if m.appname == "alpha"}
    assert arrived >= set(records)  # everything still on disk, and what came before


def test_backlog_counts_each_record_once_whoever_counts_it() -> None:
    """The bookkeeping of behind.py, by hand: pages sent, acknowledgements,
    a scrape's count of a reserved range, a retention gap, a catch-up."""
    backlog = Backlog(100)
    # A page of three records [100, 130), sent; a scrape reserves what follows.
    backlog.sending([110, 120, 130], 130)
    backlog.written([110, 120, 130], 3)
    assert (backlog.records, backlog.counted_to, backlog.sent) == (3, 130, 3)
    span = backlog.reserve(200)
    assert span == (130, 200, 0) and backlog.counted_to == 200
    # The next page overlaps the reserved range: only its records past 200 count.
    backlog.sending([150, 200, 210], 210)
    assert backlog.records == 4
    backlog.counted(span[2], 7)  # the scrape's count of [130, 200)
    assert backlog.records == 11
    backlog.acknowledged([110, 120, 130], 0, 2)
    backlog.advanced(120)
    assert backlog.records == 9
    # A broken session: the unacknowledged record is sent again (and one
    # more, but not the last: it was never written before).
    backlog.sending([130, 150, 200, 210], 210)
    backlog.written([130, 150, 200, 210], 2)
    assert (backlog.resent, backlog.records, backlog.sent) == (1, 9, 5)
    # A retention gap starts the count again; a scrape's count taken before is dropped.
    stale = backlog.reserve(300)
    assert stale is not None
    backlog.restart(250)
    backlog.counted(stale[2], 40)
    assert (backlog.records, backlog.counted_to, backlog.floor) == (0, 250, 250)
    # Acknowledgements of records before the gap subtract nothing.
    backlog.acknowledged([130, 150, 200, 210], 0, 4)
    assert backlog.records == 0
    backlog.sending([260, 270], 270)
    backlog.acknowledged([260, 270], 0, 2)
    backlog.advanced(270)
    assert (backlog.records, backlog.counted_to) == (0, 270)


def forward_once(tmp_path: Path, settings: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "streamlog.conf"
    conf.write_text(
        f"[streamlog]\nlogdir = {tmp_path}/logs\nforward = relp://127.0.0.1:{free_port()}\n"
        + settings
    )
    return subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "forward", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["9718", "127.0.0.1", "127.0.0.1:0", "localhost:http", "unix:"])
def test_a_bad_forward_metrics_address_is_a_one_line_error(
    tmp_path: Path, value: str, cli: Cli
) -> None:
    conf = tmp_path / "streamlog.conf"
    conf.write_text(
        f"[streamlog]\nlogdir = {tmp_path}/logs\nforward = relp://127.0.0.1:{free_port()}\n"
        f"forward_metrics = {value}\n"
    )
    bad = cli("forward", "-c", conf)  # a config check: in this process
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"supervisor-streamlog: [streamlog] forward_metrics = '{value}' is not valid: "
        "expected host:port (e.g. 127.0.0.1:9718), unix:/path/to/socket, or nothing (off)"
    ]


def test_a_metrics_address_in_use_stops_the_forwarder_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = forward_once(tmp_path, f"forward_metrics = 127.0.0.1:{port}\n")
    assert busy.returncode == 2
    lines = busy.stderr.strip().splitlines()
    assert lines[-1] == (
        f"supervisor-streamlog forward: cannot serve metrics on forward_metrics = "
        f"127.0.0.1:{port}: Address already in use"
    )


def test_an_idle_client_sees_the_receiver_hang_up() -> None:
    """What lets ``streamlog_forward_connected`` fall to 0 with nothing to send."""

    async def attempt() -> None:
        hang_up = asyncio.Event()

        async def relp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await answer_open(reader, writer)
            await hang_up.wait()
            writer.close()

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await hang_up.wait()
            writer.close()

        for handler, make in ((relp, RelpClient), (tcp, StreamSender)):
            hang_up.clear()
            server, port = await fake_server(handler)
            client = make("127.0.0.1", port, timeout=10)
            await client.connect()
            await asyncio.sleep(0.2)
            assert not client.hung_up()
            hang_up.set()
            for _ in range(500):
                if client.hung_up():
                    break
                await asyncio.sleep(0.01)
            assert client.hung_up(), make.__name__
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(attempt(), 60))
