"""The demo of the README (conf/demo.conf) really runs and captures its programs."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from supervisor_streamlog.ondisk.formats import iter_records

from .helpers import demo_copy
from .supervisor import Supervisor, Supervisors, wait_for


def page(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200 and b"<title>streamlog</title>" in response.read()
    except OSError:
        return False


def test_demo_config_captures_all_three_programs(tmp_path: Path, supervisord: Supervisors) -> None:
    conf, env = demo_copy(tmp_path)
    logs = tmp_path / "demo" / "streamlog"
    supervisord(Supervisor.from_file(conf, tmp_path / "demo", logs, env))

    def records(name: str) -> list:
        path = logs / f"{name}.log"
        if not path.exists():
            return []
        data = path.read_bytes()
        return list(iter_records(data[: data.rfind(b"\n") + 1]))

    wait_for(lambda: any(r.stream == "stdout" for r in records("web")), 30, "web's lines")
    # worker prints progress dots without a newline: they show up as a piece.
    wait_for(
        lambda: any(r.partial and r.data.startswith(b"job 1: working") for r in records("worker")),
        30,
        "worker's unfinished line",
    )
    # flaky exits with status 3 after about 5 seconds.
    wait_for(
        lambda: any(
            re.fullmatch(r"EXITED pid=\d+ exitstatus=3 expected=false", r.text)
            for r in records("flaky")
        ),
        30,
        "flaky's exit record",
    )
    assert any(r.stream == "stderr" and b"cannot reach" in r.data for r in records("flaky"))
    # The sidecar serves the page the demo prints.
    wait_for(lambda: page("http://127.0.0.1:9002/"), 30, "the demo's tail page")
