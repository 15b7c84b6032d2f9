"""The WebSocket wire protocol's client messages: parsing and validation.

Everything a browser sends is hostile until proven otherwise.  A message is one
JSON object of at most ``MAX_MESSAGE`` bytes; each known ``type`` has a fixed
set of fields with fixed types and ranges.  Anything else is refused with a
:class:`MessageError` whose text is safe to send back.  See docs/protocol.md.
"""

from __future__ import annotations

import json
from typing import Any, Dict

#: Largest client message accepted (bytes); the server refuses bigger frames too.
MAX_MESSAGE = 4096
#: Longest process name accepted.
MAX_NAME = 512
#: Most records a ``tail`` may ask for.
MAX_TAIL = 10_000
#: Offsets are byte positions in a log: 2**62 is far beyond any disk.
MAX_OFFSET = 2**62


class MessageError(ValueError):
    """A client message that is refused; ``str()`` is safe to send back."""


def _process(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise MessageError(f"'process' must be a process name of 1 to {MAX_NAME} characters")
    if any(ord(char) < 32 for char in value):
        raise MessageError("'process' must not contain control characters")
    return value


def _int(message: Dict[str, Any], key: str, low: int, high: int) -> Any:
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MessageError(f"'{key}' must be a whole number from {low} to {high}")
    return value


_FIELDS = {
    "subscribe": {"type", "process", "tail", "cursor"},
    "unsubscribe": {"type", "process"},
    "ping": {"type", "id"},
}


def parse_message(text: Any) -> Dict[str, Any]:
    """Parse and validate one client message; raise :class:`MessageError`."""
    if isinstance(text, bytes):
        raise MessageError("messages must be text frames")
    if not isinstance(text, str):
        raise MessageError("messages must be text frames")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE:
        raise MessageError(f"message longer than {MAX_MESSAGE} bytes")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise MessageError("message is not valid JSON") from None
    if not isinstance(message, dict):
        raise MessageError("message must be a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise MessageError("'type' must be one of: " + ", ".join(sorted(_FIELDS)))
    unknown = set(message) - _FIELDS[kind]
    if unknown:
        raise MessageError(
            f"unknown field(s) for {kind}: " + ", ".join(sorted(map(str, unknown)))[:200]
        )
    result: Dict[str, Any] = {"type": kind}
    if kind in ("subscribe", "unsubscribe"):
        result["process"] = _process(message.get("process"))
    if kind == "subscribe":
        result["tail"] = _int(message, "tail", 0, MAX_TAIL) or 0
        result["cursor"] = _int(message, "cursor", 0, MAX_OFFSET)
        if result["cursor"] is not None and result["tail"]:
            raise MessageError("give 'cursor' or 'tail', not both")
    if kind == "ping":
        value = message.get("id")
        if value is not None and (
            not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > 64
        ):
            raise MessageError("'id' must be a short string or number")
        result["id"] = value
    return result
