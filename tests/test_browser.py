"""The tail page in real headless Chromium (Debian's), against the real sidecar
under a real supervisord, with real child programs writing the lines.

Long because the page's behaviours share one costly fixture (a supervisord, a
sidecar and a browser, started once per module), and the level detection's
table of real-world lines (tests/helpers.py's LEVEL_CASES) runs through the page here."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from playwright.sync_api import Browser, Page

import supervisor_streamlog

from .browsing import (
    answers,
    assert_contiguous,
    in_view,
    last_number_on_screen,
    numbers,
    record,
    rows,
    script,
    wait_lines,
    wait_paused,
    wait_text,
)
from .helpers import LEVEL_CASES
from .sidecar import get, with_sidecar
from .supervisor import Supervisor, emit, program, wait_for

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & &amp;'
LONG = "long " + "y" * 5000
# A program of mixed levels, JSON and logfmt lines, and JSON whose keys and values are HTML.
LEVELLED = [
    ("out", "INFO:app:ready"),
    ("out", "WARNING:app:slow start"),
    ("err", "ERROR:app:it failed"),
    ("err", "plain stderr line"),
    ("out", "DEBUG:app:details"),
    ("out", "plain stdout line"),
    (
        "out",
        '{"level":"error","msg":"request failed","status":500,"user":{"id":42},"path":"/api"}',
    ),
    ("out", '{"level":"info","msg":"request ok","status":200,"user":{"id":7},"path":"/"}'),
    ("out", 'level=warn msg="cache miss" key=user:42 status=500'),
    (
        "out",
        '{"level":"info","msg":"<img src=x onerror=\\"window.__pwned=3\\">",'
        '"<img src=x onerror=window.__pwned=4>":"<script>window.__pwned=5</script>"}',
    ),
    ("out", '{"looks": "like json", but not}'),
]


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    tmp = tmp_path_factory.mktemp("browser")
    hostile = script(
        tmp / "hostile.json",
        [
            ["out", (f"line 000000001 {HOSTILE}\n").encode().hex()],
            ["err", b"line 000000002 to stderr\n".hex()],
            ["out", b"Password: ".hex()],
            ["sleep", 1.0],  # past partial_timeout: the prompt is written as a piece
            ["out", b"typed\n".hex()],
            ["sleep", 3600],
        ],
    )
    colours = script(
        tmp / "colours.json",
        [
            ["out", b"\x1b[1;31mred alert\x1b[0m then <b>plain</b>\n".hex()],
            ["out", (LONG + "\n").encode().hex()],
            ["exit", 3],
        ],
    )
    levelled = script(
        tmp / "levelled.json",
        [[stream, (text + "\n").encode().hex()] for stream, text in LEVELLED] + [["sleep", 3600]],
    )
    once = {"autorestart": "false", "startsecs": "0"}
    sup = with_sidecar(
        tmp,
        {
            "app": program(emit("tick", 0.05)),
            "hostile": program(emit("script", hostile)),
            "colours": program(emit("script", colours), **once),
            # 5000 lines over several rotated files, the older ones compressed.
            "history": program(emit("burst", 5000, 60, "block"), **once),
            # Not captured by streamlog: shown from supervisord's own child log.
            "plain": program(emit("tick", 0.1), stdout_logfile=str(tmp / "plain.out")),
            "levelled": program(emit("script", levelled)),
        },
        streamlog={
            "maxbytes": "64KB",
            "compress": "true",
            "backups": "20",
            "programs": "app hostile colours history levelled",
        },
    )
    try:
        for name in ("app", "hostile", "colours", "history", "levelled"):
            wait_for(partial(answers, f"{sup.url}/api/log/{name}"), 30, f"{name}'s log")
        wait_for(
            lambda: "line 000004999" in json.dumps(get(f"{sup.url}/api/log/history?limit=5")[1]),
            30,
            "history's last line",
        )
        yield sup
    finally:
        sup.stop()


# ------------------------------------------------------------------ basics


def test_a_line_a_child_writes_appears_on_screen(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=app")
    wait_lines(page, 20)
    page.wait_for_function("() => document.getElementById('connection').dataset.state === 'live'")
    assert page.locator("#connection").inner_text() == "live"
    shown = page.locator("#processes .open[aria-pressed=true] .name")
    assert shown.inner_text() == "app"  # as supervisorctl shows it
    assert shown.get_attribute("title") == "app:app"  # the whole name on hover
    # The newest line keeps arriving on screen while following.
    seen = last_number_on_screen(page)
    page.wait_for_function(
        """(n) => [...document.querySelectorAll('#log .row .text')]
            .some(e => e.textContent.startsWith('line ')
                       && Number(e.textContent.slice(5, 14)) > n)""",
        arg=seen + 10,
        timeout=20_000,
    )
    assert page.url.endswith("?process=app%3Aapp")


def test_log_text_with_html_is_shown_as_text_and_nothing_runs(
    page: Page, sidecar: Supervisor
) -> None:
    page.goto(sidecar.url + "/?process=hostile")
    line = page.locator(".row .text", has_text="line 000000001")
    line.wait_for(timeout=20_000)
    assert line.inner_text() == f"line 000000001 {HOSTILE}"
    assert page.locator("#log img, #log script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".row.stderr .text").inner_text() == "line 000000002 to stderr"
    # A prompt written out after partial_timeout, then finished: one line on screen.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.row .text')]"
        ".some(e => e.textContent === 'Password: typed')",
        timeout=20_000,
    )
    assert page.locator(".row .text", has_text="Password:").count() == 1


def test_ansi_colours_long_lines_and_lifecycle_markers(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=colours")
    wait_text(page, "red alert")
    text = page.locator(".row .text", has_text="red alert")
    assert text.inner_text() == "red alert then <b>plain</b>"  # escapes gone, HTML as text
    styled = text.locator("span.fg1.sgr-bold")
    assert styled.inner_text() == "red alert"
    assert text.locator("b").count() == 0
    # The exit, inline: with its code, and flagged as unexpected.
    marker = page.locator(".row.marker.bad .text", has_text="exited with code 3")
    marker.wait_for(timeout=20_000)
    assert "(unexpected)" in marker.inner_text()
    assert page.locator(".row.marker.good .text", has_text="started").count() == 1
    # A 5005-character line is collapsed, and expands in place.
    long = page.locator(".row", has_text="long yyy")
    assert len(long.locator(".text").inner_text()) == 2000
    long.get_by_role("button", name="… 3005 more characters").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.row .text')]"
        ".some(e => e.textContent.length === 5005)"
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=sidecar.url)
    page.locator(".row", has_text="long yyy").get_by_role("button", name="copy").click()
    page.locator(".row", has_text="long yyy").get_by_role("button", name="copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == LONG
    # The process list shows the exit status.
    listed = page.locator("#processes li[data-process='colours:colours']")
    assert "EXITED" in listed.locator(".state").inner_text()
    assert "exit 3" in listed.locator(".detail").inner_text()


# ------------------------------------------------------------------ follow and pause


def test_scrolling_up_pauses_and_new_lines_resume_without_a_lost_line(
    page: Page, sidecar: Supervisor
) -> None:
    page.goto(sidecar.url + "/?process=app")
    wait_lines(page, 20)
    page.locator("#log").hover()
    page.mouse.wheel(0, -400)
    wait_paused(page)
    first = rows(page)[0]
    # New lines keep arriving and are counted, while the screen stays still.
    button = page.locator("#new-lines")
    button.wait_for(state="visible", timeout=20_000)
    page.wait_for_function(
        "() => parseInt(document.getElementById('new-lines').textContent) >= 15", timeout=20_000
    )
    assert rows(page)[0] == first
    assert re.match(r"\d+ new lines ↓", button.inner_text())
    newest = max(numbers(page, "app:app"))
    button.click()
    assert page.locator("#pause").get_attribute("aria-pressed") == "false"
    page.wait_for_function(
        """(n) => [...document.querySelectorAll('#log .row .text')]
            .some(e => e.textContent.startsWith('line ')
                       && Number(e.textContent.slice(5, 14)) >= n)""",
        arg=newest,
        timeout=20_000,
    )
    assert_contiguous(numbers(page, "app:app"))


def test_selecting_text_pauses_and_keys_pause_and_resume(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=app")
    wait_lines(page, 20)
    page.locator("#log .row .text").nth(3).dblclick()  # selects a word
    wait_paused(page)
    page.locator("#log").focus()
    page.keyboard.press("End")
    assert page.locator("#pause").get_attribute("aria-pressed") == "false"
    page.keyboard.press("p")
    assert page.locator("#pause").inner_text() == "resume"
    page.keyboard.press("p")
    assert page.locator("#pause").inner_text() == "pause"
    # "/" goes to the filter; t cycles the timestamps (local, UTC, hidden).
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "filter"
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    assert page.locator("#time").text_content() == "time: utc"  # folded under "more"
    title, shown = page.evaluate(
        "() => { const e = [...document.querySelectorAll('#log .row .ts')].at(-1);"
        " return [e.title, e.textContent]; }"
    )
    assert title.endswith("Z") and shown == title[11:23]
    page.keyboard.press("t")
    page.wait_for_function("() => document.querySelectorAll('#log .row .ts').length === 0")
    page.keyboard.press("t")
    assert page.locator("#time").text_content() == "time: local"
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()


# ------------------------------------------------------------------ finding things


def test_filter_hides_and_highlights_and_lives_in_the_url(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=app")
    wait_lines(page, 20)
    page.locator("#filter").fill("7 xx")
    page.wait_for_function("() => document.getElementById('counts').textContent.includes('shown')")
    texts = rows(page)
    assert texts and all("7 xx" in t for t in texts), texts
    marks = page.locator("#log .row .text mark").all_inner_texts()
    assert marks and all(m == "7 xx" for m in marks)
    page.wait_for_function("() => location.search.includes('q=7+xx')")
    # A regular expression, from a link.
    page.goto(sidecar.url + "/?process=app&q=%5Eline+0%2B%5Cd*%5B05%5D+&re=1")
    wait_text(page, "line ")
    assert page.locator("#filter").input_value() == r"^line 0+\d*[05] "
    assert page.locator("#regex").get_attribute("aria-pressed") == "true"
    numbers_shown = [int(t[5:14]) for t in rows(page)]
    assert numbers_shown and all(n % 5 == 0 for n in numbers_shown)
    # A bad expression is flagged, not thrown.
    page.locator("#filter").fill("(unclosed")
    page.wait_for_function(
        "() => document.getElementById('filter').getAttribute('aria-invalid') === 'true'"
    )


def test_stream_toggles_hide_stdout_or_stderr(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=hostile")
    wait_text(page, "to stderr")
    page.locator("#more summary").click()
    page.locator("#stderr").click()
    page.wait_for_function("() => document.querySelectorAll('#log .row.stderr').length === 0")
    assert page.locator("#log .row.stdout").count() > 0
    page.keyboard.press("e")
    wait_text(page, "to stderr")
    page.keyboard.press("o")
    page.wait_for_function("() => document.querySelectorAll('#log .row.stdout').length === 0")
    page.keyboard.press("o")


def test_scrolling_up_reads_history_back_through_rotated_files(
    page: Page, sidecar: Supervisor
) -> None:
    assert any(p.suffix == ".gz" for p in sidecar.log_files("history"))
    page.goto(sidecar.url + "/?process=history")
    wait_text(page, "line 000004999")
    assert min(numbers(page, "history:history")) > 0  # a tail, not everything
    for _ in range(30):
        if 0 in numbers(page, "history:history"):
            break
        held = len(numbers(page, "history:history"))
        page.locator("#log").focus()
        page.keyboard.press("Home")
        page.wait_for_function(
            "(n) => window.streamlog.store.lines.length > n || !window.streamlog.session.subs"
            ".get('history:history').hasBefore",
            arg=held,
        )
    found = numbers(page, "history:history")
    assert found == list(range(5000))
    wait_text(page, "line 000000000")


def test_past_the_retention_limit_older_and_newer_lines_are_a_scroll_away(
    page: Page, sidecar: Supervisor
) -> None:
    record(sidecar, "app", "line 000000400 ")  # more than the page will hold
    page.goto(sidecar.url + "/?process=app&retain=300")
    wait_lines(page, 100)
    assert len(numbers(page, "app:app")) <= 300
    assert min(numbers(page, "app:app")) > 0
    page.locator("#log").focus()
    for _ in range(30):
        if 0 in numbers(page, "app:app"):
            break
        oldest = min(numbers(page, "app:app"))
        page.keyboard.press("Home")
        page.wait_for_function(
            """(n) => window.streamlog.store.lines.some(l => l.process === 'app:app'
                && l.text.startsWith('line ') && Number(l.text.slice(5, 14)) < n)""",
            arg=oldest,
        )
    found = numbers(page, "app:app")
    assert found[0] == 0 and len(found) <= 300 + 500
    assert_contiguous(found)
    # Reading old lines, the newest were let go: live is a click away.
    button = page.locator("#new-lines")
    assert button.inner_text() == "newer lines below — jump to live ↓"
    newest = record(sidecar, "app", f"line {found[-1] + 200:09d} ")
    button.click()
    wait_text(page, newest["text"][:15])
    wait_paused(page, False)


def test_search_across_history_jumps_to_the_match(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=history")
    wait_text(page, "line 000004999")
    page.locator("#filter").fill("line 000000123 ")
    page.locator("#search").click()
    result = page.locator("#results-list button")
    result.first.wait_for(timeout=20_000)
    assert result.count() == 1
    assert page.locator("#results-title").inner_text().startswith("1 match")
    page.locator("#filter").fill("")  # show everything around the match
    result.first.click()
    wait_text(page, "line 000000123 ")
    assert in_view(page, "line 000000123 ")
    assert page.locator("#pause").get_attribute("aria-pressed") == "true"
    assert_contiguous(numbers(page, "history:history"))
    wait_for(lambda: "at=" in page.url, 5, "the position in the URL")


def test_a_link_with_a_time_opens_the_view_there(page: Page, sidecar: Supervisor) -> None:
    target = record(sidecar, "app", "line 000000050 ")
    query = f"process=app&at={target['time'].replace('+', '%2B')}"
    page.goto(f"{sidecar.url}/?{query}")
    wait_text(page, "line 000000050 ")
    assert page.locator("#pause").get_attribute("aria-pressed") == "true"
    found = numbers(page, "app:app")
    assert_contiguous(found)
    assert found[0] == 0 and found[-1] > 50
    assert in_view(page, "line 000000050 ")


def test_jump_to_a_time_from_the_form(page: Page, sidecar: Supervisor) -> None:
    target = record(sidecar, "app", "line 000000060 ")
    page.goto(sidecar.url + "/?process=app")
    wait_lines(page, 20)
    page.keyboard.press("t")  # UTC: the form's time is read as UTC too
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.id") == "jump-time"
    # The form takes milliseconds: the record is the first at or after them.
    page.locator("#jump-time").fill(target["time"][:23])
    page.locator("#jump button").click()
    wait_text(page, "line 000000060 ")
    assert in_view(page, "line 000000060 ")
    wait_paused(page)
    assert_contiguous(numbers(page, "app:app"))


# ------------------------------------------------------------------ views and sharing


def test_merged_view_interleaves_processes_by_time(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=app&process=hostile")
    wait_lines(page, 20)
    page.wait_for_function(
        "() => window.streamlog.store.lines.some(l => l.process === 'hostile:hostile')"
    )
    keys = page.evaluate("window.streamlog.store.lines.map(l => l.key)")
    assert keys == sorted(keys)
    assert page.locator("#title").inner_text() == "app + hostile"  # as supervisorctl shows them
    # Line 1 of each, on screen together, each with its process badge.
    page.locator("#filter").fill("line 000000001 ")
    page.wait_for_function("() => document.querySelectorAll('#log .row .proc').length === 2")
    assert sorted(page.locator("#log .row .proc").all_inner_texts()) == ["app", "hostile"]
    # "+" in the list adds a third process to the view.
    page.locator("#filter").fill("")
    page.locator("#processes li[data-process='colours:colours'] .add").click()
    page.wait_for_function(
        "() => window.streamlog.store.lines.some(l => l.text.includes('red alert'))"
    )
    page.wait_for_function("() => location.search.includes('process=colours%3Acolours')")


def download(page: Page, sup: Supervisor, choice: str) -> str:
    """Open hostile's log, pick ``choice`` in the download menu, read the file."""
    page.goto(sup.url + "/?process=hostile")
    wait_text(page, "Password: typed")
    page.locator("#more summary").click()
    with page.expect_download() as started:
        page.locator(choice).click()
    return Path(started.value.path()).read_text()


def test_download_of_the_lines_shown(page: Page, sidecar: Supervisor) -> None:
    text = download(page, sidecar, "#download-shown")
    assert f"stdout line 000000001 {HOSTILE}\n" in text
    assert "stderr line 000000002 to stderr\n" in text
    assert "stdout Password: typed\n" in text
    whole = page.locator("#download-links a")
    assert whole.get_attribute("href") == "/api/log/hostile%3Ahostile/download"


def test_whole_log_download(page: Page, sidecar: Supervisor) -> None:
    text = download(page, sidecar, "#download-links a")
    assert f" stdout line 000000001 {HOSTILE}\n" in text
    assert " stderr line 000000002 to stderr\n" in text


def test_wrap_toggle_and_themes(page: Page, sidecar: Supervisor) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto(sidecar.url + "/?process=colours")
    wait_text(page, "exited with code 3")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(21, 23, 26)"  # the system's dark theme
    page.locator("#theme").click()
    assert page.locator("#theme").inner_text() == "theme: light"
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    page.emulate_media(color_scheme="light")
    page.locator("#theme").click()
    assert page.locator("#theme").inner_text() == "theme: dark"
    assert page.evaluate(background) == "rgb(21, 23, 26)"  # chosen over the system's
    # Wrapped, the collapsed long line takes several rows' height, and the
    # rows after it start below it.
    geometry = """() => {
        const rows = [...document.querySelectorAll('#log .row')];
        const long = rows.findIndex(r => r.textContent.includes('long yyy'));
        const a = rows[long].getBoundingClientRect(), b = rows[long + 1].getBoundingClientRect();
        return [a.height, b.top - a.bottom];
    }"""
    height, after = page.evaluate(geometry)
    assert height < 20
    page.keyboard.press("w")
    assert page.locator("#wrap").get_attribute("aria-pressed") == "true"
    page.wait_for_function(
        geometry.replace("return [a.height, b.top - a.bottom]", "return a.height > 100")
    )
    height, after = page.evaluate(geometry)
    assert height > 100 and abs(after) < 1


def test_an_uncaptured_process_is_shown_from_its_supervisord_log(
    page: Page, sidecar: Supervisor
) -> None:
    wait_for(lambda: (sidecar.workdir / "plain.out").exists(), 20, "plain's log")
    page.goto(sidecar.url + "/?process=plain")
    wait_lines(page, 5)
    listed = page.locator("#processes li[data-process='plain:plain']")
    assert "uncaptured" in (listed.get_attribute("class") or "")
    assert "not captured" in listed.locator(".detail").inner_text()
    found = numbers(page, "plain:plain")
    assert_contiguous(found)
    # supervisord's file has no times: none are shown, or made up.
    assert page.locator("#log .row .ts").first.inner_text() == ""


# ------------------------------------------------------------------ the page's own modules


def test_every_module_of_the_page_is_preloaded() -> None:
    """index.html names each module app.js imports: fetched at once, not level by level."""
    static = Path(supervisor_streamlog.__file__).parent / "static"
    html = (static / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([\w.]+)">', html))
    assert preloaded == {p.name for p in static.glob("*.js")} - {"app.js"}


def test_page_modules_parse_ansi_and_order_lines(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/")
    result: Dict[str, Any] = page.evaluate(
        """async () => {
            const { parseAnsi } = await import('/static/ansi.js');
            const { LineStore, timeKey } = await import('/static/lines.js');
            const a = parseAnsi('\\x1b[38;5;196mred\\x1b[0m \\x1b]0;title\\x07ok\\x1b[2K\\x1b[1m');
            const store = new LineStore(10);
            store.add('a', [{time: '2026-01-01T00:00:02.000001+00:00', stream: 'stdout',
                             text: 'a2'}]);
            store.add('b', [{time: '2026-01-01T00:00:01.5+00:00', stream: 'stdout', text: 'b1'}]);
            store.add('a', [{time: '2026-01-01T00:00:03+01:00', stream: 'stdout', text: 'a0',
                             partial: true}]);
            store.add('a', [{time: '2026-01-01T00:00:04+01:00', stream: 'stdout', text: '+more'}]);
            // One process's clock stepped back an hour: its log's order stands.
            const one = new LineStore(10);
            one.add('c', [{time: '2026-01-01T02:00:00+00:00', stream: 'stdout', text: 'c1',
                           offset: 0, end: 3},
                          {time: '2026-01-01T01:00:00+00:00', stream: 'stdout', text: 'c2',
                           offset: 3, end: 6}]);
            // A record without a time goes after the newest placed, whatever
            // the browser's clock says.
            one.add('d', [{time: null, stream: 'stdout', text: 'd1', offset: 0, end: 3}]);
            // A history page ending in a piece: joined with the line held after it.
            const edge = new LineStore(10);
            edge.add('e', [{time: '2026-01-01T00:00:05Z', stream: 'stdout', text: 'rest',
                            offset: 10, end: 15}]);
            const page = new Map();
            edge.add('e', [{time: '2026-01-01T00:00:04Z', stream: 'stdout', text: 'start-',
                            offset: 0, end: 10, partial: true}], page);
            edge.joinEdge(page);
            return {
                edge: edge.lines.map(l => [l.text, l.offset, l.end, l.open]),
                plain: a.plain, colour: a.runs[0].style.fg, runs: a.runs.length,
                stepped: one.lines.map(l => l.text),
                order: store.lines.map(l => l.text),
                micro: timeKey('2026-01-01T00:00:00.000001Z') - timeKey('2026-01-01T00:00:00Z'),
            };
        }"""
    )
    assert result["plain"] == "red ok"
    assert result["colour"] == "rgb(255,0,0)"
    assert result["runs"] == 1
    assert result["order"] == ["a0+more", "b1", "a2"]  # +01:00 is an hour earlier
    assert result["stepped"] == ["c1", "c2", "d1"]
    assert result["edge"] == [["start-rest", 0, 15, False]]
    assert result["micro"] == 1


def test_page_modules_merge_history_pages_and_read_the_address(
    page: Page, sidecar: Supervisor
) -> None:
    page.goto(sidecar.url + "/")
    result: Dict[str, Any] = page.evaluate(
        """async () => {
            const { mergePages } = await import('/static/history.js');
            const { readAddress } = await import('/static/address.js');
            const at = (s) => ({time: `2026-01-01T00:00:${s}+00:00`, stream: 'stdout', text: s});
            // Older pages of two processes: b's page reaches further back, so
            // only its records from a's oldest on are kept (no hole in a).
            const pages = [
                {sub: 'a', page: {entries: [at('10'), at('20'), at('30')], has_before: true}},
                {sub: 'b', page: {entries: [at('05'), at('25')], has_before: true}},
            ];
            const text = (merged) => merged.map(
                ({sub, kept, all}) => [sub, kept.map(e => e.text), all]);
            return {
                merged: text(mergePages(pages, true, false)),
                single: text(mergePages(pages.slice(1), true, true)),
                address: readAddress('?process=a&process=b&q=x&re=1&at=T&retain=9'),
                empty: readAddress(''),
            };
        }"""
    )
    assert result["merged"] == [["a", ["10", "20", "30"], True], ["b", ["25"], False]]
    assert result["single"] == [["b", ["05", "25"], True]]
    assert result["address"] == {
        "processes": ["a", "b"],
        "at": "T",
        "filter": {"q": "x", "regex": True, "case": False},
        "retain": 9,
    }
    assert result["empty"] == {
        "processes": [],
        "at": None,
        "filter": {"q": "", "regex": False, "case": False},
        "retain": 250000,
    }


# ------------------------------------------------------------------ levels and structured lines


def test_level_detection_of_real_world_lines(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/")
    got: List[List[Any]] = page.evaluate(
        """async (cases) => {
            const { Line } = await import('/static/lines.js');
            return cases.map(([text, stream]) => {
                // As a record arrives: colour escapes are not part of the level.
                const line = new Line('p', {stream, text: text.replaceAll('\\\\x1b', '\\x1b')});
                return [text, stream, line.level];
            });
        }""",
        [[text, stream] for text, stream, _ in LEVEL_CASES],
    )
    wrong = [
        (text, want, level)
        for (text, _, want), (_, _, level) in zip(LEVEL_CASES, got)
        if level != want
    ]
    assert not wrong, wrong
    assert len(LEVEL_CASES) >= 60


def test_structured_lines_and_field_filters(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/")
    result: Dict[str, Any] = page.evaluate(
        """async () => {
            const { classify } = await import('/static/structured.js');
            const { Line, makeMatcher } = await import('/static/lines.js');
            const s = (text) => classify(text, 'stdout').structured;
            const json = '{"level":"info","msg":"done","status":500,"user":{"id":42,"name":"a b"},'
                + '"tags":["x"],"empty":{},"nil":null}';
            const line = new Line('p', {stream: 'stdout', text: json});
            const plain = new Line('p', {stream: 'stdout', text: 'plain status=500 here'});
            const other = new Line('p', {stream: 'stdout', text: '{"status":200,"user":{"id":7}}'});
            const passes = (q, l, options = {}) => makeMatcher({q, regex: false, case: false,
                                                               ...options}).test(l.plain, l);
            return {
                json: s(json),
                logfmt: s('time=2026-12-03T07:00:00Z level=info msg="say \\\\"hi\\\\"" '
                          + 'dur=1.2ms ok='),
                one: s('level=warn'),
                indented: s('  {"message":"indented"}'),
                event: s('{"event":"structlog says","x":1}'),
                notJson: [s('{"a":1} trailing'), s('{ not json }'), s('[1, 2]'), s('"text"'),
                          s('{"a":1'), s('Set a=b for things'), s('a=b'), s('x="unclosed'),
                          s('{"a":"' + 'y'.repeat(3000) + '"}')],
                filters: {
                    status: [passes('status=500', line), passes('status=500', other),
                             passes('status=500', plain)],
                    nested: [passes('user.id=42', line), passes('user.id=42', other)],
                    both: [passes('status=500 user.id=42', line),
                           passes('status=200 user.id=42', other)],
                    text: passes('done', line),
                    caseOn: passes('level=INFO', line, {case: true}),
                    caseOff: passes('level=INFO', line),
                    regex: passes('status=500', line, {regex: true}),
                },
                chip: makeMatcher({q: 'user.id=42', regex: false, case: false})
                    .chip('user.id', '42'),
            };
        }"""
    )
    assert result["json"] == {
        "kind": "json",
        "message": "done",
        "fields": [
            "level",
            "info",
            "status",
            500,  # values as parsed: no copy as text
            "user.id",
            42,
            "user.name",
            "a b",
            "tags",
            '["x"]',
            "empty",
            "{}",
            "nil",
            None,
        ],
    }
    assert result["logfmt"] == {
        "kind": "logfmt",
        "message": 'say "hi"',
        "fields": ["time", "2026-12-03T07:00:00Z", "level", "info", "dur", "1.2ms", "ok", ""],
    }
    assert result["one"] == {"kind": "logfmt", "message": "", "fields": ["level", "warn"]}
    assert result["indented"]["message"] == "indented"
    assert result["event"]["message"] == "structlog says"
    assert result["notJson"] == [None] * 9  # text that only looks structured stays plain
    filters = result["filters"]
    assert filters["status"] == [True, False, True]  # the field, or the text as typed
    assert filters["nested"] == [True, False]
    assert filters["both"] == [True, False]
    assert filters["text"] is True
    assert filters["caseOn"] is False and filters["caseOff"] is True
    assert filters["regex"] is False  # a regular expression is matched against the text only
    assert result["chip"] is True


def test_level_marks_counts_and_the_level_filter(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=levelled")
    wait_text(page, "plain stdout line")
    wait_lines(page, len(LEVELLED) + 1)  # and the start marker
    marks = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#log .row')]
            .filter(r => !r.classList.contains('marker'))
            .map(r => [r.querySelector('.text').textContent,
                       r.querySelector('.lvl').textContent]))"""
    )
    assert marks["INFO:app:ready"] == "I"
    assert marks["WARNING:app:slow start"] == "W"
    assert marks["ERROR:app:it failed"] == "E"
    assert marks["DEBUG:app:details"] == "D"
    assert marks["plain stderr line"] == "" and marks["plain stdout line"] == ""
    assert marks["request failed"] == "E" and marks["cache miss"] == "W"
    # Not colour only: the letter, and the level's class on the row.
    assert page.locator(".row.l-stderr .text").inner_text() == "plain stderr line"
    assert page.locator(".row.l-error.stderr .text").inner_text() == "ERROR:app:it failed"
    # The counts of the lines held, in the counts bar (levels with none: not shown),
    # brought up to date a few times a second.
    page.wait_for_function("() => document.getElementById('count-info').textContent === 'I 3'")
    counts = {
        level: page.locator(f"#count-{level}").text_content()
        for level in ("fatal", "error", "warn", "info", "debug", "trace", "other")
    }
    assert counts == {
        "fatal": "",
        "error": "E 2",
        "warn": "W 2",
        "info": "I 3",
        "debug": "D 1",
        "trace": "",
        "other": "– 3",  # plain stdout, plain stderr, and the not-quite-JSON line
    }
    assert page.locator("#level-error").inner_text() == "E"  # the toggles keep their size
    # Hide info and debug, then the lines with no level.
    page.locator("#level-info").click()
    page.locator("#level-debug").click()
    page.wait_for_function("() => !document.querySelector('#log .row.l-info')")
    assert page.locator("#level-info").get_attribute("aria-pressed") == "false"
    assert page.locator("#log .row.l-debug").count() == 0
    assert "ERROR:app:it failed" in rows(page)
    page.locator("#level-other").click()
    page.wait_for_function("() => !document.querySelector('#log .row.l-none, #log .row.l-stderr')")
    assert sorted(page.locator("#log .row:not(.marker) .text").all_inner_texts()) == sorted(
        ["WARNING:app:slow start", "ERROR:app:it failed", "request failed", "cache miss"]
    )
    assert "shown" in page.locator("#counts").inner_text()
    page.locator("#level-info").click()
    wait_text(page, "INFO:app:ready")


def test_json_lines_show_chips_expand_and_filter_by_field(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=levelled")
    wait_text(page, "request failed")
    row = page.locator(".row.structured", has_text="request failed")
    assert row.locator(".chip").all_inner_texts() == [
        "level=error",
        "status=500",
        "user.id=42",
        "path=/api",
    ]
    assert page.locator(".row.structured", has_text="cache miss").locator(
        ".chip"
    ).all_inner_texts() == ["level=warn", "key=user:42", "status=500"]
    # Text that only looks like JSON stays a plain line.
    assert page.locator(".row .text", has_text="like json").inner_text() == (
        '{"looks": "like json", but not}'
    )
    # A chip expands the line's fields to pretty JSON.
    row.locator(".chip", has_text="user.id=42").click()
    page.locator("#fields").wait_for(state="visible")
    assert json.loads(page.locator("#fields-json").inner_text()) == json.loads(LEVELLED[6][1])
    assert page.locator("#fields-json").inner_text().startswith('{\n  "level": "error",')
    page.keyboard.press("Escape")
    page.locator("#fields").wait_for(state="hidden")
    # A field filter, nested keys included: JSON and logfmt lines alike.
    page.locator("#filter").fill("status=500")
    page.wait_for_function("() => document.getElementById('counts').textContent.includes('shown')")
    assert sorted(rows(page)) == ["cache miss", "request failed"]
    assert page.locator(".chip.hit").all_inner_texts() == ["status=500", "status=500"]
    page.locator("#filter").fill("user.id=7")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#log .row .text')].map(e => e.textContent)"
        ".join() === 'request ok'"
    )
    page.wait_for_function("() => location.search.includes('q=user.id%3D7')")


def test_hostile_json_keys_and_values_stay_text(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=levelled")
    wait_text(page, "<img src=x")
    row = page.locator(".row.structured", has_text="<img src=x")
    assert row.locator(".text").inner_text() == '<img src=x onerror="window.__pwned=3">'
    chip = "<img src=x onerror=window.__pwned=4>=<script>window.__pwned=5</script>"
    assert row.locator(".chip").all_inner_texts() == ["level=info", chip]
    row.locator(".chip").nth(1).click()
    page.locator("#fields").wait_for(state="visible")
    assert "<script>window.__pwned=5</script>" in page.locator("#fields-json").inner_text()
    assert page.locator("#log img, #log script, #fields img, #fields script").count() == 0
    assert page.evaluate("window.__pwned") is None


# ------------------------------------------------------------------ scale


@pytest.fixture
def flood(tmp_path: Path) -> Iterator[Supervisor]:
    sup = with_sidecar(
        tmp_path,
        {"big": program(emit("rate", 200_000, 20_000), autostart="false", startsecs="0")},
    )
    yield sup
    sup.stop()


def test_dom_stays_small_with_200000_lines(flood: Supervisor, page: Page) -> None:
    wait_for(lambda: get(flood.url + "/api/processes")[0] == 200, 20, "the sidecar")
    page.goto(flood.url + "/?process=big")
    page.wait_for_function("() => document.getElementById('connection').dataset.state === 'live'")
    flood.rpc.supervisor.startProcess("big")
    page.wait_for_function(
        "() => window.streamlog.store.lines.filter(l => l.stream === 'stdout').length >= 200000",
        timeout=120_000,
        polling=500,
    )
    assert_contiguous(numbers(page, "big:big"))
    nodes = page.evaluate("document.getElementsByTagName('*').length")
    assert nodes < 2000, nodes
    assert page.locator("#log .row").count() < 150
    wait_text(page, "line 000199999")
    # Scrolling to the middle shows the lines there, and only those.
    page.evaluate(
        "() => { const l = document.getElementById('log'); l.scrollTop = l.scrollHeight / 2; }"
    )
    page.wait_for_function(
        """() => [...document.querySelectorAll('#log .row .text')].some(e =>
            Math.abs(Number(e.textContent.slice(5, 14)) - 100000) < 200)"""
    )
    assert page.locator("#pause").get_attribute("aria-pressed") == "true"


def test_a_merged_view_with_an_uncaptured_process_jumps_and_scrolls_back(
    page: Page, sidecar: Supervisor
) -> None:
    target = record(sidecar, "app", "line 000000030 ")
    wait_for(lambda: (sidecar.workdir / "plain.out").exists(), 20, "plain's log")
    at = target["time"].replace("+", "%2B")
    page.goto(f"{sidecar.url}/?process=app&process=plain&at={at}")
    wait_text(page, "line 000000030 ")
    assert page.locator("#notice").is_hidden()
    page.wait_for_function(
        "() => window.streamlog.store.lines.some(l => l.process === 'plain:plain')"
    )
    assert_contiguous(numbers(page, "app:app"))
    assert_contiguous(numbers(page, "plain:plain"))
    # Scrolling back: older lines of both, still no gap and no duplicate.
    page.locator("#log").focus()
    page.keyboard.press("Home")
    page.wait_for_function("() => window.streamlog.history.loading === null")
    assert numbers(page, "app:app")[0] == 0
    assert_contiguous(numbers(page, "app:app"))
    assert_contiguous(numbers(page, "plain:plain"))


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Supervisor]:
    sup = with_sidecar(
        tmp_path, {"a": program(emit("tick", 0.001)), "b": program(emit("tick", 0.001))}
    )
    yield sup
    sup.stop()


def test_changing_the_view_while_lines_pour_in_never_duplicates(
    busy: Supervisor, page: Page
) -> None:
    for name in ("a", "b"):
        record(busy, name, "line 000000500 ")
    page.goto(busy.url + "/?process=a")
    wait_lines(page, 500)
    for name in ("b", "b", "b", "a"):  # add b, remove it, add it, remove a
        page.locator(f"#processes li[data-process='{name}:{name}'] .add").click()
        page.wait_for_function(
            "(n) => [...window.streamlog.session.subs.values()].every(s => !s.waiting)"
            " && window.streamlog.store.lines.length > n",
            arg=200,
        )
    assert page.locator("#title").inner_text() == "b"
    held = page.evaluate(
        "() => window.streamlog.store.lines.filter(l => l.offset !== null)"
        ".map(l => l.process + '@' + l.offset)"
    )
    assert len(held) == len(set(held)), "a record shown twice"
    assert_contiguous(numbers(page, "b:b"))


def test_a_history_answer_for_a_view_since_left_is_dropped(page: Page, sidecar: Supervisor) -> None:
    held: List[Any] = []
    page.route(
        # Older lines (by cursor), not the newest page the view opens with.
        lambda url: "/api/log/history" in url and "direction=backward" in url and "cursor=" in url,
        lambda route: held.append(route),
    )
    page.goto(sidecar.url + "/?process=history")
    wait_text(page, "line 000004999")
    page.locator("#log").focus()
    page.keyboard.press("Home")
    for _ in range(200):  # route handlers run while Playwright is waiting
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the history read did not start"
    page.locator("#processes li[data-process='hostile:hostile'] .open").click()
    wait_text(page, "to stderr")
    with page.expect_response(lambda response: "/api/log/history" in response.url) as answered:
        held[0].continue_()
    assert answered.value.ok
    page.wait_for_function("() => window.streamlog.history.loading === null")
    assert page.evaluate(
        "() => [...new Set(window.streamlog.store.lines.map(l => l.process))]"
    ) == ["hostile:hostile"]


# ------------------------------------------------------------------ connection


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Supervisor]:
    sup = with_sidecar(
        tmp_path,
        {"app": program(emit("tick", 0.05))},
        streamlog={"username": "ops", "password": "right"},
    )
    yield sup
    sup.stop()


def test_page_says_so_when_its_credentials_stop_working(
    guarded: Supervisor, browser: Browser
) -> None:
    context = browser.new_context(http_credentials={"username": "ops", "password": "right"})
    try:
        page = context.new_page()
        page.goto(guarded.url + "/?process=app")
        wait_lines(page, 5)
        page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'live'"
        )
        # The password changes and the sidecar restarts: the page cannot get back in.
        guarded.conf.write_text(
            guarded.conf.read_text().replace("password = right", "password = new")
        )
        guarded.rpc.supervisor.stopProcess("sidecar")
        guarded.rpc.supervisor.startProcess("sidecar")
        page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'auth'", timeout=30_000
        )
        assert "not authorised" in page.locator("#connection").inner_text()
    finally:
        context.close()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Supervisor]:
    sup = with_sidecar(tmp_path, {"app": program(emit("tick", 0.02))})
    yield sup
    sup.stop()


def test_page_resumes_after_the_sidecar_restarts_with_no_gap_and_no_duplicate(
    restartable: Supervisor, page: Page
) -> None:
    wait_for(lambda: get(restartable.url + "/api/log/app")[0] == 200, 20, "app's log")
    page.goto(restartable.url + "/?process=app")
    # Held, not necessarily on screen: at 50 lines/s a following view has
    # scrolled line 10 away by the time a check for its row runs.
    wait_lines(page, 11)
    restartable.rpc.supervisor.stopProcess("sidecar")
    page.wait_for_function(
        # Read together: the status says "reconnecting…" again at each retry.
        "() => { const c = document.getElementById('connection');"
        " return c.dataset.state === 'down' && c.textContent.includes('unreachable'); }",
        timeout=20_000,
    )
    before = max(numbers(page, "app:app"))
    # The child goes on writing while the sidecar is away.
    wait_for(
        lambda: f"line {before + 100:09d}" in restartable.read_bytes("app").decode(),
        20,
        "more lines while the sidecar is down",
    )
    restartable.rpc.supervisor.startProcess("sidecar")
    page.wait_for_function(
        "() => document.getElementById('connection').dataset.state === 'live'", timeout=30_000
    )
    page.wait_for_function(
        "(n) => window.streamlog.store.lines"
        ".some(l => l.text.startsWith('line ' + String(n).padStart(9, '0')))",
        arg=before + 150,
        timeout=30_000,
    )
    assert_contiguous(numbers(page, "app:app"))
