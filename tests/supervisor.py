"""Run a real supervisord (from pip) for the integration tests, and read back our files.

One way to run one: build a :class:`Supervisor` (a config generated from
conf/tests/, or a builder such as :func:`tests.sidecar.serving` or
:func:`tests.forwarder.forwarding`) and hand it to the ``supervisord`` fixture
(conftest.py), a :class:`Supervisors`: it starts it, waits with a deadline until
supervisord answers (and the builder's own condition holds), and stops it by
its pid when the test ends, pass or fail::

    sup = supervisord(Supervisor(tmp_path, {"app": program(emit("tick", 0.05))}))
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

from supervisor_streamlog.ondisk.files import is_header
from supervisor_streamlog.ondisk.formats import Record, iter_records

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
CHILDREN = Path(__file__).resolve().parent / "children"
EMIT = CHILDREN / "emit.py"

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def program(command: str, **options: object) -> Dict[str, object]:
    """A [program:x] section: command plus options (events enabled by default)."""
    section: Dict[str, object] = {
        "command": command,
        "autorestart": "false",
        "startsecs": 0,
        "stdout_events_enabled": "true",
        "stderr_events_enabled": "true",
        "stopwaitsecs": 5,
    }
    section.update(options)
    return section


def emit(*args: object) -> str:
    return f"{sys.executable} {EMIT} " + " ".join(str(a) for a in args)


class Supervisor:
    """A supervisord in ``workdir`` with streamlog and the given programs.

    ``base`` is a config from conf/tests/ (listener.conf or plugin.conf);
    ``daemon`` makes supervisord fork into the background as in production.
    :meth:`from_file` runs a config of conf/ as it is instead.
    """

    def __init__(
        self,
        workdir: Path,
        programs: Dict[str, Dict[str, object]],
        streamlog: Optional[Dict[str, object]] = None,
        base: str = "listener.conf",
        buffer_size: int = 8192,
        extra: str = "",
        daemon: bool = False,
    ) -> None:
        settings: Dict[str, object] = {"logdir": str(workdir / "streamlog")}
        settings.update(streamlog or {})
        text = (CONF / "tests" / base).read_text()
        if daemon:
            text = text.replace("nodaemon = true", "nodaemon = false")
        text += "\n[streamlog]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        for name, options in programs.items():
            text += f"\n[program:{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
        text += extra
        (workdir / "supervisord.conf").write_text(text)
        env = dict(
            os.environ,
            STREAMLOG_PYTHON=sys.executable,
            STREAMLOG_BUFFER_SIZE=str(buffer_size),
            PYTHONUNBUFFERED="1",
        )
        self._attach(
            workdir, workdir / "supervisord.conf", Path(str(settings["logdir"])), env, daemon
        )
        self.listener = base == "listener.conf"

    @classmethod
    def from_file(cls, conf: Path, workdir: Path, logdir: Path, env: Dict[str, str]) -> Supervisor:
        """A supervisord run from a config file as it is (conf/demo.conf, say):
        ``workdir`` holds its socket (supervisor.sock) and its log."""
        sup = cls.__new__(cls)
        sup._attach(workdir, conf, logdir, env, daemon=False)
        return sup

    def _attach(
        self, workdir: Path, conf: Path, logdir: Path, env: Dict[str, str], daemon: bool
    ) -> None:
        self.workdir = workdir
        self.conf = conf
        self.logdir = logdir
        self.env = env
        self.daemon = daemon
        self.listener = False
        self.proc: Optional[subprocess.Popen] = None
        self.pid = 0
        #: The sidecar's base URL, when it runs one (tests/sidecar.py).
        self.url = ""
        #: What else :meth:`start` waits for once supervisord answers (e.g. the
        #: sidecar answering /healthz); None: nothing.
        self.ready: Optional[Callable[[], object]] = None
        self.ready_what = "the programs to be ready"
        (workdir / "childlogs").mkdir(exist_ok=True)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Supervisor:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "supervisord.stderr", "ab"),
        )
        if self.daemon:
            assert self.proc.wait(30) == 0, (self.workdir / "supervisord.stderr").read_text()
        wait_for(self._answers, 30, "supervisord to answer XML-RPC")
        self.pid = int(self.rpc.supervisor.getPID())
        if self.listener:
            self.wait_state("streamlog:streamlog", "RUNNING")
        if self.ready is not None:
            wait_for(self.ready, 30, self.ready_what)
        return self

    def _alive(self) -> bool:
        if self.proc is not None and not self.daemon:
            return self.proc.poll() is None
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited

    def _answers(self) -> bool:
        assert self.proc is not None
        if not self.daemon and self.proc.poll() is not None:
            raise AssertionError(
                f"supervisord exited: {self.proc.returncode}\n"
                + (self.workdir / "supervisord.stderr").read_text()
                + self.main_log()
            )
        try:
            return self.rpc.supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to supervisord's pid and wait until it is gone (SIGKILL and fail
        after ``timeout``).  Stopping a stopped one does nothing."""
        if not self.pid and self.proc is not None and not self.daemon:
            self.pid = self.proc.pid  # it never answered: stop it all the same
        if self.pid and self._alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                wait_for(lambda: not self._alive(), timeout, "supervisord to stop")
            except AssertionError:
                os.kill(self.pid, signal.SIGKILL)
                raise
        if self.proc is not None:
            self.proc.wait(10)
        self.proc = None
        self.pid = 0

    def reload(self) -> None:
        """SIGHUP: supervisord stops everything, rereads its config, starts again."""
        os.kill(self.pid, signal.SIGHUP)

    def wait_reloaded(self, timeout: float = 60) -> None:
        """Wait until a reload has finished and supervisord answers again."""
        wait_for(self._answers, timeout, "supervisord to answer after reload")

    @property
    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.workdir}/supervisor.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def info(self, name: str) -> Dict[str, object]:
        return self.rpc.supervisor.getProcessInfo(name)

    def state(self, name: str) -> str:
        try:
            return str(self.info(name)["statename"])
        except (OSError, xmlrpc.client.Fault):
            return ""

    def wait_state(self, name: str, *states: str, timeout: float = 60) -> None:
        wait_for(lambda: self.state(name) in states, timeout, f"{name} in {states}")

    def main_log(self) -> str:
        path = self.workdir / "supervisord.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def listener_err(self) -> str:
        path = self.workdir / "listener.err"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------ our files

    def log_files(self, name: str) -> List[Path]:
        """Live file and backups of a process, oldest first."""
        live = self.logdir / f"{name}.log"
        found = []
        for path in self.logdir.glob(f"{name}.log.*"):
            suffix = path.name[len(name) + 5 :]
            index, _, packed = suffix.partition(".")
            if index.isdigit() and packed in ("", "gz"):
                found.append((int(index), path))
        ordered = [path for _, path in sorted(found, reverse=True)]
        return ordered + ([live] if live.exists() else [])

    def read_bytes(self, name: str) -> bytes:
        """Every byte of a process's files, oldest first (retried if a rotation or
        a compression renamed a file between listing and reading)."""
        for _ in range(50):
            try:
                blobs = []
                for path in self.log_files(name):
                    data = path.read_bytes()
                    if path.suffix == ".gz":
                        data = gzip.decompress(data)
                    blobs.append(data)
                return b"".join(blobs)
            except FileNotFoundError:
                time.sleep(0.05)
        raise AssertionError(f"{name}'s files kept changing under the reader")

    def records(self, name: str) -> List[Record]:
        """Every complete record but the files' headers (a write in progress may
        have left half of one at the end)."""
        data = self.read_bytes(name)
        found = iter_records(data[: data.rfind(b"\n") + 1])
        return [r for r in found if not is_header(r.stream, r.data)]


class Supervisors:
    """The supervisords one test (or one module-scoped fixture) starts: each
    started by :meth:`__call__`, every one stopped by its pid on :meth:`stop_all`
    or when the ``with`` block ends, pass or fail.  The ``supervisord`` fixture."""

    def __init__(self) -> None:
        self.started: List[Supervisor] = []

    def __call__(self, sup: Supervisor) -> Supervisor:
        """Start ``sup`` (it is stopped at the end even if starting fails)."""
        self.started.append(sup)
        return sup.start()

    def stop_all(self) -> None:
        """Stop every one started, the last first; the first failure is raised
        once all have been tried."""
        failure: Optional[BaseException] = None
        while self.started:
            try:
                self.started.pop().stop()
            except BaseException as exc:  # noqa: BLE001 -- the others are stopped too
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> Supervisors:
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop_all()
