"""The page's volume timeline in real Chromium, against the real sidecar under a real
supervisord: the bars drawn are the records, a click jumps to its time, live
records make the newest bucket grow."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Dict, Iterator, List

import pytest
from playwright.sync_api import Page

from .helpers import LEVEL_EXTRA_CASES
from .histogram_counts import counted, is_error, seconds
from .sidecar import get, history, with_sidecar
from .supervisor import Supervisor, emit, program, wait_for
from .test_browser import browser, in_view, page, wait_paused  # noqa: F401 (fixtures)

__all__ = ["browser", "page"]


def text(prefix: str, n: int, levels: bool) -> str:
    """The nth line; with ``levels``, some error-level (a plain ERROR, a JSON fatal)."""
    if levels and n % 17 == 3:
        return f"ERROR: {prefix} {n:09d} failed"
    if levels and n % 19 == 7:
        return f'{{"level":"fatal","msg":"{prefix} {n:09d}"}}'
    return f"{prefix} {n:09d} {'w' * (n % 40)}"


def steps(prefix: str, count: int, every: int, levels: bool = False) -> List[Any]:
    """``count`` numbered lines, one in five to stderr, a pause after every ``every``."""
    found: List[Any] = []
    for n in range(count):
        stream = "err" if n % 5 == 2 else "out"
        found.append([stream, (text(prefix, n, levels) + "\n").encode().hex()])
        if n % every == every - 1:
            found.append(["sleep", 0.5])
    return found


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    tmp = tmp_path_factory.mktemp("timeline")
    spread = steps("line", 600, 50, levels=True) + [["exit", 3]]
    (tmp / "spread.json").write_text(json.dumps(spread))
    alarm: List[Any] = []
    for n in range(400):  # an error-level line every 0.3 s, with plain ones between
        alarm.append(["err", f"ERROR: alarm {n:06d}\n".encode().hex()])
        alarm.append(["out", f"calm {n:06d}\n".encode().hex()])
        alarm.append(["sleep", 0.3])
    (tmp / "alarm.json").write_text(json.dumps(alarm))
    (tmp / "other.json").write_text(json.dumps(steps("other", 90, 30) + [["sleep", 3600]]))
    once = {"autorestart": "false", "startsecs": "0"}
    sup = with_sidecar(
        tmp,
        {
            "spread": program(emit("script", tmp / "spread.json"), **once),
            "other": program(emit("script", tmp / "other.json")),
            "ticker": program(emit("tick", 0.05)),
            "alarm": program(emit("script", tmp / "alarm.json"), autorestart="false"),
            # Not captured: shown from supervisord's own log, without times.
            "plain": program(emit("tick", 0.2), stdout_logfile=str(tmp / "plain.out")),
        },
        streamlog={
            "maxbytes": "8KB",
            "compress": "true",
            "backups": "100",
            "programs": "spread other ticker alarm",
        },
    )
    try:
        for name in ("spread", "other", "ticker", "plain"):
            wait_for(partial(answers, f"{sup.url}/api/log/{name}"), 30, f"{name}'s log")
        sup.wait_state("spread", "EXITED")
        wait_for(partial(finished, sup, "spread", "EXITED"), 30, "spread's exit record")
        wait_for(partial(finished, sup, "other", "other 000000089"), 30, "other's last line")
        yield sup
    finally:
        sup.stop()


def answers(url: str) -> bool:
    return get(url)[0] == 200


def finished(sup: Supervisor, name: str, text: str) -> bool:
    return text in json.dumps(get(f"{sup.url}/api/log/{name}?limit=40")[1])


def drawn(page: Page) -> Dict[str, Any]:
    """What the timeline last drew: its span, buckets and counts."""
    page.wait_for_function(
        "() => document.getElementById('timeline-canvas')?.dataset.counts !== undefined"
    )
    data = page.evaluate(
        """() => {
            const c = document.getElementById('timeline-canvas');
            return {since: Number(c.dataset.since), until: Number(c.dataset.until),
                    buckets: Number(c.dataset.buckets), counts: JSON.parse(c.dataset.counts),
                    width: c.clientWidth, window: c.dataset.window,
                    errorMarks: JSON.parse(c.dataset.errorMarks)};
        }"""
    )
    return dict(data)


def test_the_bars_are_the_records_of_each_bucket(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=spread")
    shown = drawn(page)
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    assert len(sidecar.log_files("spread")) > 5  # rotated, the older files compressed
    counts, exits = counted(entries, shown["since"], shown["until"], shown["buckets"])
    for name in ("stdout", "stderr", "exits", "errors"):
        assert shown["counts"][name] == counts[name], name
    assert sum(counts["stdout"]) + sum(counts["stderr"]) == 600
    # Error-level lines: counted as the page reads them, a mark on each bucket holding some.
    assert sum(counts["errors"]) == sum(1 for n in range(600) if is_error(text("line", n, True)))
    assert shown["errorMarks"] == [i for i, n in enumerate(counts["errors"]) if n]
    assert len(shown["errorMarks"]) > 3
    assert shown["counts"]["exitTimes"] == pytest.approx(exits, abs=1e-6) and len(exits) == 1
    assert shown["buckets"] >= 10 and sum(1 for n in counts["stdout"] if n) > 3
    # The window in view is outlined: it ends at the newest line (following).
    first, last = (float(t) for t in shown["window"].split(","))
    assert first <= last == pytest.approx(seconds(entries[-1]["time"]), abs=1e-3)


def test_a_merged_view_counts_every_process_in_view(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=spread&process=other")
    page.wait_for_function(
        "() => JSON.parse(document.getElementById('timeline-canvas')?.dataset.counts ?? 'null')"
        "?.stdout.reduce((a, b) => a + b, 0) >= 550"
    )
    shown = drawn(page)
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    entries += history(sidecar.url, "other:other", 0, 2**62)
    counts, _ = counted(entries, shown["since"], shown["until"], shown["buckets"])
    assert shown["counts"]["stdout"] == counts["stdout"]
    assert shown["counts"]["stderr"] == counts["stderr"]
    assert sum(counts["stdout"]) + sum(counts["stderr"]) == 690


def test_a_process_without_times_is_left_out(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=spread&process=plain")
    page.wait_for_function(
        "() => JSON.parse(document.getElementById('timeline-canvas')?.dataset.counts ?? 'null')"
        "?.stdout.reduce((a, b) => a + b, 0) >= 480"
    )
    shown = drawn(page)
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    counts, _ = counted(entries, shown["since"], shown["until"], shown["buckets"])
    assert shown["counts"]["stdout"] == counts["stdout"]
    # Only uncaptured processes: no timeline at all.
    page.goto(sidecar.url + "/?process=plain")
    page.wait_for_function("() => window.streamlog.store.lines.length > 3")
    assert page.locator("#timeline").is_hidden()


def test_a_click_jumps_to_that_time(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=spread")
    shown = drawn(page)
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    target = next(e for e in entries if e["text"].startswith("line 000000300 "))
    x = (seconds(target["time"]) - shown["since"]) / (shown["until"] - shown["since"])
    box = page.locator("#timeline-canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + x * box["width"], box["y"] + box["height"] / 2)
    wait_paused(page)
    jumped = page.wait_for_function(
        "() => document.getElementById('timeline-canvas').dataset.jumped"
    ).json_value()
    when = seconds(jumped)
    # Within the time one pixel stands for, of the record aimed at.
    pixel = (shown["until"] - shown["since"]) / box["width"]
    assert abs(when - seconds(target["time"])) <= pixel
    # The lines shown start at that time: the first record at or after it is
    # the line jumped to (in view, marked), and the record before it is older.
    first = next(e for e in entries if seconds(e["time"]) >= when)
    before = entries[entries.index(first) - 1]
    assert seconds(before["time"]) < when
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('#log .row.flash .text')]
            .some((e) => e.textContent.startsWith(text))""",
        arg=first["text"],
    )
    assert in_view(page, first["text"])
    # And the outline moved there.
    page.wait_for_function(
        """(t) => {
            const w = document.getElementById('timeline-canvas').dataset.window.split(',');
            return Number(w[0]) <= t && t <= Number(w[1]);
        }""",
        arg=seconds(first["time"]),
    )


def test_a_drag_jumps_where_it_is_let_go(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=spread")
    drawn(page)
    box = page.locator("#timeline-canvas").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.9, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.3, y, steps=5)
    page.mouse.up()
    wait_paused(page)
    shown = drawn(page)
    jumped = seconds(
        page.wait_for_function(
            "() => document.getElementById('timeline-canvas').dataset.jumped"
        ).json_value()
    )
    share = (jumped - shown["since"]) / (shown["until"] - shown["since"])
    assert share == pytest.approx(0.3, abs=2 / box["width"])


def grows_live(page: Page, column: str, marked: bool = False) -> None:
    """Wait until the drawn count of ``column`` grew between two looks 0.7 s
    apart with no histogram request in between (and, ``marked``, with error
    marks drawn): the page counted live records itself."""
    page.wait_for_function(
        """([column, marked]) => {
            const n = performance.getEntriesByType('resource')
                .filter((e) => e.name.includes('/histogram')).length;
            const c = document.getElementById('timeline-canvas').dataset;
            const total = JSON.parse(c.counts)[column].reduce((a, b) => a + b, 0);
            const key = '__grown_' + column;
            const before = window[key];
            window[key] = {n, total};
            return before !== undefined && before.n === n && total > before.total
                && (!marked || JSON.parse(c.errorMarks).length > 0);
        }""",
        arg=[column, marked],
        polling=700,
        timeout=20_000,
    )


def test_live_records_make_the_newest_bucket_grow(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=ticker")
    drawn(page)
    # Grown between two looks with no histogram request in between: counted live.
    grows_live(page, "stdout")
    # Exactly the records up to where it counted, whether read or counted live.
    state = page.evaluate(
        """() => {
            const t = window.streamlog.timeline;
            return {counts: t.data.stdout, status: t.data.status,
                    counted: t.counted.get('ticker:ticker')};
        }"""
    )
    entries = history(sidecar.url, "ticker:ticker", 0, state["counted"])
    assert sum(state["counts"]) == sum(1 for e in entries if e["stream"] == "stdout")
    assert sum(state["status"]) == sum(1 for e in entries if e["stream"] == "status")


def test_live_error_level_lines_are_marked_as_they_come(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=alarm")
    drawn(page)
    # More errors between two looks with no histogram request in between: counted live.
    grows_live(page, "errors", marked=True)
    # Exactly the error-level lines up to where it counted, whether read or counted live.
    state = page.evaluate(
        """() => {
            const t = window.streamlog.timeline;
            return {errors: t.data.errors, stdout: t.data.stdout,
                    from: t.errorsFrom.get('alarm:alarm')};
        }"""
    )
    entries = history(sidecar.url, "alarm:alarm", 0, state["from"])
    assert sum(state["errors"]) == sum(1 for e in entries if e["text"].startswith("ERROR: "))
    assert sum(1 for e in entries if e["text"].startswith("calm ")) > 0  # not errors


def test_readable_in_both_themes(page: Page, sidecar: Supervisor) -> None:
    page.goto(sidecar.url + "/?process=spread")
    drawn(page)
    seen = {}
    for _ in range(3):
        page.locator("#theme").click()
        theme = page.evaluate("document.documentElement.dataset.theme")
        colours = page.evaluate(
            """() => {
                const style = (s) => getComputedStyle(document.querySelector(s));
                return {bar: style('.tl-stdout').color, err: style('.tl-stderr').color,
                        error: style('.tl-error').color,
                        ground: style('#timeline').backgroundColor};
            }"""
        )
        assert len(set(colours.values())) == 4
        seen[theme] = colours
    assert {"light", "dark"} <= set(seen) and seen["light"] != seen["dark"]


def test_the_page_gives_the_extra_cases_the_levels_the_sidecar_does(
    page: Page, sidecar: Supervisor
) -> None:
    """tests/helpers.py's LEVEL_EXTRA_CASES (escapes, logfmt, numbers, code units)
    through the page's own Line: the port in logread/levels.py is checked against the
    same table (tests/test_levels.py)."""
    page.goto(sidecar.url + "/")
    got: List[Any] = page.evaluate(
        """async (cases) => {
            const { Line } = await import('/static/lines.js');
            return cases.map(([text, stream]) => new Line('p', {stream, text}).level);
        }""",
        [[text, stream] for text, stream, _ in LEVEL_EXTRA_CASES],
    )
    wrong = [
        (text, want, level)
        for (text, _, want), level in zip(LEVEL_EXTRA_CASES, got)
        if level != want
    ]
    assert not wrong
