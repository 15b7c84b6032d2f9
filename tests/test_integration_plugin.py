"""Plugin mode inside a real supervisord: lossless, line-safe, reload-safe."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import List

import pytest

from supervisor_streamlog.ondisk.formats import iter_records

from .helpers import line_numbers, quiet_program
from .supervisor import Supervisor, Supervisors, emit, program, wait_for


def exited(sup: Supervisor, name: str) -> bool:
    return any(r.text.startswith("EXITED") for r in sup.records(name)[-3:])


@pytest.mark.parametrize("daemon", [False, True])
def test_million_lines_block_writes_complete_in_order(
    tmp_path: Path, supervisord: Supervisors, daemon: bool
) -> None:
    count = 1_000_000
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"bulk": quiet_program(emit("burst", count, 100, "block"))},
            streamlog={"maxbytes": "20MB", "backups": 100, "compress": "true"},
            daemon=daemon,
            base="plugin.conf",
        )
    )
    sup.wait_state("bulk", "EXITED", timeout=120)
    wait_for(lambda: exited(sup, "bulk"), 60, "the EXITED record")
    # Compression runs on a thread started after daemonizing: it must work in both.
    wait_for(
        lambda: all(p.suffix in (".gz", ".log") for p in sup.log_files("bulk")),
        120,
        "every backup compressed",
    )
    assert len(sup.log_files("bulk")) >= 6
    assert line_numbers(sup.records("bulk")) == list(range(count))
    assert "INFO streamlog: capturing bulk into" in sup.main_log()  # not a WARN


def test_line_per_write_and_three_floods_at_once(tmp_path: Path, supervisord: Supervisors) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={
                "lines": quiet_program(emit("burst", 200_000, 100, "line")),
                "flood1": quiet_program(emit("burst", 300_000, 100, "block")),
                "flood2": quiet_program(emit("burst", 300_000, 100, "block", "stderr")),
                "flood3": quiet_program(emit("burst", 300_000, 100, "line")),
            },
            streamlog={"maxbytes": "8MB", "backups": 100},
            base="plugin.conf",
        )
    )
    for name in ("lines", "flood1", "flood2", "flood3"):
        sup.wait_state(name, "EXITED", timeout=180)
        wait_for(partial(exited, sup, name), 60, f"{name} EXITED record")
    assert line_numbers(sup.records("lines")) == list(range(200_000))
    assert line_numbers(sup.records("flood1")) == list(range(300_000))
    assert line_numbers(sup.records("flood2"), "stderr") == list(range(300_000))
    assert line_numbers(sup.records("flood3")) == list(range(300_000))


def test_exit_status_and_partial_line_in_process(tmp_path: Path, supervisord: Supervisors) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={
                "crash": quiet_program(
                    f"{sys.executable} -c \"import sys; sys.stdout.write('bye'); sys.exit(7)\""
                )
            },
            base="plugin.conf",
        )
    )
    sup.wait_state("crash", "EXITED")
    wait_for(lambda: exited(sup, "crash"), 20, "the EXITED record")
    records = sup.records("crash")
    assert records[-2].data == b"bye" and records[-2].partial
    assert re.fullmatch(r"EXITED pid=\d+ exitstatus=7 expected=false", records[-1].text)


def test_reload_neither_duplicates_nor_loses_and_subscribes_once(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={
                "ticker": quiet_program(
                    emit("tick", 0.002),
                    autorestart="true",
                    environment=f"EMIT_COUNT_FILE={tmp_path}/counts",
                )
            },
            streamlog={"maxbytes": "64KB", "backups": 200},
            base="plugin.conf",
        )
    )

    def runs() -> List[List[int]]:
        result: List[List[int]] = []
        for n in line_numbers(sup.records("ticker")):
            if n == 0 or not result:
                result.append([])
            result[-1].append(n)
        return result

    wait_for(lambda: len(line_numbers(sup.records("ticker"))) > 300, 30, "ticker lines")
    for reloads in (1, 2):
        sup.reload()
        sup.wait_reloaded()
        wait_for(
            partial(lambda n: len(runs()) == n + 1 and len(runs()[-1]) > 300, reloads),
            60,
            f"the ticker's run after reload {reloads}",
        )
    sup.stop()
    written = [int(n) for n in (tmp_path / "counts").read_text().split()]
    assert [len(run) for run in runs()] == written  # every line, once
    for run in runs():
        assert run == list(range(len(run)))
    states = [r.text.split()[0] for r in sup.records("ticker") if r.stream == "status"]
    assert states == ["STARTING", "RUNNING", "STOPPING", "STOPPED"] * 3
    # Subscribed once per load: one "capturing" announcement per load, never two.
    assert sup.main_log().count("streamlog: capturing ticker into") == 3


def test_update_after_capture_restarts_nothing(tmp_path: Path, supervisord: Supervisors) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path, programs={"svc": quiet_program(emit("tick", 0.05))}, base="plugin.conf"
        )
    )
    wait_for(lambda: len(line_numbers(sup.records("svc"))) > 3, 20, "svc lines")
    pid = sup.info("svc:svc")["pid"]
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sup.conf)]
    reread = subprocess.run(ctl + ["reread"], capture_output=True, text=True, timeout=60)
    assert "No config updates" in reread.stdout, reread.stdout
    update = subprocess.run(ctl + ["update"], capture_output=True, text=True, timeout=60)
    assert update.returncode == 0 and "svc" not in update.stdout
    assert sup.info("svc:svc")["pid"] == pid
    assert [r.text.split()[0] for r in sup.records("svc") if r.stream == "status"] == [
        "STARTING",
        "RUNNING",
    ]


def test_writer_failure_reported_once_and_others_still_captured(
    supervisord: Supervisors, tmp_path: Path
) -> None:
    logdir = tmp_path / "streamlog"
    (logdir / "broken.log").mkdir(parents=True)  # a directory where the file should be
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={
                "broken": quiet_program(emit("tick", 0.01)),
                "fine": quiet_program(emit("tick", 0.01)),
            },
            base="plugin.conf",
        )
    )
    wait_for(lambda: len(line_numbers(sup.records("fine"))) > 100, 30, "fine's lines")
    assert sup.state("broken:broken") == "RUNNING"
    assert sup.rpc.supervisor.getState()["statename"] == "RUNNING"
    log = sup.main_log()
    assert log.count("cannot write") == 1 and "broken.log" in log
    status = sup.rpc.streamlog.getStatus()
    broken = next(p for p in status["processes"] if p["name"] == "broken:broken")
    assert broken["failing"] == "EISDIR" and broken["held_bytes"] > 0
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sup.conf)]
    shown = subprocess.run(
        ctl + ["streamlog", "status"], capture_output=True, text=True, timeout=60
    )
    assert "broken:broken" in shown.stdout and "FAILING EISDIR" in shown.stdout
    helped = subprocess.run(ctl + ["help", "streamlog"], capture_output=True, text=True, timeout=60)
    assert "No help" not in helped.stdout and "streamlog status" in helped.stdout


def test_removed_group_is_closed_and_added_group_captured(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path, programs={"old": quiet_program(emit("tick", 0.05))}, base="plugin.conf"
        )
    )
    wait_for(lambda: len(line_numbers(sup.records("old"))) > 2, 20, "old's lines")
    text = sup.conf.read_text().replace("[program:old]", "[program:new]")
    sup.conf.write_text(text)
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sup.conf)]
    update = subprocess.run(ctl + ["update"], capture_output=True, text=True, timeout=60)
    assert "old: removed process group" in update.stdout, update.stdout
    wait_for(lambda: len(line_numbers(sup.records("new"))) > 2, 20, "new's lines")
    names = [p["name"] for p in sup.rpc.streamlog.getStatus()["processes"]]
    assert names == ["new:new"]
    states = [r.text.split()[0] for r in sup.records("old") if r.stream == "status"]
    assert states[-1] == "STOPPED"


def test_same_records_as_listener_mode_but_for_timestamps(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    """Both front ends share the core: the same output gives the same records."""
    euro = "€".encode()
    steps = [
        ["out", (b"plain\nsplit " + euro[:1]).hex()],
        ["sleep", 0.15],
        ["out", (euro[1:] + b" done\r\n\x00\x1b[1mbold\xff\n" + b"L" * 40000 + b"\n").hex()],
        ["err", b"err line\n".hex()],
        ["out", b"tail without newline".hex()],
        ["exit", 2],
    ]
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    results = []
    for base in ("listener.conf", "plugin.conf"):
        workdir = tmp_path / base.split(".")[0]
        workdir.mkdir()
        sup = supervisord(
            Supervisor(
                workdir, {"same": program(emit("script", tmp_path / "steps.json"))}, base=base
            )
        )
        sup.wait_state("same", "EXITED")
        wait_for(partial(exited, sup, "same"), 20, "the EXITED record")
        results.append(
            [(r.stream, r.data, r.partial) for r in sup.records("same") if r.stream != "status"]
        )
        sup.stop()  # one at a time
    assert results[0] == results[1]
    assert results[0][-1] == ("stdout", b"tail without newline", True)


def test_reopen_through_supervisorctl_after_an_external_rotation(
    tmp_path: Path,
    supervisord: Supervisors,
) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path, programs={"svc": quiet_program(emit("tick", 0.01))}, base="plugin.conf"
        )
    )
    wait_for(lambda: len(line_numbers(sup.records("svc"))) > 5, 20, "svc lines")
    live = sup.logdir / "svc.log"
    moved = sup.logdir / "svc.log-logrotate"
    live.rename(moved)  # what logrotate (without copytruncate) does
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sup.conf)]
    done = subprocess.run(ctl + ["streamlog", "reopen"], capture_output=True, text=True, timeout=60)
    assert "reopened" in done.stdout, done.stdout + done.stderr
    wait_for(lambda: live.exists() and b"line" in live.read_bytes(), 20, "a new svc.log")
    old = [
        int(r.data[5:14]) for r in iter_records(moved.read_bytes()) if r.data.startswith(b"line")
    ]
    new = [int(r.data[5:14]) for r in iter_records(live.read_bytes()) if r.data.startswith(b"line")]
    assert new[0] == old[-1] + 1  # nothing lost, nothing twice, across the reopen


def test_a_killed_compressions_tmp_is_finished_at_start_for_a_silent_program(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    # Files as a crash left them: .1 rotated, its compression killed half way
    # (a partial .gz.tmp nobody holds).  The program never writes again.
    logdir = tmp_path / "streamlog"
    logdir.mkdir()
    stamp = "2026-11-27T01:23:45.000000+00:00"
    lines = [f"{stamp} stdout line {n:09d}\n".encode() for n in range(2000)]
    backup = f"{stamp} status STREAMLOG file offset=0\n".encode() + b"".join(lines[:1000])
    live = f"{stamp} status STREAMLOG file offset={len(backup)}\n".encode()
    live += b"".join(lines[1000:])
    (logdir / "quiet.log.1").write_bytes(backup)
    (logdir / "quiet.log").write_bytes(live)
    (logdir / "quiet.log.1.gz.tmp").write_bytes(gzip.compress(backup)[:100])
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"quiet": quiet_program("sleep 60", autostart="false")},
            streamlog={"compress": "true", "maxbytes": "1MB"},
            base="plugin.conf",
        )
    )
    wait_for(
        lambda: sorted(p.name for p in logdir.iterdir()) == ["quiet.log", "quiet.log.1.gz"],
        20,
        "the backup compressed and the stale .gz.tmp gone",
    )
    assert sup.read_bytes("quiet") == backup + live  # nothing lost, nothing twice


def test_a_dying_programs_last_line_and_exit_are_written_promptly(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    # supervisord sleeps up to 1 s in poll() and reaps only between sleeps: without
    # the plugin's signal wake-up about a third of these exits came ~1 s late.
    script = tmp_path / "dying.py"
    script.write_text(
        "import os, time\nos.write(1, ('last %.6f\\n' % time.time()).encode())\nos._exit(3)\n"
    )
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"dying": quiet_program(f"{sys.executable} {script}", autostart="false")},
            base="plugin.conf",
        )
    )
    path = tmp_path / "streamlog" / "dying.log"
    runs = 15
    for run in range(runs):
        sup.rpc.supervisor.startProcess("dying", False)
        # Watch the file only: a call on supervisord's socket would wake its loop.
        wait_for(partial(lambda n: path.read_bytes().count(b" status EXITED ") > n, run), 10)
    records = [r for r in iter_records(path.read_bytes()) if r.stream in ("stdout", "status")]
    lines = [r for r in records if r.stream == "stdout"]
    exits = [r for r in records if r.text.startswith("EXITED")]
    assert len(lines) == len(exits) == runs
    for line, exit in zip(lines, exits):
        written = float(line.text.split()[1])
        assert stamp_seconds(line.time) - written < 0.3, line
        assert stamp_seconds(exit.time) - written < 0.3, (line, exit)
        assert "exitstatus=3" in exit.text


def stamp_seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
