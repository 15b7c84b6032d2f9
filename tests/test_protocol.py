"""Client messages of the WebSocket protocol (docs/protocol.md): hostile input is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor_streamlog.sidecar.protocol import MAX_MESSAGE, MAX_TAIL, MessageError, parse_message


def test_the_documented_messages() -> None:
    assert parse_message('{"type": "subscribe", "process": "web:web", "tail": 500}') == {
        "type": "subscribe",
        "process": "web:web",
        "tail": 500,
        "cursor": None,
    }
    assert parse_message('{"type": "subscribe", "process": "web:web", "cursor": 98765}') == {
        "type": "subscribe",
        "process": "web:web",
        "tail": 0,
        "cursor": 98765,
    }
    assert parse_message('{"type": "subscribe", "process": "web"}')["tail"] == 0
    assert parse_message('{"type": "unsubscribe", "process": "web:web"}') == {
        "type": "unsubscribe",
        "process": "web:web",
    }
    assert parse_message('{"type": "ping", "id": 7}') == {"type": "ping", "id": 7}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "not valid JSON"),
        ("[]", "JSON object"),
        ('"subscribe"', "JSON object"),
        ('{"type": "shutdown"}', "'type' must be"),
        ('{"process": "x"}', "'type' must be"),
        ('{"type": "subscribe"}', "'process'"),
        ('{"type": "subscribe", "process": ""}', "'process'"),
        ('{"type": "subscribe", "process": 5}', "'process'"),
        ('{"type": "subscribe", "process": "a\\u0000b"}', "control characters"),
        ('{"type": "subscribe", "process": "' + "x" * 600 + '"}', "'process'"),
        ('{"type": "subscribe", "process": "x", "tail": -1}', "'tail'"),
        ('{"type": "subscribe", "process": "x", "tail": 10001}', "'tail'"),
        ('{"type": "subscribe", "process": "x", "tail": "5"}', "'tail'"),
        ('{"type": "subscribe", "process": "x", "tail": true}', "'tail'"),
        ('{"type": "subscribe", "process": "x", "tail": 1.5}', "'tail'"),
        ('{"type": "subscribe", "process": "x", "cursor": -3}', "'cursor'"),
        ('{"type": "subscribe", "process": "x", "cursor": 1e30}', "'cursor'"),
        ('{"type": "subscribe", "process": "x", "cursor": 5, "tail": 5}', "not both"),
        ('{"type": "subscribe", "process": "x", "__proto__": {}}', "unknown field"),
        ('{"type": "ping", "id": {"a": 1}}', "'id'"),
        ("[" * 100000 + "]" * 100000, "longer than"),
        ('{"type": "ping", "id": "' + "y" * MAX_MESSAGE + '"}', "longer than"),
    ],
)
def test_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(text)
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 300  # safe to send back, never echoes a huge input


def test_deeply_nested_json_is_refused_not_crashing() -> None:
    text = '{"type": "ping", "id": ' + "[" * 1000 + "]" * 1000 + "}"
    with pytest.raises(MessageError):
        parse_message(text)


def test_binary_frames_are_refused() -> None:
    with pytest.raises(MessageError):
        parse_message(b'{"type": "ping"}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.text(max_size=300))
def test_any_text_is_parsed_or_refused_cleanly(text: str) -> None:
    try:
        result = parse_message(text)
    except MessageError:
        return
    assert result["type"] in ("subscribe", "unsubscribe", "ping")


@given(
    st.dictionaries(
        st.sampled_from(["type", "process", "tail", "cursor", "id", "x"]), json_values, max_size=5
    )
)
def test_any_object_is_parsed_or_refused_cleanly(message: Any) -> None:
    try:
        result = parse_message(json.dumps(message))
    except MessageError:
        return
    # What is accepted is exactly what the protocol allows.
    assert set(result) <= {"type", "process", "tail", "cursor", "id"}
    if result["type"] == "subscribe":
        assert isinstance(result["process"], str) and result["process"]
        assert 0 <= result["tail"] <= MAX_TAIL
        assert result["cursor"] is None or (
            isinstance(result["cursor"], int) and result["cursor"] >= 0
        )
