"""What every benchmark needs: a supervisord stack of its own, and ways to wait on things.

    class Stack(Supervisord):
        def __init__(self, keep: bool) -> None:
            super().__init__("streamlog-mybench-", keep=keep, sidecar=True)
            self.configure(SECTIONS.format(dir=self.dir, port=self.port), loglevel="warn")

    stack = Stack(keep=False)
    try:
        stack.start()  # XML-RPC answers RUNNING, and the sidecar's /healthz 200
        stack.rpc.supervisor.startProcess("producer")
        wait_for(lambda: stack.state("producer") == "EXITED", 30, "the producer to exit")
    finally:
        stack.stop()
        stack.cleanup()

:class:`Supervisord` runs ``python -m supervisor.supervisord`` (nodaemon, on a
unix socket) in a temporary directory, importing ``supervisor_streamlog`` from
this checkout (``PYTHONPATH``) whatever ``pip install -e`` points to.  The rest
reads /proc (CPU seconds of a process and of the whole machine) so that a
benchmark can wait for a quiet machine and tell how much others used meanwhile.
Nothing here measures: timing and counting stay in each benchmark.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xmlrpc.client
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Callable, List, Optional, Sequence, Tuple, Type, TypeVar

ROOT = Path(__file__).resolve().parent.parent
EMIT = ROOT / "tests" / "children" / "emit.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")

# ---------------------------------------------------------------- waiting


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.02,
    poke: Optional[Callable[[], None]] = None,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    ``poke`` runs between polls: :meth:`Supervisord.poke` there makes
    supervisord act on what it queued without waiting out its 1 s ``poll()``.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        if poke is not None:
            poke()
        time.sleep(interval)


def tail(path: Path, size: int = 8192) -> bytes:
    """The last ``size`` bytes of a file (b"" if it cannot be read): to wait for a record."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - size))
            return handle.read()
    except OSError:
        return b""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (for the sidecar's ``bind``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> Tuple[int, bytes]:
    """(status, body) of a GET; status 0 if nothing answered, so it can be polled."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except OSError:
        return 0, b""


def stop_process(proc: subprocess.Popen, timeout: float = 10, signum: int = signal.SIGTERM) -> None:
    """Signal a child and wait for it; kill it if it is still there after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ---------------------------------------------------------------- /proc


def proc_stat(pid: int) -> List[str]:
    """The fields of ``/proc/PID/stat`` after the command name: [0] state, [1] ppid, ..."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def proc_times(pid: int) -> Tuple[float, float]:
    """(own CPU seconds, CPU seconds of reaped children) of a live process."""
    fields = proc_stat(pid)
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return own, children


def proc_state(pid: int) -> str:
    """The state letter of a process ("" once it is gone)."""
    try:
        return proc_stat(pid)[0]
    except OSError:
        return ""


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, from /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) for 0.3 s in which the machine used < ``limit`` cores."""
    deadline = time.monotonic() + max_wait
    while True:
        busy, began = machine_busy(), time.monotonic()
        time.sleep(0.3)
        load = (machine_busy() - busy) / (time.monotonic() - began)
        if load < limit or time.monotonic() > deadline:
            return load


def add_quiet_options(parser: argparse.ArgumentParser) -> None:
    """--quiet-load and --quiet-wait, for a benchmark that waits for quiet (``wait_quiet``)."""
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=0.3,
        help="cores other processes may use: wait for less before a measurement, "
        "repeat it once if they used more during it",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=10, help="seconds to wait at most for quiet"
    )


# ---------------------------------------------------------------- supervisord

HEADER = """\
[supervisord]
nodaemon = true
logfile = {dir}/supervisord.log
loglevel = {loglevel}
pidfile = {dir}/supervisord.pid
childlogdir = {dir}/childlogs

[unix_http_server]
file = {dir}/supervisor.sock

[supervisorctl]
serverurl = unix://{dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"""


class Supervisord:
    """A supervisord (nodaemon, unix socket) in a temporary directory of its own.

    ``configure`` writes ``supervisord.conf`` there (the common sections, then
    the benchmark's); ``start`` runs it and waits until it answers RUNNING over
    XML-RPC, the programs in ``awaited`` are RUNNING (an event listener pool's
    ``startsecs`` passes long after its READY) and, with ``sidecar``, until
    ``url/healthz`` answers (the sidecar binds 127.0.0.1:``port``).  ``stop``
    ends it; ``cleanup`` removes the directory unless ``keep``.  ``root``: the
    checkout whose ``supervisor_streamlog`` it runs (this one by default; another
    worktree to compare with).
    """

    def __init__(
        self,
        prefix: str,
        *,
        keep: bool = False,
        sidecar: bool = False,
        awaited: Sequence[str] = (),
        root: Path = ROOT,
    ) -> None:
        self.root = root
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        (self.dir / "childlogs").mkdir()
        self.conf = self.dir / "supervisord.conf"
        self.keep = keep
        self.awaited = tuple(awaited)
        self.port = free_port() if sidecar else 0
        self.url = f"http://127.0.0.1:{self.port}" if sidecar else ""
        self.proc: Optional[subprocess.Popen] = None
        self._stderr: Optional[IO[bytes]] = None

    def configure(self, sections: str, loglevel: str = "info") -> None:
        """Write supervisord.conf: the common sections, then ``sections``."""
        self.conf.write_text(HEADER.format(dir=self.dir, loglevel=loglevel) + sections)

    def command(self) -> List[str]:
        """How supervisord is run (a benchmark may run it through a wrapper)."""
        return [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)]

    # ------------------------------------------------------------ XML-RPC

    @property
    def rpc(self) -> Any:
        """A fresh proxy on the unix socket (one per call: a dropped one is never reused)."""
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.dir}/supervisor.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    @property
    def pid(self) -> int:
        """supervisord's pid (0 when it is not running)."""
        return self.proc.pid if self.proc is not None else 0

    def state(self, name: str) -> str:
        """A program's state name ("" while supervisord cannot tell)."""
        try:
            return str(self.rpc.supervisor.getProcessInfo(name)["statename"])
        except (OSError, xmlrpc.client.Fault):
            return ""

    def is_running(self, name: str) -> bool:
        return self.state(name) == "RUNNING"

    def process_pid(self, name: str) -> int:
        return int(self.rpc.supervisor.getProcessInfo(name)["pid"])

    def running(self) -> bool:
        """Whether supervisord answers RUNNING; raises if it exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"supervisord exited ({self.proc.returncode}): {self.errors()}")
        try:
            return bool(self.rpc.supervisor.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Fault):
            return False

    # ------------------------------------------------------------ life

    def start(self) -> None:
        # This checkout's package, whatever `pip install -e` points to.
        path = os.pathsep.join(filter(None, [str(self.root), os.environ.get("PYTHONPATH")]))
        self._stderr = open(self.dir / "supervisord.stderr", "ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.dir,
            env=dict(os.environ, PYTHONPATH=path),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        wait_for(self.running, 30, "supervisord to answer XML-RPC")
        for name in self.awaited:
            wait_for(functools.partial(self.is_running, name), 30, f"{name} to run")
        if self.url:
            wait_for(lambda: http_get(self.url + "/healthz")[0] == 200, 30, "the sidecar")

    def poke(self) -> None:
        """Wake supervisord's main loop.

        When nothing happens it sleeps up to 1 s in ``poll()`` (a signal does
        not wake it), and events it queued outside the I/O handlers -- the
        EXITED event, a last chunk drained when the child was reaped -- wait
        for the next wake-up; so do the steps of its shutdown.  A connection
        to its socket is the cheapest wake-up: accepted, then closed.
        """
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.dir / "supervisor.sock"))
        except OSError:
            pass

    def stop(self) -> None:
        """SIGTERM, poking it through its shutdown; killed after 60 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            while self.proc.poll() is None and time.monotonic() < deadline:
                self.poke()
                try:
                    self.proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def errors(self) -> str:
        """The ends of supervisord's output and log and of every ``*.err``: why it failed."""
        names = ["supervisord.stderr", "supervisord.log"]
        names += sorted(path.name for path in self.dir.glob("*.err"))
        out = []
        for name in names:
            path = self.dir / name
            if path.exists() and path.stat().st_size:
                out.append(f"--- {name}\n" + path.read_text(errors="replace")[-2000:])
        return "\n".join(out)

    def __enter__(self) -> Supervisord:
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()
        self.cleanup()
