"""The central page in real headless Chromium (Debian's): a central logdir
written by the real ``supervisor-streamlog receive`` (fed on stdin as rsyslog's
omprog would feed it; the whole chain through rsyslogd is test_central.py's),
served by a real ``serve`` with ``layout = hosts``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from playwright.sync_api import Browser, Page, expect

from .browsing import checked_page
from .page import TailPage
from .sidecar import free_port, get
from .supervisor import wait_for

HOSTS = ("hostA", "hostB")


def omprog_line(host: str, number: int, microsecond: int) -> bytes:
    """What rsyslog's streamlog_receive template gives for one forwarded stdout record."""
    offset = 100 + number * 40
    sd = (
        f'[streamlog@32473 group="web" stream="stdout" offset="{offset}" end="{offset + 40}"'
        ' file="web.log"]'
    )
    return json.dumps(
        {
            "host": host,
            "app": "web",
            "procid": "42",
            "msgid": "stdout",
            "time": f"2026-12-03T10:00:00.{microsecond:06d}+00:00",
            "sd": sd,
            "msg": f"line {number:09d} from {host} <b>not bold</b>",
        }
    ).encode()


def receive(conf: Path, lines: List[bytes]) -> None:
    """Run the real sink on these omprog lines; every one is answered OK."""
    sink = subprocess.run(
        [sys.executable, "-m", "supervisor_streamlog", "receive", "-c", str(conf)],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=60,
    )
    assert sink.stdout == b"OK\n" * (len(lines) + 1), sink.stderr


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Tuple[str, Path]]:
    port = free_port()
    conf = tmp_path / "central.conf"
    conf.write_text(
        f"[streamlog]\nlogdir = {tmp_path}/central\nlayout = hosts\nbind = 127.0.0.1:{port}\n"
    )
    receive(
        conf,
        [
            omprog_line(host, number, number * 10 + index)
            for number in range(1, 51)
            for index, host in enumerate(HOSTS)
        ],
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "supervisor_streamlog", "serve", "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.err", "wb"),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(base + "/healthz")[0] == 200, 30, "the central sidecar")
        yield base, conf
    finally:
        serve.terminate()
        serve.wait(20)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page on which any console error at all fails the test (none is expected here)."""
    with checked_page(browser.new_context(viewport={"width": 1200, "height": 700}), ()) as opened:
        yield opened


def test_the_central_page_lists_hosts_and_merges_them(
    central: Tuple[str, Path], tail: TailPage
) -> None:
    base, conf = central
    tail.open(base)
    expect(tail.hosts()).to_have_count(2)
    assert tail.hosts().all_inner_texts() == ["hostA", "hostB"]
    assert [name.replace("\xa0", " ") for name in tail.listed()] == ["hostA / web", "hostB / web"]
    # A host that starts sending later appears in the open page.
    receive(conf, [omprog_line("hostC", 1, 999_000)])
    expect(tail.hosts()).to_have_count(3)
    assert tail.hosts().all_inner_texts() == ["hostA", "hostB", "hostC"]

    # One view of both hosts: their lines interleaved by time, each badged with its host.
    tail.open(base, "hostA/web", "hostB/web")
    tail.wait_held(100)
    held = [[process, text[:14]] for process, text in tail.held_lines()]
    assert held[:4] == [
        ["hostA/web:web", "line 000000001"],
        ["hostB/web:web", "line 000000001"],
        ["hostA/web:web", "line 000000002"],
        ["hostB/web:web", "line 000000002"],
    ]
    tail.filter("line 000000050 ")
    expect(tail.rows.locator(".proc")).to_have_count(2)
    assert [r.process for r in tail.shown()] == ["hostA / web", "hostB / web"]
    assert tail.rows.first.inner_text().count("<b>not bold</b>") == 1
    # Both are open in the list, and the address names both.
    assert tail.opened().locator(".own-part").all_inner_texts() == ["web", "web"]
    expect(tail.page).to_have_url(re.compile(r"process=hostA%2Fweb%3Aweb"))
