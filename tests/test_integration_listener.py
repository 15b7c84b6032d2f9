"""Listener mode against a real supervisord, real children and real files."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from supervisor_streamlog.ondisk.formats import reassemble

from .helpers import line_numbers
from .supervisor import Supervisor, Supervisors, emit, program, wait_for

STAMP = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d (stdout|stderr|status)\+? "
)


def script(tmp_path: Path, name: str, steps: list) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(steps))
    return emit("script", path)


def out(data: bytes) -> list:
    return ["out", data.hex()]


def err(data: bytes) -> list:
    return ["err", data.hex()]


PAUSE = ["sleep", 0.15]  # long enough for supervisord to read a separate chunk


def test_hostile_bytes_arrive_byte_exact_per_stream(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    euro = "€".encode()  # three bytes, split across two chunks below
    long_line = b"L" * 100_000 + b"\n"
    stdout_steps = [
        out(b"plain line\n"),
        out(b"cut " + euro[:1]),
        PAUSE,
        out(euro[1:] + b" joined\n"),
        out(b"bad \xff\xfe bytes\n"),
        PAUSE,
        out(b"crlf line\r\n"),
        out(b"lone\rcarriage\n"),
        out(b"nul\x00inside\n"),
        out(b"\x1b[31mred\x1b[0m ansi\n"),
        PAUSE,
        out(long_line),
        PAUSE,
        out(b"no newline at the end"),
    ]
    stderr_steps = [err(b"to stderr 1\n"), PAUSE, err(b"to stderr \xc3"), PAUSE, err(b"\xa9 2\n")]
    steps = [s for pair in zip(stdout_steps, stderr_steps + [PAUSE] * 20) for s in pair]
    steps.append(["exit", 3])
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"hostile": program(script(tmp_path, "hostile", steps))},
            streamlog={"partial_timeout": 60000},
        )
    )
    sup.wait_state("hostile", "EXITED")
    wait_for(
        lambda: any(
            r.stream == "status" and r.text.startswith("EXITED") for r in sup.records("hostile")
        ),
        20,
        "EXITED record",
    )
    records = sup.records("hostile")
    expected_out = b"".join(bytes.fromhex(s[1]) for s in stdout_steps if s[0] == "out")
    expected_err = b"".join(bytes.fromhex(s[1]) for s in stderr_steps if s[0] == "err")
    assert reassemble(records, "stdout") == expected_out
    assert reassemble(records, "stderr") == expected_err
    # Every line of the file is a record with a timestamp and a stream tag.
    for line in sup.read_bytes("hostile").split(b"\n")[:-1]:
        assert STAMP.match(line), line[:80]
    # The 100 kB line is split into marked pieces of at most max_line_length.
    pieces = [r for r in records if r.stream == "stdout" and r.data.startswith(b"LLLL")]
    assert len(pieces) == 7 and all(len(p.data) <= 16384 for p in pieces)
    assert [p.partial for p in pieces] == [True] * 6 + [False]
    # The unfinished last line was written, marked, when the process exited,
    # before the EXITED record, which carries the exit status.
    last = next(i for i, r in enumerate(records) if r.data == b"no newline at the end")
    assert records[last].partial
    exited = next(i for i, r in enumerate(records) if r.text.startswith("EXITED"))
    assert last < exited
    assert re.fullmatch(r"EXITED pid=\d+ exitstatus=3 expected=false", records[exited].text)
    states = [r.text.split()[0] for r in records if r.stream == "status"]
    assert states[:2] == ["STARTING", "RUNNING"] and "EXITED" in states
    assert "Traceback" not in sup.listener_err()
    # The listener does not log its own lifecycle as if it were a program.
    assert not (sup.logdir / "streamlog.log").exists()


@pytest.mark.parametrize("compress", [False, True])
def test_burst_across_many_rotated_files_complete_in_order(
    tmp_path: Path, supervisord: Supervisors, compress: bool
) -> None:
    count = 200_000
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"burst": program(emit("burst", count, 100, "block"))},
            streamlog={"maxbytes": "1MB", "backups": 200, "compress": str(compress).lower()},
        )
    )
    sup.wait_state("burst", "EXITED")
    wait_for(
        lambda: any(r.text.startswith("EXITED") for r in sup.records("burst")[-3:]),
        60,
        "all of the burst in the files",
    )
    if compress:
        wait_for(
            lambda: all(p.suffix in (".gz", ".log") for p in sup.log_files("burst")),
            60,
            "every backup compressed",
        )
    files = sup.log_files("burst")
    assert len(files) >= 20
    for path in files:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert len(data) <= 1024 * 1024
        # Each file starts with a record and ends at a record boundary.
        assert data.endswith(b"\n") and STAMP.match(data)
    assert line_numbers(sup.records("burst")) == list(range(count))


def runs(records: list) -> list:
    """Split a ticker's line numbers into runs (each run starts again at 0)."""
    result: list = []
    for n in line_numbers(records):
        if n == 0 or not result:
            result.append([])
        result[-1].append(n)
    return result


def assert_runs_contiguous(records: list) -> None:
    for numbers in runs(records):
        assert numbers == list(range(len(numbers))), "gap or duplicate within a run"


def test_sighup_reload_and_listener_restart_lose_nothing(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={
                "ticker": program(
                    emit("tick", 0.005),
                    autorestart="true",
                    environment=f"EMIT_COUNT_FILE={tmp_path}/counts",
                )
            },
            streamlog={"maxbytes": "64KB", "backups": 100},
        )
    )
    wait_for(lambda: len(line_numbers(sup.records("ticker"))) > 200, 30, "ticker lines")

    # A listener restart: supervisord buffers the events meanwhile.
    sup.rpc.supervisor.stopProcess("streamlog:streamlog")
    before = len(line_numbers(sup.records("ticker")))
    sup.rpc.supervisor.startProcess("streamlog:streamlog")
    wait_for(lambda: len(line_numbers(sup.records("ticker"))) > before + 200, 30, "more lines")
    assert len(runs(sup.records("ticker"))) == 1  # the ticker itself did not restart
    assert_runs_contiguous(sup.records("ticker"))

    # A supervisord reload restarts everything, the listener last.
    sup.reload()
    wait_for(
        lambda: len(runs(sup.records("ticker"))) == 2 and len(runs(sup.records("ticker"))[1]) > 200,
        60,
        "the ticker's second run",
    )
    sup.stop()
    records = sup.records("ticker")
    assert_runs_contiguous(records)
    written = [int(n) for n in (tmp_path / "counts").read_text().split()]
    assert [len(run) for run in runs(records)] == written
    states = [r.text.split()[0] for r in records if r.stream == "status"]
    # supervisord stops the listener pool before it delivers the last STOPPED
    # event of a shutdown or reload: a documented listener-mode limitation.
    assert states[:6] == ["STARTING", "RUNNING", "STOPPING", "STARTING", "RUNNING", "STOPPING"]
    # No record lost its timestamp or was cut.
    for line in sup.read_bytes("ticker").split(b"\n")[:-1]:
        assert STAMP.match(line)


def test_listener_stop_writes_unfinished_lines(tmp_path: Path, supervisord: Supervisors) -> None:
    steps = [out(b"line one\n"), out(b"Password: "), ["sleep", 3600]]
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"prompt": program(script(tmp_path, "prompt", steps))},
            streamlog={"partial_timeout": 3_600_000},
        )
    )
    wait_for(lambda: any(r.data == b"line one" for r in sup.records("prompt")), 20, "line one")
    sup.rpc.supervisor.stopProcess("streamlog:streamlog")  # SIGTERM to the listener
    records = sup.records("prompt")
    assert records[-1].data == b"Password: " and records[-1].partial
    assert "Traceback" not in sup.listener_err()


def test_prompt_shows_up_after_partial_timeout(tmp_path: Path, supervisord: Supervisors) -> None:
    steps = [out(b"Continue? [y/N] "), ["sleep", 3600]]
    sup = supervisord(
        Supervisor(
            tmp_path,
            programs={"prompt": program(script(tmp_path, "prompt", steps))},
            streamlog={"partial_timeout": 200},
        )
    )
    wait_for(
        lambda: any(r.data == b"Continue? [y/N] " and r.partial for r in sup.records("prompt")),
        20,
        "the prompt, marked partial",
    )
