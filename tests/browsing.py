"""The browser tests' fixtures and helpers: Debian's Chromium under Playwright, a
page per test that fails on any script error, and the few helpers the browser
test modules share (a child's script, a record as the sidecar serves it, the
toolbar's geometry).  Registered from tests/conftest.py, so that no test module
imports another."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from .page import TailPage
from .sidecar import get
from .supervisor import Supervisor, wait_for

CHROMIUM = "/usr/bin/chromium"
# Browser notes about refused connections (a sidecar stopped on purpose): not the page's errors.
NETWORK_NOTES = ("net::ERR_", "WebSocket connection")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless: one per test module."""
    with sync_playwright() as playwright:
        # Never a downloaded browser: Debian's chromium, as the README says.
        launched = playwright.chromium.launch(
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
        yield launched
        launched.close()


@contextmanager
def checked_page(context: BrowserContext, allowed: Sequence[str] = NETWORK_NOTES) -> Iterator[Page]:
    """A page of ``context`` that fails the test, at the end, on any script error or
    CSP violation (console errors containing one of ``allowed`` excepted)."""
    page = context.new_page()
    errors: List[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not any(note in m.text for note in allowed)
            else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    # No script error and no CSP violation on any page of any test.
    assert not errors, errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own context), 1200x700, downloads accepted."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 700})
    with checked_page(context) as opened:
        yield opened


@pytest.fixture
def tail(page: Page) -> TailPage:
    """The ``page`` fixture, as the tail page a user sees (tests/page.py)."""
    return TailPage(page)


def script(path: Path, steps: List[Any]) -> Path:
    """A child's script (tests/children's "script" mode), written to ``path``."""
    path.write_text(json.dumps(steps))
    return path


def answers(url: str) -> bool:
    """Whether ``url`` answers 200."""
    return get(url)[0] == 200


def record(sup: Supervisor, process: str, start: str) -> Dict[str, Any]:
    """The first record of a process starting with ``start``, once it is written."""

    def find() -> Any:
        url = f"{sup.url}/api/log/{process}?cursor=0&direction=forward&limit=1000"
        found = [e for e in get(url)[1]["entries"] if e["text"].startswith(start)]
        return found[0] if found else None

    return dict(wait_for(find, 30, f"{process}'s {start!r}"))


def assert_contiguous(found: List[int]) -> None:
    """``found`` is a run of consecutive line numbers: no gap, no duplicate."""
    assert found, "no lines"
    assert found == list(range(found[0], found[0] + len(found))), f"a gap or a duplicate: {found}"


def overlaps(boxes: List[Dict[str, Any]]) -> List[str]:
    """The pairs of boxes (TailPage.toolbar_geometry's) that overlap by more than half a pixel."""
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if (
                a["left"] < b["right"] - 0.5
                and b["left"] < a["right"] - 0.5
                and a["top"] < b["bottom"] - 0.5
                and b["top"] < a["bottom"] - 0.5
            ):
                found.append(f"{a['id']} / {b['id']}")
    return found
