"""A line's level, read from its text exactly as the tail page reads it.

The page detects levels in ``static/levels.js`` (``levelOf``, ``levelOfText``,
``levelOfJsonHead``) and ``static/structured.js`` (``levelAndKind``), on the
visible text (``static/ansi.js`` drops escape sequences; ``lines.js`` reads
the text without them).  This is a port of those rules, so that the
histogram's error counts (:mod:`.histogram`) are the lines the page marks
error or fatal::

    level_of_line("2026/12/03 07:00:00 [error] 12#12: open() failed", "stderr")  # "error"
    level_of_line("something unlevelled", "stderr")                            # "stderr"

Pure functions, no I/O.  JavaScript strings are UTF-16: lengths, slices and
regular expressions count code units, so a text with characters beyond the
BMP is first spelled as code units (each such character as its surrogate
pair) -- the same positions as the page's.  ``\\s`` and ``\\d`` are spelled
as JavaScript's classes, ``$`` as the end of the text, case folding as
JavaScript's (ASCII letters only, for the ``i`` flag), and JSON as
``JSON.parse`` reads it (numbers as doubles; no ``NaN``).  One difference
is left: a JSON object nested deeper than Python's recursion limit (about a
thousand levels, which fits in the 2000 characters parsed) is not parsed
here, where the page would parse it.

When levels.js or structured.js change their rules, change this module with
them: tests/test_levels.py runs the page's own table of real-world lines
(tests/helpers.py's ``LEVEL_CASES``) through both.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "ERROR_LEVELS",
    "LEVELS",
    "PARSE_LIMIT",
    "level_and_kind",
    "level_of",
    "level_of_json_head",
    "level_of_line",
    "level_of_text",
    "visible_text",
]

#: The levels, most severe first (levels.js's LEVELS).
LEVELS = ("fatal", "error", "warn", "info", "debug", "trace")
#: The levels the histogram counts as errors.
ERROR_LEVELS = frozenset({"fatal", "error"})
#: Longer lines are not parsed as JSON or logfmt (structured.js's PARSE_LIMIT).
PARSE_LIMIT = 2000
# How far into a plain line a level is looked for (levels.js's HEAD).
_HEAD = 160

_WORDS: Dict[str, str] = {
    "fatal": "fatal", "critical": "fatal", "crit": "fatal", "emerg": "fatal",
    "emergency": "fatal", "alert": "fatal", "panic": "fatal", "dpanic": "fatal",
    "error": "error", "err": "error", "severe": "error", "eror": "error",
    "warn": "warn", "warning": "warn", "wrn": "warn",
    "info": "info", "information": "info", "informational": "info", "notice": "info",
    "inf": "info",
    "debug": "debug", "dbg": "debug", "fine": "debug", "config": "debug",
    "trace": "trace", "finer": "trace", "finest": "trace", "verbose": "trace",
    "trc": "trace",
}  # fmt: skip

# syslog severities 0-7 (RFC 5424): emerg, alert, crit, err, warning, notice, info, debug.
_SYSLOG = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")

# JavaScript's \s (WhiteSpace and LineTerminator), as a class body.
_S = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_DIGITS = re.compile(r"[0-9]+\Z")

_UPPER = re.compile(
    rf"(?:\A|[{_S}\[(|:<,-])"
    r"(FATAL|CRITICAL|CRIT|EMERG|EMERGENCY|ALERT|PANIC|SEVERE|ERROR|ERR|WARNING|WARN|NOTICE|"
    r"INFO|DEBUG|TRACE|FINEST|FINER|FINE|VERBOSE)"
    rf"(?=\Z|[{_S}\]):|/,>!-])"
)
_BRACKETED = re.compile(
    r"\[(fatal|critical|crit|emerg|alert|panic|error|err|warn|warning|notice|info|debug|trace)\]",
    re.IGNORECASE | re.ASCII,
)
_OPENING = re.compile(
    r"(Fatal error|Fatal|Panic|Error|Warning|Warn|Notice|Info|Debug|Trace):" f"[{_S}]"
)
_FIELD = re.compile(
    rf'(?:\A|[{_S}])(?:level|lvl|severity)=("?)([A-Za-z]{{3,13}}|[0-9]{{1,2}})\1(?=[{_S}]|\Z)'
)
_GLOG = re.compile(r"([IWEF])[0-9]{4} [0-9][0-9]:[0-9][0-9]:[0-9][0-9]")
_GLOG_LEVELS = {"I": "info", "W": "warn", "E": "error", "F": "fatal"}
_JSON_FIELD = re.compile(
    r'"(?:level|severity|lvl|levelname|log\.level)"'
    rf'[{_S}]*:[{_S}]*("?)([A-Za-z]{{3,13}}|[0-9]{{1,2}})\1[{_S}]*[,}}]'
)
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

_MESSAGE_KEYS = ("msg", "message", "event")
_LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level", "loglevel")
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


def level_of(value: Any) -> Optional[str]:
    """The level a field's value names, or None: a word (``"WARN"``), a bunyan/pino
    number (10 trace ... 60 fatal) or a syslog severity (0-7); levels.js's levelOf."""
    if isinstance(value, str):
        if len(value) > 13:
            return None
        word = _WORDS.get(value.lower())
        if word is not None:
            return word
        if len(value) <= 2 and _DIGITS.match(value):
            return level_of(float(value))
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None  # beyond doubles: JavaScript's Infinity
    if not math.isfinite(number):
        return None
    if 0 <= number <= 7 and number.is_integer():
        return _SYSLOG[int(number)]
    if number >= 60:
        return "fatal"
    if number >= 50:
        return "error"
    if number >= 40:
        return "warn"
    if number >= 30:
        return "info"
    if number >= 20:
        return "debug"
    if number >= 10:
        return "trace"
    return None


def level_of_text(text: str) -> Optional[str]:
    """The level of a plain (not JSON) line, or None; levels.js's levelOfText
    (``text`` in code units, see :func:`_units`)."""
    head = text[:_HEAD]
    first = ord(head[0]) if head else -1
    if first == 60:  # "<": a syslog priority, "<11>..."
        close = head.find(">")
        if 1 < close <= 4:
            priority = _js_number(head[1:close])
            if priority.is_integer() and 0 <= priority <= 191:
                return _SYSLOG[int(priority) & 7]
    if 65 <= first <= 90:  # an upper-case letter opens it
        if head.startswith("Traceback (most recent call last)"):
            return "error"
        if head.startswith("panic: "):
            return "fatal"
        glog = _GLOG.match(head) if first <= 87 else None
        if glog:
            return _GLOG_LEVELS[glog.group(1)]
        opening = _OPENING.match(head)
        if opening:
            return _WORDS.get(opening.group(1).lower().replace("fatal error", "fatal"))
    elif first == 112 and head.startswith("panic: "):
        return "fatal"
    upper = _UPPER.search(head)
    if upper:
        return _WORDS.get(upper.group(1).lower())
    if "[" in head:
        bracketed = _BRACKETED.search(head)
        if bracketed:
            return _WORDS.get(bracketed.group(1).lower())
    if "=" in head:
        field = _FIELD.search(head)
        if field:
            return level_of(field.group(2))
    return None


def level_of_json_head(text: str) -> Optional[str]:
    """The level a long JSON line's head names, or None (read as text, not parsed)."""
    found = _JSON_FIELD.search(text[: _HEAD * 4])
    if not found:
        return None
    value = found.group(2)
    return level_of(float(value) if len(value) <= 2 and _DIGITS.match(value) else value)


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


def _level_of_object(obj: Dict[str, Any]) -> Optional[str]:
    for key in _LEVEL_KEYS:
        value = obj.get(key, _MISSING)
        if value is _MISSING and "." in key:
            outer, inner = key.split(".")[:2]
            nested = obj.get(outer)
            if isinstance(nested, dict):
                value = nested.get(inner, _MISSING)
        if value is _MISSING or isinstance(value, (dict, list)):
            continue
        level = level_of(value)
        if level is not None:
            return level
    return None


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


def _parse_logfmt(text: str, start: int) -> Optional[List[str]]:
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
        if not found and key in _MESSAGE_KEYS:
            found = True
        elif len(fields) < 400:
            fields.extend((key, value))
    pairs = len(fields) // 2 + (1 if found else 0)
    if pairs == 0:
        return None
    if pairs == 1 and not found and fields[0] not in _LEVEL_KEYS:
        return None
    return fields


def _level_of_fields(fields: List[str]) -> Optional[str]:
    for key in _LEVEL_KEYS:
        for i in range(0, len(fields), 2):
            if fields[i] == key:
                level = level_of(fields[i + 1])
                if level is not None:
                    return level
    return None


def level_and_kind(text: str, stream: str) -> Tuple[Optional[str], Optional[str]]:
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
        if len(text) <= PARSE_LIMIT:
            obj = _parse_object(text)
            if obj is not None:
                kind = "json"
                level = _level_of_object(obj)
        else:
            level = level_of_json_head(text)
    elif first and _is_key_start(first) and len(text) <= PARSE_LIMIT and text.find("=") > 0:
        fields = _parse_logfmt(text, start)
        if fields is not None:
            kind = "logfmt"
            level = _level_of_fields(fields)
    if kind is None and level is None:
        level = level_of_text(text)
    if level is None:
        level = "stderr" if stream == "stderr" else "none"
    return level, kind


def visible_text(text: str) -> str:
    """What the page reads a level from: the text without its escape sequences
    (and, when it has some, without a CR at its end), as lines.js's visibleText."""
    if "\x1b" not in text:
        return text
    if text.endswith("\r"):
        text = text[:-1]
    return _ESCAPES.sub("", text)


def level_of_line(text: str, stream: str) -> Optional[str]:
    """The level the page gives a record's text (see :func:`level_and_kind`)."""
    return level_and_kind(visible_text(text), stream)[0]
