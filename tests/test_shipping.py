"""Records a shipper can use unchanged, and the shipping recipes of docs/shipping.md.

Two parts:

- every reader of the files (``parse``, the file header, the sidecar's store,
  ``tail``, the forwarder) takes JSON records with and without the identity
  and notice fields (files written before they existed stay readable);
- the rsyslog ``imfile`` recipe of docs/shipping.md, run for real: a real
  supervisord with the plugin writes JSON Lines that rotate while a real
  rsyslogd, configured with the recipe as the document prints it, reads them.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.forward.forwarder import Feed
from supervisor_streamlog.forward.syslog import Origin, Severities
from supervisor_streamlog.ondisk.files import Entry, header_base, is_header, process_files
from supervisor_streamlog.ondisk.formats import JsonFormat, parse
from supervisor_streamlog.sidecar.logstore import LogStore
from supervisor_streamlog.tail import run as tail_run

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
    feed = Feed("web", Origin("web1.example", "web", "web", "web.log"), store, 2048)
    messages, _ = feed.messages(page.entries, Severities())
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
