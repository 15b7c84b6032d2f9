"""Listener mode with in-memory streams: the protocol, exactly as supervisord speaks it."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.capture.listener import IDLE_TICK, OK, READY, Listener, decode_data
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.ondisk.files import is_header
from supervisor_streamlog.ondisk.formats import Record, iter_records, reassemble

from .helpers import T0, Reports


def event(eventname: str, payload: str, serial: int = 1) -> str:
    """One event as supervisord writes it: ``len`` counts characters of the payload."""
    return (
        f"ver:3.0 server:supervisor serial:{serial} pool:streamlog poolserial:{serial} "
        f"eventname:{eventname} len:{len(payload)}\n{payload}"
    )


def log_event(
    data: str, name: str = "x", group: Optional[str] = None, channel: str = "stdout", pid: int = 1
) -> str:
    payload = f"processname:{name} groupname:{group or name} pid:{pid} channel:{channel}\n{data}"
    return event(f"PROCESS_LOG_{channel.upper()}", payload)


def state_event(state: str, name: str = "x", pid: Optional[int] = 1, **extra: str) -> str:
    fields = {"processname": name, "groupname": name, "from_state": "RUNNING"}
    fields.update(extra)
    if pid is not None:
        fields["pid"] = str(pid)
    return event(f"PROCESS_STATE_{state}", " ".join(f"{k}:{v}" for k, v in fields.items()))


def undecodable(data: bytes) -> str:
    """What supervisord sends for a chunk that is not UTF-8."""
    return f"Undecodable: {data!r}"


class Harness:
    def __init__(self, tmp_path: Path, rpc: Any = None, **settings: str) -> None:
        values = {"logdir": str(tmp_path / "logs"), "timezone": "utc"}
        values.update(settings)
        self.logdir = tmp_path / "logs"
        self.reports = Reports()
        self.capture = Capture(
            from_mapping(values, here=str(tmp_path), environ={}),
            report=self.reports,
            clock=lambda: T0,
        )
        self.stdout = io.StringIO()
        self.rpc = rpc

    def run(self, *events: str, raw: bytes = b"") -> int:
        data = "".join(events).encode("utf-8") + raw
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="\n")
        listener = Listener(self.capture, stdin, self.stdout, rpc=self.rpc, report=self.reports)
        return listener.run()

    def records(self, name: str = "x") -> List[Record]:
        path = self.logdir / f"{name}.log"
        found = list(iter_records(path.read_bytes())) if path.exists() else []
        return [r for r in found if not is_header(r.stream, r.data)]

    def answers(self) -> int:
        """How many events were answered; asserts stdout holds nothing else."""
        out = self.stdout.getvalue()
        assert out.startswith(READY)
        rest = out[len(READY) :]
        count = rest.count(OK + READY)
        assert rest == (OK + READY) * count, f"stray output on stdout: {out!r}"
        return count


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_events_back_to_back_with_crlf_and_non_ascii(harness: Harness) -> None:
    chunks = ["héllo wörld\r\n", "ünïcödé 😀 €\r\n\r\n", "名前\r", "\n", "plain\n"]
    assert harness.run(*[log_event(chunk) for chunk in chunks]) == 0
    assert harness.answers() == len(chunks)
    expected = "".join(chunks).encode("utf-8")
    assert reassemble(harness.records(), "stdout") == expected
    assert (harness.logdir / "x.log").read_bytes().count(b"\r\n") == 4
    assert harness.reports.messages == []


def test_len_counts_characters_not_bytes(harness: Harness) -> None:
    # 4-byte characters make bytes and characters differ most; a desync would
    # turn the second event's header into data.
    first, second = "😀" * 50 + "\n", "after\n"
    harness.run(log_event(first), log_event(second, channel="stderr"))
    parsed = harness.records()
    assert reassemble(parsed, "stdout") == first.encode()
    assert reassemble(parsed, "stderr") == second.encode()
    assert harness.answers() == 2


def test_undecodable_payloads_become_their_bytes(harness: Harness) -> None:
    harness.run(
        log_event(undecodable(b"bad \xff\xfe bytes\n")),
        # A multi-byte character cut between two chunks: each half is undecodable.
        log_event(undecodable(b"caf\xc3")),
        log_event(undecodable(b"\xa9\n")),
        log_event(undecodable(b"quotes ' \" and \\ \x00\x1b\n\xff")),
        log_event("\n"),
    )
    assert reassemble(harness.records(), "stdout") == (
        b"bad \xff\xfe bytes\ncaf\xc3\xa9\nquotes ' \" and \\ \x00\x1b\n\xff\n"
    )


def test_literal_undecodable_text_stays_text(harness: Harness) -> None:
    texts = ["Undecodable: b'abc'\n", "Undecodable: b'\\xc3\\xa9'\n", "Undecodable: nope\n"]
    harness.run(*[log_event(text) for text in texts])
    assert reassemble(harness.records(), "stdout") == "".join(texts).encode()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Undecodable: b'\\xff'", b"\xff"),
        ("Undecodable: b'abc'", b"Undecodable: b'abc'"),
        ("Undecodable: b'", b"Undecodable: b'"),
        ("Undecodable: b'\\xff' trailing", b"Undecodable: b'\\xff' trailing"),
        ("Undecodable: __import__('os')", b"Undecodable: __import__('os')"),
        ("ordinary", b"ordinary"),
    ],
)
def test_decode_data(text: str, expected: bytes) -> None:
    assert decode_data(text) == expected


def test_handler_exception_still_answers_ok_and_is_reported_once(harness: Harness) -> None:
    bad = log_event("x\n", channel="stdin")  # no such channel: the handler raises
    no_header = event("PROCESS_LOG_STDOUT", "no newline, so no payload header")
    harness.run(bad, bad, no_header, log_event("good\n"))
    assert harness.answers() == 4
    assert reassemble(harness.records(), "stdout") == b"good\n"
    assert len(harness.reports.messages) == 1  # one kind of failure, said once
    assert "PROCESS_LOG_STDIN" in harness.reports.messages[0]


def test_exception_in_capture_is_contained(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.capture.format, "records", broken)
    harness.run(log_event("a\n"), log_event("b\n"))
    assert harness.answers() == 2
    assert len(harness.reports.messages) == 1 and "boom" in harness.reports.messages[0]


@pytest.mark.parametrize(
    "header",
    [
        "garbage\n",
        "ver:3.0 eventname:PROCESS_LOG_STDOUT\n",  # no len
        "ver:3.0 eventname:PROCESS_LOG_STDOUT len:abc\n",
        "ver:3.0 eventname:PROCESS_LOG_STDOUT len:-5\n",
        "\n",
    ],
)
def test_header_without_len_exits_to_be_restarted_in_step(harness: Harness, header: str) -> None:
    # Without len the payload cannot be skipped: answering would desynchronise
    # supervisord for good.  The listener says why and exits; supervisord
    # restarts it and re-sends the event.
    status = harness.run(log_event("before\n"), header, log_event("after\n"))
    assert status == 2
    assert harness.answers() == 1  # the event before, and nothing for the bad one
    assert reassemble(harness.records(), "stdout") == b"before\n"
    assert len(harness.reports.messages) == 1
    assert repr(header) in harness.reports.messages[0] and "restarts" in harness.reports.messages[0]


def test_bad_header_tokens_with_a_len_are_skipped_in_step(harness: Harness) -> None:
    bad = "ver:3.0 :x eventname:PROCESS_LOG_STDOUT len:5\nhello"
    harness.run(bad, log_event("after\n"), log_event("again\n"))
    assert harness.answers() == 3
    assert reassemble(harness.records(), "stdout") == b"after\nagain\n"
    assert len(harness.reports.messages) == 1 and "malformed header" in harness.reports.messages[0]


def test_other_events_are_acknowledged_and_ignored(harness: Harness) -> None:
    harness.run(event("TICK_5", "when:1795742625"), log_event("x\n"))
    assert harness.answers() == 2
    assert [r.text for r in harness.records()] == ["x"]
    assert harness.reports.messages == []


def statuses(harness: Harness) -> List[str]:
    return [r.text for r in harness.records() if r.stream == "status"]


def test_state_events_make_status_records(harness: Harness) -> None:
    harness.run(
        state_event("STARTING", pid=None, tries="0"),
        state_event("RUNNING", pid=4242),
        log_event("working\n", pid=4242),
        state_event("EXITED", pid=4242, expected="0"),
        state_event("STARTING", pid=None, tries="1"),
        state_event("BACKOFF", pid=None, tries="1"),
        state_event("FATAL", pid=None),
    )
    assert statuses(harness) == [
        "STARTING tries=0",
        "RUNNING pid=4242",
        "EXITED pid=4242 expected=false",  # no rpc: no exit status
        "STARTING tries=1",
        "BACKOFF tries=1",
        "FATAL",
    ]
    assert harness.answers() == 7


class FakeRpc:
    def __init__(self, info: Dict[str, Any]) -> None:
        self.info = info
        self.asked: List[str] = []
        self.supervisor = self

    def getProcessInfo(self, name: str) -> Dict[str, Any]:
        self.asked.append(name)
        if isinstance(self.info, Exception):
            raise self.info
        return self.info

    def getAllProcessInfo(self) -> List[Dict[str, Any]]:
        if isinstance(self.info, Exception):
            raise self.info
        return [self.info] if "group" in self.info else []


def test_exit_status_comes_from_xmlrpc(tmp_path: Path) -> None:
    # What supervisord answers for an exited process: its pid is cleared.
    proxy = FakeRpc({"exitstatus": 3, "name": "x", "statename": "EXITED", "pid": 0})
    harness = Harness(tmp_path, rpc=lambda: proxy)
    harness.run(state_event("EXITED", pid=77, expected="1"))
    assert statuses(harness) == ["EXITED pid=77 exitstatus=3 expected=true"]
    assert proxy.asked == ["x:x"]


@pytest.mark.parametrize(
    "later",
    [
        {"statename": "RUNNING", "pid": 78},  # started again, and running
        {"statename": "STARTING", "pid": 78},
        {"statename": "STOPPING", "pid": 78},
        {"statename": "BACKOFF", "pid": 0},  # a later spawn attempt failed
        {"statename": "FATAL", "pid": 0},
        {"statename": "STOPPED", "pid": 0},  # a later run, stopped
    ],
)
def test_exit_status_of_a_later_run_is_not_written(tmp_path: Path, later: Dict[str, Any]) -> None:
    # The EXITED event of pid 77 waited in supervisord's queue while the program
    # was started again: supervisord's answer is about the later run.
    proxy = FakeRpc(dict({"exitstatus": 0, "name": "x"}, **later))
    harness = Harness(tmp_path, rpc=lambda: proxy)
    harness.run(state_event("EXITED", pid=77, expected="0"))
    assert statuses(harness) == ["EXITED pid=77 expected=false"]  # none rather than a wrong one
    assert harness.reports.messages == []


def test_failing_xmlrpc_is_reported_once_and_the_record_still_written(tmp_path: Path) -> None:
    proxy = FakeRpc(ConnectionRefusedError(111, "refused"))  # type: ignore[arg-type]
    harness = Harness(tmp_path, rpc=lambda: proxy)
    harness.run(state_event("EXITED", pid=1, expected="0"), state_event("EXITED", pid=2))
    assert statuses(harness) == ["EXITED pid=1 expected=false", "EXITED pid=2 expected=false"]
    assert len(harness.reports.messages) == 1
    assert harness.answers() == 2


def test_at_start_a_killed_compressions_tmp_is_finished_for_a_silent_program(
    tmp_path: Path,
) -> None:
    # The previous listener was killed while it gzipped quiet.log.1; quiet never
    # writes again, so no event would ever make its writer.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "quiet.log.1").write_bytes(b"2026-11-27T01:23:45.000000+00:00 stdout old\n")
    (logs / "quiet.log.1.gz.tmp").write_bytes(b"\x1f\x8b")
    proxy = FakeRpc({"name": "quiet", "group": "quiet", "statename": "EXITED", "pid": 0})
    harness = Harness(tmp_path, rpc=lambda: proxy, compress="true")
    compressor = harness.capture.compressor
    assert compressor is not None
    compressor.start()
    assert harness.run() == 0  # run() stops the compressor once its work is done
    assert sorted(p.name for p in logs.iterdir()) == ["quiet.log.1.gz"]
    assert gzip.decompress((logs / "quiet.log.1.gz").read_bytes()).endswith(b" stdout old\n")


def test_exited_flushes_the_unfinished_line_before_its_status(harness: Harness) -> None:
    harness.run(log_event("Password: "), state_event("EXITED", expected="0"))
    assert [(r.stream, r.partial, r.text) for r in harness.records()] == [
        ("stdout", True, "Password: "),
        ("status", False, "EXITED pid=1 expected=false"),
    ]


def test_eof_ends_run_cleanly_and_flushes_partial_lines(harness: Harness) -> None:
    assert harness.run(log_event("no newline yet"), log_event("err tail", channel="stderr")) == 0
    parsed = harness.records()
    assert [(r.stream, r.partial, r.text) for r in parsed] == [
        ("stdout", True, "no newline yet"),
        ("stderr", True, "err tail"),
    ]
    assert harness.answers() == 2


def test_eof_in_the_middle_of_a_payload(harness: Harness) -> None:
    whole = log_event("complete line\n")
    assert harness.run(log_event("first\n"), whole[:-6]) == 0
    assert reassemble(harness.records(), "stdout").startswith(b"first\n")


def test_empty_input_only_says_ready(harness: Harness) -> None:
    assert harness.run() == 0
    assert harness.stdout.getvalue() == READY


def test_groups_and_stderr_route_to_their_files(harness: Harness) -> None:
    harness.run(
        log_event("w0\n", name="worker_00", group="worker"),
        log_event("e\n", name="worker_00", group="worker", channel="stderr"),
    )
    path = harness.logdir / "worker" / "worker_00.log"
    assert [(r.stream, r.text) for r in iter_records(path.read_bytes())] == [
        ("status", "STREAMLOG file offset=0"),
        ("stdout", "w0"),
        ("stderr", "e"),
    ]


def test_wait_timeouts_drive_the_partial_line_timer(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    clock = [T0]
    harness.capture.clock = lambda: clock[0]
    data = log_event("prompt> ").encode()
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="\n")
    calls = []

    def wait(timeout: float) -> bool:
        calls.append(timeout)
        if len(calls) == 2:  # after the event: nothing comes for a while
            clock[0] = T0 + 1.0
            return False
        return True

    listener = Listener(harness.capture, stdin, harness.stdout, wait=wait, report=harness.reports)
    # Before EOF (which would flush anyway), the idle tick has written the partial line.
    original_serve = listener.serve_one
    seen: List[List[str]] = []

    def serve_one() -> bool:
        seen.append([r.text for r in harness.records()])
        return original_serve()

    listener.serve_one = serve_one  # type: ignore[method-assign]
    assert listener.run() == 0
    assert seen[-1] == ["prompt> "]  # written by the tick, before EOF was seen
    assert calls and all(timeout == IDLE_TICK for timeout in calls)
    assert harness.answers() == 1


def test_own_state_changes_are_not_logged(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    data = (state_event("RUNNING", name="streamlog") + state_event("RUNNING", name="x")).encode()
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="\n")
    listener = Listener(
        harness.capture,
        stdin,
        harness.stdout,
        report=harness.reports,
        own=("streamlog", "streamlog"),
    )
    assert listener.run() == 0
    assert not (harness.logdir / "streamlog.log").exists()
    assert statuses(harness) == ["RUNNING pid=1"]
    assert harness.answers() == 2
