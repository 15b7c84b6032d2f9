"""Capture: routing, status records, partial lines, batching, contained failures."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, List

import pytest

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.config import Config, from_mapping
from supervisor_streamlog.ondisk.files import is_header, process_files
from supervisor_streamlog.ondisk.formats import Record, iter_records, reassemble

from .helpers import T0, Clock, Reports, check_gaps, flaky_os


def config(tmp_path: Path, **values: str) -> Config:
    values.setdefault("logdir", str(tmp_path / "logs"))
    values.setdefault("timezone", "utc")
    return from_mapping(values, here=str(tmp_path), environ={})


def capture(tmp_path: Path, clock: Clock, reports: Reports, **values: str) -> Capture:
    return Capture(config(tmp_path, **values), report=reports, clock=clock)


def records(path: Path) -> List[Record]:
    """The records of a file, without its header (tested on its own)."""
    found = list(iter_records(path.read_bytes())) if path.exists() else []
    return [r for r in found if not is_header(r.stream, r.data)]


def lines(path: Path) -> List[str]:
    return [f"{r.stream}{'+' if r.partial else ''} {r.text}" for r in records(path)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reports() -> Reports:
    return Reports()


def test_routing_by_programs_and_file_layout(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, programs="web worker:*")
    cap.log("web", "web", "stdout", 10, b"hello web\n")
    cap.log("worker", "worker_00", "stdout", 11, b"hello worker 0\n")
    cap.log("worker", "worker_01", "stderr", 12, b"hello worker 1\n")
    cap.log("db", "db", "stdout", 13, b"not captured\n")
    cap.close()
    logs = tmp_path / "logs"
    assert sorted(str(p.relative_to(logs)) for p in logs.rglob("*.log")) == [
        "web.log",
        "worker/worker_00.log",
        "worker/worker_01.log",
    ]
    assert lines(logs / "web.log") == ["stdout hello web"]
    assert lines(logs / "worker" / "worker_01.log") == ["stderr hello worker 1"]
    assert cap.process("db", "db") is None
    assert reports.messages == []


def test_uncaptured_state_changes_write_nothing(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, programs="web")
    cap.state("db", "db", "RUNNING", 5, {"pid": 5})
    cap.close()
    assert not (tmp_path / "logs").exists()


def test_text_records_with_timestamp_and_stream(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports)
    clock.now = T0 + 0.678901
    cap.log("web", "web", "stdout", 42, b"GET / 200\nGET /a 404\n")
    cap.log("web", "web", "stderr", 42, b"warning\n")
    cap.close()
    # Every file begins with a header record giving its offset in the whole log.
    assert (tmp_path / "logs" / "web.log").read_bytes() == (
        b"2026-11-27T01:23:45.678901+00:00 status STREAMLOG file offset=0\n"
        b"2026-11-27T01:23:45.678901+00:00 stdout GET / 200\n"
        b"2026-11-27T01:23:45.678901+00:00 stdout GET /a 404\n"
        b"2026-11-27T01:23:45.678901+00:00 stderr warning\n"
    )


def test_chunks_cut_anywhere_are_reassembled_per_stream(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, max_line_length="80")
    out = "naïve café 😀\r\n".encode() * 5 + b"\xff\0\x1b[1m\n" + b"L" * 300 + b"\nend"
    err = b"e" * 90 + b"\n" + b"half"
    step = 7
    for index in range(0, max(len(out), len(err)), step):
        clock.now += 0.01
        cap.log("web", "web", "stdout", 1, out[index : index + step])
        cap.log("web", "web", "stderr", 1, err[index : index + step])
    cap.close()
    parsed = records(tmp_path / "logs" / "web.log")
    assert reassemble(parsed, "stdout") == out
    assert reassemble(parsed, "stderr") == err
    assert all(len(r.data) <= 80 for r in parsed)


def test_status_records(tmp_path: Path, clock: Clock, reports: Reports) -> None:
    cap = capture(tmp_path, clock, reports)
    cap.state("web", "web", "STARTING", 0, {"tries": 0})
    cap.state("web", "web", "RUNNING", 4242, {"pid": 4242})
    cap.state("web", "web", "EXITED", 4242, {"pid": 4242, "exitstatus": 1, "expected": False})
    cap.close()
    assert lines(tmp_path / "logs" / "web.log") == [
        "status STARTING tries=0",
        "status RUNNING pid=4242",
        "status EXITED pid=4242 exitstatus=1 expected=false",
    ]


def test_exit_flushes_the_unfinished_line_first(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, format="json")
    cap.state("web", "web", "RUNNING", 7, {"pid": 7})
    cap.log("web", "web", "stdout", 7, b"done\nbye")
    cap.log("web", "web", "stderr", 7, b"oops")
    cap.state("web", "web", "EXITED", 7, {"pid": 7, "expected": True})
    path = tmp_path / "logs" / "web.log"
    # Written at once (not at close): the exit is the end of those lines.
    assert lines(path) == [
        "status RUNNING pid=7",
        "stdout done",
        "stdout+ bye",
        "stderr+ oops",
        "status EXITED pid=7 expected=true",
    ]
    assert all(r.pid == 7 for r in records(path))
    cap.close()


def test_starting_flushes_the_previous_run_and_pid_follows(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, format="json")
    cap.log("web", "web", "stdout", 7, b"old run")
    cap.state("web", "web", "STARTING", 0, {})
    cap.state("web", "web", "RUNNING", 8, {"pid": 8})
    cap.log("web", "web", "stdout", 8, b"new run\n")
    cap.close()
    parsed = [
        json.loads(line)
        for line in (tmp_path / "logs" / "web.log").read_bytes().split(b"\n")
        if line
    ]
    assert [(r["stream"], r["text"], r["pid"]) for r in parsed] == [
        ("status", "STREAMLOG file offset=0", 0),
        ("stdout", "old run", 7),
        ("status", "STARTING", 0),
        ("status", "RUNNING pid=8", 8),
        ("stdout", "new run", 8),
    ]
    assert parsed[1]["partial"] is True


def test_tick_flushes_a_partial_line_after_partial_timeout(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, partial_timeout="500")
    path = tmp_path / "logs" / "web.log"
    cap.log("web", "web", "stdout", 1, b"Password: ")
    cap.tick(T0 + 0.4)
    assert lines(path) == []
    cap.tick(T0 + 0.5)
    assert lines(path) == ["stdout+ Password: "]
    cap.tick(T0 + 2.0)
    assert lines(path) == ["stdout+ Password: "]  # written once
    clock.now = T0 + 3.0
    cap.log("web", "web", "stdout", 1, b"ok\n")
    cap.close()
    parsed = records(path)
    assert [r.text for r in parsed] == ["Password: ", "ok"]
    assert reassemble(parsed, "stdout") == b"Password: ok\n"


def test_a_partial_line_that_keeps_growing_waits_from_its_first_byte(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, partial_timeout="500")
    path = tmp_path / "logs" / "web.log"
    for step in range(4):
        clock.now = T0 + step * 0.2
        cap.log("web", "web", "stdout", 1, b".")
    # A progress bar that never ends its line still shows up within the timeout
    # (the tick in the fourth log() call, 0.6 s after the first dot).
    assert lines(path) == ["stdout+ ...."]


def test_log_calls_tick_so_other_processes_partials_are_flushed(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, partial_timeout="500")
    cap.log("a", "a", "stdout", 1, b"prompt> ")
    clock.now = T0 + 1.0
    cap.log("b", "b", "stdout", 2, b"busy\n")
    assert lines(tmp_path / "logs" / "a.log") == ["stdout+ prompt> "]


def test_flush_interval_batches_writes(tmp_path: Path, clock: Clock, reports: Reports) -> None:
    cap = capture(tmp_path, clock, reports, flush_interval="200")
    path = tmp_path / "logs" / "web.log"
    cap.log("web", "web", "stdout", 1, b"one\n")
    clock.now = T0 + 0.1
    cap.log("web", "web", "stdout", 1, b"two\n")
    assert lines(path) == []  # batched
    cap.tick(T0 + 0.15)
    assert lines(path) == []
    cap.tick(T0 + 0.2)
    assert lines(path) == ["stdout one", "stdout two"]
    clock.now = T0 + 0.3
    cap.log("web", "web", "stdout", 1, b"three\n")
    assert lines(path) == ["stdout one", "stdout two"]
    # An exit writes at once: the process's last words are not held back.
    cap.state("web", "web", "EXITED", 1, {"expected": False})
    assert lines(path)[2:] == ["stdout three", "status EXITED expected=false"]
    cap.log("web", "web", "stdout", 1, b"four\n")
    cap.close()
    assert lines(path)[-1] == "stdout four"


def test_flush_interval_zero_writes_every_chunk(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports)
    cap.log("web", "web", "stdout", 1, b"now\n")
    assert lines(tmp_path / "logs" / "web.log") == ["stdout now"]
    cap.close()


def test_close_writes_unfinished_lines(tmp_path: Path, clock: Clock, reports: Reports) -> None:
    cap = capture(tmp_path, clock, reports, flush_interval="1000")
    cap.log("web", "web", "stdout", 1, b"a\nb")
    cap.close()
    assert lines(tmp_path / "logs" / "web.log") == ["stdout a", "stdout+ b"]


def test_rotation_through_capture_keeps_records_whole(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, maxbytes="1KB", backups="100")
    sent = b"".join(b"line %04d\n" % n for n in range(500))
    for index in range(0, len(sent), 333):
        cap.log("web", "web", "stdout", 1, sent[index : index + 333])
    cap.close()
    logs = tmp_path / "logs"
    names = sorted(logs.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix != ".log" else 0)
    blob = b""
    for path in names:
        data = path.read_bytes()
        assert len(data) <= 1024 and data.endswith(b"\n")
        blob += data
    assert reassemble(iter_records(blob), "stdout") == sent


def test_utc_and_local_timestamps(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture(tmp_path, clock, reports, timezone="utc")
    cap.log("u", "u", "stdout", 1, b"x\n")
    cap.close()
    assert records(tmp_path / "logs" / "u.log")[0].time == "2026-11-27T01:23:45.000000+00:00"
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    try:
        cap = capture(tmp_path, clock, reports, timezone="local")
        cap.log("l", "l", "stdout", 1, b"x\n")
        cap.state("l", "l", "RUNNING", 1, {"pid": 1})
        cap.close()
    finally:
        monkeypatch.undo()
        time.tzset()
    stamps = [r.time for r in records(tmp_path / "logs" / "l.log")]
    assert stamps == ["2026-11-27T06:53:45.000000+05:30"] * 2


def test_exception_inside_is_contained_and_reported_once_per_kind(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture(tmp_path, clock, reports)

    def broken_records(*args: Any) -> bytes:
        raise RuntimeError("format bug")

    def broken_status(*args: Any) -> bytes:
        raise KeyError("status bug")

    monkeypatch.setattr(cap.format, "records", broken_records)
    monkeypatch.setattr(cap.format, "status", broken_status)
    for _ in range(5):
        cap.log("web", "web", "stdout", 1, b"line\n")  # never raises
    assert len(reports.messages) == 1
    assert "RuntimeError" in reports.messages[0] and "format bug" in reports.messages[0]
    for _ in range(3):
        cap.state("web", "web", "RUNNING", 1, {"pid": 1})
    assert len(reports.messages) == 2  # a different kind of failure: reported once too
    assert "KeyError" in reports.messages[1]
    cap.log("web", "web", "stdin", 1, b"x\n")  # a stream that does not exist
    assert len(reports.messages) == 3
    assert cap.failures == 5 + 3 + 1
    monkeypatch.undo()
    # Capture goes on working once the cause is gone.
    cap.log("web", "web", "stdout", 1, b"fine\n")
    cap.close()
    assert lines(tmp_path / "logs" / "web.log")[-1] == "stdout fine"
    assert cap.stats()["internal_errors"] == 9


def test_tick_and_close_contain_exceptions(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = capture(tmp_path, clock, reports)
    cap.log("web", "web", "stdout", 1, b"pending")

    def broken(*args: Any) -> bytes:
        raise ValueError("boom")

    monkeypatch.setattr(cap.format, "records", broken)
    cap.tick(T0 + 10)
    cap.tick(T0 + 20)
    cap.log("web", "web", "stdout", 1, b"more\n")
    cap.log("web", "web", "stdout", 1, b"partial")
    cap.close()
    assert len(reports.messages) == 3  # one per place it happened, each said once
    for where, message in zip(["tick", "log", "close"], reports.messages):
        assert f" {where}" in message and "boom" in message


def test_disk_full_is_reported_once_then_recovery_and_nothing_lost(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = flaky_os(monkeypatch)
    cap = capture(tmp_path, clock, reports)
    path = tmp_path / "logs" / "web.log"
    cap.log("web", "web", "stdout", 1, b"before\n")
    fake.fail_with = errno.ENOSPC
    for n in range(5):
        clock.now += 0.01
        cap.log("web", "web", "stdout", 1, b"during %d\n" % n)
    assert len(reports.messages) == 1 and "No space left" in reports.messages[0]
    fake.fail_with = None
    cap.tick(clock.now + 1)  # the timer retries without waiting for more output
    assert [r.text for r in records(path)] == ["before"] + [f"during {n}" for n in range(5)]
    assert len(reports.messages) == 2 and "again" in reports.messages[1]
    # A second outage is reported again.
    fake.fail_with = errno.ENOSPC
    cap.log("web", "web", "stdout", 1, b"x\n")
    assert len(reports.messages) == 3
    fake.fail_with = None
    cap.close()
    assert records(path)[-1].text == "x"


def test_tiny_write_buffer_drops_with_a_notice_record(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = flaky_os(monkeypatch)
    cap = capture(tmp_path, clock, reports, write_buffer="100")
    fake.fail_with = errno.ENOSPC
    for n in range(20):
        cap.log("web", "web", "stdout", 1, b"line %02d\n" % n)
    fake.fail_with = None
    cap.tick(clock.now + 1)
    cap.close()
    parsed = records(tmp_path / "logs" / "web.log")
    notices = [r for r in parsed if r.stream == "status"]
    assert len(notices) == 1 and notices[0].text.startswith("STREAMLOG dropped bytes=")
    # The oldest and the newest are kept, the notice stands for those between.
    assert [r.text for r in parsed] == ["line 00", notices[0].text, "line 19"]
    assert "records=18 " in notices[0].text


def numbered(n: int) -> bytes:
    """``emit.py``'s line ``n``: 100 bytes, newline included."""
    head = b"line %09d " % n
    return head + b"x" * (99 - len(head)) + b"\n"


def test_full_disk_freed_twice_leaves_one_dropped_record_at_each_gap(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = flaky_os(monkeypatch)
    cap = capture(tmp_path, clock, reports, write_buffer="8KB")
    total, per_chunk, sent = 3000, 5, 0

    def flood(chunks: int) -> None:
        nonlocal sent
        for _ in range(chunks):
            clock.now += 0.001
            data = b"".join(numbered(n) for n in range(sent, sent + per_chunk))
            cap.log("web", "web", "stdout", 1, data)
            sent += per_chunk

    fake.space = 30_000  # room for some, then the disk is full
    flood(200)
    fake.space += 12_000  # space freed: some of what is held goes out, then full again
    flood(200)
    fake.space += 20_000  # and once more
    flood(200)
    assert sent == total
    cap.state("web", "web", "EXITED", 1, {"pid": 1, "exitstatus": 0, "expected": True})
    fake.space = None  # the disk is back
    cap.tick(clock.now + 1)
    cap.close()
    parsed = records(tmp_path / "logs" / "web.log")
    # 32-byte timestamp, " stdout ", 99 bytes of text, newline.
    kept, gaps = check_gaps(parsed, total, 32 + 8 + 100)
    assert len(gaps) >= 3, gaps  # one per stretch the full buffer could not hold
    assert kept[-1] == total - 1  # the newest were kept ...
    assert parsed[-1].text.startswith("EXITED")  # ... and the exit after them
    # ... and the oldest the disk refused: how the outage began.
    first_gap = next(i for i, n in enumerate(kept) if n != i)
    assert first_gap * 140 > 30_000 + 2_000
    assert cap.stats()["processes"]["web:web"]["dropped_bytes"] == sum(g.bytes for g in gaps)


def test_tick_reopens_after_the_log_directory_was_deleted(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports)
    cap.log("grp", "web", "stdout", 1, b"one\n")
    shutil.rmtree(tmp_path / "logs")
    cap.tick(T0 + 5)
    clock.now = T0 + 5
    cap.log("grp", "web", "stdout", 1, b"two\n")
    cap.close()
    assert lines(tmp_path / "logs" / "grp" / "web.log") == ["stdout two"]
    assert len(reports.messages) == 1 and "moved or deleted" in reports.messages[0]


def test_reopen_follows_an_external_logrotate(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, flush_interval="1000")
    path = tmp_path / "logs" / "web.log"
    cap.log("web", "web", "stdout", 1, b"one\n")
    cap.tick(T0 + 1.0)
    clock.now = T0 + 1.0
    cap.log("web", "web", "stdout", 1, b"two\n")  # batched
    os.rename(path, str(path) + ".rotated")
    cap.reopen()  # flushes the batch to the file it was meant for, then reopens
    cap.log("web", "web", "stdout", 1, b"three\n")
    cap.close()
    assert lines(Path(str(path) + ".rotated")) == ["stdout one", "stdout two"]
    assert lines(path) == ["stdout three"]


def test_stats(tmp_path: Path, clock: Clock, reports: Reports) -> None:
    cap = capture(tmp_path, clock, reports, programs="web")
    cap.log("web", "web", "stdout", 1, b"abc\n")
    cap.log("db", "db", "stdout", 1, b"abc\n")
    stats = cap.stats()
    cap.close()
    assert stats["internal_errors"] == 0
    processes = stats["processes"]
    assert isinstance(processes, dict) and list(processes) == ["web:web"]
    assert processes["web:web"]["bytes_written"] > 0


def test_empty_chunk_is_ignored(tmp_path: Path, clock: Clock, reports: Reports) -> None:
    cap = capture(tmp_path, clock, reports)
    cap.log("web", "web", "stdout", 1, b"")
    cap.close()
    assert not (tmp_path / "logs" / "web.log").exists()
    assert reports.messages == []


def json_objects(path: Path) -> List[Any]:
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


def test_json_records_carry_program_group_and_host(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    """Every JSON record says whose it is, so a file shipper needs no path parsing;
    ``host`` only when ``hostname`` is set."""
    cap = capture(tmp_path, clock, reports, format="json", hostname="web1.example")
    cap.state("worker", "worker_01", "RUNNING", 8, {"pid": 8})
    cap.log("worker", "worker_01", "stdout", 8, b"one\ntwo\nhalf")
    cap.log("worker", "worker_01", "stderr", 8, "é\xff\n".encode("latin-1"))
    cap.state("worker", "worker_01", "EXITED", 8, {"pid": 8, "expected": True})
    cap.log("web", "web", "stdout", 9, b"hello\n")
    cap.close()
    logs = tmp_path / "logs"
    worker = json_objects(logs / "worker" / "worker_01.log")
    assert [(o["stream"], o["text"]) for o in worker] == [
        ("status", "STREAMLOG file offset=0"),
        ("status", "RUNNING pid=8"),
        ("stdout", "one"),
        ("stdout", "two"),
        ("stderr", "\ufffd\ufffd"),
        ("stdout", "half"),  # the unfinished line, written at the exit
        ("status", "EXITED pid=8 expected=true"),
    ]
    identity = {(o["program"], o["group"], o["host"]) for o in worker}
    assert identity == {("worker_01", "worker", "web1.example")}
    assert worker[0]["notice"] == "file" and worker[0]["offset"] == 0
    web = json_objects(logs / "web.log")
    assert {(o["program"], o["group"], o["host"]) for o in web} == {("web", "web", "web1.example")}
    cap2 = capture(tmp_path / "b", clock, reports, format="json")
    cap2.log("web", "web", "stdout", 9, b"hello\n")
    cap2.close()
    for obj in json_objects(tmp_path / "b" / "logs" / "web.log"):
        assert (obj["program"], obj["group"]) == ("web", "web") and "host" not in obj


def test_text_records_have_no_identity_even_with_hostname(
    tmp_path: Path, clock: Clock, reports: Reports
) -> None:
    cap = capture(tmp_path, clock, reports, hostname="web1.example")
    clock.now = T0 + 0.678901
    cap.log("web", "web", "stdout", 42, b"GET / 200\n")
    cap.close()
    assert (tmp_path / "logs" / "web.log").read_bytes() == (
        b"2026-11-27T01:23:45.678901+00:00 status STREAMLOG file offset=0\n"
        b"2026-11-27T01:23:45.678901+00:00 stdout GET / 200\n"
    )


def test_json_headers_of_rotated_files_and_dropped_notices_are_structured(
    tmp_path: Path, clock: Clock, reports: Reports, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = flaky_os(monkeypatch)
    cap = capture(tmp_path, clock, reports, format="json", write_buffer="400", maxbytes="1KB")
    fake.fail_with = errno.ENOSPC
    for n in range(20):
        clock.now += 0.001
        cap.log("web", "web", "stdout", 1, b"line %02d\n" % n)
    fake.fail_with = None
    cap.tick(clock.now + 1)
    for n in range(20, 40):
        cap.log("web", "web", "stdout", 1, b"line %02d\n" % n)
    cap.close()
    files = process_files(str(tmp_path / "logs" / "web.log"))
    assert len(files) >= 2 and files[0].base == 0
    assert all(f.base == before.end for before, f in zip(files, files[1:]))
    objs = []
    for log in files:
        found = json_objects(Path(log.path))
        # Each file opens with its header; its offset is where the file begins.
        assert found[0]["notice"] == "file" and found[0]["offset"] == log.base
        assert found[0]["text"] == f"STREAMLOG file offset={log.base}"
        objs += found
    dropped = [o for o in objs if o.get("notice") == "dropped"]
    assert len(dropped) == 1
    notice = dropped[0]
    assert notice["text"] == (
        f"STREAMLOG dropped bytes={notice['bytes']} records={notice['records']}"
        f" first={notice['first']} last={notice['last']} reason=ENOSPC"
    )
    assert notice["reason"] == "ENOSPC" and notice["time"] == notice["first"]
    kept = [int(o["text"][5:]) for o in objs if o["stream"] == "stdout"]
    assert len(kept) + notice["records"] == 40
    assert all(o["program"] == "web" and o["group"] == "web" for o in objs)
