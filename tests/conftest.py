"""Fixtures shared by the test modules."""

from __future__ import annotations

from typing import Iterator, List

import pytest

from .helpers import Cli
from .supervisor import Supervisor


@pytest.fixture
def stopper() -> Iterator[List[Supervisor]]:
    """Supervisors a test started (append them): stopped at the end, pass or fail."""
    started: List[Supervisor] = []
    yield started
    for sup in started:
        sup.stop()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Runs ``supervisor-streamlog ARGV...`` in this process: ``cli("check", "-c", conf)``."""
    return Cli(capsys)
