"""The package's layers: data flows one way, and capture stays free of the sidecar.

Plugin mode runs inside supervisord: importing tornado or prometheus_client
there would slow every supervisord start and risk its event loop, so capture
must never import them, directly or through another module.  Above that,
every module may import only modules listed before it in ``ORDER`` -- the
pipeline from the on-disk contract up to the commands -- and capture and the
sidecar never import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = "supervisor_streamlog"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Lowest first.  A module may import only modules that come before it.
ORDER = [
    # the on-disk contract, shared by both sides
    "ondisk",
    "ondisk.paths",
    "ondisk.logdir",
    "ondisk.formats",
    "ondisk.gzipped",
    "ondisk.files",
    # settings and supervisord's XML-RPC, shared by both sides
    "config",
    "rpc",
    # capture: chunks in, records on disk out
    "capture",
    "capture.assemble",
    "capture.compressor",
    "capture.writer",
    "capture.core",
    "capture.listener",
    "capture.plugin",
    "capture.ctlplugin",
    # the read side: files in, records, pages, follows and figures out
    "logread",
    "logread.blocks",
    "logread.search",
    "logread.store",
    "logread.timeseek",
    "logread.levels",
    "logread.prefilter",
    "logread.histscan",
    "logread.histogram",
    "logread.logstore",
    "logread.restarts",
    "logread.follow",
    "logread.rawstore",
    "logread.rawfollow",
    "logread.searchworker",
    # the sidecar: the read side served over HTTP and WebSocket
    "sidecar",
    "sidecar.protocol",
    "sidecar.inotify",
    "sidecar.watcher",
    "sidecar.hosts",
    "sidecar.hub",
    "sidecar.metrics",
    "sidecar.auth",
    "sidecar.restartcount",
    "sidecar.processes",
    "sidecar.rawpoll",
    "sidecar.statepoll",
    "sidecar.snapshots",
    "sidecar.handlers",
    "sidecar.live",
    "sidecar.actions",
    "sidecar.server",
    # the forwarder: files in, RFC 5424 messages to a log engine out
    "forward",
    "forward.syslog",
    "forward.receive",
    "forward.octet",
    "forward.relpframe",
    "forward.relp",
    "forward.destinations",
    "forward.state",
    "forward.behind",
    "forward.metrics",
    "forward.forwarder",
    # commands and the entry points named in users' supervisord.conf
    "plugin",
    "ctlplugin",
    "formats",
    "check",
    "tail",
    "cli",
    "__main__",
]
CAPTURE_MUST_NOT_LOAD = ("tornado", "prometheus_client")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or ""


def _imports(path: Path) -> Set[str]:
    """Every module of the package (or top-level name outside it) ``path`` imports."""
    own = _module_name(path)
    package = own.split(".") if path.name == "__init__.py" else own.split(".")[:-1]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
                base = f"{PACKAGE}.{base}" if base else PACKAGE
            found.add(base)
            for alias in node.names:  # ``from . import x`` may name a module
                found.add(f"{base}.{alias.name}")
    return found


def _graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        known = {f"{PACKAGE}.{m}" for m in ORDER} | {PACKAGE}
        graph[name] = set()
        for target in _imports(path):
            if target in known and target != PACKAGE:
                graph[name].add(target[len(PACKAGE) + 1 :])
            elif not target.startswith(PACKAGE):
                graph[name].add(target)
    return graph


def test_every_module_has_a_place_in_the_order() -> None:
    modules = {_module_name(p) for p in ROOT.rglob("*.py")} - {""}
    assert modules == set(ORDER), "add new modules to ORDER, at their place in the flow"


def test_no_module_imports_one_above_it() -> None:
    rank = {name: index for index, name in enumerate(ORDER)}
    wrong: List[str] = []
    for module, targets in _graph().items():
        if module not in rank:
            continue
        for target in targets:
            if target in rank and rank[target] >= rank[module]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


@pytest.mark.parametrize(("side", "other"), [("capture", "sidecar"), ("sidecar", "capture")])
def test_capture_and_sidecar_do_not_import_each_other(side: str, other: str) -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.split(".")[0] == side
        for target in targets
        if target.split(".")[0] == other
    ]
    assert wrong == []


READERS = ("sidecar", "forward", "tail")


def _side(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("reader", READERS)
def test_the_readers_share_the_read_side_and_never_import_one_another(reader: str) -> None:
    """The sidecar, the forwarder and ``tail`` each read through ``logread``; only the CLI
    (which dispatches to all of them) may import more than one."""
    others = set(READERS) - {reader}
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _side(module) == reader
        for target in targets
        if _side(target) in others
    ]
    assert wrong == []


def test_only_the_cli_imports_the_sidecar() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _side(module) not in ("sidecar", "cli")
        for target in targets
        if _side(target) == "sidecar"
    ]
    assert wrong == []


def test_the_read_side_loads_no_server() -> None:
    """``tail`` and the forwarder import ``logread``: it must not bring tornado along."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _side(module) == "logread"
        for target in targets
        if _side(target) in CAPTURE_MUST_NOT_LOAD or _side(target) in READERS
    ]
    assert wrong == []


def test_capture_imports_neither_tornado_nor_prometheus_client() -> None:
    """Statically, and in a fresh interpreter importing every capture entry point."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.split(".")[0] in ("capture", "ondisk") or module in ("config", "rpc", "plugin")
        for target in targets
        if target.split(".")[0] in CAPTURE_MUST_NOT_LOAD
    ]
    assert wrong == []
    code = (
        "import sys\n"
        "import supervisor_streamlog.plugin, supervisor_streamlog.ctlplugin\n"
        "import supervisor_streamlog.capture.listener\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {CAPTURE_MUST_NOT_LOAD!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_the_supervisord_conf_entry_points_stay_importable() -> None:
    """These strings are in users' supervisord.conf files."""
    from supervisor_streamlog.capture.ctlplugin import make_ctlplugin as ctl_impl
    from supervisor_streamlog.capture.plugin import make_rpcinterface as rpc_impl
    from supervisor_streamlog.ctlplugin import make_ctlplugin
    from supervisor_streamlog.plugin import make_rpcinterface

    assert make_rpcinterface is rpc_impl
    assert make_ctlplugin is ctl_impl


def test_no_package_file_is_over_700_lines() -> None:
    """A module holds one concern; past 700 lines a second one hides in it (split there)."""
    long_files = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines > 700:
            long_files.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long_files == []
