"""Helpers shared by several test modules: a clock, report recorders, a flaky ``os``, ...

Test modules import these from here, never from one another: a test module is
a list of behaviours, and borrowing its helpers ties two lists together
(tests/test_suite_rules.py holds it).  The harnesses that run a real supervisord
or sidecar live in :mod:`tests.supervisor` and :mod:`tests.sidecar` (the
``supervisord`` fixture of conftest.py starts and stops every supervisord), the
forwarder's in :mod:`tests.forwarder`, a real rsyslogd in :mod:`tests.rsyslog`;
a log written through the capture in :mod:`tests.logfile`; the histogram's
expected counts in :mod:`tests.histogram_counts`; the actions account in
:mod:`tests.credentials`.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import pytest

from supervisor_streamlog import cli
from supervisor_streamlog.capture import compressor as compressor_module
from supervisor_streamlog.capture import writer as writer_module
from supervisor_streamlog.ondisk.formats import Record

from .supervisor import CONF, program

T0 = 1795742625.0  # 2026-11-27T01:23:45+00:00


class Clock:
    """A clock that stands still until a test moves ``now``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Reports:
    """Records what the capture says (a :data:`~.core.ReportMessage`): one line each."""

    def __init__(self) -> None:
        self.messages: List[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)


class ProblemReports:
    """Records what a writer or compressor reports (a :data:`~.writer.ReportProblem`)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.calls.append((kind, message))

    @property
    def kinds(self) -> List[str]:
        return [kind for kind, _ in self.calls]


class FlakyOs:
    """Stands in for the ``os`` module inside the writer; scripts ``os.write``.

    ``fail_with`` (an errno) makes every write fail until it is set back to
    None.  Otherwise each step of ``plan`` is an ``int`` (write at most that
    many bytes) or an errno name (raise it); when the plan is empty, writes go
    through.  ``calls`` counts the writes tried.  ``space`` (bytes), when not
    None, plays a disk that fills: writes take what fits (a short write) and
    fail with ENOSPC once it is 0; a test frees space by raising it.
    """

    def __init__(self) -> None:
        self.plan: List[Union[int, str]] = []
        self.fail_with: Optional[int] = None
        self.space: Optional[int] = None
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.fail_with is not None:
            raise OSError(self.fail_with, os.strerror(self.fail_with))
        if self.plan:
            step = self.plan.pop(0)
            if isinstance(step, str):
                code = getattr(errno, step)
                raise OSError(code, os.strerror(code))
            return os.write(fd, bytes(data[:step]))
        if self.space is not None:
            if not self.space:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = os.write(fd, bytes(data[: self.space]))
            self.space -= written
            return written
        return os.write(fd, data)


def flaky_os(monkeypatch: pytest.MonkeyPatch) -> FlakyOs:
    """A :class:`FlakyOs` put in place of the writer's and the compressor's ``os`` for this test."""
    fake = FlakyOs()
    monkeypatch.setattr(writer_module, "os", fake)
    monkeypatch.setattr(compressor_module, "os", fake)
    return fake


def demo_copy(tmp_path: Path) -> Tuple[Path, Dict[str, str]]:
    """conf/demo.conf and its programs, copied so the demo writes under tmp_path/demo;
    and an environment whose python3 is the one running the tests."""
    shutil.copytree(CONF, tmp_path / "conf")
    (tmp_path / "demo" / "childlogs").mkdir(parents=True)
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return tmp_path / "conf" / "demo.conf", dict(os.environ, PATH=path)


class Ran(NamedTuple):
    """What a command run in this process did: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


class Cli:
    """``supervisor-streamlog ARGV...`` run in this process (``cli.main``), as the
    console script runs it: for argument and config checks, where a process of
    its own adds nothing but a second of start-up.  The ``cli`` fixture."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: object) -> Ran:
        self.capsys.readouterr()  # what the test printed before is not the command's
        try:
            code = cli.main([str(arg) for arg in argv])
        except SystemExit as exc:  # argparse's usage errors, --help, --version
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)


def supervisord_conf(tmp_path: Path, body: str) -> Path:
    """tmp_path/supervisord.conf: a minimal [supervisord] section, then ``body``."""
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\nlogfile = %(here)s/s.log\npidfile = %(here)s/s.pid\n" + body)
    return conf


def quiet_program(command: str, **options: object) -> Dict[str, object]:
    """A [program:x] as users write it: no *_events_enabled at all (the plugin turns them on)."""
    section = program(command, **options)
    del section["stdout_events_enabled"], section["stderr_events_enabled"]
    return section


def line_numbers(records: Sequence[Record], stream: str = "stdout") -> List[int]:
    """The numbers of ``children/emit.py``'s ``line NNNNNNNNN`` records on ``stream``."""
    return [int(r.data[5:14]) for r in records if r.stream == stream and r.data.startswith(b"line")]


class Dropped(NamedTuple):
    """A ``status STREAMLOG dropped ...`` record, read back."""

    bytes: int
    records: int
    first: str
    last: str
    time: str  # the record's own timestamp


def dropped_fields(record: Record) -> Optional[Dropped]:
    """The fields of a ``dropped`` record, or None for any other record."""
    if record.stream != "status" or not record.data.startswith(b"STREAMLOG dropped "):
        return None
    fields = dict(word.split("=", 1) for word in record.text.split()[2:] if "=" in word)
    return Dropped(
        int(fields["bytes"]),
        int(fields["records"]),
        fields.get("first", ""),
        fields.get("last", ""),
        record.time,
    )


def check_gaps(
    records: Sequence[Record], total: int, record_bytes: int, stream: str = "stdout"
) -> Tuple[List[int], List[Dropped]]:
    """Check that every numbered line ``0 .. total-1`` of ``stream`` (``emit.py``'s
    ``line NNNNNNNNN``) is either present once, in order, or inside exactly one
    ``dropped`` record, which stands where its lines would be, with their count,
    their bytes (each line's record is ``record_bytes`` long) and the times of
    the first and last of them.  Returns the numbers kept and the gaps."""
    kept: List[int] = []
    gaps: List[Dropped] = []
    previous: Optional[Record] = None  # the last record before the pending gap
    pending: Optional[Dropped] = None
    for record in records:
        gap = dropped_fields(record)
        if gap is not None:
            assert pending is None, "two dropped records next to each other: one gap"
            assert previous is None or previous.time <= gap.first, (previous, gap)
            assert gap.first <= gap.last and gap.time == gap.first, gap
            pending = gap
            continue
        if record.stream != stream or not record.data.startswith(b"line"):
            continue
        number = int(record.data[5:14])
        expected = kept[-1] + 1 if kept else 0
        if pending is not None:
            assert number - expected == pending.records, (expected, number, pending)
            assert pending.bytes == pending.records * record_bytes, pending
            assert pending.last <= record.time, (pending, record)
            gaps.append(pending)
            pending = None
        else:
            assert number == expected, f"line {expected} is missing with no dropped record"
        kept.append(number)
        previous = record
    expected = kept[-1] + 1 if kept else 0
    if pending is not None:
        assert total - expected == pending.records, (expected, total, pending)
        gaps.append(pending)
    else:
        assert expected == total, f"lines {expected}.. are missing with no dropped record"
    return kept, gaps


# The level the tail page gives real-world lines (stdout unless said): run through the
# page in tests/test_browser.py and through the sidecar's reading of the same rules
# (static/levels.json, by supervisor_streamlog/logread/levels.py) in tests/test_levels.py.
LEVEL_CASES = [
    # Python logging: the default layout, asctime layouts, uvicorn, tracebacks
    ("WARNING:root:disk almost full", "stdout", "warn"),
    ("ERROR:app.db:connection lost", "stderr", "error"),
    ('INFO:werkzeug:127.0.0.1 - - [03/Dec/2026 07:00:00] "GET / HTTP/1.1" 200 -', "stderr", "info"),
    (
        "DEBUG:urllib3.connectionpool:Starting new HTTPS connection (1): example.com:443",
        "stdout",
        "debug",
    ),
    ("CRITICAL:root:out of memory", "stderr", "fatal"),
    ("2026-12-03 07:00:00,123 INFO Started worker", "stdout", "info"),
    ("2026-12-03 07:00:00,123 - myapp.views - WARNING - slow query: 2.3s", "stdout", "warn"),
    ("Traceback (most recent call last):", "stderr", "error"),
    ("INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)", "stderr", "info"),
    (
        '{"asctime": "2026-12-03 07:00:00", "levelname": "WARNING", "message": "m"}',
        "stdout",
        "warn",
    ),
    # gunicorn
    ("[2026-12-03 07:00:00 +0000] [42] [INFO] Booting worker with pid: 42", "stderr", "info"),
    ("[2026-12-03 07:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:42)", "stderr", "fatal"),
    ("[2026-12-03 07:00:00 +0000] [42] [ERROR] Exception in worker process", "stderr", "error"),
    # celery
    (
        "[2026-12-03 07:00:00,123: WARNING/MainProcess] consumer: Connection to broker lost.",
        "stderr",
        "warn",
    ),
    (
        "[2026-12-03 07:00:00,456: INFO/ForkPoolWorker-1] Task tasks.add[abc] succeeded in 0.01s",
        "stderr",
        "info",
    ),
    (
        "[2026-12-03 07:00:00,789: ERROR/ForkPoolWorker-2] Task tasks.fail[def] raised: KeyError",
        "stderr",
        "error",
    ),
    # Django's runserver: no level
    ('[03/Dec/2026 07:00:00] "GET /health HTTP/1.1" 200 2', "stdout", "none"),
    # Go: log/slog's text and JSON handlers, the default logger, logrus, zap, glog, panics
    ('time=2026-12-03T07:00:00.000Z level=INFO msg="server started" addr=:8080', "stderr", "info"),
    (
        'time=2026-12-03T07:00:00.000Z level=ERROR msg="request failed" err="deadline exceeded"',
        "stderr",
        "error",
    ),
    ("2026/12/03 07:00:00 INFO server started addr=:8080", "stderr", "info"),
    ("2026/12/03 07:00:00 WARN cache miss rate high", "stderr", "warn"),
    ("2026/12/03 07:00:00 listening on :8080", "stderr", "stderr"),
    ('{"time":"2026-12-03T07:00:00Z","level":"WARN","msg":"slow","ms":1200}', "stdout", "warn"),
    ('time="2026-12-03T07:00:00Z" level=warning msg="disk usage 91%"', "stderr", "warn"),
    (
        '{"level":"error","ts":1764745200.123,"caller":"main.go:42","msg":"fetch","error":"EOF"}',
        "stderr",
        "error",
    ),
    ("E1203 07:00:00.123456   42 main.go:12] connection refused", "stderr", "error"),
    ("W1203 07:00:00.123456   42 main.go:12] retrying", "stderr", "warn"),
    ("I1203 07:00:00.123456   42 main.go:12] ready", "stderr", "info"),
    ("panic: runtime error: invalid memory address or nil pointer dereference", "stderr", "fatal"),
    # Node: pino and bunyan (numeric levels), winston, uncaught errors, npm
    (
        '{"level":30,"time":1764745200000,"pid":42,"hostname":"h","msg":"listening"}',
        "stdout",
        "info",
    ),
    (
        '{"level":50,"time":1764745200000,"pid":42,"msg":"boom","err":{"type":"Error"}}',
        "stdout",
        "error",
    ),
    ('{"name":"app","hostname":"h","pid":42,"level":60,"msg":"dying","v":0}', "stdout", "fatal"),
    ('{"name":"app","level":40,"msg":"hm","v":0}', "stdout", "warn"),
    ('{"name":"app","level":20,"msg":"details","v":0}', "stdout", "debug"),
    ('{"name":"app","level":10,"msg":"steps","v":0}', "stdout", "trace"),
    ('{"level":"info","message":"server up","service":"api"}', "stdout", "info"),
    ('{"message":"disk low","level":"warn"}', "stdout", "warn"),
    ("Error: Cannot find module 'express'", "stderr", "error"),
    ("npm ERR! code ELIFECYCLE", "stderr", "error"),
    # Java: logback, Spring Boot, java.util.logging, log4j, ECS JSON
    ("2026-12-03 07:00:00.123 ERROR [main] c.e.App - msg", "stdout", "error"),
    ("07:00:00.123 [main] INFO  com.example.App - Started App in 2.1 seconds", "stdout", "info"),
    (
        "2026-12-03T07:00:00.123Z  WARN 42 --- [main] o.s.b.w.e.tomcat.TomcatWebServer : msg",
        "stdout",
        "warn",
    ),
    ("SEVERE: Servlet.service() for servlet [dispatcher] threw exception", "stderr", "error"),
    ("FINE: cache loaded", "stderr", "debug"),
    ("[ERROR] 2026-12-03 07:00:00 Something broke", "stdout", "error"),
    (
        '{"@timestamp":"2026-12-03T07:00:00.123Z","log.level":"WARN","message":"x"}',
        "stdout",
        "warn",
    ),
    ('{"log":{"level":"debug","logger":"x"},"message":"y"}', "stdout", "debug"),
    # nginx: the error log's levels; the access log has none
    (
        '2026/12/03 07:00:00 [error] 12#12: *1 open() "/srv/x" failed (2: No such file)',
        "stderr",
        "error",
    ),
    (
        '2026/12/03 07:00:00 [warn] 12#12: the "user" directive makes sense only as root',
        "stderr",
        "warn",
    ),
    ("2026/12/03 07:00:00 [notice] 1#1: start worker processes", "stderr", "info"),
    (
        "2026/12/03 07:00:00 [crit] 12#12: *3 connect() to unix:/run/app.sock failed",
        "stderr",
        "fatal",
    ),
    (
        '127.0.0.1 - - [03/Dec/2026:07:00:00 +0000] "GET /api HTTP/1.1" 500 12 "-" "curl/8.0"',
        "stdout",
        "none",
    ),
    # uwsgi
    ("*** Starting uWSGI 2.0.23 (64bit) on [Thu Dec  3 07:00:00 2026] ***", "stderr", "stderr"),
    ("*** WARNING: you are running uWSGI without its master process manager ***", "stderr", "warn"),
    (
        "[pid: 42|app: 0|req: 1/1] 127.0.0.1 () {34 vars in 400 bytes} [Thu Dec  3 07:00:00 2026] "
        "GET / => generated 12 bytes in 1 msecs (HTTP/1.1 200) 2 headers in 79 bytes",
        "stderr",
        "stderr",
    ),
    # syslog priorities: severity = priority % 8
    ("<11>Dec  3 07:00:00 host app[42]: failed", "stdout", "error"),
    ("<12>1 2026-12-03T07:00:00Z host app 42 - - careful", "stdout", "warn"),
    ("<30>Dec  3 07:00:00 host systemd[1]: Started.", "stdout", "info"),
    ("<15>Dec  3 07:00:00 host app: details", "stdout", "debug"),
    ("<8>Dec  3 07:00:00 host kernel: gone", "stdout", "fatal"),
    # others: Rails, Rust's env_logger, PostgreSQL, Google Cloud, GELF
    ("E, [2026-12-03T07:00:00.123456 #42] ERROR -- : boom", "stdout", "error"),
    ("[2026-12-03T07:00:00Z ERROR my_app] failed", "stderr", "error"),
    ('2026-12-03 07:00:00.123 UTC [42] ERROR:  relation "x" does not exist', "stderr", "error"),
    ('{"severity":"CRITICAL","message":"x"}', "stdout", "fatal"),
    ('{"version":"1.1","host":"h","short_message":"x","level":3}', "stdout", "error"),
    # no level: lower-case words, paths, identifiers; unlevelled stderr is its own class
    ("an error occurred while reading", "stdout", "none"),
    ("Errors: 0, Warnings: 0", "stdout", "none"),
    ("GET /var/log/ERROR/file", "stdout", "none"),
    ("ERR_CONNECTION_REFUSED", "stdout", "none"),
    ("<html>", "stdout", "none"),
    ("something unlevelled", "stderr", "stderr"),
    ("{not json} ERROR here", "stdout", "error"),
    ('{"level": "info"', "stdout", "none"),
    ("\\x1b[31mERROR\\x1b[0m coloured", "stdout", "error"),
    ('{"level":"error","msg":"' + "z" * 3000 + '"}', "stdout", "error"),
]


PARSE_LIMIT = 2000  # levels.json's parseLimit: longer lines are read from their head

# Lines beyond LEVEL_CASES, for the paths the table does not reach (escapes as
# real ESC characters, logfmt, long and numeric JSON, JavaScript's own ways of
# reading text): tests/test_levels.py checks the sidecar's reading against these,
# tests/test_timeline.py the page. None: not a line (a status record).
LEVEL_EXTRA_CASES: List[Tuple[str, str, Optional[str]]] = [
    # escape sequences are not part of the visible text
    ("\x1b[1;31mERROR\x1b[0m: disk full", "stdout", "error"),
    ("\x1b[31mE\x1b[0mRROR split by colour", "stdout", "error"),
    ("2026-12-03 \x1b[33mWARNING\x1b[39m slow", "stdout", "warn"),
    ("\x1b]0;title\x07FATAL: gone", "stderr", "fatal"),
    ("\x1b[2K\rINFO progress", "stdout", "info"),  # a CR inside is white space
    ("\x1b[31mERROR\x1b[0m\r", "stdout", "error"),
    ('\x1b[0m{"level":"error","msg":"x"}', "stdout", "error"),
    # logfmt: the level field decides, quoted or not, words or numbers
    ('ts=1 level=error msg="boom"', "stdout", "error"),
    ('level="fatal" msg=x', "stdout", "fatal"),
    ("level=3 msg=x", "stdout", "error"),
    ("lvl=50 msg=x", "stdout", "error"),
    ("severity=crit", "stdout", "fatal"),
    ('msg="an error occurred" level=info', "stdout", "info"),
    ("msg=ERROR count=1", "stdout", "none"),  # logfmt without a level field: no text rules
    ('level=error msg="unterminated', "stdout", "error"),  # not logfmt: the text's field
    ("loglevel=error x=1", "stdout", "error"),
    # JSON: nested, numeric, not a level
    ('{"log":{"level":"error"}}', "stdout", "error"),
    ('{"level":55.5,"msg":"x"}', "stdout", "error"),
    ('{"level":1e400}', "stdout", "none"),  # Infinity in JavaScript: no level
    ('{"level":' + "9" * 400 + "}", "stdout", "none"),
    ('{"level":-0}', "stdout", "fatal"),
    ('{"level":true,"severity":"ERROR"}', "stdout", "error"),
    ('{"level":{"name":"error"}}', "stdout", "none"),
    ('{"level":NaN}', "stdout", "none"),  # not JSON: the text has no level either
    ('{"level":"info","msg":"ERROR in text"}', "stdout", "info"),
    ('{"msg":"x"} ERROR', "stderr", "error"),
    ("[1, 2] ERROR", "stdout", "error"),
    # a long JSON line is read from its head, not parsed
    ('{"level":"error","msg":"' + "z" * PARSE_LIMIT + '"}', "stdout", "error"),
    ('{"msg":"' + "z" * PARSE_LIMIT + '","level":"error"}', "stderr", "stderr"),
    # syslog priorities as JavaScript's Number() reads them
    ("<3>x", "stdout", "error"),
    ("< 3>x", "stdout", "error"),
    ("<-0>x", "stdout", "fatal"),
    ("<1e1>x", "stdout", "fatal"),
    ("<192>x", "stdout", "none"),
    # words that are not levels; stderr that is not an error
    ("reading from stderr failed? no: ok", "stderr", "stderr"),
    ("INFO: retrying after error", "stdout", "info"),
    ("2026-12-03 INFO request error=none", "stdout", "info"),
    ("[ERROR]", "stdout", "error"),
    ("[\u0131nfo] dotless", "stdout", "none"),  # JavaScript's /i folds ASCII only
    # the page's level is read on the BMP as code units: a smiley is two
    ("\U0001f600 ERROR", "stdout", "error"),
    ("\U0001f600" * 79 + " ERROR", "stdout", "none"),  # 158 units + " E": past the head
    ("status record", "status", None),
]
