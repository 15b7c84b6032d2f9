"""Records a shipper can use unchanged, and the shipping recipes of docs/shipping.md.

Two parts:

- every reader of the files (``parse``, the file header, the sidecar's store,
  ``tail``, the forwarder) takes JSON records with and without the identity
  and notice fields (files written before they existed stay readable);
- the rsyslog ``imfile`` recipe of docs/shipping.md, run for real: a real
  supervisord with the plugin writes JSON Lines that rotate while a real
  rsyslogd, configured with the recipe as the document prints it, reads them;
  and what imfile loses when it does not keep up (frozen, or stopped), as the
  document says;
- the central rsyslog that receives ``supervisor-streamlog forward``, as
  printed, fed over RELP.

Every wait has a deadline, rsyslogd is stopped by its pid, and a machine
without rsyslog fails these tests with the reason (never skips them).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest

from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.forward.forwarder import Feed
from supervisor_streamlog.forward.relp import RelpClient
from supervisor_streamlog.forward.syslog import Origin, Severities, message
from supervisor_streamlog.logread.logstore import LogStore
from supervisor_streamlog.ondisk.files import Entry, header_base, is_header, process_files
from supervisor_streamlog.ondisk.formats import JsonFormat, Record, parse
from supervisor_streamlog.tail import run as tail_run

from .rsyslog import Rsyslog, environment_problem, free_port, parse_sd
from .supervisor import Supervisor, Supervisors, emit, program, wait_for

STAMP = "2026-11-27T01:23:45.678901+00:00"

#: One process's records as streamlog wrote them before the identity and
#: notice fields existed (a file that begins at offset 2048).
OLD_FILE = b"".join(
    line + b"\n"
    for line in [
        b'{"time": "%s", "stream": "status", "pid": 0, "state": "STREAMLOG",'
        b' "text": "STREAMLOG file offset=2048"}' % STAMP.encode(),
        b'{"time": "%s", "stream": "status", "pid": 4242, "text": "RUNNING pid=4242",'
        b' "state": "RUNNING"}' % STAMP.encode(),
        b'{"time": "%s", "stream": "stdout", "pid": 4242, "text": "GET / 200"}' % STAMP.encode(),
        b'{"time": "%s", "stream": "stderr", "pid": 4242, "text": "bad \\ufffd",'
        b' "b64": "YmFkIP8=", "partial": true}' % STAMP.encode(),
        b'{"time": "%s", "stream": "stderr", "pid": 4242, "text": " end"}' % STAMP.encode(),
        b'{"time": "%s", "stream": "status", "pid": 0, "state": "STREAMLOG",'
        b' "text": "STREAMLOG dropped bytes=10 records=2 reason=EIO"}' % STAMP.encode(),
        b'{"time": "%s", "stream": "status", "pid": 4242,'
        b' "text": "EXITED pid=4242 exitstatus=1 expected=false", "state": "EXITED",'
        b' "exitstatus": 1, "expected": false}' % STAMP.encode(),
    ]
)


def new_file() -> bytes:
    """The same records as capture writes them now (identity, notice fields)."""
    fmt = JsonFormat(utc=True)
    ident = fmt.identity("web", "web", "web1.example")
    return b"".join(
        [
            fmt.notice(STAMP, "file offset=2048", ident),
            fmt.status(STAMP, 4242, "RUNNING", {"pid": 4242}, ident),
            fmt.records(STAMP, "stdout", 4242, [(b"GET / 200\n", False)], ident),
            fmt.records(STAMP, "stderr", 4242, [(b"bad \xff", True), (b" end\n", False)], ident),
            fmt.notice(STAMP, "dropped bytes=10 records=2 reason=EIO", ident),
            fmt.status(
                STAMP, 4242, "EXITED", {"pid": 4242, "exitstatus": 1, "expected": False}, ident
            ),
        ]
    )


def parse_line_of(text: bytes) -> Record:
    """A stdout record of ``text`` stamped STAMP."""
    return Record(STAMP, "stdout", text, False)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def logdir_with(tmp_path: Path, blob: bytes) -> Path:
    logdir = tmp_path / "logs"
    logdir.mkdir(parents=True)
    (logdir / "web.log").write_bytes(blob)
    return logdir


class View(NamedTuple):
    """What each reader makes of one file."""

    header_base: Optional[int]
    bases: List[int]  # process_files()
    entries: int  # the sidecar's store, header included
    shown: List[Entry]  # its entries without the header
    forwarded: List[bytes]  # the forwarder's messages, offsets left out
    tailed: str  # what ``tail`` prints


def readers_view(tmp_path: Path, blob: bytes) -> View:
    """What each reader makes of a file holding ``blob``."""
    logdir = logdir_with(tmp_path, blob)
    live = str(logdir / "web.log")
    base = header_base(blob)
    files = process_files(live)
    store = LogStore(live)
    page = store.read_forward(None, 100)
    shown = [e for e in page.entries if not is_header(e.record.stream, e.record.data)]
    feed = Feed("web", Origin("web1.example", "web", "web", "web.log"), store, 0, Severities())
    messages = feed.prepare(100).messages
    # The messages without the offsets (the two files' records differ in length).
    bodies = [re.sub(rb' (offset|end)="\d+"', b"", m) for m in messages]
    out = io.StringIO()
    config = from_mapping({"logdir": str(logdir)}, here=str(tmp_path), environ={})
    tail_run(config, ["web"], 100, False, out)
    return View(base, [f.base for f in files], len(page.entries), shown, bodies, out.getvalue())


def test_every_reader_takes_records_with_and_without_the_new_fields(tmp_path: Path) -> None:
    old = readers_view(tmp_path / "old", OLD_FILE)
    new = readers_view(tmp_path / "new", new_file())
    assert new.header_base == 2048 and new.bases == [2048] and new.entries == 7
    assert [e.record.data for e in new.shown] == [
        b"RUNNING pid=4242",
        b"GET / 200",
        b"bad \xff",
        b" end",
        b"STREAMLOG dropped bytes=10 records=2 reason=EIO",
        b"EXITED pid=4242 exitstatus=1 expected=false",
    ]
    assert len(new.forwarded) == 6  # the header is not forwarded
    assert b' partial="true"' in new.forwarded[2]
    assert b' dropped_records="2"' in new.forwarded[4]
    assert "STREAMLOG file" not in new.tailed and "stdout GET / 200" in new.tailed
    # Old and new files look the same to every reader but for the offsets
    # (the new records are longer).
    assert [e.record for e in old.shown] == [e.record for e in new.shown]
    assert old._replace(shown=[]) == new._replace(shown=[])


def test_new_fields_in_json_records() -> None:
    """The fields docs/format.md lists, as capture writes them."""
    objs: List[Dict[str, object]] = [json.loads(line) for line in new_file().splitlines()]
    for obj in objs:
        assert (obj["program"], obj["group"], obj["host"]) == ("web", "web", "web1.example")
        assert parse(json.dumps(obj).encode()).time == STAMP
    assert (objs[0]["notice"], objs[0]["offset"]) == ("file", 2048)
    assert {k: objs[5][k] for k in ("notice", "bytes", "records", "reason")} == {
        "notice": "dropped",
        "bytes": 10,
        "records": 2,
        "reason": "EIO",
    }


# ------------------------------------------------------------ the imfile recipe

DOC = Path(__file__).resolve().parent.parent / "docs" / "shipping.md"


def recipe(marker: str) -> str:
    """The fenced block of docs/shipping.md that holds ``marker``."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"{len(found)} blocks of docs/shipping.md hold {marker!r}"
    return found[0]


@pytest.fixture
def rsyslog_installed() -> None:
    problem = environment_problem()
    if problem:
        pytest.fail(problem)  # never skipped: .ci/run installs rsyslog


def imfile_rsyslog(tmp_path: Path, logdir: Path) -> Tuple[Rsyslog, Path]:
    """A real rsyslogd running the imfile recipe exactly as docs/shipping.md prints it."""
    output = tmp_path / "shipped"
    output.mkdir()
    work = tmp_path / "imfile-state"
    work.mkdir()
    text = recipe('type="imfile"')
    for placeholder, value in (("LOGDIR", logdir), ("WORKDIR", work), ("OUTPUT", output)):
        assert placeholder in text
        text = text.replace(placeholder, str(value))
    return Rsyslog(tmp_path / "rsyslog", relp=False, config=text), output


def jsonl(path: Path) -> List[Dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


@pytest.mark.usefixtures("rsyslog_installed")
@pytest.mark.parametrize("compress", ["false", "true"])
def test_imfile_recipe_ships_every_line_once_across_rotation(
    tmp_path: Path, compress: str, supervisord: Supervisors
) -> None:
    count = 20_000
    logdir = tmp_path / "streamlog"
    server, output = imfile_rsyslog(tmp_path, logdir)
    programs = {
        "alpha": program(emit("rate", count, 2_000), autostart="false"),
        "beta": program(
            emit("rate", count, 2_000),
            autostart="false",
            numprocs=1,
            process_name="beta_%(process_num)02d",
        ),
    }
    sup = Supervisor(
        tmp_path,
        programs,
        streamlog={
            "logdir": str(logdir),
            "format": "json",
            "timezone": "utc",
            "hostname": "ship-1",
            "maxbytes": "512KB",
            "backups": 100,
            "compress": compress,
        },
        base="plugin.conf",
    )
    with server:
        supervisord(sup)
        sup.rpc.supervisor.startProcess("alpha")
        sup.rpc.supervisor.startProcess("beta:beta_00")
        for name in ("alpha", "beta:beta_00"):
            sup.wait_state(name, "EXITED", timeout=120)

        def arrived() -> int:
            try:
                return (output / "records.jsonl").read_bytes().count(b"\n")
            except FileNotFoundError:
                return 0

        wait_for(lambda: arrived() >= 2 * count, 120, f"{2 * count} records at rsyslog")
        # Anything repeated would come within imfile's next reads: wait for quiet.
        settle(arrived, 2.0, 30)
        sup.stop()
        rotated = list(logdir.glob("alpha.log.*"))
        assert len(rotated) >= 5, "the files rotated while rsyslog read them"
    records = jsonl(output / "records.jsonl")
    for program_name, group in (("alpha", "alpha"), ("beta_00", "beta")):
        mine = [r for r in records if r["program"] == program_name]
        numbers = [int(r["text"][5:14]) for r in mine]
        assert sorted(numbers) == list(range(count)), program_name
        assert {(r["group"], r["host"], r["stream"], r["partial"]) for r in mine} == {
            (group, "ship-1", "stdout", "false")
        }
    assert len(records) == 2 * count
    status = jsonl(output / "status.jsonl")
    assert not [s for s in status + records if s["text"].startswith("STREAMLOG file ")]
    for program_name in ("alpha", "beta_00"):
        states = [s["state"] for s in status if s["program"] == program_name]
        assert states[0] in ("STARTING", "RUNNING") and states[-1] == "EXITED", states
    assert jsonl(output / "unparsed.log") == []


def settle(measure: Callable[[], int], quiet: float, timeout: float) -> int:
    """``measure()`` once it has not changed for ``quiet`` seconds (fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    last, since = measure(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "still changing"
        time.sleep(0.1)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()
    return last


def lost_stretch(got: List[int], count: int) -> List[int]:
    """The line numbers of ``range(count)`` missing from ``got``: one stretch, not empty."""
    missing = sorted(set(range(count)) - set(got))
    assert missing, "nothing lost: docs/shipping.md says this loses lines"
    assert missing == list(range(missing[0], missing[-1] + 1)), "one stretch"
    return missing


def file_starts(logdir: Path) -> List[int]:
    """The first line number of each of alpha's files that has a line."""
    return [n for n in map(first_line, logdir.glob("alpha.log*")) if n is not None]


def first_line(path: Path) -> Optional[int]:
    """The number of the first ``line NNN`` record of a file, None if it has none yet."""
    with open(path, "rb") as handle:
        for line in handle:
            record = json.loads(line)
            if record["stream"] == "stdout":
                return int(record["text"][5:14])
    return None


def first_line_number(path: Path) -> int:
    """The number of the first ``line NNN`` record of a file, once it has one."""

    def found() -> Optional[Tuple[int]]:
        number = first_line(path)
        return None if number is None else (number,)  # (0,) is true for wait_for

    result = wait_for(found, 10, f"a line in {path}")
    assert result is not None
    return result[0]


def rotating_under_imfile(
    tmp_path: Path, logdir: Path, count: int
) -> Tuple[Rsyslog, Supervisor, Callable[[], List[int]], Callable[[], int]]:
    """An rsyslog reading logdir with the imfile recipe, and a supervisord whose
    program "alpha" (not started) writes ``count`` numbered JSON lines at 1 500/s
    into files of 128 KB: (rsyslog, supervisord, the line numbers rsyslog wrote
    out so far, the number of alpha's backups)."""
    server, output = imfile_rsyslog(tmp_path, logdir)
    sup = Supervisor(
        tmp_path,
        {"alpha": program(emit("rate", count, 1_500), autostart="false")},
        streamlog={"logdir": str(logdir), "format": "json", "maxbytes": "128KB", "backups": 1000},
        base="plugin.conf",
    )

    def numbers() -> List[int]:
        return [int(r["text"][5:14]) for r in jsonl(output / "records.jsonl")]

    def backups() -> int:
        return len(list(logdir.glob("alpha.log.*")))

    return server, sup, numbers, backups


@pytest.mark.usefixtures("rsyslog_installed")
def test_imfile_recipe_loses_the_files_rotated_while_rsyslog_is_down(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    """What docs/shipping.md says a file shipper cannot do, measured: rsyslog is
    stopped while the files rotate.  Nothing comes twice; the lines lost are one
    stretch -- those imfile had not read of the file live at the stop and every
    file rotated away during the outage -- up to the first line of the file live
    at the restart, which is read from its start."""
    count = 15_000
    logdir = tmp_path / "streamlog"
    server, sup, numbers, backups = rotating_under_imfile(tmp_path, logdir, count)
    live = logdir / "alpha.log"

    with server:
        supervisord(sup)
        sup.rpc.supervisor.startProcess("alpha")
        wait_for(lambda: len(numbers()) >= 2_000, 60, "lines at rsyslog before the outage")
        server.stop()  # SIGTERM: imfile saves where it was
        read_before = len(numbers())
        rotated = backups()
        wait_for(lambda: backups() >= rotated + 3, 60, "three rotations during the outage")
        live_before = first_line_number(live)
        server.start()
        time.sleep(0.5)  # imfile has looked at the files by now
        live_after = first_line_number(live)
        sup.wait_state("alpha", "EXITED", timeout=120)
        wait_for(lambda: numbers()[-1:] == [count - 1], 60, "the last line at rsyslog")
        settle(lambda: len(numbers()), 2.0, 30)
        sup.stop()
    got = numbers()
    assert len(got) == len(set(got)), "no line twice"
    missing = lost_stretch(got, count)
    assert missing[0] >= read_before  # what was read before the stop is in
    # Lost: what imfile had not read of the file live at the stop, and every
    # file rotated away during the outage, up to the file live at the restart,
    # which imfile reads from its start.
    assert missing[-1] + 1 in file_starts(logdir)
    assert live_before <= missing[-1] + 1 <= live_after


@pytest.mark.usefixtures("rsyslog_installed")
def test_imfile_recipe_misses_a_file_rotated_before_imfile_looked(
    tmp_path: Path, supervisord: Supervisors
) -> None:
    """imfile (inotify mode) opens a new file by its name when it handles the
    creation: a file created and renamed before then is never read.  rsyslog is
    frozen (SIGSTOP) while the files rotate three times, then thawed."""
    count = 15_000
    logdir = tmp_path / "streamlog"
    server, sup, numbers, backups = rotating_under_imfile(tmp_path, logdir, count)

    with server:
        supervisord(sup)
        sup.rpc.supervisor.startProcess("alpha")
        wait_for(lambda: len(numbers()) >= 2_000, 60, "lines at rsyslog before the freeze")
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            frozen_live = first_line_number(logdir / "alpha.log")
            rotated = backups()
            wait_for(lambda: backups() >= rotated + 3, 60, "three rotations while frozen")
            thawed_live = first_line_number(logdir / "alpha.log")
        finally:
            os.kill(server.pid, signal.SIGCONT)
        sup.wait_state("alpha", "EXITED", timeout=120)
        wait_for(lambda: numbers()[-1:] == [count - 1], 60, "the last line at rsyslog")
        settle(lambda: len(numbers()), 2.0, 30)
        sup.stop()
    got = numbers()
    assert len(got) == len(set(got)), "no line twice"
    missing = lost_stretch(got, count)
    # The file open at the freeze is read to its end, the files created and
    # rotated while rsyslog was frozen are lost whole, and the file live at the
    # thaw is read from its start.
    starts = file_starts(logdir)
    assert missing[0] in starts and missing[0] > frozen_live
    assert missing[-1] == thawed_live - 1


@pytest.mark.usefixtures("rsyslog_installed")
def test_central_rsyslog_recipe_keeps_structured_data_and_long_records(tmp_path: Path) -> None:
    """The receiving side of docs/shipping.md, as printed (paths and port
    replaced): RELP in, one file per host and program, structured data kept,
    a record of 20 000 bytes whole."""
    port = free_port()
    spool, central = tmp_path / "spool", tmp_path / "central"
    spool.mkdir()
    text = recipe('dynaFile="streamlog_path"')
    for old, new in (
        ("/var/spool/rsyslog", str(spool)),
        ("/var/log/central", str(central)),
        ('port="2514"', f'port="{port}"'),
    ):
        assert old in text
        text = text.replace(old, new)
    origin = Origin("web1.example", "web", "web", "web.log")
    entries = [
        Entry(1200, 1251, parse_line_of(b"GET / 200")),
        Entry(1251, 21290, parse_line_of(b"L" * 20_000)),
    ]
    messages = [message(origin, item, 4242) for item in entries]

    async def send() -> int:
        client = RelpClient("127.0.0.1", port, timeout=30)
        await client.connect()
        try:
            return await client.send(messages, lambda count: None)
        finally:
            await client.close()

    with Rsyslog(tmp_path / "rsyslog", relp=False, config=text):
        wait_for(lambda: port_open(port), 20, "imrelp to listen")
        assert asyncio.run(asyncio.wait_for(send(), 60)) == len(messages)
        output = central / "web1.example" / "web.log"
        wait_for(lambda: output.exists() and output.read_bytes().count(b"\n") >= 2, 20, "output")
    lines = output.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 2
    for line, item in zip(lines, entries):
        stamp, host, app, procid, msgid, rest = line.split(b" ", 5)
        assert (stamp.decode(), host, app, procid, msgid) == (
            STAMP,
            b"web1.example",
            b"web",
            b"4242",
            b"stdout",
        )
        sd, msg = rest.split(b"] ", 1)
        params = parse_sd(sd.decode() + "]")["streamlog@32473"]
        assert (params["offset"], params["end"], params["file"], params["group"]) == (
            str(item.offset),
            str(item.end),
            "web.log",
            "web",
        )
        assert msg == item.record.data
