"""How fast ``supervisor-streamlog forward`` delivers, against a real rsyslogd on loopback.

    python3 -m bench.forward                   # everything, 2 alternating rounds
    python3 -m bench.forward --records 200000 --rounds 3 --json out.json
    python3 -m bench.forward --skip live,outage
    python3 -m bench.forward --format json --skip catchup,outage   # JSON Lines logs

Four measurements, each against its own ``rsyslogd -n`` on 127.0.0.1 (config
generated here: one input, a ruleset with ``queue.type="Direct"`` as
docs and tests recommend, omfile writing ``%msg%`` per line):

* **catch-up**: N records of 100 bytes written beforehand by the real capture
  path (supervisord + plugin + ``tests/children/emit.py burst``, one file,
  no rotation), then, in alternating rounds: the forwarder over RELP, the
  forwarder over octet-counted TCP, and rsyslog reading the same file itself
  with ``imfile``.  Time: from starting the forwarder (or rsyslogd, for
  imfile) until rsyslog's output holds every record.  Forwarder CPU: utime +
  stime from ``/proc/PID/stat``, per 10 000 records, counted from the first
  record out (so Python's start-up is left out; the total is reported too).
* **live**: ``bench/children/stamped.py`` writes 50 000 lines/s for 20 s
  (``--live-programs N``: N of them share the rate, one log each) while
  the forwarder runs: the forwarder's CPU in cores over the writing, and the lag
  at the end (arrival of the last line minus the time stamp it was written with).
* **outage**: stamped.py writes 10 000 lines/s; the forwarder starts only after
  60 s; the catch-up rate is the records delivered from its start until the
  lag is under 1 s (or the last line arrived), divided by that time; the
  figure is that rate over the write rate (the goal is >= 5).

Every wait has a deadline; every server is on 127.0.0.1 and is stopped (by
pid) before the next measurement and at exit.  The machine is shared:
rounds alternate so that load hits every setup alike; rsyslogd's CPU is
reported beside the forwarder's.

(About 570 lines: the rsyslogd harness, the capture stacks and three
measurements with their report live in one file so the benchmark is one
command.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bench.common import EMIT, ROOT, Supervisord, free_port, proc_times, stop_process, wait_for

STAMPED = ROOT / "bench" / "children" / "stamped.py"
RSYSLOGD = "/usr/sbin/rsyslogd"
KINDS = ("relp", "tcp", "imfile")
_STAMP = re.compile(rb"seq (\d{9}) t (\d+\.\d+)")

RSYSLOG_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k" net.enableDNS="off")
template(name="msgonly" type="string" string="%msg%\\n")
ruleset(name="out" queue.type="Direct") {{
    action(type="omfile" file="{output}" template="msgonly")
}}
action(type="omfile" file="{internal}")
{inputs}
"""


# ---------------------------------------------------------------- rsyslogd


class Receiver:
    """An rsyslogd with one input (imrelp, imtcp or imfile) writing each message's MSG."""

    def __init__(self, directory: Path, kind: str, files: Optional[List[Path]] = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        work = self.dir / "work"
        work.mkdir(exist_ok=True)
        self.kind = kind
        self.port = free_port() if kind in ("relp", "tcp") else 0
        self.output = self.dir / "out.log"
        self.conf = self.dir / "rsyslog.conf"
        if kind == "relp":
            inputs = (
                'module(load="imrelp")\n'
                f'input(type="imrelp" address="127.0.0.1" port="{self.port}"'
                ' maxDataSize="64k" ruleset="out")'
            )
        elif kind == "tcp":
            inputs = (
                'module(load="imtcp")\n'
                f'input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="out")'
            )
        else:
            inputs = 'module(load="imfile" mode="inotify")\n' + "\n".join(
                f'input(type="imfile" file="{path}" tag="streamlog" ruleset="out"'
                ' freshStartTail="off")'
                for path in files or []
            )
        self.conf.write_text(
            RSYSLOG_CONF.format(
                work=work, output=self.output, internal=self.dir / "internal.log", inputs=inputs
            )
        )
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._pos = 0
        self._count = 0
        self._stamped = 0  # lines of stamped.py among them

    def start(self) -> None:
        """Run rsyslogd in the foreground; wait until its port (if any) accepts."""
        with open(self.dir / "stderr", "ab") as err:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "pid")],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.dir,
            )
        if self.port:
            wait_for(self._listening, 20, f"rsyslogd ({self.kind}) to listen")

    def _listening(self) -> bool:
        import socket

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited: {(self.dir / 'stderr').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def cpu(self) -> float:
        """rsyslogd's CPU seconds so far."""
        return proc_times(self.proc.pid)[0] if self.proc is not None else 0.0

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def count(self) -> int:
        """Lines in the output so far (read incrementally)."""
        try:
            with open(self.output, "rb") as handle:
                while True:
                    handle.seek(self._pos)
                    chunk = handle.read(1 << 20)
                    chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only
                    if not chunk:
                        break
                    self._count += chunk.count(b"\n")
                    self._stamped += chunk.count(b"seq ")
                    self._pos += len(chunk)
        except FileNotFoundError:
            pass
        return self._count

    def stamped(self) -> int:
        """Lines of ``stamped.py`` in the output so far (read incrementally)."""
        self.count()
        return self._stamped

    def last_stamp(self) -> Optional[Tuple[int, float]]:
        """(seq, write time) of the last stamped line in the output's last 4 KiB, if any."""
        try:
            with open(self.output, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - 4096))
                tail = handle.read()
        except FileNotFoundError:
            return None
        # the last stamped line (a status record may follow it)
        found = _STAMP.findall(tail[tail.find(b"\n") + 1 : tail.rfind(b"\n")])
        return (int(found[-1][0]), float(found[-1][1])) if found else None


# ---------------------------------------------------------------- forwarder


class Forward:
    """``python -m supervisor_streamlog forward`` on a logdir, to one destination."""

    def __init__(
        self, directory: Path, logdir: Path, url: str, profile: str = "", tree: Path = ROOT
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "forward.conf"
        self.conf.write_text(
            f"[streamlog]\nlogdir = {logdir}\nforward = {url}\n"
            f"forward_state = {directory / 'state'}\nhostname = bench\n"
        )
        self.err = directory / "forward.err"
        self.profile = profile
        self.tree = tree
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        path = os.pathsep.join(filter(None, [str(self.tree), os.environ.get("PYTHONPATH")]))
        command = [sys.executable]
        if self.profile:
            command += ["-m", "cProfile", "-o", self.profile]
        command += ["-m", "supervisor_streamlog", "forward", "-c", str(self.conf)]
        with open(self.err, "ab") as err:
            self.proc = subprocess.Popen(
                command, env=dict(os.environ, PYTHONPATH=path), stderr=err, cwd=self.tree
            )

    def cpu(self) -> float:
        assert self.proc is not None
        return proc_times(self.proc.pid)[0]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)
            self.proc = None


# ---------------------------------------------------------------- capture


class Capture(Supervisord):
    """supervisord + the plugin, one program, its log in ``dir/logs`` (no rotation)."""

    def __init__(
        self, name: str, command: str, keep: bool, fmt: str = "text", programs: int = 1
    ) -> None:
        super().__init__(f"streamlog-fwdbench-{name}-", keep=keep)
        several = (
            f"numprocs = {programs}\nprocess_name = %(program_name)s_%(process_num)02d\n"
            if programs > 1
            else ""
        )
        self.programs = programs
        self.logdir = self.dir / "logs"
        self.name = name
        self.configure(
            "\n[rpcinterface:streamlog]\n"
            "supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface\n"
            f"\n[streamlog]\nlogdir = {self.logdir}\nmaxbytes = 0\ntimezone = utc\n"
            f"format = {fmt}\n"
            f"\n[program:{name}]\ncommand = {command}\nautostart = false\n"
            "autorestart = false\nstartsecs = 0\nstdout_logfile = NONE\n"
            f"stderr_logfile = NONE\n{several}",
            loglevel="warn",
        )

    def start_stamped(self, work: Path) -> float:
        """Start the stamped.py programs, release them (SIGUSR1) and return when."""
        if self.programs > 1:
            self.rpc.supervisor.startProcessGroup(self.name, False)
        else:
            self.rpc.supervisor.startProcess(self.name, False)
        pids = []
        for number in range(self.programs):
            ready = stamped_ready(work, self.name, number, self.programs)
            wait_for(partial(_is_ready, ready), 30, "stamped.py")
            pids.append(int(ready.read_text()))
        began = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGUSR1)
        return began


def records_in(live: Path) -> Tuple[int, int]:
    """(records the forwarder sends, lines imfile reads) of a process's files."""
    from supervisor_streamlog.ondisk.files import is_header, process_files
    from supervisor_streamlog.ondisk.formats import parse

    sent = lines = 0
    for log in process_files(str(live)):
        with open(log.path, "rb") as handle:
            for line in handle:
                lines += 1
                record = parse(line.rstrip(b"\n"))
                if not is_header(record.stream, record.data):
                    sent += 1
    return sent, lines


# ---------------------------------------------------------------- measurements


@dataclass
class CatchUp:
    kind: str
    round: int
    records: int
    seconds: float
    rate: float
    forwarder_cpu: float = 0.0  # total, start-up included
    cpu_per_10k: float = 0.0  # from the first record out
    rsyslog_cpu: float = 0.0


def catch_up(
    kind: str, index: int, logdir: Path, live: Path, work: Path, want: Dict[str, int], args: Any
) -> CatchUp:
    """One catch-up of the files in ``logdir`` through ``kind``."""
    where = work / f"{kind}-{index}"
    proto, _, base = kind.partition("@")
    receiver = Receiver(where / "rsyslog", proto, [live])
    forward: Optional[Forward] = None
    target = want[proto]
    try:
        if proto == "imfile":
            began = time.monotonic()
            receiver.start()
        else:
            receiver.start()
            profile = str(where / "forward.prof") if args.profile else ""
            tree = Path(args.baseline) if base else ROOT
            forward = Forward(where, logdir, f"{proto}://127.0.0.1:{receiver.port}", profile, tree)
            began = time.monotonic()
            forward.start()
        first_cpu: Optional[float] = None
        first_count = 0
        deadline = began + args.timeout
        while True:
            count = receiver.count()
            if forward is not None and first_cpu is None and count:
                first_cpu, first_count = forward.cpu(), count
            if count >= target:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: {count} of {target} records after {args.timeout}s")
            time.sleep(0.01)
        seconds = time.monotonic() - began
        result = CatchUp(kind, index, target, seconds, target / seconds)
        result.rsyslog_cpu = receiver.cpu()
        if forward is not None:
            result.forwarder_cpu = forward.cpu()
            steady = result.forwarder_cpu - (first_cpu or 0.0)
            result.cpu_per_10k = 1e4 * steady / max(1, target - first_count)
        return result
    finally:
        if forward is not None:
            forward.stop()
        receiver.stop()


@dataclass
class Live:
    kind: str
    rate: float  # lines/s asked
    achieved: float  # lines/s the writer managed
    seconds: float
    cores: float  # forwarder CPU over the writing
    lag: float  # last line: arrival - written
    rsyslog_cores: float


@dataclass
class Outage:
    kind: str
    rate: float
    outage: float
    catch_up_seconds: float
    catch_up_rate: float
    ratio: float
    cores: float  # forwarder CPU while catching up


def _is_ready(ready: Path) -> bool:
    return ready.exists() and ready.read_text().endswith("\n")


def stamped_ready(work: Path, name: str, number: int, programs: int) -> Path:
    """The ready file of stamped.py number ``number`` (of ``programs``)."""
    return work / (f"{name}_{number:02d}.ready" if programs > 1 else f"{name}.ready")


def stamped_stack(
    name: str, rate: float, count: int, work: Path, keep: bool, fmt: str = "text", programs: int = 1
) -> Capture:
    """``programs`` stamped.py writing ``count`` lines at ``rate`` lines/s between them."""
    ready = work / f"{name}.ready"
    if programs > 1:  # supervisord puts the process number in the command
        ready = work / f"{name}_%(process_num)02d.ready"
    command = f"{sys.executable} {STAMPED} {rate / programs} {count // programs} {ready}"
    return Capture(name, command, keep, fmt, programs)


def live(args: Any, work: Path, kind: str, tree: Path = ROOT) -> Live:
    label = kind if tree == ROOT else f"{kind}@base"
    work = work / label
    work.mkdir()
    programs = args.live_programs
    count = int(args.live_rate * args.live_seconds) // programs * programs
    stack = stamped_stack("live", args.live_rate, count, work, args.keep, args.format, programs)
    receiver = Receiver(work / "live" / "rsyslog", kind)
    url = f"{kind}://127.0.0.1:{receiver.port}"
    forward = Forward(work / "live", stack.logdir, url, tree=tree)
    try:
        stack.start()
        receiver.start()
        forward.start()
        time.sleep(1.5)  # imported and connected
        cpu0, rs0, t0 = forward.cpu(), receiver.cpu(), time.monotonic()
        began = stack.start_stamped(work)
        time.sleep(args.live_seconds)
        cpu1, rs1, t1 = forward.cpu(), receiver.cpu(), time.monotonic()
        wait_for(lambda: receiver.stamped() >= count, args.timeout, "the last live line at rsyslog")
        arrived = time.time()
        last = receiver.last_stamp()
        assert last is not None
        written = last[1]
        return Live(
            label,
            args.live_rate,
            count / max(1e-9, written - began),
            t1 - t0,
            (cpu1 - cpu0) / (t1 - t0),
            arrived - written,
            (rs1 - rs0) / (t1 - t0),
        )
    finally:
        forward.stop()
        receiver.stop()
        stack.stop()
        stack.cleanup()


def outage(args: Any, work: Path, kind: str, tree: Path = ROOT) -> Outage:
    label = kind if tree == ROOT else f"{kind}@base"
    work = work / f"outage-{label}"
    work.mkdir()
    rate = args.outage_rate
    count = int(rate * args.outage_seconds * 2)  # writing goes on while it catches up
    stack = stamped_stack("outage", rate, count, work, args.keep, args.format)
    receiver = Receiver(work / "outage" / "rsyslog", kind)
    url = f"{kind}://127.0.0.1:{receiver.port}"
    forward = Forward(work / "outage", stack.logdir, url, tree=tree)
    try:
        stack.start()
        receiver.start()
        stack.start_stamped(work)
        time.sleep(args.outage_seconds)
        began = time.monotonic()
        forward.start()

        def caught_up() -> Optional[Tuple[int, float]]:
            last = receiver.last_stamp()
            if last is None:
                return None
            return last if last[0] >= count - 1 or time.time() - last[1] < 1.0 else None

        last = wait_for(caught_up, args.timeout, "the forwarder to catch up", interval=0.05)
        seconds = time.monotonic() - began
        assert last is not None
        cpu = forward.cpu()
        catch_rate = (last[0] + 1) / seconds
        return Outage(
            label,
            rate,
            args.outage_seconds,
            seconds,
            catch_rate,
            catch_rate / rate,
            cpu / seconds,
        )
    finally:
        forward.stop()
        receiver.stop()
        stack.stop()
        stack.cleanup()


# ---------------------------------------------------------------- report


def _median(values: List[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(catch: List[CatchUp], lives: List[Live], outs: List[Outage]) -> str:
    lines = []
    if catch:
        lines += [
            "| catch-up | records | s (median) | records/s (median, min-max) "
            "| / imfile | forwarder CPU s per 10k | rsyslogd CPU s |",
            "|---|---|---|---|---|---|---|",
        ]
        by_kind: Dict[str, List[CatchUp]] = {}
        for c in catch:
            by_kind.setdefault(c.kind, []).append(c)
        imfile = _median([c.rate for c in by_kind.get("imfile", [])])
        for kind, runs in by_kind.items():
            rates = [c.rate for c in runs]
            ratio = f"{_median(rates) / imfile:.2f}" if imfile else "-"
            per10k = "-" if kind == "imfile" else f"{_median([c.cpu_per_10k for c in runs]):.3f}"
            lines.append(
                f"| {kind} | {runs[0].records} | {_median([c.seconds for c in runs]):.2f} "
                f"| {_median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) | {ratio} "
                f"| {per10k} | {_median([c.rsyslog_cpu for c in runs]):.2f} |"
            )
    for live_ in lives:
        lines += [
            f"live ({live_.kind}): {live_.rate:,.0f} lines/s asked, {live_.achieved:,.0f} "
            f"written, for {live_.seconds:.1f} s: forwarder {live_.cores:.3f} cores "
            f"(goal < 0.3), rsyslogd {live_.rsyslog_cores:.3f} cores, lag at the end "
            f"{live_.lag:.2f} s",
        ]
    for out in outs:
        lines += [
            f"outage ({out.kind}): {out.rate:,.0f} lines/s, forwarder down {out.outage:.0f} s, "
            f"caught up in {out.catch_up_seconds:.1f} s at {out.catch_up_rate:,.0f} records/s "
            f"= {out.ratio:.1f}x the write rate (goal >= 5), forwarder {out.cores:.3f} cores",
        ]
    return "\n".join(lines)


@dataclass
class Results:
    catch_up: List[CatchUp] = field(default_factory=list)
    live: List[Live] = field(default_factory=list)
    outage: List[Outage] = field(default_factory=list)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.forward", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--records", type=int, default=500_000, help="catch-up records")
    parser.add_argument("--rounds", type=int, default=2, help="alternating catch-up rounds")
    parser.add_argument("--kinds", default=",".join(KINDS), help="catch-up setups: relp,tcp,imfile")
    parser.add_argument("--live-rate", type=float, default=50_000, help="live lines/s")
    parser.add_argument("--live-seconds", type=float, default=20, help="live writing time")
    parser.add_argument(
        "--live-programs", type=int, default=1, help="live: programs sharing the rate"
    )
    parser.add_argument(
        "--live-kind", default="relp,tcp", help="relp and/or tcp (comma list) for live and outage"
    )
    parser.add_argument("--outage-rate", type=float, default=10_000, help="outage lines/s")
    parser.add_argument("--outage-seconds", type=float, default=60, help="outage length")
    parser.add_argument("--skip", default="", help="comma list of catchup,live,outage to skip")
    parser.add_argument("--timeout", type=float, default=300, help="deadline of each wait (s)")
    parser.add_argument("--profile", action="store_true", help="cProfile the catch-up runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout (e.g. /work/main): its forwarder runs too, alternating, "
        "labelled @base",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="the logs' format (key format)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not os.path.exists(RSYSLOGD):
        parser.error(f"{RSYSLOGD} missing (apt-get install rsyslog rsyslog-relp)")
    skip = set(filter(None, args.skip.split(",")))
    kinds = [k for k in args.kinds.split(",") if k]
    if args.baseline:
        kinds += [f"{k}@base" for k in kinds if k != "imfile"]
    results = Results()
    burst = f"{sys.executable} {EMIT} burst {args.records} 100 block"
    stack = Capture("burst", burst, args.keep, args.format)
    work = stack.dir / "runs"
    work.mkdir()
    try:
        if "catchup" not in skip:
            stack.start()
            live_log = stack.logdir / "burst.log"
            stack.rpc.supervisor.startProcess("burst", False)
            wait_for(
                lambda: stack.state("burst") == "EXITED",
                args.timeout,
                "the burst to be written",
                poke=stack.poke,
            )
            stack.stop()
            sent, lines = records_in(live_log)
            want = {"relp": sent, "tcp": sent, "imfile": lines}
            print(f"catch-up: {sent} records in {live_log} ({lines} lines)", flush=True)
            for index in range(args.rounds):
                order = kinds[index % len(kinds) :] + kinds[: index % len(kinds)]
                for kind in order:
                    one = catch_up(kind, index, stack.logdir, live_log, work, want, args)
                    results.catch_up.append(one)
                    print(
                        f"  round {index} {kind:6} {one.seconds:7.2f} s {one.rate:10,.0f}/s"
                        f"  forwarder CPU {one.forwarder_cpu:6.2f} s"
                        f" ({one.cpu_per_10k:.3f} s/10k)  rsyslogd {one.rsyslog_cpu:.2f} s",
                        flush=True,
                    )
        trees = [Path(args.baseline), ROOT] if args.baseline else [ROOT]
        setups = [(kind, tree) for kind in args.live_kind.split(",") if kind for tree in trees]
        if "live" not in skip:
            for kind, tree in setups:
                results.live.append(live(args, work, kind, tree))
                print(f"  live: {results.live[-1]}", flush=True)
        if "outage" not in skip:
            for kind, tree in setups:
                results.outage.append(outage(args, work, kind, tree))
                print(f"  outage: {results.outage[-1]}", flush=True)
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {stack.dir}")
        stack.cleanup()
    print()
    print(report(results.catch_up, results.live, results.outage))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(asdict(results), handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
