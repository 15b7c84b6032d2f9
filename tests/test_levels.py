"""The sidecar reads levels by the page's rules, from the page's own file of rules.

The table of real-world lines is the one the page itself is tested against
(tests/test_browser.py runs it through lines.js in Chromium): the same lines,
the same levels.  Then the paths the table does not reach: escapes, logfmt,
long lines, numbers, and what JavaScript reads differently from Python
(``LEVEL_EXTRA_CASES``, which tests/test_timeline.py runs through the page too).
Last, the rules are data: a word added to static/levels.json alone is read, and
the page's scripts hold no rule of their own (they fetch that file).
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Dict, Optional

import pytest

from supervisor_streamlog.logread.levels import (
    PARSE_LIMIT,
    RULES,
    RULES_PATH,
    LevelRules,
    level_and_kind,
    level_of,
    level_of_line,
    visible_text,
)
from supervisor_streamlog.sidecar.handlers import LEVEL_RULES_MARK, level_rules

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


def rules_data() -> Dict[str, Any]:
    """A fresh copy of the data in static/levels.json."""
    with open(RULES_PATH, encoding="utf-8") as handle:
        return copy.deepcopy(json.load(handle))


def test_a_word_added_only_to_the_rules_file_is_read() -> None:
    data = rules_data()
    data["words"]["fatal"].append("kaput")
    data["text"]["upper"].append("KAPUT")
    data["text"]["bracketed"].append("kaput")
    rules = LevelRules(data)
    for text in ("KAPUT: disk gone", "2026-12-03 [kaput] x", '{"level":"Kaput"}', "level=kaput x"):
        assert rules.level_of_line(text, "stderr") == "fatal", text
        assert RULES.level_of_line(text, "stderr") == "stderr", text
    # The rest of the rules are as they were.
    for text, stream, want in LEVEL_EXTRA_CASES:
        assert rules.level_of_line(text, stream) == want


def test_a_level_number_changed_only_in_the_rules_file_is_read() -> None:
    data = rules_data()
    data["numbers"] = [[n, "error" if level == "warn" else level] for n, level in data["numbers"]]
    data["text"]["prefixes"].append(["Oops! ", "error"])
    rules = LevelRules(data)
    assert rules.level_of_line('{"level":40,"msg":"x"}', "stdout") == "error"
    assert RULES.level_of_line('{"level":40,"msg":"x"}', "stdout") == "warn"
    assert rules.level_of_line("Oops! it broke", "stdout") == "error"


def test_every_word_the_text_rules_name_is_a_level_word() -> None:
    words = RULES.words
    assert all(w.isascii() and w.isalpha() and w == w.lower() for w in words)
    assert all(w.lower() in words for w in RULES.upper_words + RULES.bracketed_words)
    assert set(RULES.words.values()) | set(RULES.opening.values()) <= set(RULES.levels)
    assert {level for _, level in RULES.prefixes} <= set(RULES.levels)


STATIC = os.path.dirname(RULES_PATH)


def code_of(name: str) -> str:
    """A static script without its comments."""
    with open(os.path.join(STATIC, name), encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", text)


def test_the_page_takes_its_rules_from_the_same_file() -> None:
    """levels.js reads levels.json as the sidecar puts it into the page, and neither it
    nor structured.js spells a level word, field or pattern of its own."""
    levels_js = code_of("levels.js")
    assert 'JSON.parse(document.getElementById("level-rules").textContent)' in levels_js
    with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as handle:
        page = handle.read()
    element = '<script type="application/json" id="level-rules"><!-- level rules --></script>'
    assert element in page and LEVEL_RULES_MARK.decode() in element
    inlined = level_rules().decode()
    assert "<" not in inlined  # no text of the rules can end the element
    assert json.loads(inlined) == rules_data()
    for name in ("levels.js", "structured.js"):
        code = code_of(name)
        literals = {m.lower() for m in re.findall(r"[\"'`]([A-Za-z. ]+)[\"'`]", code)}
        named = set(RULES.words) | set(RULES.level_keys) | set(RULES.message_keys)
        assert not literals & named, (name, literals & named)
        for word in RULES.upper_words + tuple(RULES.opening):  # in a list or an alternation
            assert not re.search(rf"[|(\"']{re.escape(word)}[|)\"']", code), (name, word)
        assert "Traceback" not in code and "panic" not in code
