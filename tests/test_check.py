"""``supervisor-streamlog check`` on real supervisord configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import demo_copy
from .supervisor import CONF, ROOT, Supervisor, program, wait_for


def run_check(conf: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "check", "-c", str(conf)],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        cwd=ROOT,
        timeout=60,
    )


def test_demo_config_is_clean(tmp_path: Path) -> None:
    conf, env = demo_copy(tmp_path)
    result = run_check(conf, PATH=env["PATH"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mode: plugin" in result.stdout
    for name in ("web", "worker", "flaky"):
        assert (
            f"{name}:{name}: captures stdout+stderr -> {tmp_path}/demo/streamlog/{name}.log"
            in result.stdout
        )


def write_conf(tmp_path: Path, body: str) -> Path:
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\nlogfile = %(here)s/s.log\npidfile = %(here)s/s.pid\n" + body)
    return conf


LISTENER = """
[eventlistener:streamlog]
command = supervisor-streamlog listen -c %(here)s/supervisord.conf
events = PROCESS_LOG
"""


def test_lists_what_is_not_captured_and_why(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path,
        LISTENER
        + """
[streamlog]
programs = quiet noisy merged
[program:quiet]
command = /bin/true
[program:noisy]
command = /bin/true
stdout_events_enabled = true
[program:merged]
command = /bin/true
redirect_stderr = true
stdout_events_enabled = true
[program:other]
command = /bin/true
""",
    )
    result = run_check(conf)
    out = result.stdout
    assert result.returncode == 1  # valid, with warnings
    assert "quiet:quiet: captures nothing" in out
    assert "stdout: not captured: stdout_events_enabled = false" in out
    assert "noisy:noisy: captures stdout ->" in out
    assert "stderr: not captured: stderr_events_enabled = false" in out
    assert "stderr: merged into stdout (redirect_stderr = true)" in out
    assert "other:other: captures nothing" in out and "not matched by programs" in out
    assert "buffer_size = 10" in out and "events do not include PROCESS_STATE" in out


def test_not_wired_in_is_a_warning(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, "[program:app]\ncommand = /bin/true\n")
    result = run_check(conf)
    assert result.returncode == 1
    assert "mode: none" in result.stdout and "not wired into this file" in result.stdout


@pytest.mark.parametrize(
    "line, key",
    [
        ("maxbytes = lots", "maxbytes"),
        ("format = xml", "format"),
        ("backups = -1", "backups"),
        ("colour = blue", "colour"),
    ],
)
def test_bad_value_is_one_clear_line(tmp_path: Path, line: str, key: str) -> None:
    conf = write_conf(tmp_path, f"[streamlog]\n{line}\n")
    result = run_check(conf)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], result.stderr


def test_broken_supervisord_config_is_reported(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, "[program:x]\n")  # no command
    result = run_check(conf)
    assert result.returncode == 2 and "supervisord cannot use" in result.stderr


def test_listen_refuses_a_bad_config_with_one_line(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, "[streamlog]\nmax_line_length = 10\n")
    result = subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "listen", "-c", str(conf)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "max_line_length" in result.stderr


def test_plugin_snippet_captures_everything(tmp_path: Path) -> None:
    snippet = (
        (CONF / "streamlog-plugin.conf")
        .read_text()
        .replace("/var/log/supervisor/streamlog", str(tmp_path / "logs"))
    )
    conf = write_conf(
        tmp_path,
        "[unix_http_server]\nfile = %(here)s/s.sock\n"
        + snippet
        + "[program:app]\ncommand = /bin/true\nredirect_stderr = true\n",
    )
    result = run_check(conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mode: plugin" in result.stdout
    assert f"app:app: captures stdout -> {tmp_path}/logs/app.log" in result.stdout
    assert "stderr: merged into stdout (redirect_stderr = true)" in result.stdout


def test_plugin_without_http_server_is_a_warning(tmp_path: Path) -> None:
    snippet = (CONF / "streamlog-plugin.conf").read_text()
    conf = write_conf(tmp_path, snippet + "[program:app]\ncommand = /bin/true\n")
    result = run_check(conf)
    assert result.returncode == 1 and "needs an [unix_http_server]" in result.stdout


def test_check_says_what_supervisord_logs_at_start_up_in_the_same_words(tmp_path: Path) -> None:
    """The "capturing …" line: INFO in supervisord's log (not WARN), and the
    same words, as information, from ``check`` on the same file."""
    sup = Supervisor(
        tmp_path,
        {"web": program("/bin/sleep 30"), "other": program("/bin/sleep 30")},
        streamlog={"programs": "web"},
        base="plugin.conf",
    )
    sup.start()
    try:
        said = f"streamlog: capturing web into {sup.logdir}; not matched by programs: other"
        wait_for(lambda: said in sup.main_log(), 30, "the start-up message")
        logged = [line for line in sup.main_log().splitlines() if said in line]
        assert logged and all(" INFO " in line for line in logged), logged
    finally:
        sup.stop()
    result = run_check(sup.conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"info: {said}\n" in result.stdout
    assert "warning" not in result.stdout
