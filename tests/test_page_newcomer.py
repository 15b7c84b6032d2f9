"""What a newcomer meets in the page's first minute (issue 12), in real Chromium
against the real sidecar under a real supervisord: a crash loop shown as such,
"choose a process" before one is chosen, a time-jump field that reads what
people type, a toolbar that fits, lines before the WebSocket is up, names as
supervisorctl shows them.  Fixtures and helpers come from tests/browsing.py.
"""

from __future__ import annotations

import json
import re
import xmlrpc.client
from functools import partial
from typing import Any, Callable, Dict, Iterator, List

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from .browsing import answers, assert_contiguous, overlaps, record, script
from .page import TailPage
from .sidecar import get, serving
from .supervisor import Supervisor, Supervisors, emit, program, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    tmp = tmp_path_factory.mktemp("newcomer")
    # A program that crashes a moment after each start, restarted at once.
    crashy = script(
        tmp / "crashy.json",
        [["out", b"crashy up\n".hex()], ["sleep", 0.3], ["exit", 3]],
    )
    quiet = script(
        tmp / "quiet.json",
        [["out", b"".join(b"line %09d quiet\n" % n for n in range(300)).hex()], ["sleep", 3600]],
    )
    with Supervisors() as started:
        sup = started(
            serving(
                tmp,
                {
                    "app": program(emit("tick", 0.05)),
                    "quiet": program(emit("script", quiet)),
                    "web": program(emit("tick", 0.1)),
                    "crashy": program(emit("script", crashy), autorestart="true", startsecs=0),
                },
                streamlog={"programs": "app web crashy quiet"},
            )
        )
        for name in ("app", "web", "crashy", "quiet"):
            wait_for(partial(answers, f"{sup.url}/api/log/{name}"), 30, f"{name}'s log")
        yield sup


def listed_once(
    sup: Supervisor, name: str, ready: Callable[[Dict[str, Any]], bool], what: str
) -> Dict[str, Any]:
    """A process as /api/processes lists it, once ``ready`` holds for it."""
    seen: List[Dict[str, Any]] = []

    def check() -> bool:
        seen[:] = [listed(sup, name)]
        return ready(seen[0])

    wait_for(check, 60, what)
    return seen[0]


def listed(sup: Supervisor, name: str) -> Dict[str, Any]:
    """A process as /api/processes lists it."""
    found = [p for p in get(sup.url + "/api/processes")[1]["processes"] if p["name"] == name]
    assert found, name
    return dict(found[0])


# ------------------------------------------------------------------ crash loops


def test_a_crash_loop_is_counted_from_the_files_and_served(stack: Supervisor) -> None:
    crashy = listed_once(
        stack, "crashy:crashy", lambda p: p["starts"] >= 4, "crashy to start 4 times"
    )
    assert crashy["crashes"] >= 3
    assert crashy["last_exit"] == 3 and crashy["last_exit_expected"] is False
    assert len(crashy["recent_crashes"]) == 3
    assert crashy["counted_since"] is not None
    # A program that runs on is not a crash loop: one start, no crash.
    app = listed(stack, "app:app")
    assert (app["starts"], app["crashes"], app["last_exit"]) == (1, 0, None)


def starts_said(item: Locator) -> int:
    """The starts a process's list item counts ("... 7 starts ..."), 0 if none."""
    found = re.search(r"(\d+) starts", item.locator(".detail").inner_text())
    return int(found.group(1)) if found else 0


def test_the_process_list_shows_a_crash_loop_and_keeps_counting(
    tail: TailPage, stack: Supervisor
) -> None:
    tail.open(stack.url)
    item = tail.process("crashy:crashy")
    expect(item).to_have_class(re.compile(r"\blooping\b"), timeout=30_000)
    detail = item.locator(".detail").inner_text()
    assert "crash loop" in detail.lower() and "last exit 3" in detail
    starts = int(detail.split(" starts")[0].split()[-1])
    # Kept current by state frames, without reloading the page.
    wait_for(lambda: starts_said(item) >= starts + 2, 30, "two more starts counted")
    assert "crashes" in (item.locator(".detail").get_attribute("title") or "")
    # A program that runs on shows no such thing.
    app = tail.process("app:app")
    assert "looping" not in (app.get_attribute("class") or "")
    assert "starts" not in app.locator(".detail").inner_text()


def stopped(sup: Supervisor, name: str) -> bool:
    """Stop a program that may be between two of its runs (stopProcess then refuses)."""
    try:
        sup.rpc.supervisor.stopProcess(name)
    except xmlrpc.client.Fault:
        pass
    return sup.state(name) == "STOPPED"


def test_after_a_sidecar_restart_the_counts_come_from_the_files(stack: Supervisor) -> None:
    # No more starts from now on: only the files can give the figures below.
    wait_for(lambda: stopped(stack, "crashy"), 30, "crashy to stop")
    stack.rpc.supervisor.stopProcess("sidecar")
    records = stack.records("crashy")
    starts = sum(1 for r in records if r.stream == "status" and r.data.startswith(b"STARTING"))
    crashes = sum(1 for r in records if r.stream == "status" and b"expected=false" in r.data)
    assert starts >= 4
    stack.rpc.supervisor.startProcess("sidecar")
    wait_for(partial(answers, stack.url + "/api/log/crashy"), 30, "the sidecar back")
    again = listed_once(
        stack, "crashy:crashy", lambda p: p["starts"] > 0 and p["state"] == "STOPPED", "the figures"
    )
    assert (again["starts"], again["crashes"], again["last_exit"]) == (starts, crashes, 3)


# ------------------------------------------------------------------ before a process is chosen


def waiting_controls(tail: TailPage) -> List[Locator]:
    """The controls that need a process: pause, search, the jump field and go, download."""
    return [
        tail.pause_button,
        tail.search_button,
        tail.jump_field,
        tail.jump_button,
        tail.page.get_by_role("button", name="download shown lines", include_hidden=True),
    ]


def test_with_no_process_chosen_the_page_says_so_and_buttons_wait(
    tail: TailPage, stack: Supervisor
) -> None:
    tail.open(stack.url)
    tail.process("app:app").wait_for()
    empty = tail.log.locator(".empty")
    assert empty.is_visible()
    # Said by the stylesheet (::after), as drawn.
    said = empty.evaluate("(e) => getComputedStyle(e, '::after').content")
    assert "choose a process" in said
    for control in waiting_controls(tail):
        assert control.is_disabled(), control
    tail.key("p")  # nothing to pause: nothing happens
    assert not tail.paused()
    tail.open_process("app:app")
    tail.wait_held(5)
    assert not empty.is_visible()
    for control in waiting_controls(tail):
        assert control.is_enabled(), control


# ------------------------------------------------------------------ the time-jump field

NOW = "2026-12-02T15:30:00.000Z"  # a Wednesday afternoon, UTC
# (input, utc mode, expected ISO or None for an error)
WHEN_CASES = [
    ("2026-12-02 14:05", True, "2026-12-02T14:05:00.000Z"),
    ("2026-12-02 14:05:30", True, "2026-12-02T14:05:30.000Z"),
    ("2026-12-02 14:05:30.25", True, "2026-12-02T14:05:30.250Z"),
    ("2026-12-02T14:05", True, "2026-12-02T14:05:00.000Z"),
    ("2026-12-02", True, "2026-12-02T00:00:00.000Z"),
    ("14:05", True, "2026-12-02T14:05:00.000Z"),
    ("14:05:09", True, "2026-12-02T14:05:09.000Z"),
    ("9:05", True, "2026-12-02T09:05:00.000Z"),
    ("23:50", True, "2026-12-01T23:50:00.000Z"),  # later than now: yesterday's
    ("-5m", True, "2026-12-02T15:25:00.000Z"),
    ("5m ago", True, "2026-12-02T15:25:00.000Z"),
    ("1h ago", True, "2026-12-02T14:30:00.000Z"),
    ("30s", True, "2026-12-02T15:29:30.000Z"),
    ("1h30m", True, "2026-12-02T14:00:00.000Z"),
    ("2 days ago", True, "2026-11-30T15:30:00.000Z"),
    ("  -10 min ", True, "2026-12-02T15:20:00.000Z"),
    ("2026-12-02T14:05:00Z", False, "2026-12-02T14:05:00.000Z"),
    ("2026-12-02t14:05:00z", False, "2026-12-02T14:05:00.000Z"),
    ("2026-12-02T14:05:00.5+01:00", False, "2026-12-02T13:05:00.500Z"),
    ("2026-12-02 14:05-05:30", False, "2026-12-02T19:35:00.000Z"),
    ("2026-12-02T14:05:00.123456+00:00", False, "2026-12-02T14:05:00.123Z"),
    ("", True, None),
    ("yesterday", True, None),
    ("5 fortnights ago", True, None),
    ("+5m", True, None),
    ("2026-02-31 10:00", True, None),
    ("2026-13-01", True, None),
    ("25:00", True, None),
    ("14:60", True, None),
    ("2026-12-02T14:05:00+25:00", True, None),
    ("<img src=x onerror=alert(1)>", True, None),
]


def test_the_time_parser_reads_what_people_type(page: Page, stack: Supervisor) -> None:
    page.goto(stack.url + "/")
    results: List[Dict[str, Any]] = page.evaluate(
        """async ([cases, now]) => {
            const { parseWhen } = await import('/static/when.js');
            return cases.map(([text, utc]) => {
                const r = parseWhen(text, { now: new Date(now), utc });
                return r.ok ? { iso: r.date.toISOString() } : { error: r.error };
            });
        }""",
        [[[text, utc] for text, utc, _ in WHEN_CASES], NOW],
    )
    for (text, _utc, expected), result in zip(WHEN_CASES, results):
        if expected is None:
            assert "error" in result and result["error"], (text, result)
        else:
            assert result.get("iso") == expected, (text, result)
    # Local time (the browser's zone) for inputs without a zone outside UTC mode.
    local = page.evaluate(
        """async () => {
            const { parseWhen } = await import('/static/when.js');
            const r = parseWhen('2026-12-02 14:05:06', {});
            return r.date.getTime() === new Date(2026, 11, 2, 14, 5, 6).getTime();
        }"""
    )
    assert local


def test_jumping_to_a_typed_time_and_a_clear_error(tail: TailPage, stack: Supervisor) -> None:
    target = record(stack, "app", "line 000000060 ")
    tail.open(stack.url, "app")
    tail.wait_held(20)
    field = tail.jump_field
    assert field.get_attribute("type") == "text"
    assert field.get_attribute("placeholder") == "2026-12-02 14:05"
    # A mistake is said in the page, not thrown.
    tail.jump_to("half past two")
    assert field.get_attribute("aria-invalid") == "true"
    assert "Cannot read" in tail.notice.inner_text()
    assert tail.notice.is_visible()
    # An RFC 3339 time (with its offset) jumps there.
    field.fill(target["time"])
    tail.key("Enter")
    tail.wait_text("line 000000060 ")
    wait_for(lambda: tail.in_view("line 000000060 "), 10, "the line jumped to, in view")
    tail.wait_paused()
    assert field.get_attribute("aria-invalid") is None
    assert tail.notice.is_hidden()
    assert_contiguous(tail.held_numbers("app:app"))
    # A relative time: a second ago, past every line held until now.
    held = max(tail.held_numbers("app:app"))
    field.fill("1s ago")
    tail.key("Enter")
    tail.wait_number_above(held)


# ------------------------------------------------------------------ the toolbar


def test_the_toolbar_fits_one_row_at_1280_and_wraps_cleanly_at_800(
    tail: TailPage, stack: Supervisor
) -> None:
    tail.page.set_viewport_size({"width": 1280, "height": 800})
    tail.open(stack.url, "app", "web")
    tail.wait_held(5)
    wide = tail.toolbar_geometry()
    tallest = max(b["height"] for b in wide["boxes"])
    assert len(wide["boxes"]) >= 15
    # One row: every control on the same line, the bar one control high.
    assert max(b["top"] for b in wide["boxes"]) - min(b["top"] for b in wide["boxes"]) < 6
    assert wide["bar"]["height"] < 2 * tallest, wide["bar"]
    assert not overlaps(wide["boxes"])
    tail.page.set_viewport_size({"width": 800, "height": 700})
    wait_for(lambda: tail.toolbar_geometry()["bar"]["height"] > 60, 10, "the toolbar wrapped")
    narrow = tail.toolbar_geometry()
    assert not overlaps(narrow["boxes"]), overlaps(narrow["boxes"])
    for box in narrow["boxes"]:  # nothing cut off
        assert narrow["bar"]["left"] <= box["left"] and box["right"] <= narrow["bar"]["right"]
        assert narrow["bar"]["top"] <= box["top"] and box["bottom"] <= narrow["bar"]["bottom"]
    assert narrow["scrollWidth"] <= narrow["width"]
    # The folded controls are a click away, inside the window.
    tail.open_more()
    menu = tail.more_menu.locator(".menu").bounding_box()
    assert menu is not None and menu["x"] >= 0 and menu["x"] + menu["width"] <= 800
    tail.wrap_button.click()
    assert tail.wrap_button.get_attribute("aria-pressed") == "true"
    assert tail.more_menu.get_attribute("open") is not None
    tail.title.click()  # a click elsewhere closes it
    assert tail.more_menu.get_attribute("open") is None


def test_a_toolbar_height_change_does_not_pause_following(
    tail: TailPage, stack: Supervisor
) -> None:
    tail.page.set_viewport_size({"width": 1280, "height": 800})
    tail.open(stack.url, "app")
    tail.wait_held(40)
    for grow in ("40px", "0px", "90px"):
        # The toolbar grows or shrinks without a window resize (a wrapped row,
        # a longer title, another helper's control).
        tail.grow_toolbar(grow)
        newest = max(tail.held_numbers("app:app"))
        tail.wait_number_above(newest + 5, seen=True)
        assert not tail.paused(), grow


def test_a_quiet_log_stays_at_its_newest_line_when_the_toolbar_grows(
    tail: TailPage, stack: Supervisor
) -> None:
    tail.page.set_viewport_size({"width": 1280, "height": 800})
    tail.open(stack.url, "quiet")
    tail.wait_held(300)
    wait_for(lambda: tail.rows.count() > 10, 20, "the rows drawn")
    assert tail.in_view("line 000000299 ", slack=1)
    for grow in ("120px", "0px", "60px"):
        tail.grow_toolbar(grow)
        tail.next_frames()
        assert tail.in_view("line 000000299 ", slack=1), grow
        # Nothing paused it: the newest line is still followed.
        assert not tail.paused(), grow


# ------------------------------------------------------------------ lines before the WebSocket


def test_lines_show_from_http_before_the_websocket_answers(
    tail: TailPage, stack: Supervisor
) -> None:
    sent: List[str] = []

    def silent(ws: WebSocketRoute) -> None:
        ws.on_message(lambda message: sent.append(str(message)))  # never answered

    tail.page.route_web_socket("**/ws", silent)
    tail.page.goto(stack.url + "/?process=app", wait_until="load")
    tail.wait_held(100)
    tail.row_texts.first.wait_for()
    shot = tail.page.screenshot()
    assert len(shot) > 1000
    assert tail.log.locator(".empty").is_hidden()
    assert_contiguous(tail.held_numbers("app:app"))
    # Then live from the end of that page, by cursor.
    tail.wait_attached("app:app")
    wait_for(lambda: any('"subscribe"' in m for m in sent), 10, "the subscription")
    asked = json.loads([m for m in sent if '"subscribe"' in m][0])
    assert asked == {"type": "subscribe", "process": "app:app", "cursor": tail.held_end()}


def test_the_page_names_its_first_pages_for_the_browser_to_preload(
    tail: TailPage, stack: Supervisor
) -> None:
    status, body = get(stack.url + "/?process=app&process=web%3Aweb&process=%3Cimg%3E&process=app")
    assert status == 200
    html = body.decode()
    links = [line for line in html.splitlines() if 'rel="preload"' in line]
    assert links == [
        '<link rel="preload" as="fetch" crossorigin="anonymous"'
        ' href="/api/log/app?limit=1000&amp;direction=backward">',
        '<link rel="preload" as="fetch" crossorigin="anonymous"'
        ' href="/api/log/web%3Aweb?limit=1000&amp;direction=backward">',
    ]  # known processes only, once each; a name the sidecar does not know is not echoed
    assert "<img" not in html
    status, body = get(stack.url + "/?process=app&at=2026-12-02T14:05:00Z")
    assert 'rel="preload"' not in body.decode()  # a jump reads other pages
    # The browser fetches the page once: the page's own request takes the preload.
    asked: List[str] = []
    tail.page.on("request", lambda r: asked.append(r.url) if "/api/log/" in r.url else None)
    tail.open(stack.url, "app")
    tail.wait_held(100)
    assert [u for u in asked if "direction=backward" in u] == [
        stack.url + "/api/log/app?limit=1000&direction=backward"
    ]


def test_the_first_page_then_live_lines_have_no_gap_or_duplicate(
    tail: TailPage, stack: Supervisor
) -> None:
    tail.open(stack.url, "app", "web")
    tail.wait_held(200)
    first = max(tail.held_numbers("app:app"))
    tail.wait_held_text(f"line {first + 40:09d}", "app:app")
    for name in ("app:app", "web:web"):
        assert_contiguous(tail.held_numbers(name))
    held = tail.held_records(unplaced=True)
    assert len(held) == len(set(held))


# ------------------------------------------------------------------ names as supervisorctl shows


def test_merged_badges_and_title_use_display_names(tail: TailPage, stack: Supervisor) -> None:
    tail.open(stack.url, "app", "web")
    tail.wait_held(20)
    wait_for(lambda: tail.rows.locator(".proc").count() > 2, 20, "badged rows")
    shown = tail.shown()
    assert {r.process for r in shown} == {"app", "web"}
    assert shown[0].process_title in ("app:app", "web:web")
    assert tail.title.inner_text() == "app + web"
    assert tail.title.get_attribute("title") == "app:app + web:web"
    tail.open_more()
    assert tail.download_links.all_inner_texts() == ["whole log of app", "whole log of web"]
    # and the history search's results
    tail.title.click()
    tail.filter("line 000000010 ")
    tail.key("Enter")
    expect(tail.results_where).to_have_count(2)
    wheres = sorted(tail.results_where.all_inner_texts())
    assert [w.split(" · ")[0] for w in wheres] == ["app", "web"]
