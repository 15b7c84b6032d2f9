"""The test suite's own rules: a test module is a list of behaviours, read on its own.

Test modules share helpers through the helper modules of tests/ (helpers,
supervisor, sidecar, rsyslog, forwarder, logfile, ...) and fixtures through
conftest.py, never by importing one another: borrowing a test module's helpers
ties two lists of behaviours together and runs one's module-level code in the other.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

TESTS = Path(__file__).resolve().parent


def _test_modules_imported(path: Path) -> Set[str]:
    """The test modules (``test_*``) of tests/ that the module at ``path`` imports."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
            elif node.level == 0 and node.module and node.module.startswith("tests."):
                names = [node.module[len("tests.") :]]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [a.name[len("tests.") :] for a in node.names if a.name.startswith("tests.")]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0].startswith("test_"))
    return found


def _imports_of_test_modules() -> Dict[str, Set[str]]:
    """Each module of tests/ (test modules, helpers, conftest) -> the test modules it imports."""
    return {path.stem: _test_modules_imported(path) for path in sorted(TESTS.glob("*.py"))}


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    edges = {(m, t) for m, imported in _imports_of_test_modules().items() for t in imported}
    assert edges == set(), "a test module's helpers belong in a helper module"


def test_the_rule_sees_every_way_of_importing(tmp_path: Path) -> None:
    ways = [
        "from .test_a import x",
        "from . import test_a",
        "from .test_a.sub import x",
        "from tests.test_a import x",
        "import tests.test_a",
    ]
    for way in ways:
        (tmp_path / "m.py").write_text(way + "\n")
        assert _test_modules_imported(tmp_path / "m.py") == {"test_a"}, way
    (tmp_path / "m.py").write_text("from .helpers import x\nfrom . import supervisor\n")
    assert _test_modules_imported(tmp_path / "m.py") == set()
