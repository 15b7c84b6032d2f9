"""The page's volume timeline in real Chromium, against the real sidecar under a real
supervisord: the bars drawn are the records, a click jumps to its time, live
records make the newest bucket grow."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Iterator, List

import pytest
from playwright.sync_api import Page

from .browsing import answers
from .helpers import LEVEL_EXTRA_CASES
from .histogram_counts import counted, is_error, seconds
from .page import TailPage
from .sidecar import get, history, serving
from .supervisor import Supervisor, Supervisors, emit, program, wait_for


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
    with Supervisors() as started:
        sup = started(
            serving(
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
        )
        for name in ("spread", "other", "ticker", "plain"):
            wait_for(partial(answers, f"{sup.url}/api/log/{name}"), 30, f"{name}'s log")
        sup.wait_state("spread", "EXITED")
        wait_for(partial(finished, sup, "spread", "EXITED"), 30, "spread's exit record")
        wait_for(partial(finished, sup, "other", "other 000000089"), 30, "other's last line")
        yield sup


def finished(sup: Supervisor, name: str, text: str) -> bool:
    return text in json.dumps(get(f"{sup.url}/api/log/{name}?limit=40")[1])


def test_the_bars_are_the_records_of_each_bucket(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "spread")
    shown = tail.drawn()
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


def test_a_merged_view_counts_every_process_in_view(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "spread", "other")
    tail.wait_drawn("stdout", 550)
    shown = tail.drawn()
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    entries += history(sidecar.url, "other:other", 0, 2**62)
    counts, _ = counted(entries, shown["since"], shown["until"], shown["buckets"])
    assert shown["counts"]["stdout"] == counts["stdout"]
    assert shown["counts"]["stderr"] == counts["stderr"]
    assert sum(counts["stdout"]) + sum(counts["stderr"]) == 690


def test_a_process_without_times_is_left_out(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "spread", "plain")
    tail.wait_drawn("stdout", 480)
    shown = tail.drawn()
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    counts, _ = counted(entries, shown["since"], shown["until"], shown["buckets"])
    assert shown["counts"]["stdout"] == counts["stdout"]
    # Only uncaptured processes: no timeline at all.
    tail.open(sidecar.url, "plain")
    tail.wait_held(4)
    assert tail.timeline.is_hidden()


def test_a_click_jumps_to_that_time(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "spread")
    shown = tail.drawn()
    entries = history(sidecar.url, "spread:spread", 0, 2**62)
    target = next(e for e in entries if e["text"].startswith("line 000000300 "))
    x = (seconds(target["time"]) - shown["since"]) / (shown["until"] - shown["since"])
    box = tail.canvas.bounding_box()
    assert box is not None
    tail.page.mouse.click(box["x"] + x * box["width"], box["y"] + box["height"] / 2)
    tail.wait_paused()
    when = seconds(tail.jumped())
    # Within the time one pixel stands for, of the record aimed at.
    pixel = (shown["until"] - shown["since"]) / box["width"]
    assert abs(when - seconds(target["time"])) <= pixel
    # The lines shown start at that time: the first record at or after it is
    # the line jumped to (in view, marked), and the record before it is older.
    first = next(e for e in entries if seconds(e["time"]) >= when)
    before = entries[entries.index(first) - 1]
    assert seconds(before["time"]) < when
    tail.flashed(first["text"]).first.wait_for()
    assert tail.in_view(first["text"])
    # And the outline moved there.
    tail.wait_window_covers(seconds(first["time"]))


def test_a_drag_jumps_where_it_is_let_go(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "spread")
    tail.drawn()
    box = tail.canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    mouse = tail.page.mouse
    mouse.move(box["x"] + box["width"] * 0.9, y)
    mouse.down()
    mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    mouse.move(box["x"] + box["width"] * 0.3, y, steps=5)
    mouse.up()
    tail.wait_paused()
    shown = tail.drawn()
    jumped = seconds(tail.jumped())
    share = (jumped - shown["since"]) / (shown["until"] - shown["since"])
    assert share == pytest.approx(0.3, abs=2 / box["width"])


def grows_live(tail: TailPage, column: str, marked: bool = False) -> None:
    """Wait until the drawn count of ``column`` grew between two looks 0.7 s
    apart with no histogram request in between (and, ``marked``, with error
    marks drawn): the page counted live records itself (the requests made are
    the browser's resource timings; the last look is kept on window)."""
    tail.page.wait_for_function(
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


def test_live_records_make_the_newest_bucket_grow(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "ticker")
    tail.drawn()
    # Grown between two looks with no histogram request in between: counted live.
    grows_live(tail, "stdout")
    # Exactly the records up to where it counted, whether read or counted live.
    # Internal: the offset it has counted up to is not shown, and the counts must
    # be read with it in one look.
    state = tail.page.evaluate(
        """() => {
            const t = window.streamlog.timeline;
            return {counts: t.data.stdout, status: t.data.status,
                    counted: t.counted.get('ticker:ticker')};
        }"""
    )
    entries = history(sidecar.url, "ticker:ticker", 0, state["counted"])
    assert sum(state["counts"]) == sum(1 for e in entries if e["stream"] == "stdout")
    assert sum(state["status"]) == sum(1 for e in entries if e["stream"] == "status")


def test_live_error_level_lines_are_marked_as_they_come(
    tail: TailPage, sidecar: Supervisor
) -> None:
    tail.open(sidecar.url, "alarm")
    tail.drawn()
    # More errors between two looks with no histogram request in between: counted live.
    grows_live(tail, "errors", marked=True)
    # Exactly the error-level lines up to where it counted, whether read or counted live.
    # Internal: the offset it has counted errors up to is not shown (read in one look).
    state = tail.page.evaluate(
        """() => {
            const t = window.streamlog.timeline;
            return {errors: t.data.errors, stdout: t.data.stdout,
                    from: t.errorsFrom.get('alarm:alarm')};
        }"""
    )
    entries = history(sidecar.url, "alarm:alarm", 0, state["from"])
    assert sum(state["errors"]) == sum(1 for e in entries if e["text"].startswith("ERROR: "))
    assert sum(1 for e in entries if e["text"].startswith("calm ")) > 0  # not errors


def test_readable_in_both_themes(tail: TailPage, sidecar: Supervisor) -> None:
    tail.open(sidecar.url, "spread")
    tail.drawn()
    seen = {}
    for _ in range(3):
        tail.theme_button.click()
        theme = tail.theme_button.inner_text().removeprefix("theme: ")
        # The colours the bars are drawn in, as the stylesheet gives them.
        colours = tail.page.evaluate(
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
