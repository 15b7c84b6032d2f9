"""Capture benchmark: supervisord's native child log vs. a do-nothing listener vs. ours.

    python -m bench.capture                      # the full run (see docs/benchmarks.md)
    python -m bench.capture --quick              # a smaller run, for a smoke test
    python -m bench.capture --lines 1000000 --repeat 3 --modes block,line \\
        --buffer-sizes 10,1024,8192,65536 --json results.json

For every producer type (``block``: 64 KiB writes; ``line``: one write(2) per
line -- ``tests/children/emit.py burst``) it runs, interleaved, repetition
after repetition:

* ``native``: supervisord writes the child's stdout to ``stdout_logfile``
  (no events, no listener) -- the baseline;
* ``null@B``: a do-nothing event listener (``bench/null_listener.py``) with
  ``buffer_size = B``;
* ``ours@B``: ``python -m supervisor_streamlog listen`` with ``buffer_size = B``
  and a ``[streamlog]`` section (``maxbytes = 50MB``: files rotate during the run);
* ``plugin``: the same ``[streamlog]`` section captured in-process
  (``[rpcinterface:streamlog]``, plugin mode): no events, no buffer;
* ``s6`` (by default when ``s6-log`` is installed): an outside reference --
  supervisord runs ``sh -c "exec PRODUCER | s6-log t s52428800 n10 DIR"``
  (no events, ``stdout_logfile = NONE``): s6-log reads the producer's pipe
  itself and writes every line with a TAI64N stamp, rotating at 50 MB;
  supervisord is not in the data path.  The cost of a good timestamping
  logger, not a supervisord setup;
* ``write@B`` (only with ``--kinds``): ``bench/write_listener.py``, the null
  listener plus a stamp and one ``write(2)`` per chunk -- the floor of any
  listener that writes files.

Each measurement gets a fresh supervisord (nodaemon, on a unix socket) in its
own temporary directory, removed afterwards; it starts once the machine is
quiet (other processes below ``--quiet-load`` cores) and is repeated once if
other processes used more than that during it.  Measured:

* **time**: from just before ``startProcess`` of the producer to the moment its
  last line is in the destination -- native: the mtime of the log file once it
  holds every byte (s6: ``DIR/current`` and the rotated ``DIR/@*.s``); null:
  the listener's clock when it read the last
  PROCESS_LOG event; ours and plugin: the timestamp of the last ``stdout``
  record (taken when the chunk was received, just before it is written);
* **lines lost**: expected lines minus the lines found -- native and s6: intact
  lines in the log files; null: newlines in the payloads received; ours and plugin:
  distinct line numbers whose record is intact in the files;
* **CPU seconds** (from ``/proc``) of supervisord, of the producer and of the
  listener during the measurement -- a less noisy view of the processing cost
  (s6: the producer's CPU includes s6-log's, both reaped by the shell);
* **events**: PROCESS_LOG events (chunks) handled (null: counted; ours and
  plugin: distinct record timestamps, one per chunk), supervisord's "event buffer
  overflowed" log lines (events dropped), and the peak number of events
  waiting in the pool's buffer (``bench/supervisord_peak.py``): the
  ``buffer_size`` the run needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench.common import (
    EMIT,
    Supervisord,
    add_quiet_options,
    machine_busy,
    proc_times,
    tail,
    wait_for,
    wait_quiet,
)

NULL_LISTENER = Path(__file__).resolve().parent / "null_listener.py"

KINDS = ("native", "null", "ours", "plugin", "s6", "write")
SIMPLE = ("native", "plugin", "s6")  # kinds without a listener (no buffer_size)
LISTENERS = ("null", "ours", "write")
MODES = ("block", "line")
DEFAULT_BUFFER_SIZES = (10, 1024, 8192, 65536)
DEFAULT_KINDS = ("native", "null", "ours", "plugin", "s6")  # s6 only if s6-log is installed
S6_PREFIX = 26  # "@" + 24 hex digits of TAI64N + " " before every line s6-log writes
LISTENER = "listener"  # the [eventlistener:x] pool (and process) name
PRODUCER = "producer"


@dataclasses.dataclass(frozen=True)
class Setup:
    """One configuration under test."""

    kind: str  # one of KINDS
    buffer_size: int = 0  # the listener's buffer_size (0 for kinds without a listener)

    @property
    def label(self) -> str:
        if self.kind in SIMPLE:
            return self.kind
        return f"{self.kind}@{self.buffer_size}"


@dataclasses.dataclass
class Result:
    """One measurement."""

    mode: str
    kind: str
    buffer_size: int
    rep: int
    lines: int
    seconds: float = float("nan")
    lines_found: int = 0
    duplicates: int = 0
    supervisord_cpu: float = float("nan")
    producer_cpu: float = float("nan")
    listener_cpu: float = float("nan")
    events: int = 0  # PROCESS_LOG events the listener handled
    events_dropped: int = 0
    peak_buffer: int = 0
    background: float = float("nan")  # cores used by other processes meanwhile
    attempts: int = 1
    error: Optional[str] = None

    @property
    def label(self) -> str:
        return Setup(self.kind, self.buffer_size).label

    @property
    def lost(self) -> int:
        return self.lines - self.lines_found


# ---------------------------------------------------------------- helpers


def line_pattern(size: int) -> bytes:
    """A regex for one intact line written by ``emit.py burst`` (number captured)."""
    return rb"line (\d{9}) " + b"x" * (size - 16)


def files_oldest_first(live: Path) -> List[Path]:
    """``live`` and its numbered backups (``.1`` newest), oldest first."""
    backups = []
    for path in live.parent.glob(live.name + ".*"):
        suffix = path.name[len(live.name) + 1 :]
        if suffix.isdigit():
            backups.append((int(suffix), path))
    ordered = [path for _, path in sorted(backups, reverse=True)]
    return ordered + ([live] if live.exists() else [])


def find_s6_log() -> Optional[str]:
    """The path of ``s6-log`` (Debian package ``s6``), or None."""
    found = shutil.which("s6-log")
    if found:
        return found
    for candidate in ("/usr/bin/s6-log", "/bin/s6-log", "/command/s6-log"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def s6_files(logdir: Path) -> List[Path]:
    """s6-log's rotated files ``@TAI64N.s`` (the names sort by time), then ``current``."""
    files = sorted(logdir.glob("@*.s"))
    current = logdir / "current"
    return files + ([current] if current.exists() else [])


def s6_size(logdir: Path) -> int:
    total = 0
    for path in s6_files(logdir):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # renamed by a rotation meanwhile
            pass
    return total


def read_all(live: Path) -> bytes:
    return b"".join(path.read_bytes() for path in files_oldest_first(live))


def total_size(live: Path) -> int:
    return sum(path.stat().st_size for path in files_oldest_first(live))


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------- one run


class Bench(Supervisord):
    """One supervisord with one setup and one producer, in a temporary directory."""

    def __init__(
        self, setup: Setup, mode: str, lines: int, size: int, keep: bool, s6_log: str = "s6-log"
    ) -> None:
        # A listener pool's startsecs (default 1 s) passes long after READY is sent.
        awaited = [LISTENER] if setup.kind in LISTENERS else []
        super().__init__(f"streamlog-bench-{setup.kind}-", keep=keep, awaited=awaited)
        self.setup = setup
        self.s6_log = s6_log
        self.mode = mode
        self.lines = lines
        self.size = size
        self.native_log = self.dir / f"{PRODUCER}.log"
        self.ours_log = self.dir / "streamlog" / f"{PRODUCER}.log"
        self.s6_dir = self.dir / "s6"
        self.side = self.dir / "null-counts.json"
        self.peaks = self.dir / "peaks.json"
        self.s6_dir.mkdir()
        self.configure(self.config_text())

    def config_text(self) -> str:
        python = sys.executable
        producer = f"{python} {EMIT} burst {self.lines} {self.size} {self.mode}"
        text = ""
        options: Dict[str, object] = {
            "command": producer,
            "autostart": "false",
            "autorestart": "false",
            "startsecs": 0,
            "stderr_logfile": "NONE",
        }
        kind = self.setup.kind
        streamlog = (
            f"\n[streamlog]\nlogdir = {self.dir / 'streamlog'}\nmaxbytes = 50MB\nbackups = 10\n"
        )
        if kind == "native":
            options["stdout_logfile"] = str(self.native_log)
            options["stdout_logfile_maxbytes"] = "50MB"
            options["stdout_logfile_backups"] = 10
        elif kind == "s6":
            # s6-log reads the producer's pipe itself: supervisord only runs the shell.
            options["command"] = (
                f'/bin/sh -c "exec {producer} | {self.s6_log} t s52428800 n10 {self.s6_dir}"'
            )
            options["stdout_logfile"] = "NONE"
        elif kind == "plugin":
            # The plugin turns output events on for what it captures.
            options["stdout_logfile"] = "NONE"
            text += (
                "\n[rpcinterface:streamlog]\n"
                "supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface\n"
            )
            text += streamlog
        else:
            options["stdout_logfile"] = "NONE"
            options["stdout_events_enabled"] = "true"
            options["stderr_events_enabled"] = "true"
            if kind == "null":
                command = f"{python} {NULL_LISTENER} {self.side}"
            elif kind == "write":
                command = f"{python} -m bench.write_listener {self.side}"
            else:
                command = f"{python} -m supervisor_streamlog listen -c {self.conf}"
                text += streamlog
            text += (
                f"\n[eventlistener:{LISTENER}]\n"
                f"command = {command}\n"
                "events = PROCESS_LOG,PROCESS_STATE\n"
                f"buffer_size = {self.setup.buffer_size}\n"
                "stdout_logfile = NONE\n"
                "stderr_logfile = %(here)s/listener.err\n"
            )
        text += f"\n[program:{PRODUCER}]\n"
        text += "".join(f"{key} = {value}\n" for key, value in options.items())
        return text

    def command(self) -> List[str]:
        """supervisord, recording the peak of the listener pool's event buffer."""
        peak = [sys.executable, "-m", "bench.supervisord_peak", str(self.peaks)]
        return peak + ["-c", str(self.conf)]

    # ------------------------------------------------------------ measuring

    def run(self, rep: int, timeout: float) -> Result:
        setup = self.setup
        result = Result(self.mode, setup.kind, setup.buffer_size, rep, lines=self.lines)
        try:
            self.start()
            sup_pid = self.pid
            listener_pid = self.process_pid(LISTENER) if setup.kind in LISTENERS else 0
            sup_cpu, reaped_cpu = proc_times(sup_pid)
            listener_cpu = proc_times(listener_pid)[0] if listener_pid else 0.0
            busy = machine_busy()
            start = time.time()
            self.rpc.supervisor.startProcess(PRODUCER, False)
            end = self.wait_done(timeout)
            # Its CPU time is counted once supervisord has reaped it.
            wait_for(
                lambda: self.state(PRODUCER) == "EXITED", 30, "the producer to exit", poke=self.poke
            )
            wall = time.time() - start
            own, reaped = proc_times(sup_pid)
            result.seconds = end - start
            result.supervisord_cpu = own - sup_cpu
            result.producer_cpu = reaped - reaped_cpu  # the producer was reaped
            ours = result.supervisord_cpu + result.producer_cpu
            if listener_pid:
                result.listener_cpu = proc_times(listener_pid)[0] - listener_cpu
                ours += result.listener_cpu
            result.background = max(0.0, machine_busy() - busy - ours) / wall
            self.stop()
            self.count(result)
            log = (self.dir / "supervisord.log").read_text(errors="replace")
            result.events_dropped = log.count("event buffer overflowed")
            result.peak_buffer = int((read_json(self.peaks) or {}).get(LISTENER, 0))
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc} {self.errors()}"
        finally:
            self.stop()
            self.cleanup()
        return result

    def wait_done(self, timeout: float) -> float:
        """Wait until every line is in the destination; return when that happened."""
        kind = self.setup.kind
        if kind == "native":
            # Lines lost (never for a working supervisord): stop once quiet.
            self._wait_size(
                lambda: total_size(self.native_log),
                self.lines * self.size,
                50,
                timeout,
                "the native log to be complete",
            )
            files = files_oldest_first(self.native_log)
            return max(path.stat().st_mtime_ns for path in files) / 1e9
        if kind == "s6":
            # The shell exits after s6-log: whatever is missing was lost.
            self._wait_size(
                lambda: s6_size(self.s6_dir),
                self.lines * (self.size + S6_PREFIX),
                5,
                timeout,
                "s6-log's files to be complete",
            )
            return max(path.stat().st_mtime_ns for path in s6_files(self.s6_dir)) / 1e9
        if kind in ("null", "write"):
            counts = wait_for(
                self._null_counts_done, timeout, "the null listener to see EXITED", poke=self.poke
            )
            return float(counts["last_log_time"])
        wait_for(
            lambda: b" status EXITED " in tail(self.ours_log),
            timeout,
            "the EXITED record",
            poke=self.poke,
        )
        return self._last_stdout_time()

    def _wait_size(
        self, size: Callable[[], int], expected: int, settle: int, timeout: float, what: str
    ) -> None:
        """Wait until ``size()`` reaches ``expected``, or (the producer exited) stops growing.

        Once the producer has exited, ``settle`` polls without growth end the
        wait: what is still missing was lost.
        """
        seen: List[int] = []

        def done() -> bool:
            now = size()
            if now >= expected:
                return True
            if self.state(PRODUCER) != "EXITED":
                return False
            seen.append(now)
            return len(seen) > settle and seen[-settle] == now

        wait_for(done, timeout, what, poke=self.poke)

    def _null_counts_done(self) -> Dict[str, Any]:
        """The null listener's counts once it saw EXITED, else ``{}``."""
        counts = read_json(self.side)
        if counts and counts["states"].get("EXITED"):
            return counts
        return {}

    def _last_stdout_time(self) -> float:
        for path in reversed(files_oldest_first(self.ours_log)):
            blob = path.read_bytes()
            at = blob.rfind(b" stdout ")
            if at != -1:
                stamp = blob[blob.rfind(b"\n", 0, at) + 1 : at].decode("ascii")
                return datetime.fromisoformat(stamp).timestamp()
        raise RuntimeError("no stdout record in the files")

    def count(self, result: Result) -> None:
        kind = self.setup.kind
        pattern = line_pattern(self.size)
        if kind == "native":
            blob = read_all(self.native_log)
            result.lines_found = len(re.findall(pattern + rb"\n", blob))
        elif kind == "s6":
            blob = b"".join(path.read_bytes() for path in s6_files(self.s6_dir))
            result.lines_found = len(re.findall(rb"@[0-9a-f]{24} " + pattern + rb"\n", blob))
        elif kind in ("null", "write"):
            counts = read_json(self.side) or {}
            result.lines_found = int(counts.get("lines", 0))
            result.events = int(counts.get("log_events", 0))
        else:
            blob = read_all(self.ours_log)
            found = re.findall(rb"^(\S+) stdout " + pattern + rb"$", blob, re.M)
            result.lines_found = len({number for _, number in found})
            result.duplicates = len(found) - result.lines_found
            # One timestamp per chunk received: distinct stamps = events handled.
            result.events = len({stamp for stamp, _ in found})


def measure(
    setup: Setup, mode: str, rep: int, args: argparse.Namespace
) -> Tuple[Result, List[Result]]:
    """Run one measurement, once more if other processes disturbed it (the quieter counts)."""
    wait_quiet(args.quiet_load, args.quiet_wait)
    first = Bench(setup, mode, args.lines, args.size, args.keep, args.s6_log).run(rep, args.timeout)
    if first.error or not first.background > args.quiet_load:
        return first, []
    wait_quiet(args.quiet_load, args.quiet_wait)
    second = Bench(setup, mode, args.lines, args.size, args.keep, args.s6_log).run(
        rep, args.timeout
    )
    second.attempts = 2
    if second.error is None and second.background < first.background:
        return second, [first]
    first.attempts = 2
    return first, [second]


# ---------------------------------------------------------------- the sweep


def plan(
    modes: Sequence[str], kinds: Sequence[str], buffer_sizes: Sequence[int], repeat: int
) -> List[Tuple[int, str, Setup]]:
    """(rep, mode, setup) in run order: repetitions outermost, setups rotated per rep."""
    setups: List[Setup] = []
    for kind in kinds:
        if kind in SIMPLE:
            setups.append(Setup(kind))
        else:
            setups.extend(Setup(kind, size) for size in buffer_sizes)
    runs = []
    for rep in range(repeat):
        for mode in modes:
            shift = rep % len(setups)
            for setup in setups[shift:] + setups[:shift]:
                runs.append((rep, mode, setup))
    return runs


def spread(values: Sequence[float], digits: int = 2) -> str:
    """``median (min–max)`` of the values that are numbers."""
    values = [v for v in values if v == v]
    if not values:
        return "–"
    text = f"{statistics.median(values):.{digits}f}"
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    if len(values) > 1 and low != high:
        text += f" ({low}–{high})"
    return text


def lost_text(results: Sequence[Result]) -> str:
    lost = sorted(r.lost for r in results)
    lines = results[0].lines

    def one(n: int) -> str:
        return f"{n} ({100 * n / lines:.1f} %)" if n else "0"

    return one(lost[0]) if lost[0] == lost[-1] else f"{one(lost[0])} – {one(lost[-1])}"


def group(results: Sequence[Result]) -> Dict[Tuple[str, str, int], List[Result]]:
    by: Dict[Tuple[str, str, int], List[Result]] = {}
    for r in results:
        if r.error is None:
            by.setdefault((r.mode, r.kind, r.buffer_size), []).append(r)
    return dict(
        sorted(
            by.items(),
            key=lambda item: (
                MODES.index(item[0][0]),
                KINDS.index(item[0][1]),
                item[0][2],
            ),
        )
    )


def time_table(results: Sequence[Result]) -> str:
    """Time and CPU, relative to native and ours vs. null (same rep, same buffer_size)."""
    by = group(results)
    good = [r for r in results if r.error is None]
    native = {(r.mode, r.rep): r for r in good if r.kind == "native"}
    null = {(r.mode, r.rep, r.buffer_size): r for r in good if r.kind == "null"}
    rows = [
        "| producer | setup | time / native | time / null | listener CPU / null "
        "| listener CPU µs / event | supervisord CPU / native | events | time s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (mode, kind, _size), runs in by.items():
        vs_native = [
            r.seconds / native[(mode, r.rep)].seconds for r in runs if (mode, r.rep) in native
        ]
        sup_native = [
            r.supervisord_cpu / native[(mode, r.rep)].supervisord_cpu
            for r in runs
            if (mode, r.rep) in native and native[(mode, r.rep)].supervisord_cpu > 0
        ]
        t_ratio: List[float] = []
        cpu_ratio: List[float] = []
        if kind in ("ours", "write"):
            for r in runs:
                other = null.get((mode, r.rep, r.buffer_size))
                if other is not None:
                    t_ratio.append(r.seconds / other.seconds)
                    if other.listener_cpu > 0:
                        cpu_ratio.append(r.listener_cpu / other.listener_cpu)
        per_event = [1e6 * r.listener_cpu / r.events for r in runs if r.events]
        rows.append(
            f"| {mode} | {runs[0].label} | {spread(vs_native)} | {spread(t_ratio)} "
            f"| {spread(cpu_ratio)} | {spread(per_event, 0)} | {spread(sup_native)} "
            f"| {spread([float(r.events) for r in runs if r.events], 0)} "
            f"| {spread([r.seconds for r in runs])} |"
        )
    return "\n".join(rows)


def loss_table(results: Sequence[Result]) -> str:
    """Lines lost, events dropped and the buffer the run needed, per buffer_size."""
    by = group(results)
    rows = [
        "| producer | setup | lines lost (min – max) | events dropped | peak events waiting |",
        "|---|---|---:|---:|---:|",
    ]
    for (mode, _kind, _size), runs in by.items():
        waiting = [float(r.peak_buffer) for r in runs] if runs[0].kind in LISTENERS else []
        rows.append(
            f"| {mode} | {runs[0].label} | {lost_text(runs)} "
            f"| {spread([float(r.events_dropped) for r in runs], 0)} | {spread(waiting, 0)} |"
        )
    return "\n".join(rows)


def ratio_table(results: Sequence[Result]) -> str:
    """Time ratios of the kinds without a listener (same repetition): plugin/native, plugin/s6."""
    good = [r for r in results if r.error is None]
    by = {(r.mode, r.kind, r.rep): r for r in good if r.kind in SIMPLE}
    pairs = [("plugin", "native"), ("plugin", "s6"), ("native", "s6")]
    present = {kind for _, kind, _ in by}
    pairs = [pair for pair in pairs if set(pair) <= present]
    if not pairs:
        return ""
    rows = [
        "| producer | " + " | ".join(f"time {a} / {b}" for a, b in pairs) + " |",
        "|---|" + "---:|" * len(pairs),
    ]
    for mode in MODES:
        reps = sorted({rep for m, _, rep in by if m == mode})
        if not reps:
            continue
        cells = []
        for a, b in pairs:
            values = [
                by[(mode, a, rep)].seconds / by[(mode, b, rep)].seconds
                for rep in reps
                if (mode, a, rep) in by and (mode, b, rep) in by
            ]
            cells.append(spread(values))
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per run")
    parser.add_argument("--size", type=int, default=100, help="bytes per line (>= 17)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every setup")
    parser.add_argument("--modes", default="block,line", help="producer types: block,line")
    parser.add_argument(
        "--kinds",
        help="setups: native,null,ours,plugin,s6 (the default; s6 only if s6-log is "
        "installed) and write (the floor of a file-writing listener)",
    )
    parser.add_argument(
        "--buffer-sizes",
        default=",".join(map(str, DEFAULT_BUFFER_SIZES)),
        help="listener buffer_size values to sweep",
    )
    parser.add_argument(
        "--quick", action="store_true", help="200 000 lines, 1 repetition (unless given)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per measurement")
    add_quiet_options(parser)
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    given = set(argv if argv is not None else sys.argv[1:])
    if args.quick:
        if "--lines" not in given:
            args.lines = 200_000
        if "--repeat" not in given:
            args.repeat = 1
    if args.size < 17:
        parser.error("--size must be at least 17")
    args.modes = [m for m in args.modes.split(",") if m]
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r} (block, line)")
    args.s6_log = find_s6_log()
    args.notes = []
    if args.kinds is None:
        args.kinds = list(DEFAULT_KINDS)
        if args.s6_log is None:
            args.kinds.remove("s6")
            args.notes.append(
                "note: s6-log not found (Debian/Ubuntu: apt-get install s6); "
                "the s6 reference is skipped"
            )
    else:
        args.kinds = [k for k in args.kinds.split(",") if k]
        for kind in args.kinds:
            if kind not in KINDS:
                parser.error(f"unknown kind {kind!r} ({', '.join(KINDS)})")
        if "s6" in args.kinds and args.s6_log is None:
            parser.error("kind s6 needs s6-log (Debian/Ubuntu: apt-get install s6)")
    args.buffer_sizes = [int(b) for b in args.buffer_sizes.split(",") if b]
    return args


def describe(result: Result) -> str:
    if result.error:
        return f"ERROR {result.error}"
    text = (
        f"{result.seconds:6.2f} s  lost {result.lost:7d}  cpu sup {result.supervisord_cpu:5.2f}"
        f" prod {result.producer_cpu:5.2f} lst {result.listener_cpu:5.2f}"
        f"  events {result.events:6d} dropped {result.events_dropped:6d}"
        f" peak {result.peak_buffer:6d}  other {result.background:4.2f} cores"
    )
    if result.duplicates:
        text += f"  DUPLICATES {result.duplicates}"
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for note in args.notes:
        print(note, flush=True)
    runs = plan(args.modes, args.kinds, args.buffer_sizes, args.repeat)
    print(
        f"{len(runs)} measurements of {args.lines} lines of {args.size} bytes "
        f"on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        flush=True,
    )
    results: List[Result] = []
    discarded: List[Result] = []
    began = time.monotonic()
    for index, (rep, mode, setup) in enumerate(runs, 1):
        result, noisy = measure(setup, mode, rep, args)
        for other in noisy:
            print(f"      (noisier, not counted: {describe(other)})", flush=True)
        discarded.extend(noisy)
        results.append(result)
        print(f"[{index:3d}/{len(runs)}] rep {rep} {mode:5s} {setup.label:11s} {describe(result)}")
        sys.stdout.flush()
    print(f"\ntotal {time.monotonic() - began:.0f} s; {len(discarded)} measurements repeated")
    print("(median (min–max) over the repetitions)\n")
    print(time_table(results))
    print()
    print(loss_table(results))
    ratios = ratio_table(results)
    if ratios:
        print()
        print(ratios)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "args": {k: v for k, v in vars(args).items()},
                    "results": [dataclasses.asdict(r) for r in results],
                    "repeated": [dataclasses.asdict(r) for r in discarded],
                },
                handle,
                indent=1,
            )
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
