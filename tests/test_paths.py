"""Process names become safe, reversible path components inside logdir."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor_streamlog.capture.writer import RotatingWriter
from supervisor_streamlog.ondisk.paths import (
    log_path,
    quote_name,
    relative_log_path,
    split_process,
    unquote_name,
)

QUOTED_ALPHABET = set(string.ascii_letters + string.digits + "_.@+=,-%")

HOSTILE = [
    "..",
    ".",
    "../..",
    "/etc/passwd",
    "a/../../b",
    "../../../../tmp/evil",
    "a\0b",
    "\0",
    ".hidden",
    "...",
    "name\nwith newline",
    "back\\slash",
    "ünïcödé-名前-😀",
    "%2E%2E",
    "%",
    " ",
    "~root",
    "a" * 200,
    "",
]


def assert_safe_component(component: str) -> None:
    assert component not in ("", ".", "..")
    assert not component.startswith(".")
    assert set(component) <= QUOTED_ALPHABET
    assert "/" not in component and "\0" not in component


@settings(max_examples=500, deadline=None)
@given(name=st.text(max_size=40))
def test_quote_unquote_round_trip(name: str) -> None:
    component = quote_name(name)
    assert_safe_component(component)
    assert unquote_name(component) == name


@settings(max_examples=300, deadline=None)
@given(a=st.text(max_size=8), b=st.text(max_size=8))
def test_different_names_never_share_a_file(a: str, b: str) -> None:
    if a != b:
        assert quote_name(a) != quote_name(b)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip_and_are_safe(name: str) -> None:
    component = quote_name(name)
    assert_safe_component(component)
    assert unquote_name(component) == name


def test_ordinary_names_are_kept_readable() -> None:
    for name in ["web", "worker_00", "api-v2", "a.b", "user@host", "x+y=z,w"]:
        assert quote_name(name) == name
    assert quote_name(".env") == "%2Eenv"
    assert quote_name("a/b") == "a%2Fb"
    assert quote_name("é") == "%C3%A9"


def test_relative_log_path() -> None:
    assert relative_log_path("web", "web") == "web.log"
    assert relative_log_path("worker", "worker_00") == os.path.join("worker", "worker_00.log")
    assert relative_log_path("", "solo") == "solo.log"
    assert relative_log_path("..", "..") == "%2E..log"


@pytest.mark.parametrize("group", HOSTILE)
@pytest.mark.parametrize("name", ["..", "/etc/passwd", "a/../../b", "ok", ".x", "\0"])
def test_hostile_names_never_escape_logdir(tmp_path: Path, group: str, name: str) -> None:
    logdir = str(tmp_path / "logs")
    path = log_path(logdir, group, name)
    real = os.path.realpath(path)
    assert os.path.commonpath([real, os.path.realpath(logdir)]) == os.path.realpath(logdir)
    # At most one directory level below logdir.
    rel = os.path.relpath(real, os.path.realpath(logdir))
    assert rel.count(os.sep) <= 1
    assert ".." not in rel.split(os.sep)


@settings(max_examples=300, deadline=None)
@given(group=st.text(max_size=20), name=st.text(max_size=20))
def test_any_names_stay_inside_logdir(group: str, name: str) -> None:
    logdir = "/srv/logs"
    path = os.path.normpath(log_path(logdir, group, name))
    assert path.startswith(logdir + "/")
    rel = path[len(logdir) + 1 :]
    parts = rel.split("/")
    assert 1 <= len(parts) <= 2
    for part in parts:
        assert_safe_component(part)


def test_writing_to_hostile_names_creates_files_only_inside_logdir(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    outside_before = set(os.listdir(tmp_path))
    for group in HOSTILE:
        for name in ["..", "/etc/passwd", "a/../../b"]:
            writer = RotatingWriter(log_path(str(logdir), group, name), maxbytes=50, backups=2)
            writer.write(b"x" * 30 + b"\n")
            writer.write(b"y" * 30 + b"\n")  # rotation: renames stay inside too
            writer.close()
    assert set(os.listdir(tmp_path)) == outside_before | {"logs"}
    for root, _dirs, files in os.walk(logdir):
        for file in files:
            full = os.path.realpath(os.path.join(root, file))
            assert full.startswith(str(logdir.resolve()) + os.sep)


def test_split_process() -> None:
    assert split_process("web") == ("web", "web")
    assert split_process("worker:worker_00") == ("worker", "worker_00")
    assert split_process("g:a:b") == ("g", "a:b")
