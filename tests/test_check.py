"""``supervisor-streamlog check`` on real supervisord configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Cli, demo_copy, supervisord_conf
from .supervisor import CONF, Supervisor, Supervisors, program, wait_for


def test_demo_config_is_clean(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    conf, env = demo_copy(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    result = cli("check", "-c", conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mode: plugin" in result.stdout
    for name in ("web", "worker", "flaky"):
        assert (
            f"{name}:{name}: captures stdout+stderr -> {tmp_path}/demo/streamlog/{name}.log"
            in result.stdout
        )


LISTENER = """
[eventlistener:streamlog]
command = supervisor-streamlog listen -c %(here)s/supervisord.conf
events = PROCESS_LOG
"""


def test_lists_what_is_not_captured_and_why(tmp_path: Path, cli: Cli) -> None:
    conf = supervisord_conf(
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
    result = cli("check", "-c", conf)
    out = result.stdout
    assert result.returncode == 1  # valid, with warnings
    assert "quiet:quiet: captures nothing" in out
    assert "stdout: not captured: stdout_events_enabled = false" in out
    assert "noisy:noisy: captures stdout ->" in out
    assert "stderr: not captured: stderr_events_enabled = false" in out
    assert "stderr: merged into stdout (redirect_stderr = true)" in out
    assert "other:other: captures nothing" in out and "not matched by programs" in out
    assert "buffer_size = 10" in out and "events do not include PROCESS_STATE" in out


def test_not_wired_in_is_a_warning(tmp_path: Path, cli: Cli) -> None:
    conf = supervisord_conf(tmp_path, "[program:app]\ncommand = /bin/true\n")
    result = cli("check", "-c", conf)
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
def test_bad_value_is_one_clear_line(tmp_path: Path, line: str, key: str, cli: Cli) -> None:
    conf = supervisord_conf(tmp_path, f"[streamlog]\n{line}\n")
    result = cli("check", "-c", conf)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], result.stderr


def test_broken_supervisord_config_is_reported(tmp_path: Path, cli: Cli) -> None:
    conf = supervisord_conf(tmp_path, "[program:x]\n")  # no command
    result = cli("check", "-c", conf)
    assert result.returncode == 2 and "supervisord cannot use" in result.stderr


def test_listen_refuses_a_bad_config_with_one_line(tmp_path: Path, cli: Cli) -> None:
    conf = supervisord_conf(tmp_path, "[streamlog]\nmax_line_length = 10\n")
    result = cli("listen", "-c", conf)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "max_line_length" in result.stderr


def test_plugin_snippet_captures_everything(tmp_path: Path, cli: Cli) -> None:
    snippet = (
        (CONF / "streamlog-plugin.conf")
        .read_text()
        .replace("/var/log/supervisor/streamlog", str(tmp_path / "logs"))
    )
    conf = supervisord_conf(
        tmp_path,
        "[unix_http_server]\nfile = %(here)s/s.sock\n"
        + snippet
        + "[program:app]\ncommand = /bin/true\nredirect_stderr = true\n",
    )
    result = cli("check", "-c", conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mode: plugin" in result.stdout
    assert f"app:app: captures stdout -> {tmp_path}/logs/app.log" in result.stdout
    assert "stderr: merged into stdout (redirect_stderr = true)" in result.stdout


def test_plugin_without_http_server_is_a_warning(tmp_path: Path, cli: Cli) -> None:
    snippet = (CONF / "streamlog-plugin.conf").read_text()
    conf = supervisord_conf(tmp_path, snippet + "[program:app]\ncommand = /bin/true\n")
    result = cli("check", "-c", conf)
    assert result.returncode == 1 and "needs an [unix_http_server]" in result.stdout


def test_check_says_what_supervisord_logs_at_start_up_in_the_same_words(
    tmp_path: Path, cli: Cli, supervisord: Supervisors
) -> None:
    """The "capturing …" line: INFO in supervisord's log (not WARN), and the
    same words, as information, from ``check`` on the same file."""
    sup = supervisord(
        Supervisor(
            tmp_path,
            {"web": program("/bin/sleep 30"), "other": program("/bin/sleep 30")},
            streamlog={"programs": "web"},
            base="plugin.conf",
        )
    )
    said = f"streamlog: capturing web into {sup.logdir}; not matched by programs: other"
    wait_for(lambda: said in sup.main_log(), 30, "the start-up message")
    logged = [line for line in sup.main_log().splitlines() if said in line]
    assert logged and all(" INFO " in line for line in logged), logged
    sup.stop()
    result = cli("check", "-c", sup.conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"info: {said}\n" in result.stdout
    assert "warning" not in result.stdout
