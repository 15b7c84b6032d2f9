"""The tail page as a user sees it, for the browser tests: open a process, add one,
type a filter, pause, go live, jump to a time, search, toggle streams, levels,
timestamps and wrapping; read the lines shown, the status indicator, the notice,
the counts bar and the process list.

Built on Playwright locators and on what the page shows: roles, labels, text,
aria-pressed, the rows' parts.  The view is virtualized (only the rows near the
screen are in the document), so what the page *holds* beyond them cannot be
seen; the few readers of ``window.streamlog`` below say so, and are the only ones.
It is the one place the browser tests know the page's markup: a change of the
page is met here, not in five test modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# A numbered line of the test children (tests/children): "line 000000042 ...".
NUMBERED = re.compile(r"^line (\d{9})")


@dataclass
class Shown:
    """One row on screen, as read: its text, its stream tag ("out", "err", or a
    marker's "●" / "!"), its level letter ("" for none), its process badge (merged
    views), its time, and its chips (structured lines)."""

    text: str
    tag: str
    level: str
    process: str = ""
    process_title: str = ""
    time: str = ""
    time_title: str = ""
    marker: bool = False
    tone: str = ""
    colour: str = ""  # the level class its colour is drawn from: "l-error", "l-stderr"...
    chips: List[str] = field(default_factory=list)

    @property
    def number(self) -> Optional[int]:
        """A numbered line's number, None for any other line."""
        found = NUMBERED.match(self.text) if self.tag == "out" else None
        return int(found.group(1)) if found else None


# Each rendered row's parts, read in one round trip.
READ_ROWS = """(rows) => rows.map((row) => {
    const part = (s) => row.querySelector(s);
    return {
        text: part('.text')?.textContent ?? '', tag: part('.tag')?.textContent ?? '',
        level: part('.lvl')?.textContent ?? '',
        process: part('.proc')?.textContent ?? '', process_title: part('.proc')?.title ?? '',
        time: part('.ts')?.textContent ?? '', time_title: part('.ts')?.title ?? '',
        marker: row.classList.contains('marker'),
        tone: row.classList.contains('good') ? 'good' : row.classList.contains('bad') ? 'bad' : '',
        colour: [...row.classList].find((c) => c.startsWith('l-')) ?? '',
        chips: [...row.querySelectorAll('.chip')].map((c) => c.textContent),
    };
})"""

# The toolbar's controls, each's box, and the bar's: what a user sees laid out.
GEOMETRY = """() => {
    const bar = document.querySelector('.toolbar').getBoundingClientRect();
    const boxes = [...document.querySelectorAll(
        '.toolbar h2, .toolbar > button, .toolbar .group > button, .toolbar .levels > button,'
        + ' .toolbar input, .toolbar summary')]
      .filter(e => e.offsetParent && !e.closest('.menu'))
      .map(e => { const r = e.getBoundingClientRect();
                  return {id: e.id || e.textContent, top: r.top, bottom: r.bottom,
                          left: r.left, right: r.right, height: r.height}; });
    return {bar: {top: bar.top, bottom: bar.bottom, left: bar.left, right: bar.right,
                  height: bar.height},
            boxes, width: document.documentElement.clientWidth,
            scrollWidth: document.documentElement.scrollWidth};
}"""

# Whether a rendered row starting with a text lies inside the log's box (to ``slack`` px).
ROW_IN_VIEW = """([text, slack]) => {
    const box = document.getElementById('log').getBoundingClientRect();
    return [...document.querySelectorAll('#log [role=listitem]')].some(row => {
        const r = row.getBoundingClientRect();
        const t = row.querySelector('.text');
        return t && t.textContent.startsWith(text)
            && r.top >= box.top - slack && r.bottom <= box.bottom + slack;
    });
}"""

# Whether a numbered line above n is on screen (``seen``: inside the log's box, to a pixel).
NUMBER_SHOWN = """([n, seen]) => {
    const box = document.getElementById('log').getBoundingClientRect();
    return [...document.querySelectorAll('#log [role=listitem] .text')].some(e => {
        const r = e.getBoundingClientRect();
        return e.textContent.startsWith('line ') && Number(e.textContent.slice(5, 14)) > n
            && (!seen || (r.bottom <= box.bottom + 1 && r.top >= box.top));
    });
}"""

# The number of lines held, as the counts bar says it ("12,345 lines · 20 shown · paused").
HELD_SAID = """() => {
    const m = document.getElementById('counts').textContent.match(/^([\\d,.\\s\\u202f]+) lines/);
    return m ? Number(m[1].replace(/\\D/g, '')) : 0;
}"""


class TailPage:
    """The tail page in a Playwright page, as a user acts on it and reads it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.log = page.get_by_role("log", name="Log lines")
        self.rows = self.log.get_by_role("listitem")
        self.row_texts = self.rows.locator(".text")
        self.connection = page.locator("#connection")  # role=status: its text, its data-state
        self.action_status = page.locator("#action-status")
        self.actions = page.get_by_role("group", name="Process control")
        self.action_menu = page.locator("#action-more")
        self.pause_button = page.locator("#pause")
        self.filter_box = page.get_by_role("searchbox", name="Filter lines")
        self.regex_button = page.locator("#regex")
        self.search_button = page.locator("#search")
        self.results = page.locator("#results-list button")
        self.results_title = page.locator("#results-title")
        self.results_where = page.locator("#results-list .where")
        self.jump_field = page.get_by_role("textbox", name="Jump to time (j)")
        self.jump_button = page.locator("#jump-go")
        self.more_menu = page.locator("#more")
        self.time_button = page.locator("#time")
        self.wrap_button = page.locator("#wrap")
        self.theme_button = page.locator("#theme")
        self.notice = page.get_by_role("alert")
        self.counts = page.locator("#counts")
        self.new_lines = page.locator("#new-lines")
        self.title = page.locator("#title")
        self.fields = page.locator("#fields")
        self.fields_json = page.locator("#fields-json")
        self.download_links = page.locator("#download-links a")
        self.help = page.locator("#help")
        self.timeline = page.locator("#timeline")
        self.canvas = page.locator("#timeline-canvas")

    # ------------------------------------------------------------ opening

    def open(self, base: str, *processes: str, **params: Any) -> TailPage:
        """Go to the page at ``base`` with these processes in view (and ``q``, ``re``,
        ``at``, ``retain`` as the address takes them)."""
        query = urlencode([("process", p) for p in processes] + list(params.items()))
        self.page.goto(f"{base}/?{query}" if query else f"{base}/")
        return self

    def process(self, name: str) -> Locator:
        """A process's item in the list (``name`` in full, "group:name")."""
        return self.page.locator(f"#processes li[data-process='{name}']")

    def open_process(self, name: str) -> None:
        """Click a process in the list: the view shows it alone."""
        self.process(name).locator(".open").click()

    def add_process(self, name: str) -> None:
        """Click a process's "+" (or "−"): added to the view, merged by time (or taken out)."""
        self.process(name).locator(".add").click()

    def hosts(self) -> Locator:
        """The host headings of a central page's process list."""
        return self.page.locator("#processes li.host")

    def listed(self) -> List[str]:
        """The processes' names as the list shows them."""
        return self.page.locator("#processes li[data-process] .name").all_text_contents()

    def opened(self) -> Locator:
        """The list's open buttons that are pressed (aria-pressed): the processes in view."""
        return self.page.locator("#processes .open[aria-pressed=true]")

    # ------------------------------------------------------------ reading the lines

    def shown(self) -> List[Shown]:
        """The rows on screen (and the few rendered around it), top to bottom."""
        return [Shown(**row) for row in self.rows.evaluate_all(READ_ROWS)]

    def texts(self) -> List[str]:
        """The text of each row rendered, top to bottom."""
        return self.row_texts.all_inner_texts()

    def line(self, text: str) -> Locator:
        """The row(s) whose text contains ``text``."""
        return self.rows.filter(has=self.page.locator(".text", has_text=text))

    def tagged(self, tag: str) -> Locator:
        """The rows whose stream tag is ``tag`` ("out", "err")."""
        return self.rows.filter(has=self.page.locator(".tag", has_text=re.compile(f"^{tag}$")))

    def of_level(self, level: str) -> Locator:
        """The rows coloured as ``level`` (error, info, none, stderr: unlevelled stderr)."""
        return self.rows.and_(self.page.locator(f".l-{level}"))

    def numbers_on_screen(self) -> List[int]:
        """The numbers of the numbered lines rendered, top to bottom."""
        return [int(t[5:14]) for t in self.texts() if t.startswith("line ")]

    def wait_text(self, text: str, timeout: float = 20_000) -> None:
        """Wait until a row containing ``text`` is rendered."""
        self.row_texts.filter(has_text=text).first.wait_for(timeout=timeout)

    def wait_number_above(self, n: int, timeout: float = 20_000, seen: bool = False) -> None:
        """Wait until a numbered line above ``n`` is rendered (``seen``: inside the log's box)."""
        self.page.wait_for_function(NUMBER_SHOWN, arg=[n, seen], timeout=timeout)

    def wait_number_near(self, n: int, within: int, timeout: float = 20_000) -> None:
        """Wait until a numbered line within ``within`` of ``n`` is rendered."""
        self.page.wait_for_function(
            """([n, within]) => [...document.querySelectorAll('#log [role=listitem] .text')]
                .some(e => Math.abs(Number(e.textContent.slice(5, 14)) - n) < within)""",
            arg=[n, within],
            timeout=timeout,
        )

    def in_view(self, text: str, slack: float = 0) -> bool:
        """Whether a row starting with ``text`` is inside the log's box."""
        return bool(self.page.evaluate(ROW_IN_VIEW, [text, slack]))

    def held_said(self) -> int:
        """How many lines the page holds, as the counts bar says."""
        return int(self.page.evaluate(HELD_SAID))

    def wait_held(self, count: int, timeout: float = 20_000) -> None:
        """Wait until the counts bar says the page holds ``count`` lines or more."""
        self.page.wait_for_function(f"() => ({HELD_SAID})() >= {count}", timeout=timeout)

    # ------------------------------------------------------------ what is held, unseen
    # The view is virtualized: the lines held off screen are not in the document.
    # Order, gaps and duplicates among them can only be read from the page's store.

    def held_numbers(self, process: str) -> List[int]:
        """The numbered stdout lines held for a process, in the order held (internal:
        off-screen lines of a virtualized view)."""
        return list(
            self.page.evaluate(
                """(p) => window.streamlog.store.lines
                    .filter(l => l.process === p && l.stream === 'stdout'
                                 && l.text.startsWith('line '))
                    .map(l => Number(l.text.slice(5, 14)))""",
                process,
            )
        )

    def held_records(self, unplaced: bool = False) -> List[str]:
        """Each held record as "process@offset" (``unplaced``: lines without an offset
        too, as "process@null") (internal: which file record a line is, and
        off-screen lines, are not shown)."""
        return list(
            self.page.evaluate(
                "(all) => window.streamlog.store.lines.filter(l => all || l.offset !== null)"
                ".map(l => l.process + '@' + l.offset)",
                unplaced,
            )
        )

    def held_end(self) -> int:
        """The end offset of the newest record held (internal: offsets are not shown)."""
        return int(
            self.page.evaluate(
                "() => Math.max(...window.streamlog.store.lines.filter(l => l.end).map(l => l.end))"
            )
        )

    def wait_attached(self, process: str) -> None:
        """Wait until the page has asked for ``process``'s live lines (internal: the
        subscription's state is not shown while the socket stays silent)."""
        self.page.wait_for_function(
            "(p) => window.streamlog.session.subs.get(p).attached", arg=process
        )

    def held_lines(self) -> List[Tuple[str, str]]:
        """(process, text) of each line held, in the order held (internal: the
        merge order of lines scrolled off screen)."""
        return [
            (p, t)
            for p, t in self.page.evaluate(
                "window.streamlog.store.lines.map(l => [l.process, l.text])"
            )
        ]

    def held_keys(self) -> List[Any]:
        """The sort key of each line held, in the order held (internal: the merge order)."""
        return list(self.page.evaluate("window.streamlog.store.lines.map(l => l.key)"))

    def held_processes(self) -> List[str]:
        """The processes of the lines held, each once (internal: off-screen lines)."""
        return list(
            self.page.evaluate(
                "() => [...new Set(window.streamlog.store.lines.map(l => l.process))]"
            )
        )

    def wait_held_from(self, process: str, timeout: float = 20_000) -> None:
        """Wait until a line of ``process`` is held (internal: maybe off screen)."""
        self.page.wait_for_function(
            "(p) => window.streamlog.store.lines.some(l => l.process === p)",
            arg=process,
            timeout=timeout,
        )

    def wait_held_text(self, text: str, process: str = "", timeout: float = 20_000) -> None:
        """Wait until a line containing ``text`` (of ``process``) is held (internal:
        at a fast rate a following view has scrolled it away already)."""
        self.page.wait_for_function(
            "([t, p]) => window.streamlog.store.lines"
            ".some(l => l.text.includes(t) && (!p || l.process === p))",
            arg=[text, process],
            timeout=timeout,
        )

    def wait_held_below(self, process: str, n: int, timeout: float = 20_000) -> None:
        """Wait until a numbered line below ``n`` of ``process`` is held (internal:
        read back above the screen)."""
        self.page.wait_for_function(
            """([p, n]) => window.streamlog.store.lines.some(l => l.process === p
                && l.text.startsWith('line ') && Number(l.text.slice(5, 14)) < n)""",
            arg=[process, n],
            timeout=timeout,
        )

    def wait_held_stream(self, stream: str, n: int, timeout: float = 20_000) -> None:
        """Wait until ``n`` lines of ``stream`` are held (internal: the counts bar counts
        the markers too)."""
        try:
            self.page.wait_for_function(
                "([s, n]) => window.streamlog.store.lines.filter(l => l.stream === s).length >= n",
                arg=[stream, n],
                timeout=timeout,
                polling=500,
            )
        except PlaywrightTimeoutError as exc:
            # Say how far it got, and whether lines are missing or only late.
            held = self.page.evaluate(
                """(s) => { const l = window.streamlog.store.lines.filter(x => x.stream === s);
                    return [l.length, l.length ? l[l.length - 1].text.slice(0, 20) : null,
                            document.getElementById('connection').dataset.state]; }""",
                stream,
            )
            shown = f"(held, last, state) {held}"
            raise AssertionError(f"{n} {stream} lines not held in time: {shown}") from exc

    def wait_older_read(self, process: str, held: int, timeout: float = 30_000) -> None:
        """Wait until more than ``held`` lines are held, or ``process`` has nothing older
        (internal: whether older lines remain is not shown)."""
        self.page.wait_for_function(
            "([p, n]) => window.streamlog.store.lines.length > n"
            " || !window.streamlog.session.subs.get(p).hasBefore",
            arg=[process, held],
            timeout=timeout,
        )

    def wait_settled(self, held: int, timeout: float = 20_000) -> None:
        """Wait until every process in view has its lines (none waiting for its first
        page) and more than ``held`` lines are held (internal: not shown)."""
        self.page.wait_for_function(
            "(n) => [...window.streamlog.session.subs.values()].every(s => !s.waiting)"
            " && window.streamlog.store.lines.length > n",
            arg=held,
            timeout=timeout,
        )

    def wait_history_read(self) -> None:
        """Wait until no history read is under way (internal: nothing shows it)."""
        self.page.wait_for_function("() => window.streamlog.history.loading === null")

    # ------------------------------------------------------------ following

    def paused(self) -> bool:
        """Whether following is paused, as the pause button says (aria-pressed)."""
        return self.pause_button.get_attribute("aria-pressed") == "true"

    def wait_paused(self, paused: bool = True) -> None:
        """Wait until the pause button says following is paused (or not)."""
        expect(self.pause_button).to_have_attribute("aria-pressed", str(paused).lower())

    def scroll(self, dy: float) -> None:
        """Turn the mouse wheel over the log."""
        self.log.hover()
        self.page.mouse.wheel(0, dy)

    def key(self, key: str) -> None:
        """Press a key (the page's shortcuts)."""
        self.page.keyboard.press(key)

    def key_in_log(self, key: str) -> None:
        """Press a key with the log focused (Home, End)."""
        self.log.focus()
        self.page.keyboard.press(key)

    def scroll_to(self, share: float) -> None:
        """Drag the log's scroll position to ``share`` of its height (0 top, 1 bottom)."""
        self.log.evaluate("(l, f) => { l.scrollTop = l.scrollHeight * f; }", share)

    def wait_new_lines(self, n: int, timeout: float = 20_000) -> None:
        """Wait until the "new lines" button counts ``n`` or more."""
        self.page.wait_for_function(
            "(n) => parseInt(document.getElementById('new-lines').textContent) >= n",
            arg=n,
            timeout=timeout,
        )

    def go_live(self) -> None:
        """Click the "new lines" button: to the newest line, following."""
        self.new_lines.click()

    def wait_connection(self, state: str, text: str = "", timeout: float = 20_000) -> None:
        """Wait until the connection indicator's state is ``state`` (its data-state:
        connecting, live, down or auth) and its text contains ``text``, read together."""
        self.page.wait_for_function(
            """([state, text]) => { const c = document.getElementById('connection');
                return c.dataset.state === state && c.textContent.includes(text); }""",
            arg=[state, text],
            timeout=timeout,
        )

    # ------------------------------------------------------------ finding things

    def filter(self, text: str) -> None:
        """Type into the filter box (replacing what was there)."""
        self.filter_box.fill(text)

    def wait_filtered(self) -> None:
        """Wait until the counts bar says some lines are hidden by the filter."""
        expect(self.counts).to_contain_text("shown")

    def search(self, text: str) -> None:
        """Search the whole history for ``text``, with the search button."""
        self.filter_box.fill(text)
        self.search_button.click()

    def jump_to(self, when: str) -> None:
        """Type a time in the jump field and press go."""
        self.jump_field.fill(when)
        self.jump_button.click()

    # ------------------------------------------------------------ toggles

    def open_more(self) -> None:
        """Unfold the toolbar's "more" menu (streams, time, wrap, downloads)."""
        self.more_menu.locator("summary").click()

    def stream_button(self, stream: str) -> Locator:
        """The stdout or stderr toggle (under "more")."""
        return self.page.locator(f"#{stream}")

    def level_button(self, level: str) -> Locator:
        """A level's show/hide toggle (fatal ... trace, other)."""
        return self.page.locator(f"#level-{level}")

    def level_count(self, level: str) -> str:
        """A level's count in the counts bar ("E 2"; "" when it holds none)."""
        return self.page.locator(f"#count-{level}").text_content() or ""

    def next_frames(self) -> None:
        """Wait for two animation frames: whatever a change makes the page lay out is drawn."""
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )

    def background(self) -> str:
        """The page's background colour, as drawn."""
        return str(self.page.evaluate("() => getComputedStyle(document.body).backgroundColor"))

    def toolbar_geometry(self) -> Dict[str, Any]:
        """The toolbar's box, each visible control's box, and the page's widths."""
        return dict(self.page.evaluate(GEOMETRY))

    def grow_toolbar(self, padding: str) -> None:
        """Make the toolbar taller or shorter without a window resize (as a wrapped
        row, a longer title or another control would)."""
        self.page.locator(".toolbar").evaluate(
            "(bar, px) => { bar.style.paddingBottom = px; }", padding
        )

    # ------------------------------------------------------------ the timeline
    # The canvas draws bars a test cannot read back; what it drew is in its data-*
    # attributes (data-counts, data-since, data-until, data-buckets, data-window,
    # data-error-marks, data-jumped), read here in one look so they agree.

    def drawn(self) -> Dict[str, Any]:
        """What the timeline last drew: its span, buckets, counts, window, error marks."""
        expect(self.canvas).to_have_attribute("data-counts", re.compile("."))
        data = self.canvas.evaluate(
            """(c) => ({since: Number(c.dataset.since), until: Number(c.dataset.until),
                        buckets: Number(c.dataset.buckets), counts: JSON.parse(c.dataset.counts),
                        width: c.clientWidth, window: c.dataset.window,
                        errorMarks: JSON.parse(c.dataset.errorMarks)})"""
        )
        return dict(data)

    def wait_drawn(self, column: str, at_least: int) -> None:
        """Wait until the timeline has drawn ``at_least`` records of ``column`` in all."""
        self.page.wait_for_function(
            """([column, n]) => JSON.parse(
                    document.getElementById('timeline-canvas')?.dataset.counts ?? 'null')
                ?.[column].reduce((a, b) => a + b, 0) >= n""",
            arg=[column, at_least],
        )

    def jumped(self) -> str:
        """The time the timeline last jumped to (a click or a drag), once it has."""
        expect(self.canvas).to_have_attribute("data-jumped", re.compile("."))
        return self.canvas.get_attribute("data-jumped") or ""

    def wait_window_covers(self, when: float) -> None:
        """Wait until the timeline's outline of the lines in view covers ``when`` (s)."""
        self.page.wait_for_function(
            """(t) => {
                const w = document.getElementById('timeline-canvas').dataset.window.split(',');
                return Number(w[0]) <= t && t <= Number(w[1]);
            }""",
            arg=when,
        )

    def flashed(self, text: str) -> Locator:
        """The rows starting with ``text`` flashed as the line jumped to."""
        return self.rows.and_(self.page.locator(".flash")).filter(
            has=self.page.locator(".text", has_text=re.compile("^" + re.escape(text)))
        )

    # ------------------------------------------------------------ downloads

    def download(self, control: Locator) -> str:
        """Click a download control; the file's text."""
        with self.page.expect_download() as started:
            control.click()
        return Path(started.value.path()).read_text()

    # ------------------------------------------------------------ process control

    def action_said(self) -> Tuple[str, str]:
        """The action status, in one look: its text ("" when hidden) and its kind
        (data-kind: ok, error)."""
        said = self.action_status.evaluate(
            "(s) => [s.hidden ? '' : s.textContent, s.dataset.kind || '']"
        )
        return str(said[0]), str(said[1])

    def wait_action(self, kind: str, start: str, timeout: float = 60_000) -> str:
        """Wait until the action status shows a ``kind`` message starting with
        ``start``; the message."""
        self.page.wait_for_function(
            """([kind, start]) => {
                const s = document.getElementById('action-status');
                return !s.hidden && s.dataset.kind === kind && s.textContent.startsWith(start);
            }""",
            arg=[kind, start],
            timeout=timeout,
        )
        return self.action_said()[0]

    def wait_held_status(self, *starts: str, timeout: float = 30_000) -> None:
        """Wait until, for each of ``starts``, a state record starting with it is held
        (internal: the raw records behind the markers, maybe scrolled away already)."""
        self.page.wait_for_function(
            """(starts) => {
                const texts = window.streamlog.store.lines
                    .filter(l => l.stream === 'status').map(l => l.text);
                return starts.every(s => texts.some(t => t.startsWith(s)));
            }""",
            arg=list(starts),
            timeout=timeout,
        )

    def action_token(self) -> str:
        """The token the page sends with actions (internal: never shown)."""
        return str(self.page.evaluate("() => window.streamlog.actions.token"))
