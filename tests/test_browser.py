"""The tail page in real headless Chromium (Debian's), against the real sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List

import pytest
from playwright.sync_api import Browser, sync_playwright

from .sidecar import get, with_sidecar
from .supervisor import Supervisor, emit, program, wait_for

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & &amp;'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Never a downloaded browser: Debian's chromium, as the README says.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Supervisor]:
    steps = [
        ["out", (f"line 000000001 {HOSTILE}\n").encode().hex()],
        ["err", b"line 000000002 to stderr\n".hex()],
        ["out", b"Password: ".hex()],
        ["sleep", 1.0],  # past partial_timeout: the prompt is written as a piece
        ["out", b"typed\n".hex()],
        ["sleep", 3600],
    ]
    script = tmp_path / "hostile.json"
    script.write_text(json.dumps(steps))
    sup = with_sidecar(
        tmp_path,
        {
            "app": program(emit("tick", 0.05)),
            "hostile": program(emit("script", script)),
        },
    )
    yield sup
    sup.stop()


def test_a_line_a_child_writes_appears_on_screen(browser: Browser, sidecar: Supervisor) -> None:
    wait_for(lambda: get(sidecar.url + "/api/log/app")[0] == 200, 20, "app's log")
    page = browser.new_page()
    errors: List[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.goto(sidecar.url + "/?process=app")
    page.get_by_text("line 000000020").wait_for(timeout=20_000)
    assert page.locator("#connection").inner_text() == "live"
    assert page.locator("#processes li[aria-selected=true]").inner_text().startswith("app:app")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.close()


def test_log_text_with_html_is_shown_as_text_and_nothing_runs(
    browser: Browser, sidecar: Supervisor
) -> None:
    wait_for(lambda: get(sidecar.url + "/api/log/hostile")[0] == 200, 20, "hostile's log")
    page = browser.new_page()
    page.goto(sidecar.url + "/?process=hostile")
    line = page.locator(".line .text", has_text="line 000000001")
    line.wait_for(timeout=20_000)
    assert line.inner_text() == f"line 000000001 {HOSTILE}"
    assert page.locator("#log img, #log script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".line.stderr .text").inner_text() == "line 000000002 to stderr"
    # A prompt written out after partial_timeout, then finished: one line on screen.
    joined = page.locator(".line .text", has_text="Password:")
    joined.wait_for(timeout=20_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.line .text')]"
        ".some(e => e.textContent === 'Password: typed')",
        timeout=20_000,
    )
    assert joined.count() == 1
    page.close()
