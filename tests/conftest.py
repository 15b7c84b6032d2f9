"""Fixtures shared by the test modules."""

from __future__ import annotations

from typing import Iterator

import pytest

from .helpers import Cli
from .supervisor import Supervisors

# The browser tests' fixtures (browser, page): tests/browsing.py.
pytest_plugins = ["tests.browsing"]


@pytest.fixture
def supervisord() -> Iterator[Supervisors]:
    """Starts a real supervisord: ``sup = supervisord(Supervisor(tmp_path, programs))``;
    each is stopped by its pid when the test ends, pass or fail (tests/supervisor.py)."""
    with Supervisors() as started:
        yield started


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Runs ``supervisor-streamlog ARGV...`` in this process: ``cli("check", "-c", conf)``."""
    return Cli(capsys)
