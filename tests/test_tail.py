"""``supervisor-streamlog tail`` reads the capture's files, and follows them across rotation."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

from supervisor_streamlog import tail
from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.config import from_mapping


def write_conf(tmp_path: Path, **settings: str) -> Path:
    conf = tmp_path / "streamlog.conf"
    conf.write_text("[streamlog]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return conf


def capture_for(conf: Path) -> Capture:
    import configparser

    parser = configparser.RawConfigParser()
    parser.read(conf)
    return Capture(from_mapping(dict(parser.items("streamlog")), str(conf.parent)))


def test_tail_prints_the_last_records(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, logdir="%(here)s/logs")
    capture = capture_for(conf)
    capture.log("app", "app", "stdout", 7, b"".join(b"line %d\n" % n for n in range(100)))
    capture.log("app", "app", "stderr", 7, b"oops\n")
    capture.close()
    result = subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "tail", "-n", "3", "-c", str(conf), "app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 3
    assert lines[0].endswith("stdout line 98") and lines[2].endswith("stderr oops")


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
