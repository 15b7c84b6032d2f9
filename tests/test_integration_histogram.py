"""GET /api/log/NAME/histogram against the real sidecar under a real supervisord."""

from __future__ import annotations

import json
import math
import urllib.parse
from functools import partial
from typing import Any, Dict, Iterator, List

import pytest

from .histogram_counts import COLUMNS, counted, is_error, seconds
from .sidecar import get, history, serving
from .supervisor import Supervisor, Supervisors, emit, program, wait_for


def line(n: int) -> str:
    """The job's nth line: some error-level (a plain ERROR, a JSON fatal), some
    mentioning an error without being one."""
    if n % 9 == 4:
        return f"ERROR: line {n:09d} failed"
    if n % 11 == 5:
        return f'{{"level":"fatal","msg":"line {n:09d}"}}'
    if n % 13 == 6:
        return f"INFO line {n:09d}: no error, stderr is quiet"
    return f"line {n:09d} {'z' * (n % 50)}"


def histogram(sup: Supervisor, process: str, **query: object) -> Dict[str, Any]:
    url = f"{sup.url}/api/log/{urllib.parse.quote(process)}/histogram"
    status, body = get(f"{url}?{urllib.parse.urlencode(query)}")
    assert status == 200, body
    return dict(body)


def answers(url: str) -> bool:
    return get(url)[0] == 200


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    tmp = tmp_path_factory.mktemp("histogram")
    steps: List[Any] = []
    for n in range(400):
        stream = "err" if n % 5 == 2 else "out"
        steps.append([stream, (line(n) + "\n").encode().hex()])
        if n % 40 == 39:
            steps.append(["sleep", 0.4])  # spread over several seconds
    steps.append(["exit", 3])  # not an expected exit code: expected=false
    (tmp / "job.json").write_text(json.dumps(steps))
    with Supervisors() as supervisord:  # the one way, for a module's fixture
        sup = supervisord(
            serving(
                tmp,
                {
                    "job": program(emit("script", tmp / "job.json"), autorestart="false"),
                    "ticker": program(emit("tick", 0.05)),
                    "plain": program(emit("tick", 0.5), stdout_logfile=str(tmp / "plain.out")),
                },
                streamlog={
                    "maxbytes": "4KB",
                    "compress": "true",
                    "backups": "100",
                    "programs": "job ticker",
                },
            )
        )
        for name in ("job", "ticker", "plain"):
            wait_for(partial(answers, f"{sup.url}/api/log/{name}"), 30, f"{name}'s log")
        sup.wait_state("job", "EXITED")
        wait_for(
            lambda: "EXITED" in json.dumps(get(f"{sup.url}/api/log/job?limit=5")[1]),
            30,
            "job's exit record",
        )
        yield sup


def test_counts_are_the_records_of_a_rotated_and_compressed_log(sidecar: Supervisor) -> None:
    assert len(sidecar.log_files("job")) > 5
    entries = history(sidecar.url, "job:job", 0, 2**62)
    first, last = seconds(entries[0]["time"]), seconds(entries[-1]["time"])
    for since, until, buckets in [
        (math.floor(first) - 1, math.floor(last) + 2, 13),
        (math.floor(first), math.floor(first) + 3, 300),
        (first + 0.5, last - 0.5, 1),
    ]:
        answer = histogram(sidecar, "job", since=since, until=until, buckets=buckets)
        counts, exits = counted(entries, since, until, buckets)
        for name in COLUMNS:
            assert answer[name] == counts[name], name
        assert answer["exit_times"] == pytest.approx(exits, abs=1e-6)
        assert answer["process"] == "job:job"
        assert (answer["since"], answer["until"], answer["buckets"]) == (since, until, buckets)
    whole = histogram(sidecar, "job", buckets=5)  # defaults: the whole log
    assert sum(whole["stdout"]) + sum(whole["stderr"]) == 400
    assert sum(whole["exits"]) == len(whole["exit_times"]) == 1
    assert sum(whole["errors"]) == sum(1 for n in range(400) if is_error(line(n))) > 50
    assert whole["since"] == math.floor(first) and whole["cursor"] == entries[-1]["end"]


def grown(sup: Supervisor, past: int) -> bool:
    return bool(get(f"{sup.url}/api/log/ticker?limit=1")[1]["last"] > past)


def test_a_growing_log_is_counted_up_to_the_cursor_it_gives(sidecar: Supervisor) -> None:
    previous = 0
    for _round in range(3):
        answer = histogram(sidecar, "ticker", since=0, until=2**33, buckets=1)
        assert answer["cursor"] > previous
        previous = answer["cursor"]
        entries = history(sidecar.url, "ticker:ticker", 0, answer["cursor"])
        counts, _ = counted(entries, 0, 2**33, 1)
        assert answer["stdout"] == counts["stdout"] and answer["status"] == counts["status"]
        wait_for(
            partial(grown, sidecar, previous + 500),
            30,
            "more ticks",
        )


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("since=soon", 400, "since must be RFC 3339 or epoch seconds"),
        ("until=NaN", 400, "until must be a time after 1970 and before the year 36812"),
        ("since=20&until=10", 400, "until must be later than since"),
        ("buckets=2001", 400, "buckets must be from 1 to 2000"),
        ("buckets=0", 400, "buckets must be from 1 to 2000"),
        ("buckets=many", 400, "buckets must be a whole number"),
        ("since=4102444800", 400, "until must be later than since"),  # 2100: after now
    ],
)
def test_bad_parameters_are_a_400_that_says_why(
    sidecar: Supervisor, query: str, status: int, message: str
) -> None:
    assert get(f"{sidecar.url}/api/log/job/histogram?{query}") == (status, {"error": message})


def test_unknown_and_uncaptured_processes(sidecar: Supervisor) -> None:
    assert get(f"{sidecar.url}/api/log/nosuch/histogram") == (404, {"error": "no such process log"})
    status, body = get(f"{sidecar.url}/api/log/plain/histogram")
    assert status == 400 and "no timestamps" in body["error"]
