"""The forwarder end to end: a real supervisord with the plugin, real children, the
``forward`` program, and a real rsyslogd receiving over RELP, TCP or TLS.

Every line a child writes must reach rsyslog's output exactly once, in order per
process, with the right host, program, pid, stream and time -- through outages of
the receiver and of the forwarder itself, and through rotation to ``.gz`` while
it is down.  Duplicates are allowed only where the protocol says (records sent but
not acknowledged), and each carries the offset that tells it apart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor_streamlog.forward.behind import record_time
from supervisor_streamlog.logread.logstore import LogStore

from .forwarder import HOST, file_records, forwarding, status_of
from .helpers import Cli
from .rsyslog import Received, Rsyslog, environment_problem, free_port, make_ca
from .supervisor import Supervisor, Supervisors, emit, program, wait_for


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    problem = environment_problem()
    if problem:
        pytest.fail(problem)  # never skipped: .ci/run installs rsyslog
    with Rsyslog(tmp_path / "rsyslog", relp=True, tcp=True, tls=True) as server:
        yield server


def numbered(messages: List[Received], app: str) -> List[int]:
    return [
        int(m.msg[5:14])
        for m in messages
        if m.appname == app and m.msgid == "stdout" and m.msg.startswith(b"line ")
    ]


def stdout_of(app: str) -> Callable[[Received], bool]:
    return lambda m: m.appname == app and m.msgid == "stdout"


def all_lines(rsyslog: Rsyslog, app: str, count: int, timeout: float) -> List[Received]:
    """What arrived once every line of ``app`` has (repeats do not count twice)."""
    got: List[Received] = []

    def complete() -> bool:
        got[:] = [m for m in rsyslog.received() if m.appname == app and m.msgid == "stdout"]
        return len({m.streamlog["offset"] for m in got}) >= count

    wait_for(complete, timeout, f"every line of {app} at rsyslog")
    return got


def exactly_once_by_offset(messages: List[Received], app: str, count: int) -> int:
    """Every line 0..count-1 once after dropping repeats of an offset; returns repeats.

    A line the capture wrote in pieces (its writer stalled mid-line for longer
    than ``partial_timeout``, as on a loaded machine) arrives as records marked
    ``partial``: joined here, as a receiver would join them.
    """
    seen: Dict[int, Received] = {}
    repeats = 0
    for m in messages:
        if m.appname != app or m.msgid != "stdout":
            continue
        offset = int(m.streamlog["offset"])
        if offset in seen:
            assert seen[offset].msg == m.msg, "one offset, two records"
            repeats += 1
            continue
        seen[offset] = m
    numbers = []
    line = b""
    for offset in sorted(seen):
        line += seen[offset].msg
        if seen[offset].streamlog.get("partial") != "true":
            numbers.append(int(line[5:14]))
            line = b""
    missing = sorted(set(range(count)) - set(numbers))
    assert numbers == list(range(count)), f"missing {len(missing)}: {missing[:5]}..{missing[-5:]}"
    return repeats


def test_two_programs_arrive_exactly_once_in_order_with_their_fields(
    tmp_path: Path, rsyslog: Rsyslog, supervisord: Supervisors
) -> None:
    count = 100_000
    programs = {
        name: program(emit("burst", count, 100, "block"), autostart="false")
        for name in ("alpha", "beta")
    }
    sup = supervisord(forwarding(tmp_path, programs, f"relp://127.0.0.1:{rsyslog.relp_port}"))
    sup.rpc.supervisor.startProcess("alpha")
    sup.rpc.supervisor.startProcess("beta")
    got = rsyslog.wait_for(
        2 * count, 180, lambda m: m.msgid == "stdout" and m.appname in ("alpha", "beta")
    )
    everything = rsyslog.received()
    for name in ("alpha", "beta"):
        assert numbered(everything, name) == list(range(count)), name
        mine = [m for m in got if m.appname == name]
        assert {m.hostname for m in mine} == {HOST}
        running = [
            m
            for m in everything
            if m.appname == name and m.msgid == "status" and m.msg.startswith(b"RUNNING")
        ]
        assert len(running) == 1
        assert {m.procid for m in mine} == {running[0].procid}
        assert running[0].procid == running[0].msg.split(b"pid=")[1].decode()
        # Time, stream and text are the file's record at that offset.
        records = file_records(sup, name)
        for m in mine[:: count // 100]:
            time, stream, text = records[int(m.streamlog["offset"])]
            assert (m.timestamp, m.msgid, m.msg) == (time, stream, text)
            assert m.streamlog["file"] == f"{name}.log" and m.streamlog["group"] == name
            assert m.severity == 6  # stdout: info


def test_receiver_down_10_s_mid_flood_with_rotation_to_gz_loses_nothing(
    tmp_path: Path, rsyslog: Rsyslog, supervisord: Supervisors
) -> None:
    """rsyslog killed for at least 10 s while a program writes 6 000 lines/s and
    its files rotate to .gz, then started again: every line arrives, and the
    only repeats are records that were in flight (sent, not acknowledged) at
    the kill -- no more than the forwarder says it re-sent."""
    count = 120_000  # 20 s of writing: it goes on through the outage
    metrics = free_port()
    programs = {"steady": program(emit("rate", count, 6_000), autostart="false")}
    sup = supervisord(
        forwarding(
            tmp_path,
            programs,
            f"relp://127.0.0.1:{rsyslog.relp_port}",
            maxbytes="256KB",
            backups=400,
            compress="true",
            forward_metrics=f"127.0.0.1:{metrics}",
        )
    )
    sup.rpc.supervisor.startProcess("steady")
    rsyslog.wait_for(5_000, 60, stdout_of("steady"))
    rsyslog.kill()
    killed = time.monotonic()
    gz_before = set(sup.logdir.glob("steady.log.*.gz"))
    wait_for(lambda: scrape(metrics, "streamlog_forward_connected") == 0, 30, "disconnected")
    # What was acknowledged at the kill (saved as the session failed).
    acked = state_of(sup)["offsets"]["steady:steady"]
    # While it is down the log goes on, rotates and compresses.
    wait_for(
        lambda: len(set(sup.logdir.glob("steady.log.*.gz")) - gz_before) >= 3,
        60,
        "rotation to .gz while rsyslog is down",
    )
    status = status_of(sup)
    assert status.returncode == 1 and "behind" in status.stdout
    wait_for(lambda: time.monotonic() - killed >= 10, 20, "10 s of outage", interval=0.1)
    assert sup.state("steady") == "RUNNING", "the flood went on through the outage"
    outage = time.monotonic() - killed
    rsyslog.restart()
    assert outage >= 10
    got = all_lines(rsyslog, "steady", count, 180)
    repeats = exactly_once_by_offset(got, "steady", count)
    times = Counter(int(m.streamlog["offset"]) for m in got)
    repeated = [offset for offset, seen in times.items() if seen > 1]
    # Only records in flight at the kill come again: past the acknowledged
    # offset, at most one RELP window, and counted by the forwarder as re-sent.
    assert all(offset >= acked for offset in repeated)
    resent = scrape(metrics, "streamlog_forward_resent_records_total", process="steady:steady")
    assert repeats <= resent <= 1024
    wait_for(lambda: status_of(sup).returncode == 0, 30, "forward --status to say caught up")


def scrape(port: int, name: str, **labels: str) -> float:
    """One sample of the forwarder's /metrics (there is one destination)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    raise AssertionError(f"no {name} {labels} in /metrics")


def state_of(sup: Supervisor) -> Dict[str, Any]:
    """The forwarder's state file (one destination)."""
    found = list((sup.logdir / ".forward").glob("*.json"))
    assert len(found) == 1, found
    data: Dict[str, Any] = json.loads(found[0].read_text())
    return data


def test_forwarder_killed_mid_flood_resumes_from_its_offsets(
    tmp_path: Path, rsyslog: Rsyslog, supervisord: Supervisors
) -> None:
    count = 60_000
    programs = {"steady": program(emit("rate", count, 6_000), autostart="false")}
    sup = supervisord(forwarding(tmp_path, programs, f"tcp://127.0.0.1:{rsyslog.tcp_port}"))
    sup.rpc.supervisor.startProcess("steady")
    rsyslog.wait_for(10_000, 60, stdout_of("steady"))
    first = int(sup.rpc.supervisor.getProcessInfo("forward")["pid"])
    os.kill(first, signal.SIGKILL)
    wait_for(
        lambda: int(sup.rpc.supervisor.getProcessInfo("forward")["pid"]) not in (0, first),
        30,
        "supervisord to start the forwarder again",
    )
    got = all_lines(rsyslog, "steady", count, 180)
    repeats = exactly_once_by_offset(got, "steady", count)
    # Re-sent: what was delivered after the last save (offsets are saved every second).
    assert repeats < 6_000 * 3


def test_tls_with_a_test_ca_and_a_wrong_ca_is_refused_clearly(
    tmp_path: Path, rsyslog: Rsyslog, supervisord: Supervisors
) -> None:
    assert rsyslog.certs is not None
    programs = {"alpha": program(emit("burst", 2_000, 100, "block"), autostart="false")}
    sup = supervisord(
        forwarding(
            tmp_path,
            programs,
            f"tls://127.0.0.1:{rsyslog.tls_port}",
            forward_cafile=str(rsyslog.certs.ca),
        )
    )
    sup.rpc.supervisor.startProcess("alpha")
    got = rsyslog.wait_for(2_000, 60, stdout_of("alpha"))
    assert numbered(got, "alpha") == list(range(2_000))
    assert {m.input for m in got} == {"imtcp-tls"}  # the TLS input, named so
    # A forwarder that trusts another CA never delivers, and says why.
    other = make_ca(tmp_path / "other-pki", name="other")
    conf = tmp_path / "wrong.conf"
    conf.write_text(
        sup.conf.read_text()
        .replace(str(rsyslog.certs.ca), str(other.ca))
        .replace("[streamlog]\n", f"[streamlog]\nforward_state = {tmp_path}/wrong-state\n", 1)
    )
    said = tmp_path / "wrong.err"
    with open(said, "wb") as err:
        wrong = subprocess.Popen(
            [sys.executable, "-m", "supervisor_streamlog", "forward", "-c", str(conf)], stderr=err
        )
    try:
        wait_for(lambda: b"certificate" in said.read_bytes(), 30, "the certificate error")
    finally:
        wrong.send_signal(signal.SIGTERM)
        assert wrong.wait(30) == 0
    # Nothing came through it: every line is still there once.
    assert numbered(rsyslog.received(), "alpha") == list(range(2_000))


def test_a_bad_destination_or_a_state_of_another_logdir_is_a_one_line_error(
    tmp_path: Path, cli: Cli
) -> None:
    conf = tmp_path / "streamlog.conf"
    conf.write_text(f"[streamlog]\nlogdir = {tmp_path}/logs\nforward = udp://x:514\n")
    bad = cli("forward", "-c", conf)  # a config check: in this process
    assert bad.returncode == 2
    assert "forward = 'udp://x:514' is not valid" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    state = tmp_path / "state"
    state.mkdir()
    (state / "relp_127.0.0.1_2514.json").write_text(
        '{"version": 1, "logdir": "/elsewhere", "destination": "relp://127.0.0.1:2514",'
        ' "offsets": {}}'
    )
    conf.write_text(
        f"[streamlog]\nlogdir = {tmp_path}/logs\nforward = relp://127.0.0.1:2514\n"
        f"forward_state = {state}\n"
    )
    other = subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "forward", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 2 and "belongs to logdir '/elsewhere'" in other.stderr


def test_the_age_of_a_record_with_a_bad_stamp_is_unknown(tmp_path: Path) -> None:
    """behind.record_time: the time of the record at an offset (the header passed
    over), None where its stamp does not read: no age rather than a wrong one."""
    live = tmp_path / "web.log"
    live.write_bytes(
        b"2026-12-03T10:00:00.000000+00:00 status STREAMLOG file offset=0\n"
        b"2026-12-03T10:00:01.500000+00:00 stdout good\n"
        b"2026-13-03T10:00:02.000000+00:00 stdout month 13\n"
    )
    store = LogStore(str(live))
    entries = store.read_forward(None, 10).entries
    assert record_time(store, 0) == 1796292001.5
    assert record_time(store, entries[-1].offset) is None
