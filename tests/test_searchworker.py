"""The regex search worker: answers as the store does, killed on a regex bomb, not our fork."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Iterator

import pytest

from supervisor_streamlog.logread.logstore import LogStore
from supervisor_streamlog.logread.searchworker import SearchTimeout, SearchWorker

OPTIONS = {"start": None, "backward": True, "limit": 100, "budget": 0.5, "regex": True}


@pytest.fixture
def log_path(tmp_path: Path) -> str:
    path = tmp_path / "app.log"
    lines = [f"2026-12-03T07:00:{i % 60:02d}.000000+00:00 stdout line {i}\n" for i in range(500)]
    lines.append("2026-12-03T07:01:00.000000+00:00 stdout " + "a" * 40 + "!\n")
    path.write_text("".join(lines))
    return str(path)


@pytest.fixture
def worker() -> Iterator[SearchWorker]:
    worker = SearchWorker()
    yield worker
    worker.stop()


def test_answers_as_the_store_does(worker: SearchWorker, log_path: str) -> None:
    recipe = functools.partial(LogStore, log_path)
    got = worker.search(recipe, r"line 4\d\b", OPTIONS, timeout=30)
    expected = LogStore(log_path).search(r"line 4\d\b", **OPTIONS)  # type: ignore[arg-type]
    assert [e.offset for e in got.entries] == [e.offset for e in expected.entries]
    assert len(got.entries) == 10 and got.complete


def test_a_bad_pattern_comes_back_as_the_store_raised_it(
    worker: SearchWorker, log_path: str
) -> None:
    with pytest.raises(ValueError, match="unterminated|missing"):
        worker.search(functools.partial(LogStore, log_path), "(unclosed", OPTIONS, timeout=30)


def test_a_regex_bomb_is_killed_and_the_next_search_works(
    worker: SearchWorker, log_path: str
) -> None:
    recipe = functools.partial(LogStore, log_path)
    worker.start()
    first = worker._process
    assert first is not None
    with pytest.raises(SearchTimeout, match="took too long"):
        worker.search(recipe, r"(a+)+$", OPTIONS, timeout=1.0)
    first.join(5)
    assert not first.is_alive()  # killed, not left spinning
    got = worker.search(recipe, r"line 499$", OPTIONS, timeout=30)
    assert [e.record.data for e in got.entries] == [b"line 499"]


def test_the_worker_is_not_forked_from_the_threaded_server(
    worker: SearchWorker, log_path: str
) -> None:
    """A child forked from a process with threads can inherit a held lock and hang.

    Hold the logging module's lock in another thread while the worker starts
    and searches: the worker comes from the forkserver (its parent is not
    us), so it neither inherits the lock nor waits for it.
    """
    import logging

    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with logging._lock:  # type: ignore[attr-defined]
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        got = worker.search(functools.partial(LogStore, log_path), "line 7$", OPTIONS, timeout=30)
        assert [e.record.data for e in got.entries] == [b"line 7"]
        process = worker._process
        assert process is not None and process.pid is not None
        with open(f"/proc/{process.pid}/stat") as handle:
            parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        assert parent != os.getpid()
    finally:
        release.set()
        holder.join(10)
