"""A real rsyslogd for the forwarder's tests: generated config, own ports, own files.

(About 500 lines: the whole harness is here -- configuration, a test PKI,
lifecycle and reading back what rsyslog wrote -- so each test file that needs
a real rsyslog imports one module.)

Everything rsyslog touches is in the test's directory: the config, the pid
file (``-i``), its work directory and its output files.  It has no imuxsock
(no ``/dev/log``) and listens on 127.0.0.1 only::

    with Rsyslog(tmp_path, relp=True, tcp=True) as server:
        ...send to server.relp_port / server.tcp_port...
        received = server.wait_for(10_000)

What arrived is written by omfile as one JSON object per line (rsyslog's
``jsonf`` format: control characters as ``\\n``/``\\u0000``, other bytes,
invalid UTF-8 included, as they are), so :meth:`Rsyslog.received` decodes
each line with ``surrogateescape`` and gets every field back exactly.

What rsyslog 8.2302 does to a message's bytes on reception (its parser
sanitises the whole received message; :func:`arrives_as` models it):

- one trailing LF is dropped (``parser.dropTrailingLFOnReception``);
- with ``parser.escapeControlCharactersOnReceive="off"`` (this harness's
  default, ``escape_control=False``) control characters arrive unchanged,
  except NUL, which is always written ``#000`` -- and, once a NUL was seen,
  rsyslog *drops* the control characters that follow it in the message (its
  sanitiser only copies a control character it escapes);
- with rsyslog's default (``escape_control=True``) every byte below 0x20,
  tab included, becomes ``#`` and three octal digits (``\\n`` is ``#012``),
  which cannot be told from the same text sent literally.

``maxMessageSize``/``maxDataSize`` are 64k: rsyslog's default (8k) would cut
a record of ``max_line_length = 16384``.

TLS: an imtcp input with the gtls stream driver (package rsyslog-gnutls),
server certificate from a test CA made with ``cryptography`` (:func:`make_ca`).

A recipe of docs/shipping.md runs as it is printed: ``Rsyslog(directory,
relp=False, config=TEXT)`` writes TEXT (its placeholders already replaced) as
the whole configuration, followed only by an omfile action for rsyslog's own
messages (:meth:`Rsyslog.internal_log`); with no port to wait for,
:meth:`Rsyslog.start` waits for the pid file.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

RSYSLOGD = "/usr/sbin/rsyslogd"
MODULES = "/usr/lib/x86_64-linux-gnu/rsyslog"

TEMPLATE = """\
template(name="streamlog_json" type="list" option.jsonf="on") {
    property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
    property(outname="hostname" name="hostname" format="jsonf")
    property(outname="appname" name="app-name" format="jsonf")
    property(outname="procid" name="procid" format="jsonf")
    property(outname="msgid" name="msgid" format="jsonf")
    property(outname="sd" name="structured-data" format="jsonf")
    property(outname="severity" name="syslogseverity" format="jsonf")
    property(outname="facility" name="syslogfacility" format="jsonf")
    property(outname="input" name="inputname" format="jsonf")
    property(outname="msg" name="msg" format="jsonf")
}
"""


def arrives_as(msg: bytes, escape_control: bool = False) -> bytes:
    """The MSG bytes rsyslog 8.2302 writes out for ``msg`` (see the module docstring)."""
    if msg.endswith(b"\n"):
        msg = msg[:-1]
    first = next(
        (i for i, byte in enumerate(msg) if byte < 32 and (byte == 0 or escape_control)), None
    )
    if first is None:
        return msg
    out = bytearray(msg[:first])
    for byte in msg[first:]:
        if byte >= 32:
            out.append(byte)
        elif byte == 0 or escape_control:
            out += b"#%03o" % byte
    return bytes(out)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_sd(text: str) -> Dict[str, Dict[str, str]]:
    """RFC 5424 STRUCTURED-DATA text -> {SD-ID: {name: unescaped value}}."""
    elements: Dict[str, Dict[str, str]] = {}
    pos = 0
    if text == "-":
        return elements
    while pos < len(text):
        assert text[pos] == "[", f"bad SD at {pos}: {text!r}"
        end = pos + 1
        while text[end] not in " ]":
            end += 1
        params: Dict[str, str] = {}
        elements[text[pos + 1 : end]] = params
        pos = end
        while text[pos] == " ":
            eq = text.index("=", pos)
            name = text[pos + 1 : eq]
            assert text[eq + 1] == '"', f"bad SD param at {eq}: {text!r}"
            value = []
            i = eq + 2
            while text[i] != '"':
                if text[i] == "\\" and text[i + 1] in '"\\]':
                    i += 1
                value.append(text[i])
                i += 1
            params[name] = "".join(value)
            pos = i + 1
        assert text[pos] == "]", f"bad SD end at {pos}: {text!r}"
        pos += 1
    return elements


@dataclass(frozen=True)
class Received:
    """One message as rsyslog wrote it out."""

    timestamp: str
    hostname: str
    appname: str
    procid: str
    msgid: str
    sd_text: str  # the STRUCTURED-DATA as received
    severity: int
    facility: int
    input: str  # imrelp, imtcp
    msg: bytes

    @property
    def sd(self) -> Dict[str, Dict[str, str]]:
        return parse_sd(self.sd_text)

    @property
    def streamlog(self) -> Dict[str, str]:
        """Our structured-data element's parameters."""
        return self.sd.get("streamlog@32473", {})


def parse_line(line: bytes) -> Received:
    """One line of the output file back into its fields."""
    obj = json.loads(line.decode("utf-8", "surrogateescape"))
    return Received(
        timestamp=obj["timestamp"],
        hostname=obj["hostname"],
        appname=obj["appname"],
        procid=obj["procid"],
        msgid=obj["msgid"],
        sd_text=obj["sd"],
        severity=int(obj["severity"]),
        facility=int(obj["facility"]),
        input=obj["input"],
        msg=obj["msg"].encode("utf-8", "surrogateescape"),
    )


@dataclass(frozen=True)
class Certs:
    """Files of a test PKI: the CA's certificate, and a server's certificate and key."""

    ca: Path
    cert: Path
    key: Path


def make_ca(directory: Path, name: str = "test", hosts: Tuple[str, ...] = ("127.0.0.1",)) -> Certs:
    """A CA and a certificate it signed for ``hosts`` (IP addresses or names), good
    for a server and for a client."""
    import ipaddress

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"streamlog {name} CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: List[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # a server's, and a client's for imrelp's TLS (it asks the client for one)
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs = Certs(*(directory / f"{name}-{part}.pem" for part in ("ca", "cert", "key")))
    certs.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    certs.key.chmod(0o600)
    return certs


class Rsyslog:
    """An rsyslogd in ``directory`` with the inputs asked for, each on its own port.

    ``relp``: imrelp, with TLS when ``relp_tls`` (imrelp then wants a client
    certificate signed by the CA: ``tls.authMode="certvalid"``); ``tcp``: imtcp
    (octet-counted or newline framing, as rsyslog detects); ``tls``: imtcp with
    gtls.  Certificates from ``certs`` (made with :func:`make_ca` when None).
    Ports stay the same across :meth:`restart`.
    """

    def __init__(
        self,
        directory: Path,
        relp: bool = True,
        tcp: bool = False,
        tls: bool = False,
        certs: Optional[Certs] = None,
        escape_control: bool = False,
        relp_tls: bool = False,
        start_timeout: float = 20.0,
        config: Optional[str] = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "rsyslog.conf"
        self.pidfile = directory / "rsyslogd.pid"
        self.output = directory / "received.jsonl"
        self.internal = directory / "rsyslogd-internal.log"
        self.stderr = directory / "rsyslogd.stderr"
        self.workdir = directory / "work"
        self.workdir.mkdir(exist_ok=True)
        self.start_timeout = start_timeout
        self.escape_control = escape_control
        self.relp_port = free_port() if relp else None
        self.tcp_port = free_port() if tcp else None
        self.tls_port = free_port() if tls else None
        self.relp_tls = relp_tls
        if certs is None and (tls or relp_tls):
            certs = make_ca(directory / "pki")
        self.certs = certs
        self.process: Optional[subprocess.Popen[bytes]] = None
        if config is not None:
            self.conf.write_text(f'{config}\naction(type="omfile" file="{self.internal}")\n')
        else:
            self._write_conf()

    # ------------------------------------------------------------ configuration

    def _write_conf(self) -> None:
        escape = "on" if self.escape_control else "off"
        lines = [
            TEMPLATE,
            f'global(workDirectory="{self.workdir}" maxMessageSize="64k" net.enableDNS="off"',
            f'       parser.escapeControlCharactersOnReceive="{escape}")',
            # streamlog's messages only; rsyslog's own go to a file of their own
            # queue.type="Direct": the input runs the action itself, so a message
            # is in the output file before imrelp acknowledges it (with a queue in
            # memory, a SIGKILL loses messages already acknowledged)
            'ruleset(name="streamlog" queue.type="Direct") {',
            f'    action(type="omfile" file="{self.output}" template="streamlog_json")',
            "}",
            f'action(type="omfile" file="{self.internal}")',
        ]
        if self.relp_port is not None:
            lines.append('module(load="imrelp")')
            tls = ""
            if self.relp_tls:
                assert self.certs is not None
                tls = (
                    f'\n      tls="on" tls.authMode="certvalid" tls.caCert="{self.certs.ca}"'
                    f' tls.myCert="{self.certs.cert}" tls.myPrivKey="{self.certs.key}"'
                )
            lines.append(
                f'input(type="imrelp" address="127.0.0.1" port="{self.relp_port}"'
                f' maxDataSize="64k" ruleset="streamlog"{tls})'
            )
        if self.tcp_port is not None or self.tls_port is not None:
            lines.append('module(load="imtcp" maxSessions="100")')
        if self.tcp_port is not None:
            lines.append(
                f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}"'
                ' ruleset="streamlog")'
            )
        if self.tls_port is not None:
            assert self.certs is not None
            lines.append(
                f'input(type="imtcp" address="127.0.0.1" port="{self.tls_port}"'
                ' ruleset="streamlog" name="imtcp-tls"\n'
                '      streamDriver.name="gtls" streamDriver.mode="1"'
                ' streamDriver.authMode="anon"\n'
                f'      streamDriver.CAFile="{self.certs.ca}"'
                f' streamDriver.CertFile="{self.certs.cert}"'
                f' streamDriver.KeyFile="{self.certs.key}")'
            )
        self.conf.write_text("\n".join(lines) + "\n")

    def validate(self) -> None:
        """``rsyslogd -N1``: fail with rsyslog's own words if the config is wrong."""
        out = subprocess.run(
            [RSYSLOGD, "-N1", "-f", str(self.conf), "-i", str(self.directory / "check.pid")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise AssertionError(
                f"rsyslogd -N1 rejected {self.conf}:\n{out.stdout}{out.stderr}\n"
                + self.conf.read_text()
            )

    # ---------------------------------------------------------------- lifecycle

    @property
    def ports(self) -> List[int]:
        return [p for p in (self.relp_port, self.tcp_port, self.tls_port) if p is not None]

    def start(self) -> None:
        """Start rsyslogd in the foreground and wait until every port accepts."""
        assert self.process is None, "already running"
        self.validate()
        if not self.ports:
            self.pidfile.unlink(missing_ok=True)  # left by a kill: start() waits for a new one
        with open(self.stderr, "ab") as err:
            self.process = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.directory,
            )
        deadline = time.monotonic() + self.start_timeout
        waiting = list(self.ports)
        while not waiting and not self.pidfile.exists():
            # No input to connect to: rsyslogd writes its pid file once it runs.
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"rsyslogd did not start: {self.stderr.read_text()}")
            time.sleep(0.02)
        while waiting:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise AssertionError(f"rsyslogd exited with {code}: {self.stderr.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=1):
                    waiting.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"rsyslogd did not listen on {waiting} within {self.start_timeout}s: "
                    + self.stderr.read_text()
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or an outage: nothing is flushed or answered."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        """Stop if running, start again on the same ports."""
        self.stop()
        self.start()

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> Rsyslog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- reading

    def received(self) -> List[Received]:
        """Every complete line of the output file, parsed."""
        try:
            data = self.output.read_bytes()
        except FileNotFoundError:
            return []
        return [parse_line(line) for line in data.split(b"\n")[:-1] if line]

    def wait_for(
        self,
        count: int,
        timeout: float = 30.0,
        where: Optional[Callable[[Received], bool]] = None,
    ) -> List[Received]:
        """The received messages (those ``where`` accepts) once there are at
        least ``count``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if where is not None:
                got = [message for message in got if where(message)]
            if len(got) >= count:
                return got
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"rsyslogd died: {self.stderr.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"rsyslog wrote {len(got)} of {count} messages within {timeout}s"
                    f" (internal log: {self.internal_log()!r})"
                )
            time.sleep(0.05)

    def internal_log(self) -> str:
        """What rsyslogd said about itself (errors, sessions)."""
        try:
            return self.internal.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


def environment_problem() -> Optional[str]:
    """Why the real-rsyslog tests cannot run here, or None."""
    if not os.path.exists(RSYSLOGD):
        return f"{RSYSLOGD} missing (apt-get install rsyslog rsyslog-relp rsyslog-gnutls)"
    for module in ("imrelp.so", "imtcp.so", "lmnsd_gtls.so"):
        if not os.path.exists(os.path.join(MODULES, module)):
            return f"{MODULES}/{module} missing (apt-get install rsyslog-relp rsyslog-gnutls)"
    return None


#: The central recipe of docs/shipping.md ("One page for many hosts"), as printed.
CENTRAL_CONF = Path(__file__).resolve().parent.parent / "conf" / "central-rsyslog.conf"


def central_config(port: int, workdir: Path, receive: str, receive_log: Path) -> str:
    """conf/central-rsyslog.conf with its placeholders replaced, for ``Rsyslog(config=...)``.

    ``receive`` is the omprog binary line (``supervisor-streamlog receive -c
    FILE``, or a wrapper script); the input listens on 127.0.0.1 only.
    """
    text = CENTRAL_CONF.read_text()
    for old, new in (
        ('workDirectory="WORKDIR"', f'workDirectory="{workdir}"'),
        ('port="PORT"', f'address="127.0.0.1" port="{port}"'),
        ('binary="RECEIVE"', f'binary="{receive}"'),
        ('output="RECEIVE_LOG"', f'output="{receive_log}"'),
    ):
        assert old in text, f"{old} not in {CENTRAL_CONF}"
        text = text.replace(old, new)
    return text
