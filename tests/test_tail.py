"""``supervisor-streamlog tail`` reads the capture's files, and follows them across rotation."""

from __future__ import annotations

import gzip
import io
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, NamedTuple, Tuple

import pytest

from supervisor_streamlog import tail
from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.cli import main
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.logread import follow
from supervisor_streamlog.ondisk.files import header_text
from supervisor_streamlog.ondisk.formats import make_format

from .supervisor import wait_for


def write_conf(tmp_path: Path, **settings: str) -> Path:
    conf = tmp_path / "streamlog.conf"
    conf.write_text("[streamlog]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return conf


def capture_for(conf: Path) -> Capture:
    import configparser

    parser = configparser.RawConfigParser()
    parser.read(conf)
    return Capture(from_mapping(dict(parser.items("streamlog")), str(conf.parent)))


class Result(NamedTuple):
    """What one ``supervisor-streamlog tail`` run gave: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str


#: ``cli(conf, *args)``: ``supervisor-streamlog tail -c CONF ARGS...``, run in-process.
Tail = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Tail:
    """``tail`` with a config file, run in-process by the console script's own
    entry (:func:`supervisor_streamlog.cli.main`), its output read by capsys: an
    argument or option check needs no process of its own (a real terminal,
    Ctrl-C and the process's exit code are tested through a subprocess)."""

    def run(conf: Path, *args: str) -> Result:
        capsys.readouterr()  # what came before is not this run's
        try:
            code = main(["tail", "-c", str(conf), *args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def test_tail_prints_the_last_records(tmp_path: Path, cli: Tail) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"".join(b"line %d\n" % n for n in range(100)))
    capture.log("app", "app", "stderr", 7, b"oops\n")
    capture.close()
    result = cli(conf, "-n", "3", "app")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 3
    assert lines[0].endswith("stdout line 98") and lines[2].endswith("stderr oops")


class HandLog:
    """A log written by hand, to put ``tail -f`` in one exact rotation situation:
    records appended to the live file, rotations as the writer does them
    (backups renamed one index up, a new live file whose header says where it
    begins), a backup compressed to ``.gz`` (another inode)."""

    FORM = make_format("text", utc=True)
    STAMP = FORM.stamp(1_790_000_000)

    def __init__(self, live: Path) -> None:
        self.live = live
        self.base = 0
        self._begin()

    def _begin(self) -> None:
        self.live.write_bytes(self.FORM.notice(self.STAMP, header_text(self.base)))

    def append(self, *texts: bytes) -> None:
        with open(self.live, "ab") as handle:
            for text in texts:
                handle.write(self.FORM.records(self.STAMP, "stdout", 1, [(text, False)]))

    def backup(self, index: int) -> Path:
        return Path(f"{self.live}.{index}")

    def rotate(self) -> None:
        self.base += self.live.stat().st_size
        top = 1
        while self.backup(top).exists() or Path(f"{self.backup(top)}.gz").exists():
            top += 1
        for n in range(top - 1, 0, -1):
            for suffix in ("", ".gz"):
                if Path(f"{self.backup(n)}{suffix}").exists():
                    os.rename(f"{self.backup(n)}{suffix}", f"{self.backup(n + 1)}{suffix}")
        os.rename(self.live, self.backup(1))
        self._begin()

    def compress(self, index: int) -> None:
        plain = self.backup(index)
        with gzip.open(f"{plain}.gz", "wb") as packed:
            packed.write(plain.read_bytes())
        plain.unlink()


def test_a_rotation_during_the_walk_of_backups_reads_no_file_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Following, ``tail -f`` drains the file it was reading, then finds what
    was written since by walking the files (the live one, .1, .2, ...).  A
    rotation in the middle of that walk renames the backup just opened to the
    next index, where a walk meets it again: it is read once (tail's own
    follower read a whole file twice, about one run in ten of the test below)."""
    log = HandLog(tmp_path / "app.log")
    log.append(b"Y0\n")
    live = tail.LiveLog(str(log.live))  # reading Y, at its end
    try:
        assert live.poll() == []
        log.append(b"Y\n")
        log.rotate()  # Y is .1
        log.append(b"X\n")
        log.rotate()  # Y is .2, X .1, L live
        log.append(b"L\n")
        opened = follow._open_source
        rotated: List[str] = []

        def rotating(name: str, index: int) -> object:
            found = opened(name, index)
            if index == 1 and found is not None and not rotated:  # right after .1 was opened
                rotated.append(name)
                log.rotate()  # Y is .3, X .2, L .1, M live
                log.append(b"M\n")
            return found

        monkeypatch.setattr(follow, "_open_source", rotating)
        got = [record.data for record in live.poll()]
        assert rotated == [str(log.backup(1))]
        assert got == [b"Y", b"X", b"L", b"M"]
    finally:
        live.close()


@pytest.mark.parametrize("let_go", [False, True], ids=["held", "let-go"])
def test_a_backup_compressed_since_is_still_the_file_tail_was_reading(
    tmp_path: Path, let_go: bool
) -> None:
    """With ``compress = true`` the file ``tail -f`` was reading may be a ``.gz``
    (another inode) by its next look, and a walk may meet a backup plain and
    then compressed: files are known by their header's base offset, so the
    rest of the file is read from where it stopped, and nothing twice --
    whether the follower kept the file open (as tail does) or let go of it
    between the two looks and has to find it again among the backups."""
    log = HandLog(tmp_path / "app.log")
    log.append(b"Y1\n")
    live = tail.LiveLog(str(log.live))  # tail had read up to here
    try:
        assert live.poll() == []
        if let_go:
            live.close()
        log.append(b"Y2\n")
        log.rotate()
        log.append(b"X\n")
        x = log.live.read_bytes()
        log.rotate()
        log.append(b"L\n")
        log.compress(2)  # Y, compressed since
        with gzip.open(f"{log.backup(3)}.gz", "wb") as packed:  # X met again, compressed
            packed.write(x)
        assert [record.data for record in live.poll()] == [b"Y2", b"X", b"L"]
    finally:
        live.close()


def test_tail_follows_across_rotation_without_loss_or_duplicate(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs", maxbytes="4KB", backups="50")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"start\n")
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor_streamlog",
            "tail",
            "-f",
            "-n",
            "1",
            "-c",
            str(conf),
            "app",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: List[str] = []
    done = threading.Event()
    started = threading.Event()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(line.rstrip("\n").split(" ", 2)[2])
            started.set()
            if seen[-1] == "line 1999":
                done.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "the follower printed nothing"
        for n in range(2000):
            capture.log("app", "app", "stdout", 7, b"line %d\n" % n)
            if n % 50 == 0:  # give the follower a chance to be mid-file at rotations
                done.wait(0.01)
        assert done.wait(60), f"follower stopped at {seen[-1:]}"
    finally:
        follower.kill()
        follower.wait()
        capture.close()
    assert len(list((tmp_path / "logs").glob("app.log.*"))) > 10
    assert seen == ["start"] + [f"line {n}" for n in range(2000)]


def test_tail_finds_supervisord_conf_like_supervisorctl(tmp_path: Path) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[streamlog]\nlogdir = %(here)s/logs\n")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"found it\n")
    capture.close()
    result = subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "tail", "app"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.endswith("stdout found it\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "tail", "app"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=empty,
    )
    if not any(
        Path(p).exists() for p in ("/etc/supervisord.conf", "/etc/supervisor/supervisord.conf")
    ):
        assert result.returncode == 2 and "use -c FILE" in result.stderr


def test_a_long_record_being_written_is_printed_once_whole(tmp_path: Path) -> None:
    """tail -f started while a record longer than 64 KiB is half written: the
    record is printed once, whole, when its newline comes (it used to be
    printed cut, then its rest as a line of its own)."""
    conf = write_conf(tmp_path, logdir="%(here)s/logs", maxbytes="0", max_line_length="1MB")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"before\n")
    capture.close()
    live = tmp_path / "logs" / "app.log"
    whole = live.read_bytes().split(b"\n")[1].replace(b"before", b"y" * 100_000)
    with open(live, "ab") as handle:  # the first 90 KB of a record, no newline yet
        handle.write(whole[:90_000])
    config = from_mapping({"logdir": str(tmp_path / "logs")}, str(tmp_path), environ={})
    out = io.StringIO()
    follower = threading.Thread(
        target=tail.run,
        args=(config, ["app"], 5, True, out),
        kwargs={"poll": 0.02, "deadline": time.monotonic() + 1.5},
    )
    follower.start()
    time.sleep(0.5)
    with open(live, "ab") as handle:
        handle.write(whole[90_000:] + b"\n")
    follower.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith(" stdout before")
    assert lines[1].endswith(" stdout " + "y" * 100_000)


# ---------------------------------------------------------------- several processes, one timeline

T0 = 1_796_000_000.0  # 2026-11-30, fixed so the tests can name times


def stamp(when: float) -> str:
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="microseconds")


def texts(output: str) -> List[str]:
    """The TEXT of each line (after TIME, NAME, STREAM) of a several-process tail."""
    return [line.split(" ", 3)[3] for line in output.splitlines()]


def test_backlog_of_several_processes_is_one_timeline(tmp_path: Path, cli: Tail) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    for n in range(20):  # web at even tenths, worker at odd ones, grp:job at every fifth
        capture.log("web", "web", "stdout", 7, b"web %d\n" % n, now=T0 + n * 0.2)
        capture.log("worker", "worker", "stderr", 8, b"worker %d\n" % n, now=T0 + n * 0.2 + 0.1)
    for n in range(4):
        capture.log("grp", "job", "stdout", 9, b"job %d\n" % n, now=T0 + n + 0.05)
    capture.close()
    result = cli(conf, "-n", "3", "web", "worker", "grp:job")
    assert result.returncode == 0, result.stderr
    assert texts(result.stdout) == [
        "job 1",
        "job 2",
        "job 3",
        "web 17",
        "worker 17",
        "web 18",
        "worker 18",
        "web 19",
        "worker 19",
    ]
    names = [line.split(" ")[1:3] for line in result.stdout.splitlines()]
    assert names[0] == ["grp:job", "stdout"] and names[4] == ["worker", "stderr"]
    assert names[3] == ["web", "stdout"]  # supervisorctl's name: web, not web:web


def test_one_process_keeps_its_own_order_when_its_clock_goes_back(
    tmp_path: Path, cli: Tail
) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("a", "a", "stdout", 7, b"a1\n", now=T0 + 10)
    capture.log("a", "a", "stdout", 7, b"a2\n", now=T0 + 1)  # clock set back
    capture.log("b", "b", "stdout", 8, b"b1\n", now=T0 + 5)
    capture.close()
    result = cli(conf, "a", "b")
    assert texts(result.stdout) == ["b1", "a1", "a2"]


def test_pieces_are_joined_and_a_trailing_prompt_shown(tmp_path: Path, cli: Tail) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"half a ", now=T0)
    capture.tick(now=T0 + 5)  # written out as a piece (stdout+)
    capture.log("app", "app", "stderr", 7, b"between\n", now=T0 + 6)
    capture.log("app", "app", "stdout", 7, b"line\n", now=T0 + 7)
    capture.log("app", "app", "stdout", 7, b"Password: ", now=T0 + 8)
    capture.tick(now=T0 + 20)
    capture.close()
    assert b"stdout+ half a " in (tmp_path / "logs" / "app.log").read_bytes()
    result = cli(conf, "-n", "all", "app")
    lines = result.stdout.splitlines()
    assert lines == [
        f"{stamp(T0 + 6)} stderr between",  # in the order lines ended: the file's
        f"{stamp(T0 + 5)} stdout half a line",  # stamped as its first piece
        f"{stamp(T0 + 20)} stdout Password: ",
    ]


def test_since_until_grep_and_n(tmp_path: Path, cli: Tail) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    for n in range(30):  # one a minute
        capture.log(
            "app", "app", "stdout", 7, b"tick %d %s\n" % (n, b"ERROR" * (n % 7 == 0)), T0 + n * 60
        )
    capture.close()

    def run(*args: str) -> List[str]:
        result = cli(conf, *args, "app")
        assert result.returncode == 0, result.stderr
        return [line.split(" ", 2)[2] for line in result.stdout.splitlines()]

    assert len(run()) == 10 and run()[0] == "tick 20 "
    assert len(run("-n", "all")) == 30 and run("-n", "0") == []
    local = datetime.fromtimestamp(T0 + 25 * 60).strftime("%Y-%m-%d %H:%M")
    since = run("--since", local)
    assert since[0] == "tick 25 " and len(since) == 5  # --since alone: everything since
    rfc = datetime.fromtimestamp(T0 + 3 * 60, timezone.utc).isoformat()
    until = datetime.fromtimestamp(T0 + 5 * 60).astimezone().isoformat()
    assert run("--since", rfc, "--until", until) == ["tick 3 ", "tick 4 ", "tick 5 "]
    assert run("-n", "2", "--since", rfc, "--until", until) == ["tick 4 ", "tick 5 "]
    assert run("--grep", "ERROR", "-n", "all") == [f"tick {n} ERROR" for n in (0, 7, 14, 21, 28)]
    assert run("--grep", "ERROR") == [f"tick {n} ERROR" for n in (0, 7, 14, 21, 28)]
    assert run("-n", "2", "--grep", "error", "-i") == ["tick 21 ERROR", "tick 28 ERROR"]
    assert run("-n", "2", "--grep", "error") == []
    assert run("-E", "--grep", r"^tick 1\d ERROR$") == ["tick 14 ERROR"]
    assert run("--grep", "1.") == []  # a substring, not a regex
    assert run("--since=-5m") == [] and run("--since", "1h ago") == []
    bad = cli(conf, "--since", "yesterday-ish", "app")
    assert bad.returncode == 2 and "not a time" in bad.stderr


def test_parse_when() -> None:
    now = T0
    assert tail.parse_when("-5m", now) == now - 300
    assert tail.parse_when("10m", now) == now - 600
    assert tail.parse_when("1h ago", now) == now - 3600
    assert tail.parse_when("2 days ago", now) == now - 2 * 86400
    assert tail.parse_when("30s", now) == now - 30
    assert tail.parse_when("now", now) == now
    assert (
        tail.parse_when("2026-12-02T14:05:00Z", now)
        == datetime(2026, 12, 2, 14, 5, tzinfo=timezone.utc).timestamp()
    )
    assert tail.parse_when("2026-12-02 14:05", now) == datetime(2026, 12, 2, 14, 5).timestamp()
    assert tail.parse_when("2026-12-02", now) == datetime(2026, 12, 2).timestamp()


# ---------------------------------------------------------------- escapes and colours

HOSTILE = (
    b"\x1b]0;owned\x07 \x1b[2J\x1b[H \x1b[32mgreen\x1b[0m bell\x07 back\x08 cr\r "
    b"\xc2\x9b2J tab\tend\n"
)


def hostile_log(tmp_path: Path) -> Path:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, HOSTILE, now=T0)
    capture.log("app", "app", "stderr", 7, b"oops\n", now=T0 + 1)
    capture.close()
    return conf


def assert_harmless(output: str) -> None:
    for raw in ("\x1b]", "\x1b[2J", "\x1b[H", "\x07", "\x08", "\r", "\x9b"):
        assert raw not in output
    assert "\\x1b]0;owned\\x07" in output and "\\x1b[2J\\x1b[H" in output
    assert "\\x07 back\\x08 cr\\x0d \\x9b2J tab\tend" in output


def test_colours_kept_on_a_terminal_other_escapes_shown_as_text(tmp_path: Path) -> None:
    conf = hostile_log(tmp_path)
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "supervisor_streamlog", "tail", "-c", str(conf), "app"],
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(60) == 0
    finally:
        os.close(master)
    output = b"".join(chunks).decode().replace("\r\n", "\n")  # the pty's own line ends
    assert "\x1b[32mgreen\x1b[0m" in output and "\x1b[31mstderr\x1b[0m oops" in output
    assert_harmless(output)


def test_colours_stripped_to_a_pipe_unless_asked(tmp_path: Path, cli: Tail) -> None:
    conf = hostile_log(tmp_path)
    piped = cli(conf, "app").stdout
    assert " green bell" in piped and "\x1b[32m" not in piped
    assert piped.splitlines()[1].endswith(" stderr oops")
    assert_harmless(piped)
    forced = cli(conf, "--color=always", "app").stdout
    assert "\x1b[32mgreen\x1b[0m" in forced
    assert_harmless(forced)
    never = cli(conf, "--color", "never", "app").stdout
    assert never == piped


# ---------------------------------------------------------------- following several processes


class Follower:
    """``tail -f`` run as a subprocess; its lines with the time each arrived."""

    def __init__(self, conf: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor_streamlog", "tail", "-f", "-c", str(conf), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: List[Tuple[float, str]] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> List[Tuple[float, str]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.lines) >= count, timeout), self.lines
            return list(self.lines)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def test_follow_orders_live_lines_within_the_window_and_never_holds_longer(
    tmp_path: Path,
) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("web", "web", "stdout", 7, b"web old\n", now=T0)
    capture.log("worker", "worker", "stdout", 8, b"worker old\n", now=T0 - 1)
    follower = Follower(conf, "--window", "1500", "-n", "1", "web", "worker")
    try:
        assert [line for _, line in follower.wait_for(2)][0].endswith("worker stdout worker old")
        now = time.time()
        capture.log("web", "web", "stdout", 7, b"web late\n", now=now)
        time.sleep(0.4)  # worker's earlier line reaches the file 0.4 s later
        written = time.monotonic()
        capture.log("worker", "worker", "stderr", 8, b"worker early\n", now=now - 0.2)
        lines = follower.wait_for(4)
        assert [text.split(" ", 3)[3] for _, text in lines[2:]] == ["worker early", "web late"]
        # web's line waited for the window (1.5 s from when tail read it), not
        # for ever: both come out together, about when it ran out.
        assert lines[3][0] - written < 1.5 + 1.0
        # A line alone is held the window, then printed.
        capture.log("web", "web", "stdout", 7, b"alone\n")
        start = time.monotonic()
        arrived, text = follower.wait_for(5)[4]
        assert text.endswith("web stdout alone")
        assert 1.0 < arrived - start < 1.5 + 1.0
    finally:
        follower.close()
        capture.close()


def test_follow_short_window_prints_promptly(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("worker", "worker", "stdout", 8, b"ready\n")
    follower = Follower(conf, "-n", "1", "web", "worker")  # default window: 50 ms
    try:
        # Following starts where the backlog ends: once it is printed, web's
        # line (its file not there yet) is a live one.
        assert follower.wait_for(1)[0][1].endswith("worker stdout ready")
        start = time.monotonic()
        capture.log("web", "web", "stdout", 7, b"quick\n")
        arrived, text = follower.wait_for(2)[1]
        assert text.endswith("web stdout quick") and arrived - start < 1.0
    finally:
        follower.close()
        capture.close()


def test_ctrl_c_while_following_exits_cleanly(tmp_path: Path) -> None:
    """Ctrl-C while following: tail exits 0, quietly (no traceback), having
    printed every line it read (Ctrl-C while the backlog is read exits 130)."""
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("worker", "worker", "stdout", 8, b"ready\n")
    follower = Follower(conf, "-n", "1", "app", "worker")
    try:
        assert follower.wait_for(1)[0][1].endswith("worker stdout ready")
        capture.log("app", "app", "stdout", 7, b"live\n")
        # Printed from the follow loop: tail is following when it shows.
        assert follower.wait_for(2)[1][1].endswith("app stdout live")
        follower.process.send_signal(signal.SIGINT)
        assert follower.process.wait(30) == 0
        assert follower.process.stderr is not None and follower.process.stderr.read() == ""
        assert len(follower.wait_for(2)) == 2
    finally:
        follower.close()
        capture.close()


def test_follow_shows_a_prompt_once_and_joins_pieces(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"ready\n")
    config = from_mapping({"logdir": str(tmp_path / "logs")}, str(tmp_path), environ={})
    out = io.StringIO()
    follower = threading.Thread(
        target=tail.run,
        args=(config, ["app"], 5, True, out),
        kwargs={"poll": 0.02, "deadline": time.monotonic() + 3.0, "window": 0.3},
    )
    follower.start()
    time.sleep(0.3)
    capture.log("app", "app", "stdout", 7, b"joined ")
    capture.tick(now=time.time() + 5)  # a piece: stdout+
    capture.log("app", "app", "stdout", 7, b"line\n")  # its rest, well within the window
    time.sleep(0.5)
    capture.log("app", "app", "stdout", 7, b"Password: ")
    capture.tick(now=time.time() + 5)
    # Nothing follows: the prompt is shown once the window has passed.
    wait_for(lambda: out.getvalue().endswith(" stdout Password: \n"), 2.0, "the prompt")
    shown = out.getvalue()
    capture.log("app", "app", "stdout", 7, b"hunter2\n")
    follower.join()
    capture.close()
    assert shown.endswith(" stdout Password: \n")
    texts = [line.split(" ", 2)[2] for line in out.getvalue().splitlines()]
    assert texts == ["ready", "joined line", "Password: ", "hunter2"]


def test_backlog_ending_in_a_prompt_is_shown_once_when_following(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"$ ")
    capture.tick(now=time.time() + 5)  # the prompt, a piece, ends the log
    config = from_mapping({"logdir": str(tmp_path / "logs")}, str(tmp_path), environ={})
    out = io.StringIO()
    follower = threading.Thread(
        target=tail.run,
        args=(config, ["app"], 5, True, out),
        kwargs={"poll": 0.02, "deadline": time.monotonic() + 1.5, "window": 0.2},
    )
    follower.start()
    wait_for(lambda: out.getvalue().endswith(" stdout $ \n"), 1.2, "the prompt of the backlog")
    shown = out.getvalue()
    capture.log("app", "app", "stdout", 7, b"ls\n")
    follower.join()
    capture.close()
    assert shown.endswith(" stdout $ \n")
    assert [line.split(" ", 2)[2] for line in out.getvalue().splitlines()] == ["$ ", "ls"]


def test_all_and_since_reach_into_backups(tmp_path: Path, cli: Tail) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs", maxbytes="4KB", backups="50")
    capture = capture_for(conf)
    for n in range(1000):
        capture.log("app", "app", "stdout", 7, b"line %d\n" % n, now=T0 + n)
    capture.close()
    assert len(list((tmp_path / "logs").glob("app.log.*"))) > 5
    everything = cli(conf, "-n", "all", "app").stdout.splitlines()
    assert [line.split(" ", 2)[2] for line in everything] == [f"line {n}" for n in range(1000)]
    since = datetime.fromtimestamp(T0 + 100, timezone.utc).isoformat()
    until = datetime.fromtimestamp(T0 + 109, timezone.utc).isoformat()
    window = cli(conf, "--since", since, "--until", until, "app").stdout.splitlines()
    assert [line.split(" ", 2)[2] for line in window] == [f"line {n}" for n in range(100, 110)]
    last = cli(conf, "-n", "3", "--until", until, "app").stdout.splitlines()
    assert [line.split(" ", 2)[2] for line in last] == ["line 107", "line 108", "line 109"]
    assert cli(conf, "-f", "--until", until, "app").returncode == 2


def test_json_records_are_merged_and_joined_the_same(tmp_path: Path, cli: Tail) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs", format="json")
    capture = capture_for(conf)
    capture.log("web", "web", "stdout", 7, b"half ", now=T0)
    capture.tick(now=T0 + 1)  # "partial": true
    capture.log("worker", "worker", "stdout", 8, b"worker\n", now=T0 + 2)
    capture.log("web", "web", "stdout", 7, b"whole\n", now=T0 + 3)
    capture.log("web", "web", "stderr", 7, b"\x1b[2Jlater\n", now=T0 + 4)
    capture.close()
    assert b'"partial": true' in (tmp_path / "logs" / "web.log").read_bytes()
    result = cli(conf, "web", "worker")
    assert result.stdout.splitlines() == [
        f"{stamp(T0 + 1)} web stdout half whole",
        f"{stamp(T0 + 2)} worker stdout worker",
        f"{stamp(T0 + 4)} web stderr \\x1b[2Jlater",
    ]
