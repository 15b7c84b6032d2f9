"""Listener mode against a real supervisord, real children and real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from supervisor_streamlog.formats import reassemble

from .supervisor import Supervisor, emit, program, wait_for

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


@pytest.fixture
def supervisor_factory(tmp_path: Path):
    started = []

    def make(**kwargs: object) -> Supervisor:
        sup = Supervisor(tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(sup)
        return sup.start()

    yield make
    for sup in started:
        sup.stop()


def test_hostile_bytes_arrive_byte_exact_per_stream(tmp_path: Path, supervisor_factory) -> None:
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
    sup = supervisor_factory(
        programs={"hostile": program(script(tmp_path, "hostile", steps))},
        streamlog={"partial_timeout": 60000},
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
