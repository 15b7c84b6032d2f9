"""The histogram's pre-filter: byte searches derived from the level rules.

The histogram (:mod:`.histogram`) counts the lines the page marks error or
fatal.  Reading every line by the rules (:mod:`.levels`) would cost a parse
per line; instead a few searches per block of the file -- each with a literal
first (``bytes.find``, or the re module's own literal search), never one
alternation tried at every byte -- find the lines that *may* be such, and only
those are read by the rules.  :func:`derive` builds the searches from the same
rules (``static/levels.json``): the error and fatal words, the openings and
prefixes, the level keys and the numbers that name error or fatal, glog's
letters, syslog priorities; a word added to the file is searched for.

Invariant: a superset of what the rules call error or fatal, in either on-disk
format, the child's text JSON-escaped or not (tests/test_histogram.py runs
tests/helpers.py's tables through it).  Pure, built once at import.
"""

from __future__ import annotations

import json
import re
from typing import Dict, Iterable, List, Pattern, Sequence, Set, Tuple

from .levels import ERROR_LEVELS, LevelRules

__all__ = ["Prefilter", "derive"]


def derive(rules: LevelRules, framing: Sequence[bytes], text_starts: Sequence[bytes]) -> Prefilter:
    """Byte searches that find every line ``rules`` may call error or fatal.

    ``framing``: words every record's layout writes (its stream tags, its JSON
    keys), lower-case; a level word met only inside one of them is not looked
    at (``stderr`` holds ``err``: a level word never follows a letter).
    ``text_starts``: expressions for what precedes a record's text (a level
    read from the text's start is looked for only there)."""
    errors = {w for w, lvl in rules.words.items() if lvl in ERROR_LEVELS}
    # An opening or prefix that holds an error word is found by that word; the
    # others are looked for at a text's start (as written and JSON-escaped).
    starts = [p for p, lvl in rules.prefixes + list(rules.opening.items()) if lvl in ERROR_LEVELS]
    words = _fewest(errors)
    anchored = [p for p in starts if not any(w in p.lower() for w in words)]
    finds, lowered = _word_searches(sorted(words), [f.lower() for f in framing])
    glog = "".join(sorted(c for c, lvl in rules.glog.items() if lvl in ERROR_LEVELS))
    opens = [f"[{re.escape(glog)}][0-9]{{4}} [0-9][0-9]:"] if glog else []
    for prefix in anchored:
        spelled = {prefix, json.dumps(prefix, ensure_ascii=False)[1:-1]}
        opens.extend(re.escape(s) for s in sorted(spelled))
    raw: List[Tuple[bytes, Pattern[bytes]]] = []
    for key in _key_groups(rules.level_keys + rules.text_fields + rules.json_head_fields):
        raw.append((b"", re.compile(key.encode() + _NUMBER_SEPARATOR + _error_numbers(rules))))
    if any(level in ERROR_LEVELS for level in rules.syslog):
        raw.append((b"<", re.compile(rb"<[^\n>]{1,3}>")))  # levelOfText's "<N>" (N up to 3)
    for start in text_starts if opens else ():  # one each: its literal first
        raw.append((b"", re.compile(start + b"(?:" + "|".join(opens).encode() + b")")))
    # What hides a word from a byte search: an escape sequence (not part of the
    # visible text) and a JSON escape (the child's or the JSON format's).
    raw.append((b"\x1b", re.compile(rb"\x1b")))
    raw.append((b"\\", re.compile(rb"\\u[0-9A-Fa-f]{4}")))
    return Prefilter(finds, lowered, raw)


def _error_numbers(rules: LevelRules) -> bytes:
    """An expression for the start of a number that may name error or fatal:
    the one- and two-digit values that do, anything longer, a fraction, an
    exponent or a sign (a JSON number is a double: -1e-400 is -0, fatal)."""
    singles = [d for d in "0123456789" if rules.level_of(d) in ERROR_LEVELS]
    seconds: Dict[str, str] = {}
    for a in "0123456789":
        found = "".join(b for b in "0123456789" if rules.level_of(a + b) in ERROR_LEVELS)
        if found:
            seconds[a] = found
    firsts: Dict[str, str] = {}
    for a, found in seconds.items():
        firsts[found] = firsts.get(found, "") + a
    parts = ["-", "[0-9]{3}", "[0-9]{1,2}[.eE]"]
    parts.extend(f"{_digits_class(a)}{_digits_class(b)}" for b, a in firsts.items())
    if singles:
        parts.append(f"{_digits_class(''.join(singles))}(?![0-9])")
    return ("(?:" + "|".join(parts) + ")").encode()


# Between a level key and its value, as written in a line or JSON-escaped in the
# JSON format: quotes, blanks (JavaScript's \s: the head of a long JSON line is
# read with it), ":" or "=" -- a superset: any run of bytes that are not a
# letter, a digit or a backslash, and of the escapes \t \r \f \".
_NUMBER_SEPARATOR = rb'(?:[^\n0-9A-Za-z\\]|\\[trf"])*'


def _digits_class(digits: str) -> str:
    """``[0-3]``, ``[5-9]``, ``[0135]`` or ``7``: a class of decimal digits."""
    if len(digits) == 1:
        return digits
    if digits == "".join(chr(c) for c in range(ord(digits[0]), ord(digits[-1]) + 1)):
        return f"[{digits[0]}-{digits[-1]}]"
    return f"[{digits}]"


def _fewest(words: Iterable[str]) -> Set[str]:
    """The words none of the others is part of (finding those finds them all)."""
    kept: Set[str] = set()
    for word in sorted(set(words), key=len):
        if not any(k in word for k in kept):
            kept.add(word)
    return kept


def _key_groups(keys: Iterable[str]) -> List[str]:
    """Expressions for the level keys as a line writes them (a nested key's last
    part), one per key that opens others (``level(?:name)?``); a key that ends
    in another (``loglevel``) is found by that one."""
    names = sorted({key.split(".")[-1] for key in keys})
    names = [n for n in names if not any(n != m and n.endswith(m) for m in names)]
    groups: Dict[str, List[str]] = {}
    for name in names:
        base = next((b for b in groups if name.startswith(b)), name)
        groups.setdefault(base, []).append(name[len(base) :])
    out = []
    for base, rests in groups.items():
        more = [r for r in rests if r]
        tail = f"(?:{'|'.join(re.escape(r) for r in more)})?" if more else ""
        out.append(re.escape(base) + tail)
    return out


def _word_searches(
    words: Sequence[str], framing: Sequence[bytes]
) -> Tuple[Tuple[bytes, ...], Tuple[Pattern[bytes], ...]]:
    """Searches of the lowered block for ``words``: plain finds, and one expression
    for the words that share a two-letter part (one pass for them all, its
    literal first); a word met inside a framing word is skipped there."""

    def unframed(word: str) -> str:
        """Lookbehinds that skip ``word`` where a framing word holds it after a
        letter (never a level word's place: a level word follows a blank, a
        bracket, a quote, ...), unless that letter may end a JSON escape (``\t``)."""
        out = ""
        for frame in framing:
            text = frame.decode("ascii")
            at = text.find(word, 1)
            while at >= 1:
                if text[at - 1].isalpha() and text[at - 1] not in "bfnrtu":
                    out += f"(?<!{re.escape(text[: at + len(word)])})"
                at = text.find(word, at + 1)
        return out

    left = list(words)
    finds: List[bytes] = []
    patterns: List[Pattern[bytes]] = []
    while left:
        pairs = sorted({w[i : i + 2] for w in left for i in range(len(w) - 1)})
        best = max(pairs, key=lambda p: sum(p in w for w in left), default="")
        group = [w for w in left if best and best in w]
        if len(group) < 2:
            for word in left:
                skip = unframed(word)
                if skip:
                    patterns.append(re.compile((re.escape(word) + skip).encode()))
                else:
                    finds.append(word.encode())
            break
        alternatives = []
        for word in group:
            at = word.find(best)
            behind = f"(?<={re.escape(word)})" if at else ""
            alternatives.append(re.escape(word[at + 2 :]) + behind + unframed(word))
            left.remove(word)
        patterns.append(re.compile(f"{re.escape(best)}(?:{'|'.join(alternatives)})".encode()))
    return tuple(finds), tuple(patterns)


class Prefilter:
    """Where the lines of a block that may be error-level start: a few literal
    searches per block (the fast searches of bytes and of the re module), never
    one alternation tried at every byte; made by :meth:`LevelRules.prefilter`."""

    def __init__(
        self,
        finds: Tuple[bytes, ...],
        lowered: Tuple[Pattern[bytes], ...],
        raw: Sequence[Tuple[bytes, Pattern[bytes]]],
    ) -> None:
        self.finds = finds  # in the block lowered once
        self.lowered = lowered  # likewise
        # As written; each run only when its byte is in the block (memchr is
        # ten times faster than the re module's own search).
        self.raw = tuple(raw)

    def line_starts(self, data: bytes) -> Set[int]:
        """The starts of the lines of ``data`` that may be error-level."""
        hits: List[int] = []
        low = data.lower()
        for word in self.finds:
            pos = low.find(word)
            while pos >= 0:
                hits.append(pos)
                pos = low.find(word, pos + len(word))
        for pattern in self.lowered:
            hits.extend(m.start() for m in pattern.finditer(low))
        for literal, pattern in self.raw:
            if literal in data:
                hits.extend(m.start() for m in pattern.finditer(data))
        return {data.rfind(b"\n", 0, pos) + 1 for pos in hits}
