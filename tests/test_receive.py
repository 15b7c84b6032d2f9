"""The central sink (``supervisor-streamlog receive``) with plain values: the
RFC 5424 SD parser, each input line's answer, hostile names and input, and
de-duplication across a restart of the sink (its ledger)."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from supervisor_streamlog.config import ConfigError, from_mapping
from supervisor_streamlog.forward.receive import (
    MAX_LINE,
    OK,
    SDError,
    Sink,
    parse_sd,
    serve,
)
from supervisor_streamlog.forward.syslog import Origin, message
from supervisor_streamlog.ondisk.files import Entry, is_header, process_files
from supervisor_streamlog.ondisk.formats import Record, parse

from .helpers import Reports

STAMP = "2026-11-27T01:23:45.678901+00:00"


def sink(tmp_path: Path, reports: Optional[Reports] = None, **values: str) -> Sink:
    settings = {"logdir": str(tmp_path / "central"), "layout": "hosts"}
    settings.update(values)
    return Sink(from_mapping(settings, str(tmp_path)), report=reports or Reports())


def line(
    sd: str,
    msg: str = "hello",
    host: str = "web1",
    app: str = "web",
    procid: str = "42",
    time: str = STAMP,
) -> bytes:
    obj = {"host": host, "app": app, "procid": procid, "msgid": "stdout", "time": time}
    obj.update({"sd": sd, "msg": msg})
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogateescape")


def ours(offset: int, end: int, file: str = "web.log", group: str = "web", **extra: str) -> str:
    params = f'group="{group}" stream="{extra.pop("stream", "stdout")}" offset="{offset}"'
    params += f' end="{end}" file="{file}"'
    params += "".join(f' {key}="{value}"' for key, value in extra.items())
    return f"[streamlog@32473 {params}]"


def records(path: Path) -> List[Record]:
    """Every record of a central process log, backups included, headers left out."""
    found = []
    for log in process_files(str(path)):
        opener = gzip.open if log.compressed else open
        with opener(log.path, "rb") as handle:
            for raw in handle:
                record = parse(raw.rstrip(b"\n"))
                if not is_header(record.stream, record.data):
                    found.append(record)
    return found


# ---------------------------------------------------------------- the SD parser


def test_sd_parser_reads_elements_params_and_escapes() -> None:
    text = r'[streamlog@32473 group="a\"b" file="x\\y\]z" q="\n"][other@1][x@2 k=""]'
    assert parse_sd(text) == {
        "streamlog@32473": {"group": 'a"b', "file": "x\\y]z", "q": "\\n"},
        "other@1": {},
        "x@2": {"k": ""},
    }
    assert parse_sd("-") == {}
    # A value may hold any UTF-8, spaces, '=' and an unescaped ']'.
    assert parse_sd('[a@1 v="é = ] x"]') == {"a@1": {"v": "é = ] x"}}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[",
        "[]",
        "[a@1",
        '[a@1 k="v"',
        '[a@1 k="v]',
        "[a@1 k=v]",
        '[a@1  k="v"]',
        '[a@1 k="v"] ',
        '[a@1 k="v"]x',
        '[a@1 ="v"]',
        '[a"1 k="v"]',
        '[a@1 k="v" k="w"]',
        "[a@1][a@1]",
        "[" + "n" * 33 + "]",
        '[a@1 k="\\"]',
        "x[a@1]",
    ],
)
def test_sd_parser_refuses_what_rfc_5424_does_not_allow(text: str) -> None:
    with pytest.raises(SDError):
        parse_sd(text)


# ---------------------------------------------------------------- messages


def test_a_message_becomes_a_record_of_the_hosts_layout(tmp_path: Path) -> None:
    s = sink(tmp_path)
    assert s.handle(line(ours(100, 140), "GET / 200")) == OK
    assert s.handle(line(ours(140, 160, partial="true"), "Password: ")) == OK
    assert s.handle(line(ours(10, 20, "grp/w%3A1.log", "grp"), "x", app="w:1")) == OK
    status = "EXITED pid=4242 exitstatus=1 expected=false"
    sd = ours(160, 220, stream="status", state="EXITED", exitstatus="1", expected="false")
    assert s.handle(line(sd, status, procid="4242")) == OK
    s.close()
    central = tmp_path / "central"
    text = (central / "web1" / "web.log").read_bytes().decode().splitlines()
    assert text[0] == f"{STAMP} status STREAMLOG file offset=0"
    assert text[1:] == [
        f"{STAMP} stdout GET / 200",
        f"{STAMP} stdout+ Password: ",
        f"{STAMP} status {status}",
    ]
    assert records(central / "web1" / "grp" / "w%3A1.log")[0].data == b"x"


def test_json_records_keep_pid_partial_status_fields_and_identity(tmp_path: Path) -> None:
    s = sink(tmp_path, format="json")
    s.handle(line(ours(100, 140), "caf\udcc3 bad", procid="42"))
    s.handle(line(ours(140, 160, partial="true"), "Password: "))
    s.handle(line(ours(160, 220, stream="status"), "EXITED pid=7 exitstatus=1 expected=false"))
    s.handle(
        line(ours(220, 300, stream="status"), "STREAMLOG dropped bytes=10 records=1 reason=ENOSPC")
    )
    s.close()
    objs = [
        json.loads(raw) for raw in (tmp_path / "central/web1/web.log").read_bytes().splitlines()
    ]
    assert objs[0]["notice"] == "file"
    assert objs[1]["pid"] == 42 and objs[1]["host"] == "web1" and objs[1]["program"] == "web"
    assert parse(json.dumps(objs[1]).encode()).data == b"caf\xc3 bad"  # b64 keeps the bytes
    assert objs[2]["partial"] is True
    assert (objs[3]["state"], objs[3]["pid"], objs[3]["exitstatus"], objs[3]["expected"]) == (
        "EXITED",
        7,
        1,
        False,
    )
    assert (objs[4]["notice"], objs[4]["bytes"], objs[4]["reason"]) == ("dropped", 10, "ENOSPC")


def test_repeats_are_dropped_and_confirmed(tmp_path: Path) -> None:
    s = sink(tmp_path)
    for offset in (100, 140, 100, 140, 180, 140):
        assert s.handle(line(ours(offset, offset + 40), f"at {offset}")) == OK
    s.close()
    texts = [r.data for r in records(tmp_path / "central/web1/web.log")]
    assert texts == [b"at 100", b"at 140", b"at 180"]
    assert (s.written, s.duplicates) == (3, 3)


@pytest.mark.parametrize("killed_after", ["ledger", "record"])
def test_a_restarted_sink_neither_repeats_nor_loses(
    tmp_path: Path, killed_after: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the ledger's write and the record's, or after both:
    the next sink knows from the central file whether the record is there."""
    first = sink(tmp_path, maxbytes="200")
    for offset in range(100, 400, 50):
        first.handle(line(ours(offset, offset + 50), f"at {offset}"))
    proc = next(iter(first.processes.values()))
    if killed_after == "ledger":
        # The ledger says "about to write 400..450"; the record never was.
        proc.ledger.write(proc.last_end, 450, proc.position(), proc.latest, proc.latest + 1)
    else:
        first.handle(line(ours(400, 450), "at 400"))
    proc.writer.close()  # a kill: nothing else is written
    second = sink(tmp_path, maxbytes="200")
    for offset in range(250, 500, 50):  # rsyslog sends again what was not confirmed, and more
        assert second.handle(line(ours(offset, offset + 50), f"at {offset}")) == OK
    second.close()
    texts = [r.data for r in records(tmp_path / "central/web1/web.log")]
    assert texts == [f"at {offset}".encode() for offset in range(100, 500, 50)]
    assert len(list((tmp_path / "central/web1").glob("web.log.*"))) >= 2


@pytest.mark.parametrize(
    ("sd", "host", "msg", "reason"),
    [
        (ours(0, 10, "../../etc/passwd.log"), "web1", "x", "bad file"),
        (ours(0, 10, "a/b/c.log"), "web1", "x", "bad file"),
        (ours(0, 10, ".hidden.log", ".hidden"), "web1", "x", "bad file"),
        (ours(0, 10, "web/web.log"), "web1", "x", "bad file"),
        (ours(0, 10, "web.log", "other"), "web1", "x", "group does not match file"),
        (ours(0, 10, "web"), "web1", "x", "bad file"),
        (ours(0, 10, stream="stdin"), "web1", "x", "bad stream"),
        (ours(10, 10), "web1", "x", "bad offset/end"),
        (
            '[streamlog@32473 group="web" stream="stdout" end="9" file="web.log"]',
            "web1",
            "x",
            "bad offset",
        ),
        (ours(0, 10).replace('"0"', '"-1"'), "web1", "x", "bad offset"),
        (ours(0, 10).replace('"10"', '"1e3"'), "web1", "x", "bad end"),
        (ours(0, 10), "web1", "two\nlines", "MSG holds a newline"),
        (ours(0, 10, stream="status"), "web1", "STREAMLOG file offset=0", "a file header"),
        (ours(0, 10), "-", "x", "no HOSTNAME"),
        ("-", "web1", "x", "not streamlog's"),
        ('[origin@1 ip="1.2.3.4"]', "web1", "x", "not streamlog's"),
        ('[streamlog@32473 group="web"', "web1", "x", "bad STRUCTURED-DATA"),
    ],
)
def test_what_is_not_a_streamlog_record_is_refused_and_confirmed(
    tmp_path: Path, sd: str, host: str, msg: str, reason: str
) -> None:
    reports = Reports()
    s = sink(tmp_path, reports)
    assert s.handle(line(sd, msg, host=host)) == OK
    assert s.refused == {reason: 1}
    assert reason in reports.messages[0]
    s.close()
    assert not (tmp_path / "central").exists() or not list((tmp_path / "central").glob("*"))


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b"[1, 2]", b'{"host": 1}', b"{" * 100, b'{"msg": "\\ud800"}', b"\xff\xfe"],
)
def test_lines_that_are_not_template_json_are_refused(tmp_path: Path, raw: bytes) -> None:
    s = sink(tmp_path)
    assert s.handle(raw) == OK
    assert sum(s.refused.values()) == 1


def test_hostile_host_names_stay_inside_logdir(tmp_path: Path) -> None:
    s = sink(tmp_path)
    for host in ("..", "../..", "%2E%2E%2F%2E%2E", ".receive", "a/b", "%00", "x%2Fy"):
        assert s.handle(line(ours(0, 10), "x", host=host)) == OK
    s.close()
    central = tmp_path / "central"
    inside = sorted(p.name for p in central.iterdir())
    assert ".." not in inside and "a" not in inside
    for path in central.rglob("*.log"):
        assert os.path.realpath(path).startswith(str(central) + os.sep)
    assert sorted(p.relative_to(central).parts[0] for p in central.glob("*/web.log")) == sorted(
        {"%2E.", "%2E.%2F..", "%2Ereceive", "a%2Fb", "%00", "x%2Fy"}
    )
    assert not (tmp_path / "web.log").exists()


def test_a_bad_timestamp_gets_the_receive_time(tmp_path: Path) -> None:
    s = sink(tmp_path, timezone="utc")
    s.clock = lambda: 0.0
    s.handle(line(ours(0, 10), "x", time="yesterday evening"))
    s.close()
    assert records(tmp_path / "central/web1/web.log")[0].time == "1970-01-01T00:00:00.000000+00:00"


@pytest.mark.parametrize(
    ("origin", "where"),
    [
        (
            Origin("my host", 'a]b"c', "we b", "a%5Db%22c/we%20b.log"),
            "my%20host/a%5Db%22c/we%20b.log",
        ),
        (Origin("h", "caf\udcff", "w", "caf%FF/w.log"), "h/caf%FF/w.log"),
    ],
)
def test_what_the_forwarder_sends_is_what_the_sink_reads(
    tmp_path: Path, origin: Origin, where: str
) -> None:
    """The forwarder's own encoder, its SD escaping and name quoting included."""
    entry = Entry(60, 90, Record(STAMP, "stdout", b"hi", False, 5))
    raw = message(origin, entry, 5)
    head, _, msg = raw.partition(b"] ")
    _, _, host, app, procid, msgid, sd = head.decode().split(" ", 6)
    s = sink(tmp_path)
    obj = {"host": host, "app": app, "procid": procid, "msgid": msgid, "time": STAMP}
    obj.update({"sd": sd + "]", "msg": msg.decode()})
    assert s.handle(json.dumps(obj).encode()) == OK
    s.close()
    assert records(tmp_path / "central" / where)[0].data == b"hi"


# ---------------------------------------------------------------- the omprog loop


def run_loop(tmp_path: Path, data: bytes) -> List[bytes]:
    out = io.BytesIO()
    s = sink(tmp_path)
    assert serve(s, io.BytesIO(data), out) == 0
    s.close()
    return out.getvalue().splitlines()


def test_the_loop_says_ok_first_then_answers_every_line(tmp_path: Path) -> None:
    good = line(ours(0, 10), "one") + b"\n" + line(ours(10, 20), "two") + b"\n"
    answers = run_loop(tmp_path, good + b"junk\n" + b"x" * (MAX_LINE + 10) + b"\n" + b"half")
    assert answers == [b"OK"] * 5  # ready, two records, junk, the over-long line
    assert [r.data for r in records(tmp_path / "central/web1/web.log")] == [b"one", b"two"]


def test_a_disk_that_refuses_gets_an_error_answer_and_the_retry_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sink(tmp_path)
    assert s.handle(line(ours(0, 10), "one")) == OK
    real_write = os.write
    failing: Dict[str, bool] = {"on": True}

    def write(fd: int, data: bytes) -> int:
        if failing["on"] and data.endswith(b"two\n"):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    answer = s.handle(line(ours(10, 20), "two"))
    assert answer.startswith(b"ERROR ") and b"ENOSPC" in answer
    assert s.handle(line(ours(10, 20), "two")).startswith(b"ERROR ")  # rsyslog retries
    failing["on"] = False
    assert s.handle(line(ours(10, 20), "two")) == OK
    assert s.handle(line(ours(20, 30), "three")) == OK
    s.close()
    texts = [r.data for r in records(tmp_path / "central/web1/web.log")]
    assert texts == [b"one", b"two", b"three"]


def test_receive_needs_the_hosts_layout(tmp_path: Path) -> None:
    from supervisor_streamlog.forward.receive import run

    config = from_mapping({"logdir": str(tmp_path)}, str(tmp_path))
    assert run(config) == 2
    with pytest.raises(ConfigError, match="layout"):
        from_mapping({"layout": "flat"}, str(tmp_path))


def test_docs_quote_the_tested_rsyslog_config_as_it_is() -> None:
    """docs/shipping.md prints conf/central-rsyslog.conf, which test_central.py runs."""
    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "shipping.md").read_text()
    section = docs.split("### The central rsyslog", 1)[1]
    block = section.split("```rsyslog\n", 1)[1].split("```", 1)[0]
    assert block == (root / "conf" / "central-rsyslog.conf").read_text()


def test_tail_reads_a_central_logdir(tmp_path: Path) -> None:
    """``tail HOST/name`` with ``layout = hosts``: the host's file, named as on the page."""
    from supervisor_streamlog.tail import run as tail_run

    s = sink(tmp_path)
    s.handle(line(ours(0, 10), "from web1"))
    s.handle(line(ours(0, 10), "from my host", host="my%20host"))
    s.close()
    out = io.StringIO()
    config = from_mapping({"logdir": str(tmp_path / "central"), "layout": "hosts"}, str(tmp_path))
    assert tail_run(config, ["web1/web", "my host/web:web"], None, False, out) == 0
    assert out.getvalue().splitlines() == [
        f"{STAMP} web1/web stdout from web1",
        f"{STAMP} my host/web stdout from my host",
    ]


def test_odd_bytes_in_names_and_times_get_a_defined_result(tmp_path: Path) -> None:
    """A host or program name holding a byte that is not UTF-8 (quoted as %FF
    by the origin), and a time in non-ASCII digits, in JSON format."""
    s = sink(tmp_path, format="json")
    s.clock = lambda: 0.0
    assert s.handle(line(ours(0, 10, "caf%FF.log", "caf\\\\udcff"), "x", host="h%FF")) == OK
    assert s.handle(line(ours(0, 10), "y", time="٢٠٢٦-12-03T10:00:00+00:00")) == OK
    s.close()
    raw = (tmp_path / "central" / "h%FF" / "caf%FF.log").read_bytes().splitlines()[1]
    record = json.loads(raw)
    assert (record["host"], record["program"], record["text"]) == ("h\ufffd", "caf\ufffd", "x")
    assert records(tmp_path / "central/web1/web.log")[0].time.startswith("1970-01-01T")


def test_an_origin_that_started_over_is_taken_not_dropped(tmp_path: Path) -> None:
    """Offsets back at the start with later times: the host's logdir was
    deleted (a reinstall), not a repeat.  Repeats of those are dropped, also
    by a restarted sink."""
    reports = Reports()
    later = "2026-11-28T00:00:00.000001+00:00"
    s = sink(tmp_path, reports)
    for offset in (100, 150, 200):
        s.handle(line(ours(offset, offset + 50), f"old {offset}"))
    assert s.handle(line(ours(60, 110), "new 60", time=later)) == OK
    assert s.handle(line(ours(110, 160), "new 110", time=later)) == OK
    assert s.handle(line(ours(60, 110), "new 60", time=later)) == OK  # a repeat
    s.close()
    assert s.restarts == 1 and "started over" in reports.messages[-1]
    again = sink(tmp_path)
    assert again.handle(line(ours(110, 160), "new 110", time=later)) == OK
    assert again.handle(line(ours(160, 210), "new 160", time=later)) == OK
    again.close()
    texts = [r.data.decode() for r in records(tmp_path / "central/web1/web.log")]
    assert texts == ["old 100", "old 150", "old 200", "new 60", "new 110", "new 160"]
    assert (s.duplicates, again.duplicates, again.restarts) == (1, 1, 0)


def test_micros_reads_rfc_3339() -> None:
    from supervisor_streamlog.forward.receive import micros

    assert micros("1970-01-01T00:00:01.5Z") == 1_500_000
    assert micros("1970-01-01T01:00:00.000001+01:00") == 1
    assert micros("1970-01-01T00:00:00.123456789-00:30") == 30 * 60 * 1_000_000 + 123456
    for bad in ("", "-", "1970-13-01T00:00:00Z", "1970-01-01 00:00:00Z", "1970-01-01T00:00:00"):
        assert micros(bad) is None


def test_a_status_text_cannot_pose_as_record_fields(tmp_path: Path) -> None:
    """Only the fields capture writes come from a status text: not b64,
    partial, notice or an identity field."""
    s = sink(tmp_path, format="json")
    hostile = "EXITED pid=7 b64=AAAA partial=true notice=file host=evil exitstatus=2"
    s.handle(line(ours(0, 10, stream="status"), hostile))
    s.handle(line(ours(10, 20, stream="status"), "STREAMLOG odd b64=AAAA offset=3"))
    s.close()
    raw = (tmp_path / "central/web1/web.log").read_bytes().splitlines()
    first, second = json.loads(raw[1]), json.loads(raw[2])
    assert set(first) == {"time", "stream", "pid", "text", "state", "exitstatus"} | {
        "program",
        "group",
        "host",
    }
    assert (first["host"], first["exitstatus"], first["pid"]) == ("web1", 2, 7)
    assert parse(raw[1]).data == hostile.encode()
    assert second["notice"] == "odd" and "b64" not in second and "offset" not in second
    assert parse(raw[2]).data == b"STREAMLOG odd b64=AAAA offset=3"


def test_discovery_of_a_central_logdir(tmp_path: Path) -> None:
    """layout = hosts: HOST/group:name for each host directory's processes;
    the sink's own state, stray files and symlinks out of logdir are not hosts."""
    from supervisor_streamlog.ondisk.logdir import discover_layout

    s = sink(tmp_path)
    s.handle(line(ours(0, 10), "a", host="web1"))
    s.handle(line(ours(0, 10, "grp/w.log", "grp"), "b", host="web1"))
    s.handle(line(ours(0, 10), "c", host="my%20host"))
    s.close()
    central = tmp_path / "central"
    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    (outside / "x" / "evil.log").write_text("")
    (central / "escape").symlink_to(outside / "x")
    (central / "stray.log").write_text("")
    (central / "not%quoted").mkdir()
    (central / "not%quoted" / "p.log").write_text("")
    found = discover_layout(str(central), "hosts")
    assert sorted(found) == ["my%20host/web:web", "web1/grp:w", "web1/web:web"]
    assert found["web1/grp:w"] == str(central / "web1" / "grp" / "w.log")
    assert "web:web" in discover_layout(str(central / "web1"))  # a host's own layout


def test_forward_refuses_a_central_logdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from supervisor_streamlog.cli import main

    conf = tmp_path / "central.conf"
    conf.write_text(f"[streamlog]\nlogdir = {tmp_path}/central\nlayout = hosts\n")
    assert main(["forward", "-c", str(conf)]) == 2
    assert "layout = hosts is a central logdir" in capsys.readouterr().err
