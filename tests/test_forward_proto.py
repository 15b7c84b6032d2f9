"""The forwarder's protocol layer: RFC 5424 messages, the URLs, and RELP / octet-counted
TCP / TLS against a real rsyslogd (tests/rsyslog.py).

Long (about 700 lines) because it is the one test module of the layer: the
message tables, the URL tables, RELP against small fake servers (refusal,
silence, serverclose, cancellation), and the real-rsyslog runs (10 000 in
order, hostile bytes, TLS with a good and a wrong CA, SIGKILL and restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from pathlib import Path
from typing import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    List,
    Optional,
    Tuple,
    TypeVar,
)
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor_streamlog.forward import syslog
from supervisor_streamlog.forward.destinations import (
    Destination,
    client_for,
    parse_destinations,
    tls_context,
)
from supervisor_streamlog.forward.octet import SendError, StreamSender
from supervisor_streamlog.forward.relp import FrameParser, RelpClient, RelpError, frame
from supervisor_streamlog.forward.relpframe import MAX_TXNR
from supervisor_streamlog.forward.syslog import Origin, Severities, message, wanted
from supervisor_streamlog.ondisk.files import Entry
from supervisor_streamlog.ondisk.formats import Record

from .forwarder import Handler, answer_open, fake_server
from .rsyslog import Received, Rsyslog, arrives_as, environment_problem, make_ca

T = TypeVar("T")
STAMP = "2026-11-27T01:23:45.678901+00:00"
ORIGIN = Origin("web1.example", "web", "web", "web.log")
# RFC 5424's HEADER and an SD element, as this module writes them
SYSLOG = re.compile(
    rb"<(\d{1,3})>1 (\S+) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32})"
    rb" (\[streamlog@32473(?: [^ =\]\"]+=\"(?:[^\"\\\]]|\\[\"\\\]])*\")*\])(?: (.*))?\Z",
    re.S,
)


def entry(
    data: bytes = b"hello",
    stream: str = "stdout",
    partial: bool = False,
    offset: int = 100,
    time: str = STAMP,
    pid: Optional[int] = None,
) -> Entry:
    return Entry(offset, offset + len(data) + 40, Record(time, stream, data, partial, pid))


def run(coroutine: Awaitable[T], timeout: float = 120.0) -> T:
    """Run a coroutine with a deadline (no test waits forever)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


# ----------------------------------------------------------------- messages


def test_a_stdout_record_is_one_rfc5424_message() -> None:
    got = message(ORIGIN, entry(b"GET / 200", offset=1200), 4242)
    assert got == (
        b"<14>1 2026-11-27T01:23:45.678901+00:00 web1.example web 4242 stdout"
        b' [streamlog@32473 group="web" stream="stdout" offset="1200" end="1249"'
        b' file="web.log"] GET / 200'
    )
    assert SYSLOG.match(got)


@pytest.mark.parametrize(
    ("record", "pri", "procid", "params"),
    [
        (entry(b"x", "stdout"), 14, "7", {}),
        (entry(b"oops", "stderr"), 12, "7", {}),
        (entry(b"a piece", "stderr", partial=True), 12, "7", {"partial": "true"}),
        (entry(b"RUNNING pid=4242", "status"), 13, "4242", {"state": "RUNNING"}),
        (entry(b"STARTING", "status"), 13, "7", {"state": "STARTING"}),
        (
            entry(b"EXITED pid=4242 exitstatus=1 expected=false", "status"),
            11,
            "4242",
            {"state": "EXITED", "exitstatus": "1", "expected": "false"},
        ),
        (
            entry(b"EXITED pid=4242 exitstatus=0 expected=true", "status"),
            13,
            "4242",
            {"state": "EXITED", "exitstatus": "0", "expected": "true"},
        ),
        (
            entry(
                b"STREAMLOG dropped bytes=10 records=2 reason=ENOSPC (write_buffer full)", "status"
            ),
            12,
            "7",
            {"state": "STREAMLOG", "dropped_bytes": "10", "dropped_records": "2"},
        ),
    ],
)
def test_severity_procid_and_structured_data_by_stream(
    record: Entry, pri: int, procid: str, params: dict
) -> None:
    got = message(ORIGIN, record, 7)
    match = SYSLOG.match(got)
    assert match, got
    assert int(match.group(1)) == pri
    assert match.group(5).decode() == procid
    assert match.group(6).decode() == record.record.stream
    sd = parse_sd(match.group(7))
    expected = {"group": "web", "stream": record.record.stream}
    expected.update(offset=str(record.offset), end=str(record.end), file="web.log")
    expected.update(params)
    assert sd == expected
    assert match.group(8) == record.record.data


def parse_sd(raw: bytes) -> dict:
    from .rsyslog import parse_sd as parse

    return parse(raw.decode("utf-8"))["streamlog@32473"]


def test_msg_is_the_exact_bytes_without_a_bom() -> None:
    data = b'\xff\xfe not utf-8 \x00 nul \r cr \x1b[31m ] " \\'
    got = message(ORIGIN, entry(data), None)
    assert got.endswith(b"] " + data)
    assert b"\xef\xbb\xbf" not in got


def test_pid_order_and_nil_values() -> None:
    assert b" web 9 stdout " in message(ORIGIN, entry(pid=5), 9)
    assert b" web 5 stdout " in message(ORIGIN, entry(pid=5), None)
    assert b" web - stdout " in message(ORIGIN, entry(), None)
    assert b" web - stdout " in message(ORIGIN, entry(pid=0), 0)
    assert message(ORIGIN, entry(time=""), 1).startswith(b"<14>1 - web1.example ")
    empty = message(ORIGIN, entry(b""), 1)
    assert empty.endswith(b'file="web.log"]')  # no MSG, no trailing space
    assert SYSLOG.match(empty)


def test_facility_and_severities_are_parameters() -> None:
    local0 = message(ORIGIN, entry(), 1, facility=16)
    assert local0.startswith(b"<134>1 ")
    quiet = Severities(stdout=7, stderr=5)
    assert message(ORIGIN, entry(stream="stderr"), 1, quiet).startswith(b"<13>1 ")
    with pytest.raises(ValueError):
        message(ORIGIN, entry(), 1, facility=24)


def test_hostile_group_and_file_names_are_escaped_in_structured_data() -> None:
    origin = Origin("h", 'g"] [x y="z\\', "n", 'g%22%5D/n"]\\.log')
    got = message(origin, entry(), 1)
    assert SYSLOG.match(got), got
    sd = parse_sd(SYSLOG.match(got).group(7))  # type: ignore[union-attr]
    assert sd["group"] == 'g"] [x y="z\\'
    assert sd["file"] == 'g%22%5D/n"]\\.log'
    # non-ASCII stays UTF-8; an undecodable byte of a name becomes its escape
    odd = message(Origin("h", "grüppe\udcff", "n", "f.log"), entry(), 1)
    assert 'group="grüppe\\\\udcff"'.encode() in odd


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web", "web"),
        ("my app", "my%20app"),
        ("50%", "50%25"),
        ("é", "%C3%A9"),
        ("tab\there", "tab%09here"),
        ("", "-"),
        ("x" * 60, "x" * 48),
        ("x" * 46 + "é", "x" * 46),  # never half a %XX
        ("x" * 40 + "\U00010000", "x" * 40),  # nor part of a character's %XX%XX%XX%XX
        ("a\udcff\ud800", "a%FF%ED%A0%80"),  # undecodable bytes of a name
        ("x" * 47 + " ", "x" * 47),
    ],
)
def test_app_name_is_printable_ascii_at_most_48(name: str, expected: str) -> None:
    got = message(Origin("host", "g", name, "f.log"), entry(), 1)
    assert got.split(b" ")[3].decode() == expected
    assert SYSLOG.match(got)


SURROGATES_TOO = st.characters(exclude_categories=())  # undecodable bytes of names


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    host=st.text(max_size=300),
    group=st.text(SURROGATES_TOO, max_size=60),  # surrogates included
    name=st.text(SURROGATES_TOO, max_size=80),
    file=st.text(SURROGATES_TOO, max_size=60),
    data=st.binary(max_size=200),
    stream=st.sampled_from(["stdout", "stderr", "status"]),
    partial=st.booleans(),
)
def test_any_names_and_bytes_make_a_well_formed_message(
    host: str, group: str, name: str, file: str, data: bytes, stream: str, partial: bool
) -> None:
    """Hostile names cannot break the header or the structured data, and come back."""
    got = message(Origin(host, group, name, file), entry(data, stream, partial), 42)
    match = SYSLOG.match(got)
    assert match, got
    assert match.group(3).decode() == syslog.header_name(host, syslog.HOSTNAME_MAX)
    assert match.group(4).decode() == syslog.header_name(name, syslog.APP_NAME_MAX)
    sd = parse_sd(match.group(7))
    for key, value in (("group", group), ("file", file)):
        assert sd[key] == value.encode("utf-8", "backslashreplace").decode("utf-8")
    assert (match.group(8) or b"") == data
    if name and not any(0xD800 <= ord(char) <= 0xDFFF for char in name):
        # reversible, up to the cut at 48 (an empty name is the NILVALUE "-")
        back = unquote(match.group(4).decode())
        assert back == name[: len(back)]


def test_hostname_is_printable_ascii_at_most_255() -> None:
    assert syslog.header_name("h" * 300, syslog.HOSTNAME_MAX) == "h" * 255
    assert syslog.header_name("bad host\n", syslog.HOSTNAME_MAX) == "bad%20host%0A"


def test_hand_made_json_records_cannot_break_the_header() -> None:
    odd = Entry(0, 10, Record("not a time", "evil] x", b"data", False, None))
    got = message(ORIGIN, odd, 1)
    assert got.startswith(b"<13>1 - web1.example web 1 evil]")
    assert b'stream="evil\\] x"' in got


def test_file_headers_are_not_wanted() -> None:
    header = entry(b"STREAMLOG file offset=0", "status")
    assert not wanted(header)
    assert wanted(entry(b"STREAMLOG dropped bytes=1 records=1", "status"))
    assert wanted(entry(b"STREAMLOG file offset=0", "stdout"))  # the child's own text


# ------------------------------------------------------------- destinations


def test_destinations_parse() -> None:
    got = parse_destinations(" relp://logs.example:2514\ttcp://10.0.0.5:514\n tls://[::1]:6514 ")
    assert got == (
        Destination("relp", "logs.example", 2514, "relp://logs.example:2514"),
        Destination("tcp", "10.0.0.5", 514, "tcp://10.0.0.5:514"),
        Destination("tls", "::1", 6514, "tls://[::1]:6514"),
    )
    assert parse_destinations("") == ()
    assert parse_destinations("RELP://h:1")[0].scheme == "relp"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("logs.example:2514", "is not a URL"),
        ("udp://h:514", "unknown scheme 'udp'"),
        ("relp://h", "has no port"),
        ("relp://:2514", "has no host"),
        ("relp://h:0", "outside 1..65535"),
        ("relp://h:70000", "bad host or port"),
        ("relp://h:port", "bad host or port"),
        ("relp://::1:2514", "IPv6 address without brackets"),
        ("relp://user@h:2514", "has a user name"),
        ("relp://h:2514/path", "more than host and port"),
        ("relp://h:2514?x=1", "more than host and port"),
        ("relp://h:1 relp://H:1", "listed twice"),
    ],
)
def test_bad_destinations_say_which_and_what_is_accepted(value: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_destinations(value)
    text = str(info.value)
    assert "\n" not in text
    assert reason in text
    assert "relp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT" in text
    assert repr(value.split()[-1]) in text


def test_clients_for_destinations(tmp_path: Path) -> None:
    relp, tcp, tls = parse_destinations("relp://h:1 tcp://h:2 tls://h:3")
    assert isinstance(client_for(relp), RelpClient)
    plain = client_for(tcp)
    assert isinstance(plain, StreamSender) and plain.ssl_context is None
    secure = client_for(tls)
    assert isinstance(secure, StreamSender) and secure.ssl_context is not None
    assert secure.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert secure.ssl_context.check_hostname


def test_tls_context(tmp_path: Path) -> None:
    certs = make_ca(tmp_path)
    context = tls_context(str(certs.ca))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    loose = tls_context(str(certs.ca), verify=False)
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname
    tls_context(str(certs.ca), str(certs.cert), str(certs.key))  # a client certificate
    with pytest.raises(ValueError, match="cannot use the TLS files .*missing"):
        tls_context(str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="cannot use the TLS files"):
        tls_context(str(certs.ca), str(certs.ca))  # no key in it


# --------------------------------------------------------- RELP, no server


def test_relp_frames_are_parsed_however_they_are_split() -> None:
    stream = b"2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 0\n0 serverclose 0\n5 rsp 9 500 nope\n\n"
    whole = FrameParser().feed(stream)
    assert whole == [
        (2, b"rsp", b"200 OK"),
        (3, b"rsp", b"200 OK"),
        (4, b"rsp", b""),
        (0, b"serverclose", b""),
        (5, b"rsp", b"500 nope\n"),
    ]
    for size in (1, 2, 3, 7):
        parser = FrameParser()
        got = []
        for start in range(0, len(stream), size):
            got.extend(parser.feed(stream[start : start + size]))
        assert got == whole
    assert frame(7, "syslog", b"a\nb") == b"7 syslog 3 a\nb\n"
    assert frame(8, "close") == b"8 close 0\n"


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 400 Bad Request\r\n", b"2 rsp 6 200 OKX", b"x\n"])
def test_relp_garbage_is_an_error(garbage: bytes) -> None:
    with pytest.raises(RelpError, match="not a RELP frame|not ended by a newline"):
        FrameParser().feed(garbage)


def test_relp_refusal_silence_and_serverclose_raise() -> None:
    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        await reader.readuntil(b"\n")
        writer.write(frame(2, "rsp", b"200 OK") + frame(3, "rsp", b"500 queue is full, sorry"))
        await reader.read()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        await reader.read()

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        await reader.readuntil(b"\n")
        writer.write(b"2 rsp 6 200 OK\n0 serverclose 0\n")
        await reader.read()

    async def no_syslog(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"commands=syslog\n")
        writer.write(frame(1, "rsp", b"200 OK\ncommands=foo"))
        await reader.read()

    async def attempt(handler: Handler, timeout: float = 10.0) -> Tuple[str, List[int]]:
        server, port = await fake_server(handler)
        acked: List[int] = []
        client = RelpClient("127.0.0.1", port, timeout=timeout)
        try:
            await client.connect()
            await client.send([b"one", b"two", b"three"], acked.append)
        except RelpError as exc:
            assert not client.connected
            return str(exc), acked
        finally:
            await client.close()
            server.close()
        raise AssertionError("no error")

    started = time.monotonic()
    text, acked = run(attempt(refusing))
    assert "refused message 2 of 3: '500 queue is full, sorry'" in text and acked == [1]
    text, acked = run(attempt(silent, timeout=0.5))
    assert "no answer for 0.5s" in text and acked == []
    text, acked = run(attempt(closing))
    assert "serverclose" in text and acked == [1]
    text, acked = run(attempt(no_syslog))
    assert "does not accept syslog messages" in text
    assert time.monotonic() - started < 20


def test_slow_answers_are_progress_and_a_hang_up_after_the_last_is_not_a_failure() -> None:
    """The timeout is for silence, not for a slow receiver: answers that come one
    by one, each within the timeout but all together after it, complete the send.
    A receiver that hangs up right after acknowledging everything delivered it
    all: the send succeeds, and the session is seen hung up for the next one."""

    async def slow_then_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        for txnr in range(2, 8):
            await reader.readuntil(b"\n")
            await asyncio.sleep(0.15)
            writer.write(frame(txnr, "rsp", b"200 OK"))
        writer.close()

    async def attempt() -> None:
        acked: List[int] = []
        async with relp_to(slow_then_gone, window=8, timeout=0.4) as client:
            started = time.monotonic()
            assert await client.send([b"m%d" % n for n in range(6)], acked.append) == 6
            assert time.monotonic() - started > 0.8  # longer than the timeout, all told
            assert acked[-1] == 6 and acked == sorted(acked)
            await wait_until(client.hung_up)
            with pytest.raises(RelpError, match="closed by the receiver|not connected"):
                await client.send([b"late"])

    run(attempt(), timeout=30)


@pytest.mark.parametrize("reverse", [False, True])
def test_transaction_numbers_wrap_and_answers_may_come_in_any_order(reverse: bool) -> None:
    """Numbers run to 999 999 999 and go on at 1, frames and answers alike; a
    server may answer the frames of a read in any order (here: in order, or
    each read's answers reversed)."""
    got: List[Tuple[int, bytes]] = []

    async def acking(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        parser = FrameParser()  # a client's frames have the same shape as answers
        while True:
            data = await reader.read(65536)
            if not data:
                return
            frames = parser.feed(data)
            got.extend((txnr, body) for txnr, command, body in frames if command == b"syslog")
            order = reversed(frames) if reverse else frames  # (close is answered too)
            writer.write(b"".join(frame(txnr, "rsp", b"200 OK") for txnr, _, _ in order))

    async def attempt() -> None:
        acked: List[int] = []
        async with relp_to(acking, window=8, timeout=10) as client:
            client._txnr = MAX_TXNR - 5  # as after a very long session
            messages = [b"m%02d" % n for n in range(20)]
            assert await client.send(messages, acked.append) == 20
            assert acked[-1] == 20 and acked == sorted(set(acked))
            assert await client.send([b"n%d" % n for n in range(5)]) == 5

    run(attempt(), timeout=30)
    numbers = list(range(MAX_TXNR - 4, MAX_TXNR + 1)) + list(range(1, 21))
    bodies = [b"m%02d" % n for n in range(20)] + [b"n%d" % n for n in range(5)]
    assert got == list(zip(numbers, bodies))


def test_an_answer_nobody_asked_for_ends_the_session() -> None:
    """A frame between sends (an answer to no transaction) is a receiver out of
    step: the session is seen hung up at once, not kept to confuse the next send."""

    async def stray(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        await reader.readuntil(b"\n")
        writer.write(frame(2, "rsp", b"200 OK"))
        await asyncio.sleep(0.2)
        writer.write(frame(77, "rsp", b"200 OK"))
        await reader.read()

    async def attempt() -> None:
        async with relp_to(stray, timeout=10) as client:
            assert await client.send([b"one"]) == 1
            assert not client.hung_up()
            await wait_until(client.hung_up)
            with pytest.raises(RelpError, match="unknown transaction 77"):
                await client.send([b"two"])

    run(attempt(), timeout=30)


@contextlib.asynccontextmanager
async def relp_to(
    handler: Handler, window: int = 1024, timeout: float = 30.0
) -> AsyncIterator[RelpClient]:
    """A RelpClient connected to a fake server running ``handler``; both closed after."""
    server, port = await fake_server(handler)
    client = RelpClient("127.0.0.1", port, window=window, timeout=timeout)
    try:
        await client.connect()
        yield client
    finally:
        await client.close()
        server.close()


async def wait_until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    """Poll ``condition`` on the loop until it holds (a deadline, never forever)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_cancelled_send_drops_the_session() -> None:
    """Answers to what was in flight would confuse the next send: reconnect instead."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_open(reader, writer)
        await reader.read()

    async def attempt() -> None:
        server, port = await fake_server(silent)
        try:
            client = RelpClient("127.0.0.1", port, timeout=30)
            await client.connect()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.send([b"one"]), 0.2)
            assert not client.connected
            with pytest.raises(RelpError, match="not connected"):
                await client.send([b"two"])
            await client.close()
            sender = StreamSender("127.0.0.1", port, timeout=30)
            await sender.connect()
            assert sender.connected

            def broken(count: int) -> None:
                raise ZeroDivisionError(count)

            with pytest.raises(ZeroDivisionError):
                await sender.send([b"one"], broken)
            assert not sender.connected
            with pytest.raises(SendError, match="not connected"):
                await sender.send([b"two"])
            await sender.close()
        finally:
            server.close()

    run(attempt(), timeout=30)


# ------------------------------------------------------ against real rsyslog

# Never skipped: a machine without rsyslog fails these tests with the reason
# (.ci/run and the README say what to install).
need_rsyslog = pytest.mark.usefixtures("rsyslog_installed")


@pytest.fixture
def rsyslog_installed() -> None:
    problem = environment_problem()
    if problem:
        pytest.fail(problem)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    problem = environment_problem()
    if problem:
        pytest.fail(problem)
    with Rsyslog(tmp_path_factory.mktemp("rsyslog"), relp=True, tcp=True, tls=True) as rsyslog:
        yield rsyslog


def numbered(app: str, count: int, size: int = 60) -> Tuple[Origin, List[Entry], List[bytes]]:
    origin = Origin("fleet-host", "grp", app, f"grp/{app}.log")
    entries = []
    offset = 0
    for number in range(count):
        data = b"%08d " % number + b"x" * (size - 9)
        stream = "stderr" if number % 10 == 3 else "stdout"
        entries.append(Entry(offset, offset + len(data) + 40, Record(STAMP, stream, data, False)))
        offset += len(data) + 40
    return origin, entries, [message(origin, item, 4242) for item in entries]


def check_fields(got: Received, origin: Origin, item: Entry, pid: int = 4242) -> None:
    record = item.record
    assert got.timestamp == record.time
    assert (got.hostname, got.appname, got.procid) == (origin.host, origin.name, str(pid))
    assert got.msgid == record.stream
    assert got.severity == {"stdout": 6, "stderr": 4}[record.stream]
    assert got.facility == syslog.FACILITY_USER
    assert got.streamlog == {
        "group": origin.group,
        "stream": record.stream,
        "offset": str(item.offset),
        "end": str(item.end),
        "file": origin.file,
    }
    assert got.msg == record.data


def from_app(app: str) -> Callable[[Received], bool]:
    return lambda received: received.appname == app


@need_rsyslog
def test_relp_delivers_10000_messages_once_in_order(server: Rsyslog) -> None:
    origin, entries, messages = numbered("relp-flood", 10_000)
    big = Entry(10**9, 10**9 + 17_041, Record(STAMP, "stdout", b"L" * 17_000, True))
    entries.append(big)
    messages.append(message(origin, big, 4242))
    acked: List[int] = []

    async def flood() -> int:
        client = RelpClient("127.0.0.1", server.relp_port or 0, window=500)
        await client.connect()
        try:
            return await client.send(messages, acked.append)
        finally:
            await client.close()

    assert run(flood()) == len(messages)
    assert acked == sorted(acked) and acked[-1] == len(messages) and len(acked) > 1
    got = server.wait_for(len(messages), where=from_app("relp-flood"))
    assert len(got) == len(messages)  # no more: each once
    for received, item in zip(got[:-1], entries[:-1]):
        check_fields(received, origin, item)
        assert received.input == "imrelp"
    assert got[-1].msg == b"L" * 17_000 and got[-1].streamlog["partial"] == "true"


HOSTILE = b'first line\nsecond ] line \x00 after NUL\ttab \xff\xfe "quoted" \\ end'


@need_rsyslog
@pytest.mark.parametrize("protocol", ["relp", "tcp", "tls"])
def test_newline_nul_and_bracket_arrive_in_rsyslogs_escaping(
    server: Rsyslog, protocol: str
) -> None:
    app = f"hostile-{protocol}"
    origin = Origin("h", 'grp"]\\', app, "grp/x.log")
    items = [entry(HOSTILE, offset=0), entry(b"a\tb\rc\x1bd\nmulti\nline", offset=500)]

    async def deliver() -> None:
        client: RelpClient | StreamSender
        if protocol == "relp":
            client = RelpClient("127.0.0.1", server.relp_port or 0)
        elif protocol == "tcp":
            client = StreamSender("127.0.0.1", server.tcp_port or 0)
        else:
            assert server.certs is not None
            context = tls_context(str(server.certs.ca))
            client = StreamSender("127.0.0.1", server.tls_port or 0, context)
        await client.connect()
        assert await client.send([message(origin, item, 1) for item in items]) == 2
        await client.close()

    run(deliver())
    got = server.wait_for(2, where=from_app(app))
    assert [received.msg for received in got] == [arrives_as(item.record.data) for item in items]
    # what that means: NUL written as #000, control characters after it dropped
    assert got[0].msg == b'first line\nsecond ] line #000 after NULtab \xff\xfe "quoted" \\ end'
    assert got[1].msg == items[1].record.data  # no NUL: exact
    assert got[0].streamlog["group"] == 'grp"]\\'
    assert {received.input for received in got} == {
        "relp": {"imrelp"},
        "tcp": {"imtcp"},
        "tls": {"imtcp-tls"},
    }[protocol]


@need_rsyslog
def test_rsyslog_default_escaping_is_octal(tmp_path: Path) -> None:
    origin = Origin("h", "g", "escaped", "g.log")
    items = [entry(HOSTILE), entry(b"a\tb\nc")]
    with Rsyslog(tmp_path, relp=True, escape_control=True) as rsyslog:

        async def deliver() -> None:
            client = RelpClient("127.0.0.1", rsyslog.relp_port or 0)
            await client.connect()
            await client.send([message(origin, item, 1) for item in items])
            await client.close()

        run(deliver())
        got = rsyslog.wait_for(2)
    assert [received.msg for received in got] == [
        arrives_as(item.record.data, escape_control=True) for item in items
    ]
    assert got[1].msg == b"a#011b#012c"


@need_rsyslog
def test_octet_counted_tcp_delivers_in_order(server: Rsyslog) -> None:
    origin, entries, messages = numbered("tcp-flood", 5000)
    acked: List[int] = []

    async def flood() -> int:
        sender = StreamSender("127.0.0.1", server.tcp_port or 0)
        await sender.connect()
        try:
            return await sender.send(messages, acked.append)
        finally:
            await sender.close()

    assert run(flood()) == len(messages) == acked[-1]
    got = server.wait_for(len(messages), where=from_app("tcp-flood"))
    assert len(got) == len(messages)
    for received, item in zip(got, entries):
        check_fields(received, origin, item)


@need_rsyslog
def test_tls_verifies_the_server(server: Rsyslog, tmp_path: Path) -> None:
    assert server.certs is not None
    origin, entries, messages = numbered("tls-flood", 2000)

    async def deliver(context: ssl.SSLContext) -> int:
        sender = StreamSender("127.0.0.1", server.tls_port or 0, context, timeout=10)
        await sender.connect()
        try:
            return await sender.send(messages)
        finally:
            await sender.close()

    assert run(deliver(tls_context(str(server.certs.ca)))) == len(messages)
    got = server.wait_for(len(messages), where=from_app("tls-flood"))
    for received, item in zip(got, entries):
        check_fields(received, origin, item)
        assert received.input == "imtcp-tls"

    other = make_ca(tmp_path, "other")
    with pytest.raises(SendError, match="TLS certificate not accepted: unable to get local issuer"):
        run(deliver(tls_context(str(other.ca))))
    # the right CA but another name: the hostname is checked too
    by_name = tls_context(str(server.certs.ca))

    async def wrong_name() -> None:
        sender = StreamSender("localhost", server.tls_port or 0, by_name, timeout=10)
        await sender.connect()

    with pytest.raises(SendError, match="TLS certificate not accepted: .*(mismatch|match)"):
        run(wrong_name())


@need_rsyslog
def test_killed_rsyslog_raises_and_a_new_client_delivers_after_restart(tmp_path: Path) -> None:
    with Rsyslog(tmp_path, relp=True) as rsyslog:
        origin, entries, messages = numbered("outage", 200_000)
        acked = [0]
        killed_at: List[float] = []

        def on_acked(count: int) -> None:
            acked.append(count)
            if not killed_at and count >= 1000:
                rsyslog.kill()  # SIGKILL mid-flood, from inside the send
                killed_at.append(time.monotonic())

        async def flood() -> None:
            client = RelpClient("127.0.0.1", rsyslog.relp_port or 0, window=1024, timeout=10)
            await client.connect()
            try:
                await client.send(messages, on_acked)
            finally:
                await client.close()

        with pytest.raises(RelpError, match="closed by the receiver|connection lost"):
            run(flood(), timeout=60)
        assert killed_at, "rsyslog was never killed"
        assert time.monotonic() - killed_at[0] < 10  # raised, did not hang
        done = acked[-1]
        assert 1000 <= done < len(messages)

        rsyslog.restart()
        resumed = entries[done : done + 100]

        async def resume() -> int:
            client = RelpClient("127.0.0.1", rsyslog.relp_port or 0)
            await client.connect()
            try:
                return await client.send(messages[done : done + 100])
            finally:
                await client.close()

        assert run(resume()) == 100
        got = rsyslog.wait_for(
            100, where=lambda received: int(received.streamlog["offset"]) >= resumed[0].offset
        )
        assert [received.msg for received in got[-100:]] == [i.record.data for i in resumed]
        # everything acknowledged before the kill had arrived
        arrived = {received.streamlog["offset"] for received in rsyslog.received()}
        assert all(str(item.offset) in arrived for item in entries[:done])


@need_rsyslog
def test_killed_rsyslog_makes_the_octet_sender_raise(tmp_path: Path) -> None:
    """No acknowledgement, but a dead receiver is still an error, not a hang."""
    with Rsyslog(tmp_path, relp=False, tcp=True) as rsyslog:
        _, _, messages = numbered("octet-outage", 200_000)
        killed_at: List[float] = []

        def on_sent(count: int) -> None:
            if not killed_at:
                rsyslog.kill()
                killed_at.append(time.monotonic())

        async def flood() -> int:
            sender = StreamSender("127.0.0.1", rsyslog.tcp_port or 0, timeout=10)
            await sender.connect()
            try:
                sent = await sender.send(messages, on_sent)
                return sent + await sender.send(messages)  # a second batch, if the first fit
            finally:
                await sender.close()

        with pytest.raises(SendError, match="sending to 127.0.0.1:.*: connection lost"):
            run(flood(), timeout=60)
        assert killed_at and time.monotonic() - killed_at[0] < 10


@need_rsyslog
def test_relp_over_tls(tmp_path: Path) -> None:
    """RelpClient takes an SSLContext: rsyslog's imrelp with tls="on" (which asks
    for a client certificate)."""
    origin, entries, messages = numbered("relp-tls", 1000)
    with Rsyslog(tmp_path, relp=True, relp_tls=True) as rsyslog:
        certs = rsyslog.certs
        assert certs is not None

        async def deliver(context: ssl.SSLContext) -> int:
            client = RelpClient("127.0.0.1", rsyslog.relp_port or 0, context, timeout=10)
            await client.connect()
            try:
                return await client.send(messages)
            finally:
                await client.close()

        with_cert = tls_context(str(certs.ca), str(certs.cert), str(certs.key))
        assert run(deliver(with_cert)) == len(messages)
        for received, item in zip(rsyslog.wait_for(len(messages)), entries):
            check_fields(received, origin, item)
        # (closed, reset or a TLS alert, as the timing falls)
        refused = r"(closed|lost|TLS).* while opening the session .* client certificate"
        with pytest.raises(RelpError, match=refused):
            run(deliver(tls_context(str(certs.ca))))


@need_rsyslog
def test_connecting_to_nothing_is_a_clear_error() -> None:
    from .rsyslog import free_port

    port = free_port()
    with pytest.raises(RelpError, match=f"cannot connect to 127.0.0.1:{port}"):
        run(RelpClient("127.0.0.1", port, timeout=5).connect())
