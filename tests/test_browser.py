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
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from playwright.sync_api import Browser, Page, expect

import supervisor_streamlog

from .browsing import answers, assert_contiguous, record, script
from .helpers import LEVEL_CASES
from .page import TailPage
from .sidecar import get, serving
from .supervisor import Supervisor, Supervisors, emit, program, wait_for

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
    with Supervisors() as started:
        sup = started(
            serving(
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
        )
        for name in ("app", "hostile", "colours", "history", "levelled"):
            wait_for(partial(answers, f"{sup.url}/api/log/{name}"), 30, f"{name}'s log")
        wait_for(
            lambda: "line 000004999" in json.dumps(get(f"{sup.url}/api/log/history?limit=5")[1]),
            30,
            "history's last line",
        )
        yield sup


# ------------------------------------------------------------------ basics


def test_a_line_a_child_writes_appears_on_screen(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "app")
    tail.wait_held(20)
    tail.wait_connection("live")
    assert tail.connection.inner_text() == "live"
    shown = tail.opened().locator(".name")
    assert shown.inner_text() == "app"  # as supervisorctl shows it
    assert shown.get_attribute("title") == "app:app"  # the whole name on hover
    # The newest line keeps arriving on screen while following.
    seen = (tail.numbers_on_screen() or [-1])[-1]
    tail.wait_number_above(seen + 10)
    assert tail.page.url.endswith("?process=app%3Aapp")


def test_log_text_with_html_is_shown_as_text_and_nothing_runs(
    tail: TailPage, sidecar: Supervisor
) -> None:
    tail.open(sidecar.url, "hostile")
    line = tail.row_texts.filter(has_text="line 000000001")
    line.wait_for(timeout=20_000)
    assert line.inner_text() == f"line 000000001 {HOSTILE}"
    assert tail.log.locator("img, script").count() == 0
    assert tail.page.evaluate("window.__pwned") is None  # the test's canary, not the page's
    assert [r.text for r in tail.shown() if r.tag == "err"] == ["line 000000002 to stderr"]
    # A prompt written out after partial_timeout, then finished: one line on screen.
    expect(tail.row_texts.filter(has_text=re.compile(r"^Password: typed$"))).to_have_count(
        1, timeout=20_000
    )
    assert tail.row_texts.filter(has_text="Password:").count() == 1


def test_ansi_colours_long_lines_and_lifecycle_markers(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "colours")
    tail.wait_text("red alert")
    text = tail.row_texts.filter(has_text="red alert")
    assert text.inner_text() == "red alert then <b>plain</b>"  # escapes gone, HTML as text
    styled = text.locator("span.fg1.sgr-bold")
    assert styled.inner_text() == "red alert"
    assert text.locator("b").count() == 0
    # The exit, inline: with its code, and flagged as unexpected.
    tail.wait_text("exited with code 3")
    exits = [r for r in tail.shown() if "exited with code 3" in r.text]
    assert [(r.marker, r.tone) for r in exits] == [(True, "bad")]
    assert "(unexpected)" in exits[0].text
    started = [r for r in tail.shown() if r.marker and r.tone == "good" and "started" in r.text]
    assert len(started) == 1
    # A 5005-character line is collapsed, and expands in place.
    long = tail.line("long yyy")
    assert len(long.locator(".text").inner_text()) == 2000
    long.get_by_role("button", name="… 3005 more characters").click()
    expect(long.locator(".text")).to_have_text(LONG)
    tail.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=sidecar.url)
    long.get_by_role("button", name="copy").click()
    long.get_by_role("button", name="copied").wait_for()
    assert tail.page.evaluate("navigator.clipboard.readText()") == LONG
    # The process list shows the exit status.
    listed = tail.process("colours:colours")
    assert "EXITED" in listed.locator(".state").inner_text()
    assert "exit 3" in listed.locator(".detail").inner_text()


# ------------------------------------------------------------------ follow and pause


def test_scrolling_up_pauses_and_new_lines_resume_without_a_lost_line(
    tail: TailPage, sidecar: Supervisor
) -> None:
    tail.open(sidecar.url, "app")
    tail.wait_held(20)
    tail.scroll(-400)
    tail.wait_paused()
    first = tail.texts()[0]
    # New lines keep arriving and are counted, while the screen stays still.
    tail.new_lines.wait_for(state="visible", timeout=20_000)
    tail.wait_new_lines(15)
    assert tail.texts()[0] == first
    assert re.match(r"\d+ new lines ↓", tail.new_lines.inner_text())
    newest = max(tail.held_numbers("app:app"))
    tail.go_live()
    assert not tail.paused()
    tail.wait_number_above(newest - 1)
    assert_contiguous(tail.held_numbers("app:app"))


def test_selecting_text_pauses_and_keys_pause_and_resume(
    tail: TailPage, sidecar: Supervisor
) -> None:
    tail.open(sidecar.url, "app")
    tail.wait_held(20)
    tail.row_texts.nth(3).dblclick()  # selects a word
    tail.wait_paused()
    tail.key_in_log("End")
    assert not tail.paused()
    tail.key("p")
    assert tail.pause_button.inner_text() == "resume"
    tail.key("p")
    assert tail.pause_button.inner_text() == "pause"
    # "/" goes to the filter; t cycles the timestamps (local, UTC, hidden).
    tail.key("/")
    expect(tail.filter_box).to_be_focused(timeout=1)
    tail.key("Escape")
    tail.key("t")
    assert tail.time_button.text_content() == "time: utc"  # folded under "more"
    last = tail.shown()[-1]
    assert last.time_title.endswith("Z") and last.time == last.time_title[11:23]
    tail.key("t")
    expect(tail.rows.locator("time")).to_have_count(0)
    tail.key("t")
    assert tail.time_button.text_content() == "time: local"
    tail.key("?")
    assert tail.help.is_visible()


# ------------------------------------------------------------------ finding things


def test_filter_hides_and_highlights_and_lives_in_the_url(
    tail: TailPage, sidecar: Supervisor
) -> None:
    tail.open(sidecar.url, "app")
    tail.wait_held(20)
    tail.filter("7 xx")
    tail.wait_filtered()
    texts = tail.texts()
    assert texts and all("7 xx" in t for t in texts), texts
    marks = tail.row_texts.locator("mark").all_inner_texts()
    assert marks and all(m == "7 xx" for m in marks)
    expect(tail.page).to_have_url(re.compile(r"[?&]q=7\+xx"))
    # A regular expression, from a link.
    tail.page.goto(sidecar.url + "/?process=app&q=%5Eline+0%2B%5Cd*%5B05%5D+&re=1")
    tail.wait_text("line ")
    assert tail.filter_box.input_value() == r"^line 0+\d*[05] "
    assert tail.regex_button.get_attribute("aria-pressed") == "true"
    texts = tail.texts()
    assert texts and all(t.startswith("line ") for t in texts), texts
    assert all(n % 5 == 0 for n in tail.numbers_on_screen())
    # A bad expression is flagged, not thrown.
    tail.filter("(unclosed")
    expect(tail.filter_box).to_have_attribute("aria-invalid", "true")


def test_stream_toggles_hide_stdout_or_stderr(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "hostile")
    tail.wait_text("to stderr")
    tail.open_more()
    tail.stream_button("stderr").click()
    expect(tail.tagged("err")).to_have_count(0)
    assert tail.tagged("out").count() > 0
    tail.key("e")
    tail.wait_text("to stderr")
    tail.key("o")
    expect(tail.tagged("out")).to_have_count(0)
    tail.key("o")


def test_scrolling_up_reads_history_back_through_rotated_files(
    tail: TailPage, sidecar: Supervisor
) -> None:
    assert any(p.suffix == ".gz" for p in sidecar.log_files("history"))
    tail.open(sidecar.url, "history")
    tail.wait_text("line 000004999")
    assert min(tail.held_numbers("history:history")) > 0  # a tail, not everything
    for _ in range(30):
        if 0 in tail.held_numbers("history:history"):
            break
        held = len(tail.held_numbers("history:history"))
        tail.key_in_log("Home")
        tail.wait_older_read("history:history", held)
    found = tail.held_numbers("history:history")
    assert found == list(range(5000))
    tail.wait_text("line 000000000")


def test_past_the_retention_limit_older_and_newer_lines_are_a_scroll_away(
    tail: TailPage, sidecar: Supervisor
) -> None:
    record(sidecar, "app", "line 000000400 ")  # more than the page will hold
    tail.open(sidecar.url, "app", retain=300)
    tail.wait_held(100)
    assert len(tail.held_numbers("app:app")) <= 300
    assert min(tail.held_numbers("app:app")) > 0
    for _ in range(30):
        if 0 in tail.held_numbers("app:app"):
            break
        oldest = min(tail.held_numbers("app:app"))
        tail.key_in_log("Home")
        tail.wait_held_below("app:app", oldest)
    found = tail.held_numbers("app:app")
    assert found[0] == 0 and len(found) <= 300 + 500
    assert_contiguous(found)
    # Reading old lines, the newest were let go: live is a click away.
    assert tail.new_lines.inner_text() == "newer lines below — jump to live ↓"
    newest = found[-1] + 200
    record(sidecar, "app", f"line {newest:09d} ")
    tail.go_live()
    # The app writes on: by the time the view is live that very line may have scrolled
    # past, so wait for it or a newer one on screen, and for that line to be held.
    tail.wait_number_above(newest - 1, seen=True)
    assert newest in tail.held_numbers("app:app")
    tail.wait_paused(False)


def test_search_across_history_jumps_to_the_match(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "history")
    tail.wait_text("line 000004999")
    tail.search("line 000000123 ")
    tail.results.first.wait_for(timeout=20_000)
    assert tail.results.count() == 1
    assert tail.results_title.inner_text().startswith("1 match")
    tail.filter("")  # show everything around the match
    tail.results.first.click()
    tail.wait_text("line 000000123 ")
    assert tail.in_view("line 000000123 ")
    assert tail.paused()
    assert_contiguous(tail.held_numbers("history:history"))
    expect(tail.page).to_have_url(re.compile(r"[?&]at="), timeout=5_000)


def test_a_link_with_a_time_opens_the_view_there(tail: TailPage, sidecar: Supervisor) -> None:
    target = record(sidecar, "app", "line 000000050 ")
    tail.open(sidecar.url, "app", at=target["time"])
    tail.wait_text("line 000000050 ")
    assert tail.paused()
    found = tail.held_numbers("app:app")
    assert_contiguous(found)
    assert found[0] == 0 and found[-1] > 50
    assert tail.in_view("line 000000050 ")


def test_jump_to_a_time_from_the_form(tail: TailPage, sidecar: Supervisor) -> None:
    target = record(sidecar, "app", "line 000000060 ")
    tail.open(sidecar.url, "app")
    tail.wait_held(20)
    tail.key("t")  # UTC: the form's time is read as UTC too
    tail.key("j")
    expect(tail.jump_field).to_be_focused(timeout=1)
    # The form takes milliseconds: the record is the first at or after them.
    tail.jump_to(target["time"][:23])
    tail.wait_text("line 000000060 ")
    assert tail.in_view("line 000000060 ")
    tail.wait_paused()
    assert_contiguous(tail.held_numbers("app:app"))


# ------------------------------------------------------------------ views and sharing


def test_merged_view_interleaves_processes_by_time(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "app", "hostile")
    tail.wait_held(20)
    tail.wait_held_from("hostile:hostile")
    keys = tail.held_keys()
    assert keys == sorted(keys)
    assert tail.title.inner_text() == "app + hostile"  # as supervisorctl shows them
    # Line 1 of each, on screen together, each with its process badge.
    tail.filter("line 000000001 ")
    expect(tail.rows.locator(".proc")).to_have_count(2)
    assert sorted(r.process for r in tail.shown()) == ["app", "hostile"]
    # "+" in the list adds a third process to the view.
    tail.filter("")
    tail.add_process("colours:colours")
    tail.wait_held_text("red alert")
    expect(tail.page).to_have_url(re.compile(r"process=colours%3Acolours"))


def download(tail: TailPage, sup: Supervisor, control: str) -> str:
    """Open hostile's log, pick ``control`` in the download menu, read the file."""
    tail.open(sup.url, "hostile")
    tail.wait_text("Password: typed")
    tail.open_more()
    if control == "shown":
        return tail.download(tail.page.get_by_role("button", name="download shown lines"))
    return tail.download(tail.download_links)


def test_download_of_the_lines_shown(tail: TailPage, sidecar: Supervisor) -> None:
    text = download(tail, sidecar, "shown")
    assert f"stdout line 000000001 {HOSTILE}\n" in text
    assert "stderr line 000000002 to stderr\n" in text
    assert "stdout Password: typed\n" in text
    assert tail.download_links.get_attribute("href") == "/api/log/hostile%3Ahostile/download"


def test_whole_log_download(tail: TailPage, sidecar: Supervisor) -> None:
    text = download(tail, sidecar, "whole")
    assert f" stdout line 000000001 {HOSTILE}\n" in text
    assert " stderr line 000000002 to stderr\n" in text


def long_row(tail: TailPage) -> Tuple[float, float]:
    """The long line's row: its height, and the gap to the row after it."""
    texts = [r.text for r in tail.shown()]
    index = next(i for i, t in enumerate(texts) if "long yyy" in t)
    a, b = tail.rows.nth(index).bounding_box(), tail.rows.nth(index + 1).bounding_box()
    assert a is not None and b is not None
    return a["height"], b["y"] - (a["y"] + a["height"])


def test_wrap_toggle_and_themes(tail: TailPage, sidecar: Supervisor) -> None:
    tail.page.emulate_media(color_scheme="dark")
    tail.open(sidecar.url, "colours")
    tail.wait_text("exited with code 3")
    assert tail.background() == "rgb(21, 23, 26)"  # the system's dark theme
    tail.theme_button.click()
    assert tail.theme_button.inner_text() == "theme: light"
    assert tail.background() == "rgb(255, 255, 255)"
    tail.page.emulate_media(color_scheme="light")
    tail.theme_button.click()
    assert tail.theme_button.inner_text() == "theme: dark"
    assert tail.background() == "rgb(21, 23, 26)"  # chosen over the system's
    # Wrapped, the collapsed long line takes several rows' height, and the
    # rows after it start below it.
    height, after = long_row(tail)
    assert height < 20
    tail.key("w")
    assert tail.wrap_button.get_attribute("aria-pressed") == "true"
    wait_for(lambda: long_row(tail)[0] > 100, 10, "the long line wrapped")
    height, after = long_row(tail)
    assert height > 100 and abs(after) < 1


def test_an_uncaptured_process_is_shown_from_its_supervisord_log(
    tail: TailPage, sidecar: Supervisor
) -> None:
    wait_for(lambda: (sidecar.workdir / "plain.out").exists(), 20, "plain's log")
    tail.open(sidecar.url, "plain")
    tail.wait_held(5)
    listed = tail.process("plain:plain")
    assert "uncaptured" in (listed.get_attribute("class") or "")
    assert "not captured" in listed.locator(".detail").inner_text()
    found = tail.held_numbers("plain:plain")
    assert_contiguous(found)
    # supervisord's file has no times: none are shown, or made up.
    assert tail.shown()[0].time == ""


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


def test_level_marks_counts_and_the_level_filter(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "levelled")
    tail.wait_text("plain stdout line")
    tail.wait_held(len(LEVELLED) + 1)  # and the start marker
    marks = {r.text: r.level for r in tail.shown() if not r.marker}
    assert marks["INFO:app:ready"] == "I"
    assert marks["WARNING:app:slow start"] == "W"
    assert marks["ERROR:app:it failed"] == "E"
    assert marks["DEBUG:app:details"] == "D"
    assert marks["plain stderr line"] == "" and marks["plain stdout line"] == ""
    assert marks["request failed"] == "E" and marks["cache miss"] == "W"
    # Not colour only: the letter, and the level's colour on the row.
    colours = {r.text: (r.colour, r.tag) for r in tail.shown() if not r.marker}
    assert [t for t, (c, _) in colours.items() if c == "l-stderr"] == ["plain stderr line"]
    assert [t for t, c in colours.items() if c == ("l-error", "err")] == ["ERROR:app:it failed"]
    # The counts of the lines held, in the counts bar (levels with none: not shown),
    # brought up to date a few times a second.
    expect(tail.page.locator("#count-info")).to_have_text("I 3")
    counts = {
        level: tail.level_count(level)
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
    assert tail.level_button("error").inner_text() == "E"  # the toggles keep their size
    # Hide info and debug, then the lines with no level.
    tail.level_button("info").click()
    tail.level_button("debug").click()
    expect(tail.of_level("info")).to_have_count(0)
    assert tail.level_button("info").get_attribute("aria-pressed") == "false"
    assert tail.of_level("debug").count() == 0
    assert "ERROR:app:it failed" in tail.texts()
    tail.level_button("other").click()
    expect(tail.of_level("none")).to_have_count(0)
    expect(tail.of_level("stderr")).to_have_count(0)
    assert sorted(r.text for r in tail.shown() if not r.marker) == sorted(
        ["WARNING:app:slow start", "ERROR:app:it failed", "request failed", "cache miss"]
    )
    assert "shown" in tail.counts.inner_text()
    tail.level_button("info").click()
    tail.wait_text("INFO:app:ready")


def test_json_lines_show_chips_expand_and_filter_by_field(
    tail: TailPage, sidecar: Supervisor
) -> None:
    tail.open(sidecar.url, "levelled")
    tail.wait_text("request failed")
    chips = {r.text: r.chips for r in tail.shown()}
    assert chips["request failed"] == ["level=error", "status=500", "user.id=42", "path=/api"]
    assert chips["cache miss"] == ["level=warn", "key=user:42", "status=500"]
    # Text that only looks like JSON stays a plain line.
    assert chips['{"looks": "like json", but not}'] == []
    # A chip expands the line's fields to pretty JSON.
    tail.line("request failed").locator(".chip", has_text="user.id=42").click()
    tail.fields.wait_for(state="visible")
    assert json.loads(tail.fields_json.inner_text()) == json.loads(LEVELLED[6][1])
    assert tail.fields_json.inner_text().startswith('{\n  "level": "error",')
    tail.key("Escape")
    tail.fields.wait_for(state="hidden")
    # A field filter, nested keys included: JSON and logfmt lines alike.
    tail.filter("status=500")
    tail.wait_filtered()
    assert sorted(tail.texts()) == ["cache miss", "request failed"]
    assert tail.rows.locator(".chip.hit").all_inner_texts() == ["status=500", "status=500"]
    tail.filter("user.id=7")
    expect(tail.row_texts).to_have_text(["request ok"])
    expect(tail.page).to_have_url(re.compile(r"[?&]q=user\.id%3D7"))


def test_hostile_json_keys_and_values_stay_text(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "levelled")
    tail.wait_text("<img src=x")
    row = tail.line("<img src=x")
    assert row.locator(".text").inner_text() == '<img src=x onerror="window.__pwned=3">'
    chip = "<img src=x onerror=window.__pwned=4>=<script>window.__pwned=5</script>"
    assert row.locator(".chip").all_inner_texts() == ["level=info", chip]
    row.locator(".chip").nth(1).click()
    tail.fields.wait_for(state="visible")
    assert "<script>window.__pwned=5</script>" in tail.fields_json.inner_text()
    assert tail.page.locator("#log img, #log script, #fields img, #fields script").count() == 0
    assert tail.page.evaluate("window.__pwned") is None  # the test's canary, not the page's


# ------------------------------------------------------------------ scale


@pytest.fixture
def flood(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisors() as started:
        sup = started(
            serving(
                tmp_path,
                {"big": program(emit("rate", 200_000, 20_000), autostart="false", startsecs="0")},
            )
        )
        yield sup


def test_dom_stays_small_with_200000_lines(flood: Supervisor, tail: TailPage) -> None:
    wait_for(lambda: get(flood.url + "/api/processes")[0] == 200, 20, "the sidecar")
    tail.open(flood.url, "big")
    tail.wait_connection("live")
    flood.rpc.supervisor.startProcess("big")
    tail.wait_held_stream("stdout", 200_000, timeout=120_000)
    assert_contiguous(tail.held_numbers("big:big"))
    nodes = tail.page.evaluate("document.getElementsByTagName('*').length")
    assert nodes < 2000, nodes
    assert tail.rows.count() < 150
    tail.wait_text("line 000199999")
    # Scrolling to the middle shows the lines there, and only those.
    tail.scroll_to(0.5)
    tail.wait_number_near(100_000, 200)
    assert tail.paused()


def test_a_merged_view_with_an_uncaptured_process_jumps_and_scrolls_back(
    tail: TailPage, sidecar: Supervisor
) -> None:
    target = record(sidecar, "app", "line 000000030 ")
    wait_for(lambda: (sidecar.workdir / "plain.out").exists(), 20, "plain's log")
    tail.open(sidecar.url, "app", "plain", at=target["time"])
    tail.wait_text("line 000000030 ")
    assert tail.notice.is_hidden()
    tail.wait_held_from("plain:plain")
    assert_contiguous(tail.held_numbers("app:app"))
    assert_contiguous(tail.held_numbers("plain:plain"))
    # Scrolling back: older lines of both, still no gap and no duplicate.
    tail.key_in_log("Home")
    tail.wait_history_read()
    assert tail.held_numbers("app:app")[0] == 0
    assert_contiguous(tail.held_numbers("app:app"))
    assert_contiguous(tail.held_numbers("plain:plain"))


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisors() as started:
        sup = started(
            serving(
                tmp_path, {"a": program(emit("tick", 0.001)), "b": program(emit("tick", 0.001))}
            )
        )
        yield sup


def test_changing_the_view_while_lines_pour_in_never_duplicates(
    busy: Supervisor, tail: TailPage
) -> None:
    for name in ("a", "b"):
        record(busy, name, "line 000000500 ")
    tail.open(busy.url, "a")
    tail.wait_held(500)
    for name in ("b", "b", "b", "a"):  # add b, remove it, add it, remove a
        tail.add_process(f"{name}:{name}")
        tail.wait_settled(200)
    assert tail.title.inner_text() == "b"
    held = tail.held_records()
    assert len(held) == len(set(held)), "a record shown twice"
    assert_contiguous(tail.held_numbers("b:b"))


def test_a_history_answer_for_a_view_since_left_is_dropped(
    tail: TailPage, sidecar: Supervisor
) -> None:
    held: List[Any] = []
    tail.page.route(
        # Older lines (by cursor), not the newest page the view opens with.
        lambda url: "/api/log/history" in url and "direction=backward" in url and "cursor=" in url,
        lambda route: held.append(route),
    )
    tail.open(sidecar.url, "history")
    tail.wait_text("line 000004999")
    tail.key_in_log("Home")
    # Route handlers run while Playwright is at work: each look asks the page something.
    wait_for(lambda: held or tail.page.evaluate("false"), 10, "the history read to be held")
    tail.open_process("hostile:hostile")
    tail.wait_text("to stderr")
    with tail.page.expect_response(lambda response: "/api/log/history" in response.url) as answered:
        held[0].continue_()
    assert answered.value.ok
    tail.wait_history_read()
    assert tail.held_processes() == ["hostile:hostile"]


# ------------------------------------------------------------------ connection


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisors() as started:
        sup = started(
            serving(
                tmp_path,
                {"app": program(emit("tick", 0.05))},
                streamlog={"username": "ops", "password": "right"},
            )
        )
        yield sup


def test_page_says_so_when_its_credentials_stop_working(
    guarded: Supervisor, browser: Browser
) -> None:
    context = browser.new_context(http_credentials={"username": "ops", "password": "right"})
    try:
        tail = TailPage(context.new_page())
        tail.open(guarded.url, "app")
        tail.wait_held(5)
        tail.wait_connection("live")
        # The password changes and the sidecar restarts: the page cannot get back in.
        guarded.conf.write_text(
            guarded.conf.read_text().replace("password = right", "password = new")
        )
        guarded.rpc.supervisor.stopProcess("sidecar")
        guarded.rpc.supervisor.startProcess("sidecar")
        tail.wait_connection("auth", timeout=30_000)
        assert "not authorised" in tail.connection.inner_text()
    finally:
        context.close()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisors() as started:
        sup = started(serving(tmp_path, {"app": program(emit("tick", 0.02))}))
        yield sup


def test_page_resumes_after_the_sidecar_restarts_with_no_gap_and_no_duplicate(
    restartable: Supervisor, tail: TailPage
) -> None:
    wait_for(lambda: get(restartable.url + "/api/log/app")[0] == 200, 20, "app's log")
    tail.open(restartable.url, "app")
    # Held, not necessarily on screen: at 50 lines/s a following view has
    # scrolled line 10 away by the time a check for its row runs.
    tail.wait_held(11)
    restartable.rpc.supervisor.stopProcess("sidecar")
    # Read together: the status says "reconnecting…" again at each retry.
    tail.wait_connection("down", "unreachable")
    before = max(tail.held_numbers("app:app"))
    # The child goes on writing while the sidecar is away.
    wait_for(
        lambda: f"line {before + 100:09d}" in restartable.read_bytes("app").decode(),
        20,
        "more lines while the sidecar is down",
    )
    restartable.rpc.supervisor.startProcess("sidecar")
    tail.wait_connection("live", timeout=30_000)
    tail.wait_held_text(f"line {before + 150:09d}", timeout=30_000)
    assert_contiguous(tail.held_numbers("app:app"))
