"""Fixtures shared by the test modules."""

from __future__ import annotations

from typing import Iterator, List

import pytest

from .supervisor import Supervisor

# The browser tests' fixtures (browser, page): tests/browsing.py.
pytest_plugins = ["tests.browsing"]


@pytest.fixture
def stopper() -> Iterator[List[Supervisor]]:
    """Supervisors a test started (append them): stopped at the end, pass or fail."""
    started: List[Supervisor] = []
    yield started
    for sup in started:
        sup.stop()
