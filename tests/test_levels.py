"""The sidecar's port of the page's level detection gives the page's levels.

The table of real-world lines is the one the page itself is tested against
(tests/test_browser.py runs it through lines.js in Chromium): the same lines,
the same levels.  Then the paths the table does not reach: escapes, logfmt,
long lines, numbers, and what JavaScript reads differently from Python
(``LEVEL_EXTRA_CASES``, which tests/test_timeline.py runs through the page too).
"""

from __future__ import annotations

from typing import Optional

import pytest

from supervisor_streamlog.logread.levels import (
    PARSE_LIMIT,
    level_and_kind,
    level_of,
    level_of_line,
    visible_text,
)

from . import helpers
from .helpers import LEVEL_CASES, LEVEL_EXTRA_CASES


def test_every_real_world_line_gets_the_pages_level() -> None:
    wrong = []
    for text, stream, want in LEVEL_CASES:
        # The table writes ESC as the four characters \x1b (the page's test replaces them too).
        got = level_of_line(text.replace("\\x1b", "\x1b"), stream)
        if got != want:
            wrong.append((text, want, got))
    assert not wrong
    assert len(LEVEL_CASES) >= 60


@pytest.mark.parametrize("text, stream, want", LEVEL_EXTRA_CASES)
def test_paths_beyond_the_table(text: str, stream: str, want: Optional[str]) -> None:
    assert level_of_line(text, stream) == want


def test_kind_is_what_the_page_structures() -> None:
    assert level_and_kind('{"level":"error"}', "stdout") == ("error", "json")
    assert level_and_kind("a=1 b=2", "stdout") == ("none", "logfmt")
    assert level_and_kind("ERROR x", "stderr") == ("error", None)


def test_level_of_values() -> None:
    assert [level_of(n) for n in (0, 3, 4, 10, 20, 30, 40, 50, 60)] == [
        "fatal",
        "error",
        "warn",
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "fatal",
    ]
    assert level_of("03") == "error"
    assert level_of("123") is None
    assert level_of(True) is None
    assert level_of(None) is None
    assert level_of("x" * 14) is None


def test_the_tables_parse_limit_is_the_pages() -> None:
    assert helpers.PARSE_LIMIT == PARSE_LIMIT


def test_visible_text_drops_escapes_only_when_there_are_some() -> None:
    assert visible_text("plain\r") == "plain\r"
    assert visible_text("\x1b[31mred\x1b[0m\r") == "red"
