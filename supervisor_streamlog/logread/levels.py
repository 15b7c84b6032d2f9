"""A line's level, read by the tail page's rules, from the file the page reads them from.

The rules (level words, which of them count standing alone in capitals or in
brackets, level fields, syslog and bunyan/pino numbers, glog letters, ...) are
data: ``static/levels.json``, served with the page and read there by
``static/levels.js`` and ``static/structured.js``.  :class:`LevelRules` reads
the same file and applies it as the page does, so that the histogram's error
counts (:mod:`.histogram`) are the lines the page marks error or fatal::

    level_of_line("2026/12/03 07:00:00 [error] 12#12: open() failed", "stderr")  # "error"
    level_of_line("something unlevelled", "stderr")                            # "stderr"

:mod:`.prefilter` derives from the same data the histogram's cheap byte
searches for lines that may be error-level (a superset of what the rules call
error or fatal), so a word added to the file is classified and found.

Invariant: the page's result, for any text.  JavaScript strings are UTF-16,
so a text beyond the BMP is spelled as code units first (:func:`_units`);
``\\s``, ``\\d``, ``^``/``$``, the ``i`` flag (ASCII only) and ``JSON.parse``
are spelled as JavaScript reads them.  Left: a JSON object nested deeper than
Python's recursion limit is not parsed here.  Pure functions, no I/O after
import; tests/test_levels.py runs tests/helpers.py's tables through both.
"""

from __future__ import annotations

import json
import math
import os
import re
from array import array
from typing import Any, Dict, Iterable, List, Optional, Tuple

__all__ = [
    "ERROR_LEVELS",
    "LEVELS",
    "PARSE_LIMIT",
    "RULES",
    "RULES_PATH",
    "LevelRules",
    "level_and_kind",
    "level_of",
    "level_of_json_head",
    "level_of_line",
    "level_of_text",
    "visible_text",
]

#: The rules' one file, shipped and served with the page's static files.
RULES_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static", "levels.json"
)
#: The levels the histogram counts as errors.
ERROR_LEVELS = frozenset({"fatal", "error"})

# JavaScript's \s (WhiteSpace and LineTerminator), as a class body.
_S = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_DIGITS = re.compile(r"[0-9]+\Z")
# ansi.js's ESCAPES: CSI, OSC, and two-byte escapes (all dropped from the visible text).
_ESCAPES = re.compile(
    "\x1b\\[[0-9;:?]*[ -/]*[@-~]|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?|\x1b[ -/]*[0-~]?"
)
# A JavaScript number literal as Number() reads a short string (after trimming).
_JS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_JS_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)\Z")
_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_MISSING = object()


def _units(text: str) -> str:
    """``text`` as JavaScript holds it: characters beyond the BMP as surrogate pairs."""
    if text.isascii() or max(text) <= "\uffff":
        return text
    codes = array("H", text.encode("utf-16-le", "surrogatepass"))
    return "".join(map(chr, codes))


def _js_number(text: str) -> float:
    """``Number(text)`` for a short string: NaN where JavaScript gives NaN."""
    text = text.strip(_WHITESPACE)
    if text == "":
        return 0.0
    if _JS_DECIMAL.match(text):
        return float(text)
    radix = _JS_RADIX.match(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1)[0].lower()]
        return float(int(radix.group(1)[1:], base))
    return math.nan


def _alternatives(items: Iterable[str]) -> str:
    """A regular expression's alternation of literal strings (levels.js's ``oneOf``)."""
    return "|".join(re.escape(item) for item in items)


def _class_body(chars: str) -> str:
    """Characters for a ``[...]`` class (levels.js's ``classOf``)."""
    return "".join("\\" + c if c in "\\]^-[" else c for c in chars)


class LevelRules:
    """The page's level rules (``static/levels.json``'s data), applied as the page does."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self.levels: Tuple[str, ...] = tuple(data["levels"])
        self.words: Dict[str, str] = {
            word: level for level, words in data["words"].items() for word in words
        }
        lengths = [len(word) for word in self.words]
        self.word_limit = max(lengths)  # a longer value names no level
        word = f"[A-Za-z]{{{min(lengths)},{self.word_limit}}}"
        self.syslog: Tuple[str, ...] = tuple(data["syslog"])
        self.numbers: List[Tuple[float, str]] = [(float(n), lvl) for n, lvl in data["numbers"]]
        fields = data["fields"]
        self.level_keys: Tuple[str, ...] = tuple(fields["keys"])
        self.message_keys: Tuple[str, ...] = tuple(fields["message"])
        self.parse_limit: int = data["parseLimit"]
        self.max_fields: int = data["maxFields"]
        text = data["text"]
        self.head: int = text["head"]
        self.prefixes: List[Tuple[str, str]] = [(p, lvl) for p, lvl in text["prefixes"]]
        self._prefix_firsts = frozenset(p[:1] for p, _ in self.prefixes)
        self.glog: Dict[str, str] = dict(text["glog"])
        self.opening: Dict[str, str] = {phrase: lvl for phrase, lvl in text["opening"]}
        self.upper_words: Tuple[str, ...] = tuple(text["upper"])
        self.bracketed_words: Tuple[str, ...] = tuple(text["bracketed"])
        self.text_fields: Tuple[str, ...] = tuple(fields["inText"])
        self.json_head_fields: Tuple[str, ...] = tuple(fields["inJsonHead"])
        # levels.js builds the same expressions from the same data.
        self._upper = re.compile(
            rf"(?:\A|[{_S}{_class_body(text['upperBefore'])}])"
            rf"({_alternatives(self.upper_words)})"
            rf"(?=\Z|[{_S}{_class_body(text['upperAfter'])}])"
        )
        self._bracketed = re.compile(
            rf"\[({_alternatives(self.bracketed_words)})\]", re.IGNORECASE | re.ASCII
        )
        self._opening = re.compile(rf"({_alternatives(self.opening)}):[{_S}]")
        self._field = re.compile(
            rf"(?:\A|[{_S}])(?:{_alternatives(self.text_fields)})"
            rf'=("?)({word}|[0-9]{{1,2}})\1(?=[{_S}]|\Z)'
        )
        self._glog = re.compile(
            rf"([{_class_body(''.join(self.glog))}])[0-9]{{4}} [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
        )
        self._json_field = re.compile(
            rf'"(?:{_alternatives(self.json_head_fields)})"'
            rf'[{_S}]*:[{_S}]*("?)({word}|[0-9]{{1,2}})\1[{_S}]*[,}}]'
        )

    @classmethod
    def load(cls, path: str = RULES_PATH) -> LevelRules:
        """The rules of a levels.json file (by default the one the page reads)."""
        with open(path, encoding="utf-8") as handle:
            return cls(json.load(handle))

    def level_of(self, value: Any) -> Optional[str]:
        """The level a field's value names, or None: a word (``"WARN"``), a bunyan/pino
        number (10 trace ... 60 fatal) or a syslog severity (0-7); levels.js's levelOf."""
        if isinstance(value, str):
            if len(value) > self.word_limit:
                return None
            word = self.words.get(value.lower())
            if word is not None:
                return word
            if len(value) <= 2 and _DIGITS.match(value):
                return self.level_of(float(value))
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            number = float(value)
        except OverflowError:
            return None  # beyond doubles: JavaScript's Infinity
        if not math.isfinite(number):
            return None
        if 0 <= number < len(self.syslog) and number.is_integer():
            return self.syslog[int(number)]
        for least, level in self.numbers:
            if number >= least:
                return level
        return None

    def level_of_text(self, text: str) -> Optional[str]:
        """The level of a plain (not JSON) line, or None; levels.js's levelOfText
        (``text`` in code units, see :func:`_units`)."""
        head = text[: self.head]
        first = ord(head[0]) if head else -1
        if first == 60:  # "<": a syslog priority, "<11>..."
            close = head.find(">")
            if 1 < close <= 4:
                priority = _js_number(head[1:close])
                if priority.is_integer() and 0 <= priority <= 191:
                    return self.syslog[int(priority) & 7]
        if head[:1] in self._prefix_firsts:
            for prefix, level in self.prefixes:
                if head.startswith(prefix):
                    return level
        if 65 <= first <= 90:  # an upper-case letter opens it
            if head[0] in self.glog:
                glog = self._glog.match(head)
                if glog:
                    return self.glog[glog.group(1)]
            opening = self._opening.match(head)
            if opening:
                return self.opening[opening.group(1)]
        upper = self._upper.search(head)
        if upper:
            return self.words.get(upper.group(1).lower())
        if "[" in head:
            bracketed = self._bracketed.search(head)
            if bracketed:
                return self.words.get(bracketed.group(1).lower())
        if "=" in head:
            field = self._field.search(head)
            if field:
                return self.level_of(field.group(2))
        return None

    def level_of_json_head(self, text: str) -> Optional[str]:
        """The level a long JSON line's head names, or None (read as text, not parsed)."""
        found = self._json_field.search(text[: self.head * 4])
        if not found:
            return None
        value = found.group(2)
        return self.level_of(float(value) if len(value) <= 2 and _DIGITS.match(value) else value)

    def _level_of_object(self, obj: Dict[str, Any]) -> Optional[str]:
        for key in self.level_keys:
            value = obj.get(key, _MISSING)
            if value is _MISSING and "." in key:
                outer, inner = key.split(".")[:2]
                nested = obj.get(outer)
                if isinstance(nested, dict):
                    value = nested.get(inner, _MISSING)
            if value is _MISSING or isinstance(value, (dict, list)):
                continue
            level = self.level_of(value)
            if level is not None:
                return level
        return None

    def _level_of_fields(self, fields: List[str]) -> Optional[str]:
        for key in self.level_keys:
            for i in range(0, len(fields), 2):
                if fields[i] == key:
                    level = self.level_of(fields[i + 1])
                    if level is not None:
                        return level
        return None

    def level_and_kind(self, text: str, stream: str) -> Tuple[Optional[str], Optional[str]]:
        """``(level, kind)`` of a line's visible text, as structured.js's levelAndKind:
        level one of :data:`LEVELS`, ``"stderr"`` or ``"none"`` (no level found), None
        for a status record; kind ``"json"``, ``"logfmt"`` or None."""
        if stream != "stdout" and stream != "stderr":
            return None, None
        text = _units(text)
        if text.endswith("\r"):
            text = text[:-1]
        start = 0
        while start < len(text) and text[start] in " \t":
            start += 1
        first = text[start] if start < len(text) else ""
        kind: Optional[str] = None
        level: Optional[str] = None
        if first == "{":
            if len(text) <= self.parse_limit:
                obj = _parse_object(text)
                if obj is not None:
                    kind = "json"
                    level = self._level_of_object(obj)
            else:
                level = self.level_of_json_head(text)
        elif (
            first and _is_key_start(first) and len(text) <= self.parse_limit and text.find("=") > 0
        ):
            fields = _parse_logfmt(text, start, self)
            if fields is not None:
                kind = "logfmt"
                level = self._level_of_fields(fields)
        if kind is None and level is None:
            level = self.level_of_text(text)
        if level is None:
            level = "stderr" if stream == "stderr" else "none"
        return level, kind

    def level_of_line(self, text: str, stream: str) -> Optional[str]:
        """The level the page gives a record's text (see :meth:`level_and_kind`)."""
        return self.level_and_kind(visible_text(text), stream)[0]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def _parse_object(text: str) -> Optional[Dict[str, Any]]:
    """A JSON object line as a dict, or None (structured.js's parseObject)."""
    end = len(text)
    while end > 0 and ord(text[end - 1]) <= 32:
        end -= 1
    if end == 0 or text[end - 1] != "}":
        return None
    try:
        # JSON.parse's numbers are doubles (a 400-digit integer is Infinity).
        value = json.loads(text, parse_int=float, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_key_start(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c == "_" or c == "@"


def _is_key_char(c: str) -> bool:
    return _is_key_start(c) or ("0" <= c <= "9") or c in ".-/"


def _unquote(quoted: str) -> str:
    try:
        value = json.loads(quoted)
    except (ValueError, RecursionError):
        return quoted[1:-1]
    return value if isinstance(value, str) else quoted[1:-1]


def _parse_logfmt(text: str, start: int, rules: LevelRules) -> Optional[List[str]]:
    """A logfmt line's fields (key, value, ...), or None when it is not logfmt."""
    fields: List[str] = []
    found = False
    n = len(text)
    i = start
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            break
        key_start = i
        if not _is_key_start(text[i]):
            return None
        while i < n and _is_key_char(text[i]):
            i += 1
        if i >= n or text[i] != "=":
            return None
        key = text[key_start:i]
        i += 1
        if i < n and text[i] == '"':
            opened = i
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                return None
            i += 1
            value = _unquote(text[opened:i])
            if i < n and text[i] != " ":
                return None
        else:
            value_start = i
            while i < n and text[i] != " ":
                i += 1
            value = text[value_start:i]
        if not found and key in rules.message_keys:
            found = True
        elif len(fields) < rules.max_fields * 2:
            fields.extend((key, value))
    pairs = len(fields) // 2 + (1 if found else 0)
    if pairs == 0:
        return None
    if pairs == 1 and not found and fields[0] not in rules.level_keys:
        return None
    return fields


def visible_text(text: str) -> str:
    """What the page reads a level from: the text without its escape sequences
    (and, when it has some, without a CR at its end), as lines.js's visibleText."""
    if "\x1b" not in text:
        return text
    if text.endswith("\r"):
        text = text[:-1]
    return _ESCAPES.sub("", text)


#: The rules the page reads (static/levels.json).
RULES = LevelRules.load()
#: The levels, most severe first (levels.js's LEVELS).
LEVELS = RULES.levels
#: Longer lines are not parsed as JSON or logfmt (structured.js's PARSE_LIMIT).
PARSE_LIMIT = RULES.parse_limit
level_of = RULES.level_of
level_of_text = RULES.level_of_text
level_of_json_head = RULES.level_of_json_head
level_and_kind = RULES.level_and_kind
level_of_line = RULES.level_of_line
